r"""The report's content: the plots it shows and its text, built from the results.

:func:`make_plots` draws every figure the available experiments allow;
:func:`build` returns the report as blocks (:mod:`report.document`) with one
section per question of the assignment. Only experiments that ran are
reported (``--only`` gives a partial report and says so).

:data:`TESTS` names, for each derivation, the tests in ``tests/`` that check
it numerically; ``tests/test_homework.py`` checks that they exist.
"""

from __future__ import annotations


import numpy as np

from report.document import Bullets, Equations, Figure, Heading, Paragraph, Table

#: For each derivation, the pytest node ids that check it numerically.
TESTS = {
    "penalty": ["tests/test_ops.py::test_vjp_matches_central_differences[l2_norm_penalty]",
                "tests/test_autodiff.py::test_ridge_gradients_match_the_formula_written_by_hand"],
    "sum": ["tests/test_ops.py::test_vjp_matches_central_differences[add]",
            "tests/test_autodiff.py::test_ridge_shared_w_gets_prediction_term_plus_penalty_term",
            "tests/test_autodiff.py::test_a_param_used_k_times_gets_the_sum_of_k_contributions"],
    "minibatch": ["tests/test_autodiff.py::test_a_batch_gives_the_mean_of_its_examples_values_and_gradients",
                  "tests/test_ops.py::test_loss_of_a_batch_is_the_mean_of_its_examples_and_so_is_its_gradient",
                  "tests/test_autodiff.py::test_a_batch_of_one_equals_the_example_to_the_last_bit"],
    "affine": ["tests/test_ops.py::test_vjp_matches_central_differences[affine]",
               "tests/test_autodiff.py::test_mlp_regression_gradients_match_backprop_written_by_hand"],
    "elementwise": ["tests/test_ops.py::test_vjp_matches_central_differences[tanh]",
                    "tests/test_ops.py::test_tanh_vjp_uses_the_stored_output",
                    "tests/test_autodiff.py::test_mlp_regression_gradients_match_backprop_written_by_hand"],
    "mlp": ["tests/test_autodiff.py::test_assignment_graphs_pass_the_whole_graph_gradient_check[mlp_regression]",
            "tests/test_models.py::test_gradients_check_on_the_homework_problem"],
    "softmax": ["tests/test_ops.py::test_vjp_matches_central_differences[softmax]",
                "tests/test_ops.py::test_vjp_matches_central_differences[nll]",
                "tests/test_autodiff.py::test_classifier_gradients_match_softmax_minus_onehot",
                "tests/test_autodiff.py::test_assignment_graphs_pass_the_whole_graph_gradient_check[classifier_nll]"],
}

LABELS = {  # in the report's order (the order of homework.EXPERIMENTS)
    "linear": "Linear regression (400 features)",
    "ridge_l2_1": "Ridge, l2_reg = 1",
    "ridge_l2_0": "Ridge, l2_reg = 0",
    "minibatch_ridge": "Minibatch ridge, l2_reg = 1",
    "mlp_no_features": "MLP on the scalar x (assignment's settings)",
    "mlp_features": "MLP on the 400 features",
    "mlp_scalar_tuned": "Tuned MLP on the scalar x",
    "multiclass": "MLP classifier on the blobs",
}


def f4(v) -> str:
    return f"{v:.4f}"


def g2(v) -> str:
    return f"{v:.1e}"


def pub(published: dict, exp_id: str, metric: str) -> str:
    lo, hi = published.get(exp_id, {}).get(metric, (None, None))
    if lo is None:
        return "—"
    return f"{lo:.3f}" if lo == hi else f"{lo:.3f}–{hi:.3f}"


def tests_line(key: str) -> str:
    return "Checked numerically by " + ", ".join(f"`{t}`" for t in TESTS[key]) + "."


# -------------------------------------------------------------------- plots

#: The figures: key -> (file, function of report.plots, experiments it shows; None = every one).
PLOTS = {
    "ridge": ("ridge_fits.png", "prediction_functions", ("ridge_l2_1", "ridge_l2_0", "linear")),
    "mlp": ("mlp_fits.png", "prediction_functions", ("mlp_no_features", "mlp_features", "mlp_scalar_tuned")),
    "minibatch": ("minibatch.png", "minibatch", ("minibatch_ridge",)),
    "regions": ("decision_regions.png", "decision_regions", ("multiclass",)),
    "curves": ("learning_curves.png", "learning_curves", None),
}


def plots_for(ids) -> dict:
    """The figures a run of experiments ``ids`` can draw: ``{key: (file, function, experiments needed)}``."""
    plans = {}
    for key, (filename, function, shows) in PLOTS.items():
        needs = tuple(i for i in ids if shows is None or i in shows)
        if needs:
            plans[key] = (filename, function, needs)
    return plans


def plot_args(key: str, outcomes: dict, problem, blobs, plot_grid) -> tuple:
    """The arguments (after the path) of the figure ``key``: plain arrays, cheap to send to a worker."""
    shown = [i for i in (PLOTS[key][2] or LABELS) if i in outcomes]
    if key in ("ridge", "mlp"):
        x = plot_grid(problem)
        fits = [(f"{LABELS[i]} (train MSE {f4(outcomes[i]['metrics']['train_mse'])})", outcomes[i]["grid_prediction"])
                for i in shown]
        title = ("Ridge and linear regression on 400 step features" if key == "ridge" else
                 "Multilayer perceptrons (one tanh hidden layer unless tuned)")
        return x, fits, problem.target(x), problem.x_train, problem.y_train, title
    if key == "minibatch":
        o = outcomes["minibatch_ridge"]
        curves = {b: (np.asarray(c["times"]), np.asarray(c["train_mse"])) for b, c in o["curves"].items()}
        return (o["metrics"]["batch_sizes"], o["timings"]["seconds_per_epoch"], o["timings"]["speedup"], curves,
                o["timings"]["equal_time_budget_seconds"])
    if key == "regions":
        o = outcomes["multiclass"]
        r = o["regions"]
        return (r["xx"], r["yy"], r["labels"], blobs.X_train, blobs.y_train, blobs.X_test, blobs.y_test,
                f"Decision regions; test accuracy {o['metrics']['test_accuracy']:.3f}")
    if key == "curves":
        runs = []
        for exp_id in shown:
            o = outcomes[exp_id]
            if exp_id == "minibatch_ridge":
                series = [(f"batch {b}", h) for b, h in o["histories"].items()]
                runs.append((f"{LABELS[exp_id]} (lr = 5e-5 × batch size)", series, "mean objective"))
            else:
                ylabel = "mean NLL" if exp_id == "multiclass" else "mean objective"
                runs.append((LABELS[exp_id], [(exp_id, o["history"])], ylabel))
        return (runs,)
    raise KeyError(key)


# --------------------------------------------------------------------- text


def build(outcomes: dict, checks: dict, env: dict, published: dict, figures: dict, sweep) -> list:
    """The whole report as a list of blocks."""
    o = outcomes
    blocks = [Heading("Homework 7: computation graphs, backpropagation and neural networks — with fgraph", 1)]
    quick = " **Quick mode: a few epochs per experiment; the numbers below are not the assignment's.**" \
        if env["quick"] else ""
    missing = [i for i in LABELS if i not in o]
    partial = f" Only a subset ran (`--only`); not in this report: {', '.join(missing)}." if missing else ""
    blocks.append(Paragraph(
        f"Written by `{env['command']}` (seed {env['seed']}, {env['jobs']} worker process(es), one BLAS thread): "
        f"every experiment of the assignment with its exact settings — per-example SGD with a fresh shuffle each "
        f"epoch (`fgraph.train.fit`, batch size 1, seeded) unless said otherwise. The same seed gives the same "
        f"numbers bit for bit; only the times vary. Experiments took {env['experiments_wall_seconds']:.1f} s of wall "
        f"time on {env['cpu_count']} cores (load average {env['load_average_before'][0]:.2f} before, "
        f"{env['load_average_after'][0]:.2f} after: the machine is shared, so times are noisy).{quick}{partial}"))
    blocks += results_table(o, published)
    blocks += section_linear(o)
    blocks += section_ridge(o, checks, figures)
    blocks += section_minibatch(o, figures)
    blocks += section_affine(checks)
    blocks += section_elementwise(checks)
    blocks += section_mlp(o, checks, figures, sweep)
    blocks += section_classifier(o, checks, figures)
    blocks += section_curves(figures)
    blocks += section_checks(checks)
    blocks += section_timing(o, env)
    return blocks


def results_table(o: dict, published: dict) -> list:
    rows = []
    for exp_id in ("linear", "ridge_l2_1", "ridge_l2_0", "mlp_no_features", "mlp_features", "mlp_scalar_tuned"):
        if exp_id in o:
            m = o[exp_id]["metrics"]
            if exp_id == "mlp_scalar_tuned" and "derived" in o[exp_id]:
                ref = f"≤ {f4(o[exp_id]['derived']['target_train_mse'])} (goal: 1.1 × ours on features)"
            else:
                ref = pub(published, exp_id, "train_mse")
            rows.append((LABELS[exp_id], "train / test MSE", f4(m["train_mse"]), f4(m["test_mse"]), ref,
                         f"{o[exp_id]['timings']['seconds']:.1f}"))
    if "minibatch_ridge" in o:
        mb = o["minibatch_ridge"]
        mse = mb["metrics"]["train_mse"]
        rows.append((LABELS["minibatch_ridge"], "train MSE, batch 1 … 100",
                     f"{f4(min(mse))}–{f4(max(mse))}", "—", "(speed-up in 3.4)", f"{mb['timings']['seconds']:.1f}"))
    if "multiclass" in o:
        m = o["multiclass"]["metrics"]
        rows.append((LABELS["multiclass"], "train NLL / test accuracy", f4(m["train_nll"]), f"{m['test_accuracy']:.3f}",
                     f"accuracy {pub(published, 'multiclass', 'test_accuracy')}",
                     f"{o['multiclass']['timings']['seconds']:.1f}"))
    return [Heading("Results", 2),
            Paragraph("Average square error (MSE) on the 100 training and 900 test points of the regression "
                      "problem; for the classifier the mean negative log-likelihood on the 300 training points "
                      "and the accuracy on the 200 test points. Published: the values the assignment's "
                      "published solutions report."),
            Table(("experiment", "metric", "ours: train", "ours: test", "published", "seconds"), tuple(rows),
                  "llrrlr"),
            Paragraph("Where ours and the published values differ: after a fixed number of epochs SGD stops at a "
                      "point that depends on the random draws — the MLPs' initial parameters and the order of the "
                      "examples in every epoch (ours from fgraph's seeded shuffles, the published ones from NumPy's "
                      "global generator). Ridge with l2_reg = 1 has converged after 2000 epochs and agrees to three "
                      "digits; ridge with l2_reg = 0 after 500 epochs and the MLPs have not converged, so they land "
                      "a few hundredths either side of the published values, and another `--seed` moves them "
                      "within that spread.")]


def section_linear(o: dict) -> list:
    if "linear" not in o:
        return []
    m = o["linear"]["metrics"]
    c = o["linear"]["config"]
    return [Heading("2 The framework: linear regression", 2),
            Paragraph(f"The provided example, rebuilt as an fgraph graph (`models.linear_regression`: "
                      f"`vector_scalar_affine` then `squared_l2_distance`) and trained with {c['optimizer']} for "
                      f"{c['epochs']} epochs: training MSE {f4(m['train_mse'])}, test MSE {f4(m['test_mse'])}. "
                      f"Without a penalty, 400 features and 100 examples, it fits the training noise; the test "
                      f"error shows it.")]


def section_ridge(o: dict, checks: dict, figures: dict) -> list:
    formula, op = checks["formula_max_abs_diff"], checks["op_max_rel_error"]
    blocks = [
        Heading("3 Ridge regression", 2),
        Heading("3.1 L2NormPenaltyNode", 3),
        Paragraph("The node computes P = λ‖w‖² = λ Σₖ wₖ² (`fgraph.l2_norm_penalty(w, l2_reg)`, with λ a static float "
                  "of the node). Its backward step multiplies the incoming ∂J/∂P by the local derivative:"),
        Equations((r"\frac{\partial P}{\partial w_i} = 2 \lambda w_i \quad\Rightarrow\quad "
                   r"\frac{\partial J}{\partial w} = \frac{\partial J}{\partial P}\, 2 \lambda w",)),
        Paragraph(f"{tests_line('penalty')} This run: max |VJP − formula| = "
                  f"{g2(formula['d(l2 |w|^2)/dw = 2 l2 w'])}; `fgraph.check_op` against central differences: "
                  f"{g2(op['l2_norm_penalty'])}."),
        Heading("3.2 SumNode", 3),
        Paragraph("s = a + b has ∂s/∂a = ∂s/∂b = 1, so both inputs receive "
                  "the incoming gradient unchanged (`fgraph.add`; a broadcast input gets it summed back to its "
                  "shape):"),
        Equations((r"\frac{\partial J}{\partial a} = \frac{\partial J}{\partial s}, \qquad "
                   r"\frac{\partial J}{\partial b} = \frac{\partial J}{\partial s}",)),
        Paragraph("In ridge regression w has two outgoing edges (prediction and penalty). Backpropagation adds "
                  "the contributions of both uses; fgraph merges the per-use gradients with a dictionary merge that "
                  "adds:"),
        Equations((r"J = (w^{\top} x + b - y)^2 + \lambda \Vert w \Vert^2:\quad "
                   r"\frac{\partial J}{\partial w} = 2 (w^{\top} x + b - y)\, x + 2 \lambda w, \qquad "
                   r"\frac{\partial J}{\partial b} = 2 (w^{\top} x + b - y)",)),
        Paragraph(f"{tests_line('sum')} This run: `check_op` of `add`: {g2(op['add'])}; whole ridge graph "
                  f"(`check_grads`, 10 training examples): "
                  f"{g2(checks['model']['ridge (l2_reg 1), 10 examples']['max_rel_error'])}."),
    ]
    if any(i in o for i in ("ridge_l2_1", "ridge_l2_0")):
        blocks.append(Heading("3.3 Ridge regression: training error", 3))
        items = []
        for exp_id, pubv in (("ridge_l2_1", "0.199–0.201"), ("ridge_l2_0", "0.043–0.044")):
            if exp_id in o:
                m, c = o[exp_id]["metrics"], o[exp_id]["config"]
                items.append(f"{LABELS[exp_id]}, {c['optimizer']}, {c['epochs']} epochs, w = b = 0 at the start: "
                             f"**average square error on the training set {f4(m['train_mse'])}** (published "
                             f"{pubv}); test {f4(m['test_mse'])}.")
        blocks.append(Bullets(tuple(items)))
        blocks.append(Paragraph("The penalty trades training error for a smoother fit: with l2_reg = 1 the fit is "
                                "shrunk towards a flat function and misses the target's jumps; with l2_reg = 0 the "
                                "400 step features follow the training data closely."))
    if "ridge" in figures:
        blocks.append(Figure(figures["ridge"], "Prediction functions of the ridge (and linear) fits, the target "
                                               "and the training data over [0, 1), as in the assignment's plot."))
    return blocks


def section_minibatch(o: dict, figures: dict) -> list:
    if "minibatch_ridge" not in o:
        return []
    mb = o["minibatch_ridge"]
    m, t, c = mb["metrics"], mb["timings"], mb["config"]
    E = m["epochs"]
    rows = []
    for i, b in enumerate(m["batch_sizes"]):
        rows.append((str(b), str(m["steps_per_epoch"][i]), f"{m['lr'][i]:g}", f"{t['seconds_per_epoch'][i] * 1e3:.2f}",
                     f"{t['speedup'][i]:.1f}×", f4(m["train_mse"][i]), str(t["equal_time_epochs"][i]),
                     f4(t["train_mse_equal_time"][i])))
    n_eq = c["equal_time_epochs_of_batch_1"]
    best = int(np.argmax(t["speedup"]))
    same = "; ".join(f"batch {b} with lr {c['base_lr']:g}: {f4(v)} after {E} epochs (scaled step: "
                     f"{f4(m['train_mse'][m['batch_sizes'].index(b)])})"
                     for b, v in zip(m["same_step_batch_sizes"], m["train_mse_same_step"]))
    return [
        Heading("3.4 [Optional] Minibatch ridge regression", 3),
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
        Paragraph(f"How it was measured. Every batch size B is trained for the same {E} epochs (equal epochs) "
                  f"with the step scaled with the batch, lr = {c['base_lr']:g} × B (the linear scaling rule: an "
                  f"epoch of n/B steps of size lr·B moves about as far as an epoch of n single-example steps; "
                  f"B = 1 is exactly the assignment's run). Time per epoch is the wall time of `fit` divided by its "
                  f"epochs; the speed-up is batch 1's time per epoch over batch B's. Equal wall time: each B gets "
                  f"the time batch 1 needed for {n_eq} epochs ({t['equal_time_budget_seconds']:.2f} s here) and "
                  f"its training MSE is read after the last epoch it finished within that budget (at most {E}). "
                  f"Equal-time numbers come from the clock, so they vary from run to run."),
        Table(("batch size", "steps/epoch", "lr", "ms/epoch", "speed-up", f"train MSE, {E} epochs",
               "epochs in the budget", "train MSE, equal time"), tuple(rows)),
        Paragraph(f"Answer. Minibatching makes an epoch up to **{t['speedup'][best]:.1f}× faster** (batch "
                  f"{m['batch_sizes'][best]}): an epoch costs n/B steps, so the fixed cost of a step (one pass "
                  f"over the graph) is paid n/B times instead of n, and the work inside a step becomes one matrix "
                  f"product. With the step scaled with B, equal epochs reach the same training error "
                  f"({f4(min(m['train_mse']))}–{f4(max(m['train_mse']))}) in a fraction of the time, and in equal "
                  f"wall time the larger batches get much further. The step must grow with the batch for this: "
                  f"{same}, because a batch of B takes B times fewer steps per epoch."),
        *([Figure(figures["minibatch"], "Minibatch ridge regression: time per epoch and speed-up over batch size 1 "
                                        "(left); training MSE after each epoch against wall time, step scaled with "
                                        "the batch, and the equal-time budget (right).")]
          if "minibatch" in figures else []),
    ]


def section_affine(checks: dict) -> list:
    f, op = checks["formula_max_abs_diff"], checks["op_max_rel_error"]
    return [
        Heading("4 Multilayer perceptron", 2),
        Heading("4.1.1 The affine transformation", 3),
        Paragraph("Let y = Wx + b with W ∈ ℝᵐˣᵈ, x ∈ ℝᵈ, b ∈ ℝᵐ, and J = f(y) with ∂J/∂y known. Entry by entry, "
                  "yᵣ = Σₖ Wᵣₖ xₖ + bᵣ."),
        Paragraph("**1.** Only yᵢ depends on Wᵢⱼ: ∂yᵣ/∂Wᵢⱼ = δᵣᵢ xⱼ (δᵣᵢ = 1 if r = i, else 0), so the "
                  "chain rule's sum keeps one term:"),
        Equations((r"\frac{\partial J}{\partial W_{ij}} = \sum_{r=1}^{m} \frac{\partial J}{\partial y_r} "
                   r"\frac{\partial y_r}{\partial W_{ij}} = \sum_{r=1}^{m} \frac{\partial J}{\partial y_r}\, "
                   r"\delta_{ri}\, x_j = \frac{\partial J}{\partial y_i}\, x_j",)),
        Paragraph("**2.** Entry (i, j) of ∂J/∂W is the product of entry i of the column ∂J/∂y (m × 1) and entry j of "
                  "x: an outer product (m × 1 times 1 × d):"),
        Equations((r"\frac{\partial J}{\partial W} = \frac{\partial J}{\partial y}\, x^{\top} "
                   r"\in \mathbb{R}^{m \times d}",)),
        Paragraph("**3.** ∂yᵣ/∂xᵢ = Wᵣᵢ, so"),
        Equations((r"\frac{\partial J}{\partial x_i} = \sum_{r=1}^{m} \frac{\partial J}{\partial y_r} W_{ri} "
                   r"= \left( W^{\top} \frac{\partial J}{\partial y} \right)_i \quad\Rightarrow\quad "
                   r"\frac{\partial J}{\partial x} = W^{\top} \frac{\partial J}{\partial y}",)),
        Paragraph("**4.** ∂yᵣ/∂bᵢ = δᵣᵢ, so"),
        Equations((r"\frac{\partial J}{\partial b_i} = \sum_{r=1}^{m} \frac{\partial J}{\partial y_r} \delta_{ri} "
                   r"= \frac{\partial J}{\partial y_i} \quad\Rightarrow\quad "
                   r"\frac{\partial J}{\partial b} = \frac{\partial J}{\partial y}",)),
        Paragraph("With a batch (rows xₙᵀ of X, rows gₙᵀ of G = ∂J/∂Y) the same rules sum over examples: "
                  "∂J/∂W = Σₙ gₙ xₙᵀ = GᵀX, ∂J/∂b = Σₙ gₙ, ∂J/∂X = GW — fgraph's `affine` "
                  "VJPs are these three lines."),
        Paragraph(f"{tests_line('affine')} This run, for a random cotangent u = ∂J/∂y: max |VJP − formula| = "
                  f"{g2(f['dJ/dW = (dJ/dy) x^T'])} (W), {g2(f['dJ/dx = W^T dJ/dy'])} (x), {g2(f['dJ/db = dJ/dy'])} "
                  f"(b); `check_op(affine)` against central differences: {g2(op['affine'])}, on a batch of 5: "
                  f"{g2(op['affine (batch of 5)'])}."),
    ]


def section_elementwise(checks: dict) -> list:
    f, op = checks["formula_max_abs_diff"], checks["op_max_rel_error"]
    return [
        Heading("4.1.2 Element-wise transformers", 3),
        Paragraph("S = σ(A) entry by entry, J = f(S), entries indexed by one index. Sₖ depends on Aᵢ only when k = i: "
                  "∂Sₖ/∂Aᵢ = δₖᵢ σ′(Aᵢ), so"),
        Equations((r"\frac{\partial J}{\partial A_i} = \sum_k \frac{\partial J}{\partial S_k} "
                   r"\frac{\partial S_k}{\partial A_i} = \frac{\partial J}{\partial S_i}\, \sigma^{\prime}(A_i) "
                   r"\quad\Rightarrow\quad \frac{\partial J}{\partial A} = \frac{\partial J}{\partial S} "
                   r"\odot \sigma^{\prime}(A)",
                   r"\sigma = \tanh:\quad \sigma^{\prime}(A) = 1 - \tanh^2(A) = 1 - S \odot S, \qquad "
                   r"\frac{\partial J}{\partial A} = \frac{\partial J}{\partial S} \odot (1 - S \odot S)")),
        Paragraph("The Hadamard product ⊙ is NumPy's `*` on arrays of one shape. For tanh the derivative is "
                  "computed from the stored output S, not by evaluating tanh again: fgraph's VJP is "
                  "`g - g * out * out`, that is g ⊙ (1 − S ⊙ S) with one scalar-array operation fewer."),
        Paragraph(f"{tests_line('elementwise')} This run: max |VJP − formula| = "
                  f"{g2(f['dJ/dA = dJ/dS * (1 - tanh(A)^2)'])}; `check_op(tanh)`: {g2(op['tanh'])}."),
    ]


def section_mlp(o: dict, checks: dict, figures: dict, sweep) -> list:
    model = checks["model"]
    blocks = [
        Heading("4.2 MLP implementation", 3),
        Paragraph("**1. AffineNode** is `fgraph.affine(W, x, b)`: forward Wx + b (on a batch "
                  "`x.dot(W.T) + b`), VJPs (∂J/∂y) xᵀ, Wᵀ ∂J/∂y and ∂J/∂y from 4.1.1 — including the gradient "
                  "with respect to x, which the layer below needs when x is the output of another hidden layer."),
        Paragraph("**2. TanhNode** is `fgraph.tanh(a)`: forward `np.tanh`, VJP g ⊙ (1 − S ⊙ S) with S the "
                  "stored output (4.1.2)."),
        Paragraph(f"**3. The MLP** (`models.mlp_regression`): f(x) = w₂ᵀ tanh(W₁x + b₁) + b₂, "
                  f"objective (f(x) − y)², every parameter drawn as init_scale × a standard normal (small, so "
                  f"that the units start in tanh's linear range and differ from each other: symmetry breaking). "
                  f"Whole-graph gradient checks on the homework's data: "
                  f"{g2(model['MLP on features, 10 examples']['max_rel_error'])} (400 features), "
                  f"{g2(model['MLP on scalar x, 10 examples']['max_rel_error'])} (scalar x). {tests_line('mlp')}"),
    ]
    items = []
    for exp_id, pubv in (("mlp_no_features", "0.238–0.261"), ("mlp_features", "0.040–0.050")):
        if exp_id in o:
            m, c = o[exp_id]["metrics"], o[exp_id]["config"]
            s = c["model"]
            items.append(f"{LABELS[exp_id]}: {s['hidden_units']} hidden units, init_scale {s['init_scale']:g}, "
                         f"{c['optimizer']}, {c['epochs']} epochs: **average training error {f4(m['train_mse'])}** "
                         f"(published {pubv}); test {f4(m['test_mse'])}.")
    if items:
        blocks.append(Bullets(tuple(items)))
        blocks.append(Paragraph("On the scalar input the network has to build its own features from 10 tanh "
                                "units, and with tiny initial weights and plain SGD it finds only a smooth curve "
                                "through the data; given the 400 step features it fits about as well as ridge "
                                "without penalty."))
    if "mlp_scalar_tuned" in o:
        t = o["mlp_scalar_tuned"]
        c, m = t["config"], t["metrics"]
        derived = t.get("derived")
        verdict = (f" The goal, within 10% of the MLP on features ({f4(derived['target_train_mse'] / 1.1)} here), "
                   f"is ≤ {f4(derived['target_train_mse'])}: **{'met' if derived['meets_target'] else 'missed'}**."
                   if derived else "")
        phases = ", then ".join(f"{int(n)} steps at lr {lr:g}" for lr, n in c["phases"])
        blocks.append(Paragraph(
            f"**4. [Optional] A scalar-input MLP that fits as well as the featurized one.** Configuration: "
            f"{len(c['hidden_units'])} tanh hidden layers of {', '.join(map(str, c['hidden_units']))} units; input "
            f"scaled as x′ = k (x − 1/2) with k = {c['input_scale']:g}; weights He-normal "
            f"(N(0, 2/fan_in)); biases of the first hidden layer uniform on "
            f"(−k/2, k/2), so that the tanh transitions −bᵢ/wᵢ spread over the inputs; every other bias 0; "
            f"Adam on the whole training set (batch {c['batch_size']}): {phases} (a fresh Adam per phase). Result: "
            f"**training MSE {f4(m['train_mse'])}** in {t['timings']['seconds']:.1f} s (test MSE "
            f"{f4(m['test_mse'])}).{verdict}"))
        if sweep:
            met, n = sweep["met"], len(sweep["seeds"])
            worst = max(r["train_mse"] for r in sweep["runs"])
            slow = max(r["seconds"] for r in sweep["runs"])
            blocks.append(Paragraph(
                f"Reliability (`--sweep-tuned {n}`): the goal was met on **{met} of {n} seeds** (seeds "
                f"0–{n - 1}, each against the MLP on features of the same seed); worst training MSE {f4(worst)}, "
                f"slowest run {slow:.1f} s."))
        blocks.append(Paragraph(
            "What made the difference: the scalar input has to be cut into many sharp pieces, as the 400 step "
            "features do. Scaling the input and spreading the first layer's biases gives steep tanh units whose "
            "transitions cover [0, 1) from the start; depth lets later layers combine them; Adam's per-parameter "
            "step sizes cope with the very different gradient scales of the layers, and a smaller final step "
            "settles the fit. The price is visible on the test set: fitting the training set this closely means "
            "fitting its noise (noise variance ≈ 0.11), so the test error is worse than the smoother fits'."))
    if "mlp" in figures:
        blocks.append(Figure(figures["mlp"], "Prediction functions of the MLP fits (assignment's settings and the "
                                             "tuned scalar MLP), the target and the training data."))
    return blocks


def section_classifier(o: dict, checks: dict, figures: dict) -> list:
    f, op = checks["formula_max_abs_diff"], checks["op_max_rel_error"]
    blocks = [
        Heading("4.3 [Optional] Softmax, negative log-likelihood and a multiclass MLP", 3),
        Paragraph("**1. Softmax node** (`fgraph.softmax`): pᵢ = exp(zᵢ) / Σⱼ exp(zⱼ), computed from "
                  "z − maxⱼ zⱼ (same p, no overflow). Its Jacobian and VJP for an incoming g = ∂J/∂p:"),
        Equations((r"\frac{\partial p_i}{\partial z_j} = p_i (\delta_{ij} - p_j) \quad\Rightarrow\quad "
                   r"\frac{\partial J}{\partial z_j} = \sum_i g_i\, p_i (\delta_{ij} - p_j) = p_j \left( g_j - "
                   r"\langle g, p \rangle \right), \qquad \frac{\partial J}{\partial z} = p \odot (g - "
                   r"\langle g, p \rangle \mathbf{1})",)),
        Paragraph("**2. NLL node** (`fgraph.nll(p, y)`, y an integer label): J = −log p_y, so "
                  "∂J/∂p = −e_y / p_y (e_y the one-hot vector of y). Composed with the softmax the gradient with respect to "
                  "the logits is the familiar"),
        Equations((r"\frac{\partial J}{\partial z} = p \odot \left( -\frac{e_y}{p_y} + \mathbf{1} \right) "
                   r"= p - e_y",)),
        Paragraph(f"{tests_line('softmax')} This run: max |VJP − formula| = "
                  f"{g2(f['dJ/dz = p * (u - <u, p>) (softmax)'])} (softmax), "
                  f"{g2(f['dJ/dz = p - onehot(y) (NLL of softmax)'])} (NLL of softmax); `check_op`: "
                  f"{g2(op['softmax'])} (softmax), {g2(op['nll'])} (nll); whole classifier graph: "
                  f"{g2(checks['model']['classifier (softmax + NLL), 10 examples']['max_rel_error'])}."),
    ]
    if "multiclass" in o:
        m, c = o["multiclass"]["metrics"], o["multiclass"]["config"]
        s = c["model"]
        blocks.append(Paragraph(
            f"**3. The classifier** (`models.mlp_classifier`): p = softmax(W₂ tanh(W₁x + b₁) + b₂), "
            f"objective −log p_y; {s['hidden_units']} hidden units; W₁, b₁ drawn as "
            f"{s['init_scale']:g} × a standard normal and W₂, b₂ as a standard normal (as the assignment draws "
            f"them); {c['optimizer']}, {c['epochs']} epochs on the {c['train_examples']} training blobs. **Training "
            f"NLL {m['train_nll']:.2e}, test accuracy {m['test_accuracy']:.3f}** (published 1.000; training "
            f"accuracy {m['train_accuracy']:.3f}, test NLL {m['test_nll']:.2e})."))
    if "regions" in figures:
        blocks.append(Figure(figures["regions"], "The classifier's decision regions with the test points "
                                                 "(outlined) and the training points (faint)."))
    return blocks


def section_curves(figures: dict) -> list:
    if "curves" not in figures:
        return []
    return [Heading("Learning curves", 2),
            Paragraph("The mean training objective of every epoch (each step's objective measured before its "
                      "update, as `fit`'s history records it), log scale. For ridge it includes the penalty."),
            Figure(figures["curves"], "Learning curves of every run.")]


def section_checks(checks: dict) -> list:
    rows = [(k, g2(v)) for k, v in checks["formula_max_abs_diff"].items()]
    ops = [(k, g2(v)) for k, v in checks["op_max_rel_error"].items()]
    models_ = [(k, g2(v["max_rel_error"]), "yes" if v["ok"] else "NO") for k, v in checks["model"].items()]
    return [
        Heading("Gradient checks run by this script", 2),
        Paragraph("Derived formula against fgraph's VJP for a random cotangent (max absolute difference; 0 or "
                  "rounding level means the code is the formula):"),
        Table(("formula", "max |VJP − formula|"), tuple(rows)),
        Paragraph("`fgraph.check_op`: each primitive's VJP against central differences (max relative error over "
                  "random directions):"),
        Table(("op", "max relative error"), tuple(ops)),
        Paragraph("`fgraph.check_grads`: the whole graphs of the assignment on its data:"),
        Table(("graph", "max relative error", "ok (≤ 1e-4)"), tuple(models_)),
    ]


def section_timing(o: dict, env: dict) -> list:
    rows = tuple((i, f"{x['timings']['seconds']:.1f}") for i, x in o.items())
    return [
        Heading("Timing and environment", 2),
        Table(("experiment", "seconds"), rows),
        Paragraph(f"Experiments: {env['experiments_wall_seconds']:.1f} s of wall time in {env['jobs']} worker "
                  f"process(es) (the sum above exceeds it when they overlap; when ridge_l2_1 and minibatch_ridge "
                  f"run together, the batch-1 arm of the minibatch experiment reuses the ridge fit, the identical "
                  f"fold). Load average {env['load_average_before'][0]:.2f} before and "
                  f"{env['load_average_after'][0]:.2f} after, on {env['cpu_count']} cores. Python "
                  f"{env['versions']['python']}, NumPy {env['versions']['numpy']}, fgraph {env['versions']['fgraph']}, "
                  f"{env['platform']}."),
    ]
