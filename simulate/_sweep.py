r"""Sweeps: exact losses for mixtures × model sizes × checkpoints in one compiled call.

Two methods give the same losses (to ``~1e-12`` relative in float64):

* ``method="recursion"`` (default): the exact second-moment recursion
  (:mod:`simulate._recursion`) for any :class:`~simulate.AbstractSchedule`, ``O(K P D)`` per
  pair; the kept set of a mixture is sorted once and serves every size.
* ``method="closed_form"``: the resolvent contour integral of :mod:`simulate._closed_form`,
  ``O(C K² P)`` per (mixture, size) whatever ``D`` for a constant step; any schedule as a
  product of constant phases. One compiled call for every size.

:func:`sweep` returns a :class:`mixscale.data.LossTable` in simulator units (``size_unit = 1``:
``model_size`` is ``N``, the number of kept features; ``token_unit = 1``: ``tokens`` is the
number of training *samples* ``D = steps × batch_size``), with the generating settings in
``meta`` and ``mixture_id`` / ``steps`` row tags, so ``mixscale.fit`` fits it like a real table;
:func:`sweep_losses` returns the array ``(M, S, C, K)``.

Scaling out. With ``mesh`` (a :class:`jax.sharding.Mesh` with an axis
``"mixtures"`` and optionally an axis ``"features"``) the batch of mixtures is split over the
``"mixtures"`` devices and the feature axis over the ``"features"`` devices; XLA's partitioner
turns the per-step reductions over features (:math:`r_j = \sum_k a_{jk} c_k`) into all-reduces.
The batch is padded by repeating the last mixture and the features by zero features (eigenvalue
0, signal 0, scored below every real feature so never kept before one), then the padding is
dropped. ``method="closed_form"`` shards the mixtures only (a mesh with the single axis
``"mixtures"``). Both give the single-device numbers to rounding: every device runs the same
per-mixture programme, but XLA's CPU matmul may block the feature reduction differently for a
different per-device batch (measured: a few ulps), and feature sharding sums the per-device
partial reductions in a different order.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from mixscale.data import LossTable

from ._checks import batch_argument
from ._closed_form import closed_form_batch, schedule_arguments
from ._keep import feature_positions
from ._model import DisjointTailModel
from ._recursion import recursion_losses
from ._schedule import AbstractSchedule
from ._validate import check_call

__all__ = ["sweep", "sweep_losses"]

_METHODS = ("recursion", "closed_form")
_GENERATORS = {
    "recursion": "simulate.sweep (exact second-moment recursion of one-pass SGD)",
    "closed_form": "simulate.sweep (closed form of one-pass SGD's exact second-moment "
                   "recursion: resolvent contour integral)",
}


def _losses(model, a, w2, n_real, mixtures, sizes, schedule, checkpoints, batch_size):
    """Recursion losses ``(M, S, C, K)``; ``a``, ``w2`` may carry zero padding features past
    index ``n_real`` (static), which the keep rule must never prefer to a real one."""
    real = jnp.arange(w2.shape[0]) < n_real if n_real < w2.shape[0] else None

    def one_mixture(h):
        # Sorted once per mixture, reused by every size: the positions do not depend on N.
        position = feature_positions(model.keep, h, a, w2, real)

        def one_size(n):
            return recursion_losses(a, w2, model.sigma2, h, position < n, schedule, checkpoints,
                                    batch_size)

        # Sizes one after another (lax.map), not vmap: a batch axis of sizes inside the
        # per-step loop makes XLA lay the state out as (M, S, P) and run the step ~3x slower
        # (measured: 2.4e8 against 7.5e8 feature-steps/s at P = 2^14, 64 mixtures).
        return jax.lax.map(one_size, sizes)

    return jax.vmap(one_mixture)(mixtures)


_losses_jit = eqx.filter_jit(_losses)


def _closed_form_local(model, mixtures, sizes, schedule, steps, batch_size):
    return jnp.stack([closed_form_batch(model, mixtures, sizes[i], schedule, steps, batch_size)
                      for i in range(sizes.shape[0])], axis=1)


@eqx.filter_jit
def _closed_form_losses(model, mixtures, sizes, schedule, steps, batch_size, mesh=None):
    """Closed-form losses ``(M, S, C, K)``: one compiled call for every size; with ``mesh``
    each device runs its own block of mixtures (``shard_map``)."""
    if mesh is None:
        return _closed_form_local(model, mixtures, sizes, schedule, steps, batch_size)
    params, static = eqx.partition((model, schedule, steps), eqx.is_array)

    def local(params, mixtures, sizes):
        model, schedule, steps = eqx.combine(params, static)
        return _closed_form_local(model, mixtures, sizes, schedule, steps, batch_size)

    return jax.shard_map(local, mesh=mesh, in_specs=(P(), P("mixtures", None), P()),
                         out_specs=P("mixtures"), check_vma=False)(params, mixtures, sizes)


def _closed_form_sweep(model, h, call, schedule, mesh):
    """``method="closed_form"``, optionally sharded over the mesh's ``"mixtures"`` axis."""
    m = h.shape[0]
    n = jnp.asarray(call.sizes)
    if mesh is not None:
        if set(mesh.axis_names) != {"mixtures"}:
            raise ValueError(f"method='closed_form' shards over a mesh with the single axis "
                             f"'mixtures', got axes {mesh.axis_names}; the feature axis is "
                             "reduced by one matrix product per mixture, not sharded")
        pad = -m % mesh.shape["mixtures"]
        h = jnp.concatenate([h, jnp.repeat(h[-1:], pad, axis=0)])
        h = jax.device_put(h, NamedSharding(mesh, P("mixtures", None)))
    schedule_arg, steps = schedule_arguments(schedule, call.checkpoints, model.alpha.dtype)
    out = _closed_form_losses(model, h, n, schedule_arg, steps,
                              batch_argument(call.batch_size, model.alpha.dtype), mesh)
    return np.asarray(out)[:m]


def sweep_losses(model: DisjointTailModel, mixtures, sizes, checkpoints,
                 schedule: AbstractSchedule, batch_size: int = 1, *, method: str = "recursion",
                 mesh: Mesh | None = None) -> np.ndarray:
    """Exact losses of every mixture × size × checkpoint, shape ``(M, S, C, K)``.

    Args:
        model: the :class:`DisjointTailModel`.
        mixtures: ``(M, K)`` mixtures.
        sizes: ``(S,)`` numbers of kept features ``N``.
        checkpoints: ``C`` step counts (``>= 0``).
        schedule: an :class:`AbstractSchedule` (checked against the stable range of every
            pair).
        batch_size: ``B``.
        method: ``"recursion"`` or ``"closed_form"`` (cost independent of ``D`` for a
            constant step); see the module docstring.
        mesh: optional device mesh (see the module docstring).

    Raises:
        TypeError: ``model`` or ``schedule`` of the wrong type.
        ValueError: an unknown method, a mesh with a ``"features"`` axis for
            ``"closed_form"``, bad mixtures, sizes, checkpoints or batch size, or a step
            outside the stable range.
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    call = check_call("sweep", model, mixtures=mixtures, sizes=sizes, schedule=schedule,
                      checkpoints=checkpoints, batch_size=batch_size, batched=True)
    dtype = model.alpha.dtype
    h = jnp.asarray(call.mixtures, dtype)
    if method == "closed_form":
        return _closed_form_sweep(model, h, call, schedule, mesh)
    a = model.eigenvalues()
    w2 = model.signal()
    n = jnp.asarray(call.sizes)
    m, p = h.shape[0], a.shape[1]
    if mesh is not None:
        if "mixtures" not in mesh.axis_names:
            raise ValueError(f"mesh needs an axis named 'mixtures', has {mesh.axis_names}")
        unknown = set(mesh.axis_names) - {"mixtures", "features"}
        if unknown:
            raise ValueError(f"unknown mesh axes {sorted(unknown)}; use 'mixtures' and "
                             "optionally 'features'")
        n_mix = mesh.shape["mixtures"]
        n_feat = mesh.shape.get("features", 1)
        pad_m = -m % n_mix
        pad_p = -p % n_feat
        h = jnp.concatenate([h, jnp.repeat(h[-1:], pad_m, axis=0)])
        a = jnp.pad(a, ((0, 0), (0, pad_p)))
        w2 = jnp.pad(w2, (0, pad_p))
        feat = "features" if "features" in mesh.axis_names else None
        h = jax.device_put(h, NamedSharding(mesh, P("mixtures", None)))
        a = jax.device_put(a, NamedSharding(mesh, P(None, feat)))
        w2 = jax.device_put(w2, NamedSharding(mesh, P(feat)))
        n = jax.device_put(n, NamedSharding(mesh, P()))
        model = jax.device_put(model, NamedSharding(mesh, P()))
    out = _losses_jit(model, a, w2, p, h, n, schedule, call.checkpoints,
                      batch_argument(call.batch_size, model.alpha.dtype))
    return np.asarray(out)[:m]


def sweep(model: DisjointTailModel, mixtures, sizes, checkpoints, schedule: AbstractSchedule,
          batch_size: int = 1, *, method: str = "recursion", mesh: Mesh | None = None,
          name: str = "simulated") -> LossTable:
    """Exact losses of every mixture × size × checkpoint as a :class:`LossTable`.

    Rows are ordered mixture-major, then size, then checkpoint. ``tokens`` counts samples
    (``steps × batch_size``), so every checkpoint must be ``>= 1`` step. Arguments as in
    :func:`sweep_losses`; ``name`` names the table.

    Example:
        >>> import jax.numpy as jnp, simulate
        >>> m = simulate.DisjointTailModel(jnp.array([1.5, 2.0]), sigma2=0.1, head=2, tail=8)
        >>> t = simulate.sweep(m, [[0.5, 0.5], [0.9, 0.1]], [4, 8], [10, 100],
        ...                    simulate.Constant(0.3), method="closed_form")
        >>> t.n_runs, t.loss_domains
        (8, ('d0', 'd1'))
    """
    # check_call runs again inside sweep_losses; this first pass refuses D = 0 checkpoints
    # (a table's tokens must be positive) before any work
    check_call("sweep", model, sizes=sizes, checkpoints=checkpoints, batch_size=batch_size,
               batched=True, min_step=1)
    losses = sweep_losses(model, mixtures, sizes, checkpoints, schedule, batch_size,
                          method=method, mesh=mesh)
    mixtures = np.asarray(mixtures, dtype=np.float64)
    sizes = np.atleast_1d(np.asarray(sizes)).astype(np.int64)
    m, s, c, k = losses.shape
    checkpoints = [int(t) for t in np.atleast_1d(checkpoints)]
    steps = np.asarray(checkpoints, dtype=np.int64)
    idx_m, idx_s, idx_c = (g.reshape(-1) for g in np.meshgrid(
        np.arange(m), np.arange(s), np.arange(c), indexing="ij"))
    meta = {
        "generator": _GENERATORS[method],
        "method": method,
        "model": model.settings(),
        "schedule": schedule.describe(),
        "batch_size": int(batch_size),
        "checkpoint_steps": list(checkpoints),
        "units": "model_size = kept features N; tokens = samples D = steps x batch_size",
        "dtype": str(model.alpha.dtype),
    }
    return LossTable(
        weights=mixtures[idx_m], model_size=sizes[idx_s].astype(np.float64),
        tokens=(steps[idx_c] * batch_size).astype(np.float64),
        losses=losses.reshape(m * s * c, k), train_domains=model.names, loss_domains=model.names,
        size_unit=1.0, token_unit=1.0, name=name, meta=meta,
        row_tags={"mixture_id": idx_m, "steps": steps[idx_c]})

