r"""Linear and log-linear regression of each target's loss on the mixture weights, at one scale.

The linear baseline of RegMix (Liu, Zeng, Pang, et al., "RegMix: Data Mixture as Regression for
Language Model Pre-training", ICLR 2025, §2: a linear regression model fitted on the mixture
weights of small proxy runs), and its log-linear counterpart (the log-loss linear in the weights):

.. math::

    \text{linear:}\quad L_i(h) = \sum_j w_{ij} h_j ,
    \qquad
    \text{log-linear:}\quad L_i(h) = \exp\Big(\sum_j w_{ij} h_j\Big) .

The intercept is absorbed: on the simplex :math:`b_i + \sum_j w_{ij} h_j = \sum_j (w_{ij} + b_i)
h_j`, so an explicit intercept is one redundant parameter per target (a flat direction of the
fit). ``w`` is free (no sign constraint). The log-linear model is the data mixing law
(:class:`~mixscale.laws.DataMixingLaw`) with no irreducible loss.

Parameters: ``w`` per (target, training domain): ``M K``. No model-size or token term
(``uses_scale = False``): fit it at one scale. Every target, also an out-of-mixture one, can be
predicted. Fitted through the same fitter and objective as every other law (the relative-residual
Huber loss, not ordinary least squares), so the comparison changes only the law.

Zero weights: both models are smooth in ``h`` everywhere; zero weights need no treatment.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from ._base import AbstractLaw, DataSummary
from ._registry import register_law
from ._terms import check_mixture, every_target, uniform

__all__ = ["RegressionLaw"]

VARIANTS = ("linear", "loglinear")


@register_law
class RegressionLaw(AbstractLaw):
    """Linear or log-linear regression on the weights; see the module docstring.

    Attributes:
        w: ``(M, K)`` regression coefficients (nats for ``linear``, log-nats for ``loglinear``).
        variant: ``"linear"`` (default) or ``"loglinear"`` (static).
    """

    name: ClassVar[str] = "regression"
    uses_scale: ClassVar[bool] = False
    variants: ClassVar[tuple[str, ...]] = VARIANTS
    per_target_fields: ClassVar[tuple[str, ...]] = ("w",)

    w: jax.Array
    variant: str = eqx.field(static=True, default="linear")

    def __check_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; choose one of {VARIANTS}")
        if jnp.ndim(self.w) != 2:
            raise ValueError(f"w must be (M, K), got shape {jnp.shape(self.w)}")

    @property
    def n_train_domains(self) -> int:
        """``K``, the number of training domains."""
        return int(self.w.shape[-1])

    def predict(self, h: jax.Array, N: jax.Array, D: jax.Array) -> jax.Array:
        """Losses ``(M,)`` for mixture ``h`` ``(K,)``; ``N`` and ``D`` are ignored."""
        del N, D
        h = check_mixture(h, self.w.shape[1])
        z = self.w @ h
        return jnp.exp(z) if self.variant == "loglinear" else z

    @classmethod
    def from_params(cls, *, w, intercept=None, variant: str = "linear") -> RegressionLaw:
        """A law from coefficients ``w`` ``(M, K)`` and an optional ``intercept`` ``(M,)``
        (folded into ``w``, exact on the simplex)."""
        w = jnp.asarray(w, dtype=float)
        if intercept is not None:
            w = w + jnp.asarray(intercept, dtype=float)[:, None]
        return cls(w=w, variant=variant)

    @property
    def targets(self) -> None:
        """``None``: every target is predicted from the whole mixture (none is tied to a
        training domain)."""
        return None

    def natural_parameters(self) -> dict[str, jax.Array]:
        """``w`` ``(M, K)`` (the intercept folded in; see :meth:`from_params`)."""
        return {"w": self.w}

    @classmethod
    def n_parameters(cls, n_train_domains: int, n_targets: int, *,
                     variant: str = "linear") -> int:
        """``M K``."""
        del variant
        return n_targets * n_train_domains

    @classmethod
    def targets_for(cls, train_domains, loss_domains, **options) -> tuple[str, ...]:
        """Every loss domain (:func:`~mixscale.laws._terms.every_target`)."""
        return every_target(train_domains, loss_domains)

    @classmethod
    def parameter_bounds(cls, summary: DataSummary, *,
                         variant: str = "linear") -> dict[str, tuple[float, float]]:
        """None: the coefficients are free (a linear model has no exponent to run away)."""
        del summary, variant
        return {}

    @classmethod
    def nested(cls, **options) -> tuple:
        """``()``: no variant of another law is nested in this one."""
        del options
        return ()

    @classmethod
    def init(cls, key, summary: DataSummary, *, variant: str = "linear") -> RegressionLaw:
        """A random initial law for one restart, scaled to the data.

        Per target, with ``L`` its mean observed loss (midpoint of min and max): ``w_ij = L (1 +
        δ_ij)`` (linear) or ``log L + δ_ij`` (log-linear), ``δ`` uniform in ``[-0.2, 0.2]``.
        """
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
        k, m = len(summary.train_domains), len(summary.targets)
        loss_mid = jnp.asarray(0.5 * summary.loss_min + 0.5 * summary.loss_max)[:, None]
        delta = uniform(key, -0.2, 0.2, (m, k))
        w = loss_mid * (1.0 + delta) if variant == "linear" else jnp.log(loss_mid) + delta
        return cls(w=w, variant=variant)
