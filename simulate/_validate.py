"""Validation of a simulator call, shared by every public verb (run eagerly, before tracing).

:func:`check_call` checks, in this order, the model's type, the schedule's type, the batch size,
the mixtures (on the simplex, ``(K,)`` for one or ``(M, K)`` for a batch), the sizes (integer
feature counts in ``1 .. P``, a scalar or ``(S,)``), the checkpoints (step counts), and, when
the call names mixtures, a schedule and checkpoints, the stable step range of every
``(mixture, size)`` pair (:func:`require_stable`). Every failure is a ``TypeError`` or
``ValueError`` whose message says what to pass instead.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._checks import (
    batch_argument,
    check_batch_size,
    check_checkpoints,
    check_mixtures,
    check_sizes,
)
from ._model import DisjointTailModel
from ._schedule import AbstractSchedule
from ._stability import step_limit_batched, step_limit_lower_batched

__all__ = ["Call", "check_call", "check_schedule", "require_stable"]


class Call(NamedTuple):
    """A checked call, as numpy values and Python ints ready for a compiled kernel.

    Attributes:
        mixtures: ``(K,)`` (one) or ``(M, K)`` (batched) float64, or ``None`` when not given.
        sizes: ``()`` (one) or ``(S,)`` (batched) int64.
        checkpoints: the step counts, or ``None`` when not given.
        batch_size: ``B``.
    """

    mixtures: np.ndarray | None
    sizes: np.ndarray
    checkpoints: tuple[int, ...] | None
    batch_size: int


def check_schedule(schedule) -> AbstractSchedule:
    """``schedule`` unchanged if it is an :class:`AbstractSchedule`, else a ``TypeError``."""
    if not isinstance(schedule, AbstractSchedule):
        raise TypeError(f"schedule must be an AbstractSchedule (e.g. Constant, StepDecay, or "
                        f"your own subclass), got {type(schedule).__name__}: {schedule!r}")
    return schedule


def check_call(verb: str, model, *, sizes, batch_size, mixtures=None, schedule=None,
               checkpoints=None, batched: bool = False, min_step: int = 0) -> Call:
    """Check the arguments of one public call; see the module docstring for the order.

    Args:
        verb: the public function's name, for messages.
        model: must be a :class:`DisjointTailModel`.
        sizes: ``N`` (one) or ``(S,)`` sizes (``batched``).
        batch_size: ``B >= 1``.
        mixtures: ``(K,)`` (one) or ``(M, K)`` (``batched``); ``None`` when the verb chooses
            its own mixtures.
        schedule: an :class:`AbstractSchedule`, or ``None`` for a verb without one.
        checkpoints: step counts, or ``None`` for a verb without them.
        batched: a batch of mixtures and sizes (the sweeps) rather than one of each.
        min_step: the smallest allowed checkpoint (``1`` where ``D = 0`` has no meaning).

    Returns:
        The checked :class:`Call`.
    """
    if not isinstance(model, DisjointTailModel):
        raise TypeError(f"model must be a DisjointTailModel, got {type(model).__name__}")
    if schedule is not None:
        check_schedule(schedule)
    batch_size = check_batch_size(batch_size)
    k, p = model.n_domains, model.n_features
    if batched:
        if mixtures is not None:
            mixtures = check_mixtures(mixtures, k, "mixtures")
            if mixtures.ndim != 2:
                raise ValueError(f"{verb} takes mixtures of shape (M, K={k}), got shape "
                                 f"{mixtures.shape}")
            if mixtures.shape[0] == 0:  # numpy's "argmin of an empty sequence" said it before
                raise ValueError(f"{verb} takes at least one mixture, got none")
        sizes = check_sizes(np.atleast_1d(sizes), p, "sizes")
        if sizes.ndim != 1:
            raise ValueError(f"{verb} takes a 1-d list of sizes, got shape {sizes.shape}")
        if sizes.shape[0] == 0:
            raise ValueError(f"{verb} takes at least one size, got none")
    else:
        if mixtures is not None:
            mixtures = check_mixtures(mixtures, k)
        sizes = check_sizes(sizes, p)
        if (mixtures is not None and mixtures.ndim != 1) or sizes.ndim != 0:
            raise ValueError(f"{verb} takes one mixture (K,) and one size N; use sweep for "
                             "batches")
    if checkpoints is not None:
        checkpoints = check_checkpoints(checkpoints, allow_zero=min_step == 0)
    if mixtures is not None and schedule is not None and checkpoints is not None:
        require_stable(model, schedule, np.atleast_2d(mixtures), np.atleast_1d(sizes),
                       max(checkpoints), batch_size)
    return Call(mixtures, sizes, checkpoints, batch_size)


def _limits(model: DisjointTailModel, mixtures, sizes, batch_size: int, exact: bool):
    kept = jax.vmap(lambda h: jax.vmap(lambda n: model.kept(h, n))(sizes))(mixtures)
    limit = step_limit_batched if exact else step_limit_lower_batched
    return limit(model.eigenvalues(), mixtures, kept, batch_size)


_limits_jit = eqx.filter_jit(_limits)


def check_steps(schedule: AbstractSchedule, n_steps: int) -> None:
    """Raise a ``ValueError`` unless ``schedule.blocks`` covers steps ``0 .. n_steps - 1`` in
    order with positive, finite step sizes: the stability test reads the largest step only, so
    a negative, zero or infinite step passed it (losses of 1e14, or NaN), and a schedule that
    stopped short failed with a bare ``KeyError``."""
    n = max(int(n_steps), 1)
    at = 0
    for start, lrs, length in schedule.blocks(n):
        rates = np.asarray(lrs, dtype=np.float64).reshape(-1)
        if start != at or length < 1:
            raise ValueError(f"{type(schedule).__name__}.blocks({n}) must cover steps 0 .. "
                             f"{n - 1} in order: a block starts at step {start}, not {at}")
        bad = ~(np.isfinite(rates) & (rates > 0))
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{type(schedule).__name__}: every step size must be positive and "
                             f"finite, got {rates[first]:g} at step {start + first * length}")
        at = start + rates.size * int(length)
    if at != n:
        raise ValueError(f"{type(schedule).__name__}.blocks({n}) must cover steps 0 .. {n - 1} "
                         f"in order: its blocks end at step {at}")


def _bucket(n: int) -> int:
    """The least power of two ``>= n`` (``n >= 1``)."""
    return 1 << (int(n) - 1).bit_length()


def require_stable(model: DisjointTailModel, schedule: AbstractSchedule, mixtures, sizes,
                   n_steps: int, batch_size: int) -> np.ndarray:
    """Raise a ``ValueError`` stating the stable range unless every step of ``schedule`` is
    stable for every ``(mixture, size)`` pair; return limits ``(M, S)``: the exact limits when
    a cheap lower bound (:func:`simulate._stability.step_limit_lower`) could not certify every
    pair, else those lower bounds.

    Args:
        mixtures: ``(M, K)`` checked mixtures.
        sizes: ``(S,)`` checked sizes.
        n_steps: the schedule's steps ``0 .. n_steps - 1`` are checked.
    """
    dtype = model.alpha.dtype
    mixtures = np.asarray(mixtures, dtype=np.float64)
    sizes = np.asarray(sizes)
    check_steps(schedule, n_steps)
    lr_max = float(schedule.max_lr(n_steps))
    # A cheap certificate first (a lower bound within 2x of the limit); the exact bisection
    # only when it cannot certify every pair (for all pairs at once). Both axes are padded to a
    # power of two (with copies of the first entry) and cut back, so a few compiled shapes serve
    # every batch.
    m, s = mixtures.shape[0], sizes.shape[0]
    padded = (np.concatenate([mixtures, np.repeat(mixtures[:1], _bucket(m) - m, axis=0)]),
              np.concatenate([sizes, np.repeat(sizes[:1], _bucket(s) - s)]))
    args = (model, jnp.asarray(padded[0], dtype), jnp.asarray(padded[1]),
            batch_argument(batch_size, dtype))
    limits = np.asarray(_limits_jit(*args, False))[:m, :s]
    if not np.all(lr_max < limits):
        limits = np.asarray(_limits_jit(*args, True))[:m, :s]
    worst = np.unravel_index(int(np.argmin(limits)), limits.shape)
    limit = float(limits[worst])
    if not lr_max < limit:
        h = np.asarray(mixtures)[worst[0]]
        n = int(np.asarray(sizes)[worst[1]])
        raise ValueError(
            f"step size {lr_max:.6g} is unstable: for mixture h={np.round(h, 6).tolist()} with "
            f"N={n} kept features and batch_size={batch_size} the exact recursion diverges "
            f"unless 0 < lr < {limit:.6g} (every step of the schedule must lie in this range; "
            "for Monte Carlo agreement stay well inside it)")
    return limits
