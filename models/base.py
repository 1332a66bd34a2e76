"""What every model shares: the :class:`Model` value, argument checks, the MLP body.

A model is a frozen pair of a graph and its configuration. The graph has
data inputs ``x`` (per example: a feature vector) and ``y`` (per example: a
scalar target or an integer label) and outputs ``prediction`` (needs only
``x``) and ``objective`` (the per-example loss, averaged over a batch). The
parameters are a plain dict that lives outside the model, as everywhere in
fgraph.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from types import MappingProxyType

import attrs
import numpy as np

import fgraph
import fgraph.init
import fgraph.layers as layers


def _json_config(config: Mapping) -> MappingProxyType:
    """A read-only copy of ``config`` made of JSON values only (tuples become lists)."""
    if not isinstance(config, Mapping):
        raise TypeError(f"a model's config must be a dict, got {type(config).__name__}")
    try:
        text = json.dumps(dict(config), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"a model's config must be JSON-able: {e}") from None
    return MappingProxyType(json.loads(text))


def _check_graph(model, attribute, g) -> None:
    if not isinstance(g, fgraph.Graph):
        raise TypeError(f"Model.graph must be an fgraph.Graph, got {type(g).__name__}")
    missing = [k for k in ("prediction", "objective") if k not in g.outputs]
    if missing:
        raise ValueError(f"a model's graph needs the outputs 'prediction' and 'objective'; missing {missing}")


@attrs.frozen(eq=False, repr=False)
class Model:
    """A model: ``graph`` (outputs ``prediction`` and ``objective``) and its ``config``.

    ``config`` is a fresh JSON-able dict on every access (the model's name and
    hyper-parameters), so the model itself cannot be changed through it.
    """

    graph: fgraph.Graph = attrs.field(validator=_check_graph)
    _config: Mapping = attrs.field(converter=_json_config, alias="config")

    @property
    def config(self) -> dict:
        """The model's name and hyper-parameters, e.g. ``{"name": "ridge_regression", ...}``."""
        return copy.deepcopy(dict(self._config))

    @property
    def name(self) -> str:
        """The model's name, ``config["name"]``."""
        return self._config.get("name", "model")

    def init(self, seed: int = 0) -> dict:
        """The assignment's initial parameter values, ``{name: float64 array}``.

        Each param is drawn from its own generator seeded by ``(seed, name)``
        (``fgraph.init.init_params``): the same seed gives the same values.
        """
        return fgraph.init.init_params(self.graph, seed)

    def predict(self, params: Mapping, x) -> np.ndarray:
        """The ``prediction`` output for ``x`` (one example, or a batch on axis 0); no ``y`` needed."""
        return fgraph.forward(self.graph, params, {"x": x}, outputs=["prediction"])["prediction"]

    def objective(self, params: Mapping, data: Mapping) -> float:
        """The ``objective`` for ``data = {"x": ..., "y": ...}`` (a batch gives the mean over examples)."""
        return float(fgraph.forward(self.graph, params, data, outputs=["objective"])["objective"])

    def __repr__(self) -> str:
        return f"<Model {self.name} params={dict(self.graph.params)}>"


# ------------------------------------------------------------ argument checks


def positive_int(value, what: str) -> int:
    """``value`` if it is an int >= 1, else a ``TypeError``/``ValueError`` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be a positive int, got {value!r}")
    if value < 1:
        raise ValueError(f"{what} must be a positive int, got {value}")
    return int(value)


def nonnegative_float(value, what: str) -> float:
    """``value`` as a finite float >= 0, else a ``TypeError``/``ValueError`` naming ``what``."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{what} must be finite and >= 0, got {value!r}")
    return v


def hidden_widths(hidden_units, what: str) -> tuple[int, ...]:
    """The widths of the hidden layers: an int h means one layer, a sequence one per layer."""
    if isinstance(hidden_units, (int, np.integer)) and not isinstance(hidden_units, bool):
        return (positive_int(hidden_units, f"{what}: hidden_units"),)
    if isinstance(hidden_units, (tuple, list)) and hidden_units:
        return tuple(positive_int(h, f"{what}: hidden_units[{i}]") for i, h in enumerate(hidden_units))
    raise TypeError(f"{what}: hidden_units must be a positive int or a non-empty tuple of them, got {hidden_units!r}")


def initializer(init, default, what: str):
    """``init`` if it is an fgraph initialiser (called as ``init(rng, shape)``), ``default`` if None."""
    if init is None:
        return default
    if not callable(init):
        raise TypeError(f"{what} must be an initialiser from fgraph.init, got {init!r}")
    return init


def layer_initializers(init, n: int, default, what: str) -> tuple:
    """One initialiser per layer for ``n`` layers: ``init`` is one initialiser
    for all of them, a sequence of ``n`` (None entries take ``default``), or
    None (``default`` everywhere)."""
    if isinstance(init, (list, tuple)):
        if len(init) != n:
            raise ValueError(f"{what}: {len(init)} initialisers for {n} layers")
        return tuple(initializer(each, default, f"{what}[{i}]") for i, each in enumerate(init))
    return (initializer(init, default, what),) * n


def mlp_body(widths: tuple, activation: str, init: tuple, bias_init: tuple, what: str) -> list:
    """The hidden layers of an MLP, as a list of layers for ``layers.sequential``.

    Layer i (1-based) computes hᵢ = σ(Wᵢ hᵢ₋₁ + bᵢ) with h₀ = x; its params are
    ``W{i}`` (widths[i-1], width of hᵢ₋₁) and ``b{i}`` (widths[i-1],), and
    its pre-activation node is called ``hidden{i}``; ``init[i-1]`` and
    ``bias_init[i-1]`` draw them. The output layer that follows uses index
    ``len(widths) + 1``.
    """
    try:
        act = layers.activation(activation)
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None
    body = []
    for i, h in enumerate(widths, start=1):
        body += [
            layers.dense(f"hidden{i}", h, init[i - 1], bias_init[i - 1], weight_name=f"W{i}", bias_name=f"b{i}"),
            act,
        ]
    return body
