"""Dataset loaders: contents, featurize/target, and refusal of bad files."""

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import models
from models.datasets import DataFileError, load_blobs, load_regression_problem, step_features

DATA = Path(__file__).resolve().parent.parent / "data"
THRESHOLDS = np.linspace(0, 1, 400, endpoint=False)


@pytest.fixture(scope="module")
def problem():
    return load_regression_problem()


@pytest.fixture(scope="module")
def blobs():
    return load_blobs()


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
    for name in ("hw7_regression.npz", "multiclass_blobs.npz"):
        listed = re.search(rf"`{re.escape(name)}` \| `([0-9a-f]{{64}})`", readme)
        assert listed, f"data/README.md lists no sha256 for {name}"
        assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == listed.group(1)


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
    "label 3": (with_(B, "y", np.where(np.arange(500) == 0, 3, B["y"])), r"'y': every label must be in \{0, 1, 2\}, found \[3\]"),
    "negative label": (with_(B, "y", -B["y"]), "'y': every label must be in"),
    "float labels": (with_(B, "y", B["y"].astype(np.float64)), "'y' must hold integer class labels, got dtype float64"),
    "wrong shape": (with_(B, "X", B["X"][:, :1]), r"'X' has shape \(500, 1\), expected \(500, 2\)"),
    "inf": (with_(B, "X", np.where(np.arange(500)[:, None] == 3, np.inf, B["X"])), "'X' contains NaN or inf"),
    "foreign archive": (R, r"lacks the arrays \['X', 'y'\]"),
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


@pytest.mark.parametrize("loader", [load_regression_problem, load_blobs])
def test_loaders_refuse_files_that_are_not_npz_archives(tmp_path, loader):
    text = tmp_path / "notes.npz"
    text.write_text("not an archive\n")
    with pytest.raises(DataFileError, match="not a readable NumPy .npz archive"):
        loader(text)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(DataFileError, match="single array, not an .npz archive"):
        loader(single)


@pytest.mark.parametrize("loader", [load_regression_problem, load_blobs])
def test_loaders_never_unpickle(tmp_path, loader):
    arrays = R if loader is load_regression_problem else B
    key = sorted(arrays)[0]
    path = tmp_path / "pickled.npz"
    np.savez(path, **with_(arrays, key, np.array([{"evil": 1}], dtype=object)))
    with pytest.raises(DataFileError, match=f"array '{key}': cannot be read without unpickling"):
        loader(path)


@pytest.mark.parametrize("loader, name", [(load_regression_problem, "hw7_regression.npz"), (load_blobs, "multiclass_blobs.npz")])
def test_a_missing_file_names_the_path_and_the_source(tmp_path, loader, name):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope.npz")) + ".*README"):
        loader(tmp_path / "nope.npz")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / name))):
        loader(tmp_path)  # a folder without the file
