"""The common experiment entry (experiments/_harness.py) and the rules every experiment module
follows: one shape (Config, QUICK, run, render, main), no experiment importing another, law
lists taken from the registry."""

import ast
import dataclasses
import importlib
import json
import logging
import os
import re
import typing
from pathlib import Path

import numpy as np
import pytest

from experiments import _common, _harness
from mixscale import LawSpec, law_specs
from mixscale._fit import FINISH_FACTOR, POLISH_FACTOR

EXPERIMENTS_DIR = Path(_harness.__file__).resolve().parent


# ----------------------------------------------------------------------------- a toy experiment
@dataclasses.dataclass(frozen=True)
class ToyConfig:
    n: int = 4
    scale: float = 2.0
    laws: tuple[LawSpec, ...] = tuple(law_specs(uses_scale=False))
    grid: tuple[tuple[float, float], ...] = ((1.0, 2.0), (3.0, 4.0))
    cap: int | None = None


TOY_QUICK = ToyConfig(n=2, laws=(LawSpec("capacity", variant="tied"),), cap=7)


def toy_run(config, log):
    toy_run.calls += 1
    log.info("toy run with n=%d", config.n)
    return {"values": [config.scale * i for i in range(config.n)],
            "laws": [s.label for s in config.laws]}


def toy_render(out, record):
    total = sum(record["results"]["values"])
    _common.write_section(out, "toy", f"## Toy\n\nn = {record['config']['n']}, total {total:g}, "
                          f"laws {', '.join(record['config']['laws'])}.")


def toy_main(argv):
    return _harness.run_experiment("toy", "A toy experiment.", ToyConfig, toy_run, toy_render,
                                   argv, quick_config=TOY_QUICK)


def test_toy_experiment_runs_records_and_redraws(tmp_path):
    toy_run.calls = 0
    assert toy_main(["--quick", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "toy.json").read_text())
    assert set(record) == {"experiment", "config", "versions", "elapsed_s", "results"}
    assert record["experiment"] == "toy" and record["elapsed_s"] >= 0
    assert record["config"] == {"n": 2, "scale": 2.0, "laws": ["capacity (tied)"],
                                "grid": [[1.0, 2.0], [3.0, 4.0]], "cap": 7}
    assert record["results"] == {"values": [0.0, 2.0], "laws": ["capacity (tied)"]}
    md = (tmp_path / "toy.md").read_text()
    assert md == "## Toy\n\nn = 2, total 2, laws capacity (tied).\n"
    # --redraw rebuilds the section from the record without running
    (tmp_path / "toy.md").unlink()
    assert toy_main(["--redraw", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "toy.md").read_text() == md and toy_run.calls == 1
    # the full configuration is the default
    assert toy_main(["--out", str(tmp_path)]) == 0 and toy_run.calls == 2
    assert json.loads((tmp_path / "toy.json").read_text())["config"]["n"] == 4


def test_full_runs_fit_with_the_polish_and_kink_continuation_quick_runs_without(tmp_path,
                                                                               monkeypatch):
    import mixscale

    calls = []
    monkeypatch.setattr(mixscale, "fit", lambda *a, **kw: calls.append(kw) or "fitted")

    def fitting_run(config, log):
        del log
        return {"fit": _common.fit_law(config.laws[0], None, max_steps=config.cap)}

    def main(argv):
        return _harness.run_experiment("toy", "A toy experiment.", ToyConfig, fitting_run,
                                       toy_render_nothing, argv, quick_config=TOY_QUICK)

    assert main(["--out", str(tmp_path)]) == 0
    assert main(["--quick", "--out", str(tmp_path)]) == 0
    full, quick = calls
    assert full["polish_steps"] == POLISH_FACTOR * 1000 and full["smooth_kinks"] is True
    assert full["finish_steps"] == FINISH_FACTOR * 1000
    assert quick["polish_steps"] == 0 and quick["smooth_kinks"] is False
    assert quick["finish_steps"] == 0
    assert quick["max_steps"] == 7
    # the switch is restored after the run, also outside the harness
    _common.fit_law(TOY_QUICK.laws[0], None, max_steps=3)
    assert calls[-1]["polish_steps"] == POLISH_FACTOR * 3 and calls[-1]["smooth_kinks"]


def toy_render_nothing(out, record):
    del record
    _common.write_section(out, "toy", "## Toy")


def test_redraw_needs_a_record(tmp_path, capsys):
    """Said in one line (exit 2), not a traceback."""
    assert toy_main(["--redraw", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run the experiment first" in err[0], err


@pytest.mark.parametrize("edit, message", [
    (lambda path: path.write_text("{\"experiment\": \"toy\", "), "not a JSON results record"),
    (lambda path: path.write_text("[1, 2]"), "is a JSON object, got list"),
    (lambda path: _edit_record(path, experiment="rows"), "of experiment 'rows', not of 'toy'"),
    (lambda path: _edit_record(path, results=None), "'results' is missing"),
    (lambda path: _edit_record(path, config=[1]), "'config' is missing or not a JSON object"),
    (lambda path: _edit_record(path, elapsed_s="abc"), "'elapsed_s' must be a number"),
    (lambda path: _edit_record(path, results={}), "cannot be rendered .KeyError: 'values'."),
])
def test_a_record_edited_by_hand_is_refused_in_one_line(tmp_path, capsys, edit, message):
    """Each of these was a traceback (JSONDecodeError, KeyError, TypeError) on --redraw."""
    assert toy_main(["--quick", "--out", str(tmp_path)]) == 0
    edit(tmp_path / "toy.json")
    capsys.readouterr()
    assert toy_main(["--redraw", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0]), err


def _edit_record(path, **fields):
    record = json.loads(path.read_text())
    record.update(fields)
    path.write_text(json.dumps(record))


def test_bad_options_are_refused_before_any_work(tmp_path, capsys):
    """An --out that is a file (FileExistsError), an unknown law or variant (KeyError), a law
    named twice, --redraw with --add-law (which it ignored) and a --fit-cache that is a file
    were tracebacks or silently ignored."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    for argv in (["--quick", "--out", str(afile)], ["--quick", "--out", ""]):
        with pytest.raises(SystemExit) as stop:
            row_main(argv)
        assert stop.value.code == 2
    row_run.calls = 0
    assert row_main(["--quick", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    for argv, message in ((["--add-law", "nonsense law"], "--add-law 'nonsense law': unknown law"),
                          (["--add-law", "capacity (bogus)"], "has no variant 'bogus'"),
                          (["--add-law", "bimix", "--add-law", "bimix"], r"\['bimix'\] twice"),
                          (["--redraw", "--add-law", "bimix"], "--redraw only redraws"),
                          (["--fit-cache", str(afile)], "a file, not a directory")):
        assert row_main([*argv, "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and re.search(message, err[0]), err


def test_quick_config_must_be_a_config(tmp_path):
    with pytest.raises(TypeError, match="ToyConfig"):
        _harness.run_experiment("toy", "", ToyConfig, toy_run, toy_render,
                                ["--quick", "--out", str(tmp_path)], quick_config={"n": 1})


def _stored_config(config, tmp_path):
    path = _common.write_record(tmp_path, "cfg", config, {}, 0.0)
    return json.loads(path.read_text())["config"]


def test_config_round_trip(tmp_path):
    for config in (ToyConfig(), TOY_QUICK):
        assert _harness.config_from_record(ToyConfig, _stored_config(config, tmp_path)) == config
    # a record may store a law as a mapping; entries that are no longer fields are ignored
    stored = {"laws": [{"name": "capacity", "options": {"variant": "full"}, "label": "x"}],
              "retired": 1}
    assert _harness.config_from_record(ToyConfig, stored) == ToyConfig(laws=(LawSpec("capacity"),))


# ----------------------------------------------------------------------------- every experiment
MODULES = {name: importlib.import_module(f"experiments.{name}") for name in _harness.NAMES}


@pytest.mark.parametrize("name", _harness.NAMES)
def test_every_experiment_has_the_one_shape(name, tmp_path):
    module = MODULES[name]
    for attr in ("Config", "QUICK", "run", "render", "main"):
        assert hasattr(module, attr), f"experiments.{name} has no {attr}"
    config_class = module.Config
    assert dataclasses.is_dataclass(config_class)
    assert config_class.__dataclass_params__.frozen
    assert isinstance(module.QUICK, config_class)
    for config in (config_class(), module.QUICK):  # what the record stores reads back
        stored = _stored_config(config, tmp_path)
        assert _harness.config_from_record(config_class, stored) == config


def _is_law_list(value) -> bool:
    return isinstance(value, (tuple, list, set, frozenset)) and any(
        isinstance(v, LawSpec) for v in value)


@pytest.mark.parametrize("name", _harness.NAMES)
def test_law_lists_come_from_the_registry(name):
    module = MODULES[name]
    assert not [k for k, v in vars(module).items() if _is_law_list(v)], "module-level law list"
    registry = tuple(law_specs())
    candidates = set(law_specs(candidates=True)) - set(registry)
    for field in dataclasses.fields(module.Config):
        default = field.default
        if _is_law_list(default):
            # a filter of the registry, in registration order, then any candidates named
            regular = tuple(s for s in default if s in registry)
            assert regular == tuple(s for s in registry if s in default), field.name
            assert default[:len(regular)] == regular, field.name
            assert set(default[len(regular):]) <= candidates, field.name


def test_law_list_predicates():
    theory = (LawSpec("spectral"), LawSpec("spectral", variant="transfer"),
              LawSpec("spectral", variant="dispersed"))
    assert MODULES["compare_laws"].Config().laws == (*law_specs(), *theory)
    offset = LawSpec("spectral", variant="offset")
    assert MODULES["optimal_mixture_regret"].Config().laws == (*law_specs(), *theory, offset)
    assert MODULES["real_extrapolation"].Config().laws == (*law_specs(uses_scale=True), *theory)
    every_scale_law = set(law_specs(uses_scale=True, candidates=True))
    assert set(MODULES["fit_under_overlap"].Config().laws) < every_scale_law
    assert set(MODULES["fit_under_overlap"].Config().one_scale_laws) < set(
        law_specs(uses_scale=False))
    assert set(MODULES["extrapolation_sim"].Config().laws) < every_scale_law
    # every experiment fits the spectral law (still a candidate) and its transfer and
    # dispersed variants, and the capacity law's crossover variant, beside the registry's (and
    # law_vs_simulator, optimal_mixture_regret and extrapolation_sim its offset variant);
    # ablations fits the spectral law and the crossover, coupled, pooled and pooled_coupled
    # variants beside the capacity variant each ablation is about
    crossover = LawSpec("capacity", variant="crossover")
    for name in ("law_vs_simulator", "fit_under_overlap", "optimal_mixture_regret",
                 "extrapolation_sim", "compare_laws", "real_extrapolation", "pilecc_target"):
        assert set(theory) <= set(MODULES[name].Config().laws), name
        assert crossover in MODULES[name].Config().laws, name
    for name in ("law_vs_simulator", "optimal_mixture_regret", "extrapolation_sim"):
        assert offset in MODULES[name].Config().laws, name
    assert MODULES["ablations"].Config().laws == (
        crossover, *(LawSpec("capacity", variant=v) for v in ("coupled", "pooled",
                                                              "pooled_coupled")), theory[0])


def _imports(path: Path) -> set[str]:
    """The ``experiments.*`` modules that the file at ``path`` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("experiments.")}
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "experiments":
                found |= {f"experiments.{a.name}" for a in node.names}
            elif node.module.startswith("experiments."):
                found.add(node.module)
    return found


def test_no_experiment_imports_another_and_no_cycle():
    graph = {f"experiments.{p.stem}": _imports(p) for p in EXPERIMENTS_DIR.glob("*.py")
             if p.stem != "__init__"}
    public = {m for m in graph if not m.rsplit(".", 1)[1].startswith("_")}
    for module, imported in graph.items():
        assert not (imported & public), f"{module} imports {sorted(imported & public)}"

    def visit(module, path):
        assert module not in path, f"import cycle {' -> '.join([*path, module])}"
        for nxt in graph.get(module, ()):
            visit(nxt, [*path, module])

    for module in graph:
        visit(module, [])


def test_the_harness_logs_through_the_experiment_logger(tmp_path, caplog):
    toy_run.calls = 0
    with caplog.at_level(logging.INFO, logger="toy"):
        toy_main(["--quick", "--out", str(tmp_path)])
    assert "toy run with n=2" in caplog.text


# ----------------------------------------------------------------------------- adding a law
@dataclasses.dataclass(frozen=True)
class RowConfig:
    n: int = 2
    laws: tuple[LawSpec, ...] = (LawSpec("capacity", variant="tied"), LawSpec("bimix"))


def row_run(config, log):
    row_run.calls += 1
    rows = [{"law": s.label, "seed": i, "run": row_run.calls}
            for i in range(config.n) for s in config.laws]
    return {"table": rows, "by_law": {s.label: row_run.calls for s in config.laws},
            "shared": [{"setting": j, "laws": [{"law": s.label, "run": row_run.calls}
                                              for s in config.laws]} for j in range(2)],
            "measured": [row_run.calls], "law_labels": [s.label for s in config.laws]}


def row_main(argv):
    return _harness.run_experiment("rows", "Rows.", RowConfig, row_run,
                                   lambda out, record: _common.write_section(out, "rows", "x"),
                                   argv, quick_config=RowConfig(n=1), can_add_laws=True)


def test_merge_law_rows_replaces_only_the_named_laws():
    old = {"t": [{"law": "a", "v": 1}, {"law": "b", "v": 1}], "d": {"a": 1, "b": 1},
           "l": [{"x": 0, "laws": [{"law": "a", "v": 1}]}], "common": [1, 2]}
    new = {"t": [{"law": "b", "v": 2}, {"law": "c", "v": 2}], "d": {"b": 2, "c": 2},
           "l": [{"x": 9, "laws": [{"law": "c", "v": 2}]}], "common": [3, 4]}
    assert _harness.merge_law_rows(old, new, ["b", "c"]) == {
        "t": [{"law": "a", "v": 1}, {"law": "b", "v": 2}, {"law": "c", "v": 2}],
        "d": {"a": 1, "b": 2, "c": 2},
        "l": [{"x": 0, "laws": [{"law": "a", "v": 1}, {"law": "c", "v": 2}]}],
        "common": [1, 2]}
    # a refit's rows replace the old ones one for one, in place, when as many
    interleaved = [{"law": "a", "s": 0}, {"law": "b", "s": 0}, {"law": "a", "s": 1},
                   {"law": "b", "s": 1}]
    refit = [{"law": "a", "s": 0, "v": 2}, {"law": "a", "s": 1, "v": 2}]
    assert _harness.merge_law_rows(interleaved, refit, ["a"]) == [
        refit[0], interleaved[1], refit[1], interleaved[3]]
    # else the old rows go and the new ones follow
    assert _harness.merge_law_rows(interleaved, refit[:1], ["a"]) == [
        interleaved[1], interleaved[3], refit[0]]


def test_add_law_fits_only_that_law_and_merges_it(tmp_path):
    tied, bimix = RowConfig.laws
    row_run.calls = 0
    first = row_run(RowConfig(laws=(tied,)), None)
    _common.write_record(tmp_path, "rows", RowConfig(laws=(tied,)), first, 10.0)
    assert row_main(["--add-law", "bimix", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "rows.json").read_text())
    res = record["results"]
    assert row_run.calls == 2                                   # one run, of bimix alone
    assert res["table"] == [{"law": tied.label, "seed": i, "run": 1} for i in range(2)] + [
        {"law": "bimix", "seed": i, "run": 2} for i in range(2)]
    assert res["by_law"] == {tied.label: 1, "bimix": 2}
    assert [s["laws"] for s in res["shared"]] == [[{"law": tied.label, "run": 1},
                                                   {"law": "bimix", "run": 2}]] * 2
    assert res["measured"] == [1]
    assert record["config"]["laws"] == [tied.label, "bimix"]
    assert record["elapsed_s"] >= 10.0 and record["added"][0]["laws"] == ["bimix"]
    assert res["law_labels"] == [tied.label, "bimix"]
    # refitting a law already there replaces its rows where they stand, and their fit time
    # leaves the record's
    for row in res["table"]:
        row.update(fit_s=4.0 if row["law"] == tied.label else 1.0, law_converged=True)
    before = {**record, "results": res, "elapsed_s": 100.0}
    (tmp_path / "rows.json").write_text(json.dumps(before))
    assert row_main(["--add-law", tied.label, "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "rows.json").read_text())
    res = record["results"]
    assert [(r["law"], r["run"]) for r in res["table"]] == [
        (tied.label, 3), (tied.label, 3), ("bimix", 2), ("bimix", 2)] and row_run.calls == 3
    assert record["added"][-1]["replaced_fit_s"] == 8.0
    assert 92.0 <= record["elapsed_s"] == 92.0 + record["added"][-1]["elapsed_s"]


def test_add_law_runs_that_overlap_keep_each_others_rows(tmp_path):
    """The record is read again after the fits: a law merged by another run meanwhile stays."""
    tied, bimix = RowConfig.laws
    row_run.calls = 0
    _common.write_record(tmp_path, "rows", RowConfig(laws=(tied,)),
                         row_run(RowConfig(laws=(tied,)), None), 10.0)

    def overlapped(config, log):  # another run adds tied's refit while this one fits bimix
        assert row_main(["--add-law", tied.label, "--out", str(tmp_path)]) == 0
        return row_run(config, log)

    assert _harness.run_experiment("rows", "Rows.", RowConfig, overlapped,
                                   lambda out, record: None, ["--add-law", "bimix", "--out",
                                                              str(tmp_path)],
                                   quick_config=RowConfig(n=1), can_add_laws=True) == 0
    record = json.loads((tmp_path / "rows.json").read_text())
    assert [(r["law"], r["run"]) for r in record["results"]["table"]] == [
        (tied.label, 2), (tied.label, 2), ("bimix", 3), ("bimix", 3)]
    assert [a["laws"] for a in record["added"]] == [[tied.label], ["bimix"]]


@dataclasses.dataclass(frozen=True)
class PartConfig:
    first: bool = True
    second: bool = True
    laws: tuple[LawSpec, ...] = (LawSpec("capacity", variant="tied"), LawSpec("bimix"))


def part_run(config, log):
    part_run.calls += 1
    return {name: [{"law": s.label, "run": part_run.calls, "fit_s": 1.0, "law_converged": True}
                   for s in config.laws] if getattr(config, name) else []
            for name in ("first", "second")}


PARTS = {"first": lambda c: dataclasses.replace(c, second=False),
         "second": lambda c: dataclasses.replace(c, first=False)}


def part_main(argv):
    return _harness.run_experiment("parts", "Parts.", PartConfig, part_run,
                                   lambda out, record: None, argv, quick_config=PartConfig(),
                                   can_add_laws=True, parts=PARTS)


def test_add_law_on_one_part_merges_only_that_part(tmp_path):
    """``--part`` refits a law on one part of the results; its rows elsewhere stay."""
    part_run.calls = 0
    _common.write_record(tmp_path, "parts", PartConfig(), part_run(PartConfig(), None), 10.0)
    assert part_main(["--add-law", "bimix", "--part", "second", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "parts.json").read_text())
    res = record["results"]
    assert [(r["law"], r["run"]) for r in res["first"]] == [("capacity (tied)", 1), ("bimix", 1)]
    assert [(r["law"], r["run"]) for r in res["second"]] == [("capacity (tied)", 1),
                                                              ("bimix", 2)]
    assert record["added"][-1]["part"] == "second" and record["added"][-1]["replaced_fit_s"] == 1
    with pytest.raises(SystemExit):  # argparse: not a part
        part_main(["--add-law", "bimix", "--part", "third", "--out", str(tmp_path)])
    assert part_run.calls == 2
    # --part alone: every law of the configuration on that part
    assert part_main(["--part", "first", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "parts.json").read_text())["results"]
    assert [(r["law"], r["run"]) for r in res["first"]] == [("capacity (tied)", 3), ("bimix", 3)]
    assert [(r["law"], r["run"]) for r in res["second"]] == [("capacity (tied)", 1),
                                                              ("bimix", 2)]


@dataclasses.dataclass(frozen=True)
class GrownConfig(PartConfig):
    third: bool = True  # a part added after the record below was written


def test_a_part_added_to_the_configuration_is_run_alone_and_stored_whole(tmp_path):
    """A record written before a part existed is read with the new field's default, so
    ``--part`` computes that part alone and adds it; the other parts and their time stay."""
    def run(config, log):
        return {name: [{"law": s.label, "part": name, "fit_s": 2.0, "law_converged": True}
                       for s in config.laws] if getattr(config, name, False) else []
                for name in ("first", "second", "third")}

    old = {k: v for k, v in run(PartConfig(), None).items() if k != "third"}
    _common.write_record(tmp_path, "grown", PartConfig(), old, 10.0)
    parts = {**PARTS, "third": lambda c: dataclasses.replace(c, first=False, second=False)}
    argv = ["--part", "third", "--out", str(tmp_path)]
    assert _harness.run_experiment("grown", "Grown.", GrownConfig, run,
                                   lambda out, record: None, argv,
                                   quick_config=GrownConfig(), can_add_laws=True,
                                   parts=parts) == 0
    record = json.loads((tmp_path / "grown.json").read_text())
    assert {k: record["results"][k] for k in old} == old
    assert [(r["law"], r["part"]) for r in record["results"]["third"]] == [
        ("capacity (tied)", "third"), ("bimix", "third")]
    assert record["config"]["third"] is True
    assert record["added"][-1]["part"] == "third" and record["added"][-1]["replaced_fit_s"] == 0
    assert record["added"][-1]["laws"] == ["capacity (tied)", "bimix"]
    assert record["elapsed_s"] == pytest.approx(10.0 + record["added"][-1]["elapsed_s"])


def test_law_fit_seconds_sums_rows_and_keyed_entries_of_the_named_laws():
    fit = {"law_converged": True}  # what marks a fit record (experiments._common.fit_record)
    results = {"rows": [{"law": "a", "fit_s": 1.0, **fit}, {"law": "b", "fit_s": 2.0, **fit}],
               "laws": {"a": {"fit_s": 4.0, "mre": 0.1, **fit}, "b": {"fit_s": 8.0, **fit}},
               "nested": [{"setting": 0, "laws": [{"law": "a", "fit_s": 16.0, **fit}]}],
               "heldout": {"law": "a", "fit_s": 32.0}}  # no fit record: not counted
    assert _harness.law_fit_seconds(results, ["a"]) == 21.0
    assert _harness.law_fit_seconds(results, ["a", "b"]) == 31.0
    assert _harness.law_fit_seconds(results, []) == 0.0


def test_add_law_refuses_another_configuration_or_an_unknown_law(tmp_path):
    row_run.calls = 0
    _common.write_record(tmp_path, "rows", RowConfig(n=3), row_run(RowConfig(n=3), None), 1.0)
    with pytest.raises(SystemExit, match="another configuration"):
        row_main(["--add-law", "bimix", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="not in this experiment's laws"):
        row_main(["--add-law", "joint", "--out", str(tmp_path)])
    assert row_run.calls == 1



@dataclasses.dataclass(frozen=True)
class CoverConfig(RowConfig):
    skip: tuple[str, ...] = ("bimix",)
    COVERAGE_FIELDS: typing.ClassVar[tuple[str, ...]] = ("skip",)


def test_add_law_accepts_a_record_that_differs_only_in_coverage(tmp_path):
    """A record whose coverage field (which cells are filled) differs takes the added law and
    the present coverage; any other difference is still refused."""
    tied, bimix = RowConfig.laws
    row_run.calls = 0
    recorded = CoverConfig(laws=(tied,), skip=("bimix", "tied"))
    _common.write_record(tmp_path, "cover", recorded, row_run(recorded, None), 1.0)
    assert _harness.same_settings(recorded, CoverConfig())
    assert not _harness.same_settings(dataclasses.replace(recorded, n=3), CoverConfig())

    def cover_main(argv):
        return _harness.run_experiment(
            "cover", "Cover.", CoverConfig, row_run,
            lambda out, record: _common.write_section(out, "cover", "x"), argv,
            quick_config=CoverConfig(n=1), can_add_laws=True)

    assert cover_main(["--add-law", "bimix", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "cover.json").read_text())
    assert record["config"]["skip"] == ["bimix"] and record["config"]["laws"] == [
        tied.label, "bimix"]
    assert {r["law"] for r in record["results"]["table"]} == {tied.label, "bimix"}
    _common.write_record(tmp_path, "cover", dataclasses.replace(recorded, n=3),
                         row_run(recorded, None), 1.0)
    with pytest.raises(SystemExit, match="another configuration"):
        cover_main(["--add-law", "bimix", "--out", str(tmp_path)])


@dataclasses.dataclass(frozen=True)
class TwoListConfig:
    laws: tuple[LawSpec, ...] = (LawSpec("capacity", variant="tied"),)
    top_laws: tuple[LawSpec, ...] = (LawSpec("bimix"), LawSpec("dml"))
    LAW_FIELDS: typing.ClassVar[tuple[str, ...]] = ("laws", "top_laws")


def two_list_run(config, log):
    two_list_run.fitted.append([s.label for s in (*config.laws, *config.top_laws)])
    return {"table": [{"law": s.label, "run": len(two_list_run.fitted)}
                      for s in (*config.laws, *config.top_laws)]}


def test_add_law_fits_only_that_law_of_either_law_list(tmp_path):
    """With two law lists (``LAW_FIELDS``), ``--add-law`` fits the named law alone, from
    whichever list holds it (the other list's laws are not fitted again), and the record's
    configuration keeps each list's laws in order."""
    (tied,), (bimix, _) = TwoListConfig.laws, TwoListConfig.top_laws
    two_list_run.fitted = []
    recorded = TwoListConfig(top_laws=(bimix,))
    _common.write_record(tmp_path, "two", recorded, two_list_run(recorded, None), 1.0)
    assert _harness.same_settings(recorded, TwoListConfig())

    def two_main(argv):
        return _harness.run_experiment(
            "two", "Two.", TwoListConfig, two_list_run,
            lambda out, record: _common.write_section(out, "two", "x"), argv,
            quick_config=TwoListConfig(), can_add_laws=True)

    assert two_main(["--add-law", "dml", "--out", str(tmp_path)]) == 0
    assert two_main(["--add-law", tied.label, "--out", str(tmp_path)]) == 0
    assert two_list_run.fitted == [[tied.label, "bimix"], ["dml"], [tied.label]]
    record = json.loads((tmp_path / "two.json").read_text())
    assert record["config"]["laws"] == [tied.label]
    assert record["config"]["top_laws"] == ["bimix", "dml"]
    assert [(r["law"], r["run"]) for r in record["results"]["table"]] == [
        (tied.label, 3), ("bimix", 1), ("dml", 2)]
    with pytest.raises(SystemExit, match="not in this experiment's laws"):
        two_main(["--add-law", "additive", "--out", str(tmp_path)])


# ----------------------------------------------------------------------------- nested-first fits
def test_fit_nested_first_fits_nested_variants_first_and_passes_their_fits():
    """Each law is fitted after the variants nested in it and given their fits; a nested
    variant not asked for (an ``--add-law`` run of one law) is fitted for its start only; with
    the stages off the laws are fitted alone, in order."""
    calls = []

    def fake_fit(spec, nested):
        calls.append((spec.label, dict(nested)))
        return f"fit of {spec.label}"

    decoupled, full = LawSpec("capacity", variant="decoupled"), LawSpec("capacity")
    fits = _common.fit_nested_first([decoupled, LawSpec("bimix"), full], fake_fit)
    assert list(fits) == [decoupled, LawSpec("bimix"), full]
    assert [label for label, _ in calls] == ["capacity (tied)", "capacity (capacity)",
                                            "capacity (full)", "capacity (decoupled)", "bimix"]
    given = dict(calls)
    assert given["capacity (full)"] == {"capacity (tied)": "fit of capacity (tied)",
                                        "capacity (capacity)": "fit of capacity (capacity)"}
    assert given["capacity (decoupled)"] == {"capacity (full)": "fit of capacity (full)"}
    assert given["bimix"] == {} and given["capacity (tied)"] == {}
    assert fits[full][0] == "fit of capacity (full)" and fits[full][1] >= 0
    calls.clear()
    with _common.fit_stages(False):
        fits = _common.fit_nested_first([decoupled, full], fake_fit)
    assert calls == [("capacity (decoupled)", {}), ("capacity (full)", {})]


def test_fit_laws_passes_each_law_its_variants_fits_and_catches_failures(monkeypatch):
    """``fit_laws`` gives ``fit_law`` each law's rows and the fits of its nested variants; with
    ``catch`` a failed fit is returned as its exception and starts no other law, without it
    the error propagates."""
    calls = []

    def fake_fit_law(spec, train, *, validation=None, n_restarts, seed, nested):
        calls.append((spec.label, train, validation, n_restarts, seed, dict(nested)))
        if spec.label == "capacity (tied)":
            raise RuntimeError("tied failed")
        return f"fit of {spec.label}"

    monkeypatch.setattr(_common, "fit_law", fake_fit_law)
    full = LawSpec("capacity")
    fits = _common.fit_laws([full], "rows", validation="held out", n_restarts=3, seed=7,
                            catch=True)
    assert fits[full][0] == "fit of capacity (full)"
    assert calls[-1] == ("capacity (full)", "rows", "held out", 3, 7,
                         {"capacity (capacity)": "fit of capacity (capacity)"})
    tied = LawSpec("capacity", variant="tied")
    fits = _common.fit_laws([tied, full], "rows", catch=True)
    assert isinstance(fits[tied][0], RuntimeError)
    with pytest.raises(RuntimeError, match="tied failed"):
        _common.fit_laws([full], "rows")


def test_a_fit_cache_returns_a_kept_fit_only_under_the_same_inputs(tmp_path, monkeypatch):
    """Under ``fit_cache``, a fit made once is returned again without fitting (with the seconds
    it took, which ``fit_nested_first`` records), so a later run of a law starts from the
    nested fits an earlier run made; other rows or options are other fits; without the cache
    nothing is kept."""
    import mixscale
    from mixscale.datasets import load

    table = load("pile4")
    table = table.take(np.arange(0, table.losses.shape[0], 3))
    fitted = []
    real_fit = mixscale.fit

    def counting_fit(spec, *args, **kwargs):
        fitted.append(spec.label)
        return real_fit(spec, *args, **kwargs)

    monkeypatch.setattr(mixscale, "fit", counting_fit)
    capacity, full = LawSpec("capacity", variant="capacity"), LawSpec("capacity")
    tied = LawSpec("capacity", variant="tied")       # full nests tied and capacity
    cache = tmp_path / "fits"
    with _common.fit_cache(cache):
        first = _common.fit_laws([capacity, tied], table, n_restarts=2)
        assert sorted(fitted) == sorted([capacity.label, tied.label])
        assert len(list(cache.glob("*.pkl"))) == 2
        fitted.clear()
        reused = _common.reused_fit_seconds()
        again = _common.fit_laws([capacity, tied], table, n_restarts=2)
        assert fitted == []                                    # nothing fitted: all kept
        res, seconds = again[capacity]
        assert res.objective == first[capacity][0].objective
        assert seconds == res.timings["cached_wall_s"] > 0
        # what they cost when made is counted (a record's run time includes it)
        assert _common.reused_fit_seconds() - reused == pytest.approx(
            sum(again[s][0].timings["cached_wall_s"] for s in (capacity, tied)))
        # a later run of the law nesting it starts from the kept fit, fitting only itself
        outer = _common.fit_laws([full], table, n_restarts=2)
        assert fitted == [full.label]
        assert outer[full][0].nested_objectives[capacity.label] == res.objective
        fitted.clear()
        # other rows, other options: fitted anew
        moved = dataclasses.replace(table, losses=table.losses * (1 + 1e-12))
        _common.fit_law(capacity, moved, n_restarts=2, nested=False)
        _common.fit_law(capacity, table, n_restarts=2, nested=False, seed=1)
        _common.fit_law(capacity, table, n_restarts=3, nested=False)
        assert fitted == [capacity.label] * 3
        # other numerics (here the XLA flags, which set the kernels' summation order): anew
        with monkeypatch.context() as env:
            env.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", "") + " --xla_dump_to=")
            _common.fit_law(capacity, table, n_restarts=3, nested=False)
        assert fitted == [capacity.label] * 4
    fitted.clear()
    kept = sorted(cache.glob("*.pkl"))
    _common.fit_law(capacity, table, n_restarts=3, nested=False)   # no cache: fitted, not kept
    assert fitted == [capacity.label] and sorted(cache.glob("*.pkl")) == kept
    assert not list(cache.glob(".*.partial"))


def test_the_fit_cache_key_reads_the_code_not_its_prose():
    """A change to a docstring or a comment keeps a cached fit; a change to the code does not."""
    code = 'def f(x):\n    """Double."""\n    return 2 * x  # twice\n'
    prose = 'def f(x):\n    """Twice x, reworded."""\n    # a new comment\n    return 2 * x\n'
    changed = 'def f(x):\n    """Double."""\n    return 3 * x\n'
    assert _common._code_text(code) == _common._code_text(prose)
    assert _common._code_text(code) != _common._code_text(changed)
    assert _common._code_text('"""Module."""\n') == _common._code_text('"""Other."""\n')


@pytest.mark.parametrize("edited, moves", [
    ("_additive.py", {"_capacity": False, "_joint": True, "_additive": True}),  # joint imports it
    ("_overlap.py", {"_capacity": False, "_joint": False, "_overlap": True}),
    ("_terms.py", {"_capacity": True, "_joint": True, "_overlap": True}),       # shared terms
    ("_lm.py", {"_capacity": True, "_joint": True, "_overlap": True}),          # the fitter
    ("_figures.py", {"_capacity": False, "_joint": False, "_overlap": False}),  # figures only
])
def test_the_fit_cache_key_of_a_law_reads_its_own_module_not_the_other_laws(monkeypatch, edited,
                                                                          moves):
    """A code change to one law's module moves the cache keys of that law and of the laws that
    import it, and keeps every other law's; a change outside the law modules moves them all,
    but for the experiments' figure helpers (``experiments/_figures.py``)."""
    modules = {name: f"mixscale.laws.{name}" for name in moves}
    _common._code_digest.cache_clear()
    before = {name: _common._code_digest(m) for name, m in modules.items()}
    real = Path.read_text

    def read_text(self, *args, **kwargs):
        text = real(self, *args, **kwargs)
        return text + "\nEDITED = 1\n" if self.name == edited else text

    monkeypatch.setattr(Path, "read_text", read_text)
    _common._code_digest.cache_clear()
    try:
        after = {name: _common._code_digest(m) for name, m in modules.items()}
    finally:
        _common._code_digest.cache_clear()
    assert {name: after[name] != before[name] for name in moves} == moves


def test_an_experiment_takes_its_fit_cache_from_the_option_or_the_environment(tmp_path,
                                                                             monkeypatch):
    """``--fit-cache DIR`` turns the cache on for the run (and off after it); without the
    option the directory that ``MIXSCALE_FIT_CACHE`` names is used, and the option wins; a
    record's run time counts the seconds of the fits taken from the cache."""
    seen = []

    def run(config, log):
        seen.append(_common._FIT_CACHE["dir"])
        _common._FIT_CACHE["reused_s"] += 100.0     # as a fit taken from the cache counts
        return {"values": [], "laws": []}

    def main(argv):
        return _harness.run_experiment("toy", "A toy experiment.", ToyConfig, run, toy_render,
                                       argv, quick_config=TOY_QUICK)

    monkeypatch.delenv(_common.FIT_CACHE_VARIABLE, raising=False)
    assert main(["--quick", "--out", str(tmp_path)]) == 0
    assert main(["--quick", "--out", str(tmp_path), "--fit-cache", str(tmp_path / "a")]) == 0
    monkeypatch.setenv(_common.FIT_CACHE_VARIABLE, str(tmp_path / "b"))
    assert main(["--quick", "--out", str(tmp_path)]) == 0
    assert main(["--quick", "--out", str(tmp_path), "--fit-cache", str(tmp_path / "a")]) == 0
    assert seen == [None, tmp_path / "a", tmp_path / "b", tmp_path / "a"]
    assert _common._FIT_CACHE["dir"] is None and (tmp_path / "b").is_dir()
    assert json.loads((tmp_path / "toy.json").read_text())["elapsed_s"] >= 100.0


def test_a_part_without_fits_adds_no_laws_to_the_record(tmp_path):
    """A part that fits nothing (a measurement from the data alone) lists no laws among the
    record's additions and leaves its list of laws as it was."""
    tied = PartConfig().laws[0]

    def run(config, log):
        return {"first": [{"law": s.label, "fit_s": 1.0, "law_converged": True}
                          for s in config.laws] if config.first else [],
                "second": [], "third": {"measured": 0.5} if getattr(config, "third", 0) else {}}

    _common.write_record(tmp_path, "nofit", PartConfig(laws=(tied,)),
                         {"first": run(PartConfig(laws=(tied,)), None)["first"], "second": []},
                         4.0)
    parts = {"third": lambda c: dataclasses.replace(c, first=False, second=False)}
    assert _harness.run_experiment("nofit", "No fit.", GrownConfig, run,
                                   lambda out, record: None,
                                   ["--part", "third", "--out", str(tmp_path)],
                                   quick_config=GrownConfig(), can_add_laws=True,
                                   parts=parts) == 0
    record = json.loads((tmp_path / "nofit.json").read_text())
    assert record["results"]["third"] == {"measured": 0.5}
    assert record["added"][-1]["laws"] == [] and record["config"]["laws"] == [tied.label]


def test_items_named_by_protocol_merge_by_name():
    """A run limited to some protocols merges into the record's items of those protocols; the
    record's other protocols stay, and a protocol the record lacks is added."""
    old = [{"protocol": "a", "measured": 1, "laws": [{"law": "x", "fit_s": 3.0},
                                                     {"law": "y", "fit_s": 5.0}]},
           {"protocol": "b", "measured": 2, "laws": [{"law": "x", "fit_s": 4.0}]}]
    new = [{"protocol": "b", "measured": 9, "laws": [{"law": "y", "fit_s": 7.0}]},
           {"protocol": "c", "measured": 3, "laws": [{"law": "y", "fit_s": 1.0}]}]
    merged = _harness.merge_law_rows(old, new, ["y"])
    assert [m["protocol"] for m in merged] == ["a", "b", "c"]
    assert merged[0] == old[0]
    assert merged[1] == {"protocol": "b", "measured": 2,
                         "laws": [{"law": "x", "fit_s": 4.0}, {"law": "y", "fit_s": 7.0}]}
    assert merged[2] == new[1]
    # duplicate names are not names: equally long lists merge by position, others keep old
    dup = [{"protocol": "a"}, {"protocol": "a"}]
    assert _harness.merge_law_rows(dup, [{"protocol": "a", "v": 1}], ["y"]) == dup


def test_items_named_by_head_and_rho_merge_by_both():
    """Simulated settings are named by head size and overlap together: a run of one setting
    merges into the record's setting of that head and overlap, not into the first of its head
    or the first of its overlap; items missing a key of the name are not paired by it."""
    old = [{"head": h, "rho": r, "laws": {"x": {"v": 10 * h + r}, "y": {"v": -1}}}
           for h in (0, 8) for r in (0.0, 0.5)]
    new = [{"head": 8, "rho": 0.0, "laws": {"x": {"v": 99}}}]
    merged = _harness.merge_law_rows(old, new, ["x"])
    assert [m["laws"]["x"]["v"] for m in merged] == [0.0, 0.5, 99, 80.5]
    assert all(m["laws"]["y"] == {"v": -1} for m in merged)
    unnamed = [{"head": 0, "laws": {"x": {"v": 1}}}, {"head": 8, "laws": {"x": {"v": 2}}}]
    assert _harness.merge_law_rows(unnamed, [{"rho": 0.0, "laws": {"x": {"v": 3}}}],
                                   ["x"]) == unnamed


@dataclasses.dataclass(frozen=True)
class ProtocolConfig:
    protocols: tuple[str, ...] = ("p1", "p2")
    laws: tuple[LawSpec, ...] = (LawSpec("capacity", variant="tied"), LawSpec("bimix"))


def test_add_law_on_one_protocol_of_a_list(tmp_path):
    """``--add-law --part P`` where the parts are the items of a list named by protocol: the
    law's rows of that protocol are replaced, the other protocol's stay, and the record's time
    loses only the replaced rows' seconds."""
    def run(config, log):
        return {"protocols": [{"protocol": p, "laws": [
            {"law": s.label, "p": p, "fit_s": 10.0 + len(config.protocols),
             "law_converged": True} for s in config.laws]} for p in config.protocols]}

    _common.write_record(tmp_path, "prot", ProtocolConfig(), run(ProtocolConfig(), None), 50.0)
    parts = {p: (lambda c, p=p: dataclasses.replace(c, protocols=(p,))) for p in ("p1", "p2")}
    assert _harness.run_experiment("prot", "Protocols.", ProtocolConfig, run,
                                   lambda out, record: None,
                                   ["--add-law", "bimix", "--part", "p2", "--out", str(tmp_path)],
                                   quick_config=ProtocolConfig(), can_add_laws=True,
                                   parts=parts) == 0
    record = json.loads((tmp_path / "prot.json").read_text())
    p1, p2 = record["results"]["protocols"]
    assert [(r["law"], r["fit_s"]) for r in p1["laws"]] == [("capacity (tied)", 12.0),
                                                            ("bimix", 12.0)]
    assert [(r["law"], r["fit_s"]) for r in p2["laws"]] == [("capacity (tied)", 12.0),
                                                            ("bimix", 11.0)]
    added = record["added"][-1]
    assert added["laws"] == ["bimix"] and added["part"] == "p2"
    assert added["replaced_fit_s"] == 12.0
    assert record["elapsed_s"] == pytest.approx(50.0 - 12.0 + added["elapsed_s"])


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    datasets: tuple[str, ...] = ("a", "b")
    laws: tuple[LawSpec, ...] = (LawSpec("capacity", variant="tied"), LawSpec("bimix"))


def test_add_law_on_one_dataset_of_a_protocol_replaces_only_its_rows(tmp_path):
    """A :class:`experiments._harness.Part` with a row filter (``compare_laws``'
    ``in_scale:regmix-1b``): the law's rows of that dataset are refitted in place, its rows of
    the other dataset and every other law's rows stay, and the record's time loses only the
    replaced rows' seconds; a law without rows of that dataset gets them appended."""
    def run(config, log):
        return {"in_scale": [{"law": s.label, "dataset": d, "seed": seed,
                              "fit_s": 10.0 * len(config.datasets), "law_converged": True}
                             for d in config.datasets for seed in (0, 1) for s in config.laws]}

    first = run(DatasetConfig(), None)
    first["in_scale"] = [r for r in first["in_scale"]   # bimix not yet fitted on "b"
                         if not (r["law"] == "bimix" and r["dataset"] == "b")]
    _common.write_record(tmp_path, "ds", DatasetConfig(), first, 100.0)
    parts = {f"in_scale:{d}": _harness.Part(
        lambda c, d=d: dataclasses.replace(c, datasets=(d,)), key="in_scale",
        rows=lambda row, d=d: row["dataset"] == d) for d in ("a", "b")}

    def main(argv):
        return _harness.run_experiment("ds", "Datasets.", DatasetConfig, run,
                                       lambda out, record: None, [*argv, "--out", str(tmp_path)],
                                       quick_config=DatasetConfig(), can_add_laws=True,
                                       parts=parts)

    assert main(["--add-law", "capacity (tied)", "--part", "in_scale:a"]) == 0
    record = json.loads((tmp_path / "ds.json").read_text())
    rows = [(r["law"], r["dataset"], r["seed"], r["fit_s"]) for r in record["results"]["in_scale"]]
    assert rows == [("capacity (tied)", "a", 0, 10.0), ("bimix", "a", 0, 20.0),
                    ("capacity (tied)", "a", 1, 10.0), ("bimix", "a", 1, 20.0),
                    ("capacity (tied)", "b", 0, 20.0), ("capacity (tied)", "b", 1, 20.0)]
    added = record["added"][-1]
    assert added["part"] == "in_scale:a" and added["replaced_fit_s"] == 40.0
    assert record["elapsed_s"] == pytest.approx(100.0 - 40.0 + added["elapsed_s"])
    # a law first fitted on a dataset: its rows there are appended, its other rows stay
    assert main(["--add-law", "bimix", "--part", "in_scale:b"]) == 0
    rows = [(r["law"], r["dataset"], r["fit_s"])
            for r in json.loads((tmp_path / "ds.json").read_text())["results"]["in_scale"]]
    assert rows[:6] == [(law, d, s) for law, d, _, s in [
        ("capacity (tied)", "a", 0, 10.0), ("bimix", "a", 0, 20.0),
        ("capacity (tied)", "a", 1, 10.0), ("bimix", "a", 1, 20.0),
        ("capacity (tied)", "b", 0, 20.0), ("capacity (tied)", "b", 1, 20.0)]]
    assert rows[6:] == [("bimix", "b", 10.0), ("bimix", "b", 10.0)]


# ----------------------------------------------------------------------------- nested checks
def _fit(law, objective, **row):
    return {"law": law, "objective": objective, "law_converged": True, **row}


def test_nested_checks_compare_a_law_with_its_variants_fitted_on_the_same_rows():
    """Fits on the same rows: a mapping of law labels to fit records, or the rows of a list
    that agree on dataset, seed and protocol; a law above a nested variant is named, rows of
    another split are not compared, a law twice in one group is refused."""
    results = {
        "settings": [{"laws": {"capacity (full)": _fit("capacity (full)", 1.0),
                               "capacity (tied)": _fit("capacity (tied)", 0.9),
                               "capacity (pooled)": _fit("capacity (pooled)", 1.0)}}],
        "in_scale": [_fit("capacity (pooled)", 2.0, dataset="a", seed=0),
                     _fit("capacity (pooled_coupled)", 2.0, dataset="a", seed=0),
                     _fit("capacity (pooled_coupled)", 1.0, dataset="a", seed=1),
                     _fit("capacity (pooled)", 0.5, dataset="b", seed=1)],
    }
    checks = list(_harness.nested_checks(results))
    failed = [(where, law, inner) for where, law, inner, *_, ok in checks if not ok]
    # full vs tied (above: fails), pooled vs full (equal: holds), pooled_coupled vs pooled on
    # split a/0 (equal: holds); a/1 and b/1 hold no nested pair
    assert len(checks) == 3
    assert failed == [("results/settings[0]/laws", "capacity (full)", "capacity (tied)")]
    assert [v.label for v in LawSpec("capacity").nested_specs()] == ["capacity (tied)",
                                                                     "capacity (capacity)"]
    with pytest.raises(ValueError, match="two fits of capacity"):
        list(_harness.nested_checks([_fit("capacity (full)", 1.0), _fit("capacity (full)", 2.0)]))



#: What a fit record of the present policy holds besides its result (``experiments._common.
#: fit_record``): whether the polish, the finish, the kink continuation and the kink
#: certificate of ``fit_law`` acted, how many steps the certificate took off the kinks (a
#: field added with those steps, so a record without it was certified by the earlier
#: certificate) and whether its end replaced the law (``kink_kept``: since an uncertified lower
#: end is kept too; before, only a certified one was) and the steps of its second-order pass
#: (``kink_second_order_steps``: the pass runs where the Gauss–Newton pass ends uncertified).
#: All act only on a fit whose best restart is unconverged.
POLICY_FIELDS = frozenset({"polished", "finished", "kink_smoothed", "kink_certified",
                           "kink_escapes", "kink_kept", "kink_second_order_steps"})
KINK_FIELDS = frozenset({"kink_escapes", "kink_kept", "kink_second_order_steps"})

#: Unconverged fits in the committed records made before one of those stages existed (their
#: records lack its field), and the certified fits that the finish could have changed
#: (:func:`_predates_the_policy`), so the present code could end them elsewhere:
#: ``(experiment, law label): number of fits``. Each comes off the list when ``--add-law``
#: refits its law with the present code; the list may only shrink. Every unconverged fit
#: made before the finish (``finished``: the returned restarts continued alone past the
#: polish) is here, as the finish could carry it to convergence; most were also made before
#: the kink certificate learned to hold a bound against its tangent steps and to step off a
#: kink where the sampled measure finds descent (``kink_escapes``). Every unconverged fit of a
#: law with kinks made before the certificate's lower end was kept uncertified (``kink_kept``)
#: is here too: the list grew by those 30 when that stage changed, and every unconverged fit of
#: such a law made before the certificate's second-order pass (``kink_second_order_steps``).
UNCONVERGED_BEFORE_THE_POLICY = {

}


def _policy_fields(label: str) -> frozenset:
    """The fields of :data:`POLICY_FIELDS` that a fit of the law ``label`` records: the
    certificate's steps off the kinks and whether its end was kept only for a law that lists
    kinks (no certificate acts on another)."""
    from mixscale.laws import AbstractLaw

    lists_kinks = LawSpec.parse(label).law_class.kink_gaps is not AbstractLaw.kink_gaps
    return POLICY_FIELDS if lists_kinks else POLICY_FIELDS - KINK_FIELDS


def _predates_the_policy(label: str, fit: dict) -> bool:
    """Whether the present policy could end the committed fit ``fit`` of the law ``label``
    elsewhere (:data:`UNCONVERGED_BEFORE_THE_POLICY`)."""
    if not _policy_fields(label) <= fit.keys() and not fit["law_converged"]:
        return True
    return ("finished" not in fit and bool(fit.get("kink_certified"))
            and bool(fit.get("polished")))


def test_committed_fits_come_from_the_present_policy_or_are_listed():
    """A committed fit whose record lacks a field of the present policy predates that stage;
    if it converged the stage would not have acted (its numbers are the present code's), and if
    it did not, it is one of :data:`UNCONVERGED_BEFORE_THE_POLICY`, which lists exactly those:
    a record's numbers come from the committed code, or this list says which may not. One
    kind of converged fit is listed too: one certified on a kink after the polish continued
    restarts, made before the finish (``finished``), which now runs before the certificate and
    continues a returned restart that the polish left at its step limit."""
    figures = EXPERIMENTS_DIR.parent / "figures"
    old, seen = {}, 0
    for name in _harness.NAMES:
        record = json.loads((figures / f"{name}.json").read_text())
        for law, fit in _harness.fit_records(record["results"]):
            seen += 1
            if _predates_the_policy(law, fit):
                old[(name, law)] = old.get((name, law), 0) + 1
    assert old == UNCONVERGED_BEFORE_THE_POLICY
    assert seen > 800  # every record's fits, not an empty walk


def test_every_committed_record_holds_the_nested_check():
    """No committed fit ends above a variant nested in its law fitted on the same rows (the
    experiments start each law from their own fits of its nested variants; a law added later
    with ``--add-law`` must be refitted with them, or its start is a fit made afresh)."""
    figures = EXPERIMENTS_DIR.parent / "figures"
    compared = 0
    for name in _harness.NAMES:
        record = json.loads((figures / f"{name}.json").read_text())
        checks = list(_harness.nested_checks(record["results"], where=name))
        compared += len(checks)
        failed = [f"{where}: {law} {mine:.9g} above {inner} {theirs:.9g}"
                  for where, law, inner, mine, theirs, ok in checks if not ok]
        assert not failed, failed
    assert compared > 100  # every record's nested pairs, not an empty walk


def test_a_record_is_written_whole_and_merged_under_a_lock(tmp_path):
    """The record is renamed into place whole (no partial file stays), and while one run holds
    the record's lock another cannot take it: runs adding laws at once merge one at a time."""
    import fcntl
    import threading

    path = _common.write_record(tmp_path, "locked", RowConfig(), {"a": [1.0, 2.0]}, 1.0)
    assert json.loads(path.read_text())["results"] == {"a": [1.0, 2.0]}
    assert [p.name for p in tmp_path.iterdir()] == ["locked.json"]
    taken = []

    def try_lock():
        with open(tmp_path / ".locked.lock", "a", encoding="utf-8") as other:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                taken.append(True)
            except BlockingIOError:
                taken.append(False)

    with _common.record_lock(tmp_path, "locked"):
        worker = threading.Thread(target=try_lock)
        worker.start()
        worker.join()
    try_lock()
    assert taken == [False, True]
