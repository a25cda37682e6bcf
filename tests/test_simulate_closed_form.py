"""The structured closed form: its quadrature, its accuracy at large P against the recursion,
one compilation for every size, and zero-weight domains."""

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tol

import simulate as sim
from simulate._closed_form import T_SMALL, _closed_form_jit, quadrature_error


@pytest.mark.parametrize("t", [T_SMALL, 50, 1e3, 1e6, 1e12])
def test_quadrature_approximates_mu_to_the_t_uniformly(t):
    """The rational approximation r(μ) ≈ μ^t behind every checkpoint, on a dense grid of
    log μ from 0 to where μ^t underflows: the documented 1e-14 bound."""
    log_mu = -np.concatenate([[0.0], np.geomspace(1e-14, 80.0, 4000)]) / t
    assert quadrature_error(t, log_mu) < 1e-14


def test_large_model_agrees_with_the_recursion():
    """P = 2^14 features, every feature kept, a slow-mixing spectrum: a few checkpoints."""
    model = sim.DisjointTailModel(jnp.array([1.3, 1.8, 2.4]), beta=0.2, sigma2=0.05, head=32,
                                  n_features=2**14, rho=0.1)
    h = np.array([0.5, 0.2, 0.3])
    n = model.n_features
    lr = 0.5 * sim.stable_step_limit(model, h, n)
    ck = [3, 17, 400, 3000]
    rec = np.asarray(sim.expected_losses(model, h, n, sim.Constant(lr), ck))
    closed = np.asarray(sim.closed_form_losses(model, h, n, lr, ck))
    np.testing.assert_allclose(closed, rec, rtol=tol())
    half = np.asarray(sim.closed_form_losses(model, h, n // 2, lr, ck))
    rec_half = np.asarray(sim.expected_losses(model, h, n // 2, sim.Constant(lr), ck))
    np.testing.assert_allclose(half, rec_half, rtol=tol())


def test_one_compilation_serves_every_size_mixture_and_step():
    model = sim.DisjointTailModel(jnp.array([1.5, 2.2]), beta=0.1, sigma2=0.1, head=3, tail=20)
    ck = [5, 50]
    sim.closed_form_losses(model, [0.3, 0.7], 10, 0.2, ck)
    before = _closed_form_jit._cached._cache_size()
    sim.closed_form_losses(model, [0.6, 0.4], 25, 0.3, ck)
    assert _closed_form_jit._cached._cache_size() == before


def test_step_decays_of_one_structure_share_a_compilation_and_match_the_recursion():
    """A step decay scaled to its run (every = steps / 4) at two run lengths: the closed form
    equals the recursion at every checkpoint (mid-run ones included), and the second run reuses
    the first one's program (the phase lengths are traced, only the structure is static); a
    decay with phases shorter than T_SMALL (stepped exactly) still matches the recursion."""
    model = sim.DisjointTailModel(jnp.array([1.5, 2.2]), beta=0.1, sigma2=0.1, head=3, tail=20)
    h, n = [0.3, 0.7], 15
    lr = 0.5 * sim.stable_step_limit(model, h, n)
    for i, steps in enumerate((100, 200)):
        schedule = sim.StepDecay(lr, 0.5, steps // 4)
        ck = [steps // 2, steps]
        closed = np.asarray(sim.closed_form_losses(model, h, n, schedule, ck))
        np.testing.assert_allclose(
            closed, np.asarray(sim.expected_losses(model, h, n, schedule, ck)), rtol=tol())
        if i == 0:
            before = _closed_form_jit._cached._cache_size()
    assert _closed_form_jit._cached._cache_size() == before
    short = sim.StepDecay(lr, 0.7, T_SMALL // 2)
    ck = [T_SMALL // 4, 3 * T_SMALL + 1, 10 * T_SMALL]
    np.testing.assert_allclose(np.asarray(sim.closed_form_losses(model, h, n, short, ck)),
                               np.asarray(sim.expected_losses(model, h, n, short, ck)),
                               rtol=tol())


def test_zero_weight_domain_and_a_single_domain():
    """h_j = 0 drops domain j from the coupling (no division by h); K = 1 works."""
    model = sim.DisjointTailModel(jnp.array([1.5, 2.0, 3.0]), beta=0.0, sigma2=0.02, head=4,
                                  tail=30, rho=0.3)
    for h in ([0.0, 0.0, 1.0], [0.5, 0.5, 0.0]):
        lr = 0.7 * sim.stable_step_limit(model, h, 50)
        ck = [0, 20, 2000]
        np.testing.assert_allclose(
            np.asarray(sim.closed_form_losses(model, h, 50, lr, ck)),
            np.asarray(sim.expected_losses(model, h, 50, sim.Constant(lr), ck)), rtol=tol())
    one = sim.DisjointTailModel(jnp.array([1.7]), beta=0.4, sigma2=0.1, head=0, tail=64)
    np.testing.assert_allclose(
        np.asarray(sim.closed_form_losses(one, [1.0], 40, 0.5, [30, 900])),
        np.asarray(sim.expected_losses(one, [1.0], 40, sim.Constant(0.5), [30, 900])),
        rtol=tol())


def test_closed_form_follows_the_overlap_phase():
    """The closed form's blocks come from the model's own layout, phase included: it equals
    the recursion when the first tail rank is shared, and differs from the phase-0 model."""
    kw = dict(beta=0.0, sigma2=0.02, head=0, tail=30, rho=0.5)
    shifted = sim.DisjointTailModel(jnp.array([1.5, 2.0, 3.0]), overlap_phase=0.5, **kw)
    plain = sim.DisjointTailModel(jnp.array([1.5, 2.0, 3.0]), **kw)
    h, ck = [0.1, 0.3, 0.6], [0, 20, 2000]
    lr = 0.5 * sim.stable_step_limit(shifted, h, 40)
    exact = np.asarray(sim.closed_form_losses(shifted, h, 40, lr, ck))
    np.testing.assert_allclose(
        exact, np.asarray(sim.expected_losses(shifted, h, 40, sim.Constant(lr), ck)),
        rtol=tol())
    assert not np.allclose(exact, np.asarray(sim.closed_form_losses(plain, h, 40, lr, ck)),
                           rtol=1e-3)


@pytest.mark.parametrize("rho", [0.0, 0.3, 1.0])
def test_feature_blocks_group_each_domains_own_features(rho):
    from simulate._closed_form import feature_blocks

    model = sim.DisjointTailModel(jnp.array([1.5, 2.0, 2.5]), head=3, tail=(7, 9, 4), rho=rho)
    perm, blocks = feature_blocks(model.head, model.tails, model.rho)
    member = np.asarray(model.member)[:, perm]
    assert sorted(perm.tolist()) == list(range(model.n_features))
    assert blocks[0][0] == 0 and blocks[-1][1] == model.n_features
    for (start, stop, owner), nxt in zip(blocks, blocks[1:] + ((model.n_features,),),
                                         strict=True):
        assert stop == nxt[0]
        used = member[:, start:stop]
        if owner < 0:
            assert np.all(used.sum(axis=0) != 1)
        else:
            assert np.all(used[owner]) and used.sum() == stop - start


def test_float32_closed_form_runs_and_agrees_with_float64():
    import jax

    h, ck = np.array([0.5, 0.3, 0.2]), [0, 10, 100, 1000, 10**5]

    def run():
        m = sim.DisjointTailModel(jnp.array([1.5, 2.0, 2.6]), beta=0.3,
                                  sigma2=jnp.array([0.01, 0.02, 0.005]), head=5, tail=300,
                                  rho=0.2)
        return np.asarray(sim.closed_form_losses(m, h, 600, 0.3, ck))

    with jax.enable_x64(False):
        f32 = run()
    assert f32.dtype == np.float32
    # float32 resolvents summed over 17 nodes with weights up to e^3.8: ~1e3 ulps
    np.testing.assert_allclose(f32, run(), rtol=100 * tol(np.float32))
