"""Exact expected losses: recursion against an independent dense reference, the closed form,
schedules and mini-batches, and the stable step range."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tol
from helpers import assert_no_retrace

import simulate as sim
from simulate._closed_form import _closed_form_jit
from simulate._recursion import _expected_losses_jit
from simulate._validate import _limits_jit


@pytest.fixture(scope="module")
def model():
    return sim.DisjointTailModel(jnp.array([1.5, 2.0, 2.6]), beta=0.3,
                                 sigma2=jnp.array([0.01, 0.02, 0.005]), head=5, tail=40, rho=0.2)


def _dense_reference(model, h, n, lrs, checkpoints, batch_size):
    """The full P x P second-moment matrix E[e e^T] propagated with the Gaussian fourth-moment
    identity E[x x^T C x x^T] = 2 A C A + tr(A C) A, per domain (no diagonal closure assumed)."""
    a = np.asarray(model.eigenvalues())
    w = np.sqrt(np.asarray(model.signal()))
    kept = np.asarray(model.kept(jnp.asarray(h), n)).astype(float)
    s2 = np.asarray(model.sigma2)
    eps = a @ ((1 - kept) * w * w)
    kw = kept * w
    c = np.outer(kw, kw)  # error on kept coordinates starts at -w*
    pk = np.diag(kept)
    hmat = pk @ np.diag(h @ a) @ pk
    out = {0: s2 + eps + a @ np.diag(c)}
    for t, lr in enumerate(lrs, start=1):
        fourth = sum(h[j] * pk @ (2 * np.diag(a[j]) @ c @ np.diag(a[j])
                                  + (np.trace(np.diag(a[j]) @ c) + s2[j] + eps[j])
                                  * np.diag(a[j])) @ pk for j in range(len(h)))
        mean = hmat @ c @ hmat
        c = (c - lr * (hmat @ c + c @ hmat)
             + lr**2 * (fourth / batch_size + (1 - 1 / batch_size) * mean))
        out[t] = s2 + eps + a @ np.diag(c)
    return np.stack([out[t] for t in checkpoints])


@pytest.mark.parametrize("batch_size, decay", [(1, False), (3, True)])
def test_recursion_matches_full_covariance_reference(model, batch_size, decay):
    small = sim.DisjointTailModel(model.alpha, beta=0.3, sigma2=model.sigma2, head=3, tail=6,
                                  rho=0.4)
    h = np.array([0.45, 0.35, 0.2])
    n = 12
    lr = 0.6 * sim.stable_step_limit(small, h, n, batch_size)
    schedule = sim.StepDecay(lr, 0.5, 7) if decay else sim.Constant(lr)
    ck = [0, 1, 2, 9, 30]
    lrs = [float(lr) * (0.5 ** (t // 7) if decay else 1.0) for t in range(30)]
    want = _dense_reference(small, h, n, lrs, ck, batch_size)
    got = np.asarray(sim.expected_losses(small, h, n, schedule, ck, batch_size))
    np.testing.assert_allclose(got, want, rtol=tol())


@pytest.mark.parametrize("batch_size", [1, 8])
@pytest.mark.parametrize("fraction", [0.1, 0.9])
def test_closed_form_matches_recursion(model, batch_size, fraction):
    h = np.array([0.5, 0.3, 0.2])
    n = 90
    lr = fraction * sim.stable_step_limit(model, h, n, batch_size)
    ck = [0, 1, 7, 100, 1000, 20000]
    rec = np.asarray(sim.expected_losses(model, h, n, sim.Constant(lr), ck, batch_size))
    # D -> infinity as one more checkpoint of the same call (every checkpoint is evaluated on
    # its own from the same state, so this is the same number as a call of its own)
    closed, inf = np.split(np.asarray(sim.closed_form_losses(model, h, n, lr, ck + [10**15],
                                                             batch_size)), [len(ck)])
    np.testing.assert_allclose(closed, rec, rtol=tol())
    # the learned part (loss minus its D -> infinity value) agrees too, not just the floor
    np.testing.assert_allclose(closed[3:] - inf, rec[3:] - inf, rtol=1e-7)


def test_closed_form_handles_zero_weight_domains_and_huge_d(model):
    h = np.array([0.7, 0.3, 0.0])  # domain 2's own tail has lambda = 0: frozen features
    n = model.n_features
    lr = 0.5 * sim.stable_step_limit(model, h, n)
    ck = [0, 50, 3000]
    closed = np.asarray(sim.closed_form_losses(model, h, n, lr, ck))
    rec = np.asarray(sim.expected_losses(model, h, n, sim.Constant(lr), ck))
    np.testing.assert_allclose(closed, rec, rtol=tol())
    far = np.asarray(sim.closed_form_losses(model, h, n, lr, [1e8, 1e12, 1e16]))
    assert np.all(np.isfinite(far)) and np.all(np.diff(far, axis=0) <= 1e-15)


def test_step_decay_agrees_with_constant_until_its_first_decay(model):
    h = np.array([0.2, 0.5, 0.3])
    n = 60
    lr = 0.5 * sim.stable_step_limit(model, h, n)
    ck = [0, 20, 50, 51, 200]
    constant = np.asarray(sim.expected_losses(model, h, n, sim.Constant(lr), ck))
    same = np.asarray(sim.expected_losses(model, h, n, sim.StepDecay(lr, 1.0, 30), ck))
    np.testing.assert_allclose(same, constant, rtol=tol())
    decayed = np.asarray(sim.expected_losses(model, h, n, sim.StepDecay(lr, 0.1, 50), ck))
    np.testing.assert_allclose(decayed[:3], constant[:3], rtol=tol())
    assert np.all(np.abs(decayed[3:] / constant[3:] - 1) > 1e-4)


def test_mini_batches_interpolate_to_full_gradient(model):
    """B -> infinity removes the fourth-moment noise: one step is c <- (1 - γλ)² c."""
    h = np.array([0.2, 0.5, 0.3])
    n = 30
    lr = 0.5
    got = np.asarray(sim.expected_losses(model, h, n, sim.Constant(lr), [3], 10**9))[0]
    a = np.asarray(model.eigenvalues())
    w2 = np.asarray(model.signal())
    kept = np.asarray(model.kept(jnp.asarray(h), n))
    c = np.where(kept, (1 - lr * (h @ a)) ** 6 * w2, w2)
    np.testing.assert_allclose(got, np.asarray(model.sigma2) + a @ c, rtol=1e-7)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_stable_step_limit_is_the_exact_edge(model, batch_size):
    h = np.array([0.6, 0.1, 0.3])
    n = 70
    limit = sim.stable_step_limit(model, h, n, batch_size)
    a = np.asarray(model.eigenvalues())
    kept = np.asarray(model.kept(jnp.asarray(h), n))
    ak = a[:, kept]
    lam, q = h @ ak, h @ ak**2
    g = np.sqrt(h)[:, None] * ak
    quad = np.diag(2 * q / batch_size + (1 - 1 / batch_size) * lam**2) + g.T @ g / batch_size

    def radius(lr):
        return np.abs(np.linalg.eigvalsh(np.eye(lam.size) - 2 * lr * np.diag(lam)
                                         + lr**2 * quad)).max()

    assert radius(limit * (1 - 1e-6)) < 1 < radius(limit * (1 + 1e-6))
    with pytest.raises(ValueError, match=r"unstable.*0 < lr < " + f"{limit:.6g}"):
        sim.expected_losses(model, h, n, sim.Constant(limit * 1.001), [10], batch_size)
    with pytest.raises(ValueError, match="unstable"):
        sim.closed_form_losses(model, h, n, limit * 1.001, [10], batch_size)
    with pytest.raises(ValueError, match="unstable"):  # the schedule's largest step counts
        sim.expected_losses(model, h, n, sim.StepDecay(limit * 1.001, 0.5, 2), [10],
                            batch_size)
    sim.expected_losses(model, h, n, sim.Constant(limit * 0.999), [10], batch_size)


def test_diverges_just_past_the_limit(model):
    """The limit is not merely conservative: just above it the losses grow without bound."""
    h = np.array([0.6, 0.1, 0.3])
    n = 70
    limit = sim.stable_step_limit(model, h, n)
    from simulate._recursion import recursion_losses
    kept = model.kept(jnp.asarray(h), n)
    run = jax.jit(lambda lr: recursion_losses(
        model.eigenvalues(), model.signal(), model.sigma2, jnp.asarray(h), kept,
        sim.Constant(lr), (20000,), 1))
    assert np.all(np.asarray(run(limit * 1.05)) > 1e3)
    assert np.all(np.asarray(run(limit * 0.95)) < 1.0)


def test_no_recompilation_for_new_mixture_size_step_or_batch(model):
    """The batch size is a run-time value too (it enters only as ``1/B``): the simulator's
    optimum, the sweeps and the stability check compile one program for every ``B``."""
    ck = (0, 10)
    sim.expected_losses(model, [0.2, 0.3, 0.5], 10, sim.Constant(0.1), ck)
    sim.closed_form_losses(model, [0.2, 0.3, 0.5], 10, 0.1, ck)
    with assert_no_retrace(_expected_losses_jit, _closed_form_jit, _limits_jit):
        sim.expected_losses(model, [0.5, 0.3, 0.2], 20, sim.Constant(0.2), ck)
        got = sim.expected_losses(model, [0.5, 0.3, 0.2], 20, sim.Constant(0.2), ck, 4)
        closed = sim.closed_form_losses(model, [0.5, 0.3, 0.2], 20, 0.2, ck, 4)
    np.testing.assert_allclose(got, closed, rtol=1e-9)
    # ... and the batch size still counts: a larger batch lowers the SGD noise
    assert np.all(np.asarray(got)[1] < np.asarray(
        sim.expected_losses(model, [0.5, 0.3, 0.2], 20, sim.Constant(0.2), ck))[1])


def test_float32_runs_and_agrees_to_float32_rounding(model):
    h = np.array([0.5, 0.3, 0.2])
    with jax.enable_x64(False):
        m32 = sim.DisjointTailModel(jnp.array([1.5, 2.0, 2.6]), beta=0.3,
                                    sigma2=jnp.array([0.01, 0.02, 0.005]), head=5, tail=40,
                                    rho=0.2)
        got = np.asarray(sim.expected_losses(m32, h, 50, sim.Constant(0.3), [0, 100]))
        assert got.dtype == np.float32
    want = np.asarray(sim.expected_losses(model, h, 50, sim.Constant(0.3), [0, 100]))
    np.testing.assert_allclose(got, want, rtol=200 * tol(np.float32))  # 100 steps of rounding


def test_schedule_segments_cover_every_step_once_and_end_at_every_stop():
    from simulate._schedule import _split_blocks

    for schedule, n in [(sim.StepDecay(1.0, 0.5, 7), 40), (sim.Constant(1.0), 13),
                        (sim.StepDecay(1.0, 0.5, 5), 10)]:
        for stops in [(), (3,), (7, 14), (1, 2, 3, 20, 21, 33), (5, 10)]:
            stops = tuple(s for s in stops if s <= n) + (n,)
            blocks = _split_blocks(schedule.blocks(n), stops)
            lr_of_step = []
            ends = set()
            for start, lrs, length in blocks:
                assert start == len(lr_of_step) and length >= 1
                for g in np.asarray(lrs):
                    lr_of_step += [float(g)] * length
                ends.add(start + lrs.shape[0] * length)
            every = getattr(schedule, "every", n)
            factor = float(getattr(schedule, "factor", 1.0))
            assert lr_of_step == [factor ** (t // every) for t in range(n)]
            assert set(stops) <= ends
