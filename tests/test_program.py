"""The compiled programs: shapes checked on first use, names that stay data,
linear building and compiling, memory freed after last use, no aliasing."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import sys
import tracemalloc

import numpy as np
import pytest

import fgraph as fg
import fgraph.program
from fgraph.ops import Primitive, apply, same_shape

graph_module = importlib.import_module("fgraph.graph")  # fgraph.graph is also the function


def _scalar(*_, **__):
    return ()


# ------------------------------------------------ a user's misshapen primitive

# Per example: x (3,) · w (3,) -> (); the forward ignores the batch axis (sums it in).
DOT_IGNORING_BATCH = Primitive(
    "dot_ignoring_batch",
    forward=lambda x, w: (x * w).sum(),
    vjps=(lambda g, out, x, w: g * w, lambda g, out, x, w: g * x),
    shape=_scalar,
    unbatched_args=(1,),
)
# A right forward, and a VJP for w that returns a scalar instead of w's (3,).
SCALAR_VJP = Primitive(
    "scalar_vjp",
    forward=lambda x, w: x * w,
    vjps=(lambda g, out, x, w: g * w, lambda g, out, x, w: (g * x).sum() * np.float64(1.0)),
    shape=lambda x, w: x,
)
# A VJP that broadcasts (returns g * x, batch axis included) without unbroadcast=True.
BROADCASTING_VJP = Primitive(
    "broadcasting_vjp",
    forward=lambda x, w: x * w,
    vjps=(lambda g, out, x, w: g * w, lambda g, out, x, w: g * x),
    shape=lambda x, w: x,
)


def _model(prim):
    x, y, w = fg.input("x", (3,)), fg.input("y", (3,)), fg.param("w", (3,))
    return fg.graph(objective=fg.squared_l2_distance(apply(prim, x, w), y))


def _batch(b=4):
    rng = np.random.default_rng(0)
    return {"w": rng.normal(size=3)}, {"x": rng.normal(size=(b, 3)), "y": rng.normal(size=(b, 3))}


def test_a_forward_rule_that_ignores_the_batch_axis_is_a_shape_error_naming_it():
    x, w = fg.input("x", (3,)), fg.param("w", (3,))
    g = fg.graph(objective=fg.mean(apply(DOT_IGNORING_BATCH, x, w)))
    params, data = _batch()
    fg.value_and_grad(g)(params, {"x": data["x"][0]})  # one example: the rule is right
    with pytest.raises(fg.ShapeError, match=r"'dot_ignoring_batch'.*returned shape \(\), expected \(4,\)"):
        fg.value_and_grad(g)(params, {"x": data["x"]})
    with pytest.raises(fg.ShapeError, match="dot_ignoring_batch"):
        fg.forward(g, params, {"x": data["x"]})


@pytest.mark.parametrize("batch", [None, 4])
def test_a_vjp_returning_a_scalar_for_a_vector_param_is_a_shape_error(batch):
    params, data = _batch()
    if batch is None:
        data = {k: v[0] for k, v in data.items()}
    with pytest.raises(fg.ShapeError, match=r"'scalar_vjp'.*argument 1 \('w'\) returned shape \(\), expected \(3,\)"):
        fg.value_and_grad(_model(SCALAR_VJP))(params, data)


def test_a_broadcasting_vjp_without_unbroadcast_is_a_shape_error_with_a_hint():
    params, data = _batch()
    g = _model(BROADCASTING_VJP)
    fg.value_and_grad(g)(params, {k: v[0] for k, v in data.items()})  # one example: shapes agree
    with pytest.raises(fg.ShapeError, match=r"returned shape \(4, 3\), expected \(3,\).*unbroadcast=True"):
        fg.value_and_grad(g)(params, data)
    with pytest.raises(fg.ShapeError, match="broadcasting_vjp"):
        fg.backward(g, params, data, output="objective")


def test_the_same_primitive_with_unbroadcast_is_checked_once_per_batch_size_then_runs_fast():
    right = Primitive("right", forward=lambda x, w: x * w,
                      vjps=(lambda g, out, x, w: g * w, lambda g, out, x, w: g * x),
                      shape=lambda x, w: x, unbroadcast=True)
    g = _model(right)
    params, data = _batch()
    program = g.programs["objective"]
    value, grads = fg.value_and_grad(g)(params, data)
    assert ("grad", 4) in program.verified
    d = data["x"] * params["w"] - data["y"]
    np.testing.assert_allclose(grads["w"], 2 * (d * data["x"]).mean(0))
    # Later calls with that batch size run the fast program: same numbers, to the bit.
    value2, grads2 = fg.value_and_grad(g)(params, data)
    assert value2 == value and np.array_equal(grads2["w"], grads["w"])


def test_checked_and_fast_programs_agree_to_the_bit():
    g = _model(Primitive("right", forward=lambda x, w: x * w,
                         vjps=(lambda g, out, x, w: g * w, lambda g, out, x, w: g * x),
                         shape=lambda x, w: x, unbroadcast=True))
    params, data = _batch(5)
    program = g.programs["objective"]
    fast = program.value_and_grad(params, data)
    checked = program.checked_value_and_grad(params, data, fgraph.program.ONE, 5)
    assert fast[0] == checked[0] and all(np.array_equal(fast[1][k], checked[1][k]) for k in fast[1])


# -------------------------------------------------------- names are data


HOSTILE = [
    "a\n    __import__('builtins').fgraph_pwned = 1\n#",
    "a'''\n__import__('builtins').fgraph_pwned = 1\n'''",
    'a"""\n__import__("builtins").fgraph_pwned = 1\n"""',
    "a\\\n__import__('builtins').fgraph_pwned = 1",
    "a # \r__import__('builtins').fgraph_pwned = 1",
    "a\u2028__import__('builtins').fgraph_pwned = 1",
    "a\u2029__import__('builtins').fgraph_pwned = 1",
    "a\x0b\x0c\x1c\x1d\x1e\x85__import__('builtins').fgraph_pwned = 1",
    "'] ; __import__('builtins').fgraph_pwned = 1 ; ['",
]


@pytest.mark.parametrize("evil", HOSTILE)
def test_no_name_of_any_kind_changes_the_generated_code(evil):
    prim = Primitive(evil, forward=lambda a: a * 2.0, vjps=(lambda g, out, a: 2.0 * g,), shape=same_shape)
    x, w = fg.input("x" + evil, (2,)), fg.param("w" + evil, (2,))
    h = apply(prim, fg.mul(x, w), name="node" + evil)
    outputs = {"objective" + evil: fg.sum(h, name="sum" + evil), "prediction" + evil: h}
    g = fg.graph(**outputs)
    params, data = {"w" + evil: np.array([1.0, 2.0])}, {"x" + evil: np.array([3.0, 4.0])}
    value, grads = fg.value_and_grad(g, "objective" + evil)(params, data)
    values = fg.forward(g, params, data)
    assert value == 22.0 and np.array_equal(grads["w" + evil], [6.0, 8.0])
    assert np.array_equal(values["prediction" + evil], [6.0, 16.0])
    for source in (fg.program_source(g, "objective" + evil), fg.program_source(g, "prediction" + evil)):
        body = ast.parse(source).body[0].body
        # One statement per physical line: no name split a line or added one.
        assert len(body) == len(source.splitlines()) - 1 == len(source.split("\n")) - 2
    assert not hasattr(builtins, "fgraph_pwned")


# ------------------------------------------------------- linear building


def _chain(x, depth):
    h = x
    for _ in range(depth):
        h = fg.tanh(h)
    return h


def test_a_model_built_twice_merges_in_linear_time_without_recursion(monkeypatch):
    calls = []
    real = graph_module._same_computation
    monkeypatch.setattr(graph_module, "_same_computation", lambda *a: calls.append(1) or real(*a))
    x = fg.input("x", (2,))
    depth = 5000
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 60)  # nothing may recurse through the graph
    try:
        g = fg.graph(prediction=_chain(x, depth), objective=fg.sum(_chain(x, depth)))
        value, _ = fg.value_and_grad(g, wrt=["x"])({}, {"x": np.array([0.5, -0.5])})
    finally:
        sys.setrecursionlimit(limit)
    assert len(g.nodes) == depth + 2 and len(calls) == depth  # one comparison per duplicate node
    assert value == pytest.approx(0.0, abs=1e-12)


def test_a_residual_net_built_twice_compares_each_node_once(monkeypatch):
    calls = []
    real = graph_module._same_computation
    monkeypatch.setattr(graph_module, "_same_computation", lambda *a: calls.append(1) or real(*a))
    blocks = [(fg.param(f"W{i}", (3, 3)), fg.param(f"b{i}", (3,))) for i in range(200)]

    def net(h):
        for W, b in blocks:
            h = fg.add(h, fg.tanh(fg.affine(W, h, b)))
        return h

    x, y = fg.input("x", (3,)), fg.input("y", (3,))
    g = fg.graph(prediction=net(x), objective=fg.squared_l2_distance(net(x), y))
    assert len(calls) == 3 * 200 and len(g.nodes) == 2 + 3 * 200 + 2 * 200 + 1


def test_graph_compiles_nothing_and_using_one_output_compiles_only_its_program(monkeypatch):
    lines = []
    real = fgraph.program._Emitter.compile
    monkeypatch.setattr(fgraph.program._Emitter, "compile",
                        lambda self, *a: lines.append(len(self.lines)) or real(self, *a))
    x = fg.input("x", (2,))
    outputs, h = {}, x
    for i in range(1000):
        h = fg.tanh(h)
        outputs[f"layer{i}"] = h
    g = fg.graph(**outputs)
    assert lines == []
    fg.forward(g, {}, {"x": np.ones(2)})  # every output at once: one program (fast and checked)
    assert len(lines) == 2 and max(lines) <= 2 * 1001 + 1


def test_shapes_given_as_numpy_integers_are_accepted():
    x = fg.input("x", (np.int64(3),))
    w = fg.param("w", np.int32(3))
    assert x.shape == w.shape == (3,) and all(type(d) is int for d in x.shape)


def test_an_uncalled_initialiser_is_named_with_its_param():
    with pytest.raises(TypeError, match=r"param 'W'.*fgraph\.init\.normal.*call it"):
        fg.param("W", (2, 3), init=fg.init.normal)
    with pytest.raises(TypeError, match=r"param 'W'.*init\(rng, shape\)"):
        fg.param("W", (2, 3), init=0.01)


# ------------------------------------------------------------------ memory


def _peak(fn) -> int:
    """Bytes allocated at the peak of ``fn()`` above what was allocated before."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


LAYERS, BATCH, WIDTH = 30, 100, 1000  # each value 0.8 MB


def _tanh_net():
    x, w = fg.input("x", (WIDTH,)), fg.param("w", (WIDTH,))
    return fg.graph(objective=fg.sum(_chain(fg.mul(x, w), LAYERS)))


def test_forward_frees_each_value_after_its_last_use():
    g = _tanh_net()
    x, w = np.random.default_rng(0).normal(size=(BATCH, WIDTH)), np.full(WIDTH, 0.5)
    fg.forward(g, {"w": w}, {"x": x})  # compile first: only evaluation is measured

    def loop():
        h = x * w
        for _ in range(LAYERS):
            h = np.tanh(h)
        return h.sum()

    ours, numpy_loop = _peak(lambda: fg.forward(g, {"w": w}, {"x": x})), _peak(loop)
    assert ours <= 3 * numpy_loop, (ours, numpy_loop)


def test_value_and_grad_keeps_only_what_the_remaining_vjps_read():
    g = _tanh_net()
    x, w = np.random.default_rng(0).normal(size=(BATCH, WIDTH)), np.full(WIDTH, 0.5)
    f = fg.value_and_grad(g)
    f({"w": w}, {"x": x})

    def backprop():
        a = x * w
        outs, h = [], a
        for _ in range(LAYERS):
            h = np.tanh(h)
            outs.append(h)
        gh = np.ones_like(h)
        while outs:
            s = outs.pop()
            gh = gh * (1 - s * s)
        return h.sum(), (gh * x).sum(0)

    ours, by_hand = _peak(lambda: f({"w": w}, {"x": x})), _peak(backprop)
    assert ours <= 1.5 * by_hand, (ours, by_hand)


# ---------------------------------------------------------------- aliasing


def test_backward_through_add_returns_arrays_that_alias_nothing():
    a, b = fg.param("a", (3,)), fg.param("b", (3,))
    g = fg.graph(out=fg.add(a, b))
    u = np.array([1.0, 2.0, 3.0])
    grads = fg.backward(g, {"a": np.zeros(3), "b": np.zeros(3)}, output="out", cotangent=u)
    assert not np.shares_memory(grads["a"], u) and not np.shares_memory(grads["b"], u)
    assert not np.shares_memory(grads["a"], grads["b"])
    np.testing.assert_array_equal(grads["a"], u)


def test_outputs_that_are_inputs_do_not_alias_the_callers_arrays():
    x, w = fg.input("x", (2,)), fg.param("w", (2,))
    g = fg.graph(x=x, w=w, s=fg.sum(fg.mul(x, w)))
    mine_x, mine_w = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    out = fg.forward(g, {"w": mine_w}, {"x": mine_x})
    assert not np.shares_memory(out["x"], mine_x) and not np.shares_memory(out["w"], mine_w)


def test_zero_gradients_of_unreachable_params_are_new_on_every_call():
    a, b = fg.param("a", (2,)), fg.param("unused", (2,))
    g = fg.graph(objective=fg.sum(a), other=b)
    f = fg.grad(g)
    p = {"a": np.ones(2)}
    first, second = f(p)["unused"], f(p)["unused"]
    assert np.array_equal(first, [0.0, 0.0]) and not np.shares_memory(first, second)


@pytest.mark.parametrize("batch_size", [1, 3, 4, 8])
def test_fit_refuses_a_misshapen_primitive_before_its_first_step(batch_size):
    # The fault that trained silently wrong (w ended at 1.28 instead of 3 with batch_size=4).
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3))
    data = {"x": x, "y": 3.0 * x}
    g = _model(BROADCASTING_VJP)
    if batch_size == 1:  # one example at a time: the shapes agree, and the fit is right
        result = fg.train.fit(g, {"w": np.zeros(3)}, data, optimizer=fg.optim.sgd(0.05), epochs=200)
        np.testing.assert_allclose(result.params["w"], 3.0, rtol=1e-6)
        return
    with pytest.raises(fg.ShapeError, match=r"'broadcasting_vjp'.*argument 1 \('w'\)"):
        fg.train.fit(g, {"w": np.zeros(3)}, data, optimizer=fg.optim.sgd(0.05), epochs=30, batch_size=batch_size)


def _sum_of_terms(n: int):
    """objective = Σᵢ (i+1)·Σⱼ wⱼ, one ``add`` of n terms, all reading ``w``."""
    w = fg.param("w", (3,))
    terms = [fg.sum(fg.scale(w, float(i + 1), name=f"s{i}"), name=f"t{i}") for i in range(n)]
    return fg.graph(objective=fg.add(*terms, name="objective"))


def test_a_node_of_many_arguments_makes_a_program_linear_in_them():
    # Each of an n-ary node's n VJP lines listed all n arguments: source and
    # compilation quadratic in n (2,000 terms: 27 MB of code, 34 s).
    sizes = {n: len(fg.program_source(_sum_of_terms(n))) for n in (200, 400)}
    assert sizes[400] < 2.2 * sizes[200]
    source = fg.program_source(_sum_of_terms(400))
    assert source.count("*a") > 400 and max(map(len, source.splitlines())) < 10 * 400


@pytest.mark.parametrize("n", [fgraph.program.MANY_ARGUMENTS, fgraph.program.MANY_ARGUMENTS + 1, 40])
def test_a_node_of_many_arguments_has_the_same_gradients_as_a_chain_of_few(n):
    value, grads = fg.value_and_grad(_sum_of_terms(n))({"w": np.array([1.0, 2.0, -0.5])})
    assert value == pytest.approx(2.5 * n * (n + 1) / 2) and np.array_equal(grads["w"], np.full(3, n * (n + 1) / 2))


def test_many_arguments_of_mixed_shapes_are_summed_down_to_each_ones_shape():
    # Batched and unbatched, vectors and scalars: each cotangent summed to its argument's shape.
    x, b = fg.input("x", (2,)), fg.param("b")
    vs = [fg.param(f"v{i}", (2,)) for i in range(5)]
    ss = [fg.param(f"s{i}") for i in range(5)]
    g = fg.graph(objective=fg.sum(fg.mul(fg.add(x, b, *vs, *ss, name="many"), x)))
    rng = np.random.default_rng(0)
    params = {k: rng.normal(size=s) for k, s in g.params.items()}
    data = {"x": rng.normal(size=(4, 2))}
    assert len(g.node("many").inputs) > fgraph.program.MANY_ARGUMENTS
    report = fg.check_grads(g, params, data)
    assert report.ok, report
    grads = fg.grad(g)(params, data)
    assert all(grads[k].shape == params[k].shape for k in params)
    np.testing.assert_allclose(grads["b"], data["x"].sum(), rtol=1e-12)


@pytest.mark.parametrize("module", ["program", "interpret"])
def test_whether_an_argument_may_broadcast_is_settled_once_a_node(module, monkeypatch):
    # Once an argument, comparing it with every other argument cost a node of n arguments n².
    target = importlib.import_module(f"fgraph.{module}")
    calls = []
    real = target.argument_kinds
    monkeypatch.setattr(target, "argument_kinds", lambda node: calls.append(node) or real(node))
    ps = [fg.param(f"p{i}") for i in range(40)]
    g = fg.graph(objective=fg.add(*ps, name="many"))
    params = {f"p{i}": np.float64(i) for i in range(40)}
    if module == "program":
        fg.value_and_grad(g)(params)
    else:
        fg.contributions(g, params)
    assert 0 < len(calls) <= 2  # the node, in the fast and the checked program (or the interpreter's one walk)
