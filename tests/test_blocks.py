"""The block-arrow structure of a fit: compressed Jacobians and the Schur-complement solve equal
their dense counterparts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mixscale._blocks import (
    Blocks,
    compressed_jacobian,
    compressed_jacobian_by_rows,
    factor_normal,
    solve_factored,
    solve_normal_equations,
)


def _arrow_problem(rng, n, owners, m):
    """A random Jacobian ``(n·M, P)`` with the arrow pattern of ``owners`` and residuals."""
    p = len(owners)
    jac = rng.normal(size=(n, m, p))
    for col, owner in enumerate(owners):
        if owner >= 0:
            mask = np.ones(m, bool)
            mask[owner] = False
            jac[:, mask, col] = 0.0
    return jac.reshape(n * m, p), rng.normal(size=n * m)


def _dense_step(jac, r, mu):
    a = jac.T @ jac
    scale = np.maximum(np.diag(a), 1e-12 * np.diag(a).max())
    return np.linalg.solve(a + mu * np.diag(scale), -jac.T @ r), jac.T @ r, scale


@pytest.mark.parametrize("owners", [
    [0, 0, 1, 2, 2, 2, -1, -1],          # uneven blocks and two shared
    [0, 1, 2, 0, 1, 2],                  # per-target only (the baselines)
    [-1, -1, -1, -1],                    # dense
    [1, -1, 1, 2, -1],                   # a target with no own parameter
])
def test_schur_step_equals_dense_step(rng, owners):
    m, n, mu = 3, 7, 0.37
    blocks = Blocks.from_owners(np.array(owners), m)
    jac, r = _arrow_problem(rng, n, owners, m)
    jc = jnp.asarray(jac @ blocks.seeds.T)
    step, g, s = solve_normal_equations(jc, jnp.asarray(r), blocks, jnp.full(m, mu),
                                        jnp.asarray(mu))
    step_d, g_d, s_d = _dense_step(jac, r, mu)
    np.testing.assert_allclose(np.asarray(g), g_d, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(s), s_d, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(step), step_d, rtol=1e-10, atol=1e-12)
    # factored once, solved for two right-hand sides: the same steps
    factors = factor_normal(jc, blocks, jnp.full(m, mu), jnp.asarray(mu))
    np.testing.assert_allclose(np.asarray(factors.scale), s_d, rtol=1e-12)
    for rhs in (r, rng.normal(size=r.shape)):
        step_f, g_f = solve_factored(factors, jnp.asarray(rhs), blocks)
        step_d, g_d, _ = _dense_step(jac, rhs, mu)
        np.testing.assert_allclose(np.asarray(g_f), g_d, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(np.asarray(step_f), step_d, rtol=1e-10, atol=1e-12)


def test_compressed_jacobian_recovers_every_nonzero(rng):
    """A function with the arrow pattern: its compressed Jacobian holds the dense one."""
    m, n = 3, 5
    owners = np.array([0, 1, 1, 2, -1, 0])
    blocks = Blocks.from_owners(owners, m)
    x = jnp.asarray(rng.uniform(0.5, 1.5, size=(n, 1)))

    def fun(p):  # target t: sum of its own parameters' powers times the shared one
        cols = [sum(jnp.exp(p[j] * x[:, 0] * (j + 1)) for j in np.flatnonzero(owners == t))
                * jnp.sin(p[4] + t) for t in range(m)]
        return jnp.stack(cols, axis=1).ravel()

    p0 = jnp.asarray(rng.normal(size=owners.shape[0]))
    r, jc = compressed_jacobian(fun, p0, blocks)
    jc = jc.reshape(n, m, blocks.n_colours)
    dense = np.asarray(jax.jacfwd(fun)(p0)).reshape(n, m, -1)
    np.testing.assert_allclose(np.asarray(r), np.asarray(fun(p0)))
    for t in range(m):
        for k, col in enumerate(blocks.own[t]):
            expect = dense[:, t, col] if col >= 0 else 0.0
            np.testing.assert_allclose(np.asarray(jc[:, t, k]), expect, rtol=1e-13, atol=0)
        for j, col in enumerate(blocks.shared):
            np.testing.assert_allclose(np.asarray(jc[:, t, blocks.width + j]), dense[:, t, col],
                                       rtol=1e-13)


@pytest.mark.parametrize("owners", [
    [0, 1, 1, 2, -1, 0],                 # own blocks and one shared parameter
    [0, 1, 2, 2, 0, 1],                  # per-target only (the additive and joint laws)
])
def test_reverse_own_blocks_equal_the_forward_compressed_jacobian(rng, owners):
    """One reverse pass of each run's summed residuals gives every target's own row: the same
    compressed Jacobian as forward mode (and the shared columns, by forward mode, too)."""
    owners = np.array(owners)
    m, n = 3, 5
    blocks = Blocks.from_owners(owners, m)
    x = jnp.asarray(rng.uniform(0.5, 1.5, size=(n, 1)))
    shared = np.flatnonzero(owners < 0)

    def rows_of(p, xs):  # (len(xs) · M,): target t from its own parameters (and the shared one)
        cols = [sum(jnp.exp(p[j] * xs[:, 0] * (j + 1)) for j in np.flatnonzero(owners == t))
                * (jnp.sin(p[shared[0]] + t) if shared.size else 1.0 + t) for t in range(m)]
        return jnp.stack(cols, axis=1).ravel()

    p0 = jnp.asarray(rng.normal(size=owners.shape[0]))
    r_f, jc_f = compressed_jacobian(lambda p: rows_of(p, x), p0, blocks)
    r, jc = jax.jit(lambda p: compressed_jacobian_by_rows(
        rows_of, x[:, None], p, lambda q: rows_of(q, x), blocks))(p0)
    assert np.abs(np.asarray(jc_f)).max() > 0.1
    np.testing.assert_allclose(np.asarray(r), np.asarray(r_f), rtol=1e-14)
    np.testing.assert_allclose(np.asarray(jc), np.asarray(jc_f), rtol=1e-13, atol=1e-15)
