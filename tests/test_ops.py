"""Every primitive: forward against a NumPy reference and VJP against central
differences, per example and with a batch axis, under hypothesis.

One factory (MyGrad-style): each op is one ``OpCase`` line with a strategy
for its arguments (values bounded away from kinks) and a per-example NumPy
reference; the tests below run every case.
"""

from __future__ import annotations

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fgraph as fg
from fgraph.testing import arrays, assert_grads_match, away_from, batch_sizes, labels, shapes


@attrs.frozen
class OpCase:
    name: str
    builder: object
    args: object  # strategy: (batch size or None) -> strategy of (arrays, batched flags)
    reference: object  # per-example NumPy function
    batch: str = "map"  # "map": stacks per example; "mean": loss averaged; "all": reduces every axis


def _lead(batch):
    return () if batch is None else (batch,)


def unary(low=-2.0, high=2.0, min_dims=0, elements=None):
    @st.composite
    def draw_args(draw, batch):
        shape = draw(shapes(min_dims=min_dims))
        return (draw(arrays(_lead(batch) + shape, low, high, elements)),), (batch is not None,)

    return draw_args


@st.composite
def _binary(draw, batch):
    """Two broadcastable shapes; a batched argument keeps the output's rank."""
    shape = draw(shapes(max_dims=2))
    out = []
    flags = []
    for _ in range(2):
        batched = batch is not None and draw(st.booleans())
        s = tuple(d if draw(st.booleans()) else 1 for d in shape)
        if not batched and s and draw(st.booleans()):
            s = s[1:]  # an unbatched argument may drop leading axes
        out.append(draw(arrays(((batch,) if batched else ()) + s)))
        flags.append(batched)
    if batch is not None and not any(flags):
        flags[0] = True
        out[0] = draw(arrays((batch,) + shape))
    return tuple(out), tuple(flags)


def binary():
    return _binary


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


def _np_softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _np_matmul(a, b):
    return np.matmul(a, b)


CASES = [
    OpCase("vector_scalar_affine", fg.vector_scalar_affine, _vsa_args, lambda x, w, b: x @ w + b),
    OpCase("affine", fg.affine, _affine_args, lambda W, x, b: W @ x + b),
    OpCase("tanh", fg.tanh, unary(-3, 3), np.tanh),
    OpCase("relu", fg.relu, unary(elements=away_from(0.0, -2, 2, 1e-3)), lambda a: np.maximum(a, 0)),
    OpCase("sigmoid", fg.sigmoid, unary(-6, 6), lambda a: 1 / (1 + np.exp(-a))),
    OpCase("add", fg.add, binary(), np.add),
    OpCase("sub", fg.sub, binary(), np.subtract),
    OpCase("mul", fg.mul, binary(), np.multiply),
    OpCase("scale", lambda a: fg.scale(a, -1.7), unary(), lambda a: -1.7 * a),
    OpCase("matmul", fg.matmul, _matmul_args, _np_matmul),
    OpCase("sum", fg.sum, unary(), np.sum, batch="all"),
    OpCase("mean", fg.mean, unary(), np.mean, batch="all"),
    OpCase("softmax", fg.softmax, unary(-5, 5, min_dims=1), _np_softmax),
    OpCase("log_softmax", fg.log_softmax, unary(-5, 5, min_dims=1), lambda z: np.log(_np_softmax(z))),
    OpCase("squared_l2_distance", fg.squared_l2_distance, _pair_args, lambda a, b: np.sum((a - b) ** 2), batch="mean"),
    OpCase("l2_norm_penalty", lambda w: fg.l2_norm_penalty(w, 0.7), _penalty_args, lambda w: 0.7 * np.sum(w**2), batch="mean"),
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
IDS = [c.name for c in CASES]


def test_every_primitive_has_a_case():
    assert {c.name for c in CASES} == set(fg.ops.PRIMITIVES)


def _build(case, arrays_, flags):
    """Evaluate the op through a graph, the arrays fed as params or batched data."""
    nodes, params, data = fg.check._leaves(arrays_, flags)
    g = fg.graph(out=case.builder(*nodes))
    return fg.forward(g, params, data)["out"]


def _expected(case, arrays_, flags, batch):
    if case.batch == "all" or batch is None:
        return case.reference(*arrays_)
    per_example = [
        case.reference(*(a[i] if f else a for a, f in zip(arrays_, flags))) for i in range(batch)
    ]
    return np.mean(per_example, axis=0) if case.batch == "mean" else np.stack(per_example)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@given(data=st.data(), batch=st.none() | batch_sizes())
def test_forward_matches_numpy_reference(case, data, batch):
    arrays_, flags = data.draw(case.args(batch))
    got = _build(case, arrays_, flags)
    np.testing.assert_allclose(got, _expected(case, arrays_, flags, batch), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@given(data=st.data(), batch=st.none() | batch_sizes())
def test_vjp_matches_central_differences(case, data, batch):
    arrays_, flags = data.draw(case.args(batch))
    assert_grads_match(case.builder, *arrays_, batched=flags)


@pytest.mark.parametrize("case", [c for c in CASES if c.batch == "mean"], ids=lambda c: c.name)
@given(data=st.data(), batch=batch_sizes())
def test_loss_of_a_batch_is_the_mean_of_its_examples_and_so_is_its_gradient(case, data, batch):
    arrays_, flags = data.draw(case.args(batch))
    nodes, params, data_ = fg.check._leaves(arrays_, flags)
    g = fg.graph(out=case.builder(*nodes))
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


@pytest.mark.parametrize("case", [c for c in CASES if c.batch != "all"], ids=lambda c: c.name)
@given(data=st.data())
def test_batch_of_one_equals_the_example_bit_for_bit(case, data):
    arrays_, flags = data.draw(case.args(1))
    if not any(flags):
        return
    nodes, params, data_ = fg.check._leaves(arrays_, flags)
    g = fg.graph(out=case.builder(*nodes))
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
    with pytest.raises(TypeError, match=r"shifted.*VJP 0 takes \['g', 'out', 'a', 'scale', 'shift'\].*\['shift', 'scale'\]"):
        fg.Primitive("shifted", forward=lambda a, shift, scale: (a + shift) * scale,
                     vjps=(lambda g, out, a, scale, shift: g * scale,), shape=fg.ops.same_shape)
    with pytest.raises(TypeError, match=r"short.*VJP 0 takes \['g', 'out'\]"):
        fg.Primitive("short", forward=lambda a: a, vjps=(lambda g, out: g,), shape=fg.ops.same_shape)
