r"""The capacity-competition + noise-reduction law of Dai & Zheng (ICML 2026).

For target (loss) domain ``i``, trained on mixture ``h`` with model size ``N`` and ``D`` tokens,

.. math::

    L_i(h, N, D) = c_i\, x_i^*(h, N)^{-b_i} + A_i\, (D\, h_i)^{-a_i} + E_i ,

where :math:`x^*(h, N)` is the exact solution of the capacity-allocation problem
(:func:`mixscale.allocate`): the model spends its capacity ``N + (K-1)H`` on the domains so as to
minimise its mixture-weighted training loss :math:`\sum_j h_j c_j x_j^{-b_j}`, every domain
getting at least the shared head ``H``. The first term is *capacity competition* (domains share a
finite model), the second *noise reduction* (each domain's own data averages out SGD noise).

Variants (one class, the ``variant`` option):

* ``"full"`` (default): free ``b, c`` per training domain, free ``A, a, E`` per target and one
  ``H``: ``2K + 3M + 1`` parameters (``5K + 1`` when every training domain is a target).
* ``"capacity"``: the paper's Eq. 1 at a fixed token budget, ``L_i = c_i x_i^{*-b_i} + E_i``
  (no data term, so no ``D`` dependence): ``2K + M + 1`` parameters.
* ``"tied"``: exponents tied as the theory predicts for a spectrum ``l^{-α_i}`` with source
  exponent ``β``: ``b_i = α_i + β - 1``, ``a_i = b_i / α_i``, and ``c_i = κ^{-b_i} / b_i`` — the
  theory's ``c_i = 1/b_i`` in feature units, with one global ``κ`` converting law units of ``N``
  to features. Free: ``α`` (K), ``β``, ``κ``, ``H``, and ``A, E`` per target: ``K + 2M + 3``.
* ``"decoupled"``: ``full`` with the data term's token and share exponents apart,
  :math:`A_i D^{-a_i} h_i^{-g_i}` (``full`` is ``g_i = a_i``): ``2K + 4M + 1`` parameters.
  Why: the paper's term credits domain ``i`` only with its own tokens ``D h_i``, but the shared
  head is learned from every domain's data (``docs/theory.md``: the head's rate is the
  mixture-summed :math:`\sum_j h_j a_j(u)`, the own tail's :math:`h_i a_i(u)`), so the loss
  falls with the total ``D`` faster than with the share ``h_i``; one exponent cannot hold both.
  On SlimPajama-7 (122M + 310M rows, 16 restarts) ``full`` misfits its own training rows by
  4.5 % (−17 % at the 310M runs' 2B-token checkpoint: its token curve is as flat as its share curve)
  and predicts 680M at 6.6 %; ``decoupled`` fits them to 1.45 % (``a = 0.93–1.13``,
  ``g = 0.01–0.15``) and predicts 680M at 2.1 %.
* ``"transfer"``: ``full`` with the ranks that domains share (``docs/theory.md`` §7) on both
  sides of the law, three mechanisms each of which a shared rank implies:

  .. math::

      L_i = c_i\, x_i^*(h, N;\ H + \eta N)^{-b_i}
            + A_i\, D^{-a_i}\, \tilde h_i^{-\gamma a_i} + E_i, \qquad
      \tilde h_i = h_i + p_i \sum_{j \ne i} p_j h_j .

  *Shared capacity that grows with the model*: every domain gets at least the head
  ``H + ηN`` (with tail overlap the shared part of the kept set grows with ``N``, §7; the
  fixed head ``H`` is ``η = 0``). *Tokens transferred between domains*: a rank that domains
  ``i`` and ``j`` share is learned from both, so domain ``i``'s data term counts ``j``'s tokens
  at the overlap ``S_ij = p_i p_j`` (rank one: ``p_i ≥ 0`` is how much of domain ``i``'s tail is
  in the pool that domains share; ``p = 0`` is the paper's own-share term). *Share exponent a
  fraction of the token exponent*: ``γ ∈ (0, 1]`` (§4: the head, learned from every domain,
  carries a part of each domain's excess loss that falls with ``D`` but not with ``h_i``;
  ``γ = 1`` is the paper's tie). Parameters ``b, c`` (K), ``A, a, E`` (M), ``p`` (K) and
  ``H, η, γ``: ``2K + 3M + K + 3`` (``6K + 3`` when every training domain is a target, within
  the ``6K + 4`` the project allows a law). ``full`` nests in it at ``γ = 1``, ``η → 0``,
  ``p → 0`` (to ``10⁻⁷`` of the loss, at the ranges' lower ends). Fitted with 64 restarts
  (``figures/real_extrapolation.md``, ``figures/compare_laws.md``) it predicts SlimPajama-7's
  680M runs from 122M + 310M at 1.78 % (``decoupled`` 2.08, the joint law 1.38) and is the most
  accurate form of this law within one scale; the size–token coupling of real runs is still
  missing (it under-predicts 680M's first checkpoint by 2.2 %).
* ``"crossover"``: ``transfer`` with its capacity and data terms combined by a power mean
  instead of a sum (``docs/theory.md`` §5):

  .. math::

      L_i = E_i + \big(C_i^{\,q} + B_i^{\,q}\big)^{1/q}, \qquad
      C_i = c_i\, x_i^{*-b_i},\quad B_i = A_i\, D^{-a_i}\, \tilde h_i^{-\gamma a_i},
      \quad q \ge 1 .

  A kept rank that the data have not yet taught is lost like an unkept one, so a domain's
  excess loss is about the *larger* of the capacity limit and the data limit (§5: ranks below
  ``min(x, l_D)`` are learned), not their sum, which counts the ranks between the learning
  frontier ``l_D`` and the kept count ``x`` twice; ``q = 1`` is the sum, ``q → ∞`` the maximum.
  What it changes across scales: under the sum a larger model gains the same absolute loss at
  every budget, under the crossover it gains little while the data limit dominates and more as
  the budget grows (SlimPajama-7: the 310M/122M loss ratio is 0.986 at 2B tokens, 0.939 at
  20B). One shared ``q``: ``3K + 3M + 4`` parameters (``6K + 4`` when every training domain is a
  target). ``transfer`` nests in it at ``q − 1 = 10⁻¹²`` (the lower end of its range, to
  ``10⁻¹²`` of the loss).
* ``"coupled"``: ``crossover`` with a data limit that falls with the model size too
  (``docs/theory.md`` §6, *sample efficiency that grows with the model*): a larger model learns
  more per token, so the data term counts ``N^θ D`` tokens,

  .. math::

      B_i = A_i\, (N^{\theta} D)^{-a_i}\, \tilde h_i^{-\gamma a_i}, \qquad \theta \in [0, 1],

  ``θ = 0`` is ``crossover`` exactly (the linear theory, where a model beyond the learning
  frontier gains nothing per token). In the linear theory and the simulator ``θ = 0``; real
  runs can tell it only from two or more model sizes (at one size ``N^θ`` is a constant that
  ``A`` absorbs). One shared ``θ``: ``3K + 3M + 5`` parameters, ``6K + 5`` when every training
  domain is a target — **one over** the ``6K + 4`` the project allows a law, kept so because
  the budgeted form measured worse: dropping ``H`` (head ``ηN``) misfits
  SlimPajama-7 a little more (its 122M + 310M fit, 16 restarts: objective +0.5 %, 680M
  1.61 % against 1.58 %), dropping ``η`` (head ``H``) misfits Pile-4 (objective +21 % of this
  variant's, 440M 2.72 % against 2.20 %). Fitted with 64 restarts
  (``figures/real_extrapolation.md``): Pile-4 → 200M/8B and → 440M 2.09 / 2.18 % (crossover
  2.26 / 2.71, joint 2.06 / 2.14; ``θ ≈ 0.07``); SlimPajama-7 122M + 310M → 680M 1.58 % as
  crossover (``θ = 0.006``: the crossover already follows that table's size–token coupling);
  from 122M alone, where ``θ`` is a flat direction and pinned at 0, the crossover's 3.00 %
  (3.35 % when it was left free).
* ``"pooled"``: ``crossover`` with the ranks that domains share on the capacity side too
  (``docs/theory.md`` §7): a rank kept for domain ``j`` beyond the head serves domain ``i`` at
  their overlap ``p_i p_j``, so the capacity term sees the pooled kept count

  .. math::

      C_i = c_i\, \tilde x_i^{-b_i}, \qquad
      \tilde x_i = x_i^* + p_i \sum_{j \ne i} p_j\, (x_j^* - H - \eta N) ,

  with the same loadings ``p`` that pool the tokens in the data term and the allocation
  ``x*`` unchanged (the model still spends its capacity by the mixture); the head
  ``H + ηN``, in every domain's kept set already, is not counted twice. In the simulator with
  tail overlap ``ρ`` (``p_i p_j = ρ``) this count follows each domain's kept features to 7–17 %
  with a head of 16 and to 33 % without one, where the own allocation ``x*`` is off by 70–100 %
  (``docs/theory.md`` §7, test 7d). Why: a rare domain
  whose ranks overlap a large one (CommonCrawl beside C4) keeps what the model keeps for its
  neighbour, so it gains from a larger model as that neighbour does, while a rare specialised
  domain (GitHub, ``p`` small) gains only from its own allocation; the crossover gives both
  the same gain. No new parameter: ``3K + 3M + 4`` (``6K + 4``). Fitted with 64 restarts
  (``figures/real_extrapolation.md``): SlimPajama-7 122M + 310M → 680M 1.29 % (crossover 1.58,
  joint 1.38), Pile-4 → 200M/8B 1.92 % (joint 2.06) and → 440M 2.60 % (joint 2.14); from 122M
  alone 3.61 % (crossover 3.00). ``full`` nests in it (``p``,
  ``η``, ``q − 1`` at their lower ends, ``p`` at :data:`POOLED_P_MIN`); ``transfer`` and
  ``crossover`` do not (their fitted ``p`` would pool the capacity).
* ``"pooled_coupled"``: ``pooled`` with the data term at ``N^θ D`` tokens, as ``coupled``:
  ``3K + 3M + 5`` (``6K + 5``, one over the budget, as ``coupled``); ``pooled`` is ``θ = 0``.

Units: ``N`` and ``D`` in the law units of the table (millions of parameters and billions of
tokens for real tables; features and samples for simulated ones). ``H`` is in the units of ``N``.

Zero weights: a target with ``h_i = 0`` gets capacity ``x_i = H`` (finite), and its data term
uses the effective share ``max(h_i, weight_floor)`` (default ``1e-3``, the resolution of RegMix's
published weights), so losses and gradients stay finite. ``weight_floor = 0`` gives the pure
law, whose data term is infinite at ``h_i = 0``. Above the floor the law is exactly the formula.
A known cost of the maximum in the shared-rank variants (``transfer`` and the variants built on
it): their pooled share ``h_i + p_i Σ_{j≠i} p_j h_j`` moves with ``p`` and, where ``h_i = 0``,
crosses the floor, a kink at which fits stop unconverged. On RegMix-1B (sparse mixtures) these
variants' ``compare_laws`` fits are unconverged on 4–5 of the 5 splits, the variants whose share
is a measured weight (never crossing) on 0–2. Measured on splits 0 and 1 (16 restarts, the
experiments' polish) with the floor made smooth, ``√(h̃² + f²)`` (as the candidate ``overlap``
law has it): training objective −4.7 / −5.3 % for ``crossover``, −4.1 / −1.4 % for ``transfer``,
three of the four fits converged (none was); changing it moves every fit of these variants and
waits for their refit. Smoothing the floor in the fitter only (the exact law kept: the kink
continuation's laws smooth the pooled share's floor too, and the kink certificate is given
``log h̃_i − log f`` as a kink) does not do it: on the same splits the objective falls by 0.7 %
(``crossover``) and 0.06–0.16 % (``transfer``), and none of the four ends certified (sampled
measure 3e-5 to 8e-3): a zero-weight target has one such kink per run, at a different ``p_i``
each, so the objective along ``p_i`` is a staircase of kinks, not one surface to finish on. A
smooth floor must be the law's, and to keep ``full`` nested (its share is ``max(h_i, f)``) the
nested variants' floor must change with it: every capacity fit on RegMix moves. Flooring the
own share alone, ``max(h_i, f) + p_i Σ_{j≠i} p_j h_j`` (no kink moves with ``p``; ``full``
nested exactly), was measured on the same splits (64 restarts, the experiments' policy) and not
adopted: ``transfer`` split 0 still ends uncertified, on an allocation floor with 10 parameters
at a range end (objective 1.8816e-4 against 1.8792e-4, held-out 2.51 → 3.01 %); ``crossover``
split 1 converges away from the degenerate corner (held-out 13.4 → 1.77 %) but at a higher
objective (2.30e-4 against 2.04e-4): the corner is missed, not removed. The floor's kinks are
listed for the certificate (:meth:`CapacityLaw.kink_gaps`: ``log h̃_i − log f`` for each
target whose own weight is below the floor, after the allocation's gaps) since the certificate
samples every side of the kinks it stands on (:func:`mixscale._kinks.kink_side_points`); on
``compare_laws``' RegMix-1B split 0 ``transfer`` then ends 3.5 % lower (objective 1.814e-4
against 1.879e-4, held-out 2.51 → 2.42 %), on 12 active kinks, still uncertified (sampled
measure 2.1e-4 after 713 Gauss–Newton and 756 second-order steps).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._allocation import log_allocation, log_floor_gap
from ._base import AbstractLaw, DataSummary
from ._registry import register_law
from ._terms import (
    EXPONENT_RANGE,
    check_mixture,
    check_smoothing,
    check_variant_fields,
    check_weight_floor,
    floored_log,
    in_mixture_targets,
    log_range,
    log_uniform,
    positive,
    uniform,
)

__all__ = ["CapacityLaw"]

VARIANTS = ("full", "tied", "capacity", "decoupled", "transfer", "crossover", "coupled",
            "pooled", "pooled_coupled")

#: Each variant's fitted parameters: natural name -> raw field (``log x``, or ``log(x - 1)`` for
#: ``alpha``). The one place that says which fields a variant uses.
PARAMETERS = {
    "full": {"b": "log_b", "c": "log_c", "H": "log_H", "A": "log_A", "a": "log_a",
             "E": "log_E"},
    "capacity": {"b": "log_b", "c": "log_c", "H": "log_H", "E": "log_E"},
    "tied": {"alpha": "log_alpha_minus_1", "beta": "log_beta", "kappa": "log_kappa",
             "H": "log_H", "A": "log_A", "E": "log_E"},
}
PARAMETERS["decoupled"] = {**PARAMETERS["full"], "g": "log_g"}
PARAMETERS["transfer"] = {**PARAMETERS["full"], "eta": "log_eta", "gamma": "log_gamma",
                          "p": "log_p"}
PARAMETERS["crossover"] = {**PARAMETERS["transfer"], "q": "log_q_minus_1"}
PARAMETERS["coupled"] = {**PARAMETERS["crossover"], "theta": "theta"}
PARAMETERS["pooled"] = PARAMETERS["crossover"]
PARAMETERS["pooled_coupled"] = PARAMETERS["coupled"]

#: Lower ends of the ``transfer`` variant's ranges, where it is ``full`` to ``1e-7`` of the
#: loss: the head ``H + ηN`` moves by at most ``1e-12 N`` (``H ≥ 1e-3 N_min``) and the effective
#: share ``h_i + p_i Σ_j p_j h_j`` by at most ``1e-10`` (shares are floored at ``1e-3``).
ETA_MIN, P_MIN = 1e-12, 1e-5

#: Lower end of the loadings ``p`` in the ``pooled`` variants, where they are ``full`` to
#: ``10⁻⁷`` of the loss as ``transfer`` is (its ``η`` sets that): the pooled ranks
#: ``p_i Σ_j p_j (x_j − head)`` add at most ``10⁻¹⁴ N`` to a kept count of at least
#: ``H ≥ 10⁻³ N_min``, where ``P_MIN`` would add ``10⁻⁷ N/N_min`` of it, past ``10⁻⁷`` at any
#: larger size.
POOLED_P_MIN = 1e-7

#: Range of the ``crossover`` variant's ``q − 1``: at the lower end the power mean is the sum to
#: ``10⁻¹²`` of the loss (``(C^q + B^q)^{1/q} ≥ (C + B)·2^{(1-q)/q}``), so that a fit started
#: from ``transfer``'s (:meth:`CapacityLaw.embed`) begins within ``10⁻⁹`` of its objective even
#: where the residuals are 1 % of the loss (the objective moves by the loss's relative change
#: over the relative residual, squared terms twice: ``10⁻⁷`` there moved it by ``6·10⁻⁶``); at
#: the upper end (``q = 20``) within ``2^{1/20} − 1 = 3.5 %`` of the larger term.
Q_MINUS_1_RANGE = (1e-12, 19.0)

#: Range of the ``coupled`` variant's ``θ`` (the data term counts ``N^θ D`` tokens): ``0`` is
#: the crossover exactly; ``1`` a model whose sample efficiency grows as fast as its size.
THETA_RANGE = (0.0, 1.0)

#: The variants whose data term has its own share exponent ``g`` (free, or ``γ a``); ``full`` and
#: ``tied`` tie it to the token exponent, and each of them nests in both.
OWN_SHARE_EXPONENT = ("decoupled", "transfer", "crossover", "coupled", "pooled",
                      "pooled_coupled")

#: The variants with the shared ranks of ``transfer`` (``η``, ``γ``, ``p``).
SHARED_RANKS = ("transfer", "crossover", "coupled", "pooled", "pooled_coupled")

#: The variants whose capacity and data terms combine as a power mean with a fitted ``q``.
POWER_MEAN = ("crossover", "coupled", "pooled", "pooled_coupled")

#: The variants whose data term counts ``N^θ D`` tokens (a fitted ``θ``).
SIZE_TOKEN_COUPLED = ("coupled", "pooled_coupled")

#: The variants whose capacity term pools the kept ranks pair by pair
#: (``x̃_i = x_i + p_i Σ_{j≠i} p_j (x_j − head)``).
POOLED_CAPACITY = ("pooled", "pooled_coupled")


def _theta_range(summary: DataSummary) -> tuple[float, float]:
    """``θ``'s range for a fit to the rows ``summary`` describes: :data:`THETA_RANGE`, or
    ``(0, 0)`` (pinned) when they hold one model size, where ``N^θ`` is a constant that ``A``
    absorbs and the objective is flat along ``θ``."""
    one_size = summary.model_size[0] == summary.model_size[1]
    return (0.0, 0.0) if one_size else THETA_RANGE


def _data_term(A, a, D, h, floor, g=None):
    """``A (D max(h, floor))^{-a}`` with finite values and gradients for any ``h >= 0``; with
    ``g``, ``A D^{-a} max(h, floor)^{-g}`` (the ``decoupled`` variant)."""
    if g is None:
        return A * jnp.exp(-a * (jnp.log(D) + floored_log(h, floor)))
    return A * jnp.exp(-a * jnp.log(D) - g * floored_log(h, floor))


def _log_data_term(log_A, a, D, h, floor, g):
    """``log(A D^{-a} max(h, floor)^{-g})``, the log of :func:`_data_term` without forming it
    (so a term below the smallest float keeps finite gradients)."""
    return log_A - a * jnp.log(D) - g * floored_log(h, floor)


@register_law
class CapacityLaw(AbstractLaw):
    """Capacity competition + noise reduction (Dai & Zheng, ICML 2026); formula in the module doc.

    Fields hold raw parameters (logs of the positive ones); read the natural ones through the
    properties ``b, c, H, A, a, E``. Build one from natural parameters with
    :meth:`from_params`; :meth:`init` draws a random one for a restart of a fit.

    Attributes:
        targets: training-domain index of each of the ``M`` targets (static).
        variant: one of :data:`VARIANTS` (static), see the module docstring.
        weight_floor: smallest share used in the data term (static), see the module docstring.
        floor_smoothing: ``0`` for the law; ``τ > 0`` in its smoothed versions (static;
            :meth:`smoothed`), unless ``floor_smoothing_value`` holds ``τ`` as a 0-d array.
    """

    name: ClassVar[str] = "capacity"
    uses_scale: ClassVar[bool] = True
    variants: ClassVar[tuple[str, ...]] = VARIANTS
    per_target_fields: ClassVar[tuple[str, ...]] = ("log_E", "log_A", "log_a", "log_g")

    log_H: jax.Array
    log_E: jax.Array
    log_b: jax.Array | None = None
    log_c: jax.Array | None = None
    log_A: jax.Array | None = None
    log_a: jax.Array | None = None
    log_alpha_minus_1: jax.Array | None = None
    log_beta: jax.Array | None = None
    log_kappa: jax.Array | None = None
    log_g: jax.Array | None = None
    log_eta: jax.Array | None = None
    log_gamma: jax.Array | None = None
    log_p: jax.Array | None = None
    log_q_minus_1: jax.Array | None = None
    theta: jax.Array | None = None
    targets: tuple[int, ...] = eqx.field(static=True, default=())
    variant: str = eqx.field(static=True, default="full")
    weight_floor: float = eqx.field(static=True, default=1e-3)
    floor_smoothing: float = eqx.field(static=True, default=0.0)
    #: the temperature as a value instead (:meth:`smoothed` of a JAX array), else ``None``
    floor_smoothing_value: jax.Array | None = None

    def __check_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; choose one of {VARIANTS}")
        check_weight_floor(self.weight_floor)
        check_smoothing(self.floor_smoothing)
        sized_by = "log_alpha_minus_1" if self.variant == "tied" else "log_b"
        if getattr(self, sized_by) is None:  # before its shape is read
            raise ValueError(f"variant {self.variant!r} needs {sized_by}")
        k = jnp.shape(getattr(self, sized_by))
        m = (len(self.targets),)
        shapes = {"log_b": k, "log_c": k, "log_alpha_minus_1": k, "log_A": m, "log_a": m,
                  "log_E": m, "log_H": (), "log_beta": (), "log_kappa": (), "log_g": m,
                  "log_p": k, "log_q_minus_1": (), "theta": ()}
        check_variant_fields(self, PARAMETERS[self.variant].values(),
                             ("log_b", "log_c", "log_A", "log_a", "log_alpha_minus_1",
                              "log_beta", "log_kappa", "log_g", "log_eta", "log_gamma",
                              "log_p", "log_q_minus_1", "theta"), shapes)
        if len(k) != 1 or not all(0 <= t < k[0] for t in self.targets):
            raise ValueError(f"targets {self.targets} must index the {k} training domains")

    # ----------------------------------------------------------- natural parameters
    @property
    def alpha(self) -> jax.Array:
        """Spectral exponents ``α_i > 1`` (tied variant only)."""
        return 1.0 + jnp.exp(self.log_alpha_minus_1)

    @property
    def beta(self) -> jax.Array:
        """Source exponent ``β > 0`` (tied variant only)."""
        return jnp.exp(self.log_beta)

    @property
    def kappa(self) -> jax.Array:
        """Units of ``N`` per feature, ``κ > 0`` (tied variant only)."""
        return jnp.exp(self.log_kappa)

    @property
    def b(self) -> jax.Array:
        """Capacity exponents ``(K,)``."""
        if self.variant == "tied":
            return self.alpha + jnp.exp(self.log_beta) - 1.0
        return jnp.exp(self.log_b)

    @property
    def c(self) -> jax.Array:
        """Capacity amplitudes ``(K,)``."""
        if self.variant == "tied":
            b = self.b
            return jnp.exp(-b * self.log_kappa) / b
        return jnp.exp(self.log_c)

    @property
    def H(self) -> jax.Array:
        """Shared-head size (units of ``N``)."""
        return jnp.exp(self.log_H)

    @property
    def E(self) -> jax.Array:
        """Irreducible losses ``(M,)``."""
        return jnp.exp(self.log_E)

    @property
    def A(self) -> jax.Array | None:
        """Data-term amplitudes ``(M,)`` (``None`` for the capacity-only variant)."""
        return None if self.log_A is None else jnp.exp(self.log_A)

    @property
    def a(self) -> jax.Array | None:
        """Data-term exponents ``(M,)``; tied: ``b_i / α_i`` of each target's domain."""
        if self.variant == "capacity":
            return None
        if self.variant == "tied":
            idx = jnp.asarray(self.targets)
            return (self.b / self.alpha)[idx]
        return jnp.exp(self.log_a)

    @property
    def g(self) -> jax.Array | None:
        """Share exponents of the data term ``(M,)``: free in the ``decoupled`` variant,
        ``γ a`` in ``transfer``, ``a`` in the others (``None`` for the capacity-only variant)."""
        if self.log_gamma is not None:
            return self.gamma * self.a
        return self.a if self.log_g is None else jnp.exp(self.log_g)

    @property
    def eta(self) -> jax.Array | None:
        """Shared capacity per unit of ``N`` (:data:`SHARED_RANKS` variants): the head is
        ``H + ηN``."""
        return None if self.log_eta is None else jnp.exp(self.log_eta)

    @property
    def gamma(self) -> jax.Array | None:
        """Share exponent as a fraction of the token exponent (:data:`SHARED_RANKS` variants)."""
        return None if self.log_gamma is None else jnp.exp(self.log_gamma)

    @property
    def p(self) -> jax.Array | None:
        """Pool loadings ``(K,)`` (:data:`SHARED_RANKS` variants): domains ``i ≠ j`` share
        ``p_i p_j`` of their ranks (in the data term; in the capacity term too in the ``pooled``
        variants)."""
        return None if self.log_p is None else jnp.exp(self.log_p)

    @property
    def q(self) -> jax.Array | None:
        """Power of the mean that combines the capacity and data terms, ``q ≥ 1``
        (``crossover``, ``coupled``; the others add them, ``q = 1``)."""
        return None if self.log_q_minus_1 is None else 1.0 + jnp.exp(self.log_q_minus_1)

    @property
    def sample_efficiency(self) -> jax.Array:
        """``θ``: the data term counts ``N^θ D`` tokens (``coupled``, ``pooled_coupled``; ``0``
        in the others)."""
        return jnp.zeros(()) if self.theta is None else self.theta

    def head(self, N: jax.Array) -> jax.Array:
        """The capacity every domain gets at least: ``H``, or ``H + ηN`` (``transfer``)."""
        return self.H if self.log_eta is None else self.H + self.eta * N

    def effective_shares(self, h: jax.Array) -> jax.Array:
        """``h_i + p_i Σ_{j≠i} p_j h_j`` ``(K,)`` for ``transfer``; ``h`` for the others."""
        if self.log_p is None:
            return h
        p = self.p
        return h + p * (jnp.dot(p, h) - p * h)

    def smoothed(self, smoothing: float) -> CapacityLaw:
        """This law with the allocation's head floor ``max(log H, ·)`` smoothed at temperature
        ``smoothing`` (log units; :func:`mixscale.log_allocation`), ``0``: the exact law. The
        fitter's kink continuation (:func:`mixscale.fit`, ``smooth_kinks``) uses it: the exact
        law's objective has a kink wherever a domain's allocation meets the floor, where
        Levenberg–Marquardt stops without converging.

        ``smoothing`` may be a 0-d JAX array (a positive temperature): it is then held as a
        value, not in the law's static structure, so that laws smoothed at different
        temperatures share their compiled programs (the continuation's stages do)."""
        tau = check_smoothing(smoothing)
        if isinstance(tau, jax.Array):
            return dataclasses.replace(self, floor_smoothing=0.0, floor_smoothing_value=tau)
        return dataclasses.replace(self, floor_smoothing=tau, floor_smoothing_value=None)

    @property
    def _smoothing(self):
        """The floor's temperature: the value if one is held, else the static number."""
        return (self.floor_smoothing if self.floor_smoothing_value is None
                else self.floor_smoothing_value)

    def kink_gaps(self, h: jax.Array, N: jax.Array, D: jax.Array) -> jax.Array:
        """``log x_i^{free} − log head(N)`` ``(K,)`` for run ``(h, N, D)``: how far each domain's
        unconstrained allocation lies above the head floor, where the prediction has a kink
        (:func:`mixscale._allocation.log_floor_gap`; ``inf`` for zero weights); in the variants
        with a pooled share (``p``) then ``log h̃_i − log f`` ``(M,)`` for each target: where a
        target whose own weight is below the weight floor ``f`` has its pooled share
        ``h̃_i = h_i + p_i Σ_{j≠i} p_j h_j`` cross ``f``, its data term has a kink in ``p``
        (``inf`` for the other targets, whose share never falls below ``f``). Shape ``(K,)``,
        or ``(K + M,)`` with a pooled share."""
        del D
        h = jnp.asarray(h)
        floor = log_floor_gap(h, self.b, self.c, N, self.head(N))
        if self.log_p is None or self.weight_floor == 0:
            return floor
        # the pooled share's floor max(h~_i, f): a kink in p where a target of own weight
        # below f has its pooled share h~_i cross f (inf for the others)
        idx = jnp.asarray(self.targets)
        own, pooled = h[idx], self.effective_shares(h)[idx]
        crossing = (own < self.weight_floor) & (pooled > 0)
        share = jnp.where(crossing, jnp.log(jnp.where(crossing, pooled, 1.0))
                          - np.log(self.weight_floor), jnp.inf)
        return jnp.concatenate([floor, share])

    # ------------------------------------------------------------------ prediction
    def allocation(self, h: jax.Array, N: jax.Array) -> jax.Array:
        """The capacity allocation ``x*(h, N)``, shape ``(K,)``."""
        return jnp.exp(log_allocation(h, self.b, self.c, N, self.head(N), self._smoothing))

    def _pooled(self, x: jax.Array, N: jax.Array) -> jax.Array:
        """``x_i + p_i Σ_{j≠i} p_j (x_j − head(N))`` ``(K,)``: the ranks domain ``i`` has kept,
        its own and its overlap ``p_i p_j`` of what every other domain keeps beyond the head
        (``pooled`` variants; the head is every domain's already)."""
        p = self.p
        tail = x - self.head(N)
        return x + p * (jnp.dot(p, tail) - p * tail)

    def kept(self, h: jax.Array, N: jax.Array) -> jax.Array:
        """The capacity each domain's capacity term sees ``(K,)``: the allocation ``x*(h, N)``,
        pooled pair by pair in the ``pooled`` variants (:meth:`_pooled`)."""
        x = self.allocation(h, N)
        return self._pooled(x, N) if self.variant in POOLED_CAPACITY else x

    @property
    def n_train_domains(self) -> int:
        """``K``, the number of training domains."""
        return int(np.shape(self.b)[0])

    def predict(self, h: jax.Array, N: jax.Array, D: jax.Array) -> jax.Array:
        """Losses ``(M,)`` of the targets for mixture ``h`` ``(K,)``, size ``N``, tokens ``D``."""
        b, c = self.b, self.c
        h = check_mixture(h, b.shape[0], N, D)
        idx = jnp.asarray(self.targets)
        log_x = log_allocation(h, b, c, N, self.head(N), self._smoothing)
        if self.variant in POOLED_CAPACITY:
            log_x = jnp.log(self._pooled(jnp.exp(log_x), N))
        log_x = log_x[idx]
        log_capacity = jnp.log(c[idx]) - b[idx] * log_x
        if self.variant == "capacity":
            return jnp.exp(log_capacity) + self.E
        g = self.g if self.variant in OWN_SHARE_EXPONENT else None
        shares = self.effective_shares(h)[idx]
        if self.log_q_minus_1 is None:
            data = _data_term(self.A, self.a, D, shares, self.weight_floor, g)
            return jnp.exp(log_capacity) + data + self.E
        # (C^q + B^q)^(1/q) in logs: neither power over- or underflows for any q in range.
        q = self.q
        if self.theta is not None:  # a larger model learns more per token: N^θ D tokens
            D = D * jnp.exp(self.theta * jnp.log(N))
        log_data = _log_data_term(self.log_A, self.a, D, shares, self.weight_floor, g)
        return jnp.exp(jnp.logaddexp(q * log_capacity, q * log_data) / q) + self.E

    def natural_parameters(self) -> dict[str, jax.Array]:
        """The variant's fitted parameters in natural units (names of :data:`PARAMETERS`)."""
        return {name: getattr(self, name) for name in PARAMETERS[self.variant]}

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_params(cls, *, targets: Sequence[int] | None = None, variant: str = "full",
                    weight_floor: float = 1e-3, **params) -> CapacityLaw:
        """A law from natural (positive) parameters, by the names of :data:`PARAMETERS`.

        ``full`` needs ``b, c, H, A, a, E``; ``capacity`` needs ``b, c, H, E``; ``tied`` needs
        ``alpha (> 1), beta, kappa, H, A, E``; ``decoupled`` those of ``full`` and ``g``;
        ``transfer`` those of ``full`` and ``eta, gamma, p``; ``crossover`` those of
        ``transfer`` and ``q (> 1)``; ``coupled`` those of ``crossover`` and ``theta`` (in
        ``[0, 1]``, stored as is); ``pooled`` those of ``crossover``, ``pooled_coupled`` those of
        ``coupled``. ``targets`` defaults to
        every training domain in order. ``law.natural_parameters()`` gives these back.
        """
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
        wanted = PARAMETERS[variant]
        extra = sorted(set(params) - set(wanted))
        if extra:
            raise ValueError(f"variant {variant!r} takes parameters {list(wanted)}, not {extra}")
        missing = [p for p in wanted if params.get(p) is None]
        if missing:
            raise ValueError(f"variant {variant!r} needs parameters {missing}")
        for name in ("alpha", "q"):  # stored as log(x - 1)
            if name in params:
                params[name] = jnp.asarray(params[name], dtype=float) - 1.0
        fields = {wanted[p]: positive(v, f"{p} - 1" if p in ("alpha", "q") else p)
                  for p, v in params.items() if p != "theta"}
        if "theta" in params:
            fields["theta"] = jnp.asarray(params["theta"], dtype=float)
        k = jnp.shape(fields["log_alpha_minus_1" if variant == "tied" else "log_b"])[0]
        targets = tuple(range(k)) if targets is None else tuple(int(t) for t in targets)
        return cls(targets=targets, variant=variant, weight_floor=weight_floor, **fields)

    def embed(self, variant: str = "full") -> CapacityLaw:
        """This law as a law of ``variant`` that nests it, to start a fit of that variant.

        ``tied`` → ``full`` is exact (``b, c`` and the targets' ``a = b/α`` become free
        parameters). ``capacity`` → ``full`` adds the data term with ``A_i = 10⁻⁸ E_i`` and
        ``a_i = 0.05``, below ``10⁻⁷`` of the loss for any budget ``D h_i ≥ 10⁻⁴`` (the exact
        limit ``A = 0`` is not representable). Any of them → ``decoupled``: as ``full``, with the
        share exponents ``g = a`` (exact). Any of them → ``transfer``: as ``full``, with
        ``γ = 1`` (exact) and ``η``, ``p`` at the lower ends of their ranges (to ``10⁻⁷`` of the
        loss, :data:`ETA_MIN`, :data:`P_MIN`). Any of them → ``crossover``: as ``transfer``, with
        ``q − 1`` at the lower end of its range (:data:`Q_MINUS_1_RANGE`, to ``10⁻¹²`` of the
        loss). Any of them → ``coupled``: as ``crossover``, with ``θ = 0`` (exact). ``full``,
        ``tied`` or ``capacity`` → ``pooled``: as ``crossover``, with ``p`` at
        :data:`POOLED_P_MIN` (to ``10⁻⁷``); any of those or ``pooled`` → ``pooled_coupled``: with
        ``θ = 0`` (exact). The same variant returns the law itself."""
        if variant == self.variant:
            return self
        if variant == "coupled":
            inner = self.embed("crossover")
            return dataclasses.replace(inner, variant="coupled", theta=jnp.zeros(()))
        if variant == "pooled_coupled":
            inner = self.embed("pooled")
            return dataclasses.replace(inner, variant="pooled_coupled", theta=jnp.zeros(()))
        if variant == "pooled":
            if self.variant not in ("full", "tied", "capacity"):
                raise ValueError(f"the {self.variant!r} variant does not nest in 'pooled': "
                                 "its loadings p pool the capacity there; only 'full', 'tied' "
                                 "and 'capacity' nest (at p, eta and q - 1 at their lower ends)")
            inner = self.embed("transfer")
            return dataclasses.replace(
                inner, variant="pooled",
                log_p=jnp.full(jnp.shape(inner.log_p), np.log(POOLED_P_MIN)),
                log_q_minus_1=jnp.asarray(np.log(Q_MINUS_1_RANGE[0])))
        if variant == "crossover":
            inner = self.embed("transfer")
            return dataclasses.replace(inner, variant="crossover",
                                       log_q_minus_1=jnp.asarray(np.log(Q_MINUS_1_RANGE[0])))
        if variant in OWN_SHARE_EXPONENT and self.variant not in OWN_SHARE_EXPONENT:
            full = self.embed("full")
            if variant == "decoupled":
                return dataclasses.replace(full, log_g=full.log_a, variant="decoupled")
            return dataclasses.replace(
                full, variant="transfer", log_eta=jnp.asarray(np.log(ETA_MIN)),
                log_gamma=jnp.zeros(()), log_p=jnp.full(jnp.shape(full.log_b), np.log(P_MIN)))
        if variant != "full" or self.variant not in ("tied", "capacity"):
            raise ValueError(f"the {self.variant!r} variant does not nest in {variant!r}; "
                             "'tied' and 'capacity' nest in 'full', all three in "
                             "'decoupled' and 'transfer', every one but 'decoupled' in "
                             "'crossover' and 'coupled', and 'full', 'tied', 'capacity' in "
                             "'pooled' and 'pooled_coupled'")
        # In raw (log) units throughout, so that nothing over- or underflows on the way.
        if self.variant == "tied":
            log_b = jnp.log(self.b)
            log_c = -self.b * self.log_kappa - log_b
            log_A = self.log_A
            log_a = (log_b - jnp.log(self.alpha))[jnp.asarray(self.targets)]
        else:
            log_b, log_c = self.log_b, self.log_c
            log_A = self.log_E + np.log(1e-8)
            log_a = jnp.full(jnp.shape(self.log_E), np.log(0.05))
        return CapacityLaw(log_H=self.log_H, log_E=self.log_E, log_b=log_b, log_c=log_c,
                           log_A=log_A, log_a=log_a, targets=self.targets, variant="full",
                           weight_floor=self.weight_floor)

    @classmethod
    def targets_for(cls, train_domains, loss_domains, **options) -> tuple[str, ...]:
        """In-mixture loss domains only (:func:`~mixscale.laws._terms.in_mixture_targets`)."""
        return in_mixture_targets(train_domains, loss_domains)

    @classmethod
    def n_parameters(cls, n_train_domains: int, n_targets: int, *, variant: str = "full",
                     weight_floor: float = 1e-3) -> int:
        """``2K + 3M + 1`` (full), ``2K + M + 1`` (capacity), ``K + 2M + 3`` (tied),
        ``2K + 4M + 1`` (decoupled), ``3K + 3M + 3`` (transfer), ``3K + 3M + 4``
        (crossover, pooled), ``3K + 3M + 5`` (coupled, pooled_coupled)."""
        del weight_floor
        k, m = n_train_domains, n_targets
        return {"full": 2 * k + 3 * m + 1, "capacity": 2 * k + m + 1,
                "tied": k + 2 * m + 3, "decoupled": 2 * k + 4 * m + 1,
                "transfer": 3 * k + 3 * m + 3, "crossover": 3 * k + 3 * m + 4,
                "coupled": 3 * k + 3 * m + 5,
                "pooled": 3 * k + 3 * m + 4, "pooled_coupled": 3 * k + 3 * m + 5}[variant]

    @classmethod
    def parameter_bounds(cls, summary: DataSummary, *, variant: str = "full",
                         weight_floor: float = 1e-3) -> dict[str, tuple[float, float]]:
        """Exponents ``b`` and ``a`` in :data:`~mixscale.laws._terms.EXPONENT_RANGE`
        (``[0.01, 3]``); the head ``H ∈ [10⁻³, 1]·N_min``: it is part of every model, so no
        larger than the smallest one, and a head below a thousandth of it is no head at all (the
        fits that drove ``H`` to 1e-59 gained nothing from it). Tied: ``α − 1 ∈ [0.01, 2]``
        (spectra ``l^(−α)`` with ``α ≤ 3``), ``β ∈ [0.01, 1]``, so ``b = α + β − 1 ≤ 3``.
        Decoupled: the share exponents ``g`` in the same range as ``a``. Transfer: ``γ ∈ [0.01, 1]``
        (the share's elasticity a fraction of the tokens'); ``η ∈ [10⁻¹², 0.5]`` (at most half
        of every model shared by all domains; the lower end is the fixed head); the loadings
        ``p ∈ [10⁻⁵, 3]`` (overlaps ``p_i p_j`` up to 9: a token of a close domain may teach more
        than one of the domain's own, as for two halves of one source). Crossover: those of
        transfer and ``q − 1 ∈ [10⁻¹², 19]`` (:data:`Q_MINUS_1_RANGE`: from the sum to within
        3.5 % of the larger term). Coupled: those of crossover and ``θ ∈ [0, 1]``
        (:data:`THETA_RANGE`), pinned at ``θ = 0`` (the crossover) when the rows hold one model
        size: there ``N^θ`` is a constant that ``A`` absorbs, so the objective is flat along
        ``θ`` and a fit would leave it wherever its start put it, which moves every prediction
        at another size (SlimPajama-7's 122M runs → 680M: 3.35 % with ``θ`` free, 3.00 % for
        the crossover). Pooled: those of crossover (pooled_coupled: of coupled), with the
        loadings' lower end at :data:`POOLED_P_MIN` (``10⁻⁷``) instead of ``10⁻⁵``."""
        del weight_floor
        n_min = summary.model_size[0]
        bounds = {"log_H": log_range(1e-3 * n_min, n_min)}
        if variant == "tied":
            bounds.update(log_alpha_minus_1=log_range(0.01, 2.0), log_beta=log_range(0.01, 1.0))
        else:
            bounds["log_b"] = log_range(*EXPONENT_RANGE)
        if variant in ("full", "decoupled", *SHARED_RANKS):
            bounds["log_a"] = log_range(*EXPONENT_RANGE)
        if variant == "decoupled":
            bounds["log_g"] = log_range(*EXPONENT_RANGE)
        if variant in SHARED_RANKS:
            p_min = POOLED_P_MIN if variant in POOLED_CAPACITY else P_MIN
            bounds.update(log_eta=log_range(ETA_MIN, 0.5), log_gamma=log_range(0.01, 1.0),
                          log_p=log_range(p_min, 3.0))
        if variant in POWER_MEAN:
            bounds["log_q_minus_1"] = log_range(*Q_MINUS_1_RANGE)
        if variant in SIZE_TOKEN_COUPLED:
            bounds["theta"] = _theta_range(summary)
        return bounds

    @classmethod
    def nested(cls, *, variant: str = "full", weight_floor: float = 1e-3) -> tuple:
        """``full`` nests ``tied`` (exactly) and ``capacity`` (to ``10⁻⁷`` of the loss), by
        :meth:`embed`; ``decoupled`` nests ``full`` (exactly) and ``transfer`` nests it to
        ``10⁻⁷`` (the fit of ``full`` brings its own nested starts); ``crossover`` nests
        ``transfer`` to ``10⁻¹²`` (and through it the rest); ``coupled`` nests ``crossover``
        (exactly, at ``θ = 0``); ``pooled`` nests ``full`` (to ``10⁻⁷``, as ``transfer``; not
        ``transfer`` or ``crossover``, whose fitted loadings would pool the capacity) and
        ``pooled_coupled`` nests ``pooled`` (exactly); the other variants nest none."""
        if variant == "coupled":
            return (({"variant": "crossover", "weight_floor": weight_floor},
                     lambda law: law.embed("coupled")),)
        if variant == "pooled_coupled":
            return (({"variant": "pooled", "weight_floor": weight_floor},
                     lambda law: law.embed("pooled_coupled")),)
        if variant == "pooled":
            return (({"variant": "full", "weight_floor": weight_floor},
                     lambda law: law.embed("pooled")),)
        if variant == "crossover":
            return (({"variant": "transfer", "weight_floor": weight_floor},
                     lambda law: law.embed("crossover")),)
        if variant in OWN_SHARE_EXPONENT:
            return (({"variant": "full", "weight_floor": weight_floor},
                     lambda law: law.embed(variant)),)
        if variant != "full":
            return ()
        return tuple(({"variant": inner, "weight_floor": weight_floor},
                      lambda law: law.embed("full")) for inner in ("tied", "capacity"))

    @classmethod
    def init(cls, key, summary: DataSummary, *, variant: str = "full",
             weight_floor: float = 1e-3) -> CapacityLaw:
        """A random initial law for one restart, scaled to the data.

        Ranges (log-uniform unless stated): ``b ∈ [0.05, 1.5]``, ``a ∈ [0.05, 1.0]``;
        ``H ∈ [1e-3, 0.5]·N_min``; ``E`` uniform in ``[0.2, 0.9]·min loss``; the amplitudes ``c``
        and ``A`` are set so that, at the geometric middle of the observed sizes (tokens) and an
        even split, each term is a uniform ``[0.05, 0.6]`` fraction of the target's mean loss.
        Tied: ``α - 1 ∈ [0.05, 2]``, ``β ∈ [0.01, 1]``, ``κ`` so that ``c`` is of the same order.
        Decoupled: ``g ∈ [0.05, 1.0]`` too, drawn apart from ``a``. Transfer: ``γ ∈ [0.05, 1]``,
        ``η ∈ [10⁻³, 0.3]``, ``p ∈ [0.01, 1]``, ``A`` for the share ``1/K`` as in ``full``.
        Crossover: as transfer, and ``q − 1 ∈ [0.05, 4]``. Coupled: as crossover, and ``θ``
        uniform in ``[0, 0.5]`` (``A`` for the middle size's ``N^θ`` too), ``0`` when the data
        hold one model size. Pooled (coupled): as crossover (coupled).
        """
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
        targets = summary.target_index
        k, m = len(summary.train_domains), len(targets)
        keys = jax.random.split(key, 10)
        lo_n, hi_n = summary.model_size
        lo_d, hi_d = summary.tokens
        n_mid = float(np.sqrt(lo_n * hi_n))
        d_mid = float(np.sqrt(lo_d * hi_d))
        # Halved before the sum (exactly the same value), so losses near 1e308 do not overflow.
        loss_mid = jnp.asarray(0.5 * summary.loss_min + 0.5 * summary.loss_max)

        log_H = jnp.log(lo_n) + log_uniform(keys[0], 1e-3, 0.5, ())
        E = uniform(keys[1], 0.2, 0.9, (m,)) * jnp.asarray(summary.loss_min)
        # Target-level loss scale mapped to training domains (domains without a target use the
        # mean scale).
        scale_k = jnp.full((k,), jnp.mean(loss_mid)).at[jnp.asarray(targets)].set(loss_mid)
        x_mid = n_mid / k + jnp.exp(log_H)
        fields = {}
        if variant == "tied":
            log_am1 = log_uniform(keys[2], 0.05, 2.0, (k,))
            log_beta = log_uniform(keys[3], 0.01, 1.0, ())
            b = 1.0 + jnp.exp(log_am1) + jnp.exp(log_beta) - 1.0
            frac = uniform(keys[4], 0.05, 0.6, ())
            # choose κ so that c·x_mid^{-b} ≈ frac·scale for the mean b: c = κ^{-b}/b
            b_bar = jnp.mean(b)
            log_kappa = -(jnp.log(frac * jnp.mean(scale_k) * b_bar) + b_bar * jnp.log(x_mid)) \
                / b_bar
            fields.update(log_alpha_minus_1=log_am1, log_beta=log_beta, log_kappa=log_kappa)
            a_t = (b / (1.0 + jnp.exp(log_am1)))[jnp.asarray(targets)]
        else:
            log_b = log_uniform(keys[2], 0.05, 1.5, (k,))
            frac = uniform(keys[4], 0.05, 0.6, (k,))
            log_c = jnp.log(frac * scale_k) + jnp.exp(log_b) * jnp.log(x_mid)
            fields.update(log_b=log_b, log_c=log_c)
        if variant != "capacity":
            if variant in ("full", "decoupled", *SHARED_RANKS):
                log_a = log_uniform(keys[5], 0.05, 1.0, (m,))
                fields["log_a"] = log_a
                a_t = jnp.exp(log_a)
            frac_a = uniform(keys[6], 0.05, 0.6, (m,))
            # A D^{-a} (1/K)^{-g} = frac · mean loss at the middle budget and even shares
            if variant == "decoupled":
                log_g = log_uniform(keys[7], 0.05, 1.0, (m,))
                fields["log_g"] = log_g
                g_t = jnp.exp(log_g)
            elif variant in SHARED_RANKS:
                extra_keys = jax.random.split(keys[8], 3)
                log_gamma = log_uniform(extra_keys[0], 0.05, 1.0, ())
                fields.update(log_gamma=log_gamma,
                              log_eta=log_uniform(extra_keys[1], 1e-3, 0.3, ()),
                              log_p=log_uniform(extra_keys[2], 0.01, 1.0, (k,)))
                g_t = jnp.exp(log_gamma) * a_t
                if variant in POWER_MEAN:
                    fields["log_q_minus_1"] = log_uniform(keys[9], 0.05, 4.0, ())
                if variant in SIZE_TOKEN_COUPLED:  # within its range, 0 on one model size
                    theta_hi = min(0.5, _theta_range(summary)[1])
                    fields["theta"] = uniform(jax.random.fold_in(keys[9], 1), 0.0, theta_hi, ())
            if variant in OWN_SHARE_EXPONENT:
                theta = fields.get("theta", 0.0)
                fields["log_A"] = (jnp.log(frac_a * loss_mid)
                                   + a_t * (jnp.log(d_mid) + theta * jnp.log(n_mid))
                                   - g_t * jnp.log(k))
            else:  # g = a, in the form fitted so far
                fields["log_A"] = jnp.log(frac_a * loss_mid) + a_t * jnp.log(d_mid / k)
        return cls(log_H=log_H, log_E=jnp.log(E), targets=targets, variant=variant,
                   weight_floor=weight_floor, **fields)
