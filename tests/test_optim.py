"""Optimisers: updates against their formulas written out by hand, steps
against apply_updates(update) bit for bit, composition, purity, errors; the
training steps derived from them against the readable definition."""

from __future__ import annotations

import math
from functools import reduce

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fgraph as fg
import models
from fgraph import optim
from fgraph.optim import apply_updates

# Half the loaded profile's budget (conftest: "ci" 40, "thorough" 1000): 13 optimisers share it.
SETTINGS = settings(deadline=None, max_examples=max(10, settings().max_examples // 2))


# ------------------------------------------------------------------ helpers


def bits(x):
    """What "bit-identical" compares: type family, dtype, shape and raw bytes."""
    if isinstance(x, (int, float)) and not isinstance(x, np.generic):
        return (type(x).__name__, repr(x))
    a = np.asarray(x)
    return ("ndarray" if isinstance(x, np.ndarray) else "numpy scalar", a.dtype.str, a.shape, a.tobytes())


def tree_bits(tree):
    """:func:`bits` of every leaf of a nested dict."""
    if isinstance(tree, dict):
        return {k: tree_bits(v) for k, v in tree.items()}
    return bits(tree)


def freeze(tree):
    """A copy of ``tree`` whose arrays are read-only, so any in-place write raises."""
    if isinstance(tree, dict):
        return {k: freeze(v) for k, v in tree.items()}
    if isinstance(tree, np.ndarray):
        a = tree.copy()
        a.flags.writeable = False
        return a
    return tree


def run(opt, params, grads_seq):
    """Fold ``opt.step`` over a sequence of gradients; the trajectory of params."""
    state = opt.init(params)
    out = []
    for g in grads_seq:
        params, state = opt.step(g, state, params)
        out.append(params)
    return out, state


# --------------------------------------------------------------- formulas


def test_sgd_is_theta_minus_lr_g():
    params = {"w": np.array([1.0, -2.0, 0.5]), "b": np.float64(0.25)}
    grads = {"w": np.array([0.3, -0.1, 2.0]), "b": np.float64(-4.0)}
    opt = optim.sgd(0.1)
    updates, state = opt.update(grads, opt.init(params), params)
    assert state == {}
    np.testing.assert_allclose(updates["w"], [-0.03, 0.01, -0.2], rtol=1e-15)
    assert updates["b"] == pytest.approx(0.4, rel=1e-15)
    new, _ = opt.step(grads, state, params)
    np.testing.assert_allclose(new["w"], [1.0 - 0.03, -2.0 + 0.01, 0.5 - 0.2], rtol=1e-15)
    assert new["b"] == pytest.approx(0.25 + 0.4, rel=1e-15)


def test_momentum_three_steps_by_hand():
    lr, beta = 0.1, 0.5
    g1, g2, g3 = 1.0, -2.0, 4.0
    trajectory, state = run(optim.momentum(lr, beta), {"x": np.float64(3.0)}, [{"x": g} for g in (g1, g2, g3)])
    v1 = g1                      # v0 = 0
    v2 = beta * v1 + g2          # 0.5 - 2 = -1.5
    v3 = beta * v2 + g3          # -0.75 + 4 = 3.25
    x1 = 3.0 - lr * v1
    x2 = x1 - lr * v2
    x3 = x2 - lr * v3
    assert [float(p["x"]) for p in trajectory] == pytest.approx([x1, x2, x3], rel=1e-15)
    assert float(state["velocity"]["x"]) == 3.25


def test_momentum_with_beta_zero_is_sgd():
    params = {"w": np.array([1.0, 2.0])}
    grads = [{"w": np.array([0.5, -0.25])}, {"w": np.array([-1.0, 3.0])}]
    a, _ = run(optim.momentum(0.2, beta=0.0), params, grads)
    b, _ = run(optim.sgd(0.2), params, grads)
    for pa, pb in zip(a, b):
        assert bits(pa["w"]) == bits(pb["w"])


def reference_adam(theta, grads_seq, lr, b1, b2, eps):
    """Kingma & Ba (2015), Algorithm 1, entry by entry in plain Python floats."""
    theta = list(theta)
    m = [0.0] * len(theta)
    v = [0.0] * len(theta)
    out = []
    for t, g in enumerate(grads_seq, start=1):
        for i, gi in enumerate(g):
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi * gi
            m_hat = m[i] / (1 - b1**t)
            v_hat = v[i] / (1 - b2**t)
            theta[i] = theta[i] - lr * m_hat / (math.sqrt(v_hat) + eps)
        out.append((list(theta), list(m), list(v)))
    return out


@pytest.mark.parametrize("lr, b1, b2, eps", [(1e-3, 0.9, 0.999, 1e-8), (0.1, 0.5, 0.75, 1e-3), (0.01, 0.0, 0.0, 1e-8)])
def test_adam_bias_correction_at_t_1_2_3(lr, b1, b2, eps):
    theta0 = [0.5, -1.0, 2.0]
    grads_seq = [[0.1, -3.0, 0.0], [0.4, 1.0, 1e-3], [-0.2, 2.0, -5.0]]
    expected = reference_adam(theta0, grads_seq, lr, b1, b2, eps)
    opt = optim.adam(lr, b1, b2, eps)
    params = {"theta": np.array(theta0)}
    state = opt.init(params)
    assert state["count"] == 0
    for t, (g, (theta, m, v)) in enumerate(zip(grads_seq, expected), start=1):
        params, state = opt.step({"theta": np.array(g)}, state, params)
        assert state["count"] == t and type(state["count"]) is int
        np.testing.assert_allclose(state["mu"]["theta"], m, rtol=1e-15)
        np.testing.assert_allclose(state["nu"]["theta"], v, rtol=1e-15)
        np.testing.assert_allclose(params["theta"], theta, rtol=1e-13)


def test_adam_first_step_has_size_lr_whatever_the_gradient_scale():
    # m̂ = g and v̂ = g² at t = 1, so the step is lr·g/(|g| + eps) ≈ lr·sign(g):
    # without bias correction it would be lr·(1-b1)/√(1-b2) ≈ 3.16·lr.
    opt = optim.adam(0.01)
    params = {"w": np.zeros(3)}
    g = {"w": np.array([1e-3, -50.0, 7.0])}
    new, _ = opt.step(g, opt.init(params), params)
    np.testing.assert_allclose(new["w"], [-0.01, 0.01, -0.01], rtol=1e-4)


def test_adam_state_layout_is_plain_data():
    opt = optim.chain(optim.clip_by_global_norm(1.0), optim.adam(1e-3))
    params = {"W": np.ones((2, 3)), "b": np.float64(0.0)}
    state = opt.init(params)
    assert set(state) == {"0", "1"} and state["0"] == {}
    assert set(state["1"]) == {"count", "mu", "nu"}
    assert set(state["1"]["mu"]) == {"W", "b"}
    assert state["1"]["mu"]["W"].shape == (2, 3) and state["1"]["mu"]["b"].shape == ()

    def leaves_ok(tree):
        if isinstance(tree, dict):
            return all(isinstance(k, str) and leaves_ok(v) for k, v in tree.items())
        return isinstance(tree, (np.ndarray, int, float))

    _, state = opt.step({"W": np.ones((2, 3)), "b": np.float64(1.0)}, state, params)
    assert leaves_ok(state) and state["1"]["count"] == 1


# ------------------------------------------------------------ composition


def test_chain_feeds_updates_as_the_next_grads():
    params = {"w": np.array([1.0, 2.0])}
    grads = {"w": np.array([0.5, -1.0])}
    opt = optim.chain(optim.scale(2.0), optim.sgd(0.1))
    updates, state = opt.update(grads, opt.init(params), params)
    np.testing.assert_array_equal(updates["w"], -0.1 * (2.0 * grads["w"]))
    assert state == {"0": {}, "1": {}}


def test_chain_of_one_is_the_transform_itself():
    params = {"w": np.array([1.0, 2.0])}
    grads = [{"w": np.array([0.5, -1.0])}] * 3
    a, _ = run(optim.chain(optim.adam(0.1)), params, grads)
    b, _ = run(optim.adam(0.1), params, grads)
    assert [bits(p["w"]) for p in a] == [bits(p["w"]) for p in b]


def test_weight_decay_adds_rate_times_param():
    params = {"w": np.array([1.0, -2.0]), "b": np.float64(3.0)}
    grads = {"w": np.array([0.5, 0.5]), "b": np.float64(0.0)}
    opt = optim.chain(optim.add_weight_decay(0.1), optim.sgd(0.5))
    new, _ = opt.step(grads, opt.init(params), params)
    np.testing.assert_allclose(new["w"], [1.0 - 0.5 * (0.5 + 0.1), -2.0 - 0.5 * (0.5 - 0.2)], rtol=1e-15)
    assert float(new["b"]) == pytest.approx(3.0 - 0.5 * 0.3, rel=1e-15)


def test_clip_scales_all_grads_together_to_max_norm():
    grads = {"a": np.array([3.0, 0.0]), "b": np.float64(4.0)}  # global norm 5
    updates, _ = optim.clip_by_global_norm(1.0).update(grads, {}, None)
    np.testing.assert_allclose(updates["a"], [0.6, 0.0], rtol=1e-15)
    assert float(updates["b"]) == pytest.approx(0.8, rel=1e-15)
    assert optim.global_norm(updates) == pytest.approx(1.0, rel=1e-15)


@pytest.mark.parametrize("max_norm", [5.0, 5.0000001, 1e6])
def test_clip_leaves_small_grads_untouched(max_norm):
    grads = {"a": np.array([3.0, 0.0]), "b": np.float64(4.0)}
    updates, _ = optim.clip_by_global_norm(max_norm).update(grads, {}, None)
    assert tree_bits(updates) == tree_bits(grads)
    assert all(updates[k] is grads[k] for k in grads)  # passed on, not copied


def test_clip_never_hides_a_nan():
    grads = {"a": np.array([np.nan, 1.0]), "b": np.float64(100.0)}
    updates, _ = optim.clip_by_global_norm(1.0).update(grads, {}, None)
    assert np.isnan(updates["a"][0])


def test_global_norm_survives_overflow_of_the_sum_of_squares():
    grads = {"a": np.array([3e200, 0.0]), "b": np.float64(4e200)}
    assert optim.global_norm(grads) == pytest.approx(5e200, rel=1e-15)
    updates, _ = optim.clip_by_global_norm(1.0).update(grads, {}, None)
    np.testing.assert_allclose(updates["a"], [0.6, 0.0], rtol=1e-15)
    assert math.isinf(optim.global_norm({"a": np.array([np.inf, 1.0])}))
    assert math.isnan(optim.global_norm({"a": np.array([np.nan, 1.0])}))


def test_chain_of_clip_and_adam_equals_adam_on_clipped_grads():
    params = {"w": np.array([0.5, -0.5])}
    grads = [{"w": np.array([30.0, -40.0])}, {"w": np.array([0.3, 0.4])}]
    clipped = [{"w": g["w"] * min(1.0, 1.0 / np.linalg.norm(g["w"]))} for g in grads]
    a, _ = run(optim.chain(optim.clip_by_global_norm(1.0), optim.adam(1e-2)), params, grads)
    b, _ = run(optim.adam(1e-2), params, clipped)
    for pa, pb in zip(a, b):
        np.testing.assert_allclose(pa["w"], pb["w"], rtol=1e-15)


# ------------------------------------------------- derived steps == update


ALL_OPTIMIZERS = {
    "sgd": lambda: optim.sgd(0.1),
    "sgd_small": lambda: optim.sgd(3e-5),
    "momentum": lambda: optim.momentum(0.05),
    "momentum_b0": lambda: optim.momentum(0.3, beta=0.0),
    "adam": lambda: optim.adam(1e-3),
    "adam_odd": lambda: optim.adam(0.3, b1=0.5, b2=0.6, eps=1e-3),
    "scale": lambda: optim.scale(-0.2),
    "weight_decay": lambda: optim.add_weight_decay(0.1),
    "clip": lambda: optim.clip_by_global_norm(0.5),
    "clip_adam": lambda: optim.chain(optim.clip_by_global_norm(1.0), optim.adam(1e-2)),
    "decay_momentum": lambda: optim.chain(optim.add_weight_decay(1e-2), optim.momentum(0.1, 0.8)),
    "scale_sgd": lambda: optim.chain(optim.scale(0.5), optim.sgd(0.2)),
    "nested": lambda: optim.chain(optim.chain(optim.scale(3.0), optim.clip_by_global_norm(2.0)), optim.adam(0.05)),
}
LINEAR = {"sgd", "sgd_small", "scale"}  # those that declare u = s·g
SCALED = {"momentum", "momentum_b0", "decay_momentum", "scale_sgd"}  # those that declare u = s·d, d from a direction

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
SHAPES = [(), (1,), (3,), (2, 3)]


@st.composite
def problems(draw):
    """Params (some as NumPy scalars, some 0-d arrays) and three steps of grads."""
    names = draw(st.lists(st.sampled_from(["w", "b", "W1", "layer/0.b"]), min_size=1, max_size=4, unique=True))
    params, grads_seq = {}, [{}, {}, {}]
    for name in names:
        shape = draw(st.sampled_from(SHAPES))
        as_scalar = shape == () and draw(st.booleans())
        for tree in [params, *grads_seq]:
            arr = draw(hnp.arrays(np.float64, shape, elements=finite))
            tree[name] = np.float64(arr) if as_scalar else arr
    return params, grads_seq


@pytest.mark.parametrize("name", sorted(ALL_OPTIMIZERS))
@SETTINGS
@given(problem=problems())
def test_step_is_bit_identical_to_apply_updates_of_update(name, problem):
    opt = ALL_OPTIMIZERS[name]()
    params, grads_seq = problem
    state = opt.init(params)
    for grads in grads_seq:
        step_params, step_state = opt.step(grads, state, params)
        updates, plain_state = opt.update(grads, state, params)
        plain_params = apply_updates(params, updates)
        assert tree_bits(step_params) == tree_bits(plain_params)
        assert tree_bits(step_state) == tree_bits(plain_state)
        params, state = step_params, step_state


@pytest.mark.parametrize("name", sorted(ALL_OPTIMIZERS))
@SETTINGS
@given(problem=problems())
def test_what_an_optimiser_declares_about_its_update_is_what_it_computes(name, problem):
    opt = ALL_OPTIMIZERS[name]()
    assert (opt.linear_scale is not None) == (name in LINEAR | SCALED)
    assert (opt.direction is not None) == (name in SCALED)
    if opt.linear_scale is None:
        return
    params, grads_seq = problem
    state = opt.init(params)
    for grads in grads_seq:
        d, declared_state = (grads, state) if opt.direction is None else opt.direction(grads, state, params)
        updates, new_state = opt.update(grads, state, params)
        assert tree_bits(updates) == tree_bits({k: opt.linear_scale * v for k, v in d.items()})
        assert tree_bits(new_state) == tree_bits(declared_state)
        params, state = apply_updates(params, updates), new_state


def test_trace_is_the_velocity_that_momentum_scales():
    grads = [{"w": np.array([1.0, -2.0])}, {"w": np.array([0.5, 4.0])}]
    params = {"w": np.zeros(2)}
    t = optim.trace(0.5)
    v1, state = t.update(grads[0], t.init(params), params)
    assert state == {"velocity": v1} and np.array_equal(v1["w"], [1.0, -2.0])
    v2, state = t.update(grads[1], state, params)
    assert np.array_equal(v2["w"], [1.0, 3.0]) and t.linear_scale is None
    assert v2 is not state["velocity"]  # the caller's to change
    with pytest.raises(ValueError, match="beta"):
        optim.trace(1.0)


def _objective():
    """An MLP objective whose gradients mix several products and sums (so a
    learning rate folded into the backward seed rounds differently)."""
    m = models.mlp_regression(3, hidden_units=4, init_scale=0.5)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((6, 3))
    return m.graph.programs["objective"], m.init(seed=2), {"x": X, "y": X @ np.array([1.0, -1.0, 2.0])}


@pytest.mark.parametrize("name", sorted(ALL_OPTIMIZERS))
def test_the_training_step_is_the_readable_definition_to_the_bit(name):
    # value_and_grad, update, apply_updates: the definition the fast and the
    # checked steps derive from. A declared linear scaling s seeds the
    # backward pass with s, so its definition takes its gradient seeded so.
    from fgraph import _steps

    program, params, data = _objective()
    opt = ALL_OPTIMIZERS[name]()
    seed = np.float64(opt.linear_scale) if name in LINEAR else np.float64(1.0)
    carry = reference = (params, opt.init(params), 0.0)
    fast, checked = _steps.fast_step(program, opt), _steps.checked_step(program, opt)
    for k in range(3):
        batch = {key: v[2 * k : 2 * k + 2] for key, v in data.items()}
        p, s, running = reference
        value, grads = program.value_and_grad(p, batch, seed)
        updates, s = (grads, s) if name in LINEAR else opt.update(grads, s, p)
        reference = (apply_updates(p, updates), s, running + value)
        carry, replayed = fast(carry, batch), checked(carry, batch)
        assert tree_bits(carry[0]) == tree_bits(reference[0]) == tree_bits(replayed[0])
        assert tree_bits(carry[1]) == tree_bits(reference[1]) == tree_bits(replayed[1])
        assert carry[2] == reference[2] == replayed[2]


def test_step_uses_update_and_apply_updates():
    calls = []

    def update(grads, state, params):
        calls.append("update")
        return {k: -g for k, g in grads.items()}, {"n": state["n"] + 1}

    opt = optim.Optimizer(lambda params: {"n": 0}, update)
    new, state = opt.step({"w": np.array([1.0])}, {"n": 0}, {"w": np.array([5.0])})
    assert calls == ["update"] and state == {"n": 1}
    np.testing.assert_array_equal(new["w"], [4.0])


def test_an_optimiser_is_one_function_and_fit_derives_its_step():
    # A new optimiser is init and update; fit needs nothing else from it.
    def sign_descent(lr):
        def update(grads, state, params):
            return {k: -lr * np.sign(g) for k, g in grads.items()}, state

        return optim.Optimizer(lambda params: {}, update, name=f"sign_descent({lr})")

    m = models.ridge_regression(2, l2_reg=0.0)
    data = {"x": np.array([[1.0, 0.0], [0.0, 1.0]]), "y": np.array([1.0, -1.0])}
    params = {"w": np.zeros(2), "b": np.array(0.0)}
    result = fg.train.fit(m.graph, params, data, optimizer=sign_descent(0.25), epochs=1, batch_size=2)
    np.testing.assert_array_equal(result.params["w"], [0.25, -0.25])
    assert result.state.optimizer == "sign_descent(0.25)"


# ------------------------------------------------------------------ purity


@pytest.mark.parametrize("name", sorted(ALL_OPTIMIZERS))
def test_inputs_are_never_mutated_and_read_only_grads_are_fine(name):
    opt = ALL_OPTIMIZERS[name]()
    rng = np.random.default_rng(0)
    params = freeze({"W": rng.standard_normal((3, 2)), "b": np.float64(0.5), "c": np.array(-1.0)})
    grads = freeze({"W": 10 * rng.standard_normal((3, 2)), "b": np.float64(-2.0), "c": np.array(3.0)})
    state = freeze(opt.init(params))
    state = freeze(opt.step(grads, state, params)[1])  # a non-trivial state, read-only too
    before = (tree_bits(params), tree_bits(grads), tree_bits(state))
    first = opt.step(grads, state, params)
    updates = opt.update(grads, state, params)
    assert (tree_bits(params), tree_bits(grads), tree_bits(state)) == before
    # Deterministic: the same call gives the same bits.
    assert tree_bits(opt.step(grads, state, params)[0]) == tree_bits(first[0])
    assert tree_bits(opt.update(grads, state, params)[0]) == tree_bits(updates[0])


def test_apply_updates_makes_new_arrays():
    params = {"w": np.array([1.0, 2.0])}
    updates = {"w": np.array([0.5, 0.5])}
    new = apply_updates(params, updates)
    assert not np.shares_memory(new["w"], params["w"]) and not np.shares_memory(new["w"], updates["w"])
    np.testing.assert_array_equal(params["w"], [1.0, 2.0])
    np.testing.assert_array_equal(new["w"], [1.5, 2.5])


def test_init_does_not_alias_params():
    params = {"w": np.array([1.0, 2.0])}
    state = optim.adam().init(params)
    assert not np.shares_memory(state["mu"]["w"], params["w"])
    assert not np.shares_memory(state["mu"]["w"], state["nu"]["w"])
    assert state["mu"]["w"].dtype == np.float64


# ----------------------------------------------------------- training fold


def tiny_regression():
    """A noiseless linear regression (w = [1, -2, 0.5], b = 0.3) and its data."""
    x, y = fg.input("x", (3,)), fg.input("y")
    w, b = fg.param("w", (3,)), fg.param("b")
    g = fg.graph(objective=fg.squared_l2_distance(fg.vector_scalar_affine(x, w, b), y))
    rng = np.random.default_rng(1)
    X = rng.standard_normal((64, 3))
    data = {"x": X, "y": X @ np.array([1.0, -2.0, 0.5]) + 0.3}
    return g, data


@pytest.mark.parametrize(
    "opt",
    [optim.sgd(0.1), optim.momentum(0.02), optim.adam(0.1),
     optim.chain(optim.clip_by_global_norm(1.0), optim.adam(0.1))],
    ids=repr,
)
def test_a_fold_of_steps_fits_a_regression(opt):
    g, data = tiny_regression()
    f = fg.value_and_grad(g)
    params = {"w": np.zeros(3), "b": np.float64(0.0)}

    def step(carry, _):
        params, state = carry
        _, grads = f(params, data)
        return opt.step(grads, state, params)

    start = float(f(params, data)[0])
    params, _ = reduce(step, range(300), (params, opt.init(params)))
    assert float(f(params, data)[0]) < 1e-4 * start
    np.testing.assert_allclose(params["w"], [1.0, -2.0, 0.5], atol=1e-2)


# ------------------------------------------------------ hyperparameters


BAD = [
    (lambda: optim.sgd(0.0), "lr"),
    (lambda: optim.sgd(-0.1), "lr"),
    (lambda: optim.sgd(float("nan")), "lr"),
    (lambda: optim.sgd(float("inf")), "lr"),
    (lambda: optim.momentum(-1.0), "lr"),
    (lambda: optim.momentum(0.1, beta=1.0), "beta"),
    (lambda: optim.momentum(0.1, beta=-0.1), "beta"),
    (lambda: optim.adam(lr=0.0), "lr"),
    (lambda: optim.adam(b1=1.0), "b1"),
    (lambda: optim.adam(b1=-0.5), "b1"),
    (lambda: optim.adam(b2=1.5), "b2"),
    (lambda: optim.adam(eps=0.0), "eps"),
    (lambda: optim.adam(eps=-1e-8), "eps"),
    (lambda: optim.clip_by_global_norm(0.0), "max_norm"),
    (lambda: optim.clip_by_global_norm(float("inf")), "max_norm"),
    (lambda: optim.add_weight_decay(-1e-4), "rate"),
    (lambda: optim.scale(float("nan")), "factor"),
]


@pytest.mark.parametrize("build, arg", BAD, ids=[f"{i}-{a}" for i, (_, a) in enumerate(BAD)])
def test_bad_hyperparameters_are_a_value_error_naming_the_argument(build, arg):
    with pytest.raises(ValueError, match=rf"\b{arg}\b"):
        build()


@pytest.mark.parametrize("value", ["0.1", None, True, [0.1], 1j])
def test_non_numeric_hyperparameters_are_a_type_error(value):
    with pytest.raises(TypeError, match="lr must be a real number"):
        optim.sgd(value)


def test_chain_arguments_are_checked():
    with pytest.raises(ValueError, match="at least one"):
        optim.chain()
    with pytest.raises(TypeError, match="transform 1"):
        optim.chain(optim.sgd(0.1), "adam")


def test_numpy_hyperparameters_are_accepted_and_named_in_repr():
    opt = optim.adam(np.float64(0.01), b1=np.float32(0.5))
    assert repr(opt) == "<Optimizer adam(lr=0.01, b1=0.5, b2=0.999, eps=1e-08)>"
    chained = optim.chain(optim.clip_by_global_norm(1), optim.sgd(2))
    assert chained.name == "chain(clip_by_global_norm(1.0), sgd(lr=2.0))"
