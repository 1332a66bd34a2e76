"""Scores to probabilities over the last axis: softmax and log-softmax.

Each primitive is one block: shape rule, VJPs, then the forward rule with
the math in its docstring. Both shift the scores by their max first, so
``exp`` never overflows. The helpers below are shared with the
classification losses in :mod:`fgraph.ops.losses`.

One example (a 1-D vector of scores) is the hot path of per-example
training: reductions without ``axis=`` cost a fraction of the axis forms
there, so each helper picks the cheaper form for the rank.
"""

from __future__ import annotations

import numpy as np

from fgraph.errors import ShapeError
from fgraph.primitive import primitive


def shift(z):
    """z - max z over the last axis (so exp never overflows).

    For one example z[z.argmax()] is the max (NaN included) at a third of
    the cost of z.max(), which goes through NumPy's Python-level wrapper.
    """
    return z - z[z.argmax()] if z.ndim == 1 else z - z.max(axis=-1, keepdims=True)


def last_sum(e, keepdims=True):
    """Σ over the last axis (kept as length 1 when ``keepdims``, for broadcasting)."""
    return e.sum() if e.ndim == 1 else e.sum(axis=-1, keepdims=keepdims)


def _last_dot(a, b):
    """Σ a ⊙ b over the last axis, kept for broadcasting."""
    return a.dot(b) if a.ndim == 1 else (a * b).sum(axis=-1, keepdims=True)


def _last_axis_shape(z, **_):
    if len(z) < 1:
        raise ShapeError(f"needs at least one axis (the classes), got {z}")
    return z


@primitive(
    vjps=(lambda g, out, z: out * (g - _last_dot(g, out)),),
    shape=_last_axis_shape,
)
def softmax(z):
    """softmax(z)_i = exp(z_i - max z) / Σ_j exp(z_j - max z) over the last axis.

    VJP: s ⊙ (g - ⟨g, s⟩).
    """
    e = np.exp(shift(z))
    return e / last_sum(e)


@primitive(
    vjps=(lambda g, out, z: g - np.exp(out) * last_sum(g),),
    shape=_last_axis_shape,
)
def log_softmax(z):
    """log softmax(z) = z - max z - log Σ exp(z - max z) (log-sum-exp, never log 0).

    VJP: g - softmax(z) Σ g.
    """
    s = shift(z)
    return s - np.log(last_sum(np.exp(s)))
