r"""The data mixing law of Ye et al. (ICLR 2025), at one model size and token budget.

Ye, Liu, Sun, Zhou, Zhan, Qiu, "Data Mixing Laws: Optimizing Data Mixtures by Predicting Language
Modeling Performance", ICLR 2025 (arXiv:2403.16952), Eq. 6 (the multi-domain law):

.. math::

    L_i(h) = c_i + k_i \exp\Big(\sum_j t_{ij} h_j\Big) .

On the simplex (:math:`\sum_j h_j = 1`) the amplitude is redundant:
:math:`k_i e^{\sum_j t_{ij} h_j} = e^{\sum_j (t_{ij} + \log k_i) h_j}`, so this module fits
:math:`L_i = c_i + \exp(\sum_j t_{ij} h_j)` — the same family of functions on mixtures, without
the one direction of parameter space that changes nothing (a flat direction the optimiser would
otherwise wander along). ``k_i`` is recovered as ``1`` with ``t`` shifted; :meth:`from_params`
takes ``k`` and folds it in. ``c_i > 0`` (the irreducible loss; ``exp`` of a raw field); the
reducible part is positive by construction; ``t`` is free.

Parameters: ``c`` per target and ``t`` per (target, training domain): ``M (K + 1)``.
No model-size or token term (``uses_scale = False``): fit it at one scale. Every target, also an
out-of-mixture one, can be predicted.

Zero weights: the law is smooth in ``h`` everywhere, so zero weights need no treatment.
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp

from ._base import AbstractLaw, DataSummary
from ._registry import register_law
from ._terms import check_mixture, every_target, positive, uniform

__all__ = ["DataMixingLaw"]


@register_law
class DataMixingLaw(AbstractLaw):
    """Ye et al.'s data mixing law; see the module docstring for the formula.

    Attributes:
        log_c: ``(M,)`` logs of the irreducible losses ``c``.
        t: ``(M, K)`` interaction coefficients (with ``log k`` folded in).
    """

    name: ClassVar[str] = "dml"
    uses_scale: ClassVar[bool] = False
    variants: ClassVar[tuple[str, ...]] = ()
    per_target_fields: ClassVar[tuple[str, ...]] = ("log_c", "t")

    log_c: jax.Array
    t: jax.Array

    def __check_init__(self):
        m = jnp.shape(self.t)[0]
        if jnp.ndim(self.t) != 2 or jnp.shape(self.log_c) != (m,):
            raise ValueError(f"t must be (M, K) and c (M,), got {jnp.shape(self.t)} and "
                             f"{jnp.shape(self.log_c)}")

    @property
    def c(self) -> jax.Array:
        """Irreducible losses ``(M,)``."""
        return jnp.exp(self.log_c)

    @property
    def n_train_domains(self) -> int:
        """``K``, the number of training domains."""
        return int(self.t.shape[-1])

    def predict(self, h: jax.Array, N: jax.Array, D: jax.Array) -> jax.Array:
        """Losses ``(M,)`` for mixture ``h`` ``(K,)``; ``N`` and ``D`` are ignored."""
        del N, D
        h = check_mixture(h, self.t.shape[1])
        return self.c + jnp.exp(self.t @ h)

    @classmethod
    def from_params(cls, *, c, t, k=None) -> DataMixingLaw:
        """A law from the paper's parameters: ``c > 0`` ``(M,)``, ``t`` ``(M, K)`` and optional
        ``k > 0`` ``(M,)`` (folded into ``t``, exact on the simplex)."""
        t = jnp.asarray(t, dtype=float)
        if k is not None:
            t = t + positive(k, "k")[:, None]
        return cls(log_c=positive(c, "c"), t=t)

    @property
    def targets(self) -> None:
        """``None``: every target is predicted from the whole mixture (none is tied to a
        training domain)."""
        return None

    def natural_parameters(self) -> dict[str, jax.Array]:
        """``c`` ``(M,)`` and ``t`` ``(M, K)`` (``log k`` folded in; see :meth:`from_params`)."""
        return {"c": self.c, "t": self.t}

    @classmethod
    def n_parameters(cls, n_train_domains: int, n_targets: int) -> int:
        """``M (K + 1)``."""
        return n_targets * (n_train_domains + 1)

    @classmethod
    def targets_for(cls, train_domains, loss_domains, **options) -> tuple[str, ...]:
        """Every loss domain (:func:`~mixscale.laws._terms.every_target`)."""
        return every_target(train_domains, loss_domains)

    @classmethod
    def parameter_bounds(cls, summary: DataSummary) -> dict[str, tuple[float, float]]:
        """None: ``c`` is a loss and ``t`` a free log-linear coefficient (no exponent)."""
        del summary
        return {}

    @classmethod
    def nested(cls, **options) -> tuple:
        """``()``: no variant of another law is nested in this one."""
        del options
        return ()

    @classmethod
    def init(cls, key, summary: DataSummary) -> DataMixingLaw:
        """A random initial law for one restart, scaled to the data.

        Per target, with ``L`` its mean observed loss (midpoint of min and max): ``c`` uniform in
        ``[0.2, 0.9]·min loss``; ``t_ij = log(L - c) + δ_ij`` with ``δ`` uniform in ``[-1, 1]``,
        so the law starts near ``L`` at every mixture with a random tilt.
        """
        k, m = len(summary.train_domains), len(summary.targets)
        k_c, k_t = jax.random.split(key)
        loss_mid = jnp.asarray(0.5 * summary.loss_min + 0.5 * summary.loss_max)
        c = uniform(k_c, 0.2, 0.9, (m,)) * jnp.asarray(summary.loss_min)
        t = jnp.log(loss_mid - c)[:, None] + uniform(k_t, -1.0, 1.0, (m, k))
        return cls(log_c=jnp.log(c), t=t)
