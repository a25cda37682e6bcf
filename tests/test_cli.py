"""The command line end to end, on a bundled dataset and on a user CSV."""

import dataclasses
import json
import re

import numpy as np
import pytest

from mixscale import load_fit
from mixscale._evaluate import predict_in_blocks
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
    # the converging policy is the default: this fit's best restart stops on a kink of the
    # capacity allocation (``--plain`` returns it unconverged) and is certified there
    assert res.law_converged and res.kink_certificate.certified


def test_fit_json_output(capsys):
    rc = main(["fit", "pile4", "--model-size", "200M", "--tokens", "8B", "--restarts", "2",
               "--variant", "capacity", "--json", "--validation-fraction", "0",
               "--max-steps", "5", "--polish-steps", "2000", "--finish-steps", "0",
               "--no-smooth-kinks"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_params"] == 3 * 4 + 1
    # five steps stop every restart at the cap, so the polish continues them (this law then
    # stops at a kink of its allocation, so it is not asserted to converge)
    assert sorted(out["polished_restarts"]) == [0, 1]
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
    # the fit saw one size (200M) and budget (8B): the 440M rows are named as unidentified
    assert any("one model size (2e+08 parameters)" in n and "4.4e+08 parameters" in n
               for n in ev["notes"])


def test_optimize_notes_a_scale_the_fit_could_not_identify(fitted, capsys):
    """The fit saw one model size (200M) and one budget (8B): at 1B parameters and 8B tokens the
    model-size dependence is named as unidentified, the budget not at all."""
    res = load_fit(fitted)
    assert res.fitted_scales == {"model_size": (2e8, 2e8), "tokens": (8e9, 8e9)}
    capsys.readouterr()
    assert main(["optimize", str(fitted), "--model-size", "1B", "--tokens", "8B"]) == 0
    out = capsys.readouterr().out
    assert out.count("note:") == 1
    assert "note: the fit saw one model size (2e+08 parameters)" in out
    assert main(["optimize", str(fitted), "--model-size", "200M", "--tokens", "8B",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["notes"] == []


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
    # the text's candidate marker, description and domain limit are fields of the JSON too
    assert main(["laws", "--domains", "100", "--json"]) == 0
    listed = {r["law"]: r for r in json.loads(capsys.readouterr().out)}
    assert listed["spectral (full)"]["candidate"] and not listed["capacity (full)"]["candidate"]
    assert listed["additive"]["description"] and not listed["additive"]["fits_k_domains"]


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


@pytest.mark.parametrize("rows, needles", [
    # a typo in a loss column: named, with the file
    ("weight_a,weight_b,model_size,n_tokens,a_loss,bb_loss\n0.5,0.5,1e6,1e9,3.0,3.1\n",
     ("bb_loss", "runs.csv")),
    # one mixture cannot be split: says how to fit it whole
    ("weight_a,weight_b,model_size,n_tokens,a_loss,b_loss\n"
     "0.5,0.5,1e8,1e9,3.0,3.1\n0.5,0.5,1e8,1e9,3.0,3.1\n",
     ("1 mixture groups puts 0 in validation", "--validation-fraction 0 fits every run")),
], ids=["typo", "too-small-to-split"])
def test_user_csv_is_refused_saying_why(rows, needles, tmp_path, capsys):
    bad = tmp_path / "runs.csv"
    bad.write_text(rows)
    assert main(["fit", str(bad)]) == 2
    err = capsys.readouterr().err
    assert all(needle in err for needle in needles)


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
    capsys.readouterr()
    assert main(["plot", str(folder / "fit.json"), "pile4", "--model-size", "200M",
                 "--out", str(png)]) == 0
    assert _is_png(png)
    # fitted at one budget: the rows of the other budgets are named
    out = capsys.readouterr().out
    assert "note: the fit saw one token budget (8e+09 tokens)" in out
    assert "at 5 other token budgets (3e+09–7e+09 tokens)" in out


def test_a_law_without_scale_terms_says_it_predicts_its_fitted_scale(tmp_path, capsys):
    path = tmp_path / "dml.json"
    assert main(["fit", "pile4", "--model-size", "200M", "--tokens", "8B", "--law", "dml",
                 "--restarts", "2", "--out", str(path)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(path), "pile4", "--model-size", "200M", "--tokens", "8B",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["notes"] == []
    assert main(["evaluate", str(path), "pile4", "--model-size", "200M", "--json"]) == 0
    (note,) = json.loads(capsys.readouterr().out)["notes"]
    assert note.startswith("law 'dml' has no model-size or token terms")
    assert "(2e+08 parameters, 8e+09 tokens) at every scale" in note


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


@pytest.mark.parametrize("option", [["--bootstrap", "4"], ["--geodesic"],
                                    ["--polish-steps", "100"], ["--smooth-kinks"]])
def test_lm_options_need_lm(option, capsys):
    assert main(["fit", "pile4", *option, "--method", "lbfgs"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--method lm" in err[0] and option[0] in err[0]


@pytest.mark.parametrize("extra, expected", [
    ([], (4000, 32000, True)),
    (["--max-steps", "20"], (80, 640, True)),
    (["--max-steps", "20", "--polish-steps", "5", "--no-smooth-kinks"], (5, 640, False)),
    (["--plain"], (0, 0, False)),
    (["--plain", "--finish-steps", "0"], (0, 0, False)),
    (["--method", "lbfgs"], (0, 0, False)),
])
def test_fit_stages_default_to_the_converging_policy(extra, expected):
    """``mixscale fit`` runs the polish (4 x the cap), the finish (32 x) and the kink
    continuation unless told otherwise; ``--plain`` runs none; L-BFGS has none."""
    from mixscale.cli import _parser, _resolve_stages

    args = _parser().parse_args(["fit", "pile4", *extra])
    _resolve_stages(args)
    assert (args.polish_steps, args.finish_steps, args.smooth_kinks) == expected


@pytest.mark.parametrize("option", [["--polish-steps", "10"], ["--finish-steps", "10"],
                                    ["--smooth-kinks"]])
def test_plain_refuses_a_stage(option, capsys):
    assert main(["fit", "pile4", "--plain", *option]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--plain" in err[0] and option[0] in err[0]


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


def _strict_json(text):
    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert all(n in err[0] for n in needles), err[0]
    return err[0]


@pytest.mark.parametrize("argv, needle", [
    (["fit", "pile4", "--seed", "-1"], "--seed"),
    (["fit", "pile4", "--validation-fraction", "-inf"], "--validation-fraction"),
    (["laws", "--domains", "0"], "--domains"),
    (["optimize", "x.json", "--model-size", "1B"], "--tokens"),
])
def test_argument_errors_are_one_line(argv, needle, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    _one_line_error(capsys, needle)


@pytest.mark.parametrize("extra, needles", [
    (["--upper", "github=1.5"], ("--upper", "github")),
    (["--lower", "github=0.3", "--upper", "github=0.2"], ("--lower", "github")),
    (["--lower", "github=0.6", "wikipedia=0.6"], ("--lower", "sum")),
    (["--upper", "github=0.1", "gutenberg=0.1", "stackexchange=0.1", "wikipedia=0.1"],
     ("--upper", "sum")),
])
def test_bounds_are_refused_by_domain(fitted, extra, needles, capsys):
    capsys.readouterr()
    assert main(["optimize", str(fitted), "--model-size", "1B", "--tokens", "1B", *extra]) == 2
    _one_line_error(capsys, *needles)


P4 = ("weight_github,weight_gutenberg,weight_stackexchange,weight_wikipedia,model_size,n_tokens,"
      "github_loss,gutenberg_loss,stackexchange_loss,wikipedia_loss\n")


def test_evaluate_without_some_measurements_is_strict_and_says_so(fitted, tmp_path, capsys):
    """A target without a measurement (and no entry with h_i >= 0.1) has no MRE: null in JSON,
    n/a in text, never NaN."""
    csv = tmp_path / "runs.csv"
    csv.write_text(P4 + "0.05,0.05,0.05,0.85,2e8,8e9,1.0,2.7,1.8,\n")
    capsys.readouterr()
    assert main(["evaluate", str(fitted), str(csv), "--json"]) == 0
    out = _strict_json(capsys.readouterr().out)
    assert out["per_domain_mre"]["wikipedia"] is None and out["n"] == 3
    assert np.isfinite(out["mre"])
    assert main(["evaluate", str(fitted), str(csv)]) == 0
    text = capsys.readouterr().out
    assert "nan" not in text.lower() and "n/a" in text


def test_evaluate_and_plot_match_domains_by_name_not_column_order(fitted, tmp_path, capsys):
    """The same runs with the weight columns in another order than the fit's table are the same
    runs: the same metrics; a table with another domain is refused, naming it."""
    rows = ["0.1,0.2,0.3,0.4,2e8,8e9,1.1,2.9,1.9,2.8", "0.4,0.3,0.2,0.1,2e8,8e9,1.0,2.7,2.0,3.0"]
    same = tmp_path / "same.csv"
    same.write_text(P4 + "\n".join(rows) + "\n")
    header = P4.strip().split(",")
    order = [3, 0, 2, 1] + list(range(4, len(header)))     # wikipedia, github, stackexchange, ...
    swapped = tmp_path / "swapped.csv"
    swapped.write_text("\n".join(",".join(r.split(",")[j] if r != P4.strip() else header[j]
                                          for j in order) for r in [P4.strip(), *rows]) + "\n")
    capsys.readouterr()
    assert main(["evaluate", str(fitted), str(same), "--json"]) == 0
    expected = _strict_json(capsys.readouterr().out)
    assert main(["evaluate", str(fitted), str(swapped), "--json"]) == 0
    got = _strict_json(capsys.readouterr().out)
    assert got["mre"] == expected["mre"] and got["per_domain_mre"] == expected["per_domain_mre"]
    assert main(["plot", str(fitted), str(swapped), "--out", str(tmp_path / "p.png")]) == 0
    assert _is_png(tmp_path / "p.png")
    other = tmp_path / "other.csv"
    other.write_text(P4.replace("weight_github", "weight_arxiv") + rows[0] + "\n")
    capsys.readouterr()
    assert main(["evaluate", str(fitted), str(other), "--out-of-mixture", "github"]) == 2
    _one_line_error(capsys, "'arxiv'", "not fitted on", "lacks ['github']")


def test_evaluate_without_any_measurement_is_refused(fitted, tmp_path, capsys):
    csv = tmp_path / "runs.csv"
    csv.write_text(P4 + "0.25,0.25,0.25,0.25,2e8,8e9,,,,\n")
    capsys.readouterr()
    assert main(["evaluate", str(fitted), str(csv)]) == 2
    _one_line_error(capsys, "measured loss", "runs", str(fitted))


def test_too_many_domains_are_refused_before_any_work(tmp_path, capsys):
    """The fit limit (64 training domains) is stated up front, before the fitting line."""
    k = 65
    names = [f"d{i}" for i in range(k)]
    header = ",".join([f"weight_{d}" for d in names] + ["model_size", "n_tokens"]
                      + [f"{d}_loss" for d in names])
    row = ",".join([f"{1 / k!r}"] * k + ["1e8", "1e9"] + ["3.0"] * k)
    csv = tmp_path / "wide.csv"
    csv.write_text(header + "\n" + row + "\n" + row + "\n")
    assert main(["fit", str(csv)]) == 2
    _one_line_error(capsys, "65 training domains", "at most 64")


def test_fit_at_one_model_size_is_finite(capsys):
    """Pile-4 at 200M/8B (one model size, so the head's bound is the model size itself): this
    fit ended with H on that bound, where the allocation solve gave NaN for every held-out
    prediction (tests/test_allocation.py checks the solve there)."""
    assert main(["fit", "pile4", "--model-size", "200M", "--tokens", "8B", "--restarts", "2",
                 "--seed", "0", "--no-nested", "--json"]) == 0
    out = _strict_json(capsys.readouterr().out)
    assert 0 < out["natural_parameters"]["H"] <= 200.0
    for key in ("mre", "mae", "rmse"):
        assert np.isfinite(out["validation_metrics"][key])
    assert all(v is not None for v in out["validation_metrics"]["per_domain_mre"].values())


def test_fit_finishes_the_returned_restarts_and_says_so(capsys):
    """``--finish-steps`` after a polish too short: the joint law on Pile-4 (it interpolates its
    rows, so its best restarts creep) is carried to a converged law; the progress names the
    stage and the JSON lists the finished restarts."""
    args = ["fit", "pile4", "--model-size", "200M", "--tokens", "8B", "--law", "joint",
            "--restarts", "2", "--seed", "0", "--max-steps", "20", "--polish-steps", "20",
            "--json"]
    assert main([*args, "--finish-steps", "0"]) == 0
    plain = _strict_json(capsys.readouterr().out)
    assert not plain["law_converged"] and plain["finished_restarts"] == []
    assert main([*args, "--finish-steps", "20000"]) == 0
    captured = capsys.readouterr()
    out = _strict_json(captured.out)
    assert out["law_converged"] and out["finished_restarts"]
    assert out["objective"] < plain["objective"]
    assert "finish: returned restarts" in captured.err
    assert main(["fit", "pile4", "--finish-steps", "10", "--method", "lbfgs"]) == 2


def test_parameter_columns_never_run_together(capsys):
    from mixscale import CapacityLaw, FitResult
    from mixscale.cli import _print_parameters

    law = CapacityLaw.from_params(b=[0.3, 0.5], c=[1.234e150, 1.5e-150], H=1e150,
                                  A=[1e150, 0.3], a=[0.3, 0.4], E=[1e-150, 1.5])
    res = FitResult(law=law, law_options={"variant": "full"}, targets=("a", "b"),
                    train_domains=("a", "b"), size_unit=1.0, token_unit=1.0, train_metrics={},
                    validation_metrics=None, objectives=np.array([0.1]),
                    converged=np.array([True]), steps=np.array([1]), best=0, n_params=11,
                    notes=(), method="lm", timings={})
    _print_parameters(res)
    rows = capsys.readouterr().out.splitlines()
    header = rows[1].split()
    for row in rows[2:]:
        assert len(row.split()) == len(header)  # domain name + one number per column


def test_mixture_table_shows_losses_of_any_magnitude(capsys):
    """The mixture table's losses keep their significant digits at any magnitude (a table in
    other units): four decimals for ordinary losses, scientific notation for 1e200 or 3e-7
    (four decimals printed 1e200 as a 201-digit number and 3e-7 as 0.0000), ``n/a`` where not
    finite, intervals likewise."""
    from mixscale.cli import _print_mixture

    names = ("a", "b", "c", "d")
    losses = [2.49127, 4.897e200, 3.14159e-7, float("nan")]
    _print_mixture(names, [0.1, 0.2, 0.3, 0.4], losses, names,
                   loss_intervals={n: (0.5 * x, 2.0 * x) for n, x in
                                   zip(names, losses, strict=True)})
    rows = capsys.readouterr().out.splitlines()
    cells = [row.split() for row in rows[1:]]
    assert [c[2] for c in cells] == ["2.4913", "4.8970e+200", "3.1416e-07", "n/a"]
    assert cells[1][3:] == ["[2.4485e+200,", "9.7940e+200]"]
    assert cells[2][3:] == ["[1.5708e-07,", "6.2832e-07]"]
    assert cells[0][3:] == ["[1.2456,", "4.9825]"]
    assert cells[3][3:] == ["[n/a,", "n/a]"]


@pytest.mark.slow
def test_sixty_four_domains_fit_to_finite_numbers(tmp_path, capsys):
    """K = 64 training domains and 40 runs (the README's limit): finite parameters, metrics,
    predictions and mixture through `mixscale fit` (one restart of at most 20 steps and two
    starts of the mixture search keep it cheap: the check is that every output is finite, not
    that the fit or the search converged)."""

    from mixscale import CapacityLaw
    from mixscale.data import LossTable, write_csv

    k, n = 64, 40
    rng = np.random.default_rng(0)
    law = CapacityLaw.from_params(b=rng.uniform(0.2, 0.6, k), c=rng.uniform(1, 3, k), H=5.0,
                                  A=rng.uniform(0.3, 1, k), a=rng.uniform(0.2, 0.5, k),
                                  E=rng.uniform(1, 2.5, k))
    w = rng.dirichlet(np.ones(k), n)
    size = np.full(n, 100.0)
    tokens = np.where(np.arange(n) % 2, 5.0, 10.0)
    losses = predict_in_blocks(law, w, size, tokens)
    names = tuple(f"d{i}" for i in range(k))
    csv = tmp_path / "k64.csv"
    write_csv(LossTable(weights=w, model_size=size, tokens=tokens, losses=losses,
                        train_domains=names, loss_domains=names), csv)
    out_file = tmp_path / "k64.json"
    assert main(["fit", str(csv), "--restarts", "1", "--validation-fraction", "0.25",
                 "--no-nested", "--max-steps", "20", "--plain", "--mixture-starts", "2", "--json",
                 "--out", str(out_file)]) == 0
    out = _strict_json(capsys.readouterr().out)
    assert all(np.all(np.isfinite(v)) for v in out["natural_parameters"].values())
    for metrics in (out["train_metrics"], out["validation_metrics"]):
        assert all(np.isfinite(metrics[key]) for key in ("mre", "mae", "rmse"))
        assert all(v is not None for v in metrics["per_domain_mre"].values())
    assert np.isfinite(out["optimal_mixture"]["mean_loss"])
    res = load_fit(out_file)
    assert np.all(np.isfinite(res.predict(load_table(csv))))


def load_table(path):
    from mixscale.data import read_csv

    return read_csv(path)


def test_split_out_and_validation_fraction_are_named(tmp_path, capsys):
    assert main(["fit", "slimpajama7", "--split", "train"]) == 2
    _one_line_error(capsys, "--split", "regmix-1m")
    not_a_dir = tmp_path / "file.txt"
    not_a_dir.write_text("x")
    assert main(["fit", "pile4", "--out", str(not_a_dir / "fit.json")]) == 2
    _one_line_error(capsys, "--out", "existing directory")
    assert main(["fit", "pile4", "--validation-fraction", "0.01"]) == 2
    _one_line_error(capsys, "--validation-fraction", "each side")


@pytest.mark.parametrize("law", ["capacity", "additive"])
def test_losses_near_the_float64_limit_end_cleanly(tmp_path, capsys, law):
    """Every loss 1e308: a finite fit (capacity), or, where the law's terms overflow at every
    start (additive), a one-line refusal saying so, not an internal error."""
    csv = tmp_path / "huge.csv"
    csv.write_text("weight_a,weight_b,model_size,n_tokens,a_loss,b_loss\n" + "".join(
        f"{w},{1 - w},1e8,5e9,1e308,1e308\n" for w in (0.2, 0.4, 0.6, 0.8)))
    rc = main(["fit", str(csv), "--law", law, "--restarts", "1", "--validation-fraction", "0",
               "--no-nested", "--json"])
    captured = capsys.readouterr()
    if rc == 0:
        out = _strict_json(captured.out)
        assert np.isfinite(out["train_metrics"]["rmse"])
        assert np.isfinite(out["optimal_mixture"]["mean_loss"])
    else:
        last = captured.err.strip().splitlines()[-1]
        assert rc == 2 and last.startswith("mixscale: error: huge: every restart")
        assert "rescale" in last


def test_fit_says_what_the_kink_certificate_did():
    """The training-objective line names a certified end, and why an uncertified one is not
    converged (the certificate's figures; no fit needed: the note reads the result)."""
    from types import SimpleNamespace

    from mixscale._kinks import KinkCertificate
    from mixscale.cli import _unconverged_note

    def cert(certified, sigma):
        return KinkCertificate(params=np.zeros(2), objective=1.0, start_objective=1.1, steps=12,
                               active_kinks=2, tangential_cosine=sigma, sigma=sigma,
                               certified=certified)

    args = SimpleNamespace(max_steps=None, method="lm", polish_steps=0, finish_steps=0)
    yes = SimpleNamespace(law_converged=True, kink_certificate=cert(True, 8e-6))
    assert "certified on a kink: 12 steps along 2 kink(s)" in _unconverged_note(yes, args)
    no = SimpleNamespace(law_converged=False, kink_certificate=cert(False, 2.4e-5))
    note = _unconverged_note(no, args)
    assert "not converged" in note and "2.4e-05 against 1e-5" in note
    assert "kink(s) lowered it by 9.1 % (the law returned) but did not reach" in note
    plain = SimpleNamespace(law_converged=True, kink_certificate=None)
    assert _unconverged_note(plain, args) == ""
    left = dataclasses.replace(cert(True, 8e-6), escapes=3)
    note = _unconverged_note(SimpleNamespace(law_converged=True, kink_certificate=left), args)
    assert "12 steps along 2 kink(s) and 3 off them, sampled stationarity 8.0e-06" in note
    second = dataclasses.replace(cert(True, 8e-6), second_order_steps=40)
    note = _unconverged_note(SimpleNamespace(law_converged=True, kink_certificate=second), args)
    assert "12 steps along 2 kink(s), then 40 second-order steps, sampled" in note
    # stopped early with no certificate: the kink continuation is named only where it was off
    early = SimpleNamespace(law_converged=False, kink_certificate=None,
                            at_step_limit=lambda *limits: False)
    off = SimpleNamespace(**vars(args), smooth_kinks=False)
    assert "--smooth-kinks continues it" in _unconverged_note(early, off)
    on = SimpleNamespace(**vars(args), smooth_kinks=True)
    note = _unconverged_note(early, on)
    assert "stopped before the step limit" in note and "--smooth-kinks" not in note


def test_a_mixture_the_data_do_not_support_is_flagged(tmp_path, capsys):
    """A linear law fitted to runs that give domain c at most 5 % (its losses falling steeply
    with it) puts all the weight on c, where it predicts negative losses: the fit's and the
    optimum's output name both the impossible losses and the weight beyond the runs (the fit
    file keeps each domain's largest weight for optimize)."""
    rng = np.random.default_rng(0)
    c = rng.uniform(0.0, 0.05, 16)                             # domain c: a sliver of each run
    h = np.column_stack([rng.dirichlet([1.0, 1.0], 16) * (1.0 - c)[:, None], c])
    losses = 3.0 - 40.0 * h[:, [2]] + 0.1 * h[:, [0, 1, 0]]
    csv = tmp_path / "sliver.csv"
    header = "weight_a,weight_b,weight_c,model_size,n_tokens,a_loss,b_loss,c_loss\n"
    csv.write_text(header + "".join(
        f"{w[0]:.17g},{w[1]:.17g},{w[2]:.17g},1e8,1e9,{y[0]:.17g},{y[1]:.17g},{y[2]:.17g}\n"
        for w, y in zip(h, losses, strict=True)))
    path = tmp_path / "fit.json"
    capsys.readouterr()
    assert main(["fit", str(csv), "--law", "regression", "--variant", "linear", "--restarts", "2",
                 "--validation-fraction", "0", "--out", str(path)]) == 0
    out = capsys.readouterr().out
    assert "losses no run can have at this mixture" in out
    assert f"more than any training run did: c 1 (runs: at most {c.max():.3g})" in out
    assert main(["optimize", str(path), "--model-size", "100M", "--tokens", "1B", "--json"]) == 0
    notes = _strict_json(capsys.readouterr().out)["notes"]
    assert any("losses no run can have" in n for n in notes), notes
    assert any(f"c 1 (runs: at most {c.max():.3g})" in n for n in notes), notes


def test_the_mixture_table_lists_out_of_mixture_targets_too(capsys):
    """A law with an out-of-mixture target (the additive law's ``openhermes`` on SlimPajama)
    averages its predicted loss into the mixture's mean: the table lists it after the training
    domains, with no weight, so that every loss of the mean is shown (it was left out)."""
    from mixscale.cli import _print_mixture

    _print_mixture(("a", "b"), [0.3, 0.7], [2.0, 3.0, 4.5], ("a", "b", "oom"),
                   loss_intervals={"a": (1.9, 2.1), "b": (2.9, 3.1), "oom": (4.4, 4.6)})
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert [r[0] for r in rows] == ["a", "b", "oom"]
    assert rows[2][1:] == ["—", "4.5000", "[4.4000,", "4.6000]"]


def test_output_files_are_checked_before_any_work(tmp_path, capsys):
    """A --plot that is a folder failed only after the whole fit (the --json result lost), and
    --out and --plot naming one file saved the law and then overwrote it with the figure."""
    folder = tmp_path / "dir.png"
    folder.mkdir()
    saved = tmp_path / "fit.json"
    for argv, message in (
            (["fit", "pile4", "--plot", str(folder), "--out", str(saved)],
             "--plot .*dir.png: not a file in an existing directory"),
            (["fit", "pile4", "--out", str(tmp_path / "same.png"), "--plot",
              str(tmp_path / "same.png")], "--out and --plot name the same file"),
            (["optimize", str(saved), "--model-size", "1B", "--tokens", "1B", "--plot",
              str(folder)], "--plot .*dir.png: not a file"),
            (["plot", str(saved), "pile4", "--out", str(folder)], "--out .*dir.png: not a file")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert re.search(message, err), err
        assert "restarts" not in err  # no fit started
    assert not saved.exists()


def test_assignments_split_at_the_last_equals_sign_and_read_plain_numbers():
    """A domain name may hold '=' (a CSV column 'weight_a=b' is read): --lower a=b=0.3 names
    it; the value is a plain decimal number (Python's float also reads '1_0')."""
    import argparse

    from mixscale.cli import _assignment

    assert _assignment("a=b=0.3") == ("a=b", 0.3)
    assert _assignment(" github = 1e-2") == ("github", 0.01)
    for bad in ("github=1_0", "github", "github=0x1"):
        with pytest.raises(argparse.ArgumentTypeError):
            _assignment(bad)


def test_bounds_that_miss_one_say_by_how_much(fitted, capsys):
    """The sum is shown to its last digit and the excess apart: '--lower: the lower bounds sum
    to 1, above 1' (six digits) contradicted itself."""
    assert main(["optimize", str(fitted), "--model-size", "200M", "--tokens", "8B", "--lower",
                 "github=0.99999999999", "gutenberg=0.000000001"]) == 2
    err = capsys.readouterr().err
    assert "sum to 1.00000000099, above 1 (by 9.9e-10)" in err


def test_evaluate_names_other_domains_and_the_columns_it_does_not_score(fitted, tmp_path,
                                                                         capsys, monkeypatch):
    """A table of other training domains is refused for them (it was refused for a missing
    loss column, the symptom); loss columns the law does not predict are named in a note (they
    were dropped without a word); a local file with a bundled table's name is noted."""
    capsys.readouterr()
    assert main(["evaluate", str(fitted), "slimpajama7", "--model-size", "122M", "--tokens",
                 "10B"]) == 2
    _one_line_error(capsys, "training domains", "differ from the law's")
    csv = tmp_path / "runs.csv"
    csv.write_text(P4.strip() + ",openhermes_loss\n0.1,0.2,0.3,0.4,2e8,8e9,1.1,2.9,1.9,2.8,3.3\n")
    assert main(["evaluate", str(fitted), str(csv), "--out-of-mixture", "openhermes",
                 "--json"]) == 0
    notes = _strict_json(capsys.readouterr().out)["notes"]
    assert any("loss columns ['openhermes'] are not scored" in n for n in notes), notes
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pile4").write_text(P4)
    assert main(["evaluate", str(fitted), "pile4", "--model-size", "200M", "--tokens",
                 "8B"]) == 0
    assert "the file pile4 here is not (give ./pile4 to read it)" in capsys.readouterr().err


def test_matrix_parameters_keep_whole_domain_names(capsys):
    """An (M, K) parameter's columns are as wide as the longest training domain's name: cut to
    10 characters, 'stackexchange' and 'stackexchange_old' both read 'stackexcha'."""
    from types import SimpleNamespace

    from mixscale.cli import _print_parameters
    from mixscale.laws import AdditiveLaw

    names = ("stackexchange", "stackexchange_old")
    law = AdditiveLaw.from_params(E=[1.0, 1.2], C=[[0.5, 1.0], [1.5, 0.2]],
                                  gamma=[[0.3, 0.6], [0.5, 0.5]], A=[3.0, 2.0],
                                  alpha=[0.4, 0.3], B=[0.8, 1.1], beta=[0.2, 0.5])
    _print_parameters(SimpleNamespace(law=law, train_domains=names, targets=names))
    headers = [line.split() for line in capsys.readouterr().out.splitlines()
               if line.split() == list(names)]
    assert len(headers) == 2  # C and gamma


def test_several_token_counts_select_the_rows_of_each(fitted, capsys):
    """--tokens takes several values, as its usage line says (two were refused: 'give one
    --tokens value'); a value no row has is refused with the counts the table has."""
    from mixscale.data import load

    table = load("pile4")
    expected = int(np.sum((table.model_size == 200.0)
                          & np.isin(np.round(table.tokens, 3), [6.0, 8.0])))
    capsys.readouterr()
    assert main(["evaluate", str(fitted), "pile4", "--model-size", "200M", "--tokens", "6B",
                 "8B", "--json"]) == 0
    assert _strict_json(capsys.readouterr().out)["runs"] == expected > 0
    assert main(["evaluate", str(fitted), "pile4", "--tokens", "7.5B"]) == 2
    _one_line_error(capsys, "no row within 1 % of 7.5B tokens", "it has 3B, 4B")
