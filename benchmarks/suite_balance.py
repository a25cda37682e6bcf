"""Measure how long each test module takes and write ``tests/module_seconds.json``, the table
``tests/conftest.py`` orders the suite's modules by (longest first).

The suite runs on two xdist workers, one test module per worker at a time (``--dist loadfile``).
The wall time is then the later of the two workers' finishing times, and a long module handed
out last leaves the other worker idle while it runs. Handing out the longest modules first (the
longest-processing-time rule) keeps the workers' ends close. The table only orders the modules:
a stale or missing entry costs balance, never a result.

Usage::

    python benchmarks/suite_balance.py             # runs pytest -q -n 2, writes the table
    python benchmarks/suite_balance.py --junit F   # reads a run's --junitxml file instead

It prints each module's seconds and the two workers' predicted finishing times under three
orders: the collection's (alphabetical), xdist's default (most tests first) and the table's.
The prediction assigns each module, in order, to the worker that frees first (xdist hands a
worker its next module when it is nearly out of tests, which this ignores); the measured wall
time, with its start-up and the machine's noise, is ``pytest``'s own last line.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "tests" / "module_seconds.json"


def module_totals(junit: Path) -> tuple[dict[str, float], dict[str, int]]:
    """Seconds (setup, call and teardown of its tests summed) and number of tests per test
    module file name, from a pytest ``--junitxml`` report."""
    seconds: collections.Counter[str] = collections.Counter()
    counts: collections.Counter[str] = collections.Counter()
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("classname", "").rsplit(".", 1)[-1] + ".py"
        seconds[name] += float(case.get("time", 0.0))
        counts[name] += 1
    if not seconds:
        raise SystemExit(f"{junit}: no test cases in this report")
    return dict(seconds), dict(counts)


def predicted_ends(seconds: list[float], workers: int = 2) -> list[float]:
    """Each worker's finishing time when modules of these durations are handed out in order,
    each to the worker that frees first."""
    ends = [0.0] * workers
    for s in seconds:
        ends[ends.index(min(ends))] += s
    return sorted(ends)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--junit", type=Path, help="a pytest --junitxml report to read "
                        "instead of running the suite")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    junit = args.junit
    if junit is None:
        junit = Path(tempfile.mkdtemp(prefix="suite-balance-")) / "junit.xml"
        print("running the suite: pytest -q -n 2", flush=True)
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2",
                        f"--junitxml={junit}"], cwd=ROOT, check=True)
    seconds, counts = module_totals(junit)
    alphabetical = sorted(seconds)
    by_count = sorted(alphabetical, key=lambda m: -counts[m])  # stable, as xdist sorts
    by_time = sorted(alphabetical, key=lambda m: -seconds[m])
    print(f"{len(seconds)} modules, {sum(seconds.values()):.1f} s of tests in all")
    for m in by_time:
        print(f"  {seconds[m]:7.1f} s  {counts[m]:4d} tests  {m}")
    for label, order in (("collection order", alphabetical), ("most tests first", by_count),
                         ("longest first", by_time)):
        ends = predicted_ends([seconds[m] for m in order])
        print(f"{label:>18}: workers end at {ends[0]:.1f} s and {ends[1]:.1f} s "
              f"(idle {ends[1] - ends[0]:.1f} s)")
    if not args.no_write:
        TABLE.write_text(json.dumps({m: round(seconds[m], 1) for m in by_time}, indent=1) + "\n")
        print(f"wrote {TABLE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
