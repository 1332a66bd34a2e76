r"""Convolutions and pooling, in PyTorch's layouts and with its cross-correlation.

Each primitive is one block: shape rule, VJPs, then the forward rule with
the math in its docstring. Per example, an image is ``(C, H, W)`` and a
sequence ``(C, L)``; a data argument may carry the batch axis in front
(``(B, C, H, W)``). Kernels and biases are parameters and never carry it
(``unbatched_args``), so their VJPs sum over the batch, inside the same
matrix product that computes them.

An example without a batch axis goes through the same code as a batch of
one (so a batch of one gives exactly the example's bits), and ``conv1d``
is ``conv2d`` on images one pixel high. A convolution and each of its VJPs
is one copy that gathers the windows (a strided view of the padded input,
:func:`_windows`) and one matrix product; a pooling is one element-wise
operation per offset of its small window. No Python loop runs over
pixels, channels or examples.

Config (``stride``, ``padding``, ``size``) is an int, or for the 2-D
primitives an int or a pair ``(height, width)``. It is checked when the
node is built (a ``TypeError`` for a non-integer, a ``ShapeError``, which
is a ``ValueError``, for a stride or size below 1 or a negative padding)
and stored, and given to the rules, as ints (pairs for the 2-D primitives).
"""

from __future__ import annotations

import numpy as np

from fgraph import kernels
from fgraph.errors import ShapeError
from fgraph.primitive import primitive

# ------------------------------------------------------------------ config


def _integer(value, what: str, least: int) -> int:
    """``value`` as a Python int of at least ``least``: a ``TypeError`` for a
    non-integer (bools included), a ``ShapeError`` (a ``ValueError``) for one too small."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an integer, got {type(value).__name__} {value!r}")
    if value < least:
        raise ShapeError(f"{what} must be {'positive' if least == 1 else 'non-negative'}, got {value}")
    return int(value)


def _pair(value, what: str, least: int) -> tuple[int, int]:
    """An int or a pair of ints ``(height, width)``, as a pair of Python ints of at least ``least``."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise TypeError(f"{what} must be an integer or a pair (height, width), got {value!r}")
        return _integer(value[0], f"{what}[0]", least), _integer(value[1], f"{what}[1]", least)
    v = _integer(value, what, least)
    return v, v


def _conv_config(as_config):
    """A ``prepare`` hook: ``stride`` >= 1 and ``padding`` >= 0, each normalised by ``as_config``."""

    def prepare(prim, nodes, config):
        return prim, nodes, {
            "stride": as_config(config["stride"], f"{prim.name}: stride", 1),
            "padding": as_config(config["padding"], f"{prim.name}: padding", 0),
        }

    return prepare


def _pool_config(prim, nodes, config):
    """A ``prepare`` hook: ``size`` and ``stride`` >= 1 as pairs; no stride means the window's size."""
    size = _pair(config["size"], f"{prim.name}: size", 1)
    stride = size if config["stride"] is None else _pair(config["stride"], f"{prim.name}: stride", 1)
    return prim, nodes, {"size": size, "stride": stride}


# ------------------------------------------------------------------ shapes


def _window_counts(spatial: tuple, window: tuple, stride: tuple, padding: tuple, what: str) -> tuple:
    """Windows per spatial axis: (n + 2p - k) // s + 1, or a ShapeError if a window does not fit."""
    padded = tuple(n + 2 * p for n, p in zip(spatial, padding))
    if any(k < 1 for k in window):
        raise ShapeError(f"the {what} {window} must be at least 1 along every axis")
    if any(k > n for k, n in zip(window, padded)):
        inside = f"padded input {padded} (input {spatial}, padding {padding})" if any(padding) else f"input {spatial}"
        raise ShapeError(f"the {what} {window} is larger than the {inside}")
    return tuple((n - k) // s + 1 for n, k, s in zip(padded, window, stride))


def _conv_shape(x: tuple, W: tuple, b: tuple, stride: tuple, padding: tuple, layout: str) -> tuple:
    """(F,) + windows per axis, for x (C, *spatial), W (F, C, *kernel), b (F,)."""
    rank = len(stride)
    if len(x) != 1 + rank or len(W) != 2 + rank or len(b) != 1:
        raise ShapeError(f"needs {layout}; got x {x}, W {W}, b {b}")
    F, C = W[:2]
    if x[0] != C:
        raise ShapeError(f"x has {x[0]} channels but the kernel W {W} takes C = {C}")
    if b[0] != F:
        raise ShapeError(f"b {b} must hold one bias per filter of W {W}: ({F},)")
    return (F,) + _window_counts(x[1:], W[2:], stride, padding, "kernel")


def _pool_shape(x: tuple, size: tuple, stride: tuple) -> tuple:
    """(C, H_out, W_out) for x (C, H, W) and windows of ``size`` every ``stride``."""
    if len(x) != 3:
        raise ShapeError(f"needs x (C, H, W), got {x}")
    return x[:1] + _window_counts(x[1:], size, stride, (0, 0), "window")


# ------------------------------------------------------------------ 2-D core
# A convolution is one matrix product: the kernel as an (F, C·kh·kw) matrix
# times the input's windows as a (C·kh·kw, Ho·Wo·B) matrix ("im2col"), and
# so is each of its VJPs. Inside, images are laid out (C, H, W, B), the
# batch innermost: the copy that gathers the windows then runs along rows
# of Wo·B numbers, where (B, C, H, W) gives rows of Wo (4 on the digits'
# second layer) and NumPy's cost per row dominates. Outputs are
# (B, F, Ho, Wo) views of (F, Ho, Wo, B) arrays, so that the next
# convolution or pooling finds its input already in that order, and the
# VJPs allocate their results in their argument's order (``zeros_like``).


def _batch(a: np.ndarray, rank: int) -> np.ndarray:
    """``a`` with the batch axis: as is if it has ``rank + 1`` axes, else as a batch of one."""
    return a if a.ndim == rank + 1 else a[None]


def _unbatch(result: np.ndarray, like: np.ndarray, rank: int) -> np.ndarray:
    """``result`` of the core without the batch axis of one if ``like`` (the argument) had none."""
    return result if like.ndim == rank + 1 else result[0]


def _framed(x: np.ndarray, padding: tuple) -> np.ndarray:
    """x (B, C, H, W) as a C-contiguous (C, H + 2·ph, W + 2·pw, B) array, framed by zeros."""
    ph, pw = padding
    moved = x.transpose(1, 2, 3, 0)
    if not (ph or pw):
        return kernels.contiguous(moved)  # no copy when x is a view of such an array
    C, H, W, B = moved.shape
    inner = (slice(None), slice(ph, ph + H), slice(pw, pw + W))
    return kernels.set_at(np.zeros((C, H + 2 * ph, W + 2 * pw, B), dtype=x.dtype), inner, moved)


def _columns(x, size, stride, padding) -> np.ndarray:
    """im2col: the (C·kh·kw, Ho·Wo·B) matrix whose column (y, x, b) is window (y, x)
    of example b of the zero-padded x̃, in row order (c, i, j)."""
    windows = kernels.strided_windows(_framed(x, padding), size, stride)
    C, kh, kw, Ho, Wo, B = windows.shape
    return windows.reshape(C * kh * kw, Ho * Wo * B)


def _rows(g) -> np.ndarray:
    """g (B, F, Ho, Wo) as the (F, Ho·Wo·B) matrix of the product's output (a copy
    only when g is not already laid out that way)."""
    return g.transpose(1, 2, 3, 0).reshape(g.shape[1], -1)


def _conv(x, W, b, stride, padding):
    """out[b, f, y, x] = b[f] + Σ_{c,i,j} W[f, c, i, j] x̃[b, c, y·sh + i, x·sw + j], as (B, F, Ho, Wo)."""
    F, C, kh, kw = W.shape
    B, _, H, Wd = x.shape
    (sh, sw), (ph, pw) = stride, padding
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (Wd + 2 * pw - kw) // sw + 1
    out = W.reshape(F, C * kh * kw).dot(_columns(x, (kh, kw), stride, padding))
    out += b[:, None]  # a fresh array of this call
    return out.reshape(F, Ho, Wo, B).transpose(3, 0, 1, 2)


def _conv_grad_W(g, x, W, stride, padding):
    """∂J/∂W[f, c, i, j] = Σ_{b,y,x} g[b, f, y, x] x̃[b, c, y·sh + i, x·sw + j]: one product."""
    return _rows(g).dot(_columns(x, W.shape[2:], stride, padding).T).reshape(W.shape)


def _conv_grad_x(g, x_shape, W, stride, padding):
    """∂J/∂x[b, c, Y, X] = Σ g[b, f, y, x] W[f, c, i, j] over y·sh + i = Y + ph, x·sw + j = X + pw.

    The transposed convolution, computed as a correlation: g dilated by the
    stride (sh - 1 zeros between its rows, sw - 1 between its columns) and
    framed by k - 1 zeros, correlated with the flipped kernel. Window
    (Y, X) of the dilated g meets g[y, x] at offset (kh-1-i, kw-1-j)
    exactly when Y = y·sh + i, which is where x̃[Y, X] was read. Only the
    windows of x's own pixels are computed (the padding's are cropped):
    one copy and one matrix product.
    """
    F, C, kh, kw = W.shape
    B, _, H, Wd = x_shape
    _, _, Ho, Wo = g.shape
    (sh, sw), (ph, pw) = stride, padding
    taps = (slice(None), slice(kh - 1, kh + (Ho - 1) * sh, sh), slice(kw - 1, kw + (Wo - 1) * sw, sw))
    frame = np.zeros((F, H + 2 * ph + kh - 1, Wd + 2 * pw + kw - 1, B), dtype=g.dtype)
    dilated = kernels.set_at(frame, taps, g.transpose(1, 2, 3, 0))
    # (F, kh, kw, H, W, B): the windows of x's own pixels
    windows = kernels.strided_windows(dilated, (kh, kw), (1, 1))[:, :, :, ph : ph + H, pw : pw + Wd]
    flipped = W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).reshape(C, F * kh * kw)
    gx = flipped.dot(windows.reshape(F * kh * kw, H * Wd * B))
    return gx.reshape(C, H, Wd, B).transpose(3, 0, 1, 2)


def _offsets(size, stride, spatial) -> list:
    """``(i, j, rows, cols)`` for each offset (i, j) of the window, in row-major
    order: ``a[..., rows, cols]`` is a[..., y·sh + i, x·sw + j] for every window
    (y, x) of an (…, H, W) array with ``spatial`` = (H, W)."""
    (kh, kw), (sh, sw), (H, W) = size, stride, spatial
    span_y, span_x = (H - kh) // sh * sh + 1, (W - kw) // sw * sw + 1  # from the first corner to the last
    return [
        (i, j, slice(i, i + span_y, sh), slice(j, j + span_x, sw))
        for i in range(kh)
        for j in range(kw)
    ]


# ------------------------------------------------------------------ conv2d


def _conv2d_shape(x, W, b, stride, padding):
    return _conv_shape(x, W, b, stride, padding, "x (C, H, W), W (F, C, kh, kw), b (F,)")


def _conv2d_grad_x(g, out, x, W, b, stride, padding):
    return _unbatch(_conv_grad_x(_batch(g, 3), _batch(x, 3).shape, W, stride, padding), x, 3)


def _conv2d_grad_W(g, out, x, W, b, stride, padding):
    return _conv_grad_W(_batch(g, 3), _batch(x, 3), W, stride, padding)


def _conv2d_grad_b(g, out, x, W, b, stride, padding):
    return g.sum(axis=(0, 2, 3) if g.ndim == 4 else (1, 2))


@primitive(
    vjps=(_conv2d_grad_x, _conv2d_grad_W, _conv2d_grad_b),
    shape=_conv2d_shape,
    unbatched_args=(1, 2),
    prepare=_conv_config(_pair),
)
def conv2d(x, W, b, stride=1, padding=0):
    """2-D cross-correlation (PyTorch's ``conv2d``): x (C, H, W), W (F, C, kh, kw), b (F,) -> (F, H_out, W_out),

        out[f, y, x] = b[f] + Σ_{c,i,j} x̃[c, y·sh + i, x·sw + j] W[f, c, i, j],

    x̃ being x framed by ``padding`` zeros, H_out = (H + 2·ph - kh) // sh + 1
    (and W_out alike). ``stride`` and ``padding`` are an int or a pair
    (height, width).

    VJPs: ∂J/∂W[f, c, i, j] = Σ_{y,x} g[f, y, x] x̃[c, y·sh + i, x·sw + j]
    and ∂J/∂b[f] = Σ_{y,x} g[f, y, x] (both summed over the batch);
    ∂J/∂x is the transposed convolution: each g[f, y, x] W[f, c, :, :]
    added back onto the window it came from, padding cropped.
    """
    return _unbatch(_conv(_batch(x, 3), W, b, stride, padding), x, 3)


# ------------------------------------------------------------------ conv1d
# conv1d is conv2d on images one pixel high: views, no copies.


def _conv1d_shape(x, W, b, stride, padding):
    return _conv_shape(x, W, b, (stride,), (padding,), "x (C, L), W (F, C, k), b (F,)")


def _conv1d_grad_x(g, out, x, W, b, stride, padding):
    gx = _conv2d_grad_x(g[..., None, :], None, x[..., None, :], W[:, :, None, :], b, (1, stride), (0, padding))
    return gx[..., 0, :]


def _conv1d_grad_W(g, out, x, W, b, stride, padding):
    gW = _conv2d_grad_W(g[..., None, :], None, x[..., None, :], W[:, :, None, :], b, (1, stride), (0, padding))
    return gW[:, :, 0, :]


def _conv1d_grad_b(g, out, x, W, b, stride, padding):
    return g.sum(axis=(0, 2) if g.ndim == 3 else 1)


@primitive(
    vjps=(_conv1d_grad_x, _conv1d_grad_W, _conv1d_grad_b),
    shape=_conv1d_shape,
    unbatched_args=(1, 2),
    prepare=_conv_config(_integer),
)
def conv1d(x, W, b, stride=1, padding=0):
    """1-D cross-correlation (PyTorch's ``conv1d``): x (C, L), W (F, C, k), b (F,) -> (F, L_out),

        out[f, t] = b[f] + Σ_{c,i} x̃[c, t·stride + i] W[f, c, i],

    x̃ being x framed by ``padding`` zeros, L_out = (L + 2·padding - k) // stride + 1.

    VJPs: ∂J/∂W[f, c, i] = Σ_t g[f, t] x̃[c, t·stride + i], ∂J/∂b[f] = Σ_t g[f, t]
    (both summed over the batch); ∂J/∂x is the transposed convolution.
    """
    return conv2d.forward(x[..., None, :], W[:, :, None, :], b, (1, stride), (0, padding))[..., 0, :]


# ------------------------------------------------------------------ pooling
# A pooling window is small (2 x 2, 3 x 3): kh·kw element-wise operations on
# strided slices, one per offset of the window, beat a reduction over two
# tiny axes of a window view several times over.


def _max_pool2d_grad(g, out, x, size, stride):
    """g[c, y, x] routed to the first maximum, in row-major order, of window (y, x)."""
    xb, gb, best = _batch(x, 3), _batch(g, 3), _batch(out, 3)
    gx = np.zeros_like(xb, dtype=gb.dtype)  # in x's memory order, as the slices below read it
    unclaimed = np.ones_like(best, dtype=bool)
    # Windows that do not overlap (stride >= size, the usual pooling) give each
    # pixel at most one window: its share is written, straight from the product.
    tiled = stride[0] >= size[0] and stride[1] >= size[1]
    for _, _, rows, cols in _offsets(size, stride, xb.shape[2:]):
        # Offsets in row-major order: the first that holds the max claims the window.
        hit = xb[..., rows, cols] == best
        hit &= unclaimed
        unclaimed ^= hit
        if tiled:
            gx = kernels.multiply_at(gx, (Ellipsis, rows, cols), gb, hit)
        else:  # where windows overlap, a pixel gets every window it is the max of
            gx = kernels.add_at(gx, (Ellipsis, rows, cols), gb * hit)
    return _unbatch(gx, x, 3)


@primitive(vjps=(_max_pool2d_grad,), shape=_pool_shape, prepare=_pool_config)
def max_pool2d(x, size, stride=None):
    """Max-pooling (PyTorch's ``max_pool2d``): x (C, H, W) -> (C, H_out, W_out),

        out[c, y, x] = max_{i<kh, j<kw} x[c, y·sh + i, x·sw + j],

    H_out = (H - kh) // sh + 1 (and W_out alike); ``size`` and ``stride``
    are an int or a pair, the stride the window's size when not given.

    VJP: each g[c, y, x] goes to the window's argmax. At a tie it goes to the
    first maximum in the window's row-major order (the smallest i, then the
    smallest j), so the gradient is one subgradient and a tie never counts
    twice; where windows overlap, a pixel gets the g of every window whose
    argmax it is. The VJP finds the argmax from the stored output.
    """
    xb = _batch(x, 3)
    out = None
    for _, _, rows, cols in _offsets(size, stride, xb.shape[2:]):
        window = xb[..., rows, cols]
        out = kernels.copy(window) if out is None else kernels.maximum_into(out, window)
    return _unbatch(out, x, 3)


def _avg_pool2d_grad(g, out, x, size, stride):
    """g[c, y, x] / (kh kw) added to every pixel of window (y, x): kh·kw strided adds."""
    xb, share = _batch(x, 3), _batch(g, 3) / (size[0] * size[1])
    gx = np.zeros_like(xb, dtype=share.dtype)
    for _, _, rows, cols in _offsets(size, stride, xb.shape[2:]):
        gx = kernels.add_at(gx, (Ellipsis, rows, cols), share)
    return _unbatch(gx, x, 3)


@primitive(vjps=(_avg_pool2d_grad,), shape=_pool_shape, prepare=_pool_config)
def avg_pool2d(x, size, stride=None):
    """Average pooling (PyTorch's ``avg_pool2d``): x (C, H, W) -> (C, H_out, W_out),

        out[c, y, x] = (1 / (kh kw)) Σ_{i<kh, j<kw} x[c, y·sh + i, x·sw + j],

    H_out = (H - kh) // sh + 1 (and W_out alike); ``size`` and ``stride``
    are an int or a pair, the stride the window's size when not given.

    VJP: g[c, y, x] / (kh kw) to every pixel of window (y, x), summed where windows overlap.
    """
    xb = _batch(x, 3)
    total = None
    for _, _, rows, cols in _offsets(size, stride, xb.shape[2:]):
        window = xb[..., rows, cols]
        total = kernels.copy(window) if total is None else kernels.add_into(total, window)
    return _unbatch(total / (size[0] * size[1]), x, 3)
