r"""Levenberg–Marquardt on the Huber objective, for a queue of restarts on a few vectorised slots.

One step, at flat parameters :math:`p` with residuals :math:`r = \psi_\delta(\cdot)` and their
Jacobian :math:`J` (forward mode; see :mod:`mixscale._objective`), :math:`A = J^\top J` and
:math:`g = J^\top r`:

.. math::

    (A + \mu\,\mathrm{diag}(s))\,\Delta = -g, \qquad
    s_i = \max(A_{ii},\ 10^{-12} \max_j A_{jj})

(Marquardt's scaled damping). The step is accepted when the new objective
:math:`f = \tfrac12\|r\|^2` is finite and lower. The damping follows Nielsen: on acceptance
:math:`\mu \leftarrow \mu \max(1/3,\ 1 - (2\rho - 1)^3)` and :math:`\nu \leftarrow 2`, with
:math:`\rho` the actual over the predicted decrease
:math:`\tfrac12\Delta^\top(\mu\,s\odot\Delta - g)`; on rejection :math:`\mu \leftarrow \mu\nu`,
:math:`\nu \leftarrow 2\nu`. Every iteration, accepted or not, counts as a step.

Structure (:mod:`mixscale._blocks`). Most parameters of these laws act on one target only (every
parameter of the additive, joint, BiMix, DML and regression laws; ``A, a, E`` of the capacity
law), declared by each law's ``per_target_fields``. The Jacobian is then block-arrow: it is
computed compressed (``W + S`` Jacobian-vector products instead of ``P``: 73 instead of 1241 for
the joint law at ``K = 17``) and the step solved by the Schur complement of the shared block
(``M`` solves of size ``W`` and one of size ``S`` instead of one of size ``P``). The step is the
same as the dense one, in exact arithmetic. A law with ``row_jacobian = "reverse-own"`` (the
additive and joint laws) has its own blocks from one reverse pass per run instead of ``W``
tangents (:func:`mixscale._blocks.compressed_jacobian_by_rows`): measured on RegMix-1B (64
runs, 17 targets, 16 slots) the additive law's compressed Jacobian takes 2.0 ms against 33 ms,
the joint law's 5.1 against 163 ms, the same numbers to 4e-16 relative; at ``K = 4`` and
``7`` it gains 2.5–3× on the Jacobian but nothing on the fit, whose steps are then mostly the
solve. Why this and not a first-order method for the large laws: these power-law fits are
badly conditioned, and L-BFGS needed thousands of iterations without meeting its stopping rule
on the per-target laws at ``K = 17``; with the structure the second-order step is cheaper than
the L-BFGS line search it replaces (``benchmarks/bench_fit.py``).

Geodesic acceleration (``geodesic=True``; Transtrum & Sethna, "Improvements to the
Levenberg–Marquardt algorithm for nonlinear least-squares minimization", arXiv:1201.5885, 2012).
The damped step :math:`v` above is a velocity; the second-order correction follows the curvature
of the residuals along it:

.. math::

    (A + \mu\,\mathrm{diag}(s))\,a = -J^\top r'', \qquad
    r'' = \frac{d^2}{dt^2}\, r(p + t v)\Big|_{t=0}, \qquad \Delta = v + \tfrac12 a,

with :math:`r''` exact (forward mode twice, a few residual evaluations) and the same damped
matrix, factored once for both right-hand sides (:func:`mixscale._blocks.factor_normal`). A
step whose acceleration is large beside its velocity, :math:`2\|a\| > \alpha\|v\|` in the scaled
norm :math:`\|x\|^2 = \sum_i s_i x_i^2` (:data:`GEODESIC_ALPHA` = 0.75), is rejected like a step
that does not lower the objective (the damping grows). The gain ratio keeps the velocity's predicted
decrease. These fits are sloppy — long, narrow, curved valleys of nearly degenerate power-law
terms — where plain LM crawls with small steps along the valley's floor; the correction lets it
take long steps that bend with the valley. Measured (16 restarts, each in its own problem per
target, CPU seconds with compilation): the joint law on SlimPajama-7 122M needed 1500–3150 steps
per restart to pass the gradient test without it and 250–680 with it; the additive law on the
whole SlimPajama-7 table converged in 15 of 16 restarts in 46 CPU-s with it against 4 of 16
in 151 CPU-s without (``benchmarks/bench_fit.py`` compares them for every law and table). Each
step costs more (the second directional derivative and a second solve), so on problems that
already converge in a few dozen steps it gains little.

Independent problems. When no parameter is shared (a *separable* law) the fit is ``M``
independent least-squares problems, one per target, and each keeps its own damping, acceptance
and stopping rule: a hard target no longer forces a large damping (slow steps) on the others,
and a target that has converged stops moving. With shared parameters the fit is one problem.
The restart's objective is the sum over the problems. One coupling remains: Marquardt's scale
floor ``10⁻¹² max_j A_jj`` takes its maximum over every problem's parameters
(:func:`mixscale._blocks._marquardt_scale`), so a problem with a nearly flat parameter steps
with a floor its neighbours set. Measured when a separable law's slots were refilled per problem
(each target's problem handed the next restart's as soon as it stopped, the neighbours then
other restarts'): on RegMix-1B the DML law's third target ended up to 1e-11 relative apart in
11 of 32 restarts and the additive law's fit 1.1 % lower, so every committed fit of a separable
law would move; the refill saved only 5–20 % of CPU time (additive 61.6 → 49.1 s, 32
restarts; joint on SlimPajama-7 22.5 → 21.4 s), since the batch still steps its finished
problems while its slowest chain of problems runs (the 1000-step ones), and was not adopted.

Ranges. Parameters stay in the box ``[lower, upper]`` of the law's ranges: parameters on a bound
whose descent direction (``−g``) leaves the box are held for the step (their Jacobian columns
removed), the rest take the damped Gauss–Newton step, and the trial point is clipped to the box.
The step is accepted only if it lowers the objective, so at a bound the remaining parameters
still descend; at the box's corner where no direction descends, the damping grows until the
problem stops (a constrained minimum).

Stopping and convergence. A problem *stops* as soon as it passes the gradient test below, or
once two accepted steps in a row each lower its objective by less than ``rtol`` relative to its
value before the step (a stall; ``rtol = 1e-12`` by default, so in practice only at rounding), or
once its :math:`\mu > 10^{16}` (no step of any length lowers it). It has *converged* only if it
passes the gradient test, the first-order condition measured without units:

.. math::

    \max_{i\ \mathrm{free}} \frac{|g_i|}{\|J_{:,i}\|\,\|r\|} \le \mathrm{gtol}
    \qquad (\mathrm{gtol} = 10^{-5},\ :data:`GTOL`),

the largest cosine between the residual vector and a Jacobian column, over the parameters not
held on a bound (MINPACK's ``gtol`` test; a held parameter satisfies its KKT condition by
construction). It is invariant to rescaling any parameter or the objective, so one tolerance
serves every law and table. A problem fitting its data exactly to rounding (RMS relative
residual at most :data:`EXACT_RMS`) passes it too, since there the angle is that of rounding
noise. A non-finite Jacobian (an underflowing term) gives a non-finite cosine and never
passes, where the earlier stall-or-damping rule reported such a problem converged. A restart has
converged when every problem has; it has failed when :math:`f` is not finite, and it stops
unconverged after ``max_steps`` steps. ``gtol=None`` restores the earlier rule (stopped =
converged).

Cost of linear algebra inside a law. The Jacobian is formed in forward mode, one tangent per column
(``W + S``; ``S`` for a ``"reverse-own"`` law), so whatever ``predict`` computes is computed once
per tangent, row and restart. A law whose prediction solves a ``K × K`` system
(``jnp.linalg.solve``) with its ``K²`` entries as shared parameters is correct and compiles in
seconds, but each step then runs hundreds of thousands of small batched triangular solves: measured
at ``K = 17`` (323 parameters, 307 of them shared, 60 runs, 16 restarts) about 1 s per LM step, so
200 steps took minutes before any restart stopped. That is the "hang" once seen with such a law: no
deadlock, slow steps and, then, no progress report. :func:`solve_lm` now reports progress at least
every :data:`HEARTBEAT_S` seconds; a law that needs a solve should keep its shared block small (few
parameters inside the matrix) or give the solve in closed form. A true hang is possible as well, and
was seen: jaxlib's batched LAPACK kernels (``LuDecomposition`` → ``ParallelBatchMap``) run on XLA's
CPU thread pool and wait there for sub-tasks of their own, so when as many mutually independent
factorisations as the pool has threads (two on a 2-core machine) start at once, each waits for a
thread the others hold, at 0 % CPU (stacks taken with ``gdb`` on the hung geodesic fit below, when
its acceleration had a second ``jnp.linalg.solve`` of the velocity's matrix). The solver therefore
factors each damped matrix once (:func:`mixscale._blocks. factor_normal`) and solves every
right-hand side from those factors, so that no two factorisations in a step are independent. A law's
own factorisations cannot be ordered that way (the acceleration evaluates the law at the current
point independently of the step's factorisation; the spectral law's ``jnp.linalg.solve`` hung a
geodesic fit exactly so), so :func:`mixscale.fit` refuses a law whose prediction reaches a
LAPACK-backed primitive, and laws solve their small systems with :func:`mixscale.solve_small` (plain
XLA arithmetic; :mod:`mixscale._linalg`).

One linearisation per step. Each pass of the loop evaluates the pending trial point's residuals
and Jacobian together (forward mode gives both), decides the step that proposed it, and proposes
the next step from the accepted point; a rejected trial's Jacobian is discarded. The sequence of
iterates is the classical one (evaluate the trial, relinearise at the accepted point: the same
count of Jacobians), but the law appears once in the compiled program instead of three times
(the start's linearisation, the trial's residuals and the relinearisation), which is most of a
fit's compile time on small problems: measured on the spectral law's planted recovery
(``tests/test_laws.py``, 8 restarts), XLA compile 24.4 → 17.7 s and the fit 95 → 75 s wall on the
shared 2-core machine, with the same steps per restart. A fresh slot's first pass evaluates its
start (:func:`lm_start` only clips it) and counts no step.

The slot queue. :func:`solve_lm` runs ``width`` restarts side by side under ``vmap``. Because a
vectorised ``while_loop`` runs until its slowest slot is done, the restarts advance in segments of
``SEGMENT`` steps (:func:`lm_advance`; a slot that has stopped is carried along unchanged). After
each segment the host records the restarts that have stopped and hands their slots the next
restarts of the queue (:func:`lm_start` always initialises a full batch, padded by repeating a
restart, so it compiles once); once the queue is empty, stopped slots stay idle until the last
restart stops. Bootstrap replicates (:mod:`mixscale._bootstrap`) go through the same queue: each
restart may carry its own :class:`~mixscale._objective.Replicate` (row weights, and losses), held
in its slot's state. Segments only decide when a stopped slot is refilled: a restart's iterates
do not depend on them, nor on the other restarts. They can depend on ``width`` by rounding, since a
batched linear solve of another width may round differently. Measured: running every fit on
``chunk`` slots (spare slots padded with copies, so that fits of one law on one table with
different restart counts would share one compiled program, fewer compilations in the tests)
moved a capacity fit of 20 restarts on Pile-4 200M/8B by 3e-9 relative in its objective, through
its nested variants' fits of 5 restarts. The experiments' fits (64 restarts, nested variants
fitted with all 64) run on 16 slots either way, but ``mixscale fit``'s own nested fits (a quarter
of the restarts, a sixteenth for a variant nested in a nested one) run on fewer; the widths stay
``min(width, R)`` (the suite's gain from sharing is not measured).
"""

from __future__ import annotations

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from ._blocks import (
    Blocks,
    NormalFactors,
    column_mask,
    compressed_jacobian,
    compressed_jacobian_by_rows,
    factor_normal,
    gradient,
    parameter_owners,
    solve_factored,
    solve_normal_equations,
)
from ._objective import (
    FitData,
    Layout,
    Replicate,
    Solution,
    first_restart,
    residuals,
    with_replicate,
)

__all__ = ["EXACT_RMS", "GTOL", "HEARTBEAT_S", "LMState", "SEGMENT", "lm_advance", "lm_start",
           "narrower_width", "solve_lm"]

#: Steps a slot advances between two visits of the host (refills of stopped slots).
SEGMENT = 25

#: Seconds without a stopped restart after which :func:`solve_lm` reports progress anyway.
HEARTBEAT_S = 10.0

#: The gradient test: a problem has converged once the cosine between its residual vector and
#: every free parameter's Jacobian column is at most this (see the module docstring).
GTOL = 1e-5

#: Geodesic acceleration: a step whose acceleration is larger than this share of its velocity
#: (``2‖a‖ > α‖v‖``, scaled norms) is rejected, as Transtrum & Sethna (2012) advise.
GEODESIC_ALPHA = 0.75

#: A problem whose root-mean-square (relative, Huber) residual is at most this fits its data
#: exactly to rounding: it passes the gradient test (its cosine is reported as 0).
EXACT_RMS = 1e-9


class LMState(eqx.Module):
    """The Levenberg–Marquardt state of one restart (batched ``(W, ...)`` over slots).

    The fit is ``G`` independent problems (:attr:`mixscale._blocks.Blocks.n_groups`: one per
    target when no parameter is shared, else one), each with its own damping, acceptance and
    stopping rule.

    Attributes:
        params: ``(P,)`` flat parameters (see :class:`mixscale._objective.Layout`).
        residuals: ``(n·M,)`` ``ψ_δ`` residuals at ``params``.
        jacobian: ``(n·M, W + S)`` their compressed Jacobian (:mod:`mixscale._blocks`).
        objective: ``f = ½‖residuals‖²`` (not divided by the number of observed entries).
        group_objectives: ``(G,)`` each problem's share of ``f``.
        damping: ``(G,)`` Marquardt's ``μ`` of each problem.
        steps: iterations taken, accepted or not.
        small_steps: ``(G,)`` accepted steps in a row whose relative decrease was below ``rtol``.
        done: whether the restart has stopped (converged or failed).
        nu: ``(G,)`` Nielsen's growth factor of ``μ`` on a rejected step.
        group_stopped: ``(G,)`` whether each problem has stopped (module docstring).
        converged: whether every problem has stopped and passes the gradient test.
        gradient_cosine: ``(G,)`` each problem's scaled gradient at ``params`` (its largest
            ``|g_i| / (‖J[:, i]‖ ‖r‖)`` over the parameters not held on a bound;
            see the module docstring), ``inf`` before the first step.
        trial: ``(P,)`` the pending trial point, proposed from ``params``
            (:func:`lm_advance` evaluates it first).
        predicted: ``(G,)`` the decrease the trial's step predicts, per problem.
        finished: ``(G,)`` problems that passed the gradient test at ``params`` (their trial
            stays at ``params``).
        too_curved: ``(G,)`` geodesic steps whose acceleration was too large (rejected).
        trial_cosine: ``(G,)`` the gradient test's cosine at ``params``.
        fresh: the slot has not evaluated its start yet (``trial`` is the start).
        replicate: the restart's own row weights (and losses), or ``None``: the shared data.
    """

    params: Array
    residuals: Array
    jacobian: Array
    objective: Array
    group_objectives: Array
    damping: Array
    steps: Array
    small_steps: Array
    done: Array
    nu: Array
    group_stopped: Array
    converged: Array
    gradient_cosine: Array
    trial: Array
    predicted: Array
    finished: Array
    too_curved: Array
    trial_cosine: Array
    fresh: Array
    replicate: Replicate | None = None


def _per_group(x: Array, y: Array, group: Array, n_groups: int) -> Array:
    """``Σ_{i in group} x_i y_i`` for each group ``(G,)`` (one dot product when ``G = 1``)."""
    if n_groups == 1:
        return jnp.dot(x, y)[None]
    return jax.ops.segment_sum(x * y, group, num_segments=n_groups)


def _group_max(x: Array, group: Array, n_groups: int) -> Array:
    """``max_{i in group} x_i`` for each group ``(G,)`` (``x >= 0``)."""
    if n_groups == 1:
        return jnp.max(x, initial=0.0)[None]
    return jax.ops.segment_max(x, group, num_segments=n_groups, indices_are_sorted=False)


def _residual_functions(static, data: FitData, delta, layout: Layout, blocks: Blocks):
    def residuals_of(p, rows):
        return residuals(layout.unravel(p), static, rows, delta)

    def res(p):
        return residuals_of(p, data)

    if type(static).row_jacobian == "reverse-own" and blocks.width:
        rows = jax.tree_util.tree_map(lambda x: x[:, None], data)  # run n: leaves (1, ...)

        def linearise(p):
            return compressed_jacobian_by_rows(residuals_of, rows, p, res, blocks)
    else:
        def linearise(p):
            return compressed_jacobian(res, p, blocks)

    def group_objectives(r):
        if blocks.n_groups == 1:
            return (0.5 * jnp.dot(r, r))[None]
        per_target = 0.5 * jnp.sum(r.reshape(-1, blocks.n_targets) ** 2, axis=0)
        return jax.ops.segment_sum(per_target, jnp.asarray(blocks.target_group),
                                   num_segments=blocks.n_groups)

    return res, linearise, group_objectives


# `assert_max_traces(max_traces=None)` only counts traces (no limit): the tests read the count
# with `eqx.debug.get_num_traces` to check that a second fit compiles nothing.
@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)
def lm_start(flat_params: Array, static, data: FitData, delta: Array, layout: Layout,
             blocks: Blocks, lower: Array, upper: Array,
             replicates: Replicate | None = None) -> LMState:
    """The initial state of every slot, from flat initial parameters ``(W, P)`` (clipped to
    ``[lower, upper]``) and, optionally, each slot's replicate (leaves ``(W, ...)``).

    No residual is evaluated here: the start is the first *proposal*, which :func:`lm_advance`
    evaluates (and accepts, when its objective is finite) before its first step, so that the
    law is compiled into one program only."""
    del static, delta  # the signature is lm_advance's
    g = blocks.n_groups
    n_rows = int(np.prod(data.mask.shape))

    def one(p, replicate):
        p = jnp.where(jnp.isfinite(lower) | jnp.isfinite(upper), jnp.clip(p, lower, upper), p)
        inf = jnp.full(g, jnp.inf, p.dtype)
        return LMState(params=p, residuals=jnp.zeros(n_rows, p.dtype),
                       jacobian=jnp.zeros((n_rows, blocks.n_colours), p.dtype),
                       objective=jnp.asarray(jnp.inf, p.dtype), group_objectives=inf,
                       damping=jnp.full(g, 1e-3, p.dtype), steps=jnp.zeros((), int),
                       small_steps=jnp.zeros(g, int), done=jnp.asarray(False),
                       nu=jnp.full(g, 2.0, p.dtype), group_stopped=jnp.zeros(g, bool),
                       converged=jnp.asarray(False), gradient_cosine=inf, replicate=replicate,
                       trial=p, predicted=jnp.zeros(g, p.dtype), finished=jnp.zeros(g, bool),
                       too_curved=jnp.zeros(g, bool), trial_cosine=inf,
                       fresh=jnp.asarray(True))

    return jax.vmap(one)(flat_params, replicates)


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)
def lm_advance(state: LMState, static, data: FitData, delta: Array, layout: Layout,
               blocks: Blocks, lower: Array, upper: Array, rtol: Array, gtol: Array | None,
               max_steps: Array, segment: int, bounded: bool = True,
               geodesic: bool = False) -> LMState:
    """Advance every slot that has not stopped by up to ``segment`` steps (at most to
    ``max_steps`` in all); see the module docstring for the step and the stopping rule
    (``geodesic``: with geodesic acceleration). ``rtol``, ``gtol`` and ``max_steps`` are scalar
    arrays (run-time values: one compilation serves any of them).

    Each pass of the loop evaluates the pending trial point, residuals and Jacobian together
    (one linearisation: the law appears once in the compiled program), decides the step that
    proposed it, and proposes the next one from the accepted point. The first pass of a fresh
    slot evaluates its start instead of deciding a step; it counts no step."""
    target_group = jnp.asarray(blocks.target_group)
    param_group = jnp.asarray(blocks.param_group)
    n_groups = blocks.n_groups
    rows = jnp.full(blocks.n_targets, float(data.mask.shape[0]))
    group_size = _per_group(jnp.ones(blocks.n_targets), rows, target_group, n_groups)  # (G,)

    def one(s: LMState) -> LMState:
        res, linearise, group_objectives = _residual_functions(
            static, with_replicate(data, s.replicate), delta, layout, blocks)
        stop_at = jnp.minimum(s.steps + segment, max_steps)

        def cond(s):
            return ((s.steps < stop_at) & ~s.done) | s.fresh

        def decide(s: LMState) -> LMState:
            """Evaluate the pending trial; accept or reject it per problem (a fresh slot's
            start is accepted as it is)."""
            f, mu, nu, small = s.group_objectives, s.damping, s.nu, s.small_steps
            r_new, j_new = linearise(s.trial)
            f_new = group_objectives(r_new)
            gain = (f - f_new) / jnp.where(s.predicted > 0, s.predicted, 1.0)
            accept = jnp.isfinite(f_new) & (f_new < f) & ~s.finished
            if geodesic:  # a step in a region too curved for its model is a rejected step
                accept = accept & ~s.too_curved
            mu = jnp.where(accept, mu * jnp.maximum(1.0 / 3.0, 1.0 - (2.0 * gain - 1.0) ** 3),
                           jnp.where(s.finished, mu, mu * nu))
            nu = jnp.where(accept, 2.0, 2.0 * nu)
            rel = (f - f_new) / jnp.maximum(f, 1e-300)
            small = jnp.where(accept, jnp.where(rel < rtol, small + 1, 0), small)
            group_stopped = s.finished | (small >= 2) | (mu > 1e16)
            cosine = jnp.where(s.group_stopped, s.gradient_cosine, s.trial_cosine)
            # a fresh slot: its start is the point, whatever it gives; nothing else moves
            accept = accept | s.fresh
            mu, nu, small = (jnp.where(s.fresh, old, new) for old, new in
                             ((s.damping, mu), (s.nu, nu), (s.small_steps, small)))
            group_stopped = group_stopped & ~s.fresh
            cosine = jnp.where(s.fresh, s.gradient_cosine, cosine)
            # Accepted problems take the trial's residuals and Jacobian; a problem whose step
            # was rejected keeps its own.
            p = jnp.where(accept[param_group], s.trial, s.params)
            kept = accept[target_group]                                  # (M,) per target
            r = jnp.where(kept[None, :], r_new.reshape(-1, blocks.n_targets),
                          s.residuals.reshape(-1, blocks.n_targets)).reshape(r_new.shape)
            jac = jnp.where(jnp.tile(kept, r.shape[0] // blocks.n_targets)[:, None], j_new,
                            s.jacobian)
            f_g = jnp.where(accept, f_new, f)
            stopped = jnp.all(group_stopped)
            total = f_g[0] if n_groups == 1 else jnp.sum(f_g)
            return LMState(params=p, residuals=r, jacobian=jac, objective=total,
                           group_objectives=f_g, damping=mu,
                           steps=jnp.where(s.fresh, s.steps, s.steps + 1),
                           small_steps=small, done=stopped | ~jnp.isfinite(total), nu=nu,
                           group_stopped=group_stopped,
                           converged=stopped if gtol is None else stopped & jnp.all(
                               cosine <= gtol), gradient_cosine=cosine, replicate=s.replicate,
                           trial=s.trial, predicted=s.predicted, finished=s.finished,
                           too_curved=s.too_curved, trial_cosine=s.trial_cosine,
                           fresh=jnp.asarray(False))

        def propose(s: LMState) -> LMState:
            """The next trial point from the accepted point, and the gradient test there."""
            p, r, jac, f, mu = (s.params, s.residuals, s.jacobian, s.group_objectives,
                                s.damping)
            too_curved = jnp.zeros(n_groups, bool)
            # Parameters on a bound whose descent direction leaves the box are held there
            # (their Jacobian columns removed); the rest take the damped Gauss-Newton step.
            if bounded:
                g = gradient(jac, r, blocks)
                held = ((p <= lower) & (g > 0)) | ((p >= upper) & (g < 0))
                masked = (jac.reshape(-1, blocks.n_targets, blocks.n_colours)
                          * column_mask(blocks, ~held)).reshape(jac.shape)
                if geodesic:
                    factors = factor_normal(masked, blocks, mu[target_group], mu[0])
                    step, _ = solve_factored(factors, r, blocks)
                    scale = factors.scale
                    step, too_curved = _accelerate(res, p, step, factors, blocks)
                else:
                    step, _, scale = solve_normal_equations(masked, r, blocks, mu[target_group],
                                                            mu[0])
                free = ~held
                trial = p + step
                inside = jnp.clip(trial, lower, upper)  # stay in the box
                step = jnp.where(inside == trial, step, inside - p)
            else:
                if geodesic:
                    factors = factor_normal(jac, blocks, mu[target_group], mu[0])
                    step, g = solve_factored(factors, r, blocks)
                    scale = factors.scale
                    step, too_curved = _accelerate(res, p, step, factors, blocks)
                else:
                    step, g, scale = solve_normal_equations(jac, r, blocks, mu[target_group],
                                                            mu[0])
                inside = p + step
                free = jnp.ones_like(p, dtype=bool)
            # First-order optimality at p, scale-free: the largest cosine between the residual
            # vector and a free parameter's Jacobian column, per problem.
            column_norm = jnp.sqrt(jnp.maximum(scale, 1e-300))
            cos_num = jnp.where(free, jnp.abs(g) / column_norm, 0.0)
            cosine = _group_max(cos_num, param_group, n_groups) / jnp.sqrt(
                jnp.maximum(2.0 * f, 1e-300))
            # A fit exact to rounding has no meaningful angle (r is rounding noise): it passes.
            cosine = jnp.where(2.0 * f <= group_size * EXACT_RMS**2, 0.0, cosine)
            # A problem whose gradient test holds stops here, before stepping: its cosine is
            # then the one at its final parameters.
            finished = s.group_stopped if gtol is None else s.group_stopped | (cosine <= gtol)
            trial = jnp.where(finished[param_group], p, inside)  # finished problems stay
            step = jnp.where(finished[param_group], 0.0, step)
            predicted = _per_group(0.5 * step, mu[param_group] * scale * step - g, param_group,
                                   n_groups)
            return eqx.tree_at(lambda t: (t.trial, t.predicted, t.finished, t.too_curved,
                                          t.trial_cosine),
                               s, (trial, predicted, finished, too_curved, cosine))

        def body(s):
            s = decide(s)
            return propose(s)

        return lax.while_loop(cond, body, s)

    return jax.vmap(one)(state)


def _accelerate(res, p: Array, velocity: Array, factors: NormalFactors,
                blocks: Blocks) -> tuple[Array, Array]:
    """The geodesically accelerated step ``v + a/2`` and, per problem, whether the
    acceleration is too large for it (``2‖a‖ > α‖v‖`` in the scaled norm ``‖x‖² = Σ s_i
    x_i²``, α = :data:`GEODESIC_ALPHA`; see the module docstring).

    ``a`` solves the damped normal equations of the velocity ``v`` (the same factors) with the
    residuals replaced by their second directional derivative ``r'' = d²r(p + t v)/dt²`` at
    ``t = 0`` (forward mode twice: a few evaluations of the residuals, exact)."""
    param_group = jnp.asarray(blocks.param_group)

    def along(q):
        return jax.jvp(res, (q,), (velocity,))[1]

    r2 = jax.jvp(along, (p,), (velocity,))[1]
    accel, _ = solve_factored(factors, r2, blocks)
    scale = factors.scale
    v2 = _per_group(scale * velocity, velocity, param_group, blocks.n_groups)
    a2 = _per_group(scale * accel, accel, param_group, blocks.n_groups)
    too_curved = ~(4.0 * a2 <= GEODESIC_ALPHA**2 * v2)  # NaN counts as too curved
    return velocity + jnp.where(too_curved[param_group], 0.0, 0.5 * accel), too_curved


def _set_rows(leaf, rows: np.ndarray, fresh):
    """``leaf`` with its ``rows`` replaced by the first ``len(rows)`` rows of ``fresh``."""
    out = np.array(leaf)
    out[rows] = np.asarray(fresh)[: len(rows)]
    return jnp.asarray(out)


def narrower_width(n_live: int, width: int) -> int:
    """The batch width for ``n_live`` running restarts on ``width`` slots once the queue is
    empty: the smallest power of two that holds them if it is at most half of ``width``, else
    ``width`` (shrinking by halves at least, so that a fit compiles at most ``log2 width`` more
    programs)."""
    narrow = 1 << max(0, int(n_live) - 1).bit_length()
    return narrow if narrow <= width // 2 else width


def solve_lm(params, static, data: FitData, delta: Array, rtol: float, max_steps: int,
             width: int, progress=None, per_target_fields: tuple[str, ...] = (),
             bounds=None, gtol: float | None = GTOL,
             replicates: Replicate | None = None, geodesic: bool = False,
             shrink_batch: bool = False) -> Solution:
    """Levenberg–Marquardt for every restart in ``params`` (leaves batched ``(R, ...)``).

    ``replicates`` (leaves batched ``(R, ...)``), if given, are each restart's own row weights
    and losses (bootstrap replicates); the objective of restart ``r`` is then its weighted ``J``.

    The restarts go through the slot queue of the module docstring on ``min(width, R)`` slots.
    ``progress(finished, best_objective)``, if given, is called after every segment in which a
    restart stopped (``best_objective``: the lowest ``J`` among the finished restarts), and
    after a segment that ends :data:`HEARTBEAT_S` seconds or more after the last call, so that a
    slow fit is seen to be alive.

    ``shrink_batch``: once the queue is empty, move the running restarts to a narrower batch
    (:func:`narrower_width`: 16 slots → 8 when 8 or fewer still run, and so on), so that the
    stopped slots stop costing a step each. Each width is a program of its own (compiled once
    per law and table shapes), and a batched solve of another width may round differently; a
    rounding can flip a step's acceptance, so a restart can end elsewhere (measured: the best of
    8 restarts of the capacity law on Pile-4 ended 1.9e-3 lower; on the experiments' in-scale
    fits of ``benchmarks/bench_race.py --shrink``, identical to 2e-11 and 1.4–2× faster).
    """
    n = jax.tree_util.tree_leaves(params)[0].shape[0]
    first = first_restart(params)
    layout = Layout.of(first)
    n_targets = int(data.mask.shape[1])
    blocks = Blocks.from_owners(parameter_owners(first, per_target_fields, n_targets), n_targets)
    if bounds is None:
        lower, upper = (jax.device_put(np.full(layout.size, v)) for v in (-np.inf, np.inf))
    else:
        lower, upper = layout.ravel(bounds[0]), layout.ravel(bounds[1])
    bounded = bool(np.isfinite(np.asarray(lower)).any() | np.isfinite(np.asarray(upper)).any())
    flat = layout.ravel_batch(params)
    width = min(width, n)
    queue = list(range(width, n))
    slot_of = np.arange(width)  # restart held by each slot (-1: none)

    def replicates_of(restarts):
        if replicates is None:
            return None
        return jax.tree_util.tree_map(lambda x: x[np.asarray(restarts)], replicates)

    state = lm_start(flat[:width], static, data, delta, layout, blocks, lower, upper,
                     replicates_of(np.arange(width)))
    out_p = np.zeros(flat.shape)
    out_f = np.full(n, np.inf)
    out_fg = np.full((n, blocks.n_groups), np.inf)
    out_conv = np.zeros(n, bool)
    out_steps = np.zeros(n, np.int64)
    out_cos = np.full((n, blocks.n_groups), np.inf)
    mask = np.asarray(data.mask)
    if replicates is None:  # observed entries: J = f / count
        count = np.full(n, float(np.sum(mask)))
    else:
        count = np.asarray(replicates.row_weights) @ mask.sum(axis=1).astype(float)
    finished = 0
    last_report = time.perf_counter()
    # The stopping rule's numbers go in as values, not constants of the program: fits that
    # differ only in them share one compilation (they are only compared against, so the
    # iterates are the same either way).
    rtol_v = jnp.asarray(rtol, state.objective.dtype)
    gtol_v = None if gtol is None else jnp.asarray(gtol, state.objective.dtype)
    max_steps_v = jnp.asarray(max_steps, state.steps.dtype)
    while True:
        state = lm_advance(state, static, data, delta, layout, blocks, lower, upper, rtol_v,
                           gtol_v, max_steps_v, SEGMENT, bounded, geodesic)
        done = np.asarray(state.done) | (np.asarray(state.steps) >= max_steps)
        free = [i for i in range(width) if done[i] and slot_of[i] >= 0]
        if free:
            p_np, f_np = np.asarray(state.params), np.asarray(state.objective)
            fg_np = np.asarray(state.group_objectives)
            conv_np, steps_np = np.asarray(state.converged), np.asarray(state.steps)
            cos_np = np.asarray(state.gradient_cosine)
            for i in free:
                k = slot_of[i]
                out_p[k], out_f[k], out_fg[k] = p_np[i], f_np[i], fg_np[i]
                out_conv[k], out_steps[k], out_cos[k] = conv_np[i], steps_np[i], cos_np[i]
                slot_of[i] = -1
                finished += 1
            refill = np.asarray(free[: len(queue)], dtype=np.int64)
            if refill.size:
                take = [queue.pop(0) for _ in refill]
                # Always start a full batch (padded by repetition): one compilation.
                batch = np.asarray(take + take[:1] * (width - len(take)))
                fresh = lm_start(flat[batch], static, data, delta, layout, blocks, lower, upper,
                                 replicates_of(batch))
                state = jax.tree_util.tree_map(
                    lambda s, x, idx=refill: _set_rows(s, idx, x), state, fresh)
                slot_of[refill] = take
        if shrink_batch and not queue and finished < n:
            live = [i for i in range(width) if slot_of[i] >= 0]
            narrow = narrower_width(len(live), width)
            if narrow < width:
                # padded by repeating a running slot; the copies hold no restart (-1)
                rows = np.asarray(live + live[:1] * (narrow - len(live)))
                state = jax.tree_util.tree_map(lambda x, r=rows: x[r], state)
                slot_of = np.asarray([slot_of[i] for i in live] + [-1] * (narrow - len(live)))
                width = narrow
        # Report when a restart stopped, or when none has for HEARTBEAT_S (slow steps, e.g. a
        # law solving a linear system per parameter tangent): the fit is seen to be alive.
        if progress is not None and (free or time.perf_counter() - last_report >= HEARTBEAT_S):
            progress(finished, float(np.min(out_f / count)))
            last_report = time.perf_counter()
        if finished == n:
            break
    params_out = layout.unravel_batch(out_p)
    return Solution(params=params_out, objectives=out_f / count,
                    converged=out_conv & np.isfinite(out_f), steps=out_steps,
                    group_objectives=out_fg / count[:, None] if blocks.n_groups > 1 else None,
                    gradient_cosines=out_cos)
