"""Linear, ridge and MLP regression with per-example SGD (sections 2, 3.3 and 4.2 of the assignment)."""

from __future__ import annotations

import time

import attrs
import numpy as np

import models
from assignment.data import FitTime, history, mse, plot_grid, regression_problem
from assignment.ridge import ridge_fit
from fgraph import optim, train
from jobs import Context, Experiment, LearningCurve, Outcome


@attrs.frozen
class RegressionMetrics:
    """Training and test MSE, and the training objective (the MSE plus the penalty, for ridge)."""

    train_mse: float
    test_mse: float
    train_objective: float


@attrs.frozen(eq=False)
class Prediction:
    """The fitted function on :func:`assignment.data.plot_grid`, for the prediction plots."""

    grid: np.ndarray


def inputs(p, kind: str) -> dict:
    """The model's inputs on the training, test and plot points: the 400 step features or x as (n, 1)."""
    if kind == "features":
        return {"train": p.featurize(p.x_train), "test": p.featurize(p.x_test), "grid": p.featurize(plot_grid(p))}
    return {"train": p.x_train[:, None], "test": p.x_test[:, None], "grid": plot_grid(p)[:, None]}


def _fit(exp: Experiment, s: dict, seed: int, context: Context, x_train, y_train):
    """The model of ``s`` and its fit: ``(model, fgraph.train.FitResult, seconds of the fit)``."""
    d = x_train.shape[1]
    if s["model"] == "ridge":
        fit = ridge_fit(context, s["l2_reg"], s["lr"], s["epochs"], 1, seed, exp.id)
        return models.ridge_regression(d, s["l2_reg"]), fit.result, fit.seconds
    m = models.linear_regression(d) if s["model"] == "linear" else \
        models.mlp_regression(d, s["hidden_units"], init_scale=s["init_scale"])
    t0 = time.perf_counter()
    result = train.fit(m.graph, m.init(seed), {"x": x_train, "y": y_train}, optimizer=optim.sgd(s["lr"]),
                       epochs=s["epochs"], batch_size=1, seed=seed, progress=context.progress(exp.id, s["epochs"]),
                       backend=context.backend)
    return m, result, time.perf_counter() - t0


def run_regression(exp: Experiment, s: dict, seed: int, context: Context) -> Outcome:
    """Fit ``s["model"]`` (linear, ridge or mlp) on ``s["input"]`` (features or scalar) with per-example SGD."""
    p = regression_problem(context.cache)
    x = inputs(p, s["input"])
    m, result, train_seconds = _fit(exp, s, seed, context, x["train"], p.y_train)
    params = result.params
    metrics = RegressionMetrics(train_mse=mse(m, params, x["train"], p.y_train),
                                test_mse=mse(m, params, x["test"], p.y_test),
                                train_objective=m.objective(params, {"x": x["train"], "y": p.y_train}))
    config = {
        "experiment": exp.title, "model": m.config,
        "input": "400 step features" if s["input"] == "features" else "scalar x as an (n, 1) input",
        "optimizer": f"sgd(lr={s['lr']})", "epochs": s["epochs"], "batch_size": 1,
        "init": "the model's default (the assignment's)",
    }
    return Outcome(metrics=metrics, config=config, params=dict(params), timings=FitTime(train_seconds),
                   curve=LearningCurve(((exp.id, history(result.history)),)),
                   figure_data=Prediction(m.predict(params, x["grid"])))
