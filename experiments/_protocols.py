"""Protocols and metrics that several experiments share: the real-table splits (in-scale and
across-scale, the Pile-4 protocol among them) and the scores of a fit (MRE by own weight, rank
correlation).

Units: ``N`` in millions of parameters, ``D`` in billions of tokens, as the bundled tables.
"""

from __future__ import annotations

import numpy as np

__all__ = ["absent_domain_reference", "absent_domain_summary", "across_scale_tables",
           "evaluate", "in_mixture", "in_scale_table", "own_weights", "pile4_across_scale",
           "ranking_scores", "regmix_rank_tables", "regmix_test_tables", "relative_errors",
           "ridge_loo", "scale_rank_ceiling", "spearman"]


# ----------------------------------------------------------------------------- tables
def in_mixture(table):
    """The table with only its in-mixture loss columns (every law can score those)."""
    return table.select_losses(list(table.in_mixture))


def in_scale_table(name: str):
    """The one-scale table of the in-scale protocol: Pile-4 200M/8B, SlimPajama-7 122M/~10B or
    RegMix-1B, in-mixture losses."""
    from mixscale.data import load, select

    if name == "pile4":
        return in_mixture(select(load("pile4"), model_size=200.0, tokens=8.0))
    if name == "slimpajama7":
        return in_mixture(select(load("slimpajama7"), model_size=122.0, tokens=9.998))
    if name == "regmix-1b":
        return in_mixture(load("regmix-1b"))
    raise ValueError(f"unknown in-scale dataset {name!r}")


def pile4_across_scale(max_200m_tokens: float = 7.0):
    """The Pile-4 across-scale protocol: ``(train, {evaluation name: table})``.

    Trained on every 90M run and the 200M runs with at most ``max_200m_tokens`` (B) tokens;
    evaluated on 200M/8B (24 mixtures, most never seen in training) and on 440M (2 mixtures).
    """
    from mixscale.data import load, select

    p = in_mixture(load("pile4"))
    train = p.take((p.model_size == 90.0)
                   | ((p.model_size == 200.0) & (p.tokens <= max_200m_tokens)))
    return train, {"200M/8B": select(p, model_size=200.0, tokens=8.0),
                   "440M": select(p, model_size=440.0)}


def across_scale_tables(name: str):
    """``(train, {evaluation name: table})`` of an across-scale protocol:
    ``"slimpajama7-122"`` / ``"slimpajama7-122+310"`` (fitted on those sizes, every 680M row
    evaluated) or ``"pile4"`` (:func:`pile4_across_scale`)."""
    from mixscale.data import load, select

    if name.startswith("slimpajama7-"):
        s = in_mixture(load("slimpajama7"))
        sizes = [float(v) for v in name.split("-", 1)[1].split("+")]
        return select(s, model_size=sizes), {"680M": select(s, model_size=680.0)}
    if name == "pile4":
        return pile4_across_scale()
    raise ValueError(f"unknown across-scale protocol {name!r}")


def regmix_rank_tables(n_train_runs: int | None = None):
    """``(train, tests)`` of the RegMix ranking protocol, in-mixture losses: RegMix-1M's training
    runs (the first ``n_train_runs``, ``None``: all 512) and ``{"1M": its 256 test mixtures,
    "60M": the same mixtures at 60M}``."""
    from mixscale.data import load

    train = in_mixture(load("regmix-1m", split="train"))
    if n_train_runs is not None:
        train = train.take(np.arange(n_train_runs))
    return train, regmix_test_tables()


def regmix_test_tables() -> dict:
    """RegMix's 256 test mixtures, in-mixture losses: ``{"1M": ..., "60M": ...}`` (the same
    mixtures, in the same order, at both sizes)."""
    from mixscale.data import load

    return {"1M": in_mixture(load("regmix-1m", split="test")),
            "60M": in_mixture(load("regmix-60m"))}


# ----------------------------------------------------------------------------- metrics
def own_weights(table, targets) -> np.ndarray:
    """``(n, M)``: each row's weight of each target's own training domain."""
    return np.stack([table.weights[:, table.train_domains.index(t)] for t in targets], 1)


def evaluate(res, table) -> dict:
    """Metrics of a fit on any table with the fit's domains (MRE over all entries and over
    entries with own weight >= 0.1), as :func:`mixscale.error_metrics` reports them."""
    from mixscale import error_metrics

    pred = res.predict(table)
    obs = table.select_losses(list(res.targets)).losses
    return error_metrics(pred, obs, res.targets, own_weight=own_weights(table, res.targets))


def ranking_scores(res, table) -> dict:
    """How a fit ranks the runs of ``table``: ``{"mean", "per_domain", "mre"}`` — Spearman's
    correlation of predicted and measured loss per target (over its measured runs), their mean,
    and the MRE (:func:`evaluate`)."""
    pred = res.predict(table)
    obs = table.select_losses(list(res.targets)).losses
    per_domain = {t: spearman(pred[ok, j], obs[ok, j])
                  for j, t in enumerate(res.targets) for ok in [np.isfinite(obs[:, j])]}
    return {"mean": float(np.mean(list(per_domain.values()))), "per_domain": per_domain,
            "mre": evaluate(res, table)["mre"]}


def scale_rank_ceiling(small, large) -> dict:
    """How well the measured losses at one scale rank the same mixtures at another:
    ``{"mean", "per_domain"}``, Spearman's correlation per loss domain of ``small``'s and
    ``large``'s measured losses over the runs measured in both, and their mean.

    A law fitted at the small scale alone, without a size term, can at best rank the large
    runs as the small runs' own losses do: this is that ceiling (it can be exceeded only by a
    law whose errors at the small scale happen to move it towards the large scale's order).

    Raises:
        ValueError: if the tables' runs are not the same mixtures in the same order, or they
            share no loss domain.
    """
    if small.weights.shape != large.weights.shape or not np.allclose(small.weights,
                                                                     large.weights):
        raise ValueError(f"{small.name} and {large.name} must hold the same mixtures in the same "
                         "order to compare their rankings")
    common = [d for d in small.loss_domains if d in large.loss_domains]
    if not common:
        raise ValueError(f"{small.name} and {large.name} share no loss domain")
    a, b = small.select_losses(common).losses, large.select_losses(common).losses
    per_domain = {d: spearman(a[ok, j], b[ok, j]) for j, d in enumerate(common)
                  for ok in [np.isfinite(a[:, j]) & np.isfinite(b[:, j])]}
    return {"mean": float(np.mean(list(per_domain.values()))), "per_domain": per_domain}


#: The ridge penalties :func:`ridge_loo` chooses among by default.
RIDGE_PENALTIES = tuple(10.0 ** np.arange(-4, 5))


def ridge_loo(x: np.ndarray, y: np.ndarray,
              penalties=RIDGE_PENALTIES) -> tuple[np.ndarray, float]:
    """Ridge regression of ``y (n,)`` on ``x (n, p)`` with an unpenalised intercept, its penalty
    chosen among ``penalties`` (default :data:`RIDGE_PENALTIES`) by exact leave-one-out error:
    ``(w (p + 1,), penalty)``, the prediction at ``z (p,)`` being ``w[0] + z @ w[1:]``.

    With the design ``X = [1, x]`` and ``P = diag(0, λ, …, λ)`` the fit is ``ŷ = S y``,
    ``S = X (XᵀX + P)⁻¹ Xᵀ``, and the left-out residual of row ``r`` is exactly
    ``(y_r − ŷ_r) / (1 − S_rr)`` (a linear smoother at a fixed ``λ``)."""
    design = np.column_stack([np.ones(len(y)), x])
    best = None
    for lam in penalties:
        penalty = lam * np.eye(design.shape[1])
        penalty[0, 0] = 0.0
        gram_inv = np.linalg.pinv(design.T @ design + penalty)
        w = gram_inv @ design.T @ y
        leverage = np.einsum("ij,jk,ik->i", design, gram_inv, design)
        loo = (y - design @ w) / (1.0 - np.minimum(leverage, 1.0 - 1e-12))
        score = float(np.mean(loo ** 2))
        if best is None or score < best[0]:
            best = (score, w, float(lam))
    return best[1], best[2]


def absent_domain_reference(train, valid, min_runs: int = 2) -> dict:
    """How well the losses of a domain *absent* from a run's mixture (``h_i = 0``) can be told
    without a law: each validation entry of a loss domain ``i`` that is a training domain, with
    ``h_i = 0`` and a measured loss, predicted (a) by ``i``'s mean loss over the training runs
    without it, and (b) by a ridge regression (:func:`ridge_loo`) of its log loss on the shares
    ``h`` over those runs — a linear model of the mixture, as RegMix's own.

    Returns ``{"n", "n_absent", "n_unscored", "mre_mean", "mre_ridge", "per_domain"}``: the
    validation entries measured, those of an absent domain, those left unscored (their domain
    absent from fewer than ``min_runs`` training runs), the mean relative error of (a) and (b)
    over the scored ones, and per domain ``{"n", "mean", "ridge"}``. Compare the ``h_i = 0``
    class of a fit's validation MRE (:func:`mixscale.error_metrics`' ``mre_absent``): a law
    that does not beat (a) there explains nothing of those entries' spread."""
    n = int(np.isfinite(valid.losses).sum())
    per_domain, n_absent, unscored = {}, 0, 0
    errors_mean, errors_ridge = [], []
    for k, domain in enumerate(valid.loss_domains):
        if domain not in valid.train_domains:
            continue
        own = valid.train_domains.index(domain)
        seen = (train.weights[:, own] == 0) & np.isfinite(train.losses[:, k])
        asked = (valid.weights[:, own] == 0) & np.isfinite(valid.losses[:, k])
        n_absent += int(asked.sum())
        if not asked.any():
            continue
        if seen.sum() < min_runs:
            unscored += int(asked.sum())
            continue
        obs = valid.losses[asked, k]
        mean = np.abs(train.losses[seen, k].mean() / obs - 1.0)
        w, _ = ridge_loo(train.weights[seen], np.log(train.losses[seen, k]))
        ridge = np.abs(np.exp(w[0] + valid.weights[asked] @ w[1:]) / obs - 1.0)
        errors_mean += list(mean)
        errors_ridge += list(ridge)
        per_domain[domain] = {"n": int(asked.sum()), "mean": float(mean.mean()),
                              "ridge": float(ridge.mean())}
    return {"n": n, "n_absent": n_absent, "n_unscored": unscored,
            "mre_mean": float(np.mean(errors_mean)) if errors_mean else float("nan"),
            "mre_ridge": float(np.mean(errors_ridge)) if errors_ridge else float("nan"),
            "per_domain": per_domain}


def absent_domain_summary(rows: list[dict]) -> dict:
    """What :func:`absent_domain_reference`'s rows, one per split, say together:
    ``{"share", "mre_mean", "mre_ridge", "points", "per_domain", "n_unscored"}`` — the absent
    entries' share of every held-out entry (pooled over the splits); per split, the two
    predictors' MRE and the points those entries add to the MRE over every entry at the mean's
    error (``n_absent · mre_mean / n``); per domain, the mean's MRE averaged over the splits
    that hold it, largest first; the unscored entries in all."""
    domains = {d for r in rows for d in r["per_domain"]}
    per = {d: float(np.mean([r["per_domain"][d]["mean"] for r in rows if d in r["per_domain"]]))
           for d in domains}
    return {"share": sum(r["n_absent"] for r in rows) / sum(r["n"] for r in rows),
            "mre_mean": [r["mre_mean"] for r in rows],
            "mre_ridge": [r["mre_ridge"] for r in rows],
            "points": [r["n_absent"] * r["mre_mean"] / r["n"] for r in rows],
            "per_domain": dict(sorted(per.items(), key=lambda kv: -kv[1])),
            "n_unscored": sum(r["n_unscored"] for r in rows)}


def relative_errors(res, table) -> tuple[np.ndarray, np.ndarray]:
    """``(rel, own)``, both ``(n, M)``: the fit's relative error ``|pred - obs| / obs`` on every
    entry of ``table`` (NaN where a loss is missing) and the entry's own weight."""
    pred = np.asarray(res.predict(table))
    obs = table.select_losses(list(res.targets)).losses
    return np.abs(pred - obs) / obs, own_weights(table, res.targets)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (Pearson correlation of average ranks; ties share a rank)."""
    def ranks(v):
        order = np.argsort(v, kind="stable")
        r = np.empty(v.size)
        r[order] = np.arange(v.size, dtype=float)
        _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
        sums = np.bincount(inverse, weights=r)
        return (sums / counts)[inverse]

    rx, ry = ranks(np.asarray(x, float)), ranks(np.asarray(y, float))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx @ ry) / np.sqrt((rx @ rx) * (ry @ ry)))
