"""Simulator problem instances shared by the theory experiments: drawing a model, a step size
that is stable for every mixture, the true (exact expected) loss of a mixture, and regret.

Units follow :func:`simulate.sweep`: a model size ``N`` is a number of kept features, and a token
budget ``D`` is a number of samples, ``D = steps × batch_size``. A law fitted to a simulated table
therefore takes ``(N, steps × batch_size)``.

Regret of a mixture ``h`` at ``(N, steps)`` for target weights ``t`` (default uniform):

    regret(h) = Σ_i t_i L_i(h, N, steps) − min_h' Σ_i t_i L_i(h', N, steps)   (≥ 0, loss units)

with ``L_i`` the simulator's exact expected loss and the minimum found by
:func:`simulate.optimal_mixture` (derivative-free; its own resolution bounds how exact the
reference is, so regrets of a few 1e-5 below zero can occur and are reported as measured).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = ["Instance", "InstanceSpec", "closed_form_table", "draw_instance", "law_optimum",
           "mean_true_losses", "n_features_for_tail", "run_step_decay", "safe_learning_rate",
           "sweep_per_budget", "true_losses", "true_optimum"]


@dataclasses.dataclass(frozen=True)
class Instance:
    """One simulated problem: the model's settings (all plain numbers, JSON-friendly).

    Attributes:
        alpha: ``(K,)`` spectral exponents (> 1).
        sigma2: ``(K,)`` label-noise variances.
        head: shared head size ``S``.
        n_features: total feature budget ``P`` (equal tails fill it).
        rho: tail overlap ``ρ ∈ [0, 1]``.
        beta: source exponent ``β``.
        keep: the learner's keep rule, ``"signal"`` or ``"eigen"``.
        natural: ``(K,)`` relative amounts of data each domain has in a notional corpus (sums
            to 1); the "proportional" baseline mixture.
    """

    alpha: tuple[float, ...]
    sigma2: tuple[float, ...]
    head: int
    n_features: int
    rho: float = 0.0
    beta: float = 0.0
    keep: str = "signal"
    natural: tuple[float, ...] | None = None

    @property
    def k(self) -> int:
        return len(self.alpha)

    def model(self):
        """The :class:`simulate.DisjointTailModel` of this instance."""
        import jax.numpy as jnp

        import simulate

        return simulate.DisjointTailModel(jnp.asarray(self.alpha), beta=self.beta,
                                          sigma2=jnp.asarray(self.sigma2), head=self.head,
                                          n_features=self.n_features, rho=self.rho,
                                          keep=self.keep)

    def replace(self, **changes) -> Instance:
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class InstanceSpec:
    """How an experiment names one drawn instance: ``k`` domains, shared head ``head``, drawn by
    :func:`draw_instance` from ``numpy.random.default_rng(seed)``."""

    k: int
    head: int
    seed: int

    def __post_init__(self):
        if self.k < 2 or self.head < 0:
            raise ValueError(f"bad instance {self}: need k >= 2 and head >= 0")

    @property
    def label(self) -> str:
        return f"K={self.k}, S={self.head}"


def draw_instance(rng: np.random.Generator, k: int, *, head: int, n_features: int,
                  rho: float = 0.0, beta: float = 0.0, keep: str = "signal",
                  alpha_range: tuple[float, float] = (1.3, 2.5),
                  sigma2_range: tuple[float, float] = (0.05, 0.3)) -> Instance:
    """A random instance: ``α_i ~ U(alpha_range)`` (sorted), ``σ_i² ~ U(sigma2_range)``,
    natural proportions ``~ Dirichlet(2·1)``."""
    if k < 2:
        raise ValueError(f"an instance needs K >= 2 domains, got {k}")
    lo, hi = alpha_range
    if not 1.0 < lo <= hi:
        raise ValueError(f"alpha_range must satisfy 1 < low <= high, got {alpha_range}")
    alpha = np.sort(rng.uniform(lo, hi, size=k))
    sigma2 = rng.uniform(*sigma2_range, size=k)
    natural = rng.dirichlet(np.full(k, 2.0))
    return Instance(alpha=tuple(map(float, alpha)), sigma2=tuple(map(float, sigma2)),
                    head=int(head), n_features=int(n_features), rho=float(rho),
                    beta=float(beta), keep=keep, natural=tuple(map(float, natural)))


def safe_learning_rate(model, sizes, batch_size: int = 1, fraction: float = 0.5,
                       mixtures=None) -> float:
    """``fraction`` × the smallest stable step over the simplex's vertices, the uniform
    mixture, ``mixtures`` (``(n, K)``, optional) and every size in ``sizes``.

    The stable step shrinks as a mixture concentrates on the domain with the heaviest spectrum,
    so the vertices bound it from below; searched optima may sit on a vertex, hence their
    inclusion."""
    import simulate

    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction!r}")
    k = model.n_domains
    points = [np.eye(k)[i] for i in range(k)] + [np.full(k, 1.0 / k)]
    if mixtures is not None:
        points += list(np.asarray(mixtures, dtype=float))
    limit = min(simulate.stable_step_limit(model, h, int(n), batch_size)
                for h in points for n in np.atleast_1d(sizes))
    return fraction * limit


def run_step_decay(lr: float, steps: int, factor: float, pieces: int):
    r"""The step decay of one run of ``steps`` SGD steps, scaled to that run's length:
    :math:`\gamma_t = \gamma f^{\lfloor t / E\rfloor}` with :math:`E = \lceil \text{steps} /
    \text{pieces}\rceil`, so the step drops by ``factor`` after each ``1/pieces`` of the run
    (the last piece shorter when ``pieces`` does not divide ``steps``). Real language models'
    schedules are set by their budgets in the same way (a run of 4× the tokens decays 4×
    later), unlike one :class:`simulate.StepDecay` shared by every budget, under which a long
    run spends most of its steps at a vanishing step size.

    Returns:
        ``simulate.StepDecay(lr, factor, every=E)``.
    """
    import simulate

    if int(steps) < 1 or int(pieces) < 1:
        raise ValueError(f"steps and pieces must be positive, got {steps!r} and {pieces!r}")
    return simulate.StepDecay(float(lr), float(factor), every=math.ceil(int(steps) / int(pieces)))


def sweep_per_budget(model, mixtures, sizes, budgets, schedule_for, batch_size: int = 1,
                     name: str = "simulated"):
    """:func:`simulate.sweep` where each budget is a run of its own, trained with
    ``schedule_for(steps)`` (e.g. :func:`run_step_decay`), not a checkpoint of one long run.

    Args:
        budgets: SGD steps of the runs (positive ints); each is simulated with its schedule.
        schedule_for: ``steps -> AbstractSchedule``.

    Returns:
        One :class:`mixscale.LossTable`, rows in :func:`simulate.sweep`'s order (mixture-major,
        then size, then budget), ``row_tags`` ``mixture_id`` and ``steps`` as there; its
        ``meta["schedule"]`` maps each budget to its schedule's description.
    """
    import simulate
    from mixscale import LossTable

    budgets = [int(s) for s in np.atleast_1d(budgets)]
    if not budgets:
        raise ValueError("sweep_per_budget needs at least one budget")
    tables = [simulate.sweep(model, mixtures, sizes, [steps], schedule_for(steps), batch_size,
                             name=name) for steps in budgets]
    # each table is mixture-major then size; interleave them so that the budget varies fastest
    order = np.arange(sum(len(t) for t in tables)).reshape(len(budgets), -1).T.reshape(-1)

    def cat(get):
        return np.concatenate([np.asarray(get(t)) for t in tables])[order]

    first = tables[0]
    meta = {**first.meta, "checkpoint_steps": budgets,
            "schedule": {"per_budget": {str(steps): t.meta["schedule"]
                                        for steps, t in zip(budgets, tables, strict=True)}}}
    return LossTable(weights=cat(lambda t: t.weights), model_size=cat(lambda t: t.model_size),
                     tokens=cat(lambda t: t.tokens), losses=cat(lambda t: t.losses),
                     train_domains=first.train_domains, loss_domains=first.loss_domains,
                     size_unit=first.size_unit, token_unit=first.token_unit, name=name,
                     meta=meta, row_tags={key: cat(lambda t, key=key: t.row_tags[key])
                                          for key in first.row_tags})


def true_losses(model, h, n: int, steps: int, schedule, batch_size: int = 1) -> np.ndarray:
    """``(K,)`` exact expected losses of mixture ``h`` after ``steps`` SGD steps."""
    import simulate

    out = simulate.expected_losses(model, np.asarray(h, dtype=float), int(n), schedule,
                                   [int(steps)], batch_size)
    return np.asarray(out)[0]


def true_optimum(model, n: int, steps: int, schedule, batch_size: int = 1, target=None):
    """The simulator's optimum: ``(weights (K,), target loss)``."""
    import simulate

    opt = simulate.optimal_mixture(model, int(n), int(steps), schedule, batch_size,
                                   target=target)
    return np.asarray(opt.weights), float(opt.loss)


def law_optimum(fit_result, n: float, d: float, target=None, seed: int = 0):
    """The fitted law's optimal mixture at ``(N, D)`` (law units: features and samples):
    ``(weights (K,), predicted target loss)``. Works for every law (``K`` is taken from the
    fit's training domains, not from the law, which only the capacity law exposes)."""
    import mixscale

    res = mixscale.optimal_mixture(fit_result.law, float(n), float(d), target_weights=target,
                                   seed=seed, n_train_domains=len(fit_result.train_domains))
    return np.asarray(res.weights), float(res.objective)


def mean_true_losses(model, mixtures, n: int, checkpoints, schedule, batch_size: int = 1,
                     target=None) -> np.ndarray:
    """Target loss ``Σ_i t_i L_i`` (default: the mean over domains) of every mixture at every
    checkpoint, from one :func:`simulate.sweep_losses` call: ``(M, C)`` for ``mixtures``
    ``(M, K)`` and ``C`` checkpoints (SGD steps), at ``N = n`` kept features."""
    import simulate

    mixtures = np.atleast_2d(np.asarray(mixtures, dtype=float))
    k = mixtures.shape[1]
    t = np.full(k, 1.0 / k) if target is None else np.asarray(target, dtype=float)
    if t.shape != (k,):
        raise ValueError(f"target must have shape ({k},), got {t.shape}")
    out = simulate.sweep_losses(model, mixtures, [int(n)], [int(c) for c in checkpoints],
                                schedule, batch_size)
    return np.asarray(out)[:, 0] @ t


def n_features_for_tail(k: int, head: int, tail: int, rho: float) -> int:
    """The feature budget ``P`` at which ``K`` equal tails are exactly ``tail`` long.

    ``P = S + floor(ρT) + K (T − floor(ρT))`` (the shared tail ranks count once); passing it as
    ``n_features`` holds every domain's tail at ``T`` while ``ρ`` varies (a fixed ``P`` would
    instead lengthen the tails as the overlap grows). Computed from the model's own layout, so
    it cannot drift from it."""
    import simulate

    if k < 1 or head < 0 or tail < 0 or head + tail < 1:
        raise ValueError(f"need K >= 1, head >= 0, tail >= 0 and a feature, got K={k}, "
                         f"head={head}, tail={tail}")
    model = simulate.DisjointTailModel(np.full(k, 2.0), head=int(head), tail=int(tail),
                                       rho=float(rho))
    return model.n_features


def closed_form_table(model, mixtures, sizes, steps, lr: float, batch_size: int = 1,
                      name: str = "simulated"):
    """The :func:`simulate.sweep` table for a constant step ``lr``, by the closed form.

    ``simulate.sweep(model, mixtures, sizes, steps, Constant(lr), batch_size,
    method="closed_form")``: the same rows (mixture-major, then size, then checkpoint), units
    (``model_size = N`` kept features, ``tokens = D = steps × batch_size`` samples), row tags and
    generating settings as the recursion's sweep, but every loss comes from one ``N × N``
    eigendecomposition per (mixture, size), so the cost does not grow with ``D``: the tool for
    budgets of ``1e4``–``1e6`` samples where the recursion would take ``O(D)`` steps. The sweep
    checks the mixtures, sizes, checkpoints (each ``>= 1`` step) and the stable step range of
    every mixture and size.
    """
    import simulate

    return simulate.sweep(model, np.asarray(mixtures, dtype=np.float64), sizes,
                          [int(t) for t in steps], simulate.Constant(lr), batch_size,
                          method="closed_form", name=name)
