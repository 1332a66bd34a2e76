"""Small training problems shared by the training and resume tests."""

from __future__ import annotations

import numpy as np

import models
from fgraph import optim

#: One of each kind of optimiser state: none, a velocity, Adam's moments, a chain of them.
OPTIMIZERS = {
    "sgd": lambda: optim.sgd(0.01),
    "momentum": lambda: optim.momentum(0.01, 0.9),
    "adam": lambda: optim.adam(0.01),
    "chain": lambda: optim.chain(optim.clip_by_global_norm(1.0), optim.add_weight_decay(1e-3), optim.adam(0.01)),
}


def problem(n=12, d=3, seed=0) -> dict:
    """A noisy linear regression of n examples in d dimensions."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return {"x": X, "y": X @ rng.normal(size=d) + 0.1 * rng.normal(size=n)}


def mlp(d=3):
    """A small MLP regression graph and its initial params."""
    m = models.mlp_regression(d, hidden_units=4, init_scale=0.5)
    return m.graph, m.init(seed=1)
