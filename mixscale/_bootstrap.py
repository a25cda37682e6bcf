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
(:attr:`Bootstrap.n_unconverged`).

Intervals. For a quantity ``θ`` (a predicted loss, a natural parameter, an optimal weight) with
point estimate ``θ̂`` and replicate values ``θ*_b``, the level-``1 − α`` interval is the
*percentile* interval ``[q_{α/2}, q_{1−α/2}]`` of the ``θ*_b`` (Efron & Tibshirani 1993, §13.3;
``numpy.quantile``, linear interpolation). Its coverage is measured in ``tests/test_bootstrap.py``
on planted noisy tables (see there for the figures).
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

from ._lm import solve_lm
from ._objective import FitData, Replicate

__all__ = ["Bootstrap", "Intervals", "MAX_REPLICATES", "MIN_REPLICATES", "draw_multiplicities",
           "interval", "parameter_intervals", "predict_replicates", "prediction_intervals",
           "run_bootstrap"]

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
            by :func:`mixscale.data.mixture_ids` of the training table); ``None`` once loaded
            from a file (it is not saved: the seed and the table give it again).
        seconds: wall seconds the refits took.
    """

    params: Any
    objectives: np.ndarray
    converged: np.ndarray
    seed: int
    n_groups: int
    multiplicities: np.ndarray | None = None
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

    ``lower = q_{(1 − level)/2}``, ``upper = q_{(1 + level)/2}`` over the replicate axis
    (``numpy.quantile``, linear interpolation). Non-finite samples must have been left out
    before (``ValueError`` otherwise), and at least 2 are needed.
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
    lower, upper = np.quantile(samples, [alpha / 2, 1 - alpha / 2], axis=0)
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
                  per_target_fields: tuple[str, ...] = (), losses: np.ndarray | None = None,
                  progress: Callable[[int, float], None] | None = None) -> list[Bootstrap]:
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
        delta, rtol, max_steps, chunk, bounds, per_target_fields: the point fit's settings
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
                   per_target_fields=per_target_fields, bounds=bounds,
                   replicates=Replicate(row_weights=jnp.asarray(row_weights),
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
                             seconds=seconds / n_tables))
    return out


@eqx.filter_jit
def _predict_batch(params, static, h, N, D):
    def one(p):
        law = eqx.combine(p, static)
        return jax.vmap(law.predict)(h, N, D)

    return jax.vmap(one)(params)


def predict_replicates(params, static, h, N, D) -> np.ndarray:
    """``(B, n, M)``: every replicate law (parameter leaves ``(B, ...)``) at runs ``h (n, K)``,
    ``N (n,)``, ``D (n,)`` (law units)."""
    h = jnp.atleast_2d(jnp.asarray(h, dtype=float))
    n = h.shape[0]
    N = jnp.broadcast_to(jnp.asarray(N, dtype=float), (n,))
    D = jnp.broadcast_to(jnp.asarray(D, dtype=float), (n,))
    return np.asarray(_predict_batch(params, static, h, N, D))


def _require_bootstrap(result):
    boot = getattr(result, "bootstrap", None)
    if boot is None:
        raise ValueError("this fit has no bootstrap replicates: fit with n_bootstrap=B "
                         "(mixscale fit --bootstrap B)")
    if boot.n_ok < 2:
        raise ValueError(f"only {boot.n_ok} of {boot.n_replicates} bootstrap replicates "
                         "succeeded; an interval needs at least 2")
    return boot


def prediction_intervals(result, h, N, D, level: float = 0.9) -> Intervals:
    """Bootstrap intervals of the predicted losses of a fit at the runs ``(h, N, D)``.

    Args:
        result: a :class:`mixscale.FitResult` fitted with ``n_bootstrap > 0``.
        h: ``(n, K)`` mixtures (or one ``(K,)``).
        N, D: ``(n,)`` model sizes and tokens, or scalars, in the law's units
            (``result.size_unit``, ``result.token_unit``).
        level: nominal coverage of each interval (default 0.9).

    Returns:
        :class:`Intervals` of shape ``(n, M)`` (targets in ``result.targets`` order): the point
        law's predictions and the percentile interval of the successful replicates'.
    """
    boot = _require_bootstrap(result)
    params, static = eqx.partition(result.law, eqx.is_inexact_array)
    point = predict_replicates(jax.tree_util.tree_map(lambda x: x[None], params), static,
                               h, N, D)[0]
    samples = predict_replicates(boot.params, static, h, N, D)
    keep = np.all(np.isfinite(samples.reshape(len(samples), -1)), axis=1)
    if keep.sum() < 2:
        raise ValueError("fewer than 2 replicates give finite predictions there")
    return interval(point, samples[keep], level)


def parameter_intervals(result, level: float = 0.9) -> dict[str, Intervals]:
    """Bootstrap intervals of each natural parameter of a fit
    (:meth:`~mixscale.laws.AbstractLaw.natural_parameters`), by name.

    Meaningful for parameters the data pin down; a parameter on a bound of its range, or one the
    law cannot identify (e.g. the capacity law's head ``H`` when every run has one model size),
    gets an interval that mostly reflects the range or the optimiser's start.
    """
    boot = _require_bootstrap(result)
    _, static = eqx.partition(result.law, eqx.is_inexact_array)
    point = {k: np.asarray(v, dtype=float) for k, v in result.law.natural_parameters().items()}
    samples = jax.vmap(lambda p: eqx.combine(p, static).natural_parameters())(boot.params)
    out = {}
    for name, value in point.items():
        s = np.asarray(samples[name], dtype=float)
        keep = np.all(np.isfinite(s.reshape(len(s), -1)), axis=1)
        if keep.sum() >= 2:
            out[name] = interval(value, s[keep], level)
    return out
