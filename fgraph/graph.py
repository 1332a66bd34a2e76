"""Nodes and graphs: immutable values that describe a computation.

A :class:`Node` is a leaf (a data ``input`` or a trainable ``param``) or the
application of a primitive to other nodes. Nodes are frozen and compared by
identity. :func:`graph` collects the nodes that named outputs depend on into a
frozen :class:`Graph`, and computes once, at construction, everything that
evaluation needs and that does not depend on values: the topological order,
the slot of every node and the labels; the flat programs that
:mod:`fgraph.autodiff` runs are compiled from it on first use, once.
"""

from __future__ import annotations

import inspect
from types import MappingProxyType
from typing import Any, Mapping

import attrs
import numpy as np

from fgraph.errors import GraphError, ShapeError
from fgraph.program import Programs
from fgraph.types import Role

EMPTY = MappingProxyType({})


@attrs.frozen(eq=False, repr=False)
class Node:
    """One vertex of a computation graph.

    ``shape`` is the per-example shape: data may add one leading batch axis.
    ``batched`` says whether the node's value can carry that batch axis (it
    depends on data and no reduction has removed the axis). ``auto_name`` is
    true when the builder made the name up from the node's structure.
    """

    name: str
    role: Role
    op: Any = None
    inputs: tuple = ()
    shape: tuple = ()
    config: Mapping = EMPTY
    init: Any = None
    batched: bool = False
    auto_name: bool = False
    owner: Any = None

    def __repr__(self) -> str:
        kind = self.op.name if self.op is not None else self.role
        return f"<Node {self.name!r} {kind} shape={self.shape}>"

    # Operators build the same nodes as the builders (fgraph.ops.operators says
    # which). fgraph.ops imports this module for Node, so it cannot be imported
    # at the top: each operator imports it when called (a dictionary lookup
    # once it is loaded), which breaks that import cycle.

    # NumPy arrays and scalars on the left defer to the reflected operators
    # below (np.float64(2.0) * x is a scale node, not an object array).
    __array_ufunc__ = None
    # __getitem__ would otherwise make a Node iterable, element by element
    # until an index fails: iteration is almost always a mistake here.
    __iter__ = None

    def __add__(self, other):
        """``self + other``: ``add``; a scalar becomes a constant, and ``+ 0`` is the node itself."""
        from fgraph.ops import operators

        return operators.add(self, other)

    def __radd__(self, other):
        """``other + self``; ``0 + node`` is the node itself, so Python's ``sum(nodes)`` works."""
        from fgraph.ops import operators

        return operators.add(other, self)

    def __sub__(self, other):
        """``self - other``: ``sub``; a scalar becomes a constant."""
        from fgraph.ops import operators

        return operators.sub(self, other)

    def __rsub__(self, other):
        """``other - self``: ``sub(constant(other), self)``."""
        from fgraph.ops import operators

        return operators.sub(other, self)

    def __mul__(self, other):
        """``self * other``: ``mul``; by a scalar, ``scale(self, other)``."""
        from fgraph.ops import operators

        return operators.mul(self, other)

    def __rmul__(self, other):
        """``other * self``: ``scale(self, other)`` for a scalar."""
        from fgraph.ops import operators

        return operators.mul(other, self)

    def __truediv__(self, other):
        """``self / other``: ``div``; a scalar becomes a constant."""
        from fgraph.ops import operators

        return operators.div(self, other)

    def __rtruediv__(self, other):
        """``other / self``: ``div(constant(other), self)``."""
        from fgraph.ops import operators

        return operators.div(other, self)

    def __matmul__(self, other):
        """``self @ other``: ``matmul``."""
        from fgraph.ops import operators

        return operators.matmul(self, other)

    def __rmatmul__(self, other):
        """``other @ self``: ``matmul``, of nodes only."""
        from fgraph.ops import operators

        return operators.matmul(other, self)

    def __neg__(self):
        """``-self``: ``scale(self, -1.0)``."""
        from fgraph.ops import operators

        return operators.neg(self)

    def __getitem__(self, key):
        """``self[key]``: ``getitem(self, key)``, basic indexing of the per-example axes."""
        from fgraph.ops import operators

        return operators.getitem(self, key)


def check_name(name: object, what: str = "node") -> str:
    """Return ``name`` if it is a non-empty string, else raise ``TypeError``."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"a {what} name must be a non-empty string, got {name!r}")
    return name


def as_shape(shape: object, where: str) -> tuple:
    """Normalise a shape (an int, or a sequence of positive ints, NumPy ints
    included) to a tuple of Python ints."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise ShapeError(f"{where}: a shape must be a tuple of ints, got {shape!r}") from None
    if not all(isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)) and d > 0 for d in dims):
        raise ShapeError(f"{where}: a shape must be a tuple of positive ints, got {shape!r}")
    return tuple(int(d) for d in dims)


def check_initializer(init, where: str):
    """``init`` if it is None or an initialiser ``init(rng, shape) -> array``,
    else a ``TypeError`` saying what is wrong with it.

    fgraph's initialisers are values made by calling a constructor
    (``fgraph.init.normal(0.01)``); passing the constructor itself
    (``fgraph.init.normal``) is the usual slip, and is named as such.
    """
    if init is None:
        return None
    if inspect.isfunction(init) and getattr(init, "__module__", None) == "fgraph.init":
        raise TypeError(
            f"{where}: init=fgraph.init.{init.__name__} is the initialiser's constructor, not an initialiser;"
            f" call it, e.g. init=fgraph.init.{init.__name__}()"
        )
    try:
        inspect.signature(init).bind(None, ())
    except TypeError:
        raise TypeError(
            f"{where}: init must be an initialiser called as init(rng, shape), such as"
            f" fgraph.init.normal(0.01); got {init!r}"
        ) from None
    except ValueError:  # no signature to read (a builtin): trust it, init_params checks what it returns
        pass
    return init


def input(name: str, shape=()) -> Node:  # noqa: A001 - the contract's name
    """A data input with per-example shape ``shape``.

    Data fed to it may carry one extra leading batch axis.
    """
    check_name(name, "input")
    return Node(name=name, role="input", shape=as_shape(shape, f"input {name!r}"), batched=True)


def param(name: str, shape=(), init=None, *, owner=None) -> Node:
    """A trainable parameter of shape ``shape`` (never batched).

    ``init`` is an initialiser from :mod:`fgraph.init` (default: zeros), used
    by :func:`fgraph.init.init_params`. ``owner`` lets separately built param
    nodes be one parameter: two param nodes with one name are the same
    parameter when they carry the same owner object (by identity), the same
    shape and an equal init. A layer makes one owner when it is built and
    passes it to every param it creates, so applying the same layer many
    times ties its weights, with no global state; two layers built
    separately never share, even under one name.
    """
    check_name(name, "param")
    init = check_initializer(init, f"param {name!r}")
    return Node(name=name, role="param", shape=as_shape(shape, f"param {name!r}"), init=init, owner=owner)


@attrs.frozen(eq=False, repr=False)
class Graph:
    """A frozen computation graph with named outputs.

    ``nodes`` are in topological order; ``inputs`` and ``params`` map names to
    shapes; ``outputs`` maps output names to nodes; ``labels`` maps the
    inputs that carry integer class labels to their number of classes.
    ``programs`` (a :class:`fgraph.program.Programs`) compiles the
    evaluation of each output on its first use, once.
    """

    nodes: tuple
    inputs: Mapping
    params: Mapping
    outputs: Mapping
    labels: Mapping
    slots: Mapping
    programs: Mapping

    def node(self, name: str) -> Node:
        """The node called ``name``; a ``GraphError`` if there is none."""
        try:
            return self.nodes[self.slots[name]]
        except KeyError:
            raise GraphError(f"the graph has no node {name!r}") from None

    def __repr__(self) -> str:
        outs = ", ".join(f"{k}={v.name!r}" for k, v in self.outputs.items())
        return (
            f"<Graph {len(self.nodes)} nodes; params {list(self.params)};"
            f" inputs {list(self.inputs)}; outputs {outs}>"
        )


def _same_computation(kept: Node, node: Node, canonical: Mapping) -> bool:
    """Whether ``node`` computes what ``kept`` computes: both auto-named, the
    same primitive object, the same config, and inputs that are (or were
    merged into) the same nodes.

    ``canonical`` maps ``id(node)`` to the node kept for it; both nodes'
    inputs are already in it, so the comparison is one step deep and the
    whole merge is linear in the graph (hash-consing), never recursive.
    """
    return (
        kept.auto_name
        and node.auto_name
        and kept.op is node.op
        and len(kept.inputs) == len(node.inputs)
        and all(canonical[id(a)] is canonical[id(b)] for a, b in zip(kept.inputs, node.inputs))
        and _same_config(kept.config, node.config)
    )


def _same_config(a: Mapping, b: Mapping) -> bool:
    """Config equality, by value, that also holds for array-valued config."""
    return list(a) == list(b) and all(_same_value(a[k], b[k]) for k in a)


def _same_value(x, y) -> bool:
    if x is y:
        return True
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        return np.shape(x) == np.shape(y) and bool(np.array_equal(x, y))
    try:
        return bool(x == y)
    except (TypeError, ValueError):  # values that cannot say whether they are equal are not
        return False


def topological_order(roots) -> tuple:
    """Nodes reachable from ``roots``, each after its inputs (iterative DFS).

    Structurally identical auto-named nodes (same op, config and inputs, hence
    the same name) compute the same value and are kept once: each node is
    visited once, after its inputs, and compared with the node already kept
    under its name one level deep (see :func:`_same_computation`). Two
    different nodes that share an explicit name are a ``GraphError``.
    """
    kept: dict[str, Node] = {}  # name -> the node kept under that name
    canonical: dict[int, Node] = {}  # id(node) -> the node kept for it
    order: list[Node] = []

    for root in roots:
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in canonical:
                continue
            if not expanded:
                stack.append((node, True))
                # Computed inputs before leaves, so params come out layer by
                # layer (W1, b1, W2, b2), not deepest first.
                ordered = [i for i in node.inputs if i.role == "op"] + [i for i in node.inputs if i.role != "op"]
                stack.extend((i, False) for i in reversed(ordered) if id(i) not in canonical)
                continue
            other = kept.get(node.name)
            if other is None:
                kept[node.name] = canonical[id(node)] = node
                order.append(node)
            elif _same_computation(other, node, canonical) or _same_param(other, node):
                canonical[id(node)] = other
            else:
                raise GraphError(_duplicate_message(other, node))
    return tuple(order)


def _same_param(kept: Node, node: Node) -> bool:
    """Whether two param nodes are one parameter: one owner, shape and init."""
    return (
        kept.role == node.role == "param"
        and kept.owner is not None
        and kept.owner is node.owner
        and kept.shape == node.shape
        and kept.init == node.init
    )


def _duplicate_message(kept: Node, node: Node) -> str:
    """Why two nodes may not share a name, and what to do when sharing was meant."""
    head = f"two different nodes are named {node.name!r}: {kept!r} and {node!r}"
    if kept.auto_name and node.auto_name:
        return head + " (their primitives share the name but are different objects; pass name= to one)"
    if kept.role == node.role == "param" and kept.owner is not None and kept.owner is node.owner:
        return (
            f"{head}: the same layer made both, with shapes {kept.shape} and {node.shape} (and inits"
            f" {kept.init!r}, {node.init!r}); a layer applied several times shares its params, so it must"
            " see inputs of the same size each time"
        )
    if kept.role == node.role == "op":
        return (
            f"{head}; node names must be unique. A layer names its output after itself, so a layer applied"
            " more than once needs a name for each further application's output: layer(x2, name='h.2')"
            " (its params are shared all the same)"
        )
    return (
        f"{head}; node names must be unique. To share parameters (tied weights), build the layer once"
        " (cell = layers.rnn_cell('rnn', 32)) and apply that same layer wherever it is used, or use the"
        " same param Node; two layers built separately are different layers, so give them different names"
    )


def graph(**outputs: Node) -> Graph:
    """Collect the computation behind the named outputs into a frozen Graph.

    ``graph(prediction=p, objective=J)``. Output names are free; node names
    must be unique. Everything evaluation needs is computed here, once.
    """
    if not outputs:
        raise GraphError("graph() needs at least one output, e.g. graph(objective=J)")
    for key, node in outputs.items():
        if not isinstance(node, Node):
            raise GraphError(f"output {key!r} must be a Node, got {type(node).__name__}")
    nodes = topological_order(outputs.values())
    slots = MappingProxyType({n.name: i for i, n in enumerate(nodes)})
    canonical = {k: nodes[slots[v.name]] for k, v in outputs.items()}
    labels = {}
    for n in nodes:
        label_arg = getattr(n.op, "label_arg", None)
        if label_arg is not None:
            y, classes = n.inputs[label_arg], n.inputs[0].shape[-1]
            if labels.get(y.name, classes) != classes:
                raise GraphError(
                    f"input {y.name!r} is used as labels for {labels[y.name]} and for {classes} classes"
                )
            labels[y.name] = classes
    g = Graph(
        nodes=nodes,
        inputs=MappingProxyType({n.name: n.shape for n in nodes if n.role == "input"}),
        params=MappingProxyType({n.name: n.shape for n in nodes if n.role == "param"}),
        outputs=MappingProxyType(canonical),
        labels=MappingProxyType(labels),
        slots=slots,
        programs=EMPTY,
    )
    return attrs.evolve(g, programs=Programs(g))
