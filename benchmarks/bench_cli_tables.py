"""Benchmark: every law through ``mixscale fit`` on every bundled table, as a user runs it.

Each law of the experiments' lists (the registered laws that are not candidates, each at its
default variant) is fitted by the command line with its defaults (64 restarts, Levenberg–Marquardt
with the converging policy: polish, finish and kink continuation; 30 % of the mixtures held out,
seed 0), one process per fit so that each time includes start-up and compilation:

* a law with size and token terms on the **whole** table (every model size and token budget);
* a law of one scale (``dml``, ``regression``) on the table's most populous (model size, tokens)
  group, which ``--model-size``/``--tokens`` select (the fitter refuses several scales for it).

Printed per fit: the rows it trained on, the parameters, whether the returned law passed the
convergence test (``conv``: the gradient test, or ``cert`` for a certificate on a kink of the
capacity allocation), the training objective, training and held-out MRE (%), the wall and CPU
seconds of the process. Why: the additive law on the whole SlimPajama-7 table once ended at an
objective of about 5 after 25 minutes through the default path (the capacity law: 0.03); every
law's default fit should end at a converged optimum.

    python benchmarks/bench_cli_tables.py [--tables pile4 slimpajama7] [--laws capacity additive]
                                          [--restarts 64] [--out results.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import time


def _one_scale_group(table) -> tuple[float, float]:
    """``(model size, tokens)`` in raw units of the most populous group of runs with a
    measured loss (the first in the table's order on a tie)."""
    import numpy as np

    measured = np.isfinite(np.asarray(table.losses)).any(axis=1)
    keys = [(float(n) * table.size_unit, float(d) * table.token_unit)
            for n, d, ok in zip(table.model_size, table.tokens, measured, strict=True) if ok]
    return collections.Counter(keys).most_common(1)[0][0]


def _cpu_children() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def run_one(table_name: str, law: str, restarts: int) -> dict:
    """Fit ``law`` to ``table_name`` through ``python -m mixscale fit ... --json``."""
    from mixscale import datasets, get_law

    argv = [sys.executable, "-m", "mixscale", "fit", table_name, "--law", law,
            "--restarts", str(restarts), "--json"]
    if not get_law(law).uses_scale:
        size, tokens = _one_scale_group(datasets.load(table_name))
        argv += ["--model-size", f"{size:.17g}", "--tokens", f"{tokens:.17g}"]
    cpu0, t0 = _cpu_children(), time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall, cpu = time.perf_counter() - t0, _cpu_children() - cpu0
    row = {"table": table_name, "law": law, "wall_s": wall, "cpu_s": cpu,
           "returncode": proc.returncode}
    if proc.returncode != 0:
        row["error"] = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        return row
    out = json.loads(proc.stdout)
    cert = out["kink_certificate"]
    row.update(n_params=out["n_params"], law_converged=out["law_converged"],
               certified=bool(cert and cert["certified"]), objective=out["objective"],
               train_mre=out["train_metrics"]["mre"],
               valid_mre=(out["validation_metrics"] or {}).get("mre"),
               at_bounds=out["at_bounds"], nested=out["nested_objectives"],
               notes=out["notes"])
    return row


def _line(row: dict) -> str:
    head = f"{row['table']:<12} {row['law']:<12}"
    if row["returncode"] != 0:
        return f"{head} refused/failed: {row['error']}"
    conv = ("cert" if row["certified"] else "yes") if row["law_converged"] else "NO"
    nested_ok = all(row["objective"] <= v * (1 + 1e-9) for v in row["nested"].values())
    valid = "-" if row["valid_mre"] is None else f"{100 * row['valid_mre']:.3f}"
    return (f"{head} {row['n_params']:>6} {conv:>5} {row['objective']:>11.4e} "
            f"{'yes' if nested_ok else 'NO':>6} {100 * row['train_mre']:>8.3f} {valid:>8} "
            f"{row['at_bounds']:>5} {row['wall_s']:>8.1f} {row['cpu_s']:>8.1f}")


def main(argv=None) -> int:
    from mixscale import datasets
    from mixscale.laws._registry import CANDIDATES, LAWS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tables", nargs="+", default=[d.name for d in datasets.available()])
    p.add_argument("--laws", nargs="+", default=[n for n in LAWS if n not in CANDIDATES])
    p.add_argument("--restarts", type=int, default=64)
    p.add_argument("--out", help="also write the rows as JSON here")
    args = p.parse_args(argv)
    print(f"mixscale fit, defaults, {args.restarts} restarts; XLA_FLAGS="
          f"{os.environ.get('XLA_FLAGS', '')!r}; {os.cpu_count()} CPUs", flush=True)
    print(f"{'table':<12} {'law':<12} {'params':>6} {'conv':>5} {'objective':>11} "
          f"{'nested':>6} {'train %':>8} {'valid %':>8} {'bound':>5} {'wall s':>8} "
          f"{'CPU s':>8}", flush=True)
    rows = []
    for table_name in args.tables:
        for law in args.laws:
            row = run_one(table_name, law, args.restarts)
            rows.append(row)
            print(_line(row), flush=True)
            if args.out:
                with open(args.out, "w", encoding="utf-8") as fh:
                    json.dump(rows, fh, indent=1)
    fitted = [r for r in rows if r["returncode"] == 0]
    print(f"\n{sum(r['law_converged'] for r in fitted)} of {len(fitted)} fits returned a "
          f"converged law ({sum(r['certified'] for r in fitted)} certified on a kink); "
          f"{len(rows) - len(fitted)} refused or failed; total wall "
          f"{sum(r['wall_s'] for r in rows) / 60:.1f} min, CPU "
          f"{sum(r['cpu_s'] for r in rows) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
