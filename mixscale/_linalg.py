r"""Small dense solves for laws, in plain XLA operations, and the check that keeps LAPACK out of a
law's prediction.

Why a law may not call LAPACK here. jaxlib's CPU kernels for batched LU, Cholesky, QR,
eigen- and singular-value decompositions (jaxlib 0.10) split their batch over XLA's intra-op
thread pool and then *wait inside that pool* for the pieces. When a compiled program holds two
such calls that do not depend on each other, XLA may start both at once; on a machine whose pool
has as many threads as there are such calls, every thread then waits for pieces that need a free
thread, for ever: the fit stops at 0 % CPU without an error. Observed on the 2-core machine, with
``gdb``: both pool threads in ``LuDecomposition::Kernel → ParallelBatchMap →
BlockingCounter::Wait``, the main thread in ``BlockUntilReady`` — once when the geodesic step
solved its acceleration with a second LU (fixed in :mod:`mixscale._blocks`: one factorisation per
step), and once with the spectral law's ``jnp.linalg.solve``, whose prediction at the current
point is evaluated (for the acceleration) independently of the step's own factorisation. A law
cannot know which other factorisations share its program, so the fitter cannot make a law's
LAPACK calls safe; it refuses them instead (:func:`check_law_primitives`, called by
:func:`mixscale.fit`) and laws solve their systems with :func:`solve_small`, which XLA compiles to
ordinary arithmetic that never waits.

:func:`solve_small` is Gauss–Jordan elimination with partial pivoting, unrolled over the static
size ``K``: ``K`` steps of ``O(K (K + R))`` work, exact to rounding for the well-conditioned
systems of a law (``K`` up to a few tens). Its derivative is the implicit one,
:math:`dx = a^{-1}(db - da\, x)`, with :math:`a^{-1}` from the same elimination (a custom JVP:
forward and reverse mode, and higher orders, since the rule is plain JAX).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import jax
import jax.numpy as jnp
from jax.extend import core as jex_core

__all__ = ["LAPACK_PRIMITIVES", "check_law_primitives", "solve_small"]

#: Names of the ``jax.lax.linalg`` primitives that XLA's CPU backend runs as LAPACK kernels.
LAPACK_PRIMITIVES = frozenset({
    "lu", "cholesky", "cholesky_update", "eig", "eigh", "hessenberg", "householder_product",
    "ormqr", "qr", "geqrf", "geqp3", "schur", "svd", "tridiagonal", "tridiagonal_solve",
})


def solve_small(a: jax.Array, b: jax.Array, *, pivoting: bool = True) -> jax.Array:
    r"""``x`` with ``a x = b``, for a small square ``a`` ``(K, K)`` and ``b`` ``(K,)`` or
    ``(K, R)``, without LAPACK (see the module docstring for why laws need that).

    Gauss–Jordan elimination on ``[a | b]``, unrolled over ``K``; batch with ``jax.vmap``. With
    ``pivoting`` (the default) each step first swaps in the row with the largest entry of the
    column (partial pivoting: safe for any nonsingular ``a``). ``pivoting=False`` skips the
    swaps (less work in every elimination), and is safe only where
    elimination without pivoting is: e.g. a nonsingular M-matrix (``I − B`` with ``B ≥ 0``
    entrywise and spectral radius ``ρ(B) < 1``) or a diagonally dominant ``a``. A singular ``a``
    gives non-finite entries (no error: it runs compiled).

    Example:
        >>> import jax.numpy as jnp
        >>> x = solve_small(jnp.array([[0.0, 2.0], [1.0, 1.0]]), jnp.array([2.0, 3.0]))
        >>> [round(float(v), 12) for v in x]      # needs the row swap: a[0, 0] = 0
        [2.0, 1.0]
    """
    a = jnp.asarray(a)
    b = jnp.asarray(b)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"solve_small needs one square matrix, got shape {a.shape}")
    if b.ndim not in (1, 2) or b.shape[0] != a.shape[0]:
        raise ValueError(f"right-hand side of shape {b.shape} does not match a {a.shape} matrix")
    vector = b.ndim == 1
    dtype = jnp.result_type(a, b)
    x = _solve(a.astype(dtype), (b[:, None] if vector else b).astype(dtype), bool(pivoting))
    return x[:, 0] if vector else x


def _gauss_jordan(a: jax.Array, b: jax.Array, pivoting: bool) -> jax.Array:
    """``a⁻¹ b`` for ``a`` ``(K, K)`` and ``b`` ``(K, R)`` by Gauss–Jordan elimination on
    ``[a | b]``, unrolled over ``K`` (with partial pivoting if ``pivoting``)."""
    k = a.shape[0]
    aug = jnp.concatenate([a, b], axis=1)
    rows = jnp.arange(k)
    for j in range(k):
        if pivoting:
            pivot = j + jnp.argmax(jnp.abs(aug[j:, j]))
            aug = jnp.where(rows[:, None] == j, aug[pivot][None, :],
                            jnp.where(rows[:, None] == pivot, aug[j][None, :], aug))
        row = aug[j] / aug[j, j]
        factor = aug[:, j].at[j].set(0.0)
        aug = (aug - factor[:, None] * row[None, :]).at[j].set(row)
    return aug[:, k:]


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _solve(a: jax.Array, b: jax.Array, pivoting: bool) -> jax.Array:
    """:func:`_gauss_jordan` with the implicit derivative :math:`dx = a^{-1}(db - da x)`."""
    return _gauss_jordan(a, b, pivoting)


@_solve.defjvp
def _solve_jvp(pivoting, primals, tangents):
    # One elimination on [a | b | I] gives x and a⁻¹; the tangent is then two matrix products,
    # linear in (da, db) with a⁻¹ and x fixed, so reverse mode transposes it into products by
    # a⁻ᵀ instead of running the unrolled elimination backwards once per cotangent (which cost
    # two thirds of the spectral law's Jacobian at K = 17).
    a, b = primals
    da, db = tangents
    r = b.shape[1]
    sol = _gauss_jordan(a, jnp.concatenate([b, jnp.eye(a.shape[0], dtype=b.dtype)], axis=1),
                        pivoting)
    x, inv = sol[:, :r], sol[:, r:]
    return x, inv @ (db - da @ x)


def _primitives(jaxpr) -> Iterator[str]:
    """Names of every primitive in ``jaxpr`` and in the jaxprs nested in its equations."""
    for eqn in jaxpr.eqns:
        yield eqn.primitive.name
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(sub, jex_core.ClosedJaxpr):
                    yield from _primitives(sub.jaxpr)
                elif isinstance(sub, jex_core.Jaxpr):
                    yield from _primitives(sub)


def check_law_primitives(law, h: jax.Array, N: jax.Array, D: jax.Array) -> None:
    """Raise ``TypeError`` if ``law.predict(h, N, D)`` (one run) reaches a LAPACK-backed
    primitive (:data:`LAPACK_PRIMITIVES`), naming it and the remedy (:func:`solve_small`)."""
    found = sorted(set(_primitives(jax.make_jaxpr(law.predict)(h, N, D).jaxpr))
                   & LAPACK_PRIMITIVES)
    if found:
        raise TypeError(
            f"law {type(law).__name__!r}: its prediction calls the LAPACK-backed "
            f"{', '.join(found)}, which can deadlock a fit on the CPU (two such calls in one "
            "compiled program wait on each other inside XLA's thread pool; see "
            "mixscale._linalg). Solve small systems with mixscale.solve_small instead.")
