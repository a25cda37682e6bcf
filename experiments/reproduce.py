"""Run every experiment and assemble ``REPORT.md``: the one command behind the paper's figures.

    python -m experiments.reproduce            # full run: every figure and table in figures/
    python -m experiments.reproduce --quick    # smoke run (about a minute on two cores)
    python -m experiments.reproduce --jobs 1   # one experiment at a time, in this process
    python -m experiments.reproduce --only compare_laws,ablations
    python -m experiments.reproduce --report-only   # reassemble REPORT.md from the results

Each experiment module (see :mod:`experiments._common`) writes ``<name>.json``, its figures and
its report section ``<name>.md`` into ``--out``; this command runs them (below), draws again the
sections that read another experiment's record (:data:`READS_OTHER_RECORD`), records each
one's wall time in ``reproduce.json`` (``wall_s``; under ``last_run``, which experiments this
invocation ran and its total wall time, the figure the 30-minute goal is about) and concatenates
the sections into ``REPORT.md`` (with a contents list and the wall time each experiment's results
file records, :func:`assemble_report`). With
the default ``--out figures`` it also regenerates the README's generated blocks
(:mod:`experiments._readme`).

Experiments run side by side, each in its own process (``--jobs``, default: the machine's CPU
count, at most the number of experiments), longest first by the times the results files record:
each experiment's fits run single-threaded (:data:`experiments._common.XLA_FLAGS`), so one of them
keeps one core busy and the others idle. Their results do not depend on it (every experiment
seeds its own draws; only the recorded wall times, measured under the other's load, do).
Measured on the 2-core machine: a full experiment's process uses 1.03 cores (``compare_laws``
adding a law: 1783 CPU-s in 1731 s of running), so two side by side should take about half the
time of one after the other (a full run has not been timed so). The smoke run (``--quick``)
is mostly compilation, and its experiments compile for speed rather than for fast code
(:data:`experiments._common.QUICK_XLA_FLAGS`): 54, 55 and 59 s on the 2-core machine, two at
a time, against 118 and 119 s under the full runs' flags (:mod:`experiments._xla_flags`; before
the smoke runs had flags of their own, 117-135 s over many runs by the machine's load).
``--jobs 1`` runs them one after the other in this process.

``--compilation-cache DIR`` keeps the experiments' compiled programs in JAX's on-disk cache in
``DIR`` (:func:`compilation_cache`), so that a later invocation with the same directory reads
them back instead of compiling them (the cache is keyed by the program and its compile options,
so it changes no result). Measured on the 2-core machine, ``--quick``: a run that fills an
empty cache and a second that reads it back took 54.9 and 40.4 s (53.8 and 40.0 s again; 71 s
for the second when the cache kept only programs of a second or more and the smoke runs compiled
for fast code).
A fresh cache shared by one invocation's processes gains nothing measurable (before the smoke
runs compiled for speed: 124 and 126 s against 118 and 129 s, alternating runs; few of their
programs are alike), so none is made by default.

``--fit-cache DIR`` has every experiment keep its fits in ``DIR`` and take a fit kept there
instead of fitting it again (:func:`fit_cache_for_experiments`): a reproduction too long for one
sitting is resumed by the same command, each experiment refitting only what the stopped run had
not finished, as long as the code is unchanged (the cache is keyed by the source of the package,
the rows, the law and the fit's options: :func:`experiments._common.fit_cache`). The wall times
it records are then this invocation's; each results file counts the fits it took from the cache
at what they cost when made.

An experiment that fails is reported (traceback on stderr) and the others still run; the command
then exits with status 1 and ``REPORT.md`` says which sections are missing.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib
import json
import logging
import math
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from experiments import _readme
from experiments._common import FIT_CACHE_VARIABLE, directory_argument, parse_args, versions
from experiments._harness import EXPERIMENTS, NAMES, read_record, recorded_wall_s

log = logging.getLogger("reproduce")


#: The environment variable (read by JAX when it starts) naming the on-disk compilation cache.
CACHE_VARIABLE = "JAX_COMPILATION_CACHE_DIR"
#: The environment variable (read by JAX when it starts) with the shortest compile time, in
#: seconds, of a program kept in that cache.
MIN_COMPILE_TIME_VARIABLE = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"


@contextlib.contextmanager
def _variable_in_environment(variable: str, value: str | None):
    """Within the block, the environment variable ``variable`` is ``value``, for the
    experiments this process runs or starts; restored after. ``None``: nothing changes."""
    if value is None:
        yield
        return
    previous = os.environ.get(variable)
    os.environ[variable] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = previous


@contextlib.contextmanager
def _directory_in_environment(variable: str, directory: Path | None):
    """Within the block, the environment variable ``variable`` names ``directory`` (resolved,
    created if missing), for the experiments this process runs or starts; restored after.
    ``None``: nothing changes. Yields the directory (or ``None``)."""
    if directory is not None:
        directory = Path(directory).resolve()
        directory.mkdir(parents=True, exist_ok=True)
    with _variable_in_environment(variable, None if directory is None else str(directory)):
        yield directory


@contextlib.contextmanager
def compilation_cache(directory: Path | None):
    """Within the block, the experiment processes this one starts (:func:`run_isolated`) keep
    JAX's on-disk compilation cache in ``directory`` (created if missing; passed to them as
    :data:`CACHE_VARIABLE`), so that a later invocation with the same directory reads their
    programs back instead of compiling them. They keep every program, however fast it compiled
    (:data:`MIN_COMPILE_TIME_VARIABLE` set to 0 unless the environment sets it): JAX's own
    threshold, 1 s, keeps almost none of a smoke run's programs, which compile for speed.
    ``None``: nothing changes (a cache the environment names is used as it is). This process's
    own JAX is left as it is."""
    keep_every_program = None if directory is None or MIN_COMPILE_TIME_VARIABLE in os.environ \
        else "0"
    with _variable_in_environment(MIN_COMPILE_TIME_VARIABLE, keep_every_program), \
            _directory_in_environment(CACHE_VARIABLE, directory) as path:
        yield path


def fit_cache_for_experiments(directory: Path | None):
    """Within the block, every experiment this invocation runs, in this process or its own,
    keeps its fits in ``directory`` and takes a fit kept there instead of fitting it again
    (:func:`experiments._common.fit_cache`; passed as
    :data:`experiments._common.FIT_CACHE_VARIABLE`), so that a reproduction stopped midway is
    taken up again by the same command without losing the fits it finished, as long as the
    code is unchanged. ``None``: nothing changes."""
    return _directory_in_environment(FIT_CACHE_VARIABLE, directory)


def _select(only: str | None, skip: str | None) -> list[str]:
    """The experiments ``--only`` names (``None``: all), less those ``--skip`` names; an empty
    ``--only`` (an empty shell variable), a name given twice or nothing left is refused: an
    empty ``--only`` ran all nine experiments, hours of work."""
    def names(text, option):
        out = [s.strip() for s in text.split(",") if s.strip()]
        if not out:
            raise SystemExit(f"{option} {text!r} names no experiment; choose from {list(NAMES)}")
        unknown = [s for s in out if s not in NAMES]
        if unknown:
            raise SystemExit(f"unknown experiment(s) {unknown}; choose from {list(NAMES)}")
        twice = sorted({s for s in out if out.count(s) > 1})
        if twice:
            raise SystemExit(f"{option} names {twice} twice")
        return out

    chosen = names(only, "--only") if only is not None else list(NAMES)
    dropped = set(names(skip, "--skip")) if skip is not None else set()
    left = [n for n in chosen if n not in dropped]
    if not left:
        raise SystemExit("--only and --skip leave no experiment to run")
    return left


def run_one(name: str, out: Path, quick: bool) -> float:
    """Run ``experiments.<name>.main``; return its wall time in seconds (raises on failure)."""
    module = importlib.import_module(f"experiments.{name}")
    argv = ["--out", str(out)] + (["--quick"] if quick else [])
    t0 = time.perf_counter()
    status = module.main(argv)
    if status not in (0, None):
        raise RuntimeError(f"experiments.{name} exited with status {status}")
    return time.perf_counter() - t0


#: The repository root: an experiment run in its own process imports ``experiments`` from here.
ROOT = Path(__file__).resolve().parents[1]


def isolated_command(name: str, out: Path, quick: bool) -> list[str]:
    """The command line that runs experiment ``name`` in a process of its own."""
    return [sys.executable, "-m", f"experiments.{name}", "--out", str(Path(out).resolve()),
            *(["--quick"] if quick else [])]


def run_isolated(name: str, out: Path, quick: bool) -> float:
    """Run experiment ``name`` in a process of its own (:func:`isolated_command`; its log goes
    to this process's stderr); return its wall time in seconds (raises on failure)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    t0 = time.perf_counter()
    status = subprocess.run(isolated_command(name, out, quick), env=env, check=False).returncode
    if status != 0:
        raise RuntimeError(f"experiments.{name} exited with status {status}")
    return time.perf_counter() - t0


def run_all(names: list[str], out: Path, quick: bool, jobs: int) -> dict[str, float | None]:
    """Run ``names`` and return each one's wall seconds (``None``: failed, its traceback on
    stderr): one after the other in this process (:func:`run_one`) when ``jobs`` is 1, else up
    to ``jobs`` at a time in processes of their own (:func:`run_isolated`), longest first by
    the times their results files in ``out`` record (unknown ones first)."""
    timings: dict[str, float | None] = {}
    tag = " (quick)" if quick else ""

    def settle(done: int, name: str, result) -> None:
        """Record ``result()`` (wall seconds) as ``name``'s time, or a failure."""
        try:
            timings[name] = result()
            log.info("[%d/%d] %s done in %.1f min", done, len(names), name, timings[name] / 60)
        except Exception:  # noqa: BLE001 - report every failure, run the rest
            traceback.print_exc()
            timings[name] = None
            log.error("[%d/%d] %s FAILED", done, len(names), name)

    if jobs == 1:
        for i, name in enumerate(names, 1):
            log.info("[%d/%d] %s%s", i, len(names), name, tag)
            settle(i, name, lambda name=name: run_one(name, out, quick))
        return timings
    recorded = {n: recorded_wall_s(out, n) for n in names}
    order = sorted(names, key=lambda n: -(recorded[n] if recorded[n] is not None else math.inf))
    log.info("%d experiments%s, %d at a time, in this order: %s", len(names), tag, jobs,
             ", ".join(order))
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        running = {pool.submit(run_isolated, name, out, quick): name for name in order}
        for done, future in enumerate(concurrent.futures.as_completed(running), 1):
            settle(done, running[future], future.result)
    return {name: timings[name] for name in names}  # report order


#: Sections drawn also from another experiment's record: ``{section: source}``. Each is drawn
#: again from the records once the experiments have run (``compare_laws``' across-scale table is
#: ``real_extrapolation``'s fits, and that experiment may finish after it).
READS_OTHER_RECORD = {"compare_laws": "real_extrapolation"}


def redraw_readers(out: Path, timings: dict[str, float | None], ran: Sequence[str]) -> list[str]:
    """Draw again every section of :data:`READS_OTHER_RECORD` whose source experiment this
    invocation ran (``ran``) and finished, whose record is in ``out`` and that did not fail
    here (``timings[name] is None``), from the records as they are now; returns the names
    drawn. Cheap: those sections are tables read from the records."""
    drawn = []
    for name, source in READS_OTHER_RECORD.items():
        if (source in ran and timings.get(source) is not None
                and (out / f"{name}.json").exists()
                and not (name in timings and timings[name] is None)):
            importlib.import_module(f"experiments.{name}").render(out, read_record(out, name))
            drawn.append(name)
    return drawn


def _demote(markdown: str) -> str:
    """Section text with its headings one level down when it starts at level 1."""
    lines = markdown.splitlines()
    if not any(line.startswith("# ") for line in lines):
        return markdown
    return "\n".join("#" + line if line.startswith("#") else line for line in lines)


def assemble_report(out: Path, timings: dict[str, float | None], quick: bool) -> Path:
    """Write ``out/REPORT.md`` from the sections present in ``out`` (in report order);
    ``timings`` maps experiment names to their wall seconds (``None``: failed).

    Each experiment's time is the one its results file records (``elapsed_s``: the run that
    wrote it plus every law added to it since, so the time behind the numbers the section
    shows, as its own text states it), or ``timings``' where the file records none: a time from
    ``reproduce.json`` describes the run through this command, which a later ``--add-law`` or
    rerun of the experiment alone leaves behind."""
    titles = dict(EXPERIMENTS)
    present = [n for n in NAMES if n in timings or (out / f"{n}.md").exists()]
    failed = {n for n in present if n in timings and timings[n] is None}
    wall = {}
    for n in present:
        if n not in failed:
            recorded = recorded_wall_s(out, n)
            wall[n] = recorded if recorded is not None else timings.get(n)
    total = sum(t for t in wall.values() if t is not None)
    v = versions()
    lines = ["# mixscale: reproduced experiments", "",
             "Generated by `python -m experiments.reproduce"
             + (" --quick" if quick else "") + "` from the results files in this directory; do "
             "not edit by hand. Every number below is read from the experiments' JSON results.",
             "", f"Versions: mixscale {v['mixscale']}, jax {v['jax']}, equinox {v['equinox']}, "
             f"optax {v['optax']}, numpy {v['numpy']}, Python {v['python']}.", "",
             "| experiment | command | wall time |", "|---|---|---|"]
    for name in present:
        t = wall.get(name)
        took = "failed" if name in failed else ("—" if t is None else f"{t / 60:.1f} min")
        lines.append(f"| [{titles[name]}](#{name}) | `python -m experiments.{name}` | {took} |")
    lines += ["", f"Total: {total / 60:.1f} min of wall time summed over the experiments on a "
              "2-core CPU machine (shared with other jobs while these ran, so an idle machine is "
              "faster); run side by side (`--jobs`), an invocation takes less: its own time is "
              "`reproduce.json`'s `last_run`.", ""]
    for name in present:
        section = out / f"{name}.md"
        lines.append(f'<a id="{name}"></a>')
        lines.append("")
        if section.exists() and name not in failed:
            lines.append(_demote(section.read_text(encoding="utf-8")).rstrip())
        else:
            lines.append(f"## {titles[name]}\n\n*Missing: the experiment failed in this run.*")
        lines.append("")
    path = out / "REPORT.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    def extra(parser):
        parser.add_argument("--only", help="comma-separated experiments to run (default: all)")
        parser.add_argument("--skip", help="comma-separated experiments to leave out")
        parser.add_argument("--report-only", action="store_true",
                            help="run nothing: reassemble REPORT.md (and the README blocks) "
                                 "from the results already in --out")
        parser.add_argument("--jobs", type=int, default=None,
                            help="experiments run at a time, each in its own process "
                                 "(default: the CPU count; 1: one after the other in this "
                                 "process)")
        parser.add_argument("--fit-cache", type=directory_argument, default=None, metavar="DIR",
                            help="every experiment keeps its fits in DIR and takes a fit kept "
                                 "there (same code, rows and options) instead of fitting it "
                                 "again: a reproduction stopped midway is resumed by the same "
                                 "command")
        parser.add_argument("--compilation-cache", type=directory_argument, default=None,
                            metavar="DIR",
                            help="keep the experiments' compiled programs in DIR, for later "
                                 "invocations with the same DIR to read back (a quick run: "
                                 "about 120 s without, 70 s with a previous run's cache)")

    args = parse_args("reproduce", __doc__.split("\n\n")[0], argv, extra)
    if args.jobs is not None and args.jobs < 1:
        raise SystemExit(f"--jobs must be at least 1, got {args.jobs}")
    if args.report_only and (args.only is not None or args.skip is not None or args.jobs):
        raise SystemExit("--report-only runs nothing: --only, --skip and --jobs do not apply")
    names = [] if args.report_only else _select(args.only, args.skip)
    jobs = max(1, min(args.jobs or os.cpu_count() or 1, len(names)))
    started = time.perf_counter()
    with compilation_cache(args.compilation_cache) as cache, \
            fit_cache_for_experiments(args.fit_cache) as fits:
        if names and cache is not None:
            log.info("compilation cache: %s", cache)
        if names and fits is not None:
            log.info("fit cache: %s", fits)
        timings = run_all(names, args.out, args.quick, jobs)
    record_path = args.out / "reproduce.json"
    previous = json.loads(record_path.read_text()) if record_path.exists() else {}
    if args.report_only and previous.get("quick", args.quick) != args.quick:
        # the records in --out say what they are: a full run's folder reassembled with --quick
        # lost its wall times and called its full numbers a smoke run's
        log.info("--report-only: the records in %s are a %s run's; reporting them as such",
                 args.out, "smoke" if previous["quick"] else "full")
        args.quick = previous["quick"]
    if previous.get("quick", args.quick) == args.quick:  # keep the times of sections not rerun
        timings = {**previous.get("wall_s", {}), **timings}
    if args.report_only:  # an experiment rerun alone since its failure here has its record now
        timings = {n: (recorded_wall_s(args.out, n) if t is None
                       and (args.out / f"{n}.md").exists() else t) for n, t in timings.items()}
    # --report-only runs nothing: the last run's record stands (none if there was none)
    this_run = ({"experiments": names, "total_wall_s": time.perf_counter() - started} if names
                else previous.get("last_run"))
    record_path.write_text(json.dumps({"quick": args.quick, "wall_s": timings,
                                       "last_run": this_run, "versions": versions()},
                                      indent=1) + "\n", encoding="utf-8")
    for name in redraw_readers(args.out, timings, names):
        log.info("drew %s again from the records", name)
    report = assemble_report(args.out, timings, args.quick)
    log.info("wrote %s", report)
    if args.out.resolve() == _readme.FIGURES:
        log.info("updated %s", _readme.update(_readme.README, _readme.FIGURES))
    failed = [n for n in names if timings[n] is None]  # this invocation's, not the record's
    if failed:
        log.error("failed: %s", ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
