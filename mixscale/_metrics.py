"""Error metrics of predicted against measured losses, with missing measurements masked.

All metrics are over the observed entries only (``NaN`` in the measurements is skipped):

* MRE  = mean ``|pred - obs| / obs`` (reported as a fraction; multiply by 100 for percent),
* MAE  = mean ``|pred - obs|`` (nats),
* RMSE = ``sqrt(mean (pred - obs)^2)`` (nats),
* per-domain MRE, and MRE over entries whose own domain weight is at least ``0.1`` (the paper's
  convention for reporting; only for in-mixture targets), and over entries whose own domain was
  absent from the mixture (``h_i = 0``: a loss the run's data reached only through the other
  domains; RegMix's sparse mixtures have a third of their entries so).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["error_metrics", "HIGH_WEIGHT"]

#: Weight threshold of the paper's convention ("entries with h_i >= 0.1").
HIGH_WEIGHT = 0.1


def error_metrics(pred: np.ndarray, obs: np.ndarray, targets: Sequence[str], *,
                  own_weight: np.ndarray | None = None) -> dict:
    """Masked error metrics.

    Args:
        pred: ``(n, M)`` predicted losses (finite).
        obs: ``(n, M)`` measured losses, positive, ``NaN`` where not measured.
        targets: the ``M`` target names.
        own_weight: optional ``(n, M)`` weight of each target's own training domain in each row
            (``NaN`` for out-of-mixture targets); enables ``mre_high_weight`` and
            ``mre_absent``.

    Returns:
        dict with ``mre, mae, rmse, n`` (observed entries), ``per_domain_mre`` (name -> value, NaN
        for a domain with no observation) and, with ``own_weight``, ``mre_high_weight`` (NaN
        when no entry has ``h_i >= 0.1``) and ``n_high_weight``, and ``mre_absent`` (NaN when
        no entry has ``h_i = 0``) and ``n_absent``. Means are computed scaled by their largest
        term, so finite errors never overflow to ``inf``.

    Raises:
        ValueError: ``pred`` not 2-D, shapes that differ, a name count other than ``M``, a
            measurement that is not positive (a relative error divides by it) or infinite, or
            ``own_weight`` of another shape.
    """
    pred = np.asarray(pred, dtype=np.float64)
    obs = np.asarray(obs, dtype=np.float64)
    if pred.ndim != 2:
        raise ValueError(f"pred must be (n, M) losses, one column per target; got shape "
                         f"{pred.shape}")
    if pred.shape != obs.shape:
        raise ValueError(f"pred has shape {pred.shape} but obs has {obs.shape}")
    targets = list(targets) if not isinstance(targets, str) else [targets]
    if len(targets) != pred.shape[1]:
        raise ValueError(f"{len(targets)} target names for {pred.shape[1]} loss columns")
    wrong = ~np.isnan(obs) & ~(np.isfinite(obs) & (obs > 0))
    if wrong.any():
        bad = obs[wrong][0]
        raise ValueError(f"obs must be positive losses (NaN where not measured), got {bad:g}: "
                         "a relative error needs a positive measurement")
    if own_weight is not None and np.shape(own_weight) != pred.shape:
        raise ValueError(f"own_weight must have the losses' shape {pred.shape}, got "
                         f"{np.shape(own_weight)}")
    mask = np.isfinite(obs)
    err = np.where(mask, pred - obs, 0.0)
    rel = np.where(mask, np.abs(err) / np.where(mask, obs, 1.0), 0.0)
    n = int(mask.sum())

    out = {
        "n": n,
        "mre": _mean(rel, mask),
        "mae": _mean(np.abs(err), mask),
        "rmse": _root_mean_square(err, mask),
        "per_domain_mre": {t: _mean(rel[:, j], mask[:, j]) for j, t in enumerate(targets)},
    }
    if own_weight is not None:
        weight = np.nan_to_num(np.asarray(own_weight, dtype=np.float64), nan=-1.0)  # NaN: none
        high = mask & (weight >= HIGH_WEIGHT)
        out["mre_high_weight"] = _mean(rel, high)
        out["n_high_weight"] = int(high.sum())
        absent = mask & (weight == 0.0)
        out["mre_absent"] = _mean(rel, absent)
        out["n_absent"] = int(absent.sum())
    return out


def _mean(x: np.ndarray, m: np.ndarray) -> float:
    """Mean of the non-negative ``x[m]`` (NaN if ``m`` selects nothing), scaled by the largest
    entry so that a sum of large finite values cannot overflow."""
    v = x[m]
    if not v.size:
        return float("nan")
    top = float(np.max(v))
    if not (math.isfinite(top) and top > 0):
        return top if not math.isfinite(top) else 0.0
    return top * float(np.mean(v / top))


def _root_mean_square(x: np.ndarray, m: np.ndarray) -> float:
    """``sqrt(mean(x[m]**2))`` without overflow for large finite ``x`` (NaN if empty)."""
    v = np.abs(x[m])
    if not v.size:
        return float("nan")
    top = float(np.max(v))
    if not (math.isfinite(top) and top > 0):
        return top if not math.isfinite(top) else 0.0
    return top * float(np.sqrt(np.mean((v / top) ** 2)))
