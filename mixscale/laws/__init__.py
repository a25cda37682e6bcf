"""Scaling laws behind one interface (:class:`AbstractLaw`), and a registry by name.

* ``capacity``: the capacity-competition + noise-reduction law of Dai & Zheng (variants
  ``full``, ``capacity``, ``tied``).
* ``additive``, ``joint``: the laws of Shukor et al. (2025).
* ``dml``: the data mixing law of Ye et al. (ICLR 2025), one scale.
* ``bimix``: BiMix of Ge et al. (2024), a domain's own weight and the tokens.
* ``regression``: RegMix's linear baseline and its log-linear counterpart (variants ``linear``,
  ``loglinear``), one scale.
"""

from ._additive import AdditiveLaw
from ._base import AbstractLaw, DataSummary, parameter_count
from ._bimix import BiMixLaw
from ._capacity import CapacityLaw
from ._dml import DataMixingLaw
from ._joint import JointLaw
from ._regression import RegressionLaw

#: Every law by its registry name (``mixscale fit --law NAME``).
LAWS: dict[str, type[AbstractLaw]] = {
    law.name: law
    for law in (CapacityLaw, AdditiveLaw, JointLaw, DataMixingLaw, BiMixLaw, RegressionLaw)
}


def get_law(name: str) -> type[AbstractLaw]:
    """The law class registered under ``name``."""
    try:
        return LAWS[name]
    except KeyError:
        raise KeyError(f"unknown law {name!r}; available: {sorted(LAWS)}") from None


__all__ = [
    "AbstractLaw", "AdditiveLaw", "BiMixLaw", "CapacityLaw", "DataMixingLaw", "DataSummary",
    "JointLaw", "LAWS", "RegressionLaw", "get_law", "parameter_count",
]
