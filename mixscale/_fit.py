r"""Fitting any law to a loss table: many restarts batched with ``vmap``, compiled once.

Objective (the same for every law). With relative residuals
:math:`r_{rm} = (\hat L_{rm} - L_{rm}) / L_{rm}` over the observed entries :math:`\Omega` (missing
losses are masked),

.. math::

    J(\theta) = \frac{1}{|\Omega|} \sum_{(r,m)\in\Omega} \mathrm{huber}_\delta(r_{rm}),
    \qquad \mathrm{huber}_\delta(r) = \begin{cases} r^2/2 & |r|\le\delta\\
    \delta(|r| - \delta/2) & \text{else.}\end{cases}

Why relative residuals: losses of different domains differ by a factor of up to ~3, and the
reported metric is the mean *relative* error; a relative residual weighs every domain alike, is
defined for every law (also the linear baselines, whose predictions may be negative, where a
log-loss residual is not) and is to first order the log residual. Why Huber with
``δ = 0.02``: real runs scatter by well under 2 % around any smooth law, so nearly every entry is in
the quadratic zone (a plain least-squares fit), while a few broken runs
(RegMix's 1M models include some) get a linear, bounded pull instead of dominating the fit.

Optimisers. The Huber objective is a least-squares problem in the transformed residuals
``ψ(r) = r`` for ``|r| ≤ δ`` and ``sign(r)·sqrt(δ(2|r| − δ))`` beyond (``ψ²/2 = huber_δ``, and ``ψ``
is C¹), so the default ``method="lm"`` runs Levenberg–Marquardt on ``ψ`` (Marquardt scaling,
Nielsen damping; the Jacobian by forward mode). Power-law fits are badly conditioned: LM converges
in tens to hundreds of iterations where a first-order method needs thousands (measured in
``benchmarks/bench_fit.py``). ``method="lbfgs"`` runs ``optax.lbfgs`` with a zoom line search
instead, for laws with many parameters.

Batching. Restarts run ``chunk`` at a time in one ``vmap``-ed, compiled loop, each stopping on its
own rule. Since a vectorised loop would keep every slot busy until its slowest restart is done, LM
works through a queue: every 25 steps, finished slots are handed the next restart (all calls
share one compilation). Each restart's result is independent of the others and of ``chunk``;
the fit is deterministic for a given ``seed``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from ._metrics import error_metrics
from .data import LossTable, TableError
from .laws._base import AbstractLaw, DataSummary, parameter_count
from .laws._spec import LawSpec, as_law_spec

__all__ = ["FitProgress", "FitResult", "fit", "predict_table", "DEFAULT_HUBER_DELTA"]

DEFAULT_HUBER_DELTA = 0.02


@dataclasses.dataclass(frozen=True)
class FitProgress:
    """Reported after each chunk of restarts."""

    done: int
    n_restarts: int
    best_objective: float
    elapsed_s: float


@dataclasses.dataclass(frozen=True, eq=False)
class FitResult:
    """A fitted law and how it was obtained.

    Attributes:
        law: the best restart's law (lowest final training objective).
        law_options: the options the law class was initialised with.
        targets: the loss domains the law predicts (output order of ``law.predict``).
        train_domains: the training domains (order of ``h``).
        size_unit, token_unit: units of ``N`` and ``D`` the law expects (from the table).
        train_metrics, validation_metrics: see :func:`mixscale.error_metrics`
            (``validation_metrics`` is ``None`` without a validation table).
        objectives: ``(R,)`` final training objective of every restart (``inf`` if it failed).
        converged: ``(R,)`` whether each restart met the stopping rule before ``max_steps``.
        steps: ``(R,)`` L-BFGS steps each restart took.
        best: index of the chosen restart.
        n_params: number of fitted scalar parameters.
        notes: remarks for the user (e.g. loss columns the law cannot predict).
        method: the optimiser used (``"lm"`` or ``"lbfgs"``).
        timings: ``total_s``, wall seconds of the fit (compilation included on a first call).
    """

    law: AbstractLaw
    law_options: Mapping[str, Any]
    targets: tuple[str, ...]
    train_domains: tuple[str, ...]
    size_unit: float
    token_unit: float
    train_metrics: dict
    validation_metrics: dict | None
    objectives: np.ndarray
    converged: np.ndarray
    steps: np.ndarray
    best: int
    n_params: int
    notes: tuple[str, ...]
    method: str
    timings: Mapping[str, float]

    def evaluate(self, table: LossTable) -> dict:
        """Error metrics of this law on every run of ``table`` (e.g. new runs)."""
        return evaluate_table(self.law, table, self.targets, self.train_domains,
                              self.size_unit, self.token_unit)

    def predict(self, table: LossTable) -> np.ndarray:
        """Predicted losses ``(n, M)`` of this law's targets for every run of ``table``."""
        return predict_table(self.law, table, self.train_domains, self.size_unit,
                             self.token_unit)


# ---------------------------------------------------------------------------- helpers
def _check_domains(table: LossTable, train_domains: Sequence[str], size_unit: float,
                   token_unit: float) -> None:
    if tuple(table.train_domains) != tuple(train_domains):
        raise TableError(f"{table.name}: training domains {list(table.train_domains)} differ "
                         f"from the law's {list(train_domains)}")
    if not (np.isclose(table.size_unit, size_unit) and np.isclose(table.token_unit, token_unit)):
        raise TableError(f"{table.name}: units (size {table.size_unit:g}, tokens "
                         f"{table.token_unit:g}) differ from the law's ({size_unit:g}, "
                         f"{token_unit:g})")


@eqx.filter_jit
def _batch_predict(law, h, N, D):
    return jax.vmap(law.predict)(h, N, D)


def predict_table(law: AbstractLaw, table: LossTable, train_domains: Sequence[str],
                  size_unit: float, token_unit: float) -> np.ndarray:
    """``law.predict`` for every run of ``table`` (checked against the law's domains/units)."""
    _check_domains(table, train_domains, size_unit, token_unit)
    return np.asarray(_batch_predict(law, jnp.asarray(table.weights),
                                     jnp.asarray(table.model_size), jnp.asarray(table.tokens)))


def evaluate_table(law: AbstractLaw, table: LossTable, targets: Sequence[str],
                   train_domains: Sequence[str], size_unit: float, token_unit: float) -> dict:
    """Error metrics (:func:`mixscale.error_metrics`) of ``law`` on every run of ``table``."""
    missing = [t for t in targets if t not in table.loss_domains]
    if missing:
        raise TableError(f"{table.name} has no loss columns for the law's targets {missing}")
    pred = predict_table(law, table, train_domains, size_unit, token_unit)
    obs = table.select_losses(list(targets)).losses
    return error_metrics(pred, obs, targets, own_weight=_own_weight(table, targets))


def _targets_and_notes(law_class, table: LossTable, options) -> tuple[tuple[str, ...], list]:
    targets = law_class.targets_for(table.train_domains, table.loss_domains, **options)
    if not targets:
        raise TableError(f"{table.name}: law {law_class.name!r} can predict none of the loss "
                         f"domains {list(table.loss_domains)}")
    notes = []
    left_out = [s for s in table.loss_domains if s not in targets]
    if left_out:
        notes.append(f"law {law_class.name!r} cannot predict {left_out} (not training domains); "
                     "those columns are ignored")
    return tuple(targets), notes


def _own_weight(table: LossTable, targets: Sequence[str]) -> np.ndarray:
    """``(n, M)``: each target's own training-domain weight per row (NaN if out-of-mixture)."""
    cols = [table.weights[:, table.train_domains.index(t)] if t in table.train_domains
            else np.full(table.n_runs, np.nan) for t in targets]
    return np.stack(cols, axis=1)


def _huber_residual(r, delta):
    """``ψ(r)`` with ``ψ(r)²/2 = huber_δ(r)``: Huber loss as a least-squares problem (C¹ in r)."""
    a = jnp.abs(r)
    big = a > delta
    return jnp.where(big, jnp.sign(r) * jnp.sqrt(delta * (2.0 * jnp.where(big, a, delta) - delta)),
                     r)


def _residuals(params, static, data, delta):
    law = eqx.combine(params, static)
    h, N, D, y, mask = data
    pred = jax.vmap(law.predict)(h, N, D)
    r = jnp.where(mask, (pred - y) / y, 0.0)
    return jnp.where(mask, _huber_residual(r, delta), 0.0).ravel()


def _objective(params, static, data, delta):
    r = _residuals(params, static, data, delta)
    return 0.5 * jnp.sum(r**2) / jnp.sum(data[4])


@dataclasses.dataclass(frozen=True)
class _Layout:
    """How a law's parameter pytree maps to one flat vector (hashable: one compilation)."""

    treedef: Any
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, tree) -> _Layout:
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        return cls(treedef, tuple(tuple(np.shape(x)) for x in leaves))

    def ravel(self, tree):
        return jnp.concatenate([jnp.ravel(x) for x in jax.tree_util.tree_leaves(tree)])

    def unravel(self, flat):
        sizes = [int(np.prod(s)) for s in self.shapes]
        parts = jnp.split(flat, np.cumsum(sizes)[:-1])
        return jax.tree_util.tree_unflatten(
            self.treedef, [x.reshape(s) for x, s in zip(parts, self.shapes, strict=True)])


def _lm_functions(static, data, delta, unravel):
    def res(p):
        return _residuals(unravel(p), static, data, delta)

    def linearise(p):
        return res(p), jax.jacfwd(res)(p)

    return res, linearise


@eqx.filter_jit
def _lm_start(flat_params, static, data, delta, layout):
    """The Levenberg–Marquardt state of every slot, from flat initial parameters ``(W, P)``."""
    _, linearise = _lm_functions(static, data, delta, layout.unravel)

    def one(p):
        r, jac = linearise(p)
        f = 0.5 * jnp.dot(r, r)
        return (p, r, jac, f, jnp.asarray(1e-3, p.dtype), jnp.asarray(0), jnp.asarray(0),
                ~jnp.isfinite(f), jnp.asarray(2.0, p.dtype), jnp.asarray(False))

    return jax.vmap(one)(flat_params)


@eqx.filter_jit
def _lm_advance(state, static, data, delta, layout, rtol, max_steps, segment):
    """Advance every unfinished slot by up to ``segment`` Levenberg–Marquardt steps.

    Marquardt's scaled damping with Nielsen's update of ``μ``: each step solves
    ``(JᵀJ + μ diag(JᵀJ)) δ = −Jᵀr`` (``J`` by forward mode) and is accepted when it lowers the
    objective. A restart has converged once two accepted steps in a row lower the objective by
    less than ``rtol`` (relative), or once the damping has grown past ``1e16`` (no step of any
    length lowers it: a minimum to rounding); it has failed when the objective is not finite.
    """
    res, linearise = _lm_functions(static, data, delta, layout.unravel)

    def one(*c):
        stop_at = jnp.minimum(c[5] + segment, max_steps)

        def cond(c):
            return (c[5] < stop_at) & ~c[7]

        def body(c):
            p, r, jac, f, mu, steps, small, done, nu, conv = c
            g = jac.T @ r
            a = jac.T @ jac
            scale = jnp.maximum(jnp.diag(a), 1e-12 * jnp.max(jnp.diag(a)))
            step = jnp.linalg.solve(a + mu * jnp.diag(scale), -g)
            r_new = res(p + step)
            f_new = 0.5 * jnp.dot(r_new, r_new)
            predicted = 0.5 * jnp.dot(step, mu * scale * step - g)
            gain = (f - f_new) / jnp.where(predicted > 0, predicted, 1.0)
            accept = jnp.isfinite(f_new) & (f_new < f)
            mu = jnp.where(accept, mu * jnp.maximum(1.0 / 3.0, 1.0 - (2.0 * gain - 1.0) ** 3),
                           mu * nu)
            nu = jnp.where(accept, 2.0, 2.0 * nu)
            rel = (f - f_new) / jnp.maximum(f, 1e-300)
            small = jnp.where(accept, jnp.where(rel < rtol, small + 1, 0), small)
            p = jnp.where(accept, p + step, p)
            r_lin, j_lin = linearise(p)
            r = jnp.where(accept, r_lin, r)
            jac = jnp.where(accept, j_lin, jac)
            f = jnp.where(accept, f_new, f)
            conv = (small >= 2) | (mu > 1e16)
            done = conv | ~jnp.isfinite(f)
            return p, r, jac, f, mu, steps + 1, small, done, nu, conv

        return lax.while_loop(cond, body, c)

    return jax.vmap(one)(*state)


def _set_rows(state_leaf, rows, fresh_leaf):
    out = np.array(state_leaf)
    out[rows] = np.asarray(fresh_leaf)[: len(rows)]
    return jnp.asarray(out)


def _solve_lm(params, static, data, delta, rtol, max_steps, width, progress=None):
    """Levenberg–Marquardt for a queue of restarts on ``width`` vectorised slots.

    Restarts stop at different times; instead of letting finished ones idle until the slowest is
    done, each finished slot is refilled with the next restart from the queue between segments
    of 25 steps (all calls share one compilation).
    """
    n = jax.tree_util.tree_leaves(params)[0].shape[0]
    layout = _Layout.of(jax.tree_util.tree_map(lambda x: x[0], params))
    flat = jax.vmap(layout.ravel)(params)
    width = min(width, n)
    queue = list(range(width, n))
    slot_of = np.arange(width)  # restart held by each slot (-1: none)
    state = _lm_start(flat[:width], static, data, delta, layout)
    out_p = np.zeros(flat.shape)
    out_f = np.full(n, np.inf)
    out_conv = np.zeros(n, bool)
    out_steps = np.zeros(n, np.int64)
    finished = 0
    while True:
        state = _lm_advance(state, static, data, delta, layout, rtol, max_steps, 25)
        done = np.asarray(state[7]) | (np.asarray(state[5]) >= max_steps)
        free = [i for i in range(width) if done[i] and slot_of[i] >= 0]
        if free:
            p_np, f_np = np.asarray(state[0]), np.asarray(state[3])
            conv_np, steps_np = np.asarray(state[9]), np.asarray(state[5])
            for i in free:
                k = slot_of[i]
                out_p[k], out_f[k] = p_np[i], f_np[i]
                out_conv[k], out_steps[k] = conv_np[i], steps_np[i]
                slot_of[i] = -1
                finished += 1
            refill = np.asarray(free[: len(queue)], dtype=np.int64)
            if refill.size:
                take = [queue.pop(0) for _ in refill]
                # Always start a full batch (padded by repetition): one compilation.
                fresh = _lm_start(flat[np.asarray(take + take[:1] * (width - len(take)))],
                                  static, data, delta, layout)
                state = jax.tree_util.tree_map(
                    lambda s, x, idx=refill: _set_rows(s, idx, x), state, fresh)
                slot_of[refill] = take
            if progress is not None:
                progress(finished, float(np.min(out_f)))
        if finished == n:
            break
    count = float(np.sum(np.asarray(data[4])))
    params_out = jax.vmap(layout.unravel)(jnp.asarray(out_p))
    return params_out, out_f / count, out_conv & np.isfinite(out_f), out_steps


@eqx.filter_jit
def _lbfgs_batch(params, static, data, delta, rtol, max_steps):
    """optax L-BFGS (zoom line search) on the Huber objective of every restart (``vmap``).

    A restart stops once its objective decreases by less than ``rtol`` (relative) on two steps
    running, or when it becomes non-finite.
    """
    opt = optax.lbfgs(memory_size=10, linesearch=optax.scale_by_zoom_linesearch(
        max_linesearch_steps=30, verbose=False))

    def fun(p):
        return _objective(p, static, data, delta)

    value_and_grad = optax.value_and_grad_from_state(fun)

    def one(p):
        def cond(c):
            return (c[2] < max_steps) & ~c[5]

        def body(c):
            p, state, steps, f, slow, _, _ = c
            value, grad = value_and_grad(p, state=state)
            updates, state = opt.update(grad, state, p, value=value, grad=grad, value_fn=fun)
            p = optax.apply_updates(p, updates)
            f_new = optax.tree.get(state, "value")
            failed = ~jnp.isfinite(f_new)
            small = (f - f_new) <= rtol * jnp.maximum(jnp.abs(f_new), 1e-300)
            slow = jnp.where(small, slow + 1, 0)
            conv = (slow >= 2) & ~failed
            return p, state, steps + 1, f_new, slow, failed | conv, conv

        f0 = fun(p)
        init = (p, opt.init(p), jnp.asarray(0), f0, jnp.asarray(0), ~jnp.isfinite(f0),
                jnp.asarray(False))
        p, _, steps, f, _, _, conv = lax.while_loop(cond, body, init)
        return p, f, conv, steps

    return jax.vmap(one)(params)


def _solve_lbfgs(params, static, data, delta, rtol, max_steps, width, progress=None):
    """optax L-BFGS on chunks of ``width`` restarts (the last chunk padded: one compilation)."""
    n = jax.tree_util.tree_leaves(params)[0].shape[0]
    width = min(width, n)
    pad = -n % width
    padded = jax.tree_util.tree_map(
        lambda x: jnp.concatenate([x, jnp.repeat(x[:1], pad, axis=0)]), params)
    outs = []
    for start in range(0, n + pad, width):
        chunk = jax.tree_util.tree_map(lambda x, s=start: x[s:s + width], padded)
        outs.append(jax.block_until_ready(
            _lbfgs_batch(chunk, static, data, delta, rtol, max_steps)))
        if progress is not None:
            f_all = np.concatenate([np.asarray(o[1]) for o in outs])[:n]
            progress(min(start + width, n), float(np.nanmin(np.where(np.isfinite(f_all),
                                                                      f_all, np.inf))))
    p = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs)[:n], *[o[0] for o in outs])
    return (p,) + tuple(np.concatenate([np.asarray(o[i]) for o in outs])[:n]
                        for i in (1, 2, 3))


_SOLVERS = {"lm": _solve_lm, "lbfgs": _solve_lbfgs}


def _prepare(table: LossTable, targets: Sequence[str]):
    sub = table.select_losses(list(targets))
    y = sub.losses
    mask = np.isfinite(y)
    if not mask.any():
        raise TableError(f"{table.name}: no observed loss among the targets {list(targets)}")
    data = (jnp.asarray(sub.weights), jnp.asarray(sub.model_size), jnp.asarray(sub.tokens),
            jnp.asarray(np.where(mask, y, 1.0)), jnp.asarray(mask))
    return sub, data


def fit(law_class: LawSpec | type[AbstractLaw] | str, table: LossTable, *,
        validation: LossTable | None = None,
        law_options: Mapping[str, Any] | None = None, n_restarts: int = 64, seed: int = 0,
        method: str = "lm", max_steps: int | None = None, rtol: float = 1e-8,
        huber_delta: float = DEFAULT_HUBER_DELTA, chunk: int = 16,
        progress: Callable[[FitProgress], None] | None = None) -> FitResult:
    """Fit ``law_class`` to every run of ``table`` (all scales in it jointly).

    Args:
        law_class: the law: a :class:`mixscale.laws.LawSpec`, a registered law's name or its
            class (then ``law_options`` gives its options).
        table: the training runs. Select rows and split beforehand (``mixscale.data.select``,
            ``mixscale.data.split``): the fitter uses every row it is given.
        validation: optional held-out runs (same domains and units) for validation metrics.
        law_options: keyword options of the law's ``init`` (e.g. ``{"variant": "tied"}``), when
            ``law_class`` is a name or class.
        n_restarts: number of random initialisations.
        seed: PRNG seed of the initialisations; the fit is deterministic given it.
        method: ``"lm"`` (Levenberg–Marquardt, default) or ``"lbfgs"`` (optax L-BFGS).
        max_steps: iterations per restart at most (default 400 for LM, 5000 for L-BFGS).
        rtol: relative tolerance of the stopping rule (LM: parameter step; L-BFGS: objective
            decrease).
        huber_delta: Huber threshold on relative residuals (see the module docstring).
        chunk: restarts advanced together (``vmap`` width). LM refills a finished restart's
            slot with the next one; L-BFGS runs chunk after chunk. All calls share one
            compilation; progress is reported as restarts finish.
        progress: optional callback receiving :class:`FitProgress` after each chunk.

    Returns:
        A :class:`FitResult`.
    """
    spec = as_law_spec(law_class, law_options)
    law_class, options = spec.law_class, spec.law_options
    if method not in _SOLVERS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(_SOLVERS)}")
    if max_steps is None:
        max_steps = 400 if method == "lm" else 5000
    if n_restarts < 1 or max_steps < 1 or chunk < 1:
        raise ValueError("n_restarts, max_steps and chunk must be positive")
    if not huber_delta > 0:
        raise ValueError(f"huber_delta must be positive, got {huber_delta!r}")
    targets, notes = _targets_and_notes(law_class, table, options)
    if not law_class.uses_scale:
        pairs = set(zip(table.model_size.tolist(), table.tokens.tolist(), strict=True))
        if len(pairs) > 1:
            raise TableError(f"{table.name}: law {law_class.name!r} has no model-size or token "
                             f"terms, but the table holds {len(pairs)} (size, tokens) scales; "
                             "select one scale first")
    if validation is not None:
        _check_domains(validation, table.train_domains, table.size_unit, table.token_unit)
    sub, data = _prepare(table, targets)
    y = sub.losses
    observed = np.isfinite(y)
    empty = [t for j, t in enumerate(targets) if not observed[:, j].any()]
    if empty:
        raise TableError(f"{table.name}: targets {empty} have no observed loss in these rows")
    summary = DataSummary(
        train_domains=tuple(table.train_domains), targets=targets,
        loss_min=np.nanmin(y, axis=0), loss_max=np.nanmax(y, axis=0),
        model_size=(float(table.model_size.min()), float(table.model_size.max())),
        tokens=(float(table.tokens.min()), float(table.tokens.max())))

    keys = jax.random.split(jax.random.key(seed), n_restarts)
    init = eqx.filter_jit(eqx.filter_vmap(lambda k: law_class.init(k, summary, **options)))
    params0, static = eqx.partition(init(keys), eqx.is_inexact_array)
    delta = jnp.asarray(huber_delta, dtype=float)
    t0 = time.perf_counter()

    def report(done, best):
        if progress is not None:
            progress(FitProgress(done=done, n_restarts=n_restarts, best_objective=best,
                                 elapsed_s=time.perf_counter() - t0))

    params, f, conv, steps = _SOLVERS[method](params0, static, data, delta, rtol, max_steps,
                                              chunk, report)
    f, conv, steps = np.asarray(f), np.asarray(conv), np.asarray(steps)
    timings = {"total_s": time.perf_counter() - t0}
    objectives = np.where(np.isfinite(f), f, np.inf)
    if not np.isfinite(objectives).any():
        raise RuntimeError(f"every restart of {law_class.name!r} failed (non-finite objective)")
    best = int(np.argmin(objectives))
    law = eqx.combine(jax.tree_util.tree_map(lambda leaf: leaf[best], params), static)

    def metrics(t: LossTable):
        return evaluate_table(law, t, targets, table.train_domains, table.size_unit,
                              table.token_unit)

    return FitResult(
        law=law, law_options=options, targets=targets, train_domains=tuple(table.train_domains),
        size_unit=table.size_unit, token_unit=table.token_unit, train_metrics=metrics(table),
        validation_metrics=None if validation is None else metrics(validation),
        objectives=objectives, converged=conv & np.isfinite(f), steps=steps, best=best,
        n_params=parameter_count(law), notes=tuple(notes), method=method, timings=timings)
