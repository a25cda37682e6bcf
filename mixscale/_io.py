"""Saving and loading fitted laws as JSON (human-readable, exact to float64 round trip).

The file records the law's registry name, every field of the law (raw parameters as nested
lists, static options as JSON values), its natural parameters for reading, the domains, the units
of ``N`` and ``D``, the metrics and the restart statistics of the fit. Files are strict JSON (a
non-finite metric is written as ``null``), and :func:`load_fit` validates every field before
anything is computed from it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import jax.numpy as jnp
import numpy as np

from ._evaluate import predict_one
from ._fit import FitResult
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
    return law


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
        with open(path, encoding="utf-8") as fh:
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
                isinstance(t, int) and 0 <= t < len(train_domains) for t in index):
            raise ValueError(f"{where}: fields.targets must give one training-domain index in "
                             f"[0, {len(train_domains)}) per target ({len(targets)} targets)")
        if [train_domains[t] for t in index] != list(targets):
            raise ValueError(f"{where}: fields.targets do not point at the named targets")
    _check_predicts(law, len(train_domains), targets, where)
    units = {k: _positive(doc[k], f"{where}: {k}") for k in ("size_unit", "token_unit")}
    n_restarts = _count_list(doc["objectives"], f"{where}: objectives")
    objectives = np.array([np.inf if v is None else _number(v, f"{where}: objectives")
                           for v in doc["objectives"]], dtype=np.float64)
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
                                        n_restarts, where))


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
    return float(v)


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
    if not (isinstance(v, list) and len(v) == n
            and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v)):
        raise ValueError(f"{where} must be a list of {n} non-negative integers")
    return np.asarray(v, dtype=np.int64)
