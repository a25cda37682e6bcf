"""The experiments' shared plumbing: results files, tables, simulator instances, the reproduce
command (report assembly, failure handling) and the README's generated blocks."""

import json
import os
import sys
import time

import numpy as np
import pytest

import simulate
from experiments import _common, _figures, _readme, _sim, reproduce, update_readme
from mixscale import LawSpec, law_specs


# ----------------------------------------------------------------------------- _common
def test_write_record_converts_arrays_dataclasses_and_nan(tmp_path):
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Cfg:
        sizes: tuple = (1, 2)
        law: LawSpec = LawSpec("capacity", variant="tied")

    path = _common.write_record(tmp_path, "demo", Cfg(), {
        "x": np.arange(3.0), "nan": float("nan"), "n": np.int64(4), "ok": np.bool_(True)}, 1.5)
    record = json.loads(path.read_text())
    assert record["config"] == {"sizes": [1, 2], "law": "capacity (tied)"}
    assert record["results"] == {"x": [0.0, 1.0, 2.0], "nan": None, "n": 4, "ok": True}
    assert record["elapsed_s"] == 1.5 and {"jax", "mixscale", "numpy"} <= set(record["versions"])


def test_spec_label_reads_every_stored_form():
    for spec in law_specs():
        assert _common.spec_label(spec.label) == spec.label
        assert _common.spec_label(spec.to_dict()) == spec.label
        assert _common.spec_label(  # the mapping of files written before mixscale.LawSpec
            {"name": spec.name, "options": dict(spec.options), "label": spec.label}) == spec.label


def test_markdown_table():
    text = _common.markdown_table(["a", "b"], [(1, 0.123456), ("x", float("nan"))])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 1 | 0.1235 |", "| x | — |"]


def test_quick_runs_default_to_their_own_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _common.parse_args("demo", "", ["--quick"]).out == tmp_path.joinpath(
        "figures", "quick").relative_to(tmp_path)
    assert str(_common.parse_args("demo", "", []).out) == "figures"


def test_fit_law_size_rule():
    from mixscale.data import load

    table = load("regmix-1b")
    laws = {s.label: s for s in law_specs()}
    assert _common.n_params(laws["capacity (tied)"], table) == 3 * 17 + 3
    assert _common.n_params(laws["joint"], table) == 17 * (4 * 17 + 5)


# ----------------------------------------------------------------------------- _sim
def test_draw_instance_is_seeded_and_valid():
    a = _sim.draw_instance(np.random.default_rng(3), 4, head=8, n_features=256)
    b = _sim.draw_instance(np.random.default_rng(3), 4, head=8, n_features=256)
    assert a == b and a.k == 4 and list(a.alpha) == sorted(a.alpha)
    assert all(1.3 <= x <= 2.5 for x in a.alpha) and np.isclose(sum(a.natural), 1.0)
    assert a.model().n_features <= 256
    with pytest.raises(ValueError, match="K >= 2"):
        _sim.draw_instance(np.random.default_rng(0), 1, head=0, n_features=64)
    with pytest.raises(ValueError, match="alpha_range"):
        _sim.draw_instance(np.random.default_rng(0), 3, head=0, n_features=64,
                           alpha_range=(0.9, 2.0))


def test_safe_learning_rate_is_stable_on_every_vertex():
    inst = _sim.draw_instance(np.random.default_rng(1), 3, head=4, n_features=128)
    model = inst.model()
    lr = _sim.safe_learning_rate(model, [16, 64], fraction=0.5)
    limits = [simulate.stable_step_limit(model, np.eye(3)[i], n) for i in range(3)
              for n in (16, 64)]
    assert lr == pytest.approx(0.5 * min(limits))
    schedule = simulate.Constant(lr)
    for i in range(3):  # a vertex is a legal mixture to evaluate, and stable
        losses = _sim.true_losses(model, np.eye(3)[i], 64, 200, schedule)
        assert losses.shape == (3,) and np.all(np.isfinite(losses))
    with pytest.raises(ValueError, match="fraction"):
        _sim.safe_learning_rate(model, [16], fraction=1.0)


def test_true_optimum_beats_every_lattice_point():
    inst = _sim.draw_instance(np.random.default_rng(2), 3, head=0, n_features=96)
    model = inst.model()
    schedule = simulate.Constant(_sim.safe_learning_rate(model, [32]))
    h_star, best = _sim.true_optimum(model, 32, 300, schedule)
    assert np.isclose(h_star.sum(), 1.0) and np.all(h_star >= 0)
    assert best == pytest.approx(_sim.true_losses(model, h_star, 32, 300, schedule).mean())
    grid = [np.array([i, j, 10 - i - j]) / 10 for i in range(11) for j in range(11 - i)]
    brute = min(_sim.true_losses(model, h, 32, 300, schedule).mean() for h in grid)
    assert best <= brute + 1e-12


# ----------------------------------------------------------------------------- reproduce
def test_reproduce_assembles_report_and_reports_failures(tmp_path, monkeypatch):
    def fake_run(name, out, quick):
        if name == "ablations":
            raise RuntimeError("boom")
        (out / f"{name}.md").write_text(
            f"# {name} title\n\nbody of {name}\n")
        return 60.0

    monkeypatch.setattr(reproduce, "run_one", fake_run)
    status = reproduce.main(["--out", str(tmp_path), "--jobs", "1", "--only",
                             "law_vs_simulator,compare_laws,ablations"])
    assert status == 1
    report = (tmp_path / "REPORT.md").read_text()
    assert "## law_vs_simulator title" in report and "body of compare_laws" in report
    assert "*Missing: the experiment failed in this run.*" in report
    assert report.index("law_vs_simulator title") < report.index("compare_laws title")
    timing = json.loads((tmp_path / "reproduce.json").read_text())["wall_s"]
    assert timing == {"law_vs_simulator": 60.0, "compare_laws": 60.0, "ablations": None}
    # a later partial run keeps the other sections and their times
    monkeypatch.setattr(reproduce, "run_one", lambda name, out, quick: 30.0)
    assert reproduce.main(["--out", str(tmp_path), "--jobs", "1", "--only", "ablations"]) == 0
    record = json.loads((tmp_path / "reproduce.json").read_text())
    timing = record["wall_s"]
    assert timing["ablations"] == 30.0 and timing["compare_laws"] == 60.0
    # the invocation's own record: what it ran and its total wall time (here near zero)
    assert record["last_run"]["experiments"] == ["ablations"]
    assert 0 <= record["last_run"]["total_wall_s"] < 30.0
    assert reproduce.main(["--out", str(tmp_path), "--report-only"]) == 0
    assert json.loads((tmp_path / "reproduce.json").read_text())["last_run"] == record["last_run"]
    assert "Total: 2.5 min of wall time" in (tmp_path / "REPORT.md").read_text()
    # reassembling runs nothing; times come from the results files where no run recorded them
    monkeypatch.setattr(reproduce, "run_one", None)
    (tmp_path / "reproduce.json").unlink()
    (tmp_path / "compare_laws.json").write_text(json.dumps({"elapsed_s": 240.0}))
    assert reproduce.main(["--out", str(tmp_path), "--report-only"]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert "| 4.0 min |" in report and "Total: 4.0 min" in report
    # a results file's own time wins over a reproduce.json time it has outgrown (laws added
    # to the record after the run through reproduce): the table states what its section does
    (tmp_path / "reproduce.json").write_text(json.dumps(
        {"quick": False, "wall_s": {"compare_laws": 60.0, "law_vs_simulator": 60.0}}))
    assert reproduce.main(["--out", str(tmp_path), "--report-only"]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert "compare_laws` | 4.0 min |" in report and "law_vs_simulator` | 1.0 min |" in report
    assert "Total: 5.0 min" in report


def test_reproduce_hands_its_fit_cache_to_every_experiment(tmp_path, monkeypatch):
    """``--fit-cache DIR``: each experiment run by this invocation sees ``DIR`` in
    ``MIXSCALE_FIT_CACHE`` (the default of its own ``--fit-cache``); the variable is restored
    afterwards; without the option it is left as it was."""
    from experiments._common import FIT_CACHE_VARIABLE

    seen = {}

    def fake_run(name, out, quick):
        seen[name] = os.environ.get(FIT_CACHE_VARIABLE)
        (out / f"{name}.md").write_text(f"# {name}\n")
        return 1.0

    monkeypatch.setattr(reproduce, "run_one", fake_run)
    monkeypatch.setenv(FIT_CACHE_VARIABLE, "earlier")
    assert reproduce.main(["--out", str(tmp_path), "--jobs", "1", "--only", "ablations",
                           "--fit-cache", str(tmp_path / "fits")]) == 0
    assert seen == {"ablations": str((tmp_path / "fits").resolve())}
    assert os.environ[FIT_CACHE_VARIABLE] == "earlier"
    assert reproduce.main(["--out", str(tmp_path), "--jobs", "1", "--only", "ablations"]) == 0
    assert seen == {"ablations": "earlier"}


def test_reproduce_compilation_cache_keeps_every_program(tmp_path, monkeypatch):
    """``--compilation-cache DIR``: the experiments' processes see ``DIR`` and a compile-time
    threshold of 0 (JAX reads both from the environment when it starts: checked in a fresh
    process); both are restored after, and a threshold the environment sets is kept."""
    import subprocess

    directory, threshold = reproduce.CACHE_VARIABLE, reproduce.MIN_COMPILE_TIME_VARIABLE
    monkeypatch.delenv(directory, raising=False)
    monkeypatch.delenv(threshold, raising=False)
    with reproduce.compilation_cache(tmp_path / "xla") as path:
        assert path == (tmp_path / "xla").resolve() and path.is_dir()
        read = subprocess.run(
            [sys.executable, "-c", "import jax; print(jax.config.jax_compilation_cache_dir, "
             "jax.config.jax_persistent_cache_min_compile_time_secs)"],
            capture_output=True, text=True, check=True).stdout.split()
        assert read == [str(path), "0.0"]
    assert directory not in os.environ and threshold not in os.environ
    monkeypatch.setenv(threshold, "2.5")
    with reproduce.compilation_cache(tmp_path / "xla"):
        assert os.environ[threshold] == "2.5"
    assert os.environ[threshold] == "2.5"
    with reproduce.compilation_cache(None) as path:
        assert path is None and directory not in os.environ


def test_reproduce_runs_experiments_side_by_side_in_processes_of_their_own(tmp_path, monkeypatch,
                                                                            capfd):
    """``--jobs 2``: each experiment in its own process (here a stand-in script that writes the
    section, sleeps and, for one, fails), two at a time, longest recorded first; a failure is
    reported and the others still run; times and the report as one at a time. With
    ``--compilation-cache DIR`` (only) the processes keep their programs in ``DIR``."""
    script = ("import os, pathlib, sys, time; out = pathlib.Path(sys.argv[2]); name = sys.argv[1]; "
              "time.sleep(0.8); (out / (name + '.md')).write_text('# ' + name + ' title\\n'); "
              "cache = os.environ.get('JAX_COMPILATION_CACHE_DIR', ''); "
              "(out / (name + '.cache')).write_text(cache); "
              "sys.exit(3 if name == 'ablations' else 0)")
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setattr(reproduce, "isolated_command", lambda name, out, quick: [
        sys.executable, "-c", script, name, str(out)])
    monkeypatch.setattr(reproduce, "run_one", None)  # never in this process
    (tmp_path / "compare_laws.json").write_text(json.dumps({"elapsed_s": 600.0}))
    started = time.perf_counter()
    status = reproduce.main(["--out", str(tmp_path), "--jobs", "2", "--only",
                             "law_vs_simulator,ablations,compare_laws,pilecc_target"])
    took = time.perf_counter() - started
    assert status == 1
    assert "experiments.ablations exited with status 3" in capfd.readouterr().err
    timing = json.loads((tmp_path / "reproduce.json").read_text())["wall_s"]
    assert list(timing) == ["law_vs_simulator", "ablations", "compare_laws", "pilecc_target"]
    assert timing["ablations"] is None
    assert all(0.8 <= timing[n] < took for n in ("law_vs_simulator", "compare_laws",
                                                  "pilecc_target"))
    assert took < sum(t for t in timing.values() if t is not None)  # side by side
    report = (tmp_path / "REPORT.md").read_text()
    assert "## pilecc_target title" in report and "*Missing: the experiment failed" in report
    assert all((tmp_path / f"{n}.cache").read_text() == "" for n in timing)  # none by default
    kept = tmp_path / "xla"
    assert reproduce.main(["--out", str(tmp_path), "--jobs", "2", "--only",
                           "compare_laws,pilecc_target", "--compilation-cache", str(kept)]) == 0
    assert (tmp_path / "compare_laws.cache").read_text() == str(kept.resolve()) and kept.is_dir()
    assert "JAX_COMPILATION_CACHE_DIR" not in os.environ
    with pytest.raises(SystemExit, match="--jobs must be at least 1"):
        reproduce.main(["--out", str(tmp_path), "--jobs", "0"])


def test_reproduce_rejects_unknown_names(tmp_path):
    with pytest.raises(SystemExit, match="unknown experiment"):
        reproduce.main(["--out", str(tmp_path), "--only", "figure9"])


@pytest.mark.parametrize("argv, message", [
    (["--only", ""], "--only '' names no experiment"),  # it ran all nine
    (["--only", ","], "--only ',' names no experiment"),  # it ran none, exit 0
    (["--only", "ablations", "--skip", "ablations"], "leave no experiment"),
    (["--only", "compare_laws,compare_laws"], r"names \['compare_laws'\] twice"),
    (["--report-only", "--only", "ablations"], "--report-only runs nothing"),
    (["--report-only", "--jobs", "5"], "--report-only runs nothing"),
])
def test_reproduce_refuses_selections_that_would_run_all_none_or_twice(tmp_path, monkeypatch,
                                                                       argv, message):
    def refuse(*args, **kwargs):
        raise AssertionError("an experiment was started")

    monkeypatch.setattr(reproduce, "run_all", refuse)  # nothing may run
    with pytest.raises(SystemExit, match=message):
        reproduce.main(["--out", str(tmp_path), *argv])


def test_report_only_keeps_what_the_records_are(tmp_path, monkeypatch):
    """--report-only --quick on a full run's folder reported its full numbers as a smoke run's
    and dropped its wall times; and an experiment rerun alone after it failed under reproduce
    stayed 'failed' in the report."""
    def fake_run(name, out, quick):
        if name == "ablations":
            raise RuntimeError("boom")
        (out / f"{name}.md").write_text(f"# {name} title\n\nbody of {name}\n")
        return 60.0

    monkeypatch.setattr(reproduce, "run_one", fake_run)
    assert reproduce.main(["--out", str(tmp_path), "--jobs", "1", "--only",
                           "compare_laws,ablations"]) == 1
    # ablations rerun on its own since: its record and section are there now
    (tmp_path / "ablations.md").write_text("# ablations title\n\nbody of ablations\n")
    (tmp_path / "ablations.json").write_text(json.dumps({"elapsed_s": 120.0}))
    monkeypatch.setattr(reproduce, "run_one", None)
    assert reproduce.main(["--out", str(tmp_path), "--report-only", "--quick"]) == 0
    record = json.loads((tmp_path / "reproduce.json").read_text())
    assert record["quick"] is False
    assert record["wall_s"] == {"compare_laws": 60.0, "ablations": 120.0}
    report = (tmp_path / "REPORT.md").read_text()
    assert "failed" not in report and "body of ablations" in report
    assert "reproduce --quick" not in report  # "Generated by ... --quick" above full numbers


# ----------------------------------------------------------------------------- README blocks
def test_replace_block():
    text = "intro\n<!-- t:start -->\nold\n<!-- t:end -->\noutro\n"
    assert _readme.replace_block(text, "t", "new\n") == (
        "intro\n<!-- t:start -->\nnew\n<!-- t:end -->\noutro\n")
    for bad in ("no markers", "<!-- t:end --> <!-- t:start -->",
                "<!-- t:start --><!-- t:start --><!-- t:end -->"):
        with pytest.raises(ValueError, match="exactly one"):
            _readme.replace_block(bad, "t", "x")


def test_update_readme_from_results(tmp_path):
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "compare_laws.md").write_text("# Law comparison\n\n## In-scale\n\n| a |\n")
    (figures / "fit_under_overlap_mre.png").write_bytes(b"png")
    (figures / "compare_laws.json").write_text(json.dumps({"elapsed_s": 600.0}))
    (figures / "fit_under_overlap.json").write_text(json.dumps({"elapsed_s": 300.0}))
    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- goals:start -->\n<!-- goals:end -->\n"
                      "<!-- law-comparison:start -->\n<!-- law-comparison:end -->\n"
                      "<!-- figures:start -->\nold\n<!-- figures:end -->\n")
    assert update_readme.main(["--readme", str(readme), "--figures", str(figures)]) == 0
    text = readme.read_text()
    assert "### In-scale" in text and "# Law comparison" not in text and "old" not in text
    assert "![Figure 1: fit under tail overlap](figures/fit_under_overlap_mre.png)" in text
    assert "took 15 min of wall time in all" in text
    assert "No results files yet" in text   # records without the goals' measures


def test_update_readme_refuses_a_folder_without_results_and_a_readme_without_markers(
        tmp_path, capsys):
    """A --figures folder that does not exist or holds no results emptied the README's goals
    and figures blocks, exit 0; a README without the markers was a traceback."""
    readme = tmp_path / "README.md"
    original = "x\n<!-- goals:start -->\nkept\n<!-- goals:end -->\n"
    readme.write_text(original)
    empty = tmp_path / "empty"
    empty.mkdir()
    for figures, message in ((tmp_path / "nonexist", "not a directory"),
                             (empty, "holds no results files")):
        with pytest.raises(SystemExit) as stop:
            update_readme.main(["--readme", str(readme), "--figures", str(figures)])
        assert stop.value.code == 2 and message in capsys.readouterr().err
        assert readme.read_text() == original
    (empty / "compare_laws.json").write_text(json.dumps({"elapsed_s": 600.0}))
    with pytest.raises(SystemExit):
        update_readme.main(["--readme", str(readme), "--figures", str(empty)])
    assert "the README needs exactly one" in capsys.readouterr().err
    assert readme.read_text() == original


def test_results_are_written_with_number_arrays_on_one_line(tmp_path):
    """The record reads back as the same object; arrays of numbers take one line each, while
    objects, arrays of arrays and strings that look like arrays keep their form."""
    results = {"losses": [2.5, -1e-3, None, 7], "grid": [[1, 2], [3.5, None]], "empty": [],
               "label": "not an array [1,\n 2]", "fits": [{"law": "bimix", "mre": 0.01}]}
    path = _common.write_record(tmp_path, "demo", {"n": 1}, results, 1.0)
    text = path.read_text()
    assert json.loads(text)["results"] == results
    assert '"losses": [2.5, -0.001, null, 7]' in text
    assert "[1, 2]" in text and "[3.5, null]" in text and '"grid": [\n' in text
    assert json.dumps("not an array [1,\n 2]") in text


def test_law_colours_are_distinct_and_never_grey():
    """The laws of a figure get distinct colours (the registry's laws with every spectral
    variant are nineteen), none of them a grey, which the figures keep for reference lines."""
    n = len(_common.with_spectral(law_specs())) + 1  # and the offset variant
    colours = [tuple(np.round(_figures.law_color(j), 6)) for j in range(23)]
    assert n <= 23 and len(set(colours)) == 23
    for r, g, b, _ in colours:
        assert max(r, g, b) - min(r, g, b) > 0.05, (r, g, b)
    assert _figures.law_color(23) == _figures.law_color(0)
