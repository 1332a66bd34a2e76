r"""Training settings that reach the structured networks' targets, and one function to run them.

:data:`PRESETS` maps each model of the structured-networks gallery to a
:class:`Preset`: its constructor's keyword arguments, the optimiser, the
number of epochs, the batch size, the seed, and the test metric the preset
reached when it was recorded (with the target it must meet). :func:`run`
trains a preset from scratch with :func:`fgraph.train.fit` and measures that
metric on the test split, so that a job, a report and a test all train the
models the same way::

    from models import presets
    outcome = presets.run(presets.PRESETS["cnn_classifier"])
    outcome.metric, outcome.value           # "test_accuracy", 0.96...

The digits' classifiers train on the 1,347 training images and are scored
by accuracy on the 450 test images; the forecaster trains on the
standardised years 1700-1949 and is scored by the RMSE of its forecasts of
1950-2008 in sunspot units, against the AR(9) baseline's 18.75.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import attrs
import numpy as np

import fgraph
import fgraph.optim
import fgraph.train
from models import datasets
from models.base import Model
from models.forecasting import rnn_forecaster
from models.networks import cnn_classifier, resnet_classifier, rnn_classifier

CONSTRUCTORS = MappingProxyType({
    "cnn_classifier": cnn_classifier,
    "rnn_classifier": rnn_classifier,
    "resnet_classifier": resnet_classifier,
    "rnn_forecaster": rnn_forecaster,
})
OPTIMIZERS = MappingProxyType({"sgd": fgraph.optim.sgd, "momentum": fgraph.optim.momentum, "adam": fgraph.optim.adam})
METRICS = MappingProxyType({"test_accuracy": "max", "test_rmse": "min"})  # which way is better


def _frozen_kwargs(value) -> Mapping:
    if not isinstance(value, Mapping):
        raise TypeError(f"Preset: kwargs must be a dict, got {type(value).__name__}")
    return MappingProxyType(dict(value))


def _one_of(choices: Mapping):
    def check(instance, attribute, value):
        if value not in choices:
            raise ValueError(f"Preset: {attribute.name} must be one of {sorted(choices)}, got {value!r}")

    return check


@attrs.frozen
class Preset:
    """How to train one model: ``CONSTRUCTORS[model](**kwargs)``, trained by
    ``OPTIMIZERS[optimizer](**optimizer_kwargs)`` for ``epochs`` epochs of
    minibatches of ``batch_size`` shuffled by ``seed`` (which also draws the
    initial params). ``metric`` (``"test_accuracy"`` or ``"test_rmse"``)
    reached ``reached`` when the preset was recorded, and must be at least
    (accuracy) or at most (RMSE) ``target``."""

    model: str = attrs.field(validator=_one_of(CONSTRUCTORS))
    kwargs: Mapping = attrs.field(converter=_frozen_kwargs)
    optimizer: str = attrs.field(validator=_one_of(OPTIMIZERS))
    optimizer_kwargs: Mapping = attrs.field(converter=_frozen_kwargs)
    epochs: int
    batch_size: int
    seed: int
    metric: str = attrs.field(validator=_one_of(METRICS))
    reached: float
    target: float

    def build(self) -> Model:
        """The untrained model, ``CONSTRUCTORS[model](**kwargs)``."""
        return CONSTRUCTORS[self.model](**self.kwargs)

    def make_optimizer(self) -> fgraph.optim.Optimizer:
        """The optimiser, ``OPTIMIZERS[optimizer](**optimizer_kwargs)``."""
        return OPTIMIZERS[self.optimizer](**self.optimizer_kwargs)

    def meets(self, value: float) -> bool:
        """Whether a measured ``value`` of the metric meets ``target``."""
        return value >= self.target if METRICS[self.metric] == "max" else value <= self.target

    def to_json(self) -> dict:
        """The preset as a JSON-able dict (for a results file)."""
        return {**attrs.asdict(self), "kwargs": dict(self.kwargs), "optimizer_kwargs": dict(self.optimizer_kwargs)}


PRESETS = MappingProxyType({
    # Two stages of 3x3 convolutions (32 and 64 filters) with 2x2 max-pooling;
    # over seeds 0-4 the test accuracy was 0.956-0.967.
    "cnn_classifier": Preset(
        model="cnn_classifier", kwargs={"filters": (32, 64)}, optimizer="adam", optimizer_kwargs={"lr": 2e-3},
        epochs=20, batch_size=32, seed=0, metric="test_accuracy", reached=0.9578, target=0.95,
    ),
    # 64 tanh units reading the 8 rows; over seeds 0-3, 0.933-0.944.
    "rnn_classifier": Preset(
        model="rnn_classifier", kwargs={"hidden": 64}, optimizer="adam", optimizer_kwargs={"lr": 3e-3},
        epochs=30, batch_size=32, seed=0, metric="test_accuracy", reached=0.9444, target=0.93,
    ),
    # 16 channels, two residual stages; over seeds 0-3, 0.944-0.956.
    "resnet_classifier": Preset(
        model="resnet_classifier", kwargs={"width": 16, "blocks": 2}, optimizer="adam",
        optimizer_kwargs={"lr": 2e-3}, epochs=20, batch_size=32, seed=0, metric="test_accuracy",
        reached=0.9533, target=0.94,
    ),
    # Over seeds 0-2, 17.1-18.6 (AR(9): 18.75).
    "rnn_forecaster": Preset(
        model="rnn_forecaster", kwargs={"lags": 9, "hidden": 8}, optimizer="adam", optimizer_kwargs={"lr": 3e-3},
        epochs=300, batch_size=32, seed=0, metric="test_rmse", reached=18.5754, target=18.75,
    ),
})


@attrs.frozen(eq=False)
class Outcome:
    """What :func:`run` returns: the ``model``, the ``fit`` result (final
    params, per-epoch history), and the test ``metric``'s ``value``."""

    preset: Preset
    model: Model
    fit: fgraph.train.FitResult
    metric: str
    value: float


def _data(preset: Preset, model: Model) -> tuple[dict, dict, callable]:
    """(training data, test inputs, test targets → metric of the test predictions)."""
    if preset.metric == "test_accuracy":
        digits = datasets.load_digits()
        train = {"x": digits.X_train, "y": digits.y_train}
        return train, {"x": digits.X_test}, lambda p: float(np.mean(np.argmax(p, axis=-1) == digits.y_test))
    lags = model.config["lags"]
    windows, scaling = (sun := datasets.load_sunspots()).windows(lags), sun.scaling()
    train = {"x": scaling.apply(windows.X_train), "y": scaling.apply(windows.y_train)}

    def rmse(z):
        return float(np.sqrt(np.mean((scaling.invert(z) - windows.y_test) ** 2)))

    return train, {"x": scaling.apply(windows.X_test)}, rmse


def run(preset: Preset, *, progress=None) -> Outcome:
    """Train ``preset`` from its seed on its training data and measure its test metric.

    ``progress`` is passed to :func:`fgraph.train.fit` (``True`` shows a
    progress bar). The same preset gives the same params and metric.
    """
    if not isinstance(preset, Preset):
        raise TypeError(f"run: preset must be a models.presets.Preset (see PRESETS), got {type(preset).__name__}")
    model = preset.build()
    train, test, score = _data(preset, model)
    result = fgraph.train.fit(
        model.graph, model.init(preset.seed), train, optimizer=preset.make_optimizer(), epochs=preset.epochs,
        batch_size=preset.batch_size, seed=preset.seed, progress=progress,
    )
    prediction = fgraph.forward(model.graph, result.params, test, outputs=["prediction"])["prediction"]
    return Outcome(preset=preset, model=model, fit=result, metric=preset.metric, value=score(prediction))
