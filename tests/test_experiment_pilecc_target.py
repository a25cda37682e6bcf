"""Smoke test of experiments/pilecc_target.py (``--quick``) and unit tests of its helpers."""

import json

import numpy as np
import pytest

from experiments import pilecc_target as pc


def test_target_weights():
    assert pc.target_weights(["a", "b", "c"], "b", "b").tolist() == [0.0, 1.0, 0.0]
    assert pc.target_weights(["a", "b"], "mean", "x").tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="does not predict"):
        pc.target_weights(["a", "b"], "pile_cc", "pile_cc")


def test_measured_objective_masks_missing_weighted_losses():
    losses = np.array([[1.0, 2.0, np.nan], [3.0, np.nan, 5.0]])
    # target on column 0 only: the missing entries elsewhere do not matter
    assert pc.measured_objective(losses, np.array([1.0, 0.0, 0.0])).tolist() == [1.0, 3.0]
    mean = pc.measured_objective(losses, np.ones(3))
    assert np.isnan(mean).all()
    two = pc.measured_objective(losses, np.array([1.0, 3.0, 0.0]))
    assert two[0] == pytest.approx((1.0 + 6.0) / 4.0) and np.isnan(two[1])


def test_distance_to_measured_brute_force(rng):
    mixtures = rng.dirichlet(np.ones(5), size=20)
    opt = rng.dirichlet(np.ones(5))
    d = pc.distance_to_measured(opt, mixtures)
    l1 = [np.abs(m - opt).sum() for m in mixtures]
    assert d["nearest"] == int(np.argmin(l1)) and d["l1"] == pytest.approx(min(l1))
    assert d["max_abs"] == pytest.approx(np.abs(mixtures[d["nearest"]] - opt).max())
    assert pc.distance_to_measured(mixtures[7], mixtures) == {"nearest": 7, "l1": 0.0,
                                                              "max_abs": 0.0}


def test_load_table_checks_target():
    table = pc.load_table(pc.Config())
    assert table.n_runs == 64 and "pile_cc" in table.loss_domains
    with pytest.raises(ValueError, match="no in-mixture loss domain"):
        pc.load_table(pc.Config(target="openwebtext"))
    with pytest.raises(ValueError, match="validation_fraction"):
        pc.Config(validation_fraction=1.0)


def test_quick_run(tmp_path):
    assert pc.main(["--quick", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "pilecc_target.json").read_text())
    res = record["results"]
    assert record["config"]["quick"] is True and res["n_runs"] == 64
    md = (tmp_path / "pilecc_target.md").read_text()
    assert md.startswith("## ")
    # the section and figures are drawn from the JSON alone
    (tmp_path / "pilecc_target.md").unlink()
    assert pc.main(["--redraw", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "pilecc_target.md").read_text() == md
    for png in ("pilecc_target_weights.png", "pilecc_target_losses.png"):
        assert (tmp_path / png).stat().st_size > 0 and f"]({png})" in md
    for row in res["laws"]:
        assert np.isfinite(row["train_mre"])
        for o in row["objectives"].values():
            w = np.asarray(o["weights"], float)
            assert np.all(w >= -1e-12) and w.sum() == pytest.approx(1.0, abs=1e-9)
            assert np.isfinite(o["pred_at_optimum"]) and np.isfinite(o["best_measured"])
            assert o["pick_measured"] >= o["best_measured"]
            assert 0.0 <= o["distance"]["max_abs"] <= o["distance"]["l1"] <= 2.0 + 1e-9
    # a linear law's optimum for one target is a vertex of the simplex
    lin = next(r for r in res["laws"] if r["law"] == "regression (linear)")
    assert max(lin["objectives"]["pile_cc"]["weights"]) == pytest.approx(1.0, abs=1e-6)


def test_a_configured_law_missing_from_the_record_is_named_not_dropped():
    """A law of the configuration without rows in the record (added to the list after the run)
    is named in the section, never a silent gap."""
    from pathlib import Path

    record = json.loads((Path(__file__).parents[1] / "figures" / "pilecc_target.json")
                        .read_text())
    dropped = record["results"]["laws"][0]["law"]
    assert dropped in {s.label for s in pc.Config().laws}
    record["results"]["laws"] = record["results"]["laws"][1:]
    md = pc.section(record, [])
    line = next(x for x in md.splitlines() if x.startswith("Laws of the experiment's"))
    assert dropped in line
