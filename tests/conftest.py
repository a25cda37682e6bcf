"""Test configuration: float64 everywhere (the library itself never changes global config)."""

import gc

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


def _memory_mappings() -> tuple[int, int] | None:
    """``(mappings of this process, the kernel's limit)``, or ``None`` where not readable."""
    try:
        with open("/proc/self/maps") as f:
            used = sum(1 for _ in f)
        with open("/proc/sys/vm/max_map_count") as f:
            return used, int(f.read())
    except (OSError, ValueError):
        return None


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop every compiled program after a test module once the process holds half the
    memory mappings the kernel allows.

    Each XLA CPU executable keeps a few memory mappings; a worker running half the suite
    compiles thousands of programs, and past the kernel's ``vm.max_map_count`` (65530 by
    default) LLVM's next mapping fails and the compiler crashes the worker (seen as a segfault
    in ``backend_compile_and_load``). Clearing only past half the limit keeps the compilations
    that later modules share; where the counts cannot be read, it clears after every module."""
    yield
    counts = _memory_mappings()
    if counts is None or counts[0] > counts[1] // 2:
        jax.clear_caches()
        gc.collect()
