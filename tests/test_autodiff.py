"""The assignment's graphs, evaluated and differentiated: against finite
differences, against formulas written out by hand, with shared params, with
batches, and as pure functions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import fgraph as fg
from fgraph.testing import arrays, batch_sizes, graphs, labels


def ridge(d, l2_reg):
    x, y = fg.input("x", (d,)), fg.input("y")
    w, b = fg.param("w", (d,)), fg.param("b")
    pred = fg.vector_scalar_affine(x, w, b)
    J = fg.add(fg.squared_l2_distance(pred, y), fg.l2_norm_penalty(w, l2_reg))
    return fg.graph(prediction=pred, objective=J)


def mlp_regression(d, h):
    x, y = fg.input("x", (d,)), fg.input("y")
    W1, b1 = fg.param("W1", (h, d)), fg.param("b1", (h,))
    w2, b2 = fg.param("w2", (h,)), fg.param("b2")
    pred = fg.vector_scalar_affine(fg.tanh(fg.affine(W1, x, b1)), w2, b2)
    return fg.graph(prediction=pred, objective=fg.squared_l2_distance(pred, y))


def mlp_classifier(d, h, k, fused=False):
    x, y = fg.input("x", (d,)), fg.input("y")
    W1, b1 = fg.param("W1", (h, d)), fg.param("b1", (h,))
    W2, b2 = fg.param("W2", (k, h)), fg.param("b2", (k,))
    logits = fg.affine(W2, fg.tanh(fg.affine(W1, x, b1)), b2)
    p = fg.softmax(logits)
    J = fg.softmax_cross_entropy(logits, y) if fused else fg.nll(p, y)
    return fg.graph(prediction=p, objective=J)


@st.composite
def ridge_problem(draw, batched=True):
    d = draw(st.integers(1, 6))
    lead = (draw(batch_sizes()),) if batched else ()
    params = {"w": draw(arrays((d,))), "b": draw(arrays(()))}
    data = {"x": draw(arrays(lead + (d,))), "y": draw(arrays(lead))}
    return d, draw(st.floats(0, 3)), params, data


@given(ridge_problem())
def test_ridge_gradients_match_the_formula_written_by_hand(problem):
    d, l2, params, data = problem
    value, grads = fg.value_and_grad(ridge(d, l2))(params, data)
    X, y, w, b = data["x"], data["y"], params["w"], params["b"]
    r = X @ w + b - y  # residuals
    np.testing.assert_allclose(value, np.mean(r**2) + l2 * w @ w, rtol=1e-12)
    np.testing.assert_allclose(grads["w"], 2 * X.T @ r / len(y) + 2 * l2 * w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads["b"], 2 * np.mean(r), rtol=1e-10, atol=1e-12)


@given(st.data(), st.none() | batch_sizes())
def test_mlp_regression_gradients_match_backprop_written_by_hand(data, batch):
    d, h = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 5))
    lead = () if batch is None else (batch,)
    p = {
        "W1": data.draw(arrays((h, d))), "b1": data.draw(arrays((h,))),
        "w2": data.draw(arrays((h,))), "b2": data.draw(arrays(())),
    }
    X, y = data.draw(arrays(lead + (d,))), data.draw(arrays(lead))
    _, grads = fg.value_and_grad(mlp_regression(d, h))(p, {"x": X, "y": y})
    Xb, yb = np.atleast_2d(X), np.atleast_1d(y)
    A = Xb @ p["W1"].T + p["b1"]  # pre-activations, (B, h)
    H = np.tanh(A)
    r = H @ p["w2"] + p["b2"] - yb
    dpred = 2 * r / len(yb)  # ∂J/∂prediction
    dA = np.outer(dpred, p["w2"]) * (1 - H**2)  # ∂J/∂A = ∂J/∂H ⊙ tanh'(A)
    expected = {"w2": H.T @ dpred, "b2": dpred.sum(), "W1": dA.T @ Xb, "b1": dA.sum(0)}
    for k, v in expected.items():
        np.testing.assert_allclose(grads[k], v, rtol=1e-9, atol=1e-12, err_msg=k)


@given(st.data(), st.booleans())
def test_classifier_gradients_match_softmax_minus_onehot(data, fused):
    d, h, k, B = 2, data.draw(st.integers(1, 4)), data.draw(st.integers(2, 4)), data.draw(batch_sizes())
    p = {
        "W1": data.draw(arrays((h, d))), "b1": data.draw(arrays((h,))),
        "W2": data.draw(arrays((k, h))), "b2": data.draw(arrays((k,))),
    }
    X, y = data.draw(arrays((B, d))), data.draw(labels(k, (B,)))
    value, grads = fg.value_and_grad(mlp_classifier(d, h, k, fused))(p, {"x": X, "y": y})
    H = np.tanh(X @ p["W1"].T + p["b1"])
    Z = H @ p["W2"].T + p["b2"]
    P = np.exp(Z - Z.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    np.testing.assert_allclose(value, -np.mean(np.log(P[np.arange(B), y])), rtol=1e-10)
    dZ = (P - np.eye(k)[y]) / B
    np.testing.assert_allclose(grads["W2"], dZ.T @ H, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(grads["b2"], dZ.sum(0), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize(
    "make, shapes_",
    [
        (lambda: ridge(5, 0.5), {"w": (5,), "b": ()}),
        (lambda: mlp_regression(3, 4), {"W1": (4, 3), "b1": (4,), "w2": (4,), "b2": ()}),
        (lambda: mlp_classifier(2, 3, 3), {"W1": (3, 2), "b1": (3,), "W2": (3, 3), "b2": (3,)}),
        (lambda: mlp_classifier(2, 3, 3, fused=True), {"W1": (3, 2), "b1": (3,), "W2": (3, 3), "b2": (3,)}),
    ],
    ids=["ridge", "mlp_regression", "classifier_nll", "classifier_fused"],
)
@given(data=st.data(), batch=st.none() | batch_sizes())
def test_assignment_graphs_pass_the_whole_graph_gradient_check(make, shapes_, data, batch):
    g = make()
    lead = () if batch is None else (batch,)
    params = {k: data.draw(arrays(s)) for k, s in shapes_.items()}
    feed = {"x": data.draw(arrays(lead + g.inputs["x"]))}
    feed["y"] = data.draw(labels(3, lead)) if "y" in g.labels else data.draw(arrays(lead))
    report = fg.check_grads(g, params, feed)
    assume(not report.unresolved)  # a point where differences resolve nothing tests nothing: draw another
    assert report.ok, report


@given(graphs())
def test_random_graphs_pass_the_gradient_check(case):
    g, params, data = case
    report = fg.check_grads(g, params, data)
    assume(not report.unresolved)  # a point where differences resolve nothing tests nothing: draw another
    assert report.ok, report


@given(st.integers(1, 4), arrays((3,)), arrays((2, 3)))
def test_a_param_used_k_times_gets_the_sum_of_k_contributions(k, w, X):
    # objective = Σ_i sum(w ⊙ x) used k times: gradient k · Σ_b x_b, i.e. each use's term, merged by adding
    x, w_node = fg.input("x", (3,)), fg.param("w", (3,))
    uses = [fg.sum(fg.mul(fg.scale(x, float(i + 1)), w_node)) for i in range(k)]
    total = uses[0]
    for u in uses[1:]:
        total = fg.add(total, u)
    grads = fg.grad(fg.graph(objective=total))({"w": w}, {"x": X})
    terms = [{"w": (i + 1) * X.sum(0)} for i in range(k)]
    # The program sums (i+1)·x_b over the batch, the terms (i+1)·Σ_b x_b: the same up to rounding of the
    # summands, which is relative to their size, not to a sum that cancels (rows -0.99999 and 1: 1e-5).
    scale = k * (k + 1) / 2 * np.abs(X).sum(0)
    np.testing.assert_allclose(grads["w"], fg.merge_grads(*terms)["w"], rtol=1e-12, atol=1e-14 * scale.max())


def test_ridge_shared_w_gets_prediction_term_plus_penalty_term():
    g = ridge(2, 0.5)
    params, data = {"w": np.array([1.0, -2.0]), "b": np.array(0.5)}, {"x": np.array([3.0, 1.0]), "y": np.array(2.0)}
    r = 3.0 - 2.0 + 0.5 - 2.0  # x·w + b - y = -0.5
    grads = fg.grad(g)(params, data)
    assert np.allclose(grads["w"], fg.merge_grads({"w": 2 * r * data["x"]}, {"w": 2 * 0.5 * params["w"]})["w"])


def test_merge_grads_adds_shared_keys_and_keeps_the_others():
    merged = fg.merge_grads({"w": np.ones(2)}, {"w": np.ones(2), "b": np.array(3.0)})
    assert np.array_equal(merged["w"], [2.0, 2.0]) and merged["b"] == 3.0


@given(ridge_problem())
def test_a_batch_gives_the_mean_of_its_examples_values_and_gradients(problem):
    d, l2, params, data = problem
    f = fg.value_and_grad(ridge(d, l2))
    value, grads = f(params, data)
    singles = [f(params, {k: v[i] for k, v in data.items()}) for i in range(len(data["y"]))]
    np.testing.assert_allclose(value, np.mean([v for v, _ in singles]), rtol=1e-12)
    for name in grads:
        np.testing.assert_allclose(
            grads[name], np.mean([gr[name] for _, gr in singles], axis=0), rtol=1e-10, atol=1e-12
        )


@given(ridge_problem(batched=False))
def test_a_batch_of_one_equals_the_example_to_the_last_bit(problem):
    d, l2, params, data = problem
    f = fg.value_and_grad(ridge(d, l2))
    value, grads = f(params, data)
    value1, grads1 = f(params, {k: np.asarray(v)[None] for k, v in data.items()})
    assert value == value1
    assert all(np.array_equal(grads[k], grads1[k]) for k in grads)


def test_unreachable_params_get_zero_gradients_of_their_shape():
    x = fg.input("x", (2,))
    used, unused = fg.param("used", (2,)), fg.param("unused", (3, 2))
    g = fg.graph(objective=fg.sum(fg.mul(x, used)), other=fg.sum(unused))
    grads = fg.grad(g)({"used": np.ones(2), "unused": np.ones((3, 2))}, {"x": np.array([1.0, 2.0])})
    assert set(grads) == {"used", "unused"}
    assert grads["unused"].shape == (3, 2) and not grads["unused"].any()


def test_calls_are_pure_inputs_unchanged_results_repeatable_and_not_aliased():
    g = mlp_regression(3, 4)
    rng = np.random.default_rng(1)
    params = {"W1": rng.normal(size=(4, 3)), "b1": rng.normal(size=4), "w2": rng.normal(size=4), "b2": np.array(0.1)}
    data = {"x": rng.normal(size=(5, 3)), "y": rng.normal(size=5)}
    before = {k: v.copy() for k, v in {**params, **data}.items()}
    f = fg.value_and_grad(g)
    v1, g1 = f(params, data)
    v2, g2 = f(params, data)
    assert v1 == v2 and all(np.array_equal(g1[k], g2[k]) for k in g1)
    assert all(np.array_equal(before[k], v) for k, v in {**params, **data}.items())
    for k, v in g1.items():  # returned arrays are read-only and share no memory with inputs
        assert not np.shares_memory(v, params[k]) and not (getattr(v, "flags", None) and v.flags.writeable)
    out = fg.forward(g, params, data)
    assert not out["prediction"].flags.writeable


def test_an_output_that_is_a_param_is_returned_read_only_without_flagging_the_callers_array():
    w = fg.param("w", (2,))
    g = fg.graph(objective=fg.sum(w), w=w)
    mine = np.array([1.0, 2.0])
    out = fg.forward(g, {"w": mine})["w"]
    assert not out.flags.writeable and mine.flags.writeable


def test_gradients_passed_through_add_do_not_alias_each_other():
    a, b = fg.param("a", (2,)), fg.param("b", (2,))
    grads = fg.grad(fg.graph(objective=fg.sum(fg.add(a, b))))({"a": np.zeros(2), "b": np.zeros(2)})
    with pytest.raises(ValueError, match="read-only"):
        grads["a"][0] = 5.0


def test_prediction_needs_no_targets_and_extra_known_names_are_ignored():
    g = ridge(2, 1.0)
    params = {"w": np.ones(2), "b": np.array(0.0)}
    pred = fg.forward(g, params, {"x": np.ones((3, 2))}, outputs=["prediction"])["prediction"]
    assert pred.shape == (3,)
    pred2 = fg.forward(g, params, {"x": np.ones((3, 2)), "y": np.zeros(3)}, outputs="prediction")["prediction"]
    assert np.array_equal(pred, pred2)


def test_backward_with_a_cotangent_is_the_vector_jacobian_product():
    g = ridge(3, 0.0)
    rng = np.random.default_rng(2)
    params = {"w": rng.normal(size=3), "b": np.array(0.2)}
    X, u = rng.normal(size=(4, 3)), rng.normal(size=4)
    vjp = fg.backward(g, params, {"x": X}, output="prediction", cotangent=u)
    np.testing.assert_allclose(vjp["w"], X.T @ u)
    np.testing.assert_allclose(vjp["b"], u.sum())


def test_gradients_with_respect_to_a_data_input_are_given_only_when_asked():
    g = ridge(2, 0.0)
    params, data = {"w": np.array([1.0, 2.0]), "b": np.array(0.0)}, {"x": np.array([1.0, 1.0]), "y": np.array(0.0)}
    assert set(fg.grad(g)(params, data)) == {"w", "b"}
    grads = fg.grad(g, wrt=["w", "x"])(params, data)
    assert set(grads) == {"w", "x"}
    np.testing.assert_allclose(grads["x"], 2 * 3.0 * params["w"])


def test_repeated_subexpressions_are_shared_and_still_differentiate_correctly():
    x = fg.param("x", (2,))
    g = fg.graph(objective=fg.sum(fg.add(fg.tanh(x), fg.tanh(x))))
    assert sum(1 for n in g.nodes if n.op is fg.ops.TANH) == 1
    p = {"x": np.array([0.3, -0.7])}
    np.testing.assert_allclose(fg.grad(g)(p)["x"], 2 * (1 - np.tanh(p["x"]) ** 2))


def test_programs_are_compiled_once_on_first_use_and_never_per_call(monkeypatch):
    # graph() compiles nothing; the first call compiles what it needs, later calls only run it.
    import fgraph.program

    compiled = []
    real = fgraph.program._Emitter.compile
    monkeypatch.setattr(fgraph.program._Emitter, "compile", lambda self, *a: compiled.append(a[0]) or real(self, *a))
    g = ridge(2, 1.0)
    x = fg.input("x", (2,))
    g3 = fg.graph(a=fg.sum(x), b=fg.mean(x), c=fg.tanh(x))
    assert compiled == []
    params, data = {"w": np.ones(2), "b": np.array(0.0)}, {"x": np.ones((3, 2)), "y": np.zeros(3)}
    for _ in range(3):
        assert set(fg.forward(g, params, data)) == {"prediction", "objective"}
        out = fg.forward(g3, {}, {"x": np.array([1.0, 3.0])}, outputs=["c", "a"])
        assert list(out) == ["c", "a"] and out["a"] == 4.0
        fg.value_and_grad(g)(params, data)
    assert compiled.count("forward") == 6  # fast and checked: two forward programs, the objective's own
    assert compiled.count("value_and_grad") == 2 and compiled.count("value_and_step") == 1
