"""Smoke test of experiments/extrapolation_sim.py (its --quick mode) and tests of its helpers."""

import json

import numpy as np
import pytest

from experiments import extrapolation_sim as xs
from mixscale import LawSpec

REGRET_TOL = 1e-5  # the reference optimum's search resolution, see experiments._sim


def test_quick_run_scores_every_target_on_the_same_fits(tmp_path, monkeypatch):
    assert xs.main(["--quick", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / f"{xs.NAME}.json").read_text())
    results, cfg = record["results"], xs.QUICK
    assert len(results["instances"]) == len(cfg.instances)
    assert [i["instance"] for i in results["decay_instances"]] == [
        f"{spec.label}, {xs.DECAY}" for spec in cfg.decay_instances]
    assert [i["schedule"]["kind"] for i in results["decay_instances"]] == [xs.DECAY]
    for inst in [*results["instances"], *results["decay_instances"]]:
        assert [(t["factor"], t["N"], t["steps"]) for t in inst["targets"]] == list(cfg.targets)
        ok = [r["law"] for r in inst["laws"] if r["status"] == "ok"]
        assert ok == results["law_labels"]
        static = None
        for target in inst["targets"]:
            scored = target["mixtures"]
            assert list(scored) == [*ok, xs.STATIC, xs.UNIFORM, xs.TARGET]
            assert target["curve_steps"][-1] == target["steps"]
            ref = scored[xs.TARGET]
            assert ref["regret"] == 0.0 and ref["excess_share"] == 0.0
            assert scored[xs.UNIFORM]["excess_share"] == pytest.approx(1.0)
            for label, s in scored.items():
                curve = np.asarray(s["curve"])
                assert curve.shape == (len(target["curve_steps"]),)
                assert np.all(np.isfinite(curve)) and curve[-1] == pytest.approx(s["true_loss"])
                assert s["regret"] >= -REGRET_TOL
                assert np.sum(s["weights"]) == pytest.approx(1.0)
                assert s["excess_share"] == pytest.approx(
                    s["regret"] / scored[xs.UNIFORM]["regret"])
                assert ("predicted_loss" in s) == (label in ok)
            # Training longer never hurts the target optimum here (constant small step).
            assert np.all(np.diff(ref["curve"]) < 0)
            # The static mixture is the small-scale optimum at every target.
            if static is not None:
                assert scored[xs.STATIC]["weights"] == static
            static = scored[xs.STATIC]["weights"]
        # A larger target has a lower optimal loss (more features, more steps).
        losses = [t["mixtures"][xs.TARGET]["true_loss"] for t in inst["targets"]]
        assert np.all(np.diff(losses) < 0)
    md = (tmp_path / f"{xs.NAME}.md").read_text()
    assert md.startswith("## ") and "How the optimum moves" in md
    figures = [f"{xs.NAME}_regret.png", *(f"{xs.NAME}_curves_{f}x.png"
                                          for f in cfg.target_factors)]
    for fig in figures:
        assert f"]({fig})" in md
        assert (tmp_path / fig).stat().st_size > 10_000
    for f, n, steps in cfg.targets:
        assert f"### At {f}× (N = {n}, D = {steps * cfg.batch_size})" in md
    assert "not yet fitted" not in md  # a quick run lists none
    # a full configuration's record lacking laws of its list names each of them (the section
    # alone: the figures, checked above, are not drawn again)
    record["config"]["n_mixtures"] += 1
    monkeypatch.setattr(xs, "draw_regret", lambda results, out: figures[0])
    monkeypatch.setattr(xs, "draw_curves", lambda results, out, i: figures[1 + i])
    xs.render(tmp_path, record)
    missing = ", ".join(s.label for s in xs.Config().laws if s.label not in ok)
    md = (tmp_path / f"{xs.NAME}.md").read_text()
    assert f"not yet fitted in this record: {missing} (" in md
    assert "Step-decay instances not yet run" not in md
    del record["results"]["decay_instances"]  # a record of the constant-step instances alone
    xs.render(tmp_path, record)
    assert (f"Step-decay instances not yet run in this record: K=3, S=0, {xs.DECAY} "
            "(`python -m experiments.extrapolation_sim --part decay_instances`)"
            in (tmp_path / f"{xs.NAME}.md").read_text())


def test_targets_are_factors_of_the_largest_small_scale():
    cfg = xs.Config(small_sizes=(8, 32), small_steps=(100, 50), target_factors=(3, 5),
                    n_features=160)
    assert cfg.targets == ((3, 96, 300), (5, 160, 500))
    assert xs.Config().targets == ((4, 256, 2000), (16, 1024, 8000))


def test_excess_share():
    share = xs.excess_share
    assert share(0.5, 0.5, 0.7) == 0.0
    assert share(0.7, 0.5, 0.7) == pytest.approx(1.0)
    np.testing.assert_allclose(share([0.55, 0.9], 0.5, 0.7), [0.25, 2.0])
    assert np.isnan(share(0.6, 0.5, 0.5))  # uniform is optimal: no excess to share


def test_score_curves_references():
    names = ["law", xs.STATIC, xs.UNIFORM, xs.TARGET]
    weights = np.full((4, 2), 0.5)
    curves = np.array([[1.0, 0.45], [1.0, 0.6], [1.0, 0.9], [1.0, 0.4]])
    scored = xs.score_curves(names, weights, curves)
    assert list(scored) == names
    assert scored[xs.TARGET]["regret"] == 0.0 and scored[xs.TARGET]["excess_share"] == 0.0
    assert scored[xs.UNIFORM]["excess_share"] == pytest.approx(1.0)
    assert scored["law"]["regret"] == pytest.approx(0.05)
    assert scored["law"]["regret_pct"] == pytest.approx(12.5)
    assert scored["law"]["excess_share"] == pytest.approx(0.1)
    assert scored[xs.STATIC]["excess_share"] == pytest.approx(0.4)


def test_single_target_records_are_upgraded():
    def scored(loss, w):
        return {"weights": w, "curve": [1.0, loss], "true_loss": loss,
                "regret": loss - 0.4, "regret_pct": 100 * (loss - 0.4) / 0.4}

    old = {"instance": "K=2, S=0", "small_scale": {"N": 64, "steps": 500},
           "target": {"N": 256, "steps": 2000}, "curve_steps": [10, 2000],
           "references": {xs.TARGET: scored(0.4, [0.6, 0.4]), xs.STATIC: scored(0.5, [0.5, 0.5]),
                          xs.UNIFORM: scored(0.5, [0.5, 0.5])},
           "laws": [{"law": "joint", "status": "ok", "n_params": 3, "weights_small": [0.7, 0.3],
                     "predicted_loss": 0.41, **scored(0.45, [0.8, 0.2])},
                    {"law": "additive", "status": "failed: boom"}]}
    new = xs.upgrade_instance(old)
    assert "target" not in new and "references" not in new
    (target,) = new["targets"]
    assert (target["factor"], target["N"], target["steps"]) == (4, 256, 2000)
    assert list(target["mixtures"]) == ["joint", xs.STATIC, xs.UNIFORM, xs.TARGET]
    assert target["mixtures"]["joint"]["excess_share"] == pytest.approx(0.5)
    assert target["mixtures"]["joint"]["predicted_loss"] == 0.41
    assert new["laws"][0] == {"law": "joint", "status": "ok", "n_params": 3,
                              "weights_small": [0.7, 0.3]}
    assert xs.upgrade_instance(new) is new


def test_curve_steps():
    steps = xs.curve_steps(2000, 12)
    assert steps[0] == 10 and steps[-1] == 2000
    assert len(steps) == 12 and np.all(np.diff(steps) > 0)
    # rounding collisions are merged, never duplicated
    few = xs.curve_steps(12, 10)
    assert few[-1] == 12 and len(set(few)) == len(few)
    with pytest.raises(ValueError, match="first"):
        xs.curve_steps(5, 4)


@pytest.mark.parametrize("factors, match", [
    ((), "non-empty"), ((4.0, 16.0), "ints"), ((1, 4), "increasing and >= 2"),
    ((16, 4), "increasing"), ((4, 4), "increasing"), ((4, 65), "exceeds n_features")])
def test_bad_targets_are_refused(factors, match):
    with pytest.raises(ValueError, match=match):
        xs.Config(target_factors=factors)


def test_bad_configurations_are_refused():
    cfg = xs.Config
    with pytest.raises(ValueError, match="cannot extrapolate"):
        cfg(laws=(LawSpec("dml"),))
    with pytest.raises(ValueError, match="n_features"):
        cfg(n_features=1000)  # 16 × 64 = 1024 kept features do not fit
    with pytest.raises(ValueError, match="positive"):
        cfg(small_steps=(0, 10))


def test_shift_cosine_known_values():
    cos = xs.shift_cosine
    assert cos([0.1, -0.1, 0.0], [0.2, -0.2, 0.0]) == pytest.approx(1.0)
    assert cos([0.1, -0.1, 0.0], [-0.1, 0.1, 0.0]) == pytest.approx(-1.0)
    assert cos([0.1, -0.1, 0.0], [0.0, 0.1, -0.1]) == pytest.approx(-0.5)
    assert np.isnan(cos([0.0, 0.0], [0.1, -0.1]))


def test_run_step_decay_scales_with_the_run():
    """The step drops by the factor after each quarter of the run, whatever its length."""
    from experiments import _sim

    for steps in (8, 10, 400):
        sched = _sim.run_step_decay(0.2, steps, 0.5, 4)
        lrs = np.concatenate([np.repeat(np.asarray(lr), n) for _, lr, n in sched.blocks(steps)])
        assert lrs.shape == (steps,)
        every = -(-steps // 4)
        np.testing.assert_allclose(lrs, 0.2 * 0.5 ** (np.arange(steps) // every))
        assert lrs[0] == 0.2 and lrs[-1] == pytest.approx(0.2 / 8)
    with pytest.raises(ValueError, match="positive"):
        _sim.run_step_decay(0.2, 10, 0.5, 0)


def test_sweep_per_budget_is_one_run_per_budget_in_sweep_order():
    """Each budget's rows are the final losses of a run of that length under its own
    schedule (checked against one sweep per budget and against a single long run's
    checkpoint, which differs), in :func:`simulate.sweep`'s row order."""
    import jax.numpy as jnp

    import simulate
    from experiments import _sim

    model = simulate.DisjointTailModel(jnp.array([1.4, 2.0]), sigma2=jnp.array([0.1, 0.2]),
                                       head=2, tail=6)
    mixtures = np.array([[0.5, 0.5], [0.8, 0.2], [0.1, 0.9]])
    sizes, budgets = [4, 8], [12, 40]

    def schedule_for(steps):
        return _sim.run_step_decay(0.2, steps, 0.5, 4)

    table = _sim.sweep_per_budget(model, mixtures, sizes, budgets, schedule_for, name="t")
    assert len(table) == 3 * 2 * 2
    np.testing.assert_array_equal(table.row_tags["mixture_id"], np.repeat([0, 1, 2], 4))
    np.testing.assert_array_equal(table.row_tags["steps"], np.tile(budgets, 6))
    np.testing.assert_array_equal(table.model_size, np.tile(np.repeat(sizes, 2), 3))
    np.testing.assert_array_equal(table.tokens, np.tile(budgets, 6))
    for j, steps in enumerate(budgets):
        alone = simulate.sweep(model, mixtures, sizes, [steps], schedule_for(steps))
        np.testing.assert_array_equal(table.losses[j::2], alone.losses)
        np.testing.assert_array_equal(table.weights[j::2], alone.weights)
    long_run = simulate.sweep(model, mixtures, sizes, budgets, schedule_for(budgets[-1]))
    assert not np.allclose(table.losses[0::2], long_run.losses[0::2])  # 12 steps: other steps
    np.testing.assert_array_equal(table.losses[1::2], long_run.losses[1::2])
    assert set(table.meta["schedule"]["per_budget"]) == {"12", "40"}
