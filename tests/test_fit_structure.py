"""The fitter's use of a law's structure: per-target problems solved independently, and
parameter ranges kept and reported."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mixscale
from mixscale import CapacityLaw, LawSpec
from mixscale._evaluate import predict_in_blocks
from mixscale._lm import solve_lm
from mixscale._objective import prepare_data
from mixscale.data import LossTable

DOMAINS = ("a", "b", "c")


def _table(law, rng, n_mix=12, name="planted"):
    h = rng.dirichlet(np.ones(3), size=n_mix)
    pairs = [(n, d) for n in (10.0, 40.0) for d in (1.0, 5.0)]
    w = np.repeat(h, len(pairs), axis=0)
    nd = np.tile(np.array(pairs), (n_mix, 1))
    y = predict_in_blocks(law, w, nd[:, 0], nd[:, 1])
    return LossTable(weights=w, model_size=nd[:, 0], tokens=nd[:, 1], losses=y,
                     train_domains=DOMAINS, loss_domains=DOMAINS, name=name)


def test_separable_law_fits_each_target_as_its_own_problem(rng):
    """With no shared parameter every target has its own damping and stopping rule: two
    restarts that start alike on target ``a`` (and differently elsewhere) end alike on it."""
    summary = mixscale.laws.DataSummary(DOMAINS, DOMAINS, np.full(3, 2.0), np.full(3, 3.0),
                                        (10.0, 40.0), (1.0, 5.0))
    spec = LawSpec("bimix")
    table = _table(spec.init(jax.random.key(5), summary), rng)
    noisy = dataclasses.replace(table, losses=table.losses * (1 + 0.01 * rng.standard_normal(
        table.losses.shape)))
    laws = [spec.init(jax.random.key(k), summary) for k in (1, 2)]
    # restart 1 takes restart 0's parameters of target a
    laws[1] = jax.tree_util.tree_map(lambda x, y: y.at[0].set(x[0]) if eqx.is_inexact_array(y)
                                     else y, laws[0], laws[1])
    batch = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *laws)
    params, static = eqx.partition(batch, eqx.is_inexact_array)
    _, data = prepare_data(noisy, DOMAINS)
    sol = solve_lm(params, static, data, jnp.asarray(0.02), 1e-8, 200, 2,
                   per_target_fields=spec.law_class.per_target_fields)
    for leaf in jax.tree_util.tree_leaves(sol.params):
        assert leaf[0, 0] == leaf[1, 0]                      # target a: the same iterates
    assert any(leaf[0, 1] != leaf[1, 1] for leaf in jax.tree_util.tree_leaves(sol.params))


def test_fits_keep_to_the_parameter_ranges_and_count_bounds(rng):
    """A planted capacity law with an exponent beyond the range (b = 5 > 3): the fit stops on
    the bound, says so, and stays inside every range."""
    planted = CapacityLaw.from_params(b=[5.0, 0.4, 0.6], c=[2.0, 1.5, 1.0], H=2.0,
                                      A=[0.5, 0.3, 0.4], a=[0.3, 0.4, 0.5], E=[1.0, 1.5, 0.8])
    table = _table(planted, rng)
    res = mixscale.fit("capacity", table, n_restarts=4, seed=0, nested=False)
    b = np.asarray(res.law.b)
    assert np.all(b <= 3.0 * (1 + 1e-12)) and np.all(b >= 0.01 * (1 - 1e-12))
    assert 0.01 * 10.0 * (1 - 1e-12) <= float(res.law.H) <= 10.0 * (1 + 1e-12)
    assert res.at_bounds >= 1
    free = mixscale.fit("capacity", table, n_restarts=4, seed=0, use_bounds=False,
                         nested=False)
    assert free.at_bounds == 0
    assert free.objectives[free.best] <= res.objectives[res.best]


def test_a_parameter_one_model_size_cannot_identify_is_pinned(rng):
    """The coupled variant's ``θ`` (data term at ``N^θ D`` tokens) is a flat direction when
    every row has one model size: its range collapses to ``[0, 0]`` there, the fit keeps ``θ = 0``
    exactly (counted as on its bound), and the range is ``[0, 1]`` with two sizes."""
    planted = CapacityLaw.from_params(
        variant="coupled", b=[0.5, 0.4, 0.6], c=[2.0, 1.5, 1.0], H=2.0, A=[0.5, 0.3, 0.4],
        a=[0.3, 0.4, 0.5], E=[1.0, 1.5, 0.8], eta=0.05, gamma=0.5, p=[0.3, 0.5, 0.2], q=2.0,
        theta=0.2)
    table = _table(planted, rng)
    one_size = mixscale.data.select(table, model_size=40.0)
    summary = mixscale.laws.DataSummary(DOMAINS, DOMAINS, np.ones(3), np.ones(3),
                                        (40.0, 40.0), (1.0, 5.0))
    assert CapacityLaw.parameter_bounds(summary, variant="coupled")["theta"] == (0.0, 0.0)
    two = dataclasses.replace(summary, model_size=(10.0, 40.0))
    assert CapacityLaw.parameter_bounds(two, variant="coupled")["theta"] == (0.0, 1.0)
    res = mixscale.fit(LawSpec("capacity", variant="coupled"), one_size, n_restarts=3, seed=0,
                       nested=False, max_steps=60)
    assert float(res.law.theta) == 0.0
    assert res.at_bounds >= 1


def test_structure_does_not_change_the_optimum(rng):
    """The structured and the dense solver reach the same planted optimum."""
    spec = LawSpec("capacity")
    planted = CapacityLaw.from_params(b=[0.3, 0.4, 0.6], c=[2.0, 1.5, 1.0], H=1.0,
                                      A=[0.5, 0.3, 0.4], a=[0.3, 0.4, 0.5], E=[1.0, 1.5, 0.8])
    table = _table(planted, rng)
    fits = [mixscale.fit(spec, table, n_restarts=8, seed=0, use_structure=s, nested=False)
            for s in (True, False)]
    for res in fits:
        assert res.train_metrics["mre"] < 1e-6
    p = [eqx.filter(r.law, eqx.is_inexact_array) for r in fits]
    np.testing.assert_allclose(np.asarray(fits[0].law.b), np.asarray(fits[1].law.b), rtol=1e-5)
    assert jax.tree_util.tree_structure(p[0]) == jax.tree_util.tree_structure(p[1])


def test_full_law_started_from_its_nested_variants_never_ends_above_them(rng):
    """Capacity-only and tied are nested in the full law: ``fit`` fits them first and starts
    the full law from their embeddings (``CapacityLaw.embed``), so the full fit's training
    objective is at most theirs; the result passes the gradient test, and refitting from its
    own best changes the objective by less than 1e-6 relative."""
    planted = CapacityLaw.from_params(b=[0.3, 0.4, 0.6], c=[2.0, 1.5, 1.0], H=1.0,
                                      A=[0.5, 0.3, 0.4], a=[0.3, 0.4, 0.5], E=[1.0, 1.5, 0.8])
    table = _table(planted, rng)
    table = dataclasses.replace(table, losses=table.losses * (1 + 0.02 * rng.standard_normal(
        table.losses.shape)))
    nested = {v: mixscale.fit("capacity", table, law_options={"variant": v}, n_restarts=1,
                              seed=0) for v in ("tied", "capacity")}
    # the embedding keeps the predictions: exactly for tied, to 1e-7 for capacity-only
    h = jnp.asarray(table.weights[:3])
    for res, tol in zip(nested.values(), (1e-12, 1e-7), strict=True):
        law = res.law.embed("full")
        np.testing.assert_allclose(
            np.asarray(jax.vmap(law.predict)(h, table.model_size[:3], table.tokens[:3])),
            np.asarray(jax.vmap(res.law.predict)(h, table.model_size[:3], table.tokens[:3])),
            rtol=tol)
    full = mixscale.fit("capacity", table, n_restarts=4, seed=0)   # nested: 4 // 4 restarts
    assert len(full.objectives) == 6                      # 4 random + 2 nested starts
    assert full.nested_objectives == {res.spec.label: res.objective for res in nested.values()}
    for res in nested.values():
        assert full.objective <= res.objective * (1 + 1e-9)
    assert full.law_converged and full.converged[full.best]
    assert full.gradient_cosines[full.best] <= mixscale._lm.GTOL
    again = mixscale.fit("capacity", table, n_restarts=1, seed=0, starts=[full.law],
                         nested=False)
    assert again.objectives[1] >= full.objective * (1 - 1e-6)
    # Without nested starts the same two random restarts may end anywhere: the option is off.
    alone = mixscale.fit("capacity", table, n_restarts=2, seed=0, nested=False)
    assert len(alone.objectives) == 2 and alone.nested_objectives == {}
    # Fits of the nested variants given by the caller are the nested starts, not refitted:
    # the two embedded starts end at most at the given fits' objectives.
    given = {res.spec.label: res for res in nested.values()}
    reused = mixscale.fit("capacity", table, n_restarts=1, seed=0, nested=given)
    assert len(reused.objectives) == 3 and reused.nested_objectives == full.nested_objectives
    for res, start in zip(nested.values(), reused.objectives[1:], strict=True):
        assert start <= res.objective * (1 + 1e-7)
    assert reused.objective <= min(r.objective for r in nested.values()) * (1 + 1e-9)
    # ... and must be fits of a nested variant on these rows.
    with pytest.raises(ValueError, match="not a variant nested in 'capacity \\(full\\)'"):
        mixscale.fit("capacity", table, n_restarts=1, nested={"capacity (full)": full})
    with pytest.raises(ValueError, match="it is a fit of 'capacity \\(tied\\)'"):
        mixscale.fit("capacity", table, n_restarts=1,
                     nested={"capacity (capacity)": given["capacity (tied)"]})
    with pytest.raises(ValueError, match="observed losses"):
        mixscale.fit("capacity", table.take(np.arange(table.n_runs - 1)), n_restarts=1,
                     nested=given)
    with pytest.raises(TypeError, match="nested must be"):
        mixscale.fit("capacity", table, n_restarts=1, nested="tied")


def test_gradient_test_decides_convergence(rng):
    """A restart cut off after a few steps fails the gradient test (not converged), a finished
    one passes it (its cosine is at most ``GTOL``); with ``gtol=None`` the earlier rule
    (stopped = converged) applies."""
    planted = CapacityLaw.from_params(b=[0.3, 0.4, 0.6], c=[2.0, 1.5, 1.0], H=1.0,
                                      A=[0.5, 0.3, 0.4], a=[0.3, 0.4, 0.5], E=[1.0, 1.5, 0.8])
    table = _table(planted, rng)
    short = mixscale.fit("capacity", table, n_restarts=2, seed=0, max_steps=3, nested=False)
    assert not short.converged.any() and not short.law_converged
    assert np.all(short.gradient_cosines > mixscale._lm.GTOL)
    done = mixscale.fit("capacity", table, n_restarts=2, seed=0, nested=False)
    ok = done.converged
    assert ok.any()
    assert np.all(done.gradient_cosines[ok] <= mixscale._lm.GTOL)
    legacy = mixscale.fit("capacity", table, n_restarts=2, seed=0, nested=False, gtol=None)
    assert legacy.converged.any()


def test_starts_of_another_law_are_refused(rng):
    planted = CapacityLaw.from_params(b=[0.3, 0.4, 0.6], c=[2.0, 1.5, 1.0], H=1.0,
                                      A=[0.5, 0.3, 0.4], a=[0.3, 0.4, 0.5], E=[1.0, 1.5, 0.8])
    table = _table(planted, rng)
    tied = LawSpec("capacity", variant="tied").init(jax.random.key(0), mixscale.laws.DataSummary(
        DOMAINS, DOMAINS, np.full(3, 2.0), np.full(3, 3.0), (10.0, 40.0), (1.0, 5.0)))
    with pytest.raises(ValueError, match="embed a nested variant"):
        mixscale.fit("capacity", table, n_restarts=1, starts=[tied])


def test_separable_fit_takes_each_target_from_its_best_restart(rng):
    """One problem per target: the law combines, per target, the restart that fitted it best,
    so its objective is the sum of the per-target minima (at most the best single restart's)."""
    summary = mixscale.laws.DataSummary(DOMAINS, DOMAINS, np.full(3, 2.0), np.full(3, 3.0),
                                        (10.0, 40.0), (1.0, 5.0))
    table = _table(LawSpec("additive").init(jax.random.key(7), summary), rng)
    table = dataclasses.replace(table, losses=table.losses * (1 + 0.01 * rng.standard_normal(
        table.losses.shape)))
    res = mixscale.fit("additive", table, n_restarts=6, seed=0, max_steps=30)
    assert res.per_target_restarts is not None and len(res.per_target_restarts) == 3
    dense = mixscale.fit("additive", table, n_restarts=6, seed=0, max_steps=30,
                         use_structure=False)
    assert dense.per_target_restarts is None
    from mixscale._objective import objective, prepare_data

    _, data = prepare_data(table, DOMAINS)
    params, static = eqx.partition(res.law, eqx.is_inexact_array)
    combined = float(objective(params, static, data, jnp.asarray(0.02)))
    assert combined <= res.objectives[res.best] * (1 + 1e-12)


def test_geodesic_acceleration_is_the_second_order_correction():
    """``_accelerate`` on residuals with a known second derivative: ``r(p) = (p₀² − 1,
    p₀p₁ − 2, p₁² − 3)``, whose ``r''`` along ``v`` is ``(2v₀², 2v₀v₁, 2v₁²)``; the step is
    ``v + a/2`` with ``a = −(JᵀJ + μ diag s)⁻¹ Jᵀ r''``, and a step whose acceleration is too
    large for its velocity is flagged."""
    from mixscale._blocks import Blocks, factor_normal, solve_factored, solve_normal_equations
    from mixscale._lm import GEODESIC_ALPHA, _accelerate

    def res(p):
        return jnp.stack([p[0] ** 2 - 1.0, p[0] * p[1] - 2.0, p[1] ** 2 - 3.0])

    blocks = Blocks.from_owners(np.full(2, -1), 1)
    p = jnp.asarray([1.3, 0.7])
    jac = jax.jacfwd(res)(p)
    mu = jnp.asarray([0.1])
    v, _, s = solve_normal_equations(jac, res(p), blocks, mu, mu[0])
    factors = factor_normal(jac, blocks, mu, mu[0])
    np.testing.assert_allclose(np.asarray(solve_factored(factors, res(p), blocks)[0]),
                               np.asarray(v), rtol=1e-12)
    step, too_curved = _accelerate(res, p, v, factors, blocks)
    r2 = 2.0 * jnp.stack([v[0] ** 2, v[0] * v[1], v[1] ** 2])
    a = -np.linalg.solve(np.asarray(jac.T @ jac + mu[0] * jnp.diag(s)), np.asarray(jac.T @ r2))
    ratio = 2.0 * np.sqrt(a @ (s * a)) / np.sqrt(v @ (s * v))
    assert bool(too_curved[0]) == (ratio > GEODESIC_ALPHA)
    expected = np.asarray(v) + (0.0 if ratio > GEODESIC_ALPHA else 0.5) * a
    np.testing.assert_allclose(np.asarray(step), expected, rtol=1e-12)
    # a short velocity: the acceleration (quadratic in v) is small beside it, and is applied
    short, curved = _accelerate(res, p, 1e-3 * v, factors, blocks)
    assert not bool(curved[0])
    np.testing.assert_allclose(np.asarray(short), 1e-3 * np.asarray(v) + 0.5e-6 * a, rtol=1e-12)


def test_geodesic_acceleration_reaches_the_same_optimum_in_fewer_steps(rng):
    """A planted joint law (separable, 3 targets): with and without geodesic acceleration the
    fit recovers the planted losses, the accelerated restarts in fewer steps in all."""
    summary = mixscale.laws.DataSummary(DOMAINS, DOMAINS, np.full(3, 2.0), np.full(3, 3.0),
                                        (10.0, 40.0), (1.0, 5.0))
    spec = LawSpec("joint")
    table = _table(spec.init(jax.random.key(3), summary), rng, n_mix=16)
    # two restarts (fit seed 0): unaccelerated they take 1000 and 261 steps, accelerated 244
    # and 70
    plain, fast = (mixscale.fit(spec, table, n_restarts=2, seed=0, nested=False, geodesic=g)
                   for g in (False, True))
    for res in (plain, fast):
        assert res.law_converged and res.train_metrics["mre"] < 1e-6
    assert fast.steps.sum() < plain.steps.sum()
    with pytest.raises(TypeError, match="geodesic"):
        mixscale.fit(spec, table, n_restarts=1, geodesic="yes")
    with pytest.raises(ValueError, match="geodesic"):
        mixscale.fit(spec, table, n_restarts=1, method="lbfgs", geodesic=True)


def _lu_count(jaxpr) -> int:
    """LU factorisations in a jaxpr, sub-jaxprs (loops, vmaps) included."""
    count = 0
    for eqn in jaxpr.eqns:
        count += eqn.primitive.name == "lu"
        for value in eqn.params.values():
            for item in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(item, "jaxpr", None)
                if inner is not None and hasattr(inner, "eqns"):
                    count += _lu_count(inner)
                elif hasattr(item, "eqns"):
                    count += _lu_count(item)
    return count


@pytest.mark.parametrize("law", ["joint", "capacity"])
def test_geodesic_step_factors_the_damped_matrix_once(rng, law):
    """A geodesic step solves two right-hand sides from one factorisation of each damped block:
    no more LU factorisations than the plain step. (Two independent LU factorisations may run at
    once on XLA's CPU pool, where jaxlib's batched LAPACK kernels wait for each other: the fit
    hung at 0 % CPU when the acceleration had its own ``jnp.linalg.solve``.)"""
    from mixscale._blocks import Blocks, parameter_owners
    from mixscale._bounds import bound_trees
    from mixscale._lm import lm_advance, lm_start
    from mixscale._objective import Layout

    summary = mixscale.laws.DataSummary(DOMAINS, DOMAINS, np.full(3, 2.0), np.full(3, 3.0),
                                        (10.0, 40.0), (1.0, 5.0))
    spec = LawSpec(law)
    start = spec.init(jax.random.key(0), summary)
    table = _table(start, rng, n_mix=4)
    params, static = eqx.partition(start, eqx.is_inexact_array)
    _, data = prepare_data(table, DOMAINS)
    layout = Layout.of(params)
    blocks = Blocks.from_owners(parameter_owners(params, spec.law_class.per_target_fields, 3), 3)
    lower, upper = (layout.ravel(b) for b in bound_trees(
        params, spec.law_class.parameter_bounds(summary)))
    flat = layout.ravel(params)[None]
    state = lm_start(flat, static, data, jnp.asarray(0.02), layout, blocks, lower, upper)
    counts = {}
    for geodesic in (False, True):
        jaxpr = eqx.filter_make_jaxpr(lm_advance)(
            state, static, data, jnp.asarray(0.02), layout, blocks, lower, upper, 1e-12, 1e-5,
            10, 5, True, geodesic)[0]
        counts[geodesic] = _lu_count(jaxpr.jaxpr)
    assert counts[False] >= 1
    assert counts[True] == counts[False]


@pytest.mark.parametrize("law, mode", [("additive", None), ("joint", None),
                                       ("capacity", "reverse-own")])
def test_reverse_own_jacobian_of_a_law_equals_forward_mode(rng, monkeypatch, law, mode):
    """The solver's Jacobian by one reverse pass per run (the additive and joint laws' mode;
    the capacity law made to use it, for its shared columns) equals the forward-mode compressed
    Jacobian, on a table with a missing loss and bootstrap row weights."""
    from mixscale._blocks import Blocks, compressed_jacobian, parameter_owners
    from mixscale._lm import _residual_functions
    from mixscale._objective import Layout, Replicate, with_replicate

    spec = LawSpec(law)
    summary = mixscale.laws.DataSummary(DOMAINS, DOMAINS, np.full(3, 2.0), np.full(3, 3.0),
                                        (10.0, 40.0), (1.0, 5.0))
    table = _table(spec.init(jax.random.key(3), summary), rng, n_mix=4)
    losses = table.losses * (1 + 0.03 * rng.standard_normal(table.losses.shape))
    losses[2, 1] = np.nan
    _, data = prepare_data(dataclasses.replace(table, losses=losses), DOMAINS)
    data = with_replicate(data, Replicate(row_weights=jnp.asarray(
        rng.integers(0, 3, size=losses.shape[0]).astype(float))))
    params, static = eqx.partition(spec.init(jax.random.key(4), summary), eqx.is_inexact_array)
    layout = Layout.of(params)
    blocks = Blocks.from_owners(parameter_owners(params, spec.law_class.per_target_fields, 3), 3)
    if mode is not None:
        monkeypatch.setattr(spec.law_class, "row_jacobian", mode)
    assert spec.law_class.row_jacobian == "reverse-own"
    res, linearise, _ = _residual_functions(static, data, jnp.asarray(0.02), layout, blocks)
    p = layout.ravel(params)
    r, jc = jax.jit(linearise)(p)
    r_f, jc_f = jax.jit(lambda q: compressed_jacobian(res, q, blocks))(p)
    assert np.count_nonzero(np.asarray(r) == 0.0) >= 3      # the missing loss, weight-0 rows
    assert np.abs(np.asarray(jc_f)).max() > 1e-3
    np.testing.assert_allclose(np.asarray(r), np.asarray(r_f), rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(np.asarray(jc), np.asarray(jc_f), rtol=1e-11,
                               atol=1e-13 * np.abs(np.asarray(jc_f)).max())


def test_both_modes_take_the_better_of_plain_and_geodesic_restarts(rng):
    """``geodesic="both"`` runs every start plain and accelerated: its restarts are the two
    fits' restarts, in order, and it ends at or below each (per target for a separable law)."""
    spec = LawSpec("additive")
    summary = mixscale.laws.DataSummary(DOMAINS, DOMAINS, np.full(3, 2.0), np.full(3, 3.0),
                                        (10.0, 40.0), (1.0, 5.0))
    table = _table(spec.init(jax.random.key(7), summary), rng, n_mix=6)
    table = dataclasses.replace(table, losses=table.losses * (1 + 0.01 * rng.standard_normal(
        table.losses.shape)))
    kw = dict(n_restarts=3, seed=2, max_steps=60, nested=False)
    plain, accelerated = (mixscale.fit(spec, table, geodesic=g, **kw) for g in (False, True))
    both = mixscale.fit(spec, table, geodesic="both", **kw)
    np.testing.assert_array_equal(both.objectives,
                                  np.concatenate([plain.objectives, accelerated.objectives]))
    np.testing.assert_array_equal(both.steps, np.concatenate([plain.steps, accelerated.steps]))
    assert both.objective <= min(plain.objective, accelerated.objective) * (1 + 1e-12)
    assert both.per_target_restarts is not None and len(both.per_target_restarts) == 3
    with pytest.raises(TypeError, match="geodesic must be True, False or 'both'"):
        mixscale.fit(spec, table, geodesic="always", **kw)
