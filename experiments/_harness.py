"""The one entry every experiment goes through, and the list of experiments in report order.

An experiment module is four names::

    @dataclasses.dataclass(frozen=True)
    class Config:                       # everything that sets the numbers; defaults = full run
        ...

    QUICK = Config(...)                 # the smoke configuration (``--quick``)

    def run(config: Config, log: logging.Logger) -> dict: ...   # the results (JSON-able)
    def render(out: Path, record: dict) -> None: ...  # figures and OUT/<name>.md from the record

    def main(argv=None) -> int:
        return run_experiment(NAME, __doc__.split("\n\n")[0], Config, run, render, argv,
                              quick_config=QUICK)

:func:`run_experiment` owns the command line (``--quick``, ``--out``, ``--redraw``), the results
record ``OUT/<name>.json`` (``{"experiment", "config", "versions", "elapsed_s", "results"}``,
:func:`experiments._common.write_record`) and the call of ``render`` on the record read back from
that file, so that a fresh run and ``--redraw`` draw from the same bytes. An experiment that passes
``can_add_laws=True`` also takes ``--add-law LABEL``: only that law is fitted, and its rows are
merged into the existing record (:func:`merge_law_rows`), so that a law added to the experiment's
list after its full run costs that law's fits, not the whole run again (a top-level
``"law_labels"`` list in the results is rewritten to the merged laws, in the configuration's
order). An experiment opts in only where no number in its results depends on more than one law.
:func:`config_from_record` turns a record's configuration back into the ``Config`` (law labels into
:class:`mixscale.LawSpec`, lists into tuples, nested dataclasses rebuilt) for the renderers that
want the object.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from experiments._common import (
    FIT_CACHE_VARIABLE,
    Timer,
    _jsonable,
    fit_cache,
    fit_stages,
    parse_args,
    record_lock,
    reused_fit_seconds,
    write_record,
)

__all__ = ["EXPERIMENTS", "NAMES", "ROW_KEYS", "Part", "config_from_record", "fit_groups",
           "fit_seconds", "merge_law_rows", "nested_checks", "read_record", "recorded_wall_s",
           "run_experiment", "same_settings"]

#: (module, title) of every experiment in report order: theory first, then the real tables.
EXPERIMENTS = (
    ("law_vs_simulator", "The law against the simulator (shared head)"),
    ("fit_under_overlap", "Figure 1: fit under tail overlap"),
    ("optimal_mixture_regret", "Figure 2: quality of predicted optimal mixtures"),
    ("extrapolation_sim", "Figures 3-4: extrapolating the optimal mixture (simulator)"),
    ("ablations", "Theory ablations"),
    ("compare_laws", "Every law on the real loss tables"),
    ("real_extrapolation", "Figures 3-4: extrapolation on real loss tables"),
    ("pilecc_target", "Figure 5: the Pile-CC target on RegMix-1B"),
    ("regmix_overlap", "What the theory laws miss on RegMix: the tokens that domains share"),
)
NAMES = tuple(name for name, _ in EXPERIMENTS)


class RecordError(ValueError):
    """A results record that cannot be used as it is (malformed, or another experiment's); the
    experiments' command lines report it in one line."""


def read_record(out: Path, name: str) -> dict:
    """The results record ``out/<name>.json``, checked for the shape every record has (an
    object with this experiment's name, its ``config`` object, its ``results`` and a numeric or
    null ``elapsed_s``): ``FileNotFoundError`` without the file, :class:`RecordError` naming
    what is wrong otherwise."""
    path = Path(out) / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run the experiment first "
                                f"(python -m experiments.{name}), then --redraw or --add-law")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RecordError(f"{path}: not a JSON results record ({err})") from None
    if not isinstance(record, dict):
        raise RecordError(f"{path}: a results record is a JSON object, got "
                          f"{type(record).__name__}")
    if record.get("experiment") != name:
        raise RecordError(f"{path}: the record of experiment {record.get('experiment')!r}, not "
                          f"of {name!r}")
    for key, kind in (("config", dict), ("results", (dict, list))):
        if not isinstance(record.get(key), kind):
            raise RecordError(f"{path}: '{key}' is missing or not a JSON "
                              f"{'object' if kind is dict else 'object or list'}")
    elapsed = record.get("elapsed_s")
    if elapsed is not None and (isinstance(elapsed, bool)
                                or not isinstance(elapsed, (int, float))):
        raise RecordError(f"{path}: 'elapsed_s' must be a number of seconds or null, got "
                          f"{elapsed!r}")
    return record


def recorded_wall_s(out: Path, name: str) -> float | None:
    """The wall time an experiment's results file records (``elapsed_s``), if any."""
    path = Path(out) / f"{name}.json"
    if not path.exists():
        return None
    value = json.loads(path.read_text(encoding="utf-8")).get("elapsed_s")
    return None if value is None else float(value)


# ----------------------------------------------------------------------------- config round trip
def _from_json(value: Any, hint: Any) -> Any:
    """``value`` (as JSON stores it) converted to the type ``hint``."""
    from mixscale import LawSpec

    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        return _from_json(value, options[0]) if len(options) == 1 else value
    if hint is LawSpec:
        return LawSpec.from_dict(value) if isinstance(value, dict) else LawSpec.parse(value)
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return config_from_record(hint, value)
    if origin is tuple and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_json(v, args[0]) for v in value)
        if args and len(args) == len(value):
            return tuple(_from_json(v, a) for v, a in zip(value, args, strict=True))
        return tuple(value)
    if hint is float and isinstance(value, int):
        return float(value)
    return value


def config_from_record(config_class: type, config: dict) -> Any:
    """The ``config_class`` instance a record's ``"config"`` describes (fields the record lacks
    take their defaults; entries that are no longer fields are ignored)."""
    hints = typing.get_type_hints(config_class)
    fields = {f.name for f in dataclasses.fields(config_class) if f.init}
    return config_class(**{k: _from_json(v, hints[k]) for k, v in config.items() if k in fields})


# ----------------------------------------------------------------------------- adding a law
def law_fields(config: Any) -> tuple[str, ...]:
    """The fields of ``config`` that list laws: those its class names in ``LAW_FIELDS`` (a
    ``ClassVar``; e.g. ``fit_under_overlap``'s ``laws`` and ``one_scale_laws``, fitted on other
    rows), else ``("laws",)``."""
    return tuple(getattr(type(config), "LAW_FIELDS", ("laws",)))


def limit_laws(config: Any, keep: Callable[[Any], bool]) -> Any:
    """``config`` with each of its law lists (:func:`law_fields`) limited to the laws ``keep``
    accepts, in their order."""
    return dataclasses.replace(config, **{f: tuple(s for s in getattr(config, f) if keep(s))
                                          for f in law_fields(config)})


def all_laws(config: Any) -> tuple:
    """Every law of ``config``'s law lists (:func:`law_fields`), in their order."""
    return tuple(s for f in law_fields(config) for s in getattr(config, f))


def same_settings(recorded: Any, config: Any) -> bool:
    """Whether a record's configuration makes the same numbers as ``config``: equal but for
    their law lists (:func:`law_fields`) and the fields the configuration class names in
    ``COVERAGE_FIELDS`` (a ``ClassVar``; e.g. ``compare_laws``' ``not_fitted``), which say which
    cells are filled, not how a number is made. A law fitted where the record had left it out
    for cost is then added with ``--add-law`` (the record takes the present configuration's
    coverage)."""
    free = {f: getattr(config, f) for f in law_fields(config)}
    free.update({f: getattr(config, f) for f in getattr(type(config), "COVERAGE_FIELDS", ())})
    return dataclasses.replace(recorded, **free) == config


def merge_law_rows(old: Any, new: Any, labels: Sequence[str],
                   where: Callable[[dict], bool] | None = None) -> Any:
    """``old`` results with the rows of the laws ``labels`` taken from ``new``.

    A list whose items are all dicts with a ``"law"`` key is a list of law rows: ``old``'s rows of
    other laws are kept in order; a law of ``labels`` that ``old`` holds as many rows of as
    ``new`` has its rows replaced where they stand (a refit keeps the table's order), and every
    other row of ``labels`` in ``new`` follows, in ``new``'s order. ``where`` (for such a list
    only) limits the replacement to ``old``'s rows it accepts (those of a :class:`Part`'s
    rows, e.g. one dataset): ``old``'s other rows of ``labels`` stay. A dict keyed by law
    labels takes ``new``'s entry for each of ``labels``. Lists whose items are all dicts named
    by one of :data:`ITEM_KEYS` (e.g. ``"protocol"``) are merged item by item by that name:
    ``old``'s items that ``new`` lacks stay, ``new``'s that ``old`` lacks follow (a run limited to
    some protocols merges into a record of all of them). Other dicts and equally long lists are
    merged item by item; every other value is ``old``'s (the laws' common data, e.g. measured
    losses, which the two runs share).
    """
    def rows(x):
        return isinstance(x, list) and bool(x) and all(isinstance(r, dict) and "law" in r
                                                       for r in x)

    if rows(old) or (isinstance(old, list) and not old and rows(new)):
        def replaced(r):
            return r["law"] in labels and (where is None or where(r))

        fresh = [r for r in (new if rows(new) else []) if r["law"] in labels]
        old_rows = [r for r in old if replaced(r)]
        in_place = {law for law in labels
                    if 0 < sum(r["law"] == law for r in old_rows)
                    == sum(r["law"] == law for r in fresh)}
        queues = {law: iter([r for r in fresh if r["law"] == law]) for law in in_place}
        return ([next(queues[r["law"]]) if replaced(r) else r for r in old
                 if not replaced(r) or r["law"] in in_place]
                + [r for r in fresh if r["law"] not in in_place])
    if isinstance(old, dict):
        new = new if isinstance(new, dict) else {}
        merged = {k: (new[k] if k in labels and k in new else merge_law_rows(v, new.get(k), labels))
                  for k, v in old.items()}
        merged.update({k: v for k, v in new.items() if k in labels and k not in old})
        return merged
    key = _item_key(old, new)
    if key is not None:
        by_name = {_item_name(item, key): item for item in new}
        names = {_item_name(item, key) for item in old}
        return ([merge_law_rows(o, by_name[_item_name(o, key)], labels)
                 if _item_name(o, key) in by_name else o for o in old]
                + [n for n in new if _item_name(n, key) not in names])
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [merge_law_rows(o, n, labels) for o, n in zip(old, new, strict=True)]
    return old


@dataclasses.dataclass(frozen=True)
class Part:
    """A part of an experiment's results that ``--part`` can run alone, when it is not simply a
    top-level key of the results (a plain function in ``parts`` is ``Part(limit)``).

    Attributes:
        limit: ``config -> config`` limited to the part.
        key: the top-level key of the results the part's rows are under (``None``: the part's
            own name, or the items of a list named by :data:`ITEM_KEYS`).
        rows: which of the record's law rows under ``key`` the part refits (``None``: all of
            them), e.g. one dataset's rows of a protocol (``compare_laws``'
            ``in_scale:regmix-1b``): the law's other rows under ``key`` stay.
    """

    limit: Callable[[Any], Any]
    key: str | None = None
    rows: Callable[[dict], bool] | None = None


def as_part(part: Part | Callable[[Any], Any]) -> Part:
    """``part`` as a :class:`Part` (a plain function is the limit of a whole part)."""
    return part if isinstance(part, Part) else Part(part)


#: Keys that name the items of a results list, by which :func:`merge_law_rows` pairs a run's
#: items with the record's: one item per protocol of an experiment (``"protocol"``), or per
#: simulated setting, named by its head size and tail overlap together (``fit_under_overlap``).
ITEM_KEYS: tuple[tuple[str, ...], ...] = (("protocol",), ("head", "rho"))


def _item_name(item: dict, key: tuple[str, ...]) -> tuple:
    """The name of a results list's item under the item key ``key`` (its values there)."""
    return tuple(item[k] for k in key)


def _item_key(old: Any, new: Any) -> tuple[str, ...] | None:
    """The key of :data:`ITEM_KEYS` that names every item of both lists (uniquely in each),
    else ``None``."""
    if not (isinstance(old, list) and isinstance(new, list) and old and new):
        return None
    for key in ITEM_KEYS:
        if all(isinstance(x, dict) and all(k in x for k in key) for x in (*old, *new)):
            if (len({_item_name(x, key) for x in old}) == len(old)
                    and len({_item_name(x, key) for x in new}) == len(new)):
                return key
    return None


def fit_records(results: Any, label: str | None = None) -> Iterator[tuple[str, dict]]:
    """``(law label, fit record)`` of every fit record under ``results``: a mapping with
    ``law_converged`` (:func:`experiments._common.fit_record`); its law is its ``law`` entry or
    else the key it is stored under."""
    if isinstance(results, dict):
        if "law_converged" in results:
            yield str(results.get("law", label)), results
        for key, value in results.items():
            yield from fit_records(value, key if isinstance(value, dict) else label)
    elif isinstance(results, list):
        for value in results:
            yield from fit_records(value, label)


def fit_seconds(record: dict) -> float:
    """A fit record's wall seconds: ``fit_s`` (else ``optimise_s``; 0 if it has neither)."""
    return float(record.get("fit_s", record.get("optimise_s")) or 0.0)


def fit_rows(results: Any, label: str | None = None) -> Iterator[tuple[str, float, bool]]:
    """``(law label, fit seconds, converged)`` of every fit record under ``results``
    (:func:`fit_records`; seconds by :func:`fit_seconds`)."""
    for law, record in fit_records(results, label):
        yield law, fit_seconds(record), bool(record["law_converged"])


#: Entries of a fit row that tell apart, within one list of rows, fits made on different rows
#: of data (``compare_laws``' dataset and split, ``real_extrapolation``'s protocol).
ROW_KEYS = ("dataset", "seed", "protocol")


def fit_groups(results: Any, where: str = "results") -> Iterator[tuple[str, dict[str, dict]]]:
    """Every set of fits made on the same rows under ``results``, as ``(where, {law label: fit
    record})``: a mapping whose values are all fit records (keyed by law label, as
    ``law_vs_simulator``'s settings hold them), or the rows of one list that have a ``law``
    and agree on :data:`ROW_KEYS`. A law twice in one group (a grouping that misses a key)
    raises ``ValueError``."""
    if isinstance(results, dict):
        if results and all(isinstance(v, dict) and "objective" in v for v in results.values()):
            yield where, dict(results)
        for key, value in results.items():
            yield from fit_groups(value, f"{where}/{key}")
    elif isinstance(results, list):
        groups: dict = {}
        for row in results:
            if isinstance(row, dict) and "law" in row and "objective" in row:
                key = tuple((k, row[k]) for k in ROW_KEYS if row.get(k) is not None)
                group = groups.setdefault(key, {})
                if row["law"] in group:
                    raise ValueError(f"{where}: two fits of {row['law']} on rows {dict(key)}")
                group[row["law"]] = row
        for key, group in groups.items():
            yield where + "".join(f" {k}={v}" for k, v in key), group
        for i, value in enumerate(results):
            yield from fit_groups(value, f"{where}[{i}]")


def nested_checks(results: Any, rtol: float = 1e-9, where: str = "results"
                  ) -> Iterator[tuple[str, str, str, float, float, bool]]:
    """The tables' nested check: for every fit under ``results`` whose law nests a variant
    fitted on the same rows (:func:`fit_groups`; ``where`` names the root), ``(where, law,
    variant, its objective, the variant's, held)``, held when the law's training objective is
    at most the variant's to ``rtol`` relative (the law can represent the variant, so a fit
    above it has missed a basin its variant found)."""
    from mixscale import LawSpec

    for place, group in fit_groups(results, where):
        for label, row in group.items():
            for inner in (v.label for v in LawSpec.parse(label).nested_specs()):
                if inner in group and row.get("objective") is not None \
                        and group[inner].get("objective") is not None:
                    mine, theirs = float(row["objective"]), float(group[inner]["objective"])
                    yield place, label, inner, mine, theirs, mine <= theirs * (1 + rtol)


def law_fit_seconds(results: Any, labels: Sequence[str]) -> float:
    """The summed fit seconds of the laws ``labels`` in a results tree (:func:`fit_rows`)."""
    return sum(seconds for law, seconds, _ in fit_rows(results) if law in labels)


def _add_laws(name: str, config_class: type, config: Any, labels: Sequence[str], out: Path,
              run: Callable, log: logging.Logger, part: str | None = None,
              parts: Mapping[str, Callable] | None = None, whole_part: bool = False) -> None:
    """Fit only the laws ``labels`` of ``config``'s law lists (:func:`law_fields`; the others'
    laws are not fitted) and merge their rows into the record, read again once the fits are
    done, so that runs adding different laws can overlap.
    ``whole_part`` (a ``--part`` run without ``--add-law``): the record's additions name the
    laws that part has fits of (:func:`fit_rows`), none for a part without fits."""
    from mixscale import LawSpec

    record = read_record(out, name)
    specs = [LawSpec.parse(label) for label in labels]
    unknown = [s.label for s in specs if s not in all_laws(config)]
    if unknown:
        raise SystemExit(f"--add-law: {unknown} not in this experiment's laws "
                         f"{[s.label for s in all_laws(config)]}")
    recorded = config_from_record(config_class, record["config"])
    if not same_settings(recorded, config):
        raise SystemExit(f"--add-law: {out / name}.json was made with another configuration "
                         "than this one (beyond its laws and what they cover): run the "
                         "experiment in full")
    if part is not None and part not in (parts or {}):
        raise SystemExit(f"--part: {part!r} is not a part of this experiment "
                         f"({sorted(parts or {}) or 'it has none'})")
    part_spec = None if part is None else as_part(parts[part])
    limited = limit_laws(config, lambda s: s in specs)
    timer, reused = Timer(), reused_fit_seconds()
    results = run(limited if part_spec is None else part_spec.limit(limited), log)
    elapsed = timer() + (reused_fit_seconds() - reused)  # cached fits at what they cost
    # Read again: another --add-law run (of other laws) may have merged its rows meanwhile;
    # the lock keeps such runs from merging at the same moment (one would lose the other's).
    with record_lock(out, name):
        record = read_record(out, name)
        recorded = config_from_record(config_class, record["config"])
        if not same_settings(recorded, config):
            raise SystemExit(f"--add-law: {out / name}.json changed its configuration during this "
                             "run; its fits are not merged")
        new = _jsonable(results)
        # what this run adds: one top-level key of the results, or (no part, or a part named by its
        # items, e.g. one protocol of a list of them) the whole tree, merged by name
        key = None if part_spec is None else (part_spec.key or part)
        top_level = key is not None and key in new
        added_tree = new[key] if top_level else new
        done = [s.label for s in specs]
        if whole_part:
            fitted = {law for law, _, _ in fit_rows(added_tree)}
            done = [label for label in done if label in fitted]
        if not top_level:
            merged = merge_law_rows(record["results"], new, done)
        else:  # only that part of the results is refitted; the others keep every row
            merged = dict(record["results"])
            if key in record["results"]:
                merged[key] = merge_law_rows(record["results"][key], new[key], done, part_spec.rows)
            else:  # a part the record does not hold yet (added to the configuration since)
                merged[key] = new[key]
        # the fit seconds of the rows the merge dropped: the record's + the added − the merged
        replaced = max(0.0, law_fit_seconds(record["results"], done)
                       + law_fit_seconds(added_tree, done) - law_fit_seconds(merged, done))
        # every law of the record's run, then the added ones, in the configuration's order
        present = {s.label for s in all_laws(recorded)} | set(done)
        written = limit_laws(config, lambda s: s.label in present)
        if isinstance(merged, dict) and "law_labels" in merged:   # a results' list of its laws
            merged["law_labels"] = [s.label for s in written.laws]
        # The record's time is what its rows cost: a refitted law's earlier fits leave it.
        path = write_record(out, name, written, merged,
                            max(0.0, float(record.get("elapsed_s") or 0.0) - replaced) + elapsed,
                            added=[*record.get("added", []), {
                                "laws": done, "elapsed_s": elapsed, "replaced_fit_s": replaced,
                                **({} if part is None else {"part": part})}])
    log.info("added %s%s to %s (%.1f min)", ", ".join(done) or "no law fits",
             "" if part is None else f" ({part})", path, elapsed / 60)


# ----------------------------------------------------------------------------- the entry
def run_experiment(name: str, description: str, config_class: type,
                   run: Callable[[Any, logging.Logger], Any],
                   render: Callable[[Path, dict], None],
                   argv: Sequence[str] | None = None, *, quick_config: Any,
                   can_add_laws: bool = False,
                   parts: Mapping[str, Part | Callable[[Any], Any]] | None = None) -> int:
    """Run one experiment from its command line; returns the exit status (0).

    Without ``--redraw``: ``quick_config`` with ``--quick``, else ``config_class()``;
    ``run(config, log)``; the record written to ``OUT/<name>.json``. Then, and with
    ``--redraw`` alone, ``render(OUT, record)`` with the record read from that file. With
    ``can_add_laws``, ``--add-law LABEL`` (repeatable) fits only those laws of the
    configuration's list and merges their rows into the existing record (the record must come
    from the same configuration but for its laws; its ``elapsed_s`` then includes the added
    fits, less the recorded fit times (``"fit_s"``, :func:`law_fit_seconds`) of a refitted law's
    rows that they replace, and ``"added"`` lists each addition with those replaced seconds).
    Fits run with the experiments' polish and kink continuation
    (:func:`experiments._common.fit_law`), except under ``--quick``.

    ``parts`` (with ``can_add_laws``) names parts of the results, each with the function that
    limits a configuration to it: a top-level key of ``run``'s results, or an item of a list
    named by one of :data:`ITEM_KEYS` (``real_extrapolation``'s protocols), which
    :func:`merge_law_rows` pairs by name, or a :class:`Part` naming the key and the rows under
    it that it refits (``compare_laws``' ``in_scale:regmix-1b``: one dataset of a protocol).
    ``--part NAME`` then runs ``--add-law``'s laws on that part alone and merges only its rows
    (a long law refitted part by part, e.g. ``compare_laws``' protocols). ``--part NAME``
    without ``--add-law`` runs that part with every law of the configuration: a part added to
    the configuration after the record was written (its new fields' defaults are what the
    record is read with, :func:`config_from_record`) is computed alone and stored whole, the
    record's other parts untouched.
    """
    def options(parser):
        parser.add_argument("--redraw", action="store_true",
                            help=f"rebuild the figures and the report section from "
                                 f"OUT/{name}.json without recomputing")
        cache = os.environ.get(FIT_CACHE_VARIABLE) or None
        parser.add_argument("--fit-cache", type=Path, default=cache and Path(cache),
                            metavar="DIR",
                            help="keep every fit in DIR and reuse a fit kept there under the "
                                 "same code, rows and options (e.g. the nested variants an "
                                 "earlier --add-law run fitted; see "
                                 "experiments._common.fit_cache); default: the directory "
                                 f"${FIT_CACHE_VARIABLE} names, else none")
        if can_add_laws:
            parser.add_argument("--add-law", action="append", default=[], metavar="LABEL",
                                help="fit only this law of the experiment's list (e.g. "
                                     "'spectral') and merge its rows into the existing "
                                     f"OUT/{name}.json; repeatable")
            if parts:
                parser.add_argument("--part", choices=sorted(parts), default=None,
                                    help="run this part of the experiment only (with "
                                         "--add-law: only those laws) and merge it into "
                                         f"OUT/{name}.json")

    args = parse_args(name, description, argv, options)
    log = logging.getLogger(name)
    if not isinstance(quick_config, config_class):
        raise TypeError(f"quick_config must be a {config_class.__name__}, got "
                        f"{type(quick_config).__name__}")
    try:
        _check_arguments(args)
        if not args.redraw:
            config = quick_config if args.quick else config_class()
            with fit_stages(not args.quick), fit_cache(args.fit_cache):
                _run_or_add(name, config_class, config, args, run, log, parts)
        record = read_record(args.out, name)
        try:
            render(args.out, record)
        except (KeyError, IndexError, TypeError, ValueError) as err:
            if os.environ.get("MIXSCALE_DEBUG"):
                raise
            raise RecordError(
                f"{Path(args.out) / name}.json: cannot be rendered ({type(err).__name__}: "
                f"{err}): a record edited by hand or written by another version; rerun the "
                "experiment (MIXSCALE_DEBUG=1 shows the traceback)") from None
    except (RecordError, FileNotFoundError) as err:
        print(f"python -m experiments.{name}: error: {err}", file=sys.stderr)
        return 2
    log.info("wrote the figures and %s", Path(args.out) / f"{name}.md")
    return 0


def _check_arguments(args) -> None:
    """What the options ask, checked before any work: ``--redraw`` with nothing that fits;
    ``--add-law`` labels that name a registered law (variant included), each once; a
    ``--fit-cache`` that is a directory or can become one."""
    from mixscale import LawSpec

    labels = getattr(args, "add_law", None) or []
    if args.redraw and (labels or getattr(args, "part", None)):
        raise RecordError("--redraw only redraws from the record: drop --add-law and --part, "
                          "or --redraw")
    for label in labels:
        try:
            LawSpec.parse(label)
        except (KeyError, ValueError) as err:
            raise RecordError(f"--add-law {label!r}: {str(err).strip(chr(34))}") from None
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise RecordError(f"--add-law names {twice} twice")
    cache = getattr(args, "fit_cache", None)
    if cache is not None and cache.exists() and not cache.is_dir():
        raise RecordError(f"--fit-cache {cache}: a file, not a directory")


def _run_or_add(name: str, config_class: type, config, args, run, log, parts=None) -> None:
    """Run the configuration and write its record, or fit ``--add-law``'s laws and merge."""
    part = getattr(args, "part", None)
    labels = getattr(args, "add_law", None)
    whole_part = part is not None and not labels
    if whole_part:  # the whole part, every law of the configuration
        labels = [s.label for s in all_laws(config)]
    if labels:
        _add_laws(name, config_class, config, labels, args.out, run, log, part, parts,
                  whole_part)
    else:
        timer, reused = Timer(), reused_fit_seconds()
        results = run(config, log)
        elapsed = timer() + (reused_fit_seconds() - reused)  # cached fits at what they cost
        path = write_record(args.out, name, config, results, elapsed)
        log.info("wrote %s (%.1f min)", path, elapsed / 60)
