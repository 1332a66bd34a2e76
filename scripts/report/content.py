r"""The homework's report: its outline, and the parts that are neither a derivation nor one experiment's.

:func:`build` returns the report as blocks (:mod:`report.document`), one
section per question of the assignment, from a :class:`jobs.JobResult`.
The experiments fill the slots of :data:`OUTLINE` that their sections
name (:mod:`report.sections`); only experiments that ran are reported
(``--only`` gives a partial report and says so). The derivations are in
:mod:`report.derivations`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from report import derivations
from report.document import Heading, Paragraph, Table
from report.outline import FigureSlot, Slot, render


@attrs.frozen(kw_only=True)
class Inputs:
    """What the report is built from: the job's result, its gradient checks and the tuned-MLP seed sweep."""

    experiments: Mapping[str, Any]
    outcomes: Mapping[str, Any]
    checks: Mapping[str, Any]
    env: Mapping[str, Any]
    figures: Mapping[str, str]
    sweep: Mapping[str, Any] | None = None


def intro(inputs: Inputs) -> list:
    """The title and how the report was made (command, seed, processes, load; quick or partial)."""
    env = inputs.env
    quick = " **Quick mode: a few epochs per experiment; the numbers below are not the assignment's.**" \
        if env["quick"] else ""
    missing = [i for i in inputs.experiments if i not in inputs.outcomes]
    partial = f" Only a subset ran (`--only`); not in this report: {', '.join(missing)}." if missing else ""
    return [Heading("Homework 7: computation graphs, backpropagation and neural networks — with fgraph", 1),
            Paragraph(
        f"Written by `{env['command']}` (seed {env['seed']}, {env['jobs']} worker process(es), one BLAS thread): "
        f"every experiment of the assignment with its exact settings — per-example SGD with a fresh shuffle each "
        f"epoch (`fgraph.train.fit`, batch size 1, seeded) unless said otherwise. {backend_sentence(env)} The same "
        f"seed gives the same numbers bit for bit; only the times vary. Experiments took "
        f"{env['experiments_wall_seconds']:.1f} s of wall time on {env['cpu_count']} cores (load average "
        f"{env['load_average_before'][0]:.2f} before, {env['load_average_after'][0]:.2f} after: the machine is "
        f"shared, so times are noisy).{quick}{partial}")]


def backend_sentence(env: Mapping) -> str:
    """Which backend ran every fit, and what that means for the numbers and the times."""
    if env["backend"] == "jax":
        return ("Every fit ran on fgraph's JAX backend (`--backend jax`: each epoch one compiled `lax.scan` of the "
                "same program); its numbers equal the NumPy backend's to rounding, and its times include "
                "compiling each fit's epoch. The trained parameters are evaluated with NumPy.")
    return f"Every fit ran on fgraph's {env['backend']} backend."


def table_rows(inputs: Inputs) -> tuple:
    """A row per experiment that ran and has one; rows of one metric together (in order of first appearance),
    so that their numbers compare down a column."""
    rows = []
    for exp_id, o in inputs.outcomes.items():
        exp = inputs.experiments[exp_id]
        if exp.section is not None and exp.section.row is not None:
            rows.append((exp.label, exp.section.row(exp, o, inputs), f"{o.seconds:.1f}"))
    metrics = list(dict.fromkeys(row.metric for _, row, _ in rows))
    rows.sort(key=lambda r: metrics.index(r[1].metric))
    return tuple((label, r.metric, r.train, r.test, r.reference, seconds) for label, r, seconds in rows)


def results_table(inputs: Inputs) -> list:
    """The results beside the published values."""
    return [Heading("Results", 2),
            Paragraph("Average square error (MSE) on the 100 training and 900 test points of the regression "
                      "problem; for the classifier the mean negative log-likelihood on the 300 training points "
                      "and the accuracy on the 200 test points. Published: the values the assignment's "
                      "published solutions report."),
            Table(("experiment", "metric", "ours: train", "ours: test", "published", "seconds"), table_rows(inputs),
                  "llrrlr"),
            Paragraph("Where ours and the published values differ: after a fixed number of epochs SGD stops at a "
                      "point that depends on the random draws — the MLPs' initial parameters and the order of the "
                      "examples in every epoch (ours from fgraph's seeded shuffles, the published ones from NumPy's "
                      "global generator). Ridge with l2_reg = 1 has converged after 2000 epochs and agrees to three "
                      "digits; ridge with l2_reg = 0 after 500 epochs and the MLPs have not converged, so they land "
                      "a few hundredths either side of the published values, and another `--seed` moves them "
                      "within that spread.")]


def timing(inputs: Inputs) -> list:
    """The seconds of every experiment, the load and the environment."""
    env = inputs.env
    rows = tuple((i, f"{o.seconds:.1f}") for i, o in inputs.outcomes.items())
    return [
        Heading("Timing and environment", 2),
        Table(("experiment", "seconds"), rows),
        Paragraph(f"Experiments: {env['experiments_wall_seconds']:.1f} s of wall time in {env['jobs']} worker "
                  f"process(es), every fit on the {env['backend']} backend "
                  f"(the sum above exceeds it when they overlap; when ridge_l2_1 and minibatch_ridge "
                  f"run together, the batch-1 arm of the minibatch experiment reuses the ridge fit, the identical "
                  f"fold). Load average {env['load_average_before'][0]:.2f} before and "
                  f"{env['load_average_after'][0]:.2f} after, on {env['cpu_count']} cores. Python "
                  f"{env['versions']['python']}, NumPy {env['versions']['numpy']}, fgraph {env['versions']['fgraph']}, "
                  f"{env['platform']}."),
    ]


#: The report, part by part: fixed parts are functions of the inputs; a
#: :class:`Slot` shows the experiments whose section names its key.
OUTLINE = (
    intro,
    results_table,
    Slot(key="2", before=(Heading("2 The framework: linear regression", 2),)),
    derivations.ridge,
    Slot(key="3.3", bullets=True, before=(Heading("3.3 Ridge regression: training error", 3),),
         after=(Paragraph("The penalty trades training error for a smoother fit: with l2_reg = 1 the fit is "
                          "shrunk towards a flat function and misses the target's jumps; with l2_reg = 0 the "
                          "400 step features follow the training data closely."),)),
    FigureSlot(key="ridge", caption="Prediction functions of the ridge (and linear) fits, the target "
                                    "and the training data over [0, 1), as in the assignment's plot."),
    FigureSlot(key="ridge_graph", caption="The ridge graph (l2_reg = 1) drawn by `fgraph.viz.draw`, evaluated on the "
                                          "100 training points at the fitted parameters: each box gives the node's "
                                          "per-example shape (B × for the batch axis) and the norms of its value and "
                                          "of the objective's gradient. `w` is used twice: two arrows leave it, each "
                                          "labelled with the contribution that use sends back, the prediction's "
                                          "2 mean((x·w + b - y) x) and the penalty's 2 λ w, which "
                                          "`fgraph.contributions` returns and whose sum is w's gradient."),
    Slot(key="3.4", before=(Heading("3.4 [Optional] Minibatch ridge regression", 3),)),
    FigureSlot(key="minibatch", caption="Minibatch ridge regression: time per epoch and speed-up over batch size 1 "
                                        "(left); training MSE after each epoch against wall time, step scaled with "
                                        "the batch, and the equal-time budget (right)."),
    derivations.affine,
    derivations.elementwise,
    derivations.mlp,
    Slot(key="4.2", bullets=True,
         after=(Paragraph("On the scalar input the network has to build its own features from 10 tanh "
                          "units, and with tiny initial weights and plain SGD it finds only a smooth curve "
                          "through the data; given the 400 step features it fits about as well as ridge "
                          "without penalty."),)),
    Slot(key="4.2.4"),
    FigureSlot(key="mlp", caption="Prediction functions of the MLP fits (assignment's settings and the "
                                  "tuned scalar MLP), the target and the training data."),
    FigureSlot(key="mlp_graph", caption="The MLP on the 400 features drawn by `fgraph.viz.draw` at its fitted "
                                        "parameters on the training set: the shapes of W1 (10 × 400), the hidden "
                                        "layer and the output, each node's value and gradient norms, and on each "
                                        "arrow the norm of the gradient that use sends back, which is what the "
                                        "backward pass computes, right to left."),
    derivations.classifier,
    Slot(key="4.3"),
    FigureSlot(key="regions", caption="The classifier's decision regions with the test points "
                                      "(outlined) and the training points (faint)."),
    FigureSlot(key="curves", caption="Learning curves of every run.", before=(
        Heading("Learning curves", 2),
        Paragraph("The mean training objective of every epoch (each step's objective measured before its "
                  "update, as `fit`'s history records it), log scale. For ridge it includes the penalty."))),
    derivations.checks_table,
    timing,
)


def build(result, sweep=None) -> list:
    """The whole report as a list of blocks, from a :class:`jobs.JobResult` whose extras hold "checks"."""
    inputs = Inputs(experiments=result.experiments, outcomes=result.outcomes, checks=result.extras["checks"],
                    env=result.environment, figures=result.figures, sweep=sweep)
    return render(OUTLINE, inputs)
