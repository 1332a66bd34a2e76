r"""Finite-difference checks of gradients: one op, or a whole graph.

Both compare the analytic gradient with central differences along random
directions (as HIPS autograd and JAX do), in float64. For a scalar function
φ, a point x and a unit direction v, with D(h) = (φ(x + hv) - φ(x - hv)) / 2h,

    analytic = ⟨∇φ(x), v⟩,    numeric = (4 D(ε/2) - D(ε)) / 3   (Richardson: error O(ε⁴)),

    error = |analytic - numeric| / max(|analytic|, |numeric|, floor),
    floor = 1e-5 · max(1, |φ(x)|).

Projections do not blow up on single near-zero entries the way per-entry
relative errors do (saturated tanh units); the floor turns the measure into
an absolute one below the noise level of central differences, which is
about 1e-16 · |φ| / ε ≈ 1e-10 |φ|. NaN or inf anywhere gives an error of
inf, so a NaN gradient can never pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import attrs
import numpy as np

from fgraph import validate
from fgraph.autodiff import backward, value_and_grad
from fgraph.graph import Node, graph, input, param

DEFAULT_TOLERANCE = 1e-4


@attrs.frozen
class GradCheckReport:
    """The result of :func:`check_grads`.

    ``errors`` maps each param to its largest error over the directions
    tried; ``ok`` is true when every error is at most ``tolerance``.
    """

    ok: bool
    max_rel_error: float
    errors: Mapping
    tolerance: float

    def __bool__(self) -> bool:
        return self.ok


def projection_error(analytic: float, numeric: float, value: float) -> float:
    """The error measure of the module docstring; inf if anything is not finite."""
    if not (math.isfinite(analytic) and math.isfinite(numeric) and math.isfinite(value)):
        return math.inf
    floor = 1e-5 * max(1.0, abs(value))
    return abs(analytic - numeric) / max(abs(analytic), abs(numeric), floor)


def _central(phi, point: dict, name: str, v, h: float) -> float:
    """(φ(x + hv) - φ(x - hv)) / 2h, x the point with ``name`` moved along v."""
    plus = phi({**point, name: point[name] + h * v})
    minus = phi({**point, name: point[name] - h * v})
    return (plus - minus) / (2 * h)


def _richardson(phi, point: dict, name: str, v, eps: float) -> float:
    """Central differences at ε and ε/2 combined to cancel the ε² term:
    (4 D(ε/2) - D(ε)) / 3 = ∂φ/∂v + O(ε⁴).

    Without it, strongly curved functions (large weights into tanh) leave a
    truncation error ε²·φ‴/6 big enough to fail a correct gradient.
    """
    return (4 * _central(phi, point, name, v, eps / 2) - _central(phi, point, name, v, eps)) / 3


def _directional_errors(phi, point: dict, gradient: dict, eps: float, rng, directions: int) -> dict:
    """Largest projection error per name of ``gradient``; ``phi(point) -> float``."""
    value = phi(point)
    errors = {}
    for name, grad in gradient.items():
        worst = 0.0
        for _ in range(directions):
            v = rng.standard_normal(np.shape(point[name]))
            v /= max(np.linalg.norm(v), 1e-300)
            with np.errstate(invalid="ignore", over="ignore"):
                numeric = _richardson(phi, point, name, v, eps)
                analytic = float(np.vdot(grad, v))
            worst = max(worst, projection_error(analytic, numeric, value))
        errors[name] = worst
    return errors


def check_grads(g, params: Mapping, data: Mapping | None = None, output: str = "objective",
                eps: float = 1e-6, tolerance: float = DEFAULT_TOLERANCE, wrt=None,
                directions: int = 3, seed: int = 0) -> GradCheckReport:
    """Compare ``value_and_grad(g, output)`` with central differences of the whole graph.

    For each param (or name in ``wrt``), ``directions`` random unit
    directions; the report holds the largest error per name. The
    assignment's ``test_ComputationGraphFunction``, without its flakiness.
    """
    value_and_grad_fn = value_and_grad(g, output, wrt)
    _, grads = value_and_grad_fn(params, data)
    program = g.programs[output]
    p = validate.params(g, params, program.param_names)
    d, _ = validate.data(g, data, program.input_names)
    point = {**p, **d}

    def phi(pt):
        return float(program.forward(pt, pt))

    with np.errstate(all="ignore"):
        errors = _directional_errors(phi, point, grads, eps, np.random.default_rng(seed), directions)
    worst = max(errors.values(), default=0.0)
    return GradCheckReport(ok=worst <= tolerance, max_rel_error=worst, errors=errors, tolerance=tolerance)


def _leaves(arrays, batched) -> tuple[list, dict, dict]:
    """Nodes for check_op's arguments: integer arrays are label inputs,
    batched float arrays data inputs, the others params."""
    flags = (batched,) * len(arrays) if isinstance(batched, bool) else tuple(batched)
    if len(flags) != len(arrays):
        raise ValueError(f"batched has {len(flags)} flags for {len(arrays)} arrays")
    nodes, params, data = [], {}, {}
    for i, (arr, flag) in enumerate(zip(arrays, flags)):
        arr = np.asarray(arr)
        name = f"arg{i}"
        per_example = arr.shape[1:] if flag else arr.shape
        if arr.dtype.kind in "iu":
            nodes.append(input(name, per_example))
            data[name] = arr
        elif flag:
            nodes.append(input(name, per_example))
            data[name] = validate.as_float_array(arr, f"argument {i}")
        else:
            nodes.append(param(name, per_example))
            params[name] = validate.as_float_array(arr, f"argument {i}")
    return nodes, params, data


def check_op(builder, *arrays, eps: float = 1e-6, batched=False, directions: int = 3, seed: int = 0) -> float:
    """Largest error between an op's VJP and central differences (the assignment's
    ``test_node_backward``).

    ``builder(*nodes) -> node`` builds the op; ``arrays`` are its argument
    values. Float arrays are differentiated, integer arrays are labels.
    ``batched`` (one flag, or one per argument) says which arrays carry a
    leading batch axis. A random cotangent u of the output's shape turns the
    op into the scalar ⟨u, op(args)⟩, checked as in :func:`check_grads`.
    """
    nodes, params, data = _leaves(arrays, batched)
    out = builder(*nodes)
    if not isinstance(out, Node):
        raise TypeError(f"the builder must return a Node, got {type(out).__name__}")
    g = graph(out=out)
    rng = np.random.default_rng(seed)
    program = g.programs["out"]
    names = [n.name for n in nodes if n.name not in g.labels]
    point = {**params, **data}
    value = program.forward(point, point)
    u = rng.standard_normal(np.shape(value))
    grads = backward(g, params, data, output="out", cotangent=u, wrt=names)

    def phi(pt):
        return float(np.vdot(u, program.forward(pt, pt)))

    with np.errstate(all="ignore"):
        errors = _directional_errors(phi, point, grads, eps, rng, directions)
    return max(errors.values(), default=0.0)
