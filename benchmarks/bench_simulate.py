"""The simulator at scale: closed form, recursion and a numpy loop per mixture across ``P``, the
recursion's bandwidth (float64 and float32), and a large closed-form sweep.

Problem: K = 4 domains (``α = 1.3, 1.6, 2.0, 2.5``, ``β = 0.2``, ``σ² = 0.1``, a head of 64), every
feature kept (``N = P``), a constant step of half the smallest stable step over a few mixtures,
float64 unless stated. Prints medians over ``--repeats`` timed calls (after one compiling call)
and the ratios:

1. **Per mixture, for P ∈ {2^10, 2^12, 2^14, 2^16}**: the closed form (all ``--checkpoints``
   checkpoints up to ``--steps`` at once, timed on a batch of ``--mixtures`` through the public
   ``sweep_losses(method="closed_form")``), the recursion (the same checkpoints, public
   ``sweep_losses``) and the numpy loop (timed on ``--numpy-steps`` steps and scaled to
   ``--steps``), then each method's growth exponent in ``P`` (least-squares slope of log time
   against log P) and the speed ratios.
2. **Bandwidth** at ``P = --bandwidth-features``: the recursion's throughput in feature-steps per
   second, its essential traffic of three numbers per feature-step (read ``c``, read its
   multiplier, write ``c``) against the copy bandwidth of a large ``np.copyto`` (read + write)
   measured in the same run; then the same in float32 with its largest relative error against
   float64.
3. **Sweep**: ``--sweep-mixtures`` mixtures × ``--checkpoints`` checkpoints at
   ``P = --sweep-features`` by the closed form, sharded over every device (``jax.sharding``,
   axis ``"mixtures"``) when there is more than one.

Only the public ``simulate`` API is used (``sweep_losses`` checks every call, including the
stable step range, inside the timed region).

Run: ``python benchmarks/bench_simulate.py`` (minutes); ``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def copy_bandwidth(n_bytes: int, repeats: int) -> float:
    """Bytes per second of ``np.copyto`` (counting the read and the write) on a large array."""
    src = np.ones(n_bytes // 8)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # touch the pages first
    t = _median_time(lambda: np.copyto(dst, src), repeats)
    return 2 * src.nbytes / t


def numpy_recursion(a, w2, sigma2, h, lr, n_steps, batch_size=1):
    """The exact recursion in plain numpy, every feature kept: (M, P) arrays, a loop over
    steps; losses (M, K) after ``n_steps``."""
    inv_b = 1.0 / batch_size
    lam = h @ a
    qd = 2.0 * inv_b * (h @ (a * a)) + (1.0 - inv_b) * lam * lam
    d = 1.0 - 2.0 * lr * lam + lr * lr * qd
    c = np.broadcast_to(w2, lam.shape).copy()
    r = c @ a.T
    for _ in range(n_steps):
        s = (lr * lr * inv_b) * h * (r + sigma2)
        c = d * c + s @ a
        r = c @ a.T
    return r + sigma2


def _model(sim, p):
    return sim.DisjointTailModel(jnp.array([1.3, 1.6, 2.0, 2.5]), beta=0.2, sigma2=0.1, head=64,
                                 n_features=p)


def _step(sim, model, mixtures):
    p = model.n_features
    return 0.5 * min(sim.stable_step_limit(model, h, p) for h in mixtures[:4])


def _slope(ps, times) -> float:
    return float(np.polyfit(np.log(ps), np.log(times), 1)[0])


def per_mixture(sim, args, rng) -> None:
    print(f"\n== per mixture: K=4, N=P, {args.checkpoints} checkpoints up to D={args.steps} "
          "steps ==")
    print(f"{'P':>7} {'closed form':>12} {'recursion':>12} {'numpy loop':>12} "
          f"{'rec/closed':>11} {'rec vs numpy':>13} {'closed vs rec':>14}")
    checkpoints = np.unique(np.geomspace(1, args.steps, args.checkpoints).round().astype(int))
    mixtures = rng.dirichlet(np.ones(4), size=args.mixtures)
    ps, rows = [], []
    for e in args.sizes:
        p = 2**e
        model = _model(sim, p)
        p = model.n_features
        lr = _step(sim, model, mixtures)
        schedule = sim.Constant(lr)

        def closed(model=model, p=p, schedule=schedule):
            return sim.sweep_losses(model, mixtures, [p], checkpoints, schedule,
                                    method="closed_form")

        def rec(model=model, p=p, schedule=schedule):
            return sim.sweep_losses(model, mixtures, [p], checkpoints, schedule)

        want = closed()
        t_closed = _median_time(closed, args.repeats) / args.mixtures
        got = rec()
        t_rec = _median_time(rec, args.repeats) / args.mixtures
        a = np.asarray(model.eigenvalues())
        w2 = np.asarray(model.signal())
        s2 = np.asarray(model.sigma2)
        t_np = _median_time(lambda a=a, w2=w2, s2=s2, lr=lr: numpy_recursion(
            a, w2, s2, mixtures, lr, args.numpy_steps), args.repeats)
        t_np *= args.steps / args.numpy_steps / args.mixtures
        agree = float(np.max(np.abs(want / got - 1)))
        ps.append(p)
        rows.append((t_closed, t_rec, t_np))
        print(f"{p:>7} {t_closed:>11.4f}s {t_rec:>11.4f}s {t_np:>11.4f}s "
              f"{t_rec / t_closed:>10.1f}x {t_np / t_rec:>12.1f}x {agree:>14.1e}", flush=True)
    if len(ps) >= 2:
        t = np.asarray(rows)
        print("growth exponents in P (time ~ P^e): closed form "
              f"{_slope(ps, t[:, 0]):.2f}, recursion {_slope(ps, t[:, 1]):.2f}, numpy loop "
              f"{_slope(ps, t[:, 2]):.2f}")


def bandwidth(sim, args, rng) -> None:
    p = args.bandwidth_features
    print(f"\n== recursion bandwidth: P=N={p}, {args.bandwidth_steps} steps, "
          f"{args.bandwidth_mixtures} mixtures ==")
    mixtures = rng.dirichlet(np.ones(4), size=args.bandwidth_mixtures)
    copy_bw = copy_bandwidth(2**28, max(args.repeats, 3))
    results = {}
    for dtype in (np.float64, np.float32):
        with jax.enable_x64(dtype == np.float64):
            model = _model(sim, p)
            lr = _step(sim, model, mixtures)
            ck = [args.bandwidth_steps]

            def run(model=model, lr=lr, ck=ck):
                return sim.sweep_losses(model, mixtures, [model.n_features], ck,
                                        sim.Constant(lr))

            results[dtype] = np.asarray(run(), dtype=np.float64)
            t = _median_time(run, args.repeats)
        rate = args.bandwidth_mixtures * model.n_features * args.bandwidth_steps / t
        bytes_per = 3 * np.dtype(dtype).itemsize
        print(f"{np.dtype(dtype).name}: median {t:.3f} s, {rate:.3e} feature-steps/s, "
              f"{bytes_per * rate / 1e9:.2f} GB/s ({bytes_per} B per feature-step) = "
              f"{bytes_per * rate / copy_bw:.2f} of copy bandwidth {copy_bw / 1e9:.2f} GB/s "
              "(goal >= 0.5)", flush=True)
    err = float(np.max(np.abs(results[np.float32] / results[np.float64] - 1)))
    print(f"float32 against float64: largest relative error {err:.1e}")


def big_sweep(sim, args, rng) -> None:
    p = args.sweep_features
    devices = jax.devices()
    print(f"\n== closed-form sweep: {args.sweep_mixtures} mixtures x {args.checkpoints} "
          f"checkpoints at P=N={p}, {len(devices)} device(s) ==")
    model = _model(sim, p)
    mixtures = rng.dirichlet(np.ones(4), size=args.sweep_mixtures)
    lr = _step(sim, model, mixtures)
    checkpoints = np.unique(np.geomspace(10, 10**6, args.checkpoints).round().astype(int))
    mesh = None
    if len(devices) > 1:
        mesh = jax.sharding.Mesh(np.asarray(devices), ("mixtures",))

    def run():
        return sim.sweep_losses(model, mixtures, [model.n_features], checkpoints,
                                sim.Constant(lr), method="closed_form", mesh=mesh)

    t0 = time.perf_counter()
    out = run()
    first = time.perf_counter() - t0
    t = _median_time(run, 1)
    print(f"first call (compile + checks + run) {first:.1f} s; second call {t:.1f} s "
          f"({t / args.sweep_mixtures * 1e3:.1f} ms per mixture; goal < 60 s); "
          f"finite: {bool(np.all(np.isfinite(out)))}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 12, 14, 16],
                        help="log2 of the feature counts P of part 1")
    parser.add_argument("--steps", type=int, default=10**4)
    parser.add_argument("--checkpoints", type=int, default=20)
    parser.add_argument("--mixtures", type=int, default=8)
    parser.add_argument("--numpy-steps", type=int, default=100)
    parser.add_argument("--bandwidth-features", type=int, default=2**14)
    parser.add_argument("--bandwidth-steps", type=int, default=10**4)
    parser.add_argument("--bandwidth-mixtures", type=int, default=64)
    parser.add_argument("--sweep-features", type=int, default=2**16)
    parser.add_argument("--sweep-mixtures", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["per-mixture", "bandwidth", "sweep"])
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.steps, args.checkpoints, args.mixtures = [8, 10], 500, 5, 4
        args.numpy_steps, args.repeats = 20, 1
        args.bandwidth_features, args.bandwidth_steps, args.bandwidth_mixtures = 2**10, 500, 8
        args.sweep_features, args.sweep_mixtures = 2**10, 16
    jax.config.update("jax_enable_x64", True)
    import simulate as sim

    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), "
          f"{jax.device_count()} device(s)")
    rng = np.random.default_rng(0)
    if "per-mixture" not in args.skip:
        per_mixture(sim, args, rng)
    if "bandwidth" not in args.skip:
        bandwidth(sim, args, rng)
    if "sweep" not in args.skip:
        big_sweep(sim, args, rng)
    return 0


if __name__ == "__main__":
    sys.exit(main())
