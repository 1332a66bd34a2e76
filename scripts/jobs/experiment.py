"""The values a job is made of: its experiments, its figures and the job itself.

Adding an experiment to a job is adding one :class:`Experiment` value to its
registry: the runner, the report and the tests loop over the registry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from fgraph.backends import BACKENDS

_ID = re.compile(r"[A-Za-z0-9_.-]+")


def _check_id(instance, attribute, value) -> None:
    # The id names files (runs/<id>.json), so it must be a plain file name.
    if not isinstance(value, str) or not _ID.fullmatch(value) or value.startswith("."):
        raise ValueError(f"experiment id must be letters, digits, '_', '.' or '-' (not starting with '.'), "
                         f"got {value!r}")


def _check_published(instance, attribute, value) -> None:
    for metric, band in value.items():
        if not (isinstance(band, tuple) and len(band) == 2 and band[0] <= band[1]):
            raise ValueError(f"experiment {instance.id!r}: published[{metric!r}] must be a (low, high) tuple with "
                             f"low <= high, got {band!r}")


def _check_backends(instance, attribute, value) -> None:
    if not isinstance(value, tuple) or not value or any(b not in BACKENDS for b in value):
        raise ValueError(f"a job's backends must be a non-empty tuple of {list(BACKENDS)}, got {value!r}")


@attrs.frozen(kw_only=True)
class Experiment:
    """One experiment: how it runs and how the report shows it.

    ``run(experiment, settings, seed, context) -> Outcome`` trains and
    measures, in a worker process (so it, and every function held here,
    must be a module-level function: they are pickled by name).
    ``settings`` are its parameters and ``quick`` what ``--quick``
    overrides; ``cost`` is about the seconds it takes (the longest start
    first). Experiments with the same ``group`` run one after the other in
    one process and share its cache (a fit two of them need is done once).

    ``label`` names it in the report; ``plots`` are the keys of the job's
    figures that show it; ``section`` says where and how the report presents
    it (its type is the job's report's business); ``published`` is the band
    of a metric in the published results, ``{metric: (low, high)}``.
    ``derive(outcome, outcomes)``, if given, computes values comparing it
    with other experiments (from their metrics only, so they are as
    reproducible as the metrics); ``summary(outcome)`` its line on the
    console (default: its float metrics).
    """

    id: str = attrs.field(validator=_check_id)
    title: str
    label: str
    run: Callable[..., Any]
    settings: Mapping[str, Any]
    quick: Mapping[str, Any] = attrs.field(factory=dict)
    cost: float = 1.0
    group: str | None = None
    plots: tuple[str, ...] = ()
    section: Any = None
    published: Mapping[str, tuple[float, float]] = attrs.field(factory=dict, validator=_check_published)
    derive: Callable[..., Any] | None = None
    summary: Callable[..., str] | None = None

    def resolved(self, quick: bool) -> dict:
        """The settings of a run: ``settings`` with the ``quick`` overrides when ``quick``."""
        return {**self.settings, **(self.quick if quick else {})}


def registry(*experiments: Experiment) -> dict:
    """``{id: experiment}`` in the given order (the report's order); ids must be distinct."""
    out = {}
    for exp in experiments:
        if not isinstance(exp, Experiment):
            raise TypeError(f"a registry holds Experiment values, got {type(exp).__name__}: {exp!r}")
        if exp.id in out:
            raise ValueError(f"two experiments have the id {exp.id!r}")
        out[exp.id] = exp
    return out


@attrs.frozen(kw_only=True)
class Plot:
    """A figure of a job: drawn once the experiments that list its key in ``plots`` are done.

    ``args(shown, cache)`` gives the arguments of ``draw(path, *args)`` from
    ``shown``, the ``(experiment, outcome)`` pairs of the experiments that
    ran and show it, in registry order; it runs in the main process and
    should return plain arrays (cheap to send). ``draw`` writes ``filename``
    and runs in a worker process (a module-level function).
    """

    filename: str
    draw: Callable[..., Any]
    args: Callable[..., tuple]


@attrs.frozen(kw_only=True)
class JobSpec:
    """A job: its registry, its figures, and how its report is written.

    ``report(result, out) -> blocks`` builds the report (a list of
    ``report.document`` blocks) from a :class:`jobs.JobResult`; ``title`` is
    the PDF's title and ``program`` the script recorded as its creator.
    ``extras`` are further results computed in the main process once the
    experiments are done, ``{key: compute(seed, cache)}``: each is written
    to results.json under its key and given to the report.
    ``page`` is the Markdown file the report is written to, and ``pdf``
    whether ``report.pdf`` is written beside it. ``backends`` are the
    ``fgraph`` backends a run of the job may choose (its runners pass
    ``context.backend`` to every fit); the first is the default.
    """

    title: str
    program: str
    experiments: Mapping[str, Experiment]
    plots: Mapping[str, Plot]
    report: Callable[..., list]
    extras: Mapping[str, Callable[..., Any]] = attrs.field(factory=dict)
    page: str = "REPORT.md"
    pdf: bool = True
    backends: tuple[str, ...] = attrs.field(default=("numpy",), validator=_check_backends)

    def __attrs_post_init__(self) -> None:
        for key, exp in self.experiments.items():
            if not isinstance(exp, Experiment) or key != exp.id:
                raise ValueError(f"experiments[{key!r}] must be the Experiment with id {key!r}, got {exp!r}")
            unknown = [p for p in exp.plots if p not in self.plots]
            if unknown:
                raise ValueError(f"experiment {key!r} is shown in plots {unknown}, which the job does not have; "
                                 f"its plots: {sorted(self.plots)}")

    def with_experiments(self, *experiments: Experiment) -> JobSpec:
        """This job with ``experiments`` added to (or replacing those of the same id in) its registry."""
        return attrs.evolve(self, experiments={**self.experiments, **registry(*experiments)})

    def plans(self, ids) -> dict:
        """The figures a run of ``ids`` draws: ``{key: (plot, ids it shows, in registry order)}``."""
        plans = {}
        for key, plot in self.plots.items():
            needs = tuple(i for i in self.experiments if i in ids and key in self.experiments[i].plots)
            if needs:
                plans[key] = (plot, needs)
        return plans
