"""Numerics at the edges: huge logits, saturated units, probabilities at 0."""

from __future__ import annotations

import decimal
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fgraph as fg
from fgraph.testing import arrays


def _eval(builder, z, y=None):
    nodes = [fg.param("z", np.shape(z))]
    data = {}
    if y is not None:
        nodes.append(fg.input("y", ()))
        data["y"] = y
    g = fg.graph(out=builder(*nodes))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or invalid-value warnings allowed
        out = fg.forward(g, {"z": z}, data)["out"]
        cot = np.ones(np.shape(out))
        grads = fg.backward(g, {"z": z}, data, output="out", cotangent=cot if np.ndim(out) else None)
    return out, grads["z"]


@given(arrays((4,), -1e4, 1e4), st.integers(0, 3))
def test_softmax_family_is_finite_and_exact_for_logits_up_to_1e4(z, label):
    p, dp = _eval(fg.softmax, z)
    lp, dlp = _eval(fg.log_softmax, z)
    ce, dce = _eval(fg.softmax_cross_entropy, z, np.int64(label))
    for v in (p, dp, lp, dlp, ce, dce):
        assert np.all(np.isfinite(v))
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-12)
    shifted = z - z.max()
    np.testing.assert_allclose(lp, shifted - np.log(np.exp(shifted).sum()), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ce, -lp[label], rtol=1e-12, atol=1e-12)


def test_cross_entropy_of_a_confident_wrong_prediction_is_large_but_finite():
    ce, grad = _eval(fg.softmax_cross_entropy, np.array([1e4, -1e4, 0.0]), np.int64(1))
    assert ce == pytest.approx(2e4) and np.allclose(grad, [1.0, -1.0, 0.0])


@pytest.mark.parametrize("builder", [fg.tanh, fg.sigmoid])
def test_tanh_and_sigmoid_saturate_without_overflow(builder):
    z = np.array([-1e308, -1e4, -800.0, 0.0, 800.0, 1e4, 1e308])
    out, grad = _eval(lambda a: fg.sum(builder(a)), z)
    assert np.isfinite(out) and np.all(np.isfinite(grad))
    values, _ = _eval(builder, z)
    lo, hi = (-1.0, 1.0) if builder is fg.tanh else (0.0, 1.0)
    assert values[0] == lo and values[-1] == hi and np.all(grad[[0, 1, -2, -1]] == 0.0)


def test_nll_at_probability_zero_is_inf_never_a_silent_nan_gradient():
    with pytest.warns(fg.ops.ZeroProbabilityWarning):
        p = fg.param("p", (3,))
        g = fg.graph(out=fg.nll(p, fg.input("y", ())))
        out = fg.forward(g, {"p": np.array([0.0, 0.5, 0.5])}, {"y": np.int64(0)})["out"]
        grad = fg.backward(g, {"p": np.array([0.0, 0.5, 0.5])}, {"y": np.int64(0)}, output="out")["p"]
    assert out == np.inf and grad[0] == -np.inf and not np.isnan(grad).any()


def _stable_cross_entropy(z, label):
    """logsumexp(z) - z[label] and softmax(z) - onehot(label), computed with the max shifted out."""
    s = z - z.max()
    p = np.exp(s) / np.exp(s).sum()
    return np.log(np.exp(s).sum()) - s[label], p - np.eye(len(z))[label]


@pytest.mark.parametrize("gap", [800.0, 1e4])
@pytest.mark.parametrize("label", [0, 1, 2])
def test_nll_of_softmax_is_finite_and_exact_at_huge_logit_gaps(gap, label):
    z = np.array([0.0, gap, -gap])
    value, grad = _eval(lambda n, y: fg.nll(fg.softmax(n), y), z, np.int64(label))
    expected_value, expected_grad = _stable_cross_entropy(z, label)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(value, expected_value, rtol=1e-15)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-15, atol=1e-300)


def test_nll_of_softmax_keeps_the_softmax_node_as_the_prediction():
    z, y = fg.param("z", (3,)), fg.input("y")
    p = fg.softmax(z, name="prediction")
    g = fg.graph(prediction=p, objective=fg.nll(p, y, name="objective"))
    assert g.outputs["prediction"] is p and g.outputs["objective"].op.name == "nll_of_softmax"
    logits = np.array([0.0, 800.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = fg.forward(g, {"z": logits}, {"y": np.array([0, 1, 2, 0])})
        grads = fg.grad(g)({"z": logits}, {"y": np.array([0, 1, 2, 0])})
    np.testing.assert_array_equal(values["prediction"], [0.0, 1.0, 0.0])
    per_example = [_stable_cross_entropy(logits, label) for label in (0, 1, 2, 0)]
    np.testing.assert_allclose(values["objective"], np.mean([v for v, _ in per_example]), rtol=1e-15)
    np.testing.assert_allclose(grads["z"], np.mean([d for _, d in per_example], axis=0), rtol=1e-15)


def _sigmoid_reference(a: float, sign: int = 1):
    """σ(sign·a) to 50 significant digits."""
    with decimal.localcontext(decimal.Context(prec=50)):
        return float(1 / (1 + (-sign * decimal.Decimal(a)).exp()))


SIGMOID_GRID = np.concatenate([np.linspace(-700.0, 700.0, 2801), [-40.0, -35.0, -1e-3, -1e-12, 1e-12, 35.0, 40.0]])


def test_sigmoid_and_its_vjp_keep_full_relative_precision_on_the_whole_line():
    _, grad = _eval(lambda a: fg.sum(fg.sigmoid(a)), SIGMOID_GRID)
    values, _ = _eval(fg.sigmoid, SIGMOID_GRID)
    ref = np.array([_sigmoid_reference(a) for a in SIGMOID_GRID])
    ref_grad = ref * np.array([_sigmoid_reference(a, -1) for a in SIGMOID_GRID])  # σ(a) σ(-a)
    assert np.max(np.abs(values - ref) / ref) <= 1e-12
    assert np.max(np.abs(grad - ref_grad) / ref_grad) <= 1e-12


def _softplus_reference(a: float) -> float:
    """log(1 + eᵃ) = max(a, 0) + log1p(e^-|a|) to 50 significant digits
    (log1p of a tiny x by its series, which 1 + x would round away)."""
    with decimal.localcontext(decimal.Context(prec=50)):
        x = decimal.Decimal(-abs(a)).exp()
        log1p = x - x**2 / 2 + x**3 / 3 - x**4 / 4 if x < decimal.Decimal("1e-6") else (1 + x).ln()
        return float(decimal.Decimal(max(a, 0.0)) + log1p)


def test_softplus_and_its_vjp_keep_full_relative_precision_on_the_whole_line():
    # The naive log(1 + exp(a)) overflows above a ≈ 709.78 and returns 0 below
    # a ≈ -37; max(a, 0) + log1p(e^-|a|) does neither, and its VJP is σ(a).
    values, _ = _eval(fg.softplus, SIGMOID_GRID)
    _, grad = _eval(lambda a: fg.sum(fg.softplus(a)), SIGMOID_GRID)
    ref = np.array([_softplus_reference(a) for a in SIGMOID_GRID])
    ref_grad = np.array([_sigmoid_reference(a) for a in SIGMOID_GRID])
    assert np.max(np.abs(values - ref) / ref) <= 1e-12
    assert np.max(np.abs(grad - ref_grad) / ref_grad) <= 1e-12
    huge, _ = _eval(fg.softplus, np.array([-1e308, 1e308]))
    assert list(huge) == [0.0, 1e308]


def test_log_outside_its_domain_gives_minus_inf_and_nan_as_documented_never_a_shape_error():
    w = fg.param("w", (3,))
    g = fg.graph(objective=fg.sum(fg.log(w)), logs=fg.log(w))
    point = {"w": np.array([0.0, -1.0, 2.0])}
    with pytest.warns(RuntimeWarning):
        logs = fg.forward(g, point)["logs"]
    with pytest.warns(RuntimeWarning):
        value, grads = fg.value_and_grad(g)(point)
    assert logs[0] == -np.inf and np.isnan(logs[1]) and logs[2] == np.log(2.0)
    assert np.isnan(value) and grads["w"][0] == np.inf and grads["w"][1] == -1.0 and grads["w"][2] == 0.5
    for phrase in ("log(0) is -inf", "NaN", "checks", "DivergenceError"):
        assert phrase in fg.log.__doc__


def test_exp_overflows_to_inf_above_709_with_numpys_warning():
    z = fg.param("z", (2,))
    with pytest.warns(RuntimeWarning, match="overflow"):
        values = fg.forward(fg.graph(out=fg.exp(z)), {"z": np.array([709.0, 710.0])})["out"]
    assert np.isfinite(values[0]) and values[1] == np.inf


def test_maximum_gives_a_tie_to_its_first_argument_so_the_gradient_is_never_counted_twice():
    a, b = fg.param("a", (3,)), fg.param("b", (3,))
    g = fg.graph(objective=fg.sum(fg.maximum(a, b)))
    grads = fg.grad(g)({"a": np.array([1.0, 2.0, 3.0]), "b": np.array([1.0, 5.0, -3.0])})
    np.testing.assert_array_equal(grads["a"], [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(grads["b"], [0.0, 1.0, 0.0])
    # relu(a) = maximum(a, 0) has derivative 1 at the tie 0 here, where relu's own convention says 0
    same = fg.graph(objective=fg.sum(fg.maximum(a, fg.constant(0.0))))
    assert list(fg.grad(same)({"a": np.array([-1.0, 0.0, 1.0])})["a"]) == [0.0, 1.0, 1.0]


def test_div_by_zero_is_inf_with_numpys_warning_and_its_gradients_follow():
    a, b = fg.param("a", ()), fg.param("b", ())
    g = fg.graph(objective=fg.div(a, b))
    with pytest.warns(RuntimeWarning, match="divide by zero"):
        value, grads = fg.value_and_grad(g)({"a": 1.0, "b": 0.0})
    assert value == np.inf and grads["a"] == np.inf
