"""Smoke test of experiments/law_vs_simulator.py: its quick mode fits every law of its
configuration (and its overlap laws on the same instance with tail overlap) and writes the
results, the figure and the report section."""

import json

import pytest

from experiments import law_vs_simulator


@pytest.mark.slow
def test_law_vs_simulator_quick_writes_results(tmp_path, monkeypatch):
    assert law_vs_simulator.main(["--quick", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "law_vs_simulator.json").read_text())
    assert record["config"]["n_mixtures"] == 12 and "jax" in record["versions"]
    (res,) = record["results"]["settings"]
    (overlapping,) = record["results"]["overlap"]
    (shifted,) = record["results"]["overlap_phase"]
    assert res["n_train_runs"] == 9 * 3 * 3 and res["n_validation_runs"] == 3 * 3 * 3
    assert set(res["laws"]) == {"capacity (full)", "spectral (full)"}
    # the same instance (spectra, noise), only the overlap differs; only the overlap laws
    assert (overlapping["rho"], res["rho"]) == (0.5, 0.0)
    assert overlapping["alpha"] == res["alpha"] and overlapping["sigma2"] == res["sigma2"]
    assert set(overlapping["laws"]) == {"spectral (full)"}
    # and again with the shared ranks at another phase: another layout, other losses
    assert (shifted["rho"], shifted["phase"], overlapping["phase"]) == (0.5, 0.5, 0.0)
    assert shifted["alpha"] == res["alpha"] and set(shifted["laws"]) == {"spectral (full)"}
    assert shifted["laws"]["spectral (full)"]["validation_mre"] != overlapping["laws"][
        "spectral (full)"]["validation_mre"]
    assert overlapping["laws"]["spectral (full)"]["validation_mre"] != res["laws"][
        "spectral (full)"]["validation_mre"]
    for fitted in res["laws"].values():
        assert 0 <= fitted["validation_mre"] < 1 and set(fitted["validation_per_domain_mre"]) == {
            "d0", "d1", "d2"}
        assert set(fitted["validation_mre_by_size"]) == {"16", "32", "64"}
    assert (tmp_path / "law_vs_simulator.png").stat().st_size > 10_000
    md = (tmp_path / "law_vs_simulator.md").read_text()
    assert md.startswith("## ") and "law_vs_simulator.png" in md
    for label, fitted in res["laws"].items():  # the table is generated from the results
        assert f"| {label} | {100 * fitted['validation_mre']:.4g} |" in md
    over = overlapping["laws"]["spectral (full)"]
    base_mre = 100 * res['laws']['spectral (full)']['validation_mre']
    assert (f"| 3 | 8 | 0.5 | 0 | spectral (full) | {100 * over['validation_mre']:.4g} | "
            f"{base_mre:.4g} | — |") in md
    assert (f"| 3 | 8 | 0.5 | 0.5 | spectral (full) | "
            f"{100 * shifted['laws']['spectral (full)']['validation_mre']:.4g} | "
            f"{base_mre:.4g} | {100 * over['validation_mre']:.4g} |") in md
    assert "not yet fitted" not in md  # a quick run lists none
    # a record made before the overlap settings gets them from --part overlap, alone: its
    # base settings stay as they were
    path = tmp_path / "law_vs_simulator.json"
    old = dict(record, results={"settings": record["results"]["settings"],
                                "overlap_phase": record["results"]["overlap_phase"]})
    path.write_text(json.dumps(old))
    assert law_vs_simulator.main(["--quick", "--out", str(tmp_path), "--part", "overlap"]) == 0
    added = json.loads(path.read_text())
    assert added["results"]["settings"] == record["results"]["settings"]
    assert added["results"]["overlap_phase"] == record["results"]["overlap_phase"]
    assert added["results"]["overlap"][0]["laws"]["spectral (full)"]["validation_mre"] == over[
        "validation_mre"]
    # a full configuration's record lacking laws of its list names each of them (the section
    # alone: the figure, checked above, is not drawn again)
    record["config"]["n_mixtures"] += 1
    monkeypatch.setattr(law_vs_simulator, "plot", lambda results, out: None)
    law_vs_simulator.render(tmp_path, record)
    missing = ", ".join(s.label for s in law_vs_simulator.Config().laws
                        if s.label not in res["laws"])
    assert f"not yet fitted in this record: {missing} (" in (
        tmp_path / "law_vs_simulator.md").read_text()
