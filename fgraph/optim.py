r"""Optimisers as frozen pairs of pure functions, optax-style.

An :class:`Optimizer` is two pure functions::

    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    params = apply_updates(params, updates)           # θ ← θ + u, key by key

and nothing else: each optimiser is written once, as its ``update``.
``opt.step(grads, state, params)`` is the last two lines in one call, for
loops written by hand. Training does not call it: :func:`fgraph.train.fit`
asks a private module for the fastest step it can derive from the
optimiser (for a fixed linear scaling u = s·g, declared as
``linear_scale``, backpropagation seeded with s; otherwise ``update``
followed by θ + u), with the same bits as ``update`` + ``apply_updates``.
Adding an optimiser means writing one function that returns
``Optimizer(init, update, name=...)``.

Composition. Every optimiser is also a *gradient transformation*: whatever
its ``update`` returns can be fed to the next one as if it were a gradient.
:func:`chain` ``(t1, ..., tn)`` runs t1 on the gradients, t2 on t1's
updates, and so on, so::

    chain(clip_by_global_norm(1.0), add_weight_decay(1e-4), adam(1e-3))

clips the gradient to global norm 1, adds the L2 term 1e-4·θ and hands the
result to Adam. :func:`scale`, :func:`add_weight_decay` and
:func:`clip_by_global_norm` return gradient-like updates; end a chain with
:func:`sgd`, :func:`momentum` or :func:`adam` (or ``scale(-lr)``), which turn
them into steps.

State is plain data, so :mod:`fgraph.io` can save it as .npz + JSON: nested
``dict`` s with ``str`` keys whose leaves are NumPy arrays (or NumPy scalars,
for scalar params) and Python ints and floats. Adam's state is
``{"count": t, "mu": {name: m}, "nu": {name: v}}``, a chain's is
``{"0": state_1, "1": state_2, ...}``, a stateless transform's is ``{}``.

Everything is pure: no global state, and params, grads and state passed in
are never written to (they may be read-only arrays or NumPy scalars).
Hyperparameters are validated once, when the optimiser is built.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping

import attrs
import numpy as np

__all__ = [
    "Optimizer", "adam", "add_weight_decay", "apply_updates", "chain",
    "clip_by_global_norm", "global_norm", "momentum", "scale", "sgd", "trace",
]


@attrs.frozen(eq=False, repr=False)
class Optimizer:
    """A gradient transformation: a frozen pair of pure functions, and a name.

    - ``init(params) -> state``
    - ``update(grads, state, params) -> (updates, state)``
    - ``name``: how it was built, e.g. ``"adam(lr=0.001, ...)"``, for logs
      and run records.
    - ``linear_scale``: s when ``update`` ends in a fixed linear scaling,
      u = s·d, else None; with
    - ``direction``: the ``(grads, state, params) -> (d, state)`` that gives
      d (to read, not to keep: it may be part of the new state), or None
      when d = g and the state never changes (``sgd``: s = -lr, ``scale``).

    The last two declare what ``update`` computes, so that code which can
    compute s·d more cheaply may: training folds s into backpropagation
    when d = g, and into θ + s·d otherwise. They are not a second
    implementation: :func:`sgd`, :func:`momentum`, :func:`scale` and
    :func:`chain` derive ``update`` from them.
    """

    init: Callable
    update: Callable
    name: str = "optimizer"
    linear_scale: float | None = None
    direction: Callable | None = None

    def step(self, grads: Mapping, state, params: Mapping):
        """One optimisation step: ``(apply_updates(params, updates), state)``
        with ``updates, state = update(grads, state, params)``."""
        updates, state = self.update(grads, state, params)
        return apply_updates(params, updates), state

    def __repr__(self) -> str:
        return f"<Optimizer {self.name}>"


def apply_updates(params: Mapping, updates: Mapping) -> dict:
    """θ ← θ + u for every param: ``{k: params[k] + updates[k]}``.

    Returns new arrays; nothing is written in place.
    """
    return {k: p + updates[k] for k, p in params.items()}


def global_norm(grads: Mapping) -> float:
    """‖g‖ = √(Σ_k Σ_i g_k,i²): the Euclidean norm of all entries of all arrays.

    When the plain sum of squares overflows although every entry is finite
    (entries beyond ~1e154), the norm is recomputed as ``s·‖g/s‖`` with
    ``s = max |g|``, so it is finite whenever every entry is; it is NaN or
    inf only when an entry is.
    """
    total = sum(float(np.vdot(g, g)) for g in grads.values())
    if math.isfinite(total):
        return math.sqrt(total)
    peak = max((float(np.max(np.abs(g))) for g in grads.values() if np.size(g)), default=0.0)
    if not math.isfinite(peak):
        return peak  # NaN or inf: report it, never hide it
    return peak * math.sqrt(sum(float(np.vdot(g / peak, g / peak)) for g in grads.values()))


def clip_to_norm(grads: Mapping, norm: float, max_norm: float) -> dict:
    """``grads`` scaled by ``max_norm / norm`` when ``norm > max_norm``, else
    the same arrays (a NaN norm clips nothing: it is passed on, never hidden)."""
    if not norm > max_norm:
        return dict(grads)
    factor = max_norm / norm
    return {k: factor * g for k, g in grads.items()}


# ------------------------------------------------------- hyperparameter checks


def _real(opt: str, arg: str, value) -> float:
    """``value`` as a finite float, else a TypeError/ValueError naming ``arg``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{opt}: {arg} must be a real number, got {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{opt}: {arg} must be finite, got {value!r}")
    return x


def _positive(opt: str, arg: str, value) -> float:
    x = _real(opt, arg, value)
    if x <= 0:
        raise ValueError(f"{opt}: {arg} must be > 0, got {value!r}")
    return x


def _nonnegative(opt: str, arg: str, value) -> float:
    x = _real(opt, arg, value)
    if x < 0:
        raise ValueError(f"{opt}: {arg} must be >= 0, got {value!r}")
    return x


def _decay(opt: str, arg: str, value) -> float:
    """A decay rate β in [0, 1): β = 1 would never forget, β > 1 diverges."""
    x = _real(opt, arg, value)
    if not 0 <= x < 1:
        raise ValueError(f"{opt}: {arg} must be in [0, 1), got {value!r}")
    return x


def _zeros_like(params: Mapping) -> dict:
    """A zero per param, float64 (or the param's own float dtype), never aliasing it."""
    out = {}
    for k, p in params.items():
        dtype = getattr(p, "dtype", None)
        out[k] = np.zeros(np.shape(p), dtype=dtype if dtype is not None and dtype.kind == "f" else np.float64)
    return out


def _empty_state(params: Mapping) -> dict:
    return {}


def _scaled(init: Callable, direction: Callable | None, factor: float, name: str) -> Optimizer:
    """The optimiser whose update is u = factor·d, with ``(d, state) =
    direction(grads, state, params)``, or d = g and the state unchanged when
    ``direction`` is None; its ``update`` is derived here from what it
    declares, so the two cannot disagree."""
    if direction is None:

        def update(grads, state, params):
            return {k: factor * g for k, g in grads.items()}, state

    else:

        def update(grads, state, params):
            d, state = direction(grads, state, params)
            return {k: factor * v for k, v in d.items()}, state

    return Optimizer(init, update, name=name, linear_scale=factor, direction=direction)


# ------------------------------------------------------------- optimisers


def sgd(lr: float) -> Optimizer:
    """Stochastic gradient descent: θ ← θ - lr·g.

    ``update`` returns u = -lr·g; the state is ``{}``. ``lr > 0``.
    """
    lr = _positive("sgd", "lr", lr)
    return _scaled(_empty_state, None, -lr, f"sgd(lr={lr!r})")


def _velocity_init(params: Mapping) -> dict:
    return {"velocity": _zeros_like(params)}


def _velocity(beta: float) -> Callable:
    """``(grads, state, params) -> (v, state)`` with v ← β·v + g; v is the state's own dict."""

    def direction(grads, state, params):
        velocity = {k: beta * v + grads[k] for k, v in state["velocity"].items()}
        return velocity, {"velocity": velocity}

    return direction


def trace(beta: float) -> Optimizer:
    """u = v with v ← β·v + g: the velocity of heavy-ball momentum.

    v starts at 0; the state is ``{"velocity": {name: v}}``; ``0 <= beta < 1``.
    """
    beta = _decay("trace", "beta", beta)
    velocity = _velocity(beta)

    def update(grads, state, params):
        v, state = velocity(grads, state, params)
        return dict(v), state  # a dict of its own: the caller may change it, the state must not

    return Optimizer(_velocity_init, update, name=f"trace(beta={beta!r})")


def momentum(lr: float, beta: float = 0.9) -> Optimizer:
    """Heavy-ball momentum (Polyak, 1964): v ← β·v + g;  θ ← θ - lr·v.

    v starts at 0, so the first step is plain SGD. ``update`` returns
    u = -lr·v (the velocity of :func:`trace`, scaled); the state is
    ``{"velocity": {name: v}}``. ``lr > 0``, ``0 <= beta < 1``.
    """
    lr = _positive("momentum", "lr", lr)
    beta = _decay("momentum", "beta", beta)
    return _scaled(_velocity_init, _velocity(beta), -lr, f"momentum(lr={lr!r}, beta={beta!r})")


def adam(lr: float = 1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam (Kingma & Ba, 2015) with bias correction; t counts steps from 1.

    ::

        m ← b1·m + (1 - b1)·g          v ← b2·v + (1 - b2)·g²
        m̂ = m / (1 - b1^t)             v̂ = v / (1 - b2^t)
        θ ← θ - lr·m̂ / (√v̂ + eps)

    computed in the paper's equivalent form (end of its section 2), which
    saves two array divisions per param: with c1 = 1 - b1^t, c2 = 1 - b2^t,
    ``θ ← θ - lr_t·m / (√v + eps_t)``, ``lr_t = lr·√c2 / c1``,
    ``eps_t = eps·√c2``. ``update`` returns u = -lr_t·m / (√v + eps_t).
    State: ``{"count": t, "mu": {name: m}, "nu": {name: v}}`` with m = v = 0
    and t = 0 at init. ``lr > 0``, ``0 <= b1, b2 < 1``, ``eps > 0``.
    """
    lr = _positive("adam", "lr", lr)
    b1 = _decay("adam", "b1", b1)
    b2 = _decay("adam", "b2", b2)
    eps = _positive("adam", "eps", eps)
    one_minus_b1, one_minus_b2 = 1.0 - b1, 1.0 - b2

    def init(params):
        return {"count": 0, "mu": _zeros_like(params), "nu": _zeros_like(params)}

    def update(grads, state, params):
        t = state["count"] + 1
        mu = {k: b1 * m + one_minus_b1 * grads[k] for k, m in state["mu"].items()}
        nu = {k: b2 * v + one_minus_b2 * (grads[k] * grads[k]) for k, v in state["nu"].items()}
        root_c2 = math.sqrt(1.0 - b2**t)  # the bias correction, folded into two scalars
        neg_lr_t, eps_t = -(lr * root_c2 / (1.0 - b1**t)), eps * root_c2
        updates = {k: neg_lr_t * (m / (np.sqrt(nu[k]) + eps_t)) for k, m in mu.items()}
        return updates, {"count": t, "mu": mu, "nu": nu}

    return Optimizer(init, update, name=f"adam(lr={lr!r}, b1={b1!r}, b2={b2!r}, eps={eps!r})")


# -------------------------------------------------------------- transforms


def scale(factor: float) -> Optimizer:
    """u = factor·g (any finite factor); the state is ``{}``.

    ``chain(..., scale(-lr))`` is SGD on whatever the chain produced.
    """
    factor = _real("scale", "factor", factor)
    return _scaled(_empty_state, None, factor, f"scale({factor!r})")


def add_weight_decay(rate: float) -> Optimizer:
    """u = g + rate·θ: the gradient of the L2 term (rate/2)·‖θ‖², added to g.

    Put it before the optimiser: ``chain(add_weight_decay(1e-4), adam(1e-3))``
    is Adam on the L2-regularised objective. The state is ``{}``; ``rate >= 0``.
    """
    rate = _nonnegative("add_weight_decay", "rate", rate)

    def update(grads, state, params):
        return {k: g + rate * params[k] for k, g in grads.items()}, state

    return Optimizer(_empty_state, update, name=f"add_weight_decay({rate!r})")


def clip_by_global_norm(max_norm: float) -> Optimizer:
    """u = g·min(1, max_norm / ‖g‖), ‖g‖ the :func:`global_norm` over every param.

    Gradients whose global norm is at most ``max_norm`` pass through
    unchanged (the same arrays); larger ones are scaled down together, which
    keeps their direction. A NaN or inf gradient is not clipped into
    something finite: it reaches the caller's divergence check. The state
    is ``{}``; ``max_norm > 0``.
    """
    max_norm = _positive("clip_by_global_norm", "max_norm", max_norm)

    def update(grads, state, params):
        return clip_to_norm(grads, global_norm(grads), max_norm), state

    return Optimizer(_empty_state, update, name=f"clip_by_global_norm({max_norm!r})")


def chain(*transforms: Optimizer) -> Optimizer:
    """Compose transforms: u = t_n(… t_2(t_1(g)) …), each one's updates the next one's grads.

    Every transform sees the same (current) params. The state is
    ``{"0": state_1, "1": state_2, ...}``. A chain whose last transform ends
    in a fixed linear scaling s (``sgd``, ``momentum``, ``scale``) ends in
    the same one, so it declares it too (see :class:`Optimizer`).
    """
    if not transforms:
        raise ValueError("chain: needs at least one transform, e.g. chain(clip_by_global_norm(1.0), adam(1e-3))")
    for i, t in enumerate(transforms):
        if not isinstance(t, Optimizer):
            raise TypeError(f"chain: transform {i} must be an Optimizer (sgd, adam, scale, ...), got {t!r}")
    # Bound once, here: the step loop then does no attribute lookups.
    inits = tuple((str(i), t.init) for i, t in enumerate(transforms))
    updates = tuple((str(i), t.update) for i, t in enumerate(transforms))
    name, last = "chain(" + ", ".join(t.name for t in transforms) + ")", transforms[-1]

    def init(params):
        return {k: f(params) for k, f in inits}

    if last.linear_scale is not None:
        direction = _chained(updates[:-1], (str(len(transforms) - 1), last.direction))
        return _scaled(init, direction, last.linear_scale, name)

    def update(grads, state, params):
        new_state = {}
        for k, f in updates:
            grads, new_state[k] = f(grads, state[k], params)
        return grads, new_state

    return Optimizer(init, update, name=name)


def _chained(head: tuple, last: tuple) -> Callable:
    """The direction of a chain: the updates ``head`` (``(key, update)``
    pairs) and then the ``last`` transform's ``(key, direction)``, its
    direction None for d = g and an unchanged state."""
    last_key, last_direction = last

    def direction(grads, state, params):
        new_state = {}
        for k, f in head:
            grads, new_state[k] = f(grads, state[k], params)
        if last_direction is None:
            new_state[last_key] = state[last_key]
        else:
            grads, new_state[last_key] = last_direction(grads, state[last_key], params)
        return grads, new_state

    return direction
