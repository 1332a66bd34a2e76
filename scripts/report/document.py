r"""A report as a list of blocks, rendered to Markdown and to a PDF.

The blocks are plain frozen values; the report's text is built once
(:mod:`report.content`) and rendered twice:

- :func:`to_markdown`: GitHub Markdown, math as ``$...$`` and ``$$...$$``;
- :func:`write_pdf`: an A4 PDF laid out with matplotlib alone
  (``PdfPages``, text with mathtext, figures from the PNG files), so no TeX
  installation is needed.

Inline markup in text: ``$...$`` math (mathtext-compatible TeX: ``\frac``,
``\partial``, ``\odot``, ``\top``, ``\mathbb{R}``...), ``**bold**`` and
```code``` (Markdown only; the PDF shows the text plainly). A dollar sign
that is not math must not appear in text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.textpath import TextToPath  # noqa: E402

# ------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 1


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple


@dataclass(frozen=True)
class Equations:
    """Display math, one equation per line (TeX without the dollars)."""

    lines: tuple


@dataclass(frozen=True)
class Table:
    header: tuple
    rows: tuple
    align: str = ""  # one of "l", "r", "c" per column; default: first left, others right


@dataclass(frozen=True)
class Figure:
    """A PNG next to the report (``filename`` relative to the report folder)."""

    filename: str
    caption: str


@dataclass(frozen=True)
class PageBreak:
    """A new page in the PDF; nothing in Markdown."""


def _alignments(table: Table) -> str:
    n = len(table.header)
    return table.align or ("l" + "r" * (n - 1))


# ----------------------------------------------------------------- markdown


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def to_markdown(blocks) -> str:
    """The blocks as one GitHub-flavoured Markdown document."""
    out = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append("#" * block.level + " " + block.text)
        elif isinstance(block, Paragraph):
            out.append(block.text)
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Equations):
            out.append("\n\n".join(f"$$\n{line}\n$$" for line in block.lines))
        elif isinstance(block, Table):
            rule = {"l": ":---", "r": "---:", "c": ":---:"}
            lines = ["| " + " | ".join(_md_cell(h) for h in block.header) + " |"]
            lines.append("|" + "|".join(rule[a] for a in _alignments(block)) + "|")
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            out.append("\n".join(lines))
        elif isinstance(block, Figure):
            out.append(f"![{block.caption}]({block.filename})\n\n*{block.caption}*")
        elif isinstance(block, PageBreak):
            continue
        else:
            raise TypeError(f"unknown block {block!r}")
    return "\n\n".join(out) + "\n"


# ---------------------------------------------------------------------- pdf

PAGE_W, PAGE_H = 8.27, 11.69  # A4, inches
MARGIN_X, MARGIN_TOP, MARGIN_BOTTOM = 0.85, 0.8, 0.85
TEXT_W = PAGE_W - 2 * MARGIN_X
BODY_SIZE = 9.5
HEADING_SIZE = {1: 16, 2: 13, 3: 11}

_TOKEN = re.compile(r"(?:\$[^$]*\$|[^\s$])+")


def _plain(text: str) -> str:
    """Text as the PDF shows it: Markdown emphasis and code marks removed."""
    return str(text).replace("**", "").replace("`", "")


class _Layout:
    """A cursor over A4 pages of a ``PdfPages``; measures text with ``TextToPath``."""

    def __init__(self, pdf, title: str):
        self.pdf, self.title = pdf, title
        self._ttp, self._fonts, self._widths = TextToPath(), {}, {}
        self._font = FontProperties
        self.fig, self.page, self.y = None, 0, 0.0

    # measuring ----------------------------------------------------------
    def _prop(self, size, weight="normal", style="normal", family="sans-serif"):
        key = (size, weight, style, family)
        if key not in self._fonts:
            self._fonts[key] = self._font(size=size, weight=weight, style=style, family=family)
        return self._fonts[key]

    def measure(self, text: str, size: float, weight="normal", style="normal", family="sans-serif"):
        """(width, height, descent) of ``text`` in inches (mathtext when it holds ``$``)."""
        key = (text, size, weight, style, family)
        if key not in self._widths:
            w, h, d = self._ttp.get_text_width_height_descent(
                text, self._prop(size, weight, style, family), ismath="$" in text)
            self._widths[key] = (float(w) / 72, float(h) / 72, float(d) / 72)
        return self._widths[key]

    def width(self, token: str, size: float, **font) -> float:
        """Width of a token in inches: mathtext is measured whole, plain text as a sum of advances."""
        if "$" in token:
            return self.measure(token, size, **font)[0]
        return sum(self._advance(c, size, **font) for c in token)

    def _advance(self, char: str, size: float, **font) -> float:
        key = (char, size, tuple(sorted(font.items())))
        if key not in self._widths:
            self._widths[key] = self.measure(f"x{char}x", size, **font)[0] - self.measure("xx", size, **font)[0]
        return self._widths[key]

    def wrap(self, text: str, width: float, size: float, **font) -> list[str]:
        """Greedy line breaking; a ``$...$`` span is never split."""
        space = self._advance(" ", size, **font)
        lines, line, used = [], [], 0.0
        for token in _TOKEN.findall(_plain(text)):
            w = self.width(token, size, **font)
            if line and used + space + w > width:
                lines.append(" ".join(line))
                line, used = [], 0.0
            used += (space if line else 0.0) + w
            line.append(token)
        if line:
            lines.append(" ".join(line))
        return lines

    # pages --------------------------------------------------------------
    def new_page(self):
        self.finish_page()
        self.fig = plt.figure(figsize=(PAGE_W, PAGE_H))
        self.page += 1
        self.y = PAGE_H - MARGIN_TOP
        self.text(PAGE_W / 2, MARGIN_BOTTOM / 2, f"{self.title} — {self.page}", 7.5, ha="center", color="0.4")

    def finish_page(self):
        if self.fig is not None:
            self.pdf.savefig(self.fig)
            plt.close(self.fig)
            self.fig = None

    def ensure(self, height: float):
        """Start a new page unless ``height`` inches still fit on this one."""
        if self.fig is None or self.y - height < MARGIN_BOTTOM:
            self.new_page()

    def text(self, x, y, s, size, ha="left", va="baseline", **kw):
        self.fig.text(x / PAGE_W, y / PAGE_H, s, fontsize=size, ha=ha, va=va, **kw)

    def rule(self, x0, x1, y, width=0.6):
        self.fig.add_artist(Line2D([x0 / PAGE_W, x1 / PAGE_W], [y / PAGE_H, y / PAGE_H],
                                   transform=self.fig.transFigure, color="0.3", linewidth=width))

    # blocks -------------------------------------------------------------
    def lines(self, lines, size, x=MARGIN_X, gap_after=0.08, **font):
        """Set wrapped lines; each line's height comes from its tallest token (fractions)."""
        base = size * 1.38 / 72
        for line in lines:
            # Plain lines have the font's height; only a line with math is measured (fractions are tall).
            _, h, d = self.measure(line, size, **font) if "$" in line else (0.0, 0.0, size * 0.24 / 72)
            step = max(base, h + 0.05)
            self.ensure(step)
            self.y -= step - d
            self.text(x, self.y, line, size, **_font_kw(font))
            self.y -= d
        self.y -= gap_after

    def heading(self, block: Heading):
        size = HEADING_SIZE.get(block.level, 10.5)
        self.ensure(size * 3.2 / 72 + 0.4)  # keep a heading with what follows it
        self.y -= 0.12 if block.level > 1 else 0.2
        self.lines(self.wrap(block.text, TEXT_W, size, weight="bold"), size, weight="bold", gap_after=0.06)

    def paragraph(self, text: str):
        self.lines(self.wrap(text, TEXT_W, BODY_SIZE), BODY_SIZE)

    def bullets(self, items):
        indent = 0.2
        for item in items:
            wrapped = self.wrap(item, TEXT_W - indent, BODY_SIZE)
            self.ensure(BODY_SIZE * 1.4 / 72)
            self.text(MARGIN_X + 0.05, self.y - BODY_SIZE * 1.02 / 72, "•", BODY_SIZE)
            self.lines(wrapped, BODY_SIZE, x=MARGIN_X + indent, gap_after=0.02)
        self.y -= 0.06

    def equations(self, lines):
        """Display math, centred. Not measured (a mathtext parse costs ~50 ms): the height is
        estimated from the fractions it has, and equations are written to fit the text width."""
        size = 11
        for line in lines:
            tall = "\\frac" in line
            h, d = size * (2.1 if tall else 1.2) / 72, size * (1.0 if tall else 0.3) / 72
            self.ensure(h + d + 0.1)
            self.y -= h + 0.04
            # mathtext sets \frac in text style; \dfrac is the display style Markdown's $$ shows.
            self.text(PAGE_W / 2, self.y, "$" + line.replace("\\frac", "\\dfrac") + "$", size, ha="center")
            self.y -= d + 0.06
        self.y -= 0.06

    def table(self, block: Table):
        size = 8.5
        cells = [[_plain(c) for c in block.header]] + [[_plain(c) for c in row] for row in block.rows]
        align = _alignments(block)
        pad = 0.12
        while True:
            widths = [max(self.width(row[j], size, weight="bold" if i == 0 else "normal")
                          for i, row in enumerate(cells)) for j in range(len(block.header))]
            total = sum(widths) + pad * (len(widths) - 1)
            if total <= TEXT_W or size <= 5.5:
                break
            size -= 0.5
        row_h = size * 1.6 / 72
        x0 = MARGIN_X
        self.ensure(row_h * min(len(cells), 4))
        for i, row in enumerate(cells):
            self.ensure(row_h)
            if i == 0:
                self.rule(x0, x0 + total, self.y, 0.9)
            self.y -= row_h
            x = x0
            for j, cell in enumerate(row):
                a = align[j]
                tx = {"l": x, "r": x + widths[j], "c": x + widths[j] / 2}[a]
                self.text(tx, self.y + row_h * 0.3, cell, size, ha={"l": "left", "r": "right", "c": "center"}[a],
                          fontweight="bold" if i == 0 else "normal")
                x += widths[j] + pad
            if i == 0 or i == len(cells) - 1:
                self.rule(x0, x0 + total, self.y, 0.9 if i else 0.6)
        self.y -= 0.15

    def figure(self, block: Figure, folder: Path):
        img = mpimg.imread(folder / block.filename)
        aspect = img.shape[0] / img.shape[1]
        w = TEXT_W
        h = w * aspect
        max_h = (PAGE_H - MARGIN_TOP - MARGIN_BOTTOM) * 0.62
        if h > max_h:
            h, w = max_h, max_h / aspect
        caption = self.wrap(block.caption, TEXT_W, 8.5, style="italic")
        self.ensure(h + 0.1 + len(caption) * 8.5 * 1.4 / 72)
        self.y -= h + 0.05
        ax = self.fig.add_axes([(PAGE_W - w) / 2 / PAGE_W, self.y / PAGE_H, w / PAGE_W, h / PAGE_H])
        ax.imshow(img, interpolation="antialiased")
        ax.set_axis_off()
        self.y -= 0.05
        self.lines(caption, 8.5, style="italic", gap_after=0.14)


def _font_kw(font: dict) -> dict:
    kw = {}
    if font.get("weight", "normal") != "normal":
        kw["fontweight"] = font["weight"]
    if font.get("style", "normal") != "normal":
        kw["fontstyle"] = font["style"]
    if font.get("family", "sans-serif") != "sans-serif":
        kw["family"] = font["family"]
    return kw


def write_pdf(blocks, file, folder, title: str = "report", before_figure=None,
              creator: str = "scripts/homework.py") -> None:
    """Lay the blocks out on A4 pages and write them as a PDF to the open binary ``file``.

    ``folder`` is where the figures' PNG files are; ``before_figure(filename)``,
    if given, is called before a figure is read (to wait for it to be drawn).
    The PDF carries no creation date, so the same blocks give the same bytes;
    ``creator`` is the program it names as its creator.
    """
    folder = Path(folder)
    with PdfPages(file, metadata={"Creator": creator, "CreationDate": None}) as pdf:
        layout = _Layout(pdf, title)
        for block in blocks:
            if isinstance(block, Heading):
                if block.level == 1 and layout.fig is not None and layout.y < PAGE_H * 0.35:
                    layout.new_page()
                layout.heading(block)
            elif isinstance(block, Paragraph):
                layout.paragraph(block.text)
            elif isinstance(block, Bullets):
                layout.bullets(block.items)
            elif isinstance(block, Equations):
                layout.equations(block.lines)
            elif isinstance(block, Table):
                layout.table(block)
            elif isinstance(block, Figure):
                if before_figure is not None:
                    before_figure(block.filename)
                layout.figure(block, folder)
            elif isinstance(block, PageBreak):
                layout.new_page()
            else:
                raise TypeError(f"unknown block {block!r}")
        layout.finish_page()
