"""The gradient checks: they catch wrong and NaN gradients, and do not cry wolf
on correct ones, including saturated units with near-zero gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import fgraph as fg
from fgraph.check import projection_error
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


def test_projection_error_is_absolute_below_the_noise_floor_and_inf_for_nan():
    assert projection_error(1e-14, 0.0, 1.0) < 1e-8  # both ~0: not a blow-up
    assert projection_error(1.0, 1.0 + 1e-9, 1.0) < 1e-8
    assert projection_error(1.0, 2.0, 1.0) == 0.5
    assert projection_error(float("nan"), 1.0, 1.0) == math.inf


def _saturated_mlp():
    x, y = fg.input("x", (3,)), fg.input("y")
    W1, b1, w2, b2 = fg.param("W1", (5, 3)), fg.param("b1", (5,)), fg.param("w2", (5,)), fg.param("b2")
    pred = fg.vector_scalar_affine(fg.tanh(fg.affine(W1, x, b1)), w2, b2)
    return fg.graph(objective=fg.squared_l2_distance(pred, y))


@given(st.integers(0, 2**32 - 1))
@example(377)  # failed plain central differences (truncation error on strongly curved tanh)
def test_saturated_tanh_units_pass_every_time(seed):
    # Large weights saturate tanh: gradients wrt W1 are ~1e-10 and per-entry
    # relative errors are noise; the assignment's check fails such cases.
    rng = np.random.default_rng(seed)
    params = {"W1": 30 * rng.normal(size=(5, 3)), "b1": rng.normal(size=5), "w2": rng.normal(size=5), "b2": np.array(0.1)}
    data = {"x": rng.normal(size=(4, 3)), "y": rng.normal(size=4)}
    report = fg.check_grads(_saturated_mlp(), params, data, seed=seed % 1000)
    assert report.ok, report


def test_report_is_a_frozen_value_with_per_param_errors():
    g = _saturated_mlp()
    rng = np.random.default_rng(0)
    params = {"W1": rng.normal(size=(5, 3)), "b1": rng.normal(size=5), "w2": rng.normal(size=5), "b2": np.array(0.1)}
    report = fg.check_grads(g, params, {"x": rng.normal(size=(4, 3)), "y": rng.normal(size=4)})
    assert set(report.errors) == set(params) and report.max_rel_error == max(report.errors.values())
    with pytest.raises(AttributeError):
        report.ok = False
