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


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop every compiled program after a test module once the process holds half the
    memory mappings the kernel allows.

    Each XLA CPU executable keeps a few memory mappings; a worker running half the suite
    compiles thousands of programs, and past the kernel's ``vm.max_map_count`` (65530 by
    default) LLVM's next mapping fails and the compiler crashes the worker (seen as a segfault
    in ``backend_compile_and_load``). Clearing only past half the limit keeps the compilations
    that later modules share (:mod:`mixscale._memory`); where the counts cannot be read, it
    clears after every module."""
    from mixscale._memory import release_compiled_programs

    yield
    release_compiled_programs(if_unknown=True)
