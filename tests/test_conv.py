"""Convolutions and pooling: forward against plain-loop references, VJPs
against central differences (one example and a batch), the tie rule of
max-pooling, build-time errors, and PyTorch when it is installed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

import fgraph as fg
from fgraph import kernels
from fgraph.errors import ShapeError
from fgraph.ops import conv
from fgraph.ops.conv import avg_pool2d, conv1d, conv2d, max_pool2d
from fgraph.testing import arrays, assert_grads_match

# ------------------------------------------------------------- references
# Written as plainly as possible, one output entry at a time.


def conv2d_reference(x, W, b, stride, padding):
    (sh, sw), (ph, pw) = stride, padding
    C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    padded = np.zeros((C, H + 2 * ph, Wd + 2 * pw))
    padded[:, ph : ph + H, pw : pw + Wd] = x
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (Wd + 2 * pw - kw) // sw + 1
    out = np.empty((F, Ho, Wo))
    for f in range(F):
        for y in range(Ho):
            for x_ in range(Wo):
                total = b[f]
                for c in range(C):
                    for i in range(kh):
                        for j in range(kw):
                            total += padded[c, y * sh + i, x_ * sw + j] * W[f, c, i, j]
                out[f, y, x_] = total
    return out


def conv1d_reference(x, W, b, stride, padding):
    C, L = x.shape
    F, _, k = W.shape
    padded = np.zeros((C, L + 2 * padding))
    padded[:, padding : padding + L] = x
    out = np.empty((F, (L + 2 * padding - k) // stride + 1))
    for f in range(F):
        for t in range(out.shape[1]):
            total = b[f]
            for c in range(C):
                for i in range(k):
                    total += padded[c, t * stride + i] * W[f, c, i]
            out[f, t] = total
    return out


def pool_reference(reduce):
    def pool(x, size, stride):
        (kh, kw), (sh, sw) = size, stride
        C, H, W = x.shape
        out = np.empty((C, (H - kh) // sh + 1, (W - kw) // sw + 1))
        for c in range(C):
            for y in range(out.shape[1]):
                for x_ in range(out.shape[2]):
                    out[c, y, x_] = reduce(x[c, y * sh : y * sh + kh, x_ * sw : x_ * sw + kw])
        return out

    return pool


# ------------------------------------------------------------- strategies


def _lead(batch):
    return () if batch is None else (batch,)


@st.composite
def spatial(draw, kernel, padding):
    """An input side on which the kernel fits: k <= n + 2p, n <= 5."""
    return draw(st.integers(max(1, kernel - 2 * padding), 5))


@st.composite
def conv2d_cases(draw):
    """(x, W, b, stride, padding, batch): small shapes, strides 1-2, padding 0-1,
    config given as an int or a pair."""
    C, F = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 1)), draw(st.integers(0, 1)))
    H, W = draw(spatial(kh, padding[0])), draw(spatial(kw, padding[1]))
    batch = draw(st.none() | st.integers(1, 3))
    x = draw(arrays(_lead(batch) + (C, H, W)))
    return x, draw(arrays((F, C, kh, kw))), draw(arrays((F,))), stride, padding, batch


@st.composite
def conv1d_cases(draw):
    C, F, k = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 3))
    stride, padding = draw(st.integers(1, 2)), draw(st.integers(0, 1))
    L = draw(st.integers(max(1, k - 2 * padding), 6))
    batch = draw(st.none() | st.integers(1, 3))
    x = draw(arrays(_lead(batch) + (C, L)))
    return x, draw(arrays((F, C, k))), draw(arrays((F,))), stride, padding, batch


@st.composite
def pool_cases(draw, distinct: bool):
    """(x, size, stride, batch); with ``distinct``, every entry of x differs
    from every other by at least 0.1 (a shuffled grid), so no window has a
    tie and no finite-difference step reorders one."""
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    C, H, W = draw(st.integers(1, 2)), draw(st.integers(kh, 5)), draw(st.integers(kw, 5))
    batch = draw(st.none() | st.integers(1, 3))
    shape = _lead(batch) + (C, H, W)
    if distinct:
        order = np.array(draw(st.permutations(range(int(np.prod(shape))))), dtype=np.float64)
        x = (order - order.size / 2 + 0.5) * 0.1  # no zero entry: steps scale with |x|
        x = x.reshape(shape)
    else:
        x = draw(arrays(shape))
    return x, (kh, kw), stride, batch


def _config(value: tuple):
    """A pair given as an int when both sides agree: both spellings get tested."""
    return value[0] if value[0] == value[1] else value


# ------------------------------------------------------------- evaluation


def _evaluate(builder, x, *params, batched: bool):
    """The op's value through a graph: x fed as data (per-example shape declared), the rest as params."""
    node_x = fg.input("x", x.shape[1:] if batched else x.shape)
    nodes = [fg.param(f"p{i}", p.shape) for i, p in enumerate(params)]
    g = fg.graph(out=builder(node_x, *nodes))
    return fg.forward(g, {f"p{i}": p for i, p in enumerate(params)}, {"x": x})["out"]


def _per_example(reference, x, batch, *args):
    return reference(x, *args) if batch is None else np.stack([reference(e, *args) for e in x])


# ------------------------------------------------------------- forward


@given(conv2d_cases())
def test_conv2d_forward_matches_the_loop_reference(case):
    x, W, b, stride, padding, batch = case
    got = _evaluate(lambda *n: conv2d(*n, stride=_config(stride), padding=_config(padding)), x, W, b,
                    batched=batch is not None)
    expected = _per_example(conv2d_reference, x, batch, W, b, stride, padding)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@given(conv1d_cases())
def test_conv1d_forward_matches_the_loop_reference(case):
    x, W, b, stride, padding, batch = case
    got = _evaluate(lambda *n: conv1d(*n, stride=stride, padding=padding), x, W, b, batched=batch is not None)
    expected = _per_example(conv1d_reference, x, batch, W, b, stride, padding)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("prim", "reduce"), [(max_pool2d, np.max), (avg_pool2d, np.mean)], ids=["max", "avg"])
@given(case=pool_cases(distinct=False))
def test_pool_forward_matches_the_loop_reference(prim, reduce, case):
    x, size, stride, batch = case
    got = _evaluate(lambda n: prim(n, _config(size), _config(stride)), x, batched=batch is not None)
    expected = _per_example(pool_reference(reduce), x, batch, size, stride)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_pool_stride_defaults_to_the_window_size():
    x = np.arange(2 * 6 * 6, dtype=np.float64).reshape(2, 6, 6)
    for prim, reduce in ((max_pool2d, np.max), (avg_pool2d, np.mean)):
        got = _evaluate(lambda n, prim=prim: prim(n, (3, 2)), x, batched=False)
        np.testing.assert_array_equal(got, pool_reference(reduce)(x, (3, 2), (3, 2)))
    assert max_pool2d(fg.input("x", (1, 4, 4)), 2).config["stride"] == (2, 2)


@pytest.mark.parametrize(
    ("builder", "shapes"),
    [
        (lambda *n: conv2d(*n, stride=2, padding=1), [(2, 5, 4), (3, 2, 3, 2), (3,)]),
        (lambda *n: conv1d(*n, stride=2, padding=1), [(2, 7), (3, 2, 3), (3,)]),
        (lambda n: max_pool2d(n, 2, 1), [(2, 5, 4)]),
        (lambda n: avg_pool2d(n, (2, 3), (1, 2)), [(2, 5, 4)]),
    ],
    ids=["conv2d", "conv1d", "max_pool2d", "avg_pool2d"],
)
def test_a_batch_of_one_is_the_example_bit_for_bit(builder, shapes):
    rng = np.random.default_rng(0)
    x, *params = (rng.standard_normal(s) for s in shapes)
    single = _evaluate(builder, x, *params, batched=False)
    batched = _evaluate(builder, x[None], *params, batched=True)
    assert np.array_equal(batched, single[None])


# ------------------------------------------------------------- VJPs


@given(conv2d_cases())
def test_conv2d_vjps_match_central_differences(case):
    x, W, b, stride, padding, batch = case
    assert_grads_match(lambda *n: conv2d(*n, stride=_config(stride), padding=_config(padding)), x, W, b,
                       batched=(batch is not None, False, False))


@given(conv1d_cases())
def test_conv1d_vjps_match_central_differences(case):
    x, W, b, stride, padding, batch = case
    assert_grads_match(lambda *n: conv1d(*n, stride=stride, padding=padding), x, W, b,
                       batched=(batch is not None, False, False))


@pytest.mark.parametrize("prim", [max_pool2d, avg_pool2d], ids=["max", "avg"])
@given(case=pool_cases(distinct=True))
def test_pool_vjp_matches_central_differences(prim, case):
    x, size, stride, batch = case
    assert_grads_match(lambda n: prim(n, _config(size), _config(stride)), x, batched=batch is not None)


def _pool_grad(x, size, stride, cotangent):
    node = max_pool2d(fg.param("x", x.shape), size, stride, name="pooled")
    g = fg.graph(out=node)
    return fg.backward(g, {"x": x}, output="out", cotangent=cotangent)["x"]


def test_max_pool_ties_go_to_the_first_maximum_in_row_major_order():
    # Two overlapping 2 x 2 windows of one constant image: each gives its g to
    # its own top-left pixel, never to a tied one as well.
    x = np.ones((1, 2, 3))
    grad = _pool_grad(x, 2, 1, np.array([[[10.0, 100.0]]]))
    np.testing.assert_array_equal(grad, [[[10.0, 100.0, 0.0], [0.0, 0.0, 0.0]]])
    # A tie between the second row's pixels: the first one in row-major order wins.
    x = np.array([[[0.0, 1.0], [5.0, 5.0]]])
    np.testing.assert_array_equal(_pool_grad(x, 2, 2, np.array([[[3.0]]])), [[[0.0, 0.0], [3.0, 0.0]]])


def test_max_pool_gives_a_pixel_the_gradient_of_every_window_it_is_the_maximum_of():
    x = np.array([[[0.0, 9.0, 0.0], [0.0, 0.0, 0.0]]])  # the 9 is the max of both windows
    grad = _pool_grad(x, 2, 1, np.array([[[2.0, 5.0]]]))
    np.testing.assert_array_equal(grad, [[[0.0, 7.0, 0.0], [0.0, 0.0, 0.0]]])


def test_a_small_cnn_has_the_gradients_of_central_differences():
    rng = np.random.default_rng(1)
    x = fg.input("x", (1, 6, 6))
    W1, b1 = fg.param("W1", (2, 1, 3, 3)), fg.param("b1", (2,))
    W2, b2 = fg.param("W2", (3, 2, 2, 2)), fg.param("b2", (3,))
    h = max_pool2d(fg.tanh(conv2d(x, W1, b1, padding=1)), 2)
    h = avg_pool2d(conv2d(h, W2, b2, stride=1), 2)
    g = fg.graph(objective=fg.mean(fg.mul(h, h)))
    params = {"W1": rng.standard_normal((2, 1, 3, 3)), "b1": rng.standard_normal(2),
              "W2": rng.standard_normal((3, 2, 2, 2)), "b2": rng.standard_normal(3)}
    report = fg.check_grads(g, params, {"x": rng.standard_normal((3, 1, 6, 6))})
    assert report.ok, report.errors


# ------------------------------------------------------------- internals


@given(
    shape=st.tuples(st.integers(1, 2), st.integers(1, 5), st.integers(1, 5), st.integers(1, 3)),
    size=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
)
def test_windows_are_numpys_sliding_windows_then_strided_slicing(shape, size, stride):
    assume(size[0] <= shape[1] and size[1] <= shape[2])
    a = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    expected = sliding_window_view(a, size, axis=(1, 2))[:, :: stride[0], :: stride[1]]  # (C, Ho, Wo, B, kh, kw)
    got = kernels.strided_windows(a, size, stride)  # (C, kh, kw, Ho, Wo, B)
    np.testing.assert_array_equal(got, expected.transpose(0, 4, 5, 1, 2, 3))
    assert not got.flags.writeable


def test_vjps_return_fresh_arrays_and_leave_the_arguments_alone():
    rng = np.random.default_rng(2)
    x, W, b = rng.standard_normal((2, 2, 4, 4)), rng.standard_normal((3, 2, 2, 2)), rng.standard_normal(3)
    copies = [a.copy() for a in (x, W, b)]
    out = conv2d.forward(x, W, b, (1, 1), (1, 1))
    g = rng.standard_normal(out.shape)
    grads = [vjp(g, out, x, W, b, (1, 1), (1, 1)) for vjp in conv2d.vjps]
    assert [gr.shape for gr in grads] == [x.shape, W.shape, b.shape]
    for before, after in zip(copies, (x, W, b)):
        np.testing.assert_array_equal(before, after)
    for arr in (out, *grads):
        assert not any(np.shares_memory(arr, a) for a in (x, W, b, g))


# ------------------------------------------------------------- errors


def _image(shape):
    return fg.input("x", shape)


@pytest.mark.parametrize(
    ("build", "error", "words"),
    [
        (lambda: conv2d(_image((3, 8, 8)), fg.param("W", (4, 2, 3, 3)), fg.param("b", (4,))),
         ShapeError, ["3 channels", "C = 2"]),
        (lambda: conv2d(_image((1, 2, 2)), fg.param("W", (1, 1, 5, 5)), fg.param("b", (1,)), padding=1),
         ShapeError, ["kernel (5, 5)", "larger than the padded input (4, 4)"]),
        (lambda: conv2d(_image((1, 4, 4)), fg.param("W", (2, 1, 3, 3)), fg.param("b", (3,))),
         ShapeError, ["b (3,)", "one bias per filter", "(2,)"]),
        (lambda: conv2d(_image((8, 8)), fg.param("W", (2, 1, 3, 3)), fg.param("b", (2,))),
         ShapeError, ["x (C, H, W)", "(8, 8)"]),
        (lambda: conv1d(_image((2, 3)), fg.param("W", (1, 2, 5)), fg.param("b", (1,))),
         ShapeError, ["kernel (5,)", "larger than the input (3,)"]),
        (lambda: conv1d(_image((2, 9)), fg.param("W", (1, 3, 2)), fg.param("b", (1,))),
         ShapeError, ["2 channels", "C = 3"]),
        (lambda: max_pool2d(_image((1, 3, 3)), 4), ShapeError, ["window (4, 4)", "larger than the input (3, 3)"]),
        (lambda: avg_pool2d(_image((3, 3)), 2), ShapeError, ["x (C, H, W)", "(3, 3)"]),
        (lambda: conv2d(_image((1, 4, 4)), _image((2, 1, 3, 3)), fg.param("b", (2,))),
         ShapeError, ["depends on data"]),
    ],
    ids=["channels", "kernel-too-large", "bias", "rank", "conv1d-kernel", "conv1d-channels", "pool-window",
         "pool-rank", "data-kernel"],
)
def test_shapes_that_do_not_fit_are_named_at_build_time(build, error, words):
    with pytest.raises(error) as caught:
        build()
    for word in words:
        assert word in str(caught.value)


def _conv2d(**config):
    return conv2d(_image((1, 4, 4)), fg.param("W", (2, 1, 3, 3)), fg.param("b", (2,)), **config)


@pytest.mark.parametrize(
    ("build", "error", "words"),
    [
        (lambda: _conv2d(stride=0), ShapeError, ["conv2d: stride", "positive", "0"]),
        (lambda: _conv2d(stride=(1, 0)), ShapeError, ["conv2d: stride[1]", "positive"]),
        (lambda: _conv2d(padding=-1), ShapeError, ["conv2d: padding", "non-negative", "-1"]),
        (lambda: _conv2d(stride=1.5), TypeError, ["conv2d: stride", "integer", "float"]),
        (lambda: _conv2d(padding=True), TypeError, ["conv2d: padding", "integer", "bool"]),
        (lambda: _conv2d(stride=(1, 2, 3)), TypeError, ["conv2d: stride", "pair"]),
        (lambda: conv1d(_image((1, 5)), fg.param("W", (1, 1, 2)), fg.param("b", (1,)), stride=(1, 1)),
         TypeError, ["conv1d: stride", "integer", "tuple"]),
        (lambda: max_pool2d(_image((1, 4, 4)), 0), ShapeError, ["max_pool2d: size", "positive"]),
        (lambda: avg_pool2d(_image((1, 4, 4)), 2, stride=2.0), TypeError, ["avg_pool2d: stride", "integer"]),
        (lambda: max_pool2d(_image((1, 4, 4))), TypeError, ["size"]),
    ],
    ids=["stride-0", "stride-pair-0", "padding-negative", "stride-float", "padding-bool", "stride-triple",
         "conv1d-pair", "pool-size-0", "pool-stride-float", "pool-no-size"],
)
def test_bad_config_is_refused_at_build_time(build, error, words):
    with pytest.raises(error) as caught:
        build()
    for word in words:
        assert word in str(caught.value)


def test_config_is_stored_normalised():
    node = _conv2d(stride=np.int64(2), padding=(1, 0))
    assert dict(node.config) == {"stride": (2, 2), "padding": (1, 0)}
    assert all(type(v) is int for pair in node.config.values() for v in pair)
    assert node.shape == (2, 2, 1)
    assert dict(max_pool2d(_image((1, 4, 4)), [2, 1]).config) == {"size": (2, 1), "stride": (2, 1)}


# ------------------------------------------------------------- PyTorch


@pytest.mark.parametrize(("stride", "padding"), [(1, 0), (1, 1), (2, 1), ((2, 1), (0, 1))])
def test_agrees_with_pytorch(stride, padding):
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    rng = np.random.default_rng(3)
    x, W, b = rng.standard_normal((4, 3, 7, 6)), rng.standard_normal((5, 3, 3, 2)), rng.standard_normal(5)
    tx, tW, tb = (torch.tensor(a, requires_grad=True) for a in (x, W, b))
    pair = conv._pair
    config = (pair(stride, "stride", 1), pair(padding, "padding", 0))
    out = conv2d.forward(x, W, b, *config)
    t_out = functional.conv2d(tx, tW, tb, stride=stride, padding=padding)
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(out.shape)
    expected = torch.autograd.grad(t_out, (tx, tW, tb), torch.tensor(g))
    for vjp, want in zip(conv2d.vjps, expected):
        np.testing.assert_allclose(vjp(g, out, x, W, b, *config), want.numpy(), rtol=1e-12, atol=1e-12)

    # conv1d and the poolings on the same data
    x1, W1, (s1, _), (p1, _) = x[:, :, 0], W[:, :, 0], *config
    t1 = functional.conv1d(torch.tensor(x1), torch.tensor(W1), torch.tensor(b), stride=s1, padding=p1)
    np.testing.assert_allclose(conv1d.forward(x1, W1, b, s1, p1), t1.numpy(), rtol=1e-12, atol=1e-12)
    size = (2, 3)
    for prim, t_pool in ((max_pool2d, functional.max_pool2d), (avg_pool2d, functional.avg_pool2d)):
        tp = torch.tensor(x, requires_grad=True)
        t_out = t_pool(tp, size, config[0])
        out = prim.forward(x, size, config[0])
        np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-12, atol=1e-12)
        g = rng.standard_normal(out.shape)
        (want,) = torch.autograd.grad(t_out, (tp,), torch.tensor(g))
        np.testing.assert_allclose(prim.vjps[0](g, out, x, size, config[0]), want.numpy(), rtol=1e-12, atol=1e-12)
