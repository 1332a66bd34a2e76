"""Hypothesis strategies and assertions for property-testing gradients.

For users who add a primitive and want to test it the way fgraph tests its
own, in a few lines::

    from hypothesis import given
    from fgraph.testing import arrays, shapes, assert_grads_match

    @given(arrays(shapes(max_dims=2)))
    def test_cube(a):
        assert_grads_match(lambda x: fgraph.apply(cube, x), a)

This module imports hypothesis; ``import fgraph`` does not import it.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fgraph
from fgraph.check import DEFAULT_TOLERANCE, check_op


def shapes(min_dims: int = 0, max_dims: int = 2, min_side: int = 1, max_side: int = 4) -> st.SearchStrategy:
    """Array shapes with ``min_dims..max_dims`` axes of ``min_side..max_side`` entries."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def away_from(value: float, low: float, high: float, margin: float) -> st.SearchStrategy:
    """Floats in [low, high] at least ``margin`` away from ``value`` (a kink)."""
    below = st.floats(low, value - margin) if low <= value - margin else st.nothing()
    above = st.floats(value + margin, high) if value + margin <= high else st.nothing()
    return below | above


def arrays(shape, low: float = -2.0, high: float = 2.0, elements: st.SearchStrategy | None = None) -> st.SearchStrategy:
    """Well-conditioned float64 arrays: finite entries in ``[low, high]``.

    ``shape`` is a tuple or a strategy of shapes; ``elements`` overrides the
    entries (e.g. :func:`away_from` to avoid a kink).
    """
    if elements is None:
        elements = st.floats(low, high, allow_nan=False, allow_infinity=False)
    return hnp.arrays(np.float64, shape, elements=elements)


def labels(num_classes: int, shape=()) -> st.SearchStrategy:
    """Integer class labels in ``[0, num_classes)`` of the given shape."""
    return hnp.arrays(np.int64, shape, elements=st.integers(0, num_classes - 1))


def batch_sizes(max_size: int = 4) -> st.SearchStrategy:
    """Batch sizes 1..max_size (a batch of one included on purpose)."""
    return st.integers(1, max_size)


def assert_grads_match(builder, *arrays_, batched=False, tolerance: float = DEFAULT_TOLERANCE, eps: float = 1e-6) -> float:
    """Assert that the op built by ``builder`` has VJPs matching central differences.

    See :func:`fgraph.check.check_op` for ``batched`` and the error measure;
    returns the error so a test can report it.
    """
    error = check_op(builder, *arrays_, batched=batched, eps=eps)
    assert error <= tolerance, (
        f"VJP and central differences disagree: error {error:.3g} > {tolerance:g}"
        f" for argument shapes {[np.shape(a) for a in arrays_]} (batched={batched})"
    )
    return error


# ------------------------------------------------------------- random graphs

# relu is left out: a random pre-activation can sit at its kink, where
# central differences are meaningless.
_UNARY = ("tanh", "sigmoid", "scale", "softmax", "log_softmax")
_BINARY = ("add", "sub", "mul")


@st.composite
def graphs(draw, max_depth: int = 4, max_width: int = 4, max_batch: int = 4):
    """Random graphs of primitives with their params and data.

    Returns ``(graph, params, data)``: an MLP-like chain from a data input
    ``x`` through affine maps, element-wise ops (some of them reusing a
    param, so shared params occur), ending in a loss (squared distance,
    softmax cross-entropy or a mean) named ``objective``. Data carries a
    batch axis of 1..max_batch examples or none.
    """
    width = draw(st.integers(1, max_width))
    batch = draw(st.none() | st.integers(1, max_batch))
    lead = () if batch is None else (batch,)
    x = fgraph.input("x", (width,))
    params, values = {}, {}

    def new_param(shape):
        name = f"p{len(params)}"
        params[name] = fgraph.param(name, shape)
        values[name] = draw(arrays(shape, -1.0, 1.0))
        return params[name]

    h = x
    for _ in range(draw(st.integers(1, max_depth))):
        kind = draw(st.sampled_from(("affine",) + _UNARY + _BINARY))
        if kind == "affine":
            units = draw(st.integers(1, max_width))
            h = fgraph.affine(new_param((units, h.shape[0])), h, new_param((units,)))
        elif kind in _BINARY:
            other = draw(st.sampled_from(list(params.values()))) if params and draw(st.booleans()) else None
            if other is None or other.shape != h.shape:
                other = new_param(h.shape)
            h = getattr(fgraph, kind)(h, other)
        elif kind == "scale":
            h = fgraph.scale(h, draw(st.floats(-2, 2)))
        else:
            h = getattr(fgraph, kind)(h)
    data = {"x": draw(arrays(lead + (width,), -1.0, 1.0))}
    loss = draw(st.sampled_from(("squared_l2_distance", "softmax_cross_entropy", "mean")))
    if loss == "squared_l2_distance":
        y = fgraph.input("y", h.shape)
        objective = fgraph.squared_l2_distance(h, y)
        data["y"] = draw(arrays(lead + h.shape, -1.0, 1.0))
    elif loss == "softmax_cross_entropy":
        y = fgraph.input("y", ())
        objective = fgraph.softmax_cross_entropy(h, y)
        data["y"] = draw(labels(h.shape[0], lead))
    else:
        objective = fgraph.mean(h)
    if params and draw(st.booleans()):
        shared = draw(st.sampled_from(sorted(params)))
        objective = fgraph.add(objective, fgraph.l2_norm_penalty(params[shared], draw(st.floats(0, 1))))
    g = fgraph.graph(prediction=h, objective=objective)
    return g, {k: values[k] for k in g.params}, data
