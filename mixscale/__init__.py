"""mixscale: differentiable data-mixing scaling laws.

The public API: the capacity-competition law and its exact allocation solve, a fitter for any
law (with bootstrap intervals), error metrics, optimal-mixture search and the loss-table
container with bundled datasets; figures of a fit are in :mod:`mixscale.plots`.
The library never changes global JAX configuration; enable float64 in your entry point with
``jax.config.update("jax_enable_x64", True)`` (the CLI, experiments and tests do).
"""

from . import plots
from ._allocation import allocate, log_allocation, log_shared_allocation
from ._bootstrap import Bootstrap, Intervals, parameter_intervals, prediction_intervals
from ._evaluate import evaluate, predict_table
from ._fit import FitProgress, FitResult, converging_stages, fit
from ._io import load_fit, save_fit
from ._linalg import solve_small
from ._metrics import error_metrics
from ._mixture import MixtureResult, optimal_mixture, project_to_simplex
from ._mixture_intervals import MixtureIntervals, optimal_mixture_intervals
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
    "AbstractLaw", "Bootstrap", "CapacityLaw", "FitProgress", "FitResult", "Intervals", "LAWS",
    "LawSpec", "LossTable", "MixtureIntervals", "MixtureResult", "TableError", "allocate",
    "converging_stages", "error_metrics", "evaluate", "fit", "get_law", "law_specs", "load_fit",
    "log_allocation", "log_shared_allocation",
    "optimal_mixture", "optimal_mixture_intervals", "parameter_count", "parameter_intervals",
    "plots", "predict_table", "prediction_intervals", "project_to_simplex", "register_law",
    "save_fit", "solve_small",
]
