r"""The capacity-allocation problem and its exact, differentiable solution.

A model of capacity ``N`` trained on mixture ``h`` spends ``x_i`` of its capacity on domain ``i``
so as to minimise its mixture-weighted training loss (Dai & Zheng, 2026, §3):

.. math::

    x^*(h, N) = \arg\min_x \sum_i h_i c_i x_i^{-b_i}
    \quad\text{s.t.}\quad \sum_i x_i = N + (K - 1) H,\quad x_i \ge H .

``H`` is the shared head: counted once in the budget but used by every domain, hence the
``(K - 1) H``. The KKT conditions give, for a multiplier :math:`\lambda > 0`,

.. math::

    x_i(\lambda) = \max\!\big(H,\ (h_i b_i c_i / \lambda)^{1/(b_i + 1)}\big),

and :math:`\lambda` is the one value for which the budget is met. With :math:`u = \log\lambda`,
:math:`\beta_i = 1/(b_i + 1)` and :math:`\ell_i = \log(h_i b_i c_i)`, the budget residual

.. math::

    g(u) = \log \sum_i \exp\!\big(\max(\log H,\ \beta_i(\ell_i - u))\big) - \log\big(N + (K-1)H\big)

is convex and decreasing in ``u`` (a log-sum-exp of convex functions). Newton's method started to
the left of the root therefore increases monotonically to it without overshoot, whatever the
spread of the exponents; once the active set has settled it converges quadratically. The start
``u_0`` makes the largest single allocation equal twice the budget, so ``g(u_0) >= log 2 > 0``.

Zero weights: a domain with ``h_i = 0`` gets exactly the floor ``x_i = H`` (more capacity would
lower no weighted loss). Degenerate budget: when ``N <= H`` the budget cannot exceed the floors;
every domain then gets ``x_i = H`` (the limit of the solution as ``N`` decreases to ``H``) and the
derivatives with respect to ``N`` vanish there. The same holds to rounding when ``N`` exceeds
``H`` by less than ~1e-13 relative (a fit whose head ``H`` ends on its bound, the smallest model
size, predicts that size so): there the budget residual is flat (every domain on its floor), and
Newton's method stops instead of dividing by its zero slope.

Derivatives come from the implicit function theorem applied to ``g(u; h, b, c, N, H) = 0``
(a ``jax.custom_jvp`` on the multiplier), never from unrolling the Newton iterations; every other
step is an ordinary differentiable expression of ``u``.

Shared tail ranks (:func:`log_shared_allocation`): when a fraction ``ρ`` of every domain's tail
ranks is one feature shared by all domains, the same problem gains a shared threshold ``x_s``
(kept while the summed score beats the multiplier) and a budget that counts a shared rank once;
it is solved in ``log x_s`` by a bracketed Newton iteration, with the same implicit derivatives.
The simulator's top-``N`` keep rule with overlapping tails is this allocation to the rounding of
whole features (``tests/test_theory_derivation.py``, test 7).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from ._checks import known_values

__all__ = ["allocate", "is_exact", "log_allocation", "log_floor_gap", "log_multiplier",
           "log_shared_allocation", "log_shared_floor_gap", "log_shared_rank", "smooth_max"]

_MAX_NEWTON_STEPS = 200


def is_exact(smoothing) -> bool:
    """Whether the kink-smoothing temperature ``smoothing`` selects the exact function: a Python
    (or NumPy) number equal to 0. A JAX array is a positive temperature given as a value
    (traced, e.g. by the fitter's kink continuation, whose stages then share one compiled
    program), so it always selects the smooth branch."""
    return not isinstance(smoothing, jax.Array) and float(smoothing) == 0.0


def _temperature(smoothing):
    """``smoothing`` as the custom derivatives below take it: a float, or the array as is."""
    return smoothing if isinstance(smoothing, jax.Array) else float(smoothing)


def smooth_max(x, floor, smoothing: float):
    """``max(x, floor)``, or with ``smoothing = τ > 0`` (a Python number, or a JAX array:
    :func:`is_exact`) its smooth upper bound
    ``floor + τ softplus((x − floor)/τ)`` (within ``τ log 2`` of it, equal far from the kink):
    the floors of the kink continuation's laws (:meth:`mixscale.laws.AbstractLaw.smoothed`)."""
    if is_exact(smoothing):
        return jnp.maximum(x, floor)
    return floor + smoothing * jax.nn.softplus((x - floor) / smoothing)


def _unfloored(u, h, b, c):
    """``log (h_i b_i c_i / λ)^{1/(b_i+1)}``, the allocation before the floor, at ``u = log λ``
    (finite for zero weights, whose value the callers replace). Shapes: (K,)."""
    h_safe = jnp.where(h > 0, h, 1.0)  # keeps the unselected branch finite (double-where)
    beta = 1.0 / (b + 1.0)
    ell = jnp.log(h_safe) + jnp.log(b) + jnp.log(c)
    return beta * (ell - u)  # this order of operations: fits reproduce to the last bit


def _log_alloc_given_u(u, h, b, c, N, H, smoothing: float = 0.0):
    """``log x_i(u)`` for every domain; zero-weight domains sit at ``log H``. Shapes: (K,)."""
    positive = h > 0
    log_h = jnp.log(H)
    free = _unfloored(u, h, b, c)
    return jnp.where(positive, smooth_max(free, log_h, smoothing), log_h * jnp.ones_like(free))


def _budget_residual(u, h, b, c, N, H, smoothing: float = 0.0):
    """``g(u)``: log of the total allocation minus log of the budget ``N + (K-1)H``."""
    k = h.shape[-1]
    log_x = _log_alloc_given_u(u, h, b, c, N, H, smoothing)
    return jax.nn.logsumexp(log_x) - jnp.log(N + (k - 1) * H)


def _compiled_by_temperature(solve):
    """``solve(..., smoothing)`` compiled once per shape and temperature, also when called
    eagerly.

    The Newton loops below close over their inputs, so an eager call (outside ``jax.jit``)
    would trace and compile a fresh ``while_loop`` every time (an eager ``allocate`` at K = 17
    took 179 ms after its first call on a 2-core machine, 1.0 ms compiled once); inside a traced
    law the compiled call is traced once per shape and reused by every later trace. A
    temperature given as a Python number is a static argument (it selects the exact or the
    smoothed branch, :func:`is_exact`); one given as a JAX array is traced, as
    the kink continuation passes it (:func:`is_exact`)."""
    number = jax.jit(solve, static_argnames="smoothing")
    value = jax.jit(solve)

    @functools.wraps(solve)
    def call(*args, smoothing):
        return (value if isinstance(smoothing, jax.Array) else number)(*args, smoothing=smoothing)

    return call


@_compiled_by_temperature
def _newton_solve(h, b, c, N, H, smoothing: float = 0.0):
    k = h.shape[-1]
    feasible = N > H
    # An infeasible budget is replaced by a feasible one so the loop stays finite; the caller
    # selects the all-floor answer for it.
    budget = jnp.where(feasible, N + (k - 1) * H, (k + 1.0) * H)
    n_eff = budget - (k - 1) * H
    positive = h > 0
    beta = 1.0 / (b + 1.0)
    ell = jnp.log(jnp.where(positive, h, 1.0)) + jnp.log(b) + jnp.log(c)
    starts = jnp.where(positive, ell - jnp.log(2.0 * budget) / beta, -jnp.inf)
    u0 = jnp.max(starts)

    def residual_and_slope(u):
        return jax.value_and_grad(_budget_residual)(u, h, b, c, n_eff, H, smoothing)

    def cond(state):
        i, _, step = state
        return (i < _MAX_NEWTON_STEPS) & (jnp.abs(step) > 1e-13 * (1.0 + jnp.abs(state[1])))

    def body(state):
        i, u, _ = state
        g, dg = residual_and_slope(u)
        # dg = 0 only where every domain sits on its floor: the floors use up the budget to
        # rounding (N - H below ~1e-13 N), the answer is x = H, and the iteration stops there
        # instead of dividing by zero.
        step = jnp.where(dg < 0, -g / jnp.where(dg < 0, dg, -1.0), 0.0)
        return i + 1, u + step, step

    dtype = jnp.result_type(h, b, c, N, H, float)
    init = (jnp.asarray(0), u0.astype(dtype), jnp.asarray(jnp.inf, dtype))
    _, u, _ = lax.while_loop(cond, body, init)
    return u


def log_multiplier(h, b, c, N, H, smoothing: float = 0.0):
    r"""``u = log λ``: the log KKT multiplier of the allocation problem.

    Args:
        h: ``(K,)`` mixture weights (non-negative, at least one positive).
        b: ``(K,)`` capacity exponents, > 0.
        c: ``(K,)`` capacity amplitudes, > 0.
        N: scalar capacity budget (same units as ``H``), > 0.
        H: scalar shared-head size, > 0.
        smoothing: ``τ ≥ 0`` (log units): the floor ``max(log H, ·)`` replaced by its softplus
            smoothing of temperature ``τ`` (:func:`log_allocation`); ``0``: exact; a JAX
            array: a positive temperature as a value (:func:`is_exact`).

    Returns:
        Scalar ``u``. Differentiable by the implicit function theorem.
    """
    return _log_multiplier(h, b, c, N, H, _temperature(smoothing))


@functools.partial(jax.custom_jvp, nondiff_argnums=(5,))
def _log_multiplier(h, b, c, N, H, smoothing):
    return _newton_solve(h, b, c, N, H, smoothing=smoothing)


@_log_multiplier.defjvp
def _log_multiplier_jvp(smoothing, primals, tangents):
    h, b, c, N, H = primals
    u = _log_multiplier(h, b, c, N, H, smoothing)
    g_u = jax.grad(_budget_residual)(u, h, b, c, N, H, smoothing)
    _, g_theta = jax.jvp(lambda *theta: _budget_residual(u, *theta, smoothing), primals,
                         tangents)
    # Infeasible (N <= H), or every domain on its floor to rounding (g_u = 0): the allocation
    # does not move with u there. Guard the division so the masked branch stays finite in
    # reverse mode too.
    moving = (N > H) & (g_u < 0)
    du = -g_theta / jnp.where(moving, g_u, -1.0)
    return u, jnp.where(moving, du, jnp.zeros_like(du))


def log_allocation(h, b, c, N, H, smoothing: float = 0.0):
    r"""``log x*_i(h, N)`` for every domain, shape ``(K,)``.

    Converged to about 1e-13 in ``log λ`` (so to ~1e-13 relative in ``x``) in float64. Derivatives
    with respect to every argument are exact (implicit differentiation of the budget constraint).
    When ``N <= H`` every domain gets the floor ``H``.

    ``smoothing = τ > 0`` (a Python number, or a JAX array: :func:`is_exact`) replaces the
    floor :math:`\max(\log H, f_i)` of a positive-weight domain by
    :math:`\log H + \tau\,\mathrm{softplus}((f_i - \log H)/\tau)`,
    the same budget still met exactly: the allocation is then smooth in every argument (the
    exact one has a kink where a domain's unconstrained allocation meets the floor), and it
    tends to the exact one as ``τ → 0``. It serves the fitter's kink continuation
    (:func:`mixscale.fit`, ``smooth_kinks``); the budget residual stays convex and decreasing
    in ``u``, so the Newton solve keeps its guarantees.
    """
    _check_known(h, N, H)
    dtype = jnp.result_type(h, b, c, N, H, float)
    h, b, c, N, H = (jnp.asarray(v, dtype) for v in (h, b, c, N, H))
    u = log_multiplier(h, b, c, N, H, smoothing)
    log_x = _log_alloc_given_u(u, h, b, c, N, H, smoothing)
    return jnp.where(N > H, log_x, jnp.log(H) * jnp.ones_like(log_x))


def _check_known(h, N, H) -> None:
    """A weight that is NaN, infinite or negative, or a size or head that is NaN or infinite,
    refused where the values are known (not traced): the solve reads a NaN weight as a zero
    weight and a NaN size as one below the head, and would return a finite allocation."""
    known_values(h, "h (mixture weights)", non_negative=True)
    known_values(N, "N (model size)")
    known_values(H, "H (head)")


def log_floor_gap(h, b, c, N, H):
    r"""``log x_i^{free} − log H`` ``(K,)``: how far each positive-weight domain's unconstrained
    allocation :math:`(h_i b_i c_i/\lambda)^{1/(b_i+1)}` lies above the head floor (negative:
    below it, the domain sits on the floor); ``inf`` for zero weights. The exact allocation has
    a kink where it is 0 (see :func:`log_allocation`'s ``smoothing``), and fits that stop early
    there can be found by it (``benchmarks/bench_polish.py``)."""
    u = log_multiplier(h, b, c, N, H)
    return jnp.where(h > 0, _unfloored(u, h, b, c) - jnp.log(H), jnp.inf)


def log_shared_floor_gap(h, b, c, N, H, rho):
    r"""The kinks of :func:`log_shared_allocation`: ``(K + 1,)``, each positive-weight domain's
    ``log x_i^{free} − log H`` (its unconstrained own allocation at the multiplier the shared
    rank sets, against the head floor; ``inf`` for zero weights, as :func:`log_floor_gap`) and
    ``log x_s − log H`` for the shared rank's floor ``max(x_s, H)``."""
    dtype = jnp.result_type(h, b, c, N, H, rho, float)
    h, b, c, N, H, rho = (jnp.asarray(v, dtype) for v in (h, b, c, N, H, rho))
    y = log_shared_rank(h, b, c, N, H, rho)
    positive = h > 0
    ell = jnp.log(jnp.where(positive, h, 1.0)) + jnp.log(b) + jnp.log(c)
    u = jax.nn.logsumexp(jnp.where(positive, ell - (b + 1.0) * y, -jnp.inf))
    log_h = jnp.log(H)
    own = jnp.where(positive, _unfloored(u, h, b, c) - log_h, jnp.inf)
    return jnp.concatenate([own, (y - log_h)[None]])


def allocate(h, b, c, N, H):
    r"""The capacity allocation ``x*(h, N)``, shape ``(K,)``; see the module docstring.

    Example:
        >>> import jax.numpy as jnp
        >>> x = allocate(jnp.array([0.5, 0.5]), jnp.array([0.5, 0.5]), jnp.ones(2), 10.0, 1.0)
        >>> [round(float(v), 6) for v in x]   # symmetric domains split N + H = 11 evenly
        [5.5, 5.5]
    """
    return jnp.exp(log_allocation(h, b, c, N, H))


# ----------------------------------------------------------------- shared tail ranks
_MAX_SAFEGUARDED_STEPS = 200


def _shared_parts(y, h, b, c, N, H, rho, smoothing: float = 0.0):
    """Given ``y = log x_s`` (the last shared tail rank kept): ``log x_i(u)`` ``(K,)`` at the
    multiplier ``u = log Σ_j h_j b_j c_j x_s^(−b_j−1)``, and the budget residual
    ``log(H + (1 − ρ) Σ_i (x_i − H) + ρ (max(x_s, H) − H)) − log N`` (with ``smoothing > 0``
    every floor ``max(log H, ·)`` smoothed, :func:`smooth_max`)."""
    positive = h > 0
    ell = jnp.log(jnp.where(positive, h, 1.0)) + jnp.log(b) + jnp.log(c)
    u = jax.nn.logsumexp(jnp.where(positive, ell - (b + 1.0) * y, -jnp.inf))
    log_x = _log_alloc_given_u(u, h, b, c, N, H, smoothing)
    # exact: max(x_s, H) as before (the log-space floor would round differently)
    kept = (jnp.maximum(jnp.exp(y), H) if is_exact(smoothing)
            else jnp.exp(smooth_max(y, jnp.log(H), smoothing)))
    used = H + (1.0 - rho) * jnp.sum(jnp.exp(log_x) - H) + rho * (kept - H)
    return log_x, jnp.log(used) - jnp.log(N)


def _shared_residual(y, h, b, c, N, H, rho, smoothing: float = 0.0):
    return _shared_parts(y, h, b, c, N, H, rho, smoothing)[1]


@_compiled_by_temperature
def _shared_solve(h, b, c, N, H, rho, smoothing: float = 0.0):
    """The root ``y`` of the budget residual, increasing in ``y``: Newton's method kept inside a
    bracket that it shrinks, with a bisection step whenever Newton would leave it."""
    k = h.shape[-1]
    dtype = jnp.result_type(h, b, c, N, H, rho, float)
    n_eff = jnp.where(N > H, N, 2.0 * H)
    # At x_s = H every own allocation is on its floor: the budget H < N (residual < 0). At
    # x_s = e N K^(1/(b_min+1)) some own allocation exceeds e N (residual > 0).
    lo = jnp.log(H).astype(dtype)
    hi = (1.0 + jnp.log(n_eff) + jnp.log(k) / (jnp.min(b) + 1.0)).astype(dtype)

    def residual_and_slope(y):
        return jax.value_and_grad(_shared_residual)(y, h, b, c, n_eff, H, rho, smoothing)

    def cond(state):
        i, lo, hi, y, step = state
        return (i < _MAX_SAFEGUARDED_STEPS) & (jnp.abs(step) > 1e-13 * (1.0 + jnp.abs(y)))

    def body(state):
        i, lo, hi, y, _ = state
        g, dg = residual_and_slope(y)
        lo = jnp.where(g < 0, y, lo)
        hi = jnp.where(g > 0, y, hi)
        newton = y - g / jnp.where(dg > 0, dg, 1.0)
        inside = (dg > 0) & (newton > lo) & (newton < hi)
        new = jnp.where(g == 0, y, jnp.where(inside, newton, 0.5 * (lo + hi)))
        return i + 1, lo, hi, new, new - y

    init = (jnp.asarray(0), lo, hi, 0.5 * (lo + hi), jnp.asarray(jnp.inf, dtype))
    return lax.while_loop(cond, body, init)[3]


def log_shared_rank(h, b, c, N, H, rho, smoothing: float = 0.0):
    """``log x_s``, the last shared tail rank kept (see :func:`log_shared_allocation`, also for
    ``smoothing``); differentiable by the implicit function theorem."""
    return _log_shared_rank(h, b, c, N, H, rho, _temperature(smoothing))


@functools.partial(jax.custom_jvp, nondiff_argnums=(6,))
def _log_shared_rank(h, b, c, N, H, rho, smoothing):
    return _shared_solve(h, b, c, N, H, rho, smoothing=smoothing)


@_log_shared_rank.defjvp
def _log_shared_rank_jvp(smoothing, primals, tangents):
    h, b, c, N, H, rho = primals
    y = _log_shared_rank(*primals, smoothing)
    g_y = jax.grad(_shared_residual)(y, *primals, smoothing)
    _, g_theta = jax.jvp(lambda *theta: _shared_residual(y, *theta, smoothing), primals,
                         tangents)
    moving = (N > H) & (g_y > 0)
    dy = -g_theta / jnp.where(moving, g_y, 1.0)
    return y, jnp.where(moving, dy, jnp.zeros_like(dy))


def log_shared_allocation(h, b, c, N, H, rho, smoothing: float = 0.0):
    r"""The capacity allocation when a fraction ``ρ`` of every domain's tail ranks is shared.

    A shared tail rank is one unit of capacity that serves every domain (like the head), an own
    rank serves one domain. The model keeps own ranks of domain ``i`` up to ``x_i`` and shared
    ranks up to ``x_s``, minimising the mixture-weighted loss beyond them,

    .. math::

        \min_{x, x_s} \sum_i h_i c_i \big[(1-\rho)\, x_i^{-b_i} + \rho\, x_s^{-b_i}\big]
        \quad\text{s.t.}\quad H + (1-\rho)\sum_i (x_i - H) + \rho\,(x_s - H) = N,
        \quad x_i, x_s \ge H .

    KKT with multiplier :math:`\lambda = e^u`: :math:`x_i = \max(H, (h_i b_i c_i/\lambda)^{1/(b_i
    + 1)})` as in :func:`log_allocation`, and :math:`\sum_j h_j b_j c_j x_s^{-b_j - 1} =
    \lambda` (a shared rank is kept while its *summed* score beats the threshold, so
    :math:`x_s \ge \max_i x_i`). Parameterised by ``y = log x_s``, the multiplier and every
    ``x_i`` are explicit and the budget is increasing in ``y``: one safeguarded Newton solve.
    ``ρ = 0`` is :func:`log_allocation` (then ``x_s`` is where the summed score meets the
    threshold, kept by no rank); ``ρ = 1`` gives ``x_s = N``.

    Args: as :func:`log_allocation`, plus ``rho`` (scalar in ``[0, 1]``); ``smoothing = τ > 0``
        (a Python number, log units) smooths every floor ``max(log H, ·)``, of the own ranks
        and of ``x_s``, as :func:`log_allocation` does (the budget is still met exactly).

    Returns:
        ``(log x, log x_s)``: shapes ``(K,)`` and ``()``. When ``N <= H`` every rank sits at
        ``H``.
    """
    _check_known(h, N, H)
    dtype = jnp.result_type(h, b, c, N, H, rho, float)
    h, b, c, N, H, rho = (jnp.asarray(v, dtype) for v in (h, b, c, N, H, rho))
    y = log_shared_rank(h, b, c, N, H, rho, smoothing)
    log_x, _ = _shared_parts(y, h, b, c, N, H, rho, smoothing)
    log_h = jnp.log(H)
    feasible = N > H
    return (jnp.where(feasible, log_x, log_h * jnp.ones_like(log_x)),
            jnp.where(feasible, smooth_max(y, log_h, smoothing), log_h))
