"""The project's goals for a theory-derived law, and where the laws stand, from the results files.

Each goal is a measure that one experiment's record holds for every law it fits, a threshold
and a direction; a law's figure is its worst case over the goal's settings (the goal asks for it
in every setting). For every goal the block shows the paper's law (``capacity (full)``), the
best theory-derived law (a variant of the ``capacity`` or ``spectral`` law: they keep the
paper's capacity allocation and its explanation) and the best of the other laws (the empirical
baselines), each with its figure, and whether the best theory-derived law meets the goal.

Used by :mod:`experiments._readme` (the README's ``goals`` block). Nothing here is typed by
hand but the goals; a law or setting missing from a record is left out of that goal's rows.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from experiments._protocols import absent_domain_summary

__all__ = ["GOALS", "Goal", "goals_block", "standing"]

PAPER_LAW = "capacity (full)"
THEORY_FAMILIES = ("capacity", "spectral")


def _theory(label: str) -> bool:
    return label.split(" ")[0] in THEORY_FAMILIES


def _read(figures: Path, name: str) -> dict | None:
    path = Path(figures) / f"{name}.json"
    return json.loads(path.read_text()).get("results") if path.exists() else None


def _pct(value) -> float:
    """A recorded fraction as a percent; a fit without the figure (failed: ``None``) as
    ``inf``, the worst, so that it cannot meet a goal."""
    return math.inf if value is None else 100 * value


def _worst(per_setting: list[dict[str, float]]) -> dict:
    """``{law: largest value}`` over the settings (every measure read this way is an error), for
    the laws present in every one of them."""
    if not per_setting:
        return {}
    laws = set.intersection(*(set(s) for s in per_setting))
    return {law: max(s[law] for s in per_setting) for law in laws}


# ----------------------------------------------------------------------------- the measures
def simulator_no_head(figures: Path) -> dict[str, float]:
    """``law_vs_simulator``: held-out MRE (%) of one fit over every size and budget, worst over
    its settings without a shared head, disjoint tails (``settings``) and half of every tail
    shared (``overlap``, at its first placement)."""
    r = _read(figures, "law_vs_simulator")
    if r is None:
        return {}
    rows = [s for s in r["settings"] + r["overlap"] if s["head"] == 0]
    return _worst([{law: _pct(v["validation_mre"]) for law, v in s["laws"].items()
                    if "validation_mre" in v} for s in rows])


def simulator_heads(figures: Path) -> dict[str, float]:
    """``fit_under_overlap``: held-out MRE (%), worst over its settings with a shared head of 8
    or 32 and tail overlap 0 or 0.5."""
    r = _read(figures, "fit_under_overlap")
    if r is None:
        return {}
    rows = [s for s in r["settings"] if s["head"] in (8, 32) and s["rho"] in (0.0, 0.5)]
    return _worst([{law: _pct(v["validation_mre"]) for law, v in s["laws"].items()
                    if "validation_mre" in v} for s in rows])


def below_joint(figures: Path) -> dict[str, float]:
    """``fit_under_overlap``: the share (%) of its settings (heads 0, 8, 32; overlap 0–1) where
    the law's held-out MRE is below the joint law's, for laws with at most a third of the joint
    law's parameters (the others are not counted: the goal asks for both)."""
    r = _read(figures, "fit_under_overlap")
    if r is None:
        return {}
    counts: dict[str, list[bool]] = {}
    for s in r["settings"]:
        joint = s["laws"].get("joint")
        if joint is None:
            continue
        for law, v in s["laws"].items():
            if law != "joint" and "validation_mre" in v and 3 * v["n_params"] <= joint["n_params"]:
                counts.setdefault(law, []).append(_pct(v["validation_mre"])
                                                  < _pct(joint["validation_mre"]))
    n = sum(1 for s in r["settings"] if "joint" in s["laws"])
    return {law: 100 * sum(c) / n for law, c in counts.items() if len(c) == n}


def regret(figures: Path) -> dict[str, float]:
    """``optimal_mixture_regret``: the simulator's loss at the law's optimal mixture above the
    simulator's optimum, % of the optimal mean loss, worst over the instances."""
    r = _read(figures, "optimal_mixture_regret")
    if r is None:
        return {}
    return _worst([{v["law"]: v["regret_pct"] for v in inst["laws"] if "regret_pct" in v}
                   for inst in r["instances"]])


def extrapolated_optimum(figures: Path) -> dict[str, float]:
    """``extrapolation_sim``: the excess loss of the law's optimum, fitted at the small scale and
    followed to 4× and 16× its largest ``N`` and ``D``, as a share (%) of the uniform
    mixture's; worst over every instance, those under a step decay included."""
    r = _read(figures, "extrapolation_sim")
    if r is None:
        return {}
    rows = [{law: 100 * v["excess_share"] for law, v in t["mixtures"].items()
             if "predicted_loss" in v}
            for inst in r["instances"] + r.get("decay_instances", []) for t in inst["targets"]]
    return _worst(rows)


def _extrapolation(figures: Path, protocol: str, evaluation: str) -> dict[str, float]:
    r = _read(figures, "real_extrapolation")
    if r is None:
        return {}
    for p in r["protocols"]:
        if p["protocol"] == protocol:
            return {v["law"]: 100 * v["evaluations"][evaluation]["mre"] for v in p["laws"]
                    if evaluation in v.get("evaluations", {})}
    return {}


def slimpajama_680m(figures: Path) -> dict[str, float]:
    """``real_extrapolation``: SlimPajama-7 fitted on 122M + 310M, MRE (%) on every 680M run."""
    return _extrapolation(figures, "slimpajama7-122+310", "680M")


def pile4_over_joint(figures: Path) -> dict[str, float]:
    """``real_extrapolation``: Pile-4 fitted on 90M and 200M ≤ 7B tokens; the law's MRE over the
    joint law's (%, 100 = level), the larger of the two evaluations (200M/8B and 440M)."""
    a, b = (_extrapolation(figures, "pile4", e) for e in ("200M/8B", "440M"))
    if "joint" not in a or "joint" not in b:
        return {}
    return {law: 100 * max(a[law] / a["joint"], b[law] / b["joint"])
            for law in a if law in b}


def regmix_in_scale(figures: Path) -> dict[str, float]:
    """``compare_laws``: RegMix-1B within its one scale, held-out MRE (%), mean over the five
    70/30 splits (a law fitted on fewer splits is left out)."""
    r = _read(figures, "compare_laws")
    if r is None:
        return {}
    rows: dict[str, list[float]] = {}
    for v in r["in_scale"]:
        if v["dataset"] == "regmix-1b":
            rows.setdefault(v["law"], []).append(100 * v["mre"])
    n = max((len(v) for v in rows.values()), default=0)
    return {law: sum(v) / len(v) for law, v in rows.items() if len(v) == n}


def regmix_ranking(figures: Path) -> dict[str, float]:
    """``compare_laws``: fitted on RegMix's 1M training runs, Spearman rank correlation of the
    held-out mixtures (mean over the loss domains), the lower of 1M and 60M."""
    r = _read(figures, "compare_laws")
    if r is None:
        return {}
    return {v["law"]: min(v["spearman"]["1M"]["mean"], v["spearman"]["60M"]["mean"])
            for v in r["regmix_rank"] if "spearman" in v}


@dataclasses.dataclass(frozen=True)
class Goal:
    """One goal: ``measure(figures) -> {law: figure}``, met at ``threshold`` or better."""

    name: str
    measure: Callable[[Path], dict[str, float]]
    threshold: float
    higher_is_better: bool = False
    unit: str = "%"
    digits: int = 2

    def met(self, value: float) -> bool:
        return value >= self.threshold if self.higher_is_better else value <= self.threshold

    def target(self) -> str:
        return f"{'≥' if self.higher_is_better else '≤'} {self.threshold:g}{self.unit}"

    def show(self, value: float) -> str:
        return f"{value:.{self.digits}f}{self.unit}"


GOALS = (
    Goal("simulator, no shared head, overlap 0 and 0.5: held-out MRE, worst setting",
         simulator_no_head, 0.5),
    Goal("simulator, heads 8 and 32, overlap 0 and 0.5: held-out MRE, worst setting",
         simulator_heads, 1.0),
    Goal("simulator, every setting of fit_under_overlap: below the joint law's error "
         "with at most 1/3 of its parameters", below_joint, 100.0, higher_is_better=True,
         digits=0),
    Goal("simulator optimum at the fitted scale: regret, % of the optimal loss, worst "
         "instance", regret, 0.1, digits=3),
    Goal("simulator optimum extrapolated to 4× and 16×: excess loss, % of the uniform "
         "mixture's, worst instance", extrapolated_optimum, 10.0, digits=1),
    Goal("SlimPajama-7 122M + 310M → 680M: MRE", slimpajama_680m, 1.3),
    Goal("Pile-4 → 200M/8B (24 mixtures) and → 440M (2 mixtures): MRE as % of the joint "
         "law's, worse of the two",
         pile4_over_joint, 100.0, digits=0),
    Goal("RegMix-1B within one scale: held-out MRE, mean of 5 splits", regmix_in_scale, 1.5),
    Goal("RegMix 1M runs → ranking of held-out mixtures at 1M and 60M: Spearman, lower "
         "of the two", regmix_ranking, 0.99, higher_is_better=True, unit="", digits=3),
)


def _absent_class(figures: Path) -> list[float]:
    """``regmix_overlap``'s structures: each one's held-out MRE on RegMix-1B's entries of an
    absent domain, mean over its splits (empty without that record)."""
    r = _read(figures, "regmix_overlap")
    if r is None:
        return []
    by: dict[str, list[float]] = {}
    for row in r["in_scale"]:
        if row.get("n_absent"):
            by.setdefault(row["structure"], []).append(row["mre_absent"])
    return [sum(v) / len(v) for v in by.values()]


def _best(values: dict[str, float], goal: Goal) -> tuple[str, float] | None:
    finite = {k: v for k, v in values.items() if math.isfinite(v)}
    if not finite:
        return None
    pick = max if goal.higher_is_better else min
    law = pick(sorted(finite), key=finite.__getitem__)
    return law, finite[law]


def standing(figures: Path, goals=GOALS) -> list[dict]:
    """One row per goal with figures: ``{"goal", "paper", "theory", "other", "met", "values"}``
    (``values``: every law's figure; ``paper``: the paper's law's figure or ``None``;
    ``theory`` / ``other``: ``(law, figure)`` of the best theory-derived law and of the best
    other law, or ``None``; ``met``: whether the best theory-derived law meets the goal)."""
    rows = []
    for goal in goals:
        values = goal.measure(Path(figures))
        if not values:
            continue
        theory = _best({k: v for k, v in values.items() if _theory(k)}, goal)
        rows.append({"goal": goal, "paper": values.get(PAPER_LAW),
                     "theory": theory,
                     "other": _best({k: v for k, v in values.items() if not _theory(k)}, goal),
                     "met": theory is not None and goal.met(theory[1]), "values": values})
    return rows


def met_per_law(rows: list[dict]) -> dict[str, tuple[int, int]]:
    """``{theory-derived law: (goals met, goals with its figure)}`` over :func:`standing`'s
    rows, most met first (then fewest measured)."""
    tally: dict[str, list[int]] = {}
    for r in rows:
        for law, value in r["values"].items():
            if _theory(law):
                t = tally.setdefault(law, [0, 0])
                t[0] += r["goal"].met(value)
                t[1] += 1
    order = sorted(tally, key=lambda k: (-tally[k][0], tally[k][1], k))
    return {law: tuple(tally[law]) for law in order}


def goals_block(figures: Path) -> str:
    """The README's ``goals`` block: the table of :func:`standing`."""
    rows = standing(figures)
    if not rows:
        return "No results files yet: run `python -m experiments.reproduce`."

    def cell(goal, pair):
        return "—" if pair is None else f"{goal.show(pair[1])} `{pair[0]}`"

    out = ["| goal | target | paper's law | best theory-derived law | best other law | met |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        g = r["goal"]
        paper = "—" if r["paper"] is None else g.show(r["paper"])
        out.append(f"| {g.name} | {g.target()} | {paper} | {cell(g, r['theory'])} | "
                   f"{cell(g, r['other'])} | {'yes' if r['met'] else '**no**'} |")
    met = sum(r["met"] for r in rows)
    per_law = met_per_law(rows)
    top = list(per_law.items())[:4]
    out += ["", f"Met by some theory-derived law: {met} of {len(rows)} goals. By one law "
            "(goals met of those its records measure): "
            + ", ".join(f"`{law}` {m} of {n}" for law, (m, n) in top) + "."]
    absent = (_read(figures, "compare_laws") or {}).get("regmix_absent") or []
    if absent:
        summary = absent_domain_summary(absent)
        overlap = _absent_class(figures)
        laws = (f"; the overlap law's structures reach {100 * min(overlap):.2f}–"
                f"{100 * max(overlap):.2f} % on them (`regmix_overlap`)" if overlap else "")
        out += ["", f"RegMix-1B within one scale: the held-out entries of a domain absent from "
                f"the run's mixture ({100 * summary['share']:.0f} % of them) are predicted by "
                f"that domain's mean loss over the training runs without it to "
                f"{100 * np.mean(summary['mre_mean']):.2f} % (`compare_laws`' `regmix_absent`)"
                f"{laws}; at that error they alone add {100 * np.mean(summary['points']):.2f} "
                f"points to the mean over every entry."]
    return "\n".join(out)
