#!/usr/bin/env python
r"""The gallery of structured networks: every model trained, measured and drawn, one command.

Run from the repository root::

    python scripts/gallery.py                     # everything; the page in report/gallery/
    python scripts/gallery.py --out DIR --seed 3  # another folder, another seed
    python scripts/gallery.py --only cnn,sunspots
    python scripts/gallery.py --quick             # a tiny subset, one or two epochs (seconds)
    python scripts/gallery.py --jobs 1            # one process
    python scripts/gallery.py --backend jax       # every fit compiled by XLA (pip install -e ".[jax]")

It trains every model of the registry ``showcase.EXPERIMENTS`` (a
convolutional, a recurrent and a residual classifier of the handwritten
digits, and a recurrent forecaster of the yearly sunspot numbers) with its
settings and writes into ``--out``:

- ``GALLERY.md``: the results table against the targets, the models, the
  figures and how the page was made;
- ``learning_curves.png`` (training objective and held-out metric per
  epoch), ``cnn_confusion.png`` (the CNN on the test digits),
  ``cnn_filters.png`` (its learned first-layer kernels) and
  ``sunspot_forecast.png`` (1950–2008 against the truth and AR(9));
- ``results.json``: ``{"experiments": {id: {metric: value, ..., "seconds":
  ..., "train_seconds": ..., "epochs": ..., "config": {...},
  "timing_keys": [...]}}, "environment": {...}}``;
- ``runs/<id>.json`` (``fgraph.io.run_record``) and ``runs/<id>.npz`` (the
  final params).

Reproducibility: the same ``--seed`` gives the same numbers bit for bit,
whatever ``--jobs`` is, except the values measured with a clock (listed in
each entry's ``timing_keys``); ``--backend jax`` gives them to rounding.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __name__ == "__main__":  # run as the job (not imported by a test, whose process keeps its settings)
    # One BLAS thread, set before NumPy is imported: on 2 cores, BLAS threads only
    # fight the worker processes (and each other) for the same cores.
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                 "NUMEXPR_NUM_THREADS"):
        os.environ[_var] = "1"
    os.environ.setdefault("MPLBACKEND", "Agg")

SCRIPTS = Path(__file__).resolve().parent
for _path in (SCRIPTS.parent, SCRIPTS):  # the checkout's fgraph and models; jobs, showcase and report
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import argparse  # noqa: E402
import time  # noqa: E402

from jobs import cli, run_job  # noqa: E402
from showcase import EXPERIMENTS, GALLERY  # noqa: E402


def parser() -> argparse.ArgumentParser:
    """The command line: the options every job has."""
    p = argparse.ArgumentParser(
        prog="gallery.py",
        description="Structured networks (convolutional, recurrent, residual, a forecaster) trained with fgraph: "
                    "GALLERY.md, figures and results.json.")
    cli.add_job_arguments(p, EXPERIMENTS, default_out="report/gallery", backends=GALLERY.backends)
    return p


def main(argv=None) -> int:
    """Parse the command line and run the gallery."""
    started = time.perf_counter()
    args = parser().parse_args(argv)
    run_job(GALLERY, cli.options(args, EXPERIMENTS), started)
    return 0


if __name__ == "__main__":
    cli.run_main(main, "gallery.py")
