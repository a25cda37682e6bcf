r"""Extrapolating the optimal mixture across scale on the theory simulator (Figs. 3–4, simulator).

For each simulated instance (``K`` domains, shared head ``S``, drawn with a fixed seed by
:func:`experiments._sim.draw_instance`):

1. simulate the exact expected losses of one-pass SGD (:func:`simulate.sweep`) for
   ``n_mixtures`` Dirichlet mixtures on a grid of SMALL scales, ``N ∈ small_sizes`` kept features
   × ``steps ∈ small_steps`` (law units: ``D = steps × batch_size`` samples);
2. fit the laws with model-size and token terms (capacity full and tied, additive, joint, any
   other registered law that has both, and the spectral law, ``docs/theory.md``) once on that
   grid;
3. for every scale factor ``f ∈ target_factors`` (default 4 and 16), a TARGET scale
   ``N_T = f · max small N``, ``steps_T = f · max small steps`` (``f``× in both ``N`` and
   ``D``), predict each law's optimal mixture for the mean loss there
   (:func:`experiments._sim.law_optimum`; the same fits serve every target);
4. train on the simulator, at each target scale, (a) each law's extrapolated mixture, (b) the
   simulator's true optimum at the largest small scale reused unchanged ("static"), (c) the
   uniform mixture and (d) the true optimum at that target scale
   (:func:`experiments._sim.true_optimum`). Scores of a mixture ``h`` at a target, with
   :math:`\bar L = \frac1K\sum_i L_i` the true mean loss there and :math:`h^\star_T` the target's
   optimum:

.. math::

    \mathrm{regret}(h) = \bar L(h) - \bar L(h^\star_T)\quad\text{(loss units; also in \% of }
    \bar L(h^\star_T)\text{)},\qquad
    \mathrm{share}(h) = \frac{\bar L(h) - \bar L(h^\star_T)}
                             {\bar L(\text{uniform}) - \bar L(h^\star_T)},

the share being the excess loss as a fraction of the uniform mixture's (0 at the optimum, 1 for
uniform, NaN where uniform is optimal).

The figures show, per target, the true mean test loss along training (checkpoints up to the
target budget, at the target ``N``) for (a)–(d), as the paper's Figs. 3–4 do for real models,
and, one panel per target, the regrets and shares. A table per instance shows how the optimum
moves between scales: the true optima at the small scale and at every target and each law's
predictions.

Every mixture at every scale is trained with the same step size, half the smallest stable
step over the simplex's vertices, the uniform mixture, the training mixtures and every size used
including every target (:func:`experiments._sim.safe_learning_rate`), so a law optimum on a
vertex is stable too. On ``instances`` the step is constant. ``decay_instances`` (by default the
same draws as the first two) train every run under a step decay of its own length (the step ×
``decay_factor`` after each ``1/decay_pieces`` of the run, :func:`experiments._sim.run_step_decay`):
each small-grid budget is then a run of its own (:func:`experiments._sim.sweep_per_budget`), not a
checkpoint of the longest, and each target's curve follows the schedule of the target's budget,
as a real model's is set by its token budget. Both kinds of instance are scored alike and
reported side by side (``"instances"`` and ``"decay_instances"`` of the results, each a part that
``--part`` runs alone).

The instances' spectra and signal are drawn per ``n_features`` (``P``), and the step is the
smallest stable one over every size, the targets' included: the default ``P = 4096`` (so that
``N_T = 1024`` at 16× fits) and targets (4, 16) change the instances and the step compared with
results computed with ``P = 1024`` and a 4× target alone, so such results are not comparable
number for number.
Records written with a single target (``target_size``, ``target_steps``) are still drawn.

Cost (full configuration: 3 instances, 24 mixtures × 2 sizes × 3 budgets, the registered laws × 8
restarts, targets 4× (N = 256, 2000 steps) and 16× (N = 1024, 8000 steps) of P = 4096 features). The
simulator side, measured in CPU seconds (float64, single-threaded XLA as the experiment runs it; the
2-core machine was shared with other jobs at a load average of 15–26, so wall times were 4–8×
longer) per instance: 57–74 s (3.2 min for the three) — the step size 1–2 s, the small grid 1 s, the
true optimum at the small scale 31–41 s (of which 22–32 s compile the instance's closed form; 9 s
compiled), at 4× 9–17 s, at 16× 7–11 s, the curves 1–2 s per target. Every closed-form evaluation
costs ``O(P)`` whatever ``N`` (inactive features are masked, not dropped), so 16× costs no more than
4×, and ``P`` sets the price. The law fits (as many as with one target) come on top: the earlier
4×-only run took 9.7 min, dominated by them. The two step-decay instances, added with ``--part
decay_instances``, took 26.4 min (11 and 15 min; the small grid is three runs there, one per
budget, and each new schedule compiled the true optimum's search again; the search now takes a
schedule's phase lengths as arrays, :class:`simulate._closed_form.PhasePlan`, so the run-scaled
decays of one instance share one program: in the quick run below the 4× decay optimum went from
about 10 s to under 1 s). ``--quick``: one small K = 3 instance at the constant step and the same
under the step decay, the first extrapolated law and two small targets (2× and 4×): 34 s wall on
the quiet 2-core machine before that change (the decay instance about 15 s of it). The spectral
``offset`` variant, added with ``--add-law`` (its two parts side by side, beside a third
experiment's fits): 66.6 min for the constant-step part and 51.1 min for the step decay,
10–21 min a fit (575–1236 s, every one certified; before its end-against-tail kink was listed,
3 of the 5 ended uncertified) against 1.6–8.5 min for ``transfer``.

Run: ``python -m experiments.extrapolation_sim [--quick] [--redraw] [--out DIR] [--add-law LABEL]
[--part instances|decay_instances]`` (``--add-law``: every number in an instance but the law's
own comes from the simulator alone; ``--part``: only those instances, merged into the record).
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

NAME = "extrapolation_sim"
log = logging.getLogger(NAME)


def extrapolated(spec: LawSpec) -> bool:
    """The laws whose optimum can move with both N and D: every law with scale terms except
    BiMix (no model-size term) and the capacity-only variant (no token term)."""
    return (spec.uses_scale and spec.name != "bimix"
            and spec != LawSpec("capacity", variant="capacity"))


STATIC = "static (small-scale optimum)"
TARGET = "target-scale optimum"
UNIFORM = "uniform"
#: The scores of one mixture at one target that every record holds.
SCORES = ("weights", "curve", "true_loss", "regret", "regret_pct", "excess_share")


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that sets the numbers; the defaults are the full run."""

    instances: tuple[InstanceSpec, ...] = (InstanceSpec(4, 0, 10), InstanceSpec(4, 8, 11),
                                           InstanceSpec(5, 0, 12))
    n_features: int = 4096  # total features P of every model (the instances depend on it)
    small_sizes: tuple[int, ...] = (32, 64)  # N of the fitted grid (kept features)
    small_steps: tuple[int, ...] = (125, 250, 500)  # SGD steps of the fitted grid
    # scale factors f of the targets: N_T = f·max(small_sizes), steps_T = f·max(small_steps)
    target_factors: tuple[int, ...] = (4, 16)
    batch_size: int = 1
    n_curve_points: int = 12  # log-spaced checkpoints of each target's training curves
    n_mixtures: int = 24
    dirichlet_concentration: float = 1.0
    alpha_range: tuple[float, float] = (1.3, 2.5)
    sigma2_range: tuple[float, float] = (0.05, 0.3)
    lr_fraction: float = 0.5
    # The same draws again with every run, each small-grid budget and each target its own, under
    # a step decay scaled to its length: the step × decay_factor after every 1/decay_pieces of
    # the run (γ, γ/2, γ/4, γ/8 by default), :func:`experiments._sim.run_step_decay`.
    decay_instances: tuple[InstanceSpec, ...] = (InstanceSpec(4, 0, 10), InstanceSpec(4, 8, 11))
    decay_factor: float = 0.5
    decay_pieces: int = 4
    # The laws with scale terms, in registration order, and the spectral law with its offset
    # variant (``docs/theory.md`` §7: the shared ranks placed in rank order).
    laws: tuple[LawSpec, ...] = (*_common.with_spectral(filter(extrapolated, law_specs())),
                                 LawSpec("spectral", variant="offset"))
    n_restarts: int = _common.N_RESTARTS
    fit_seed: int = 0
    optimum_seed: int = 0

    def __post_init__(self):
        if not (self.instances or self.decay_instances) or not self.laws:
            raise ValueError("Config needs an instance (instances or decay_instances) and a law")
        if not 0.0 < self.decay_factor <= 1.0 or self.decay_pieces < 1:
            raise ValueError(f"decay_factor must lie in (0, 1] and decay_pieces be >= 1, got "
                             f"{self.decay_factor!r} and {self.decay_pieces!r}")
        if not self.small_sizes or not self.small_steps:
            raise ValueError("the small grid needs at least one size and one budget")
        if min(self.small_sizes) < 1 or min(self.small_steps) < 1 or self.batch_size < 1:
            raise ValueError("sizes, steps and batch_size must be positive")
        factors = self.target_factors
        if (not factors or any(not isinstance(f, (int, np.integer)) or isinstance(f, bool)
                               for f in factors)):
            raise ValueError(f"target_factors must be a non-empty tuple of ints, got {factors!r}")
        if factors[0] < 2 or any(b <= a for a, b in zip(factors, factors[1:], strict=False)):
            raise ValueError(f"target_factors must be increasing and >= 2 (every target must "
                             f"exceed every small scale), got {factors!r}")
        if self.targets[-1][1] > self.n_features:
            raise ValueError(f"the largest target N = {self.targets[-1][1]} exceeds "
                             f"n_features {self.n_features}")
        if self.n_curve_points < 2 or self.n_mixtures < 2 or self.n_restarts < 1:
            raise ValueError("n_curve_points and n_mixtures must be >= 2, n_restarts >= 1")
        for law in self.laws:
            if not law.law_class.uses_scale:
                raise ValueError(f"law {law.label} has no N/D terms: it cannot extrapolate")

    @property
    def targets(self) -> tuple[tuple[int, int, int], ...]:
        """``(f, N_T, steps_T)`` of every target: ``N_T = f · max(small_sizes)``,
        ``steps_T = f · max(small_steps)`` (so ``D_T = steps_T × batch_size``)."""
        n_s, steps_s = max(self.small_sizes), max(self.small_steps)
        return tuple((int(f), int(f) * n_s, int(f) * steps_s) for f in self.target_factors)


#: The smoke run (under a minute): one small K = 3 instance, the first extrapolated law and two
#: targets, 2× (N = 32, 100 steps) and 4× (N = 64, 200 steps).
QUICK = Config(instances=(InstanceSpec(3, 0, 10),), decay_instances=(InstanceSpec(3, 0, 10),),
               n_features=128, small_sizes=(8, 16),
               small_steps=(25, 50), target_factors=(2, 4), n_curve_points=5,
               n_mixtures=10, n_restarts=2, laws=(next(filter(extrapolated, law_specs())),))


def curve_steps(target_steps: int, n: int, first: int = 10) -> list[int]:
    """``n`` distinct, increasing, roughly log-spaced step counts from ``first`` to
    ``target_steps`` (both included)."""
    if not 1 <= first < target_steps:
        raise ValueError(f"need 1 <= first ({first}) < target_steps ({target_steps})")
    raw = np.unique(np.round(np.geomspace(first, target_steps, n)).astype(int))
    return [int(s) for s in raw]


def excess_share(loss, optimum: float, uniform: float):
    r"""The excess loss as a share of the uniform mixture's,
    :math:`(\bar L(h) - \bar L(h^\star)) / (\bar L(\mathrm{uniform}) - \bar L(h^\star))`
    (elementwise in ``loss``; dimensionless): 0 at the optimum, 1 for uniform, below 1 for a
    mixture better than uniform. NaN where uniform is the optimum (zero denominator)."""
    denominator = float(uniform) - float(optimum)
    excess = np.asarray(loss, dtype=float) - float(optimum)
    if denominator == 0.0:
        return np.full_like(excess, np.nan)[()]
    return (excess / denominator)[()]


def score_curves(names: Sequence[str], weights: np.ndarray, curves: np.ndarray) -> dict:
    """The scores of every mixture at one target from its true mean-loss curve.

    Args:
        names: ``M`` labels, including :data:`TARGET` (the reference) and :data:`UNIFORM`.
        weights: ``(M, K)`` mixtures.
        curves: ``(M, C)`` true mean loss at each checkpoint; the last is the target budget.

    Returns:
        ``{name: {weights, curve, true_loss, regret, regret_pct, excess_share}}`` in ``names``
        order (loss units; ``regret_pct`` in % of the reference's loss).
    """
    final = np.asarray(curves, dtype=float)[:, -1]
    reference = float(final[list(names).index(TARGET)])
    share = excess_share(final, reference, final[list(names).index(UNIFORM)])
    return {n: {"weights": np.asarray(weights[i]), "curve": np.asarray(curves[i]),
                "true_loss": float(final[i]), "regret": float(final[i] - reference),
                "regret_pct": float(100 * (final[i] - reference) / reference),
                "excess_share": float(share[i])}
            for i, n in enumerate(names)}


def fit_and_optimise(cfg: Config, table, small: tuple[int, int], label: str):
    """Fit every law of ``cfg`` on ``table`` once and predict its optimum at the small scale
    and at every target.

    Returns:
        ``(rows, picks)``: one row per law (``status``, fit summary, ``weights_small``) and,
        for each law that fitted, its ``(len(targets), K)`` extrapolated mixtures and
        ``(len(targets),)`` predicted mean losses, ``{label: (weights, predicted)}``.
    """
    n_s, steps_s = small
    b = cfg.batch_size
    rows, picks = [], {}
    fits = _common.fit_laws(cfg.laws, table, n_restarts=cfg.n_restarts, seed=cfg.fit_seed,
                            catch=True)
    for law in cfg.laws:
        row = {"law": law.label}
        try:
            res = fits[law][0]
            if isinstance(res, Exception):
                raise res
            w_s, _ = _sim.law_optimum(res, n_s, steps_s * b, seed=cfg.optimum_seed)
            at = [_sim.law_optimum(res, n_t, steps_t * b, seed=cfg.optimum_seed)
                  for _, n_t, steps_t in cfg.targets]
        except Exception as err:  # recorded, not fatal: the other laws still count
            row.update(status=f"failed: {type(err).__name__}: {err}")
            log.warning("%s: %s failed: %s", label, law.label, err)
            rows.append(row)
            continue
        row.update(status="ok", n_params=res.n_params, method=res.method,
                   fit_s=float(res.timings["total_s"]), train_mre=res.train_metrics["mre"],
                   weights_small=w_s, **_common.fit_record(res))
        picks[law.label] = (np.stack([w for w, _ in at]), np.asarray([p for _, p in at]))
        rows.append(row)
        log.info("%s: %-18s MRE %.4f, optima %s (small scale %s)", label, law.label,
                 res.train_metrics["mre"], [np.round(w, 3).tolist() for w, _ in at],
                 np.round(w_s, 3))
    return rows, picks


def score_target(model, cfg: Config, target: tuple[int, int, int], candidates: dict,
                 schedule) -> dict:
    """The true mean-loss curves of every candidate mixture at one target (checkpoints up to
    ``steps_T`` at ``N_T``, one simulator call) and their scores (:func:`score_curves`)."""
    factor, n_t, steps_t = target
    names = list(candidates)
    weights = np.stack([candidates[n] for n in names])
    checkpoints = curve_steps(steps_t, cfg.n_curve_points)
    curves = _sim.mean_true_losses(model, weights, n_t, checkpoints, schedule, cfg.batch_size)
    return {"factor": factor, "N": n_t, "steps": steps_t, "curve_steps": checkpoints,
            "mixtures": score_curves(names, weights, curves)}


DECAY = "step decay"


def run_instance(cfg: Config, spec: InstanceSpec, decay: bool = False) -> dict:
    """Simulate the small grid, fit once, extrapolate to every target and score there, on one
    instance: every run at the constant step, or (``decay``) each run, small-grid budget or
    target, under the step decay of its own length (:func:`experiments._sim.run_step_decay`)."""
    import simulate

    timer = _common.Timer()
    rng = np.random.default_rng(spec.seed)
    inst = _sim.draw_instance(rng, spec.k, head=spec.head, n_features=cfg.n_features,
                              alpha_range=cfg.alpha_range, sigma2_range=cfg.sigma2_range)
    model = inst.model()
    mixtures = rng.dirichlet(np.full(spec.k, cfg.dirichlet_concentration), size=cfg.n_mixtures)
    sizes = [*cfg.small_sizes, *(n for _, n, _ in cfg.targets)]
    lr = _sim.safe_learning_rate(model, sizes, cfg.batch_size, cfg.lr_fraction,
                                 mixtures=mixtures)
    b = cfg.batch_size
    inst_label = f"{spec.label}, {DECAY}" if decay else spec.label
    if decay:
        def schedule_for(steps):
            return _sim.run_step_decay(lr, steps, cfg.decay_factor, cfg.decay_pieces)

        table = _sim.sweep_per_budget(model, mixtures, list(cfg.small_sizes),
                                      list(cfg.small_steps), schedule_for, b,
                                      name=f"sim-{inst_label}")
    else:
        constant = simulate.Constant(lr)

        def schedule_for(steps):
            return constant

        table = simulate.sweep(model, mixtures, list(cfg.small_sizes), list(cfg.small_steps),
                               constant, b, name=f"sim-{inst_label}")
    small = (max(cfg.small_sizes), max(cfg.small_steps))
    t0 = timer()
    small_w, _ = _sim.true_optimum(model, *small, schedule_for(small[1]), b)
    optimum_s = {"small": timer() - t0}
    optima = []
    for factor, n_t, steps_t in cfg.targets:
        t0 = timer()
        optima.append(_sim.true_optimum(model, n_t, steps_t, schedule_for(steps_t), b)[0])
        optimum_s[f"{factor}x"] = timer() - t0
        log.info("%s: true optimum %s at %dx (N=%d, %d steps) in %.0fs; small scale %s",
                 inst_label, np.round(optima[-1], 3), factor, n_t, steps_t,
                 optimum_s[f"{factor}x"], np.round(small_w, 3))

    laws, picks = fit_and_optimise(cfg, table, small, inst_label)
    targets = []
    for i, target in enumerate(cfg.targets):
        candidates = {label: w[i] for label, (w, _) in picks.items()}
        candidates.update({STATIC: small_w, UNIFORM: np.full(spec.k, 1.0 / spec.k),
                           TARGET: optima[i]})
        scored = score_target(model, cfg, target, candidates, schedule_for(target[2]))
        for label, (_, predicted) in picks.items():
            scored["mixtures"][label]["predicted_loss"] = float(predicted[i])
        targets.append(scored)
    return {
        "instance": inst_label, "k": spec.k, "head": spec.head, "seed": spec.seed,
        "alpha": inst.alpha, "sigma2": inst.sigma2, "lr": lr,
        "schedule": ({"kind": DECAY, "factor": cfg.decay_factor, "pieces": cfg.decay_pieces}
                     if decay else {"kind": "constant"}),
        "small_scale": {"N": small[0], "steps": small[1]}, "laws": laws, "targets": targets,
        "optimum_s": optimum_s, "elapsed_s": timer(),
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


def upgrade_instance(inst: dict) -> dict:
    """An instance of a record scored at a single target (``"target"``, ``"references"`` and
    per-law scores) in the layout of :func:`run_instance` (``"targets"``), the share of the
    uniform mixture's excess computed from the recorded losses; other instances unchanged."""
    if "targets" in inst:
        return inst
    t = inst["target"]
    mixtures = {r["law"]: {k: r[k] for k in (*SCORES[:-1], "predicted_loss")}
                for r in inst["laws"] if r["status"] == "ok"}
    refs = inst["references"]
    mixtures.update({STATIC: refs[STATIC], UNIFORM: refs[UNIFORM], TARGET: refs[TARGET]})
    optimum, uniform = refs[TARGET]["true_loss"], refs[UNIFORM]["true_loss"]
    for scored in mixtures.values():
        scored["excess_share"] = float(excess_share(scored["true_loss"], optimum, uniform))
    laws = [{k: v for k, v in r.items() if k not in (*SCORES, "predicted_loss")}
            for r in inst["laws"]]
    factor = t["N"] / inst["small_scale"]["N"]
    target = {"factor": int(factor) if float(factor).is_integer() else factor, "N": t["N"],
              "steps": t["steps"], "curve_steps": inst["curve_steps"], "mixtures": mixtures}
    return {**{k: v for k, v in inst.items() if k not in ("target", "references", "curve_steps")},
            "laws": laws, "targets": [target]}


def _fmt_w(w) -> str:
    return "(" + ", ".join(f"{x:.3f}" for x in w) + ")"


def _fmt_list(values) -> str:
    """``"0.109, 0.213"`` (3 significant digits, ``—`` for NaN)."""
    return ", ".join("—" if not np.isfinite(v) else f"{v:.3g}" for v in values)


def _scale(target: dict, batch_size: int) -> str:
    """``"16× (N = 1024, D = 8000)"``."""
    return f"{target['factor']:g}× (N = {target['N']}, D = {target['steps'] * batch_size})"


_LINTHRESH = 1e-5

_STYLE = {TARGET: dict(color="k", ls="--", lw=2.0), STATIC: dict(color="tab:gray", ls="-", lw=2),
          UNIFORM: dict(color="tab:gray", ls=":", lw=1.5)}


def _colors(labels: Sequence[str]) -> dict:
    """One colour per law label (:func:`experiments._figures.law_color`, in law order) plus
    the references'."""
    colors = {lab: _figures.law_color(i) for i, lab in enumerate(labels)}
    colors.update({STATIC: "tab:gray", UNIFORM: "lightgray", TARGET: "k"})
    return colors


def draw_curves(results: dict, out: Path, index: int) -> str:
    """Target ``index`` of every instance: the true mean test loss along training at the
    target N (top) and its excess over the target-scale optimum's curve (bottom, symmetric log).
    Returns the file name, ``extrapolation_sim_curves_<f>x.png``."""
    plt = _figures.pyplot()
    instances = results["instances"]
    b = results["config"]["batch_size"]
    n = len(instances)
    fig, axes = plt.subplots(2, n, figsize=(max(5.0, min(4.0 * n, 20)), 7.5), squeeze=False,
                             sharex=True)
    colors = _colors(results["law_labels"])
    for col, inst in enumerate(instances):
        target = inst["targets"][index]
        steps = np.asarray(target["curve_steps"], dtype=float) * b
        ref = np.asarray(target["mixtures"][TARGET]["curve"], dtype=float)
        top, bottom = axes[0, col], axes[1, col]
        for label, scored in target["mixtures"].items():
            style = _STYLE.get(label) or dict(color=colors[label], ls="-", lw=1.5)
            curve = np.asarray(scored["curve"], dtype=float)
            top.plot(steps, curve, label=label, **style)
            if label != TARGET:
                bottom.plot(steps, curve - ref, **style)
        top.set_xscale("log")
        top.set_title(f"{_tick(inst['instance'])}\nN = {target['N']} features", fontsize=10)
        # Before the target budget the target-scale optimum need not be best: differences take
        # both signs, hence a symmetric log axis (linear within ±1e-5).
        bottom.set_yscale("symlog", linthresh=_LINTHRESH)
        bottom.axhline(0.0, color="k", lw=0.8)
        bottom.set_xlabel("training samples D (log)")
        top.grid(alpha=0.3, which="both")
        bottom.grid(alpha=0.3, which="both")
    axes[0, 0].set_ylabel("true mean test loss")
    axes[1, 0].set_ylabel("loss − target-scale optimum's loss\n(symmetric log)")
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    factor = instances[0]["targets"][index]["factor"]
    fig.suptitle(f"Training at {factor:g}× the small scale in N and D with the extrapolated "
                 "mixtures", fontsize=11)
    fig.tight_layout()
    name = f"{NAME}_curves_{factor:g}x.png"
    _figures.save_figure(fig, out, name)
    return name


def _tick(instance: str) -> str:
    """An instance's label on two lines where it names its schedule."""
    return instance.replace(f", {DECAY}", f",\n{DECAY}")


def _bars(ax, instances: list, index: int, labels: Sequence[str], colors: dict, key: str,
          floor: float) -> float:
    """Grouped bars of ``scored[key]`` (one group per instance, one bar per label) at target
    ``index``, values below ``floor`` drawn at it; returns the smallest bar drawn."""
    width = 0.8 / len(labels)
    lowest = np.inf
    for j, label in enumerate(labels):
        xs, ys = [], []
        for i, inst in enumerate(instances):
            scored = inst["targets"][index]["mixtures"].get(label)
            if scored is None or scored[key] is None or not np.isfinite(scored[key]):
                continue
            xs.append(i - 0.4 + (j + 0.5) * width)
            ys.append(max(scored[key], floor))
        ax.bar(xs, ys, width=width * 0.9, color=colors[label], label=label,
               hatch="//" if label == STATIC else None)
        lowest = min(lowest, *ys) if ys else lowest
    ax.set_xticks(range(len(instances)))
    ax.set_xticklabels([_tick(inst["instance"]) for inst in instances], fontsize=9)
    ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3, which="both")
    return lowest


def draw_regret(results: dict, out: Path) -> str:
    """One column per target: the regret at the target budget in % of the optimal mean loss
    (top) and the excess loss as a share of the uniform mixture's (bottom; uniform is 1, the
    dashed line) of every extrapolated mixture, the static mixture and uniform, one group per
    instance. Returns the file name."""
    plt = _figures.pyplot()
    instances = results["instances"]
    n_targets = len(instances[0]["targets"])
    labels = [*results["law_labels"], STATIC, UNIFORM]
    colors = _colors(results["law_labels"])
    b = results["config"]["batch_size"]
    width = max(4.5, 1.1 * len(instances))  # per target
    fig, axes = plt.subplots(2, n_targets, figsize=(1.5 + width * n_targets, 7.5),
                             squeeze=False, sharey="row")
    floors = {"regret_pct": 1e-4, "excess_share": 1e-3}
    lowest = {key: np.inf for key in floors}
    for col in range(n_targets):
        for row, key in enumerate(floors):
            low = _bars(axes[row, col], instances, col, labels, colors, key, floors[key])
            lowest[key] = min(lowest[key], low)
        axes[1, col].axhline(1.0, color="k", ls="--", lw=0.8)
        axes[0, col].set_title(_scale(instances[0]["targets"][col], b), fontsize=10)
    for row, key in enumerate(floors):
        if np.isfinite(lowest[key]):
            axes[row, 0].set_ylim(bottom=0.5 * lowest[key])
    axes[0, 0].set_ylabel("regret at the target\n(% of the optimal mean loss, log)")
    axes[1, 0].set_ylabel("excess loss / uniform's excess\n(log; uniform = 1)")
    at_floor = [f"{floors[k]:g}" for k in floors if lowest[k] <= floors[k]]
    axes[1, 0].set_xlabel("simulated instance" + (
        f" (bars at {' / '.join(at_floor)} are at or below it)" if at_floor else ""))
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("Extrapolated mixtures at each target scale (regret and share of uniform's "
                 "excess loss)", fontsize=11)
    fig.tight_layout()
    name = f"{NAME}_regret.png"
    _figures.save_figure(fig, out, name)
    return name


def _score_table(instances: list, index: int, labels: Sequence[str]) -> str:
    """Rows: mixtures; per instance, the regret (%) and the share of uniform's excess at
    target ``index``; a last row with the optimum's mean loss."""
    header = ["mixture"]
    for inst in instances:
        header += [f"{inst['instance']}: regret %", "share of uniform's excess"]
    rows = []
    for label in labels:
        row = [label]
        for inst in instances:
            scored = inst["targets"][index]["mixtures"].get(label)
            row += ([scored["regret_pct"], scored["excess_share"]] if scored
                    else [float("nan")] * 2)
        rows.append(row)
    optimum = [f"*{TARGET}: mean loss*"]
    for inst in instances:
        optimum += [inst["targets"][index]["mixtures"][TARGET]["true_loss"], None]
    return _common.markdown_table(header, [*rows, optimum])


def _observations(instances: list, index: int, labels: Sequence[str]) -> str:
    """How often each law's mixture beats the static one and (when fitted) the additive law's,
    at target ``index``."""
    obs = []
    for law in labels:
        beats_static = beats_add = n_ok = 0
        for inst in instances:
            scored = inst["targets"][index]["mixtures"]
            if law not in scored:
                continue
            n_ok += 1
            beats_static += scored[law]["true_loss"] < scored[STATIC]["true_loss"]
            add = scored.get("additive")
            beats_add += add is not None and scored[law]["true_loss"] < add["true_loss"]
        text = f"{law}: beats static in {beats_static}/{n_ok}"
        obs.append(text + (f", the additive law's mixture in {beats_add}/{n_ok} instances"
                           if law != "additive" and "additive" in labels else " instances"))
    return "; ".join(obs)


def _shift_table(inst: dict, batch_size: int) -> str:
    """The true and predicted optima at the small scale and at every target of one instance,
    the shift to each target and its cosine with the true shift."""
    s, targets = inst["small_scale"], inst["targets"]
    true_s = np.asarray(targets[0]["mixtures"][STATIC]["weights"])
    true_t = [np.asarray(t["mixtures"][TARGET]["weights"]) for t in targets]
    rows = [["simulator (true)", _fmt_w(true_s), *map(_fmt_w, true_t),
             _fmt_list([np.abs(w - true_s).sum() for w in true_t]), None, None, None]]
    for r in inst["laws"]:
        if r["status"] != "ok":
            rows.append([r["law"], r["status"], *[None] * (len(targets) + 4)])
            continue
        w_s = np.asarray(r["weights_small"])
        w_t = [np.asarray(t["mixtures"][r["law"]]["weights"]) for t in targets]
        rows.append([r["law"], _fmt_w(w_s), *map(_fmt_w, w_t),
                     _fmt_list([np.abs(w - w_s).sum() for w in w_t]),
                     _fmt_list([shift_cosine(w - w_s, t - true_s)
                                for w, t in zip(w_t, true_t, strict=True)]),
                     r["n_params"], 100 * r["train_mre"]])
    factors = ", ".join(f"{t['factor']:g}×" for t in targets)
    header = ["mixture", f"optimum at N={s['N']}, D={s['steps'] * batch_size}",
              *(f"optimum at {_scale(t, batch_size)}" for t in targets),
              f"shift ‖Δh‖₁ ({factors})", f"cos(shift, true shift) ({factors})", "params",
              "fit MRE % (small grid)"]
    return _common.markdown_table(header, rows)


def section(results: dict, figures: dict) -> str:
    """The markdown section, generated from the results; ``figures`` names the regret figure
    (``"regret"``) and each target's curves (``"curves"``, in target order)."""
    cfg = results["config"]
    instances = results["instances"]
    labels = results["law_labels"]
    b = cfg["batch_size"]
    d_small = [s * b for s in cfg["small_steps"]]
    targets = instances[0]["targets"]
    scales = "; ".join(_scale(t, b) for t in targets)
    lines = [
        "## Extrapolating the optimal mixture across scale on the simulator", "",
        f"On {len(instances)} simulated instances ({'; '.join(i['instance'] for i in instances)}"
        f"; {cfg['n_features']} features, fixed seeds) the laws with model-size and token terms "
        f"({', '.join(labels)}) were fitted once to the exact expected losses of "
        f"{cfg['n_mixtures']} Dirichlet mixtures on a small grid, N ∈ {list(cfg['small_sizes'])}"
        f" kept features × D ∈ {d_small} samples ({cfg['n_restarts']} restarts), and asked for "
        f"the optimal mixture of the mean loss at each target: {scales} (each a factor of the "
        "largest small N and D). Each mixture was then trained on the simulator at each target "
        "(the same step size γ for every mixture and scale of an instance, constant; on the "
        f"instances marked *{DECAY}* — the same draws — every run, each small-grid budget and "
        f"each target, is trained under a step decay of its own length: γ × "
        f"{cfg.get('decay_factor', 0.5):g} after every 1/{cfg.get('decay_pieces', 4)} of the "
        "run). Compared: each law's extrapolated "
        "mixture, the simulator's optimum at the largest small scale reused unchanged "
        "(*static*: an oracle at the small scale, so a stronger baseline than a law's "
        "small-scale pick), the uniform mixture, and the simulator's optimum at the target "
        "(the reference). Regret = true mean loss − the reference's (in % of it; loss units in "
        "the JSON); share of uniform's excess = regret / the uniform mixture's regret (0 at the "
        "optimum, 1 for uniform).", "",
        f"![Regret and share of uniform's excess at each target]({figures['regret']})", ""]
    for index, target in enumerate(targets):
        lines += [f"### At {_scale(target, b)}", "",
                  f"![True mean test loss along training at {target['factor']:g}×]"
                  f"({figures['curves'][index]})", "",
                  _score_table(instances, index, [*labels, STATIC, UNIFORM]), "",
                  _observations(instances, index, labels) + ".", ""]
    failed = sorted({r["law"] for i in instances for r in i["laws"] if r["status"] != "ok"})
    if failed:
        lines += ["Fits that failed (messages in the JSON): " + ", ".join(failed) + ".", ""]
    lines += ["### How the optimum moves with scale", "",
              "True optima at the largest small scale and at every target, and each law's "
              "predicted optima (its in-sample pick at the small scale, its extrapolations at "
              "the targets), the size of each shift from the small scale and the cosine between "
              "a law's predicted shift and the simulator's (1: right direction). Weights in "
              "domain order; the domains' spectral exponents α are given per instance.", ""]
    for inst in instances:
        lines += [f"**{inst['instance']}** — α = {_fmt_w(inst['alpha'])}, σ² = "
                  f"{_fmt_w(inst['sigma2'])}, step {inst['lr']:.4g}.", "",
                  _shift_table(inst, b), ""]
    lines += ["Training-curve values (true mean loss at each target's N at each checkpoint) "
              "are in the JSON (`curve`, `curve_steps` of each target).", "",
              f"Total run time {results['elapsed_s'] / 60:.1f} min."]
    return "\n".join(lines)


def run(cfg: Config, log: logging.Logger) -> dict:
    """Every instance of ``cfg``, in order: ``"instances"`` at the constant step,
    ``"decay_instances"`` under the step decay."""
    return {"law_labels": [law.label for law in cfg.laws],
            "instances": [run_instance(cfg, spec) for spec in cfg.instances],
            "decay_instances": [run_instance(cfg, spec, decay=True)
                                for spec in cfg.decay_instances]}


#: The two parts of the results, each run alone by ``--part`` (e.g. the step-decay instances
#: added to a record of the constant-step ones).
PARTS = {"instances": lambda cfg: dataclasses.replace(cfg, decay_instances=()),
         "decay_instances": lambda cfg: dataclasses.replace(cfg, instances=())}


def render(out: Path, record: dict) -> None:
    """The figures and the section, drawn from the record alone (single-target records
    too, see :func:`upgrade_instance`)."""
    results = record["results"]
    instances = [upgrade_instance(inst) for inst in results["instances"]]
    instances += results.get("decay_instances", [])
    report = {**results, "instances": instances, "config": record["config"],
              "elapsed_s": record["elapsed_s"]}
    figures = {"regret": draw_regret(report, out),
               "curves": [draw_curves(report, out, i)
                          for i in range(len(instances[0]["targets"]))]}
    fitted = {r["law"] for inst in instances for r in inst["laws"]}
    config = config_from_record(Config, record["config"])
    quick = config == QUICK
    pending = [f"{spec.label}, {DECAY}" for spec in config.decay_instances
               if "decay_instances" not in results]
    _common.write_section(out, NAME, "\n".join([
        section(report, figures), "",
        *_common.unfitted_laws_lines(NAME, Config().laws, fitted, quick),
        *([f"Step-decay instances not yet run in this record: {'; '.join(pending)} "
           f"(`python -m experiments.{NAME} --part decay_instances`).", ""] if pending else [])]))


def main(argv: Sequence[str] | None = None) -> int:
    return run_experiment(NAME, __doc__.split("\n\n")[0], Config, run, render, argv,
                          quick_config=QUICK, can_add_laws=True, parts=PARTS)


if __name__ == "__main__":
    raise SystemExit(main())
