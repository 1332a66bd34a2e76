"""Hypothesis strategies and assertions for property-testing gradients.

For users who add a primitive and want to test it the way fgraph tests its
own, in a few lines::

    from hypothesis import given
    from fgraph.testing import arrays, shapes, assert_grads_match

    @given(arrays(shapes(max_dims=2)))
    def test_cube(a):
        assert_grads_match(lambda x: fgraph.apply(cube, x), a)

:func:`assert_grads_match` checks the op on one example and on a batch, so
a forward rule that ignores the batch axis or a VJP of the wrong shape
fails too, with a message that says which.

This module imports hypothesis; ``import fgraph`` does not import it.
"""

from __future__ import annotations

import numpy as np
from hypothesis import currently_in_test_context, reject
from hypothesis import strategies as st
from hypothesis.control import current_build_context
from hypothesis.errors import UnsatisfiedAssumption
from hypothesis.extra import numpy as hnp

import fgraph
from fgraph import check
from fgraph.check import DEFAULT_TOLERANCE
from fgraph.errors import GraphError, ShapeError


def shapes(min_dims: int = 0, max_dims: int = 2, min_side: int = 1, max_side: int = 4) -> st.SearchStrategy:
    """Array shapes with ``min_dims..max_dims`` axes of ``min_side..max_side`` entries."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def away_from(value: float, low: float, high: float, margin: float) -> st.SearchStrategy:
    """Floats in [low, high] at least ``margin`` away from ``value`` (a kink)."""
    below = st.floats(low, value - margin) if low <= value - margin else st.nothing()
    above = st.floats(value + margin, high) if value + margin <= high else st.nothing()
    return below | above


def arrays(shape, low: float = -2.0, high: float = 2.0, elements: st.SearchStrategy | None = None) -> st.SearchStrategy:
    """Well-conditioned float64 arrays: finite entries in ``[low, high]``.

    ``shape`` is a tuple or a strategy of shapes; ``elements`` overrides the
    entries (e.g. :func:`away_from` to avoid a kink).
    """
    if elements is None:
        elements = st.floats(low, high, allow_nan=False, allow_infinity=False)
    return hnp.arrays(np.float64, shape, elements=elements)


def labels(num_classes: int, shape=()) -> st.SearchStrategy:
    """Integer class labels in ``[0, num_classes)`` of the given shape."""
    return hnp.arrays(np.int64, shape, elements=st.integers(0, num_classes - 1))


def batch_sizes(max_size: int = 4) -> st.SearchStrategy:
    """Batch sizes 1..max_size (a batch of one included on purpose)."""
    return st.integers(1, max_size)


def _flags(batched, count: int) -> tuple:
    """One bool per array, from one flag or a sequence of them."""
    flags = (batched,) * count if isinstance(batched, bool) else tuple(batched)
    if len(flags) != count or not all(isinstance(f, (bool, np.bool_)) for f in flags):
        raise ValueError(f"batched must be one bool or one bool per array ({count} arrays), got {batched!r}")
    return tuple(bool(f) for f in flags)


def _builds(builder, arrays_, flags) -> bool:
    """Whether the builder accepts these arguments with these batch flags
    (an op may refuse a batch axis on some arguments: the weights of affine)."""
    try:
        builder(*check._leaves(arrays_, flags)[0])
    except (ShapeError, GraphError):
        return False
    return True


def _stack(arr: np.ndarray, size: int) -> np.ndarray:
    """``size`` copies of ``arr`` on a new leading axis, float ones scaled by
    1, 1 + 1/16, 1 - 1/16, …: distinct examples (an op that mixes them up
    shows it), the sign of every entry kept (no kink at 0 crossed)."""
    if arr.dtype.kind in "iu":
        return np.stack([arr] * size)
    factors = [1 + (k + 1) // 2 * (-1) ** (k + 1) / 16 for k in range(size)]
    return np.stack([arr * f for f in factors])


def _batch_of(builder, arrays_, size: int):
    """Arguments with a batch of ``size`` examples built from unbatched
    ``arrays_``, and their flags: every argument that may carry the batch
    axis gets one (label arrays with the others); None if none may."""
    labels_ = [a.dtype.kind in "iu" for a in arrays_]
    floats = [i for i, is_label in enumerate(labels_) if not is_label]

    def flags_for(chosen):
        return tuple(is_label or i in chosen for i, is_label in enumerate(labels_))

    def batch(chosen):
        flags = flags_for(chosen)
        return [_stack(a, size) if f else a for a, f in zip(arrays_, flags)], flags

    if floats and _builds(builder, *batch(set(floats))):
        return batch(set(floats))
    allowed = {i for i in floats if _builds(builder, *batch({i}))}
    if len(allowed) > 1 and not _builds(builder, *batch(allowed)):
        allowed = {min(allowed)}
    return batch(allowed) if allowed else None


def _example(arrays_, flags, b: int) -> list:
    """Example ``b`` of the batched arrays, with the unbatched ones."""
    return [a[b] if f else a for a, f in zip(arrays_, flags)]


def _value(builder, arrays_, flags):
    """(output node, value) of the op on these arguments."""
    nodes, params, data = check._leaves(arrays_, flags)
    g = fgraph.graph(out=builder(*nodes))
    return g.outputs["out"], np.asarray(fgraph.forward(g, params, data)["out"])


def _check_batch_values(builder, arrays_, flags, where: str) -> None:
    """The batched value has the batch axis and equals the examples' values stacked."""
    size = next(np.shape(a)[0] for a, f in zip(arrays_, flags) if f)
    out, value = _value(builder, arrays_, flags)
    expected = ((size,) if out.batched else ()) + out.shape
    assert value.shape == expected, (
        f"the op ignores the batch axis: on {where} its value has shape {value.shape}, expected {expected}"
        f" (per-example shape {out.shape}{', with the batch axis' if out.batched else ''})"
    )
    if not out.batched:  # a reduction over the batch (a loss, a sum): nothing to stack
        return
    for b in range(size):
        example = _example(arrays_, flags, b)
        single = _value(builder, example, (False,) * len(flags))[1]
        if not _close(value[b], single):
            again = _value(builder, example, (False,) * len(flags))[1]
            if not _close(again, single):  # not the batch's fault: the same input gives other values
                raise AssertionError(
                    f"the op's forward is not a function of its arguments: on {where}, example {b} alone gives"
                    f" {single!r}, then {again!r} (a rule that reads a clock, a global random generator or"
                    " other state cannot be checked, or trained reproducibly)"
                )
            raise AssertionError(
                f"the op mixes up the examples of a batch: on {where}, example {b} of the batched value"
                f" is {value[b]!r}, but that example alone gives {single!r}"
            )


def _close(value, expected) -> bool:
    """Whether ``value`` equals ``expected`` up to the rounding of another order of summation."""
    return np.allclose(value, expected, rtol=1e-10, atol=1e-12 * max(1.0, float(np.abs(expected).max(initial=0))))


def _check_op(builder, arrays_, flags, tolerance: float, eps: float, where: str) -> float:
    """check_op's error, asserted to be within ``tolerance``.

    A point where central differences resolve nothing (the op's values are
    coarse or vary from call to call, or a kink lies within the step) tests
    nothing: a point hypothesis generated is rejected, so that it draws
    another (and reports the test unsatisfiable if no point can be
    checked); an explicit ``@example``, or a direct call, is a failure that
    says so."""
    try:
        error = check.check_op(builder, *arrays_, batched=flags, eps=eps)
    except check.InconclusiveCheckError as err:
        if currently_in_test_context() and not getattr(current_build_context(), "is_final", True):
            reject()  # a generated point: draw another (an explicit @example, or the replay of a failure, fails)
        raise AssertionError(f"on {where}: {err}") from None
    assert error <= tolerance, (
        f"VJP and central differences disagree on {where}: error {error:.3g} > {tolerance:g}"
        f" for argument shapes {[np.shape(a) for a in arrays_]} (batched={list(flags)})"
    )
    return error


def _run(step, where: str):
    """``step()``, with any error other than a failed assertion reported
    as one that says where it happened."""
    try:
        return step()
    except (AssertionError, UnsatisfiedAssumption):  # a rejected point is hypothesis's, not a finding
        raise
    except Exception as err:  # noqa: BLE001 - any error of a user's rule is a finding to report
        raise AssertionError(f"the op fails on {where}: {type(err).__name__}: {err}") from err


def assert_grads_match(builder, *arrays_, batched=False, tolerance: float = DEFAULT_TOLERANCE,
                       eps: float = 1e-5, batch_size: int | None = 3) -> float:
    """Assert that the op built by ``builder`` is right one example at a time
    and on a batch; return the largest error (:func:`fgraph.check.check_op`).

    ``batched`` (one flag, or one per array) says which arrays carry a
    leading batch axis, as in :func:`~fgraph.check.check_op`. Both ways of
    calling the op are checked:

    - one example: the arrays as given, or, for batched ones, their first
      example; the VJPs must match central differences;
    - a batch: the batched arrays as given, or, when none is batched, a batch
      of ``batch_size`` examples made of scaled copies of every array that may
      carry a batch axis (labels repeated). The value must have the batch
      axis and equal the examples' values stacked (unless the op reduces
      the batch, as losses do), every VJP must return its argument's shape,
      and the VJPs must match central differences.

    A failure is an ``AssertionError`` that names the problem: a VJP that
    disagrees with central differences, a point where central differences
    resolve nothing (inside a hypothesis test, rejected instead), or, on
    the batch, a forward rule that ignores the batch axis or mixes up the
    examples, a VJP of the wrong shape, or any error a rule raises.
    ``batch_size=None`` leaves out the batch that would be made from
    unbatched arrays.
    """
    arrays_ = tuple(np.asarray(a) for a in arrays_)
    flags = _flags(batched, len(arrays_))
    if any(flags):
        single, batch = _example(arrays_, flags, 0), (arrays_, flags)
    else:
        single = arrays_
        batch = None if batch_size is None else _batch_of(builder, arrays_, batch_size)
    error = _check_op(builder, single, (False,) * len(arrays_), tolerance, eps, "one example")
    if batch is not None:
        where = f"a batch of {np.shape(next(a for a, f in zip(*batch) if f))[0]}"
        _run(lambda: _check_batch_values(builder, *batch, where), where)
        error = max(error, _run(lambda: _check_op(builder, *batch, tolerance, eps, where), where))
    return error


# ------------------------------------------------------------- random graphs

# relu is left out: a random pre-activation can sit at its kink, where
# central differences are meaningless.
_UNARY = ("tanh", "sigmoid", "scale", "softmax", "log_softmax")
_BINARY = ("add", "sub", "mul")


@st.composite
def graphs(draw, max_depth: int = 4, max_width: int = 4, max_batch: int = 4):
    """Random graphs of primitives with their params and data.

    Returns ``(graph, params, data)``: an MLP-like chain from a data input
    ``x`` through affine maps, element-wise ops (some of them reusing a
    param, so shared params occur), ending in a loss (squared distance,
    softmax cross-entropy or a mean) named ``objective``. Data carries a
    batch axis of 1..max_batch examples or none.
    """
    width = draw(st.integers(1, max_width))
    batch = draw(st.none() | st.integers(1, max_batch))
    lead = () if batch is None else (batch,)
    x = fgraph.input("x", (width,))
    params, values = {}, {}

    def new_param(shape):
        name = f"p{len(params)}"
        params[name] = fgraph.param(name, shape)
        values[name] = draw(arrays(shape, -1.0, 1.0))
        return params[name]

    h = x
    for _ in range(draw(st.integers(1, max_depth))):
        kind = draw(st.sampled_from(("affine",) + _UNARY + _BINARY))
        if kind == "affine":
            units = draw(st.integers(1, max_width))
            h = fgraph.affine(new_param((units, h.shape[0])), h, new_param((units,)))
        elif kind in _BINARY:
            other = draw(st.sampled_from(list(params.values()))) if params and draw(st.booleans()) else None
            if other is None or other.shape != h.shape:
                other = new_param(h.shape)
            h = getattr(fgraph, kind)(h, other)
        elif kind == "scale":
            h = fgraph.scale(h, draw(st.floats(-2, 2)))
        else:
            h = getattr(fgraph, kind)(h)
    data = {"x": draw(arrays(lead + (width,), -1.0, 1.0))}
    loss = draw(st.sampled_from(("squared_l2_distance", "softmax_cross_entropy", "mean")))
    if loss == "squared_l2_distance":
        y = fgraph.input("y", h.shape)
        objective = fgraph.squared_l2_distance(h, y)
        data["y"] = draw(arrays(lead + h.shape, -1.0, 1.0))
    elif loss == "softmax_cross_entropy":
        y = fgraph.input("y", ())
        objective = fgraph.softmax_cross_entropy(h, y)
        data["y"] = draw(labels(h.shape[0], lead))
    else:
        objective = fgraph.mean(h)
    if params and draw(st.booleans()):
        shared = draw(st.sampled_from(sorted(params)))
        objective = fgraph.add(objective, fgraph.l2_norm_penalty(params[shared], draw(st.floats(0, 1))))
    g = fgraph.graph(prediction=h, objective=objective)
    return g, {k: values[k] for k in g.params}, data
