"""Checks that every job (``scripts/homework.py``, ``scripts/gallery.py``) passes: shared by their tests.

The test modules put ``scripts/`` on ``sys.path`` before importing this.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import attrs

import fgraph
from assignment import HOMEWORK
from jobs import Options, cli, run_job
from jobs.workers import run_task


def assert_every_fit_gets_the_jobs_backend(experiments, monkeypatch) -> None:
    """Each experiment run as a task with backend "jax": every ``fit`` it calls is asked for "jax" (the spy
    runs it on NumPy, so no JAX is needed), and its config records the backend."""
    asked, fit = [], fgraph.train.fit

    def spy(*args, backend="numpy", **kwargs):
        asked.append(backend)
        return fit(*args, **kwargs)

    monkeypatch.setattr(fgraph.train, "fit", spy)
    for exp in experiments.values():
        asked.clear()
        [(exp_id, outcome)] = run_task((exp,), 0, True, False, "jax", 1)
        assert not isinstance(outcome, str), outcome
        assert asked and set(asked) == {"jax"}, (exp_id, asked)
        assert outcome.config["backend"] == "jax", exp_id


# ------------------------------------------- a job that takes its time


def _sleeper(exp, settings, seed, context):
    """A runner that says where it runs (its pid, in ``settings["pids"]/<id>.pid``) and then sleeps."""
    Path(settings["pids"], f"{exp.id}.pid").write_text(str(os.getpid()), encoding="utf-8")
    time.sleep(settings["seconds"])
    raise RuntimeError("the sleeper woke up: the job should have been stopped before")


def run_sleeping_job(out: str, pids: str, seconds: float = 120.0) -> None:
    """Run, as a command (``jobs.cli.run_main``), the homework job with two sleeping experiments
    on two workers into ``out``: a job to stop from outside."""
    toy = next(iter(HOMEWORK.experiments.values()))
    sleepers = [attrs.evolve(toy, id=f"sleeper{i}", run=_sleeper, settings={"pids": pids, "seconds": seconds})
                for i in (1, 2)]
    spec = HOMEWORK.with_experiments(*sleepers)

    def main() -> int:
        run_job(spec, Options(out=out, ids=("sleeper1", "sleeper2"), jobs=2))
        return 0

    cli.run_main(main, "sleeper")
