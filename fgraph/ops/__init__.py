r"""The primitives, each one block in the module of its family, and the
registry that collects them.

A primitive (:class:`fgraph.primitive.Primitive`) is one forward rule, one
vector-Jacobian product (VJP) per argument and one shape rule, and it is
its own node builder: ``fgraph.tanh(x)`` builds the node. The evaluator
knows nothing about any particular primitive, so adding one never touches
it: write its block in the module of its family and add its test case to
``tests/test_ops.py`` (and its name to README's table of primitives); the
registry, the names ``fgraph.ops.<name>`` and ``fgraph.<name>`` and the
test that every primitive has a case follow from the block::

    @primitive(shape=same_shape, vjps=(lambda g, out, a: 3 * g * a * a,))
    def cube(a):
        '''Element-wise a³; ∂J/∂a = 3 a² ⊙ g.'''
        return a ** 3

Families: :mod:`~fgraph.ops.linear` (``vector_scalar_affine``, ``affine``,
``matmul``), :mod:`~fgraph.ops.elementwise` (``tanh``, ``relu``,
``sigmoid``, ``softplus``, ``exp``, ``log``, ``square``, the n-ary
``add``, ``sub``, ``mul``, ``div``, ``maximum``, ``scale``),
:mod:`~fgraph.ops.reductions` (``sum``, ``mean``, of everything or over
per-example axes), :mod:`~fgraph.ops.structure` (``constant``,
``getitem``, ``concat``, ``stack``, ``reshape``, ``transpose``),
:mod:`~fgraph.ops.probability` (``softmax``, ``log_softmax``),
:mod:`~fgraph.ops.conv` (``conv1d``, ``conv2d``, ``max_pool2d``,
``avg_pool2d``) and :mod:`~fgraph.ops.losses` (``squared_l2_distance``, ``l2_norm_penalty``,
``nll``, ``softmax_cross_entropy`` and the fused ``nll_of_softmax`` that
``nll(softmax(z), y)`` is built as); shared shape rules in
:mod:`~fgraph.ops.shapes`. Python's operators on nodes (``a + b``,
``x * 2.0``, ``x[0]``, ...) build these nodes: :mod:`~fgraph.ops.operators`
says which.

**Batch axis.** Rules receive arrays that may carry one leading batch axis
B (the batch convention of README.md): an argument that depends on data has shape
``(B,) + per-example shape`` when the data has a batch, a parameter never
has it. A forward rule must then return ``(B,) + per-example output shape``
(a loss, with ``reduces_batch``, returns the mean over the batch), and each
VJP must return its argument's shape, or, for a primitive with
``unbroadcast=True``, the broadcast shape of the arguments (the batch axis
included), which the evaluator sums down to the argument's shape
(:func:`fgraph.program.sum_to_shape`).

Config is bound by name (see :mod:`fgraph.primitive`). Conventions at
kinks: ``relu`` has derivative 0 at 0. ``nll`` of a probability of exactly
0 is ``inf`` (with a :class:`ZeroProbabilityWarning`); use
``softmax_cross_entropy`` on logits, which is finite for every finite
input.

``PRIMITIVES`` maps each name to its primitive. Every primitive is also
bound here under its name in capitals (``TANH is tanh``), the names the
registry's constants had before primitives were callable.
"""

from __future__ import annotations

from fgraph.ops import conv, elementwise, linear, losses, probability, reductions, structure
from fgraph.ops.losses import ZeroProbabilityWarning, squared_norm
from fgraph.ops.shapes import broadcast_shape, same_shape, scalar_shape
from fgraph.primitive import Primitive, apply, collect, primitive

FAMILIES = (linear, elementwise, reductions, structure, probability, losses, conv)
PRIMITIVES = collect(*FAMILIES)


def export(namespace: dict, rename=str) -> None:
    """Bind every primitive in ``namespace`` (a module's ``globals()``) under
    ``rename(name)``; an ``ImportError`` if that would hide another object."""
    for name, prim in PRIMITIVES.items():
        key = rename(name)
        if namespace.setdefault(key, prim) is not prim:
            raise ImportError(f"the primitive {name!r} would hide {namespace.get('__name__')}.{key}")


export(globals())
export(globals(), str.upper)

__all__ = [
    "FAMILIES", "PRIMITIVES", "Primitive", "ZeroProbabilityWarning", "apply", "broadcast_shape", "export",
    "primitive", "same_shape", "scalar_shape", "squared_norm",
    *PRIMITIVES, *(name.upper() for name in PRIMITIVES),
]
