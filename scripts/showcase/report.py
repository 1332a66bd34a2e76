"""GALLERY.md: the gallery's results table, one paragraph per model, the figures and how it ran.

:func:`build` returns the page as blocks of :mod:`report.document` (rendered
with ``to_markdown``) from a :class:`jobs.JobResult`. Every number comes
from the outcomes; a model that did not run (``--only``) is left out and
the page says so.
"""

from __future__ import annotations

from report.document import Figure, Heading, Paragraph, Table


def optimizer_text(spec: dict) -> str:
    """``{"name": "adam", "lr": 0.01}`` as ``adam(lr=0.01)``."""
    args = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in spec.items() if k != "name")
    return f"{spec['name']}({args})"


def result_text(metrics) -> str:
    """The test metric of an outcome, as the table shows it."""
    if hasattr(metrics, "test_rmse"):
        return f"test RMSE {metrics.test_rmse:.2f} (AR {metrics.ar_rmse:.2f})"
    return f"test accuracy {metrics.test_accuracy:.4f}"


def intro(result) -> list:
    """The title and how the page was made: command, seed, processes, wall time, load."""
    env = result.environment
    quick = (" **Quick mode: a tiny subset of the training data and one or two epochs; these numbers say only "
             "that the pipeline runs.**" if env["quick"] else "")
    missing = [i for i in result.experiments if i not in result.outcomes]
    partial = f" Only a subset ran (`--only`); not on this page: {', '.join(missing)}." if missing else ""
    return [
        Heading("fgraph gallery: structured networks", 1),
        Paragraph(
            f"Written by `{env['command']}` (seed {env['seed']}, {env['jobs']} worker process(es), one BLAS thread). "
            "Every network is built from fgraph's layers by the `models` package and trained by "
            "`fgraph.train.fit`; after every epoch the held-out data is measured (never used to stop or to select). "
            "The same seed gives the same numbers bit for bit; only the times vary. Training took "
            f"{env['experiments_wall_seconds']:.1f} s of wall time on {env['cpu_count']} cores (load average "
            f"{env['load_average_before'][0]:.2f} before, {env['load_average_after'][0]:.2f} after: the machine "
            f"is shared, so times are noisy).{quick}{partial}"),
    ]


def results_table(result) -> list:
    """One row per model: its size, its training, its result against the target, its time."""
    rows = []
    for exp_id, o in result.outcomes.items():
        exp, c, m = result.experiments[exp_id], o.config, o.metrics
        target = "" if o.derived is None else f"{o.derived.target}: {'met' if o.derived.meets_target else 'missed'}"
        rows.append((exp.label, f"{m.num_params:,}",
                     f"{optimizer_text(c['optimizer'])}, batch {c['batch_size']}, {m.epochs} epochs",
                     result_text(m), target, f"{o.timings.train_seconds:.1f}"))
    return [Heading("Results", 2),
            Table(header=("model", "params", "training", "result", "target", "train s"), rows=tuple(rows),
                  align="lrlllr")]


def models_section(result) -> list:
    """A paragraph per model: what it computes (the registry's ``section`` text) and how it is built."""
    blocks = [Heading("The models", 2)]
    for exp_id, o in result.outcomes.items():
        exp = result.experiments[exp_id]
        kwargs = ", ".join(f"{k}={v!r}" for k, v in o.config["kwargs"].items())
        blocks.append(Paragraph(f"**{exp.label}** (`{o.config['constructor']}({kwargs})`, "
                                f"{o.config['train_examples']} training examples): {exp.section}"))
    return blocks


#: The caption of each figure, by its key in the job's plots.
CAPTIONS = {
    "curves": "Learning curves: the mean training objective of every epoch (left axis) and the held-out "
              "metric after every epoch (right axis).",
    "confusion": "The convolutional network's confusion matrix on the test digits (rows: the true digit).",
    "filters": "The convolutional network's first-layer kernels after training (red positive, blue negative).",
    "unrolled": "The recurrent network's graph unrolled over the 8 rows (drawn with 8 hidden units): one W_x, "
                "one W_h and one b, drawn once, each with a use per step; backpropagation through time adds "
                "those uses' contributions.",
    "forecast": "The recurrent forecaster and the AR baseline against the observed sunspot numbers of the "
                "test years, each forecast made from the observed previous years.",
}


def figures(result) -> list:
    """The figures that were drawn, each with its caption."""
    return [Heading("Figures", 2)] + [Figure(filename, CAPTIONS[key]) for key, filename in result.figures.items()]


def environment(result) -> list:
    """The library versions and the machine."""
    env = result.environment
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v is not None)
    return [Heading("Environment", 2), Paragraph(f"{env['platform']}, {env['cpu_count']} cores; {versions}.")]


def build(result, out=None) -> list:
    """The whole page, as blocks."""
    return [*intro(result), *results_table(result), *models_section(result), *figures(result),
            *environment(result)]
