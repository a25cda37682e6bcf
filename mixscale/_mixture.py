r"""Optimal mixtures: minimise a weighted mean of predicted losses over the (bounded) simplex.

.. math::

    h^\star = \arg\min_{h} \frac{\sum_m w_m \hat L_m(h, N, D)}{\sum_m w_m}
    \quad\text{s.t.}\quad \sum_i h_i = 1,\quad \ell_i \le h_i \le u_i .

``w`` weighs the law's targets (default: uniform over them); lower bounds ``ℓ`` and caps ``u``
express data limits (a domain that holds only so many tokens) or minimum shares.

Method: spectral projected gradient (Birgin, Martínez & Raydan, 2000) — gradient steps with
Barzilai–Borwein step lengths, projected onto the feasible set, with an Armijo backtracking
line search along the projected direction. The projection onto
``{Σ h = 1, ℓ ≤ h ≤ u}`` is ``clip(v - τ, ℓ, u)`` with the one ``τ`` that makes the sum 1 (the
sum is piecewise linear and monotone in ``τ``, so ``τ`` is exact between its bracketing
breakpoints). Gradients are exact (through the law, including the implicit derivative of the
capacity allocation). Several starts run in one compiled program,
one after another (``lax.map``), each until its own convergence: the uniform mixture, the
projection of ``w`` mapped onto the training domains, and random Dirichlet draws; the best
stationary point is returned. (Batched with ``vmap`` every start ran until the slowest stopped:
with a start that never meets the tolerance, ``max_steps`` iterations for all; sequential starts
were 3× faster at ``K = 64`` and 4.6× at ``K = 17`` on the 2-core machine, equal at ``K = 4``.)
Stationarity is measured by ``‖P(h − ∇f) − h‖_∞``.

Units. The stationarity measure compares ``∇f`` (loss units) with ``h`` (weights), so a fixed
tolerance means a different thing for losses in other units: with every loss of a law
scaled by ``1e-6`` the search met ``1e-9`` with its optimal weights off by up to ``1.6e-4``,
and scaled by ``1e200`` it never met it (rounding alone moved ``P(h − ∇f)`` by more). The
search therefore minimises ``f / s``, where ``s`` is a power of two (dividing by it rounds
nothing) that brings the weighted mean absolute predicted loss at the uniform mixture,
``Σ_m w_m |L̂_m| / Σ_m w_m``, into ``[1/2, 1)`` when it lies outside ``[1/16, 16]``
(:func:`objective_scale`); inside that range, which holds losses in nats and the simulator's
losses, ``s = 1`` and the search is that of ``f`` itself. The reported objective is in the
law's own units, the stationarity that of ``f / s``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._checks import MAX_SEED, MAX_STARTS, integer, number, positive_number
from ._evaluate import predict_one
from .laws._base import AbstractLaw

__all__ = ["MixtureResult", "objective_scale", "optimal_mixture", "project_to_simplex"]

def project_to_simplex(v: jax.Array, lower: jax.Array, upper: jax.Array) -> jax.Array:
    """Euclidean projection of ``v`` ``(K,)`` onto ``{h: Σh = 1, lower ≤ h ≤ upper}``.

    Assumes the set is non-empty (``Σ lower ≤ 1 ≤ Σ upper``, ``lower ≤ upper``); where the
    bounds miss 1 by rounding only, so that no point of the box sums to 1 exactly, it returns the
    box's point nearest to that sum: ``upper`` when ``Σ upper < 1``, ``lower`` when
    ``Σ lower > 1``.

    The projection is ``clip(v − τ, lower, upper)`` where ``f(τ) = Σ clip(v − τ, lower, upper)``
    equals 1. ``f`` is piecewise linear and non-increasing with breakpoints ``v − upper`` and
    ``v − lower``: it is evaluated at all ``2K`` of them, ``τ`` lies between the largest with
    ``f ≥ 1`` and the smallest with ``f ≤ 1`` (``O(K²)``). No breakpoint lies strictly between
    the two, so ``f`` is linear there and ``τ`` is its linear interpolation to 1 (exact up to
    rounding; it replaced 100 bisection steps, which made the projection 7× as costly as the
    law's value and gradient at ``K = 64``). ``v`` is first shifted by its largest entry (the
    projection does not change). A search step can make ``v`` of order 1e30: a bisection over
    ``[min(v − upper), max(v − lower)]`` could then not resolve the weights and returned two
    coordinates at their caps (a "mixture" summing to 2).
    """
    v = v - jnp.max(v)

    def total(tau):
        return jnp.sum(jnp.clip(v - tau, lower, upper))

    breaks = jnp.concatenate([v - upper, v - lower])
    at = jax.vmap(total)(breaks)
    lo = jnp.max(jnp.where(at >= 1.0, breaks, -jnp.inf))
    hi = jnp.min(jnp.where(at <= 1.0, breaks, jnp.inf))
    caps_short, floors_over = jnp.isneginf(lo), jnp.isposinf(hi)
    lo, hi = jnp.minimum(lo, hi), jnp.maximum(lo, hi)
    f_lo, f_hi = total(lo), total(hi)
    drop = f_lo - f_hi
    frac = jnp.where(drop > 0, (f_lo - 1.0) / jnp.where(drop > 0, drop, 1.0), 0.0)
    tau = lo + jnp.clip(frac, 0.0, 1.0) * (hi - lo)
    h = jnp.clip(v - tau, lower, upper)
    # Bounds that bracket 1 only to rounding (``upper`` computed as shares ``t / sum(t)`` can
    # sum to 1 - 2e-16): no τ gives the sum 1 exactly, the bracket is infinite on one side and
    # τ would be NaN. The nearest point of the bounds' box is then every weight at its cap
    # (``sum(upper) < 1``) or at its floor (``sum(lower) > 1``).
    return jnp.where(caps_short, upper, jnp.where(floors_over, lower, h))


@dataclasses.dataclass(frozen=True)
class MixtureResult:
    """The optimal mixture found.

    Attributes:
        weights: ``(K,)`` the mixture (within the bounds; sums to 1, or where the bounds admit
            only one mixture and their sum misses 1 by rounding, to within 1e-12: the bounds).
        losses: ``(M,)`` the law's predicted target losses there.
        objective: the weighted mean loss there.
        stationarity: ``‖P(h − ∇f/s) − h‖_∞`` at the returned point (0 at an exact
            optimum; ``s``: ``objective_scale``).
        converged: whether the best start met the tolerance before ``max_steps``.
        start_objectives: ``(S,)`` the final objective of every start.
        objective_scale: ``s``, the power of two the objective was divided by in the search
            (1 for mean losses between 1/16 and 16; :func:`objective_scale`).
    """

    weights: np.ndarray
    losses: np.ndarray
    objective: float
    stationarity: float
    converged: bool
    start_objectives: np.ndarray
    objective_scale: float = 1.0


#: Weighted mean absolute losses in this range are searched in their own units.
OBJECTIVE_UNIT_RANGE = (1.0 / 16.0, 16.0)


def objective_scale(losses, weights) -> float:
    """The power of two ``s`` that the search divides its objective by: 1 when
    ``m = Σ_m w_m |L_m| / Σ_m w_m`` (``losses`` and non-negative ``weights``, both ``(M,)``,
    ``losses`` finite) lies in :data:`OBJECTIVE_UNIT_RANGE` or is 0, else ``2^e`` with
    ``m / 2^e`` in ``[1/2, 1)`` (``e`` at most 1023, the largest finite power of two)."""
    losses = np.abs(np.asarray(losses, dtype=float))
    weights = np.asarray(weights, dtype=float)
    # the weights scaled by a power of two to at most 1 first, so that their sum is finite
    weights = weights * np.ldexp(1.0, -int(np.frexp(weights.max())[1]))
    mean = float(np.dot(weights, losses) / weights.sum())
    low, high = OBJECTIVE_UNIT_RANGE
    if mean == 0.0 or low <= mean <= high:
        return 1.0
    if not math.isfinite(mean):  # |L| near the float range's top: the dot product overflowed
        mean = float(np.max(losses[weights > 0]))
    return float(np.ldexp(1.0, min(int(np.frexp(mean)[1]), 1023)))


@eqx.filter_jit
def _spg(law, starts, N, D, w, lower, upper, tol, max_steps, scale):
    """Spectral projected gradient from each start (``lax.map``) on ``f / scale``; returns per
    start the point, its objective (divided by ``scale``), its stationarity and the iterations
    taken.

    One loop whose every pass evaluates the objective once, at a trial point (the start, then
    ``h + t·d`` of the Armijo search), and its gradient too when the trial is accepted (under
    ``lax.cond``, so a rejected trial costs one forward evaluation, as in a line search of its
    own). A rejected trial halves ``t``; an accepted one gives a new Barzilai–Borwein step and
    direction. The law's program is traced twice (its value; its value and gradient) instead
    of once per place that evaluated it (start, line search, accepted step, end: five copies,
    each compiled by XLA); the iterates are those of a line search nested in the gradient loop.
    """

    def f(h):
        return jnp.dot(w, law.predict(h, N, D)) / jnp.sum(w) / scale

    value_and_grad = jax.value_and_grad(f)

    def proj(v):
        return project_to_simplex(v, lower, upper)

    def stationarity(h, g):
        return jnp.max(jnp.abs(proj(h - g) - h))

    def one(h0):
        h0 = proj(h0)
        zero = jnp.zeros_like(h0)
        one_ = jnp.asarray(1.0, h0.dtype)
        # state: accepted point h, its value fh and gradient g; direction d and its slope;
        # trial factor t; stationarity pg (-1: the line search failed); accepted steps i;
        # first: the start itself is the pending trial.
        init = (h0, jnp.asarray(jnp.inf, h0.dtype), zero, zero, jnp.zeros((), h0.dtype), one_,
                jnp.asarray(jnp.inf, h0.dtype), jnp.asarray(0), jnp.asarray(True))

        def cond(c):
            _, _, _, _, _, _, pg, i, first = c
            return first | ((i < max_steps) & (pg > tol))

        def body(c):
            h, fh, g, d, slope, t, pg, i, first = c
            x = h + t * d
            fx = f(x)
            accept = first | (fx <= fh + 1e-4 * t * slope)
            # rejected at t <= 1e-20: no descent is possible at this precision; stop
            failed = (~accept) & (t <= 1e-20)

            def accepted(_):
                fx_, gx = value_and_grad(x)
                pg_x = stationarity(x, gx)
                # a Barzilai-Borwein step (from the start: 1 / its stationarity)
                s_vec, y_vec = x - h, gx - g
                sy = jnp.dot(s_vec, y_vec)
                bb = jnp.where(sy > 0, jnp.dot(s_vec, s_vec) / jnp.where(sy > 0, sy, 1.0), 1e6)
                step = jnp.where(first, 1.0 / jnp.maximum(pg_x, 1e-12),
                                 jnp.clip(bb, 1e-12, 1e12))
                d_x = proj(x - step * gx) - x
                return x, fx_, gx, d_x, jnp.dot(gx, d_x), one_, pg_x

            def rejected(_):
                return h, fh, g, d, slope, 0.5 * t, jnp.where(failed, -1.0, pg)

            state = lax.cond(accept, accepted, rejected, None)
            return (*state, i + jnp.where(first, 0, (accept | failed).astype(i.dtype)),
                    jnp.asarray(False))

        h, fh, g, _, _, _, _, steps, _ = lax.while_loop(cond, body, init)
        return h, fh, stationarity(h, g), steps

    return lax.map(one, starts)


def optimal_mixture(law: AbstractLaw, N: float, D: float, *,
                    target_weights: Sequence[float] | None = None,
                    lower: Sequence[float] | None = None, upper: Sequence[float] | None = None,
                    n_starts: int = 16, seed: int = 0, tol: float = 1e-9,
                    max_steps: int = 3000, n_train_domains: int | None = None) -> MixtureResult:
    """The mixture minimising the weighted mean predicted loss at size ``N`` and tokens ``D``.

    Args:
        law: a fitted law (``FitResult.law``) or any :class:`AbstractLaw`.
        N, D: model size and tokens in the law's units (e.g. millions / billions).
        target_weights: ``(M,)`` non-negative weights of the law's targets (default uniform).
        lower, upper: ``(K,)`` per-domain lower bounds and caps (default 0 and 1).
        n_starts: number of starting points (uniform, ``w`` mapped to domains, random draws).
        seed: PRNG seed of the random starts.
        tol: stationarity tolerance ``‖P(h − ∇f/s) − h‖_∞`` (``s``: :func:`objective_scale`,
            1 for losses of order one).
        max_steps: iterations per start at most.
        n_train_domains: ``K`` (optional: every law knows it; a mismatch is an error).

    Returns:
        A :class:`MixtureResult`.

    Raises:
        TypeError: an argument of the wrong kind (e.g. ``N`` given as a string).
        ValueError: ``N`` or ``D`` not positive and finite, bounds outside ``[0, 1]``, a lower
            bound above its cap, bounds no mixture meets, target weights that are negative or
            all zero, ``n_starts`` outside ``[1, 1024]``, or a law whose predictions overflow
            at ``N, D``.
    """
    if not isinstance(law, AbstractLaw):
        raise TypeError(f"law must be a fitted law (e.g. FitResult.law), got {type(law).__name__}")
    N = positive_number(N, "N (model size, law units)")
    D = positive_number(D, "D (tokens, law units)")
    k = law.n_train_domains
    if n_train_domains is not None and integer(n_train_domains, "n_train_domains", 1,
                                               2**31) != k:
        raise ValueError(f"n_train_domains={n_train_domains} but the law takes weights of "
                         f"{k} training domains")
    n_starts = integer(n_starts, "n_starts", 1, MAX_STARTS)
    seed = integer(seed, "seed", 0, MAX_SEED)
    max_steps = integer(max_steps, "max_steps", 1, 10**7)
    tol = number(tol, "tol")
    if tol < 0:
        raise ValueError(f"tol must be non-negative, got {tol:g}")
    lo = np.zeros(k) if lower is None else _vector(lower, "lower", k)
    hi = np.ones(k) if upper is None else _vector(upper, "upper", k)
    for i in range(k):
        if not 0 <= lo[i] <= hi[i] <= 1:
            raise ValueError(f"bounds of domain {i}: need 0 <= lower <= upper <= 1, got "
                             f"lower {lo[i]:g}, upper {hi[i]:g}")
    if math.fsum(lo) > 1 + 1e-12 or math.fsum(hi) < 1 - 1e-12:
        raise ValueError(f"no mixture fits the bounds: sum(lower) = {math.fsum(lo):.6g} and "
                         f"sum(upper) = {math.fsum(hi):.6g} must bracket 1")
    probe = np.asarray(predict_one(law, jnp.full(k, 1.0 / k), jnp.asarray(N, float),
                                   jnp.asarray(D, float)))
    m = probe.shape[0]
    if not np.all(np.isfinite(probe)):
        raise ValueError(f"the law predicts non-finite losses at N = {N:g}, D = {D:g} (uniform "
                         "mixture): its parameters overflow at this scale")
    w = np.ones(m) if target_weights is None else _vector(target_weights, "target_weights", m)
    if np.any(w < 0) or not np.any(w > 0):
        raise ValueError("target_weights must be non-negative and not all zero")
    # Scaled by a power of two (exactly, no rounding) to at most 1, so that sum(w) is finite.
    scale = np.ldexp(1.0, -int(np.frexp(w.max())[1]))
    w = w * scale
    starts = [np.full(k, 1.0 / k)]
    targets = law.targets
    if targets is not None and len(targets) == m and n_starts > 1:
        mapped = np.full(k, 1e-3 * scale)
        np.add.at(mapped, np.asarray(targets), w)
        starts.append(mapped / mapped.sum())
    rng = np.random.default_rng(seed)
    while len(starts) < n_starts:
        starts.append(rng.dirichlet(np.full(k, 0.5)))
    starts = jnp.asarray(np.stack(starts[:n_starts]))
    s = objective_scale(probe, w)
    h, f, pg, _ = _spg(law, starts, jnp.asarray(N, float), jnp.asarray(D, float),
                       jnp.asarray(w), jnp.asarray(lo), jnp.asarray(hi),
                       # run-time values: one compilation serves any
                       jnp.asarray(tol, float), jnp.asarray(max_steps), jnp.asarray(s, float))
    f = np.asarray(f) * s
    f = np.where(np.isfinite(f), f, np.inf)
    if not np.isfinite(f).any():
        raise ValueError(f"the law predicts non-finite losses at every start (N = {N:g}, "
                         f"D = {D:g}): its parameters overflow at this scale")
    best = _best_start(f, np.asarray(pg))
    h_best = np.asarray(h[best])
    return MixtureResult(
        weights=h_best, losses=np.asarray(predict_one(law, jnp.asarray(h_best),
                                                      jnp.asarray(N, float),
                                                      jnp.asarray(D, float))),
        objective=float(f[best]), stationarity=float(pg[best]),
        converged=bool(pg[best] <= tol), start_objectives=f, objective_scale=s)


def mixture_notes(result: MixtureResult, train_domains: Sequence[str], targets: Sequence[str],
                  weight_max: Sequence[float] | None = None) -> list[str]:
    """Warnings on an optimal mixture that the law's data do not support: a predicted loss that
    is not positive and finite (no real loss is), and, given the largest weight ``weight_max``
    ``(K,)`` each domain had in the training runs (:attr:`mixscale.FitResult.fitted_weight_max`),
    a domain weighted more than any training run weighted it (the law then extrapolates in the
    mixture). Empty when neither holds.

    Measured: the linear regression law fitted to RegMix-1B (1B, 25B tokens) put all the weight
    on enron_emails, where it predicted losses of -122 and 74 (its training runs gave that
    domain at most 0.009)."""
    notes = []
    losses = np.asarray(result.losses)
    bad = [f"{t} {v:.4g}" for t, v in zip(targets, losses, strict=True)
           if not (np.isfinite(v) and v > 0)]
    if bad:
        notes.append(f"the law predicts losses no run can have at this mixture ({', '.join(bad)}): "
                     "it extrapolates beyond its data there, so the mixture is not one to train "
                     "on; bound the search (--lower/--upper) or use a law whose losses stay "
                     "positive")
    if weight_max is not None:
        top = np.asarray(weight_max, dtype=float)
        beyond = [f"{d} {w:.3g} (runs: at most {m:.3g})"
                  for d, w, m in zip(train_domains, result.weights, top, strict=True)
                  if w > m + 1e-9]
        if beyond:
            notes.append("the mixture weights domains more than any training run did: "
                         + ", ".join(beyond) + "; the law extrapolates in the mixture there")
    return notes


#: Starts whose objectives differ by at most this, relative, are tied: they found the same
#: minimum, and the differences are rounding.
OBJECTIVE_TIE_RTOL = 1e-12


def _best_start(f: np.ndarray, stationarity: np.ndarray) -> int:
    """The start with the lowest objective ``f`` (finite somewhere); among starts tied with it to
    rounding (:data:`OBJECTIVE_TIE_RTOL`), the one closest to stationarity. Several starts
    usually end in the same minimum, and the lowest objective among them is decided by rounding
    (a few ulps), not by which start converged: taking it alone reported a converged search as
    unconverged when that start had stopped at ``max_steps`` a hair from the tolerance."""
    low = float(np.min(f))
    tied = np.flatnonzero(f <= low + OBJECTIVE_TIE_RTOL * abs(low))
    return int(tied[np.argmin(np.where(np.isfinite(stationarity[tied]),
                                       stationarity[tied], np.inf))])


def _vector(value, what: str, size: int) -> np.ndarray:
    """``value`` as a finite float64 vector of length ``size``; TypeError/ValueError naming
    ``what`` otherwise."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{what} must be a sequence of {size} numbers, got {value!r}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a sequence of {size} numbers") from None
    if arr.shape != (size,):
        raise ValueError(f"{what} must have shape ({size},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        i = int(np.argmin(np.isfinite(arr)))
        raise ValueError(f"{what}[{i}] must be finite, got {arr[i]}")
    return arr
