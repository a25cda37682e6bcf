r"""Extrapolation across scale on real runs: predicted against measured losses at the larger
model, the ranking of its mixtures, and how each law's optimal mixture moves with scale.

No language model is trained here; the question is prediction from the bundled loss tables.

* **SlimPajama-7** (7 domains, 60 mixtures at 122M and 310M parameters, 40 of them at 680M,
  11 token checkpoints each; N in millions of parameters, D in billions of tokens). Every law with
  model-size or token terms is fitted (a) on the 122M runs only (all checkpoints; the paper fits
  122M/~10B) and (b) on 122M + 310M, and predicts every 680M row: MRE over all entries and over
  entries whose own weight is ``h_i >= 0.1``.
* **Pile-4** (4 domains): fitted on all 90M runs and the 200M runs with at most
  ``pile4_max_200m_tokens`` (7B) tokens — ``_protocols.pile4_across_scale``, the protocol
  ``compare_laws`` uses across scales — and evaluated on 200M/8B (24 mixtures, 19 never seen
  in training: a ranking test at held-out tokens) and on 440M (2 mixtures at 6B and 8B tokens:
  only a pairwise order check).

Laws: the capacity law (variants ``full``, ``tied``, ``capacity``), Shukor et al.'s ``additive``
and ``joint`` laws, and BiMix. BiMix has a token term but no model-size term: it predicts the
same loss at 680M as at 122M for the same tokens, so its across-scale errors measure what a
size-blind law misses, and its optimal mixture moves with ``D`` only. The capacity-only variant
has no token term (its optimum moves with ``N`` only). Laws without scale terms (DML,
regression) cannot be fitted across scales and are left out.

Ranking. For each evaluation scale, the measured mean loss over the in-mixture domains of every
bundled mixture (runs with every domain measured) is compared with each law's predicted mean:
Spearman rank correlation; the law's pick among the measured mixtures (lowest predicted mean), its
measured rank (1 = best) and regret (its measured mean minus the best measured mean, nats); and
the measured mixture nearest (L1) to the law's continuous optimum at that scale, with its rank.

Optimal mixture vs scale. ``mixscale.optimal_mixture`` of each fitted law, minimising the mean
predicted loss over the in-mixture domains, at the fitted scale and at larger ones (SlimPajama:
122M/10B, 680M/25.9B (the table's largest), 1B/30B (the paper's Fig. 4 target); Pile-4: 200M/8B,
440M/8B, 700M/16B (the paper's Fig. 3 target)); the shift is the L1 distance between the optimum
at the first and at the last scale.

Fitting: ``mixscale.fit`` with the same objective, restarts and seed for every law and the
fitter's one policy (:func:`experiments._common.fit_law`: Levenberg–Marquardt on each law's
per-target structure, inside its parameter ranges, started also from its nested variants);
whether each fit converged (the gradient test) is recorded with it.

Cost: ``elapsed_s`` in the JSON (wall time of the full run); ``--quick`` (2 laws, 1 restart,
few steps, Pile-4 only): well under a minute.

Run: ``python -m experiments.real_extrapolation [--quick] [--redraw] [--out DIR]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from experiments import _across_scale as across
from experiments._common import (
    N_RESTARTS,
    Timer,
    fit_law,
    fit_nested_first,
    fit_record,
    markdown_table,
    spec_label,
    unfitted_laws_lines,
    with_spectral,
    write_section,
)
from experiments._figures import pyplot, save_figure
from experiments._harness import run_experiment
from experiments._protocols import across_scale_tables, evaluate, pile4_across_scale, spearman
from mixscale import LawSpec, law_specs

NAME = "real_extrapolation"

PROTOCOLS = ("slimpajama7-122", "slimpajama7-122+310", "pile4")
TITLES = {"slimpajama7-122": "SlimPajama-7: 122M → 680M",
          "slimpajama7-122+310": "SlimPajama-7: 122M+310M → 680M"}


def protocol_title(protocol: str, pile4_max_200m_tokens: float) -> str:
    """A protocol's title in figures and tables."""
    if protocol in TITLES:
        return TITLES[protocol]
    return f"Pile-4: 90M + 200M≤{pile4_max_200m_tokens:g}B → 200M/8B, 440M"


#: An optimum "moves" with scale when its L1 shift exceeds this.
SHIFT_THRESHOLD = 0.01

@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that sets the numbers; the defaults are the full run.

    Scales are ``(N, D)`` pairs in law units (millions of parameters, billions of tokens).
    """

    #: every law with model-size or token terms, in registration order, then the spectral law
    laws: tuple[LawSpec, ...] = with_spectral(law_specs(uses_scale=True))
    protocols: tuple[str, ...] = PROTOCOLS
    #: Pile-4 training rows: all 90M runs and the 200M runs with at most this many tokens (B)
    pile4_max_200m_tokens: float = 7.0
    n_restarts: int = N_RESTARTS
    fit_seed: int = 0
    max_steps: int | None = None  # the fitter's default (1000)
    slimpajama_scales: tuple[tuple[float, float], ...] = ((122.0, 9.998), (680.0, 25.92),
                                                          (1000.0, 30.0))
    pile4_scales: tuple[tuple[float, float], ...] = ((200.0, 8.0), (440.0, 8.0), (700.0, 16.0))
    mixture_starts: int = 16
    mixture_seed: int = 0
    quick: bool = False

    def __post_init__(self):
        unknown = [p for p in self.protocols if p not in PROTOCOLS]
        if unknown:
            raise ValueError(f"unknown protocols {unknown}; choose from {PROTOCOLS}")
        no_scale = [s.label for s in self.laws if not s.uses_scale]
        if no_scale:
            raise ValueError(f"laws {no_scale} have no model-size or token terms and cannot be "
                             "fitted across scales")
        if self.n_restarts < 1 or self.mixture_starts < 1:
            raise ValueError("n_restarts and mixture_starts must be at least 1")
        for scales in (self.slimpajama_scales, self.pile4_scales):
            if not scales or any(len(s) != 2 or min(s) <= 0 for s in scales):
                raise ValueError(f"scales must be non-empty (N > 0, D > 0) pairs, got {scales}")


#: The smoke run (seconds): two laws, one restart, few steps, Pile-4 only.
QUICK = Config(laws=(LawSpec("capacity", variant="tied"), LawSpec("bimix")), protocols=("pile4",),
               n_restarts=1, max_steps=20, mixture_starts=2, quick=True)


# ----------------------------------------------------------------------------- data
def protocol_tables(protocol: str, config: Config):
    """``(train, {evaluation name: table}, {ranking name: (table, (N, D))}, scales)``.

    The ranking tables hold one run per mixture at one scale (the largest token count of the
    evaluation model), on which the measured mean losses of the mixtures are compared.
    """
    from mixscale.data import select

    if protocol.startswith("slimpajama7-"):
        train, evals = across_scale_tables(protocol)
        big = evals["680M"]
        d_max = float(big.tokens.max())
        ranking = {f"680M/{d_max:g}B": (select(big, tokens=d_max), (680.0, d_max))}
        return train, evals, ranking, config.slimpajama_scales
    train, evals = pile4_across_scale(config.pile4_max_200m_tokens)
    ranking = {"200M/8B": (evals["200M/8B"], (200.0, 8.0)),
               "440M/8B": (select(evals["440M"], tokens=8.0), (440.0, 8.0))}
    return train, evals, ranking, config.pile4_scales


# ----------------------------------------------------------------------------- helpers
def measured_rank(values: np.ndarray, index: int) -> int:
    """1-based rank of ``values[index]`` among ``values`` (1 = lowest; ties share the best)."""
    values = np.asarray(values, dtype=float)
    return int(1 + np.sum(values < values[index]))


def ranking_summary(pred: np.ndarray, obs: np.ndarray, weights: np.ndarray,
                    optimum: np.ndarray) -> dict:
    """How well predicted mean losses order a set of measured mixtures.

    Args:
        pred: ``(n,)`` predicted mean loss of each mixture (nats).
        obs: ``(n,)`` measured mean loss of each mixture (nats).
        weights: ``(n, K)`` the mixtures.
        optimum: ``(K,)`` the law's optimal mixture at this scale.

    Returns:
        ``spearman`` (NaN for fewer than 2 mixtures); ``best`` (index of the measured best),
        ``best_measured``, ``pred_at_best``; ``pick`` (index of the lowest prediction), its
        ``pick_measured``, ``pick_rank`` (1 = measured best) and ``regret`` (``pick_measured -
        best_measured``, nats); ``nearest`` (the mixture closest to ``optimum`` in L1),
        ``nearest_l1``, ``nearest_rank``.
    """
    pred, obs = np.asarray(pred, float), np.asarray(obs, float)
    if pred.shape != obs.shape or pred.ndim != 1 or pred.size == 0:
        raise ValueError(f"pred and obs must be equal non-empty 1-D arrays, got {pred.shape} "
                         f"and {obs.shape}")
    weights = np.asarray(weights, float)
    best, pick = int(np.argmin(obs)), int(np.argmin(pred))
    l1 = np.abs(weights - np.asarray(optimum, float)[None, :]).sum(axis=1)
    nearest = int(np.argmin(l1))
    return {"n_mixtures": int(obs.size),
            "spearman": spearman(pred, obs) if obs.size > 1 else float("nan"),
            "best": best, "best_measured": float(obs[best]), "pred_at_best": float(pred[best]),
            "pick": pick, "pick_measured": float(obs[pick]), "pick_rank": measured_rank(obs, pick),
            "regret": float(obs[pick] - obs[best]), "nearest": nearest,
            "nearest_l1": float(l1[nearest]), "nearest_rank": measured_rank(obs, nearest)}


def _fits(specs, train, config: Config) -> dict:
    """``{spec: (fit, wall seconds)}`` of the laws ``specs`` on ``train``, each after the
    variants nested in it and started from their fits
    (:func:`experiments._common.fit_nested_first`)."""
    return fit_nested_first(specs, lambda spec, nested: fit_law(
        spec, train, n_restarts=config.n_restarts, seed=config.fit_seed,
        max_steps=config.max_steps, nested=nested))


def _optimum(res, k: int, scale, config: Config) -> dict:
    from mixscale import optimal_mixture

    m = optimal_mixture(res.law, float(scale[0]), float(scale[1]), n_train_domains=k,
                        n_starts=config.mixture_starts, seed=config.mixture_seed)
    return {"N": float(scale[0]), "D": float(scale[1]), "weights": m.weights,
            "pred_mean_loss": m.objective, "stationarity": m.stationarity,
            "converged": m.converged}


# ----------------------------------------------------------------------------- run
def run_protocol(protocol: str, config: Config, log) -> dict:
    """Fit every law on the protocol's training rows; predictions, rankings and optima."""
    train, evals, ranking, scales = protocol_tables(protocol, config)
    k = train.n_train_domains
    out = {"protocol": protocol, "train_domains": list(train.train_domains),
           "targets": list(train.loss_domains), "n_train_rows": train.n_runs,
           "train_scales": sorted(set(zip(train.model_size.tolist(), train.tokens.tolist(),
                                          strict=True))),
           "measured": {name: t.losses for name, t in evals.items()},
           "ranking_measured": {}, "laws": []}
    for name, (t, _) in ranking.items():
        ok = np.isfinite(t.losses).all(axis=1)
        out["ranking_measured"][name] = {"weights": t.weights[ok],
                                         "mean_loss": t.losses[ok].mean(axis=1)}
    fits = _fits(config.laws, train, config)
    for spec in config.laws:
        timer = Timer()
        res = fits[spec][0]
        row = {"law": spec.label, "n_params": res.n_params, "method": res.method,
               "fit_s": float(res.timings["total_s"]),
               **fit_record(res), "train_mre": res.train_metrics["mre"], "evaluations": {},
               "predicted": {}, "optima": [], "ranking": {}}
        for name, t in evals.items():
            e = evaluate(res, t)
            row["evaluations"][name] = {key: e[key] for key in
                                        ("mre", "mre_high_weight", "n", "n_high_weight",
                                         "per_domain_mre")}
            row["predicted"][name] = np.round(res.predict(t), 5)
        optima = {}
        for scale in list(scales) + [s for _, s in ranking.values()]:
            key = (float(scale[0]), float(scale[1]))
            if key not in optima:
                optima[key] = _optimum(res, k, key, config)
        row["optima"] = [optima[(float(s[0]), float(s[1]))] for s in scales]
        first, last = row["optima"][0]["weights"], row["optima"][-1]["weights"]
        row["optimum_shift_l1"] = float(np.abs(last - first).sum())
        for name, (t, scale) in ranking.items():
            ok = np.isfinite(t.losses).all(axis=1)
            pred = res.predict(t)[ok].mean(axis=1)
            row["ranking"][name] = ranking_summary(
                pred, out["ranking_measured"][name]["mean_loss"], t.weights[ok],
                optima[(float(scale[0]), float(scale[1]))]["weights"])
            row["ranking"][name]["pred_at_optimum"] = optima[
                (float(scale[0]), float(scale[1]))]["pred_mean_loss"]
        out["laws"].append(row)
        log.info("%-20s %-20s %3d params %-5s %s  %.0fs", protocol, spec.label, res.n_params,
                 res.method, "  ".join(f"{n}: MRE {100 * v['mre']:.2f}%"
                                       for n, v in row["evaluations"].items()), timer())
    return out


def run(config: Config, log) -> dict:
    return {"protocols": [run_protocol(p, config, log) for p in config.protocols]}


#: Each protocol is a part (``--add-law LABEL --part pile4``): a law's fits on one protocol are
#: merged into the record's item of that protocol, the others untouched.
PARTS = {p: (lambda c, p=p: dataclasses.replace(c, protocols=(p,))) for p in PROTOCOLS}


# ----------------------------------------------------------------------------- figures
_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
           "tab:pink")


def _grid(plt, n: int, width: float = 12.0, height_per_row: float = 3.6):
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width, height_per_row * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()[:n]


def figure_scatter(results: dict, protocols: Sequence[str], filename: str, out, title: str):
    """Predicted against measured per-domain losses of the evaluation rows, a panel per law,
    one colour per (protocol, evaluation set)."""
    plt = pyplot()
    sel = [p for p in results["protocols"] if p["protocol"] in protocols]
    labels = list(dict.fromkeys(row["law"] for p in sel for row in p["laws"]))
    fig, axes = _grid(plt, len(labels))
    for ax, label in zip(axes, labels, strict=True):
        lo, hi = np.inf, -np.inf
        c = 0
        for p in sel:
            row = across.law_row(p, label)
            if row is None:  # not fitted on this protocol (yet)
                continue
            for name, obs in p["measured"].items():
                obs = np.asarray(obs, float)
                pred = np.asarray(row["predicted"][name], float)
                ok = np.isfinite(obs)
                mre = 100 * row["evaluations"][name]["mre"]
                sizes = p["protocol"].split("-", 1)[-1].split("+")
                tag = f"fit {'+'.join(f'{v}M' for v in sizes)}" if len(sel) > 1 else name
                ax.scatter(obs[ok], pred[ok], s=4, alpha=0.35, color=_COLORS[c],
                           label=f"{tag} (MRE {mre:.1f}%)", rasterized=True)
                lo = min(lo, obs[ok].min(), pred[ok].min())
                hi = max(hi, obs[ok].max(), pred[ok].max())
                c += 1
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8, label="identity")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("measured loss (nats/token)")
        ax.set_ylabel("predicted loss (nats/token)")
        ax.legend(fontsize=7, loc="upper left", markerscale=3)
    fig.suptitle(title, fontsize=11)
    # leave the suptitle its own band (about 0.4 inch) above the first row's titles
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))
    return save_figure(fig, out, filename)


def figure_mixtures(protocol: dict, title: str, filename: str, out):
    """Each law's optimal mixture (stacked bars over domains) at each scale."""
    plt = pyplot()
    laws = protocol["laws"]
    domains = protocol["train_domains"]
    fig, axes = _grid(plt, len(laws))
    cmap = plt.get_cmap("tab10")
    for ax, row in zip(axes, laws, strict=True):
        ticks = [f"{o['N']:g}M\n{o['D']:g}B" for o in row["optima"]]
        x = np.arange(len(ticks))
        bottom = np.zeros(len(ticks))
        for j, d in enumerate(domains):
            w = np.array([np.asarray(o["weights"], float)[j] for o in row["optima"]])
            ax.bar(x, w, bottom=bottom, color=cmap(j), width=0.6, label=d)
            bottom += w
        ax.set_xticks(x, ticks, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"{row['law']} (shift L1 {row['optimum_shift_l1']:.2f})", fontsize=10)
        ax.set_ylabel("optimal weight")
        ax.set_xlabel("model size (params) / tokens")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(domains), fontsize=8,
               bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(f"Optimal mixture (mean loss over domains) vs scale — "
                 f"{title}", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 1 - 0.4 / fig.get_figheight()))
    return save_figure(fig, out, filename)


def figures(record: dict, out) -> list[str]:
    """Every figure, drawn from the JSON record; their file names."""
    results = record["results"]
    max_tokens = record["config"]["pile4_max_200m_tokens"]
    names = []
    present = [p["protocol"] for p in results["protocols"]]
    sp = [p for p in present if p.startswith("slimpajama7-")]
    if sp:
        names.append(figure_scatter(results, sp, f"{NAME}_slimpajama_scatter.png", out,
                                    "SlimPajama-7: predicted vs measured losses of every 680M "
                                    "run").name)
    if "pile4" in present:
        title = protocol_title("pile4", max_tokens)
        names.append(figure_scatter(results, ["pile4"], f"{NAME}_pile4_scatter.png", out,
                                    f"{title}: predicted vs measured held-out losses").name)
    for p in results["protocols"]:
        names.append(figure_mixtures(p, protocol_title(p["protocol"], max_tokens),
                                     f"{NAME}_mixtures_{p['protocol']}.png", out).name)
    return names


# ----------------------------------------------------------------------------- report
def section(record: dict, figure_names: Sequence[str]) -> str:
    """The markdown section, generated from the JSON record alone."""
    cfg, protos = record["config"], record["results"]["protocols"]
    labels = [spec_label(d) for d in cfg["laws"]]
    lines = ["## Extrapolation across scale on real runs (SlimPajama-7, Pile-4)", "",
             f"Every law with model-size or token terms ({', '.join(labels)}) was fitted with "
             f"`mixscale.fit` ({cfg['n_restarts']} restarts, seed {cfg['fit_seed']}; "
             "the fitter's one policy, Levenberg–Marquardt on the law's structure with nested "
             "starts) on the smaller scales and asked to predict "
             "the larger one: SlimPajama-7 fitted on 122M (all token checkpoints) and on "
             "122M + 310M, predicting every 680M run; Pile-4 fitted on all 90M runs and the 200M "
             f"runs with ≤ {cfg['pile4_max_200m_tokens']:g}B tokens, predicting 200M/8B "
             "(24 mixtures, most never seen) and 440M (2 mixtures). MRE in percent over all "
             "entries and over entries whose own weight is h_i ≥ 0.1. The mixtures at the "
             "largest measured scale are then ranked by their measured mean loss and by each "
             "law's prediction, and each law's optimal mixture (minimum predicted mean loss "
             "over the domains, `mixscale.optimal_mixture`) is followed from the fitted scale "
             "to larger ones. BiMix has no model-size term (it predicts 680M like 122M at equal "
             "tokens; its optimum moves with tokens only); the capacity-only variant has no "
             "token term (its optimum moves with model size only). "
             + ("Quick smoke configuration: numbers are not meaningful. " if cfg["quick"]
                else "") + f"Run time {record['elapsed_s'] / 60:.1f} min.", ""]
    lines += unfitted_laws_lines(NAME, Config().laws, labels, cfg["quick"])
    for label in labels:
        missing = [p["protocol"] for p in protos if across.law_row(p, label) is None]
        if missing:
            lines += [f"{label} is not yet fitted on {', '.join(missing)} (`python -m "
                      f"experiments.{NAME} --add-law '{label}' --part PROTOCOL`, one protocol "
                      "at a time).", ""]
    for name in figure_names:
        lines += [f"![{name[:-4].replace('_', ' ')}]({name})", ""]
    # -- MRE table
    cols = across.table_columns(protos)
    lines += ["### Prediction error at the larger scale", "", *across.error_table(record), ""]
    rows = []
    for label in labels:
        cells = [label]
        for p, e in cols:
            r = across.law_row(across.protocol(protos, p), label)
            if r is None:
                cells.append("not yet fitted")
                continue
            bias, rare = signed_error(r, across.protocol(protos, p), e)
            cells.append(f"{bias:+.2f} / {across.pct(rare)}")
        rows.append(cells)
    lines += ["Signed error (mean of predicted / measured − 1 over every entry, %: positive = "
              "the law predicts a higher loss than measured) and MRE on the entries whose own "
              "weight is h_i < 0.1 (%), at the larger scale:", "",
              markdown_table(["law"] + [f"{across.SHORT[p]} → {e}: bias / h<0.1" for p, e in cols],
                             rows), ""]
    short = [f"{r['law']} ({p['protocol']})" for p in protos for r in p["laws"]
             if not r.get("law_converged", r["converged"] > 0)]
    if short:
        lines += [f"Not converged (the gradient test) within the step cap: {', '.join(short)}"
                  " (their errors may be higher than a longer fit would give).", ""]
    for p in protos:
        best = min(p["laws"], key=lambda r: min(v["mre"] for v in r["evaluations"].values()))
        title = protocol_title(p["protocol"], cfg["pile4_max_200m_tokens"])
        lines.append(f"* {title}: lowest MRE: {best['law']} ("
                     + ", ".join(f"{e} {across.pct(v['mre'])} %" for e, v in
                                 best["evaluations"].items()) + ").")
    lines.append("")
    # -- ranking table
    rows = []
    for p in protos:
        for rname in p["ranking_measured"]:
            for r in p["laws"]:
                s = r["ranking"][rname]
                rows.append([p["protocol"], rname, r["law"], s["n_mixtures"], s["spearman"],
                             f"{s['pick_rank']}/{s['n_mixtures']}", s["regret"],
                             s["best_measured"], s["pred_at_best"], s["pred_at_optimum"],
                             s["nearest_l1"], f"{s['nearest_rank']}/{s['n_mixtures']}"])
    lines += ["### Ranking the measured mixtures at the larger scale", "",
              "Mean loss over the domains (nats/token) of every measured mixture at the "
              "evaluation scale. Spearman: predicted vs measured mean loss. Pick: the measured "
              "mixture the law predicts best, its measured rank (1 = best) and regret (its "
              "measured mean minus the best measured mean). The law's continuous optimum at "
              "that scale, its predicted mean loss, and the L1 distance to the nearest measured "
              "mixture with that mixture's measured rank (the optimum itself was not trained: "
              "its loss is a prediction nobody can check here).", "",
              markdown_table(["protocol", "scale", "law", "mixtures", "Spearman", "pick rank",
                              "regret", "best measured", "law at best measured",
                              "law at its optimum", "L1 optimum→nearest", "nearest rank"],
                             rows), ""]
    for p in protos:
        for rname in p["ranking_measured"]:
            ok = [r for r in p["laws"] if r["ranking"][rname]["n_mixtures"] > 2]
            if not ok:
                continue
            top = max(ok, key=lambda r: r["ranking"][rname]["spearman"])
            n_best = sum(r["ranking"][rname]["pick_rank"] == 1 for r in p["laws"])
            lines.append(f"* {p['protocol']} at {rname}: highest Spearman {top['law']} "
                         f"({top['ranking'][rname]['spearman']:.3f}); {n_best} of "
                         f"{len(p['laws'])} laws pick the measured-best mixture.")
    lines.append("")
    # -- optimal mixtures
    rows = []
    for p in protos:
        for r in p["laws"]:
            for o in r["optima"]:
                rows.append([p["protocol"], r["law"], f"{o['N']:g}M/{o['D']:g}B"]
                            + [f"{w:.3f}" for w in o["weights"]] + [o["pred_mean_loss"]])
    domains = protos[0]["train_domains"]
    if all(p["train_domains"] == domains for p in protos):
        header = ["protocol", "law", "scale", *domains, "pred. mean loss"]
        lines += ["### Optimal mixture against scale", "", markdown_table(header, rows), ""]
    else:
        lines += ["### Optimal mixture against scale", ""]
        for p in protos:
            sub = [row for row in rows if row[0] == p["protocol"]]
            lines += [markdown_table(["protocol", "law", "scale", *p["train_domains"],
                                      "pred. mean loss"], sub), ""]
    rows = [[p["protocol"], r["law"], f"{r['optimum_shift_l1']:.3f}"] for p in protos
            for r in p["laws"]]
    lines += ["Shift of the optimum (L1 distance between the optimum at the first and the last "
              "scale of the table above):", "",
              markdown_table(["protocol", "law", "L1 shift"], rows), ""]
    for p in protos:
        moving = [r["law"] for r in p["laws"] if r["optimum_shift_l1"] > SHIFT_THRESHOLD]
        lines.append(f"* {p['protocol']}: optimum moves by more than {SHIFT_THRESHOLD:g} (L1) "
                     f"for {', '.join(moving) or 'no law'}.")
    lines.append("")
    if "capacity (capacity)" in labels:
        lines += ["The capacity-only variant's optimum for the mean loss is the uniform mixture "
                  "at every scale: its loss is the capacity term alone, which the model's own "
                  "allocation minimises when the training weights equal the target weights.", ""]
    if "additive" in labels:
        lines += ["The additive law's mixture term does not interact with its N and D terms, so "
                  "its optimum cannot move with scale.", ""]
    for p in protos:
        for e in p["laws"][0]["evaluations"]:
            order = sorted(p["laws"], key=lambda r, e=e: r["evaluations"][e]["mre"])
            ranks = {r["law"]: i + 1 for i, r in enumerate(order)}
            cap = [f"{label} {ranks[label]}" for label in ranks if label.startswith("capacity")]
            lines.append(f"* {p['protocol']} → {e}: MRE rank (1 = lowest) of the capacity "
                         f"variants among {len(order)} laws: {', '.join(cap) or '—'}.")
    lines.append("")
    return "\n".join(lines)


def signed_error(law_row: dict, protocol: dict, evaluation: str) -> tuple[float, float]:
    """``(bias %, MRE % on entries with own weight < 0.1)`` of one law at one evaluation, from
    the record: the mean of ``predicted / measured − 1`` over the measured entries, and the MRE
    of the rare entries from the all-entry and ``h_i ≥ 0.1`` MREs and their counts (NaN where
    every entry has ``h_i ≥ 0.1``)."""
    pred = np.asarray(law_row["predicted"][evaluation], dtype=float)
    meas = np.asarray(protocol["measured"][evaluation], dtype=float)
    bias = 100 * float(np.nanmean(pred / meas - 1))
    v = law_row["evaluations"][evaluation]
    n_rare = v["n"] - v["n_high_weight"]
    rare = ((v["mre"] * v["n"] - v["mre_high_weight"] * v["n_high_weight"]) / n_rare
            if n_rare > 0 else float("nan"))
    return bias, rare


def render(out, record: dict) -> None:
    """Draw the figures and write the section from the record alone."""
    names = figures(record, out)
    write_section(out, NAME, section(record, names))


def main(argv: Sequence[str] | None = None) -> int:
    return run_experiment(NAME, __doc__.split("\n\n")[0], Config, run, render, argv,
                          quick_config=QUICK, can_add_laws=True, parts=PARTS)


if __name__ == "__main__":
    raise SystemExit(main())
