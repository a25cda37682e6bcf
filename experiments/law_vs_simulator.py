"""The paper's law and the spectral law against the theory simulator: held-out error with and
without a shared head.

For each setting (``K`` domains, shared head ``S``) draw random spectra, simulate the exact
expected losses of one-pass SGD for ~40 random mixtures × 3 model sizes × 3 token budgets
(``simulate.sweep``), fit every law of ``Config.laws`` (the capacity law, variant ``"full"``,
its ``"decoupled"`` variant with the data term's token and share exponents apart, its
``"transfer"`` variant with the ranks that domains share, its ``"crossover"`` variant (capacity
and data limits combined as a power mean, ``docs/theory.md`` §5), its ``"coupled"`` variant (the
crossover with a data term at ``N^θ D`` tokens, §6: the simulator is the linear theory, ``θ = 0``),
its ``"pooled"`` variant (the crossover with the capacity kept for a domain's overlapping
neighbours counted as its own, §7; the base settings have no overlap), and the spectral law
derived from the recursion, ``docs/theory.md``, with its shared-tail variant ``"transfer"``,
which has nothing to share here but must not lose to ``"full"``) on the runs of
most mixtures, all sizes and budgets at once, and report the mean relative error (MRE) on the
runs of held-out mixtures, overall, per domain, by size and by budget. Settings: ``K ∈ {3, 4, 5}`` ×
``S ∈ {0, head}`` (no shared head: ``H`` has nothing to find; with one: the head is learned from
every domain, which the capacity law's additive data term ``A_i (D h_i)^(-a_i)`` does not
model and the spectral law's mixture-summed head rate does).

The simulator is not tuned toward the law: spectra, noise and mixtures are drawn from fixed
ranges with a fixed seed, the step is half the smallest stable step of the grid, and every
fitted run is reported. Results, the configuration and package versions go to a JSON file.

**Tail overlap** (results key ``"overlap"``): every (``K``, ``S``) instance is simulated again with
a fraction ``ρ`` of every domain's tail ranks shared by all domains (``Config.overlap_rhos``,
``simulate.DisjointTailModel(rho=...)``; same spectra, noise, mixtures and split, the step half
the smallest stable step of that model), and the laws of ``Config.overlap_laws`` are fitted and
scored as above. ``fit_under_overlap`` sweeps ``ρ`` on a grid down to ``N = 16``, where each
domain keeps a few whole features and a continuous allocation can only average the integer
kept counts (``docs/theory.md``, "Integer kept counts"); this grid (``N ≥ 64``) measures the
overlap term itself. The simulator places the shared ranks evenly, ``⌊ρt⌋`` of a domain's
first ``t`` tail ranks, so its first tail rank is always its own, while the law spreads ``ρ``
over every rank. ``Config.overlap_phases`` runs the overlap settings again with the shared
ranks shifted in their spacing (``⌊ρt + φ⌋``, ``simulate.DisjointTailModel(overlap_phase=φ)``;
at ``φ = 1 − ρ`` the first tail rank is shared; results key ``"overlap_phase"``): what the law's
error owes to where the top shared ranks sit. Its laws: the paper's law, the capacity law's
``pooled`` variant (shared ranks on both sides of the law), and the spectral law with
(``transfer``) and without (``full``) shared tail ranks; the ``dispersed`` variant, which equals
``transfer`` on these losses at ``ρ = 0``, is left out for its cost (about 5 minutes a fit);
the ``offset`` variant (``transfer`` with the shared ranks placed in rank order: which of the top
tail ranks are shared, ``ψ`` fitted) is fitted in every setting, for the placement this asks
about.

Run: ``python -m experiments.law_vs_simulator`` (``--quick`` for the smoke configuration;
``--part overlap`` or ``--part overlap_phase`` computes those settings alone and adds them to
the record); the wall time of the full run is ``elapsed_s`` in its results file.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from experiments._common import (
    N_RESTARTS,
    fit_laws,
    fit_record,
    markdown_table,
    unfitted_laws_lines,
    with_spectral,
    write_section,
)
from experiments._figures import law_color, pyplot, save_figure
from experiments._harness import config_from_record, run_experiment
from experiments._protocols import relative_errors
from mixscale import LawSpec

NAME = "law_vs_simulator"


@dataclasses.dataclass(frozen=True)
class Config:
    """Experiment configuration (defaults: issue 3's grid)."""

    #: both lists name laws: ``--add-law`` fits a law in each that lists it
    LAW_FIELDS: ClassVar[tuple[str, ...]] = ("laws", "overlap_laws")

    domain_counts: tuple[int, ...] = (3, 4, 5)
    heads: tuple[int, ...] = (0, 32)  # shared head S of the settings (0: no shared head)
    n_mixtures: int = 40
    n_validation: int = 8  # held-out mixtures (all their sizes and budgets)
    sizes: tuple[int, ...] = (64, 256, 1024)  # kept features N
    steps: tuple[int, ...] = (300, 1000, 3000)  # SGD steps (batch 1: D = steps samples)
    n_features: int = 4096  # total features P of every model (>= max size)
    alpha_range: tuple[float, float] = (1.3, 2.5)
    beta: float = 0.0
    sigma2_range: tuple[float, float] = (0.05, 0.3)
    rho: float = 0.0  # tail overlap of the base settings
    keep: str = "signal"
    lr_fraction: float = 0.5  # of the smallest stable step over the grid
    # The paper's law and the law derived from the SGD recursion (docs/theory.md), each fitted on
    # every size and budget at once.
    laws: tuple[LawSpec, ...] = with_spectral((LawSpec("capacity", variant="full"),
                                               LawSpec("capacity", variant="decoupled"),
                                               LawSpec("capacity", variant="transfer"),
                                               LawSpec("capacity", variant="crossover"),
                                               LawSpec("capacity", variant="coupled"),
                                               LawSpec("capacity", variant="pooled"),
                                               LawSpec("capacity", variant="pooled_coupled"))
                                              ) + (LawSpec("spectral", variant="offset"),)
    n_restarts: int = N_RESTARTS
    seed: int = 0
    # The same instances with tail overlap (results key "overlap"): these overlaps, these laws
    # (those of ``laws`` that are also here). ``base_settings=False`` runs only them.
    overlap_rhos: tuple[float, ...] = (0.5,)
    overlap_phases: tuple[float, ...] = (0.5,)  # the overlap settings again at these phases
    overlap_laws: tuple[LawSpec, ...] = (LawSpec("capacity", variant="full"),
                                         LawSpec("capacity", variant="pooled"),
                                         LawSpec("spectral"),
                                         LawSpec("spectral", variant="transfer"),
                                         LawSpec("spectral", variant="offset"))
    base_settings: bool = True
    overlap_settings: bool = True  # False: of the overlap settings, only the shifted phases


#: The smoke run (seconds): one small setting, and it again with tail overlap for one law.
QUICK = Config(domain_counts=(3,), heads=(8,), n_mixtures=12, n_validation=3, sizes=(16, 32, 64),
               steps=(50, 150, 400), n_features=256, n_restarts=4,
               laws=(LawSpec("capacity", variant="full"), LawSpec("spectral")),
               overlap_laws=(LawSpec("spectral"),), overlap_phases=(0.5,))


def score_fit(res, val, cfg: Config) -> dict:
    """One law's fit, scored on the held-out runs: MRE overall, per domain, by size, by budget
    and by the domain's own weight."""
    rel, own = relative_errors(res, val)
    natural = res.law.natural_parameters()
    capacity = natural.get("H")
    low = own < 0.1
    return {
        "train_mre": float(res.train_metrics["mre"]),
        "validation_mre": float(res.validation_metrics["mre"]),
        "validation_per_domain_mre": {k_: float(v) for k_, v in
                                      res.validation_metrics["per_domain_mre"].items()},
        "validation_mre_by_size": {int(n): float(np.nanmean(rel[val.model_size == n]))
                                   for n in cfg.sizes},
        "validation_mre_by_steps": {int(s): float(np.nanmean(rel[val.row_tags["steps"] == s]))
                                    for s in cfg.steps},
        "validation_mre_own_weight_below_0.1": float(rel[low].mean()) if low.any() else None,
        "validation_mre_own_weight_above_0.1": float(rel[~low].mean()) if (~low).any() else None,
        "fitted_H": None if capacity is None else float(np.asarray(capacity)),
        "fitted_rho": float(np.asarray(natural["rho"])) if "rho" in natural else None,
        "n_params": int(res.n_params),
        **fit_record(res),
    }


@dataclasses.dataclass(frozen=True)
class Instance:
    """One drawn (``K``, ``S``) setting: spectra, noise and mixtures."""

    k: int
    head: int
    alpha: np.ndarray
    sigma2: np.ndarray
    mixtures: np.ndarray


def draw_instance(cfg: Config, k: int, head: int, rng: np.random.Generator) -> Instance:
    """Spectra (sorted), noise levels and Dirichlet(1) mixtures of one setting, from ``rng``."""
    alpha = np.sort(rng.uniform(*cfg.alpha_range, size=k))
    sigma2 = rng.uniform(*cfg.sigma2_range, size=k)
    return Instance(k, head, alpha, sigma2, rng.dirichlet(np.ones(k), size=cfg.n_mixtures))


def run_setting(cfg: Config, inst: Instance, rho: float, laws: Sequence[LawSpec],
                log: logging.Logger, phase: float = 0.0) -> dict:
    """Simulate one setting at tail overlap ``rho`` (its shared ranks at ``phase``), fit
    ``laws`` on the training mixtures, score the held-out ones."""
    import jax.numpy as jnp

    import simulate as sim

    k, head = inst.k, inst.head
    model = sim.DisjointTailModel(jnp.asarray(inst.alpha), beta=cfg.beta,
                                  sigma2=jnp.asarray(inst.sigma2), head=head,
                                  n_features=cfg.n_features, rho=rho, overlap_phase=phase,
                                  keep=cfg.keep)
    limit = min(sim.stable_step_limit(model, h, max(cfg.sizes)) for h in inst.mixtures)
    lr = cfg.lr_fraction * limit
    t0 = time.perf_counter()
    table = sim.sweep(model, inst.mixtures, list(cfg.sizes), list(cfg.steps), sim.Constant(lr),
                      name=f"sim-K{k}-S{head}" + (f"-rho{rho:g}" if rho else "")
                      + (f"-phase{phase:g}" if phase else ""))
    t_sim = time.perf_counter() - t0
    held_out = np.isin(table.row_tags["mixture_id"],
                       np.arange(cfg.n_mixtures - cfg.n_validation, cfg.n_mixtures))
    train, val = table.take(~held_out, name="train"), table.take(held_out, name="validation")
    out = {"K": k, "head": head, "rho": rho, "phase": phase, "alpha": inst.alpha.tolist(),
           "sigma2": inst.sigma2.tolist(), "lr": lr, "stable_limit": limit,
           "n_features": model.n_features, "n_train_runs": train.n_runs,
           "n_validation_runs": val.n_runs, "simulate_s": t_sim, "laws": {}}
    fits = fit_laws(laws, train, validation=val, n_restarts=cfg.n_restarts, seed=cfg.seed)
    for spec in laws:
        res, fit_s = fits[spec]
        scored = {**score_fit(res, val, cfg), "fit_s": fit_s}
        out["laws"][spec.label] = scored
        log.info("K=%d S=%d rho=%g phase=%g %s: train MRE %.4f, held-out MRE %.4f (fit %.1fs)",
                 k, head, rho, phase, spec.label, scored["train_mre"],
                 scored["validation_mre"], scored["fit_s"])
    return out


def _bars(ax, results: list[dict], title: str, order: Sequence[str]) -> dict:
    """Held-out MRE (%) per setting and law on ``ax`` (log scale), with the entries whose own
    weight is below 0.1 as dots; a law a setting did not fit leaves a gap. A law's colour is
    its place in ``order``. Returns the legend handles by label."""
    labels = [label for label in order if any(label in r["laws"] for r in results)]
    handles = {}
    x = np.arange(len(results))
    width = 0.8 / max(len(labels), 1)
    for j, label in enumerate(labels):
        pos = x + (j - (len(labels) - 1) / 2) * width
        fits = [r["laws"].get(label) for r in results]
        v = [np.nan if f is None else 100 * f["validation_mre"] for f in fits]
        low = [np.nan if f is None or f["validation_mre_own_weight_below_0.1"] is None
               else 100 * f["validation_mre_own_weight_below_0.1"] for f in fits]
        handles[label] = ax.bar(pos, v, width=width, label=label,
                                color=law_color(list(order).index(label)))
        (handles["own weight h_i < 0.1"],) = ax.plot(pos, low, "o", color="k", ms=4)
    ax.set_xticks(x, [f"K={r['K']}\nS={r['head']}" for r in results])
    ax.set_yscale("log")
    ax.set_xlabel("setting (K domains, shared head of S features)")
    ax.set_title(title)
    return handles


def plot(results: dict, out: Path) -> Path:
    """Held-out MRE (%) per setting and law (log scale: the laws differ by orders of
    magnitude): the base settings, and beside them the same instances with tail overlap."""
    plt = pyplot()
    overlap = results["overlap"] + results["overlap_phase"]
    panels = [(results["settings"], "without tail overlap")] if results["settings"] else []
    panels += [([r for r in overlap if (r["rho"], _phase(r)) == (rho, phase)],
                f"ρ = {rho:g}, shared ranks at phase φ = {phase:g}" if phase
                else f"tail overlap ρ = {rho:g}")
               for rho, phase in sorted({(r["rho"], _phase(r)) for r in overlap})]
    widths = [len(p[0]) * max(len(p[0][0]["laws"]), 1) for p in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(9.6 + 4.4 * (len(panels) - 1), 4),
                             squeeze=False, sharey=True, gridspec_kw={"width_ratios": widths})
    order = list(dict.fromkeys(label for rows, _ in panels for r in rows for label in r["laws"]))
    handles = {}
    for ax, (rows, title) in zip(axes[0], panels, strict=True):
        handles.update(_bars(ax, rows, title, order))
    axes[0][0].set_ylabel("held-out MRE (%), bars: all entries")
    # below the axes, so that no bar is hidden behind it
    fig.legend(list(handles.values()), list(handles), frameon=False, loc="upper center",
               bbox_to_anchor=(0.5, -0.03), fontsize=8, ncol=4)
    fig.suptitle("Laws on exact simulator losses: held-out error")
    return save_figure(fig, out, "law_vs_simulator.png")


def _phase(setting: dict) -> float:
    """The overlap phase of a setting (records made before the phase settings lack it: 0)."""
    return setting.get("phase", 0.0)


def _percent(value: float | None) -> float | None:
    """``100 · value``, ``None`` kept (a class of entries a split left empty)."""
    return None if value is None else 100 * value


def with_layout(results) -> dict:
    """``results`` as ``{"settings", "overlap", "overlap_phase"}``: records written before the
    overlap settings hold the base settings' list alone."""
    if isinstance(results, list):
        return {"settings": results, "overlap": [], "overlap_phase": []}
    return {key: results.get(key, []) for key in ("settings", "overlap", "overlap_phase")}


def section(record: dict) -> str:
    """The report section, generated from the results."""
    cfg, results = record["config"], with_layout(record["results"])["settings"]
    labels = list(results[0]["laws"]) if results else []
    rows = []
    for r in results:
        for label in labels:
            f = r["laws"][label]
            rows.append((r["K"], r["head"], label, 100 * f["validation_mre"],
                         100 * f["train_mre"],
                         _percent(f["validation_mre_own_weight_below_0.1"]),
                         _percent(f["validation_mre_own_weight_above_0.1"]),
                         f["fitted_H"], f["n_params"], "yes" if f["law_converged"] else "no"))
    sizes = list(results[0]["laws"][labels[0]]["validation_mre_by_size"]) if labels else []
    by_size = [(r["K"], r["head"], label,
                *(100 * v for v in r["laws"][label]["validation_mre_by_size"].values()))
               for r in results for label in labels]
    lines = ["## The laws against the simulator: with and without a shared head", "",
             f"Exact expected losses of one-pass SGD (`simulate.sweep`) for {cfg['n_mixtures']} "
             f"random mixtures × N ∈ {list(cfg['sizes'])} kept features × {list(cfg['steps'])} "
             f"steps (batch 1, constant step at {cfg['lr_fraction']} of the smallest stable "
             f"step), {cfg['n_features']} features, α ~ U{tuple(cfg['alpha_range'])}, σ² ~ "
             f"U{tuple(cfg['sigma2_range'])}; each law fitted with {cfg['n_restarts']} restarts "
             f"on all runs of {cfg['n_mixtures'] - cfg['n_validation']} mixtures (every size and "
             f"budget at once) and scored on every run of the {cfg['n_validation']} held-out "
             "ones. The true head is `S` features (`H` is in the units of `N`, kept features).",
             "", "![held-out MRE per setting](law_vs_simulator.png)", "",
             markdown_table(["K", "head S", "law", "held-out MRE %", "train MRE %",
                             "MRE % (h_i < 0.1)", "MRE % (h_i ≥ 0.1)", "fitted H", "params",
                             "converged"], rows), "",
             "Held-out MRE (%) by model size N:", "",
             markdown_table(["K", "head S", "law", *(f"N={n}" for n in sizes)], by_size), ""]
    for label in labels:
        without = {r["K"]: r["laws"][label] for r in results if r["head"] == 0}
        pairs = [(r["laws"][label], without[r["K"]]) for r in results
                 if r["head"] > 0 and r["K"] in without]
        worse = sum(f["validation_mre"] > f0["validation_mre"] for f, f0 in pairs)
        mres = [100 * r["laws"][label]["validation_mre"] for r in results]
        text = (f"**{label}**: held-out MRE {min(mres):.3g}–{max(mres):.3g} %"
                + (f"; higher with a shared head than without in {worse} of {len(pairs)} "
                   "settings (same K)" if pairs else "") + ".")
        lines += [text, ""]
    lines += ["The capacity law's data term `A_i (D h_i)^(-a_i)` credits a domain only with its "
              "own share of the data, while a shared head is learned from every domain's data; "
              "the spectral law (`docs/theory.md`) learns the head at the mixture-summed rate and "
              "couples the domains through SGD noise.", ""]
    return "\n".join(lines + overlap_section(record))


def overlap_section(record: dict) -> list[str]:
    """The report lines on the overlap settings (none if the record has none)."""
    results = with_layout(record["results"])
    overlap = results["overlap"] + results["overlap_phase"]
    if not overlap:
        return []
    base = {(r["K"], r["head"]): r["laws"] for r in results["settings"]}
    phase0 = {(r["K"], r["head"], r["rho"]): r["laws"] for r in results["overlap"]}
    labels = list(dict.fromkeys(label for r in overlap for label in r["laws"]))
    sizes = list(next(iter(overlap[0]["laws"].values()))["validation_mre_by_size"])
    rows = []
    for r in overlap:
        for label in labels:
            f = r["laws"].get(label)
            if f is None:
                continue
            f0 = base.get((r["K"], r["head"]), {}).get(label)
            phase = _phase(r)
            fp = phase0.get((r["K"], r["head"], r["rho"]), {}).get(label) if phase else None
            rows.append((r["K"], r["head"], r["rho"], phase, label, 100 * f["validation_mre"],
                         None if f0 is None else 100 * f0["validation_mre"],
                         None if fp is None else 100 * fp["validation_mre"],
                         _percent(f["validation_mre_own_weight_below_0.1"]),
                         _percent(f["validation_mre_own_weight_above_0.1"]),
                         *(100 * v for v in f["validation_mre_by_size"].values()),
                         f["fitted_H"], f.get("fitted_rho"), f["n_params"],
                         "yes" if f["law_converged"] else "no"))
    rhos = sorted({r["rho"] for r in overlap})
    lines = [f"### The same instances with tail overlap ρ ∈ {rhos}", "",
             "A fraction ρ of every domain's tail ranks is one feature shared by every domain "
             "(`simulate.DisjointTailModel(rho=...)`); spectra, noise, mixtures, split and "
             "grid as above, the step half the smallest stable step of the overlapping model. "
             "`fit_under_overlap` sweeps ρ on a grid down to N = 16, where a domain keeps a few "
             "whole features; this grid (N ≥ 64) measures the overlap term itself. At phase "
             "φ = 0 the shared ranks are ⌊ρt⌋ of a domain's first t tail ranks, so its first "
             "tail rank is its own; at φ > 0, ⌊ρt + φ⌋ (at φ = 1 − ρ the first tail rank is "
             "shared). The law spreads ρ evenly over every rank, the mean over φ.", "",
             markdown_table(["K", "head S", "ρ", "φ", "law", "held-out MRE %",
                             "same law at ρ = 0", "same law at φ = 0",
                             "h_i < 0.1", "h_i ≥ 0.1", *(f"N={n}" for n in sizes),
                             "fitted H", "fitted ρ", "params", "converged"], rows), ""]
    for label in labels:
        for phase in sorted({_phase(r) for r in overlap}):
            mres = [100 * r["laws"][label]["validation_mre"] for r in overlap
                    if label in r["laws"] and _phase(r) == phase]
            if mres:
                lines += [f"**{label}** under overlap, phase {phase:g}: held-out MRE "
                          f"{min(mres):.3g}–{max(mres):.3g} % over {len(mres)} settings.", ""]
    return lines


def run(cfg: Config, log: logging.Logger) -> dict:
    """Every (K, S) setting, in order, from one seeded generator: ``"settings"`` at ``cfg.rho``
    with every law (unless ``base_settings`` is off), ``"overlap"`` the same instances at each of
    ``cfg.overlap_rhos`` with the laws of both lists (unless ``overlap_settings`` is off), and
    ``"overlap_phase"`` those again at each of ``cfg.overlap_phases``."""
    rng = np.random.default_rng(cfg.seed)
    instances = [draw_instance(cfg, k, head, rng) for k in cfg.domain_counts
                 for head in cfg.heads]
    overlap_laws = [s for s in cfg.laws if s in cfg.overlap_laws]
    return {"settings": [run_setting(cfg, inst, cfg.rho, cfg.laws, log) for inst in instances]
            if cfg.base_settings else [],
            "overlap": [run_setting(cfg, inst, rho, overlap_laws, log) for rho in
                        cfg.overlap_rhos for inst in instances]
            if overlap_laws and cfg.overlap_settings else [],
            "overlap_phase": [run_setting(cfg, inst, rho, overlap_laws, log, phase)
                              for phase in cfg.overlap_phases for rho in cfg.overlap_rhos
                              for inst in instances] if overlap_laws else []}


def render(out, record: dict) -> None:
    """The figure and the section from the record."""
    results = with_layout(record["results"])
    plot(results, out)
    fitted = {label for r in results["settings"] for label in r["laws"]}
    quick = config_from_record(Config, record["config"]) == QUICK
    write_section(out, NAME, "\n".join([section(record), "",
                                        *unfitted_laws_lines(NAME, Config().laws, fitted, quick)]))


#: ``--part overlap`` computes the overlap settings alone (``--part settings``: the base ones,
#: ``--part overlap_phase``: the overlap settings at the shifted phases).
PARTS = {"settings": lambda c: dataclasses.replace(c, overlap_rhos=()),
         "overlap": lambda c: dataclasses.replace(c, base_settings=False, overlap_phases=()),
         "overlap_phase": lambda c: dataclasses.replace(c, base_settings=False,
                                                        overlap_settings=False)}


def main(argv: Sequence[str] | None = None) -> int:
    return run_experiment(NAME, __doc__.split("\n\n")[0], Config, run, render, argv,
                          quick_config=QUICK, can_add_laws=True, parts=PARTS)


if __name__ == "__main__":
    raise SystemExit(main())
