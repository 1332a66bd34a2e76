"""Structured networks: variadic primitives, constants, indexing, joining,
reshaping, reductions over axes, and the operators on nodes.

The property tests of every rule against NumPy and central differences
are the OpCases of tests/test_ops.py; here are the decisions around them:
what builds one node, what is refused and how it is said, how batched and
unbatched nodes mix, and what the operators build.
"""

from __future__ import annotations

import hashlib
import inspect

import numpy as np
import pytest

import fgraph as fg
from fgraph.testing import assert_grads_match

RNG = np.random.default_rng(20261201)


def _values(node, params=None, data=None):
    return fg.forward(fg.graph(out=node), params or {}, data or {})["out"]


# ------------------------------------------------------------ variadic primitives


def test_add_of_two_is_the_binary_node_it_always_was():
    a, b = fg.param("a", (3,)), fg.input("b", (3,))
    node = fg.add(a, b)
    today = "add_" + hashlib.sha1(repr(("add", ("a", "b"), [])).encode()).hexdigest()[:10]
    assert node.name == today and node.inputs == (a, b) and dict(node.config) == {}
    assert (a + b).name == today


def test_add_takes_any_number_of_nodes_one_by_one_or_as_a_list():
    a, b, c = fg.param("a", (2, 3)), fg.param("b", (3,)), fg.input("c", (2, 1))
    node = fg.add(a, b, c)
    assert fg.add([a, b, c]).name == fg.add((a, b, c)).name == node.name != fg.add(fg.add(a, b), c).name
    params = {"a": RNG.normal(size=(2, 3)), "b": RNG.normal(size=3)}
    data = {"c": RNG.normal(size=(4, 2, 1))}
    np.testing.assert_array_equal(_values(node, params, data), params["a"] + params["b"] + data["c"])
    u = RNG.normal(size=(4, 2, 3))
    grads = fg.backward(fg.graph(out=node), params, data, output="out", cotangent=u, wrt=["a", "b", "c"])
    np.testing.assert_allclose(grads["a"], u.sum(0))
    np.testing.assert_allclose(grads["b"], u.sum((0, 1)))
    np.testing.assert_allclose(grads["c"], u.sum(2, keepdims=True))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda a: fg.add(a), r"add takes at least 2 nodes, got 1"),
        (lambda a: fg.add([a]), r"add takes at least 2 nodes, got 1"),
        (lambda a: fg.add(a, 2.0), r"add: argument 1 must be a Node .*got float"),
        (lambda a: fg.add([a, np.ones(3)]), r"add: argument 1 must be a Node .*got ndarray"),
        (lambda a: fg.concat([a, a], 0, a), r"concat: the nodes come first.*got Node"),
        (lambda a: fg.concat(nodes=a), r"concat: nodes must be a list or tuple of nodes, got Node"),
        (lambda a: fg.concat([a], 0, 1), r"concat takes at least 1 nodes and config \['axis'\], got 2 more"),
        (lambda a: fg.concat([a], ndim=1), r"concat: config \['ndim'\] is derived"),
        (lambda a: fg.concat([a], axis=1.0), r"concat: axis must be an int, got float"),
    ],
)
def test_a_bad_call_of_a_variadic_primitive_says_what_is_wrong(build, message):
    with pytest.raises(TypeError, match=message):
        build(fg.param("a", (3,)))


def test_variadic_builders_show_how_they_are_called():
    assert str(inspect.signature(fg.add)) == "(*nodes, name=None)"
    assert str(inspect.signature(fg.concat)) == "(nodes, axis=0, *, name=None)"
    assert str(inspect.signature(fg.stack)) == "(nodes, axis=0, *, name=None)"
    a, b = fg.param("a", (2,)), fg.param("b", (2,))
    same = {fg.concat([a, b], 0).name, fg.concat((a, b), axis=0).name, fg.concat(a, b).name,
            fg.concat(a, b, 0).name, fg.concat(nodes=[a, b]).name, fg.concat(axis=-1, nodes=(a, b)).name}
    assert len(same) == 1


def _weighted_grad(position, g, out, *arrays):
    return (position + 1.0) * g


WEIGHTED = fg.Primitive(
    "weighted_sum",
    forward=lambda *arrays: sum((i + 1.0) * a for i, a in enumerate(arrays)),
    vjps=(_weighted_grad,),
    shape=fg.ops.broadcast_shape,
    broadcasts=True,
    unbroadcast=True,
    variadic=True,
    doc="Σ_i (i + 1) a_i; the cotangent of a_i is (i + 1) g.",
)


def test_a_variadic_primitive_has_one_rule_that_receives_the_position():
    assert WEIGHTED.vjp(2)(np.float64(1.5), None) == 4.5
    assert fg.add.vjp(0) is not fg.add.vjp(1)  # each position its own bound rule
    a, b, c = (fg.param(n, (2,)) for n in "abc")
    g = fg.graph(objective=fg.sum(WEIGHTED(a, b, c)))
    source = fg.program_source(g)
    assert "b3_0(g3, v3, v0, v1, v2)" in source and "b3_2(g3, v3, v0, v1, v2)" in source  # bound when compiled
    _, grads = fg.value_and_grad(g)({n: RNG.normal(size=2) for n in "abc"})
    for i, n in enumerate("abc"):
        np.testing.assert_array_equal(grads[n], [i + 1.0, i + 1.0])
    batch = (RNG.normal(size=(4, 2)), RNG.normal(size=2), RNG.normal(size=(4, 2)))
    err = assert_grads_match(lambda *ns: WEIGHTED(*ns), *batch, batched=(True, False, True))
    assert err < 1e-7


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"vjps": (_weighted_grad, _weighted_grad)}, r"a variadic primitive has one VJP rule"),
        ({"vjps": (None,)}, r"a variadic primitive has one VJP rule"),
        ({"min_arity": -1}, r"min_arity must be a non-negative int"),
        ({"config_names": ("c", "c")}, r"config_names must be distinct names or \(name, default\) pairs"),
        ({"config_names": (("c",),)}, r"config_names must be distinct names or \(name, default\) pairs"),
        ({"reduces_batch": "yes"}, r"reduces_batch must be a bool or a function of the config"),
    ],
)
def test_a_variadic_primitive_that_cannot_work_is_refused_when_it_is_made(fields, message):
    base = {"name": "v", "forward": lambda *a: a[0], "vjps": (_weighted_grad,), "shape": fg.ops.broadcast_shape,
            "variadic": True}
    with pytest.raises(TypeError, match=message):
        fg.Primitive(**{**base, **fields})


def test_a_shape_error_of_a_prepare_hook_names_the_primitive_the_node_and_the_inputs():
    x = fg.input("x", (2, 3))
    with pytest.raises(fg.ShapeError, match=r"^concat node 'joined': axis 2 is out of range for per-example shape "
                                            r"\(2, 3\): axes -2 to 1 \(the batch axis is not counted\) "
                                            r"\(inputs: 'x' \(2, 3\), 'x' \(2, 3\)\)$"):
        fg.concat([x, x], 2, name="joined")


# ------------------------------------------------------------------ constant


def test_a_constant_is_a_read_only_copy_never_batched_and_never_trained():
    value = np.array([[1.0, 2.0], [3.0, 4.0]])
    c = fg.constant(value)
    value[0, 0] = 99.0  # the caller's array changes; the graph's does not
    stored = c.config["value"]
    assert c.role == "op" and c.inputs == () and c.shape == (2, 2) and not c.batched
    assert stored.dtype == np.float64 and not stored.flags.writeable and stored[0, 0] == 1.0
    with pytest.raises(ValueError, match="read-only"):
        stored[0, 0] = 5.0
    x = fg.input("x", (2,))
    out = fg.matmul(c, x)
    assert out.batched
    X = RNG.normal(size=(5, 2))
    np.testing.assert_allclose(_values(out, data={"x": X}), X @ np.array([[1.0, 2.0], [3.0, 4.0]]).T)
    w = fg.param("w", (2, 2))
    grads = fg.grad(fg.graph(objective=fg.sum(fg.mul(w, c))))({"w": np.ones((2, 2))})
    assert list(grads) == ["w"]
    np.testing.assert_array_equal(grads["w"], [[1.0, 2.0], [3.0, 4.0]])


def test_different_constants_never_share_an_auto_name_and_equal_ones_are_one_node():
    # NumPy's repr elides the middle of arrays of more than 1000 entries: these two print alike.
    a = np.zeros(2000)
    b = a.copy()
    b[1000] = 1.0
    assert repr(a) == repr(b)
    ca, cb = fg.constant(a), fg.constant(b)
    assert ca.name != cb.name
    g = fg.graph(a=fg.sum(ca), b=fg.sum(cb), again=fg.sum(fg.constant(a.copy())))
    assert sum(1 for n in g.nodes if n.op is fg.constant) == 2
    values = fg.forward(g, {})
    assert (values["a"], values["b"], values["again"]) == (0.0, 1.0, 0.0)
    assert fg.constant(np.float32(0.5)).name == fg.constant(0.5).name  # stored as float64 either way


def test_a_scalar_constant_and_an_integer_one_are_float64():
    assert _values(fg.constant(3)) == 3.0 and isinstance(_values(fg.constant(3)), np.float64)
    np.testing.assert_array_equal(_values(fg.constant([1, 2])), [1.0, 2.0])


def test_nothing_returned_aliases_a_stored_constant():
    # The forward rule returns the stored array itself (no copy per step); the
    # public API copies a result that is read-only, as the stored constant is.
    c = fg.constant(np.arange(6.0).reshape(2, 3))
    assert c.op.forward(c.config["value"]) is c.config["value"]
    g = fg.graph(whole=c, row=c[1], flat=fg.reshape(c, (6,)))
    for value in fg.forward(g, {}).values():
        assert not np.shares_memory(value, c.config["value"])
    w = fg.param("w", (2, 3))
    _, grads = fg.value_and_grad(fg.graph(objective=fg.sum(fg.mul(w, c))))({"w": np.ones((2, 3))})
    assert not np.shares_memory(grads["w"], c.config["value"])


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ("1.5", TypeError, r"constant: value must be a real number or an array of them, got str"),
        (1 + 2j, TypeError, r"constant: value must be a real number or an array of them, got complex"),
        ([1.0, "a"], TypeError, r"constant: value must be a real number"),
        (np.array([1.0, np.nan]), ValueError, r"constant: value must be finite, got 1 NaN or inf entries"),
        (np.inf, ValueError, r"constant: value must be finite"),
        (np.zeros((2, 0)), fg.ShapeError, r"constant: the value has no elements \(shape \(2, 0\)\)"),
    ],
)
def test_a_constant_of_a_bad_value_is_refused(value, error, message):
    with pytest.raises(error, match=message):
        fg.constant(value)


def test_a_node_is_not_a_constant_value():
    with pytest.raises(TypeError, match="constant takes 0 nodes, got 1"):
        fg.constant(fg.param("w", (2,)))


# ------------------------------------------------------------------- getitem


def test_equal_selections_are_one_node():
    x = fg.input("x", (3, 4))
    first = fg.getitem(x, 0)
    assert {x[0].name, x[0, ...].name, x[(0,)].name, x[-3].name, x[np.int64(0)].name, x[0, :].name,
            x[0, 0:4].name, x[0, ::1].name, x[0, -9:9].name} == {first.name}
    assert x[:, 1].name == x[0:3, 1].name == x[..., 1].name != x[1].name
    assert x[::-1].name == x[2::-1].name == x[-1:-4:-1].name
    assert x[0].shape == (4,) and x[:, 1].shape == (3,) and x[1:, ::2].shape == (2, 2) and x[2, 3].shape == ()


def test_indexing_leaves_the_batch_axis_alone():
    x = fg.input("x", (3, 2))
    X = RNG.normal(size=(5, 3, 2))
    np.testing.assert_array_equal(_values(x[-1], data={"x": X}), X[:, -1])
    np.testing.assert_array_equal(_values(x[..., 0], data={"x": X}), X[:, :, 0])
    np.testing.assert_array_equal(_values(x[1, 1], data={"x": X[0]}), X[0, 1, 1])


@pytest.mark.parametrize(
    ("key", "error", "message"),
    [
        (3, fg.ShapeError, r"index 3 is out of range for axis 0 of per-example shape \(3, 2\) \(length 3\)"),
        ((0, -3), fg.ShapeError, r"index -3 is out of range for axis 1"),
        ((0, 0, 0), fg.ShapeError, r"too many indices: 3 for per-example shape \(3, 2\)"),
        (slice(5, None), fg.ShapeError, r"selects no element of axis 0 \(length 3\)"),
        ((0, slice(1, 1)), fg.ShapeError, r"selects no element of axis 1"),
        (None, TypeError, r"None \(np.newaxis\) is not supported; add the axis with reshape"),
        (np.array([0, 1]), TypeError, r"basic indexing only .*got ndarray"),
        ([0, 1], TypeError, r"basic indexing only .*got list"),
        (True, TypeError, r"must be an int, got the bool True"),
        (1.0, TypeError, r"basic indexing only .*got float"),
        ((Ellipsis, 0, Ellipsis), TypeError, r"only one ellipsis"),
        (slice(None, None, 0), ValueError, r"slice step cannot be zero"),
        (slice(0.5, None), TypeError, r"slice bound 0.5 must be an int"),
    ],
)
def test_a_bad_index_is_refused_naming_what_does_not_fit(key, error, message):
    x = fg.input("x", (3, 2))
    with pytest.raises(error, match=message):
        x[key]
    with pytest.raises(error, match=message):
        fg.getitem(x, key)


def test_a_shape_error_from_indexing_names_the_node():
    with pytest.raises(fg.ShapeError, match=r"^getitem: index 3 .*\(inputs: 'x' \(3,\)\)$"):
        fg.input("x", (3,))[3]


# ------------------------------------------------------------- concat, stack


def test_concat_repeats_an_unbatched_node_over_the_batch_and_sums_its_cotangent_back():
    x, p = fg.input("x", (2,)), fg.param("p", (3,))
    joined = fg.concat([x, p])
    assert joined.shape == (5,) and joined.batched
    X, P = RNG.normal(size=(4, 2)), RNG.normal(size=3)
    np.testing.assert_array_equal(_values(joined, {"p": P}, {"x": X}), np.hstack([X, np.tile(P, (4, 1))]))
    u = RNG.normal(size=(4, 5))
    grads = fg.backward(fg.graph(out=joined), {"p": P}, {"x": X}, output="out", cotangent=u, wrt=["x", "p"])
    np.testing.assert_array_equal(grads["x"], u[:, :2])
    np.testing.assert_allclose(grads["p"], u[:, 2:].sum(0), rtol=1e-15)


def test_stack_repeats_an_unbatched_node_over_the_batch_and_sums_its_cotangent_back():
    x, h0 = fg.input("x", (3,)), fg.constant(np.zeros(3))
    p = fg.param("p", (3,))
    stacked = fg.stack([p, x, h0], axis=-1)
    assert stacked.shape == (3, 3) and stacked.batched
    X, P = RNG.normal(size=(2, 3)), RNG.normal(size=3)
    expected = np.stack([np.tile(P, (2, 1)), X, np.zeros((2, 3))], axis=-1)
    np.testing.assert_array_equal(_values(stacked, {"p": P}, {"x": X}), expected)
    u = RNG.normal(size=(2, 3, 3))
    grads = fg.backward(fg.graph(out=stacked), {"p": P}, {"x": X}, output="out", cotangent=u, wrt=["x", "p"])
    np.testing.assert_array_equal(grads["x"], u[..., 1])
    np.testing.assert_allclose(grads["p"], u[..., 0].sum(0), rtol=1e-15)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda a, b, s: fg.concat([a, b], 1),
         r"shapes must match off axis 1: node 1 has \(3, 4\), node 0 has \(2, 3\) \(axis 0 differs\)"),
        (lambda a, b, s: fg.concat([a, s]), r"every node needs per-example rank 2, got shapes \[\(2, 3\), \(\)\]"),
        (lambda a, b, s: fg.concat([s, s]), r"axis 0 is out of range for per-example shape \(\): no axes"),
        (lambda a, b, s: fg.concat([a, a], -3),
         r"axis -3 is out of range for per-example shape \(2, 3\): axes -2 to 1"),
        (lambda a, b, s: fg.stack([a, b]),
         r"every node needs the same per-example shape: node 1 has \(3, 4\), node 0 has \(2, 3\)"),
        (lambda a, b, s: fg.stack([a, a], 3),
         r"axis 3 is out of range for a new axis in per-example shape \(2, 3\): axes -3 to 2"),
    ],
)
def test_joining_nodes_that_do_not_fit_is_a_shape_error_that_says_why(build, message):
    with pytest.raises(fg.ShapeError, match=message):
        build(fg.param("a", (2, 3)), fg.input("b", (3, 4)), fg.param("s", ()))


def test_stack_of_scalars_and_negative_axes_name_one_node():
    a, b = fg.param("a", ()), fg.input("b", ())
    assert fg.stack([a, b]).shape == (2,)
    m = fg.param("m", (2, 3))
    assert fg.concat([m, m], -1).name == fg.concat([m, m], 1).name
    assert fg.stack([m, m], -1).name == fg.stack([m, m], 2).name and fg.stack([m, m], -1).shape == (2, 3, 2)


# ------------------------------------------------------- reshape, transpose


def test_reshape_infers_one_minus_one_and_keeps_the_batch_axis():
    x = fg.input("x", (2, 3))
    assert fg.reshape(x, (-1,)).name == fg.reshape(x, (6,)).name == fg.reshape(x, 6).name
    assert fg.reshape(x, (3, -1)).shape == (3, 2)
    X = RNG.normal(size=(4, 2, 3))
    np.testing.assert_array_equal(_values(fg.reshape(x, (3, 2)), data={"x": X}), X.reshape(4, 3, 2))
    assert fg.reshape(fg.param("s", ()), (1, 1)).shape == (1, 1)
    assert fg.reshape(fg.param("one", (1, 1)), ()).shape == ()


@pytest.mark.parametrize(
    ("shape", "error", "message"),
    [
        ((4,), fg.ShapeError, r"cannot reshape per-example shape \(2, 3\) \(6 elements\) to \(4,\)"),
        ((4, -1), fg.ShapeError, r"cannot reshape per-example shape \(2, 3\) \(6 elements\) to \(4, -1\)"),
        ((-1, -1), fg.ShapeError, r"at most one -1"),
        ((6, 0), fg.ShapeError, r"entries must be positive"),
        ((2.0, 3), TypeError, r"reshape: a shape entry must be an int, got float"),
        ("6", TypeError, r"reshape: shape must be a tuple of ints, got str"),
    ],
)
def test_a_reshape_that_does_not_fit_is_refused(shape, error, message):
    with pytest.raises(error, match=message):
        fg.reshape(fg.input("x", (2, 3)), shape)


def test_transpose_reverses_by_default_and_keeps_the_batch_axis_first():
    x = fg.input("x", (2, 3, 4))
    assert fg.transpose(x).shape == (4, 3, 2)
    assert fg.transpose(x).name == fg.transpose(x, (2, 1, 0)).name == fg.transpose(x, (-1, 1, -3)).name
    X = RNG.normal(size=(5, 2, 3, 4))
    np.testing.assert_array_equal(_values(fg.transpose(x, (1, 2, 0)), data={"x": X}), X.transpose(0, 2, 3, 1))


@pytest.mark.parametrize(
    ("axes", "error", "message"),
    [
        ((0, 0), fg.ShapeError, r"axes \(0, 0\) are not a permutation of the 2 per-example axes of \(2, 3\)"),
        ((0,), fg.ShapeError, r"axes \(0,\) are not a permutation"),
        ((0, 2), fg.ShapeError, r"axis 2 is out of range for per-example shape \(2, 3\)"),
        (1, TypeError, r"transpose: axes must be a tuple of ints or None, got int"),
    ],
)
def test_a_transpose_that_is_not_a_permutation_is_refused(axes, error, message):
    with pytest.raises(error, match=message):
        fg.transpose(fg.input("x", (2, 3)), axes)


# ------------------------------------------------------- sum, mean over axes


def test_sum_and_mean_without_axis_reduce_the_batch_too_and_with_one_keep_it():
    x = fg.input("x", (2, 3))
    X = RNG.normal(size=(4, 2, 3))
    assert fg.sum(x).shape == () and not fg.sum(x).batched
    assert _values(fg.sum(x), data={"x": X}) == pytest.approx(X.sum(), rel=1e-14)
    rows = fg.sum(x, axis=1)
    assert rows.shape == (2,) and rows.batched and rows.name == fg.sum(x, -1).name == fg.sum(x, (1,)).name
    np.testing.assert_allclose(_values(rows, data={"x": X}), X.sum(axis=2), rtol=1e-15)
    every = fg.mean(x, axis=(0, 1))
    assert every.shape == () and every.batched
    np.testing.assert_allclose(_values(every, data={"x": X}), X.mean(axis=(1, 2)), rtol=1e-15)
    u = RNG.normal(size=4)
    grads = fg.backward(fg.graph(out=every), {}, {"x": X}, output="out", cotangent=u, wrt=["x"])
    np.testing.assert_allclose(grads["x"], np.broadcast_to(u[:, None, None] / 6, X.shape), rtol=1e-15)


@pytest.mark.parametrize(
    ("axis", "error", "message"),
    [
        (2, fg.ShapeError, r"sum: axis 2 is out of range for per-example shape \(2, 3\): axes -2 to 1"),
        ((0, -2), fg.ShapeError, r"axis \(0, -2\) names an axis twice"),
        (0.5, TypeError, r"sum: axis must be an int, got float"),
    ],
)
def test_a_bad_axis_of_a_reduction_is_refused(axis, error, message):
    with pytest.raises(error, match=message):
        fg.sum(fg.input("x", (2, 3)), axis)


# ----------------------------------------------------------------- operators


def test_each_operator_builds_the_builders_node():
    a, b = fg.param("a", (3,)), fg.input("b", (3,))
    M = fg.param("M", (2, 3))
    assert (a + b).name == fg.add(a, b).name
    assert (a - b).name == fg.sub(a, b).name
    assert (a * b).name == fg.mul(a, b).name
    assert (a / b).name == fg.div(a, b).name
    assert (M @ b).name == fg.matmul(M, b).name
    assert (-a).name == fg.scale(a, -1.0).name
    assert a[1:].name == fg.getitem(a, slice(1, None)).name


def test_a_scalar_operand_builds_a_scale_or_a_constant():
    x = fg.input("x", (3,))
    for node in (x * 2.0, 2.0 * x, np.float64(2.0) * x, x * np.int64(2), 2 * x):
        assert isinstance(node, fg.Node) and node.op is fg.scale and node.config["c"] == 2.0
    X = np.array([[0.5, -2.0, 4.0]])
    cases = {"x + 1.0": (x + 1.0, X + 1.0), "1.0 + x": (1.0 + x, 1.0 + X), "x - 1.5": (x - 1.5, X - 1.5),
             "1.5 - x": (1.5 - x, 1.5 - X), "x / 3.0": (x / 3.0, X / 3.0), "3.0 / x": (3.0 / x, 3.0 / X),
             "np.float64(3) / x": (np.float64(3.0) / x, 3.0 / X)}
    for text, (node, expected) in cases.items():
        assert any(i.op is fg.constant for i in node.inputs), text
        np.testing.assert_array_equal(_values(node, data={"x": X}), expected, err_msg=text)  # exactly NumPy's


def test_adding_zero_is_the_node_itself_so_pythons_sum_works():
    a, b, c = (fg.param(n, (2,)) for n in "abc")
    assert 0 + a is a and a + 0 is a and 0.0 + a is a
    assert sum([a, b, c]).name == fg.add(fg.add(a, b), c).name


def test_an_operand_that_is_not_a_node_or_a_scalar_is_a_type_error():
    x = fg.input("x", (3,))
    with pytest.raises(
        TypeError, match=r"cannot apply \+ to a Node and a NumPy array of shape \(3,\).*fgraph.constant"
    ):
        np.ones(3) + x
    with pytest.raises(TypeError, match=r"cannot apply \* to a Node and a NumPy array.*fgraph.constant"):
        x * np.ones(3)
    with pytest.raises(TypeError, match=r"cannot apply @ to a Node and a NumPy array"):
        np.ones((2, 3)) @ x
    for bad in (lambda: x + "a", lambda: x * None, lambda: True * x, lambda: x @ 2.0):
        with pytest.raises(TypeError, match="unsupported operand"):
            bad()
    with pytest.raises(ZeroDivisionError, match="division of a node by zero"):
        x / 0


def test_nodes_keep_identity_equality_and_are_not_iterable():
    assert "__eq__" not in vars(fg.Node) and fg.Node.__eq__ is object.__eq__
    x, same_name = fg.input("x", (2,)), fg.input("x", (2,))
    itself = x
    assert x == itself and x != same_name and len({x, same_name}) == 2
    with pytest.raises(TypeError, match="not iterable"):
        iter(x)
    with pytest.raises(TypeError, match="not iterable"):
        list(x)


# ------------------------------------------------------------ all together


def test_a_small_recurrent_network_built_from_these_pieces_has_right_gradients():
    """h_t = tanh(W [x_t; h_{t-1}] + b) from a constant h_0, then a linear
    read-out of every state, stacked: the gradients through the time steps,
    the shared weights and the constant match central differences."""
    T, d, k = 4, 2, 3
    x, y = fg.input("x", (T, d)), fg.input("y", (T,))
    W, b, v = fg.param("W", (k, d + k)), fg.param("b", (k,)), fg.param("v", (k,))
    h = fg.constant(np.full(k, 0.1))
    states = []
    for t in range(T):
        h = fg.tanh(W @ fg.concat([x[t], h]) + b)
        states.append(h)
    readout = fg.stack(states) @ v  # (T,)
    objective = fg.squared_l2_distance(readout, y) + 0.01 * fg.sum(fg.square(v))
    g = fg.graph(prediction=readout, objective=objective)
    params = {"W": RNG.normal(size=(k, d + k)) * 0.5, "b": RNG.normal(size=k) * 0.1, "v": RNG.normal(size=k)}
    for lead in ((), (5,)):
        data = {"x": RNG.normal(size=lead + (T, d)), "y": RNG.normal(size=lead + (T,))}
        report = fg.check_grads(g, params, data)
        assert report.ok, report
