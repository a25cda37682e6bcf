r"""The objective every optimiser of :func:`mixscale.fit` minimises, and the data it reads.

With relative residuals :math:`r_{rm} = (\hat L_{rm} - L_{rm}) / L_{rm}` over the observed entries
:math:`\Omega` of the loss table (missing losses are masked),

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

As a least-squares problem. With the transformed residual

.. math::

    \psi_\delta(r) = \begin{cases} r & |r|\le\delta\\
    \operatorname{sign}(r)\sqrt{\delta(2|r| - \delta)} & \text{else,}\end{cases}
    \qquad \tfrac12\psi_\delta(r)^2 = \mathrm{huber}_\delta(r),

``J = ½‖ψ‖² / |Ω|`` (``ψ`` is C¹ in ``r``), which is what Levenberg–Marquardt works on
(:mod:`mixscale._lm`); L-BFGS (:mod:`mixscale._lbfgs`) minimises ``J`` directly.

Row weights (the bootstrap, :mod:`mixscale._bootstrap`). A run counted ``w_r`` times (an integer
multiplicity of a resampled mixture; ``0`` leaves it out) weighs its entries by ``w_r``:

.. math::

    J_w(\theta) = \frac{\sum_{(r,m)\in\Omega} w_r\,\mathrm{huber}_\delta(r_{rm})}
                      {\sum_{(r,m)\in\Omega} w_r},

i.e. the residuals ``ψ`` are multiplied by ``√w_r``. Without weights (``row_weights=None``) the
computation is the unweighted one, operation for operation. :class:`Replicate` holds what differs
between bootstrap replicates (the weights and, for the calibration of many tables with one
design, the losses), so one compiled solver runs every replicate side by side.

Parameters. The fitter optimises every inexact array leaf of a law (``eqx.partition`` with
``eqx.is_inexact_array``); :class:`Layout` maps that pytree to one flat vector for LM.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from .data import LossTable, TableError
from .laws._base import ROW_JACOBIAN_MODES

__all__ = ["DEFAULT_HUBER_DELTA", "FitData", "Layout", "Replicate", "Solution", "huber_residual",
           "objective", "observed_weight", "prepare_data", "residuals", "with_replicate"]

#: Huber threshold on relative residuals (see the module docstring).
DEFAULT_HUBER_DELTA = 0.02


class FitData(eqx.Module):
    """The training rows as arrays: ``n`` runs, ``M`` targets, ``K`` training domains.

    Attributes:
        weights: ``(n, K)`` mixture weights ``h``.
        model_size: ``(n,)`` model size ``N`` (law units).
        tokens: ``(n,)`` tokens ``D`` (law units).
        losses: ``(n, M)`` measured losses, ``1.0`` where not observed (so that the masked
            relative residual stays finite).
        mask: ``(n, M)`` bool, which losses are observed.
        row_weights: ``(n,)`` non-negative multiplicity of each run in the objective (a
            bootstrap replicate), or ``None``: every run once.
    """

    weights: Array
    model_size: Array
    tokens: Array
    losses: Array
    mask: Array
    row_weights: Array | None = None


class Replicate(eqx.Module):
    """What one bootstrap replicate changes in :class:`FitData` (batched ``(R, ...)`` over
    replicates when handed to the solver).

    Attributes:
        row_weights: ``(n,)`` multiplicity of each run (see the module docstring).
        losses: ``(n, M)`` the replicate's own measured losses (``1.0`` where not observed; the
            mask is shared), or ``None`` to keep the data's.
    """

    row_weights: Array
    losses: Array | None = None


def with_replicate(data: FitData, replicate: Replicate | None) -> FitData:
    """``data`` with a replicate's row weights (and losses, if it has its own); ``data`` itself
    for ``None``."""
    if replicate is None:
        return data
    losses = data.losses if replicate.losses is None else replicate.losses
    return FitData(weights=data.weights, model_size=data.model_size, tokens=data.tokens,
                   losses=losses, mask=data.mask, row_weights=replicate.row_weights)


def observed_weight(data: FitData) -> Array:
    """``Σ_{(r,m)∈Ω} w_r``: the objective's denominator (``|Ω|`` without row weights)."""
    if data.row_weights is None:
        return jnp.sum(data.mask)
    return jnp.sum(data.mask * data.row_weights[:, None])


def prepare_data(table: LossTable, targets: Sequence[str]) -> tuple[LossTable, FitData]:
    """The rows of ``table`` restricted to the loss columns ``targets``, as a table and as arrays.

    Raises ``TableError`` when none of those losses is observed.
    """
    sub = table.select_losses(list(targets))
    y = sub.losses
    mask = np.isfinite(y)
    if not mask.any():
        raise TableError(f"{table.name}: no observed loss among the targets {list(targets)}")
    # device_put, not jnp.asarray: JAX 0.10 stages jnp.asarray(numpy array) as a compiled
    # operation, one program per shape
    data = FitData(weights=jax.device_put(sub.weights), model_size=jax.device_put(sub.model_size),
                   tokens=jax.device_put(sub.tokens), losses=jax.device_put(np.where(mask, y, 1.0)),
                   mask=jax.device_put(mask))
    return sub, data


def huber_residual(r: Array, delta: Array) -> Array:
    """``ψ_δ(r)``, with ``ψ_δ(r)²/2 = huber_δ(r)`` (elementwise; C¹ in ``r``).

    Example:
        >>> import jax.numpy as jnp
        >>> psi = huber_residual(jnp.array([0.01, -0.05]), 0.02)  # quadratic zone, then linear
        >>> [round(float(v), 12) for v in psi]   # -sqrt(0.02 * (2 * 0.05 - 0.02)) = -0.04
        [0.01, -0.04]
    """
    a = jnp.abs(r)
    big = a > delta
    # The inner `where` keeps the square root's argument positive on the unused branch.
    return jnp.where(big, jnp.sign(r) * jnp.sqrt(delta * (2.0 * jnp.where(big, a, delta) - delta)),
                     r)


def predict_rows(params, static, h: Array, N: Array, D: Array) -> Array:
    """``law.predict`` for every run, ``(n, M)``, for the law ``eqx.combine(params, static)``.

    Its derivative in ``params`` is taken one run at a time in the law's
    :attr:`~mixscale.laws.AbstractLaw.row_jacobian` mode. ``"forward"``: plain ``jax.vmap``, so
    an outer forward-mode Jacobian pushes one tangent per parameter through every run.
    ``"reverse"``: a ``jax.custom_jvp`` whose rule forms each run's ``(M, P)`` Jacobian by
    reverse mode (``M`` cotangents per run, ``vmap`` over runs) once, and applies it to every
    incoming tangent, ``dpred = J dp``; the value and the pullback come from one forward pass
    (``jax.vjp``), so a matrix the law factors is factored once per run. When ``h, N, D`` carry
    tangents too (not the fitter's case) the rule falls back to plain forward mode. Values and
    derivatives are the same in both modes (``tests/test_spectral.py``); only the cost differs.
    The rule is linear in the tangents, so reverse mode transposes it.

    Cost, spectral law on SlimPajama-7 122M (654 runs, 33 parameters, quiet 2-core machine):
    the residuals' Jacobian takes 99 ms by forward mode through ``jax.vmap`` and 44 ms by
    reverse rows (median of five).

    ``"reverse-own"``: plain ``jax.vmap`` here too; the Levenberg–Marquardt solver then takes
    each run's own blocks of the Jacobian by one reverse pass of the run's summed residuals
    (:func:`mixscale._blocks.compressed_jacobian_by_rows`).
    """
    mode = type(eqx.combine(params, static)).row_jacobian
    if mode not in ROW_JACOBIAN_MODES:
        raise ValueError(f"row_jacobian must be one of {ROW_JACOBIAN_MODES}, not {mode!r}")
    if mode != "reverse":  # reverse-own: the LM solver's business (mixscale._lm)
        return jax.vmap(eqx.combine(params, static).predict)(h, N, D)

    def one(p, hh, nn, dd):
        return eqx.combine(p, static).predict(hh, nn, dd)

    every_run = jax.vmap(one, in_axes=(None, 0, 0, 0))

    @jax.custom_jvp
    def rows(p, hh, nn, dd):
        return every_run(p, hh, nn, dd)

    def row_and_jacobian(p, hh, nn, dd):
        # value and pullback from one forward pass: a second, independent pass would factor any
        # matrix the law solves a second time, and two independent batched LAPACK calls in one
        # program can deadlock XLA's CPU pool (see mixscale._lm)
        out, pullback = jax.vjp(lambda q: one(q, hh, nn, dd), p)
        return out, jax.vmap(pullback)(jnp.eye(out.shape[0], dtype=out.dtype))[0]

    def rows_jvp(primals, tangents):
        p, hh, nn, dd = primals
        zero = jax.custom_derivatives.SymbolicZero
        dp, *d_data = (jax.tree_util.tree_map(
            lambda t: jnp.zeros(t.aval.shape, t.aval.dtype) if isinstance(t, zero) else t, t,
            is_leaf=lambda x: isinstance(x, zero)) for t in tangents)
        if not all(isinstance(t, zero) for t in tangents[1:]):
            # a derivative in the data too (not the fitter's case): plain forward mode
            return jax.jvp(every_run, primals, (dp, *d_data))
        out, jac = jax.vmap(row_and_jacobian, in_axes=(None, 0, 0, 0))(p, hh, nn, dd)
        d_out = jnp.zeros_like(out)
        for j, t in zip(jax.tree_util.tree_leaves(jac), jax.tree_util.tree_leaves(dp),
                        strict=True):
            d_out = d_out + jnp.tensordot(j, t, axes=jnp.ndim(t))
        return out, d_out

    rows.defjvp(rows_jvp, symbolic_zeros=True)
    return rows(params, h, N, D)


def residuals(params, static, data: FitData, delta: Array) -> Array:
    """``ψ_δ`` of the relative residual of every entry, flattened to ``(n·M,)`` (0 if masked).

    ``params`` and ``static`` are the two halves of a law (``eqx.partition``).
    """
    pred = predict_rows(params, static, data.weights, data.model_size, data.tokens)
    r = jnp.where(data.mask, (pred - data.losses) / data.losses, 0.0)
    psi = jnp.where(data.mask, huber_residual(r, delta), 0.0)
    if data.row_weights is not None:
        psi = psi * jnp.sqrt(data.row_weights)[:, None]
    return psi.ravel()


def objective(params, static, data: FitData, delta: Array) -> Array:
    """``J``: the mean Huber loss of the relative residuals over the observed entries (weighted
    by ``data.row_weights`` if given)."""
    r = residuals(params, static, data, delta)
    return 0.5 * jnp.sum(r**2) / observed_weight(data)


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a law's parameter pytree maps to one flat vector (hashable: one compilation).

    Attributes:
        treedef: the pytree structure of the parameters.
        shapes: the shape of every leaf, in leaf order.
    """

    treedef: Any
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, tree) -> Layout:
        """The layout of ``tree`` (one restart's parameters, not a batch)."""
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        return cls(treedef, tuple(tuple(np.shape(x)) for x in leaves))

    @property
    def size(self) -> int:
        """``P``, the number of scalars."""
        return int(sum(np.prod(s) for s in self.shapes))

    def ravel(self, tree) -> Array:
        """The leaves of ``tree`` concatenated into one ``(P,)`` vector.

        Concrete leaves (outside ``jit``/``vmap``) are joined on the host and moved back with
        ``jax.device_put``: the same values, without compiling a program for each leaf shape
        (each eager ``jnp`` operation on a new shape compiles one, and so does ``jnp.asarray`` of
        a numpy array, which JAX stages as an operation since 0.10)."""
        leaves = jax.tree_util.tree_leaves(tree)
        if _traced(leaves):
            return jnp.concatenate([jnp.ravel(x) for x in leaves])
        return jax.device_put(np.concatenate([np.ravel(np.asarray(x)) for x in leaves]))

    def ravel_batch(self, tree) -> Array:
        """``(B, P)``: :meth:`ravel` of each slice of a batch along the leaves' leading axis
        (``jax.vmap(layout.ravel)``; joined on the host when the leaves are concrete)."""
        leaves = jax.tree_util.tree_leaves(tree)
        if _traced(leaves):
            return jax.vmap(self.ravel)(tree)
        batch = np.shape(leaves[0])[0]
        return jax.device_put(np.concatenate([np.reshape(np.asarray(x), (batch, -1))
                                              for x in leaves], axis=1))

    def unravel(self, flat: Array):
        """Inverse of :meth:`ravel` (split on the host when ``flat`` is concrete)."""
        sizes = [int(np.prod(s)) for s in self.shapes]
        if _traced([flat]):
            parts = jnp.split(flat, np.cumsum(sizes)[:-1])
            leaves = [x.reshape(s) for x, s in zip(parts, self.shapes, strict=True)]
        else:
            parts = np.split(np.asarray(flat), np.cumsum(sizes)[:-1])
            leaves = [jax.device_put(x.reshape(s)) for x, s in zip(parts, self.shapes, strict=True)]
        return jax.tree_util.tree_unflatten(self.treedef, leaves)

    def unravel_batch(self, flat: Array):
        """Inverse of :meth:`ravel_batch`: ``(B, P)`` to a pytree of leaves ``(B, *shape)``."""
        if _traced([flat]):
            return jax.vmap(self.unravel)(flat)
        flat = np.asarray(flat)
        sizes = [int(np.prod(s)) for s in self.shapes]
        parts = np.split(flat, np.cumsum(sizes)[:-1], axis=1)
        return jax.tree_util.tree_unflatten(self.treedef, [
            jax.device_put(x.reshape((flat.shape[0], *s)))
            for x, s in zip(parts, self.shapes, strict=True)])


def first_restart(tree):
    """The first slice along every leaf's leading axis (one restart of a batch), taken on the
    host when the leaves are concrete: eager indexing would compile a program per leaf shape."""
    if _traced(jax.tree_util.tree_leaves(tree)):
        return jax.tree_util.tree_map(lambda x: x[0], tree)
    return jax.tree_util.tree_map(lambda x: jax.device_put(np.asarray(x)[0]), tree)


def _traced(arrays) -> bool:
    """Whether any of ``arrays`` is a JAX tracer (inside ``jit``, ``vmap`` or a derivative)."""
    return any(isinstance(x, jax.core.Tracer) for x in arrays)


@dataclasses.dataclass(frozen=True)
class Solution:
    """What every optimiser returns for ``R`` restarts, in restart order.

    Attributes:
        params: the final parameters (the law's parameter pytree, leaves batched ``(R, ...)``).
        objectives: ``(R,)`` final ``J`` (may be non-finite for a failed restart).
        converged: ``(R,)`` whether the optimiser's stopping rule was met before ``max_steps``.
        steps: ``(R,)`` iterations the optimiser took.
        group_objectives: ``(R, M)`` each target's share of ``J`` when the fit was solved as
            one problem per target (:mod:`mixscale._lm`), else ``None``.
        gradient_cosines: ``(R, G)`` the first-order optimality measure of each restart's ``G``
            problems at its end (:mod:`mixscale._lm`), or ``None`` (L-BFGS).
    """

    params: Any
    objectives: np.ndarray
    converged: np.ndarray
    steps: np.ndarray
    group_objectives: np.ndarray | None = None
    gradient_cosines: np.ndarray | None = None
