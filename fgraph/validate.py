"""Check params and data against a graph before anything is computed.

Every public entry point runs these once per call (``forward``,
``value_and_grad``) or once per fit (``train.fit``), so that a mistake is
reported with the name of the key, the expected and the received, and never
as a NumPy traceback from inside an op. A masked array (``numpy.ma``) is
refused wherever data or params enter: converting it would drop its mask
without a word.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import attrs
import numpy as np

from fgraph.errors import NameMismatchError, ShapeError


def check_names(what: str, given: Mapping, needed, known, elsewhere=()) -> None:
    """Raise ``NameMismatchError`` if ``given`` lacks a needed name or has an unknown one.

    ``elsewhere`` are names the graph has under the other role (data passed
    as params, say): they are reported as unexpected too.
    """
    if not isinstance(given, Mapping):
        raise TypeError(f"{what} must be a dict of name -> array, got {type(given).__name__}")
    missing = [k for k in needed if k not in given]
    unexpected = [k for k in given if k not in known]
    if missing or unexpected:
        misplaced = [k for k in unexpected if k in elsewhere]
        hint = f"{misplaced} belong in {'data' if what == 'params' else 'params'}" if misplaced else ""
        raise NameMismatchError(what, missing, unexpected, known, hint)


def refuse_masked(value, what: str) -> None:
    """Raise ``TypeError`` naming ``what`` if ``value`` is a masked array.

    ``np.asarray`` drops a mask without a word, so the masked entries, whatever
    they hold, would be computed with as if they were data.
    """
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(
            f"{what} is a masked array (numpy.ma); fgraph would ignore its mask and use the hidden"
            " entries: pass a plain array (drop the masked rows, or fill them with .filled(value))"
        )


def as_array(value, what: str) -> np.ndarray:
    """``value`` as an array of any dtype; a masked or ragged value is a TypeError naming ``what``."""
    refuse_masked(value, what)
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as e:  # ragged nested lists, say
        raise TypeError(f"{what} is not a rectangular array of numbers: {e}") from None


def as_float_array(value, what: str) -> np.ndarray:
    """``value`` as a float64 array; ints and bools convert, anything else is a TypeError."""
    arr = as_array(value, what)
    if arr.dtype.kind in "iub":
        return arr.astype(np.float64)
    if arr.dtype.kind != "f":
        raise TypeError(f"{what} must hold real numbers, got dtype {arr.dtype}")
    if arr.dtype != np.float64:
        arr = arr.astype(np.float64)
    return arr


def check_finite(arr: np.ndarray, what: str) -> None:
    """Raise ``ValueError`` naming ``what`` if ``arr`` has a NaN or an inf."""
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        where = f" at index {tuple(int(i) for i in bad)}" if arr.ndim else ""
        raise ValueError(f"{what} contains NaN or inf{where}: {arr[tuple(bad)]!r}")


def params(g, given: Mapping, needed) -> dict:
    """Validated float64 params: names, shapes exactly as declared, finite."""
    check_names("params", given, needed, g.params, g.inputs)
    out = {}
    for name in needed:
        arr = as_float_array(given[name], f"param {name!r}")
        if arr.shape != g.params[name]:
            raise ShapeError(f"param {name!r} has shape {arr.shape}, expected {g.params[name]}")
        check_finite(arr, f"param {name!r}")
        out[name] = arr
    return out


def labels(value, what: str, classes: int) -> np.ndarray:
    """Integer class labels in ``[0, classes)``, else a ``ValueError`` that says "label"."""
    arr = as_array(value, what)
    if arr.dtype.kind not in "iu":
        raise ValueError(
            f"{what} must hold integer class labels, got dtype {arr.dtype}"
            " (convert with .astype(int) if the values are whole numbers)"
        )
    if arr.size and (arr.min() < 0 or arr.max() >= classes):
        bad = arr[(arr < 0) | (arr >= classes)].flat[0]
        raise ValueError(f"{what}: every label must be in [0, {classes}), got label {int(bad)}")
    return arr.astype(np.intp, copy=False)


def data(g, given: Mapping | None, needed) -> tuple[dict, int | None]:
    """Validated data and its batch size (None when no input carries a batch axis).

    Each input has its declared per-example shape, or that shape after one
    leading batch axis of the same size B >= 1 on every input.
    """
    given = {} if given is None else given
    check_names("data", given, needed, g.inputs, g.params)
    out, batch = {}, {}
    for name in needed:
        what = f"data {name!r}"
        if name in g.labels:
            arr = labels(given[name], f"{what} (labels)", g.labels[name])
        else:
            arr = as_float_array(given[name], what)
        shape = g.inputs[name]
        if arr.shape == shape:
            batch[name] = None
        elif arr.shape[1:] == shape and arr.ndim == len(shape) + 1:
            batch[name] = arr.shape[0]
        else:
            batched = "(B, " + ", ".join(map(str, shape)) + ")" if shape else "(B,)"
            raise ShapeError(
                f"{what} has shape {arr.shape}; the graph declares per-example shape {shape},"
                f" optionally after a leading batch axis: {batched}"
            )
        if name not in g.labels:
            check_finite(arr, what)
        out[name] = arr
    sizes = set(batch.values())
    if len(sizes) > 1:
        described = ", ".join(f"{k!r}: {'no batch axis' if b is None else f'batch of {b}'}" for k, b in batch.items())
        if None in sizes:
            raise ShapeError(f"data mixes inputs with and without a batch axis ({described})")
        raise ShapeError(f"data inputs have different batch sizes ({described})")
    size = sizes.pop() if sizes else None
    if size == 0:
        raise ShapeError("data is an empty batch (0 examples): a batch needs at least one example")
    return out, size


def examples(given: Mapping, what: str = "data") -> tuple[dict, int]:
    """``{name: array}`` whose arrays all have a leading example axis of one
    length n, and n; else a ``ShapeError`` naming the inputs and their lengths.

    Dtypes are kept (labels stay integers): this is the check of batching,
    which only slices rows. A mask is refused, as everywhere data enters.
    """
    if not isinstance(given, Mapping):
        raise TypeError(f"{what} must be a dict of name -> array, got {type(given).__name__}")
    if not given:
        raise ValueError(f"{what} is empty: it needs at least one input with one row per example")
    out = {}
    for name, value in given.items():
        arr = as_array(value, f"{what} {name!r}")
        if arr.ndim == 0:
            raise ShapeError(f"{what} {name!r} is a scalar; every input needs a leading axis of one row per example")
        out[name] = arr
    lengths = {name: len(arr) for name, arr in out.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name!r} has {n}" for name, n in lengths.items())
        raise ShapeError(f"{what} inputs have different numbers of examples (rows along the leading axis): {described}")
    return out, next(iter(lengths.values()))


# ------------------------------------------------- repeated calls, cheaply

_FLOAT64 = np.dtype(np.float64)
_INTP = np.dtype(np.intp)
# What the fast path takes as it is: arrays, and the NumPy scalars that one
# example's entries are (``y[i]``); subclasses (masked arrays) take the full checks.
_ARRAYS = frozenset({np.ndarray, np.float64, _INTP.type})


def _sum_of_squares(a: np.ndarray) -> float:
    """Σ a², NaN or inf whenever an entry is (or the entries are beyond ~1e154)."""
    if a.ndim == 0:
        x = float(a)
        return x * x
    return a.dot(a) if a.ndim == 1 else np.vdot(a, a)


@attrs.frozen(eq=False)
class Validator:
    """The checks of :func:`params` and :func:`data` for the repeated calls
    of one program, cheap in the common case.

    A call whose params and data are plain dicts holding exactly the needed
    names, as float64 ndarrays of the declared shapes (labels as ``intp``),
    with one batch size, is accepted after one pass: the shapes and dtypes
    are compared and the finiteness of every array is settled by one sum of
    squares (NaN or inf if any entry is). Anything else, including a sum
    that overflows, goes through the full checks, which convert what may be
    converted and raise the error that names what is wrong: no error is
    weaker than the full checks give.
    """

    g: object
    param_names: frozenset
    input_names: frozenset
    param_specs: tuple
    input_specs: tuple

    @classmethod
    def of(cls, g, param_names, input_names) -> Validator:
        """The validator of a program that reads ``param_names`` and ``input_names``."""
        return cls(
            g,
            frozenset(param_names),
            frozenset(input_names),
            tuple((k, g.params[k]) for k in sorted(param_names)),
            tuple((k, g.inputs[k], g.labels.get(k)) for k in sorted(input_names)),
        )

    def __call__(self, given_params, given_data) -> tuple[dict, dict, int | None]:
        """``(params, data, batch size)``, validated."""
        fast = self._fast(given_params, {} if given_data is None else given_data)
        if fast is not None:
            return fast
        p = params(self.g, given_params, self.param_names)
        d, batch = data(self.g, given_data, self.input_names)
        return p, d, batch

    def _fast(self, given_params, given_data):
        if (
            type(given_params) is not dict or type(given_data) is not dict
            or len(given_params) != len(self.param_specs) or len(given_data) != len(self.input_specs)
        ):
            return None
        total = 0.0
        for name, shape in self.param_specs:
            a = given_params.get(name)
            if type(a) not in _ARRAYS or a.dtype is not _FLOAT64 or a.shape != shape:
                return None
            total += _sum_of_squares(a)
        batch = _batch_size(given_data, self.input_specs)
        if batch is _MISFIT:
            return None
        for name, _, classes in self.input_specs:
            a = given_data[name]
            if classes is None:
                total += _sum_of_squares(a)
            elif a.size and (a.min() < 0 or a.max() >= classes):
                return None
        if not math.isfinite(total):
            return None
        return given_params, given_data, batch


_MISFIT = object()


def _batch_size(given: dict, specs: tuple):
    """The common batch size of ``given`` (None without a batch axis), or
    ``_MISFIT`` when an array is not what the fast path accepts."""
    batch = _MISFIT
    for name, shape, classes in specs:
        a = given.get(name)
        if type(a) not in _ARRAYS or a.dtype is not (_FLOAT64 if classes is None else _INTP):
            return _MISFIT
        if a.shape == shape:
            size = None
        elif a.ndim == len(shape) + 1 and a.shape[1:] == shape and a.shape[0] > 0:
            size = a.shape[0]
        else:
            return _MISFIT
        if batch is _MISFIT:
            batch = size
        elif size != batch:
            return _MISFIT
    return None if batch is _MISFIT else batch
