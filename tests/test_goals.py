"""The README's goals block (``experiments._goals``): each measure read from planted records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from experiments import _goals, _readme

ROOT = Path(__file__).resolve().parents[1]


def _write(folder: Path, name: str, results: dict) -> None:
    (folder / f"{name}.json").write_text(json.dumps({"results": results}))


def test_real_extrapolation_goals_read_the_protocols(tmp_path):
    def law(name, **evaluations):
        return {"law": name, "evaluations": {k.replace("_", "/"): {"mre": v}
                                              for k, v in evaluations.items()}}

    sp = {"protocol": "slimpajama7-122+310",
          "laws": [{"law": "capacity (full)", "evaluations": {"680M": {"mre": 0.05}}},
                   {"law": "capacity (pooled)", "evaluations": {"680M": {"mre": 0.012}}},
                   {"law": "joint", "evaluations": {"680M": {"mre": 0.015}}}]}
    pile = {"protocol": "pile4",
            "laws": [law("joint", **{"200M_8B": 0.02}, **{"440M": 0.02}),
                     law("capacity (coupled)", **{"200M_8B": 0.019}, **{"440M": 0.021}),
                     law("capacity (full)", **{"200M_8B": 0.03}, **{"440M": 0.01})]}
    _write(tmp_path, "real_extrapolation", {"protocols": [sp, pile]})
    rows = {r["goal"].measure: r for r in _goals.standing(tmp_path)}
    assert set(rows) == {_goals.slimpajama_680m, _goals.pile4_over_joint}
    r = rows[_goals.slimpajama_680m]
    assert r["paper"] == pytest.approx(5.0) and r["met"]
    assert r["theory"] == ("capacity (pooled)", pytest.approx(1.2))
    assert r["other"] == ("joint", pytest.approx(1.5))
    r = rows[_goals.pile4_over_joint]     # the worse of the two ratios to the joint law
    assert r["theory"] == ("capacity (coupled)", pytest.approx(105.0)) and not r["met"]
    assert r["paper"] == pytest.approx(150.0)


def test_simulator_goals_take_the_worst_setting_and_count_a_failed_fit_as_missed(tmp_path):
    def setting(head, rho, **laws):
        return {"head": head, "rho": rho,
                "laws": {k.replace("_", " "): {"validation_mre": v, "n_params": 10}
                         for k, v in laws.items()}}

    _write(tmp_path, "law_vs_simulator", {
        "settings": [{"head": 0, "laws": {"spectral (full)": {"validation_mre": 0.004},
                                          "capacity (full)": {"validation_mre": None}}},
                     {"head": 32, "laws": {"spectral (full)": {"validation_mre": 0.9}}}],
        "overlap": [{"head": 0, "laws": {"spectral (full)": {"validation_mre": 0.006},
                                         "capacity (full)": {"validation_mre": 0.01}}}]})
    no_head = _goals.simulator_no_head(tmp_path)
    assert no_head["spectral (full)"] == pytest.approx(0.6)    # the head-32 setting not read
    assert no_head["capacity (full)"] == math.inf              # a failed fit cannot meet it
    joint = {"validation_mre": 0.02, "n_params": 30}
    _write(tmp_path, "fit_under_overlap", {"settings": [
        {"head": 8, "rho": 0.0, "laws": {"joint": joint,
                                         "spectral (full)": {"validation_mre": 0.005,
                                                             "n_params": 10},
                                         "additive": {"validation_mre": 0.001, "n_params": 11}}},
        {"head": 32, "rho": 1.0, "laws": {"joint": joint,
                                          "spectral (full)": {"validation_mre": 0.03,
                                                              "n_params": 10},
                                          "additive": {"validation_mre": 0.001,
                                                       "n_params": 11}}}]})
    heads = _goals.simulator_heads(tmp_path)      # ρ = 1 is outside this goal's settings
    assert heads["spectral (full)"] == pytest.approx(0.5)
    below = _goals.below_joint(tmp_path)          # every setting; too many parameters: out
    assert below == {"spectral (full)": pytest.approx(50.0)}


def test_optimum_goals_read_every_instance_and_the_decay_ones(tmp_path):
    _write(tmp_path, "optimal_mixture_regret", {"instances": [
        {"laws": [{"law": "spectral (full)", "regret_pct": 0.02},
                  {"law": "joint", "regret_pct": 0.5}]},
        {"laws": [{"law": "spectral (full)", "regret_pct": 0.05}]}]})
    assert _goals.regret(tmp_path) == {"spectral (full)": pytest.approx(0.05)}

    def instance(share):
        return {"targets": [{"mixtures": {"spectral (full)": {"excess_share": 0.01,
                                                              "predicted_loss": 1.0},
                                          "uniform": {"excess_share": 1.0}}},
                            {"mixtures": {"spectral (full)": {"excess_share": share,
                                                              "predicted_loss": 1.0}}}]}

    _write(tmp_path, "extrapolation_sim", {"instances": [instance(0.03)],
                                           "decay_instances": [instance(0.2)]})
    # the reference rows (no prediction: uniform, oracles) are not laws
    assert _goals.extrapolated_optimum(tmp_path) == {"spectral (full)": pytest.approx(20.0)}
    rows = {r["goal"].measure: r for r in _goals.standing(tmp_path)}
    assert rows[_goals.regret]["met"] and not rows[_goals.extrapolated_optimum]["met"]


def test_regmix_goals_and_the_absent_domain_line(tmp_path):
    ranked = [{"law": "capacity (transfer)", "spearman": {"1M": {"mean": 0.91},
                                                          "60M": {"mean": 0.90}}},
              {"law": "additive", "spearman": {"1M": {"mean": 0.992}, "60M": {"mean": 0.988}}}]
    in_scale = ([{"dataset": "regmix-1b", "law": "capacity (transfer)", "mre": m}
                 for m in (0.02, 0.024)]
                + [{"dataset": "regmix-1b", "law": "additive", "mre": 0.01}]   # one split only
                + [{"dataset": "pile4", "law": "additive", "mre": 0.002}] * 2)
    absent = [{"n": 100, "n_absent": 30, "mre_mean": 0.03, "mre_ridge": 0.03, "n_unscored": 0,
               "per_domain": {"a": {"n": 30, "mean": 0.03, "ridge": 0.03}}},
              {"n": 100, "n_absent": 40, "mre_mean": 0.02, "mre_ridge": 0.02, "n_unscored": 0,
               "per_domain": {"b": {"n": 40, "mean": 0.02, "ridge": 0.02}}}]
    _write(tmp_path, "compare_laws", {"regmix_rank": ranked, "in_scale": in_scale,
                                      "regmix_absent": absent})
    assert _goals.regmix_ranking(tmp_path) == {"capacity (transfer)": 0.90, "additive": 0.988}
    assert _goals.regmix_in_scale(tmp_path) == {"capacity (transfer)": pytest.approx(2.2)}
    block = _goals.goals_block(tmp_path)
    assert "0.900 `capacity (transfer)`" in block and "0.988 `additive`" in block
    assert "(35 % of them)" in block and "to 2.50 %" in block and "add 0.85 points" in block
    assert "overlap law's structures" not in block      # without regmix_overlap's record
    _write(tmp_path, "regmix_overlap", {"in_scale": [
        {"structure": "own", "n_absent": 30, "mre_absent": 0.03},
        {"structure": "own", "n_absent": 40, "mre_absent": 0.05},
        {"structure": "free", "n_absent": 30, "mre_absent": 0.035}]})
    assert "structures reach 3.50–4.00 % on them" in _goals.goals_block(tmp_path)


def test_the_goals_block_without_records_and_in_the_readme(tmp_path):
    assert "No results files yet" in _goals.goals_block(tmp_path)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- goals:start -->\n", "\n<!-- goals:end -->"
    committed = readme[readme.index(start) + len(start):readme.index(end)]
    assert committed == _goals.goals_block(_readme.FIGURES).strip()
