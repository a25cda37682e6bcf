"""Where the full reproduction's time goes, read from the committed results files.

Every experiment records its wall time (``elapsed_s``) and, for every law fit, the fit's wall
seconds (``fit_s``; compilation, restarts, polish and kink continuation included) and whether
the returned law passed the gradient test (``law_converged``). This script sums them per
experiment and per law, so the reproduction's time can be attributed to the fits that cost it
(the rest of an experiment's time is simulation, reference optima and figures)::

    python benchmarks/reproduce_profile.py [--figures figures] [--top 15]

It prints, per experiment: its wall time, the time in law fits and their share, the number of
fits and how many returned a converged law; the least time a fresh two-job invocation can spend
in law fits (an experiment's recorded wall time counts each ``--add-law`` run whole, with the
nested variants it refitted for starts, which a fresh run fits once); then the laws by total fit
time over every experiment, the ``--top`` most costly (experiment, law) pairs, and where in its
record each fit that did not return a converged law is (experiment, place in the results, law,
fit seconds). Nothing is
run: the figures are those of the records (machine and load of the runs that wrote them). A fit
that a record repeats in several rows (``ablations`` stores its base variant's fits under each
group) is counted in each, so an experiment's fit share can exceed 100 %.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figures", type=Path, default=Path("figures"))
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from experiments._harness import (  # how records store their fits
        fit_groups,
        fit_rows,
        fit_seconds,
    )
    by_law = collections.defaultdict(lambda: [0.0, 0, 0])
    by_pair = collections.defaultdict(lambda: [0.0, 0, 0])
    total_wall = total_fit = 0.0
    fit_by_experiment: dict[str, float] = {}
    unconverged: list[tuple[str, str, str, float]] = []
    print(f"{'experiment':24s} {'wall min':>9s} {'fits min':>9s} {'share':>6s} "
          f"{'fits':>5s} {'converged':>9s}")
    for path in sorted(args.figures.glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        if "results" not in record or "elapsed_s" not in record:
            continue
        rows = list(fit_rows(record["results"]))
        fit_s = sum(s for _, s, _ in rows)
        fit_by_experiment[record["experiment"]] = fit_s
        wall = float(record["elapsed_s"])
        total_wall += wall
        total_fit += fit_s
        print(f"{record['experiment']:24s} {wall / 60:9.1f} {fit_s / 60:9.1f} "
              f"{fit_s / wall if wall else float('nan'):6.0%} {len(rows):5d} "
              f"{sum(c for *_, c in rows):9d}")
        unconverged += [(record["experiment"], where, law, fit_seconds(fit))
                        for where, group in fit_groups(record["results"])
                        for law, fit in group.items() if not fit["law_converged"]]
        for law, seconds, converged in rows:
            for key, table in ((law, by_law), ((record["experiment"], law), by_pair)):
                table[key][0] += seconds
                table[key][1] += 1
                table[key][2] += converged
    print(f"{'total':24s} {total_wall / 60:9.1f} {total_fit / 60:9.1f} "
          f"{total_fit / total_wall if total_wall else float('nan'):6.0%}\n")
    # A fresh invocation fits each law once per set of rows: the rows' fit time, not the
    # records' wall time, which counts every --add-law run whole (with the nested variants it
    # refitted for starts, which are not rows of the record).
    jobs = 2
    floor = max(max(fit_by_experiment.values(), default=0.0), total_fit / jobs)
    print(f"law fits in the rows: {total_fit / 60:.1f} min; a fresh `reproduce --jobs {jobs}` "
          f"takes at least max(the costliest experiment's fits, all fits / {jobs}) = "
          f"{floor / 60:.1f} min of wall time for them, plus the experiments' simulations\n")
    print(f"{'law':24s} {'fits min':>9s} {'share':>6s} {'fits':>5s} {'converged':>9s} "
          f"{'s per fit':>9s}")
    for law, (seconds, n, conv) in sorted(by_law.items(), key=lambda kv: -kv[1][0]):
        print(f"{law:24s} {seconds / 60:9.1f} {seconds / total_fit:6.0%} {n:5d} {conv:9d} "
              f"{seconds / n:9.1f}")
    print(f"\nthe {args.top} most costly (experiment, law) pairs")
    for (experiment, law), (seconds, n, conv) in sorted(
            by_pair.items(), key=lambda kv: -kv[1][0])[:args.top]:
        print(f"{experiment:24s} {law:24s} {seconds / 60:7.1f} min  {n:3d} fits  "
              f"{conv:3d} converged")
    print(f"\nfits without a converged law: {len(unconverged)}")
    for experiment, where, law, seconds in unconverged:
        print(f"{experiment:24s} {where:40s} {law:24s} {seconds:7.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
