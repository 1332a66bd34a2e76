"""The assignment's data, loaded once per task through its cache, and the measures every runner uses."""

from __future__ import annotations

import attrs
import numpy as np

import models
from jobs import Cache


@attrs.frozen
class FitTime:
    """Wall time of the fit alone (the experiment's ``seconds`` also count data and evaluation)."""

    train_seconds: float


def regression_problem(cache: Cache) -> models.datasets.RegressionProblem:
    """The 1-D regression problem (100 training and 900 test points), loaded once per cache."""
    return cache.get("regression_problem", models.datasets.load_regression_problem)


def blobs(cache: Cache) -> models.datasets.Blobs:
    """The three Gaussian blobs of the classifier (300 training and 200 test points), loaded once per cache."""
    return cache.get("blobs", models.datasets.load_blobs)


def plot_grid(p) -> np.ndarray:
    """The x values of the assignment's plots: a 0.001 grid over [0, 1) and the training inputs."""
    return np.sort(np.concatenate([np.arange(0, 1, 0.001), p.x_train]))


def mse(model, params, x, y) -> float:
    """Average square error of ``model``'s prediction on ``(x, y)``: mean((f(x) - y)²)."""
    return float(np.mean((model.predict(params, x) - y) ** 2))


def history(values) -> tuple:
    """A fit's per-epoch objective as plain floats."""
    return tuple(float(v) for v in values)
