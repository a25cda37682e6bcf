"""Theory ablations on the simulator: what the law's fit and its optimum depend on.

One base instance (``K = 4`` domains drawn by ``_sim.draw_instance``, shared head ``S = 4``,
disjoint tails of ``T = 64`` features each, source exponent ``β = 0.5``, keep rule
``"signal"``, a constant step, batch 1), and ONE change at a time:

(a) **exponents**: the law's ``full`` variant (free ``b, c, a`` per domain) against ``tied``
    (``b_i = α_i + β − 1``, ``a_i = b_i/α_i``, ``c_i = κ^{-b_i}/b_i``) on the same losses;
(b) **source exponent** ``β ∈ {0, 0.5, 1}`` (signal ``(w*_k)² = l^{-β}``);
(c) **optimiser**: a step-decay schedule (``simulate.StepDecay``: the step halves every
    ``decay_every`` steps) instead of a constant step, and batch 8 instead of 1 at the same
    sample budgets (``steps = D / B``);
(d) **keep rule**: the learner keeps the ``N`` largest ``λ_k(h)`` (``"eigen"``) instead of the
    ``N`` largest ``λ_k(h)·(w*_k)²`` (``"signal"``, the law's inner problem). The two coincide
    at ``β = 0``, hence the base ``β = 0.5``.

For every variant: exact losses (``simulate.sweep``) of ``n_mixtures`` Dirichlet(1) mixtures
(the same for every variant) × sizes ``N`` (kept features) × budgets ``D`` (samples,
``D = steps × batch``); the law (variant ``full`` unless (a)) fitted on 70% of the mixtures
(``_common.fit_law``), its mean relative error (MRE) on every run of the others — and, beside
it on every variant's data, the laws of ``Config.laws``: the capacity law's ``crossover`` and
``pooled`` variants (``docs/theory.md`` §5, §7) and the spectral law derived from the
recursion (``docs/theory.md``: it models the step schedule only through its integrated step,
and the keep rule not at all, so (c) and (d) test it); and at one
scale ``(N*, D*)`` = the grid's largest, the **regret** of the law's optimal mixture
(``_sim.law_optimum``) for the mean loss over the domains,

    regret(h) = mean_i L_i(h, N*, D*) − min_h' mean_i L_i(h', N*, D*)     (loss units, ≥ 0)

with the simulator's exact losses and its own optimum (``_sim.true_optimum``), next to the
uniform mixture's regret. The step size follows one rule for every mixture evaluated: half the
smallest stable step over the simplex's vertices, the uniform mixture, the drawn mixtures and
every size (``_sim.safe_learning_rate``, per variant since it depends on the model and batch).

Why small sizes and tails: the simulator's optimum (``simulate.optimal_mixture``) and the step
decay need the step-by-step recursion, so budgets stay at a few thousand samples; SGD then learns
only the features up to rank ``~(γ D h_i)^{1/α_i}`` (~10–30), and the sizes must sit below that
for the capacity term to matter at all (with ``N`` in the hundreds the losses would not depend
on ``N``).

Outputs (``--out``, default ``figures/``): ``ablations.json``, ``ablations.md``,
``ablations.png`` (two panels: held-out MRE in %, regret in loss units).

Cost: the full configuration took 23.9 minutes of wall time on a 2-core machine running
another experiment beside it, most of it the spectral law's fits (the capacity law's and the
crossover's take about 2 minutes each, the six simulator optima under one); ``--quick``
(group (c) only, tiny model) under a minute of CPU time. Run::

    python -m experiments.ablations [--quick] [--redraw] [--out DIR] [--add-law LABEL]

Each variant's row holds the ablation's own fit (``"subject"``: the capacity law, variant
``full`` or, in (a), ``tied``) and the fits of ``Config.laws`` (``"laws"``, on the variants
whose subject is ``full``); ``--add-law`` fits one of ``Config.laws`` and merges its rows.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np

from experiments import _common, _figures, _sim
from experiments._harness import config_from_record, run_experiment
from mixscale import LawSpec

NAME = "ablations"
log = logging.getLogger(NAME)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One ablation variant: its group, label and the changes from the base.

    ``changes`` are :class:`_sim.Instance` fields (``beta``, ``keep``); ``schedule`` is
    ``"constant"`` or ``"step decay"``; ``law_variant`` is the capacity law's variant.
    """

    group: str
    label: str
    changes: tuple[tuple[str, object], ...] = ()
    schedule: str = "constant"
    batch_size: int = 1
    law_variant: str = "full"

    def data_key(self) -> tuple:
        """Variants with the same key share the simulated data."""
        return (self.changes, self.schedule, self.batch_size)


#: The groups of the figure, in order; the base variant is repeated in each as the reference.
GROUPS = ("(a) exponents", "(b) source β", "(c) schedule / batch", "(d) keep rule")


def variants(base_beta: float, betas: Sequence[float], batch: int) -> tuple[Variant, ...]:
    """The base (listed once per group) and every one-change variant."""
    out = [Variant(GROUPS[0], "free (full)"), Variant(GROUPS[0], "tied", law_variant="tied")]
    for b in betas:
        out.append(Variant(GROUPS[1], f"β = {b:g}" + (" (base)" if b == base_beta else ""),
                           () if b == base_beta else (("beta", float(b)),)))
    out += [Variant(GROUPS[2], "constant, B = 1 (base)"),
            Variant(GROUPS[2], "step decay, B = 1", schedule="step decay"),
            Variant(GROUPS[2], f"constant, B = {batch}", batch_size=batch),
            Variant(GROUPS[3], "signal (base)"),
            Variant(GROUPS[3], "eigen", (("keep", "eigen"),))]
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that sets the numbers; the defaults are the full run.

    Units: ``sizes`` in kept features ``N``; ``samples`` is the law's ``D`` (``steps × batch``);
    every sample budget must be a multiple of ``batch``.
    """

    k: int = 4
    head: int = 4
    tail: int = 64
    beta: float = 0.5  # the base; at 0 the two keep rules coincide
    betas: tuple[float, ...] = (0.0, 0.5, 1.0)
    batch: int = 8  # the batch of variant (c)
    decay_factor: float = 0.5
    decay_every: int = 512  # steps
    n_mixtures: int = 30
    validation_fraction: float = 0.3
    sizes: tuple[int, ...] = (8, 16, 32)
    samples: tuple[int, ...] = (128, 512, 2048)
    alpha_range: tuple[float, float] = (1.3, 2.5)
    sigma2_range: tuple[float, float] = (0.05, 0.3)
    lr_fraction: float = 0.5
    n_restarts: int = _common.N_RESTARTS
    seed: int = 0
    groups: tuple[str, ...] = GROUPS  # the ablations run (a subset of GROUPS)
    # Fitted next to the capacity law (variant full) on every variant's data.
    laws: tuple[LawSpec, ...] = (LawSpec("capacity", variant="crossover"),
                                 LawSpec("capacity", variant="coupled"),
                                 LawSpec("capacity", variant="pooled"),
                                 LawSpec("capacity", variant="pooled_coupled"),
                                 LawSpec("spectral"))

    def check(self) -> None:
        unknown = set(self.groups) - set(GROUPS)
        if unknown or not self.groups:
            raise ValueError(f"groups must be a non-empty subset of {GROUPS}, got {self.groups}")
        if self.beta not in self.betas:
            raise ValueError(f"the base beta {self.beta} must be one of betas {self.betas}")
        if self.batch < 2:
            raise ValueError(f"the batch of variant (c) must be >= 2, got {self.batch}")
        bad = [d for d in self.samples if d % self.batch or d < self.batch]
        if bad:
            raise ValueError(f"sample budgets {bad} are not positive multiples of the batch "
                             f"{self.batch} (D = steps x batch)")
        n_features = _sim.n_features_for_tail(self.k, self.head, self.tail, 0.0)
        if max(self.sizes) > n_features:
            raise ValueError(f"the largest size N={max(self.sizes)} exceeds the model's "
                             f"{n_features} features")
        if len(self.sizes) < 2 or len(self.samples) < 2:
            raise ValueError("need at least two sizes and two sample budgets")


#: The smoke run (under a minute): group (c) only, on a tiny model, the capacity law alone.
QUICK = Config(head=2, tail=16, n_mixtures=10, sizes=(4, 8), samples=(16, 64), decay_every=16,
               n_restarts=2, groups=(GROUPS[2],), laws=())


def regret(model, h, n: int, steps: int, schedule, batch_size: int, optimum_loss: float) -> float:
    """``mean_i L_i(h) − optimum_loss`` with the simulator's exact losses (loss units)."""
    return float(np.mean(_sim.true_losses(model, h, n, steps, schedule, batch_size))
                 - optimum_loss)


def _schedule(v: Variant, cfg: Config, lr: float):
    import simulate

    if v.schedule == "constant":
        return simulate.Constant(lr)
    if v.schedule == "step decay":
        return simulate.StepDecay(lr, cfg.decay_factor, cfg.decay_every)
    raise ValueError(f"unknown schedule {v.schedule!r}")


def simulate_variant(cfg: Config, base: _sim.Instance, mixtures: np.ndarray, v: Variant) -> dict:
    """The variant's model, step, schedule, loss table and the simulator's optimum at the
    largest scale."""
    import simulate

    inst = base.replace(**dict(v.changes))
    model = inst.model()
    lr = _sim.safe_learning_rate(model, cfg.sizes, v.batch_size, cfg.lr_fraction, mixtures)
    schedule = _schedule(v, cfg, lr)
    steps = [d // v.batch_size for d in cfg.samples]
    timer = _common.Timer()
    table = simulate.sweep(model, mixtures, list(cfg.sizes), steps, schedule, v.batch_size,
                           name=v.label)
    sim_s = timer()
    n_top, steps_top = max(cfg.sizes), max(steps)
    timer = _common.Timer()
    w_opt, loss_opt = _sim.true_optimum(model, n_top, steps_top, schedule, v.batch_size)
    return {"model": model, "schedule": schedule, "table": table, "lr": lr, "steps": steps,
            "top": (n_top, steps_top), "optimum": (w_opt, loss_opt), "simulate_s": sim_s,
            "optimum_s": timer()}


def fit_variant_laws(cfg: Config, specs, data: dict) -> dict:
    """Fit every law of ``specs`` on the training mixtures, each from these fits of its nested
    variants (:func:`experiments._common.fit_laws`): ``{spec: (FitResult, wall s)}``."""
    from mixscale.data import split

    train, val = split(data["table"], cfg.validation_fraction, cfg.seed)
    return _common.fit_laws(specs, train, validation=val, n_restarts=cfg.n_restarts,
                            seed=cfg.seed)


def fit_and_score(cfg: Config, spec: LawSpec, v: Variant, data: dict, res) -> dict:
    """``spec``'s fit ``res`` on the training mixtures (:func:`fit_variant_laws`): its held-out
    MRE, its optimal mixture at the largest scale and that mixture's regret."""
    n_top, steps_top = data["top"]
    timer = _common.Timer()
    h_law, predicted = _sim.law_optimum(res, n_top, steps_top * v.batch_size, seed=cfg.seed)
    return {"law": spec.label, "n_params": int(res.n_params), "method": res.method,
            **_common.fit_record(res), "train_mre": float(res.train_metrics["mre"]),
            "validation_mre": float(res.validation_metrics["mre"]),
            "law_optimum": h_law, "law_predicted_loss": predicted,
            "regret_law": regret(data["model"], h_law, n_top, steps_top, data["schedule"],
                                 v.batch_size, data["optimum"][1]),
            "fit_s": float(res.timings["total_s"]), "law_optimum_s": timer()}


def evaluate_variant(cfg: Config, v: Variant, data: dict) -> dict:
    """Fit the capacity law (``"subject"``) and, where its variant is ``full``, every law of
    ``cfg.laws`` (``"laws"``) on the training mixtures; held-out MREs; regrets at the largest
    scale."""
    n_top, steps_top = data["top"]
    w_opt, loss_opt = data["optimum"]
    k = len(w_opt)
    subject = LawSpec("capacity", variant=v.law_variant)
    laws = list(cfg.laws) if v.law_variant == "full" else []
    fits = fit_variant_laws(cfg, [subject, *laws], data)
    out = {
        "group": v.group, "label": v.label, "changes": dict(v.changes),
        "schedule": v.schedule, "batch_size": v.batch_size, "lr": data["lr"],
        "steps": data["steps"], "scale": {"N": n_top, "D": steps_top * v.batch_size,
                                          "steps": steps_top},
        "subject": fit_and_score(cfg, subject, v, data, fits[subject][0]),
        "true_optimum": w_opt, "true_optimum_loss": loss_opt,
        "regret_uniform": regret(data["model"], np.full(k, 1.0 / k), n_top, steps_top,
                                 data["schedule"], v.batch_size, loss_opt),
        "simulate_s": data["simulate_s"], "optimum_s": data["optimum_s"],
        "laws": [fit_and_score(cfg, spec, v, data, fits[spec][0]) for spec in laws],
    }
    for fit in (out["subject"], *out["laws"]):
        log.info("%-22s %-26s %-22s held-out MRE %.2f%%, regret law %.3g, uniform %.3g",
                 v.group, v.label, fit["law"], 100 * fit["validation_mre"], fit["regret_law"],
                 out["regret_uniform"])
    return out


def run(cfg: Config, log: logging.Logger) -> dict:
    cfg.check()
    rng = np.random.default_rng(cfg.seed)
    base = _sim.draw_instance(rng, cfg.k, head=cfg.head,
                              n_features=_sim.n_features_for_tail(cfg.k, cfg.head, cfg.tail, 0.0),
                              beta=cfg.beta, keep="signal", alpha_range=cfg.alpha_range,
                              sigma2_range=cfg.sigma2_range)
    mixtures = rng.dirichlet(np.ones(cfg.k), size=cfg.n_mixtures)
    data, done, rows = {}, {}, []
    for v in variants(cfg.beta, cfg.betas, cfg.batch):
        if v.group not in cfg.groups:
            continue
        key = v.data_key()
        if key not in data:
            data[key] = simulate_variant(cfg, base, mixtures, v)
        if (key, v.law_variant) not in done:  # the base recurs in every group: fit it once
            done[key, v.law_variant] = evaluate_variant(cfg, v, data[key])
        rows.append({**done[key, v.law_variant], "group": v.group, "label": v.label})
    return {"instance": dataclasses.asdict(base), "variants": rows}


# ----------------------------------------------------------------------------- report
#: Hatches of the laws of ``Config.laws`` in the figure, in order (the subject's bars are plain).
HATCHES = ("///", "...", "xx", "\\\\", "++")


def other_laws(rows) -> list[str]:
    """Labels of the laws fitted beside the subject, in the order of their first appearance."""
    return list(dict.fromkeys(fit["law"] for r in rows for fit in r["laws"]))


def draw(results: dict, out) -> str:
    """Two panels: held-out MRE (%) and regret (loss units), bars grouped by ablation: the
    capacity law (plain) and each law of ``Config.laws`` (hatched) side by side per variant."""
    plt = _figures.pyplot()
    rows = results["variants"]
    fig, (ax_mre, ax_reg) = plt.subplots(1, 2, figsize=(12, 4.8))
    x, ticks, pos = 0.0, [], []
    groups = [g for g in GROUPS if any(r["group"] == g for r in rows)]
    for group in groups:
        members = [r for r in rows if r["group"] == group]
        for r in members:
            pos.append(x)
            ticks.append(r["label"])
            x += 1.0
        x += 0.8
    colors = [f"C{GROUPS.index(r['group'])}" for r in rows]
    others = other_laws(rows)
    width = 0.8 / (1 + len(others))
    left = np.asarray(pos) - 0.4 + width / 2
    series = [("capacity law (the ablation's variant)", None,
               [r["subject"] for r in rows])]
    series += [(label, HATCHES[j % len(HATCHES)],
                [next((f for f in r["laws"] if f["law"] == label), None) for r in rows])
               for j, label in enumerate(others)]
    handles, names = [], []
    for j, (label, hatch, fits) in enumerate(series):
        style = {} if hatch is None else {"hatch": hatch, "edgecolor": "k", "lw": 0.4}
        at = left + j * width
        ax_mre.bar(at, [np.nan if f is None else 100 * f["validation_mre"] for f in fits],
                   width=width, color=colors, **style)
        ax_reg.bar(at, [np.nan if f is None else f["regret_law"] for f in fits],
                   width=width, color=colors, **style)
        handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="0.6", **style))
        names.append(label)
    if others:
        from matplotlib.ticker import LogLocator, NullFormatter

        ax_mre.set_yscale("log")
        ax_mre.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax_mre.yaxis.set_major_formatter("{x:g}")
        ax_mre.yaxis.set_minor_formatter(NullFormatter())
    ax_mre.set_ylabel("held-out MRE (%)")
    ax_mre.set_title("fit error of each law", fontsize=10)
    ax_reg.scatter(pos, [r["regret_uniform"] for r in rows], marker="x", color="k", zorder=3)
    ax_reg.set_ylabel("regret of mean loss (loss units)")
    ax_reg.set_title(f"regret of each law's optimum at N = {rows[0]['scale']['N']} features, "
                     f"D = {rows[0]['scale']['D']} samples", fontsize=10)
    ax_reg.axhline(0.0, color="k", lw=0.6)
    for ax in (ax_mre, ax_reg):
        ax.set_xticks(pos)
        ax.set_xticklabels(ticks, rotation=60, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    group_handles = [plt.Rectangle((0, 0), 1, 1, color=f"C{GROUPS.index(g)}") for g in groups]
    fig.legend([*group_handles, *handles, ax_reg.collections[0]],
               [*groups, *names, "uniform mixture (regret)"], loc="upper center",
               ncol=min(4, len(groups) + len(names) + 1), fontsize=8,
               bbox_to_anchor=(0.5, 1.10))
    fig.tight_layout()
    filename = f"{NAME}.png"
    _figures.save_figure(fig, out, filename)
    return filename


def _span(values, fmt: str) -> str:
    """``"lo–hi"`` of ``values`` in format ``fmt``, or one number where they print alike."""
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    return lo if lo == hi else f"{lo}–{hi}"


def observations(results: dict) -> list[str]:
    rows = results["variants"]
    alpha = results["instance"]["alpha"]
    lines = []
    for r in rows:
        if r["label"] != "free (full)":
            continue
        j = int(np.argmax(r["true_optimum"]))
        opt = r["subject"]["law_optimum"]
        lines.append(f"* Base: the simulator's optimum puts its largest weight, "
                     f"{r['true_optimum'][j]:.3f}, on domain {j} (α = {alpha[j]:.3f}); the "
                     f"capacity law's optimum gives that domain {opt[j]:.3f} and its weights "
                     f"span {min(opt):.3f}–{max(opt):.3f} (uniform: {1 / len(alpha):.3f}).")
    for group in GROUPS:
        members = [r for r in rows if r["group"] == group]
        if not members:
            continue
        lo = min(members, key=lambda r: r["subject"]["validation_mre"])
        hi = max(members, key=lambda r: r["subject"]["validation_mre"])
        beats = [r["label"] for r in members
                 if r["subject"]["regret_law"] < r["regret_uniform"]]
        lines.append(f"* {group}: the capacity law's held-out MRE from "
                     f"{100 * lo['subject']['validation_mre']:.2f}% ({lo['label']}) to "
                     f"{100 * hi['subject']['validation_mre']:.2f}% ({hi['label']}); its "
                     f"optimum beats the uniform mixture in {len(beats)} of {len(members)} "
                     "variants" + (f" ({', '.join(beats)})" if beats else "") + ".")
        for label in other_laws(members):
            pairs = [(f, r) for r in members for f in r["laws"] if f["law"] == label]
            share = [f["regret_law"] / r["regret_uniform"] for f, r in pairs
                     if r["regret_uniform"] > 0]
            mre = [100 * f["validation_mre"] for f, _ in pairs]
            reg = [f["regret_law"] for f, _ in pairs]
            lines.append(f"  The {label} law: held-out MRE {_span(mre, '.3f')}%, regret of "
                         f"its optimum {_span(reg, '.3g')}"
                         + (f" ({_span([100 * v for v in share], '.1f')}% of the uniform "
                            "mixture's)" if share else "") + ".")
    return lines


def section(results: dict, cfg: Config, figure: str, elapsed_s: float) -> str:
    rows = results["variants"]
    inst = results["instance"]
    scale = rows[0]["scale"]
    text = [
        "## Theory ablations (simulator)", "",
        f"One base instance — K = {cfg.k} domains, "
        f"α = ({', '.join(f'{a:.3f}' for a in inst['alpha'])}), "
        f"σ² = ({', '.join(f'{s:.3f}' for s in inst['sigma2'])}), shared head S = {cfg.head}, "
        f"disjoint tails of T = {cfg.tail} features, β = {cfg.beta:g}, keep rule `signal`, "
        "constant step, batch 1 — and one change at a time: (a) the law's exponents free "
        "(`full`) or tied (`tied`) on the same losses; (b) the source exponent β; (c) a step "
        f"decay (×{cfg.decay_factor:g} every {cfg.decay_every} steps) or batch {cfg.batch} at the "
        "same sample budgets; (d) the keep rule `eigen` (top N of λ_k(h)) instead of `signal` "
        "(top N of λ_k(h)(w*_k)²). The base appears in every group as its reference. For each "
        f"variant: exact losses of {cfg.n_mixtures} Dirichlet(1) mixtures (the same for every "
        f"variant) × N ∈ {{{', '.join(map(str, cfg.sizes))}}} kept features × D ∈ "
        f"{{{', '.join(map(str, cfg.samples))}}} samples (D = steps × batch); the capacity law "
        + (f"(and, on every variant's data, {' and '.join(s.label for s in cfg.laws)}: "
           "`docs/theory.md`) " if cfg.laws else "") +
        f"fitted on {100 * (1 - cfg.validation_fraction):.0f}% of the mixtures ({cfg.n_restarts} "
        "restarts) and scored by the mean relative error on every run of the others; at "
        f"N = {scale['N']}, D = {scale['D']} the regret of the law's optimal mixture for the mean "
        "loss (simulator's exact mean loss there minus the simulator's optimum, in loss units), "
        "next to the uniform mixture's. Step size: "
        f"{cfg.lr_fraction:g} × the smallest stable step over the vertices, the uniform mixture, "
        "the drawn mixtures and every size, per variant.", "",
        f"![Ablations: fit error and regret]({figure})", "",
    ]
    header = ["group", "variant", "law", "step size", "held-out MRE (%)", "train MRE (%)",
              "regret law", "regret uniform", "law's optimum h", "true optimum h",
              "true optimal loss"]
    fmt = lambda h: "(" + ", ".join(f"{w:.3f}" for w in h) + ")"  # noqa: E731
    table = [[r["group"], r["label"], f["law"], r["lr"], 100 * f["validation_mre"],
              100 * f["train_mre"], f["regret_law"], r["regret_uniform"], fmt(f["law_optimum"]),
              fmt(r["true_optimum"]), r["true_optimum_loss"]]
             for label in ["subject", *other_laws(rows)] for r in rows
             for f in ([r["subject"]] if label == "subject" else
                       [f for f in r["laws"] if f["law"] == label])]
    text += [_common.markdown_table(header, table), "",
             "Regrets in loss units (the mean over domains of the expected squared error); a "
             "regret of a few 1e-5 below zero is the resolution of the simulator's optimum "
             "search.", "", "Observations (computed from the results):", ""]
    text += observations(results) + ["", f"Total run time {elapsed_s / 60:.1f} min."]
    return "\n".join(text)


def render(out, record: dict) -> None:
    """The figure and the section from the record."""
    cfg = config_from_record(Config, record["config"])
    figure = draw(record["results"], out)
    fitted = {f["law"] for v in record["results"]["variants"] for f in v["laws"]}
    _common.write_section(out, NAME, "\n".join([
        section(record["results"], cfg, figure, record["elapsed_s"]), "",
        *_common.unfitted_laws_lines(NAME, Config().laws, fitted, cfg == QUICK)]))


def main(argv: Sequence[str] | None = None) -> int:
    return run_experiment(NAME, __doc__.split("\n\n")[0], Config, run, render, argv,
                          quick_config=QUICK, can_add_laws=True)


if __name__ == "__main__":
    raise SystemExit(main())
