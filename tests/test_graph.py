"""Graphs are frozen values whose structure is computed once, at construction."""

from __future__ import annotations

import subprocess
import sys

import attrs
import numpy as np
import pytest

import fgraph as fg


def test_nodes_and_graphs_are_frozen_and_hashable_by_identity():
    w = fg.param("w", (2,))
    g = fg.graph(objective=fg.sum(w))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        w.name = "v"
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        g.nodes = ()
    assert len({w, fg.param("w", (2,))}) == 2 and hash(g) == hash(g)


def test_topological_order_puts_every_node_after_its_inputs():
    x, w, b = fg.input("x", (3,)), fg.param("W", (2, 3)), fg.param("b", (2,))
    h = fg.tanh(fg.affine(w, x, b))
    g = fg.graph(objective=fg.sum(h), prediction=h)
    position = {n.name: i for i, n in enumerate(g.nodes)}
    for node in g.nodes:
        assert all(position[i.name] < position[node.name] for i in node.inputs)
    assert dict(g.params) == {"W": (2, 3), "b": (2,)} and dict(g.inputs) == {"x": (3,)}


def test_auto_names_are_deterministic_and_explicit_names_are_kept():
    def build():
        x = fg.input("x", (2,))
        return fg.tanh(x), fg.tanh(x, name="hidden")

    (a1, n1), (a2, n2) = build(), build()
    assert a1.name == a2.name and a1.name.startswith("tanh_")
    assert n1.name == n2.name == "hidden"


def test_shapes_are_inferred_when_nodes_are_built():
    x = fg.input("x", (3,))
    W, b = fg.param("W", (4, 3)), fg.param("b", (4,))
    assert fg.affine(W, x, b).shape == (4,)
    assert fg.matmul(fg.param("A", (2, 3)), fg.param("B", (3, 5))).shape == (2, 5)
    assert fg.squared_l2_distance(fg.affine(W, x, b), fg.input("y", (4,))).shape == ()


def test_batch_axis_is_tracked_statically():
    x = fg.input("x", (3,))
    W, b = fg.param("W", (4, 3)), fg.param("b", (4,))
    h = fg.affine(W, x, b)
    assert x.batched and h.batched and not W.batched
    assert not fg.mean(h).batched and not fg.l2_norm_penalty(W, 1.0).batched


def test_deep_graphs_do_not_hit_the_recursion_limit():
    h = fg.param("w", (2,))
    for _ in range(3000):
        h = fg.scale(h, 1.0)
    g = fg.graph(objective=fg.sum(h))
    assert len(g.nodes) == 3002
    assert np.array_equal(fg.grad(g)({"w": np.ones(2)})["w"], [1.0, 1.0])


def test_graph_node_lookup_names_the_missing_node():
    g = fg.graph(objective=fg.sum(fg.param("w", (2,))))
    assert g.node("w").role == "param"
    with pytest.raises(fg.GraphError, match="'v'"):
        g.node("v")


def test_importing_fgraph_imports_no_plotting_or_testing_library():
    code = (
        "import sys, fgraph, fgraph.train, fgraph.io, fgraph.optim, fgraph.layers, fgraph.init;"
        "bad = {'matplotlib', 'hypothesis', 'pytest', 'tqdm'} & set(m.split('.')[0] for m in sys.modules);"
        "print(sorted(bad)); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_two_different_primitives_that_share_a_name_are_not_merged():
    from fgraph.ops import Primitive, apply, same_shape

    cube = Primitive("pow", forward=lambda a: a**3, vjps=(lambda g, out, a: 3 * g * a * a,), shape=same_shape)
    square = Primitive("pow", forward=lambda a: a**2, vjps=(lambda g, out, a: 2 * g * a,), shape=same_shape)
    x = fg.param("x", ())
    with pytest.raises(fg.GraphError, match="two different nodes"):
        fg.graph(a=apply(cube, x), b=apply(square, x))
    assert fg.forward(fg.graph(a=apply(cube, x), b=apply(cube, x)), {"x": 2.0})["b"] == 8.0


def test_submodules_are_attributes_of_the_package():
    assert (
        callable(fg.io.save_state) and callable(fg.optim.adam) and callable(fg.train.fit) and callable(fg.init.normal)
    )


def test_the_generated_program_reads_as_backpropagation_and_names_cannot_inject_code():
    hostile = "w'] ; import os  # \n evil = ['"
    w, x = fg.param(hostile, (2,)), fg.input("x\nprint('hi')", (2,))
    g = fg.graph(objective=fg.sum(fg.mul(fg.tanh(x), w)))
    source = fg.program_source(g)
    assert source.startswith("def value_and_grad(params, data, cotangent=ONE):")
    assert "import os" not in source.replace(repr(hostile), "")
    value, grads = fg.value_and_grad(g)({hostile: np.array([1.0, 2.0])}, {"x\nprint('hi')": np.array([0.5, -0.5])})
    np.testing.assert_allclose(grads[hostile], np.tanh([0.5, -0.5]))


def test_params_with_one_owner_are_one_parameter_and_others_collide_with_advice():
    owner = object()
    x = fg.input("x", (2,))

    def use():  # what a layer does each time it is applied
        return fg.affine(fg.param("cell.W", (2, 2), owner=owner), x, fg.param("cell.b", (2,), owner=owner))

    g = fg.graph(objective=fg.sum(fg.add(use(), use())))
    assert list(g.params) == ["cell.W", "cell.b"]
    grads = fg.grad(g)({"cell.W": np.eye(2), "cell.b": np.zeros(2)}, {"x": np.array([1.0, 2.0])})
    np.testing.assert_allclose(grads["cell.W"], 2 * np.outer([1.0, 1.0], [1.0, 2.0]))
    with pytest.raises(fg.GraphError, match=r"build the layer once.*apply that same layer"):
        fg.graph(a=fg.sum(fg.param("cell.W", (2,))), b=fg.sum(fg.param("cell.W", (2,))))
    with pytest.raises(fg.GraphError, match=r"same layer made both, with shapes \(2,\) and \(3,\)"):
        fg.graph(a=fg.sum(fg.param("W", (2,), owner=owner)), b=fg.sum(fg.param("W", (3,), owner=owner)))
    with pytest.raises(fg.GraphError, match="build the layer once"):  # another owner: another layer
        fg.graph(a=fg.sum(fg.param("W", (2,), owner=owner)), b=fg.sum(fg.param("W", (2,), owner=object())))


def test_a_named_layer_applied_twice_is_told_to_name_the_second_application():
    layer = fg.layers.dense("enc", 2)
    x1, x2 = fg.input("x1", (3,)), fg.input("x2", (3,))
    with pytest.raises(fg.GraphError, match=r"layer\(x2, name='h.2'\)"):
        fg.graph(objective=fg.sum(fg.add(layer(x1), layer(x2))))
    g = fg.graph(objective=fg.sum(fg.add(layer(x1), layer(x2, name="enc.2"))))
    assert list(g.params) == ["enc.W", "enc.b"]
