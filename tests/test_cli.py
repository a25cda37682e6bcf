"""The command line end to end, on a bundled dataset and on a user CSV."""

import json

import pytest

from mixscale import load_fit
from mixscale.cli import main


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    path = tmp_path_factory.mktemp("fit") / "pile4.json"
    rc = main(["fit", "pile4", "--model-size", "200M", "--tokens", "8B", "--restarts", "4",
               "--seed", "1", "--out", str(path)])
    assert rc == 0
    return path


def test_fit_prints_law_errors_and_mixture(fitted, capsys):
    res = load_fit(fitted)
    assert res.targets == ("github", "gutenberg", "stackexchange", "wikipedia")
    assert res.size_unit == 1e6 and res.n_params == 21
    assert res.validation_metrics["mre"] < 0.05  # a sane fit of real losses


def test_fit_json_output(capsys):
    rc = main(["fit", "pile4", "--model-size", "200M", "--tokens", "8B", "--restarts", "2",
               "--variant", "capacity", "--json", "--validation-fraction", "0"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_params"] == 3 * 4 + 1
    assert out["validation_metrics"] is None
    assert isinstance(out["at_bounds"], int) and out["at_bounds"] >= 0
    assert sum(out["optimal_mixture"]["weights"].values()) == pytest.approx(1.0)


def test_optimize_and_evaluate(fitted, capsys):
    capsys.readouterr()
    assert main(["optimize", str(fitted), "--model-size", "1B", "--tokens", "20B",
                 "--upper", "github=0.2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["weights"]["github"] <= 0.2 + 1e-9
    assert sum(out["weights"].values()) == pytest.approx(1.0)
    assert main(["evaluate", str(fitted), "pile4", "--model-size", "440M", "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["runs"] > 0 and 0 < ev["mre"] < 0.2


def test_datasets_and_laws_listing(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("pile4", "slimpajama7", "regmix-1m", "regmix-60m", "regmix-1b"):
        assert name in out
    assert main(["laws", "--domains", "7", "--json"]) == 0
    rows = {r["law"]: r["n_params"] for r in json.loads(capsys.readouterr().out)}
    assert rows["capacity (full)"] == 36
    # every variant of every law is listed, with its own parameter count (K = 7)
    assert rows["capacity (tied)"] == 3 * 7 + 3 and rows["capacity (capacity)"] == 3 * 7 + 1
    assert rows["regression (linear)"] == rows["regression (loglinear)"] == 7 * 7
    assert {"additive", "joint", "dml", "bimix"} <= set(rows)


@pytest.mark.parametrize("argv, message", [
    (["fit", "no-such-table"], "neither a bundled dataset"),
    (["fit", "pile4", "--out-of-mixture", "x"], "CSV input only"),
    (["fit", "pile4", "--model-size", "123M"], "not in the table"),
    (["fit", "pile4", "--law", "nope"], "unknown law"),
    (["optimize", "missing.json", "--model-size", "1B", "--tokens", "1B"], "no such file"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mixscale: error:") and message in err[0]


def test_user_csv_with_a_typo_is_refused(tmp_path, capsys):
    bad = tmp_path / "runs.csv"
    bad.write_text("weight_a,weight_b,model_size,n_tokens,a_loss,bb_loss\n"
                   "0.5,0.5,1e6,1e9,3.0,3.1\n")
    assert main(["fit", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bb_loss" in err and "runs.csv" in err


@pytest.mark.parametrize("argv, message", [
    (["fit", "pile4", "--seed", str(2**64)], "--seed"),
    (["fit", "pile4", "--seed", "-1"], "--seed"),
    (["fit", "pile4", "--restarts", "1000000000"], "--restarts"),
    (["fit", "pile4", "--restarts", "1.5"], "--restarts"),
    (["fit", "pile4", "--validation-fraction", "-0.1"], "--validation-fraction"),
    (["fit", "pile4", "--validation-fraction", "nan"], "--validation-fraction"),
    (["fit", "pile4", "--validation-fraction", "-inf"], "--validation-fraction"),
    (["fit", "pile4", "--tokens", "1e-300"], "--tokens"),
    (["laws", "--domains", "0"], "--domains"),
])
def test_bad_arguments_are_refused_by_name(argv, message, capsys):
    """argparse refusals: exit 2 with the argument named (no traceback, no silent default)."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--upper", "github=0.05", "github=0.5"], "given twice"),
    (["--target", "github=1e308", "gutenberg=1e308"], "sum must be finite"),
    (["--lower", "github=-0.1"], "must not be negative"),
])
def test_bad_optimize_options_are_refused(fitted, extra, message, capsys):
    assert main(["optimize", str(fitted), "--model-size", "1B", "--tokens", "1B", *extra]) == 2
    assert message in capsys.readouterr().err


def test_repeated_caps_all_apply(fitted, capsys):
    capsys.readouterr()
    assert main(["optimize", str(fitted), "--model-size", "1B", "--tokens", "20B",
                 "--upper", "github=0.05", "--upper", "wikipedia=0.05", "--json"]) == 0
    weights = json.loads(capsys.readouterr().out)["weights"]
    assert weights["github"] <= 0.05 + 1e-9 and weights["wikipedia"] <= 0.05 + 1e-9


def test_fit_refuses_to_overwrite_its_input(tmp_path, capsys):
    csv = tmp_path / "runs.csv"
    csv.write_text("weight_a,weight_b,model_size,n_tokens,a_loss,b_loss\n"
                   "0.5,0.5,1e6,1e9,3.0,3.1\n")
    assert main(["fit", str(csv), "--out", str(csv)]) == 2
    assert "is the input table" in capsys.readouterr().err
    assert csv.read_text().startswith("weight_a")


# ------------------------------------------------------------- bootstrap and figures
def _is_png(path, min_bytes=20_000) -> bool:
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= min_bytes


@pytest.fixture(scope="module")
def bootstrapped(tmp_path_factory):
    import contextlib
    import io

    folder = tmp_path_factory.mktemp("boot")
    fit_json, fit_png = folder / "fit.json", folder / "fit.png"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["fit", "pile4", "--model-size", "200M", "--tokens", "8B", "--law", "bimix",
                   "--restarts", "2", "--bootstrap", "8", "--out", str(fit_json),
                   "--plot", str(fit_png)])
    assert rc == 0
    return folder, out.getvalue()


def test_fit_bootstrap_prints_intervals_and_draws(bootstrapped):
    folder, out = bootstrapped
    assert "90 % interval" in out and "bootstrap: 8 replicates" in out
    assert "percentile intervals of the parameters" in out
    line = next(x for x in out.splitlines() if x.strip().startswith("github") and "[" in x)
    lo, hi = (float(v) for v in line.split("[")[1].rstrip("]").split(","))
    assert lo <= hi
    assert _is_png(folder / "fit.png")
    assert load_fit(folder / "fit.json").bootstrap.n_replicates == 8


def test_optimize_reports_the_spread_of_the_optimum(bootstrapped, capsys):
    folder, _ = bootstrapped
    capsys.readouterr()
    png = folder / "optimum.png"
    assert main(["optimize", str(folder / "fit.json"), "--model-size", "200M", "--tokens", "8B",
                 "--json", "--plot", str(png)]) == 0
    out = json.loads(capsys.readouterr().out)
    spread = out["bootstrap"]
    assert spread["replicates"] == 8 and spread["failed"] + spread["replicates_used"] == 8
    for name, w in spread["weights"].items():
        assert w["lower"] <= w["upper"] and w["point"] == pytest.approx(out["weights"][name])
    assert len(spread["objective_at_point"]["values"]) == spread["replicates_used"]
    assert _is_png(png)
    assert main(["optimize", str(folder / "fit.json"), "--model-size", "200M", "--tokens",
                 "8B"]) == 0
    text = capsys.readouterr().out
    assert "objective at this mixture under the replicates" in text and "90 % interval" in text
    assert "L1 distance of the replicates' optima" in text
    assert 0 <= spread["l1_distance"]["median"] <= spread["l1_distance"]["q90"] <= 2


def test_plot_command_draws_a_saved_fit(bootstrapped, tmp_path, capsys):
    folder, _ = bootstrapped
    png = tmp_path / "again.png"
    assert main(["plot", str(folder / "fit.json"), "pile4", "--model-size", "200M",
                 "--out", str(png)]) == 0
    assert _is_png(png)


@pytest.mark.parametrize("argv, message", [
    (["fit", "pile4", "--bootstrap", "1"], "--bootstrap"),
    (["fit", "pile4", "--bootstrap", "5000"], "--bootstrap"),
    (["fit", "pile4", "--bootstrap", "many"], "--bootstrap"),
    (["fit", "pile4", "--plot", "fit.txt"], "--plot"),
    (["fit", "pile4", "--plot", "/no/such/folder/fit.png"], "--plot"),
    (["optimize", "fit.json", "--model-size", "1B", "--tokens", "1B", "--plot", "x.jpg"],
     "--plot"),
])
def test_bad_bootstrap_and_plot_arguments_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_bootstrap_needs_lm(capsys):
    assert main(["fit", "pile4", "--bootstrap", "4", "--method", "lbfgs"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--method lm" in err[0]


def test_optimize_plot_without_bootstrap_draws_the_weights(fitted, tmp_path, capsys):
    png = tmp_path / "plain.png"
    assert main(["optimize", str(fitted), "--model-size", "1B", "--tokens", "20B",
                 "--plot", str(png)]) == 0
    assert "wrote the figure" in capsys.readouterr().out
    assert _is_png(png, min_bytes=10_000)


def test_fit_bootstrap_json(bootstrapped, capsys):
    capsys.readouterr()
    assert main(["fit", "pile4", "--model-size", "200M", "--tokens", "8B", "--law", "bimix",
                 "--restarts", "2", "--bootstrap", "8", "--json"]) == 0
    boot = json.loads(capsys.readouterr().out)["bootstrap"]
    assert boot["replicates"] == 8 and boot["failed"] == 0 and boot["level"] == 0.9
    for v in boot["predicted_losses"].values():
        assert v["lower"] <= v["upper"]
    assert set(boot["parameters"]) == {"alpha", "beta", "B", "C"}
