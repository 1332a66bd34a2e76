"""Reductions: of every element to one number (the batch axis included, as
NumPy's), or, with ``axis=``, over per-example axes (the batch axis kept).

Each primitive is one block: VJPs and shape rule in the decorator, the
forward rule below it with the math in its docstring.

``sum(a)`` and ``mean(a)`` reduce every axis, batch included, to one
number: that is what they always did and what a scalar objective needs.
``sum(a, axis=...)`` and ``mean(a, axis=...)`` reduce only the given
per-example axes (an int or a tuple; negative ones count from the end of
the per-example shape) and keep the batch axis, so a batch gives the
examples' results stacked.
"""

from __future__ import annotations

import math

import numpy as np

from fgraph.errors import ShapeError
from fgraph.ops.shapes import normalize_axis
from fgraph.primitive import primitive


def _reduced_axes(prim, nodes, config):
    # axis -> a sorted tuple of non-negative per-example axes (or None: every
    # axis, batch included), and the per-example rank that tells the rules
    # whether an argument carries the batch axis.
    (a,) = nodes
    axis = config["axis"]
    if axis is not None:
        listed = axis if isinstance(axis, (tuple, list)) else (axis,)
        axes = [normalize_axis(i, a.shape, prim.name) for i in listed]
        if len(set(axes)) != len(axes):
            raise ShapeError(f"axis {tuple(listed)} names an axis twice")
        axis = tuple(sorted(axes))
    return prim, nodes, {**config, "axis": axis, "ndim": len(a.shape)}


def _reduced_shape(a: tuple, axis, ndim) -> tuple:
    if axis is None:
        return ()
    return tuple(n for i, n in enumerate(a) if i not in axis)


def _array_axes(a, axis, ndim) -> tuple:
    """The per-example ``axis`` as axes of the array ``a``, which may lead with the batch axis."""
    return axis if a.ndim == ndim else tuple(i + 1 for i in axis)


def _spread(g, a, axis, ndim):
    """The cotangent g of a reduction over ``axis``, repeated over those axes of ``a``."""
    axes = _array_axes(a, axis, ndim)
    return np.broadcast_to(np.expand_dims(g, axes), a.shape).copy()


def _keeps_batch(config) -> bool:
    return config["axis"] is None


def _sum_grad(g, out, a, axis, ndim):
    return np.full(a.shape, g) if axis is None else _spread(g, a, axis, ndim)


def _mean_grad(g, out, a, axis, ndim):
    if axis is None:
        return np.full(a.shape, g / a.size)
    return _spread(g / math.prod(a.shape[i] for i in _array_axes(a, axis, ndim)), a, axis, ndim)


@primitive(
    vjps=(_sum_grad,),
    shape=_reduced_shape,
    reduces_batch=_keeps_batch,
    prepare=_reduced_axes,
    derived=("ndim",),
)
def sum(a, axis=None, ndim=0):  # noqa: A001 - the contract's name
    """Σ a: of every element, batch axis included (``a.sum()``), or over per-example ``axis``.

    ``sum(a)`` is one number, the sum over the batch too, as NumPy's
    ``a.sum()``; ∂J/∂a = g everywhere. ``sum(a, axis)`` sums the given
    per-example axes (an int or a tuple; negative ones count from the end
    of the per-example shape) and keeps the batch axis; ∂J/∂a is g repeated
    along the summed axes.
    """
    return a.sum() if axis is None else a.sum(axis=_array_axes(a, axis, ndim))


@primitive(
    vjps=(_mean_grad,),
    shape=_reduced_shape,
    reduces_batch=_keeps_batch,
    prepare=_reduced_axes,
    derived=("ndim",),
)
def mean(a, axis=None, ndim=0):
    """Mean of a: of every element, batch axis included (``a.mean()``), or over per-example ``axis``.

    ``mean(a)`` is one number, as NumPy's ``a.mean()``; ∂J/∂a = g / a.size
    everywhere. ``mean(a, axis)`` averages the given per-example axes and
    keeps the batch axis; ∂J/∂a is g / (number of elements averaged),
    repeated along those axes.
    """
    return a.mean() if axis is None else a.mean(axis=_array_axes(a, axis, ndim))
