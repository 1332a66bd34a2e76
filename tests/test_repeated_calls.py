"""value_and_grad's repeated calls take a cheap path, which weakens no error.

The cheap path (``validate.Validator``) accepts a call after one pass over
its arrays and sends everything else to the full checks; nothing is
remembered between calls. These tests make the second call of a function
bad in every way a first call can be, in each layout a loop passes data
(a batch, a batch of one, one example), and check that the cheap path
refuses it and the error is the full checks' error; and that what comes
back on the cheap path is read-only and shares memory with nothing.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fgraph as fg
import models
from fgraph import validate
from fgraph.ops import Primitive, apply, broadcast_shape, same_shape, scalar_shape


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
    listed = f(params, {"x": [x.tolist()], "y": [y]})  # the full checks' way in, taken apart the same
    assert listed[0] == example[0] and all(np.array_equal(listed[1][k], example[1][k]) for k in params)
    # with respect to data, the gradient keeps the batch axis
    gx = fg.grad(g, wrt=["x"])(params, {"x": x[None], "y": np.array([y])})["x"]
    assert gx.shape == (1, 3)


def test_a_batch_of_one_reaches_the_rules_as_its_example_whichever_checks_take_it():
    seen = []  # the shapes the rule was given
    spy = Primitive("spy", forward=lambda a: (seen.append(np.shape(a)), a)[1], vjps=(lambda g, out, a: g,),
                    shape=same_shape)
    x, w = fg.input("x", (2,)), fg.param("w", (2,))
    f = fg.value_and_grad(fg.graph(objective=fg.mean(fg.sum(fg.mul(apply(spy, x), w)))))
    for data in ({"x": np.ones((1, 2))}, {"x": [[1.0, 1.0]]}, {"x": np.ones((1, 2), dtype=np.float32)}):
        assert f({"w": np.ones(2)}, data)[0] == 2.0
    assert seen == [(2,)] * 3


# ------------------------------------------- the cheap pass, call by call
#
# Two models (labels; a scalar param and float targets), each called with data
# in the three layouts of a loop: a batch, a batch of one sliced from the data
# (``X[i:i+1]``, which the cheap path takes apart into its example) and one
# example (``X[i]``, its target a NumPy scalar).

LAYOUTS = {"batch": slice(0, 5), "one": slice(2, 3), "example": 2}


def _problem(kind: str, layout: str):
    """``(graph, params, data)``: a good call of the model ``kind`` with data laid out as ``layout``."""
    rng = np.random.default_rng(7)
    if kind == "classifier":
        g = models.mlp_classifier(2, 3, 3).graph
        y = np.array([0, 1, 2, 1, 0])
    else:
        g = models.mlp_regression(2, 3).graph
        y = rng.normal(size=5)
    params = {k: rng.normal(size=v.shape) for k, v in fg.init.init_params(g, 0).items()}
    if "b2" in params and params["b2"].ndim == 0:
        params["b2"] = np.float64(params["b2"])  # what a loop's update makes of a 0-d param
    rows = LAYOUTS[layout]
    return g, params, {"x": rng.normal(size=(5, 2))[rows], "y": y[rows]}


def _validator(g) -> validate.Validator:
    program = g.programs["objective"]
    return validate.Validator.of(g, program.param_names, program.input_names, squeeze=True)


def _with(arrays: dict, name: str, entry):
    """A copy of ``arrays`` whose array ``name`` has ``entry`` in its last place (keeping its type)."""
    a = np.array(arrays[name])
    a.flat[-1] = entry
    return {**arrays, name: a[()] if a.ndim == 0 else a}


CASES = [
    pytest.param(kind, layout, id=f"{kind}-{layout}") for kind in ("classifier", "regression") for layout in LAYOUTS
]


@pytest.mark.parametrize("kind, layout", CASES)
def test_a_loops_call_takes_the_cheap_path_and_gets_what_the_full_checks_give(kind, layout):
    g, params, data = _problem(kind, layout)
    check = _validator(g)
    fast = check._fast(params, data)
    assert fast is not None, "a plain call must not pay for the full checks"
    p, d, batch = fast
    full_p = validate.params(g, params, check.param_names)
    full_d, full_batch = validate.data(g, data, check.input_names)
    if full_batch == 1:
        full_d, full_batch = {k: v[0] for k, v in full_d.items()}, None
    assert batch == full_batch and p.keys() == full_p.keys() and d.keys() == full_d.keys()
    for name in d:  # the cheap path may keep a NumPy scalar where the full checks make a 0-d array
        assert np.shape(d[name]) == np.shape(full_d[name]) and d[name].dtype == full_d[name].dtype
        assert np.array_equal(d[name], full_d[name])
    assert all(p[k] is params[k] for k in p)  # taken as they are, not copied


def _another_batch(x):
    """``x`` with a batch size other than its own (one row more), or with a batch axis if it has none."""
    x = np.asarray(x)
    return x[None] if x.ndim == 1 else np.concatenate([x, x[:1]])


def _bad_calls(kind: str, params: dict, data: dict) -> list:
    """``(what, params, data, error, message)``: every way to spoil a good call."""
    bad = [
        (f"{value} in param {name!r}", _with(params, name, value), data, ValueError, f"param '{name}' contains NaN")
        for name in params for value in (np.nan, np.inf, -np.inf)
    ]
    bad += [(f"{value} in x", params, _with(data, "x", value), ValueError, "data 'x' contains NaN")
            for value in (np.nan, -np.inf)]
    bad += [(f"param {name!r} misshapen", {**params, name: np.zeros(np.shape(params[name]) + (1,))}, data,
             fg.ShapeError, f"param '{name}' has shape") for name in params]
    bad += [
        ("x without its last feature", params, {**data, "x": np.asarray(data["x"])[..., :1]}, fg.ShapeError, "shape"),
        ("x with an extra axis", params, {**data, "x": np.asarray(data["x"])[None, None]}, fg.ShapeError, "shape"),
        ("x with another batch size than y", params, {**data, "x": _another_batch(data["x"])}, fg.ShapeError, "batch"),
        ("an unknown name", {**params, "W9": np.zeros(1)}, data, KeyError, "unexpected params"),
        ("a missing name", params, {"x": data["x"]}, KeyError, "missing data"),
        ("a masked param", {**params, "W1": _masked(params["W1"])}, data, TypeError, "masked"),
        ("params as a list", list(params.items()), data, TypeError, "dict"),
    ]
    if kind == "classifier":
        bad += [(f"label {label}", params, _with(data, "y", label), ValueError, "label") for label in (-1, 3, 2**40)]
        bad += [("float labels", params, {**data, "y": np.asarray(data["y"], dtype=float)}, ValueError, "label")]
    else:
        bad += [(f"{value} in y", params, _with(data, "y", value), ValueError, "data 'y' contains NaN")
                for value in (np.nan, np.inf)]
        bad += [("a NumPy float for a vector param", {**params, "b1": np.float64(0.5)}, data, fg.ShapeError, "b1")]
        bad += [("NaN in a 0-d param", {**params, "b2": np.array(np.nan)}, data, ValueError, "param 'b2' contains NaN")]
        if np.ndim(data["y"]) == 0:
            bad += [("NaN in a 0-d y", params, {**data, "y": np.array(np.nan)}, ValueError, "data 'y' contains NaN")]
    return bad


@pytest.mark.parametrize("kind, layout", CASES)
def test_the_second_call_of_a_function_is_refused_every_way_the_first_is(kind, layout):
    g, params, data = _problem(kind, layout)
    f, check = fg.value_and_grad(g), _validator(g)
    f(params, data)
    for what, p, d, error, message in _bad_calls(kind, params, data):
        assert check._fast(p, d) is None, f"the cheap path let through {what}"
        with pytest.raises(error, match=message):
            f(p, d)
        f(params, data)  # and a good call after a bad one still passes


@pytest.mark.parametrize("kind, layout", CASES)
def test_an_array_changed_in_place_between_calls_is_checked_again(kind, layout):
    g, params, data = _problem(kind, layout)
    f = fg.value_and_grad(g)
    first, _ = f(params, data)
    params["W1"][0, 0] = np.nan
    with pytest.raises(ValueError, match="param 'W1' contains NaN"):
        f(params, data)
    params["W1"][0, 0] = 3.0
    again, grads = f(params, data)
    fresh, fresh_grads = fg.value_and_grad(g)(params, data)  # nothing of the first call is reused
    assert again != first and again == fresh
    assert all(np.array_equal(grads[k], fresh_grads[k]) for k in grads)


def test_calls_with_other_shapes_dtypes_and_names_agree_with_a_new_function_each():
    # One function called with every layout, dtype and name set in turn gives
    # what a function that never saw the calls before gives: no call's
    # shapes, dtypes or names are carried into the next.
    x, y, w, b = fg.input("x", (2,)), fg.input("y"), fg.param("w", (2,)), fg.param("b")
    g = fg.graph(objective=fg.squared_l2_distance(fg.vector_scalar_affine(x, w, b), y), unused=fg.param("u", (1,)))
    rng = np.random.default_rng(3)
    params = {"w": rng.normal(size=2), "b": np.array(0.5)}
    X, Y = rng.normal(size=(4, 2)), rng.normal(size=4)
    calls = [
        (params, {"x": X, "y": Y}),
        (params, {"x": X[1:2], "y": Y[1:2]}),
        (params, {"x": X[1], "y": Y[1]}),
        (params, {"x": X[:3], "y": Y[:3]}),
        ({"w": params["w"].astype(np.float32), "b": 0.5}, {"x": X[:3], "y": Y[:3]}),
        (params, {"x": X[:3].astype(int), "y": Y[:3].tolist()}),
        ({**params, "u": np.zeros(1)}, {"x": X, "y": Y}),  # a name the graph has and the output does not need
        ({"w": params["w"], "b": np.float64(0.5)}, {"x": X[0], "y": np.float64(Y[0])}),
        (params, {"x": X.astype(">f8"), "y": Y}),
        (params, {"x": X, "y": Y}),
    ]
    f = fg.value_and_grad(g)
    for p, d in calls:
        value, grads = f(p, d)
        expected, expected_grads = fg.value_and_grad(g)(p, d)
        assert value == expected and grads.keys() == expected_grads.keys()
        assert all(np.array_equal(grads[k], expected_grads[k]) for k in grads)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_arrays_of_another_dtype_give_to_the_bit_what_their_float64_values_give(layout):
    g, params, data = _problem("regression", layout)
    f = fg.value_and_grad(g)
    as64 = lambda arrays: {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}  # noqa: E731
    rounded = {k: np.asarray(v, dtype=np.float32) for k, v in params.items()}
    calls = [
        (rounded, data),
        ({**params, "W1": np.round(params["W1"] * 4).astype(np.int64)}, data),
        (params, {**data, "x": np.asarray(data["x"], dtype=np.float32)}),
        (params, {**data, "x": np.asarray(data["x"]).astype(">f8")}),
    ]
    w = fg.param("w", (3,))
    alone = fg.value_and_grad(fg.graph(objective=fg.sum(fg.mul(fg.tanh(w), w))))  # no float64 data to promote w
    calls += [({"w": np.array([0.1, -0.7, 2.3], dtype=np.float32)}, None), ({"w": np.array([1, -2, 3])}, None)]
    for p, d in calls:
        fn = f if d is not None else alone
        value, grads = fn(p, d)
        expected, expected_grads = fn(as64(p), None if d is None else as64(d))
        assert type(value) is np.float64 and value == expected
        assert all(grads[k].dtype == np.float64 and np.array_equal(grads[k], expected_grads[k]) for k in grads)


def test_strided_and_fortran_ordered_arrays_are_checked_entry_by_entry():
    g, params, data = _problem("regression", "batch")
    f = fg.value_and_grad(g)
    spread = np.zeros(6)
    spread[1::2] = np.nan  # NaNs between the entries of b1, none in them
    assert np.isfinite(f({**params, "b1": spread[::2]}, data)[0])
    spread[4] = np.inf
    with pytest.raises(ValueError, match="param 'b1' contains NaN or inf at index \\(2,\\)"):
        f({**params, "b1": spread[::2]}, data)
    W1 = np.asfortranarray(params["W1"])
    W1[2, 0] = np.nan
    with pytest.raises(ValueError, match="param 'W1' contains NaN or inf at index \\(2, 0\\)"):
        f({**params, "W1": W1}, data)
    x = np.ascontiguousarray(np.asarray(data["x"]).T).T  # Fortran order, a batch
    x[4, 1] = -np.inf
    with pytest.raises(ValueError, match="data 'x' contains NaN or inf at index \\(4, 1\\)"):
        f(params, {**data, "x": x})


@pytest.mark.parametrize("kind, layout", CASES)
def test_huge_finite_entries_anywhere_are_not_mistaken_for_inf(kind, layout):
    g, params, data = _problem(kind, layout)
    f = fg.value_and_grad(g)
    huge = [({**params, "W1": np.full((3, 2), 1e160)}, data),
            (params, {**data, "x": np.full(np.shape(data["x"]), 1e160)})]
    if kind == "regression":
        huge += [({**params, "b2": np.float64(1e300)}, data), (params, _with(data, "y", 1e300))]
    with np.errstate(over="ignore", invalid="ignore"):
        for p, d in huge:
            f(p, d)  # no error: the entries are finite


@pytest.mark.parametrize("where", ["param vector", "param matrix", "batched input", "example"])
def test_huge_finite_entries_pass_the_checks_without_a_warning(where):
    """The finite check summed squares, which overflow past 1e154 with NumPy's
    RuntimeWarning though every entry is finite; the model here computes
    nothing that overflows, so any warning is the checks' own."""
    x, w, W = fg.input("x", (2,)), fg.param("w", (2,)), fg.param("W", (2, 2))
    g = fg.graph(objective=fg.add(fg.sum(fg.mul(w, x)), fg.sum(fg.affine(W, x, fg.param("b", (2,))))))
    f = fg.value_and_grad(g)
    params, data = {"w": np.ones(2), "W": np.ones((2, 2)), "b": np.zeros(2)}, {"x": np.ones((3, 2))}
    huge = np.array([1e200, -1e300])
    case = {"param vector": ({**params, "w": huge}, data),
            "param matrix": ({**params, "W": np.stack([huge, huge])}, data),
            "batched input": (params, {"x": np.full((3, 2), 1e-200) + [0.0, 1e250]}),
            "example": (params, {"x": huge * 1e-100})}[where]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):  # the first call and a repeated one
            value, _ = f(*case)
    assert np.isfinite(value)


def _leak():
    """A primitive whose VJPs hand back the other argument itself, as a
    rule may (at the seed 1 they are right): d(a·b)/da = b, d(a·b)/db = a."""
    return Primitive("leaky_dot", forward=lambda a, b: b.dot(a), shape=scalar_shape,
                     vjps=(lambda g, out, a, b: b, lambda g, out, a, b: a))


@pytest.mark.parametrize("memory", ["array", "buffer"])
@pytest.mark.parametrize("layout", ["one", "example"])
def test_results_on_the_cheap_path_are_read_only_and_share_memory_with_nothing(layout, memory):
    x, w = fg.input("x", (3,)), fg.param("w", (3,))
    g = fg.graph(objective=fg.mean(apply(_leak(), w, x)))
    X = np.arange(15.0).reshape(5, 3)
    if memory == "buffer":  # an array on memory it does not own (a buffer, as a memory map gives): a longer chain
        X = np.frombuffer(bytearray(X.tobytes()), dtype=np.float64).reshape(5, 3)
    params, data = {"w": np.array([1.0, -2.0, 0.5])}, {"x": X[LAYOUTS[layout]]}
    assert _validator(g)._fast(params, data) is not None
    # With respect to x too, a batch keeps its axis, which the leaky rule does not sum away: one example only.
    functions = [fg.value_and_grad(g)] + ([fg.value_and_grad(g, wrt=["w", "x"])] if layout == "example" else [])
    for f in functions:
        value, grads = f(params, data)
        returned = list(grads.values())
        held = [params["w"], data["x"], X]
        for i, a in enumerate(returned):
            assert isinstance(a, np.ndarray) and not a.flags.writeable
            assert not any(np.shares_memory(a, h) for h in held), "a gradient shares the caller's memory"
            assert not any(np.shares_memory(a, b) for b in returned[i + 1:]), "two gradients share memory"
        assert params["w"].flags.writeable and X.flags.writeable  # the caller's arrays are left as they were
    np.testing.assert_array_equal(fg.grad(g)(params, {"x": X[1]})["w"], X[1])


def test_two_gradients_made_as_one_array_come_back_as_two():
    # Like add's, the rules of these primitives hand the incoming cotangent on
    # to both arguments: itself to both, or itself to one and a view of it (as
    # a reshape gives) to the other.
    a, b = fg.param("a", (3,)), fg.param("b", (3,))
    params = {"a": np.array([0.1, 0.2, 0.3]), "b": np.array([-1.0, 0.0, 1.0])}
    for second in (lambda g, out, a, b: g, lambda g, out, a, b: g.reshape(3)):
        twin = Primitive("twin", forward=lambda a, b: a + b, shape=broadcast_shape,
                         vjps=(lambda g, out, a, b: g, second))
        g = fg.graph(objective=fg.sum(fg.tanh(apply(twin, a, b))))
        assert _validator(g)._fast(params, {}) is not None
        _, grads = fg.value_and_grad(g)(params)
        assert np.array_equal(grads["a"], grads["b"]) and not np.shares_memory(grads["a"], grads["b"])
        assert not grads["a"].flags.writeable and not grads["b"].flags.writeable


def test_values_and_gradients_a_rule_makes_in_float32_come_back_as_float64():
    half = Primitive("half_precision_square", forward=lambda a: np.float32(a * a), shape=scalar_shape,
                     vjps=(lambda g, out, a: np.float32(2 * g * a),))
    w = fg.param("w")
    value, grads = fg.value_and_grad(fg.graph(objective=apply(half, w)))({"w": np.float64(1.5)})
    assert type(value) is np.float64 and value == 2.25
    assert type(grads["w"]) is np.float64 and grads["w"] == 3.0


@pytest.mark.parametrize("kind", ["classifier", "regression"])
def test_arrays_whose_dtype_equals_float64_but_is_another_object_take_the_cheap_path(kind):
    """Unpickled arrays (a worker process's data) and some other libraries' arrays carry a dtype
    equal to NumPy's float64 (or intp) that is not the same object: they are plain arrays, so
    they take the cheap path and give what the same values give."""
    g, params, data = _problem(kind, "batch")
    twin = {np.dtype(t): np.dtype(t).newbyteorder("=") for t in (np.float64, np.intp)}
    assert all(t is not d and t == d for d, t in twin.items())
    retyped = lambda arrays: {k: v.view(twin[v.dtype]) if isinstance(v, np.ndarray) else v  # noqa: E731
                              for k, v in arrays.items()}
    p, d = retyped(params), retyped(data)
    assert _validator(g)._fast(p, d) is not None
    value, grads = fg.value_and_grad(g)(p, d)
    want_value, want_grads = fg.value_and_grad(g)(params, data)
    assert value == want_value and all(np.array_equal(grads[k], want_grads[k]) for k in want_grads)
