"""scripts/bench.py's consistency check, run as a test (its timings never are).

Every implementation the bench times must end one epoch of every workload
with the parameters of the hand-written NumPy floor, to 1e-10: otherwise
the bench would be comparing different computations. torch and JAX are
optional and are skipped when absent; numpy, the classic design and
fgraph's NumPy backend are always checked.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH_PATH = Path(__file__).resolve().parents[1] / "scripts" / "bench.py"
ALL_WORKLOADS = ["A", "B", "C", "D-ridge", "D-mlp", "E", "F", "G"]
NETWORKS = ["F", "G"]  # the digits CNN and RNN: the classic design has neither
OPTIONAL = {"fgraph-jax": "jax", "torch": "torch", "jax-jit": "jax", "jax-scan": "jax"}


@pytest.fixture(scope="module")
def bench():
    """scripts/bench.py imported by path; the thread settings it makes at import are undone."""
    saved = dict(os.environ)
    spec = importlib.util.spec_from_file_location("fgraph_bench", BENCH_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    try:
        spec.loader.exec_module(module)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    yield module
    sys.modules.pop(spec.name, None)


def _failures(result: dict) -> list:
    return [(key, name, check["status"], check["note"])
            for key, checks in result.items() for name, check in checks.items()
            if check["status"] != "ok"]


# The peers and fgraph's JAX backend are checked where they are installed;
# numpy, the classic design and fgraph's NumPy backend always are.
INSTALLED = ["classic", "fgraph-vg", "fgraph-fit"] + [
    name for name, module in OPTIONAL.items() if importlib.util.find_spec(module) is not None
]


@pytest.mark.parametrize("implementation", INSTALLED)
def test_every_implementation_ends_an_epoch_with_numpys_params(bench, implementation):
    result = bench.consistency(implementations=[implementation])
    assert list(result) == ALL_WORKLOADS
    for checks in result.values():
        assert set(checks) == {"numpy", implementation}
    not_applicable = NETWORKS if implementation == "classic" else []
    for key in not_applicable:
        assert result[key]["classic"]["status"] == "skipped"
        assert "no convolution, pooling or recurrence" in result[key]["classic"]["note"]
    checked = {key: checks for key, checks in result.items() if key not in not_applicable}
    assert _failures(checked) == []
    worst = max(checks[implementation]["max_diff"] for checks in checked.values())
    assert worst <= 1e-10


def test_the_check_catches_an_implementation_that_computes_something_else(bench, monkeypatch):
    """A step size 1% off must fail the check, so agreement is not vacuous."""

    def make_wrong(w):
        return bench.make_numpy(dataclasses.replace(w, lr=w.lr * 1.01))

    wrong = bench.Implementation("wrong", make_wrong)
    monkeypatch.setitem(bench.IMPLEMENTATIONS, "wrong", wrong)
    result = bench.consistency(workloads=["A", "D", "E", "F", "G"], implementations=["wrong"])
    assert list(result) == ["A", "D-ridge", "D-mlp", "E", "F", "G"]
    for key, checks in result.items():
        assert checks["wrong"]["status"] == "failed", key
        assert checks["wrong"]["max_diff"] > 1e-10


def test_an_implementation_that_raises_is_reported_not_fatal(bench, monkeypatch):
    def make_broken(w):
        def run(epochs):
            raise RuntimeError("boom")

        return run

    monkeypatch.setitem(bench.IMPLEMENTATIONS, "broken", bench.Implementation("broken", make_broken))
    result = bench.consistency(workloads=["C"], implementations=["broken"])
    assert result["C"]["numpy"]["status"] == "ok"
    assert result["C"]["broken"]["status"] == "error"
    assert "boom" in result["C"]["broken"]["note"]


def test_param_difference_is_absolute_near_zero_and_relative_when_large(bench):
    ref = {"w": np.array([0.0, 1e6]), "b": np.array(0.5)}
    assert bench.param_difference({"w": np.array([1e-11, 1e6 + 1e-5]), "b": np.array(0.5)}, ref) < 1e-10
    assert bench.param_difference({"w": np.array([1e-9, 1e6]), "b": np.array(0.5)}, ref) > 1e-10
    assert bench.param_difference({"w": np.array([0.0, 1e6])}, ref) == float("inf")
    assert bench.param_difference({"w": np.array([np.nan, 1e6]), "b": np.array(0.5)}, ref) == float("inf")


def test_a_tiny_run_produces_the_table_and_the_json(bench, tmp_path):
    """The timing and report code paths run end to end (no assertion on any time)."""
    report = bench.run_bench(["C", "D-ridge"], ["numpy", "classic", "fgraph-vg"], repeats=2, target=0.002,
                             log=lambda *a, **k: None)
    report["machine"] = bench.machine_info()
    assert set(report["timings"]) == {"C", "D-ridge"}
    assert set(report["timings"]["C"]) == {"numpy", "classic", "fgraph-vg"}
    assert report["timings"]["C"]["numpy"]["ratio"] == 1.0
    text = bench.markdown(report)
    assert "| workload | numpy | classic | fgraph-vg |" in text
    assert "C MLP 1 → 10 tanh → 1, batch 1" in text
    path = tmp_path / "bench.json"
    bench.write_json_atomic(path, report)
    assert json.loads(path.read_text())["timings"]["D-ridge"]["classic"]["samples"]
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]


def test_the_table_gives_fgraphs_ratios_to_the_targets_and_the_load(bench):
    """A network workload: the classic design is reported as not run, fgraph-fit's ratios
    to numpy (and torch, when installed) are set beside the issue's targets, and the
    load average that every timing is read against is recorded and shown."""
    names = ["numpy", "classic", "fgraph-fit"] + (["torch"] if "torch" in INSTALLED else [])
    report = bench.run_bench(["G"], names, repeats=1, target=0.001, log=lambda *a, **k: None)
    report["machine"] = bench.machine_info()
    assert set(report["timings"]["G"]) == set(names) - {"classic"}
    assert report["consistency"]["G"]["classic"]["status"] == "skipped"
    assert all(len(report["load_average"][when]) == 3 for when in ("before", "after"))
    text = bench.markdown(report)
    assert "- classic on G: not run: the assignment's design has no convolution" in text
    t = report["timings"]["G"]
    ratio = t["fgraph-fit"]["median"] / t["numpy"]["median"]
    assert f"- G: fgraph-fit / numpy = {ratio:.2f} (target ≤ 1.5)" in text
    if "torch" in names:
        assert f"fgraph-fit / torch = {t['fgraph-fit']['median'] / t['torch']['median']:.2f} (target ≤ 1)" in text
    assert f"Load average (1 min) {report['load_average']['before'][0]:.2f} before" in text


def test_workload_selection(bench):
    assert bench.select_workloads(["D", "A"]) == ["D-ridge", "D-mlp", "A"]
    assert bench.select_implementations(["fgraph-vg", "classic"]) == ["numpy", "classic", "fgraph-vg"]
    assert bench.select_workloads(["G", "F"]) == ["G", "F"]
    with pytest.raises(ValueError, match="unknown workload"):
        bench.select_workloads(["H"])
    with pytest.raises(ValueError, match="unknown implementations"):
        bench.select_implementations(["tensorflow"])


needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")


@needs_jax
def test_the_jax_rows_are_float64_without_jaxs_global_flag_and_leave_it_as_it_was(bench):
    """fgraph's backend and the hand-written JAX switch float64 on as a context:
    with the global flag off they still match numpy to 1e-10 (float32 could
    not), and the flag is off afterwards."""
    import jax

    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        result = bench.consistency(workloads=["C"], implementations=["fgraph-jax", "jax-jit", "jax-scan"])
        assert jax.config.jax_enable_x64 is False
    finally:
        jax.config.update("jax_enable_x64", before)
    assert _failures(result) == []
    assert max(check["max_diff"] for check in result["C"].values()) <= 1e-10


@needs_jax
def test_the_compiled_rows_report_their_compile_apart_and_fgraph_jax_against_jax_scan(bench, tmp_path):
    """fgraph-jax's steps are clocked inside one fit call, apart from the compile
    that every call pays; each compiled row has its first call's compile time, in
    the table and in the JSON; fgraph-jax / jax-scan is set beside the issue's
    target (no assertion on any time)."""
    report = bench.run_bench(["C"], ["numpy", "fgraph-jax", "jax-scan"], repeats=1, target=0.001,
                             log=lambda *a, **k: None)
    report["machine"] = bench.machine_info()
    t = report["timings"]["C"]
    assert set(t) == {"numpy", "fgraph-jax", "jax-scan"}
    assert t["numpy"]["compile_s"] is None and t["numpy"]["per_call_s"] is None
    assert t["jax-scan"]["compile_s"] is not None and t["jax-scan"]["per_call_s"] is None
    assert t["fgraph-jax"]["compile_s"] is not None and t["fgraph-jax"]["per_call_s"] is not None
    assert t["fgraph-jax"]["epochs_per_sample"] >= 1
    text = bench.markdown(report)
    assert "| workload | fgraph-jax | jax-scan |" in text
    assert f"| C | {t['fgraph-jax']['compile_s']:.2f} / {t['fgraph-jax']['per_call_s']:.2f} |" \
           f" {t['jax-scan']['compile_s']:.2f} |" in text
    ratio = t["fgraph-jax"]["median"] / t["jax-scan"]["median"]
    assert f"- C: fgraph-jax / jax-scan = {ratio:.2f} (target ≤ 1.2)" in text
    path = tmp_path / "bench.json"
    bench.write_json_atomic(path, report)
    assert json.loads(path.read_text())["timings"]["C"]["fgraph-jax"]["compile_s"] == t["fgraph-jax"]["compile_s"]


@needs_jax
def test_a_timed_fgraph_jax_measurement_is_the_difference_of_a_short_and_a_long_fit(bench, monkeypatch):
    """The first measurement compiles (a fit of one epoch) and calibrates (a
    fit of SHORT_FIT epochs is enough at a target of 0 s); every measurement
    is then a fit of long // SHORT_FIT epochs and one of long, and counts
    the epochs between them."""
    w = bench.make_workloads()["C"]
    calls = []
    real_fit = bench.train.fit

    def fit(*args, **kwargs):
        result = real_fit(*args, **kwargs)
        calls.append(len(result.history))
        return result

    monkeypatch.setattr(bench.train, "fit", fit)
    runner = bench.make_fgraph_jax(w)
    long = bench.SHORT_FIT
    timing = runner.timed(0.0)
    assert calls == [1, long, 1, long] and timing.epochs == long - 1
    calls.clear()
    assert runner.timed(0.0).epochs == long - 1 and calls == [1, long]


@pytest.mark.parametrize("args, message", [
    (["--check", "--workloads", "Z"], "unknown workload 'Z'"),
    (["--check", "--implementations", "foo"], "unknown implementations ['foo']"),
    (["--quick", "--repeats", "-1"], "argument --repeats: expected an integer greater than 0, got '-1'"),
    (["--quick", "--target", "0"], "argument --target: expected a number greater than 0, got '0'"),
    (["--check", "--workloads", "A", "--json", "{tmp}"], "it exists and is not a regular file"),
    (["--check", "--workloads", "A", "--json", "{tmp}/no/such/folder.json"], "is not a folder this process can"),
])
def test_bad_arguments_are_refused_before_anything_is_measured(bench, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.setattr(bench, "consistency", lambda *a: pytest.fail("measured before the arguments were checked"))
    monkeypatch.setattr(bench, "run_bench", lambda *a: pytest.fail("measured before the arguments were checked"))
    with pytest.raises(SystemExit) as exit_:
        bench.main([a.format(tmp=tmp_path) for a in args])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
