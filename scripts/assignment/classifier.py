"""The softmax + NLL MLP classifier on the blobs (the optional 4.3)."""

from __future__ import annotations

import time

import attrs
import numpy as np

import models
from assignment.data import FitTime, blobs, history
from fgraph import optim, train
from jobs import Context, Experiment, LearningCurve, Outcome


@attrs.frozen
class ClassifierMetrics:
    """Mean negative log-likelihood and accuracy on the training and the test points."""

    train_nll: float
    test_nll: float
    train_accuracy: float
    test_accuracy: float


@attrs.frozen(eq=False)
class Regions:
    """The predicted class on a grid over the data (``labels[i, j]`` at ``(xx[i, j], yy[i, j])``)."""

    xx: np.ndarray
    yy: np.ndarray
    labels: np.ndarray


def decision_regions(m, params, b) -> Regions:
    """The classifier's predicted class on a 260 × 160 grid one unit beyond every point."""
    X = np.concatenate([b.X_train, b.X_test])
    xs = np.linspace(X[:, 0].min() - 1, X[:, 0].max() + 1, 260)
    ys = np.linspace(X[:, 1].min() - 1, X[:, 1].max() + 1, 160)
    xx, yy = np.meshgrid(xs, ys)
    labels = m.predict(params, np.c_[xx.ravel(), yy.ravel()]).argmax(axis=1).reshape(xx.shape)
    return Regions(xx=xx, yy=yy, labels=labels)


def run_classifier(exp: Experiment, s: dict, seed: int, context: Context) -> Outcome:
    """The MLP classifier with per-example SGD: W1, b1 ~ init_scale·N(0, 1), W2, b2 ~ N(0, 1)."""
    b = blobs(context.cache)
    m = models.mlp_classifier(b.X_train.shape[1], s["hidden_units"], b.num_classes, init_scale=s["init_scale"])
    train_data, test_data = {"x": b.X_train, "y": b.y_train}, {"x": b.X_test, "y": b.y_test}
    t0 = time.perf_counter()
    result = train.fit(m.graph, m.init(seed), train_data, optimizer=optim.sgd(s["lr"]), epochs=s["epochs"],
                       batch_size=1, seed=seed, progress=context.progress(exp.id, s["epochs"]),
                       backend=context.backend)
    train_seconds = time.perf_counter() - t0
    params = result.params
    accuracy = {k: float(np.mean(m.predict(params, d["x"]).argmax(axis=1) == d["y"]))
                for k, d in (("train", train_data), ("test", test_data))}
    metrics = ClassifierMetrics(train_nll=m.objective(params, train_data), test_nll=m.objective(params, test_data),
                                train_accuracy=accuracy["train"], test_accuracy=accuracy["test"])
    config = {"experiment": exp.title, "model": m.config, "optimizer": f"sgd(lr={s['lr']})",
              "epochs": s["epochs"], "batch_size": 1, "train_examples": len(b.y_train),
              "test_examples": len(b.y_test)}
    return Outcome(metrics=metrics, config=config, params=dict(params), timings=FitTime(train_seconds),
                   curve=LearningCurve(((exp.id, history(result.history)),), ylabel="mean NLL"),
                   figure_data=decision_regions(m, params, b))
