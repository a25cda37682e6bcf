"""Figures of a user's fit and of its optimal mixture, each written as one PNG.

* :func:`plot_fit`: three panels — predicted against measured loss for every target; the
  relative residual of each target against its own training-domain weight; and loss against
  tokens for each model size, measured points and the law's curves for the mixtures with the most
  runs. With bootstrap replicates, the first panel has 90 % percentile intervals as error bars
  and the curves a 90 % percentile band.
* :func:`plot_optimum`: the optimal weight of each training domain with its bootstrap interval
  and the replicates' optima as dots, and the histogram of the replicates' weighted mean loss at
  the point estimate's mixture.

Both draw on a bare :class:`matplotlib.figure.Figure` with the Agg canvas: no ``pyplot`` state,
no display, nothing changed globally. Losses are in the table's units (cross-entropy, as
measured); sizes and tokens are printed in parameters and tokens.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["plot_fit", "plot_optimum"]

#: Nominal coverage of the intervals drawn.
LEVEL = 0.9
_CURVE_MIXTURES = 3


def _figure(width: float, height: float, ncols: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    return fig, np.atleast_1d(axes)


def _count(value: float) -> str:
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _colours(n: int):
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _mixture_label(h, names, top: int = 3) -> str:
    """``"c4 0.42, commoncrawl 0.35, wikipedia 0.15, …"``: a mixture by its largest weights."""
    order = np.argsort(-np.asarray(h), kind="stable")
    parts = [f"{names[i]} {h[i]:.2f}" for i in order[:top]]
    return ", ".join(parts) + (", …" if len(h) > top else "")


def plot_fit(result, table, path: str | os.PathLike, *, title: str | None = None) -> None:
    """Draw a fit against the runs of ``table`` and save it as a PNG.

    Args:
        result: a :class:`mixscale.FitResult` (with or without bootstrap replicates).
        table: runs with the law's training domains (in any column order) and units (the
            training table, or new runs).
        path: the PNG to write.
        title: the figure's title (default: the law and the table's name).
    """
    import equinox as eqx
    import jax

    from ._bootstrap import predict_replicates, prediction_intervals
    from ._evaluate import own_weight

    table = table.in_train_order(result.train_domains)  # its weight columns in the law's order
    pred = result.predict(table)                                   # (n, M)
    targets = list(result.targets)
    measured = table.select_losses(targets).losses
    own = own_weight(table, targets)
    boot = result.bootstrap if result.bootstrap is not None and result.bootstrap.n_ok >= 2 \
        else None
    err = None
    if boot is not None:
        iv = prediction_intervals(result, table.weights, table.model_size, table.tokens,
                                  level=LEVEL)
        err = np.stack([np.maximum(pred - iv.lower, 0), np.maximum(iv.upper - pred, 0)])
    colours = _colours(len(targets))
    fig, (ax_pm, ax_res, ax_tok) = _figure(17.0, 5.4, 3)

    # 1. predicted against measured
    for j, (name, c) in enumerate(zip(targets, colours, strict=True)):
        ok = np.isfinite(measured[:, j])
        if err is not None:
            ax_pm.errorbar(measured[ok, j], pred[ok, j], yerr=err[:, ok, j], fmt="none",
                           ecolor=c, alpha=0.35, lw=0.8)
        ax_pm.scatter(measured[ok, j], pred[ok, j], s=14, color=c, label=name, zorder=3)
    finite = np.concatenate([measured[np.isfinite(measured)], pred[np.isfinite(measured)]])
    lo, hi = float(finite.min()), float(finite.max())
    pad = 0.03 * (hi - lo + 1e-12)
    ax_pm.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.4", lw=1, ls="--",
               label="predicted = measured")
    ax_pm.set_xlabel("measured loss")
    ax_pm.set_ylabel("predicted loss" + (f" ({100 * LEVEL:.0f} % bootstrap interval)"
                                         if err is not None else ""))
    ax_pm.set_title("predicted against measured, per domain")
    ax_pm.legend(fontsize=8, ncol=2 if len(targets) > 6 else 1, loc="upper left")
    ax_pm.grid(alpha=0.3)

    # 2. residuals against the domain's own weight
    rel = 100.0 * (pred - measured) / measured
    drawn = 0
    for j, (name, c) in enumerate(zip(targets, colours, strict=True)):
        ok = np.isfinite(rel[:, j]) & np.isfinite(own[:, j])
        if ok.any():
            ax_res.scatter(own[ok, j], rel[ok, j], s=14, color=c, label=name)
            drawn += 1
    ax_res.axhline(0.0, color="0.4", lw=1, ls="--")
    ax_res.set_xlabel("the domain's own weight $h_i$ in the mixture")
    ax_res.set_ylabel("relative residual (predicted − measured) / measured  (%)")
    skipped = len(targets) - drawn
    ax_res.set_title("residuals against own weight" + (
        f"\n({skipped} out-of-mixture domain(s) have no own weight)" if skipped else ""))
    if drawn:
        ax_res.legend(fontsize=8, ncol=2 if drawn > 6 else 1)
    ax_res.grid(alpha=0.3)

    # 3. loss against tokens per model size, with the law's curves
    law = result.law
    if not type(law).uses_scale:
        ax_tok.text(0.5, 0.5, f"law {type(law).name!r} has no model-size\nor token terms",
                    ha="center", va="center", transform=ax_tok.transAxes)
        ax_tok.set_axis_off()
    else:
        from .data import mixture_ids

        ids = mixture_ids(table)
        counts = np.bincount(ids)
        chosen = np.argsort(-counts, kind="stable")[:_CURVE_MIXTURES]
        sizes = np.unique(table.model_size)
        markers = ["o", "s", "^", "D", "v", "P"]
        styles = ["-", "--", ":", "-."]
        tokens = table.tokens[np.isin(ids, chosen)]
        grid = np.geomspace(tokens.min() / 2, tokens.max() * 2, 60)
        params, static = eqx.partition(law, eqx.is_inexact_array)
        one = jax.tree_util.tree_map(lambda x: np.asarray(x)[None], params)
        mix_colours = _colours(len(chosen))
        for g, c in zip(chosen, mix_colours, strict=True):
            rows = np.flatnonzero(ids == g)
            h = table.weights[rows[0]]
            for s_i, size in enumerate(sizes):
                ls, mk = styles[s_i % len(styles)], markers[s_i % len(markers)]
                curve = predict_replicates(one, static, np.tile(h, (len(grid), 1)), size,
                                           grid)[0].mean(axis=1)
                ax_tok.plot(grid * table.token_unit, curve, color=c, ls=ls, lw=1.5)
                if boot is not None:
                    band = predict_replicates(boot.params, static, np.tile(h, (len(grid), 1)),
                                              size, grid).mean(axis=2)
                    band = band[np.all(np.isfinite(band), axis=1)]
                    if len(band) >= 2:
                        q = np.quantile(band, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], axis=0,
                                        method="weibull")
                        ax_tok.fill_between(grid * table.token_unit, q[0], q[1], color=c,
                                            alpha=0.15, lw=0)
                at = rows[table.model_size[rows] == size]
                y = measured[at]
                full = np.all(np.isfinite(y), axis=1)
                if full.any():
                    ax_tok.scatter(table.tokens[at][full] * table.token_unit,
                                   y[full].mean(axis=1), color=c, marker=mk, s=24, zorder=3)
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=c, lw=2,
                          label=_mixture_label(table.weights[np.flatnonzero(ids == g)[0]],
                                               table.train_domains))
                   for g, c in zip(chosen, mix_colours, strict=True)]
        handles += [Line2D([], [], color="0.3", ls=styles[i % len(styles)],
                           marker=markers[i % len(markers)],
                           label=f"N = {_count(size * table.size_unit)} parameters")
                    for i, size in enumerate(sizes)]
        if boot is not None:
            from matplotlib.patches import Patch

            handles.append(Patch(color="0.5", alpha=0.3,
                                 label=f"{100 * LEVEL:.0f} % bootstrap band"))
        ax_tok.legend(handles=handles, fontsize=7.5, loc="upper right")
        ax_tok.set_xscale("log")
        ax_tok.set_xlabel("training tokens D")
        ax_tok.set_ylabel(f"mean loss over the {len(targets)} domains")
        ax_tok.set_title("loss against tokens: runs (points) and the law (lines)\n"
                         f"for the {len(chosen)} mixture(s) with the most runs")
        ax_tok.grid(alpha=0.3, which="both")
    fig.suptitle(title or f"{result.spec.label} on {table.name}: {table.n_runs} runs"
                 + (f", {boot.n_ok} bootstrap replicates" if boot is not None else ""))
    fig.savefig(path, dpi=110)


def plot_optimum(optimum, train_domains, path: str | os.PathLike, *,
                 title: str | None = None) -> None:
    """Draw an optimal mixture (and, for a bootstrapped fit, its spread) and save it as a PNG.

    Args:
        optimum: a :class:`mixscale.MixtureIntervals` (bars with intervals, replicate optima
            and the histogram) or a plain :class:`mixscale.MixtureResult` (bars only).
        train_domains: the ``K`` training-domain names.
        path: the PNG to write.
        title: the figure's title.
    """
    from ._mixture_intervals import MixtureIntervals

    boot = optimum if isinstance(optimum, MixtureIntervals) else None
    point = optimum.point if boot is not None else optimum
    names = list(train_domains)
    k = len(names)
    fig, axes = _figure(14.0 if boot is not None else 7.5, max(4.0, 0.45 * k + 1.8),
                        2 if boot is not None else 1)
    ax = axes[0]
    y = np.arange(k)
    ax.barh(y, point.weights, color="tab:blue", alpha=0.75, label="point estimate's optimum")
    if boot is not None:
        iv = boot.weights
        ax.errorbar(point.weights, y, xerr=np.stack([np.maximum(point.weights - iv.lower, 0),
                                                     np.maximum(iv.upper - point.weights, 0)]),
                    fmt="none", ecolor="black", capsize=4, lw=1.5,
                    label=f"{100 * iv.level:.0f} % bootstrap interval")
        jitter = np.random.default_rng(0).uniform(-0.25, 0.25, iv.samples.shape)
        ax.scatter(iv.samples.ravel(), (y[None, :] + jitter).ravel(), s=5, color="tab:red",
                   alpha=0.35, label="replicates' optima", zorder=3)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(0, min(1.0, max(0.05, 1.1 * float(np.max(
        boot.weights.samples if boot is not None else point.weights)))))
    ax.set_xlabel("weight in the optimal mixture (share of training tokens)")
    ax.set_title("optimal weight per training domain" + (
        f"\n(replicates' optima lie a median L1 distance {np.median(boot.distance):.3f} "
        "from the point's)" if boot is not None else ""))
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3)
    ax.grid(alpha=0.3, axis="x")
    if boot is not None:
        ax2 = axes[1]
        vals = boot.objective_at_point
        ax2.hist(vals, bins=max(8, min(40, len(vals) // 3)), color="tab:orange", alpha=0.8,
                 label=f"replicate laws at h* ({len(vals)})")
        ax2.axvline(point.objective, color="black", lw=2,
                    label=f"point law at h*: {point.objective:.4f}")
        lo, hi = np.quantile(vals, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], method="weibull")
        ax2.axvspan(lo, hi, color="0.5", alpha=0.15, label=f"{100 * LEVEL:.0f} % interval: "
                    f"[{lo:.4f}, {hi:.4f}]")
        ax2.set_xlabel("weighted mean predicted loss at the point optimum h* (loss units)")
        ax2.set_ylabel("replicates")
        ax2.set_title("objective at h* under each bootstrap replicate\n"
                      f"(median regret of h* against the replicate's own optimum: "
                      f"{np.median(boot.regret):.2g} in loss)")
        ax2.legend(fontsize=8)
        ax2.grid(alpha=0.3)
    fig.suptitle(title or "optimal mixture")
    fig.savefig(path, dpi=110)
