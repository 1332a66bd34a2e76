"""The gallery's models: one experiment each, in the page's order; and the gallery job.

Each :class:`jobs.Experiment` holds its model's preset from
:mod:`models.presets` as settings (the constructor and its keyword
arguments, the optimiser, epochs, batch size and seed), what ``--quick``
overrides (a tiny subset of the training data, one or two epochs), its
runner, the figures that show it and the issue's target. To add a model,
add a value here.
"""

from __future__ import annotations

import json
from functools import partial

from fgraph.backends import BACKENDS
from jobs import Experiment, JobSpec, registry
from models.presets import PRESETS
from showcase import report
from showcase.figures import PLOTS
from showcase.runners import at_least, no_worse_than_ar, run_digits, run_forecaster, summary

#: What ``--quick`` changes: the first 64 training examples, one epoch (two for the forecaster).
QUICK = {"epochs": 1, "train_examples": 64}


def from_preset(name: str) -> dict:
    """The settings of ``models.presets.PRESETS[name]`` as plain JSON values: the model, its
    constructor's kwargs, the optimiser, the epochs, the batch size and the seed."""
    p = PRESETS[name]
    return {"preset": name, "model": p.model, "kwargs": json.loads(json.dumps(dict(p.kwargs))),
            "optimizer": {"name": p.optimizer, **p.optimizer_kwargs}, "epochs": p.epochs,
            "batch_size": p.batch_size, "seed": p.seed}


EXPERIMENTS = registry(
    Experiment(
        id="cnn", title="Convolutional network on the digits", label="Convolutional network",
        run=run_digits, settings=from_preset("cnn_classifier"), quick=QUICK, cost=4,
        plots=("curves", "confusion", "filters"),
        section="two stages of [3×3 convolution (padding 1) → relu → 2×2 max-pooling] turn the 8×8 image into "
                "maps of 2×2, flattened for a dense softmax layer.",
        derive=partial(at_least, metric="test_accuracy", bound=PRESETS["cnn_classifier"].target), summary=summary),
    Experiment(
        id="rnn", title="Recurrent network over the rows of the digits", label="Recurrent network (rows)",
        run=run_digits, settings=from_preset("rnn_classifier"), quick=QUICK, cost=3, plots=("curves", "unrolled"),
        section="an Elman network reads the image one row at a time (8 steps of 8 pixels), "
                "h_t = tanh(W_x x_t + W_h h_{t-1} + b), with its weights tied across the steps; the last state "
                "feeds a dense softmax layer. Its gradient is backpropagation through time: the ordinary backward "
                "pass of the unrolled graph.",
        derive=partial(at_least, metric="test_accuracy", bound=PRESETS["rnn_classifier"].target), summary=summary),
    Experiment(
        id="resnet", title="Residual network on the digits", label="Residual network",
        run=run_digits, settings=from_preset("resnet_classifier"), quick=QUICK, cost=3, plots=("curves",),
        section="a convolutional stem, then residual stages h ↦ maxpool(relu(h + conv₂(relu(conv₁(h))))) whose "
                "second convolution starts at zero (each block starts as the identity), and a dense softmax "
                "layer.",
        derive=partial(at_least, metric="test_accuracy", bound=PRESETS["resnet_classifier"].target),
        summary=summary),
    Experiment(
        id="sunspots", title="Recurrent forecaster of the yearly sunspot numbers", label="Recurrent forecaster",
        run=run_forecaster, settings={**from_preset("rnn_forecaster"), "ar_order": 9},
        quick={**QUICK, "epochs": 2}, cost=1, plots=("curves", "forecast"),
        section="an Elman network reads the previous years one at a time (standardised with the training "
                "years' mean and deviation) and a linear read-out of its last state forecasts the next year; "
                "trained on 1700–1949 with the squared error, tested on 1950–2008 against the AR(9) least-squares "
                "baseline fitted on the same training years.",
        derive=no_worse_than_ar, summary=summary),
)

GALLERY = JobSpec(title="fgraph gallery: structured networks", program="scripts/gallery.py", experiments=EXPERIMENTS,
                  plots=PLOTS, report=report.build, page="GALLERY.md", pdf=False,
                  backends=BACKENDS)  # every runner passes context.backend to fit
