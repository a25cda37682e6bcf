"""Scaling laws behind one contract (:class:`AbstractLaw`), a registry by name and law specs.

* ``capacity``: the capacity-competition + noise-reduction law of Dai & Zheng (variants
  ``full``, ``tied``, ``capacity``).
* ``spectral``: the capacity law's allocation with the loss integrated over feature ranks as
  one-pass SGD learns them (shared-head transfer, SGD-noise coupling; variants ``full``,
  ``linear``, ``tied``).
* ``additive``, ``joint``: the laws of Shukor et al. (2025).
* ``bimix``: BiMix of Ge et al. (2024), a domain's own weight and the tokens.
* ``dml``: the data mixing law of Ye et al. (ICLR 2025), one scale.
* ``regression``: RegMix's linear baseline and its log-linear counterpart (variants ``linear``,
  ``loglinear``), one scale.
* ``overlap`` (a candidate): the noise-reduction term with the tokens that domains share, free
  or of rank ``r`` (variants ``free``, ``rank``, ``own``), one scale.

A law registers itself with the :func:`register_law` decorator; importing its module here makes
it part of the library (the import order is the order of listings and tables). A
:class:`LawSpec` names a registered law with its options; :func:`law_specs` lists every law and
variant, optionally by capability.
"""

# ruff: noqa: I001  (the law imports below are in registration order, not alphabetical)
from ._base import AbstractLaw, DataSummary, law_options, parameter_count
from ._registry import LAWS, get_law, register_law
from ._spec import LawSpec, as_law_spec, law_specs

# Importing a law's module registers it.
from ._capacity import CapacityLaw
from ._spectral import SpectralLaw
from ._additive import AdditiveLaw
from ._joint import JointLaw
from ._bimix import BiMixLaw
from ._dml import DataMixingLaw
from ._regression import RegressionLaw
from ._overlap import OverlapLaw

__all__ = [
    "AbstractLaw", "AdditiveLaw", "BiMixLaw", "CapacityLaw", "DataMixingLaw", "DataSummary",
    "JointLaw", "LAWS", "LawSpec", "OverlapLaw", "RegressionLaw", "SpectralLaw", "as_law_spec",
    "get_law", "law_options", "law_specs", "parameter_count", "register_law",
]
