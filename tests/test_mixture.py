"""Optimal-mixture search: known optima of each term, bounds, projection, bad input."""

import jax.numpy as jnp
import numpy as np
import pytest

from mixscale import CapacityLaw, optimal_mixture, project_to_simplex

W = np.array([0.1, 0.2, 0.3, 0.4])


def _data_optimum(w, A, a, D, lower=None, upper=None):
    """h_i = (w_i a_i A_i D^{-a_i} / μ)^{1/(1+a_i)} with μ making Σh = 1 (bisection in log μ),
    clipped to the bounds (KKT of the bounded problem)."""
    lo = np.zeros_like(w) if lower is None else lower
    hi = np.ones_like(w) if upper is None else upper

    def h_of(log_mu):
        return np.clip((w * a * A * D ** -a / np.exp(log_mu)) ** (1 / (1 + a)), lo, hi)

    left, right = -60.0, 60.0
    for _ in range(200):
        mid = 0.5 * (left + right)
        left, right = (mid, right) if h_of(mid).sum() > 1 else (left, mid)
    return h_of(0.5 * (left + right))


def test_capacity_term_alone_is_minimised_at_the_test_weights():
    law = CapacityLaw.from_params(b=[0.3, 0.5, 0.4, 0.6], c=[2.0, 1.5, 1.0, 2.5], H=0.5,
                                  E=[1.0, 1.5, 0.8, 2.0], variant="capacity")
    res = optimal_mixture(law, 40.0, 5.0, target_weights=W)
    np.testing.assert_allclose(res.weights, W / W.sum(), rtol=1e-6, atol=1e-8)
    assert res.converged


@pytest.mark.parametrize("D", [0.5, 20.0])
def test_data_term_alone_has_the_closed_form_optimum(D):
    A, a = np.array([0.5, 0.3, 0.4, 0.6]), np.array([0.3, 0.45, 0.2, 0.5])
    law = CapacityLaw.from_params(b=np.full(4, 0.5), c=np.full(4, 1e-14), H=0.5, A=A, a=a,
                                  E=np.ones(4), weight_floor=0.0)
    res = optimal_mixture(law, 40.0, D, target_weights=W)
    np.testing.assert_allclose(res.weights, _data_optimum(W, A, a, D), rtol=1e-6)
    assert res.weights.sum() == pytest.approx(1.0, abs=1e-12)


def test_caps_and_lower_bounds_are_respected_and_optimal():
    A, a = np.array([0.5, 0.3, 0.4, 0.6]), np.array([0.3, 0.45, 0.2, 0.5])
    law = CapacityLaw.from_params(b=np.full(4, 0.5), c=np.full(4, 1e-14), H=0.5, A=A, a=a,
                                  E=np.ones(4), weight_floor=0.0)
    free = _data_optimum(W, A, a, 2.0)
    upper = np.ones(4)
    upper[np.argmax(free)] = 0.8 * free.max()  # the cap binds
    lower = np.zeros(4)
    lower[np.argmin(free)] = 1.5 * free.min()  # the lower bound binds
    res = optimal_mixture(law, 40.0, 2.0, target_weights=W, lower=lower, upper=upper)
    np.testing.assert_allclose(res.weights, _data_optimum(W, A, a, 2.0, lower, upper),
                               rtol=1e-6)
    assert np.all(res.weights <= upper + 1e-12) and np.all(res.weights >= lower - 1e-12)


def test_full_law_optimum_is_stationary_and_beats_its_neighbours(rng):
    law = CapacityLaw.from_params(b=[0.3, 0.5, 0.4, 0.6], c=[2.0, 1.5, 1.0, 2.5], H=0.5,
                                  A=[0.5, 0.3, 0.4, 0.6], a=[0.3, 0.4, 0.2, 0.5],
                                  E=[1.0, 1.5, 0.8, 2.0])
    res = optimal_mixture(law, 60.0, 3.0)
    assert res.converged and res.stationarity < 1e-9
    for _ in range(20):
        other = np.asarray(project_to_simplex(jnp.asarray(res.weights + rng.normal(0, 0.01, 4)),
                                              jnp.zeros(4), jnp.ones(4)))
        assert float(np.mean(np.asarray(law.predict(other, 60.0, 3.0)))) >= res.objective - 1e-12


def test_projection_is_the_euclidean_projection(rng):
    from scipy.optimize import minimize

    for _ in range(5):
        v = rng.normal(0.2, 0.5, 6)
        lo, hi = np.full(6, 0.02), np.full(6, 0.5)
        p = np.asarray(project_to_simplex(jnp.asarray(v), jnp.asarray(lo), jnp.asarray(hi)))
        ref = minimize(lambda x: np.sum((x - v) ** 2), np.full(6, 1 / 6), method="SLSQP",
                       bounds=list(zip(lo, hi, strict=True)),
                       constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1}],
                       options={"ftol": 1e-15})
        np.testing.assert_allclose(p, ref.x, atol=1e-7)


@pytest.mark.parametrize("k", [2, 17, 64])
def test_projection_onto_the_plain_simplex_equals_the_sorting_formula(rng, k):
    """Without box bounds the projection has a closed form (sort ``v`` descending; ``τ`` from
    the largest prefix whose mean shift keeps its last entry positive): the linear interpolation
    between breakpoints must give it to rounding, for spread and for tied entries."""
    for v in (rng.normal(0.0, 1.0, k), rng.normal(0.0, 1e-3, k), np.round(rng.normal(0, 1, k))):
        u = np.sort(v)[::-1]
        cum = np.cumsum(u) - 1.0
        rho = np.flatnonzero(u - cum / np.arange(1, k + 1) > 0)[-1]
        expected = np.maximum(v - cum[rho] / (rho + 1), 0.0)
        p = np.asarray(project_to_simplex(jnp.asarray(v), jnp.zeros(k), jnp.ones(k)))
        np.testing.assert_allclose(p, expected, rtol=0, atol=1e-12)
        assert abs(p.sum() - 1.0) < 1e-12


def test_bad_input_is_refused():
    law = CapacityLaw.from_params(b=[0.3, 0.5], c=[1.0, 1.0], H=0.5, A=[0.5, 0.3],
                                  a=[0.3, 0.4], E=[1.0, 1.0])
    with pytest.raises(ValueError, match="bracket 1"):
        optimal_mixture(law, 10.0, 1.0, upper=[0.3, 0.3])
    with pytest.raises(ValueError, match="shape"):
        optimal_mixture(law, 10.0, 1.0, target_weights=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="positive"):
        optimal_mixture(law, -1.0, 1.0)
    with pytest.raises(ValueError, match="non-negative"):
        optimal_mixture(law, 10.0, 1.0, target_weights=[-1.0, 2.0])


def test_projection_of_a_huge_vector_is_still_a_mixture():
    """A search step of 1e12 times a large gradient gives entries of order 1e30: the projection
    still sums to 1 (it returned two coordinates at their cap of 1 before ``v`` was shifted)."""
    v = jnp.asarray([0.0, -3e29, 1e30, 1e30])
    p = np.asarray(project_to_simplex(v, jnp.zeros(4), jnp.ones(4)))
    np.testing.assert_allclose(p, [0.0, 0.0, 0.5, 0.5], atol=1e-12)
    q = np.asarray(project_to_simplex(jnp.asarray([1e30, 2.0, 1e30 + 1e15, 0.0]), jnp.zeros(4),
                                      jnp.ones(4)))
    assert abs(q.sum() - 1.0) < 1e-12 and np.all(q >= 0) and np.all(q <= 1)



def test_bounds_that_meet_one_only_to_rounding_give_that_mixture_not_nan():
    """Caps computed as shares of the data available, ``t / sum(t)``, can sum to 1 - 1.1e-16:
    no point of the box sums to 1 exactly, and the projection's bracket had an infinite end
    (weights NaN, objective finite). The only feasible mixture to rounding is the caps
    themselves (likewise lower bounds summing to just above 1)."""
    caps = np.array([0.44043143255792233, 0.3366797590952262, 0.2228888083468513])
    assert caps.sum() < 1.0
    np.testing.assert_array_equal(project_to_simplex(jnp.zeros(3), jnp.zeros(3),
                                                     jnp.asarray(caps)), caps)
    floors = np.array([0.7, 0.2, 0.1 + 2.3e-16])
    assert floors.sum() > 1.0
    np.testing.assert_array_equal(project_to_simplex(jnp.asarray([3.0, -1.0, 0.5]),
                                                     jnp.asarray(floors), jnp.ones(3)), floors)
    law = CapacityLaw.from_params(b=[0.15, 0.35, 0.24], c=[0.47, 0.78, 0.62], H=20.0,
                                  A=[0.24, 0.63, 1.15], a=[0.47, 0.62, 0.31],
                                  E=[0.63, 2.0, 0.66])
    for bounds, point in ((dict(upper=caps), caps), (dict(lower=floors), floors)):
        res = optimal_mixture(law, 1000.0, 30.0, n_starts=2, **bounds)
        np.testing.assert_array_equal(res.weights, point)
        expected = np.asarray(law.predict(jnp.asarray(point), 1000.0, 30.0))
        np.testing.assert_allclose(res.losses, expected, rtol=1e-14)
        assert res.objective == pytest.approx(expected.mean(), rel=1e-14) and res.converged

def test_best_start_breaks_rounding_ties_by_stationarity():
    from mixscale._mixture import _best_start

    f = np.array([2.0 + 4e-16, 2.0, 2.0 + 2e-16, 3.0])
    pg = np.array([1e-12, 1e-9, np.nan, 0.0])
    assert _best_start(f, pg) == 0          # tied to rounding: the stationary one
    f[0] = 2.0 + 1e-9                       # no longer tied: the lowest objective wins
    assert _best_start(f, pg) == 1
    assert _best_start(np.array([np.inf, 5.0]), np.array([0.0, 1.0])) == 1


def test_the_search_is_compiled_once_for_any_tolerance_and_step_cap():
    """``tol`` and ``max_steps`` are run-time values of the compiled search: a second call that
    changes only them compiles nothing."""
    from helpers import assert_no_retrace

    from mixscale._mixture import _spg

    law = CapacityLaw.from_params(b=[0.3, 0.5, 0.4], c=[2.0, 1.5, 1.0], H=0.5,
                                  A=[0.5, 0.3, 0.4], a=[0.3, 0.45, 0.2], E=[1.0, 1.5, 0.8])
    first = optimal_mixture(law, 40.0, 5.0, n_starts=3, tol=1e-9, max_steps=500)
    with assert_no_retrace(_spg):
        short = optimal_mixture(law, 40.0, 5.0, n_starts=3, tol=1e-3, max_steps=7)
    assert first.converged and short.stationarity >= first.stationarity


@pytest.mark.parametrize("unit", [1e-6, 1e200, 3e-300, 50.0])
def test_the_optimum_does_not_depend_on_the_losses_units(unit):
    """A law whose every loss is multiplied by ``unit`` (``E``, ``A`` and ``c`` scaled) has the
    same optimal mixture, found to the same stationarity: the search runs on the objective
    divided by a power of two that brings it to order one. (With the tolerance in loss units
    this law's optimum came out 1.6e-4 off at ``1e-6`` and 0.096 off at ``3e-300``, and the
    ``1e200`` one never met it.)"""
    params = dict(b=[0.3, 0.5, 0.4, 0.6], H=0.5, a=[0.3, 0.4, 0.2, 0.5])
    coefficients = dict(c=np.array([2.0, 1.5, 1.0, 2.5]), A=np.array([0.5, 0.3, 0.4, 0.6]),
                        E=np.array([1.0, 1.5, 0.8, 2.0]))
    base = optimal_mixture(CapacityLaw.from_params(**params, **coefficients), 60.0, 3.0,
                           target_weights=W)
    scaled = optimal_mixture(CapacityLaw.from_params(
        **params, **{k: unit * v for k, v in coefficients.items()}), 60.0, 3.0, target_weights=W)
    assert base.objective_scale == 1.0 and base.converged
    assert scaled.converged and scaled.stationarity < 1e-9
    np.testing.assert_allclose(scaled.weights, base.weights, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(scaled.objective, unit * base.objective, rtol=1e-9)
    s = scaled.objective_scale
    assert s == 2.0 ** round(np.log2(s)) and 0.5 <= abs(scaled.objective) / s < 1.0 + 1e-2


def test_objective_scale_is_one_for_losses_of_order_one_and_a_power_of_two_elsewhere():
    from mixscale._mixture import objective_scale

    assert objective_scale([0.1, 15.0], [1.0, 1.0]) == 1.0
    assert objective_scale([0.0, 0.0], [1.0, 2.0]) == 1.0
    assert objective_scale([-3.0, 1.0], [1.0, 0.0]) == 1.0
    assert objective_scale([40.0, 40.0], [1.0, 1.0]) == 64.0        # 40 / 64 in [1/2, 1)
    assert objective_scale([1e-3, 5.0], [1.0, 0.0]) == 2.0 ** -9    # the weighted mean only
    # a mean at the top of the float range: the largest finite power of two
    assert objective_scale([1.7e308, 1.7e308], [1.0, 1.0]) == 2.0 ** 1023


def test_mixture_notes_flag_impossible_losses_and_weights_beyond_the_runs():
    """A predicted loss that is not positive and finite, and a domain weighted more than any
    training run weighted it, are named; a mixture inside the runs with positive losses gets no
    note."""
    from mixscale._mixture import MixtureResult, mixture_notes

    def result(weights, losses):
        return MixtureResult(weights=np.asarray(weights), losses=np.asarray(losses),
                             objective=float(np.mean(losses)), stationarity=0.0, converged=True,
                             start_objectives=np.zeros(1))

    runs = (0.5, 0.3, 0.6)  # each domain's largest weight in the training runs
    domains, targets = ("a", "b", "c"), ("a", "c")
    assert mixture_notes(result([0.4, 0.3, 0.3], [2.0, 3.0]), domains, targets, runs) == []
    (note,) = mixture_notes(result([0.4, 0.3, 0.3], [-1.5, np.inf]), domains, targets)
    assert "(a -1.5, c inf)" in note and "not one to train on" in note
    (note,) = mixture_notes(result([0.0, 0.0, 1.0], [2.0, 3.0]), domains, targets, runs)
    assert "c 1 (runs: at most 0.6)" in note and "a " not in note
    assert mixture_notes(result([0.0, 0.0, 1.0], [2.0, 3.0]), domains, targets) == []
