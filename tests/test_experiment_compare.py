"""Smoke test of experiments/compare_laws.py: its --quick mode runs every protocol and writes
the results file and the generated tables."""

import json

import numpy as np
import pytest

from experiments import compare_laws as _module
from experiments._common import n_params


@pytest.fixture(scope="module")
def compare_laws():
    return _module


def test_quick_run_writes_results_and_tables(compare_laws, tmp_path):
    assert compare_laws.main(["--quick", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "law_comparison.json").read_text())
    assert set(results["versions"]) >= {"jax", "numpy", "mixscale"}
    assert results["config"]["quick"] is True
    labels = [law["label"] for law in results["config"]["laws"]]
    assert {r["law"] for r in results["in_scale"]} == set(labels)
    for r in results["in_scale"]:
        assert np.isfinite(r["mre"]) and r["n_params"] > 0 and r["fit_s"] > 0
    statuses = {r["law"]: r["status"] for r in results["across_scale"]}
    assert statuses == {"bimix": "ok", "regression (linear)": "one scale only"}
    for r in results["regmix_rank"]:
        assert -1.0 <= r["spearman"]["60M"]["mean"] <= 1.0
    md = (tmp_path / "law_comparison.md").read_text()
    assert "one scale only" in md and "Spearman" in md and "h≥0.1" in md
    for label in labels:
        assert label in md


def test_spearman_known_values(compare_laws):
    rho = compare_laws.spearman
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert rho(x, x**3) == pytest.approx(1.0)
    assert rho(x, -x) == pytest.approx(-1.0)
    # ties share their average rank: ranks of y are (1.5, 1.5, 3, 4, 5)
    y = np.array([1.0, 1.0, 2.0, 3.0, 4.0])
    rx, ry = np.arange(5.0) - 2.0, np.array([1.5, 1.5, 3, 4, 5]) - 3.0
    assert rho(x, y) == pytest.approx(rx @ ry / np.sqrt((rx @ rx) * (ry @ ry)))


def test_protocol_tables(compare_laws):
    train, evals = compare_laws.across_scale_tables("pile4")
    assert set(train.model_size) == {90.0, 200.0}
    assert train.tokens[train.model_size == 200].max() <= 7
    assert set(evals) == {"200M/8B", "440M"} and set(evals["440M"].model_size) == {440.0}
    assert compare_laws.in_scale_table("pile4").n_runs == 24
    assert compare_laws.in_scale_table("slimpajama7").n_runs == 60
    t = compare_laws.in_scale_table("regmix-1b")
    assert (t.n_runs, t.n_train_domains, t.n_loss_domains) == (64, 17, 17)
    config, laws = compare_laws.Config(), {s.label: s for s in compare_laws.ALL_LAWS}
    # one size rule for every law: LM up to 64 parameters, L-BFGS above
    assert n_params(laws["joint"], t) == 17 * (4 * 17 + 5)
    assert compare_laws.method_for(laws["joint"], t, config) == "lbfgs"
    assert compare_laws.method_for(laws["capacity (tied)"], t, config) == "lm"
    assert n_params(laws["bimix"], t) == 4 * 17
