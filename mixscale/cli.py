"""The ``mixscale`` command line: a thin shell over the library (no mathematics here).

    mixscale datasets                      list the bundled loss tables
    mixscale laws [--domains K]            list the laws and their parameter counts
    mixscale fit DATASET_OR_CSV [...]      fit a law, print it, its errors and the best mixture
                                           (--bootstrap B: intervals; --plot FILE.png: figure)
    mixscale optimize FIT.json --model-size 1B --tokens 25B [...]   (--plot FILE.png)
    mixscale evaluate FIT.json DATASET_OR_CSV [...]
    mixscale plot FIT.json DATASET_OR_CSV --out FILE.png [...]

Sizes and token counts are given as plain numbers of parameters / tokens, with an optional
suffix ``K``, ``M``, ``B`` or ``T`` (``680M``, ``2.5e10``, ``25B``). Bad input ends with a one-line
message and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence

import numpy as np

from ._checks import MAX_RESTARTS, MAX_SEED, MAX_STARTS, MAX_TRAIN_DOMAINS, TINY
from .data._csv import count_value, strict_float

__all__ = ["main"]

#: ``--tokens`` matches published token counts within this relative tolerance (RegMix and
#: SlimPajama round their budgets, e.g. 9.998B tokens for a nominal "10B" checkpoint).
TOKEN_MATCH = 0.01


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block): ``prog: error: message``, exit 2."""

    def error(self, message: str):
        if message.startswith("argument ") and message.endswith("expected one argument"):
            message += " (attach a value that starts with '-': --option=-1)"
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _quantity(text: str) -> float:
    try:
        value = count_value(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r} (e.g. 680M, 25B, 1e9)") \
            from None
    if not (np.isfinite(value) and value >= 1):
        raise argparse.ArgumentTypeError(f"must be a finite count of at least 1: {text!r}")
    return value


def _assignment(text: str) -> tuple[str, float]:
    """``NAME=VALUE``, split at the last ``=`` (a domain name may hold one: ``a=b=0.3``)."""
    name, sep, value = text.rpartition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        number = strict_float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number in {text!r}") from None
    if not (np.isfinite(number) and (number == 0 or abs(number) >= np.finfo(float).tiny)):
        raise argparse.ArgumentTypeError(f"{text!r}: the value must be finite and, unless 0, "
                                         "a normal float (not subnormal)")
    return name.strip(), number


def _integer(lo: int, hi: int):
    """An argparse type: an integer in ``[lo, hi]``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be an integer in [{lo}, {hi}], got {text}")
        return value

    return parse


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1) (0: no hold-out), got {text}")
    return value


def _png(text: str) -> str:
    """An argparse type: a path ending in ``.png`` in an existing folder."""
    if not text.lower().endswith(".png"):
        raise argparse.ArgumentTypeError(f"must name a .png file, got {text!r}")
    folder = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"folder {folder} does not exist (for {text!r})")
    return text


#: Nominal coverage of the intervals the command line prints.
LEVEL = 0.9


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _dumps(doc) -> str:
    """Strict JSON: a value that is not a finite number (no measurement) is written as null."""
    def clean(v):
        if isinstance(v, (float, np.floating)):
            return float(v) if np.isfinite(v) else None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, np.integer):
            return int(v)
        return v

    return json.dumps(clean(doc), indent=1, allow_nan=False)


def _num(value, spec: str) -> str:
    """``value`` formatted by ``spec``, or ``n/a`` where it is not a finite number."""
    return format(value, spec) if value is not None and np.isfinite(value) else "n/a"


#: Losses of magnitude in this range print with four decimals (at least three significant
#: digits, at most twelve characters); others, as a user's table in other units may hold,
#: with four significant digits in scientific notation.
FIXED_LOSS_RANGE = (0.01, 1e6)


def _loss(value) -> str:
    """A loss for the command line's tables: ``2.4913`` in :data:`FIXED_LOSS_RANGE` (and at
    zero), ``4.8970e+200`` or ``3.1416e-07`` outside it, ``n/a`` where not a finite number."""
    lo, hi = FIXED_LOSS_RANGE
    fixed = value is not None and (value == 0 or lo <= abs(value) < hi)
    return _num(value, ".4f" if fixed else ".4e")


def _law_units(value: float, unit: float, option: str, path: str, key: str) -> float:
    """``value`` (parameters or tokens) in the law units of a fitted file, refused when the
    file's unit makes it overflow or vanish."""
    x = value / unit
    if not (np.isfinite(x) and x >= TINY):
        raise CliError(f"{path}: {key} = {unit:g} turns {option} {value:g} into {x:g} law "
                       "units: the file's unit is out of range")
    return x


# --------------------------------------------------------------------------- loading
def _load_table(source: str, out_of_mixture: Sequence[str], split: str | None):
    from .data import available, load, read_csv

    names = {d.name for d in available()}
    if source in names:
        if os.path.exists(source):
            _err(f"note: {source} names a bundled table, which is read; the file {source} here "
                 f"is not (give ./{source} to read it)")
        if out_of_mixture:
            raise CliError("--out-of-mixture applies to CSV input only: the bundled tables "
                           "already name their out-of-mixture columns")
        if not split:
            return load(source)
        try:
            return load(source, split=split)
        except TypeError:
            raise CliError(f"--split applies to regmix-1m only, not to {source}") from None
    if os.path.isdir(source):
        raise CliError(f"{source} is a directory, not a CSV file")
    if os.path.exists(source):
        if split:
            raise CliError("--split applies to bundled datasets only")
        return read_csv(source, out_of_mixture=tuple(out_of_mixture))
    raise CliError(f"{source!r} is neither a bundled dataset ({', '.join(sorted(names))}) "
                   "nor an existing CSV file")


def _select_rows(table, args):
    from .data import select

    kw = {}
    if args.model_size:
        kw["model_size"] = [v / table.size_unit for v in args.model_size]
    if args.tokens and args.tokens_range:
        raise CliError("give --tokens or --tokens-range, not both")
    if args.tokens:
        # rows within TOKEN_MATCH of any of the values (a run logs 9.998B for "10B")
        wanted = np.asarray(args.tokens, dtype=float) / table.token_unit
        match = np.any(np.abs(table.tokens[:, None] / wanted[None, :] - 1.0) <= TOKEN_MATCH,
                       axis=1)
        if not match.any():
            have = sorted({float(v) for v in table.tokens * table.token_unit})
            raise CliError(f"rows (--tokens): {table.name} has no row within "
                           f"{100 * TOKEN_MATCH:g} % of "
                           f"{', '.join(_fmt_quantity(v) for v in args.tokens)} tokens; it has "
                           f"{', '.join(_fmt_quantity(v) for v in have[:12])}"
                           f"{' ...' if len(have) > 12 else ''}")
        table = table.take(np.flatnonzero(match))
    if args.tokens_range:
        lo, hi = args.tokens_range
        kw["tokens_range"] = (lo / table.token_unit, hi / table.token_unit)
    if not kw:
        return table
    try:
        return select(table, **kw)
    except ValueError as err:  # TableError included
        raise CliError(f"rows (--model-size, --tokens, --tokens-range): {err}") from None


def _fmt_quantity(value: float) -> str:
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def _print_mixture(names, weights, losses=None, targets=(), loss_intervals=None,
                   weight_intervals=None):
    """One line per training domain: its weight (with ``[lo, hi]`` from ``weight_intervals``)
    and its predicted loss (with ``[lo, hi]`` from ``loss_intervals``, by target name); then
    one line per out-of-mixture target, its predicted loss (weight ``—``)."""
    head = f"  {'domain':<22} {'weight':>8}"
    if weight_intervals is not None:
        head += f" {f'{100 * LEVEL:.0f} % interval':>18}"
    if losses is not None:
        head += f" {'pred. loss':>11}"
        if loss_intervals is not None:
            head += f" {f'{100 * LEVEL:.0f} % interval':>18}"
    print(head)
    loss_of = dict(zip(targets, [] if losses is None else losses, strict=False))

    def loss_cells(name):  # the predicted loss and its interval, where the law predicts one
        if name not in loss_of:
            return ""
        text = f" {_loss(loss_of[name]):>11}"
        if loss_intervals is not None:
            lo, hi = loss_intervals[name]
            text += f" {f'[{_loss(lo)}, {_loss(hi)}]':>18}"
        return text

    for i, (name, w) in enumerate(zip(names, weights, strict=True)):
        line = f"  {name:<22} {w:>8.4f}"
        if weight_intervals is not None:
            line += f" {f'[{weight_intervals[0][i]:.4f}, {weight_intervals[1][i]:.4f}]':>18}"
        print(line + loss_cells(name))
    # out-of-mixture targets have a predicted loss and no weight: listed after the domains, so
    # that every loss in the weighted mean is shown
    for name in targets:
        if name in loss_of and name not in names:
            print(f"  {name:<22} {'—':>8}" + (f" {'':>18}" if weight_intervals is not None
                                               else "") + loss_cells(name))


def _print_metrics(title, m):
    if m is None:
        return
    hw = m.get("mre_high_weight")
    hw_txt = "" if hw is None or not np.isfinite(hw) else f"   MRE(h>=0.1) {100 * hw:.3f} %"
    ab = m.get("mre_absent")
    if ab is not None and np.isfinite(ab):
        hw_txt += f"   MRE(h=0) {100 * ab:.3f} %"
    print(f"{title:<11} MRE {_num(100 * m['mre'], '.3f')} %   MAE {_num(m['mae'], '.4g')}   "
          f"RMSE {_num(m['rmse'], '.4g')}   ({m['n']} losses){hw_txt}")


# --------------------------------------------------------------------------- commands
def _cmd_datasets(args) -> int:
    from .data import available

    infos = available()
    if args.json:
        print(json.dumps([dict(name=d.name, description=d.description, runs=d.runs,
                               train_domains=d.n_train_domains, loss_domains=d.n_loss_domains,
                               model_sizes_millions=list(d.model_sizes),
                               tokens_billions=list(d.token_counts), citation=d.citation)
                          for d in infos], indent=1))
        return 0
    print(f"{'name':<13} {'runs':>5} {'K':>3} {'M':>3}  {'model sizes':<22} tokens")
    for d in infos:
        sizes = ", ".join(_fmt_quantity(s * 1e6) for s in d.model_sizes)
        toks = (f"{_fmt_quantity(min(d.token_counts) * 1e9)}–"
                f"{_fmt_quantity(max(d.token_counts) * 1e9)}" if len(d.token_counts) > 1
                else _fmt_quantity(d.token_counts[0] * 1e9))
        print(f"{d.name:<13} {d.runs:>5} {d.n_train_domains:>3} {d.n_loss_domains:>3}  "
              f"{sizes:<22} {toks}")
        print(f"{'':<13} {d.description}")
    return 0


def _cmd_laws(args) -> int:
    from .laws import law_specs

    k = args.domains
    from .laws._registry import CANDIDATES

    rows = [dict(law=spec.label, n_params=spec.n_parameters(k, k), uses_scale=spec.uses_scale,
                 candidate=spec.name in CANDIDATES,
                 description=(spec.law_class.__doc__ or "").strip().splitlines()[0],
                 fits_k_domains=k <= MAX_TRAIN_DOMAINS)
            for spec in law_specs(candidates=True)]
    if args.json:  # what the text says, as fields
        print(json.dumps(rows, indent=1))
        return 0
    print(f"laws for K = M = {k} domains")
    print(f"{'law':<22} {'params':>6}  {'N, D terms':<10} description")
    for r in rows:
        print(f"{r['law']:<22} {r['n_params']:>6}  "
              f"{'yes' if r['uses_scale'] else 'one scale':<10} "
              f"{'[candidate] ' if r['candidate'] else ''}{r['description']}")
    if k > MAX_TRAIN_DOMAINS:
        print(f"note: fits support at most {MAX_TRAIN_DOMAINS} training domains")
    return 0


def _resolve_stages(args) -> None:
    """Set ``args.polish_steps``, ``args.finish_steps`` and ``args.smooth_kinks`` to what the fit
    runs: the converging policy (:func:`mixscale._fit.converging_stages`) where not given,
    nothing under ``--plain``; refuse a stage asked of L-BFGS or together with ``--plain``."""
    from ._fit import NO_STAGES, converging_stages

    given = {"polish_steps": ("--polish-steps", args.polish_steps),
             "finish_steps": ("--finish-steps", args.finish_steps),
             "smooth_kinks": ("--smooth-kinks", args.smooth_kinks)}
    for flag, value in given.values():
        if value and args.plain:
            raise CliError(f"{flag} asks for a stage that --plain skips: give one of them")
        if value and args.method != "lm":
            raise CliError(f"{flag} continues Levenberg-Marquardt restarts: use --method lm")
    policy = NO_STAGES if args.plain else converging_stages(args.method, args.max_steps)
    for key, (_, value) in given.items():
        setattr(args, key, policy[key] if value is None else value)


def _cmd_fit(args) -> int:
    from . import fit
    from ._io import save_fit
    from ._mixture import mixture_notes, optimal_mixture
    from .data import split
    from .laws import LawSpec

    if args.bootstrap and args.method != "lm":
        raise CliError("--bootstrap refits with Levenberg-Marquardt: use --method lm")
    if args.geodesic and args.method != "lm":
        raise CliError("--geodesic is a Levenberg-Marquardt option: use --method lm")
    _resolve_stages(args)
    options = {} if args.variant is None else {"variant": args.variant}
    try:
        spec = LawSpec(args.law, **options)
    except (KeyError, ValueError) as err:
        raise CliError(f"--law/--variant: {str(err).strip(chr(34) + chr(39))}") from None
    _check_outputs(args, ((args.dataset, "table"),))
    table = _select_rows(_load_table(args.dataset, args.out_of_mixture, args.split), args)
    if table.n_train_domains > MAX_TRAIN_DOMAINS:
        raise CliError(f"{args.dataset}: {table.n_train_domains} training domains; fits support "
                       f"at most {MAX_TRAIN_DOMAINS}: merge small domains or fit a subset of them")
    if args.validation_fraction > 0:
        try:
            train, valid = split(table, args.validation_fraction, args.seed)
        except ValueError as err:
            raise CliError(f"--validation-fraction: {err} (--validation-fraction 0 fits every "
                           "run and holds none out)") from None
    else:
        train, valid = table, None

    def report(p):
        if p.done == 0 and p.stage == "restarts":  # every check passed: the fit starts
            _err(f"fitting {spec.label} to {table.name}: {train.n_runs} training runs"
                 f"{f', {valid.n_runs} held out' if valid is not None else ''}; "
                 f"{p.n_restarts} restarts ({args.method})"
                 + (f", then {args.bootstrap} bootstrap replicates" if args.bootstrap else ""))
            return
        if p.done == 0:
            return
        what = {"restarts": "restarts", "geodesic restarts": "geodesic restarts",
                "polish": "polish: continued restarts",
                "finish": "finish: returned restarts",
                "kinks": "kink continuation: stages"}.get(p.stage, "bootstrap replicates")
        _err(f"  {what} {p.done}/{p.n_restarts} done, best objective "
             f"{_num(p.best_objective, '.4g')}, {p.elapsed_s:.1f} s")

    try:
        res = fit(spec, train, validation=valid, n_restarts=args.restarts, seed=args.seed,
                  method=args.method, progress=report, n_bootstrap=args.bootstrap or 0,
                  max_steps=args.max_steps, nested=args.nested, geodesic=args.geodesic,
                  polish_steps=args.polish_steps, finish_steps=args.finish_steps,
                  smooth_kinks=args.smooth_kinks)
    except RuntimeError as err:  # every restart failed: the data, not a bug
        raise CliError(str(err)) from None
    n_at = float(train.model_size.max())
    d_at = float(train.tokens.max())
    try:
        mix = optimal_mixture(res.law, n_at, d_at, n_train_domains=len(res.train_domains),
                              n_starts=args.mixture_starts)
    except ValueError as err:
        raise CliError(f"the fitted law cannot pick a mixture: {err}") from None
    mix_notes = mixture_notes(mix, res.train_domains, res.targets, res.fitted_weight_max)
    boot = _bootstrap_summary(res, train, mix.weights, n_at, d_at) if args.bootstrap else None
    if args.out:
        try:
            save_fit(res, args.out)
        except OSError as err:
            raise CliError(f"--out {args.out}: cannot write it ({err.strerror})") from None
    if args.plot:
        from .plots import plot_fit

        plot_fit(res, train, args.plot)
    if args.json:
        from ._io import law_to_dict

        print(_dumps({
            "dataset": table.name, **law_to_dict(res.law), "law_options": spec.law_options,
            "targets": list(res.targets), "n_params": res.n_params,
            "train_metrics": res.train_metrics, "validation_metrics": res.validation_metrics,
            "converged_restarts": int(res.converged.sum()), "notes": list(res.notes),
            "at_bounds": res.at_bounds, "law_converged": res.law_converged,
            "polished_restarts": list(res.polished),
            "finished_restarts": list(res.finished), "kink_smoothed": res.kink_smoothed,
            "kink_certificate": None if res.kink_certificate is None else {
                "certified": res.kink_certificate.certified,
                "steps": res.kink_certificate.steps,
                "active_kinks": res.kink_certificate.active_kinks,
                "steps_off_kinks": res.kink_certificate.escapes,
                "second_order_steps": res.kink_certificate.second_order_steps,
                "sampled_stationarity": res.kink_certificate.sigma,
                "end_kept": res.kink_kept},
            "objective": res.objective, "nested_objectives": dict(res.nested_objectives),
            "optimal_mixture": {"model_size": n_at * table.size_unit,
                                "tokens": d_at * table.token_unit,
                                "weights": dict(zip(res.train_domains,
                                                    mix.weights.tolist(), strict=True)),
                                "mean_loss": mix.objective, "notes": mix_notes},
            "bootstrap": boot}))
        return 0
    print(f"law {spec.label} — {res.n_params} parameters, "
          f"{int(res.converged.sum())}/{len(res.converged)} restarts converged, "
          f"{res.timings['total_s']:.1f} s")
    for note in res.notes:
        print(f"note: {note}")
    if res.at_bounds:
        print(f"note: {res.at_bounds} parameter(s) ended on a bound of their range (see the "
              "law's parameter_bounds): the data do not pin them down there")
    _print_parameters(res)
    print(f"training objective {res.objective:.6g}" + _unconverged_note(res, args)
          + "".join(f"; nested {label}: {value:.6g}"
                    for label, value in res.nested_objectives.items()))
    _print_metrics("train", res.train_metrics)
    _print_metrics("validation", res.validation_metrics)
    per = (res.validation_metrics or res.train_metrics)["per_domain_mre"]
    print("per-domain MRE (%): " + ", ".join(f"{k} {_num(100 * v, '.2f')}"
                                            for k, v in per.items()))
    print(f"recommended mixture at {_fmt_quantity(n_at * table.size_unit)} parameters, "
          f"{_fmt_quantity(d_at * table.token_unit)} tokens (mean predicted loss "
          f"{mix.objective:.4g}):")
    for note in mix_notes:
        print(f"note: {note}")
    if boot is None:
        _print_mixture(res.train_domains, mix.weights, mix.losses, res.targets)
    else:
        _print_mixture(res.train_domains, mix.weights, mix.losses, res.targets,
                       {k: (v["lower"], v["upper"]) for k, v in
                        boot["predicted_losses"].items()})
        _print_bootstrap(res, boot)
    if args.out:
        print(f"saved the fitted law to {args.out}")
    if args.plot:
        print(f"wrote the figure {args.plot}")
    return 0


def _bootstrap_summary(res, train, weights, n_at, d_at) -> dict:
    """The bootstrap's counts and 90 % percentile intervals of the predicted losses at the
    recommended mixture and of the natural parameters, as JSON-ready values."""
    from ._bootstrap import parameter_intervals, prediction_intervals

    b = res.bootstrap
    iv = prediction_intervals(res, weights, n_at, d_at, table=train, level=LEVEL)
    losses = {name: {"point": float(iv.point[0, j]), "lower": float(iv.lower[0, j]),
                     "upper": float(iv.upper[0, j])} for j, name in enumerate(res.targets)}
    params = {name: {"point": v.point.tolist(), "lower": v.lower.tolist(),
                     "upper": v.upper.tolist()}
              for name, v in parameter_intervals(res, table=train, level=LEVEL).items()}
    return {"replicates": b.n_replicates, "failed": b.n_failed,
            "unconverged": b.n_unconverged, "mixtures_resampled": b.n_groups,
            "seconds": b.seconds, "level": LEVEL, "method": "percentile",
            "predicted_losses": losses, "parameters": params}


def _print_bootstrap(res, boot: dict) -> None:
    print(f"bootstrap: {boot['replicates']} replicates resampling the "
          f"{boot['mixtures_resampled']} training mixtures, {boot['failed']} failed (left out), "
          f"{boot['unconverged']} stopped unconverged (kept), {boot['seconds']:.1f} s; "
          f"{100 * LEVEL:.0f} % percentile intervals of the parameters (not calibrated; wide "
          "where the data do not pin a parameter down):")
    k_names, m_names = list(res.train_domains), list(res.targets)
    for name, v in boot["parameters"].items():
        point, lo, hi = (np.atleast_1d(np.asarray(v[x], dtype=float))
                         for x in ("point", "lower", "upper"))
        if point.ndim > 1:
            print(f"  {name}: {point.size} entries (see --json)")
            continue
        if point.size == 1:
            labels = [""]
        elif point.size == len(m_names):
            labels = m_names
        elif point.size == len(k_names):
            labels = k_names
        else:
            labels = [str(i) for i in range(point.size)]
        cells = [f"{lab + ' ' if lab else ''}{p:.4g} [{a:.4g}, {b:.4g}]"
                 for lab, p, a, b in zip(labels, point, lo, hi, strict=True)]
        print(f"  {name}: " + "; ".join(cells))


def _check_writable(path: str, option: str = "--out") -> None:
    """Refuse an output file (``--out``, ``--plot``) that cannot be written, before any work (a
    file created by the check is removed again)."""
    if os.path.isdir(path) or not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise CliError(f"{option} {path}: not a file in an existing directory")
    existed = os.path.exists(path)
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as err:
        raise CliError(f"{option} {path}: cannot write it ({err.strerror})") from None
    if not existed:
        os.remove(path)


def _check_outputs(args, inputs: tuple[tuple[str, str], ...] = ()) -> None:
    """Every output file of the command (``--out``, ``--plot``) writable, none of them an input
    file (``inputs``: ``(path, what it is)``) or another output: checked before any work, so
    that a fit is not run only to fail on its figure, nor its saved law overwritten by the
    figure."""
    outputs = [(option, path) for option, path in (("--out", getattr(args, "out", None)),
                                                    ("--plot", getattr(args, "plot", None)))
               if path]
    for option, path in outputs:
        for source, what in inputs:
            if os.path.exists(source) and os.path.exists(path) and os.path.samefile(path,
                                                                                   source):
                raise CliError(f"{option} {path} is the input {what}: choose another file")
        _check_writable(path, option)
    if len(outputs) == 2 and os.path.abspath(outputs[0][1]) == os.path.abspath(outputs[1][1]):
        raise CliError(f"--out and --plot name the same file {outputs[0][1]}: the figure would "
                       "overwrite the saved law")


def _off_kinks(cert) -> str:
    """`` and N off them`` for a certificate that stepped off the kinks, ``, then N second-order
    steps`` for one whose second pass ran (``""`` if neither)."""
    off = f" and {cert.escapes} off them" if cert.escapes else ""
    second = ("" if cert.second_order_steps is None
              else f", then {cert.second_order_steps} second-order steps")
    return off + second


def _unconverged_note(res, args) -> str:
    """Why the returned law failed the gradient test, as far as the fit can tell: it reached the
    step limit (more steps continue it), or it stopped before (no damped step lowered it)."""
    cert = res.kink_certificate
    if res.law_converged:
        return ("" if cert is None or not cert.certified else
                f" (certified on a kink: {cert.steps} steps along {cert.active_kinks} kink(s)"
                f"{_off_kinks(cert)}, sampled stationarity {cert.sigma:.1e})")
    if cert is not None:
        lower = (f" lowered it by {100 * (1 - cert.objective / cert.start_objective):.2g} % "
                 "(the law returned) but" if cert.objective < cert.start_objective else "")
        return (f" (not converged: stopped on a kink of the law; {cert.steps} steps along "
                f"{cert.active_kinks} kink(s){_off_kinks(cert)}{lower} did not reach a "
                f"certified point, sampled stationarity {cert.sigma:.1e} against 1e-5)")
    from ._fit import DEFAULT_MAX_STEPS

    cap = args.max_steps or DEFAULT_MAX_STEPS[args.method]
    if res.at_step_limit(cap, args.polish_steps, args.finish_steps):
        return (" (not converged: the gradient test failed at the step limit; more "
                "--polish-steps continue the best restarts, more --finish-steps the returned "
                "ones)")
    kinks = "" if args.smooth_kinks else " (--smooth-kinks continues it)"
    return (" (not converged: it stopped before the step limit with no damped step lowering it; "
            "the objective may have no gradient there, as where a domain's capacity allocation "
            f"meets the head floor x_i = H{kinks}, or a parameter may be drifting towards an "
            "unbounded limit, see the table above)")


def _print_parameters(res) -> None:
    """Every natural parameter of the law: scalars on one line, vectors as columns of a table by
    domain, ``(M, K)`` matrices as blocks (rows: targets, columns: training domains)."""
    natural = {k: np.asarray(v, dtype=float) for k, v in res.law.natural_parameters().items()}
    k_names, m_names = list(res.train_domains), list(res.targets)
    scalars = {k: v for k, v in natural.items() if v.ndim == 0}
    vectors = {k: v for k, v in natural.items() if v.ndim == 1}
    matrices = {k: v for k, v in natural.items() if v.ndim == 2}
    if scalars:
        print("  " + "   ".join(f"{k} = {float(v):.4g}" for k, v in scalars.items()))

    def axis(vec):  # the domain names a vector runs over, or None if that is ambiguous
        if len(m_names) == len(k_names):
            return k_names if m_names == k_names else None
        return m_names if len(vec) == len(m_names) else k_names

    table = {k: v for k, v in vectors.items() if axis(v) is not None}
    for key, vec in vectors.items():
        if key not in table:
            print(f"  {key}: " + " ".join(f"{x:.4g}" for x in vec))
    if table:
        rows = list(dict.fromkeys(k_names + m_names))
        print(f"  {'domain':<22}" + "".join(f" {k:>10}" for k in table))
        for name in rows:
            cells = [vec[axis(vec).index(name)] if name in axis(vec) else None
                     for vec in table.values()]
            print(f"  {name:<22}" + "".join(f" {c:>10.4g}" if c is not None else f" {'-':>10}"
                                            for c in cells))
    for key, mat in matrices.items():
        print(f"  {key} (rows: predicted domain; columns: training domain)")
        # columns as wide as the longest name: cut to 10 characters, two domains could read
        # the same ('stackexchange' and 'stackexchange_old')
        width = max(10, *(len(n) for n in k_names))
        print(f"  {'':<22}" + "".join(f" {n:>{width}}" for n in k_names))
        for name, row in zip(m_names, mat, strict=False):
            print(f"  {name:<22}" + "".join(f" {x:>{width}.4g}" for x in row))


def _load_fit_file(path):
    from ._io import load_fit

    if not os.path.exists(path):
        raise CliError(f"{path}: no such file")
    return load_fit(path)


def _cmd_optimize(args) -> int:
    from ._mixture import mixture_notes, optimal_mixture

    _check_outputs(args, ((args.fitted, "fit file"),))
    res = _load_fit_file(args.fitted)
    n = _law_units(args.model_size, res.size_unit, "--model-size", args.fitted, "size_unit")
    d = _law_units(args.tokens, res.token_unit, "--tokens", args.fitted, "token_unit")
    k = len(res.train_domains)

    def per_domain(pairs, default, names, what):
        out = np.full(len(names), default, dtype=float)
        seen = set()
        for name, value in pairs or ():
            if name not in names:
                raise CliError(f"{what}: unknown domain {name!r}; domains: {', '.join(names)}")
            if name in seen:
                raise CliError(f"{what}: domain {name!r} is given twice")
            if value < 0:
                raise CliError(f"{what}: {name}={value:g} must not be negative")
            if what != "--target" and value > 1:
                raise CliError(f"{what}: {name}={value:g} is not a weight (at most 1)")
            seen.add(name)
            out[names.index(name)] = value
        return out

    w = None
    if args.target:
        w = per_domain(args.target, 0.0, list(res.targets), "--target")
        top = float(w.max())
        total = float((w / top).sum()) * top if top > 0 else 0.0  # Python floats: inf, no warning
        if not (0 < total < float("inf")):
            raise CliError("--target: the weights must not all be 0, and their sum must be "
                           "finite")
    lower = per_domain(args.lower, 0.0, list(res.train_domains), "--lower")
    upper = per_domain(args.upper, 1.0, list(res.train_domains), "--upper")
    for name, lo, hi in zip(res.train_domains, lower, upper, strict=True):
        if lo > hi:
            raise CliError(f"--lower {name}={lo:g} is above --upper {name}={hi:g}")
    if lower.sum() > 1 + 1e-12:
        raise CliError(f"--lower: the lower bounds sum to {float(lower.sum())!r}, above 1 (by "
                       f"{lower.sum() - 1:.3g})")
    if upper.sum() < 1 - 1e-12:
        raise CliError(f"--upper: the caps sum to {float(upper.sum())!r}, below 1 (by "
                       f"{1 - upper.sum():.3g}: no mixture meets them)")
    spread = None
    if res.bootstrap is not None:
        from ._mixture_intervals import optimal_mixture_intervals

        _err(f"searching the optimum of {res.bootstrap.n_ok} bootstrap replicates")
        spread = optimal_mixture_intervals(res, n, d, target_weights=w, lower=lower,
                                           upper=upper, n_starts=args.starts, seed=args.seed,
                                           level=LEVEL)
        mix = spread.point
    else:
        try:
            mix = optimal_mixture(res.law, n, d, target_weights=w, lower=lower, upper=upper,
                                  n_starts=args.starts, seed=args.seed, n_train_domains=k)
        except ValueError as err:
            raise CliError(f"{args.fitted}: {err}") from None
    if args.plot:
        from .plots import plot_optimum

        plot_optimum(spread if spread is not None else mix, res.train_domains, args.plot,
                     title=f"{res.spec.label}: optimal mixture at "
                           f"{_fmt_quantity(args.model_size)} parameters, "
                           f"{_fmt_quantity(args.tokens)} tokens")
    notes = res.extrapolation_notes(args.model_size, args.tokens) + mixture_notes(
        mix, res.train_domains, res.targets, res.fitted_weight_max)
    if args.json:
        out = {"model_size": args.model_size, "tokens": args.tokens, "notes": notes,
               "weights": dict(zip(res.train_domains, mix.weights.tolist(), strict=True)),
               "predicted_losses": dict(zip(res.targets, mix.losses.tolist(), strict=True)),
               "objective": mix.objective, "converged": mix.converged}
        if spread is not None:
            out["bootstrap"] = _optimum_spread(spread, res.train_domains)
        print(_dumps(out))
        return 0
    for note in notes:
        print(f"note: {note}")
    print(f"optimal mixture at {_fmt_quantity(args.model_size)} parameters, "
          f"{_fmt_quantity(args.tokens)} tokens: weighted mean predicted loss "
          f"{mix.objective:.4g}{'' if mix.converged else ' (not converged)'}")
    if spread is None:
        _print_mixture(res.train_domains, mix.weights, mix.losses, res.targets)
    else:
        _print_mixture(res.train_domains, mix.weights, mix.losses, res.targets,
                       weight_intervals=(spread.weights.lower, spread.weights.upper))
        s = _optimum_spread(spread, res.train_domains)
        q = s["objective_at_point"]
        print(f"bootstrap: {s['replicates_used']} of {s['replicates']} replicates "
              f"({s['failed']} left out); weight intervals are {100 * LEVEL:.0f} % percentile "
              "intervals of the replicates' optima")
        print(f"  objective at this mixture under the replicates: median {_loss(q['median'])}, "
              f"{100 * LEVEL:.0f} % interval [{_loss(q['lower'])}, {_loss(q['upper'])}]; regret "
              f"against each replicate's own optimum: median {s['regret']['median']:.2g}, "
              f"95th percentile {s['regret']['q95']:.2g}")
        print(f"  L1 distance of the replicates' optima from this mixture: median "
              f"{s['l1_distance']['median']:.3f}, 90th percentile {s['l1_distance']['q90']:.3f}")
    if args.plot:
        print(f"wrote the figure {args.plot}")
    return 0


def _optimum_spread(spread, names) -> dict:
    """The bootstrap spread of an optimum as JSON-ready values."""
    at = spread.objective_at_point
    lo, mid, hi = np.quantile(at, [(1 - LEVEL) / 2, 0.5, (1 + LEVEL) / 2], method="weibull")
    return {"replicates": spread.n_replicates, "replicates_used": int(len(at)),
            "failed": spread.n_failed, "level": LEVEL, "method": "percentile",
            "weights": {name: {"point": float(p), "lower": float(a), "upper": float(b)}
                        for name, p, a, b in zip(names, spread.point.weights,
                                                 spread.weights.lower, spread.weights.upper,
                                                 strict=True)},
            "objective_at_point": {"median": float(mid), "lower": float(lo),
                                   "upper": float(hi), "values": at.tolist()},
            "regret": {"median": float(np.median(spread.regret)),
                       "q95": float(np.quantile(spread.regret, 0.95))},
            "l1_distance": {"median": float(np.median(spread.distance)),
                            "q90": float(np.quantile(spread.distance, 0.9))}}


def _cmd_plot(args) -> int:
    from .plots import plot_fit

    _check_outputs(args, ((args.fitted, "fit file"), (args.dataset, "table")))
    res = _load_fit_file(args.fitted)
    table = _select_rows(_load_table(args.dataset, args.out_of_mixture, args.split), args)
    plot_fit(res, table, args.out)
    for note in _scale_notes(res, table):
        print(f"note: {note}")
    print(f"wrote the figure {args.out}")
    return 0


def _scale_notes(res, table) -> list[str]:
    """:meth:`FitResult.extrapolation_notes` for the rows of ``table``."""
    return res.extrapolation_notes(np.asarray(table.model_size) * table.size_unit,
                                   np.asarray(table.tokens) * table.token_unit)


def _cmd_evaluate(args) -> int:
    res = _load_fit_file(args.fitted)
    table = _select_rows(_load_table(args.dataset, args.out_of_mixture, args.split), args)
    try:
        m = res.evaluate(table)
    except ValueError as err:  # TableError included
        raise CliError(f"{args.fitted} on {args.dataset}: {err}") from None
    notes = _scale_notes(res, table)
    unscored = [d for d in table.loss_domains if d not in res.targets]
    if unscored:
        notes.append(f"the law predicts {list(res.targets)}: the table's loss columns "
                     f"{unscored} are not scored")
    if args.json:
        print(_dumps({"dataset": table.name, "runs": table.n_runs, "notes": notes, **m}))
        return 0
    for note in notes:
        print(f"note: {note}")
    print(f"{table.name}: {table.n_runs} runs, {m['n']} measured losses")
    _print_metrics("overall", m)
    print(f"  {'domain':<22} {'MRE %':>8}")
    for name, v in m["per_domain_mre"].items():
        print(f"  {name:<22} {_num(100 * v, '>8.3f')}" + ("" if np.isfinite(v) else
                                                         "  (no measured loss)"))
    return 0


# --------------------------------------------------------------------------- parser
def _add_rows(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="a bundled dataset name (see `mixscale datasets`) or a CSV")
    p.add_argument("--model-size", type=_quantity, nargs="+", metavar="N",
                   help="keep rows of these model sizes (parameters, e.g. 122M)")
    p.add_argument("--tokens", type=_quantity, nargs="+", metavar="D",
                   help=f"keep rows with these token counts (each matched within "
                        f"{100 * TOKEN_MATCH:g} %%, e.g. 10B)")
    p.add_argument("--tokens-range", type=_quantity, nargs=2, metavar=("LO", "HI"),
                   help="keep rows with tokens in [LO, HI]")
    p.add_argument("--split", choices=("train", "test"),
                   help="regmix-1m: RegMix's 512 training or 256 test mixtures")
    p.add_argument("--out-of-mixture", nargs="+", default=(), metavar="DOMAIN",
                   help="CSV input: loss columns of domains that are not training domains")


def _add_compilation_cache(p: argparse.ArgumentParser) -> None:
    cache = p.add_mutually_exclusive_group()
    cache.add_argument("--compilation-cache", metavar="DIR",
                       help="keep compiled programs in DIR, so that a later run on the same "
                            "kind of table starts sooner (default: $MIXSCALE_COMPILATION_CACHE, "
                            "else ~/.cache/mixscale/xla; a directory JAX is told to use by "
                            "JAX_COMPILATION_CACHE_DIR is kept)")
    cache.add_argument("--no-compilation-cache", dest="use_compilation_cache",
                       action="store_false", help="compile every program afresh, keep nothing")


def _parser() -> argparse.ArgumentParser:
    from .laws import LAWS

    p = _Parser(prog="mixscale", description=(
        "Fit data-mixing scaling laws to loss tables and pick mixtures."))
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("datasets", help="list the bundled loss tables")
    d.add_argument("--json", action="store_true")
    d.set_defaults(run=_cmd_datasets)

    lw = sub.add_parser("laws", help="list the laws and their parameter counts")
    lw.add_argument("--domains", type=_integer(1, 4096), default=7, metavar="K",
                    help="number of (training = loss) domains for the counts (default 7)")
    lw.add_argument("--json", action="store_true")
    lw.set_defaults(run=_cmd_laws)

    f = sub.add_parser("fit", help="fit a law to a loss table")
    _add_rows(f)
    f.add_argument("--law", default="capacity", help="law name (see `mixscale laws`)")
    f.add_argument("--variant", help="law variant (see `mixscale laws`): " + "; ".join(
        f"{name}: {', '.join(cls.variants)} (default {cls.variants[0]})"
        for name, cls in LAWS.items() if cls.variants))
    f.add_argument("--validation-fraction", type=_fraction, default=0.3,
                   help="share of mixtures held out for validation (0 to fit on all)")
    f.add_argument("--seed", type=_integer(0, MAX_SEED), default=0)
    f.add_argument("--restarts", type=_integer(1, MAX_RESTARTS), default=64)
    f.add_argument("--method", choices=("lm", "lbfgs"), default="lm")
    f.add_argument("--max-steps", type=_integer(1, 10**7), metavar="S",
                   help="iterations per restart at most (default: 1000 for lm, 5000 for lbfgs)")
    f.add_argument("--no-nested", dest="nested", action="store_false",
                   help="skip the fits of the variants nested in the law, whose best laws "
                        "are otherwise added to the restarts (faster; the fit may then end "
                        "above a nested variant)")
    f.add_argument("--geodesic", action="store_true",
                   help="Levenberg-Marquardt with geodesic acceleration (fewer steps on the "
                        "curved valleys of large per-target laws; lm only)")
    f.add_argument("--polish-steps", type=_integer(0, 10**7), metavar="S",
                   help="continue the best restarts that reached --max-steps unconverged for up "
                        "to S more steps (default: 4 x --max-steps for lm, 0 to skip; lm only)")
    f.add_argument("--finish-steps", type=_integer(0, 10**7), metavar="S",
                   help="then continue the restarts the fit returns, alone, where still "
                        "unconverged at their step limit, for up to S more steps (default: "
                        "32 x --max-steps for lm, 0 to skip; lm only)")
    f.add_argument("--smooth-kinks", action=argparse.BooleanOptionalAction,
                   help="when the best restart stops early on a kink of the law (the capacity "
                        "allocation's head floor), continue it through smoothed versions of the "
                        "law back to the exact one; if still unconverged, finish it along the "
                        "kink and certify it there (default: on for lm; lm only)")
    f.add_argument("--plain", action="store_true",
                   help="the restarts alone: no polish, finish or kink continuation (faster; "
                        "the returned law may then be unconverged)")
    f.add_argument("--mixture-starts", type=_integer(1, MAX_STARTS), default=16, metavar="S",
                   help="starts of the search for the fitted law's optimal mixture (default 16; "
                        "fewer is faster with many domains)")
    f.add_argument("--out", help="write the fitted law to this JSON file")
    f.add_argument("--bootstrap", type=_integer(2, 4096), metavar="B",
                   help="refit B replicates with the training mixtures resampled (2..4096; "
                        "e.g. 64): 90 %% intervals of predicted losses and parameters, saved "
                        "with --out for `mixscale optimize`")
    f.add_argument("--plot", type=_png, metavar="FILE.png",
                   help="draw the fit: predicted vs measured, residuals vs own weight, loss "
                        "vs tokens")
    f.add_argument("--json", action="store_true", help="print JSON instead of tables")
    _add_compilation_cache(f)
    f.set_defaults(run=_cmd_fit)

    o = sub.add_parser("optimize", help="optimal mixture of a fitted law at a scale")
    o.add_argument("fitted", help="JSON written by `mixscale fit --out`")
    o.add_argument("--model-size", type=_quantity, required=True, help="parameters, e.g. 1B")
    o.add_argument("--tokens", type=_quantity, required=True, help="tokens, e.g. 25B")
    o.add_argument("--target", type=_assignment, nargs="+", action="extend",
                   metavar="DOMAIN=W",
                   help="weights of target loss domains (default: uniform over all)")
    o.add_argument("--lower", type=_assignment, nargs="+", action="extend", metavar="DOMAIN=V",
                   help="lower bounds on domain weights")
    o.add_argument("--upper", type=_assignment, nargs="+", action="extend", metavar="DOMAIN=V",
                   help="caps on domain weights (e.g. data-limited domains)")
    o.add_argument("--starts", type=_integer(1, MAX_STARTS), default=16)
    o.add_argument("--seed", type=_integer(0, MAX_SEED), default=0)
    o.add_argument("--plot", type=_png, metavar="FILE.png",
                   help="draw the optimal mixture (with the bootstrap's intervals and the "
                        "objective's distribution for a fit made with --bootstrap)")
    o.add_argument("--json", action="store_true")
    _add_compilation_cache(o)
    o.set_defaults(run=_cmd_optimize)

    e = sub.add_parser("evaluate", help="predicted vs measured losses on a table")
    e.add_argument("fitted", help="JSON written by `mixscale fit --out`")
    _add_rows(e)
    e.add_argument("--json", action="store_true")
    _add_compilation_cache(e)
    e.set_defaults(run=_cmd_evaluate)

    pl = sub.add_parser("plot", help="draw a fitted law against a table's runs")
    pl.add_argument("fitted", help="JSON written by `mixscale fit --out`")
    _add_rows(pl)
    pl.add_argument("--out", type=_png, required=True, metavar="FILE.png",
                    help="the PNG to write")
    _add_compilation_cache(pl)
    pl.set_defaults(run=_cmd_plot)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 success, 2 bad input)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    from .data import TableError

    args = _parser().parse_args(argv)
    if hasattr(args, "use_compilation_cache"):
        from ._compilation_cache import use_compilation_cache

        _, note = use_compilation_cache(args.compilation_cache,
                                        enabled=args.use_compilation_cache)
        if note:
            _err(f"mixscale: note: {note}")
    try:
        return args.run(args)
    except BrokenPipeError:  # the reader of our output went away (e.g. `| head`): stop quietly
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (CliError, TableError, ValueError, KeyError, TypeError, OSError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        _err(f"mixscale: error: {msg}")
        return 2
    except Exception as err:  # anything else is a bug of ours: one line, and how to see more
        if os.environ.get("MIXSCALE_DEBUG"):
            raise
        _err(f"mixscale: internal error: {type(err).__name__}: {err} (set MIXSCALE_DEBUG=1 "
             "for the traceback, and please report it)")
        return 1


if __name__ == "__main__":
    sys.exit(main())
