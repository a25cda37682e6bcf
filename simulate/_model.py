r"""The multi-domain power-law model: a shared head, domain tails, an overlap knob.

Every feature lives in one orthonormal eigenbasis and has a *rank* :math:`l \ge 1`. Domain
:math:`i` gives each feature it uses the eigenvalue :math:`a_{ik} = l_k^{-\alpha_i}` and every other
feature :math:`a_{ik} = 0`; the target is :math:`y = \langle w^*, x\rangle + \xi`,
:math:`\xi \sim \mathcal N(0, \sigma_i^2)`, with the source condition
:math:`(w^*_k)^2 = l_k^{-\beta}`.

Layout of the features (flattened index ``k = 0 .. P-1``, ordered by rank, then by domain;
counted in :mod:`simulate._layout`):

* **Shared head**: ranks ``l = 1 .. S`` are one feature each, used by every domain.
* **Tails**: domain ``i`` has tail ranks ``t = 1 .. T_i`` (feature rank ``l = S + t``).
* **Overlap** ``ρ ∈ [0, 1]``: tail rank ``t`` is *shared* iff ``floor(ρ t) > floor(ρ (t - 1))``,
  so exactly ``floor(ρ t)`` of the first ``t`` tail ranks are shared, evenly spaced at every
  scale. A shared rank is a single feature used by every domain whose tail reaches it
  (``T_i >= t``); an unshared rank is a separate feature for each domain that reaches it.
  ``ρ = 0`` is the pure disjoint-tail model; ``ρ = 1`` makes every tail feature common (a head of
  ``S + max T_i``). For every domain a fraction ``floor(ρ T_i) / T_i`` of its tail is shared.

The feature count is ``P = S + n_shared + Σ_i (T_i - floor(ρ T_i))`` with
``n_shared = floor(ρ max_i T_i)``.

Training on mixture ``h`` (a point on the simplex) draws each sample from domain ``j`` with
probability ``h_j``: the training covariance is diagonal with
:math:`\lambda_k(h) = \sum_j h_j a_{jk}`. A learner of capacity ``N`` keeps the ``N`` features
with the highest score of the model's keep rule (an :class:`~simulate.AbstractKeepRule`, see
:mod:`simulate._keep`; ties broken by the lower flattened index, i.e. lower rank, then lower
domain). The built-in :class:`~simulate.TopN` scores

* ``keep="eigen"``: :math:`\lambda_k(h)` (top eigen-directions of ``H(h)``);
* ``keep="signal"``: :math:`\lambda_k(h)\,(w^*_k)^2` — the features whose loss of signal costs
  the mixture most; this is the inner problem of the paper's law exactly.

**Dispersed rates** (optional ``rate_factor`` ``g``, ``(P,)``, positive): feature ``k``'s
eigenvalue is multiplied by ``g_k`` in every domain that uses it and its signal divided by it,
:math:`a_{ik} = g_k l_k^{-\alpha_i}`, :math:`(w^*_k)^2 = l_k^{-\beta} / g_k`, so the loss it
carries, :math:`a_{ik} (w^*_k)^2`, and the ``"signal"`` keep rule's order are unchanged and only
how fast SGD learns it moves: the rates of neighbouring ranks scatter around the power law
(``docs/theory.md`` §8). ``None`` is the plain model (``g = 1``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from ._checks import check_count, is_concrete
from ._keep import AbstractKeepRule, as_keep_rule, feature_order, feature_positions
from ._layout import check_phase, equal_tail_for_budget, feature_layout

__all__ = ["DisjointTailModel"]


class DisjointTailModel(eqx.Module):
    r"""K domains with power-law spectra, a shared head and (partly overlapping) tails.

    See the module docstring for the layout and the keep rules. Eigenvalues are
    :math:`a_{ik} = l_k^{-\alpha_i}` on the features domain ``i`` uses, signal
    :math:`(w^*_k)^2 = l_k^{-\beta}`, label noise :math:`\sigma_i^2`.

    Args:
        alpha: ``(K,)`` spectral exponents, each ``> 1``.
        beta: scalar source exponent ``β`` (``0`` is the plain case).
        sigma2: ``(K,)`` label-noise variances ``σ_i² >= 0`` (a scalar is broadcast).
        head: ``S >= 0``, the number of shared head features.
        tail: tail length of every domain (an int) or one per domain (a sequence of ``K``
            ints). Exactly one of ``tail`` and ``n_features`` is given.
        n_features: a total feature budget ``P``: every domain gets the same tail length
            ``T``, the largest for which the feature count is ``<= n_features``.
        rho: the overlap ``ρ ∈ [0, 1]``.
        overlap_phase: ``φ ∈ [0, 1)``, where the shared tail ranks sit in their even spacing:
            ``⌊ρ t + φ⌋`` of the first ``t`` tail ranks are shared (:mod:`simulate._layout`;
            ``0``: a domain's first tail rank is its own).
        keep: the keep rule: an :class:`~simulate.AbstractKeepRule`, or ``"signal"`` (top ``N`` of
            ``λ_k(h) (w*_k)²``) or ``"eigen"`` (top ``N`` of ``λ_k(h)``), short for
            ``TopN("signal")`` / ``TopN("eigen")``.
        names: the ``K`` domain names (default ``d0, d1, ...``).
        rate_factor: ``None`` or ``(P,)`` positive multipliers ``g_k`` of each feature's
            eigenvalues, its signal divided by the same (dispersed rates; module docstring).

    Attributes:
        rank: ``(P,)`` int, the rank ``l`` of every feature.
        member: ``(K, P)`` bool, which domains use which feature.
        keep: the :class:`~simulate.AbstractKeepRule`.

    Example:
        >>> import jax.numpy as jnp
        >>> m = DisjointTailModel(jnp.array([1.5, 2.0]), beta=0.0, sigma2=0.1, head=2, tail=3)
        >>> m.n_features, m.rank.tolist()
        (8, [1, 2, 3, 3, 4, 4, 5, 5])
    """

    alpha: Array
    beta: Array
    sigma2: Array
    rank: Array
    member: Array
    head: int = eqx.field(static=True)
    tails: tuple[int, ...] = eqx.field(static=True)
    rho: float = eqx.field(static=True)
    overlap_phase: float = eqx.field(static=True)
    keep: AbstractKeepRule
    names: tuple[str, ...] = eqx.field(static=True)
    rate_factor: Array | None

    def __init__(self, alpha, beta=0.0, sigma2=0.0, *, head: int, tail=None,
                 n_features: int | None = None, rho: float = 0.0, overlap_phase: float = 0.0,
                 keep: AbstractKeepRule | str = "signal",
                 names: Sequence[str] | None = None, rate_factor=None):
        dtype = jnp.result_type(float)
        alpha = jnp.asarray(alpha, dtype=dtype)
        if alpha.ndim != 1 or alpha.shape[0] < 1:
            raise ValueError(f"alpha must be a 1-d array of K >= 1 exponents, got shape "
                             f"{alpha.shape}")
        k = alpha.shape[0]
        beta = jnp.asarray(beta, dtype=dtype)
        if beta.ndim != 0:
            raise ValueError(f"beta must be a scalar, got shape {beta.shape}")
        sigma2 = jnp.asarray(sigma2, dtype=dtype)
        if sigma2.shape not in ((), (k,)):
            raise ValueError(f"sigma2 must be a scalar or K={k} variances, got shape "
                             f"{sigma2.shape}")
        sigma2 = jnp.broadcast_to(sigma2, (k,))
        if isinstance(head, bool | np.bool_) or not isinstance(head, int | np.integer) \
                or head < 0:
            raise ValueError(f"head must be a non-negative int, got {head!r}")
        if not (0.0 <= float(rho) <= 1.0):
            raise ValueError(f"rho must lie in [0, 1], got {rho!r}")
        overlap_phase = check_phase(overlap_phase)
        keep = as_keep_rule(keep)
        if (tail is None) == (n_features is None):
            raise ValueError("give exactly one of tail (per-domain lengths) and n_features "
                             "(a total budget)")
        if tail is not None:
            tails = tuple(check_count(t, "tail") for t in (
                [tail] * k if np.ndim(tail) == 0 else list(np.asarray(tail, dtype=object))))
            if len(tails) != k:
                raise ValueError(f"tail has {len(tails)} lengths but alpha has K={k} domains")
        else:
            tails = (equal_tail_for_budget(check_count(n_features, "n_features"), head, k,
                                           float(rho), overlap_phase),) * k
        if any(t < 0 for t in tails):
            raise ValueError(f"tail lengths must be non-negative, got {tails}")
        if head + max(tails) < 1:
            raise ValueError("the model has no features (head = 0 and every tail is empty)")
        if names is None:
            names = tuple(f"d{i}" for i in range(k))
        names = tuple(str(s) for s in names)
        if len(names) != k or len(set(names)) != k:
            raise ValueError(f"names must be {k} distinct strings, got {names}")
        if is_concrete(alpha, beta, sigma2):
            a_np = np.asarray(alpha)
            if not np.all(np.isfinite(a_np)) or np.any(a_np <= 1.0):
                bad = int(np.argmax(~np.isfinite(a_np) | (a_np <= 1.0)))
                raise ValueError(f"alpha[{bad}] = {float(a_np[bad])!r}: every spectral exponent "
                                 "must be > 1 (the spectrum l^(-alpha) must be summable)")
            if not np.isfinite(float(beta)):
                raise ValueError(f"beta must be finite, got {float(beta)!r}")
            s_np = np.asarray(sigma2)
            if not np.all(np.isfinite(s_np)) or np.any(s_np < 0):
                bad = int(np.argmax(~np.isfinite(s_np) | (s_np < 0)))
                raise ValueError(f"sigma2[{bad}] = {float(s_np[bad])!r}: label-noise variances "
                                 "must be finite and >= 0")
        else:
            alpha = eqx.error_if(alpha, alpha <= 1.0, "every spectral exponent alpha must be > 1")
            sigma2 = eqx.error_if(sigma2, sigma2 < 0, "label-noise variances must be >= 0")
        rank, member = feature_layout(head, tails, float(rho), overlap_phase)
        if rate_factor is not None:
            rate_factor = jnp.asarray(rate_factor, dtype=dtype)
            if rate_factor.shape != rank.shape:
                raise ValueError(f"rate_factor must hold one multiplier per feature, shape "
                                 f"{rank.shape}, got {rate_factor.shape}")
            if is_concrete(rate_factor):
                g_np = np.asarray(rate_factor)
                if not np.all(np.isfinite(g_np) & (g_np > 0)):
                    bad = int(np.argmax(~(np.isfinite(g_np) & (g_np > 0))))
                    raise ValueError(f"rate_factor[{bad}] = {float(g_np[bad])!r}: every rate "
                                     "factor must be finite and > 0")
            else:
                rate_factor = eqx.error_if(rate_factor, rate_factor <= 0,
                                           "every rate factor must be > 0")
        self.rate_factor = rate_factor
        self.alpha = alpha
        self.beta = beta
        self.sigma2 = sigma2
        # numpy arrays (feature_layout): device_put moves them without the compiled operation
        # that jnp.asarray stages for each new shape
        self.rank = jax.device_put(rank)
        self.member = jax.device_put(member)
        self.head = int(head)
        self.tails = tails
        self.rho = float(rho)
        self.overlap_phase = overlap_phase
        self.keep = keep
        self.names = names

    # ------------------------------------------------------------------ structure
    @property
    def n_domains(self) -> int:
        """``K``."""
        return len(self.tails)

    @property
    def n_features(self) -> int:
        """``P``, the total number of features."""
        return int(self.rank.shape[0])

    def eigenvalues(self) -> Array:
        """``a_ik = g_k l_k^(-α_i)`` where domain ``i`` uses feature ``k``, else 0 (``g = 1``
        unless ``rate_factor``); shape ``(K, P)``."""
        log_l = jnp.log(self.rank.astype(self.alpha.dtype))
        a = jnp.exp(-self.alpha[:, None] * log_l[None, :])
        if self.rate_factor is not None:
            a = a * self.rate_factor[None, :]
        return jnp.where(self.member, a, 0.0)

    def signal(self) -> Array:
        """``(w*_k)² = l_k^(-β) / g_k``, shape ``(P,)``."""
        w2 = jnp.exp(-self.beta * jnp.log(self.rank.astype(self.alpha.dtype)))
        return w2 if self.rate_factor is None else w2 / self.rate_factor

    def initial_losses(self) -> Array:
        """Loss of the zero predictor: ``σ_i² + Σ_k a_ik (w*_k)²``, shape ``(K,)``."""
        return self.sigma2 + self.eigenvalues() @ self.signal()

    def settings(self) -> dict:
        """The generating settings as plain JSON-friendly values (``alpha``, ``beta``,
        ``sigma2``, ``head``, ``tails``, ``rho``, ``keep``, ``names``, ``n_features``, and
        ``rate_factor`` and ``overlap_phase`` when set)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in ("rank", "member")
               and not (f.name == "rate_factor" and self.rate_factor is None)
               and not (f.name == "overlap_phase" and self.overlap_phase == 0.0)}
        out = {k: (np.asarray(v).tolist() if isinstance(v, jax.Array) else v)
               for k, v in out.items()}
        out["keep"] = self.keep.describe()
        out["tails"] = list(self.tails)
        out["names"] = list(self.names)
        out["n_features"] = self.n_features
        return out

    # ------------------------------------------------------------------ keep rule
    def scores(self, h: Array) -> Array:
        """The keep rule's score of every feature under mixture ``h``; shape ``(P,)``."""
        return self.keep.scores(h, self.eigenvalues(), self.signal())

    def order(self, h: Array) -> Array:
        """Feature indices from the highest score down (stable: ties by lower index)."""
        return feature_order(self.keep, h, self.eigenvalues(), self.signal())

    def kept(self, h: Array, n: Array) -> Array:
        """``(P,)`` mask of the ``N`` features a learner of capacity ``N`` keeps under ``h``.

        ``n`` may be traced (one compiled program serves every model size). A learner with
        ``N >= P`` keeps every feature: that case skips the ``O(P log P)`` sort (a Python branch
        for a concrete ``n``; a ``lax.cond`` for a traced scalar, which stays a branch under
        ``vmap`` over ``h`` as long as ``n`` is not batched).
        """
        p = self.n_features

        def top_n():
            return feature_positions(self.keep, h, self.eigenvalues(), self.signal()) < n

        if jnp.ndim(n) != 0:
            return top_n()
        if is_concrete(n):  # eager: a lax.cond here would be traced and compiled every call
            return jnp.ones(p, bool) if int(n) >= p else top_n()
        return jax.lax.cond(n >= p, lambda: jnp.ones(p, bool), top_n)

    def kept_per_domain(self, h: Array, n: Array) -> Array:
        """Number of kept features each domain uses (head included), shape ``(K,)``.

        With ``ρ = 0`` this is the simulator's capacity allocation ``x_i`` of the law.
        """
        return jnp.sum(self.member & self.kept(h, n)[None, :], axis=1)

