"""Element-wise primitives: activations, exp and log, arithmetic with broadcasting, scaling.

Each primitive is one block: its forward rule (the decorated function, whose
docstring gives the math), its VJPs and its shape rule. Arguments may carry
the batch axis; binary ops (and the n-ary ``add``) broadcast NumPy's way
and their VJPs return cotangents in the broadcast shape, which the
evaluator sums down to each argument's shape (``unbroadcast``).

**Domains.** The program checks shapes, never values: ``log`` of 0 is -inf
and of a negative number NaN, ``div`` by 0 is ±inf (0/0 NaN), ``exp``
above ~709.78 is inf, each with NumPy's RuntimeWarning, and these values
flow on into everything computed from them. ``fgraph.forward`` and
``value_and_grad`` return them as they are; ``fgraph.train.fit`` stops with
a ``DivergenceError`` when the objective or a gradient turns non-finite.
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


def _add_grad(position, g, out, a, b, *more):
    # One rule for every argument (add is variadic): each cotangent is g. The
    # two named arguments make the call of the binary add cheaper than *args.
    return g


@primitive(
    vjps=(_add_grad,),
    shape=broadcast_shape,
    broadcasts=True,
    unbroadcast=True,
    variadic=True,
    min_arity=2,
)
def add(a, b, *more):
    """a + b (+ c + ...) with NumPy broadcasting (the SumNode); every cotangent is g.

    Takes two or more nodes, ``add(a, b, c)`` or ``add([a, b, c])``, added
    left to right; ``add(a, b)`` is the binary node it always was.
    """
    if not more:
        return a + b
    out = a + b
    for c in more:
        out = out + c  # not in place: a later argument may broadcast the sum to a larger shape
    return out


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
    # ∂(a/b)/∂b = -a/b² = -(a/b)/b, from the stored output
    vjps=(lambda g, out, a, b: g / b, lambda g, out, a, b: -g * out / b),
    shape=broadcast_shape,
    broadcasts=True,
    unbroadcast=True,
)
def div(a, b):
    """Element-wise a / b with broadcasting (like ``mul``); cotangents g / b and -g a / b².

    Division by 0 gives ±inf (0 / 0 NaN) with NumPy's warning; the program
    checks shapes, not values, so these flow on (see the module's domains).
    """
    return a / b


@primitive(
    # ties (a == b) send the whole cotangent to a, none to b: it is never counted twice
    vjps=(lambda g, out, a, b: g * (a >= b), lambda g, out, a, b: g * (a < b)),
    shape=broadcast_shape,
    broadcasts=True,
    unbroadcast=True,
)
def maximum(a, b):
    """Element-wise max(a, b) with broadcasting; the cotangent goes to the larger argument.

    Tie rule: where a >= b the cotangent g goes to a (the first argument)
    and b gets 0, so at a tie the gradient is g for a and 0 for b, never
    g for both. NaN propagates, as NumPy's ``maximum`` does.
    """
    return np.maximum(a, b)


@primitive(
    vjps=(lambda g, out, a, c: c * g,),
    shape=same_shape,
    prepare=finite_config("c"),
)
def scale(a, c):
    """c·a for a constant float c (static config, not an input; ``scale(a, 2.0)``); cotangent c g."""
    return c * a


# ------------------------------------------------------------ exp and log

exp = Primitive(
    "exp",
    forward=np.exp,  # the ufunc itself
    vjps=(lambda g, out, a: g * out,),  # exp' = exp: the stored output
    shape=same_shape,
    doc="""Element-wise eᵃ; ∂J/∂a = g ⊙ eᵃ, from the stored output.

    Overflows to inf above a ≈ 709.78 (NumPy warns); see the module's domains.
    """,
)

log = Primitive(
    "log",
    forward=np.log,
    vjps=(lambda g, out, a: g / a,),
    shape=same_shape,
    doc="""Element-wise natural log ln(a) for a > 0; ∂J/∂a = g / a.

    Domain a > 0. log(0) is -inf (its cotangent ±inf) and log of a negative
    number NaN, with NumPy's RuntimeWarning: the compiled program checks
    shapes, not values, so forward and value_and_grad return these as they
    are, and fgraph.train.fit stops with a DivergenceError once the
    objective or a gradient is non-finite. For the log of a probability use
    log_softmax or softmax_cross_entropy, which never take log 0.
    """,
)

square = Primitive(
    "square",
    forward=np.square,
    vjps=(lambda g, out, a: (2.0 * g) * a,),
    shape=same_shape,
    doc="Element-wise a²; ∂J/∂a = 2 a ⊙ g.",
)

_logistic = sigmoid.forward  # σ, accurate in both tails (the raw rule, no node)


@primitive(vjps=(lambda g, out, a: g * _logistic(a),), shape=same_shape)
def softplus(a):
    """Element-wise softplus(a) = log(1 + eᵃ); ∂J/∂a = σ(a) g.

    Computed stably as max(a, 0) + log1p(e^-|a|): finite for every finite
    a (no overflow of eᵃ), a for large a, and eᵃ to full relative precision
    for very negative a. The VJP's σ(a) is sigmoid's two-branch formula,
    accurate in both tails.
    """
    return np.maximum(a, 0.0) + np.log1p(np.exp(-np.abs(a)))
