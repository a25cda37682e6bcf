r"""How sure is an optimal mixture? The optimum of every bootstrap replicate of a fit.

For a fit with bootstrap replicates (:mod:`mixscale._bootstrap`), :func:`optimal_mixture_intervals`
runs the search of :func:`mixscale.optimal_mixture` on the point law (its result ``h*``) and, in
one ``vmap``-ed compiled call, on every replicate law ``L^(b)``, giving

* the replicates' optimal mixtures ``h*_b`` and, per domain, the percentile interval of the
  optimal weight ``h*_{b,i}`` (:func:`mixscale._bootstrap.interval`; the weights are optima of a
  constrained search, with no standard error to studentize by);
* the *objective at the point mixture*, ``f_b(h*) = Σ_m w_m L^(b)_m(h*, N, D) / Σ_m w_m``: the
  weighted mean loss that each replicate law predicts for the mixture one would actually train
  on; its spread is the uncertainty of the promised loss;
* the *regret* ``f_b(h*) − f_b(h*_b) ≥ 0``: what choosing ``h*`` costs if replicate ``b`` were
  the truth — small when the optimum is flat, whatever the spread of ``h*_b``;
* the *L1 distance* ``Σ_i |h*_{b,i} − h*_i|`` of each replicate's optimum from ``h*``: the scale
  against which to judge a move of the optimum (with scale, or between laws) of the same size.

Each replicate's search starts from ``h*``, the uniform mixture and ``n_replicate_starts − 2``
Dirichlet draws (seeded): the replicate optimum is expected near ``h*``, and the other starts
guard against a replicate whose optimum moved to another basin. A replicate whose search gives a
non-finite objective is left out and counted, like a failed refit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._bootstrap import Intervals, check_level, interval
from ._mixture import MixtureResult, _spg, optimal_mixture

__all__ = ["MixtureIntervals", "optimal_mixture_intervals"]


@dataclasses.dataclass(frozen=True)
class MixtureIntervals:
    """The optimal mixture of a fit and its bootstrap spread.

    Attributes:
        point: the point law's optimum (:class:`mixscale.MixtureResult`).
        weights: :class:`~mixscale._bootstrap.Intervals` ``(K,)`` of the optimal weight of each
            training domain (percentile); ``weights.samples`` is ``(B_ok, K)``, the replicates'
            optimal mixtures.
        objective_at_point: ``(B_ok,)`` each replicate law's weighted mean loss at ``point``'s
            mixture.
        objective_at_own: ``(B_ok,)`` each replicate law's weighted mean loss at its own
            optimum.
        converged: ``(B_ok,)`` whether each replicate's search met the tolerance.
        n_failed: replicates left out: failed refits plus searches with a non-finite result.
        n_replicates: ``B``, the replicates of the fit.
        model_size, tokens: ``N`` and ``D`` of the search, in law units.
    """

    point: MixtureResult
    weights: Intervals
    objective_at_point: np.ndarray
    objective_at_own: np.ndarray
    converged: np.ndarray
    n_failed: int
    n_replicates: int
    model_size: float
    tokens: float

    @property
    def regret(self) -> np.ndarray:
        """``(B_ok,)`` ``f_b(h*) − f_b(h*_b)``, clipped at 0 (a replicate search that ended
        above ``h*`` counts as no regret)."""
        return np.maximum(self.objective_at_point - self.objective_at_own, 0.0)

    @property
    def distance(self) -> np.ndarray:
        """``(B_ok,)`` ``Σ_i |h*_{b,i} − h*_i|``: how far each replicate's optimum lies from the
        point estimate's (L1, on the simplex: 0 to 2)."""
        return np.abs(self.weights.samples - self.point.weights[None, :]).sum(axis=1)


@eqx.filter_jit
def _replicate_optima(params, static, starts, N, D, w, lo, hi, h_point, tol, max_steps, scale):
    """Each replicate's best optimum ``(h, f, stationarity)`` and its objective at
    ``h_point``, the objectives in the law's units (the search runs on ``f / scale``)."""

    def one(p):
        law = eqx.combine(p, static)
        h, f, pg, _ = _spg(law, starts, N, D, w, lo, hi, tol, max_steps, scale)
        f = jnp.where(jnp.isfinite(f), f, jnp.inf)
        best = jnp.argmin(f)
        at_point = jnp.dot(w, law.predict(h_point, N, D)) / jnp.sum(w)
        return h[best], f[best] * scale, pg[best], at_point

    return jax.vmap(one)(params)


def optimal_mixture_intervals(result, N: float, D: float, *,
                              target_weights: Sequence[float] | None = None,
                              lower: Sequence[float] | None = None,
                              upper: Sequence[float] | None = None, n_starts: int = 16,
                              n_replicate_starts: int = 4, seed: int = 0, tol: float = 1e-9,
                              max_steps: int = 3000, level: float = 0.9) -> MixtureIntervals:
    """The optimal mixture of a bootstrapped fit at size ``N`` and tokens ``D`` (law units),
    with per-domain intervals of the optimal weights and the replicates' objective at it.

    Args:
        result: a :class:`mixscale.FitResult` fitted with ``n_bootstrap > 0``.
        N, D, target_weights, lower, upper, n_starts, seed, tol, max_steps: as in
            :func:`mixscale.optimal_mixture` (``n_starts`` for the point law's search).
        n_replicate_starts: starts of each replicate's search (at least 2; see the module
            docstring).
        level: nominal coverage of the weight intervals (default 0.9).

    Returns:
        A :class:`MixtureIntervals`.
    """
    level = check_level(level)
    boot = getattr(result, "bootstrap", None)
    if boot is None:
        raise ValueError("this fit has no bootstrap replicates: fit with n_bootstrap=B "
                         "(mixscale fit --bootstrap B)")
    if isinstance(n_replicate_starts, bool) or not isinstance(n_replicate_starts, int) or \
            n_replicate_starts < 2:
        raise ValueError(f"n_replicate_starts must be an integer >= 2, got "
                         f"{n_replicate_starts!r}")
    law = result.law
    point = optimal_mixture(law, N, D, target_weights=target_weights, lower=lower, upper=upper,
                            n_starts=n_starts, seed=seed, tol=tol, max_steps=max_steps)
    # optimal_mixture has checked every argument; rebuild them as arrays.
    k = law.n_train_domains
    m = point.losses.shape[0]
    w = np.ones(m) if target_weights is None else np.asarray(target_weights, dtype=float)
    lo = np.zeros(k) if lower is None else np.asarray(lower, dtype=float)
    hi = np.ones(k) if upper is None else np.asarray(upper, dtype=float)
    rng = np.random.default_rng(seed)
    starts = [point.weights, np.full(k, 1.0 / k)]
    starts += [rng.dirichlet(np.full(k, 0.5)) for _ in range(n_replicate_starts - 2)]
    _, static = eqx.partition(law, eqx.is_inexact_array)
    n_ok = boot.n_ok
    if n_ok < 2:
        raise ValueError(f"only {n_ok} of {boot.n_replicates} bootstrap replicates succeeded; "
                         "an interval needs at least 2")
    h, f, pg, at_point = (np.asarray(x) for x in _replicate_optima(
        boot.params, static, jnp.asarray(np.stack(starts)), jnp.asarray(N, float),
        jnp.asarray(D, float), jnp.asarray(w), jnp.asarray(lo), jnp.asarray(hi),
        jnp.asarray(point.weights), tol, max_steps,
        # the point search's units: every replicate is searched on the same scale
        jnp.asarray(point.objective_scale, float)))
    keep = np.isfinite(f) & np.isfinite(at_point) & np.all(np.isfinite(h), axis=1)
    if keep.sum() < 2:
        raise ValueError("fewer than 2 replicate searches ended at a finite objective")
    return MixtureIntervals(
        point=point, weights=interval(point.weights, h[keep], level),
        objective_at_point=at_point[keep], objective_at_own=f[keep],
        converged=pg[keep] <= tol, n_failed=boot.n_failed + int((~keep).sum()),
        n_replicates=boot.n_replicates, model_size=float(N), tokens=float(D))
