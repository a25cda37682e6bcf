r"""Extrapolating the optimal mixture across scale on the theory simulator (Figs. 3–4, simulator).

For each simulated instance (``K`` domains, shared head ``S``, drawn with a fixed seed by
:func:`experiments._sim.draw_instance`):

1. simulate the exact expected losses of one-pass SGD (:func:`simulate.sweep`) for
   ``n_mixtures`` Dirichlet mixtures on a grid of SMALL scales, ``N ∈ small_sizes`` kept features
   × ``steps ∈ small_steps`` (law units: ``D = steps × batch_size`` samples);
2. fit the laws with model-size and token terms (capacity full and tied, additive, joint) on that
   grid;
3. predict each law's optimal mixture for the mean loss at a TARGET scale ``(N_T, D_T)`` 4–16×
   larger in ``N`` and ``D`` (:func:`experiments._sim.law_optimum`);
4. train on the simulator, at the target scale, (a) each law's extrapolated mixture, (b) the
   simulator's true optimum at the largest small scale reused unchanged ("static"), and (d) the
   true optimum at the target scale (:func:`experiments._sim.true_optimum`); the additive law's
   extrapolated mixture (c) is one of (a). Regret of a mixture ``h`` at the target:

.. math::

    \mathrm{regret}(h) = \bar L(h; N_T, D_T) - \bar L(h^\star_T; N_T, D_T),\qquad
    \bar L = \frac1K\sum_i L_i\quad\text{(loss units; also in % of the optimum).}

The figure shows the true mean test loss along training (checkpoints up to the target budget,
at the target ``N``) for (a)–(d), as the paper's Figs. 3–4 do for real models, and the regrets at
the target. A table shows how the optimum moves between scales: the true small-scale and
target-scale optima and each law's predicted optima at both scales.

Every mixture at every scale is trained with the same constant step, half the smallest stable
step over the simplex's vertices, the uniform mixture, the training mixtures and every size used
(:func:`experiments._sim.safe_learning_rate`), so a law optimum on a vertex is stable too.

Cost (full configuration: 3 instances, 24 mixtures × 2 sizes × 3 budgets, 4 laws × 8 restarts,
target N = 256 of 1024 features and 2000 steps): measured 9.7 min wall on a 2-core machine
shared with three other jobs, with the simulator's gradient optimum and contour-integral closed
form (29 min before them); the fits now dominate. ``--quick``: one small K = 3 instance and the
capacity law alone, under a minute.

Run: ``python -m experiments.extrapolation_sim [--quick] [--redraw] [--out DIR]``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from experiments import _common, _sim
from experiments._harness import run_experiment
from experiments._sim import InstanceSpec
from mixscale import LawSpec, law_specs

NAME = "extrapolation_sim"
log = logging.getLogger(NAME)

def extrapolated(spec: LawSpec) -> bool:
    """The laws whose optimum can move with both N and D: every law with scale terms except
    BiMix (no model-size term) and the capacity-only variant (no token term)."""
    return (spec.uses_scale and spec.name != "bimix"
            and spec != LawSpec("capacity", variant="capacity"))


STATIC = "static (small-scale optimum)"
TARGET = "target-scale optimum"


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that sets the numbers; the defaults are the full run."""

    instances: tuple[InstanceSpec, ...] = (InstanceSpec(4, 0, 10), InstanceSpec(4, 8, 11),
                                           InstanceSpec(5, 0, 12))
    n_features: int = 1024  # total features P of every model
    small_sizes: tuple[int, ...] = (32, 64)  # N of the fitted grid (kept features)
    small_steps: tuple[int, ...] = (125, 250, 500)  # SGD steps of the fitted grid
    target_size: int = 256  # N_T
    target_steps: int = 2000  # D_T / batch_size
    batch_size: int = 1
    n_curve_points: int = 12  # log-spaced checkpoints of the training curves, up to target_steps
    n_mixtures: int = 24
    dirichlet_concentration: float = 1.0
    alpha_range: tuple[float, float] = (1.3, 2.5)
    sigma2_range: tuple[float, float] = (0.05, 0.3)
    lr_fraction: float = 0.5
    laws: tuple[LawSpec, ...] = tuple(filter(extrapolated, law_specs()))
    n_restarts: int = 8
    fit_seed: int = 0
    optimum_seed: int = 0

    def __post_init__(self):
        if not self.instances or not self.laws:
            raise ValueError("Config.instances and Config.laws must not be empty")
        if not self.small_sizes or not self.small_steps:
            raise ValueError("the small grid needs at least one size and one budget")
        if max(self.small_sizes) >= self.target_size or max(self.small_steps) >= self.target_steps:
            raise ValueError(f"the target scale (N={self.target_size}, steps="
                             f"{self.target_steps}) must exceed every small scale "
                             f"(N <= {max(self.small_sizes)}, steps <= {max(self.small_steps)})")
        if self.target_size > self.n_features:
            raise ValueError(f"target_size {self.target_size} exceeds n_features "
                             f"{self.n_features}")
        if min(self.small_sizes) < 1 or min(self.small_steps) < 1 or self.batch_size < 1:
            raise ValueError("sizes, steps and batch_size must be positive")
        if self.n_curve_points < 2 or self.n_mixtures < 2 or self.n_restarts < 1:
            raise ValueError("n_curve_points and n_mixtures must be >= 2, n_restarts >= 1")
        for law in self.laws:
            if not law.law_class.uses_scale:
                raise ValueError(f"law {law.label} has no N/D terms: it cannot extrapolate")


#: The smoke run (under a minute): one small K = 3 instance and the first extrapolated law.
QUICK = Config(instances=(InstanceSpec(3, 0, 10),), n_features=128, small_sizes=(8, 16),
               small_steps=(25, 50), target_size=48, target_steps=150, n_curve_points=5,
               n_mixtures=10, n_restarts=2, laws=(next(filter(extrapolated, law_specs())),))


def curve_steps(target_steps: int, n: int, first: int = 10) -> list[int]:
    """``n`` distinct, increasing, roughly log-spaced step counts from ``first`` to
    ``target_steps`` (both included)."""
    if not 1 <= first < target_steps:
        raise ValueError(f"need 1 <= first ({first}) < target_steps ({target_steps})")
    raw = np.unique(np.round(np.geomspace(first, target_steps, n)).astype(int))
    return [int(s) for s in raw]


def run_instance(cfg: Config, spec: InstanceSpec) -> dict:
    """Simulate the small grid, fit, extrapolate and score on one instance."""
    import simulate

    timer = _common.Timer()
    rng = np.random.default_rng(spec.seed)
    inst = _sim.draw_instance(rng, spec.k, head=spec.head, n_features=cfg.n_features,
                              alpha_range=cfg.alpha_range, sigma2_range=cfg.sigma2_range)
    model = inst.model()
    mixtures = rng.dirichlet(np.full(spec.k, cfg.dirichlet_concentration), size=cfg.n_mixtures)
    sizes = [*cfg.small_sizes, cfg.target_size]
    lr = _sim.safe_learning_rate(model, sizes, cfg.batch_size, cfg.lr_fraction,
                                 mixtures=mixtures)
    schedule = simulate.Constant(lr)
    table = simulate.sweep(model, mixtures, list(cfg.small_sizes), list(cfg.small_steps),
                           schedule, cfg.batch_size, name=f"sim-{spec.label}")
    n_s, steps_s = max(cfg.small_sizes), max(cfg.small_steps)
    n_t, steps_t, b = cfg.target_size, cfg.target_steps, cfg.batch_size
    t0 = timer()
    small_w, _ = _sim.true_optimum(model, n_s, steps_s, schedule, b)
    target_w, _ = _sim.true_optimum(model, n_t, steps_t, schedule, b)
    optimum_s = timer() - t0
    log.info("%s: true optimum %s at N=%d/%d steps, %s at N=%d/%d steps (%.0fs)", spec.label,
             np.round(small_w, 3), n_s, steps_s, np.round(target_w, 3), n_t, steps_t, optimum_s)

    candidates = {TARGET: target_w, STATIC: small_w, "uniform": np.full(spec.k, 1.0 / spec.k)}
    laws = []
    for law in cfg.laws:
        row = {"law": law.label}
        try:
            res = _common.fit_law(law, table, n_restarts=cfg.n_restarts, seed=cfg.fit_seed)
            w_t, pred_t = _sim.law_optimum(res, n_t, steps_t * b, seed=cfg.optimum_seed)
            w_s, _ = _sim.law_optimum(res, n_s, steps_s * b, seed=cfg.optimum_seed)
        except Exception as err:  # recorded, not fatal: the other laws still count
            row.update(status=f"failed: {type(err).__name__}: {err}")
            log.warning("%s: %s failed: %s", spec.label, law.label, err)
            laws.append(row)
            continue
        row.update(status="ok", n_params=res.n_params, method=res.method,
                   fit_s=float(res.timings["total_s"]), train_mre=res.train_metrics["mre"],
                   weights=w_t, weights_small=w_s, predicted_loss=pred_t)
        candidates[law.label] = w_t
        laws.append(row)
        log.info("%s: %-18s MRE %.4f, optimum %s (small scale %s)", spec.label, law.label,
                 res.train_metrics["mre"], np.round(w_t, 3), np.round(w_s, 3))

    # True mean loss along training at the target N, every candidate in one call; the last
    # checkpoint is the target budget.
    names = list(candidates)
    checkpoints = curve_steps(steps_t, cfg.n_curve_points)
    curves = _sim.mean_true_losses(model, np.stack([candidates[n] for n in names]), n_t,
                                   checkpoints, schedule, b)
    final = curves[:, -1]
    reference = float(final[0])
    scored = {n: {"weights": candidates[n], "curve": curves[i], "true_loss": float(final[i]),
                  "regret": float(final[i] - reference),
                  "regret_pct": float(100 * (final[i] - reference) / reference)}
              for i, n in enumerate(names)}
    for row in laws:
        if row["status"] == "ok":
            row.update(scored[row["law"]])
    return {
        "instance": spec.label, "k": spec.k, "head": spec.head, "seed": spec.seed,
        "alpha": inst.alpha, "sigma2": inst.sigma2, "lr": lr, "curve_steps": checkpoints,
        "small_scale": {"N": n_s, "steps": steps_s}, "target": {"N": n_t, "steps": steps_t},
        "references": {n: scored[n] for n in (TARGET, STATIC, "uniform")},
        "laws": laws, "optimum_s": optimum_s, "elapsed_s": timer(),
    }


# ----------------------------------------------------------------------------- report
_ZERO_SHIFT = 1e-6


def shift_cosine(predicted, true) -> float:
    """Cosine between a predicted shift of the optimum ``Δh`` and the true one (``(K,)`` each):
    1 when the law moves the mixture in the true direction, −1 when opposite; NaN when either
    shift is zero (``‖Δh‖₁ < 1e-6``)."""
    p, t = np.asarray(predicted, dtype=float), np.asarray(true, dtype=float)
    # Shifts below the optimisers' resolution (~1e-6 in the weights) have no direction.
    if np.abs(p).sum() < _ZERO_SHIFT or np.abs(t).sum() < _ZERO_SHIFT:
        return float("nan")
    return float(p @ t / (np.linalg.norm(p) * np.linalg.norm(t)))


def _fmt_w(w) -> str:
    return "(" + ", ".join(f"{x:.3f}" for x in w) + ")"


def _lines(inst: dict) -> list[tuple[str, dict]]:
    """``(label, scored mixture)`` for every curve: laws, static, uniform, then the target."""
    out = [(r["law"], r) for r in inst["laws"] if r["status"] == "ok"]
    refs = inst["references"]
    return out + [(STATIC, refs[STATIC]), ("uniform", refs["uniform"]), (TARGET, refs[TARGET])]


_LINTHRESH = 1e-5

_STYLE = {TARGET: dict(color="k", ls="--", lw=2.0), STATIC: dict(color="tab:gray", ls="-", lw=2),
          "uniform": dict(color="tab:gray", ls=":", lw=1.5)}


def draw_curves(results: dict, out: Path) -> str:
    """Per instance: true mean test loss along training at the target N (top) and its excess
    over the target-scale optimum's curve (bottom, log). Returns the file name."""
    plt = _common.pyplot()
    instances = results["instances"]
    n = len(instances)
    fig, axes = plt.subplots(2, n, figsize=(min(5.0 * n, 15), 7), squeeze=False,
                             sharex=True)
    cmap = plt.get_cmap("tab10")
    labels = results["law_labels"]
    for col, inst in enumerate(instances):
        steps = np.asarray(inst["curve_steps"], dtype=float) * results["config"]["batch_size"]
        ref = np.asarray(inst["references"][TARGET]["curve"], dtype=float)
        top, bottom = axes[0, col], axes[1, col]
        for label, scored in _lines(inst):
            style = _STYLE.get(label) or dict(color=cmap(labels.index(label) % 10), ls="-",
                                              lw=1.5)
            curve = np.asarray(scored["curve"], dtype=float)
            top.plot(steps, curve, label=label, **style)
            if label != TARGET:
                bottom.plot(steps, curve - ref, **style)
        top.set_xscale("log")
        top.set_title(f"{inst['instance']}: N = {inst['target']['N']} features")
        # Before the target budget the target-scale optimum need not be best: differences take
        # both signs, hence a symmetric log axis (linear within ±1e-5).
        bottom.set_yscale("symlog", linthresh=_LINTHRESH)
        bottom.axhline(0.0, color="k", lw=0.8)
        bottom.set_xlabel("training samples D (log)")
        top.grid(alpha=0.3, which="both")
        bottom.grid(alpha=0.3, which="both")
    axes[0, 0].set_ylabel("true mean test loss")
    axes[1, 0].set_ylabel("loss − target-scale optimum's loss\n(symmetric log)")
    axes[0, -1].legend(fontsize=7, loc="upper right")
    fig.suptitle("Training at the target scale with the extrapolated mixtures", fontsize=11)
    fig.tight_layout()
    name = f"{NAME}_curves.png"
    _common.save_figure(fig, out, name)
    return name


def draw_regret(results: dict, out: Path) -> str:
    """Regret at the target budget (% of the optimal mean loss) of every extrapolated mixture,
    the static mixture and the uniform mixture, one group per instance. Returns the file name."""
    plt = _common.pyplot()
    instances = results["instances"]
    labels = [*results["law_labels"], STATIC, "uniform"]
    cmap = plt.get_cmap("tab10")
    colors = {lab: cmap(i % 10) for i, lab in enumerate(results["law_labels"])}
    colors.update({STATIC: "tab:gray", "uniform": "lightgray"})
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(labels)
    floor = 1e-4
    lowest = np.inf
    for j, label in enumerate(labels):
        xs, ys = [], []
        for i, inst in enumerate(instances):
            scored = dict(_lines(inst)).get(label)
            if scored is None:
                continue
            xs.append(i - 0.4 + (j + 0.5) * width)
            ys.append(max(scored["regret_pct"], floor))
        ax.bar(xs, ys, width=width * 0.9, color=colors[label], label=label,
               hatch="//" if label == STATIC else None)
        lowest = min(lowest, *ys) if ys else lowest
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.5 * lowest)
    ax.set_xticks(range(len(instances)))
    ax.set_xticklabels([inst["instance"] for inst in instances])
    ax.set_xlabel("simulated instance" + (f" (bars at {floor:g} % are at or below it)"
                                          if lowest <= floor else ""))
    ax.set_ylabel("regret at the target scale\n(% of the optimal mean loss, log)")
    t = instances[0]["target"]
    ax.set_title(f"Regret of extrapolated mixtures at N = {t['N']}, "
                 f"D = {t['steps'] * results['config']['batch_size']} samples")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3, which="both")
    name = f"{NAME}_regret.png"
    _common.save_figure(fig, out, name)
    return name


def section(results: dict, figures: Sequence[str]) -> str:
    """The markdown section, generated from the results."""
    cfg = results["config"]
    instances = results["instances"]
    labels = results["law_labels"]
    b = cfg["batch_size"]
    d_small = [s * b for s in cfg["small_steps"]]
    t_n, t_d = cfg["target_size"], cfg["target_steps"] * b
    lines = [
        "## Extrapolating the optimal mixture across scale on the simulator", "",
        f"On {len(instances)} simulated instances ({'; '.join(i['instance'] for i in instances)}"
        f"; {cfg['n_features']} features, fixed seeds) the laws with model-size and token terms "
        f"({', '.join(labels)}) were fitted to the exact expected losses of {cfg['n_mixtures']} "
        f"Dirichlet mixtures on a small grid, N ∈ {list(cfg['small_sizes'])} kept features × "
        f"D ∈ {d_small} samples ({cfg['n_restarts']} restarts), and asked for the optimal "
        f"mixture of the mean loss at the target N = {t_n}, D = {t_d} "
        f"({t_n / max(cfg['small_sizes']):g}× the largest small N, "
        f"{t_d / max(d_small):g}× the largest small D). Each mixture was then trained on the "
        "simulator at the target scale (same constant step for every mixture and scale). "
        "Compared: each law's extrapolated mixture, the simulator's optimum at the largest small "
        "scale reused unchanged (*static*: an oracle at the small scale, so a stronger baseline "
        "than a law's small-scale pick), the uniform mixture, and the simulator's optimum at "
        "the target scale (the reference). Regret = true mean loss − the reference's (loss "
        "units, and in % of it).", "",
        f"![True mean test loss along training at the target scale]({figures[0]})", "",
        f"![Regret at the target scale]({figures[1]})", ""]
    header = ["mixture"] + [i["instance"] for i in instances]
    rows_abs, rows_pct = [], []
    for label in [*labels, STATIC, "uniform"]:
        vals_abs, vals_pct = [], []
        for inst in instances:
            scored = dict(_lines(inst)).get(label)
            vals_abs.append(scored["regret"] if scored else float("nan"))
            vals_pct.append(scored["regret_pct"] if scored else float("nan"))
        rows_abs.append([label] + vals_abs)
        rows_pct.append([label] + vals_pct)
    rows_abs.append([f"*{TARGET}: mean loss*"]
                    + [i["references"][TARGET]["true_loss"] for i in instances])
    lines += ["Regret at the target scale (loss units):", "",
              _common.markdown_table(header, rows_abs), "",
              "Regret at the target scale (% of the optimal mean loss):", "",
              _common.markdown_table(header, rows_pct), ""]
    # Observations computed from the results.
    obs = []
    for law in labels:
        beats_static = beats_add = n_ok = 0
        for inst in instances:
            scored = dict(_lines(inst))
            if law not in scored:
                continue
            n_ok += 1
            beats_static += scored[law]["true_loss"] < scored[STATIC]["true_loss"]
            add = scored.get("additive")
            beats_add += add is not None and scored[law]["true_loss"] < add["true_loss"]
        if law != "additive":
            obs.append(f"{law}: beats static in {beats_static}/{n_ok}, the additive law's "
                       f"mixture in {beats_add}/{n_ok} instances")
        else:
            obs.append(f"{law}: beats static in {beats_static}/{n_ok} instances")
    lines += ["At the target scale — " + "; ".join(obs) + "."]
    failed = sorted({r["law"] for i in instances for r in i["laws"] if r["status"] != "ok"})
    if failed:
        lines += ["", "Fits that failed (messages in the JSON): " + ", ".join(failed) + "."]
    lines += ["", "### How the optimum moves with scale", "",
              "True optima at the largest small scale and at the target, and each law's "
              "predicted optimum at both (its in-sample pick at the small scale, its "
              "extrapolation at the target), the size of each shift and the cosine between a "
              "law's predicted shift and the simulator's (1: right direction). Weights in domain "
              "order; the domains' spectral exponents α are given per instance.", ""]
    for inst in instances:
        s, t = inst["small_scale"], inst["target"]
        lines += [f"**{inst['instance']}** — α = {_fmt_w(inst['alpha'])}, σ² = "
                  f"{_fmt_w(inst['sigma2'])}, step {inst['lr']:.4g}.", ""]
        true_s = np.asarray(inst["references"][STATIC]["weights"])
        true_t = np.asarray(inst["references"][TARGET]["weights"])
        rows = [["simulator (true)", _fmt_w(true_s), _fmt_w(true_t),
                 float(np.abs(true_t - true_s).sum()), None, None, None]]
        for r in inst["laws"]:
            if r["status"] != "ok":
                rows.append([r["law"], r["status"], None, None, None, None, None])
                continue
            w_s, w_t = np.asarray(r["weights_small"]), np.asarray(r["weights"])
            rows.append([r["law"], _fmt_w(w_s), _fmt_w(w_t), float(np.abs(w_t - w_s).sum()),
                         shift_cosine(w_t - w_s, true_t - true_s), r["n_params"],
                         100 * r["train_mre"]])
        lines += [_common.markdown_table(
            ["mixture", f"optimum at N={s['N']}, D={s['steps'] * b}",
             f"optimum at N={t['N']}, D={t['steps'] * b}", "shift ‖Δh‖₁",
             "cos(shift, true shift)", "params", "fit MRE % (small grid)"], rows), ""]
    lines += ["Training-curve values (true mean loss at the target N at each checkpoint) are "
              "in the JSON (`curve`, `curve_steps`).", "",
              f"Total run time {results['elapsed_s'] / 60:.1f} min."]
    return "\n".join(lines)


def run(cfg: Config, log: logging.Logger) -> dict:
    """Every instance of ``cfg``, in order."""
    return {"law_labels": [law.label for law in cfg.laws],
            "instances": [run_instance(cfg, spec) for spec in cfg.instances]}


def render(out: Path, record: dict) -> None:
    """The figures and the section, drawn from the record alone."""
    report = {**record["results"], "config": record["config"], "elapsed_s": record["elapsed_s"]}
    figures = [draw_curves(report, out), draw_regret(report, out)]
    _common.write_section(out, NAME, section(report, figures))


def main(argv: Sequence[str] | None = None) -> int:
    return run_experiment(NAME, __doc__.splitlines()[0], Config, run, render, argv,
                          quick_config=QUICK)


if __name__ == "__main__":
    raise SystemExit(main())
