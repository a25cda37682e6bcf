"""Benchmark: what a call costs once its programs are compiled — the loops the library runs
outside ``jax.jit`` and the command line's on-disk compilation cache.

* ``mixscale.allocate`` called eagerly (K = 17, random mixtures): the first call and the median
  of ``--repeats`` later ones. Its Newton loop closed over its inputs and was compiled again on
  every call until it became a compiled function of them.
* The kink certificate's minimum-norm hull point (``mixscale._stationarity.min_norm_in_hull``)
  for three hull shapes: the same two figures.
* The README's first command (``mixscale fit slimpajama7 --model-size 122M --tokens 10B``) run
  twice in fresh processes sharing an empty cache directory: wall seconds of each
  (``--skip-cli`` leaves it out; it takes about a minute and a half).

Measured on the 2-core machine, medians after the first call, before -> after: eager
``allocate`` 179 -> 1.0 ms; hull (33, 20) 291 -> 11 ms, (161, 8) 430 -> 148 ms, (225, 30)
553 -> 245 ms; the command 45.5 s, then 21.2 s from the cache (2.4 MB).

    python benchmarks/bench_compile_reuse.py [--repeats 20] [--skip-cli]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _first_and_median(call, draw, repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats + 1):
        args = draw()
        start = time.perf_counter()
        np.asarray(call(*args))
        times.append(time.perf_counter() - start)
    return times[0], float(np.median(times[1:]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--skip-cli", action="store_true")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    import jax

    jax.config.update("jax_enable_x64", True)
    from mixscale import allocate
    from mixscale._stationarity import min_norm_in_hull

    rng = np.random.default_rng(0)
    k = 17
    b, c = rng.uniform(0.2, 1.0, k), rng.uniform(0.5, 2.0, k)
    first, later = _first_and_median(
        lambda h: allocate(h, b, c, 100.0, 0.5), lambda: (rng.dirichlet(np.ones(k)),),
        args.repeats)
    print(f"eager allocate, K = {k}: first call {1e3 * first:.1f} ms, "
          f"later median {1e3 * later:.2f} ms")
    for shape in ((33, 20), (161, 8), (225, 30)):
        first, later = _first_and_median(min_norm_in_hull, lambda s=shape: (rng.normal(size=s),),
                                         max(3, args.repeats // 4))
        print(f"min_norm_in_hull {shape}: first call {1e3 * first:.0f} ms, "
              f"later median {1e3 * later:.1f} ms")
    if args.skip_cli:
        return 0
    command = [sys.executable, "-m", "mixscale", "fit", "slimpajama7", "--model-size", "122M",
               "--tokens", "10B"]
    with tempfile.TemporaryDirectory(prefix="mixscale-bench-cache-") as cache:
        env = {key: v for key, v in os.environ.items() if key != "JAX_COMPILATION_CACHE_DIR"}
        env["MIXSCALE_COMPILATION_CACHE"] = cache
        for run in ("empty cache", "from the cache"):
            start = time.perf_counter()
            subprocess.run(command, env=env, cwd=root, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            size = sum(p.stat().st_size for p in Path(cache).iterdir() if p.is_file())
            wall = time.perf_counter() - start
            print(f"mixscale {' '.join(command[3:])} ({run}): {wall:.1f} s wall, "
                  f"cache {size / 2**20:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
