"""Nodes and graphs: immutable values that describe a computation.

A :class:`Node` is a leaf (a data ``input`` or a trainable ``param``) or the
application of a primitive to other nodes. Nodes are frozen and compared by
identity. :func:`graph` collects the nodes that named outputs depend on into a
frozen :class:`Graph`, and computes once, at construction, everything that
evaluation needs and that does not depend on values: the topological order,
the slot of every node, which params and inputs each output needs, and the
flat programs that :mod:`fgraph.autodiff` runs.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping

import attrs

from fgraph.errors import GraphError, ShapeError

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
    role: str  # "input", "param" or "op"
    op: Any = None
    inputs: tuple = ()
    shape: tuple = ()
    config: Mapping = EMPTY
    init: Any = None
    batched: bool = False
    auto_name: bool = False

    def __repr__(self) -> str:
        kind = self.op.name if self.op is not None else self.role
        return f"<Node {self.name!r} {kind} shape={self.shape}>"


def check_name(name: object, what: str = "node") -> str:
    """Return ``name`` if it is a non-empty string, else raise ``TypeError``."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"a {what} name must be a non-empty string, got {name!r}")
    return name


def as_shape(shape: object, where: str) -> tuple:
    """Normalise a shape (an int, or a sequence of positive ints) to a tuple."""
    if isinstance(shape, (int,)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise ShapeError(f"{where}: a shape must be a tuple of ints, got {shape!r}") from None
    if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
        raise ShapeError(f"{where}: a shape must be a tuple of positive ints, got {shape!r}")
    return tuple(int(d) for d in dims)


def input(name: str, shape=()) -> Node:  # noqa: A001 - the contract's name
    """A data input with per-example shape ``shape``.

    Data fed to it may carry one extra leading batch axis.
    """
    check_name(name, "input")
    return Node(name=name, role="input", shape=as_shape(shape, f"input {name!r}"), batched=True)


def param(name: str, shape=(), init=None) -> Node:
    """A trainable parameter of shape ``shape`` (never batched).

    ``init`` is an initialiser from :mod:`fgraph.init` (default: zeros), used
    by :func:`fgraph.init.init_params`.
    """
    check_name(name, "param")
    return Node(name=name, role="param", shape=as_shape(shape, f"param {name!r}"), init=init)


@attrs.frozen(eq=False, repr=False)
class Graph:
    """A frozen computation graph with named outputs.

    ``nodes`` are in topological order; ``inputs`` and ``params`` map names to
    shapes; ``outputs`` maps output names to nodes; ``labels`` maps the
    inputs that carry integer class labels to their number of classes.
    ``programs`` holds the compiled evaluation plan of each output, and
    ``forward_all`` ``(fn, param names, input names)`` the one that computes
    every output at once.
    """

    nodes: tuple
    inputs: Mapping
    params: Mapping
    outputs: Mapping
    labels: Mapping
    slots: Mapping
    programs: Mapping
    forward_all: tuple = ()

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


def _same_computation(a: Node, b: Node) -> bool:
    """Whether two auto-named nodes compute the same value: the same primitive
    object, the same inputs and the same config (not just the same names)."""
    return (
        a.auto_name
        and b.auto_name
        and a.op is b.op
        and len(a.inputs) == len(b.inputs)
        and all(x is y or _same_computation(x, y) for x, y in zip(a.inputs, b.inputs))
        and dict(a.config) == dict(b.config)
    )


def topological_order(roots) -> tuple:
    """Nodes reachable from ``roots``, each after its inputs (iterative DFS).

    Structurally identical auto-named nodes (same op, config and inputs, hence
    the same name) compute the same value and are kept once. Two different
    nodes that share an explicit name are a ``GraphError``.
    """
    seen: dict[str, Node] = {}
    order: list[Node] = []

    def known(node: Node) -> bool:
        other = seen.get(node.name)
        if other is None:
            return False
        if other is not node and not (_same_computation(other, node)):
            hint = (
                " (their primitives share the name but are different objects; pass name= to one)"
                if other.auto_name and node.auto_name
                else "; node names must be unique"
            )
            raise GraphError(f"two different nodes are named {node.name!r}: {other!r} and {node!r}{hint}")
        return True

    for root in roots:
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if known(node):
                continue
            if expanded:
                seen[node.name] = node
                order.append(node)
            else:
                stack.append((node, True))
                # Computed inputs before leaves, so params come out layer by
                # layer (W1, b1, W2, b2), not deepest first.
                ordered = [i for i in node.inputs if i.role == "op"] + [i for i in node.inputs if i.role != "op"]
                stack.extend((i, False) for i in reversed(ordered))
    return tuple(order)


def graph(**outputs: Node) -> Graph:
    """Collect the computation behind the named outputs into a frozen Graph.

    ``graph(prediction=p, objective=J)``. Output names are free; node names
    must be unique. Everything evaluation needs is computed here, once.
    """
    from fgraph.program import compile_forward, compile_output  # evaluation plans need graph types

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
    programs = {k: compile_output(g, k) for k in canonical}
    forward_all = compile_forward(g, [n.name for n in canonical.values()])
    return attrs.evolve(g, programs=MappingProxyType(programs), forward_all=forward_all)
