"""The structured networks: CNN, RNN and ResNet classifiers, the RNN forecaster, and their presets."""

import json

import attrs
import numpy as np
import pytest

import fgraph
import models
from fgraph import ShapeError
from models import presets


def rng(salt=0):
    """A generator of its own for each use, so that a test's draws do not depend on which tests ran before it."""
    return np.random.default_rng([1130, salt])

# Tiny instances keep the finite-difference checks fast.
TINY = {
    "cnn": lambda: models.cnn_classifier((1, 4, 4), 3, filters=(2, 3)),
    "cnn_hidden": lambda: models.cnn_classifier((2, 4, 4), 3, filters=(2,), hidden_units=3),
    "rnn": lambda: models.rnn_classifier((1, 3, 4), 3, hidden=3),
    "rnn_channels": lambda: models.rnn_classifier((2, 3, 2), 3, hidden=2),
    "resnet": lambda: models.resnet_classifier((1, 4, 4), 3, width=2, blocks=1),
    "forecaster": lambda: models.rnn_forecaster(lags=3, hidden=2),
    "forecaster_plain": lambda: models.rnn_forecaster(lags=3, hidden=2, linear_skip=False),
}


def tiny_data(model, n):
    gen = rng(salt=1)  # not the stream the params are drawn from
    x = gen.standard_normal((n, *model.graph.inputs["x"]))
    if model.name == "rnn_forecaster":
        return {"x": x, "y": gen.standard_normal(n)}
    return {"x": x, "y": gen.integers(0, model.config["num_classes"], n)}


@pytest.mark.parametrize("model, params", [
    (models.cnn_classifier(), {"conv1.W": (8, 1, 3, 3), "conv1.b": (8,), "conv2.W": (16, 8, 3, 3), "conv2.b": (16,),
                               "logits.W": (10, 64), "logits.b": (10,)}),
    (models.rnn_classifier(), {"rnn.W_x": (32, 8), "rnn.W_h": (32, 32), "rnn.b": (32,),
                               "logits.W": (10, 32), "logits.b": (10,)}),
    (models.resnet_classifier(), {"stem.W": (16, 1, 3, 3), "stem.b": (16,),
                                  **{f"block{i}.{j}.{p}": s for i in (1, 2) for j in (1, 2)
                                     for p, s in (("W", (16, 16, 3, 3)), ("b", (16,)))},
                                  "logits.W": (10, 64), "logits.b": (10,)}),
    (models.rnn_forecaster(), {"rnn.W_x": (8, 1), "rnn.W_h": (8, 8), "rnn.b": (8,), "out.w": (17,), "out.b": ()}),
    (models.rnn_forecaster(12, 4, linear_skip=False), {"rnn.W_x": (4, 1), "rnn.W_h": (4, 4), "rnn.b": (4,),
                                                       "out.w": (4,), "out.b": ()}),
])
def test_param_names_and_shapes(model, params):
    assert dict(model.graph.params) == params
    assert set(model.graph.outputs) == {"prediction", "objective"}
    assert json.loads(json.dumps(model.config))["name"] == model.name


@pytest.mark.parametrize("build", [models.cnn_classifier, models.rnn_classifier, models.resnet_classifier])
def test_classifiers_read_digit_images_and_predict_probabilities(build):
    model = build()
    assert dict(model.graph.inputs) == {"x": (1, 8, 8), "y": ()}
    assert model.config["prediction"] == "probabilities"
    X = models.datasets.load_digits().X_test[:5]
    p = model.predict(model.init(0), X)
    assert p.shape == (5, 10)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert model.predict(model.init(0), X[0]).shape == (10,)


def test_the_forecaster_predicts_one_number_per_window_and_starts_at_zero():
    gen = rng()
    model = models.rnn_forecaster(lags=9)
    assert dict(model.graph.inputs) == {"x": (9,), "y": ()}
    X = gen.standard_normal((4, 9))
    np.testing.assert_array_equal(model.predict(model.init(0), X), np.zeros(4))  # the read-out starts at zero
    params = {k: gen.standard_normal(s) for k, s in model.graph.params.items()}
    assert model.predict(params, X).shape == (4,) and model.predict(params, X[0]).shape == ()


def test_the_rnn_classifier_reads_rows_with_every_channel_side_by_side():
    gen = rng()
    model = models.rnn_classifier((2, 3, 2), 3, hidden=2)
    params = {k: gen.standard_normal(s) for k, s in model.graph.params.items()}
    X = gen.standard_normal((4, 2, 3, 2))
    rows = X.transpose(0, 2, 1, 3).reshape(4, 3, 4)  # row t: channel 0's row t, then channel 1's
    h = np.zeros((4, 2))
    for t in range(3):
        h = np.tanh(rows[:, t] @ params["rnn.W_x"].T + h @ params["rnn.W_h"].T + params["rnn.b"])
    z = h @ params["logits.W"].T + params["logits.b"]
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(model.predict(params, X), expected / expected.sum(axis=1, keepdims=True), rtol=1e-12)


def test_the_forecaster_with_a_linear_skip_is_an_autoregression_plus_the_rnn():
    gen = rng()
    model = models.rnn_forecaster(lags=3, hidden=2)
    params = {k: gen.standard_normal(s) for k, s in model.graph.params.items()}
    X = gen.standard_normal((5, 3))
    h = np.zeros((5, 2))
    for t in range(3):
        h = np.tanh(X[:, t:t + 1] @ params["rnn.W_x"].T + h @ params["rnn.W_h"].T + params["rnn.b"])
    expected = np.concatenate([X, h], axis=1) @ params["out.w"] + params["out.b"]
    np.testing.assert_allclose(model.predict(params, X), expected, rtol=1e-12)


@pytest.mark.parametrize("kind", sorted(TINY))
def test_gradients_check_on_tiny_instances(kind):
    gen = rng()
    model = TINY[kind]()
    params = {k: 0.7 * gen.standard_normal(s) for k, s in model.graph.params.items()}
    report = fgraph.check_grads(model.graph, params, tiny_data(model, 3))
    assert report.ok, report


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_a_few_epochs_on_a_subset_lower_the_objective(name):
    preset = presets.PRESETS[name]
    model = preset.build()
    if preset.metric == "test_accuracy":
        digits = models.datasets.load_digits()
        data = {"x": digits.X_train[:96], "y": digits.y_train[:96]}
    else:
        sun = models.datasets.load_sunspots()
        windows, scaling = sun.windows(model.config["lags"]), sun.scaling()
        data = {"x": scaling.apply(windows.X_train), "y": scaling.apply(windows.y_train)}
    result = fgraph.train.fit(model.graph, model.init(0), data, optimizer=preset.make_optimizer(),
                              epochs=4, batch_size=32, seed=0)
    before, after = model.objective(model.init(0), data), model.objective(result.params, data)
    assert np.isfinite(after) and after < 0.9 * before


# ------------------------------------------------------------------ presets


def test_every_preset_builds_its_model_and_met_its_target():
    assert set(presets.PRESETS) == {"cnn_classifier", "rnn_classifier", "resnet_classifier", "rnn_forecaster"}
    for name, preset in presets.PRESETS.items():
        assert preset.build().name == name
        assert preset.meets(preset.reached)
        assert preset.make_optimizer().name.startswith(preset.optimizer)
        assert json.loads(json.dumps(preset.to_json()))["kwargs"] == json.loads(json.dumps(dict(preset.kwargs)))
    assert presets.PRESETS["rnn_forecaster"].target == pytest.approx(
        models.datasets.ar_baseline(models.datasets.load_sunspots(), order=9).rmse, abs=5e-3)


def test_the_forecaster_preset_reproduces_its_rmse_and_beats_ar9():
    preset = presets.PRESETS["rnn_forecaster"]
    outcome = presets.run(preset)  # 300 epochs of 8 steps: well under a second
    assert outcome.metric == "test_rmse"
    assert outcome.value == pytest.approx(preset.reached, abs=1e-3)
    assert outcome.value < models.datasets.ar_baseline(models.datasets.load_sunspots(), order=9).rmse


def test_a_digits_preset_runs_and_scores_accuracy():
    outcome = presets.run(attrs.evolve(presets.PRESETS["rnn_classifier"], epochs=1))
    assert outcome.metric == "test_accuracy" and 0.3 < outcome.value <= 1.0
    assert len(outcome.fit.history) == 1


def test_preset_errors_name_the_field():
    with pytest.raises(ValueError, match="Preset: model must be one of"):
        attrs.evolve(presets.PRESETS["cnn_classifier"], model="lstm")
    with pytest.raises(ValueError, match="Preset: metric must be one of"):
        attrs.evolve(presets.PRESETS["cnn_classifier"], metric="f1")
    with pytest.raises(TypeError, match="run: preset must be a models.presets.Preset"):
        presets.run("cnn_classifier")


# ------------------------------------------------------------------- errors


@pytest.mark.parametrize("build, error, message", [
    (lambda: models.rnn_classifier(hidden=0), ValueError, "rnn_classifier: hidden must be a positive int, got 0"),
    (lambda: models.rnn_classifier(hidden=2.5), TypeError, "rnn_classifier: hidden"),
    (lambda: models.rnn_classifier(activation="gelu"), ValueError, "rnn_classifier: layer 'rnn': unknown activation"),
    (lambda: models.rnn_forecaster(lags=0), ValueError, "rnn_forecaster: lags must be a positive int"),
    (lambda: models.rnn_forecaster(hidden=-1), ValueError, "rnn_forecaster: hidden must be a positive int"),
    (lambda: models.rnn_forecaster(linear_skip=1), TypeError, "rnn_forecaster: linear_skip must be True or False"),
    (lambda: models.cnn_classifier(filters=()), ValueError, "cnn_classifier: filters must not be empty"),
    (lambda: models.cnn_classifier(filters=(8, 0)), ValueError, r"cnn_classifier: filters\[1\]"),
    (lambda: models.cnn_classifier(filters=(4, 4, 4, 4)), ValueError,
     r"cnn_classifier: 4 poolings by 2 need images of at least 16 pixels a side; image_shape \(1, 8, 8\) has 8"),
    (lambda: models.cnn_classifier(image_shape=(8, 8)), TypeError, "cnn_classifier: image_shape must be"),
    (lambda: models.cnn_classifier(num_classes=1), ValueError, "cnn_classifier: num_classes must be at least 2"),
    (lambda: models.resnet_classifier(kernel=2), ValueError, "resnet_classifier: kernel must be odd"),
    (lambda: models.resnet_classifier(width=0), ValueError, "resnet_classifier: width"),
    (lambda: models.resnet_classifier(blocks=4), ValueError, "resnet_classifier: 4 poolings"),
])
def test_bad_arguments_are_refused_naming_them(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_data_of_the_wrong_rank_is_a_shape_error_naming_the_input():
    model = models.cnn_classifier()
    with pytest.raises(ShapeError, match="'x'"):
        model.predict(model.init(0), np.zeros((5, 64)))
