"""The experiments of the assignment (Homework 7) as a job for :mod:`jobs`.

- :mod:`assignment.registry`: the experiments, one value each, and the job
  (:data:`HOMEWORK`): adding an experiment is adding a value there;
- :mod:`assignment.regression`, :mod:`~assignment.tuned`,
  :mod:`~assignment.minibatch`, :mod:`~assignment.classifier`: the runners
  and their typed results; :mod:`assignment.ridge`: the fit two of them share;
- :mod:`assignment.data`: the data, loaded once per task;
- :mod:`assignment.figures`: the figures and what they show;
- :mod:`assignment.checks`: the gradient checks the report quotes;
- :mod:`assignment.sweep`: ``--sweep-tuned``.
"""

from assignment.registry import EXPERIMENTS, HOMEWORK

__all__ = ["EXPERIMENTS", "HOMEWORK"]
