"""The homework's experiments: one value each, in the report's order; and the homework job.

Each :class:`jobs.Experiment` holds the assignment's exact settings (per-example
SGD, a fresh shuffle each epoch from ``fgraph.train.fit``'s seeded batches)
and what ``--quick`` overrides, its runner, the figures that show it, its
section of the report and the published band of its result. To add an
experiment, add a value here.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from assignment.checks import gradient_checks
from assignment.classifier import run_classifier
from assignment.figures import PLOTS
from assignment.minibatch import run_minibatch
from assignment.minibatch import summary as minibatch_summary
from assignment.regression import run_regression
from assignment.sweep import load_sweep
from assignment.tuned import TUNED, run_tuned, within
from fgraph.backends import BACKENDS
from jobs import Experiment, JobResult, JobSpec, registry
from report import content, sections

EXPERIMENTS = registry(
    Experiment(id="linear", title="Linear regression, 400 features", label="Linear regression (400 features)",
               run=run_regression, settings={"model": "linear", "input": "features", "lr": 1e-3, "epochs": 1000},
               quick={"epochs": 3}, cost=1.2, plots=("ridge", "curves"), section=sections.LINEAR),
    Experiment(id="ridge_l2_1", title="Ridge regression, l2_reg = 1", label="Ridge, l2_reg = 1",
               run=run_regression,
               settings={"model": "ridge", "l2_reg": 1.0, "input": "features", "lr": 5e-5, "epochs": 2000},
               quick={"epochs": 5}, cost=4, group="ridge", plots=("ridge", "curves", "ridge_graph"),
               section=sections.RIDGE,
               published={"train_mse": (0.199, 0.201)}),
    Experiment(id="ridge_l2_0", title="Ridge regression, l2_reg = 0", label="Ridge, l2_reg = 0",
               run=run_regression,
               settings={"model": "ridge", "l2_reg": 0.0, "input": "features", "lr": 5e-4, "epochs": 500},
               quick={"epochs": 3}, cost=1, plots=("ridge", "curves"), section=sections.RIDGE,
               published={"train_mse": (0.043, 0.044)}),
    Experiment(id="minibatch_ridge", title="Minibatch ridge regression, l2_reg = 1",
               label="Minibatch ridge, l2_reg = 1", run=run_minibatch,
               settings={"l2_reg": 1.0, "batch_sizes": [1, 5, 10, 25, 100], "base_lr": 5e-5, "epochs": 2000,
                         "same_step_batch_sizes": [100], "equal_time_epochs_of_batch_1": 100},
               quick={"epochs": 4, "equal_time_epochs_of_batch_1": 2}, cost=4,
               group="ridge",  # its batch-size-1 arm is ridge_l2_1's fit: one task fits it once
               plots=("minibatch", "curves"), section=sections.MINIBATCH, summary=minibatch_summary),
    Experiment(id="mlp_no_features", title="MLP on the scalar x",
               label="MLP on the scalar x (assignment's settings)", run=run_regression,
               settings={"model": "mlp", "input": "scalar", "hidden_units": 10, "init_scale": 5e-4, "lr": 1e-3,
                         "epochs": 5000},
               quick={"epochs": 5}, cost=17, plots=("mlp", "curves"), section=sections.MLP,
               published={"train_mse": (0.238, 0.261)}),
    Experiment(id="mlp_features", title="MLP on the 400 features", label="MLP on the 400 features",
               run=run_regression,
               settings={"model": "mlp", "input": "features", "hidden_units": 10, "init_scale": 0.01, "lr": 5e-4,
                         "epochs": 500},
               quick={"epochs": 3}, cost=2.1, plots=("mlp", "curves", "mlp_graph"), section=sections.MLP,
               published={"train_mse": (0.040, 0.050)}),
    Experiment(id="mlp_scalar_tuned", title="Tuned MLP on the scalar x", label="Tuned MLP on the scalar x",
               run=run_tuned, settings=dict(TUNED), quick={"phases": [[0.01, 20], [0.001, 10]]}, cost=4.2,
               plots=("mlp", "curves"), section=sections.TUNED,
               derive=partial(within, reference="mlp_features", factor=1.1)),  # the goal of 4.2's optional part
    Experiment(id="multiclass", title="MLP classifier (softmax + NLL) on the blobs",
               label="MLP classifier on the blobs", run=run_classifier,
               settings={"hidden_units": 10, "init_scale": 0.01, "lr": 0.005, "epochs": 1000},
               quick={"epochs": 3}, cost=30, plots=("regions", "curves"), section=sections.CLASSIFIER,
               published={"test_accuracy": (1.0, 1.0)}),
)


def homework_report(result: JobResult, out: Path) -> list:
    """The report's blocks; it quotes the seed sweep in ``out`` if that tested this very tuned config."""
    return content.build(result, load_sweep(out, result.environment["quick"], result.experiments))


HOMEWORK = JobSpec(title="fgraph — Homework 7 report", program="scripts/homework.py", experiments=EXPERIMENTS,
                   plots=PLOTS, report=homework_report, extras={"checks": gradient_checks},
                   backends=BACKENDS)  # every runner passes context.backend to fit
