"""Resuming a fit: the state must fit the data (its number of examples) and the
optimiser (the structure of its state), or a clear error says what differs;
and nothing a fit, a step or a loader returns shares memory with anything
the caller holds or with anything else returned."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import training_cases  # tests/ is on the path (pytest prepends it): the shared problems

import models
from fgraph import io, optim, train

OPTIMIZERS = training_cases.OPTIMIZERS
_problem, _mlp = training_cases.problem, training_cases.mlp


def _fit(opt, epochs, data=None, resume=None):
    """The MLP fitted with ``opt`` in batches of 5, seed 2: from its initial params, or from ``resume``."""
    g, params = _mlp()
    return train.fit(g, None if resume is not None else params, _problem() if data is None else data,
                     optimizer=opt, epochs=epochs, batch_size=5, seed=2, resume=resume)


# ------------------------------------------------------ number of examples


def test_the_state_records_the_examples_and_the_optimiser_and_they_round_trip(tmp_path):
    opt = optim.adam(0.01)
    state = _fit(opt, 2).state
    assert state.num_examples == 12 and state.optimizer == opt.name
    io.save_state(tmp_path / "s", state)
    loaded = io.load_state(tmp_path / "s")
    assert loaded.num_examples == 12 and loaded.optimizer == opt.name


@pytest.mark.parametrize("n", [8, 11, 13, 20])  # fewer or more steps per epoch, or the same number
def test_resuming_on_another_number_of_examples_is_refused(n, tmp_path):
    state = _fit(optim.sgd(0.01), 2).state
    io.save_state(tmp_path / "s", state)
    for resume in (state, io.load_state(tmp_path / "s")):
        with pytest.raises(ValueError, match=f"trained on 12 examples, this fit has {n}"):
            _fit(optim.sgd(0.01), 3, data=_problem(n=n), resume=resume)


def _legacy(state):
    """``state`` as a state saved before the number of examples and the
    optimiser were recorded."""
    return train.TrainState(state.params, state.opt_state, state.epoch, state.step, state.seed, state.batch_size,
                            state.history, state.running)


def test_a_state_of_unknown_size_must_sit_within_this_fits_epochs():
    state = _legacy(_fit(optim.sgd(0.01), 2).state)  # 2 epochs of 3 steps: step 6
    with pytest.raises(ValueError, match=r"taken 6 steps in 2 epochs.*epochs of 4 steps \(20 examples"):
        _fit(optim.sgd(0.01), 3, data=_problem(n=20), resume=state)  # epoch 2 would start at step 8
    inconsistent = train.TrainState(state.params, state.opt_state, 2, 6, 2, 5, history=(1.0,))
    with pytest.raises(ValueError, match="done 2 epochs but its history has 1 entries"):
        _fit(optim.sgd(0.01), 3, resume=inconsistent)


def _as_version_1(path):
    """Rewrite a state file as the previous version wrote it: no array
    declarations and no ``num_examples``, ``optimizer`` or ``metrics`` fields."""
    with np.load(path, allow_pickle=False) as npz:
        members = {k: npz[k] for k in npz.files}
    manifest = json.loads(str(members.pop("manifest")[()]))
    manifest["version"] = 1
    manifest.pop("arrays", None)
    del manifest["fields"]["num_examples"], manifest["fields"]["optimizer"], manifest["fields"]["metrics"]
    members["manifest"] = np.array(json.dumps(manifest))
    with open(path, "wb") as f, zipfile.ZipFile(f, "w") as zf:
        for key, value in members.items():
            with zf.open(f"{key}.npy", "w") as m:
                np.lib.format.write_array(m, value, allow_pickle=False)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_state_saved_by_the_previous_version_loads_and_resumes_bit_identically(name, tmp_path):
    straight = _fit(OPTIMIZERS[name](), 5)
    io.save_state(tmp_path / "s", _fit(OPTIMIZERS[name](), 2).state)
    _as_version_1(tmp_path / "s")
    old = io.load_state(tmp_path / "s")
    assert old.num_examples is None and old.optimizer is None and old.metrics == ()
    resumed = _fit(OPTIMIZERS[name](), 5, resume=old)
    assert all(np.array_equal(straight.params[k], resumed.params[k]) for k in straight.params)
    assert resumed.history == straight.history and resumed.state.num_examples == 12
    assert resumed.metrics == straight.metrics == ()


# --------------------------------------------------------------- optimiser


@pytest.mark.parametrize(
    "made_by, resumed_with, differs",
    [
        ("sgd", "adam", r"opt_state has keys \[\], expected \['count', 'mu', 'nu'\]"),
        ("adam", "sgd", r"opt_state has keys \['count', 'mu', 'nu'\], expected \[\]"),
        ("adam", "momentum", r"opt_state has keys \['count', 'mu', 'nu'\], expected \['velocity'\]"),
        ("momentum", "chain", r"opt_state has keys \['velocity'\], expected \['0', '1', '2'\]"),
        ("chain", "adam", r"opt_state has keys \['0', '1', '2'\], expected \['count', 'mu', 'nu'\]"),
    ],
)
def test_resuming_with_another_optimiser_is_refused_naming_both(made_by, resumed_with, differs, tmp_path):
    first, other = OPTIMIZERS[made_by](), OPTIMIZERS[resumed_with]()
    io.save_state(tmp_path / "s", _fit(first, 2).state)
    for resume in (io.load_state(tmp_path / "s"), _legacy(io.load_state(tmp_path / "s"))):
        with pytest.raises(ValueError, match=differs) as info:
            _fit(other, 3, resume=resume)
        assert other.name in str(info.value)
        assert (first.name if resume.optimizer else "cannot name") in str(info.value)


def test_a_state_shaped_for_other_params_is_refused():
    state = _fit(optim.adam(0.01), 1).state
    shrunk = {**state.opt_state, "mu": {**state.opt_state["mu"], "W1": np.zeros((2, 3))}}
    differs = r"opt_state\['mu'\]\['W1'\] is an array of shape \(2, 3\), expected an array of shape \(4, 3\)"
    with pytest.raises(ValueError, match=differs):
        _fit(optim.adam(0.01), 2, resume=train.TrainState(**{**_fields(state), "opt_state": shrunk}))


def _fields(state):
    return {f.name: getattr(state, f.name) for f in type(state).__attrs_attrs__}


def test_other_hyperparameters_of_the_same_optimiser_are_allowed():
    state = _fit(optim.adam(0.01), 2).state
    slower = optim.adam(0.001)
    result = _fit(slower, 3, resume=state)
    assert len(result.history) == 3 and result.state.optimizer == slower.name


def test_make_step_refuses_a_state_of_another_optimiser():
    g, _ = _mlp()
    state = _fit(optim.sgd(0.01), 1).state
    batch = train.epoch_batches(_problem(), 5, 2, 1)[0]
    with pytest.raises(ValueError, match=r"make_step: .*made by sgd\(lr=0.01\).*expected \['count', 'mu', 'nu'\]"):
        train.make_step(g, optim.adam(0.01))(state, batch)
    stepped = train.make_step(g, optim.sgd(0.02))(state, batch)
    assert stepped.optimizer == "sgd(lr=0.02)" and stepped.step == state.step + 1


# ------------------------------------------------------------------ aliasing


def _arrays(tree):
    """Every array (and NumPy scalar) in a nested dict/list/tuple."""
    if isinstance(tree, dict):
        return [a for v in tree.values() for a in _arrays(v)]
    if isinstance(tree, (list, tuple)):
        return [a for v in tree for a in _arrays(v)]
    return [tree] if isinstance(tree, np.ndarray) else []


def _assert_private(returned, held=()):
    """No array of ``returned`` shares memory with another one of ``returned``
    or with any array of ``held``."""
    returned, held = _arrays(returned), _arrays(held)
    for i, a in enumerate(returned):
        assert not any(np.shares_memory(a, b) for b in returned[i + 1 :]), "two returned arrays share memory"
        assert not any(np.shares_memory(a, b) for b in held), "a returned array shares memory with the caller's"


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("epochs", [0, 2])
def test_a_fit_returns_arrays_of_its_own(name, epochs):
    g, params = _mlp()
    data = _problem()
    result = train.fit(g, params, data, optimizer=OPTIMIZERS[name](), epochs=epochs, batch_size=5, seed=2)
    _assert_private([result.state.params, result.state.opt_state], held=[params, data])
    resumed = train.fit(g, None, data, optimizer=OPTIMIZERS[name](), epochs=epochs, batch_size=5, seed=2,
                        resume=result.state)
    _assert_private([resumed.state.params, resumed.state.opt_state],
                    held=[params, data, result.state.params, result.state.opt_state])


def test_a_state_built_on_the_callers_arrays_is_copied_before_a_resumed_fit_returns_it():
    g, params = _mlp()
    opt = optim.momentum(0.01)
    state = train.TrainState(train.readonly(params), opt.init(params), 0, 0, 2, 5)
    result = train.fit(g, None, _problem(), optimizer=opt, epochs=0, batch_size=5, seed=2, resume=state)
    _assert_private([result.state.params, result.state.opt_state], held=[params, state.opt_state])


def test_a_divergence_state_does_not_share_the_callers_params():
    m = models.linear_regression(3)
    params = {"w": np.zeros(3), "b": np.array(0.0)}
    with pytest.raises(train.DivergenceError) as info:
        train.fit(m.graph, params, {"x": np.ones((8, 3)), "y": np.full(8, 1e3)}, optimizer=optim.sgd(1e308), epochs=3,
                  batch_size=8)
    assert (info.value.epoch, info.value.step) == (0, 0)
    _assert_private([info.value.state.params], held=[params])


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_step_returns_arrays_of_its_own(name):
    g, params = _mlp()
    opt = OPTIMIZERS[name]()
    state = train.TrainState(train.readonly(params), opt.init(params), 0, 0, 2, 5)
    batch = train.epoch_batches(_problem(), 5, 2, 0)[0]
    after = train.make_step(g, opt)(state, batch)
    _assert_private([after.params, after.opt_state], held=[params, state.opt_state, batch])


def test_loaded_arrays_are_all_distinct(tmp_path):
    state = _fit(OPTIMIZERS["chain"](), 2).state
    io.save_state(tmp_path / "s", state)
    io.save_params(tmp_path / "p", state.params)
    loaded = io.load_state(tmp_path / "s")
    _assert_private([loaded.params, loaded.opt_state, io.load_params(tmp_path / "p"), io.load_params(tmp_path / "p")],
                    held=[state.params, state.opt_state])
