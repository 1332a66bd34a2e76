"""The gallery of structured networks as a job for :mod:`jobs` (``scripts/gallery.py``).

- :mod:`showcase.registry`: the models, one experiment value each, and the
  job (:data:`GALLERY`): adding a model is adding a value there;
- :mod:`showcase.runners`: training and measuring a digits classifier or
  the sunspot forecaster, their typed results and the issue's targets;
- :mod:`showcase.data`: the data, loaded once per task, and the measures;
- :mod:`showcase.figures`: the figures and what they show;
- :mod:`showcase.report`: GALLERY.md;
- :mod:`showcase.run`: the job's run, writing GALLERY.md and results.json.
"""

from showcase.registry import EXPERIMENTS, GALLERY
from showcase.run import run_gallery

__all__ = ["EXPERIMENTS", "GALLERY", "run_gallery"]
