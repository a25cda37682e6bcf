"""Probe: how much of RegMix's mixture ranking a low-rank transfer between domains explains.

``compare_laws``' RegMix ranking protocol (fit on the 1M training runs' in-mixture losses, rank
the 1M test mixtures and the 60M runs by each target's predicted loss; Spearman, mean over the
13 targets) puts every capacity-law variant at 0.89-0.905 and BiMix at 0.887, against DML 0.972
and the additive law 0.992 (``figures/compare_laws.md``). The capacity laws share one rank-one
transfer ``p_i p_j`` between domains; DML has a full (K x M) matrix of linear transfers, the
additive law one amplitude and one exponent per (target, source domain) pair. This probe asks
which structure the ranking needs: BiMix (one scale, so the token term is a constant) with the
own share replaced by a share pooled through a rank-``r`` overlap,

    L_i = h~_i^(-alpha_i) (B_i D^(-beta_i) + C_i),   h~_i = h_i + sum_{j != i} S_ij h_j,
    S = P P^T (diagonal dropped),  P >= 0 of shape (K, r),

``4M + rK`` parameters (``r = 0`` is BiMix; ``r = 1`` is the capacity laws' transfer ``p_i p_j``,
``docs/theory.md`` §7, with ``r`` pools of shared ranks instead of one). The laws are defined
here, not in the library: they are a measurement, not a candidate (the library's registry is
what the experiments fit). Fitted with ``mixscale.fit``'s defaults otherwise (Levenberg–Marquardt
on the per-target structure, ``--restarts`` restarts, seed 0).

Measured on the 2-core machine (8 restarts, beside other jobs), Spearman 1M / 60M, parameters:

    r = 0 (BiMix)   52   0.887 / 0.882
    r = 1           69   0.918 / 0.909
    r = 2           86   0.941 / 0.934
    r = 3          103   0.969 / 0.965
    r = 4          120   0.972 / 0.967

So the ranking grows with the transfer's rank and levels off at DML's 0.972 by r = 3-4; the
additive law's 0.992 needs more than a low-rank linear pool (its per-pair exponents: a
diminishing return per source domain). Within the project's 6K + 4 budget (106 at K = 17) a
rank-3 pool fits (103 here) and would lift the ranking from 0.905 to about 0.97; the capacity
law's other terms leave no room for it at K = M.

    python benchmarks/probe_transfer_rank.py [--ranks 0 1 2 3 4] [--restarts 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import ClassVar

import numpy as np


def _define_law():
    """The probe law, registered in this process only (see the module docstring)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    from mixscale.laws import BiMixLaw
    from mixscale.laws._base import AbstractLaw
    from mixscale.laws._registry import register_law
    from mixscale.laws._terms import (
        EXPONENT_RANGE,
        check_mixture,
        floored_log,
        in_mixture_targets,
        log_range,
        log_uniform,
    )

    @register_law
    class PooledShareBiMix(AbstractLaw):
        """BiMix with the own share pooled through a rank-``r`` overlap ``S = P Pᵀ``."""

        name: ClassVar[str] = "probe_pooled_bimix"
        uses_scale: ClassVar[bool] = True
        variants: ClassVar[tuple[str, ...]] = ()
        per_target_fields: ClassVar[tuple[str, ...]] = ("log_alpha", "log_beta", "log_B",
                                                        "log_C")

        log_alpha: jax.Array  # (M,)
        log_beta: jax.Array  # (M,)
        log_B: jax.Array  # (M,)
        log_C: jax.Array  # (M,)
        log_P: jax.Array  # (K, r), shared by every target
        targets: tuple[int, ...] = eqx.field(static=True)
        n_domains: int = eqx.field(static=True)
        rank: int = eqx.field(static=True, default=1)
        weight_floor: float = eqx.field(static=True, default=1e-3)

        @property
        def n_train_domains(self) -> int:
            return int(self.n_domains)

        def predict(self, h, N, D):
            del N
            h = check_mixture(h, self.n_domains)
            p = jnp.exp(self.log_P)
            overlap = p @ p.T
            pooled = h + (overlap - jnp.diag(jnp.diag(overlap))) @ h
            log_share = floored_log(pooled[jnp.asarray(self.targets)], self.weight_floor)
            return jnp.exp(-jnp.exp(self.log_alpha) * log_share) * (
                jnp.exp(self.log_B - jnp.exp(self.log_beta) * jnp.log(D)) + jnp.exp(self.log_C))

        def natural_parameters(self):
            return {"alpha": jnp.exp(self.log_alpha), "beta": jnp.exp(self.log_beta),
                    "B": jnp.exp(self.log_B), "C": jnp.exp(self.log_C), "P": jnp.exp(self.log_P)}

        @classmethod
        def targets_for(cls, train_domains, loss_domains, **options):
            return in_mixture_targets(train_domains, loss_domains)

        @classmethod
        def n_parameters(cls, n_train_domains, n_targets, *, rank=1, weight_floor=1e-3):
            return 4 * n_targets + rank * n_train_domains

        @classmethod
        def parameter_bounds(cls, summary, *, rank=1, weight_floor=1e-3):
            exponent = log_range(*EXPONENT_RANGE)
            return {"log_alpha": exponent, "log_beta": exponent, "log_P": log_range(1e-4, 3.0)}

        @classmethod
        def nested(cls, **options):
            return ()

        @classmethod
        def init(cls, key, summary, *, rank=1, weight_floor=1e-3):
            """BiMix's own initialisation (:meth:`BiMixLaw.init`) and loadings log-uniform in
            ``[0.01, 1]``."""
            own_key, pool_key = jax.random.split(key)
            own = BiMixLaw.init(own_key, summary, weight_floor=weight_floor)
            k = len(summary.train_domains)
            return cls(log_alpha=own.log_alpha, log_beta=own.log_beta, log_B=own.log_B,
                       log_C=own.log_C, log_P=log_uniform(pool_key, 0.01, 1.0, (k, rank)),
                       targets=own.targets, n_domains=k, rank=rank, weight_floor=weight_floor)

    return PooledShareBiMix


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    parser.add_argument("--restarts", type=int, default=8)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from experiments._common import XLA_FLAGS

    os.environ.setdefault("XLA_FLAGS", XLA_FLAGS)
    import jax

    jax.config.update("jax_enable_x64", True)
    import mixscale
    from experiments._protocols import in_mixture, spearman
    from mixscale.data import load

    law = _define_law()
    train = in_mixture(load("regmix-1m", split="train"))
    tests = {"1M": in_mixture(load("regmix-1m", split="test")),
             "60M": in_mixture(load("regmix-60m"))}
    print(f"RegMix 1M training runs: {train.n_runs} mixtures, K = {len(train.train_domains)}; "
          f"{args.restarts} restarts")
    print(f"{'rank':>4s} {'params':>6s} {'converged':>9s} {'objective':>10s} "
          f"{'Spearman 1M':>11s} {'60M':>6s} {'fit s':>6s}")
    for rank in args.ranks:
        start = time.perf_counter()
        if rank == 0:
            res = mixscale.fit("bimix", train, n_restarts=args.restarts)
        else:
            res = mixscale.fit(law, train, law_options={"rank": rank}, n_restarts=args.restarts)
        wall = time.perf_counter() - start
        scores = []
        for table in tests.values():
            pred = res.predict(table)
            obs = table.select_losses(list(res.targets)).losses
            scores.append(np.mean([spearman(pred[ok, j], obs[ok, j])
                                   for j in range(len(res.targets))
                                   for ok in [np.isfinite(obs[:, j])]]))
        print(f"{rank:4d} {res.n_params:6d} {str(bool(res.law_converged)):>9s} "
              f"{res.objective:10.4g} {scores[0]:11.3f} {scores[1]:6.3f} {wall:6.0f}",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
