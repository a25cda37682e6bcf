r"""optax L-BFGS on the Huber objective, chunk after chunk of vectorised restarts.

Each restart minimises :math:`J` of :mod:`mixscale._objective` over the law's parameter pytree with
``optax.lbfgs`` (memory 10) and its zoom line search (at most 30 line-search steps per iteration).

Stopping. With :math:`J_k` the objective after iteration :math:`k`, an iteration is *slow* when
:math:`J_{k-1} - J_k \le \mathrm{rtol}\,\max(|J_k|, 10^{-300})`. A restart has converged after two
slow iterations running; it has failed when :math:`J` is not finite, and it stops unconverged after
``max_steps`` iterations.

Batching. :func:`solve_lbfgs` runs the restarts ``width`` at a time under ``vmap``; a chunk ends
when its slowest restart stops (stopped restarts are carried along unchanged). The last chunk is
padded by repeating the first restart, so every chunk shares one compilation.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array, lax

from ._objective import FitData, Solution, first_restart, objective

__all__ = ["LBFGSState", "lbfgs_batch", "solve_lbfgs"]


class LBFGSState(eqx.Module):
    """The L-BFGS state of one restart.

    Attributes:
        params: the law's parameter pytree.
        opt_state: optax's L-BFGS state (memory, line-search state, last value and gradient).
        steps: iterations taken.
        objective: ``J`` at ``params``.
        slow_steps: slow iterations running (see the module docstring).
        done: whether the restart has stopped (converged or failed).
        converged: whether the stopping rule was met.
    """

    params: Any
    opt_state: Any
    steps: Array
    objective: Array
    slow_steps: Array
    done: Array
    converged: Array


def _optimiser() -> optax.GradientTransformationExtraArgs:
    return optax.lbfgs(memory_size=10, linesearch=optax.scale_by_zoom_linesearch(
        max_linesearch_steps=30, verbose=False))


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)
def lbfgs_batch(params, static, data: FitData, delta: Array, lower, upper, rtol: Array,
                max_steps: Array, bounded: bool = True) -> LBFGSState:
    """Run every restart of ``params`` (leaves batched ``(W, ...)``) until it stops, each
    iterate clipped to ``[lower, upper]`` (pytrees like one restart's parameters); ``rtol`` and
    ``max_steps`` are scalar arrays."""
    opt = _optimiser()

    def fun(p):
        return objective(p, static, data, delta)

    value_and_grad = optax.value_and_grad_from_state(fun)

    def one(p) -> LBFGSState:
        def cond(s):
            return (s.steps < max_steps) & ~s.done

        def body(s):
            value, grad = value_and_grad(s.params, state=s.opt_state)
            updates, opt_state = opt.update(grad, s.opt_state, s.params, value=value, grad=grad,
                                            value_fn=fun)
            p = optax.apply_updates(s.params, updates)
            if bounded:
                p = jax.tree_util.tree_map(jnp.clip, p, lower, upper)
            f_new = optax.tree.get(opt_state, "value")
            failed = ~jnp.isfinite(f_new)
            slow = (s.objective - f_new) <= rtol * jnp.maximum(jnp.abs(f_new), 1e-300)
            slow_steps = jnp.where(slow, s.slow_steps + 1, 0)
            converged = (slow_steps >= 2) & ~failed
            return LBFGSState(params=p, opt_state=opt_state, steps=s.steps + 1,
                              objective=f_new, slow_steps=slow_steps, done=failed | converged,
                              converged=converged)

        if bounded:
            p = jax.tree_util.tree_map(jnp.clip, p, lower, upper)
        f0 = fun(p)
        init = LBFGSState(params=p, opt_state=opt.init(p), steps=jnp.asarray(0), objective=f0,
                          slow_steps=jnp.asarray(0), done=~jnp.isfinite(f0),
                          converged=jnp.asarray(False))
        return lax.while_loop(cond, body, init)

    return jax.vmap(one)(params)


def solve_lbfgs(params, static, data: FitData, delta: Array, rtol: float, max_steps: int,
                width: int, progress=None, bounds=None) -> Solution:
    """L-BFGS for every restart in ``params`` (leaves batched ``(R, ...)``), ``width`` at a time.

    ``progress(finished, best_objective)``, if given, is called after every chunk.
    """
    n = jax.tree_util.tree_leaves(params)[0].shape[0]
    width = min(width, n)
    pad = -n % width
    padded = jax.tree_util.tree_map(
        lambda x: jnp.concatenate([x, jnp.repeat(x[:1], pad, axis=0)]), params)
    bounded = bounds is not None and any(
        bool(np.any(np.isfinite(np.asarray(x)))) for x in jax.tree_util.tree_leaves(bounds))
    if bounds is None:
        first = first_restart(params)
        bounds = (jax.tree_util.tree_map(lambda x: jnp.full(x.shape, -jnp.inf), first),
                  jax.tree_util.tree_map(lambda x: jnp.full(x.shape, jnp.inf), first))
    # run-time values, not constants of the program: one compilation serves any of them
    rtol_v = jnp.asarray(rtol, jax.tree_util.tree_leaves(params)[0].dtype)
    max_steps_v = jnp.asarray(max_steps)
    outs = []
    for start in range(0, n + pad, width):
        chunk = jax.tree_util.tree_map(lambda x, s=start: x[s:s + width], padded)
        out = jax.block_until_ready(lbfgs_batch(chunk, static, data, delta, *bounds, rtol_v,
                                                 max_steps_v, bounded))
        outs.append(out)
        if progress is not None:
            f_all = np.concatenate([np.asarray(o.objective) for o in outs])[:n]
            progress(min(start + width, n), float(np.nanmin(np.where(np.isfinite(f_all),
                                                                      f_all, np.inf))))

    def joined(field):
        return np.concatenate([np.asarray(getattr(o, field)) for o in outs])[:n]

    p = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs)[:n], *[o.params for o in outs])
    return Solution(params=p, objectives=joined("objective"), converged=joined("converged"),
                    steps=joined("steps"))
