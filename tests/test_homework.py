"""The main job, end to end, and the registry it is built from.

``scripts/homework.py --quick`` runs into temporary folders: two runs with
one seed (one with 2 worker processes, one with 1, started side by side)
must write every file, report every experiment of the registry and every
metric as a finite number, and agree exactly on everything that is not
measured with a clock; ``--only`` runs just the subset (with the same
numbers); bad arguments give a clear error. Every check loops over the
registry (``assignment.EXPERIMENTS``), so a new experiment is tested
without editing this file; and a toy experiment added to a copy of the
registry, as one value, goes through the job and into the report.
``--backend jax`` reaches every fit of every runner, and a quick run of it
agrees with the NumPy run to rounding. No assertion is about how long
anything takes.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import attrs
import numpy as np
import pytest

import fgraph.io

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
SCRIPT = SCRIPTS / "homework.py"
if str(SCRIPTS) not in sys.path:  # the job's packages (jobs, assignment, report) live in scripts/
    sys.path.insert(0, str(SCRIPTS))

from job_cases import assert_every_fit_gets_the_jobs_backend  # noqa: E402

from assignment import EXPERIMENTS, HOMEWORK  # noqa: E402
from jobs import Cache, Experiment, LearningCurve, Options, Outcome, Plot, registry, run_job  # noqa: E402
from jobs.outcome import outside_bands, results_entry, within_published  # noqa: E402
from jobs.output import OutputError  # noqa: E402
from jobs.workers import completed, start_method, worker_pool  # noqa: E402
from report import content  # noqa: E402
from report.document import Paragraph  # noqa: E402
from report.numbers import band  # noqa: E402
from report.outline import Row, Section, check_slots  # noqa: E402

IDS = list(EXPERIMENTS)
FIGURES = [plot.filename for plot in HOMEWORK.plots.values()]
SECTIONS = ["3.1", "3.2", "3.3", "3.4", "4.1.1", "4.1.2", "4.2", "4.3"]  # the assignment's questions


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


def _record(folder: Path, exp_id: str) -> dict:
    return json.loads((folder / "runs" / f"{exp_id}.json").read_text(encoding="utf-8"))


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
        metrics = _record(runs["a"], exp_id)["metrics"]
        assert metrics, exp_id
        for metric, value in metrics.items():
            assert _finite(value), (exp_id, metric, value)
        assert _finite(entry["seconds"]), exp_id
        assert isinstance(entry["config"], dict) and entry["config"], exp_id
        assert entry["config"]["quick"] is True and entry["config"]["seed"] == 0
        assert entry["config"]["experiment"] == EXPERIMENTS[exp_id].title
        for key in entry["timing_keys"]:
            assert key in entry, (exp_id, key)
        assert entry.get("published") == ({k: list(v) for k, v in EXPERIMENTS[exp_id].published.items()} or None)
    assert 0 <= experiments["multiclass"]["test_accuracy"] <= 1
    minibatch = experiments["minibatch_ridge"]
    for key in ["batch_sizes", "seconds_per_epoch", "speedup", "train_mse"]:
        assert _finite(minibatch[key]) and len(minibatch[key]) == len(minibatch["batch_sizes"]), key
    assert minibatch["batch_sizes"] == [1, 5, 10, 25, 100]
    tuned = experiments["mlp_scalar_tuned"]
    assert isinstance(tuned["meets_target"], bool)
    assert tuned["target_train_mse"] == 1.1 * experiments["mlp_features"]["train_mse"]


def test_run_records_hold_config_seed_metrics_and_a_digest(runs):
    experiments = _results(runs["a"])["experiments"]
    for exp_id in IDS:
        record = _record(runs["a"], exp_id)
        assert record["format"] == "fgraph.run" and record["seed"] == 0
        assert re.fullmatch(r"[0-9a-f]{64}", record["params_digest"])
        assert record["config"] == experiments[exp_id]["config"]
        for metric, value in record["metrics"].items():  # reproducible metrics only: no clock in a record
            assert metric not in experiments[exp_id]["timing_keys"]
            assert value == experiments[exp_id][metric]


def test_one_seed_gives_the_same_numbers_bit_for_bit(runs):
    a, b = _results(runs["a"]), _results(runs["b"])
    assert list(a["experiments"]) == list(b["experiments"]) == IDS
    for exp_id in IDS:
        assert _reproducible(a["experiments"][exp_id]) == _reproducible(b["experiments"][exp_id]), exp_id
        assert _record(runs["a"], exp_id) == _record(runs["b"], exp_id), exp_id
        npz = [(folder / "runs" / f"{exp_id}.npz").read_bytes() for folder in (runs["a"], runs["b"])]
        assert npz[0] == npz[1], exp_id
    assert a["checks"] == b["checks"]


def test_only_runs_the_subset_with_the_same_numbers(runs):
    only, full = _results(runs["only"])["experiments"], _results(runs["a"])["experiments"]
    assert list(only) == ["ridge_l2_0", "multiclass"]
    assert sorted(p.stem for p in (runs["only"] / "runs").glob("*.json")) == ["multiclass", "ridge_l2_0"]
    for exp_id in only:
        assert _reproducible(only[exp_id]) == _reproducible(full[exp_id]), exp_id
    report = (runs["only"] / "REPORT.md").read_text(encoding="utf-8")
    assert "not in this report" in report
    drawn = {p.filename for p in HOMEWORK.plots.values()} & {p.name for p in runs["only"].glob("*.png")}
    assert drawn == {HOMEWORK.plots[key].filename for key in HOMEWORK.plans(["ridge_l2_0", "multiclass"])}
    assert (runs["only"] / "decision_regions.png").is_file() and not (runs["only"] / "mlp_fits.png").exists()


def test_report_answers_every_question_and_shows_every_experiment_and_plot(runs):
    report = (runs["a"] / "REPORT.md").read_text(encoding="utf-8")
    headings = [line for line in report.splitlines() if line.startswith("#")]
    for section in SECTIONS:
        assert any(f" {section} " in h for h in headings), section
    table = report.split("## Results", 1)[1].split("\n\n")[2]
    for exp in EXPERIMENTS.values():
        row = next((line for line in table.splitlines() if line.startswith(f"| {exp.label} |")), None)
        assert row is not None, exp.id
        for metric in exp.published:
            assert band(exp, metric) in row, (exp.id, metric)
    for formula in (r"x^{\top}", r"W^{\top}", r"\odot", r"\tanh^2"):
        assert formula in report, formula
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert sorted(images) == sorted(FIGURES)
    assert "Quick mode" in report


def test_the_tests_the_report_cites_exist():
    tree = ast.parse((SCRIPTS / "report" / "derivations.py").read_text(encoding="utf-8"))
    tests = next(ast.literal_eval(node.value) for node in tree.body
                 if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "TESTS")
    for node_ids in tests.values():
        for node_id in node_ids:
            path, name = node_id.split("::")
            function, _, case = name.partition("[")
            text = (ROOT / path).read_text(encoding="utf-8")
            assert re.search(rf"^def {re.escape(function)}\(", text, re.MULTILINE), node_id
            if case:
                assert f'"{case.rstrip("]")}"' in text, node_id


def _homework():
    """scripts/homework.py imported as a module (its thread settings are made only when run as a script)."""
    spec = importlib.util.spec_from_file_location("homework_cli", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "args, message",
    [
        (["--only", "ridge,multiclass"], "unknown experiment 'ridge'"),
        (["--only", ""], "unknown experiment"),
        (["--seed", "-1"], "seed must be an integer >= 0"),
        (["--seed", "abc"], "seed must be an integer >= 0"),
        (["--jobs", "0"], "expected a positive integer"),
        (["--sweep-tuned", "x"], "expected a positive integer"),
        (["--backend", "torch"], "unknown backend 'torch'; choose from numpy, jax"),
        (["--backend", "NumPy"], "unknown backend 'NumPy'; choose from numpy, jax"),
        (["--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_arguments_give_a_clear_error(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        _homework().main(["--out", str(tmp_path / "out"), *args])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing written


def test_backend_jax_without_jax_installed_is_refused_before_anything_runs(tmp_path, capsys, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jax" else find_spec(name, *a))
    with pytest.raises(SystemExit) as exit_:
        _homework().main(["--out", str(tmp_path / "out"), "--backend", "jax"])
    assert exit_.value.code == 2
    assert 'backend "jax" needs JAX, which is not installed: pip install -e ".[jax]"' in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_backend_is_checked_by_the_options_and_by_the_job(tmp_path):
    with pytest.raises(ValueError, match=r"backend must be one of \['numpy', 'jax'\], got 'tpu'"):
        Options(out=tmp_path, ids=("toy",), backend="tpu")
    numpy_only = attrs.evolve(HOMEWORK.with_experiments(TOY), backends=("numpy",))
    with pytest.raises(ValueError, match=r"backend 'jax': the job scripts/homework.py runs its fits on numpy only"):
        run_job(numpy_only, Options(out=tmp_path, ids=("toy",), backend="jax"))
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ValueError, match=r"a job's backends must be a non-empty tuple of \['numpy', 'jax'\]"):
        attrs.evolve(HOMEWORK, backends=("numpy", "cuda"))


def test_the_command_refuses_bad_arguments_without_a_traceback(tmp_path):
    result = _run(tmp_path / "out", "--only", "ridge,multiclass")
    assert result.returncode == 2
    assert "unknown experiment 'ridge'; choose from " + ", ".join(IDS) in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------ backends

JAX_IDS = ("ridge_l2_0", "mlp_no_features", "multiclass")  # ridge_fit, an MLP's fit, integer labels: seconds on JAX


def test_every_fit_of_every_runner_gets_the_jobs_backend(monkeypatch):
    assert_every_fit_gets_the_jobs_backend(EXPERIMENTS, monkeypatch)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed (pip install -e '.[jax]')")
def test_a_quick_run_on_jax_agrees_with_numpy_to_rounding(runs, tmp_path):
    """A quick run of some experiments with ``--backend jax`` against the NumPy run of the same seed.

    Tolerance 1e-9 relative: the backends run the same program and the
    same batches, so they differ only by rounding (XLA sums in another
    order): at most 4e-14 relative in any param or metric of a quick run
    (measured). A lowering fault shows far above it: float32 anywhere is
    ~1e-7, another shuffle or a wrong rule is O(1). (Long runs may part
    further: the tuned MLP's 5000 Adam steps amplify a 1-ulp change of its
    initial params to 40% on NumPy alone, so no band is asked of them here.)
    """
    result = _run(tmp_path, "--quick", "--seed", "0", "--jobs", "1", "--backend", "jax", "--only", ",".join(JAX_IDS))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "backend jax" in result.stdout
    jax_run, numpy_run = _results(tmp_path), _results(runs["b"])
    assert list(jax_run["experiments"]) == list(JAX_IDS)
    assert jax_run["environment"]["backend"] == "jax" and numpy_run["environment"]["backend"] == "numpy"
    assert _finite(jax_run["environment"]["total_wall_seconds"])
    for exp_id in JAX_IDS:
        ours, theirs = _reproducible(jax_run["experiments"][exp_id]), _reproducible(numpy_run["experiments"][exp_id])
        assert ours.pop("config") == {**theirs.pop("config"), "backend": "jax"}, exp_id
        assert ours.keys() == theirs.keys(), exp_id
        for key, value in theirs.items():
            if _finite(value):  # a number or a list of numbers
                np.testing.assert_allclose(ours[key], value, rtol=1e-9, atol=0, err_msg=f"{exp_id}: {key}")
            else:
                assert ours[key] == value, (exp_id, key)
        assert _record(tmp_path, exp_id)["config"]["backend"] == "jax"
        params = [fgraph.io.load_params(folder / "runs" / f"{exp_id}.npz") for folder in (tmp_path, runs["b"])]
        assert params[0].keys() == params[1].keys(), exp_id
        for name, value in params[1].items():
            scale = float(np.max(np.abs(value)))
            np.testing.assert_allclose(params[0][name], value, rtol=1e-9, atol=1e-9 * scale,
                                       err_msg=f"{exp_id}: {name}")
    assert jax_run["checks"] == numpy_run["checks"]  # the gradient checks run on NumPy either way


# ------------------------------------------------ adding an experiment


@attrs.frozen
class ToyMetrics:
    norm: float


def toy_run(exp, settings, seed, context) -> Outcome:
    """A toy runner: random params of the given size; the metric is their squared norm."""
    w = np.random.default_rng([seed, settings["size"]]).normal(size=settings["size"])
    return Outcome(metrics=ToyMetrics(float(w @ w)), config={"experiment": exp.title, **settings}, params={"w": w},
                   curve=LearningCurve(((exp.id, (3.0, 2.0, 1.0)),)))


def toy_entry(exp, outcome, inputs) -> list:
    return [Paragraph(f"The toy {exp.id} has a squared norm of {outcome.metrics.norm:.6f}.")]


def toy_row(exp, outcome, inputs) -> Row:
    return Row("squared norm", f"{outcome.metrics.norm:.4f}", "—", band(exp, "norm"))


TOY = Experiment(id="toy", title="A toy", label="The toy experiment", run=toy_run, settings={"size": 3},
                 plots=("curves",), section=Section(slot="4.3", entry=toy_entry, row=toy_row),
                 published={"norm": (0.5, 1.5)})


def test_an_experiment_is_one_value_in_the_registry(tmp_path, capsys):
    """One value added to a copy of the registry: run, recorded, plotted and reported, with nothing else edited."""
    spec = HOMEWORK.with_experiments(TOY, attrs.evolve(TOY, id="toy2", settings={"size": 5}))
    assert "toy" not in EXPERIMENTS and list(spec.experiments) == [*IDS, "toy", "toy2"]
    result = run_job(spec, Options(out=tmp_path, seed=3, ids=("toy2", "toy"), jobs=2))
    norm = result.outcomes["toy"].metrics.norm
    results = _results(tmp_path)
    assert list(results["experiments"]) == ["toy", "toy2"]  # the registry's order
    assert results["environment"]["versions"].items() >= fgraph.io.library_versions().items()
    entry = results["experiments"]["toy"]
    assert entry["norm"] == norm and entry["published"] == {"norm": [0.5, 1.5]} and entry["config"]["seed"] == 3
    assert entry["within_published"] == {"norm": 0.5 <= norm <= 1.5}
    assert entry["config"]["backend"] == "numpy" and results["environment"]["backend"] == "numpy"
    assert _record(tmp_path, "toy")["metrics"] == {"norm": norm}
    report = (tmp_path / "REPORT.md").read_text(encoding="utf-8")
    assert f"The toy toy has a squared norm of {norm:.6f}." in report
    assert f"| The toy experiment | squared norm | {norm:.4f} | — | 0.500–1.500 |" in report
    assert "![Learning curves of every run.](learning_curves.png)" in report
    assert (tmp_path / "learning_curves.png").read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["toy.json", "toy.npz", "toy2.json", "toy2.npz"]
    assert "toy: norm" in capsys.readouterr().out


def toy_fails(exp, settings, seed, context):
    raise RuntimeError("the toy broke")


def toy_untyped(exp, settings, seed, context):
    return {"norm": 1.0}


@pytest.mark.parametrize("run, message", [(toy_fails, "RuntimeError: the toy broke"),
                                          (toy_untyped, "returned a dict; it must return a jobs.Outcome")])
def test_a_failed_experiment_stops_the_job_and_says_which_and_why(tmp_path, run, message):
    spec = HOMEWORK.with_experiments(attrs.evolve(TOY, run=run))
    with pytest.raises(SystemExit) as exit_:
        run_job(spec, Options(out=tmp_path, ids=("toy",)))
    assert "experiment 'toy' failed" in str(exit_.value) and message in str(exit_.value)
    assert not (tmp_path / "results.json").exists() and not (tmp_path / "REPORT.md").exists()


def test_each_published_band_is_recorded_as_met_or_not_and_a_miss_is_said():
    outcome = Outcome(metrics=ToyMetrics(1.7), config={}, params={})
    bands = {"norm": (0.5, 1.5)}
    assert within_published(outcome, bands) == {"norm": False}
    assert within_published(attrs.evolve(outcome, metrics=ToyMetrics(1.5)), bands) == {"norm": True}  # inclusive
    assert within_published(outcome, {"missing": (0.0, 1.0)}) == {"missing": False}
    assert results_entry("toy", outcome, bands)["within_published"] == {"norm": False}
    assert "within_published" not in results_entry("toy", outcome, {})  # no band, no verdict
    assert outside_bands({"toy": TOY}, {"toy": outcome}) == [
        "toy: norm 1.7 is outside the published band [0.5, 1.5]"]
    assert outside_bands({"toy": TOY}, {"toy": attrs.evolve(outcome, metrics=ToyMetrics(1.0))}) == []


def test_a_section_in_a_slot_the_outline_lacks_is_an_error():
    lost = attrs.evolve(TOY, section=Section(slot="9.9", entry=toy_entry))
    with pytest.raises(ValueError, match=r"experiment 'toy' is presented in slot '9\.9'"):
        check_slots(content.OUTLINE, registry(lost))
    check_slots(content.OUTLINE, {**EXPERIMENTS, "toy": TOY})  # every slot the registry names exists


def test_a_job_rejects_an_experiment_shown_in_a_figure_it_does_not_have():
    with pytest.raises(ValueError, match=r"experiment 'toy' is shown in plots \['nope'\]"):
        HOMEWORK.with_experiments(attrs.evolve(TOY, plots=("curves", "nope")))


@pytest.mark.parametrize("bad", [{"norm": 1.0}, None, 1.0])
def test_an_outcome_needs_typed_metrics(bad):
    with pytest.raises(TypeError, match="Outcome.metrics must be an attrs instance"):
        Outcome(metrics=bad, config={}, params={})


def test_a_metric_cannot_take_a_key_the_job_writes():
    @attrs.frozen
    class Clash:
        seconds: float

    with pytest.raises(ValueError, match=r"experiment 'toy': metrics field 'seconds'"):
        results_entry("toy", Outcome(metrics=Clash(1.0), config={}, params={}), {})


@pytest.mark.parametrize("make, message", [
    (lambda: registry(TOY, TOY), "two experiments have the id 'toy'"),
    (lambda: attrs.evolve(TOY, id="../x"), "experiment id must be"),
    (lambda: attrs.evolve(TOY, published={"norm": (2.0, 1.0)}), r"published\['norm'\] must be a \(low, high\)"),
])
def test_bad_registry_values_are_refused(make, message):
    with pytest.raises((TypeError, ValueError), match=message):
        make()


def test_a_run_of_an_experiment_the_job_lacks_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"unknown experiment\(s\) \['nope'\]"):
        run_job(HOMEWORK, Options(out=tmp_path, ids=("nope",)))
    assert not (tmp_path / "runs").exists()


def _square(x, slot):
    return x * x, slot


def test_calls_in_a_pool_start_in_distinct_slots_and_every_result_comes_back():
    pool = worker_pool(2)
    try:
        results = dict(completed(pool, _square, [(i,) for i in range(5)], 2))
    finally:
        pool.shutdown()
    assert {i: r[0] for i, r in results.items()} == {i: i * i for i in range(5)}
    assert {r[1] for r in results.values()} <= {1, 2}
    assert results[0][1] != results[1][1]  # the first two run at once: one progress line each
    assert dict(completed(None, _square, [(3,), (4,)], 1)) == {0: (9, 1), 1: (16, 1)}  # here, in slot 1


def test_a_cache_computes_each_key_once():
    cache, calls = Cache(), []
    values = [cache.get(k, lambda k=k: calls.append(k) or k * 10) for k in (1, 2, 1, 1)]
    assert values == [10, 20, 10, 10] and calls == [1, 2]
    assert Cache().get(1, lambda: "fresh") == "fresh"  # a new cache shares nothing with another


def test_every_figure_is_a_plot_and_every_experiment_is_reported():
    assert all(isinstance(p, Plot) for p in HOMEWORK.plots.values())
    for exp in EXPERIMENTS.values():
        assert exp.section is not None and exp.section.row is not None, exp.id
        assert "curves" in exp.plots, exp.id


# ------------------------------------------------------- code health

def _job_modules() -> dict:
    """``{path: module}`` of every module of the job: homework.py, jobs, assignment and report."""
    modules = {SCRIPT: _homework()}
    for package in ("jobs", "assignment", "report"):
        for path in sorted((SCRIPTS / package).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            modules[path] = importlib.import_module(name)
    return modules


def _resolves(module, dotted: str) -> bool:
    """Whether a docstring reference names something real: in ``module``, a module, or a class of ``module``."""
    parts = dotted.split(".")
    candidates = [(vars(module)[parts[0]], parts[1:])] if parts[0] in vars(module) else []
    for i in range(len(parts), 0, -1):
        try:
            candidates.append((importlib.import_module(".".join(parts[:i])), parts[i:]))
            break
        except ImportError:
            continue
    if len(parts) == 1:
        candidates += [(cls, parts) for cls in vars(module).values() if isinstance(cls, type)]
    for obj, rest in candidates:
        try:
            functools.reduce(getattr, rest, obj)
            return True
        except AttributeError:
            continue
    return False


def test_every_reference_in_a_docstring_names_something_that_exists():
    stale = []
    for path, module in _job_modules().items():
        for dotted in re.findall(r":(?:func|data|class|meth|mod|attr):`~?([A-Za-z_][\w.]*)`", path.read_text("utf-8")):
            if not _resolves(module, dotted):
                stale.append(f"{path.relative_to(ROOT)}: {dotted}")
    assert not stale, stale


def _function_state_changes(tree: ast.Module) -> list:
    """Names of the module changed inside a function: ``global``, ``NAME[...] = ``, ``NAME.attr = ``,
    ``NAME.append/update/...(...)`` where NAME is bound at module level."""
    module_names = {t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                    for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                    if isinstance(t, ast.Name)}
    module_names |= {(a.asname or a.name).split(".")[0] for node in tree.body
                     if isinstance(node, (ast.Import, ast.ImportFrom)) for a in node.names}
    mutators = {"append", "extend", "update", "setdefault", "pop", "popitem", "clear", "add", "insert", "remove"}
    found = []
    for func in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
        for node in ast.walk(func):
            if isinstance(node, ast.Global):
                found += node.names
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
                if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
            for t in targets:
                if isinstance(t, (ast.Subscript, ast.Attribute)) and isinstance(t.value, ast.Name) \
                        and t.value.id in module_names:
                    found.append(t.value.id)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in mutators \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in module_names:
                found.append(node.func.value.id)
    return found


def test_no_function_of_the_job_changes_module_state():
    """No memo dicts or counters at module level: what a run computes is passed, or cached per task."""
    changed = {str(p.relative_to(ROOT)): names for p in _job_modules()
               if (names := _function_state_changes(ast.parse(p.read_text(encoding="utf-8"))))}
    assert not changed, changed


def test_imports_are_at_the_top_of_the_job_modules():
    inner = []
    for path in _job_modules():
        for func in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner += [f"{path.relative_to(ROOT)}:{n.lineno}" for n in ast.walk(func)
                          if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not inner, inner


def test_no_function_of_the_job_is_longer_than_fifty_lines():
    long = [f"{path.relative_to(ROOT)}:{node.lineno} {node.name}" for path in _job_modules()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 50]
    assert not long, long


def test_workers_are_not_forked_from_a_process_where_jax_runs(monkeypatch):
    monkeypatch.delitem(sys.modules, "jax", raising=False)
    assert start_method() == "fork"  # this platform forks; the workers inherit the modules
    monkeypatch.setitem(sys.modules, "jax", types.ModuleType("jax"))
    assert start_method() in ("forkserver", "spawn")  # JAX's threads would not survive a fork


# ------------------------------------------------ the output folder


def test_a_run_removes_what_an_earlier_run_left_of_experiments_and_figures_it_did_not_make(tmp_path):
    spec = HOMEWORK.with_experiments(TOY, attrs.evolve(TOY, id="toy2", plots=()))
    run_job(spec, Options(out=tmp_path, ids=("toy", "toy2")))
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    stale_figure = next(p.filename for k, p in HOMEWORK.plots.items() if k != "curves")
    (tmp_path / stale_figure).write_bytes(b"\x89PNG an earlier run's")
    run_job(spec, Options(out=tmp_path, ids=("toy2",), seed=4))
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["toy2.json", "toy2.npz"]
    assert not (tmp_path / stale_figure).exists() and not (tmp_path / "learning_curves.png").exists()
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "mine"  # not the job's: kept
    assert list(_results(tmp_path)["experiments"]) == ["toy2"] and not (tmp_path / "INCOMPLETE.txt").exists()


def test_a_folder_a_run_died_in_says_so_and_the_next_run_takes_it_over(tmp_path, capsys):
    broken = HOMEWORK.with_experiments(attrs.evolve(TOY, run=toy_fails))
    with pytest.raises(SystemExit):
        run_job(broken, Options(out=tmp_path, ids=("toy",), seed=7))
    marker = (tmp_path / "INCOMPLETE.txt").read_text(encoding="utf-8")
    assert "has not finished" in marker and "may mix it with an earlier run" in marker and "seed: 7" in marker
    capsys.readouterr()
    run_job(HOMEWORK.with_experiments(TOY), Options(out=tmp_path, ids=("toy",)))
    assert "the last run into" in capsys.readouterr().err and not (tmp_path / "INCOMPLETE.txt").exists()
    assert not list(tmp_path.glob(".INCOMPLETE*"))  # the marker's draft is gone too


def test_a_second_run_into_a_folder_another_run_is_writing_into_is_refused(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "INCOMPLETE.txt").write_text(f"A run started ...\npid: {other.pid}\n", encoding="utf-8")
        with pytest.raises(OutputError, match=f"another run \\(pid {other.pid}\\) is writing into"):
            run_job(HOMEWORK.with_experiments(TOY), Options(out=tmp_path, ids=("toy",)))
        assert not (tmp_path / "results.json").exists() and not list((tmp_path / "runs").iterdir())
    finally:
        other.kill()
        other.wait()
    run_job(HOMEWORK.with_experiments(TOY), Options(out=tmp_path, ids=("toy",)))  # its writer is gone: taken over
    assert (tmp_path / "results.json").is_file() and not (tmp_path / "INCOMPLETE.txt").exists()


@pytest.mark.parametrize("make, message", [
    (lambda out: out.write_text("a file"), "it exists and is not a folder"),
    (lambda out: (out / "results.json").mkdir(parents=True), "results.json exists and is not a regular file"),
    (lambda out: (out / "runs").parent.mkdir() or (out / "runs").write_text("x"), "runs exists and is not a folder"),
])
def test_an_output_folder_that_cannot_take_the_run_is_refused_before_anything_runs(tmp_path, make, message):
    out = tmp_path / "out"
    make(out)
    with pytest.raises(OutputError, match=message):
        run_job(HOMEWORK.with_experiments(attrs.evolve(TOY, run=toy_fails)), Options(out=out, ids=("toy",)))


def test_the_command_says_an_output_folder_is_wrong_without_a_traceback(tmp_path):
    (tmp_path / "afile").write_text("x")
    result = _run(tmp_path / "afile", "--quick", "--only", "linear", "--jobs", "1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "homework.py: error: --out" in result.stderr and "is not a folder" in result.stderr


def test_the_recorded_command_can_be_pasted_back(tmp_path, monkeypatch):
    out = tmp_path / "dir with spaces" / "ünï"
    argv = ["homework.py", "--out", str(out), "--only", "toy"]
    monkeypatch.setattr(sys, "argv", argv)
    run_job(HOMEWORK.with_experiments(TOY), Options(out=out, ids=("toy",)))
    assert shlex.split(_results(out)["environment"]["command"]) == argv


def _living(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; workers die with their parent on Linux")
@pytest.mark.parametrize("how, status", [(signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_stopping_the_job_from_outside_stops_its_workers(tmp_path, how, status):
    out, pids = tmp_path / "out", tmp_path / "pids"
    pids.mkdir()
    code = (f"import sys; sys.path[:0] = [{str(SCRIPTS)!r}, {str(ROOT / 'tests')!r}, {str(ROOT)!r}]; "
            f"import job_cases; job_cases.run_sleeping_job({str(out)!r}, {str(pids)!r})")
    job = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(list(pids.iterdir())) < 2 and time.monotonic() < deadline and job.poll() is None:
            time.sleep(0.1)
        workers = [int(p.read_text()) for p in pids.iterdir()]
        assert len(workers) == 2, job.stderr.read() if job.poll() is not None else "the workers did not start"
        job.send_signal(how)
        assert job.wait(timeout=60) == status
        deadline = time.monotonic() + 30
        while any(map(_living, workers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(map(_living, workers)), "a worker outlived the job"
        assert (out / "INCOMPLETE.txt").is_file()  # the folder says the run did not finish
    finally:
        job.kill()
        job.communicate()
