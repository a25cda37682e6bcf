"""Smoke test of experiments/law_vs_simulator.py (needs the fitter, mixscale.fit)."""

import importlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_law_vs_simulator_quick_writes_results(tmp_path, monkeypatch):
    mixscale = pytest.importorskip("mixscale")
    if not hasattr(mixscale, "fit") or not hasattr(mixscale, "CapacityLaw"):
        pytest.skip("the fitter (mixscale.fit, CapacityLaw) is not on this branch yet")
    monkeypatch.syspath_prepend(str(ROOT / "experiments"))
    module = importlib.import_module("law_vs_simulator")
    out = tmp_path / "res.json"
    assert module.main(["--quick", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["config"]["n_mixtures"] == 12 and "jax" in record["versions"]
    (res,) = record["results"]
    assert res["n_train_runs"] == 9 * 3 * 3 and res["n_validation_runs"] == 3 * 3 * 3
    assert 0 <= res["validation_mre"] < 1 and set(res["validation_per_domain_mre"]) == {
        "d0", "d1", "d2"}
