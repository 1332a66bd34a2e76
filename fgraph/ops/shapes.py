"""Shape rules shared by several primitives (per-example shapes, batch axis excluded).

A shape rule is called as ``shape(*argument_shapes, **config)`` when a node
is built and returns the per-example output shape, or raises
:class:`fgraph.errors.ShapeError` saying why the arguments do not fit.
Rules that belong to one primitive live in that primitive's block.
"""

from __future__ import annotations

import numpy as np

from fgraph.errors import ShapeError


def same_shape(a: tuple, **_) -> tuple:
    """Shape rule of element-wise unary ops: the output has the input's shape."""
    return a


def broadcast_shape(a: tuple, b: tuple, **_) -> tuple:
    """Shape rule of element-wise binary ops: NumPy broadcasting."""
    try:
        return np.broadcast_shapes(a, b)
    except ValueError:
        raise ShapeError(f"shapes {a} and {b} do not broadcast") from None


def scalar_shape(*_, **__) -> tuple:
    """Shape rule of reductions to one number: ``()`` whatever the arguments."""
    return ()
