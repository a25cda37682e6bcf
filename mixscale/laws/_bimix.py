r"""BiMix, the bivariate data mixing law of Ge et al. (2024): a domain's own weight and the tokens.

Ge, Ma, Huang, Wang, Zhang, Wang, Lin, Li, "BiMix: A Bivariate Data Mixing Law for Language Model
Pretraining", arXiv:2405.14908 (2024), the bivariate mixing law of §3 (written there with the
training steps :math:`s`; tokens are proportional to steps at a fixed batch size):

.. math::

    L_i(h, D) = \frac{A_i}{h_i^{\alpha_i}} \Big(\frac{B_i}{D^{\beta_i}} + C_i\Big)
              = h_i^{-\alpha_i} \big(B_i' D^{-\beta_i} + C_i'\big) .

The target's loss depends only on its *own* weight :math:`h_i` and on ``D``; there is no
model-size term, so the law is blind to ``N``. The paper's ``A_i`` is redundant (only the
products :math:`B_i' = A_i B_i` and :math:`C_i' = A_i C_i` are identifiable), so this module fits
the right-hand form; :meth:`from_params` accepts ``A`` and folds it in.

Parameters: ``α, β, B', C'`` per target, all positive: ``4M``. Only in-mixture targets can be
predicted (the law needs the target's own weight).

Zero weights: :math:`h_i^{-\alpha_i}` is infinite at ``h_i = 0``. As in the capacity law, the
effective share is ``max(h_i, weight_floor)`` (default ``1e-3``, the resolution of RegMix's
published weights), so losses and gradients stay finite; ``weight_floor = 0`` gives the pure
law. Above the floor the law is exactly the formula.
"""

from __future__ import annotations

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
    floored_log,
    in_mixture_targets,
    log_range,
    log_uniform,
    positive,
    uniform,
)

__all__ = ["BiMixLaw"]


@register_law
class BiMixLaw(AbstractLaw):
    """Ge et al.'s BiMix law; see the module docstring for the formula.

    Attributes:
        log_alpha, log_beta, log_B, log_C: ``(M,)`` logs of ``α, β, B', C'``.
        targets: training-domain index of each of the ``M`` targets (static).
        n_domains: ``K``, the number of training domains (static).
        weight_floor: smallest share used for ``h_i`` (static), see the module docstring.
    """

    name: ClassVar[str] = "bimix"
    uses_scale: ClassVar[bool] = True
    variants: ClassVar[tuple[str, ...]] = ()
    per_target_fields: ClassVar[tuple[str, ...]] = ("log_alpha", "log_beta", "log_B", "log_C")

    log_alpha: jax.Array
    log_beta: jax.Array
    log_B: jax.Array
    log_C: jax.Array
    targets: tuple[int, ...] = eqx.field(static=True)
    n_domains: int = eqx.field(static=True)
    weight_floor: float = eqx.field(static=True, default=1e-3)

    def __check_init__(self):
        m = len(self.targets)
        for what in ("log_alpha", "log_beta", "log_B", "log_C"):
            if jnp.shape(getattr(self, what)) != (m,):
                raise ValueError(f"{what[4:]} must have shape ({m},) (one per target), got "
                                 f"{jnp.shape(getattr(self, what))}")
        if not all(0 <= t < self.n_domains for t in self.targets):
            raise ValueError(f"targets {self.targets} must index the {self.n_domains} domains")
        check_weight_floor(self.weight_floor)

    alpha = property(lambda self: jnp.exp(self.log_alpha), doc="Weight exponents ``(M,)``.")
    beta = property(lambda self: jnp.exp(self.log_beta), doc="Token exponents ``(M,)``.")
    B = property(lambda self: jnp.exp(self.log_B), doc="Token amplitudes ``A·B`` ``(M,)``.")
    C = property(lambda self: jnp.exp(self.log_C), doc="Constant amplitudes ``A·C`` ``(M,)``.")

    @property
    def n_train_domains(self) -> int:
        """``K``, the number of training domains."""
        return int(self.n_domains)

    def predict(self, h: jax.Array, N: jax.Array, D: jax.Array) -> jax.Array:
        """Losses ``(M,)`` for mixture ``h`` ``(K,)`` and tokens ``D``; ``N`` is ignored."""
        h = check_mixture(h, self.n_domains, N, D)
        del N
        log_share = floored_log(h[jnp.asarray(self.targets)], self.weight_floor)
        return jnp.exp(-self.alpha * log_share) * (self.B * jnp.exp(-self.beta * jnp.log(D))
                                                   + self.C)

    @classmethod
    def from_params(cls, *, alpha, beta, B, C, n_domains: int, A=None,
                    targets: Sequence[int] | None = None,
                    weight_floor: float = 1e-3) -> BiMixLaw:
        """A law from natural (positive) parameters, each ``(M,)``; ``A`` (optional) is folded
        into ``B`` and ``C``. ``targets`` defaults to every training domain in order."""
        log_A = 0.0 if A is None else positive(A, "A")
        targets = tuple(range(n_domains)) if targets is None else tuple(int(t) for t in targets)
        return cls(log_alpha=positive(alpha, "alpha"), log_beta=positive(beta, "beta"),
                   log_B=positive(B, "B") + log_A, log_C=positive(C, "C") + log_A,
                   targets=targets, n_domains=int(n_domains), weight_floor=weight_floor)

    @classmethod
    def targets_for(cls, train_domains, loss_domains, **options) -> tuple[str, ...]:
        """In-mixture loss domains only (:func:`~mixscale.laws._terms.in_mixture_targets`)."""
        return in_mixture_targets(train_domains, loss_domains)

    def natural_parameters(self) -> dict[str, jax.Array]:
        """``alpha, beta, B, C`` (``A`` folded into ``B, C``; see :meth:`from_params`)."""
        return {name: getattr(self, name) for name in ("alpha", "beta", "B", "C")}

    @classmethod
    def n_parameters(cls, n_train_domains: int, n_targets: int, *,
                     weight_floor: float = 1e-3) -> int:
        """``4 M``."""
        del n_train_domains, weight_floor
        return 4 * n_targets

    @classmethod
    def parameter_bounds(cls, summary: DataSummary, *,
                         weight_floor: float = 1e-3) -> dict[str, tuple[float, float]]:
        """Exponents ``α, β`` in :data:`~mixscale.laws._terms.EXPONENT_RANGE` (``[0.01, 3]``)."""
        del summary, weight_floor
        exponent = log_range(*EXPONENT_RANGE)
        return {"log_alpha": exponent, "log_beta": exponent}

    @classmethod
    def nested(cls, **options) -> tuple:
        """``()``: no variant of another law is nested in this one."""
        del options
        return ()

    @classmethod
    def init(cls, key, summary: DataSummary, *, weight_floor: float = 1e-3) -> BiMixLaw:
        """A random initial law for one restart, scaled to the data.

        Per target, with ``L`` its mean observed loss (midpoint of min and max): ``α``
        log-uniform in ``[0.01, 0.5]``, ``β`` log-uniform in ``[0.05, 1]``; ``B', C'`` such that
        at the even split ``h_i = 1/K`` and the geometric middle of the observed tokens the
        token term is a uniform ``[0.05, 0.6]`` fraction ``f`` of ``L`` and the law equals ``L``.
        """
        targets = summary.target_index
        k, m = len(summary.train_domains), len(targets)
        keys = jax.random.split(key, 3)
        loss_mid = jnp.asarray(0.5 * summary.loss_min + 0.5 * summary.loss_max)
        log_d_mid = float(np.log(np.sqrt(np.prod(summary.tokens))))
        log_alpha = log_uniform(keys[0], 0.01, 0.5, (m,))
        log_beta = log_uniform(keys[1], 0.05, 1.0, (m,))
        frac = uniform(keys[2], 0.05, 0.6, (m,))
        # h^{-α} at h = 1/K is K^{α}: divide it out of the target level.
        log_level = jnp.log(loss_mid) - jnp.exp(log_alpha) * np.log(k)
        return cls(log_alpha=log_alpha, log_beta=log_beta,
                   log_B=log_level + jnp.log(frac) + jnp.exp(log_beta) * log_d_mid,
                   log_C=log_level + jnp.log(1.0 - frac), targets=targets, n_domains=k,
                   weight_floor=weight_floor)
