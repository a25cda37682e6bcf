"""The capacity-competition law's own values: the formula by hand, its variants, the weight
floor, gradients where a domain sits on the head floor ``x = H``. What every law must satisfy
(zero weights, jit/vmap, gradients in general, planted recovery, the contract) is checked once
for all laws in ``test_laws.py``."""

import dataclasses

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_grad_matches_fd

from mixscale import CapacityLaw, allocate, parameter_count

K = 4


def _full_law(**kw):
    params = dict(b=[0.3, 0.5, 0.4, 0.6], c=[2.0, 1.5, 1.0, 2.5], H=0.5,
                  A=[0.5, 0.3, 0.4, 0.6], a=[0.3, 0.4, 0.2, 0.5], E=[1.0, 1.5, 0.8, 2.0])
    params.update(kw)
    return CapacityLaw.from_params(**params)


def _law(variant):
    if variant == "full":
        return _full_law()
    if variant == "capacity":
        return CapacityLaw.from_params(b=[0.3, 0.5, 0.4, 0.6], c=[2.0, 1.5, 1.0, 2.5], H=0.5,
                                       E=[1.0, 1.5, 0.8, 2.0], variant="capacity")
    return CapacityLaw.from_params(alpha=[1.3, 1.5, 1.4, 1.8], beta=0.2, kappa=0.7, H=0.5,
                                   A=[0.5, 0.3, 0.4, 0.6], E=[1.0, 1.5, 0.8, 2.0],
                                   variant="tied")


def test_formula_by_hand():
    law = _full_law()
    h, N, D = np.array([0.1, 0.2, 0.3, 0.4]), 40.0, 7.0
    b, c = np.array([0.3, 0.5, 0.4, 0.6]), np.array([2.0, 1.5, 1.0, 2.5])
    x = np.asarray(allocate(h, b, c, N, 0.5))
    A, a, E = np.array([0.5, 0.3, 0.4, 0.6]), np.array([0.3, 0.4, 0.2, 0.5]), np.array(
        [1.0, 1.5, 0.8, 2.0])
    expected = c * x**-b + A * (D * h) ** -a + E
    np.testing.assert_allclose(np.asarray(law.predict(h, N, D)), expected, rtol=1e-13)


def test_smoothed_law_predicts_with_the_smoothed_allocation_and_zero_is_exact():
    """``smoothed(τ)``: the same parameters, the allocation's floor smoothed at ``τ``
    (``log_allocation(..., τ)``); ``smoothed(0)`` is the exact law, bitwise; a law without kinks
    has no smoothed version."""
    from mixscale import log_allocation
    from mixscale.laws import BiMixLaw

    law = _full_law()
    h, N, D = np.array([0.001, 0.2, 0.3, 0.499]), 40.0, 7.0  # domain 0 on the floor
    assert np.asarray(law.allocation(h, N))[0] == pytest.approx(0.5, rel=1e-12)
    smooth = law.smoothed(1e-2)
    assert parameter_count(smooth) == parameter_count(law)
    x = np.exp(np.asarray(log_allocation(h, law.b, law.c, N, law.H, 1e-2)))
    np.testing.assert_allclose(np.asarray(smooth.allocation(h, N)), x, rtol=1e-13)
    b, c = np.asarray(law.b), np.asarray(law.c)
    A, a, E = (np.asarray(v) for v in (law.A, law.a, law.E))
    np.testing.assert_allclose(np.asarray(smooth.predict(h, N, D)),
                               c * x**-b + A * (D * h) ** -a + E, rtol=1e-12)
    coarse = law.smoothed(1.0)  # domain 0 lies far below its kink: only a coarse τ shows
    assert not np.allclose(np.asarray(coarse.predict(h, N, D)), np.asarray(law.predict(h, N, D)),
                           rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(smooth.smoothed(0.0).predict(h, N, D)),
                                  np.asarray(law.predict(h, N, D)))
    for bad in (-1e-3, "1e-3", float("nan")):
        with pytest.raises(ValueError, match="smoothing"):
            law.smoothed(bad)
    bimix = BiMixLaw.from_params(alpha=[0.3, 0.4], beta=[0.2, 0.3], B=[1.0, 1.0], C=[1.0, 1.0],
                                 n_domains=2)
    assert bimix.smoothed(1e-3) is None


def test_parameter_counts_and_natural_parameters_round_trip():
    assert parameter_count(_law("full")) == 5 * K + 1
    assert parameter_count(_law("capacity")) == 3 * K + 1
    assert parameter_count(_law("tied")) == 3 * K + 3
    for variant in ("full", "capacity", "tied"):
        law = _law(variant)
        back = CapacityLaw.from_params(variant=variant, **law.natural_parameters())
        h = jnp.array([0.1, 0.2, 0.3, 0.4])
        np.testing.assert_allclose(np.asarray(back.predict(h, 30.0, 5.0)),
                                   np.asarray(law.predict(h, 30.0, 5.0)), rtol=1e-14)
    sub = CapacityLaw.from_params(b=np.ones(5), c=np.ones(5), H=0.1, A=np.ones(2),
                                  a=np.ones(2), E=np.ones(2), targets=[1, 3])
    assert parameter_count(sub) == 2 * 5 + 3 * 2 + 1
    assert sub.predict(jnp.full(5, 0.2), 10.0, 1.0).shape == (2,)


def _transfer_terms_by_hand(h, N, D, p, eta, gamma):
    """The transfer variant's capacity term ``c x*(h, N; H + ηN)^(-b)``, data term
    ``A D^(-a) h̃^(-γa)`` (``h̃_i = h_i + Σ_{j≠i} p_i p_j h_j``, summed pair by pair) and ``E``,
    in numpy from :func:`_full_law`'s parameters."""
    b, c = np.array([0.3, 0.5, 0.4, 0.6]), np.array([2.0, 1.5, 1.0, 2.5])
    A, a, E = np.array([0.5, 0.3, 0.4, 0.6]), np.array([0.3, 0.4, 0.2, 0.5]), np.array(
        [1.0, 1.5, 0.8, 2.0])
    x = np.asarray(allocate(h, b, c, N, 0.5 + eta * N))
    h_eff = np.array([h[i] + sum(p[i] * p[j] * h[j] for j in range(K) if j != i)
                      for i in range(K)])
    return c * x**-b, A * D**-a * h_eff ** (-gamma * a), E


def test_transfer_variant_formula_by_hand():
    """``c x*(h, N; H + ηN)^(-b) + A D^(-a) h̃^(-γa) + E`` with the effective share summed pair
    by pair, ``h̃_i = h_i + Σ_{j≠i} p_i p_j h_j``."""
    p, eta, gamma = np.array([0.2, 0.9, 0.5, 1.3]), 0.05, 0.4
    law = _full_law(variant="transfer", eta=eta, gamma=gamma, p=p)
    assert parameter_count(law) == 6 * K + 3
    h, N, D = np.array([0.1, 0.2, 0.3, 0.4]), 40.0, 7.0
    cap, data, E = _transfer_terms_by_hand(h, N, D, p, eta, gamma)
    expected = cap + data + E
    np.testing.assert_allclose(np.asarray(law.predict(h, N, D)), expected, rtol=1e-13)
    back = CapacityLaw.from_params(variant="transfer", **law.natural_parameters())
    np.testing.assert_allclose(np.asarray(back.predict(h, N, D)), expected, rtol=1e-14)


@pytest.mark.parametrize("h", [[0.1, 0.2, 0.3, 0.4], [1.0, 0.0, 0.0, 0.0],
                               [0.997, 0.001, 0.001, 0.001]])
def test_full_nests_in_transfer_to_1e7(h):
    """At ``γ = 1`` and ``η``, ``p`` at the lower ends of their ranges the transfer variant is
    the paper's law to ``1e-7`` of the loss, from the smallest to a large model and budget."""
    full = _full_law()
    law = full.embed("transfer")
    assert law.variant == "transfer" and float(law.gamma) == 1.0
    for N, D in [(1.0, 0.01), (40.0, 7.0), (1e4, 1e3)]:
        np.testing.assert_allclose(np.asarray(law.predict(jnp.asarray(h), N, D)),
                                   np.asarray(full.predict(jnp.asarray(h), N, D)), rtol=1e-7)


def test_crossover_variant_formula_by_hand():
    """``E + (C^q + B^q)^(1/q)`` with ``C = c x*(h, N; H + ηN)^(-b)`` and
    ``B = A D^(-a) h̃^(-γa)`` the transfer variant's terms; 6K + 4 parameters."""
    p, eta, gamma, q = np.array([0.2, 0.9, 0.5, 1.3]), 0.05, 0.4, 2.5
    law = _full_law(variant="crossover", eta=eta, gamma=gamma, p=p, q=q)
    assert parameter_count(law) == 6 * K + 4 and float(law.q) == pytest.approx(q, rel=1e-15)
    transfer = _full_law(variant="transfer", eta=eta, gamma=gamma, p=p)
    h, N, D = np.array([0.1, 0.2, 0.3, 0.4]), 40.0, 7.0
    cap, data, E = _transfer_terms_by_hand(h, N, D, p, eta, gamma)
    expected = (cap**q + data**q) ** (1 / q) + E
    np.testing.assert_allclose(np.asarray(law.predict(h, N, D)), expected, rtol=1e-13)
    # the sum of transfer is larger: a power mean of two positive terms with q > 1
    assert np.all(np.asarray(transfer.predict(h, N, D)) > expected)
    np.testing.assert_allclose(np.asarray(transfer.predict(h, N, D)), cap + data + E,
                               rtol=1e-13)
    back = CapacityLaw.from_params(variant="crossover", **law.natural_parameters())
    np.testing.assert_allclose(np.asarray(back.predict(h, N, D)), expected, rtol=1e-14)
    with pytest.raises(ValueError, match="q - 1"):
        _full_law(variant="crossover", eta=eta, gamma=gamma, p=p, q=1.0)


@pytest.mark.parametrize("h", [[0.1, 0.2, 0.3, 0.4], [1.0, 0.0, 0.0, 0.0],
                               [0.997, 0.001, 0.001, 0.001]])
def test_transfer_nests_in_crossover_to_1e12_and_the_largest_q_is_near_the_maximum(h):
    """At the lower end of ``q − 1`` the crossover variant is the transfer variant to ``1e-12``
    of the loss; at its upper end (``q = 20``) the combined term is within 3.5 % of the larger
    of the two terms, from the smallest to a large model and budget."""
    transfer = _full_law().embed("transfer")
    low = transfer.embed("crossover")
    assert low.variant == "crossover" and float(low.q) - 1.0 == pytest.approx(1e-12, rel=1e-3)
    high = dataclasses.replace(low, log_q_minus_1=jnp.asarray(np.log(19.0)))
    hh = jnp.asarray(h)
    for N, D in [(1.0, 0.01), (40.0, 7.0), (1e4, 1e3)]:
        np.testing.assert_allclose(np.asarray(low.predict(hh, N, D)),
                                   np.asarray(transfer.predict(hh, N, D)), rtol=1e-12)
        excess = np.asarray(high.predict(hh, N, D) - high.E)
        x = np.asarray(high.allocation(hh, N))
        cap = np.asarray(high.c * x ** -high.b)
        shares = np.maximum(np.asarray(high.effective_shares(hh)), 1e-3)
        data = np.asarray(high.A * D ** -high.a) * shares ** -np.asarray(high.g)
        larger = np.maximum(cap, data)
        assert np.all(excess >= larger * (1 - 1e-12))
        assert np.all(excess <= larger * 2 ** (1 / 20) * (1 + 1e-12))
    assert _full_law().embed("crossover").variant == "crossover"


def test_coupled_variant_formula_by_hand():
    """The crossover with the data term at ``N^θ D`` tokens:
    ``E + (C^q + B^q)^(1/q)``, ``B = A (N^θ D)^(-a) h̃^(-γa)``; 6K + 5 parameters."""
    p, eta, gamma, q, theta = np.array([0.2, 0.9, 0.5, 1.3]), 0.05, 0.4, 2.5, 0.3
    law = _full_law(variant="coupled", eta=eta, gamma=gamma, p=p, q=q, theta=theta)
    assert parameter_count(law) == 6 * K + 5 and float(law.sample_efficiency) == theta
    h, N, D = np.array([0.1, 0.2, 0.3, 0.4]), 40.0, 7.0
    cap, data, E = _transfer_terms_by_hand(h, N, N**theta * D, p, eta, gamma)
    expected = (cap**q + data**q) ** (1 / q) + E
    np.testing.assert_allclose(np.asarray(law.predict(h, N, D)), expected, rtol=1e-13)
    # the data limit at size N is the crossover's at N^θ times the tokens
    crossover = _full_law(variant="crossover", eta=eta, gamma=gamma, p=p, q=q)
    np.testing.assert_allclose(np.asarray(law.predict(h, N, D)),
                               np.asarray(crossover.predict(h, N, N**theta * D)), rtol=1e-13)
    back = CapacityLaw.from_params(variant="coupled", **law.natural_parameters())
    np.testing.assert_allclose(np.asarray(back.predict(h, N, D)), expected, rtol=1e-14)


@pytest.mark.parametrize("h", [[0.1, 0.2, 0.3, 0.4], [1.0, 0.0, 0.0, 0.0]])
def test_crossover_nests_in_coupled_exactly(h):
    """At ``θ = 0`` the coupled variant is the crossover variant (the same floating-point
    operations but for a factor ``N^0 = 1``), and ``embed`` puts ``θ`` there."""
    crossover = _full_law(variant="crossover", eta=0.05, gamma=0.4,
                          p=np.array([0.2, 0.9, 0.5, 1.3]), q=2.5)
    law = crossover.embed("coupled")
    assert law.variant == "coupled" and float(law.theta) == 0.0
    assert CapacityLaw.nested(variant="coupled")[0][0]["variant"] == "crossover"
    hh = jnp.asarray(h)
    for N, D in [(1.0, 0.01), (40.0, 7.0), (1e4, 1e3)]:
        np.testing.assert_allclose(np.asarray(law.predict(hh, N, D)),
                                   np.asarray(crossover.predict(hh, N, D)), rtol=1e-15)
    assert _full_law().embed("coupled").variant == "coupled"


def test_pooled_variants_formula_by_hand():
    """The crossover with the capacity term at the pooled kept ranks
    ``x̃_i = x_i + p_i Σ_{j≠i} p_j (x_j − H − ηN)`` (the allocation itself unchanged, the head
    not counted twice): 6K + 4 parameters,
    and 6K + 5 with the data term at ``N^θ D`` tokens (``pooled_coupled``)."""
    p, eta, gamma, q, theta = np.array([0.2, 0.9, 0.5, 1.3]), 0.05, 0.4, 2.5, 0.3
    law = _full_law(variant="pooled", eta=eta, gamma=gamma, p=p, q=q)
    both = _full_law(variant="pooled_coupled", eta=eta, gamma=gamma, p=p, q=q, theta=theta)
    assert parameter_count(law) == 6 * K + 4 and parameter_count(both) == 6 * K + 5
    h, N, D = np.array([0.1, 0.2, 0.3, 0.4]), 40.0, 7.0
    head = 0.5 + eta * N
    x = np.asarray(allocate(h, np.array([0.3, 0.5, 0.4, 0.6]),
                            np.array([2.0, 1.5, 1.0, 2.5]), N, head))
    pooled = np.array([x[i] + sum(p[i] * p[j] * (x[j] - head) for j in range(K) if j != i)
                       for i in range(K)])
    np.testing.assert_allclose(np.asarray(law.kept(h, N)), pooled, rtol=1e-13)
    np.testing.assert_allclose(np.asarray(law.allocation(h, N)), x, rtol=1e-13)
    cap_own, data, E = _transfer_terms_by_hand(h, N, D, p, eta, gamma)
    cap = cap_own * (pooled / x) ** -np.array([0.3, 0.5, 0.4, 0.6])
    expected = (cap**q + data**q) ** (1 / q) + E
    np.testing.assert_allclose(np.asarray(law.predict(h, N, D)), expected, rtol=1e-13)
    # pooling only lowers the capacity term: below the crossover with the same parameters
    crossover = _full_law(variant="crossover", eta=eta, gamma=gamma, p=p, q=q)
    assert np.all(np.asarray(law.predict(h, N, D)) < np.asarray(crossover.predict(h, N, D)))
    _, data_n, _ = _transfer_terms_by_hand(h, N, N**theta * D, p, eta, gamma)
    np.testing.assert_allclose(np.asarray(both.predict(h, N, D)),
                               (cap**q + data_n**q) ** (1 / q) + E, rtol=1e-13)
    for variant, one in (("pooled", law), ("pooled_coupled", both)):
        back = CapacityLaw.from_params(variant=variant, **one.natural_parameters())
        np.testing.assert_allclose(np.asarray(back.predict(h, N, D)),
                                   np.asarray(one.predict(h, N, D)), rtol=1e-14)


@pytest.mark.parametrize("h", [[0.1, 0.2, 0.3, 0.4], [1.0, 0.0, 0.0, 0.0],
                               [0.997, 0.001, 0.001, 0.001]])
def test_full_nests_in_pooled_to_1e7_and_pooled_in_pooled_coupled_exactly(h):
    """``full`` is ``pooled`` at ``γ = 1`` and ``p``, ``η``, ``q − 1`` at the lower ends of their
    ranges, to ``1e-7`` of the loss as ``transfer`` is (the pooled ranks add ``10⁻¹⁴`` of the
    largest kept count to the smallest), even at a model ``2·10⁴`` heads large; ``pooled`` is
    ``pooled_coupled`` at ``θ = 0`` exactly. A variant with fitted loadings (``crossover``) does
    not nest: its ``p`` would pool the capacity."""
    full = _full_law()
    law = full.embed("pooled")
    both = law.embed("pooled_coupled")
    assert law.variant == "pooled" and both.variant == "pooled_coupled"
    assert float(both.theta) == 0.0
    assert CapacityLaw.nested(variant="pooled")[0][0]["variant"] == "full"
    assert CapacityLaw.nested(variant="pooled_coupled")[0][0]["variant"] == "pooled"
    hh = jnp.asarray(h)
    for N, D in [(1.0, 0.01), (40.0, 7.0), (1e4, 1e3)]:
        np.testing.assert_allclose(np.asarray(law.predict(hh, N, D)),
                                   np.asarray(full.predict(hh, N, D)), rtol=1e-7)
        np.testing.assert_allclose(np.asarray(both.predict(hh, N, D)),
                                   np.asarray(law.predict(hh, N, D)), rtol=1e-15)
    assert _law("tied").embed("pooled_coupled").variant == "pooled_coupled"
    crossover = _full_law(variant="crossover", eta=0.05, gamma=0.4,
                          p=np.array([0.2, 0.9, 0.5, 1.3]), q=2.5)
    with pytest.raises(ValueError, match="does not nest in 'pooled'"):
        crossover.embed("pooled")


def test_tied_variant_ties_exponents():
    law = _law("tied")
    alpha = np.array([1.3, 1.5, 1.4, 1.8])
    np.testing.assert_allclose(np.asarray(law.b), alpha + 0.2 - 1.0, rtol=1e-14)
    np.testing.assert_allclose(np.asarray(law.a), (alpha + 0.2 - 1.0) / alpha, rtol=1e-14)
    np.testing.assert_allclose(np.asarray(law.c), 0.7 ** -(alpha - 0.8) / (alpha - 0.8),
                               rtol=1e-14)


def test_capacity_variant_ignores_tokens():
    law = _law("capacity")
    h = jnp.array([0.1, 0.2, 0.3, 0.4])
    np.testing.assert_array_equal(np.asarray(law.predict(h, 30.0, 1.0)),
                                  np.asarray(law.predict(h, 30.0, 100.0)))


def test_weight_floor_zero_is_the_pure_law():
    law = _full_law()
    pure = _full_law(weight_floor=0.0)
    h = jnp.array([0.0, 0.5, 0.2, 0.3])
    assert np.isinf(np.asarray(pure.predict(h, 30.0, 5.0))[0])
    h = jnp.array([0.1, 0.4, 0.2, 0.3])  # above the floor both agree exactly
    np.testing.assert_array_equal(np.asarray(pure.predict(h, 30.0, 5.0)),
                                  np.asarray(law.predict(h, 30.0, 5.0)))


@pytest.mark.parametrize("variant", ["full", "capacity", "tied"])
def test_gradients_match_finite_differences(variant):
    law = _law(variant)
    h = np.array([0.002, 0.298, 0.3, 0.4])  # domain 0 sits on the floor x = H, the rest do not
    x = np.asarray(law.allocation(h, 12.0))
    assert x[0] == pytest.approx(float(law.H)) and np.all(x[1:] > 1.01 * float(law.H))
    params, static = eqx.partition(law, eqx.is_inexact_array)
    names = [n for n in ("log_b", "log_c", "log_H", "log_E", "log_A", "log_a",
                         "log_alpha_minus_1", "log_beta", "log_kappa")
             if getattr(law, n) is not None]
    assert "log_H" in names
    # One function of (h, N, D, every entry of every named parameter) stacked: one compiled
    # function and Jacobian, each column still compared with its own central difference.
    values = [np.asarray(getattr(law, name)) for name in names]
    bounds = np.cumsum([6] + [v.size for v in values])

    def f(z):
        new = [z[lo:hi].reshape(v.shape) for lo, hi, v in zip(bounds[:-1], bounds[1:], values,
                                                               strict=True)]
        law_z = eqx.combine(eqx.tree_at(lambda p: [getattr(p, n) for n in names], params, new),
                            static)
        return law_z.predict(z[:4], z[4], z[5])

    z = np.concatenate([h, [12.0, 5.0], *[v.ravel() for v in values]])
    labels = [f"h[{i}]" for i in range(4)] + ["N", "D"] + [
        f"{n}[{i}]" for n, v in zip(names, values, strict=True) for i in range(v.size)]
    assert_grad_matches_fd(f, z, rtol=1e-5, jit=True, err_msg=f"columns: {labels}")


def test_bad_construction_is_refused():
    with pytest.raises(ValueError, match="variant"):
        CapacityLaw.from_params(b=[1.0], c=[1.0], H=1.0, E=[1.0], A=[1.0], a=[1.0],
                                variant="nope")
    with pytest.raises(ValueError, match="'b' must be positive"):
        _full_law(b=[0.3, -0.5, 0.4, 0.6])
    with pytest.raises(ValueError, match=r"needs parameters \['A'\]"):
        _full_law(A=None)
    with pytest.raises(ValueError, match="4 training domains"):
        _full_law().predict(jnp.ones(3) / 3, 10.0, 1.0)


@pytest.mark.parametrize("variant, field", [("full", "log_b"), ("tied", "log_alpha_minus_1")])
def test_a_missing_size_field_is_refused_by_name(variant, field):
    """A law (e.g. read from a fit file) without the field that sizes its domains is refused
    with a message naming it, not with an error about the shape of ``None``."""
    law = _law(variant)
    with pytest.raises(ValueError, match=f"needs {field}"):
        dataclasses.replace(law, **{field: None})


@pytest.mark.parametrize("variant", ["transfer", "pooled"])
def test_the_pooled_share_floor_is_a_kink_that_kink_gaps_lists(variant):
    """A target absent from the mixture has the pooled share ``h̃_i = p_i Σ_{j≠i} p_j h_j``,
    floored at the weight floor ``f``: where ``h̃_i`` crosses ``f`` the loss has a kink in
    ``p_i`` (flat below, ``−γ a_i`` in ``log h̃_i`` above). ``kink_gaps`` lists it after the
    allocation's ``K`` gaps, ``log h̃_i − log f``, zero there; a little off it the one-sided
    derivatives agree and no gap is near zero. (Not smoothed by the kink continuation; the
    certificate finishes on it.)"""
    h, N, D = jnp.array([0.6, 0.4, 0.0, 0.0]), 40.0, 7.0
    p = np.array([0.5, 0.9, 0.0, 0.3])
    p[2] = 1e-3 / (p[0] * 0.6 + p[1] * 0.4)          # h̃_2 = f exactly
    extra = {"q": 2.0} if variant == "pooled" else {}
    law = _full_law(variant=variant, eta=0.05, gamma=0.8, p=p, **extra)

    def at(log_p2):
        moved = eqx.tree_at(lambda m: m.log_p, law, law.log_p.at[2].set(log_p2))
        return np.asarray(moved.predict(h, N, D))[2], np.asarray(moved.kink_gaps(h, N, D))

    x0, eps = float(law.log_p[2]), 1e-6
    gaps = at(x0)[1]
    assert gaps.shape == (2 * K,) and abs(gaps[K + 2]) < 1e-12
    assert np.all(np.isinf(gaps[K:K + 2]))             # present targets: no such kink
    right = (at(x0 + eps)[0] - at(x0)[0]) / eps
    left = (at(x0)[0] - at(x0 - eps)[0]) / eps
    assert right - left < -1e-3                        # the data term falls only above
    assert left == 0.0 or variant == "pooled"        # pooled: p pools capacity too
    off = x0 + np.log(1.5)
    right = (at(off + eps)[0] - at(off)[0]) / eps
    left = (at(off)[0] - at(off - eps)[0]) / eps
    assert right == pytest.approx(left, rel=1e-4)
    assert np.min(np.abs(at(off)[1])) > 0.1


def test_full_lists_only_the_allocation_floor():
    law = _full_law()
    assert np.asarray(law.kink_gaps(jnp.array([0.6, 0.4, 0.0, 0.0]), 40.0, 7.0)).shape == (K,)
