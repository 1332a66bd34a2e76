"""What one experiment's run gives (:class:`Outcome`), and its entry in results.json."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

#: Keys of a results.json entry that are not an outcome's own values.
RESERVED = ("seconds", "config", "timing_keys", "published", "within_published")


def _record(optional: bool):
    """A validator: the value is an attrs instance (its fields are what gets written), or None if ``optional``."""

    def check(instance, attribute, value) -> None:
        if value is None and optional:
            return
        if not attrs.has(type(value)):
            raise TypeError(f"Outcome.{attribute.name} must be an attrs instance (frozen, one field per value)"
                            f"{' or None' if optional else ''}, got {type(value).__name__}: {value!r:.80}")

    return check


@attrs.frozen
class LearningCurve:
    """The training objective after every epoch: ``series`` of ``(label, values)``, one panel of a plot."""

    series: tuple[tuple[str, tuple[float, ...]], ...]
    ylabel: str = "mean objective"
    note: str = ""  # said after the experiment's label in the panel's title


@attrs.frozen(kw_only=True)
class Outcome:
    """The result of one experiment, as its runner returns it.

    - ``metrics``: the reproducible values (same seed, same values, bit for
      bit), an attrs instance; they go to the run record and results.json;
    - ``timings``: values measured with a clock, besides ``seconds`` (an
      attrs instance or None); results.json lists them in ``timing_keys``;
    - ``config``: a JSON-able description of the run (settings, model);
    - ``params``: the final parameters, ``{name: array}``;
    - ``curve``: the learning curve; ``figure_data``: what the job's figures
      draw for it (an attrs instance of arrays, or None).

    The job sets ``seconds`` (the wall time of the runner), adds the seed
    and ``--quick`` to ``config``, and sets ``derived`` from the
    experiment's ``derive``.
    """

    metrics: Any = attrs.field(validator=_record(optional=False))
    config: Mapping[str, Any]
    params: Mapping[str, np.ndarray]
    timings: Any = attrs.field(default=None, validator=_record(optional=True))
    curve: LearningCurve | None = None
    figure_data: Any = None
    seconds: float = 0.0
    derived: Any = attrs.field(default=None, validator=_record(optional=True))


def values(record) -> dict:
    """The fields of an attrs instance as ``{name: value}`` in declaration order (None: none)."""
    return {} if record is None else attrs.asdict(record, recurse=False)


def timing_keys(outcome: Outcome) -> list:
    """The keys of an outcome's results.json entry that are measured with a clock."""
    return sorted(["seconds", *values(outcome.timings)])


def results_entry(exp_id: str, outcome: Outcome, published: Mapping) -> dict:
    """An experiment's results.json entry.

    ``{metric: value, ..., "seconds": s, timing: value, ..., derived: value,
    ..., "config": {...}, "timing_keys": [...]}`` and, when there are
    published bands, ``"published": {metric: [low, high]}`` and
    ``"within_published": {metric: bool}``.
    """
    parts = {"metrics": values(outcome.metrics), "timings": values(outcome.timings),
             "derived": values(outcome.derived)}
    seen = {key: "the job" for key in RESERVED}
    for part, fields in parts.items():
        for key in fields:
            if key in seen:
                raise ValueError(f"experiment {exp_id!r}: {part} field {key!r} is also a key of {seen[key]} in "
                                 f"results.json; rename it")
            seen[key] = part
    entry = {**parts["metrics"], "seconds": outcome.seconds, **parts["timings"], **parts["derived"],
             "config": dict(outcome.config), "timing_keys": timing_keys(outcome)}
    if published:
        entry["published"] = {metric: list(band) for metric, band in published.items()}
        entry["within_published"] = within_published(outcome, published)
    return entry


def within_published(outcome: Outcome, published: Mapping) -> dict:
    """``{metric: low <= value <= high}`` for every band of ``published`` (False for a metric the outcome lacks)."""
    metrics = values(outcome.metrics)
    return {metric: bool(metric in metrics and lo <= metrics[metric] <= hi) for metric, (lo, hi) in published.items()}


def outside_bands(experiments: Mapping, outcomes: Mapping[str, Outcome]) -> list:
    """A line for each metric outside its published band (the job records them; it does not fail on them)."""
    lines = []
    for exp_id, o in outcomes.items():
        published = experiments[exp_id].published
        for metric, ok in within_published(o, published).items():
            if not ok:
                lo, hi = published[metric]
                value = values(o.metrics).get(metric, "missing")
                lines.append(f"{exp_id}: {metric} {value} is outside the published band [{lo}, {hi}]")
    return lines
