"""Graphviz DOT text of a graph: one statement per node and per use.

Names are data: nodes are identified by generated ids (``n3``) and every
name appears only inside a quoted string, escaped, so that no name (quotes,
backslashes, newlines, braces, ``<>``) can change the structure of the file
or what Graphviz does with it (its label escapes ``\\N``, ``\\l`` and the
like are neutralised with the backslash)."""

from __future__ import annotations

from collections.abc import Mapping

from fgraph.graph import Graph
from fgraph.viz import style
from fgraph.viz.scene import Box, arrow_label, box_lines, number, scene

#: The Graphviz node attributes of each kind of box.
SHAPES = {
    "input": 'shape=ellipse, style="filled"',
    "param": 'shape=box, style="filled"',
    "op": 'shape=box, style="rounded,filled"',
    "output": 'shape=box, style="rounded,filled,bold"',
}


def quote(text: str) -> str:
    """``text`` as a DOT double-quoted string that Graphviz shows as it is.

    Backslashes are doubled (so ``\\n`` in a name stays two characters,
    never a line break or another label escape) and quotes escaped; a line
    break or any other unprintable character is written as its Python escape,
    so that the string is one line.
    """
    printable = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return '"' + printable.replace("\\", "\\\\").replace('"', '\\"') + '"'


def label(lines) -> str:
    """A DOT label of several lines, each escaped by :func:`quote`, joined by centred line breaks."""
    return "\\n".join(quote(line)[1:-1] for line in lines).join('""')


def _kind(box: Box) -> str:
    return "output" if box.outputs else box.role if box.op != "constant" else "input"


def _node(box: Box) -> str:
    kind = _kind(box)
    fill, line = style.ROLES[kind]
    extra = ", peripheries=2" if box.role == "param" and box.uses > 1 else ""
    return (f"  n{box.key} [label={label(box_lines(box))}, {SHAPES[kind]}, fillcolor=\"{fill}\","
            f" color=\"{line}\"{extra}];")


def to_dot(g: Graph, params: Mapping | None = None, data: Mapping | None = None, output: str = "objective") -> str:
    """The DOT text of ``g``, left to right.

    Each node is labelled with its name, primitive (or role) and per-example
    shape; inputs are ellipses, params square boxes (a double outline when
    used several times), ops rounded boxes, outputs green. With ``params``
    (and ``data``), the labels add the norms of the node's value and
    gradient, evaluating and differentiating ``output``, and each use (one
    edge per use, so a shared param has one per consumer) the norm of the
    gradient it sends back.
    """
    s = scene(g, params, data, output)
    lines = [
        "digraph fgraph {",
        "  rankdir=LR;",
        f'  node [fontname="{style.FONT_FAMILY}", fontsize=10, margin="0.12,0.06"];',
        f'  edge [fontname="{style.FONT_FAMILY}", fontsize=8, color="{style.EDGE}", arrowsize=0.6];',
    ]
    if s.trace is not None:
        out = next(b for b in s.boxes if output in b.outputs)
        title = f"{output} = {number(float(s.trace.values[g.nodes[out.key].name]))}"
        lines.append(f'  label={quote(title)}; labelloc=t; fontname="{style.FONT_FAMILY}";')
    lines += [_node(box) for box in s.boxes]
    for arrow in s.arrows:
        attrs = f"label={quote(arrow_label(arrow))}, color=\"{style.GRADIENT}\", fontcolor=\"{style.GRADIENT_TEXT}\"" \
            if arrow.grad_norm is not None else ""
        lines.append(
            f"  n{arrow.source} -> n{arrow.target} [{attrs}];" if attrs else f"  n{arrow.source} -> n{arrow.target};"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"
