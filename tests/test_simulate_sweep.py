"""Sweeps as loss tables, sharding over forced host devices, and the ground-truth optimum."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tol

import simulate as sim
from mixscale.data import LossTable


@pytest.fixture(scope="module")
def model():
    return sim.DisjointTailModel(jnp.array([1.5, 2.0, 2.5]), beta=0.3, sigma2=0.05, head=4,
                                 tail=30, rho=0.1, names=("code", "web", "books"))


def test_sweep_returns_a_loss_table_matching_single_runs(model, rng):
    mixtures = rng.dirichlet(np.ones(3), size=4)
    sizes = [10, 25, 60]
    ck = [10, 100, 1000]
    schedule = sim.Constant(0.2)
    table = sim.sweep(model, mixtures, sizes, ck, schedule, batch_size=2)
    assert isinstance(table, LossTable)
    assert table.n_runs == 4 * 3 * 3 and table.loss_domains == ("code", "web", "books")
    assert (table.size_unit, table.token_unit) == (1.0, 1.0)
    assert table.scales() == {"model_size": [10.0, 25.0, 60.0], "tokens": [20.0, 200.0, 2000.0]}
    assert table.meta["model"]["alpha"] == [1.5, 2.0, 2.5]
    assert table.meta["schedule"] == {"kind": "Constant", "lr": 0.2}
    assert table.meta["batch_size"] == 2 and table.meta["checkpoint_steps"] == ck
    json.dumps(table.meta)
    for row in (0, 13, 35):
        m, s, c = np.unravel_index(row, (4, 3, 3))
        np.testing.assert_array_equal(table.weights[row], mixtures[m])
        assert table.row_tags["mixture_id"][row] == m and table.row_tags["steps"][row] == ck[c]
        single = np.asarray(sim.expected_losses(model, mixtures[m], sizes[s], schedule, [ck[c]],
                                                2))[0]
        np.testing.assert_allclose(table.losses[row], single, rtol=tol())


def test_sweep_refuses_zero_checkpoints_and_unstable_pairs(model):
    with pytest.raises(ValueError, match=">= 1"):
        sim.sweep(model, [[0.3, 0.3, 0.4]], [10], [0, 10], sim.Constant(0.1))
    limit = sim.stable_step_limit(model, [0.0, 0.0, 1.0], 60)
    with pytest.raises(ValueError, match=r"unstable: for mixture h=.* with N=60.*0 < lr <"):
        sim.sweep(model, [[0.3, 0.3, 0.4], [0.0, 0.0, 1.0]], [10, 60], [10],
                  sim.Constant(limit * 1.01))


_SHARDED = textwrap.dedent("""
    import json, sys
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh
    import simulate as sim
    assert jax.device_count() == 4, jax.devices()
    model = sim.DisjointTailModel(jnp.array([1.5, 2.0, 2.5]), beta=0.3, sigma2=0.05, head=4,
                                  tail=31, rho=0.1)
    mixtures = np.random.default_rng(0).dirichlet(np.ones(3), size=7)  # 7: needs padding
    args = (model, mixtures, [10, 40], [1, 10, 300], sim.StepDecay(0.3, 0.5, 100))
    ref = sim.sweep_losses(*args)
    devs = np.array(jax.devices())
    mix = sim.sweep_losses(*args, mesh=Mesh(devs, ("mixtures",)))
    both = sim.sweep_losses(*args, mesh=Mesh(devs.reshape(2, 2), ("mixtures", "features")))
    closed = sim.sweep_losses(*args, method="closed_form")
    closed_mix = sim.sweep_losses(*args, method="closed_form", mesh=Mesh(devs, ("mixtures",)))
    print(json.dumps({"mix_equal": bool(np.array_equal(ref, mix)),
                      "mix_rel": float(np.max(np.abs(mix / ref - 1))),
                      "both_rel": float(np.max(np.abs(both / ref - 1))),
                      "closed_rel": float(np.max(np.abs(closed / ref - 1))),
                      "closed_mix_rel": float(np.max(np.abs(closed_mix / closed - 1))),
                      "shape": list(mix.shape), "n_features": model.n_features}))
""")


def test_sharded_sweep_equals_single_device():
    # the suite's compile flags (tests/conftest.py) and its compilation cache, plus 4 devices
    env = dict(os.environ, XLA_FLAGS=os.environ.get("XLA_FLAGS", "")
               + " --xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    if jax.config.jax_compilation_cache_dir:
        env["JAX_COMPILATION_CACHE_DIR"] = jax.config.jax_compilation_cache_dir
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", _SHARDED], env=env, cwd=root,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["shape"] == [7, 2, 3, 3] and res["n_features"] % 2 == 1  # both pads exercised
    # Same programme per mixture; XLA's CPU matmul may block the feature reduction differently
    # for a per-device batch of 2 than for 8, so agreement is to a few ulps, not bitwise.
    eps = np.finfo(np.float64).eps
    assert res["mix_rel"] <= 8 * eps, res
    assert res["both_rel"] <= 1e-13, res  # feature sharding reorders the reductions' additions
    assert res["closed_rel"] <= 1e-10, res  # the closed form, sharded over mixtures too
    assert res["closed_mix_rel"] <= 1e-13, res


@pytest.mark.parametrize("method", ["gradient", "compass"])
def test_optimal_mixture_beats_a_fine_lattice(method):
    model = sim.DisjointTailModel(jnp.array([1.4, 2.2, 3.0]), beta=0.2,
                                  sigma2=jnp.array([0.2, 0.05, 0.1]), head=3, tail=25)
    n, steps, schedule = 30, 200, sim.Constant(0.3)
    opt = sim.optimal_mixture(model, n, steps, schedule, tol=1e-3, method=method)
    lattice = sim.simplex_lattice(3, 60)
    brute = sim.sweep_losses(model, lattice, [n], [steps], schedule)[:, 0, 0].mean(axis=1)
    best = int(np.argmin(brute))
    assert float(opt.loss) <= brute[best] + 1e-12
    assert np.abs(np.asarray(opt.weights) - lattice[best]).max() <= 2 / 60 + 1e-3
    again = sim.expected_losses(model, np.asarray(opt.weights), n, schedule, [steps])[0]
    np.testing.assert_allclose(float(opt.loss), float(np.mean(again)), rtol=tol())
    np.testing.assert_allclose(np.asarray(opt.losses), np.asarray(again), rtol=tol())
    # a target on one domain moves the optimum toward it
    opt0 = sim.optimal_mixture(model, n, steps, schedule, target=[1.0, 0.0, 0.0], tol=1e-2,
                               method=method)
    assert float(opt0.weights[0]) > float(opt.weights[0])


@pytest.mark.parametrize("method", ["gradient", "compass"])
def test_optimal_mixture_two_domains_against_a_dense_line(method):
    model = sim.DisjointTailModel(jnp.array([1.5, 2.5]), beta=0.0, sigma2=jnp.array([0.1, 0.3]),
                                  head=2, tail=40)
    n, steps, schedule = 25, 300, sim.Constant(0.3)
    opt = sim.optimal_mixture(model, n, steps, schedule, tol=1e-4, method=method)
    grid = np.linspace(0, 1, 1001)
    line = np.stack([grid, 1 - grid], axis=1)
    brute = sim.sweep_losses(model, line, [n], [steps], schedule)[:, 0, 0].mean(axis=1)
    assert float(opt.loss) <= brute.min() + 1e-12
    assert abs(float(opt.weights[0]) - grid[np.argmin(brute)]) <= 1e-3


def test_optimal_mixture_methods_agree_and_derivatives_match_finite_differences():
    """The gradient search and the compass search land on the same optimum (K = 4, a step
    decay), and the exact gradient within a piece matches central differences."""
    from simulate._optimum import _CHUNK, _derivatives, _kernel_arguments, _objective

    model = sim.DisjointTailModel(jnp.array([1.3, 1.8, 2.2, 2.9]), beta=0.1,
                                  sigma2=jnp.array([0.1, 0.2, 0.05, 0.15]), head=4, tail=30)
    n, steps, schedule = 60, 400, sim.StepDecay(0.3, 0.5, 150)
    grad = sim.optimal_mixture(model, n, steps, schedule)
    compass = sim.optimal_mixture(model, n, steps, schedule, method="compass")
    assert float(grad.loss) <= float(compass.loss) + 1e-12
    assert np.abs(np.asarray(grad.weights) - np.asarray(compass.weights)).max() < 2e-3
    h = np.asarray([0.4, 0.3, 0.2, 0.1])
    # The arguments exactly as optimal_mixture passes them, in batches of the sizes its search
    # used (8 starts; _CHUNK mixtures), so both kernels are the ones the search compiled.
    args = _kernel_arguments(np.int64(n), schedule, [steps], 1, np.full(4, 0.25), jnp.float64)
    g, hess = (np.asarray(x)[0] for x in _derivatives(model, jnp.tile(h, (8, 1)), *args))
    eps = 1e-6
    moves = []
    for i, j in [(0, 1), (2, 3)]:
        d = np.zeros(4)
        d[i], d[j] = eps, -eps  # a move within the simplex and (small) within the piece
        moves.append(d)
    points = np.tile(h, (_CHUNK, 1))
    points[:4] = [h + moves[0], h - moves[0], h + moves[1], h - moves[1]]
    f = np.asarray(_objective(model, jnp.asarray(points), *args)[0])
    for m, d in enumerate(moves):
        np.testing.assert_allclose((f[2 * m] - f[2 * m + 1]) / 2, g @ d, rtol=1e-6)
        np.testing.assert_allclose(hess, hess.T, rtol=1e-8, atol=1e-12)
    with pytest.raises(ValueError, match="method must be one of"):
        sim.optimal_mixture(model, n, steps, schedule, method="nelder-mead")
