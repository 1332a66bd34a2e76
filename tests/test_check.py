"""The gradient checks: they catch wrong and NaN gradients, and do not cry wolf
on correct ones, including saturated units with near-zero gradients; users'
ops are checked one example at a time and on a batch.

(tests/test_check_trust.py measures both kinds of error rate at scale.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fgraph as fg
from fgraph.check import DEFAULT_TOLERANCE, compare_grads, gradient_error
from fgraph.ops import Primitive, apply, same_shape
from fgraph.testing import arrays, assert_grads_match

CUBE = Primitive("cube", forward=lambda a: a**3, vjps=(lambda g, out, a: 3 * g * a * a,), shape=same_shape)
WRONG_CUBE = Primitive("cube", forward=lambda a: a**3, vjps=(lambda g, out, a: 2 * g * a * a,), shape=same_shape)
NAN_CUBE = Primitive("cube", forward=lambda a: a**3, vjps=(lambda g, out, a: g * np.nan * a,), shape=same_shape)


@given(arrays(st.sampled_from([(), (3,), (2, 2)]), -2, 2))
def test_a_users_op_is_property_tested_in_a_few_lines(a):
    assert_grads_match(lambda x: apply(CUBE, x), a)


def test_a_wrong_vjp_is_caught():
    assert fg.check_op(lambda x: apply(WRONG_CUBE, x), np.array([0.5, -1.0, 2.0])) > 0.1
    with pytest.raises(AssertionError, match="disagree"):
        assert_grads_match(lambda x: apply(WRONG_CUBE, x), np.array([0.5, -1.0, 2.0]))


def test_a_nan_gradient_always_fails():
    assert fg.check_op(lambda x: apply(NAN_CUBE, x), np.array([0.5, 1.0])) == math.inf
    x, y = fg.input("x", (2,)), fg.param("w", (2,))
    g = fg.graph(objective=fg.sum(apply(NAN_CUBE, fg.mul(x, y))))
    report = fg.check_grads(g, {"w": np.ones(2)}, {"x": np.ones(2)})
    assert not report.ok and report.max_rel_error == math.inf and not report


def test_gradient_error_counts_only_what_the_numeric_uncertainty_cannot_explain():
    a = np.array([1.0, -2.0, 3.0])
    assert gradient_error(a, a + 1e-3, np.full(3, 1e-3)) == 0.0  # within the uncertainty
    assert gradient_error(a, a * 1.01, np.zeros(3)) == pytest.approx(0.01 / 1.01)
    assert gradient_error(-a, a, np.zeros(3)) == 2.0  # a sign flip
    # the part beyond the uncertainty: entry 0 is off by 0.5, 0.1 of which is explained
    assert gradient_error(a, a + [0.5, 0, 0], [0.1, 0, 0]) == pytest.approx(0.4 / np.linalg.norm(a + [0.4, 0, 0]))
    # an entry too noisy to resolve takes no part, the others keep their power
    assert gradient_error(a, [1e9, -2.02, 3.0], [1e10, 0, 0]) == pytest.approx(0.02 / np.linalg.norm([1, -2.02, 3]))
    # scale-free
    for c in (1e-300, 1e-10, 1e10, 1e300):
        assert gradient_error(c * a, c * a * 1.01, np.zeros(3)) == pytest.approx(0.01 / 1.01)
    assert gradient_error([1e-30], [0.0], [0.0]) == 1.0  # nothing is small enough to ignore by itself


def test_gradient_error_is_inf_for_nan_or_inf():
    assert gradient_error([np.nan], [1.0], [0.0]) == math.inf
    assert gradient_error([1.0], [np.inf], [0.0]) == math.inf
    assert gradient_error([1.0], [1.0], [np.nan]) == math.inf
    assert gradient_error([1.0], [1.0], [np.inf]) == 0.0  # unresolvable: no information, no failure


def _regression():
    x, y = fg.input("x", (3,)), fg.input("y")
    w, b = fg.param("w", (3,)), fg.param("b")
    pred = fg.vector_scalar_affine(x, w, b)
    g = fg.graph(objective=fg.add(fg.squared_l2_distance(pred, y), fg.l2_norm_penalty(w, 0.3)))
    rng = np.random.default_rng(4)
    return g, {"w": rng.normal(size=3), "b": np.array(0.2)}, {"x": rng.normal(size=(5, 3)), "y": rng.normal(size=5)}


def test_compare_grads_checks_a_given_gradient_and_check_grads_is_it_on_value_and_grad():
    g, params, data = _regression()
    _, grads = fg.value_and_grad(g)(params, data)
    assert compare_grads(g, grads, params, data) == fg.check_grads(g, params, data)
    wrong = {**grads, "w": np.asarray(grads["w"]) * [1, 1, -1]}
    report = compare_grads(g, wrong, params, data)
    assert not report.ok and report.errors["b"] == 0.0 and report.errors["w"] > 0.01
    inf_entry = {**grads, "b": np.float64(np.inf)}
    assert compare_grads(g, inf_entry, params, data).errors["b"] == math.inf


def test_compare_grads_names_a_misshapen_or_unknown_gradient():
    g, params, data = _regression()
    _, grads = fg.value_and_grad(g)(params, data)
    with pytest.raises(fg.ShapeError, match=r"'w' has shape \(2,\); 'w' has shape \(3,\)"):
        compare_grads(g, {**grads, "w": np.zeros(2)}, params, data)
    with pytest.raises(ValueError, match="'v'.*reads"):
        compare_grads(g, {**grads, "v": np.zeros(3)}, params, data)
    with pytest.raises(ValueError, match="relative step"):
        fg.check_grads(g, params, data, eps=0.0)


def test_check_grads_with_respect_to_data_and_the_old_keywords():
    g, params, data = _regression()
    report = fg.check_grads(g, params, data, wrt=("x", "w"), eps=1e-6, tolerance=1e-3, directions=5, seed=3)
    assert report.ok and set(report.errors) == {"x", "w"} and report.tolerance == 1e-3


def test_a_param_above_the_full_check_size_is_checked_by_projections():
    n = fg.check.FULL_CHECK_SIZE + 1
    w = fg.param("w", (n,))
    g = fg.graph(objective=fg.sum(apply(CUBE, w)))
    params = {"w": np.random.default_rng(0).normal(size=n)}
    assert fg.check_grads(g, params).ok
    wrong = fg.graph(objective=fg.sum(apply(WRONG_CUBE, w)))
    assert fg.check_grads(wrong, params, directions=1).max_rel_error > 0.1


def _bump(vjp):
    return Primitive("bump", forward=lambda a: np.exp(-1000 * a * a), vjps=(vjp,), shape=same_shape)


def test_where_the_function_is_flat_in_floating_point_a_tiny_gradient_passes_and_a_big_one_fails():
    # exp(-1000 a²) is 0.0 to the last bit near a = 3 and so is its derivative;
    # a sure classifier's loss is 0.0 while its gradient is 1e-100.
    right = _bump(lambda g, out, a: g * -2000 * a * out)
    assert fg.check_op(lambda x: apply(right, x), np.array([3.0, -4.0])) == 0.0
    wrong = _bump(lambda g, out, a: g * -2000 * a * out + 1e-3 * g)
    assert fg.check_op(lambda x: apply(wrong, x), np.array([3.0, -4.0])) > DEFAULT_TOLERANCE
    x, y = fg.input("x", (2,)), fg.input("y")
    W = fg.param("W", (3, 2))
    g = fg.graph(objective=fg.softmax_cross_entropy(fg.matmul(W, x), y))
    params = {"W": np.array([[300.0, 0.0], [0.0, 300.0], [-300.0, 0.0]])}
    data = {"x": np.array([1.0, 0.2]), "y": np.array(0)}
    value, grads = fg.value_and_grad(g)(params, data)
    assert value == 0.0 and 0 < np.abs(grads["W"]).max() < 1e-100
    assert fg.check_grads(g, params, data).ok
    assert not compare_grads(g, {"W": np.asarray(grads["W"]) + 1e-9}, params, data).ok


def test_nan_anywhere_fails():
    nan_vjp = _bump(lambda g, out, a: g * np.nan)
    assert fg.check_op(lambda x: apply(nan_vjp, x), np.array([3.0, -4.0])) == math.inf
    nan_near = Primitive(
        "log", forward=lambda a: np.log(a - 1.0), vjps=(lambda g, out, a: g / (a - 1.0),), shape=same_shape
    )
    assert fg.check_op(lambda x: apply(nan_near, x), np.array([1.0 + 1e-7, 2.0])) == math.inf  # steps cross the pole


# ------------------------------------------- assert_grads_match on a batch


def _per_example_scale_by_first(g, out, a):
    # d(a·a₀)/da = a₀ I + e₀ aᵀ, for one example (a 1-D vector)
    grad = g * a[0]
    grad[0] += np.dot(g, a)
    return grad


ROW_SUM = Primitive(
    "row_sum", forward=lambda a: a.sum(), vjps=(lambda g, out, a: np.full(a.shape, g),), shape=lambda a: ()
)
# a[0] is the first entry of one example, but the first example of a batch
SCALE_BY_FIRST = Primitive(
    "scale_by_first", forward=lambda a: a * a[0], vjps=(_per_example_scale_by_first,), shape=same_shape
)
# right for one example; on a batch, the cotangent is summed over the examples
SQUARE_SUMMING_THE_BATCH = Primitive(
    "square",
    forward=lambda a: a * a,
    vjps=(lambda g, out, a: (2 * g * a).reshape(-1, a.shape[-1]).sum(0) if a.ndim > 1 else 2 * g * a,),
    shape=same_shape,
)
VECTOR = np.array([0.5, -1.2, 2.0])


@pytest.mark.parametrize("prim", [ROW_SUM, SCALE_BY_FIRST, SQUARE_SUMMING_THE_BATCH], ids=lambda p: p.name)
def test_each_of_these_ops_is_right_on_one_example(prim):
    assert assert_grads_match(lambda x: apply(prim, x), VECTOR, batch_size=None) <= DEFAULT_TOLERANCE


def test_an_op_whose_forward_ignores_the_batch_axis_fails_naming_the_shapes():
    with pytest.raises(AssertionError, match=r"batch of 3.*shape \(\), expected \(3,\)"):
        assert_grads_match(lambda x: apply(ROW_SUM, x), VECTOR)


def test_an_op_that_mixes_up_the_examples_of_a_batch_fails_naming_the_example():
    with pytest.raises(AssertionError, match=r"mixes up the examples.*example \d of the batched value"):
        assert_grads_match(lambda x: apply(SCALE_BY_FIRST, x), VECTOR)
    batch = np.stack([VECTOR, -VECTOR, 2 * VECTOR])  # the same, with a batch given by the caller
    with pytest.raises(AssertionError, match="mixes up the examples"):
        assert_grads_match(lambda x: apply(SCALE_BY_FIRST, x), batch, batched=True)


def test_a_vjp_of_the_wrong_shape_on_a_batch_fails_naming_the_argument():
    with pytest.raises(AssertionError, match=r"VJP of argument 0.*shape \(3,\)"):
        assert_grads_match(lambda x: apply(SQUARE_SUMMING_THE_BATCH, x), VECTOR)


def test_the_batch_goes_on_every_argument_that_may_carry_it():
    # affine refuses a batch axis on W and b: the batch goes on x alone; nll batches its labels too.
    W, x, b = np.arange(6.0).reshape(2, 3) / 7, np.array([0.3, -0.2, 0.9]), np.array([0.1, -0.5])
    assert assert_grads_match(fg.affine, W, x, b) <= DEFAULT_TOLERANCE
    assert assert_grads_match(fg.nll, np.array([0.2, 0.7, 0.1]), np.array(1)) <= DEFAULT_TOLERANCE
    assert assert_grads_match(lambda w: fg.l2_norm_penalty(w, 0.5), VECTOR) <= DEFAULT_TOLERANCE  # no batch possible


# ------------------------------- an exact zero minimum of a squared distance


def _zero_minimum(v: float, hidden) -> tuple:
    """J = ‖p0 · hidden(softmax(0)) + p1 - y‖² with y the prediction itself:
    J = 0 and its gradient is exactly 0, but J(t) = (a t + E(t))² carries
    the rounding error E of the residual, noise 2 a t E that is nothing at
    the point and all of the difference quotient at the step."""
    x, y = fg.input("x", (3,)), fg.input("y", (1,))
    p0, p1 = fg.param("p0", (1, 3)), fg.param("p1", (1,))
    pred = fg.affine(p0, hidden(fg.softmax(x)), p1)
    g = fg.graph(prediction=pred, objective=fg.squared_l2_distance(pred, y))
    params, data = {"p0": np.full((1, 3), v), "p1": np.array([0.0])}, {"x": np.zeros(3)}
    data["y"] = fg.forward(g, params, data, "prediction")["prediction"]
    return g, params, data


@pytest.mark.parametrize("hidden", [lambda n: n, fg.tanh], ids=["affine", "tanh_then_affine"])
@pytest.mark.parametrize("v", [2.4106291e-79, 1.2714965844225503e-93, 6.665907260065025e-98])
@pytest.mark.parametrize("scale", [1.0, 1e-100, 1e100, 2.0**-700])
def test_a_zero_gradient_at_an_exact_zero_minimum_passes_at_every_scale(hidden, v, scale):
    # the noise of J, 1e-180 where J moves by 1e-169, used to be squared
    # into an underflow (ECnoise 0), and was measured only near the point
    g, params, data = _zero_minimum(v * scale, hidden)
    value, grads = fg.value_and_grad(g)(params, data)
    assert value == 0.0 and not np.any(grads["p0"])
    report = fg.check_grads(g, params, data)
    assert report.ok, report
    if scale >= 1:  # below, J(t) underflows to 0 and the check cannot see any gradient
        wrong = {**grads, "p0": np.full((1, 3), 1e-12 * v * scale)}  # a gradient J does not have: still caught
        assert not compare_grads(g, wrong, params, data).ok


def test_the_noise_estimate_scales_with_the_function():
    # a φ of 1e-170 with noise 1e-183: the squares of its differences underflow unless rescaled
    values = np.arange(9.0) ** 2 + 1e-13 * np.random.default_rng(0).standard_normal(9)
    base = fg.check._ecnoise(values)
    assert 1e-14 < base < 1e-12
    for k in (-565, -330, 330, 1000):  # powers of 2: the scaled values are exact
        assert fg.check._ecnoise(values * 2.0**k) == pytest.approx(base * 2.0**k, rel=1e-12), k
