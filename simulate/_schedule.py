r"""Step-size schedules for one-pass SGD: piecewise constant, so each piece is one ``lax.scan``.

A schedule maps the step index ``t = 0, 1, ...`` (the ``t``-th update) to the step size
:math:`\gamma_t`. Both schedules here are piecewise constant; :meth:`pieces` lists the pieces
``(start, stop, γ)`` covering ``[0, n_steps)``, with static boundaries and ``γ`` a (possibly
traced) array, so the exact recursion precomputes its per-feature multiplier once per piece.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._checks import is_concrete

__all__ = ["AbstractSchedule", "Constant", "StepDecay"]


def _check_lr(lr) -> None:
    if is_concrete(lr) and not (np.isfinite(float(lr)) and float(lr) > 0):
        raise ValueError(f"the step size lr must be positive and finite, got {float(lr)!r}")


class AbstractSchedule(eqx.Module):
    """A piecewise-constant step-size schedule."""

    @abc.abstractmethod
    def pieces(self, n_steps: int) -> list[tuple[int, int, Float[Array, ""]]]:
        """``[(start, stop, γ), ...]`` covering steps ``0 .. n_steps - 1`` in order."""

    def max_lr(self, n_steps: int) -> Float[Array, ""]:
        """The largest step size used in the first ``n_steps`` steps."""
        ps = self.pieces(max(n_steps, 1))
        return jnp.max(jnp.stack([jnp.asarray(g) for _, _, g in ps]))

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

    lr: Float[Array, ""]

    def __init__(self, lr):
        self.lr = jnp.asarray(lr, dtype=jnp.result_type(float))
        if self.lr.ndim != 0:
            raise ValueError(f"lr must be a scalar, got shape {self.lr.shape}")
        _check_lr(self.lr)

    def pieces(self, n_steps):
        return [(0, int(n_steps), self.lr)]


class StepDecay(AbstractSchedule):
    r"""Step decay :math:`\gamma_t = \gamma\, f^{\lfloor t / E \rfloor}`.

    Args:
        lr: the initial step ``γ > 0``.
        factor: the decay factor ``f ∈ (0, 1]`` applied every ``E`` steps.
        every: ``E``, the number of steps between decays (a positive int).
    """

    lr: Float[Array, ""]
    factor: Float[Array, ""]
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

    def pieces(self, n_steps):
        out = []
        for j, start in enumerate(range(0, int(n_steps), self.every)):
            out.append((start, min(start + self.every, int(n_steps)), self.lr * self.factor ** j))
        return out or [(0, 0, self.lr)]
