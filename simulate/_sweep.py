r"""Sweeps: exact losses for mixtures × model sizes × checkpoints in one compiled call.

The result is a :class:`mixscale.data.LossTable` in simulator units (``size_unit = 1``:
``model_size`` is ``N``, the number of kept features; ``token_unit = 1``: ``tokens`` is the
number of training *samples* ``D = steps × batch_size``), with the generating settings in
``meta`` and ``mixture_id`` / ``steps`` row tags, so ``mixscale.fit`` fits it like a real table.

Scaling out. With ``mesh`` (a :class:`jax.sharding.Mesh` with an axis ``"mixtures"`` and
optionally an axis ``"features"``) the batch of mixtures is split over the ``"mixtures"`` devices
and the feature axis over the ``"features"`` devices; XLA's partitioner turns the per-step
reductions over features (:math:`r_j = \sum_k a_{jk} c_k`) into all-reduces. The batch is padded
by repeating the last mixture and the features by zero features (eigenvalue 0, signal 0, never
kept before a real feature), then the padding is dropped. Both give the single-device numbers to
rounding: every device runs the same per-mixture programme, but XLA's CPU matmul may block the
feature reduction differently for a different per-device batch (measured: a few ulps), and
feature sharding sums the per-device partial reductions in a different order.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from mixscale.data import LossTable

from ._checks import check_batch_size, check_checkpoints, check_mixtures, check_sizes
from ._model import DisjointTailModel
from ._recursion import recursion_losses, require_stable
from ._schedule import AbstractSchedule

__all__ = ["sweep", "sweep_losses"]


def _losses(model, a, w2, mixtures, sizes, schedule, checkpoints, batch_size):
    def one_mixture(h):
        order = jnp.argsort(-_scores(model, a, w2, h), stable=True)
        position = jnp.zeros(order.shape, order.dtype).at[order].set(
            jnp.arange(order.shape[0], dtype=order.dtype))

        def one_size(n):
            return recursion_losses(a, w2, model.sigma2, h, position < n, schedule, checkpoints,
                                    batch_size)

        return jax.vmap(one_size)(sizes)

    return jax.vmap(one_mixture)(mixtures)


def _scores(model, a, w2, h):
    lam = h @ a
    return lam * w2 if model.keep == "signal" else lam


_losses_jit = eqx.filter_jit(_losses)


def sweep_losses(model: DisjointTailModel, mixtures, sizes, checkpoints,
                 schedule: AbstractSchedule, batch_size: int = 1, *,
                 mesh: Mesh | None = None) -> np.ndarray:
    """Exact losses of every mixture × size × checkpoint, shape ``(M, S, C, K)``.

    Args:
        model: the :class:`DisjointTailModel`.
        mixtures: ``(M, K)`` mixtures.
        sizes: ``(S,)`` numbers of kept features ``N``.
        checkpoints: ``C`` step counts (``>= 0``).
        schedule: step-size schedule (checked against the stable range of every pair).
        batch_size: ``B``.
        mesh: optional device mesh (see the module docstring).
    """
    if not isinstance(schedule, AbstractSchedule):
        raise TypeError(f"schedule must be a Constant or StepDecay, got {type(schedule)}")
    batch_size = check_batch_size(batch_size)
    mixtures = check_mixtures(mixtures, model.n_domains, "mixtures")
    if mixtures.ndim != 2:
        raise ValueError(f"mixtures must be (M, K), got shape {mixtures.shape}")
    sizes = check_sizes(np.atleast_1d(sizes), model.n_features, "sizes")
    if sizes.ndim != 1:
        raise ValueError(f"sizes must be 1-d, got shape {sizes.shape}")
    checkpoints = check_checkpoints(checkpoints)
    require_stable(model, schedule, mixtures, sizes, max(checkpoints), batch_size)
    dtype = model.alpha.dtype
    a = model.eigenvalues()
    w2 = model.signal()
    h = jnp.asarray(mixtures, dtype)
    n = jnp.asarray(sizes)
    m = h.shape[0]
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
        pad_p = -a.shape[1] % n_feat
        h = jnp.concatenate([h, jnp.repeat(h[-1:], pad_m, axis=0)])
        a = jnp.pad(a, ((0, 0), (0, pad_p)))
        w2 = jnp.pad(w2, (0, pad_p))
        feat = "features" if "features" in mesh.axis_names else None
        h = jax.device_put(h, NamedSharding(mesh, P("mixtures", None)))
        a = jax.device_put(a, NamedSharding(mesh, P(None, feat)))
        w2 = jax.device_put(w2, NamedSharding(mesh, P(feat)))
        n = jax.device_put(n, NamedSharding(mesh, P()))
        model = jax.device_put(model, NamedSharding(mesh, P()))
    out = _losses_jit(model, a, w2, h, n, schedule, checkpoints, batch_size)
    return np.asarray(out)[:m]


def sweep(model: DisjointTailModel, mixtures, sizes, checkpoints, schedule: AbstractSchedule,
          batch_size: int = 1, *, mesh: Mesh | None = None, name: str = "simulated") -> LossTable:
    """Exact losses of every mixture × size × checkpoint as a :class:`LossTable`.

    Rows are ordered mixture-major, then size, then checkpoint. ``tokens`` counts samples
    (``steps × batch_size``), so every checkpoint must be ``>= 1`` step. Arguments as in
    :func:`sweep_losses`.
    """
    checkpoints = check_checkpoints(checkpoints, allow_zero=False)
    losses = sweep_losses(model, mixtures, sizes, checkpoints, schedule, batch_size, mesh=mesh)
    mixtures = np.asarray(mixtures, dtype=np.float64)
    sizes = np.atleast_1d(np.asarray(sizes)).astype(np.int64)
    m, s, c, k = losses.shape
    steps = np.asarray(checkpoints, dtype=np.int64)
    idx_m, idx_s, idx_c = (g.reshape(-1) for g in np.meshgrid(
        np.arange(m), np.arange(s), np.arange(c), indexing="ij"))
    meta = {
        "generator": "simulate.sweep (exact second-moment recursion of one-pass SGD)",
        "model": model_settings(model),
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


def model_settings(model: DisjointTailModel) -> dict:
    """The model's generating settings as plain JSON-friendly values."""
    out = {f.name: getattr(model, f.name) for f in dataclasses.fields(model)
           if f.name not in ("rank", "member")}
    out = {k: (np.asarray(v).tolist() if isinstance(v, jax.Array) else v) for k, v in out.items()}
    out["tails"] = list(model.tails)
    out["names"] = list(model.names)
    out["n_features"] = model.n_features
    return out
