"""The JAX backend: fgraph's own programs and rules, compiled by XLA.

Nothing here differentiates anything: the program that runs is the one
:mod:`fgraph.program` generated (forward lines, then one line per edge of
the backward pass, calling each primitive's own VJP), with every rule
*lowered* (:mod:`fgraph.backends.lowering`): the same code objects, their
``np`` bound to ``jax.numpy``, their :mod:`fgraph.kernels` to the
functional versions below. ``jax.jit`` traces that program once per batch
size; the shape checks of the checked program run while tracing, so they
cost nothing per call.

**float64.** Every call runs inside ``jax.enable_x64(True)``, a context
manager: fgraph's arrays are float64 on this backend too, and the
caller's global JAX configuration is left as it is.

What does not carry over from NumPy: JAX never warns, so ``nll`` of a
probability of exactly 0 is inf without a ``ZeroProbabilityWarning``
(``fit`` still stops with a ``DivergenceError``); XLA flushes subnormal
numbers (below 2.2e-308 in magnitude) to zero; and a user's primitive
runs here only if its rules use what ``jax.numpy`` has (no writing into
arrays: :mod:`fgraph.kernels` has what the built-in rules needed).
"""

from __future__ import annotations

import contextlib
import math
import re
import types
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
from jax import lax

from fgraph import kernels, optim
from fgraph._steps import checked_step, params_failure, state_failure, step_failure
from fgraph.backends.lowering import Lowering
from fgraph.errors import GraphError, ShapeError
from fgraph.primitive import Primitive
from fgraph.program import ONE
from fgraph.train import TrainState, epoch_permutation
from fgraph.train import _Carry as Carry  # the fold's own pieces, shared with the NumPy fold
from fgraph.train import _diverged as diverged
from fgraph.train import _Fold as Fold

# ------------------------------------------------------------- namespaces


class _Namespace(types.SimpleNamespace):
    """A module-like namespace: the attributes given, then ``base``'s."""

    def __init__(self, base, **overrides):
        super().__init__(**overrides)
        object.__setattr__(self, "_base", base)

    def __getattr__(self, name):
        return getattr(object.__getattribute__(self, "_base"), name)


def _no_errstate(**_settings):
    """JAX neither warns nor raises on floating-point errors: nothing to set."""
    return contextlib.nullcontext()


#: What a rule's ``np`` becomes: jax.numpy, with NumPy's array type names
#: meaning JAX arrays (a traced value is a ``jax.Array``).
NUMPY = _Namespace(jnp, errstate=_no_errstate, ndarray=(jax.Array, np.ndarray), generic=np.generic)

#: What a rule's ``math`` becomes: the functions that take a value that may be traced.
MATH = _Namespace(math, sqrt=jnp.sqrt, exp=jnp.exp, log=jnp.log, isfinite=jnp.isfinite, fabs=jnp.abs)


def _strided_windows(framed, size, stride):
    """:func:`fgraph.kernels.strided_windows` as kh·kw strided slices, stacked."""
    (kh, kw), (sh, sw) = size, stride
    _, H, W, _ = framed.shape
    ho, wo = (H - kh) // sh + 1, (W - kw) // sw + 1
    rows = [
        jnp.stack([framed[:, i : i + (ho - 1) * sh + 1 : sh, j : j + (wo - 1) * sw + 1 : sw] for j in range(kw)], 1)
        for i in range(kh)
    ]
    return jnp.stack(rows, 1)


def _global_norm(grads: Mapping):
    """:func:`fgraph.optim.global_norm` on traced values: the same rescaling
    when the plain sum of squares overflows, chosen by ``where``."""
    leaves = list(grads.values())
    if not leaves:
        return jnp.float64(0.0)
    total = sum(jnp.vdot(g, g) for g in leaves)
    peak = jnp.max(jnp.stack([jnp.max(jnp.abs(g), initial=0.0) for g in leaves]))
    safe = jnp.where((peak > 0) & jnp.isfinite(peak), peak, 1.0)
    rescaled = safe * jnp.sqrt(sum(jnp.vdot(g / safe, g / safe) for g in leaves))
    return jnp.where(jnp.isfinite(total), jnp.sqrt(total), jnp.where(jnp.isfinite(peak), rescaled, peak))


def _clip_to_norm(grads: Mapping, norm, max_norm: float) -> dict:
    """:func:`fgraph.optim.clip_to_norm` on traced values (a NaN norm clips nothing)."""
    factor = jnp.where(norm > max_norm, max_norm / norm, 1.0)
    return {k: factor * g for k, g in grads.items()}


#: What :mod:`fgraph.kernels` becomes: the functional form of each operation
#: that NumPy does by writing into an array.
KERNELS = types.SimpleNamespace(
    set_at=lambda a, key, values: jnp.asarray(a).at[key].set(values),
    add_at=lambda a, key, values: jnp.asarray(a).at[key].add(values),
    multiply_at=lambda a, key, x, y: jnp.asarray(a).at[key].set(x * y),
    copy=jnp.asarray,
    contiguous=jnp.asarray,
    maximum_into=jnp.maximum,
    add_into=jnp.add,
    all_positive=lambda v: True,  # it only decides whether NumPy's warnings need silencing
    strided_windows=_strided_windows,
)

#: fgraph's functions that branch on values, and what they become. With
#: KERNELS, the only code written for this backend.
FUNCTIONS = {
    **{getattr(kernels, name): f for name, f in vars(KERNELS).items()},
    optim.global_norm: _global_norm,
    optim.clip_to_norm: _clip_to_norm,
}


def _substitute(obj):
    """What lowering replaces ``obj`` with (None: keep it, or lower it when it is a function)."""
    if obj is np:
        return NUMPY
    if obj is math:
        return MATH
    if obj is kernels:
        return KERNELS
    if isinstance(obj, Primitive):  # a rule that calls another primitive's rules
        return attrs.evolve(obj, forward=lower(obj.forward), vjps=tuple(lower(v) for v in obj.vjps))
    if isinstance(obj, types.FunctionType):
        found = FUNCTIONS.get(obj)
        if found is not None:
            return found
    if isinstance(obj, np.ufunc):
        return getattr(jnp, obj.__name__)
    module = getattr(obj, "__module__", None)
    if callable(obj) and isinstance(module, str) and module.split(".")[0] in ("numpy", "jax", "jaxlib"):
        name = getattr(obj, "__name__", None)
        twin = getattr(jnp, name, None) if module.startswith("numpy") and isinstance(name, str) else None
        return obj if twin is None else twin  # a library's own function is never lowered
    return None


#: The lowering of every rule and optimiser to this backend (its memo is the cache).
lower = Lowering(_substitute)


def x64():
    """The context every call of this backend runs in: float64 arrays."""
    return jax.enable_x64(True)


# -------------------------------------------------------------- programs

_RULE = re.compile(r"([fb])(\d+)(?:_(\d+))?")


class LoweringError(TypeError):
    """A primitive's rule that cannot run on the JAX backend (it writes into
    an array, branches on an array's values, or calls what JAX has not)."""


#: What a rule written for NumPy raises when traced: a write into an array or
#: a branch on a value (TypeError), a function or keyword jax.numpy lacks
#: (AttributeError, NotImplementedError, TypeError), an argument it refuses (ValueError).
_UNTRACEABLE = (TypeError, AttributeError, NotImplementedError, ValueError, jax.errors.JAXTypeError)


def _explained(rule, node, what: str, scope: str):
    """``rule``, whose failures while tracing name the primitive and node,
    and whose operations are traced in the named scope ``scope``."""

    def traced(*args):
        try:
            with jax.named_scope(scope):  # marks what the rule computes, for _refuse_lost_writes
                return rule(*args)
        except (GraphError, ShapeError):  # fgraph's own verdicts on the rule's values, as on NumPy
            raise
        except _UNTRACEABLE as e:
            raise LoweringError(
                f"primitive {node.op.name!r} (node {node.name!r}): its {what} cannot run on the JAX backend:"
                f" {type(e).__name__}: {e}. Rules run there unchanged, with np bound to jax.numpy: they may"
                " not write into arrays (fgraph.kernels has set_at, add_at, ...), branch on an array's values"
                " nor call what jax.numpy does not have"
            ) from e

    return traced


def lower_program(program_function):
    """A checked program of :mod:`fgraph.program`, lowered, each of its rules
    wrapped so that one that cannot be traced is a :class:`LoweringError`
    naming its primitive and node, and one that would sort in place
    (:func:`_refuse_lost_writes`) is one too."""
    lowered = lower(program_function)
    namespace = lowered.__globals__
    rules = {}  # scope -> (node, what)
    for name, value in list(namespace.items()):
        match = _RULE.fullmatch(name)
        if match is None:
            continue
        node = namespace[f"n{match[2]}"]
        what = "forward rule" if match[1] == "f" else f"VJP of argument {match[3]}"
        rules[f"{_SCOPE}{name}"] = (node, what)
        namespace[name] = _explained(value, node, what, f"{_SCOPE}{name}")  # each lowering is a fresh copy

    def program(params, data, *rest):
        _refuse_lost_writes(lambda p, d: lowered(p, d, *rest), params, data, rules)
        return lowered(params, data, *rest)

    return program


#: The named scope of a rule's operations: this prefix, then the rule's name in the program.
_SCOPE = "fgraph-rule-"


#: Operations that an array method does in place on NumPy and returns as a
#: new array on JAX: ``r.sort()`` (JAX arrays lack the other in-place
#: methods, fill, put, partition, resize: calling one is an AttributeError).
_IN_PLACE_ON_NUMPY = frozenset({"sort"})


def _refuse_lost_writes(program, params, data, rules: Mapping) -> None:
    """Raise a :class:`LoweringError` if a rule sorts an array and nothing
    uses the result: on NumPy ``r.sort()`` sorts ``r`` in place, on JAX it
    returns a sorted copy and leaves ``r`` as it was, so the rule would run
    and silently compute something else. (Other unused values are left
    alone: a loop's last update of what the next round would read is one.)
    Costs one more trace per compile."""
    jaxpr = jax.make_jaxpr(program)(params, data).jaxpr
    used = {v for v in jaxpr.outvars if not isinstance(v, jax.extend.core.Literal)}
    for eqn in reversed(jaxpr.eqns):
        if eqn.effects or any(v in used for v in eqn.outvars):
            used.update(v for v in eqn.invars if not isinstance(v, jax.extend.core.Literal))
            continue
        op = eqn.params.get("name", eqn.primitive.name)
        scope = next((part for part in str(eqn.source_info.name_stack).split("/") if part in rules), None)
        if op in _IN_PLACE_ON_NUMPY and scope is not None:
            node, what = rules[scope]
            raise LoweringError(
                f"primitive {node.op.name!r} (node {node.name!r}): its {what} computes a value that nothing"
                f" uses ({op}). On NumPy that is how the in-place method ndarray.{op} changes its array; on the"
                f" JAX backend it returns a new array and leaves its own as it was, so the rule would compute"
                f" something else: use the function (r = np.{op}(r))"
            )



def _cached(program, key, make):
    """``make()``, made once per program and ``key``."""
    cache = program.backends
    found = cache.get(key)
    if found is None:
        found = cache[key] = make()
    return found


#: How many fits' compiled epochs one program keeps (one per optimiser,
#: number of examples, batch size and devices): each holds XLA executables
#: of a few MB, so a sweep over many optimisers keeps only the latest.
KEPT_FITS = 8


def _recent(program, key, make):
    """``make()``, kept in the program among the :data:`KEPT_FITS` most
    recently used under the fits' keys (the least recent is dropped)."""
    fits = program.backends.setdefault(("jax", "fits"), {})
    found = fits.pop(key, None)
    if found is None:
        found = make()
    fits[key] = found  # insertion order is recency: the most recent last
    while len(fits) > KEPT_FITS:
        del fits[next(iter(fits))]
    return found


def value_and_grad_function(program):
    """The jitted ``(params, data, cotangent, batch) -> (value, grads)`` of a
    :class:`~fgraph.program.Program`: its checked program, lowered (shape
    checks run while tracing, once per batch size)."""
    return _cached(program, ("jax", "value_and_grad"),
                   lambda: jax.jit(lower_program(program.checked_value_and_grad), static_argnums=3))


def forward_function(program):
    """The jitted ``(params, data, batch) -> values`` of a
    :class:`~fgraph.program.ForwardProgram`."""
    return _cached(program, ("jax", "forward"), lambda: jax.jit(lower_program(program.checked), static_argnums=2))


def to_numpy(tree):
    """``tree`` with every JAX array brought back as a NumPy array."""
    return jax.tree_util.tree_map(np.asarray, jax.device_get(tree))


def run_value_and_grad(program, params, data, cotangent, batch) -> tuple:
    """``(value, grads)`` as NumPy arrays, computed by XLA."""
    with x64():
        return to_numpy(value_and_grad_function(program)(params, data, cotangent, batch))


def run_forward(program, params, data, batch) -> tuple:
    """The forward program's values as NumPy arrays, computed by XLA."""
    with x64():
        return to_numpy(forward_function(program)(params, data, batch))


# ------------------------------------------------------------------- fit


def _all_finite(tree):
    """Whether every entry of every array in ``tree`` is finite (one traced boolean)."""
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves])) if leaves else jnp.bool_(True)


def _kept(ok, new, old):
    """``new`` where ``ok``, else ``old``, leaf by leaf: a fold that meets a
    non-finite value keeps the last finite state until the epoch ends."""
    return jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)


def _step_function(program, optimizer):
    """``step(params, opt_state, batch, batch_size) -> (value, grads, params', opt_state')``,
    lowered: fgraph's program for the gradients, the optimiser's own update."""
    value_and_grad = lower_program(program.checked_value_and_grad)
    update = _explained_update(lower(optimizer.update), optimizer)

    def step(params, opt_state, batch, batch_size):
        value, grads = value_and_grad(params, batch, ONE, batch_size)
        updates, new_state = update(grads, opt_state, params)
        return value, grads, {k: p + updates[k] for k, p in params.items()}, new_state

    return step


def _explained_update(update, optimizer):
    """The lowered ``update`` of ``optimizer``, whose failures while tracing name the optimiser."""

    def traced(grads, opt_state, params):
        try:
            return update(grads, opt_state, params)
        except _UNTRACEABLE as e:
            raise LoweringError(
                f"optimizer {optimizer.name!r}: its update cannot run on the JAX backend: {type(e).__name__}: {e}."
                " It runs there unchanged, with np bound to jax.numpy, inside the compiled epoch: every value of"
                " its state is traced (a step count too), so it may not branch on them nor write into arrays"
                " (jnp.where and jnp.minimum choose between values)"
            ) from e

    return traced


def _batches(data, order, start: int, n: int, B: int):
    """``(scanned, last)``: the epoch's full batches from step ``start`` on,
    stacked for ``lax.scan`` (``(steps, B, ...)``, or ``(steps, ...)``
    examples for B = 1; None when there are none), and the smaller last
    batch (None when B divides n or ``start`` is past it). ``order`` None
    keeps the stored order (one batch of all)."""
    if order is not None:
        data = {k: jnp.take(v, order, axis=0) for k, v in data.items()}
    full = n // B
    first = min(start, full)
    scanned = None
    if full > first:
        if B == 1:  # examples, without a batch axis
            scanned = {k: v[first:full] for k, v in data.items()}
        else:
            scanned = {k: v[first * B : full * B].reshape((full - first, B) + v.shape[1:]) for k, v in data.items()}
    last = {k: v[full * B :] for k, v in data.items()} if n % B and start <= full else None
    return scanned, last


def _fast_epoch(step, n: int, batch_size: int, shard):
    """The epoch as a fit runs it: ``(params, opt_state, running, healthy,
    data, order, start) -> (params, opt_state, mean, healthy)``, one
    ``lax.scan`` over the full batches from step ``start`` on (static) and
    one step for a smaller last batch; ``mean`` is the epoch's mean
    objective, ``healthy`` stays true while the sums of the objectives,
    every param and every entry of the optimiser's state are finite.
    Nothing else is checked per step, as in the NumPy fold: a NaN or inf
    gradient makes the params so, and a failed epoch is run again by
    :func:`_checked_epoch`. Everything the host
    needs is computed here: an operation on a device array outside a
    compiled function costs a dispatch of its own. Not jitted here:
    :meth:`Epochs.of` jits it alone and inside :func:`_epoch_run`."""
    size = None if batch_size == 1 else batch_size
    steps = -(-n // batch_size)

    def one(carry, batch, size):
        params, opt_state, running = carry
        value, _, new_params, new_state = step(params, opt_state, shard(batch, size), size)
        return new_params, new_state, running + value

    def epoch(params, opt_state, running, healthy, data, order, start):
        scanned, last = _batches(data, order, start, n, batch_size)
        carry = (params, opt_state, running)
        if scanned is not None:
            carry, _ = lax.scan(lambda c, batch: (one(c, batch, size), None), carry, scanned)
        if last is not None:
            carry = one(carry, last, len(next(iter(last.values()))))
        params, opt_state, running = carry
        return params, opt_state, running / steps, healthy & jnp.isfinite(running) & _all_finite((params, opt_state))

    return epoch


def _epoch_run(epoch, capacity: int, keep: bool = False):
    """Up to ``capacity`` whole epochs in one call: ``(params, opt_state,
    healthy, data, orders, count) -> (params, opt_state, means, healthy,
    kept)``, epoch i of the run visiting ``orders[i]`` (None: the stored
    order), the first ``count`` entries of ``means`` their mean objectives;
    with ``keep``, ``kept`` holds ``(params, opt_state)`` after each epoch,
    stacked along a leading axis (for what watches every epoch), else None.

    Each epoch is the same :func:`_fast_epoch` (its ``lax.scan`` over the
    batches) inside a loop whose trip count is an argument, so one
    compilation serves every ``count``: a fit pays the host's cost of a
    call (arguments, dispatch, the wait for the result) once per run of
    epochs instead of once per epoch.
    """

    def run(params, opt_state, healthy, data, orders, count):
        def body(i, carry):
            params, opt_state, healthy, means, kept = carry
            order = None if orders is None else orders[i]
            params, opt_state, mean, healthy = epoch(params, opt_state, jnp.float64(0.0), healthy, data, order, 0)
            if keep:
                kept = jax.tree_util.tree_map(lambda stack, leaf: stack.at[i].set(leaf), kept, (params, opt_state))
            return params, opt_state, healthy, means.at[i].set(mean), kept

        kept = None
        if keep:
            kept = jax.tree_util.tree_map(lambda leaf: jnp.zeros((capacity,) + jnp.shape(leaf), jnp.result_type(leaf)),
                                          (params, opt_state))
        start = (params, opt_state, healthy, jnp.zeros(capacity), kept)
        params, opt_state, healthy, means, kept = lax.fori_loop(0, count, body, start)
        return params, opt_state, means, healthy, kept

    return run


def _checked_epoch(step, n: int, batch_size: int, shard):
    """The epoch of :func:`_fast_epoch` checking every step, compiled only
    when an epoch failed: ``... -> (params, opt_state, [running, failed])``,
    ``failed`` the index of the first step whose objective, gradients, new
    params or new optimiser state were not finite (-1: none); from it on,
    the carry is kept, so the result is the last finite state."""
    size = None if batch_size == 1 else batch_size

    def one(carry, batch, k, size):
        params, opt_state, running, failed = carry
        value, grads, new_params, new_state = step(params, opt_state, shard(batch, size), size)
        ok = (failed < 0) & jnp.isfinite(value) & _all_finite(grads) & _all_finite((new_params, new_state))
        return (_kept(ok, new_params, params), _kept(ok, new_state, opt_state), jnp.where(ok, running + value, running),
                jnp.where((failed < 0) & ~ok, k, failed))

    def epoch(params, opt_state, running, data, order, start):
        scanned, last = _batches(data, order, start, n, batch_size)
        full = n // batch_size
        first = min(start, full)
        carry = (params, opt_state, running, jnp.int64(-1))
        if scanned is not None:
            carry, _ = lax.scan(lambda c, kb: (one(c, kb[1], kb[0], size), None), carry,
                                (jnp.arange(first, full), scanned))
        if last is not None:
            carry = one(carry, last, full, len(next(iter(last.values()))))
        params, opt_state, running, failed = carry
        return params, opt_state, jnp.stack([running, failed.astype(running.dtype)])

    return jax.jit(epoch, static_argnums=5)


def _sharding(devices: int | None, batch_size: int):
    """``shard(batch, size) -> batch``: the batch split over ``devices``
    devices along its batch axis (params stay replicated), or as it is."""
    if devices is None:
        return lambda batch, size: batch
    available = jax.devices()
    if isinstance(devices, bool) or not isinstance(devices, (int, np.integer)) or not 1 <= devices <= len(available):
        raise ValueError(f"devices must be an int from 1 to {len(available)} (the devices JAX sees), got {devices!r}")
    devices = int(devices)
    if batch_size % devices:
        raise ValueError(
            f"devices={devices} splits each batch over the devices: batch_size={batch_size} must be a multiple of it"
        )
    mesh = jax.sharding.Mesh(np.array(available[:devices]), ("data",))
    split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))

    def shard(batch, size):
        if size is None or size % devices:  # an example, or a last batch that does not split evenly
            return batch
        return {k: lax.with_sharding_constraint(v, split) for k, v in batch.items()}

    return shard


def _typed(leaf):
    """A leaf of an optimiser state as the jitted epoch takes it: a JAX array
    as it is (no trip through the host), a Python number as a typed array."""
    return leaf if isinstance(leaf, jax.Array) else np.asarray(leaf)


def _like(template, value):
    """``value`` (a JAX array) as the kind of leaf ``template`` is: a Python
    number for a number, else a new NumPy array."""
    if isinstance(template, np.generic):  # a NumPy scalar (np.float64 is a float too): the same type back
        return type(template)(value)
    if isinstance(template, bool):
        return bool(value)
    if isinstance(template, int):
        return int(value)
    if isinstance(template, float):
        return float(value)
    return np.array(value)


def _describe(step, params, opt_state, batch, size) -> str:
    """Why a step on ``batch`` fails, from this backend's own arithmetic, in
    the words of every DivergenceError: what :meth:`JaxFold._why` says when
    NumPy's checked step, from the same state, rounds its way past the failure."""
    value, grads, new_params, new_state = (to_numpy(t) for t in jax.jit(step, static_argnums=3)(params, opt_state,
                                                                                                 batch, size))
    return (step_failure(value, grads) or params_failure(new_params) or state_failure(new_state)
            or "a value of the step was not finite")


@attrs.frozen(eq=False)
class Epochs:
    """The jitted epochs of one (program, optimiser, examples, batch size,
    devices): ``fast``, one epoch (:func:`_fast_epoch`); ``run``, up to
    ``capacity`` epochs a call, and ``run_keeping``, up to ``kept`` epochs
    a call that also returns each one's params and optimiser state
    (:func:`_epoch_run`); and ``checked`` (:func:`_checked_epoch`).
    jax.jit traces and compiles each when it is first called: ``checked``
    only after a failure. Kept in the program's cache, so that a fit run
    again with the same optimiser compiles nothing (see :data:`KEPT_FITS`)."""

    fast: Callable
    run: Callable
    run_keeping: Callable
    checked: Callable
    capacity: int
    kept: int

    @classmethod
    def of(cls, step, n: int, batch_size: int, shard, capacity: int, kept: int) -> Epochs:
        """The epochs of ``step`` over ``n`` examples in batches of ``batch_size``."""
        epoch = _fast_epoch(step, n, batch_size, shard)
        return cls(jax.jit(epoch, static_argnums=6), jax.jit(_epoch_run(epoch, capacity)),
                   jax.jit(_epoch_run(epoch, kept, keep=True)), _checked_epoch(step, n, batch_size, shard),
                   capacity, kept)


#: The most epochs one call runs (see :func:`_epoch_run`): past a few dozen
#: the host's share of an epoch is already negligible.
MAX_EPOCHS_PER_CALL = 64
#: The most entries of the visiting orders one call takes (64 epochs of 16,384 examples).
MAX_ORDER_ENTRIES = 1 << 20
#: The most numbers of params and optimiser states one call keeps for what watches each epoch (32 MiB).
MAX_KEPT_NUMBERS = 1 << 22


def epochs_per_call(n: int, steps_per_epoch: int, check_steps: int, state_size: int = 0) -> int:
    """How many epochs one call of :func:`_epoch_run` may run: a call ends
    with a check, so it runs at most ``check_steps`` steps, its orders stay
    within :data:`MAX_ORDER_ENTRIES`, and the states it keeps (``state_size``
    numbers each, 0 when it keeps none) within :data:`MAX_KEPT_NUMBERS`."""
    kept = MAX_KEPT_NUMBERS // state_size if state_size else MAX_EPOCHS_PER_CALL
    return max(1, min(MAX_EPOCHS_PER_CALL, check_steps // steps_per_epoch, MAX_ORDER_ENTRIES // n, kept))


@attrs.frozen(eq=False)
class JaxFold(Fold):
    """A fit's fold on this backend: each epoch a jitted ``lax.scan``, up
    to 64 epochs a call unless on_epoch watches each one as it ends
    (:meth:`run_epochs`); between calls the params and the optimiser's
    state stay on the device. :meth:`state` brings them back as NumPy
    arrays, shaped like the NumPy backend's."""

    epochs: Epochs = None
    step: Callable = None
    data: Mapping = None
    host_data: Mapping = None
    template: Any = None

    def batches(self, carry: Carry) -> int:
        """The step of the epoch that ``carry`` stands at (a resumed state may be inside one)."""
        return carry.step - carry.epoch * self.steps_per_epoch

    @property
    def _shuffles(self) -> bool:
        """Whether an epoch visits the examples in its permutation (else: one batch of all, as stored)."""
        return self.batch_size < self.num_examples

    def _order(self, epoch: int):
        """The visiting order of ``epoch``, or None for one batch of all."""
        return epoch_permutation(self.num_examples, self.seed, epoch) if self._shuffles else None

    #: A check waits for the device: check rarely (a failure replays from the last check).
    check_steps = 1 << 14

    def _args(self, carry: Carry, start: int) -> tuple:
        order = self._order(carry.epoch)
        opt_state = jax.tree_util.tree_map(_typed, carry.opt_state)
        return (carry.params, opt_state, np.float64(carry.running), self.data, order, start), order

    def epoch(self, carry: Carry, start: int) -> Carry:
        """The carry after the rest of epoch ``carry.epoch``, without waiting
        for it: the device runs it while the host goes on, and
        :meth:`finite` looks at the result when ``fit`` checks."""
        (params, opt_state, running, data, order, start), _ = self._args(carry, start)
        healthy = carry.healthy if isinstance(carry.healthy, jax.Array) else np.bool_(carry.healthy)
        with x64():
            params, opt_state, mean, healthy = self.epochs.fast(params, opt_state, running, healthy, data, order, start)
        return Carry(carry.epoch + 1, params, opt_state, carry.step + self.steps_per_epoch - start, 0.0, mean, healthy)

    def epochs_per_call(self, keep: bool) -> int:
        """The most epochs :meth:`run_epochs` runs in one call (keeping each one's state, or not)."""
        return self.epochs.kept if keep else self.epochs.capacity

    def run_epochs(self, carry: Carry, count: int, keep: bool) -> tuple:
        """``(carries, healthy)`` after the ``count`` whole epochs from
        ``carry`` (which stands at the start of one), run in one call, which
        this waits for: the carry after each epoch, with its mean objective,
        and whether every objective sum, param and optimiser state stayed finite. Only with
        ``keep`` does every carry hold its params and optimiser state (NumPy
        copies); without, only the last (on the device) does."""
        orders = None
        if self._shuffles:  # the rows past ``count`` are never read
            orders = np.zeros((self.epochs_per_call(keep), self.num_examples), dtype=np.intp)
            for i in range(count):
                orders[i] = self._order(carry.epoch + i)
        opt_state = jax.tree_util.tree_map(_typed, carry.opt_state)
        run = self.epochs.run_keeping if keep else self.epochs.run
        with x64():
            params, opt_state, means, healthy, kept = run(carry.params, opt_state, np.bool_(True), self.data, orders,
                                                          np.int64(count))
            means, healthy, kept = jax.device_get((means, healthy, kept))
        carries = []
        for i in range(count):
            if keep:
                at = jax.tree_util.tree_map(lambda stack, i=i: np.array(stack[i]), kept)
            else:
                at = (params, opt_state) if i == count - 1 else (None, None)
            carries.append(Carry(carry.epoch + i + 1, *at, carry.step + (i + 1) * self.steps_per_epoch, 0.0,
                                 np.float64(means[i])))
        return carries, bool(healthy)

    def finite(self, carry: Carry) -> bool:
        """Whether every epoch up to ``carry`` had a finite objective sum,
        finite params and a finite optimiser state (waits for them)."""
        return bool(carry.healthy)

    def replay(self, verified: Carry, last_epoch: int, history: list, metrics: list) -> Carry:
        """Run the epochs from ``verified`` up to ``last_epoch`` again, checking
        every step, and raise the DivergenceError of the first that fails;
        the carry at ``last_epoch`` if none does (a sum of finite objectives
        that overflowed: not a divergence, as on NumPy)."""
        carry = verified
        while carry.epoch < last_epoch:
            start = self.batches(carry)
            args, order = self._args(carry, start)
            with x64():
                params, opt_state, status = self.epochs.checked(*args)
                running, failed = np.asarray(status)
                if failed >= 0:
                    at = Carry(carry.epoch, params, opt_state, carry.step + int(failed) - start, running, carry.mean)
                    why = self._why(params, opt_state, order, int(failed))
                    raise diverged(self.state(at, history, metrics), self.steps_per_epoch, why)
            carry = self.close(carry, (params, opt_state, running), self.steps_per_epoch - start)
            if carry.epoch <= len(history):  # the fast fold's entry for this epoch: now known on the host
                history[carry.epoch - 1] = carry.mean
        return carry

    def _why(self, params, opt_state, order, k: int) -> str:
        """Why step ``k`` of the epoch visiting ``order`` fails."""
        B, n = self.batch_size, self.num_examples
        rows = np.arange(n) if order is None else order
        if B == 1:
            batch, size = {name: v[rows[k]] for name, v in self.host_data.items()}, None
        else:
            picked = rows[k * B : (k + 1) * B]
            batch, size = {name: v[picked] for name, v in self.host_data.items()}, len(picked)
        # NumPy's checked step from the same state: its own arithmetic, so its own words (where the
        # learning rate is folded into backpropagation, an intermediate product may be what overflows).
        host = (dict(to_numpy(params)), jax.tree_util.tree_map(_like, self.template, to_numpy(opt_state)), 0.0)
        with np.errstate(all="ignore"):
            why = self.checked(host, batch)
        return why if isinstance(why, str) else _describe(self.step, params, opt_state, batch, size)

    def state(self, carry: Carry, history: list, metrics: list) -> TrainState:
        """The :class:`~fgraph.train.TrainState` at ``carry``, its arrays NumPy's."""
        host = carry._replace(
            params=dict(to_numpy(carry.params)),
            opt_state=jax.tree_util.tree_map(_like, self.template, to_numpy(carry.opt_state)),
            running=np.float64(carry.running),
        )
        self.settle(history)
        return super().state(host, history, metrics)

    def settle(self, history: list) -> None:
        """Bring the means at the end of ``history`` that are still device
        scalars to the host, each once, in fit's own list: the entries before
        them were settled when a host entry last followed them."""
        for i in range(len(history) - 1, -1, -1):
            if not isinstance(history[i], jax.Array):
                break
            history[i] = np.float64(history[i])


def _check_numeric_state(opt_state, optimizer) -> None:
    """Raise a :class:`LoweringError` naming the optimiser and the entry if
    its state holds anything but numbers: the compiled epoch carries the
    state as arrays."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(opt_state)[0]:
        if not isinstance(leaf, jax.Array) and np.asarray(leaf).dtype.kind not in "biuf":
            raise LoweringError(
                f"optimizer {optimizer.name!r}: its state holds {type(leaf).__name__} {leaf!r} at"
                f" {jax.tree_util.keystr(path) or 'its top'}; on the JAX backend the state is carried through the"
                " compiled epoch as arrays of numbers"
            )


def make_fold(program, optimizer, data: Mapping, state: TrainState, fixed: Mapping, devices) -> JaxFold:
    """The :class:`JaxFold` of a fit: ``fixed`` holds the fields every fold
    has (steps_per_epoch, seed, batch_size, num_examples, optimizer)."""
    n, batch_size = fixed["num_examples"], fixed["batch_size"]
    _check_numeric_state(state.opt_state, optimizer)
    shard = _sharding(devices, batch_size)
    spe, size = fixed["steps_per_epoch"], sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(
        (state.params, state.opt_state)))
    capacity, kept = (epochs_per_call(n, spe, JaxFold.check_steps, keeps) for keeps in (0, size))

    def make():
        step = _step_function(program, optimizer)
        return step, Epochs.of(step, n, batch_size, shard, capacity, kept)

    step, epochs = _recent(program, (optimizer, n, batch_size, devices), make)
    with x64():
        device_data = {k: jnp.asarray(v) for k, v in data.items()}
    return JaxFold(fast=None, checked=checked_step(program, optimizer), batcher=None, **fixed, epochs=epochs, step=step,
                   data=device_data, host_data=dict(data), template=state.opt_state)
