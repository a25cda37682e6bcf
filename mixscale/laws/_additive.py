r"""The additive data-mixing law of Shukor et al. (2025), one set of parameters per target.

Shukor, Bethune, Busbridge, Grangier, Fini, El-Nouby, Ablin, "Scaling Laws for Optimal Data
Mixtures", arXiv:2507.09404 (2025), the additive law of §2:

.. math::

    L_i(h, N, D) = E_i + \frac{1}{\sum_j C_{ij}\, h_j^{\gamma_{ij}}}
                 + \frac{A_i}{N^{\alpha_i}} + \frac{B_i}{D^{\beta_i}} .

The paper fits one such law per target domain ``i``; here the ``M`` targets share one module
(their parameters are independent rows), so one call predicts them all. Every target, also an
out-of-mixture one (SlimPajama's ``openhermes``), can be predicted: the mixture enters only through
the weights of the training domains.

Parameters: ``E, A, α, B, β`` per target and ``C, γ`` per (target, training domain):
``M (2K + 5)`` in all. All are positive (``exp`` of the raw fields).

Zero weights: :math:`h_j^{\gamma_{ij}}` is exactly ``0`` at ``h_j = 0`` with finite gradients.
The sum is taken in logs (:func:`~mixscale.laws._terms.log_power_sum`), so a coefficient
:math:`C_{ij}` fitted towards ``0`` cannot underflow it or its Jacobian (it did, as ``0/0``, on
RegMix-1B); it stays positive because the weights of a mixture sum to 1. No floor is needed.

Units: ``N`` and ``D`` in the law units of the table.
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

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

__all__ = ["AdditiveLaw"]


def mixture_term(log_C: jax.Array, log_gamma: jax.Array, h: jax.Array) -> jax.Array:
    r""":math:`1 / \sum_j C_{ij} h_j^{\gamma_{ij}}` from ``log C, log γ`` of shape ``(M, K)``:
    ``(M,)``, summed in logs (:func:`~mixscale.laws._terms.log_power_sum`) so that a ``C_ij``
    fitted towards ``0`` leaves the term and its gradients finite."""
    return jnp.exp(-log_power_sum(log_C, h[None, :], jnp.exp(log_gamma)))


def init_mixture_term(key: jax.Array, k: int, loss_mid: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Raw ``(log C, log γ)``, each ``(M, K)``, for :meth:`AdditiveLaw.init` and the joint law.

    ``γ`` log-uniform in ``[0.05, 1.5]``; ``C_ij = u_ij K^{γ_ij} / (K f_i L_i)`` with ``u``
    log-uniform in ``[0.5, 2]`` and ``f`` uniform in ``[0.05, 0.6]``, so that at the even split
    ``h = 1/K`` the term is about a fraction ``f_i`` of the target's mean loss ``L_i``.
    """
    m = loss_mid.shape[0]
    k_gamma, k_u, k_f = jax.random.split(key, 3)
    log_gamma = log_uniform(k_gamma, 0.05, 1.5, (m, k))
    log_u = log_uniform(k_u, 0.5, 2.0, (m, k))
    frac = uniform(k_f, 0.05, 0.6, (m, 1))
    log_C = log_u + jnp.exp(log_gamma) * np.log(k) - jnp.log(k * frac * loss_mid[:, None])
    return log_C, log_gamma


@register_law
class AdditiveLaw(AbstractLaw):
    """Shukor et al.'s additive law; see the module docstring for the formula.

    Fields hold logs of the positive parameters; read the natural ones through the properties
    ``E, C, gamma, A, alpha, B, beta``. :meth:`from_params` builds one from natural parameters.
    """

    name: ClassVar[str] = "additive"
    uses_scale: ClassVar[bool] = True
    variants: ClassVar[tuple[str, ...]] = ()
    #: ``W = 2K + 5`` own parameters per target, all acting through exponentials: one reverse
    #: pass per run beats ``W`` tangents (:mod:`mixscale._blocks`)
    row_jacobian: ClassVar[str] = "reverse-own"
    per_target_fields: ClassVar[tuple[str, ...]] = (
        "log_E", "log_C", "log_gamma", "log_A", "log_alpha", "log_B", "log_beta")

    log_E: jax.Array
    log_C: jax.Array
    log_gamma: jax.Array
    log_A: jax.Array
    log_alpha: jax.Array
    log_B: jax.Array
    log_beta: jax.Array

    def __check_init__(self):
        m, k = jnp.shape(self.log_C)
        if jnp.shape(self.log_gamma) != (m, k):
            raise ValueError(f"C has shape {(m, k)} but gamma {jnp.shape(self.log_gamma)}")
        for what in ("log_E", "log_A", "log_alpha", "log_B", "log_beta"):
            if jnp.shape(getattr(self, what)) != (m,):
                raise ValueError(f"{what[4:]} must have shape ({m},), got "
                                 f"{jnp.shape(getattr(self, what))}")

    # ----------------------------------------------------------- natural parameters
    E = property(lambda self: jnp.exp(self.log_E), doc="Irreducible losses ``(M,)``.")
    C = property(lambda self: jnp.exp(self.log_C), doc="Mixture coefficients ``(M, K)``.")
    gamma = property(lambda self: jnp.exp(self.log_gamma), doc="Mixture exponents ``(M, K)``.")
    A = property(lambda self: jnp.exp(self.log_A), doc="Model-size amplitudes ``(M,)``.")
    alpha = property(lambda self: jnp.exp(self.log_alpha), doc="Model-size exponents ``(M,)``.")
    B = property(lambda self: jnp.exp(self.log_B), doc="Token amplitudes ``(M,)``.")
    beta = property(lambda self: jnp.exp(self.log_beta), doc="Token exponents ``(M,)``.")

    @property
    def n_train_domains(self) -> int:
        """``K``, the number of training domains."""
        return int(self.log_C.shape[-1])

    def predict(self, h: jax.Array, N: jax.Array, D: jax.Array) -> jax.Array:
        """Losses ``(M,)`` of the targets for mixture ``h`` ``(K,)``, size ``N``, tokens ``D``."""
        h = check_mixture(h, self.log_C.shape[1], N, D)
        return (self.E + mixture_term(self.log_C, self.log_gamma, h)
                + self.A * jnp.exp(-self.alpha * jnp.log(N))
                + self.B * jnp.exp(-self.beta * jnp.log(D)))

    @classmethod
    def from_params(cls, *, E, C, gamma, A, alpha, B, beta) -> AdditiveLaw:
        """A law from natural (positive) parameters: ``C, gamma`` ``(M, K)``, the rest ``(M,)``."""
        return cls(log_E=positive(E, "E"), log_C=positive(C, "C"),
                   log_gamma=positive(gamma, "gamma"), log_A=positive(A, "A"),
                   log_alpha=positive(alpha, "alpha"), log_B=positive(B, "B"),
                   log_beta=positive(beta, "beta"))

    @property
    def targets(self) -> None:
        """``None``: every target is predicted from the whole mixture (none is tied to a
        training domain)."""
        return None

    def natural_parameters(self) -> dict[str, jax.Array]:
        """``E, C, gamma, A, alpha, B, beta`` (the arguments of :meth:`from_params`)."""
        return {name: getattr(self, name)
                for name in ("E", "C", "gamma", "A", "alpha", "B", "beta")}

    @classmethod
    def n_parameters(cls, n_train_domains: int, n_targets: int) -> int:
        """``M (2K + 5)``."""
        return n_targets * (2 * n_train_domains + 5)

    @classmethod
    def targets_for(cls, train_domains, loss_domains, **options) -> tuple[str, ...]:
        """Every loss domain (:func:`~mixscale.laws._terms.every_target`)."""
        return every_target(train_domains, loss_domains)

    @classmethod
    def parameter_bounds(cls, summary: DataSummary) -> dict[str, tuple[float, float]]:
        """Exponents ``γ, α, β`` in :data:`~mixscale.laws._terms.EXPONENT_RANGE` (``[0.01, 3]``)."""
        del summary
        exponent = log_range(*EXPONENT_RANGE)
        return {"log_gamma": exponent, "log_alpha": exponent, "log_beta": exponent}

    @classmethod
    def nested(cls, **options) -> tuple:
        """``()``: no variant of another law is nested in this one."""
        del options
        return ()

    @classmethod
    def init(cls, key, summary: DataSummary) -> AdditiveLaw:
        """A random initial law for one restart, scaled to the data.

        Per target, with ``L`` its mean observed loss (midpoint of min and max): ``E`` uniform in
        ``[0.2, 0.9]·min loss``; the mixture term as in :func:`init_mixture_term`; ``α, β``
        log-uniform in ``[0.05, 1]`` and ``A, B`` such that, at the geometric middle of the
        observed sizes (tokens), each scale term is a uniform ``[0.05, 0.6]`` fraction of ``L``.
        """
        k, m = len(summary.train_domains), len(summary.targets)
        keys = jax.random.split(key, 6)
        loss_mid = jnp.asarray(0.5 * summary.loss_min + 0.5 * summary.loss_max)
        n_mid = float(np.sqrt(np.prod(summary.model_size)))
        d_mid = float(np.sqrt(np.prod(summary.tokens)))
        log_C, log_gamma = init_mixture_term(keys[0], k, loss_mid)
        log_alpha = log_uniform(keys[1], 0.05, 1.0, (m,))
        log_beta = log_uniform(keys[2], 0.05, 1.0, (m,))
        frac = uniform(keys[3], 0.05, 0.6, (2, m))
        E = uniform(keys[4], 0.2, 0.9, (m,)) * jnp.asarray(summary.loss_min)
        return cls(log_E=jnp.log(E), log_C=log_C, log_gamma=log_gamma,
                   log_A=jnp.log(frac[0] * loss_mid) + jnp.exp(log_alpha) * np.log(n_mid),
                   log_alpha=log_alpha,
                   log_B=jnp.log(frac[1] * loss_mid) + jnp.exp(log_beta) * np.log(d_mid),
                   log_beta=log_beta)
