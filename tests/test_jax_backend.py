"""The JAX backend: the same programs and rules, lowered to jax.numpy and compiled.

Skipped only where JAX is not installed (CI installs it).
"""

import functools
import gc
import subprocess
import sys
import textwrap
import weakref

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_ops import CASES, IDS
from training_cases import OPTIMIZERS, mlp, problem

import fgraph as fg
from fgraph import optim, train
from fgraph.errors import ShapeError
from fgraph.primitive import primitive
from fgraph.testing import batch_sizes

jax = pytest.importorskip("jax")
jb = pytest.importorskip("fgraph.backends.jax_backend")


def linear_problem():
    """A linear regression of 64 examples: sgd(3.0) diverges on it within a few epochs."""
    x, t = fg.input("x", (3,)), fg.input("y", ())
    prediction = fg.vector_scalar_affine(x, fg.param("w", (3,)), fg.param("b", ()), name="prediction")
    g = fg.graph(prediction=prediction, objective=fg.squared_l2_distance(prediction, t))
    return g, {"w": np.zeros(3), "b": np.float64(0.0)}, problem(n=64)


#: Eager JAX runs each op on its own (milliseconds per rule): fewer examples than the NumPy tests draw.
EXAMPLES = settings(max_examples=max(5, settings.default.max_examples // 8))

#: Forward rules written with a kink that the function does not have (softplus
#: as max(a, 0) + log1p(e^-|a|)): jax.grad of the implementation picks a
#: subgradient of max and |.| at 0, the VJP the true derivative. XLA flushes
#: subnormal numbers to zero, so "at 0" includes them.
KINKED_AT_ZERO = {"softplus"}


def _case_program(case, data, batch):
    builder, _, arrays_, flags = case.draw(data, batch)
    if case.name in KINKED_AT_ZERO:
        assume(not any(np.any(np.abs(np.asarray(a)) < np.finfo(np.float64).tiny) for a in arrays_))
    nodes, params, data_ = fg.check._leaves(arrays_, flags)
    g = fg.graph(out=builder(*nodes))
    wrt = [n.name for n in nodes if n.name not in g.labels]
    program = g.programs.with_respect_to("out", wrt)
    node = g.outputs["out"]
    size = batch if any(flags) else None
    shape = ((size,) if node.batched and size is not None else ()) + node.shape
    cotangent = np.random.default_rng(0).normal(size=shape)
    return program, params, data_, (np.float64(cotangent) if shape == () else cotangent), size


@pytest.mark.parametrize("case", CASES, ids=IDS)
@EXAMPLES
@given(data=st.data(), batch=st.none() | batch_sizes())
def test_every_rule_lowered_to_jax_computes_what_it_computes_on_numpy(case, data, batch):
    """Forward value and every VJP of every primitive, batched and unbatched,
    run eagerly on jax.numpy through the lowered rules, equal NumPy's."""
    program, params, data_, cotangent, size = _case_program(case, data, batch)
    want_value, want_grads = program.checked_value_and_grad(params, data_, cotangent, size)
    with jb.x64():
        got_value, got_grads = jb.to_numpy(jb.lower(program.checked_value_and_grad)(params, data_, cotangent, size))
    np.testing.assert_allclose(got_value, want_value, rtol=1e-12, atol=1e-12)
    assert set(got_grads) == set(want_grads)
    for name, want in want_grads.items():
        np.testing.assert_allclose(got_grads[name], want, rtol=1e-11, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@EXAMPLES
@given(data=st.data(), batch=st.none() | batch_sizes())
def test_every_vjp_agrees_with_jax_grad_of_the_lowered_forward(case, data, batch):
    """An independent cross-check: jax.grad of the lowered *forward* program
    (JAX's autodiff of fgraph's forward rules) against fgraph's own VJPs."""
    program, params, data_, cotangent, size = _case_program(case, data, batch)
    _, grads = program.checked_value_and_grad(params, data_, cotangent, size)
    forward = jb.lower(program.checked_forward)
    wrt = [k for k in program.wrt]

    def projected(leaves):
        p = {**params, **{k: v for k, v in leaves.items() if k in params}}
        d = {**data_, **{k: v for k, v in leaves.items() if k in data_}}
        return jax.numpy.sum(forward(p, d, size) * cotangent)

    with jb.x64():
        want = jb.to_numpy(jax.grad(projected)({k: (params | data_)[k] for k in wrt}))
    for name in wrt:
        np.testing.assert_allclose(grads[name], want[name], rtol=1e-9, atol=1e-10, err_msg=name)


def test_import_fgraph_never_imports_jax():
    code = "import sys, fgraph, fgraph.train, fgraph.backends; assert 'jax' not in sys.modules, 'jax imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_callers_global_jax_configuration_is_left_as_it_was():
    before = jax.config.jax_enable_x64
    g, params, data = linear_problem()
    train.fit(g, params, data, optimizer=optim.sgd(0.01), epochs=1, batch_size=4, backend="jax")
    assert jax.config.jax_enable_x64 == before


LOWERED = {
    **OPTIMIZERS,
    "weight-decay": lambda: optim.chain(optim.add_weight_decay(1e-2), optim.momentum(0.01)),
    "clipped-sgd": lambda: optim.chain(optim.clip_by_global_norm(0.05), optim.sgd(0.01)),
}


@pytest.mark.parametrize("name", list(LOWERED))
@pytest.mark.parametrize("batch_size", [1, 4, 5, 1000])  # examples, equal batches, a smaller last one, one batch
def test_fit_on_jax_equals_fit_on_numpy(name, batch_size):
    g, params = mlp()
    data, optimizer = problem(n=23), LOWERED[name]()
    want = train.fit(g, params, data, optimizer=optimizer, epochs=3, batch_size=batch_size, seed=7)
    got = train.fit(g, params, data, optimizer=optimizer, epochs=3, batch_size=batch_size, seed=7, backend="jax")
    for name in params:
        np.testing.assert_allclose(got.params[name], want.params[name], rtol=1e-10, atol=1e-14)
        assert type(got.params[name]) is np.ndarray and not got.params[name].flags.writeable
    np.testing.assert_allclose(got.history, want.history, rtol=1e-10)
    assert got.state.step == want.state.step and got.state.epoch == want.state.epoch
    assert train._structure_mismatch(want.state.opt_state, got.state.opt_state, "opt_state") is None


def test_a_state_resumes_on_the_other_backend_and_ends_where_one_fit_ends():
    g, params, data = linear_problem()
    whole = train.fit(g, params, data, optimizer=optim.adam(0.01), epochs=4, batch_size=5)
    half = train.fit(g, params, data, optimizer=optim.adam(0.01), epochs=2, batch_size=5, backend="jax")
    for first, then in (("jax", "numpy"), ("jax", "jax")):
        rest = train.fit(g, None, data, optimizer=optim.adam(0.01), epochs=4, batch_size=5, resume=half.state,
                         backend=then)
        for name in params:
            np.testing.assert_allclose(rest.params[name], whole.params[name], rtol=1e-12, err_msg=(first, then))
        assert rest.state.opt_state["count"] == whole.state.opt_state["count"]
        assert isinstance(rest.state.opt_state["count"], int)


@pytest.mark.parametrize("batch_size", [1, 8, 10])
def test_divergence_on_jax_names_the_same_step_and_keeps_the_same_last_finite_state(batch_size):
    g, params, data = linear_problem()
    errors = []
    for backend in ("numpy", "jax"):
        with pytest.raises(train.DivergenceError) as caught:
            train.fit(g, params, data, optimizer=optim.sgd(3.0), epochs=200, batch_size=batch_size, backend=backend)
        errors.append(caught.value)
    want, got = errors
    assert (got.epoch, got.step, got.state.step, got.state.epoch) == (want.epoch, want.step, want.state.step,
                                                                      want.state.epoch)
    assert str(got).split(":")[0] == str(want).split(":")[0]
    for name in params:
        assert np.all(np.isfinite(got.state.params[name]))
        np.testing.assert_allclose(got.state.params[name], want.state.params[name], rtol=1e-9)


def _exactly_equal(got, want):
    for name in want.params:
        np.testing.assert_array_equal(got.params[name], want.params[name])
    np.testing.assert_array_equal(got.history, want.history)
    assert got.state.step == want.state.step and got.state.epoch == want.state.epoch


def _counting_calls(monkeypatch) -> list:
    """Record ``(count, keep)`` of every call of JaxFold.run_epochs."""
    calls, run_epochs = [], jb.JaxFold.run_epochs

    def counted(fold, carry, count, keep):
        calls.append((count, keep))
        return run_epochs(fold, carry, count, keep)

    monkeypatch.setattr(jb.JaxFold, "run_epochs", counted)
    return calls


@pytest.mark.parametrize("batch_size", [1, 5, 64])  # examples, a smaller last batch, one batch of all (no orders)
def test_several_epochs_a_call_train_what_one_epoch_a_call_trains_evaluated_or_not(batch_size, monkeypatch):
    g, params, data = linear_problem()
    calls = _counting_calls(monkeypatch)
    epochs = 150 if batch_size == 64 else 3
    fit = functools.partial(train.fit, g, params, data, optimizer=optim.adam(0.01), epochs=epochs,
                            batch_size=batch_size, seed=3, backend="jax")
    runs = [64, 64, 22] if batch_size == 64 else [3]  # one call per run of epochs, each checked when it returns
    quiet = fit()
    assert calls == [(n, False) for n in runs]
    calls.clear()
    seen = []
    evaluated = fit(evaluate=lambda p: seen.append(p) or {"w0": p["w"][0]})
    assert calls == [(n, True) for n in runs]  # each epoch's params come back with the call
    calls.clear()
    steps = []
    one_at_a_time = fit(on_epoch=lambda state: steps.append(state.step))  # runs as each epoch ends
    assert calls == [] and steps == [e * -(-64 // batch_size) for e in range(1, epochs + 1)]
    assert fit(progress=lambda epochs: epochs).params["w"].tolist() == quiet.params["w"].tolist() and calls == []
    _exactly_equal(quiet, evaluated)
    _exactly_equal(quiet, one_at_a_time)
    np.testing.assert_allclose(quiet.params["w"], fit(backend="numpy").params["w"], rtol=1e-10)
    assert [m["w0"] for m in evaluated.state.metrics] == [p["w"][0] for p in seen]
    for e in (1, epochs // 2, epochs):  # what evaluate saw is what a fit of that many epochs ends with
        ended = fit(epochs=e)
        for name in params:
            np.testing.assert_array_equal(seen[e - 1][name], ended.params[name])


def test_a_divergence_inside_an_evaluated_call_is_reported_after_every_epoch_before_it_was_evaluated():
    g, params, data = linear_problem()
    results = []
    for backend in ("numpy", "jax"):
        seen = []
        with pytest.raises(train.DivergenceError) as caught:
            train.fit(g, params, data, optimizer=optim.sgd(1.5), epochs=400, batch_size=64, backend=backend,
                      evaluate=lambda p: seen.append(p["b"]) or {})
        results.append((caught.value, seen))
    (want, want_seen), (got, got_seen) = results
    assert len(got_seen) == len(want_seen) == 340  # epoch 340's step fails: every earlier epoch was evaluated
    np.testing.assert_allclose(got_seen, want_seen, rtol=1e-9)
    assert str(got) == str(want) and len(got.state.metrics) == len(want.state.metrics) == 340
    np.testing.assert_allclose(got.state.params["w"], want.state.params["w"], rtol=1e-9)


def test_ctrl_c_during_a_quiet_fit_keeps_the_state_where_the_last_run_of_epochs_ended(monkeypatch):
    g, params, data = linear_problem()
    run_epochs, calls = jb.JaxFold.run_epochs, []

    def interrupted_on_the_second_call(fold, carry, count, keep):
        calls.append(count)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return run_epochs(fold, carry, count, keep)

    monkeypatch.setattr(jb.JaxFold, "run_epochs", interrupted_on_the_second_call)
    with pytest.raises(train.TrainingInterrupted) as caught:
        train.fit(g, params, data, optimizer=optim.sgd(0.1), epochs=100, batch_size=64, backend="jax")
    state = caught.value.state
    assert (state.epoch, state.step, len(state.history)) == (64, 64, 64)
    want = train.fit(g, params, data, optimizer=optim.sgd(0.1), epochs=64, batch_size=64)
    np.testing.assert_allclose(state.params["w"], want.params["w"], rtol=1e-10)


def test_ctrl_c_in_evaluate_inside_a_call_keeps_the_last_epoch_it_evaluated():
    g, params, data = linear_problem()
    calls = []

    def interrupt_at_ten(p):
        calls.append(1)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return {}

    with pytest.raises(train.TrainingInterrupted) as caught:
        train.fit(g, params, data, optimizer=optim.adam(0.1), epochs=100, batch_size=64, backend="jax",
                  evaluate=interrupt_at_ten)
    state = caught.value.state
    assert (state.epoch, len(state.history), len(state.metrics)) == (9, 9, 9)
    want = train.fit(g, params, data, optimizer=optim.adam(0.1), epochs=9, batch_size=64)
    np.testing.assert_allclose(state.params["w"], want.params["w"], rtol=1e-12)
    assert state.opt_state["count"] == want.state.opt_state["count"] == 9
    np.testing.assert_allclose(state.opt_state["mu"]["w"], want.state.opt_state["mu"]["w"], rtol=1e-12)


def test_a_fit_resumed_with_metrics_keeps_one_entry_per_epoch_when_it_goes_on_quietly():
    g, params, data = linear_problem()
    first = train.fit(g, params, data, optimizer=optim.sgd(0.01), epochs=2, batch_size=8, backend="jax",
                      evaluate=lambda p: {"w0": p["w"][0]})
    rest = train.fit(g, None, data, optimizer=optim.sgd(0.01), epochs=5, batch_size=8, backend="jax",
                     resume=first.state)
    assert len(rest.state.metrics) == len(rest.history) == 5
    assert rest.state.metrics[:2] == first.state.metrics and rest.state.metrics[2:] == ({}, {}, {})


def test_a_divergence_deep_inside_a_run_of_epochs_names_the_same_step_as_numpy():
    g, params, data = linear_problem()
    errors = []
    for backend in ("numpy", "jax"):  # full batch at sgd(1.5): it grows 1.5x an epoch and overflows in epoch 340
        with pytest.raises(train.DivergenceError) as caught:
            train.fit(g, params, data, optimizer=optim.sgd(1.5), epochs=400, batch_size=64, backend=backend)
        errors.append(caught.value)
    want, got = errors
    assert (got.epoch, got.step, got.state.step) == (want.epoch, want.step, want.state.step) == (340, 0, 340)
    assert str(got) == str(want)
    np.testing.assert_allclose(got.state.history, want.state.history, rtol=1e-9)
    for name in params:
        np.testing.assert_allclose(got.state.params[name], want.state.params[name], rtol=1e-9)


@pytest.mark.parametrize("batch_size", [1, 5])
def test_a_state_from_inside_an_epoch_resumes_on_jax_as_on_numpy(batch_size):
    g, params, data = linear_problem()
    poisoned = {**data, "y": np.where(np.arange(64) == 40, 1e200, data["y"])}  # its square is inf
    with pytest.raises(train.DivergenceError) as caught:
        train.fit(g, params, poisoned, optimizer=optim.sgd(0.01), epochs=2, batch_size=batch_size, backend="jax")
    state = caught.value.state
    assert 0 < state.step < 64 // batch_size  # inside the first epoch
    ends = [train.fit(g, None, data, optimizer=optim.sgd(0.01), epochs=2, batch_size=batch_size, resume=state,
                      backend=backend) for backend in ("numpy", "jax")]
    for name in params:
        np.testing.assert_allclose(ends[1].params[name], ends[0].params[name], rtol=1e-12)
    np.testing.assert_allclose(ends[1].history, ends[0].history, rtol=1e-12)


def test_a_misshapen_user_primitive_is_a_shape_error_on_jax_too():
    @primitive(vjps=(lambda g, out, a: g,), shape=lambda a: a)
    def first_row(a):
        """Drops the batch axis: a broken rule."""
        return a[0]

    x, w = fg.input("x", (3,)), fg.param("w", (3,))
    g = fg.graph(objective=fg.squared_l2_distance(first_row(fg.mul(x, w)), fg.input("y", (3,))))
    data = {"x": np.ones((4, 3)), "y": np.ones((4, 3))}
    with pytest.raises(ShapeError, match="first_row"):
        train.fit(g, {"w": np.ones(3)}, data, optimizer=optim.sgd(0.1), epochs=1, batch_size=2, backend="jax")


def test_backend_and_devices_are_checked():
    g, params, data = linear_problem()
    with pytest.raises(ValueError, match="backend must be one of"):
        train.fit(g, params, data, optimizer=optim.sgd(0.1), epochs=1, backend="torch")
    with pytest.raises(ValueError, match='backend="jax"'):
        train.fit(g, params, data, optimizer=optim.sgd(0.1), epochs=1, devices=2)
    with pytest.raises(ValueError, match="devices must be an int"):
        train.fit(g, params, data, optimizer=optim.sgd(0.1), epochs=1, batch_size=4, backend="jax", devices=0)


MULTI_DEVICE = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import jax
    from fgraph import optim, train
    from models import classification

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6))
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)
    model = classification.mlp_classifier(6, 16, 3)
    data, params = {"x": X, "y": y}, model.init(0)
    fit = lambda **kw: train.fit(model.graph, params, data, optimizer=optim.adam(0.01), epochs=3, batch_size=32,
                                 backend="jax", **kw)
    one, four = fit(), fit(devices=4)
    error = max(float(np.max(np.abs(one.params[k] - four.params[k]) / np.max(np.abs(one.params[k]))))
                for k in params)
    # The compiled epochs of the 4-device fold (one a call, several a call): gradients summed across devices.
    _, fold, state, _ = train._setup(model.graph, params, data, optim.adam(0.01), 3, 32, 0, "objective", None,
                                     "jax", 4)
    with jax.enable_x64(True):
        opt_state = jax.tree_util.tree_map(np.asarray, state.opt_state)
        orders = np.zeros((fold.epochs.capacity, 200), dtype=np.intp)
        hlo = [f.lower(dict(state.params), opt_state, *args).compile().as_text() for f, args in (
            (fold.epochs.fast, (0.0, True, fold.data, np.arange(200), 0)),
            (fold.epochs.run, (True, fold.data, orders, np.int64(3))),
        )]
    print(json.dumps({"devices": len(jax.devices()), "error": error, "all_reduce": ["all-reduce" in h for h in hlo]}))
    """
)


def test_four_devices_train_what_one_device_trains():
    """Data parallel on 4 simulated CPU devices (a subprocess: the device
    count is fixed when JAX starts): every batch split over the devices,
    gradients reduced by XLA; the params equal one device's to 1e-12."""
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4", "OPENBLAS_NUM_THREADS": "1",
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", MULTI_DEVICE], env=env, capture_output=True, text=True, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).parent.parent))
    result = __import__("json").loads(out.stdout.strip().splitlines()[-1])
    assert result["devices"] == 4
    assert result["all_reduce"] == [True, True]  # really split: the devices' partial gradients are reduced
    assert result["error"] <= 1e-12


def test_a_user_rule_that_writes_into_an_array_is_an_error_naming_its_primitive_on_jax():
    def clamp_grad(g, out, a):
        grad = np.array(g)
        grad[a < 0] = 0.0  # in place: fine on NumPy, impossible on JAX
        return grad

    @primitive(vjps=(clamp_grad,), shape=lambda a: a)
    def clamp(a):
        """max(a, 0), with a VJP that writes into its result."""
        return np.maximum(a, 0.0)

    x, w = fg.input("x", (3,)), fg.param("w", (3,))
    g = fg.graph(objective=fg.squared_l2_distance(clamp(fg.mul(x, w), name="clamped"), fg.input("y", (3,))))
    data, params = {"x": np.ones((4, 3)), "y": np.ones((4, 3))}, {"w": np.ones(3)}
    train.fit(g, params, data, optimizer=optim.sgd(0.1), epochs=1, batch_size=2)  # NumPy runs it
    with pytest.raises(jb.LoweringError, match=r"primitive 'clamp' \(node 'clamped'\): its VJP of argument 0"):
        train.fit(g, params, data, optimizer=optim.sgd(0.1), epochs=1, batch_size=2, backend="jax")


def _user_graph(forward, vjp):
    """A graph of ``forward`` (with ``vjp``) as the user's primitive 'mine', at node 'its'."""
    mine = primitive(vjps=(vjp,), shape=lambda a: a, name="mine")(forward)
    x, w = fg.input("x", (3,)), fg.param("w", (3,))
    return fg.graph(objective=fg.squared_l2_distance(mine(fg.mul(x, w), name="its"), fg.input("y", (3,))))


USER_DATA = {"x": np.arange(12.0).reshape(4, 3) - 5.0, "y": np.ones((4, 3))}


def _sorted_in_place(a):
    r = np.array(a)
    r.sort(axis=-1)  # in place on NumPy; on JAX a sorted copy, thrown away
    return r


def _keep(g, out, a):
    return g


@pytest.mark.parametrize("forward, vjp, words", [
    (_sorted_in_place, _keep, r"forward rule computes a value that nothing uses \(sort\).*in-place method"),
    (lambda a: a + 0.0 * np.random.default_rng(0).normal(size=a.shape), _keep, r"AttributeError.*random"),
    (lambda a: np.multiply(a, 2.0, out=np.empty_like(a)), lambda g, out, a: 2.0 * g, r"NotImplementedError.*out"),
    (lambda a: (lambda r: (np.put(r, [0], 1.0), r)[1])(np.array(a)), _keep, r"ValueError.*in-place"),
])
def test_a_user_rule_that_would_compute_something_else_on_jax_is_an_error_naming_it(forward, vjp, words):
    """Rules that run on NumPy but not unchanged on JAX: an in-place method, which on JAX returns a
    new array and would silently leave its own unsorted; a module, keyword or function that
    jax.numpy lacks or refuses. Each is a LoweringError naming the primitive, node and rule, on
    every entry point."""
    g, params = _user_graph(forward, vjp), {"w": np.ones(3)}
    train.fit(g, params, USER_DATA, optimizer=optim.sgd(0.01), epochs=1, batch_size=2)  # NumPy runs it
    named = r"primitive 'mine' \(node 'its'\): its .*" + words
    with pytest.raises(jb.LoweringError, match=named):
        train.fit(g, params, USER_DATA, optimizer=optim.sgd(0.01), epochs=1, batch_size=2, backend="jax")
    with pytest.raises(jb.LoweringError, match=named):
        fg.value_and_grad(g, backend="jax")(params, USER_DATA)
    with pytest.raises(jb.LoweringError, match=named):
        fg.forward(g, params, USER_DATA, backend="jax")


def test_an_optimiser_that_cannot_run_on_jax_is_an_error_naming_it():
    """A warm-up that branches on its step count, and a state holding a string: both run on NumPy."""
    g, params = _user_graph(lambda a: a * 1.0, _keep), {"w": np.ones(3)}

    def warmup(grads, state, params):
        scale = state["count"] / 10 if state["count"] < 10 else 1.0
        return {k: -0.01 * scale * v for k, v in grads.items()}, {"count": state["count"] + 1}

    def tagged(grads, state, params):
        return {k: -0.01 * v for k, v in grads.items()}, state

    for optimizer, words in (
        (optim.Optimizer(lambda p: {"count": 0}, warmup, name="warm-up"), r"'warm-up': its update cannot run .*"
                                                                          r"TracerBoolConversionError"),
        (optim.Optimizer(lambda p: {"tag": "sgd"}, tagged, name="tagged"), r"'tagged': its state holds str 'sgd'"
                                                                           r" at \['tag'\]"),
    ):
        train.fit(g, params, USER_DATA, optimizer=optimizer, epochs=2, batch_size=2)  # NumPy runs it
        with pytest.raises(jb.LoweringError, match="optimizer " + words):
            train.fit(g, params, USER_DATA, optimizer=optimizer, epochs=2, batch_size=2, backend="jax")


@pytest.mark.parametrize("kind", ["cnn", "rnn", "mlp"])
@pytest.mark.parametrize("rows", [5, 1, None])  # a batch, a batch of one, one example
def test_forward_value_and_grad_and_backward_on_jax_equal_numpys(kind, rows):
    import models
    from models import datasets

    digits = datasets.load_digits()
    model = {"cnn": models.cnn_classifier, "rnn": models.rnn_classifier,
             "mlp": lambda: models.mlp_classifier(64, 8, 10)}[kind]()
    X = digits.X_train[:5].reshape(5, -1) if kind == "mlp" else digits.X_train[:5]
    data = {"x": X[0], "y": digits.y_train[0]} if rows is None else {"x": X[:rows], "y": digits.y_train[:rows]}
    params, g = model.init(3), model.graph
    want_value, want_grads = fg.value_and_grad(g)(params, data)
    got_value, got_grads = fg.value_and_grad(g, backend="jax")(params, data)
    assert type(got_value) is np.float64
    np.testing.assert_allclose(got_value, want_value, rtol=1e-13)
    for name, want in want_grads.items():
        got = got_grads[name]
        assert type(got) is np.ndarray and not got.flags.writeable and got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-15, err_msg=name)
    inputs = {"x": data["x"]}
    want_p = fg.forward(g, params, inputs, outputs="prediction")["prediction"]
    got_p = fg.forward(g, params, inputs, outputs="prediction", backend="jax")["prediction"]
    np.testing.assert_allclose(got_p, want_p, rtol=1e-12, atol=1e-15)
    cotangent = np.random.default_rng(1).normal(size=want_p.shape)
    want_b = fg.backward(g, params, inputs, output="prediction", cotangent=cotangent)
    got_b = fg.backward(g, params, inputs, output="prediction", cotangent=cotangent, backend="jax")
    for name, want in want_b.items():
        np.testing.assert_allclose(got_b[name], want, rtol=1e-10, atol=1e-15, err_msg=name)


def test_the_functional_api_checks_its_backend_and_its_inputs_on_jax_too():
    g, params, data = linear_problem()
    with pytest.raises(ValueError, match="backend must be one of"):
        fg.value_and_grad(g, backend="cuda")
    with pytest.raises(ValueError, match="backend must be one of"):
        fg.forward(g, params, data, backend=None)
    bad = {**params, "w": np.array([1.0, np.nan, 0.0])}
    with pytest.raises(ValueError, match="'w'"):
        fg.value_and_grad(g, backend="jax")(bad, data)
    with pytest.raises(ShapeError):
        fg.value_and_grad(g, backend="jax")({**params, "w": np.zeros(4)}, data)


def test_a_sum_of_finite_objectives_that_overflows_is_not_a_divergence_on_either_backend():
    g, params, data = linear_problem()
    huge = {**data, "y": np.full(64, 1e154)}  # each squared error ~1e308, finite; their sum is not
    results = [train.fit(g, params, huge, optimizer=optim.sgd(1e-300), epochs=2, batch_size=1, backend=backend)
               for backend in ("numpy", "jax")]
    assert results[0].history[0] == results[1].history[0] == np.inf
    for name in params:
        np.testing.assert_allclose(results[1].params[name], results[0].params[name], rtol=1e-12)


def test_a_sweep_over_many_optimizers_keeps_only_the_latest_fits_compiled():
    """Each fit's compiled epochs hold XLA executables (megabytes): a program keeps those of its
    KEPT_FITS most recently used (optimiser, examples, batch size, devices), so a sweep does not grow
    without bound; a fit with a kept optimiser reuses its epochs, one dropped compiles them again."""
    g, params, data = linear_problem()
    optimizers = [optim.sgd(0.001 * (i + 1)) for i in range(jb.KEPT_FITS + 3)]
    program = train._fit_program(g, "objective", optimizers[0])
    fits = lambda: program.backends[("jax", "fits")]  # noqa: E731
    for opt in optimizers:
        train.fit(g, params, data, optimizer=opt, epochs=1, batch_size=16, backend="jax")
    assert len(fits()) == jb.KEPT_FITS
    assert [key[0] for key in fits()] == optimizers[-jb.KEPT_FITS:]  # the least recent went first
    latest = fits()[(optimizers[-1], 64, 16, None)]
    train.fit(g, params, data, optimizer=optimizers[-1], epochs=1, batch_size=16, backend="jax")
    assert fits()[(optimizers[-1], 64, 16, None)] is latest  # reused, not compiled again
    again = train.fit(g, params, data, optimizer=optimizers[0], epochs=2, batch_size=16, backend="jax")
    want = train.fit(g, params, data, optimizer=optimizers[0], epochs=2, batch_size=16)
    np.testing.assert_allclose(again.params["w"], want.params["w"], rtol=1e-12)
    assert len(fits()) == jb.KEPT_FITS and next(reversed(fits()))[0] is optimizers[0]
    # Nothing else keeps a dropped fit's optimiser alive (the lowering keeps no memo between calls).
    dropped = [weakref.ref(opt.update) for opt in optimizers[1:3]]
    del optimizers[1:3], opt
    gc.collect()
    assert [ref() for ref in dropped] == [None, None]


def test_a_state_resumed_inside_an_epoch_and_run_on_quietly_keeps_a_history_of_numpy_floats(tmp_path):
    """The unfinished epoch runs alone (its mean a device scalar) before several epochs a call
    (means on the host): every entry must come back a NumPy float, or the state cannot be saved."""
    g, params = mlp()
    data, opt = problem(n=10), optim.sgd(0.01)
    state = train.fit(g, params, data, optimizer=opt, epochs=1, batch_size=3).state
    inside = train.make_step(g, opt)(state, train.epoch_batches(data, 3, 0, 1)[0])  # one step into epoch 1
    result = train.fit(g, None, data, optimizer=opt, epochs=4, batch_size=3, resume=inside, backend="jax")
    assert [type(h) for h in result.history] == [np.float64] * 4
    fg.io.save_state(tmp_path / "state.npz", result.state)
    assert fg.io.load_state(tmp_path / "state.npz").history == result.history


def test_ctrl_c_after_an_unchecked_divergence_raises_the_divergence_not_a_diverged_state():
    """A progress function makes the fit run one epoch a call, checked every 16,384 steps: a
    Ctrl-C after the params have become non-finite must not hand them back as the state of an
    interrupted fit, but raise the DivergenceError NumPy raised when it happened."""
    g, params, data = linear_problem()

    def progress(epochs):
        for i, epoch in enumerate(epochs):
            if i == 70:
                raise KeyboardInterrupt
            yield epoch

    errors = []
    for backend in ("numpy", "jax"):
        try:  # TrainingInterrupted is a KeyboardInterrupt: caught here, so that it fails this test only
            train.fit(g, params, data, optimizer=optim.sgd(115.5), epochs=300, batch_size=64, backend=backend,
                      progress=progress)
        except train.DivergenceError as e:
            errors.append(e)
        except train.TrainingInterrupted as e:
            pytest.fail(f"{backend}: interrupted at epoch {e.state.epoch} instead of the divergence before it")
    want, got = errors
    assert (got.epoch, got.step, str(got)) == (want.epoch, want.step, str(want)) and want.epoch < 70
    for name in params:
        assert np.all(np.isfinite(got.state.params[name]))
        np.testing.assert_allclose(got.state.params[name], want.state.params[name], rtol=1e-10)


def test_a_learning_rate_times_gradient_that_overflows_is_the_same_divergence_on_jax():
    """NumPy folds sgd's learning rate into backpropagation, so a product inside it overflows first
    and the error names the update; JAX applies the rate after: its error is worded from NumPy's
    own checked step at the failing state."""
    g, params, data = linear_problem()
    tenfold = {"x": data["x"] * 10, "y": data["y"] * 10}
    want, got = _divergences(g, params, tenfold, optimizer=optim.sgd(1e308), epochs=1, batch_size=5)
    assert str(got) == str(want) and "update (learning rate × gradient) of 'w'" in str(want)


def _divergences(g, params, data, **fit) -> tuple:
    """The DivergenceErrors of the same fit on NumPy and on JAX."""
    errors = []
    for backend in ("numpy", "jax"):
        with pytest.raises(train.DivergenceError) as caught:
            train.fit(g, params, data, backend=backend, **fit)
        errors.append(caught.value)
    return tuple(errors)


def test_a_progress_function_sees_each_epoch_over_and_checked_as_numpy_does():
    """A progress function (a clock, a bar of one's own) is given the next epoch once the last is
    over: on JAX that means waited for and checked, so a divergence is raised before the function
    sees a later epoch, as on NumPy (not 16,384 steps later)."""
    g, params, data = linear_problem()
    seen = {}
    for backend in ("numpy", "jax"):
        seen[backend] = []

        def progress(epochs, seen=seen[backend]):
            for epoch in epochs:
                seen.append(epoch)
                yield epoch

        with pytest.raises(train.DivergenceError, match="epoch 63"):
            train.fit(g, params, data, optimizer=optim.sgd(115.5), epochs=300, batch_size=64, backend=backend,
                      progress=progress)
    assert seen["jax"] == seen["numpy"] == list(range(64))


def test_a_state_resumed_on_jax_keeps_the_kinds_of_its_optimiser_states_entries():
    """A NumPy float in the state (adam's moments of a 0-d param) comes back a NumPy float, not a
    Python float; and devices may be a NumPy integer, as epochs and batch_size may."""
    g, params, data = linear_problem()
    start = train.fit(g, params, data, optimizer=optim.adam(0.01), epochs=1, batch_size=16).state
    kinds = lambda state: [type(leaf) for leaf in jax.tree_util.tree_leaves(state.opt_state)]  # noqa: E731
    assert np.float64 in kinds(start)
    want = train.fit(g, None, data, optimizer=optim.adam(0.01), epochs=2, batch_size=16, resume=start)
    got = train.fit(g, None, data, optimizer=optim.adam(0.01), epochs=2, batch_size=16, resume=start, backend="jax",
                    devices=np.int64(1))
    assert kinds(got.state) == kinds(want.state)
    np.testing.assert_allclose(got.params["w"], want.params["w"], rtol=1e-12)


def test_an_optimiser_state_that_overflows_is_the_same_divergence_on_jax():
    g, params, data = linear_problem()
    data = {**data, "x": np.where(np.arange(192).reshape(64, 3) == 1, 1e200, data["x"])}
    want, got = _divergences(g, params, data, optimizer=optim.adam(0.01), epochs=3, batch_size=64)
    assert str(got) == str(want) and "the optimiser's state['nu']['w']" in str(want)
    for name in params:
        np.testing.assert_array_equal(got.state.params[name], want.state.params[name])


def test_a_node_of_many_arguments_lowers_with_its_arguments_bound_once():
    # Past program.MANY_ARGUMENTS, the program binds a node's arguments as one tuple that its lines unpack.
    x, b = fg.input("x", (2,)), fg.param("b")
    vs = [fg.param(f"v{i}", (2,)) for i in range(12)]
    g = fg.graph(objective=fg.sum(fg.tanh(fg.add(x, b, *vs, name="many"))))
    assert "*a" in fg.program_source(g)
    rng = np.random.default_rng(3)
    params = {k: rng.normal(size=s) for k, s in g.params.items()}
    data = {"x": rng.normal(size=(5, 2))}
    value, grads = fg.value_and_grad(g)(params, data)
    value_jax, grads_jax = fg.value_and_grad(g, backend="jax")(params, data)
    assert value_jax == pytest.approx(value, rel=1e-13)
    for k in grads:
        np.testing.assert_allclose(grads_jax[k], grads[k], rtol=1e-13)
