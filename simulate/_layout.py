r"""The feature layout of the multi-domain model: shared head, domain tails, overlap ``ρ``.

Features are indexed ``k = 0 .. P-1`` in order of rank, then domain. Ranks ``l = 1 .. S`` are
the shared head (one feature each, used by every domain). Domain ``i`` has tail ranks
``t = 1 .. T_i`` (feature rank ``l = S + t``). Tail rank ``t`` is *shared* iff
``floor(ρ t) > floor(ρ (t − 1))``, so exactly

.. math::

    n_\text{shared}(\rho, t) = \lfloor \rho\, t \rfloor

of the first ``t`` tail ranks are shared, evenly spaced at every scale. The *phase*
``φ ∈ [0, 1)`` shifts where in that spacing the shared ranks sit:
:math:`n_\text{shared} = \lfloor \rho t + \varphi \rfloor`. At ``φ = 0`` (the default) the first
tail rank is always an own rank (``⌊ρ⌋ = 0`` for ``ρ < 1``); at ``φ = 1 − ρ`` it is shared. Over
``φ`` uniform in ``[0, 1)`` the expected count is ``ρ t`` exactly, the even spread a continuum
of ranks assumes (a law's shared fraction ``ρ`` at every rank); a single ``φ`` departs from it by
less than one rank, which matters only at the top ranks, where each rank carries the most loss.
A shared rank is one
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

__all__ = ["check_phase", "equal_tail_for_budget", "feature_count", "feature_layout",
           "shared_count"]


def check_phase(phase: float) -> float:
    """``phase`` as a float in ``[0, 1)``, else ``ValueError``."""
    phase = float(phase)
    if not 0.0 <= phase < 1.0:
        raise ValueError(f"the overlap phase must lie in [0, 1), got {phase!r}")
    return phase


def shared_count(rho: float, t, phase: float = 0.0) -> np.ndarray:
    """``floor(ρ t + φ)``: how many of the first ``t`` tail ranks are shared (int64, shape of
    ``t``); ``φ = phase ∈ [0, 1)``, so that none of the first 0 ranks is.

    The ``1e-9 ρ`` nudge keeps ``ρ t + φ`` from landing just below an integer it equals exactly
    (``ρ = 1/3``, ``t = 3``); it is far below the ``1/t`` spacing of any realistic ``ρ t``.
    """
    return np.floor(rho * np.asarray(t) + check_phase(phase) + 1e-9 * rho).astype(np.int64)


def feature_count(head: int, tails: Sequence[int], rho: float, phase: float = 0.0) -> int:
    """``P``, the number of features of the layout (see the module docstring)."""
    tails = np.asarray(tails, dtype=np.int64)
    if tails.size == 0:
        return int(head)
    return int(head + shared_count(rho, tails.max(), phase)
               + np.sum(tails - shared_count(rho, tails, phase)))


def feature_layout(head: int, tails: Sequence[int], rho: float,
                   phase: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The static feature layout: ``(rank, member)``.

    Args:
        head: ``S``, the number of shared head features.
        tails: ``(T_1, ..., T_K)``, the tail length of every domain.
        rho: the overlap ``ρ ∈ [0, 1]``.
        phase: ``φ ∈ [0, 1)``, where the shared ranks sit in their spacing (module docstring).

    Returns:
        ``rank``: ``(P,)`` int64, the rank ``l >= 1`` of every feature.
        ``member``: ``(K, P)`` bool, ``member[i, k]`` iff domain ``i`` uses feature ``k``.
    """
    k = len(tails)
    tails_arr = np.asarray(tails, dtype=np.int64)
    t = np.arange(1, (int(tails_arr.max()) if k else 0) + 1)
    is_shared = shared_count(rho, t, phase) > shared_count(rho, t - 1, phase)
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
    # the count and the layout agree
    assert rank.shape[0] == feature_count(head, tails, rho, phase)
    return rank, member


def equal_tail_for_budget(n_features: int, head: int, k: int, rho: float,
                          phase: float = 0.0) -> int:
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
        if feature_count(head, (mid,) * k, rho, phase) <= n_features:
            lo = mid
        else:
            hi = mid - 1
    return lo
