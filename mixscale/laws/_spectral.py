r"""The spectral law: the capacity law's allocation, with the loss integrated over feature ranks as
one-pass SGD learns them (derivation and its checks: ``docs/theory.md``).

For training domain ``i`` (every target is a training domain), mixture ``h``, model size ``N``
and tokens ``D``:

.. math::

    L(h, N, D) = (I - \eta M)^{-1}\,\big(E + U + B\big)                    \qquad (K,)

* Allocation: :math:`x^* = x^*(h, N; b, c, H)`, the paper's capacity split (exact, differentiable,
  :func:`mixscale.allocate`); ``x_i`` counts the ranks domain ``i`` keeps, head included.
* Ranks are counted in *features*: position ``p = l/ν`` (``ν``: units of ``N`` per feature). A
  feature of rank ``u`` has eigenvalue :math:`a_i(u) = u^{-\alpha_i}` in domain ``i`` and carries
  loss :math:`f_i(u) = \omega_i u^{-b_i - 1}`, :math:`\omega_i = b_i c_i \nu^{-b_i}` (so that the
  loss beyond rank ``x`` is :math:`c_i x^{-b_i}`, the capacity law's term). Head positions
  ``[0, H/ν]`` are shared by every domain; domain ``i``'s own tail is ``[H/ν, x_i/ν]``.
* A kept feature is learned at the rate of the data that reaches it: on the head at
  :math:`T(u) = \sum_j h_j a_j(u)` (every domain's data teaches the head), on the own tail at
  :math:`T_i(u) = h_i a_i(u)`; after ``D`` tokens its remaining error is
  :math:`e^{-s(u)}`, :math:`s(u) = \delta\,(N/\nu)^{\theta} D\, T(u)`.
* ``U_i``: loss of the unkept ranks, :math:`\int_{x_i/\nu}^\infty f_i`.
  ``B_i``: bias of the kept ranks, :math:`\int_0^{x_i/\nu} f_i\, e^{-s}`.
* SGD noise: a learned feature settles at the noise floor fed by every domain's loss,
  :math:`M_{ij} = \int a_i\, h_j a_j\, (1 - e^{-s}) / (T - 2\eta Q)` over domain ``i``'s kept
  ranks (:math:`Q = \sum_j h_j a_j^2`; on the own tail only ``j = i``). Noisy domains raise
  every domain's loss through the shared head.
* ``E_i``: label noise minus the part of the rank integral beyond the last feature (signed).

Rank sums are evaluated as: the first :data:`N_DISCRETE` ranks exactly (rank ``m`` occupies the
position cell ``[m-1, m]``, counted by its overlap with the interval), the rest by the midpoint
rule (position ``p`` is rank ``p + 1/2``) with :data:`N_NODES`-point Gauss–Legendre in
``log(p + 1/2)``.

Variants (the ``variant`` option):

* ``"full"`` (default), ``4K + 5`` parameters: per domain ``b`` (capacity exponent), ``c``
  (capacity amplitude), ``α`` (spectral exponent: how fast a rank is learned), ``E``; shared
  ``H`` (head), ``ν`` (units of ``N`` per feature), ``δ`` (learning per token), ``η`` (SGD noise
  per step) and ``θ``: sample efficiency grows with model size, :math:`s \propto (N/\nu)^\theta`
  (a larger model extracts more per token; ``θ = 0`` is the linear theory).
* ``"linear"``: ``θ = 0``, ``4K + 4`` parameters (one-pass SGD on a linear model exactly).
* ``"tied"``: the linear theory's ties ``b_i = α_i + β − 1`` and ``ω_i = 1`` (so
  ``c_i = ν^{b_i}/b_i``), ``θ = 0``: per domain ``α, E``; shared ``β, H, ν, δ, η``: ``2K + 5``.
* ``"transfer"``: ``full`` with tail overlap ``ρ ∈ [0, 1]``, ``4K + 6`` parameters: a fraction
  ``ρ`` of every domain's tail ranks is shared by all domains (the simulator's ``rho``; on real
  models, features a rare domain shares with the rest of the mixture). A shared rank costs one
  unit of capacity for every domain and is kept while its *summed* score beats the allocation's
  threshold, up to ``x_s ≥ max x_i`` (:func:`mixscale.log_shared_allocation`, the paper's
  allocation problem with shared ranks); it is taught, like the head, at the summed rate
  ``T(u)`` with the head's noise coupling. Domain ``i``'s tail terms are ``1 − ρ`` times its own
  tail's on ``[H, x_i]`` plus ``ρ`` times the shared ranks' on ``[H, x_s]``. ``ρ = 0`` is
  ``full``.
* ``"dispersed"``: ``transfer`` with dispersed ranks, ``4K + 7`` parameters: one rank bundles
  directions whose rates are Gamma-distributed around the power law (shape ``1/q``, mean 1), so
  the error a rank keeps after learning ``s`` is the Laplace transform
  :math:`(1 + q s)^{-1/q}` (:func:`remaining`) instead of :math:`e^{-s}`, in the bias and in
  the learned fraction of the noise coupling alike; ``q ∈ [0, 4]`` (the field ``dispersion``;
  ``q = 0`` is ``transfer``). A sharp :math:`e^{-s}` makes the learning frontier abrupt in rank:
  the 10 %-to-90 %-learned transition spans a factor of about 22 in ``s``, against about 80 at
  ``q = 1``, so a larger model's extra ranks beyond the frontier are partly learned for longer.
  On a simulator whose features' rates carry exponential factors (``q = 1``,
  ``simulate.DisjointTailModel(rate_factor=...)``) this variant at the simulator's parameters
  predicts the mean exact loss over the draws to 2.2 % at the median entry, the sharp law 23 %
  (``tests/test_theory_derivation.py``, test 8). On RegMix-1B's held-out split
  (``pilecc_target``, 64 restarts) 2.45 %, the lowest of every law there.
  Across scales on real tables (one fit of 16 restarts; ``real_extrapolation`` has not fitted
  it yet): SlimPajama-7 122M + 310M → 680M MRE
  2.67 % with ``q = 0.91`` fitted, against 3.31 % for ``transfer`` at the same settings (joint
  1.38 %, additive 1.82 % at 64 restarts); Pile-4 → 200M/8B 2.58 % against ``transfer``'s
  2.25 % (that fit not converged).
* ``"offset"``: ``transfer`` with the shared ranks placed in rank order, ``4K + 7``
  parameters: of a domain's first ``t`` tail ranks, ``n(t) = clip(ρt + ψ, 0, t)`` are shared
  (``ψ``, the field ``psi``, in features; ``ψ = 0`` is ``transfer``, whose ``ρt`` spreads the
  shared fraction over every rank). Where the top tail ranks carry most of the loss, which of
  them are shared matters: a shared rank is learned at the summed rate, an own one at the
  domain's own share only, so a rare domain's loss turns on it. ``ψ < 0``: the first
  ``t_c = −ψ/ρ`` tail ranks are all own, then a fraction ``ρ`` is shared; ``ψ > 0``: the first
  ``t_c = ψ/(1 − ρ)`` are all shared. Domain ``i``'s tail terms are ``transfer``'s plus
  ``κ`` times (own minus shared) terms on the tail's first ``t_c`` ranks, ``κ = ρ`` (``ψ < 0``)
  or ``−(1 − ρ)`` (``ψ > 0``), so ``κ t_c = −ψ``: value and first derivative continuous at
  ``ψ = 0``. Range ``ψ ∈ [−1, 1]``: shared ranks spaced evenly in any placement are within one
  rank of ``ρt`` (the simulator's ``⌊ρt + φ⌋`` averages ``ρt + φ − 1/2``: ``ψ = φ − 1/2``, so
  ``ψ = −1/2`` at its default placement, where a domain's first tail rank is its own). The
  allocation is ``transfer``'s (its shared count at ``ρ``).

Kinks: the allocation's head floors, the exact top ranks' piecewise-linear weights and the
switch to the continuum make the prediction non-differentiable on a few surfaces of parameter
space, where fits can stop unconverged; :meth:`SpectralLaw.smoothed` gives the laws the fitter's
kink continuation passes through (``fit(smooth_kinks=True)``).

Units: ``N``, ``H`` and ``ν`` in the law units of ``N``; ``D`` in law units of tokens. ``η < 1/2``
(a sigmoid), since the noise floor needs ``2η a < 1`` at the top rank ``a = 1``.

Zero weights: ``h_i = 0`` keeps the head (``x_i = H``) and learns it from the other domains; the
own tail is unlearned, so the loss is finite without any floor.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._allocation import (
    is_exact,
    log_allocation,
    log_floor_gap,
    log_shared_allocation,
    log_shared_floor_gap,
)
from .._allocation import smooth_max as _smooth_max
from .._linalg import solve_small
from ._base import AbstractLaw, DataSummary
from ._registry import register_law
from ._terms import (
    EXPONENT_RANGE,
    check_mixture,
    check_smoothing,
    check_variant_fields,
    in_mixture_targets,
    log_range,
    log_uniform,
    uniform,
)

__all__ = ["SpectralLaw", "rank_nodes"]

VARIANTS = ("full", "linear", "tied", "transfer", "dispersed", "offset")

#: Ranks summed exactly before the midpoint rule takes over (the top ranks carry the largest
#: eigenvalues, where a continuum is worst).
N_DISCRETE = 3
#: The smallest SGD noise strength ``η`` a fit may reach: the law without noise coupling, to
#: about 1e-7 of the loss (:meth:`SpectralLaw.parameter_bounds`).
ETA_MIN = 1e-9
#: Gauss–Legendre nodes of the continuum part of each rank integral: a cost/accuracy choice (a
#: fit's cost is mostly the forward-mode Jacobian over these nodes). ``tests/test_spectral.py``
#: holds the loss within 1e-5 relative of a 200-node reference at the linear theory's values.
N_NODES = 16


@functools.cache
def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n``-point Gauss–Legendre nodes and weights on ``[-1, 1]``."""
    return np.polynomial.legendre.leggauss(n)


#: Each variant's fitted parameters: natural name -> raw field.
PARAMETERS = {
    "full": {"b": "log_b", "c": "log_c", "alpha": "log_alpha_minus_1", "E": "E", "H": "log_H",
             "nu": "log_nu", "delta": "log_delta", "eta": "eta_logit", "theta": "theta"},
    "linear": {"b": "log_b", "c": "log_c", "alpha": "log_alpha_minus_1", "E": "E",
               "H": "log_H", "nu": "log_nu", "delta": "log_delta", "eta": "eta_logit"},
    "tied": {"alpha": "log_alpha_minus_1", "beta": "log_beta", "E": "E", "H": "log_H",
             "nu": "log_nu", "delta": "log_delta", "eta": "eta_logit"},
    "transfer": {"b": "log_b", "c": "log_c", "alpha": "log_alpha_minus_1", "E": "E",
                 "H": "log_H", "nu": "log_nu", "delta": "log_delta", "eta": "eta_logit",
                 "theta": "theta", "rho": "rho"},
}
PARAMETERS["dispersed"] = {**PARAMETERS["transfer"], "dispersion": "dispersion"}
PARAMETERS["offset"] = {**PARAMETERS["transfer"], "psi": "psi"}
#: The range of the shared ranks' offset ``ψ`` (features; ``"offset"`` variant, module docstring).
OFFSET_RANGE = (-1.0, 1.0)


def remaining(s, q):
    r"""The error left on a rank after learning ``s``: :math:`e^{-s}` for one eigen-direction
    (``q = 0``); for a rank that bundles directions whose rates are Gamma-distributed around
    the power law (shape ``1/q``, mean 1), the Laplace transform :math:`(1 + q s)^{-1/q}`."""
    if q is None:
        return jnp.exp(-s)
    small = q < 1e-6
    q_safe = jnp.where(small, 1.0, q)
    return jnp.exp(-jnp.where(small, s - 0.5 * q * s * s, jnp.log1p(q_safe * s) / q_safe))


def _smooth_min(x, ceiling, smoothing: float):
    """``min(x, ceiling)``, smoothed as :func:`mixscale._allocation.smooth_max` for
    ``smoothing > 0``."""
    if is_exact(smoothing):
        return jnp.minimum(x, ceiling)
    return -_smooth_max(-x, -ceiling, smoothing)


def rank_nodes(lo: jax.Array, hi: jax.Array,
               smoothing: float = 0.0) -> tuple[jax.Array, jax.Array]:
    r"""Ranks ``u`` and weights ``w`` with :math:`\sum w f(u) \approx \sum_{\text{ranks in }[lo,
    hi]} f` for a smooth ``f``, over the position interval ``[lo, hi]`` (features, ``lo <= hi``).

    The first :data:`N_DISCRETE` ranks ``m`` are exact points weighted by the length of
    ``[m-1, m] ∩ [lo, hi]``; beyond, ``∫ f(p + 1/2) dp`` by Gauss–Legendre in ``log(p + 1/2)``.
    Returns two arrays of shape ``(N_DISCRETE + N_NODES,)``; differentiable in ``lo`` and ``hi``
    except where either crosses an integer position ``≤ N_DISCRETE`` (the weights are piecewise
    linear); ``smoothing = τ > 0`` replaces every ``max``/``min`` by its softplus smoothing of
    temperature ``τ`` (positions in features), so the weights are smooth everywhere.
    (The node count is read when the law is traced.)
    """
    gl_x, gl_w = _gauss_legendre(N_NODES)
    m = jnp.arange(1, N_DISCRETE + 1, dtype=jnp.result_type(lo, hi, float))
    w_disc = _smooth_max(_smooth_min(hi, m, smoothing) - _smooth_max(lo, m - 1.0, smoothing),
                         0.0, smoothing)
    t0 = jnp.log(_smooth_max(lo, N_DISCRETE, smoothing) + 0.5)
    t1 = jnp.log(_smooth_max(hi, N_DISCRETE, smoothing) + 0.5)
    half = 0.5 * (t1 - t0)
    u = jnp.exp(t0 + half * (jnp.asarray(gl_x) + 1.0))
    w = jnp.asarray(gl_w) * half * u
    return jnp.concatenate([m, u]), jnp.concatenate([w_disc, w])


def _tail_beyond(lo, b, omega, smoothing: float = 0.0):
    r""":math:`\sum_{\text{ranks} > lo} \omega u^{-b-1}`: exact top ranks, then the midpoint
    integral :math:`\omega (\max(lo, R) + 1/2)^{-b} / b` (``smoothing`` as in
    :func:`rank_nodes`)."""
    m = jnp.arange(1, N_DISCRETE + 1, dtype=jnp.result_type(lo, float))
    # the weight is at most 1 already: m − max(lo, m − 1) ≤ 1
    w_disc = _smooth_max(m - _smooth_max(lo, m - 1.0, smoothing), 0.0, smoothing)
    disc = jnp.sum(w_disc * jnp.exp(-(b + 1.0) * jnp.log(m)))
    cont = jnp.exp(-b * jnp.log(_smooth_max(lo, N_DISCRETE, smoothing) + 0.5)) / b
    return omega * (disc + cont)


def _own_tail_terms(z, eta, smoothing: float = 0.0):
    r"""Bias, noise integral and unkept loss of one domain's own tail, from
    ``z = (lo, hi, b, α, ω, h, r)`` ``(7,)`` (``r``: learning per unit rate, :math:`δ (N/ν)^θ D`):

    .. math::

        \Big(\sum_{lo<u\le hi} \omega u^{-b-1} e^{-r h u^{-\alpha}},\;
        \sum_{lo<u\le hi} \frac{u^{-\alpha}(1 - e^{-r h u^{-\alpha}})}{1 - 2\eta u^{-\alpha}},\;
        \sum_{u>hi} \omega u^{-b-1}\Big)
    """
    lo, hi, b, alpha, omega, h, rate = (z[i] for i in range(7))
    q = z[7] if z.shape[0] > 7 else None
    u, w = rank_nodes(lo, hi, smoothing)
    log_u = jnp.log(u)
    a = jnp.exp(-alpha * log_u)
    left = remaining(rate * h * a, q)
    bias = jnp.sum(w * omega * jnp.exp(-(b + 1.0) * log_u) * left)
    noise = jnp.sum(w * a * (1.0 - left) / (1.0 - 2.0 * eta * a))
    return jnp.stack([bias, noise, _tail_beyond(hi, b, omega, smoothing)])


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _own_tail(z, eta, smoothing):
    """:func:`_own_tail_terms` as three scalars, with a compressed forward derivative.

    Its forward derivative is the ``(3, 8)`` Jacobian in its own inputs (eight JVPs, computed once)
    applied to the incoming tangents: an outer forward-mode Jacobian in the law's ``4K + 5``
    parameters then costs eight JVPs of the tail per domain instead of ``4K + 5``. Values and
    derivatives are those of :func:`_own_tail_terms`; the rule is linear in the tangents, so
    reverse mode works through it too.
    """
    out = _own_tail_terms(z, eta, smoothing)
    return out[0], out[1], out[2]


@_own_tail.defjvp
def _own_tail_jvp(smoothing, primals, tangents):
    z, eta = primals
    dz, deta = tangents
    x = jnp.concatenate([z, eta[None]])

    def terms(x):
        return _own_tail_terms(x[:-1], x[-1], smoothing)

    out, lin = jax.linearize(terms, x)
    jac = jax.vmap(lin, out_axes=1)(jnp.eye(x.shape[0], dtype=x.dtype))      # (3, 8)
    d_out = jac @ jnp.concatenate([dz, jnp.reshape(deta, (1,))])
    return (out[0], out[1], out[2]), (d_out[0], d_out[1], d_out[2])


def _summed_rate_terms(lo, hi, h, b, alpha, omega, rate, eta, q=None, smoothing: float = 0.0):
    r"""Bias ``(K,)`` and noise coupling ``(K, K)`` of ranks on ``[lo, hi]`` (features) that every
    domain uses and teaches (the head; shared tail ranks):

    .. math::

        B_i = \sum_u \omega_i u^{-b_i-1} e^{-r T(u)},\qquad
        M_{ij} = h_j \sum_u \frac{a_i a_j (1 - e^{-r T})}{T - 2\eta Q},

    :math:`T = \sum_j h_j a_j`, :math:`Q = \sum_j h_j a_j^2`, the rank sums as in
    :func:`rank_nodes` (also for ``smoothing``)."""
    u, w = rank_nodes(lo, hi, smoothing)
    log_u = jnp.log(u)
    a = jnp.exp(-alpha[:, None] * log_u[None, :])                 # (K, n)
    T = h @ a
    Q = h @ (a * a)
    left = remaining(rate * T, q)
    f = omega[:, None] * jnp.exp(-(b[:, None] + 1.0) * log_u[None, :])
    bias = f @ (w * left)
    g = w * (1.0 - left) / (T - 2.0 * eta * Q)
    # M_ij = h_j Σ_u a_i(u) a_j(u) g(u) as one matrix product (a g) aᵀ: forming the K × K × n
    # tensor of products first made the fit's Jacobian twice as costly.
    return bias, ((a * g[None, :]) @ a.T) * h[None, :]


# A candidate: fitted, saved and tested like every law, but not yet in the experiments' law lists
# (their committed results do not include it; see mixscale.laws._registry).
@register_law(candidate=True)
class SpectralLaw(AbstractLaw):
    """Capacity allocation + rank-by-rank SGD learning with shared-head transfer and noise
    coupling; formula, parameters and variants in the module docstring.

    Attributes:
        targets: training-domain index of each of the ``M`` targets (static).
        variant: ``"full"``, ``"linear"``, ``"tied"``, ``"transfer"``, ``"dispersed"`` or
            ``"offset"`` (static).
        kink_smoothing: ``0`` for the law; ``τ > 0`` in its smoothed versions (:meth:`smoothed`;
            static), unless ``kink_smoothing_value`` holds ``τ`` as a 0-d array.
    """

    name: ClassVar[str] = "spectral"
    uses_scale: ClassVar[bool] = True
    variants: ClassVar[tuple[str, ...]] = VARIANTS
    # Every parameter reaches every target: E_i and the spectra feed the SGD noise of all
    # domains, and b, c, α the shared allocation and head.
    per_target_fields: ClassVar[tuple[str, ...]] = ()
    # 4K + 5 shared parameters against at most K targets: one run's Jacobian is cheaper by
    # reverse mode (K backward passes) than by forward mode (4K + 5 tangents).
    row_jacobian: ClassVar[str] = "reverse"

    log_alpha_minus_1: jax.Array
    E: jax.Array
    log_H: jax.Array
    log_nu: jax.Array
    log_delta: jax.Array
    eta_logit: jax.Array
    log_b: jax.Array | None = None
    log_c: jax.Array | None = None
    theta: jax.Array | None = None
    rho: jax.Array | None = None
    log_beta: jax.Array | None = None
    dispersion: jax.Array | None = None
    psi: jax.Array | None = None
    targets: tuple[int, ...] = eqx.field(static=True, default=())
    variant: str = eqx.field(static=True, default="full")
    kink_smoothing: float = eqx.field(static=True, default=0.0)
    #: the temperature as a value instead (:meth:`smoothed` of a JAX array), else ``None``
    kink_smoothing_value: jax.Array | None = None

    def __check_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; choose one of {VARIANTS}")
        check_smoothing(self.kink_smoothing)
        k = jnp.shape(self.log_alpha_minus_1)
        check_variant_fields(self, PARAMETERS[self.variant].values(),
                             ("log_b", "log_c", "theta", "rho", "log_beta", "dispersion",
                              "psi"),
                             {"log_b": k, "log_c": k, "log_alpha_minus_1": k, "E": k})
        if len(k) != 1 or not all(0 <= t < k[0] for t in self.targets):
            raise ValueError(f"targets {self.targets} must index the {k} training domains")

    # ----------------------------------------------------------- natural parameters
    @property
    def alpha(self) -> jax.Array:
        """Spectral exponents ``α_i > 1`` ``(K,)``: rank ``u`` has eigenvalue ``u^(-α_i)``."""
        return 1.0 + jnp.exp(self.log_alpha_minus_1)

    @property
    def beta(self) -> jax.Array:
        """Source exponent ``β`` (tied variant only)."""
        return jnp.exp(self.log_beta)

    @property
    def b(self) -> jax.Array:
        """Capacity exponents ``(K,)``; tied: ``α + β − 1``."""
        if self.variant == "tied":
            return self.alpha + self.beta - 1.0
        return jnp.exp(self.log_b)

    @property
    def c(self) -> jax.Array:
        """Capacity amplitudes ``(K,)`` (loss beyond rank ``x`` is ``c x^(-b)``); tied:
        ``ν^b / b``."""
        if self.variant == "tied":
            b = self.b
            return jnp.exp(b * self.log_nu) / b
        return jnp.exp(self.log_c)

    @property
    def H(self) -> jax.Array:
        """Shared head (units of ``N``)."""
        return jnp.exp(self.log_H)

    @property
    def nu(self) -> jax.Array:
        """Units of ``N`` per feature."""
        return jnp.exp(self.log_nu)

    @property
    def delta(self) -> jax.Array:
        """Learning per unit of ``D`` (``2γ`` per SGD sample in the simulator)."""
        return jnp.exp(self.log_delta)

    @property
    def eta(self) -> jax.Array:
        """SGD noise strength ``η ∈ (0, 1/2)`` (``γ/2`` for batch 1 in the simulator)."""
        return 0.5 * jax.nn.sigmoid(self.eta_logit)

    @property
    def sample_efficiency(self) -> jax.Array:
        """``θ``: learning per token grows as ``(N/ν)^θ`` (0 for the linear variants)."""
        return jnp.zeros(()) if self.theta is None else self.theta

    @property
    def tail_overlap(self) -> jax.Array:
        """``ρ``: the fraction of own-tail ranks shared with every domain (0 unless
        ``"transfer"``)."""
        return jnp.zeros(()) if self.rho is None else self.rho

    @property
    def n_train_domains(self) -> int:
        """``K``, the number of training domains."""
        return int(np.shape(self.log_alpha_minus_1)[0])

    def smoothed(self, smoothing: float) -> SpectralLaw:
        """This law with its kinks smoothed at temperature ``smoothing`` (``0``: the exact law),
        for the fitter's kink continuation (:func:`mixscale.fit`, ``smooth_kinks``).

        The exact law's prediction has kinks: the allocation's head floors ``max(log H, ·)``
        (of the own ranks and, with ``ρ``, of the shared rank ``x_s``), the exact top ranks'
        weights (piecewise linear in the interval's ends, :func:`rank_nodes`), the switch to
        the continuum at :data:`N_DISCRETE`, ``min(H, N)`` and the own tail's start
        ``max(x_i, H)``. Fits stop on them unconverged (measured: restarts stopped at
        ``H/ν = 1`` exactly). Smoothed, each ``max``/``min`` is its softplus smoothing of
        temperature ``τ``: in log units for the floors and ``min(H, N)``, in features for the
        rank positions. Parameters are shared with the exact law.

        ``smoothing`` may be a 0-d JAX array (a positive temperature): it is then held as a
        value, not in the law's static structure, so that laws smoothed at different
        temperatures share their compiled programs (the continuation's stages do)."""
        tau = check_smoothing(smoothing)
        if isinstance(tau, jax.Array):
            return dataclasses.replace(self, kink_smoothing=0.0, kink_smoothing_value=tau)
        return dataclasses.replace(self, kink_smoothing=tau, kink_smoothing_value=None)

    @property
    def _smoothing(self):
        """The kinks' temperature: the value if one is held, else the static number."""
        return (self.kink_smoothing if self.kink_smoothing_value is None
                else self.kink_smoothing_value)

    def kink_gaps(self, h: jax.Array, N: jax.Array, D: jax.Array) -> jax.Array:
        """Signed gaps ``(2K + 2,)`` (``(2K + 4,)`` with shared tail ranks, ``(3K + 6,)`` with
        their offset) of run ``(h, N, D)``
        from the prediction's kinks (:meth:`smoothed` lists them), for the fitter's kink
        certificate (:mod:`mixscale._kinks`):

        * the allocation's head floors: ``log x_i^{free} − log H`` per domain
          (:func:`mixscale._allocation.log_floor_gap`; with ``ρ``,
          :func:`mixscale._allocation.log_shared_floor_gap`, whose last gap is the shared
          rank's floor ``log x_s − log H``); ``inf`` for zero weights;
        * ``min(H, N)``: ``log H − log N``;
        * the exact top ranks: each interval end that the rank sums read — the head's end
          ``u_H = min(H, N)/ν``, each own tail's end ``u_i = (x_i − H + min(H, N))/ν`` (and
          ``u_s`` with ``ρ``, and the offset's end ``u_H + t_c`` with ``ψ``) — minus the
          nearest rank ``1 … N_DISCRETE`` (``inf`` beyond ``N_DISCRETE + 1/2``): the weights
          of :func:`rank_nodes` are piecewise linear in them, with kinks at those integers
          (the switch to the continuum included);
        * with ``ψ``, the offset's end against each tail's end: ``u_H + t_c − u_i`` per domain
          and ``u_H + t_c − u_s`` (the sums over the tail's first ``t_c`` ranks stop at
          ``min(u_H + t_c, u)``); ``inf`` for a tail on its head floor (``u = u_H``), which has
          no such kink. Without these a fit that ends where a domain's kept tail is exactly
          ``t_c`` ranks long goes uncertified: found on an ``extrapolation_sim`` fit, whose
          one-sided derivatives in ``ψ`` there were ``2.2e-6`` and ``−6.0e-7`` (a V) while
          every listed gap was far from zero.

        A domain on its floor has ``u_i = u_H``: its end repeats the head's gap. ``D`` enters no
        kink."""
        del D
        h = check_mixture(h, self.n_train_domains, N)
        if self.rho is not None:
            floors = log_shared_floor_gap(h, self.b, self.c, N, self.H, self.tail_overlap)
            x, x_s = self.shared_allocation(h, N)
        else:
            floors = log_floor_gap(h, self.b, self.c, N, self.H)
            x = self.allocation(h, N)
        head = jnp.minimum(self.H, N)
        ends = [head[None] / self.nu, (x - self.H + head) / self.nu]
        if self.rho is not None:
            ends.append(((x_s - self.H + head) / self.nu)[None])
        if self.psi is not None:
            ends.append((head / self.nu + self._offset()[1])[None])
        ends = jnp.concatenate(ends)
        rank = jax.lax.stop_gradient(jnp.round(ends))
        on_grid = (rank >= 1) & (rank <= N_DISCRETE)
        gaps = [floors, (self.log_H - jnp.log(N))[None], jnp.where(on_grid, ends - rank, jnp.inf)]
        if self.psi is not None:
            # The offset's end meets a tail's end: min(u_H + t_c, u) in the sums over the first
            # t_c ranks, for each own tail u_i and the shared one u_s. A tail on its head floor
            # (u = u_H) has no such kink (its own ranks start beyond every t_c ≥ 0).
            u_head, tails, end = ends[0], ends[1:-1], ends[-1]  # u_H; u_i (K,), u_s; u_H + t_c
            gaps.append(jnp.where(tails > u_head, end - tails, jnp.inf))
        return jnp.concatenate(gaps)

    def _offset(self) -> tuple[jax.Array, jax.Array]:
        """``(κ, t_c)`` of the ``"offset"`` variant (module docstring): the extra own-rank
        density ``κ`` on the tail's first ``t_c`` ranks (features), ``κ t_c = −ψ``."""
        rho, psi = self.rho, self.psi
        tiny = 1e-12  # ρ = 0 (or 1) has κ = 0: any finite t_c then gives the same loss
        t_c = jnp.where(psi < 0, -psi / jnp.maximum(rho, tiny), psi / jnp.maximum(1 - rho, tiny))
        kappa = jnp.where(psi < 0, rho, rho - 1.0)
        return kappa, t_c

    # ------------------------------------------------------------------ prediction
    def allocation(self, h: jax.Array, N: jax.Array) -> jax.Array:
        """The capacity allocation ``x*(h, N)``, shape ``(K,)`` (units of ``N``)."""
        return jnp.exp(log_allocation(h, self.b, self.c, N, self.H, self._smoothing))

    def shared_allocation(self, h: jax.Array, N: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(x, x_s)``: own ranks kept per domain ``(K,)`` and the last shared tail rank kept
        ``()`` when a fraction ``ρ`` of tail ranks is shared (:func:`mixscale.
        log_shared_allocation`; units of ``N``)."""
        log_x, log_s = log_shared_allocation(h, self.b, self.c, N, self.H, self.tail_overlap,
                                             self._smoothing)
        return jnp.exp(log_x), jnp.exp(log_s)

    def components(self, h: jax.Array, N: jax.Array, D: jax.Array) -> dict[str, jax.Array]:
        """The pieces of the formula for every training domain: ``x`` (allocation; with
        ``"transfer"`` also ``x_shared``, the last shared tail rank kept), ``U``
        (unkept ranks), ``B_head``, ``B_tail`` (bias of kept ranks), ``M`` ``(K, K)`` (noise
        coupling), ``own = E + U + B`` and ``loss`` ``(K,)``."""
        h = check_mixture(h, self.n_train_domains, N, D)
        b, c, alpha, nu, eta = self.b, self.c, self.alpha, self.nu, self.eta
        shares = self.rho is not None  # a fraction of tail ranks is shared
        q = self.dispersion
        if shares:
            x, x_s = self.shared_allocation(h, N)
        else:
            x = self.allocation(h, N)
        tau = self._smoothing
        # A model smaller than the head keeps only N of it (the allocation then gives x_i = H).
        head = (jnp.minimum(self.H, N) if is_exact(tau)
                else jnp.exp(_smooth_min(self.log_H, jnp.log(N), tau)))
        u_head = head / nu
        u_x = (x - self.H + head) / nu
        omega = b * c * jnp.exp(-b * self.log_nu)
        rate = self.delta * D * jnp.exp(self.sample_efficiency * (jnp.log(N) - self.log_nu))

        # Shared head: taught by every domain at the summed rate T, noise fed by every domain.
        b_head, m_head = _summed_rate_terms(jnp.zeros_like(u_head), u_head, h, b, alpha, omega,
                                            rate, eta, q, tau)
        # Own tails: taught by the domain's own share only.
        columns = (u_head, _smooth_max(u_x, u_head, tau), b, alpha, omega, h, rate)
        columns += () if q is None else (q,)
        inputs = jnp.stack(jnp.broadcast_arrays(*columns), axis=-1)        # (K, 7) or (K, 8)
        b_tail, m_tail, unkept = jax.vmap(lambda z, e: _own_tail(z, e, tau),
                                          in_axes=(0, None))(inputs, eta)
        m_tail = jnp.diag(m_tail)
        out = {"x": x}
        if shares:
            # A fraction ρ of tail ranks is shared: kept up to x_s, taught like the head.
            rho = self.rho
            u_s = _smooth_max((x_s - self.H + head) / nu, u_head, tau)
            b_shared, m_shared = _summed_rate_terms(u_head, u_s, h, b, alpha, omega, rate, eta,
                                                    q, tau)

            def beyond(lo):
                """Each domain's unkept loss beyond tail end ``lo`` (``()`` or ``(K,)``)."""
                return jax.vmap(lambda l, bb, om: _tail_beyond(l, bb, om, tau))(
                    jnp.broadcast_to(lo, b.shape), b, omega)

            unkept_shared = beyond(u_s)
            if self.psi is not None:
                # The tail's first t_c ranks: own density 1 − ρ + κ, shared ρ − κ (offset).
                kappa, t_c = self._offset()
                end = u_head + t_c
                u_own = _smooth_max(u_x, u_head, tau)
                columns = (u_head, _smooth_min(end, u_own, tau), b, alpha, omega, h, rate)
                inputs = jnp.stack(jnp.broadcast_arrays(*columns), axis=-1)
                b_own_c, m_own_c, _ = jax.vmap(lambda z, e: _own_tail(z, e, tau),
                                               in_axes=(0, None))(inputs, eta)
                b_sh_c, m_sh_c = _summed_rate_terms(u_head, _smooth_min(end, u_s, tau), h, b,
                                                    alpha, omega, rate, eta, q, tau)
                unkept_own_c = unkept - beyond(_smooth_max(u_own, end, tau))
                unkept_sh_c = unkept_shared - beyond(_smooth_max(u_s, end, tau))
            unkept = (1.0 - rho) * unkept + rho * unkept_shared
            b_tail = (1.0 - rho) * b_tail + rho * b_shared
            m_tail = (1.0 - rho) * m_tail + rho * m_shared
            if self.psi is not None:
                unkept = unkept + kappa * (unkept_own_c - unkept_sh_c)
                b_tail = b_tail + kappa * (b_own_c - b_sh_c)
                m_tail = m_tail + kappa * (jnp.diag(m_own_c) - m_sh_c)
            out["x_shared"] = x_s
        own = self.E + unkept + b_head + b_tail
        m = m_head + m_tail
        # I − ηM is a nonsingular M-matrix wherever the law is defined (M ≥ 0 entrywise, and
        # ρ(ηM) < 1 for finite positive losses): elimination needs no pivoting there.
        loss = solve_small(jnp.eye(m.shape[0], dtype=m.dtype) - eta * m, own, pivoting=False)
        return out | {"U": unkept, "B_head": b_head, "B_tail": b_tail, "M": m, "own": own,
                      "loss": loss}

    def predict(self, h: jax.Array, N: jax.Array, D: jax.Array) -> jax.Array:
        """Losses ``(M,)`` of the targets for mixture ``h`` ``(K,)``, size ``N``, tokens ``D``."""
        return self.components(h, N, D)["loss"][jnp.asarray(self.targets)]

    def natural_parameters(self) -> dict[str, jax.Array]:
        """The variant's fitted parameters in natural units (names of :data:`PARAMETERS`)."""
        out = {}
        special = {"theta": self.sample_efficiency, "rho": self.tail_overlap}  # psi: its field
        for name in PARAMETERS[self.variant]:
            out[name] = special[name] if name in special else getattr(self, name)
        return out

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_params(cls, *, targets: Sequence[int] | None = None, variant: str = "full",
                    **params) -> SpectralLaw:
        """A law from natural parameters, by the names of :data:`PARAMETERS` (``alpha > 1``,
        ``0 < eta < 1/2``, ``0 <= rho <= 1``, ``psi`` in :data:`OFFSET_RANGE`, ``E`` and
        ``theta`` any real, the rest positive)."""
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
        wanted = PARAMETERS[variant]
        extra = sorted(set(params) - set(wanted))
        missing = [p for p in wanted if params.get(p) is None]
        if extra or missing:
            raise ValueError(f"variant {variant!r} takes parameters {list(wanted)}; "
                             f"missing {missing}, unknown {extra}")
        p = {k: jnp.asarray(v, dtype=float) for k, v in params.items()}
        if not bool(jnp.all(p["alpha"] > 1.0)):
            raise ValueError(f"parameter 'alpha' must be > 1, got {params['alpha']!r}")
        if not bool(jnp.all((p["eta"] > 0) & (p["eta"] < 0.5))):
            raise ValueError(f"parameter 'eta' must lie in (0, 1/2), got {params['eta']!r}")
        if "rho" in p and not bool(jnp.all((p["rho"] >= 0) & (p["rho"] <= 1))):
            raise ValueError(f"parameter 'rho' must lie in [0, 1], got {params['rho']!r}")
        lo, hi = OFFSET_RANGE
        if "psi" in p and not bool(jnp.all((p["psi"] >= lo) & (p["psi"] <= hi))):
            raise ValueError(f"parameter 'psi' must lie in [{lo:g}, {hi:g}], "
                             f"got {params['psi']!r}")
        for name in ("b", "c", "H", "nu", "delta", "beta"):
            if name in p and not bool(jnp.all(p[name] > 0)):
                raise ValueError(f"parameter {name!r} must be positive, got {params[name]!r}")
        fields = {"log_alpha_minus_1": jnp.log(p["alpha"] - 1.0), "E": p["E"],
                  "log_H": jnp.log(p["H"]), "log_nu": jnp.log(p["nu"]),
                  "log_delta": jnp.log(p["delta"]),
                  "eta_logit": jnp.log(2 * p["eta"]) - jnp.log1p(-2 * p["eta"])}
        if variant == "tied":
            fields["log_beta"] = jnp.log(p["beta"])
        else:
            fields.update(log_b=jnp.log(p["b"]), log_c=jnp.log(p["c"]))
        fields.update({name: p[name] for name in ("theta", "rho", "dispersion", "psi")
                       if name in PARAMETERS[variant]})
        k = fields["E"].shape[0]
        targets = tuple(range(k)) if targets is None else tuple(int(t) for t in targets)
        return cls(targets=targets, variant=variant, **fields)

    @classmethod
    def targets_for(cls, train_domains, loss_domains, **options) -> tuple[str, ...]:
        """In-mixture loss domains only: a domain's loss is built from its own spectrum."""
        return in_mixture_targets(train_domains, loss_domains)

    @classmethod
    def n_parameters(cls, n_train_domains: int, n_targets: int, *,
                     variant: str = "full") -> int:
        """``4K + 5`` (full), ``4K + 4`` (linear), ``2K + 5`` (tied), ``4K + 6`` (transfer),
        ``4K + 7`` (dispersed, offset), whatever ``M``."""
        del n_targets
        k = n_train_domains
        return {"full": 4 * k + 5, "linear": 4 * k + 4, "tied": 2 * k + 5,
                "transfer": 4 * k + 6, "dispersed": 4 * k + 7, "offset": 4 * k + 7}[variant]

    @classmethod
    def parameter_bounds(cls, summary: DataSummary, *,
                         variant: str = "full") -> dict[str, tuple[float, float]]:
        """``b ∈`` :data:`~mixscale.laws._terms.EXPONENT_RANGE`; ``α − 1 ∈ [0.01, 2]`` (spectra
        ``u^(−α)`` with ``1 < α ≤ 3``); ``β ∈ [0.01, 1]``; the head ``H ∈ [10⁻³ N_min, N_max]``
        (a model smaller than the head keeps ``N`` of it, so the data can show a head larger
        than the smallest model, not one larger than the largest); a feature
        ``ν ∈ [10⁻⁴, 1]·N_min`` (the smallest model holds at least one); ``θ ∈ [0, 1]`` (a
        larger model learns no slower per token, and at most in proportion to its size);
        ``ρ ∈ [0, 1]`` (a fraction); the shared ranks' offset ``ψ ∈`` :data:`OFFSET_RANGE`
        (module docstring); the rank dispersion ``q ∈ [0, 4]`` (a Gamma shape of at
        least 1/4: a rank's rates spread over no more than a few orders of magnitude); ``E``
        within ``±`` the largest loss (the label noise less the rank integral beyond the last
        feature, which can exceed it); the noise strength ``η ≥`` :data:`ETA_MIN` (``10⁻⁹``):
        every entry of ``M`` is a rank sum of at most ``Σ_u u^(−α) ≤ ζ(1.01) ≈ 100``, so below
        it the coupling ``ηM`` moves no loss by more than
        about ``10⁻⁷`` relative: ``η = ETA_MIN`` is the law without noise coupling, which fits
        otherwise reached only as ``η → 0``, its logit drifting without end (measured:
        ``η = 5·10⁻¹⁴`` on Pile-4, the fit unconverged)."""
        n_min, n_max = summary.model_size
        big = float(np.max(summary.loss_max))
        bounds = {"log_alpha_minus_1": log_range(0.01, 2.0), "E": (-big, big),
                  "log_H": log_range(1e-3 * n_min, n_max), "log_nu": log_range(1e-4 * n_min,
                                                                               n_min),
                  "eta_logit": (float(np.log(2 * ETA_MIN) - np.log1p(-2 * ETA_MIN)), np.inf)}
        if variant == "tied":
            bounds["log_beta"] = log_range(0.01, 1.0)
        else:
            bounds["log_b"] = log_range(*EXPONENT_RANGE)
        ranges = {"theta": (0.0, 1.0), "rho": (0.0, 1.0), "dispersion": (0.0, 4.0),
                  "psi": OFFSET_RANGE}
        bounds.update({name: r for name, r in ranges.items() if name in PARAMETERS[variant]})
        return bounds

    @classmethod
    def nested(cls, *, variant: str = "full") -> tuple:
        """``offset`` nests ``transfer`` exactly (at ``ψ = 0``); no other embedding is declared
        (``linear`` is ``full`` at ``θ = 0``)."""
        if variant == "offset":
            return (({"variant": "transfer"},
                     lambda law: dataclasses.replace(law, variant="offset",
                                                     psi=jnp.zeros_like(law.rho))),)
        return ()

    @classmethod
    def init(cls, key, summary: DataSummary, *, variant: str = "full") -> SpectralLaw:
        """A random initial law for one restart, scaled to the data.

        ``α − 1 ∈ [0.2, 1.5]``, ``b ∈ [0.1, 1.5]`` (tied: ``β ∈ [0.01, 0.5]``) log-uniform;
        ``H ∈ [10⁻³, 0.5]·N_min``, ``ν ∈ [10⁻³, 0.3]·N_min`` log-uniform; ``c`` so that the loss
        beyond the allocation at the middle size is a ``[0.05, 0.5]`` fraction of the mean loss;
        ``δ`` so that the rank at the middle allocation ``N_mid/K`` has ``s ∈ [0.3, 30]`` at the
        middle budget; ``η ∈ [0.01, 0.1]``; ``θ ∈ [0, 0.3]``; ``ρ ∈ [0, 0.5]``;
        ``q ∈ [0, 1]``; ``ψ ∈ [−1/2, 1/2]``; ``E`` a
        ``[0.2, 0.8]`` fraction of the smallest loss.
        """
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
        targets = summary.target_index
        k = len(summary.train_domains)
        keys = jax.random.split(key, 10)
        lo_n, hi_n = summary.model_size
        d_mid = float(np.sqrt(summary.tokens[0] * summary.tokens[1]))
        n_mid = float(np.sqrt(lo_n * hi_n))
        # A training domain without a loss column still feeds the noise: it takes mean scales.
        mid = jnp.asarray(0.5 * (summary.loss_min + summary.loss_max))
        loss = jnp.full(k, jnp.mean(mid)).at[jnp.asarray(targets)].set(mid)
        low = jnp.asarray(summary.loss_min)
        e_scale = jnp.full(k, jnp.mean(low)).at[jnp.asarray(targets)].set(low)
        fields = {
            "log_alpha_minus_1": log_uniform(keys[0], 0.2, 1.5, (k,)),
            "E": uniform(keys[1], 0.2, 0.8, (k,)) * e_scale,
            "log_H": jnp.log(lo_n) + log_uniform(keys[2], 1e-3, 0.5, ()),
            "log_nu": jnp.log(lo_n) + log_uniform(keys[3], 1e-3, 0.3, ()),
            "eta_logit": jax.scipy.special.logit(2 * uniform(keys[5], 0.01, 0.1, ())),
        }
        # δ such that the rank at the middle allocation is partly learned at the middle budget
        # (s = δ D_mid (x_mid/ν)^(-ᾱ) ∈ [0.3, 30]): the top ranks learned, the last not.
        alpha_bar = 1.0 + jnp.mean(jnp.exp(fields["log_alpha_minus_1"]))
        fields["log_delta"] = (log_uniform(keys[4], 0.3, 30.0, ()) - np.log(d_mid)
                               + alpha_bar * (np.log(n_mid / k) - fields["log_nu"]))
        if variant == "tied":
            fields["log_beta"] = log_uniform(keys[6], 0.01, 0.5, ())
        else:
            log_b = log_uniform(keys[6], 0.1, 1.5, (k,))
            frac = uniform(keys[7], 0.05, 0.5, (k,))
            fields.update(log_b=log_b,
                          log_c=jnp.log(frac * loss) + jnp.exp(log_b) * np.log(n_mid / k))
        # dispersion has its own key: the other variants' draws are unchanged
        draws = {"theta": (keys[8], 0.3), "rho": (keys[9], 0.5),
                 "dispersion": (jax.random.fold_in(key, 11), 1.0)}
        fields.update({name: uniform(draw_key, 0.0, hi, ())
                       for name, (draw_key, hi) in draws.items() if name in PARAMETERS[variant]})
        if "psi" in PARAMETERS[variant]:  # its own key too
            fields["psi"] = uniform(jax.random.fold_in(key, 12), -0.5, 0.5, ())
        return cls(targets=targets, variant=variant, **fields)
