r"""Keep rules: which ``N`` features a learner of capacity ``N`` holds under a mixture ``h``.

A keep rule gives every feature a *score* under ``h``; the learner keeps the ``N`` features with
the highest scores, ties broken by the lower flattened index (lower rank, then lower domain).
Scores see the mixture ``h`` ``(K,)``, the eigenvalues ``a`` ``(K, P)`` and the signal
``w2 = (w*)²`` ``(P,)``, with the training eigenvalue :math:`\lambda_k(h) = \sum_j h_j a_{jk}`.

* :class:`AbstractKeepRule` — the contract: one method, ``scores(h, a, w2) -> (P,)``.
* :class:`TopN` — the model's rule, ``score="signal"``: :math:`\lambda_k(h)\,(w^*_k)^2` (the
  inner problem of the paper's law exactly) or ``score="eigen"``: :math:`\lambda_k(h)` (the top
  eigen-directions of ``H(h)``).

A new rule is one subclass implementing ``scores``; the model, the recursion, the closed form,
Monte Carlo and the sweeps all select features through :func:`feature_order` alone.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import Array

__all__ = ["AbstractKeepRule", "TopN", "as_keep_rule", "feature_order", "feature_positions"]


class AbstractKeepRule(eqx.Module):
    """A keep rule: a score per feature; a learner of capacity ``N`` keeps the ``N`` highest."""

    @abc.abstractmethod
    def scores(self, h: Array, a: Array, w2: Array) -> Array:
        """Scores ``(P,)`` of every feature under mixture ``h`` ``(K,)``, given the eigenvalues
        ``a`` ``(K, P)`` and the signal ``w2`` ``(P,)``. Traceable; higher is kept first."""

    def describe(self):
        """A JSON-friendly description (for the generating settings of a loss table)."""
        out = {"kind": type(self).__name__}
        for name, value in vars(self).items():
            out[name] = np.asarray(value).tolist()
        return out


class TopN(AbstractKeepRule):
    r"""Keep the ``N`` largest :math:`\lambda_k(h)\,(w^*_k)^2` (``score="signal"``) or the ``N``
    largest :math:`\lambda_k(h)` (``score="eigen"``).

    Args:
        score: ``"signal"`` or ``"eigen"``.
    """

    score: str = eqx.field(static=True)

    def __init__(self, score: str = "signal"):
        if score not in ("signal", "eigen"):
            raise ValueError(f"TopN's score must be 'signal' or 'eigen', got {score!r}")
        self.score = score

    def scores(self, h, a, w2):
        lam = h @ a
        return lam * w2 if self.score == "signal" else lam

    def describe(self) -> str:
        """The score's name: the model accepts it as ``keep=...``."""
        return self.score


def as_keep_rule(keep) -> AbstractKeepRule:
    """``keep`` as a rule: a rule is returned as is, ``"signal"``/``"eigen"`` become a
    :class:`TopN`; anything else is a ``ValueError`` saying what is accepted."""
    if isinstance(keep, AbstractKeepRule):
        return keep
    if isinstance(keep, str) and keep in ("signal", "eigen"):
        return TopN(keep)
    raise ValueError(f"keep must be one of 'signal', 'eigen' or an AbstractKeepRule (e.g. "
                     f"TopN('signal')), got {keep!r}")


def feature_order(rule: AbstractKeepRule, h: Array, a: Array, w2: Array,
                  valid: Array | None = None) -> Array:
    """Feature indices ``(P,)`` from the highest score down (stable: ties by lower index); a
    learner of capacity ``N`` keeps the first ``N``. Features outside the optional ``valid``
    mask ``(P,)`` (padding) come after every valid one."""
    scores = rule.scores(h, a, w2)
    if scores.shape != w2.shape:
        raise ValueError(f"{type(rule).__name__}.scores must return one score per feature, "
                         f"shape {w2.shape}; got shape {scores.shape}")
    if valid is not None:
        scores = jnp.where(valid, scores, -jnp.inf)
    return jnp.argsort(-scores, stable=True)


def feature_positions(rule: AbstractKeepRule, h: Array, a: Array, w2: Array,
                      valid: Array | None = None) -> Array:
    """The position ``(P,)`` int of every feature in :func:`feature_order`.

    A learner of capacity ``N`` keeps the mask ``feature_positions(...) < N``; computing the
    positions once per mixture serves every ``N`` (``N`` may be traced).
    """
    order = feature_order(rule, h, a, w2, valid)
    return jnp.zeros(order.shape, order.dtype).at[order].set(
        jnp.arange(order.shape[0], dtype=order.dtype))
