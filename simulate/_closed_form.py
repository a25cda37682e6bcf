r"""Closed-form expected losses: the resolvent of a diagonal-plus-rank-``K`` transition.

**The transition.** For a step size :math:`\gamma` held for a phase, the recursion of
:mod:`simulate._recursion` on the *active* features (kept and trained, :math:`\lambda_k > 0`;
every other feature keeps :math:`c_k = (w^*_k)^2` for ever) is linear,

.. math::

    c_{t+1} = M c_t + u,\qquad
    M = \mathrm{diag}(d) + A^\top \mathrm{diag}(g)\, A,\qquad
    d_k = 1 - \nu_k,\quad
    \nu_k = 2\gamma\lambda_k - \gamma^2\big[\tfrac{2 q_k}{B} + (1 - \tfrac1B)\lambda_k^2\big],

with :math:`A` the ``(K, P)`` eigenvalues restricted to the active features,
:math:`g = \tfrac{\gamma^2}{B} h` ``(K,)`` and
:math:`u = A^\top\big(g \odot (\sigma^2 + e)\big)`, where
:math:`e_i = \sum_{k\ \text{inactive}} a_{ik} (w^*_k)^2` is the constant part of ``r_i``. Each
domain's loss is a linear functional of the state: :math:`L_i(t) = \sigma_i^2 + e_i + y_i(t)`,
:math:`y(t) = A c_t` (``K`` numbers). ``M`` is symmetric positive semi-definite; in the stable
range (:mod:`simulate._stability`) its spectrum lies in ``[0, 1)``.

**The fixed point** :math:`c_\infty = (I - M)^{-1} u` by Woodbury: with
:math:`R_0 = A\,\mathrm{diag}(1/\nu) A^\top` (``K × K``),
:math:`(I_K - R_0 \mathrm{diag}(g))\, y_\infty = A (u / \nu)` and
:math:`c_\infty = (u + A^\top (g \odot y_\infty)) / \nu`. Then
:math:`y(t) = y_\infty + A M^t b` with :math:`b = c_0 - c_\infty`.

**The transient** :math:`A M^t b` by a contour integral of the resolvent. Write
:math:`\mu^t = e^{t \log\mu}` and integrate over a parabola :math:`\zeta(u) = m (1 + iu)^2`
(``m = m_t / t``) that wraps the half-line :math:`\log\mu \in (-\infty, 0]` (a Talbot-type
contour for the inverse Laplace transform, Weideman & Trefethen 2007):

.. math::

    A M^t b = \frac{1}{2\pi i}\int_\Gamma e^{\zeta (t+1)}\, A\,(e^\zeta I - M)^{-1} b\; d\zeta
    \approx \frac{h}{\pi}\sum_{n=0}^{n_q} w_n\,
        \mathrm{Im}\big[\zeta'(u_n)\, e^{\zeta_n (t+1)}\, Y_n\big],

:math:`u_n = n h`, :math:`w_0 = \tfrac12`, :math:`w_{n>0} = 1` (the nodes at :math:`-u_n` are the
complex conjugates and are folded in). Each node needs one resolvent, which the structure makes
a ``K × K`` solve (Woodbury): with :math:`\Delta_n = (e^{\zeta_n} - 1) + \nu` (diagonal, ``P``
complex numbers) and :math:`R_n = A\,\mathrm{diag}(1/\Delta_n) A^\top`,

.. math::

    Y_n = A (e^{\zeta_n} - M)^{-1} b = \big(I_K - R_n \mathrm{diag}(g)\big)^{-1} A (b / \Delta_n),
    \qquad (e^{\zeta_n} - M)^{-1} b = \big(b + A^\top (g \odot Y_n)\big) / \Delta_n .

All the ``R_n`` and ``A (b/Δ_n)`` of every node of a checkpoint come from one real array
:math:`s_{nk} = 1/|\Delta_{nk}|^2` and one real matrix product
``(nodes, P) @ (P, 2 (K(K+1)/2 + K))`` per checkpoint (:func:`_resolvents`: the real part of
:math:`v/\Delta` is :math:`(\mathrm{Re}\,e + \nu)\,s\,v`, split as
:math:`\mathrm{Re}\,e\;(s v) + s\,(\nu v)`; the imaginary part is
:math:`-\mathrm{Im}\,e\;(s v)`), formed one block of :func:`feature_blocks` at a time. Cost
per mixture: ``O(C · n_q · K² · P)`` — linear in ``P``, independent of ``D``; every checkpoint
comes from the same state in one call, with ``O(n_q P)`` work space.

**Accuracy and safeguards.**

* The quadrature is a rational approximation ``r(μ) ≈ μ^t`` used for all eigenvalues at once;
  with ``n_q = 16`` (17 resolvents), ``h = 0.175``, ``m_t = 3.83`` its error is below
  ``1e-14 · max(1, …)`` uniformly over ``μ ∈ [0, 1]`` for every ``t >= 8`` (measured on a
  dense grid of ``log μ``; :func:`quadrature_error` reproduces the measurement and a test checks
  it). The error in ``y_i`` is then at most that times :math:`\|a_i\|\,\|b\|`.
* Small ``t`` (``t < T_SMALL = 16``) would need the contour to cross the images
  :math:`\log\mu + 2\pi i k` of the poles; those checkpoints come from ``T_SMALL`` exact steps
  of the recursion instead (``O(K P)`` each).
* :math:`e^{\zeta} - \mu` is formed as ``expm1(ζ) + ν`` with ``ν = 1 - d`` computed directly
  from ``γλ`` (never as ``1 - d``), so slow directions (``ν ≪ 1``, where ``t ~ 1/ν`` matters)
  keep full relative precision at any ``t``; ``ν > 0`` on every active feature in the stable
  range, so the fixed point exists.
* Inactive features (``λ_k = 0`` or not kept) are masked out of ``A``: they are exactly frozen
  and add ``e_i`` to the loss.
* The split of :math:`\mathrm{Re}(v/\Delta)` into :math:`\mathrm{Re}\,e\,(s v) + s\,(\nu v)`
  trades one ``(n, P)`` array for a possible cancellation between the two sums where
  :math:`\mathrm{Re}\,e \approx -\nu` on the features that dominate them; measured against the
  recursion (float64, P up to 4096, three layouts) the largest relative difference stayed at
  2–3e-14 with and without the split, and the tests hold it to their tolerances.

**Schedules.** A piecewise-constant schedule is a product of constant phases: each phase maps the
full state ``c`` (``P`` numbers) to its end by the same contour (the full vector at one node is
:math:`(b + A^\top(g \odot Y_n))/\Delta_n`), or, for a phase shorter than ``T_SMALL``, by its
exact steps. Checkpoints are phase ends (the schedule's pieces are split at them). A compiled
call takes the schedule as its :class:`PhasePlan`: the step sizes and the lengths of the
integrated phases are arrays (the contour takes any real ``t``), only the structure is static,
so schedules that differ in their phase lengths (a decay scaled to each run's budget) share one
program.

Public entry points: :func:`closed_form_losses` (one mixture and size) and
``simulate.sweep(..., method="closed_form")`` (mixtures × sizes, through
:func:`closed_form_batch`).
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from ._checks import batch_argument
from ._layout import feature_layout
from ._model import DisjointTailModel
from ._schedule import AbstractSchedule, Constant, _split_blocks
from ._validate import check_call, check_schedule

__all__ = ["T_SMALL", "PhasePlan", "as_schedule", "closed_form_batch", "closed_form_losses",
           "closed_form_one", "phase_plan", "quadrature_error", "schedule_arguments"]

#: Checkpoints and phases shorter than this many steps are stepped exactly, not integrated.
T_SMALL = 16
#: Quadrature: nodes ``u_n = n h``, ``n = 0 .. _NQ`` (and their mirror images), ``m = _MT / t``.
_NQ = 16
_H = 0.175
_MT = 3.83


def as_schedule(lr) -> AbstractSchedule:
    """``lr`` as a schedule: a schedule is returned as is, a number becomes a :class:`Constant`."""
    if isinstance(lr, AbstractSchedule):
        return lr
    return Constant(lr)


def _nodes(t: Array):
    """Quadrature nodes ``ζ`` ``(NQ+1,)`` and complex weights ``(NQ+1,)`` for a scalar ``t``
    (``t >= T_SMALL`` assumed; any real ``t``). ``A M^t b ≈ Σ_n Im(weight_n · Y_n)``."""
    t = jnp.maximum(jnp.asarray(t), T_SMALL)
    m = _MT / t
    u = _H * jnp.arange(_NQ + 1, dtype=t.dtype)
    one_iu = 1.0 + 1j * u
    zeta = m * one_iu * one_iu
    dzeta = 2j * m * one_iu
    half = jnp.where(jnp.arange(_NQ + 1) == 0, 0.5, 1.0)
    weight = (_H / math.pi) * half * dzeta * jnp.exp(zeta * (t + 1.0))
    return zeta, weight


def quadrature_error(t: float, log_mu: np.ndarray) -> float:
    """Largest ``|r(μ) − μ^t|`` of the quadrature's rational approximation over the given
    ``log μ <= 0`` (numpy, for tests and documentation)."""
    zeta, weight = (np.asarray(x) for x in _nodes(jnp.asarray(float(t))))
    nu = -np.expm1(np.asarray(log_mu, dtype=np.float64))
    r = np.imag(weight[None, :] / (np.expm1(zeta)[None, :] + nu[:, None])).sum(axis=1)
    return float(np.max(np.abs(r - np.exp(float(t) * np.asarray(log_mu)))))


@functools.lru_cache(maxsize=32)
def feature_blocks(head: int, tails: tuple[int, ...], rho: float, phase: float = 0.0):
    """A static regrouping of the features: ``(perm, blocks)``. ``perm`` ``(P,)`` puts the
    features used by several domains first, then every domain's own features together;
    ``blocks`` is ``((start, stop, owner), ...)`` over the permuted order, ``owner = -1`` for
    the shared block. A domain's own feature couples to that domain alone, so its block adds
    to one diagonal entry of each ``R_n`` (2 numbers per feature instead of
    ``K(K+1)/2 + K``)."""
    _, member = feature_layout(head, tails, rho, phase)
    count = member.sum(axis=0)
    owner = np.where(count == 1, np.argmax(member, axis=0), -1)
    perm = np.argsort(owner, kind="stable").astype(np.int32)  # a valid index without x64
    sizes = [int(np.sum(owner == -1))] + [int(np.sum(owner == i)) for i in range(len(tails))]
    bounds = np.cumsum([0, *sizes])
    blocks = tuple((int(bounds[j]), int(bounds[j + 1]), j - 1) for j in range(len(sizes))
                   if sizes[j] > 0)
    return perm, blocks


def grouped(model: DisjointTailModel, h: Array, n):
    """The model's eigenvalues ``(K, P)``, signal and kept mask in the order of
    :func:`feature_blocks`, and its blocks (losses are sums over features: any order)."""
    perm, blocks = feature_blocks(model.head, model.tails, model.rho, model.overlap_phase)
    return (model.eigenvalues()[:, perm], model.signal()[perm], model.kept(h, n)[perm],
            blocks)


class _Phase(eqx.Module):
    """The constant-step transition on the active features (see the module docstring)."""

    a: Array  # (K, P) eigenvalues, zero on inactive features
    nu: Array  # (P,) 1 - d on active features, 1 elsewhere (unused there)
    g: Array  # (K,) γ² h / B
    active: Array  # (P,) bool
    forcing: Array  # (K,) g ⊙ (σ² + e): u = Aᵀ forcing
    blocks: tuple = eqx.field(static=True)  # see feature_blocks; ((0, P, -1),) if unknown


def _phase(a_all, h, active, lr, batch_size, sigma2_e, blocks=None):
    inv_b = 1.0 / batch_size
    lam = h @ a_all
    q = h @ (a_all * a_all)
    nu = 2.0 * lr * lam - lr * lr * (2.0 * inv_b * q + (1.0 - inv_b) * lam * lam)
    g = (lr * lr * inv_b) * h
    blocks = ((0, a_all.shape[1], -1),) if blocks is None else blocks
    return _Phase(a=jnp.where(active[None, :], a_all, 0.0), nu=jnp.where(active, nu, 1.0),
                  g=g, active=active, forcing=g * sigma2_e, blocks=blocks)


def _fixed_point(ph: _Phase) -> Array:
    """``c_∞`` on the active features (zero elsewhere), shape ``(P,)``."""
    k = ph.a.shape[0]
    u = ph.a.T @ ph.forcing
    inv_nu = 1.0 / ph.nu
    r0 = (ph.a * inv_nu) @ ph.a.T
    y_inf = jnp.linalg.solve(jnp.eye(k, dtype=u.dtype) - r0 * ph.g[None, :], ph.a @ (u * inv_nu))
    return jnp.where(ph.active, (u + ph.a.T @ (ph.g * y_inf)) * inv_nu, 0.0)


def _inverse_delta(e: Array, nu: Array) -> tuple[Array, Array]:
    """Real and imaginary parts of ``1/Δ = 1/(e + ν)`` ``(n, P')`` for the node values
    ``e = expm1(ζ)`` ``(n,)`` complex and ``ν`` ``(P',)``.

    In real arithmetic: ``Δ = (Re e + ν) + i Im e`` is never near overflow or underflow here
    (``|Δ| >= |Im e| ~ m ≥ 3.83/t``), so the plain formula needs no complex-division scaling."""
    x = e.real[:, None] + nu[None, :]
    scale = 1.0 / (x * x + (e.imag * e.imag)[:, None])
    return x * scale, -e.imag[:, None] * scale


def _block_rows(ph: _Phase, b: Array) -> list:
    """Per block of :func:`feature_blocks`, the real rows ``[v; ν v]`` ``(2c, P_block)`` whose
    sums against ``1/Δ`` :func:`_resolvents` needs (``c = K(K+1)/2 + K`` for the shared block:
    every product of two domains' eigenvalues, then every ``a_i b``; ``c = 2`` for a domain's
    own block: ``a_i²`` and ``a_i b``). They do not depend on the node, so they are formed once
    per phase and ``b``, not once per checkpoint."""
    k = ph.a.shape[0]
    iu, ju = np.triu_indices(k)
    out = []
    for start, stop, owner in ph.blocks:
        nu = ph.nu[start:stop]
        a = ph.a[:, start:stop]
        ab = a * b[None, start:stop]
        if owner < 0:
            rows = jnp.concatenate([a[iu] * a[ju], ab])
        else:
            rows = jnp.stack([a[owner] * a[owner], ab[owner]])
        out.append(jnp.concatenate([rows, rows * nu[None, :]]))
    return out


def _resolvents(ph: _Phase, rows: list, zeta: Array) -> Array:
    r"""``Y = A (e^ζ − M)^{-1} b`` ``(n, K)`` complex at the nodes ``ζ`` ``(n,)``.

    Every sum over features the Woodbury solve needs is :math:`\sum_k v_k / \Delta_{nk}` for a
    real row ``v`` (a product of two domains' eigenvalues, or ``a_i b``). With
    :math:`\Delta = x + i\eta`, :math:`x = \mathrm{Re}\,e + \nu`, :math:`\eta = \mathrm{Im}\,e`
    (``e = expm1(ζ)``) and :math:`s = 1/(x^2 + \eta^2)`:

    .. math::

        \sum_k \frac{v_k}{\Delta_{nk}} = \mathrm{Re}\,e_n\, S_n(v) + S_n(\nu v)
            - i\,\eta_n\, S_n(v),\qquad S_n(v) = \sum_k s_{nk} v_k,

    so each block needs the one real ``(n, P_block)`` array ``s`` and one product with its rows
    ``[v; ν v]`` (``rows``, from :func:`_block_rows`), formed block by block
    (:func:`feature_blocks`), never for every feature at once (at ``P = 2^16`` a ``(2n, P)``
    array of ``1/Δ`` is ~18 MB)."""
    k = ph.a.shape[0]
    e = jnp.expm1(zeta)
    iu, ju = np.triu_indices(k)
    diag = [int(np.flatnonzero((iu == i) & (ju == i))[0]) for i in range(k)]
    n = zeta.shape[0]
    cols = iu.size + k
    sums = jnp.zeros((n, 2 * cols), ph.a.dtype)  # S(v) | S(ν v) for every column
    for (start, stop, owner), both in zip(ph.blocks, rows, strict=True):
        x = e.real[:, None] + ph.nu[None, start:stop]
        s = 1.0 / (x * x + (e.imag * e.imag)[:, None])  # (n, P_block)
        part = s @ both.T
        if owner < 0:  # shared features: every pair of domains
            sums = sums + part
        else:  # a domain's own features: its diagonal entry and its own right-hand side
            at = [diag[owner], iu.size + owner]
            sums = sums.at[:, at].add(part[:, :2]).at[:, [cols + j for j in at]].add(part[:, 2:])
    s_v, s_nu_v = sums[:, :cols], sums[:, cols:]
    prod = (e.real[:, None] * s_v + s_nu_v) - 1j * (e.imag[:, None] * s_v)
    sym = jnp.zeros((n, k, k), prod.dtype).at[:, iu, ju].set(prod[:, :iu.size])
    r = sym + jnp.swapaxes(sym, 1, 2) - sym * jnp.eye(k, dtype=prod.dtype)
    lhs = jnp.eye(k, dtype=prod.dtype) - r * ph.g[None, None, :]
    return jnp.linalg.solve(lhs, prod[:, iu.size:, None])[..., 0]


def _transient_y(ph: _Phase, b: Array, t: Array) -> Array:
    """``A M^t b`` for every ``t`` ``(C,)`` (``t >= T_SMALL``): shape ``(C, K)``; one
    checkpoint's nodes at a time, so the work space is ``O(n_q P)``."""
    rows = _block_rows(ph, b)

    def one(t):
        zeta, weight = _nodes(t)
        y = _resolvents(ph, rows, zeta)
        return jnp.sum(jnp.imag(weight[:, None] * y), axis=0)

    return lax.map(one, t)


def _transient_c(ph: _Phase, b: Array, t) -> Array:
    """``M^t b`` (full vector ``(P,)``, zero off the active features) for one ``t >= T_SMALL``."""
    zeta, weight = _nodes(jnp.asarray(t, b.dtype))
    y = _resolvents(ph, _block_rows(ph, b), zeta)
    inv_re, inv_im = _inverse_delta(jnp.expm1(zeta), ph.nu)
    num = b[None, :] + (y * ph.g[None, :]) @ ph.a  # (NQ+1, P) complex
    # Im(w · num / Δ) with 1/Δ = inv_re + i inv_im
    wn = weight[:, None] * num
    vec = wn.real * inv_im + wn.imag * inv_re
    return jnp.where(ph.active, jnp.sum(vec, axis=0), 0.0)


def _steps(ph: _Phase, c: Array, n_steps: int) -> tuple[Array, Array]:
    """``n_steps`` exact steps from ``c``: the final ``c`` and ``y`` after 0..n_steps steps."""
    d = 1.0 - ph.nu
    u = ph.a.T @ ph.forcing

    def one(c, _):
        y = ph.a @ c
        c = jnp.where(ph.active, d * c + ph.a.T @ (ph.g * y) + u, c)
        return c, y

    c, ys = lax.scan(one, c, None, length=n_steps)
    return c, jnp.concatenate([ys, (ph.a @ c)[None]])


def _setup(a_all, w2, sigma2, h, kept):
    """Active mask, the frozen state and ``σ² + e`` ``(K,)``."""
    active = kept & ((h @ a_all) > 0)
    frozen = jnp.where(active, 0.0, w2)
    return active, sigma2 + a_all @ frozen


def constant_losses(a_all, w2, sigma2, h, kept, lr, steps, batch_size, blocks=None) -> Array:
    """Losses ``(C, K)`` at ``steps`` ``(C,)`` (any reals ``>= 0``; below ``T_SMALL`` they are
    rounded to whole steps) for a constant step ``lr``; ``blocks`` as :func:`feature_blocks`
    (features in that order), or ``None`` for no structure. Traceable; no input checks."""
    active, sigma2_e = _setup(a_all, w2, sigma2, h, kept)
    ph = _phase(a_all, h, active, lr, batch_size, sigma2_e, blocks)
    c0 = jnp.where(active, w2, 0.0)
    c_inf = _fixed_point(ph)
    steps = jnp.asarray(steps, a_all.dtype)
    _, y_small = _steps(ph, c0, T_SMALL)
    small = y_small[jnp.clip(jnp.round(steps), 0, T_SMALL).astype(jnp.int32)]
    large = ph.a @ c_inf + _transient_y(ph, c0 - c_inf, steps)
    y = jnp.where((steps < T_SMALL)[:, None], small, large)
    return y + sigma2_e[None, :]


class PhasePlan(eqx.Module):
    """A piecewise-constant schedule up to its last checkpoint, as the closed form runs it: a
    sequence of blocks, each ``lrs.shape[0]`` pieces of one length, split at the checkpoints.

    Only the *structure* is static (the number of blocks, the pieces per block, the length of
    a block stepped exactly, below ``T_SMALL``, and which block ends the checkpoints read): the
    step sizes and the length of every integrated block are arrays, so one compiled program
    serves every schedule of that structure. A step decay scaled to its run
    (``every = ⌈steps / pieces⌉``) at 2×, 4× or 16× the steps thus compiles once, where a
    :class:`StepDecay` passed to a jitted function (``every`` static) compiles per run.

    Build it with :func:`phase_plan`.
    """

    lrs: tuple  # per block, (n_pieces,) step sizes
    lengths: tuple  # per block: a scalar array (>= T_SMALL, integrated) or an int (stepped)
    reads: tuple[int, ...] = eqx.field(static=True)  # per checkpoint: blocks before it (0: t = 0)


def phase_plan(schedule: AbstractSchedule, checkpoints) -> PhasePlan:
    """The :class:`PhasePlan` of ``schedule`` read at the static ``checkpoints`` (ints >= 0)."""
    checkpoints = tuple(int(t) for t in checkpoints)
    stops = sorted(set(checkpoints))
    lrs, lengths, ends = [], [], [0]
    for start, block_lrs, length in _split_blocks(schedule.blocks(max(stops, default=0)), stops):
        lrs.append(block_lrs)
        lengths.append(int(length) if length < T_SMALL else jnp.asarray(float(length)))
        ends.append(start + block_lrs.shape[0] * length)
    return PhasePlan(lrs=tuple(lrs), lengths=tuple(lengths),
                     reads=tuple(ends.index(t) for t in checkpoints))


def schedule_losses(a_all, w2, sigma2, h, kept, plan: PhasePlan, batch_size: int,
                    blocks=None) -> Array:
    """Losses ``(C, K)`` at the checkpoints of ``plan`` (:func:`phase_plan`) for any
    piecewise-constant schedule, as a product of constant phases. Traceable; no input checks."""
    active, sigma2_e = _setup(a_all, w2, sigma2, h, kept)

    def advance(c, lr, length):
        ph = _phase(a_all, h, active, lr, batch_size, sigma2_e, blocks)
        if isinstance(length, int):  # a short phase: its exact steps
            return _steps(ph, c, length)[0]
        c_inf = _fixed_point(ph)
        return c_inf + _transient_c(ph, c - c_inf, length)

    c = jnp.where(active, w2, 0.0)
    states = [a_all @ c]  # y after each block (the first: t = 0)
    for lrs, length in zip(plan.lrs, plan.lengths, strict=True):
        if lrs.shape[0] == 1:
            c = advance(c, lrs[0], length)
        else:
            c, _ = lax.scan(lambda c, lr, length=length: (advance(c, lr, length), None), c, lrs)
        states.append(a_all @ c)
    return jnp.stack([states[i] for i in plan.reads]) + sigma2_e[None, :]


def closed_form_one(model: DisjointTailModel, h: Array, n, schedule, steps,
                    batch_size: int) -> Array:
    """Closed-form losses ``(C, K)`` for one mixture and ``n`` kept features (may be traced).

    ``schedule`` a :class:`Constant` (``steps`` an array of step counts, traced) or any
    :class:`AbstractSchedule` (``steps`` a static tuple of ints); or ``steps`` a
    :class:`PhasePlan`, which carries the schedule (``schedule`` is then unused:
    :func:`schedule_arguments` passes ``None``). Traceable and ``vmap``-able over ``h``; no
    input checks.
    """
    a_all, w2, kept, blocks = grouped(model, h, n)
    if isinstance(schedule, Constant):
        return constant_losses(a_all, w2, model.sigma2, h, kept, schedule.lr, steps,
                               batch_size, blocks)
    plan = steps if isinstance(steps, PhasePlan) else phase_plan(schedule, steps)
    return schedule_losses(a_all, w2, model.sigma2, h, kept, plan, batch_size, blocks)


def schedule_arguments(schedule, checkpoints, dtype) -> tuple:
    """``(schedule, steps)`` as a compiled closed form takes them: a :class:`Constant` with the
    checkpoints as a traced array; any other schedule as ``None`` with its :class:`PhasePlan`
    (which carries it: the schedule's static fields, e.g. :class:`StepDecay`'s ``every``, would
    compile a program per value)."""
    if isinstance(schedule, Constant):
        return schedule, jnp.asarray(checkpoints, dtype)
    return None, phase_plan(schedule, checkpoints)


@eqx.filter_jit
def _closed_form_jit(model, h, n, schedule, steps, batch_size):
    return closed_form_one(model, h, n, schedule, steps, batch_size)


#: Mixtures evaluated together (``vmap``) per step of the batch loop: about 2^18 features in all,
#: so the work space stays ``O(2^18 n_q)`` numbers whatever the number of mixtures.
_BATCH_FEATURES = 2**18


def closed_form_batch(model: DisjointTailModel, mixtures: Array, n, schedule, steps,
                      batch_size: int) -> Array:
    """:func:`closed_form_one` for every row of ``mixtures`` ``(M, K)``: losses ``(M, C, K)``,
    in chunks of mixtures (``lax.map``). ``n`` may be traced; traceable; no input checks."""
    chunk = max(1, _BATCH_FEATURES // model.n_features)
    return lax.map(lambda h: closed_form_one(model, h, n, schedule, steps, batch_size),
                   mixtures, batch_size=min(chunk, mixtures.shape[0]))


def closed_form_losses(model: DisjointTailModel, h, n, lr, checkpoints,
                       batch_size: int = 1) -> Array:
    r"""Exact expected losses in closed form (see the module docstring).

    Same arguments and result as :func:`expected_losses` with ``Constant(lr)``; ``lr`` may also
    be any :class:`AbstractSchedule` (a product of constant phases). Agrees with the recursion
    to ``~1e-12`` relative in float64; the cost is linear in the number of features and, for a
    constant step, independent of ``D``.
    """
    schedule = check_schedule(as_schedule(lr))
    call = check_call("closed_form_losses", model, mixtures=h, sizes=n, schedule=schedule,
                      checkpoints=checkpoints, batch_size=batch_size)
    dtype = model.alpha.dtype
    return _closed_form_jit(model, jnp.asarray(call.mixtures, dtype), jnp.asarray(call.sizes),
                            *schedule_arguments(schedule, call.checkpoints, dtype),
                            batch_argument(call.batch_size, dtype))
