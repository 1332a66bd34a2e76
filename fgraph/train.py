"""Training as a pure fold over seeded minibatches.

One step is a pure function ``step(carry, batch) -> carry`` on a plain
``(params, opt_state, running)``; one epoch is
``functools.reduce(step, batches_of_the_epoch, carry)``, wrapped as a
function ``(carry, batches) -> carry`` of a small frozen carry built once
an epoch; a fit is the fold of epochs. The batches of epoch ``e`` are a
function of ``(seed, e)`` only, so the same seed gives bit-identical
params, and a fit resumed from a saved :class:`TrainState` ends
bit-identical to one that never stopped.

The step comes from :mod:`fgraph._steps`, which derives the fastest one it
can from the optimiser (for SGD, the learning rate folded into the
backward pass). Data and params are validated once per fit, not once per
step; before the first step the checked program runs on the first and the
last batch of an epoch, so a misshapen primitive is a ``ShapeError``, not a
wrong fit.

Side effects live at the edges, between epochs, outside the fold::

    result = fit(g, params, data, optimizer=optim.adam(1e-3), epochs=100, batch_size=32,
                 evaluate=held_out(g, validation_data),    # metrics[e] = {"validation": J}
                 progress=True,                            # a tqdm bar: loss, validation
                 on_epoch=early_stopping("validation", patience=5))

``evaluate(params)`` returns ``{name: number}`` after each epoch; the
numbers are recorded in ``TrainState.metrics``, so they are saved, loaded
and resumed with the state. ``progress=True`` shows a tqdm bar (tqdm is
an optional dependency) with the epoch's mean objective and metrics, a
function wraps the iterator of epochs instead. ``on_epoch(state)`` sees
every epoch's :class:`TrainState` (to save checkpoints, log, plot); when it
returns :data:`STOP` the fit ends there and returns that state as usual,
and a fit resumed from it continues bit-identically. None of them changes
the fold: the same seed gives the same params with or without them.

Divergence: every step checks that its objective is finite (a float
comparison); the params are checked every :data:`CHECK_STEPS` steps and at
the end. If either fails, the fold is replayed from the last point that
passed (it is deterministic), checking the objective, every gradient and
every updated param at each step, and a :class:`DivergenceError` names the
first step where something turned non-finite and carries the last state
whose values were all finite.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import reduce
from typing import Any, NamedTuple

import attrs
import numpy as np

from fgraph import validate
from fgraph._steps import NonFinite, checked_step, fast_step, first_non_finite, state_failure
from fgraph.arrays import readonly_copy, readonly_view
from fgraph.autodiff import scalar_program
from fgraph.backends import check_backend, load_jax
from fgraph.errors import ShapeError
from fgraph.graph import Graph
from fgraph.init import check_seed


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
    - ``num_examples``: how many examples the epochs visit (None: unknown,
      e.g. a state saved before this field existed)
    - ``optimizer``: the name of the optimiser whose steps made
      ``opt_state`` (None: unknown)
    - ``metrics``: per completed epoch, the ``{name: float}`` that
      :func:`fit`'s ``evaluate`` returned after it (``{}`` for an epoch
      trained without one); ``()`` while no epoch was evaluated (and in a
      state saved before metrics existed). Like every number of a state,
      they must be finite for :func:`fgraph.io.save_state`

    A fit resumed from a state must see the same number of examples and an
    optimiser whose state has the same structure; :func:`fit` says which
    differs otherwise.
    """

    params: Mapping
    opt_state: Any
    epoch: int
    step: int
    seed: int
    batch_size: int
    history: tuple = ()
    running: float = 0.0
    num_examples: int | None = None
    optimizer: str | None = None
    metrics: tuple = ()


@attrs.frozen(eq=False)
class FitResult:
    """What :func:`fit` returns: final ``params``, per-epoch ``history`` and
    ``metrics`` (see :class:`TrainState`), and the whole ``state``."""

    params: Mapping
    history: tuple
    state: TrainState
    metrics: tuple = ()


class _Stop:
    """The type of :data:`STOP`."""

    def __repr__(self) -> str:
        return "fgraph.train.STOP"


#: What an ``on_epoch`` callback returns to end a fit after this epoch.
STOP = _Stop()


class DivergenceError(ValueError):
    """The objective, a gradient or a param turned NaN/inf.

    ``.state`` is the last state whose values were all finite; ``.epoch``
    and ``.step`` (0-based, within the epoch) locate the step that failed.
    """

    def __init__(self, message: str, state: TrainState, epoch: int, step: int):
        super().__init__(message)
        self.state = state
        self.epoch = epoch
        self.step = step


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during a fit. ``.state`` is the state after the last completed epoch."""

    def __init__(self, state: TrainState):
        super().__init__(f"training interrupted after {state.epoch} epochs; resume from .state")
        self.state = state


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch ``epoch`` visits ``n`` examples: a function of
    ``(seed, epoch)`` only, so any epoch can be replayed on its own."""
    return np.random.default_rng(np.random.SeedSequence([seed, epoch])).permutation(n)


def epoch_batches(data: Mapping, batch_size: int, seed: int, epoch: int) -> list:
    """The minibatches of one epoch: the examples shuffled by
    :func:`epoch_permutation`, in slices of ``batch_size`` (the last one
    smaller when ``batch_size`` does not divide the number of examples).

    When one batch holds every example it is the data in stored order: the
    order inside a single batch would only change the rounding of its sums.
    Every input must have the same number of examples (a ``ShapeError``
    names them otherwise).
    """
    data, _ = validate.examples(data)
    batch_size = _positive_int(batch_size, "batch_size")
    return _Batcher(data, batch_size, check_seed(seed), examples=False).epoch(_positive_int(epoch, "epoch", 0))


class _Batcher:
    """The batches of every epoch of one fit, with the work that does not
    depend on the epoch done once: a full batch is built once, and for
    ``batch_size=1`` (unless ``examples=False``) the rows of every input are
    split once and each epoch's example dicts are one dict display each.

    ``data`` is checked already: arrays with one leading length n on all.
    """

    def __init__(self, data: Mapping, batch_size: int, seed: int, examples: bool = True):
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.n = len(next(iter(data.values())))
        self.whole = [dict(data)] if batch_size >= self.n > 0 else None
        self.rows = tuple(list(v) for v in data.values()) if batch_size == 1 and examples else None

    def epoch(self, epoch: int) -> list:
        if self.whole is not None:
            return self.whole
        order = epoch_permutation(self.n, self.seed, epoch)
        if self.rows is None:
            shuffled = {k: v[order] for k, v in self.data.items()}
            starts = range(0, self.n, self.batch_size)
            return [{k: v[i : i + self.batch_size] for k, v in shuffled.items()} for i in starts]
        keys, rows, order = tuple(self.data), self.rows, order.tolist()
        if len(keys) == 1:
            (k0,), (r0,) = keys, rows
            return [{k0: r0[i]} for i in order]
        if len(keys) == 2:
            (k0, k1), (r0, r1) = keys, rows
            return [{k0: r0[i], k1: r1[i]} for i in order]
        return [{k: r[i] for k, r in zip(keys, rows)} for i in order]


def batches(data: Mapping, batch_size: int, seed: int, epochs: int, start_epoch: int = 0) -> Iterator[dict]:
    """Minibatches ``{name: array[B, ...]}`` for epochs ``start_epoch .. epochs - 1``;
    each epoch visits every example exactly once (see :func:`epoch_batches`).

    The arguments are checked at the call, not at the first batch: every
    input must have the same number of examples (else a ``ShapeError`` naming
    them), ``batch_size`` is an int >= 1, ``epochs`` and ``start_epoch`` ints >= 0.
    """
    data, _ = validate.examples(data)
    batcher = _Batcher(data, _positive_int(batch_size, "batch_size"), check_seed(seed), examples=False)
    epoch_range = range(_positive_int(start_epoch, "start_epoch", 0), _positive_int(epochs, "epochs", 0))
    return (batch for epoch in epoch_range for batch in batcher.epoch(epoch))


def readonly(params: Mapping) -> dict:
    """Read-only float64 views of every array of ``params`` (the caller's arrays are not flagged)."""
    return {k: readonly_view(v) for k, v in params.items()}


def _copy_tree(tree):
    """``tree`` (dicts, lists, tuples; leaves arrays and plain values) with
    every array copied: the result shares no memory with ``tree``."""
    if isinstance(tree, np.ndarray):
        return readonly_copy(tree)
    if isinstance(tree, Mapping):
        return {k: _copy_tree(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_copy_tree(v) for v in tree)
    return tree  # NumPy scalars, numbers, strings, None: immutable


# ------------------------------------------------------------------- steps


#: How many steps may pass between two checks of the params for NaN/inf.
CHECK_STEPS = 256


def make_step(g: Graph, optimizer, output: str = "objective") -> Callable[[TrainState, Mapping], TrainState]:
    """A pure ``step(state, batch) -> state``: one optimiser step on one batch.

    It validates the batch on every call; :func:`fit` folds the same step
    without the per-call validation. ``state.step`` and ``state.running``
    advance; epochs are counted by :func:`fit`.
    """
    program = scalar_program(g, output)
    fast = fast_step(program, optimizer)
    name = _optimizer_name(optimizer)

    def step(state: TrainState, batch: Mapping) -> TrainState:
        data, _ = validate.data(g, batch, program.input_names)
        if state.optimizer != name:  # a state from another optimiser, or of unknown origin: check once
            _check_opt_state(optimizer, state, "make_step")
        try:
            params, opt_state, running = fast((dict(state.params), state.opt_state, state.running), data)
        except NonFinite:
            why = f"step {state.step}: the objective is not finite"
            raise DivergenceError(why, state, state.epoch, state.step) from None
        return attrs.evolve(state, params=readonly(params), opt_state=opt_state, step=state.step + 1, running=running,
                            optimizer=name)

    return step


# ------------------------------------------- checks of arguments and states


def _positive_int(value, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _optimizer_name(optimizer) -> str:
    """How states record ``optimizer``: its ``name`` (e.g. ``"adam(lr=0.001, ...)"``), else its repr."""
    name = getattr(optimizer, "name", None)
    return name if isinstance(name, str) else repr(optimizer)


def _structure_mismatch(fresh, saved, where: str) -> str | None:
    """Where ``saved`` differs in structure from ``fresh``, or None.

    Structure: dict keys, list and tuple lengths, and every numeric leaf's
    shape (a NumPy scalar, a 0-d array and a Python number all have shape
    ()); other leaves (None, str, bool) by type. Values are not compared.
    """
    if isinstance(fresh, Mapping):
        if not isinstance(saved, Mapping):
            return f"{where} is a {type(saved).__name__}, expected a dict with keys {list(fresh)}"
        if set(fresh) != set(saved):
            return f"{where} has keys {list(saved)}, expected {list(fresh)}"
        return next((m for k in fresh if (m := _structure_mismatch(fresh[k], saved[k], f"{where}[{k!r}]"))), None)
    if isinstance(fresh, (list, tuple)):
        if not isinstance(saved, (list, tuple)) or len(saved) != len(fresh):
            return f"{where} is {type(saved).__name__} {saved!r:.60}, expected a sequence of {len(fresh)}"
        return next((m for i, f in enumerate(fresh) if (m := _structure_mismatch(f, saved[i], f"{where}[{i}]"))), None)
    kinds = [_leaf_kind(fresh), _leaf_kind(saved)]
    if kinds[0] != kinds[1]:
        return f"{where} is {kinds[1][1]}, expected {kinds[0][1]}"
    return None


def _leaf_kind(leaf) -> tuple:
    """(what is compared, how to describe it) for a leaf of an optimiser state."""
    if isinstance(leaf, (np.ndarray, np.generic)) or (isinstance(leaf, (int, float)) and not isinstance(leaf, bool)):
        shape = np.shape(leaf)
        return ("number", "a number" if shape == () else f"an array of shape {shape}")
    return (type(leaf), f"a {type(leaf).__name__}")


def _check_opt_state(optimizer, state: TrainState, who: str) -> None:
    """A ``ValueError`` naming the difference if ``state.opt_state`` is not
    shaped like the state ``optimizer`` keeps (``optimizer.init``'s)."""
    name = _optimizer_name(optimizer)
    mismatch = _structure_mismatch(optimizer.init(state.params), state.opt_state, "opt_state")
    if mismatch is not None:
        made_by = state.optimizer or "an optimiser fgraph cannot name (an older state?)"
        raise ValueError(
            f"{who}: the state's optimiser state was made by {made_by} and does not fit this optimiser,"
            f" {name}: {mismatch}; continue with the optimiser that made it"
        )


def _check_position(state: TrainState, n: int, steps_per_epoch: int) -> None:
    """A ``ValueError`` unless ``state`` is a point of a fold over ``n``
    examples in ``steps_per_epoch`` steps an epoch: history of ``epoch``
    entries, and ``step`` within epoch ``epoch`` (at its end at the latest)."""
    if state.num_examples is not None and state.num_examples != n:
        raise ValueError(
            f"resume: the state was trained on {state.num_examples} examples, this fit has {n};"
            " a resumed fit must see the same data"
        )
    for what in ("epoch", "step"):
        value = getattr(state, what)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"resume: the state's {what} must be an int >= 0, got {value!r}")
    for what in ("history", "metrics"):
        entries = len(getattr(state, what))
        if entries != state.epoch and (what == "history" or entries):
            raise ValueError(f"resume: the state has done {state.epoch} epochs but its {what} has {entries} entries")
    into = state.step - state.epoch * steps_per_epoch
    if not 0 <= into <= steps_per_epoch:
        raise ValueError(
            f"resume: the state has taken {state.step} steps in {state.epoch} epochs, which is not a point of"
            f" this fit's epochs of {steps_per_epoch} steps ({n} examples in batches of {state.batch_size});"
            " a resumed fit must see the same number of examples"
        )


def _start_state(g, params, optimizer, seed, batch_size, resume, n) -> TrainState:
    """The state a fit starts from: fresh from ``params``, or ``resume``,
    checked to continue this fit; its arrays are copies nobody else holds."""
    if resume is None:
        if params is None:
            raise ValueError("fit needs initial params (or resume=state)")
        checked = {k: readonly_copy(v) for k, v in validate.params(g, params, tuple(g.params)).items()}
        return TrainState(checked, _copy_tree(optimizer.init(checked)), 0, 0, seed, batch_size)
    if not isinstance(resume, TrainState):
        raise TypeError(f"resume must be a TrainState (e.g. from fgraph.io.load_state), got {type(resume).__name__}")
    if params is not None:
        raise ValueError("pass either params or resume=state, not both: the state holds the params")
    for what, ours, theirs in (("seed", seed, resume.seed), ("batch_size", batch_size, resume.batch_size)):
        if ours != theirs:
            raise ValueError(f"resume: the state was trained with {what}={theirs}, this fit asks for {what}={ours}")
    _check_position(resume, n, -(-n // batch_size))
    checked = {k: readonly_copy(v) for k, v in validate.params(g, resume.params, tuple(g.params)).items()}
    resume = attrs.evolve(resume, params=checked, opt_state=_copy_tree(resume.opt_state))
    _check_opt_state(optimizer, resume, "resume")
    # Its params were checked above; a NaN here would be trained on and surface later as a divergence
    # that the state, not the fit, caused.
    failure = state_failure(resume.opt_state) or (
        None if math.isfinite(resume.running) else f"its running sum of the epoch's objectives is {resume.running}"
    )
    if failure is not None:
        raise ValueError(f"resume: {failure}; a state to resume from is finite (a diverged fit's"
                         " DivergenceError holds the last finite state in .state)")
    return resume


# -------------------------------------------------------------- the fold


class _Carry(NamedTuple):
    """The fold's state between two epochs, built once an epoch (never once
    a step: the steps of an epoch carry a plain ``(params, opt_state,
    running)``). A named tuple: frozen, and half the cost of an attrs
    instance to build, which a fit of many short epochs notices.

    ``mean`` is the mean objective of the epoch that ended here (NaN where
    no epoch did). Like ``lax.scan``'s outputs, the means and metrics of
    all epochs are gathered outside the carry, by :func:`_run`, in lists
    that only grow: a carry at epoch e owns their first e entries.
    """

    epoch: int
    params: dict
    opt_state: Any
    step: int
    running: float
    mean: float
    healthy: Any = True  # a compiled fold's device-side flag: every epoch since the last check was finite


@attrs.frozen(eq=False)
class _Fold:
    """What stays fixed during one fit: its steps, its batches, and what a
    :class:`TrainState` records besides the carry."""

    fast: Callable
    checked: Callable
    batcher: _Batcher
    steps_per_epoch: int
    seed: int
    batch_size: int
    num_examples: int
    optimizer: str

    def batches(self, carry: _Carry) -> list:
        """The batches of the epoch ``carry`` is in, from its step on (a
        resumed state may stand in the middle of an epoch)."""
        return self.batcher.epoch(carry.epoch)[carry.step - carry.epoch * self.steps_per_epoch :]

    def epoch(self, carry: _Carry, batches: list) -> _Carry:
        """The carry after folding the fast step over ``batches``, the rest of
        epoch ``carry.epoch``; raises ``NonFinite`` when an objective is."""
        inner = reduce(self.fast, batches, (carry.params, carry.opt_state, carry.running))
        return self.close(carry, inner, len(batches))

    #: How many steps may pass between two checks of the params (see :meth:`finite`).
    check_steps = CHECK_STEPS

    def replay(self, verified: _Carry, last_epoch: int, history: list, metrics: list) -> _Carry:
        """Find the step that failed after ``verified`` (see :func:`_replay`) and raise its DivergenceError."""
        return _replay(self, verified, last_epoch, history, metrics)

    def finite(self, carry: _Carry) -> bool:
        """Whether every param and optimiser state entry of ``carry`` is
        finite (the fast steps check only the objective)."""
        return first_non_finite(carry.params) is None and state_failure(carry.opt_state) is None

    def epochs_per_call(self, keep: bool) -> int:
        """The most epochs :meth:`run_epochs` runs in one call; 1: this fold runs one epoch at a time."""
        return 1

    def settle(self, history: list) -> None:
        """Bring the entries of ``history`` that a device still holds to the
        host, so that later ones follow them as equals (NumPy's are there)."""

    def run_epochs(self, carry: _Carry, count: int, keep: bool) -> tuple:
        """``(carries, healthy)`` after ``count`` whole epochs in one call (a
        compiled fold's; see :func:`_run_in_calls`)."""
        raise NotImplementedError("this fold runs one epoch at a time")

    def close(self, carry: _Carry, inner: tuple, steps: int) -> _Carry:
        """The carry at the end of epoch ``carry.epoch``, reached in ``steps``
        steps with ``inner = (params, opt_state, running)``."""
        params, opt_state, running = inner
        return _Carry(carry.epoch + 1, params, opt_state, carry.step + steps, 0.0, running / self.steps_per_epoch)

    def state(self, carry: _Carry, history: list, metrics: list) -> TrainState:
        """The :class:`TrainState` at ``carry``, with read-only params; ``history``
        and ``metrics`` hold (at least) an entry per epoch it completed."""
        e = carry.epoch
        return TrainState(readonly(carry.params), carry.opt_state, e, carry.step, self.seed, self.batch_size,
                          _first(history, e), carry.running, self.num_examples, self.optimizer, _first(metrics, e))


def _first(items: list, n: int) -> tuple:
    """The first ``n`` of ``items``, as a tuple (one copy when that is all of them)."""
    return tuple(items) if len(items) == n else tuple(items[:n])


def _replay(fold: _Fold, verified: _Carry, last_epoch: int, history: list, metrics: list):
    """Replay from ``verified`` through epoch ``last_epoch`` step by step,
    checking everything, and raise a DivergenceError at the first failure.

    The fold is deterministic, so the replay retraces it to the bit and
    finds the first step whose objective, gradients or updated params are
    not finite; the error carries the state just before that step (its
    history and metrics those the fold recorded before it).
    """
    carry = verified
    while carry.epoch <= last_epoch:
        batches = fold.batches(carry)
        inner = (carry.params, carry.opt_state, carry.running)
        for k, batch in enumerate(batches):
            result = fold.checked(inner, batch)
            if isinstance(result, str):
                at = _Carry(carry.epoch, inner[0], inner[1], carry.step + k, inner[2], carry.mean)
                raise _diverged(fold.state(at, history, metrics), fold.steps_per_epoch, result)
            inner = result
        carry = fold.close(carry, inner, len(batches))
    raise AssertionError("a non-finite value was seen but the replay found none")  # the fold is deterministic


class _Diverged(Exception):
    """Raised by a fold that locates the failing step itself (a compiled
    epoch): ``carry`` is the carry just before that step, ``why`` what failed."""

    def __init__(self, carry: _Carry, why: str):
        super().__init__(why)
        self.carry, self.why = carry, why


def _diverged(state: TrainState, steps_per_epoch: int, why: str) -> DivergenceError:
    """The error for the step that follows ``state``, which found ``why``."""
    step = state.step - state.epoch * steps_per_epoch
    return DivergenceError(
        f"training diverged at epoch {state.epoch}, step {step} of the epoch ({state.step} overall): {why};"
        " .state holds the last finite state",
        state, state.epoch, step,
    )


def _advance(fold: _Fold, carry: _Carry, verified: _Carry, check: bool, history: list, metrics: list) -> tuple:
    """``(carry, verified)`` after one more epoch. Every step checks its
    objective; the params only when ``check`` (then the new carry becomes
    the last ``verified`` one). A failure replays from ``verified``, which
    is what it costs to check the params rarely."""
    try:
        carry = fold.epoch(carry, fold.batches(carry))
        if check:
            if not fold.finite(carry):
                raise NonFinite
            verified = carry
    except NonFinite:
        carry = verified = fold.replay(verified, carry.epoch, history, metrics)
    except _Diverged as failed:
        raise _diverged(fold.state(failed.carry, history, metrics), fold.steps_per_epoch, failed.why) from None
    return carry, verified


# ----------------------------------------------------------------- edges


@attrs.frozen(eq=False)
class _Edges:
    """What a fit does between two epochs, outside the fold, under the
    caller's NumPy ``errstate``: evaluate the params, show progress, call
    ``on_epoch``."""

    wrap: Callable[[Iterable], Iterable]
    bar: Any  # True until :meth:`opened`, then a tqdm bar; None for none
    evaluate: Callable | None
    on_epoch: Callable | None
    errstate: dict

    @property
    def watching(self) -> bool:
        """Whether something sees every epoch end (so each one is checked, and
        over when it is seen): evaluate, on_epoch, or a progress function,
        which may read a clock, or stop the fit with a Ctrl-C."""
        return self.evaluate is not None or self.on_epoch is not None or self.wrap is not _unwrapped

    def opened(self, start: int, epochs: int) -> _Edges:
        """These edges with their progress bar shown, if they have one."""
        return self if self.bar is None else attrs.evolve(self, bar=_progress_bar(start, epochs))

    def after(self, fold: _Fold, carry: _Carry, history: list, metrics: list) -> bool:
        """Evaluate, show and report the epoch that ended at ``carry``, whose
        mean is ``history[-1]``; its metrics go to ``metrics`` (unless no
        epoch has any). True when ``on_epoch`` said STOP."""
        with np.errstate(**self.errstate):  # the caller's code, the caller's settings
            values = {} if self.evaluate is None else _metrics(self.evaluate(readonly(carry.params)), carry.epoch)
            if self.evaluate is not None or metrics:  # metrics are recorded once an epoch was evaluated
                metrics.append(values)
            if self.bar is not None:
                self.bar.set_postfix({"loss": carry.mean, **values}, refresh=False)
                self.bar.update()
            return self.on_epoch is not None and self.on_epoch(fold.state(carry, history, metrics)) is STOP

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _metrics(values, epoch: int) -> dict:
    """What ``evaluate`` returned after epoch ``epoch`` (1-based), as ``{str: float}``, or a TypeError naming it."""
    if not isinstance(values, Mapping):
        got = type(values).__name__
        raise TypeError(f"evaluate must return a dict of metric name -> number, got {got} after epoch {epoch}")
    out = {}
    for name, value in values.items():
        if not isinstance(name, str):
            raise TypeError(f"evaluate: metric names must be str, got {name!r} after epoch {epoch}")
        if isinstance(value, (bool, np.bool_)) or np.ndim(value) != 0 or np.asarray(value).dtype.kind not in "iuf":
            raise TypeError(f"evaluate: metric {name!r} must be a real number, got {value!r:.60} after epoch {epoch}")
        out[name] = float(value)
    return out


def _progress_bar(start: int, epochs: int):
    """A tqdm bar over epochs ``start .. epochs - 1``, or an ImportError saying how to get tqdm."""
    try:
        import tqdm
    except ImportError:
        raise ImportError(
            "fit(progress=True) shows a tqdm progress bar, and tqdm is not installed: pip install tqdm"
            " (or pass progress=None, or a function that wraps the iterator of epochs)"
        ) from None
    return tqdm.tqdm(total=epochs, initial=start, unit="epoch", desc="fit")


def _edges(progress, evaluate, on_epoch, errstate: dict) -> _Edges:
    """The :class:`_Edges` of a fit's arguments, each checked."""
    for name, value in (("evaluate", evaluate), ("on_epoch", on_epoch)):
        if value is not None and not callable(value):
            raise TypeError(f"{name} must be a function or None, got {value!r:.60}")
    if progress is None or progress is False or progress is True:
        return _Edges(_unwrapped, progress or None, evaluate, on_epoch, errstate)
    if not callable(progress):
        raise TypeError(f"progress must be True, None or a function wrapping the epochs, got {progress!r:.60}")
    return _Edges(progress, None, evaluate, on_epoch, errstate)


def _unwrapped(epochs: Iterable) -> Iterable:
    return epochs


def _run(fold: _Fold, state: TrainState, epochs: int, edges: _Edges) -> TrainState:
    """The fold of epochs ``state.epoch .. epochs - 1`` with its edges; stops
    early when ``on_epoch`` says STOP. Ctrl-C is a TrainingInterrupted with
    the state of the last completed (and evaluated) epoch."""
    carry = _Carry(state.epoch, dict(state.params), state.opt_state, state.step, state.running, math.nan)
    # Metrics are recorded from the first evaluated epoch on, with {} for those before it; the copies keep
    # the caller's dicts out. A fit that evaluates nothing keeps none: an empty list, never appended to.
    metrics = [dict(m) for m in state.metrics] or [{} for _ in state.history if edges.evaluate is not None]
    history = list(state.history)
    edges = edges.opened(state.epoch, epochs)
    # on_epoch and a progress wrapper run between epochs as they end; evaluate and the bar can be served later.
    in_calls = edges.on_epoch is None and edges.wrap is _unwrapped and fold.epochs_per_call(edges.watching) > 1
    try:
        carry = (_run_in_calls if in_calls else _run_watched)(fold, carry, epochs, edges, history, metrics)
    except _Interrupted as interrupted:
        raise TrainingInterrupted(fold.state(interrupted.carry, history, metrics)) from None
    finally:
        edges.close()
    return fold.state(carry, history, metrics)


class _Interrupted(Exception):
    """Ctrl-C during a fold: ``carry`` is where it last stood between epochs."""

    def __init__(self, carry: _Carry):
        super().__init__()
        self.carry = carry


def _ended(edges: _Edges, fold: _Fold, carry: _Carry, history: list, metrics: list) -> bool:
    """Record the mean of the epoch that ended at ``carry`` in ``history``
    and show it: True when ``on_epoch`` said STOP. With nothing to show,
    no call: only a fit that kept metrics gets its empty entry."""
    history.append(carry.mean)
    if edges.watching or edges.bar is not None:
        return edges.after(fold, carry, history, metrics)
    if metrics:
        metrics.append({})
    return False


def _run_watched(fold: _Fold, carry: _Carry, epochs: int, edges: _Edges, history: list, metrics: list) -> _Carry:
    """The fold one epoch at a time up to epoch ``epochs``, each followed by
    what watches it (evaluate, progress, on_epoch): the carry where it ends
    or ``on_epoch`` stops it."""
    verified, check_every = carry, max(1, fold.check_steps // fold.steps_per_epoch)
    try:
        for _ in edges.wrap(range(carry.epoch, epochs)):
            check = edges.watching or carry.epoch == epochs - 1 or carry.epoch + 1 - verified.epoch >= check_every
            advanced, verified = _advance(fold, carry, verified, check, history, metrics)
            stop = _ended(edges, fold, advanced, history, metrics)
            carry = advanced
            if stop:
                break
    except KeyboardInterrupt:
        raise _Interrupted(_checked(fold, carry, verified, history, metrics)) from None
    return carry


def _checked(fold: _Fold, carry: _Carry, verified: _Carry, history: list, metrics: list) -> _Carry:
    """``carry``, checked now if no check has covered it: a fit interrupted
    between its checks hands back a finite state, or raises the
    DivergenceError that running on would have raised."""
    if carry.epoch > verified.epoch and not fold.finite(carry):
        return fold.replay(verified, carry.epoch, history, metrics)
    return carry


def _run_in_calls(fold: _Fold, carry: _Carry, epochs: int, edges: _Edges, history: list, metrics: list) -> _Carry:
    """The fold, without ``on_epoch``, on a fold that runs several epochs a
    call (:meth:`_Fold.run_epochs`), each call checked when it returns, then
    ``evaluate`` and the progress bar for each of its epochs, in order: the
    same epochs, means and metrics as :func:`_run_watched`. A call that
    failed is run again one epoch at a time by :func:`_run_watched`, which
    finds the failure as a fit that checks every epoch does; a state
    resumed inside an epoch finishes that epoch on its own first."""
    if carry.step != carry.epoch * fold.steps_per_epoch and carry.epoch < epochs:
        carry = _run_watched(fold, carry, carry.epoch + 1, edges, history, metrics)
        fold.settle(history)  # that epoch's mean may be on a device; the calls' are on the host
    keep = edges.watching  # evaluate needs each epoch's params (and Ctrl-C in it, the state of the one before)
    try:
        while carry.epoch < epochs:
            count = min(fold.epochs_per_call(keep), epochs - carry.epoch)
            carries, healthy = fold.run_epochs(carry, count, keep)
            if not healthy:
                carry = _run_watched(fold, carry, carry.epoch + count, edges, history, metrics)
                fold.settle(history)
                continue
            for advanced in carries:
                _ended(edges, fold, advanced, history, metrics)  # no on_epoch here: nothing stops the fit
                if advanced.params is not None:  # only the last holds params unless evaluate watches
                    carry = advanced
    except KeyboardInterrupt:
        raise _Interrupted(carry) from None
    return carry


def _verify_shapes(g: Graph, program, params, batches: list) -> None:
    """Run the checked program on the first and the last batch of an epoch
    (the full size and a smaller remainder), unless it ran with those batch
    sizes before, so that a primitive whose rules return misshapen values
    is a ``ShapeError`` before the first step, never a silently wrong fit."""
    name = next(iter(batches[0]))
    rank = len(g.inputs[name])
    for batch in (batches[0], batches[-1]):
        first = batch[name]
        program.verify(params, batch, None if np.ndim(first) == rank else len(first))


# ------------------------------------------------------------------- fit


def _fit_program(g: Graph, output: str, optimizer):
    """The program of ``output``, checked to be something ``fit`` can fold."""
    program = scalar_program(g, output)
    if not program.input_names:
        raise ValueError(
            f"fit: output {output!r} reads no data input (it depends only on params {sorted(program.param_names)}),"
            " so there are no examples to fit it to; did the objective lose its loss term?"
        )
    for method in ("init", "update"):
        if not callable(getattr(optimizer, method, None)):
            raise TypeError(f"optimizer must be an fgraph.optim optimiser (with init and update), got {optimizer!r}")
    return program


def _setup(g: Graph, params, data, optimizer, epochs, batch_size, seed, output, resume, backend, devices) -> tuple:
    """``(program, fold, state, epochs)``: a fit's arguments checked, its
    fixed parts built and the state it starts from."""
    backend = check_backend(backend)
    if devices is not None and backend != "jax":
        raise ValueError(f'devices={devices!r} trains on several devices with backend="jax", not {backend!r}')
    program = _fit_program(g, output, optimizer)
    seed, epochs = check_seed(seed), _positive_int(epochs, "epochs", minimum=0)
    batch_size = _positive_int(batch_size, "batch_size")
    arrays, n = validate.data(g, data, program.input_names)
    if n is None:
        raise ShapeError("fit needs data with a leading batch axis (one row per example) on every input")
    state = _start_state(g, params, optimizer, seed, batch_size, resume, n)
    if epochs < state.epoch:
        raise ValueError(f"resume: the state has already done {state.epoch} epochs, more than epochs={epochs}")
    fixed = {"steps_per_epoch": -(-n // batch_size), "seed": seed, "batch_size": batch_size, "num_examples": n,
             "optimizer": _optimizer_name(optimizer)}
    if backend == "jax":
        return program, load_jax().make_fold(program, optimizer, arrays, state, fixed, devices), state, epochs
    fold = _Fold(fast_step(program, optimizer), checked_step(program, optimizer), _Batcher(arrays, batch_size, seed),
                 **fixed)
    return program, fold, state, epochs


def fit(g: Graph, params: Mapping | None, data: Mapping, *, optimizer, epochs: int, batch_size: int = 1, seed: int = 0,
        output: str = "objective", resume: TrainState | None = None, progress: bool | Callable | None = None,
        evaluate: Callable[[Mapping], Mapping] | None = None, on_epoch: Callable[[TrainState], Any] | None = None,
        backend: str = "numpy", devices: int | None = None) -> FitResult:
    """Train ``params`` to minimise ``output`` by folding ``optimizer`` steps over
    shuffled minibatches, up to ``epochs`` in total.

    Every input in ``data`` has a leading example axis of length n. Each
    epoch visits every example once, in batches of ``batch_size`` (the last
    one smaller if needed) in the order of :func:`epoch_permutation`
    ``(seed, epoch)``. ``history[e]`` is the mean of epoch ``e``'s step
    objectives (each measured before its update). ``resume=state`` continues
    from ``state`` (an epoch boundary or inside an epoch) and ends
    bit-identical to a fit that never stopped; it needs the state's number
    of examples and an optimiser whose state has the same structure (other
    hyperparameters, a smaller learning rate say, are allowed).

    Outside the fold, after every epoch: ``evaluate(params)`` returns
    ``{name: number}``, recorded in ``metrics[e]`` (see :func:`held_out`);
    ``progress=True`` shows a tqdm bar with the epoch's mean objective
    ("loss") and metrics, a function wraps the iterator of epochs instead;
    ``on_epoch(state)`` sees the :class:`TrainState`, and ends the fit
    there, returning normally, if it returns :data:`STOP` (see
    :func:`early_stopping`). Ctrl-C raises :class:`TrainingInterrupted`, a
    NaN/inf objective, gradient or param :class:`DivergenceError`; both
    carry the state to resume from. Nothing returned shares memory with the
    caller's params, data or ``resume`` state.

    ``backend="jax"`` runs each epoch as one compiled ``lax.scan`` of the
    same program and optimiser (:mod:`fgraph.backends.jax_backend`): the
    same batches, states and errors, values equal to rounding. Unless
    ``on_epoch`` or a progress function watch (they run as each epoch
    ends), one call runs up to 64 epochs, checked when it returns, and
    ``evaluate`` and the bar see its epochs after it (a failure is run
    again one epoch and one step at a time to name it);
    ``devices=n`` splits every batch over n devices (data parallel, the
    params replicated; ``batch_size`` a multiple of n).
    """
    program, fold, state, epochs = _setup(g, params, data, optimizer, epochs, batch_size, seed, output, resume,
                                          backend, devices)
    edges = _edges(progress, evaluate, on_epoch, np.geterr())
    # Overflow on the way to a divergence is reported by DivergenceError,
    # precisely; NumPy's warnings would only repeat it, vaguely.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if state.epoch < epochs and fold.batcher is not None:  # a compiled fold checks shapes as it traces
            _verify_shapes(g, program, state.params, fold.batcher.epoch(state.epoch))
        state = _run(fold, state, epochs, edges)
    return FitResult(params=state.params, history=state.history, state=state, metrics=state.metrics)


# ------------------------------------------------ for evaluate= and on_epoch=


def held_out(g: Graph, data: Mapping, *, output: str = "objective", name: str = "validation") -> Callable:
    """An ``evaluate`` for :func:`fit`: ``params -> {name: J}``, with J the value
    of the scalar ``output`` on ``data`` (examples the fit does not train on;
    for a loss, the mean over them, as one batch).

    ``data`` is checked here, once; the params on every call.
    """
    program = scalar_program(g, output)
    if not isinstance(name, str):
        raise TypeError(f"held_out: name must be a str, got {name!r}")
    arrays, n = validate.data(g, data, program.input_names)
    needed = tuple(sorted(program.param_names))

    def evaluate(params: Mapping) -> dict:
        return {name: float(program.run_forward(validate.params(g, params, needed), arrays, n))}

    return evaluate


def early_stopping(metric: str = "validation", patience: int = 5, mode: str = "min") -> Callable[[TrainState], Any]:
    """An ``on_epoch`` for :func:`fit` that returns :data:`STOP` once ``metric``
    has not improved for ``patience`` epochs.

    With ``metrics[e][metric]`` the values that ``evaluate`` recorded and b
    the first epoch of the best one (the lowest for ``mode="min"``, the
    highest for ``"max"``; NaN never counts as best), the fit stops after
    epoch e = ``state.epoch - 1`` when e - b >= ``patience``. It is a pure
    function of the state, so a resumed fit stops where an unbroken one
    would; keep the params of epoch b by saving them from an ``on_epoch``
    of your own if you need them.
    """
    if not isinstance(metric, str):
        raise TypeError(f"early_stopping: metric must be a str, got {metric!r}")
    patience = _positive_int(patience, "early_stopping: patience")
    if mode not in ("min", "max"):
        raise ValueError(f"early_stopping: mode must be 'min' or 'max', got {mode!r}")
    sign = 1.0 if mode == "min" else -1.0

    def on_epoch(state: TrainState):
        values = [(e, m[metric]) for e, m in enumerate(state.metrics) if metric in m]
        scored = [(sign * v, e) for e, v in values if not math.isnan(v)]  # (best first, then earliest)
        if not scored:
            last = sorted(state.metrics[-1]) if state.metrics else []
            raise ValueError(
                f"early_stopping: no epoch has a number for the metric {metric!r} (the last epoch's metrics are"
                f" {last}); give fit an evaluate that returns it, e.g. evaluate=held_out(g, validation_data)"
            )
        return STOP if state.epoch - 1 - min(scored)[1] >= patience else None

    return on_epoch
