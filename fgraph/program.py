"""Compile a graph once into straight-line Python programs, and run them.

Evaluation of an output is a fixed sequence of rule calls that depends only
on the frozen graph, so it is compiled once, when the graph is built, into a
plain Python function: one line per op node for the forward pass, one line
per edge that carries a gradient for the backward pass. Running it creates
no dictionaries, lists or attrs objects per node and looks nothing up; the
arguments are local variables. :func:`program_source` shows the program,
which is also the clearest picture of backpropagation there is::

    def value_and_grad(params, data, cotangent):
        v1 = params['w']                                   # 'w' param
        ...
        v3 = f3(v0, v1, v2)                                # 'prediction' = vector_scalar_affine(...)
        ...
        g5 = cotangent                                     # ∂output/∂output
        g3 = b5_0(g5, v5, v3, v4, c5_0)                    # through squared_l2_distance
        g1 = b3_1(g3, v3, v0, v1, v2)                      # 'w', first use
        g1 = g1 + b6_0(g6, v6, v1, c6_0)                   # 'w', second use: contributions add

The cotangent of a node is the sum, over its consumers, of each
consumer's VJP: assigned for the first consumer, added for the others, in a
fixed order, so results are deterministic to the bit. Where an argument may
be smaller than the value it met (broadcasting, or a parameter meeting
batched data), the VJP's result goes through :func:`sum_to_shape`.

Only generated identifiers (``v3``, ``g3``, ``f3``) appear as code; the
rules, config constants and names live in the function's namespace or in
``repr``-quoted strings, so no node name can change what the code does.
Validation happens at the public entry points (:mod:`fgraph.autodiff`,
:mod:`fgraph.train`), never here.
"""

from __future__ import annotations

from typing import Callable

import attrs
import numpy as np

from fgraph.errors import GraphError

ONE = np.float64(1.0)


@attrs.frozen(eq=False)
class Program:
    """The compiled evaluation of one output of a graph.

    - ``value_and_grad(params, data, cotangent=ONE) -> (value, {name: grad})``
    - ``value_and_step(params, data, cotangent) -> (value, {name: θ + cotangent·∂/∂θ})``
      for every param in ``wrt`` (all of them by default): one SGD step,
      with the learning rate folded into the cotangent.
    - ``forward(params, data) -> value``
    - ``param_names`` / ``input_names``: what the output reads.
    - ``wrt``: the names gradients are taken with respect to; one that does
      not reach the output gets a shared read-only zeros array.
    - ``source``: the generated Python code.
    """

    output: str
    param_names: frozenset
    input_names: frozenset
    wrt: tuple
    value_and_grad: Callable
    value_and_step: Callable
    forward: Callable
    source: str


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


def ancestors(g, names) -> list:
    """Slots of the nodes that the named nodes depend on (themselves included), in order."""
    need = {g.slots[name] for name in names}
    for slot in range(len(g.nodes) - 1, -1, -1):
        if slot in need:
            need.update(g.slots[i.name] for i in g.nodes[slot].inputs)
    return sorted(need)


class _Emitter:
    """Collects the lines of a generated function and the namespace it runs in."""

    def __init__(self, g):
        self.g = g
        self.lines: list[str] = []
        self.namespace: dict = {"sum_to_shape": sum_to_shape, "ONE": ONE}

    def line(self, code: str, comment: str = "") -> None:
        self.lines.append(f"    {code:<52} # {comment}" if comment else f"    {code}")

    def constant(self, key: str, value) -> str:
        self.namespace[key] = value
        return key

    def arguments(self, slot: int) -> list:
        node = self.g.nodes[slot]
        args = [f"v{self.g.slots[i.name]}" for i in node.inputs]
        return args + [self.constant(f"c{slot}_{j}", c) for j, c in enumerate(node.config.values())]

    def forward(self, slots) -> tuple[frozenset, frozenset]:
        """Lines computing ``v{slot}`` for every slot, in order; the leaf names read."""
        params, inputs = set(), set()
        for s in slots:
            node = self.g.nodes[s]
            if node.role == "param":
                params.add(node.name)
                self.line(f"v{s} = params[{node.name!r}]", f"{node.name!r} param")
            elif node.role == "input":
                inputs.add(node.name)
                self.line(f"v{s} = data[{node.name!r}]", f"{node.name!r} input")
            else:
                f = self.constant(f"f{s}", node.op.forward)
                described = ", ".join(repr(i.name) for i in node.inputs)
                self.line(f"v{s} = {f}({', '.join(self.arguments(s))})", f"{node.name!r} = {node.op.name}({described})")
        return frozenset(params), frozenset(inputs)

    def compile(self, name: str, signature: str) -> tuple[Callable, str]:
        source = f"def {name}({signature}):\n" + "\n".join(self.lines) + "\n"
        exec(compile(source, f"<fgraph program {name}>", "exec"), self.namespace)  # noqa: S102 - generated above
        return self.namespace[name], source


def _may_broadcast(arg, node) -> bool:
    """Whether ``arg`` may be smaller than another argument of ``node`` (a
    different per-example shape, or no batch axis where another has one), so
    that its cotangent must be summed down."""
    return any((other.batched, other.shape) != (arg.batched, arg.shape) for other in node.inputs)


def compile_forward(g, node_names, single: bool = False) -> tuple[Callable, frozenset, frozenset]:
    """``(fn, param names, input names)`` where ``fn(params, data)`` returns the
    tuple of values of the named nodes (the value itself when ``single``)."""
    emit = _Emitter(g)
    params, inputs = emit.forward(ancestors(g, node_names))
    values = [f"v{g.slots[n]}" for n in node_names]
    emit.line(f"return {values[0]}" if single else "return (" + "".join(f"{v}, " for v in values) + ")")
    fn, _ = emit.compile("forward", "params, data")
    return fn, params, inputs


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
    out_node = g.outputs[output].name
    out_slot = g.slots[out_node]
    live = ancestors(g, [out_node])

    forward_fn, _, _ = compile_forward(g, [out_node], single=True)
    emit = _Emitter(g)
    params, inputs = emit.forward(live)

    wrt_slots = {g.slots[name] for name in wrt}
    needs = set()
    for s in live:
        if s in wrt_slots or any(g.slots[i.name] in needs for i in g.nodes[s].inputs):
            needs.add(s)
    emit.line(f"g{out_slot} = cotangent", f"∂{output}/∂{output}")
    assigned = {out_slot}
    for s in sorted(needs, reverse=True):
        node = g.nodes[s]
        if node.role != "op":
            continue
        for pos, arg in enumerate(node.inputs):
            dst = g.slots[arg.name]
            if dst not in needs:
                continue
            vjp = node.op.vjps[pos]
            if vjp is None:
                raise GraphError(f"{node.op.name} node {node.name!r} is not differentiable in argument {pos} ({arg.name!r})")
            b = emit.constant(f"b{s}_{pos}", vjp)
            call = f"{b}(g{s}, v{s}, {', '.join(emit.arguments(s))})"
            if node.op.unbroadcast and _may_broadcast(arg, node):
                call = f"sum_to_shape({call}, v{dst})"
            comment = f"{arg.name!r} <- {node.op.name} {node.name!r}"
            if dst in assigned:
                emit.line(f"g{dst} = g{dst} + {call}", comment + ", another use: contributions add")
            else:
                emit.line(f"g{dst} = {call}", comment)
                assigned.add(dst)

    grads = []
    for name in wrt:
        s = g.slots[name]
        if s in needs:
            grads.append((name, f"g{s}"))
        else:
            zeros = np.zeros(g.nodes[s].shape)
            zeros.flags.writeable = False
            grads.append((name, emit.constant(f"z{s}", zeros)))
    body = list(emit.lines)
    emit.line("return v%d, {%s}" % (out_slot, ", ".join(f"{n!r}: {e}" for n, e in grads)))
    value_and_grad, source = emit.compile("value_and_grad", "params, data, cotangent=ONE")
    # The same program ending in a step θ + u, for updates u = cotangent·∇ (SGD folds
    # its learning rate into the cotangent): no gradient dict, no second pass.
    emit.lines = body
    live_set = set(live)

    def current(name):  # the value of a leaf: already a local if the output reads it
        s = g.slots[name]
        source_dict = "params" if g.nodes[s].role == "param" else "data"
        return f"v{s}" if s in live_set else f"{source_dict}[{name!r}]"

    emit.line("return v%d, {%s}" % (out_slot, ", ".join(f"{n!r}: {current(n)} + {e}" for n, e in grads)))
    value_and_step, _ = emit.compile("value_and_step", "params, data, cotangent")
    return Program(
        output=output,
        param_names=params,
        input_names=inputs,
        wrt=wrt,
        value_and_grad=value_and_grad,
        value_and_step=value_and_step,
        forward=forward_fn,
        source=source,
    )
