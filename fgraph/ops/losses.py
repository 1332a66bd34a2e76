r"""Losses: the per-example value, averaged over the batch, and the L2 penalty.

Each primitive is one block: shape rule, VJPs, then the forward rule with
the math in its docstring.

**Batch axis.** A loss (``reduces_batch``) returns the mean of the
per-example values, and its VJPs give the mean of the per-example
gradients, for every combination of batched and unbatched arguments: an
unbatched score vector meeting a batch of labels is broadcast to the
labels' batch inside the VJP, one row per example, and the evaluator sums
the rows back (``unbroadcast``).

**nll of a softmax.** ``nll(softmax(z), y)`` is built as the fused, stable
``nll_of_softmax(z, y)`` = logsumexp(z) - z_y (the rules of
:data:`softmax_cross_entropy`): the same value and the same gradient
softmax(z) - onehot(y), but finite for every finite logit, where the
literal composition gives inf and NaN once a probability underflows to 0
(logit gaps above ~745). The softmax node itself is unchanged and can
still be an output (the prediction).

``nll`` of a probability of exactly 0 is ``inf`` (with a
:class:`ZeroProbabilityWarning`); use ``softmax_cross_entropy`` on logits,
which is finite for every finite input.
"""

from __future__ import annotations

import warnings

import attrs
import numpy as np

from fgraph import kernels
from fgraph.errors import ShapeError
from fgraph.ops.probability import last_sum, shift, softmax
from fgraph.ops.shapes import scalar_shape
from fgraph.primitive import finite_config, primitive


class ZeroProbabilityWarning(RuntimeWarning):
    """``nll`` met a probability of exactly 0 for the true class: the loss is inf."""


def squared_norm(d):
    """Σ d², with the cheapest NumPy call for the rank (``dot`` does not flatten)."""
    if d.ndim == 0:
        return d * d
    return d.dot(d) if d.ndim == 1 else np.vdot(d, d)


def _examples(d, ndim: int):
    """Number of examples in ``d``: its batch size, or 1 without a batch axis."""
    return d.shape[0] if d.ndim > ndim else 1


def _mean(v):
    """The mean over the batch, or ``v`` itself for one example (a NumPy scalar)."""
    return v if v.ndim == 0 else v.mean()


# ----------------------------------------------------- squared_l2_distance


def _equal_shapes(a: tuple, b: tuple, **_) -> tuple:
    # Strictly equal, so the classic (n, 1) - (n,) -> (n, n) mistake cannot happen.
    if a != b:
        raise ShapeError(f"the two arguments must have the same shape, got {a} and {b}")
    return ()


def _sqdist_grad(sign):
    def vjp(g, out, a, b, ndim):
        d = a - b
        return (sign * 2 * g / _examples(d, ndim)) * d

    return vjp


def _example_rank(prim, nodes, config):
    # The per-example rank tells a batch axis from the example's own axes.
    return prim, nodes, {**config, "ndim": len(nodes[0].shape)}


@primitive(
    vjps=(_sqdist_grad(1), _sqdist_grad(-1)),
    shape=_equal_shapes,
    reduces_batch=True,
    unbroadcast=True,
    prepare=_example_rank,
    derived=("ndim",),
)
def squared_l2_distance(a, b, ndim):
    """‖a - b‖² per example, averaged over the batch (the SquaredL2DistanceNode).

    a and b must have the same per-example shape. VJP: ∂/∂a = 2 g (a - b) / B.
    """
    d = a - b
    n = _examples(d, ndim)
    return squared_norm(d) if n == 1 else squared_norm(d) / n


# --------------------------------------------------------- l2_norm_penalty


@primitive(
    vjps=(lambda g, out, w, l2_reg: (2 * l2_reg * g) * w,),
    shape=scalar_shape,
    reduces_batch=True,
    unbatched_args=(0,),
    prepare=finite_config("l2_reg", nonnegative=True),
)
def l2_norm_penalty(w, l2_reg):
    """l2_reg · ‖w‖² for a parameter w (the L2NormPenaltyNode; ``l2_norm_penalty(w, 1.0)``); VJP 2 l2_reg g w."""
    return l2_reg * squared_norm(w)


# ---------------------------------------------------- classification losses


def _label_shape(p, y, **_):
    if len(p) != 1 or y != ():
        raise ShapeError(f"needs scores (k,) and a label (); got {p} and {y}")
    return ()


def _picked(p, y):
    """``p[y]`` per example: the score of each example's label."""
    return p[y] if p.ndim == 1 else p[np.arange(p.shape[0]), y]


def _with_label_batch(scores, y):
    """An unbatched score vector (a parameter, say) repeated for each label of
    a batch: the VJP then returns one row per example, and the evaluator sums
    the rows (``unbroadcast``), so repeated labels add up and the batch mean
    holds. Only called when the labels carry a batch axis that the scores do
    not (``scores.ndim == y.ndim``)."""
    return np.broadcast_to(scores, y.shape + scores.shape)


def _nll_grad_p(g, out, p, y):
    if p.ndim == y.ndim:
        p = _with_label_batch(p, y)
    py = _picked(p, y)
    grad = np.zeros(p.shape)  # np.zeros_like costs five times more on small arrays
    rows = y if p.ndim == 1 else (np.arange(p.shape[0]), y)
    scale = -(g / _examples(p, 1))
    if kernels.all_positive(py):
        return kernels.set_at(grad, rows, scale / py)
    with np.errstate(divide="ignore"):  # -inf at a zero probability (the loss is inf), never NaN
        return kernels.set_at(grad, rows, scale / py)


def _fuse_with_softmax(prim, nodes, config):
    # nll(softmax(z), y) -> nll_of_softmax(z, y): same value and gradient, never log 0.
    p, y = nodes
    if p.op is softmax and len(p.shape) == 1:
        return nll_of_softmax, (p.inputs[0], y), config
    return prim, nodes, config


@primitive(
    vjps=(_nll_grad_p, None),
    shape=_label_shape,
    reduces_batch=True,
    label_arg=1,
    unbroadcast=True,
    prepare=_fuse_with_softmax,
)
def nll(p, y):
    """-log p[y] per example, averaged over the batch; y holds integer labels.

    VJP: -g / p[y] at the label, 0 elsewhere (over a batch, each example's
    row divided by B; an unbatched p meeting a batch of labels gets the sum
    of those rows, so repeated labels add up). A probability of exactly 0
    gives inf and a ZeroProbabilityWarning; prefer softmax_cross_entropy.

    When ``p`` is a softmax node, ``p = softmax(z)``, the node built is
    ``nll_of_softmax(z, y)``: the fused, stable logsumexp(z) - z[y] of
    ``softmax_cross_entropy``, with the same value and the analytic
    gradient softmax(z) - onehot(y), finite for every finite logit (the
    literal composition gives inf and NaN once p[y] underflows, at logit
    gaps above ~745). The softmax node is left as it is, so it can still be
    an output (the prediction); the objective just no longer reads it.
    """
    py = _picked(p, y)
    if kernels.all_positive(py):
        return -_mean(np.log(py))
    warnings.warn(
        "nll: the probability of the true class is exactly 0, so the loss is inf;"
        " use softmax_cross_entropy on logits for a finite, stable loss",
        ZeroProbabilityWarning,
        stacklevel=2,
    )
    with np.errstate(divide="ignore"):
        return -_mean(np.log(py))


def _sce_grad_z(g, out, z, y):
    # (softmax(z) - onehot(y)) g / B, built in place on the fresh exp array.
    if z.ndim == y.ndim:
        z = _with_label_batch(z, y)
    e = np.exp(shift(z))
    if z.ndim == 1:
        e *= g / e.sum()
        return kernels.add_at(e, y, -g)
    c = g / z.shape[0]
    e *= c / e.sum(axis=-1, keepdims=True)
    return kernels.add_at(e, (np.arange(z.shape[0]), y), -c)


@primitive(
    vjps=(_sce_grad_z, None),
    shape=_label_shape,
    reduces_batch=True,
    label_arg=1,
    unbroadcast=True,
)
def softmax_cross_entropy(logits, y):
    """-log softmax(logits)[y] per example, averaged over the batch, fused.

    Computed as logsumexp(z) - z[y] with the max shifted out, so it is
    finite for every finite logit. VJP: (softmax(z) - onehot(y)) g / B per
    example; unbatched logits meeting a batch of labels get the sum of the
    rows, softmax(z) g - (label counts) g / B.
    """
    s = shift(logits)
    lse = np.log(last_sum(np.exp(s), keepdims=False))
    return _mean(lse - _picked(s, y))


nll_of_softmax = attrs.evolve(
    softmax_cross_entropy,
    name="nll_of_softmax",
    doc="""What ``nll(softmax(z), y)`` is built as: the rules of ``softmax_cross_entropy``.

    -log softmax(z)[y] = logsumexp(z) - z[y] per example, averaged over the
    batch, finite for every finite logit; VJP (softmax(z) - onehot(y)) g / B.
    The name says where the node came from.
    """,
)
