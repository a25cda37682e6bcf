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

import numpy as np

__all__ = ["MAX_RESTARTS", "MAX_SEED", "MAX_STARTS", "MAX_TRAIN_DOMAINS", "TINY", "integer",
           "number", "positive_number"]

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
