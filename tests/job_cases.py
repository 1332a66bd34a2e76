"""Checks that every job (``scripts/homework.py``, ``scripts/gallery.py``) passes: shared by their tests.

The test modules put ``scripts/`` on ``sys.path`` before importing this.
"""

from __future__ import annotations

import fgraph
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
