r"""Recurrent one-step-ahead forecasting of a scalar series (the sunspots).

Per example, x ∈ ℝ^{lags} holds the previous ``lags`` values, oldest first
(a row of :meth:`models.datasets.Sunspots.windows`), and y the next value.
Train on the standardised series (:meth:`models.datasets.Sunspots.scaling`)
and undo the scaling on the forecasts: the objective is then the squared
error in units of the training years' standard deviation.
"""

from __future__ import annotations

import fgraph
import fgraph.init
import fgraph.layers as layers
from models.base import Model, positive_int


def rnn_forecaster(lags: int = 9, hidden: int = 8, activation: str = "tanh", linear_skip: bool = True) -> Model:
    r"""An Elman RNN over the window, read as T = ``lags`` steps of one value, and a linear read-out.

    The RNN (``layers.rnn("rnn", hidden, activation)``: params ``rnn.W_x``
    (hidden, 1), ``rnn.W_h`` (hidden, hidden), ``rnn.b`` (hidden,), tied
    across the steps) reads x₁ … x_lags from h₀ = 0,
    h_t = σ(W_x x_t + W_h h_{t-1} + b). With ``linear_skip`` (the default)
    the forecast reads the window and the last state together,

        ŷ = w · [x; h_lags] + c      (``out.w`` (lags + hidden,), ``out.b`` ()),

    an autoregression of order ``lags`` plus a recurrent correction, so the
    RNN learns what a linear model misses and the forecast extrapolates
    linearly beyond the training range, as an AR model does; without it,
    ŷ = w · h_lags + c (``out.w`` (hidden,)). ``out.w`` starts at zero: the
    model starts as the constant forecast c = 0 (the training mean, on the
    standardised series). Prediction: ŷ; objective: (ŷ - y)², averaged over
    a batch.
    """
    what = "rnn_forecaster"
    lags = positive_int(lags, f"{what}: lags")
    hidden = positive_int(hidden, f"{what}: hidden")
    if not isinstance(linear_skip, bool):
        raise TypeError(f"{what}: linear_skip must be True or False, got {linear_skip!r}")
    try:
        rnn = layers.rnn("rnn", hidden, activation)
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None
    x, y = fgraph.input("x", (lags,)), fgraph.input("y")
    state = rnn(fgraph.reshape(x, (lags, 1), name="steps"))
    features = fgraph.concat([x, state], axis=0, name="window_and_state") if linear_skip else state
    prediction = layers.scalar_dense("out", fgraph.init.zeros())(features, name="prediction")
    objective = fgraph.squared_l2_distance(prediction, y, name="objective")
    config = {"name": what, "lags": lags, "hidden": hidden, "activation": activation, "linear_skip": linear_skip,
              "prediction": "forecast"}
    return Model(fgraph.graph(prediction=prediction, objective=objective), config)
