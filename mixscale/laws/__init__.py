"""Scaling laws behind one interface (:class:`AbstractLaw`), and a registry by name."""

from ._base import AbstractLaw, DataSummary, parameter_count
from ._capacity import CapacityLaw

#: Every law by its registry name (``mixscale fit --law NAME``).
LAWS: dict[str, type[AbstractLaw]] = {CapacityLaw.name: CapacityLaw}


def get_law(name: str) -> type[AbstractLaw]:
    """The law class registered under ``name``."""
    try:
        return LAWS[name]
    except KeyError:
        raise KeyError(f"unknown law {name!r}; available: {sorted(LAWS)}") from None


__all__ = ["AbstractLaw", "CapacityLaw", "DataSummary", "LAWS", "get_law", "parameter_count"]
