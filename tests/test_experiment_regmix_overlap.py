"""Smoke test of experiments/regmix_overlap.py (``--quick``) and unit tests of its helpers."""

import json

import numpy as np
import pytest

from experiments import regmix_overlap as ro
from experiments._common import pct_mean_sd
from mixscale import LawSpec


def test_structures_from_fewest_parameters():
    names = [name for name, _ in ro.structures(ro.Config(factors=(1, 3), sourced_factors=(3,)))]
    assert names == ["own", "rank 1", "rank 3", "free", "rank 3 + g", "free + g"]
    specs = dict(ro.structures(ro.Config(factors=(3,), sourced_factors=(), sourced_free=False)))
    assert list(specs) == ["own", "rank 3", "free"]
    assert specs["rank 3"] == LawSpec("overlap", variant="rank", factors=3)
    counts = [spec.n_parameters(17, 13) for _, spec in ro.structures(ro.Config())]
    assert counts == [39, 56, 73, 90, 107, 247, 56 + 17, 73 + 17, 247 + 17]
    assert counts[:6] == sorted(counts[:6])
    # each sourced structure nests its plain one (the nested start at g = 1)
    for name, spec in ro.structures(ro.Config()):
        if name.endswith(ro.SOURCED):
            plain = dict(ro.structures(ro.Config()))[name.removesuffix(ro.SOURCED)]
            assert spec.nested_specs() == (plain,)
    with pytest.raises(ValueError, match="sourced_factors"):
        ro.structures(ro.Config(factors=(1,), sourced_factors=(2,)))


def test_references_read_compare_laws_ranking_rows(tmp_path):
    assert ro.references(tmp_path) == {}
    rows = [{"law": "additive", "n_params": 507,
             "spearman": {"1M": {"mean": 0.99}, "60M": {"mean": 0.98}}},
            {"law": "bimix", "n_params": 52,
             "spearman": {"1M": {"mean": 0.8}, "60M": {"mean": 0.8}}},
            {"law": "joint", "status": "not fitted"},
            {"law": "dml", "n_params": 234,
             "spearman": {"1M": {"mean": 0.97}, "60M": {"mean": 0.96}}}]
    in_scale = [{"law": "additive", "dataset": "regmix-1b", "mre": 0.02, "mre_high_weight": 0.01},
                {"law": "additive", "dataset": "regmix-1b", "mre": 0.03, "mre_high_weight": 0.02},
                {"law": "additive", "dataset": "pile4", "mre": 0.5, "mre_high_weight": 0.4}]
    (tmp_path / "compare_laws.json").write_text(
        json.dumps({"results": {"regmix_rank": rows, "in_scale": in_scale}}))
    refs = ro.references(tmp_path)
    assert list(refs) == ["dml", "additive"]  # REFERENCES' order, fitted laws only
    assert refs["additive"] == {"n_params": 507, "1M": 0.99, "60M": 0.98,
                                "in_scale": [0.02, 0.03], "in_scale_high": [0.01, 0.02]}
    assert refs["dml"]["in_scale"] == [] and pct_mean_sd([]) == ""
    assert pct_mean_sd([0.02, 0.03]) == "2.50 ± 0.71" and pct_mean_sd([0.02]) == "2.00"


def test_weight_classes_split_the_mre_by_the_entries_own_weight():
    """The middle class's MRE is what the whole's error sum leaves to its entries: 10 entries at
    MRE 0.03 = 4 absent at 0.05 + 2 high at 0.01 + 4 low at (0.3 - 0.2 - 0.02) / 4."""
    row = {"n": 10, "mre": 0.03, "n_absent": 4, "mre_absent": 0.05, "n_high_weight": 2,
           "mre_high_weight": 0.01}
    absent, low, high = ro.weight_classes(row)
    assert (absent, high) == (0.05, 0.01) and low == pytest.approx(0.02)
    empty = ro.weight_classes({**row, "n_absent": 0, "mre_absent": float("nan")})
    assert np.isnan(empty[0]) and empty[1] == pytest.approx((0.3 - 0.02) / 8)


def test_top_overlaps_name_the_pairs_above_the_threshold():
    row = {"targets": ["b", "c"], "train_domains": ["a", "b", "c"],
           "overlaps": [[0.3, 1.0, 0.01], [0.0, 0.07, 1.0]]}
    assert ro._top_overlaps(row) == ["`b`: a 0.30", "`c`: b 0.07"]
    assert ro._top_overlaps(row, threshold=0.5) == ["`b`: none", "`c`: none"]


def test_quick_run(tmp_path):
    assert ro.main(["--quick", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "regmix_overlap.json").read_text())
    ranking, in_scale = record["results"]["ranking"], record["results"]["in_scale"]
    assert [r["structure"] for r in ranking] == ["own", "free", "free + g"]
    assert {r["structure"] for r in in_scale} == {"own", "free", "free + g"}
    g = np.asarray(ranking[-1]["g"])
    assert g.shape == (17,) and np.all((g >= 0.05) & (g <= 5)) and "g" not in ranking[1]
    for r in ranking:
        s = np.asarray(r["overlaps"])
        assert s.shape == (13, 17) and np.all(s >= 0)
        own = [r["train_domains"].index(t) for t in r["targets"]]
        assert np.all(s[np.arange(13), own] == 1.0)
        if r["structure"] == "own":
            assert np.count_nonzero(s) == 13
        assert -1 <= r["tests"]["1M"]["spearman"] <= 1 and r["tests"]["60M"]["mre"] > 0
    md = (tmp_path / "regmix_overlap.md").read_text()
    assert md.startswith("## ") and "](regmix_overlap.png)" in md
    assert (tmp_path / "regmix_overlap.png").stat().st_size > 0
    for name in ("own", "free", "free + g"):
        assert f"| {name} |" in md
    assert "Source exponents `g` of `free + g`" in md
    # the section is drawn from the JSON alone
    (tmp_path / "regmix_overlap.md").unlink()
    assert ro.main(["--redraw", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "regmix_overlap.md").read_text() == md
