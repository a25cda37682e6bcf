"""Benchmark: how far an uncertified fit on a staircase of kinks is from lower points.

``fit_under_overlap``'s capacity ``transfer`` and ``coupled`` fits with a head of 8 at ρ = 1 end
uncertified on 84 active kinks (README, "Records"; ``docs/fitting.md``, last section). This
script rebuilds that setting's table with the experiment's own functions
(``experiments.fit_under_overlap.head_instances`` and ``setting_table``), fits the
law as the experiment does (:func:`experiments._common.fit_laws`: 64 restarts, nested first,
polish, kink continuation, certificate) and then runs, from the returned law, a method made for
nonsmooth objectives that is not in the library: BFGS on the objective itself (Lewis & Overton,
"Nonsmooth optimization via quasi-Newton methods", Math. Program. 141, 2013), each step taken
to the lowest of 36 points along it (lengths ``2^-30`` to ``2^5``), and, where none descends, a
gradient-sampling step along the sampled hull's direction (:class:`mixscale._kinks.KinkHull`,
sampling radii 1e-6 down to 1e-9, the first that descends, 111 lengths from 1e-12 to 1e-1 in
the max-norm). It stops after ``--seconds``, where neither step descends, or where the library's
certificate holds (the sampled measure at its radius, ``mixscale._stationarity.EPSILON`` =
1e-9, at most ``mixscale._lm.GTOL`` = 1e-5), and prints the fit's objective and certificate,
the objective's relative change, the sampled measure at the end (at 1e-9 and at 1e-6) and the
training and held-out MRE before and after.

Run: ``python benchmarks/bench_staircase.py [--law "capacity (coupled)"] [--seconds 280]``.
Measured on the 2-core machine (``docs/fitting.md``): ``transfer`` −0.17 % in 280 s, held-out
7.866 → 7.842 %; ``coupled`` −0.32 % in 176 s before no step descended, held-out
6.941 → 6.852 %; neither certified.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

#: Step lengths of the BFGS line search (multiples of the quasi-Newton step).
BFGS_LENGTHS = [2.0**e for e in range(-30, 6)]
#: Step lengths of the gradient-sampling step (max-norm of the step).
SAMPLING_LENGTHS = [10.0 ** e for e in (-12 + 0.1 * i for i in range(111))]
#: Sampling radii of the gradient-sampling step, tried in turn until one descends.
RADII = (1e-6, 1e-7, 1e-8, 1e-9)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--law", default="capacity (transfer)",
                   help="a law of fit_under_overlap's list (default: capacity (transfer))")
    p.add_argument("--seconds", type=float, default=280.0,
                   help="time for the nonsmooth BFGS after the fit (default 280)")
    args = p.parse_args(argv)

    # the experiments' protocols live beside the library, at the repository's root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from experiments._common import XLA_FLAGS

    os.environ.setdefault("XLA_FLAGS", XLA_FLAGS)
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    from experiments import _common
    from experiments import fit_under_overlap as experiment
    from mixscale import _kinks, evaluate
    from mixscale._lm import GTOL
    from mixscale._stationarity import EPSILON
    from mixscale.data import split

    cfg = experiment.Config()
    specs = [s for s in cfg.laws if s.label == args.law]
    if not specs:
        raise SystemExit(f"{args.law!r} is not one of {[s.label for s in cfg.laws]}")
    head, rho = 8, 1.0
    _, variants, mixtures, lr = experiment.head_instances(cfg, head)
    table = experiment.setting_table(cfg, next(v for v in variants if v.rho == rho), mixtures, lr)
    train, val = split(table, cfg.validation_fraction, cfg.seed)

    t0 = time.perf_counter()
    res = _common.fit_laws(specs, train, validation=val, n_restarts=cfg.n_restarts,
                           seed=cfg.seed)[specs[0]][0]
    certificate = res.kink_certificate
    print(f"{args.law} on S{head}, rho {rho:g}: objective {res.objective:.10g}, converged "
          f"{res.law_converged}, certificate's measure "
          f"{certificate.sigma if certificate else float('nan'):.3g} "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)

    data, delta, lower, upper = _kinks.fitted_problem(res, train)
    residual_fn, gap_fn, layout, params = _kinks.flat_problem(res.law, data, delta)
    residual_fn, gap_fn = jax.jit(residual_fn), jax.jit(gap_fn)
    normals_fn = jax.jit(jax.jacfwd(gap_fn))
    objective = lambda q: 0.5 * jnp.sum(residual_fn(q) ** 2)  # noqa: E731
    value_and_grad = jax.jit(jax.value_and_grad(objective))
    batch_objective = jax.jit(jax.vmap(objective))
    lo, hi = np.asarray(layout.ravel(lower)), np.asarray(layout.ravel(upper))

    def hull(q, radius):
        return _kinks.KinkHull(residual_fn, q, np.asarray(gap_fn(q)),
                               np.asarray(normals_fn(jnp.asarray(q))), lo, hi, epsilon=radius)

    def best_along(q, direction, lengths):
        points = np.clip(q[None] + np.asarray(list(lengths))[:, None] * direction[None], lo, hi)
        values = np.asarray(batch_objective(jnp.asarray(points)))
        k = int(np.argmin(values))
        return points[k], float(values[k])

    q = np.asarray(layout.ravel(params))
    f, g = (np.asarray(x) for x in value_and_grad(jnp.asarray(q)))
    f = float(f)
    f0, n = f, q.size
    reset = lambda g: np.eye(n) * 1e-6 / max(np.abs(g).max(), 1e-300)  # noqa: E731
    inverse_hessian = reset(g)
    steps = sampling_steps = 0
    start, stopped = time.perf_counter(), "time"
    while time.perf_counter() - start < args.seconds:
        direction = -inverse_hessian @ g
        direction[((q <= lo) & (direction < 0)) | ((q >= hi) & (direction > 0))] = 0.0
        trial, value = best_along(q, direction, BFGS_LENGTHS)
        if not value < f - 1e-13 * abs(f):  # a gradient-sampling step instead
            inverse_hessian = reset(g)
            if hull(q, EPSILON).measure()[0] <= GTOL:  # the library's certificate
                stopped = "certified"
                break
            for radius in RADII:
                _, d, _ = hull(q, radius).measure()
                trial, value = best_along(q, d / np.abs(d).max(), SAMPLING_LENGTHS)
                if value < f - 1e-13 * abs(f):
                    break
            else:
                stopped = "no descent"
                break
            sampling_steps += 1
            new_f, new_g = value_and_grad(jnp.asarray(trial))
            q, f, g = trial, float(new_f), np.asarray(new_g)
            steps += 1
            continue
        new_f, new_g = value_and_grad(jnp.asarray(trial))
        new_g = np.asarray(new_g)
        s, y = trial - q, new_g - g
        if s @ y > 1e-16 * np.linalg.norm(s) * np.linalg.norm(y):  # the BFGS update
            rho_sy = 1.0 / (s @ y)
            v = np.eye(n) - rho_sy * np.outer(s, y)
            inverse_hessian = v @ inverse_hessian @ v.T + rho_sy * np.outer(s, s)
        q, f, g = trial, float(new_f), new_g
        steps += 1
    sigma, sigma_wide = hull(q, EPSILON).measure()[0], hull(q, RADII[0]).measure()[0]
    law = eqx.combine(layout.unravel(q), res.law)
    units = dict(targets=res.targets, train_domains=res.train_domains, size_unit=res.size_unit,
                 token_unit=res.token_unit)
    print(f"nonsmooth BFGS: {steps} steps ({sampling_steps} gradient-sampling) in "
          f"{time.perf_counter() - start:.0f} s, stopped by {stopped}; objective "
          f"{f0:.6g} -> {f:.6g} ({f / f0 - 1:+.3e} relative); sampled measure {sigma:.2e} "
          f"at the library's radius {EPSILON:g} ({GTOL:g} certifies), {sigma_wide:.2e} at "
          f"{RADII[0]:g}")
    for name, table_ in (("training", train), ("held-out", val)):
        print(f"{name} MRE {100 * evaluate(res.law, table_, **units)['mre']:.3f} % -> "
              f"{100 * evaluate(law, table_, **units)['mre']:.3f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
