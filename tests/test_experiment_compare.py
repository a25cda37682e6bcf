"""Smoke test of experiments/compare_laws.py: its --quick mode runs every protocol and writes
the results record and the generated tables; the committed results (written before the common
experiment entry) still redraw."""

import json
from pathlib import Path

import numpy as np
import pytest

from experiments import compare_laws
from experiments._common import N_RESTARTS, n_params
from experiments._protocols import in_scale_table
from mixscale import LawSpec, law_specs

FIGURES = Path(__file__).resolve().parents[1] / "figures"


def test_quick_run_writes_results_and_tables(tmp_path):
    assert compare_laws.main(["--quick", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "compare_laws.json").read_text())
    assert set(record) == {"experiment", "config", "versions", "elapsed_s", "results"}
    assert set(record["versions"]) >= {"jax", "numpy", "mixscale"}
    assert record["config"]["quick"] is True
    results = record["results"]
    labels = record["config"]["laws"]
    assert labels == [s.label for s in compare_laws.QUICK.laws]
    assert {r["law"] for r in results["in_scale"]} == set(labels)
    for r in results["in_scale"]:
        assert np.isfinite(r["mre"]) and r["n_params"] > 0 and r["fit_s"] > 0
    statuses = {r["law"]: r["status"] for r in results["across_scale"]}
    assert statuses == {"bimix": "ok", "regression (linear)": "one scale only"}
    for r in results["regmix_rank"]:
        assert -1.0 <= r["spearman"]["60M"]["mean"] <= 1.0
    md = (tmp_path / "compare_laws.md").read_text()
    assert "one scale only" in md and "Spearman" in md and "h≥0.1" in md
    ceiling = results["regmix_ceiling"]["60M"]
    assert len(ceiling["per_domain"]) == 13 and 0.9 < ceiling["mean"] < 1.0
    assert f"rank the 60M runs at Spearman {ceiling['mean']:.3f}" in md
    # every fit records its convergence, and the summary table counts them per law
    for r in results["in_scale"] + results["regmix_rank"]:
        assert isinstance(r["law_converged"], bool) and r["nested_ok"] is True
        assert r["at_bounds"] >= 0 and np.isfinite(r["objective"])
    assert "## Convergence of every fit above" in md
    for label in labels:
        assert label in md
    # the tables are rebuilt from the record alone
    (tmp_path / "compare_laws.md").unlink()
    assert compare_laws.main(["--redraw", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "compare_laws.md").read_text() == md


def test_committed_results_redraw(tmp_path):
    """figures/compare_laws.json keeps the results at the top level (written before the common
    entry); its tables come back unchanged but for the file name they cite (the across-scale
    table from real_extrapolation's record beside it)."""
    for name in ("compare_laws", "real_extrapolation"):
        (tmp_path / f"{name}.json").write_bytes((FIGURES / f"{name}.json").read_bytes())
    assert compare_laws.main(["--redraw", "--out", str(tmp_path)]) == 0
    new = (tmp_path / "compare_laws.md").read_text()
    old = (FIGURES / "compare_laws.md").read_text()
    assert new.rstrip("\n") == old.replace("from `law_comparison.json`",
                                           "from `compare_laws.json`").rstrip("\n")


def test_every_law_by_default_with_the_fitters_policy():
    cfg = compare_laws.Config()
    assert cfg.laws == (*law_specs(), LawSpec("spectral"), LawSpec("spectral", variant="transfer"),
                        LawSpec("spectral", variant="dispersed"))
    assert cfg.n_restarts == N_RESTARTS == 64
    # left out only where its cost is measured in hours, and said so in the report (a bare name
    # covers every variant)
    assert cfg.not_fitted == (("spectral (transfer)", "in_scale:regmix-1b"),
                              ("spectral (dispersed)", "in_scale:regmix-1b"),
                              ("spectral", "regmix_rank"))
    # the across-scale fits are real_extrapolation's (same rows and settings): not made twice
    assert cfg.across_scale == () and "across_scale" not in compare_laws.PARTS
    assert compare_laws.fitted_laws(cfg, "in_scale", "regmix-1b") == [*law_specs(),
                                                                       LawSpec("spectral")]
    assert compare_laws.fitted_laws(cfg, "regmix_rank") == list(law_specs())
    assert compare_laws.fitted_laws(cfg, "in_scale") == list(cfg.laws)
    t = in_scale_table("regmix-1b")
    laws = {s.label: s for s in law_specs()}
    assert n_params(laws["joint"], t) == 17 * (4 * 17 + 5)
    assert n_params(laws["bimix"], t) == 4 * 17


def test_laws_left_out_for_cost_are_reported_as_such():
    """A law in ``not_fitted`` shows as not fitted, never as a silent gap; the record's merged
    spectral rows (``--add-law``) are in the tables."""
    record = json.loads((FIGURES / "compare_laws.json").read_text())
    md = compare_laws.markdown(record)
    spectral = ("spectral (full)", "spectral (transfer)", "spectral (dispersed)")
    for label in spectral:   # a bare name covers every variant
        assert f"| {label} | — | not fitted (cost) |" in md
    assert "Not fitted, for their cost" in md and "on regmix rank" in md
    merged = ("capacity (decoupled)", "capacity (transfer)")
    # every merged law is in the record's list of additions (refits of other laws may follow)
    assert set(spectral) | set(merged) <= {label for a in record["added"] for label in a["laws"]}
    for label in spectral:  # full is fitted on RegMix-1B in-scale too (~18 min per split)
        rows = [r for r in record["results"]["in_scale"] if r["law"] == label]
        datasets = ["pile4", "slimpajama7"] + (["regmix-1b"] if label == spectral[0] else [])
        assert sorted({r["dataset"] for r in rows}) == sorted(datasets)
        assert len(rows) == 5 * len(datasets)
    assert "spectral (full) on in scale: regmix-1b" not in md
    assert "spectral (transfer) on in scale: regmix-1b" in md
    for label in merged:  # a law that is not left out for cost is merged on every protocol
        rows = [r for part in ("in_scale", "regmix_rank")
                for r in record["results"][part] if r["law"] == label]
        assert len(rows) == 15 + 1


def test_across_scale_table_is_real_extrapolations_fits(tmp_path):
    """With no across-scale fits of its own, the section shows ``real_extrapolation``'s table
    from that record in the same folder (every law's MRE there, the spectral variants
    included), or says how to make it; ``reproduce`` draws the section again once the other
    record is there."""
    from experiments import real_extrapolation, reproduce
    from experiments._across_scale import error_table

    record = json.loads((FIGURES / "compare_laws.json").read_text())
    assert record["results"]["across_scale"] == []
    (tmp_path / "compare_laws.json").write_text(json.dumps(record))
    compare_laws.render(tmp_path, record)
    md = (tmp_path / "compare_laws.md").read_text()
    assert "No `real_extrapolation.json` is next to this record" in md
    assert "MRE / h≥0.1" not in md
    across = json.loads((FIGURES / "real_extrapolation.json").read_text())
    (tmp_path / "real_extrapolation.json").write_text(json.dumps(across))
    ran = ["real_extrapolation"]
    assert reproduce.redraw_readers(tmp_path, {"compare_laws": 1.0}, []) == []  # not run here
    assert reproduce.redraw_readers(tmp_path, {"real_extrapolation": 1.0}, ran) == ["compare_laws"]
    md = (tmp_path / "compare_laws.md").read_text()
    assert "No `real_extrapolation.json`" not in md
    table = "\n".join(error_table(across))
    assert table in md and table in real_extrapolation.section(across, [])
    for protocol in across["results"]["protocols"]:
        for law in protocol["laws"]:   # every fitted law's numbers, as that record has them
            e = next(iter(law["evaluations"].values()))
            assert f"{100 * e['mre']:.2f} / {100 * e['mre_high_weight']:.2f}" in md
    assert "| spectral (transfer) | " in table
    # a section that failed in this run is not drawn again from its old record, nor one whose
    # source failed
    assert reproduce.redraw_readers(tmp_path, {"compare_laws": None, "real_extrapolation": 1.0},
                                    ran) == []
    assert reproduce.redraw_readers(tmp_path, {"real_extrapolation": None}, ran) == []


@pytest.mark.parametrize("part", ["in_scale", "regmix_rank"])
def test_a_law_fitted_on_some_parts_only_shows_as_not_yet_fitted_on_the_rest(part):
    """``--add-law --part`` merges one part at a time: each table names a law of the record
    that has no rows in its part, with the command that fits them, instead of a silent gap
    (or a row of dashes); once its rows are in, the line is gone."""
    record = json.loads((FIGURES / "compare_laws.json").read_text())
    label = "capacity (crossover)"
    kept = [r for r in record["results"][part] if r["law"] == label]
    assert kept  # the committed record fits it on every part
    dash = "— | " if part == "regmix_rank" else ""
    line = f"| {label} | {dash}not yet fitted (`--add-law '{label}' --part {part}`) |"
    assert line not in compare_laws.markdown(record)
    record["results"][part] = [r for r in record["results"][part] if r["law"] != label]
    md = compare_laws.markdown(record)
    assert line in md
    width = {"in_scale": 13, "across_scale": 6, "regmix_rank": 7}[part]
    assert next(row for row in md.splitlines() if row.startswith(line)).count("|") == width + 1
    # a law left out of a part for its cost keeps its own row or dashes, not this line
    assert "| spectral (full) | — | not fitted (cost) |" in md
    assert "| spectral (full) | not yet fitted" not in md
    assert "| spectral (full) | — | not yet fitted" not in md


def test_the_standalone_nested_check_names_a_law_above_its_nested_variants_own_fit():
    """The full capacity law against the tied and capacity-only variants' own fits on the same
    rows (dataset and split seed): held when at most, named when above; rows of another split
    are not compared."""
    from experiments.compare_laws import convergence_summary, standalone_nested_check

    def row(law, objective, seed=0):
        return {"dataset": "pile4", "seed": seed, "law": law, "objective": objective,
                "law_converged": True, "at_bounds": 0, "nested_objectives": {},
                "nested_ok": True}

    results = {"in_scale": [row("capacity (full)", 1.0), row("capacity (tied)", 2.0),
                            row("capacity (capacity)", 0.5),
                            row("capacity (full)", 1.0, seed=1), row("capacity (tied)", 3.0, 1),
                            row("capacity (capacity)", 9.0, seed=2)]}
    held, n, failures = standalone_nested_check(results)["capacity (full)"]
    assert (held, n) == (2, 3)  # seed 0: tied held, capacity-only not; seed 1: tied held
    assert len(failures) == 1 and "capacity (capacity)" in failures[0] and "seed=0" in failures[0]
    text = "\n".join(convergence_summary(results))
    assert "| capacity (full) | 2 | 2 | — (nests no variant) | 2/3 |" in text
    assert "Fits above a nested variant's own fit" in text


def test_scale_rank_ceiling_is_the_measured_losses_own_ranking():
    """Identical tables rank each other perfectly; a reversed domain at the large scale gives
    -1 there; other mixtures or no common domain are refused."""
    from experiments._protocols import scale_rank_ceiling
    from mixscale import LossTable

    rng = np.random.default_rng(0)
    w = rng.dirichlet(np.ones(3), size=12)

    def table(losses, domains=("a", "b"), weights=w):
        return LossTable(weights=weights, model_size=np.ones(12), tokens=np.ones(12),
                         losses=losses, train_domains=("a", "b", "c"), loss_domains=domains)

    small = rng.uniform(2.0, 3.0, size=(12, 2))
    assert scale_rank_ceiling(table(small), table(small)) == {
        "mean": 1.0, "per_domain": {"a": 1.0, "b": 1.0}}
    large = small.copy()
    large[:, 1] = 5.0 - small[:, 1]
    large[3, 0] = np.nan  # a run not measured at the large scale is left out of that domain
    out = scale_rank_ceiling(table(small), table(large))
    assert out["per_domain"] == pytest.approx({"a": 1.0, "b": -1.0}) and out["mean"] == 0.0
    with pytest.raises(ValueError, match="same mixtures"):
        scale_rank_ceiling(table(small), table(small, weights=w[::-1]))
    with pytest.raises(ValueError, match="share no loss domain"):
        scale_rank_ceiling(table(small), table(small, domains=("c", "d")))


def test_each_in_scale_dataset_is_a_part_of_its_own():
    """``--part in_scale:DATASET`` fits that table's splits alone (every other protocol off)
    and refits only the record's rows of that dataset."""
    config = compare_laws.Config()
    for dataset in config.in_scale:
        part = compare_laws.PARTS[f"in_scale:{dataset}"]
        limited = part.limit(config)
        assert limited.in_scale == (dataset,) and limited.across_scale == ()
        assert not limited.regmix_rank and not limited.regmix_ceiling
        assert limited.laws == config.laws and part.key == "in_scale"
        assert part.rows({"law": "bimix", "dataset": dataset})
        assert not any(part.rows({"law": "bimix", "dataset": other})
                       for other in config.in_scale if other != dataset)


def test_ridge_loo_residuals_are_the_refits_without_each_row():
    """The closed-form leave-one-out choice of the penalty equals refitting without each row
    (brute force); a noiseless linear relation is recovered at a small penalty."""
    from experiments._protocols import ridge_loo

    rng = np.random.default_rng(1)
    x = rng.normal(size=(15, 3))
    y = 0.5 + x @ np.array([1.0, -2.0, 0.3]) + 0.3 * rng.normal(size=15)
    penalties = np.array([1e-3, 1e-1, 1.0, 10.0, 100.0])

    def brute(lam):
        errs = []
        for r in range(15):
            keep = np.arange(15) != r
            design = np.column_stack([np.ones(14), x[keep]])
            p = lam * np.eye(4)
            p[0, 0] = 0.0
            w = np.linalg.solve(design.T @ design + p, design.T @ y[keep])
            errs.append(y[r] - w[0] - x[r] @ w[1:])
        return np.mean(np.square(errs))

    w, lam = ridge_loo(x, y, penalties)
    assert lam == penalties[np.argmin([brute(p) for p in penalties])]
    design = np.column_stack([np.ones(15), x])
    p = lam * np.eye(4)
    p[0, 0] = 0.0
    np.testing.assert_allclose(w, np.linalg.solve(design.T @ design + p, design.T @ y),
                               rtol=1e-10)
    exact = 0.5 + x @ np.array([1.0, -2.0, 0.3])
    w, _ = ridge_loo(x, exact, penalties)
    np.testing.assert_allclose(w, [0.5, 1.0, -2.0, 0.3], atol=1e-2)


def test_absent_domain_reference_scores_only_the_absent_entries():
    """Planted: a domain's loss where it is absent is constant (the mean predicts it exactly)
    or log-linear in the other shares (the ridge does, the mean does not); entries where the
    domain is present, and a domain absent from too few training runs, are not scored."""
    from experiments._protocols import absent_domain_reference
    from mixscale import LossTable

    rng = np.random.default_rng(2)
    n = 40
    w = rng.dirichlet(np.ones(3), size=n)
    w[: n // 2, 0] = 0.0  # a absent from half the runs, b from six, c from one (validation)
    w[20:26, 1] = 0.0
    w[21, 2] = 0.0
    w /= w.sum(1, keepdims=True)
    losses = np.column_stack([
        np.where(w[:, 0] == 0, np.exp(1.0 - 0.5 * w[:, 1]), 2.0),   # a: log-linear if absent
        np.where(w[:, 1] == 0, 3.0, 1.5 + w[:, 0]),                  # b: constant if absent
        2.5 - w[:, 2]])
    table = LossTable(weights=w, model_size=np.ones(n), tokens=np.ones(n), losses=losses,
                      train_domains=("a", "b", "c"), loss_domains=("a", "b", "c"))
    train, valid = table.take(np.arange(n) % 2 == 0), table.take(np.arange(n) % 2 == 1)
    out = absent_domain_reference(train, valid)
    assert out["n"] == 3 * n // 2 and out["n_absent"] == n // 4 + 3 + 1
    assert set(out["per_domain"]) == {"a", "b"} and out["n_unscored"] == 1  # c: no training run
    a, b = out["per_domain"]["a"], out["per_domain"]["b"]
    assert a["n"] == n // 4 and a["ridge"] < 1e-3 < a["mean"]
    assert b["n"] == 3 and b["mean"] < 1e-12 and b["ridge"] < 1e-6
    assert out["mre_mean"] == pytest.approx((a["n"] * a["mean"] + 3 * b["mean"]) / (a["n"] + 3))


def test_absent_domain_summary_pools_the_splits_and_keeps_every_domain():
    """The share pools entries over the splits, the points are per split, and a domain absent
    from the first split's validation entries is still listed (averaged over the splits that
    hold it), largest first."""
    from experiments._protocols import absent_domain_summary

    rows = [{"n": 100, "n_absent": 30, "mre_mean": 0.03, "mre_ridge": 0.025, "n_unscored": 1,
             "per_domain": {"a": {"n": 30, "mean": 0.03, "ridge": 0.025}}},
            {"n": 300, "n_absent": 50, "mre_mean": 0.02, "mre_ridge": 0.02, "n_unscored": 2,
             "per_domain": {"a": {"n": 20, "mean": 0.01, "ridge": 0.01},
                            "b": {"n": 30, "mean": 0.05, "ridge": 0.04}}}]
    out = absent_domain_summary(rows)
    assert out["share"] == pytest.approx(80 / 400) and out["n_unscored"] == 3
    assert out["points"] == pytest.approx([0.3 * 0.03, 50 / 300 * 0.02])
    assert out["mre_mean"] == [0.03, 0.02] and out["mre_ridge"] == [0.025, 0.02]
    assert list(out["per_domain"]) == ["b", "a"]
    assert out["per_domain"]["a"] == pytest.approx(0.02)

