r"""What the theory laws miss on RegMix: the tokens that domains share.

Fitted on RegMix's 512 runs at 1M parameters, every form of the capacity law ranks the 256
held-out mixtures at a Spearman correlation of 0.88–0.905 (``compare_laws``), where the additive
and joint laws reach 0.99. This experiment asks which mechanism is missing, with the one
ingredient that the capacity law's data term and the empirical laws' interactions share: how
much of domain ``j``'s data counts as domain ``i``'s. It fits the candidate law ``overlap``
(:mod:`mixscale.laws._overlap`), the noise-reduction term at one scale,

.. math::

    L_i(h) = E_i + A_i \Big(h_i + \sum_{j \ne i} S_{ij} h_j\Big)^{-a_i},

with the overlaps ``S`` of increasing freedom: none (``own``, the paper's own-share term), of
rank ``r`` (``S_ij = Σ_t P_it P_jt``: ``r`` pools of shared features; ``r = 1`` is the rank-one
pooling of the capacity law's ``transfer`` variant and its successors), and free (every directed
pair); and, for some of them, with *source exponents* (``+ g``): each training domain's share
enters as ``h_j^{g_j}``, one exponent per source (``docs/theory.md`` §7: a shared rank is taught
at the source's spectral rate, so ``j``'s tokens reach ranks ``∝ (D h_j)^{1/α_j}``; the
additive law has an exponent per (target, source) pair instead). Each is fitted

* on RegMix-1M's training runs, and scored by its ranking of the held-out mixtures at 1M and at
  60M (Spearman, mean over the 13 in-mixture loss domains; ``compare_laws``' protocol) and its
  1M MRE;
* on RegMix-1B within its one scale (``compare_laws``' in-scale protocol: 5 random 70/30 splits
  by mixture of the 64 runs, validation MRE over every measured entry, and by the weight of
  each entry's own domain in its run: absent, below 0.1, at least 0.1; per domain).

Reading: if the ranking rises from ``own`` to ``free`` to the empirical laws' level, the theory
laws' deficit on RegMix is the structure of the overlaps, and the rank that reaches it says how
many parameters a theory law needs for it; what ``+ g`` adds at each structure is what the
sources' own rates of return are worth there. The free ``S`` fitted at 1M is drawn as a heat map
(which pairs of domains share tokens).

Fitting: :func:`experiments._common.fit_law` (the experiments' one policy), 64 restarts, each
variant started also from its fitted ``own`` variant (nested, exactly at ``S = 0``), and each
``+ g`` structure from its fit without source exponents (nested, exactly at ``g = 1``).

Cost: ``elapsed_s`` in the JSON; ``--quick`` (no rank variant, 64 training runs, 2 restarts, one
split): well under a minute.

Run: ``python -m experiments.regmix_overlap [--quick] [--redraw] [--out DIR]``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from experiments._common import (
    N_RESTARTS,
    fit_law,
    fit_nested_first,
    fit_record,
    markdown_table,
    pct_mean_sd,
    write_section,
)
from experiments._figures import pyplot, save_figure
from experiments._harness import run_experiment
from experiments._protocols import in_scale_table, ranking_scores, regmix_rank_tables
from mixscale import LawSpec
from mixscale.data import split

NAME = "regmix_overlap"

#: Laws of ``compare_laws``' RegMix ranking drawn as references (when its record is present).
REFERENCES = ("capacity (transfer)", "capacity (crossover)", "dml", "additive", "joint")


@dataclasses.dataclass(frozen=True)
class Config:
    """``factors``: the ranks ``r`` of the ``rank`` variant fitted (beside ``own`` and ``free``);
    ``sourced_factors``: those of them fitted also with source exponents, and ``sourced_free``
    whether ``free`` is too; ``regmix_train_runs``: the first this many RegMix-1M training runs
    (``None``: all 512)."""

    factors: tuple[int, ...] = (1, 2, 3, 4)
    sourced_factors: tuple[int, ...] = (1, 2)
    sourced_free: bool = True
    n_restarts: int = N_RESTARTS
    fit_seed: int = 0
    regmix_train_runs: int | None = None
    in_scale_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    validation_fraction: float = 0.3


QUICK = Config(factors=(), sourced_factors=(), n_restarts=2, regmix_train_runs=64,
               in_scale_seeds=(0,))

#: The suffix of a structure's name with source exponents.
SOURCED = " + g"


def structures(config: Config) -> list[tuple[str, LawSpec]]:
    """``(name, spec)`` of each overlap structure fitted: those without source exponents,
    fewest parameters first, then those with them (``SOURCED``), in the same order."""
    if not set(config.sourced_factors) <= set(config.factors):
        raise ValueError(f"sourced_factors {config.sourced_factors} must be among the factors "
                         f"{config.factors}")
    plain = [("own", LawSpec("overlap", variant="own")),
             *((f"rank {r}", LawSpec("overlap", variant="rank", factors=r))
               for r in config.factors),
             ("free", LawSpec("overlap", variant="free"))]
    sourced = [*((f"rank {r}{SOURCED}", LawSpec("overlap", variant="rank", factors=r,
                                                 source_exponents=True))
                 for r in config.sourced_factors),
               *([(f"free{SOURCED}", LawSpec("overlap", variant="free", source_exponents=True))]
                 if config.sourced_free else [])]
    return plain + sourced


def _fit_all(config: Config, train, validation=None) -> dict:
    specs = [spec for _, spec in structures(config)]
    return fit_nested_first(specs, lambda spec, nested: fit_law(
        spec, train, validation=validation, n_restarts=config.n_restarts,
        seed=config.fit_seed, nested=nested))


def run_ranking(config: Config, log) -> list[dict]:
    """Fits on RegMix-1M's training runs; Spearman and MRE on the held-out mixtures."""
    train, tests = regmix_rank_tables(config.regmix_train_runs)
    fits = _fit_all(config, train)
    rows = []
    for name, spec in structures(config):
        res, wall = fits[spec]
        row = {"structure": name, "law": spec.label, "n_params": res.n_params, "fit_s": wall,
               **fit_record(res), "train_mre": res.train_metrics["mre"], "tests": {}}
        for test, table in tests.items():
            scores = ranking_scores(res, table)
            row["tests"][test] = {"spearman": scores["mean"],
                                  "spearman_per_domain": scores["per_domain"],
                                  "mre": scores["mre"]}
        law = res.law
        row["targets"], row["train_domains"] = list(res.targets), list(res.train_domains)
        row["overlaps"] = np.asarray(law.overlaps).tolist()
        if law.g is not None:
            row["g"] = np.asarray(law.g).tolist()
        rows.append(row)
        log.info("regmix 1M  %-8s %4d params  Spearman 1M %.3f  60M %.3f  MRE 1M %.2f%%  %.1fs",
                 name, res.n_params, row["tests"]["1M"]["spearman"],
                 row["tests"]["60M"]["spearman"], 100 * row["tests"]["1M"]["mre"], wall)
    return rows


#: The validation metrics kept per in-scale fit beside the MRE: its entries by the weight of
#: their own domain in the run's mixture (:func:`mixscale.error_metrics`).
WEIGHT_CLASS_KEYS = ("n", "mre_absent", "n_absent", "mre_high_weight", "n_high_weight")


def weight_classes(row: dict) -> tuple[float, float, float]:
    """``(absent, low, high)``: a validation row's MRE over the entries whose own domain weight
    is ``0``, in ``(0, 0.1)`` and at least ``0.1`` (the middle one from the other two and the
    whole: ``n·MRE`` sums the entries' errors; every target here is a training domain, so no
    entry lacks an own weight)."""
    n, n0, n1 = row["n"], row["n_absent"], row["n_high_weight"]
    absent = row["mre_absent"] if n0 else 0.0
    high = row["mre_high_weight"] if n1 else 0.0
    low = (n * row["mre"] - n0 * absent - n1 * high) / (n - n0 - n1) if n > n0 + n1 else np.nan
    return (absent if n0 else np.nan), low, (high if n1 else np.nan)


def run_in_scale(config: Config, log) -> list[dict]:
    """Fits on RegMix-1B's 70/30 splits by mixture; validation MRE, also by the weight of each
    entry's own domain (absent from the mixture, below 0.1, at least 0.1) and per domain."""
    table = in_scale_table("regmix-1b")
    rows = []
    for seed in config.in_scale_seeds:
        train, valid = split(table, config.validation_fraction, seed)
        fits = _fit_all(config, train, validation=valid)
        for name, spec in structures(config):
            res, wall = fits[spec]
            v = res.validation_metrics
            rows.append({"structure": name, "law": spec.label, "seed": seed,
                         "n_params": res.n_params, "mre": v["mre"],
                         **{k: v[k] for k in WEIGHT_CLASS_KEYS},
                         "per_domain_mre": v["per_domain_mre"],
                         "train_mre": res.train_metrics["mre"], "fit_s": wall,
                         **fit_record(res)})
            log.info("regmix-1b seed %d %-8s %4d params  MRE %.2f%%  %.1fs", seed, name,
                     res.n_params, 100 * rows[-1]["mre"], wall)
    return rows


def run(config: Config, log) -> dict:
    return {"ranking": run_ranking(config, log), "in_scale": run_in_scale(config, log)}


# ----------------------------------------------------------------------------- report
def references(out: Path) -> dict[str, dict]:
    """``compare_laws``' RegMix rows of :data:`REFERENCES` found in ``OUT``, in that order:
    ``{label: {"n_params", "1M", "60M", "in_scale", "in_scale_high"}}`` (the ranking's
    parameters and Spearman correlations; the RegMix-1B in-scale validation MREs, over every
    entry and over those with ``h_i >= 0.1``, lists, empty if not fitted there); empty without
    that record."""
    path = Path(out) / "compare_laws.json"
    if not path.exists():
        return {}
    results = json.loads(path.read_text()).get("results", {})
    ranked = {r["law"]: r for r in results.get("regmix_rank", []) if "spearman" in r}
    return {label: {"n_params": ranked[label].get("n_params"),
                    "1M": ranked[label]["spearman"]["1M"]["mean"],
                    "60M": ranked[label]["spearman"]["60M"]["mean"],
                    "in_scale": [r["mre"] for r in results.get("in_scale", [])
                                 if r.get("law") == label and r.get("dataset") == "regmix-1b"],
                    "in_scale_high": [r["mre_high_weight"] for r in results.get("in_scale", [])
                                      if r.get("law") == label
                                      and r.get("dataset") == "regmix-1b"]}
            for label in REFERENCES if label in ranked}


def absent_references(out: Path) -> dict[str, list[float]]:
    """``compare_laws``' no-law predictions of RegMix-1B's absent-domain entries on the same
    splits (:func:`experiments._protocols.absent_domain_reference`), found in ``OUT``:
    ``{row label: [MRE per split]}``; empty without that record or part."""
    path = Path(out) / "compare_laws.json"
    if not path.exists():
        return {}
    rows = json.loads(path.read_text()).get("results", {}).get("regmix_absent", [])
    if not rows:
        return {}
    return {"no law: the domain's mean without it": [r["mre_mean"] for r in rows],
            "no law: ridge on the mixture": [r["mre_ridge"] for r in rows]}


def _worst_domains(rows: list[dict], n: int = 5) -> list[str]:
    """Report lines: for the ``own``, ``free`` and ``free + g`` structures, the ``n`` loss
    domains with the largest RegMix-1B in-scale validation MRE (mean over the splits) and the
    share of the entries whose own domain was absent; none for a record without per-domain
    errors."""
    lines = []
    for name in ("own", "free", f"free{SOURCED}"):
        splits = [x for x in rows if x["structure"] == name and "per_domain_mre" in x]
        if not splits:
            continue
        domains = list(splits[0]["per_domain_mre"])
        mean = {d: float(np.mean([x["per_domain_mre"][d] for x in splits])) for d in domains}
        worst = sorted(domains, key=lambda d: -mean[d])[:n]
        lines.append(f"* `{name}`: " + ", ".join(f"{d} {100 * mean[d]:.2f} %" for d in worst))
    if not lines:
        return []
    share = (sum(x["n_absent"] for x in rows if "n_absent" in x)
             / sum(x["n"] for x in rows if "n_absent" in x))
    return [f"RegMix-1B in-scale: the {n} loss domains with the largest held-out MRE (mean over "
            f"the splits); {100 * share:.0f} % of the held-out entries are of a domain absent "
            "from the run's mixture:", "", *lines, ""]


def _top_overlaps(row: dict, threshold: float = 0.05) -> list[str]:
    s = np.asarray(row["overlaps"])
    lines = []
    for t, target in enumerate(row["targets"]):
        own = row["train_domains"].index(target)
        pairs = [(row["train_domains"][j], s[t, j]) for j in np.argsort(-s[t])
                 if j != own and s[t, j] >= threshold]
        lines.append(f"`{target}`: " + (", ".join(f"{d} {v:.2f}" for d, v in pairs)
                                        if pairs else "none"))
    return lines


def figure(out: Path, record: dict) -> list[str]:
    plt = pyplot()
    rows, refs = record["results"]["ranking"], references(out)
    fig, (ax, hm, gx) = plt.subplots(1, 3, figsize=(20, 5.6),
                                     gridspec_kw={"width_ratios": [1, 1.25, 0.6],
                                                  "wspace": 0.45})
    for sourced, style in ((False, "-"), (True, "--")):
        group = [r for r in rows if r["structure"].endswith(SOURCED) == sourced]
        for test, marker, color in (("1M", "o", "C0"), ("60M", "s", "C1")):
            if group:
                ax.plot([r["n_params"] for r in group],
                        [r["tests"][test]["spearman"] for r in group], marker=marker, ls=style,
                        color=color, label=f"overlap law{SOURCED if sourced else ''}, ranking "
                                           f"at {test}")
    for r in rows:
        ax.annotate(r["structure"], (r["n_params"], r["tests"]["1M"]["spearman"]),
                    textcoords="offset points", xytext=(4, -12), fontsize=8)
    for j, (label, ref) in enumerate(refs.items()):  # equal values stay apart by line style
        ax.axhline(ref["1M"], color=f"C{j + 2}", lw=1.2, ls=("--", ":", "-.")[j % 3],
                   label=f"{label} at 1M ({ref['n_params']} params; compare_laws)")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("Spearman rank correlation (mean over domains)")
    ax.set_title("RegMix: ranking held-out mixtures from the 1M runs")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    ax.grid(alpha=0.3)
    free = next(r for r in rows if r["structure"] == "free")
    s = np.asarray(free["overlaps"])
    own = np.zeros_like(s, dtype=bool)
    for t, target in enumerate(free["targets"]):
        own[t, free["train_domains"].index(target)] = True
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgrey")
    shown = np.where(own, np.nan, s)
    image = hm.imshow(shown, cmap=cmap, vmin=0, vmax=max(0.05, float(np.nanmax(shown))))
    hm.set_xticks(range(len(free["train_domains"])), free["train_domains"], rotation=90,
                  fontsize=7)
    hm.set_yticks(range(len(free["targets"])), free["targets"], fontsize=7)
    top = float(np.nanmax(shown))
    for t, k in zip(*np.nonzero(~own & (s >= 0.05)), strict=True):
        hm.text(k, t, f"{s[t, k]:.2f}", ha="center", va="center", fontsize=6,
                color="white" if s[t, k] < 0.6 * top else "black")
    hm.set_xlabel("training domain j")
    hm.set_ylabel("loss domain i")
    hm.set_title("free overlaps S_ij fitted at 1M (own domain grey: 1)")
    fig.colorbar(image, ax=hm, fraction=0.04)
    sourced = [r for r in rows if "g" in r]
    if sourced:  # the freest structure's source exponents
        last = sourced[-1]
        domains = last["train_domains"]
        gx.barh(range(len(domains)), last["g"], color="C2")
        gx.set_yticks(range(len(domains)), domains, fontsize=7)
        gx.invert_yaxis()
        gx.axvline(1.0, color="grey", lw=0.8, ls=":")
        gx.set_xlabel("source exponent g_j (1: the tokens' own rate)")
        gx.set_title(f"source exponents fitted at 1M ({last['structure']})")
        gx.grid(alpha=0.3, axis="x")
    else:
        gx.axis("off")
    save_figure(fig, out, f"{NAME}.png")
    return [f"{NAME}.png"]


def markdown(out: Path, record: dict) -> str:
    cfg, results = record["config"], record["results"]
    rows, refs = results["ranking"], references(out)
    table = []
    for r in rows:
        splits = [x for x in results["in_scale"] if x["structure"] == r["structure"]]
        converged = sum(x["law_converged"] for x in splits) + int(r["law_converged"])
        classes = [weight_classes(x) for x in splits if "n_absent" in x]
        by_class = (" / ".join(pct_mean_sd([c[k] for c in classes]) for k in range(3))
                    if classes else "")
        table.append([r["structure"], r["n_params"], f"{r['tests']['1M']['spearman']:.3f}",
                      f"{r['tests']['60M']['spearman']:.3f}",
                      f"{100 * r['tests']['1M']['mre']:.2f}",
                      pct_mean_sd([x["mre"] for x in splits]), by_class,
                      f"{converged}/{len(splits) + 1}", f"{r['fit_s']:.0f}"])
    ref_rows = [[label, ref["n_params"], f"{ref['1M']:.3f}", f"{ref['60M']:.3f}", "",
                 pct_mean_sd(ref["in_scale"]),
                 f"— / — / {pct_mean_sd(ref['in_scale_high'])}" if ref["in_scale_high"] else "",
                 "", ""] for label, ref in refs.items()]
    absent = absent_references(out)
    ref_rows += [[label, "", "", "", "", "", f"{pct_mean_sd(v)} / — / —", "", ""]
                 for label, v in absent.items()]
    n_train = cfg["regmix_train_runs"] or 512
    lines = [
        "## What the theory laws miss on RegMix: the tokens that domains share", "",
        f"Generated by `python -m experiments.{NAME}` from `{NAME}.json`; do not edit by hand. "
        f"Run time {record['elapsed_s'] / 60:.1f} min.",
        "",
        f"The overlap law `L_i = E_i + A_i (h_i + Σ_j S_ij h_j)^(−a_i)` (candidate `overlap`) "
        f"fitted on RegMix-1M's first {n_train} training runs with {cfg['n_restarts']} "
        f"restarts, each structure of the overlaps `S` started also from the fitted `own`, and "
        f"with source exponents (`{SOURCED.strip()}`: `h_j^(g_j)` in place of `h_j`, the own "
        f"share's too) started also from the same structure without them; the "
        f"ranking (Spearman, mean over the in-mixture loss domains) of the held-out mixtures at "
        f"1M and 60M and the 1M MRE (%); RegMix-1B in-scale: validation MRE (%) over "
        f"{len(cfg['in_scale_seeds'])} random 70/30 splits by mixture, mean ± sd, over every "
        f"entry and by the weight of the entry's own domain in the run's mixture: absent "
        f"(`h_i = 0`), below 0.1, at least 0.1. Converged: fits whose returned law passed the "
        f"gradient test (the 1M fit and each split's).",
        "",
        markdown_table(["overlaps S", "params (1M)", "Spearman 1M", "Spearman 60M", "MRE 1M",
                        "RegMix-1B in-scale MRE", "by own weight: 0 / <0.1 / ≥0.1",
                        "converged", "fit s (1M)"], table + ref_rows),
        "",
    ]
    if refs:
        lines += ["The last rows are `compare_laws`' RegMix rows of the laws named (its "
                  "record: the ranking, and the in-scale MRE on its same 5 splits; it keeps "
                  "the MRE of the entries with `h_i ≥ 0.1`, not of the other classes), for "
                  "reference."]
        if absent:
            lines[-1] += (" The two `no law` rows predict only the entries of an absent "
                          "domain, without fitting a law (`compare_laws`' `regmix_absent`): "
                          "a law's error there at or above theirs explains nothing of those "
                          "entries' spread.")
        lines.append("")
    lines += _worst_domains(results["in_scale"])
    lines += [f"![RegMix overlaps]({NAME}.png)", "",
              "Overlaps of at least 0.05 in the free fit at 1M, per loss domain (tokens of the "
              "named domain counted at that fraction of the domain's own):", ""]
    lines += [f"* {line}" for line in _top_overlaps(next(r for r in rows
                                                         if r["structure"] == "free"))]
    for r in (r for r in rows if "g" in r):
        order = np.argsort(r["g"])
        lines += ["", f"Source exponents `g` of `{r['structure']}` at 1M, smallest first: "
                  + ", ".join(f"{r['train_domains'][j]} {r['g'][j]:.2f}" for j in order)]
    return "\n".join(lines) + "\n"


def render(out: Path, record: dict) -> None:
    figure(out, record)
    write_section(out, NAME, markdown(out, record))


def main(argv=None) -> int:
    return run_experiment(NAME, __doc__.split("\n\n")[0], Config, run, render, argv,
                          quick_config=QUICK)


if __name__ == "__main__":
    raise SystemExit(main())
