"""The derivations of 4.1 and 4.3 checked numerically: a job extra, written to results.json as "checks".

- ``formula_max_abs_diff``: the largest absolute difference between
  fgraph's VJP and the formula derived in the report, for a random
  cotangent u;
- ``op_max_rel_error``: ``fgraph.check_op`` (VJP against central differences);
- ``model``: ``fgraph.check_grads`` on the assignment's graphs with real data.

Every random value comes from one generator seeded with ``[seed, 4112]``,
drawn in a fixed order, so a seed gives the same checks bit for bit.
"""

from __future__ import annotations

import attrs
import numpy as np

import fgraph
import models
from assignment.data import blobs, regression_problem
from jobs import Cache

M, D = 4, 3  # the affine map's output and input sizes


@attrs.frozen(eq=False)
class Draws:
    """The random values the formula and op checks share (drawn in this order)."""

    W: np.ndarray
    x: np.ndarray
    b: np.ndarray
    u: np.ndarray
    A: np.ndarray
    uA: np.ndarray
    z: np.ndarray
    w: np.ndarray

    @classmethod
    def from_rng(cls, rng) -> Draws:
        W, x, b, u = rng.normal(size=(M, D)), rng.normal(size=D), rng.normal(size=M), rng.normal(size=M)
        A, uA = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
        z = rng.normal(size=4)
        return cls(W=W, x=x, b=b, u=u, A=A, uA=uA, z=z, w=rng.normal(size=D))


def _vjp(g, params: dict, output: str, cotangent, data=None) -> dict:
    return fgraph.backward(g, params, data, output=output, cotangent=cotangent)


def formula_diffs(v: Draws, label: int = 2, c: float = 1.3) -> dict:
    """max |VJP − formula| of each derivation of the report."""
    affine = fgraph.graph(y=fgraph.affine(fgraph.param("W", (M, D)), fgraph.param("x", (D,)), fgraph.param("b", (M,))))
    g = _vjp(affine, {"W": v.W, "x": v.x, "b": v.b}, "y", v.u)
    gA = _vjp(fgraph.graph(s=fgraph.tanh(fgraph.param("A", (3, 5)))), {"A": v.A}, "s", v.uA)["A"]
    gz = _vjp(fgraph.graph(p=fgraph.softmax(fgraph.param("z", (4,)))), {"z": v.z}, "p", v.u)["z"]
    p = np.exp(v.z - v.z.max())
    p /= p.sum()
    nll_of_softmax = fgraph.graph(J=fgraph.nll(fgraph.softmax(fgraph.param("z", (4,))), fgraph.input("y")))
    gnll = _vjp(nll_of_softmax, {"z": v.z}, "J", np.float64(c), {"y": np.int64(label)})["z"]
    penalty = fgraph.graph(P=fgraph.l2_norm_penalty(fgraph.param("w", (D,)), 0.7))
    gw = _vjp(penalty, {"w": v.w}, "P", np.float64(c))["w"]
    return {
        "dJ/dW = (dJ/dy) x^T": float(np.max(np.abs(g["W"] - np.outer(v.u, v.x)))),
        "dJ/dx = W^T dJ/dy": float(np.max(np.abs(g["x"] - v.W.T @ v.u))),
        "dJ/db = dJ/dy": float(np.max(np.abs(g["b"] - v.u))),
        "dJ/dA = dJ/dS * (1 - tanh(A)^2)": float(np.max(np.abs(gA - v.uA * (1 - np.tanh(v.A) ** 2)))),
        "dJ/dz = p * (u - <u, p>) (softmax)": float(np.max(np.abs(gz - p * (v.u - v.u @ p)))),
        "dJ/dz = p - onehot(y) (NLL of softmax)": float(np.max(np.abs(gnll - c * (p - np.eye(4)[label])))),
        "d(l2 |w|^2)/dw = 2 l2 w": float(np.max(np.abs(gw - c * 2 * 0.7 * v.w))),
    }


def op_errors(v: Draws, rng) -> dict:
    """``fgraph.check_op`` of every primitive the assignment uses (draws from ``rng`` in a fixed order)."""
    probs = rng.dirichlet(np.ones(4)) * 0.9 + 0.025
    op = {
        "affine": fgraph.check_op(fgraph.affine, v.W, v.x, v.b),
        "affine (batch of 5)": fgraph.check_op(fgraph.affine, v.W, rng.normal(size=(5, D)), v.b,
                                               batched=(False, True, False)),
        "tanh": fgraph.check_op(fgraph.tanh, v.A),
        "add": fgraph.check_op(fgraph.add, rng.normal(size=D), rng.normal(size=D)),
        "l2_norm_penalty": fgraph.check_op(lambda n: fgraph.l2_norm_penalty(n, 1.0), v.w),
        "vector_scalar_affine": fgraph.check_op(fgraph.vector_scalar_affine, v.x, v.w, np.float64(0.3)),
        "squared_l2_distance": fgraph.check_op(fgraph.squared_l2_distance, np.float64(0.4), np.float64(-1.1)),
        "softmax": fgraph.check_op(fgraph.softmax, v.z),
        "nll": fgraph.check_op(fgraph.nll, probs, np.int64(1)),
    }
    return {k: float(e) for k, e in op.items()}


def model_errors(seed: int, rng, cache: Cache) -> dict:
    """``fgraph.check_grads`` of the assignment's graphs on 10 of their training examples."""
    prob, bl = regression_problem(cache), blobs(cache)
    idx = rng.choice(len(prob.y_train), 10, replace=False)
    feats, y = prob.featurize(prob.x_train[idx]), prob.y_train[idx]
    cases = {
        "ridge (l2_reg 1), 10 examples": (models.ridge_regression(400, 1.0), {"x": feats, "y": y}),
        "MLP on features, 10 examples": (models.mlp_regression(400, 10, init_scale=0.1), {"x": feats, "y": y}),
        "MLP on scalar x, 10 examples": (models.mlp_regression(1, 10, init_scale=1.0),
                                         {"x": prob.x_train[idx, None], "y": y}),
        "classifier (softmax + NLL), 10 examples": (models.mlp_classifier(2, 10, 3, init_scale=0.5),
                                                    {"x": bl.X_train[:10], "y": bl.y_train[:10]}),
    }
    out = {}
    for name, (mod, data) in cases.items():
        params = mod.init(seed)
        if "ridge" in name:  # away from the all-zero start
            params = {"w": rng.normal(size=400) * 0.1, "b": np.float64(0.5)}
        report = fgraph.check_grads(mod.graph, params, data)
        out[name] = {"max_rel_error": float(report.max_rel_error), "ok": bool(report.ok)}
    return out


def gradient_checks(seed: int, cache: Cache) -> dict:
    """Every check of this module for ``seed``: formulas, primitives, whole graphs."""
    rng = np.random.default_rng([seed, 4112])
    draws = Draws.from_rng(rng)
    return {"formula_max_abs_diff": formula_diffs(draws), "op_max_rel_error": op_errors(draws, rng),
            "model": model_errors(seed, rng, cache)}
