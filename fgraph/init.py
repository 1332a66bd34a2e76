"""Parameter initialisers, driven by an explicit seed.

An initialiser is a frozen value called as ``init(rng, shape) -> array``.
:func:`init_params` gives every param of a graph its first value, drawn from
a generator seeded by ``(seed, the param's name)`` alone, so adding or
removing a layer never changes the other params' draws, and the same seed
always gives the same values. There is no global random state anywhere.
"""

from __future__ import annotations

import hashlib
import math

import attrs
import numpy as np


def _fans(shape: tuple) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of ``shape``: W (m, d) maps d inputs to m outputs."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], 1
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


@attrs.frozen
class Constant:
    """Every entry equal to ``value``."""

    value: float = 0.0

    def __call__(self, rng: np.random.Generator, shape: tuple) -> np.ndarray:
        return np.full(shape, float(self.value))


@attrs.frozen
class Normal:
    """``scale`` times a standard normal draw (the assignment's ``init_scale * randn``)."""

    scale: float = 1.0

    def __call__(self, rng: np.random.Generator, shape: tuple) -> np.ndarray:
        return self.scale * rng.standard_normal(shape)


@attrs.frozen
class Uniform:
    """Uniform on ``[low, high)``."""

    low: float = -1.0
    high: float = 1.0

    def __call__(self, rng: np.random.Generator, shape: tuple) -> np.ndarray:
        return rng.uniform(self.low, self.high, shape)


@attrs.frozen
class VarianceScaling:
    """Draws with variance ``gain² / fan`` (Glorot/Xavier and He initialisers).

    ``mode`` picks the fan: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``;
    ``distribution`` is ``"normal"`` or ``"uniform"`` (on ±√3·std).
    """

    gain: float = 1.0
    mode: str = attrs.field(default="fan_avg", validator=attrs.validators.in_(("fan_in", "fan_out", "fan_avg")))
    distribution: str = attrs.field(default="normal", validator=attrs.validators.in_(("normal", "uniform")))

    def __call__(self, rng: np.random.Generator, shape: tuple) -> np.ndarray:
        fan_in, fan_out = _fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        std = self.gain / math.sqrt(fan)
        if self.distribution == "normal":
            return std * rng.standard_normal(shape)
        limit = math.sqrt(3.0) * std
        return rng.uniform(-limit, limit, shape)


def zeros() -> Constant:
    """All zeros (the default for a param without an initialiser)."""
    return Constant(0.0)


def constant(value: float) -> Constant:
    """Every entry equal to ``value``."""
    return Constant(float(value))


def normal(scale: float = 1.0) -> Normal:
    """N(0, scale²) entries."""
    return Normal(float(scale))


def uniform(low: float = -1.0, high: float = 1.0) -> Uniform:
    """U[low, high) entries."""
    return Uniform(float(low), float(high))


def glorot_uniform() -> VarianceScaling:
    """Glorot & Bengio (2010): U(±√(6 / (fan_in + fan_out)))."""
    return VarianceScaling(1.0, "fan_avg", "uniform")


def glorot_normal() -> VarianceScaling:
    """Glorot & Bengio (2010): N(0, 2 / (fan_in + fan_out))."""
    return VarianceScaling(1.0, "fan_avg", "normal")


def he_normal() -> VarianceScaling:
    """He et al. (2015), for ReLU layers: N(0, 2 / fan_in)."""
    return VarianceScaling(math.sqrt(2.0), "fan_in", "normal")


def he_uniform() -> VarianceScaling:
    """He et al. (2015): U(±√(6 / fan_in))."""
    return VarianceScaling(math.sqrt(2.0), "fan_in", "uniform")


def check_seed(seed) -> int:
    """``seed`` as a non-negative int, else a clear ``TypeError``/``ValueError``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be a non-negative int, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed}")
    return int(seed)


def param_rng(seed: int, name: str) -> np.random.Generator:
    """The generator for param ``name`` under ``seed``: a function of both, nothing else."""
    # surrogatepass: a name Python can hold but UTF-8 cannot (a lone surrogate) still has bytes;
    # every other name's bytes, and so its draws, are unchanged.
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([check_seed(seed), *words]))


def init_params(g, seed: int = 0) -> dict:
    """First values of every param of graph ``g``: ``{name: float64 array}``.

    Each param is drawn by its own initialiser (zeros when it has none) from
    :func:`param_rng` ``(seed, name)``.
    """
    check_seed(seed)
    out = {}
    for node in g.nodes:
        if node.role == "param":
            spec = node.init if node.init is not None else zeros()
            try:
                value = np.asarray(spec(param_rng(seed, node.name), node.shape), dtype=np.float64)
            except (MemoryError, ValueError) as e:  # e.g. a size no machine holds: NumPy does not say whose
                error = MemoryError if isinstance(e, MemoryError) else ValueError
                raise error(f"param {node.name!r} of shape {node.shape} could not be initialised: {e}") from None
            if value.shape != node.shape:
                raise ValueError(
                    f"the initialiser of param {node.name!r} returned shape {value.shape}, expected {node.shape}"
                )
            out[node.name] = value
    return out
