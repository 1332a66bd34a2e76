r"""Layers: functions ``Node -> Node`` that create their own parameters.

A layer constructor takes the layer's static configuration (a name, a
width, initialisers) and returns a function from the input node to the
output node. The parameters are created when the layer is applied, because
their shapes depend on the input (its width ``d``, its channels ``C``)::

    from fgraph import layers
    net = layers.sequential(
        layers.dense("hidden1", 64), layers.tanh,
        layers.dense("hidden2", 64), layers.tanh,
        layers.scalar_dense("out"),
    )
    prediction = net(fgraph.input("x", (400,)))

**Sharing.** A layer value owns its parameters: the constructor makes one
:class:`Owner` token and every application passes it to ``fgraph.param``, so
applying the same layer many times uses one set of params (one ``enc.W``,
whose gradient is the sum of every application's contribution)::

    enc = layers.dense("enc", 8)
    a, b = enc(x1), enc(x2, name="enc.2")      # one enc.W, one enc.b

Each application's output node is called by the layer's name unless the
call says ``name=``; node names are unique in a graph, so a second
application of a named layer needs its own ``name=`` (the recurrent layers
name their steps themselves). Two layers *constructed* separately with the
same name are different owners, hence different params with one name: a
duplicate-name ``GraphError`` at ``fgraph.graph(...)``.

Layers here: :func:`dense`, :func:`scalar_dense`, :func:`conv2d`,
:func:`max_pool2d`, :func:`avg_pool2d`, :func:`flatten`, :func:`rnn_cell`,
:func:`rnn`, :func:`residual`, the activations ``tanh``, ``relu``,
``sigmoid``, and :func:`sequential` to compose them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import MappingProxyType

import attrs
import numpy as np
import toolz

# Submodules, not the package namespace: fgraph/__init__.py may import this
# module, and the package is only partly initialised while it does.
from fgraph import init as initializers
from fgraph.errors import ShapeError
from fgraph.graph import Node, check_initializer, check_name, param
from fgraph.ops import add, affine, concat, getitem, relu, reshape, sigmoid, stack, tanh, vector_scalar_affine
from fgraph.ops.conv import avg_pool2d as _avg_pool2d
from fgraph.ops.conv import conv2d as _conv2d
from fgraph.ops.conv import max_pool2d as _max_pool2d

Layer = Callable[[Node], Node]

# The activation ops tanh, relu and sigmoid (imported above) are already
# functions Node -> Node, so they are layers as they are: tanh(a) element-wise;
# relu(a) = max(a, 0) (derivative 0 at 0); sigmoid(a) = 1 / (1 + e^-a).
# Their docstrings in fgraph.ops give the VJPs.

ACTIVATIONS = MappingProxyType({"tanh": tanh, "relu": relu, "sigmoid": sigmoid})

__all__ = [
    "ACTIVATIONS", "Owner", "activation", "avg_pool2d", "conv2d", "dense", "flatten", "max_pool2d", "relu",
    "residual", "rnn", "rnn_cell", "scalar_dense", "sequential", "sigmoid", "tanh",
]


@attrs.frozen(eq=False)
class Owner:
    """The identity of one layer value, passed to ``fgraph.param(..., owner=)``.

    Compared by identity (``eq=False``): param nodes made with the same
    token are one parameter, while two layers constructed with the same
    ``layer`` name hold different tokens and never share by accident.
    """

    layer: str


def activation(kind: str) -> Layer:
    """The activation layer called ``kind``: ``"tanh"``, ``"relu"`` or ``"sigmoid"``."""
    try:
        return ACTIVATIONS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"unknown activation {kind!r}; choose one of {sorted(ACTIVATIONS)}") from None


def _activation_of(kind: str, layer: str) -> Layer:
    # A layer's own ``activation`` argument shadows the function above.
    try:
        return activation(kind)
    except ValueError as e:
        raise ValueError(f"layer {layer!r}: {e}") from None


# -------------------------------------------------------------- argument checks


def _check_init(init, what: str, layer: str):
    return check_initializer(init, f"layer {layer!r}: {what}")


def _init_or(init, default, what: str, layer: str):
    """``init`` checked, or ``default`` when it is None."""
    return default if _check_init(init, what, layer) is None else init


def _positive(value, what: str, layer: str) -> int:
    """``value`` as an int >= 1: a ``TypeError`` for a non-int, a ``ShapeError`` for one below 1."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"layer {layer!r}: {what} must be a positive int, got {value!r}")
    if value <= 0:
        raise ShapeError(f"layer {layer!r}: {what} must be a positive int, got {value}")
    return int(value)


def _pair(value, what: str, layer: str, least: int) -> tuple[int, int]:
    """An int or a pair (height, width) of ints >= ``least``, as a pair."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    ok = len(items) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in items
    )
    if not ok:
        raise TypeError(f"layer {layer!r}: {what} must be an int or a pair (height, width) of ints, got {value!r}")
    if min(items) < least:
        bound = "positive" if least == 1 else "non-negative"
        raise ShapeError(f"layer {layer!r}: {what} must be {bound}, got {value!r}")
    return int(items[0]), int(items[1])


def _param_names(layer: str, weight_name, bias_name, weight_default: str) -> tuple[str, str]:
    w = f"{layer}.{weight_default}" if weight_name is None else weight_name
    b = f"{layer}.b" if bias_name is None else bias_name
    for n, what in ((w, "weight_name"), (b, "bias_name")):
        if not isinstance(n, str) or not n:
            raise TypeError(f"layer {layer!r}: {what} must be a non-empty string, got {n!r}")
    if w == b:
        raise ValueError(f"layer {layer!r}: the weight and the bias cannot both be called {w!r}")
    return w, b


def _node(layer: str, x) -> Node:
    if not isinstance(x, Node):
        raise TypeError(f"layer {layer!r} must be applied to a Node, got {type(x).__name__}")
    return x


def _rank(layer: str, x, rank: int, layout: str, what: str = "an input") -> Node:
    """``x`` if it is a Node whose per-example shape has ``rank`` axes, else a ``ShapeError``."""
    _node(layer, x)
    if len(x.shape) != rank:
        raise ShapeError(
            f"layer {layer!r} needs {what} of per-example shape {layout};"
            f" node {x.name!r} has per-example shape {x.shape}"
        )
    return x


def _vector_width(layer: str, x) -> int:
    """The width d of a node whose per-example value is a vector (d,)."""
    _node(layer, x)
    if len(x.shape) != 1:
        hint = " (layers.flatten makes one)" if len(x.shape) > 1 else ""
        raise ShapeError(
            f"layer {layer!r} needs an input that is a vector per example, shape (d,){hint};"
            f" node {x.name!r} has per-example shape {x.shape}"
        )
    return x.shape[0]


def _output_name(layer: str, name) -> str:
    return layer if name is None else check_name(name, f"layer {layer!r}: output node")


def _named(fn: Callable, kind: str, layer: str) -> Callable:
    fn.__name__ = fn.__qualname__ = f"{kind}[{layer}]"
    return fn


# ---------------------------------------------------------------------- dense


def dense(name: str, units: int, init=None, bias_init=None, *, weight_name=None, bias_name=None) -> Layer:
    r"""A fully connected layer: x ↦ W x + b, for x ∈ ℝᵈ, W ∈ ℝ^{units×d}, b ∈ ℝ^{units}.

    Applied to a node with per-example shape (d,), it creates the params
    ``weight_name`` (default ``f"{name}.W"``, shape (units, d), initialised by
    ``init``, default Glorot normal: N(0, 2 / (d + units))) and ``bias_name``
    (default ``f"{name}.b"``, shape (units,), ``bias_init``, default zeros),
    and returns ``fgraph.affine(W, x, b)``, a node called ``name`` (or the
    call's ``name=``). Every application shares the one W and b (see the
    module's docstring). Gradients (see ``fgraph.affine``):
    ∂J/∂W = (∂J/∂y) xᵀ, ∂J/∂b = ∂J/∂y, ∂J/∂x = Wᵀ ∂J/∂y.
    """
    check_name(name, "layer")
    units = _positive(units, "units", name)
    init = _init_or(init, initializers.glorot_normal(), "init", name)
    bias_init = _init_or(bias_init, initializers.zeros(), "bias_init", name)
    w_name, b_name = _param_names(name, weight_name, bias_name, "W")
    owner = Owner(name)

    def dense_layer(x: Node, *, name: str | None = None) -> Node:
        d = _vector_width(owner.layer, x)
        W = param(w_name, (units, d), init=init, owner=owner)
        b = param(b_name, (units,), init=bias_init, owner=owner)
        return affine(W, x, b, name=_output_name(owner.layer, name))

    return _named(dense_layer, "dense", name)


def scalar_dense(name: str, init=None, bias_init=None, *, weight_name=None, bias_name=None) -> Layer:
    r"""A vector-to-scalar output layer: x ↦ x·w + b, for x, w ∈ ℝᵈ, b ∈ ℝ.

    Applied to a node with per-example shape (d,), it creates the params
    ``weight_name`` (default ``f"{name}.w"``, shape (d,), ``init``, default
    Glorot normal: N(0, 2 / (d + 1))) and ``bias_name`` (default
    ``f"{name}.b"``, shape (), ``bias_init``, default zeros), and returns
    ``fgraph.vector_scalar_affine(x, w, b)``, a node called ``name`` (or the
    call's ``name=``); applications share w and b.
    Gradients: ∂J/∂w = (∂J/∂y) x, ∂J/∂b = ∂J/∂y, ∂J/∂x = (∂J/∂y) w.
    """
    check_name(name, "layer")
    init = _init_or(init, initializers.glorot_normal(), "init", name)
    bias_init = _init_or(bias_init, initializers.zeros(), "bias_init", name)
    w_name, b_name = _param_names(name, weight_name, bias_name, "w")
    owner = Owner(name)

    def scalar_dense_layer(x: Node, *, name: str | None = None) -> Node:
        d = _vector_width(owner.layer, x)
        w = param(w_name, (d,), init=init, owner=owner)
        b = param(b_name, (), init=bias_init, owner=owner)
        return vector_scalar_affine(x, w, b, name=_output_name(owner.layer, name))

    return _named(scalar_dense_layer, "scalar_dense", name)


# -------------------------------------------------------------- convolution


def conv2d(name: str, filters: int, kernel, stride=1, padding=0, init=None, bias_init=None) -> Layer:
    r"""A 2-D convolution layer (PyTorch's ``conv2d``): x (C, H, W) ↦ (filters, H_out, W_out),

        out[f, i, j] = b[f] + Σ_{c,u,v} x̃[c, i·s_h + u, j·s_w + v] W[f, c, u, v],

    x̃ being x framed by ``padding`` zeros; H_out = (H + 2 p_h - k_h) // s_h + 1.
    ``kernel``, ``stride`` and ``padding`` are an int or a pair
    (height, width). Applied to a node of per-example shape (C, H, W), it
    creates ``f"{name}.W"`` (filters, C, k_h, k_w), drawn by ``init``
    (default He normal, N(0, 2 / (C k_h k_w)), for ReLU networks), and
    ``f"{name}.b"`` (filters,), ``bias_init`` (default zeros), shared by
    every application, and returns ``fgraph.ops.conv.conv2d``'s node called
    ``name`` (or the call's ``name=``).
    """
    check_name(name, "layer")
    filters = _positive(filters, "filters", name)
    kernel = _pair(kernel, "kernel", name, 1)
    stride, padding = _pair(stride, "stride", name, 1), _pair(padding, "padding", name, 0)
    init = _init_or(init, initializers.he_normal(), "init", name)
    bias_init = _init_or(bias_init, initializers.zeros(), "bias_init", name)
    owner = Owner(name)

    def conv2d_layer(x: Node, *, name: str | None = None) -> Node:
        channels = _rank(owner.layer, x, 3, "(C, H, W) (channels, height, width)")
        W = param(f"{owner.layer}.W", (filters, channels.shape[0], *kernel), init=init, owner=owner)
        b = param(f"{owner.layer}.b", (filters,), init=bias_init, owner=owner)
        return _conv2d(x, W, b, stride=stride, padding=padding, name=_output_name(owner.layer, name))

    return _named(conv2d_layer, "conv2d", name)


def _pool(kind: str, op, size, stride) -> Layer:
    what = f"{kind}({size!r})"
    size = _pair(size, "size", what, 1)
    stride = size if stride is None else _pair(stride, "stride", what, 1)

    def pool_layer(x: Node, *, name: str | None = None) -> Node:
        _rank(what, x, 3, "(C, H, W) (channels, height, width)")
        return op(x, size=size, stride=stride, name=name)

    return _named(pool_layer, kind, f"{size[0]}x{size[1]}")


def max_pool2d(size, stride=None) -> Layer:
    r"""Max-pooling: x (C, H, W) ↦ out[c, i, j] = max_{u<k_h, v<k_w} x[c, i·s_h + u, j·s_w + v].

    ``size`` and ``stride`` are an int or a pair; the stride defaults to the
    window's size (non-overlapping windows). No params. The gradient goes
    to each window's (first) maximum (see ``fgraph.ops.conv.max_pool2d``).
    """
    return _pool("max_pool2d", _max_pool2d, size, stride)


def avg_pool2d(size, stride=None) -> Layer:
    r"""Average pooling: x (C, H, W) ↦ out[c, i, j] = mean_{u<k_h, v<k_w} x[c, i·s_h + u, j·s_w + v].

    ``size`` and ``stride`` as for :func:`max_pool2d`. No params.
    """
    return _pool("avg_pool2d", _avg_pool2d, size, stride)


def flatten(x: Node, *, name: str | None = None) -> Node:
    r"""The per-example value as a vector, in C order: (d₁, …, d_k) ↦ (d₁ ⋯ d_k,).

    A layer as it is (like ``tanh``); the batch axis is untouched, and a
    node that is already a vector is returned as it is.
    """
    _node("flatten", x)
    if len(x.shape) == 1 and name is None:
        return x
    return reshape(x, (math.prod(x.shape),), name=name)


# ---------------------------------------------------------------- recurrent


def rnn_cell(name: str, hidden: int, activation: str = "tanh", init=None, recurrent_init=None,
             bias_init=None) -> Callable[[Node, Node], Node]:
    r"""An Elman recurrent cell, applied as ``cell(x_t, h)``: h' = σ(W_x x_t + W_h h + b).

    ``cell(x_t, None)`` is the step from the zero state, σ(W_x x_t + b):
    the same value without the product W_h·0.

    x_t ∈ ℝᴰ is the step's input, h ∈ ℝ^{hidden} the previous state, σ the
    ``activation`` (``"tanh"`` by default). Every application uses the same
    params (one owner), so an unrolled sequence ties its weights across
    steps: ``f"{name}.W_x"`` (hidden, D), drawn by
    ``init``; ``f"{name}.W_h"`` (hidden, hidden), ``recurrent_init``; both
    Glorot normal by default (for W_h that is N(0, 1/hidden), whose
    spectral radius is about 1); ``f"{name}.b"`` (hidden,), ``bias_init``,
    default zeros. The result is a node called ``name`` (or the call's
    ``name=``; :func:`rnn` names each step). A tied weight's gradient is the
    sum over steps: ∂J/∂W_h = Σ_t (∂J/∂a_t) h_{t-1}ᵀ, a_t the pre-activation.
    """
    check_name(name, "layer")
    hidden = _positive(hidden, "hidden", name)
    act = _activation_of(activation, name)
    init = _init_or(init, initializers.glorot_normal(), "init", name)
    recurrent_init = _init_or(recurrent_init, initializers.glorot_normal(), "recurrent_init", name)
    bias_init = _init_or(bias_init, initializers.zeros(), "bias_init", name)
    owner = Owner(name)

    def cell(x: Node, h: Node | None, *, name: str | None = None) -> Node:
        layer = owner.layer
        d = _vector_width(layer, x)
        W_x = param(f"{layer}.W_x", (hidden, d), init=init, owner=owner)
        b = param(f"{layer}.b", (hidden,), init=bias_init, owner=owner)
        if h is None:  # the zero state: W_h h = 0, so the step is σ(W_x x_t + b), one product less
            return act(affine(W_x, x, b), name=_output_name(layer, name))
        _rank(layer, h, 1, f"({hidden},)", "a state")
        if h.shape != (hidden,):
            raise ShapeError(
                f"layer {layer!r} has {hidden} hidden units, so the state must have per-example shape"
                f" ({hidden},); node {h.name!r} has {h.shape}"
            )
        W_h = param(f"{layer}.W_h", (hidden, hidden), init=recurrent_init, owner=owner)
        # One affine map of [x; h] by [W_x W_h] instead of two products: half
        # the nodes per step, and affine's weight VJP sums the batch inside
        # its one matrix product.
        W = concat([W_x, W_h], axis=1)
        return act(affine(W, concat([x, h], axis=0), b), name=_output_name(layer, name))

    return _named(cell, "rnn_cell", name)


def rnn(name: str, hidden: int, activation: str = "tanh", return_sequences: bool = False, init=None,
        recurrent_init=None, bias_init=None) -> Layer:
    r"""An Elman RNN over the first per-example axis of a sequence x (T, D).

    h₀ = 0, h_t = σ(W_x x_{t-1} + W_h h_{t-1} + b)
    for t = 1 … T (x's rows read in order), by one :func:`rnn_cell` called
    ``name`` (params ``f"{name}.W_x"``, ``.W_h``, ``.b``, tied across the
    steps; initialisers as there). Step t's state is a node called
    ``f"{name}.h{t}"``. Returns the last state h_T (hidden,), or with
    ``return_sequences=True`` every state stacked, (T, hidden), as a node
    called ``name``. A second application needs ``name=`` for its own step
    names (the params stay shared). Backpropagation through time is the
    graph's ordinary backward pass over the unrolled steps.
    """
    cell = rnn_cell(name, hidden, activation, init, recurrent_init, bias_init)
    if not isinstance(return_sequences, bool):
        raise TypeError(f"layer {name!r}: return_sequences must be True or False, got {return_sequences!r}")

    layer = name

    def rnn_layer(x: Node, *, name: str | None = None) -> Node:
        prefix = _output_name(layer, name)
        _rank(layer, x, 2, "(T, D) (steps, features per step)", "a sequence")
        h = None  # h₀ = 0
        states = []
        for t in range(x.shape[0]):
            h = cell(getitem(x, t), h, name=f"{prefix}.h{t + 1}")
            states.append(h)
        return stack(states, axis=0, name=prefix) if return_sequences else h

    return _named(rnn_layer, "rnn", name)


# ---------------------------------------------------------------- composition


def residual(block: Layer) -> Layer:
    r"""A residual connection: x ↦ x + block(x) (He et al., 2016).

    ``block`` must keep the per-example shape; ∂J/∂x = g + (∂block/∂x)ᵀ g,
    the identity path carrying the gradient past the block unchanged. The
    sum is auto-named, or called by the call's ``name=``.
    """
    if not callable(block):
        raise TypeError(
            f"residual: block must be a function Node -> Node (a layer), got {type(block).__name__} {block!r}"
        )

    def residual_layer(x: Node, *, name: str | None = None) -> Node:
        _node("residual", x)
        fx = block(x)
        if not isinstance(fx, Node) or fx.shape != x.shape:
            got = f"per-example shape {fx.shape}" if isinstance(fx, Node) else type(fx).__name__
            raise ShapeError(
                f"residual: the block {getattr(block, '__name__', block)!r} must keep the per-example shape"
                f" {x.shape} of node {x.name!r} (x + block(x)), but it returns {got}"
            )
        return add(x, fx, name=name)

    return _named(residual_layer, "residual", getattr(block, "__name__", "block"))


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
