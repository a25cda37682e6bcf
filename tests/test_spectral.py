"""Numerics of the spectral law (``mixscale/laws/_spectral.py``): the rank quadrature against a
fine reference, and the compressed forward derivative of the own-tail integrals against plain
forward-mode differentiation, in forward and reverse mode. The law's contract (gradients against
finite differences, planted recovery, zero weights) is in ``tests/test_laws.py``; its derivation in
``tests/test_theory_derivation.py``."""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_grad_matches_fd
from jax.flatten_util import ravel_pytree

import mixscale.laws._spectral as spectral
from mixscale._evaluate import predict_in_blocks
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


def _losses(laws: list[SpectralLaw], parts: tuple[str, ...] = ("loss",)) -> np.ndarray:
    """Every domain's loss (or the sum of other ``parts`` of :meth:`SpectralLaw.components`) for
    each law (all of one variant) at every mixture and scale, ``(laws, 4 · 4, K)`` (one
    compilation for all laws)."""
    stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *laws)
    h = jnp.asarray(np.repeat(MIXES, len(SCALES), axis=0))
    n, d = (jnp.asarray(np.tile(col, len(MIXES))) for col in np.asarray(SCALES).T)

    @jax.jit
    @jax.vmap
    def run(law):
        out = jax.vmap(law.components)(h, n, d)
        return sum(out[part] for part in parts)

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

    fwd, rev = jax.jit(lambda p: (jax.jacfwd(pred)(p), jax.jacrev(pred)(p)))(flat)

    def plain(z, eta, smoothing):
        out = spectral._own_tail_terms(z, eta, smoothing)
        return out[0], out[1], out[2]

    monkeypatch.setattr(spectral, "_own_tail", plain)
    ref = jax.jit(jax.jacfwd(pred))(flat)
    assert np.abs(np.asarray(ref)).max() > 1e-3
    np.testing.assert_allclose(fwd, ref, rtol=1e-10, atol=1e-12)
    # the rule is linear in the tangents, so reverse mode transposes it
    np.testing.assert_allclose(rev, ref, rtol=1e-10, atol=1e-12)


def _row_problem():
    """Residuals of the full law (θ > 0, head 8) on 16 runs, as a function of its flat
    parameters, for the two modes of :func:`mixscale._objective.predict_rows`."""
    from mixscale._objective import FitData, residuals

    law = _simulator_like(8.0, theta=0.2)
    params, static = eqx.partition(law, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(params)
    h = jnp.asarray(np.repeat(MIXES, len(SCALES), axis=0))
    n, d = (jnp.asarray(np.tile(col, len(MIXES))) for col in np.asarray(SCALES).T)
    y = predict_in_blocks(law, h, n, d) * (1.0 + 0.01 * np.sin(np.arange(64))
                                                       ).reshape(16, 4)
    mask = np.ones_like(y, dtype=bool)
    mask[3, 1] = False
    data = FitData(weights=h, model_size=n, tokens=d, losses=jnp.asarray(y),
                   mask=jnp.asarray(mask))

    def res(p):
        return residuals(unravel(p), static, data, jnp.asarray(0.02))

    return res, flat + 0.05 * jnp.cos(jnp.arange(flat.size)), (h, n, d, unravel, static)


def _both_modes(monkeypatch, compute):
    """``compute()`` with the spectral law's own row mode (reverse) and with forward mode."""
    assert SpectralLaw.row_jacobian == "reverse"
    got = compute()
    monkeypatch.setattr(SpectralLaw, "row_jacobian", "forward")
    return got, compute()


def test_reverse_row_jacobian_equals_forward_mode(monkeypatch):
    res, p, _ = _row_problem()
    v = jnp.sin(jnp.arange(p.size) + 1.0)
    (jac, curv, grad), (jac_f, curv_f, grad_f) = _both_modes(monkeypatch, lambda: jax.jit(
        lambda q: (jax.jacfwd(res)(q),
                   # the geodesic step's second directional derivative: forward over the rule
                   jax.jvp(lambda z: jax.jvp(res, (z,), (v,))[1], (q,), (v,))[1],
                   jax.grad(lambda z: 0.5 * jnp.sum(res(z) ** 2))(q)))(p))  # one program a mode
    assert np.abs(np.asarray(jac_f)).max() > 1e-2
    np.testing.assert_allclose(jac, jac_f, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(curv, curv_f, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(grad, grad_f, rtol=1e-10, atol=1e-12)


def test_reverse_rows_differentiate_in_the_data_too(monkeypatch):
    from mixscale._objective import predict_rows

    _, p, (h, n, d, unravel, static) = _row_problem()
    dh = jnp.asarray(np.linspace(-1.0, 1.0, h.size).reshape(h.shape)) * 0.01

    def along_h(q):
        return jax.jvp(lambda hh: predict_rows(unravel(q), static, hh, n, d), (h,), (dh,))[1]

    got, ref = _both_modes(monkeypatch, lambda: jax.jit(along_h)(p))
    assert np.abs(np.asarray(ref)).max() > 1e-6
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-14)


def test_unknown_row_jacobian_mode_is_refused(monkeypatch):
    import pytest

    from mixscale._objective import predict_rows

    _, p, (h, n, d, unravel, static) = _row_problem()
    monkeypatch.setattr(SpectralLaw, "row_jacobian", "sideways")
    with pytest.raises(ValueError,
                       match=r"row_jacobian must be one of .*'reverse-own'.*not 'sideways'"):
        predict_rows(unravel(p), static, h, n, d)


# ------------------------------------------------------------------ dispersed ranks
def test_remaining_error_is_the_gamma_laplace_transform():
    """``remaining(s, q)`` is ``E[exp(−s Z)]`` for ``Z ~ Gamma(shape 1/q, mean 1)``: checked by
    quadrature of the Gamma density; ``q = 0`` (and ``q`` below the series' threshold) is
    ``exp(−s)``; ``∂/∂q`` through the series matches the closed form's finite difference."""
    from scipy import integrate, stats

    s = np.array([0.01, 0.3, 1.0, 4.0, 30.0])
    for q in (0.1, 0.9, 3.0):
        law = np.asarray(spectral.remaining(jnp.asarray(s), jnp.asarray(q)))
        ref = [integrate.quad(lambda z, v=v: np.exp(-v * z) * stats.gamma.pdf(z, 1 / q, scale=q),
                              0, np.inf, limit=200)[0] for v in s]
        np.testing.assert_allclose(law, ref, rtol=1e-7)
    np.testing.assert_allclose(np.asarray(spectral.remaining(jnp.asarray(s), jnp.asarray(0.0))),
                               np.exp(-s), rtol=1e-14)
    q = 1e-9  # below the series' threshold: the series, not exp(−s), against the closed form
    np.testing.assert_allclose(np.asarray(spectral.remaining(jnp.asarray(s), jnp.asarray(q))),
                               np.exp(-np.log1p(q * s) / q), rtol=1e-12)
    d_q = jax.grad(lambda q: spectral.remaining(jnp.asarray(2.0), q))(1e-9)
    np.testing.assert_allclose(float(d_q), 2.0 * np.exp(-2.0), rtol=1e-6)  # ∂/∂q at 0: s²/2·e^{-s}


def test_dispersed_variant_at_zero_dispersion_is_transfer():
    """``q = 0`` gives the ``transfer`` law's losses to rounding; ``q > 0`` leaves more error
    on every partly learned rank, so every loss rises."""
    b = ALPHA - 1.0
    common = dict(b=b, c=1.0 / b, alpha=ALPHA, E=np.full(4, 0.1), H=8.0, nu=1.0, delta=0.5,
                  eta=0.12, theta=0.1, rho=0.3)
    transfer = SpectralLaw.from_params(variant="transfer", **common)
    zero, some = (SpectralLaw.from_params(variant="dispersed", dispersion=q, **common)
                  for q in (0.0, 0.8))
    base = _losses([transfer])[0]
    np.testing.assert_allclose(_losses([zero])[0], base, rtol=1e-12)
    assert np.all(_losses([some])[0] > base)


def test_offset_variant_nests_transfer_and_moves_the_loss_through_its_first_tail_ranks():
    """The declared embedding of ``transfer`` in ``offset`` (``ψ = 0``) gives its losses
    (to rounding: the offset's terms add zeros); ``ψ < 0`` (the top tail ranks own) raises
    every domain's tail error (own ranks are learned from its share alone, shared ones from the
    whole mixture), ``ψ > 0`` lowers it; the loss is continuous in ``ψ`` across 0 with equal
    one-sided derivatives (``κ t_c = −ψ``); an offset outside ``[−1, 1]`` is refused."""
    b = ALPHA - 1.0
    common = dict(b=b, c=1.0 / b, alpha=ALPHA, E=np.full(4, 0.1), H=2.0, nu=1.0, delta=0.5,
                  eta=0.12, theta=0.1, rho=0.3)
    transfer = SpectralLaw.from_params(variant="transfer", **common)
    (options, embed), = SpectralLaw.nested(variant="offset")
    assert options == {"variant": "transfer"}
    nested = embed(transfer)
    assert nested.variant == "offset" and float(nested.psi) == 0.0
    np.testing.assert_allclose(_losses([nested])[0], _losses([transfer])[0], rtol=1e-14)
    below, above = (SpectralLaw.from_params(variant="offset", psi=p, **common)
                    for p in (-0.5, 0.5))
    assert np.max(np.abs(_losses([below])[0] / _losses([transfer])[0] - 1)) > 1e-3

    # an own rank is learned at h_i a_i(u) < T(u) (unkept at a zero weight), a shared one at
    # T(u): more own ranks on top leave more error on every domain (equal where every rank is
    # learned either way)
    tail = ("B_tail", "U")
    base, (low, high) = _losses([transfer], tail)[0], _losses([below, above], tail)
    assert np.all(low >= base * (1 - 1e-12)) and np.all(high <= base * (1 + 1e-12))
    assert np.mean(low > 1.001 * base) > 0.25 and np.mean(high < base / 1.001) > 0.25

    h, N, D = jnp.asarray(MIXES[1]), 48.0, 3000.0

    @jax.jit
    def loss(psi):
        return eqx.tree_at(lambda m: m.psi, nested, psi).predict(h, N, D)

    step = 1e-6
    at, up, down = (np.asarray(loss(jnp.asarray(p))) for p in (0.0, step, -step))
    np.testing.assert_allclose((up - at) / step, (at - down) / step, rtol=1e-4)
    with pytest.raises(ValueError, match="psi"):
        SpectralLaw.from_params(variant="offset", psi=1.5, **common)


def test_smoothed_law_is_exact_at_zero_close_at_small_tau_and_smooth_across_a_rank_kink():
    """``smoothed(τ)``, the kink continuation's laws: ``τ = 0`` is the exact law; the
    loss moves by ``O(τ)``; and at a kink of the exact law (the head ending exactly on a rank
    boundary, ``H/ν = 1``, where the exact top ranks' weights are piecewise linear) the exact
    loss has one-sided derivatives in ``log H`` that differ, while the smoothed law's gradient
    matches central differences (reverse mode, as the fitter takes it). Bad temperatures are
    refused."""
    base = _simulator_like(head=1.0)
    # transfer: every kink of full (floors, rank weights, min(H, N)) and the shared rank's
    law = SpectralLaw.from_params(variant="transfer", rho=0.3, **base.natural_parameters())
    h, N, D, tau = jnp.asarray(MIXES[0]), 16.0, 300.0, 1e-3

    @functools.partial(jax.jit, static_argnames="smoothing")
    def loss(log_h, smoothing):
        return eqx.tree_at(lambda m: m.log_H, law.smoothed(smoothing), log_h).predict(h, N, D)

    # smoothed(0) is the law itself (same static structure, so the same compiled program)
    assert law.smoothed(0.0).kink_smoothing == law.kink_smoothing == 0.0
    z, step = jnp.asarray(0.0), 1e-6  # log H = 0: the head ends on rank 1's boundary
    at, up, down = (np.asarray(loss(v, smoothing=0.0)) for v in (z, z + step, z - step))
    right, left = (up - at) / step, (at - down) / step
    assert np.max(np.abs(right - left)) > 1e-3 * np.max(np.abs(right))
    moved = np.abs(np.asarray(loss(z, smoothing=tau)) / at - 1)
    assert 0 < np.max(moved) < 10 * tau, moved
    assert_grad_matches_fd(functools.partial(loss, smoothing=tau), np.zeros(()), rtol=1e-5,
                           atol=1e-9, eps=1e-7, mode="rev", jit=True)
    for bad in (-1e-3, float("nan"), True, "1e-3"):
        with pytest.raises(ValueError, match="smoothing"):
            base.smoothed(bad)


@pytest.mark.parametrize("variant", ["full", "transfer", "offset"])
def test_kink_gaps_vanish_where_the_loss_has_a_kink_and_not_elsewhere(variant):
    """``kink_gaps`` for the certificate: on the head's rank kink (``H/ν = 1``) one gap is 0
    and the loss's one-sided derivatives in ``log H`` differ; at a point whose gaps all exceed
    1e-3 the one-sided derivatives agree. The shapes are ``2K + 2`` (``2K + 4`` with shared
    ranks, ``3K + 6`` with their offset); a zero-weight domain's floor gap is ``inf``."""
    base = _simulator_like(head=1.0)
    extra = {"full": {}, "transfer": {"rho": 0.3}, "offset": {"rho": 0.3, "psi": -0.2}}[variant]
    law = SpectralLaw.from_params(variant=variant, **extra, **base.natural_parameters())
    h, N, D, k = jnp.asarray(MIXES[0]), 16.0, 300.0, 4

    @jax.jit
    def loss_and_gaps(log_h):
        moved = eqx.tree_at(lambda m: m.log_H, law, log_h)
        return moved.predict(h, N, D), moved.kink_gaps(h, N, D)

    step = 1e-6
    for log_h, on_kink in ((0.0, True), (0.3, False)):
        at, gaps = (np.asarray(x) for x in loss_and_gaps(jnp.asarray(log_h)))
        up, down = (np.asarray(loss_and_gaps(jnp.asarray(log_h + s))[0]) for s in (step, -step))
        right, left = (up - at) / step, (at - down) / step
        jump = np.max(np.abs(right - left)) / np.max(np.abs(right))
        assert gaps.shape == (2 * k + 2 + {"full": 0, "transfer": 2, "offset": k + 4}[variant],)
        if on_kink:
            assert np.min(np.abs(gaps)) < 1e-12 and jump > 1e-3
        else:
            assert np.min(np.abs(gaps)) > 1e-3 and jump < 1e-4, (gaps, jump)
    zero = np.asarray(law.kink_gaps(jnp.asarray(MIXES[2]), N, D))  # MIXES[2] has zero weights
    assert np.isinf(zero[[0, 3]]).all() and np.isfinite(zero[[1, 2]]).all()


@pytest.mark.parametrize("tail", ["own", "shared"])
def test_offset_kink_where_its_end_meets_a_tail_end_is_listed(tail):
    """The offset's first ``t_c`` tail ranks end at ``min(u_H + t_c, u)`` for each tail end
    ``u``: where ``u_H + t_c`` equals an own tail's end ``u_i`` (or the shared ``u_s``) the
    loss has a kink in ``ψ``, and a gap of ``kink_gaps`` is zero there; a little off it the
    one-sided derivatives agree and no gap is near zero. (An ``extrapolation_sim`` fit ended
    on such a kink, uncertified, while it was not listed.)"""
    rho = {"own": 0.05, "shared": 0.3}[tail]
    law = SpectralLaw.from_params(variant="offset", rho=rho, psi=-0.1,
                                  **_simulator_like(head=2.3).natural_parameters())
    h, N, D, k = jnp.asarray(MIXES[0]), 48.0, 3000.0, 4
    x, x_s = law.shared_allocation(h, jnp.asarray(N))
    u_head = float(law.H) / float(law.nu)
    tails = np.append((np.asarray(x) - float(law.H)) / float(law.nu) + u_head,
                      (float(x_s) - float(law.H)) / float(law.nu) + u_head)
    target = tails[:k].min() if tail == "own" else tails[k]
    assert target > u_head + 1
    # ψ < 0: t_c = −ψ/ρ, so the offset's end u_H + t_c lands on the chosen tail's end
    psi_kink = -rho * (target - u_head)

    @jax.jit
    def loss_and_gaps(psi):
        moved = eqx.tree_at(lambda m: m.psi, law, psi)
        return moved.predict(h, N, D), moved.kink_gaps(h, N, D)

    step = 1e-7
    for psi, on_kink in ((psi_kink, True), (psi_kink + 0.05 * rho, False)):
        at, gaps = (np.asarray(v) for v in loss_and_gaps(jnp.asarray(psi)))
        up, down = (np.asarray(loss_and_gaps(jnp.asarray(psi + s))[0]) for s in (step, -step))
        right, left = (up - at) / step, (at - down) / step
        jump = np.max(np.abs(right - left)) / np.max(np.abs(right) + np.abs(left))
        assert gaps.shape == (3 * k + 6,)
        if on_kink:
            assert np.min(np.abs(gaps)) < 1e-9 and jump > 1e-3, (gaps, jump)
        else:
            assert np.min(np.abs(gaps)) > 1e-3 and jump < 1e-4, (gaps, jump)
