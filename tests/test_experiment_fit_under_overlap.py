"""Smoke test of experiments/fit_under_overlap.py (--quick) and unit tests of its helpers."""

import json
import types

import numpy as np
import pytest

from experiments import _sim, fit_under_overlap


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fit_under_overlap")
    assert fit_under_overlap.main(["--quick", "--out", str(out)]) == 0
    return out


def test_quick_run_writes_sane_results(quick_run):
    record = json.loads((quick_run / "fit_under_overlap.json").read_text())
    cfg = fit_under_overlap.QUICK
    settings = record["results"]["settings"]
    assert [(s["head"], s["rho"]) for s in settings] == [
        (h, r) for h in cfg.heads for r in cfg.rhos]
    for s in settings:
        # the tail length is held fixed: P = S + floor(rho T) + K (T - floor(rho T))
        shared = int(np.floor(s["rho"] * cfg.tail))
        assert s["n_features"] == s["head"] + shared + cfg.k * (cfg.tail - shared)
        for spec in cfg.laws:
            law = s["laws"][spec.label]
            assert np.isfinite(law["validation_mre"]) and 0 <= law["validation_mre"] < 1
            assert np.isfinite(law["validation_mre_top_scale"])
        for spec in cfg.one_scale_laws:
            law = s["laws"][spec.label]
            assert law["validation_mre"] is None
            assert 0 <= law["validation_mre_top_scale"] < 1
    md = (quick_run / "fit_under_overlap.md").read_text()
    assert md.startswith("## ") and "](fit_under_overlap.png)" in md
    assert "not yet fitted" not in md  # a quick run lists none
    assert (quick_run / "fit_under_overlap.png").stat().st_size > 10_000
    # the figure and section can be redrawn from the results file alone
    (quick_run / "fit_under_overlap.md").unlink()
    assert fit_under_overlap.main(["--redraw", "--out", str(quick_run)]) == 0
    assert (quick_run / "fit_under_overlap.md").read_text() == md


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("head", [0, 5])
def test_n_features_for_tail_holds_the_tail(head, rho):
    import simulate

    k, tail = 3, 17
    p = _sim.n_features_for_tail(k, head, tail, rho)
    shared = int(np.floor(rho * tail + 1e-12))
    assert p == head + shared + k * (tail - shared)
    model = simulate.DisjointTailModel(np.full(k, 1.5), head=head, n_features=p, rho=rho)
    assert model.tails == (tail,) * k
    shorter = simulate.DisjointTailModel(np.full(k, 1.5), head=head, n_features=p - 1, rho=rho)
    assert shorter.tails[0] < tail


def test_n_features_for_tail_rejects_an_empty_model():
    with pytest.raises(ValueError, match="feature"):
        _sim.n_features_for_tail(3, 0, 0, 0.0)


def test_scale_mre_uses_only_the_rows_at_that_scale():
    from mixscale.data import LossTable

    n = np.array([10.0, 10.0, 20.0, 20.0])
    d = np.array([5.0, 7.0, 5.0, 7.0])
    obs = np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 4.0], [4.0, 8.0]])
    table = LossTable(weights=np.full((4, 2), 0.5), model_size=n, tokens=d, losses=obs,
                      train_domains=("a", "b"), loss_domains=("a", "b"))
    pred = obs * np.array([[1.0, 1.0], [1.0, 1.0], [1.1, 1.3], [1.0, 1.0]])
    res = types.SimpleNamespace(targets=("a", "b"),
                                predict=lambda t: pred[[int(np.flatnonzero(
                                    (n == a) & (d == b))[0]) for a, b in zip(
                                        t.model_size, t.tokens, strict=True)]])
    assert fit_under_overlap.scale_mre(res, table, 20.0, 5.0) == pytest.approx(0.2)
    assert fit_under_overlap.scale_mre(res, table, 10.0, 7.0) == pytest.approx(0.0)
    assert np.isnan(fit_under_overlap.scale_mre(res, table, 30.0, 5.0))


def test_bad_configurations_are_refused():
    cfg = fit_under_overlap.Config
    with pytest.raises(ValueError, match="rho"):
        cfg(rhos=(0.0, 1.5)).check()
    with pytest.raises(ValueError, match="exceeds"):
        cfg(tail=32, sizes=(16, 64)).check()
    with pytest.raises(ValueError, match="two sizes"):
        cfg(sizes=(32,)).check()
    with pytest.raises(ValueError, match="not among"):
        cfg(only=((8, 0.3),)).check()


def test_a_part_computes_its_setting_as_the_full_run_does(monkeypatch):
    """``--part S<head>-rho<ρ>`` limits the run to that setting, drawn exactly as the full run
    draws it (instance, mixtures and step size come from every head and overlap)."""
    import dataclasses
    import logging

    calls = []

    def record(cfg, inst, mixtures, lr):
        calls.append((inst, mixtures.copy(), lr))
        return {"head": inst.head, "rho": inst.rho, "laws": {}}

    monkeypatch.setattr(fit_under_overlap, "run_setting", record)
    cfg = dataclasses.replace(fit_under_overlap.QUICK, heads=(0, 4), rhos=(0.0, 0.5, 1.0))
    full = fit_under_overlap.run(cfg, logging.getLogger("test"))
    full_calls, calls[:] = list(calls), []
    part = fit_under_overlap.run(dataclasses.replace(cfg, only=((4, 0.5),)),
                                 logging.getLogger("test"))
    assert [(s["head"], s["rho"]) for s in part["settings"]] == [(4, 0.5)]
    ((inst, mixtures, lr),) = calls
    (theirs,) = [c for c in full_calls if (c[0].head, c[0].rho) == (4, 0.5)]
    assert inst == theirs[0] and lr == theirs[2]
    np.testing.assert_array_equal(mixtures, theirs[1])
    assert len(full["settings"]) == 6
    # every setting of the full run is a part, named by its head and overlap
    parts = fit_under_overlap.PARTS
    default = fit_under_overlap.Config()
    assert sorted(parts) == sorted(fit_under_overlap.part_name(s, r)
                                   for s in default.heads for r in default.rhos)
    assert parts["S8-rho0.75"](default).only == ((8, 0.75),)


def test_closed_form_table_equals_the_sweep(rng):
    import simulate

    inst = _sim.draw_instance(rng, 3, head=3, n_features=40, rho=0.5)
    model = inst.model()
    mixtures = rng.dirichlet(np.ones(3), size=4)
    lr = _sim.safe_learning_rate(model, [6, 15], batch_size=2, mixtures=mixtures)
    swept = simulate.sweep(model, mixtures, [6, 15], [2, 40, 300], simulate.Constant(lr), 2)
    closed = _sim.closed_form_table(model, mixtures, [6, 15], [2, 40, 300], lr, 2)
    np.testing.assert_allclose(closed.losses, swept.losses, rtol=1e-11)
    for field in ("weights", "model_size", "tokens"):
        np.testing.assert_array_equal(getattr(closed, field), getattr(swept, field))
    for tag in swept.row_tags:
        np.testing.assert_array_equal(closed.row_tags[tag], swept.row_tags[tag])
    with pytest.raises(ValueError, match="stable"):
        _sim.closed_form_table(model, mixtures, [6, 15], [2], 10 * lr / 0.5, 2)
