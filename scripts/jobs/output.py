"""The files of a job: JSON, run records and parameters, the report; and what it prints.

Every file is written atomically (``fgraph.io.atomic_write``): a reader
never sees half a file. The set of files is not one write: while a run
writes into a folder (and after one that died) the folder holds
``INCOMPLETE.txt``, which says so and keeps a second run out
(:func:`claimed`); a run that finishes removes what an earlier run left of
experiments and figures it did not make (:func:`remove_stale`), so that
the folder is one run.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import shlex
import sys
from collections.abc import Iterable, Iterator, Mapping
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


def environment_command() -> str:
    """The command that runs this job, each argument quoted as a shell needs it (it can be pasted back)."""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])


def environment(options, jobs: int, load_before, load_after, experiments_seconds: float) -> dict:
    """Where and how the job ran: command, seed, processes, backend, machine, load, library versions."""
    return {
        "command": environment_command(),
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


# ------------------------------------------------------------- the folder

#: The file that marks a folder a run is writing into, or one that died in.
MARKER = "INCOMPLETE.txt"


class OutputError(Exception):
    """The output folder cannot take this run (a file where a folder must be, another run writing there)."""


def check_folder(out: Path, files: Iterable[str]) -> None:
    """Raise :class:`OutputError` unless ``out`` can be the folder of a run
    that writes ``files`` (names within it) and ``runs/``: each a folder,
    or a file, as it must be, or absent. Checked before anything runs, so a
    job does not die at its end for a path that was wrong from the start."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: it exists and is not a folder")
    for part in out.parents:
        if part.exists() and not part.is_dir():
            raise OutputError(f"--out {out}: {part} is not a folder")
    runs = out / "runs"
    if runs.exists() and not runs.is_dir():
        raise OutputError(f"{runs} exists and is not a folder: the run records go there")
    for name in files:
        path = out / name
        if path.exists() and not path.is_file():
            raise OutputError(f"{path} exists and is not a regular file: the job writes its {name} there")


def _running(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _writer(marker: Path) -> int | None:
    """The pid that ``marker`` names, or None if it names none."""
    try:
        last = marker.read_text(encoding="utf-8").rstrip("\n").rsplit("\n", 1)[-1]
        return int(last.removeprefix("pid: ")) if last.startswith("pid: ") else None
    except (OSError, ValueError):  # unreadable, or not what claimed wrote
        return None


@contextlib.contextmanager
def claimed(out: Path, command: str, seed: int) -> Iterator[None]:
    """Hold ``out`` for one run: write :data:`MARKER` there (created only if
    absent, so a second run into the same folder is refused while the
    first runs) and remove it when the block finishes without an
    exception. A run that dies leaves the marker, which says the folder may
    mix two runs; the next run takes the folder over, saying so."""
    marker = out / MARKER
    # Written whole under another name, then linked to the marker's name, which fails if it exists:
    # another run never reads a marker that is there but still empty (and so names no writer).
    draft = out / f".{MARKER}.{os.getpid()}"
    draft.write_text(f"A run started writing into this folder at "
                     f"{datetime.datetime.now().astimezone().isoformat(timespec='seconds')} and has not finished:\n"
                     "until it does, or if it was stopped, the files here may mix it with an earlier run.\n"
                     f"command: {command}\nseed: {seed}\npid: {os.getpid()}\n", encoding="utf-8")
    try:
        for attempt in range(2):
            try:
                os.link(draft, marker)
                break
            except FileExistsError:
                other = _writer(marker)
                if attempt or (other is not None and other != os.getpid() and _running(other)):
                    raise OutputError(f"another run (pid {other}) is writing into {out}/ ({marker.name}): "
                                      f"wait for it to finish, or choose another --out (or, if no run is going "
                                      f"on there, delete {marker})") from None
                print(f"note: the last run into {out}/ did not finish ({marker.name}); this run replaces its files",
                      file=sys.stderr, flush=True)
                with contextlib.suppress(FileNotFoundError):
                    marker.unlink()
    finally:
        draft.unlink()
    yield
    marker.unlink()


def remove_stale(out: Path, experiments: Iterable[str], ran: Iterable[str], figures: Iterable[str],
                 drawn: Iterable[str]) -> list:
    """Remove the run records of ``experiments`` not in ``ran`` and the
    ``figures`` not in ``drawn`` that an earlier run left in ``out`` (never
    a file the job does not make); the names removed."""
    ran, drawn = set(ran), set(drawn)
    stale = [out / "runs" / f"{i}{suffix}" for i in experiments if i not in ran for suffix in (".json", ".npz")]
    stale += [out / name for name in figures if name not in drawn]
    removed = []
    for path in stale:
        if path.is_file():
            path.unlink()
            removed.append(str(path.relative_to(out)))
    return removed
