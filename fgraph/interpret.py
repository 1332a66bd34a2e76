r"""The reference interpreter: backpropagation as two folds over the graph.

The compiled programs of :mod:`fgraph.program` are fast; this module is
the definition they are tested against, written the way the design states
it. The forward pass is a fold over the output's ancestors in topological
order, carrying the values computed so far; the backward pass is a fold
over the same nodes in reverse topological order, carrying, for every
node, the gradient contributions its consumers have sent it::

    received[a][c] = VJP of consumer c for argument a (∂output/∂c · ∂c/∂a)
    ∂output/∂a     = Σ over consumers c of received[a][c]

Both accumulators are immutable: each step returns a new one. When the
fold reaches a node every consumer has been visited (they come later in
topological order), so its cotangent is complete; it is the sum of what it
received, merged with :func:`fgraph.merge_grads` (``toolz.merge_with``
that adds). The rules called are the primitives' own: ``node.op.forward``
and ``node.op.vjp(position)``, whose result is summed down to the
argument's shape (:func:`fgraph.program.sum_to_shape`) where the primitive
declares ``unbroadcast`` and the argument may be smaller than another.

Contributions arrive in the order the compiled program adds them (consumers
in reverse topological order, arguments by position), so the merged
gradients equal ``fgraph.value_and_grad``'s to the last bit.

::

    contributions(g, params, data)     # {param: {consumer node name: array}}
    merge(contributions(g, params, data))  # {param: gradient}
    trace(g, params, data)             # every value, cotangent and gradient edge

The folds copy their accumulator at every step (O(n²) for n nodes): this
is for reading, testing and drawing, never for training.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from functools import partial, reduce
from types import MappingProxyType

import attrs
import numpy as np
import toolz

from fgraph.autodiff import detached, merge_grads, scalar_program
from fgraph.errors import GraphError
from fgraph.graph import Graph, Node
from fgraph.program import ONE, ancestors, argument_kinds, check_cotangent, check_value, may_broadcast
from fgraph.validate import Validator

EMPTY = MappingProxyType({})


@attrs.frozen
class Edge:
    """One gradient edge of the backward pass: what ``consumer``'s VJP for
    its argument ``position`` (the node ``source``) sends back,
    ``cotangent = ∂output/∂consumer · ∂consumer/∂source``, in ``source``'s shape."""

    source: str
    consumer: str
    position: int
    cotangent: np.ndarray = attrs.field(repr=False)


@attrs.frozen
class Trace:
    """Everything one evaluation of ``output`` computes, read-only.

    - ``values``: the value of every node the output reads, by name;
    - ``cotangents``: ∂output/∂node for every node on a path from a param
      to the output (the output's is 1);
    - ``edges``: the gradient edges, in the order the backward pass
      computes them, which is the order of the backward lines of
      :func:`fgraph.program_source`;
    - ``batch``: the batch size the values carry (None: one example);
    - ``params``: the names of the graph's params, in the graph's order.
    """

    output: str
    params: tuple
    values: Mapping = attrs.field(repr=False)
    cotangents: Mapping = attrs.field(repr=False)
    edges: tuple = attrs.field(repr=False)
    batch: int | None = None


@attrs.frozen
class _Backward:
    """The backward fold's accumulator: ``received[node][consumer]`` (the
    contribution of each use, in arrival order), the cotangents completed
    so far, and the edges in the order they were computed."""

    received: Mapping = EMPTY
    cotangents: Mapping = EMPTY
    edges: tuple = ()


def _read_only(value):
    """A read-only view of an array (its dtype kept: labels stay integers); a scalar as it is."""
    if not isinstance(value, np.ndarray):
        return value
    view = value.view()
    view.flags.writeable = False
    return view


def _assoc(mapping: Mapping, key, value) -> Mapping:
    """A read-only copy of ``mapping`` with ``key`` set to ``value``."""
    return MappingProxyType(toolz.assoc(mapping, key, value))


# ------------------------------------------------------------------ forward


def _evaluate(params: Mapping, data: Mapping, batch, values: Mapping, node: Node) -> Mapping:
    """``values`` with ``node``'s value added: a leaf's from params or data,
    an op's from its forward rule, checked against the node's shape."""
    if node.role == "param":
        return _assoc(values, node.name, params[node.name])
    if node.role == "input":
        return _assoc(values, node.name, data[node.name])
    args = [values[i.name] for i in node.inputs]
    value = check_value(node.op.forward(*args, *node.config.values()), node, batch)
    return _assoc(values, node.name, value)


# ----------------------------------------------------------------- backward


def _vjp(node: Node, position: int, cotangent, values: Mapping, args: tuple, kinds: frozenset):
    """What ``node`` sends back to its argument ``position``: the
    primitive's VJP, summed down to the argument's shape when the primitive
    unbroadcasts and the argument may be smaller than another. ``args`` are
    the node's argument values and ``kinds`` its :func:`argument_kinds`, found
    once a node (once an argument, they made a node of n arguments cost n²)."""
    arg = node.inputs[position]
    rule = node.op.vjp(position)
    if rule is None:
        raise GraphError(
            f"{node.op.name} node {node.name!r} is not differentiable in argument {position} ({arg.name!r})"
        )
    c = rule(cotangent, values[node.name], *args, *node.config.values())
    reduce_ = node.op.unbroadcast and may_broadcast(arg, node, kinds)
    # check_cotangent sums c down to the argument's shape when reduce_ (the
    # evaluator's sum_to_shape), and names the primitive if it cannot fit.
    return check_cotangent(c, node, position, values[arg.name], reduce_)


def _backprop(values: Mapping, needs: frozenset, acc: _Backward, node: Node) -> _Backward:
    """One step of the reverse walk: complete ``node``'s cotangent from what
    its consumers sent, then send each of its arguments its contribution."""
    if node.name not in needs:
        return acc
    uses = acc.received.get(node.name)
    cotangent = ONE if uses is None else reduce(operator.add, uses.values())
    acc = attrs.evolve(acc, cotangents=_assoc(acc.cotangents, node.name, cotangent))
    if node.role != "op":
        return acc
    args, kinds = tuple(values[i.name] for i in node.inputs), argument_kinds(node)
    sent = tuple(
        Edge(arg.name, node.name, pos, _vjp(node, pos, cotangent, values, args, kinds))
        for pos, arg in enumerate(node.inputs)
        if arg.name in needs
    )
    return attrs.evolve(acc, received=reduce(_receive, sent, acc.received), edges=acc.edges + sent)


def _receive(received: Mapping, edge: Edge) -> Mapping:
    """``received`` with ``edge``'s contribution added to its source's,
    under its consumer (a node using one argument twice sends it twice)."""
    uses = received.get(edge.source, EMPTY)
    total = edge.cotangent if edge.consumer not in uses else uses[edge.consumer] + edge.cotangent
    return _assoc(received, edge.source, _assoc(uses, edge.consumer, total))


def _needs(live) -> frozenset:
    """Names of the nodes of ``live`` (in topological order) that are or
    depend on a param: the ones a gradient flows through."""
    return reduce(
        lambda need, node: (
            need | {node.name} if node.role == "param" or any(i.name in need for i in node.inputs) else need
        ),
        live,
        frozenset(),
    )


# ------------------------------------------------------------------- public


def _checked_call(g, params, data, output: str):
    """Validated ``(params, data, batch)`` for ``output``, as
    ``value_and_grad`` takes them (a batch of one is its example)."""
    program = scalar_program(g, output)
    p, d, batch = Validator.of(g, program.param_names, program.input_names)(params, data)
    if batch == 1:
        d, batch = {k: v[0] for k, v in d.items()}, None
    return p, d, batch


def trace(g: Graph, params: Mapping, data: Mapping | None = None, output: str = "objective") -> Trace:
    """Evaluate and differentiate the scalar ``output`` with the interpreter,
    keeping every value, cotangent and gradient edge (see :class:`Trace`).

    Params and data are validated as :func:`fgraph.value_and_grad` does,
    with the same errors. The arrays of the trace are read-only; they may be
    views of the caller's arrays.
    """
    p, d, batch = _checked_call(g, params, data, output)
    live = [g.nodes[s] for s in ancestors(g, [g.outputs[output].name])]
    values = reduce(partial(_evaluate, p, d, batch), live, EMPTY)
    backward = reduce(partial(_backprop, values, _needs(live)), reversed(live), _Backward())
    return Trace(
        output=output,
        params=tuple(g.params),
        values=MappingProxyType({k: _read_only(v) for k, v in values.items()}),
        cotangents=MappingProxyType({k: _read_only(v) for k, v in backward.cotangents.items()}),
        edges=tuple(attrs.evolve(e, cotangent=_read_only(e.cotangent)) for e in backward.edges),
        batch=batch,
    )


def contributions_of(t: Trace) -> dict:
    """``{param: {consumer node name: contribution}}`` of a trace: for every
    param of the graph, what each node that uses it sends back (the sum over the
    arguments, when one node uses the param more than once), in the order the
    backward pass computed them; ``{}`` for a param the output does not read."""
    grouped = reduce(
        lambda acc, e: toolz.update_in(
            acc, [e.source, e.consumer], lambda c: e.cotangent if c is None else c + e.cotangent
        ),
        (e for e in t.edges if e.source in t.params),
        {},
    )
    return {name: grouped.get(name, {}) for name in t.params}


def contributions(g: Graph, params: Mapping, data: Mapping | None = None, output: str = "objective") -> dict:
    r"""Every param's gradient contribution from each of its uses:
    ``{param: {consumer node name: array}}``, computed by the interpreter.

    For a param θ and each node c that takes θ as an argument,

        contribution[θ][c] = (∂output/∂c) · (∂c/∂θ),

    and the gradient is their sum, ∂output/∂θ = Σ_c contribution[θ][c]
    (:func:`merge`). Ridge's ``w`` has two, the prediction's and the
    penalty's. A param the output does not read maps to ``{}``. Params and
    data are validated as :func:`fgraph.value_and_grad` does; the arrays are
    new and read-only.
    """
    found = contributions_of(trace(g, params, data, output))
    flat = detached({(p, c): v for p, uses in found.items() for c, v in uses.items()})
    return {p: {c: flat[p, c] for c in uses} for p, uses in found.items()}


def merge(contributions_: Mapping) -> dict:
    """The gradients that contributions add up to: ``{param: Σ of its
    contributions}``, merged in their order with :func:`fgraph.merge_grads`;
    a param with no contribution is left out (its gradient is zero)."""
    return merge_grads(*({param: c} for param, uses in contributions_.items() for c in uses.values()))
