r"""Step-size schedules for one-pass SGD: piecewise constant, so each piece is one ``lax.scan``.

A schedule maps the step index ``t = 0, 1, ...`` (the ``t``-th update) to the step size
:math:`\gamma_t`. Every schedule is piecewise constant. :meth:`blocks` describes the first
``n_steps`` steps as a few *blocks*, each a run of equal-length pieces of constant step
``(start, lrs, length)``: steps ``start + j·length .. start + (j+1)·length − 1`` use ``lrs[j]``.
:func:`run_schedule` drives a per-piece setup and a per-step update through them with two nested
``lax.scan`` calls per block, so the compiled programme does not grow with the number of pieces
and per-feature multipliers are computed once per piece, not once per step.

:class:`AbstractSchedule` is the contract; :class:`Constant` and :class:`StepDecay` are its
built-in final implementations. A new schedule is one subclass implementing :meth:`blocks`
(a warm-up, for example, is a block of ``W`` pieces of length 1 followed by a constant block);
the recursion, the stability check, Monte Carlo, the sweeps and the optimum use nothing else.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from ._checks import is_concrete

__all__ = ["AbstractSchedule", "Constant", "StepDecay", "run_schedule"]


def _check_lr(lr) -> None:
    if is_concrete(lr) and not (np.isfinite(float(lr)) and float(lr) > 0):
        raise ValueError(f"the step size lr must be positive and finite, got {float(lr)!r}")


class AbstractSchedule(eqx.Module):
    """A piecewise-constant step-size schedule: subclass it and implement :meth:`blocks`.

    Array fields (step sizes) are traced, so a new value does not recompile; ints that shape
    the blocks must be static (``eqx.field(static=True)``) or plain Python ints.
    """

    @abc.abstractmethod
    def blocks(self, n_steps: int) -> list[tuple[int, Array, int]]:
        """``[(start, lrs, length), ...]`` covering steps ``0 .. n_steps - 1`` in order
        (``lrs`` has shape ``(n_pieces,)``; ``start`` and ``length`` are static ints)."""

    def max_lr(self, n_steps: int) -> Array:
        """The largest step size used in the first ``n_steps`` steps (at least one step)."""
        return jnp.max(jnp.concatenate([lrs for _, lrs, _ in self.blocks(max(n_steps, 1))]))

    def describe(self) -> dict:
        """A JSON-friendly description (for the generating settings of a loss table)."""
        out = {"kind": type(self).__name__}
        for name, value in vars(self).items():
            out[name] = np.asarray(value).tolist()
        return out


class Constant(AbstractSchedule):
    r"""A constant step :math:`\gamma_t = \gamma`.

    Args:
        lr: the step size ``γ > 0`` (scalar).
    """

    lr: Array

    def __init__(self, lr):
        self.lr = jnp.asarray(lr, dtype=jnp.result_type(float))
        if self.lr.ndim != 0:
            raise ValueError(f"lr must be a scalar, got shape {self.lr.shape}")
        _check_lr(self.lr)

    def blocks(self, n_steps):
        return [(0, self.lr[None], int(n_steps))] if n_steps > 0 else []


class StepDecay(AbstractSchedule):
    r"""Step decay :math:`\gamma_t = \gamma\, f^{\lfloor t / E \rfloor}`.

    Args:
        lr: the initial step ``γ > 0``.
        factor: the decay factor ``f ∈ (0, 1]`` applied every ``E`` steps.
        every: ``E``, the number of steps between decays (a positive int).
    """

    lr: Array
    factor: Array
    every: int = eqx.field(static=True)

    def __init__(self, lr, factor, every: int):
        dtype = jnp.result_type(float)
        self.lr = jnp.asarray(lr, dtype=dtype)
        self.factor = jnp.asarray(factor, dtype=dtype)
        if self.lr.ndim != 0 or self.factor.ndim != 0:
            raise ValueError("lr and factor must be scalars")
        if not isinstance(every, int | np.integer) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        if is_concrete(self.factor) and not 0.0 < float(self.factor) <= 1.0:
            raise ValueError(f"factor must lie in (0, 1], got {float(self.factor)!r}")
        _check_lr(self.lr)
        self.every = int(every)

    def blocks(self, n_steps):
        full, rest = divmod(int(n_steps), self.every)
        out = []
        if full:
            out.append((0, self.lr * self.factor ** jnp.arange(full), self.every))
        if rest:
            out.append((full * self.every, (self.lr * self.factor ** full)[None], rest))
        return out


def _split_blocks(blocks, stops):
    """Split ``blocks`` so that every stop strictly inside one becomes a block end."""
    out = []
    for start, lrs, length in blocks:
        n = lrs.shape[0]
        j, cur = 0, start  # piece index containing cur, and the current step
        while cur < start + n * length:
            piece_start = start + j * length
            nxt = min((s for s in stops if s > cur), default=None)
            if cur == piece_start:
                m = n - j if nxt is None else min(n - j, (nxt - piece_start) // length)
                if m >= 1:
                    out.append((cur, lrs[j:j + m], length))
                    j, cur = j + m, start + (j + m) * length
                    continue
            end = piece_start + length if nxt is None else min(nxt, piece_start + length)
            out.append((cur, lrs[j:j + 1], end - cur))
            cur = end
            if cur == piece_start + length:
                j += 1
    return out


def run_schedule(schedule: AbstractSchedule, stops: tuple[int, ...], carry, setup, step,
                 record) -> dict:
    """Run a scheduled iteration and record its state at the given step counts.

    Args:
        schedule: the step-size schedule.
        stops: step counts (static, ``>= 0``) at which to call ``record``.
        carry: the initial state (a pytree).
        setup: ``setup(lr) -> aux``, per-piece precomputation (e.g. per-feature multipliers).
        step: ``step(carry, t, lr, aux) -> carry``, one update; ``t`` is the 0-based step index.
        record: ``record(carry) -> value``, what to keep at a stop.

    Returns:
        ``{stop: record(state after stop steps)}``. Recording happens between ``lax.scan``
        segments, never inside the per-step loop (a per-step write into a checkpoint buffer
        costs XLA an extra pass over the state).
    """
    stops = sorted(set(int(s) for s in stops))
    out = {}
    if 0 in stops:
        out[0] = record(carry)
    for start, lrs, length in _split_blocks(schedule.blocks(max(stops, default=0)), stops):

        def piece(carry, xs, start=start, length=length):
            lr, j = xs
            aux = setup(lr)

            def one(carry, t):
                return step(carry, t, lr, aux), None

            carry, _ = lax.scan(one, carry, start + j * length + jnp.arange(length))
            return carry, None

        if lrs.shape[0] == 1:  # a single piece needs no outer loop
            carry, _ = piece(carry, (lrs[0], 0))
        else:
            carry, _ = lax.scan(piece, carry, (lrs, jnp.arange(lrs.shape[0])))
        end = start + lrs.shape[0] * length
        if end in stops:
            out[end] = record(carry)
    return out
