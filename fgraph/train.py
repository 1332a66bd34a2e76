"""Training as a pure fold over seeded minibatches (placeholder: fit lands next)."""

from __future__ import annotations

from typing import Any, Mapping

import attrs


@attrs.frozen(eq=False)
class TrainState:
    """Everything a fold needs to continue: the whole state of a training run.

    - ``params``: ``{name: read-only float64 array}``
    - ``opt_state``: the optimiser's state (nested dicts of arrays and numbers)
    - ``epoch``: epochs completed; ``step``: steps taken in all
    - ``seed``, ``batch_size``: what the batches of every epoch are drawn from
    - ``history``: the mean objective of every completed epoch
    - ``running``: the sum of the objectives of the steps taken in the
      current, unfinished epoch (0.0 at an epoch boundary)
    """

    params: Mapping
    opt_state: Any
    epoch: int
    step: int
    seed: int
    batch_size: int
    history: tuple = ()
    running: float = 0.0


class DivergenceError(ValueError):
    """The objective or a gradient turned NaN/inf. ``.state`` is the last finite state."""

    def __init__(self, message: str, state: TrainState, epoch: int, step: int):
        super().__init__(message)
        self.state = state
        self.epoch = epoch
        self.step = step
