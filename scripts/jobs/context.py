"""What a runner gets besides its settings and seed: a per-task cache, progress bars and the backend."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import attrs


class Cache:
    """Values computed once per task of a job (a data set, a fit two experiments share).

    A task is the experiments that run one after the other in one process
    (an experiment group); each task has its own cache, and so does the main
    process of a job. Only values that are a pure function of their key may
    be cached, so what a run computes never depends on what ran before it.
    """

    def __init__(self) -> None:
        self._values: dict = {}

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The value under ``key``, computed with ``compute()`` the first time it is asked for."""
        if key not in self._values:
            self._values[key] = compute()
        return self._values[key]


def no_progress(desc: str, total: int) -> None:
    """Progress bars turned off: ``fgraph.train.fit`` gets ``progress=None``."""


@attrs.frozen
class Context:
    """A runner's cache, ``progress(desc, total)`` (a function wrapping an epoch
    iterator in a bar, or None) and ``backend``: where its fits run, the
    ``backend=`` of every ``fgraph.train.fit`` it calls (``--backend``)."""

    cache: Cache = attrs.field(factory=Cache)
    progress: Callable[[str, int], Any] = no_progress
    backend: str = "numpy"
