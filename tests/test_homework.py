"""The main job, end to end: ``scripts/homework.py --quick`` into temporary folders.

Two runs with one seed (one with 2 worker processes, one with 1, started
side by side) must write every file, report every experiment and metric as
a finite number, and agree exactly on everything that is not measured with a
clock; ``--only`` runs just the subset (with the same numbers); bad
arguments give a clear error. No assertion is about how long anything takes.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "homework.py"

IDS = ["linear", "ridge_l2_1", "ridge_l2_0", "minibatch_ridge", "mlp_no_features", "mlp_features",
       "mlp_scalar_tuned", "multiclass"]
REGRESSION = ["linear", "ridge_l2_1", "ridge_l2_0", "mlp_no_features", "mlp_features", "mlp_scalar_tuned"]
FIGURES = ["ridge_fits.png", "mlp_fits.png", "learning_curves.png", "minibatch.png", "decision_regions.png"]
MINIBATCH_LISTS = ["batch_sizes", "seconds_per_epoch", "speedup", "train_mse"]
SECTIONS = ["3.1", "3.2", "3.3", "3.4", "4.1.1", "4.1.2", "4.2", "4.3"]


def _start(out: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.Popen([sys.executable, str(SCRIPT), "--out", str(out), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 180) -> subprocess.CompletedProcess:
    stdout, stderr = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _run(out: Path, *args: str) -> subprocess.CompletedProcess:
    return _finish(_start(out, *args))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two quick runs with seed 0 (2 workers and 1), run side by side, and a quick --only run."""
    a, b, c = (tmp_path_factory.mktemp(name) for name in ("run_a", "run_b", "only"))
    procs = [_start(a, "--quick", "--seed", "0", "--jobs", "2"), _start(b, "--quick", "--seed", "0", "--jobs", "1")]
    done = [_finish(p) for p in procs]
    only = _run(c, "--quick", "--only", "ridge_l2_0,multiclass")
    for result in (*done, only):
        assert result.returncode == 0, result.stderr[-3000:]
    return {"a": a, "b": b, "only": c, "stdout": done[0].stdout}


def _results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text(encoding="utf-8"))


def _reproducible(entry: dict) -> dict:
    """An experiment's results.json entry without the values measured with a clock."""
    return {k: v for k, v in entry.items() if k not in entry["timing_keys"]}


def _finite(value) -> bool:
    if isinstance(value, list):
        return bool(value) and all(_finite(v) for v in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def test_every_file_is_written(runs):
    out = runs["a"]
    for name in ["REPORT.md", "report.pdf", "results.json", *FIGURES]:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF")
    for name in FIGURES:
        assert (out / name).read_bytes().startswith(b"\x89PNG"), name
    for exp_id in IDS:
        assert (out / "runs" / f"{exp_id}.json").is_file(), exp_id
        assert (out / "runs" / f"{exp_id}.npz").is_file(), exp_id
    leftovers = [p.name for p in out.rglob("*.tmp")]
    assert not leftovers, f"temporary files left behind: {leftovers}"


def test_every_experiment_and_metric_is_there_and_finite(runs):
    experiments = _results(runs["a"])["experiments"]
    assert list(experiments) == IDS
    for exp_id, entry in experiments.items():
        assert _finite(entry["seconds"]), exp_id
        assert isinstance(entry["config"], dict) and entry["config"], exp_id
        assert entry["config"]["quick"] is True and entry["config"]["seed"] == 0
        for key in entry["timing_keys"]:
            assert key in entry, (exp_id, key)
    for exp_id in REGRESSION:
        for metric in ("train_mse", "test_mse"):
            assert _finite(experiments[exp_id][metric]), (exp_id, metric)
    for metric in ("train_nll", "test_accuracy"):
        assert _finite(experiments["multiclass"][metric]), metric
    assert 0 <= experiments["multiclass"]["test_accuracy"] <= 1
    minibatch = experiments["minibatch_ridge"]
    for key in MINIBATCH_LISTS:
        assert _finite(minibatch[key]) and len(minibatch[key]) == len(minibatch["batch_sizes"]), key
    assert minibatch["batch_sizes"] == [1, 5, 10, 25, 100]
    tuned = experiments["mlp_scalar_tuned"]
    assert isinstance(tuned["meets_target"], bool) and _finite(tuned["target_train_mse"])


def test_run_records_hold_config_seed_metrics_and_a_digest(runs):
    experiments = _results(runs["a"])["experiments"]
    for exp_id in IDS:
        record = json.loads((runs["a"] / "runs" / f"{exp_id}.json").read_text(encoding="utf-8"))
        assert record["format"] == "fgraph.run" and record["seed"] == 0
        assert re.fullmatch(r"[0-9a-f]{64}", record["params_digest"])
        assert record["config"] == experiments[exp_id]["config"]
        for metric, value in record["metrics"].items():  # reproducible metrics only: no clock in a record
            assert metric not in experiments[exp_id]["timing_keys"]
            assert value == experiments[exp_id][metric]


def test_one_seed_gives_the_same_numbers_bit_for_bit(runs):
    a, b = _results(runs["a"]), _results(runs["b"])
    assert list(a["experiments"]) == list(b["experiments"])
    for exp_id in a["experiments"]:
        assert _reproducible(a["experiments"][exp_id]) == _reproducible(b["experiments"][exp_id]), exp_id
    assert a["checks"] == b["checks"]
    for exp_id in IDS:
        records = [json.loads((folder / "runs" / f"{exp_id}.json").read_text(encoding="utf-8"))
                   for folder in (runs["a"], runs["b"])]
        assert records[0] == records[1], exp_id
        assert (runs["a"] / "runs" / f"{exp_id}.npz").read_bytes() == (runs["b"] / "runs" / f"{exp_id}.npz").read_bytes()


def test_only_runs_the_subset_with_the_same_numbers(runs):
    only, full = _results(runs["only"])["experiments"], _results(runs["a"])["experiments"]
    assert list(only) == ["ridge_l2_0", "multiclass"]
    assert sorted(p.stem for p in (runs["only"] / "runs").glob("*.json")) == ["multiclass", "ridge_l2_0"]
    for exp_id in only:
        assert _reproducible(only[exp_id]) == _reproducible(full[exp_id]), exp_id
    report = (runs["only"] / "REPORT.md").read_text(encoding="utf-8")
    assert "not in this report" in report
    assert (runs["only"] / "decision_regions.png").is_file() and not (runs["only"] / "mlp_fits.png").exists()


def test_report_answers_every_question_and_shows_every_plot(runs):
    report = (runs["a"] / "REPORT.md").read_text(encoding="utf-8")
    headings = [line for line in report.splitlines() if line.startswith("#")]
    for section in SECTIONS:
        assert any(f" {section} " in h for h in headings), section
    for value in ("0.199–0.201", "0.043–0.044", "0.238–0.261", "0.040–0.050", "1.000"):
        assert value in report, value
    for formula in (r"x^{\top}", r"W^{\top}", r"\odot", r"\tanh^2"):
        assert formula in report, formula
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert sorted(images) == sorted(FIGURES)
    assert "Quick mode" in report


def test_the_tests_the_report_cites_exist():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        source = (ROOT / "scripts" / "report" / "content.py").read_text(encoding="utf-8")
        tree = ast.parse(source)
        tests = next(ast.literal_eval(node.value) for node in tree.body
                     if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "TESTS")
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    for node_ids in tests.values():
        for node_id in node_ids:
            path, name = node_id.split("::")
            function, _, case = name.partition("[")
            text = (ROOT / path).read_text(encoding="utf-8")
            assert re.search(rf"^def {re.escape(function)}\(", text, re.MULTILINE), node_id
            if case:
                assert f'"{case.rstrip("]")}"' in text, node_id


@pytest.mark.parametrize(
    "args, message",
    [
        (["--only", "ridge,multiclass"], "unknown experiment 'ridge'"),
        (["--only", ""], "unknown experiment"),
        (["--seed", "-1"], "seed must be an integer >= 0"),
        (["--seed", "abc"], "seed must be an integer >= 0"),
        (["--jobs", "0"], "expected a positive integer"),
        (["--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_arguments_give_a_clear_error(tmp_path, args, message):
    result = _run(tmp_path / "out", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()  # nothing written
