"""The assignment's models, built only from fgraph's public API.

::

    import models
    m = models.ridge_regression(num_features=400, l2_reg=1.0)
    params = m.init(seed=0)                       # the assignment's initial values
    value, grads = fgraph.value_and_grad(m.graph)(params, {"x": X, "y": y})
    p = models.datasets.load_regression_problem()

Every model is a :class:`Model`: a frozen graph with inputs ``x``, ``y`` and
outputs ``prediction``, ``objective``, plus a JSON-able config. Beyond the
assignment's: the digits' ``cnn_classifier``, ``rnn_classifier`` and
``resnet_classifier`` (models.networks), the sunspots' ``rnn_forecaster``
(models.forecasting), and :mod:`models.presets`, the settings that train
them to their targets.
"""

from models import datasets, presets
from models.base import Model
from models.classification import mlp_classifier
from models.forecasting import rnn_forecaster
from models.networks import cnn_classifier, resnet_classifier, rnn_classifier
from models.regression import linear_regression, mlp_regression, ridge_regression

__all__ = [
    "Model", "cnn_classifier", "datasets", "linear_regression", "mlp_classifier", "mlp_regression", "presets",
    "ridge_regression", "resnet_classifier", "rnn_classifier", "rnn_forecaster",
]
