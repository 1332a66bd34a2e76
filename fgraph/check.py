r"""Finite-difference checks of gradients: one op, or a whole graph.

Both compare an analytic gradient ``a`` with a numeric one ``n`` and a
bound ``σ`` on how far ``n`` may be from the truth, all in float64, so
that a right gradient never fails and a wrong one never passes, whatever
the scale of the data, the params or the objective.

**Steps scaled to the point.** Entry i of an array x moves in units of its
own size, s_i = |x_i|; an entry below 1e-12 of the point's typical size
(mean |entry| over every float array) counts as 0 and moves in units of
x's typical size (the point's, if all of x is that small). A step then
never crosses a pole or a boundary at 0 (``nll`` at p = 1e-6), and scaling
any array by any factor scales its steps with it.

**Components.** An array of at most :data:`FULL_CHECK_SIZE` entries is
compared entry by entry, its whole gradient; a larger one along
``directions`` random directions (a projection can nearly miss a single
wrong entry, so only where the full comparison costs too much):

- entry i:    direction d = s_i e_i,  analytic aₖ = ∂φ/∂x_i,  c = s_i;
- projection: direction d = s ⊙ w, w ~ N(0, I)/‖w‖,  aₖ = ⟨∇φ, d⟩,  c = 1,
  and one with d = s̄ w (s̄ the mean of s), so that an entry far smaller
  than the others is seen too (left out where φ is not finite along it).

Along d, with f(t) = φ(x + t d) and D(h) = (f(h) - f(-h)) / 2h,

    R₁ = (4 D(ε/2) - D(ε)) / 3,    R₂ = (4 D(ε/4) - D(ε/2)) / 3   (Richardson: O(ε⁴)),
    nₖ = R₂ / c,    σₖ = (|R₂ - R₁| + κ δφ / ε) / c.

|R₂ - R₁| bounds the truncation error of R₂ (about 15 times over where
Richardson is asymptotic). δφ is the rounding noise of φ near the point,
measured, not assumed (Moré & Wild's ECnoise), along one random direction
that moves every compared array at once: f at t = jτ, j = -4..4; the k-th
differences Δᵏ of independent noise of standard deviation δ have
E[(Δᵏ)²] = C(2k, k) δ², so δₖ = (γₖ mean (Δᵏ)²)^½ with γₖ = (k!)² / (2k)!.
Grids with τ = ε·2⁻¹⁴·7ʲ up to ε/8 each give max(δ₃, …, δ₆), or, when f
takes fewer than 5 values on them (φ moves in coarse steps: a loss of 1e-13
computed as -log of a probability 1 - 1e-13 moves by 1e-16, the spacing of
floats near 1), their smallest jump, one such step; then

    δφ = max(all of those, u |φ(x)|),   u = 2⁻⁵³.

Where no grid moves φ at all (a classifier so sure of its labels that its
loss is 0.0 and its gradient 1e-100), δφ is the first jump of φ(λx) as the
compared arrays shrink or grow from λ = 1 (:func:`_onset_step`): the
finest change the computation can show.

Each component adds the noise of φ where its differences evaluate it:
ECnoise of its own grid t = jε/4, and of a grid of spacing ε·7⁻⁴ centred
at the step t = ε. The noise of φ can grow away from the point: at an
exact zero minimum J = r(t)² of a residual r(t) = a t + E(t) with rounding
error E, it is 2 a t E(t), nothing near t = 0 and all of the quotient
(J(ε) - J(-ε)) / 2ε = a (E(ε) + E(-ε)). ECnoise is computed in units of
the largest difference, so that the squares of the noise of a φ of
1e-170 do not underflow to 0: every estimate scales with φ.

The noise of R₂ is about 3.8 δφ / ε; κ = :data:`NOISE_MARGIN` = 30 puts the
bound far in its tail and absorbs an estimate a few times low. Cancellation
inside φ (a loss of 10 whose gradient is 1e-10, a saturated tanh) raises δφ
and σ with it, where a fixed floor would fail a right gradient, or pass a
wrong one on a small objective.

**Error.** m = clip(a, n - σ, n + σ) is the point within the numeric
uncertainty closest to the analytic gradient; a - m is what the numerics
cannot explain:

    error = ‖a - m‖ / max(‖a‖, ‖m‖)      (0 when a = m).

With σ = 0 this is ‖a - n‖ / max(‖a‖, ‖n‖): a sign flip gives 2, a VJP off
by 1 % gives 0.0099, a dropped contribution c about ‖c‖ / ‖a‖, one flipped
entry 2|a_i| / ‖a‖. A component too noisy to resolve (its gradient below
its noise) has a large σ and takes no part; the others keep their power.
The error is unchanged when a, n and σ scale together, so the check is
scale-free. NaN or inf anywhere (the value, the analytic gradient, any
evaluation near the point) gives an error of inf, so a NaN gradient never
passes.

**Unresolved.** An error of 0 says nothing when σ covers the gradient: a
forward whose values are coarse (float16, float32 sums, integers) or differ
from call to call, a loss computed by cancellation, or a kink inside the
step, makes σ larger than the gradient, and a VJP of the wrong sign passes
as well as the right one. A name is unresolved when more than
:data:`OPEN_SHARE` (1 %) of its gradient lies within σ where φ is coarse:
with S = max(|a|, |n|, v) per component (v how fast φ varies along it,
which at an exact zero minimum is its curvature), when ‖min(σ, S)‖ over
the components with σ r > :data:`COARSE` |φ| (r the larger of the step and
the name's typical step; smooth float64 rounding gives σ c ≈ 3e-10 |φ|) is
more than 1 % of ‖S‖; unless no component could move φ by more than the
noise bound even over its whole step (max(|a|, |n|) c ≤ κ δφ: zero to
every purpose). So a VJP off by 1 % or more is caught or called
inconclusive, wherever its effect on φ is above about 1e-6 of |φ|.

Before a name is called unresolved, and wherever φ did not move at all
within ±ε along a component (flat: a dead relu, or values coarser than the
step), the comparison is made again: with the open entries far smaller
than the name's typical one moved by the typical size, then at steps
:data:`WIDER_STEPS` (32 and 1024) times wider, where |R₂ - R₁| still
bounds the truncation (a loss of 1e-13 computed as -log of a probability
near 1 moves by 1e-16, and shows its gradient only across a move many
such steps long). The first retry that resolves the name and sees φ move
gives its error; one where φ moves and contradicts the claim is a
failure; a claim φ agreed with while flat stands unless so contradicted.
A check passes when every error is at most ``tolerance`` and no name is
unresolved; :func:`check_op` raises :class:`InconclusiveCheckError` for
an unresolved argument, unless another argument failed.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import warnings
from collections.abc import Mapping

import attrs
import numpy as np

from fgraph import validate
from fgraph.arrays import readonly_copy
from fgraph.autodiff import backward, value_and_grad
from fgraph.errors import GraphError, InconclusiveCheckError, ShapeError
from fgraph.graph import Graph, Node, graph, input, param

DEFAULT_TOLERANCE = 1e-4

#: Params with at most this many entries are compared entry by entry.
FULL_CHECK_SIZE = 256

#: κ of the module docstring: the noise bound in units of δφ / ε.
NOISE_MARGIN = 30.0

#: A name is unresolved when more than this share of its gradient lies
#: within the uncertainty of coarse differences (see :func:`_unresolved`):
#: a VJP off by 1 % or more is then caught or called inconclusive.
OPEN_SHARE = 1e-2
#: φ is coarse along a direction where the uncertainty of its change over
#: a whole step, σ c, exceeds this share of |φ| (smooth float64 rounding
#: gives about 3e-10): a gradient whose effect over such a move is above
#: 1e-6 of |φ| is then resolved to 1 % or reported.
COARSE = 1e-8

_UNIT_ROUNDOFF = np.finfo(np.float64).eps / 2
_NOISE_ORDERS = (3, 4, 5, 6)
_NOISE_POINTS = 4  # f at t = jτ for j = -4..4
_NOISE_SPACING = 2.0**-14  # the first τ, in units of ε
_NOISE_GROWTH = 7  # not a power of 2, so that the grids do not line up with the binary grid of floats
_STEP_NOISE_SPACING = 7.0**-4  # τ of the grids centred at the steps ±ε, in units of ε
_NEGLIGIBLE = 1e-12  # entries this small relative to the point's typical size count as 0
_SMALLEST_SCALE = 1e-200  # below, steps of 1e-5 of it would be subnormal


@attrs.frozen
class GradCheckReport:
    """The result of :func:`check_grads` (or :func:`compare_grads`).

    ``errors`` maps each name to its error (module docstring);
    ``max_rel_error`` is the largest error. ``unresolved`` names the
    gradients that the finite differences could not pin down at this point
    (more than 1 % of the gradient lies within their uncertainty, see
    :func:`_unresolved`): for those the check has not shown that the
    gradient is right, and one off by that much would have passed too.
    ``ok`` is true when every error is at most ``tolerance`` and no
    gradient is unresolved.
    """

    ok: bool
    max_rel_error: float
    errors: Mapping
    tolerance: float
    unresolved: tuple = ()

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        failed = _failed(self.errors, self.unresolved, self.tolerance)
        unresolved = (f"central differences cannot resolve the gradient of {list(self.unresolved)} here"
                      f" ({_UNRESOLVED_CAUSES})")
        if not failed and self.unresolved:
            return f"inconclusive: {unresolved}"
        shown = failed or self.errors
        worst = max(shown, key=shown.get, default=None)
        verdict = "passed" if self.ok else "failed"
        return (f"gradient check {verdict}: largest error {shown.get(worst, 0.0):.3g}"
                f"{f' (of {worst!r})' if worst is not None else ''}, tolerance {self.tolerance:g}"
                f"{f'; besides, {unresolved}' if self.unresolved else ''}")


def _failed(errors: Mapping, unresolved, tolerance: float) -> dict:
    """The names a check found wrong: error above ``tolerance`` on a resolved
    gradient. An unresolved name's error is no evidence either way: a kink
    at the point (a relu at 0, a tie of a max) puts the VJP's convention
    beyond what the differences can bound, right or wrong."""
    return {k: e for k, e in errors.items() if e > tolerance and k not in unresolved}


_UNRESOLVED_CAUSES = (
    "more than 1% of it lies within their uncertainty: a kink within the step (a relu at exactly 0, as zero"
    " biases on zero inputs make), values that are coarse (float16, float32, integers, a loss below about"
    " 1e-8 computed from a probability near 1) or that differ from call to call; check at a point away"
    " from kinks, in float64"
)


def gradient_error(analytic, numeric, uncertainty) -> float:
    """‖a - m‖ / max(‖a‖, ‖m‖) with m = clip(a, n - σ, n + σ): the part of
    the analytic gradient ``a`` that the numeric one ``n``, give or take its
    uncertainty ``σ`` (entry-wise), does not explain, relative to the
    gradient's size. 0 when it explains all of it; inf if ``a`` or ``n``
    is not finite or ``σ`` is NaN (an infinite σ says the numeric value
    tells nothing)."""
    a, n, s = (np.ravel(np.asarray(v, dtype=np.float64)) for v in (analytic, numeric, uncertainty))
    if not (np.isfinite(a).all() and np.isfinite(n).all()) or np.isnan(s).any():
        return math.inf
    m = np.clip(a, n - s, n + s)
    if np.array_equal(a, m):
        return 0.0
    size = max(float(np.abs(a).max()), float(np.abs(m).max()))  # so that no square under- or overflows
    a, m = a / size, m / size
    return float(np.linalg.norm(a - m)) / max(float(np.linalg.norm(a)), float(np.linalg.norm(m)))


def _typical(x) -> float:
    """mean |x| (which cannot overflow, unlike the rms), 0 for no entries."""
    return float(np.mean(np.abs(x))) if np.size(x) else 0.0


def _scales(x: np.ndarray, point_scale: float) -> np.ndarray:
    """s_i = |x_i|, or the typical size of x (of the point, if x is all
    negligible) where |x_i| is negligible: below 1e-12 of the point's."""
    floor = _NEGLIGIBLE * point_scale
    s = np.array(np.abs(x), dtype=np.float64)
    small = s <= floor
    if small.any():
        typical = _typical(x)
        s[small] = typical if typical > floor else point_scale
    return s


def _derivative(f, value: float, eps: float) -> tuple[float, float, float, float, float]:
    """R₂, its truncation bound |R₂ - R₁| plus half the jump of slope at 0
    (a kink at the point), the noise of f where the differences evaluate
    it, how fast f varies there (max |f(t) - f(0)| / ε over the grid) and
    its size there (max |f|).

    The noise is the largest of the ECnoise of f on the grid t = jε/4,
    j = -4..4, whose points give the central differences at ε/4, ε/2 and ε
    (``value`` = f(0)), and of f on a fine grid centred at the step t = ε
    (:func:`_noise_at`). One side suffices: the noise at -ε is rounding of
    the same computation at the same distance from the point, of the same
    size; its level, not its draw, is what σ needs."""
    quarter = eps / 4
    values = np.array([value if j == 0 else f(j * quarter) for j in range(-4, 5)])
    d = [(values[4 + j] - values[4 - j]) / (2 * j * quarter) for j in (4, 2, 1)]
    r1 = (4 * d[1] - d[0]) / 3
    r2 = (4 * d[2] - d[1]) / 3
    # half the jump of slope at the point: (f(h) + f(-h) - 2 f(0)) / 2h is f'' h / 2 where f is
    # smooth, which this extrapolation to h → 0 removes, and the jump / 2 at a kink (a relu at 0),
    # where the differences are exact (R₁ = R₂) and say nothing about which side the VJP took
    bend = [abs(values[4 + j] + values[4 - j] - 2 * value) / (2 * j * quarter) for j in (1, 4)]
    kink = max(0.0, (4 * bend[0] - bend[1]) / 3)
    noise = max(_ecnoise(values), _noise_at(f, eps, values[-1], eps * _STEP_NOISE_SPACING))
    return r2, abs(r2 - r1) + kink, noise, float(np.abs(values - value).max()) / eps, float(np.abs(values).max())


def _noise_at(f, centre: float, centre_value: float, tau: float) -> float:
    """The rounding noise of f at t = ``centre`` (``centre_value`` = f(centre)):
    ECnoise of f at centre + jτ, j = -4..4, or its smallest jump if f takes
    fewer than 5 values there (one step of a quantized φ).

    Measured at the step, not only near the point, because the noise of φ
    can grow away from it: at an exact zero minimum J = ‖r(t)‖² of a
    residual r(t) = a t + E(t) computed with rounding error E, the noise
    of J is 2 a t E(t), nothing at t = 0, but all of it in the difference
    quotient (J(ε) - J(-ε)) / 2ε = a (E(ε) + E(-ε)).
    """
    offsets = range(-_NOISE_POINTS, _NOISE_POINTS + 1)
    values = np.array([centre_value if j == 0 else f(centre + j * tau) for j in offsets])
    if len(np.unique(values)) > _NOISE_POINTS:
        return _ecnoise(values)
    jumps = np.abs(np.diff(values))
    return float(jumps[jumps > 0].min()) if (jumps > 0).any() else 0.0


def _difference_rows() -> tuple[np.ndarray, np.ndarray]:
    """Rows computing every Δᵏ of 9 values for k in _NOISE_ORDERS, each
    scaled by (γₖ / its count)^½, so that Σ over k's rows of (row · f)² is
    γₖ mean (Δᵏ f)²; and the index of each row's k."""
    eye = np.eye(2 * _NOISE_POINTS + 1)
    rows, which = [], []
    for i, k in enumerate(_NOISE_ORDERS):
        delta = np.diff(eye, k, axis=0)
        gamma = math.factorial(k) ** 2 / math.factorial(2 * k)
        rows.append(delta * math.sqrt(gamma / len(delta)))
        which += [i] * len(delta)
    return np.concatenate(rows), np.array(which)


_DIFFERENCES, _ORDER_OF_ROW = _difference_rows()


def _ecnoise(values: np.ndarray) -> float:
    """max over k = 3..6 of (γₖ mean (Δᵏ)²)^½, γₖ = (k!)² / (2k)!, of 9 values.

    Computed in units of the largest difference, so that neither the
    squares of the noise of a φ of 1e-170 underflow to 0 nor the
    differences of a φ of 1e300 overflow: the estimate scales with φ."""
    top = float(np.abs(values).max())
    if top == 0.0 or not math.isfinite(top):
        return 0.0 if top == 0.0 else math.nan
    unit = math.ldexp(1.0, math.frexp(top)[1])  # a power of 2: dividing by it is exact
    differences = _DIFFERENCES @ (values / unit)
    size = float(np.abs(differences).max())
    if size == 0.0:
        return 0.0
    squares = np.bincount(_ORDER_OF_ROW, (differences / size) ** 2)
    return math.sqrt(float(squares.max())) * size * unit


def _noise(f, value: float, eps: float) -> float | None:
    """δφ of the module docstring: the rounding noise of ``f`` near 0
    (``value`` = f(0)); NaN if f is not finite there, None if f does not
    move at all (see :func:`_onset_step`).

    ECnoise on grids of 9 points whose spacing τ grows 7-fold from ε·2⁻¹⁴
    to ε/8; δφ is the largest estimate. Several grids, because a quantized
    φ (a loss of 1e-13 computed as -log of a probability 1 - 1e-13 moves in
    steps of 1e-16, the spacing of floats near 1) whose smooth change per
    step happens to be a whole number of steps shows no noise on one grid.
    A grid where f takes fewer than 5 values is too fine to show the noise:
    its smallest jump is one step of φ, a floor for δφ.
    """
    tau, step, levels = eps * _NOISE_SPACING, 0.0, []
    while tau <= eps / 8:
        values = np.array([value if j == 0 else f(j * tau) for j in range(-_NOISE_POINTS, _NOISE_POINTS + 1)])
        if not np.isfinite(values).all():
            return math.nan
        if len(np.unique(values)) > _NOISE_POINTS:
            levels.append(_ecnoise(values))
        else:
            jumps = np.abs(np.diff(values))
            if (jumps > 0).any():
                step = max(step, float(jumps[jumps > 0].min()))
        tau *= _NOISE_GROWTH
    if not levels and step == 0.0:
        return None
    return max(*levels, step, _UNIT_ROUNDOFF * abs(value))


def _first_move(f, value: float, lo: float, hi: float, exact: bool) -> float | None:
    """|f(t) - f(0)| at the smallest t in [lo, hi] where f moves (``value``
    = f(0)), found by bisection of log t to within a factor 2, then, if
    ``exact``, of t to the last bit; None if f does not move at ``hi``."""
    moved_hi = f(hi)
    if moved_hi == value:
        return None
    moved_lo = f(lo)
    if moved_lo != value:
        return abs(moved_lo - value)
    while True:
        mid = math.sqrt(lo * hi) if hi > 2 * lo else (lo + hi) / 2 if exact else lo
        if mid in (lo, hi):
            return abs(moved_hi - value)
        moved = f(mid)
        if moved == value:
            lo = mid
        else:
            hi, moved_hi = mid, moved


def _first_jump(f, value: float, eps: float) -> float:
    """The first change of f(t) as t grows from 0 to ε/8 (0 if none): the
    finest step in which φ moves from the point.

    An ulp of φ for a smoothly computed φ, but 1e-16 for a loss of 1e-7
    computed as -log of a probability 1 - 1e-7, whose floats are 1e-16
    apart. Such a φ moves in whole steps; when its change per grid step is
    close to a whole number of them, ECnoise sees no noise at all, and this
    floor is what bounds the error of a difference quotient.
    """
    jump = _first_move(f, value, eps * 2.0**-60, eps / 8, exact=False)
    return 0.0 if jump is None else jump


def _onset_step(f_scaled, f_line, value: float, eps: float) -> float:
    """The smallest change φ can show, for a φ that no grid around the
    point moved: the first jump of φ(λx) (``f_scaled(λ)``) as the compared
    arrays shrink from λ = 1 to 0, or else of ``f_line(t)`` = φ(x + t d)
    as t grows from ε/8 to 2¹⁰⁰⁰ (as far as floats go), found by bisection
    to the last bit.

    A classifier so sure of every label that its loss is 0.0 and its
    gradient 1e-100 moves as its weights shrink, by one step of the floats
    it rounds to (1e-16 for probabilities near 1); a square of 1e-211 that
    underflows to 0 moves as its argument grows, by one subnormal. u |φ| if
    φ moves neither way, or first jumps to inf.
    """
    floor = _UNIT_ROUNDOFF * abs(value)
    for along, lo, hi in ((lambda t: f_scaled(1.0 - t), 2.0**-60, 1.0), (f_line, eps / 8, 2.0**1000)):
        jump = _first_move(along, value, lo, hi, exact=True)
        if jump is not None:
            return max(jump, floor) if math.isfinite(jump) else floor
    return floor


@attrs.frozen
class _Components:
    """What the check compares for one name, per component k (an entry, or
    a random projection): the analytic derivative aₖ, the numeric one nₖ
    and its uncertainty σₖ, all per unit of the step cₖ (the size of the
    move along the component's direction); vₖ, how fast φ varies where
    the component's differences evaluate it (max |f(t) - f(0)| / ε on its
    grid, per unit of the step), Φₖ, the size of φ there (max |f|), and
    the move over which φ's coarseness is judged: the larger of the step
    and the name's typical step (an entry far smaller than its neighbours
    moves by little, yet its gradient may be most of the name's)."""

    analytic: np.ndarray
    numeric: np.ndarray
    sigma: np.ndarray
    step: np.ndarray
    variation: np.ndarray
    phi_size: np.ndarray
    reach: np.ndarray


def _components(phi_along, x: np.ndarray, s: np.ndarray, grad: np.ndarray, value: float, noise: float,
                eps: float, rng, directions: int, only=None, base: _Components | None = None) -> _Components:
    """The components of one name: its entries, or ``directions`` random
    projections when it has more than FULL_CHECK_SIZE (each entry moving in
    units of its own size, s ⊙ w), and one moving every entry in units of
    the name's typical size (left out if φ is not finite along it). With
    ``only`` (a mask of entries) and ``base``, only those entries are
    differenced again, the others taken from ``base`` (entries only).

    The noise of a component is the larger of ``noise`` (δφ measured for
    the whole point) and the ECnoise of its own difference grid, so that
    rounding that only moving this entry brings out is counted."""
    entries = x.size <= FULL_CHECK_SIZE
    if entries:
        picked = range(x.size) if only is None else np.flatnonzero(only)
        directions_ = []
        for i in picked:
            d = np.zeros(x.shape)
            d.flat[i] = s.flat[i]
            directions_.append((i, d, s.flat[i]))
        analytic = np.ravel(grad)
    else:
        # one more direction moves every entry by the name's typical size: a projection
        # weights each entry by its own size, so an entry far smaller than the others
        # (whose gradient may be most of the name's) is otherwise barely seen
        directions_ = []
        for k, unit in enumerate([s] * directions + [np.full(x.shape, float(np.mean(s)))]):
            w = rng.standard_normal(x.shape)
            directions_.append((k, unit * (w / np.linalg.norm(w)), 1.0))
        analytic = np.array([np.vdot(grad, d) for _, d, _ in directions_])
    count = len(analytic)
    if entries and base is not None and only is not None:
        numeric, sigma, variation, size = (np.array(v) for v in (base.numeric, base.sigma, base.variation,
                                                                  base.phi_size))
    else:
        numeric, sigma, variation, size = (np.empty(count) for _ in range(4))
    step = np.ravel(s).astype(np.float64) if entries else np.ones(count)
    for k, d, c in directions_:
        r2, truncation, own_noise, rate, size[k] = _derivative(phi_along(d), value, eps)
        numeric[k], variation[k] = r2 / c, rate / c
        sigma[k] = (truncation + NOISE_MARGIN * max(noise, own_noise) / eps) / c
    if not entries and not (math.isfinite(numeric[-1]) and math.isfinite(sigma[-1])):
        # the typical-size move reached past a domain edge (an entry near a pole at 0): left out
        analytic, numeric, sigma, variation, size, step = (v[:-1] for v in (analytic, numeric, sigma, variation,
                                                                              size, step))
    reach = np.maximum(step, float(np.mean(s))) if entries else step
    return _Components(analytic, numeric, sigma, step, variation, size, reach)


def _point_scale(point: Mapping) -> float:
    """The typical size of the point's float arrays (labels left out), or 1
    when they are all (almost) zero."""
    floats = [np.ravel(v) for v in point.values() if np.asarray(v).dtype.kind == "f"]
    typical = _typical(np.concatenate(floats)) if floats else 0.0
    return typical if _SMALLEST_SCALE < typical < math.inf else 1.0


def _unit_direction(rng, s: np.ndarray) -> np.ndarray:
    """s ⊙ w / max|w| for w ~ N(0, I): every entry moves, none by more than its scale."""
    w = rng.standard_normal(s.shape)
    return s * w / max(float(np.abs(w).max(initial=0.0)), 1e-300)


def _errors(phi, point: dict, grads: Mapping, eps: float, directions: int, seed: int) -> tuple[dict, tuple]:
    """Error per name of ``grads``, and the names whose gradient the
    differences left unresolved (:func:`_unresolved`); ``phi(point) ->
    float`` is the scalar differenced.

    δφ of a name is measured along a random direction that moves that name
    alone (with the finest step of φ along it), so that another name's
    coarseness (a float32 layer, a relu at its kink) does not blur it; where
    moving the name alone does not move φ at all (a saturated layer), the
    noise measured along a direction that moves every name at once stands
    in. Each component adds the noise of its own difference grid.
    """
    rng = np.random.default_rng(seed)
    with np.errstate(all="ignore"):
        value = phi(point)
    if not (math.isfinite(value) and all(np.isfinite(g).all() for g in grads.values())):
        return {k: math.inf for k in grads}, ()
    # every later evaluation is at a point of the check's own making (a retry may move a
    # probability of 1e-9 below 0, where nll warns): what the rules say there would mislead
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        point_scale = _point_scale(point)
        xs = {k: np.asarray(point[k]) for k in grads}
        scales = {k: _scales(x, point_scale) for k, x in xs.items()}
        joint = {k: _unit_direction(rng, s) for k, s in scales.items()}

        def along_joint(t):
            return phi({**point, **{k: xs[k] + t * d for k, d in joint.items()}})

        def scaled(lam):
            return phi({**point, **{k: lam * x for k, x in xs.items()}})

        noise = _noise(along_joint, value, eps)
        if noise is None:
            noise = _onset_step(scaled, along_joint, value, eps)
        if math.isnan(noise):  # φ is not finite right next to the point
            return {k: math.inf for k in grads}, ()
        noise = max(noise, _first_jump(along_joint, value, eps))
        errors, unresolved = {}, []
        for name, grad in grads.items():
            x = xs[name]

            def along(d, name=name, x=x):
                return lambda t: phi({**point, name: x + t * d})

            direction = along(_unit_direction(rng, scales[name]))
            own = _noise(direction, value, eps)
            if own is not None and math.isnan(own):  # φ is not finite right next to the point along this name
                errors[name] = math.inf
                continue
            jump = _first_jump(direction, value, eps)
            # the finest change of φ that moving this name alone shows: another name's
            # coarseness (a float32 layer, a relu at its kink) must not make this one's
            # gradient negligible, nor its differences uncertain
            floor = max(jump, _UNIT_ROUNDOFF * abs(value)) or noise
            own = noise if own is None else max(own, jump)
            errors[name], open_ = _compared(along, x, scales[name], grad, value, own, floor, eps, rng, directions)
            if open_:
                unresolved.append(name)
    return errors, tuple(unresolved)


#: The larger relative steps tried, in turn, for a name the step ``eps`` leaves unresolved.
WIDER_STEPS = (2.0**5, 2.0**10)


def _compared(along, x, s, grad, value: float, noise: float, floor: float, eps: float, rng,
              directions: int) -> tuple[float, bool]:
    """(error, unresolved) of one name, at the step ``eps`` or, if that
    leaves the name unresolved, at the first retry that resolves it: every
    entry moved by at least the name's typical size (an entry of 1e-12
    beside entries of 1, stepped by 1e-17, cannot show its gradient), then
    the wider steps ``eps`` × :data:`WIDER_STEPS`.

    A φ that moves in coarse steps (a loss of 1e-13 computed as -log of a
    probability 1 - 1e-13 moves in steps of 1e-16) shows a small gradient
    only across a move many of its steps long: σ's noise term, κ δφ / ε,
    shrinks as ε grows, and the truncation term |R₂ - R₁| still bounds
    what the wider step costs. A component along which φ did not change at
    all within ±ε is tried wider too: φ may be flat there (a dead relu:
    the wider step agrees) or move in steps coarser than the step (a
    float16 forward, whose n = 0 would fail a right VJP and pass one that
    returns 0). A wider step whose values are not finite (it reached past a
    domain edge) or that resolves nothing either leaves the name
    unresolved, never a false failure. ``noise`` is δφ for σ, ``floor``
    the finest change of φ along this name (:func:`_unresolved`)."""
    c = _components(along, x, s, grad, value, noise, eps, rng, directions)
    error = gradient_error(c.analytic, c.numeric, c.sigma)
    open_ = math.isfinite(error) and _unresolved(c, floor)
    flat = c.variation == 0.0
    if not math.isfinite(error) or not (open_ or flat.any()):
        return error, False
    moving = ~flat
    if not open_ and moving.any() and gradient_error(c.analytic[moving], c.numeric[moving], c.sigma[moving]) > 0:
        return error, False  # where φ moves, it already contradicts the claim
    # φ flat somewhere within ±ε and agreeing with the claim: right if φ is flat there
    # (a dead relu, a saturated tanh), unless a wider step that sees φ move disagrees
    agreed = not open_ and error == 0.0
    errors, last = [error], None
    opened = _open_components(c)
    # open entries far smaller than the name's typical one move by too little to show
    # their gradient: moved by the typical size instead (where φ stays finite)
    typical = float(np.mean(s))
    lifted = s
    if x.size <= FULL_CHECK_SIZE:
        lifted = np.where((opened & (np.ravel(s) < typical)).reshape(s.shape), typical, s)
    retries = ([(lifted, eps)] if (lifted != s).any() else []) + [(s, eps * factor) for factor in WIDER_STEPS]
    # differenced again: where φ was flat or the differences open (an entry elsewhere keeps its verdict)
    again = flat | opened
    for scale, step in retries:
        wide = _components(along, x, scale, grad, value, noise, step, rng, directions, only=again, base=c)
        wide_error = gradient_error(wide.analytic, wide.numeric, wide.sigma)
        errors.append(wide_error)
        if not math.isfinite(wide_error):
            last = None
            continue
        wide_open, wide_flat = _unresolved(wide, floor), bool((wide.variation == 0.0).any())
        last = (wide_error, wide_open, wide_flat)
        if wide_error > 0.0 and not wide_flat and not open_:
            return wide_error, wide_open  # φ moves here and contradicts a claim it agreed with while flat
        if not wide_open and not wide_flat:
            return wide_error, False
        agreed = agreed or (not wide_open and wide_error == 0.0)
    if agreed:
        return 0.0, False
    if last is not None and last[2] and not last[1]:
        return last[0], False  # flat even across the widest step: a claim of a slope there is wrong
    # n = 0 where φ is flat says nothing: the error is what the wider steps allow
    return (error if open_ else min(errors)), True


def _unresolved(c: _Components, floor: float) -> bool:
    """Whether the differences leave this name's gradient open: more than
    :data:`OPEN_SHARE` of it lies within an uncertainty that φ's coarseness
    causes, so that the check could not have told it from a gradient that
    much different.

    Each component's size is S = max(|a|, |n|, v): claimed, measured, or
    how fast φ varies along it (at an exact zero minimum, J = r² varies by
    its curvature while its first derivative is 0). It is open where φ is
    coarse along it: its uncertainty over a move of the larger of its step
    and the name's typical step, σ r, is above :data:`COARSE` of |φ| there
    (smooth float64 rounding gives about κ u / ε = 3e-10; a forward in
    float16, float32 or integers, a loss computed by cancellation, values
    that change from call to call, or a kink inside the step, more). Its
    open part is then min(σ, S); the name is unresolved when ‖open‖ >
    OPEN_SHARE ‖S‖. Components that smooth float64 differences cannot
    resolve (an effect under about 1e-8 of |φ|: a tanh at 15 in a loss of
    1, a gradient of 0 at an optimum) are not open: they pass within their
    rounding, since no nearby point would resolve them better.

    Never when every component moves φ, over a move of its whole step, by
    no more than the noise bound of φ along this name (max(|a|, |n|) c ≤
    κ ``floor``): a gradient that no difference of φ could show (a tanh at
    20, a classifier sure of every label whose loss is 0.0) is zero to
    every purpose.
    """
    if float((_claimed_or_measured(c) * c.step).max(initial=0.0)) <= NOISE_MARGIN * floor:
        return False
    size = _sizes(c)
    top = float(size.max(initial=0.0))
    # in units of the largest component, so that no square under- or overflows
    open_part = np.linalg.norm(_open_parts(c, size) / top)
    return bool(open_part > OPEN_SHARE * np.linalg.norm(size / top))


def _open_parts(c: _Components, size: np.ndarray) -> np.ndarray:
    """min(σ, S) where φ is coarse along a component (σ r > COARSE Φ), else 0."""
    return np.where(c.sigma * c.reach > COARSE * c.phi_size, np.minimum(c.sigma, size), 0.0)


def _claimed_or_measured(c: _Components) -> np.ndarray:
    """max(|a|, |n|) per component: the size of its derivative, claimed or measured."""
    return np.maximum(np.abs(c.analytic), np.abs(c.numeric))


def _sizes(c: _Components) -> np.ndarray:
    """S = max(|a|, |n|, v) per component (:func:`_unresolved`)."""
    return np.maximum(_claimed_or_measured(c), c.variation)


def _open_components(c: _Components) -> np.ndarray:
    """Which components have more than OPEN_SHARE of their size S open."""
    size = _sizes(c)
    return _open_parts(c, size) > OPEN_SHARE * size


def _copies(arrays):
    """``arrays`` with each writeable NumPy array replaced by a read-only copy
    (anything else left for the checks to judge): the rules under test see
    what the caller passed without being able to change it, and one that
    writes into its arguments fails instead of corrupting the point."""
    if not isinstance(arrays, Mapping):
        return arrays
    return {k: readonly_copy(v) if isinstance(v, np.ndarray) and v.flags.writeable else v for k, v in arrays.items()}


@contextlib.contextmanager
def _rules_may_not_write():
    """NumPy's refusal to write into a read-only array, raised inside, said as what it means here."""
    try:
        yield
    except ValueError as e:
        if "read-only" not in str(e):
            raise
        raise ValueError(
            f"a rule wrote into an array it was given ({e}): rules must not change their arguments, whose"
            " values other rules read (the check hands every rule read-only copies to find such a rule)"
        ) from None


def _check_settings(eps, tolerance, directions) -> None:
    if isinstance(eps, bool) or not (isinstance(eps, numbers.Real) and 0 < eps < 1):
        raise ValueError(f"eps must be a relative step in (0, 1), got {eps!r}")
    if isinstance(tolerance, bool) or not (isinstance(tolerance, numbers.Real) and tolerance >= 0):
        raise ValueError(f"tolerance must be a number >= 0, got {tolerance!r}")
    if isinstance(directions, bool) or not (isinstance(directions, numbers.Integral) and directions >= 1):
        raise ValueError(f"directions must be an integer >= 1, got {directions!r}")


def _report(errors: dict, unresolved: tuple, tolerance: float) -> GradCheckReport:
    worst = max(errors.values(), default=0.0)
    return GradCheckReport(ok=worst <= tolerance and not unresolved, max_rel_error=worst, errors=errors,
                           tolerance=tolerance, unresolved=unresolved)


def compare_grads(g, grads: Mapping, params: Mapping, data: Mapping | None = None, output: str = "objective",
                  eps: float = 1e-5, tolerance: float = DEFAULT_TOLERANCE, directions: int = 3,
                  seed: int = 0) -> GradCheckReport:
    """Compare a given gradient dict with central differences of output ``output``.

    ``grads`` maps param (or float data input) names to claimed values of
    ∂output/∂name, each in that name's shape; the report holds the error of
    the module docstring per name (a param the output does not read has
    gradient 0: error 0 for a zero claim, inf for any other).
    :func:`check_grads` is this function applied to ``value_and_grad``'s
    gradients; called directly, it checks
    gradients computed any other way (or deliberately wrong ones, to test
    the check). ``eps`` is the relative step.
    """
    _check_settings(eps, tolerance, directions)
    if not isinstance(g, Graph):
        raise TypeError(f"expected an fgraph Graph (from fgraph.graph(...)), got {type(g).__name__}")
    if not isinstance(output, str) or output not in g.outputs:
        raise GraphError(f"the graph has no output {output!r}; its outputs are {list(g.outputs)}")
    node = g.outputs[output]
    if node.shape != () or node.batched:
        raise ShapeError(f"output {output!r} is not a scalar (per-example shape {node.shape}"
                         f"{', batched' if node.batched else ''}): its gradient is not defined")
    if not isinstance(grads, Mapping):
        raise TypeError(f"grads must be a mapping of names to arrays, got {type(grads).__name__}")
    program = g.programs[output]
    p = validate.params(g, _copies(params), program.param_names)
    d, _ = validate.data(g, _copies(data), program.input_names)
    point = {**p, **d}
    unread = {}  # params of the graph the output does not read: their gradient is 0
    for name, grad in grads.items():
        if name in g.params and name not in point:
            if np.shape(grad) != g.params[name]:
                raise ShapeError(f"the gradient of {name!r} has shape {np.shape(grad)}; {name!r} has shape"
                                 f" {g.params[name]}")
            unread[name] = 0.0 if not np.any(grad) else math.inf
            continue
        if name not in point or name in g.labels:
            raise ValueError(
                f"a gradient is given for {name!r}, which output {output!r} does not read as a param"
                f" or float input (it reads {sorted(k for k in point if k not in g.labels)})"
            )
        if np.shape(grad) != np.shape(point[name]):
            raise ShapeError(
                f"the gradient of {name!r} has shape {np.shape(grad)}; {name!r} has shape {np.shape(point[name])}"
            )
    grads = {k: np.asarray(v, dtype=np.float64) for k, v in grads.items() if k not in unread}

    def phi(pt):
        return float(program.forward(pt, pt))

    with _rules_may_not_write():
        errors, unresolved = _errors(phi, point, grads, eps, directions, seed)
    return _report({**errors, **unread}, unresolved, tolerance)


def check_grads(g, params: Mapping, data: Mapping | None = None, output: str = "objective",
                eps: float = 1e-5, tolerance: float = DEFAULT_TOLERANCE, wrt=None,
                directions: int = 3, seed: int = 0) -> GradCheckReport:
    """Compare ``value_and_grad(g, output, wrt)`` with central differences of the whole graph.

    Every param (or name in ``wrt``) is compared with the error of the
    module docstring: its whole gradient, or ``directions`` random
    projections for a param of more than :data:`FULL_CHECK_SIZE` entries;
    ``eps`` is the relative step and ``seed`` seeds the random directions.
    The assignment's ``test_ComputationGraphFunction``, without its
    flakiness: scale-free, and never failing a right gradient for rounding
    noise.
    """
    _check_settings(eps, tolerance, directions)
    params, data = _copies(params), _copies(data)
    with _rules_may_not_write():
        _, grads = value_and_grad(g, output, wrt)(params, data)
    return compare_grads(g, grads, params, data, output, eps=eps, tolerance=tolerance,
                         directions=directions, seed=seed)


def _leaves(arrays, batched) -> tuple[list, dict, dict]:
    """Nodes for check_op's arguments: integer arrays are label inputs,
    batched float arrays data inputs, the others params."""
    flags = (batched,) * len(arrays) if isinstance(batched, bool) else tuple(batched)
    if len(flags) != len(arrays):
        raise ValueError(f"batched has {len(flags)} flags for {len(arrays)} arrays")
    nodes, params, data = [], {}, {}
    for i, (arr, flag) in enumerate(zip(arrays, flags)):
        arr = np.asarray(arr)
        name = f"arg{i}"
        per_example = arr.shape[1:] if flag else arr.shape
        if arr.dtype.kind in "iu":
            nodes.append(input(name, per_example))
            data[name] = arr
        elif flag:
            nodes.append(input(name, per_example))
            data[name] = readonly_copy(validate.as_float_array(arr, f"argument {i}"))
        else:
            nodes.append(param(name, per_example))
            params[name] = readonly_copy(validate.as_float_array(arr, f"argument {i}"))
    return nodes, params, data


def check_op(builder, *arrays, eps: float = 1e-5, batched=False, directions: int = 3, seed: int = 0) -> float:
    """Largest error between an op's VJP and central differences (the assignment's
    ``test_node_backward``); compare it with :data:`DEFAULT_TOLERANCE`.

    ``builder(*nodes) -> node`` builds the op; ``arrays`` are its argument
    values. Float arrays are differentiated, integer arrays are labels.
    ``batched`` (one flag, or one per argument) says which arrays carry a
    leading batch axis. A random cotangent u of the output's shape turns the
    op into the scalar φ = ⟨u, op(args)⟩, whose gradient, the VJP of u, is
    checked per argument with the error of the module docstring (the whole
    gradient of an argument of at most :data:`FULL_CHECK_SIZE` entries).
    A VJP whose result does not have its argument's shape is a
    ``ShapeError`` naming the argument; an argument whose gradient the
    differences cannot resolve at this point (coarse or varying forward
    values, a kink within the step) is an :class:`InconclusiveCheckError`
    naming it, since any VJP would have passed there, unless a resolved
    argument's error is above :data:`DEFAULT_TOLERANCE` (then the largest
    error is returned: the failure is the finding).
    """
    _check_settings(eps, 0.0, directions)
    nodes, params, data = _leaves(arrays, batched)
    out = builder(*nodes)
    if not isinstance(out, Node):
        raise TypeError(f"the builder must return a Node, got {type(out).__name__}")
    g = graph(out=out)
    program = g.programs["out"]
    names = [n.name for n in nodes if n.name not in g.labels]
    point = {**params, **data}
    with _rules_may_not_write():
        value = program.forward(point, point)
        u = np.random.default_rng([seed, 1]).standard_normal(np.shape(value))
        grads = backward(g, params, data, output="out", cotangent=u, wrt=names)
    for i, name in enumerate(n.name for n in nodes):
        if name in grads and np.shape(grads[name]) != np.shape(point[name]):
            raise ShapeError(
                f"the VJP of argument {i} returned shape {np.shape(grads[name])};"
                f" the argument has shape {np.shape(point[name])}"
            )

    def phi(pt):
        return float(np.vdot(u, program.forward(pt, pt)))

    with _rules_may_not_write():
        errors, unresolved = _errors(phi, point, grads, eps, directions, seed)
    worst = max(errors.values(), default=0.0)
    if unresolved and not _failed(errors, unresolved, DEFAULT_TOLERANCE):  # a failure elsewhere is the finding
        args = [f"argument {[n.name for n in nodes].index(name)}" for name in unresolved]
        raise InconclusiveCheckError(f"check_op is inconclusive: central differences cannot resolve the gradient"
                                     f" of {', '.join(args)} here ({_UNRESOLVED_CAUSES})")
    return worst
