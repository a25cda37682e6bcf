"""Theory simulator: exact expected losses of one-pass SGD on power-law linear regression with a
shared head and (partly overlapping) domain tails — the model behind the capacity law.

Public API:

* :class:`DisjointTailModel` — the K-domain model (spectra, head, tails, overlap ρ, noise,
  source condition, keep rule); ``settings()`` gives its generating settings as JSON values.
* :class:`AbstractKeepRule` — which ``N`` features a learner keeps (a score per feature, the
  ``N`` highest kept); :class:`TopN` is the built-in rule (``"signal"`` or ``"eigen"``). A new
  rule is one subclass implementing ``scores``.
* :class:`AbstractSchedule` — a piecewise-constant step-size schedule; :class:`Constant`,
  :class:`StepDecay` are built in. A new schedule is one subclass implementing ``blocks``.
* :func:`expected_losses` — exact losses at a list of checkpoints (``lax.scan`` recursion).
* :func:`closed_form_losses` — the same in closed form: a contour integral of the
  diagonal-plus-rank-``K`` transition's resolvent (``K × K`` Woodbury solves), linear in the
  number of features, independent of ``D`` for a constant step; any schedule as constant phases.
* :func:`stable_step_limit` — the largest stable step size.
* :func:`monte_carlo` — actual SGD on sampled Gaussian data (means and standard errors), with
  :class:`MonteCarloResult`.
* :func:`sweep` / :func:`sweep_losses` — mixtures × sizes × checkpoints in one compiled call,
  as a :class:`mixscale.data.LossTable` / an array, by ``method="recursion"`` or
  ``method="closed_form"`` (cost independent of ``D`` for a constant step), both optionally
  sharded over a device mesh.
* :func:`optimal_mixture` — the simulator's own loss-minimising mixture (an :class:`Optimum`):
  a lattice, then exact Newton and gradient steps within the pieces where the kept set is fixed,
  then a short compass polish (``method="gradient"``, default) or a compass search alone.
* :func:`simplex_lattice` — every mixture with coordinates in ``{0, 1/r, ..., 1}``.

Every public function checks its call (model, mixtures, sizes, schedule, checkpoints, batch size
and the stable step range) before any tracing and raises ``TypeError``/``ValueError`` with a
message that says what to pass instead.
"""

from ._closed_form import closed_form_losses
from ._keep import AbstractKeepRule, TopN
from ._model import DisjointTailModel
from ._monte_carlo import MonteCarloResult, monte_carlo
from ._optimum import Optimum, optimal_mixture, simplex_lattice
from ._recursion import expected_losses, stable_step_limit
from ._schedule import AbstractSchedule, Constant, StepDecay
from ._sweep import sweep, sweep_losses

__all__ = [
    "AbstractKeepRule",
    "AbstractSchedule",
    "Constant",
    "DisjointTailModel",
    "MonteCarloResult",
    "Optimum",
    "StepDecay",
    "TopN",
    "closed_form_losses",
    "expected_losses",
    "monte_carlo",
    "optimal_mixture",
    "simplex_lattice",
    "stable_step_limit",
    "sweep",
    "sweep_losses",
]
