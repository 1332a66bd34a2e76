"""The gallery of structured networks (``scripts/gallery.py``), end to end, and its parts.

``scripts/gallery.py --quick`` runs into temporary folders: two runs with one
seed (one with 2 worker processes, one with 1, started side by side) must
write every file, report every model of the registry (``showcase.EXPERIMENTS``)
with its test metric, train time, epochs and settings as finite numbers, and
agree exactly on everything that is not measured with a clock. The measures
and the targets are checked on small cases where the answer is known. No
assertion is about how long anything takes, and none about how well a quick
run learns.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
SCRIPT = SCRIPTS / "gallery.py"
if str(SCRIPTS) not in sys.path:  # the job's packages (jobs, showcase, report) live in scripts/
    sys.path.insert(0, str(SCRIPTS))

from job_cases import assert_every_fit_gets_the_jobs_backend  # noqa: E402

import fgraph  # noqa: E402
from jobs import Outcome  # noqa: E402
from showcase import EXPERIMENTS, GALLERY  # noqa: E402
from showcase.data import accuracy, confusion, head, rmse  # noqa: E402
from showcase.report import optimizer_text  # noqa: E402
from showcase.runners import DigitsMetrics, ForecastMetrics, at_least, no_worse_than_ar, optimizer  # noqa: E402

IDS = list(EXPERIMENTS)
FIGURES = [plot.filename for plot in GALLERY.plots.values()]


def _start(out: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.Popen([sys.executable, str(SCRIPT), "--out", str(out), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 180) -> subprocess.CompletedProcess:
    stdout, stderr = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two quick runs with seed 0, on 2 worker processes and on 1, run side by side."""
    a, b = tmp_path_factory.mktemp("gallery_a"), tmp_path_factory.mktemp("gallery_b")
    procs = [_start(a, "--quick", "--seed", "0", "--jobs", "2"), _start(b, "--quick", "--seed", "0", "--jobs", "1")]
    done = [_finish(p) for p in procs]
    for result in done:
        assert result.returncode == 0, result.stderr[-3000:]
    return {"a": a, "b": b, "stdout": done[0].stdout}


def _results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text(encoding="utf-8"))


def _reproducible(entry: dict) -> dict:
    """A results.json entry without the values measured with a clock."""
    return {k: v for k, v in entry.items() if k not in entry["timing_keys"]}


def _finite(value) -> bool:
    if isinstance(value, list):
        return bool(value) and all(_finite(v) for v in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ------------------------------------------------------------ the whole job


def test_every_file_is_written(runs):
    out = runs["a"]
    for name in ["GALLERY.md", "results.json", *FIGURES]:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for name in FIGURES:
        assert (out / name).read_bytes().startswith(b"\x89PNG"), name
    for exp_id in IDS:
        assert (out / "runs" / f"{exp_id}.json").is_file(), exp_id
        assert (out / "runs" / f"{exp_id}.npz").is_file(), exp_id
    assert not list(out.rglob("*.tmp")), "temporary files left behind"
    assert not (out / "REPORT.md").exists() and not (out / "report.pdf").exists()


def test_every_model_has_its_metric_time_epochs_and_settings(runs):
    results = _results(runs["a"])
    experiments = results["experiments"]
    assert list(experiments) == IDS
    for exp_id, entry in experiments.items():
        exp = EXPERIMENTS[exp_id]
        metric = "test_rmse" if "test_rmse" in entry else "test_accuracy"
        assert _finite(entry[metric]), exp_id
        by_epoch = entry[f"{metric}_by_epoch"]
        assert _finite(by_epoch) and len(by_epoch) == entry["epochs"] == exp.resolved(True)["epochs"], exp_id
        assert by_epoch[-1] == entry[metric], exp_id  # the curve ends at the reported number
        for key in ("seconds", "train_seconds", "seconds_per_epoch", "num_params"):
            assert _finite(entry[key]) and entry[key] > 0, (exp_id, key)
        assert {"seconds", "train_seconds", "seconds_per_epoch"} <= set(entry["timing_keys"])
        config = entry["config"]
        settings = exp.resolved(True)
        assert config["constructor"] == f"models.{settings['model']}" and config["kwargs"] == settings["kwargs"]
        assert config["optimizer"] == settings["optimizer"], exp_id
        assert (config["epochs"], config["batch_size"]) == (settings["epochs"], settings["batch_size"]), exp_id
        assert config["train_examples"] == settings["train_examples"], exp_id  # --quick's subset
        assert config["seed"] == 0 and config["quick"] is True
        assert isinstance(entry["meets_target"], bool) and entry["target"], exp_id
    for exp_id in ("cnn", "rnn", "resnet"):
        assert 0 <= experiments[exp_id]["test_accuracy"] <= 1
    sunspots = experiments["sunspots"]
    assert sunspots["ar_rmse"] == pytest.approx(18.75, abs=0.005)  # AR(9) in sunspot numbers
    assert sunspots["config"]["ar_order"] == 9
    env = results["environment"]
    assert env["quick"] is True and env["seed"] == 0 and env["versions"]["fgraph"]
    assert set(env["timing_keys"]) <= set(env)


def test_run_records_hold_the_reproducible_metrics(runs):
    experiments = _results(runs["a"])["experiments"]
    for exp_id in IDS:
        record = json.loads((runs["a"] / "runs" / f"{exp_id}.json").read_text(encoding="utf-8"))
        assert record["seed"] == 0 and re.fullmatch(r"[0-9a-f]{64}", record["params_digest"])
        for metric, value in record["metrics"].items():
            assert metric not in experiments[exp_id]["timing_keys"]
            assert value == experiments[exp_id][metric]


def test_one_seed_gives_the_same_numbers_bit_for_bit(runs):
    a, b = _results(runs["a"])["experiments"], _results(runs["b"])["experiments"]
    assert list(a) == list(b) == IDS
    for exp_id in IDS:
        assert _reproducible(a[exp_id]) == _reproducible(b[exp_id]), exp_id
        npz = [(folder / "runs" / f"{exp_id}.npz").read_bytes() for folder in (runs["a"], runs["b"])]
        assert npz[0] == npz[1], exp_id


def test_the_page_shows_every_model_its_number_and_every_figure(runs):
    page = (runs["a"] / "GALLERY.md").read_text(encoding="utf-8")
    experiments = _results(runs["a"])["experiments"]
    table = page.split("## Results", 1)[1].split("\n\n")[1]
    for exp in EXPERIMENTS.values():
        row = next((line for line in table.splitlines() if line.startswith(f"| {exp.label} |")), None)
        assert row is not None, exp.id
        entry = experiments[exp.id]
        shown = f"test RMSE {entry['test_rmse']:.2f}" if "test_rmse" in entry else \
            f"test accuracy {entry['test_accuracy']:.4f}"
        assert shown in row and ("met" in row or "missed" in row), exp.id
    assert sorted(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page)) == sorted(FIGURES)
    assert "Quick mode" in page
    for exp_id in IDS:
        assert re.search(rf"^\s*{exp_id}: ", runs["stdout"], re.MULTILINE), exp_id  # a console line each


def test_bad_arguments_give_a_clear_error(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("gallery_cli", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as exit_:
        module.main(["--out", str(tmp_path / "out"), "--only", "cnn,lstm"])
    assert exit_.value.code == 2
    assert "unknown experiment 'lstm'; choose from " + ", ".join(IDS) in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------ the parts


def test_accuracy_and_confusion_count_each_example_once():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1]])
    y = np.array([0, 2, 2, 1])
    assert accuracy(p, y) == 0.5
    counts = confusion(p.argmax(axis=1), y, 3)
    assert counts.tolist() == [[1, 0, 0], [1, 0, 0], [0, 1, 1]]  # rows: the true class
    assert counts.sum() == len(y) and np.trace(counts) / len(y) == accuracy(p, y)


def test_rmse_and_the_quick_subset():
    assert rmse(np.array([1.0, 2.0, 3.0]), np.array([1.0, 4.0, 3.0])) == pytest.approx(math.sqrt(4 / 3))
    data = {"x": np.arange(10), "y": np.arange(10) * 2}
    assert {k: v.tolist() for k, v in head(data, 3).items()} == {"x": [0, 1, 2], "y": [0, 2, 4]}
    assert head(data, None)["x"] is data["x"]


def _outcome(metrics) -> Outcome:
    return Outcome(metrics=metrics, config={}, params={})


def test_targets_compare_the_metric_with_its_bound():
    def digits(acc):
        return DigitsMetrics(test_accuracy=acc, train_accuracy=1.0, test_objective=0.1, train_objective=0.1,
                             epochs=1, num_params=1, test_accuracy_by_epoch=(acc,))

    assert at_least(_outcome(digits(0.95)), {}, metric="test_accuracy", bound=0.95).meets_target is True
    assert at_least(_outcome(digits(0.9499)), {}, metric="test_accuracy", bound=0.95).meets_target is False

    def forecast(net, ar):
        return ForecastMetrics(test_rmse=net, ar_rmse=ar, train_rmse=1.0, epochs=1, num_params=1,
                               test_rmse_by_epoch=(net,))

    assert no_worse_than_ar(_outcome(forecast(18.0, 18.75)), {}).meets_target is True
    assert no_worse_than_ar(_outcome(forecast(19.0, 18.75)), {}).meets_target is False


def test_every_model_has_a_target_and_figures_that_exist():
    for exp in EXPERIMENTS.values():
        assert exp.derive is not None, exp.id
        assert set(exp.plots) <= set(GALLERY.plots), exp.id
        assert exp.resolved(True)["epochs"] <= 2 and exp.resolved(True)["train_examples"] <= 128, exp.id


def test_optimizers_are_named_in_the_settings():
    assert optimizer({"name": "adam", "lr": 0.01}).name.startswith("adam(lr=0.01")
    assert optimizer_text({"name": "adam", "lr": 0.01}) == "adam(lr=0.01)"
    with pytest.raises(ValueError, match="unknown optimiser 'adamw'; choose one of"):
        optimizer({"name": "adamw", "lr": 0.01})


# ------------------------------------------------------------ backends

JAX_IDS = ("cnn", "sunspots")  # a convolution and pooling, a recurrence: a few seconds to compile on JAX


def test_every_fit_of_every_runner_gets_the_jobs_backend(monkeypatch):
    assert_every_fit_gets_the_jobs_backend(EXPERIMENTS, monkeypatch)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed (pip install -e '.[jax]')")
def test_a_quick_run_on_jax_agrees_with_numpy_to_rounding(runs, tmp_path):
    """``--backend jax`` trains the same networks on the same batches: every metric and param of a quick run
    equals the NumPy run's to 1e-9 relative (measured: 1e-12 at most on the full gallery)."""
    result = _finish(_start(tmp_path, "--quick", "--seed", "0", "--jobs", "1", "--backend", "jax",
                            "--only", ",".join(JAX_IDS)))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "backend jax" in result.stdout
    jax_run, numpy_run = _results(tmp_path), _results(runs["b"])
    assert list(jax_run["experiments"]) == list(JAX_IDS)
    for exp_id in JAX_IDS:
        ours, theirs = _reproducible(jax_run["experiments"][exp_id]), _reproducible(numpy_run["experiments"][exp_id])
        assert ours.pop("config") == {**theirs.pop("config"), "backend": "jax"}, exp_id
        assert ours.keys() == theirs.keys(), exp_id
        for key, value in theirs.items():
            if _finite(value):
                np.testing.assert_allclose(ours[key], value, rtol=1e-9, atol=0, err_msg=f"{exp_id}: {key}")
            else:
                assert ours[key] == value, (exp_id, key)
        params = [fgraph.io.load_params(folder / "runs" / f"{exp_id}.npz") for folder in (tmp_path, runs["b"])]
        for name, value in params[1].items():
            np.testing.assert_allclose(params[0][name], value, rtol=1e-9, atol=1e-9 * float(np.max(np.abs(value))),
                                       err_msg=f"{exp_id}: {name}")
