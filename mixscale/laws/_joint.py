r"""The joint data-mixing law of Shukor et al. (2025), one set of parameters per target.

Shukor, Bethune, Busbridge, Grangier, Fini, El-Nouby, Ablin, "Scaling Laws for Optimal Data
Mixtures", arXiv:2507.09404 (2025), the joint law of §2: the additive law
(:class:`~mixscale.laws.AdditiveLaw`) with the amplitudes of the model-size and token terms made
functions of the mixture,

.. math::

    L_i(h, N, D) = E_i + \frac{1}{\sum_j C_{ij}\, h_j^{\gamma_{ij}}}
                 + \frac{A_i(h)}{N^{\alpha_i}} + \frac{B_i(h)}{D^{\beta_i}},
    \qquad
    A_i(h) = \Big(\sum_j C^A_{ij} h_j\Big)^{\gamma^A_i},\quad
    B_i(h) = \Big(\sum_j C^B_{ij} h_j\Big)^{\gamma^B_i} .

So, unlike the additive law, the mixture that minimises a target's loss moves with ``N`` and
``D``. (Source note: the form was taken from the paper's description of the joint law; the paper
text was not reachable when this module was written, so the equation number is not given here
and the amplitude form should be checked against the paper.)

Parameters: ``E, α, β, γ^A, γ^B`` per target and ``C, γ, C^A, C^B`` per (target, training
domain): ``M (4K + 5)`` in all, all positive (``exp`` of the raw fields). Every target, also an
out-of-mixture one, can be predicted.

Zero weights: as in the additive law the power terms are exactly ``0`` at ``h_j = 0`` with
finite gradients, and the amplitude sums are positive on the simplex (positive ``C^A, C^B``,
weights summing to 1), so no floor is needed.
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from ._additive import init_mixture_term, mixture_term
from ._base import AbstractLaw, DataSummary
from ._registry import register_law
from ._terms import (
    EXPONENT_RANGE,
    check_mixture,
    every_target,
    log_power_sum,
    log_range,
    log_uniform,
    positive,
    uniform,
)

__all__ = ["JointLaw"]


def _amplitude(log_C: jax.Array, log_gamma: jax.Array, h: jax.Array) -> jax.Array:
    r""":math:`(\sum_j C_{ij} h_j)^{\gamma_i}`, computed in logs (the sum as a log-sum-exp,
    :func:`~mixscale.laws._terms.log_power_sum`, so that small ``C_ij`` cannot underflow it):
    ``(M,)``."""
    return jnp.exp(jnp.exp(log_gamma) * log_power_sum(log_C, h[None, :], 1.0))


@register_law
class JointLaw(AbstractLaw):
    """Shukor et al.'s joint law; see the module docstring for the formula.

    Fields hold logs of the positive parameters; read the natural ones through the properties
    ``E, C, gamma, C_A, gamma_A, alpha, C_B, gamma_B, beta``, and the mixture-dependent
    amplitudes through :meth:`amplitudes`.
    """

    name: ClassVar[str] = "joint"
    uses_scale: ClassVar[bool] = True
    variants: ClassVar[tuple[str, ...]] = ()
    #: ``W = 4K + 5`` own parameters per target, all acting through exponentials: one reverse
    #: pass per run beats ``W`` tangents (:mod:`mixscale._blocks`)
    row_jacobian: ClassVar[str] = "reverse-own"
    per_target_fields: ClassVar[tuple[str, ...]] = (
        "log_E", "log_C", "log_gamma", "log_C_A", "log_gamma_A", "log_alpha", "log_C_B",
        "log_gamma_B", "log_beta")

    log_E: jax.Array
    log_C: jax.Array
    log_gamma: jax.Array
    log_C_A: jax.Array
    log_gamma_A: jax.Array
    log_alpha: jax.Array
    log_C_B: jax.Array
    log_gamma_B: jax.Array
    log_beta: jax.Array

    def __check_init__(self):
        m, k = jnp.shape(self.log_C)
        for what in ("log_gamma", "log_C_A", "log_C_B"):
            if jnp.shape(getattr(self, what)) != (m, k):
                raise ValueError(f"{what[4:]} must have shape ({m}, {k}), got "
                                 f"{jnp.shape(getattr(self, what))}")
        for what in ("log_E", "log_gamma_A", "log_alpha", "log_gamma_B", "log_beta"):
            if jnp.shape(getattr(self, what)) != (m,):
                raise ValueError(f"{what[4:]} must have shape ({m},), got "
                                 f"{jnp.shape(getattr(self, what))}")

    # ----------------------------------------------------------- natural parameters
    E = property(lambda self: jnp.exp(self.log_E), doc="Irreducible losses ``(M,)``.")
    C = property(lambda self: jnp.exp(self.log_C), doc="Mixture coefficients ``(M, K)``.")
    gamma = property(lambda self: jnp.exp(self.log_gamma), doc="Mixture exponents ``(M, K)``.")
    C_A = property(lambda self: jnp.exp(self.log_C_A), doc="Size-amplitude weights ``(M, K)``.")
    gamma_A = property(lambda self: jnp.exp(self.log_gamma_A),
                       doc="Size-amplitude exponents ``(M,)``.")
    alpha = property(lambda self: jnp.exp(self.log_alpha), doc="Model-size exponents ``(M,)``.")
    C_B = property(lambda self: jnp.exp(self.log_C_B), doc="Token-amplitude weights ``(M, K)``.")
    gamma_B = property(lambda self: jnp.exp(self.log_gamma_B),
                       doc="Token-amplitude exponents ``(M,)``.")
    beta = property(lambda self: jnp.exp(self.log_beta), doc="Token exponents ``(M,)``.")

    def amplitudes(self, h: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The mixture-dependent amplitudes ``(A(h), B(h))``, each ``(M,)``."""
        h = check_mixture(h, self.log_C.shape[1])
        return (_amplitude(self.log_C_A, self.log_gamma_A, h),
                _amplitude(self.log_C_B, self.log_gamma_B, h))

    @property
    def n_train_domains(self) -> int:
        """``K``, the number of training domains."""
        return int(self.log_C.shape[-1])

    def predict(self, h: jax.Array, N: jax.Array, D: jax.Array) -> jax.Array:
        """Losses ``(M,)`` of the targets for mixture ``h`` ``(K,)``, size ``N``, tokens ``D``."""
        h = check_mixture(h, self.log_C.shape[1], N, D)
        A_h, B_h = self.amplitudes(h)
        return (self.E + mixture_term(self.log_C, self.log_gamma, h)
                + A_h * jnp.exp(-self.alpha * jnp.log(N))
                + B_h * jnp.exp(-self.beta * jnp.log(D)))

    @classmethod
    def from_params(cls, *, E, C, gamma, C_A, gamma_A, alpha, C_B, gamma_B, beta) -> JointLaw:
        """A law from natural (positive) parameters: ``C, gamma, C_A, C_B`` ``(M, K)``, the
        rest ``(M,)``."""
        return cls(log_E=positive(E, "E"), log_C=positive(C, "C"),
                   log_gamma=positive(gamma, "gamma"), log_C_A=positive(C_A, "C_A"),
                   log_gamma_A=positive(gamma_A, "gamma_A"), log_alpha=positive(alpha, "alpha"),
                   log_C_B=positive(C_B, "C_B"), log_gamma_B=positive(gamma_B, "gamma_B"),
                   log_beta=positive(beta, "beta"))

    @property
    def targets(self) -> None:
        """``None``: every target is predicted from the whole mixture (none is tied to a
        training domain)."""
        return None

    def natural_parameters(self) -> dict[str, jax.Array]:
        """``E, C, gamma, C_A, gamma_A, alpha, C_B, gamma_B, beta`` (see :meth:`from_params`)."""
        return {name: getattr(self, name) for name in
                ("E", "C", "gamma", "C_A", "gamma_A", "alpha", "C_B", "gamma_B", "beta")}

    @classmethod
    def n_parameters(cls, n_train_domains: int, n_targets: int) -> int:
        """``M (4K + 5)``."""
        return n_targets * (4 * n_train_domains + 5)

    @classmethod
    def targets_for(cls, train_domains, loss_domains, **options) -> tuple[str, ...]:
        """Every loss domain (:func:`~mixscale.laws._terms.every_target`)."""
        return every_target(train_domains, loss_domains)

    @classmethod
    def parameter_bounds(cls, summary: DataSummary) -> dict[str, tuple[float, float]]:
        """Exponents ``γ, α, β`` in :data:`~mixscale.laws._terms.EXPONENT_RANGE`
        (``[0.01, 3]``); the amplitudes' mixture exponents ``γ^A, γ^B ∈ [0.01, 5]``."""
        del summary
        exponent = log_range(*EXPONENT_RANGE)
        power = log_range(0.01, 5.0)
        return {"log_gamma": exponent, "log_alpha": exponent, "log_beta": exponent,
                "log_gamma_A": power, "log_gamma_B": power}

    @classmethod
    def nested(cls, **options) -> tuple:
        """``()``: no variant of another law is nested in this one."""
        del options
        return ()

    @classmethod
    def init(cls, key, summary: DataSummary) -> JointLaw:
        """A random initial law for one restart, scaled to the data.

        ``E`` and the mixture term as in :meth:`AdditiveLaw.init`; ``α, β`` log-uniform in
        ``[0.05, 1]``; ``γ^A, γ^B`` log-uniform in ``[0.25, 2]``; ``C^A_ij = u_ij a_i^{1/γ^A_i}``
        with ``u`` log-uniform in ``[0.5, 2]`` and ``a_i`` the amplitude that makes the size term a
        uniform ``[0.05, 0.6]`` fraction of the target's mean loss at the geometric middle of the
        observed sizes (``C^B`` likewise with tokens), so ``A(h) ≈ a`` near the even split.
        """
        k, m = len(summary.train_domains), len(summary.targets)
        keys = jax.random.split(key, 8)
        loss_mid = jnp.asarray(0.5 * summary.loss_min + 0.5 * summary.loss_max)
        log_mid = (float(np.log(np.sqrt(np.prod(summary.model_size)))),
                   float(np.log(np.sqrt(np.prod(summary.tokens)))))
        log_C, log_gamma = init_mixture_term(keys[0], k, loss_mid)
        fields = {}
        for j, (amp, power, exponent) in enumerate((("log_C_A", "log_gamma_A", "log_alpha"),
                                                    ("log_C_B", "log_gamma_B", "log_beta"))):
            kk = jax.random.split(keys[1 + j], 4)
            log_exp = log_uniform(kk[0], 0.05, 1.0, (m,))
            log_pow = log_uniform(kk[1], 0.25, 2.0, (m,))
            frac = uniform(kk[2], 0.05, 0.6, (m,))
            log_amp = jnp.log(frac * loss_mid) + jnp.exp(log_exp) * log_mid[j]
            fields[amp] = (log_uniform(kk[3], 0.5, 2.0, (m, k))
                           + (log_amp * jnp.exp(-log_pow))[:, None])
            fields[power] = log_pow
            fields[exponent] = log_exp
        E = uniform(keys[3], 0.2, 0.9, (m,)) * jnp.asarray(summary.loss_min)
        return cls(log_E=jnp.log(E), log_C=log_C, log_gamma=log_gamma, **fields)
