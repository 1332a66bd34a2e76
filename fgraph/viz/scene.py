"""What a picture of a graph shows, whatever draws it: one :class:`Box` per
node and one :class:`Arrow` per use of a node as an argument, with the
numbers of one evaluation when params and data are given.

Every renderer (DOT, matplotlib, the HTML page) draws a :class:`Scene`, so
they agree on what is shown: the name, the primitive and the per-example
shape of each node; with values, the norm of its value and of its gradient,
and on each arrow the norm of the gradient that use sends back. A param
used several times is one box with one arrow per use, each carrying that
use's contribution.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping

import attrs
import numpy as np

from fgraph.graph import Graph
from fgraph.interpret import Trace, trace
from fgraph.program import comment_text


@attrs.frozen
class Box:
    """One node as drawn. ``key`` is its slot in the graph (its place in the
    topological order); ``name`` the node's name, escaped to one printable
    line; ``uses`` the number of arrows leaving it; ``outputs`` the output
    names it is; the norms are None when no values were given or the
    output does not read it (``grad_norm``: no param reaches it)."""

    key: int
    name: str
    role: str
    op: str
    shape: str
    uses: int
    outputs: tuple = ()
    value_norm: float | None = None
    grad_norm: float | None = None


@attrs.frozen
class Arrow:
    """One use of node ``source`` as argument ``position`` of node
    ``target``; ``grad_norm`` is the norm of what that use sends back
    (``use`` of ``uses``: its rank among the source's contributions, in the
    order the backward pass adds them), None without values."""

    source: int
    target: int
    position: int
    grad_norm: float | None = None
    use: int = 0
    uses: int = 0


@attrs.frozen
class Scene:
    """A graph as drawn: boxes in topological order, arrows in the order of
    their targets then positions, the trace the numbers come from, and the
    value of ``output`` in it (None without values)."""

    boxes: tuple
    arrows: tuple
    output: str
    trace: Trace | None = None
    value: float | None = None


def shape_text(node) -> str:
    """The per-example shape, after ``B ×`` when the value carries a batch axis."""
    shape = "(" + ", ".join(map(str, node.shape)) + ("," if len(node.shape) == 1 else "") + ")"
    return f"B × {shape}" if node.batched else shape


def norm(value) -> float:
    """The Euclidean (Frobenius) norm of an array, batch axis included:
    ‖v‖ = m ‖v / m‖ with m = max |v|, so that no square overflows (entries
    of 1e200) or underflows (of 1e-170); NaN or inf when an entry is."""
    flat = np.ravel(np.asarray(value, dtype=np.float64))
    if not flat.size:
        return 0.0
    m = float(np.max(np.abs(flat)))
    if m == 0.0 or not math.isfinite(m):
        return m if not np.isnan(flat).any() else math.nan
    return m * float(np.linalg.norm(flat / m))


def _trace_of(g: Graph, params, data, output: str) -> Trace | None:
    if params is None:
        if data is not None:
            raise TypeError("data was given without params: a picture with numbers needs both (params=...)")
        return None
    return trace(g, params, data, output)


def _output_names(g: Graph) -> dict:
    names: dict = {}
    for key, node in g.outputs.items():
        names.setdefault(node.name, []).append(key)
    return names


def scene(g: Graph, params: Mapping | None = None, data: Mapping | None = None, output: str = "objective") -> Scene:
    """The :class:`Scene` of ``g``: its nodes and uses, with the numbers of
    evaluating and differentiating ``output`` when ``params`` (and ``data``)
    are given (validated as :func:`fgraph.value_and_grad` does)."""
    if not isinstance(g, Graph):
        raise TypeError(f"expected an fgraph Graph (from fgraph.graph(...)), got {type(g).__name__}")
    t = _trace_of(g, params, data, output)
    sent = {(e.source, e.consumer, e.position): e.cotangent for e in t.edges} if t is not None else {}
    ranks: dict = {}
    if t is not None:
        counts = Counter(e.source for e in t.edges)
        seen: Counter = Counter()
        for e in t.edges:
            seen[e.source] += 1
            ranks[e.source, e.consumer, e.position] = (seen[e.source], counts[e.source])
    arrows = []
    for node in g.nodes:
        for pos, arg in enumerate(node.inputs):
            key = (arg.name, node.name, pos)
            use, uses = ranks.get(key, (0, 0))
            grad = norm(sent[key]) if key in sent else None
            arrows.append(Arrow(g.slots[arg.name], g.slots[node.name], pos, grad, use, uses))
    fan_out = Counter(a.source for a in arrows)
    outputs = _output_names(g)
    boxes = tuple(
        Box(
            key=slot,
            name=comment_text(node.name),
            role=node.role,
            op=node.op.name if node.op is not None else node.role,
            shape=shape_text(node),
            uses=fan_out[slot],
            outputs=tuple(outputs.get(node.name, ())),
            value_norm=norm(t.values[node.name]) if t is not None and node.name in t.values else None,
            grad_norm=norm(t.cotangents[node.name]) if t is not None and node.name in t.cotangents else None,
        )
        for slot, node in enumerate(g.nodes)
    )
    value = float(t.values[g.outputs[output].name]) if t is not None else None
    return Scene(boxes=boxes, arrows=tuple(arrows), output=output, trace=t, value=value)


def number(x: float) -> str:
    """A norm in four significant digits."""
    return f"{x:.4g}"


def box_lines(box: Box) -> list:
    """The text of a box, line by line: name, primitive, shape, then the
    norms of its value and gradient when known."""
    lines = [box.name, box.op if box.role == "op" else box.role + (f" ×{box.uses} uses" if box.uses > 1 else ""),
             box.shape]
    if box.value_norm is not None:
        lines.append(f"‖v‖ {number(box.value_norm)}")
    if box.grad_norm is not None:
        lines.append(f"‖∇‖ {number(box.grad_norm)}")
    return lines


def arrow_label(arrow: Arrow) -> str:
    """The text of an arrow: the norm of the gradient it carries back, with
    its rank among the uses of a node used several times."""
    if arrow.grad_norm is None:
        return ""
    rank = f"use {arrow.use}/{arrow.uses}: " if arrow.uses > 1 else ""
    return f"{rank}‖∇‖ {number(arrow.grad_norm)}"
