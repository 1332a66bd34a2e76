r"""Primitives and the functions that build nodes from them.

A :class:`Primitive` is one forward rule, one vector-Jacobian product (VJP)
per argument and one shape rule. The evaluator knows nothing about any
particular primitive, so adding one never touches it::

    cube = Primitive(
        name="cube",
        forward=lambda a: a ** 3,
        vjps=(lambda g, out, a: 3 * g * a * a,),
        shape=same_shape,
    )
    node = apply(cube, x)

**Batch axis.** Rules receive arrays that may carry one leading batch axis
B (see DESIGN: batch convention): an argument that depends on data has shape
``(B,) + per-example shape`` when the data has a batch, a parameter never
has it. A forward rule must then return ``(B,) + per-example output shape``
(a loss, with ``reduces_batch``, returns the mean over the batch), and each
VJP must return its argument's shape, or, for a primitive with
``unbroadcast=True``, the broadcast shape of the arguments (the batch axis
included), which the evaluator sums down to the argument's shape
(:func:`fgraph.program.sum_to_shape`). Losses therefore give the mean of
the per-example values and gradients for every combination of batched and
unbatched arguments: an unbatched score vector meeting a batch of labels is
broadcast to the labels' batch inside the VJP, one row per example, and the
rows are summed back by the evaluator.

**Config is bound by name.** Static arguments (``l2_reg``, the ``c`` of
``scale``) are given to :func:`apply` as keywords and bound to the forward
rule's parameters after its array arguments, in the rule's order, whatever
the order of the keywords; missing parameters take the rule's defaults and
unknown keys are a ``TypeError``. The node's ``config`` keeps that bound
order and the compiled program passes it positionally (keyword arguments
would cost a dictionary per call on the hot path); every VJP receives the
same values in the same order after ``g, out, *args``. A rule whose
signature cannot be read, a forward rule that is a NumPy ufunc (its extra
positional parameter is the ``out`` buffer) and one that takes ``*args``
take no config, unless the primitive lists its config with
``Primitive(config_names=...)``.

**nll of a softmax.** ``nll(softmax(z), y)`` is rewritten when the node is
built into the fused, stable ``nll_of_softmax(z, y)`` = logsumexp(z) - z_y
(the rules of :func:`softmax_cross_entropy`): the same value and the same
gradient softmax(z) - onehot(y), but finite for every finite logit, where
the literal composition gives inf and NaN once a probability underflows to
0 (logit gaps above ~745). The softmax node itself is unchanged and can
still be an output (the prediction).

Conventions at kinks: ``relu`` has derivative 0 at 0. ``nll`` of a
probability of exactly 0 is ``inf`` (with a :class:`ZeroProbabilityWarning`);
use :func:`softmax_cross_entropy` on logits, which is finite for every finite
input.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import warnings
from collections.abc import Callable
from types import MappingProxyType

import attrs
import numpy as np

from fgraph.errors import GraphError, ShapeError
from fgraph.graph import Node, check_name


class ZeroProbabilityWarning(RuntimeWarning):
    """``nll`` met a probability of exactly 0 for the true class: the loss is inf."""


_REQUIRED = inspect.Parameter.empty
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _positional_parameters(rule):
    """The positional parameters of ``rule``, or None when they cannot be
    named: the signature cannot be read, or ``*args`` takes them."""
    try:
        parameters = inspect.signature(rule).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature
        return None
    positional = []
    for p in parameters:
        if p.kind is p.VAR_POSITIONAL:
            return None
        if p.kind in _POSITIONAL:
            positional.append(p)
    return positional


def _config_parameters(prim: Primitive) -> tuple:
    """``((name, default), ...)``: the config the rules take, in the order they take it.

    Read from the forward rule's positional parameters after its array
    arguments (``default`` is ``inspect.Parameter.empty`` when required),
    or from ``prim.config_names``; checked against every VJP's parameters
    after ``g, out, *args``, so that a rule that would receive another
    rule's order is refused when the primitive is made.
    """
    arity = len(prim.vjps)
    if prim.config_names is not None:
        names = tuple(prim.config_names)
        if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
            raise TypeError(f"primitive {prim.name!r}: config_names must be distinct strings, got {names!r}")
        return tuple((n, _REQUIRED) for n in names)
    # A ufunc's extra positional parameter is its output buffer, never config.
    positional = None if isinstance(prim.forward, np.ufunc) else _positional_parameters(prim.forward)
    if positional is None:
        return ()
    if len(positional) < arity:
        raise TypeError(
            f"primitive {prim.name!r}: the forward rule takes {len(positional)} positional arguments,"
            f" but the primitive has {arity} (one VJP per argument)"
        )
    config = tuple((p.name, p.default) for p in positional[arity:])
    names = [n for n, _ in config]
    for i, vjp in enumerate(prim.vjps):
        theirs = None if vjp is None else _positional_parameters(vjp)
        if theirs is None:
            continue
        if len(theirs) < 2 + arity or [p.name for p in theirs[2 + arity :]] != names:
            raise TypeError(
                f"primitive {prim.name!r}: VJP {i} takes {[p.name for p in theirs]}, but every rule"
                f" receives (g, out, *args, *config) with {arity} args and the config in the forward"
                f" rule's order, {names}"
            )
    return config


@attrs.frozen(eq=False)
class Primitive:
    """A differentiable operation.

    - ``forward(*args, *config) -> out``
    - ``vjps[i](g, out, *args, *config) -> cotangent of args[i]`` (``None``
      for an argument that is not differentiable, such as integer labels)
    - ``shape(*per_example_shapes, **config) -> per-example output shape``,
      raising ``ShapeError`` with a message when the shapes do not fit.
    - ``reduces_batch``: the output has no batch axis (losses, ``sum``).
    - ``unbatched_args``: arguments that must not carry the batch axis
      (the weights of an affine map).
    - ``label_arg``: the argument holding integer class labels, whose number
      of classes is the last axis of argument 0.
    - ``broadcasts``: arguments broadcast against each other element-wise;
      a batched argument must then have the output's rank, so that its
      batch axis lines up with the others'.
    - ``unbroadcast``: a VJP may return a cotangent in the arguments'
      broadcast shape (with the batch axis for an unbatched argument); the
      evaluator sums it down to the argument's shape. False when every VJP
      already returns its argument's exact shape, which saves a call.
    - ``config_names``: the names of the config, in the order the rules
      receive it; ``None`` (the default) reads them from the forward
      rule's signature (see below).

    Arrays: every argument may carry the leading batch axis B when it
    depends on data (parameters never do). ``forward`` then returns
    ``(B,) + per-example output shape`` (a loss: the mean over the batch,
    a scalar), and ``vjps[i]`` returns ``args[i]``'s shape, or, when
    ``unbroadcast``, the broadcast shape of the arguments.

    Config is bound by name: :func:`apply`'s keywords are matched to the
    forward rule's positional parameters after its ``len(vjps)`` array
    arguments (defaults fill what is not given), and the rules receive the
    values positionally in that order. Each VJP's parameters after
    ``g, out, *args`` must have the same names in the same order, which is
    checked here. A forward rule that is a NumPy ufunc, takes ``*args`` or
    has no readable signature takes no config unless ``config_names`` is
    given. ``config_parameters`` holds the result,
    ``((name, default), ...)``.
    """

    name: str
    forward: Callable
    vjps: tuple
    shape: Callable
    reduces_batch: bool = False
    unbatched_args: tuple = ()
    label_arg: int | None = None
    broadcasts: bool = False
    unbroadcast: bool = False
    config_names: tuple | None = None
    config_parameters: tuple = attrs.field(init=False, repr=False, default=attrs.Factory(_config_parameters, takes_self=True))


def _structural_name(prim: Primitive, inputs, config) -> str:
    """A deterministic name from the op, its inputs' names and its config.

    Equal structure gives an equal name, so repeated subexpressions are
    evaluated once; no counter, hence no global state.
    """
    key = repr((prim.name, tuple(n.name for n in inputs), sorted(config.items())))
    return f"{prim.name}_{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def _bind_config(prim: Primitive, config: dict, label: str | None = None) -> dict:
    """``config`` keyed and ordered as ``prim``'s rules take it, defaults filled in.

    A ``TypeError`` naming the primitive and the keys for a key the rules do
    not take or a required one that is missing.
    """
    label = label or prim.name
    parameters = prim.config_parameters
    names = [n for n, _ in parameters]
    unknown = [k for k in config if k not in names]
    if unknown:
        takes = f"takes config {names}" if names else "takes no config"
        raise TypeError(
            f"{label} {takes}, got unexpected {unknown} (config is bound by name to the forward"
            f" rule's parameters after its {len(prim.vjps)} array arguments, or to Primitive.config_names)"
        )
    missing = [n for n, default in parameters if n not in config and default is _REQUIRED]
    if missing:
        raise TypeError(f"{label} needs config {missing} (it takes {names}), got {sorted(config)}")
    return {n: config.get(n, default) for n, default in parameters}


def apply(prim: Primitive, *inputs: Node, name: str | None = None, **config) -> Node:
    """Build the node ``prim(*inputs)``, checking shapes now, not at run time.

    ``config`` is bound by name to the rules' config parameters (see
    :class:`Primitive`), so the order of the keywords never matters.
    """
    label = f"{prim.name}" + (f" node {name!r}" if name is not None else "")
    if name is not None:
        check_name(name)
    if len(inputs) != len(prim.vjps):
        raise TypeError(f"{label} takes {len(prim.vjps)} nodes, got {len(inputs)}")
    for i, node in enumerate(inputs):
        if not isinstance(node, Node):
            raise TypeError(
                f"{label}: argument {i} must be a Node (from fgraph.input, fgraph.param"
                f" or an op), got {type(node).__name__}"
            )
    config = _bind_config(prim, config, label)
    described = ", ".join(f"{n.name!r} {n.shape}" for n in inputs)
    try:
        shape = tuple(prim.shape(*(n.shape for n in inputs), **config))
    except ShapeError as e:
        raise ShapeError(f"{label}: {e} (inputs: {described})") from None
    for i in prim.unbatched_args:
        if inputs[i].batched:
            raise ShapeError(
                f"{label}: argument {i} ({inputs[i].name!r}) depends on data and would carry"
                f" the batch axis; it must be a parameter or computed from parameters only"
            )
    if prim.label_arg is not None and inputs[prim.label_arg].role != "input":
        raise GraphError(f"{label}: the labels ({inputs[prim.label_arg].name!r}) must be a data input")
    batched = not prim.reduces_batch and any(n.batched for n in inputs)
    if batched and prim.broadcasts:
        for n in inputs:
            if n.batched and len(n.shape) != len(shape):
                raise ShapeError(
                    f"{label}: {n.name!r} has per-example shape {n.shape} and carries the batch"
                    f" axis, so it cannot broadcast to the output shape {shape}"
                )
    return Node(
        name=name if name is not None else _structural_name(prim, inputs, config),
        role="op",
        op=prim,
        inputs=tuple(inputs),
        shape=shape,
        config=MappingProxyType(config),
        batched=batched,
        auto_name=name is None,
    )


# ---------------------------------------------------------------- shape rules


def same_shape(a: tuple, **_) -> tuple:
    """Shape rule of element-wise unary ops: the output has the input's shape."""
    return a


def broadcast_shape(a: tuple, b: tuple, **_) -> tuple:
    """Shape rule of element-wise binary ops: NumPy broadcasting."""
    try:
        return np.broadcast_shapes(a, b)
    except ValueError:
        raise ShapeError(f"shapes {a} and {b} do not broadcast") from None


def _equal_shapes(a: tuple, b: tuple, **_) -> tuple:
    # Strictly equal, so the classic (n, 1) - (n,) -> (n, n) mistake cannot happen.
    if a != b:
        raise ShapeError(f"the two arguments must have the same shape, got {a} and {b}")
    return ()


def _vector_scalar_affine_shape(x, w, b, **_):
    if len(x) != 1 or w != x or b != ():
        raise ShapeError(f"needs x (d,), w (d,), b (); got x {x}, w {w}, b {b}")
    return ()


def _affine_shape(W, x, b, **_):
    if len(W) != 2 or x != W[1:] or b != W[:1]:
        raise ShapeError(f"needs W (m, d), x (d,), b (m,); got W {W}, x {x}, b {b}")
    return W[:1]


def _last_axis_shape(z, **_):
    if len(z) < 1:
        raise ShapeError(f"needs at least one axis (the classes), got {z}")
    return z


def _label_shape(p, y, **_):
    if len(p) != 1 or y != ():
        raise ShapeError(f"needs scores (k,) and a label (); got {p} and {y}")
    return ()


def _matmul_shape(a, b, **_):
    if not (1 <= len(a) <= 2 and 1 <= len(b) <= 2) or a[-1] != b[0]:
        raise ShapeError(f"needs (m, k) or (k,) times (k, n) or (k,); got {a} and {b}")
    return a[:-1] + b[1:]


def _scalar_shape(a, **_):
    return ()


# ----------------------------------------------------------- forward and VJPs


def _examples(d, ndim: int):
    """Number of examples in ``d``: its batch size, or 1 without a batch axis."""
    return d.shape[0] if d.ndim > ndim else 1


def _vsa_grad_w(g, out, x, w, b):
    # g () and x (d,): g x; g (B,) and x (B, d): Σ_b g_b x_b, the batch summed by the product.
    return g * x if g.ndim == 0 else g.dot(x)


def _affine_grad_W(g, out, W, x, b):
    # One example: the outer product g xᵀ (g[:, None] * x is cheaper than
    # np.multiply.outer); a batch: Σ_b g_b x_bᵀ = gᵀ x in one matrix product.
    return g[:, None] * x if g.ndim == 1 else g.T.dot(x)


def _affine_grad_b(g, out, W, x, b):
    return g if g.ndim == 1 else g.sum(0)


def squared_norm(d):
    """Σ d², with the cheapest NumPy call for the rank (``dot`` does not flatten)."""
    if d.ndim == 0:
        return d * d
    return d.dot(d) if d.ndim == 1 else np.vdot(d, d)


def _sqdist_forward(a, b, ndim):
    d = a - b
    n = _examples(d, ndim)
    return squared_norm(d) if n == 1 else squared_norm(d) / n


def _sqdist_grad(sign):
    def vjp(g, out, a, b, ndim):
        d = a - b
        return (sign * 2 * g / _examples(d, ndim)) * d

    return vjp


# One example (a 1-D vector of scores) is the hot path of per-example
# training: reductions without axis= cost a fraction of the axis forms there.


def _shift(z):
    """z - max z over the last axis (so exp never overflows).

    For one example z[z.argmax()] is the max (NaN included) at a third of
    the cost of z.max(), which goes through NumPy's Python-level wrapper.
    """
    return z - z[z.argmax()] if z.ndim == 1 else z - z.max(axis=-1, keepdims=True)


def _last_sum(e, keepdims=True):
    """Σ over the last axis (kept as length 1 when ``keepdims``, for broadcasting)."""
    return e.sum() if e.ndim == 1 else e.sum(axis=-1, keepdims=keepdims)


def _last_dot(a, b):
    """Σ a ⊙ b over the last axis, kept for broadcasting."""
    return a.dot(b) if a.ndim == 1 else (a * b).sum(axis=-1, keepdims=True)


def _mean(v):
    """The mean over the batch, or ``v`` itself for one example (a NumPy scalar)."""
    return v if v.ndim == 0 else v.mean()


def _all_positive(v) -> bool:
    return bool(v > 0) if v.ndim == 0 else v.min() > 0


def _softmax(z):
    e = np.exp(_shift(z))
    return e / _last_sum(e)


def _log_softmax(z):
    s = _shift(z)
    return s - np.log(_last_sum(np.exp(s)))


def _picked(p, y):
    """``p[y]`` per example: the score of each example's label."""
    return p[y] if p.ndim == 1 else p[np.arange(p.shape[0]), y]


def _nll_forward(p, y):
    py = _picked(p, y)
    if _all_positive(py):
        return -_mean(np.log(py))
    warnings.warn(
        "nll: the probability of the true class is exactly 0, so the loss is inf;"
        " use softmax_cross_entropy on logits for a finite, stable loss",
        ZeroProbabilityWarning,
        stacklevel=2,
    )
    with np.errstate(divide="ignore"):
        return -_mean(np.log(py))


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
    if _all_positive(py):
        grad[rows] = scale / py
    else:  # -inf at a zero probability (the loss is inf), never NaN
        with np.errstate(divide="ignore"):
            grad[rows] = scale / py
    return grad


def _sce_forward(z, y):
    s = _shift(z)
    lse = np.log(_last_sum(np.exp(s), keepdims=False))
    return _mean(lse - _picked(s, y))


def _sce_grad_z(g, out, z, y):
    # (softmax(z) - onehot(y)) g / B, built in place on the fresh exp array.
    if z.ndim == y.ndim:
        z = _with_label_batch(z, y)
    e = np.exp(_shift(z))
    if z.ndim == 1:
        e *= g / e.sum()
        e[y] -= g
        return e
    c = g / z.shape[0]
    e *= c / e.sum(axis=-1, keepdims=True)
    e[np.arange(z.shape[0]), y] -= c
    return e


def _matmul_forward(a, b, a_vec, b_vec):
    out = np.matmul(a[..., None, :] if a_vec else a, b[..., None] if b_vec else b)
    return _squeeze(out, a_vec, b_vec)


def _squeeze(out, a_vec, b_vec):
    if a_vec and b_vec:
        return out[..., 0, 0]
    if a_vec:
        return out[..., 0, :]
    if b_vec:
        return out[..., 0]
    return out


def _matmul_grads(g, a, b, a_vec, b_vec):
    """Cotangents of a @ b in their matrix forms: g b^T and a^T g."""
    A = a[..., None, :] if a_vec else a
    Bm = b[..., None] if b_vec else b
    G = g
    if b_vec:
        G = G[..., None]
    if a_vec:
        G = G[..., None, :]
    return np.matmul(G, np.swapaxes(Bm, -1, -2)), np.matmul(np.swapaxes(A, -1, -2), G)


def _matmul_grad_a(g, out, a, b, a_vec, b_vec):
    ga = _matmul_grads(g, a, b, a_vec, b_vec)[0]
    return ga[..., 0, :] if a_vec else ga


def _matmul_grad_b(g, out, a, b, a_vec, b_vec):
    gb = _matmul_grads(g, a, b, a_vec, b_vec)[1]
    return gb[..., 0] if b_vec else gb


def _sigmoid(a):
    # σ(a) = eᵐ / (eᵐ + e^(m-a)) with m = min(a, 0): 1 / (1 + e^-a) for a >= 0 and
    # eᵃ / (eᵃ + 1) for a < 0. Both exponents are <= 0, so nothing overflows, and
    # nothing cancels: a few ulps of relative error on the whole line, tails
    # included (0.5 + 0.5 tanh(a/2) loses every digit below a ≈ -37).
    m = np.minimum(a, 0.0)
    n = np.exp(m)
    return n / (n + np.exp(m - a))


def _sigmoid_grad(g, out, a):
    # σ'(a) = σ(a) σ(-a) = e / (1 + e)² with e = exp(-|a|): symmetric and free of
    # the cancellation in 1 - σ(a) once σ(a) rounds to 1 (a > 37).
    e = np.exp(-np.abs(a))
    d = 1.0 + e
    return g * (e / (d * d))


# ----------------------------------------------------------------- registry

VECTOR_SCALAR_AFFINE = Primitive(
    "vector_scalar_affine",
    forward=lambda x, w, b: x.dot(w) + b,
    vjps=(
        lambda g, out, x, w, b: g * w if g.ndim == 0 else np.multiply.outer(g, w),
        _vsa_grad_w,
        lambda g, out, x, w, b: g if g.ndim == 0 else g.sum(),
    ),
    shape=_vector_scalar_affine_shape,
    unbatched_args=(1, 2),
)
AFFINE = Primitive(
    "affine",
    forward=lambda W, x, b: (W.dot(x) if x.ndim == 1 else x.dot(W.T)) + b,
    vjps=(_affine_grad_W, lambda g, out, W, x, b: g.dot(W), _affine_grad_b),
    shape=_affine_shape,
    unbatched_args=(0, 2),
)
TANH = Primitive(
    "tanh",
    forward=np.tanh,
    # tanh' = 1 - tanh², from the stored output; g - g·s·s saves a scalar-array op on g·(1 - s·s)
    vjps=(lambda g, out, a: g - g * out * out,),
    shape=same_shape,
)
RELU = Primitive(
    "relu",
    forward=lambda a: np.maximum(a, 0.0),
    vjps=(lambda g, out, a: g * (a > 0),),  # derivative 0 at the kink a = 0
    shape=same_shape,
)
SIGMOID = Primitive(
    "sigmoid",
    forward=_sigmoid,
    vjps=(_sigmoid_grad,),
    shape=same_shape,
)
ADD = Primitive(
    "add",
    forward=lambda a, b: a + b,
    vjps=(lambda g, out, a, b: g, lambda g, out, a, b: g),
    shape=broadcast_shape,
    broadcasts=True,
    unbroadcast=True,
)
SUB = Primitive(
    "sub",
    forward=lambda a, b: a - b,
    vjps=(lambda g, out, a, b: g, lambda g, out, a, b: -g),
    shape=broadcast_shape,
    broadcasts=True,
    unbroadcast=True,
)
MUL = Primitive(
    "mul",
    forward=lambda a, b: a * b,
    vjps=(lambda g, out, a, b: g * b, lambda g, out, a, b: g * a),
    shape=broadcast_shape,
    broadcasts=True,
    unbroadcast=True,
)
SCALE = Primitive(
    "scale",
    forward=lambda a, c: c * a,
    vjps=(lambda g, out, a, c: c * g,),
    shape=same_shape,
)
MATMUL = Primitive(
    "matmul",
    forward=_matmul_forward,
    vjps=(_matmul_grad_a, _matmul_grad_b),
    shape=_matmul_shape,
    unbroadcast=True,
)
SUM = Primitive(
    "sum",
    forward=lambda a: a.sum(),
    vjps=(lambda g, out, a: np.full(a.shape, g),),
    shape=_scalar_shape,
    reduces_batch=True,
)
MEAN = Primitive(
    "mean",
    forward=lambda a: a.mean(),
    vjps=(lambda g, out, a: np.full(a.shape, g / a.size),),
    shape=_scalar_shape,
    reduces_batch=True,
)
SOFTMAX = Primitive(
    "softmax",
    forward=_softmax,
    vjps=(lambda g, out, z: out * (g - _last_dot(g, out)),),
    shape=_last_axis_shape,
)
LOG_SOFTMAX = Primitive(
    "log_softmax",
    forward=_log_softmax,
    vjps=(lambda g, out, z: g - np.exp(out) * _last_sum(g),),
    shape=_last_axis_shape,
)
SQUARED_L2_DISTANCE = Primitive(
    "squared_l2_distance",
    forward=_sqdist_forward,
    vjps=(_sqdist_grad(1), _sqdist_grad(-1)),
    shape=_equal_shapes,
    reduces_batch=True,
    unbroadcast=True,
)
L2_NORM_PENALTY = Primitive(
    "l2_norm_penalty",
    forward=lambda w, l2_reg: l2_reg * squared_norm(w),
    vjps=(lambda g, out, w, l2_reg: (2 * l2_reg * g) * w,),
    shape=_scalar_shape,
    reduces_batch=True,
    unbatched_args=(0,),
)
NLL = Primitive(
    "nll",
    forward=_nll_forward,
    vjps=(_nll_grad_p, None),
    shape=_label_shape,
    reduces_batch=True,
    label_arg=1,
    unbroadcast=True,
)
SOFTMAX_CROSS_ENTROPY = Primitive(
    "softmax_cross_entropy",
    forward=_sce_forward,
    vjps=(_sce_grad_z, None),
    shape=_label_shape,
    reduces_batch=True,
    label_arg=1,
    unbroadcast=True,
)
# What nll(softmax(z), y) becomes when it is built: the fused rules under a name
# that says where the node came from (see nll).
NLL_OF_SOFTMAX = attrs.evolve(SOFTMAX_CROSS_ENTROPY, name="nll_of_softmax")

PRIMITIVES = MappingProxyType(
    {
        p.name: p
        for p in (
            VECTOR_SCALAR_AFFINE, AFFINE, TANH, RELU, SIGMOID, ADD, SUB, MUL, SCALE,
            MATMUL, SUM, MEAN, SOFTMAX, LOG_SOFTMAX, SQUARED_L2_DISTANCE,
            L2_NORM_PENALTY, NLL, SOFTMAX_CROSS_ENTROPY, NLL_OF_SOFTMAX,
        )
    }
)


# ----------------------------------------------------------------- builders


def _constant(value, what: str, nonnegative: bool = False) -> float:
    try:
        c = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a real number, got {value!r}") from None
    if not math.isfinite(c) or (nonnegative and c < 0):
        raise ValueError(f"{what} must be a finite{' non-negative' if nonnegative else ''} number, got {value!r}")
    return c


def vector_scalar_affine(x: Node, w: Node, b: Node, *, name=None) -> Node:
    """x·w + b for x (d,), w (d,), b () -> ()  (the assignment's VectorScalarAffineNode).

    VJPs: ∂/∂x = g w, ∂/∂w = g x (summed over the batch), ∂/∂b = g.
    """
    return apply(VECTOR_SCALAR_AFFINE, x, w, b, name=name)


def affine(W: Node, x: Node, b: Node, *, name=None) -> Node:
    """W x + b for W (m, d), x (d,), b (m,) -> (m,)  (the AffineNode).

    VJPs: ∂J/∂W = (∂J/∂y) xᵀ (outer product; summed over the batch),
    ∂J/∂x = Wᵀ ∂J/∂y, ∂J/∂b = ∂J/∂y.
    """
    return apply(AFFINE, W, x, b, name=name)


def tanh(a: Node, *, name=None) -> Node:
    """Element-wise tanh; ∂J/∂A = ∂J/∂S ⊙ (1 - S²) with S = tanh(A) the stored output."""
    return apply(TANH, a, name=name)


def relu(a: Node, *, name=None) -> Node:
    """Element-wise max(a, 0); the derivative is 1 for a > 0 and 0 for a <= 0 (0 at the kink)."""
    return apply(RELU, a, name=name)


def sigmoid(a: Node, *, name=None) -> Node:
    """Element-wise σ(a) = 1 / (1 + e^-a); σ' = σ(a) σ(-a).

    Computed in two branches (1 / (1 + e^-a) for a >= 0, eᵃ / (eᵃ + 1) below)
    so that it never overflows and keeps full relative precision in both
    tails; the VJP is e / (1 + e)² with e = e^-|a|, accurate where 1 - σ
    would round to 0.
    """
    return apply(SIGMOID, a, name=name)


def add(a: Node, b: Node, *, name=None) -> Node:
    """a + b with NumPy broadcasting (the SumNode); both cotangents are g."""
    return apply(ADD, a, b, name=name)


def sub(a: Node, b: Node, *, name=None) -> Node:
    """a - b with NumPy broadcasting; cotangents g and -g."""
    return apply(SUB, a, b, name=name)


def mul(a: Node, b: Node, *, name=None) -> Node:
    """Hadamard product a ⊙ b with broadcasting; cotangents g ⊙ b and g ⊙ a."""
    return apply(MUL, a, b, name=name)


def scale(a: Node, c: float, *, name=None) -> Node:
    """c·a for a constant float c (static config, not an input); cotangent c g."""
    return apply(SCALE, a, name=name, c=_constant(c, "scale: c"))


def matmul(a: Node, b: Node, *, name=None) -> Node:
    """Matrix product a @ b per example, for (m, k) or (k,) times (k, n) or (k,).

    Cotangents: ∂J/∂a = g bᵀ, ∂J/∂b = aᵀ g (vectors treated as one-row or
    one-column matrices).
    """
    return apply(MATMUL, a, b, name=name, a_vec=len(a.shape) == 1, b_vec=len(b.shape) == 1)


def sum(a: Node, *, name=None) -> Node:  # noqa: A001 - the contract's name
    """Sum of every element, batch axis included, as NumPy's ``a.sum()``."""
    return apply(SUM, a, name=name)


def mean(a: Node, *, name=None) -> Node:
    """Mean of every element, batch axis included, as NumPy's ``a.mean()``."""
    return apply(MEAN, a, name=name)


def softmax(z: Node, *, name=None) -> Node:
    """softmax(z)_i = exp(z_i - max z) / Σ_j exp(z_j - max z) over the last axis.

    VJP: s ⊙ (g - ⟨g, s⟩).
    """
    return apply(SOFTMAX, z, name=name)


def log_softmax(z: Node, *, name=None) -> Node:
    """log softmax(z) = z - max z - log Σ exp(z - max z) (log-sum-exp, never log 0).

    VJP: g - softmax(z) Σ g.
    """
    return apply(LOG_SOFTMAX, z, name=name)


def squared_l2_distance(a: Node, b: Node, *, name=None) -> Node:
    """‖a - b‖² per example, averaged over the batch (the SquaredL2DistanceNode).

    a and b must have the same per-example shape. VJP: ∂/∂a = 2 g (a - b) / B.
    """
    return apply(SQUARED_L2_DISTANCE, a, b, name=name, ndim=len(a.shape))


def l2_norm_penalty(w: Node, l2_reg: float, *, name=None) -> Node:
    """l2_reg · ‖w‖² for a parameter w (the L2NormPenaltyNode); VJP 2 l2_reg g w."""
    return apply(L2_NORM_PENALTY, w, name=name, l2_reg=_constant(l2_reg, "l2_norm_penalty: l2_reg", True))


def nll(p: Node, y: Node, *, name=None) -> Node:
    """-log p[y] per example, averaged over the batch; y holds integer labels.

    VJP: -g / p[y] at the label, 0 elsewhere (over a batch, each example's
    row divided by B; an unbatched p meeting a batch of labels gets the sum
    of those rows, so repeated labels add up). A probability of exactly 0
    gives inf and a ZeroProbabilityWarning; prefer softmax_cross_entropy.

    When ``p`` is a softmax node, ``p = softmax(z)``, the node built is
    ``nll_of_softmax(z, y)``: the fused, stable logsumexp(z) - z[y] of
    :func:`softmax_cross_entropy`, with the same value and the analytic
    gradient softmax(z) - onehot(y), finite for every finite logit (the
    literal composition gives inf and NaN once p[y] underflows, at logit
    gaps above ~745). The softmax node is left as it is, so it can still be
    an output (the prediction); the objective just no longer reads it.
    """
    if p.op is SOFTMAX and len(p.shape) == 1:
        return apply(NLL_OF_SOFTMAX, p.inputs[0], y, name=name)
    return apply(NLL, p, y, name=name)


def softmax_cross_entropy(logits: Node, y: Node, *, name=None) -> Node:
    """-log softmax(logits)[y] per example, averaged over the batch, fused.

    Computed as logsumexp(z) - z[y] with the max shifted out, so it is
    finite for every finite logit. VJP: (softmax(z) - onehot(y)) g / B per
    example; unbatched logits meeting a batch of labels get the sum of the
    rows, softmax(z) g - (label counts) g / B.
    """
    return apply(SOFTMAX_CROSS_ENTROPY, logits, y, name=name)
