"""The command-line options every job shares: ``--out``, ``--seed``, ``--only``, ``--quick``, ``--jobs``,
and ``--backend`` for a job that can run its fits on more than one backend."""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NoReturn

import fgraph
from jobs.output import OutputError
from jobs.run import Options


def seed(text: str) -> int:
    """An argparse type: a seed, an integer >= 0."""
    try:
        return fgraph.init.check_seed(int(text))
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"the seed must be an integer >= 0, got {text!r}") from None


def count(text: str) -> int:
    """An argparse type: a positive integer."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def experiment_ids(experiments: Mapping):
    """An argparse type: a comma-separated list of ids of ``experiments``, returned in registry order."""

    def parse(text: str) -> tuple:
        ids = [i.strip() for i in text.split(",") if i.strip()]
        unknown = [i for i in ids if i not in experiments]
        if unknown or not ids:
            raise argparse.ArgumentTypeError(
                f"unknown experiment {', '.join(map(repr, unknown)) or repr(text)}; "
                f"choose from {', '.join(experiments)}")
        return tuple(i for i in experiments if i in ids)  # the report's order, no duplicates

    return parse


def backend_name(backends: tuple):
    """An argparse type: one of ``backends``, whose library is installed (checked without importing it:
    worker processes are forked from this one, and JAX must not be running in a process that forks)."""

    def parse(text: str) -> str:
        if text not in backends:
            raise argparse.ArgumentTypeError(f"unknown backend {text!r}; choose from {', '.join(backends)}")
        if text == "jax" and importlib.util.find_spec("jax") is None:
            raise argparse.ArgumentTypeError('backend "jax" needs JAX, which is not installed: '
                                             'pip install -e ".[jax]"')
        return text

    return parse


def add_job_arguments(parser: argparse.ArgumentParser, experiments: Mapping, default_out: str,
                      backends: tuple = ("numpy",)) -> None:
    """Add the shared options to ``parser``; :func:`options` reads them back. ``--backend`` is added
    when the job has more than one of ``backends`` (its ``JobSpec.backends``; the first is the default)."""
    parser.add_argument("--out", default=default_out, type=Path,
                        help=f"folder of the report (default: {default_out}/)")
    parser.add_argument("--seed", default=0, type=seed, help="seed of every initialisation and shuffle (default 0)")
    parser.add_argument("--only", type=experiment_ids(experiments), default=None, metavar="ID,ID",
                        help="run only these experiments: " + ", ".join(experiments))
    parser.add_argument("--quick", action="store_true", help="every experiment with a few epochs (a pipeline check)")
    parser.add_argument("--jobs", type=count, default=min(2, os.cpu_count() or 1),
                        help="worker processes (default: 2, or 1 on a single core)")
    if len(backends) > 1:
        parser.add_argument("--backend", type=backend_name(backends), default=backends[0],
                            metavar="|".join(backends),
                            help=f"where every fit runs: fgraph.train.fit(..., backend=...) (default {backends[0]})")


def options(args: argparse.Namespace, experiments: Mapping) -> Options:
    """The :class:`jobs.Options` of parsed arguments (every experiment unless ``--only``)."""
    return Options(out=args.out, seed=args.seed, ids=args.only or tuple(experiments), quick=args.quick,
                   jobs=args.jobs, show=sys.stderr.isatty(), backend=getattr(args, "backend", "numpy"))


def _terminated(signum, frame) -> NoReturn:
    # An exception, so that every block unwinds: the job stops its workers, files being written are dropped.
    raise SystemExit(128 + signum)


def run_main(main: Callable[[], int], program: str) -> NoReturn:
    """Run a job's ``main()`` as a command and exit with its status. Ctrl-C
    (130) and a plain ``kill`` (SIGTERM, 143) stop the worker processes
    before the command exits; a folder that cannot take the run is an
    error message (status 2), not a traceback."""
    signal.signal(signal.SIGTERM, _terminated)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except OutputError as e:
        print(f"{program}: error: {e}", file=sys.stderr)
        sys.exit(2)
