"""Fit of the laws to the theory simulator as the domain tails overlap (the paper's Figure 1).

The paper's law is derived for *disjoint* tails (``ρ = 0``): every specialised feature belongs to
one domain, so domains compete for capacity. This experiment measures how well the law, and the
baselines with model-size/token terms, fit the simulator's exact losses when a fraction ``ρ`` of
every tail is shared (``simulate.DisjointTailModel``'s ``rho``; ``ρ = 1`` makes every tail feature
common, so the kept set no longer depends on the mixture and there is no capacity competition).

Protocol, for every head size ``S`` (``Config.heads``):

* one drawn instance (``_sim.draw_instance``: spectra ``α_i ~ U(1.3, 2.5)``, noise
  ``σ_i² ~ U(0.05, 0.3)``, ``β = 0``, keep rule ``"signal"``) and one draw of
  ``n_mixtures`` Dirichlet(1) mixtures, reused for every ``ρ``, so only ``ρ`` changes;
* **what is held fixed**: every domain's tail length ``T`` (``Config.tail``). The feature count
  ``P = S + ⌊ρT⌋ + K(T − ⌊ρT⌋)`` (``_sim.n_features_for_tail``) therefore shrinks as ``ρ``
  grows (shared ranks count once). Holding ``P`` fixed instead would lengthen the tails with
  ``ρ``, changing the spectra as well as the overlap;
* one step size per head, used for every ``ρ`` and every mixture: ``lr_fraction`` × the smallest
  stable step over every ``ρ``'s model, the simplex's vertices, the uniform mixture and every
  size (``_sim.safe_learning_rate``; the vertices bound the stable step from below, and every
  drawn mixture is checked against it);
* exact expected losses of one-pass SGD for every mixture × size ``N`` (kept features) ×
  checkpoint (steps; batch 1, so ``D`` = steps samples). They are ``simulate.sweep``'s numbers
  computed by the closed form of the constant-step recursion (``_sim.closed_form_table``, equal
  to the sweep to ~1e-15 relative, tested), whose cost does not grow with ``D``: budgets up to
  ``1e5`` samples are needed for the capacity term to matter. With the budgets of a few thousand
  steps that the recursion affords, SGD has not learned the features past rank
  ``~(γ D h_i)^{1/α_i}`` (~10–30 here), so the losses barely depend on ``N`` once ``N`` exceeds
  that and the capacity term is inert;
* a 70/30 split by mixture (``mixscale.data.split``, the same split for every ``ρ``): every
  law in ``Config.laws`` (the registered laws with N or D terms and the spectral law) is fitted
  on all sizes and budgets of the training mixtures (``_common.fit_law``: the fitter's one
  policy for every law, Levenberg–Marquardt on the law's structure with nested starts) and
  scored by the mean relative error (MRE) on every held-out
  run.
  The one-scale laws (``Config.one_scale_laws``: the data mixing law and the log-linear
  regression, which have no ``N`` or ``D`` term) are fitted on the training mixtures at the
  largest ``(N, steps)`` only and scored on the held-out mixtures at that scale; for
  comparison, every law's held-out MRE at that scale is reported too.

Outputs (``--out``, default ``figures/``): ``fit_under_overlap.json``, ``fit_under_overlap.md``,
``fit_under_overlap.png`` (held-out MRE vs ``ρ``, one panel per head size).

Cost: ``elapsed_s`` in the JSON (wall time of the full run); ``--quick`` about a minute. Run::

    python -m experiments.fit_under_overlap [--quick] [--redraw] [--out DIR] [--add-law LABEL]
        [--part S8-rho0.75]

(``--add-law`` fits one law alone and merges its rows: nothing in a setting's record depends on
more than one law, but a law's nested variants given with it start it. ``--part S<head>-rho<ρ>``
fits the ``--add-law`` laws on that one setting and merges its rows, the others untouched: the
setting's instance, mixtures and step size are drawn as in the full run, from every head and
overlap of the configuration.)
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from experiments import _common, _figures, _sim
from experiments._harness import config_from_record, run_experiment
from mixscale import LawSpec, law_specs

NAME = "fit_under_overlap"
log = logging.getLogger(NAME)

def fitted_across_scales(spec: LawSpec) -> bool:
    """The laws fitted on the whole grid: every law with model-size or token terms except the
    capacity-only variant, which has no token term while the grid's budgets span two decades."""
    return spec.uses_scale and spec != LawSpec("capacity", variant="capacity")


def fitted_at_one_scale(spec: LawSpec) -> bool:
    """The laws without N or D terms fitted at the largest scale: DML and the log-linear
    regression (DML without an irreducible loss); the linear regression, RegMix's baseline on
    real tables, is left out."""
    return not spec.uses_scale and spec != LawSpec("regression", variant="linear")


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that sets the numbers; the defaults are the full run.

    Units: ``sizes`` in kept features ``N``; ``steps`` in SGD steps of batch 1, so the law's
    ``D`` (samples) equals the step count.
    """

    k: int = 4
    heads: tuple[int, ...] = (0, 8, 32)
    rhos: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    tail: int = 384  # every domain's tail length T, held fixed across rho
    n_mixtures: int = 40
    validation_fraction: float = 0.3
    sizes: tuple[int, ...] = (16, 48, 128)
    steps: tuple[int, ...] = (1000, 10_000, 100_000)
    alpha_range: tuple[float, float] = (1.3, 2.5)
    sigma2_range: tuple[float, float] = (0.05, 0.3)
    beta: float = 0.0
    keep: str = "signal"
    lr_fraction: float = 0.5
    # Every registered law with N or D terms, and the spectral law derived from the SGD
    # recursion (docs/theory.md), fitted on the whole grid like them.
    laws: tuple[LawSpec, ...] = _common.with_spectral(filter(fitted_across_scales, law_specs()))
    one_scale_laws: tuple[LawSpec, ...] = tuple(filter(fitted_at_one_scale, law_specs()))
    n_restarts: int = _common.N_RESTARTS
    seed: int = 0
    #: the ``(head, ρ)`` settings computed, empty for all of ``heads`` × ``rhos`` (a part's
    #: limit, :data:`PARTS`: each setting is drawn as in the full run, from every head and ρ)
    only: tuple[tuple[int, float], ...] = ()

    #: the law lists (``--add-law`` fits a law of either, and only it:
    #: :func:`experiments._harness.law_fields`)
    LAW_FIELDS: ClassVar[tuple[str, ...]] = ("laws", "one_scale_laws")

    def check(self) -> None:
        if self.k < 2:
            raise ValueError(f"k must be >= 2 domains, got {self.k}")
        if not self.rhos or any(not 0.0 <= r <= 1.0 for r in self.rhos):
            raise ValueError(f"every overlap rho must lie in [0, 1], got {self.rhos}")
        if not self.heads or any(s < 0 for s in self.heads):
            raise ValueError(f"head sizes must be >= 0, got {self.heads}")
        unknown = [(s, r) for s, r in self.only if s not in self.heads or r not in self.rhos]
        if unknown:
            raise ValueError(f"settings {unknown} are not among the heads {self.heads} x "
                             f"overlaps {self.rhos}")
        smallest = min(_sim.n_features_for_tail(self.k, s, self.tail, r)
                       for s in self.heads for r in self.rhos)
        if max(self.sizes) > smallest:
            raise ValueError(f"the largest size N={max(self.sizes)} exceeds the smallest model's "
                             f"{smallest} features (raise tail or lower sizes)")
        if len(self.sizes) < 2 or len(self.steps) < 2:
            raise ValueError("need at least two sizes and two step counts to fit N and D terms")


#: The smoke run (a minute): one head, two overlaps, the first law of each kind.
QUICK = Config(heads=(4,), rhos=(0.0, 1.0), tail=48, n_mixtures=12, sizes=(8, 24),
               steps=(100, 3000), laws=(next(filter(fitted_across_scales, law_specs())),),
               one_scale_laws=(next(filter(fitted_at_one_scale, law_specs())),), n_restarts=2)


def scale_mre(res, table, n: float, d: float) -> float:
    """Held-out MRE of fit ``res`` over the rows of ``table`` at model size ``n`` and ``d``
    tokens (law units), or NaN if there are none."""
    import mixscale

    rows = (table.model_size == n) & (table.tokens == d)
    if not rows.any():
        return float("nan")
    sub = table.take(rows)
    obs = sub.select_losses(list(res.targets)).losses
    return float(mixscale.error_metrics(res.predict(sub), obs, res.targets)["mre"])


def _law_record(res, val, top) -> dict:
    return {"n_params": int(res.n_params), "method": res.method,
            "train_mre": float(res.train_metrics["mre"]),
            "train_objective": float(res.objective), **_common.fit_record(res),
            "validation_mre": float(res.validation_metrics["mre"]),
            "validation_mre_top_scale": scale_mre(res, val, *top),
            "fit_s": float(res.timings["total_s"])}


def run_setting(cfg: Config, inst: _sim.Instance, mixtures: np.ndarray, lr: float) -> dict:
    """Simulate one (head, ρ) model, fit every law on the training mixtures, score the rest."""
    from mixscale.data import split

    model = inst.model()
    if set(model.tails) != {cfg.tail}:  # internal invariant of n_features_for_tail
        raise AssertionError(f"tails {model.tails} differ from the fixed tail {cfg.tail}")
    timer = _common.Timer()
    table = setting_table(cfg, inst, mixtures, lr)
    sim_s = timer()
    # how much the grid's N and D move the losses: mean over mixtures and domains of
    # L(smallest, largest) / L(largest, largest) - 1, for N and for D
    grid = table.losses.reshape(cfg.n_mixtures, len(cfg.sizes), len(cfg.steps), cfg.k)
    effects = {"capacity_effect": float(np.mean(grid[:, 0, -1] / grid[:, -1, -1] - 1)),
               "data_effect": float(np.mean(grid[:, -1, 0] / grid[:, -1, -1] - 1))}
    train, val = split(table, cfg.validation_fraction, cfg.seed)
    top = (float(max(cfg.sizes)), float(max(cfg.steps)))
    out = {"head": inst.head, "rho": inst.rho, "n_features": model.n_features,
           "n_train_runs": train.n_runs, "n_validation_runs": val.n_runs, "simulate_s": sim_s,
           "loss_range": [float(table.losses.min()), float(table.losses.max())], **effects,
           "laws": {}}
    fits = _common.fit_laws(cfg.laws, train, validation=val, n_restarts=cfg.n_restarts,
                            seed=cfg.seed)
    for spec in cfg.laws:
        res = fits[spec][0]
        out["laws"][spec.label] = _law_record(res, val, top)
        capacity = res.law.natural_parameters().get("H")
        if capacity is not None:
            out["laws"][spec.label]["fitted_H"] = float(np.asarray(capacity))
        log.info("S=%d rho=%.2f %-18s held-out MRE %.2f%% (%d params, %s, %.1fs)", inst.head,
                 inst.rho, spec.label, 100 * out["laws"][spec.label]["validation_mre"],
                 res.n_params, res.method, res.timings["total_s"])
    at_top = lambda t: t.take((t.model_size == top[0]) & (t.tokens == top[1]))  # noqa: E731
    train_top, val_top = at_top(train), at_top(val)
    one_scale = _common.fit_laws(cfg.one_scale_laws, train_top, validation=val_top,
                                 n_restarts=cfg.n_restarts, seed=cfg.seed)
    for spec in cfg.one_scale_laws:
        res = one_scale[spec][0]
        rec = _law_record(res, val_top, top)
        rec["validation_mre"] = None  # fitted at one scale: only the top-scale error exists
        out["laws"][spec.label] = rec
        log.info("S=%d rho=%.2f %-18s held-out MRE at N=%g, D=%g: %.2f%% (one scale)",
                 inst.head, inst.rho, spec.label, *top, 100 * rec["validation_mre_top_scale"])
    return out


def head_instances(cfg: Config, head: int):
    """``(base, variants, mixtures, lr)`` of head size ``head``: the instance drawn from its own
    stream (seeded by ``cfg.seed`` and the head's index in ``cfg.heads``) with disjoint tails,
    its variant at every overlap of ``cfg.rhos``, the mixtures ``(n_mixtures, K)`` and the one
    constant step size safe for all of them."""
    rng = np.random.default_rng([cfg.seed, cfg.heads.index(head)])
    base = _sim.draw_instance(rng, cfg.k, head=head, n_features=_sim.n_features_for_tail(
        cfg.k, head, cfg.tail, 0.0), beta=cfg.beta, keep=cfg.keep,
        alpha_range=cfg.alpha_range, sigma2_range=cfg.sigma2_range)
    mixtures = rng.dirichlet(np.ones(cfg.k), size=cfg.n_mixtures)
    variants = [base.replace(rho=float(r), n_features=_sim.n_features_for_tail(
        cfg.k, head, cfg.tail, r)) for r in cfg.rhos]
    lr = min(_sim.safe_learning_rate(v.model(), cfg.sizes, fraction=cfg.lr_fraction)
             for v in variants)
    return base, variants, mixtures, lr


def setting_table(cfg: Config, inst: _sim.Instance, mixtures: np.ndarray, lr: float):
    """The exact losses of instance ``inst`` on ``mixtures`` over the grid of ``cfg``, by the
    closed form of the constant-step recursion."""
    return _sim.closed_form_table(inst.model(), mixtures, cfg.sizes, cfg.steps, lr,
                                  name=f"S{inst.head}-rho{inst.rho:g}")


def run(cfg: Config, log: logging.Logger) -> dict:
    """Every (head, ρ) setting of ``cfg``; the results document."""
    cfg.check()
    settings, instances = [], {}
    for head in cfg.heads:
        if cfg.only and head not in {s for s, _ in cfg.only}:
            continue  # each head draws from its own stream, seeded by its index: none to advance
        base, variants, mixtures, lr = head_instances(cfg, head)
        instances[str(head)] = {"alpha": base.alpha, "sigma2": base.sigma2, "lr": lr}
        log.info("S=%d: alpha %s, lr %.4g", head, np.round(base.alpha, 3), lr)
        for v in variants:
            if not cfg.only or (head, v.rho) in cfg.only:
                settings.append(run_setting(cfg, v, mixtures, lr))
    return {"instances": instances, "settings": settings}


def part_name(head: int, rho: float) -> str:
    """The ``--part`` name of the setting of head size ``head`` and tail overlap ``rho``."""
    return f"S{head}-rho{rho:g}"


#: One part per ``(head, ρ)`` setting of the full run (``--add-law LABEL --part S8-rho0.75``):
#: the law's rows of that setting are refitted and merged by the setting's head and ρ
#: (:data:`experiments._harness.ITEM_KEYS`), the other settings untouched.
PARTS = {part_name(s, r): (lambda c, s=s, r=r: dataclasses.replace(c, only=((s, float(r)),)))
         for default in (Config(),) for s in default.heads for r in default.rhos}


# ----------------------------------------------------------------------------- report
def _series(results: dict, head: int, label: str, key: str) -> list:
    return [s["laws"][label][key] for s in results["settings"] if s["head"] == head]


def draw(results: dict, cfg: Config, out) -> str:
    """Held-out MRE (%) vs ρ, one panel per head size, one line per law with N/D terms."""
    plt = _figures.pyplot()
    heads = list(cfg.heads)
    fig, axes = plt.subplots(1, len(heads), figsize=(4.2 * len(heads) + 2.6, 4), sharey=True,
                             squeeze=False)
    markers = "osD^v<>"
    values = []
    for ax, head in zip(axes[0], heads, strict=True):
        rhos = [s["rho"] for s in results["settings"] if s["head"] == head]
        for j, spec in enumerate(cfg.laws):
            y = 100 * np.asarray(_series(results, head, spec.label, "validation_mre"), float)
            values += list(y)
            ax.plot(rhos, y, marker=markers[j % len(markers)], label=spec.label,
                    color=_figures.law_color(j))
        ax.set_title(f"shared head S = {head}")
        ax.set_xlabel("tail overlap ρ")
        ax.set_xticks(list(cfg.rhos))
        ax.grid(alpha=0.3)
    values = np.asarray(values)
    if values.size and values.min() > 0 and values.max() / values.min() > 10:
        axes[0][0].set_yscale("log")
    axes[0][0].set_ylabel("held-out MRE (%)")
    # beside the last panel, so that no line is hidden behind it
    axes[0][-1].legend(fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(f"Laws fitted to simulated losses (K = {cfg.k}, tail T = {cfg.tail}): "
                 "error on held-out mixtures", fontsize=11)
    fig.tight_layout()
    filename = f"{NAME}.png"
    _figures.save_figure(fig, out, filename)
    return filename


def observations(results: dict, cfg: Config) -> list[str]:
    """Statements computed from the results (nothing hard-coded)."""
    lines = []
    cap = cfg.laws[0].label
    for head in cfg.heads:
        rows = [s for s in results["settings"] if s["head"] == head]
        mre = {spec.label: np.asarray([s["laws"][spec.label]["validation_mre"] for s in rows])
               for spec in cfg.laws}
        rhos = [s["rho"] for s in rows]
        c = 100 * mre[cap]
        trend = ("grows" if c[-1] > c[0] else "falls") + f" from {c[0]:.2f}% at ρ={rhos[0]:g} to " \
            f"{c[-1]:.2f}% at ρ={rhos[-1]:g}"
        best = [min(mre, key=lambda lab, i=i: mre[lab][i]) for i in range(len(rows))]
        line = (f"* S = {head}: the {cap} law's held-out MRE {trend} (lowest at "
                f"ρ={rhos[int(np.argmin(c))]:g}); the best law per ρ: "
                + ", ".join(f"{r:g}: {b}" for r, b in zip(rhos, best, strict=True)) + ".")
        lines.append(line)
    settings = results["settings"]
    best = [min((spec.label for spec in cfg.laws), key=lambda lab, s=s: s["laws"][lab][
        "validation_mre"]) for s in settings]
    lines.append("* Settings in which each law has the lowest held-out MRE: " + ", ".join(
        f"{spec.label} {best.count(spec.label)}" for spec in cfg.laws) + f" (of {len(settings)}).")
    joint = next((spec.label for spec in cfg.laws if spec.name == "joint"), None)
    theories = [spec.label for spec in cfg.laws if spec.name == "spectral"] if joint else []
    for theory in theories:
        below = sum(s["laws"][theory]["validation_mre"] < s["laws"][joint]["validation_mre"]
                    for s in settings)
        ranges = "; ".join(
            f"S = {head}: {100 * min(v):.2f}–{100 * max(v):.2f}%"
            for head in cfg.heads
            for v in [[s["laws"][theory]["validation_mre"] for s in settings
                       if s["head"] == head]])
        lines.append(f"* The {theory} law ({settings[0]['laws'][theory]['n_params']} parameters; "
                     f"{joint} {settings[0]['laws'][joint]['n_params']}) is below the {joint} "
                     f"law in {below} of {len(settings)} settings; its held-out MRE over ρ: "
                     f"{ranges}.")
    labels = {spec.variant: spec.label for spec in cfg.laws if spec.name == "capacity"}
    if {"full", "tied"} <= set(labels):
        full, tied = labels["full"], labels["tied"]
        worse = [f"S={s['head']}, ρ={s['rho']:g}" for s in results["settings"]
                 if s["laws"][full]["train_mre"] > s["laws"][tied]["train_mre"]]
        lines.append(f"* The tied law is a special case of the full one, yet the full fit's "
                     f"training MRE is above the tied fit's in {len(worse)} of "
                     f"{len(results['settings'])} settings"
                     + (f" ({'; '.join(worse)}): a sign (MRE is close to, not equal to, the "
                        "fitted Huber objective) that there the full fit with "
                        f"{cfg.n_restarts} restarts stopped in a worse local minimum"
                        if worse else "") + ".")
    return lines


def section(results: dict, cfg: Config, figure: str, elapsed_s: float,
            quick: bool = False) -> str:
    settings = results["settings"]
    scale_labels = [s.label for s in cfg.laws]
    one_labels = [s.label for s in cfg.one_scale_laws]
    params = {lab: settings[0]["laws"][lab]["n_params"] for lab in scale_labels + one_labels}
    lrs = ", ".join(f"S={h}: {results['instances'][str(h)]['lr']:.4g}" for h in cfg.heads)
    text = [
        "## Fit under tail overlap (simulator)", "",
        "Exact expected losses of one-pass SGD (the closed form of `simulate.sweep`'s "
        f"constant-step recursion, `_sim.closed_form_table`) for K = {cfg.k} domains, "
        f"shared head S ∈ {{{', '.join(map(str, cfg.heads))}}} and tail overlap ρ ∈ "
        f"{{{', '.join(f'{r:g}' for r in cfg.rhos)}}}: one drawn instance per head (α_i ~ "
        f"U{tuple(cfg.alpha_range)}, σ_i² ~ U{tuple(cfg.sigma2_range)}, β = {cfg.beta:g}, keep "
        f"rule `{cfg.keep}`) and one set of {cfg.n_mixtures} Dirichlet(1) mixtures, both reused "
        f"for every ρ. Every domain's tail length is held at T = {cfg.tail} (so the feature "
        "count S + ⌊ρT⌋ + K(T − ⌊ρT⌋) shrinks as ρ grows); the step size is one per head for "
        f"every ρ and mixture, {cfg.lr_fraction:g} × the smallest stable step over every ρ's "
        f"model, the simplex's vertices, the uniform mixture and every size ({lrs}). Sizes N "
        f"∈ {{{', '.join(map(str, cfg.sizes))}}} kept features, budgets D ∈ "
        f"{{{', '.join(map(str, cfg.steps))}}} samples (batch 1). Laws are fitted on "
        f"{100 * (1 - cfg.validation_fraction):.0f}% of the mixtures (all sizes and budgets; "
        f"{cfg.n_restarts} restarts, the fitter's one policy for every law) and "
        "scored by the mean relative error on every run of the held-out mixtures. Parameters: "
        + ", ".join(f"{lab} {params[lab]}" for lab in scale_labels) + ". The one-scale laws ("
        + ", ".join(f"{lab}, {params[lab]} parameters" for lab in one_labels)
        + f") have no N or D term: they are fitted on the training mixtures at the largest scale "
        f"(N = {max(cfg.sizes)}, D = {max(cfg.steps)}) only and scored there, next to every "
        "other law's error at that scale.", "",
        f"![Held-out MRE against tail overlap]({figure})", "",
        "Held-out MRE (%) over all sizes and budgets of the held-out mixtures:", "",
    ]
    rows = [[s["head"], f"{s['rho']:g}", s["n_features"]]
            + [100 * s["laws"][lab]["validation_mre"] for lab in scale_labels] for s in settings]
    text += [_common.markdown_table(["S", "ρ", "features P"] + scale_labels, rows), ""]
    listed = Config()
    text += _common.unfitted_laws_lines(NAME, (*listed.laws, *listed.one_scale_laws),
                                        scale_labels + one_labels, quick)
    text += ["How much the grid moves the losses (mean over mixtures and domains, %): the "
             f"capacity effect L(N={min(cfg.sizes)}) / L(N={max(cfg.sizes)}) − 1 at "
             f"D = {max(cfg.steps)}, and the data effect L(D={min(cfg.steps)}) / "
             f"L(D={max(cfg.steps)}) − 1 at N = {max(cfg.sizes)}:", ""]
    rows = [[s["head"], f"{s['rho']:g}", 100 * s["capacity_effect"], 100 * s["data_effect"]]
            for s in settings]
    text += [_common.markdown_table(["S", "ρ", "capacity effect (%)", "data effect (%)"], rows),
             ""]
    text += [f"Held-out MRE (%) at the largest scale only (N = {max(cfg.sizes)}, "
             f"D = {max(cfg.steps)}); the one-scale laws are fitted there:", ""]
    rows = [[s["head"], f"{s['rho']:g}"] + [100 * s["laws"][lab]["validation_mre_top_scale"]
                                            for lab in scale_labels + one_labels]
            for s in settings]
    text += [_common.markdown_table(["S", "ρ"] + scale_labels + one_labels, rows), ""]
    caps = [lab for lab in scale_labels if "fitted_H" in settings[0]["laws"][lab]]
    if caps:
        rows = [[s["head"], f"{s['rho']:g}"] + [s["laws"][lab]["fitted_H"] for lab in caps]
                for s in settings]
        text += ["Fitted shared head H of the capacity laws (features):", "",
                 _common.markdown_table(["S", "ρ"] + [f"H, {lab}" for lab in caps], rows), ""]
    text += ["Observations (computed from the results):", ""] + observations(results, cfg) + [""]
    text += [f"Total run time {elapsed_s / 60:.1f} min."]
    return "\n".join(text)


def render(out, record: dict) -> None:
    """The figure and the section from the record."""
    cfg, results = config_from_record(Config, record["config"]), record["results"]
    figure = draw(results, cfg, out)
    _common.write_section(out, NAME, section(results, cfg, figure, record["elapsed_s"],
                                             cfg == QUICK))


def main(argv: Sequence[str] | None = None) -> int:
    return run_experiment(NAME, __doc__.split("\n\n")[0], Config, run, render, argv,
                          quick_config=QUICK, can_add_laws=True, parts=PARTS)


if __name__ == "__main__":
    raise SystemExit(main())
