#!/usr/bin/env python
"""Speed of one SGD training step in fgraph, against hand-written NumPy and peers.

Run from the repository root::

    python scripts/bench.py                  # consistency check, then timings (a few minutes)
    python scripts/bench.py --quick          # the same, short (< 60 s)
    python scripts/bench.py --check          # only the consistency check
    python scripts/bench.py --json out.json  # also write the results as JSON
    python scripts/bench.py --homework       # also time the whole homework, classic vs fgraph

What is measured: microseconds per SGD step (forward + backward + update) on
the workloads below, for every implementation that is installed:

- ``numpy``: hand-written NumPy forward, backward and in-place update: the floor.
- ``classic``: the assignment's mutable node-object design (scripts/classic_graph.py).
- ``fgraph-fit``: ``fgraph.train.fit``; µs/step = wall time of ``fit`` / steps.
- ``fgraph-vg``: a raw loop calling ``fgraph.value_and_grad(g)(params, batch)``
  (validates every call) and updating params with plain NumPy.
- ``fgraph-jax``: ``fit(..., backend="jax")``: each epoch one jitted
  ``lax.scan`` of fgraph's own lowered program, up to 64 epochs a call (no
  one watches between them); µs/step = the difference of a long and a short
  fit over the difference of their steps (the fixed cost of a fit call and
  the first call's compile are reported apart).
- ``torch``: PyTorch eager, float64, manual SGD update under ``no_grad``.
- ``jax-jit``: a jitted step function called once per batch.
- ``jax-scan``: one jitted ``lax.scan`` over the batches of an epoch.
- ``jax-scan-loss``: the same, also summing the steps' objectives, as
  ``fit`` must for its history: fgraph-jax's like-for-like reference.

For the compiled ones (fgraph-jax, jax-jit, jax-scan) the first call's
time over a steady epoch (tracing and compiling) is reported apart, as
``compile_s``; fgraph-jax's fit pays a fixed cost on every call, reported
as ``per_call_s``.

Workloads: A–E the assignment's models and an MNIST-sized MLP; F and G the
digits networks of ``models`` (``cnn_classifier()``, ``rnn_classifier()``
with their defaults, batch 32), whose NumPy floor is written by hand like
the others'. An implementation with no version of a workload's model (the
classic design has no convolution or recurrence) is reported as not run.

Honesty rules: every implementation starts from the same parameters, sees
the same data in the same order (``fgraph.train.epoch_permutation``; a full
batch is used as stored, since order within one batch only changes rounding)
and must end one epoch with the numpy floor's parameters to 1e-10, or it is
reported and left out of the table. Everything runs on one BLAS thread in
float64. Timings are interleaved round-robin over the implementations, after
a warm-up, and reported as the median (and min–max) of the repeats, with
ratios against numpy from the same run.
"""

from __future__ import annotations

import os

# One thread everywhere, set before NumPy (and its BLAS) is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
os.environ["JAX_PLATFORMS"] = "cpu"

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime  # noqa: E402
import functools  # noqa: E402
import importlib  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: fgraph and models live in ROOT
    sys.path.insert(0, str(ROOT))

import fgraph  # noqa: E402
import models  # noqa: E402
from fgraph import io, optim, train  # noqa: E402
from models import datasets  # noqa: E402


def _load_sibling(name: str):
    """Import ``scripts/<name>.py`` by path (scripts/ is not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


classic = _load_sibling("classic_graph")

TOLERANCE = 1e-10

# ------------------------------------------------------------------ the data


def load_regression_problem() -> dict:
    """The assignment's 1-D regression problem: x/y train (100) and test (900), featurize."""
    p = datasets.load_regression_problem()
    return {"x_train": np.asarray(p.x_train), "y_train": np.asarray(p.y_train),
            "x_test": np.asarray(p.x_test), "y_test": np.asarray(p.y_test), "featurize": p.featurize}


def load_digits() -> dict:
    """The handwritten digits' training images (1347, 1, 8, 8) in [0, 1] and their labels."""
    d = datasets.load_digits()
    return {"X_train": np.asarray(d.X_train), "y_train": np.asarray(d.y_train)}


def load_blobs() -> dict:
    """The assignment's 3-class blobs: the first 300 points train, the last 200 test."""
    b = datasets.load_blobs()
    return {"X_train": np.asarray(b.X_train), "y_train": np.asarray(b.y_train),
            "X_test": np.asarray(b.X_test), "y_test": np.asarray(b.y_test)}


# ------------------------------------------------------------- the workloads


@dataclass(frozen=True, eq=False)
class Workload:
    """One training problem: data, initial params and SGD settings.

    ``model`` is ``"ridge"``, ``"mlp"`` (tanh(W1 x + b1)·w2 + b2, square
    loss), ``"classifier"`` (W2 tanh(W1 x + b1) + b2, softmax
    cross-entropy), ``"cnn"`` (``models.cnn_classifier()``) or ``"rnn"``
    (``models.rnn_classifier()``). Objectives are the mean over the batch of
    per-example losses, plus ``l2_reg ‖w‖²`` once for ridge.
    """

    key: str
    title: str
    model: str
    X: np.ndarray
    Y: np.ndarray
    params: dict
    lr: float
    batch_size: int
    l2_reg: float = 0.0
    seed: int = 0
    network: dict = field(default_factory=dict)  # F, G: the model's config (kernel, pool, ...)

    @property
    def n(self) -> int:
        return len(self.Y)

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.n // self.batch_size)

    def initial_params(self) -> dict:
        """Fresh, writable copies of the initial params."""
        return {k: np.array(v, dtype=np.float64) for k, v in self.params.items()}


def _frozen(arrays: dict) -> dict:
    out = {}
    for k, v in arrays.items():
        v = np.array(v, dtype=np.float64)
        v.flags.writeable = False
        out[k] = v
    return out


def _mlp_params(rng, d, h, scale=0.01) -> dict:
    return _frozen({"W1": scale * rng.standard_normal((h, d)), "b1": np.zeros(h),
                    "w2": scale * rng.standard_normal(h), "b2": np.array(0.0)})


def _network(kind: str):
    """The digits network of workload F (``"cnn"``) or G (``"rnn"``), with its defaults, from the models package."""
    return models.cnn_classifier() if kind == "cnn" else models.rnn_classifier()


def make_workloads() -> dict:
    """Workloads A–G (D is two: ``D-ridge`` and ``D-mlp``), keyed by name."""
    p = load_regression_problem()
    F_train = np.ascontiguousarray(p["featurize"](p["x_train"]), dtype=np.float64)
    y_train = np.asarray(p["y_train"], dtype=np.float64)
    x_all = np.concatenate([p["x_train"], p["x_test"]])
    F_all = np.ascontiguousarray(p["featurize"](x_all), dtype=np.float64)
    y_all = np.concatenate([p["y_train"], p["y_test"]]).astype(np.float64)
    d = F_train.shape[1]

    def ridge_params(seed):
        rng = np.random.default_rng(seed)
        return _frozen({"w": 0.01 * rng.standard_normal(d), "b": np.array(0.0)})

    rng_e = np.random.default_rng(0)
    X_e = rng_e.standard_normal((1024, 784))
    y_e = rng_e.integers(0, 10, 1024)
    params_e = _frozen({
        "W1": rng_e.standard_normal((256, 784)) * np.sqrt(2.0 / (784 + 256)), "b1": np.zeros(256),
        "W2": rng_e.standard_normal((10, 256)) * np.sqrt(2.0 / (256 + 10)), "b2": np.zeros(10),
    })
    workloads = [
        Workload("A", f"A ridge, {d} features, batch 1", "ridge", F_train, y_train,
                 ridge_params(1), lr=5e-5, batch_size=1, l2_reg=1.0),
        Workload("B", f"B MLP {d} → 10 tanh → 1, batch 1", "mlp", F_train, y_train,
                 _mlp_params(np.random.default_rng(2), d, 10), lr=5e-4, batch_size=1),
        Workload("C", "C MLP 1 → 10 tanh → 1, batch 1", "mlp",
                 np.ascontiguousarray(p["x_train"], dtype=np.float64).reshape(-1, 1), y_train,
                 _mlp_params(np.random.default_rng(3), 1, 10), lr=1e-3, batch_size=1),
        Workload("D-ridge", f"D ridge, full batch n = {len(y_all)}", "ridge", F_all, y_all,
                 ridge_params(4), lr=5e-5, batch_size=len(y_all), l2_reg=1.0),
        Workload("D-mlp", f"D MLP {d} → 10 → 1, full batch n = {len(y_all)}", "mlp", F_all, y_all,
                 _mlp_params(np.random.default_rng(5), d, 10), lr=5e-4, batch_size=len(y_all)),
        Workload("E", "E MLP 784 → 256 tanh → 10, softmax CE, batch 128", "classifier", X_e, y_e,
                 params_e, lr=0.01, batch_size=128),
    ]
    digits = load_digits()
    for key, kind, title in (
        ("F", "cnn", "F digits CNN: conv 8@3×3, pool, conv 16@3×3, pool → 10, batch 32"),
        ("G", "rnn", "G digits RNN over the 8 rows, 32 tanh units → 10, batch 32"),
    ):
        m = _network(kind)
        params = _frozen(m.init(seed=7))  # the model's own initialisers, one fixed seed
        workloads.append(Workload(key, title, kind, digits["X_train"], digits["y_train"], params, lr=0.05,
                                  batch_size=32, network=m.config))
    return {w.key: w for w in workloads}


WORKLOAD_KEYS = ("A", "B", "C", "D-ridge", "D-mlp", "E", "F", "G")


def select_workloads(keys) -> list:
    """Workload keys from names or prefixes: ``"D"`` selects ``D-ridge`` and ``D-mlp``."""
    if keys is None:
        return list(WORKLOAD_KEYS)
    chosen = []
    for key in keys:
        match = [k for k in WORKLOAD_KEYS if k == key or k.startswith(f"{key}-")]
        if not match:
            raise ValueError(f"unknown workload {key!r}; known: {', '.join(WORKLOAD_KEYS)}")
        chosen += [k for k in match if k not in chosen]
    return chosen


def epoch_order(w: Workload, epoch: int):
    """The visiting order of ``epoch``, or None for a full batch (used as stored)."""
    if w.batch_size >= w.n:
        return None
    return train.epoch_permutation(w.n, w.seed, epoch)


def epoch_data(w: Workload, epoch: int):
    """``(X, Y)`` of ``epoch`` in visiting order."""
    order = epoch_order(w, epoch)
    return (w.X, w.Y) if order is None else (w.X[order], w.Y[order])


# A runner is ``run(epochs) -> params``: train from the workload's initial
# params for ``epochs`` epochs (epochs 0 .. epochs - 1) and return NumPy arrays.
# One that pays a fixed cost on every call (fgraph-jax compiles anew each
# fit) also has ``run.timed(seconds) -> Timing``: one call, whose steady
# epochs run for about ``seconds`` and are clocked apart from the rest.
Runner = Callable[[int], dict]


@dataclass(frozen=True)
class Timing:
    """One timed call: ``epochs`` steady epochs in ``steady`` seconds, and
    ``fixed`` seconds that the call cost on top of its epochs (setup,
    tracing, compiling; None where it was not clocked apart)."""

    steady: float
    epochs: int
    fixed: float | None = None


# ------------------------------------------------------ hand-written NumPy


def _np_ridge_examples(p, X, Y, w: Workload):
    """One epoch of per-example ridge SGD, in place."""
    wv, b = p["w"], float(p["b"])
    lr2, decay = 2.0 * w.lr, 1.0 - 2.0 * w.lr * w.l2_reg
    step = np.empty_like(wv)
    for x, y in zip(X, Y.tolist()):
        c = lr2 * (float(x.dot(wv)) + (b - y))  # lr · ∂loss/∂prediction, a Python float
        wv *= decay  # the penalty's gradient 2 λ w, folded into a decay
        wv -= np.multiply(x, c, out=step)
        b -= c
    p["b"] = np.array(b)


def _np_ridge_batches(p, X, Y, w: Workload):
    """One epoch of minibatch ridge SGD, in place."""
    wv, b = p["w"], float(p["b"])
    decay = 1.0 - 2.0 * w.lr * w.l2_reg
    for i in range(0, len(Y), w.batch_size):
        Xb, Yb = X[i : i + w.batch_size], Y[i : i + w.batch_size]
        r = Xb.dot(wv)
        r += b - Yb
        c = 2.0 * w.lr / len(Yb)
        wv *= decay
        wv -= c * r.dot(Xb)
        b -= c * r.sum()
    p["b"] = np.array(b)


def _np_mlp_examples(p, X, Y, w: Workload):
    """One epoch of per-example MLP-regression SGD, in place."""
    W1, b1, w2, b2 = p["W1"], p["b1"], p["w2"], float(p["b2"])
    lr2 = 2.0 * w.lr
    for x, y in zip(X, Y.tolist()):
        h = np.tanh(W1.dot(x) + b1)
        c = lr2 * (float(h.dot(w2)) + (b2 - y))  # lr · ∂loss/∂prediction
        ga = (c * w2) * (1.0 - h * h)  # lr · ∂loss/∂(W1 x + b1), with the old w2
        w2 -= c * h
        b2 -= c
        W1 -= np.multiply.outer(ga, x)
        b1 -= ga
    p["b2"] = np.array(b2)


def _np_mlp_batches(p, X, Y, w: Workload):
    """One epoch of minibatch MLP-regression SGD, in place."""
    W1, b1, w2, b2 = p["W1"], p["b1"], p["w2"], float(p["b2"])
    for i in range(0, len(Y), w.batch_size):
        Xb, Yb = X[i : i + w.batch_size], Y[i : i + w.batch_size]
        H = Xb.dot(W1.T)
        H += b1
        np.tanh(H, out=H)
        r = H.dot(w2)
        r += b2 - Yb
        g = (2.0 * w.lr / len(Yb)) * r  # lr · ∂J/∂prediction
        GA = np.multiply.outer(g, w2)
        GA *= 1.0 - H * H
        w2 -= g.dot(H)
        b2 -= g.sum()
        W1 -= GA.T.dot(Xb)
        b1 -= GA.sum(axis=0)
    p["b2"] = np.array(b2)


def _np_classifier_batches(p, X, Y, w: Workload):
    """One epoch of minibatch softmax-cross-entropy MLP SGD, in place."""
    W1, b1, W2, b2 = p["W1"], p["b1"], p["W2"], p["b2"]
    for i in range(0, len(Y), w.batch_size):
        Xb, Yb = X[i : i + w.batch_size], Y[i : i + w.batch_size]
        B = len(Yb)
        H = Xb.dot(W1.T)
        H += b1
        np.tanh(H, out=H)
        G = H.dot(W2.T)
        G += b2
        G -= G.max(axis=1, keepdims=True)
        np.exp(G, out=G)
        G /= G.sum(axis=1, keepdims=True)  # softmax
        G[np.arange(B), Yb] -= 1.0
        G *= w.lr / B  # lr · ∂J/∂logits
        GH = G.dot(W2)  # with the old W2
        GH *= 1.0 - H * H
        W2 -= G.T.dot(H)
        b2 -= G.sum(axis=0)
        W1 -= GH.T.dot(Xb)
        b1 -= GH.sum(axis=0)


# The digits networks (F, G) keep every activation as (features..., batch):
# the batch innermost, as fgraph's convolution lays images out, so that a
# window gather copies rows of W·B numbers and every layer is one matrix
# product with the examples as columns.


def _windows(framed: np.ndarray, k: int) -> np.ndarray:
    """The k × k windows (stride 1) of a C-contiguous (C, H, W, B) array, as a read-only
    (C, k, k, H - k + 1, W - k + 1, B) view: ``[c, i, j, y, x, b] = framed[c, y + i, x + j, b]``."""
    C, H, W, B = framed.shape
    sc, sy, sx, sb = framed.strides
    view = np.ndarray((C, k, k, H - k + 1, W - k + 1, B), framed.dtype, framed, 0, (sc, sy, sx, sy, sx, sb))
    view.flags.writeable = False
    return view


def _np_conv_same(a, Wm, b, k):
    """A k × k convolution with k // 2 zeros of padding of a (C, H, W, B): (z (F, H, W, B), im2col (C·k·k, H·W·B))."""
    C, H, W, B = a.shape
    pad = k // 2
    framed = np.zeros((C, H + 2 * pad, W + 2 * pad, B))
    framed[:, pad : pad + H, pad : pad + W] = a
    cols = _windows(framed, k).reshape(C * k * k, H * W * B)
    z = Wm.dot(cols)
    z += b[:, None]
    return z.reshape(-1, H, W, B), cols


def _np_conv_same_grad_input(gz, Wm, C, k):
    """∂J/∂a of :func:`_np_conv_same`: each window's gradient column added back where it was read."""
    F, H, W, B = gz.shape
    pad = k // 2
    gcols = Wm.T.dot(gz.reshape(F, -1)).reshape(C, k, k, H, W, B)
    framed = np.zeros((C, H + 2 * pad, W + 2 * pad, B))
    for i in range(k):
        for j in range(k):
            framed[:, i : i + H, j : j + W] += gcols[:, i, j]
    return framed[:, pad : pad + H, pad : pad + W]


def _np_pool_relu(z, size):
    """size × size max-pooling of z (C, H, W, B), H and W multiples of ``size``, then relu
    (max and relu commute); per offset of the window, in row-major order, the mask of the
    windows whose first maximum it holds (ties go to the first, as in fgraph's and PyTorch's
    max-pooling; where a window's maximum is <= 0 its gradient is 0 whichever offset holds it)."""
    parts = [z[:, i::size, j::size] for i in range(size) for j in range(size)]
    out = parts[0].copy()
    for part in parts[1:]:
        np.maximum(out, part, out=out)
    unclaimed = np.ones(out.shape, dtype=bool)
    masks = []
    for part in parts:
        mask = part == out
        mask &= unclaimed
        unclaimed ^= mask
        masks.append(mask)
    return np.maximum(out, 0.0, out=out), masks


def _np_pool_relu_grad(g, out, masks, size):
    """∂J/∂z of :func:`_np_pool_relu`: g to each window's first maximum where the pooled value is > 0."""
    g = g * (out > 0)
    C, H, W, B = out.shape
    gz = np.empty((C, H * size, W * size, B))
    for (i, j), mask in zip([(i, j) for i in range(size) for j in range(size)], masks):
        np.multiply(g, mask, out=gz[:, i::size, j::size])
    return gz


def _np_softmax_ce_grad(Z, labels, scale):
    """``scale`` · ∂(mean cross-entropy)/∂Z for logits Z (k, B): scale · (softmax(Z) - onehot(labels)) / B, in place."""
    B = len(labels)
    Z -= Z.max(axis=0)
    np.exp(Z, out=Z)
    Z /= Z.sum(axis=0)
    Z[labels, np.arange(B)] -= 1.0
    Z *= scale / B
    return Z


def _np_cnn_batches(p, X, Y, w: Workload):
    """One epoch of minibatch SGD of ``models.cnn_classifier``, in place.

    Stage i: conv{i} (k × k, padding k // 2) → relu → pool × pool max-pool;
    then flatten in (channel, row, column) order and ``logits``; softmax
    cross-entropy.
    """
    k, size, stages = w.network["kernel"], w.network["pool"], len(w.network["filters"])
    Wms = [p[f"conv{i}.W"].reshape(len(p[f"conv{i}.b"]), -1) for i in range(1, stages + 1)]  # views: updated in place
    bs = [p[f"conv{i}.b"] for i in range(1, stages + 1)]
    Wd, bd = p["logits.W"], p["logits.b"]
    data = np.ascontiguousarray(X.transpose(1, 2, 3, 0))  # (C, H, W, n): the batch innermost
    for i in range(0, len(Y), w.batch_size):
        labels = Y[i : i + w.batch_size]
        a, saved = data[..., i : i + w.batch_size], []
        for Wm, b in zip(Wms, bs):
            z, cols = _np_conv_same(a, Wm, b, k)
            out, masks = _np_pool_relu(z, size)
            saved.append((a.shape[0], cols, out, masks))
            a = out
        features = a.reshape(-1, len(labels))  # column b: example b's (c, y, x) in C order, as flatten gives it
        G = Wd.dot(features)
        G += bd[:, None]
        G = _np_softmax_ce_grad(G, labels, w.lr)  # lr · ∂J/∂logits
        g = Wd.T.dot(G).reshape(a.shape)  # with the old logits.W
        Wd -= G.dot(features.T)
        bd -= G.sum(axis=1)
        for stage in reversed(range(stages)):
            Wm, b, (C, cols, out, masks) = Wms[stage], bs[stage], saved[stage]
            gz = _np_pool_relu_grad(g, out, masks, size)
            if stage:  # the image itself needs no gradient
                g = _np_conv_same_grad_input(gz, Wm, C, k)  # with the old kernel
            gz = gz.reshape(len(b), -1)
            Wm -= gz.dot(cols.T)
            b -= gz.sum(axis=1)


def _np_rnn_batches(p, X, Y, w: Workload):
    """One epoch of minibatch SGD of ``models.rnn_classifier``, in place.

    The image's rows are the steps: h_t = tanh(W_x s_t + b + W_h h_{t-1}),
    h_0 = 0, logits = W h_T + c; backpropagation through time.
    """
    W_x, W_h, b, Wd, bd = p["rnn.W_x"], p["rnn.W_h"], p["rnn.b"], p["logits.W"], p["logits.b"]
    n, C, T, width = X.shape
    D, hidden = C * width, len(b)
    data = np.ascontiguousarray(X.transpose(1, 3, 2, 0).reshape(D, T, n))  # (features of a step, step, example)
    for i in range(0, len(Y), w.batch_size):
        labels = Y[i : i + w.batch_size]
        B = len(labels)
        s = data[..., i : i + w.batch_size].reshape(D, T * B)
        A = W_x.dot(s).reshape(hidden, T, B)  # every step's W_x s_t at once
        A += b[:, None, None]
        H = np.empty((hidden, T, B))  # H[:, t] = h_{t+1}
        np.tanh(A[:, 0], out=H[:, 0])  # h_0 = 0: no W_h h_0
        for t in range(1, T):
            a = A[:, t]
            a += W_h.dot(H[:, t - 1])
            np.tanh(a, out=H[:, t])
        G = Wd.dot(H[:, -1])
        G += bd[:, None]
        G = _np_softmax_ce_grad(G, labels, w.lr)
        gh = Wd.T.dot(G)
        Wd -= G.dot(H[:, -1].T)
        bd -= G.sum(axis=1)
        GA = H ** 2  # becomes lr · ∂J/∂(pre-activation) of every step: (1 - h²) ⊙ ∂J/∂h
        np.subtract(1.0, GA, out=GA)
        for t in range(T - 1, 0, -1):
            ga = GA[:, t]
            ga *= gh
            gh = W_h.T.dot(ga)  # with the old W_h
        GA[:, 0] *= gh
        steps = (T - 1) * B
        W_h -= GA[:, 1:].reshape(hidden, steps).dot(H[:, :-1].reshape(hidden, steps).T)  # Σ_t ga_t h_{t-1}ᵀ
        GA = GA.reshape(hidden, T * B)
        W_x -= GA.dot(s.T)
        b -= GA.sum(axis=1)


def make_numpy(w: Workload) -> Runner:
    """The floor: what a careful person writes by hand (in-place updates, ``x.dot(w)``)."""
    per_example = w.batch_size == 1
    epoch_fn = {
        ("ridge", True): _np_ridge_examples, ("ridge", False): _np_ridge_batches,
        ("mlp", True): _np_mlp_examples, ("mlp", False): _np_mlp_batches,
        ("classifier", False): _np_classifier_batches, ("classifier", True): _np_classifier_batches,
        ("cnn", False): _np_cnn_batches, ("cnn", True): _np_cnn_batches,
        ("rnn", False): _np_rnn_batches, ("rnn", True): _np_rnn_batches,
    }[w.model, per_example]

    def run(epochs: int) -> dict:
        p = w.initial_params()
        for epoch in range(epochs):
            X, Y = epoch_data(w, epoch)
            epoch_fn(p, X, Y, w)
        return p

    return run


# ------------------------------------------------------------------ classic


class NotApplicable(Exception):
    """Raised by ``make`` when an implementation has no version of a workload's model (reported as skipped)."""


def make_classic(w: Workload) -> Runner:
    """The assignment's design: mutable nodes, forward/backward, ``param -= lr * grad``."""
    if w.model in ("cnn", "rnn"):
        raise NotApplicable("the assignment's design has no convolution, pooling or recurrence")
    graph = {
        "ridge": lambda: classic.ridge_graph(w.l2_reg),
        "mlp": classic.mlp_regression_graph,
        "classifier": lambda: classic.mlp_classifier_graph(fused=True),
    }[w.model]()
    def order(n, epoch):
        return epoch_order(w, epoch)

    def run(epochs: int) -> dict:
        graph.set_parameters(w.params)
        classic.train_sgd(graph, w.X, w.Y, w.lr, epochs, batch_size=w.batch_size, order=order)
        return graph.get_parameters()

    return run


# ------------------------------------------------------------------- fgraph


def fgraph_graph(w: Workload):
    """The workload's model as an fgraph Graph, from the models package."""
    d = w.X.shape[-1]
    if w.model == "ridge":
        return models.ridge_regression(d, w.l2_reg).graph
    if w.model == "mlp":
        return models.mlp_regression(d, hidden_units=w.params["b1"].shape[0]).graph
    if w.model in ("cnn", "rnn"):
        return _network(w.model).graph
    m, k = w.params["W1"].shape[0], w.params["W2"].shape[0]
    return models.mlp_classifier(d, hidden_units=m, num_classes=k, fused=True).graph


def make_fgraph_fit(w: Workload) -> Runner:
    """``fgraph.train.fit`` with ``optim.sgd``; the timing is the whole fit call."""
    g = fgraph_graph(w)
    data = {"x": w.X, "y": w.Y}
    optimizer = optim.sgd(w.lr)

    def run(epochs: int) -> dict:
        result = train.fit(g, dict(w.params), data, optimizer=optimizer, epochs=epochs,
                           batch_size=w.batch_size, seed=w.seed)
        return {k: np.asarray(v) for k, v in result.params.items()}

    return run


#: The short fit of a timed fgraph-jax measurement runs this fraction of the long one's epochs.
SHORT_FIT = 8


def make_fgraph_jax(w: Workload) -> Runner:
    """``fgraph.train.fit(..., backend="jax")``: each epoch a jitted ``lax.scan``
    of fgraph's own lowered program and optimiser, several epochs a call
    unless on_epoch watches them (it does not here).

    Every fit call has a fixed cost (checks of the data, its copy to the
    device, the shape check of the first and last batch) and the first
    traces and compiles (later calls with the same optimiser reuse it), so
    the runner also has ``timed``: the steady epochs, clocked apart from
    the fixed cost.
    """
    _import_jax()
    g = fgraph_graph(w)
    data = {"x": w.X, "y": w.Y}
    optimizer = optim.sgd(w.lr)

    def run(epochs: int) -> dict:
        result = train.fit(g, dict(w.params), data, optimizer=optimizer, epochs=epochs, batch_size=w.batch_size,
                           seed=w.seed, backend="jax")
        return {k: np.asarray(v) for k, v in result.params.items()}  # fit waited for the device: nothing is queued

    long_fit = []

    def timed(seconds: float) -> Timing:
        """Two fits, of e/SHORT_FIT and e epochs (e calibrated on the first call so
        that the long one takes about ``seconds``): the steady epochs are the
        difference of the two, the fixed cost what the short one took beyond its epochs."""
        if not long_fit:
            _time_once(run, 1)  # traces and compiles
            long_fit.append(epochs_for(run, seconds, start=SHORT_FIT))
        long = long_fit[0]
        short = long // SHORT_FIT
        t_short, t_long = _time_once(run, short), _time_once(run, long)
        steady = t_long - t_short
        return Timing(steady, long - short, t_short - steady * short / (long - short))

    run.timed = timed
    return run


def make_fgraph_vg(w: Workload) -> Runner:
    """A raw loop: ``value_and_grad(g)(params, batch)`` per batch, a pure NumPy update."""
    vg = fgraph.value_and_grad(fgraph_graph(w))
    lr, B = w.lr, w.batch_size

    def run(epochs: int) -> dict:
        params = dict(w.params)
        for epoch in range(epochs):
            X, Y = epoch_data(w, epoch)
            for i in range(0, w.n, B):
                _, grads = vg(params, {"x": X[i : i + B], "y": Y[i : i + B]})
                params = {k: v - lr * grads[k] for k, v in params.items()}
        return params

    return run


# -------------------------------------------------------------------- torch


def _import_torch():
    import torch

    torch.set_num_threads(1)
    with contextlib.suppress(RuntimeError):  # only allowed before any inter-op work
        torch.set_num_interop_threads(1)
    return torch


def _torch_network_loss(w: Workload, torch):
    """The mean cross-entropy of workload F's CNN or G's RNN, in PyTorch's own layers."""
    F = torch.nn.functional
    if w.model == "cnn":
        k, size, stages = w.network["kernel"], w.network["pool"], len(w.network["filters"])

        def features(P, x):
            for i in range(1, stages + 1):
                x = F.max_pool2d(F.relu(F.conv2d(x, P[f"conv{i}.W"], P[f"conv{i}.b"], padding=k // 2)), size)
            return x.flatten(1)
    else:
        def features(P, x):
            rows = x.transpose(1, 2).flatten(2)  # (B, C, H, W) -> (B, H, C·W): one row of every channel a step
            h = torch.zeros(len(x), len(P["rnn.b"]), dtype=x.dtype)
            for t in range(rows.shape[1]):
                h = torch.tanh(F.linear(rows[:, t], P["rnn.W_x"], P["rnn.b"]) + h @ P["rnn.W_h"].T)
            return h

    def loss_fn(P, x, y):
        return F.cross_entropy(F.linear(features(P, x), P["logits.W"], P["logits.b"]), y)

    return loss_fn


def make_torch(w: Workload) -> Runner:
    """PyTorch eager in float64: autograd backward, then ``p.sub_(p.grad, alpha=lr)``."""
    torch = _import_torch()
    F = torch.nn.functional
    X, Y = torch.tensor(w.X), torch.tensor(w.Y)  # copies: the workload's arrays are read-only
    lr, B, l2 = w.lr, w.batch_size, w.l2_reg

    if w.model == "ridge":
        def loss_fn(P, x, y):
            r = x @ P["w"] + P["b"] - y
            return (r * r).mean() + l2 * P["w"].dot(P["w"])
    elif w.model == "mlp":
        def loss_fn(P, x, y):
            r = torch.tanh(F.linear(x, P["W1"], P["b1"])) @ P["w2"] + P["b2"] - y
            return (r * r).mean()
    elif w.model == "classifier":
        def loss_fn(P, x, y):
            return F.cross_entropy(F.linear(torch.tanh(F.linear(x, P["W1"], P["b1"])), P["W2"], P["b2"]), y)
    else:
        loss_fn = _torch_network_loss(w, torch)

    def run(epochs: int) -> dict:
        P = {k: torch.tensor(v).requires_grad_() for k, v in w.params.items()}
        plist = list(P.values())
        for epoch in range(epochs):
            order = epoch_order(w, epoch)
            Xe, Ye = (X, Y) if order is None else (X[torch.from_numpy(order)], Y[torch.from_numpy(order)])
            for i in range(0, w.n, B):
                loss_fn(P, Xe[i : i + B], Ye[i : i + B]).backward()
                with torch.no_grad():
                    for p in plist:
                        p.sub_(p.grad, alpha=lr)
                        p.grad = None
        return {k: v.detach().numpy().copy() for k, v in P.items()}

    return run


# ---------------------------------------------------------------------- jax


def _import_jax():
    import jax

    return jax


def _x64():
    """float64 for the hand-written JAX, as a context: JAX's global
    configuration is left as the caller set it, as fgraph's backend leaves it."""
    return _import_jax().enable_x64(True)


def _jax_network_loss(w: Workload, jax):
    """The mean cross-entropy of workload F's CNN or G's RNN, in ``jax.lax``'s own layers
    (as :func:`_torch_network_loss` writes them in PyTorch's)."""
    jnp, lax = jax.numpy, jax.lax
    if w.model == "cnn":
        k, size, stages = w.network["kernel"], w.network["pool"], len(w.network["filters"])
        window = (1, 1, size, size)

        def features(P, x):
            for i in range(1, stages + 1):
                z = lax.conv_general_dilated(x, P[f"conv{i}.W"], (1, 1), [(k // 2, k // 2)] * 2,
                                             dimension_numbers=("NCHW", "OIHW", "NCHW"))
                z = jax.nn.relu(z + P[f"conv{i}.b"][:, None, None])
                x = lax.reduce_window(z, -jnp.inf, lax.max, window, window, "VALID")
            return x.reshape(len(x), -1)
    else:
        def features(P, x):
            rows = jnp.swapaxes(x, 1, 2).reshape(x.shape[0], x.shape[2], -1)  # (B, H, C·W): a step per row
            h = jnp.zeros((x.shape[0], len(P["rnn.b"])), x.dtype)
            for t in range(rows.shape[1]):
                h = jnp.tanh(rows[:, t] @ P["rnn.W_x"].T + P["rnn.b"] + h @ P["rnn.W_h"].T)
            return h

    def loss(P, x, y):
        logp = jax.nn.log_softmax(features(P, x) @ P["logits.W"].T + P["logits.b"], axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    return loss


def _jax_loss(w: Workload):
    """The workload's objective as a pure ``loss(params, x, y)`` in jax.numpy."""
    jax = _import_jax()
    jnp = jax.numpy
    l2 = w.l2_reg
    if w.model == "ridge":
        def loss(P, x, y):
            r = x @ P["w"] + P["b"] - y
            return jnp.mean(r * r) + l2 * (P["w"] @ P["w"])
    elif w.model == "mlp":
        def loss(P, x, y):
            r = jnp.tanh(x @ P["W1"].T + P["b1"]) @ P["w2"] + P["b2"] - y
            return jnp.mean(r * r)
    elif w.model == "classifier":
        def loss(P, x, y):
            z = jnp.tanh(x @ P["W1"].T + P["b1"]) @ P["W2"].T + P["b2"]
            logp = jax.nn.log_softmax(z, axis=-1)
            return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))
    else:
        loss = _jax_network_loss(w, jax)
    return loss


def _jax_sgd_step(w: Workload):
    jax = _import_jax()
    loss, lr = _jax_loss(w), w.lr

    def step(P, x, y):
        grads = jax.grad(loss)(P, x, y)
        return jax.tree_util.tree_map(lambda p, g: p - lr * g, P, grads)

    return step


def _jax_result(P) -> dict:
    jax = _import_jax()
    jax.block_until_ready(P)
    return {k: np.array(v) for k, v in P.items()}


def _jax_data(w: Workload):
    """The workload's data as device arrays (put there once, at setup), and a jitted gather."""
    jax = _import_jax()
    with _x64():
        return jax.device_put(w.X), jax.device_put(w.Y), jax.jit(lambda a, order: a[order])


def make_jax_jit(w: Workload) -> Runner:
    """A jitted SGD step called once per batch; the batch is sliced on the device.

    The data lives on the device; each epoch gathers it in visiting order
    (one jitted call), and each step gets the epoch's arrays and the batch's
    start index, slicing inside the jitted function (the batch size is
    static: a smaller last batch has its own compiled step).
    """
    jax = _import_jax()
    sgd_step = _jax_sgd_step(w)
    X, Y, gather = _jax_data(w)
    B = w.batch_size

    @functools.partial(jax.jit, static_argnums=4)
    def step(P, Xe, Ye, i, size):
        x = jax.lax.dynamic_slice_in_dim(Xe, i, size)
        return sgd_step(P, x, jax.lax.dynamic_slice_in_dim(Ye, i, size))

    def run(epochs: int) -> dict:
        with _x64():
            P = {k: jax.numpy.asarray(v) for k, v in w.params.items()}
            for epoch in range(epochs):
                order = epoch_order(w, epoch)
                Xe, Ye = (X, Y) if order is None else (gather(X, order), gather(Y, order))
                for i in range(0, w.n, B):
                    P = step(P, Xe, Ye, i, min(B, w.n - i))
            return _jax_result(P)

    return run


def make_jax_scan(w: Workload, track_loss: bool = False) -> Runner:
    """One jitted ``lax.scan`` over the full batches of an epoch, and a last
    smaller batch (if any) stepped after it in the same function; called once per epoch.

    ``track_loss``: each step also evaluates its objective and the epoch
    returns their sum, as ``fit`` does for its history (``jax-scan-loss``):
    the like-for-like reference of fgraph-jax.
    """
    jax = _import_jax()
    sgd_step = _jax_sgd_step(w)
    loss, lr = _jax_loss(w), w.lr
    X, Y, _ = _jax_data(w)
    B = w.batch_size
    full = w.n // B

    def step(carry, x, y):
        P, total = carry
        if not track_loss:
            return sgd_step(P, x, y), total
        value, grads = jax.value_and_grad(loss)(P, x, y)
        return jax.tree_util.tree_map(lambda p, g: p - lr * g, P, grads), total + value

    @jax.jit
    def epoch_fn(P, X, Y, order):
        if order is not None:  # decided when tracing: a full batch is used as stored
            X, Y = X[order], Y[order]
        xs = (X[: full * B].reshape(full, B, *X.shape[1:]), Y[: full * B].reshape(full, B))
        carry = jax.lax.scan(lambda c, xy: (step(c, *xy), None), (P, jax.numpy.float64(0.0)), xs)[0]
        return carry if full * B == w.n else step(carry, X[full * B :], Y[full * B :])

    def run(epochs: int) -> dict:
        with _x64():
            P = {k: jax.numpy.asarray(v) for k, v in w.params.items()}
            for epoch in range(epochs):
                P, _ = epoch_fn(P, X, Y, epoch_order(w, epoch))
            return _jax_result(P)

    return run


# --------------------------------------------------------- implementations


def _module_missing(name: str) -> Callable[[], str | None]:
    def missing():
        if importlib.util.find_spec(name) is None:
            return f"{name} is not installed"
        return None

    return missing


@dataclass(frozen=True)
class Implementation:
    """A way to train a workload: ``make(workload) -> run(epochs) -> params``.

    ``missing()`` says why it cannot run here (None when it can); ``compiled``:
    its first call traces and compiles, and that time is reported apart.
    """

    name: str
    make: Callable[[Workload], Runner]
    missing: Callable[[], str | None] = field(default=lambda: None)
    compiled: bool = False  # its first call traces and compiles: that time is reported apart


IMPLEMENTATIONS = {
    impl.name: impl
    for impl in (
        Implementation("numpy", make_numpy),
        Implementation("classic", make_classic),
        Implementation("fgraph-fit", make_fgraph_fit),
        Implementation("fgraph-vg", make_fgraph_vg),
        Implementation("fgraph-jax", make_fgraph_jax, _module_missing("jax"), compiled=True),
        Implementation("torch", make_torch, _module_missing("torch")),
        Implementation("jax-jit", make_jax_jit, _module_missing("jax"), compiled=True),
        Implementation("jax-scan", make_jax_scan, _module_missing("jax"), compiled=True),
        Implementation("jax-scan-loss", lambda w: make_jax_scan(w, track_loss=True), _module_missing("jax"),
                       compiled=True),
    )
}
REFERENCE = "numpy"


def select_implementations(names) -> list:
    """Implementation names in table order, the reference (numpy) always first."""
    names = list(IMPLEMENTATIONS) if names is None else list(names)
    unknown = [n for n in names if n not in IMPLEMENTATIONS]
    if unknown:
        raise ValueError(f"unknown implementations {unknown}; known: {', '.join(IMPLEMENTATIONS)}")
    return [REFERENCE] + [n for n in IMPLEMENTATIONS if n in names and n != REFERENCE]


# ------------------------------------------------------------- consistency


def param_difference(params: dict, reference: dict) -> float:
    """Max over params and entries of ``|a - ref| / max(1, |ref|)``; inf on a key/shape mismatch."""
    if set(params) != set(reference):
        return float("inf")
    worst = 0.0
    for k, ref in reference.items():
        a = np.asarray(params[k], dtype=np.float64)
        if a.shape != ref.shape:
            return float("inf")
        diff = np.abs(a - ref) / np.maximum(1.0, np.abs(ref))
        if not np.isfinite(diff).all():
            return float("inf")
        worst = max(worst, float(diff.max()) if diff.size else 0.0)
    return worst


def _check_workload(w: Workload, runners: dict, tolerance: float) -> dict:
    """Run one epoch of every runner and compare its params with the reference's."""
    t0 = time.perf_counter()
    reference = runners[REFERENCE](1)
    seconds = {REFERENCE: time.perf_counter() - t0}  # each runner's first call: a compiled one's compiles
    report = {}
    for name, run in runners.items():
        try:
            t0 = time.perf_counter()
            diff = 0.0 if name == REFERENCE else param_difference(run(1), reference)
            seconds.setdefault(name, time.perf_counter() - t0)
        except Exception as e:  # a broken implementation is reported, not fatal
            report[name] = {"status": "error", "max_diff": None, "note": f"{type(e).__name__}: {e}"}
            continue
        ok = diff <= tolerance
        report[name] = {"status": "ok" if ok else "failed", "max_diff": diff, "first_call_s": seconds[name],
                        "note": "" if ok else f"params differ from numpy by {diff:.3g} after one epoch"}
    return report


def _make_runners(w: Workload, names, skipped: dict, report: dict | None = None) -> dict:
    """Build the runners of ``names`` for ``w``; record setup failures in ``report``."""
    runners = {}
    for name in names:
        if name in skipped:
            continue
        try:
            runners[name] = IMPLEMENTATIONS[name].make(w)
        except NotApplicable as e:
            if report is not None:
                report[name] = {"status": "skipped", "max_diff": None, "note": str(e)}
        except Exception as e:
            if report is not None:
                report[name] = {"status": "error", "max_diff": None, "note": f"setup: {type(e).__name__}: {e}"}
    return runners


def unavailable(names) -> dict:
    """``{name: reason}`` for the implementations that cannot run here."""
    return {n: r for n in names if (r := IMPLEMENTATIONS[n].missing()) is not None}


def consistency(workloads=None, implementations=None, tolerance: float = TOLERANCE) -> dict:
    """Check that every implementation ends one epoch with numpy's params.

    ``workloads``: keys or prefixes (default all, ``"D"`` = both D's);
    ``implementations``: names (default all; numpy is always included).
    Returns ``{workload: {implementation: {"status", "max_diff", "note"}}}``
    (and ``"first_call_s"``, the seconds of that one-epoch call, where it
    ran) with status ``"ok"``, ``"failed"`` (differs by more than ``tolerance``),
    ``"error"`` (raised) or ``"skipped"`` (not installed / not written yet).
    """
    keys = select_workloads(workloads)
    names = select_implementations(implementations)
    skipped = unavailable(names)
    all_workloads = make_workloads()
    result = {}
    for key in keys:
        w = all_workloads[key]
        report = {n: {"status": "skipped", "max_diff": None, "note": r} for n, r in skipped.items()}
        runners = _make_runners(w, names, skipped, report)
        report.update(_check_workload(w, runners, tolerance))
        result[key] = {n: report[n] for n in names if n in report}
    return result


# ------------------------------------------------------------------- timing


def _time_once(run: Runner, epochs: int) -> float:
    t0 = time.perf_counter()
    run(epochs)
    return time.perf_counter() - t0


def measure(run: Runner, epochs: int | None, target: float) -> Timing:
    """One measurement: ``epochs`` epochs in one call, timed whole, or, for a
    runner with its own clock, its steady epochs for about ``target`` seconds."""
    timed = getattr(run, "timed", None)
    return Timing(_time_once(run, epochs), epochs) if timed is None else timed(target)


def epochs_for(run: Runner, target: float, start: int = 1) -> int:
    """Epochs (at least ``start``) that one call of ``run`` takes about ``target`` seconds
    to train: calls of ``start``, 4·start, ... epochs until one takes a quarter of it."""
    epochs, elapsed = start, _time_once(run, start)
    while elapsed < target / 4 and epochs < 1_000_000:
        epochs *= 4
        elapsed = _time_once(run, epochs)
    return max(start, round(epochs * target / max(elapsed, 1e-9)))


def calibrate(run: Runner, target: float) -> int | None:
    """Epochs per measurement so that one takes about ``target`` seconds (also a warm-up).

    None for a runner with its own clock, which calibrates itself.
    """
    return None if getattr(run, "timed", None) is not None else epochs_for(run, target)


def summarize(samples: list) -> dict:
    """Median, min, max and quartiles of a list of µs/step samples."""
    q1, _, q3 = statistics.quantiles(samples, n=4) if len(samples) > 1 else (samples[0],) * 3
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "q1": q1, "q3": q3, "samples": samples}


def time_workload(w: Workload, runners: dict, repeats: int, target: float, first_calls: dict | None = None) -> dict:
    """µs per step of every runner: calibrated, then ``repeats`` interleaved rounds.

    Each round runs every implementation once, in an order rotated by one
    per round, so slow drift of the machine touches all of them alike.
    ``first_calls`` gives the seconds of each runner's first one-epoch call
    (the consistency check's); for a compiled implementation, ``compile_s``
    is that call's time over one steady epoch. ``per_call_s`` is the fixed
    cost of every call, for a runner with its own clock (None otherwise).
    """
    names = list(runners)
    epochs = {n: calibrate(runners[n], target) for n in names}
    samples, fixed = {n: [] for n in names}, {n: [] for n in names}
    counted = {n: [] for n in names}
    for r in range(repeats):
        for n in names[r % len(names):] + names[: r % len(names)]:
            timing = measure(runners[n], epochs[n], target)
            samples[n].append(1e6 * timing.steady / (timing.epochs * w.steps_per_epoch))
            counted[n].append(timing.epochs)
            if timing.fixed is not None:
                fixed[n].append(timing.fixed)
    result = {}
    for n in names:
        result[n] = summarize(samples[n])
        result[n]["epochs_per_sample"] = statistics.median(counted[n])
        result[n]["per_call_s"] = statistics.median(fixed[n]) if fixed[n] else None
        first = (first_calls or {}).get(n)
        compiled = n in IMPLEMENTATIONS and IMPLEMENTATIONS[n].compiled and first is not None
        result[n]["compile_s"] = first - 1e-6 * result[n]["median"] * w.steps_per_epoch if compiled else None
    ref = result.get(REFERENCE)
    for n in names:
        result[n]["ratio"] = result[n]["median"] / ref["median"] if ref else None
    return result


# -------------------------------------------------------------- the machine


def machine_info() -> dict:
    """CPU model, cores, date, and the versions of Python and the libraries in play."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = io.library_versions()  # the run records' own list; the peers below
    for name in ("torch", "jax"):
        if importlib.util.find_spec(name) is not None:
            with contextlib.suppress(Exception):
                versions[name] = importlib.import_module(name).__version__
    commit = None
    with contextlib.suppress(Exception):
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "blas_threads": 1,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "versions": versions,
        "fgraph_commit": commit,
    }


# ------------------------------------------------------------------- output


def _fmt(x: float) -> str:
    """3 significant digits, no exponent for the sizes we meet."""
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


LEGEND = {
    "numpy": "hand-written NumPy, in-place updates (the floor)",
    "classic": "the assignment's mutable node-object design (scripts/classic_graph.py)",
    "fgraph-fit": "`fgraph.train.fit` with `optim.sgd`, whole call / steps",
    "fgraph-vg": "`fgraph.value_and_grad` per batch (validates every call) + a NumPy update",
    "torch": "PyTorch eager, float64, autograd + `p.sub_(p.grad, alpha=lr)`",
    "fgraph-jax": "`fgraph.train.fit(..., backend=\"jax\")`, each epoch one jitted `lax.scan` of fgraph's"
                  " lowered program, up to 64 epochs a call; (long fit − short fit) / their difference in steps"
                  " (compile and a call's fixed cost apart)",
    "jax-jit": "a jitted step per batch, data on the device",
    "jax-scan": "one jitted `lax.scan` per epoch",
    "jax-scan-loss": "the same, also summing each step's objective (what `fit` needs for its history)",
}


#: The issue's targets per step, as (implementation, reference, largest ratio of their medians,
#: the workloads it applies to: None for all); a limit of None shows the ratio with no target.
TARGETS = (
    ("fgraph-fit", "numpy", 1.5, None),
    ("fgraph-fit", "torch", 1.0, None),
    ("fgraph-jax", "jax-scan", 1.2, ("A", "B", "C")),
    ("fgraph-jax", "jax-scan", 1.1, ("D-ridge", "D-mlp", "E")),
    ("fgraph-jax", "jax-scan", None, ("F", "G")),
    ("fgraph-jax", "jax-scan-loss", None, None),
)


def _peer_ratios(timings: dict, workloads: dict) -> list:
    """Lines giving fgraph's medians over its references' (numpy, torch, jax-scan), with the targets, where both ran."""
    lines = []
    for key, t in timings.items():
        parts = [f"{a} / {b} = {t[a]['median'] / t[b]['median']:.2f}"
                 + (" (no target)" if limit is None else f" (target ≤ {limit:g})")
                 for a, b, limit, keys in TARGETS if a in t and b in t and (keys is None or key in keys)]
        if parts:
            lines.append(f"- {key}: " + "; ".join(parts))
    return ["", "fgraph against the floor, PyTorch and hand-written JAX (ratios of medians, same run):", ""] + lines \
        if lines else []


def _compile_table(timings: dict) -> list:
    """Lines of a table of the compiled implementations' first-call and per-call costs, in seconds."""
    names = [n for n in IMPLEMENTATIONS if any(t.get(n, {}).get("compile_s") is not None for t in timings.values())]
    if not names:
        return []
    lines = ["", "Compiling (s): a compiled implementation's first call (one epoch) minus one steady epoch;"
             " after the slash, what every later call of fgraph-jax's fit costs on top of its epochs (the"
             " compiled epoch is kept for the same program, optimiser and batches: checks and setup only):", "",
             "| workload | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for key, t in timings.items():
        cells = []
        for n in names:
            c = t.get(n, {})
            cell = "–" if c.get("compile_s") is None else f"{c['compile_s']:.2f}"
            cells.append(cell + ("" if c.get("per_call_s") is None else f" / {c['per_call_s']:.2f}"))
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return lines


def _load_text(load) -> str:
    """The 1-minute load average before and after the run, as a sentence (empty if unknown)."""
    if not load:
        return ""
    return (f" Load average (1 min) {load['before'][0]:.2f} before, {load['after'][0]:.2f} after,"
            f" on {os.cpu_count()} cores.")


def markdown(report: dict) -> str:
    """The report as Markdown: the table, the spread, notes, machine and versions."""
    names = report["implementations"]
    timings, workloads = report["timings"], report["workloads"]
    m = report["machine"]
    lines = [
        f"µs per SGD step (forward + backward + update), median of {report['settings']['repeats']}"
        " interleaved repeats; in parentheses the ratio to hand-written NumPy in the same run.",
        "",
        "| workload | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for key, t in timings.items():
        cells = [f"{_fmt(t[n]['median'])} ({t[n]['ratio']:.2f}×)" if n in t else "–" for n in names]
        lines.append(f"| {workloads[key]['title']} | " + " | ".join(cells) + " |")
    lines += ["", "Spread (min–max µs/step over the repeats):", "",
              "| workload | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for key, t in timings.items():
        cells = [f"{_fmt(t[n]['min'])}–{_fmt(t[n]['max'])}" if n in t else "–" for n in names]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines += _compile_table(timings)
    lines += _peer_ratios(timings, workloads)
    lines += ["", "Implementations:", ""] + [f"- {n}: {LEGEND[n]}" for n in names if n in LEGEND]
    lines.append("- every one visits the examples in `fgraph.train.epoch_permutation` order; a full batch"
                 " (D) is used as stored (its order only changes rounding), as `fit` does")
    notes = [f"- {n}: skipped: {reason}" for n, reason in report["skipped"].items()]
    for key, checks in report["consistency"].items():
        for n, c in checks.items():
            if c["status"] in ("failed", "error"):
                notes.append(f"- {n} on {key}: {c['status']}, excluded: {c['note']}")
            elif c["status"] == "skipped" and n not in report["skipped"]:
                notes.append(f"- {n} on {key}: not run: {c['note']}")
    if notes:
        lines += ["", "Notes:", ""] + notes
    v = m["versions"]
    lines += [
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), one BLAS thread; {m['date']}."
        + _load_text(report.get("load_average")),
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items())
        + (f"; fgraph commit {m['fgraph_commit']}" if m.get("fgraph_commit") else "") + ".",
    ]
    hw = report.get("homework")
    if hw:
        lines += ["", "Whole homework (the assignment's settings):", ""]
        lines.append(f"- classic design: {hw['classic_seconds']:.1f} s"
                     + (f" (epochs scaled by {hw['scale']})" if hw["scale"] != 1 else ""))
        for jobs, seconds in hw["fgraph_seconds"].items():
            lines.append(f"- fgraph (`scripts/homework.py --jobs {jobs}`, {jobs} worker process"
                         f"{'es' if int(jobs) > 1 else ''}): {seconds:.1f} s;"
                         f" classic / fgraph = {hw['classic_seconds'] / seconds:.2f}×")
        if hw["fgraph_note"]:
            lines.append(f"- fgraph (`scripts/homework.py`): {hw['fgraph_note']}")
    return "\n".join(lines)


def write_json_atomic(path: Path, obj) -> None:
    """Write ``obj`` as JSON to exactly ``path``, atomically (fgraph.io.atomic_write)."""
    with io.atomic_write(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, allow_nan=True)
        f.write("\n")


# ---------------------------------------------------------------- homework


def time_homework(quick: bool) -> dict:
    """Wall time of the whole homework in the classic design (one process, as
    the assignment runs it), and of scripts/homework.py with one worker
    process (the same cores as the classic run) and with its default two.

    In ``--quick`` mode the classic epochs are scaled down to 2% and
    scripts/homework.py (whose settings are fixed) is not run.
    """
    p, b = load_regression_problem(), load_blobs()
    scale = 0.02 if quick else 1.0
    t0 = time.perf_counter()
    results = classic.homework(p["x_train"], p["y_train"], p["x_test"], p["y_test"],
                               b["X_train"], b["y_train"], b["X_test"], b["y_test"], scale=scale)
    out = {"scale": scale, "classic_seconds": time.perf_counter() - t0, "classic": results,
           "fgraph_seconds": {}, "fgraph_note": None}
    if quick:
        out["fgraph_note"] = "not run with --quick (its settings are the assignment's, fixed)"
        return out
    for jobs in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, str(HERE / "homework.py"), "--out", str(Path(tmp) / "report"),
                                   "--jobs", str(jobs)], cwd=ROOT, env=dict(os.environ), capture_output=True, text=True)
            elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            out["fgraph_note"] = f"scripts/homework.py failed (exit {proc.returncode}): {proc.stderr[-300:]}"
            return out
        out["fgraph_seconds"][jobs] = elapsed
    return out


# -------------------------------------------------------------------- main


def run_bench(workload_keys, names, repeats: int, target: float, log=print) -> dict:
    """Consistency check and timings of every workload; the report as a dict."""
    names = select_implementations(names)
    skipped = unavailable(names)
    all_workloads = make_workloads()
    report = {"implementations": [n for n in names if n not in skipped], "skipped": skipped,
              "settings": {"repeats": repeats, "target_seconds": target, "tolerance": TOLERANCE},
              "workloads": {}, "consistency": {}, "timings": {}}
    load_before = os.getloadavg()  # other processes share the cores: every timing is read against this
    for key in select_workloads(workload_keys):
        w = all_workloads[key]
        report["workloads"][key] = {"title": w.title, "n": w.n, "batch_size": w.batch_size,
                                    "steps_per_epoch": w.steps_per_epoch, "lr": w.lr}
        log(f"[{key}] setting up {', '.join(n for n in names if n not in skipped)}", file=sys.stderr)
        checks = {}
        runners = _make_runners(w, names, skipped, checks)
        checks.update(_check_workload(w, runners, TOLERANCE))
        report["consistency"][key] = checks
        passing = {n: run for n, run in runners.items() if checks[n]["status"] == "ok"}
        if REFERENCE not in passing:
            log(f"[{key}] the numpy reference failed; no timings", file=sys.stderr)
            continue
        log(f"[{key}] timing {len(passing)} implementations × {repeats} repeats", file=sys.stderr)
        first_calls = {n: checks[n]["first_call_s"] for n in passing}
        report["timings"][key] = time_workload(w, passing, repeats, target, first_calls)
    report["load_average"] = {"before": list(load_before), "after": list(os.getloadavg())}
    return report


def _positive(kind: type) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` greater than 0."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'} greater than 0,"
                                             f" got {text!r}")
        return value

    return parse


def _check_writable(path: Path) -> None:
    """Raise ValueError unless a JSON file can be written at ``path`` (checked before the run)."""
    if path.exists() and not path.is_file():
        raise ValueError(f"--json {path}: it exists and is not a regular file")
    folder = path.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise ValueError(f"--json {path}: {folder} is not a folder this process can write into")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short run (< 60 s)")
    parser.add_argument("--check", action="store_true", help="only the consistency check")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the report as JSON")
    parser.add_argument("--homework", action="store_true",
                        help="also time the whole homework: classic design vs scripts/homework.py")
    parser.add_argument("--workloads", help="comma-separated workloads (A,B,C,D,D-ridge,D-mlp,E,F,G)")
    parser.add_argument("--implementations", help=f"comma-separated, from {','.join(IMPLEMENTATIONS)}")
    parser.add_argument("--repeats", type=_positive(int), help="interleaved repeats (default 11, quick 3)")
    parser.add_argument("--target", type=_positive(float), help="seconds per measurement (default 0.15, quick 0.03)")
    args = parser.parse_args(argv)
    workload_keys = args.workloads.split(",") if args.workloads else None
    names = args.implementations.split(",") if args.implementations else None
    try:  # every argument checked before minutes of measuring, not after
        select_workloads(workload_keys)
        select_implementations(names)
        if args.json is not None:
            _check_writable(args.json)
    except ValueError as e:
        parser.error(str(e))

    limits = contextlib.nullcontext()
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(1)
    with limits:
        if args.check:
            result = consistency(workload_keys, names)
            bad = 0
            for key, checks in result.items():
                for n, c in checks.items():
                    diff = "" if c["max_diff"] is None else f" max diff {c['max_diff']:.2e}"
                    print(f"{key:8} {n:11} {c['status']:8}{diff} {c['note']}".rstrip())
                    bad += c["status"] in ("failed", "error")
            if args.json:
                write_json_atomic(args.json, {"machine": machine_info(), "consistency": result})
            return 1 if bad else 0
        repeats = args.repeats or (3 if args.quick else 11)
        target = args.target or (0.03 if args.quick else 0.15)
        report = run_bench(workload_keys, names, repeats, target)
        if args.homework:
            print("[H] timing the whole homework", file=sys.stderr)
            report["homework"] = time_homework(args.quick)
        report["machine"] = machine_info()
    print(markdown(report))
    if args.json:
        write_json_atomic(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
