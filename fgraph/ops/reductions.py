"""Reductions of every element to one number, the batch axis included, as NumPy's.

Each primitive is one block: VJPs and shape rule in the decorator, the
forward rule below it with the math in its docstring.
"""

from __future__ import annotations

import numpy as np

from fgraph.ops.shapes import scalar_shape
from fgraph.primitive import primitive


@primitive(
    vjps=(lambda g, out, a: np.full(a.shape, g),),
    shape=scalar_shape,
    reduces_batch=True,
)
def sum(a):  # noqa: A001 - the contract's name
    """Sum of every element, batch axis included, as NumPy's ``a.sum()``; ∂J/∂a = g everywhere."""
    return a.sum()


@primitive(
    vjps=(lambda g, out, a: np.full(a.shape, g / a.size),),
    shape=scalar_shape,
    reduces_batch=True,
)
def mean(a):
    """Mean of every element, batch axis included, as NumPy's ``a.mean()``; ∂J/∂a = g / a.size everywhere."""
    return a.mean()
