r"""The noise-reduction term with the tokens that domains share: how much one domain's data teaches
another, measured at one scale.

For target (loss) domain ``i`` and mixture ``h`` at one model size and token budget:

.. math::

    L_i(h) = E_i + A_i\, s_i(h)^{-a_i}, \qquad
    s_i(h) = h_i + \sum_{j \ne i} S_{ij}\, h_j ,

the capacity law's data term :math:`A_i (D h_i)^{-a_i}` at a fixed ``D`` (folded into ``A_i``),
with domain ``i`` credited also with the tokens of every domain ``j`` at the overlap
``S_ij ≥ 0``: a feature that domains ``i`` and ``j`` share is taught by the samples of both
(``docs/theory.md`` §7), so ``j``'s tokens count for ``i`` in the proportion of ``i``'s loss that
sits on features ``j`` also carries. The capacity law's ``transfer`` variant and its successors
take the overlap to be of rank one, ``S_ij = p_i p_j`` (one pool that every domain draws on);
this law asks what the mixture dependence of real losses needs beyond that. Variants:

* ``"free"`` (default): every overlap free, ``S_ij`` for each target ``i`` and each other
  training domain ``j``: ``M (K + 2)`` parameters (``E, A, a`` and ``K − 1`` overlaps per target;
  every parameter acts on its own target alone, so the fitter solves ``M`` independent problems).
  Directed: ``S_ij`` and ``S_ji`` are apart (how much of ``i``'s loss ``j``'s features cover is
  not how much of ``j``'s ``i``'s cover).
* ``"rank"``: overlaps of rank ``r`` (the option ``factors``, default 2), the theory's shared
  pools generalised from one to ``r``: the features that domains share fall into ``r`` pools
  (topics), domain ``i`` holds a loading ``P_it ≥ 0`` on pool ``t`` and
  :math:`S_{ij} = \sum_t P_{it} P_{jt}` (symmetric). ``3M + rK`` parameters; the loadings are
  shared by all targets.
* ``"own"``: no overlap, ``S = 0``: the paper's data term alone at one scale, ``3M``.

Source exponents (the option ``source_exponents=True``, for ``free`` and ``rank``): each
training domain ``j`` teaches at its own rate of return, a per-source exponent ``g_j``,

.. math::

    s_i(h) = h_i^{g_i} + \sum_{j \ne i} S_{ij}\, h_j^{g_j} ,

``K`` parameters more (``g = 1`` is the law without them, exactly). Why (``docs/theory.md``
§7, *per-source exponents*): a rank that domains share is learned at the rate the mixture's
tokens give it, ``D Σ_j h_j u^{−α_j}``, each source at its own spectral exponent ``α_j``, so the
ranks that ``j``'s tokens teach by themselves reach ``u ∝ (D h_j)^{1/α_j}`` and domain ``i``'s
loss on them, a density ``u^{−b_i−1}``, falls as ``(D h_j)^{−b_i/α_j}``: the target's exponent
over the *source's*, where the share term without ``g`` gives every source the target's own
``b_i/α_i``. Here the share counts ranks reached, ``h_j^{g_j}`` with ``g_j ∝ 1/α_j``, and ``a_i``
is the target's ``b_i`` in those units; the own term's exponent is ``a_i g_i`` (so ``own``
takes none: ``a_i`` and ``g_i`` would be one number). Summing the ranks each source reaches is
exact for one source and an approximation where several teach the same ranks (the frontier
then solves ``Σ_j D h_j u^{−α_j} ∝ 1``). The empirical additive law gives every (target,
source) pair an exponent of its own (``M K``); the theory gives one per source.

Not a law of every scale (``uses_scale = False``): it isolates the mixture dependence that a
data term can give at one model size and budget, against which the theory laws' rank-one pooling
and the empirical laws' free interactions are measured (``experiments/regmix_overlap.py``).

Ranges: ``a`` in :data:`~mixscale.laws._terms.EXPONENT_RANGE` (``[0.01, 3]``); source exponents
``g`` in :data:`SOURCE_EXPONENT_RANGE` (``[0.05, 5]``, wide on both sides of the theory's
``g = 1/α``, below 1 for the spectra ``α > 1`` of its power laws); overlaps
``S ∈ [0, 9]`` and loadings ``P ∈ [0, 3]`` (the ``transfer`` variant's upper end for ``p``: a
token of a close domain may teach up to nine times what one of the domain's own does, as for two
halves of one source). ``S`` and ``P`` are fitted as they are, not through a logarithm: most
pairs of domains share nothing, and an overlap of exactly ``0`` is then a point on the range's
end that the fit reaches in a few steps (a logarithm would send it towards ``−∞`` with a
vanishing gradient, a fit that never ends). ``own`` is ``S = 0`` (``P = 0``) exactly, so a fit
of ``free`` or ``rank`` also starts from the fitted ``own`` (the nested start).

Zero weights: the share enters as :math:`\sqrt{s_i^2 + f^2}` with the floor ``f =
weight_floor`` (default ``1e-3``, the resolution of RegMix's published weights), so losses and
gradients stay finite at a zero share; it is ``s_i`` to ``f²/2s_i²`` relative (``5·10⁻⁵`` at
``s_i = 0.1``, ``0.5 %`` at ``0.01``) and ``f`` at ``0``; ``weight_floor = 0`` gives the pure law.
Why not ``max(s_i, f)``, as the capacity law floors its share: a measured weight is ``0`` or at
least the resolution and never crosses the floor, but a pooled share moves with ``S`` and
crosses it, and the maximum's kink stopped RegMix-1M fits unconverged (free overlaps, 4
restarts: 11 of 13 targets stopped with gradient cosines of 0.005–0.1, ``dm_mathematics`` at 4×
the objective it reaches with this smooth floor, where all 13 pass the gradient test). The
capacity law's shared-rank variants pool their shares too, and keep that kink. Only in-mixture
targets can be predicted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._base import AbstractLaw, DataSummary
from ._registry import register_law
from ._terms import (
    EXPONENT_RANGE,
    check_mixture,
    check_weight_floor,
    in_mixture_targets,
    log_range,
    log_uniform,
    non_negative,
    positive,
    smooth_floored_log,
    uniform,
    weight_power,
)

__all__ = ["OverlapLaw"]

VARIANTS = ("free", "rank", "own")
#: Range of the source exponents ``g`` (option ``source_exponents``).
SOURCE_EXPONENT_RANGE = (0.05, 5.0)
#: Ranges of the overlaps ``S`` (``free``) and of the loadings ``P`` (``rank``).
OVERLAP_RANGE, LOADING_RANGE = (0.0, 9.0), (0.0, 3.0)


def _others(targets: Sequence[int], k: int) -> np.ndarray:
    """``(M, K − 1)`` indices of the training domains other than each target's own, in order."""
    return np.array([[j for j in range(k) if j != t] for t in targets], dtype=np.int32)


def _check_factors(factors) -> int:
    if isinstance(factors, bool) or not isinstance(factors, (int, np.integer)) or factors < 1:
        raise ValueError(f"factors must be a positive integer (the rank of the overlaps), "
                         f"got {factors!r}")
    return int(factors)


@register_law(candidate=True)
class OverlapLaw(AbstractLaw):
    """The data term with shared tokens at one scale; see the module docstring for the formula.

    Attributes:
        log_E, log_A, log_a: ``(M,)`` logs of ``E``, ``A`` and ``a``.
        S: ``(M, K − 1)`` overlaps of each target with the other training domains, in domain
            order, ``≥ 0`` (``free``; ``None`` otherwise).
        P: ``(K, r)`` loadings, ``≥ 0`` (``rank``; ``None`` otherwise).
        log_g: ``(K,)`` logs of the source exponents ``g`` (``source_exponents``; ``None``
            otherwise).
        targets: training-domain index of each of the ``M`` targets (static).
        n_domains: ``K`` (static).
        variant: ``"free"``, ``"rank"`` or ``"own"`` (static).
        weight_floor: smallest share (static), see the module docstring.
    """

    name: ClassVar[str] = "overlap"
    uses_scale: ClassVar[bool] = False
    variants: ClassVar[tuple[str, ...]] = VARIANTS
    per_target_fields: ClassVar[tuple[str, ...]] = ("log_E", "log_A", "log_a", "S")

    log_E: jax.Array
    log_A: jax.Array
    log_a: jax.Array
    targets: tuple[int, ...] = eqx.field(static=True)
    n_domains: int = eqx.field(static=True)
    S: jax.Array | None = None
    P: jax.Array | None = None
    log_g: jax.Array | None = None
    variant: str = eqx.field(static=True, default="free")
    weight_floor: float = eqx.field(static=True, default=1e-3)

    def __check_init__(self):
        m, k = len(self.targets), self.n_domains
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; choose one of {VARIANTS}")
        for what in ("log_E", "log_A", "log_a"):
            if jnp.shape(getattr(self, what)) != (m,):
                raise ValueError(f"{what[4:]} must have shape ({m},) (one per target), got "
                                 f"{jnp.shape(getattr(self, what))}")
        if not all(0 <= t < k for t in self.targets):
            raise ValueError(f"targets {self.targets} must index the {k} domains")
        wants = {"free": "S", "rank": "P", "own": None}[self.variant]
        for field in ("S", "P"):
            value = getattr(self, field)
            if (value is None) != (field != wants):
                raise ValueError(f"the {self.variant!r} variant "
                                 f"{'needs' if field == wants else 'takes no'} {field}")
        if self.S is not None and jnp.shape(self.S) != (m, k - 1):
            raise ValueError(f"S must have shape ({m}, {k - 1}) (each target against the other "
                             f"training domains), got {jnp.shape(self.S)}")
        if self.P is not None and (jnp.ndim(self.P) != 2 or jnp.shape(self.P)[0] != k
                                   or jnp.shape(self.P)[1] < 1):
            raise ValueError(f"P must have shape ({k}, r) with r >= 1, got {jnp.shape(self.P)}")
        if self.log_g is not None:
            if self.variant == "own":
                raise ValueError("the 'own' variant takes no source exponents (a_i and g_i "
                                 "would be one number)")
            if jnp.shape(self.log_g) != (k,):
                raise ValueError(f"g must have shape ({k},) (one per training domain), got "
                                 f"{jnp.shape(self.log_g)}")
        check_weight_floor(self.weight_floor)

    E = property(lambda self: jnp.exp(self.log_E), doc="Irreducible losses ``(M,)``.")
    A = property(lambda self: jnp.exp(self.log_A), doc="Data-term amplitudes ``(M,)``.")
    a = property(lambda self: jnp.exp(self.log_a), doc="Share exponents ``(M,)``.")

    @property
    def g(self) -> jax.Array | None:
        """Source exponents ``(K,)`` (``source_exponents``; ``None`` otherwise)."""
        return None if self.log_g is None else jnp.exp(self.log_g)

    def taught(self, h: jax.Array) -> jax.Array:
        """What each training domain's share teaches ``(K,)``: ``h``, or ``h^g`` with source
        exponents (exactly ``0`` at a zero weight, finite gradients:
        :func:`~mixscale.laws._terms.weight_power`)."""
        return h if self.log_g is None else weight_power(h, self.g)

    @property
    def n_train_domains(self) -> int:
        """``K``, the number of training domains."""
        return int(self.n_domains)

    @property
    def overlaps(self) -> jax.Array:
        """``S`` ``(M, K)``: each target's overlap with every training domain, ``1`` on its own
        and ``0`` everywhere for ``own``."""
        m, k = len(self.targets), self.n_domains
        own = jnp.zeros((m, k)).at[jnp.arange(m), jnp.asarray(self.targets)].set(1.0)
        if self.variant == "own":
            return own
        if self.variant == "free":
            rows = jnp.repeat(jnp.arange(m)[:, None], k - 1, axis=1)
            return own.at[rows, jnp.asarray(_others(self.targets, k))].set(self.S)
        pooled = (self.P @ self.P.T)[jnp.asarray(self.targets)]
        return jnp.where(own > 0, 1.0, pooled)

    def predict(self, h: jax.Array, N: jax.Array, D: jax.Array) -> jax.Array:
        """Losses ``(M,)`` for mixture ``h`` ``(K,)``; ``N`` and ``D`` are ignored."""
        del N, D
        h = check_mixture(h, self.n_domains)
        share = self.overlaps @ self.taught(h)
        return self.E + self.A * jnp.exp(-self.a * smooth_floored_log(share, self.weight_floor))

    @classmethod
    def from_params(cls, *, E, A, a, n_domains: int, S=None, P=None, g=None,
                    targets: Sequence[int] | None = None, weight_floor: float = 1e-3
                    ) -> OverlapLaw:
        """A law from natural parameters: ``E, A, a > 0`` ``(M,)``; ``S ≥ 0`` ``(M, K − 1)`` for
        ``free`` or ``P ≥ 0`` ``(K, r)`` for ``rank`` (neither: ``own``); source exponents
        ``g > 0`` ``(K,)`` (``source_exponents``; ``None``: without). ``targets`` defaults to
        every training domain in order."""
        if S is not None and P is not None:
            raise ValueError("give the overlaps S (free) or the loadings P (rank), not both")
        variant = "free" if S is not None else "rank" if P is not None else "own"
        targets = tuple(range(n_domains)) if targets is None else tuple(int(t) for t in targets)
        return cls(log_E=positive(E, "E"), log_A=positive(A, "A"), log_a=positive(a, "a"),
                   S=None if S is None else non_negative(S, "S"),
                   P=None if P is None else non_negative(P, "P"),
                   log_g=None if g is None else positive(g, "g"), targets=targets,
                   n_domains=int(n_domains), variant=variant, weight_floor=weight_floor)

    @classmethod
    def targets_for(cls, train_domains, loss_domains, **options) -> tuple[str, ...]:
        """In-mixture loss domains only (:func:`~mixscale.laws._terms.in_mixture_targets`)."""
        return in_mixture_targets(train_domains, loss_domains)

    def natural_parameters(self) -> dict[str, jax.Array]:
        """``E, A, a`` ``(M,)``, and ``S`` ``(M, K − 1)`` (free) or ``P`` ``(K, r)`` (rank), and
        ``g`` ``(K,)`` (source exponents)."""
        out = {"E": self.E, "A": self.A, "a": self.a}
        if self.S is not None:
            out["S"] = self.S
        if self.P is not None:
            out["P"] = self.P
        if self.log_g is not None:
            out["g"] = self.g
        return out

    @classmethod
    def n_parameters(cls, n_train_domains: int, n_targets: int, *, variant: str = "free",
                     factors: int = 2, source_exponents: bool = False,
                     weight_floor: float = 1e-3) -> int:
        """``M (K + 2)`` (free), ``3M + rK`` (rank), ``3M`` (own); ``K`` more with source
        exponents."""
        del weight_floor
        k, m = n_train_domains, n_targets
        _check_source_exponents(variant, source_exponents)
        return {"free": m * (k + 2), "rank": 3 * m + _check_factors(factors) * k,
                "own": 3 * m}[variant] + (k if source_exponents else 0)

    @classmethod
    def parameter_bounds(cls, summary: DataSummary, *, variant: str = "free", factors: int = 2,
                         source_exponents: bool = False, weight_floor: float = 1e-3
                         ) -> dict[str, tuple[float, float]]:
        """``a`` in ``[0.01, 3]``; ``S`` in ``[0, 9]``, ``P`` in ``[0, 3]``; ``g`` in
        ``[0.05, 5]`` (module docstring)."""
        del summary, factors, weight_floor
        bounds = {"log_a": log_range(*EXPONENT_RANGE)}
        if variant == "free":
            bounds["S"] = OVERLAP_RANGE
        if variant == "rank":
            bounds["P"] = LOADING_RANGE
        if source_exponents:
            bounds["log_g"] = log_range(*SOURCE_EXPONENT_RANGE)
        return bounds

    def embed(self, variant: str, factors: int = 2, source_exponents: bool = False
              ) -> OverlapLaw:
        """This law as ``variant`` with more freedom at the point where it is this law exactly:
        ``own`` as ``free`` or ``rank`` with no overlap (``S = 0`` or ``P = 0``); and with
        ``source_exponents``, every ``g = 1`` (``free`` and ``rank`` into themselves too)."""
        m, k = len(self.targets), self.n_domains
        itself = (source_exponents and variant == self.variant != "own"
                  and (variant != "rank" or self.P.shape[1] == factors))
        if self.log_g is not None or not (itself or (self.variant == "own"
                                                    and variant in ("free", "rank"))):
            raise ValueError(f"{self.variant!r} embeds in 'free' or 'rank' (or, without source "
                             f"exponents, in itself with them); got {self.variant!r} into "
                             f"{variant!r} (source exponents {source_exponents})")
        law = self
        if self.variant == "own":
            extra = ({"S": jnp.zeros((m, k - 1))} if variant == "free" else
                     {"P": jnp.zeros((k, _check_factors(factors)))})
            law = dataclasses.replace(self, variant=variant, **extra)
        return dataclasses.replace(law, log_g=jnp.zeros((k,))) if source_exponents else law

    @classmethod
    def nested(cls, *, variant: str = "free", factors: int = 2, source_exponents: bool = False,
               weight_floor: float = 1e-3) -> tuple:
        """``free`` and ``rank`` nest ``own`` (at ``S = 0``, ``P = 0``: :meth:`embed`); with
        source exponents they nest themselves without them (at ``g = 1``)."""
        if variant == "own":
            return ()
        if source_exponents:
            return (({"variant": variant, "factors": factors, "weight_floor": weight_floor},
                     lambda law: law.embed(variant, factors, source_exponents=True)),)
        return (({"variant": "own", "weight_floor": weight_floor},
                 lambda law: law.embed(variant, factors)),)

    @classmethod
    def init(cls, key, summary: DataSummary, *, variant: str = "free", factors: int = 2,
             source_exponents: bool = False, weight_floor: float = 1e-3) -> OverlapLaw:
        """A random initial law for one restart, scaled to the data.

        Per target, with ``L`` its mean observed loss (midpoint of min and max): ``a``
        log-uniform in ``[0.02, 0.5]``; ``E`` uniform in ``[0.2, 0.9]·min loss``; overlaps ``S``
        log-uniform in ``[10⁻³, 0.3]`` (free) or loadings ``P`` in ``[0.01, 0.5]`` (rank);
        source exponents ``g`` log-uniform in ``[0.3, 1.2]`` (``1/α`` for spectra of exponent
        up to about 3, as the theory's power laws); ``A`` such that the law equals ``L`` at the
        even split ``h = 1/K`` (with ``g``: at the even split's ``(1/K)^g``).
        """
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
        factors = _check_factors(factors)
        _check_source_exponents(variant, source_exponents)
        targets = summary.target_index
        k, m = len(summary.train_domains), len(targets)
        keys = jax.random.split(key, 4)
        loss_mid = jnp.asarray(0.5 * summary.loss_min + 0.5 * summary.loss_max)
        log_a = log_uniform(keys[0], 0.02, 0.5, (m,))
        E = uniform(keys[1], 0.2, 0.9, (m,)) * jnp.asarray(summary.loss_min)
        log_g = (log_uniform(jax.random.fold_in(key, 4), 0.3, 1.2, (k,)) if source_exponents
                 else None)
        extra = {}
        if variant == "free":
            extra["S"] = jnp.exp(log_uniform(keys[2], 1e-3, 0.3, (m, k - 1)))
        elif variant == "rank":
            extra["P"] = jnp.exp(log_uniform(keys[3], 0.01, 0.5, (k, factors)))
        law = cls(log_E=jnp.log(E), log_A=jnp.zeros((m,)), log_a=log_a, targets=targets,
                  n_domains=k, variant=variant, weight_floor=weight_floor, log_g=log_g, **extra)
        share = law.overlaps @ law.taught(jnp.full((k,), 1.0 / k))
        log_A = jnp.log(loss_mid - E) + jnp.exp(log_a) * jnp.log(share)
        return dataclasses.replace(law, log_A=log_A)


def _check_source_exponents(variant: str, source_exponents) -> None:
    if not isinstance(source_exponents, (bool, np.bool_)):
        raise ValueError(f"source_exponents must be True or False, got {source_exponents!r}")
    if source_exponents and variant == "own":
        raise ValueError("the 'own' variant takes no source exponents (a_i and g_i would be one "
                         "number); use 'free' or 'rank'")
