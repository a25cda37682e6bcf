"""Numerics of the spectral law (``mixscale/laws/_spectral.py``): the rank quadrature against a
fine reference, and the compressed forward derivative of the own-tail integrals against plain
forward-mode differentiation, in forward and reverse mode. The law's contract (gradients against
finite differences, planted recovery, zero weights) is in ``tests/test_laws.py``; its derivation in
``tests/test_theory_derivation.py``."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

import mixscale.laws._spectral as spectral
from mixscale.laws import SpectralLaw

ALPHA = np.array([1.3, 1.7, 2.1, 2.5])
MIXES = np.array([[0.4, 0.3, 0.2, 0.1], [0.05, 0.15, 0.3, 0.5], [0.0, 0.5, 0.5, 0.0],
                  [0.7, 0.1, 0.1, 0.1]])
SCALES = [(16.0, 300.0), (48.0, 3000.0), (128.0, 1000.0), (512.0, 12000.0)]


def _simulator_like(head: float, theta: float = 0.0) -> SpectralLaw:
    """The full law at the linear theory's values (``b = α − 1``, ``c = 1/b``, ``ν = 1``)."""
    b = ALPHA - 1.0
    return SpectralLaw.from_params(b=b, c=1.0 / b, alpha=ALPHA, E=np.full(4, 0.1), H=head,
                                   nu=1.0, delta=0.5, eta=0.12, theta=theta)


def _losses(laws: list[SpectralLaw]) -> np.ndarray:
    """Every domain's loss for each law at every mixture and scale, ``(laws, 4 · 4, K)`` (one
    compilation for all laws)."""
    stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *laws)
    h = jnp.asarray(np.repeat(MIXES, len(SCALES), axis=0))
    n, d = (jnp.asarray(np.tile(col, len(MIXES))) for col in np.asarray(SCALES).T)

    @jax.jit
    @jax.vmap
    def run(law):
        return jax.vmap(law.components)(h, n, d)["loss"]

    return np.asarray(run(stacked))


def test_rank_quadrature_matches_a_fine_reference(monkeypatch):
    laws = [_simulator_like(head) for head in (0.01, 8.0, 32.0)]
    got = _losses(laws)
    monkeypatch.setattr(spectral, "N_NODES", 200)
    ref = _losses(laws)
    # the default node count is a cost/accuracy choice: far below any fit's error here
    np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_compressed_tail_derivative_equals_plain_autodiff(monkeypatch):
    law = _simulator_like(8.0, theta=0.2)
    params, static = eqx.partition(law, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(params)
    h = jnp.asarray(MIXES)
    n = jnp.asarray([16.0, 48.0, 128.0, 512.0])
    d = jnp.asarray([300.0, 3000.0, 1000.0, 12000.0])

    def pred(p):
        return jax.vmap(eqx.combine(unravel(p), static).predict)(h, n, d)

    fwd, rev = jax.jit(jax.jacfwd(pred))(flat), jax.jit(jax.jacrev(pred))(flat)

    def plain(z, eta):
        out = spectral._own_tail_terms(z, eta)
        return out[0], out[1], out[2]

    monkeypatch.setattr(spectral, "_own_tail", plain)
    ref = jax.jit(jax.jacfwd(pred))(flat)
    assert np.abs(np.asarray(ref)).max() > 1e-3
    np.testing.assert_allclose(fwd, ref, rtol=1e-10, atol=1e-12)
    # the rule is linear in the tangents, so reverse mode transposes it
    np.testing.assert_allclose(rev, ref, rtol=1e-10, atol=1e-12)
