r"""The report's derivations, with the numerical checks of this run and the tests that check them.

Each part is a function of the report's inputs (it reads ``inputs.checks``,
the job extra of :mod:`assignment.checks`) returning blocks; they hold no
experiment's results. :data:`TESTS` names, for each derivation, the tests
in ``tests/`` that check it; ``tests/test_homework.py`` checks they exist.
"""

from __future__ import annotations

from report.document import Equations, Heading, Paragraph, Table
from report.numbers import g2

#: For each derivation, the pytest node ids that check it numerically.
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


def tests_line(key: str) -> str:
    """The sentence citing the tests of derivation ``key``."""
    return "Checked numerically by " + ", ".join(f"`{t}`" for t in TESTS[key]) + "."


def ridge(inputs) -> list:
    """3, 3.1 and 3.2: the penalty node and the sum node (a param used twice)."""
    checks = inputs.checks
    formula, op = checks["formula_max_abs_diff"], checks["op_max_rel_error"]
    return [
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


def affine(inputs) -> list:
    """4 and 4.1.1: the gradients of an affine map, entry by entry and as matrices."""
    f, op = inputs.checks["formula_max_abs_diff"], inputs.checks["op_max_rel_error"]
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


def elementwise(inputs) -> list:
    """4.1.2: the gradient of an element-wise map (tanh)."""
    f, op = inputs.checks["formula_max_abs_diff"], inputs.checks["op_max_rel_error"]
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



def mlp(inputs) -> list:
    """4.2, points 1-3: the affine and tanh nodes and the MLP, with whole-graph checks."""
    model = inputs.checks["model"]
    return [
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


def classifier(inputs) -> list:
    """4.3, points 1-2: the softmax and NLL nodes and their composition."""
    checks = inputs.checks
    f, op = checks["formula_max_abs_diff"], checks["op_max_rel_error"]
    return [
        Heading("4.3 [Optional] Softmax, negative log-likelihood and a multiclass MLP", 3),
        Paragraph("**1. Softmax node** (`fgraph.softmax`): pᵢ = exp(zᵢ) / Σⱼ exp(zⱼ), computed from "
                  "z − maxⱼ zⱼ (same p, no overflow). Its Jacobian and VJP for an incoming g = ∂J/∂p:"),
        Equations((r"\frac{\partial p_i}{\partial z_j} = p_i (\delta_{ij} - p_j) \quad\Rightarrow\quad "
                   r"\frac{\partial J}{\partial z_j} = \sum_i g_i\, p_i (\delta_{ij} - p_j) = p_j \left( g_j - "
                   r"\langle g, p \rangle \right), \qquad \frac{\partial J}{\partial z} = p \odot (g - "
                   r"\langle g, p \rangle \mathbf{1})",)),
        Paragraph("**2. NLL node** (`fgraph.nll(p, y)`, y an integer label): J = −log p_y, so "
                  "∂J/∂p = −e_y / p_y (e_y the one-hot vector of y). Composed with the softmax the gradient "
                  "with respect to the logits is the familiar"),
        Equations((r"\frac{\partial J}{\partial z} = p \odot \left( -\frac{e_y}{p_y} + \mathbf{1} \right) "
                   r"= p - e_y",)),
        Paragraph(f"{tests_line('softmax')} This run: max |VJP − formula| = "
                  f"{g2(f['dJ/dz = p * (u - <u, p>) (softmax)'])} (softmax), "
                  f"{g2(f['dJ/dz = p - onehot(y) (NLL of softmax)'])} (NLL of softmax); `check_op`: "
                  f"{g2(op['softmax'])} (softmax), {g2(op['nll'])} (nll); whole classifier graph: "
                  f"{g2(checks['model']['classifier (softmax + NLL), 10 examples']['max_rel_error'])}."),
    ]


def checks_table(inputs) -> list:
    """The tables of every gradient check of this run."""
    checks = inputs.checks
    rows = [(k, g2(v)) for k, v in checks["formula_max_abs_diff"].items()]
    ops = [(k, g2(v)) for k, v in checks["op_max_rel_error"].items()]
    models_ = [(k, g2(v["max_rel_error"]), "yes" if v["ok"] else "NO") for k, v in checks["model"].items()]
    return [
        Heading("Gradient checks run by this script", 2),
        Paragraph("Derived formula against fgraph's VJP for a random cotangent (max absolute difference; 0 or "
                  "rounding level means the code is the formula):"),
        Table(("formula", "max |VJP − formula|"), tuple(rows)),
        Paragraph("`fgraph.check_op`: each primitive's VJP against Richardson-extrapolated central differences. "
                  "The number is the relative part of the analytic gradient that the numeric derivative's own "
                  "uncertainty (truncation plus the measured rounding noise of the function) cannot explain: 0 "
                  "means consistent; a 1% error in a VJP shows as about 0.01:"),
        Table(("op", "unexplained relative error"), tuple(ops)),
        Paragraph("`fgraph.check_grads`: the whole graphs of the assignment on its data, measured the same way:"),
        Table(("graph", "unexplained relative error", "ok (≤ 1e-4)"), tuple(models_)),
    ]
