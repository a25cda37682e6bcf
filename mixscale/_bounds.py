"""Parameter ranges in a fit: each law's bounds on its raw fields as arrays the optimisers keep
to, and how many parameters end on a bound.

A law declares ``{field: (lo, hi)}`` (:meth:`mixscale.laws.AbstractLaw.parameter_bounds`); every
entry of a named field gets that range, every other parameter ``(−inf, inf)``. A range with
``lo == hi`` pins the field at that value (a parameter the data cannot identify, e.g. the
capacity law's ``θ`` on rows of one model size); a pinned entry counts as on its bound. The
optimisers project onto the box: Levenberg–Marquardt clips each trial point (a step that leaves
the box is shortened coordinate by coordinate and accepted only if it lowers the objective, so
at a bound the remaining coordinates still descend), L-BFGS clips each iterate.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["bound_trees", "count_at_bounds"]


def bound_trees(params, bounds: Mapping[str, tuple[float, float]]):
    """``(lower, upper)``: pytrees shaped like ``params`` (one restart's parameter half of a law)
    holding each entry's range. Raises ``ValueError`` for a field that is not a parameter of the
    law or an empty range (``lo > hi``; ``lo == hi`` pins the entry)."""
    names = set()

    def fill(path, leaf):
        name = getattr(path[0], "name", None) if path else None
        names.add(name)
        lo, hi = bounds.get(name, (-np.inf, np.inf))
        if not lo <= hi:
            raise ValueError(f"empty range {(lo, hi)} for {name}")
        return jnp.full(jnp.shape(leaf), lo), jnp.full(jnp.shape(leaf), hi)

    pairs = jax.tree_util.tree_map_with_path(fill, params)
    unknown = sorted(set(bounds) - names)
    if unknown:
        raise ValueError(f"bounds name {unknown}, which are not fitted fields of the law")
    is_pair = lambda x: isinstance(x, tuple)  # noqa: E731
    lower = jax.tree_util.tree_map(lambda p: p[0], pairs, is_leaf=is_pair)
    upper = jax.tree_util.tree_map(lambda p: p[1], pairs, is_leaf=is_pair)
    return lower, upper


def count_at_bounds(params, lower, upper, rtol: float = 1e-9) -> int:
    """How many entries of ``params`` lie on their bound (within ``rtol`` relative)."""
    count = 0
    for p, lo, hi in zip(*(jax.tree_util.tree_leaves(t) for t in (params, lower, upper)),
                         strict=True):
        p, lo, hi = (np.asarray(x, dtype=np.float64) for x in (p, lo, hi))
        on_lo = np.isfinite(lo) & (np.abs(p - lo) <= rtol * np.maximum(1.0, np.abs(lo)))
        on_hi = np.isfinite(hi) & (np.abs(p - hi) <= rtol * np.maximum(1.0, np.abs(hi)))
        count += int(np.sum(on_lo | on_hi))
    return count
