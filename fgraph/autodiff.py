"""Evaluation and reverse-mode differentiation: pure functions of (params, data).

::

    values = forward(g, params, data)                   # every output
    value, grads = value_and_grad(g, "objective")(params, data)
    grads = grad(g)(params, data)
    grads = backward(g, params, data, output="prediction", cotangent=u)   # a VJP

Every call validates its params and data (names, shapes, batch axis, finite
values, labels), evaluates the compiled program of the graph (see
:mod:`fgraph.program`) and returns new or read-only arrays: nothing a caller
passes in is mutated and nothing returned aliases anything else.

Gradients have a key for every param of the graph (or every name in
``wrt``), each the shape of its param; a param that does not reach the
output gets zeros. A param used in several places gets the sum of the
contributions of its uses (see :func:`merge_grads`).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Mapping
from functools import reduce

import numpy as np
import toolz

from fgraph import validate
from fgraph.arrays import frozen
from fgraph.backends import check_backend, load_jax
from fgraph.errors import GraphError, ShapeError
from fgraph.graph import Graph
from fgraph.program import ONE, Program
from fgraph.types import ArrayLike, Data, Params

_FLOAT64 = np.dtype(np.float64)


def _owner(arr):
    """The object that owns ``arr``'s memory (the end of its chain of bases)."""
    while isinstance(arr, np.ndarray) and arr.base is not None:
        arr = arr.base
    return arr


def detached(results: Mapping, *held: Mapping) -> dict:
    """Read-only results that share no memory with the arrays in ``held``
    (what the caller passed in), with each other, or with anything that
    outlives the call.

    A rule may return its argument itself (the VJPs of ``add`` return the
    incoming cotangent; an output may be an input or a constant): such a
    result, one that is already read-only (not made by this call) and one
    whose memory another result already owns are copied; the others were
    made by this call for this result alone, and are flagged read-only
    where they are, without a copy. A 0-d result comes back as a NumPy
    float, which is immutable.
    """
    taken = set()  # ids of the owners of the memory that results may not share
    for group in held:
        for v in group.values():
            if type(v) is np.ndarray:  # a NumPy scalar is immutable and owns nothing a result could share
                base = v.base
                # NumPy points a view at the array owning the memory: a longer walk is rare
                taken.add(id(v if base is None else base if type(base) is np.ndarray and base.base is None
                             else _owner(base)))
    out = {}
    for k, v in results.items():
        if type(v) is np.ndarray and v.ndim:
            owner = v if v.base is None else _owner(v)
            if id(owner) in taken or not v.flags.writeable or v.dtype is not _FLOAT64:
                v = owner = np.array(v, dtype=np.float64)
            taken.add(id(owner))
            v.setflags(write=False)
        elif type(v) is not np.float64:  # a NumPy float is immutable already
            v = frozen(v)
        out[k] = v
    return out


def merge_grads(*grads: Mapping) -> dict:
    """Combine gradient dictionaries by adding the values of shared keys.

    This is how contributions of a parameter used several times combine:
    ``merge_grads({"w": a}, {"w": b, "b": c}) == {"w": a + b, "b": c}``.
    """
    return toolz.merge_with(lambda terms: reduce(operator.add, terms), *grads)


def program_source(g: Graph, output: str = "objective") -> str:
    """The Python code fgraph generated for ``output``'s value and gradient.

    One line per node of the forward pass, one per edge of the backward
    pass, each commented with the node's name: backpropagation, written out.
    """
    return _program(g, output, None).source


def _check_graph(g) -> None:
    if not isinstance(g, Graph):
        raise TypeError(f"expected an fgraph Graph (from fgraph.graph(...)), got {type(g).__name__}")


def _names(value, what: str) -> tuple:
    """``value`` as a tuple of names: one name (a str), or an iterable of them."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (bytes, bytearray)) or not isinstance(value, Iterable):
        raise TypeError(f"{what} must be a name (str) or an iterable of names, got {type(value).__name__} {value!r}")
    names = tuple(value)
    wrong = [v for v in names if not isinstance(v, str)]
    if wrong:
        raise TypeError(f"{what} must hold names (str), got {wrong}")
    return names


def _program(g: Graph, output: str, wrt) -> Program:
    _check_graph(g)
    if not isinstance(output, str):
        raise TypeError(f"output must be an output name (str), got {output!r}")
    if output not in g.outputs:
        raise GraphError(f"the graph has no output {output!r}; its outputs are {list(g.outputs)}")
    if wrt is None:
        return g.programs[output]
    return g.programs.with_respect_to(output, _names(wrt, "wrt"))


def scalar_program(g: Graph, output: str = "objective", wrt=None) -> Program:
    """The compiled program of the scalar output ``output`` (gradients for
    ``wrt``, default every param): the one check of the graph, the output's
    name and its shape that every entry point makes."""
    program = _program(g, output, wrt)
    _check_scalar(g, output)
    return program


def _inputs_for(g: Graph, program, params, data):
    p = validate.params(g, params, program.param_names)
    d, batch = validate.data(g, data, program.input_names)
    return p, d, batch


def _on(backend: str, numpy_run: Callable, jax_run: str, program) -> Callable:
    """The function that runs ``program`` on ``backend``: ``numpy_run``, or
    the JAX backend's function ``jax_run`` bound to the program (results
    come back as NumPy arrays either way)."""
    if check_backend(backend) == "numpy":
        return numpy_run
    return functools.partial(getattr(load_jax(), jax_run), program)


def forward(
    g: Graph, params: Params, data: Data | None = None, outputs: Iterable[str] | str | None = None,
    backend: str = "numpy",
) -> dict[str, np.ndarray]:
    """Evaluate the graph: ``{output name: value}`` for every requested output.

    A call needs every param and input that the requested outputs depend on
    (a prediction needs no ``y``); a name the graph does not have is an
    error; a name the graph has but these outputs do not need is ignored.
    ``backend="jax"`` runs the same program compiled by XLA
    (:mod:`fgraph.backends`).
    """
    _check_graph(g)
    names = list(g.outputs) if outputs is None else list(_names(outputs, "outputs"))
    unknown = [k for k in names if k not in g.outputs]
    if unknown or not names:
        raise GraphError(f"unknown outputs {unknown}; the graph's outputs are {list(g.outputs)}")
    program = g.programs.forward(names)
    run = _on(backend, program.run, "run_forward", program)
    p, d, batch = _inputs_for(g, program, params, data)
    values = run(p, d, batch)
    return detached(dict(zip(names, values)), p, d)


def _check_scalar(g: Graph, output: str) -> None:
    node = g.outputs.get(output)
    if node is not None and (node.shape != () or node.batched):
        raise ShapeError(
            f"output {output!r} is not a scalar (per-example shape {node.shape}"
            f"{', batched' if node.batched else ''}); use backward(..., cotangent=...) for a VJP"
        )


def value_and_grad(
    g: Graph, output: str = "objective", wrt: Iterable[str] | str | None = None, backend: str = "numpy"
) -> Callable[[Params, Data | None], tuple[np.float64, dict[str, np.ndarray]]]:
    """Return ``f(params, data) -> (value, grads)`` for a scalar output.

    ``grads`` maps every param (or every name in ``wrt``, which may include
    data inputs) to ∂output/∂name. The program is compiled here, once.
    ``backend="jax"``: the same program and VJPs, compiled by XLA (once per
    batch size), the results NumPy arrays.
    """
    program = scalar_program(g, output, wrt)
    # A batch of one is evaluated as its example, as fit does (the batch
    # convention: the same value and gradients), unless a gradient is taken
    # with respect to data and must keep the batch axis.
    squeeze = not any(name in g.inputs for name in program.wrt)
    check = validate.Validator.of(g, program.param_names, program.input_names, squeeze)
    run = _on(backend, program.run_value_and_grad, "run_value_and_grad", program)

    def value_and_grad_fn(params: Params, data: Data | None = None):
        p, d, batch = check(params, data)
        value, grads = run(p, d, ONE, batch)
        return frozen(value), detached(grads, p, d)

    value_and_grad_fn.__doc__ = f"(value, gradients) of output {output!r} of {g!r}."
    return value_and_grad_fn


def grad(
    g: Graph, output: str = "objective", wrt: Iterable[str] | str | None = None, backend: str = "numpy"
) -> Callable[[Params, Data | None], dict[str, np.ndarray]]:
    """Return ``f(params, data) -> grads``: :func:`value_and_grad` without the value."""
    f = value_and_grad(g, output, wrt, backend)
    return lambda params, data=None: f(params, data)[1]


def backward(
    g: Graph,
    params: Params,
    data: Data | None = None,
    output: str = "objective",
    cotangent: ArrayLike | None = None,
    wrt: Iterable[str] | str | None = None,
    backend: str = "numpy",
) -> dict[str, np.ndarray]:
    """The vector-Jacobian product ``cotangentᵀ ∂output/∂name`` for every param (or ``wrt``).

    ``cotangent`` has the shape of the output's value (with the batch axis
    when the output carries it); it defaults to 1 for a scalar output, where
    the result is the gradient. ``backend="jax"`` runs it compiled by XLA.
    """
    program = _program(g, output, wrt)
    run = _on(backend, program.run_value_and_grad, "run_value_and_grad", program)
    p, d, batch = _inputs_for(g, program, params, data)
    node = g.outputs[output]
    shape = ((batch,) if node.batched and batch is not None else ()) + node.shape
    if cotangent is None:
        if shape != ():
            raise ShapeError(f"output {output!r} has shape {shape}: backward needs a cotangent of that shape")
        cotangent = ONE
    else:
        cotangent = validate.as_float_array(cotangent, "cotangent")
        if cotangent.shape != shape:
            raise ShapeError(f"the cotangent has shape {cotangent.shape}; output {output!r} has shape {shape}")
        validate.check_finite(cotangent, "cotangent")
    _, grads = run(p, d, cotangent, batch)
    return detached(grads, p, d, {"cotangent": cotangent})
