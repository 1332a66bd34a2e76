"""A whole job, from options to files: experiments, figures, extras, run records, report, results.json."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from fgraph.backends import check_backend
from jobs.experiment import JobSpec
from jobs.job import Job
from jobs.outcome import Outcome, outside_bands, results_entry
from jobs.output import (
    check_folder,
    claimed,
    environment,
    environment_command,
    remove_stale,
    summary_lines,
    write_json,
    write_report,
    write_run_records,
)

#: The keys of results.json's "environment" that are measured with a clock.
ENVIRONMENT_TIMING_KEYS = ["load_average_before", "load_average_after", "experiments_wall_seconds",
                           "total_wall_seconds"]


def _check_backend(instance, attribute, value) -> None:
    check_backend(value)  # a ValueError naming the backends there are


@attrs.frozen(kw_only=True)
class Options:
    """How to run a job: where, with which seed, which experiments, how fast, on how many processes,
    and on which backend its fits run."""

    out: Path = attrs.field(converter=Path)
    seed: int = 0
    ids: tuple[str, ...]  # in registry order
    quick: bool = False
    jobs: int = 1
    show: bool = False  # progress bars on stderr
    backend: str = attrs.field(default="numpy", validator=_check_backend)


@attrs.frozen(kw_only=True)
class JobResult:
    """What a job's report is built from."""

    experiments: Mapping[str, Any]  # the whole registry, including experiments that did not run
    outcomes: Mapping[str, Outcome]  # those that ran, in registry order
    extras: Mapping[str, Any]  # the job's extras, by key
    environment: Mapping[str, Any]
    figures: Mapping[str, str]  # the figures drawn: {plot key: file name}


def derive(experiments: Mapping, outcomes: Mapping[str, Outcome]) -> dict:
    """The outcomes with ``derived`` set by each experiment's ``derive`` (values comparing experiments)."""
    return {i: attrs.evolve(o, derived=experiments[i].derive(o, outcomes)) if experiments[i].derive else o
            for i, o in outcomes.items()}


def _results(spec: JobSpec, result: JobResult) -> dict:
    experiments = {i: results_entry(i, o, spec.experiments[i].published) for i, o in result.outcomes.items()}
    return {"experiments": experiments, **result.extras, "environment": dict(result.environment)}


def run_job(spec: JobSpec, options: Options, started: float | None = None) -> JobResult:
    """Run the experiments ``options.ids`` of ``spec`` (in registry order) and write every file into ``options.out``.

    ``started``: the ``time.perf_counter()`` the job's wall time counts from
    (default: now). Prints a line per experiment and the files written.
    """
    started = time.perf_counter() if started is None else started
    unknown = [i for i in options.ids if i not in spec.experiments]
    if unknown:
        raise ValueError(f"unknown experiment(s) {unknown}; the job has {list(spec.experiments)}")
    if options.backend not in spec.backends:
        raise ValueError(f"backend {options.backend!r}: the job {spec.program} runs its fits on "
                         f"{' or '.join(spec.backends)} only")
    options = attrs.evolve(options, ids=tuple(i for i in spec.experiments if i in options.ids))  # registry order
    out = options.out
    check_folder(out, ["results.json", spec.page, *(["report.pdf"] if spec.pdf else []), *_figure_files(spec)])
    (out / "runs").mkdir(parents=True, exist_ok=True)
    with claimed(out, environment_command(), options.seed):
        result = _run(spec, options, started)
    return result


def _figure_files(spec: JobSpec) -> list:
    """The file names of every figure the job can draw (a run draws those of its experiments)."""
    return [plot.filename for plot in spec.plots.values()]


def _run(spec: JobSpec, options: Options, started: float) -> JobResult:
    """:func:`run_job` in a folder it holds."""
    out = options.out
    load_before = os.getloadavg()
    print(f"running {len(options.ids)} experiment(s){' (quick)' if options.quick else ''} with seed {options.seed} "
          f"on up to {options.jobs} process(es), backend {options.backend}; load average {load_before[0]:.2f}",
          file=sys.stderr, flush=True)
    with Job(spec, options) as job:
        outcomes = derive(spec.experiments, job.run_experiments())
        experiments_seconds = time.perf_counter() - started
        load_after = os.getloadavg()
        job.draw_remaining()  # with workers: they draw while this process writes the rest
        extras = {key: compute(options.seed, job.cache) for key, compute in spec.extras.items()}
        write_run_records(out / "runs", outcomes, options.seed)
        env = environment(options, job.jobs, load_before, load_after, experiments_seconds)
        result = JobResult(experiments=spec.experiments, outcomes=outcomes, extras=extras, environment=env,
                           figures=job.figures)
        files = write_report(spec.report(result, out), job, spec)
    env = {**env, "total_wall_seconds": time.perf_counter() - started, "timing_keys": ENVIRONMENT_TIMING_KEYS}
    result = attrs.evolve(result, environment=env)
    write_json(out / "results.json", _results(spec, result))
    removed = remove_stale(out, spec.experiments, options.ids, _figure_files(spec), job.figures.values())
    if removed:
        print(f"removed what an earlier run left of experiments and figures this one did not make: "
              f"{', '.join(removed)}", file=sys.stderr)
    for line in summary_lines(spec.experiments, outcomes):
        print(line)
    print(f"wrote {out}/: results.json, runs/<id>.json, runs/<id>.npz, " + ", ".join(files))
    for line in [] if options.quick else outside_bands(spec.experiments, outcomes):  # bands are for full runs
        print(line)
    print(f"total wall time {env['total_wall_seconds']:.1f} s (experiments {experiments_seconds:.1f} s on "
          f"{job.jobs} process(es), backend {options.backend}; load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after)")
    return result
