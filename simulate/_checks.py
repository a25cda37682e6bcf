"""Argument checks, one argument each (run eagerly, before any tracing); a whole call is
checked by :func:`simulate._validate.check_call`, which every public verb uses."""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["SIMPLEX_TOLERANCE", "check_batch_size", "check_checkpoints", "check_count",
           "check_integer", "check_mixtures", "check_sizes", "is_concrete"]

#: A mixture is accepted when its weights are >= 0 and sum to 1 within this tolerance; the
#: simulator uses the weights as sampling probabilities as given (nothing is renormalised).
SIMPLEX_TOLERANCE = 1e-6


def is_concrete(*xs) -> bool:
    """True when no argument is a tracer (so its value can be checked in Python)."""
    return not any(isinstance(x, jax.core.Tracer) for x in xs)


def check_mixtures(h, k: int, name: str = "h") -> np.ndarray:
    """``h`` as a float array of shape ``(..., K)`` on the simplex, or a ``ValueError``."""
    arr = np.asarray(h, dtype=np.float64)
    if arr.ndim < 1 or arr.shape[-1] != k:
        raise ValueError(f"{name} must have a last axis of K={k} mixture weights, got shape "
                         f"{arr.shape}")
    flat = arr.reshape(-1, k)
    bad = ~np.isfinite(flat).all(axis=1) | (flat < 0).any(axis=1)
    if bad.any():
        r = int(np.argmax(bad))
        raise ValueError(f"{name}{_row(arr, r)} = {flat[r].tolist()}: weights must be finite and "
                         ">= 0 (a point on the simplex)")
    sums = flat.sum(axis=1)
    off = np.abs(sums - 1.0) > SIMPLEX_TOLERANCE
    if off.any():
        r = int(np.argmax(off))
        raise ValueError(f"{name}{_row(arr, r)} sums to {sums[r]:.12g}, not 1 (tolerance "
                         f"{SIMPLEX_TOLERANCE:g}; weights are sampling probabilities and are not "
                         "renormalised)")
    return arr


def _row(arr: np.ndarray, r: int) -> str:
    return f"[{r}]" if arr.ndim > 1 else ""


def check_sizes(n, n_features: int, name: str = "N") -> np.ndarray:
    """Model sizes as an int array, each in ``1 .. n_features``, or a ``ValueError``."""
    arr = np.asarray(n)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{name} counts kept features and must be an integer, got "
                             f"{arr.tolist()}")
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an integer feature count, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if np.any(arr < 1):
        raise ValueError(f"{name} must be >= 1 kept feature, got {arr.tolist()}")
    if np.any(arr > n_features):
        raise ValueError(f"{name} = {int(arr.max())} is larger than the model's feature count "
                         f"P = {n_features}; lengthen the tails or lower {name}")
    return arr


def check_checkpoints(checkpoints, *, allow_zero: bool = True) -> tuple[int, ...]:
    """Checkpoints (numbers of SGD steps) as a tuple of non-negative ints."""
    arr = np.atleast_1d(np.asarray(checkpoints))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"checkpoints must be a non-empty 1-d list of step counts, got "
                         f"{np.asarray(checkpoints).tolist()}")
    if arr.dtype.kind == "f" and (not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr))):
        raise ValueError(f"checkpoints must be integer step counts, got {arr.tolist()}")
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"checkpoints must be integer step counts, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    low = 0 if allow_zero else 1
    if np.any(arr < low):
        raise ValueError(f"checkpoints must be >= {low} steps, got {arr.tolist()}")
    return tuple(int(v) for v in arr)


def check_batch_size(batch_size) -> int:
    if not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


def batch_argument(batch_size: int, dtype) -> jax.Array:
    """A checked batch size ``B`` as a scalar array for a compiled function: the losses depend on
    ``B`` only through ``1/B`` (no shape does), so as a run-time value one compilation serves
    every batch size (as a Python int it would be a static argument, one program per ``B``)."""
    return jax.numpy.asarray(batch_size, dtype)


def check_count(value, what: str) -> int:
    """``value`` as a non-negative int: an int, or a float that is one (``6.0``); a fraction,
    a string, a bool, NaN or a negative number is a ``ValueError`` naming ``what`` (``int()``
    truncated ``2.7`` to 2 and ``-0.5`` to 0, and read ``'5'``)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.integer
                                                               | np.floating):
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    if not (np.isfinite(value) and float(value).is_integer() and value >= 0):
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    return int(value)


def check_integer(value, what: str, lowest: int) -> None:
    """Refuse ``value`` unless it is an int (not a bool) of at least ``lowest``."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer) \
            or value < lowest:
        raise ValueError(f"{what} must be an integer >= {lowest}, got {value!r}")
