"""The public names of the primitives: README's table against the registry,
and the package that holds them installed with the rest."""

from __future__ import annotations

import pathlib
import re

import pytest

import fgraph as fg

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _primitives_row(readme: str) -> str:
    """The second cell of the "primitives" row of README's "The public API" table."""
    section = readme.split("## The public API", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| primitives")]
    assert len(rows) == 1, "README's public API table needs exactly one 'primitives' row"
    return rows[0].split("|")[2]


def _names_in(cell: str) -> set[str]:
    """The name each code span of ``cell`` starts with: `scale(a, 2.0)` -> scale."""
    return {re.match(r"@?(\w*)", span).group(1) for span in re.findall(r"`([^`]+)`", cell)}


def test_readme_lists_every_primitive_and_only_names_that_exist():
    listed = _names_in(_primitives_row((ROOT / "README.md").read_text(encoding="utf-8")))
    assert set(fg.ops.PRIMITIVES) - listed == set(), "primitives missing from README's table"
    assert {n for n in listed if not hasattr(fg.ops, n)} == set(), "README names what fgraph.ops does not have"


def test_the_readme_check_reads_the_names_it_should():
    cell = _primitives_row(
        "## The public API\n\n| | |\n|---|---|\n| primitives (`x`) | `tanh`, `scale(a, 2.0)`; `@primitive` |\n\n"
        "## Next\n| primitives | `relu` |"
    )
    assert _names_in(cell) == {"tanh", "scale", "primitive"}


def test_every_package_of_fgraph_is_installed():
    # pyproject lists the packages by hand: a new package directory (fgraph/ops)
    # missing there is absent from a wheel, though an editable install hides it.
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    if "find" in config.get("packages", {}):  # found automatically
        return
    packages = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "fgraph").rglob("__init__.py")}
    assert packages - set(config["packages"]) == set(), "packages missing from pyproject's [tool.setuptools] packages"
