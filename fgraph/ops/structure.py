r"""Structure: constants, and primitives that move elements without computing.

``constant`` puts a fixed array in the graph; ``getitem`` (``node[key]``),
``concat``, ``stack``, ``reshape`` and ``transpose`` select, join and
rearrange elements. Each primitive is one block: shape rule, VJPs, then the
forward rule with the math in its docstring.

**Per-example axes.** Indices, axes and shapes are per example, as the
nodes' shapes are: the batch axis is never counted and never touched, and
negative axes count from the end of the per-example shape. A rule knows
whether an argument carries the batch axis by comparing its ``ndim`` with
the per-example rank, which each ``prepare`` hook puts in the config
(``ndim``); an output carries the batch axis when an argument does.

**Mixing batched and unbatched nodes.** ``concat`` and ``stack`` accept
nodes with and without the batch axis together (data with a parameter, a
constant or a reduction): the unbatched ones are repeated over the batch,
and their cotangent is the sum over the batch of their slice of g.
"""

from __future__ import annotations

import math

import numpy as np

from fgraph import kernels
from fgraph.errors import ShapeError
from fgraph.ops.shapes import as_index, normalize_axis
from fgraph.primitive import primitive

# ---------------------------------------------------------------- constant


def _constant_value(prim, nodes, config):
    # A float64 copy, read-only: the caller's array may change, the graph's may not.
    value = config["value"]
    not_real = f"constant: value must be a real number or an array of them, got {type(value).__name__} {value!r}"
    if isinstance(value, (str, bytes)) or np.iscomplexobj(value):  # NumPy would parse or truncate them
        raise TypeError(not_real)
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(not_real) from None
    if array.size == 0:
        raise ShapeError(f"the value has no elements (shape {array.shape})")
    if not np.all(np.isfinite(array)):
        raise ValueError(
            f"constant: value must be finite, got {np.count_nonzero(~np.isfinite(array))} NaN or inf entries"
        )
    array.flags.writeable = False
    return prim, nodes, {"value": array}


@primitive(vjps=(), shape=lambda value: value.shape, prepare=_constant_value)
def constant(value):
    """A fixed array in the graph: never trained, no inputs, no batch axis.

    ``constant(value)`` holds a float64 copy of ``value``, made read-only
    when the node is built (later changes to the caller's array do not
    reach it); e.g. an RNN's initial state. It has no gradient. Its
    auto-name comes from the value's dtype, shape and bytes, so equal
    constants are one node and different ones never share a name. The
    public API never returns the stored array itself.
    """
    return value


# ----------------------------------------------------------------- getitem


def _slice_of(s: slice, n: int, axis: int) -> slice:
    """``s`` on an axis of length ``n``, in canonical form: ``slice(None)`` when
    it takes the whole axis, else explicit start, stop (None when it runs
    past the start, going down) and step; a ``ShapeError`` if it takes nothing."""
    parts = [None if v is None else as_index(v, f"getitem: slice bound {v!r}") for v in (s.start, s.stop, s.step)]
    if parts[2] == 0:
        raise ValueError(f"getitem: slice step cannot be zero (axis {axis})")
    start, stop, step = slice(*parts).indices(n)
    taken = range(start, stop, step)
    if not taken:
        raise ShapeError(f"index {s} selects no element of axis {axis} (length {n})")
    if taken == range(n):
        return slice(None)
    return slice(start, stop if stop >= 0 else None, step)


def _entries(key) -> tuple:
    """The entries of an indexing key: a tuple's, or the key alone."""
    entries = key if isinstance(key, tuple) else (key,)
    for entry in entries:
        if entry is None:
            raise TypeError("getitem: None (np.newaxis) is not supported; add the axis with reshape")
        if not (isinstance(entry, (slice, int, np.integer)) or entry is Ellipsis):
            raise TypeError(
                f"getitem supports basic indexing only (ints, slices, ...), got {type(entry).__name__}"
                f" {entry!r}; arrays, lists and masks (advanced indexing) are not supported"
            )
    return entries


def _canonical_key(key, shape: tuple) -> tuple:
    """``key`` as a tuple of non-negative ints and canonical slices, one per
    leading axis of ``shape``, with ``...`` expanded and trailing whole-axis
    slices dropped, so equal selections give one node."""
    entries = _entries(key)
    if sum(e is Ellipsis for e in entries) > 1:
        raise TypeError(f"getitem: an index can have only one ellipsis (...), got {key!r}")
    given = [e for e in entries if e is not Ellipsis]
    if len(given) > len(shape):
        raise ShapeError(f"too many indices: {len(given)} for per-example shape {shape}")
    if Ellipsis in entries:
        at = entries.index(Ellipsis)
        entries = entries[:at] + (slice(None),) * (len(shape) - len(given)) + entries[at + 1 :]
    out = []
    for axis, (entry, n) in enumerate(zip(entries, shape)):
        if isinstance(entry, slice):
            out.append(_slice_of(entry, n, axis))
            continue
        i = as_index(entry, f"getitem: index {entry!r}")
        if not -n <= i < n:
            raise ShapeError(f"index {i} is out of range for axis {axis} of per-example shape {shape} (length {n})")
        out.append(i % n)
    while out and out[-1] == slice(None):
        out.pop()
    return tuple(out)


def _index_key(prim, nodes, config):
    (a,) = nodes
    return prim, nodes, {"key": _canonical_key(config["key"], a.shape), "ndim": len(a.shape)}


def _getitem_shape(a: tuple, key, ndim) -> tuple:
    kept = [len(range(n)[k]) for k, n in zip(key, a) if isinstance(k, slice)]
    return tuple(kept) + a[len(key) :]


def _batched_key(a, key, ndim) -> tuple:
    """``key`` for the array ``a``: behind a whole slice of the batch axis when ``a`` has one."""
    return key if a.ndim == ndim else (slice(None),) + key


def _getitem_grad(g, out, a, key, ndim):
    # Basic indexing takes each element at most once: assigning g is the sum.
    return kernels.set_at(np.zeros(a.shape), _batched_key(a, key, ndim), g)


@primitive(vjps=(_getitem_grad,), shape=_getitem_shape, prepare=_index_key, derived=("ndim",))
def getitem(a, key, ndim=0):
    """a[key] per example (also written ``node[key]``): basic indexing of the per-example axes.

    ``key`` holds ints, slices and at most one ``...`` (no arrays, lists,
    masks or None), applied to the per-example axes; the batch axis is
    untouched. Negative indices count from the end of their axis; an int
    out of range, too many indices or a slice that selects nothing is a
    ShapeError. Equal selections (``x[0]``, ``x[0, ...]``, ``x[-3]`` on an
    axis of 3) build one node. VJP: g scattered into zeros of a's shape.
    """
    return a[_batched_key(a, key, ndim)]


# ---------------------------------------------------------- concat, stack


def _variadic_axis(new: bool):
    """A prepare hook: ``axis`` normalised against the first node's shape
    (as a new axis, for ``stack``), and that node's rank as ``ndim``."""

    def prepare(prim, nodes, config):
        shape = nodes[0].shape
        return prim, nodes, {"axis": normalize_axis(config["axis"], shape, prim.name, new=new), "ndim": len(shape)}

    return prepare


def _same_ranks(shapes, ndim) -> None:
    ranks = [len(s) for s in shapes]
    if any(r != ndim for r in ranks):
        raise ShapeError(f"every node needs per-example rank {ndim}, got shapes {list(shapes)}")


def _concat_shape(*shapes, axis, ndim) -> tuple:
    _same_ranks(shapes, ndim)
    first = shapes[0]
    for i, s in enumerate(shapes):
        off = [j for j in range(ndim) if j != axis and s[j] != first[j]]
        if off:
            raise ShapeError(
                f"shapes must match off axis {axis}: node {i} has {s}, node 0 has {first} (axis {off[0]} differs)"
            )
    return first[:axis] + (sum(s[axis] for s in shapes),) + first[axis + 1 :]


def _lined_up(arrays, ndim) -> tuple[list, int]:
    """The arrays with a common batch axis (unbatched ones repeated over the
    batch, as read-only views), and 1 if there is one, else 0."""
    sizes = [a.shape[0] for a in arrays if a.ndim > ndim]
    if not sizes:
        return list(arrays), 0
    return [a if a.ndim > ndim else np.broadcast_to(a, (sizes[0],) + a.shape) for a in arrays], 1


def _concat_grad(position, g, out, *args):
    # g's slice along the axis that argument `position` filled; an unbatched
    # argument receives the slice of every example, which the program sums.
    *arrays, axis, ndim = args
    batch = 1 if g.ndim > ndim else 0
    sizes = [a.shape[axis + (a.ndim > ndim)] for a in arrays]
    start = sum(sizes[:position])
    return g[(slice(None),) * (axis + batch) + (slice(start, start + sizes[position]),)]


@primitive(
    vjps=(_concat_grad,),
    shape=_concat_shape,
    unbroadcast=True,
    variadic=True,
    config_names=(("axis", 0), "ndim"),
    prepare=_variadic_axis(new=False),
    derived=("ndim",),
)
def concat(*args):
    """Join nodes along an existing per-example axis: ``concat(nodes, axis=0)``.

    The nodes (a list or tuple, or given one by one) have the same
    per-example rank and the same lengths off ``axis``; the output's
    length on ``axis`` is the sum of theirs. Nodes with and without the
    batch axis may be mixed: the unbatched ones are repeated over the
    batch. VJP: each node gets its slice of g along ``axis`` (an unbatched
    node, the sum of its slices over the batch).
    """
    arrays, axis, ndim = args[:-2], args[-2], args[-1]
    for a in arrays:
        if a.ndim == ndim:  # one without the batch axis (or no batch at all): line them up
            arrays, batch = _lined_up(arrays, ndim)
            return np.concatenate(arrays, axis=axis + batch)
    return np.concatenate(arrays, axis=axis + 1)  # every one batched: the per-step case of an RNN


def _stack_shape(*shapes, axis, ndim) -> tuple:
    _same_ranks(shapes, ndim)
    different = [i for i, s in enumerate(shapes) if s != shapes[0]]
    if different:
        raise ShapeError(
            f"every node needs the same per-example shape: node {different[0]} has {shapes[different[0]]},"
            f" node 0 has {shapes[0]}"
        )
    return shapes[0][:axis] + (len(shapes),) + shapes[0][axis:]


def _stack_grad(position, g, out, *args):
    # g's entry `position` along the new axis (summed over the batch for an unbatched argument).
    *_, axis, ndim = args
    batch = 1 if g.ndim > ndim + 1 else 0
    return g[(slice(None),) * (axis + batch) + (position,)]


@primitive(
    vjps=(_stack_grad,),
    shape=_stack_shape,
    unbroadcast=True,
    variadic=True,
    config_names=(("axis", 0), "ndim"),
    prepare=_variadic_axis(new=True),
    derived=("ndim",),
)
def stack(*args):
    """Join nodes of one per-example shape along a new axis: ``stack(nodes, axis=0)``.

    The output has a new per-example axis at ``axis`` (from -(rank + 1)
    to rank), of length the number of nodes. Nodes with and without the
    batch axis may be mixed: the unbatched ones are repeated over the
    batch. VJP: node i gets entry i of g along ``axis`` (an unbatched node,
    the sum of those over the batch).
    """
    *arrays, axis, ndim = args
    arrays, batch = _lined_up(arrays, ndim)
    return np.stack(arrays, axis=axis + batch)


# ----------------------------------------------------------------- reshape


def _target_shape(shape, source: tuple) -> tuple:
    """The per-example ``shape`` to reshape ``source`` to, its one -1 (if any)
    inferred; a ``ShapeError`` if the number of elements differs."""
    if not isinstance(shape, (tuple, list, int, np.integer)) or isinstance(shape, (bool, np.bool_)):
        raise TypeError(f"reshape: shape must be a tuple of ints, got {type(shape).__name__} {shape!r}")
    dims = [as_index(d, "reshape: a shape entry") for d in (shape if isinstance(shape, (tuple, list)) else (shape,))]
    if any(d == 0 or d < -1 for d in dims) or dims.count(-1) > 1:
        raise ShapeError(f"cannot reshape to {tuple(dims)}: entries must be positive, with at most one -1 to infer")
    size = math.prod(source)
    if -1 in dims:
        known = -math.prod(dims)  # the product of the other entries
        dims[dims.index(-1)] = size // known if size % known == 0 else -1
    if math.prod(dims) != size:
        raise ShapeError(f"cannot reshape per-example shape {source} ({size} elements) to {tuple(dims)}")
    return tuple(dims)


def _reshape_config(prim, nodes, config):
    (a,) = nodes
    return prim, nodes, {"shape": _target_shape(config["shape"], a.shape), "ndim": len(a.shape)}


@primitive(
    vjps=(lambda g, out, a, shape, ndim: g.reshape(a.shape),),
    shape=lambda a, shape, ndim: shape,
    prepare=_reshape_config,
    derived=("ndim",),
)
def reshape(a, shape, ndim=0):
    """a with the per-example shape ``shape`` (same elements, C order); the batch axis untouched.

    ``shape`` may hold one -1, inferred from the number of elements; a
    different number of elements is a ShapeError. VJP: g reshaped back to
    a's shape.
    """
    return a.reshape(shape if a.ndim == ndim else a.shape[:1] + shape)


# --------------------------------------------------------------- transpose


def _axes_config(prim, nodes, config):
    (a,) = nodes
    rank, axes = len(a.shape), config["axes"]
    if axes is None:
        axes = tuple(reversed(range(rank)))
    elif not isinstance(axes, (tuple, list)):
        raise TypeError(f"transpose: axes must be a tuple of ints or None, got {type(axes).__name__} {axes!r}")
    else:
        axes = tuple(normalize_axis(i, a.shape, prim.name) for i in axes)
    if sorted(axes) != list(range(rank)):
        raise ShapeError(
            f"axes {tuple(config['axes'])} are not a permutation of the {rank} per-example axes of {a.shape}"
        )
    return prim, nodes, {"axes": axes, "inverse": tuple(int(i) for i in np.argsort(axes))}


def _permuted(x, axes):
    """``x`` with its per-example axes permuted by ``axes`` (a batch axis stays first)."""
    return x.transpose(axes if x.ndim == len(axes) else (0,) + tuple(i + 1 for i in axes))


@primitive(
    vjps=(lambda g, out, a, axes, inverse: _permuted(g, inverse),),
    shape=lambda a, axes, inverse: tuple(a[i] for i in axes),
    prepare=_axes_config,
    derived=("inverse",),
)
def transpose(a, axes=None, inverse=()):
    """a with its per-example axes permuted: output axis i is a's axis ``axes[i]``.

    ``axes=None`` reverses them (a matrix's transpose); negative axes count
    from the end of the per-example shape; the batch axis stays first.
    VJP: g permuted back by the inverse permutation.
    """
    return _permuted(a, axes)
