r"""The feature layout of the multi-domain model: shared head, domain tails, overlap ``ρ``.

Features are indexed ``k = 0 .. P-1`` in order of rank, then domain. Ranks ``l = 1 .. S`` are
the shared head (one feature each, used by every domain). Domain ``i`` has tail ranks
``t = 1 .. T_i`` (feature rank ``l = S + t``). Tail rank ``t`` is *shared* iff
``floor(ρ t) > floor(ρ (t − 1))``, so exactly

.. math::

    n_\text{shared}(\rho, t) = \lfloor \rho\, t \rfloor

of the first ``t`` tail ranks are shared, evenly spaced at every scale. A shared rank is one
feature used by every domain whose tail reaches it; an unshared rank is a separate feature per
domain that reaches it. Hence the feature count

.. math::

    P = S + n_\text{shared}(\rho, \max_i T_i) + \sum_i \big(T_i - n_\text{shared}(\rho, T_i)\big).

:func:`shared_count` is the one place the overlap is counted: the layout, the feature count and
the tail length for a feature budget all derive from it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["equal_tail_for_budget", "feature_count", "feature_layout", "shared_count"]


def shared_count(rho: float, t) -> np.ndarray:
    """``floor(ρ t)``: how many of the first ``t`` tail ranks are shared (int64, shape of ``t``).

    The ``1e-9 ρ`` nudge keeps ``ρ t`` from landing just below an integer it equals exactly
    (``ρ = 1/3``, ``t = 3``); it is far below the ``1/t`` spacing of any realistic ``ρ t``.
    """
    return np.floor(rho * np.asarray(t) + 1e-9 * rho).astype(np.int64)


def feature_count(head: int, tails: Sequence[int], rho: float) -> int:
    """``P``, the number of features of the layout (see the module docstring)."""
    tails = np.asarray(tails, dtype=np.int64)
    if tails.size == 0:
        return int(head)
    return int(head + shared_count(rho, tails.max()) + np.sum(tails - shared_count(rho, tails)))


def feature_layout(head: int, tails: Sequence[int], rho: float) -> tuple[np.ndarray, np.ndarray]:
    """The static feature layout: ``(rank, member)``.

    Args:
        head: ``S``, the number of shared head features.
        tails: ``(T_1, ..., T_K)``, the tail length of every domain.
        rho: the overlap ``ρ ∈ [0, 1]``.

    Returns:
        ``rank``: ``(P,)`` int64, the rank ``l >= 1`` of every feature.
        ``member``: ``(K, P)`` bool, ``member[i, k]`` iff domain ``i`` uses feature ``k``.
    """
    k = len(tails)
    tails_arr = np.asarray(tails, dtype=np.int64)
    t = np.arange(1, (int(tails_arr.max()) if k else 0) + 1)
    is_shared = shared_count(rho, t) > shared_count(rho, t - 1)
    ranks: list[int] = list(range(1, head + 1))
    members: list[np.ndarray] = [np.ones(k, dtype=bool)] * head
    for tt, shared in zip(t.tolist(), is_shared.tolist(), strict=True):
        reach = tails_arr >= tt
        # a shared rank is one feature of every domain reaching it; otherwise one per domain
        for owners in ([reach] if shared else [np.arange(k) == i for i in np.flatnonzero(reach)]):
            ranks.append(head + tt)
            members.append(owners)
    rank = np.asarray(ranks, dtype=np.int64)
    member = np.stack(members, axis=1) if members else np.zeros((k, 0), dtype=bool)
    assert rank.shape[0] == feature_count(head, tails, rho)  # the count and the layout agree
    return rank, member


def equal_tail_for_budget(n_features: int, head: int, k: int, rho: float) -> int:
    """The largest common tail length ``T`` of ``K`` domains with ``P <= n_features``.

    Raises:
        ValueError: when ``n_features`` cannot hold the head and a tail.
    """
    if n_features < max(head, 1):
        raise ValueError(f"n_features={n_features} leaves no room for the head of {head} "
                         "features and a tail")
    lo, hi = 0, max(n_features, 1)  # P grows with T, so bisect on it
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if feature_count(head, (mid,) * k, rho) <= n_features:
            lo = mid
        else:
            hi = mid - 1
    return lo
