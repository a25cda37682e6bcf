r"""The block structure of a fit: parameters that act on one target only, and a solver that uses it.

Every law declares which of its fields are *per target* (``AbstractLaw.per_target_fields``: the
leading axis of such a field indexes the ``M`` targets, and its entries for target ``m`` change
the predictions of target ``m`` alone). With residuals ordered ``(run, target)``, the Jacobian
:math:`J` of the ``n·M`` residuals with respect to the ``P`` flat parameters then has an *arrow*
structure: target ``m``'s rows touch its own ``P_m`` columns and the ``S`` shared ones (the
capacity law's ``b, c, H``; none for the per-target baselines).

Two things follow.

*Compressed Jacobian* (Curtis, Powell & Reid 1974). Columns owned by different targets never
touch the same row, so the ``k``-th owned column of every target can be probed by one
Jacobian-vector product: ``W + S`` products (``W = max_m P_m``) give every nonzero of
:math:`J`, instead of ``P``. For the joint law at ``K = 17`` that is 73 products instead of 1241.
The compressed Jacobian is ``(n, M, W + S)``: ``[:, m, :W]`` is target ``m``'s own block (padded
with exact zeros), ``[:, m, W:]`` its shared block.

*Block-arrow normal equations.* The damped Gauss–Newton system
:math:`(J^\top J + \mu\,\mathrm{diag}(s))\,\Delta = -J^\top r` has the form

.. math::

    \begin{pmatrix} A_1 & & & B_1\\ & \ddots & & \vdots\\ & & A_M & B_M\\
    B_1^\top & \cdots & B_M^\top & C \end{pmatrix}
    \begin{pmatrix}\Delta_1\\ \vdots\\ \Delta_M\\ \Delta_s\end{pmatrix}
    = -\begin{pmatrix} g_1\\ \vdots\\ g_M\\ g_s\end{pmatrix},

solved exactly through the Schur complement of the shared block,
:math:`(C - \sum_m B_m^\top A_m^{-1} B_m)\,\Delta_s = -g_s + \sum_m B_m^\top A_m^{-1} g_m`, then
:math:`\Delta_m = -A_m^{-1}(g_m + B_m \Delta_s)`: ``M`` solves of size ``W`` and one of size
``S`` instead of one of size ``P`` (``O(M W³ + S³)`` against ``O(P³)``). Padded slots get a unit
diagonal and a zero right-hand side, so their step is exactly zero. With no per-target field
(``W = 0``) this is the plain dense solve.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg
import numpy as np
from jax import Array

__all__ = ["Blocks", "NormalFactors", "compressed_jacobian", "compressed_jacobian_by_rows",
           "factor_normal", "parameter_owners", "solve_factored", "solve_normal_equations"]


@dataclasses.dataclass(frozen=True, eq=False)
class Blocks:
    """Where each flat parameter sits in the arrow structure (hashable by value: a static
    argument of compiled functions, so equal structures share one compilation).

    Attributes:
        n_params: ``P``.
        n_targets: ``M``.
        own: ``(M, W)`` flat index of target ``m``'s ``k``-th own parameter, ``-1`` for padding.
        shared: ``(S,)`` flat indices of the shared parameters.
        seeds: ``(W + S, P)`` 0/1 probe directions of the compressed Jacobian.
    """

    n_params: int
    n_targets: int
    own: np.ndarray
    shared: np.ndarray
    seeds: np.ndarray

    def _key(self):
        return (self.n_params, self.n_targets, self.own.shape, self.own.tobytes(),
                self.shared.tobytes())

    def __eq__(self, other) -> bool:
        return isinstance(other, Blocks) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @property
    def separable(self) -> bool:
        """No shared parameter: the fit is ``M`` independent problems, one per target."""
        return self.shared.size == 0

    @property
    def n_groups(self) -> int:
        """Independent problems: ``M`` when separable, else one."""
        return self.n_targets if self.separable else 1

    @property
    def target_group(self) -> np.ndarray:
        """``(M,)`` problem of each target."""
        return np.arange(self.n_targets) if self.separable else np.zeros(self.n_targets, int)

    @property
    def param_target(self) -> np.ndarray:
        """``(P,)`` owning target of each flat parameter, ``-1`` if shared."""
        out = np.full(self.n_params, -1)
        for m in range(self.n_targets):
            cols = self.own[m][self.own[m] >= 0]
            out[cols] = m
        return out

    @property
    def param_group(self) -> np.ndarray:
        """``(P,)`` problem of each flat parameter."""
        owner = self.param_target
        return np.where(owner >= 0, self.target_group[np.maximum(owner, 0)], 0)

    @property
    def width(self) -> int:
        """``W``, the most own parameters of any target."""
        return int(self.own.shape[1])

    @property
    def n_colours(self) -> int:
        """``W + S``, the Jacobian-vector products per Jacobian."""
        return int(self.seeds.shape[0])

    @classmethod
    def from_owners(cls, owner: np.ndarray, n_targets: int) -> Blocks:
        """Blocks from the owning target of each flat parameter (``-1``: shared)."""
        owner = np.asarray(owner, dtype=np.int64)
        p = owner.shape[0]
        if np.any(owner >= n_targets) or np.any(owner < -1):
            raise ValueError(f"owners must be -1 or in [0, {n_targets}), got {owner}")
        per_target = [np.flatnonzero(owner == m) for m in range(n_targets)]
        width = max((len(ix) for ix in per_target), default=0)
        own = np.full((n_targets, width), -1, dtype=np.int64)
        for m, ix in enumerate(per_target):
            own[m, : len(ix)] = ix
        shared = np.flatnonzero(owner < 0)
        seeds = np.zeros((width + len(shared), p))
        for m in range(n_targets):
            for k, col in enumerate(own[m]):
                if col >= 0:
                    seeds[k, col] = 1.0
        seeds[width + np.arange(len(shared)), shared] = 1.0
        return cls(n_params=p, n_targets=n_targets, own=own, shared=shared, seeds=seeds)



def parameter_owners(params, per_target_fields, n_targets: int) -> np.ndarray:
    """``(P,)`` owning target of each flat parameter of ``params`` (one law's inexact-array
    leaves, flattened in ``jax.tree_util`` leaf order), ``-1`` for shared parameters.

    An entry of a field named in ``per_target_fields`` is owned by the target of its index along
    the field's leading axis, which must have length ``n_targets``."""
    owners = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        name = getattr(path[0], "name", None) if path else None
        shape = np.shape(leaf)
        if name in per_target_fields:
            if not shape or shape[0] != n_targets:
                raise ValueError(f"per-target field {name} has shape {shape}; its leading axis "
                                 f"must index the {n_targets} targets")
            owners.append(np.repeat(np.arange(n_targets), int(np.prod(shape[1:]))))
        else:
            owners.append(np.full(int(np.prod(shape)), -1))
    return np.concatenate(owners) if owners else np.zeros(0, np.int64)


def compressed_jacobian(fun, p: Array, blocks: Blocks) -> tuple[Array, Array]:
    """Residuals ``fun(p)`` ``(n·M,)`` and their compressed Jacobian ``(n·M, W + S)`` (rows in
    the residuals' order; reshaped ``(n, M, W + S)`` it gives each target's blocks).

    ``fun`` returns residuals ordered ``(run, target)`` (``M`` fastest). One linearisation and
    ``W + S`` Jacobian-vector products."""
    if blocks.width == 0:  # nothing to compress: the plain forward-mode Jacobian
        r = fun(p)
        return r, jax.jacfwd(fun)(p)
    r, jvp = jax.linearize(fun, p)
    cols = jax.vmap(jvp)(jnp.asarray(blocks.seeds, dtype=p.dtype))  # (C, n·M)
    return r, cols.T


def compressed_jacobian_by_rows(row_fun, rows, p: Array, fun, blocks: Blocks
                                ) -> tuple[Array, Array]:
    r"""Residuals ``(n·M,)`` and their compressed Jacobian ``(n·M, W + S)``, the own blocks by
    reverse mode: one backward pass per run.

    ``row_fun(p, row)`` gives one run's ``M`` residuals (``row``: that run's slice of ``rows``,
    whose leaves have a leading run axis), ``fun(p)`` all of them, ordered ``(run, target)``.
    Because target ``m``'s own parameters act on target ``m`` alone, the gradient of a run's
    *summed* residuals with respect to them is exactly that target's own row of the Jacobian:

    .. math::

        \frac{\partial}{\partial\theta_{m}} \sum_{m'} r_{nm'} = \frac{\partial r_{nm}}
        {\partial\theta_{m}},

    so one cotangent per run gives every target's own block, at about the cost of a few
    evaluations of the residuals, where forward mode pushes ``W`` tangents through the whole
    table. The ``S`` shared columns are taken by forward mode (``S`` Jacobian-vector products
    of ``fun``). The same numbers as :func:`compressed_jacobian` up to rounding."""
    def one(row):
        out, pullback = jax.vjp(lambda q: row_fun(q, row), p)
        return out, pullback(jnp.ones_like(out))[0]

    r_rows, grads = jax.vmap(one)(rows)                                   # (n, M), (n, P)
    r = r_rows.reshape(-1)
    own = jnp.asarray(np.maximum(blocks.own, 0))
    jc = jnp.where(jnp.asarray(blocks.own < 0)[None], 0.0, grads[:, own])  # (n, M, W)
    if blocks.shared.size:
        _, jvp = jax.linearize(fun, p)
        seeds = jnp.asarray(blocks.seeds[blocks.width:], dtype=p.dtype)
        shared = jax.vmap(jvp)(seeds).T.reshape(r_rows.shape + (blocks.shared.size,))
        jc = jnp.concatenate([jc, shared], axis=2)
    return r, jc.reshape(r.shape[0], blocks.n_colours)


def _scatter(blocks: Blocks, own: Array, shared: Array) -> Array:
    """Flat ``(P,)`` vector from its own ``(M, W)`` and shared ``(S,)`` parts (padding dropped)."""
    out = jnp.zeros(blocks.n_params, dtype=shared.dtype)
    if blocks.width:
        idx = blocks.own.reshape(-1)
        keep = idx >= 0
        out = out.at[idx[keep]].set(own.reshape(-1)[keep])
    return out.at[blocks.shared].set(shared)


def column_mask(blocks: Blocks, keep: Array) -> Array:
    """``(M, W + S)`` mask of the compressed Jacobian (reshaped ``(n, M, W + S)``) keeping the
    flat parameters ``keep`` ``(P,)`` (bool): a zero there removes that parameter from the
    step."""
    keep = keep.astype(jnp.float64) if keep.dtype == bool else keep
    own = jnp.where(jnp.asarray(blocks.own) >= 0, keep[jnp.maximum(jnp.asarray(blocks.own), 0)],
                    1.0)
    shared = jnp.broadcast_to(keep[jnp.asarray(blocks.shared, dtype=jnp.int32)],
                              (blocks.n_targets, blocks.shared.size))
    return jnp.concatenate([own, shared], axis=1)


def gradient(jc: Array, r: Array, blocks: Blocks) -> Array:
    """``Jᵀr`` ``(P,)`` from the compressed Jacobian ``(n·M, W + S)``."""
    w = blocks.width
    if w == 0:  # the dense problem: the plain product (the same rounding as a dense solver)
        return _scatter(blocks, jnp.zeros((blocks.n_targets, 0), jc.dtype), jc.T @ r)
    jc = jc.reshape(-1, blocks.n_targets, blocks.n_colours)
    r3 = r.reshape(-1, blocks.n_targets)
    g_own = jnp.einsum("nmi,nm->mi", jc[:, :, :w], r3)
    g_shared = jnp.einsum("nmi,nm->i", jc[:, :, w:], r3)
    return _scatter(blocks, g_own, g_shared)


def normal_parts(jc: Array, r: Array, blocks: Blocks):
    """The blocks of ``JᵀJ`` and ``Jᵀr`` from the compressed Jacobian ``(n·M, W + S)``."""
    w = blocks.width
    jc = jc.reshape(-1, blocks.n_targets, blocks.n_colours)
    r3 = r.reshape(-1, blocks.n_targets)
    jo, js = jc[:, :, :w], jc[:, :, w:]
    a = jnp.einsum("nmi,nmj->mij", jo, jo)       # (M, W, W)
    b = jnp.einsum("nmi,nmj->mij", jo, js)       # (M, W, S)
    g_own = jnp.einsum("nmi,nm->mi", jo, r3)     # (M, W)
    c = jnp.einsum("nmi,nmj->ij", js, js)        # (S, S)
    g_shared = jnp.einsum("nmi,nm->i", js, r3)   # (S,)
    return a, b, c, g_own, g_shared


def solve_normal_equations(jc: Array, r: Array, blocks: Blocks, mu_own: Array, mu_shared: Array,
                           scale_floor: float = 1e-12) -> tuple[Array, Array, Array]:
    """Solve ``(JᵀJ + diag(μ s)) Δ = −Jᵀr`` by the Schur complement of the shared block.

    ``s_i = max((JᵀJ)_ii, scale_floor · max_j (JᵀJ)_jj)`` (Marquardt's scaling); the damping is
    ``mu_own[m]`` ``(M,)`` on target ``m``'s own parameters and ``mu_shared`` on the shared ones.
    Returns the step ``Δ``, the gradient ``g = Jᵀr`` and ``s``, each flat ``(P,)``."""
    if blocks.width == 0:  # the dense problem: plain products and one solve
        g = jc.T @ r
        a = jc.T @ jc
        scale = jnp.maximum(jnp.diag(a), scale_floor * jnp.max(jnp.diag(a)))
        return jnp.linalg.solve(a + mu_shared * jnp.diag(scale), -g), g, scale
    a, b, c, g_own, g_shared = normal_parts(jc, r, blocks)
    pad = jnp.asarray(blocks.own < 0)
    s_own, s_shared = _marquardt_scale(a, c, pad, scale_floor)
    eye = jnp.eye(blocks.width, dtype=jc.dtype)
    a_damped = a + (jnp.where(pad, 1.0, mu_own[:, None] * s_own))[:, :, None] * eye  # pads: 1
    c_damped = c + jnp.diag(mu_shared * s_shared)
    x = jnp.linalg.solve(a_damped, jnp.concatenate([b, g_own[:, :, None]], axis=2))
    x_b, x_g = x[:, :, :-1], x[:, :, -1]                           # A⁻¹B, A⁻¹g
    schur = c_damped - jnp.einsum("mis,mit->st", b, x_b)
    rhs = -g_shared + jnp.einsum("mis,mi->s", b, x_g)
    d_shared = jnp.linalg.solve(schur, rhs) if blocks.shared.size else rhs
    d_own = -x_g - jnp.einsum("mis,s->mi", x_b, d_shared)
    return (_scatter(blocks, d_own, d_shared), _scatter(blocks, g_own, g_shared),
            _scatter(blocks, s_own, s_shared))


def _marquardt_scale(a: Array, c: Array, pad: Array, scale_floor: float) -> tuple[Array, Array]:
    """Marquardt's scaling ``s`` of the own ``(M, W)`` and shared ``(S,)`` parameters."""
    d_own = jnp.diagonal(a, axis1=1, axis2=2)
    d_shared = jnp.diag(c)
    top = jnp.maximum(jnp.max(jnp.where(pad, 0.0, d_own), initial=0.0),
                      jnp.max(d_shared, initial=0.0))
    return (jnp.where(pad, 1.0, jnp.maximum(d_own, scale_floor * top)),
            jnp.maximum(d_shared, scale_floor * top))


class NormalFactors(NamedTuple):
    """The damped normal matrix ``JᵀJ + diag(μ s)`` factored once (:func:`factor_normal`), for
    :func:`solve_factored` with any number of right-hand sides.

    Attributes:
        jc: the compressed Jacobian ``(n·M, W + S)`` (for ``Jᵀv``).
        scale: Marquardt's ``s``, flat ``(P,)``.
        own: LU factors and pivots of the ``M`` damped own blocks ``(M, W, W)`` (structured), or
            of the whole matrix ``(P, P)`` (dense).
        coupling: ``B`` ``(M, W, S)`` and ``A⁻¹B`` ``(M, W, S)`` (structured; empty if dense).
        schur: LU factors and pivots of the Schur complement ``(S, S)`` (structured).
    """

    jc: Array
    scale: Array
    own: tuple
    coupling: tuple
    schur: tuple


def factor_normal(jc: Array, blocks: Blocks, mu_own: Array, mu_shared: Array,
                  scale_floor: float = 1e-12) -> NormalFactors:
    """Factor ``JᵀJ + diag(μ s)`` (damping and scaling as in :func:`solve_normal_equations`):
    one batched LU of the own blocks and one of the Schur complement of the shared block.

    Solving several right-hand sides from one factorisation matters beyond cost: two LU
    factorisations that do not depend on each other may run at the same time on XLA's CPU
    thread pool, and jaxlib's batched LAPACK kernels wait inside that pool for work of their
    own; on a 2-thread pool two of them wait for each other for ever (observed: geodesic
    acceleration with a second, independent ``jnp.linalg.solve`` of the same matrix hung the
    fit at 0 % CPU, both pool threads in ``LuDecomposition`` → ``ParallelBatchMap``)."""
    lu_factor = jax.scipy.linalg.lu_factor
    if blocks.width == 0:
        a = jc.T @ jc
        scale = jnp.maximum(jnp.diag(a), scale_floor * jnp.max(jnp.diag(a)))
        return NormalFactors(jc, scale, lu_factor(a + mu_shared * jnp.diag(scale)), (), ())
    jc3 = jc.reshape(-1, blocks.n_targets, blocks.n_colours)
    w = blocks.width
    jo, js = jc3[:, :, :w], jc3[:, :, w:]
    a = jnp.einsum("nmi,nmj->mij", jo, jo)
    b = jnp.einsum("nmi,nmj->mij", jo, js)
    c = jnp.einsum("nmi,nmj->ij", js, js)
    pad = jnp.asarray(blocks.own < 0)
    s_own, s_shared = _marquardt_scale(a, c, pad, scale_floor)
    eye = jnp.eye(w, dtype=jc.dtype)
    a_damped = a + (jnp.where(pad, 1.0, mu_own[:, None] * s_own))[:, :, None] * eye
    own = jax.vmap(lu_factor)(a_damped)
    x_b = jax.vmap(jax.scipy.linalg.lu_solve)(own, b)             # A⁻¹B (M, W, S)
    schur = c + jnp.diag(mu_shared * s_shared) - jnp.einsum("mis,mit->st", b, x_b)
    schur_lu = lu_factor(schur) if blocks.shared.size else ()
    return NormalFactors(jc, _scatter(blocks, s_own, s_shared), own, (b, x_b), schur_lu)


def solve_factored(factors: NormalFactors, r: Array, blocks: Blocks) -> tuple[Array, Array]:
    """The step ``Δ = −(JᵀJ + diag(μ s))⁻¹ Jᵀr`` and ``g = Jᵀr`` (flat ``(P,)``) for residuals
    ``r`` ``(n·M,)`` from factors of :func:`factor_normal`."""
    lu_solve = jax.scipy.linalg.lu_solve
    if blocks.width == 0:
        g = factors.jc.T @ r
        return lu_solve(factors.own, -g), g
    jc3 = factors.jc.reshape(-1, blocks.n_targets, blocks.n_colours)
    r3 = r.reshape(-1, blocks.n_targets)
    w = blocks.width
    g_own = jnp.einsum("nmi,nm->mi", jc3[:, :, :w], r3)
    g_shared = jnp.einsum("nmi,nm->i", jc3[:, :, w:], r3)
    b, x_b = factors.coupling
    x_g = jax.vmap(lu_solve)(factors.own, g_own)                  # A⁻¹g (M, W)
    rhs = -g_shared + jnp.einsum("mis,mi->s", b, x_g)
    d_shared = lu_solve(factors.schur, rhs) if blocks.shared.size else rhs
    d_own = -x_g - jnp.einsum("mis,s->mi", x_b, d_shared)
    return _scatter(blocks, d_own, d_shared), _scatter(blocks, g_own, g_shared)
