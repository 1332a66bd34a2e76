"""The per-example SGD fit of ridge regression that two experiments share.

``ridge_l2_1`` and the batch-size-1 arm of ``minibatch_ridge`` are the very
same fold; run in one task (one group), they fit it once, through the
task's cache.
"""

from __future__ import annotations

import time
from typing import Any

import attrs
import numpy as np

import models
from assignment.data import regression_problem
from fgraph import optim, train
from jobs import Context


@attrs.frozen(eq=False)
class RidgeFit:
    """A ridge fit and its path: the training MSE and the seconds since the start after every epoch."""

    result: Any  # fgraph.train.FitResult
    curve: np.ndarray
    times: np.ndarray
    seconds: float  # wall time of the fit


def ridge_fit(context: Context, l2_reg: float, lr: float, epochs: int, batch_size: int, seed: int,
              desc: str) -> RidgeFit:
    """Ridge regression on the 400 features with SGD(lr) on ``context.backend``, once per task for each setting."""
    key = ("ridge_fit", l2_reg, lr, epochs, batch_size, seed, context.backend)
    return context.cache.get(key, lambda: _fit(context, l2_reg, lr, epochs, batch_size, seed, desc))


def _fit(context: Context, l2_reg, lr, epochs, batch_size, seed, desc) -> RidgeFit:
    p = regression_problem(context.cache)
    X, y = p.featurize(p.x_train), p.y_train
    m = models.ridge_regression(X.shape[1], l2_reg)
    snapshots = []

    def on_epoch(state):  # outside the fold: keeps a reference and reads the clock, nothing else
        snapshots.append((time.perf_counter(), state.params))

    t0 = time.perf_counter()
    result = train.fit(m.graph, m.init(seed), {"x": X, "y": y}, optimizer=optim.sgd(lr), epochs=epochs,
                       batch_size=batch_size, seed=seed, progress=context.progress(desc, epochs), on_epoch=on_epoch,
                       backend=context.backend)
    seconds = time.perf_counter() - t0
    if snapshots:
        W = np.stack([s[1]["w"] for s in snapshots])
        b = np.array([float(s[1]["b"]) for s in snapshots])
        curve = np.mean((X @ W.T + b - y[:, None]) ** 2, axis=0)
    else:
        curve = np.zeros(0)
    times = np.array([s[0] - t0 for s in snapshots])
    return RidgeFit(result=result, curve=curve, times=times, seconds=seconds)
