"""Test configuration: float64 everywhere (the library itself never changes global config), and
XLA's CPU backend compiling without LLVM's costly optimisation passes.

The suite's programs are small and most of its time is compilation (in the planted-recovery
tests about two thirds: 655 compilations for 10 fits). LLVM's optimisation passes change how
fast a program runs, not what it computes (no fast-math either way); rounding can differ in the
last bits, which no test may depend on. Measured on the 2-core machine (``pytest -n 2``, wall):
the whole suite 853 s with XLA's defaults, 691 s at backend optimisation level 1, 568 s and
673 s (two runs) at level 0 (the machine is shared, so read them as ±15 %).

XLA's CPU fusions are also emitted by its older direct-to-LLVM emitters instead of the MLIR
fusion emitters (``--xla_cpu_use_fusion_emitters=false``): the same fused computations, compiled
in about half the time. Measured on the same machine with the other flags set, one process
beside a busy one: ``tests/test_laws.py``, ``test_fit.py`` and ``test_spectral.py`` 558 -> 344 s
of CPU time; the whole suite (``-n 1``) 1320 -> 982 s summed over its tests (test_laws.py alone
388 -> 208 s). jaxlib reads the flag from 0.10 on (older versions abort on a flag they do not
know, so it is set only there).

XLA's CPU compiler also splits each program's LLVM module to generate code for the parts in
parallel (``--xla_cpu_parallel_codegen_split_count``). On two cores shared by two test workers
the split buys no parallelism and costs its overhead, so the suite compiles each module whole
(split count 1: the same computations, emitted in one piece). Measured on the 2-core machine
beside one busy process, five alternating runs each of one process fitting and searching four
laws (capacity full and crossover, spectral, joint) from fresh compilations: backend compile time
12.7 s (10.8-14.7) by default, 10.2 s (9.2-11.0) unsplit; the process's CPU time 21.9 -> 20.0 s.

The flags (:func:`experiments._xla_flags.compile_speed_flags`, shared with the experiments' smoke
runs) are set before JAX starts its backend; any the user set follow them (the later wins).

Lowered programs carry one frame of each operation's Python traceback (its user call site) as
its source location, not the whole traceback
(``jax_include_full_tracebacks_in_locations=False``): the locations only label XLA's own
diagnostics. Lowering time in the same five alternating pairs of runs: 5.0 s -> 4.3 s (means),
the process's CPU time 23.1 -> 22.2 s (within the noise).

The suite keeps no on-disk compilation cache (``jax_enable_compilation_cache`` off before the
first compilation; JAX decides once per process whether to use one). One shared by the workers
once saved time (642 -> 562 s, when compiling was slower); with the flags above, computing every
program's cache key and writing it costs more than its few hits save. Measured on the 2-core
machine, ``pytest -q -n 2``, three runs back to back (modules longest first), wall and the tests'
summed time: a cache of every program 335 s and 636 s, of the programs compiled in 0.1 s or more
327 s and 623 s, none 323 s and 613 s. The command line's tests turn a cache on in their
process: it stays off, and its default directory is a temporary one removed at the end, so that
no test writes to the user's home.
"""

import json
import os
from pathlib import Path

from experiments._xla_flags import compile_speed_flags, join

os.environ["XLA_FLAGS"] = " ".join([join(compile_speed_flags()),
                                    os.environ.get("XLA_FLAGS", "")]).strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_include_full_tracebacks_in_locations", False)
jax.config.update("jax_enable_compilation_cache", False)


def pytest_configure(config):
    """The command line's default cache directory, for the run: a temporary directory that the
    first pytest process (the xdist controller) makes, its workers inherit, and the controller
    removes at the end."""
    from mixscale._compilation_cache import ENVIRONMENT_VARIABLE

    if ENVIRONMENT_VARIABLE not in os.environ:
        import tempfile

        os.environ[ENVIRONMENT_VARIABLE] = tempfile.mkdtemp(prefix="mixscale-test-cache-")
        config._mixscale_cache_directory = os.environ[ENVIRONMENT_VARIABLE]


def pytest_unconfigure(config):
    from mixscale._compilation_cache import ENVIRONMENT_VARIABLE

    directory = getattr(config, "_mixscale_cache_directory", None)
    if directory is not None:
        import shutil

        os.environ.pop(ENVIRONMENT_VARIABLE, None)
        shutil.rmtree(directory, ignore_errors=True)


def tol(dtype=np.float64) -> float:
    """Relative tolerance for comparisons that should hold to rounding, keyed by dtype."""
    return {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}[np.dtype(dtype)]


#: Seconds each test module takes, written by ``benchmarks/suite_balance.py`` from a measured run.
_MODULE_SECONDS: dict[str, float] = json.loads(
    (Path(__file__).with_name("module_seconds.json")).read_text())


def pytest_collection_modifyitems(config, items):
    """Run the longest test modules first.

    Each xdist worker runs one module at a time (``--dist loadfile``), handed out in collection
    order (``--no-loadscope-reorder``; xdist's default order, most tests first, put a 14-second
    module last and left one worker idle for 12 s of a 5.5-minute run). Longest first, the last
    modules handed out are short and the workers end together (the longest-processing-time
    rule): ``benchmarks/suite_balance.py`` measures each module, writes the table, and prints
    the workers' predicted ends under each order. A module missing from the table is placed as
    one of median length; the table orders modules, never changes what runs. The sort is
    stable, so tests within a module keep their order."""
    median = float(np.median(list(_MODULE_SECONDS.values()))) if _MODULE_SECONDS else 0.0
    items.sort(key=lambda item: -_MODULE_SECONDS.get(item.path.name, median))


@pytest.fixture
def keep_compiled_programs(monkeypatch):
    """For tests that check that a second call compiles nothing: ``fit`` releases every compiled
    program once the process holds half the memory mappings the kernel allows
    (:mod:`mixscale._memory`), which, depending on what the worker ran before, can fall between
    the two calls. One test's compilations are far from the limit itself."""
    import mixscale._fit

    monkeypatch.setattr(mixscale._fit, "release_compiled_programs", lambda *a, **k: False)


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
