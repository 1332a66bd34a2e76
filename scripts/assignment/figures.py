"""The homework's figures: what each draws (a function of :mod:`report.plots`) and from which outcomes.

An experiment appears in a figure by naming its key in its ``plots``; the
figure is drawn from the ``(experiment, outcome)`` pairs of those that ran,
in registry order.
"""

from __future__ import annotations

from functools import partial

import fgraph.viz
import models
from assignment.data import blobs, plot_grid, regression_problem
from assignment.regression import inputs
from jobs import Cache, Plot
from report import plots


def _only(shown: list, figure: str):
    if len(shown) != 1:
        raise ValueError(f"{figure} shows one experiment; {[exp.id for exp, _ in shown]} list it in their plots")
    return shown[0]


def fits(shown: list, cache: Cache, title: str) -> tuple:
    """Arguments of :func:`report.plots.prediction_functions`: each experiment's prediction on the plot grid."""
    problem = regression_problem(cache)
    x = plot_grid(problem)
    series = [(f"{exp.label} (train MSE {o.metrics.train_mse:.4f})", o.figure_data.grid) for exp, o in shown]
    return x, series, problem.target(x), problem.x_train, problem.y_train, title


def epoch_curves(shown: list, cache: Cache) -> tuple:
    """Arguments of :func:`report.plots.minibatch`: time per epoch, speed-up and the MSE-against-time curves."""
    _, o = _only(shown, "the minibatch figure")
    m, t = o.metrics, o.timings
    return m.batch_sizes, t.seconds_per_epoch, t.speedup, o.figure_data.curves, t.equal_time_budget_seconds


def regions(shown: list, cache: Cache) -> tuple:
    """Arguments of :func:`report.plots.decision_regions`: the predicted class on a grid and the points."""
    _, o = _only(shown, "the decision regions figure")
    r, b = o.figure_data, blobs(cache)
    return (r.xx, r.yy, r.labels, b.X_train, b.y_train, b.X_test, b.y_test,
            f"Decision regions; test accuracy {o.metrics.test_accuracy:.3f}")


def learning_curves(shown: list, cache: Cache) -> tuple:
    """Arguments of :func:`report.plots.learning_curves`: one panel per experiment."""
    panels = []
    for exp, o in shown:
        if o.curve is None:
            raise ValueError(f"experiment {exp.id!r} is shown in the learning curves but its outcome has no curve")
        title = f"{exp.label} ({o.curve.note})" if o.curve.note else exp.label
        panels.append((title, list(o.curve.series), o.curve.ylabel))
    return (panels,)


#: How each model of a graph figure is rebuilt from its config (a graph is
#: not sent between processes; its config is).
GRAPHS = {
    "ridge_regression": lambda c: models.ridge_regression(c["num_features"], c["l2_reg"]),
    "mlp_regression": lambda c: models.mlp_regression(c["num_features"], c["hidden_units"], activation=c["activation"]),
}


def trained_graph(shown: list, cache: Cache) -> tuple:
    """Arguments of :func:`model_graph`: the model's config, its final params and its training data."""
    exp, o = _only(shown, "a graph figure")
    problem = regression_problem(cache)
    return dict(o.config["model"]), dict(o.params), inputs(problem, exp.settings["input"])["train"], problem.y_train


def model_graph(path, config: dict, params: dict, x, y) -> None:
    """The model's computation graph, drawn by :func:`fgraph.viz.draw` with the norms of its values and
    gradients on the training set at the final params, and on each use of a param its contribution."""
    model = GRAPHS[config["name"]](config)
    fgraph.viz.draw(model.graph, path, params, {"x": x, "y": y}, dpi=plots.DPI)


#: The figures, in the order of the files the job lists.
PLOTS = {
    "ridge": Plot(filename="ridge_fits.png", draw=plots.prediction_functions,
                  args=partial(fits, title="Ridge and linear regression on 400 step features")),
    "mlp": Plot(filename="mlp_fits.png", draw=plots.prediction_functions,
                args=partial(fits, title="Multilayer perceptrons (one tanh hidden layer unless tuned)")),
    "minibatch": Plot(filename="minibatch.png", draw=plots.minibatch, args=epoch_curves),
    "regions": Plot(filename="decision_regions.png", draw=plots.decision_regions, args=regions),
    "curves": Plot(filename="learning_curves.png", draw=plots.learning_curves, args=learning_curves),
    "ridge_graph": Plot(filename="ridge_graph.png", draw=model_graph, args=trained_graph),
    "mlp_graph": Plot(filename="mlp_graph.png", draw=model_graph, args=trained_graph),
}
