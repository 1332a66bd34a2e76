"""The gallery's data, loaded once per task through its cache, and the measures its runners share."""

from __future__ import annotations

import attrs
import numpy as np

import models
from jobs import Cache


def digits(cache: Cache) -> models.datasets.Digits:
    """The handwritten digits (1,347 training and 450 test images), loaded once per cache."""
    return cache.get("digits", models.datasets.load_digits)


def sunspots(cache: Cache) -> models.datasets.Sunspots:
    """The yearly sunspot numbers 1700-2008, loaded once per cache."""
    return cache.get("sunspots", models.datasets.load_sunspots)


def ar_baseline(cache: Cache, order: int) -> models.datasets.ARBaseline:
    """The AR(``order``) least-squares forecaster of the sunspots, fitted once per cache."""
    return cache.get(("ar", order), lambda: models.datasets.ar_baseline(sunspots(cache), order))


def head(arrays: dict, n: int | None) -> dict:
    """The first ``n`` examples of every array (all of them when ``n`` is None): ``--quick``'s tiny subset."""
    return dict(arrays) if n is None else {k: v[:n] for k, v in arrays.items()}


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The fraction of examples whose most probable class is their label: mean(argmax_c p_c = y)."""
    return float(np.mean(np.argmax(probabilities, axis=1) == labels))


def confusion(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """The confusion matrix: ``counts[i, j]`` = how many examples of class i were predicted as j."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(labels), np.asarray(predicted)), 1)
    return counts


def rmse(predictions: np.ndarray, truth: np.ndarray) -> float:
    """Root-mean-square error √(mean((ŷ - y)²))."""
    return float(np.sqrt(np.mean(np.square(np.asarray(predictions) - np.asarray(truth)))))


@attrs.frozen
class FitTime:
    """Wall time of the fit alone (``seconds`` also counts data, evaluation and the figures' data)."""

    train_seconds: float
    seconds_per_epoch: float


def fit_time(seconds: float, epochs: int) -> FitTime:
    """The fit's wall time and its time per epoch."""
    return FitTime(train_seconds=seconds, seconds_per_epoch=seconds / max(epochs, 1))


def history(values) -> tuple:
    """A sequence of per-epoch numbers as plain floats."""
    return tuple(float(v) for v in values)
