"""Benchmark: what the polish stage (``fit(polish_steps=...)``), the finish
(``fit(finish_steps=...)``) and the kink continuation (``fit(smooth_kinks=True)``) change, and why
the fits they do not finish end unconverged.

Tables: the in-scale tables of the law comparison (Pile-4 200M/8B, SlimPajama-7 122M/~10B,
RegMix-1B), in-mixture losses, the 70/30 splits by mixture of ``experiments.compare_laws``
(``--seeds``, default the first), 64 restarts, the experiments' one policy otherwise. Per table and
law, side by side: the plain fit (``mixscale.fit``'s defaults) and the same fit with
``--polish-steps`` more steps for the capped restarts (with ``--finish-steps``, that many more
for a returned restart still capped after them; and, with ``--smooth-kinks``, the kink
continuation for a best restart stopped early; the experiments run both,
``experiments._common.fit_law``; the ``smoothed`` column says whether it lowered it): whether the
returned law passed the gradient test, its training objective (relative change), the validation
MRE, the two stages' wall seconds, and for a returned law still unconverged, why each failing
problem stopped:

* ``capped``: it reached the step cap (more steps would continue it);
* ``kink``: it stopped early (no damped step lowered it) with a domain's unconstrained capacity
  allocation within 1e-6 (log) of the head floor ``x_i = H`` in some row: the capacity law's
  allocation ``max(H, ·)`` has a kink there and the objective no gradient (capacity-family
  laws only). ``σ`` is then the sampled (Clarke) stationarity measure of
  :mod:`mixscale._stationarity` (at most 1e-5: a minimum on the kink; above: LM is stuck on
  it, its steps crossing the kink);
* ``drift``: it stopped early with a parameter that has no range beyond ±25 in log units (a
  term switching itself off by running its amplitude to zero: the optimum is at infinity);
* ``stalled``: it stopped early for none of these reasons.

    python benchmarks/bench_polish.py [--tables pile4 slimpajama7 regmix-1b]
                                      [--laws "capacity (full)" additive joint]
                                      [--polish-steps 4000] [--finish-steps 32000]
                                      [--smooth-kinks]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

DRIFT = 25.0
KINK = 1e-6


def _tables(names, seeds):
    from experiments._protocols import in_scale_table
    from mixscale.data import split

    return {(name, seed): split(in_scale_table(name), 0.3, seed) for name in names
            for seed in seeds}


def _kink_distance(law, table) -> float:
    """Smallest ``|gap|`` of the law's listed kinks over the rows
    (:meth:`mixscale.laws.AbstractLaw.kink_gaps`: for the capacity law ``|log x_free − log H|``
    of its positive-weight domains); ``inf`` for a law that lists none."""
    gaps = [law.kink_gaps(h, float(n), float(d)) for h, n, d in zip(
        np.asarray(table.weights), np.asarray(table.model_size), np.asarray(table.tokens),
        strict=True)]
    if any(g is None for g in gaps):
        return float("inf")
    return min(float(np.min(np.abs(np.asarray(g)))) for g in gaps)


def _sigma(res, table) -> float:
    """The sampled stationarity measure of the returned law (one problem) on ``table``."""
    import equinox as eqx

    from mixscale._kinks import fitted_problem
    from mixscale._objective import Layout, residuals
    from mixscale._stationarity import sampled_stationarity

    data, delta, *bounds = fitted_problem(res, table)
    params, static = eqx.partition(res.law, eqx.is_inexact_array)
    layout = Layout.of(params)
    lower, upper = (np.asarray(layout.ravel(b)) for b in bounds)
    return sampled_stationarity(lambda p: residuals(layout.unravel(p), static, data, delta),
                                np.asarray(layout.ravel(params)), lower, upper)


def _why(res, table, max_steps: int, polish_steps: int, finish_steps: int = 0) -> str:
    """Why the returned law is unconverged (see the module docstring)."""
    import equinox as eqx
    import jax

    if res.law_converged:
        return ""
    capped = res.at_step_limit(max_steps, polish_steps, finish_steps)
    if capped and not res.kink_smoothed:  # after the continuation, steps count every stage
        return "capped"
    if _kink_distance(res.law, table) < KINK:
        return f"kink (σ {_sigma(res, table):.1e})"
    leaves = jax.tree_util.tree_leaves(eqx.filter(res.law, eqx.is_inexact_array))
    if any(np.max(np.abs(np.asarray(x))) > DRIFT for x in leaves):
        return "drift"
    return "stalled"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tables", nargs="+", default=["pile4", "slimpajama7", "regmix-1b"])
    p.add_argument("--laws", nargs="+", default=["capacity (full)", "additive", "joint"])
    p.add_argument("--polish-steps", type=int, default=4000)
    p.add_argument("--finish-steps", type=int, default=0)
    p.add_argument("--restarts", type=int, default=64)
    p.add_argument("--smooth-kinks", action="store_true")
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="splits of compare_laws' in-scale protocol (default: the first)")
    args = p.parse_args(argv)

    # the experiments' protocols live beside the library, at the repository's root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from experiments._common import XLA_FLAGS

    os.environ.setdefault("XLA_FLAGS", XLA_FLAGS)  # the experiments' kernels, so their fits
    import jax

    jax.config.update("jax_enable_x64", True)
    import mixscale
    from mixscale import LawSpec

    print(f"{'table':15s} {'law':18s} {'conv':>5s} {'polished':>8s} {'objective':>12s} "
          f"{'Δobj %':>8s} {'MRE %':>7s} {'→ MRE %':>8s} {'fit s':>6s} {'polish s':>8s} "
          f"{'finish s':>8s} {'smoothed':>8s} {'kinks s':>7s}  why")
    for (table, seed), (train, valid) in _tables(args.tables, args.seeds).items():
        name = f"{table} s{seed}"
        for label in args.laws:
            spec = LawSpec.parse(label)
            kw = dict(validation=valid, n_restarts=args.restarts, seed=0)
            t0 = time.perf_counter()
            plain = mixscale.fit(spec, train, **kw)
            fit_s = time.perf_counter() - t0
            polished = mixscale.fit(spec, train, polish_steps=args.polish_steps,
                                    finish_steps=args.finish_steps,
                                    smooth_kinks=args.smooth_kinks, **kw)
            change = 100 * (polished.objective - plain.objective) / plain.objective
            why = " → ".join(w or "converged" for w in (
                _why(plain, train, 1000, 0),
                _why(polished, train, 1000, args.polish_steps, args.finish_steps)))
            print(f"{name:15s} {label:18s} {plain.law_converged!s:>5s} "
                  f"{polished.law_converged!s:>8s} {plain.objective:12.6g} {change:+8.3f} "
                  f"{100 * plain.validation_metrics['mre']:7.3f} "
                  f"{100 * polished.validation_metrics['mre']:8.3f} {fit_s:6.1f} "
                  f"{polished.timings.get('polish_s', 0.0):8.1f} "
                  f"{polished.timings.get('finish_s', 0.0):8.1f} "
                  f"{polished.kink_smoothed!s:>8s} "
                  f"{polished.timings.get('kink_smoothing_s', 0.0):7.1f}  {why}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
