r"""Loaders for the datasets in ``data/`` (provenance: data/README.md).

The assignment's regression problem and blobs; the handwritten digits (for
convolutional and recurrent classifiers) and the yearly sunspot numbers (for
one-step-ahead forecasting, with the AR(9) baseline that forecasters must match).

Files are ``.npz`` archives read with ``allow_pickle=False``: nothing is ever
unpickled. Every array is checked (present, shape, dtype, finite, labels in
range) and returned read-only, so a corrupted or foreign file is refused with
a message naming the file and the key instead of failing later, deep inside
training.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import attrs
import numpy as np

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
REGRESSION_FILE = "hw7_regression.npz"
BLOBS_FILE = "multiclass_blobs.npz"
DIGITS_FILE = "digits.npz"
SUNSPOTS_FILE = "sunspots.npz"

NUM_FEATURES = 400  # step-function features of the regression problem
NUM_CLASSES = 3
BLOBS_TRAIN = 300  # the assignment trains on the first 300 blobs and tests on the last 200
DIGITS_COUNT, DIGITS_TRAIN, DIGITS_CLASSES = 1797, 1347, 10
DIGITS_MAX_PIXEL = 16  # each pixel counts the on-pixels of a 4 x 4 block
SUNSPOTS_YEARS = range(1700, 2009)
SUNSPOTS_TEST_FROM = 1950  # forecasts are trained on 1700-1949 and tested on 1950-2008
ORIGIN = {
    REGRESSION_FILE: "the course's hw7 data.pickle converted to .npz (nyu-ds1003/mlcourse, CC BY 4.0)",
    BLOBS_FILE: "the assignment's three Gaussian blobs (make_blobs after numpy.random.seed(2))",
    DIGITS_FILE: "the UCI optical handwritten digits, 8 x 8, as scikit-learn ships them (CC BY 4.0)",
    SUNSPOTS_FILE: "NOAA's yearly sunspot numbers 1700-2008, as statsmodels ships them (public domain)",
}


class DataFileError(ValueError):
    """A dataset file exists but is not what the loader expects (names the file and key)."""


def step_features(x, num_features: int = NUM_FEATURES) -> np.ndarray:
    r"""φ(x)_j = 1[x >= t_j] with t_j = j / num_features, j = 0 … num_features-1.

    The thresholds are ``np.linspace(0, 1, num_features, endpoint=False)``
    exactly, as the course's generator builds them. ``x`` is a scalar or a
    1-D array of n inputs; the result is float64 of shape (n, num_features)
    (n = 1 for a scalar).
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"featurize: x must hold real numbers, got dtype {arr.dtype}")
    arr = np.atleast_1d(arr.astype(np.float64, copy=False))
    if arr.ndim != 1:
        raise ValueError(f"featurize: x must be a scalar or a 1-D array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("featurize: x contains NaN or inf")
    thresholds = np.linspace(0.0, 1.0, num_features, endpoint=False)
    return (arr[:, None] >= thresholds).astype(np.float64)


@attrs.frozen(eq=False)
class RegressionProblem:
    r"""The 1-D regression problem: y = target(x) + noise on x ∈ [0, 1).

    ``x_train``, ``y_train`` (100,); ``x_test``, ``y_test`` (900,);
    ``coefs_true`` (400,): target(x) = φ(x) · coefs_true with the step
    features φ of :meth:`featurize`. All arrays are read-only float64.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    coefs_true: np.ndarray

    def featurize(self, x) -> np.ndarray:
        """φ(x): (n, 400) float64 step features 1[x >= j/400] (see :func:`step_features`)."""
        return step_features(x, self.coefs_true.shape[0])

    def target(self, x) -> np.ndarray:
        """The noiseless target φ(x) · coefs_true, shape (n,)."""
        return self.featurize(x) @ self.coefs_true


@attrs.frozen(eq=False)
class Blobs:
    """The 3-class problem: ``X_train`` (300, 2), ``y_train`` (300,), ``X_test`` (200, 2),
    ``y_test`` (200,); features float64, labels int64 in {0, 1, 2}; all read-only."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    num_classes: int = NUM_CLASSES


@attrs.frozen(eq=False)
class Digits:
    r"""The handwritten digits: 8 x 8 images with one channel, and their digit.

    ``X_train`` (1347, 1, 8, 8) and ``X_test`` (450, 1, 8, 8): float64 in
    [0, 1], the pixel counts 0..16 divided by 16 (exactly), laid out
    (example, channel, height, width) as ``conv2d`` takes them. ``y_train``
    (1347,) and ``y_test`` (450,): int64 digits 0..9. All read-only.

    The split keeps the stored order: the first 1,347 images train, the last
    450 test. The images were cut from forms filled in by hand, so
    neighbouring images tend to share a writer: this split is harder than a
    shuffled one (1-nearest-neighbour test error 3.8%, against about 1.1%
    for shuffled 1,347 / 450 splits). The file does not record writers, so
    disjoint writers in train and test are likely, not guaranteed.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    num_classes: int = DIGITS_CLASSES
    image_shape: tuple = (1, 8, 8)


@attrs.frozen
class Scaling:
    r"""An affine standardisation z = (x - mean) / std and its inverse x = mean + std · z.

    Made by :meth:`Sunspots.scaling` from the training years only, so that
    nothing about the test years leaks into a model. A root-mean-square error
    measured on z is ``std`` times smaller than the same error on x:
    RMSE_x = std · RMSE_z.
    """

    mean: float
    std: float

    def apply(self, x) -> np.ndarray:
        """(x - mean) / std, elementwise, as a new float64 array."""
        return (_real(x, "Scaling.apply") - self.mean) / self.std

    def invert(self, z) -> np.ndarray:
        """mean + std · z, elementwise: undoes :meth:`apply` (up to rounding)."""
        return self.mean + self.std * _real(z, "Scaling.invert")


@attrs.frozen(eq=False)
class Windows:
    r"""One-step-ahead forecasting pairs: predict y_t from (y_{t-lags}, …, y_{t-1}).

    Row i of ``X_train`` (n_train, lags) holds the activity of the ``lags``
    years before ``years_train[i]``, oldest first (column j is year
    t - lags + j, so the last column is year t - 1: time order, as a
    recurrent network reads it); ``y_train[i]`` is the activity of year
    t = ``years_train[i]``. Training targets are the years 1700 + lags …
    1949 (n_train = 250 - lags); the test targets are exactly 1950 … 2008
    (59), whose inputs may reach back into the training years. All arrays are
    read-only; activity is float64, years int64.
    """

    lags: int
    X_train: np.ndarray
    y_train: np.ndarray
    years_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    years_test: np.ndarray


@attrs.frozen(eq=False)
class Sunspots:
    r"""Yearly sunspot activity 1700-2008 for one-step-ahead forecasting.

    ``years`` (309,) int64, 1700 … 2008 in order; ``activity`` (309,) float64,
    non-negative; ``split`` = 250, the index of 1950: years before it train,
    1950 … 2008 test. All arrays are read-only.
    """

    years: np.ndarray
    activity: np.ndarray
    split: int

    @property
    def split_year(self) -> int:
        """The first test year, 1950."""
        return int(self.years[self.split])

    def windows(self, lags: int) -> Windows:
        """The (inputs, targets) pairs of the previous ``lags`` years (see :class:`Windows`)."""
        lags = _lags(lags, self.split, "lags")
        inputs = np.lib.stride_tricks.sliding_window_view(self.activity[:-1], lags)  # row i precedes target i + lags
        targets, years = self.activity[lags:], self.years[lags:]
        cut = self.split - lags  # row of the first test target
        parts = {
            "X_train": inputs[:cut], "y_train": targets[:cut], "years_train": years[:cut],
            "X_test": inputs[cut:], "y_test": targets[cut:], "years_test": years[cut:],
        }
        return Windows(lags=lags, **{k: _frozen(np.ascontiguousarray(v)) for k, v in parts.items()})

    def scaling(self) -> Scaling:
        r"""The standardisation by the training years' mean and (population) standard deviation.

        mean = (1/n) Σ_{t<1950} y_t and std = √((1/n) Σ_{t<1950} (y_t - mean)²),
        n = 250: the test years 1950-2008 play no part.
        """
        train = self.activity[:self.split]
        return Scaling(mean=float(train.mean()), std=float(train.std()))


@attrs.frozen(eq=False)
class ARBaseline:
    r"""A linear autoregression ŷ_t = intercept + Σ_{k=1}^{order} coefs[k-1] · y_{t-k}.

    Fitted by least squares on the training targets (1700 + order … 1949).
    ``predictions`` (59,) are its one-step forecasts of 1950 … 2008 from the
    observed previous years; ``rmse`` = √(mean((predictions - y)²)) over those
    59 years, ``train_rmse`` the same over the training targets.
    """

    order: int
    intercept: float
    coefs: np.ndarray
    predictions: np.ndarray
    rmse: float
    train_rmse: float


# -------------------------------------------------------------------- reading


def _resolve(path, filename: str) -> Path:
    """The file to read: the default in data/, a given file, or ``filename`` in a given folder."""
    p = DATA_DIR / filename if path is None else Path(path)
    if p.is_dir():
        p = p / filename
    if not p.is_file():
        raise FileNotFoundError(
            f"dataset file {str(p)!r} not found; it is {ORIGIN[filename]}."
            f" The project keeps it in {str(DATA_DIR)!r} (see data/README.md there)."
        )
    return p


@attrs.frozen
class _Ints:
    """An integer array whose entries must lie in ``values``; ``plural``/``each`` name them in errors."""

    values: range
    plural: str = "class labels"
    each: str = "label"


def _labels(num_classes: int) -> _Ints:
    return _Ints(range(num_classes))


def _read_npz(p: Path, specs: dict) -> dict:
    """Every array that ``specs`` names, checked: ``{key: (shape, kind)}``, kind "float" or an :class:`_Ints`."""
    try:
        archive = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataFileError(f"{str(p)!r} is not a readable NumPy .npz archive: {e}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataFileError(f"{str(p)!r} holds a single array, not an .npz archive of named arrays")
    with archive:
        missing = [k for k in specs if k not in archive.files]
        if missing:
            raise DataFileError(f"{str(p)!r} lacks the arrays {missing}; it has {sorted(archive.files)}")
        out = {}
        for key, (shape, kind) in specs.items():
            try:
                arr = archive[key]
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:  # pickled objects, truncation
                raise DataFileError(
                    f"{str(p)!r}, array {key!r}: cannot be read without unpickling or is damaged: {e}"
                ) from None
            out[key] = _checked(arr, p, key, shape, kind)
    return out


def _checked(arr: np.ndarray, p: Path, key: str, shape: tuple, kind) -> np.ndarray:
    """A read-only copy of ``arr`` after checking its shape, dtype and values."""
    where = f"{str(p)!r}, array {key!r}"
    if arr.shape != shape:
        raise DataFileError(f"{where} has shape {arr.shape}, expected {shape}")
    if kind == "float":
        if arr.dtype != np.float64:
            raise DataFileError(f"{where} has dtype {arr.dtype}, expected float64")
        if not np.isfinite(arr).all():
            raise DataFileError(f"{where} contains NaN or inf")
        return _frozen(arr.copy())
    if arr.dtype.kind not in "iu":
        raise DataFileError(f"{where} must hold integer {kind.plural}, got dtype {arr.dtype}")
    allowed = kind.values
    outside = (arr < allowed.start) | (arr >= allowed.stop)
    if outside.any():
        bad = np.unique(arr[outside])[:5].tolist()
        raise DataFileError(f"{where}: every {kind.each} must be in {_show(allowed)}, found {bad}")
    return _frozen(arr.astype(np.int64))


def _show(values: range) -> str:
    """``{0, 1, 2}`` for a few values, ``{0, ..., 16}`` for more."""
    shown = [str(v) for v in values] if len(values) <= 4 else [str(values[0]), "...", str(values[-1])]
    return "{" + ", ".join(shown) + "}"


def _frozen(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr


def _real(x, where: str) -> np.ndarray:
    """``x`` as float64, refusing what is not real numbers (bools, strings, objects)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{where}: expected real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def _lags(value, split: int, name: str) -> int:
    """``value`` as an int in 1 … split - 1, so that at least one training target has a full window."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if not 1 <= value < split:
        raise ValueError(
            f"{name} must be in 1 .. {split - 1}, so that some training target has {name} earlier years,"
            f" got {value}"
        )
    return int(value)


def load_regression_problem(path=None) -> RegressionProblem:
    """The regression problem from ``data/hw7_regression.npz`` (or ``path``: a file or a folder).

    Raises ``FileNotFoundError`` if the file is missing and
    :class:`DataFileError` (a ``ValueError``) naming the file and key if an
    array is missing or has the wrong shape, dtype or values.
    """
    p = _resolve(path, REGRESSION_FILE)
    a = _read_npz(p, {
        "x_train": ((100,), "float"), "y_train": ((100,), "float"),
        "x_test": ((900,), "float"), "y_test": ((900,), "float"),
        "coefs_true": ((NUM_FEATURES,), "float"),
    })
    for key in ("x_train", "x_test"):
        # The features are steps on [0, 1): inputs outside it mean a foreign file.
        if a[key].min() < 0 or a[key].max() >= 1:
            raise DataFileError(
                f"{str(p)!r}, array {key!r}: inputs must lie in [0, 1), got [{a[key].min()}, {a[key].max()}]"
            )
    return RegressionProblem(**a)


def load_blobs(path=None) -> Blobs:
    """The 3-class blobs from ``data/multiclass_blobs.npz`` (or ``path``): first 300 points
    for training, last 200 for testing, as the assignment splits them.

    Errors as for :func:`load_regression_problem`.
    """
    p = _resolve(path, BLOBS_FILE)
    a = _read_npz(p, {"X": ((500, 2), "float"), "y": ((500,), _labels(NUM_CLASSES))})
    X, y = a["X"], a["y"]
    return Blobs(X_train=X[:BLOBS_TRAIN], y_train=y[:BLOBS_TRAIN], X_test=X[BLOBS_TRAIN:], y_test=y[BLOBS_TRAIN:])


def load_digits(path=None) -> Digits:
    """The 1,797 handwritten digits from ``data/digits.npz`` (or ``path``): the first 1,347
    in stored order for training, the last 450 for testing (see :class:`Digits`).

    Images are the stored pixel counts 0..16 divided by 16, float64, shaped
    (n, 1, 8, 8). Errors as for :func:`load_regression_problem`; pixel counts
    outside 0..16 or labels outside 0..9 are a :class:`DataFileError`.
    """
    p = _resolve(path, DIGITS_FILE)
    a = _read_npz(p, {
        "images": ((DIGITS_COUNT, 8, 8), _Ints(range(DIGITS_MAX_PIXEL + 1), "pixel counts", "pixel count")),
        "labels": ((DIGITS_COUNT,), _labels(DIGITS_CLASSES)),
    })
    X = _frozen(a["images"].reshape(DIGITS_COUNT, 1, 8, 8) / DIGITS_MAX_PIXEL)  # exact: 16 is a power of 2
    y = a["labels"]
    return Digits(X_train=X[:DIGITS_TRAIN], y_train=y[:DIGITS_TRAIN], X_test=X[DIGITS_TRAIN:], y_test=y[DIGITS_TRAIN:])


def load_sunspots(path=None) -> Sunspots:
    """The yearly sunspot activity 1700-2008 from ``data/sunspots.npz`` (or ``path``), split
    at 1950 (see :class:`Sunspots`).

    Errors as for :func:`load_regression_problem`; years other than 1700 …
    2008 in order, or negative activity, are a :class:`DataFileError`.
    """
    p = _resolve(path, SUNSPOTS_FILE)
    n = len(SUNSPOTS_YEARS)
    a = _read_npz(p, {
        "year": ((n,), _Ints(SUNSPOTS_YEARS, "years", "year")),
        "activity": ((n,), "float"),
    })
    expected = np.asarray(SUNSPOTS_YEARS)
    if not np.array_equal(a["year"], expected):
        i = int(np.flatnonzero(a["year"] != expected)[0])
        raise DataFileError(
            f"{str(p)!r}, array 'year': years must be {expected[0]} ... {expected[-1]} in order,"
            f" found {a['year'][i]} at position {i} where {expected[i]} belongs"
        )
    if a["activity"].min() < 0:
        i = int(a["activity"].argmin())
        raise DataFileError(
            f"{str(p)!r}, array 'activity': sunspot numbers are >= 0, found {a['activity'][i]} in {expected[i]}"
        )
    split = SUNSPOTS_TEST_FROM - SUNSPOTS_YEARS.start
    return Sunspots(years=a["year"], activity=a["activity"], split=split)


def ar_baseline(problem: Sunspots, order: int = 9) -> ARBaseline:
    r"""The textbook AR(``order``) forecaster of the sunspots and its test RMSE.

    With w_t = (1, y_{t-1}, …, y_{t-order}), the coefficients
    β = argmin Σ_{t<1950} (y_t - w_t·β)² are found by ``numpy.linalg.lstsq``
    over the training targets t = 1700 + order … 1949; the forecasts are
    ŷ_t = w_t·β for t = 1950 … 2008, each from the observed previous years,
    and the RMSE is √((1/59) Σ_t (ŷ_t - y_t)²). ``order`` must leave more
    training targets than coefficients (order ≤ 124).
    """
    if not isinstance(problem, Sunspots):
        raise TypeError(f"ar_baseline: problem must be the Sunspots of load_sunspots(), got {type(problem).__name__}")
    order = _lags(order, problem.split, "order")
    if problem.split - order < order + 1:
        raise ValueError(
            f"order {order} leaves {problem.split - order} training targets for {order + 1} coefficients;"
            f" use order <= {(problem.split - 1) // 2}"
        )
    w = problem.windows(order)
    beta = np.linalg.lstsq(_ar_design(w.X_train), w.y_train, rcond=None)[0]
    predictions = _ar_design(w.X_test) @ beta
    return ARBaseline(
        order=order, intercept=float(beta[0]), coefs=_frozen(beta[1:].copy()),
        predictions=_frozen(predictions), rmse=_rms(predictions - w.y_test),
        train_rmse=_rms(_ar_design(w.X_train) @ beta - w.y_train),
    )


def _ar_design(windows: np.ndarray) -> np.ndarray:
    """Rows (1, y_{t-1}, …, y_{t-order}): windows are oldest first, so their columns are reversed."""
    return np.column_stack([np.ones(len(windows)), windows[:, ::-1]])


def _rms(errors: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(errors))))
