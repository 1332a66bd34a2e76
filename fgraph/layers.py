r"""Layers: functions ``Node -> Node`` that create their own parameters.

A layer constructor takes the layer's static configuration (a name, a
width, initialisers) and returns a function from the input node to the
output node. The parameters are created when the layer is applied, because
their shapes depend on the input's width ``d``::

    from fgraph import layers
    net = layers.sequential(
        layers.dense("hidden1", 64), layers.tanh,
        layers.dense("hidden2", 64), layers.tanh,
        layers.scalar_dense("out"),
    )
    prediction = net(fgraph.input("x", (400,)))

Each application of a layer creates new param nodes with the layer's names,
so one layer applied twice in a graph is a duplicate-name ``GraphError`` at
``fgraph.graph(...)``: to share weights, build the params with
``fgraph.param`` and use them in both places.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Callable

import toolz

# Submodules, not the package namespace: fgraph/__init__.py may import this
# module, and the package is only partly initialised while it does.
from fgraph import init as initializers
from fgraph.errors import ShapeError
from fgraph.graph import Node, check_initializer, check_name, param
from fgraph.ops import affine, relu, sigmoid, tanh, vector_scalar_affine

Layer = Callable[[Node], Node]

# The activation ops tanh, relu and sigmoid (imported above) are already
# functions Node -> Node, so they are layers as they are: tanh(a) element-wise;
# relu(a) = max(a, 0) (derivative 0 at 0); sigmoid(a) = 1 / (1 + e^-a).
# Their docstrings in fgraph.ops give the VJPs.

ACTIVATIONS = MappingProxyType({"tanh": tanh, "relu": relu, "sigmoid": sigmoid})

__all__ = ["ACTIVATIONS", "activation", "dense", "relu", "scalar_dense", "sequential", "sigmoid", "tanh"]


def activation(kind: str) -> Layer:
    """The activation layer called ``kind``: ``"tanh"``, ``"relu"`` or ``"sigmoid"``."""
    try:
        return ACTIVATIONS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"unknown activation {kind!r}; choose one of {sorted(ACTIVATIONS)}") from None


def _check_init(init, what: str, layer: str):
    return check_initializer(init, f"layer {layer!r}: {what}")


def _param_names(layer: str, weight_name, bias_name, weight_default: str) -> tuple[str, str]:
    w = f"{layer}.{weight_default}" if weight_name is None else weight_name
    b = f"{layer}.b" if bias_name is None else bias_name
    for n, what in ((w, "weight_name"), (b, "bias_name")):
        if not isinstance(n, str) or not n:
            raise TypeError(f"layer {layer!r}: {what} must be a non-empty string, got {n!r}")
    if w == b:
        raise ValueError(f"layer {layer!r}: the weight and the bias cannot both be called {w!r}")
    return w, b


def _vector_width(layer: str, x) -> int:
    """The width d of a node whose per-example value is a vector (d,)."""
    if not isinstance(x, Node):
        raise TypeError(f"layer {layer!r} must be applied to a Node, got {type(x).__name__}")
    if len(x.shape) != 1:
        raise ShapeError(
            f"layer {layer!r} needs an input that is a vector per example, shape (d,);"
            f" node {x.name!r} has per-example shape {x.shape}"
        )
    return x.shape[0]


def dense(name: str, units: int, init=None, bias_init=None, *, weight_name=None, bias_name=None) -> Layer:
    r"""A fully connected layer: x ↦ W x + b, for x ∈ ℝᵈ, W ∈ ℝ^{units×d}, b ∈ ℝ^{units}.

    Applied to a node with per-example shape (d,), it creates the params
    ``weight_name`` (default ``f"{name}.W"``, shape (units, d), initialised by
    ``init``, default Glorot normal: N(0, 2 / (d + units))) and ``bias_name``
    (default ``f"{name}.b"``, shape (units,), ``bias_init``, default zeros),
    and returns ``fgraph.affine(W, x, b)``, a node called ``name``.
    Gradients (see ``fgraph.affine``): ∂J/∂W = (∂J/∂y) xᵀ, ∂J/∂b = ∂J/∂y,
    ∂J/∂x = Wᵀ ∂J/∂y.
    """
    check_name(name, "layer")
    if isinstance(units, bool) or not isinstance(units, int):
        raise TypeError(f"layer {name!r}: units must be a positive int, got {units!r}")
    if units <= 0:
        raise ShapeError(f"layer {name!r}: units must be a positive int, got {units}")
    init = initializers.glorot_normal() if _check_init(init, "init", name) is None else init
    bias_init = initializers.zeros() if _check_init(bias_init, "bias_init", name) is None else bias_init
    w_name, b_name = _param_names(name, weight_name, bias_name, "W")

    def dense_layer(x: Node) -> Node:
        d = _vector_width(name, x)
        W = param(w_name, (units, d), init=init)
        b = param(b_name, (units,), init=bias_init)
        return affine(W, x, b, name=name)

    dense_layer.__name__ = dense_layer.__qualname__ = f"dense[{name}]"
    return dense_layer


def scalar_dense(name: str, init=None, bias_init=None, *, weight_name=None, bias_name=None) -> Layer:
    r"""A vector-to-scalar output layer: x ↦ x·w + b, for x, w ∈ ℝᵈ, b ∈ ℝ.

    Applied to a node with per-example shape (d,), it creates the params
    ``weight_name`` (default ``f"{name}.w"``, shape (d,), ``init``, default
    Glorot normal: N(0, 2 / (d + 1))) and ``bias_name`` (default
    ``f"{name}.b"``, shape (), ``bias_init``, default zeros), and returns
    ``fgraph.vector_scalar_affine(x, w, b)``, a node called ``name``.
    Gradients: ∂J/∂w = (∂J/∂y) x, ∂J/∂b = ∂J/∂y, ∂J/∂x = (∂J/∂y) w.
    """
    check_name(name, "layer")
    init = initializers.glorot_normal() if _check_init(init, "init", name) is None else init
    bias_init = initializers.zeros() if _check_init(bias_init, "bias_init", name) is None else bias_init
    w_name, b_name = _param_names(name, weight_name, bias_name, "w")

    def scalar_dense_layer(x: Node) -> Node:
        d = _vector_width(name, x)
        w = param(w_name, (d,), init=init)
        b = param(b_name, (), init=bias_init)
        return vector_scalar_affine(x, w, b, name=name)

    scalar_dense_layer.__name__ = scalar_dense_layer.__qualname__ = f"scalar_dense[{name}]"
    return scalar_dense_layer


def sequential(*layers: Layer) -> Layer:
    r"""Left-to-right composition: sequential(f₁, …, fₖ)(x) = fₖ(… f₂(f₁(x)) …).

    With no layers it is the identity. An MLP of any depth is one call::

        sequential(dense("h1", 10), tanh, dense("h2", 10), tanh, scalar_dense("out"))
    """
    for i, layer in enumerate(layers):
        if not callable(layer):
            raise TypeError(
                f"sequential: layer {i} must be a function Node -> Node (a layer),"
                f" got {type(layer).__name__} {layer!r}"
            )
    return toolz.compose_left(*layers)
