"""Checks shared by the tests: derivatives against float64 finite differences, and compile-once.

Import them as ``from helpers import ...`` (pytest puts ``tests/`` on ``sys.path``, the same way
``from conftest import tol`` works; the dtype-keyed tolerance stays in ``conftest.tol``).

Derivatives::

    assert_grad_matches_fd(lambda v: law.predict(v, N, D), h)          # jacfwd vs central FD
    assert_grad_matches_fd(f, x, rtol=1e-5, mode="rev", jit=True)      # jacrev, both jitted
    fd = fd_jacobian(f, x)                                              # the FD Jacobian itself
    points, combine = fd_points(x)      # the same differences from one batched call:
    fd = combine(f_batched(points))     # f_batched maps (2n, *x.shape) -> (2n, *f(x).shape)

Compilation::

    f = compile_once(allocate)          # jax.jit(allocate) that raises on a second trace
    with assert_no_retrace(mixscale._lm.lm_start, mixscale._lm.lm_advance):
        mixscale.fit(...)               # fails if either kernel is traced again in the block

A trace is what precedes every compilation (a cache miss of ``jit``), so "not traced again" is
"not compiled again".
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["assert_grad_matches_fd", "assert_no_retrace", "compile_once", "fd_jacobian",
           "fd_points", "num_traces"]


def _require_x64() -> None:
    if not jax.config.jax_enable_x64:
        raise RuntimeError("finite-difference checks need float64: run under tests/conftest.py "
                           "or call jax.config.update('jax_enable_x64', True) first")


def fd_jacobian(f: Callable, x, eps: float = 1e-6) -> np.ndarray:
    """Central finite-difference Jacobian of ``f`` at ``x``, in float64.

    Entry ``x_i`` is moved by ``± eps·max(1, |x_i|)``. The result has ``jax.jacfwd``'s layout,
    ``f(x).shape + x.shape`` (a scalar ``x`` gives ``f(x).shape``).
    """
    points, combine = fd_points(x, eps)
    return combine(np.stack([np.asarray(f(p), dtype=np.float64) for p in points]))


def fd_points(x, eps: float = 1e-6) -> tuple[np.ndarray, Callable]:
    """The ``2n`` points :func:`fd_jacobian` evaluates ``f`` at (``n = x.size``; ``x + s_i e_i``
    then ``x − s_i e_i`` for each entry ``i``, the same steps ``s_i``), stacked ``(2n,
    *x.shape)``, and the function that turns ``f``'s values there ``(2n, *out)`` into the central
    difference Jacobian ``(*out, *x.shape)``: one batched (``vmap``) call instead of ``2n``."""
    _require_x64()
    x = np.asarray(x, dtype=np.float64)
    flat = x.reshape(-1)
    steps = eps * np.maximum(1.0, np.abs(flat))
    moves = np.diag(steps)
    points = np.concatenate([flat + moves, flat - moves]).reshape((2 * flat.size,) + x.shape)

    def combine(values) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        n = flat.size
        diff = (values[:n] - values[n:]) / steps.reshape((n,) + (1,) * (values.ndim - 1))
        return np.moveaxis(0.5 * diff, 0, -1).reshape(values.shape[1:] + x.shape)

    return points, combine


def assert_grad_matches_fd(f: Callable, x, rtol: float = 1e-6, *, atol: float = 1e-9,
                           eps: float = 1e-6, mode: str = "fwd", jit: bool = False,
                           err_msg: str = "") -> np.ndarray:
    """Assert that JAX's Jacobian of ``f`` at ``x`` equals :func:`fd_jacobian` (float64).

    Args:
        f: a function of one array (or scalar) returning an array (or scalar).
        x: where to differentiate; converted to float64.
        rtol, atol: elementwise tolerance of ``np.testing.assert_allclose``. Central differences
            with ``eps = 1e-6`` are good to about ``1e-8`` relative on smooth functions, so
            ``rtol = 1e-6`` leaves room for mild curvature.
        eps: relative finite-difference step.
        mode: ``"fwd"`` (``jax.jacfwd``) or ``"rev"`` (``jax.jacrev``).
        jit: compile ``f`` and its Jacobian first (faster when ``f`` is costly to run eagerly).
        err_msg: added to the failure message (e.g. the name of the argument).

    Returns:
        The JAX Jacobian, ``f(x).shape + x.shape``.
    """
    _require_x64()
    if mode not in ("fwd", "rev"):
        raise ValueError(f"mode must be 'fwd' or 'rev', got {mode!r}")
    jacobian = (jax.jacfwd if mode == "fwd" else jax.jacrev)(f)
    if jit:
        f, jacobian = jax.jit(f), jax.jit(jacobian)
    x = np.asarray(x, dtype=np.float64)
    jac = np.asarray(jacobian(jnp.asarray(x)))
    np.testing.assert_allclose(jac, fd_jacobian(f, x, eps), rtol=rtol, atol=atol,
                               err_msg=f"{mode}-mode Jacobian vs central differences {err_msg}")
    return jac


def compile_once(fn: Callable, *, jit: Callable = jax.jit, **jit_kwargs) -> Callable:
    """``jit(fn)`` that raises ``RuntimeError`` when it is traced a second time.

    Uses ``eqx.debug.assert_max_traces(max_traces=1)`` inside the ``jit``; the error names the
    argument whose shape, dtype or static value changed. Pass ``jit=eqx.filter_jit`` for
    functions of modules.
    """
    return jit(eqx.debug.assert_max_traces(fn, max_traces=1), **jit_kwargs)


def num_traces(fn: Callable) -> int:
    """Times ``fn`` has been traced, for a function wrapped in ``eqx.debug.assert_max_traces``
    (directly or under ``jit``/``eqx.filter_jit``); raises ``ValueError`` for any other."""
    return eqx.debug.get_num_traces(fn)


def _has_trace_counter(fn) -> bool:
    try:
        num_traces(fn)
    except ValueError:
        return False
    return True


@contextlib.contextmanager
def _jax_events(event: str) -> Iterator[list]:
    """The ``fun_name`` of every JAX ``event`` (a ``jax.monitoring`` duration event) recorded
    inside the block, in order, in the list it yields."""
    names: list = []

    def listener(name: str, duration: float, **kwargs) -> None:
        del duration
        if name == event:
            names.append(kwargs.get("fun_name"))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield names
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@contextlib.contextmanager
def assert_no_retrace(*fns: Callable) -> Iterator[None]:
    """Fail if any of ``fns`` (jitted functions) is traced, hence compiled, inside the block.

    A function wrapped in ``eqx.debug.assert_max_traces`` (any ``max_traces``) is counted by
    equinox's trace counter. Any other jitted function is counted by JAX's own trace events
    (``jax.monitoring``) under its ``__name__``: there, another function of the same name traced
    in the block counts too (a false failure, never a missed one).
    """
    if not fns:
        raise ValueError("give the jitted functions that must not be traced again")
    counted = [fn for fn in fns if _has_trace_counter(fn)]
    by_name = {fn.__name__ for fn in fns if not _has_trace_counter(fn)}
    before = [num_traces(fn) for fn in counted]

    with _jax_events("/jax/core/compile/jaxpr_trace_duration") as traced:
        yield
    retraced = [f"{fn.__name__}: traced {num_traces(fn) - n} more time(s)"
                for fn, n in zip(counted, before, strict=True) if num_traces(fn) != n]
    retraced += [f"{name}: traced {traced.count(name)} time(s)" for name in by_name
                 if name in traced]
    assert not retraced, "recompiled inside the block: " + "; ".join(retraced)


@contextlib.contextmanager
def assert_compiles_nothing() -> Iterator[None]:
    """Fail if XLA compiles any program inside the block (for code called outside ``jax.jit``
    that must reuse its compiled programs for new values of the same shapes)."""
    with _jax_events("/jax/core/compile/backend_compile_duration") as compiled:
        yield
    assert not compiled, f"compiled inside the block: {compiled}"
