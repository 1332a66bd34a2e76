"""Draw a graph to an SVG, PNG or PDF file: with matplotlib (imported here,
on the first call, never by ``import fgraph``), or with Graphviz's ``dot``
where it is installed."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from fgraph.graph import Graph
from fgraph.io import atomic_write
from fgraph.program import comment_text
from fgraph.viz import style
from fgraph.viz.dot import to_dot
from fgraph.viz.layout import Layout, label_points, layout
from fgraph.viz.scene import Scene, arrow_label, box_lines, number, scene

FORMATS = (".svg", ".png", ".pdf")
ENGINES = ("matplotlib", "graphviz")

#: Text sizes and spacing, in points.
FONT = 8.0
SMALL = 6.5
LINE = 10.5
PAD = 5.0
HGAP = 96.0
VGAP = 14.0
HEADER = 34.0
#: Names longer than this are shortened in the middle (the page shows them whole).
MAX_NAME = 36
#: A PNG stays within Agg's 2¹⁶ pixels a side and this many pixels in all
#: (about 0.5 GB of memory while drawing): a huge graph gets a lower
#: resolution; an SVG has none to lose.
MAX_SIDE = 60000
MAX_PIXELS = 120e6


def draw(g: Graph, path, params: Mapping | None = None, data: Mapping | None = None, *,
         output: str = "objective", engine: str = "matplotlib", dpi: float = 110.0) -> Path:
    """Draw ``g`` to ``path`` (its suffix picks the format: ``.svg``,
    ``.png`` or ``.pdf``), written atomically; return the path.

    Columns follow the topological order, left to right (see
    :mod:`fgraph.viz.layout`); inputs, params and ops are drawn in
    different colours, each box with the node's name, primitive and
    per-example shape. With ``params`` (and ``data``), the boxes also show
    the norms of each node's value and gradient, and each arrow the norm of
    the gradient that use sends back (a param used several times: one box,
    one arrow per use, each with its own contribution), from evaluating
    and differentiating ``output``.

    ``engine="graphviz"`` lays out and renders :func:`fgraph.viz.to_dot`
    with the ``dot`` program instead, which must be on ``PATH``.
    """
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"draw writes {', '.join(FORMATS)} files; the path {str(path)!r} ends in {path.suffix!r}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "graphviz":
        return _graphviz(to_dot(g, params, data, output=output), path)
    _require_matplotlib()
    s = scene(g, params, data, output)
    figure = _figure(s, dpi)
    with atomic_write(path, "wb") as f:
        figure.savefig(f, format=path.suffix[1:].lower(), dpi=figure.dpi, metadata=_metadata(path))
    return path


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "fgraph.viz.draw needs matplotlib (pip install matplotlib, or fgraph's 'report' extra);"
            " to_dot and page do not"
        ) from e


def _metadata(path: Path) -> dict:
    # No creation date: the same graph gives the same file.
    return {".svg": {"Date": None}, ".pdf": {"CreationDate": None}, ".png": {}}[path.suffix.lower()]


def _graphviz(dot_text: str, path: Path) -> Path:
    """Render DOT text with the ``dot`` program into ``path``."""
    program = shutil.which("dot")
    if program is None:
        raise FileNotFoundError(
            "engine='graphviz' needs Graphviz's `dot` program on PATH (apt-get install graphviz,"
            " brew install graphviz); engine='matplotlib' needs no program"
        )
    result = subprocess.run([program, f"-T{path.suffix[1:].lower()}"], input=dot_text.encode("utf-8"),
                            capture_output=True, timeout=300, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"`dot` failed (exit {result.returncode}): {result.stderr.decode('utf-8', 'replace')[:2000]}"
        )
    with atomic_write(path, "wb") as f:
        f.write(result.stdout)
    return path


# ------------------------------------------------------------ measuring


def shorten(text: str, most: int = MAX_NAME) -> str:
    """``text``, or its start and end around an ellipsis when longer than ``most``."""
    if len(text) <= most:
        return text
    head = (most - 1) // 2
    return text[:head] + "…" + text[len(text) - (most - 1 - head):]


class _Measure:
    """Text widths in points, summed from each character's advance (measured
    once per character and font: a few percent from the true width, which
    the padding absorbs)."""

    def __init__(self):
        from matplotlib.backends.backend_agg import RendererAgg
        from matplotlib.font_manager import FontProperties

        self._renderer = RendererAgg(8, 8, 72)
        self._props = {w: FontProperties(family=style.FONT_FAMILY, size=FONT, weight=w) for w in ("normal", "bold")}
        self._widths: dict = {}

    def width(self, text: str, bold: bool = False) -> float:
        weight = "bold" if bold else "normal"
        total = 0.0
        for ch in text:
            key = (ch, weight)
            if key not in self._widths:
                w, _, _ = self._renderer.get_text_width_height_descent(ch * 4, self._props[weight], ismath=False)
                self._widths[key] = w / 4
            total += self._widths[key]
        return total


def _box_text(box) -> list:
    lines = box_lines(box)
    return [shorten(lines[0])] + lines[1:]


def sizes(s: Scene, measure: _Measure) -> dict:
    """``{key: (width, height)}`` of every box, in points."""
    out = {}
    for box in s.boxes:
        lines = _box_text(box)
        width = max([measure.width(lines[0], bold=True)] + [measure.width(t) for t in lines[1:]])
        out[box.key] = (width + 2 * PAD, len(lines) * LINE + 2 * PAD - 2)
    return out


# ------------------------------------------------------------- drawing


def _figure(s: Scene, dpi: float):
    from matplotlib.figure import Figure

    plan = layout([b.key for b in s.boxes], s.arrows, sizes(s, _Measure()), hgap=HGAP, vgap=VGAP)
    width, height = max(plan.width, 360.0), plan.height + HEADER
    inches = (width / 72, height / 72)
    dpi = min(dpi, MAX_SIDE / max(inches), (MAX_PIXELS / (inches[0] * inches[1])) ** 0.5)
    figure = Figure(figsize=inches, dpi=dpi)
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    _header(ax, s)
    _arrows(ax, s, plan)
    _boxes(ax, s, plan)
    return figure


def _text(ax, x, y, text, **kw):
    """Text that is shown as it is: never read as mathtext, whatever ``$`` it holds."""
    return ax.text(x, y, text, parse_math=False, family=style.FONT_FAMILY, **kw)


def header_text(s: Scene) -> str:
    """The picture's first line: the output's value (with numbers), the
    counts of nodes and uses, and how to read the norms."""
    title = f"{len(s.boxes)} nodes, {len(s.arrows)} uses"
    if s.trace is None:
        return title
    output = comment_text(s.output)
    return (f"{output} = {number(s.value)}; {title}; ‖v‖ value, ‖∇‖ gradient of {output};"
            " on each arrow, what that use sends back")


def _header(ax, s: Scene) -> None:
    _text(ax, 8, 12, header_text(s), fontsize=FONT, va="center", color=style.TEXT)
    x = 8.0
    for role, label in (("input", "input"), ("param", "param"), ("op", "op"), ("output", "output")):
        colours = style.ROLES[role]
        ax.add_artist(_rounded(x, 20, 14, 9, colours))
        _text(ax, x + 18, 24.5, label, fontsize=SMALL, va="center", color=style.TEXT)
        x += 62


def _rounded(x, y, w, h, colours, linewidth=0.8):
    from matplotlib.patches import FancyBboxPatch

    return FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0,rounding_size=3", facecolor=colours[0],
                          edgecolor=colours[1], linewidth=linewidth)


def _role(box) -> str:
    return "output" if box.outputs else box.role if box.role != "op" or box.op != "constant" else "input"


def _boxes(ax, s: Scene, plan: Layout) -> None:
    for box in s.boxes:
        (cx, cy), (w, h) = plan.centres[box.key], plan.sizes[box.key]
        cy += HEADER
        colours = style.ROLES[_role(box)]
        ax.add_artist(
            _rounded(cx - w / 2, cy - h / 2, w, h, colours, 1.6 if box.uses > 1 and box.role == "param" else 0.8)
        )
        name, *rest = _box_text(box)
        top = cy - h / 2 + PAD - 1
        # Two texts a box, the bold name and the rest: text is most of the drawing's time.
        _text(ax, cx, top + LINE / 2, name, fontsize=FONT, ha="center", va="center", weight="bold", color=style.TEXT)
        _text(ax, cx, top + LINE, "\n".join(rest), fontsize=FONT, ha="center", va="top", color=style.TEXT,
              linespacing=LINE / FONT / 1.2)


def _curve(points) -> tuple[list, list]:
    """Vertices and codes of a smooth curve through ``points``: one cubic
    Bézier per segment, leaving and arriving horizontally."""
    from matplotlib.path import Path as MplPath

    verts, codes = [points[0]], [MplPath.MOVETO]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        dx = (x1 - x0) / 2
        verts += [(x0 + dx, y0), (x1 - dx, y1), (x1, y1)]
        codes += [MplPath.CURVE4] * 3
    return verts, codes


def _arrows(ax, s: Scene, plan: Layout) -> None:
    from matplotlib.patches import FancyArrowPatch, PathPatch
    from matplotlib.path import Path as MplPath

    def look(carries: bool) -> dict:
        return {"color": style.GRADIENT if carries else style.EDGE, "linewidth": 0.9 if carries else 0.7}

    def shifted(points) -> list:
        return [(x, y + HEADER) for x, y in points]

    for piece in plan.pieces:
        verts, codes = _curve(shifted(piece.points))
        carries = any(s.arrows[i].grad_norm is not None for i in piece.arrows)
        ax.add_artist(PathPatch(MplPath(verts, codes), fill=False, **look(carries)))
    labelled = []
    for arrow, route in zip(s.arrows, plan.routes):
        tail = shifted(route[-2:])  # the rest is pieces of its source's trunk
        verts, codes = _curve(tail)
        carries = arrow.grad_norm is not None
        ax.add_artist(FancyArrowPatch(path=MplPath(verts, codes), arrowstyle="-|>", mutation_scale=7, shrinkA=0,
                                      shrinkB=0, **look(carries)))
        if carries:
            labelled.append((tail, arrow_label(arrow)))
    if labelled:
        where = label_points([p for p, _ in labelled], SMALL + 2)
        for (x, y), (_, text) in zip(where, labelled):
            _text(ax, x, y, text, fontsize=SMALL, ha="center", va="center", color=style.GRADIENT_TEXT,
                  bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85})
