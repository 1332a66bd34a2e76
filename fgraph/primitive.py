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
    # the same, from existing functions:
    cube = Primitive("cube", forward=lambda a: a ** 3, vjps=..., shape=..., doc=...)

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
A ``ShapeError`` it raises is reported like a shape rule's, with the
primitive, the node and the inputs' shapes.

**Variadic primitives** (``Primitive(variadic=True)``: n-ary ``add``,
``concat``, ``stack``) take any number of nodes (at least ``min_arity``),
one by one or as one list or tuple: ``add(a, b, c)``, ``concat([a, b],
1)``. Their forward rule receives the arrays then the config,
``forward(*arrays, *config)``, and their one VJP rule serves every
argument, receiving its position first: ``vjps[0](i, g, out, *arrays,
*config)``; :meth:`Primitive.vjp` binds the position (the program asks it
for each argument's rule once, when it compiles). Their config is named by
``config_names``, whose entries may be ``(name, default)`` pairs.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import types
from collections.abc import Callable, Mapping
from types import MappingProxyType

import attrs
import numpy as np

from fgraph.arrays import readonly_copy
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
        return _named_config(prim)
    if prim.variadic:  # the rules take *arrays: only config_names can name config
        return ()
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


def _named_config(prim: Primitive) -> tuple:
    """``((name, default), ...)`` from ``config_names``: names (required
    config), or ``(name, default)`` pairs."""
    pairs = tuple((e, _REQUIRED) if isinstance(e, str) else e for e in prim.config_names)
    names = [p[0] if isinstance(p, tuple) and len(p) == 2 else None for p in pairs]
    if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise TypeError(
            f"primitive {prim.name!r}: config_names must be distinct names or (name, default) pairs,"
            f" got {prim.config_names!r}"
        )
    return pairs


def _argument_names(prim: Primitive) -> tuple:
    """Names of the array arguments, which callers may also give by keyword:
    the forward rule's, else a VJP's (after ``g, out``), else ``a0, a1, ...``;
    ``("nodes",)`` for a variadic primitive, whose nodes come as one sequence."""
    if prim.variadic:
        return ("nodes",)
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
    """``prim(*nodes, *config, name=None)`` with the rules' names: what calling it takes.

    A variadic primitive shows ``(*nodes, name=None)`` when it takes no
    config and ``(nodes, <config>, *, name=None)`` when it does (both forms
    are accepted either way; the one shown lets config come by position).
    """
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    config = [(n, d) for n, d in prim.config_parameters if n not in prim.derived]
    if prim.variadic and not config:
        params = [inspect.Parameter("nodes", inspect.Parameter.VAR_POSITIONAL)]
    else:
        params = [inspect.Parameter(n, kind) for n in prim.argument_names]
    params += [inspect.Parameter(n, kind, default=d) for n, d in config]
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
    if not isinstance(prim.reduces_batch, bool) and not callable(prim.reduces_batch):
        raise TypeError(
            f"primitive {prim.name!r}: reduces_batch must be a bool or a function of the config,"
            f" got {prim.reduces_batch!r}"
        )
    if prim.variadic and (len(prim.vjps) != 1 or prim.vjps[0] is None):
        raise TypeError(
            f"primitive {prim.name!r}: a variadic primitive has one VJP rule, called with the argument's"
            f" position first (i, g, out, *args, *config); got vjps={prim.vjps!r}"
        )
    if not isinstance(prim.min_arity, int) or isinstance(prim.min_arity, bool) or prim.min_arity < 0:
        raise TypeError(f"primitive {prim.name!r}: min_arity must be a non-negative int, got {prim.min_arity!r}")


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
    - ``reduces_batch``: the output has no batch axis (losses, ``sum``);
      a function of the node's config when that decides it (``sum``
      reduces the batch without ``axis=`` and keeps it with one).
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
    - ``variadic``: the primitive takes any number of nodes, at least
      ``min_arity``; ``vjps`` is then one rule ``(i, g, out, *args,
      *config)`` for every argument i (see :meth:`vjp`), and the config is
      named by ``config_names``.

    Calling a primitive builds its node: ``prim(*nodes, *config, name=None,
    **config)``, the first ``len(vjps)`` positional arguments being the
    nodes and any further ones config, in the rules' order; nodes may also
    be given by the names in ``argument_names`` (the forward rule's). A
    variadic primitive takes its nodes one by one (``add(a, b, c)``) or as
    one list or tuple (``concat([a, b], 1)``, ``concat(nodes=[a, b])``).
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
    variadic: bool = False
    min_arity: int = 1
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
        if self.variadic:
            nodes, rest, config = _variadic_nodes(self, label, args, config)
        else:
            arity = len(self.vjps)
            if config and any(n in config for n in self.argument_names):
                args, config = _nodes_by_keyword(self, label, args, config)
            _check_nodes(label, arity, args)
            nodes, rest = args[:arity], args[arity:]
        config = _bind_config(self, _by_name(self, label, rest, config), label)
        prim = self
        if self.prepare is not None:
            try:
                prim, nodes, config = self.prepare(self, nodes, config)
            except ShapeError as e:
                raise ShapeError(f"{label}: {e}{_described(nodes)}") from None
        return _build(prim, tuple(nodes), name, config)

    def vjp(self, position: int) -> Callable | None:
        """The VJP rule of argument ``position`` as the program calls it,
        ``rule(g, out, *args, *config)``: ``vjps[position]``, or, for a
        variadic primitive, its one rule with the position bound first."""
        if self.variadic:
            # A bound method is functools.partial of the first argument, called
            # through the interpreter's fast path: ~30 ns less per call on the hot path.
            return types.MethodType(self.vjps[0], position)
        return self.vjps[position]

    def batch_reduced(self, config: Mapping) -> bool:
        """Whether a node with this ``config`` loses the batch axis (``reduces_batch``)."""
        return self.reduces_batch(config) if callable(self.reduces_batch) else self.reduces_batch

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
        return Primitive(
            name or forward.__name__, forward=forward, vjps=vjps, shape=shape, doc=forward.__doc__, **options
        )

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


def _variadic_nodes(prim: Primitive, label: str, args: tuple, config: dict) -> tuple[tuple, tuple, dict]:
    """``(nodes, config by position, config by keyword)`` of a call of a
    variadic primitive: the nodes one by one, or as one list or tuple
    (first, or by the keyword ``nodes``)."""
    if "nodes" in config:
        config = dict(config)
        nodes, rest = config.pop("nodes"), args
        if not isinstance(nodes, (list, tuple)):
            raise TypeError(f"{label}: nodes must be a list or tuple of nodes, got {type(nodes).__name__}")
    elif args and isinstance(args[0], (list, tuple)):
        nodes, rest = args[0], args[1:]
    else:
        count = next((i for i, a in enumerate(args) if not isinstance(a, Node)), len(args))
        nodes, rest = args[:count], args[count:]
        if rest and (count < prim.min_arity or not _positional_config(prim)):  # a node was meant, not config
            _check_variadic(label, 0, args[: count + 1])
    nodes = tuple(nodes)
    _check_variadic(label, prim.min_arity, nodes)
    stray = [i for i, a in enumerate(rest) if _holds_nodes(a)]
    if stray:
        raise TypeError(
            f"{label}: the nodes come first, one by one or as one list or tuple; got"
            f" {type(rest[stray[0]]).__name__} {rest[stray[0]]!r} after them"
        )
    return nodes, rest, config


def _holds_nodes(value) -> bool:
    """Whether ``value`` is a node or a list or tuple with a node in it."""
    return isinstance(value, Node) or (isinstance(value, (list, tuple)) and any(isinstance(v, Node) for v in value))


def _check_variadic(label: str, min_arity: int, nodes: tuple) -> None:
    """``TypeError`` unless ``nodes`` are at least ``min_arity`` nodes."""
    if len(nodes) < min_arity:
        raise TypeError(f"{label} takes at least {min_arity} nodes, got {len(nodes)}")
    for i, node in enumerate(nodes):
        if not isinstance(node, Node):
            raise TypeError(
                f"{label}: argument {i} must be a Node (from fgraph.input, fgraph.param"
                f" or an op), got {type(node).__name__}"
            )


def _described(nodes) -> str:
    """`` (inputs: 'x' (3,), 'W' (2, 3))``: the nodes' names and per-example
    shapes, to end a message with; empty without nodes."""
    if not nodes:
        return ""
    return " (inputs: " + ", ".join(f"{n.name!r} {n.shape}" for n in nodes) + ")"


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
    names = _positional_config(prim)
    if len(positional) > len(names):
        takes = f"config {names}" if names else "no config"
        raise TypeError(
            f"{label} takes {_arity_text(prim)} nodes and {takes}, got {len(positional)} more positional"
            f" arguments ({', '.join(type(v).__name__ for v in positional)})"
        )
    derived = [k for k in config if k in prim.derived]
    if derived:
        raise TypeError(
            f"{label}: config {derived} is derived from the arguments when the node is built; do not give it"
        )
    bound = dict(zip(names, positional))
    twice = [k for k in bound if k in config]
    if twice:
        raise TypeError(f"{label} got config {twice} both by position and by name")
    return {**bound, **config}


def _positional_config(prim: Primitive) -> list:
    """The config callers give (all but the derived), in the order positions bind it."""
    return [n for n, _ in prim.config_parameters if n not in prim.derived]


def _arity_text(prim: Primitive) -> str:
    """How many nodes ``prim`` takes, for messages: ``2``, or ``at least 1``."""
    return f"at least {prim.min_arity}" if prim.variadic else str(len(prim.vjps))


def _config_text(value):
    """``value`` as it enters a structural name: itself, or, for an array,
    its dtype, shape and a hash of its bytes (NumPy's repr elides the middle
    of a large array, so two different arrays could share a repr)."""
    if not isinstance(value, np.ndarray):
        return value
    digest = hashlib.sha1(np.ascontiguousarray(value).tobytes()).hexdigest()
    return f"array(dtype={value.dtype.str}, shape={value.shape}, sha1={digest})"


def _structural_name(prim: Primitive, inputs, config) -> str:
    """A deterministic name from the op, its inputs' names and its config.

    Equal structure gives an equal name, so repeated subexpressions are
    evaluated once; no counter, hence no global state. Array config enters
    by its dtype, shape and bytes (:func:`_config_text`).
    """
    items = [(k, _config_text(v)) for k, v in sorted(config.items())]
    key = repr((prim.name, tuple(n.name for n in inputs), items))
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
        where = "its config_names" if prim.config_names is not None else (
            f"the forward rule's parameters after its {len(prim.vjps)} array arguments, or to Primitive.config_names"
        )
        raise TypeError(f"{label} {takes}, got unexpected {unknown} (config is bound by name to {where})")
    missing = [n for n, default in parameters if n not in config and default is _REQUIRED and n not in prim.derived]
    if missing:
        raise TypeError(f"{label} needs config {missing} (it takes {names}), got {sorted(config)}")
    return {n: config.get(n, default) for n, default in parameters if n in config or n not in prim.derived}


def _build(prim: Primitive, inputs: tuple, name: str | None, config: dict) -> Node:
    """The node ``prim(*inputs)`` with ``config``, shapes checked now, not at run time."""
    label = _label(prim, name)
    if name is not None:
        check_name(name)
    if prim.variadic:
        _check_variadic(label, prim.min_arity, inputs)
    else:
        _check_nodes(label, len(prim.vjps), inputs)
    # The node keeps its own read-only copy of array config: a forward rule
    # may return it (or a view), and neither the caller's later writes nor a
    # result's reader may reach what the program holds.
    config = {k: readonly_copy(v) if isinstance(v, np.ndarray) else v
              for k, v in _bind_config(prim, config, label).items()}
    missing = [n for n in prim.derived if n not in config]
    if missing:
        raise TypeError(f"{label}: the prepare hook did not derive config {missing}")
    try:
        shape = tuple(prim.shape(*(n.shape for n in inputs), **config))
    except ShapeError as e:
        raise ShapeError(f"{label}: {e}{_described(inputs)}") from None
    for i in prim.unbatched_args:
        if inputs[i].batched:
            raise ShapeError(
                f"{label}: argument {i} ({inputs[i].name!r}) depends on data and would carry"
                f" the batch axis; it must be a parameter or computed from parameters only"
            )
    if prim.label_arg is not None and inputs[prim.label_arg].role != "input":
        raise GraphError(f"{label}: the labels ({inputs[prim.label_arg].name!r}) must be a data input")
    batched = not prim.batch_reduced(config) and any(n.batched for n in inputs)
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
