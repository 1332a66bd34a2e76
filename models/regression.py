r"""Regression models: linear, ridge and the multilayer perceptron (square loss).

Per example, x ∈ ℝᵈ and y ∈ ℝ; on a batch every loss is the mean of the
per-example losses (fgraph's batch convention), while the ridge penalty,
which touches only parameters, is added once.
"""

from __future__ import annotations

import fgraph
import fgraph.init
import fgraph.layers as layers
from models.base import Model, hidden_widths, layer_initializers, mlp_body, nonnegative_float, positive_int


def _linear_graph(num_features: int, l2_reg: float | None) -> fgraph.Graph:
    x, y = fgraph.input("x", (num_features,)), fgraph.input("y")
    w = fgraph.param("w", (num_features,), init=fgraph.init.zeros())
    b = fgraph.param("b", (), init=fgraph.init.zeros())
    prediction = fgraph.vector_scalar_affine(x, w, b, name="prediction")
    if l2_reg is None:
        objective = fgraph.squared_l2_distance(prediction, y, name="objective")
        return fgraph.graph(prediction=prediction, objective=objective)
    # w is used twice (prediction and penalty): its gradient is the sum of both uses.
    loss = fgraph.squared_l2_distance(prediction, y, name="square_loss")
    penalty = fgraph.l2_norm_penalty(w, l2_reg, name="l2_penalty")
    return fgraph.graph(prediction=prediction, objective=fgraph.add(loss, penalty, name="objective"))


def linear_regression(num_features: int) -> Model:
    r"""Least squares: prediction f(x) = x·w + b, objective (f(x) - y)².

    Params ``w`` (d,) and ``b`` (), both initially zero. Gradients per
    example: ∂J/∂w = 2 (x·w + b - y) x, ∂J/∂b = 2 (x·w + b - y).
    """
    d = positive_int(num_features, "linear_regression: num_features")
    return Model(_linear_graph(d, None), {"name": "linear_regression", "num_features": d})


def ridge_regression(num_features: int, l2_reg: float) -> Model:
    r"""Ridge regression: objective (x·w + b - y)² + λ‖w‖², with w penalised and b not.

    Params ``w`` (d,) and ``b`` (), both initially zero. Gradients per
    example: ∂J/∂w = 2 (x·w + b - y) x + 2λw, ∂J/∂b = 2 (x·w + b - y). On a
    batch the square loss is averaged and λ‖w‖² added once.
    """
    d = positive_int(num_features, "ridge_regression: num_features")
    lam = nonnegative_float(l2_reg, "ridge_regression: l2_reg")
    return Model(_linear_graph(d, lam), {"name": "ridge_regression", "num_features": d, "l2_reg": lam})


def mlp_regression(num_features: int, hidden_units=10, init_scale: float = 0.01, *,
                   activation: str = "tanh", init=None, bias_init=None) -> Model:
    r"""A multilayer perceptron with square loss (the assignment's MLP).

    With one hidden layer of h units (``hidden_units=h``, the default)::

        prediction f(x) = w2 · tanh(W1 x + b1) + b2,   objective (f(x) - y)²

    with params ``W1`` (h, d), ``b1`` (h,), ``w2`` (h,), ``b2`` (), each drawn as
    ``init_scale`` × a standard normal, small so that the tanh units start in
    their linear range and differ from each other (symmetry breaking).

    Deeper variants: ``hidden_units=(h1, …, hk)`` stacks k hidden layers
    hᵢ = σ(Wᵢ hᵢ₋₁ + bᵢ), params ``W1, b1, …, Wk, bk``, and the output layer
    is ``w{k+1}`` (hk,), ``b{k+1}`` () — so k = 1 gives exactly W1, b1, w2, b2.
    ``activation`` is ``"tanh"``, ``"relu"`` or ``"sigmoid"``; ``init`` and
    ``bias_init`` (fgraph initialisers) replace ``normal(init_scale)`` for the
    weights and for the biases (e.g. ``init=fgraph.init.glorot_normal()``):
    one initialiser for every layer, or a sequence with one per layer, the
    output layer last (e.g. spread first-layer biases, zeros elsewhere).
    """
    what = "mlp_regression"
    d = positive_int(num_features, f"{what}: num_features")
    widths = hidden_widths(hidden_units, what)
    scale = nonnegative_float(init_scale, f"{what}: init_scale")
    k = len(widths) + 1
    init = layer_initializers(init, k, fgraph.init.normal(scale), f"{what}: init")
    bias_init = layer_initializers(bias_init, k, fgraph.init.normal(scale), f"{what}: bias_init")
    net = layers.sequential(
        *mlp_body(widths, activation, init, bias_init, what),
        layers.scalar_dense("prediction", init[-1], bias_init[-1], weight_name=f"w{k}", bias_name=f"b{k}"),
    )
    x, y = fgraph.input("x", (d,)), fgraph.input("y")
    prediction = net(x)
    g = fgraph.graph(prediction=prediction, objective=fgraph.squared_l2_distance(prediction, y, name="objective"))
    config = {
        "name": what, "num_features": d,
        "hidden_units": list(widths) if isinstance(hidden_units, (tuple, list)) else widths[0],
        "activation": activation, "init_scale": scale,
        "init": [repr(i) for i in init], "bias_init": [repr(b) for b in bias_init],
    }
    return Model(g, config)
