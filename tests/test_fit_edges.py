"""What fit does around the fold, for training real networks: a progress bar
with the loss, an evaluation on held-out data after every epoch recorded in
the state, and early stopping that returns normally and resumes bit for bit."""

from __future__ import annotations

import io as io_module
import json
import sys
import zipfile

import numpy as np
import pytest
import training_cases  # tests/ is on the path (pytest prepends it): the shared problems

import fgraph as fg
import models
from fgraph import io, optim, train

_problem, _mlp = training_cases.problem, training_cases.mlp


def _fit(epochs, resume=None, **kw):
    """The MLP fitted with Adam in batches of 5, seed 2, evaluated on held-out data."""
    g, params = _mlp()
    kw.setdefault("evaluate", train.held_out(g, _problem(n=7, seed=1)))
    return train.fit(g, None if resume is not None else params, _problem(), optimizer=optim.adam(0.02), epochs=epochs,
                     batch_size=5, seed=2, resume=resume, **kw)


def _same(a, b):
    """Two fit results or states are the same to the bit."""
    return (all(np.array_equal(a.params[k], b.params[k]) for k in a.params) and a.history == b.history
            and a.metrics == b.metrics)


# ------------------------------------------------------------------ evaluate


def test_evaluate_sees_every_epochs_params_and_its_metrics_are_recorded_per_epoch():
    g, _ = _mlp()
    held = _problem(n=7, seed=1)
    seen = []
    result = _fit(3, on_epoch=seen.append)
    expected = tuple({"validation": float(fg.forward(g, s.params, held)["objective"])} for s in seen)
    assert result.metrics == result.state.metrics == expected and len(expected) == 3
    assert [s.metrics for s in seen] == [expected[:1], expected[:2], expected]


def test_metrics_survive_saving_and_resuming(tmp_path):
    straight = _fit(5)
    io.save_state(tmp_path / "s", _fit(2).state)
    resumed = _fit(5, resume=io.load_state(tmp_path / "s"))
    assert _same(straight, resumed) and len(resumed.metrics) == 5


def test_a_fit_without_evaluate_records_no_metrics_until_an_epoch_is_evaluated():
    first = _fit(2, evaluate=None)
    assert first.metrics == first.state.metrics == ()
    later = _fit(4, resume=first.state)
    assert later.metrics[:2] == ({}, {}) and later.metrics[2:] == _fit(4).metrics[2:]
    assert _fit(6, resume=later.state, evaluate=None).metrics == (*later.metrics, {}, {})


def test_metrics_returned_are_dicts_of_their_own():
    state = _fit(2).state
    resumed = _fit(3, resume=state).metrics
    assert not any(a is b for a in resumed for b in state.metrics)
    legacy = _fit(3, resume=train.TrainState(**{**_fields(state), "metrics": ()})).metrics
    assert len({id(m) for m in legacy}) == 3 and legacy[:2] == ({}, {})


def _without_metrics(path):
    """Rewrite a state file as one saved before metrics were recorded."""
    with np.load(path, allow_pickle=False) as npz:
        members = {k: npz[k] for k in npz.files}
    manifest = json.loads(str(members.pop("manifest")[()]))
    del manifest["fields"]["metrics"]
    members["manifest"] = np.array(json.dumps(manifest))
    with open(path, "wb") as f, zipfile.ZipFile(f, "w") as zf:
        for key, value in members.items():
            with zf.open(f"{key}.npy", "w") as m:
                np.lib.format.write_array(m, value, allow_pickle=False)


def test_a_state_saved_before_metrics_loads_and_resumes_with_empty_metrics_for_its_epochs(tmp_path):
    io.save_state(tmp_path / "s", _fit(2).state)
    _without_metrics(tmp_path / "s")
    old = io.load_state(tmp_path / "s")
    assert old.metrics == () and old.epoch == 2
    resumed, straight = _fit(4, resume=old), _fit(4)
    assert resumed.metrics == ({}, {}, *straight.metrics[2:])
    assert all(np.array_equal(resumed.params[k], straight.params[k]) for k in straight.params)


def test_a_state_whose_metrics_do_not_match_its_epochs_is_refused():
    state = _fit(2).state
    with pytest.raises(ValueError, match="done 2 epochs but its metrics has 1 entries"):
        _fit(3, resume=train.TrainState(**{**_fields(state), "metrics": state.metrics[:1]}))


def _fields(state):
    return {f.name: getattr(state, f.name) for f in type(state).__attrs_attrs__}


@pytest.mark.parametrize(
    "returned, message",
    [
        ([1.0], "evaluate must return a dict of metric name -> number, got list after epoch 1"),
        ({1: 1.0}, "metric names must be str, got 1 after epoch 1"),
        ({"acc": "high"}, "metric 'acc' must be a real number, got 'high'"),
        ({"acc": np.ones(2)}, "metric 'acc' must be a real number"),
        ({"acc": True}, "metric 'acc' must be a real number"),
        ({"acc": 1j}, "metric 'acc' must be a real number"),
    ],
)
def test_evaluate_must_return_named_numbers(returned, message):
    with pytest.raises(TypeError, match=message):
        _fit(2, evaluate=lambda params: returned)


def test_evaluate_numbers_of_any_real_kind_are_recorded_as_floats():
    result = _fit(1, evaluate=lambda params: {"a": np.float32(0.5), "b": 3, "c": np.array(2.0), "d": float("nan")})
    (metrics,) = result.metrics
    assert metrics["a"] == 0.5 and metrics["b"] == 3.0 and metrics["c"] == 2.0 and np.isnan(metrics["d"])
    assert all(type(v) is float for v in metrics.values())


def test_evaluate_and_on_epoch_must_be_functions():
    for name in ("evaluate", "on_epoch"):
        with pytest.raises(TypeError, match=f"{name} must be a function or None"):
            _fit(1, **{name: 3})


def test_held_out_is_the_objective_on_the_data_and_checks_what_it_is_given():
    g, params = _mlp()
    held = _problem(n=7, seed=1)
    evaluate = train.held_out(g, held, name="val")
    assert evaluate(params) == {"val": float(fg.forward(g, params, held)["objective"])}
    with pytest.raises(fg.NameMismatchError, match="W1"):
        evaluate({k: v for k, v in params.items() if k != "W1"})
    with pytest.raises(ValueError, match="no output 'loss'"):
        train.held_out(g, held, output="loss")
    with pytest.raises(fg.ShapeError):
        train.held_out(g, {"x": np.ones((7, 2)), "y": np.ones(7)})


def test_a_divergence_carries_the_metrics_of_the_epochs_before_it():
    m = models.linear_regression(3)
    data = _problem(n=8)
    evaluate = train.held_out(m.graph, _problem(n=5, seed=3))
    with pytest.raises(train.DivergenceError) as info:
        train.fit(m.graph, m.init(), data, optimizer=optim.sgd(50.0), epochs=100, batch_size=1, evaluate=evaluate)
    state = info.value.state
    before = train.fit(m.graph, m.init(), data, optimizer=optim.sgd(50.0), epochs=state.epoch, batch_size=1,
                       evaluate=evaluate)
    assert state.metrics == before.metrics and len(state.metrics) == state.epoch >= 1


def test_the_edges_do_not_change_the_fold():
    plain = _fit(4, evaluate=None)
    watched = _fit(4, progress=lambda epochs: epochs, on_epoch=lambda state: None)
    assert all(np.array_equal(plain.params[k], watched.params[k]) for k in plain.params)
    assert plain.history == watched.history and plain.state.step == watched.state.step


# ------------------------------------------------------------ early stopping


def test_on_epoch_returning_stop_ends_the_fit_normally_and_a_resumed_fit_continues_bit_identically(tmp_path):
    stopped = _fit(10, on_epoch=lambda state: train.STOP if state.epoch == 3 else None)
    assert stopped.state.epoch == 3 and len(stopped.history) == 3 and len(stopped.metrics) == 3
    assert _same(stopped, _fit(3))
    io.save_state(tmp_path / "s", stopped.state)
    assert _same(_fit(10, resume=io.load_state(tmp_path / "s")), _fit(10))


@pytest.mark.parametrize("returned", [True, 1, "stop", train.STOP.__class__()])
def test_only_stop_itself_stops(returned):
    assert _fit(3, on_epoch=lambda state: returned).state.epoch == 3
    assert repr(train.STOP) == "fgraph.train.STOP"


def _state(values, metric="v"):
    return train.TrainState({}, {}, len(values), len(values), 0, 1, history=(0.0,) * len(values),
                            metrics=tuple({metric: v} for v in values))


@pytest.mark.parametrize(
    "values, patience, mode, stops",
    [
        ([3.0, 2.0, 2.5, 2.6], 2, "min", True),  # best at epoch 1, two epochs without improvement
        ([3.0, 2.0, 2.5, 2.6], 3, "min", False),
        ([3.0, 2.0, 2.0, 2.0], 2, "min", True),  # a tie is no improvement: the first best counts
        ([3.0, 2.0, 2.5, 1.0], 2, "min", False),
        ([0.1, 0.5, 0.4, 0.3], 2, "max", True),
        ([0.1, 0.5, 0.4, 0.6], 2, "max", False),
        ([2.0, float("nan"), float("nan")], 2, "min", True),  # NaN is never best
        ([1.0], 1, "min", False),
    ],
)
def test_early_stopping_waits_patience_epochs_after_the_best(values, patience, mode, stops):
    on_epoch = train.early_stopping("v", patience=patience, mode=mode)
    assert (on_epoch(_state(values)) is train.STOP) == stops


def test_early_stopping_skips_epochs_without_the_metric_and_names_it_when_none_has_it():
    on_epoch = train.early_stopping("v", patience=1)
    state = _state([1.0, 2.0])
    assert on_epoch(train.TrainState(**{**_fields(state), "metrics": ({}, {"v": 2.0})})) is None
    with pytest.raises(ValueError, match=r"no epoch has a number for the metric 'v' .*\['w'\].*evaluate="):
        on_epoch(_state([1.0], metric="w"))
    for bad, message in (({"patience": 0}, "patience must be an int >= 1"), ({"mode": "lowest"}, "mode must be"),
                         ({"metric": 3}, "metric must be a str")):
        with pytest.raises((TypeError, ValueError), match=message):
            train.early_stopping(**bad)


def test_early_stopping_in_a_fit_stops_after_patience_epochs_without_improvement():
    result = _fit(20, evaluate=lambda params: {"flat": 1.0}, on_epoch=train.early_stopping("flat", patience=2))
    assert result.state.epoch == 3  # best at epoch 0, no better after epochs 1 and 2


def test_early_stopping_on_held_out_data_stops_a_resumed_fit_where_the_unbroken_one_stops():
    stop = train.early_stopping(patience=2)
    straight = _fit(200, on_epoch=stop)
    assert 2 < straight.state.epoch < 200
    resumed = _fit(200, resume=_fit(straight.state.epoch - 2, on_epoch=stop).state, on_epoch=stop)
    assert resumed.state.epoch == straight.state.epoch and _same(resumed, straight)


# ------------------------------------------------------------------ progress


def test_progress_true_shows_a_tqdm_bar_with_the_loss_and_the_metrics(capsys):
    pytest.importorskip("tqdm")
    result = _fit(3, progress=True)
    err = capsys.readouterr().err
    assert "3/3" in err and "loss=" in err and "validation=" in err
    assert f"{result.history[-1]:.3g}"[:4] in err


def test_progress_true_resumed_counts_from_the_state(capsys):
    pytest.importorskip("tqdm")
    _fit(4, resume=_fit(2).state, progress=True)
    err = capsys.readouterr().err
    assert "2/4" in err and "4/4" in err and "0/4" not in err


def test_progress_true_without_tqdm_is_a_clear_error_before_any_epoch(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    seen = []
    with pytest.raises(ImportError, match="tqdm is not installed: pip install tqdm"):
        _fit(2, progress=True, on_epoch=seen.append)
    assert seen == []


def test_progress_must_be_true_none_or_a_function():
    with pytest.raises(TypeError, match="progress must be True, None or a function"):
        _fit(1, progress="tqdm")
    assert _fit(1, progress=False).state.epoch == 1


def test_the_progress_bar_is_closed_when_the_fit_stops_early_or_is_interrupted(monkeypatch):
    tqdm = pytest.importorskip("tqdm")
    bars = []

    class Bar(tqdm.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "file": io_module.StringIO()})
            self.closed_by_fit = False
            bars.append(self)

        def close(self):
            self.closed_by_fit = True
            super().close()

    monkeypatch.setattr(tqdm, "tqdm", Bar)
    _fit(5, progress=True, on_epoch=lambda state: train.STOP)

    def interrupt(state):
        raise KeyboardInterrupt

    with pytest.raises(train.TrainingInterrupted):
        _fit(5, progress=True, on_epoch=interrupt)
    assert [(bar.n, bar.closed_by_fit) for bar in bars] == [(1, True), (1, True)]


def test_an_interruption_during_evaluation_keeps_the_last_evaluated_epoch():
    calls = []

    def evaluate(params):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return {"v": float(len(calls))}

    with pytest.raises(train.TrainingInterrupted) as info:
        _fit(5, evaluate=evaluate)
    state = info.value.state
    assert state.epoch == 2 and state.metrics == ({"v": 1.0}, {"v": 2.0})
