"""Dataset loaders: contents, featurize/target, windows, scaling, the AR baseline, and refusal of bad files."""

import hashlib
import re
from pathlib import Path

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import models
from models.datasets import (
    DataFileError,
    Scaling,
    ar_baseline,
    load_blobs,
    load_digits,
    load_regression_problem,
    load_sunspots,
    step_features,
)

DATA = Path(__file__).resolve().parent.parent / "data"
THRESHOLDS = np.linspace(0, 1, 400, endpoint=False)


@pytest.fixture(scope="module")
def problem():
    return load_regression_problem()


@pytest.fixture(scope="module")
def blobs():
    return load_blobs()


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def sunspots():
    return load_sunspots()


def raw(name):
    with np.load(DATA / name, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def regression_arrays():
    with np.load(DATA / "hw7_regression.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# ------------------------------------------------------------------ contents


def test_regression_problem_shapes_dtypes_and_read_only(problem):
    shapes = {"x_train": (100,), "y_train": (100,), "x_test": (900,), "y_test": (900,), "coefs_true": (400,)}
    raw = regression_arrays()
    for key, shape in shapes.items():
        arr = getattr(problem, key)
        assert arr.shape == shape and arr.dtype == np.float64
        np.testing.assert_array_equal(arr, raw[key])
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 1.0
    assert np.count_nonzero(problem.coefs_true) == 10


def test_blobs_are_the_first_300_and_last_200_points(blobs):
    with np.load(DATA / "multiclass_blobs.npz", allow_pickle=False) as z:
        X, y = z["X"], z["y"]
    np.testing.assert_array_equal(blobs.X_train, X[:300])
    np.testing.assert_array_equal(blobs.y_train, y[:300])
    np.testing.assert_array_equal(blobs.X_test, X[300:])
    np.testing.assert_array_equal(blobs.y_test, y[300:])
    assert blobs.X_train.dtype == np.float64 and blobs.y_train.dtype == np.int64
    assert set(np.unique(blobs.y_train)) == set(np.unique(blobs.y_test)) == {0, 1, 2}
    with pytest.raises(ValueError, match="read-only"):
        blobs.y_test[0] = 0


def test_default_path_is_the_repository_data_folder(problem):
    assert models.datasets.DATA_DIR == DATA
    again = load_regression_problem(DATA / "hw7_regression.npz")
    by_folder = load_regression_problem(DATA)
    for key in ("x_train", "y_test", "coefs_true"):
        np.testing.assert_array_equal(getattr(again, key), getattr(problem, key))
        np.testing.assert_array_equal(getattr(by_folder, key), getattr(problem, key))


def test_files_match_the_digests_in_the_readme():
    readme = (DATA / "README.md").read_text()
    for name in ("hw7_regression.npz", "multiclass_blobs.npz", "digits.npz", "sunspots.npz"):
        listed = re.search(rf"`{re.escape(name)}` \| `([0-9a-f]{{64}})`", readme)
        assert listed, f"data/README.md lists no sha256 for {name}"
        assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == listed.group(1)


def test_digits_are_the_stored_images_over_16_split_1347_450_in_stored_order(digits):
    d = raw("digits.npz")
    images, labels = d["images"], d["labels"]
    assert digits.X_train.shape == (1347, 1, 8, 8) and digits.X_test.shape == (450, 1, 8, 8)
    assert digits.y_train.shape == (1347,) and digits.y_test.shape == (450,)
    assert digits.X_train.dtype == np.float64 and digits.y_train.dtype == np.int64
    np.testing.assert_array_equal(digits.X_train[:, 0] * 16, images[:1347])
    np.testing.assert_array_equal(digits.X_test[:, 0] * 16, images[1347:])
    np.testing.assert_array_equal(digits.y_train, labels[:1347])
    np.testing.assert_array_equal(digits.y_test, labels[1347:])
    X = np.concatenate([digits.X_train, digits.X_test])
    assert X.min() == 0.0 and X.max() == 1.0
    assert set(np.unique(digits.y_train)) == set(np.unique(digits.y_test)) == set(range(10))
    assert digits.num_classes == 10 and digits.image_shape == (1, 8, 8) == digits.X_test.shape[1:]
    for arr in (digits.X_train, digits.y_train, digits.X_test, digits.y_test):
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 0


def test_sunspots_are_the_stored_years_and_activity_split_at_1950(sunspots):
    s = raw("sunspots.npz")
    np.testing.assert_array_equal(sunspots.years, np.arange(1700, 2009))
    np.testing.assert_array_equal(sunspots.activity, s["activity"])
    assert sunspots.years.dtype == np.int64 and sunspots.activity.dtype == np.float64
    assert sunspots.split == 250 and sunspots.split_year == 1950 == sunspots.years[sunspots.split]
    for arr in (sunspots.years, sunspots.activity):
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 0


# ------------------------------------------------------ sunspot windows, scaling


@pytest.mark.parametrize("lags", [1, 2, 9, 30, 249])
def test_windows_hold_the_lags_years_before_each_target(sunspots, lags):
    w = sunspots.windows(lags)
    by_year = dict(zip(sunspots.years.tolist(), sunspots.activity.tolist()))
    assert w.lags == lags
    assert w.X_train.shape == (250 - lags, lags) and w.y_train.shape == w.years_train.shape == (250 - lags,)
    assert w.X_test.shape == (59, lags) and w.y_test.shape == w.years_test.shape == (59,)
    np.testing.assert_array_equal(w.years_train, np.arange(1700 + lags, 1950))
    np.testing.assert_array_equal(w.years_test, np.arange(1950, 2009))
    for X, y, years in ((w.X_train, w.y_train, w.years_train), (w.X_test, w.y_test, w.years_test)):
        for inputs, target, t in zip(X, y, years.tolist()):
            assert target == by_year[t]
            np.testing.assert_array_equal(inputs, [by_year[u] for u in range(t - lags, t)])
        with pytest.raises(ValueError, match="read-only"):
            X[0, 0] = 0.0


def test_the_first_test_window_reaches_back_into_the_training_years(sunspots):
    w = sunspots.windows(9)
    assert w.years_test[0] == 1950 and w.y_test[0] == sunspots.activity[250]
    np.testing.assert_array_equal(w.X_test[0], sunspots.activity[241:250])  # 1941..1949


@pytest.mark.parametrize("lags, error, message", [
    (0, ValueError, r"lags must be in 1 \.\. 249.*got 0"),
    (250, ValueError, r"lags must be in 1 \.\. 249.*got 250"),
    (-3, ValueError, "got -3"),
    (2.0, TypeError, "lags must be an int, got float"),
    (True, TypeError, "lags must be an int, got bool"),
    ("9", TypeError, "lags must be an int, got str"),
])
def test_windows_refuse_bad_lags(sunspots, lags, error, message):
    with pytest.raises(error, match=message):
        sunspots.windows(lags)


def test_scaling_uses_the_training_years_only(sunspots):
    sc = sunspots.scaling()
    train = sunspots.activity[sunspots.years < 1950]
    assert sc.mean == pytest.approx(train.mean(), rel=1e-14) and sc.std == pytest.approx(train.std(), rel=1e-14)
    z = sc.apply(train)
    assert abs(z.mean()) < 1e-12 and z.std() == pytest.approx(1.0, rel=1e-12)
    # The test years can change without moving the scaling; a training year cannot.
    test_changed = attrs.evolve(sunspots, activity=np.where(sunspots.years >= 1950, 1e6, sunspots.activity))
    assert test_changed.scaling() == sc
    train_changed = attrs.evolve(sunspots, activity=np.where(sunspots.years == 1949, 1e3, sunspots.activity))
    assert train_changed.scaling().mean != sc.mean


@settings(deadline=None, max_examples=40)
@given(x=st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=10))
def test_scaling_invert_undoes_apply(sunspots, x):
    sc = sunspots.scaling()
    x = np.array(x)
    np.testing.assert_allclose(sc.invert(sc.apply(x)), x, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(sc.apply(x), (x - sc.mean) / sc.std, rtol=0, atol=0)


def test_scaling_refuses_what_is_not_numbers():
    with pytest.raises(TypeError, match=r"Scaling.apply: expected real numbers, got dtype <U1"):
        Scaling(1.0, 2.0).apply(["a"])
    with pytest.raises(TypeError, match="Scaling.invert: expected real numbers, got dtype bool"):
        Scaling(1.0, 2.0).invert(np.array([True]))


# ------------------------------------------------------------ the AR baseline


def test_ar9_fits_least_squares_and_forecasts_1950_to_2008(sunspots):
    fit = ar_baseline(sunspots, order=9)
    y, years = sunspots.activity, sunspots.years
    # Independently: the normal equations over t = 1709..1949, rows (1, y_{t-1}, ..., y_{t-9}).
    def row(i):
        return [1.0] + [y[i - k] for k in range(1, 10)]
    train = [i for i in range(len(y)) if 1709 <= years[i] < 1950]
    A, b = np.array([row(i) for i in train]), y[train]
    beta = np.linalg.solve(A.T @ A, A.T @ b)
    assert fit.order == 9 and fit.coefs.shape == (9,)
    np.testing.assert_allclose(fit.intercept, beta[0], rtol=1e-8)
    np.testing.assert_allclose(fit.coefs, beta[1:], rtol=1e-8, atol=1e-10)  # coefs[k-1] multiplies y_{t-k}
    test = np.flatnonzero(years >= 1950)
    expected = np.array([fit.intercept + sum(fit.coefs[k - 1] * y[i - k] for k in range(1, 10)) for i in test])
    np.testing.assert_allclose(fit.predictions, expected, rtol=1e-12)
    assert fit.predictions.shape == (59,) and not fit.predictions.flags.writeable
    assert fit.rmse == pytest.approx(np.sqrt(np.mean((expected - y[test]) ** 2)), rel=1e-12)


def test_ar9_rmse_is_sane(sunspots):
    fit = ar_baseline(sunspots)
    persistence = np.sqrt(np.mean((sunspots.activity[249:-1] - sunspots.activity[250:]) ** 2))
    assert fit.order == 9 and np.isfinite(fit.rmse) and np.isfinite(fit.train_rmse)
    assert fit.rmse == pytest.approx(18.7486, abs=1e-3)  # as data/README.md states
    assert fit.train_rmse < fit.rmse < persistence  # 13.99 < 18.75 < 33.18
    assert fit.rmse < 0.5 * sunspots.activity[250:].std()


def test_ar_baseline_refuses_bad_arguments(sunspots, blobs):
    with pytest.raises(TypeError, match="problem must be the Sunspots of load_sunspots\\(\\), got Blobs"):
        ar_baseline(blobs)
    with pytest.raises(ValueError, match="order 125 leaves 125 training targets for 126 coefficients"):
        ar_baseline(sunspots, order=125)
    with pytest.raises(TypeError, match="order must be an int"):
        ar_baseline(sunspots, order=9.0)
    assert np.isfinite(ar_baseline(sunspots, order=124).rmse)


# -------------------------------------------------------- featurize and target


@settings(deadline=None, max_examples=50)
@given(x=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=20))
def test_featurize_is_the_step_function_definition(problem, x):
    phi = problem.featurize(np.array(x))
    assert phi.shape == (len(x), 400) and phi.dtype == np.float64
    for i, xi in enumerate(x):
        expected = [1.0 if xi >= THRESHOLDS[j] else 0.0 for j in range(400)]
        np.testing.assert_array_equal(phi[i], expected)


@pytest.mark.parametrize("j", [0, 1, 3, 25, 199, 280, 399])
def test_featurize_switches_on_exactly_at_each_threshold(problem, j):
    at, below = THRESHOLDS[j], np.nextafter(THRESHOLDS[j], -np.inf)
    phi = problem.featurize(np.array([at, below]))
    assert phi[0].sum() == j + 1 and phi[0, j] == 1.0  # 1[x >= t_j]: t_j itself is on
    assert phi[1].sum() == j and phi[1, j] == 0.0
    assert THRESHOLDS[j] == pytest.approx(j / 400, rel=1e-15, abs=0)  # linspace is j/400 up to an ulp


def test_featurize_accepts_a_scalar_and_refuses_other_shapes(problem):
    np.testing.assert_array_equal(problem.featurize(0.5), problem.featurize(np.array([0.5])))
    assert problem.featurize(0.5).shape == (1, 400)
    assert problem.target(0.5).shape == (1,)
    with pytest.raises(ValueError, match="1-D"):
        problem.featurize(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        problem.featurize([0.1, np.nan])
    with pytest.raises(TypeError, match="real numbers"):
        problem.featurize(np.array(["a"]))


@settings(deadline=None, max_examples=30)
@given(x=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=20))
def test_target_is_the_features_times_the_true_coefficients(problem, x):
    x = np.array(x)
    # Σ_j c_j 1[x >= t_j]: a cumulative sum of the coefficients up to the last threshold <= x.
    expected = np.array([problem.coefs_true[THRESHOLDS <= xi].sum() for xi in x])
    np.testing.assert_allclose(problem.target(x), expected, rtol=1e-12, atol=1e-12)


def test_responses_are_target_plus_the_generators_noise(problem):
    # y = target(x) + 0.25 t(6): the residuals have mean about 0 and std about 0.31.
    # A featurization off by one threshold, or the wrong coefficients, would not.
    x = np.concatenate([problem.x_train, problem.x_test])
    y = np.concatenate([problem.y_train, problem.y_test])
    residual = y - problem.target(x)
    assert abs(residual.mean()) < 0.05
    assert 0.25 < residual.std() < 0.37
    shifted = y - step_features(x) @ np.roll(problem.coefs_true, 8)
    assert shifted.std() > 0.4  # the check above would catch a shifted featurization


# ---------------------------------------------------------------- bad files


def good_blobs():
    with np.load(DATA / "multiclass_blobs.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def with_(arrays, key, value):
    out = dict(arrays)
    if value is None:
        del out[key]
    else:
        out[key] = value
    return out


R, B = regression_arrays(), good_blobs()
BAD_REGRESSION = {
    "missing key": (with_(R, "coefs_true", None), r"lacks the arrays \['coefs_true'\]"),
    "wrong shape": (with_(R, "x_train", R["x_train"][:50]), r"'x_train' has shape \(50,\), expected \(100,\)"),
    "float32": (with_(R, "y_test", R["y_test"].astype(np.float32)), "'y_test' has dtype float32, expected float64"),
    "ints": (with_(R, "coefs_true", np.zeros(400, dtype=np.int64)), "'coefs_true' has dtype int64"),
    "nan": (with_(R, "y_train", np.where(np.arange(100) == 7, np.nan, R["y_train"])), "'y_train' contains NaN"),
    "x outside [0, 1)": (with_(R, "x_test", R["x_test"] + 1.0), r"'x_test': inputs must lie in \[0, 1\)"),
    "foreign archive": ({"X": B["X"], "y": B["y"]}, "lacks the arrays"),
}
BAD_BLOBS = {
    "label 3": (
        with_(B, "y", np.where(np.arange(500) == 0, 3, B["y"])), r"'y': every label must be in \{0, 1, 2\}, found \[3\]"
    ),
    "negative label": (with_(B, "y", -B["y"]), "'y': every label must be in"),
    "float labels": (with_(B, "y", B["y"].astype(np.float64)), "'y' must hold integer class labels, got dtype float64"),
    "wrong shape": (with_(B, "X", B["X"][:, :1]), r"'X' has shape \(500, 1\), expected \(500, 2\)"),
    "inf": (with_(B, "X", np.where(np.arange(500)[:, None] == 3, np.inf, B["X"])), "'X' contains NaN or inf"),
    "foreign archive": (R, r"lacks the arrays \['X', 'y'\]"),
}


D, S = raw("digits.npz"), raw("sunspots.npz")
BAD_DIGITS = {
    "missing key": (with_(D, "labels", None), r"lacks the arrays \['labels'\]"),
    "pixel 17": (
        with_(D, "images", np.where(np.arange(8) == 3, 17, D["images"])),
        r"'images': every pixel count must be in \{0, \.\.\., 16\}, found \[17\]",
    ),
    "negative pixel": (
        with_(D, "images", -D["images"].astype(np.int64)), r"'images': every pixel count must be in .*found \[-16, -15"
    ),
    "scaled images": (
        with_(D, "images", D["images"] / 16.0), "'images' must hold integer pixel counts, got dtype float64"
    ),
    "label 10": (
        with_(D, "labels", np.where(np.arange(1797) == 5, 10, D["labels"])),
        r"'labels': every label must be in \{0, \.\.\., 9\}, found \[10\]",
    ),
    "flat images": (
        with_(D, "images", D["images"].reshape(1797, 64)), r"'images' has shape \(1797, 64\), expected \(1797, 8, 8\)"
    ),
    "foreign archive": (B, r"lacks the arrays \['images', 'labels'\]"),
}
BAD_SUNSPOTS = {
    "missing key": (with_(S, "year", None), r"lacks the arrays \['year'\]"),
    "years shifted": (
        with_(S, "year", S["year"] + 1), r"'year': every year must be in \{1700, \.\.\., 2008\}, found \[2009\]"
    ),
    "years swapped": (
        with_(S, "year", S["year"][np.r_[1, 0, 2:309]]),
        "'year': years must be 1700 ... 2008 in order, found 1701 at position 0",
    ),
    "float years": (
        with_(S, "year", S["year"].astype(np.float64)), "'year' must hold integer years, got dtype float64"
    ),
    "nan": (
        with_(S, "activity", np.where(np.arange(309) == 10, np.nan, S["activity"])), "'activity' contains NaN or inf"
    ),
    "negative": (
        with_(S, "activity", np.where(np.arange(309) == 10, -1.0, S["activity"])),
        "'activity': sunspot numbers are >= 0, found -1.0 in 1710",
    ),
    "float32": (
        with_(S, "activity", S["activity"].astype(np.float32)), "'activity' has dtype float32, expected float64"
    ),
    "only to 1949": (
        with_(with_(S, "year", S["year"][:250]), "activity", S["activity"][:250]),
        r"'year' has shape \(250,\), expected \(309,\)",
    ),
    "foreign archive": (R, r"lacks the arrays \['year', 'activity'\]"),
}
LOADERS = {
    load_regression_problem: (R, "hw7_regression.npz"), load_blobs: (B, "multiclass_blobs.npz"),
    load_digits: (D, "digits.npz"), load_sunspots: (S, "sunspots.npz"),
}


@pytest.mark.parametrize("case", sorted(BAD_REGRESSION))
def test_regression_loader_refuses_bad_arrays(tmp_path, case):
    arrays, message = BAD_REGRESSION[case]
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataFileError, match=re.escape(str(path)) + ".*" + message):
        load_regression_problem(path)


@pytest.mark.parametrize("case", sorted(BAD_BLOBS))
def test_blobs_loader_refuses_bad_arrays(tmp_path, case):
    arrays, message = BAD_BLOBS[case]
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataFileError, match=re.escape(str(path)) + ".*" + message):
        load_blobs(path)


@pytest.mark.parametrize("case", sorted(BAD_DIGITS))
def test_digits_loader_refuses_bad_arrays(tmp_path, case):
    arrays, message = BAD_DIGITS[case]
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataFileError, match=re.escape(str(path)) + ".*" + message):
        load_digits(path)


@pytest.mark.parametrize("case", sorted(BAD_SUNSPOTS))
def test_sunspots_loader_refuses_bad_arrays(tmp_path, case):
    arrays, message = BAD_SUNSPOTS[case]
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataFileError, match=re.escape(str(path)) + ".*" + message):
        load_sunspots(path)


@pytest.mark.parametrize("loader", list(LOADERS), ids=lambda f: f.__name__)
def test_loaders_refuse_files_that_are_not_npz_archives(tmp_path, loader):
    text = tmp_path / "notes.npz"
    text.write_text("not an archive\n")
    with pytest.raises(DataFileError, match="not a readable NumPy .npz archive"):
        loader(text)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(DataFileError, match="single array, not an .npz archive"):
        loader(single)


@pytest.mark.parametrize("loader", list(LOADERS), ids=lambda f: f.__name__)
def test_loaders_never_unpickle(tmp_path, loader):
    arrays = LOADERS[loader][0]
    key = min(arrays)
    path = tmp_path / "pickled.npz"
    np.savez(path, **with_(arrays, key, np.array([{"evil": 1}], dtype=object)))
    with pytest.raises(DataFileError, match=f"array '{key}': cannot be read without unpickling"):
        loader(path)


@pytest.mark.parametrize("loader", list(LOADERS), ids=lambda f: f.__name__)
def test_a_missing_file_names_the_path_and_the_source(tmp_path, loader):
    name = LOADERS[loader][1]
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope.npz")) + ".*README"):
        loader(tmp_path / "nope.npz")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / name))):
        loader(tmp_path)  # a folder without the file


@pytest.mark.parametrize("loader", list(LOADERS), ids=lambda f: f.__name__)
def test_loaders_read_a_good_copy_given_by_file_or_folder(tmp_path, loader):
    arrays, name = LOADERS[loader]
    np.savez(tmp_path / name, **arrays)
    by_file, by_folder = loader(tmp_path / name), loader(tmp_path)
    first = attrs.fields(type(by_file))[0].name
    np.testing.assert_array_equal(getattr(by_file, first), getattr(loader(), first))
    np.testing.assert_array_equal(getattr(by_folder, first), getattr(loader(), first))
