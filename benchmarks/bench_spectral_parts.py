"""Benchmark: where the spectral law's prediction and Jacobian spend their time, on a real table.

The spectral law's fits take most of the full reproduction's fit time (``python
benchmarks/reproduce_profile.py``), and each Levenberg–Marquardt step is mostly the law's row
Jacobian. This prints, for ``--restarts`` initial laws batched over every run of one model size
of a bundled table (as the fitter batches them; medians of ``--repeats`` warm calls):

* ``predict``: the prediction of every run; ``reverse`` / ``forward``: its Jacobian in the
  parameters by reverse and by forward mode (per run, as :mod:`mixscale._objective` forms rows);
  the capacity law's three, for scale;
* the spectral prediction cut into its parts, each timed with everything before it: the
  allocation ``x*(h, N)``, then the head's terms (bias and noise coupling over its rank nodes,
  :func:`mixscale.laws._spectral._summed_rate_terms`), then the own tails'
  (:func:`mixscale.laws._spectral._own_tail`); the rest of ``predict`` (the coupling solve
  ``(I - ηM)^{-1}``, the unkept ranks, ``E``) is ``predict`` less the three;
* the head's terms again with their rank nodes, eigenvalues ``a_i(u)`` and loss densities
  ``f_i(u)`` computed once per law and model size instead of once per run: the head's nodes
  span ``[0, min(H, N)/ν]``, so they and everything on them but the learning rate
  ``T(u) = Σ_j h_j a_j(u)`` and ``D`` are the same for every run of one model size. The largest
  relative difference between the two is printed (rounding only: the same formula), and both
  ways' Jacobians in the parameters by forward mode (per run; over the batch, where each
  tangent of the per-size part is computed once). Printed when the runs share one model size.

    python benchmarks/bench_spectral_parts.py [--table slimpajama7] [--size-index 0]
                                              [--restarts 16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments._common import XLA_FLAGS  # noqa: E402

os.environ.setdefault("XLA_FLAGS", XLA_FLAGS)  # the full experiments' (single-threaded) flags

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", True)

from mixscale import LawSpec  # noqa: E402
from mixscale.data import load  # noqa: E402
from mixscale.laws import DataSummary  # noqa: E402
from mixscale.laws import _spectral as spectral  # noqa: E402


def _median_s(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _batched(fn):
    """``fn(params, h, N, D)`` of one law and one run, compiled over laws × runs."""
    return jax.jit(jax.vmap(jax.vmap(fn, in_axes=(None, 0, 0, 0)), in_axes=(0, None, None, None)))


def _laws(label: str, summary: DataSummary, n: int):
    spec = LawSpec.parse(label)
    laws = eqx.filter_vmap(lambda key: spec.init(key, summary))(
        jax.random.split(jax.random.key(0), n))
    return eqx.partition(laws, eqx.is_inexact_array)


def _omega(law):
    """Loss-density amplitudes ``ω_i = b_i c_i ν^{-b_i}`` ``(K,)`` (as ``predict``)."""
    return law.b * law.c * jnp.exp(-law.b * law.log_nu)


def _rate(law, N, D):
    """Learning per unit rate ``δ (N/ν)^θ D`` of one run (as ``predict``)."""
    return law.delta * D * jnp.exp(law.sample_efficiency * (jnp.log(N) - law.log_nu))


def _head_inputs(law, h, N, D):
    """The allocation and the quantities the head's and tails' terms take (as ``predict``)."""
    x = law.allocation(h, N)
    head = jnp.minimum(law.H, N)
    omega = _omega(law)
    rate = _rate(law, N, D)
    return x, head / law.nu, (x - law.H + head) / law.nu, omega, rate


def _parts(static, part: str):
    def fn(p, h, N, D):
        law = eqx.combine(p, static)
        x, u_head, u_x, omega, rate = _head_inputs(law, h, N, D)
        if part == "allocation":
            return x
        head = spectral._summed_rate_terms(jnp.zeros_like(u_head), u_head, h, law.b, law.alpha,
                                           omega, rate, law.eta)
        if part == "head":
            return head
        columns = (u_head, jnp.maximum(u_x, u_head), law.b, law.alpha, omega, h, rate)
        inputs = jnp.stack(jnp.broadcast_arrays(*columns), axis=-1)
        tails = jax.vmap(lambda z, e: spectral._own_tail(z, e, 0.0), in_axes=(0, None))(
            inputs, law.eta)
        return head, tails
    return fn


def _head_per_run(static):
    """The head's terms of one run, from scratch (its nodes, ``a_i(u)`` and ``f_i(u)``
    included), as ``predict`` computes them; no allocation (the head does not need it)."""
    def fn(p, h, N, D):
        law = eqx.combine(p, static)
        u_head = jnp.minimum(law.H, N) / law.nu
        omega = _omega(law)
        rate = _rate(law, N, D)
        return spectral._summed_rate_terms(jnp.zeros_like(u_head), u_head, h, law.b, law.alpha,
                                           omega, rate, law.eta)
    return fn


def _head_once_per_size(static, size):
    """The head's terms with its nodes, ``a_i(u)`` and ``f_i(u)`` once per law at model size
    ``size`` (every run of the batch has it)."""
    def per_law(p):
        law = eqx.combine(p, static)
        u_head = jnp.minimum(law.H, size) / law.nu
        u, w = spectral.rank_nodes(jnp.zeros_like(u_head), u_head)
        log_u = jnp.log(u)
        a = jnp.exp(-law.alpha[:, None] * log_u[None, :])
        omega = _omega(law)
        f = omega[:, None] * jnp.exp(-(law.b[:, None] + 1.0) * log_u[None, :])
        return law, a, f, w

    def per_run(law, a, f, w, h, N, D):
        rate = _rate(law, N, D)
        T, Q = h @ a, h @ (a * a)
        left = jnp.exp(-rate * T)
        g = w * (1.0 - left) / (T - 2.0 * law.eta * Q)
        return f @ (w * left), ((a * g[None, :]) @ a.T) * h[None, :]

    def fn(p, h, N, D):
        law, a, f, w = per_law(p)
        return jax.vmap(lambda *run: per_run(law, a, f, w, *run))(h, N, D)
    return fn


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", default="slimpajama7")
    ap.add_argument("--size-index", type=int, default=0,
                    help="which of the table's model sizes, smallest first (default 0)")
    ap.add_argument("--restarts", type=int, default=16, help="initial laws batched (default 16)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)

    table = load(args.table)
    size = np.unique(table.model_size)[args.size_index]
    rows = table.take(np.flatnonzero(table.model_size == size))
    k = rows.n_train_domains
    h, N, D = (jax.device_put(np.asarray(v)) for v in (rows.weights, rows.model_size,
                                                        rows.tokens))
    summary = DataSummary(train_domains=rows.train_domains, targets=rows.train_domains,
                          loss_min=np.full(k, 2.0), loss_max=np.full(k, 3.5),
                          model_size=(float(N.min()), float(N.max())),
                          tokens=(float(D.min()), float(D.max())))
    print(f"{args.table}, model size {size:g} (law units): {h.shape[0]} runs, K = {k}; "
          f"{args.restarts} laws; medians of {args.repeats} warm calls, ms")
    for label in ("capacity (full)", "spectral (full)", "spectral (transfer)"):
        params, static = _laws(label, summary, args.restarts)

        def predict(p, h1, n1, d1, static=static):
            return eqx.combine(p, static).predict(h1, n1, d1)

        t = [_median_s(_batched(fn), params, h, N, D, repeats=args.repeats)
             for fn in (predict, jax.jacrev(predict), jax.jacfwd(predict))]
        print(f"  {label:22s} predict {1e3 * t[0]:8.1f}   reverse {1e3 * t[1]:8.1f}   "
              f"forward {1e3 * t[2]:8.1f}")

    params, static = _laws("spectral (full)", summary, args.restarts)
    cumulative = {part: _median_s(_batched(_parts(static, part)), params, h, N, D,
                                  repeats=args.repeats)
                  for part in ("allocation", "head", "tails")}

    def predict(p, h1, n1, d1):
        return eqx.combine(p, static).predict(h1, n1, d1)

    total = _median_s(_batched(predict), params, h, N, D, repeats=args.repeats)
    alloc, head, tails = cumulative["allocation"], cumulative["head"], cumulative["tails"]
    print(f"  spectral (full) predict {1e3 * total:.1f}: allocation {1e3 * alloc:.1f}, head "
          f"{1e3 * (head - alloc):.1f}, own tails {1e3 * (tails - head):.1f}, the rest "
          f"{1e3 * (total - tails):.1f}")
    if np.unique(np.asarray(N)).size == 1:
        head_once = _head_once_per_size(static, N[0])
        once = jax.jit(jax.vmap(head_once, in_axes=(0, None, None, None)))
        per_run = _batched(_head_per_run(static))
        diff = max(float(jnp.max(jnp.abs(x - y) / jnp.abs(x)))
                   for x, y in zip(per_run(params, h, N, D), once(params, h, N, D), strict=True))
        # Their Jacobians in the parameters by forward mode (the head's terms are K + K² numbers
        # per run, more than the law's 4K + 5 parameters): per run, and over the whole batch,
        # where each tangent of the per-size part is computed once.
        t = [_median_s(fn, params, h, N, D, repeats=args.repeats) for fn in (
            per_run, once, _batched(jax.jacfwd(_head_per_run(static))),
            jax.jit(jax.vmap(jax.jacfwd(head_once), in_axes=(0, None, None, None))))]
        print(f"  its head's terms per run {1e3 * t[0]:.1f}, with nodes, eigenvalues and "
              f"densities once per law and model size {1e3 * t[1]:.1f} (largest relative "
              f"difference {diff:.1e}); their forward Jacobians {1e3 * t[2]:.1f} and "
              f"{1e3 * t[3]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
