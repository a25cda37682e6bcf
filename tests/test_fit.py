"""The fitter: planted parameters recovered, masks, determinism, compilation reuse, evaluation,
bad input."""

import dataclasses

import equinox as eqx
import jax
import numpy as np
import pytest
from helpers import assert_no_retrace, num_traces

import mixscale as ms
from mixscale import CapacityLaw, LossTable, TableError
from mixscale._evaluate import predict_in_blocks
from mixscale._lbfgs import lbfgs_batch
from mixscale._lm import lm_advance, lm_start
from mixscale.data import select

DOMAINS = ("a", "b", "c")


def _planted():
    return CapacityLaw.from_params(b=[0.35, 0.6, 0.45], c=[2.0, 1.2, 1.6], H=0.8,
                                   A=[0.5, 0.3, 0.45], a=[0.3, 0.45, 0.25], E=[1.0, 1.5, 0.8])


def _table(law, rng, n=48, nan_frac=0.0, loss_domains=DOMAINS, extra=None):
    h = rng.dirichlet(np.ones(3), n)
    N = rng.choice([20.0, 60.0, 180.0], n)
    D = rng.choice([1.0, 4.0, 16.0], n)
    y = predict_in_blocks(law, h, N, D)
    if nan_frac:
        y[rng.random(y.shape) < nan_frac] = np.nan
    if extra is not None:
        y = np.concatenate([y, extra(n)], axis=1)
    return LossTable(weights=h, model_size=N, tokens=D, losses=y, train_domains=DOMAINS,
                     loss_domains=loss_domains, size_unit=1.0, token_unit=1.0, name="planted")


def test_recovers_planted_parameters_from_noiseless_output(rng):
    law = _planted()
    table = _table(law, rng, nan_frac=0.1)  # masked entries must not matter
    valid = _table(law, rng)
    res = ms.fit(CapacityLaw, table, validation=valid, n_restarts=8, seed=0)
    assert res.train_metrics["mre"] < 1e-4
    assert res.validation_metrics["mre"] < 1e-4
    assert res.converged[res.best]
    np.testing.assert_allclose(np.asarray(res.law.b), np.asarray(law.b), rtol=1e-3)
    np.testing.assert_allclose(np.asarray(res.law.a), np.asarray(law.a), rtol=1e-3)
    assert res.n_params == 5 * 3 + 1
    # 8 random restarts and the two nested variants' fits as starts (tied, capacity-only)
    assert res.objectives.shape == res.converged.shape == res.steps.shape == (10,)
    assert set(res.nested_objectives) == {"capacity (tied)", "capacity (capacity)"}
    assert res.law_converged


def test_lbfgs_method_also_fits(rng):
    law = _planted()
    # two slots, as in test_lbfgs_compiles_once: one compiled program serves both tests. One
    # batch of two restarts (of these, seed 1's, one reaches the planted law to rounding in
    # 1714 steps; the four restarts of two batches cost twice the time and find the same).
    res = ms.fit(CapacityLaw, _table(law, rng), n_restarts=2, seed=1, chunk=2, method="lbfgs",
                 max_steps=3000, nested=False)
    assert res.train_metrics["mre"] < 1e-3
    assert res.method == "lbfgs"


def test_fit_is_deterministic_and_compiles_once(rng, keep_compiled_programs):
    law = _planted()
    table = _table(law, rng)
    before = num_traces(lm_advance)
    first = ms.fit(CapacityLaw, table, n_restarts=4, seed=3, chunk=2, nested=False)
    assert num_traces(lm_start) >= 1 and num_traces(lm_advance) >= 1  # the counters count
    # one program for the whole loop: the state lm_start makes has the types lm_advance returns
    # (a weakly typed step counter once made the second segment compile the solver again)
    assert num_traces(lm_advance) - before <= 1
    other = _table(law, rng)  # new values, the same shapes
    with assert_no_retrace(lm_start, lm_advance):
        second = ms.fit(CapacityLaw, table, n_restarts=4, seed=3, chunk=2, nested=False)
        ms.fit(CapacityLaw, other, n_restarts=4, seed=4, chunk=2, nested=False)
        # the stopping rule's numbers are run-time values, not part of the program
        ms.fit(CapacityLaw, other, n_restarts=4, seed=4, chunk=2, nested=False, max_steps=37,
               rtol=1e-9, gtol=1e-4)
    np.testing.assert_array_equal(first.objectives, second.objectives)
    np.testing.assert_array_equal(first.steps, second.steps)
    for a, b in zip(jax.tree_util.tree_leaves(first.law), jax.tree_util.tree_leaves(second.law),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_polish_continues_the_capped_restarts_in_the_same_program(rng, keep_compiled_programs):
    """Restarts stopped by a small step cap: the polish continues the best of them (up to the
    slot width) to convergence, lowers no restart's objective into a rise, leaves the others
    bitwise as they were, and reuses the compiled solver."""
    table = _table(_planted(), rng)
    kw = dict(n_restarts=4, seed=3, chunk=2, nested=False, max_steps=15)
    capped = ms.fit(CapacityLaw, table, **kw)
    candidates = set(np.flatnonzero((capped.steps >= 15) & ~capped.converged).tolist())
    assert capped.best in candidates and not capped.law_converged
    with assert_no_retrace(lm_start, lm_advance):
        polished = ms.fit(CapacityLaw, table, polish_steps=3000, **kw)
    assert polished.law_converged and polished.train_metrics["mre"] < 1e-4
    assert capped.best in polished.polished and len(polished.polished) <= 2
    assert set(polished.polished) <= candidates
    rest = [r for r in range(4) if r not in polished.polished]
    np.testing.assert_array_equal(polished.objectives[rest], capped.objectives[rest])
    np.testing.assert_array_equal(polished.steps[rest], capped.steps[rest])
    for r in polished.polished:
        assert polished.objectives[r] <= capped.objectives[r]
        assert polished.steps[r] > 15
    assert polished.objective < capped.objective and "polish_s" in polished.timings
    assert capped.polished == ()


def test_finish_continues_only_the_returned_restart_past_the_polish(rng):
    """A polish too short to converge the best restart: the finish continues that restart alone
    (not the other capped ones) to convergence, leaves every other restart bitwise as the
    polish left it, and never raises an objective; without it nothing is finished."""
    table = _table(_planted(), rng)
    kw = dict(n_restarts=4, seed=3, chunk=2, nested=False, max_steps=15, polish_steps=5)
    polished = ms.fit(CapacityLaw, table, **kw)
    assert not polished.law_converged and polished.finished == ()
    assert polished.steps[polished.best] >= 20  # still at the polish's limit
    assert polished.at_step_limit(15, 5) and not polished.at_step_limit(15, 10**6)
    finished = ms.fit(CapacityLaw, table, finish_steps=3000, **kw)
    assert finished.finished == (polished.best,)
    assert finished.law_converged and finished.train_metrics["mre"] < 1e-4
    assert finished.steps[polished.best] > 20 and "finish_s" in finished.timings
    assert not finished.at_step_limit(15, 5, 3000)  # it converged within the finish
    rest = [r for r in range(4) if r != polished.best]
    np.testing.assert_array_equal(finished.objectives[rest], polished.objectives[rest])
    np.testing.assert_array_equal(finished.steps[rest], polished.steps[rest])
    assert finished.objective < polished.objective
    with pytest.raises(ValueError, match="finish_steps"):
        ms.fit(CapacityLaw, table, finish_steps=-1)
    with pytest.raises(ValueError, match="finish_steps"):
        ms.fit(CapacityLaw, table, method="lbfgs", finish_steps=10)


def test_finish_of_a_law_fitted_per_target_continues_each_targets_choice(rng):
    """One problem per target: the finish continues each target's chosen restart that is
    still capped after the polish (no other), and the combined law converges."""
    table = _table(_planted(), rng)
    kw = dict(n_restarts=6, seed=0, chunk=3, nested=False, max_steps=6, polish_steps=4)
    polished = ms.fit("additive", table, **kw)
    assert not polished.law_converged
    finished = ms.fit("additive", table, finish_steps=5000, **kw)
    assert finished.law_converged and finished.objective <= polished.objective
    chosen = set(polished.per_target_restarts)
    assert finished.finished and set(finished.finished) <= chosen
    assert set(finished.per_target_restarts) <= set(finished.finished) | set(
        np.flatnonzero(polished.converged).tolist())


def test_narrower_width_halves_at_least_and_holds_every_running_restart():
    from mixscale._lm import narrower_width

    got = {n: narrower_width(n, 16) for n in range(1, 17)}
    assert got == {1: 1, 2: 2, 3: 4, 4: 4, 5: 8, 6: 8, 7: 8, 8: 8,
                   **{n: 16 for n in range(9, 17)}}
    assert narrower_width(1, 1) == 1 and narrower_width(2, 3) == 3 and narrower_width(1, 3) == 1


def test_a_shrinking_batch_ends_every_restart_where_the_full_one_does(rng):
    """Restarts that stop at different steps, on a batch that narrows as they stop
    (``shrink_batch``): every restart ends at the same objective (to rounding), with the same
    steps and convergence flags, the same best law; the polish on a narrowing batch too."""
    import mixscale._lm

    table = _table(_planted(), rng)
    kw = dict(n_restarts=6, seed=3, chunk=4, nested=False, max_steps=15, polish_steps=3000)
    shrunk = []

    def narrower(n_live, width, plain=mixscale._lm.narrower_width):
        out = plain(n_live, width)
        shrunk.extend([(width, out)] if out < width else [])
        return out

    full = ms.fit(CapacityLaw, table, **kw)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mixscale._lm, "narrower_width", narrower)
        narrow = ms.fit(CapacityLaw, table, shrink_batch=True, **kw)
    # the restarts' batch narrowed (4 -> 2 slots), and so did the polish's (4 -> 1)
    assert shrunk == [(4, 2), (4, 1)] and len(full.polished) == 4
    assert len(set(full.steps.tolist())) > 2  # the restarts stop at different steps
    np.testing.assert_allclose(narrow.objectives, full.objectives, rtol=1e-9)
    np.testing.assert_array_equal(narrow.steps, full.steps)
    np.testing.assert_array_equal(narrow.converged, full.converged)
    assert narrow.best == full.best and narrow.polished == full.polished
    with pytest.raises(TypeError, match="shrink_batch"):
        ms.fit(CapacityLaw, table, n_restarts=1, shrink_batch="yes")
    with pytest.raises(ValueError, match="shrink_batch"):
        ms.fit(CapacityLaw, table, n_restarts=1, method="lbfgs", shrink_batch=True)


def test_polish_of_a_law_fitted_per_target_reaches_every_targets_choice(rng):
    """One problem per target: each target's chosen restart that stopped at the cap is among
    those continued, so the combined law converges."""
    table = _table(_planted(), rng)
    kw = dict(n_restarts=6, seed=0, chunk=3, nested=False, max_steps=6)
    capped = ms.fit("additive", table, **kw)
    assert not capped.law_converged
    polished = ms.fit("additive", table, polish_steps=5000, **kw)
    assert polished.law_converged
    assert polished.objective <= capped.objective
    assert set(polished.per_target_restarts) <= set(polished.polished) | set(
        np.flatnonzero(capped.converged).tolist())


def test_kink_continuation_lowers_a_fit_stuck_on_the_allocation_floor(keep_compiled_programs):
    """The capacity-only law on Pile-4 (2 restarts): the best restart stops early, unconverged,
    with a domain's unconstrained allocation on the head floor in some run (the allocation's
    kink). The continuation through smoothed allocations lowers it by more than 5 % and ends
    at a point that passes the gradient test; the other restart is left as it was. Its six
    smoothed stages share one compiled solver (the temperature is a value of the law)."""
    from mixscale import LawSpec
    from mixscale.data import load

    table = select(load("pile4"), model_size=200.0, tokens=8.0)
    table = table.select_losses(list(table.in_mixture))
    spec = LawSpec("capacity", variant="capacity")
    stuck = ms.fit(spec, table, n_restarts=2, seed=0)
    law = stuck.law
    assert not stuck.law_converged and stuck.steps[stuck.best] < 1000
    gaps = [np.min(np.abs(np.asarray(law.kink_gaps(h, float(n), float(d)))))
            for h, n, d in zip(table.weights, table.model_size, table.tokens, strict=True)]
    assert min(gaps) < 1e-6  # on the kink
    traced = num_traces(lm_advance)
    smoothed = ms.fit(spec, table, n_restarts=2, seed=0, smooth_kinks=True)
    assert num_traces(lm_advance) == traced + 1  # the one-slot stages; the exact stage reuses
    assert smoothed.kink_smoothed and smoothed.best == stuck.best
    assert smoothed.objective < 0.95 * stuck.objective and smoothed.law_converged
    other = 1 - stuck.best
    assert smoothed.objectives[other] == stuck.objectives[other]
    assert "kink_smoothing_s" in smoothed.timings and not stuck.kink_smoothed


@pytest.mark.parametrize("label", ["capacity (full)", "capacity (capacity)", "spectral (full)",
                                   "spectral (transfer)"])
def test_a_temperature_given_as_a_value_smooths_as_the_number_and_compiles_once(label, rng):
    """``law.smoothed(jnp.asarray(τ))`` predicts what ``law.smoothed(τ)`` does (to rounding),
    with one compiled program for every τ; the fitter keeps that τ out of the fitted
    parameters; a 0-d array must be a positive float."""
    import jax.numpy as jnp

    from mixscale import LawSpec
    from mixscale._fit import _temperature_filter
    from mixscale.laws import DataSummary

    spec = LawSpec.parse(label)
    law = spec.init(jax.random.key(1), DataSummary(("a", "b", "c"), ("a", "b", "c"),
                                                   np.full(3, 2.0), np.full(3, 3.0),
                                                   (10.0, 40.0), (1.0, 5.0)))
    h = jnp.asarray(np.vstack([rng.dirichlet(np.ones(3), 7), [0.0, 0.3, 0.7]]))
    n, d = jnp.asarray(rng.uniform(5, 50, 8)), jnp.asarray(rng.uniform(1, 10, 8))
    calls = []

    @eqx.filter_jit
    def predict(smoothed):
        calls.append(1)
        return jax.vmap(smoothed.predict)(h, n, d)

    for tau in (1e-2, 1e-4):
        as_value = np.asarray(predict(law.smoothed(jnp.asarray(tau))))
        np.testing.assert_allclose(as_value, np.asarray(jax.vmap(law.smoothed(tau).predict)(
            h, n, d)), rtol=1e-12)
        assert np.all(np.isfinite(as_value))
    assert len(calls) == 1
    filt = _temperature_filter(law)
    params, _ = eqx.partition(law.smoothed(jnp.asarray(1e-3)), filt)
    assert (jax.tree_util.tree_structure(params)
            == jax.tree_util.tree_structure(eqx.filter(law, eqx.is_inexact_array)))
    for bad in (jnp.asarray(0.0), jnp.ones(2), jnp.asarray(1)):
        with pytest.raises(ValueError, match="smoothing"):
            law.smoothed(bad)


def test_lbfgs_compiles_once(rng, keep_compiled_programs):
    law = _planted()
    ms.fit(CapacityLaw, _table(law, rng), n_restarts=3, seed=0, chunk=2, method="lbfgs",
           max_steps=10, nested=False)
    assert num_traces(lbfgs_batch) >= 1
    with assert_no_retrace(lbfgs_batch):
        ms.fit(CapacityLaw, _table(law, rng), n_restarts=3, seed=1, chunk=2, method="lbfgs",
               max_steps=10, nested=False)
        ms.fit(CapacityLaw, _table(law, rng), n_restarts=3, seed=1, chunk=2, method="lbfgs",
               max_steps=12, rtol=1e-6, nested=False)  # run-time values: no new program


def test_evaluate_reproduces_the_fit_metrics_and_checks_its_targets(rng):
    law = _planted()
    table, valid = _table(law, rng), _table(law, rng)
    res = ms.fit(CapacityLaw, table, validation=valid, n_restarts=2, seed=0, max_steps=30,
                 nested=False)
    again = ms.evaluate(res.law, valid, res.targets, res.train_domains, res.size_unit,
                        res.token_unit)
    same = res.evaluate(valid)
    assert again.keys() == same.keys() and np.isnan(again["mre_absent"])  # no h_i = 0 here
    assert all(again[k] == same[k] or (np.isnan(again[k]) and np.isnan(same[k]))
               for k in again)
    assert again["mre"] == res.validation_metrics["mre"]
    np.testing.assert_array_equal(res.predict(valid), ms.predict_table(
        res.law, valid, res.train_domains, res.size_unit, res.token_unit))
    with pytest.raises(ValueError, match="targets"):
        ms.evaluate(res.law, valid, res.targets[:2], res.train_domains, 1.0, 1.0)
    with pytest.raises(TableError, match="units"):
        ms.evaluate(res.law, valid, res.targets, res.train_domains, 2.0, 1.0)
    with pytest.raises(TypeError, match="law instance"):
        ms.evaluate(res, valid, res.targets, res.train_domains, 1.0, 1.0)


def test_error_metrics_by_own_weight_class(rng):
    """``mre_high_weight`` and ``mre_absent`` are the plain means of the relative errors over the
    observed entries whose own weight is at least 0.1, and exactly 0 (missing measurements and
    out-of-mixture targets, ``NaN`` weights, in neither); NaN when a class is empty."""
    obs = rng.uniform(1.0, 3.0, size=(12, 3))
    pred = obs * (1 + rng.normal(0, 0.05, size=obs.shape))
    weight = rng.choice([0.0, 0.02, 0.1, 0.5], size=obs.shape)
    weight[:, 2] = np.nan                        # an out-of-mixture target
    obs[0, 0] = np.nan                           # a missing measurement
    m = ms.error_metrics(pred, obs, ("a", "b", "c"), own_weight=weight)
    rel = np.abs(pred / obs - 1)
    seen = np.isfinite(obs)
    for key, cls in (("mre_high_weight", weight >= 0.1), ("mre_absent", weight == 0.0)):
        pick = seen & cls
        assert m[key] == pytest.approx(rel[pick].mean(), rel=1e-12)
        assert m["n_" + key.removeprefix("mre_")] == pick.sum() > 0
    none = ms.error_metrics(pred, obs, ("a", "b", "c"), own_weight=np.full(obs.shape, 0.3))
    assert np.isnan(none["mre_absent"]) and none["n_absent"] == 0


def test_progress_reports_the_objective_of_the_result(rng):
    seen = []
    res = ms.fit(CapacityLaw, _table(_planted(), rng), n_restarts=2, seed=0, max_steps=30,
                 progress=seen.append)
    # the two random restarts and the two nested variants' embeddings (tied, capacity-only)
    assert [p.done for p in seen][-1] == len(res.objectives) == 4
    assert seen[-1].n_restarts == 4
    assert seen[-1].best_objective == np.min(res.objectives)


def test_out_of_mixture_targets_are_left_out_with_a_note(rng):
    law = _planted()
    table = _table(law, rng, loss_domains=DOMAINS + ("ood",),
                   extra=lambda n: np.full((n, 1), 2.0))
    res = ms.fit(CapacityLaw, table, n_restarts=2, seed=0, max_steps=50, nested=False)
    assert res.targets == DOMAINS
    assert any("ood" in note for note in res.notes)


def test_tied_variant_recovers_its_own_planted_law(rng):
    law = CapacityLaw.from_params(alpha=[1.3, 1.6, 1.45], beta=0.3, kappa=0.5, H=0.8,
                                  A=[0.5, 0.3, 0.45], E=[1.0, 1.5, 0.8], variant="tied")
    res = ms.fit(CapacityLaw, _table(law, rng), law_options={"variant": "tied"},
                 n_restarts=8, seed=0)
    assert res.train_metrics["mre"] < 1e-4
    assert res.n_params == 3 * 3 + 3


def test_bad_arguments_are_refused(rng):
    table = _table(_planted(), rng, n=12)
    with pytest.raises(ValueError, match="no options"):
        ms.fit(CapacityLaw, table, law_options={"colour": "red"})
    with pytest.raises(ValueError, match="unknown method"):
        ms.fit(CapacityLaw, table, method="newton")
    with pytest.raises(ValueError, match="polish_steps"):
        ms.fit(CapacityLaw, table, polish_steps=-1)
    with pytest.raises(ValueError, match="polish_steps"):
        ms.fit(CapacityLaw, table, method="lbfgs", polish_steps=10)
    with pytest.raises(ValueError, match="smooth_kinks"):
        ms.fit(CapacityLaw, table, method="lbfgs", smooth_kinks=True)
    with pytest.raises(TypeError, match="smooth_kinks"):
        ms.fit(CapacityLaw, table, smooth_kinks="yes")
    other = LossTable(weights=np.full((2, 2), 0.5), model_size=np.ones(2), tokens=np.ones(2),
                      losses=np.ones((2, 2)), train_domains=("x", "y"), loss_domains=("x", "y"))
    with pytest.raises(TableError, match="training domains"):
        ms.fit(CapacityLaw, table, validation=other)
    none = LossTable(weights=np.full((2, 2), 0.5), model_size=np.ones(2), tokens=np.ones(2),
                     losses=np.ones((2, 1)), train_domains=("x", "y"), loss_domains=("z",))
    with pytest.raises(TableError, match="can predict none"):
        ms.fit(CapacityLaw, none)



def test_a_fit_with_no_more_losses_than_parameters_says_so(rng):
    """The joint law has 4K + 5 = 17 parameters per target at K = 3: with 17 observed losses of
    a target it can interpolate them, and the note says so (per target: every joint parameter
    belongs to one); with 18 it does not. The capacity law (shared parameters) is judged on the
    whole table, and the note reaches the fit's result."""
    from mixscale._fit import _underdetermined_notes
    from mixscale.laws import JointLaw

    summary = ms.laws.DataSummary(DOMAINS, DOMAINS, np.full(3, 2.0), np.full(3, 3.0),
                                  (20.0, 180.0), (1.0, 16.0))
    params = eqx.filter(JointLaw.init(jax.random.key(0), summary), eqx.is_inexact_array)
    observed = np.ones((18, 3), bool)
    assert _underdetermined_notes(JointLaw, params, DOMAINS, observed) == []
    observed[0, 1] = False  # target b: 17 losses for 17 parameters
    (note,) = _underdetermined_notes(JointLaw, params, DOMAINS, observed)
    assert "17 parameters per target" in note and "['b']" in note and "interpolate" in note
    tiny = _table(_planted(), rng, n=5)  # 15 losses for 16 parameters
    notes = ms.fit(CapacityLaw, tiny, n_restarts=1, seed=0, max_steps=2, nested=False).notes
    assert any("16 parameters for 15 observed losses" in n for n in notes), notes
    assert not any("not measured" in n for n in notes), notes
    # one loss not measured: masked, counted, and said to be left out
    losses = tiny.losses.copy()
    losses[0, 1] = np.nan
    notes = ms.fit(CapacityLaw, dataclasses.replace(tiny, losses=losses), n_restarts=1, seed=0,
                   max_steps=2, nested=False).notes
    assert any("16 parameters for 14 observed losses" in n for n in notes), notes
    assert f"1 of 15 target losses are not measured ({tiny.loss_domains[1]} 1); the fit leaves " \
        "them out" in notes, notes


def test_a_slow_fit_reports_progress_before_any_restart_stops(rng, monkeypatch):
    """Progress comes after a segment in which a restart stopped, and also after any segment
    that ends HEARTBEAT_S seconds after the last report (here 0: after every segment), so a
    fit whose steps are slow is seen to be alive."""
    import mixscale._lm as lm

    table = _table(_planted(), rng)
    options = dict(n_restarts=1, seed=0, nested=False)
    monkeypatch.setattr(lm, "SEGMENT", 4)  # short segments: the restart spans several
    # no heartbeat: on a loaded machine a segment (the first one compiles) can outlast the
    # default HEARTBEAT_S and add a report this check does not expect
    monkeypatch.setattr(lm, "HEARTBEAT_S", float("inf"))
    quiet = []
    ms.fit(CapacityLaw, table, progress=quiet.append, **options)
    monkeypatch.setattr(lm, "HEARTBEAT_S", 0.0)
    seen = []
    res = ms.fit(CapacityLaw, table, progress=seen.append, **options)
    segments = -(-int(res.steps[0]) // lm.SEGMENT)
    assert int(res.steps[0]) > lm.SEGMENT  # the restart outlives its first segment
    assert [p.done for p in quiet] == [0, 1]  # start, then the one restart stopping
    assert [p.done for p in seen] == [0] + [0] * (segments - 1) + [1]


def test_compiled_programs_are_released_near_the_mapping_limit(monkeypatch):
    """Past half of the kernel's memory-mapping limit, fit's guard clears JAX's compiled
    programs (a long session would otherwise crash in the compiler); below it, nothing."""
    import jax.numpy as jnp

    import mixscale._memory as memory

    real = memory.memory_mappings()  # (used, limit) on Linux, None elsewhere
    assert real is None or 0 < real[0] < real[1]
    square = jax.jit(lambda x: x * x)
    square(jnp.ones(3))
    assert square._cache_size() == 1
    monkeypatch.setattr(memory, "memory_mappings", lambda: (30000, 65530))
    assert not memory.release_compiled_programs() and square._cache_size() == 1
    monkeypatch.setattr(memory, "memory_mappings", lambda: (40000, 65530))
    assert memory.release_compiled_programs() and square._cache_size() == 0
    monkeypatch.setattr(memory, "memory_mappings", lambda: None)  # unreadable: nothing
    square(jnp.ones(3))
    assert not memory.release_compiled_programs() and square._cache_size() == 1
    assert memory.release_compiled_programs(if_unknown=True) and square._cache_size() == 0


def test_a_fit_on_one_model_size_or_token_budget_says_its_scale_terms_are_not_identified(rng):
    """A law with scale terms fitted on one model size (token budget) gets a note naming the
    axis it cannot extrapolate along; a table with two of each gets none; a law without scale
    terms gets none either; the note reaches the fit's result."""
    from mixscale._fit import _one_scale_notes
    from mixscale.laws import DataMixingLaw

    law = _planted()
    weights = rng.dirichlet(np.ones(3), 12)
    size = np.where(np.arange(12) % 2, 60.0, 20.0)
    tokens = np.where(np.arange(12) % 3, 4.0, 16.0)
    both = LossTable(weights=weights, model_size=size, tokens=tokens,
                     losses=predict_in_blocks(law, weights, size, tokens), train_domains=DOMAINS,
                     loss_domains=DOMAINS)
    one_size = select(both, model_size=60.0)
    one_each = select(one_size, tokens=4.0)
    assert _one_scale_notes(CapacityLaw, both) == []
    (note,) = _one_scale_notes(CapacityLaw, one_size)
    assert "one model size (6e+07)" in note and "'capacity'" in note and "other sizes" in note
    assert [n.split(" (")[0] for n in _one_scale_notes(CapacityLaw, one_each)] == [
        "every row has one model size", "every row has one token budget"]
    assert _one_scale_notes(DataMixingLaw, one_each) == []
    res = ms.fit(CapacityLaw, one_size, n_restarts=1, seed=0, max_steps=2, nested=False)
    assert note in res.notes


def test_a_target_never_measured_is_refused_with_the_remedy(rng):
    """A loss column without one measured value cannot fit the law's parameters of that target:
    refused before any work, naming the target and how to fit the others."""
    weights = rng.dirichlet(np.ones(3), 8)
    losses = predict_in_blocks(_planted(), weights, np.full(8, 60.0), np.full(8, 4.0))
    losses[:, 1] = np.nan
    table = LossTable(weights=weights, model_size=np.full(8, 60.0), tokens=np.full(8, 4.0),
                      losses=losses, train_domains=DOMAINS, loss_domains=DOMAINS)
    with pytest.raises(TableError, match=r"targets \['b'\] have no observed loss.*leave their "
                                         r"loss columns out"):
        ms.fit(CapacityLaw, table, n_restarts=1)



def test_a_validation_table_it_could_not_score_is_refused_before_any_restart(rng):
    """A validation table without a target's loss column, or with none of the targets'
    losses measured, is refused before the restarts run (before, the whole fit ran first and
    its end raised): the progress callback never hears of a restart."""
    table = _table(_planted(), rng, n=12)
    calls = []
    lacking = table.take(np.arange(5)).select_losses(["a", "b"])
    unmeasured = dataclasses.replace(table.take(np.arange(5)),
                                     losses=np.full((5, 3), np.nan))
    for validation, match in ((lacking, r"no loss columns for the law's targets \['c'\]"),
                              (unmeasured, "has a measured loss in its 5 runs")):
        with pytest.raises(TableError, match=match):
            ms.fit(CapacityLaw, table, validation=validation, n_restarts=2,
                   progress=calls.append)
    assert calls == []

def test_a_training_domain_never_trained_is_named_in_a_note(rng):
    """A training domain whose weight is 0 in every run gets a note (its weight's effect is not
    in the data); one with weight in a single run gets none. The note reaches the fit."""
    from mixscale._fit import _unexplored_domain_notes

    law = _planted()
    weights = np.column_stack([rng.dirichlet(np.ones(2), 12), np.zeros(12)])
    size, tokens = np.full(12, 60.0), np.full(12, 4.0)
    table = LossTable(weights=weights, model_size=size, tokens=tokens,
                      losses=predict_in_blocks(law, weights, size, tokens),
                      train_domains=DOMAINS, loss_domains=DOMAINS)
    (note,) = _unexplored_domain_notes(table)
    assert f"[{DOMAINS[2]!r}] have weight 0 in every run" in note
    once = weights.copy()
    once[0] = [0.5, 0.25, 0.25]
    assert _unexplored_domain_notes(LossTable(
        weights=once, model_size=size, tokens=tokens, losses=table.losses,
        train_domains=DOMAINS, loss_domains=DOMAINS)) == []
    res = ms.fit("regression", table, n_restarts=1, seed=0, max_steps=2, nested=False)
    assert note in res.notes


def test_repeated_runs_are_counted_in_a_note(rng):
    """Rows that repeat a run's mixture, size and tokens are counted, and those with the same
    losses too (a table concatenated twice) said apart; a table without repeats gets no note."""
    from mixscale._fit import _duplicate_run_notes

    table = _table(_planted(), rng, n=6)
    assert _duplicate_run_notes(table) == []
    twice = table.take(np.r_[np.arange(6), 0, 1, 2])
    losses = twice.losses.copy()
    losses[8] *= 1.01  # row 2 again, from another seed
    (note,) = _duplicate_run_notes(dataclasses.replace(twice, losses=losses))
    assert note.startswith("3 run(s) repeat another's mixture, size and tokens (2 with the "
                           "same losses too)"), note
