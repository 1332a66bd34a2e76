"""The report's figures, drawn with matplotlib's Agg backend and written atomically.

Every function takes plain arrays (no fgraph objects) and a path, draws one
figure and writes it as PNG through :func:`fgraph.io.atomic_write` (a
temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator  # noqa: E402

from fgraph.io import atomic_write  # noqa: E402

DPI = 130
COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive")


def save(fig, path) -> None:
    """Write ``fig`` as a PNG to ``path`` atomically (no metadata that changes between runs)."""
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)


def plain_log(ax, axis: str = "y", subs=(1.0, 2.0, 5.0)) -> None:
    """Log scale with plain tick labels (0.01, 0.1, 1): the default ones are mathtext, slow to draw.

    ``subs``: the ticks within each decade (just ``(1.0,)`` for an axis
    spanning many decades, whose labels would otherwise overlap).
    """
    getattr(ax, f"set_{axis}scale")("log")
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(LogLocator(base=10, subs=subs, numticks=12))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_locator(NullLocator())  # hundreds of minor tick objects cost most of a plot's time


def prediction_functions(path, x, fits, target, x_train, y_train, title: str) -> None:
    """Prediction functions over [0, 1) with the target and the training data (the assignment's plot).

    ``fits``: ``[(label, predictions at x), ...]``; ``target``: the noiseless
    target at ``x`` (the Bayes-optimal prediction).
    """
    fig, ax = plt.subplots(figsize=(8.4, 4.6))
    ax.scatter(x_train, y_train, s=14, color="0.35", zorder=3, label="training data")
    ax.plot(x, target, color="black", linewidth=1.6, label="target (Bayes optimal)")
    for i, (label, pred) in enumerate(fits):
        ax.plot(x, pred, color=COLORS[i % len(COLORS)], linewidth=1.2, label=label)
    ax.set_xlim(0, 1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save(fig, path)


def learning_curves(path, runs) -> None:
    """One panel per run: the mean training objective of every epoch, log scale.

    ``runs``: ``[(title, [(label, history), ...], ylabel), ...]``; a panel
    with several series gets a legend.
    """
    n = len(runs)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.9 * cols, 2.6 * rows), squeeze=False)
    for ax, (title, series, ylabel) in zip(axes.flat, runs):
        positive = True
        for i, (label, history) in enumerate(series):
            h = np.asarray(history, dtype=float)
            positive &= bool(np.all(h > 0))
            ax.plot(np.arange(1, len(h) + 1), h, linewidth=1.0, color=COLORS[i % len(COLORS)], label=label,
                    marker="o" if len(h) == 1 else None)
        if positive:
            plain_log(ax)
        if len(series) > 1:
            ax.legend(fontsize=6.5)
        ax.set_title(textwrap.fill(title, 36), fontsize=8)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    # Fixed margins: tight_layout costs a second on a grid of log-scale panels.
    fig.subplots_adjust(left=0.6 / fig.get_figwidth(), right=0.99, top=1 - 0.35 / fig.get_figheight(),
                        bottom=0.5 / fig.get_figheight(), hspace=0.6, wspace=0.38)
    save(fig, path)


def minibatch(path, batch_sizes, seconds_per_epoch, speedup, mse_curves, budget=None) -> None:
    """Minibatch ridge: time per epoch and speed-up (left), training MSE against wall time (right).

    ``mse_curves``: ``{batch size: (seconds after each epoch, training MSE after each epoch)}``;
    ``budget``: the equal-wall-time budget in seconds, drawn as a vertical line.
    """
    fig, (ax1, ax3) = plt.subplots(1, 2, figsize=(10, 4))
    pos = np.arange(len(batch_sizes))
    ax1.bar(pos, np.asarray(seconds_per_epoch) * 1e3, color="tab:blue", alpha=0.8)
    ax1.set_xticks(pos, [str(b) for b in batch_sizes])
    ax1.set_xlabel("batch size")
    ax1.set_ylabel("milliseconds per epoch", color="tab:blue")
    ax2 = ax1.twinx()
    ax2.plot(pos, speedup, color="tab:red", marker="o")
    for p, s in zip(pos, speedup):
        ax2.annotate(f"{s:.1f}×", (p, s), textcoords="offset points", xytext=(0, 6), ha="center",
                     fontsize=8, color="tab:red")
    ax2.set_ylabel("speed-up over batch size 1 (per epoch)", color="tab:red")
    ax2.set_ylim(0, max(speedup) * 1.2)
    ax1.set_title("time per epoch and speed-up")
    for i, b in enumerate(batch_sizes):
        t, mse = mse_curves[b]
        ax3.plot(t, mse, color=COLORS[i % len(COLORS)], linewidth=1.1, label=f"batch {b}")
    if budget is not None:
        ax3.axvline(budget, color="0.4", linestyle="--", linewidth=1, label="equal-time budget")
    plain_log(ax3, "x", subs=(1.0,))
    plain_log(ax3, "y")
    ax3.set_xlabel("wall time (s)")
    ax3.set_ylabel("training MSE")
    ax3.set_title("training MSE against wall time")
    ax3.legend(fontsize=8)
    ax3.grid(alpha=0.3)
    fig.tight_layout()
    save(fig, path)


def decision_regions(path, xx, yy, grid_labels, X_train, y_train, X_test, y_test, title: str) -> None:
    """The classifier's predicted class over a grid, with the training (faint) and test points."""
    k = int(max(grid_labels.max(), y_train.max(), y_test.max())) + 1
    colors = COLORS[:k]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    ax.contourf(xx, yy, grid_labels, levels=np.arange(k + 1) - 0.5, cmap=ListedColormap(colors), alpha=0.22)
    for c in range(k):
        ax.scatter(*X_train[y_train == c].T, s=8, color=colors[c], alpha=0.35, marker=".")
        ax.scatter(*X_test[y_test == c].T, s=22, color=colors[c], edgecolor="black", linewidth=0.5,
                   label=f"test, class {c}")
    ax.set_xlim(xx.min(), xx.max())
    ax.set_ylim(yy.min(), yy.max())
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    save(fig, path)
