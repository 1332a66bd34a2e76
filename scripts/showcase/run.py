"""The gallery as a job: :mod:`jobs`' runner, with GALLERY.md as its page.

:func:`jobs.run_job` writes a report as ``REPORT.md`` and ``report.pdf``;
the gallery's page is one Markdown file, ``GALLERY.md``, and no PDF. The
rest is the generic job: the experiments in worker processes, longest
first; each figure drawn as soon as the experiments it shows are done; run
records; ``results.json`` with ``{"experiments": {id: entry}, "environment":
{...}}`` as :mod:`jobs` writes them.
"""

from __future__ import annotations

import os
import sys
import time

import attrs
from jobs import JobResult, JobSpec, Options
from jobs.job import Job
from jobs.outcome import results_entry
from jobs.output import environment, summary_lines, write_json, write_run_records
from jobs.run import ENVIRONMENT_TIMING_KEYS, derive
from report.document import to_markdown

import fgraph.io

PAGE = "GALLERY.md"


def results(spec: JobSpec, result: JobResult) -> dict:
    """results.json: every experiment's entry (as :mod:`jobs` writes it) and the environment."""
    entries = {i: results_entry(i, o, spec.experiments[i].published) for i, o in result.outcomes.items()}
    return {"experiments": entries, **result.extras, "environment": dict(result.environment)}


def write_page(blocks: list, job: Job) -> None:
    """GALLERY.md, once every figure it shows is written."""
    job.wait_figures()
    with fgraph.io.atomic_write(job.options.out / PAGE, "w", encoding="utf-8") as f:
        f.write(to_markdown(blocks))


def run_gallery(spec: JobSpec, options: Options, started: float | None = None) -> JobResult:
    """Run the experiments ``options.ids`` of ``spec`` and write every file into ``options.out``.

    ``started``: the ``time.perf_counter()`` the wall time counts from
    (default: now). Prints a line per experiment and the files written.
    """
    started = time.perf_counter() if started is None else started
    unknown = [i for i in options.ids if i not in spec.experiments]
    if unknown:
        raise ValueError(f"unknown experiment(s) {unknown}; the job has {list(spec.experiments)}")
    options = attrs.evolve(options, ids=tuple(i for i in spec.experiments if i in options.ids))
    out = options.out
    (out / "runs").mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    print(f"running {len(options.ids)} model(s){' (quick)' if options.quick else ''} with seed {options.seed} on up "
          f"to {options.jobs} process(es); load average {load_before[0]:.2f}", file=sys.stderr, flush=True)
    with Job(spec, options) as job:
        outcomes = derive(spec.experiments, job.run_experiments())
        experiments_seconds = time.perf_counter() - started
        load_after = os.getloadavg()
        job.draw_remaining()
        extras = {key: compute(options.seed, job.cache) for key, compute in spec.extras.items()}
        write_run_records(out / "runs", outcomes, options.seed)
        env = environment(options, job.jobs, load_before, load_after, experiments_seconds)
        result = JobResult(experiments=spec.experiments, outcomes=outcomes, extras=extras, environment=env,
                           figures=job.figures)
        write_page(spec.report(result, out), job)
    env = {**env, "total_wall_seconds": time.perf_counter() - started, "timing_keys": ENVIRONMENT_TIMING_KEYS}
    result = attrs.evolve(result, environment=env)
    write_json(out / "results.json", results(spec, result))
    for line in summary_lines(spec.experiments, outcomes):
        print(line)
    print(f"wrote {out}/: results.json, {PAGE}, runs/<id>.json, runs/<id>.npz, " + ", ".join(job.figures.values()))
    print(f"total wall time {env['total_wall_seconds']:.1f} s (training {experiments_seconds:.1f} s on {job.jobs} "
          f"process(es); load average {load_before[0]:.2f} before, {load_after[0]:.2f} after)")
    return result
