"""The reference interpreter (fgraph.interpret): each use's contribution to a
param's gradient, merged, against the compiled value_and_grad, to the bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

import fgraph as fg
import models
from fgraph import interpret
from fgraph.ops import Primitive
from fgraph.testing import graphs


def _bits(a) -> bytes:
    """The float64 bytes of ``a``, with its shape: equal means equal to the last bit."""
    a = np.asarray(a, dtype=np.float64)
    return repr(a.shape).encode() + a.tobytes()


def _merged(g, found) -> dict:
    """merge(contributions), with the zeros value_and_grad gives a param the output does not read."""
    merged = interpret.merge(found)
    return {k: merged.get(k, np.zeros(shape)) for k, shape in g.params.items()}


def _ridge_problem(batch=5, d=4, l2_reg=0.7):
    m = models.ridge_regression(d, l2_reg)
    rng = np.random.default_rng(3)
    params = {"w": rng.normal(size=d), "b": np.float64(rng.normal())}
    data = {"x": rng.normal(size=(batch, d)), "y": rng.normal(size=batch)}
    return m.graph, params, data


@given(graphs(max_depth=6))
def test_merged_contributions_equal_value_and_grad_to_the_last_bit(problem):
    g, params, data = problem
    value, grads = fg.value_and_grad(g)(params, data)
    t = interpret.trace(g, params, data)
    merged = _merged(g, interpret.contributions(g, params, data))
    assert {k: _bits(v) for k, v in merged.items()} == {k: _bits(v) for k, v in grads.items()}
    assert _bits(t.values[g.outputs["objective"].name]) == _bits(value)
    for name in g.params:  # a trace's cotangent of a param is its gradient too
        assert _bits(t.cotangents.get(name, np.zeros(g.params[name]))) == _bits(grads[name])


@pytest.mark.parametrize("batch", [None, 1, 5])
def test_ridge_w_has_the_predictions_and_the_penaltys_contributions_which_sum_to_its_gradient(batch):
    g, params, data = _ridge_problem(batch=batch or 1, l2_reg=0.7)
    if batch is None:
        data = {k: v[0] for k, v in data.items()}
    found = interpret.contributions(g, params, data)
    assert list(found) == ["w", "b"]
    assert set(found["w"]) == {"prediction", "l2_penalty"} and set(found["b"]) == {"prediction"}
    X, y, w, b = np.atleast_2d(data["x"]), np.atleast_1d(data["y"]), params["w"], params["b"]
    r = X @ w + b - y
    np.testing.assert_allclose(found["w"]["prediction"], 2 * X.T @ r / len(y), rtol=1e-12)
    np.testing.assert_allclose(found["w"]["l2_penalty"], 2 * 0.7 * w, rtol=1e-12)
    _, grads = fg.value_and_grad(g)(params, data)
    assert _bits(found["w"]["prediction"] + found["w"]["l2_penalty"]) == _bits(grads["w"])
    assert _bits(found["b"]["prediction"]) == _bits(grads["b"])


def test_contributions_come_in_the_order_the_program_adds_them():
    # The compiled program adds a param's uses in reverse topological order
    # of their consumers: the penalty (added last to the graph) first.
    g, params, data = _ridge_problem()
    assert list(interpret.contributions(g, params, data)["w"]) == ["l2_penalty", "prediction"]


def test_a_node_using_a_param_twice_contributes_once_with_both_terms():
    w = fg.param("w", (3,))
    g = fg.graph(objective=fg.add(fg.sum(fg.mul(w, w, name="square")), fg.l2_norm_penalty(w, 2.0, name="pen")))
    params = {"w": np.array([1.0, -2.0, 0.5])}
    found = interpret.contributions(g, params)
    assert set(found["w"]) == {"square", "pen"}
    np.testing.assert_array_equal(found["w"]["square"], 2 * params["w"])  # w·g + g·w
    np.testing.assert_array_equal(found["w"]["pen"], 4 * params["w"])
    assert _bits(interpret.merge(found)["w"]) == _bits(fg.grad(g)(params)["w"])


BROADCASTING = Primitive(
    "broadcasting_mul", forward=lambda x, w: x * w, shape=lambda x, w: x, unbroadcast=True,
    vjps=(lambda g, out, x, w: g * w, lambda g, out, x, w: g * x),  # w's VJP keeps the batch axis
)


def test_a_cotangent_that_broadcasts_is_summed_down_to_the_params_shape():
    x, w = fg.input("x", (3,)), fg.param("w", (3,))
    g = fg.graph(objective=fg.mean(BROADCASTING(x, w, name="xw")))
    rng = np.random.default_rng(0)
    params, data = {"w": rng.normal(size=3)}, {"x": rng.normal(size=(4, 3))}
    found = interpret.contributions(g, params, data)
    assert found["w"]["xw"].shape == (3,)
    np.testing.assert_allclose(found["w"]["xw"], data["x"].sum(0) / 12)
    assert _bits(found["w"]["xw"]) == _bits(fg.grad(g)(params, data)["w"])


def test_a_param_the_output_does_not_read_has_no_contributions():
    w, v = fg.param("w", (2,)), fg.param("v", (2,))
    g = fg.graph(objective=fg.sum(w, name="total"), other=fg.sum(v))
    found = interpret.contributions(g, {"w": np.ones(2), "v": np.ones(2)})
    assert found.keys() == {"w", "v"} and found["v"] == {} and list(found["w"]) == ["total"]
    assert interpret.merge(found).keys() == {"w"}


def test_results_are_new_read_only_arrays_and_the_callers_are_untouched():
    w = fg.param("w", (3,))
    # add's VJP hands back its incoming cotangent: both uses see one array.
    h = fg.add(w, w, name="twice")
    g = fg.graph(objective=fg.sum(fg.add(h, w, name="thrice")))
    params = {"w": np.array([1.0, 2.0, 3.0])}
    before = params["w"].copy()
    found = interpret.contributions(g, params)
    arrays = list(found["w"].values())
    assert all(not a.flags.writeable for a in arrays)
    assert not np.shares_memory(arrays[0], arrays[1]) and not np.shares_memory(arrays[0], params["w"])
    np.testing.assert_array_equal(params["w"], before)
    assert params["w"].flags.writeable


def _error(call):
    with pytest.raises(Exception) as info:
        call()
    return type(info.value), str(info.value)


@pytest.mark.parametrize("change", [
    lambda p, d: ({"w": p["w"]}, d),                              # a param missing
    lambda p, d: ({**p, "wx": p["w"]}, d),                         # a typo
    lambda p, d: ({**p, "w": p["w"][:2]}, d),                      # a wrong shape
    lambda p, d: ({**p, "b": np.float64(np.nan)}, d),              # not finite
    lambda p, d: (p, {**d, "y": d["y"][:3]}),                      # unequal batch sizes
    lambda p, d: (p, {"x": d["x"]}),                               # data missing
])
def test_bad_params_or_data_get_value_and_grads_own_errors(change):
    g, params, data = _ridge_problem()
    p, d = change(params, data)
    assert _error(lambda: interpret.contributions(g, p, d)) == _error(lambda: fg.value_and_grad(g)(p, d))


def test_an_output_that_is_not_a_scalar_or_not_there_is_refused_by_name():
    g, params, data = _ridge_problem()
    with pytest.raises(fg.ShapeError, match="'prediction' is not a scalar"):
        interpret.contributions(g, params, data, output="prediction")
    with pytest.raises(fg.GraphError, match="no output 'loss'"):
        interpret.contributions(g, params, data, output="loss")
    with pytest.raises(TypeError, match="expected an fgraph Graph"):
        interpret.contributions("graph", params, data)


def test_the_traces_edges_are_the_backward_lines_of_the_program_in_order():
    g, params, data = _ridge_problem()
    t = interpret.trace(g, params, data)
    lines = [ln for ln in fg.program_source(g).splitlines() if " <- " in ln]
    assert len(lines) == len(t.edges)
    for line, e in zip(lines, t.edges):
        assert f"# {e.source!r} <- {g.node(e.consumer).op.name} {e.consumer!r}" in line


def test_merging_in_the_programs_order_is_what_makes_the_bits_equal():
    # Three uses whose sum depends on the order of the additions:
    # (1 + -1e16) + 1e16 = 0 but (1e16 + -1e16) + 1 = 1.
    w = fg.param("w")
    uses = [fg.scale(w, c, name=f"times {c:g}") for c in (1.0, -1e16, 1e16)]
    g = fg.graph(objective=fg.add(fg.add(uses[0], uses[1]), uses[2]))
    params = {"w": np.float64(0.5)}
    found = interpret.contributions(g, params)
    terms = [float(c) for c in found["w"].values()]
    assert terms == [1e16, -1e16, 1.0]  # reverse topological order of the consumers
    assert (terms[2] + terms[1]) + terms[0] != (terms[0] + terms[1]) + terms[2]  # the order matters here
    assert _bits(interpret.merge(found)["w"]) == _bits(fg.grad(g)(params)["w"]) == _bits(1.0)


def test_contributions_is_part_of_fgraphs_public_api():
    assert fg.contributions is interpret.contributions and "contributions" in fg.__all__


def test_a_trace_is_read_only_and_keeps_integer_labels_integers():
    x, y = fg.input("x", (3,)), fg.input("y")
    W = fg.param("W", (4, 3))
    g = fg.graph(objective=fg.softmax_cross_entropy(fg.matmul(W, x, name="logits"), y))
    rng = np.random.default_rng(0)
    params, data = {"W": rng.normal(size=(4, 3))}, {"x": rng.normal(size=(5, 3)), "y": np.array([0, 3, 1, 2, 0])}
    t = interpret.trace(g, params, data)
    assert t.values["y"].dtype.kind == "i" and np.array_equal(t.values["y"], data["y"])
    arrays = [*t.values.values(), *t.cotangents.values(), *(e.cotangent for e in t.edges)]
    assert all(not a.flags.writeable for a in arrays if isinstance(a, np.ndarray))
    assert params["W"].flags.writeable and data["y"].flags.writeable
