"""``benchmarks/reproduce_profile.py`` on planted records: its sums, counts and the list of fits
without a converged law."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _profile_module():
    spec = importlib.util.spec_from_file_location(
        "reproduce_profile", ROOT / "benchmarks" / "reproduce_profile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fit(seconds: float, converged: bool) -> dict:
    return {"objective": 1.0, "fit_s": seconds, "law_converged": converged}


def test_profile_sums_fit_time_and_lists_the_unconverged_fits(tmp_path, capsys):
    records = {
        # settings held as {law: fit} mappings, as law_vs_simulator's
        "alpha": {"experiment": "alpha", "elapsed_s": 600.0, "results": {"settings": [
            {"laws": {"capacity (full)": _fit(60.0, True), "joint": _fit(120.0, True)}},
            {"laws": {"capacity (full)": _fit(30.0, False), "joint": _fit(90.0, True)}}]}},
        # rows of one list, told apart by their split, as compare_laws'
        "beta": {"experiment": "beta", "elapsed_s": 300.0, "results": {"in_scale": [
            {"law": "joint", "seed": 0, **_fit(150.0, True)},
            {"law": "joint", "seed": 1, **_fit(30.0, False)}]}},
    }
    for name, record in records.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(record), encoding="utf-8")
    assert _profile_module().main(["--figures", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    alpha = next(line.split() for line in lines if line.startswith("alpha"))
    assert alpha[1:] == ["10.0", "5.0", "50%", "4", "3"]       # wall, fit min, share, fits, conv
    beta = next(line.split() for line in lines if line.startswith("beta"))
    assert beta[1:] == ["5.0", "3.0", "60%", "2", "1"]
    total = next(line.split() for line in lines if line.startswith("total"))
    assert total[1:3] == ["15.0", "8.0"]
    # a fresh two-job run: max(the costliest experiment's fits, all fits / 2) = max(5, 4) min
    assert "= 5.0 min of wall time" in out
    joint = next(line.split() for line in lines if line.startswith("joint"))
    assert joint[1:] == ["6.5", "81%", "4", "3", "97.5"]
    listed = lines[lines.index("fits without a converged law: 2") + 1:]
    assert [line.split()[:3] for line in listed if line.strip()] == [
        ["alpha", "results/settings[1]/laws", "capacity"],
        ["beta", "results/in_scale", "seed=1"]]
