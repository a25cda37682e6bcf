"""The contract every scaling law implements, so one fitter, one optimiser and one CLI serve all.

A law is an :class:`equinox.Module` whose array fields are its *raw* (unconstrained) parameters;
positivity and other constraints are imposed by transforms (``exp``, ``1 + exp``) in properties,
never by clipping. The fitter optimises every floating-point array leaf of a law and leaves its
static fields (domain mapping, variant, options) alone.

A law predicts the losses of ``M`` *targets* (loss domains) for one run::

    law.predict(h, N, D) -> (M,)    h: (K,) mixture weights, N: model size, D: tokens

``N`` and ``D`` are in the law units of the table it was fitted on (``LossTable.size_unit`` /
``token_unit``: millions of parameters and billions of tokens for real tables). Batch with
``jax.vmap``.

Everything the library uses of a law is declared here, abstract (equinox's abstract-or-final
pattern: the base declares, the final law class implements, shared code lives in functions):

========================  ========================================================================
``name``                  registry name (``mixscale fit --law NAME``), a class variable
``uses_scale``            whether the law has model-size and token terms (class variable)
``variants``              values of its ``variant`` option, the first the default; ``()`` if none
``predict(h, N, D)``      losses ``(M,)`` of the targets for one run
``n_train_domains``       ``K``, the number of training domains (a property)
``per_target_fields``     the fields whose leading axis indexes the targets, each entry acting
                          on its own target alone (class variable; the fitter's block structure)
``targets``               training-domain index of each target when the law ties a target to its
                          own domain's weight (capacity law, BiMix), else ``None``
``natural_parameters()``  every fitted parameter in natural units, ``{name: array}``
``targets_for(...)``      class method: which loss domains it can predict
``init(key, summary,      class method: a random initial law for one restart; its keyword-only
**options)``              arguments *are* the law's options (:func:`law_options` reads them)
``n_parameters(K, M,      class method: the number of fitted scalars, from the sizes alone
**options)``
``parameter_bounds(       class method: the range of each bounded field (raw units) that every
summary, **options)``     fit keeps to; ranges in natural units are in each law's docstring
``nested(**options)``     class method: the variants nested in this one, with their embeddings;
                          every fit also starts from them (``()`` if none)
``kink_gaps(h, N, D)``     optional: one run's signed distances from the prediction's kinks (the
                          fitter's kink certificate); ``None`` by default
``row_jacobian``          how the fitter differentiates one run's prediction in the parameters:
                          ``"forward"`` (the default, one tangent per parameter),
                          ``"reverse"`` (one cotangent per target) or ``"reverse-own"`` (one
                          cotangent per run for every target's own parameters); a class
                          variable with a default, the one member a law need not declare
========================  ========================================================================

A law becomes known to the registry, the CLI and every experiment with one line: the
:func:`~mixscale.laws.register_law` decorator on its class.
"""

import abc
import dataclasses
import inspect
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import equinox as eqx
import jax
import numpy as np
from equinox import AbstractClassVar, AbstractVar

__all__ = ["ROW_JACOBIAN_MODES", "AbstractLaw", "DataSummary", "law_options", "parameter_count"]

#: The values of :attr:`AbstractLaw.row_jacobian` (checked when a law registers).
ROW_JACOBIAN_MODES = ("forward", "reverse", "reverse-own")


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
    """Base of every law; every member is abstract (see the module docstring for the table)."""

    #: Registry name (``mixscale fit --law NAME``).
    name: AbstractClassVar[str]
    #: Whether the law has model-size and token terms (can be fitted across scales and used to
    #: extrapolate). Laws without them can only be fitted and compared at one scale.
    uses_scale: AbstractClassVar[bool]
    #: The law's variants (values of its ``variant`` option; the first is the default), or
    #: ``()`` for a law without variants.
    variants: AbstractClassVar[tuple[str, ...]]
    #: Names of the fields whose leading axis indexes the ``M`` targets and whose entries for
    #: target ``m`` change the prediction of target ``m`` only. The fitter uses this block
    #: structure (:mod:`mixscale._blocks`); a field not listed is treated as shared.
    per_target_fields: AbstractClassVar[tuple[str, ...]]
    #: ``"forward"``, ``"reverse"`` or ``"reverse-own"``: the mode in which the fitter takes the
    #: derivative of one run's prediction ``(M,)`` in the law's ``P`` parameters
    #: (:func:`mixscale._objective.predict_rows`). Forward mode costs about ``W + S`` prediction
    #: passes per run (the most own parameters of a target plus the shared ones,
    #: :mod:`mixscale._blocks`), reverse mode about ``M`` backward passes; a law whose
    #: parameters are all shared and outnumber its targets by far (the spectral law: ``4K + 5``
    #: against ``K``) runs faster in reverse. ``"reverse-own"`` takes every target's own block
    #: from one backward pass per run (of the run's summed residuals: an own parameter moves its
    #: target alone) and the ``S`` shared columns in forward mode: the choice of a law with many
    #: own parameters per target and a costly prediction (the additive and joint laws: the
    #: Jacobian 16 and 32 times faster at ``K = 17``); on cheap or linear predictions (DML,
    #: BiMix, regression) it is no faster. Not abstract: the default suits every law.
    row_jacobian: ClassVar[str] = "forward"
    #: Training-domain index of each of the ``M`` targets, for a law that ties each target to its
    #: own domain's weight; ``None`` for a law whose targets need not be training domains.
    targets: AbstractVar[tuple[int, ...] | None]

    @property
    @abc.abstractmethod
    def n_train_domains(self) -> int:
        """``K``, the number of training domains the law takes weights of."""

    @abc.abstractmethod
    def predict(self, h: jax.Array, N: jax.Array, D: jax.Array) -> jax.Array:
        """Predicted losses ``(M,)`` of the targets for mixture ``h`` ``(K,)``, size ``N``,
        tokens ``D`` (law units).

        Implementations start with :func:`mixscale.laws._terms.check_mixture`: a batch or a
        wrong ``K`` is a ``ValueError``, and so, where the values are known (a call outside
        ``jit``/``vmap``/``grad``), is a weight that is NaN, infinite or negative and a size or
        token count that is NaN or infinite. Traced values cannot be checked: a NaN weight then
        counts as a zero weight. :meth:`mixscale.FitResult.predict` (a table),
        :func:`mixscale.prediction_intervals` and :func:`mixscale.optimal_mixture` check
        their inputs before tracing."""

    @abc.abstractmethod
    def natural_parameters(self) -> dict[str, jax.Array]:
        """Every fitted parameter in natural units, by the names of the law's docstring.

        Their sizes add up to :meth:`n_parameters`; they are what saving, printing and reports
        show of a law."""

    @classmethod
    @abc.abstractmethod
    def targets_for(cls, train_domains: Sequence[str], loss_domains: Sequence[str],
                    **options) -> tuple[str, ...]:
        """The loss domains (of ``loss_domains``, in order) this law can predict."""

    @classmethod
    @abc.abstractmethod
    def init(cls, key: jax.Array, summary: DataSummary, **options) -> "AbstractLaw":
        """A random initial law for one restart of a fit; keyword-only arguments are options."""

    @classmethod
    @abc.abstractmethod
    def n_parameters(cls, n_train_domains: int, n_targets: int, **options) -> int:
        """Number of fitted scalar parameters for ``K`` training domains and ``M`` targets."""

    @classmethod
    @abc.abstractmethod
    def parameter_bounds(cls, summary: DataSummary,
                         **options) -> dict[str, tuple[float, float]]:
        """``{field: (lo, hi)}``: the range of each bounded raw field, the same for all its
        entries (``-inf``/``inf`` for an open side). Fields not named are unbounded. Every fit
        keeps the parameters inside (:mod:`mixscale._lm`); ``init`` draws inside."""


    @classmethod
    @abc.abstractmethod
    def nested(cls, **options) -> tuple[tuple[dict[str, Any], Callable[["AbstractLaw"],
                                                                       "AbstractLaw"]], ...]:
        """The variants nested in the law of these options: ``(options, embed)`` pairs, where
        ``embed`` maps a law of the nested ``options`` to a law of these options that predicts
        the same losses (to ``1e-7`` relative where the exact limit is not representable).

        :func:`mixscale.fit` fits each nested variant first and adds its embedded best law to
        the restarts, so that a law does not end above a variant nested in it. ``()`` for a law
        that nests none."""

    def kink_gaps(self, h: jax.Array, N: jax.Array, D: jax.Array) -> "jax.Array | None":
        """Signed distances ``(G,)`` of one run's prediction from the law's kinks (each gap
        ``0`` on a surface where the prediction is not differentiable; ``inf`` for a kink that
        cannot be reached), for the fitter's kink certificate (:mod:`mixscale._kinks`);
        ``None`` (the default) for a law whose prediction is smooth or whose kinks are not
        listed."""
        del h, N, D
        return None

    def smoothed(self, smoothing: float) -> "AbstractLaw | None":
        """This law with its non-differentiable points smoothed at temperature ``smoothing``
        (``> 0``; ``0`` gives the exact law back), for :func:`mixscale.fit`'s kink continuation
        (``smooth_kinks``); ``None`` (the default) for a law whose prediction is smooth.
        Parameters are shared with the exact law (the same fields and ranges)."""
        del smoothing
        return None


def law_options(law_class: type[AbstractLaw]) -> dict[str, Any]:
    """The options of a law class and their defaults: the keyword-only arguments of its
    ``init`` (in order). A law with variants has a ``variant`` option."""
    params = inspect.signature(law_class.init).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def parameter_count(law: eqx.Module) -> int:
    """Number of free (fitted) scalar parameters: the size of every inexact array leaf."""
    leaves = jax.tree_util.tree_leaves(eqx.filter(law, eqx.is_inexact_array))
    return int(sum(np.size(leaf) for leaf in leaves))
