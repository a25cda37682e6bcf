"""Smoke test of experiments/optimal_mixture_regret.py (its --quick mode) and tests of its
helpers and of the simulator helpers it relies on."""

import json

import numpy as np
import pytest

from experiments import _sim, optimal_mixture_regret
from experiments._sim import InstanceSpec

#: The reference optimum is a derivative-free search with weight resolution ~1e-4; a mixture
#: may beat it by a rounding-level amount.
REGRET_TOL = 1e-5


def test_quick_run_writes_results_figure_and_section(tmp_path):
    assert optimal_mixture_regret.main(["--quick", "--out", str(tmp_path)]) == 0
    name = optimal_mixture_regret.NAME
    record = json.loads((tmp_path / f"{name}.json").read_text())
    assert set(record["versions"]) >= {"jax", "numpy", "mixscale"}
    cfg = record["config"]
    results = record["results"]
    assert len(results["instances"]) == len(cfg["instances"])
    for inst in results["instances"]:
        ref = inst["optimum"]["true_loss"]
        assert np.isfinite(ref) and ref > 0
        w = np.asarray(inst["optimum"]["weights"])
        assert w.min() >= 0 and w.sum() == pytest.approx(1.0)
        for b in inst["baselines"].values():
            assert np.isfinite(b["regret"]) and b["regret"] >= -REGRET_TOL
            assert b["regret"] == pytest.approx(b["true_loss"] - ref, abs=1e-12)
        assert {r["law"] for r in inst["laws"]} == set(results["law_labels"])
        for r in inst["laws"]:
            assert r["status"] == "ok", r["status"]
            assert np.isfinite(r["true_loss"]) and r["regret"] >= -REGRET_TOL
            assert r["regret_pct"] == pytest.approx(100 * r["regret"] / ref)
            assert np.sum(r["weights"]) == pytest.approx(1.0)
    md = (tmp_path / f"{name}.md").read_text()
    assert md.startswith("## ") and f"]({name}.png)" in md
    assert "not yet fitted" not in md  # a quick run lists none
    for label in results["law_labels"]:
        assert label in md
    assert (tmp_path / f"{name}.png").stat().st_size > 10_000


def test_regrets_known_values():
    reg, pct = optimal_mixture_regret.regrets([1.0, 1.5, 2.0], 1.0)
    np.testing.assert_allclose(reg, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(pct, [0.0, 50.0, 100.0])
    with pytest.raises(ValueError, match="reference"):
        optimal_mixture_regret.regrets([1.0], 0.0)


def test_bad_configurations_are_refused():
    cfg = optimal_mixture_regret.Config
    with pytest.raises(ValueError, match="size"):
        cfg(size=2048, n_features=1024)
    with pytest.raises(ValueError, match="empty"):
        cfg(instances=())
    with pytest.raises(ValueError, match="k >= 2"):
        InstanceSpec(1, 0, 0)


def test_mean_true_losses_matches_one_mixture_at_a_time():
    import simulate

    inst = _sim.draw_instance(np.random.default_rng(5), 3, head=2, n_features=64)
    model = inst.model()
    mixtures = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    schedule = simulate.Constant(_sim.safe_learning_rate(model, [16], mixtures=mixtures))
    got = _sim.mean_true_losses(model, mixtures, 16, [5, 40], schedule)
    assert got.shape == (3, 2)
    for i, h in enumerate(mixtures):
        for j, steps in enumerate((5, 40)):
            want = _sim.true_losses(model, h, 16, steps, schedule).mean()
            assert got[i, j] == pytest.approx(want, rel=1e-12)
    weighted = _sim.mean_true_losses(model, mixtures[:1], 16, [40], schedule,
                                     target=[1.0, 0.0, 0.0])
    assert weighted[0, 0] == pytest.approx(_sim.true_losses(model, mixtures[0], 16, 40,
                                                            schedule)[0], rel=1e-12)
