"""The experiments and the figures of one job, run in this process or in a pool of workers."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping

from tqdm import tqdm

from jobs.context import Cache
from jobs.experiment import JobSpec
from jobs.workers import completed, run_task, worker_pool


def tasks_for(experiments: Mapping, ids) -> list:
    """The tasks of a run of ``ids``: tuples of experiments that run in one process, longest first.

    The experiments of one ``group`` form one task, in registry order, so
    they share its cache; every other experiment is a task of its own.
    """
    tasks: dict = {}
    for exp_id in ids:
        exp = experiments[exp_id]
        key = ("group", exp.group) if exp.group is not None else ("experiment", exp_id)
        tasks[key] = (*tasks.get(key, ()), exp)
    return sorted(tasks.values(), key=lambda task: -sum(exp.cost for exp in task))


def draw(function: Callable, path, args: tuple) -> float:
    """Draw one figure, ``function(path, *args)``; the seconds it took."""
    t0 = time.perf_counter()
    function(path, *args)
    return time.perf_counter() - t0


class Job:
    """Runs the experiments of ``options.ids`` and draws the figures, here or in ``options.jobs`` workers.

    With workers, a figure is submitted as soon as the experiments it shows
    are done, so drawing overlaps the last experiments and the PDF's text
    pages (:meth:`figure_ready` lets the PDF wait for a figure only where it
    is placed). A context manager: leaving it stops the workers.
    """

    def __init__(self, spec: JobSpec, options):
        self.spec, self.options = spec, options
        self.tasks = tasks_for(spec.experiments, options.ids)
        self.jobs = min(options.jobs, len(self.tasks))
        self.plans = spec.plans(options.ids)
        self.figures = {key: plot.filename for key, (plot, _) in self.plans.items()}
        self.cache = Cache()  # the main process's: data the figures and the extras need
        self.pool, self._outcomes, self._drawing = None, {}, {}

    def __enter__(self):
        self.pool = worker_pool(self.jobs)
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            if exc[0] is not None:  # a failed experiment or Ctrl-C: do not wait for the others to finish
                for process in list((getattr(self.pool, "_processes", None) or {}).values()):
                    process.terminate()
            self.pool.shutdown(wait=exc[0] is None, cancel_futures=True)
        return False

    def run_experiments(self) -> dict:
        """Every experiment: ``{id: outcome}`` in registry order; a failure stops the job (SystemExit)."""
        o = self.options
        bar = tqdm(total=len(o.ids), desc="experiments", position=0, file=sys.stderr, dynamic_ncols=True) \
            if o.show else None
        argsets = [(task, o.seed, o.quick, o.show, o.backend) for task in self.tasks]
        for _, results in completed(self.pool, run_task, argsets, self.jobs):
            self._collect(results, bar)
            if self.pool is not None:
                self._submit_ready_plots()
        if bar is not None:
            bar.close()
        return {i: self._outcomes[i] for i in o.ids}

    def _collect(self, results: list, bar) -> None:
        errors = [r for _, r in results if isinstance(r, str)]
        if errors:
            raise SystemExit("\n".join(errors))
        self._outcomes.update(results)
        if bar is not None:
            bar.update(len(results))

    def _plot_args(self, key: str) -> tuple:
        plot, needs = self.plans[key]
        return plot.args([(self.spec.experiments[i], self._outcomes[i]) for i in needs], self.cache)

    def _submit_ready_plots(self) -> None:
        for key, (plot, needs) in self.plans.items():
            if key not in self._drawing and all(i in self._outcomes for i in needs):
                self._drawing[key] = self.pool.submit(draw, plot.draw, self.options.out / plot.filename,
                                                      self._plot_args(key))

    def draw_remaining(self) -> None:
        """Draw (here) or submit (to the workers) every figure not yet started."""
        if self.pool is not None:
            self._submit_ready_plots()
            return
        for key, (plot, _) in self.plans.items():
            draw(plot.draw, self.options.out / plot.filename, self._plot_args(key))

    def figure_ready(self, filename: str) -> None:
        """Block until the figure ``filename`` is written (re-raising a plotting error)."""
        for key, future in self._drawing.items():
            if self.figures[key] == filename:
                future.result()

    def wait_figures(self) -> None:
        """Block until every figure is written (re-raising a plotting error)."""
        for future in self._drawing.values():
            future.result()
