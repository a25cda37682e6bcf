"""Keeping a long-lived process under the kernel's limit on memory mappings.

Every XLA CPU executable keeps a few memory mappings for its code. A process that compiles
thousands of programs (a test suite, ``python -m experiments.reproduce``, a notebook fitting many
laws and tables) reaches Linux's ``vm.max_map_count`` (65 530 by default); the compiler's next
mapping then fails ("LLVM compilation error: Cannot allocate memory") and the process dies in
``backend_compile_and_load``. Both were seen here: a test worker after half the suite, and the
full reproduction after about 30 minutes of fits.

:func:`release_compiled_programs` drops JAX's compiled programs (``jax.clear_caches``) once the
process holds more than a fraction of the allowed mappings; :func:`mixscale.fit` calls it before
each fit, so later calls only recompile what they use. Where the counts cannot be read (not
Linux), it does nothing.
"""

from __future__ import annotations

import gc
import logging

import jax

__all__ = ["memory_mappings", "release_compiled_programs"]

log = logging.getLogger("mixscale")

#: Share of ``vm.max_map_count`` above which compiled programs are released.
RELEASE_FRACTION = 0.5


def memory_mappings() -> tuple[int, int] | None:
    """``(mappings held by this process, the kernel's limit)``, or ``None`` where unreadable."""
    try:
        with open("/proc/self/maps", encoding="ascii", errors="replace") as f:
            used = sum(1 for _ in f)
        with open("/proc/sys/vm/max_map_count", encoding="ascii") as f:
            return used, int(f.read())
    except (OSError, ValueError):
        return None


def release_compiled_programs(fraction: float = RELEASE_FRACTION, *,
                              if_unknown: bool = False) -> bool:
    """Clear JAX's caches of compiled programs if this process holds more than ``fraction`` of
    the memory mappings the kernel allows (or, with ``if_unknown``, where the counts cannot be
    read); return whether it did."""
    counts = memory_mappings()
    if counts is None:
        if not if_unknown:
            return False
    elif counts[0] <= fraction * counts[1]:
        return False
    jax.clear_caches()
    gc.collect()
    if counts is not None:
        log.info("released compiled programs: %d of %d memory mappings were in use", *counts)
    return True
