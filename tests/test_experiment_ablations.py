"""Smoke test of experiments/ablations.py (--quick) and unit tests of its helpers."""

import json

import numpy as np
import pytest

from experiments import _sim, ablations


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ablations")
    assert ablations.main(["--quick", "--out", str(out)]) == 0
    return out


def test_quick_run_writes_sane_results(quick_run, monkeypatch):
    record = json.loads((quick_run / "ablations.json").read_text())
    rows = record["results"]["variants"]
    cfg = ablations.QUICK
    assert {r["group"] for r in rows} == set(cfg.groups)
    for r in rows:
        fit = r["subject"]
        assert fit["law"] == "capacity (full)" and r["laws"] == []  # QUICK fits no other law
        assert np.isfinite(fit["validation_mre"]) and 0 <= fit["validation_mre"] < 1
        # the simulator's optimum search resolves the minimum to ~1e-5
        assert fit["regret_law"] >= -1e-4 and r["regret_uniform"] >= -1e-4
        assert np.isclose(sum(fit["law_optimum"]), 1.0) and np.isclose(sum(r["true_optimum"]), 1)
        assert r["scale"]["D"] == r["scale"]["steps"] * r["batch_size"]
    assert {r["label"] for r in rows} >= {"constant, B = 1 (base)", "step decay, B = 1",
                                          "constant, B = 8"}
    md = (quick_run / "ablations.md").read_text()
    assert md.startswith("## ") and "](ablations.png)" in md
    assert (quick_run / "ablations.png").stat().st_size > 10_000
    # the figure and section can be redrawn from the results file alone
    (quick_run / "ablations.md").unlink()
    assert ablations.main(["--redraw", "--out", str(quick_run)]) == 0
    assert (quick_run / "ablations.md").read_text() == md
    assert "not yet fitted" not in md  # a quick run lists none
    # a full configuration's record lacking its laws names each of them (the section alone:
    # the figure, checked above, is not drawn again)
    record["config"]["n_mixtures"] += 1
    monkeypatch.setattr(ablations, "draw", lambda results, out: "ablations.png")
    ablations.render(quick_run, record)
    listed = ", ".join(s.label for s in ablations.Config().laws)
    assert f"not yet fitted in this record: {listed} (" in (quick_run / "ablations.md").read_text()


def test_other_laws_are_drawn_tabled_and_summarised_beside_the_capacity_law(quick_run, tmp_path):
    """The quick run fits the capacity law alone; a record with two more laws' fits on every
    variant (scaled copies of the capacity law's numbers) is drawn, tabled (one row per law
    and variant) and summarised per law."""
    record = json.loads((quick_run / "ablations.json").read_text())
    for r in record["results"]["variants"]:
        r["laws"] = [{"law": law, "validation_mre": scale * r["subject"]["validation_mre"],
                      "train_mre": scale * r["subject"]["train_mre"],
                      "regret_law": scale / 2 * r["regret_uniform"],
                      "law_optimum": r["true_optimum"]}
                     for law, scale in (("spectral (full)", 0.5), ("capacity (crossover)", 0.2))]
    (tmp_path / "ablations.json").write_text(json.dumps(record))
    assert ablations.main(["--redraw", "--out", str(tmp_path)]) == 0
    md = (tmp_path / "ablations.md").read_text()
    variants = record["results"]["variants"]
    expected = (("spectral (full)", "25.0"), ("capacity (crossover)", "10.0"))
    for j, (law, share) in enumerate(expected):
        rows = [line for line in md.splitlines() if f"| {law} |" in line]
        assert len(rows) == len(variants)
        assert f"{100 * variants[0]['laws'][j]['validation_mre']:.4g}" in rows[0]
        assert f"The {law} law: held-out MRE" in md and f"({share}% of the uniform" in md
    assert (tmp_path / "ablations.png").stat().st_size > 10_000


def test_an_added_law_is_merged_into_every_variant_and_the_capacity_law_kept(quick_run):
    """``--add-law``: the variants' rows keep the subject's fits and gain the added law's."""
    from experiments._harness import merge_law_rows

    old = json.loads((quick_run / "ablations.json").read_text())["results"]
    new = json.loads(json.dumps(old))
    for r in new["variants"]:
        r["subject"]["validation_mre"] = -1.0  # a refit of the subject must not replace it
        r["laws"] = [{"law": "capacity (crossover)", "validation_mre": 0.01}]
    merged = merge_law_rows(old, new, ["capacity (crossover)"])
    for m, o in zip(merged["variants"], old["variants"], strict=True):
        assert m["subject"] == o["subject"]
        assert m["laws"] == [{"law": "capacity (crossover)", "validation_mre": 0.01}]


def test_every_variant_changes_one_thing():
    vs = ablations.variants(0.5, (0.0, 0.5, 1.0), 8)
    for group in ablations.GROUPS:
        members = [v for v in vs if v.group == group]
        assert sum(v.data_key() == ((), "constant", 1) and v.law_variant == "full"
                   for v in members) == 1  # the base, once per group
        for v in members:
            changed = (len(v.changes) + (v.schedule != "constant") + (v.batch_size != 1)
                       + (v.law_variant != "full"))
            assert changed <= 1


def test_keep_rules_coincide_without_a_source_exponent(rng):
    # why the base has beta > 0: at beta = 0 the signal score is the eigenvalue itself
    import jax.numpy as jnp

    inst = _sim.draw_instance(rng, 3, head=4, n_features=64)
    mixtures = rng.dirichlet(np.ones(3), size=20)
    for beta, same in ((0.0, True), (1.0, False)):
        masks = []
        for keep in ("signal", "eigen"):
            model = inst.replace(beta=beta, keep=keep).model()
            masks.append(np.stack([np.asarray(model.kept(jnp.asarray(h), 20))
                                   for h in mixtures]))
        assert np.array_equal(*masks) == same


def test_regret_is_zero_at_the_optimum_and_positive_at_a_vertex(rng):
    import simulate

    inst = _sim.draw_instance(rng, 2, head=2, n_features=20)
    model = inst.model()
    lr = _sim.safe_learning_rate(model, [8])
    sched = simulate.Constant(lr)
    w, loss = _sim.true_optimum(model, 8, 30, sched)
    assert abs(ablations.regret(model, w, 8, 30, sched, 1, loss)) < 1e-10
    grid = np.linspace(0, 1, 101)
    brute = min(np.mean(_sim.true_losses(model, [g, 1 - g], 8, 30, sched)) for g in grid)
    assert loss <= brute + 1e-6
    assert ablations.regret(model, [1.0, 0.0], 8, 30, sched, 1, loss) > 0


def test_bad_configurations_are_refused():
    cfg = ablations.Config
    with pytest.raises(ValueError, match="multiples"):
        cfg(samples=(60, 256)).check()
    with pytest.raises(ValueError, match="base beta"):
        cfg(beta=0.25).check()
    with pytest.raises(ValueError, match="groups"):
        cfg(groups=("(e) nonsense",)).check()
