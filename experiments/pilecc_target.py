r"""Optimal mixtures for a target domain on RegMix-1B: the Pile-CC loss (the paper's Fig. 5) and
the mean loss over all domains.

RegMix-1B holds 64 runs of 1B-parameter models trained on 25B tokens of mixtures of 17 Pile
domains, with losses on all 17 (a single scale: ``N`` and ``D`` are read from the table, in
millions of parameters and billions of tokens). Every law that can be fitted at one scale is
fitted on all 64 runs: the capacity law (``full``, ``tied``, ``capacity``), Shukor et al.'s
additive law, the data mixing law (DML) of Ye et al., BiMix and RegMix's linear regression. A
held-out check refits each law on a seeded 70/30 split by mixture and reports the validation MRE.

For each law fitted on all runs, ``mixscale.optimal_mixture`` minimises the predicted

* (a) Pile-CC loss alone (``target_weights`` one-hot on the ``pile_cc`` target), and
* (b) mean loss over the 17 domains,

and the result is compared with the best *measured* mixture of the 64 for the same target (its
measured loss; for the mean, among the runs with every domain measured) and with the law's
prediction at that measured mixture. The law's optimum was not trained by anybody: when it lies
outside the measured mixtures (the distance to the nearest measured mixture is reported in L1 and
in largest weight difference), its predicted loss is an extrapolation nobody can check here.

Two properties of the laws decide the Pile-CC optimum before any fit. In the capacity law and in
BiMix a domain's loss depends on the mixture only through the domain's own weight and (capacity
law) its share of capacity, both increasing in ``h_i``: the optimum for one in-mixture target is
the one-hot mixture on that domain, whatever the fitted parameters. A linear law's optimum is
always a vertex of the simplex. Only laws with cross-domain terms (additive, DML) can prefer a
blend.

Fitting: ``mixscale.fit`` with the same objective, restarts and seed for every law and the
fitter's one policy (:func:`experiments._common.fit_law`: Levenberg–Marquardt on each law's
per-target structure, inside its parameter ranges, started also from its nested variants);
whether each fit converged (the gradient test) is recorded with it. The additive law has
``17 (2·17 + 5) = 663`` parameters for 1088 measured losses (its per-target ``N`` and ``D``
terms are constants at one scale).

Cost: ``elapsed_s`` in the JSON (wall time of the full run); ``--quick`` (two small laws,
1 restart, few steps, no split): well under a minute.

Run: ``python -m experiments.pilecc_target [--quick] [--redraw] [--out DIR]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from experiments._common import (
    N_RESTARTS,
    Timer,
    fit_law,
    fit_nested_first,
    fit_record,
    markdown_table,
    unfitted_laws_lines,
    with_spectral,
    write_section,
)
from experiments._figures import pyplot, save_figure
from experiments._harness import run_experiment
from experiments._protocols import in_mixture, spearman
from mixscale import LawSpec, law_specs

NAME = "pilecc_target"


def fitted_here(spec: LawSpec) -> bool:
    """Whether the experiment fits ``spec`` on RegMix-1B's single scale: every law but the joint
    law, whose 17 (4·17 + 5) = 1241 parameters exceed the 64 × 17 = 1088 measured losses, and
    the log-linear regression, which is DML without an irreducible loss (the linear one is
    RegMix's own baseline)."""
    return spec.name != "joint" and spec != LawSpec("regression", variant="loglinear")


OBJECTIVES = ("pile_cc", "mean")
#: Loss figure: predictions further than this from the best measured loss are drawn off scale.
OFF_SCALE_NATS = 0.5


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that sets the numbers; the defaults are the full run."""

    laws: tuple[LawSpec, ...] = with_spectral(filter(fitted_here, law_specs()))
    dataset: str = "regmix-1b"
    target: str = "pile_cc"
    n_restarts: int = N_RESTARTS
    fit_seed: int = 0
    max_steps: int | None = None  # the fitter's default (1000)
    validation_fraction: float = 0.3
    split_seed: int = 0
    heldout: bool = True
    mixture_starts: int = 16
    mixture_seed: int = 0
    quick: bool = False

    def __post_init__(self):
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1), got "
                             f"{self.validation_fraction!r}")
        if self.n_restarts < 1 or self.mixture_starts < 1:
            raise ValueError("n_restarts and mixture_starts must be at least 1")


#: The smoke run (seconds): two small laws, one restart, few steps, no split.
QUICK = Config(laws=(LawSpec("capacity", variant="tied"), LawSpec("regression", variant="linear")),
               n_restarts=1, max_steps=20, heldout=False, mixture_starts=2,
               quick=True)


# ----------------------------------------------------------------------------- helpers
def load_table(config: Config):
    """The table with its in-mixture losses; raises if the target is not one of them."""
    from mixscale.data import TableError, load

    table = in_mixture(load(config.dataset))
    if config.target not in table.loss_domains:
        raise TableError(f"{config.dataset}: no in-mixture loss domain {config.target!r}; "
                         f"it has {list(table.loss_domains)}")
    scales = set(zip(table.model_size.tolist(), table.tokens.tolist(), strict=True))
    if len(scales) != 1:
        raise TableError(f"{config.dataset}: expected one (size, tokens) scale, found "
                         f"{sorted(scales)}")
    return table


def target_weights(targets: Sequence[str], objective: str, target: str) -> np.ndarray:
    """``(M,)`` weights of the law's targets: one-hot on ``target`` or uniform (``"mean"``)."""
    targets = list(targets)
    if objective == "mean":
        return np.ones(len(targets))
    if target not in targets:
        raise ValueError(f"the law does not predict {target!r}; its targets are {targets}")
    w = np.zeros(len(targets))
    w[targets.index(target)] = 1.0
    return w


def measured_objective(losses: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``(n,)`` weighted mean of each run's measured losses ``(n, M)`` (NaN where a weighted
    loss is missing: such runs cannot be compared)."""
    losses = np.asarray(losses, float)
    w = np.asarray(weights, float)
    used = w > 0
    value = losses[:, used] @ w[used] / w.sum()
    return np.where(np.isfinite(losses[:, used]).all(axis=1), value, np.nan)


def distance_to_measured(optimum: np.ndarray, mixtures: np.ndarray) -> dict:
    """The measured mixture nearest (L1) to ``optimum`` ``(K,)`` among ``mixtures`` ``(n, K)``:
    its index, the L1 distance and the largest absolute weight difference to it."""
    diff = np.abs(np.asarray(mixtures, float) - np.asarray(optimum, float)[None, :])
    l1 = diff.sum(axis=1)
    i = int(np.argmin(l1))
    return {"nearest": i, "l1": float(l1[i]), "max_abs": float(diff[i].max())}


def _fits(specs, train, config: Config, validation=None) -> dict:
    """``{spec: (fit, wall seconds)}`` of the laws ``specs`` on ``train``, each after the
    variants nested in it and started from their fits
    (:func:`experiments._common.fit_nested_first`)."""
    return fit_nested_first(specs, lambda spec, nested: fit_law(
        spec, train, validation=validation, n_restarts=config.n_restarts,
        seed=config.fit_seed, max_steps=config.max_steps, nested=nested))


# ----------------------------------------------------------------------------- run
def run_law(spec: LawSpec, table, config: Config, log, res, held=None) -> dict:
    """One law's row: its fit ``res`` on every run (and ``held = (fit, validation runs)``, its
    fit on a split, if ``config.heldout``) and its optimum for each objective."""
    from mixscale import optimal_mixture

    timer = Timer()
    N, D = float(table.model_size[0]), float(table.tokens[0])
    row = {"law": spec.label, "n_params": res.n_params, "method": res.method,
           "fit_s": float(res.timings["total_s"]), **fit_record(res),
           "train_mre": res.train_metrics["mre"],
           "train_mre_target": res.train_metrics["per_domain_mre"][config.target],
           "objectives": {}}
    if held is not None:
        v = held[0].validation_metrics
        row["heldout"] = {"mre": v["mre"], "mre_high_weight": v["mre_high_weight"],
                          "mre_target": v["per_domain_mre"][config.target],
                          "n_validation_runs": held[1]}
    pred = res.predict(table)
    obs = table.select_losses(list(res.targets)).losses
    for objective in OBJECTIVES:
        w = target_weights(res.targets, objective, config.target)
        m = optimal_mixture(res.law, N, D, target_weights=w, n_train_domains=table.n_train_domains,
                            n_starts=config.mixture_starts, seed=config.mixture_seed)
        measured = measured_objective(obs, w)
        predicted = pred @ w / w.sum()
        ok = np.isfinite(measured)
        best = int(np.flatnonzero(ok)[np.argmin(measured[ok])])
        pick = int(np.flatnonzero(ok)[np.argmin(predicted[ok])])
        row["objectives"][objective] = {
            "weights": m.weights, "pred_at_optimum": m.objective,
            "stationarity": m.stationarity, "converged": m.converged,
            "best_run": best, "best_measured": float(measured[best]),
            "pred_at_best_measured": float(predicted[best]),
            "pick_run": pick, "pick_measured": float(measured[pick]),
            "spearman": spearman(predicted[ok], measured[ok]), "n_runs": int(ok.sum()),
            "distance": distance_to_measured(m.weights, table.weights)}
    log.info("%-22s %4d params %-5s MRE %.2f%%%s  Pile-CC opt %.3f (best measured %.3f)  %.0fs",
             spec.label, res.n_params, res.method, 100 * row["train_mre"],
             f" held-out {100 * row['heldout']['mre']:.2f}%" if "heldout" in row else "",
             row["objectives"]["pile_cc"]["pred_at_optimum"],
             row["objectives"]["pile_cc"]["best_measured"], timer())
    return row


def run(config: Config, log) -> dict:
    table = load_table(config)
    results = {"dataset": config.dataset, "N": float(table.model_size[0]),
               "D": float(table.tokens[0]), "domains": list(table.train_domains),
               "n_runs": table.n_runs, "laws": []}
    from mixscale.data import split

    whole = _fits(config.laws, table, config)
    held = {}
    if config.heldout:
        train, valid = split(table, config.validation_fraction, config.split_seed)
        held = _fits(config.laws, train, config, validation=valid)
    for spec in config.laws:
        results["laws"].append(run_law(spec, table, config, log, whole[spec][0],
                                       (held[spec][0], valid.n_runs) if held else None))
    results["measured_weights"] = {o: table.weights[results["laws"][0]["objectives"][o]
                                                    ["best_run"]] for o in OBJECTIVES}
    return results


# ----------------------------------------------------------------------------- figures
def figure_weights(results: dict, cfg: dict, out):
    """Heat map: each law's optimal mixture for the target (rows) over the domains."""
    plt = pyplot()
    domains = results["domains"]
    rows = [np.asarray(r["objectives"]["pile_cc"]["weights"], float) for r in results["laws"]]
    rows.append(np.asarray(results["measured_weights"]["pile_cc"], float))
    labels = [r["law"] for r in results["laws"]] + ["best measured run"]
    mat = np.stack(rows)
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(labels) + 2.2))
    im = ax.imshow(mat, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            if mat[i, j] >= 0.005:
                ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if mat[i, j] > 0.6 else "black")
    ax.set_xticks(np.arange(len(domains)), domains, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(np.arange(len(labels)), labels, fontsize=9)
    ax.axhline(len(labels) - 1.5, color="k", lw=1)
    fig.colorbar(im, ax=ax, label="mixture weight", fraction=0.03)
    ax.set_title(f"Optimal mixture for the {cfg['target']} loss, RegMix-1B "
                 f"({results['N']:g}M params, {results['D']:g}B tokens); blank: < 0.005",
                 fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out, f"{NAME}_weights.png")


def figure_losses(results: dict, cfg: dict, out):
    """Per law: predicted loss at its optimum and at the best measured run, against the best
    measured loss, for the target and for the mean."""
    plt = pyplot()
    labels = [r["law"] for r in results["laws"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    x = np.arange(len(labels))
    titles = (f"{cfg['target']} loss", f"mean loss over the {len(results['domains'])} domains")
    for ax, objective, title in zip(axes, OBJECTIVES, titles, strict=True):
        o = [r["objectives"][objective] for r in results["laws"]]
        ref = o[0]["best_measured"]
        at_opt = np.array([v["pred_at_optimum"] for v in o], float)
        at_best = np.array([v["pred_at_best_measured"] for v in o], float)
        # Axis range from the values within 0.5 nats of the measured best; values beyond are
        # drawn at the edge and labelled (a linear law's vertex optimum can be far off).
        near = [v for v in (*at_opt, *at_best, ref) if abs(v - ref) <= OFF_SCALE_NATS]
        lo, hi = min(near), max(near)
        pad = 0.15 * (hi - lo) + 0.02
        lo, hi = lo - pad, hi + 2 * pad
        for vals, dx, marker, color, label in (
                (at_opt, -0.12, "o", "tab:blue", "law at its optimum (unverified)"),
                (at_best, 0.12, "s", "tab:orange", "law at the best measured run")):
            ax.scatter(x + dx, np.clip(vals, lo, hi), marker=marker, color=color, s=36,
                       label=label, zorder=3)
            for xi, v in zip(x + dx, vals, strict=True):
                if not lo <= v <= hi:
                    ax.annotate(f"{v:.2f} (off scale)", (xi, np.clip(v, lo, hi)), fontsize=7,
                                xytext=(-62, -12 if v > hi else 6), textcoords="offset points")
        ax.axhline(ref, color="k", ls="--", lw=1, label="best measured run (measured)")
        ax.set_ylim(lo, hi)
        ax.set_xticks(x, labels, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("loss (nats/token)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"RegMix-1B: predicted loss at each law's optimum vs the best of the "
                 f"{results['n_runs']} measured runs", fontsize=11)
    fig.tight_layout()
    return save_figure(fig, out, f"{NAME}_losses.png")


# ----------------------------------------------------------------------------- report
def _converged_cell(row: dict) -> str:
    """``yes``/``no`` (the returned law passed the gradient test), or the share of restarts
    that met the stopping rule for records written before the test existed."""
    if "law_converged" in row:
        return "yes" if row["law_converged"] else "no"
    return f"{100 * row['converged']:.0f} % of restarts"


def section(record: dict, names: Sequence[str]) -> str:
    """The markdown section, generated from the JSON record alone."""
    cfg, results = record["config"], record["results"]
    laws = results["laws"]
    vf = cfg["validation_fraction"]
    lines = [f"## Optimal mixture for a target domain: {cfg['target']} on RegMix-1B", "",
             f"Every law that can be fitted at one scale was fitted with `mixscale.fit` "
             f"({cfg['n_restarts']} restarts, seed {cfg['fit_seed']}; the fitter's one policy, "
             "Levenberg–Marquardt on the law's structure with nested starts) on all "
             f"{results['n_runs']} RegMix-1B runs ({results['N']:g}M "
             f"parameters, {results['D']:g}B tokens, {len(results['domains'])} Pile domains)"
             + (f", and refitted on a {100 * (1 - vf):.0f}/{100 * vf:.0f} split by mixture "
                f"(seed {cfg['split_seed']}) for a held-out error" if cfg["heldout"] else "")
             + ". For each law, `mixscale.optimal_mixture` minimised (a) the predicted "
             f"{cfg['target']} loss alone and (b) the mean predicted loss over the domains; the "
             "optimum is compared with the best measured run for the same objective. An "
             "optimum away from every measured mixture is an extrapolation that nobody can check "
             "with these runs: its predicted loss is a claim, not a measurement. In the capacity "
             "law and BiMix a domain's loss falls with its own weight and depends on the others "
             "only through capacity competition, so the optimum for one target is the one-hot "
             "mixture on it whatever the fit; a linear law always picks a vertex. "
             + ("Quick smoke configuration: numbers are not meaningful. " if cfg["quick"]
                else "") + f"Run time {record['elapsed_s'] / 60:.1f} min.", ""]
    lines += unfitted_laws_lines(NAME, Config().laws, (r["law"] for r in laws), cfg["quick"])
    for name in names:
        lines += [f"![{name[:-4].replace('_', ' ')}]({name})", ""]
    header = ["law", "params", "converged", "train MRE %", f"train MRE {cfg['target']} %"]
    if cfg["heldout"]:
        header += ["held-out MRE %", "held-out h≥0.1 %", f"held-out {cfg['target']} %"]
    rows = []
    for r in laws:
        cells = [r["law"], r["n_params"], _converged_cell(r), 100 * r["train_mre"],
                 100 * r["train_mre_target"]]
        if cfg["heldout"]:
            h = r["heldout"]
            cells += [100 * h["mre"], 100 * h["mre_high_weight"], 100 * h["mre_target"]]
        rows.append(cells)
    lines += ["### Fit quality", "", markdown_table(header, rows), ""]
    short = [r["law"] for r in laws if not r.get("law_converged", r["converged"] > 0)]
    if short:
        lines += [f"Not converged (the gradient test) within the step cap: {', '.join(short)}"
                  " (a longer fit may lower their errors).", ""]
    for objective, title in zip(OBJECTIVES, (f"{cfg['target']} loss", "mean loss"),
                                strict=True):
        o0 = laws[0]["objectives"][objective]
        rows = [[r["law"], r["objectives"][objective]["pred_at_optimum"],
                 r["objectives"][objective]["pred_at_best_measured"],
                 r["objectives"][objective]["best_measured"],
                 r["objectives"][objective]["pick_measured"],
                 r["objectives"][objective]["spearman"],
                 r["objectives"][objective]["distance"]["l1"],
                 r["objectives"][objective]["distance"]["max_abs"],
                 float(np.max(r["objectives"][objective]["weights"])),
                 results["domains"][int(np.argmax(r["objectives"][objective]["weights"]))]]
                for r in laws]
        lines += [f"### Target: {title}", "",
                  f"Best measured run: #{o0['best_run']} with measured {title} "
                  f"{o0['best_measured']:.4f} nats/token (over {o0['n_runs']} runs with the "
                  "loss measured). Pick: the measured run the law predicts best, and its "
                  "measured value. Distance: from the law's optimum to the nearest measured "
                  "mixture.", "",
                  markdown_table(["law", "law at its optimum", "law at best measured",
                                  "best measured", "law's pick (measured)",
                                  "Spearman over runs", "L1 to nearest run",
                                  "max |Δw| to nearest", "largest weight", "on domain"], rows),
                  ""]
        below = [r["law"] for r in laws if r["objectives"][objective]["pred_at_optimum"]
                 < o0["best_measured"]]
        n_pick = sum(r["objectives"][objective]["pick_run"] == o0["best_run"] for r in laws)
        lines.append(f"* {len(below)} of {len(laws)} laws predict a loss below the best "
                     f"measured run at their optimum ({', '.join(below) or 'none'}); "
                     f"{n_pick} of {len(laws)} pick the measured-best run among the "
                     f"{o0['n_runs']}.")
        lines.append("")
    rows = [[r["law"]] + [f"{w:.3f}" for w in r["objectives"]["pile_cc"]["weights"]]
            for r in laws]
    rows.append(["best measured run"] + [f"{w:.3f}" for w in
                                         results["measured_weights"]["pile_cc"]])
    lines += [f"### Optimal weights for the {cfg['target']} target", "",
              markdown_table(["law", *results["domains"]], rows), ""]
    return "\n".join(lines)


def render(out, record: dict) -> None:
    """Draw the figures and write the section from the record alone."""
    cfg, results = record["config"], record["results"]
    names = [figure_weights(results, cfg, out).name, figure_losses(results, cfg, out).name]
    write_section(out, NAME, section(record, names))


def main(argv: Sequence[str] | None = None) -> int:
    return run_experiment(NAME, __doc__.split("\n\n")[0], Config, run, render, argv,
                          quick_config=QUICK, can_add_laws=True)


if __name__ == "__main__":
    raise SystemExit(main())
