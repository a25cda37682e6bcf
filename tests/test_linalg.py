"""``mixscale.solve_small`` against LAPACK and finite differences, and the check that keeps
LAPACK-backed primitives out of a law's prediction (``mixscale/_linalg.py``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from mixscale import solve_small
from mixscale._linalg import _gauss_jordan, check_law_primitives


@pytest.mark.parametrize("k", [1, 2, 3, 7, 17])
def test_solve_small_equals_lapack(k):
    # compiled: the elimination is unrolled over k, so op-by-op dispatch would cost more than
    # compiling it
    solve = jax.jit(solve_small)
    rng = np.random.default_rng(k)
    a = rng.normal(size=(k, k))
    if k > 1:
        a[0, 0] = 0.0  # the first pivot must come from another row
    b = rng.normal(size=k)
    bb = rng.normal(size=(k, 3))
    np.testing.assert_allclose(solve(a, b), np.linalg.solve(a, b), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(solve(a, bb), np.linalg.solve(a, bb), rtol=1e-10, atol=1e-12)
    batch = rng.normal(size=(5, k, k)) + 3.0 * np.eye(k)
    rhs = rng.normal(size=(5, k))
    np.testing.assert_allclose(jax.jit(jax.vmap(solve_small))(batch, rhs),
                               np.linalg.solve(batch, rhs[..., None])[..., 0], rtol=1e-10,
                               atol=1e-12)


def test_solve_small_derivatives_match_finite_differences():
    # Compiled (the derivatives of the compiled function are what fits use; op by op, the
    # elimination's loops made this test three times slower).
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.normal(size=(4, 4)) + 2.0 * np.eye(4))
    b = jnp.asarray(rng.normal(size=4))
    solve = jax.jit(solve_small)
    check_grads(solve, (a, b), order=2, modes=("fwd", "rev"), eps=1e-5, rtol=1e-5)
    check_grads(jax.jit(lambda a, b: solve_small(a, b, pivoting=False)), (a, b), order=2,
                modes=("fwd", "rev"), eps=1e-5, rtol=1e-5)
    bb = jnp.asarray(rng.normal(size=(4, 2)))
    check_grads(solve, (a, bb), order=2, modes=("fwd", "rev"), eps=1e-5, rtol=1e-5)
    # the implicit derivative equals autodiff through the elimination itself
    for pivoting in (True, False):
        implicit = jax.jit(jax.jacrev(lambda a: solve_small(a, b, pivoting=pivoting)))(a)
        unrolled = jax.jit(jax.jacrev(
            lambda a: _gauss_jordan(a, b[:, None], pivoting)[:, 0]))(a)
        np.testing.assert_allclose(implicit, unrolled, rtol=1e-10, atol=1e-12)


def test_solve_small_without_pivoting_solves_an_m_matrix():
    rng = np.random.default_rng(3)
    b_mat = rng.uniform(size=(9, 9))
    a = np.eye(9) - 0.9 * b_mat / np.abs(np.linalg.eigvals(b_mat)).max()  # I − B, ρ(B) = 0.9
    rhs = rng.normal(size=9)
    np.testing.assert_allclose(solve_small(a, rhs, pivoting=False), np.linalg.solve(a, rhs),
                               rtol=1e-9, atol=1e-11)


def test_solve_small_refuses_bad_shapes():
    with pytest.raises(ValueError, match="one square matrix"):
        solve_small(jnp.ones((2, 3)), jnp.ones(2))
    with pytest.raises(ValueError, match="does not match"):
        solve_small(jnp.eye(3), jnp.ones(2))


class _Predicts:
    """The one method the check looks at."""

    def __init__(self, predict):
        self.predict = predict


def test_a_prediction_through_lapack_is_refused_by_name():
    h, n, d = jnp.array([0.5, 0.5]), jnp.asarray(100.0), jnp.asarray(10.0)
    lapack = _Predicts(lambda h, N, D: jnp.linalg.solve(jnp.eye(2) + jnp.outer(h, h), h) * D)
    with pytest.raises(TypeError, match=r"calls the LAPACK-backed lu.*mixscale.solve_small"):
        check_law_primitives(lapack, h, n, d)
    nested = _Predicts(lambda h, N, D: jax.jit(jnp.linalg.eigh)(jnp.outer(h, h))[0] * N)
    with pytest.raises(TypeError, match="eigh"):
        check_law_primitives(nested, h, n, d)
    plain = _Predicts(lambda h, N, D: solve_small(jnp.eye(2) + jnp.outer(h, h), h) * D)
    check_law_primitives(plain, h, n, d)  # no error
