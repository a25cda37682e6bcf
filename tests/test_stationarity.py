"""Sampled (Clarke) stationarity: the minimum-norm point of a hull against a brute-force solve,
and the measure at smooth and kinked minima and away from them."""

import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_compiles_nothing
from scipy.optimize import nnls

from mixscale._stationarity import clarke_descent, min_norm_in_hull, sampled_stationarity


def test_min_norm_point_equals_the_nonnegative_least_squares_solution(rng):
    # min ||G^T lam|| on the simplex = NNLS on [G^T; w 1^T] lam ~ [0; w] for a large weight w
    for m, p in ((3, 2), (6, 4), (12, 5)):
        g = rng.normal(size=(m, p)) + rng.normal(size=p)  # hulls off and around the origin
        w = 1e4
        lam, _ = nnls(np.vstack([g.T, w * np.ones((1, m))]), np.concatenate([np.zeros(p), [w]]))
        expected = (lam / lam.sum()) @ g
        np.testing.assert_allclose(min_norm_in_hull(g), expected, atol=1e-6)
    # the origin inside the hull
    assert np.linalg.norm(min_norm_in_hull(np.array([[1.0, 0.0], [-1.0, 1.0], [0.0, -1.0]]))) \
        < 1e-9


def test_min_norm_point_compiles_once_per_shape(rng):
    """Called again with new vectors of the same shape (the kink certificate calls it at every
    stage), the iteration reuses its compiled program: one closing over its inputs would
    compile again on every call."""
    g = rng.normal(size=(7, 5))
    min_norm_in_hull(g)
    signs = np.array([1.0, 0.0, -1.0, 0.0, 0.0])
    min_norm_in_hull(g, bound_signs=signs)
    with assert_compiles_nothing():
        points = [min_norm_in_hull(rng.normal(size=(7, 5))),
                  min_norm_in_hull(rng.normal(size=(7, 5)), bound_signs=signs)]
    assert all(p.shape == (5,) and np.all(np.isfinite(p)) for p in points)


def _kinked(p):
    """f = ½ r·r with a kink at p0 = 0 whose one-sided slopes (−2 and +1) bracket 0."""
    return jnp.stack([jnp.maximum(p[0], -2.0 * p[0]) + 1.0, p[1] - 1.0])


def _smooth(p):
    return jnp.stack([p[0] + 1.0 - 0.5 * p[0] ** 2, p[1] - 1.0])


@pytest.mark.parametrize("at, stationary", [((0.0, 1.0), True), ((1e-12, 1.0), True),
                                            ((0.3, 1.0), False), ((0.0, 1.2), False)])
def test_a_kink_whose_slopes_bracket_zero_is_stationary(at, stationary):
    sigma = sampled_stationarity(_kinked, np.array(at))
    # the one-sided gradient test alone fails at the kink: |g|/(|J| |r|) = 1 there
    assert (sigma < 1e-6) if stationary else (sigma > 0.05)


def test_a_smooth_point_measures_its_gradient_cosine():
    # r0 = 1 + p0 - p0^2/2 has slope 1 at p0 = 0, so p = (0, 1) is not stationary; the measure
    # there is the gradient test's cosine |g_0| / (|J_0| |r|) = 1
    sigma = sampled_stationarity(_smooth, np.array([0.0, 1.0]))
    assert sigma == pytest.approx(1.0, rel=1e-6)
    at_min = sampled_stationarity(_smooth, np.array([1.0 - np.sqrt(3.0), 1.0]))  # r0 = 0
    assert at_min < 1e-6


def test_a_parameter_held_on_its_bound_is_balanced_by_its_multiplier():
    # p1 = 1.2 sits on its lower bound with g > 0 (descent would leave the box): held, so the
    # kink in p0 alone decides
    sigma = sampled_stationarity(_kinked, np.array([0.0, 1.2]), lower=np.array([-1.0, 1.2]),
                                 upper=np.array([1.0, 2.0]))
    assert sigma < 1e-6


def test_a_bound_balances_the_hull_point_not_each_sample():
    # on a lower bound in component 0, a positive component (descent would leave the box) is
    # balanced by the bound's multiplier. The samples disagree in its sign: g1 = (−1, −1)
    # points into the box, g2 = (2, 1) out of it; their mean (0.5, 0) is balanced entirely, so
    # the point is stationary, although a rule holding the component by one sample's sign
    # (here g1's: kept) finds the hull's nearest point (2/13, −3/13) instead
    vectors = np.array([[-1.0, -1.0], [2.0, 1.0]])
    np.testing.assert_allclose(min_norm_in_hull(vectors), [2 / 13, -3 / 13], atol=1e-9)
    np.testing.assert_allclose(min_norm_in_hull(vectors, bound_signs=np.array([-1.0, 0.0])),
                               [0.0, 0.0], atol=1e-9)
    # on an upper bound the same component counts where positive (into the box)
    np.testing.assert_allclose(min_norm_in_hull(vectors, bound_signs=np.array([1.0, 0.0])),
                               [2 / 13, -3 / 13], atol=1e-9)


def test_the_descent_direction_lowers_the_objective_and_points_into_the_box():
    # not stationary at (0, 1) (r0's slope is 1): the direction d lowers the objective at the
    # predicted rate, and on a bound it never points out of the box
    def f(q):
        return 0.5 * float(jnp.sum(_smooth(jnp.asarray(q)) ** 2))

    sigma, d, slope = clarke_descent(_smooth, np.array([0.0, 1.0]))
    t = 1e-6
    assert sigma == pytest.approx(1.0, rel=1e-6) and slope < 0
    assert (f(np.array([0.0, 1.0]) + t * d) - f(np.array([0.0, 1.0]))) / t == pytest.approx(
        slope, rel=1e-4)
    _, d_box, _ = clarke_descent(_smooth, np.array([0.0, 1.0]), lower=np.array([0.0, 0.0]),
                                 upper=np.array([1.0, 2.0]))
    assert d_box[0] >= 0.0
