"""Training as a fold: seeded batches, hand-checked steps, determinism,
resumption bit for bit, divergence that keeps the last finite state."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
import training_cases  # tests/ is on the path (pytest prepends it): the shared problems
from hypothesis import given
from hypothesis import strategies as st

import fgraph as fg
import models
from fgraph import io, optim, train

OPTIMIZERS = training_cases.OPTIMIZERS
_problem, _mlp = training_cases.problem, training_cases.mlp


@given(st.integers(1, 30), st.integers(1, 12), st.integers(0, 2**31), st.integers(1, 3))
def test_batches_visit_every_example_once_per_epoch_reproducibly(n, batch_size, seed, epochs):
    data = {"i": np.arange(n), "x": np.arange(n) * 10.0}
    first = list(train.batches(data, batch_size, seed, epochs))
    again = list(train.batches(data, batch_size, seed, epochs))
    per_epoch = -(-n // batch_size)
    assert len(first) == per_epoch * epochs
    for e in range(epochs):
        seen = np.concatenate([b["i"] for b in first[e * per_epoch : (e + 1) * per_epoch]])
        assert sorted(seen) == list(range(n))
        epoch = first[e * per_epoch : (e + 1) * per_epoch]
        assert all(len(b["i"]) == min(batch_size, n - k * batch_size) for k, b in enumerate(epoch))
    assert all(np.array_equal(a["i"], b["i"]) and np.array_equal(a["x"], b["i"] * 10.0) for a, b in zip(first, again))


def test_epochs_are_shuffled_differently_and_only_by_seed_and_epoch():
    assert not np.array_equal(train.epoch_permutation(50, 0, 0), train.epoch_permutation(50, 0, 1))
    assert not np.array_equal(train.epoch_permutation(50, 0, 0), train.epoch_permutation(50, 1, 0))
    assert np.array_equal(train.epoch_permutation(50, 3, 7), train.epoch_permutation(50, 3, 7))


def test_a_full_batch_epoch_is_one_gradient_step_computed_by_hand():
    m = models.ridge_regression(3, l2_reg=0.5)
    data = _problem()
    params = {"w": np.array([0.1, -0.2, 0.3]), "b": np.array(0.05)}
    result = train.fit(m.graph, params, data, optimizer=optim.sgd(0.1), epochs=1, batch_size=len(data["y"]))
    X, y, w, b = data["x"], data["y"], params["w"], params["b"]
    r = X @ w + b - y
    np.testing.assert_allclose(result.params["w"], w - 0.1 * (2 * X.T @ r / len(y) + 2 * 0.5 * w), rtol=1e-13)
    np.testing.assert_allclose(result.params["b"], b - 0.1 * 2 * r.mean(), rtol=1e-13)
    np.testing.assert_allclose(result.history[0], np.mean(r**2) + 0.5 * w @ w, rtol=1e-13)


def test_per_example_sgd_follows_the_seeded_order():
    g, params = _mlp()
    data = _problem()
    result = train.fit(g, params, data, optimizer=optim.sgd(0.05), epochs=2, batch_size=1, seed=4)
    f = fg.value_and_grad(g)
    p, history = dict(params), []
    for e in range(2):
        values = []
        for i in train.epoch_permutation(len(data["y"]), 4, e):
            v, grads = f(p, {"x": data["x"][i : i + 1], "y": data["y"][i : i + 1]})
            values.append(v)
            p = {k: p[k] - 0.05 * grads[k] for k in p}
        history.append(np.mean(values))
    for k in p:
        np.testing.assert_allclose(result.params[k], p[k], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(result.history, history, rtol=1e-12)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_the_same_seed_gives_bit_identical_params(name):
    g, params = _mlp()
    runs = [train.fit(g, params, _problem(), optimizer=OPTIMIZERS[name](), epochs=3, batch_size=5, seed=9)
            for _ in range(2)]
    assert all(np.array_equal(runs[0].params[k], runs[1].params[k]) for k in params)
    assert runs[0].history == runs[1].history
    other = train.fit(g, params, _problem(), optimizer=OPTIMIZERS[name](), epochs=3, batch_size=5, seed=10)
    assert not all(np.array_equal(runs[0].params[k], other.params[k]) for k in params)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_fit_resumed_from_a_saved_state_ends_bit_identical(name, tmp_path):
    g, params = _mlp()
    data = _problem()
    straight = train.fit(g, params, data, optimizer=OPTIMIZERS[name](), epochs=6, batch_size=5, seed=2)
    first = train.fit(g, params, data, optimizer=OPTIMIZERS[name](), epochs=2, batch_size=5, seed=2)
    io.save_state(tmp_path / "state.npz", first.state)
    resumed = train.fit(g, None, data, optimizer=OPTIMIZERS[name](), epochs=6, batch_size=5, seed=2,
                        resume=io.load_state(tmp_path / "state.npz"))
    assert all(np.array_equal(straight.params[k], resumed.params[k]) for k in params)
    assert straight.history == resumed.history and resumed.state.step == straight.state.step


def test_a_fit_resumed_mid_epoch_from_a_divergence_state_matches_the_straight_run():
    g, params = _mlp()
    data = _problem()
    straight = train.fit(g, params, data, optimizer=optim.sgd(0.05), epochs=3, batch_size=2, seed=0)
    step = train.make_step(g, optim.sgd(0.05))
    state = train.TrainState(train.readonly(params), {}, 0, 0, 0, 2)
    for batch in list(train.epoch_batches(data, 2, 0, 0))[:4]:  # stop after 4 of 6 steps
        state = step(state, batch)
    resumed = train.fit(g, None, data, optimizer=optim.sgd(0.05), epochs=3, batch_size=2, seed=0, resume=state)
    assert all(np.array_equal(straight.params[k], resumed.params[k]) for k in params)
    assert straight.history == resumed.history


def test_divergence_stops_at_once_naming_epoch_and_step_with_the_last_finite_state():
    m = models.linear_regression(3)
    data = _problem(n=8)
    with pytest.raises(train.DivergenceError) as info:
        train.fit(m.graph, m.init(), data, optimizer=optim.sgd(50.0), epochs=100, batch_size=1, seed=0)
    err = info.value
    assert isinstance(err, ValueError) and f"epoch {err.epoch}, step {err.step}" in str(err)
    state = err.state
    assert all(np.isfinite(v).all() for v in state.params.values())
    assert state.step == err.epoch * 8 + err.step and state.epoch == err.epoch >= 1
    # the history up to the failing epoch is the one a fit that stopped there records
    before = train.fit(m.graph, m.init(), data, optimizer=optim.sgd(50.0), epochs=err.epoch, batch_size=1, seed=0)
    assert state.history == before.history
    # the state really is the last finite one: the next step is the one that fails
    batch = train.epoch_batches({k: np.asarray(v) for k, v in data.items()}, 1, 0, err.epoch)[err.step]
    with np.errstate(over="ignore", invalid="ignore"):
        value, grads = fg.value_and_grad(m.graph)(state.params, batch)
        new = {k: state.params[k] - 50.0 * grads[k] for k in grads}
    finite = [np.isfinite(value), *(np.isfinite(v).all() for v in [*grads.values(), *new.values()])]
    assert not all(finite)


def test_a_divergence_after_a_mid_epoch_resume_is_replayed_from_there_to_the_same_step():
    # The replay starts from the last verified point, here the resumed state
    # 3 steps into epoch 0: it must pick up the epoch's batches from step 3.
    m = models.linear_regression(3)
    data = _problem(n=8)
    with pytest.raises(train.DivergenceError) as straight:
        train.fit(m.graph, m.init(), data, optimizer=optim.sgd(50.0), epochs=100, batch_size=1, seed=0)
    state = train.TrainState(train.readonly(m.init()), {}, 0, 0, 0, 1)
    step = train.make_step(m.graph, optim.sgd(50.0))
    for batch in train.epoch_batches(data, 1, 0, 0)[:3]:
        state = step(state, batch)
    with pytest.raises(train.DivergenceError) as resumed:
        train.fit(m.graph, None, data, optimizer=optim.sgd(50.0), epochs=100, batch_size=1, seed=0, resume=state)
    a, b = straight.value, resumed.value
    assert (a.epoch, a.step, str(a)) == (b.epoch, b.step, str(b)) and a.epoch >= 1
    assert a.state.history == b.state.history and a.state.step == b.state.step
    assert all(np.array_equal(a.state.params[k], b.state.params[k]) for k in a.state.params)


def test_divergence_hidden_behind_a_saturated_unit_is_still_caught():
    # The first update overflows w to inf; tanh(inf) = 1 and its derivative 0
    # keep every later objective and gradient finite, so only the per-epoch
    # param check sees it, and the replay must still name step 0.
    x, y, w = fg.input("x", (1,)), fg.input("y", (1,)), fg.param("w", (1,))
    g = fg.graph(objective=fg.squared_l2_distance(fg.tanh(fg.mul(x, w)), y))
    data = {"x": np.ones((3, 1)), "y": np.full((3, 1), 50.0)}
    with pytest.raises(train.DivergenceError, match="'w'.* (is not finite|non-finite)") as info:
        train.fit(g, {"w": np.array([0.1])}, data, optimizer=optim.sgd(1e308), epochs=3)
    assert (info.value.epoch, info.value.step) == (0, 0)
    assert np.array_equal(info.value.state.params["w"], [0.1])


def test_fit_validates_once_with_clear_errors():
    m = models.ridge_regression(3, 1.0)
    data = _problem()
    with pytest.raises(fg.ShapeError, match="batch axis"):
        train.fit(m.graph, m.init(), {"x": np.ones(3), "y": np.array(1.0)}, optimizer=optim.sgd(0.1), epochs=1)
    with pytest.raises(ValueError, match="batch_size"):
        train.fit(m.graph, m.init(), data, optimizer=optim.sgd(0.1), epochs=1, batch_size=0)
    with pytest.raises(TypeError, match="optimizer"):
        train.fit(m.graph, m.init(), data, optimizer=0.1, epochs=1)
    with pytest.raises(ValueError, match="NaN"):
        train.fit(m.graph, {"w": np.full(3, np.nan), "b": 0.0}, data, optimizer=optim.sgd(0.1), epochs=1)
    state = train.fit(m.graph, m.init(), data, optimizer=optim.sgd(0.1), epochs=1, seed=3).state
    with pytest.raises(ValueError, match="seed=3"):
        train.fit(m.graph, None, data, optimizer=optim.sgd(0.1), epochs=2, seed=4, resume=state)
    with pytest.raises(ValueError, match="either params or resume"):
        train.fit(m.graph, m.init(), data, optimizer=optim.sgd(0.1), epochs=2, seed=3, resume=state)


def test_progress_wraps_the_epochs_and_on_epoch_sees_each_state_outside_the_fold():
    m = models.ridge_regression(3, 1.0)
    seen, wrapped = [], []

    def progress(epochs):
        for e in epochs:
            wrapped.append(e)
            yield e

    result = train.fit(m.graph, m.init(), _problem(), optimizer=optim.sgd(0.01), epochs=3, progress=progress,
                       on_epoch=seen.append)
    assert wrapped == [0, 1, 2] and [s.epoch for s in seen] == [1, 2, 3]
    assert seen[-1].history == result.history
    assert all(np.array_equal(seen[-1].params[k], result.params[k]) for k in result.params)
    assert len(result.history) == 3 and result.history[-1] < result.history[0]


def test_interrupting_a_fit_keeps_the_last_completed_epoch():
    m = models.ridge_regression(3, 1.0)

    def interrupt_after_two(epochs):
        for e in epochs:
            if e == 2:
                raise KeyboardInterrupt
            yield e

    with pytest.raises(train.TrainingInterrupted) as info:
        train.fit(m.graph, m.init(), _problem(), optimizer=optim.sgd(0.01), epochs=5, progress=interrupt_after_two)
    assert info.value.state.epoch == 2 and isinstance(info.value, KeyboardInterrupt)


def test_returned_params_are_read_only_and_the_callers_params_untouched():
    m = models.ridge_regression(3, 1.0)
    params = {"w": np.ones(3), "b": np.array(0.0)}
    result = train.fit(m.graph, params, _problem(), optimizer=optim.sgd(0.01), epochs=2)
    assert np.array_equal(params["w"], np.ones(3)) and params["w"].flags.writeable
    assert not result.params["w"].flags.writeable


def test_the_same_model_trains_per_example_and_on_minibatches():
    m = models.ridge_regression(3, 0.1)
    data = _problem(n=20)
    for batch_size in (1, 4, 20):
        result = train.fit(m.graph, m.init(), data, optimizer=optim.sgd(0.05), epochs=30, batch_size=batch_size)
        assert result.history[-1] < 0.5 * result.history[0]


def test_an_optimiser_state_that_overflows_is_a_divergence_not_a_silently_frozen_param():
    """A finite gradient beyond 1e154 makes adam's second moment inf: the update is then 0 and the
    param would stop training without a word (and the state could not be saved)."""
    x, t = fg.input("x", (3,)), fg.input("y", ())
    prediction = fg.vector_scalar_affine(x, fg.param("w", (3,)), fg.param("b", ()))
    g = fg.graph(objective=fg.squared_l2_distance(prediction, t))
    data = training_cases.problem(n=64)
    data = {**data, "x": np.where(np.arange(192).reshape(64, 3) == 1, 1e200, data["x"])}
    params = {"w": np.zeros(3), "b": np.float64(0.0)}
    with pytest.raises(train.DivergenceError, match=r"epoch 0, step 0 .*the optimiser's state\['nu'\]\['w'\] is not"):
        train.fit(g, params, data, optimizer=optim.adam(0.01), epochs=3, batch_size=64)


def test_a_state_holding_nan_in_its_optimiser_state_or_running_sum_is_refused_on_resume():
    """Its params are checked; so are the rest of the numbers the fit would train on."""
    g, params = training_cases.mlp()
    data = training_cases.problem(n=12)
    state = train.fit(g, params, data, optimizer=optim.adam(0.01), epochs=1, batch_size=4).state
    nu = {k: np.full(np.shape(v), np.nan) for k, v in state.opt_state["nu"].items()}
    for bad, words in ((attrs.evolve(state, opt_state={**state.opt_state, "nu": nu}), r"the optimiser's state\['nu'\]"),
                       (attrs.evolve(state, running=float("nan")), "its running sum .* is nan")):
        with pytest.raises(ValueError, match="resume: " + words):
            train.fit(g, None, data, optimizer=optim.adam(0.01), epochs=2, batch_size=4, resume=bad)
