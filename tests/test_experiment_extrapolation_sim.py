"""Smoke test of experiments/extrapolation_sim.py (its --quick mode) and tests of its helpers."""

import json

import numpy as np
import pytest

from experiments import extrapolation_sim
from mixscale import LawSpec

REGRET_TOL = 1e-5  # the reference optimum's search resolution, see experiments._sim


def test_quick_run_writes_results_figures_and_section(tmp_path):
    assert extrapolation_sim.main(["--quick", "--out", str(tmp_path)]) == 0
    name = extrapolation_sim.NAME
    record = json.loads((tmp_path / f"{name}.json").read_text())
    results = record["results"]
    assert len(results["instances"]) == len(record["config"]["instances"])
    for inst in results["instances"]:
        refs = inst["references"]
        target = refs[extrapolation_sim.TARGET]
        assert target["regret"] == 0.0 and np.isfinite(target["true_loss"])
        assert inst["curve_steps"][-1] == inst["target"]["steps"]
        scored = [refs[extrapolation_sim.STATIC], refs["uniform"]]
        scored += [r for r in inst["laws"] if r["status"] == "ok"]
        assert len(scored) == 2 + len(results["law_labels"])
        for s in scored:
            curve = np.asarray(s["curve"])
            assert curve.shape == (len(inst["curve_steps"]),) and np.all(np.isfinite(curve))
            assert curve[-1] == pytest.approx(s["true_loss"])
            assert s["regret"] >= -REGRET_TOL
            assert np.sum(s["weights"]) == pytest.approx(1.0)
        # Training longer never hurts the target optimum's mean loss here (constant small step).
        assert np.all(np.diff(target["curve"]) < 0)
    md = (tmp_path / f"{name}.md").read_text()
    assert md.startswith("## ")
    for fig in (f"{name}_curves.png", f"{name}_regret.png"):
        assert f"]({fig})" in md
        assert (tmp_path / fig).stat().st_size > 10_000
    assert "How the optimum moves" in md


def test_curve_steps():
    steps = extrapolation_sim.curve_steps(2000, 12)
    assert steps[0] == 10 and steps[-1] == 2000
    assert len(steps) == 12 and np.all(np.diff(steps) > 0)
    # rounding collisions are merged, never duplicated
    few = extrapolation_sim.curve_steps(12, 10)
    assert few[-1] == 12 and len(set(few)) == len(few)
    with pytest.raises(ValueError, match="first"):
        extrapolation_sim.curve_steps(5, 4)


def test_bad_configurations_are_refused():
    cfg = extrapolation_sim.Config
    with pytest.raises(ValueError, match="must exceed"):
        cfg(target_size=64)
    with pytest.raises(ValueError, match="must exceed"):
        cfg(target_steps=100)
    with pytest.raises(ValueError, match="cannot extrapolate"):
        cfg(laws=(LawSpec("dml"),))
    with pytest.raises(ValueError, match="n_features"):
        cfg(n_features=128)


def test_shift_cosine_known_values():
    cos = extrapolation_sim.shift_cosine
    assert cos([0.1, -0.1, 0.0], [0.2, -0.2, 0.0]) == pytest.approx(1.0)
    assert cos([0.1, -0.1, 0.0], [-0.1, 0.1, 0.0]) == pytest.approx(-1.0)
    assert cos([0.1, -0.1, 0.0], [0.0, 0.1, -0.1]) == pytest.approx(-0.5)
    assert np.isnan(cos([0.0, 0.0], [0.1, -0.1]))
