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
    missing = [k for k in sorted(needed) if k not in given]
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
        with np.errstate(over="ignore"):  # an overflow is reported below, naming what overflowed
            converted = arr.astype(np.float64)
        if arr.dtype.itemsize > 8:  # only a wider float holds finite values that float64 cannot
            beyond = np.argwhere(np.isinf(converted) & np.isfinite(arr))
            if beyond.size:
                at = tuple(int(i) for i in beyond[0])
                where = f" at index {at}" if arr.ndim else ""
                raise ValueError(f"{what} holds {arr[at]!r}{where}, beyond float64's range (±1.8e308)")
        arr = converted
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
    for name in sorted(needed):  # the first bad name is reported whatever the order of a set
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
    for name in sorted(needed):  # the first bad name is reported whatever the order of a set
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
_isfinite = math.isfinite


#: Each entry's weight in the one-call finite check: small enough that no sum
#: of fewer than 2⁶⁴ finite float64s so weighted can overflow (each is below
#: 2¹⁰²⁴⁻⁶⁴), large enough that only entries below 4e-289 underflow.
_WEIGHT = 2.0**-64
#: Batch sizes whose weights a validator keeps (a fit's batch and its last one, a few more).
_KEPT_WEIGHTS = 8


def weights(size: int) -> np.ndarray:
    """A read-only vector of ``size`` entries 2⁻⁶⁴: w in :func:`_finite`."""
    w = np.full(size, _WEIGHT)
    w.setflags(write=False)
    return w


def _finite(a, w) -> bool:
    """Whether a float64 array or NumPy float has no NaN or inf, in one NumPy call.

    Σ 2⁻⁶⁴ aᵢ (``w`` holds a.size weights 2⁻⁶⁴) is finite exactly when
    every entry is: a NaN propagates, an inf stays inf (or makes NaN
    beside a -inf), and finite entries cannot overflow the sum however
    large they are (Σ a² overflowed past 1e154, with NumPy's warning). (The
    params' pass inlines the 1-D case, the commonest, to save a call.)
    """
    if a.ndim == 1:
        return _isfinite(a.dot(w))
    if type(a) is np.float64 or not a.ndim:
        return _isfinite(a)
    return _isfinite(np.vdot(a, w))  # vdot flattens; dot would multiply matrices


def _labels_ok(a, classes: int) -> bool:
    """Whether every entry of an intp array or NumPy integer is in ``[0, classes)``."""
    if a.size == 1:
        return 0 <= a.item() < classes
    # Viewed as unsigned, a negative label is huge: one reduction checks both ends.
    return not a.size or a.view(np.uintp).max() < classes


@attrs.frozen(eq=False)
class Validator:
    """The checks of :func:`params` and :func:`data` for the repeated calls
    of one program, cheap in the common case.

    A call whose params and data are plain dicts holding exactly the needed
    names, as float64 ndarrays (or NumPy floats) of the declared shapes,
    labels as ``intp``, with one batch size, is accepted after one pass
    that reads each array's type, dtype and shape once and settles its
    finiteness with one NumPy call (:func:`_finite`) and its labels' range
    with one more. Nothing about the arrays is remembered between calls
    (only the weights of the finite check for a few batch sizes): a call
    whose arrays have other shapes or hold other values than the last one's
    is checked as fully as the first. Anything the pass does not accept
    goes through the full checks, which convert what may be converted and
    raise the error that names what is wrong: no error is weaker than
    :func:`params` and :func:`data` give.

    With ``squeeze``, a batch of one comes back as its example (each
    input's row 0, batch size None), which is how value_and_grad evaluates
    it; the finite checks then read the example, the array the program reads.
    """

    g: object
    param_names: frozenset
    input_names: frozenset
    param_specs: tuple
    input_specs: tuple
    squeeze: bool = False
    # the weights of _finite for a batch's arrays, by size: a cache, not a value
    _batch_weights: dict = attrs.field(factory=dict, eq=False, repr=False)

    @classmethod
    def of(cls, g, param_names, input_names, squeeze: bool = False) -> Validator:
        """The validator of a program that reads ``param_names`` and ``input_names``."""
        shapes = [g.params[k] for k in param_names] + [g.inputs[k] for k in input_names]
        # one vector for all, each name a view of its size: memory of the largest, not of all
        w = weights(max(map(math.prod, shapes), default=0))
        return cls(
            g,
            frozenset(param_names),
            frozenset(input_names),
            tuple((k, g.params[k], w[: math.prod(g.params[k])]) for k in sorted(param_names)),
            tuple((k, g.inputs[k], g.labels.get(k), w[: math.prod(g.inputs[k])]) for k in sorted(input_names)),
            squeeze,
        )

    def __call__(self, given_params, given_data) -> tuple[dict, dict, int | None]:
        """``(params, data, batch size)``, validated."""
        given_data = {} if given_data is None else given_data
        fast = self._fast(given_params, given_data)
        if fast is not None:
            return fast
        p = params(self.g, given_params, self.param_names)
        d, batch = data(self.g, given_data, self.input_names)
        if batch == 1 and self.squeeze:
            d, batch = {k: v[0] for k, v in d.items()}, None
        return p, d, batch

    def _fast(self, given_params, given_data):
        """What ``__call__`` returns, if the fast path accepts the call, else None."""
        if (
            type(given_params) is not dict or type(given_data) is not dict
            or len(given_params) != len(self.param_specs) or len(given_data) != len(self.input_specs)
        ):
            return None
        for name, shape, w in self.param_specs:
            a = given_params.get(name)
            if type(a) is np.float64:  # a scalar param, as the update of a 0-d one makes it
                if shape or not _isfinite(a):
                    return None
            elif (
                type(a) is not np.ndarray or (a.dtype is not _FLOAT64 and a.dtype != _FLOAT64) or a.shape != shape
                or not (_isfinite(a.dot(w)) if a.ndim == 1 else _finite(a, w))
            ):
                return None
        d = _data_pass(given_data, self.input_specs, self.squeeze, self._weights_of_batch)
        return None if d is None else (given_params, d[0], d[1])

    def _weights_of_batch(self, size: int) -> np.ndarray:
        """The weights of :func:`_finite` for ``size`` entries, kept for a few sizes."""
        w = self._batch_weights.get(size)
        if w is None:
            w = weights(size)
            if len(self._batch_weights) < _KEPT_WEIGHTS:
                self._batch_weights[size] = w
        return w


_MISFIT = object()


def _data_pass(given: dict, specs: tuple, squeeze: bool, weights_of_batch):
    """``(data, batch size)`` if every input of ``specs`` is in ``given`` as
    the fast path accepts it (see :class:`Validator`), else None.

    The first input's batch size (None: no batch axis) is the one every
    other must have; with ``squeeze``, a batch of one is taken apart as the
    inputs are read. ``weights_of_batch(size)`` gives the weights of
    :func:`_finite` for a batch's ``size`` entries.
    """
    out, batch = {}, _MISFIT
    for name, example, classes, w in specs:
        a = given.get(name)
        if type(a) not in _ARRAYS:
            return None
        dtype = _FLOAT64 if classes is None else _INTP
        if a.dtype is not dtype and a.dtype != dtype:  # equal, not the same object: unpickled, say
            return None
        shape = a.shape
        if shape == example:
            size = None
        elif shape[1:] == example and shape[0]:  # and shape ≠ example: one axis more, the batch's
            size = shape[0]
        else:
            return None
        if batch is _MISFIT:
            batch = size
        elif size != batch:
            return None
        if size == 1 and squeeze:
            a = a[0]
        elif size is not None:
            w = weights_of_batch(a.size)
        if not (_finite(a, w) if classes is None else _labels_ok(a, classes)):
            return None
        out[name] = a
    return out, None if batch is _MISFIT or (batch == 1 and squeeze) else batch
