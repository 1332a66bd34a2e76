"""The training step an optimiser gets: the fastest this module can derive from it.

An optimiser is only ``(init, update)`` (:mod:`fgraph.optim`); the fast
paths of training live here, in one place, and give the bits of the
readable definition ``value_and_grad``, ``update``, ``apply_updates``.
They are derived from what an optimiser declares about its update:

- a fixed linear scaling of the gradient, u = s·g (``linear_scale`` s and
  no ``direction``: ``sgd``, ``scale``): the optimiser is never called.
  The program's ``value_and_step(params, batch, s)`` seeds backpropagation
  with s instead of 1, so it returns θ + s·∇J itself, as a hand-written SGD
  loop would: the learning rate folded into the backward pass, no gradient
  dict and no update dict. Its reference is ``value_and_grad(params,
  batch, s)`` followed by ``apply_updates``.
- an update that ends in a fixed linear scaling, u = s·d (``linear_scale``
  s and a ``direction`` giving d: ``momentum``, a chain ending in ``sgd``):
  the scaling is fused into the step, θ + s·d, with no update dict.
- anything else: ``value_and_grad``, ``update``, and θ + u in the same
  function.

Every step comes in two forms with the same arithmetic: :func:`fast_step`
for the fold (no validation, no object built per step, only the objective
checked with one float comparison; :class:`NonFinite` when it is not
finite) and :func:`checked_step` for the replay after a divergence, which
also checks every gradient and every new param and says which was first
to turn non-finite. Both map a carry ``(params, opt_state, running)`` and a
batch to the next carry, ``running`` being the sum of the step objectives.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from fgraph.ops import squared_norm
from fgraph.optim import apply_updates
from fgraph.program import ONE


class NonFinite(Exception):
    """Raised by a fast step whose objective is not finite."""


def _scale(optimizer) -> np.float64 | None:
    """The s of an optimiser that declares u = s·g with a constant state, else None."""
    scale = getattr(optimizer, "linear_scale", None)
    if scale is None or getattr(optimizer, "direction", None) is not None:
        return None
    return np.float64(scale)


def fast_step(program, optimizer) -> Callable:
    """``step((params, opt_state, running), batch) -> (params, opt_state, running)``:
    one step of ``optimizer`` on the objective compiled in ``program``."""
    scale = _scale(optimizer)
    if scale is not None:
        return _seeded_step(program.value_and_step, scale)
    isfinite, value_and_grad = math.isfinite, program.value_and_grad
    if getattr(optimizer, "direction", None) is not None:
        direction, factor = optimizer.direction, optimizer.linear_scale

        def scaled(carry, batch):
            params, opt_state, running = carry
            value, grads = value_and_grad(params, batch)
            if not isfinite(value):
                raise NonFinite
            d, opt_state = direction(grads, opt_state, params)
            return {k: p + factor * d[k] for k, p in params.items()}, opt_state, running + value

        return scaled
    update = optimizer.update

    def step(carry, batch):
        params, opt_state, running = carry
        value, grads = value_and_grad(params, batch)
        if not isfinite(value):
            raise NonFinite
        updates, opt_state = update(grads, opt_state, params)
        return {k: p + updates[k] for k, p in params.items()}, opt_state, running + value

    return step


def _seeded_step(value_and_step, scale) -> Callable:
    """The step of u = s·g: backpropagation seeded with s returns θ + s·∇J."""
    isfinite = math.isfinite

    def seeded(carry, batch):
        params, opt_state, running = carry
        value, params = value_and_step(params, batch, scale)
        if not isfinite(value):
            raise NonFinite
        return params, opt_state, running + value

    return seeded


def first_non_finite(arrays: Mapping) -> str | None:
    """The name of the first array holding a NaN or inf, or None.

    A sum of squares is NaN or inf whenever an entry is, so one cheap
    product per array settles the usual case; only when the sum is not
    finite (a bad entry, or finite entries beyond 1e154) are the entries
    looked at one by one.
    """
    if math.isfinite(sum(float(squared_norm(v)) for v in arrays.values())):
        return None
    for k, v in arrays.items():
        if not np.isfinite(v).all():
            return k
    return None


def _state_leaves(state, path: str = ""):
    """``(path, leaf)`` for every array or number in an optimiser state (nested dicts, tuples, lists)."""
    if isinstance(state, Mapping):
        for k, v in state.items():
            yield from _state_leaves(v, f"{path}[{k!r}]")
    elif isinstance(state, (tuple, list)):
        for i, v in enumerate(state):
            yield from _state_leaves(v, f"{path}[{i}]")
    else:
        yield path, state


def state_failure(opt_state) -> str | None:
    """Why an optimiser state cannot go on, or None: an entry that overflowed
    (adam's second moment of a gradient beyond 1e154, say) would leave its
    param frozen without a word."""
    for path, leaf in _state_leaves(opt_state):
        values = np.asarray(leaf)
        if values.dtype.kind in "fc" and not np.isfinite(values).all():  # a count, a flag or a tag always is
            return f"the optimiser's state{path} is not finite"
    return None


def step_failure(value, grads: Mapping, what: str = "gradient") -> str | None:
    """Why a step whose objective is ``value`` and whose gradients (or
    updates, ``what``) are ``grads`` cannot go on, or None: the wording of
    every DivergenceError, whichever backend found it."""
    if not math.isfinite(value):
        return f"the objective is {value}"
    bad = first_non_finite(grads)
    return None if bad is None else f"the {what} of {bad!r} is not finite"


def params_failure(new_params: Mapping) -> str | None:
    """Why the params a step made cannot go on, or None."""
    bad = first_non_finite(new_params)
    return None if bad is None else f"the update made param {bad!r} non-finite"


def checked_step(program, optimizer) -> Callable:
    """The step of :func:`fast_step`, the same arithmetic to the bit, checking
    the objective, the gradients, the new params and the optimiser's new
    state; on a non-finite value it returns a description of it instead of
    the next carry."""
    scale = _scale(optimizer)
    what = "gradient" if scale is None else "update (learning rate × gradient)"
    cotangent = ONE if scale is None else scale

    def step(carry, batch):
        params, opt_state, running = carry
        value, grads = program.value_and_grad(params, batch, cotangent)
        why = step_failure(value, grads, what)
        if why is not None:
            return why
        if scale is None:
            grads, opt_state = optimizer.update(grads, opt_state, params)
        new_params = apply_updates(params, grads)  # θ + u: with a scale, what value_and_step computes
        return params_failure(new_params) or state_failure(opt_state) or (new_params, opt_state, running + value)

    return step
