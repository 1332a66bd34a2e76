"""Structured layers: convolution, pooling, flatten, the Elman RNN (tied weights), residual blocks."""

import numpy as np
import pytest

import fgraph
import fgraph.init
import fgraph.layers as layers
from fgraph import GraphError, ShapeError


def rng(salt=0):
    """A generator of its own for each use, so that a test's draws do not depend on which tests ran before it."""
    return np.random.default_rng([20261130, salt])


def forward(out, params, data):
    return fgraph.forward(fgraph.graph(out=out), params, data)["out"]


def conv_reference(X, W, b, padding):
    """out[n, f, i, j] = b[f] + Σ x̃[n, c, i + u, j + v] W[f, c, u, v], stride 1, by loops."""
    Xp = np.pad(X, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    F, _, kh, kw = W.shape
    H, Wd = Xp.shape[2] - kh + 1, Xp.shape[3] - kw + 1
    out = np.empty((X.shape[0], F, H, Wd))
    for i in range(H):
        for j in range(Wd):
            out[:, :, i, j] = np.einsum("ncuv,fcuv->nf", Xp[:, :, i:i + kh, j:j + kw], W) + b
    return out


def rnn_reference(X, W_x, W_h, b, act=np.tanh):
    """Every state h_1 … h_T of h_t = act(W_x x_t + W_h h_{t-1} + b), h_0 = 0, for X (n, T, D)."""
    h, states = np.zeros((X.shape[0], W_h.shape[0])), []
    for t in range(X.shape[1]):
        h = act(X[:, t] @ W_x.T + h @ W_h.T + b)
        states.append(h)
    return np.stack(states, axis=1)


# ------------------------------------------------------------------ conv2d


def test_conv2d_layer_creates_he_normal_params_and_convolves():
    gen = rng()
    x = fgraph.input("x", (2, 5, 5))
    out = layers.conv2d("c", 3, 3, padding=1)(x)
    g = fgraph.graph(out=out)
    assert dict(g.params) == {"c.W": (3, 2, 3, 3), "c.b": (3,)}
    assert out.name == "c" and out.shape == (3, 5, 5)
    assert g.node("c.W").init == fgraph.init.he_normal() and g.node("c.b").init == fgraph.init.zeros()
    params = {"c.W": gen.standard_normal((3, 2, 3, 3)), "c.b": gen.standard_normal(3)}
    X = gen.standard_normal((4, 2, 5, 5))
    np.testing.assert_allclose(forward(out, params, {"x": X}), conv_reference(X, params["c.W"], params["c.b"], 1),
                               rtol=1e-12, atol=1e-12)


def test_conv2d_layer_stride_padding_and_rectangular_kernels_set_the_output_shape():
    x = fgraph.input("x", (1, 8, 7))
    assert layers.conv2d("a", 4, (3, 1), stride=2)(x).shape == (4, 3, 4)
    assert layers.conv2d("b", 2, 3, stride=(1, 2), padding=(0, 1))(x).shape == (2, 6, 4)


@pytest.mark.parametrize("build, error, message", [
    (lambda: layers.conv2d("c", 0, 3), ShapeError, "layer 'c': filters must be a positive int, got 0"),
    (lambda: layers.conv2d("c", 2.0, 3), TypeError, "layer 'c': filters"),
    (lambda: layers.conv2d("c", 2, 0), ShapeError, "layer 'c': kernel must be positive"),
    (lambda: layers.conv2d("c", 2, (3, 3, 3)), TypeError, r"layer 'c': kernel must be an int or a pair"),
    (lambda: layers.conv2d("c", 2, 3, stride=0), ShapeError, "layer 'c': stride must be positive"),
    (lambda: layers.conv2d("c", 2, 3, padding=-1), ShapeError, "layer 'c': padding must be non-negative"),
    (lambda: layers.conv2d("c", 2, 3, init=fgraph.init.normal), TypeError, "layer 'c': init: .*constructor"),
    (lambda: layers.max_pool2d(0), ShapeError, "size must be positive"),
    (lambda: layers.avg_pool2d(2, stride=(1,)), TypeError, "stride must be an int or a pair"),
])
def test_bad_convolution_arguments_are_refused_when_the_layer_is_built(build, error, message):
    with pytest.raises(error, match=message):
        build()


@pytest.mark.parametrize("shape", [(8,), (8, 8), (1, 1, 8, 8)])
def test_convolution_and_pooling_need_images(shape):
    x = fgraph.input("x", shape)
    with pytest.raises(ShapeError, match=r"layer 'c' needs an input of per-example shape \(C, H, W\).*'x'"):
        layers.conv2d("c", 2, 3)(x)
    with pytest.raises(ShapeError, match=r"layer 'max_pool2d\(2\)' needs .*\(C, H, W\)"):
        layers.max_pool2d(2)(x)


def test_a_kernel_larger_than_the_image_is_a_shape_error_naming_both():
    with pytest.raises(ShapeError, match=r"kernel \(5, 5\) is larger than the input \(4, 4\)"):
        layers.conv2d("c", 2, 5)(fgraph.input("x", (1, 4, 4)))


# ---------------------------------------------------------- pooling, flatten


def test_pooling_layers_take_window_maxima_and_means():
    gen = rng()
    X = gen.standard_normal((3, 2, 4, 6))
    x = fgraph.input("x", (2, 4, 6))
    windows = X.reshape(3, 2, 2, 2, 3, 2)  # (n, c, i, u, j, v) for 2 x 2 windows
    assert layers.max_pool2d(2)(x).shape == (2, 2, 3)
    np.testing.assert_array_equal(forward(layers.max_pool2d(2)(x), {}, {"x": X}), windows.max(axis=(3, 5)))
    np.testing.assert_allclose(forward(layers.avg_pool2d(2)(x), {}, {"x": X}), windows.mean(axis=(3, 5)), rtol=1e-12)
    assert layers.max_pool2d(3, stride=1)(x).shape == (2, 2, 4)


def test_flatten_is_a_per_example_reshape_in_c_order():
    gen = rng()
    X = gen.standard_normal((5, 2, 3, 4))
    x = fgraph.input("x", (2, 3, 4))
    out = layers.flatten(x)
    assert out.shape == (24,)
    np.testing.assert_array_equal(forward(out, {}, {"x": X}), X.reshape(5, 24))
    np.testing.assert_array_equal(forward(out, {}, {"x": X[0]}), X[0].reshape(24))
    v = fgraph.input("v", (6,))
    assert layers.flatten(v) is v
    with pytest.raises(TypeError, match="layer 'flatten' must be applied to a Node, got ndarray"):
        layers.flatten(X)


# --------------------------------------------------------------------- RNN


def test_rnn_cell_computes_one_elman_step():
    gen = rng()
    cell = layers.rnn_cell("cell", 3)
    x, h = fgraph.input("x", (2,)), fgraph.input("h", (3,))
    out = cell(x, h)
    g = fgraph.graph(out=out)
    assert dict(g.params) == {"cell.W_x": (3, 2), "cell.W_h": (3, 3), "cell.b": (3,)}
    assert out.name == "cell" and out.shape == (3,)
    params = {k: gen.standard_normal(s) for k, s in g.params.items()}
    X, Hs = gen.standard_normal((4, 2)), gen.standard_normal((4, 3))
    expected = np.tanh(X @ params["cell.W_x"].T + Hs @ params["cell.W_h"].T + params["cell.b"])
    np.testing.assert_allclose(forward(out, params, {"x": X, "h": Hs}), expected, rtol=1e-12)


def test_a_cell_from_the_zero_state_is_the_cell_of_a_zero_state_without_its_product():
    gen = rng()
    cell = layers.rnn_cell("cell", 3)
    x = fgraph.input("x", (2,))
    first = cell(x, None, name="first")
    with_zeros = cell(x, fgraph.constant(np.zeros(3)), name="with_zeros")
    assert dict(fgraph.graph(out=first).params) == {"cell.W_x": (3, 2), "cell.b": (3,)}  # no W_h·0
    params = {"cell.W_x": gen.standard_normal((3, 2)), "cell.W_h": gen.standard_normal((3, 3)),
              "cell.b": gen.standard_normal(3)}
    X = gen.standard_normal((4, 2))
    without_W_h = {k: v for k, v in params.items() if k != "cell.W_h"}
    np.testing.assert_allclose(forward(first, without_W_h, {"x": X}), forward(with_zeros, params, {"x": X}),
                               rtol=1e-15)


def test_an_rnn_unrolled_over_8_steps_has_one_set_of_weights_and_matches_numpy():
    gen = rng()
    x = fgraph.input("x", (8, 3))
    last = layers.rnn("rnn", 4)(x)
    g = fgraph.graph(out=last)
    assert dict(g.params) == {"rnn.W_x": (4, 3), "rnn.W_h": (4, 4), "rnn.b": (4,)}
    assert sum(n.name == "rnn.W_h" for n in g.nodes) == 1
    assert last.name == "rnn.h8" and last.shape == (4,)
    assert [f"rnn.h{t}" for t in range(1, 9)] == [n.name for n in g.nodes if n.name.startswith("rnn.h")]
    params = {k: 0.5 * gen.standard_normal(s) for k, s in g.params.items()}
    X = gen.standard_normal((5, 8, 3))
    states = rnn_reference(X, params["rnn.W_x"], params["rnn.W_h"], params["rnn.b"])
    np.testing.assert_allclose(forward(last, params, {"x": X}), states[:, -1], rtol=1e-12, atol=1e-15)


def test_rnn_returns_every_state_stacked_when_asked():
    gen = rng()
    x = fgraph.input("x", (5, 2))
    seq = layers.rnn("r", 3, activation="relu", return_sequences=True)(x)
    assert seq.name == "r" and seq.shape == (5, 3)
    params = {"r.W_x": gen.standard_normal((3, 2)), "r.W_h": 0.5 * gen.standard_normal((3, 3)),
              "r.b": gen.standard_normal(3)}
    X = gen.standard_normal((4, 5, 2))

    def relu(a):
        return np.maximum(a, 0)

    np.testing.assert_allclose(forward(seq, params, {"x": X}),
                               rnn_reference(X, params["r.W_x"], params["r.W_h"], params["r.b"], relu), rtol=1e-12)
    # One example without the batch axis gives the same states.
    np.testing.assert_allclose(forward(seq, params, {"x": X[1]}),
                               rnn_reference(X[1:2], params["r.W_x"], params["r.W_h"], params["r.b"], relu)[0],
                               rtol=1e-12)


def untied_rnn(T, D, H):
    """The same recurrence with a separate copy of every weight at each step (W_x.t, W_h.t, b.t)."""
    x = fgraph.input("x", (T, D))
    h = fgraph.constant(np.zeros(H))
    for t in range(T):
        W = fgraph.concat([fgraph.param(f"W_x.{t}", (H, D)), fgraph.param(f"W_h.{t}", (H, H))], axis=1)
        h = fgraph.tanh(fgraph.affine(W, fgraph.concat([x[t], h]), fgraph.param(f"b.{t}", (H,))))
    return h


def test_a_tied_weights_gradient_is_the_sum_over_steps():
    gen = rng()
    T, D, H = 4, 2, 3
    y = fgraph.input("y", (H,))
    tied = fgraph.graph(objective=fgraph.squared_l2_distance(layers.rnn("rnn", H)(fgraph.input("x", (T, D))), y))
    untied = fgraph.graph(objective=fgraph.squared_l2_distance(untied_rnn(T, D, H), y))
    params = {k: 0.6 * gen.standard_normal(s) for k, s in tied.params.items()}
    data = {"x": gen.standard_normal((3, T, D)), "y": gen.standard_normal((3, H))}
    copies = {f"{w}.{t}": params[f"rnn.{w}"] for w in ("W_x", "W_h", "b") for t in range(T)}
    value, grads = fgraph.value_and_grad(tied)(params, data)
    value_untied, grads_untied = fgraph.value_and_grad(untied)(copies, data)
    assert value == pytest.approx(value_untied, rel=1e-12)
    for w in ("W_x", "W_h", "b"):
        per_step = [grads_untied[f"{w}.{t}"] for t in range(T)]
        assert not np.allclose(per_step[0], per_step[-1])  # the steps contribute different terms
        np.testing.assert_allclose(grads[f"rnn.{w}"], np.sum(per_step, axis=0), rtol=1e-10, atol=1e-14)
    report = fgraph.check_grads(tied, params, data)
    assert report.ok, report


def test_recurrent_layers_refuse_bad_sizes_and_inputs():
    with pytest.raises(ShapeError, match="layer 'rnn': hidden must be a positive int, got 0"):
        layers.rnn("rnn", 0)
    with pytest.raises(TypeError, match="layer 'rnn': hidden must be a positive int, got 2.5"):
        layers.rnn_cell("rnn", 2.5)
    with pytest.raises(ValueError, match="layer 'rnn': unknown activation 'gelu'"):
        layers.rnn("rnn", 3, activation="gelu")
    with pytest.raises(TypeError, match="layer 'rnn': return_sequences must be True or False"):
        layers.rnn("rnn", 3, return_sequences="yes")
    with pytest.raises(ShapeError, match=r"layer 'rnn' needs a sequence of per-example shape \(T, D\).*'x'.*\(8,\)"):
        layers.rnn("rnn", 3)(fgraph.input("x", (8,)))
    with pytest.raises(ShapeError, match=r"layer 'rnn' needs a sequence .*\(1, 8, 8\)"):
        layers.rnn("rnn", 3)(fgraph.input("x", (1, 8, 8)))
    cell = layers.rnn_cell("cell", 3)
    with pytest.raises(ShapeError, match=r"layer 'cell' has 3 hidden units.*'h' has \(4,\)"):
        cell(fgraph.input("x", (2,)), fgraph.input("h", (4,)))
    with pytest.raises(ShapeError, match=r"layer 'cell' needs an input that is a vector.*'x'.*\(2, 2\)"):
        cell(fgraph.input("x", (2, 2)), fgraph.input("h", (3,)))


def test_an_rnn_applied_twice_shares_its_weights_and_names_its_steps_apart():
    rnn = layers.rnn("rnn", 3)
    a, b = fgraph.input("a", (4, 2)), fgraph.input("b", (6, 2))
    g = fgraph.graph(out=fgraph.add(rnn(a), rnn(b, name="rnn2")))
    assert dict(g.params) == {"rnn.W_x": (3, 2), "rnn.W_h": (3, 3), "rnn.b": (3,)}
    assert "rnn.h4" in g.slots and "rnn2.h6" in g.slots
    with pytest.raises(GraphError, match="'rnn.h1'"):
        fgraph.graph(out=fgraph.add(rnn(a), rnn(b)))


# ---------------------------------------------------------------- residual


def test_residual_adds_the_input_to_the_blocks_output():
    gen = rng()
    block = layers.sequential(layers.dense("f", 3), layers.tanh)
    x = fgraph.input("x", (3,))
    out = layers.residual(block)(x)
    params = {"f.W": gen.standard_normal((3, 3)), "f.b": gen.standard_normal(3)}
    X = gen.standard_normal((4, 3))
    np.testing.assert_allclose(forward(out, params, {"x": X}), X + np.tanh(X @ params["f.W"].T + params["f.b"]),
                               rtol=1e-12)
    g = fgraph.graph(objective=fgraph.sum(out))
    assert fgraph.check_grads(g, params, {"x": X}).ok


def test_residual_refuses_a_block_that_changes_the_shape_or_is_not_a_layer():
    with pytest.raises(ShapeError, match=r"residual: the block 'dense\[f\]' must keep the per-example shape \(3,\)"
                                         r" of node 'x'.*\(2,\)"):
        layers.residual(layers.dense("f", 2))(fgraph.input("x", (3,)))
    with pytest.raises(TypeError, match="residual: block must be a function"):
        layers.residual(3)


def test_the_owner_token_is_per_layer_value():
    a, b = layers.dense("h", 2), layers.dense("h", 2)
    x = fgraph.input("x", (2,))
    wa = next(n for n in fgraph.graph(o=a(x)).nodes if n.name == "h.W")
    wb = next(n for n in fgraph.graph(o=b(x)).nodes if n.name == "h.W")
    wa2 = next(n for n in fgraph.graph(o=a(fgraph.tanh(x))).nodes if n.name == "h.W")
    assert wa.owner is wa2.owner and wa.owner is not wb.owner
    assert repr(wa.owner) == "Owner(layer='h')"
