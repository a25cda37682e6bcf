"""Smoke test of experiments/real_extrapolation.py (``--quick``) and unit tests of its helpers."""

import json

import numpy as np
import pytest

from experiments import real_extrapolation as rx


def test_measured_rank_known_values():
    v = np.array([2.0, 1.0, 3.0, 1.0])
    assert rx.measured_rank(v, 1) == 1 and rx.measured_rank(v, 3) == 1  # ties share the best
    assert rx.measured_rank(v, 0) == 3
    assert rx.measured_rank(v, 2) == 4


def test_ranking_summary_against_brute_force(rng):
    w = rng.dirichlet(np.ones(4), size=12)
    obs = rng.uniform(2.0, 3.0, 12)
    pred = obs + rng.normal(0.0, 0.05, 12)
    optimum = rng.dirichlet(np.ones(4))
    s = rx.ranking_summary(pred, obs, w, optimum)
    best, pick = int(np.argmin(obs)), int(np.argmin(pred))
    assert s["best"] == best and s["pick"] == pick
    assert s["regret"] == pytest.approx(obs[pick] - obs[best]) and s["regret"] >= 0
    assert s["pick_rank"] == 1 + sorted(obs).index(obs[pick])
    dists = [np.sum(np.abs(row - optimum)) for row in w]
    assert s["nearest"] == int(np.argmin(dists))
    assert s["nearest_l1"] == pytest.approx(min(dists))
    # a perfect predictor ranks perfectly and has no regret
    p = rx.ranking_summary(obs * 1.1, obs, w, w[best])
    assert p["spearman"] == pytest.approx(1.0) and p["regret"] == 0.0 and p["pick_rank"] == 1
    assert p["nearest"] == best and p["nearest_l1"] == 0.0 and p["nearest_rank"] == 1


def test_signed_error_from_the_record_by_hand():
    """Bias over the measured entries (a masked entry is skipped) and the rare entries' MRE
    recovered from the all-entry and h ≥ 0.1 MREs and their counts."""
    measured = [[2.0, 4.0], [1.0, float("nan")]]
    predicted = [[2.2, 3.6], [1.0, 9.0]]                  # errors +10 %, −10 %, 0 %, masked
    row = {"predicted": {"e": predicted},
           "evaluations": {"e": {"mre": 0.2 / 3, "n": 3, "mre_high_weight": 0.1,
                                 "n_high_weight": 1}}}
    bias, rare = rx.signed_error(row, {"measured": {"e": measured}}, "e")
    assert bias == pytest.approx(0.0, abs=1e-12)
    assert rare == pytest.approx(0.05)                    # (0.2 − 0.1) / 2 entries
    row["evaluations"]["e"].update(n_high_weight=3, mre_high_weight=0.2 / 3)
    assert np.isnan(rx.signed_error(row, {"measured": {"e": measured}}, "e")[1])


def test_ranking_summary_refuses_bad_shapes():
    with pytest.raises(ValueError, match="equal non-empty"):
        rx.ranking_summary(np.ones(3), np.ones(4), np.ones((3, 2)) / 2, np.ones(2) / 2)


def test_config_refuses_one_scale_laws_and_unknown_protocols():
    with pytest.raises(ValueError, match="cannot be fitted across scales"):
        rx.Config(laws=(rx.LawSpec("dml"),))
    with pytest.raises(ValueError, match="unknown protocols"):
        rx.Config(protocols=("pile5",))


def test_protocol_tables():
    config = rx.Config()
    train, evals, ranking, scales = rx.protocol_tables("slimpajama7-122", config)
    assert set(train.model_size) == {122.0} and set(evals["680M"].model_size) == {680.0}
    (name, (table, scale)), = ranking.items()
    assert scale == (680.0, float(evals["680M"].tokens.max())) and table.n_runs == 40
    train, evals, ranking, _ = rx.protocol_tables("pile4", config)
    assert train.tokens[train.model_size == 200.0].max() <= 7.0
    assert ranking["200M/8B"][0].n_runs == 24 and ranking["440M/8B"][0].n_runs == 2


def test_quick_run(tmp_path):
    assert rx.main(["--quick", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "real_extrapolation.json").read_text())
    assert record["config"]["quick"] is True
    md = (tmp_path / "real_extrapolation.md").read_text()
    assert md.startswith("## ")
    # the section and figures are drawn from the JSON alone
    (tmp_path / "real_extrapolation.md").unlink()
    assert rx.main(["--redraw", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "real_extrapolation.md").read_text() == md
    for png in ("real_extrapolation_pile4_scatter.png", "real_extrapolation_mixtures_pile4.png"):
        assert (tmp_path / png).stat().st_size > 0 and f"]({png})" in md
    for proto in record["results"]["protocols"]:
        for row in proto["laws"]:
            for e in row["evaluations"].values():
                assert np.isfinite(e["mre"]) and e["mre"] >= 0
            for o in row["optima"]:
                w = np.asarray(o["weights"], float)
                assert np.all(w >= -1e-12) and w.sum() == pytest.approx(1.0, abs=1e-9)
                assert np.isfinite(o["pred_mean_loss"])
            for s in row["ranking"].values():
                assert s["regret"] >= 0 and 1 <= s["pick_rank"] <= s["n_mixtures"]


def test_a_law_fitted_on_some_protocols_only(tmp_path):
    """A law added with ``--add-law --part`` on one protocol: its cells elsewhere say "not yet
    fitted", a line names the protocols left with the command, and the scatter of the
    SlimPajama protocols still draws the other laws."""
    from pathlib import Path

    record = json.loads((Path(__file__).resolve().parents[1] / "figures"
                         / "real_extrapolation.json").read_text())
    label = "capacity (coupled)"
    protos = record["results"]["protocols"]
    for p in protos[:1]:  # the first SlimPajama protocol loses the law's row
        p["laws"] = [r for r in p["laws"] if r["law"] != label]
    md = rx.section(record, [])
    first = protos[0]["protocol"]
    assert (f"{label} is not yet fitted on {first} (`python -m experiments.real_extrapolation "
            f"--add-law '{label}' --part PROTOCOL`" in md)
    row = next(line for line in md.splitlines() if line.startswith(f"| {label} |"))
    assert row.count("not yet fitted") == 1 and "| — / 47 / 29 |" in row
    name = rx.figure_scatter(record["results"], [p["protocol"] for p in protos[:2]],
                             "scatter.png", tmp_path, "t").name
    assert (tmp_path / name).stat().st_size > 10_000
