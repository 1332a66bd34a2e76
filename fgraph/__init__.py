"""fgraph: functional, immutable computation graphs with reverse-mode autodiff on NumPy.

Build a graph from named nodes, then evaluate and differentiate it with pure
functions of a parameter dictionary and a data dictionary::

    import fgraph as fg
    x, y = fg.input("x", (400,)), fg.input("y")
    w, b = fg.param("w", (400,)), fg.param("b")
    pred = fg.vector_scalar_affine(x, w, b)
    J = fg.add(fg.squared_l2_distance(pred, y), fg.l2_norm_penalty(w, 1.0))
    g = fg.graph(prediction=pred, objective=J)
    value, grads = fg.value_and_grad(g)(params, {"x": X, "y": Y})

Python's operators on nodes build the same nodes (``a + b`` is
``fg.add(a, b)``, ``x * 2.0`` is ``fg.scale(x, 2.0)``, ``x[0]`` is
``fg.getitem(x, 0)``): see :mod:`fgraph.ops.operators`.
"""

# Imported so the package has its submodules as attributes: fgraph.io.save_state(...).
from fgraph import init, interpret, io, layers, ops, optim, train, viz  # noqa: F401
from fgraph.autodiff import backward, forward, grad, merge_grads, program_source, value_and_grad
from fgraph.check import check_grads, check_op
from fgraph.errors import FileFormatError, GraphError, InconclusiveCheckError, NameMismatchError, ShapeError
from fgraph.graph import Graph, Node, graph, input, param
from fgraph.interpret import contributions
from fgraph.ops import Primitive, apply
from fgraph.version import __version__

# Every primitive is its own builder, exported under its name from its block
# in fgraph.ops (no list to keep here): fgraph.tanh is fgraph.ops.tanh.
ops.export(globals())

__all__ = [
    "FileFormatError", "Graph", "GraphError", "InconclusiveCheckError", "NameMismatchError", "Node", "Primitive",
    "ShapeError",
    "apply", "backward", "check_grads", "check_op", "contributions", "forward", "grad", "graph", "input", "merge_grads",
    "param", "program_source", "value_and_grad", "__version__",
    *ops.PRIMITIVES,
]
