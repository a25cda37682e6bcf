r"""A certificate for a fit that stopped on a kink: Levenberg–Marquardt along the kinks, then the
sampled (Clarke) stationarity measure.

Why. The capacity law's allocation :math:`x_i = \max(H, \cdot)` makes the objective
non-differentiable on the surfaces where a domain's unconstrained allocation meets the head floor
(:func:`mixscale._allocation.log_floor_gap` ``= 0`` in some run). Fits are drawn to them: the
objective's valley can have its floor on such a surface, where the one-sided gradients point
against each other. There the gradient test of :mod:`mixscale._lm` fails however long the fit
runs, and Levenberg–Marquardt stalls, its Gauss–Newton steps built from one side crossing the
kink; the smoothing continuation (``fit(smooth_kinks=True)``) brings the fit near such a point but
leaves it a little short (:mod:`mixscale._stationarity`).

The method. Where the fit stopped, the runs' kinks within :data:`KINK_TOL` of zero are *active*:
:math:`z_k(p) = 0` (``k`` over the active (run, domain) pairs) defines a smooth manifold on which
the objective is smooth (both sides agree on the surface), so the fit can finish *on* it. Each
step is the damped Gauss–Newton step of the residuals restricted to the tangent space
:math:`\{d : \nabla z_k \cdot d = 0\}` (an orthonormal basis ``Q`` of the free parameters'
tangent space, so the step is :math:`Q y` with
:math:`(Q^\top J^\top J Q + \mu\,\mathrm{diag}(s)) y = -Q^\top J^\top r`), followed by a
*retraction* back onto the surface: Gauss–Newton on :math:`z(p) = 0` along the normals, a few
iterations. Without the retraction the steps must stay short on a curved kink (a
prototype without it lowered the objective by 0.13 % in 400 steps); with it they are long. Damping,
acceptance and the parameters held on a range bound are those of :mod:`mixscale._lm`, with one
addition: a parameter on a bound whose own gradient points into the box is held as well when the
step projected on the tangent space would push it out (the projection mixes the parameters; a
clipped step leaves the tangent and can climb, and the steps stalled so on a spectral fit of
Pile-4 whose ``b`` sat on its upper bound, tangential cosine 2e-4). A kink
that becomes active on the way joins the set. It stops when the tangential gradient passes the
gradient test (:data:`mixscale._lm.GTOL`, the same scaled cosine), when no step lowers the
objective, or where an active kink's normal is not a finite number (a trial whose retraction
meets such a normal is refused; the fit ends where it was, and the certificate judges that
point). Such normals occur: a capacity law with a shared head (``law_vs_simulator``, 4 domains,
a head of 32) had its retraction's least squares fail on them ("SVD did not converge").

The certificate. At the end, the sampled measure
:func:`mixscale._stationarity.sampled_stationarity` (the point of the convex hull of the gradients
sampled around it nearest the origin, scaled as the gradient test) certifies a first-order
(Clarke) stationary point when it is at most ``gtol``: then no direction, across the kink or
along it, lowers the objective to first order. Tangential stationarity alone does not: if both
one-sided slopes across a kink point the same way, the fit should leave the kink, and the
measure says so. A fit exact to rounding (RMS residual at most :data:`mixscale._lm.EXACT_RMS`)
is certified as the gradient test passes it: its residuals are rounding noise. Besides its
uniform draws, the measure samples a point on every side of the active kinks
(:func:`kink_side_points`): where two kinks' normals are nearly parallel, the sides where their
gaps differ in sign are thin wedges that uniform draws miss, and a stationary point then reads
as not stationary (measured: a ``fit_under_overlap`` fit uncertified after its whole budget,
measure 1.2e-4, is certified at 8.5e-6 where it stood).

Leaving a kink. Where the measure finds the point not stationary, its nearest hull point ``v`` gives
a direction that lowers the objective on every side sampled
(:func:`mixscale._stationarity.clarke_descent`; gradient sampling's step): the fit takes it (Armijo
backtracking from a step predicted to halve the objective, down to the sampling radius), then goes
on along the kinks active where it lands, and is measured again — at most :data:`MAX_ESCAPES` times,
within ``max_steps``. Where more than :data:`SIDE_KINKS` independent kinks are active, a search adds
the sides that block the direction most, and where the step fails all the same, the gradients along
it join the hull and the new direction is tried (:class:`KinkHull`: column generation and null
steps). Measured on RegMix-1B's split 0, capacity ``transfer`` (12 active kinks), uncertified at a
measure of 1.6e-3 with every step off failing: the search alone lowers the measure to 2.1e-4, the
step still fails; with the null steps, one step off and then certified, measure 8.6e-6, objective
−5.4e-5 relative. So a fit stuck on a kink that the objective descends across, or along which the
tangent steps cannot move, is carried off it instead of left uncertified
(``KinkCertificate.escapes`` counts the steps off). Every step lowers the objective, so the
certificate can only improve the fit it starts from: :func:`mixscale.fit` returns its end wherever
it is lower, certified or not (``FitResult.kink_kept``); on RegMix-1B's in-scale split 4
(``compare_laws``) the capacity law's ``pooled`` and ``pooled_coupled`` variants end uncertified
0.32 % and 0.31 % lower after the 1000-step budget (0.56 % and 0.50 % after 4000: they crawl along
curved kinks, sampled measure 4.6e-3 and 5.3e-3), ends that were dropped while only a certified end
was kept.

The second-order pass. Those crawls are not the kinks' curvature: the Gauss–Newton model
``JᵀJ`` misses the residuals' own curvature ``Σ r ∇²r``, which is not small where the fit
leaves large residuals and its parameters run into the corners of their ranges (RegMix-1B's
``pooled`` fit on split 4: five exponents on a bound, amplitudes underflowed to ``e^-40``–
``e^-360``), and the damping that keeps the model honest keeps the steps short (232 of 300
steps accepted, 2e-7 of the objective each, predicted and measured reductions apart by the
neglected term; clipping at a bound played no part). Where the Gauss–Newton pass ends
uncertified, :func:`certify_in_passes` runs a second pass from its end with the
Lagrangian's exact Hessian on the kinks' tangent space,
:math:`Q^\top(\nabla^2 f - \sum_k \lambda_k \nabla^2 z_k)Q` (multipliers
:math:`\lambda` from :math:`\nabla f = \sum_k \lambda_k \nabla z_k` by least squares;
second derivatives that underflow to a non-number take Gauss–Newton's entries), in a trust
region scaled like Marquardt's (:func:`_trust_region_step`: exact on the reduced problem, so
an indefinite Hessian's descent along negative curvature is taken rather than damped away),
cut where it first meets a range bound (that parameter put on it), retracted onto the kinks;
the radius grows by 2 after a step whose reduction matches the model (ratio above 3/4) at
its boundary and shrinks to a quarter of the step below 1/4. Gauss–Newton stays the first
pass: it needs no Hessian and certifies most fits; the second pass changes no fit the first
certified. Measured on the same ``pooled`` fit (1000-step budgets): the second pass lowers
the objective by 0.61 % in 596 trials (28 s) where Gauss–Newton's 4000 gave 0.555 % (319 s).

The passes. The two passes stop for different reasons (Gauss–Newton where its damped model's
steps stop descending, the second-order pass where its trust radius collapses), and where one
stops the other can go on: :func:`certify_in_passes` runs them in turn, each from the last one's
end, until one certifies, one makes no progress (no step accepted, none off the kinks) or
:data:`MAX_PASSES` have run. A fit the first two passes certify is unchanged. Measured on
``compare_laws``' SlimPajama-7 split 2, capacity ``transfer`` (two active kinks): after
767 Gauss–Newton and 714 second-order steps the tangential cosine was 1.0e-4 and the measure
2.3e-4, uncertified; a third pass (Gauss–Newton) certifies in 85 steps (7 s), measure 9.9e-6,
objective −3.5e-6 relative. On RegMix-1B's split 0 ``transfer`` (12 active kinks, 11
independent) the passes reach a tangential cosine of 8.6e-6, but the measure stays at 1.6e-3
with no step off the kinks that descends: the side points cover 6 of its kinks.

A law without kinks. The same passes finish a law that lists none (its gaps an empty vector):
the Gauss–Newton pass is then damped Gauss–Newton on the whole problem, the second-order pass a
trust region on the objective's exact Hessian, and the certificate the sampled measure, which
for a smooth objective is the gradient test at the point (its gradients, all within
:data:`mixscale._stationarity.EPSILON` of it, agree to rounding). It runs where the fitter's
own stages leave the returned restart unconverged: Levenberg–Marquardt's model ``JᵀJ`` misses
the residuals' curvature there as on the kinks. Measured on ``regmix_overlap``'s RegMix-1B
split 4, the overlap law's ``rank 1 + g`` structure (85 parameters, smooth): after 37,000
Levenberg–Marquardt steps (restarts, polish and finish) the gradient test read 1.2e-4; the
passes took 733 Gauss–Newton and 382 second-order steps (13 s) to a measure of 7.0e-6,
certified, the objective 0.12 % lower.

Measured (the capacity law's ``full`` variant; the experiments' fit: 64 restarts, nested starts,
polish, kink continuation, then this; 2-core machine shared with an experiment):

* SlimPajama-7's whole in-scale table (``compare_laws``' 122M table): the continuation ends
  unconverged (cosine 6.4e-4) with a run's allocation on the head floor; 11 steps (22 s) along
  one active kink lower the objective by 5.5e-6 relative to a sampled measure of 8.3e-6:
  certified.
* RegMix-1B, ``compare_laws``' first split: 363 steps (22 s), two active kinks, −0.053 %,
  measure 9.9e-6: certified.
* SlimPajama-7, ``compare_laws``' first split: before the steps off the kinks and the bounds'
  multipliers in the measure, 855 steps (31 s), four active kinks, −0.031 %, tangential cosine
  2.6e-5 when no step lowered the objective further, measure 2.4e-5: not certified. With them
  (``benchmarks/bench_kinks.py --tables slimpajama7 pile4 --splits 0 1``, beside two other
  fits): 804 steps (18 s), four active kinks, −0.031 %, measure 9.6e-6: certified; its second
  split 160 steps, 1.5e-6, certified.
* Pile-4, ``compare_laws``' second split: before, 334 steps (16 s), two active kinks, −1.18 %,
  then stuck at a measure of 1.0e-5, just above ``gtol``: not certified (stopping the steps at a
  tenth of ``gtol`` stalled at 605 steps, measure 1.5e-5). With them: 166 steps (13 s),
  −1.18 %, measure 5.4e-6: certified.
* The spectral law (``full``) on ``real_extrapolation``'s Pile-4 protocol: before, 16 steps
  along four active kinks, then stalled at a tangential cosine of 2.2e-4 (``b`` of one domain
  on its upper bound, pushed out of the box by the projected step), measure 2.5e-4. Holding it:
  210 steps to a tangential cosine of 8.9e-6, −0.059 %, but measure 2.4e-4 (the objective still
  fell across a kink); with the steps off the kinks, 250 steps in all, −0.061 %, measure
  6.7e-6: certified.

A first prototype with a stricter stop (tangential cosine 1e-6) on the whole SlimPajama-7 table
took about 400 steps to a measure of 2.4e-6 (−0.011 %).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ._lm import EXACT_RMS, GTOL
from ._stationarity import EPSILON

__all__ = ["KINK_TOL", "KinkCertificate", "certify_fit", "certify_in_passes", "certify_kink",
           "certify_law", "fitted_problem", "flat_problem", "independent_kinks",
           "kink_side_points", "KinkHull"]

#: A kink is active when its gap is within this of zero (log units for the allocation floor):
#: Levenberg–Marquardt stalls within about 1e-11 of the kinks it stops on.
KINK_TOL = 1e-7
#: Gauss–Newton iterations of the retraction onto the active kinks, and the gap it reaches.
_RETRACTION_STEPS = 8
_RETRACTION_TOL = 1e-13
#: Steps off the kinks along the sampled descent direction at most (:func:`certify_kink`).
MAX_ESCAPES = 50
#: Passes of :func:`certify_in_passes` at most (Gauss–Newton, second-order, in turn).
MAX_PASSES = 6
#: The active kinks whose sides the sampled measure visits explicitly, at most: ``2**6`` points
#: (:func:`kink_side_points`).
SIDE_KINKS = 6
#: Rounds of the search for the sides of more active kinks than that (:class:`KinkHull`).
SEARCH_ROUNDS = 8
#: Failed steps off the kinks whose segments join the sampled gradients before the
#: certificate gives up at a point (:class:`KinkHull`), and the points on each segment.
NULL_STEPS = 8
SEGMENT_POINTS = 16
#: The gap (log units for the allocation floor) at which those points sit on a kink's sides:
#: well above the gaps' rounding (about 1e-15 on these laws), well below :data:`KINK_TOL`.
_SIDE_GAP = 1e-12
#: The second-order pass stops when its trust radius falls below this fraction of the residuals'
#: norm: no step it allows changes the residuals beyond rounding.
_MIN_RADIUS = 1e-12


def _trust_region_step(hess: np.ndarray, grad: np.ndarray, radius: float) -> np.ndarray:
    r"""The minimiser of the model :math:`g^\top y + \tfrac12 y^\top H y` over
    :math:`\|y\| \le` ``radius`` (Moré–Sorensen by the eigen-decomposition of ``H``, which may
    be indefinite): the Newton step where ``H`` is positive definite and the step fits, else
    :math:`y(s) = -(H + sI)^{-1} g` with the shift :math:`s \ge \max(0, -\lambda_{min})` that
    puts it on the boundary (bisection: ``‖y(s)‖`` falls as ``s`` grows), plus a move along the
    lowest eigenvector in the "hard case" where ``g`` has no component along it."""
    lam, vec = np.linalg.eigh(0.5 * (hess + hess.T))
    a = vec.T @ grad
    if lam[0] > 0.0:
        y = -vec @ (a / lam)
        if np.linalg.norm(y) <= radius:
            return y
    lo = max(0.0, -float(lam[0]))
    hi = lo + float(np.linalg.norm(grad)) / radius

    def step(shift):
        denom = lam + shift
        keep = denom > 0.0
        return -vec[:, keep] @ (a[keep] / denom[keep])

    if np.linalg.norm(step(lo * (1.0 + 1e-12) + 1e-300)) < radius:
        # the hard case: the step off the lowest eigenvalue's directions, filled up to the
        # radius along the lowest eigenvector
        off = lam > lam[0] + 1e-12 * max(float(np.max(np.abs(lam))), 1e-300)
        y = -vec[:, off] @ (a[off] / (lam[off] + lo))
        extra = np.sqrt(max(radius**2 - float(y @ y), 0.0))
        v0 = vec[:, 0]
        return y - extra * v0 * (1.0 if float(v0 @ grad) >= 0.0 else -1.0)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.linalg.norm(step(mid)) > radius:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return step(hi)


def _damped_step(q: np.ndarray, *, jac: np.ndarray, r: np.ndarray, mu: float):
    r"""Marquardt's damped Gauss–Newton step on the tangent basis ``q`` ``(P, T)``:
    ``(y, Qᵀ Jᵀ r, d)`` with :math:`(Q^\top J^\top J Q + \mu\,\mathrm{diag}(d))\,y =
    -Q^\top J^\top r`, ``d`` the diagonal floored at ``1e-12`` of its largest entry."""
    jq = jac @ q
    a = jq.T @ jq
    gq = jq.T @ r
    d = np.maximum(np.diag(a), 1e-12 * max(float(np.diag(a).max()), 1e-300))
    return np.linalg.solve(a + mu * np.diag(d), -gq), gq, d


def _scaled_trust_region_step(q: np.ndarray, *, hess: np.ndarray, jtj: np.ndarray,
                              g: np.ndarray, radius: float):
    """The trust-region step (:func:`_trust_region_step`) of the model ``(Qᵀ H Q, Qᵀ g)`` on
    the tangent basis ``q``, the radius measured in Marquardt's scaling (``d``: the square
    roots of ``diag(Qᵀ JᵀJ Q)``, floored): ``(y, d·y, Qᵀ H Q, Qᵀ g)``."""
    h_red, g_red = q.T @ hess @ q, q.T @ g
    dd = np.diag(q.T @ jtj @ q)
    d = np.sqrt(np.maximum(dd, 1e-12 * max(float(dd.max()), 1e-300)))
    ys = _trust_region_step(h_red / d[:, None] / d[None, :], g_red / d, radius)
    return ys / d, ys, h_red, g_red


@dataclasses.dataclass(frozen=True)
class KinkCertificate:
    """The outcome of :func:`certify_kink`.

    Attributes:
        params: ``(P,)`` the final flat parameters (the start's if no step was accepted).
        objective: ``½‖r‖²`` there.
        start_objective: ``½‖r‖²`` at the start.
        steps: accepted steps along the kinks (of every Gauss–Newton pass,
            :func:`certify_in_passes`).
        active_kinks: how many kinks are active at the end.
        tangential_cosine: the gradient test's cosine of the gradient projected on the active
            kinks' tangent space at the end.
        sigma: the sampled stationarity measure at the end.
        certified: ``sigma <= gtol``: a first-order (Clarke) stationary point.
        escapes: steps taken off the kinks along the sampled gradients' descent direction
            (:func:`mixscale._stationarity.clarke_descent`), each followed by steps along the
            kinks active where it landed.
        second_order_steps: accepted steps of the second-order passes (:func:`certify_in_passes`),
            run where the first Gauss–Newton pass ends uncertified; ``None`` where none ran (a
            certified first pass, or a certificate made before the pass existed).
    """

    params: np.ndarray
    objective: float
    start_objective: float
    steps: int
    active_kinks: int
    tangential_cosine: float
    sigma: float
    certified: bool
    escapes: int = 0
    second_order_steps: int | None = None


def kink_side_points(p: np.ndarray, gaps: np.ndarray, normals: np.ndarray, lower: np.ndarray,
                     upper: np.ndarray, *, kink_tol: float = KINK_TOL,
                     epsilon: float = EPSILON) -> np.ndarray | None:
    r"""Points near ``p`` on every side of its active kinks, for the sampled measure
    (:func:`mixscale._stationarity.clarke_descent`'s ``extra_points``): ``(2**SIDE_KINKS, P)``,
    or ``None`` where no kink is active.

    Why. At an intersection of kinks the Clarke subdifferential is the hull of the gradients of
    every piece that meets there, one per sign pattern of the kinks' gaps. Uniform draws in the
    ``ε``-box find a piece in proportion to its share of the box, and where two kinks' normals
    are nearly parallel the mixed patterns are thin wedges: a fit of ``fit_under_overlap``
    (capacity ``coupled``, head 8, ρ = 0.75) sat on two such kinks (normals at a cosine of 0.991,
    each repeated over three budgets), its 33 samples never drew the pattern ``(+, −)``, the
    measure read 1.2e-4 and every step off the kink failed: uncertified after the whole budget.
    With this pattern's point the measure is 8.5e-6, certified (256 uniform draws give the same).

    How. The active kinks (gap within ``kink_tol``), most active first, are kept while their
    normals are independent (a normal within 1e-8 of the span of those kept is the same surface
    to first order: the same kink repeated over runs that differ only in tokens), at most
    :data:`SIDE_KINKS`; for each sign pattern ``s`` of the ``r`` kept, the point is ``p`` moved
    by the least-norm step that puts their linearised gaps at ``s τ``,
    :math:`N^\top (N N^\top)^{-1}(s\,\tau - z)`, clipped to the box, with ``τ = 1e-12`` or
    less, so that the step towards ``s τ`` stays within ``epsilon / 2`` (a thin wedge is
    entered closer to the kinks' intersection); a pattern whose step still exceeds
    ``epsilon`` (the gaps at ``p`` are too far from zero for its wedge to lie within the
    measure's radius) and the unused rows are ``p`` itself. The row count is fixed, whatever
    ``r``, so that the measure's compiled gradients are traced for one more shape only, not
    for each ``r`` (a padding row costs one duplicate gradient).

    Args:
        p: ``(P,)`` the parameters.
        gaps: ``(G,)`` every kink's gap at ``p``.
        normals: ``(G, P)`` their gradients at ``p``.
        lower, upper: ``(P,)`` the box.
    """
    chosen = independent_kinks(gaps, normals, kink_tol=kink_tol, at_most=SIDE_KINKS)
    if not chosen:
        return None
    patterns = np.array(list(itertools.product((1.0, -1.0), repeat=len(chosen))))
    points = np.repeat(p[None], 2**SIDE_KINKS, axis=0)
    points[:len(patterns)] = _pattern_points(p, gaps[chosen], normals[chosen], patterns,
                                             lower, upper, epsilon)
    return points


def independent_kinks(gaps: np.ndarray, normals: np.ndarray, *, kink_tol: float = KINK_TOL,
                      at_most: int | None = None) -> list[int]:
    """The active kinks (gap within ``kink_tol``), most active first, kept while their normals
    are independent (a normal within 1e-8 of the span of those kept is the same surface to first
    order: the same kink repeated over runs that differ only in tokens), at most ``at_most``;
    kinks whose normal is not finite or zero are left out (the certificate stops on them)."""
    active = np.flatnonzero(np.abs(gaps) < kink_tol)
    active = active[np.argsort(np.abs(gaps[active]), kind="stable")]
    chosen, basis = [], np.zeros((0, normals.shape[1]))
    for k in active:
        normal = normals[k]
        size = float(np.linalg.norm(normal)) if np.all(np.isfinite(normal)) else 0.0
        if size == 0.0:
            continue
        rest = normal - basis.T @ (basis @ normal)
        if np.linalg.norm(rest) <= 1e-8 * size:
            continue
        chosen.append(int(k))
        basis = np.vstack([basis, rest / np.linalg.norm(rest)])
        if at_most is not None and len(chosen) == at_most:
            break
    return chosen


def _pattern_points(p, gaps, n_mat, patterns, lower, upper, epsilon):
    """``(len(patterns), P)``: ``p`` moved by the least-norm step that puts the linearised gaps
    of the kinks with normals ``n_mat`` ``(r, P)`` and gaps ``gaps`` ``(r,)`` at ``s τ`` for
    each sign pattern ``s`` (rows of ``patterns``), :func:`kink_side_points`; ``p`` itself for a
    pattern whose step exceeds ``epsilon``."""
    solve = lambda rhs: (n_mat.T @ np.linalg.solve(n_mat @ n_mat.T, rhs.T)).T  # noqa: E731
    unit = solve(patterns)                                   # the steps per unit of gap
    gap = np.minimum(_SIDE_GAP, 0.5 * epsilon / np.max(np.abs(unit), axis=1))
    steps = gap[:, None] * unit - solve(gaps[None])
    near = np.max(np.abs(steps), axis=1) <= epsilon
    points = np.repeat(p[None], len(patterns), axis=0)
    points[near] = np.clip(p + steps[near], lower, upper)
    return points


class KinkHull:
    r"""The gradients sampled around a point ``p`` on kinks, for the sampled measure and its
    descent direction (:func:`mixscale._stationarity.clarke_descent`), grown where the direction
    fails.

    At construction: ``p``, the measure's uniform draws and every side of up to
    :data:`SIDE_KINKS` active kinks (:func:`kink_side_points`); where more are active and
    independent and the measure is above ``gtol``, the sides a search finds (below).
    :meth:`measure` is ``(σ, d, slope)`` over every gradient held; :meth:`add_segment` adds the
    gradients along a direction that failed to descend (a null step).

    Why more than uniform draws and enumerated sides. With ``r`` independent active kinks the
    objective has up to ``2^r`` pieces at ``p``; a fit on RegMix-1B (capacity ``transfer``,
    ``compare_laws``' split 0) sat on 11 (2048 pieces), of which the enumerated sides cover
    64, and its measure read 1.6e-3 while no step along the implied direction ``d`` descended:
    a piece not sampled ascends along ``d``.

    The search (column generation for the hull's nearest point, as in Wolfe's method). The piece
    that blocks ``d`` most is the one whose gradient has the largest directional derivative
    ``g(s) · d``; with each kink's jump ``J_k`` (half the difference of the gradients on its two
    sides, the other kinks on ``p``'s own sides) the additive model ``g(s) ≈ g_0 + Σ_k s_k J_k``
    puts it at ``s_k = sign(J_k · d)``. The model is only a guide (on that fit the kinks
    interact through the allocation's multiplier: the all-plus piece's gradient is 23 % off
    the model), so each round evaluates the exact gradients at that pattern and its
    single-sign flips (batches of ``2**SIDE_KINKS`` rows, the kinks whose ``J_k · d`` is
    nearest zero flipped first), adds them and solves again, for at most
    :data:`SEARCH_ROUNDS` rounds, until the measure is at most ``gtol`` or a round lowers it
    by less than 1 %.

    The null step (the bundle methods' answer to a failed line search). Where the step along
    ``d`` fails down to the sampling radius, the segment it tried crosses pieces whose
    gradients the hull lacks: the gradients at ``p + τ d / ‖d‖_∞`` for
    ``τ = ε, ε/2, …`` (:data:`SEGMENT_POINTS` points) are added and the measure solved again.

    Every gradient added is the exact gradient at a point within ``ε`` of ``p`` (in the
    max-norm), so the hull only grows within the sampled Clarke subdifferential: the measure
    can only fall, and a point whose every step off fails keeps its (larger) measure,
    uncertified, as before.
    """

    #: Rows per batch of added points: one compiled shape for all of them.
    BATCH = 2**SIDE_KINKS

    def __init__(self, residual_fn, p: np.ndarray, gaps: np.ndarray, normals: np.ndarray,
                 lower: np.ndarray, upper: np.ndarray, *, gtol: float = GTOL,
                 kink_tol: float = KINK_TOL, epsilon: float = EPSILON):
        from ._stationarity import sample_points, sampled_gradients

        self.residual_fn, self.p, self.lower, self.upper = residual_fn, p, lower, upper
        self.epsilon = epsilon
        sides = kink_side_points(p, gaps, normals, lower, upper, kink_tol=kink_tol,
                                 epsilon=epsilon)
        self._sampled = [sampled_gradients(residual_fn,
                                           sample_points(p, epsilon=epsilon, extra_points=sides),
                                           lower, upper)]
        self._result = self._solve()
        if self._result[0] > gtol:
            chosen = independent_kinks(gaps, normals, kink_tol=kink_tol)
            if len(chosen) > SIDE_KINKS:
                self._search(gaps[chosen], normals[chosen], gtol)

    def measure(self) -> tuple[float, np.ndarray, float]:
        """``(σ, d, slope)`` over every gradient held (:func:`mixscale._stationarity.
        hull_descent`)."""
        return self._result

    def add_segment(self, direction: np.ndarray) -> tuple[float, np.ndarray, float]:
        """Add the gradients along ``direction`` within the sampling radius (a null step) and
        solve again: the new ``(σ, d, slope)``."""
        size = float(np.max(np.abs(direction)))
        if size == 0.0:
            return self._result
        taus = self.epsilon * 0.5 ** np.arange(SEGMENT_POINTS)
        self._add(self.p + (taus[:, None] / size) * direction[None])
        self._result = self._solve()
        return self._result

    def _add(self, points: np.ndarray) -> np.ndarray:
        """Sample the gradients at ``points``, in batches of :attr:`BATCH` rows (the last padded
        with ``p``); their gradients ``(len(points), P)``."""
        from ._stationarity import sampled_gradients

        rows, batch = len(points), self.BATCH
        padded = np.repeat(self.p[None], -(-rows // batch) * batch, axis=0)
        padded[:rows] = points
        new = [sampled_gradients(self.residual_fn, padded[start:start + batch], self.lower,
                                 self.upper) for start in range(0, len(padded), batch)]
        self._sampled.extend(new)
        return np.concatenate([g for g, _, _ in new])[:rows]

    def _solve(self):
        from ._stationarity import hull_descent

        grads, norms, rnorm = (np.concatenate(x) for x in zip(*self._sampled, strict=True))
        return hull_descent(self.p, self.lower, self.upper, grads, norms, rnorm)

    def _search(self, gaps, n_mat, gtol):
        """The search for more kinks' sides (class docstring) over the kinks with gaps
        ``gaps`` ``(r,)`` and independent normals ``n_mat`` ``(r, P)``."""
        r = len(gaps)

        def evaluate(patterns):
            return self._add(_pattern_points(self.p, gaps, n_mat, patterns, self.lower,
                                             self.upper, self.epsilon))

        base = np.where(gaps >= 0.0, 1.0, -1.0)                   # p's own sides
        flips = np.repeat(base[None], 2 * r, axis=0)
        index = np.arange(r)
        flips[index, index], flips[r + index, index] = 1.0, -1.0
        g_sides = evaluate(flips)
        jumps = 0.5 * (g_sides[:r] - g_sides[r:])                # (r, P)
        self._result = self._solve()
        for _ in range(SEARCH_ROUNDS):
            if self._result[0] <= gtol:
                break
            along = jumps @ self._result[1]
            worst = np.where(along >= 0.0, 1.0, -1.0)
            order = np.argsort(np.abs(along), kind="stable")[:self.BATCH - 1]
            candidates = np.repeat(worst[None], 1 + len(order), axis=0)
            candidates[1 + np.arange(len(order)), order] *= -1.0
            evaluate(candidates)
            previous, self._result = self._result, self._solve()
            if self._result[0] > 0.99 * previous[0]:
                break


def _scaled_cosine(g: np.ndarray, column_sq: np.ndarray, f: float, free: np.ndarray) -> float:
    """The gradient test of :mod:`mixscale._lm`: ``max |g_i| / (‖J_i‖ ‖r‖)`` over the free
    parameters, column norms floored at ``1e-6`` of the largest (Marquardt's scaling floor)."""
    scale = np.maximum(column_sq, 1e-12 * max(float(column_sq.max()), 1e-300))
    cos = np.abs(g) / np.sqrt(scale) / np.sqrt(max(2.0 * f, 1e-300))
    return float(np.max(cos[free])) if free.any() else 0.0


@functools.lru_cache(maxsize=8)
def _programs(residual_fn: Callable[[jax.Array], jax.Array],
              gap_fn: Callable[[jax.Array], jax.Array]):
    """The compiled programs of :func:`certify_kink` for one problem, kept for its later passes
    (:func:`certify_in_passes` calls it again with the same functions; fresh closures would be
    compiled again at every pass): ``linearise(q) -> (r, J, z, ∂z)``, ``value(q) -> (½‖r‖², z)``,
    ``normals_at(q) -> ∂z`` and ``curvature(q, weights) -> (∇²f, ∇²(weights · z))``."""

    @jax.jit
    def linearise(q):
        r, jac = residual_fn(q), jax.jacfwd(residual_fn)(q)
        return r, jac, gap_fn(q), jax.jacfwd(gap_fn)(q)

    @jax.jit
    def value(q):
        r = residual_fn(q)
        return 0.5 * jnp.dot(r, r), gap_fn(q)

    @jax.jit
    def curvature(q, weights):
        """The objective's Hessian and that of ``weights · gaps`` (the kinks' part of the
        Lagrangian's), ``(P, P)`` each."""
        def f_of(u):
            r = residual_fn(u)
            return 0.5 * jnp.dot(r, r)

        def weighted_gaps(u):
            z = gap_fn(u)
            return jnp.dot(weights, jnp.where(weights != 0.0, z, 0.0))

        return jax.hessian(f_of)(q), jax.hessian(weighted_gaps)(q)

    return linearise, value, jax.jit(jax.jacfwd(gap_fn)), curvature


def certify_kink(residual_fn: Callable[[jax.Array], jax.Array],
                 gap_fn: Callable[[jax.Array], jax.Array], params, lower=None, upper=None, *,
                 gtol: float = GTOL, max_steps: int = 1000,
                 kink_tol: float = KINK_TOL, second_order: bool = False) -> KinkCertificate:
    """Finish a fit on the kinks it stopped on and certify the end (module docstring).

    Args:
        residual_fn: flat parameters ``(P,)`` -> residuals ``(n,)`` (traceable).
        gap_fn: flat parameters -> every kink's signed gap ``(G,)`` (traceable; ``inf`` for a
            kink that cannot be active, e.g. a zero-weight domain's floor).
        params: ``(P,)`` where the fit stopped.
        lower, upper: ``(P,)`` the parameters' ranges (default: none).
        gtol: the gradient test's tolerance (tangential stop and certificate).
        max_steps: iterations along the kinks (accepted or not).
        kink_tol: the gap under which a kink is active.
        second_order: steps along the kinks from the Lagrangian's exact Hessian in a trust
            region (module docstring, "The second-order pass") instead of damped Gauss–Newton.

    Returns:
        A :class:`KinkCertificate`. With no active kink the steps are plain damped Gauss–Newton
        steps and the certificate is the sampled measure at the end.
    """
    p = np.asarray(params, np.float64)
    lower = np.full(p.shape, -np.inf) if lower is None else np.asarray(lower, np.float64)
    upper = np.full(p.shape, np.inf) if upper is None else np.asarray(upper, np.float64)

    linearise, value, normals_at, curvature = _programs(residual_fn, gap_fn)

    def objective(q):
        f, z = value(jnp.asarray(q))
        return float(f), np.asarray(z)

    def tangent(free, normals):
        """``(P, T)``: an orthonormal basis of the directions of the ``free`` parameters along
        the kinks whose normals are the rows of ``normals``, embedded in every parameter."""
        basis = np.eye(int(free.sum()))
        if normals.shape[0]:
            u, s, _ = np.linalg.svd(normals[:, free].T, full_matrices=True)
            rank = int(np.sum(s > 1e-12 * s.max())) if s.size else 0
            basis = u[:, rank:]
        q_mat = np.zeros((p.size, basis.shape[1]))
        q_mat[free] = basis
        return q_mat

    def outward(free, step):
        """The free parameters on a bound of their range that ``step`` would take out of it."""
        return free & (((p <= lower) & (step < 0)) | ((p >= upper) & (step > 0)))

    def held_step(free, q_mat, normals, solve):
        """``solve(q)`` (a tuple whose first entry is the step's coordinates on the tangent
        basis ``q``), solved again without the free parameters that its step would push out of
        the box (they are held on their bound) until it pushes none: ``(step_free, q_step,
        solution)``; ``q_step`` has no column where every direction ends up held."""
        step_free, q_step = free, q_mat
        while True:
            solution = solve(q_step)
            push = outward(step_free, q_step @ solution[0])
            if not push.any():
                return step_free, q_step, solution
            step_free = step_free & ~push
            q_step = tangent(step_free, normals)
            if q_step.shape[1] == 0:
                return step_free, q_step, solution

    def retract(trial, active, free):
        """``trial`` taken back onto the ``active`` kinks along their normals, moving the
        ``free`` parameters inside the box; ``(point, f, gaps)``, ``f = inf`` if a normal is not
        a number on the way (the trial is then refused)."""
        f_trial, z_trial = objective(trial)
        for _ in range(_RETRACTION_STEPS if active.size else 0):
            gap = z_trial[active]
            if not np.all(np.isfinite(gap)) or np.max(np.abs(gap)) <= _RETRACTION_TOL:
                break
            # Gauss-Newton along the free parameters inside the box (a clipped one would undo it)
            movable = free & (trial > lower) & (trial < upper)
            n_t = np.asarray(normals_at(jnp.asarray(trial)))[active]
            if not np.all(np.isfinite(n_t[:, movable])):
                return trial, np.inf, z_trial
            n_t = np.where(movable[None, :], n_t, 0.0)
            trial = np.clip(trial - n_t.T @ np.linalg.lstsq(n_t @ n_t.T, gap, rcond=None)[0],
                            lower, upper)
            f_trial, z_trial = objective(trial)
        return trial, f_trial, z_trial

    f_start = objective(p)[0]
    f = f_start
    n_res = int(np.prod(jax.eval_shape(residual_fn, jnp.asarray(p)).shape))
    steps = accepted_steps = escapes = 0
    cos_t, n_active = np.inf, 0
    while True:
        mu, nu, radius = 1e-3, 2.0, None
        # Damped Gauss-Newton (or second-order trust-region) steps along the active kinks,
        # until the tangential gradient test passes or no step lowers the objective.
        while steps < max_steps:
            r, jac, z, dz = (np.asarray(x) for x in linearise(jnp.asarray(p)))
            g = jac.T @ r
            free = ~(((p <= lower) & (g > 0)) | ((p >= upper) & (g < 0)))
            active = np.flatnonzero(np.abs(z) < kink_tol)
            n_active = active.size
            normals = dz[active]                                     # (k, P)
            if not np.all(np.isfinite(normals[:, free])):
                break  # a kink whose normal is not a number here cannot be followed
            # Along the kinks a descent direction mixes the parameters: one on a bound whose
            # own gradient points into the box can still be pushed out of it by the projected
            # direction. It is held too (else its clipped step leaves the kinks' tangent and
            # can climb: measured, a spectral fit on Pile-4 stalled so at a tangential cosine
            # of 2e-4), and the tangent space recomputed without it, until none is pushed out.
            q_mat = tangent(free, normals)
            while q_mat.shape[1] and (push := outward(free, -(q_mat @ (q_mat.T @ g)))).any():
                free = free & ~push
                q_mat = tangent(free, normals)
            column_sq = np.sum(jac**2, axis=0)
            cos_t = _scaled_cosine(q_mat @ (q_mat.T @ g), column_sq, f, free)
            if cos_t <= gtol or q_mat.shape[1] == 0:
                break
            if second_order:
                if radius is None:
                    radius = float(np.sqrt(2.0 * f))
                weights = np.zeros(z.size)
                if active.size:  # the kinks' multipliers: g = Σ_k λ_k ∇z_k on the free ones
                    weights[active] = np.linalg.lstsq(normals[:, free].T, g[free],
                                                      rcond=None)[0]
                hess_f, hess_z = (np.asarray(x) for x in curvature(jnp.asarray(p),
                                                                   jnp.asarray(weights)))
                jtj = jac.T @ jac
                # second derivatives through an underflowed parameter (a vanishing amplitude)
                # can be 0·inf: Gauss–Newton's entries stand in for them
                hess = (np.where(np.isfinite(hess_f), hess_f, jtj)
                        - np.where(np.isfinite(hess_z), hess_z, 0.0))
                moved = False
                while steps < max_steps and radius > _MIN_RADIUS * np.sqrt(2.0 * f):
                    steps += 1
                    step_free, q_step, (y, ys, h_red, g_red) = held_step(
                        free, q_mat, normals, functools.partial(
                            _scaled_trust_region_step, hess=hess, jtj=jtj, g=g, radius=radius))
                    if q_step.shape[1] == 0:
                        break
                    # cut where the step first meets a bound, that parameter put on it
                    delta_p = q_step @ y
                    with np.errstate(divide="ignore", invalid="ignore"):
                        room = np.where(delta_p > 0, (upper - p) / delta_p,
                                        np.where(delta_p < 0, (lower - p) / delta_p, np.inf))
                    alpha = float(min(1.0, np.min(room)))
                    target = p + alpha * delta_p
                    if alpha < 1.0:
                        hit = int(np.argmin(room))
                        target[hit] = upper[hit] if delta_p[hit] > 0 else lower[hit]
                    trial, f_trial, _ = retract(np.clip(target, lower, upper), active,
                                                step_free)
                    predicted = -(alpha * float(g_red @ y)
                                  + 0.5 * alpha**2 * float(y @ h_red @ y))
                    rho = ((f - f_trial) / max(predicted, 1e-300) if np.isfinite(f_trial)
                           else -np.inf)
                    if rho < 0.25:
                        radius = 0.25 * alpha * float(np.linalg.norm(ys))
                    elif rho > 0.75 and alpha == 1.0 and np.linalg.norm(ys) >= 0.99 * radius:
                        radius *= 2.0
                    if np.isfinite(f_trial) and f_trial < f:
                        p, f = trial, f_trial
                        accepted_steps += 1
                        moved = True
                        break
                if not moved:
                    break
                continue
            moved = False
            while steps < max_steps and mu < 1e16:
                steps += 1
                step_free, q_step, (y, gq, d) = held_step(
                    free, q_mat, normals, functools.partial(_damped_step, jac=jac, r=r, mu=mu))
                if q_step.shape[1]:
                    trial, f_trial, _ = retract(np.clip(p + q_step @ y, lower, upper), active,
                                                step_free)
                    if np.isfinite(f_trial) and f_trial < f:
                        predicted = 0.5 * float(y @ (mu * d * y - gq))
                        rho = (f - f_trial) / max(predicted, 1e-300)
                        p, f = trial, f_trial
                        mu *= max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
                        nu = 2.0
                        accepted_steps += 1
                        moved = True
                        break
                mu *= nu
                nu *= 2.0
            if not moved:
                break
        # a fit exact to rounding passes, as it passes the gradient test (mixscale._lm)
        if 2.0 * f <= n_res * EXACT_RMS**2:
            sigma = 0.0
            break
        hull = KinkHull(residual_fn, p, objective(p)[1], np.asarray(normals_at(jnp.asarray(p))),
                        lower, upper, gtol=gtol, kink_tol=kink_tol)
        sigma, direction, slope = hull.measure()
        if sigma <= gtol or steps >= max_steps or escapes >= MAX_ESCAPES:
            break
        # Not stationary: the sampled gradients agree on a descent direction, across a kink
        # or along one that the tangent steps could not follow. Leave by it (gradient
        # sampling's step: Armijo backtracking from a step predicted to halve the objective,
        # down to the sampling radius), then go on along the kinks active where it lands.
        # Where it fails, the gradients along it join the hull and the new direction is tried
        # (null steps, KinkHull), until the measure certifies or NULL_STEPS have failed.
        escaped = False
        for null_steps in range(NULL_STEPS + 1):
            t = 0.5 * f / max(-slope, 1e-300)
            size = float(np.max(np.abs(direction)))
            while t * size > EPSILON:
                trial = np.clip(p + t * direction, lower, upper)
                f_trial = objective(trial)[0]
                if np.isfinite(f_trial) and f_trial <= f + 1e-4 * t * slope:
                    p, f, escaped = trial, f_trial, True
                    break
                t *= 0.5
            if escaped or null_steps == NULL_STEPS:
                break
            sigma, direction, slope = hull.add_segment(direction)
            if sigma <= gtol:
                break
        if not escaped:
            break
        escapes += 1
    return KinkCertificate(params=p, objective=f, start_objective=f_start, steps=accepted_steps,
                           active_kinks=int(n_active), tangential_cosine=float(cos_t),
                           sigma=float(sigma), certified=bool(sigma <= gtol), escapes=escapes)


def certify_in_passes(residual_fn, gap_fn, params, lower=None, upper=None, *,
                      gtol: float = GTOL, max_steps: int = 1000,
                      max_passes: int = MAX_PASSES) -> KinkCertificate:
    """:func:`certify_kink` in passes of up to ``max_steps`` iterations each, Gauss–Newton and
    the second-order pass in turn, each from the previous one's end (module docstring, "The
    passes"), until one certifies, one ends where it started (no step accepted, none off the
    kinks) or ``max_passes`` have run. The certificate is the last pass's end, with the first's
    start, the Gauss–Newton passes' accepted steps in ``steps``, the second-order passes' in
    ``second_order_steps`` (``None`` where the first pass certified) and every pass's steps off
    the kinks in ``escapes``."""
    first = certify_kink(residual_fn, gap_fn, params, lower, upper, gtol=gtol,
                         max_steps=max_steps)
    if first.certified:
        return first
    cert, steps, escapes = first, {False: first.steps, True: 0}, first.escapes
    for n_pass in range(1, max_passes):
        second_order = n_pass % 2 == 1
        cert = certify_kink(residual_fn, gap_fn, cert.params, lower, upper, gtol=gtol,
                            max_steps=max_steps, second_order=second_order)
        steps[second_order] += cert.steps
        escapes += cert.escapes
        if cert.certified or (cert.steps == 0 and cert.escapes == 0):
            break
    return dataclasses.replace(cert, start_objective=first.start_objective, steps=steps[False],
                               escapes=escapes,
                               second_order_steps=steps[True] if max_passes > 1 else None)


def certify_law(law, data, delta, lower, upper, *, gtol: float = GTOL,
                max_steps: int = 1000, max_passes: int = MAX_PASSES) -> KinkCertificate:
    """:func:`certify_kink` for ``law`` on the fitter's arrays ``data``
    (:class:`mixscale._objective.FitData`) with Huber threshold ``delta`` and the ranges
    ``lower``, ``upper`` (pytrees shaped like the law's parameters, :func:`mixscale._bounds.
    bound_trees`), over its kinks in every run (:meth:`mixscale.laws.AbstractLaw.kink_gaps`).
    A law that lists none is finished on its smooth objective, with no kink to follow (module
    docstring, "A law without kinks").

    In passes (:func:`certify_in_passes`)."""
    residual_fn, gap_fn, layout, params = flat_problem(law, data, delta)
    return certify_in_passes(residual_fn, gap_fn, np.asarray(layout.ravel(params)),
                             np.asarray(layout.ravel(lower)), np.asarray(layout.ravel(upper)),
                             gtol=gtol, max_steps=max_steps, max_passes=max_passes)


def flat_problem(law, data, delta):
    """``(residual_fn, gap_fn, layout, params)``: the fit's Huber residuals and the law's kink
    gaps in every run of ``data`` as functions of the flat parameter vector ``q`` (``(P,)`` ->
    ``(R,)`` and ``(n_kinks,)``, an empty vector for a law that lists no kinks), the
    :class:`mixscale._objective.Layout` of the law's parameters and those parameters (the
    law's array fields; ``eqx.combine(layout.unravel(q), law)`` is the law at ``q``)."""
    import equinox as eqx

    from ._objective import Layout, residuals

    # abstractly: whether the law lists kinks, without running (and compiling) its gaps
    kinkless = jax.eval_shape(law.kink_gaps, data.weights[0], data.model_size[0],
                              data.tokens[0]) is None
    params, static = eqx.partition(law, eqx.is_inexact_array)
    layout = Layout.of(params)

    def residual_fn(q):
        return residuals(layout.unravel(q), static, data, delta)

    def gap_fn(q):
        if kinkless:
            return jnp.zeros((0,), q.dtype)
        one = eqx.combine(layout.unravel(q), static)
        return jax.vmap(one.kink_gaps)(data.weights, data.model_size, data.tokens).ravel()

    return residual_fn, gap_fn, layout, params


def fitted_problem(result, table):
    """``(data, delta, lower, upper)``: the arrays, Huber threshold and parameter ranges
    (pytrees shaped like the law's parameters) of the problem a fit (:class:`mixscale.FitResult`)
    solved on the rows of ``table``, for checks of its returned law."""
    import equinox as eqx

    from ._bounds import bound_trees
    from ._fit import data_summary
    from ._objective import DEFAULT_HUBER_DELTA, prepare_data

    sub, data = prepare_data(table, result.targets)
    params = eqx.filter(result.law, eqx.is_inexact_array)
    lower, upper = bound_trees(params, type(result.law).parameter_bounds(data_summary(sub),
                                                                         **result.law_options))
    return data, jnp.asarray(DEFAULT_HUBER_DELTA), lower, upper


def certify_fit(result, table, *, gtol: float = GTOL, max_steps: int = 1000,
                max_passes: int = MAX_PASSES) -> KinkCertificate:
    """:func:`certify_law` for the law of a fit (:class:`mixscale.FitResult`) on the rows it
    was fitted to (``table``), with the fit's objective and ranges (:func:`fitted_problem`)."""
    return certify_law(result.law, *fitted_problem(result, table), gtol=gtol,
                       max_steps=max_steps, max_passes=max_passes)
