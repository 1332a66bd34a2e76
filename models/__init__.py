"""The assignment's models, built only from fgraph's public API.

::

    import models
    m = models.ridge_regression(num_features=400, l2_reg=1.0)
    params = m.init(seed=0)                       # the assignment's initial values
    value, grads = fgraph.value_and_grad(m.graph)(params, {"x": X, "y": y})
    p = models.datasets.load_regression_problem()

Every model is a :class:`Model`: a frozen graph with inputs ``x``, ``y`` and
outputs ``prediction``, ``objective``, plus a JSON-able config.
"""

from models import datasets
from models.base import Model
from models.classification import mlp_classifier
from models.regression import linear_regression, mlp_regression, ridge_regression

__all__ = ["Model", "datasets", "linear_regression", "mlp_classifier", "mlp_regression", "ridge_regression"]
