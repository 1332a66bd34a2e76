"""What Python's operators on a :class:`~fgraph.graph.Node` build.

``a + b``, ``a - b``, ``a * b``, ``a / b``, ``a @ b``, ``-a`` and
``a[key]`` build the nodes their builders build, with the same auto-names:
``a + b`` is ``add(a, b)``, ``a[0]`` is ``getitem(a, 0)``. A real scalar
(a Python or NumPy int or float) on either side builds the natural node:

- ``x * c`` and ``c * x``: ``scale(x, c)``; ``-x``: ``scale(x, -1.0)``;
- ``x + c``, ``c + x``, ``x - c``, ``c - x``, ``x / c``, ``c / x``: the
  binary op with ``constant(c)`` in the scalar's place (``x / c`` is then
  exactly NumPy's ``x / c``; ``x / 0`` is a ``ZeroDivisionError``);
- ``x + 0`` and ``0 + x``: ``x`` itself, so Python's ``sum(nodes)``, which
  starts from 0, builds ``add(add(a, b), c)``.

An array operand is a ``TypeError`` that says to wrap it in
``fgraph.constant`` (an array is put in the graph explicitly, never
silently); other operands are Python's usual ``TypeError``.
"""

from __future__ import annotations

import numbers

import numpy as np

from fgraph.graph import Node
from fgraph.ops import elementwise, linear, structure


def _is_scalar(value) -> bool:
    """A real number, Python's or NumPy's (bools are not numbers here)."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _operand(value, symbol: str):
    """``value`` as a node: itself, a constant for a scalar, or
    ``NotImplemented`` (Python then raises its ``TypeError``)."""
    if isinstance(value, Node):
        return value
    if _is_scalar(value):
        return structure.constant(value)
    if isinstance(value, np.ndarray):
        raise TypeError(
            f"cannot apply {symbol} to a Node and a NumPy array of shape {value.shape}: put the array in"
            " the graph explicitly with fgraph.constant(array)"
        )
    return NotImplemented


def _binary(prim, symbol: str, a, b):
    """``prim(a, b)`` with a scalar side as a constant; ``NotImplemented`` for other operands."""
    a, b = _operand(a, symbol), _operand(b, symbol)
    if a is NotImplemented or b is NotImplemented:
        return NotImplemented
    return prim(a, b)


def add(a, b):
    """``a + b``: ``add(a, b)``; a scalar side a constant; a zero side leaves the node as it is."""
    if _is_scalar(a) and a == 0:
        return b
    if _is_scalar(b) and b == 0:
        return a
    return _binary(elementwise.add, "+", a, b)


def sub(a, b):
    """``a - b``: ``sub(a, b)``, a scalar side a constant."""
    return _binary(elementwise.sub, "-", a, b)


def mul(a, b):
    """``a * b``: ``mul(a, b)``; by a scalar c, ``scale(node, c)``."""
    if _is_scalar(a) and isinstance(b, Node):
        return elementwise.scale(b, a)
    if _is_scalar(b) and isinstance(a, Node):
        return elementwise.scale(a, b)
    return _binary(elementwise.mul, "*", a, b)


def div(a, b):
    """``a / b``: ``div(a, b)``, a scalar side a constant; dividing by a scalar 0 is a ``ZeroDivisionError``."""
    if _is_scalar(b) and b == 0:
        raise ZeroDivisionError(f"{a!r} / {b!r}: division of a node by zero")
    return _binary(elementwise.div, "/", a, b)


def matmul(a, b):
    """``a @ b``: ``matmul(a, b)``, of two nodes (a scalar is Python's ``TypeError``, as in NumPy)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return _binary(linear.matmul, "@", a, b)  # the TypeError that says to use fgraph.constant
    if isinstance(a, Node) and isinstance(b, Node):
        return linear.matmul(a, b)
    return NotImplemented


def neg(a):
    """``-a``: ``scale(a, -1.0)``."""
    return elementwise.scale(a, -1.0)


def getitem(a, key):
    """``a[key]``: ``getitem(a, key)``."""
    return structure.getitem(a, key)
