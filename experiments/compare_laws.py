"""Every law on the real loss tables: held-out error, parameter count and fit time.

Protocols (issue 4):

1. **In-scale.** Pile-4 at 200M/8B (24 mixtures), SlimPajama-7 at 122M/~10B (60 mixtures),
   RegMix-1B (64 mixtures, 17 loss domains): a random 70/30 split *by mixture*
   (``mixscale.data.split(table, 0.3, seed)``) for each of 5 seeds; validation MRE over all
   measured entries and over entries whose own domain weight is at least 0.1.
2. **Across scales**, laws with N or D terms only (the others are reported as "one scale only"):
   SlimPajama-7 fitted on 122M (all token checkpoints), then on 122M + 310M, predicting every
   680M row; Pile-4 fitted on 90M and on 200M at <= 7B tokens, predicting 200M/8B and 440M.
   These are ``real_extrapolation``'s protocols, fitted there with the same rows and settings
   (when both experiments fitted them, 33 of the 36 fits agreed to 1e-8 relative in their
   objective and the other three, made under different fitter versions, to 8e-4): by default
   this experiment fits none of them (``Config.across_scale = ()``) and its across-scale table
   is read from ``real_extrapolation``'s record in the same output folder (:func:`render`;
   :func:`experiments.reproduce.main` draws this section again after that experiment). That
   saves the full reproduction about 136 minutes of fits on the 2-core machine.
   ``Config(across_scale=...)`` fits them here again.
3. **RegMix ranking.** Every law fitted on the 512 RegMix 1M training runs; Spearman rank
   correlation of predicted against measured loss, per loss domain, over the 256 test mixtures
   at 1M and at 60M (mean over the 13 domains).

Two references without a fit: the measured 1M losses' own ranking of the 60M runs (the
ranking's ceiling at 60M, ``regmix_ceiling``), and RegMix-1B's held-out entries of a domain
absent from the run's mixture predicted by that domain's mean loss, and by a ridge regression on
the mixture, over the training runs without it (``regmix_absent``, on the in-scale splits: what
the mixture tells of those entries at all; a law no better than the mean there explains none of
their spread).

Fairness: every law goes through the same :func:`mixscale.fit` (same objective, restarts, seed,
masks and stopping rules) on the same rows and the same loss columns — the in-mixture domains, so
that laws which can also predict out-of-mixture targets are scored on the same entries as those
which cannot. Initial ranges are each law's documented ``init``; nothing is tuned per dataset or
per law. One optimiser policy for every law (:func:`experiments._common.fit_law`, the fitter's
defaults): Levenberg–Marquardt on the law's per-target structure, inside the law's parameter
ranges, with the fitted nested variants among the starts and the gradient test deciding
convergence. Every fit records whether its law passed that test, how many parameters ended on a
range bound, and the nested variants' objectives (the law's must not be above them).

Outputs: ``compare_laws.json`` (every fit's numbers, the configuration and the versions) and
``compare_laws.md`` (tables generated from the JSON) in ``--out`` (default ``figures/``)::

    python -m experiments.compare_laws            # full run
    python -m experiments.compare_laws --quick    # smoke test (seconds)
    python -m experiments.compare_laws --redraw   # the tables again from compare_laws.json
    python -m experiments.compare_laws --add-law joint --part in_scale  # one law, one protocol
    python -m experiments.compare_laws --add-law spectral --part in_scale:regmix-1b  # one table

Files written before the common experiment entry (``law_comparison.json``, renamed
``compare_laws.json`` in ``figures/``) hold the results at the top level rather than under
``"results"``; :func:`render` reads both layouts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import numpy as np

from experiments._across_scale import error_table
from experiments._common import (
    N_RESTARTS,
    fit_law,
    fit_nested_first,
    fit_record,
    pct_mean_sd,
    spec_label,
    unfitted_laws_lines,
    with_spectral,
    write_section,
)
from experiments._harness import Part, nested_checks, read_record, run_experiment
from experiments._protocols import (
    absent_domain_reference,
    absent_domain_summary,
    across_scale_tables,
    evaluate,
    in_scale_table,
    ranking_scores,
    regmix_rank_tables,
    regmix_test_tables,
    scale_rank_ceiling,
)
from mixscale import LawSpec, law_specs
from mixscale.data import split

NAME = "compare_laws"


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that sets the numbers. The defaults are the issue's protocols."""

    #: every law of the registry, in registration order, then the spectral law
    laws: tuple[LawSpec, ...] = with_spectral(law_specs())
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    validation_fraction: float = 0.3
    #: restarts per fit
    n_restarts: int = N_RESTARTS
    fit_seed: int = 0
    max_steps: int | None = None  # the fitter's default
    in_scale: tuple[str, ...] = ("pile4", "slimpajama7", "regmix-1b")
    #: across-scale protocols fitted here: none by default, the table is ``real_extrapolation``'s
    #: fits (same rows and settings; see the module docstring)
    across_scale: tuple[str, ...] = ()
    regmix_rank: bool = True
    #: the measured 1M losses' own ranking of the 60M runs (no fit): the ranking's ceiling at 60M
    regmix_ceiling: bool = True
    #: RegMix-1B's entries of a domain absent from the run, predicted without a law on the
    #: in-scale splits (no fit): what the mixture tells of them at all
    regmix_absent: bool = True
    #: RegMix 1M training runs used (``None``: all 512)
    regmix_train_runs: int | None = None
    #: ``(law label, protocol)`` pairs left out for their cost, reported as not fitted (a bare
    #: law name, ``"spectral"``, covers every variant of it in ``laws``); a
    #: protocol is ``"in_scale"``, ``"across_scale"`` or ``"regmix_rank"``, or one dataset of
    #: the first two (``"in_scale:regmix-1b"``). The spectral law's fits at 17 domains take
    #: 0.17 s (45 RegMix-1B runs) and 3.5 s (the 512 RegMix-1M runs) per Levenberg–Marquardt
    #: step of 16 restarts on the 2-core machine: 64 restarts of ``full`` cost about 18 minutes
    #: per RegMix-1B split (the first split is ``pilecc_target``'s held-out fit), ``transfer``
    #: and ``dispersed`` about 40, and ``full`` about four hours on RegMix-1M. A coverage field
    #: (:data:`COVERAGE_FIELDS`): a record whose
    #: ``not_fitted`` differs takes a law's rows with ``--add-law`` where it was left out.
    not_fitted: tuple[tuple[str, str], ...] = (("spectral (transfer)", "in_scale:regmix-1b"),
                                               ("spectral (dispersed)", "in_scale:regmix-1b"),
                                               ("spectral", "regmix_rank"))
    quick: bool = False

    #: fields that say which cells are filled, not how a number is made
    #: (:func:`experiments._harness.same_settings`)
    COVERAGE_FIELDS: ClassVar[tuple[str, ...]] = ("not_fitted",)


#: The smoke run (seconds) through every protocol and the report: one law with scale terms and
#: one without, both small.
QUICK = Config(laws=(LawSpec("bimix"), LawSpec("regression", variant="linear")), seeds=(0,),
               n_restarts=1, max_steps=10, in_scale=("pile4",), across_scale=("pile4",),
               regmix_train_runs=64, quick=True)


def _fits(specs, train, config: Config, validation=None) -> dict:
    """``{spec: (fit, its wall time in seconds)}`` of every law of ``specs`` on ``train``
    (compilation and validation metrics included), each law after the variants nested in it
    and started from their fits (:func:`experiments._common.fit_nested_first`)."""
    return fit_nested_first(specs, lambda spec, nested: fit_law(
        spec, train, validation=validation, n_restarts=config.n_restarts,
        seed=config.fit_seed, max_steps=config.max_steps, nested=nested))


def _fit_record(res, wall_s: float) -> dict:
    return {"n_params": res.n_params, "fit_s": float(wall_s),
            "optimise_s": float(res.timings["total_s"]), **fit_record(res),
            "train_mre": res.train_metrics["mre"]}


# ----------------------------------------------------------------------------- protocols
def fitted_laws(config: Config, protocol: str, dataset: str | None = None) -> list[LawSpec]:
    """``config.laws`` less those :attr:`Config.not_fitted` leaves out of ``protocol`` (or of
    its ``dataset``)."""
    names = {protocol} if dataset is None else {protocol, f"{protocol}:{dataset}"}
    skip = {spec for label, p in config.not_fitted if p in names
            for spec in covered(label, config.laws)}
    return [spec for spec in config.laws if spec not in skip]


def covered(label: str, laws) -> list[LawSpec]:
    """The laws of ``laws`` that a :attr:`Config.not_fitted` label names: every variant for a
    bare law name (no variant in parentheses), else that one law."""
    if "(" not in label:
        return [spec for spec in laws if spec.name == label]
    return [LawSpec.parse(label)]


def run_in_scale(config: Config, log) -> list[dict]:
    rows = []
    for dataset in config.in_scale:
        table = in_scale_table(dataset)
        for seed in config.seeds:
            train, valid = split(table, config.validation_fraction, seed)
            fits = _fits(fitted_laws(config, "in_scale", dataset), train, config,
                         validation=valid)
            for spec, (res, wall) in fits.items():
                m = res.validation_metrics
                rows.append({"dataset": dataset, "law": spec.label, "seed": seed,
                             "method": res.method, "mre": m["mre"],
                             "mre_high_weight": m["mre_high_weight"], **_fit_record(res, wall)})
                log.info("in-scale %-12s seed %d %-22s %4d params  MRE %.3f%% (h>=0.1 %.3f%%)"
                         "  %.1fs", dataset, seed, spec.label, res.n_params, 100 * m["mre"],
                         100 * m["mre_high_weight"], wall)
    return rows


def run_across_scale(config: Config, log) -> list[dict]:
    rows = []
    for protocol in config.across_scale:
        train, evals = across_scale_tables(protocol)
        laws = fitted_laws(config, "across_scale", protocol)
        fits = _fits([spec for spec in laws if spec.uses_scale], train, config)
        for spec in laws:
            row = {"protocol": protocol, "law": spec.label}
            if not spec.uses_scale:
                rows.append({**row, "status": "one scale only"})
                continue
            res, wall = fits[spec]
            row.update(status="ok", method=res.method, **_fit_record(res, wall), evaluations={
                name: {k: evaluate(res, t)[k] for k in ("mre", "mre_high_weight", "n")}
                for name, t in evals.items()})
            rows.append(row)
            log.info("across %-20s %-22s %s  %.1fs", protocol, spec.label, "  ".join(
                f"{k}: MRE {100 * v['mre']:.2f}%" for k, v in row["evaluations"].items()),
                wall)
    return rows


def run_regmix_ceiling(log) -> dict:
    """The RegMix test mixtures' measured 1M losses as a ranking of their 60M runs
    (:func:`experiments._protocols.scale_rank_ceiling`): ``{"60M": {"mean", "per_domain"}}``."""
    tests = regmix_test_tables()
    ceiling = {"60M": scale_rank_ceiling(tests["1M"], tests["60M"])}
    log.info("regmix: the measured 1M losses rank the 60M runs at Spearman %.3f",
             ceiling["60M"]["mean"])
    return ceiling


def run_regmix_absent(config: Config, log) -> list[dict]:
    """On each of RegMix-1B's in-scale splits (the in-scale protocol's), the validation entries
    of a domain absent from the run's mixture predicted without a law
    (:func:`experiments._protocols.absent_domain_reference`): one row per split."""
    table = in_scale_table("regmix-1b")
    rows = []
    for seed in config.seeds:
        train, valid = split(table, config.validation_fraction, seed)
        rows.append({"seed": seed, **absent_domain_reference(train, valid)})
        log.info("regmix-1b seed %d: %d absent-domain entries, their mean %.2f%%, ridge %.2f%%",
                 seed, rows[-1]["n_absent"], 100 * rows[-1]["mre_mean"],
                 100 * rows[-1]["mre_ridge"])
    return rows


def run_regmix_rank(config: Config, log) -> list[dict]:
    train, tests = regmix_rank_tables(config.regmix_train_runs)
    rows = []
    for spec, (res, wall) in _fits(fitted_laws(config, "regmix_rank"), train, config).items():
        row = {"law": spec.label, "method": res.method, **_fit_record(res, wall),
               "spearman": {name: ranking_scores(res, table) for name, table in tests.items()}}
        rows.append(row)
        log.info("regmix 1M  %-22s Spearman 1M %.3f  60M %.3f  %.1fs", spec.label,
                 row["spearman"]["1M"]["mean"], row["spearman"]["60M"]["mean"],
                 wall)
    return rows


# ----------------------------------------------------------------------------- report
IN_SCALE_TITLES = {"pile4": "Pile-4 200M/8B", "slimpajama7": "SlimPajama-7 122M/10B",
                   "regmix-1b": "RegMix-1B"}
ACROSS_TITLES = {"slimpajama7-122": "SlimPajama-7: 122M → 680M",
                 "slimpajama7-122+310": "SlimPajama-7: 122M+310M → 680M",
                 "pile4": "Pile-4: 90M + 200M≤7B →"}


def _absent_lines(rows: list[dict]) -> list[str]:
    """Report lines on RegMix-1B's absent-domain entries predicted without a law (none for a
    record without them)."""
    if not rows:
        return []
    summary = absent_domain_summary(rows)
    worst = list(summary["per_domain"].items())[:3]
    unscored = summary["n_unscored"]
    return [
        f"RegMix-1B's held-out entries of a domain absent from the run's mixture (`h_i = 0`; "
        f"{100 * summary['share']:.0f} % of the entries), predicted without a law on the same "
        f"{len(rows)} splits: by the domain's mean loss over the training runs without it, MRE "
        f"{pct_mean_sd(summary['mre_mean'])} % (largest: "
        + ", ".join(f"{d} {100 * v:.1f} %" for d, v in worst)
        + f"); by a ridge regression of its log loss on the mixture over those runs "
        f"(`experiments._protocols.absent_domain_reference`), "
        f"{pct_mean_sd(summary['mre_ridge'])} %"
        + (f" ({unscored} entries of a domain absent from fewer than two training runs left "
           "out)" if unscored else "")
        + ". A law whose error on these entries is not below the mean's explains nothing of "
        "their spread (`regmix_overlap` reports it by own weight); at the mean's error they "
        f"add {pct_mean_sd(summary['points'])} points to the MRE over every entry.", ""]


def markdown(record: dict, across: dict | None = None) -> str:
    """The tables of ``compare_laws.md``, generated from the record and, where the record fits
    no across-scale protocol, from ``across``: ``real_extrapolation``'s record (whose fits are
    those protocols'), if there is one."""
    cfg, results = record["config"], record["results"]
    labels = [spec_label(spec) for spec in cfg["laws"]]
    specs = [LawSpec.parse(label) for label in cfg["laws"]]
    not_fitted = [(spec.label, protocol) for label, protocol in cfg.get("not_fitted", [])
                  for spec in covered(label, specs)]
    out = ["# Law comparison on real loss tables", "",
           "Generated by `python -m experiments.compare_laws` from `compare_laws.json`; do "
           "not edit by hand. MRE in percent; every law fitted by `mixscale.fit` with the same "
           f"objective, {cfg['n_restarts']} restarts (seed {cfg['fit_seed']}) and the same "
           "rows and loss columns (in-mixture domains).", ""]
    out += unfitted_laws_lines(NAME, Config().laws, labels, cfg.get("quick", False))

    def left_out(label: str, part: str) -> bool:
        """Whether the configuration's ``not_fitted`` leaves ``label`` out of ``part`` (or
        out of one of its datasets, whose cells then show ``—``)."""
        return any(lab == label and (protocol == part or protocol.startswith(part + ":"))
                   for lab, protocol in not_fitted)

    def not_yet_fitted(part: str, fitted: set, n_columns: int, lead: tuple = ()) -> list[str]:
        """A row of ``n_columns`` cells for each law of the record with no rows in ``part``
        (added with ``--add-law --part`` on other parts) and not left out of it for its cost:
        shown as not yet fitted, with the command that fits it, never as a silent gap."""
        rows = []
        for label in labels:
            if label in fitted or left_out(label, part):
                continue
            cells = [label, *lead, f"not yet fitted (`--add-law '{label}' --part {part}`)"]
            rows.append("| " + " | ".join(cells + [""] * (n_columns - len(cells))) + " |")
        return rows

    if results["in_scale"]:
        rows = results["in_scale"]
        datasets = [d for d in cfg["in_scale"]]
        out += ["## In-scale: validation MRE (mean ± sd over "
                f"{len(cfg['seeds'])} random 70/30 splits by mixture)", "",
                "Each cell: params · MRE all entries · MRE entries with h_i ≥ 0.1 · fit seconds "
                "(mean per fit, compilation included).", ""]
        header = "| law | " + " | ".join(
            f"{IN_SCALE_TITLES.get(d, d)}: params | MRE | MRE h≥0.1 | fit s" for d in datasets)
        out += [header + " |", "|---" * (1 + 4 * len(datasets)) + "|"]
        fitted = {r["law"] for r in rows}
        for label in labels:
            if label not in fitted and not left_out(label, "in_scale"):
                continue  # listed below as not yet fitted
            cells = [label]
            for d in datasets:
                sel = [r for r in rows if r["law"] == label and r["dataset"] == d]
                if not sel:
                    cells += ["—"] * 4
                    continue
                cells += [str(sel[0]["n_params"]), pct_mean_sd([r["mre"] for r in sel]),
                          pct_mean_sd([r["mre_high_weight"] for r in sel]),
                          f"{np.mean([r['fit_s'] for r in sel]):.1f}"]
            out.append("| " + " | ".join(cells) + " |")
        out += not_yet_fitted("in_scale", fitted, 1 + 4 * len(datasets))
        out.append("")
    out += _absent_lines(results.get("regmix_absent", []))
    if results["across_scale"]:
        rows = results["across_scale"]
        cols = []
        for p in cfg["across_scale"]:
            first = next((r for r in rows if r["protocol"] == p and r["status"] == "ok"), None)
            for name in (first["evaluations"] if first else {}):
                cols.append((p, name))
        out += ["## Across scales: MRE on the larger scale (all entries / h_i ≥ 0.1)", "",
                "Fitted on the smaller scales, evaluated on every row of the larger one. Laws "
                "without model-size or token terms cannot be fitted across scales.", ""]
        out += ["| law | " + " | ".join(
            f"{ACROSS_TITLES.get(p, p)}{' ' + n if p == 'pile4' else ''}" for p, n in cols)
            + " | fit s |", "|---" * (len(cols) + 2) + "|"]
        for label in labels:
            sel = [r for r in rows if r["law"] == label]
            if not sel:
                continue
            if all(r["status"] != "ok" for r in sel):
                out.append(f"| {label} | " + " | ".join(["one scale only"] * len(cols)) + " | — |")
                continue
            cells = [label]
            for p, n in cols:
                r = next(r for r in sel if r["protocol"] == p)
                e = r["evaluations"][n]
                cells.append(f"{100 * e['mre']:.2f} / {100 * e['mre_high_weight']:.2f}")
            cells.append(" / ".join(f"{r['fit_s']:.0f}" for r in sel))
            out.append("| " + " | ".join(cells) + " |")
        out += not_yet_fitted("across_scale", {r["law"] for r in rows}, 2 + len(cols))
        out.append("")
    else:
        text = ("Fitted on the smaller scales, evaluated on every row of the larger one, by "
                "`python -m experiments.real_extrapolation` (the same protocols, rows and fit "
                "settings; not fitted twice). Laws without model-size or token terms cannot be "
                "fitted across scales.")
        out += ["## Across scales: MRE on the larger scale (all entries / h_i ≥ 0.1)", ""]
        if across is None:
            out += [text, "", "No `real_extrapolation.json` is next to this record: run "
                    "`python -m experiments.real_extrapolation`, then `python -m "
                    "experiments.compare_laws --redraw`.", ""]
        else:
            out += [f"{text} From its record (run time {across['elapsed_s'] / 60:.1f} min).", "",
                    *error_table(across), ""]
    if results["regmix_rank"]:
        first = results["regmix_rank"][0]["spearman"]
        n_domains = len(first["1M"]["per_domain"])
        out += ["## RegMix: fitted on the 1M training runs, ranking the test mixtures", "",
                "Spearman rank correlation of predicted vs measured loss, mean over the "
                f"{n_domains} in-mixture loss domains (and MRE, %). The laws are fitted at 1M "
                "only, so at 60M they cannot know the loss level (hence the MRE); the ranking "
                "of mixtures is what carries over.", "",
                "| law | params | Spearman 1M | Spearman 60M | MRE 1M | MRE 60M | fit s |",
                "|---|---|---|---|---|---|---|"]
        for r in results["regmix_rank"]:
            s = r["spearman"]
            out.append(f"| {r['law']} | {r['n_params']} | {s['1M']['mean']:.3f} | "
                       f"{s['60M']['mean']:.3f} | {100 * s['1M']['mre']:.2f} | "
                       f"{100 * s['60M']['mre']:.2f} | {r['fit_s']:.1f} |")
        out += [f"| {label} | — | not fitted (cost) | | | | |"
                for label, protocol in not_fitted if protocol == "regmix_rank"]
        out += not_yet_fitted("regmix_rank", {r["law"] for r in results["regmix_rank"]}, 7,
                              lead=("—",))
        out.append("")
        ceiling = results.get("regmix_ceiling", {}).get("60M")
        if ceiling:
            per = ceiling["per_domain"].values()
            out += [f"The measured 1M losses themselves rank the 60M runs at Spearman "
                    f"{ceiling['mean']:.3f} (mean over the {len(ceiling['per_domain'])} domains; "
                    f"{min(per):.3f}–{max(per):.3f}): the ceiling at 60M of a law fitted at 1M "
                    "alone, which has no size term to move the ranking with.", ""]
        else:
            out += ["The measured 1M losses' own ranking of the 60M runs (the ceiling at 60M) "
                    "is not in this record (`python -m experiments.compare_laws --part "
                    "regmix_ceiling`).", ""]
    if not_fitted:
        skipped = "; ".join(f"{label} on {protocol.replace('_', ' ').replace(':', ': ')}"
                            for label, protocol in not_fitted)
        out += [f"Not fitted, for their cost (the configuration's `not_fitted`): {skipped}."
                + (" The across-scale protocols fit the same rows with the same settings as "
                   "`real_extrapolation`, whose report has those laws (or names them as not "
                   "fitted yet)."
                   if any(p.startswith("across_scale") for _, p in not_fitted) else ""), ""]
    v = record["versions"]
    out += convergence_summary(results)
    out += ["Optimiser: one policy for every law (Levenberg–Marquardt on the law's per-target "
            "structure, inside its parameter ranges, started also from its fitted nested "
            "variants; converged = the gradient test of `mixscale._lm`). Fit seconds are "
            "wall-clock on a shared machine: compare them within a column.", "",
            f"Versions: mixscale {v['mixscale']}, jax {v['jax']}, numpy {v['numpy']}; total "
            f"run time {record['elapsed_s'] / 60:.1f} min.", ""]
    return "\n".join(out)


def standalone_nested_check(results: dict) -> dict[str, tuple[int, int, list[str]]]:
    """Per law that nests others: ``(held, compared, failures)`` of the check that its training
    objective is at most (to 1e-9 relative) that of each nested variant's *own* fit in these
    results on the same rows (the experiment fits the nested variants as laws too, with all
    the restarts, and starts the law from those fits: :func:`_fits`), by
    :func:`experiments._harness.nested_checks` over each part's successful fits."""
    out: dict = {}
    for part in ("in_scale", "across_scale", "regmix_rank"):
        rows = [r for r in results.get(part, []) if r.get("status", "ok") == "ok"]
        for where, label, inner, mine, theirs, ok in nested_checks(rows, where=part):
            held, n, bad = out.get(label, (0, 0, []))
            out[label] = (held + ok, n + 1, bad + ([] if ok else [
                f"{where}: {mine:.6g} against {inner}'s {theirs:.6g} (+{mine / theirs - 1:.1e})"]))
    return out


def convergence_summary(results: dict) -> list[str]:
    """Markdown lines: per law, how many of its fits ended converged, how many kept the nested
    checks (objective at most each nested variant's: the fitter's own nested fits, and the
    nested variants' fits in these results on the same rows), and the parameters left on range
    bounds."""
    fits = [r for part in ("in_scale", "across_scale", "regmix_rank")
            for r in results.get(part, []) if r.get("status", "ok") == "ok"]
    if not fits or "law_converged" not in fits[0]:
        return []
    standalone = standalone_nested_check(results)
    out = ["## Convergence of every fit above", "",
           "Converged: the returned law passed the gradient test (largest cosine between the "
           "residuals and a free parameter's Jacobian column ≤ 1e-5). Nested checks: the law's "
           "training objective is at most that of every variant nested in it, fitted on the "
           "same rows — by the fitter (its nested starts: the table's own fits of the nested "
           "variants, `experiments._common.fit_nested_first`; in records made before it, the "
           "fitter's fits of them with a quarter of the restarts) and as a law of its own in "
           "the tables above (all the restarts).", "",
           "| law | fits | converged | nested check holds: fitter's | tables' | parameters on "
           "a bound (mean) |", "|---|---|---|---|---|---|"]
    for label in dict.fromkeys(r["law"] for r in fits):
        sel = [r for r in fits if r["law"] == label]
        nested = [r for r in sel if r["nested_objectives"]]
        held, n, _ = standalone.get(label, (0, 0, []))
        out.append(f"| {label} | {len(sel)} | {sum(r['law_converged'] for r in sel)} | "
                   + (f"{sum(r['nested_ok'] for r in nested)}/{len(nested)}" if nested
                      else "— (nests no variant)")
                   + f" | {f'{held}/{n}' if n else '—'}"
                   + f" | {np.mean([r['at_bounds'] for r in sel]):.1f} |")
    failures = [f for _, _, bad in standalone.values() for f in bad]
    if failures:
        out += ["", "Fits above a nested variant's own fit on the same rows. A law starts from "
                "its run's fits of the variants nested in it: the table's rows of those "
                "variants if they were fitted in the same run, else fits made for the start "
                "(a law added with `--add-law`), which match the table's rows only if the "
                "fitter has not changed since they were made; a shortfall is then that "
                "difference, or, where the law's optimum is the variant itself, the precision "
                "of the nesting (a parameter at the end of its range, 1e-7 of the loss or "
                "less), or, in records made before those starts, a basin the fitter's own "
                "nested fits missed: " + "; ".join(failures) + "."]
    return out + [""]


def run(config: Config, log) -> dict:
    """All protocols of ``config``: the results (JSON-serialisable)."""
    return {"in_scale": run_in_scale(config, log),
            "across_scale": run_across_scale(config, log),
            "regmix_rank": run_regmix_rank(config, log) if config.regmix_rank else [],
            "regmix_ceiling": run_regmix_ceiling(log) if config.regmix_ceiling else {},
            "regmix_absent": run_regmix_absent(config, log) if config.regmix_absent else []}


def _harness_layout(record: dict) -> dict:
    """``record`` with its results under ``"results"``: files written before the common entry
    kept them at the top level, next to the configuration and the versions."""
    if "results" in record:
        return record
    return {"experiment": NAME, "config": record["config"], "versions": record["versions"],
            "elapsed_s": record["elapsed_s"],
            "results": {k: record[k] for k in ("in_scale", "across_scale", "regmix_rank")}}


#: The experiment whose record gives this one's across-scale table (see the module docstring).
ACROSS_SOURCE = "real_extrapolation"


def render(out, record: dict) -> None:
    """Write ``compare_laws.md`` from the record (and, for the across-scale table,
    ``real_extrapolation``'s record in ``out``, if it is there and this record fits no
    across-scale protocol)."""
    has_source = (Path(out) / f"{ACROSS_SOURCE}.json").exists()
    across = read_record(out, ACROSS_SOURCE) if has_source else None
    write_section(out, NAME, markdown(_harness_layout(record), across))


#: The protocols as parts of the results (``--add-law LABEL --part PROTOCOL``): a long law
#: (``joint`` takes hours) can be refitted one protocol at a time. A part's configuration
#: switches every other part off (each field's "off" value below). The in-scale datasets are
#: parts too (``--part in_scale:regmix-1b``): a law refitted or first fitted on one table
#: (the spectral law's RegMix-1B splits, 18–40 minutes each) costs that table's fits alone, its
#: rows on the other tables untouched.
_PART_OFF = {"in_scale": (), "across_scale": (), "regmix_rank": False, "regmix_ceiling": False,
             "regmix_absent": False}


def _only(part: str, **fields):
    """``config -> config`` with every part but ``part`` off and ``fields`` set."""
    return lambda c: dataclasses.replace(
        c, **{other: off for other, off in _PART_OFF.items() if other != part}, **fields)


# (no across-scale part: those fits are real_extrapolation's, see the module docstring)
PARTS = {part: _only(part) for part in _PART_OFF if part != "across_scale"}
PARTS.update({f"in_scale:{dataset}": Part(_only("in_scale", in_scale=(dataset,)), key="in_scale",
                                          rows=lambda row, d=dataset: row["dataset"] == d)
              for dataset in Config().in_scale})


def main(argv=None) -> int:
    return run_experiment(NAME, __doc__.split("\n\n")[0], Config, run, render, argv,
                          quick_config=QUICK, can_add_laws=True, parts=PARTS)


if __name__ == "__main__":
    raise SystemExit(main())
