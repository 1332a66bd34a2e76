"""Every error path: a named error at the earliest point, whose message says
what is wrong and where (never a NumPy traceback from inside an op)."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import fgraph as fg
from fgraph.errors import NameMismatchError
from fgraph.ops import ZeroProbabilityWarning


def ridge():
    x, y = fg.input("x", (3,)), fg.input("y")
    w, b = fg.param("w", (3,)), fg.param("b")
    pred = fg.vector_scalar_affine(x, w, b)
    return fg.graph(prediction=pred, objective=fg.add(fg.squared_l2_distance(pred, y), fg.l2_norm_penalty(w, 1.0)))


def classifier():
    x, y = fg.input("x", (2,)), fg.input("y")
    W, b = fg.param("W", (3, 2)), fg.param("b", (3,))
    z = fg.affine(W, x, b)
    return fg.graph(prediction=fg.softmax(z), objective=fg.nll(fg.softmax(z), y))


PARAMS = {"w": np.ones(3), "b": np.array(0.0)}
DATA = {"x": np.ones((4, 3)), "y": np.zeros(4)}
CPARAMS = {"W": np.zeros((3, 2)), "b": np.zeros(3)}


# ------------------------------------------------------------ at graph build


def test_two_nodes_with_one_name_are_a_graph_error():
    a, b = fg.param("w", (2,)), fg.param("w", (2,))
    with pytest.raises(fg.GraphError, match="two different nodes are named 'w'"):
        fg.graph(objective=fg.sum(fg.add(a, b)))


def test_affine_shape_mismatch_names_the_op_the_shapes_and_the_nodes():
    with pytest.raises(fg.ShapeError, match=r"affine.*W \(4, 3\), x \(5,\).*'W'"):
        fg.affine(fg.param("W", (4, 3)), fg.input("x", (5,)), fg.param("b", (4,)))


def test_losses_refuse_the_classic_column_versus_row_broadcast():
    with pytest.raises(fg.ShapeError, match=r"same shape.*\(1,\) and \(\)"):
        fg.squared_l2_distance(fg.input("p", (1,)), fg.input("y"))


def test_weights_that_depend_on_data_are_refused():
    with pytest.raises(fg.ShapeError, match="batch axis"):
        fg.vector_scalar_affine(fg.param("x", (3,)), fg.input("w", (3,)), fg.param("b"))


def test_batched_operand_of_lower_rank_is_refused():
    with pytest.raises(fg.ShapeError, match="batch"):
        fg.add(fg.input("x", ()), fg.param("w", (3,)))


def test_builders_refuse_things_that_are_not_nodes():
    with pytest.raises(TypeError, match="argument 1 must be a Node.*ndarray"):
        fg.add(fg.param("w", (2,)), np.ones(2))


def test_labels_must_be_a_data_input():
    with pytest.raises(fg.GraphError, match="labels"):
        fg.nll(fg.param("p", (3,)), fg.param("y"))


def test_graph_needs_node_outputs():
    with pytest.raises(fg.GraphError, match="at least one output"):
        fg.graph()
    with pytest.raises(fg.GraphError, match="'objective' must be a Node"):
        fg.graph(objective=3.0)


@pytest.mark.parametrize("shape", [(0,), (-1,), (2.5,), "ab", None])
def test_bad_shapes_are_refused(shape):
    with pytest.raises(fg.ShapeError, match="shape"):
        fg.param("w", shape)


def test_bad_names_and_constants_are_refused():
    with pytest.raises(TypeError, match="name"):
        fg.input("", (2,))
    with pytest.raises(ValueError, match="l2_reg"):
        fg.l2_norm_penalty(fg.param("w", (2,)), -1.0)
    with pytest.raises(ValueError, match="scale: c"):
        fg.scale(fg.param("w", (2,)), float("nan"))
    with pytest.raises(TypeError, match="scale: c"):
        fg.scale(fg.param("w", (2,)), "two")


# -------------------------------------------------------------- at the call


def test_missing_and_unexpected_names_are_listed_in_a_keyerror():
    f = fg.value_and_grad(ridge())
    with pytest.raises(NameMismatchError) as info:
        f({"w": np.ones(3), "bb": np.array(0.0)}, DATA)
    assert isinstance(info.value, KeyError)
    assert info.value.missing == ("b",) and info.value.unexpected == ("bb",)
    assert "missing params ['b']" in str(info.value) and "unexpected params ['bb']" in str(info.value)


def test_data_passed_as_params_is_pointed_out():
    with pytest.raises(KeyError, match="belong in data"):
        fg.value_and_grad(ridge())({**PARAMS, "x": np.ones(3)}, DATA)


def test_missing_data_is_named():
    with pytest.raises(KeyError, match=r"missing data \['y'\]"):
        fg.value_and_grad(ridge())(PARAMS, {"x": np.ones((4, 3))})


def test_param_of_the_wrong_shape_names_key_expected_and_received():
    with pytest.raises(fg.ShapeError, match=r"param 'w' has shape \(4,\), expected \(3,\)"):
        fg.forward(ridge(), {"w": np.ones(4), "b": 0.0}, DATA)


def test_data_of_the_wrong_shape_says_what_was_declared():
    with pytest.raises(fg.ShapeError, match=r"data 'x' has shape \(4, 2\).*\(3,\).*\(B, 3\)"):
        fg.forward(ridge(), PARAMS, {"x": np.ones((4, 2))}, outputs="prediction")


def test_inputs_with_and_without_batch_axis_are_a_batch_error():
    with pytest.raises(fg.ShapeError, match="batch axis"):
        fg.forward(ridge(), PARAMS, {"x": np.ones((4, 3)), "y": np.array(0.0)})


def test_inputs_with_different_batch_sizes_are_a_batch_error():
    with pytest.raises(fg.ShapeError, match="different batch sizes"):
        fg.forward(ridge(), PARAMS, {"x": np.ones((4, 3)), "y": np.zeros(5)})


def test_an_empty_batch_is_refused():
    with pytest.raises(fg.ShapeError, match="empty batch"):
        fg.forward(ridge(), PARAMS, {"x": np.ones((0, 3)), "y": np.zeros(0)})


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_data_and_params_are_named(bad):
    x = np.ones((4, 3))
    x[2, 1] = bad
    with pytest.raises(ValueError, match=r"data 'x' contains NaN or inf at index \(2, 1\)"):
        fg.forward(ridge(), PARAMS, {"x": x, "y": np.zeros(4)})
    with pytest.raises(ValueError, match="param 'b' contains NaN or inf"):
        fg.forward(ridge(), {"w": np.ones(3), "b": bad}, DATA)


@pytest.mark.parametrize(
    "bad", [np.array(["a", "b", "c"]), np.array([object(), 1, 2], dtype=object), np.ones(3, complex)]
)
def test_non_numeric_arrays_are_a_type_error_naming_the_key(bad):
    with pytest.raises(TypeError, match="param 'w' must hold real numbers"):
        fg.forward(ridge(), {"w": bad, "b": 0.0}, DATA)


def test_ragged_lists_are_a_type_error():
    with pytest.raises(TypeError, match="data 'x' is not a rectangular array"):
        fg.forward(ridge(), PARAMS, {"x": [[1.0, 2.0, 3.0], [1.0]]}, outputs="prediction")


def test_lists_ints_and_python_scalars_are_accepted_where_unambiguous():
    out = fg.forward(ridge(), {"w": [1, 2, 3], "b": 0}, {"x": [[1, 0, 0], [0, 1, 0]], "y": [0, 0]})
    np.testing.assert_allclose(out["prediction"], [1.0, 2.0])


def test_float_labels_are_refused_with_a_message_about_labels():
    with pytest.raises(ValueError, match="label"):
        fg.forward(classifier(), CPARAMS, {"x": np.ones((2, 2)), "y": np.array([0.0, 1.0])})


@pytest.mark.parametrize("labels", [[0, 3], [-1, 0]])
def test_out_of_range_labels_are_refused(labels):
    with pytest.raises(ValueError, match=r"label.*\[0, 3\)"):
        fg.forward(classifier(), CPARAMS, {"x": np.ones((2, 2)), "y": np.array(labels)})


def test_unknown_outputs_are_a_graph_error():
    with pytest.raises(fg.GraphError, match="'objectiv'.*'objective'"):
        fg.value_and_grad(ridge(), "objectiv")
    with pytest.raises(fg.GraphError, match="unknown outputs"):
        fg.forward(ridge(), PARAMS, DATA, outputs=["pred"])


def test_value_and_grad_of_a_non_scalar_output_points_to_backward():
    with pytest.raises(fg.ShapeError, match="not a scalar.*backward"):
        fg.value_and_grad(ridge(), "prediction")


def test_backward_checks_its_cotangent():
    with pytest.raises(fg.ShapeError, match=r"cotangent has shape \(3,\).*\(4,\)"):
        fg.backward(ridge(), PARAMS, DATA, output="prediction", cotangent=np.ones(3))
    with pytest.raises(fg.ShapeError, match="needs a cotangent"):
        fg.backward(ridge(), PARAMS, DATA, output="prediction")


def test_differentiating_with_respect_to_an_unknown_name_is_a_graph_error():
    with pytest.raises(fg.GraphError, match="'q'"):
        fg.grad(ridge(), wrt=["q"])


@pytest.mark.parametrize("call", [
    lambda: fg.forward(ridge(), PARAMS, DATA, outputs=3),
    lambda: fg.forward(ridge(), PARAMS, DATA, outputs=b"objective"),  # bytes would be iterated as ints
    lambda: fg.forward(ridge(), PARAMS, DATA, outputs=["objective", 3]),
    lambda: fg.value_and_grad(ridge(), wrt=3),
    lambda: fg.grad(ridge(), wrt=b"w"),
    lambda: fg.backward(ridge(), PARAMS, DATA, wrt=0),
])
def test_names_that_are_not_a_name_or_an_iterable_of_names_are_a_type_error_naming_the_argument(call):
    with pytest.raises(TypeError, match=r"^(outputs|wrt) must (be a name|hold names)"):
        call()


@pytest.mark.skipif(np.finfo(np.longdouble).max <= np.finfo(np.float64).max, reason="long double is float64 here")
def test_a_finite_long_double_beyond_float64s_range_is_named_as_such_not_as_inf():
    w = np.array([np.longdouble("1e400"), 1.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the cast's own overflow warning would be noise beside the error
        with pytest.raises(ValueError, match=r"param 'w' holds .*1e\+400.* at index \(0,\), beyond float64's range"):
            fg.value_and_grad(ridge())({**PARAMS, "w": w}, DATA)


def test_of_several_bad_names_the_error_names_the_first_in_sorted_order_whatever_order_they_come_in():
    """The names a program needs are a set, whose order changes with PYTHONHASHSEED: the
    error must not."""
    g, nan = ridge(), np.array(np.nan)
    for params, inputs in ((["w", "b"], ["y", "x"]), (["b", "w"], ["x", "y"])):
        with pytest.raises(ValueError, match="param 'b'"):
            fg.validate.params(g, {"w": np.full(3, np.nan), "b": nan}, params)
        with pytest.raises(NameMismatchError, match=r"missing params \['b', 'w'\]"):
            fg.validate.params(g, {}, params)
        with pytest.raises(ValueError, match="data 'x'"):
            fg.validate.data(g, {"x": np.full(3, np.nan), "y": nan}, inputs)


def test_not_a_graph_is_a_type_error():
    with pytest.raises(TypeError, match="Graph"):
        fg.forward({"objective": 1}, PARAMS, DATA)


def test_nll_of_a_zero_probability_is_inf_with_a_clear_warning():
    x, y = fg.input("x", (3,)), fg.input("y")
    g = fg.graph(objective=fg.nll(x, y))
    with pytest.warns(ZeroProbabilityWarning, match="exactly 0"):
        out = fg.forward(g, {}, {"x": np.array([[0.5, 0.0, 0.5]]), "y": np.array([1])})
    assert out["objective"] == np.inf


# ------------------------------------------------------------ training data


@pytest.mark.parametrize("batch_size", [0, -1, True, 2.0, np.float64(3.0), "4"])
def test_a_batch_size_that_is_not_a_positive_int_is_a_value_error_at_the_call(batch_size):
    data = {"x": np.ones((6, 3)), "y": np.zeros(6)}
    with pytest.raises(ValueError, match=re.escape(f"batch_size must be an int >= 1, got {batch_size!r}")):
        fg.train.batches(data, batch_size, seed=0, epochs=1)  # not only when the first batch is drawn
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        fg.train.epoch_batches(data, batch_size, 0, 0)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        fg.train.fit(ridge(), PARAMS, data, optimizer=fg.optim.sgd(0.1), epochs=1, batch_size=batch_size)


@pytest.mark.parametrize("n_y", [5, 7])  # a shorter y used to be an IndexError, a longer one silently cut
def test_inputs_of_different_lengths_are_a_shape_error_naming_both(n_y):
    data = {"x": np.ones((6, 3)), "y": np.zeros(n_y)}
    for call in (lambda: fg.train.batches(data, 2, seed=0, epochs=1), lambda: fg.train.epoch_batches(data, 2, 0, 0)):
        with pytest.raises(fg.ShapeError, match=f"'x' has 6, 'y' has {n_y}"):
            call()
    with pytest.raises(fg.ShapeError, match=f"'x': batch of 6|'y': batch of {n_y}") as info:
        fg.train.fit(ridge(), PARAMS, data, optimizer=fg.optim.sgd(0.1), epochs=1)
    assert "'x': batch of 6" in str(info.value) and f"'y': batch of {n_y}" in str(info.value)


def test_batches_of_a_scalar_input_name_it():
    with pytest.raises(fg.ShapeError, match="'y' is a scalar"):
        fg.train.batches({"x": np.ones((6, 3)), "y": 1.0}, 2, seed=0, epochs=1)


def _masked(values, hidden):
    """A masked array whose one masked entry holds ``hidden`` (what ignoring the mask would use)."""
    arr = np.ma.masked_array(np.array(values, dtype=float), mask=np.zeros(np.shape(values), bool))
    arr.data.flat[0], arr.mask.flat[0] = hidden, True
    return arr


def test_masked_data_is_refused_naming_the_key():
    data = {"x": _masked(np.ones((4, 3)), 1e6), "y": np.zeros(4)}
    message = r"data 'x' is a masked array \(numpy.ma\)"
    with pytest.raises(TypeError, match=message):
        fg.forward(ridge(), PARAMS, data)
    with pytest.raises(TypeError, match=message):
        fg.value_and_grad(ridge())(PARAMS, data)
    with pytest.raises(TypeError, match=message):
        fg.train.fit(ridge(), PARAMS, data, optimizer=fg.optim.sgd(0.1), epochs=1)
    with pytest.raises(TypeError, match=message):
        fg.train.batches(data, 2, seed=0, epochs=1)
    labels = np.ma.masked_array([0, 5], mask=[False, True])  # 5 is out of range, but masked
    with pytest.raises(TypeError, match=r"data 'y' \(labels\) is a masked array"):
        fg.forward(classifier(), CPARAMS, {"x": np.ones((2, 2)), "y": labels})


def test_masked_params_are_refused_naming_the_key(tmp_path):
    params = {"w": _masked(np.ones(3), 1e6), "b": np.array(0.0)}
    with pytest.raises(TypeError, match=r"param 'w' is a masked array"):
        fg.forward(ridge(), params, DATA)
    with pytest.raises(TypeError, match=r"param 'w' is a masked array"):
        fg.train.fit(ridge(), params, DATA, optimizer=fg.optim.sgd(0.1), epochs=1)
    with pytest.raises(TypeError, match=r"params\['w'\] is a masked array"):
        fg.io.save_params(tmp_path / "p", params)
    with pytest.raises(TypeError, match=r"params\['w'\] is a masked array"):
        fg.io.params_digest(params)
    state = fg.train.TrainState({"w": np.ones(3)}, {"mu": {"w": _masked(np.ones(3), 1e6)}}, 0, 0, 0, 1)
    with pytest.raises(TypeError, match=r"state.opt_state\['mu'\]\['w'\] is a masked array"):
        fg.io.save_state(tmp_path / "s", state)


def test_fitting_an_objective_that_reads_no_data_says_so():
    x, w = fg.input("x", (3,)), fg.param("w", (3,))
    penalty_only = fg.graph(
        prediction=fg.vector_scalar_affine(x, w, fg.param("b")), objective=fg.l2_norm_penalty(w, 1.0)
    )
    for data in ({"x": np.ones((4, 3))}, {}):
        with pytest.raises(
            ValueError, match=r"output 'objective' reads no data input \(it depends only on params \['w'\]\)"
        ):
            fg.train.fit(
                penalty_only, {"w": np.ones(3), "b": np.array(0.0)}, data, optimizer=fg.optim.sgd(0.1), epochs=1
            )
