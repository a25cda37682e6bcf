"""Saving and loading fitted laws as JSON (human-readable, exact to float64 round trip).

The file records the law's registry name, every field of the law (raw parameters as nested
lists, static options as JSON values), its natural parameters for reading, the domains, the units
of ``N`` and ``D``, the metrics and the restart statistics of the fit (each restart's objective,
convergence flag and steps; whether the returned law converged; the restarts the polish and the
finish continued; the kink certificate, where one was made, and whether its end replaced the
law; the returned law's training objective, each restart's gradient cosine and the objectives of
the nested variants' fits it started from), and, for a fit with
bootstrap replicates, a ``bootstrap`` object: the seed, the number of mixtures and rows, the Huber
threshold, each replicate's objective (``null``: failed) and convergence flag, the ``(B, G)``
multiplicities of the resampled mixtures, and the raw parameter fields of the successful
replicates (each ``(B_ok, ...)``). Files are strict JSON (a non-finite metric is written as
``null``: a metric reads back as ``None``, an objective or cosine as ``NaN``), and
:func:`load_fit` validates every field before anything is computed from it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._bootstrap import MAX_REPLICATES, MIN_REPLICATES, Bootstrap
from ._evaluate import predict_one
from ._fit import FitResult
from ._kinks import KinkCertificate
from .laws import LAWS, LawSpec, get_law, parameter_count

__all__ = ["save_fit", "load_fit", "law_to_dict", "law_from_dict"]

FORMAT = "mixscale-fit/1"


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    arr = np.asarray(v)
    if arr.dtype.kind in "fiub":
        return arr.tolist()
    raise TypeError(f"cannot write {type(v).__name__} to JSON")


def law_to_dict(law) -> dict:
    """The law's registry name, every field (arrays as lists) and its natural parameters
    (:meth:`~mixscale.laws.AbstractLaw.natural_parameters`, for reading; loading uses the
    fields)."""
    fields = {f.name: _jsonable(getattr(law, f.name)) for f in dataclasses.fields(law)}
    natural = {k: _jsonable(v) for k, v in law.natural_parameters().items()}
    return {"law": type(law).name, "fields": fields, "natural_parameters": natural}


def law_from_dict(d: dict, where: str = "law"):
    """Inverse of :func:`law_to_dict`, validating every field.

    Raises ``ValueError`` naming the field (prefixed by ``where``) for an unknown law, a missing
    or extra field, a non-finite or non-numeric parameter, or a shape the law refuses."""
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(d).__name__}")
    name = d.get("law")
    if not isinstance(name, str) or name not in LAWS:
        raise ValueError(f"{where}: 'law' must name a registered law ({', '.join(LAWS)}), "
                         f"got {name!r}")
    cls = get_law(name)
    fields = d.get("fields")
    if not isinstance(fields, dict):
        raise ValueError(f"{where}: 'fields' must be a JSON object of the law's fields")
    known = {f.name: f for f in dataclasses.fields(cls)}
    extra = sorted(set(fields) - set(known))
    if extra:
        raise ValueError(f"{where}: fields {extra} are not fields of law {name!r}")
    kwargs = {}
    for key, f in known.items():
        if key not in fields:
            continue
        v = fields[key]
        if f.metadata.get("static", False):
            kwargs[key] = _static_value(v, f"{where}.fields.{key}")
        elif v is None:
            kwargs[key] = None
        else:
            kwargs[key] = _finite_array(v, f"{where}.fields.{key}")
    try:
        law = cls(**kwargs)
        natural = law.natural_parameters()
    except (TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"{where}: the fields do not make a {name!r} law ({err})") from None
    bad = [k for k, v in natural.items() if not np.all(np.isfinite(np.asarray(v)))]
    if bad:
        raise ValueError(f"{where}: parameters {bad} overflow (their raw fields are too large)")
    _check_natural(d.get("natural_parameters"), natural, where)
    return law


def _check_natural(written: Any, natural: dict, where: str) -> None:
    """The file's ``natural_parameters`` (written for reading; the law is built from ``fields``)
    must be the law's own, to rounding: a hand edit of them would otherwise be ignored without
    a word. Absent: nothing to check."""
    if written is None:
        return
    if not (isinstance(written, dict) and set(written) == set(natural)):
        raise ValueError(f"{where}: natural_parameters must list the law's parameters "
                         f"{sorted(natural)}")
    for key, value in natural.items():
        mine = np.asarray(value, dtype=np.float64)
        try:
            theirs = np.asarray(written[key], dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            theirs = None
        if theirs is None or theirs.shape != mine.shape or not np.allclose(
                theirs, mine, rtol=1e-12, atol=0.0):
            raise ValueError(f"{where}: natural_parameters.{key} differs from the value the "
                             "law's fields give; the fields are what predicts: edit them (or "
                             "refit), not natural_parameters")


def _static_value(v: Any, where: str) -> Any:
    """A static field's JSON value: a string, finite number, bool or a list of such (a tuple)."""
    if isinstance(v, list):
        return tuple(_static_value(x, where) for x in v)
    if isinstance(v, bool) or isinstance(v, str) or v is None:
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float) and math.isfinite(v):
        return v
    raise ValueError(f"{where}: expected a string, a finite number or a list of them, got {v!r}")


def _only_numbers(v: Any) -> bool:
    if isinstance(v, list):
        return all(_only_numbers(x) for x in v)
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite_array(v: Any, where: str) -> jnp.ndarray:
    """A parameter array from nested JSON lists of finite numbers (float64)."""
    if not _only_numbers(v):
        raise ValueError(f"{where}: expected numbers or nested lists of numbers")
    try:
        arr = np.asarray(v, dtype=np.float64)
    except OverflowError:  # an integer literal beyond float64
        raise ValueError(f"{where}: parameters must be finite numbers (an integer too large "
                         "for a float)") from None
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected numbers (nested lists of equal length)") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{where}: parameters must be finite numbers")
    return jnp.asarray(arr)


def save_fit(result: FitResult, path: str | os.PathLike) -> None:
    """Write a :class:`FitResult` to ``path`` as JSON."""
    if not isinstance(result, FitResult):
        raise TypeError(f"save_fit writes a FitResult (what fit returns), got "
                        f"{type(result).__name__}")
    _check_path(path)
    doc = {
        "format": FORMAT,
        **law_to_dict(result.law),
        "law_options": _jsonable(dict(result.law_options)),
        "targets": list(result.targets),
        "train_domains": list(result.train_domains),
        "size_unit": result.size_unit,
        "token_unit": result.token_unit,
        "n_params": result.n_params,
        "method": result.method,
        "train_metrics": _jsonable(result.train_metrics),
        "validation_metrics": _jsonable(result.validation_metrics),
        "objectives": [float(v) if np.isfinite(v) else None for v in result.objectives],
        "converged": _jsonable(result.converged),
        "steps": _jsonable(result.steps),
        "best": result.best,
        "notes": list(result.notes),
        "timings": _jsonable(dict(result.timings)),
        "at_bounds": result.at_bounds,
        "per_target_restarts": (None if result.per_target_restarts is None
                                else list(result.per_target_restarts)),
        "bootstrap": _bootstrap_to_dict(result.law, result.bootstrap),
        "fitted_scales": (None if result.fitted_scales is None else
                          {k: list(v) for k, v in result.fitted_scales.items()}),
        "fitted_weight_max": (None if result.fitted_weight_max is None
                              else [float(v) for v in result.fitted_weight_max]),
        "law_converged": bool(result.law_converged),
        "polished": [int(r) for r in result.polished],
        "finished": [int(r) for r in result.finished],
        "kink_certificate": _certificate_to_dict(result.kink_certificate),
        "kink_kept": bool(result.kink_kept),
        "kink_smoothed": bool(result.kink_smoothed),
        "objective": float(result.objective),
        "gradient_cosines": (None if result.gradient_cosines is None
                             else [float(v) for v in np.asarray(result.gradient_cosines)]),
        "nested_objectives": {str(k): float(v) for k, v in result.nested_objectives.items()},
    }
    text = json.dumps(_finite_or_null(doc), indent=1, allow_nan=False)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")


def _finite_or_null(v: Any) -> Any:
    """``v`` with every non-finite float replaced by ``None`` (JSON has no NaN or infinity)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite_or_null(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite_or_null(x) for x in v]
    return v


def load_fit(path: str | os.PathLike) -> FitResult:
    """Read a fit written by :func:`save_fit`, validating it completely.

    Every field is checked: the law and its fields (finite parameters, shapes the law accepts,
    natural parameters that do not overflow), its options, the domain names (unique strings; the
    law's own training-domain count and target indices must match them), the units (finite and
    positive), and the restart records. Raises ``ValueError`` naming the file and the field."""
    _check_path(path)
    where = str(path)
    try:
        # utf-8-sig: a byte-order mark (an editor's) is not part of the JSON, as in a CSV
        with open(path, encoding="utf-8-sig") as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        raise ValueError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{where}: is a directory, not a fit file") from None
    except UnicodeDecodeError:
        raise ValueError(f"{where}: not a text (UTF-8) file") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not a JSON file ({err})") from None
    except ValueError as err:  # e.g. an integer too long to convert
        raise ValueError(f"{where}: unreadable JSON ({err})") from None
    except RecursionError:
        raise ValueError(f"{where}: JSON nested too deeply to be a fit file") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{where}: not a mixscale fit file (expected format {FORMAT!r})")
    missing = [k for k in _REQUIRED if k not in doc]
    if missing:
        raise ValueError(f"{where}: missing fields {missing}")
    law = law_from_dict(doc, where)
    # a fitted law is the exact one (the kink continuation ends there): a smoothing
    # temperature in its fields would change every prediction without a word
    for key, value in doc["fields"].items():
        if ((key.endswith("_smoothing") and value != 0)
                or (key.endswith("_smoothing_value") and value is not None)):
            raise ValueError(f"{where}: fields.{key} must be "
                             f"{'0' if key.endswith('_smoothing') else 'null'} in a fitted law "
                             f"(the exact law, not a smoothed one), got {value!r}")
    options = doc["law_options"]
    if not isinstance(options, dict):
        raise ValueError(f"{where}: 'law_options' must be a JSON object")
    try:
        spec = LawSpec(doc["law"], **options)
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"{where}: law_options: {str(err).strip(chr(39))}") from None
    for key, value in spec.law_options.items():
        if hasattr(law, key) and getattr(law, key) != value:
            raise ValueError(f"{where}: law_options gives {key}={value!r} but fields.{key} is "
                             f"{getattr(law, key)!r}")
    train_domains = _names(doc["train_domains"], f"{where}: train_domains")
    targets = _names(doc["targets"], f"{where}: targets")
    if law.n_train_domains != len(train_domains):
        raise ValueError(f"{where}: the law takes {law.n_train_domains} training-domain weights "
                         f"but train_domains lists {len(train_domains)}")
    index = law.targets
    if index is not None:
        if len(index) != len(targets) or not all(
                isinstance(t, int) and not isinstance(t, bool) and 0 <= t < len(train_domains)
                for t in index):
            raise ValueError(f"{where}: fields.targets must give one training-domain index in "
                             f"[0, {len(train_domains)}) per target ({len(targets)} targets)")
        if [train_domains[t] for t in index] != list(targets):
            raise ValueError(f"{where}: fields.targets do not point at the named targets")
    _check_predicts(law, len(train_domains), targets, where)
    units = {k: _positive(doc[k], f"{where}: {k}") for k in ("size_unit", "token_unit")}
    n_restarts = _count_list(doc["objectives"], f"{where}: objectives")
    objectives = np.array([np.inf if v is None else _number(v, f"{where}: objectives")
                           for v in doc["objectives"]], dtype=np.float64)
    if np.any(objectives < 0):
        raise ValueError(f"{where}: objectives must be non-negative numbers or null (failed "
                         f"restarts), got {float(objectives[objectives < 0][0])!r}")
    converged = _bool_list(doc["converged"], n_restarts, f"{where}: converged")
    steps = _int_list(doc["steps"], n_restarts, f"{where}: steps")
    best = doc["best"]
    if isinstance(best, bool) or not (isinstance(best, int) and 0 <= best < n_restarts):
        raise ValueError(f"{where}: best must be a restart index in [0, {n_restarts})")
    if not np.isfinite(objectives[best]):
        raise ValueError(f"{where}: objectives[{best}] (the best restart's) must be a finite "
                         "number")
    for key in ("train_metrics", "validation_metrics", "timings"):
        if doc[key] is not None and not isinstance(doc[key], dict):
            raise ValueError(f"{where}: {key} must be a JSON object or null")
    notes = doc["notes"]
    if not (isinstance(notes, list) and all(isinstance(n, str) for n in notes)):
        raise ValueError(f"{where}: notes must be a list of strings")
    if not isinstance(doc["method"], str):
        raise ValueError(f"{where}: method must be a string")
    return FitResult(
        law=law, law_options=spec.law_options, targets=targets, train_domains=train_domains,
        size_unit=units["size_unit"], token_unit=units["token_unit"],
        train_metrics=doc["train_metrics"], validation_metrics=doc["validation_metrics"],
        objectives=objectives, converged=converged, steps=steps, best=best,
        n_params=parameter_count(law), notes=tuple(notes), method=doc["method"],
        timings=doc["timings"] or {}, at_bounds=_at_bounds(doc.get("at_bounds", 0), where),
        per_target_restarts=_per_target(doc.get("per_target_restarts"), len(targets),
                                        n_restarts, where),
        bootstrap=_bootstrap_from_dict(doc.get("bootstrap"), law, f"{where}: bootstrap"),
        fitted_scales=_fitted_scales(doc.get("fitted_scales"), f"{where}: fitted_scales"),
        fitted_weight_max=_weight_max(doc.get("fitted_weight_max"), len(train_domains),
                                      f"{where}: fitted_weight_max"),
        law_converged=_law_converged(doc.get("law_converged"), converged, best,
                                     doc.get("per_target_restarts"), where),
        polished=_restart_indices(doc.get("polished", []), n_restarts, f"{where}: polished"),
        finished=_restart_indices(doc.get("finished", []), n_restarts, f"{where}: finished"),
        kink_certificate=_certificate_from_dict(doc.get("kink_certificate"),
                                                f"{where}: kink_certificate"),
        kink_kept=_flag(doc.get("kink_kept", False), f"{where}: kink_kept"),
        kink_smoothed=_flag(doc.get("kink_smoothed", False), f"{where}: kink_smoothed"),
        objective=_number_or_null(doc.get("objective"), f"{where}: objective"),
        gradient_cosines=_cosines(doc.get("gradient_cosines"), n_restarts,
                                  f"{where}: gradient_cosines"),
        nested_objectives=_nested_objectives(doc.get("nested_objectives", {}),
                                             f"{where}: nested_objectives"))


def _number_or_null(v: Any, where: str) -> float:
    """A saved non-negative objective; ``null`` (non-finite, or a file written before it was
    saved) reads as ``NaN``."""
    if v is None:
        return float("nan")
    x = _number(v, where)
    if not (math.isfinite(x) and x >= 0):
        raise ValueError(f"{where} must be a non-negative number or null, got {v!r}")
    return x


def _cosines(v: Any, n: int, where: str) -> np.ndarray | None:
    """Each restart's gradient cosine (``null``: not finite, read as ``NaN``), or ``None``
    (L-BFGS, or a file written before they were saved)."""
    if v is None:
        return None
    if not (isinstance(v, list) and len(v) == n):
        raise ValueError(f"{where} must be a list of {n} numbers or nulls (one per restart)")
    return np.array([_number_or_null(x, where) for x in v], dtype=np.float64)


def _nested_objectives(v: Any, where: str) -> dict[str, float]:
    if not (isinstance(v, dict) and all(isinstance(k, str) and k for k in v)):
        raise ValueError(f"{where} must be a JSON object of variant labels and objectives")
    return {k: _number_or_null(x, f"{where}.{k}") for k, x in v.items()}


def _flag(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"{where} must be true or false, got {v!r}")
    return v


def _certificate_to_dict(cert: KinkCertificate | None) -> dict | None:
    """A :class:`KinkCertificate` as JSON (``None``: no kink continuation certified or tried)."""
    if cert is None:
        return None
    return _jsonable({f.name: getattr(cert, f.name) for f in dataclasses.fields(cert)})


def _certificate_from_dict(d: Any, where: str) -> KinkCertificate | None:
    if d is None:
        return None
    keys = tuple(f.name for f in dataclasses.fields(KinkCertificate))
    # a file written before the second-order pass existed lacks its field (the pass did not run)
    if not (isinstance(d, dict) and set(d) | {"second_order_steps"} == set(keys)):
        raise ValueError(f"{where} must be null or an object with exactly the keys "
                         f"{', '.join(keys)}")
    params = d["params"]
    if not (isinstance(params, list) and params and _only_numbers(params)):
        raise ValueError(f"{where}.params must be a non-empty list of numbers")
    counts = {k: d[k] for k in ("steps", "active_kinks", "escapes")}
    for k, v in counts.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{where}.{k} must be a non-negative integer, got {v!r}")
    second = d.get("second_order_steps")
    if second is not None and (isinstance(second, bool) or not isinstance(second, int)
                               or second < 0):
        raise ValueError(f"{where}.second_order_steps must be null or a non-negative integer, "
                         f"got {second!r}")
    _flag(d["certified"], f"{where}.certified")
    numbers = {k: math.nan if d[k] is None else _number(d[k], f"{where}.{k}")
               for k in ("objective", "start_objective", "tangential_cosine", "sigma")}
    return KinkCertificate(params=np.asarray(params, dtype=np.float64), **numbers, **counts,
                           certified=d["certified"], second_order_steps=second)


def _restart_indices(v: Any, n: int, where: str) -> tuple[int, ...]:
    if not (isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool)
                                        and 0 <= x < n for x in v)):
        raise ValueError(f"{where} must be a list of restart indices in [0, {n})")
    return tuple(v)


def _law_converged(v: Any, converged: np.ndarray, best: int, per_target: Any,
                   where: str) -> bool:
    """The saved flag; a file written before it was saved: the best restart's flag for a law
    fitted as one problem, ``False`` (unknown) for one fitted per target."""
    if v is None:
        return bool(converged[best]) if per_target is None else False
    return _flag(v, f"{where}: law_converged")


def _fitted_scales(v: Any, where: str) -> dict[str, tuple[float, float]] | None:
    """``{"model_size": (lo, hi), "tokens": (lo, hi)}`` with ``0 < lo <= hi`` finite, or
    ``None`` (absent: a file written before the ranges were recorded)."""
    if v is None:
        return None
    if not isinstance(v, dict) or set(v) != {"model_size", "tokens"}:
        raise ValueError(f"{where}: must be an object with 'model_size' and 'tokens', or null")
    out = {}
    for key, pair in v.items():
        if not (isinstance(pair, list) and len(pair) == 2):
            raise ValueError(f"{where}.{key}: must be [smallest, largest]")
        lo, hi = (_positive(x, f"{where}.{key}") for x in pair)
        if lo > hi:
            raise ValueError(f"{where}.{key}: smallest {lo:g} is above largest {hi:g}")
        out[key] = (lo, hi)
    return out


def _weight_max(v: Any, k: int, where: str) -> tuple[float, ...] | None:
    """``K`` weights in ``[0, 1]``, or ``None`` (absent: a file written before they were
    recorded)."""
    if v is None:
        return None
    if not (isinstance(v, list) and len(v) == k):
        raise ValueError(f"{where}: must be a list of {k} weights (one per training domain), or "
                         "null")
    out = []
    for i, x in enumerate(v):
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 <= x <= 1:
            raise ValueError(f"{where}[{i}]: must be a weight in [0, 1], got {x!r}")
        out.append(float(x))
    return tuple(out)


def _parameter_fields(law) -> list[str]:
    """Names of the law's fitted fields (inexact arrays), in field order."""
    return [f.name for f in dataclasses.fields(law)
            if eqx.is_inexact_array(getattr(law, f.name, None))]


def _bootstrap_to_dict(law, boot: Bootstrap | None) -> dict | None:
    if boot is None:
        return None
    return {
        "seed": boot.seed, "n_groups": boot.n_groups, "n_rows": boot.n_rows,
        "huber_delta": boot.huber_delta,
        "objectives": [float(v) if np.isfinite(v) else None for v in boot.objectives],
        "converged": _jsonable(boot.converged),
        "multiplicities": _jsonable(boot.multiplicities),
        "fields": {name: _jsonable(getattr(boot.params, name))
                   for name in _parameter_fields(law)},
        "seconds": boot.seconds,
    }


_BOOTSTRAP_KEYS = ("seed", "n_groups", "n_rows", "huber_delta", "objectives", "converged",
                   "multiplicities", "fields", "seconds")


def _bootstrap_from_dict(d: Any, law, where: str) -> Bootstrap | None:
    """The bootstrap replicates of a fit file, every field checked (``ValueError`` naming it)."""
    if d is None:
        return None
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be a JSON object or null")
    missing = [k for k in _BOOTSTRAP_KEYS if k not in d]
    extra = sorted(set(d) - set(_BOOTSTRAP_KEYS))
    if missing or extra:
        raise ValueError(f"{where}: missing fields {missing}, unknown fields {extra}")

    def count(key, lo):
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{where}.{key} must be an integer >= {lo}, got {v!r}")
        return v

    seed, n_groups = count("seed", 0), count("n_groups", 1)
    n_rows = count("n_rows", n_groups)
    delta = _positive(d["huber_delta"], f"{where}.huber_delta")
    seconds = _number(d["seconds"], f"{where}.seconds")
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"{where}.seconds must be a finite non-negative number")
    objectives = d["objectives"]
    if not (isinstance(objectives, list)
            and MIN_REPLICATES <= len(objectives) <= MAX_REPLICATES):
        raise ValueError(f"{where}.objectives must list {MIN_REPLICATES} to {MAX_REPLICATES} "
                         "replicates")
    n_boot = len(objectives)
    f = np.array([np.inf if v is None else _number(v, f"{where}.objectives")
                  for v in objectives], dtype=np.float64)
    if np.any(np.isnan(f) | (f < 0)):
        raise ValueError(f"{where}.objectives must be non-negative numbers or null (failed)")
    ok = np.isfinite(f)
    converged = _bool_list(d["converged"], n_boot, f"{where}.converged")
    if np.any(converged & ~ok):
        raise ValueError(f"{where}.converged: a failed replicate (null objective) cannot have "
                         "converged")
    mult = d["multiplicities"]
    if not (isinstance(mult, list) and len(mult) == n_boot and all(
            isinstance(row, list) and len(row) == n_groups and all(
                isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in row)
            and sum(row) == n_groups for row in mult)):
        raise ValueError(f"{where}.multiplicities must be {n_boot} lists of {n_groups} "
                         f"non-negative integers, each summing to {n_groups}")
    fields = d["fields"]
    names = _parameter_fields(law)
    if not isinstance(fields, dict) or sorted(fields) != sorted(names):
        raise ValueError(f"{where}.fields must hold exactly the law's fitted fields {names}")
    params = eqx.filter(law, eqx.is_inexact_array)
    arrays = []
    for name in names:
        arr = _finite_array(fields[name], f"{where}.fields.{name}")
        want = (int(ok.sum()),) + tuple(np.shape(getattr(law, name)))
        if want[0] == 0 and arr.size == 0:  # every replicate failed: `[]`
            arr = jnp.zeros(want)
        if arr.shape != want:
            raise ValueError(f"{where}.fields.{name} must have shape {want} (one entry per "
                             f"successful replicate), got {arr.shape}")
        arrays.append(arr)
    params = eqx.tree_at(lambda t: [getattr(t, n) for n in names], params, arrays)
    if ok.any():
        static = eqx.filter(law, eqx.is_inexact_array, inverse=True)
        natural = jax.vmap(lambda p: eqx.combine(p, static).natural_parameters())(params)
        bad = [k for k, v in natural.items() if not np.all(np.isfinite(np.asarray(v)))]
        if bad:
            raise ValueError(f"{where}: replicate parameters {bad} overflow")
    return Bootstrap(params=params, objectives=f, converged=converged, seed=seed,
                     n_groups=n_groups, multiplicities=np.asarray(mult, dtype=np.int64),
                     n_rows=n_rows, huber_delta=delta, seconds=seconds)


def _check_predicts(law, k: int, targets: tuple[str, ...], where: str) -> None:
    """A trial prediction (uniform mixture, ``N = D = 1``): the fields must make a law that runs
    and predicts one loss per named target (its values are not judged here)."""
    try:
        shape = np.shape(predict_one(law, jnp.full(k, 1.0 / k), jnp.asarray(1.0),
                                     jnp.asarray(1.0)))
    except Exception as err:  # any failure means the fields are inconsistent
        first = (str(err).splitlines() or [""])[0][:200]
        raise ValueError(f"{where}: the fields do not make a working {type(law).name!r} law "
                         f"({type(err).__name__}: {first})") from None
    if shape != (len(targets),):
        raise ValueError(f"{where}: the law predicts losses of shape {shape} but targets lists "
                         f"{len(targets)}")


def _check_path(path: Any) -> None:
    """A file name: ``str`` or path-like (an integer would be taken for an open descriptor)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file name (str or os.PathLike), got "
                        f"{type(path).__name__}")


def _per_target(v: Any, m: int, n: int, where: str) -> tuple[int, ...] | None:
    if v is None:
        return None
    if not (isinstance(v, list) and len(v) == m and all(
            isinstance(x, int) and not isinstance(x, bool) and 0 <= x < n for x in v)):
        raise ValueError(f"{where}: per_target_restarts must be null or {m} restart indices "
                         f"in [0, {n})")
    return tuple(v)


def _at_bounds(v: Any, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"{where}: at_bounds must be a non-negative integer, got {v!r}")
    return v


_REQUIRED = ("law", "fields", "law_options", "targets", "train_domains", "size_unit",
             "token_unit", "objectives", "converged", "steps", "best", "notes", "method",
             "train_metrics", "validation_metrics", "timings")


def _names(v: Any, where: str) -> tuple[str, ...]:
    if not (isinstance(v, list) and v and all(isinstance(x, str) and x for x in v)):
        raise ValueError(f"{where} must be a non-empty list of non-empty strings")
    dup = sorted({x for x in v if v.count(x) > 1})
    if dup:
        raise ValueError(f"{where}: duplicate names {dup}")
    return tuple(v)


def _number(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{where}: expected a number, got {v!r}")
    try:
        return float(v)
    except OverflowError:  # an integer literal beyond float64
        raise ValueError(f"{where}: expected a finite number, got an integer of "
                         f"{len(str(abs(v)))} digits") from None


def _positive(v: Any, where: str) -> float:
    x = _number(v, where)
    if not (math.isfinite(x) and x > 0 and math.isfinite(1.0 / x)):
        raise ValueError(f"{where} must be a finite positive number, got {v!r}")
    return x


def _count_list(v: Any, where: str) -> int:
    if not (isinstance(v, list) and v):
        raise ValueError(f"{where} must be a non-empty list")
    return len(v)


def _bool_list(v: Any, n: int, where: str) -> np.ndarray:
    if not (isinstance(v, list) and len(v) == n and all(isinstance(x, bool) for x in v)):
        raise ValueError(f"{where} must be a list of {n} booleans (one per restart)")
    return np.asarray(v, dtype=bool)


def _int_list(v: Any, n: int, where: str) -> np.ndarray:
    """``n`` non-negative integers that fit an ``int64`` (a larger one would overflow the
    array), as an ``(n,)`` array."""
    top = np.iinfo(np.int64).max
    if not (isinstance(v, list) and len(v) == n
            and all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= top
                    for x in v)):
        raise ValueError(f"{where} must be a list of {n} non-negative integers "
                         f"(at most {top})")
    return np.asarray(v, dtype=np.int64)
