"""How the report writes numbers."""

from __future__ import annotations


def f4(v) -> str:
    """Four decimals: 0.1999."""
    return f"{v:.4f}"


def g2(v) -> str:
    """Two significant digits in scientific notation: 1.2e-09."""
    return f"{v:.1e}"


def band(exp, metric: str) -> str:
    """The published value of ``metric`` for ``exp``: "0.199–0.201", "1.000" or "—" when there is none."""
    lo, hi = exp.published.get(metric, (None, None))
    if lo is None:
        return "—"
    return f"{lo:.3f}" if lo == hi else f"{lo:.3f}–{hi:.3f}"
