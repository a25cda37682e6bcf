r"""How good is each law's optimal mixture? Regret on the theory simulator at one scale (Fig. 2).

For each simulated problem instance (``K`` domains, shared head ``S``; spectra, noise and natural
proportions drawn by :func:`experiments._sim.draw_instance` with a fixed seed):

1. simulate the exact expected losses of one-pass SGD (:func:`simulate.sweep`) for
   ``n_mixtures`` random mixtures ``h ~ Dirichlet(1)`` at ONE scale: ``N`` kept features, ``steps``
   SGD steps of batch ``B`` (law units: ``D = steps × B`` samples) — the paper's Fig. 2 fits and
   compares at one scale;
2. fit every registered law (:func:`mixscale.law_specs`) and the spectral law
   (``docs/theory.md``) to those runs
   (:func:`experiments._common.fit_law`). Laws with ``N``/``D`` terms are fitted at one scale too:
   their scale parameters are then unidentified, which does not matter for picking a mixture at
   that scale;
3. take each law's optimal mixture for the mean loss at that ``(N, D)``
   (:func:`experiments._sim.law_optimum`) and evaluate its TRUE mean loss on the simulator;
4. regret against the simulator's own optimum (:func:`experiments._sim.true_optimum`):

.. math::

    \mathrm{regret}(h) = \bar L(h) - \min_{h'} \bar L(h'),\qquad
    \bar L(h) = \frac1K \sum_i L_i(h, N, D)\quad\text{(loss units; also in % of the optimum)}

and the same for three mixtures chosen without a law: uniform ``1/K``, proportional (the
instance's natural data proportions) and the best of the training mixtures ("pick the best
measured run").

Every mixture is trained with the same constant step, half the smallest stable step over the
simplex's vertices, the uniform mixture and the training mixtures
(:func:`experiments._sim.safe_learning_rate`), so optima on a vertex are stable too. The
reference optimum is a derivative-free search of the exact loss; its resolution (~1e-4 in the
weights) can leave regrets a few 1e-6 below zero, reported as measured.

Cost (full configuration, 4 instances × 24 mixtures, 9 laws, 8 restarts each): measured 27 min
wall on a 2-core machine shared with other jobs (load average ≈ 12), roughly 8 min of one idle
core (fits ~2/3 of it, the reference optima most of the rest); ``--quick``: one
small K = 3 instance with the two cheapest laws (DML, linear regression), well under a minute.

Run: ``python -m experiments.optimal_mixture_regret [--quick] [--redraw] [--out DIR]
[--add-law LABEL]`` (``--add-law``: the references and the optimum come from the simulator alone).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from experiments import _common, _figures, _sim
from experiments._harness import config_from_record, run_experiment
from experiments._sim import InstanceSpec
from mixscale import LawSpec, law_specs

NAME = "optimal_mixture_regret"
log = logging.getLogger(NAME)

#: Labels of the mixtures chosen without a law, in table order.
BASELINES = ("uniform", "proportional", "best measured")


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that sets the numbers; the defaults are the full run."""

    instances: tuple[InstanceSpec, ...] = (InstanceSpec(4, 0, 0), InstanceSpec(4, 32, 1),
                                           InstanceSpec(5, 0, 2), InstanceSpec(5, 32, 3))
    n_features: int = 1024  # total features P of every model
    size: int = 256  # N, kept features
    steps: int = 1000  # SGD steps (D = steps × batch_size samples)
    batch_size: int = 1
    n_mixtures: int = 24  # training mixtures, Dirichlet(dirichlet_concentration · 1)
    dirichlet_concentration: float = 1.0
    alpha_range: tuple[float, float] = (1.3, 2.5)
    sigma2_range: tuple[float, float] = (0.05, 0.3)
    lr_fraction: float = 0.5  # of the smallest stable step (vertices, uniform, training mixtures)
    # Every registered law, in registration order, and the spectral law with its offset
    # variant (``docs/theory.md`` §7: the shared ranks placed in rank order).
    laws: tuple[LawSpec, ...] = (*_common.with_spectral(law_specs()),
                                 LawSpec("spectral", variant="offset"))
    n_restarts: int = _common.N_RESTARTS
    fit_seed: int = 0
    optimum_seed: int = 0  # random starts of the law-optimum search

    def __post_init__(self):
        if not self.instances:
            raise ValueError("Config.instances is empty")
        if not 0 < self.size <= self.n_features:
            raise ValueError(f"size N={self.size} must lie in (0, n_features={self.n_features}]")
        if self.steps < 1 or self.batch_size < 1 or self.n_restarts < 1:
            raise ValueError("steps, batch_size and n_restarts must be positive")
        if self.n_mixtures < 2:
            raise ValueError(f"n_mixtures must be at least 2, got {self.n_mixtures}")
        if not self.laws:
            raise ValueError("Config.laws is empty")


#: The smoke run (seconds): one small instance and the two one-scale laws that fit in seconds
#: (DML and the linear regression; the log-linear one is left out).
QUICK = Config(instances=(InstanceSpec(3, 4, 0),), n_features=128, size=32, steps=100,
               n_mixtures=10, n_restarts=2,
               laws=tuple(s for s in law_specs(uses_scale=False) if s.variant != "loglinear"))


def regrets(values, reference: float) -> tuple[np.ndarray, np.ndarray]:
    """``(regret, relative regret in %)`` of target losses ``values`` against ``reference``:
    ``v − ref`` and ``100 (v − ref) / ref``."""
    v = np.asarray(values, dtype=float)
    if not (np.isfinite(reference) and reference > 0):
        raise ValueError(f"the reference loss must be positive and finite, got {reference!r}")
    return v - reference, 100.0 * (v - reference) / reference


def run_instance(cfg: Config, spec: InstanceSpec) -> dict:
    """Simulate, fit every law, and score every law's optimal mixture on one instance."""
    import simulate

    timer = _common.Timer()
    rng = np.random.default_rng(spec.seed)
    inst = _sim.draw_instance(rng, spec.k, head=spec.head, n_features=cfg.n_features,
                              alpha_range=cfg.alpha_range, sigma2_range=cfg.sigma2_range)
    model = inst.model()
    mixtures = rng.dirichlet(np.full(spec.k, cfg.dirichlet_concentration), size=cfg.n_mixtures)
    lr = _sim.safe_learning_rate(model, [cfg.size], cfg.batch_size, cfg.lr_fraction,
                                 mixtures=mixtures)
    schedule = simulate.Constant(lr)
    table = simulate.sweep(model, mixtures, [cfg.size], [cfg.steps], schedule, cfg.batch_size,
                           name=f"sim-{spec.label}")
    tokens = cfg.steps * cfg.batch_size
    t0 = timer()
    opt_w, _ = _sim.true_optimum(model, cfg.size, cfg.steps, schedule, cfg.batch_size)
    optimum_s = timer() - t0
    log.info("%s: simulated %d mixtures, true optimum %s (%.0fs)", spec.label, cfg.n_mixtures,
             np.round(opt_w, 3), optimum_s)

    measured = table.losses.mean(axis=1)
    best = int(np.argmin(measured))
    candidates = {"uniform": np.full(spec.k, 1.0 / spec.k),
                  "proportional": np.asarray(inst.natural),
                  "best measured": mixtures[best]}
    laws = []
    fits = _common.fit_laws(cfg.laws, table, n_restarts=cfg.n_restarts, seed=cfg.fit_seed,
                            catch=True)
    for law in cfg.laws:
        row = {"law": law.label}
        try:
            res = fits[law][0]
            if isinstance(res, Exception):
                raise res
            w, predicted = _sim.law_optimum(res, cfg.size, tokens, seed=cfg.optimum_seed)
        except Exception as err:  # a law that cannot be fitted here is recorded, not fatal
            row.update(status=f"failed: {type(err).__name__}: {err}")
            log.warning("%s: %s failed: %s", spec.label, law.label, err)
            laws.append(row)
            continue
        row.update(status="ok", n_params=res.n_params, method=res.method,
                   fit_s=float(res.timings["total_s"]), train_mre=res.train_metrics["mre"],
                   weights=w, predicted_loss=predicted, **_common.fit_record(res))
        candidates[law.label] = w
        laws.append(row)
        log.info("%s: %-22s %3d params, MRE %.4f, optimum %s", spec.label, law.label,
                 res.n_params, res.train_metrics["mre"], np.round(w, 3))

    # Every mixture (and the reference optimum) through the same exact evaluator.
    names = list(candidates)
    values = _sim.mean_true_losses(model, np.stack([opt_w] + [candidates[n] for n in names]),
                                   cfg.size, [cfg.steps], schedule, cfg.batch_size)[:, 0]
    reference, values = float(values[0]), values[1:]
    reg, rel = regrets(values, reference)
    scored = {n: {"weights": candidates[n], "true_loss": float(v), "regret": float(r),
                  "regret_pct": float(p)} for n, v, r, p in zip(names, values, reg, rel,
                                                                 strict=True)}
    for row in laws:
        if row["status"] == "ok":
            row.update(scored[row["law"]])
    return {
        "instance": spec.label, "k": spec.k, "head": spec.head, "seed": spec.seed,
        "alpha": inst.alpha, "sigma2": inst.sigma2, "natural": inst.natural, "lr": lr,
        "optimum": {"weights": opt_w, "true_loss": reference},
        "baselines": {n: scored[n] for n in BASELINES},
        "best_measured_index": best, "laws": laws,
        "optimum_s": optimum_s, "elapsed_s": timer(),
    }


# ----------------------------------------------------------------------------- report
def _fmt_w(w) -> str:
    return "(" + ", ".join(f"{x:.2f}" for x in w) + ")"


#: Smallest regret (in % of the optimum) the log-scale figure shows; smaller ones sit on it.
_FLOOR_PCT = 1e-4


def draw(results: dict, out: Path) -> str:
    """The regret figure: relative regret (%) of every law's optimum, one group per instance,
    the three law-free mixtures as horizontal marks. Returns the file name."""
    plt = _figures.pyplot()
    instances = results["instances"]
    labels = results["law_labels"]
    n_l = len(labels)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / n_l
    lowest = [inst["baselines"]["best measured"]["regret_pct"] for inst in instances]
    for j, label in enumerate(labels):
        xs, ys = [], []
        for i, inst in enumerate(instances):
            row = next(r for r in inst["laws"] if r["law"] == label)
            if row["status"] != "ok":
                continue
            xs.append(i - 0.4 + (j + 0.5) * width)
            ys.append(max(row["regret_pct"], _FLOOR_PCT))
        lowest += ys
        ax.bar(xs, ys, width=width * 0.9, color=_figures.law_color(j), label=label)
    styles = {"uniform": ("k", "--"), "proportional": ("tab:gray", ":"),
              "best measured": ("k", "-")}
    for name, (color, ls) in styles.items():
        for i, inst in enumerate(instances):
            y = max(inst["baselines"][name]["regret_pct"], _FLOOR_PCT)
            ax.hlines(y, i - 0.45, i + 0.45, colors=color, linestyles=ls, linewidth=1.8,
                      label=name if i == 0 else None)
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.5 * max(_FLOOR_PCT, min(lowest)))
    ax.set_xticks(range(len(instances)))
    ax.set_xticklabels([inst["instance"] for inst in instances])
    ax.set_xlabel("simulated instance (K domains, shared head S)"
                  + (f"; bars at {_FLOOR_PCT:g} % are at or below it"
                     if min(lowest) <= _FLOOR_PCT else ""))
    ax.set_ylabel("regret of the chosen mixture\n(% of the optimal mean loss, log)")
    ax.set_title(f"True regret of each law's optimal mixture (N={results['config']['size']}, "
                 f"D={results['config']['steps'] * results['config']['batch_size']} samples)")
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3, which="both")
    name = f"{NAME}.png"
    _figures.save_figure(fig, out, name)
    return name


def section(results: dict, figure: str) -> str:
    """The markdown section, generated from the results."""
    cfg = results["config"]
    instances = results["instances"]
    labels = results["law_labels"]
    lines = [
        "## Quality of each law's optimal mixture on the simulator (one scale)", "",
        f"On {len(instances)} simulated instances ({'; '.join(i['instance'] for i in instances)}"
        f"; {cfg['n_features']} features, spectra α ∈ [{cfg['alpha_range'][0]}, "
        f"{cfg['alpha_range'][1]}], noise σ² ∈ [{cfg['sigma2_range'][0]}, "
        f"{cfg['sigma2_range'][1]}], fixed seeds) the exact expected losses of one-pass SGD were "
        f"simulated for {cfg['n_mixtures']} Dirichlet mixtures at one scale (N = {cfg['size']} "
        f"kept features, {cfg['steps']} steps of batch {cfg['batch_size']}, i.e. "
        f"D = {cfg['steps'] * cfg['batch_size']} samples; constant step, half the smallest "
        f"stable step over the simplex). Every law was fitted to those runs "
        f"({cfg['n_restarts']} restarts), its optimal mixture for the mean loss at that scale was "
        "trained on the simulator, and its true mean loss compared with the simulator's optimum. "
        "Regret = true mean loss − optimal mean loss (loss units; also in % of the optimum). "
        "Reference mixtures chosen without a law: uniform, the instance's natural proportions, "
        "and the best of the training mixtures (what one gets by picking the best measured run).",
        "", f"![Regret of each law's optimal mixture]({figure})", ""]
    lines += _common.unfitted_laws_lines(NAME, Config().laws, labels, results["quick"])
    # Summary: relative regret per law and instance.
    header = ["mixture"] + [i["instance"] for i in instances] + ["mean", "beats best measured"]
    rows = []
    for label in labels:
        vals, beats = [], 0
        for inst in instances:
            row = next(r for r in inst["laws"] if r["law"] == label)
            if row["status"] == "ok":
                vals.append(row["regret_pct"])
                beats += row["true_loss"] < inst["baselines"]["best measured"]["true_loss"]
            else:
                vals.append(float("nan"))
        ok = [v for v in vals if np.isfinite(v)]
        rows.append([label] + vals + [float(np.mean(ok)) if ok else float("nan"),
                                      f"{beats}/{len(instances)}"])
    for name in BASELINES:
        vals = [inst["baselines"][name]["regret_pct"] for inst in instances]
        rows.append([f"*{name}*"] + vals + [float(np.mean(vals)), "—"])
    lines += ["Regret in % of the optimal mean loss (negative: within the reference search's "
              "resolution):", "", _common.markdown_table(header, rows), ""]
    # Observations computed from the results.
    winners = []
    for inst in instances:
        ok = [r for r in inst["laws"] if r["status"] == "ok"]
        if ok:
            w = min(ok, key=lambda r: r["regret"])
            winners.append(f"{inst['instance']}: {w['law']}")
    failed = sorted({r["law"] for inst in instances for r in inst["laws"]
                     if r["status"] != "ok"})
    lines += ["Lowest regret per instance — " + "; ".join(winners) + "."]
    if failed:
        lines += ["", "Laws that could not be fitted at one scale on some instance: "
                  + ", ".join(failed) + " (error messages in the JSON)."]
    lines += [""]
    # Per-instance detail.
    for inst in instances:
        lines += [f"### {inst['instance']}", "",
                  f"α = {_fmt_w(inst['alpha'])}, σ² = {_fmt_w(inst['sigma2'])}, natural "
                  f"proportions {_fmt_w(inst['natural'])}, step {inst['lr']:.4g}. True optimum "
                  f"{_fmt_w(inst['optimum']['weights'])} with mean loss "
                  f"{inst['optimum']['true_loss']:.5f}.", ""]
        rows = []
        for r in inst["laws"]:
            if r["status"] != "ok":
                rows.append([r["law"], None, None, r["status"], None, None, None, None])
                continue
            rows.append([r["law"], r["n_params"], 100 * r["train_mre"], _fmt_w(r["weights"]),
                         r["predicted_loss"], r["true_loss"], r["regret"], r["regret_pct"]])
        for name in BASELINES:
            b = inst["baselines"][name]
            rows.append([f"*{name}*", None, None, _fmt_w(b["weights"]), None, b["true_loss"],
                         b["regret"], b["regret_pct"]])
        lines += [_common.markdown_table(
            ["mixture", "params", "fit MRE %", "weights h", "predicted loss", "true loss",
             "regret", "regret %"], rows), ""]
    lines += [f"Total run time {results['elapsed_s'] / 60:.1f} min."]
    return "\n".join(lines)


def run(cfg: Config, log: logging.Logger) -> dict:
    """Every instance of ``cfg``, in order."""
    return {"law_labels": [law.label for law in cfg.laws],
            "instances": [run_instance(cfg, spec) for spec in cfg.instances]}


def render(out: Path, record: dict) -> None:
    """The figures and the section, drawn from the record alone."""
    report = {**record["results"], "config": record["config"], "elapsed_s": record["elapsed_s"],
              "quick": config_from_record(Config, record["config"]) == QUICK}
    figure = draw(report, out)
    _common.write_section(out, NAME, section(report, figure))


def main(argv: Sequence[str] | None = None) -> int:
    return run_experiment(NAME, __doc__.split("\n\n")[0], Config, run, render, argv,
                          quick_config=QUICK, can_add_laws=True)


if __name__ == "__main__":
    raise SystemExit(main())
