r"""Closed-form expected losses for a constant step: one symmetric eigendecomposition.

For a constant step :math:`\gamma` the recursion of :mod:`simulate._recursion` restricted to the
``N`` kept features is linear, :math:`c_{t+1} = M c_t + u`, with the symmetric
diagonal-plus-rank-``K`` matrix

.. math::

    M = \mathrm{diag}\Big(1 - 2\gamma\lambda + \gamma^2\big[\tfrac{2q}{B}
        + (1 - \tfrac1B)\lambda^2\big]\Big) + \frac{\gamma^2}{B}\, G^\top G,
    \qquad G_{jk} = \sqrt{h_j}\, a_{jk},

and :math:`u = \tfrac{\gamma^2}{B} A^\top\big(h \odot (\sigma^2 + \varepsilon)\big)`, where
:math:`\varepsilon_j = \sum_{k\ \text{not kept}} a_{jk} (w^*_k)^2` is the approximation error.
With :math:`S = I - M = V \mathrm{diag}(\nu) V^\top` (one ``eigh``; ``ν ∈ (0, 1]`` in the stable
range, ``ν = 0`` exactly for features with :math:`\lambda_k = 0`, which never move),

.. math::

    c_t = V\Big[(1-\nu)^t \odot V^\top c_0 + \frac{1 - (1-\nu)^t}{\nu} \odot V^\top u\Big],
    \qquad L_i(t) = \sigma_i^2 + \varepsilon_i + \sum_{k\ \text{kept}} a_{ik}\, c_{t,k},

evaluated as :math:`(1-\nu)^t = \exp(t\,\mathrm{log1p}(-\nu))` and
:math:`1 - (1-\nu)^t = -\mathrm{expm1}(t\,\mathrm{log1p}(-\nu))`, so slow directions
(:math:`\nu \ll 1`) keep full relative precision at any ``t``. Cost: ``O(N³)`` once, then
``O(K N)`` per checkpoint — the tool for very large ``D`` at moderate ``N``; for large ``N`` and
moderate ``D`` the ``O(K N D)`` recursion is cheaper.

Public entry points: :func:`closed_form_losses` (one mixture and size) and
``simulate.sweep(..., method="closed_form")`` (mixtures × sizes, through
:func:`closed_form_batch`). Both accept a constant step only.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from ._model import DisjointTailModel
from ._schedule import Constant
from ._validate import check_call

__all__ = ["closed_form_batch", "closed_form_losses", "closed_form_one", "require_constant"]


def require_constant(schedule, verb: str) -> Constant:
    """``schedule`` if it is a :class:`Constant`, else a ``ValueError`` saying why and what to
    use instead."""
    if not isinstance(schedule, Constant):
        raise ValueError(f"{verb} needs a Constant schedule: the closed form holds for a "
                         f"constant step only, got {type(schedule).__name__}; use "
                         "method='recursion' for any other AbstractSchedule")
    return schedule


def closed_form_one(model: DisjointTailModel, h: Array, n: int, lr,
                    steps: Array, batch_size: int) -> Array:
    """Closed-form losses ``(C, K)`` for one mixture, ``n`` (static) kept features, constant
    step ``lr`` and ``steps`` (any non-negative reals; integers are SGD step counts).
    Traceable and ``vmap``-able over ``h`` and ``lr``; no input checks."""
    inv_b = 1.0 / batch_size
    a_all = model.eigenvalues()
    w2_all = model.signal()
    kept_mask = model.kept(h, n)
    eps = a_all @ jnp.where(kept_mask, 0.0, w2_all)
    idx = model.order(h)[:n]
    a = a_all[:, idx]
    w2 = w2_all[idx]
    lam = h @ a
    q = h @ (a * a)
    g = jnp.sqrt(h)[:, None] * a
    diag = 2.0 * lr * lam - lr * lr * (2.0 * inv_b * q + (1.0 - inv_b) * lam * lam)
    s = jnp.diag(diag) - (lr * lr * inv_b) * (g.T @ g)
    nu, v = jnp.linalg.eigh(s)
    x0 = v.T @ w2
    xu = v.T @ ((lr * lr * inv_b) * (a.T @ (h * (model.sigma2 + eps))))
    t = jnp.asarray(steps, a.dtype)[:, None]
    log_mu = jnp.log1p(-nu)[None, :]
    decay = jnp.exp(t * log_mu)
    zero = nu == 0
    growth = jnp.where(zero, t, -jnp.expm1(t * log_mu) / jnp.where(zero, 1.0, nu)[None, :])
    coef = decay * x0[None, :] + growth * xu[None, :]
    return coef @ (a @ v).T + (eps + model.sigma2)[None, :]


_closed_form_jit = eqx.filter_jit(closed_form_one)


@eqx.filter_jit
def closed_form_batch(model: DisjointTailModel, mixtures: Array, n: int, lr, steps: Array,
                      batch_size: int) -> Array:
    """:func:`closed_form_one` for every row of ``mixtures`` ``(M, K)`` at ``n`` (static) kept
    features: losses ``(M, C, K)``. Compiled once per ``n``; no input checks."""
    return jax.vmap(lambda h: closed_form_one(model, h, n, lr, steps, batch_size))(mixtures)


def closed_form_losses(model: DisjointTailModel, h, n, lr, checkpoints,
                       batch_size: int = 1) -> Array:
    r"""Exact expected losses for a constant step, in closed form (see the module docstring).

    Same arguments and result as :func:`expected_losses` with ``Constant(lr)``; agrees with the
    recursion to rounding (``~1e-12`` relative in float64) and costs the same for any ``D``.
    """
    schedule = Constant(lr)
    call = check_call("closed_form_losses", model, mixtures=h, sizes=n, schedule=schedule,
                      checkpoints=checkpoints, batch_size=batch_size)
    dtype = model.alpha.dtype
    return _closed_form_jit(model, jnp.asarray(call.mixtures, dtype), int(call.sizes),
                            schedule.lr, jnp.asarray(call.checkpoints, dtype), call.batch_size)
