"""Lowering: the same Python function, reading another backend's names.

A rule is written once, against NumPy (``np.tanh(a)``, ``np.zeros(shape)``,
``kernels.set_at(...)``). To run it on another array library, fgraph does
not translate it: it makes a copy of the function object whose *global
names* are bound differently. The code object, the defaults and the
closure's structure are the same; only what ``np``, ``math``, a NumPy
function imported by name or one of :mod:`fgraph.kernels` resolves to
changes. Functions the rule calls (a helper in its module, a rule of
another primitive) are lowered the same way, recursively, so a rule's
whole call tree reads the backend's names. Nothing is copied twice within
one lowering: a memo maps each original object to its lowered one, which
also handles recursion.

``substitute(obj)`` decides, for each global, closure cell or default the
lowering meets, what it becomes: a replacement, or None to keep it (or
lower it, when it is a Python function).
"""

from __future__ import annotations

import functools
import threading
import types
from collections.abc import Callable


def _global_names(code: types.CodeType) -> set:
    """Every name ``code`` or a function nested in it may look up globally."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


class Lowering:
    """``lower(obj)``: ``obj`` with every reference :attr:`substitute` names
    replaced, functions copied with their globals, closure cells and
    defaults lowered. One instance per backend.

    The memo lives for one outermost call (the lowering of a program, say,
    with every rule and helper it reaches, and the calls ``substitute``
    makes meanwhile): within it each object is copied once and recursion
    ends; after it nothing is kept, so a lowered program or optimiser lives
    as long as whoever caches it (a program's own cache), not as long as
    the process."""

    def __init__(self, substitute: Callable):
        self.substitute = substitute
        self._local = threading.local()  # the memo of the lowering under way in this thread

    def __call__(self, obj):
        memo = getattr(self._local, "memo", None)
        if memo is not None:
            return self._memoized(obj, memo)
        self._local.memo = memo = {}
        try:
            return self._memoized(obj, memo)
        finally:
            self._local.memo = None

    def _memoized(self, obj, memo: dict):
        found = memo.get(id(obj))
        if found is not None and found[0] is obj:
            return found[1]
        lowered = self._lower(obj)
        memo[id(obj)] = (obj, lowered)  # the original is kept alive meanwhile, so its id is not reused
        return lowered

    def _lower(self, obj):
        replacement = self.substitute(obj)
        if replacement is not None:
            return replacement
        if isinstance(obj, types.FunctionType):
            return self._function(obj)
        if isinstance(obj, types.MethodType):  # a variadic primitive's rule with its position bound
            return types.MethodType(self(obj.__func__), obj.__self__)
        if isinstance(obj, functools.partial):
            keywords = {k: self(v) for k, v in obj.keywords.items()}
            return functools.partial(self(obj.func), *map(self, obj.args), **keywords)
        if type(obj) in (tuple, list):  # e.g. a chain's (key, update) pairs, held in a closure
            return type(obj)(map(self, obj))
        if type(obj) is dict:
            return {k: self(v) for k, v in obj.items()}
        return obj

    def _function(self, f: types.FunctionType) -> types.FunctionType:
        names = _global_names(f.__code__) & f.__globals__.keys()
        namespace = dict(f.__globals__)  # filled below: the copy must exist first for recursion to find it
        closure = None if f.__closure__ is None else tuple(types.CellType() for _ in f.__closure__)
        copy = types.FunctionType(f.__code__, namespace, f.__name__, None, closure)
        self._local.memo[id(f)] = (f, copy)
        for name in names:
            namespace[name] = self(f.__globals__[name])
        if closure is not None:
            for new, old in zip(closure, f.__closure__):
                try:
                    new.cell_contents = self(old.cell_contents)
                except ValueError:  # an empty cell (a name assigned after the function was made)
                    pass
        copy.__defaults__ = None if f.__defaults__ is None else tuple(map(self, f.__defaults__))
        copy.__kwdefaults__ = None if f.__kwdefaults__ is None else {k: self(v) for k, v in f.__kwdefaults__.items()}
        copy.__qualname__, copy.__doc__, copy.__module__ = f.__qualname__, f.__doc__, f.__module__
        copy.__dict__.update(f.__dict__)
        return copy
