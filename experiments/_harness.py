"""The one entry every experiment goes through, and the list of experiments in report order.

An experiment module is four names::

    @dataclasses.dataclass(frozen=True)
    class Config:                       # everything that sets the numbers; defaults = full run
        ...

    QUICK = Config(...)                 # the smoke configuration (``--quick``)

    def run(config: Config, log: logging.Logger) -> dict: ...   # the results (JSON-able)
    def render(out: Path, record: dict) -> None: ...  # figures and OUT/<name>.md from the record

    def main(argv=None) -> int:
        return run_experiment(NAME, __doc__.splitlines()[0], Config, run, render, argv,
                              quick_config=QUICK)

:func:`run_experiment` owns the command line (``--quick``, ``--out``, ``--redraw``), the results
record ``OUT/<name>.json`` (``{"experiment", "config", "versions", "elapsed_s", "results"}``,
:func:`experiments._common.write_record`) and the call of ``render`` on the record read back from
that file, so that a fresh run and ``--redraw`` draw from the same bytes. :func:`config_from_record`
turns a record's configuration back into the ``Config`` (law labels into
:class:`mixscale.LawSpec`, lists into tuples, nested dataclasses rebuilt) for the renderers that
want the object.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from experiments._common import Timer, parse_args, write_record

__all__ = ["EXPERIMENTS", "NAMES", "config_from_record", "read_record", "recorded_wall_s",
           "run_experiment"]

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
)
NAMES = tuple(name for name, _ in EXPERIMENTS)


def read_record(out: Path, name: str) -> dict:
    """The results record ``out/<name>.json``."""
    path = Path(out) / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run the experiment first "
                                f"(python -m experiments.{name}), then --redraw")
    return json.loads(path.read_text(encoding="utf-8"))


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


# ----------------------------------------------------------------------------- the entry
def run_experiment(name: str, description: str, config_class: type,
                   run: Callable[[Any, logging.Logger], Any],
                   render: Callable[[Path, dict], None],
                   argv: Sequence[str] | None = None, *, quick_config: Any) -> int:
    """Run one experiment from its command line; returns the exit status (0).

    Without ``--redraw``: ``quick_config`` with ``--quick``, else ``config_class()``;
    ``run(config, log)``; the record written to ``OUT/<name>.json``. Then, and with
    ``--redraw`` alone, ``render(OUT, record)`` with the record read from that file.
    """
    def options(parser):
        parser.add_argument("--redraw", action="store_true",
                            help=f"rebuild the figures and the report section from "
                                 f"OUT/{name}.json without recomputing")

    args = parse_args(name, description, argv, options)
    log = logging.getLogger(name)
    if not args.redraw:
        if not isinstance(quick_config, config_class):
            raise TypeError(f"quick_config must be a {config_class.__name__}, got "
                            f"{type(quick_config).__name__}")
        config = quick_config if args.quick else config_class()
        timer = Timer()
        results = run(config, log)
        elapsed = timer()
        path = write_record(args.out, name, config, results, elapsed)
        log.info("wrote %s (%.1f min)", path, elapsed / 60)
    render(args.out, read_record(args.out, name))
    log.info("wrote the figures and %s", Path(args.out) / f"{name}.md")
    return 0
