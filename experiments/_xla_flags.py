"""XLA's CPU flags for the experiments, their smoke runs, the benchmarks and the test suite.

XLA reads ``XLA_FLAGS`` once, when JAX starts its backend. Its parser aborts on an unknown
``--flag`` but **stops silently at the first token that is not one** and ignores every flag
after it. ``intra_op_parallelism_threads=1`` — a TensorFlow option often quoted beside
``--xla_cpu_multi_thread_eigen=false`` — is such a token: the experiments' flags carried it
last, where it did nothing; a flag appended after it would have been dropped without a word
(measured: a smoke run with the compile-speed flags below placed after it compiled exactly as
slowly as without them). Every flag here is a ``--flag``, and :func:`xla_reads_every_flag`
checks, in a fresh process, that XLA reads a flag string to its end.

:data:`SINGLE_THREADED` is what a full experiment's fits run under: many small vmapped problems,
for which multi-threaded kernels on a shared machine spend most of their time waiting for each
other (measured: up to 10x slower under load).

:func:`compile_speed_flags` trade the speed of the compiled code for the speed of compiling it
(LLVM's costly passes off, XLA's older direct-to-LLVM fusion emitters, one code-generation unit
per module; ``tests/conftest.py`` says what each buys in the suite). They change the rounding of
a result in its last bits at most, never what is computed. They pay where compilation is most of
the time — the test suite and the experiments' smoke runs (``--quick``) — and not where compiled
programs run for minutes (the full experiments). Measured on the 2-core machine:
``python -m experiments.reproduce --quick`` 118 and 119 s under :data:`SINGLE_THREADED` alone,
54-59 s with them (``compare_laws --quick``: XLA's compile time 6.9 -> 2.2 s of its 9.6 -> 4.8 s);
the README's first command (one fit of 64 restarts, 43 s) gains nothing measurable (42.7 and
42.3 s: its programs run long enough to lose what their faster compilation saves), so the
command line keeps XLA's defaults.

This module imports nothing of JAX's that starts a backend, so that the flags can be set before
one starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable

__all__ = ["SINGLE_THREADED", "compile_speed_flags", "join", "xla_reads_every_flag"]

#: Single-threaded XLA CPU kernels (the full experiments' and the benchmarks' setting).
SINGLE_THREADED: tuple[str, ...] = ("--xla_cpu_multi_thread_eigen=false",)


def compile_speed_flags() -> tuple[str, ...]:
    """Flags that make XLA's CPU compiler fast rather than its code: backend optimisation
    level 0 and LLVM's expensive passes off, and from jaxlib 0.10 on (older versions abort on
    flags they do not know) the direct-to-LLVM fusion emitters and an unsplit LLVM module."""
    import jaxlib.version

    flags = ["--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true"]
    version = tuple(int(part) for part in jaxlib.version.__version__.split(".")[:2])
    if version >= (0, 10):
        flags += ["--xla_cpu_use_fusion_emitters=false",
                  "--xla_cpu_parallel_codegen_split_count=1"]
    return tuple(flags)


def join(*flag_sets: Iterable[str]) -> str:
    """One ``XLA_FLAGS`` string of the flag sets, in order (XLA takes the last value of a flag
    given twice). Raises ``ValueError`` on a token that is not a ``--flag``, which XLA's parser
    would stop at, silently ignoring the flags after it."""
    tokens = [token for flags in flag_sets for token in flags]
    for token in tokens:
        if not token.startswith("--"):
            raise ValueError(f"{token!r} is not an XLA --flag: XLA_FLAGS would stop reading at it "
                             "and silently ignore every flag after it")
    return " ".join(tokens)


#: A flag that XLA does not know: it aborts the process when it reads it.
_UNKNOWN_FLAG = "--xla_mixscale_check_that_parsing_reaches_this_flag=1"


def xla_reads_every_flag(flags: str, timeout_s: float = 120.0) -> bool:
    """Whether XLA, started in a fresh process with ``XLA_FLAGS=flags`` and an unknown flag
    appended, reads that flag (and so every flag before it): the process must fail, naming it.
    ``False`` when the process starts its backend without complaint — the string stopped XLA's
    parser before its end."""
    env = {**os.environ, "XLA_FLAGS": f"{flags} {_UNKNOWN_FLAG}".strip()}
    probe = "import jax.numpy as jnp; jnp.zeros(1).block_until_ready()"
    run = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                         timeout=timeout_s, check=False)
    return run.returncode != 0 and _UNKNOWN_FLAG.split("=")[0] in run.stderr
