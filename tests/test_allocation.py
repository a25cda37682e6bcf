"""The exact capacity-allocation solve: brute force, KKT, top-N feature counts, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_compiles_nothing, assert_grad_matches_fd, compile_once, num_traces
from scipy.optimize import minimize

from mixscale import allocate, log_allocation, log_shared_allocation


def _random_case(rng, k, zeros=0, floor_some=False):
    h = rng.dirichlet(np.ones(k))
    if zeros:
        h[rng.choice(k, zeros, replace=False)] = 0.0
        h /= h.sum()
    if floor_some:  # tiny weights push their domains onto the floor x_i = H
        h[0] = 1e-6
        h /= h.sum()
    b = rng.uniform(0.1, 1.5, k)
    c = rng.uniform(0.3, 3.0, k)
    return h, b, c


def _kkt_residual(x, h, b, c, N, H):
    """Largest relative violation of the KKT conditions of the allocation problem."""
    k = len(h)
    budget = N + (k - 1) * H
    marginal = h * b * c * x ** (-b - 1.0)  # minus d/dx_i of the objective
    active = x > H * (1 + 1e-13)
    lam = np.median(marginal[active])
    viol = [abs(x.sum() - budget) / budget, max(0.0, (H - x.min()) / H)]
    viol.append(np.max(np.abs(marginal[active] - lam) / lam))
    if (~active).any():  # a floored domain must not want more capacity than the price
        viol.append(max(0.0, np.max((marginal[~active] - lam) / lam)))
    return max(viol)


@pytest.mark.parametrize("k, zeros, floor_some", [(2, 0, False), (5, 1, True), (12, 3, True),
                                                  (7, 0, True)])
def test_matches_brute_force_slsqp(rng, k, zeros, floor_some):
    for _ in range(3):
        h, b, c = _random_case(rng, k, zeros, floor_some)
        N, H = float(rng.uniform(5, 50)), float(rng.uniform(0.1, 2.0))
        x = np.asarray(allocate(h, b, c, N, H))
        budget = N + (k - 1) * H
        res = minimize(lambda v: np.sum(h * c * v ** (-b)), np.full(k, budget / k),
                       jac=lambda v: -h * b * c * v ** (-b - 1.0), method="SLSQP",
                       bounds=[(H, None)] * k,
                       constraints=[{"type": "eq", "fun": lambda v: v.sum() - budget,
                                     "jac": lambda v: np.ones_like(v)}],
                       options={"ftol": 1e-16, "maxiter": 2000})
        np.testing.assert_allclose(x, res.x, rtol=1e-6)
        assert np.all(x[h == 0] == pytest.approx(H, rel=1e-12))


@pytest.mark.parametrize("k", [3, 17, 64])
@pytest.mark.parametrize("n_over_h", [1.0 + 1e-9, 1.001, 10.0, 1e4, 1e12])
def test_kkt_holds_to_1e10_over_budget_range(rng, k, n_over_h):
    h, b, c = _random_case(rng, k, zeros=k // 4)
    H = 0.7
    N = H * n_over_h
    x = np.asarray(allocate(h, b, c, N, H))
    assert np.all(np.isfinite(x))
    assert _kkt_residual(x, h, b, c, N, H) < 1e-10


def test_degenerate_budget_puts_every_domain_on_the_floor():
    h = jnp.array([0.2, 0.3, 0.5])
    x = allocate(h, jnp.ones(3), jnp.ones(3), 0.5, 1.0)  # N <= H: no room beyond the head
    np.testing.assert_array_equal(np.asarray(x), np.ones(3))
    g = jax.grad(lambda n: allocate(h, jnp.ones(3), jnp.ones(3), n, 1.0).sum())(0.5)
    assert g == 0.0


@pytest.mark.parametrize("k", [4, 64])
@pytest.mark.parametrize("excess", [0.0, 2.0**-52, 1e-13])
def test_budget_used_up_by_the_floors_to_rounding_is_finite(rng, k, excess):
    """N just above H (a fitted head on its bound, the smallest model size, predicted there):
    every domain sits on its floor to rounding, the budget residual is flat, and the Newton
    step must not divide by its zero slope (it gave NaN, for every predicted loss)."""
    h, b, c = _random_case(rng, k)
    H = 199.99999999999991
    N = H * (1.0 + excess)
    log_x = np.asarray(log_allocation(jnp.asarray(h), jnp.asarray(b), jnp.asarray(c), N, H))
    np.testing.assert_allclose(log_x, np.log(H), rtol=1e-12)
    grads = jax.grad(lambda n, hh: log_allocation(hh, jnp.asarray(b), jnp.asarray(c), n,
                                                  H).sum(), argnums=(0, 1))(N, jnp.asarray(h))
    assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)


def test_allocation_counts_the_top_eigen_directions():
    """Shared head of S features plus disjoint tails l^{-α_i}: keeping the N largest eigenvalues
    of H(h) = Σ_j h_j A_j gives each domain S + (#kept tail features) = x_i* within ±1, with
    b = α - 1 and c = 1/b (so that h_i b_i c_i x^{-b_i-1} = h_i x^{-α_i})."""
    alpha = np.array([1.4, 1.9, 2.6])
    S, L = 20, 20000
    l_idx = np.arange(1, L + 1, dtype=np.float64)
    for h in (np.array([0.2, 0.3, 0.5]), np.array([0.6, 0.1, 0.3]), np.array([0.0, 0.5, 0.5])):
        head = sum(h[i] * l_idx[:S] ** -alpha[i] for i in range(3))
        tails = [h[i] * l_idx[S:] ** -alpha[i] for i in range(3)]
        eig = np.concatenate([head] + tails)
        owner = np.concatenate([np.full(S, -1)] + [np.full(L - S, i) for i in range(3)])
        for N in (60, 300, 2000):
            kept = np.argsort(-eig, kind="stable")[:N]
            counts = np.array([S + np.sum(owner[kept] == i) for i in range(3)])
            b = alpha - 1.0
            x = np.asarray(allocate(h, b, 1.0 / b, float(N), float(S)))
            assert np.all(np.abs(counts - x) <= 1.0), (h, N, counts, x)


def test_gradients_match_finite_differences(rng):
    k = 6
    h, b, c = _random_case(rng, k, zeros=1, floor_some=True)
    N, H = 30.0, 0.8
    args = dict(h=h, b=b, c=c, N=np.float64(N), H=np.float64(H))
    x = np.asarray(allocate(**args))
    active = x > H
    assert active.sum() >= 3 and (~active).sum() >= 2  # both regimes are exercised
    # One function of every argument stacked (h, b, c, N, H): one compiled function and
    # Jacobian per mode, each column still compared with its own central difference.
    sizes = {name: np.size(v) for name, v in args.items()}
    bounds = np.cumsum([0, *sizes.values()])

    def f(z):
        parts = {name: z[lo:hi].reshape(np.shape(args[name])) for name, lo, hi in
                 zip(args, bounds[:-1], bounds[1:], strict=True)}
        return log_allocation(**parts)

    z = np.concatenate([np.ravel(v) for v in args.values()])
    labels = [f"{name}[{i}]" for name, n in sizes.items() for i in range(n)]
    jac = assert_grad_matches_fd(f, z, rtol=1e-5, atol=1e-8, err_msg=f"columns: {labels}",
                                 jit=True)
    jac_rev = np.asarray(jax.jit(jax.jacrev(f))(jnp.asarray(z)))
    np.testing.assert_allclose(jac_rev, jac, rtol=1e-10, atol=1e-12, err_msg=f"{labels}")


def test_jit_and_vmap_agree_and_do_not_recompile(rng):
    k = 5
    hs = rng.dirichlet(np.ones(k), size=8)
    b, c = rng.uniform(0.2, 1.0, k), rng.uniform(0.5, 2.0, k)
    plain = np.stack([np.asarray(allocate(h, b, c, 20.0, 0.5)) for h in hs])
    # Both raise on a second trace: new values of the same shapes must reuse the compilation.
    jitted = compile_once(allocate)
    batched = compile_once(jax.vmap(allocate, in_axes=(0, None, None, None, None)))
    np.testing.assert_allclose(np.asarray(batched(hs, b, c, 20.0, 0.5)), plain, rtol=1e-13)
    for h, p in zip(hs, plain, strict=True):
        np.testing.assert_allclose(np.asarray(jitted(h, b, c, 20.0, 0.5)), p, rtol=1e-13)
    assert num_traces(jitted) == num_traces(batched) == 1


def test_eager_calls_compile_nothing_for_new_values_of_the_same_shapes(rng):
    """Outside ``jax.jit`` the Newton loops (both solves, exact and smoothed, the temperature as
    a number and as an array) are compiled on the first call of a shape only; a loop whose body
    closed over fresh inputs would compile again on every call."""
    k = 4
    b, c = rng.uniform(0.2, 1.0, k), rng.uniform(0.5, 2.0, k)

    def calls(h):
        return [allocate(h, b, c, 20.0, 0.5), log_allocation(h, b, c, 20.0, 0.5, 0.1),
                log_allocation(h, b, c, 20.0, 0.5, jnp.asarray(0.1)),
                *log_shared_allocation(h, b, c, 20.0, 0.5, 0.3),
                *log_shared_allocation(h, b, c, 20.0, 0.5, 0.3, 0.1)]

    first = calls(rng.dirichlet(np.ones(k)))
    h = rng.dirichlet(np.ones(k))
    with assert_compiles_nothing():
        second = calls(h)
        again = calls(h)
    for x, y, z in zip(first, second, again, strict=True):
        assert np.all(np.isfinite(np.asarray(y))) and np.shape(x) == np.shape(y)
        np.testing.assert_array_equal(np.asarray(y), np.asarray(z))


# ----------------------------------------------------- shared tail ranks (log_shared_allocation)
def _shared(h, b, c, N, H, rho):
    log_x, log_s = log_shared_allocation(jnp.asarray(h), jnp.asarray(b), jnp.asarray(c), N, H,
                                         rho)
    return np.exp(np.asarray(log_x)), float(np.exp(log_s))


@pytest.mark.parametrize("k, zeros, rho", [(2, 0, 0.3), (4, 1, 0.5), (7, 2, 0.8)])
def test_shared_allocation_matches_brute_force_slsqp(rng, k, zeros, rho):
    """The minimiser of ``Σ h_i c_i [(1−ρ) x_i^(−b_i) + ρ x_s^(−b_i)]`` under the budget
    ``H + (1−ρ) Σ (x_i − H) + ρ (x_s − H) = N``, by SLSQP in log space."""
    h, b, c = _random_case(rng, k, zeros)
    N, H = 50.0, 2.0
    x, xs = _shared(h, b, c, N, H, rho)
    assert abs(H + (1 - rho) * np.sum(x - H) + rho * (xs - H) - N) < 1e-9 * N

    def objective(z):
        xx, s = np.exp(z[:k]), np.exp(z[k])
        return np.sum(h * c * ((1 - rho) * xx ** -b + rho * s ** -b))

    budget = {"type": "eq", "fun": lambda z: (H + (1 - rho) * np.sum(np.exp(z[:k]) - H)
                                              + rho * (np.exp(z[k]) - H)) / N - 1.0}
    best = min((minimize(objective, np.log(np.concatenate([x0, [s0]])), method="SLSQP",
                         constraints=[budget], bounds=[(np.log(H), None)] * (k + 1),
                         options={"ftol": 1e-15, "maxiter": 500})
                for x0, s0 in ((np.full(k, N / k), N), (np.full(k, 1.5 * H), 0.9 * N))),
               key=lambda r: r.fun)
    assert objective(np.log(np.concatenate([x, [xs]]))) <= best.fun * (1 + 1e-9)
    np.testing.assert_allclose(np.concatenate([x, [xs]]), np.exp(best.x), rtol=1e-4)
    # a shared rank is kept while its summed score beats the threshold: beyond every own rank
    assert xs >= x.max() * (1 - 1e-12)
    np.testing.assert_array_equal(x[h == 0], H)


def test_shared_allocation_limits(rng):
    """``ρ = 0`` is the paper's allocation; ``ρ = 1`` keeps ``N`` shared ranks; ``N <= H`` puts
    every rank on the floor."""
    for _ in range(5):
        h, b, c = _random_case(rng, 5, zeros=1)
        x, xs = _shared(h, b, c, 40.0, 3.0, 0.0)
        np.testing.assert_allclose(x, np.asarray(allocate(h, b, c, 40.0, 3.0)), rtol=1e-11)
        x, xs = _shared(h, b, c, 40.0, 3.0, 1.0)
        assert xs == pytest.approx(40.0, rel=1e-11)
        x, xs = _shared(h, b, c, 2.0, 3.0, 0.5)
        np.testing.assert_allclose(np.append(x, xs), 3.0, rtol=1e-14)


def test_shared_allocation_gradients_match_finite_differences(rng):
    h, b, c = _random_case(rng, 4)
    z = np.concatenate([h, b, c, [60.0, 4.0, 0.4]])

    def f(z):
        log_x, log_s = log_shared_allocation(z[:4], z[4:8], z[8:12], z[12], z[13], z[14])
        return jnp.concatenate([log_x, log_s[None]])

    assert_grad_matches_fd(f, z, jit=True)
    assert_grad_matches_fd(f, z, mode="rev", jit=True)


def test_smoothed_floor_meets_the_budget_tends_to_the_exact_allocation_and_is_smooth(rng):
    """The kink continuation's allocation (``smoothing = τ``): the budget still met, every
    positive-weight domain above its floor, within ``O(τ)`` of the exact allocation in log
    units, and differentiable across the kink: its derivatives match central differences at a
    domain whose unconstrained allocation sits exactly on the floor, where the exact
    allocation's one-sided derivatives differ."""
    k = 4
    h, b, c = _random_case(rng, k)
    N, H = 20.0, 0.8
    exact = np.asarray(log_allocation(h, b, c, N, H))
    for tau in (1e-2, 1e-4, 1e-6):
        smooth = np.asarray(log_allocation(h, b, c, N, H, tau))
        assert np.exp(smooth).sum() == pytest.approx(N + (k - 1) * H, rel=1e-12)
        assert np.all(smooth > np.log(H))
        assert np.max(np.abs(smooth - exact)) < 2 * k * tau
    # put domain 0 exactly on the kink: with c_0 tiny it sits on the floor, which fixes the
    # multiplier; then choose c_0 so that its unconstrained allocation at that multiplier is H
    c_kink = c.copy()
    c_kink[0] = 1e-12
    x = np.exp(np.asarray(log_allocation(h, b, c_kink, N, H)))
    assert x[0] == pytest.approx(H, rel=1e-12) and x[1] > H
    u = np.log(h[1] * b[1] * c[1]) - (b[1] + 1) * np.log(x[1])  # the multiplier (domain 1 free)
    c_kink[0] = np.exp(u + (b[0] + 1) * np.log(H)) / (h[0] * b[0])
    assert np.exp(log_allocation(h, b, c_kink, N, H))[0] == pytest.approx(H, rel=1e-9)
    tau = 1e-3

    def f(log_c0):
        return log_allocation(h, b, jnp.concatenate([jnp.exp(log_c0), jnp.asarray(c_kink[1:])]),
                              N, H, tau)

    assert_grad_matches_fd(f, np.log(c_kink[:1]), rtol=1e-5, atol=1e-8)

    def exact_f(log_c0):
        return log_allocation(h, b, jnp.concatenate([jnp.exp(log_c0), jnp.asarray(c_kink[1:])]),
                              N, H)

    z = np.log(c_kink[:1])
    step = 1e-6
    right = (np.asarray(exact_f(z + step)) - np.asarray(exact_f(z))) / step
    left = (np.asarray(exact_f(z)) - np.asarray(exact_f(z - step))) / step
    assert abs(right[0] - left[0]) > 0.1  # the exact allocation has a kink there


def test_smoothed_shared_allocation_meets_the_budget_and_tends_to_the_exact_one(rng):
    """``log_shared_allocation(..., smoothing=τ)``: the budget (shared ranks counted once) still
    met exactly with the smoothed floors, every kept rank above the head, within ``O(τ)`` of the
    exact allocation in log units, and ``τ = 0`` the exact allocation bitwise."""
    k, N, H, rho = 4, 30.0, 0.8, 0.4
    h, b, c = _random_case(rng, k)
    exact_x, exact_s = (np.asarray(v) for v in log_shared_allocation(h, b, c, N, H, rho))
    zero_x, zero_s = (np.asarray(v) for v in log_shared_allocation(h, b, c, N, H, rho, 0.0))
    np.testing.assert_array_equal(zero_x, exact_x)
    assert zero_s == exact_s
    for tau in (1e-2, 1e-4, 1e-6):
        log_x, log_s = (np.asarray(v) for v in log_shared_allocation(h, b, c, N, H, rho, tau))
        used = H + (1 - rho) * np.sum(np.exp(log_x) - H) + rho * (np.exp(log_s) - H)
        assert used == pytest.approx(N, rel=1e-12)
        assert np.all(log_x > np.log(H)) and log_s > np.log(H)
        assert np.max(np.abs(log_x - exact_x)) < 2 * k * tau
        assert abs(log_s - exact_s) < 2 * k * tau


def test_shared_floor_gaps_are_the_floors_of_the_shared_allocation():
    """``log_shared_floor_gap``: a domain with a positive gap keeps ``log x_i = log H + gap``,
    one with a negative gap sits on the floor, a zero weight's gap is ``inf``; the last gap is
    ``log x_s − log H`` while the shared rank is above the floor."""
    from mixscale._allocation import log_shared_allocation, log_shared_floor_gap

    rng = np.random.default_rng(5)
    seen_floor = seen_free = 0
    for _ in range(20):
        k = 5
        h = rng.dirichlet(np.ones(k) * 0.5)
        h[rng.integers(k)] = 0.0
        h /= h.sum()
        b, c = rng.uniform(0.2, 1.2, k), rng.uniform(0.5, 3.0, k)
        N, H, rho = rng.uniform(20, 200), rng.uniform(0.5, 5), rng.uniform(0.05, 0.9)
        gaps = np.asarray(log_shared_floor_gap(h, b, c, N, H, rho))
        log_x, log_s = (np.asarray(v) for v in log_shared_allocation(h, b, c, N, H, rho))
        own = gaps[:k]
        assert np.isinf(own[h == 0]).all()
        free, floor = (h > 0) & (own > 0), (h > 0) & (own < 0)
        np.testing.assert_allclose(log_x[free], np.log(H) + own[free], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(log_x[floor], np.log(H), rtol=1e-12)
        if gaps[k] > 0:
            np.testing.assert_allclose(log_s, np.log(H) + gaps[k], rtol=1e-10)
        seen_floor += floor.sum()
        seen_free += free.sum()
    assert seen_floor and seen_free  # both sides of the floor were checked


@pytest.mark.parametrize("solve", [
    lambda h, N, H: allocate(h, jnp.array([0.5, 0.3]), jnp.ones(2), N, H),
    lambda h, N, H: log_shared_allocation(h, jnp.array([0.5, 0.3]), jnp.ones(2), N, H, 0.5)[0],
])
def test_known_nan_or_negative_inputs_are_refused_not_solved(solve):
    """Called with values, the solves refuse a NaN or negative weight and a NaN size or head:
    before, ``h = [nan, 0.5]`` gave the allocation of ``h = [0, 0.5]`` and ``N = nan`` every
    domain on its floor, both finite. Traced values are not checked."""
    ok = jnp.array([0.5, 0.5])
    assert np.all(np.isfinite(np.asarray(solve(ok, 10.0, 1.0))))
    for h, N, H, match in (([np.nan, 0.5], 10.0, 1.0, r"h \(mixture weights\)"),
                           ([-0.5, 1.5], 10.0, 1.0, "finite and non-negative"),
                           ([0.5, 0.5], np.nan, 1.0, r"N \(model size\) must be finite"),
                           ([0.5, 0.5], 10.0, np.inf, r"H \(head\) must be finite")):
        with pytest.raises(ValueError, match=match):
            solve(jnp.asarray(h), N, H)
