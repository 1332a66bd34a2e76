"""How the report presents each kind of experiment: its entry in a slot and its row in the results table.

The :class:`report.outline.Section` values at the end are what the
registry's experiments name; every function reads the experiment's typed
outcome (``outcome.metrics``, ``.timings``, ``.config``, ``.derived``).
"""

from __future__ import annotations

import numpy as np

from report.derivations import tests_line
from report.document import Equations, Paragraph, Table
from report.numbers import band, f4
from report.outline import Row, Section

# ------------------------------------------------------------------ rows


def mse_row(exp, o, inputs) -> Row:
    """Training and test MSE beside the published training MSE."""
    m = o.metrics
    return Row("train / test MSE", f4(m.train_mse), f4(m.test_mse), band(exp, "train_mse"))


def tuned_row(exp, o, inputs) -> Row:
    """Training and test MSE beside the goal (1.1 × the MLP on features), when it ran."""
    if o.derived is None:
        return mse_row(exp, o, inputs)
    m = o.metrics
    return Row("train / test MSE", f4(m.train_mse), f4(m.test_mse),
               f"≤ {f4(o.derived.target_train_mse)} (goal: 1.1 × ours on features)")


def minibatch_row(exp, o, inputs) -> Row:
    """The range of the training MSE over the batch sizes."""
    m = o.metrics
    return Row(f"train MSE, batch {m.batch_sizes[0]} … {m.batch_sizes[-1]}",
               f"{f4(min(m.train_mse))}–{f4(max(m.train_mse))}", "—", "(speed-up in 3.4)")


def classifier_row(exp, o, inputs) -> Row:
    """Training NLL and test accuracy beside the published accuracy."""
    m = o.metrics
    return Row("train NLL / test accuracy", f4(m.train_nll), f"{m.test_accuracy:.3f}",
               f"accuracy {band(exp, 'test_accuracy')}")


# --------------------------------------------------------------- entries


def linear(exp, o, inputs) -> list:
    """Section 2: the provided example rebuilt with fgraph."""
    m, c = o.metrics, o.config
    return [Paragraph(f"The provided example, rebuilt as an fgraph graph (`models.linear_regression`: "
                      f"`vector_scalar_affine` then `squared_l2_distance`) and trained with {c['optimizer']} for "
                      f"{c['epochs']} epochs: training MSE {f4(m.train_mse)}, test MSE {f4(m.test_mse)}. "
                      f"Without a penalty, 400 features and 100 examples, it fits the training noise; the test "
                      f"error shows it.")]


def ridge(exp, o, inputs) -> str:
    """A bullet of 3.3: a ridge run and its training error beside the published one."""
    m, c = o.metrics, o.config
    return (f"{exp.label}, {c['optimizer']}, {c['epochs']} epochs, w = b = 0 at the start: "
            f"**average square error on the training set {f4(m.train_mse)}** (published "
            f"{band(exp, 'train_mse')}); test {f4(m.test_mse)}.")


def mlp(exp, o, inputs) -> str:
    """A bullet of 4.2: an MLP with the assignment's settings and its training error beside the published one."""
    m, c = o.metrics, o.config
    s = c["model"]
    return (f"{exp.label}: {s['hidden_units']} hidden units, init_scale {s['init_scale']:g}, "
            f"{c['optimizer']}, {c['epochs']} epochs: **average training error {f4(m.train_mse)}** "
            f"(published {band(exp, 'train_mse')}); test {f4(m.test_mse)}.")


def classifier(exp, o, inputs) -> list:
    """4.3, point 3: the classifier and its results."""
    m, c = o.metrics, o.config
    s = c["model"]
    return [Paragraph(
        f"**3. The classifier** (`models.mlp_classifier`): p = softmax(W₂ tanh(W₁x + b₁) + b₂), "
        f"objective −log p_y; {s['hidden_units']} hidden units; W₁, b₁ drawn as "
        f"{s['init_scale']:g} × a standard normal and W₂, b₂ as a standard normal (as the assignment draws "
        f"them); {c['optimizer']}, {c['epochs']} epochs on the {c['train_examples']} training blobs. **Training "
        f"NLL {m.train_nll:.2e}, test accuracy {m.test_accuracy:.3f}** (published {band(exp, 'test_accuracy')}; "
        f"training accuracy {m.train_accuracy:.3f}, test NLL {m.test_nll:.2e}).")]


def _tuned_result(o) -> str:
    c, m, derived = o.config, o.metrics, o.derived
    verdict = (f" The goal, within 10% of the MLP on features ({f4(derived.target_train_mse / 1.1)} here), "
               f"is ≤ {f4(derived.target_train_mse)}: **{'met' if derived.meets_target else 'missed'}**."
               if derived else "")
    phases = ", then ".join(f"{int(n)} steps at lr {lr:g}" for lr, n in c["phases"])
    return (f"**4. [Optional] A scalar-input MLP that fits as well as the featurized one.** Configuration: "
            f"{len(c['hidden_units'])} tanh hidden layers of {', '.join(map(str, c['hidden_units']))} units; input "
            f"scaled as x′ = k (x − 1/2) with k = {c['input_scale']:g}; weights He-normal "
            f"(N(0, 2/fan_in)); biases of the first hidden layer uniform on "
            f"(−k/2, k/2), so that the tanh transitions −bᵢ/wᵢ spread over the inputs; every other bias 0; "
            f"Adam on the whole training set (batch {c['batch_size']}): {phases} (a fresh Adam per phase). Result: "
            f"**training MSE {f4(m.train_mse)}** in {o.seconds:.1f} s (test MSE {f4(m.test_mse)}).{verdict}")


def _sweep(sweep) -> list:
    if not sweep:
        return []
    met, n = sweep["met"], len(sweep["seeds"])
    worst = max(r["train_mse"] for r in sweep["runs"])
    slow = max(r["seconds"] for r in sweep["runs"])
    return [Paragraph(f"Reliability (`--sweep-tuned {n}`): the goal was met on **{met} of {n} seeds** (seeds "
                      f"0–{n - 1}, each against the MLP on features of the same seed); worst training MSE {f4(worst)}, "
                      f"slowest run {slow:.1f} s.")]


def tuned(exp, o, inputs) -> list:
    """4.2, point 4: the tuned scalar MLP, the goal, the seed sweep if one was run, and why it works."""
    return [Paragraph(_tuned_result(o)), *_sweep(inputs.sweep), Paragraph(
        "What made the difference: the scalar input has to be cut into many sharp pieces, as the 400 step "
        "features do. Scaling the input and spreading the first layer's biases gives steep tanh units whose "
        "transitions cover [0, 1) from the start; depth lets later layers combine them; Adam's per-parameter "
        "step sizes cope with the very different gradient scales of the layers, and a smaller final step "
        "settles the fit. The price is visible on the test set: fitting the training set this closely means "
        "fitting its noise (noise variance ≈ 0.11), so the test error is worse than the smoother fits'.")]


def _minibatch_table(m, t) -> Table:
    rows = tuple((str(b), str(m.steps_per_epoch[i]), f"{m.lr[i]:g}", f"{t.seconds_per_epoch[i] * 1e3:.2f}",
                  f"{t.speedup[i]:.1f}×", f4(m.train_mse[i]), str(t.equal_time_epochs[i]),
                  f4(t.train_mse_equal_time[i])) for i, b in enumerate(m.batch_sizes))
    return Table(("batch size", "steps/epoch", "lr", "ms/epoch", "speed-up", f"train MSE, {m.epochs} epochs",
                  "epochs in the budget", "train MSE, equal time"), rows)


def _minibatch_method(m, t, c) -> Paragraph:
    E = m.epochs
    return Paragraph(
        f"How it was measured. Every batch size B is trained for the same {E} epochs (equal epochs) "
        f"with the step scaled with the batch, lr = {c['base_lr']:g} × B (the linear scaling rule: an "
        f"epoch of n/B steps of size lr·B moves about as far as an epoch of n single-example steps; "
        f"B = 1 is exactly the assignment's run). Time per epoch is the wall time of `fit` divided by its "
        f"epochs; the speed-up is batch 1's time per epoch over batch B's. Equal wall time: each B gets "
        f"the time batch 1 needed for {c['equal_time_epochs_of_batch_1']} epochs "
        f"({t.equal_time_budget_seconds:.2f} s here) and its training MSE is read after the last epoch it "
        f"finished within that budget (at most {E}). Equal-time numbers come from the clock, so they vary from "
        f"run to run.{_compiled(t, c)}")


def _compiled(t, c) -> str:
    """On the JAX backend: what its times include that NumPy's do not."""
    if c.get("backend") != "jax":
        return ""
    first = ", ".join(f"{s:.2f}" for s in t.first_epoch_seconds)
    return (f" On the JAX backend (this run) every fit compiles its own epoch before the first one runs (first "
            f"epochs: {first} s), and each epoch is one call from Python, so the times include the compilation "
            f"and the speed-ups are not NumPy's.")


def _minibatch_answer(m, t, c) -> Paragraph:
    best = int(np.argmax(t.speedup))
    same = "; ".join(f"batch {b} with lr {c['base_lr']:g}: {f4(v)} after {m.epochs} epochs (scaled step: "
                     f"{f4(m.train_mse[m.batch_sizes.index(b)])})"
                     for b, v in zip(m.same_step_batch_sizes, m.train_mse_same_step))
    return Paragraph(
        f"Answer. Minibatching makes an epoch up to **{t.speedup[best]:.1f}× faster** (batch "
        f"{m.batch_sizes[best]}): an epoch costs n/B steps, so the fixed cost of a step (one pass "
        f"over the graph) is paid n/B times instead of n, and the work inside a step becomes one matrix "
        f"product. With the step scaled with B, equal epochs reach the same training error "
        f"({f4(min(m.train_mse))}–{f4(max(m.train_mse))}) in a fraction of the time, and in equal "
        f"wall time the larger batches get much further. The step must grow with the batch for this: "
        f"{same}, because a batch of B takes B times fewer steps per epoch.")


def minibatch(exp, o, inputs) -> list:
    """3.4: one graph for every batch size, how the speed-up was measured, the table and the answer."""
    m, t, c = o.metrics, o.timings, o.config
    return [
        Paragraph("fgraph's inputs declare per-example shapes and data may carry one leading batch axis, so the "
                  "same ridge graph takes a matrix X with one row per example (`x` of shape (B, 400)): the "
                  "ValueNode x becomes a matrix X, the affine node becomes one matrix-vector product, the loss node "
                  "averages the per-example losses of the batch and the penalty (parameters only) is added once. "
                  "So every batch size minimises the same objective:"),
        Equations((r"J_B(w, b) = \frac{1}{B} \sum_{n=1}^{B} (x_n^{\top} w + b - y_n)^2 + \lambda \Vert w \Vert^2,"
                   r"\qquad \nabla_w J_B = \frac{2}{B} X^{\top} r + 2 \lambda w, \quad "
                   r"\frac{\partial J_B}{\partial b} = \frac{2}{B} \sum_n r_n",
                   r"r = X w + b - y \in \mathbb{R}^B")),
        Paragraph(f"{tests_line('minibatch')}"),
        _minibatch_method(m, t, c),
        _minibatch_table(m, t),
        _minibatch_answer(m, t, c),
    ]


# -------------------------------------------------------------- sections

LINEAR = Section(slot="2", entry=linear, row=mse_row)
RIDGE = Section(slot="3.3", entry=ridge, row=mse_row)
MINIBATCH = Section(slot="3.4", entry=minibatch, row=minibatch_row)
MLP = Section(slot="4.2", entry=mlp, row=mse_row)
TUNED = Section(slot="4.2.4", entry=tuned, row=tuned_row)
CLASSIFIER = Section(slot="4.3", entry=classifier, row=classifier_row)
