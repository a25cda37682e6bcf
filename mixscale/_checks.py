"""Checks of the arguments of the public functions, and the limits they enforce.

Each check raises ``TypeError`` (wrong kind of value) or ``ValueError`` (out of range) with a
one-line message that names the argument, so that bad input never reaches JAX (where it would
fail with an error about tracers or shapes) or runs out of memory.

The limits, also used by the command line:

* :data:`MAX_TRAIN_DOMAINS`: training domains a law may be fitted to. The allocation solve is
  verified up to ``K = 64`` (``tests/test_allocation.py``); above that, the full law's ``2K + 1``
  shared parameters make every Levenberg–Marquardt step a dense solve of that size and a fit of
  ``K = 1000`` does not finish in minutes. Merge small domains (or fit a subset of them) instead.
* :data:`MAX_RESTARTS`: random restarts of one fit (their initial laws are drawn at once).
* :data:`MAX_STARTS`: starting points of one optimal-mixture search.
* :data:`MAX_SEED`: seeds are integers in ``[0, MAX_SEED]`` (a 32-bit PRNG seed).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import numpy as np

__all__ = ["MAX_RESTARTS", "MAX_SEED", "MAX_STARTS", "MAX_TRAIN_DOMAINS", "TINY", "integer",
           "known_values", "number", "positive_number", "runs"]

MAX_TRAIN_DOMAINS = 64
MAX_RESTARTS = 4096
MAX_STARTS = 1024
MAX_SEED = 2**32 - 1
#: The smallest normal float64; a positive quantity below it (subnormal) loses its precision
#: and vanishes in the arithmetic of a fit.
TINY = float(np.finfo(np.float64).tiny)


def integer(value: Any, what: str, lo: int, hi: int) -> int:
    """``value`` as an ``int`` in ``[lo, hi]`` (a Python or numpy integer, not a bool)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be an integer, got {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"{what} must be an integer in [{lo}, {hi}], got {value}")
    return value


def number(value: Any, what: str) -> float:
    """``value`` as a finite ``float``: a Python or numpy real number or a 0-d array of one."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise TypeError(f"{what} must be a number, got {value!r}")
    if isinstance(value, np.ndarray) or hasattr(value, "__jax_array__") or hasattr(
            value, "shape"):
        if np.ndim(value) != 0:
            raise TypeError(f"{what} must be a single number, got an array of shape "
                            f"{np.shape(value)}")
        value = np.asarray(value)
        if value.dtype.kind not in "iuf":
            raise TypeError(f"{what} must be a real number, got dtype {value.dtype}")
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a number, got {type(value).__name__}")
    try:
        x = float(value)
    except OverflowError:
        raise ValueError(f"{what} must be finite, got an integer of {len(str(value))} digits") \
            from None
    if not math.isfinite(x):
        raise ValueError(f"{what} must be finite, got {x}")
    return x


def positive_number(value: Any, what: str) -> float:
    """:func:`number` that is positive and normal (not below :data:`TINY`)."""
    x = number(value, what)
    if not x >= TINY:
        raise ValueError(f"{what} must be positive (and not subnormal), got {x:g}")
    return x


def _real_array(value: Any, what: str) -> np.ndarray:
    """``value`` as a float64 array, refusing what is not real numbers (strings, complex)."""
    try:
        array = np.asarray(value)
    except Exception as err:  # ragged lists and the like
        raise TypeError(f"{what} must be an array of numbers: {err}") from None
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{what} must be real numbers, got dtype {array.dtype}")
    return array.astype(np.float64)


def runs(h: Any, N: Any, D: Any, k: int, weight_tolerance: float
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs ``(h, N, D)`` given as arrays, checked: ``h`` ``(n, K)`` or one ``(K,)`` mixture of
    ``K = k`` finite, non-negative weights summing to 1 within ``weight_tolerance`` (nothing
    is renormalised); ``N`` and ``D`` scalars or ``(n,)``, positive, normal and finite.
    Returns ``h`` ``(n, K)``, ``N`` and ``D`` ``(n,)``, float64, each error naming the argument
    and the first offending run."""
    h = _real_array(h, "h (mixtures)")
    if h.ndim == 1:
        h = h[None]
    if h.ndim != 2 or h.shape[1] != k:
        raise ValueError(f"h must be mixtures of shape (n, {k}) or one of shape ({k},) for the "
                         f"law's {k} training domains, got shape {h.shape}")
    n = h.shape[0]
    if n == 0:
        raise ValueError("h holds no mixture (shape (0, K))")
    bad = np.flatnonzero(~np.all(np.isfinite(h) & (h >= 0), axis=1))
    if bad.size:
        raise ValueError(f"h[{bad[0]}] = {h[bad[0]].tolist()}: weights must be finite and "
                         "non-negative")
    off = np.flatnonzero(np.abs(h.sum(axis=1) - 1.0) > weight_tolerance)
    if off.size:
        raise ValueError(f"h[{off[0]}] sums to {h[off[0]].sum():.6g}, not 1 (tolerance "
                         f"{weight_tolerance:g}; nothing is renormalised)")
    out = []
    for value, what in ((N, "N (model sizes, law units)"), (D, "D (tokens, law units)")):
        array = _real_array(value, what)
        if array.ndim > 1 or (array.ndim == 1 and array.shape[0] != n):
            raise ValueError(f"{what} must be a number or one per mixture, shape ({n},); got "
                             f"shape {array.shape}")
        array = np.broadcast_to(array, (n,))
        bad = np.flatnonzero(~(np.isfinite(array) & (array >= TINY)))
        if bad.size:
            raise ValueError(f"{what} must be positive and finite, got {array[bad[0]]:g} "
                             f"(run {bad[0]})")
        out.append(np.array(array))
    return h, out[0], out[1]


def known_values(value: Any, what: str, *, non_negative: bool = False) -> None:
    """Refuse NaN or infinite entries of ``value`` (and negative ones if ``non_negative``) when
    its values are known, with a ``ValueError`` naming ``what``; nothing when ``value`` is
    traced (under ``jit``, ``vmap`` or ``grad`` its values are not known until the program
    runs, and a compiled program cannot raise). For the functions that take a mixture, size
    or tokens directly (a law's ``predict``, :func:`mixscale.allocate`), which would otherwise
    read a NaN weight as a zero weight (``NaN > 0`` is false) and return finite losses."""
    if isinstance(value, jax.core.Tracer):
        return
    array = np.asarray(value)
    if array.dtype.kind not in "iuf":
        return
    bad = ~np.isfinite(array)
    if non_negative:
        bad |= array < 0
    if bad.any():
        need = "finite and non-negative" if non_negative else "finite"
        raise ValueError(f"{what} must be {need}, got {array.tolist()}")
