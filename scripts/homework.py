#!/usr/bin/env python
r"""The main job: every experiment of the assignment, one command, a report.

Run from the repository root::

    python scripts/homework.py                        # everything; the report in report/
    python scripts/homework.py --out DIR --seed 3     # another folder, another seed
    python scripts/homework.py --only ridge_l2_1,multiclass
    python scripts/homework.py --quick                # every experiment with a few epochs (seconds)
    python scripts/homework.py --jobs 1               # one process (cleaner timings, slower)
    python scripts/homework.py --sweep-tuned 10       # the tuned scalar MLP on seeds 0..9
    python scripts/homework.py --backend jax          # every fit compiled by JAX (pip install -e ".[jax]")

It trains every model of the assignment with its exact settings (the
registry ``assignment.EXPERIMENTS``: per-example SGD, a fresh shuffle each
epoch from ``fgraph.train.fit``'s seeded batches) and writes into ``--out``:

- ``REPORT.md`` and ``report.pdf``: the results beside the published values,
  an answer to each question of the assignment, its derivations with the
  tests that check them, and the plots;
- ``*.png``: the plots;
- ``results.json``: ``{"experiments": {id: {metric: value, "seconds": ...,
  "config": {...}, "timing_keys": [...], "published": {metric: [low, high]},
  "within_published": {metric: bool}}}, "checks": {...}, "environment":
  {"backend": ..., "total_wall_seconds": ..., ...}}`` (published bands
  only where the assignment publishes one);
- ``runs/<id>.json`` (``fgraph.io.run_record``: config, seed, metrics,
  digest of the final params) and ``runs/<id>.npz`` (the final params).

Reproducibility: the same ``--seed`` gives the same numbers bit for bit,
whatever ``--jobs`` is, except the values measured with a clock: every
experiment lists those keys in ``timing_keys`` (``seconds`` and the
minibatch timings); run records hold only the reproducible metrics.

Experiments run in ``--jobs`` worker processes (default 2: this machine has
2 cores), longest first (:mod:`jobs`). Every file is written atomically.

``--backend jax`` runs every ``fgraph.train.fit`` on the JAX backend (each
epoch one compiled ``lax.scan`` of the same program; its numbers equal the
NumPy backend's to rounding, not bit for bit, so the backend is recorded
in each run's config); the trained params are evaluated with NumPy either
way. Its times include compiling every fit's epoch.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __name__ == "__main__":  # run as the job (not imported, say by a test, whose process keeps its settings)
    # One BLAS thread, set before NumPy is imported: on 2 cores, BLAS threads only
    # fight the worker processes (and each other) for the same cores.
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                 "NUMEXPR_NUM_THREADS"):
        os.environ[_var] = "1"
    os.environ.setdefault("MPLBACKEND", "Agg")

SCRIPTS = Path(__file__).resolve().parent
for _path in (SCRIPTS.parent, SCRIPTS):  # the checkout's fgraph and models; jobs, assignment and report
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import argparse  # noqa: E402
import time  # noqa: E402

from assignment import EXPERIMENTS, HOMEWORK  # noqa: E402
from assignment.sweep import sweep_tuned  # noqa: E402
from jobs import cli, run_job  # noqa: E402


def parser() -> argparse.ArgumentParser:
    """The command line: the options every job has, and ``--sweep-tuned``."""
    p = argparse.ArgumentParser(
        prog="homework.py",
        description="Every experiment of the assignment (Homework 7) and a report with numbers, plots, "
                    "derivations and a PDF.")
    cli.add_job_arguments(p, EXPERIMENTS, default_out="report", backends=HOMEWORK.backends)
    p.add_argument("--sweep-tuned", type=cli.count, default=None, metavar="N",
                   help="only run mlp_features and the tuned scalar MLP on seeds 0..N-1 and write "
                        "tuned_sweep.json (the report then quotes it)")
    return p


def main(argv=None) -> int:
    """Parse the command line and run the homework job (or the seed sweep)."""
    started = time.perf_counter()
    args = parser().parse_args(argv)
    options = cli.options(args, EXPERIMENTS)
    if args.sweep_tuned:
        return sweep_tuned(options, args.sweep_tuned, EXPERIMENTS)
    run_job(HOMEWORK, options, started)
    return 0


if __name__ == "__main__":
    cli.run_main(main, "homework.py")
