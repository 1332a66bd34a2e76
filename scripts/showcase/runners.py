"""The gallery's runners: the digits classifiers and the sunspot forecaster, trained and measured.

Each runner builds its model from the experiment's settings (``model`` and
its constructor ``kwargs``, from :mod:`models.presets`), trains it with
``fgraph.train.fit`` (the settings' optimiser, epochs, batch size; the
preset's seed plus the job's for the initialisation and every shuffle)
and measures it on the held-out years or images after every epoch, which
gives the learning curves. Nothing here reads the test data to choose
anything: the held-out curve is drawn, never used to stop or to select.
"""

from __future__ import annotations

import time

import attrs
import numpy as np

import models
from fgraph import train
from jobs import Context, Experiment, LearningCurve, Outcome
from models.presets import CONSTRUCTORS, OPTIMIZERS
from showcase.data import accuracy, ar_baseline, confusion, digits, fit_time, head, history, rmse, sunspots


def optimizer(spec: dict):
    """The optimiser that ``spec = {"name": "adam", "lr": 0.01, ...}`` describes (a name of
    ``models.presets.OPTIMIZERS`` and its arguments)."""
    try:
        make = OPTIMIZERS[spec["name"]]
    except KeyError:
        raise ValueError(f"unknown optimiser {spec.get('name')!r}; choose one of {sorted(OPTIMIZERS)}") from None
    return make(**{k: v for k, v in spec.items() if k != "name"})


def build(s: dict) -> models.Model:
    """The model ``CONSTRUCTORS[s["model"]](**s["kwargs"])`` of ``models.presets``."""
    try:
        constructor = CONSTRUCTORS[s["model"]]
    except KeyError:
        raise ValueError(f"unknown model {s['model']!r}; choose one of {sorted(CONSTRUCTORS)}") from None
    return constructor(**s["kwargs"])


def num_params(model: models.Model) -> int:
    """How many numbers the model's parameters hold."""
    return int(sum(np.prod(shape, dtype=np.int64) for shape in model.graph.params.values()))


def _config(exp: Experiment, s: dict, model: models.Model, seed: int, train_examples: int,
            test_examples: int) -> dict:
    return {"experiment": exp.title, "preset": s["preset"], "model": model.config,
            "constructor": f"models.{s['model']}", "kwargs": dict(s["kwargs"]), "optimizer": dict(s["optimizer"]),
            "epochs": s["epochs"], "batch_size": s["batch_size"], "train_seed": train_seed(s, seed),
            "train_examples": train_examples, "test_examples": test_examples}


def train_seed(s: dict, seed: int) -> int:
    """The seed of the initialisation and the shuffles: the preset's plus the job's ``--seed`` (default 0,
    so that by default every model trains exactly as its preset was recorded)."""
    return s["seed"] + seed


def _fit(exp: Experiment, s: dict, model: models.Model, data: dict, seed: int, context: Context, evaluate):
    """``fgraph.train.fit`` with the settings; the result and its wall time (held-out evaluation included)."""
    seed = train_seed(s, seed)
    t0 = time.perf_counter()
    result = train.fit(model.graph, model.init(seed), data, optimizer=optimizer(s["optimizer"]), epochs=s["epochs"],
                       batch_size=s["batch_size"], seed=seed, evaluate=evaluate,
                       progress=context.progress(exp.id, s["epochs"]), backend=context.backend)
    return result, time.perf_counter() - t0


# ------------------------------------------------------------------ digits


@attrs.frozen
class DigitsMetrics:
    """Accuracy and mean cross-entropy on the test and the training images; the held-out curve."""

    test_accuracy: float
    train_accuracy: float
    test_objective: float
    train_objective: float
    epochs: int  # epochs trained
    num_params: int
    test_accuracy_by_epoch: tuple[float, ...]


@attrs.frozen(eq=False)
class DigitsFigures:
    """What the figures draw: the held-out curve, the test confusion matrix, the first layer's kernels."""

    held_out: tuple[float, ...]
    confusion: np.ndarray  # counts[true digit, predicted digit] on the test images
    first_filters: np.ndarray | None  # conv1.W (F, C, kh, kw) of a convolutional model, else None


def run_digits(exp: Experiment, s: dict, seed: int, context: Context) -> Outcome:
    """Train a digits classifier; its test accuracy after every epoch, and at the end."""
    d = digits(context.cache)
    model = build(s)
    data = head({"x": d.X_train, "y": d.y_train}, s.get("train_examples"))
    test = {"x": d.X_test, "y": d.y_test}

    def evaluate(params):
        return {"test_accuracy": accuracy(model.predict(params, test["x"]), test["y"])}

    result, seconds = _fit(exp, s, model, data, seed, context, evaluate)
    params = result.params
    test_p, train_p = model.predict(params, test["x"]), model.predict(params, data["x"])
    curve = history(m["test_accuracy"] for m in result.metrics)
    metrics = DigitsMetrics(
        test_accuracy=accuracy(test_p, test["y"]), train_accuracy=accuracy(train_p, data["y"]),
        test_objective=model.objective(params, test), train_objective=model.objective(params, data),
        epochs=result.state.epoch, num_params=num_params(model), test_accuracy_by_epoch=curve)
    figures = DigitsFigures(held_out=curve, confusion=confusion(test_p.argmax(axis=1), test["y"], d.num_classes),
                            first_filters=np.array(params["conv1.W"]) if "conv1.W" in params else None)
    return Outcome(metrics=metrics, config=_config(exp, s, model, seed, len(data["y"]), len(test["y"])),
                   params=dict(params), timings=fit_time(seconds, result.state.epoch),
                   curve=LearningCurve(((exp.id, history(result.history)),), ylabel="mean cross-entropy"),
                   figure_data=figures)


# ---------------------------------------------------------------- sunspots


@attrs.frozen
class ForecastMetrics:
    """One-step-ahead RMSE in sunspot numbers on 1950-2008 (the forecaster's and AR's) and on the training years."""

    test_rmse: float
    ar_rmse: float
    train_rmse: float
    epochs: int
    num_params: int
    test_rmse_by_epoch: tuple[float, ...]


@attrs.frozen(eq=False)
class Forecasts:
    """The test years, their activity, the network's and AR's forecasts, and the held-out curve."""

    years: np.ndarray
    truth: np.ndarray
    network: np.ndarray
    ar: np.ndarray
    ar_order: int
    held_out: tuple[float, ...]


def run_forecaster(exp: Experiment, s: dict, seed: int, context: Context) -> Outcome:
    """Train the sunspot forecaster on the standardised training years; RMSE in sunspot numbers.

    The series is standardised with the training years' mean and standard
    deviation (``Sunspots.scaling``); forecasts are scaled back before any
    error is measured, so every RMSE is in sunspot numbers, like AR's.
    """
    problem = sunspots(context.cache)
    lags = s["kwargs"]["lags"]
    windows, scaling = problem.windows(lags), problem.scaling()
    baseline = ar_baseline(context.cache, s["ar_order"])
    model = build(s)
    data = head({"x": scaling.apply(windows.X_train), "y": scaling.apply(windows.y_train)}, s.get("train_examples"))
    x_test = scaling.apply(windows.X_test)

    def forecast(params, x):
        return scaling.invert(model.predict(params, x))

    def evaluate(params):
        return {"test_rmse": rmse(forecast(params, x_test), windows.y_test)}

    result, seconds = _fit(exp, s, model, data, seed, context, evaluate)
    params = result.params
    network = forecast(params, x_test)
    curve = history(m["test_rmse"] for m in result.metrics)
    metrics = ForecastMetrics(
        test_rmse=rmse(network, windows.y_test), ar_rmse=baseline.rmse,
        train_rmse=rmse(forecast(params, data["x"]), scaling.invert(data["y"])),
        epochs=result.state.epoch, num_params=num_params(model), test_rmse_by_epoch=curve)
    figures = Forecasts(years=np.array(windows.years_test), truth=np.array(windows.y_test), network=network,
                        ar=np.array(baseline.predictions), ar_order=baseline.order, held_out=curve)
    config = {**_config(exp, s, model, seed, len(data["y"]), len(windows.y_test)), "ar_order": baseline.order,
              "scaling": {"mean": scaling.mean, "std": scaling.std}}
    return Outcome(metrics=metrics, config=config, params=dict(params), timings=fit_time(seconds, result.state.epoch),
                   curve=LearningCurve(((exp.id, history(result.history)),), ylabel="mean squared error (scaled)"),
                   figure_data=figures)


# ----------------------------------------------------------------- targets


@attrs.frozen
class Target:
    """The issue's target for a metric, and whether this run meets it."""

    target: str
    meets_target: bool


def at_least(outcome: Outcome, outcomes, metric: str, bound: float) -> Target:
    """``derive`` for a classifier: is ``metric`` ≥ ``bound``?"""
    return Target(target=f"{metric} >= {bound:g}", meets_target=bool(getattr(outcome.metrics, metric) >= bound))


def no_worse_than_ar(outcome: Outcome, outcomes) -> Target:
    """``derive`` for the forecaster: is its test RMSE ≤ AR's on the same years?"""
    m = outcome.metrics
    return Target(target="test_rmse <= ar_rmse", meets_target=bool(m.test_rmse <= m.ar_rmse))


def summary(outcome: Outcome) -> str:
    """The console line: the test metric, the target, the epochs."""
    m = outcome.metrics
    if isinstance(m, ForecastMetrics):
        text = f"test RMSE {m.test_rmse:.2f} (AR {m.ar_rmse:.2f})"
    else:
        text = f"test accuracy {m.test_accuracy:.4f}"
    met = "" if outcome.derived is None else ("; target met" if outcome.derived.meets_target else "; target missed")
    return f"{text}, {m.epochs} epochs{met}"

