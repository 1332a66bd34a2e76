"""Element-wise primitives: activations, arithmetic with broadcasting, scaling.

Each primitive is one block: its forward rule (the decorated function, whose
docstring gives the math), its VJPs and its shape rule. Arguments may carry
the batch axis; binary ops broadcast NumPy's way and their VJPs return
cotangents in the broadcast shape, which the evaluator sums down to each
argument's shape (``unbroadcast``).
"""

from __future__ import annotations

import numpy as np

from fgraph.ops.shapes import broadcast_shape, same_shape
from fgraph.primitive import Primitive, finite_config, primitive

# ------------------------------------------------------------- activations

tanh = Primitive(
    "tanh",
    forward=np.tanh,  # the ufunc itself: no Python frame per call
    # tanh' = 1 - tanh², from the stored output; g - g·s·s saves a scalar-array op on g·(1 - s·s)
    vjps=(lambda g, out, a: g - g * out * out,),
    shape=same_shape,
    doc="Element-wise tanh; ∂J/∂A = ∂J/∂S ⊙ (1 - S²) with S = tanh(A) the stored output.",
)


@primitive(
    vjps=(lambda g, out, a: g * (a > 0),),  # derivative 0 at the kink a = 0
    shape=same_shape,
)
def relu(a):
    """Element-wise max(a, 0); the derivative is 1 for a > 0 and 0 for a <= 0 (0 at the kink)."""
    return np.maximum(a, 0.0)


def _sigmoid_grad(g, out, a):
    # σ'(a) = σ(a) σ(-a) = e / (1 + e)² with e = exp(-|a|): symmetric and free of
    # the cancellation in 1 - σ(a) once σ(a) rounds to 1 (a > 37).
    e = np.exp(-np.abs(a))
    d = 1.0 + e
    return g * (e / (d * d))


@primitive(vjps=(_sigmoid_grad,), shape=same_shape)
def sigmoid(a):
    """Element-wise σ(a) = 1 / (1 + e^-a); σ' = σ(a) σ(-a).

    Computed in two branches (1 / (1 + e^-a) for a >= 0, eᵃ / (eᵃ + 1) below)
    so that it never overflows and keeps full relative precision in both
    tails; the VJP is e / (1 + e)² with e = e^-|a|, accurate where 1 - σ
    would round to 0.
    """
    # σ(a) = eᵐ / (eᵐ + e^(m-a)) with m = min(a, 0): 1 / (1 + e^-a) for a >= 0 and
    # eᵃ / (eᵃ + 1) for a < 0. Both exponents are <= 0, so nothing overflows, and
    # nothing cancels: a few ulps of relative error on the whole line, tails
    # included (0.5 + 0.5 tanh(a/2) loses every digit below a ≈ -37).
    m = np.minimum(a, 0.0)
    n = np.exp(m)
    return n / (n + np.exp(m - a))


# -------------------------------------------------------------- arithmetic


@primitive(
    vjps=(lambda g, out, a, b: g, lambda g, out, a, b: g),
    shape=broadcast_shape,
    broadcasts=True,
    unbroadcast=True,
)
def add(a, b):
    """a + b with NumPy broadcasting (the SumNode); both cotangents are g."""
    return a + b


@primitive(
    vjps=(lambda g, out, a, b: g, lambda g, out, a, b: -g),
    shape=broadcast_shape,
    broadcasts=True,
    unbroadcast=True,
)
def sub(a, b):
    """a - b with NumPy broadcasting; cotangents g and -g."""
    return a - b


@primitive(
    vjps=(lambda g, out, a, b: g * b, lambda g, out, a, b: g * a),
    shape=broadcast_shape,
    broadcasts=True,
    unbroadcast=True,
)
def mul(a, b):
    """Hadamard product a ⊙ b with broadcasting; cotangents g ⊙ b and g ⊙ a."""
    return a * b


@primitive(
    vjps=(lambda g, out, a, c: c * g,),
    shape=same_shape,
    prepare=finite_config("c"),
)
def scale(a, c):
    """c·a for a constant float c (static config, not an input; ``scale(a, 2.0)``); cotangent c g."""
    return c * a
