"""The gallery of structured networks as a job for :mod:`jobs` (``scripts/gallery.py``).

- :mod:`showcase.registry`: the models, one experiment value each, and the
  job (:data:`GALLERY`): adding a model is adding a value there;
- :mod:`showcase.runners`: training and measuring a digits classifier or
  the sunspot forecaster, their typed results and the issue's targets;
- :mod:`showcase.data`: the data, loaded once per task, and the measures;
- :mod:`showcase.figures`: the figures and what they show;
- :mod:`showcase.report`: GALLERY.md, which :func:`jobs.run_job` writes (no PDF).
"""

from showcase.registry import EXPERIMENTS, GALLERY

__all__ = ["EXPERIMENTS", "GALLERY"]
