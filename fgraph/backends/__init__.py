"""Backends: where the compiled programs of a graph run.

``"numpy"`` (the default) runs the generated Python programs of
:mod:`fgraph.program` on NumPy arrays. ``"jax"`` runs *the same programs*,
their rules lowered to ``jax.numpy`` (:mod:`fgraph.backends.lowering`: the
functions' global names rebound, no rule written twice) and compiled by
XLA: :func:`fgraph.forward`, :func:`fgraph.value_and_grad`,
:func:`fgraph.backward` and :func:`fgraph.train.fit` take
``backend="jax"``. JAX is optional (``pip install "fgraph[jax]"``) and
imported only when that backend is first used; ``import fgraph`` never
imports it.
"""

from __future__ import annotations

import importlib

BACKENDS = ("numpy", "jax")


def check_backend(backend) -> str:
    """``backend`` if it names a backend, else a ``ValueError`` listing them."""
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    return backend


def load_jax():
    """The module :mod:`fgraph.backends.jax_backend`, imported on first use;
    an ``ImportError`` saying how to install JAX when it is missing."""
    try:
        importlib.import_module("jax")
    except ImportError:
        raise ImportError(
            'backend="jax" needs JAX: pip install "fgraph[jax]" (CPU), or see README.md for CUDA'
        ) from None
    return importlib.import_module("fgraph.backends.jax_backend")
