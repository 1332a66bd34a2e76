"""The gallery's figures: how each is drawn (from plain arrays) and from which outcomes.

An experiment appears in a figure by naming its key in its ``plots``; the
``args`` function of the figure turns the ``(experiment, outcome)`` pairs
of those that ran into plain arrays (in the main process), and the draw
function, a module-level function run in a worker, writes the PNG
atomically through :func:`report.plots.save`.
"""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

import fgraph  # noqa: E402
from jobs import Cache, Plot  # noqa: E402
from models.presets import CONSTRUCTORS  # noqa: E402
from report.plots import COLORS, plain_log, save  # noqa: E402

# ------------------------------------------------------------------ drawing


def learning_curves(path, panels) -> None:
    """One panel per model: the training objective of every epoch (left axis, log scale) and
    the held-out metric after every epoch (right axis), with a reference level if given.

    ``panels``: ``[(title, objective, objective_label, held_out, held_out_label, reference), ...]``
    where ``reference`` is ``(label, value)`` or None.
    """
    cols = min(len(panels), 2)
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.3 * rows), squeeze=False)
    for ax, (title, objective, objective_label, held_out, held_out_label, reference) in zip(axes.flat, panels):
        epochs = np.arange(1, len(objective) + 1)
        marker = "o" if len(epochs) == 1 else None
        ax.plot(epochs, objective, color=COLORS[0], linewidth=1.2, marker=marker, label=objective_label)
        if np.all(np.asarray(objective) > 0):
            plain_log(ax)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel(objective_label, fontsize=8, color=COLORS[0])
        right = ax.twinx()
        right.plot(epochs, held_out, color=COLORS[1], linewidth=1.2, marker=marker, label=held_out_label)
        if reference is not None:
            right.axhline(reference[1], color=COLORS[2], linestyle="--", linewidth=1.0, label=reference[0])
        right.set_ylabel(held_out_label, fontsize=8, color=COLORS[1])
        ax.set_title(textwrap.fill(title, 60), fontsize=9)
        for a in (ax, right):
            a.tick_params(labelsize=7)
        handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
        ax.legend(handles, [h.get_label() for h in handles], fontsize=7, loc="best")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    # Fixed margins: tight_layout costs about a second on twin log-scale panels.
    fig.subplots_adjust(left=0.75 / fig.get_figwidth(), right=1 - 0.75 / fig.get_figwidth(),
                        top=1 - 0.4 / fig.get_figheight(), bottom=0.5 / fig.get_figheight(), hspace=0.5, wspace=0.45)
    save(fig, path)


def confusion_matrix(path, counts, title: str) -> None:
    """The confusion matrix as a heat map, every count written in its cell (rows: true class)."""
    counts = np.asarray(counts)
    k = counts.shape[0]
    fig, ax = plt.subplots(figsize=(5.4, 4.8))
    image = ax.imshow(counts, cmap="Blues")
    threshold = counts.max() / 2
    for i in range(k):
        for j in range(k):
            if counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if counts[i, j] > threshold else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.subplots_adjust(left=0.1, right=0.97, top=0.92, bottom=0.1)
    save(fig, path)


def mosaic(kernels, per_row: int = 8) -> np.ndarray:
    """The kernels (F, C, kh, kw) laid out as one image: filter f's C channels side by side, ``per_row``
    filters to a row, in order, a one-pixel NaN gutter between tiles (drawn blank)."""
    F, C, kh, kw = kernels.shape
    cols = min(F, per_row)
    rows = -(-F // cols)
    out = np.full((rows * (kh + 1) - 1, cols * C * (kw + 1) - 1), np.nan)
    for f in range(F):
        for c in range(C):
            top, left = (f // cols) * (kh + 1), ((f % cols) * C + c) * (kw + 1)
            out[top : top + kh, left : left + kw] = kernels[f, c]
    return out


def filters(path, kernels, title: str) -> None:
    """The kernels of a first convolution layer (F, C, kh, kw) as small images, eight filters to a row
    (a filter's channels side by side), on one diverging scale symmetric about 0 (red positive, blue negative)."""
    kernels = np.asarray(kernels, dtype=float)
    image = mosaic(kernels)
    limit = float(np.nanmax(np.abs(image))) or 1.0
    height, width = image.shape
    fig, ax = plt.subplots(figsize=(0.2 * width + 1.4, 0.2 * height + 0.7))
    cmap = plt.get_cmap("RdBu_r").copy()
    cmap.set_bad("white")
    shown = ax.imshow(np.ma.masked_invalid(image), cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    fig.colorbar(shown, ax=ax, fraction=0.03, pad=0.02)
    save(fig, path)


def forecast(path, years, truth, series, title: str) -> None:
    """Yearly activity against one-step-ahead forecasts: ``series`` is ``[(label, forecasts), ...]``."""
    fig, ax = plt.subplots(figsize=(8.4, 3.8))
    ax.plot(years, truth, color="black", linewidth=1.6, marker=".", markersize=4, label="observed")
    for i, (label, values) in enumerate(series):
        ax.plot(years, values, color=COLORS[i % len(COLORS)], linewidth=1.2, label=label)
    ax.set_xlabel("year")
    ax.set_ylabel("yearly sunspot number")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save(fig, path)


# --------------------------------------------------------------- arguments


def _only(shown: list, figure: str):
    if len(shown) != 1:
        raise ValueError(f"{figure} shows one experiment; {[exp.id for exp, _ in shown]} list it in their plots")
    return shown[0]


def curve_panels(shown: list, cache: Cache) -> tuple:
    """Arguments of :func:`learning_curves`: one panel per experiment, its held-out metric beside its objective."""
    panels = []
    for exp, o in shown:
        m, objective = o.metrics, o.curve.series[0][1]
        if hasattr(m, "test_rmse"):
            held_out = ("test RMSE (sunspots)", o.figure_data.held_out, (f"AR({o.config['ar_order']}) test RMSE",
                                                                         m.ar_rmse))
        else:
            held_out = ("test accuracy", o.figure_data.held_out, None)
        panels.append((exp.label, objective, o.curve.ylabel, held_out[1], held_out[0], held_out[2]))
    return (panels,)


def confusion_args(shown: list, cache: Cache) -> tuple:
    """Arguments of :func:`confusion_matrix`: the test confusion matrix of the one model shown."""
    exp, o = _only(shown, "the confusion matrix")
    return (o.figure_data.confusion,
            f"{exp.label} on the {int(o.figure_data.confusion.sum())} test digits: accuracy "
            f"{o.metrics.test_accuracy:.3f}")


def filter_args(shown: list, cache: Cache) -> tuple:
    """Arguments of :func:`filters`: the trained first-layer kernels of the one model shown."""
    exp, o = _only(shown, "the filters figure")
    kernels = o.figure_data.first_filters
    if kernels is None:
        raise ValueError(f"experiment {exp.id!r} is shown in the filters figure but has no conv1.W")
    size = f"{kernels.shape[2]}×{kernels.shape[3]}"
    return kernels, f"{exp.label}: the {kernels.shape[0]} learned {size} kernels of conv1"


def forecast_args(shown: list, cache: Cache) -> tuple:
    """Arguments of :func:`forecast`: the test years, the truth, the network's and AR's forecasts."""
    exp, o = _only(shown, "the forecast figure")
    f, m = o.figure_data, o.metrics
    series = [(f"{exp.label} (RMSE {m.test_rmse:.2f})", f.network), (f"AR({f.ar_order}) (RMSE {m.ar_rmse:.2f})", f.ar)]
    return (f.years, f.truth, series,
            f"One-step-ahead forecasts of {int(f.years[0])}–{int(f.years[-1])} from the previous years")


def unrolled_graph(path, model: str, kwargs: dict) -> None:
    """The graph of ``model`` built with ``kwargs``, drawn by :func:`fgraph.viz.draw`: an RNN
    unrolled over its steps, its tied weights drawn once with a use per step."""
    fgraph.viz.draw(CONSTRUCTORS[model](**kwargs).graph, path)


def unrolled_args(shown: list, cache: Cache) -> tuple:
    """Arguments of :func:`unrolled_graph`: the model and constructor kwargs of the one model shown,
    narrowed to 8 hidden units so that the picture stays readable (the structure is the same)."""
    exp, _ = _only(shown, "the unrolled-graph figure")
    return exp.settings["model"], {**exp.settings["kwargs"], "hidden": 8}


#: The figures, in the order of the files the job lists.
PLOTS = {
    "curves": Plot(filename="learning_curves.png", draw=learning_curves, args=curve_panels),
    "confusion": Plot(filename="cnn_confusion.png", draw=confusion_matrix, args=confusion_args),
    "filters": Plot(filename="cnn_filters.png", draw=filters, args=filter_args),
    "forecast": Plot(filename="sunspot_forecast.png", draw=forecast, args=forecast_args),
    "unrolled": Plot(filename="rnn_graph.png", draw=unrolled_graph, args=unrolled_args),
}
