"""Benchmark: the optimal-mixture search (:func:`mixscale.optimal_mixture`) per registered law —
its first call (compilation included) and later calls (the compiled search alone).

For every registered law (``mixscale.law_specs(candidates=True)``: the spectral candidates
too), a law drawn by its own ``init`` (seed 0) for the bundled table's in-mixture targets
(``--table``, default Pile-4 200M/8B, all scales: ``N`` and ``D`` are the table's largest), then
``optimal_mixture`` with ``--starts`` starts: the first call's wall seconds, the median of
``--repeats`` later calls (other seeds: the same compiled program), the objective and the
stationarity reached. One process for all laws: JAX's start-up is not counted.

Measured on the 2-core machine (defaults, beside one busy process), first call before -> after
the search traced the law twice instead of five times (``mixscale/_mixture.py``'s ``_spg``):
capacity (full) 3.6 -> 2.5 s, spectral (full) 10.8 -> 7.9 s, spectral (dispersed) 14.5 ->
11.0 s; joint, additive and DML within the noise (1-2 s both); later calls 3-20 ms either way,
the same objectives to the printed digits.

    python benchmarks/bench_optimal_mixture.py [--table pile4] [--starts 8] [--repeats 5]
                                               [--laws "capacity (pooled)" joint]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="pile4")
    parser.add_argument("--starts", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--laws", nargs="*", default=None,
                        help="law labels (default: every registered law)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from experiments._common import XLA_FLAGS

    os.environ.setdefault("XLA_FLAGS", XLA_FLAGS)
    import jax

    jax.config.update("jax_enable_x64", True)
    import mixscale
    from experiments._protocols import in_mixture, in_scale_table
    from mixscale._fit import data_summary

    table = in_mixture(in_scale_table(args.table))
    n, d = float(table.model_size.max()), float(table.tokens.max())
    specs = [s for s in mixscale.law_specs(candidates=True)
             if args.laws is None or s.label in args.laws]
    print(f"optimal_mixture on {args.table}: K = {len(table.train_domains)}, N = {n:g}, "
          f"D = {d:g}, {args.starts} starts, median of {args.repeats} later calls")
    print(f"{'law':26s} {'first s':>8s} {'later s':>8s} {'objective':>12s} {'stationarity':>12s}")
    for spec in specs:
        targets = spec.targets_for(table.train_domains, table.loss_domains)
        rows = table.select_losses(list(targets))
        law = spec.init(jax.random.key(0), data_summary(rows))
        t = time.perf_counter()
        res = mixscale.optimal_mixture(law, n, d, n_starts=args.starts, seed=0)
        first = time.perf_counter() - t
        later = []
        for seed in range(1, args.repeats + 1):
            t = time.perf_counter()
            mixscale.optimal_mixture(law, n, d, n_starts=args.starts, seed=seed)
            later.append(time.perf_counter() - t)
        print(f"{spec.label:26s} {first:8.2f} {np.median(later):8.3f} {res.objective:12.6g} "
              f"{res.stationarity:12.2e}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
