"""A report as an outline: fixed parts, and slots the experiments of a registry fill.

An experiment says where the report presents it with a :class:`Section`:
the key of a :class:`Slot` of the outline, its entry there (a bullet, or
blocks) and its row in a results table. The outline is a sequence of parts,
each a function ``part(inputs) -> list of blocks``; :func:`render` joins
them. ``inputs`` is any value with ``experiments`` (the registry),
``outcomes`` (those that ran, in registry order) and ``figures`` (``{plot
key: file name}`` of the figures drawn).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from report.document import Bullets, Figure


@attrs.frozen
class Row:
    """An experiment's line in the results table (its label and seconds are added by the table)."""

    metric: str
    train: str
    test: str
    reference: str  # the published value, or the goal it is held to


@attrs.frozen(kw_only=True)
class Section:
    """Where and how the report presents an experiment.

    ``entry(experiment, outcome, inputs)`` gives its text in the slot
    ``slot``: a string (one bullet) in a slot of bullets, a list of blocks
    in any other. ``row(experiment, outcome, inputs)``, if given, gives its
    :class:`Row` in the results table.
    """

    slot: str
    entry: Callable
    row: Callable | None = None


@attrs.frozen(kw_only=True)
class Slot:
    """A place in the outline for the experiments whose section names it, in registry order.

    When at least one of them ran: ``before``, their entries (gathered in
    one bullet list if ``bullets``), ``after``; otherwise nothing.
    """

    key: str
    before: tuple = ()
    after: tuple = ()
    bullets: bool = False

    def __call__(self, inputs) -> list:
        entries = [_entry(self, exp, o, inputs) for exp, o in reported(inputs, self.key)]
        if not entries:
            return []
        body = [Bullets(tuple(entries))] if self.bullets else [block for blocks in entries for block in blocks]
        return [*self.before, *body, *self.after]


def _entry(slot: Slot, exp, outcome, inputs):
    entry = exp.section.entry(exp, outcome, inputs)
    if slot.bullets != isinstance(entry, str):
        raise TypeError(f"experiment {exp.id!r}: slot {slot.key!r} takes "
                        f"{'one string (a bullet)' if slot.bullets else 'a list of blocks'} per entry, "
                        f"got {type(entry).__name__}")
    return entry


@attrs.frozen(kw_only=True)
class FigureSlot:
    """A figure of the job, if it was drawn: ``before`` and the figure with its caption."""

    key: str
    caption: str
    before: tuple = ()

    def __call__(self, inputs) -> list:
        if self.key not in inputs.figures:
            return []
        return [*self.before, Figure(inputs.figures[self.key], self.caption)]


def reported(inputs, slot: str) -> list:
    """``(experiment, outcome)`` of the experiments that ran and are presented in ``slot``, in registry order."""
    return [(inputs.experiments[i], o) for i, o in inputs.outcomes.items()
            if inputs.experiments[i].section is not None and inputs.experiments[i].section.slot == slot]


def check_slots(outline: Sequence, experiments) -> None:
    """Every experiment's section names a slot of ``outline`` (else its text would silently be lost)."""
    keys = [part.key for part in outline if isinstance(part, Slot)]
    for exp in experiments.values():
        if exp.section is not None and exp.section.slot not in keys:
            raise ValueError(f"experiment {exp.id!r} is presented in slot {exp.section.slot!r}, which the report's "
                             f"outline does not have; its slots: {keys}")


def render(outline: Sequence, inputs) -> list:
    """The report: the blocks of every part of ``outline``, in order."""
    check_slots(outline, inputs.experiments)
    return [block for part in outline for block in part(inputs)]
