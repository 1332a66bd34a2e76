"""Every optimiser gives, bit for bit, the numbers recorded before optimisers
became bare ``(init, update)`` pairs and ``fit`` was split into pieces.

The values in ``recorded_training.json`` were written by :func:`runs` with
the code of that time (each an ``optimiser.update`` fold, a ``fit``, a
``make_step`` fold or a divergence). Every run is replayed here and
compared with ``np.array_equal``: a rewrite that changes one rounding
anywhere (a fused update, the learning rate folded into backpropagation, a
chain, the divergence replay) fails. Regenerate only for a deliberate
change of arithmetic: ``python tests/test_recorded_training.py --write``.
"""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np
import pytest
import training_cases  # tests/ is on the path (pytest prepends it): the shared problems

import models
from fgraph import optim, train

RECORDED = pathlib.Path(__file__).with_name("recorded_training.json")

OPTIMIZERS = {
    "sgd": lambda: optim.sgd(0.05),
    "momentum": lambda: optim.momentum(0.02, 0.8),
    "adam": lambda: optim.adam(0.01),
    "adam_odd": lambda: optim.adam(0.05, b1=0.5, b2=0.6, eps=1e-3),
    "scale": lambda: optim.scale(-0.03),
    "weight_decay_sgd": lambda: optim.chain(optim.add_weight_decay(0.01), optim.sgd(0.05)),
    "clip_scale": lambda: optim.chain(optim.clip_by_global_norm(0.5), optim.scale(-0.05)),
    "clip_momentum": lambda: optim.chain(optim.clip_by_global_norm(0.5), optim.momentum(0.02)),
    "clip_decay_adam": lambda: optim.chain(optim.clip_by_global_norm(1.0), optim.add_weight_decay(1e-3),
                                           optim.adam(0.01)),
    "scale_sgd": lambda: optim.chain(optim.scale(0.5), optim.sgd(0.1)),
    "nested": lambda: optim.chain(optim.chain(optim.scale(3.0), optim.clip_by_global_norm(2.0)), optim.adam(0.05)),
}
#: Transforms that are not optimisers on their own (they do not descend), run on fixed gradients only.
TRANSFORMS = {
    "add_weight_decay": lambda: optim.add_weight_decay(0.1),
    "clip_by_global_norm": lambda: optim.clip_by_global_norm(0.5),
    "clip_by_global_norm_passes": lambda: optim.clip_by_global_norm(1e6),
}
BATCH_SIZES = (1, 5, 12)


_problem, _mlp = training_cases.problem, training_cases.mlp


def _leaves(tree, prefix: str, out: dict) -> dict:
    """Every leaf of nested dicts/tuples as ``out[path] = float64 array``."""
    if isinstance(tree, dict):
        for k in sorted(tree):
            _leaves(tree[k], f"{prefix}/{k}", out)
    else:  # an array, a number, or the history (a tuple of floats)
        out[prefix] = np.asarray(tree, dtype=np.float64)
    return out


def _state_leaves(state, out: dict, prefix: str = "") -> dict:
    _leaves(dict(state.params), f"{prefix}params", out)
    _leaves(state.opt_state, f"{prefix}opt_state", out)
    _leaves({"history": state.history, "running": state.running, "step": state.step}, f"{prefix}fold", out)
    return out


def _update_fold(opt) -> dict:
    """Three steps of ``update`` + ``apply_updates`` on fixed gradients; a NumPy-scalar param among them."""
    rng = np.random.default_rng(3)
    params = {"W": rng.standard_normal((3, 2)), "b": np.float64(0.5), "c": np.array([-1.0, 2.0])}
    state, out = opt.init(params), {}
    for t in range(3):
        grads = {k: 5 * rng.standard_normal(np.shape(p)) for k, p in params.items()}
        updates, state = opt.update(grads, state, params)
        params = optim.apply_updates(params, updates)
        _leaves({"updates": updates, "params": params}, f"step{t}", out)
    return _leaves(state, "opt_state", out)


def _fit(opt, batch_size: int) -> dict:
    g, params = _mlp()
    result = train.fit(g, params, _problem(), optimizer=opt, epochs=3, batch_size=batch_size, seed=2)
    return _state_leaves(result.state, {})


def _make_step(opt) -> dict:
    g, params = _mlp()
    state = train.TrainState(train.readonly(params), opt.init(params), 0, 0, 2, 5)
    step = train.make_step(g, opt)
    for batch in train.epoch_batches(_problem(), 5, 2, 0):
        state = step(state, batch)
    return _state_leaves(state, {})


def _divergence(opt, batch_size: int) -> dict:
    m = models.linear_regression(3)
    with pytest.raises(train.DivergenceError) as info:
        train.fit(m.graph, m.init(), _problem(n=8), optimizer=opt, epochs=60, batch_size=batch_size, seed=0)
    out = _state_leaves(info.value.state, {})
    out["where"] = np.array([info.value.epoch, info.value.step], dtype=np.float64)
    return out


def runs() -> dict:
    """Every recorded run, by name: ``{name: thunk() -> {leaf path: float64 array}}``."""
    out = {}
    for name, build in {**OPTIMIZERS, **TRANSFORMS}.items():
        out[f"update/{name}"] = lambda build=build: _update_fold(build())
    for name, build in OPTIMIZERS.items():
        for b in BATCH_SIZES:
            out[f"fit/{name}/batch{b}"] = lambda build=build, b=b: _fit(build(), b)
        out[f"make_step/{name}"] = lambda build=build: _make_step(build())
    divergent = {"sgd": lambda: optim.sgd(50.0), "momentum": lambda: optim.momentum(20.0, 0.9),
                 "adam": lambda: optim.adam(1e300),
                 "decay_sgd": lambda: optim.chain(optim.add_weight_decay(1e3), optim.sgd(50.0))}
    for name, build in divergent.items():
        for b in (1, 3):
            out[f"divergence/{name}/batch{b}"] = lambda build=build, b=b: _divergence(build(), b)
    return out


def _encode(leaves: dict) -> dict:
    return {k: [list(v.shape), [float(x).hex() for x in v.ravel()]] for k, v in leaves.items()}


def _decode(entry: dict) -> dict:
    return {k: np.array([float.fromhex(x) for x in values], dtype=np.float64).reshape(shape)
            for k, (shape, values) in entry.items()}


def _recorded() -> dict:
    return json.loads(RECORDED.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(runs()))
def test_every_run_gives_the_recorded_bits(name):
    expected = _decode(_recorded()[name])
    with np.errstate(over="ignore", invalid="ignore"):
        got = runs()[name]()
    assert sorted(got) == sorted(expected), "the run produced other values than were recorded"
    differ = [k for k in expected if not np.array_equal(got[k], expected[k])]
    assert differ == [], f"{name}: not bit-identical to the recorded values: {differ}"


def test_every_recorded_run_is_still_run():
    assert sorted(_recorded()) == sorted(runs())


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    with np.errstate(over="ignore", invalid="ignore"):
        table = {name: _encode(thunk()) for name, thunk in sorted(runs().items())}
    lines = ",\n".join(f"{json.dumps(name)}: {json.dumps(entry, sort_keys=True)}" for name, entry in table.items())
    RECORDED.write_text("{\n" + lines + "\n}\n", encoding="utf-8")
