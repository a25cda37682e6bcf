"""The interface every scaling law implements, so one fitter, one optimiser and one CLI serve all.

A law is an :class:`equinox.Module` whose array fields are its *raw* (unconstrained) parameters;
positivity and other constraints are imposed by transforms (``exp``, ``1 + exp``) in properties,
never by clipping. The fitter optimises every floating-point array leaf of a law and leaves its
static fields (domain mapping, variant, options) alone.

A law predicts the losses of ``M`` *targets* (loss domains) for one run::

    law.predict(h, N, D) -> (M,)    h: (K,) mixture weights, N: model size, D: tokens

``N`` and ``D`` are in the law units of the table it was fitted on (``LossTable.size_unit`` /
``token_unit``: millions of parameters and billions of tokens for real tables). Batch with
``jax.vmap``.

Besides ``predict``, a law class provides two class methods used by the fitter:

* ``targets_for(train_domains, loss_domains, **options)``: which loss domains it can predict
  (the capacity law only predicts in-mixture domains; the others are left out with a note);
* ``init(key, summary, **options)``: a random initial law for one restart, drawn from documented,
  data-scaled ranges (:class:`DataSummary`).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import equinox as eqx
import jax
import numpy as np

__all__ = ["AbstractLaw", "DataSummary", "parameter_count"]


@dataclasses.dataclass(frozen=True)
class DataSummary:
    """What a law's initialiser may know of the data it will be fitted to.

    Attributes:
        train_domains: the ``K`` training-domain names (columns of ``h``).
        targets: the ``M`` loss domains the law will predict, in output order.
        loss_min, loss_max: ``(M,)`` smallest and largest observed loss of each target.
        model_size: ``(min, max)`` model size in law units.
        tokens: ``(min, max)`` token count in law units.
    """

    train_domains: tuple[str, ...]
    targets: tuple[str, ...]
    loss_min: np.ndarray
    loss_max: np.ndarray
    model_size: tuple[float, float]
    tokens: tuple[float, float]

    @property
    def target_index(self) -> tuple[int, ...]:
        """Training-domain column of each target (raises if a target is out-of-mixture)."""
        missing = [t for t in self.targets if t not in self.train_domains]
        if missing:
            raise ValueError(f"targets {missing} are not training domains")
        return tuple(self.train_domains.index(t) for t in self.targets)


class AbstractLaw(eqx.Module):
    """Base of every law: ``predict`` for one mixture, plus the class methods the fitter uses."""

    #: Registry name (``mixscale fit --law NAME``).
    name: ClassVar[str]
    #: Whether the law has model-size and token terms (can be fitted across scales and used to
    #: extrapolate). Laws without them can only be fitted and compared at one scale.
    uses_scale: ClassVar[bool]
    #: The law's variants (values of its ``variant`` option; the first is the default), or
    #: ``()`` for a law without variants.
    variants: ClassVar[tuple[str, ...]] = ()

    @property
    def n_train_domains(self) -> int:
        """``K``, the number of training domains the law takes weights of."""
        raise NotImplementedError(f"{type(self).__name__} does not define n_train_domains")

    @abc.abstractmethod
    def predict(self, h: jax.Array, N: jax.Array, D: jax.Array) -> jax.Array:
        """Predicted losses ``(M,)`` of the targets for mixture ``h`` ``(K,)``, size ``N``,
        tokens ``D`` (law units)."""

    @classmethod
    def targets_for(cls, train_domains: Sequence[str], loss_domains: Sequence[str],
                    **options) -> tuple[str, ...]:
        """The loss domains this law can predict. Default: all of them."""
        del train_domains, options
        return tuple(loss_domains)

    @classmethod
    @abc.abstractmethod
    def init(cls, key: jax.Array, summary: DataSummary, **options) -> AbstractLaw:
        """A random initial law for one restart of a fit."""

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """Keyword options accepted by :meth:`init` (for the CLI and for saving)."""
        return ()


def parameter_count(law: eqx.Module) -> int:
    """Number of free (fitted) scalar parameters: the size of every inexact array leaf."""
    leaves = jax.tree_util.tree_leaves(eqx.filter(law, eqx.is_inexact_array))
    return int(sum(np.size(leaf) for leaf in leaves))
