"""Compile a graph once into flat programs, and run them.

A :class:`Program` is what evaluation of one output needs, derived only from
the frozen graph: which params and inputs it reads, a forward program (one
step per op node, in topological order) and a backward program (one step per
edge that carries a gradient, in reverse topological order). Running a
program walks these tuples and nothing else: no dictionaries or attrs objects
per node, no shape reasoning, no validation. Validation happens at the
public entry points (:mod:`fgraph.autodiff`, :mod:`fgraph.train`).

Backpropagation is the chain rule in reverse order: the cotangent of a node
is the sum, over its consumers, of each consumer's VJP. For a node with one
consumer that sum has one term and is assigned; for a node with several (a
shared parameter, ridge's ``w``) the terms are merged by adding them, in a
fixed order, so the result is deterministic to the bit.
"""

from __future__ import annotations

import attrs
import numpy as np

from fgraph.errors import GraphError

ONE = np.float64(1.0)


@attrs.frozen(eq=False)
class Program:
    """The evaluation plan of one output of a graph (see module docstring).

    - ``params`` / ``inputs``: ``(slot, name)`` of the leaves the output reads.
    - ``forward_steps``: ``(slot, run)`` with ``run(values) -> value``.
    - ``backward_steps``: ``(src, dst, run, first)``: the cotangent of slot
      ``dst`` gets ``run(cotangent[src], values)``, assigned when ``first``
      and added otherwise.
    - ``grads``: ``(name, slot, zeros)`` for each name gradients are taken
      with respect to; ``slot`` is None when the name does not reach the
      output and ``zeros`` (read-only) is its gradient.
    """

    output: str
    n_slots: int
    out_slot: int
    params: tuple
    inputs: tuple
    forward_steps: tuple
    backward_steps: tuple
    grads: tuple

    @property
    def param_names(self) -> frozenset:
        """Names of the params this output needs."""
        return frozenset(name for _, name in self.params)

    @property
    def input_names(self) -> frozenset:
        """Names of the data inputs this output needs."""
        return frozenset(name for _, name in self.inputs)


def sum_to_shape(c, like):
    """Sum a cotangent ``c`` down to the shape of ``like`` (undo broadcasting).

    Extra leading axes (the batch axis, when a parameter meets batched data)
    are summed away, then every axis where ``like`` has length 1 and ``c``
    does not. The one helper every broadcasting VJP goes through.
    """
    shape = like.shape
    if c.shape == shape:
        return c
    lead = c.ndim - len(shape)
    if lead > 0:
        c = c.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and c.shape[i] != 1)
    return c.sum(axis=axes, keepdims=True) if axes else c


def _reader(fn, slots, config=()):
    """``run(values) -> fn(*(values[s] for s in slots), *config)``, unrolled for small arities."""
    if config:
        if len(slots) == 1:
            (a,) = slots
            return lambda v: fn(v[a], *config)
        if len(slots) == 2:
            a, b = slots
            return lambda v: fn(v[a], v[b], *config)
        return lambda v: fn(*[v[s] for s in slots], *config)
    if len(slots) == 1:
        (a,) = slots
        return lambda v: fn(v[a])
    if len(slots) == 2:
        a, b = slots
        return lambda v: fn(v[a], v[b])
    if len(slots) == 3:
        a, b, c = slots
        return lambda v: fn(v[a], v[b], v[c])
    return lambda v: fn(*[v[s] for s in slots])


def _vjp_reader(fn, out, slots, config=()):
    """``run(g, values) -> fn(g, values[out], *(values[s] for s in slots), *config)``."""
    if config:
        if len(slots) == 1:
            (a,) = slots
            return lambda g, v: fn(g, v[out], v[a], *config)
        if len(slots) == 2:
            a, b = slots
            return lambda g, v: fn(g, v[out], v[a], v[b], *config)
        return lambda g, v: fn(g, v[out], *[v[s] for s in slots], *config)
    if len(slots) == 1:
        (a,) = slots
        return lambda g, v: fn(g, v[out], v[a])
    if len(slots) == 2:
        a, b = slots
        return lambda g, v: fn(g, v[out], v[a], v[b])
    if len(slots) == 3:
        a, b, c = slots
        return lambda g, v: fn(g, v[out], v[a], v[b], v[c])
    return lambda g, v: fn(g, v[out], *[v[s] for s in slots])


def _may_broadcast(arg, node) -> bool:
    """Whether ``arg`` may have a smaller shape than another argument of ``node``
    or its output, so that its cotangent must be summed down."""
    return any((other.batched, other.shape) != (arg.batched, arg.shape) for other in (node, *node.inputs))


def _unbroadcasting(run, dst):
    return lambda g, v: sum_to_shape(run(g, v), v[dst])


def ancestors(g, names) -> list:
    """Slots of the nodes that the named nodes depend on (themselves included), in order."""
    need = set()
    for name in names:
        need.add(g.slots[name])
    for slot in range(len(g.nodes) - 1, -1, -1):
        if slot in need:
            need.update(g.slots[i.name] for i in g.nodes[slot].inputs)
    return sorted(need)


def compile_forward(g, node_names) -> tuple:
    """``(params, inputs, forward_steps)`` computing the named nodes."""
    slots = ancestors(g, node_names)
    params, inputs, steps = [], [], []
    for s in slots:
        node = g.nodes[s]
        if node.role == "param":
            params.append((s, node.name))
        elif node.role == "input":
            inputs.append((s, node.name))
        else:
            ins = tuple(g.slots[i.name] for i in node.inputs)
            steps.append((s, _reader(node.op.forward, ins, tuple(node.config.values()))))
    return tuple(params), tuple(inputs), tuple(steps)


def compile_output(g, output: str, wrt=None) -> Program:
    """Compile the forward and backward programs of ``output``.

    ``wrt`` names the leaves to differentiate with respect to (default: every
    param of the graph, so gradients always have a key per param).
    """
    if output not in g.outputs:
        raise GraphError(f"the graph has no output {output!r}; its outputs are {list(g.outputs)}")
    wrt = tuple(g.params) if wrt is None else tuple(wrt)
    for name in wrt:
        if name not in g.slots or g.nodes[g.slots[name]].role == "op":
            raise GraphError(f"cannot differentiate with respect to {name!r}: not a param or input of the graph")
    out_slot = g.slots[g.outputs[output].name]
    params, inputs, forward_steps = compile_forward(g, [g.outputs[output].name])
    live = set(ancestors(g, [g.outputs[output].name]))

    wrt_slots = {g.slots[name] for name in wrt}
    needs = set()
    for s in sorted(live):
        node = g.nodes[s]
        if s in wrt_slots or any(g.slots[i.name] in needs for i in node.inputs):
            needs.add(s)

    steps, assigned = [], set()
    for s in sorted(needs, reverse=True):
        node = g.nodes[s]
        if node.role != "op":
            continue
        ins = tuple(g.slots[i.name] for i in node.inputs)
        for pos, (dst, arg) in enumerate(zip(ins, node.inputs)):
            if dst not in needs:
                continue
            vjp = node.op.vjps[pos]
            if vjp is None:
                raise GraphError(f"{node.op.name} node {node.name!r} is not differentiable in argument {pos} ({arg.name!r})")
            run = _vjp_reader(vjp, s, ins, tuple(node.config.values()))
            if node.op.unbroadcast and _may_broadcast(arg, node):
                run = _unbroadcasting(run, dst)
            steps.append((s, dst, run, dst not in assigned))
            assigned.add(dst)

    grads = []
    for name in wrt:
        s = g.slots[name]
        if s in needs:
            grads.append((name, s, None))
        else:
            zeros = np.zeros(g.nodes[s].shape)
            zeros.flags.writeable = False
            grads.append((name, None, zeros))
    return Program(
        output=output,
        n_slots=len(g.nodes),
        out_slot=out_slot,
        params=params,
        inputs=inputs,
        forward_steps=forward_steps,
        backward_steps=tuple(steps),
        grads=tuple(grads),
    )


def run_forward(n_slots, params_slots, inputs_slots, steps, params, data) -> list:
    """Fill the value of every slot the steps need; return the value list."""
    values = [None] * n_slots
    for s, name in params_slots:
        values[s] = params[name]
    for s, name in inputs_slots:
        values[s] = data[name]
    for s, run in steps:
        values[s] = run(values)
    return values


def run_value_and_grad(p: Program, params, data, cotangent=ONE):
    """``(value, {name: gradient})`` of ``p``'s output; no validation at all.

    The gradient of a name that does not reach the output is a shared
    read-only zeros array.
    """
    values = run_forward(p.n_slots, p.params, p.inputs, p.forward_steps, params, data)
    cts = [None] * p.n_slots
    cts[p.out_slot] = cotangent
    for src, dst, run, first in p.backward_steps:
        c = run(cts[src], values)
        cts[dst] = c if first else cts[dst] + c
    return values[p.out_slot], {name: (cts[s] if s is not None else z) for name, s, z in p.grads}

