"""Benchmark: the experiments' fit policy against a race of the restarts (and against itself on a
shrinking batch), side by side.

* ``policy``: every restart for up to the step cap (1000), then the polish (up to 4000 more steps
  for the best restarts that reached the cap unconverged) and the kink continuation, with the
  fitter's nested starts — :func:`experiments._common.fit_law`'s settings;
* ``race``: every restart for ``--race-steps`` (250), then the polish for up to
  ``5000 − race-steps`` more: the same stages, the search cut short so that the steps go to
  the restarts that lead after it;
* ``shrink`` (with ``--shrink``, timed twice: the first call compiles a program per narrower
  width): the policy with ``fit(shrink_batch=True)``: the restarts still running move to a
  narrower batch as the others stop (``mixscale._lm.solve_lm``).

Tables: the in-scale tables of ``benchmarks/bench_fit.py`` (every row, in-mixture losses). Each
case is compiled first by a fit of a few steps with the same restarts (the step cap is a run-time
value), then the policy, the race and the policy again are timed (a stage the warm-up does not
reach compiles in the first call that needs it; the second policy call is warm): wall and CPU
seconds, the best objective, whether the returned law passed the gradient test, the restart it
came from. The race is worth adopting only if its best objective matches the policy's everywhere
(it did not: ``fit_law``'s docstring)::

    python benchmarks/bench_race.py [--cases "pile4:capacity" "slimpajama7:spectral"]
                                    [--race-steps 250] [--restarts 64] [--shrink]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

CASES = ("pile4:capacity", "slimpajama7:capacity", "pile4:capacity (pooled)",
         "slimpajama7:capacity (pooled)", "slimpajama7:spectral")
TOTAL_STEPS = 5000  # the policy's cap plus its polish (1000 + 4 x 1000)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES),
                        help="TABLE:LAW pairs (tables of bench_fit.py, law labels)")
    parser.add_argument("--race-steps", type=int, default=250)
    parser.add_argument("--restarts", type=int, default=64)
    parser.add_argument("--shrink", action="store_true",
                        help="also the policy on a shrinking batch (fit(shrink_batch=True))")
    args = parser.parse_args(argv)
    os.environ.setdefault("JAX_ENABLE_X64", "1")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_fit import _table

    import mixscale as ms

    policies = {"policy": (1000, TOTAL_STEPS - 1000, False),
                "race": (args.race_steps, TOTAL_STEPS - args.race_steps, False),
                "shrink": (1000, TOTAL_STEPS - 1000, True)}
    # the shrinking batch twice: its first call compiles a program per narrower width
    order = ("policy", "race", *(("shrink", "shrink") if args.shrink else ()), "policy")
    print(f"{args.restarts} restarts; race: {args.race_steps} steps, then a polish of up to "
          f"{TOTAL_STEPS - args.race_steps}", flush=True)
    print(f"{'table':12s} {'law':24s} {'policy':7s} {'wall s':>7s} {'CPU s':>7s} "
          f"{'objective':>16s} {'conv':>5s} {'best':>5s} {'vs policy':>10s}", flush=True)
    for case in args.cases:
        table_name, label = case.split(":", 1)
        table = _table(table_name)
        spec = ms.LawSpec.parse(label)
        # compile: the same restarts (so the same batch widths), a few steps
        ms.fit(spec, table, n_restarts=args.restarts, max_steps=3, polish_steps=3,
               smooth_kinks=True)
        results = {}
        # the policy twice, first and last: a stage the warm-up did not reach (the kink
        # continuation's programs) compiles in whichever call first needs it
        for name in order:
            steps, polish, shrink = policies[name]
            cpu, wall = _cpu(), time.perf_counter()
            res = ms.fit(spec, table, n_restarts=args.restarts, seed=0, max_steps=steps,
                         polish_steps=polish, smooth_kinks=True, shrink_batch=shrink)
            wall, cpu = time.perf_counter() - wall, _cpu() - cpu
            results[name] = res
            ratio = res.objective / results["policy"].objective - 1.0
            print(f"{table_name:12s} {label:24s} {name:7s} {wall:7.1f} {cpu:7.1f} "
                  f"{res.objective:16.10g} {'yes' if res.law_converged else 'no':>5s} "
                  f"{res.best:5d} {ratio:+10.2e}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
