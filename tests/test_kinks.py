"""The kink certificate (``mixscale/_kinks.py``): Levenberg–Marquardt along a curved kink to its
minimum, certified there by the sampled stationarity measure; not certified where the objective
descends across the kink; and the capacity law's kinks through ``fit``."""

import jax.numpy as jnp
import numpy as np
import pytest

import mixscale as ms
from mixscale import _kinks
from mixscale._kinks import certify_fit, certify_in_passes, certify_kink, kink_side_points
from mixscale._stationarity import clarke_descent, sampled_stationarity


def _gap(p):
    """The kink surface ``y = x²`` (curved, so that steps must follow it)."""
    return jnp.stack([p[1] - p[0] ** 2])


def _v_shaped(p):
    """A V across the kink (slopes +2 above, −1 below: the valley's floor is on the kink) and a
    pull along it towards ``x = 1``, and a constant residual: the minimum is ``(1, 1)``, on the
    kink, with ``f = 1/8``."""
    z = _gap(p)[0]
    return jnp.stack([jnp.maximum(2.0 * z, -z), p[0] - 1.0, 0.5 + 0.0 * p[0]])


def _one_sided(p):
    """Slopes +1 and +0.5 across the kink: the objective falls below it, so no point of the
    kink is stationary."""
    z = _gap(p)[0]
    return jnp.stack([1.0 + jnp.maximum(z, 0.5 * z), p[0] - 1.0])


def test_follows_a_curved_kink_to_its_minimum_and_certifies_it():
    start = np.array([0.3, 0.09])                     # on the kink, far from the minimum
    assert sampled_stationarity(_v_shaped, start) > 0.1
    cert = certify_kink(_v_shaped, _gap, start)
    np.testing.assert_allclose(cert.params, [1.0, 1.0], atol=1e-6)
    assert cert.certified and cert.sigma <= 1e-5 and cert.active_kinks == 1
    assert cert.objective == pytest.approx(0.125, abs=1e-12) and cert.start_objective > 0.3
    assert abs(float(_gap(jnp.asarray(cert.params))[0])) < 1e-12   # still on the kink


def test_a_kink_the_objective_descends_across_is_left_for_the_minimum_beyond_it():
    # along the kink the objective falls to x = 1, but across it, below, it still falls: no
    # point of the kink is stationary, and the certificate leaves it along the sampled
    # gradients' descent direction for the minimum below it, z = y − x² = −2 at x = 1, where
    # the fit is exact
    on_kink = np.array([1.0, 1.0])
    assert sampled_stationarity(_one_sided, on_kink) > 0.1
    cert = certify_kink(_one_sided, _gap, np.array([0.3, 0.09]))
    assert cert.escapes >= 1 and cert.active_kinks == 0
    np.testing.assert_allclose(cert.params, [1.0, -1.0], atol=1e-6)
    assert cert.objective < 1e-20 and cert.certified


def test_an_exact_fit_on_a_kink_is_certified_as_the_gradient_test_passes_it():
    # no constant residual: the minimum fits exactly, where the cosine is rounding noise
    cert = certify_kink(lambda p: _v_shaped(p)[:2], _gap, np.array([0.3, 0.09]))
    assert cert.objective < 1e-20 and cert.certified and cert.sigma == 0.0


def test_a_range_bound_holds_a_parameter():
    # x may not pass 0.5: the minimum along the kink within the box is at x = 0.5, where the
    # bound holds x and the kink's V holds y, so it is a (constrained) stationary point
    cert = certify_kink(_v_shaped, _gap, np.array([0.3, 0.09]), lower=np.array([-1.0, -1.0]),
                        upper=np.array([0.5, 2.0]))
    np.testing.assert_allclose(cert.params, [0.5, 0.25], atol=1e-9)
    assert cert.certified


def _plane_gap(p):
    """A flat kink ``z = y − x − w = 0`` in three parameters."""
    return jnp.stack([p[1] - p[0] - p[2]])


def _pulled_across_a_bound(p):
    """A V across the plane kink (slopes +1.5 above, −2 below), ``y`` pulled to 2.8 and ``x, w``
    towards 0; with ``x ≤ 1`` the minimum is on the kink and on the bound:
    ``x = 1``, ``w = 1.8 / (1 + 0.75²)``, ``y = 1 + w``, ``f = 1.1282``."""
    z = _plane_gap(p)[0]
    return jnp.stack([1.0 + jnp.maximum(1.5 * z, -2.0 * z), p[1] - 2.8, 0.3 * p[0], 0.75 * p[2]])


def test_a_bound_that_the_step_along_the_kink_pushes_against_holds_its_parameter():
    # x starts on its upper bound with its gradient pointing into the box, but the descent
    # along the kink, projected on the kink's tangent, pushes it out: it must be held there
    # (a clipped step leaves the tangent; an earlier rule stalled so, tangential cosine 0.63)
    lower, upper = np.array([-5.0, -5.0, -5.0]), np.array([1.0, 5.0, 5.0])
    cert = certify_kink(_pulled_across_a_bound, _plane_gap, np.array([1.0, 1.0 - 1e-10, 0.0]),
                        lower, upper)
    w = 1.8 / (1.0 + 0.75**2)
    np.testing.assert_allclose(cert.params, [1.0, 1.0 + w, w], atol=1e-6)
    assert cert.objective == pytest.approx(1.1282, abs=1e-10)
    assert cert.certified and cert.escapes == 0 and cert.tangential_cosine <= 1e-5


def _large_residual(p):
    """The V across the curved kink with the pull along it and a residual ``−4.5 + 0.1 (x−1)²``
    that stays large at the minimum ``(1, 1)``: its curvature, ``2 · 0.1 · (−4.5)`` per unit of
    ``(x − 1)²``, cancels 90 % of Gauss–Newton's, so Gauss–Newton's steps along the kink
    overshoot by a factor of ten and converge only linearly (the large-residual case)."""
    z = _gap(p)[0]
    return jnp.stack([jnp.maximum(2.0 * z, -z), p[0] - 1.0, -4.5 + 0.1 * (p[0] - 1.0) ** 2])


def test_the_second_order_pass_converges_where_gauss_newton_crawls():
    start = np.array([0.3, 0.09])
    gauss_newton = certify_kink(_large_residual, _gap, start, max_steps=40)
    assert not gauss_newton.certified
    second = certify_kink(_large_residual, _gap, start, max_steps=40, second_order=True)
    assert second.certified and second.steps <= 20 and second.active_kinks == 1
    # certified by the scaled gradient test (|g| against ‖J‖‖r‖, ‖r‖ ≈ 4.5), so near (1, 1)
    np.testing.assert_allclose(second.params, [1.0, 1.0], atol=2e-3)
    assert second.objective == pytest.approx(0.5 * 4.5**2, rel=1e-7)
    assert second.objective < gauss_newton.objective


def test_the_second_pass_runs_only_where_the_first_ends_uncertified():
    start = np.array([0.3, 0.09])
    certified_first = certify_in_passes(_v_shaped, _gap, start, max_steps=40)
    assert certified_first.certified and certified_first.second_order_steps is None
    both = certify_in_passes(_large_residual, _gap, start, max_steps=40)
    first = certify_kink(_large_residual, _gap, start, max_steps=40)
    assert both.certified and both.steps == first.steps and both.second_order_steps >= 1
    assert both.start_objective == first.start_objective and both.objective < first.objective
    np.testing.assert_allclose(both.params, [1.0, 1.0], atol=2e-3)


def test_the_passes_alternate_until_one_certifies():
    """With budgets too short for any one pass, Gauss–Newton and second-order passes in turn,
    each from the last one's end, reach the minimum that two passes do not."""
    start = np.array([0.3, 0.09])
    two = certify_in_passes(_large_residual, _gap, start, max_steps=3, max_passes=2)
    assert not two.certified
    many = certify_in_passes(_large_residual, _gap, start, max_steps=3, max_passes=40)
    assert many.certified and many.objective < two.objective
    assert many.steps > two.steps and many.second_order_steps > two.second_order_steps
    assert many.start_objective == two.start_objective
    np.testing.assert_allclose(many.params, [1.0, 1.0], atol=2e-3)


def _scripted_passes(monkeypatch, outcomes):
    """Replace :func:`certify_kink` by one returning ``outcomes`` in turn (``(certified, steps,
    escapes)``); the list of the calls' ``second_order`` flags."""
    calls = []

    def fake(residual_fn, gap_fn, params, lower=None, upper=None, *, gtol, max_steps,
             second_order=False):
        certified, steps, escapes = outcomes[len(calls)]
        calls.append(second_order)
        return _kinks.KinkCertificate(
            params=np.asarray(params) + 1.0, objective=10.0 - len(calls),
            start_objective=11.0 - len(calls), steps=steps, active_kinks=1,
            tangential_cosine=1.0, sigma=1e-6 if certified else 1.0, certified=certified,
            escapes=escapes)

    monkeypatch.setattr(_kinks, "certify_kink", fake)
    return calls


def test_the_passes_stop_at_the_first_that_makes_no_progress(monkeypatch):
    calls = _scripted_passes(monkeypatch, [(False, 5, 1), (False, 3, 0), (False, 2, 2),
                                           (False, 0, 0), (False, 9, 9)])
    cert = certify_in_passes(None, None, np.zeros(2), max_steps=10, max_passes=6)
    assert calls == [False, True, False, True]
    assert (cert.steps, cert.second_order_steps, cert.escapes) == (7, 3, 3)
    assert cert.start_objective == 10.0 and cert.objective == 6.0 and not cert.certified
    np.testing.assert_array_equal(cert.params, [4.0, 4.0])  # each pass starts at the last's end


def test_the_passes_stop_at_the_first_that_certifies_or_at_the_limit(monkeypatch):
    calls = _scripted_passes(monkeypatch, [(False, 1, 0), (False, 1, 0), (True, 1, 0)])
    assert certify_in_passes(None, None, np.zeros(1), max_steps=10).certified
    assert calls == [False, True, False]
    calls = _scripted_passes(monkeypatch, [(False, 1, 0)] * 10)
    cert = certify_in_passes(None, None, np.zeros(1), max_steps=10, max_passes=5)
    assert calls == [False, True, False, True, False] and not cert.certified
    assert (cert.steps, cert.second_order_steps) == (3, 2)


@pytest.mark.parametrize("case", ["convex inside", "convex on the boundary", "indefinite",
                                  "hard"])
def test_the_trust_region_step_meets_the_optimality_conditions(case):
    from mixscale._kinks import _trust_region_step

    rng = np.random.default_rng(3)
    vec, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    lam = {"convex inside": [1.0, 2, 3, 4, 5], "convex on the boundary": [0.01, 2, 3, 4, 5],
           "indefinite": [-2.0, -0.5, 1, 3, 4], "hard": [-2.0, -0.5, 1, 3, 4]}[case]
    hess = vec @ np.diag(lam) @ vec.T
    grad = vec @ np.array([0.0 if case == "hard" else 0.3, 1.0, -0.5, 0.2, 0.7])
    radius = 10.0 if case == "convex inside" else 1.0
    y = _trust_region_step(hess, grad, radius)
    assert np.linalg.norm(y) <= radius * (1 + 1e-9)
    # (H + sI) y = −g with s ≥ 0, H + sI positive semi-definite, s (‖y‖ − Δ) = 0
    shifts = -(hess @ y + grad) / np.where(np.abs(y) > 1e-12, y, np.nan)
    s = float(np.nanmedian(shifts))
    np.testing.assert_allclose((hess + s * np.eye(5)) @ y, -grad, atol=1e-8)
    assert s >= -1e-9 and np.linalg.eigvalsh(hess + s * np.eye(5))[0] >= -1e-8
    if case == "convex inside":
        np.testing.assert_allclose(y, -np.linalg.solve(hess, grad), atol=1e-12)
    else:
        assert np.linalg.norm(y) == pytest.approx(radius, rel=1e-9)
    # no point of the ball is lower (brute force over random points of the ball)
    pts = rng.normal(size=(20000, 5))
    pts *= (radius * rng.uniform(size=(20000, 1)) ** 0.2) / np.linalg.norm(pts, axis=1)[:, None]
    model = pts @ grad + 0.5 * np.einsum("ni,ij,nj->n", pts, hess, pts)
    assert grad @ y + 0.5 * y @ hess @ y <= model.min() + 1e-12


def test_a_law_without_kinks_is_finished_on_its_smooth_objective(monkeypatch):
    """A smooth law (the overlap law, fitted as one problem) stopped after 20 steps, unconverged,
    more than 5 % above its optimum: the certificate's passes finish it with no kink to follow,
    to the optimum that Levenberg–Marquardt reaches from the same start when run to
    convergence, and certify it; through ``fit(smooth_kinks=True)`` the
    stopped fit is returned finished and converged."""
    import mixscale._fit as fit_module
    from mixscale.data import load, select

    table = select(load("pile4"), model_size=200.0, tokens=8.0)
    table = table.select_losses(list(table.in_mixture))
    spec = ms.LawSpec("overlap", variant="rank", factors=1)
    stopped = ms.fit(spec, table, n_restarts=1, seed=0, max_steps=20)
    full = ms.fit(spec, table, n_restarts=1, seed=0)
    assert not stopped.law_converged and full.law_converged
    assert stopped.objective > 1.05 * full.objective
    cert = certify_fit(stopped, table)
    assert cert.certified and cert.active_kinks == 0 and cert.sigma <= 1e-5
    assert cert.objective / cert.start_objective * stopped.objective == \
        pytest.approx(full.objective, rel=1e-6)
    # through the fitter, whose certificate has the fit's step cap per pass (20 here: lifted)
    certify = fit_module.certify_law
    monkeypatch.setattr(fit_module, "certify_law",
                        lambda *a, **k: certify(*a, **{**k, "max_steps": 1000}))
    res = ms.fit(spec, table, n_restarts=1, seed=0, max_steps=20, smooth_kinks=True)
    assert res.kink_certificate.certified and res.law_converged and res.converged[res.best]
    assert res.kink_certificate.active_kinks == 0 and not res.kink_smoothed and res.kink_kept
    assert res.objective == pytest.approx(full.objective, rel=1e-6)


def test_fit_finishes_and_certifies_a_capacity_law_stuck_on_its_head_floor(monkeypatch):
    """The capacity-only law on Pile-4 (2 restarts) stops on the allocation's head floor,
    unconverged. ``fit(smooth_kinks=True)`` finishes the best restart along the kink and, as it
    is certified there, returns it as converged, more than 5 % lower: the optimum the smoothing
    continuation reaches too (``tests/test_fit.py``; the same objective to 1e-9 relative,
    measured). The continuation converges by itself on this table, so it is switched off here
    for the certificate to meet the stopped restart."""
    import equinox as eqx
    import jax.numpy as jnp

    import mixscale._fit as fit_module
    from mixscale._objective import DEFAULT_HUBER_DELTA, objective, prepare_data
    from mixscale.data import load, select

    table = select(load("pile4"), model_size=200.0, tokens=8.0)
    table = table.select_losses(list(table.in_mixture))
    spec = ms.LawSpec("capacity", variant="capacity")
    stuck = ms.fit(spec, table, n_restarts=2, seed=0)
    assert not stuck.law_converged and stuck.kink_certificate is None
    monkeypatch.setattr(fit_module, "_smooth_kinks", lambda sol, *a, **k: (sol, False))
    res = ms.fit(spec, table, n_restarts=2, seed=0, smooth_kinks=True)
    cert = res.kink_certificate
    assert cert is not None and cert.certified and cert.active_kinks >= 1
    assert cert.sigma <= 1e-5 and cert.tangential_cosine <= 1e-5
    assert res.law_converged and res.objective < 0.95 * stuck.objective
    assert res.objectives[res.best] == res.objective and res.converged[res.best]
    assert "kink_certificate_s" in res.timings
    # the returned law is the certified point: its objective is the one reported
    _, data = prepare_data(table, res.targets)
    params, static = eqx.partition(res.law, eqx.is_inexact_array)
    assert float(objective(params, static, data, jnp.asarray(DEFAULT_HUBER_DELTA))) == \
        pytest.approx(res.objective, rel=1e-9)
    # certify_fit on the returned fit: already stationary on its kink, no step to take
    again = certify_fit(res, table)
    assert again.certified and again.steps == 0 and again.active_kinks >= 1


def test_an_uncertified_lower_end_of_the_certificate_is_kept(monkeypatch):
    """The certificate's steps only descend, so its end replaces the law wherever lower, also
    when it is not certified (here its budget is cut to one pass of three steps): the law
    returned is that end, its objective the one reported, and it is not counted as converged."""
    import equinox as eqx
    import jax.numpy as jnp

    import mixscale._fit as fit_module
    from mixscale._objective import DEFAULT_HUBER_DELTA, objective, prepare_data
    from mixscale.data import load, select

    table = select(load("pile4"), model_size=200.0, tokens=8.0)
    table = table.select_losses(list(table.in_mixture))
    spec = ms.LawSpec("capacity", variant="capacity")
    stuck = ms.fit(spec, table, n_restarts=2, seed=0)
    monkeypatch.setattr(fit_module, "_smooth_kinks", lambda sol, *a, **k: (sol, False))
    certify = fit_module.certify_law
    monkeypatch.setattr(fit_module, "certify_law",
                        lambda *a, **k: certify(*a, **{**k, "max_steps": 3, "max_passes": 1}))
    res = ms.fit(spec, table, n_restarts=2, seed=0, smooth_kinks=True)
    cert = res.kink_certificate
    assert not cert.certified and 0 < cert.steps <= 3 and cert.objective < cert.start_objective
    assert res.kink_kept and not res.law_converged and not res.converged[res.best]
    assert res.objective == pytest.approx(stuck.objective * cert.objective
                                          / cert.start_objective, rel=1e-12)
    assert res.objective < stuck.objective and res.objectives[res.best] == res.objective
    _, data = prepare_data(table, res.targets)
    params, static = eqx.partition(res.law, eqx.is_inexact_array)
    assert float(objective(params, static, data, jnp.asarray(DEFAULT_HUBER_DELTA))) == \
        pytest.approx(res.objective, rel=1e-9)


def _gap_with_a_broken_normal(p):
    """The kink of :func:`_gap`, whose normal is not a number (``0 · ∞``) for ``x ≥ 0.6`` while
    the gap itself stays finite: a gradient of the gap that cannot be followed there."""
    return _gap(p) + 0.0 * jnp.sqrt(jnp.maximum(0.6 - p[0], 0.0))


def test_a_kink_whose_normal_is_not_finite_ends_the_steps_along_it_without_an_error():
    # the minimum along the kink (x = 1) lies past x = 0.6, where the normal is NaN: the steps
    # along the kink stop short of it, without failing in the retraction's least squares, and
    # the sampled descent direction, which needs no normal, takes the fit on to the minimum
    start = np.array([0.3, 0.09])
    assert np.isnan(np.asarray(_jac_of_gap(np.array([0.8, 0.64])))).any()
    steps_only = certify_kink(_v_shaped, _gap_with_a_broken_normal, start, max_steps=0)
    assert steps_only.escapes == 0 and not steps_only.certified
    cert = certify_kink(_v_shaped, _gap_with_a_broken_normal, start)
    assert np.all(np.isfinite(cert.params)) and cert.escapes >= 1
    np.testing.assert_allclose(cert.params, [1.0, 1.0], atol=1e-6)
    assert cert.objective == pytest.approx(0.125, abs=1e-12) and cert.certified


def _jac_of_gap(p):
    import jax

    return jax.jacfwd(_gap_with_a_broken_normal)(jnp.asarray(p))


_WEDGE = 1e-3  # the angle between the two kinks' normals below (radians, about)


def _wedge_gaps(p):
    """Two kinks through the origin whose normals ``(1, 0)`` and ``(1, θ)`` are nearly
    parallel: their mixed sides ``x > 0 > x + θy`` and ``x < 0 < x + θy`` are wedges of angle
    about ``θ``, which uniform draws in a box around the origin rarely enter."""
    return jnp.stack([p[0], p[0] + _WEDGE * p[1]])


def _needs_the_wedges(p):
    """``f = ½‖r‖² ≈ 3/2 + |x| + |x + θy| + (θ/2) y`` near the origin: its minimum is the
    origin (``0 = a ∇z₁ + b ∇z₂ + (0, θ/2)`` with ``a = −b = 1/2``, inside ``[−1, 1]²``), but
    the gradients of the sides where both gaps agree, ``(±2, ±θ + θ/2)``, have no zero in
    their hull: only the wedges' gradients ``(0, ∓θ + θ/2)`` close it."""
    z = _wedge_gaps(p)
    return jnp.stack([1.0 + jnp.abs(z[0]), 1.0 + jnp.abs(z[1]), 1.0 + 0.5 * _WEDGE * p[1]])


def test_the_sides_of_nearly_parallel_kinks_are_sampled_where_uniform_draws_miss_them():
    origin = np.zeros(2)
    assert sampled_stationarity(_needs_the_wedges, origin) > 1e-2   # the draws miss the wedges
    sides = kink_side_points(origin, np.asarray(_wedge_gaps(origin)),
                             np.array([[1.0, 0.0], [1.0, _WEDGE]]), np.full(2, -np.inf),
                             np.full(2, np.inf))
    signs = np.sign(np.array([np.asarray(_wedge_gaps(jnp.asarray(q))) for q in sides[:4]]))
    np.testing.assert_array_equal(signs, [[1, 1], [1, -1], [-1, 1], [-1, -1]])
    assert np.all(sides[4:] == origin) and np.max(np.abs(sides)) <= 1e-9
    sigma, _, _ = clarke_descent(_needs_the_wedges, origin, extra_points=sides)
    assert sigma < 1e-6
    cert = certify_kink(_needs_the_wedges, _wedge_gaps, origin)
    assert cert.certified and cert.escapes == 0 and cert.active_kinks == 2
    np.testing.assert_allclose(cert.params, origin, atol=1e-12)


def test_a_failed_step_off_adds_the_gradients_along_it(monkeypatch):
    """Kinks the law does not list get no side points; at the origin the uniform draws miss the
    wedges (measure 0.18) and the step along their direction fails, since the origin is the
    minimum. The gradients along that direction (a null step) lie in a wedge and close the
    hull: certified, without moving. Without null steps it stays uncertified."""
    def unlisted(p):
        return jnp.full(1, jnp.inf) + 0.0 * p[0]

    origin = np.zeros(2)
    cert = certify_kink(_needs_the_wedges, unlisted, origin)
    assert cert.certified and cert.sigma < 1e-6 and cert.escapes == 0
    np.testing.assert_array_equal(cert.params, origin)
    monkeypatch.setattr(_kinks, "NULL_STEPS", 0)
    without = certify_kink(_needs_the_wedges, unlisted, origin)
    assert not without.certified and without.sigma > 1e-2


def _corner(p):
    """``f = ½‖r‖²`` with ``r = (1 + |p_1|, …, 1 + |p_8|, 1 + 0.9 Σ p)``: eight kinks through
    the origin, the minimum, where the pieces' gradients are ``s + 0.9`` for the sign patterns
    ``s``; zero is in their hull only with the piece ``s = (−1, …, −1)``, one of 256, which
    the enumerated sides of six kinks (the other two on the point's own side) lack and uniform
    draws rarely hit."""
    return jnp.concatenate([1.0 + jnp.abs(p), jnp.array([1.0 + 0.9 * jnp.sum(p)])])


def test_the_search_finds_the_side_that_more_kinks_than_are_enumerated_need(monkeypatch):
    p = np.full(8, 1e-13)                 # on the plus side of every kink, within 1e-12
    box = np.full(8, -np.inf), np.full(8, np.inf)
    hull = _kinks.KinkHull(_corner, p, p.copy(), np.eye(8), *box)
    assert hull.measure()[0] < 1e-9
    monkeypatch.setattr(_kinks, "SEARCH_ROUNDS", 0)
    assert _kinks.KinkHull(_corner, p, p.copy(), np.eye(8), *box).measure()[0] > 0.1


def test_independent_kinks_are_the_active_ones_with_new_normals():
    normals = np.array([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0],
                        [0.0, 0.0, 1.0]])
    gaps = np.array([1e-9, 0.0, 2e-9, 3e-9, 1.0])       # the last is not active
    assert _kinks.independent_kinks(gaps, normals) == [1, 2]
    assert _kinks.independent_kinks(gaps, normals, at_most=1) == [1]


def test_a_kink_repeated_over_runs_is_sampled_once():
    # three copies of one kink (the same domain's floor at three budgets) and a second one:
    # two independent kinks, four sign patterns; the copies' normals are one surface
    normals = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    sides = kink_side_points(np.zeros(2), np.zeros(4), normals, np.full(2, -np.inf),
                             np.full(2, np.inf))
    assert np.all(np.abs(sides[:4]) > 0) and np.all(sides[4:] == 0.0)
    assert kink_side_points(np.zeros(2), np.full(4, 1.0), normals, np.full(2, -np.inf),
                            np.full(2, np.inf)) is None   # none active
