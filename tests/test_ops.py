"""Every primitive: forward against a NumPy reference and VJP against central
differences, per example and with a batch axis, under hypothesis.

One factory (MyGrad-style): each op is one ``OpCase`` line with a strategy
for its arguments (values bounded away from kinks, and any config the case
draws: an axis, an index, a shape) and a per-example NumPy reference; the
tests below run every case. Then the primitive as a value: its own builder
under every public name, documented, config by position or by name, the
hooks that run when a node is built, a user's primitive written as one
block.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import math
import pydoc
import types

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

import fgraph as fg
from fgraph.testing import arrays, assert_grads_match, away_from, batch_sizes, labels, shapes


@attrs.frozen
class OpCase:
    name: str  # the primitive's
    builder: object  # (*nodes, **config) -> node
    args: object  # strategy: (batch size or None) -> strategy of (arrays, batched flags[, config])
    reference: object  # per-example NumPy function (*arrays, **config)
    batch: str = "map"  # "map": stacks per example; "mean": loss averaged; "all": reduces every axis
    label: str | None = None  # the test id, when a primitive has several cases

    @property
    def id(self) -> str:
        return self.label or self.name

    def draw(self, data, batch):
        """``(builder, reference, arrays, flags)`` with the drawn config bound."""
        arrays_, flags, *config = data.draw(self.args(batch))
        config = config[0] if config else {}
        return functools.partial(self.builder, **config), functools.partial(self.reference, **config), arrays_, flags


def _lead(batch):
    return () if batch is None else (batch,)


def unary(low=-2.0, high=2.0, min_dims=0, elements=None):
    @st.composite
    def draw_args(draw, batch):
        shape = draw(shapes(min_dims=min_dims))
        return (draw(arrays(_lead(batch) + shape, low, high, elements)),), (batch is not None,)

    return draw_args


def broadcastable(count=2, elements=None):
    """``count`` (an int or a strategy) arguments of broadcastable shapes; a
    batched argument keeps the output's rank. ``elements``: one strategy of
    entries per argument (None: the default ones)."""

    @st.composite
    def draw_args(draw, batch):
        n = draw(count) if isinstance(count, st.SearchStrategy) else count
        entries = elements or (None,) * n
        shape = draw(shapes(max_dims=2))
        out, flags = [], []
        for i in range(n):
            batched = batch is not None and draw(st.booleans())
            s = tuple(d if draw(st.booleans()) else 1 for d in shape)
            if not batched and s and draw(st.booleans()):
                s = s[1:]  # an unbatched argument may drop leading axes
            out.append(draw(arrays(((batch,) if batched else ()) + s, elements=entries[i])))
            flags.append(batched)
        if batch is not None and not any(flags):
            flags[0] = True
            out[0] = draw(arrays((batch,) + shape, elements=entries[0]))
        return tuple(out), tuple(flags)

    return draw_args


def binary(elements=None):
    return broadcastable(2, elements)


# maximum's arguments never tie nor come close: a's entries in [k + 0.1, k + 0.4]
# and b's in [k + 0.6, k + 0.9] for integers k, so either may be the larger.
_BELOW_HALF = st.integers(-2, 1).flatmap(lambda k: st.floats(k + 0.1, k + 0.4))
_ABOVE_HALF = st.integers(-2, 1).flatmap(lambda k: st.floats(k + 0.6, k + 0.9))


@st.composite
def _affine_args(draw, batch):
    m, d = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    return (
        draw(arrays((m, d))),
        draw(arrays(_lead(batch) + (d,))),
        draw(arrays((m,))),
    ), (False, batch is not None, False)


@st.composite
def _vsa_args(draw, batch):
    d = draw(st.integers(1, 5))
    return (draw(arrays(_lead(batch) + (d,))), draw(arrays((d,))), draw(arrays(()))), (batch is not None, False, False)


@st.composite
def _matmul_args(draw, batch):
    m, k, n = (draw(st.integers(1, 3)) for _ in range(3))
    a_shape = draw(st.sampled_from([(m, k), (k,)]))
    b_shape = draw(st.sampled_from([(k, n), (k,)]))
    flags = (False, False) if batch is None else draw(st.sampled_from([(True, False), (False, True), (True, True)]))
    a = draw(arrays(((batch,) if flags[0] else ()) + a_shape))
    b = draw(arrays(((batch,) if flags[1] else ()) + b_shape))
    return (a, b), flags


@st.composite
def _pair_args(draw, batch):
    shape = draw(shapes(max_dims=2))
    flags = (batch is not None, batch is not None and draw(st.booleans()))
    return tuple(draw(arrays(((batch,) if f else ()) + shape)) for f in flags), flags


@st.composite
def _penalty_args(draw, batch):
    return (draw(arrays(draw(shapes(max_dims=2)))),), (False,)


def _label_args(low, high):
    """Scores and labels; with a batch, the scores may be unbatched (a parameter)."""

    @st.composite
    def draw_args(draw, batch):
        k = draw(st.integers(1, 5))
        batched_scores = batch is not None and draw(st.booleans())
        scores = draw(arrays(((batch,) if batched_scores else ()) + (k,), low, high))
        return (scores, draw(labels(k, _lead(batch)))), (batched_scores, batch is not None)

    return draw_args


# ------------------------------------------------------- structure: config drawn


@st.composite
def _times_constant_args(draw, batch):
    """a, and the value of a constant that broadcasts against it (a keeps the output's rank).

    The value stays away from 0: the derivative with respect to a is the
    value, which central differences cannot see once a · value underflows.
    """
    shape = draw(shapes(max_dims=2))
    value_shape = tuple(d if draw(st.booleans()) else 1 for d in shape)[draw(st.integers(0, len(shape))):]
    value = draw(arrays(value_shape, elements=away_from(0.0, -2, 2, 1e-3)))
    return (draw(arrays(_lead(batch) + shape)),), (batch is not None,), {"value": value}


def _slices(n: int):
    """Slices that select at least one element of an axis of length n, bounds in or out of range."""
    bound = st.none() | st.integers(-n - 2, n + 2)
    step = st.none() | st.sampled_from([1, 2, 3, -1, -2])
    return st.builds(slice, bound, bound, step).filter(lambda s: len(range(n)[s]) > 0)


def _key_entry(n: int):
    return st.integers(-n, n - 1) | _slices(n) | st.integers(-n, n - 1).map(np.int64)


@st.composite
def _index_args(draw, batch):
    """An array and a basic index of its per-example axes: ints, slices, maybe one ``...``."""
    shape = draw(shapes(min_dims=1, max_dims=3))
    head = draw(st.integers(0, len(shape)))
    entries = [draw(_key_entry(n)) for n in shape[:head]]
    if draw(st.booleans()):  # an ellipsis, then entries for some of the last axes
        tail = draw(st.integers(0, len(shape) - head))
        entries += [Ellipsis] + [draw(_key_entry(n)) for n in shape[len(shape) - tail :]]
    key = entries[0] if len(entries) == 1 and draw(st.booleans()) else tuple(entries)
    return (draw(arrays(_lead(batch) + shape)),), (batch is not None,), {"key": key}


def _join_args(new_axis: bool):
    """1-3 arrays to concatenate (lengths differ on the axis) or stack (one
    shape); with a batch, any of them may lack the batch axis."""

    @st.composite
    def draw_args(draw, batch):
        rank = draw(st.integers(0 if new_axis else 1, 3))
        base = draw(shapes(min_dims=rank, max_dims=rank))
        axis = draw(st.integers(-rank - new_axis, rank + new_axis - 1))
        count = draw(st.integers(1, 3))
        flags = [batch is not None and draw(st.booleans()) for _ in range(count)]
        if batch is not None and not any(flags):
            flags[draw(st.integers(0, count - 1))] = True
        out = []
        for batched in flags:
            shape = list(base)
            if not new_axis:
                shape[axis] = draw(st.integers(1, 3))
            out.append(draw(arrays(((batch,) if batched else ()) + tuple(shape))))
        return tuple(out), tuple(flags), {"axis": axis}

    return draw_args


def _factorizations(size: int, max_dims: int = 3) -> list:
    """Every shape of at most ``max_dims`` axes with ``size`` elements."""
    found = [()] if size == 1 else []
    for dims in range(1, max_dims + 1):
        found += [s for s in itertools.product(range(1, size + 1), repeat=dims) if math.prod(s) == size]
    return found


@st.composite
def _reshape_args(draw, batch):
    shape = draw(shapes(max_dims=3))
    target = list(draw(st.sampled_from(_factorizations(math.prod(shape)))))
    if target and draw(st.booleans()):
        target[draw(st.integers(0, len(target) - 1))] = -1
    return (draw(arrays(_lead(batch) + shape)),), (batch is not None,), {"shape": tuple(target)}


@st.composite
def _transpose_args(draw, batch):
    shape = draw(shapes(max_dims=3))
    axes = None
    if draw(st.booleans()):
        axes = tuple(i - len(shape) if draw(st.booleans()) else i for i in draw(st.permutations(range(len(shape)))))
    return (draw(arrays(_lead(batch) + shape)),), (batch is not None,), {"axes": axes}


@st.composite
def _axis_args(draw, batch):
    """An array and per-example axes to reduce: one int, or a tuple of distinct ones."""
    shape = draw(shapes(min_dims=1, max_dims=3))
    chosen = draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, unique=True))
    signed = tuple(i - len(shape) if draw(st.booleans()) else i for i in chosen)
    axis = signed[0] if len(signed) == 1 and draw(st.booleans()) else signed
    return (draw(arrays(_lead(batch) + shape)),), (batch is not None,), {"axis": axis}


def _np_softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _np_matmul(a, b):
    return np.matmul(a, b)


@st.composite
def _conv2d_args(draw, batch):
    C, F, kh, kw = (draw(st.integers(1, 2)) for _ in range(4))
    H, W = draw(st.integers(1, 4)), draw(st.integers(1, 4))  # padding 1: a kernel of 2 fits any side
    x = draw(arrays(_lead(batch) + (C, H, W)))
    return (x, draw(arrays((F, C, kh, kw))), draw(arrays((F,)))), (batch is not None, False, False)


@st.composite
def _conv1d_args(draw, batch):
    C, F, k = (draw(st.integers(1, 2)) for _ in range(3))
    x = draw(arrays(_lead(batch) + (C, draw(st.integers(1, 5)))))
    return (x, draw(arrays((F, C, k))), draw(arrays((F,)))), (batch is not None, False, False)


@st.composite
def _pool_args(draw, batch):
    """Entries 0.1 apart at least (a shuffled grid): no window has a tie to route."""
    shape = _lead(batch) + (draw(st.integers(1, 2)), draw(st.integers(2, 4)), draw(st.integers(2, 4)))
    order = np.array(draw(st.permutations(range(int(np.prod(shape))))), dtype=np.float64)
    return (((order - order.size / 2 + 0.5) * 0.1).reshape(shape),), (batch is not None,)


def _np_conv2d(x, W, b, stride, padding):
    padded = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
    windows = sliding_window_view(padded, W.shape[2:], axis=(1, 2))
    return np.einsum("chwij,fcij->fhw", windows[:, ::stride, ::stride], W) + b[:, None, None]


def _np_pool(reduce, size):
    return lambda x: reduce(sliding_window_view(x, (size, size), axis=(1, 2))[:, ::size, ::size], axis=(3, 4))


CASES = [
    OpCase("vector_scalar_affine", fg.vector_scalar_affine, _vsa_args, lambda x, w, b: x @ w + b),
    OpCase("affine", fg.affine, _affine_args, lambda W, x, b: W @ x + b),
    OpCase("tanh", fg.tanh, unary(-3, 3), np.tanh),
    OpCase("relu", fg.relu, unary(elements=away_from(0.0, -2, 2, 1e-3)), lambda a: np.maximum(a, 0)),
    OpCase("sigmoid", fg.sigmoid, unary(-6, 6), lambda a: 1 / (1 + np.exp(-a))),
    OpCase("softplus", fg.softplus, unary(-6, 6), lambda a: np.logaddexp(0.0, a)),
    OpCase("exp", fg.exp, unary(-3, 3), np.exp),
    OpCase("log", fg.log, unary(0.1, 3.0), np.log),
    OpCase("square", fg.square, unary(), np.square),
    OpCase("add", fg.add, broadcastable(st.integers(2, 4)), lambda *a: functools.reduce(np.add, a)),
    OpCase("sub", fg.sub, binary(), np.subtract),
    OpCase("mul", fg.mul, binary(), np.multiply),
    OpCase("div", fg.div, binary((None, away_from(0.0, -2, 2, 0.5))), np.divide),
    OpCase("maximum", fg.maximum, binary((_BELOW_HALF, _ABOVE_HALF)), np.maximum),
    OpCase("maximum", fg.maximum, binary((_ABOVE_HALF, _BELOW_HALF)), np.maximum, label="maximum_swapped"),
    OpCase("scale", lambda a: fg.scale(a, -1.7), unary(), lambda a: -1.7 * a),
    OpCase("matmul", fg.matmul, _matmul_args, _np_matmul),
    OpCase("sum", fg.sum, unary(), np.sum, batch="all"),
    OpCase("mean", fg.mean, unary(), np.mean, batch="all"),
    OpCase("sum", lambda a, axis: fg.sum(a, axis), _axis_args, lambda a, axis: np.sum(a, axis=axis), label="sum_axis"),
    OpCase("mean", lambda a, axis: fg.mean(a, axis=axis), _axis_args, lambda a, axis: np.mean(a, axis=axis),
           label="mean_axis"),
    OpCase("constant", lambda a, value: fg.mul(a, fg.constant(value)), _times_constant_args,
           lambda a, value: a * value),
    OpCase("getitem", lambda a, key: fg.getitem(a, key), _index_args, lambda a, key: a[key]),
    OpCase("concat", lambda *ns, axis: fg.concat(ns, axis), _join_args(new_axis=False),
           lambda *a, axis: np.concatenate(a, axis=axis)),
    OpCase("stack", lambda *ns, axis: fg.stack(ns, axis=axis), _join_args(new_axis=True),
           lambda *a, axis: np.stack(a, axis=axis)),
    OpCase("reshape", lambda a, shape: fg.reshape(a, shape), _reshape_args, lambda a, shape: np.reshape(a, shape)),
    OpCase("transpose", lambda a, axes: fg.transpose(a, axes), _transpose_args, lambda a, axes: np.transpose(a, axes)),
    OpCase("conv2d", lambda x, W, b: fg.conv2d(x, W, b, stride=2, padding=1), _conv2d_args,
           lambda x, W, b: _np_conv2d(x, W, b, 2, 1)),
    OpCase("conv1d", lambda x, W, b: fg.conv1d(x, W, b, padding=1), _conv1d_args,
           lambda x, W, b: _np_conv2d(x[:, None], W[:, :, None], b, 1, 1)[:, 1]),
    OpCase("max_pool2d", lambda x: fg.max_pool2d(x, 2), _pool_args, _np_pool(np.max, 2)),
    OpCase("avg_pool2d", lambda x: fg.avg_pool2d(x, 2), _pool_args, _np_pool(np.mean, 2)),
    OpCase("softmax", fg.softmax, unary(-5, 5, min_dims=1), _np_softmax),
    OpCase("log_softmax", fg.log_softmax, unary(-5, 5, min_dims=1), lambda z: np.log(_np_softmax(z))),
    OpCase("squared_l2_distance", fg.squared_l2_distance, _pair_args, lambda a, b: np.sum((a - b) ** 2), batch="mean"),
    OpCase("l2_norm_penalty", lambda w: fg.l2_norm_penalty(w, 0.7), _penalty_args, lambda w: 0.7 * np.sum(w**2),
           batch="mean"),
    OpCase("nll", fg.nll, _label_args(0.05, 1.0), lambda p, y: -np.log(p[y]), batch="mean"),
    OpCase(
        "softmax_cross_entropy",
        fg.softmax_cross_entropy,
        _label_args(-5, 5),
        lambda z, y: -np.log(_np_softmax(z)[y]),
        batch="mean",
    ),
    OpCase(  # what nll(softmax(z), y) is built as
        "nll_of_softmax",
        lambda z, y: fg.nll(fg.softmax(z), y),
        _label_args(-5, 5),
        lambda z, y: -np.log(_np_softmax(z)[y]),
        batch="mean",
    ),
]
IDS = [c.id for c in CASES]


def test_every_primitive_has_a_case():
    assert {c.name for c in CASES} == set(fg.ops.PRIMITIVES)
    assert len(set(IDS)) == len(IDS)


def _build(builder, arrays_, flags):
    """Evaluate the op through a graph, the arrays fed as params or batched data."""
    nodes, params, data = fg.check._leaves(arrays_, flags)
    g = fg.graph(out=builder(*nodes))
    return fg.forward(g, params, data)["out"]


def _expected(case, reference, arrays_, flags, batch):
    if case.batch == "all" or batch is None:
        return reference(*arrays_)
    per_example = [
        reference(*(a[i] if f else a for a, f in zip(arrays_, flags))) for i in range(batch)
    ]
    return np.mean(per_example, axis=0) if case.batch == "mean" else np.stack(per_example)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@given(data=st.data(), batch=st.none() | batch_sizes())
def test_forward_matches_numpy_reference(case, data, batch):
    builder, reference, arrays_, flags = case.draw(data, batch)
    got = _build(builder, arrays_, flags)
    np.testing.assert_allclose(got, _expected(case, reference, arrays_, flags, batch), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@given(data=st.data(), batch=st.none() | batch_sizes())
def test_vjp_matches_central_differences(case, data, batch):
    builder, _, arrays_, flags = case.draw(data, batch)
    assert_grads_match(builder, *arrays_, batched=flags)


@pytest.mark.parametrize("case", [c for c in CASES if c.batch == "mean"], ids=lambda c: c.id)
@given(data=st.data(), batch=batch_sizes())
def test_loss_of_a_batch_is_the_mean_of_its_examples_and_so_is_its_gradient(case, data, batch):
    builder, _, arrays_, flags = case.draw(data, batch)
    nodes, params, data_ = fg.check._leaves(arrays_, flags)
    g = fg.graph(out=builder(*nodes))
    float_names = [n.name for n in nodes if n.name not in g.labels]
    whole = fg.backward(g, params, data_, output="out", wrt=float_names)
    per_example = []
    for i in range(batch):
        one = {k: v[i : i + 1] for k, v in data_.items()}
        per_example.append(fg.backward(g, params, one, output="out", wrt=float_names))
    for name in params:  # params are shared by the examples: mean of their gradients
        np.testing.assert_allclose(whole[name], np.mean([p[name] for p in per_example], axis=0), rtol=1e-10, atol=1e-12)
    for name in data_:  # example i's data gets its own gradient, divided by the batch size
        if name in float_names:
            stacked = np.concatenate([p[name] for p in per_example]) / batch
            np.testing.assert_allclose(whole[name], stacked, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", [c for c in CASES if c.batch != "all"], ids=lambda c: c.id)
@given(data=st.data())
def test_batch_of_one_equals_the_example_bit_for_bit(case, data):
    builder, _, arrays_, flags = case.draw(data, 1)
    if not any(flags):
        return
    nodes, params, data_ = fg.check._leaves(arrays_, flags)
    g = fg.graph(out=builder(*nodes))
    batched = fg.forward(g, params, data_)["out"]
    example = {k: v[0] for k, v in data_.items()}
    single = fg.forward(g, params, example)["out"]
    expected = single if case.batch == "mean" else np.asarray(single)[None]
    assert np.array_equal(batched, expected)


def test_tanh_vjp_uses_the_stored_output():
    # The rule may only read the output: feed a wrong input and the result must not change.
    vjp = fg.ops.TANH.vjps[0]
    out = np.tanh(np.array([0.3, -1.2]))
    g = np.array([1.0, 2.0])
    np.testing.assert_allclose(vjp(g, out, np.array([99.0, 99.0])), g * (1 - out**2), rtol=1e-15)


def test_relu_has_derivative_zero_at_the_kink():
    vjp = fg.ops.RELU.vjps[0]
    assert np.array_equal(vjp(np.ones(3), None, np.array([-1.0, 0.0, 1.0])), [0.0, 0.0, 1.0])


# ------------------------------------------------------- config bound by name


def _shift_then_scale():
    """(a + shift) · scale: two config values whose order changes the result."""
    return fg.Primitive(
        "shift_then_scale",
        forward=lambda a, shift, scale: (a + shift) * scale,
        vjps=(lambda g, out, a, shift, scale: g * scale,),
        shape=fg.ops.same_shape,
    )


def test_config_is_bound_by_name_whatever_the_keyword_order():
    P, x = _shift_then_scale(), fg.param("x", (2,))
    one = fg.apply(P, x, shift=1.0, scale=2.0)
    other = fg.apply(P, x, scale=2.0, shift=1.0)
    assert list(one.config) == list(other.config) == ["shift", "scale"]
    assert one.name == other.name  # the same computation, so one auto-name ...
    g = fg.graph(a=one, b=other)
    assert len(g.nodes) == 2  # ... and one node
    values = fg.forward(g, {"x": np.array([0.5, -1.0])})
    np.testing.assert_array_equal(values["a"], [3.0, 0.0])
    np.testing.assert_array_equal(values["b"], [3.0, 0.0])
    grads = fg.grad(fg.graph(objective=fg.sum(other)))({"x": np.array([0.5, -1.0])})
    np.testing.assert_array_equal(grads["x"], [2.0, 2.0])


def test_different_config_gives_different_auto_names_and_values():
    P, x = _shift_then_scale(), fg.param("x", ())
    one, swapped = fg.apply(P, x, shift=1.0, scale=2.0), fg.apply(P, x, shift=2.0, scale=1.0)
    assert one.name != swapped.name
    g = fg.graph(a=one, b=swapped)
    assert len(g.nodes) == 3  # both kept
    values = fg.forward(g, {"x": 1.0})
    assert (values["a"], values["b"]) == (4.0, 3.0)


def test_unknown_or_missing_config_is_a_type_error_naming_the_primitive_and_the_key():
    P, x = _shift_then_scale(), fg.param("x", ())
    with pytest.raises(TypeError, match=r"shift_then_scale.*unexpected \['offset'\]"):
        fg.apply(P, x, shift=1.0, scale=2.0, offset=3.0)
    with pytest.raises(TypeError, match=r"shift_then_scale.*needs config \['scale'\]"):
        fg.apply(P, x, shift=1.0)
    with pytest.raises(TypeError, match=r"tanh takes no config.*unexpected \['c'\]"):
        fg.apply(fg.ops.TANH, x, c=1.0)  # a ufunc forward: its positional `out` is not config


def test_array_config_is_the_nodes_own_read_only_copy():
    """A forward rule may return its array config, or a view of it (a table lookup): the node holds
    its own read-only copy, so the caller's array is never flagged, later writes to it do not reach
    the graph, and a result (copied, as a read-only array is) never lets a reader write into the graph."""
    table = np.arange(6.0).reshape(2, 3)
    row = fg.Primitive("first_row", forward=lambda a, table: table[0] if not a.any() else a + table[0],
                       vjps=(lambda g, out, a, table: g,), shape=fg.ops.same_shape)
    node = fg.apply(row, fg.param("a", (3,)), table=table)
    g, params = fg.graph(out=node), {"a": np.zeros(3)}
    assert node.config["table"] is not table and not node.config["table"].flags.writeable
    first = fg.forward(g, params)["out"]
    assert table.flags.writeable and not np.shares_memory(first, node.config["table"])
    table[0] = -1.0  # the caller's array, after the node was built
    first.setflags(write=True)  # allowed: the result owns its memory
    first[:] = 99.0
    np.testing.assert_array_equal(fg.forward(g, params)["out"], [0.0, 1.0, 2.0])


def test_config_defaults_are_filled_in_so_equal_computations_share_a_name():
    P = fg.Primitive("times", forward=lambda a, c=2.0: c * a, vjps=(lambda g, out, a, c: c * g,),
                     shape=fg.ops.same_shape)
    x = fg.param("x", ())
    assert dict(fg.apply(P, x).config) == {"c": 2.0}
    assert fg.apply(P, x).name == fg.apply(P, x, c=2.0).name != fg.apply(P, x, c=3.0).name


def test_rules_whose_config_cannot_be_named_take_none_unless_config_names_says():
    def forward(*arrays_and_config):
        a, c = arrays_and_config
        return c * a

    kwargs = {"forward": forward, "vjps": (lambda g, out, *rest: rest[-1] * g,), "shape": fg.ops.same_shape}
    x = fg.param("x", ())
    with pytest.raises(TypeError, match="takes no config"):
        fg.apply(fg.Primitive("star", **kwargs), x, c=3.0)
    named = fg.Primitive("star", config_names=("c",), **kwargs)
    assert fg.forward(fg.graph(out=fg.apply(named, x, c=3.0)), {"x": 2.0})["out"] == 6.0


def test_a_vjp_that_takes_the_config_in_another_order_is_refused_when_the_primitive_is_made():
    with pytest.raises(
        TypeError, match=r"shifted.*VJP 0 takes \['g', 'out', 'a', 'scale', 'shift'\].*\['shift', 'scale'\]"
    ):
        fg.Primitive("shifted", forward=lambda a, shift, scale: (a + shift) * scale,
                     vjps=(lambda g, out, a, scale, shift: g * scale,), shape=fg.ops.same_shape)
    with pytest.raises(TypeError, match=r"short.*VJP 0 takes \['g', 'out'\]"):
        fg.Primitive("short", forward=lambda a: a, vjps=(lambda g, out: g,), shape=fg.ops.same_shape)


# ------------------------------------------------------- a primitive is one block


@pytest.mark.parametrize("name", list(fg.ops.PRIMITIVES))
def test_each_primitive_is_its_own_builder_under_every_public_name(name):
    prim = fg.ops.PRIMITIVES[name]
    assert isinstance(prim, fg.Primitive) and prim.name == name
    assert getattr(fg, name) is getattr(fg.ops, name) is getattr(fg.ops, name.upper()) is prim
    assert name in fg.__all__ and name in fg.ops.__all__


@pytest.mark.parametrize("name", list(fg.ops.PRIMITIVES))
def test_each_primitive_documents_what_it_computes_and_how_it_is_called(name):
    prim = fg.ops.PRIMITIVES[name]
    doc = inspect.getdoc(prim)
    assert doc and doc != inspect.getdoc(fg.Primitive) and "primitive" not in doc.split("\n")[0].lower()
    # written with @primitive: the forward rule's docstring
    if inspect.isfunction(prim.forward) and prim.forward.__name__ == name:
        assert doc == inspect.getdoc(prim.forward)
    assert doc.splitlines()[0] in pydoc.render_doc(prim, renderer=pydoc.plaintext)
    params = list(inspect.signature(prim).parameters)
    assert len(params) >= len(prim.vjps) + 1 and params[-1] == "name"


def test_builder_signatures_are_the_rules_names_without_derived_config():
    assert str(inspect.signature(fg.affine)) == "(W, x, b, *, name=None)"
    assert str(inspect.signature(fg.scale)) == "(a, c, *, name=None)"
    assert str(inspect.signature(fg.l2_norm_penalty)) == "(w, l2_reg, *, name=None)"
    assert str(inspect.signature(fg.matmul)) == "(a, b, *, name=None)"  # a_vec, b_vec come from the shapes
    assert str(inspect.signature(fg.softmax_cross_entropy)) == "(logits, y, *, name=None)"
    assert str(inspect.signature(fg.tanh)) == "(a, *, name=None)"  # a ufunc: the names of its VJP
    assert repr(fg.tanh) == "<primitive tanh(a, *, name=None)>"


def test_the_forward_rule_is_the_raw_rule_the_program_calls():
    assert fg.tanh.forward is np.tanh  # the ufunc itself, no wrapper
    out = fg.relu.forward(np.array([-1.0, 2.0]))
    assert isinstance(out, np.ndarray) and list(out) == [0.0, 2.0]
    x = fg.param("x", (2,))
    source = fg.program_source(fg.graph(objective=fg.sum(fg.tanh(x))))
    assert "= f1(v0)" in source  # one call of the stored rule per node, nothing around it


def test_config_by_position_is_config_by_name():
    a, w = fg.param("a", (2,)), fg.param("w", (3,))
    assert fg.scale(a, 2.0).name == fg.scale(a, c=2.0).name == fg.apply(fg.scale, a, c=2.0).name
    assert dict(fg.scale(a, 2).config) == {"c": 2.0} and type(fg.scale(a, 2).config["c"]) is float
    assert fg.l2_norm_penalty(w, 1.0).name == fg.l2_norm_penalty(w, l2_reg=1.0).name
    assert fg.scale(a, 2.0).name != fg.scale(a, 3.0).name
    values = fg.forward(fg.graph(p=fg.scale(a, -1.5), q=fg.l2_norm_penalty(w, 0.5)), {"a": np.ones(2), "w": np.ones(3)})
    assert list(values["p"]) == [-1.5, -1.5] and values["q"] == 1.5


def test_nodes_may_be_given_by_their_names_as_the_rules_call_them():
    W, x, b = fg.param("W", (2, 3)), fg.input("x", (3,)), fg.param("b", (2,))
    assert fg.affine(W, x=x, b=b).name == fg.affine(W, x, b).name == fg.affine(W=W, x=x, b=b).name
    with pytest.raises(TypeError, match=r"affine takes 3 nodes \['W', 'x', 'b'\], missing \['x'\]"):
        fg.affine(W, b=b)
    with pytest.raises(TypeError, match=r"tanh got argument \['a'\] both by position and by name"):
        fg.tanh(x, a=x)


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda a, B: fg.scale(a, 2.0, c=2.0), TypeError, r"scale got config \['c'\] both by position and by name"),
        (lambda a, B: fg.scale(a, 1.0, 2.0), TypeError, r"scale takes 1 nodes and config \['c'\], got 2 more"),
        (lambda a, B: fg.tanh(a, 2.0), TypeError,
         r"tanh takes 1 nodes and no config, got 1 more positional arguments \(float\)"),
        (lambda a, B: fg.tanh(a, a), TypeError, r"tanh takes 1 nodes, got 2"),
        (lambda a, B: fg.add(a), TypeError, r"add takes at least 2 nodes, got 1"),
        (lambda a, B: fg.scale(a), TypeError, r"scale needs config \['c'\]"),
        (lambda a, B: fg.matmul(B, a, a_vec=True), TypeError,
         r"matmul: config \['a_vec'\] is derived from the arguments"),
        (lambda a, B: fg.matmul(B, a, True), TypeError, r"matmul takes 2 nodes and no config"),
        (lambda a, B: fg.scale(a, "two"), TypeError, r"scale: c must be a real number, got 'two'"),
        (lambda a, B: fg.scale(a, np.inf), ValueError, r"scale: c must be a finite number"),
        (lambda a, B: fg.l2_norm_penalty(B, -1.0), ValueError,
         r"l2_norm_penalty: l2_reg must be a finite non-negative number"),
        (lambda a, B: fg.matmul(np.ones(3), a), TypeError, r"matmul: argument 0 must be a Node.*ndarray"),
        (lambda a, B: fg.nll(np.ones(3), a), TypeError, r"nll: argument 0 must be a Node.*ndarray"),
        (lambda a, B: fg.apply("tanh", a), TypeError, r"apply needs a fgraph.ops.Primitive, got str"),
    ],
)
def test_a_bad_call_is_a_clear_error_naming_the_primitive(build, error, message):
    with pytest.raises(error, match=message):
        build(fg.param("a", (3,)), fg.param("B", (2, 3)))


def test_apply_is_the_call():
    x, y = fg.param("x", (3,)), fg.input("y")
    assert fg.apply(fg.tanh, x, name="t").name == fg.tanh(x, name="t").name == "t"
    assert fg.apply(fg.matmul, x, x).config == fg.matmul(x, x).config == {"a_vec": True, "b_vec": True}
    assert fg.apply(fg.nll, fg.softmax(x), y).op is fg.nll(fg.softmax(x), y).op is fg.ops.nll_of_softmax


# ----------------------------------------------------------- a user's primitive


@fg.ops.primitive(vjps=(lambda g, out, a, k: k * 3 * g * a * a,), shape=fg.ops.same_shape)
def scaled_cube(a, k=1.0):
    """k·a³ element-wise; ∂J/∂a = 3 k a² ⊙ g."""
    return k * a**3


def test_a_users_primitive_is_one_decorated_block():
    assert isinstance(scaled_cube, fg.Primitive) and scaled_cube.name == "scaled_cube"
    assert inspect.getdoc(scaled_cube) == "k·a³ element-wise; ∂J/∂a = 3 k a² ⊙ g."
    assert str(inspect.signature(scaled_cube)) == "(a, k=1.0, *, name=None)"
    x = fg.param("x", (2,))
    g = fg.graph(objective=fg.sum(scaled_cube(x, 2.0)))
    value, grads = fg.value_and_grad(g)({"x": np.array([1.0, -2.0])})
    assert value == 2.0 * (1.0 - 8.0)
    np.testing.assert_array_equal(grads["x"], [6.0, 24.0])
    assert scaled_cube(x).config == {"k": 1.0}


def _double_k(prim, nodes, config):
    return prim, nodes, {**config, "k": 2 * config["k"]}


def test_a_prepare_hook_sees_the_bound_config_and_may_derive_or_replace():
    doubled = attrs.evolve(scaled_cube, name="doubled", prepare=_double_k)
    x = fg.param("x", ())
    assert doubled(x).config == {"k": 2.0} and doubled(x, 3.0).config == {"k": 6.0}
    rank = fg.Primitive(
        "rank_plus", forward=lambda a, r: a + r, vjps=(lambda g, out, a, r: g,), shape=fg.ops.same_shape,
        prepare=lambda prim, nodes, config: (prim, nodes, {"r": float(len(nodes[0].shape))}), derived=("r",),
    )
    assert rank(fg.param("m", (2, 2))).config == {"r": 2.0}
    to_tanh = attrs.evolve(rank, name="to_tanh", prepare=lambda prim, nodes, config: (fg.tanh, nodes, {}), derived=())
    assert to_tanh(x, r=1.0).op is fg.tanh


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"derived": ("r",)},
         r"derived config \['r'\] must be config of the rules \(\['r'\]\) that a prepare hook fills in"),
        ({"derived": ("s",), "prepare": _double_k}, r"derived config \['s'\]"),
        ({"vjps": lambda g, out, a, r: g}, r"vjps must be a tuple of functions"),
        ({"shape": (1,)}, r"shape must be a function"),
        ({"prepare": 3}, r"prepare must be a function or None"),
        ({"name": ""}, r"a primitive's name must be a non-empty string"),
        ({"doc": 3}, r"doc must be a string"),
    ],
)
def test_a_primitive_that_cannot_work_is_refused_when_it_is_made(fields, message):
    base = {"name": "p", "forward": lambda a, r: a + r, "vjps": (lambda g, out, a, r: g,), "shape": fg.ops.same_shape}
    with pytest.raises(TypeError, match=message):
        fg.Primitive(**{**base, **fields})


def test_the_registry_and_the_exports_refuse_two_primitives_under_one_name():
    def module(name, **values):
        m = types.ModuleType(name)
        vars(m).update(values)
        return m

    other_tanh = attrs.evolve(fg.tanh)
    assert dict(fg.primitive.collect(module("a", t=fg.tanh), module("b", t=fg.tanh, T=fg.tanh))) == {"tanh": fg.tanh}
    with pytest.raises(ImportError, match=r"two different primitives are called 'tanh' \(in b\)"):
        fg.primitive.collect(module("a", t=fg.tanh), module("b", t=other_tanh))
    namespace = {"__name__": "somewhere", "add": "taken"}
    with pytest.raises(ImportError, match=r"the primitive 'add' would hide somewhere.add"):
        fg.ops.export(namespace)
