"""Fuzzing: random graphs of random primitives, fed random hostile inputs.

Every call either returns finite values whose gradients match central
differences, or raises one of the documented errors with a message that
names the offending key (or says "batch"/"label"). An empty batch is
refused (a ShapeError that says "empty batch"): a mean over no examples is
undefined. Budget: the "ci" hypothesis profile (40 examples per test);
``pytest --hypothesis-profile=thorough`` runs 1000.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import fgraph as fg
from fgraph import optim, train
from fgraph.testing import graphs

DOCUMENTED = (fg.ShapeError, fg.GraphError, fg.NameMismatchError, ValueError, TypeError)

HOSTILE = (
    "none", "nan", "inf", "extra_axis", "drop_axis", "wrong_size", "missing", "unexpected",
    "strings", "objects", "complex", "ints", "lists", "batch_mismatch", "empty_batch",
    "float_labels", "label_out_of_range",
)


def _corrupt(draw, params, data, kind):
    """Apply one hostile change to a copy of (params, data); return them and the key touched."""
    params, data = dict(params), dict(data)
    pools = [("params", params), ("data", data)]
    where, target = draw(st.sampled_from([p for p in pools if p[1]]))
    key = draw(st.sampled_from(sorted(target)))
    value = np.asarray(target[key])
    if kind == "missing":
        del target[key]
    elif kind == "unexpected":
        key = "typo_" + key
        target[key] = value
    elif kind == "empty_batch" and where == "data" and all(np.ndim(v) for v in data.values()):
        data = {k: np.asarray(v)[:0] for k, v in data.items()}
    else:
        target[key] = _corrupt_value(draw, value, kind, where)
    return params, data, key


def _corrupt_value(draw, value, kind, where):
    """``value`` (an array from ``where``) after the hostile change ``kind``;
    unchanged where that change does not apply to it."""
    if kind in ("nan", "inf"):
        return _non_finite(draw, value, kind)
    if kind in ("extra_axis", "drop_axis", "wrong_size", "batch_mismatch"):
        return _misshaped(value, kind, where)
    return _mistyped(value, kind)


def _non_finite(draw, value, kind):
    """A copy of a float ``value`` with one NaN (at a drawn place) or a -inf first."""
    if value.dtype.kind != "f" or not value.size:
        return value
    value = value.copy()
    if kind == "nan":
        value.flat[draw(st.integers(0, value.size - 1))] = np.nan
    else:
        value.flat[0] = -np.inf
    return value


def _misshaped(value, kind, where):
    """``value`` with axes added or dropped, its last axis one longer, or (data
    only) one example more than the rest of the batch."""
    if kind == "extra_axis":
        return value[None, None]
    if not value.ndim:
        return value
    if kind == "drop_axis":
        return value[0]
    if kind == "wrong_size":
        return np.concatenate([value, value[..., -1:]], axis=-1)
    if where == "data":  # batch_mismatch
        return np.concatenate([value, value[:1]])
    return value


def _mistyped(value, kind):
    """``value`` as strings, objects, complex numbers, ints or nested lists, or
    (integer labels only) as non-integer floats or labels far out of range."""
    retyped = {
        "strings": lambda v: v.astype(str),
        "objects": lambda v: v.astype(object),
        "complex": lambda v: v + 1j,
        "ints": lambda v: v.astype(np.int64),
        "lists": lambda v: v.tolist(),
    }
    if kind in retyped:
        return retyped[kind](value)
    if value.dtype.kind not in "iu":
        return value
    if kind == "float_labels":
        return value.astype(float) + 0.5
    if kind == "label_out_of_range":
        return value + 1000
    return value


def _is_documented(err: Exception, key: str) -> bool:
    text = str(err)
    return isinstance(err, DOCUMENTED) and (
        repr(key) in text or key in text or any(w in text for w in ("batch", "label", "shape"))
    )


@given(graphs(), st.sampled_from(HOSTILE), st.data())
def test_every_call_returns_checked_finite_values_or_a_documented_error(case, kind, data):
    g, params, feed = case
    params, feed, key = _corrupt(data.draw, params, feed, kind)
    try:
        value, grads = fg.value_and_grad(g)(params, feed)
        report = fg.check_grads(g, params, feed)
        out = fg.forward(g, params, feed, outputs="prediction")
    except Exception as err:  # noqa: BLE001 - the point is to classify every error
        assert _is_documented(err, key), f"{type(err).__name__}: {err} (after {kind} on {key!r})"
        return
    assert np.isfinite(value) and all(np.isfinite(v).all() for v in grads.values())
    assert np.isfinite(out["prediction"]).all()
    assert report.ok, report


@given(graphs(), st.sampled_from(HOSTILE), st.data())
def test_fit_on_hostile_inputs_trains_or_raises_a_documented_error(case, kind, data):
    g, params, feed = case
    params, feed, key = _corrupt(data.draw, params, feed, kind)
    try:
        result = train.fit(g, params, feed, optimizer=optim.sgd(0.01), epochs=2, batch_size=2, seed=0)
    except Exception as err:  # noqa: BLE001
        assert _is_documented(err, key), f"{type(err).__name__}: {err} (after {kind} on {key!r})"
        return
    assert all(np.isfinite(v).all() for v in result.params.values()) and len(result.history) == 2
