"""Theory simulator: exact expected losses of one-pass SGD on power-law linear regression with a
shared head and (partly overlapping) domain tails — the model behind the capacity law.

Public API:

* :class:`DisjointTailModel` — the K-domain model (spectra, head, tails, overlap ρ, noise,
  source condition, keep rule).
* :class:`Constant`, :class:`StepDecay` — step-size schedules.
* :func:`expected_losses` — exact losses at a list of checkpoints (``lax.scan`` recursion).
* :func:`closed_form_losses` — the same for a constant step via one eigendecomposition.
* :func:`stable_step_limit` — the largest stable step size.
* :func:`monte_carlo` — actual SGD on sampled Gaussian data (means and standard errors).
* :func:`sweep` / :func:`sweep_losses` — mixtures × sizes × checkpoints in one compiled call,
  as a :class:`mixscale.data.LossTable` / an array; optionally sharded over a device mesh.
* :func:`optimal_mixture` — the simulator's own loss-minimising mixture.
"""

from ._closed_form import closed_form_losses
from ._model import DisjointTailModel
from ._monte_carlo import MonteCarloResult, monte_carlo
from ._optimum import Optimum, optimal_mixture
from ._recursion import expected_losses, stable_step_limit
from ._schedule import AbstractSchedule, Constant, StepDecay
from ._sweep import sweep, sweep_losses

__all__ = [
    "AbstractSchedule",
    "Constant",
    "DisjointTailModel",
    "MonteCarloResult",
    "Optimum",
    "StepDecay",
    "closed_form_losses",
    "expected_losses",
    "monte_carlo",
    "optimal_mixture",
    "stable_step_limit",
    "sweep",
    "sweep_losses",
]
