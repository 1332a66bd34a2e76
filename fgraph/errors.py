"""The errors fgraph raises, each naming what is wrong and where.

Every public entry point validates its arguments and raises one of these
(or a plain ``ValueError``/``TypeError`` for non-finite or non-numeric
values) instead of letting a NumPy traceback escape from deep inside.
"""

from __future__ import annotations


class GraphError(ValueError):
    """A graph is malformed: duplicate node names, an unknown output, a cycle."""


class ShapeError(ValueError):
    """Shapes do not fit: at graph build, or when data does not match the
    shapes the graph declares (including mixed or unequal batch axes)."""


class NameMismatchError(KeyError):
    """A call got the wrong set of names for its params or data.

    ``missing`` lists the names the call needs but did not get;
    ``unexpected`` lists names the graph does not have at all (almost
    always a typo).
    """

    def __init__(self, what: str, missing=(), unexpected=(), known=(), hint: str = ""):
        self.what = what
        self.hint = hint
        self.missing = tuple(sorted(missing))
        self.unexpected = tuple(sorted(unexpected))
        self.known = tuple(sorted(known))
        super().__init__(self._message())

    def _message(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"missing {self.what} {list(self.missing)}")
        if self.unexpected:
            parts.append(
                f"unexpected {self.what} {list(self.unexpected)}"
                f" (the graph's {self.what} are {list(self.known)})"
            )
        return "; ".join(parts) + (f"; {self.hint}" if self.hint else "")

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message and wrap it in quotes.
        return self._message()


class FileFormatError(ValueError):
    """A file is not what the loader expects: corrupt, truncated, refused or another format."""


class InconclusiveCheckError(ValueError):
    """A gradient check cannot resolve a gradient at the point it was given:
    central differences are too uncertain there (coarse or varying forward
    values, a kink within the step) to tell that gradient from any other,
    so the check has shown nothing (``check_op``; ``check_grads`` reports
    such names as ``unresolved``)."""
