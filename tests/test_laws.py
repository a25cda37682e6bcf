"""Every registered law and variant through one shared harness (no hand-kept list of laws).

Per law spec of :func:`mixscale.law_specs`: planted parameters recovered from the law's own
noiseless output through ``mixscale.fit``; gradients of ``predict`` with respect to ``h``, ``N``,
``D`` and every parameter equal to float64 central finite differences; finite losses and gradients
at zero weights; ``jit``/``vmap`` against plain calls; the declared contract (parameter count from
the sizes alone, natural parameters, targets, options); the JSON round trip. Then known values of
each baseline formula by hand (the capacity law's are in ``test_capacity_law.py``).
"""

from __future__ import annotations

import dataclasses
import functools
import json

import equinox as eqx
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import compile_once, fd_points

import mixscale
from mixscale import LAWS, LawSpec, law_specs, parameter_count
from mixscale._blocks import parameter_owners
from mixscale._evaluate import predict_in_blocks
from mixscale._io import law_from_dict, law_to_dict
from mixscale.data import LossTable, TableError
from mixscale.laws import (
    AdditiveLaw,
    BiMixLaw,
    DataMixingLaw,
    DataSummary,
    JointLaw,
    OverlapLaw,
    RegressionLaw,
    law_options,
)

K = 3
DOMAINS = ("a", "b", "c")
SIZES, TOKENS = (10.0, 40.0), (1.0, 5.0)

SPECS = [*law_specs(candidates=True),  # and the options that change a law's parameters
         LawSpec("overlap", variant="free", source_exponents=True),
         LawSpec("overlap", variant="rank", factors=1, source_exponents=True)]
ids = [s.label for s in SPECS]


def _summary(targets=DOMAINS, scale=True):
    m = len(targets)
    return DataSummary(train_domains=DOMAINS, targets=tuple(targets),
                       loss_min=np.linspace(1.8, 2.4, m), loss_max=np.linspace(2.6, 3.4, m),
                       model_size=SIZES if scale else (SIZES[0],) * 2,
                       tokens=TOKENS if scale else (TOKENS[0],) * 2)


@functools.cache
def _planted(spec, seed=3):
    """The law every per-law test below uses (drawn once per process: laws are immutable)."""
    return spec.init(jax.random.key(seed), _summary(scale=spec.uses_scale))


def _table(law, n_mix, rng, scale, name):
    """Noiseless losses of ``law`` on random mixtures (one of them with a zero weight), at a
    2 x 2 grid of (size, tokens) if ``scale``, else at one scale."""
    h = rng.dirichlet(np.ones(K), size=n_mix)
    h[0] = [0.0, 0.35, 0.65]
    pairs = [(n, d) for n in SIZES for d in TOKENS] if scale else [(SIZES[0], TOKENS[0])]
    w = np.repeat(h, len(pairs), axis=0)
    nd = np.tile(np.array(pairs), (n_mix, 1))
    y = predict_in_blocks(law, w, nd[:, 0], nd[:, 1])
    assert np.all(np.isfinite(y)) and np.all(y > 0)
    return LossTable(weights=w, model_size=nd[:, 0], tokens=nd[:, 1], losses=y,
                     train_domains=DOMAINS, loss_domains=DOMAINS, name=name)


# ------------------------------------------------------------------------- the harness
# The full and tied capacity laws' recovery through ``fit`` is tested in ``test_fit.py`` (with
# masked entries too); here every other law and variant.
RECOVERY = [s for s in SPECS if not (s.name == "capacity" and s.variant in ("full", "tied"))]


@pytest.mark.parametrize("spec", RECOVERY, ids=[s.label for s in RECOVERY])
def test_recovers_planted_law_through_fit(spec, rng):
    planted = _planted(spec)
    scale = spec.uses_scale
    train = _table(planted, 14, rng, scale, "planted[train]")
    valid = _table(planted, 6, rng, scale, "planted[validation]")
    # Small noiseless tables give the per-domain laws several local minima. Of 64 restarts (fit
    # seed 0, 300 steps) these reach the planted optimum: capacity 63, decoupled 58, additive
    # 39, transfer 20, crossover 19, and bimix, DML and the regressions all 64, so 16 restarts
    # miss it with odds below 0.4 % (a change to the fitter reshuffles the restarts' fates, so
    # the margin is for the next change, not this seed). The joint law is fitted per target,
    # each target from its own best restart: 16 restarts reached the planted losses (train and
    # validation MRE < 1e-10) for each of fit seeds 0-23. The spectral law, whose every
    # parameter is shared, finds it from 4 in every variant (2-3 of the 4 reach it, in 26-64
    # steps), and its restarts are the costliest: every step of the batch waits for its slowest
    # restart (8 restarts took 113-300 steps, 4 take 57-173).
    restarts = 4 if spec.name == "spectral" else 16
    # Every law reaches the planted optimum within 300 steps (the spectral transfer variant's
    # restarts that found it took 18-112); a restart lost in another basin would otherwise hold
    # its whole batch to the 1000-step default (one did, in that variant). Random restarts
    # only: the planted law must be found from the law's own initialisations (the nested starts,
    # whose fits cost most of the time of the capacity variants that nest another, are checked
    # in tests/test_fit_structure.py).
    res = mixscale.fit(spec, train, validation=valid, n_restarts=restarts, seed=0, max_steps=300,
                       nested=False)
    assert res.n_params == spec.n_parameters(K, K)
    assert res.train_metrics["mre"] < 1e-4
    assert res.validation_metrics["mre"] < 1e-4


class _Compiled:
    """One law's predictions and Jacobians as compiled functions of ``z = (h, N, D, every
    parameter entry)``, batched over points: the derivative, zero-weight, ``jit``/``vmap`` and
    block-structure checks below share these two programs (compilation is most of their cost;
    each function is compiled once, at a fixed batch, and raises if traced again)."""

    #: Points per Jacobian call (the calls below need at most this many).
    JACOBIAN_BATCH = 8

    def __init__(self, spec):
        self.law = _planted(spec)
        params, static = eqx.partition(self.law, eqx.is_inexact_array)
        flat, unravel = jax.flatten_util.ravel_pytree(params)
        self.params = np.asarray(flat)
        self.labels = [f"h[{i}]" for i in range(K)] + ["N", "D"] + [
            jax.tree_util.keystr(path) for path, leaf in jax.tree_util.tree_flatten_with_path(
                params)[0] for _ in range(np.size(leaf))]

        def f(z):
            return eqx.combine(unravel(z[K + 2:]), static).predict(z[:K], z[K], z[K + 1])

        self.value_batch = 2 * (K + 2 + flat.size)  # the central differences' points
        self._values = compile_once(jax.vmap(f))
        self._jacobians = compile_once(jax.vmap(lambda z: (jax.jacfwd(f)(z), jax.jacrev(f)(z))))
        self._called = set()

    def released(self) -> bool:
        """Whether a program this kit compiled was dropped since (``fit`` releases every
        compiled program once the process holds many; :mod:`mixscale._memory`): its next call
        would trace again, which the kit refuses, so a new kit is needed."""
        return any(fn._cache_size() == 0 for fn in self._called)

    def z(self, h, N, D) -> np.ndarray:
        return np.concatenate([np.asarray(h, float), [N, D], self.params])

    def _padded(self, fn, zs, batch):
        zs = np.asarray(zs, float)
        n = zs.shape[0]
        assert n <= batch
        out = fn(np.concatenate([zs, np.repeat(zs[-1:], batch - n, axis=0)]))
        self._called.add(fn)
        return jax.tree_util.tree_map(lambda a: np.asarray(a)[:n], out)

    def values(self, zs) -> np.ndarray:
        """``(B, K)`` predictions at ``B`` points ``z``."""
        return self._padded(self._values, zs, self.value_batch)

    def jacobians(self, zs) -> tuple[np.ndarray, np.ndarray]:
        """Forward- and reverse-mode Jacobians ``(B, K, K + 2 + P)`` at ``B`` points."""
        return self._padded(self._jacobians, zs, self.JACOBIAN_BATCH)


_KITS: dict[LawSpec, _Compiled] = {}


def _compiled(spec) -> _Compiled:
    """The law's :class:`_Compiled`, built once per process (again only if a fit in between
    released the compiled programs: in a one-process run of the suite the planted-recovery
    fits do)."""
    if spec not in _KITS or _KITS[spec].released():
        _KITS[spec] = _Compiled(spec)
    return _KITS[spec]


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_gradients_match_finite_differences(spec):
    """The Jacobian of ``predict`` with respect to ``h``, ``N``, ``D`` and every parameter
    entry, forward and reverse mode, against central differences entry by entry (each column
    moved alone, by its own step; every moved point in one batched call)."""
    kit = _compiled(spec)
    assert kit.params.size == spec.n_parameters(K, K)
    z = kit.z([0.2, 0.3, 0.5], 17.0, 2.5)
    points, combine = fd_points(z)
    fd = combine(kit.values(points))
    fwd, rev = kit.jacobians(z[None])
    for mode, jac in (("forward", fwd[0]), ("reverse", rev[0])):
        np.testing.assert_allclose(jac, fd, rtol=1e-6, atol=1e-9,
                                   err_msg=f"{mode} mode vs central differences, columns: "
                                           f"{kit.labels}")


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_zero_weights_give_finite_losses_and_gradients(spec):
    """Finite losses and finite derivatives (forward and reverse mode, in ``h``, ``N``, ``D``
    and every parameter) at mixtures with zero weights."""
    kit = _compiled(spec)
    zs = [kit.z(h, 17.0, 2.5) for h in ([0.0, 0.4, 0.6], [1.0, 0.0, 0.0])]
    assert np.all(np.isfinite(kit.values(zs)))
    for jac in kit.jacobians(zs):
        assert np.all(np.isfinite(jac))


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_jit_vmap_match_plain_calls(spec, rng):
    """Batched, compiled predictions equal plain (op-by-op, one run at a time) calls; new values
    of the same shapes compile nothing (the compiled functions raise if traced again). Two runs:
    op by op, each after the first costs 0.1-50 ms (the spectral law's many operations
    dispatched one at a time the most), and the first compiles every operation once."""
    kit = _compiled(spec)
    law = kit.law
    hs = rng.dirichlet(np.ones(K), size=2)
    ns, ds = rng.uniform(5, 50, 2), rng.uniform(1, 10, 2)
    plain = np.stack([np.asarray(law.predict(h, n, d))
                      for h, n, d in zip(hs, ns, ds, strict=True)])
    zs = np.stack([kit.z(h, n, d) for h, n, d in zip(hs, ns, ds, strict=True)])
    np.testing.assert_allclose(kit.values(zs), plain, rtol=1e-13)
    np.testing.assert_allclose(kit.values(zs[::-1]), plain[::-1], rtol=1e-13)


#: The mixture search runs once per law (its first spec): it compiles one program per law
#: structure (0.7 s each), and what a variant could break in it — ``predict`` differentiated in
#: ``h`` under ``jit`` and ``vmap`` — is checked for every spec above, against finite differences.
_FIRST_OF_LAW = {spec.name: spec for spec in reversed(SPECS)}


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_law_contract(spec):
    """What the library uses of a law, declared and consistent."""
    cls = spec.law_class
    law = _planted(spec)
    assert LAWS[cls.name] is cls and LawSpec(cls, **spec.law_options) == spec
    assert set(spec.law_options) <= set(law_options(cls))
    n = spec.n_parameters(K, K)
    natural = law.natural_parameters()
    assert parameter_count(law) == n == sum(np.size(v) for v in natural.values())
    assert all(np.all(np.isfinite(np.asarray(v))) for v in natural.values())
    assert law.predict(jnp.ones(K) / K, 17.0, 2.5).shape == (K,)
    assert law.n_train_domains == K
    assert law.targets is None or tuple(law.targets) == tuple(range(K))
    # the count from the sizes alone, for M != K too
    targets = spec.targets_for(DOMAINS, DOMAINS[:2])
    sub = spec.init(jax.random.key(0), dataclasses.replace(
        _summary(), targets=targets, loss_min=np.full(2, 2.0), loss_max=np.full(2, 3.0)))
    assert parameter_count(sub) == spec.n_parameters(K, len(targets))
    if spec == _FIRST_OF_LAW[spec.name]:
        opt = mixscale.optimal_mixture(law, 17.0, 2.5, n_starts=2, max_steps=50)
        assert opt.weights.shape == (K,) and np.isclose(opt.weights.sum(), 1.0)
    with pytest.raises(ValueError, match="use jax.vmap"):
        law.predict(jnp.ones((2, K)) / K, 17.0, 2.5)
    with pytest.raises(ValueError, match="training domains"):
        law.predict(jnp.ones(K + 1) / (K + 1), 17.0, 2.5)
    if not spec.uses_scale:  # blind to N and D, and refused on a multi-scale table
        h = jnp.array([0.2, 0.3, 0.5])
        np.testing.assert_array_equal(np.asarray(law.predict(h, 1.0, 1.0)),
                                      np.asarray(law.predict(h, 99.0, 7.0)))
        table = _table(law, 3, np.random.default_rng(0), True, "multi")
        with pytest.raises(TableError, match="select one scale"):
            mixscale.fit(spec, table, n_restarts=1)


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_known_bad_weights_sizes_and_tokens_are_refused_not_read_as_zero(spec):
    """Called with values (not traced), ``predict`` refuses a NaN, infinite or negative weight
    and, where the law reads them, a NaN or infinite size or token count: the laws' ``h > 0``
    tests read a NaN weight as a zero weight, so the capacity law returned its losses at
    ``h = 0`` for ``h = [nan, nan, nan]``, and finite losses for ``N = nan``. (Traced values
    are not checked: a compiled program cannot raise.)"""
    law = _planted(spec)
    for h in ([np.nan, 0.5, 0.5], [np.inf, 0.0, 0.0], [-0.1, 0.6, 0.5]):
        with pytest.raises(ValueError, match=r"h \(mixture weights\) must be finite and non-neg"):
            law.predict(jnp.asarray(h), 17.0, 2.5)
    h = jnp.array([0.2, 0.3, 0.5])
    if spec.uses_scale:
        with pytest.raises(ValueError, match=r"N \(model size\) must be finite, got nan"):
            law.predict(h, np.nan, 2.5)
        with pytest.raises(ValueError, match=r"D \(tokens\) must be finite, got inf"):
            law.predict(h, 17.0, np.inf)


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_declared_per_target_fields_act_on_their_target_only(spec, rng):
    """The block structure the fitter relies on, measured: a per-target parameter's derivative
    vanishes on every other target's prediction (at random mixtures, sizes and tokens)."""
    kit = _compiled(spec)
    law = kit.law
    params, _ = eqx.partition(law, eqx.is_inexact_array)
    owners = parameter_owners(params, type(law).per_target_fields, K)
    zs = [kit.z(h, n, d) for h, n, d in zip(rng.dirichlet(np.ones(K), 4), rng.uniform(5, 50, 4),
                                            rng.uniform(1, 10, 4), strict=True)]
    jacs = kit.jacobians(zs)[0][:, :, K + 2:]  # (4 runs, K targets, P)
    for col, owner in enumerate(owners):
        if owner >= 0:
            others = np.delete(jacs[:, :, col], owner, axis=1)
            np.testing.assert_array_equal(others, 0.0)
    assert (owners >= 0).sum() == sum(np.size(getattr(law, f)) for f in
                                      type(law).per_target_fields if getattr(law, f) is not None)


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_json_round_trip_keeps_every_parameter(spec):
    law = _planted(spec)
    doc = json.loads(json.dumps(law_to_dict(law)))
    assert set(doc["natural_parameters"]) == set(law.natural_parameters())
    for key, value in law.natural_parameters().items():
        np.testing.assert_array_equal(np.asarray(doc["natural_parameters"][key]),
                                      np.asarray(value))
    back = law_from_dict(doc)
    h = jnp.array([0.0, 0.3, 0.7])
    np.testing.assert_array_equal(np.asarray(back.predict(h, 17.0, 2.5)),
                                  np.asarray(law.predict(h, 17.0, 2.5)))
    assert LawSpec.parse(spec.label) == spec == LawSpec.from_dict(spec.to_dict())


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_out_of_mixture_targets(spec):
    """Laws that read a target's own weight predict in-mixture targets only; the rest any."""
    targets = spec.targets_for(DOMAINS, ("b", "ood"))
    own_weight = _planted(spec).targets is not None
    assert targets == (("b",) if own_weight else ("b", "ood"))


# ------------------------------------------------------------ known values, by hand
H, N_, D_ = np.array([0.1, 0.3, 0.6]), 20.0, 3.0


def test_additive_formula_by_hand():
    p = dict(E=[1.0, 1.2], C=[[0.5, 1.0, 2.0], [1.5, 0.2, 0.7]],
             gamma=[[0.3, 0.6, 1.2], [0.5, 0.5, 0.9]], A=[3.0, 2.0], alpha=[0.4, 0.3],
             B=[0.8, 1.1], beta=[0.2, 0.5])
    law = AdditiveLaw.from_params(**p)
    a = {k: np.asarray(v) for k, v in p.items()}
    expected = (a["E"] + 1.0 / (a["C"] * H ** a["gamma"]).sum(1) + a["A"] * N_ ** -a["alpha"]
                + a["B"] * D_ ** -a["beta"])
    np.testing.assert_allclose(np.asarray(law.predict(H, N_, D_)), expected, rtol=1e-13)
    # a zero weight contributes exactly nothing to the mixture sum
    h0 = np.array([0.0, 0.4, 0.6])
    expected0 = (a["E"] + 1.0 / (a["C"] * np.where(h0 > 0, h0, 1.0) ** a["gamma"]
                                  * (h0 > 0)).sum(1)
                 + a["A"] * N_ ** -a["alpha"] + a["B"] * D_ ** -a["beta"])
    np.testing.assert_allclose(np.asarray(law.predict(h0, N_, D_)), expected0, rtol=1e-13)



def test_mixture_sums_stay_finite_when_a_coefficient_is_fitted_to_zero():
    """A coefficient ``C_ij = exp(-600)`` (LM drove one there on RegMix-1B): the additive and
    joint laws' sums are taken in logs, so losses and Jacobians stay finite on a one-domain
    mixture, where the plain sum underflows to 0 (its Jacobian was 0/0), and equal the formula
    at ordinary values."""
    base = dict(E=[1.0], gamma=[[0.3, 0.6, 1.2]], A=[3.0], alpha=[0.4], B=[0.8], beta=[0.2])
    tiny = np.exp(-600.0)
    additive = AdditiveLaw.from_params(C=[[tiny, 1.0, 2.0]], **base)
    joint = JointLaw.from_params(C=[[tiny, 1.0, 2.0]], gamma=[[0.3, 0.6, 1.2]],
                                 C_A=[[tiny, 3.0, 1.0]], gamma_A=[1.5], alpha=[0.4],
                                 C_B=[[tiny, 0.1, 0.9]], gamma_B=[0.8], E=[1.0], beta=[0.2])
    one_domain = jnp.array([1.0, 0.0, 0.0])
    for law in (additive, joint):
        y = law.predict(one_domain, N_, D_)
        assert np.all(np.isfinite(np.asarray(y))) and float(y[0]) > 1e100
        grads = jax.jacobian(lambda m: m.predict(one_domain, N_, D_))(law)
        for leaf in jax.tree_util.tree_leaves(grads):
            assert np.all(np.isfinite(np.asarray(leaf)))
    # ordinary values: the log-sum-exp equals the plain sum
    from mixscale.laws._terms import log_power_sum
    log_C, g = np.log([[0.5, 1.0, 2.0]]), np.array([[0.3, 0.6, 1.2]])
    for h in (H, np.array([0.0, 0.4, 0.6])):
        plain = np.sum(np.exp(log_C) * np.where(h > 0, h, 1.0) ** g * (h > 0), axis=-1)
        np.testing.assert_allclose(np.asarray(log_power_sum(log_C, h, g)), np.log(plain),
                                   rtol=1e-14)

def test_joint_formula_by_hand():
    p = dict(E=[1.0, 1.2], C=[[0.5, 1.0, 2.0], [1.5, 0.2, 0.7]],
             gamma=[[0.3, 0.6, 1.2], [0.5, 0.5, 0.9]], C_A=[[2.0, 3.0, 1.0], [1.0, 1.0, 4.0]],
             gamma_A=[1.5, 0.7], alpha=[0.4, 0.3], C_B=[[0.5, 0.1, 0.9], [2.0, 0.3, 0.3]],
             gamma_B=[0.8, 1.3], beta=[0.2, 0.5])
    law = JointLaw.from_params(**p)
    a = {k: np.asarray(v) for k, v in p.items()}
    A_h = (a["C_A"] @ H) ** a["gamma_A"]
    B_h = (a["C_B"] @ H) ** a["gamma_B"]
    expected = (a["E"] + 1.0 / (a["C"] * H ** a["gamma"]).sum(1) + A_h * N_ ** -a["alpha"]
                + B_h * D_ ** -a["beta"])
    np.testing.assert_allclose(np.asarray(law.predict(H, N_, D_)), expected, rtol=1e-13)
    np.testing.assert_allclose(np.asarray(law.amplitudes(H)[0]), A_h, rtol=1e-13)


def test_joint_optimum_moves_with_scale_additive_does_not():
    """The point of the joint law: the mixture term and the scale terms interact."""
    rng = np.random.default_rng(1)
    add, joint = (LawSpec(name).init(jax.random.key(0), _summary())
                  for name in ("additive", "joint"))
    hs = rng.dirichlet(np.ones(K), size=4)

    def diffs(law):  # loss differences between mixtures, at two scales
        return [np.asarray(jax.vmap(lambda h, n=n: law.predict(h, n, 2.0))(hs))
                for n in (10.0, 1000.0)]

    small, large = diffs(add)
    np.testing.assert_allclose(small - small[0], large - large[0], atol=1e-12)
    small, large = diffs(joint)
    assert np.abs((small - small[0]) - (large - large[0])).max() > 1e-3


def test_dml_formula_by_hand_and_redundant_k():
    c, k, t = np.array([1.5, 2.0]), np.array([0.7, 1.3]), np.array([[0.2, -1.0, 0.5],
                                                                    [1.0, 0.3, -0.4]])
    law = DataMixingLaw.from_params(c=c, k=k, t=t)
    expected = c + k * np.exp(t @ H)  # the paper's form, exact on the simplex
    np.testing.assert_allclose(np.asarray(law.predict(H, N_, D_)), expected, rtol=1e-13)
    np.testing.assert_allclose(np.asarray(law.c), c, rtol=1e-14)


def test_bimix_formula_by_hand_floor_and_redundant_A():
    alpha, beta, A = np.array([0.1, 0.3]), np.array([0.4, 0.2]), np.array([2.0, 0.5])
    B, C = np.array([1.5, 3.0]), np.array([0.6, 1.1])
    law = BiMixLaw.from_params(alpha=alpha, beta=beta, A=A, B=B, C=C, n_domains=K,
                               targets=[2, 0])
    share = H[[2, 0]]
    expected = A * share ** -alpha * (B * D_ ** -beta + C)
    np.testing.assert_allclose(np.asarray(law.predict(H, N_, D_)), expected, rtol=1e-13)
    # below the floor the share is the floor; the pure law (floor 0) diverges there
    h0 = np.array([0.0, 0.6, 0.4])
    floored = A * np.array([0.4, 1e-3]) ** -alpha * (B * D_ ** -beta + C)
    np.testing.assert_allclose(np.asarray(law.predict(h0, N_, D_)), floored, rtol=1e-13)
    pure = dataclasses.replace(law, weight_floor=0.0)
    assert np.isinf(np.asarray(pure.predict(h0, N_, D_))[1])
    np.testing.assert_array_equal(np.asarray(pure.predict(H, N_, D_)),
                                  np.asarray(law.predict(H, N_, D_)))


def test_overlap_formula_by_hand_rank_and_nesting():
    E, A, a = np.array([1.2, 0.8]), np.array([0.3, 0.5]), np.array([0.4, 0.2])
    # targets: domains 2 and 0; S rows against the other domains in order ([0, 1] and [1, 2])
    S = np.array([[0.25, 0.0], [0.5, 2.0]])
    law = OverlapLaw.from_params(E=E, A=A, a=a, S=S, n_domains=K, targets=[2, 0])

    def by_hand(share, floor=1e-3):  # the share floored smoothly: sqrt(s^2 + f^2)
        return E + A * np.sqrt(share ** 2 + floor ** 2) ** -a

    share = np.array([H[2] + 0.25 * H[0], H[0] + 0.5 * H[1] + 2.0 * H[2]])
    np.testing.assert_allclose(np.asarray(law.predict(H, N_, D_)), by_hand(share), rtol=1e-13)
    pure = dataclasses.replace(law, weight_floor=0.0)
    np.testing.assert_allclose(np.asarray(pure.predict(H, N_, D_)), E + A * share ** -a,
                               rtol=1e-13)
    # rank r: S_ij = sum_t P_it P_jt, symmetric, own overlap 1 whatever P_i . P_i
    P = np.array([[0.2, 1.0], [0.5, 0.0], [0.3, 0.7]])
    ranked = OverlapLaw.from_params(E=E, A=A, a=a, P=P, n_domains=K, targets=[2, 0])
    s = P @ P.T
    share = np.array([H[2] + s[2, 0] * H[0] + s[2, 1] * H[1],
                      H[0] + s[0, 1] * H[1] + s[0, 2] * H[2]])
    np.testing.assert_allclose(np.asarray(ranked.predict(H, N_, D_)), by_hand(share),
                               rtol=1e-13)
    assert ranked.variant == "rank" and ranked.n_parameters(K, 2, variant="rank", factors=2) \
        == 3 * 2 + 2 * K
    # own: the share alone, the floor at a zero weight; it nests exactly (S = 0, P = 0)
    own = OverlapLaw.from_params(E=E, A=A, a=a, n_domains=K, targets=[2, 0])
    h0 = np.array([0.0, 0.6, 0.4])
    np.testing.assert_allclose(np.asarray(own.predict(h0, N_, D_)),
                               by_hand(np.array([0.4, 0.0])), rtol=1e-13)
    assert np.asarray(own.predict(h0, N_, D_))[1] == pytest.approx(E[1] + A[1] * 1e-3 ** -a[1])
    assert np.isinf(np.asarray(dataclasses.replace(own, weight_floor=0.0).predict(h0, N_, D_))[1])
    for variant in ("free", "rank"):
        inner = own.embed(variant, factors=3)
        assert inner.variant == variant
        np.testing.assert_array_equal(np.asarray(inner.predict(h0, N_, D_)),
                                      np.asarray(own.predict(h0, N_, D_)))
    with pytest.raises(ValueError, match="non-negative"):
        OverlapLaw.from_params(E=E, A=A, a=a, S=-S, n_domains=K, targets=[2, 0])
    with pytest.raises(ValueError, match=r"S must have shape \(2, 2\)"):
        OverlapLaw.from_params(E=E, A=A, a=a, S=np.ones((2, 3)), n_domains=K, targets=[2, 0])
    with pytest.raises(ValueError, match="factors"):
        OverlapLaw.n_parameters(K, 2, variant="rank", factors=0)


def test_overlap_source_exponents_by_hand_nesting_and_errors():
    """With source exponents each training domain's share enters as ``h_j^{g_j}``, the own
    one too; ``g = 1`` is the law without them exactly (the nested start), a zero weight
    contributes exactly 0 with finite gradients in ``g``, and ``own`` takes none."""
    E, A, a = np.array([1.2, 0.8]), np.array([0.3, 0.5]), np.array([0.4, 0.2])
    S, g = np.array([[0.25, 0.0], [0.5, 2.0]]), np.array([0.5, 0.8, 1.3])
    law = OverlapLaw.from_params(E=E, A=A, a=a, S=S, g=g, n_domains=K, targets=[2, 0])
    share = np.array([H[2] ** 1.3 + 0.25 * H[0] ** 0.5,
                      H[0] ** 0.5 + 0.5 * H[1] ** 0.8 + 2.0 * H[2] ** 1.3])
    pure = dataclasses.replace(law, weight_floor=0.0)
    np.testing.assert_allclose(np.asarray(pure.predict(H, N_, D_)), E + A * share ** -a,
                               rtol=1e-13)
    P = np.array([[0.2, 1.0], [0.5, 0.0], [0.3, 0.7]])
    ranked = OverlapLaw.from_params(E=E, A=A, a=a, P=P, g=g, n_domains=K, targets=[2, 0],
                                    weight_floor=0.0)
    s = P @ P.T
    share = np.array([H[2] ** 1.3 + s[2, 0] * H[0] ** 0.5 + s[2, 1] * H[1] ** 0.8,
                      H[0] ** 0.5 + s[0, 1] * H[1] ** 0.8 + s[0, 2] * H[2] ** 1.3])
    np.testing.assert_allclose(np.asarray(ranked.predict(H, N_, D_)), E + A * share ** -a,
                               rtol=1e-13)
    h0 = jnp.asarray([0.0, 0.6, 0.4])
    at_zero = np.array([E[0] + A[0] * np.sqrt((0.4 ** 1.3) ** 2 + 1e-6) ** -a[0],
                        E[1] + A[1] * np.sqrt((0.5 * 0.6 ** 0.8 + 2.0 * 0.4 ** 1.3) ** 2
                                              + 1e-6) ** -a[1]])
    np.testing.assert_allclose(np.asarray(law.predict(h0, N_, D_)), at_zero, rtol=1e-13)
    grad = jax.grad(lambda m: m.predict(h0, N_, D_).sum())(law)
    assert np.all(np.isfinite(np.asarray(grad.log_g))) and float(grad.log_g[0]) == 0.0
    for plain in (dataclasses.replace(law, log_g=None), dataclasses.replace(ranked, log_g=None),
                  OverlapLaw.from_params(E=E, A=A, a=a, n_domains=K, targets=[2, 0])):
        variant = "free" if plain.variant == "own" else plain.variant
        nested = plain.embed(variant, factors=2, source_exponents=True)
        np.testing.assert_array_equal(np.asarray(nested.g), np.ones(K))
        np.testing.assert_array_equal(np.asarray(nested.predict(H, N_, D_)),
                                      np.asarray(plain.predict(H, N_, D_)))
    assert OverlapLaw.n_parameters(K, 2, variant="free", source_exponents=True) == 2 * 5 + K
    (options, _), = OverlapLaw.nested(variant="rank", factors=3, source_exponents=True)
    assert options["variant"] == "rank" and options["factors"] == 3
    assert "source_exponents" not in options
    with pytest.raises(ValueError, match="'own' variant takes no source exponents"):
        OverlapLaw.from_params(E=E, A=A, a=a, g=g, n_domains=K, targets=[2, 0])
    with pytest.raises(ValueError, match="'own' variant takes no source exponents"):
        LawSpec("overlap", variant="own", source_exponents=True).n_parameters(K, 2)
    with pytest.raises(ValueError, match=r"g must have shape \(3,\)"):
        OverlapLaw.from_params(E=E, A=A, a=a, S=S, g=g[:2], n_domains=K, targets=[2, 0])
    with pytest.raises(ValueError, match="positive"):
        OverlapLaw.from_params(E=E, A=A, a=a, S=S, g=-g, n_domains=K, targets=[2, 0])
    with pytest.raises(ValueError, match="embeds"):
        law.embed("free", source_exponents=True)


@pytest.mark.parametrize("variant", ["linear", "loglinear"])
def test_regression_formula_by_hand_and_intercept(variant):
    w, b = np.array([[2.0, 3.0, 2.5], [1.0, 0.5, 0.8]]), np.array([0.3, -0.2])
    law = RegressionLaw.from_params(w=w, intercept=b, variant=variant)
    z = b + w @ H  # the model with an intercept, exact on the simplex
    expected = np.exp(z) if variant == "loglinear" else z
    np.testing.assert_allclose(np.asarray(law.predict(H, N_, D_)), expected, rtol=1e-13)


@pytest.mark.parametrize("build, match", [
    (lambda: AdditiveLaw.from_params(E=[1.0], C=[[1.0, -1.0]], gamma=[[1.0, 1.0]], A=[1.0],
                                     alpha=[1.0], B=[1.0], beta=[1.0]), "'C' must be positive"),
    (lambda: AdditiveLaw.from_params(E=[1.0, 1.0], C=[[1.0, 1.0]], gamma=[[1.0, 1.0]],
                                     A=[1.0], alpha=[1.0], B=[1.0], beta=[1.0]),
     r"E must have shape \(1,\)"),
    (lambda: JointLaw.from_params(E=[1.0], C=[[1.0]], gamma=[[1.0]], C_A=[[1.0, 2.0]],
                                  gamma_A=[1.0], alpha=[1.0], C_B=[[1.0]], gamma_B=[1.0],
                                  beta=[1.0]), r"C_A must have shape \(1, 1\)"),
    (lambda: DataMixingLaw.from_params(c=[1.0, 2.0], t=[[1.0, 2.0]]), "t must be"),
    (lambda: BiMixLaw.from_params(alpha=[0.1], beta=[0.1], B=[1.0], C=[1.0], n_domains=2,
                                  targets=[5]), "must index"),
    (lambda: BiMixLaw.from_params(alpha=[0.1], beta=[0.1], B=[1.0], C=[1.0], n_domains=1,
                                  weight_floor=-1.0), "weight_floor"),
    (lambda: RegressionLaw.from_params(w=[[1.0]], variant="cubic"), "unknown variant"),
    (lambda: RegressionLaw.init(jax.random.key(0), _summary(), variant="cubic"),
     "unknown variant"),
])
def test_bad_construction_is_refused(build, match):
    with pytest.raises(ValueError, match=match):
        build()


# The tied capacity law sets its one κ for the mean exponent, so with model sizes in other units
# its domains start up to ~10x off; its fits recover from that (planted recovery, test_fit.py),
# and changing the draw would move every committed tied fit, so it is recorded here, not hidden.
_TIED_INIT = pytest.mark.xfail(strict=True, reason="tied κ is scaled for the mean exponent only")


@pytest.mark.parametrize("spec", [
    pytest.param(s, marks=_TIED_INIT) if s == LawSpec("capacity", variant="tied") else s
    for s in SPECS], ids=ids)
def test_init_is_data_scaled(spec):
    """Initial laws predict losses of the order of the observed ones (ranges documented in each
    ``init``), for data in very different units."""
    for scale in (1.0, 1000.0):
        summary = dataclasses.replace(
            _summary(scale=spec.uses_scale),
            model_size=tuple(scale * s for s in _summary().model_size),
            loss_min=np.full(K, 2.0 * scale), loss_max=np.full(K, 3.0 * scale))
        laws = eqx.filter_vmap(lambda key, summary=summary: spec.init(key, summary))(
            jnp.stack([jax.random.key(s) for s in range(8)]))  # 8 initial laws, batched
        pred = np.asarray(_predict_even_mixture(laws, jnp.asarray(20.0 * scale)))
        assert np.all(pred > 0.5 * scale) and np.all(pred < 8.0 * scale)


@eqx.filter_jit
@eqx.filter_vmap(in_axes=(0, None))
def _predict_even_mixture(law, n):
    """Batched laws' predictions at the even mixture, model size ``n`` and 2 tokens (one
    compilation per law structure, whatever ``n``)."""
    return law.predict(jnp.ones(K) / K, n, 2.0)

