"""Saving and loading fitted laws as JSON (human-readable, exact to float64 round trip).

The file records the law's registry name, every field of the law (raw parameters as nested
lists, static options as JSON values), its natural parameters for reading, the domains, the units
of ``N`` and ``D``, the metrics and the restart statistics of the fit.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax.numpy as jnp
import numpy as np

from ._fit import FitResult
from .laws import get_law

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


def law_from_dict(d: dict):
    """Inverse of :func:`law_to_dict`."""
    cls = get_law(d["law"])
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in d["fields"]:
            continue
        v = d["fields"][f.name]
        if f.metadata.get("static", False):
            kwargs[f.name] = tuple(v) if isinstance(v, list) else v
        else:
            kwargs[f.name] = None if v is None else jnp.asarray(v, dtype=float)
    return cls(**kwargs)


def save_fit(result: FitResult, path: str | os.PathLike) -> None:
    """Write a :class:`FitResult` to ``path`` as JSON."""
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
    }
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")


def load_fit(path: str | os.PathLike) -> FitResult:
    """Read a fit written by :func:`save_fit`; raises ``ValueError`` for a malformed file."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a JSON file ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path}: not a mixscale fit file (expected format {FORMAT!r})")
    try:
        law = law_from_dict(doc)
        objectives = np.array([np.inf if v is None else v for v in doc["objectives"]])
        return FitResult(
            law=law, law_options=doc["law_options"], targets=tuple(doc["targets"]),
            train_domains=tuple(doc["train_domains"]), size_unit=float(doc["size_unit"]),
            token_unit=float(doc["token_unit"]), train_metrics=doc["train_metrics"],
            validation_metrics=doc["validation_metrics"], objectives=objectives,
            converged=np.asarray(doc["converged"], dtype=bool),
            steps=np.asarray(doc["steps"]), best=int(doc["best"]), n_params=int(doc["n_params"]),
            notes=tuple(doc["notes"]), method=doc["method"], timings=doc["timings"])
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path}: malformed mixscale fit file ({err})") from None
