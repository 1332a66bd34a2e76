"""value_and_grad's repeated calls take a cheap path, which weakens no error."""

from __future__ import annotations

import numpy as np
import pytest

import fgraph as fg
import models


@pytest.fixture
def classifier():
    g = models.mlp_classifier(2, 3, 3).graph
    rng = np.random.default_rng(0)
    params = fg.init.init_params(g, 0)
    data = {"x": rng.normal(size=(5, 2)), "y": np.array([0, 1, 2, 1, 0])}
    f = fg.value_and_grad(g)
    f(params, data)  # the call that every later one repeats
    return f, params, data


def _masked(a):
    return np.ma.masked_array(a, mask=np.zeros(a.shape, bool))


BAD = [
    ("NaN in data", lambda p, d: (p, {**d, "x": np.where(np.arange(10).reshape(5, 2) == 3, np.nan, d["x"])}),
     ValueError, r"data 'x' contains NaN"),
    ("inf in a param", lambda p, d: ({**p, "W1": np.full((3, 2), np.inf)}, d),
     ValueError, r"param 'W1' contains NaN or inf"),
    ("a wrong shape", lambda p, d: ({**p, "b1": np.zeros(4)}, d), fg.ShapeError, r"param 'b1' has shape \(4,\)"),
    ("a label out of range", lambda p, d: (p, {**d, "y": np.array([0, 1, 3, 1, 0])}), ValueError, "label"),
    ("float labels", lambda p, d: (p, {**d, "y": d["y"].astype(float)}), ValueError, "label"),
    ("a missing name", lambda p, d: ({k: v for k, v in p.items() if k != "W2"}, d), KeyError, "missing params"),
    ("an unknown name", lambda p, d: ({**p, "W3": np.zeros(1)}, d), KeyError, "unexpected params"),
    ("unequal batches", lambda p, d: (p, {**d, "y": d["y"][:4]}), fg.ShapeError, "batch"),
    ("a masked array", lambda p, d: (p, {**d, "x": _masked(d["x"])}), TypeError, "masked"),
    ("an empty batch", lambda p, d: (p, {"x": d["x"][:0], "y": d["y"][:0]}), fg.ShapeError, "empty batch"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_every_error_of_a_first_call_is_raised_on_a_repeated_call(classifier, case):
    f, params, data = classifier
    _, change, error, message = case
    with pytest.raises(error, match=message):
        f(*change(params, data))


def test_huge_finite_values_are_not_mistaken_for_inf(classifier):
    # Σ x² overflows for entries beyond 1e154: the cheap check must fall back, not refuse.
    f, params, data = classifier
    value, _ = f(params, {**data, "x": np.full((5, 2), 1e200)})
    assert np.isfinite(value) or value == np.inf


def test_conversions_still_happen_on_repeated_calls(classifier):
    f, params, data = classifier
    expected = f(params, data)
    as_lists = {"x": data["x"].tolist(), "y": data["y"].tolist()}
    as_float32 = {k: v.astype(np.float32) for k, v in params.items()}
    assert f(params, as_lists)[0] == expected[0]
    assert np.isclose(f(as_float32, data)[0], expected[0], rtol=1e-6)


def test_a_batch_of_one_gives_the_examples_value_and_gradients_to_the_bit():
    g = models.mlp_regression(3, 4).graph
    rng = np.random.default_rng(1)
    params = {k: rng.normal(size=v.shape) for k, v in fg.init.init_params(g, 0).items()}
    x, y = rng.normal(size=3), rng.normal()
    f = fg.value_and_grad(g)
    one = f(params, {"x": x[None], "y": np.array([y])})
    example = f(params, {"x": x, "y": np.array(y)})
    assert one[0] == example[0] and all(np.array_equal(one[1][k], example[1][k]) for k in params)
    # with respect to data, the gradient keeps the batch axis
    gx = fg.grad(g, wrt=["x"])(params, {"x": x[None], "y": np.array([y])})["x"]
    assert gx.shape == (1, 3)
