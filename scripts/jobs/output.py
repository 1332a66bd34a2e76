"""The files of a job: JSON, run records and parameters, the report; and what it prints.

Every file is written atomically (``fgraph.io.atomic_write``): a reader
never sees half a file, and a job that dies leaves the previous one.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path

import fgraph.io
from jobs.outcome import Outcome, values
from report import document

#: Libraries a job uses besides fgraph's own (those ``fgraph.io.library_versions`` lists); JAX's
#: run the fits of ``--backend jax``.
REPORT_LIBRARIES = ("matplotlib", "tqdm", "jax", "jaxlib")


def write_json(path, data) -> None:
    """Write ``data`` as indented JSON (no NaN or inf: JSON has none) to ``path``, atomically."""
    text = json.dumps(data, indent=2, allow_nan=False)
    with fgraph.io.atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")


def library_versions() -> dict:
    """``fgraph.io.library_versions()`` and the versions of :data:`REPORT_LIBRARIES` (None if not installed)."""
    def version(name):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {**fgraph.io.library_versions(), **{name: version(name) for name in REPORT_LIBRARIES}}


def environment(options, jobs: int, load_before, load_after, experiments_seconds: float) -> dict:
    """Where and how the job ran: command, seed, processes, backend, machine, load, library versions."""
    return {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "seed": options.seed, "quick": options.quick, "jobs": jobs, "backend": options.backend,
        "platform": platform.platform(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "load_average_before": list(load_before), "load_average_after": list(load_after),
        "experiments_wall_seconds": experiments_seconds,
        "versions": library_versions(),
    }


def write_run_records(folder: Path, outcomes: Mapping[str, Outcome], seed: int) -> None:
    """``<id>.json`` (``fgraph.io.run_record``: config, seed, metrics, digest of the params) and ``<id>.npz``."""
    for exp_id, o in outcomes.items():
        record = fgraph.io.run_record(o.config, seed, values(o.metrics), o.params)
        fgraph.io.save_run_record(folder / f"{exp_id}.json", record)
        fgraph.io.save_params(folder / f"{exp_id}.npz", o.params)


def write_report(blocks: list, job, spec) -> list:
    """``spec.page`` (Markdown) and, if ``spec.pdf``, ``report.pdf`` (waiting for each
    figure where it is placed); the files written."""
    out = job.options.out
    written = []
    if spec.pdf:
        with fgraph.io.atomic_write(out / "report.pdf") as f:
            document.write_pdf(blocks, f, out, title=spec.title, before_figure=job.figure_ready, creator=spec.program)
        written.append("report.pdf")
    job.wait_figures()
    with fgraph.io.atomic_write(out / spec.page, "w", encoding="utf-8") as f:
        f.write(document.to_markdown(blocks))
    return [*job.figures.values(), spec.page, *written]


def float_metrics(outcome: Outcome) -> str:
    """The default console summary of an outcome: its float metrics to four decimals."""
    return ", ".join(f"{k} {v:.4f}" for k, v in values(outcome.metrics).items() if isinstance(v, float))


def summary_lines(experiments: Mapping, outcomes: Mapping[str, Outcome]) -> list:
    """One console line per experiment: its summary and its seconds."""
    lines = []
    for exp_id, o in outcomes.items():
        summary = experiments[exp_id].summary or float_metrics
        lines.append(f"{exp_id:>17}: {summary(o)}  [{o.seconds:.1f} s]")
    return lines
