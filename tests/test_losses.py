"""Losses over a batch are the mean of the per-example losses, for every way
their arguments can carry (or not carry) the batch axis.

Each case is a loss built from leaves whose roles are chosen: a ``param``
(never batched) or a data ``input`` (batched when the data is). Labels are
always data. The whole batch, through :func:`fgraph.value_and_grad`, must
give the mean of the values and gradients computed one example at a time;
a data input's gradient is its own example's gradient divided by B.
``sum`` reduces the batch axis as NumPy does, so it gives the sum instead.
"""

from __future__ import annotations

import itertools

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fgraph as fg
from fgraph.testing import arrays, labels

K = 3  # few classes, so that a batch repeats labels


@attrs.frozen
class Loss:
    name: str
    build: object  # (*float leaves, labels leaf or None) -> node
    shapes: tuple  # per-example shapes of the float leaves
    low: float = -2.0
    high: float = 2.0
    with_labels: bool = False
    batch: str = "mean"  # how the batch combines the examples: "mean" or "sum"


LOSSES = [
    Loss("squared_l2_distance", lambda a, b, y: fg.squared_l2_distance(a, b), ((2, 3), (2, 3))),
    Loss("squared_l2_distance_scalars", lambda a, b, y: fg.squared_l2_distance(a, b), ((), ())),
    Loss("nll", lambda p, y: fg.nll(p, y), ((K,),), 0.05, 1.0, with_labels=True),
    Loss("softmax_cross_entropy", lambda z, y: fg.softmax_cross_entropy(z, y), ((K,),), with_labels=True),
    Loss("nll_of_softmax", lambda z, y: fg.nll(fg.softmax(z), y), ((K,),), with_labels=True),
    # A penalty on a param next to a data term: the penalty is the same for every example.
    Loss(
        "l2_norm_penalty",
        lambda w, x, y: fg.add(fg.l2_norm_penalty(w, 0.7), fg.squared_l2_distance(w, x)),
        ((3,), (3,)),
    ),
    Loss("mean", lambda a, y: fg.mean(a), ((2, 3),)),
    Loss("sum", lambda a, y: fg.sum(a), ((2, 3),), batch="sum"),
]


def _roles(loss):
    """Every assignment of param/data to the float leaves that lets the graph
    meet a batch (some leaf is data) and that the loss accepts."""
    out = []
    for roles in itertools.product(("param", "data"), repeat=len(loss.shapes)):
        if loss.name == "l2_norm_penalty" and roles[0] == "data":
            continue  # refused: see the test below
        if "data" in roles or loss.with_labels:
            out.append(roles)
    return out


CASES = [(loss, roles) for loss in LOSSES for roles in _roles(loss)]


def _graph(loss, roles):
    leaves = [
        (fg.param if role == "param" else fg.input)(f"a{i}", shape)
        for i, (role, shape) in enumerate(zip(roles, loss.shapes))
    ]
    y = fg.input("y") if loss.with_labels else None
    return fg.graph(objective=loss.build(*leaves, y))


@pytest.mark.parametrize(("loss", "roles"), CASES, ids=[f"{loss.name}-{'-'.join(roles)}" for loss, roles in CASES])
@given(data=st.data(), batch=st.integers(1, 6))
def test_a_batch_gives_the_mean_of_its_examples_values_and_gradients(loss, roles, data, batch):
    g = _graph(loss, roles)
    params, batched = {}, {}
    for i, (role, shape) in enumerate(zip(roles, loss.shapes)):
        if role == "param":
            params[f"a{i}"] = data.draw(arrays(shape, loss.low, loss.high))
        else:
            batched[f"a{i}"] = data.draw(arrays((batch,) + shape, loss.low, loss.high))
    if loss.with_labels:
        batched["y"] = data.draw(labels(K, (batch,)))
    floats = [f"a{i}" for i in range(len(roles))]
    f = fg.value_and_grad(g, wrt=floats)

    value, grads = f(params, batched)
    examples = [f(params, {k: v[i] for k, v in batched.items()}) for i in range(batch)]

    combine = np.mean if loss.batch == "mean" else np.sum
    np.testing.assert_allclose(value, combine([v for v, _ in examples]), rtol=1e-12, atol=1e-12)
    for name in floats:
        if name in params:  # shared by the examples: their gradients combine like the values
            expected = combine([gr[name] for _, gr in examples], axis=0)
        else:  # example i's own gradient, weighted as the batch weighs example i
            weight = 1.0 / batch if loss.batch == "mean" else 1.0
            expected = np.stack([gr[name] for _, gr in examples]) * weight
        np.testing.assert_allclose(grads[name], expected, rtol=1e-10, atol=1e-12, err_msg=name)


def test_a_penalty_on_data_is_refused_with_the_reason():
    with pytest.raises(fg.ShapeError, match=r"l2_norm_penalty: argument 0 \('x'\) depends on data.*batch axis"):
        fg.l2_norm_penalty(fg.input("x", (3,)), 0.1)


# A dataset whose two halves have the same label frequencies, so a minibatch
# step of 4 has the same fixed point as the whole batch.
LABELS = np.array([0, 1, 0, 2, 2, 0, 1, 0])
FREQUENCIES = np.array([0.5, 0.25, 0.25])
BIAS_ONLY = {
    "softmax_cross_entropy": lambda b, y: fg.softmax_cross_entropy(b, y),
    "nll_of_softmax": lambda b, y: fg.nll(fg.softmax(b), y),
}


@pytest.mark.parametrize("build", BIAS_ONLY.values(), ids=list(BIAS_ONLY))
def test_a_bias_only_classifier_learns_the_label_frequencies_from_minibatches(build):
    b = fg.param("b", (K,))
    g = fg.graph(prediction=fg.softmax(b), objective=build(b, fg.input("y")))
    f = fg.value_and_grad(g)
    # Closed form: mean cross-entropy is minimal where softmax(b) = frequencies,
    # so its gradient, softmax(b) - frequencies, vanishes at b = log(frequencies).
    for batch in (LABELS, LABELS[:4], LABELS[4:]):
        _, grads = f({"b": np.log(FREQUENCIES)}, {"y": batch})
        np.testing.assert_allclose(grads["b"], 0.0, atol=1e-15)
    _, grads = f({"b": np.zeros(K)}, {"y": LABELS})
    np.testing.assert_allclose(grads["b"], np.full(K, 1 / K) - FREQUENCIES, rtol=1e-14)
    # SGD on minibatches of 4 gets there.
    params = {"b": np.zeros(K)}
    for step in range(300):
        _, grads = f(params, {"y": LABELS[4 * (step % 2) : 4 * (step % 2) + 4]})
        params = {"b": params["b"] - 1.0 * grads["b"]}
    prior = fg.forward(g, params, outputs="prediction")["prediction"]
    np.testing.assert_allclose(prior, FREQUENCIES, rtol=1e-9)
