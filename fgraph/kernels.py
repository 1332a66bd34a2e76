"""The few array operations whose fastest NumPy form writes into an array.

Rules are written once, against NumPy's names (``np.tanh``, ``np.exp``,
``a.sum(axis=...)``), and a backend whose arrays are immutable (JAX, see
:mod:`fgraph.backends`) runs the same code with NumPy's namespace
replaced by its own. Almost everything NumPy does has a functional twin
of the same name there; what has none is an operation that NumPy does
fastest by writing into an array: a scatter, a zero frame, a strided view,
an accumulation. A rule calls one of these functions for it, and a backend
substitutes its own version of each, by identity, when it lowers the rules.

The contract that makes the NumPy versions safe: the array written into
is *fresh*, made by the calling rule and seen by nothing else, so the
write is invisible outside the rule. Each function returns its result; a
caller never relies on the argument having changed.
"""

from __future__ import annotations

import numpy as np


def set_at(fresh: np.ndarray, key, values) -> np.ndarray:
    """``fresh`` with ``fresh[key] = values`` (basic or integer-array indexing)."""
    fresh[key] = values
    return fresh


def add_at(fresh: np.ndarray, key, values) -> np.ndarray:
    """``fresh`` with ``values`` added at ``fresh[key]``; ``key`` selects each
    element at most once (a basic index, or integer arrays without repeats)."""
    fresh[key] += values
    return fresh


def multiply_at(fresh: np.ndarray, key, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``fresh`` with ``fresh[key] = a * b``, the product written in place
    (``key`` a basic index, so that ``fresh[key]`` is a view)."""
    np.multiply(a, b, out=fresh[key])
    return fresh


def copy(a: np.ndarray) -> np.ndarray:
    """A new array with ``a``'s values, in ``a``'s memory order."""
    return a.copy(order="K")


def contiguous(a: np.ndarray) -> np.ndarray:
    """``a`` as a C-contiguous array (``a`` itself when it is one)."""
    return np.ascontiguousarray(a)


def maximum_into(fresh: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``max(fresh, a)`` element-wise, written over ``fresh``."""
    return np.maximum(fresh, a, out=fresh)


def add_into(fresh: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``fresh + a``, written over ``fresh``."""
    return np.add(fresh, a, out=fresh)


def all_positive(v: np.ndarray) -> bool:
    """Whether every entry of ``v`` is > 0: a rule checks it to silence or
    raise NumPy's warnings for a division by zero only where one happens.
    (A backend that never warns answers True without looking: a traced
    value has no truth value.)"""
    return bool(v > 0) if v.ndim == 0 else v.min() > 0


def strided_windows(framed: np.ndarray, size: tuple, stride: tuple) -> np.ndarray:
    """The windows of a C-contiguous (C, H, W, B) array as a read-only view
    (C, kh, kw, H_out, W_out, B): ``[c, i, j, y, x, b] = framed[c, y·sh + i, x·sw + j, b]``.

    The view ``sliding_window_view(framed, size, axis=(1, 2))[:, ::sh, ::sw]``
    with its axes moved, made by one ``ndarray`` call (0.4 µs; the NumPy
    function costs 11, more than the copy it feeds on a small image).
    """
    (kh, kw), (sh, sw) = size, stride
    C, H, W, B = framed.shape
    sc, sy, sx, sb = framed.strides
    shape = (C, kh, kw, (H - kh) // sh + 1, (W - kw) // sw + 1, B)
    view = np.ndarray(shape, framed.dtype, framed, 0, (sc, sy, sx, sy * sh, sx * sw, sb))
    view.flags.writeable = False
    return view
