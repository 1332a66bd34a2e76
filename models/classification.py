r"""The multiclass MLP classifier: softmax probabilities and negative log-likelihood.

Per example, x ∈ ℝᵈ and y ∈ {0, …, k-1} an integer label; on a batch the
objective is the mean of the per-example objectives.
"""

from __future__ import annotations

import fgraph
import fgraph.init
import fgraph.layers as layers
from models.base import Model, hidden_widths, initializer, mlp_body, nonnegative_float, positive_int


def mlp_classifier(num_features: int, hidden_units=10, num_classes: int = 3, init_scale: float = 0.01,
                   fused: bool = False, *, activation: str = "tanh", init=None, bias_init=None,
                   output_init=None) -> Model:
    r"""An MLP for k classes with one tanh hidden layer (the assignment's optional part)::

        z = W2 tanh(W1 x + b1) + b2             (the logits, k of them)
        prediction p = softmax(z),  p_c = exp(z_c) / Σ_j exp(z_j)
        objective  -log p_y                      (negative log-likelihood)

    Params ``W1`` (h, d), ``b1`` (h,) drawn as ``init_scale`` × a standard
    normal, and ``W2`` (k, h), ``b2`` (k,) drawn as a plain standard normal, as
    the assignment draws them. ``fused=True`` computes the same objective
    with ``fgraph.softmax_cross_entropy(z, y)`` = logsumexp(z) - z_y, which
    is finite even when p_y underflows to 0 (the prediction is still p).
    Gradient with respect to the logits: p - onehot(y).

    As for :func:`models.mlp_regression`, ``hidden_units=(h1, …, hm)`` stacks
    m hidden layers ``W1, b1, …, Wm, bm`` and the output layer is
    ``W{m+1}, b{m+1}``; ``activation``, ``init`` and ``bias_init`` change the
    hidden layers, ``output_init`` the output layer (default normal(1)).
    """
    what = "mlp_classifier"
    d = positive_int(num_features, f"{what}: num_features")
    widths = hidden_widths(hidden_units, what)
    k = positive_int(num_classes, f"{what}: num_classes")
    if k < 2:
        raise ValueError(f"{what}: num_classes must be at least 2, got {k}")
    if not isinstance(fused, bool):
        raise TypeError(f"{what}: fused must be True or False, got {fused!r}")
    scale = nonnegative_float(init_scale, f"{what}: init_scale")
    init = initializer(init, fgraph.init.normal(scale), f"{what}: init")
    bias_init = initializer(bias_init, fgraph.init.normal(scale), f"{what}: bias_init")
    output_init = initializer(output_init, fgraph.init.normal(1.0), f"{what}: output_init")
    out = len(widths) + 1
    net = layers.sequential(
        *mlp_body(widths, activation, (init,) * len(widths), (bias_init,) * len(widths), what),
        layers.dense("logits", k, output_init, output_init, weight_name=f"W{out}", bias_name=f"b{out}"),
    )
    x, y = fgraph.input("x", (d,)), fgraph.input("y")
    logits = net(x)
    prediction = fgraph.softmax(logits, name="prediction")
    if fused:
        objective = fgraph.softmax_cross_entropy(logits, y, name="objective")
    else:
        objective = fgraph.nll(prediction, y, name="objective")
    config = {
        "name": what, "num_features": d,
        "hidden_units": list(widths) if isinstance(hidden_units, (tuple, list)) else widths[0],
        "num_classes": k, "init_scale": scale, "fused": fused, "activation": activation,
        "init": repr(init), "bias_init": repr(bias_init), "output_init": repr(output_init),
    }
    return Model(fgraph.graph(prediction=prediction, objective=objective), config)
