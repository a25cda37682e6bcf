r"""First-order optimality where the objective has no gradient: sampled (Clarke) stationarity.

Why. The fitter's gradient test (:mod:`mixscale._lm`) is the first-order condition of a smooth
objective. The capacity law's is not smooth everywhere: its allocation
:math:`x_i = \max(H, (h_i b_i c_i/\lambda)^{1/(b_i+1)})` has a kink where a domain's unconstrained
allocation meets the head floor, and fits are drawn to such kinks (a V-shaped valley has its
floor there). A point on a kink can be a minimum without a gradient (its one-sided gradients
point against each other), where the cosine test fails however long the fit runs; or it can be a
point where LM is merely stuck, its damped Gauss–Newton steps crossing the kink. This measure
tells the two apart.

Measured (``benchmarks/bench_polish.py``; the capacity law on SlimPajama-7's in-scale split of
``compare_laws``, 64 restarts): the returned law stops after 159 steps with a domain's allocation
within 1.3e-11 (log) of the floor in one row and cosine 6.5e-4. Its one-sided derivatives are
V-shaped in ``log H`` and most ``log b_i, log c_i`` (e.g. ``+1.4e-4`` to the right and
``-5.8e-4`` to the left in ``log H``), but ``E, A, a``, which the allocation does not involve,
keep smooth derivatives up to 2e-4; the measure is 6.5e-4 at every radius from 1e-9 to 1e-4:
not stationary, LM is stuck. An LM restricted to the kink's tangent space (normals from the jumps
of the Jacobian at nearby points; a prototype, not in the library) leaves the point and lowers
the objective, but by 0.13 % in 400 steps, crawling along the curved kink. The smoothing
continuation of :func:`mixscale.fit` (``smooth_kinks``: the floor's ``max`` replaced by
``log H + τ softplus((·) − log H)/τ)``, ``τ = 10⁻², …, 10⁻⁸``, then the exact law, each stage
started from the last) does better: −1.0 % (9.086e-5 → 8.996e-5; held-out MRE 1.127 → 1.124 %)
in 46 s, but unconverged by the gradient test still; on RegMix-1B −0.11 %, ending on a kink
again (``σ`` 8.4e-4 → 3.7e-4; a prototype of the same continuation with longer stages ended
within 2.8e-11 of the floor): the minimisers of the smoothed objectives can tend to a kink. A
fit that ends there needs a certificate other than the gradient test (an open problem of the
fitting engine).

The measure (gradient sampling; Burke, Lewis & Overton, "A robust gradient sampling algorithm
for nonsmooth, nonconvex optimization", SIAM J. Optim. 15, 2005). At parameters :math:`p`, draw
``m`` points :math:`p_k = p + \varepsilon u_k` (:math:`u_k` uniform in :math:`[-1, 1]^P`, ``p_0 =
p``), take each point's gradient of :math:`f = \tfrac12\|r\|^2`, :math:`g_k = J_k^\top r_k`,
scaled like the gradient test's cosine, :math:`\hat g_k = g_k / (c\,\|r(p)\|)` with
:math:`c_i = \max_k \|J_k[:, i]\|` floored at ``1e-6`` of the largest ``c_j`` (the gradient
test's Marquardt floor: a parameter whose term has vanished, an amplitude run to zero, would
otherwise set the measure by a ratio of two rounding-level numbers), and find the point of their
convex hull nearest the origin,

.. math::

    \sigma_\varepsilon(p) = \Big\|\sum_k \lambda_k \hat g_k\Big\|_\infty, \qquad
    \lambda = \arg\min_{\lambda \in \Delta} \Big\|\sum_k \lambda_k \hat g_k\Big\|_2 .

At a point where the objective is smooth, :math:`\sigma_\varepsilon` is the gradient test's
cosine up to the curvature over the ball, :math:`O(\|J\| \varepsilon / \|r\|)`; at a kink whose
one-sided gradients have 0 in their hull (a Clarke-stationary point), it is near 0 once the
samples fall on both sides. ``ε = 1e-9`` in parameter units (mostly logarithms): LM stops at a
kink when its accepted steps no longer lower the objective measurably, which leaves it within
about that of the kink, and the curvature term then stays below 1e-6 on these fits. Parameters
on a bound of their range enter with the bound's multiplier: a gradient component that would
take one out of the box is balanced by it (the normal cone of the box), so such a component
counts only where it points into the box, for the hull's point, not for each sample (an earlier
rule left out the parameters whose gradient at ``p`` pointed out, which misjudges a bound on a
kink, where the samples' gradients differ in sign).

The minimum-norm point is found by projected gradient descent on the simplex (accelerated,
step ``1/‖Ĝ‖²``), a few thousand iterations on an ``m × m`` Gram matrix.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ._mixture import project_to_simplex

__all__ = ["clarke_descent", "hull_descent", "min_norm_in_hull", "sample_points",
           "sampled_gradients", "sampled_stationarity"]

#: Sampling radius in parameter units (see the module docstring).
EPSILON = 1e-9
#: Sampled points besides ``p`` itself.
N_SAMPLES = 32


def min_norm_in_hull(vectors: np.ndarray, iterations: int = 4000,
                     bound_signs: np.ndarray | None = None) -> np.ndarray:
    r"""The point of the convex hull of the rows of ``vectors`` ``(m, P)`` nearest the origin
    (Euclidean), by accelerated projected gradient on the weights ``λ ∈ Δ_m``: ``(P,)``.

    ``bound_signs`` ``(P,)`` (default: none) marks the components of parameters on a bound of
    their range: ``+1`` on an upper bound, ``-1`` on a lower one, ``0`` free. Such a component
    may be offset by the bound's normal cone (a multiplier: on an upper bound any non-positive
    gradient component is balanced by it, on a lower bound any non-negative one), so its
    distance counts only on the other side: the point minimises
    :math:`\|\Pi(\sum_k \lambda_k g_k)\|_2` with :math:`\Pi` the componentwise
    :math:`\max(c, 0)` (upper), :math:`\min(c, 0)` (lower) or :math:`c` (free), which is
    still a smooth convex problem in ``λ``; the returned point is :math:`\Pi` of the hull's
    point."""
    g = np.asarray(vectors, float)
    step = 1.0 / max(float(np.linalg.eigvalsh(g @ g.T)[-1]), 1e-300)
    m = g.shape[0]
    gj = jnp.asarray(g)
    # every array enters as an argument: built inside the program, XLA's unoptimised CPU
    # backend (the test suite's) ran the loop 4 times slower
    start = (jnp.zeros(m, gj.dtype), jnp.ones(m, gj.dtype), jnp.full(m, 1.0 / m, gj.dtype),
             jnp.asarray(1.0, gj.dtype))
    signs = (jnp.asarray(bound_signs, gj.dtype)
             if bound_signs is not None and np.any(bound_signs) else None)
    return np.asarray(_hull_point(gj, jnp.asarray(step, gj.dtype), signs, *start, iterations))


@functools.partial(jax.jit, static_argnums=7)
def _hull_point(gj, step, signs, lower, upper, lam0, t0, iterations: int):
    """:func:`min_norm_in_hull`'s iteration, compiled once per shape of ``gj``, iteration count
    and whether any parameter is on a bound (``signs`` ``None``: none is, and the cone's
    projection is the identity); a loop closing over its inputs would compile again on every
    call."""

    def project_cone(c):
        if signs is None:
            return c
        return jnp.where(signs > 0, jnp.maximum(c, 0.0),
                         jnp.where(signs < 0, jnp.minimum(c, 0.0), c))

    def body(_, state):
        lam, y, t = state
        nxt = project_to_simplex(y - step * (gj @ project_cone(y @ gj)), lower, upper)
        t_next = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * t * t))
        return nxt, nxt + ((t - 1.0) / t_next) * (nxt - lam), t_next

    lam, _, _ = jax.lax.fori_loop(0, iterations, body, (lam0, lam0, t0))
    return project_cone(lam @ gj)


def sampled_stationarity(residual_fn: Callable[[jax.Array], jax.Array], params: np.ndarray,
                         lower: np.ndarray | None = None, upper: np.ndarray | None = None, *,
                         epsilon: float = EPSILON, n_samples: int = N_SAMPLES,
                         seed: int = 0) -> float:
    """:math:`\\sigma_\\varepsilon(p)` of the module docstring for residuals
    ``residual_fn(p)`` ``(n,)`` of flat parameters ``params`` ``(P,)``, inside the box
    ``[lower, upper]`` (default: none). A value at most the gradient test's ``gtol`` certifies a
    first-order (Clarke) stationary point up to ``epsilon``."""
    return clarke_descent(residual_fn, params, lower, upper, epsilon=epsilon,
                          n_samples=n_samples, seed=seed)[0]


@functools.lru_cache(maxsize=8)
def _sampled_gradients(residual_fn: Callable[[jax.Array], jax.Array]) -> Callable:
    """One compiled program ``(m, P) -> (∇f (m, P), column norms of J (m, P), ‖r‖ (m,))`` per
    residual function, kept for the certificate's later calls on the same fit (op by op, its
    many small operations would each be compiled apart; a fresh closure per call would be
    compiled again at every step off a kink). It is traced once per number of points ``m``:
    the certificate uses three, ``1 + N_SAMPLES``, where kinks are active that plus the fixed
    ``2**SIDE_KINKS`` rows of :func:`mixscale._kinks.kink_side_points`, and batches of
    ``2**SIDE_KINKS`` rows for the points :class:`mixscale._kinks.KinkHull` adds."""

    def grad_and_norms(q):
        r, jac = residual_fn(q), jax.jacfwd(residual_fn)(q)
        return jac.T @ r, jnp.sqrt(jnp.sum(jac**2, axis=0)), jnp.sqrt(jnp.dot(r, r))

    return jax.jit(jax.vmap(grad_and_norms))


def clarke_descent(residual_fn: Callable[[jax.Array], jax.Array], params: np.ndarray,
                   lower: np.ndarray | None = None, upper: np.ndarray | None = None, *,
                   epsilon: float = EPSILON, n_samples: int = N_SAMPLES,
                   seed: int = 0,
                   extra_points: np.ndarray | None = None) -> tuple[float, np.ndarray, float]:
    """The sampled measure with the descent direction it implies (gradient sampling's step,
    Burke, Lewis & Overton 2005): ``(σ, d, slope)``.

    ``v`` is the scaled hull's nearest point (module docstring); ``d = −v_i / c_i`` ``(P,)``
    in parameter units (steepest descent in the gradient test's scaling, ``0`` for a parameter
    without a Jacobian column), which points into the box at every bound, and ``slope =
    −‖r‖ ‖v‖²`` the objective's derivative along ``d`` predicted by ``v``: every sampled
    gradient has at least that descent along it (the hull's nearest point has
    :math:`\\hat g \\cdot v \\ge \\|v\\|^2` for every ``ĝ`` in the hull), so near a
    point that is not stationary a short enough step along ``d`` lowers the objective.

    ``extra_points`` ``(m', P)`` (default: none) are sampled besides the random ones: points
    the caller knows to lie on the other pieces of the objective near ``p``, which uniform
    draws can miss (the sides of kinks whose normals are nearly parallel meet in thin wedges:
    :func:`mixscale._kinks.kink_side_points`). They should lie within about ``epsilon`` of
    ``p``; they are clipped to the box like the random ones."""
    p = np.asarray(params, float)
    lower = np.full(p.shape, -np.inf) if lower is None else np.asarray(lower, float)
    upper = np.full(p.shape, np.inf) if upper is None else np.asarray(upper, float)
    points = sample_points(p, epsilon=epsilon, n_samples=n_samples, seed=seed,
                           extra_points=extra_points)
    return hull_descent(p, lower, upper, *sampled_gradients(residual_fn, points, lower, upper))


def sample_points(p: np.ndarray, *, epsilon: float = EPSILON, n_samples: int = N_SAMPLES,
                  seed: int = 0, extra_points: np.ndarray | None = None) -> np.ndarray:
    """The measure's points ``(1 + n_samples + m', P)``: ``p``, ``n_samples`` uniform draws in
    the ``epsilon``-box around it (seeded by ``seed``) and ``extra_points`` ``(m', P)``."""
    rng = np.random.default_rng(seed)
    return np.concatenate([p[None], p + epsilon * rng.uniform(-1, 1, (n_samples, p.size))]
                          + ([] if extra_points is None
                             else [np.asarray(extra_points, float).reshape(-1, p.size)]))


def sampled_gradients(residual_fn: Callable[[jax.Array], jax.Array], points: np.ndarray,
                      lower: np.ndarray, upper: np.ndarray):
    """At ``points`` ``(m, P)``, clipped to the box: the gradients of ``½‖r‖²`` ``(m, P)``, the
    Jacobian's column norms ``(m, P)`` and ``‖r‖`` ``(m,)`` (the first point's is the one
    :func:`hull_descent` scales by)."""
    points = np.clip(np.asarray(points, float), lower, upper)
    return tuple(np.asarray(x) for x in _sampled_gradients(residual_fn)(jnp.asarray(points)))


def hull_descent(p: np.ndarray, lower: np.ndarray, upper: np.ndarray, grads: np.ndarray,
                 norms: np.ndarray, rnorm: np.ndarray) -> tuple[float, np.ndarray, float]:
    """:func:`clarke_descent`'s ``(σ, d, slope)`` from the sampled gradients ``grads`` ``(m,
    P)``, column norms ``norms`` ``(m, P)`` and residual norms ``rnorm`` ``(m,)`` of
    :func:`sampled_gradients` (``p`` the first point)."""
    # a parameter on a bound: its component may be balanced by the bound's multiplier
    signs = np.where(p >= upper, 1.0, np.where(p <= lower, -1.0, 0.0))
    scale = np.max(norms, axis=0)
    scale = np.maximum(scale, 1e-6 * scale.max())
    keep = scale > 0
    direction = np.zeros(p.shape)
    if not keep.any():
        return 0.0, direction, 0.0
    r_norm = max(float(rnorm[0]), 1e-300)
    scaled = grads[:, keep] / (scale[keep] * r_norm)
    v = min_norm_in_hull(scaled, bound_signs=signs[keep])
    direction[keep] = -v / scale[keep]
    return float(np.max(np.abs(v))), direction, -r_norm * float(v @ v)
