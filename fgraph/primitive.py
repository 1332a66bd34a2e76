r"""The :class:`Primitive` type: one differentiable operation, in one block.

A primitive is a forward rule, one vector-Jacobian product (VJP) per
argument and a shape rule, and it is its own node builder: calling it on
nodes builds the node, checking shapes then, not at run time. The compiled
program calls ``forward`` and ``vjps[i]`` directly; nothing else of the
primitive runs per step. Written with the decorator, the docstring of the
forward rule (with the math) is the primitive's own::

    @primitive(shape=same_shape, vjps=(lambda g, out, a: 3 * g * a * a,))
    def cube(a):
        '''Element-wise a³; ∂J/∂a = 3 a² ⊙ ∂J/∂(a³).'''
        return a ** 3

    node = cube(x)                         # what apply(cube, x) does
    cube = Primitive("cube", forward=lambda a: a ** 3, vjps=..., shape=..., doc=...)  # the same, from existing functions

**Config is bound by name.** Static arguments (``l2_reg``, the ``c`` of
``scale``) are bound to the forward rule's positional parameters after its
array arguments, in the rule's order, whatever the order of the keywords;
a builder also takes them by position after the nodes
(``scale(a, 2.0)``). Missing parameters take the rule's defaults and
unknown keys are a ``TypeError``. The node's ``config`` keeps that bound
order and the compiled program passes it positionally (keyword arguments
would cost a dictionary per call on the hot path); every VJP receives the
same values in the same order after ``g, out, *args``. A rule whose
signature cannot be read, a forward rule that is a NumPy ufunc (its extra
positional parameter is the ``out`` buffer) and one that takes ``*args``
take no config, unless the primitive lists its config with
``Primitive(config_names=...)``.

**Before the node is built**, an optional ``prepare`` hook may check the
config, derive config from the arguments' shapes (config named in
``derived``, which callers may not give) or build another primitive
instead (``nll`` of a ``softmax`` becomes the fused ``nll_of_softmax``).
"""

from __future__ import annotations

import hashlib
import inspect
import math
from collections.abc import Callable, Mapping
from types import MappingProxyType

import attrs
import numpy as np

from fgraph.errors import GraphError, ShapeError
from fgraph.graph import Node, check_name

_REQUIRED = inspect.Parameter.empty
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _positional_parameters(rule):
    """The positional parameters of ``rule``, or None when they cannot be
    named: the signature cannot be read, or ``*args`` takes them."""
    try:
        parameters = inspect.signature(rule).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature
        return None
    positional = []
    for p in parameters:
        if p.kind is p.VAR_POSITIONAL:
            return None
        if p.kind in _POSITIONAL:
            positional.append(p)
    return positional


def _config_parameters(prim: Primitive) -> tuple:
    """``((name, default), ...)``: the config the rules take, in the order they take it.

    Read from the forward rule's positional parameters after its array
    arguments (``default`` is ``inspect.Parameter.empty`` when required),
    or from ``prim.config_names``; checked against every VJP's parameters
    after ``g, out, *args``, so that a rule that would receive another
    rule's order is refused when the primitive is made.
    """
    _check_fields(prim)  # first: the config is read from these fields
    arity = len(prim.vjps)
    if prim.config_names is not None:
        names = tuple(prim.config_names)
        if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
            raise TypeError(f"primitive {prim.name!r}: config_names must be distinct strings, got {names!r}")
        return tuple((n, _REQUIRED) for n in names)
    # A ufunc's extra positional parameter is its output buffer, never config.
    positional = None if isinstance(prim.forward, np.ufunc) else _positional_parameters(prim.forward)
    if positional is None:
        return ()
    if len(positional) < arity:
        raise TypeError(
            f"primitive {prim.name!r}: the forward rule takes {len(positional)} positional arguments,"
            f" but the primitive has {arity} (one VJP per argument)"
        )
    config = tuple((p.name, p.default) for p in positional[arity:])
    names = [n for n, _ in config]
    for i, vjp in enumerate(prim.vjps):
        theirs = None if vjp is None else _positional_parameters(vjp)
        if theirs is None:
            continue
        if len(theirs) < 2 + arity or [p.name for p in theirs[2 + arity :]] != names:
            raise TypeError(
                f"primitive {prim.name!r}: VJP {i} takes {[p.name for p in theirs]}, but every rule"
                f" receives (g, out, *args, *config) with {arity} args and the config in the forward"
                f" rule's order, {names}"
            )
    return config


def _argument_names(prim: Primitive) -> tuple:
    """Names of the array arguments, which callers may also give by keyword:
    the forward rule's, else a VJP's (after ``g, out``), else ``a0, a1, ...``."""
    arity = len(prim.vjps)
    config = {n for n, _ in prim.config_parameters}
    rules = [] if isinstance(prim.forward, np.ufunc) else [(prim.forward, 0)]
    rules += [(vjp, 2) for vjp in prim.vjps if vjp is not None]
    for rule, skip in rules:
        positional = _positional_parameters(rule)
        if positional is not None and len(positional) >= skip + arity:
            names = tuple(p.name for p in positional[skip : skip + arity])
            if not config & set(names) and "name" not in names:
                return names
    return tuple(f"a{i}" for i in range(arity))


def _builder_signature(prim: Primitive) -> inspect.Signature:
    """``prim(*nodes, *config, name=None)`` with the rules' names: what calling it takes."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter(n, kind) for n in prim.argument_names]
    params += [inspect.Parameter(n, kind, default=d) for n, d in prim.config_parameters if n not in prim.derived]
    params.append(inspect.Parameter("name", inspect.Parameter.KEYWORD_ONLY, default=None))
    return inspect.Signature(params)


def _check_fields(prim: Primitive) -> None:
    """``TypeError`` for a field that cannot work, named, when the primitive is made."""
    if not isinstance(prim.name, str) or not prim.name:
        raise TypeError(f"a primitive's name must be a non-empty string, got {prim.name!r}")
    if not isinstance(prim.vjps, tuple) or not all(v is None or callable(v) for v in prim.vjps):
        raise TypeError(f"primitive {prim.name!r}: vjps must be a tuple of functions (or None), got {prim.vjps!r}")
    for what in ("forward", "shape"):
        if not callable(getattr(prim, what)):
            raise TypeError(f"primitive {prim.name!r}: {what} must be a function, got {getattr(prim, what)!r}")
    if prim.prepare is not None and not callable(prim.prepare):
        raise TypeError(f"primitive {prim.name!r}: prepare must be a function or None, got {prim.prepare!r}")
    if prim.doc is not None and not isinstance(prim.doc, str):
        raise TypeError(f"primitive {prim.name!r}: doc must be a string, got {type(prim.doc).__name__}")


def _check_derived(prim: Primitive) -> None:
    """Derived config must be config of the rules, filled in by a prepare hook."""
    names = [n for n, _ in prim.config_parameters]
    unknown = [n for n in prim.derived if n not in names]
    if unknown or (prim.derived and prim.prepare is None):
        raise TypeError(
            f"primitive {prim.name!r}: derived config {list(prim.derived)} must be config of the rules"
            f" ({names}) that a prepare hook fills in"
        )


# slots=False: each primitive carries its own __doc__ and __signature__, so
# help(fgraph.tanh) and inspect.signature(fgraph.tanh) describe the builder.
@attrs.frozen(eq=False, slots=False, repr=False)
class Primitive:
    """A differentiable operation, and the builder of its nodes.

    - ``forward(*args, *config) -> out``
    - ``vjps[i](g, out, *args, *config) -> cotangent of args[i]`` (``None``
      for an argument that is not differentiable, such as integer labels)
    - ``shape(*per_example_shapes, **config) -> per-example output shape``,
      raising ``ShapeError`` with a message when the shapes do not fit.
    - ``reduces_batch``: the output has no batch axis (losses, ``sum``).
    - ``unbatched_args``: arguments that must not carry the batch axis
      (the weights of an affine map).
    - ``label_arg``: the argument holding integer class labels, whose number
      of classes is the last axis of argument 0.
    - ``broadcasts``: arguments broadcast against each other element-wise;
      a batched argument must then have the output's rank, so that its
      batch axis lines up with the others'.
    - ``unbroadcast``: a VJP may return a cotangent in the arguments'
      broadcast shape (with the batch axis for an unbatched argument); the
      evaluator sums it down to the argument's shape. False when every VJP
      already returns its argument's exact shape, which saves a call.
    - ``config_names``: the names of the config, in the order the rules
      receive it; ``None`` (the default) reads them from the forward
      rule's signature (see below).
    - ``prepare(prim, nodes, config) -> (primitive, nodes, config)``: run
      when a node is built, before its shapes are checked, with the bound
      config; it may check config values, add the ``derived`` config, or
      return another primitive to build instead (built as it is: its own
      hook does not run). ``None``: nothing to do.
    - ``derived``: config names the ``prepare`` hook computes from the
      arguments (the rank of an operand); callers may not give them.
    - ``doc``: what the primitive computes, with its math; the
      :func:`primitive` decorator takes the forward rule's docstring.

    Calling a primitive builds its node: ``prim(*nodes, *config, name=None,
    **config)``, the first ``len(vjps)`` positional arguments being the
    nodes and any further ones config, in the rules' order; nodes may also
    be given by the names in ``argument_names`` (the forward rule's).
    ``help(prim)`` shows ``doc`` and ``inspect.signature(prim)`` the call.

    Arrays: every argument may carry the leading batch axis B when it
    depends on data (parameters never do). ``forward`` then returns
    ``(B,) + per-example output shape`` (a loss: the mean over the batch,
    a scalar), and ``vjps[i]`` returns ``args[i]``'s shape, or, when
    ``unbroadcast``, the broadcast shape of the arguments.

    Config is bound by name: keywords are matched to the forward rule's
    positional parameters after its ``len(vjps)`` array arguments
    (defaults fill what is not given), and the rules receive the values
    positionally in that order. Each VJP's parameters after ``g, out,
    *args`` must have the same names in the same order, which is checked
    here. A forward rule that is a NumPy ufunc, takes ``*args`` or has no
    readable signature takes no config unless ``config_names`` is given.
    ``config_parameters`` holds the result, ``((name, default), ...)``.
    """

    name: str
    forward: Callable
    vjps: tuple = attrs.field(converter=lambda v: tuple(v) if isinstance(v, list) else v)  # a list works too
    shape: Callable
    reduces_batch: bool = False
    unbatched_args: tuple = ()
    label_arg: int | None = None
    broadcasts: bool = False
    unbroadcast: bool = False
    config_names: tuple | None = None
    prepare: Callable | None = None
    derived: tuple = ()
    doc: str | None = None
    config_parameters: tuple = attrs.field(init=False, default=attrs.Factory(_config_parameters, takes_self=True))
    argument_names: tuple = attrs.field(init=False, default=attrs.Factory(_argument_names, takes_self=True))

    def __attrs_post_init__(self) -> None:
        _check_derived(self)
        doc = self.doc if self.doc is not None else f"The primitive {self.name!r}: calling it builds its node."
        object.__setattr__(self, "__doc__", inspect.cleandoc(doc))
        object.__setattr__(self, "__name__", self.name)
        object.__setattr__(self, "__qualname__", self.name)
        object.__setattr__(self, "__signature__", _builder_signature(self))

    def __call__(self, *args, name: str | None = None, **config) -> Node:
        """Build the node ``self(*nodes)``: ``args`` are the nodes, then any config by position."""
        label = _label(self, name)
        arity = len(self.vjps)
        if config and any(n in config for n in self.argument_names):
            args, config = _nodes_by_keyword(self, label, args, config)
        _check_nodes(label, arity, args)
        nodes = args[:arity]
        config = _bind_config(self, _by_name(self, label, args[arity:], config), label)
        prim = self
        if self.prepare is not None:
            prim, nodes, config = self.prepare(self, nodes, config)
        return _build(prim, tuple(nodes), name, config)

    def __repr__(self) -> str:
        return f"<primitive {self.name}{self.__signature__}>"


def primitive(*, vjps: tuple, shape: Callable, name: str | None = None, **options) -> Callable[[Callable], Primitive]:
    """Decorator: the function is the forward rule, its name and docstring the primitive's.

    ``@primitive(vjps=..., shape=..., **options)`` over ``def tanh(a): ...``
    binds ``tanh`` to ``Primitive("tanh", forward=<the function>, vjps=...,
    shape=..., doc=<its docstring>, **options)``; ``name=`` overrides the
    function's name. The function itself is the rule the program calls.
    """

    def make(forward: Callable) -> Primitive:
        return Primitive(name or forward.__name__, forward=forward, vjps=vjps, shape=shape, doc=forward.__doc__, **options)

    return make


def apply(prim: Primitive, *inputs: Node, name: str | None = None, **config) -> Node:
    """Build the node ``prim(*inputs)``: the same as calling ``prim(*inputs, name=name, **config)``."""
    if not isinstance(prim, Primitive):
        raise TypeError(f"apply needs a fgraph.ops.Primitive, got {type(prim).__name__} {prim!r}")
    return prim(*inputs, name=name, **config)


def collect(*modules) -> Mapping[str, Primitive]:
    """``{name: primitive}`` for every :class:`Primitive` bound at the top level
    of ``modules``, in module order, then definition order.

    The same object bound twice (imported into a second module) counts
    once; two different primitives under one name are an ``ImportError``.
    """
    found: dict[str, Primitive] = {}
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, Primitive) and found.setdefault(value.name, value) is not value:
                raise ImportError(f"two different primitives are called {value.name!r} (in {module.__name__})")
    return MappingProxyType(found)


# ------------------------------------------------------- config checks for prepare


def finite_real(value, what: str, nonnegative: bool = False) -> float:
    """``value`` as a Python float, or a ``TypeError``/``ValueError`` naming ``what``."""
    try:
        c = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a real number, got {value!r}") from None
    if not math.isfinite(c) or (nonnegative and c < 0):
        raise ValueError(f"{what} must be a finite{' non-negative' if nonnegative else ''} number, got {value!r}")
    return c


def finite_config(*names: str, nonnegative: bool = False) -> Callable:
    """A ``prepare`` hook: the config ``names`` must be finite real numbers
    (and non-negative if asked); they are stored as Python floats."""

    def prepare(prim, nodes, config):
        checked = {k: finite_real(config[k], f"{prim.name}: {k}", nonnegative) for k in names}
        return prim, nodes, {**config, **checked}

    return prepare


# ----------------------------------------------------------- building a node


def _label(prim: Primitive, name) -> str:
    return f"{prim.name}" + (f" node {name!r}" if name is not None else "")


def _check_nodes(label: str, arity: int, args: tuple) -> None:
    """``TypeError`` unless ``args`` starts with ``arity`` nodes and holds no more."""
    count = sum(isinstance(a, Node) for a in args)
    if len(args) < arity or count > arity:
        raise TypeError(f"{label} takes {arity} nodes, got {count if count > arity else len(args)}")
    for i, node in enumerate(args[:arity]):
        if not isinstance(node, Node):
            raise TypeError(
                f"{label}: argument {i} must be a Node (from fgraph.input, fgraph.param"
                f" or an op), got {type(node).__name__}"
            )


def _nodes_by_keyword(prim: Primitive, label: str, args: tuple, config: dict) -> tuple[tuple, dict]:
    """Nodes given by their names (``affine(W, x=x, b=b)``) moved after the
    positional ones, and the config left."""
    names = prim.argument_names
    twice = [n for n in names[: len(args)] if n in config]
    if twice:
        raise TypeError(f"{label} got argument {twice} both by position and by name")
    rest = names[len(args) :]
    missing = [n for n in rest if n not in config]
    if missing:
        raise TypeError(f"{label} takes {len(names)} nodes {list(names)}, missing {missing}")
    return args + tuple(config[n] for n in rest), {k: v for k, v in config.items() if k not in rest}


def _by_name(prim: Primitive, label: str, positional: tuple, config: dict) -> dict:
    """Config given by position after the nodes, keyed by name, with the keywords.

    A ``TypeError`` for too many values, a value given twice, or derived
    config given at all.
    """
    names = [n for n, _ in prim.config_parameters if n not in prim.derived]
    if len(positional) > len(names):
        takes = f"config {names}" if names else "no config"
        raise TypeError(
            f"{label} takes {len(prim.vjps)} nodes and {takes}, got {len(positional)} more positional"
            f" arguments ({', '.join(type(v).__name__ for v in positional)})"
        )
    derived = [k for k in config if k in prim.derived]
    if derived:
        raise TypeError(f"{label}: config {derived} is derived from the arguments when the node is built; do not give it")
    bound = dict(zip(names, positional))
    twice = [k for k in bound if k in config]
    if twice:
        raise TypeError(f"{label} got config {twice} both by position and by name")
    return {**bound, **config}


def _structural_name(prim: Primitive, inputs, config) -> str:
    """A deterministic name from the op, its inputs' names and its config.

    Equal structure gives an equal name, so repeated subexpressions are
    evaluated once; no counter, hence no global state.
    """
    key = repr((prim.name, tuple(n.name for n in inputs), sorted(config.items())))
    return f"{prim.name}_{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def _bind_config(prim: Primitive, config: dict, label: str | None = None) -> dict:
    """``config`` keyed and ordered as ``prim``'s rules take it, defaults filled in.

    A ``TypeError`` naming the primitive and the keys for a key the rules do
    not take or a required one that is missing; derived config is left to
    the ``prepare`` hook.
    """
    label = label or prim.name
    parameters = prim.config_parameters
    names = [n for n, _ in parameters]
    unknown = [k for k in config if k not in names]
    if unknown:
        takes = f"takes config {names}" if names else "takes no config"
        raise TypeError(
            f"{label} {takes}, got unexpected {unknown} (config is bound by name to the forward"
            f" rule's parameters after its {len(prim.vjps)} array arguments, or to Primitive.config_names)"
        )
    missing = [n for n, default in parameters if n not in config and default is _REQUIRED and n not in prim.derived]
    if missing:
        raise TypeError(f"{label} needs config {missing} (it takes {names}), got {sorted(config)}")
    return {n: config.get(n, default) for n, default in parameters if n in config or n not in prim.derived}


def _build(prim: Primitive, inputs: tuple, name: str | None, config: dict) -> Node:
    """The node ``prim(*inputs)`` with ``config``, shapes checked now, not at run time."""
    label = _label(prim, name)
    if name is not None:
        check_name(name)
    _check_nodes(label, len(prim.vjps), inputs)
    config = _bind_config(prim, config, label)
    missing = [n for n in prim.derived if n not in config]
    if missing:
        raise TypeError(f"{label}: the prepare hook did not derive config {missing}")
    described = ", ".join(f"{n.name!r} {n.shape}" for n in inputs)
    try:
        shape = tuple(prim.shape(*(n.shape for n in inputs), **config))
    except ShapeError as e:
        raise ShapeError(f"{label}: {e} (inputs: {described})") from None
    for i in prim.unbatched_args:
        if inputs[i].batched:
            raise ShapeError(
                f"{label}: argument {i} ({inputs[i].name!r}) depends on data and would carry"
                f" the batch axis; it must be a parameter or computed from parameters only"
            )
    if prim.label_arg is not None and inputs[prim.label_arg].role != "input":
        raise GraphError(f"{label}: the labels ({inputs[prim.label_arg].name!r}) must be a data input")
    batched = not prim.reduces_batch and any(n.batched for n in inputs)
    if batched and prim.broadcasts:
        for n in inputs:
            if n.batched and len(n.shape) != len(shape):
                raise ShapeError(
                    f"{label}: {n.name!r} has per-example shape {n.shape} and carries the batch"
                    f" axis, so it cannot broadcast to the output shape {shape}"
                )
    return Node(
        name=name if name is not None else _structural_name(prim, inputs, config),
        role="op",
        op=prim,
        inputs=tuple(inputs),
        shape=shape,
        config=MappingProxyType(config),
        batched=batched,
        auto_name=name is None,
    )
