r"""The stable step-size range of the exact second-moment recursion.

On the kept features the recursion of DESIGN §2 is :math:`c \leftarrow M(\gamma) c + \text{forcing}`
with the symmetric matrix

.. math::

    M(\gamma) = I - 2\gamma\Lambda + \gamma^2 Q,\qquad
    Q = \tfrac1B\big(2\,\mathrm{diag}(q) + G^\top G\big) + \big(1 - \tfrac1B\big)\Lambda^2,

where :math:`\Lambda = \mathrm{diag}(\lambda)`, :math:`q_k = \sum_j h_j a_{jk}^2` and
:math:`G_{jk} = \sqrt{h_j}\, a_{jk}`. Because :math:`q_k \ge \lambda_k^2` (Jensen),
:math:`M = (I - \gamma\Lambda)^2 + \tfrac{\gamma^2}{B}(2\,\mathrm{diag}(q) - \Lambda^2 + G^\top G)`
is positive semi-definite, so the recursion is stable iff :math:`M \prec I` on the features with
:math:`\lambda_k > 0` (features with :math:`\lambda_k = 0` are exactly frozen), i.e. iff

.. math::

    0 < \gamma < \gamma_{\max} = \frac{2}{\mu_{\max}\big(\Lambda^{-1/2} Q \Lambda^{-1/2}\big)} .

:math:`\Lambda^{-1/2} Q \Lambda^{-1/2} = \mathrm{diag}(z) + U U^\top` is diagonal plus rank
:math:`K` (:math:`z_k = 2q_k/(B\lambda_k) + (1 - 1/B)\lambda_k`,
:math:`U_{kj} = a_{jk}\sqrt{h_j/(B\lambda_k)}`); its top eigenvalue is the largest :math:`\mu`
at which :math:`I_K - U^\top(\mu - \mathrm{diag}(z))^{-1}U` stops being positive definite, found by
bisection in ``O(P K²)`` per step without forming any ``P × P`` matrix. Within the stable range
every step contracts (the spectral norm of the symmetric PSD :math:`M(\gamma)` is below 1), so a
schedule whose every step lies in the range is stable too.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array, lax

__all__ = ["step_limit", "step_limit_lower"]

_BISECTION_STEPS = 80


def _scaled(a, h, kept, batch_size):
    """``z`` ``(P,)``, ``U`` ``(P, K)`` and the active mask of the module docstring."""
    inv_b = 1.0 / batch_size
    lam = h @ a
    q = h @ (a * a)
    active = kept & (lam > 0)
    lam_safe = jnp.where(active, lam, 1.0)
    z = jnp.where(active, 2.0 * inv_b * q / lam_safe + (1.0 - inv_b) * lam, 0.0)
    u = jnp.where(active[:, None],
                  a.T * jnp.sqrt(h * inv_b)[None, :] / jnp.sqrt(lam_safe)[:, None], 0.0)
    return z, u, active


def step_limit_lower(a: Array, h: Array, kept: Array, batch_size: int) -> Array:
    r"""A cheap lower bound on :func:`step_limit`, ``2 / (max z + μ_max(UᵀU))`` (Weyl's
    inequality; ``UᵀU`` is ``K × K``), within a factor 2 of the exact limit; ``O(P K²)``."""
    z, u, active = _scaled(a, h, kept, batch_size)
    top = jnp.max(z) + jnp.max(jnp.linalg.eigvalsh(u.T @ u))
    return jnp.where(jnp.any(active), 2.0 / (top * (1.0 + 1e-12) + 1e-300), jnp.inf)


def step_limit(a: Array, h: Array, kept: Array,
               batch_size: int) -> Array:
    r"""The stability limit :math:`\gamma_{\max}` for one mixture and one kept set.

    Args:
        a: ``(K, P)`` eigenvalues ``a_ik``.
        h: ``(K,)`` mixture weights.
        kept: ``(P,)`` mask of the kept features.
        batch_size: ``B``.

    Returns:
        Scalar ``2 / μ_hi`` with ``μ_hi`` the upper end of the final bisection bracket on
        :math:`\mu_{\max}`: never above the exact limit, below it only by rounding. ``inf`` when
        no kept feature has :math:`\lambda_k > 0`.
    """
    z, u, active = _scaled(a, h, kept, batch_size)
    z_max = jnp.max(z)
    lo = z_max
    hi = z_max + 2.0 * jnp.sum(u * u) + 1e-300
    eye = jnp.eye(a.shape[0], dtype=a.dtype)

    def positive_definite(mu):
        gap = mu - z
        w = jnp.where(gap > 0, 1.0 / jnp.where(gap > 0, gap, 1.0), 0.0)
        m = eye - u.T @ (w[:, None] * u)
        return (jnp.min(jnp.linalg.eigvalsh(m)) > 0) & (mu > z_max)

    def body(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        ok = positive_definite(mid)
        return jnp.where(ok, lo, mid), jnp.where(ok, mid, hi)

    _, hi = lax.fori_loop(0, _BISECTION_STEPS, body, (lo, hi))
    return jnp.where(jnp.any(active), 2.0 / hi, jnp.inf)


step_limit_batched = jax.vmap(jax.vmap(step_limit, in_axes=(None, None, 0, None)),
                              in_axes=(None, 0, 0, None))
step_limit_lower_batched = jax.vmap(jax.vmap(step_limit_lower, in_axes=(None, None, 0, None)),
                                    in_axes=(None, 0, 0, None))
