"""Pieces shared by the baseline laws: safe powers of mixture weights and initialisation draws.

Laws share code through these functions, not through inheritance (each law is a final class).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import known_values

__all__ = ["EXPONENT_RANGE", "check_mixture", "check_smoothing", "check_variant_fields",
           "check_weight_floor",
           "every_target", "floored_log", "in_mixture_targets", "log_power_sum", "log_range",
           "log_uniform", "non_negative", "positive", "smooth_floored_log", "uniform",
           "weight_power"]

#: Range of every scaling exponent of the laws (natural units). Measured exponents of language
#: models in data and size lie within 0.05-1 (Kaplan et al. 2020: 0.076 and 0.095; Hoffmann et
#: al. 2022: 0.28 and 0.34; Shukor et al. 2025 report per-domain exponents below 1), and the
#: theory behind the capacity law gives b = α + β − 1 ≤ 3 for spectra l^(-α) with α ≤ 3 and a
#: source exponent β ≤ 1. An exponent at 0 makes its term a constant (a second E) and one past 3
#: a step function of the scale: neither is a power law that extrapolates.
EXPONENT_RANGE = (0.01, 3.0)


def every_target(train_domains, loss_domains) -> tuple[str, ...]:
    """``targets_for`` of a law whose mixture enters through all weights: every loss domain,
    also an out-of-mixture one."""
    del train_domains
    return tuple(loss_domains)


def in_mixture_targets(train_domains, loss_domains) -> tuple[str, ...]:
    """``targets_for`` of a law that predicts a domain's loss from its own weight: the loss
    domains that are training domains, in order."""
    return tuple(s for s in loss_domains if s in train_domains)


def check_variant_fields(law, used, optional, shapes) -> None:
    """Raise ``ValueError`` unless the law's variant has exactly its fields: every field in
    ``used`` is set with the shape ``shapes.get(field, ())``, and no field of ``optional`` that
    the variant does not use is set (``None`` marks a field a variant leaves out)."""
    used = tuple(used)
    unused = [f for f in optional if f not in used and getattr(law, f) is not None]
    if unused:
        raise ValueError(f"variant {law.variant!r} does not use {unused}")
    for f in used:
        value = getattr(law, f)
        if value is None:
            raise ValueError(f"variant {law.variant!r} needs {f}")
        if jnp.shape(value) != shapes.get(f, ()):
            raise ValueError(f"{f} must have shape {shapes.get(f, ())}, got {jnp.shape(value)}")


def check_weight_floor(value) -> None:
    """Raise ``ValueError`` unless ``value`` is a number in ``[0, 1)``: the smallest share a
    law's data term uses (``max(h_i, weight_floor)``); a floor of 1 or more would replace every
    share."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"weight_floor must be a number in [0, 1), got {value!r}")
    if not 0 <= value < 1:
        raise ValueError(f"weight_floor must be in [0, 1), got {value!r}")


def check_smoothing(value) -> float | jax.Array:
    """``value`` as a float if it is a non-negative number (a kink-smoothing temperature,
    :meth:`~mixscale.laws.AbstractLaw.smoothed`), or as is if it is a 0-d floating JAX array
    (a positive temperature as a value, possibly traced: :func:`mixscale._allocation.is_exact`;
    positive if concrete); ``ValueError`` otherwise (NaN included)."""
    if isinstance(value, jax.Array):
        if value.ndim != 0 or not jnp.issubdtype(value.dtype, jnp.floating):
            raise ValueError(f"smoothing as an array must be a 0-d float, got {value.dtype}"
                             f"{list(value.shape)}")
        if not isinstance(value, jax.core.Tracer) and not float(value) > 0:
            raise ValueError(f"smoothing as an array is a positive temperature, got "
                             f"{float(value)!r} (give 0 as a number for the exact law)")
        return value
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and value >= 0):
        raise ValueError(f"smoothing must be a non-negative number, got {value!r}")
    return float(value)


def check_mixture(h: jax.Array, k: int, N=None, D=None) -> jax.Array:
    """``h`` as an array of shape ``(k,)``; a clear error for a batch or a wrong ``K``, and,
    where their values are known (not traced: :func:`mixscale._checks.known_values`), for a
    weight that is NaN, infinite or negative and for a size ``N`` or tokens ``D`` (when given)
    that is NaN or infinite."""
    h = jnp.asarray(h)
    if h.ndim != 1:
        raise ValueError(f"h must be one mixture of shape (K,), got {h.shape}; "
                         "use jax.vmap for a batch")
    if h.shape[0] != k:
        raise ValueError(f"h has {h.shape[0]} weights but the law has {k} training domains")
    known_values(h, "h (mixture weights)", non_negative=True)
    for value, what in ((N, "N (model size)"), (D, "D (tokens)")):
        if value is not None:
            known_values(value, what)
    return h


def weight_power(h: jax.Array, gamma: jax.Array) -> jax.Array:
    r""":math:`h^\gamma` for weights :math:`h \ge 0` and exponents :math:`\gamma > 0`.

    Exactly ``0`` where ``h = 0`` (the limit of :math:`h^\gamma`), with finite gradients there:
    the gradient with respect to :math:`\gamma` is its limit ``0``
    (:math:`h^\gamma \log h \to 0`), and the gradient with respect to ``h`` is reported as
    ``0`` (the one-sided derivative :math:`\gamma h^{\gamma-1}` is infinite for
    :math:`\gamma < 1`). A naive ``h ** gamma`` gives ``NaN`` gradients at ``h = 0`` instead.
    Broadcasts ``h`` against ``gamma``.
    """
    positive_h = h > 0
    h_safe = jnp.where(positive_h, h, 1.0)  # the double-where trick: no log(0) in any branch
    return jnp.where(positive_h, jnp.exp(gamma * jnp.log(h_safe)), 0.0)


def log_power_sum(log_C: jax.Array, h: jax.Array, gamma: jax.Array) -> jax.Array:
    r""":math:`\log \sum_j C_j h_j^{\gamma_j}` over the last axis, computed as a log-sum-exp.

    ``log_C`` and ``gamma`` broadcast against ``h`` (weights ``h >= 0``). Terms with
    ``h_j = 0`` are left out exactly (their limit is ``0``), with finite gradients (double
    ``where``); at least one ``h_j`` must be positive (a mixture's weights sum to 1). Summing in
    logs keeps the result and its Jacobian finite when a coefficient is fitted towards ``0``
    (``C_j = exp(-500)``): the plain sum underflows there, and its square in the Jacobian of
    ``1 / sum`` gives ``0 / 0``.
    """
    positive_h = h > 0
    log_h = jnp.log(jnp.where(positive_h, h, 1.0))
    terms = jnp.where(positive_h, log_C + gamma * log_h, -jnp.inf)
    top = jax.lax.stop_gradient(jnp.max(jnp.where(positive_h, terms, -jnp.inf), axis=-1,
                                        keepdims=True))
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    safe = jnp.where(positive_h, terms - top, 0.0)
    total = jnp.sum(jnp.where(positive_h, jnp.exp(safe), 0.0), axis=-1)
    return jnp.log(total) + top[..., 0]


def floored_log(h: jax.Array, floor: float) -> jax.Array:
    """``log(max(h, floor))`` with finite values and gradients for every ``h >= 0``.

    Above the floor it is exactly ``log h``; at or below it is the constant ``log floor`` (zero
    gradient). ``floor = 0`` gives the pure ``log h`` (``-inf`` at ``h = 0``).
    """
    above = h > floor
    h_safe = jnp.where(above, h, 1.0)
    below = np.log(floor) if floor > 0 else -np.inf
    return jnp.where(above, jnp.log(h_safe), below)


def smooth_floored_log(h: jax.Array, floor: float) -> jax.Array:
    """``log √(h² + floor²)``: smooth in ``h`` everywhere, ``log h`` for ``h ≫ floor`` (``h``
    changed by ``floor²/2h²`` relative), ``log floor`` at ``h = 0``; ``floor = 0`` gives the pure
    ``log h`` (``-inf`` at ``h = 0``). For a share that moves with the parameters, where
    :func:`floored_log`'s kink at the floor stops a fit (``mixscale.laws._overlap``)."""
    return 0.5 * jnp.log(h * h + floor * floor)


def positive(value, what: str) -> jax.Array:
    """``log(value)`` for a strictly positive parameter given in natural units (construction)."""
    if value is None:
        raise ValueError(f"parameter {what!r} is required")
    arr = jnp.asarray(value, dtype=float)
    if not bool(jnp.all(arr > 0)):
        raise ValueError(f"parameter {what!r} must be positive, got {value!r}")
    return jnp.log(arr)


def non_negative(value, what: str) -> jax.Array:
    """``value`` as a float array, for a parameter stored as it is with a lower end of ``0``
    (construction); refuses a negative entry."""
    arr = jnp.asarray(value, dtype=float)
    if not bool(jnp.all(arr >= 0)):
        raise ValueError(f"parameter {what!r} must be non-negative, got {value!r}")
    return arr


def log_range(lo: float, hi: float) -> tuple[float, float]:
    """Bounds ``(log lo, log hi)`` of a field that holds the log of a positive parameter."""
    return float(np.log(lo)), float(np.log(hi))


def log_uniform(key: jax.Array, lo: float, hi: float, shape=()) -> jax.Array:
    """``log x`` for ``x`` log-uniform in ``[lo, hi]``."""
    return jax.random.uniform(key, shape, minval=np.log(lo), maxval=np.log(hi))


def uniform(key: jax.Array, lo: float, hi: float, shape=()) -> jax.Array:
    """``x`` uniform in ``[lo, hi]``."""
    return jax.random.uniform(key, shape, minval=lo, maxval=hi)
