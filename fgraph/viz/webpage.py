"""One self-contained HTML file that steps through the backward pass.

The page shows the graph (inline SVG), the program that
:func:`fgraph.program_source` prints, and, one gradient edge at a time in
the order of the program's backward lines, which node's VJP runs, which
argument receives what, and the running sum of a node used several times.
Buttons (first, previous, next, last) and the arrow keys move; ``#step=N``
or ``?step=N`` in the address opens step N.

Safety: every name is HTML-escaped where it is written into the page; the
numbers and texts the script shows live in a ``<script
type="application/json">`` block with ``<``, ``>`` and ``&`` escaped, so no
name can close it, and the script only ever sets ``textContent``. Nothing
is loaded from the network: no fonts, scripts or styles from elsewhere.
"""

from __future__ import annotations

import html
import itertools
import json
import re
from collections.abc import Mapping

import numpy as np

from fgraph.autodiff import program_source
from fgraph.graph import Graph
from fgraph.io import atomic_write
from fgraph.program import comment_text
from fgraph.viz import style
from fgraph.viz.layout import label_points, layout, reach
from fgraph.viz.scene import Scene, arrow_label, box_lines, norm, number, scene

#: SVG text metrics, in pixels: a monospace font, whose advance is 0.6 em.
FONT = 11.0
ADVANCE = 0.6 * FONT
LINE = 14.0
PAD = 6.0
HGAP = 120.0
VGAP = 16.0
#: Entries of an array shown in the step panel.
PREVIEW = 6
#: Contributions a step lists (the newest) for a node used many times: listing
#: every earlier one at every step would make a page quadratic in the uses.
LISTED = 8

# A backward line of the program: g<dst> = [g<dst> + ][sum_to_shape(|check_cotangent(]b<consumer>_<position>(...
_BACKWARD = re.compile(r"^    g(\d+) = (?:g\1 \+ )?(?:\w+\()?b(\d+)_(\d+)\(")
_SEED = re.compile(r"^    g(\d+) = cotangent\b")


def preview(value) -> str:
    """The first few entries of an array, its shape, in four significant digits."""
    arr = np.asarray(value, dtype=np.float64)
    flat = arr.ravel()
    entries = ", ".join(number(float(v)) for v in flat[:PREVIEW]) + (", …" if flat.size > PREVIEW else "")
    return f"{number(float(arr))}" if arr.ndim == 0 else f"shape {arr.shape}: [{entries}]"


def json_for_html(data) -> str:
    """JSON that is safe inside a ``<script>`` element: ``<``, ``>`` and
    ``&`` (and the JavaScript line separators) are written as escapes."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    for ch, esc in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def _program_lines(g: Graph, output: str, s: Scene) -> tuple[list, int, list]:
    """The program's lines, the index of its seed line, and the index of the
    line of each edge of the trace (they come in the same order; checked)."""
    lines = program_source(g, output).splitlines()
    seed = next(i for i, ln in enumerate(lines) if _SEED.match(ln))
    found = [(i, m) for i, ln in enumerate(lines) if (m := _BACKWARD.match(ln))]
    edges = s.trace.edges
    if len(found) != len(edges):
        raise RuntimeError(f"the program has {len(found)} backward lines but the interpreter {len(edges)} edges")
    for (i, m), e in zip(found, edges):
        if (int(m[1]), int(m[2]), int(m[3])) != (g.slots[e.source], g.slots[e.consumer], e.position):
            raise RuntimeError(
                f"line {i + 1} of the program is not the edge {e.source!r} <- {e.consumer!r}: {lines[i]!r}"
            )
    return lines, seed, [i for i, _ in found]


def _steps(g: Graph, s: Scene, seed: int, line_of_edge: list) -> list:
    """What each step shows: step 0 seeds the output's gradient, step k ≥ 1
    is the k-th gradient edge, with the running sum of its receiver."""
    t = s.trace
    arrow_of = {(a.source, a.target, a.position): i for i, a in enumerate(s.arrows)}
    out = g.slots[g.outputs[s.output].name]
    steps = [{
        "line": seed, "arrow": -1, "receiver": out, "consumer": -1,
        "title": f"Start: ∂{s.output}/∂{s.output} = 1",
        "detail": [(f"The backward pass starts at the output {comment_text(g.nodes[out].name)}, whose gradient"
                   " with respect to itself is 1.")],
    }]
    received: dict = {}  # name -> (its contributions so far, newest last, at most LISTED; their count; their sum)
    for k, e in enumerate(t.edges):
        src, dst = g.slots[e.source], g.slots[e.consumer]
        listed, count, running = received.get(e.source, ((), 0, None))
        # The program's order, as it adds them: the sum of the first n terms, then + the next.
        running = e.cotangent if running is None else running + e.cotangent
        listed, count = (*listed[-(LISTED - 1):], (e.consumer, e.cotangent)), count + 1
        received[e.source] = listed, count, running
        box = s.boxes[src]
        arrow = s.arrows[arrow_of[src, dst, e.position]]
        detail = [
            (f"{comment_text(e.consumer)} ({g.nodes[dst].op.name}) sends argument {e.position},"
            f" {comment_text(e.source)}, its part of the gradient: ‖∇‖ {number(norm(e.cotangent))}"),
            f"this use's contribution: {preview(e.cotangent)}",
        ]
        if arrow.uses > 1:
            done = count == arrow.uses
            detail.append(
                f"{comment_text(e.source)} is used {arrow.uses} times: contribution {count} of {arrow.uses}"
            )
            if count > len(listed):
                detail.append(f"  ({count - len(listed)} earlier contributions, in the running sum)")
            detail += [f"  from {comment_text(c)}: ‖∇‖ {number(norm(v))}" for c, v in listed]
            detail.append(("sum, complete: ∂" + s.output + "/∂" + comment_text(e.source) if done else "running sum")
                          + f": ‖Σ‖ {number(norm(running))}, {preview(running)}")
        steps.append({
            "line": line_of_edge[k], "arrow": arrow_of[src, dst, e.position], "receiver": src, "consumer": dst,
            "title": f"Step {k + 1}: {box.name} ← {comment_text(e.consumer)}", "detail": detail,
        })
    return steps


# ------------------------------------------------------------------- SVG


NAME_CLASS = ' class="name"'


def _width(text: str) -> float:
    return len(text) * ADVANCE


def _path_data(points) -> str:
    """SVG path data of the curve every renderer draws through ``points``
    (:func:`fgraph.viz.layout.curve_point`): one cubic Bézier a segment."""
    return f"M {points[0][0]:.1f} {points[0][1]:.1f}" + "".join(
        f" C {(x0 + x1) / 2:.1f} {y0:.1f} {(x0 + x1) / 2:.1f} {y1:.1f} {x1:.1f} {y1:.1f}"
        for (x0, y0), (x1, y1) in itertools.pairwise(points)
    )


def _svg(s: Scene) -> tuple[str, float, float]:
    """The graph as SVG elements (ids ``b<key>`` for boxes, ``a<i>`` for
    arrows), and the drawing's width and height."""
    sizes = {}
    for box in s.boxes:
        lines = box_lines(box)
        sizes[box.key] = (max(map(_width, lines)) + 2 * PAD, len(lines) * LINE + 2 * PAD)
    plan = layout([b.key for b in s.boxes], s.arrows, sizes, hgap=HGAP, vgap=VGAP)
    labels = label_points(plan.routes, 11.0)
    parts = [
        f'<g class="arrow trunk" id="t{p.source}-{p.reach}" data-source="{p.source}" data-reach="{p.reach}">'
        f'<path d="{_path_data(p.points)}"/></g>'
        for p in plan.pieces
    ]
    for i, (arrow, route) in enumerate(zip(s.arrows, plan.routes)):
        text = html.escape(arrow_label(arrow))
        x, y = labels[i]
        # An arrow past waypoints is drawn as the pieces of its source's trunk up to its reach, then this.
        way = f' data-source="{arrow.source}" data-reach="{reach(route)}"' if reach(route) else ""
        parts.append(
            f'<g class="arrow" id="a{i}"{way}><path d="{_path_data(route[-2:])}" marker-end="url(#head)"/>'
            + (f'<text x="{x:.1f}" y="{y + 3:.1f}">{text}</text>' if text else "")
            + "</g>"
        )
    for box in s.boxes:
        (cx, cy), (w, h) = plan.centres[box.key], plan.sizes[box.key]
        kind = "output" if box.outputs else box.role
        lines = box_lines(box)
        tspans = "".join(
            f'<text x="{cx:.1f}" y="{cy - h / 2 + PAD + (i + 0.8) * LINE:.1f}"{NAME_CLASS if i == 0 else ""}>'
            f"{html.escape(line)}</text>"
            for i, line in enumerate(lines)
        )
        tip = html.escape(" · ".join(lines) + (f" · output {', '.join(box.outputs)}" if box.outputs else ""))
        parts.append(
            f'<g class="box {kind}" id="b{box.key}"><title>{tip}</title>'
            f'<rect x="{cx - w / 2:.1f}" y="{cy - h / 2:.1f}" width="{w:.1f}" height="{h:.1f}" rx="5"/>{tspans}</g>'
        )
    return "\n".join(parts), plan.width, plan.height


_CSS = """
body { margin: 0; font: 14px system-ui, -apple-system, "Segoe UI", sans-serif; color: #111827; }
header { padding: 8px 12px; border-bottom: 1px solid #e5e7eb; display: flex; gap: 8px; \
align-items: center; flex-wrap: wrap; }
header h1 { font-size: 16px; margin: 0 12px 0 0; }
button { font: inherit; padding: 3px 10px; }
#where { font-variant-numeric: tabular-nums; }
main { display: flex; height: calc(100vh - 50px); }
#graph { flex: 1; overflow: auto; border-right: 1px solid #e5e7eb; }
aside { flex: 1; display: flex; flex-direction: column; min-width: 480px; }
#explain { padding: 8px 12px; border-bottom: 1px solid #e5e7eb; min-height: 7em; }
#explain h2 { font-size: 15px; margin: 0 0 4px 0; }
#explain p { margin: 2px 0; font: 12px ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; \
white-space: pre-wrap; }
#program { margin: 0; padding: 8px 0; overflow: auto; flex: 1; \
font: 11px/1.45 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; }
#program .line { display: block; padding: 0 12px; white-space: pre; }
#program .line.current { background: #fde68a; }
#program .line.done { color: #6b7280; }
svg text { font: 11px ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; \
text-anchor: middle; fill: #111827; }
svg text.name { font-weight: bold; }
.box rect { stroke-width: 1; }
.box.input rect { fill: %(input_fill)s; stroke: %(input_line)s; }
.box.param rect { fill: %(param_fill)s; stroke: %(param_line)s; }
.box.op rect { fill: %(op_fill)s; stroke: %(op_line)s; }
.box.output rect { fill: %(output_fill)s; stroke: %(output_line)s; }
.box.receiver rect { stroke: #dc2626; stroke-width: 3; }
.box.consumer rect { stroke: #2563eb; stroke-width: 3; stroke-dasharray: 5 3; }
.arrow path { fill: none; stroke: %(edge)s; stroke-width: 1.2; }
.arrow text { font-size: 9px; fill: #9ca3af; }
.arrow.done path { stroke: %(gradient)s; }
.arrow.done text { fill: %(gradient_text)s; }
.arrow.current path { stroke: #f59e0b; stroke-width: 4; }
.arrow.current text { fill: #000; font-weight: bold; }
"""

# In a script of its own, first, so that it also reports a script that cannot even start.
_ON_ERROR = """window.addEventListener("error", function (event) {
  document.documentElement.dataset.jsError = String(event.message || "error");
});"""

_SCRIPT = r"""
(function () {
  "use strict";
  const root = document.documentElement;
  const data = JSON.parse(document.getElementById("fgraph-data").textContent);
  const steps = data.steps, last = steps.length - 1;
  let step = 0;
  function mark(id, cls, on) { const el = document.getElementById(id); if (el) el.classList.toggle(cls, on); }
  // An arrow past waypoints is drawn as the pieces of its source's trunk up to
  // its reach (shared with the source's other arrows), then its last segment.
  const pieces = Array.prototype.slice.call(document.querySelectorAll("g.trunk"));
  function way(arrow) {
    const el = arrow >= 0 ? document.getElementById("a" + arrow) : null;
    if (!el || !el.hasAttribute("data-reach")) return null;
    return {source: el.getAttribute("data-source"), reach: parseInt(el.getAttribute("data-reach"), 10)};
  }
  function within(piece, w) {
    return piece.getAttribute("data-source") === w.source && parseInt(piece.getAttribute("data-reach"), 10) <= w.reach;
  }
  function markArrow(arrow, cls, on) {
    mark("a" + arrow, cls, on);
    const w = way(arrow);
    if (w) pieces.forEach(function (p) { if (within(p, w)) p.classList.toggle(cls, on); });
  }
  function requested() {
    const m = /(?:^|[#?&])step=(\d+)/.exec(location.hash + "&" + location.search);
    return m ? Math.min(last, parseInt(m[1], 10)) : 0;
  }
  function show(k) {
    const before = steps[step];
    mark("line-" + before.line, "current", false);
    mark("b" + before.receiver, "receiver", false);
    if (before.consumer >= 0) mark("b" + before.consumer, "consumer", false);
    if (before.arrow >= 0) markArrow(before.arrow, "current", false);
    step = Math.max(0, Math.min(last, k));
    const sent = {};  // source -> the furthest reach of its arrows sent so far
    steps.forEach(function (s, i) {
      if (s.arrow >= 0) mark("a" + s.arrow, "done", i > 0 && i <= step);
      const w = i > 0 && i <= step ? way(s.arrow) : null;
      if (w && !(sent[w.source] >= w.reach)) sent[w.source] = w.reach;
      mark("line-" + s.line, "done", i < step);
    });
    pieces.forEach(function (p) {
      const source = p.getAttribute("data-source"), furthest = sent[source];
      p.classList.toggle("done", furthest !== undefined && within(p, {source: source, reach: furthest}));
    });
    const now = steps[step];
    mark("line-" + now.line, "current", true);
    mark("b" + now.receiver, "receiver", true);
    if (now.consumer >= 0) mark("b" + now.consumer, "consumer", true);
    if (now.arrow >= 0) markArrow(now.arrow, "current", true);
    document.getElementById("title").textContent = now.title;
    const detail = document.getElementById("detail");
    detail.replaceChildren.apply(detail, now.detail.map(function (t) {
      const p = document.createElement("p"); p.textContent = t; return p;
    }));
    document.getElementById("where").textContent = "step " + step + " of " + last;
    document.body.dataset.step = String(step);
    const line = document.getElementById("line-" + now.line);
    if (line && line.scrollIntoView) line.scrollIntoView({block: "nearest"});
    const node = document.getElementById("b" + (now.consumer >= 0 ? now.consumer : now.receiver));
    if (node && node.scrollIntoView) node.scrollIntoView({block: "nearest", inline: "center"});
  }
  const moves = {first: function () { return 0; }, prev: function () { return step - 1; },
                 next: function () { return step + 1; }, last: function () { return last; }};
  Object.keys(moves).forEach(function (id) {
    document.getElementById(id).addEventListener("click", function () { show(moves[id]()); });
  });
  const keys = {ArrowRight: "next", ArrowDown: "next", ArrowLeft: "prev", ArrowUp: "prev", Home: "first", End: "last"};
  document.addEventListener("keydown", function (event) {
    const move = keys[event.key];
    if (move) { event.preventDefault(); show(moves[move]()); }
  });
  window.addEventListener("hashchange", function () { show(requested()); });
  show(requested());
  root.dataset.ready = "true";
})();
"""


def page(g: Graph, path, params: Mapping, data: Mapping | None = None, *, output: str = "objective",
         title: str | None = None):
    """Write one self-contained HTML page to ``path`` (atomically) that
    steps through the backward pass of ``output`` on these params and data,
    one gradient edge at a time, in the order of the program's backward
    lines; return the path.

    Each step highlights the line of :func:`fgraph.program_source`, the
    node whose VJP runs, the argument that receives, and shows what it
    receives; for a node used several times, each contribution and their
    running sum, which at its last use is the gradient.
    """
    if params is None:
        raise TypeError("page steps through a backward pass: it needs params (and data)")
    s = scene(g, params, data, output)
    lines, seed, line_of_edge = _program_lines(g, output, s)
    steps = _steps(g, s, seed, line_of_edge)
    drawing, width, height = _svg(s)
    heading = title if title is not None else f"Backpropagation through {len(s.boxes)} nodes"
    program = "".join(f'<span class="line" id="line-{i}">{html.escape(ln)}</span>' for i, ln in enumerate(lines))
    colours = {
        f"{k}_{part}": v for k, (fill, line) in style.ROLES.items() for part, v in (("fill", fill), ("line", line))
    }
    css = _CSS % {**colours, "edge": style.EDGE, "gradient": style.GRADIENT, "gradient_text": style.GRADIENT_TEXT}
    document = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(heading)}</title>
<style>{css}</style>
</head>
<body>
<header>
<h1>{html.escape(heading)}</h1>
<button id="first" type="button" title="first step (Home)">◀◀ first</button>
<button id="prev" type="button" title="previous step (←)">◀ previous</button>
<button id="next" type="button" title="next step (→)">next ▶</button>
<button id="last" type="button" title="last step (End)">last ▶▶</button>
<span id="where"></span>
</header>
<main>
<div id="graph">
<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" \
viewBox="0 0 {width:.1f} {height:.1f}">
<defs><marker id="head" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" \
markerWidth="8" markerHeight="8" orient="auto">
<path d="M 0 0 L 10 5 L 0 10 z" fill="{style.EDGE}"/></marker></defs>
{drawing}
</svg>
</div>
<aside>
<div id="explain"><h2 id="title"></h2><div id="detail"></div></div>
<pre id="program">{program}</pre>
</aside>
</main>
<script>{_ON_ERROR}</script>
<script type="application/json" id="fgraph-data">{json_for_html({"steps": steps})}</script>
<script>{_SCRIPT}</script>
</body>
</html>
"""
    # A name or title may hold a lone surrogate, which UTF-8 cannot encode: it is shown as its escape.
    with atomic_write(path, "wb") as f:
        f.write(document.encode("utf-8", "backslashreplace"))
    return path
