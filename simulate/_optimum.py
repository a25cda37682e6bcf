r"""The simulator's ground-truth optimal mixture at a given ``(N, D)``.

Minimises the exact target loss :math:`f(h) = \sum_i t_i L_i(h, N, D)` (default ``t_i = 1/K``,
the mean loss) over the simplex. Every evaluation is the closed form of
:mod:`simulate._closed_form` (cost independent of ``D``, linear in the number of features). The
kept set changes with ``h`` in discrete jumps, so ``f`` is only piecewise smooth: smooth (and
differentiable through the closed form, the kept set held fixed) inside each piece, with jumps
on the boundaries. The search (``method="gradient"``, the default):

1. evaluate every point of the simplex lattice ``{h : r h ∈ ℕ^K, Σ h = 1}`` in one compiled call
   (the lattice visits the pieces at its resolution);
2. from the ``n_starts`` best lattice points, iterate *within pieces* with exact derivatives:
   the gradient and Hessian of ``f`` (the kept set of the current point held fixed), a Newton
   direction in the tangent space of the current face (coordinates at zero whose gradient
   pushes them outward stay at zero) and the projected-gradient direction, each tried at the
   lengths ``s, s/2, …, s/2⁷`` (moves shortened to stop on the face), all evaluated together
   with the *true* ``f`` (so a move across a jump is judged by the exact loss); the best strictly
   improving candidate is taken;
3. polish the best point with the compass search below, started at a small step
   ``min(1/r, 16 tol)``: it certifies the result against every simplex direction, including
   across a jump the derivatives cannot see.

The compass search (``method="compass"``, the earlier derivative-free method, whose step starts
at ``1/r``) moves along the ``K(K−1)`` simplex directions ``e_i − e_j`` (a positive spanning set
of the simplex's tangent space), each at the steps ``δ, δ/2, δ/4, δ/8`` (so a narrow basin beside
a jump is not stepped over), all starts, directions and steps evaluated together per
iteration. A move that would leave the simplex is shortened to stop on the face (so optima with
some ``h_j = 0`` are reached exactly). A start moves to its best strictly improving candidate,
otherwise halves ``δ``; the search stops when every ``δ`` is below ``tol``.

For a smooth ``f`` both converge to a stationary point (Newton quadratically); the lattice start
makes the result global up to the lattice resolution. Every evaluated mixture is checked against
the stable step range (an error names the offending mixture).
Every evaluation runs in batches of a fixed number of mixtures (the last one padded), so one
compiled shape serves the lattice and both searches.
"""

from __future__ import annotations

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from ._checks import batch_argument, check_integer
from ._closed_form import (
    closed_form_one,
    constant_losses,
    grouped,
    schedule_arguments,
    schedule_losses,
)
from ._model import DisjointTailModel
from ._schedule import AbstractSchedule, Constant
from ._validate import check_call, check_steps, require_stable

__all__ = ["Optimum", "optimal_mixture", "simplex_lattice"]

_N_SCALES = 4
_N_LENGTHS = 8
#: Mixtures per call of the compiled objective (see ``evaluate`` in :func:`optimal_mixture`).
_CHUNK = 64
_METHODS = ("gradient", "compass")


class Optimum(eqx.Module):
    """The result of :func:`optimal_mixture`.

    Attributes:
        weights: ``(K,)`` the optimal mixture found.
        loss: the target loss there, ``Σ_i t_i L_i``.
        losses: ``(K,)`` every domain's loss there.
        step: the final compass step (an upper bound on the resolution of ``weights``).
        n_evaluations: number of mixtures evaluated.
    """

    weights: Array
    loss: Array
    losses: Array
    step: float = eqx.field(static=True)
    n_evaluations: int = eqx.field(static=True)


def simplex_lattice(k: int, resolution: int) -> np.ndarray:
    """All mixtures with coordinates in ``{0, 1/r, ..., 1}``: shape ``(C(r+K-1, K-1), K)``.

    Rows in lexicographic order of the bar positions (the first row puts all weight on the last
    domain). ``k >= 1`` domains, resolution ``r >= 1``.

    Example:
        >>> simplex_lattice(2, 2).tolist()
        [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]]
    """
    if int(k) < 1 or int(resolution) < 1:
        raise ValueError(f"simplex_lattice needs k >= 1 domains and resolution >= 1, got k={k}, "
                         f"resolution={resolution}")
    points = []
    for bars in itertools.combinations(range(resolution + k - 1), k - 1):
        edges = (-1, *bars, resolution + k - 1)
        points.append([edges[i + 1] - edges[i] - 1 for i in range(k)])
    return np.asarray(points, dtype=np.float64) / resolution


def _default_resolution(k: int) -> int:
    r = 2
    while len(list(itertools.combinations(range(r + 1 + k - 1), k - 1))) <= 400 and r < 100:
        r += 1
    return r


@eqx.filter_jit
def _objective(model, mixtures, n, schedule, steps, batch_size, target):
    def one(h):
        losses = closed_form_one(model, h, n, schedule, steps, batch_size)[0]
        return losses @ target, losses

    return jax.vmap(one)(mixtures)


@eqx.filter_jit
def _derivatives(model, mixtures, n, schedule, steps, batch_size, target):
    """Gradient ``(M, K)`` and Hessian ``(M, K, K)`` of ``f`` with each point's kept set held
    fixed (the keep rule's ordering is piecewise constant, so it carries no derivative)."""
    def f(h, h_kept):
        a_all, w2, kept, blocks = grouped(model, lax.stop_gradient(h_kept), n)
        if isinstance(schedule, Constant):
            losses = constant_losses(a_all, w2, model.sigma2, h, kept, schedule.lr, steps,
                                     batch_size, blocks)
        else:
            losses = schedule_losses(a_all, w2, model.sigma2, h, kept, steps,
                                     batch_size, blocks)
        return losses[0] @ target

    def one(h):
        # Forward over forward (K ≤ a few coordinates), the gradient as the inner pass's value:
        # one program, about a third quicker to compile than jax.grad next to jax.hessian.
        def gradient(x):
            g = jax.jacfwd(f)(x, h)
            return g, g

        hessian, g = jax.jacfwd(gradient, has_aux=True)(h)
        return g, hessian

    return jax.vmap(one)(mixtures)


def _face_directions(points, grads, hessians):
    """Newton and projected-gradient directions ``(S, K)`` each in the tangent space of the
    current face of the simplex (unit max-norm; zero where there is no descent)."""
    n_starts, k = points.shape
    newton = np.zeros_like(points)
    gradient = np.zeros_like(points)
    for s in range(n_starts):
        g, hess = grads[s], hessians[s]
        free = points[s] > 0
        for _ in range(k):  # release no coordinate the gradient pushes outward
            mean = g[free].mean()
            grow = (~free) & (g < mean)
            if not grow.any():
                break
            free = free | grow
        idx = np.flatnonzero(free)
        if idx.size < 2:
            continue
        d = np.zeros(k)
        d[idx] = -(g[idx] - g[idx].mean())
        if np.abs(d).max() > 0:
            gradient[s] = d / np.abs(d).max()
        basis = np.zeros((k, idx.size - 1))  # sum-zero directions on the free coordinates
        basis[idx[0], :] = -1.0
        basis[idx[1:], np.arange(idx.size - 1)] = 1.0
        reduced = basis.T @ hess @ basis
        try:
            eig = np.linalg.eigvalsh(0.5 * (reduced + reduced.T))
            if eig.min() > 1e-12 * max(abs(eig).max(), 1e-300):
                step = basis @ np.linalg.solve(reduced, -(basis.T @ g))
                if g @ step < 0 and np.abs(step).max() > 0:
                    newton[s] = step
        except np.linalg.LinAlgError:
            pass
    return newton, gradient


def _along(points, directions, lengths):
    """Candidates ``(S, L, K)``: each point moved along its direction by each length, shortened
    to stop on the simplex's face; ``valid`` ``(S, L)`` marks real moves."""
    neg = np.where(directions < 0, -directions, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(neg > 0, points / np.where(neg > 0, neg, 1.0), np.inf).min(axis=1)
    length = np.minimum(lengths, room[:, None])
    cand = points[:, None, :] + length[:, :, None] * directions[:, None, :]
    cand = np.clip(cand, 0.0, None)
    cand /= cand.sum(axis=-1, keepdims=True)
    valid = (length > 0) & np.any(directions != 0, axis=1)[:, None]
    return cand, valid


def _kernel_arguments(n, schedule, checkpoints, batch_size, target, dtype):
    """``(n, schedule, steps, batch_size, target)`` exactly as the search passes them to
    :func:`_objective` and :func:`_derivatives` (array or static as each needs: a schedule
    other than :class:`Constant` travels as its :class:`~simulate._closed_form.PhasePlan`, so
    runs of one structure share a program), so a caller holding these arguments reuses the
    search's compiled programs."""
    return (jnp.asarray(n), *schedule_arguments(schedule, checkpoints, dtype),
            batch_argument(batch_size, dtype), jnp.asarray(target, dtype))


def optimal_mixture(model: DisjointTailModel, n, steps: int, schedule: AbstractSchedule,
                    batch_size: int = 1, *, target=None, resolution: int | None = None,
                    n_starts: int = 8, tol: float = 1e-4, max_iterations: int = 500,
                    method: str = "gradient") -> Optimum:
    r"""The mixture minimising the simulator's exact target loss after ``steps`` SGD steps.

    Args:
        model: the :class:`DisjointTailModel`.
        n: ``N`` kept features.
        steps: ``D`` in SGD steps (``>= 0``).
        schedule: step-size schedule.
        batch_size: ``B``.
        target: ``(K,)`` non-negative target weights ``t`` (default uniform: the mean loss).
        resolution: lattice resolution ``r`` of the first stage (default: the finest with at most
            ~400 points).
        n_starts: number of lattice points the search starts from.
        tol: the search stops when every compass step is below ``tol``.
        max_iterations: cap on iterations (of each stage).
        method: ``"gradient"`` (default: Newton and gradient steps within pieces, then a short
            compass polish) or ``"compass"`` (derivative-free from the lattice spacing); see
            the module docstring.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    # named as this function names them (the shared checks said "checkpoints"), and refused
    # rather than truncated (resolution 2.5 -> 2) or clamped (n_starts -3 -> 1)
    check_integer(steps, "steps", 0)
    for value, what in ((n_starts, "n_starts"), (max_iterations, "max_iterations")) + (
            () if resolution is None else ((resolution, "resolution"),)):
        check_integer(value, what, 1)
    call = check_call("optimal_mixture", model, sizes=n, schedule=schedule, checkpoints=[steps],
                      batch_size=batch_size)
    check_steps(schedule, int(call.checkpoints[0]))  # before the schedule is laid out
    k = model.n_domains
    n_arr, checkpoints, batch_size = call.sizes, call.checkpoints, call.batch_size
    dtype = model.alpha.dtype
    t = np.full(k, 1.0 / k) if target is None else np.asarray(target, dtype=np.float64)
    if t.shape != (k,) or not np.all(np.isfinite(t)) or np.any(t < 0) or t.sum() <= 0:
        raise ValueError(f"target must be K={k} non-negative weights, not all zero; got "
                         f"{np.asarray(target).tolist()}")
    if not (0 < tol < 1):
        raise ValueError(f"tol must lie in (0, 1), got {tol!r}")
    r = _default_resolution(k) if resolution is None else int(resolution)
    if r < 1:
        raise ValueError(f"resolution must be a positive int, got {resolution!r}")
    n_j, schedule_arg, steps_arg, batch_j, t_j = _kernel_arguments(n_arr, schedule, checkpoints,
                                                                   batch_size, t, dtype)
    n_evals = 0

    def evaluate(mixtures: np.ndarray):
        # In chunks of _CHUNK rows (the last one padded with copies of the first mixture): one
        # compiled shape serves the lattice and every stage's candidates.
        nonlocal n_evals
        m = mixtures.shape[0]
        padded = np.concatenate([mixtures, np.repeat(mixtures[:1], -m % _CHUNK, axis=0)])
        values, losses = [], []
        for chunk in np.split(padded, padded.shape[0] // _CHUNK):
            require_stable(model, schedule, chunk, n_arr[None], checkpoints[0], batch_size)
            v, ls = _objective(model, jnp.asarray(chunk, dtype), n_j, schedule_arg, steps_arg,
                               batch_j, t_j)
            values.append(np.asarray(v))
            losses.append(np.asarray(ls))
        n_evals += m
        return np.concatenate(values)[:m], np.concatenate(losses)[:m]

    lattice = simplex_lattice(k, r)
    values, lattice_losses = evaluate(lattice)
    if k == 1:  # one domain: the simplex is the point h = (1,), which the lattice holds
        return Optimum(weights=jnp.asarray(lattice[0], dtype),
                       loss=jnp.asarray(values[0], dtype),
                       losses=jnp.asarray(lattice_losses[0], dtype), step=0.0,
                       n_evaluations=n_evals)
    n_starts = max(1, min(int(n_starts), lattice.shape[0]))
    best = np.argsort(values, kind="stable")[:n_starts]
    points = lattice[best].copy()
    point_values = values[best].copy()
    point_losses = lattice_losses[best].copy()
    if method == "gradient":
        rows = np.arange(n_starts)
        reach = np.full(n_starts, 1.0 / r)  # the longest move tried next
        for _ in range(max_iterations):
            grads, hessians = (np.asarray(x) for x in _derivatives(
                model, jnp.asarray(points, dtype), n_j, schedule_arg, steps_arg, batch_j, t_j))
            newton, gradient = _face_directions(points, grads, hessians)
            ladder = 0.5 ** np.arange(_N_LENGTHS)
            c1, ok1 = _along(points, newton, np.ones((n_starts, 1)) * ladder)
            c2, ok2 = _along(points, gradient, reach[:, None] * ladder)
            cand = np.concatenate([c1, c2], axis=1)
            ok = np.concatenate([ok1, ok2], axis=1)
            v, ls = evaluate(cand.reshape(-1, k))
            v = np.where(ok, v.reshape(n_starts, -1), np.inf)
            ls = ls.reshape(n_starts, -1, k)
            j = np.argmin(v, axis=1)
            improved = v[rows, j] < point_values
            moved = np.abs(cand[rows, j] - points).max(axis=1)
            points = np.where(improved[:, None], cand[rows, j], points)
            point_values = np.where(improved, v[rows, j], point_values)
            point_losses = np.where(improved[:, None], ls[rows, j], point_losses)
            reach = np.where(improved, np.clip(4 * moved, tol, 1.0), reach / 4)
            if np.all(~improved | (moved < tol / 16)) and np.all(reach < tol):
                break
            if not improved.any():
                break
        # The polish certifies the best point only: the others already lost on the true loss.
        keep = np.argsort(point_values, kind="stable")[:1]
        points, point_values, point_losses = points[keep], point_values[keep], point_losses[keep]
        n_starts = 1
    step = np.full(n_starts, 1.0 / r if method == "compass" else min(1.0 / r, 16 * tol))
    directions = np.asarray([np.eye(k)[i] - np.eye(k)[j] for i in range(k) for j in range(k)
                             if i != j])
    source = np.asarray([j for i in range(k) for j in range(k) if i != j])
    scales = 0.5 ** np.arange(_N_SCALES)
    for _ in range(max_iterations):
        if np.all(step < tol):
            break
        # Every direction at steps δ, δ/2, δ/4, δ/8: a narrow basin next to a jump of the kept
        # set is not stepped over. A move that would drive h_j below 0 stops on the face.
        want = step[:, None, None] * scales[None, :, None]  # (starts, scales, 1)
        length = np.minimum(want, points[:, source][:, None, :]).reshape(n_starts, -1)
        dirs = np.tile(directions, (_N_SCALES, 1))
        cand = points[:, None, :] + length[:, :, None] * dirs[None, :, :]
        cand = np.clip(cand, 0.0, None)  # only removes rounding-level negatives
        cand /= cand.sum(axis=-1, keepdims=True)
        v, ls = evaluate(cand.reshape(-1, k))
        v = np.where(length > 0, v.reshape(n_starts, -1), np.inf)
        ls = ls.reshape(n_starts, -1, k)
        j = np.argmin(v, axis=1)
        rows = np.arange(n_starts)
        improved = v[rows, j] < point_values
        points = np.where(improved[:, None], cand[rows, j], points)
        point_values = np.where(improved, v[rows, j], point_values)
        point_losses = np.where(improved[:, None], ls[rows, j], point_losses)
        step = np.where(improved | (step < tol), step, step / 2)
    i = int(np.argmin(point_values))
    return Optimum(weights=jnp.asarray(points[i], dtype),
                   loss=jnp.asarray(point_values[i], dtype),
                   losses=jnp.asarray(point_losses[i], dtype), step=float(step[i]),
                   n_evaluations=n_evals)
