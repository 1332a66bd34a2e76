r"""Loaders for the assignment's datasets in ``data/`` (provenance: data/README.md).

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

NUM_FEATURES = 400  # step-function features of the regression problem
NUM_CLASSES = 3
BLOBS_TRAIN = 300  # the assignment trains on the first 300 blobs and tests on the last 200
ORIGIN = {
    REGRESSION_FILE: "the course's hw7 data.pickle converted to .npz (nyu-ds1003/mlcourse, CC BY 4.0)",
    BLOBS_FILE: "the assignment's three Gaussian blobs (make_blobs after numpy.random.seed(2))",
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


def _read_npz(p: Path, specs: dict) -> dict:
    """Every array that ``specs`` names, checked: ``{key: (shape, kind)}``, kind "float" or "label"."""
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


def _checked(arr: np.ndarray, p: Path, key: str, shape: tuple, kind: str) -> np.ndarray:
    """A read-only copy of ``arr`` after checking its shape, dtype and values."""
    where = f"{str(p)!r}, array {key!r}"
    if arr.shape != shape:
        raise DataFileError(f"{where} has shape {arr.shape}, expected {shape}")
    if kind == "float":
        if arr.dtype != np.float64:
            raise DataFileError(f"{where} has dtype {arr.dtype}, expected float64")
        if not np.isfinite(arr).all():
            raise DataFileError(f"{where} contains NaN or inf")
        arr = arr.copy()
    else:
        if arr.dtype.kind not in "iu":
            raise DataFileError(f"{where} must hold integer class labels, got dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= NUM_CLASSES):
            bad = sorted(set(arr.tolist()) - {0, 1, 2})[:5]
            raise DataFileError(f"{where}: every label must be in {{0, 1, 2}}, found {bad}")
        arr = arr.astype(np.int64)
    arr.flags.writeable = False
    return arr


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
    a = _read_npz(p, {"X": ((500, 2), "float"), "y": ((500,), "label")})
    X, y = a["X"], a["y"]
    return Blobs(X_train=X[:BLOBS_TRAIN], y_train=y[:BLOBS_TRAIN], X_test=X[BLOBS_TRAIN:], y_test=y[BLOBS_TRAIN:])
