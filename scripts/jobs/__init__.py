"""A generic job runner: a registry of experiments in, a report folder out.

A job (:class:`JobSpec`) is a registry of :class:`Experiment` values, the
figures (:class:`Plot`) they appear in and a function that writes the report.
:func:`run_job` runs the experiments in worker processes (longest first),
draws each figure as soon as the experiments it shows are done, and writes
``results.json``, ``runs/<id>.json`` and ``.npz``, the figures,
``REPORT.md`` and ``report.pdf``. The same seed gives the same numbers
whatever the number of processes.

- :mod:`jobs.experiment`: the values a job is made of;
- :mod:`jobs.outcome`: what one experiment's run gives, and its results.json entry;
- :mod:`jobs.context`: the per-task cache and progress bars a runner gets;
- :mod:`jobs.workers`: running tasks in processes, a bounded number at once;
- :mod:`jobs.job`: the experiments and the figures of one job, overlapped;
- :mod:`jobs.output`: the files of a job (JSON, run records, the report);
- :mod:`jobs.run`: a whole job from options to files;
- :mod:`jobs.cli`: the command-line options every job shares.
"""

from jobs.context import Cache, Context
from jobs.experiment import Experiment, JobSpec, Plot, registry
from jobs.outcome import LearningCurve, Outcome
from jobs.run import JobResult, Options, run_job

__all__ = ["Cache", "Context", "Experiment", "JobResult", "JobSpec", "LearningCurve", "Options", "Outcome", "Plot",
           "registry", "run_job"]
