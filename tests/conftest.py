"""Test configuration: float64 everywhere (the library itself never changes global config)."""

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)


def tol(dtype=np.float64) -> float:
    """Relative tolerance for comparisons that should hold to rounding, keyed by dtype."""
    return {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}[np.dtype(dtype)]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20260606)
