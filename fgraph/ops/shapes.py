"""Shape rules shared by several primitives (per-example shapes, batch axis excluded).

A shape rule is called as ``shape(*argument_shapes, **config)`` when a node
is built and returns the per-example output shape, or raises
:class:`fgraph.errors.ShapeError` saying why the arguments do not fit.
Rules that belong to one primitive live in that primitive's block.
"""

from __future__ import annotations

import operator

import numpy as np

from fgraph.errors import ShapeError


def same_shape(a: tuple, **_) -> tuple:
    """Shape rule of element-wise unary ops: the output has the input's shape."""
    return a


def broadcast_shape(*shapes: tuple, **_) -> tuple:
    """Shape rule of element-wise ops on any number of arguments: NumPy broadcasting."""
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        listed = ", ".join(map(str, shapes[:-1])) + f" and {shapes[-1]}"
        raise ShapeError(f"shapes {listed} do not broadcast") from None


def scalar_shape(*_, **__) -> tuple:
    """Shape rule of reductions to one number: ``()`` whatever the arguments."""
    return ()


def as_index(value, what: str) -> int:
    """``value`` as a Python int (NumPy ints included, bools not), or a
    ``TypeError`` naming ``what``."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what} must be an int, got the bool {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r}") from None


def normalize_axis(axis, shape: tuple, owner: str, new: bool = False) -> int:
    """A per-example axis of ``shape`` as a non-negative int; with ``new``, an
    axis of the result of inserting one axis into ``shape`` (``stack``'s).

    Negative axes count from the end of the per-example shape; the batch
    axis is never counted. A ``TypeError`` (naming ``owner``, the
    primitive) for an axis that is not an int, a ``ShapeError`` saying
    which axes exist for one out of range.
    """
    index = as_index(axis, f"{owner}: axis")
    rank = len(shape) + new
    if not -rank <= index < rank:
        axes = f"axes -{rank} to {rank - 1}" if rank else "no axes"
        where = f"a new axis in per-example shape {shape}" if new else f"per-example shape {shape}"
        raise ShapeError(f"axis {index} is out of range for {where}: {axes} (the batch axis is not counted)")
    return index % rank
