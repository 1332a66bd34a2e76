"""Compile a graph into straight-line Python programs, and run them.

Evaluation of an output is a fixed sequence of rule calls that depends only
on the frozen graph, so it is compiled, once, on its first use, into a
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

A node of many arguments (more than ``MANY_ARGUMENTS``: an ``add`` of a
thousand terms) binds them once, ``a9 = (v1, v2, ...)``, and its lines call
``f9(*a9)`` and ``b9_0(g9, v9, *a9)``, so that the program's code and its
compilation stay linear in the size of the graph. (A call still hands each
of the n VJP rules the n arguments, as their signature asks, so its cost
grows as n²: ``value_and_grad`` of an ``add`` of 1,000 scalar params takes
7 ms a call, of 2,000 27 ms.)

Memory: a value that may be large is deleted (``del v3``) right after the
last line that reads it, so a forward pass holds only what is still
needed and the backward pass only what the remaining VJPs read.

Trust: the first time a program runs with a given batch size it runs a
*checked* twin, the same lines with every forward value and every VJP
result compared with the shape that the shape rules and the batch size
say, so a primitive that ignores the batch axis or returns a wrongly
shaped cotangent is a :class:`~fgraph.errors.ShapeError` naming the
primitive, the argument and both shapes, never a silently wrong gradient.

Names are data, never code: only generated identifiers (``v3``, ``g3``,
``f3``) and ``repr``-quoted strings appear in the code, and every comment is
escaped to one line, so no name of any kind can change what runs.
Validation of params and data happens at the public entry points
(:mod:`fgraph.autodiff`, :mod:`fgraph.train`), never here.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Callable

import attrs
import numpy as np

from fgraph.errors import GraphError, ShapeError

ONE = np.float64(1.0)

#: A node with more arguments than this binds them once as a tuple that its
#: lines unpack: written out in each of its n VJP lines they made a program,
#: and its compilation, quadratic in n (an ``add`` of 2,000 terms: 34 s).
MANY_ARGUMENTS = 8

#: Values of an unbatched node with at most this many entries are not
#: deleted after their last use: the ``del`` would cost more than it frees.
SMALL_VALUE = 1024


@attrs.frozen(eq=False)
class Program:
    """The compiled evaluation of one output of a graph.

    - ``value_and_grad(params, data, cotangent=ONE) -> (value, {name: grad})``
    - ``value_and_step(params, data, cotangent) -> (value, {name: θ + cotangent·∂/∂θ})``
      for every param in ``wrt`` (all of them by default): one SGD step,
      with the learning rate folded into the cotangent.
    - ``forward(params, data) -> value``
    - ``checked_value_and_grad(params, data, cotangent, batch)`` and
      ``checked_forward(params, data, batch)``: the same programs, checking
      the shape of every value and cotangent (see :meth:`run`).
    - ``param_names`` / ``input_names``: what the output reads.
    - ``wrt``: the names gradients are taken with respect to; one that does
      not reach the output gets new zeros.
    - ``source``: the generated Python code.
    """

    output: str
    param_names: frozenset
    input_names: frozenset
    wrt: tuple
    value_and_grad: Callable
    value_and_step: Callable
    forward: Callable
    checked_value_and_grad: Callable
    checked_forward: Callable
    source: str
    verified: set = attrs.field(factory=set, repr=False)
    backends: dict = attrs.field(factory=dict, repr=False)  # the program compiled for other backends

    def run_value_and_grad(self, params, data, cotangent, batch):
        """``value_and_grad``, checked the first time it meets batch size ``batch``."""
        if ("grad", batch) in self.verified:
            return self.value_and_grad(params, data, cotangent)
        result = self.checked_value_and_grad(params, data, cotangent, batch)
        self.verified.update((("grad", batch), ("forward", batch)))
        return result

    def run_forward(self, params, data, batch):
        """``forward``, checked the first time it meets batch size ``batch``."""
        if ("forward", batch) in self.verified:
            return self.forward(params, data)
        result = self.checked_forward(params, data, batch)
        self.verified.add(("forward", batch))
        return result

    def verify(self, params, data, batch) -> None:
        """Run the checked program once on ``data`` (batch size ``batch``,
        None for one example without a batch axis) unless that batch size
        was checked already; raises ``ShapeError`` for a misshapen rule."""
        if ("grad", batch) not in self.verified:
            self.run_value_and_grad(params, data, ONE, batch)


@attrs.frozen(eq=False)
class ForwardProgram:
    """The compiled forward pass of several nodes at once:
    ``run(params, data, batch) -> tuple of values``."""

    param_names: frozenset
    input_names: frozenset
    fast: Callable
    checked: Callable
    verified: set = attrs.field(factory=set, repr=False)
    backends: dict = attrs.field(factory=dict, repr=False)  # the program compiled for other backends

    def run(self, params, data, batch) -> tuple:
        """The values, checked the first time batch size ``batch`` is met."""
        if batch in self.verified:
            return self.fast(params, data)
        result = self.checked(params, data, batch)
        self.verified.add(batch)
        return result


class Programs(Mapping):
    """The programs of a graph's outputs, each compiled on its first use.

    ``programs[output]`` is the :class:`Program` of one output;
    :meth:`with_respect_to` one with gradients for other names;
    :meth:`forward` the forward pass of several outputs at once. Compiling
    only what is used keeps building a graph linear in its size, however
    many outputs it names. The cache is private and its contents are pure
    functions of the frozen graph, so the graph stays a value.
    """

    def __init__(self, g):
        self._g = g
        self._cache: dict = {}
        self._lock = threading.Lock()

    def _get(self, key, make):
        found = self._cache.get(key)
        if found is None:
            with self._lock:
                found = self._cache.get(key)
                if found is None:
                    found = self._cache[key] = make()
        return found

    def __getitem__(self, output: str) -> Program:
        if output not in self._g.outputs:
            raise KeyError(output)
        return self._get(("output", output, None), lambda: compile_output(self._g, output))

    def __iter__(self):
        return iter(self._g.outputs)

    def __len__(self) -> int:
        return len(self._g.outputs)

    def with_respect_to(self, output: str, wrt) -> Program:
        """The program of ``output`` with gradients for the names ``wrt``."""
        wrt = tuple(wrt)
        return self._get(("output", output, wrt), lambda: compile_output(self._g, output, wrt))

    def forward(self, outputs) -> ForwardProgram:
        """One forward program computing the named outputs, in that order."""
        outputs = tuple(outputs)
        return self._get(("forward", outputs), lambda: compile_forward(self._g, outputs))


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


# ------------------------------------------------------------ shape checks


def value_shape(node, batch) -> tuple:
    """The shape ``node``'s value has when the data has batch size ``batch``
    (None: one example without a batch axis)."""
    return ((batch,) if node.batched and batch is not None else ()) + node.shape


def _describe_rule(node) -> str:
    return f"primitive {node.op.name!r} (node {node.name!r})"


def _require_array(value, node, what: str) -> None:
    if not isinstance(value, (np.ndarray, np.generic)):
        raise TypeError(f"{_describe_rule(node)}: its {what} returned {type(value).__name__}, not a NumPy array")


def check_value(value, node, batch):
    """``value`` if it has the shape that ``node`` has at batch size
    ``batch``, else a ``ShapeError`` naming the primitive and both shapes."""
    _require_array(value, node, "forward rule")
    expected = value_shape(node, batch)
    if value.shape != expected:
        where = f" with a batch of {batch}" if batch is not None and node.batched else ""
        raise ShapeError(
            f"{_describe_rule(node)}: the forward rule returned shape {value.shape}, expected {expected}"
            f" (per-example shape {node.shape}{where}); rules receive the arrays with their leading batch"
            " axis and must keep it"
        )
    return value


def _reducible(shape: tuple, target: tuple) -> bool:
    """Whether :func:`sum_to_shape` can take a cotangent of ``shape`` to ``target``."""
    if len(shape) < len(target):
        return False
    tail = shape[len(shape) - len(target):]
    return all(t == s or t == 1 for s, t in zip(tail, target))


def check_cotangent(c, node, position: int, like, reduce: bool):
    """The cotangent ``c`` that ``node``'s VJP returned for argument
    ``position`` (whose value is ``like``), summed down when ``reduce``;
    a ``ShapeError`` when it cannot have the argument's shape."""
    _require_array(c, node, f"VJP of argument {position}")
    target = np.shape(like)
    if reduce and c.shape != target and _reducible(c.shape, target):
        c = sum_to_shape(c, like)
    if c.shape != target:
        arg = node.inputs[position]
        hint = (
            "; a VJP whose result broadcasts must sum it back to the argument's shape,"
            " or its primitive must declare unbroadcast=True"
            if not reduce and _reducible(c.shape, target)
            else ""
        )
        raise ShapeError(
            f"{_describe_rule(node)}: the VJP of argument {position} ({arg.name!r}) returned shape {c.shape},"
            f" expected {target}, the shape of that argument's value{hint}"
        )
    return c


# ------------------------------------------------------------------ emitter


def comment_text(text: str) -> str:
    """``text`` with every character that could end a line of code escaped,
    so a comment made from names is one line, whatever the names hold."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


@attrs.frozen
class _Line:
    code: str
    comment: str
    reads: tuple
    writes: str | None


class _Emitter:
    """Collects the lines of a generated function, what each reads and
    writes, and the namespace the function runs in."""

    def __init__(self, g, checked: bool = False):
        self.g = g
        self.checked = checked
        self.lines: list[_Line] = []
        self.disposable: set[str] = set()  # locals worth deleting after their last use
        self.namespace: dict = {
            "sum_to_shape": sum_to_shape,
            "ONE": ONE,
            "zeros": np.zeros,
            "check_value": check_value,
            "check_cotangent": check_cotangent,
        }

    def line(self, code: str, comment: str = "", reads=(), writes=None) -> None:
        self.lines.append(_Line(code, comment_text(comment), tuple(reads), writes))

    def constant(self, key: str, value) -> str:
        self.namespace[key] = value
        return key

    def mark_disposable(self, var: str, node) -> None:
        """Delete ``var`` after its last use unless it holds a small unbatched value."""
        if node.role == "op" and (node.batched or math.prod(node.shape) > SMALL_VALUE):
            self.disposable.add(var)

    def arguments(self, slot: int) -> tuple[list, list]:
        """The argument expressions of node ``slot``'s rules, and the locals they read:
        its arguments' values (bound once as a tuple ``a{slot}`` for a node of many
        arguments, which every VJP line then reads whole), then its config."""
        node = self.g.nodes[slot]
        config = [self.constant(f"c{slot}_{j}", c) for j, c in enumerate(node.config.values())]
        if len(node.inputs) > MANY_ARGUMENTS:
            return [f"*a{slot}", *config], [f"a{slot}"]
        reads = self._values(node)
        return reads + config, reads

    def _values(self, node) -> list:
        """The locals holding ``node``'s arguments' values."""
        return [f"v{self.g.slots[i.name]}" for i in node.inputs]

    def bind_arguments(self, slot: int) -> None:
        """For a node of many arguments, the line binding them as the tuple ``a{slot}``."""
        node = self.g.nodes[slot]
        if len(node.inputs) > MANY_ARGUMENTS:
            values = self._values(node)
            self.line(f"a{slot} = ({', '.join(values)},)", f"the {len(values)} arguments of {node.name!r}", values,
                      f"a{slot}")
            self.disposable.add(f"a{slot}")

    def forward(self, slots) -> tuple[frozenset, frozenset]:
        """Lines computing ``v{slot}`` for every slot, in order; the leaf names read."""
        params, inputs = set(), set()
        for s in slots:
            node = self.g.nodes[s]
            if node.role == "param":
                params.add(node.name)
                self.line(f"v{s} = params[{node.name!r}]", f"{node.name!r} param", writes=f"v{s}")
            elif node.role == "input":
                inputs.add(node.name)
                self.line(f"v{s} = data[{node.name!r}]", f"{node.name!r} input", writes=f"v{s}")
            else:
                f = self.constant(f"f{s}", node.op.forward)
                self.bind_arguments(s)
                args, reads = self.arguments(s)
                described = ", ".join(repr(i.name) for i in node.inputs)
                call = f"{f}({', '.join(args)})"
                if self.checked:
                    call = f"check_value({call}, {self.constant(f'n{s}', node)}, batch)"
                self.line(f"v{s} = {call}", f"{node.name!r} = {node.op.name}({described})", reads, f"v{s}")
                self.mark_disposable(f"v{s}", node)
        return frozenset(params), frozenset(inputs)

    def source(self, name: str, signature: str) -> str:
        """The function's code, with ``del`` after the last read of every disposable local."""
        last_read: dict[str, int] = {}
        for i, ln in enumerate(self.lines):
            for var in ln.reads:
                last_read[var] = i
        out = [f"def {name}({signature}):"]
        for i, ln in enumerate(self.lines):
            out.append(f"    {ln.code:<52} # {ln.comment}" if ln.comment else f"    {ln.code}")
            dead = sorted(
                {v for v in ln.reads if last_read[v] == i and v in self.disposable and v != ln.writes},
                key=lambda v: (v[0], int(v[1:])),
            )
            if dead:
                out.append(f"    del {', '.join(dead)}")
        return "\n".join(out) + "\n"

    def compile(self, name: str, signature: str) -> tuple[Callable, str]:
        source = self.source(name, signature)
        namespace = dict(self.namespace)
        exec(compile(source, f"<fgraph program {name}>", "exec"), namespace)  # noqa: S102 - generated above
        return namespace[name], source


def argument_kinds(node) -> frozenset:
    """The ``(batched, shape)`` of ``node``'s arguments other than its labels:
    what :func:`may_broadcast` compares an argument with (found once a node,
    not once an argument: that made n² comparisons)."""
    label = node.op.label_arg
    return frozenset((a.batched, a.shape) for i, a in enumerate(node.inputs) if i != label)


def may_broadcast(arg, node, kinds: frozenset) -> bool:
    """Whether ``arg`` may be smaller than another argument of ``node`` (a
    different per-example shape, or no batch axis where another has one), so
    that its cotangent must be summed down; ``kinds`` is
    :func:`argument_kinds` of ``node``. Labels are indices, not values that
    broadcast: only their batch axis counts."""
    label = node.op.label_arg
    return bool(kinds - {(arg.batched, arg.shape)}) or (label is not None and node.inputs[label].batched != arg.batched)


def _forward_function(g, node_names, checked: bool, single: bool) -> tuple[Callable, frozenset, frozenset]:
    emit = _Emitter(g, checked)
    params, inputs = emit.forward(ancestors(g, node_names))
    values = [f"v{g.slots[n]}" for n in node_names]
    emit.line(f"return {values[0]}" if single else "return (" + "".join(f"{v}, " for v in values) + ")", reads=values)
    fn, _ = emit.compile("forward", "params, data, batch" if checked else "params, data")
    return fn, params, inputs


def compile_forward(g, outputs) -> ForwardProgram:
    """The forward program of the named outputs: their values, in order."""
    names = [g.outputs[k].name for k in outputs]
    fast, params, inputs = _forward_function(g, names, checked=False, single=False)
    checked, _, _ = _forward_function(g, names, checked=True, single=False)
    return ForwardProgram(param_names=params, input_names=inputs, fast=fast, checked=checked)


def _backward_lines(emit: _Emitter, g, live, wrt, out_slot: int, output: str) -> list:
    """Emit the backward pass; return ``(name, expression)`` of each gradient."""
    needs = _needing_gradients(g, live, wrt)
    emit.line(f"g{out_slot} = cotangent", f"∂{output}/∂{output}", writes=f"g{out_slot}")
    assigned = {out_slot}
    for s in sorted(needs, reverse=True):
        node = g.nodes[s]
        if node.role != "op":
            continue
        kinds = argument_kinds(node)
        for pos, arg in enumerate(node.inputs):
            dst = g.slots[arg.name]
            if dst not in needs:
                continue
            call, reads = _vjp_call(emit, node, s, pos, arg, dst, kinds)
            comment = f"{arg.name!r} <- {node.op.name} {node.name!r}"
            if dst in assigned:
                emit.line(f"g{dst} = g{dst} + {call}", comment + ", another use: contributions add",
                          [f"g{dst}", *reads], f"g{dst}")
            else:
                emit.line(f"g{dst} = {call}", comment, reads, f"g{dst}")
                assigned.add(dst)
            emit.mark_disposable(f"g{dst}", arg)
    return _gradient_results(emit, g, wrt, needs)


def _needing_gradients(g, live, wrt) -> set:
    """The live slots whose gradient the pass computes: those of ``wrt`` and
    every node that reads one of them, directly or through others."""
    wrt_slots = {g.slots[name] for name in wrt}
    needs = set()
    for s in live:
        if s in wrt_slots or any(g.slots[i.name] in needs for i in g.nodes[s].inputs):
            needs.add(s)
    return needs


def _vjp_call(emit: _Emitter, node, s: int, pos: int, arg, dst: int, kinds: frozenset) -> tuple:
    """``(expression, reads)`` of the cotangent ``node`` (in slot ``s``) sends
    its argument ``pos``, ``arg`` (in slot ``dst``); ``kinds``: :func:`argument_kinds` of ``node``."""
    vjp = node.op.vjp(pos)  # a variadic primitive's one rule, with the position bound
    if vjp is None:
        raise GraphError(
            f"{node.op.name} node {node.name!r} is not differentiable in argument {pos} ({arg.name!r})"
        )
    b = emit.constant(f"b{s}_{pos}", vjp)
    args, reads = emit.arguments(s)
    call = f"{b}(g{s}, v{s}, {', '.join(args)})"
    reads = [f"g{s}", f"v{s}", *reads]
    reduce = node.op.unbroadcast and may_broadcast(arg, node, kinds)
    if emit.checked:
        call = f"check_cotangent({call}, {emit.constant(f'n{s}', node)}, {pos}, v{dst}, {reduce})"
        reads.append(f"v{dst}")
    elif reduce:
        call = f"sum_to_shape({call}, v{dst})"
        reads.append(f"v{dst}")
    return call, reads


def _gradient_results(emit: _Emitter, g, wrt, needs) -> list:
    """``(name, expression)`` of each gradient of ``wrt``: its slot's
    cotangent, or zeros where the output does not depend on it."""
    grads = []
    for name in wrt:
        s = g.slots[name]
        if s in needs:
            grads.append((name, f"g{s}"))
        else:  # new zeros on every call: nothing returned is shared with another result
            grads.append((name, f"zeros({emit.constant(f's{s}', g.nodes[s].shape)})"))
    return grads


def _gradient_function(g, output: str, wrt, live, checked: bool):
    """``(value_and_grad, value_and_step, source)`` of ``output``; checked
    programs take the batch size as a last argument and have no step."""
    out_slot = g.slots[g.outputs[output].name]
    emit = _Emitter(g, checked)
    params, inputs = emit.forward(live)
    grads = _backward_lines(emit, g, live, wrt, out_slot, output)
    body = list(emit.lines)
    grad_vars = [e for _, e in grads if e.startswith("g")]
    emit.line("return v%d, {%s}" % (out_slot, ", ".join(f"{n!r}: {e}" for n, e in grads)),
              reads=[f"v{out_slot}", *grad_vars])
    signature = "params, data, cotangent, batch" if checked else "params, data, cotangent=ONE"
    value_and_grad, source = emit.compile("value_and_grad", signature)
    if checked:
        return value_and_grad, None, source, params, inputs
    # The same program ending in a step θ + u, for updates u = cotangent·∇ (SGD folds
    # its learning rate into the cotangent): no gradient dict, no second pass.
    emit.lines = body
    live_set = set(live)
    steps, reads = [], [f"v{out_slot}", *grad_vars]
    for n, e in grads:
        s = g.slots[n]
        if s in live_set:
            steps.append(f"{n!r}: v{s} + {e}")
            reads.append(f"v{s}")
        else:  # a leaf the output does not read: its current value, from where it lives
            steps.append(f"{n!r}: {'params' if g.nodes[s].role == 'param' else 'data'}[{n!r}] + {e}")
    emit.line("return v%d, {%s}" % (out_slot, ", ".join(steps)), reads=reads)
    value_and_step, _ = emit.compile("value_and_step", "params, data, cotangent")
    return value_and_grad, value_and_step, source, params, inputs


def compile_output(g, output: str, wrt=None) -> Program:
    """Compile the forward and backward programs of ``output``, fast and checked.

    ``wrt`` names the leaves to differentiate with respect to (default: every
    param of the graph, so gradients always have a key per param).
    """
    if output not in g.outputs:
        raise GraphError(f"the graph has no output {output!r}; its outputs are {list(g.outputs)}")
    wrt = tuple(g.params) if wrt is None else tuple(wrt)
    for name in wrt:
        if not isinstance(name, str) or name not in g.slots or g.nodes[g.slots[name]].role == "op":
            raise GraphError(f"cannot differentiate with respect to {name!r}: not a param or input of the graph")
    out_node = g.outputs[output].name
    live = ancestors(g, [out_node])
    forward, _, _ = _forward_function(g, [out_node], checked=False, single=True)
    checked_forward, _, _ = _forward_function(g, [out_node], checked=True, single=True)
    value_and_grad, value_and_step, source, params, inputs = _gradient_function(g, output, wrt, live, checked=False)
    checked_value_and_grad, *_ = _gradient_function(g, output, wrt, live, checked=True)
    return Program(
        output=output,
        param_names=params,
        input_names=inputs,
        wrt=wrt,
        value_and_grad=value_and_grad,
        value_and_step=value_and_step,
        forward=forward,
        checked_value_and_grad=checked_value_and_grad,
        checked_forward=checked_forward,
        source=source,
    )
