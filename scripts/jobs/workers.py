"""Running tasks in worker processes, a bounded number at once, each with its own progress line.

A task is a tuple of experiments that run one after the other in one
process with one :class:`jobs.Cache`. :func:`completed` hands each running
task a distinct slot (the line of its progress bar), so the bars of tasks
running side by side never overwrite each other, without any state kept in
the worker processes.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

import attrs
from tqdm import tqdm

from jobs.context import Context, no_progress
from jobs.experiment import Experiment
from jobs.outcome import Outcome

# tqdm's class-wide setting: no monitor thread, which every forked worker would otherwise start.
tqdm.monitor_interval = 0


def start_method() -> str:
    """How worker processes start: forked where the platform can (they
    inherit the imported modules), unless JAX runs in this process: its
    threads do not survive a fork (it may deadlock), so a fresh server
    process forks them instead."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and "jax" not in sys.modules:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


#: Linux's prctl option that has the kernel signal a process when its parent dies.
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Have this worker terminated (SIGTERM) when the process that started
    it dies, however it dies (a ``kill -9`` of the job included), instead of
    finishing its task and waiting for more as an orphan. Linux only; a
    no-op elsewhere, where the job's own SIGTERM handler still stops its
    workers on a plain ``kill``."""
    # The job's own SIGTERM handler (jobs.cli.run_main) raises SystemExit, which the pool's worker loop
    # would catch and send back as a task's result: a worker must simply die of it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl to be found: keep the worker as it was
        return
    if os.getppid() == 1:  # the parent died before the request was made
        os._exit(1)


def worker_pool(jobs: int) -> ProcessPoolExecutor | None:
    """``jobs`` worker processes, started by :func:`start_method` (each dies with its parent), or None for 1."""
    if jobs <= 1:
        return None
    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context(start_method()),
                               initializer=die_with_parent)


def progress_bars(show: bool, slot: int) -> Callable:
    """``progress(desc, total)``: wraps the epochs of a fit in a tqdm bar on line ``slot`` of stderr, or None."""
    if not show:
        return no_progress

    def progress(desc, total):
        return lambda it: tqdm(it, total=total, desc=desc, position=slot, leave=False, mininterval=0.5, unit="ep",
                               file=sys.stderr, dynamic_ncols=True)

    return progress


def run_one(exp: Experiment, seed: int, quick: bool, context: Context) -> Outcome:
    """Run one experiment: its outcome, timed, with the seed, ``quick`` and the backend in its config."""
    t0 = time.perf_counter()
    outcome = exp.run(exp, exp.resolved(quick), seed, context)
    seconds = time.perf_counter() - t0
    if not isinstance(outcome, Outcome):
        raise TypeError(f"the runner of experiment {exp.id!r} returned a {type(outcome).__name__}; "
                        f"it must return a jobs.Outcome")
    # The backend is part of what produced the numbers (they agree across backends to rounding, not bit
    # for bit), so the run record says which one ran.
    config = {**outcome.config, "seed": seed, "quick": quick, "backend": context.backend}
    return attrs.evolve(outcome, seconds=seconds, config=config)


def run_task(experiments: Sequence[Experiment], seed: int, quick: bool, show: bool, backend: str,
             slot: int) -> list:
    """Run ``experiments`` one after the other with one cache, their fits on ``backend``:
    ``[(id, outcome or error text)]``."""
    context = Context(progress=progress_bars(show, slot), backend=backend)
    out = []
    for exp in experiments:
        try:
            out.append((exp.id, run_one(exp, seed, quick, context)))
        except Exception:  # noqa: BLE001 - the main process reports it with its traceback
            out.append((exp.id, f"experiment {exp.id!r} failed:\n{traceback.format_exc()}"))
    return out


def completed(pool: ProcessPoolExecutor | None, function: Callable, argsets: Sequence[tuple],
              width: int) -> Iterator[tuple[int, object]]:
    """Call ``function(*args, slot)`` for every ``args``; yield ``(index, result)`` as each call finishes.

    At most ``width`` calls are in the pool at once, each with a slot in
    1..width that no other call in the pool has. Without a pool the calls
    run here, one after the other, in slot 1.
    """
    if pool is None:
        for i, args in enumerate(argsets):
            yield i, function(*args, 1)
        return
    waiting, free, running = list(enumerate(argsets)), list(range(width, 0, -1)), {}

    def submit_waiting():
        while waiting and free:
            i, args = waiting.pop(0)
            slot = free.pop()
            running[pool.submit(function, *args, slot)] = (i, slot)

    submit_waiting()
    while running:
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        finished = [(running.pop(future), future) for future in done]
        free.extend(slot for (_, slot), _ in finished)
        # The next calls go in before the caller reacts to these results (say, by drawing a figure),
        # so the pool keeps working on calls first.
        submit_waiting()
        for (i, _), future in finished:
            yield i, future.result()
