"""Loss tables: the container, readers for the wide CSV format, and the bundled real datasets."""

from ._table import WEIGHT_SUM_TOLERANCE, LossTable, TableError

__all__ = ["LossTable", "TableError", "WEIGHT_SUM_TOLERANCE"]
