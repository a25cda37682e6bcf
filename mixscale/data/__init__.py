"""Loss tables: the container, readers for the wide CSV format, the bundled real datasets, and
row selection and train/validation splits."""

from ._bundled import DatasetInfo, available, load
from ._csv import read_csv, write_csv
from ._select import mixture_ids, select, split
from ._table import WEIGHT_SUM_TOLERANCE, LossTable, TableError

__all__ = [
    "DatasetInfo",
    "LossTable",
    "TableError",
    "WEIGHT_SUM_TOLERANCE",
    "available",
    "load",
    "mixture_ids",
    "read_csv",
    "select",
    "split",
    "write_csv",
]
