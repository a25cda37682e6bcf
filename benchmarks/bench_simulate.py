"""Throughput of the simulator's exact recursion, against a plain numpy loop and the machine's
copy bandwidth, and the closed form's cost for the same losses.

Default problem (issue 3): K = 4 domains, N = 2^14 kept features (all of a 2^14-feature model),
10^4 SGD steps, a batch of 64 mixtures, float64. Prints medians over ``--repeats`` timed calls
(after one compiling call) and the ratios:

* recursion throughput in feature-steps per second (mixtures × features × steps / time);
* the same recursion as a numpy loop (vectorised over mixtures and features, a Python loop over
  steps), timed on ``--numpy-steps`` steps; ratio = jax / numpy throughput;
* achieved bytes per second, counting the recursion's essential traffic of three float64 numbers
  per feature per step (read the error ``c``, read its multiplier, write ``c``; the eigenvalues
  are shared by all mixtures and stay in cache), beside the copy bandwidth of a large
  ``np.copyto`` (read + write) measured in the same run;
* the closed form: one ``N × N`` eigendecomposition per mixture (``O(N³)``), timed through the
  public ``simulate.closed_form_losses`` (its input and stability checks included, ``O(P K)``
  work beside the ``O(N³)`` eigendecomposition) at smaller ``N`` and extrapolated by the fitted
  power of ``N`` to the default size — labelled as such.

Only the public ``simulate`` API is used.

Run: ``python benchmarks/bench_simulate.py`` (``--quick`` for a small smoke run).
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


def numpy_recursion(a, w2, sigma2, h, kept, lr, n_steps, batch_size=1):
    """The simulator's exact recursion in plain numpy: (M, P) arrays, a loop over steps."""
    inv_b = 1.0 / batch_size
    lam = h @ a
    qd = 2.0 * inv_b * (h @ (a * a)) + (1.0 - inv_b) * lam * lam
    d = 1.0 - 2.0 * lr * lam + lr * lr * qd
    c = np.broadcast_to(w2, lam.shape).copy()
    r = c @ a.T
    for _ in range(n_steps):
        s = (lr * lr * inv_b) * h * (r + sigma2)
        c = np.where(kept, d * c + s @ a, c)
        r = c @ a.T
    return r + sigma2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--features", type=int, default=2**14)
    parser.add_argument("--steps", type=int, default=10**4)
    parser.add_argument("--mixtures", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--numpy-steps", type=int, default=200)
    parser.add_argument("--float32", action="store_true", help="run in float32")
    args = parser.parse_args(argv)
    if args.quick:
        args.features, args.steps, args.mixtures, args.numpy_steps = 2**10, 500, 8, 50
        args.repeats = 1
    jax.config.update("jax_enable_x64", not args.float32)
    import simulate as sim

    dtype = np.float32 if args.float32 else np.float64
    k = 4
    model = sim.DisjointTailModel(jnp.array([1.3, 1.6, 2.0, 2.5]), beta=0.2, sigma2=0.1,
                                  head=64, n_features=args.features)
    p = model.n_features
    rng = np.random.default_rng(0)
    mixtures = rng.dirichlet(np.ones(k), size=args.mixtures)
    lr = 0.5 * min(sim.stable_step_limit(model, h, p) for h in mixtures[:4])
    schedule = sim.Constant(lr)
    checkpoints = [args.steps // 10, args.steps]
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), dtype "
          f"{np.dtype(dtype).name}, K={k}, P=N={p}, steps={args.steps}, "
          f"mixtures={args.mixtures}")

    def run():
        return sim.sweep_losses(model, mixtures, [p], checkpoints, schedule)

    t0 = time.perf_counter()
    exact = run()
    print(f"first call (compile + stability check + run): {time.perf_counter() - t0:.2f} s")
    t_jax = _median_time(run, args.repeats)
    feature_steps = args.mixtures * p * args.steps
    rate_jax = feature_steps / t_jax
    print(f"recursion (jax, public sweep_losses): median {t_jax:.3f} s, "
          f"{rate_jax:.3e} feature-steps/s")

    a = np.asarray(model.eigenvalues())
    w2 = np.asarray(model.signal())
    s2 = np.asarray(model.sigma2)
    kept = np.ones((args.mixtures, p), dtype=bool)
    t_np = _median_time(lambda: numpy_recursion(a, w2, s2, mixtures, kept, lr, args.numpy_steps),
                        args.repeats)
    rate_np = args.mixtures * p * args.numpy_steps / t_np
    print(f"recursion (numpy loop, {args.numpy_steps} steps): median {t_np:.3f} s, "
          f"{rate_np:.3e} feature-steps/s")
    print(f"ratio jax / numpy: {rate_jax / rate_np:.1f}x (goal >= 4x)")
    check = numpy_recursion(a, w2, s2, mixtures[:2], kept[:2], lr, checkpoints[0])
    agree = np.max(np.abs(check / exact[:2, 0, 0] - 1))
    print(f"numpy and jax agree at step {checkpoints[0]} to {agree:.1e} relative")

    bytes_per = 3 * np.dtype(dtype).itemsize
    achieved = bytes_per * rate_jax
    copy_bw = copy_bandwidth(2**28, max(args.repeats, 3))
    print(f"achieved {achieved / 1e9:.2f} GB/s ({bytes_per} B per feature-step) vs copy "
          f"bandwidth {copy_bw / 1e9:.2f} GB/s: {achieved / copy_bw:.2f} of copy (goal >= 0.5)")

    # Closed form: O(N^3) per mixture; time one mixture at a few sizes and extrapolate.
    sizes = [2**8, 2**9, 2**10] if args.quick else [2**10, 2**11, 2**12]
    sizes = [n for n in sizes if n <= p]
    h0 = mixtures[0]
    times = []
    for n in sizes:
        def f(n=n):
            return sim.closed_form_losses(model, h0, n, lr, checkpoints).block_until_ready()

        f()  # compile
        times.append(_median_time(f, args.repeats))
        print(f"closed form, one mixture, N={n}: median {times[-1]:.3f} s")
    if len(sizes) >= 2:
        slope = np.polyfit(np.log(sizes), np.log(times), 1)[0]
        for label, power in ((f"fitted N^{slope:.2f}", slope), ("N^3, the eigh's order", 3.0)):
            per = times[-1] * (p / sizes[-1]) ** power
            print(f"closed form extrapolated ({label}) to N={p}: {per:.1f} s per mixture, "
                  f"{per * args.mixtures:.0f} s for {args.mixtures} mixtures (any D) vs "
                  f"{t_jax:.1f} s for the recursion at D={args.steps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
