r"""Exact expected losses of one-pass SGD: the diagonal second-moment recursion.

A learner keeps the features in ``kept`` and runs SGD with mini-batches of ``B`` fresh samples,
each drawn from domain ``j`` with probability ``h_j``, starting from zero. With Gaussian features
the diagonal :math:`c_k = \mathbb E[(v_k - w^*_k)^2]` of the error covariance closes on itself
(DESIGN §2). With :math:`\lambda_k = \sum_j h_j a_{jk}`, :math:`q_k = \sum_j h_j a_{jk}^2` and
:math:`r_j = \sum_m a_{jm} c_m` summed over *all* features (an unkept feature keeps its error
:math:`c_k = (w^*_k)^2` for ever, so :math:`r_j` includes the approximation error
:math:`\varepsilon_j`), one step with step size :math:`\gamma_t` is, on kept features,

.. math::

    c_k \leftarrow c_k\Big(1 - 2\gamma_t\lambda_k
        + \gamma_t^2\big[\tfrac{2 q_k}{B} + (1 - \tfrac1B)\lambda_k^2\big]\Big)
        + \frac{\gamma_t^2}{B}\sum_j h_j a_{jk}\,(r_j + \sigma_j^2),

and the test loss of domain ``i`` is :math:`L_i = \sigma_i^2 + r_i`, with
:math:`c_k(0) = (w^*_k)^2`. This is exact in expectation (not an approximation): the ``2 q_k``
is the Gaussian fourth moment (``κ₄ − 1`` for other features), the ``(1 − 1/B) λ_k²`` the
mean-gradient part of a mini-batch. Cost: ``O(K P)`` per step, one ``lax.scan`` per piece of a
piecewise-constant schedule, losses at every checkpoint from the same pass.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from ._checks import batch_argument
from ._model import DisjointTailModel
from ._schedule import AbstractSchedule, run_schedule
from ._stability import step_limit
from ._validate import check_call

__all__ = ["expected_losses", "recursion_losses", "stable_step_limit"]


def recursion_losses(a: Array, w2: Array, sigma2: Array,
                     h: Array, kept: Array, schedule: AbstractSchedule,
                     checkpoints: tuple[int, ...], batch_size: int) -> Array:
    """Expected losses ``(C, K)`` at ``checkpoints`` (numbers of SGD steps) for one mixture.

    Traceable and ``vmap``-able over ``h`` and ``kept`` (with ``a``, ``w2``, ``sigma2`` shared,
    the per-step work reads about three numbers per feature: ``c``, its multiplier, and the mask).
    No input checks: the public verbs check and then call this.
    """
    inv_b = 1.0 / batch_size
    lam = h @ a
    qd = 2.0 * inv_b * (h @ (a * a)) + (1.0 - inv_b) * lam * lam
    c = w2

    def setup(lr):
        return 1.0 - 2.0 * lr * lam + lr * lr * qd  # the diagonal multiplier of this piece

    def step(carry, t, lr, d):
        c, r = carry
        s = (lr * lr * inv_b) * h * (r + sigma2)
        # Σ_j s_j a_jk as K multiply-adds (K is small): XLA fuses them with the update into one
        # pass over the features, where a (K, P) matmul would write and re-read a temporary.
        forcing = s[0] * a[0]
        for j in range(1, a.shape[0]):
            forcing = forcing + s[j] * a[j]
        c = jnp.where(kept, d * c + forcing, c)
        return c, a @ c

    at = run_schedule(schedule, checkpoints, (c, a @ c), setup, step, lambda carry: carry[1])
    return jnp.stack([at[t] for t in checkpoints]) + sigma2[None, :]


def stable_step_limit(model: DisjointTailModel, h, n, batch_size: int = 1) -> float:
    r"""The largest stable step size :math:`\gamma_{\max}`: SGD on mixture ``h`` with ``n`` kept
    features and batch ``batch_size`` has bounded expected loss iff ``0 < γ_t < γ_max`` for every
    step (see :mod:`simulate._stability`).
    """
    call = check_call("stable_step_limit", model, mixtures=h, sizes=n, batch_size=batch_size)
    a = model.eigenvalues()
    hj = jnp.asarray(call.mixtures, a.dtype)
    return float(jax.jit(step_limit)(a, hj, model.kept(hj, int(call.sizes)),
                                     batch_argument(call.batch_size, a.dtype)))


@eqx.filter_jit
def _expected_losses_jit(model, h, n, schedule, checkpoints, batch_size):
    kept = model.kept(h, n)
    return recursion_losses(model.eigenvalues(), model.signal(), model.sigma2, h, kept, schedule,
                            checkpoints, batch_size)


def expected_losses(model: DisjointTailModel, h, n, schedule: AbstractSchedule, checkpoints,
                    batch_size: int = 1) -> Array:
    r"""Exact expected test loss of every domain after one-pass SGD, at every checkpoint.

    Args:
        model: the :class:`DisjointTailModel`.
        h: ``(K,)`` training mixture (on the simplex).
        n: ``N``, the number of kept features (``1 .. P``).
        schedule: the step sizes, an :class:`AbstractSchedule` (e.g. :class:`Constant`,
            :class:`StepDecay`).
        checkpoints: ``C`` step counts ``D >= 0`` (numbers of SGD updates; each update uses
            ``batch_size`` fresh samples).
        batch_size: ``B``.

    Returns:
        ``(C, K)`` losses ``L_i(h, N, D)``; ``D = 0`` gives ``σ_i² + Σ_k a_ik (w*_k)²``.

    Raises:
        TypeError: ``model`` or ``schedule`` of the wrong type.
        ValueError: bad mixture, size, checkpoints or batch size, or a step outside the stable
            range (the message states the range).
    """
    call = check_call("expected_losses", model, mixtures=h, sizes=n, schedule=schedule,
                      checkpoints=checkpoints, batch_size=batch_size)
    dtype = model.alpha.dtype
    return _expected_losses_jit(model, jnp.asarray(call.mixtures, dtype),
                                jnp.asarray(call.sizes), schedule, call.checkpoints,
                                batch_argument(call.batch_size, dtype))
