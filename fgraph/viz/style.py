"""The colours and font every renderer of :mod:`fgraph.viz` uses, so that a
DOT file, a drawing and a page look alike."""

FONT_FAMILY = "DejaVu Sans"

#: (fill, outline) of each kind of box.
ROLES = {
    "input": ("#dbeafe", "#2563eb"),
    "param": ("#fef3c7", "#d97706"),
    "op": ("#f3f4f6", "#4b5563"),
    "output": ("#dcfce7", "#15803d"),
}

TEXT = "#111827"
NUMBERS = "#374151"
EDGE = "#9ca3af"
GRADIENT = "#dc2626"
GRADIENT_TEXT = "#991b1b"
