"""mixscale: differentiable data-mixing scaling laws.

The public API: the capacity-competition law and its exact allocation solve, a fitter for any
law, error metrics, optimal-mixture search and the loss-table container with bundled datasets.
The library never changes global JAX configuration; enable float64 in your entry point with
``jax.config.update("jax_enable_x64", True)`` (the CLI, experiments and tests do).
"""

from ._allocation import allocate, log_allocation
from ._evaluate import evaluate, predict_table
from ._fit import FitProgress, FitResult, fit
from ._io import load_fit, save_fit
from ._metrics import error_metrics
from ._mixture import MixtureResult, optimal_mixture, project_to_simplex
from .data import LossTable, TableError
from .laws import (
    LAWS,
    AbstractLaw,
    CapacityLaw,
    LawSpec,
    get_law,
    law_specs,
    parameter_count,
    register_law,
)

__version__ = "0.1.0"

__all__ = [
    "AbstractLaw", "CapacityLaw", "FitProgress", "FitResult", "LAWS", "LawSpec", "LossTable",
    "MixtureResult", "TableError", "allocate", "error_metrics", "evaluate", "fit", "get_law",
    "law_specs", "load_fit", "log_allocation", "optimal_mixture", "parameter_count",
    "predict_table", "project_to_simplex", "register_law", "save_fit",
]
