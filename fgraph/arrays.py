"""Read-only arrays: how every public entry point hands values back.

Freezing an attrs value does not freeze the arrays in it, so values that
leave fgraph (results, training states) are made read-only here, in one
way: a view when the memory is the caller's or fgraph's own, a copy when
nobody else may hold it.
"""

from __future__ import annotations

import numpy as np


def readonly_view(value) -> np.ndarray:
    """A read-only float64 view of ``value``; the array it views is not flagged."""
    view = np.asarray(value, dtype=np.float64).view()
    view.flags.writeable = False
    return view


def frozen(value):
    """:func:`readonly_view`, with a 0-d value returned as a NumPy scalar."""
    if type(value) is np.float64:  # immutable already: the common value of a scalar output
        return value
    arr = np.asarray(value, dtype=np.float64)
    return np.float64(arr) if arr.ndim == 0 else readonly_view(arr)


def readonly_copy(value) -> np.ndarray:
    """A read-only copy of ``value``, which shares memory with nothing."""
    out = np.array(value, copy=True)
    out.flags.writeable = False
    return out
