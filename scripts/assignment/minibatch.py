"""Minibatch ridge regression (the optional 3.4): time per epoch, speed-up, error in equal epochs and equal time.

Every batch size B is trained for the same number of epochs with the step
scaled with the batch, lr = base_lr × B (the linear scaling rule: an epoch
of n/B steps then moves about as far as an epoch of n single-example
steps). Batch size 1 is exactly the assignment's ridge run (the identical
fold, shared with ``ridge_l2_1`` when both run in one task). For contrast,
``same_step_batch_sizes`` are also trained with the unscaled base_lr. Equal
wall time: each B stops at the budget batch size 1 needed for
``equal_time_epochs_of_batch_1`` epochs.
"""

from __future__ import annotations

import re

import attrs
import numpy as np

import models
from assignment.data import history, regression_problem
from assignment.ridge import ridge_fit
from jobs import Context, Experiment, LearningCurve, Outcome


@attrs.frozen
class MinibatchMetrics:
    """Per batch size (in ``batch_sizes`` order): steps per epoch, step, training MSE after ``epochs`` epochs."""

    batch_sizes: tuple[int, ...]
    epochs: int
    steps_per_epoch: tuple[int, ...]
    lr: tuple[float, ...]
    train_mse: tuple[float, ...]
    same_step_batch_sizes: tuple[int, ...]
    train_mse_same_step: tuple[float, ...]  # with the unscaled step base_lr


@attrs.frozen
class MinibatchTimings:
    """Per batch size: time per epoch, speed-up over batch size 1, and the equal-time comparison."""

    seconds_per_epoch: tuple[float, ...]  # wall time of the fit / epochs
    speedup: tuple[float, ...]
    equal_time_budget_seconds: float
    equal_time_epochs: tuple[int, ...]  # epochs finished within the budget
    train_mse_equal_time: tuple[float, ...]  # training MSE after the last of them
    train_seconds: tuple[float, ...]
    first_epoch_seconds: tuple[float, ...]  # from the start of the fit: on the JAX backend, mostly compiling


@attrs.frozen(eq=False)
class EpochCurves:
    """Per batch size: ``(seconds since the start, training MSE)`` after every epoch."""

    curves: dict


def short_float(value: float) -> str:
    """``value`` as ``:g`` writes it, without the exponent's leading zeros (5e-5, not 5e-05)."""
    return re.sub(r"e([+-])0+(\d)", r"e\1\2", f"{value:g}")


def _equal_time(fits: dict, sizes, budget: float, y_train) -> tuple:
    """Per batch size: the epochs finished within ``budget`` seconds and the training MSE after the last."""
    epochs, errors = [], []
    for B in sizes:
        done = int(np.searchsorted(fits[B].times, budget, side="right"))
        epochs.append(done)
        errors.append(float(fits[B].curve[done - 1]) if done else float(np.mean(y_train ** 2)))  # w = b = 0
    return tuple(epochs), tuple(errors)


def _timings(fits: dict, s: dict, y_train) -> MinibatchTimings:
    sizes, E = s["batch_sizes"], s["epochs"]
    spe = [fits[B].seconds / E for B in sizes]
    budget = spe[0] * s["equal_time_epochs_of_batch_1"]
    epochs, errors = _equal_time(fits, sizes, budget, y_train)
    return MinibatchTimings(seconds_per_epoch=tuple(spe), speedup=tuple(spe[0] / t for t in spe),
                            equal_time_budget_seconds=budget, equal_time_epochs=epochs, train_mse_equal_time=errors,
                            train_seconds=tuple(fits[B].seconds for B in sizes),
                            first_epoch_seconds=tuple(float(fits[B].times[0]) if len(fits[B].times) else 0.0
                                                      for B in sizes))


def _config(exp: Experiment, s: dict) -> dict:
    return {
        "experiment": exp.title, "model": models.ridge_regression(400, s["l2_reg"]).config, **s,
        "step": "lr = base_lr * batch_size (train_mse); lr = base_lr for same_step_batch_sizes "
                "(train_mse_same_step)",
        "objective": "per batch: mean square error of its examples + l2_reg * |w|^2 (the same objective for all B)",
        "time_per_epoch": "wall time of fit / epochs",
        "equal_time": "each B stopped at the budget = the time batch size 1 needed for "
                      f"{s['equal_time_epochs_of_batch_1']} epochs; its training MSE after the last epoch it "
                      "finished within the budget",
    }


def run_minibatch(exp: Experiment, s: dict, seed: int, context: Context) -> Outcome:
    """Ridge regression (l2_reg of ``s``) for every batch size with the scaled step, and some with the base step."""
    sizes, E, base, same_sizes = s["batch_sizes"], s["epochs"], s["base_lr"], s["same_step_batch_sizes"]
    fits = {B: ridge_fit(context, s["l2_reg"], base * B, E, B, seed, f"{exp.id} B={B}") for B in sizes}
    same = {B: ridge_fit(context, s["l2_reg"], base, E, B, seed, f"{exp.id} B={B}, lr {base:g}") for B in same_sizes}
    n = len(regression_problem(context.cache).y_train)
    metrics = MinibatchMetrics(
        batch_sizes=tuple(sizes), epochs=E, steps_per_epoch=tuple(-(-n // B) for B in sizes),
        lr=tuple(base * B for B in sizes), train_mse=tuple(float(fits[B].curve[-1]) for B in sizes),
        same_step_batch_sizes=tuple(same_sizes),
        train_mse_same_step=tuple(float(same[B].curve[-1]) for B in same_sizes))
    params = {f"batch{B}.{k}": v for B, fit in fits.items() for k, v in fit.result.params.items()}
    params.update({f"batch{B}.lr{base:g}.{k}": v for B, fit in same.items() for k, v in fit.result.params.items()})
    curve = LearningCurve(tuple((f"batch {B}", history(fits[B].result.history)) for B in sizes),
                          note=f"lr = {short_float(base)} × batch size")
    return Outcome(metrics=metrics, config=_config(exp, s), params=params,
                   timings=_timings(fits, s, regression_problem(context.cache).y_train), curve=curve,
                   figure_data=EpochCurves({B: (fits[B].times, fits[B].curve) for B in sizes}))


def summary(outcome: Outcome) -> str:
    """The console line: time per epoch and speed-up of every batch size, and their training MSE."""
    m, t = outcome.metrics, outcome.timings
    spe = ", ".join(f"B={b}: {s * 1e3:.2f} ms ({x:.1f}x)" for b, s, x in zip(m.batch_sizes, t.seconds_per_epoch,
                                                                             t.speedup))
    return f"per epoch {spe}; train_mse {[round(v, 4) for v in m.train_mse]}"
