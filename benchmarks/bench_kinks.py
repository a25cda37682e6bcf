"""Benchmark: the kink certificate on the experiments' fits of a law with kinks.

For each table (``compare_laws``' in-scale tables: the whole table, or its seeded 70/30 split by
mixture with ``--splits``), fits the law as every experiment does
(:func:`experiments._common.fit_law`: 64 restarts, nested starts, polish, kink continuation and
then the certificate, :mod:`mixscale._kinks`) and prints the fit's wall time, the time of each
stage, whether the returned law converged and what the certificate did: certified or not, its
Gauss–Newton steps and its second-order pass's (``—`` where the first pass certified), active
kinks, tangential cosine, sampled (Clarke) measure and how much it lowered the objective.

Run: ``python benchmarks/bench_kinks.py [--tables slimpajama7 regmix-1b] [--splits 0 1]
[--law "capacity (full)"]`` (``--splits -1``: the whole table).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", nargs="+", default=["pile4", "slimpajama7", "regmix-1b"])
    p.add_argument("--splits", type=int, nargs="+", default=[-1, 0],
                   help="compare_laws' in-scale split seeds; -1: the whole table")
    p.add_argument("--law", default="capacity (full)")
    args = p.parse_args(argv)

    # the experiments' protocols live beside the library, at the repository's root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from experiments._common import XLA_FLAGS

    os.environ.setdefault("XLA_FLAGS", XLA_FLAGS)
    import jax

    jax.config.update("jax_enable_x64", True)
    import mixscale
    from experiments._common import fit_law
    from experiments._protocols import in_scale_table
    from mixscale.data import split

    spec = mixscale.LawSpec.parse(args.law)
    print(f"{spec.label}: the experiments' fit, then the kink certificate")
    print(f"{'table':12s} {'split':>5s} {'wall s':>7s} {'kinks s':>7s} {'cert s':>6s} "
          f"{'converged':>9s} {'certified':>9s} {'steps':>5s} {'2nd':>5s} {'active':>6s} "
          f"{'tangential':>10s} {'measure':>8s} {'lowered':>9s}")
    for name in args.tables:
        for seed in args.splits:
            table = in_scale_table(name)
            if seed >= 0:
                table, _ = split(table, 0.3, seed)
            t0 = time.perf_counter()
            res = fit_law(spec, table)
            wall = time.perf_counter() - t0
            c = res.kink_certificate
            cells = ("—",) * 7 if c is None else (
                "yes" if c.certified else "no", f"{c.steps}",
                "—" if c.second_order_steps is None else f"{c.second_order_steps}",
                f"{c.active_kinks}",
                f"{c.tangential_cosine:.1e}", f"{c.sigma:.1e}",
                f"{100 * (1 - c.objective / c.start_objective):.4f} %")
            print(f"{name:12s} {'all' if seed < 0 else seed:>5} {wall:7.1f} "
                  f"{res.timings.get('kink_smoothing_s', 0.0):7.1f} "
                  f"{res.timings.get('kink_certificate_s', 0.0):6.1f} "
                  f"{'yes' if res.law_converged else 'no':>9s} {cells[0]:>9s} {cells[1]:>5s} "
                  f"{cells[2]:>5s} {cells[3]:>6s} {cells[4]:>10s} {cells[5]:>8s} {cells[6]:>9s}",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
