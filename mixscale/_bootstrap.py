r"""Bootstrap confidence intervals of a fitted law: refits on resampled mixtures.

Resampling unit. The runs of one mixture (rows with the same weight vector,
:func:`mixscale.data.mixture_ids`: every model size and token checkpoint of it) are resampled
together: they share one data sample and one training trajectory, so their errors are correlated,
and the mixture is the unit the practitioner chose and could have chosen differently. For a law
with model-size or token terms the group is the mixture across all scales (not mixture × scale),
which keeps the correlation of a run's checkpoints inside one group.

Replicate ``b`` draws ``G`` of the ``G`` mixtures uniformly with replacement; mixture ``g`` drawn
``m_bg`` times weighs each of its rows by ``w_br = m_{b,g(r)}`` in the objective
(:mod:`mixscale._objective`: ``J_w = Σ w_r huber(r_rm) / Σ w_r``, over observed entries). The
draws come from ``jax.random`` keys derived from the fit's seed alone, so a seed gives the same
replicates on every run.

Refits. Every replicate is refitted by the same Levenberg–Marquardt solver, objective, parameter
ranges and stopping rule as the point fit, warm-started from the point estimate's best law (one
start per replicate: the replicate's optimum is the point optimum moved by the resampling, and a
warm start finds that local optimum rather than another basin, at a fraction of the cost of
restarts). The ``B`` replicates are the restarts of one vectorised queue
(:func:`mixscale._lm.solve_lm`), so they share one compilation with each other — and, with
all-ones weights, reproduce the unweighted fit exactly.

Failures. A replicate whose objective or parameters are not finite is *failed*: it is left out of
every interval, and counted (:attr:`Bootstrap.n_failed`). Replicates that stopped at ``max_steps``
before meeting the stopping rule are kept (their objective is finite and their parameters have
moved from the point estimate to near the replicate's optimum) and counted
(:attr:`Bootstrap.n_unconverged`). A target whose observed losses all sit in mixtures that a
replicate did not draw has nothing to fit there: its own parameters stay at the point estimate in
that replicate (rare unless a target is measured in very few mixtures; it narrows that target's
intervals).

Intervals. For a quantity ``θ`` (a predicted loss, a natural parameter, an optimal weight) with
point estimate ``θ̂`` and the ``B`` successful replicates' values ``θ*_b``:

* *percentile* (``method="percentile"``, the default): ``[θ*_(k), θ*_(B+1−k)]`` at level
  ``1 − α``, the order statistics at ``k = (B + 1) α/2`` (interpolated between neighbours when
  that is not an integer: ``numpy.quantile(..., method="weibull")``; Efron & Tibshirani 1993,
  §13.3; Davison & Hinkley 1997, §5.2.3). Why not the plain sample quantile
  (``numpy.quantile``'s default, position ``(B − 1) p + 1``): with ``B = 64`` its 5 % and 95 %
  points are on average the 6.4 % and 93.6 % points of the bootstrap distribution, so a
  "90 %" interval spans only 87 % of it; the ``(B + 1) p`` position spans 90 % on average for
  any ``B``. On planted BiMix tables (as in ``tests/test_bootstrap.py``, 150 tables, 3 token
  budgets) this moved the coverage of nominal 90 % intervals of predicted losses from 84 % to
  87 % with 12 mixtures, and from 85 % to 88 % with 20.
  The rest of the shortfall is the usual small-sample narrowness of resampling: each mixture's
  own noise is partly fitted, by a share that grows with the parameters per mixture.
* *studentized* (bootstrap-t, ``method="studentized"``; Efron & Tibshirani 1993, §12.5;
  Davison & Hinkley 1997, §5.2.1): with a standard error ``se`` from the delta method,

  .. math::

      t^*_b = \frac{\theta^*_b - \hat\theta}{se^*_b}, \qquad
      \Big[\hat\theta - t^*_{1-\alpha/2}\,\widehat{se},\ \
      \hat\theta - t^*_{\alpha/2}\,\widehat{se}\Big],

  where ``se² = g^T (s² (J^T J)^+) g``: ``J`` is the Jacobian of the (row-weighted) Huber
  residuals ``ψ`` in the flat raw parameters at that fit's optimum, ``s² = Σψ² / (Σ_Ω w − P)``
  and ``g = ∂θ/∂p``; quantiles of ``t*`` as above. A constant misscaling of ``se``
  (heteroscedastic targets, correlated runs of a mixture) cancels between ``t*`` and ``ŝe``. It
  needs the training table again (to rebuild each replicate's weighted residuals), and a
  replicate whose ``se*`` is zero or not finite for a quantity is left out of that quantity's
  ``t*``. On the planted tables it covered as often as the percentile interval (within 0.5
  points), so the simpler percentile interval is the default. On parameters that the data do
  not pin down (a flat direction of ``J^T J``) its ``se`` is unstable and the interval can be
  absurd (negative for a positive parameter): use the percentile interval there.

Calibration: ``tests/test_bootstrap.py`` fits planted noisy tables and checks that nominal 90 %
intervals of predicted losses cover the planted law's noiseless losses 85–95 % of the time (see
that test for the number of tables and the figure measured).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._checks import runs
from ._lm import GTOL, solve_lm
from ._objective import (
    DEFAULT_HUBER_DELTA,
    FitData,
    Layout,
    Replicate,
    first_restart,
    observed_weight,
    residuals,
    with_replicate,
)
from .data import WEIGHT_SUM_TOLERANCE

__all__ = ["Bootstrap", "Intervals", "MAX_REPLICATES", "MIN_REPLICATES", "draw_multiplicities",
           "interval", "parameter_intervals", "predict_replicates", "prediction_intervals",
           "resampling_key", "run_bootstrap", "standard_errors", "studentized_interval"]

#: Fewest and most replicates a bootstrap may have (``mixscale fit --bootstrap B``).
MIN_REPLICATES, MAX_REPLICATES = 2, 4096
#: Folded into the fit's seed so that the resampling stream differs from the restarts' stream.
_STREAM = 0xB0075


@dataclasses.dataclass(frozen=True, eq=False)
class Bootstrap:
    """The bootstrap replicates of a fit (:attr:`mixscale.FitResult.bootstrap`).

    Attributes:
        params: the refitted laws of the successful replicates: the law's parameter half
            (``eqx.partition(law, eqx.is_inexact_array)[0]``) with every leaf batched
            ``(B_ok, ...)``; combine with the point law's static half to predict.
        objectives: ``(B,)`` each replicate's weighted objective ``J_w`` (``inf``: failed).
        converged: ``(B,)`` whether each replicate met the stopping rule.
        seed: the seed the resampling was drawn from (the fit's seed).
        n_groups: ``G``, the number of mixtures resampled.
        multiplicities: ``(B, G)`` how often replicate ``b`` drew mixture ``g`` (groups numbered
            by :func:`mixscale.data.mixture_ids` of the training table; rows sum to ``G``).
        n_rows: ``n``, the training table's rows (to check a table given back for studentized
            intervals).
        huber_delta: the objective's Huber threshold.
        seconds: wall seconds the refits took.
    """

    params: Any
    objectives: np.ndarray
    converged: np.ndarray
    seed: int
    n_groups: int
    multiplicities: np.ndarray
    n_rows: int
    huber_delta: float = DEFAULT_HUBER_DELTA
    seconds: float = 0.0

    @property
    def n_replicates(self) -> int:
        """``B``, the replicates drawn."""
        return int(len(self.objectives))

    @property
    def ok(self) -> np.ndarray:
        """``(B,)`` which replicates succeeded (finite objective and parameters)."""
        return np.isfinite(self.objectives)

    @property
    def n_ok(self) -> int:
        """``B_ok``, the replicates behind every interval."""
        return int(self.ok.sum())

    @property
    def n_failed(self) -> int:
        """Replicates left out of the intervals (non-finite objective or parameters)."""
        return self.n_replicates - self.n_ok

    @property
    def n_unconverged(self) -> int:
        """Successful replicates that stopped at ``max_steps`` (kept in the intervals)."""
        return int(np.sum(self.ok & ~self.converged))


@dataclasses.dataclass(frozen=True)
class Intervals:
    """Point estimates with bootstrap intervals, elementwise.

    Attributes:
        point: the point estimate's values.
        lower, upper: the interval's ends (same shape as ``point``).
        samples: ``(B_ok, *point.shape)`` the successful replicates' values.
        level: the nominal coverage, e.g. ``0.9``.
    """

    point: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    samples: np.ndarray
    level: float


def check_level(level: float) -> float:
    """``level`` as a float in ``(0, 1)``; ``ValueError`` otherwise."""
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) or not (
            0.0 < float(level) < 1.0):
        raise ValueError(f"level must be a number in (0, 1), e.g. 0.9, got {level!r}")
    return float(level)


def interval(point, samples, level: float = 0.9) -> Intervals:
    """The percentile interval of ``samples`` ``(B, ...)`` at ``level``, for each entry.

    ``lower = q_{(1 − level)/2}``, ``upper = q_{(1 + level)/2}`` over the replicate axis, the
    quantile at probability ``p`` taken at order-statistic position ``(B + 1) p`` (see the module
    docstring). Non-finite samples must have been left out before (``ValueError`` otherwise),
    and at least 2 are needed.
    """
    level = check_level(level)
    samples = np.asarray(samples, dtype=np.float64)
    point = np.asarray(point, dtype=np.float64)
    if samples.ndim < 1 or samples.shape[0] < 2:
        raise ValueError("a bootstrap interval needs at least 2 successful replicates")
    if samples.shape[1:] != point.shape:
        raise ValueError(f"samples {samples.shape} do not match the point estimate "
                         f"{point.shape}")
    if not np.all(np.isfinite(samples)):
        raise ValueError("bootstrap samples must be finite (leave failed replicates out)")
    alpha = 1.0 - level
    lower, upper = np.quantile(samples, [alpha / 2, 1 - alpha / 2], axis=0, method="weibull")
    return Intervals(point=point, lower=lower, upper=upper, samples=samples, level=level)


def draw_multiplicities(key: jax.Array, n_groups: int, n_boot: int) -> np.ndarray:
    """``(n_boot, n_groups)`` integer counts: replicate ``b`` draws ``n_groups`` groups uniformly
    with replacement (each row sums to ``n_groups``)."""
    draws = jax.random.randint(key, (n_boot, n_groups), 0, n_groups)
    counts = jax.vmap(lambda d: jnp.bincount(d, length=n_groups))(draws)
    return np.asarray(counts, dtype=np.int64)


def resampling_key(seed: int, table_index: int = 0) -> jax.Array:
    """The ``jax.random`` key of the resampling for ``seed`` (and the ``table_index``-th table
    of a batch of tables sharing one design)."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), _STREAM), table_index)


def run_bootstrap(start, static, data: FitData, groups: np.ndarray, n_boot: int, seed: int, *,
                  delta, rtol: float, max_steps: int, chunk: int, bounds=None,
                  gtol: float | None = GTOL,
                  per_target_fields: tuple[str, ...] = (), losses: np.ndarray | None = None,
                  progress: Callable[[int, float], None] | None = None,
                  geodesic: bool = False) -> list[Bootstrap]:
    """Refit ``n_boot`` group-resampled replicates of one table, or of ``T`` tables that share
    the design of ``data`` (weights, sizes, tokens, mask) but have their own ``losses``.

    Args:
        start: the point estimates' parameter halves, leaves batched ``(T, ...)`` (one per
            table; ``T = 1`` for one table).
        static: the law's static half.
        data: the design and (for one table) the losses.
        groups: ``(n,)`` resampling group of each row, ids ``0 .. G−1``.
        n_boot: replicates per table, in ``[MIN_REPLICATES, MAX_REPLICATES]``.
        seed: the resampling seed; table ``t`` uses :func:`resampling_key` ``(seed, t)``.
        delta, rtol, max_steps, chunk, bounds, gtol, per_target_fields, geodesic: the point
            fit's settings
            (see :func:`mixscale.fit`).
        losses: ``(T, n, M)`` each table's losses (``1.0`` where not observed), or ``None`` to
            use ``data.losses`` (then ``T`` must be 1).
        progress: ``progress(finished, best_objective)`` from the solver's queue.

    Returns:
        One :class:`Bootstrap` per table. All ``T · n_boot`` refits run in one queue of
        ``chunk`` vectorised slots (one compilation).
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or not (
            MIN_REPLICATES <= n_boot <= MAX_REPLICATES):
        raise ValueError(f"the number of bootstrap replicates must be an integer in "
                         f"[{MIN_REPLICATES}, {MAX_REPLICATES}], got {n_boot!r}")
    groups = np.asarray(groups, dtype=np.int64)
    n_groups = int(groups.max()) + 1
    n_tables = jax.tree_util.tree_leaves(start)[0].shape[0]
    if losses is None and n_tables != 1:
        raise ValueError("several start laws need one loss table each (losses)")
    t0 = time.perf_counter()
    mult = np.stack([draw_multiplicities(resampling_key(seed, t), n_groups, n_boot)
                     for t in range(n_tables)])                               # (T, B, G)
    row_weights = mult[:, :, groups].reshape(n_tables * n_boot, -1).astype(float)
    rep_losses = None if losses is None else jnp.asarray(
        np.repeat(np.asarray(losses, dtype=float), n_boot, axis=0))
    params0 = jax.tree_util.tree_map(lambda x: jnp.repeat(x, n_boot, axis=0), start)
    sol = solve_lm(params0, static, data, delta, rtol, max_steps, chunk, progress,
                   per_target_fields=per_target_fields, bounds=bounds, gtol=gtol,
                   geodesic=geodesic, replicates=Replicate(row_weights=jnp.asarray(row_weights),
                                        losses=rep_losses))
    seconds = time.perf_counter() - t0
    f = np.asarray(sol.objectives)
    leaves = [np.asarray(x).reshape(len(f), -1) for x in jax.tree_util.tree_leaves(sol.params)]
    finite = np.isfinite(f) & np.all(np.stack([np.all(np.isfinite(x), axis=1)
                                               for x in leaves]), axis=0)
    f = np.where(finite, f, np.inf)
    conv = np.asarray(sol.converged) & finite
    out = []
    for t in range(n_tables):
        rows = slice(t * n_boot, (t + 1) * n_boot)
        keep = np.flatnonzero(finite[rows]) + t * n_boot
        params = jax.tree_util.tree_map(lambda x, k=keep: x[k], sol.params)
        out.append(Bootstrap(params=params, objectives=f[rows], converged=conv[rows],
                             seed=int(seed), n_groups=n_groups, multiplicities=mult[t],
                             n_rows=len(groups), huber_delta=float(delta),
                             seconds=seconds / n_tables))
    return out


def studentized_interval(point, point_se, samples, sample_se, level: float = 0.9) -> Intervals:
    """The bootstrap-t interval ``[θ̂ − t*_{1−α/2} ŝe, θ̂ − t*_{α/2} ŝe]`` for each entry.

    Args:
        point, point_se: ``θ̂`` and its standard error ``ŝe`` (same shape).
        samples, sample_se: ``(B, ...)`` the replicates' ``θ*_b`` and ``se*_b``.
        level: nominal coverage ``1 − α``.

    Replicates with a zero or non-finite ``se*_b`` (or a non-finite ``θ*_b``) are left out of
    that entry's ``t*``; an entry left with fewer than 2 gets a NaN interval.
    """
    level = check_level(level)
    point, point_se = np.asarray(point, float), np.asarray(point_se, float)
    samples, sample_se = np.asarray(samples, float), np.asarray(sample_se, float)
    if samples.shape != sample_se.shape or samples.shape[1:] != point.shape:
        raise ValueError(f"samples {samples.shape}, their errors {sample_se.shape} and the point "
                         f"estimate {point.shape} do not match")
    valid = np.isfinite(samples) & np.isfinite(sample_se) & (sample_se > 0)
    t = np.where(valid, (samples - point) / np.where(valid, sample_se, 1.0), np.nan)
    alpha = 1.0 - level
    enough = valid.sum(axis=0) >= 2
    t = np.where(enough, t, 0.0)  # nanquantile of an all-NaN slice warns
    t_lo, t_hi = np.nanquantile(t, [alpha / 2, 1 - alpha / 2], axis=0, method="weibull")
    lower = np.where(enough, point - t_hi * point_se, np.nan)
    upper = np.where(enough, point - t_lo * point_se, np.nan)
    return Intervals(point=point, lower=lower, upper=upper, samples=samples, level=level)


@eqx.filter_jit
def _predict_batch(params, static, h, N, D):
    def one(p):
        law = eqx.combine(p, static)
        return jax.vmap(law.predict)(h, N, D)

    return jax.vmap(one)(params)


def predict_replicates(params, static, h, N, D) -> np.ndarray:
    """``(B, n, M)``: every replicate law (parameter leaves ``(B, ...)``) at runs ``h (n, K)``,
    ``N (n,)``, ``D (n,)`` (law units)."""
    h, N, D = _runs(h, N, D)
    return np.asarray(_predict_batch(params, static, h, N, D))


def _runs(h, N, D):
    h = jnp.atleast_2d(jnp.asarray(h, dtype=float))
    n = h.shape[0]
    N = jnp.broadcast_to(jnp.asarray(N, dtype=float), (n,))
    D = jnp.broadcast_to(jnp.asarray(D, dtype=float), (n,))
    return h, N, D


def _delta_se(p, static, data: FitData, layout: Layout, delta, quantity) -> jax.Array:
    """Delta-method standard errors ``(Q,)`` of ``quantity(law)`` ``(Q,)`` at flat parameters
    ``p`` fitted to ``data`` (see the module docstring)."""
    def res(q):
        return residuals(layout.unravel(q), static, data, delta)

    r = res(p)
    jac = jax.jacfwd(res)(p)
    dof = jnp.maximum(observed_weight(data) - p.shape[0], 1.0)
    cov = (jnp.dot(r, r) / dof) * jnp.linalg.pinv(jac.T @ jac, hermitian=True)
    g = jax.jacfwd(lambda q: quantity(eqx.combine(layout.unravel(q), static)))(p)
    return jnp.sqrt(jnp.maximum(jnp.einsum("qp,pk,qk->q", g, cov, g), 0.0))


def _prediction_quantity(h, N, D):
    return lambda law: jax.vmap(law.predict)(h, N, D).ravel()


def _natural_quantity(law):
    return jnp.concatenate([jnp.ravel(v) for v in law.natural_parameters().values()])


@eqx.filter_jit
def _prediction_se(flat, static, data, replicates, layout, delta, h, N, D):
    quantity = _prediction_quantity(h, N, D)
    return jax.vmap(lambda p, r: _delta_se(p, static, with_replicate(data, r), layout, delta,
                                           quantity))(flat, replicates)


@eqx.filter_jit
def _natural_se(flat, static, data, replicates, layout, delta):
    return jax.vmap(lambda p, r: _delta_se(p, static, with_replicate(data, r), layout, delta,
                                           _natural_quantity))(flat, replicates)


def standard_errors(kind: str, params, static, data: FitData, replicates: Replicate | None,
                    delta: float, h=None, N=None, D=None) -> np.ndarray:
    """Delta-method standard errors for a batch of fits (parameter leaves ``(B, ...)``), each
    on ``data`` with its own replicate (leaves ``(B, ...)``, or ``None``: the data as they are).

    ``kind="predictions"``: ``(B, n·M)`` of the predicted losses at runs ``(h, N, D)``, flattened
    run-major; ``kind="natural"``: ``(B, Q)`` of the natural parameters, concatenated in the
    order of :meth:`~mixscale.laws.AbstractLaw.natural_parameters`.
    """
    layout = Layout.of(first_restart(params))
    flat = layout.ravel_batch(params)
    delta = jnp.asarray(delta, dtype=float)
    if kind == "predictions":
        h, N, D = _runs(h, N, D)
        return np.asarray(_prediction_se(flat, static, data, replicates, layout, delta, h, N, D))
    if kind == "natural":
        return np.asarray(_natural_se(flat, static, data, replicates, layout, delta))
    raise ValueError(f"kind must be 'predictions' or 'natural', got {kind!r}")


def _require_bootstrap(result):
    boot = getattr(result, "bootstrap", None)
    if boot is None:
        raise ValueError("this fit has no bootstrap replicates: fit with n_bootstrap=B "
                         "(mixscale fit --bootstrap B)")
    if boot.n_ok < 2:
        raise ValueError(f"only {boot.n_ok} of {boot.n_replicates} bootstrap replicates "
                         "succeeded; an interval needs at least 2")
    return boot


_METHODS = ("studentized", "percentile")


def _training_data(result, boot: Bootstrap, table):
    """The training rows as :class:`FitData` and the successful replicates' row weights."""
    from ._evaluate import check_domains
    from ._objective import prepare_data
    from .data import LossTable, mixture_ids

    if not isinstance(table, LossTable):
        raise TypeError("studentized intervals need the training table (table=LossTable, the "
                        "rows the law was fitted to), or use method='percentile'")
    check_domains(table, result.train_domains, result.size_unit, result.token_unit)
    groups = mixture_ids(table)
    if table.n_runs != boot.n_rows or int(groups.max()) + 1 != boot.n_groups:
        raise ValueError(f"{table.name}: {table.n_runs} runs of {int(groups.max()) + 1} "
                         f"mixtures, but the fit was bootstrapped on {boot.n_rows} runs of "
                         f"{boot.n_groups} mixtures; give the training table itself")
    _, data = prepare_data(table, result.targets)
    weights = boot.multiplicities[boot.ok][:, groups].astype(float)
    return data, Replicate(row_weights=jnp.asarray(weights))


def _check_method(method: str) -> None:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")


def prediction_intervals(result, h, N, D, *, table=None, level: float = 0.9,
                         method: str = "percentile") -> Intervals:
    """Bootstrap intervals of the predicted losses of a fit at the runs ``(h, N, D)``.

    Args:
        result: a :class:`mixscale.FitResult` fitted with ``n_bootstrap > 0``.
        h: ``(n, K)`` mixtures (or one ``(K,)``).
        N, D: ``(n,)`` model sizes and tokens, or scalars, in the law's units
            (``result.size_unit``, ``result.token_unit``).
        table: the training table (the rows given to :func:`mixscale.fit`); needed only by
            the studentized interval.
        level: nominal coverage of each interval (default 0.9).
        method: ``"percentile"`` (default) or ``"studentized"`` (bootstrap-t); see
            :mod:`mixscale._bootstrap`.

    Returns:
        :class:`Intervals` of shape ``(n, M)`` (targets in ``result.targets`` order).

    Raises:
        ValueError: mixtures not of the fit's ``K`` domains, with a weight that is negative or
            not finite, or not summing to 1 within :data:`~mixscale.data.WEIGHT_SUM_TOLERANCE`
            (nothing is renormalised); sizes or tokens not positive and finite, or not one per
            mixture.
        TypeError: values that are not real numbers.
    """
    _check_method(method)
    boot = _require_bootstrap(result)
    h, N, D = runs(h, N, D, len(result.train_domains), WEIGHT_SUM_TOLERANCE)
    params, static = eqx.partition(result.law, eqx.is_inexact_array)
    one = jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], params)
    point = predict_replicates(one, static, h, N, D)[0]
    samples = predict_replicates(boot.params, static, h, N, D)
    if method == "percentile":
        keep = np.all(np.isfinite(samples.reshape(len(samples), -1)), axis=1)
        if keep.sum() < 2:
            raise ValueError("fewer than 2 replicates give finite predictions there")
        return interval(point, samples[keep], level)
    data, reps = _training_data(result, boot, table)
    point_se = standard_errors("predictions", one, static, data, None, boot.huber_delta,
                               h, N, D)[0].reshape(point.shape)
    sample_se = standard_errors("predictions", boot.params, static, data, reps,
                                boot.huber_delta, h, N, D).reshape(samples.shape)
    return studentized_interval(point, point_se, samples, sample_se, level)


def parameter_intervals(result, *, table=None, level: float = 0.9,
                        method: str = "percentile") -> dict[str, Intervals]:
    """Bootstrap intervals of each natural parameter of a fit
    (:meth:`~mixscale.laws.AbstractLaw.natural_parameters`), by name; arguments as in
    :func:`prediction_intervals`.

    Meaningful for parameters the data pin down; a parameter on a bound of its range, or one the
    law cannot identify (e.g. the capacity law's head ``H`` when every run has one model size),
    gets an interval that mostly reflects the range or the optimiser's start.
    """
    _check_method(method)
    boot = _require_bootstrap(result)
    params, static = eqx.partition(result.law, eqx.is_inexact_array)
    one = jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], params)
    point = {k: np.asarray(v, dtype=float) for k, v in result.law.natural_parameters().items()}
    batch = jax.vmap(lambda p: eqx.combine(p, static).natural_parameters())(boot.params)
    samples = {k: np.asarray(batch[k], dtype=float) for k in point}
    if method == "studentized":
        data, reps = _training_data(result, boot, table)
        point_se = standard_errors("natural", one, static, data, None, boot.huber_delta)[0]
        sample_se = standard_errors("natural", boot.params, static, data, reps,
                                    boot.huber_delta)
    out, start = {}, 0
    for name, value in point.items():
        size = value.size
        s = samples[name]
        if method == "percentile":
            keep = np.all(np.isfinite(s.reshape(len(s), -1)), axis=1)
            if keep.sum() >= 2:
                out[name] = interval(value, s[keep], level)
        else:
            out[name] = studentized_interval(
                value, point_se[start:start + size].reshape(value.shape), s,
                sample_se[:, start:start + size].reshape(s.shape), level)
        start += size
    return out
