"""Linear maps: the assignment's affine nodes and the matrix product.

Each primitive is one block: shape rule, VJPs, then the forward rule with
the math in its docstring. Weights never carry the batch axis
(``unbatched_args``); data arguments may, and the VJPs of the weights sum
the batch in the same matrix product that computes them.
"""

from __future__ import annotations

import numpy as np

from fgraph.errors import ShapeError
from fgraph.primitive import primitive

# ---------------------------------------------------- vector_scalar_affine


def _vector_scalar_affine_shape(x, w, b, **_):
    if len(x) != 1 or w != x or b != ():
        raise ShapeError(f"needs x (d,), w (d,), b (); got x {x}, w {w}, b {b}")
    return ()


def _vsa_grad_w(g, out, x, w, b):
    # g () and x (d,): g x; g (B,) and x (B, d): Σ_b g_b x_b, the batch summed by the product.
    return g * x if g.ndim == 0 else g.dot(x)


@primitive(
    vjps=(
        lambda g, out, x, w, b: g * w if g.ndim == 0 else np.multiply.outer(g, w),
        _vsa_grad_w,
        lambda g, out, x, w, b: g if g.ndim == 0 else g.sum(),
    ),
    shape=_vector_scalar_affine_shape,
    unbatched_args=(1, 2),
)
def vector_scalar_affine(x, w, b):
    """x·w + b for x (d,), w (d,), b () -> ()  (the assignment's VectorScalarAffineNode).

    VJPs: ∂/∂x = g w, ∂/∂w = g x (summed over the batch), ∂/∂b = g.
    """
    return x.dot(w) + b


# ------------------------------------------------------------------ affine


def _affine_shape(W, x, b, **_):
    if len(W) != 2 or x != W[1:] or b != W[:1]:
        raise ShapeError(f"needs W (m, d), x (d,), b (m,); got W {W}, x {x}, b {b}")
    return W[:1]


def _affine_grad_W(g, out, W, x, b):
    # One example: the outer product g xᵀ (g[:, None] * x is cheaper than
    # np.multiply.outer); a batch: Σ_b g_b x_bᵀ = gᵀ x in one matrix product.
    return g[:, None] * x if g.ndim == 1 else g.T.dot(x)


def _affine_grad_b(g, out, W, x, b):
    return g if g.ndim == 1 else g.sum(0)


@primitive(
    vjps=(_affine_grad_W, lambda g, out, W, x, b: g.dot(W), _affine_grad_b),
    shape=_affine_shape,
    unbatched_args=(0, 2),
)
def affine(W, x, b):
    """W x + b for W (m, d), x (d,), b (m,) -> (m,)  (the AffineNode).

    VJPs: ∂J/∂W = (∂J/∂y) xᵀ (outer product; summed over the batch),
    ∂J/∂x = Wᵀ ∂J/∂y, ∂J/∂b = ∂J/∂y.
    """
    out = W.dot(x) if x.ndim == 1 else x.dot(W.T)
    out += b  # the product is this call's own array: no second one for the sum
    return out


# ------------------------------------------------------------------ matmul


def _matmul_shape(a, b, **_):
    if not (1 <= len(a) <= 2 and 1 <= len(b) <= 2) or a[-1] != b[0]:
        raise ShapeError(f"needs (m, k) or (k,) times (k, n) or (k,); got {a} and {b}")
    return a[:-1] + b[1:]


def _squeeze(out, a_vec, b_vec):
    if a_vec and b_vec:
        return out[..., 0, 0]
    if a_vec:
        return out[..., 0, :]
    if b_vec:
        return out[..., 0]
    return out


def _matmul_grads(g, a, b, a_vec, b_vec):
    """Cotangents of a @ b in their matrix forms: g b^T and a^T g."""
    A = a[..., None, :] if a_vec else a
    Bm = b[..., None] if b_vec else b
    G = g
    if b_vec:
        G = G[..., None]
    if a_vec:
        G = G[..., None, :]
    return np.matmul(G, np.swapaxes(Bm, -1, -2)), np.matmul(np.swapaxes(A, -1, -2), G)


def _matmul_grad_a(g, out, a, b, a_vec, b_vec):
    ga = _matmul_grads(g, a, b, a_vec, b_vec)[0]
    return ga[..., 0, :] if a_vec else ga


def _matmul_grad_b(g, out, a, b, a_vec, b_vec):
    gb = _matmul_grads(g, a, b, a_vec, b_vec)[1]
    return gb[..., 0] if b_vec else gb


def _operand_ranks(prim, nodes, config):
    # Which operands are vectors per example: a batched vector and a matrix
    # both arrive as 2-D arrays, so the rules cannot tell them apart alone.
    a, b = nodes
    return prim, nodes, {**config, "a_vec": len(a.shape) == 1, "b_vec": len(b.shape) == 1}


@primitive(
    vjps=(_matmul_grad_a, _matmul_grad_b),
    shape=_matmul_shape,
    unbroadcast=True,
    prepare=_operand_ranks,
    derived=("a_vec", "b_vec"),
)
def matmul(a, b, a_vec, b_vec):
    """Matrix product a @ b per example, for (m, k) or (k,) times (k, n) or (k,).

    Cotangents: ∂J/∂a = g bᵀ, ∂J/∂b = aᵀ g (vectors treated as one-row or
    one-column matrices).
    """
    out = np.matmul(a[..., None, :] if a_vec else a, b[..., None] if b_vec else b)
    return _squeeze(out, a_vec, b_vec)
