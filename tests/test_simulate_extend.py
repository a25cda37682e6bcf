"""Extending the simulator through its public abstract types only: a schedule and a keep rule
defined here run through every verb, and the sweep's two methods agree."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tol

import simulate as sim


class Warmup(sim.AbstractSchedule):
    """Linear warm-up to ``lr`` over ``warmup`` steps, then constant: γ_t = lr·min(t+1, W)/W."""

    lr: jax.Array
    warmup: int

    def __init__(self, lr, warmup: int):
        self.lr = jnp.asarray(lr, dtype=jnp.result_type(float))
        self.warmup = int(warmup)

    def blocks(self, n_steps):
        ramp = min(n_steps, self.warmup)
        out = []
        if ramp:  # one piece of length 1 per warm-up step
            out.append((0, self.lr * jnp.arange(1, ramp + 1) / self.warmup, 1))
        if n_steps > self.warmup:
            out.append((self.warmup, self.lr[None], n_steps - self.warmup))
        return out


class SignalOnly(sim.AbstractKeepRule):
    """Keep the features with the most signal (w*)² that the mixture trains at all."""

    def scores(self, h, a, w2):
        return jnp.where(h @ a > 0, w2, -1.0)


@pytest.fixture(scope="module")
def model():
    # 18 features (head 4, tails of 6 with every third tail rank shared); N = 14 leaves 4 out.
    return sim.DisjointTailModel(jnp.array([1.5, 2.0, 2.5]), beta=0.5,
                                 sigma2=jnp.array([0.05, 0.1, 0.02]), head=4, tail=6,
                                 rho=1 / 3)


def test_toy_schedule_recursion_agrees_with_monte_carlo(model):
    h, n, ck = np.array([0.5, 0.3, 0.2]), 14, [0, 5, 40, 400]
    schedule = Warmup(0.2 * sim.stable_step_limit(model, h, n), warmup=40)
    lrs = np.concatenate([np.concatenate([lrs] * length) if length == 1 else
                          np.repeat(lrs, length) for _, lrs, length in schedule.blocks(50)])
    np.testing.assert_allclose(lrs[:41] / float(schedule.lr),
                               np.minimum(np.arange(1, 42), 40) / 40, rtol=1e-15)
    exact = np.asarray(sim.expected_losses(model, h, n, schedule, ck))
    mc = sim.monte_carlo(model, h, n, schedule, ck, n_runs=500, key=jax.random.key(11))
    mean, se = np.asarray(mc.mean), np.asarray(mc.stderr)
    np.testing.assert_allclose(mean[0], exact[0], rtol=1e-12)  # D = 0 is deterministic
    z = (mean[1:] - exact[1:]) / se[1:]
    assert np.abs(z).max() < 4.0, z  # within four standard errors (as test_simulate_monte_carlo)
    # and the sweep's recursion runs it too
    swept = sim.sweep_losses(model, h[None], [n], ck, schedule)[0, 0]
    np.testing.assert_allclose(swept, exact, rtol=tol())


def test_toy_keep_rule_through_model_and_sweep(model, rng):
    toy = sim.DisjointTailModel(model.alpha, beta=0.5, sigma2=model.sigma2, head=4, tail=6,
                                rho=1 / 3, keep=SignalOnly())
    h = np.array([0.6, 0.4, 0.0])  # domain 2's own tail is untrained: never kept by the toy
    w2, lam = np.asarray(toy.signal()), h @ np.asarray(toy.eigenvalues())
    for n in (3, 9, 12):
        kept = np.asarray(toy.kept(jnp.asarray(h), n))
        score = np.where(lam > 0, w2, -1.0)
        assert kept.sum() == n and score[kept].min() >= score[~kept].max()
    mixtures = np.vstack([h, rng.dirichlet(np.ones(3), size=2)])
    sizes, ck, schedule = [5, 12], [1, 30, 100], sim.Constant(0.2)
    table = sim.sweep(toy, mixtures, sizes, ck, schedule)
    assert table.meta["model"]["keep"] == {"kind": "SignalOnly"}
    got = table.losses.reshape(3, 2, 3, 3)
    for m, hm in enumerate(mixtures):
        for s, n in enumerate(sizes):
            single = np.asarray(sim.expected_losses(toy, hm, n, schedule, ck))
            np.testing.assert_allclose(got[m, s], single, rtol=tol())
    closed = sim.sweep(toy, mixtures, sizes, ck, schedule, method="closed_form").losses
    np.testing.assert_allclose(closed, table.losses, rtol=tol())
    # a different rule is a different learner: the default keeps other features here
    default = sim.sweep(model, mixtures, sizes, ck, schedule).losses
    assert np.abs(default / table.losses - 1).max() > 1e-3


def test_toy_keep_rule_with_wrong_shape_is_refused(model):
    class OneScore(sim.AbstractKeepRule):
        def scores(self, h, a, w2):
            return jnp.sum(h @ a)[None]

    bad = sim.DisjointTailModel(model.alpha, head=4, tail=6, keep=OneScore())
    with pytest.raises(ValueError, match=r"OneScore.scores must return one score per feature"):
        sim.expected_losses(bad, [0.5, 0.3, 0.2], 5, sim.Constant(0.1), [10])


@pytest.mark.parametrize("batch_size", [1, 3])
def test_closed_form_sweep_equals_recursion_sweep(batch_size, rng):
    model = sim.DisjointTailModel(jnp.array([1.4, 2.1, 2.8]), beta=0.2, sigma2=0.05, head=3,
                                  tail=12, rho=0.25, names=("a", "b", "c"))
    mixtures = np.vstack([rng.dirichlet(np.ones(3), size=3), [0.5, 0.5, 0.0]])
    sizes, ck = [4, 17, model.n_features], [1, 10, 250, 1000]
    lr = 0.5 * min(sim.stable_step_limit(model, hm, n, batch_size)
                   for hm in mixtures for n in sizes)
    args = (model, mixtures, sizes, ck, sim.Constant(lr), batch_size)
    rec = sim.sweep(*args, name="t")
    closed = sim.sweep(*args, method="closed_form", name="t")
    np.testing.assert_allclose(closed.losses, rec.losses, rtol=tol())
    for field in ("weights", "model_size", "tokens"):
        np.testing.assert_array_equal(getattr(closed, field), getattr(rec, field))
    for tag in rec.row_tags:
        np.testing.assert_array_equal(closed.row_tags[tag], rec.row_tags[tag])
    assert (closed.meta["method"], rec.meta["method"]) == ("closed_form", "recursion")
    assert {k: v for k, v in closed.meta.items() if k not in ("method", "generator")} == {
        k: v for k, v in rec.meta.items() if k not in ("method", "generator")}
    arr = sim.sweep_losses(*args, method="closed_form")
    np.testing.assert_array_equal(arr.reshape(closed.losses.shape), closed.losses)


@pytest.mark.parametrize("schedule", [sim.StepDecay(0.1, 0.5, 10), Warmup(0.1, 5),
                                      sim.StepDecay(0.15, 0.3, 40)])
def test_closed_form_runs_any_schedule_as_constant_phases(model, schedule):
    """Short pieces are stepped, long ones integrated: both match the recursion."""
    mixtures = np.array([[0.5, 0.3, 0.2], [0.1, 0.0, 0.9]])
    sizes, ck = [5, 14], [1, 10, 17, 120, 400]
    rec = sim.sweep_losses(model, mixtures, sizes, ck, schedule)
    closed = sim.sweep_losses(model, mixtures, sizes, ck, schedule, method="closed_form")
    np.testing.assert_allclose(closed, rec, rtol=tol())
    one = sim.closed_form_losses(model, mixtures[0], 14, schedule, ck)
    np.testing.assert_allclose(np.asarray(one), rec[0, 1], rtol=tol())
    with pytest.raises(ValueError, match="method must be one of"):
        sim.sweep_losses(model, [[0.5, 0.3, 0.2]], [5], [10], sim.Constant(0.1), method="eigh")


@pytest.mark.parametrize("call", [
    lambda m, s: sim.expected_losses(m, [0.5, 0.3, 0.2], 5, s, [10]),
    lambda m, s: sim.monte_carlo(m, [0.5, 0.3, 0.2], 5, s, [10], n_runs=2),
    lambda m, s: sim.sweep(m, [[0.5, 0.3, 0.2]], [5], [10], s),
    lambda m, s: sim.sweep_losses(m, [[0.5, 0.3, 0.2]], [5], [10], s),
    lambda m, s: sim.optimal_mixture(m, 5, 10, s),
])
def test_every_verb_names_the_abstract_schedule(model, call):
    with pytest.raises(TypeError, match=r"schedule must be an AbstractSchedule \(e.g. Constant"):
        call(model, 0.1)
    with pytest.raises(TypeError, match="model must be a DisjointTailModel"):
        call("model", sim.Constant(0.1))


class Pieces(sim.AbstractSchedule):
    """Given step sizes, each held for ``length`` steps, then the last one repeated."""

    lrs: jax.Array = eqx.field(converter=jnp.asarray)
    length: int = eqx.field(static=True)

    def blocks(self, n_steps):
        full = min(n_steps // self.length, self.lrs.shape[0])
        out = [(0, self.lrs[:full], self.length)] if full else []
        if n_steps > full * self.length:
            out.append((full * self.length, self.lrs[full - 1:full] if full else self.lrs[:1],
                        n_steps - full * self.length))
        return out


class StopsShort(sim.AbstractSchedule):
    """A schedule whose blocks end five steps early."""

    lr: jax.Array

    def blocks(self, n_steps):
        return [(0, self.lr[None], max(n_steps - 5, 1))]


@pytest.mark.parametrize("schedule, message", [
    (Pieces([0.2, -0.3], 10), "got -0.3 at step 10"),   # losses of 1e14 before
    (Pieces([0.2, 0.0], 10), "got 0 at step 10"),
    (Pieces([0.2, -np.inf], 10), "got -inf at step 10"),  # NaN losses before
    (StopsShort(jnp.asarray(0.2)), r"steps 0 \.\. 39 in order: its blocks end at step 35"),
])
@pytest.mark.parametrize("verb", ["expected_losses", "closed_form_losses", "sweep_losses",
                                  "optimal_mixture"])
def test_a_schedule_with_a_step_that_is_not_positive_or_that_stops_short_is_refused(
        model, schedule, message, verb):
    """The stability test read the largest step only: a negative, zero or infinite step ran
    (losses of 1e14 or NaN, and an 'optimal' mixture), and a schedule that stopped short failed
    with a bare KeyError."""
    h = [0.2, 0.3, 0.5]
    call = {"expected_losses": lambda: sim.expected_losses(model, h, 14, schedule, [40]),
            "closed_form_losses": lambda: sim.closed_form_losses(model, h, 14, schedule, [40]),
            "sweep_losses": lambda: sim.sweep_losses(model, [h], [14], [40], schedule),
            "optimal_mixture": lambda: sim.optimal_mixture(model, 14, 40, schedule)}[verb]
    with pytest.raises(ValueError, match=message):
        call()


def test_optimal_mixture_of_one_domain_is_that_domain():
    """K = 1 crashed with an IndexError (no pair of domains to move weight between)."""
    one = sim.DisjointTailModel(jnp.array([1.5]), sigma2=jnp.array([0.1]), head=2, tail=6)
    exact = float(sim.expected_losses(one, [1.0], 4, sim.Constant(0.2), [50])[0, 0])
    for method in ("gradient", "compass"):
        opt = sim.optimal_mixture(one, 4, 50, sim.Constant(0.2), method=method)
        np.testing.assert_array_equal(np.asarray(opt.weights), [1.0])
        assert float(opt.loss) == pytest.approx(exact, rel=1e-13)


@pytest.mark.parametrize("kw, message", [
    (dict(steps=-1), "steps must be an integer >= 0, got -1"),  # said "checkpoints"
    (dict(steps=10.5), "steps must be an integer >= 0, got 10.5"),
    (dict(resolution=2.5), "resolution must be an integer >= 1, got 2.5"),  # truncated to 2
    (dict(n_starts=-3), "n_starts must be an integer >= 1, got -3"),  # clamped to 1
    (dict(max_iterations=-1), "max_iterations must be an integer >= 1, got -1"),
])
def test_optimal_mixture_names_its_own_arguments(model, kw, message):
    args = {"steps": 10, **kw}
    steps = args.pop("steps")
    with pytest.raises(ValueError, match=message):
        sim.optimal_mixture(model, 5, steps, sim.Constant(0.1), **args)


def test_monte_carlo_key_and_sample_type_and_empty_sweeps_are_refused(model):
    """key=0 failed inside JAX, float16 draws ran (their resolution, 1e-3, is far coarser than
    the agreement the path is checked to), and an empty sweep failed with numpy's 'argmin of an
    empty sequence'."""
    h = [0.2, 0.3, 0.5]
    with pytest.raises(TypeError, match=r"key must be one typed PRNG key"):
        sim.monte_carlo(model, h, 14, sim.Constant(0.1), [5], n_runs=4, key=0)
    with pytest.raises(ValueError, match="sample_dtype must be float32 or float64"):
        sim.monte_carlo(model, h, 14, sim.Constant(0.1), [5], n_runs=4,
                        sample_dtype=jnp.float16)
    with pytest.raises(ValueError, match="at least one mixture, got none"):
        sim.sweep_losses(model, np.zeros((0, 3)), [14], [5], sim.Constant(0.1))
    with pytest.raises(ValueError, match="at least one size, got none"):
        sim.sweep_losses(model, [h], [], [5], sim.Constant(0.1))
