"""Benchmark: converged local fits per CPU-second, every law × Pile-4 / SlimPajama-7 / RegMix-1B,
for the structured Levenberg–Marquardt solver, the dense one and optax L-BFGS, side by side.

Tables: the in-scale tables of the law comparison (Pile-4 200M/8B, 24 mixtures; SlimPajama-7
122M/~10B, 60 mixtures; RegMix-1B, 64 mixtures and 17 domains), in-mixture losses, every row.
Per table, law and solver: the first call (compilation included), the median wall and CPU time of
``--repeats`` further calls, the converged restarts, converged local fits per CPU-second and the
best objective (lower is better; the solvers minimise the same objective) and whether the
returned law passed the convergence test (``best conv``). ``--repeats 0`` times the first call
only (compilation included), for a survey of objectives and convergence.

* ``structured``: ``mixscale.fit`` as it is (per-target structure, parameter ranges, nested
  starts, the gradient test of convergence; the nested variants' fits are inside its time);
* ``geodesic``: the same with geodesic acceleration (``fit(geodesic=True)``);
* ``both`` (printed when ``structured`` and ``geodesic`` ran): the policy that runs both
  restart sets and keeps the better fit (its time is the sum; it cannot end above either);
* ``split``: the same restart budget split in two, half plain (seed 0) and half geodesic
  (seed 1, so other initial laws), the better fit kept: as costly as one policy, and a measure
  of whether mixing the two optimisers beats more restarts of one;
* ``forward``: ``structured`` with the Jacobian's own blocks in forward mode (one tangent per
  own parameter) for the laws that take them by one reverse pass per run
  (``row_jacobian = "reverse-own"``: the additive and joint laws); the same as ``structured``
  for every other law;
* ``dense``: the solver before the structure: the same LM with every parameter shared, no
  ranges, no nested starts, 400 steps, and its earlier rule (stopped = converged);
* ``lbfgs``: ``method="lbfgs"`` (no structure, no ranges).

Reference point (this project's 2-core machine, stated in its issue tracker): the paper's
released 7-domain script, scipy basin hopping with L-BFGS-B local fits, spends about 3
CPU-seconds per local fit of the capacity law on SlimPajama-7; the goal is 50× that rate.

    python benchmarks/bench_fit.py [--restarts 64] [--repeats 1] [--tables pile4 slimpajama7]
                                   [--laws capacity additive] [--solvers structured dense]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REFERENCE_CPU_S_PER_LOCAL_FIT = 3.0
SOLVERS = {"structured": {},
           "geodesic": {"geodesic": True},
           "forward": {},  # structured, the law's row_jacobian set to "forward" (_row_mode)
           "dense": {"use_structure": False, "use_bounds": False, "nested": False, "gtol": None,
                     "rtol": 1e-8, "max_steps": 400},
           "lbfgs": {"method": "lbfgs", "use_bounds": False, "nested": False}}


@contextlib.contextmanager
def _row_mode(law_class, solver: str):
    """The ``forward`` solver: ``law_class.row_jacobian`` set to ``"forward"`` for the fit when
    it is ``"reverse-own"``. The mode is a class variable, not part of a compiled program's
    cache key, so JAX's caches are cleared on the way in and out."""
    import jax

    old = law_class.row_jacobian
    switch = solver == "forward" and old == "reverse-own"
    if switch:
        jax.clear_caches()
        law_class.row_jacobian = "forward"
    try:
        yield
    finally:
        if switch:
            law_class.row_jacobian = old
            jax.clear_caches()


def _table(name):
    from mixscale.data import load, select

    tables = {"pile4": lambda: select(load("pile4"), model_size=200.0, tokens=8.0),
              "slimpajama7": lambda: select(load("slimpajama7"), model_size=122.0, tokens=9.998),
              "regmix-1b": lambda: load("regmix-1b")}
    table = tables[name]()
    return table.select_losses(list(table.in_mixture))


def _split_fit(ms, spec, table, kw):
    """Half the restarts plain (seed 0), half geodesic (seed 1); the fit with the lower
    objective, its restarts' convergence flags concatenated with the other's."""
    plain = ms.fit(spec, table, **kw)
    geodesic = ms.fit(spec, table, **{**kw, "seed": 1, "geodesic": True})
    better = plain if plain.objective <= geodesic.objective else geodesic
    return dataclasses.replace(better, converged=np.concatenate([plain.converged,
                                                                 geodesic.converged]))


def _row(table, law, n_params, solver, first, wall, cpu, n_conv, n_restarts, objective,
         law_converged):
    print(f"{table:<12} {law:<24} {n_params:>5} {solver:<10} {first:>8.1f} {wall:>7.1f} "
          f"{cpu:>7.1f} {n_conv:>3}/{n_restarts:<3}{n_conv / cpu:>10.2f} {objective:>15.8g} "
          f"{'yes' if law_converged else 'no':>9}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--restarts", type=int, default=64)
    p.add_argument("--repeats", type=int, default=1,
                   help="timed calls after the first (0: time the first call itself)")
    p.add_argument("--tables", nargs="+", default=["pile4", "slimpajama7", "regmix-1b"])
    p.add_argument("--laws", nargs="+", default=None, help="law names (default: every law)")
    p.add_argument("--solvers", nargs="+", default=list(SOLVERS),
                   choices=[*SOLVERS, "split"])
    args = p.parse_args(argv)
    # the experiments' single-threaded kernels; their settings live at the repository's root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from experiments._common import XLA_FLAGS

    os.environ.setdefault("XLA_FLAGS", XLA_FLAGS)
    import jax

    jax.config.update("jax_enable_x64", True)
    import mixscale as ms

    specs = [s for s in ms.law_specs(candidates=True)  # the spectral candidate law included
             if args.laws is None or s.name in args.laws]
    print(f"{args.restarts} restarts, {args.repeats} timed repeat(s) after a first call, "
          f"{jax.device_count()} {jax.default_backend()} device(s)")
    header = (f"{'table':<12} {'law':<24} {'P':>5} {'solver':<10} {'first s':>8} {'wall s':>7} "
              f"{'CPU s':>7} {'conv':>6} {'fits/CPU-s':>10} {'best objective':>15} "
              f"{'best conv':>9}")
    print(header)
    for name in args.tables:
        table = _table(name)
        for spec in specs:
            if not spec.uses_scale and len(set(zip(table.model_size, table.tokens,
                                                           strict=True))) > 1:
                continue
            done = {}
            for solver in args.solvers:
                kw = dict(n_restarts=args.restarts, seed=0, **SOLVERS.get(solver, {}))
                if solver == "split":
                    kw["n_restarts"] = max(1, args.restarts // 2)
                run = _split_fit if solver == "split" else (
                    lambda ms, spec, table, kw: ms.fit(spec, table, **kw))
                walls, cpus = [], []
                with _row_mode(spec.law_class, solver):
                    for _ in range(1 + args.repeats):  # the first call compiles
                        w0, c0 = time.perf_counter(), time.process_time()
                        res = run(ms, spec, table, kw)
                        walls.append(time.perf_counter() - w0)
                        cpus.append(time.process_time() - c0)
                first = walls[0]
                if args.repeats > 0:  # time the repeats only; 0: the first call itself
                    walls, cpus = walls[1:], cpus[1:]
                wall, cpu = statistics.median(walls), statistics.median(cpus)
                n_conv = int(res.converged.sum())
                done[solver] = (res, wall, cpu, n_conv)
                _row(name, spec.label, res.n_params, solver, first, wall, cpu, n_conv,
                     res.converged.size, res.objective, res.law_converged)
                if name == "slimpajama7" and spec == ms.LawSpec("capacity"):
                    ratio = n_conv / cpu * REFERENCE_CPU_S_PER_LOCAL_FIT
                    print(f"    capacity law on SlimPajama-7: {n_conv / cpu:.2f} converged "
                          f"fits per CPU-second = {ratio:.0f}x the paper's script (goal 50x)",
                          flush=True)
            if {"structured", "geodesic"} <= set(done):
                # both restart sets, the better fit kept: its time is the sum of the two
                (r1, w1, c1, n1), (r2, w2, c2, n2) = done["structured"], done["geodesic"]
                better = r1 if r1.objective <= r2.objective else r2
                _row(name, spec.label, better.n_params, "both", float("nan"), w1 + w2, c1 + c2,
                     n1 + n2, 2 * args.restarts, better.objective, better.law_converged)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
