"""The loss table: measured (or simulated) per-domain losses of runs on known mixtures.

A :class:`LossTable` holds ``n`` runs. Run ``r`` was trained on mixture ``weights[r]`` (a point
on the simplex over the ``K`` training domains) with a model of ``model_size[r]`` and a budget of
``tokens[r]``, and reached loss ``losses[r, m]`` on loss domain ``m`` (``NaN`` where that loss was
not measured: missing values are masked by every consumer, never fatal).

Units. ``model_size`` and ``tokens`` are stored in *law units*: multiples of ``size_unit``
parameters and ``token_unit`` tokens. Real tables use ``size_unit = 1e6`` (millions of parameters)
and ``token_unit = 1e9`` (billions of tokens), as the paper does; simulated tables use ``1`` (kept
features and SGD samples). Laws see only law units, so a law fitted on one table applies to another
with the same units.

Training and loss domains can differ: RegMix trains on 17 Pile domains but logs 13 validation
losses at 1M/60M parameters; SlimPajama adds the out-of-mixture ``openhermes`` loss. A loss domain
whose name equals a training domain's name is *in-mixture*; the others are *out-of-mixture*.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["LossTable", "TableError", "WEIGHT_SUM_TOLERANCE"]

#: Rows whose weights sum to ``1 ± WEIGHT_SUM_TOLERANCE`` are accepted as they are (RegMix rounds
#: its weights to three decimals, so its rows sum to 1 within 0.002). Nothing is renormalised.
WEIGHT_SUM_TOLERANCE = 5e-3
#: The smallest normal float64: sizes, token counts and losses below it are refused (they lose
#: their precision and vanish in a fit's arithmetic).
_TINY = float(np.finfo(np.float64).tiny)


class TableError(ValueError):
    """A loss table (or the file it was read from) is malformed; the message says where."""


def _where(source: str | None, row: int | None = None, column: str | None = None) -> str:
    parts = []
    if source:
        parts.append(source)
    if row is not None:
        parts.append(f"row {row}")
    if column is not None:
        parts.append(f"column {column!r}")
    return ", ".join(parts) + ": " if parts else ""


@dataclasses.dataclass(frozen=True, eq=False)
class LossTable:
    """Per-domain losses of ``n`` runs on known mixtures.

    Attributes:
        weights: ``(n, K)`` mixture weights, non-negative, each row summing to 1 within
            :data:`WEIGHT_SUM_TOLERANCE`.
        model_size: ``(n,)`` model size in units of ``size_unit`` parameters, > 0.
        tokens: ``(n,)`` training tokens in units of ``token_unit`` tokens, > 0.
        losses: ``(n, M)`` losses (nats per token for real tables); ``NaN`` where not measured.
        train_domains: the ``K`` training-domain names, in the column order of ``weights``.
        loss_domains: the ``M`` loss-domain names, in the column order of ``losses``.
        size_unit: parameters per unit of ``model_size`` (``1e6`` for real tables).
        token_unit: tokens per unit of ``tokens`` (``1e9`` for real tables).
        name: a short name for messages and reports.
        meta: free-form provenance (source files, citation, generating settings).
        row_tags: per-row labels, each an ``(n,)`` array (e.g. ``mixture_id``, ``split``);
            carried along by :meth:`take`.

    Row numbers in error messages are 1-based data rows (the header is not counted).
    """

    weights: np.ndarray
    model_size: np.ndarray
    tokens: np.ndarray
    losses: np.ndarray
    train_domains: tuple[str, ...]
    loss_domains: tuple[str, ...]
    size_unit: float = 1e6
    token_unit: float = 1e9
    name: str = "table"
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    row_tags: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        src = self.name
        for field in ("weights", "model_size", "tokens", "losses"):
            kind = np.asarray(getattr(self, field)).dtype.kind
            if kind in "cUSMm":  # complex parts or text would be dropped or parsed silently
                raise TableError(f"{src}: {field} must be real numbers, got "
                                 f"{np.asarray(getattr(self, field)).dtype}")
        for field in ("train_domains", "loss_domains"):
            if isinstance(getattr(self, field), (str, bytes)):
                raise TableError(f"{src}: {field} must be a sequence of domain names, not the "
                                 f"single string {getattr(self, field)!r}")
        for field in ("size_unit", "token_unit"):
            unit = getattr(self, field)
            if isinstance(unit, (bool, np.bool_)) or not isinstance(unit, numbers.Real):
                raise TableError(f"{src}: {field} must be a number, got {unit!r}")
        for field in ("meta", "row_tags"):
            if not isinstance(getattr(self, field), Mapping):
                raise TableError(f"{src}: {field} must be a mapping (a dict), got "
                                 f"{type(getattr(self, field)).__name__}")
        w = np.asarray(self.weights, dtype=np.float64)
        n_size = np.asarray(self.model_size, dtype=np.float64).reshape(-1)
        d = np.asarray(self.tokens, dtype=np.float64).reshape(-1)
        y = np.asarray(self.losses, dtype=np.float64)
        train = tuple(str(s) for s in self.train_domains)
        lossd = tuple(str(s) for s in self.loss_domains)
        if w.ndim != 2 or y.ndim != 2:
            raise TableError(f"{src}: weights must be (n, K) and losses (n, M); got "
                             f"{w.shape} and {y.shape}")
        n, k = w.shape
        if n == 0:
            raise TableError(f"{src}: the table is empty (no runs)")
        if k == 0:
            raise TableError(f"{src}: no training domains (no weight columns)")
        if y.shape[1] == 0:
            raise TableError(f"{src}: no loss columns")
        if y.shape[0] != n or n_size.shape != (n,) or d.shape != (n,):
            raise TableError(
                f"{src}: row counts differ: weights {n}, losses {y.shape[0]}, "
                f"model_size {n_size.shape[0]}, tokens {d.shape[0]}")
        if len(train) != k:
            raise TableError(f"{src}: {k} weight columns but {len(train)} training-domain names")
        if len(lossd) != y.shape[1]:
            raise TableError(f"{src}: {y.shape[1]} loss columns but {len(lossd)} loss-domain names")
        for names, what in ((train, "training domain"), (lossd, "loss domain")):
            seen = set()
            for s in names:
                if s in seen:
                    raise TableError(f"{src}: duplicate {what} {s!r}")
                # a CSV header strips its names: 'a ' and 'a' would be one domain there
                if not s or s != s.strip():
                    raise TableError(f"{src}: {what} name {s!r} is empty or begins or ends "
                                     "with white space")
                seen.add(s)
        if not (np.isfinite(self.size_unit) and self.size_unit > 0
                and np.isfinite(self.token_unit) and self.token_unit > 0):
            raise TableError(f"{src}: size_unit and token_unit must be positive and finite")
        bad = ~np.isfinite(w)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise TableError(f"{_where(src, r + 1, 'weight_' + train[c])}weight is missing or "
                             "not finite (weights are required in every row)")
        neg = w < 0
        if neg.any():
            r, c = np.argwhere(neg)[0]
            raise TableError(f"{_where(src, r + 1, 'weight_' + train[c])}negative weight "
                             f"{float(w[r, c]):g}")
        sums = w.sum(axis=1)
        off = np.abs(sums - 1.0) > WEIGHT_SUM_TOLERANCE
        if off.any():
            r = int(np.argmax(off))
            raise TableError(f"{_where(src, r + 1)}weights sum to {sums[r]:.6g}, not 1 "
                             f"(tolerance {WEIGHT_SUM_TOLERANCE:g}; nothing is renormalised)")
        for arr, col in ((n_size, "model_size"), (d, "n_tokens")):
            badv = ~np.isfinite(arr) | ~(arr >= _TINY)
            if badv.any():
                r = int(np.argmax(badv))
                raise TableError(f"{_where(src, r + 1, col)}must be positive, finite and not "
                                 f"subnormal (law units), got {float(arr[r]):g}")
        inf = np.isinf(y)
        if inf.any():
            r, c = np.argwhere(inf)[0]
            raise TableError(f"{_where(src, r + 1, lossd[c] + '_loss')}infinite loss")
        nonpos = np.isfinite(y) & (y < _TINY)
        if nonpos.any():
            r, c = np.argwhere(nonpos)[0]
            raise TableError(f"{_where(src, r + 1, lossd[c] + '_loss')}loss must be positive "
                             f"and not subnormal, got {float(y[r, c]):g}")
        tags = {}
        for key, val in dict(self.row_tags).items():
            arr = np.asarray(val)
            if arr.shape != (n,):
                raise TableError(f"{src}: row tag {key!r} has shape {arr.shape}, expected ({n},)")
            arr = arr.copy()
            arr.setflags(write=False)
            tags[str(key)] = arr
        object.__setattr__(self, "row_tags", tags)
        for arr in (w, n_size, d, y):
            arr.setflags(write=False)
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "model_size", n_size)
        object.__setattr__(self, "tokens", d)
        object.__setattr__(self, "losses", y)
        object.__setattr__(self, "train_domains", train)
        object.__setattr__(self, "loss_domains", lossd)
        object.__setattr__(self, "meta", dict(self.meta))

    # ------------------------------------------------------------------ shape
    @property
    def n_runs(self) -> int:
        return self.weights.shape[0]

    @property
    def n_train_domains(self) -> int:
        return self.weights.shape[1]

    @property
    def n_loss_domains(self) -> int:
        return self.losses.shape[1]

    def __len__(self) -> int:
        return self.n_runs

    def __repr__(self) -> str:
        return (f"LossTable(name={self.name!r}, runs={self.n_runs}, K={self.n_train_domains}, "
                f"M={self.n_loss_domains}, sizes={self.scales()['model_size']}, "
                f"missing={int(np.isnan(self.losses).sum())})")

    @property
    def in_mixture(self) -> tuple[str, ...]:
        """Loss domains that are also training domains, in loss-column order."""
        return tuple(s for s in self.loss_domains if s in self.train_domains)

    @property
    def out_of_mixture(self) -> tuple[str, ...]:
        """Loss domains that are not training domains (e.g. SlimPajama's ``openhermes``)."""
        return tuple(s for s in self.loss_domains if s not in self.train_domains)

    def train_index(self, loss_domains: Sequence[str] | None = None) -> np.ndarray:
        """Training-domain column of each (in-mixture) loss domain, as an int array."""
        names = self.in_mixture if loss_domains is None else tuple(loss_domains)
        missing = [s for s in names if s not in self.train_domains]
        if missing:
            raise TableError(f"{self.name}: loss domains {missing} are not training domains")
        return np.array([self.train_domains.index(s) for s in names], dtype=np.int64)

    def scales(self) -> dict[str, list[float]]:
        """The distinct model sizes and token counts in the table (law units), sorted."""
        return {"model_size": sorted(set(self.model_size.tolist())),
                "tokens": sorted(set(self.tokens.tolist()))}

    # ------------------------------------------------------------- selection
    def take(self, rows: np.ndarray | Sequence[int], name: str | None = None) -> LossTable:
        """The sub-table of the given rows (integer indices or a boolean mask), in that order."""
        idx = np.asarray(rows)
        if idx.dtype == bool:
            if idx.shape != (self.n_runs,):
                raise TableError(f"{self.name}: boolean row mask has shape {idx.shape}, "
                                 f"expected ({self.n_runs},)")
            idx = np.flatnonzero(idx)
        return dataclasses.replace(
            self, weights=self.weights[idx], model_size=self.model_size[idx],
            tokens=self.tokens[idx], losses=self.losses[idx], name=name or self.name,
            row_tags={k: v[idx] for k, v in self.row_tags.items()})

    def in_train_order(self, train_domains: Sequence[str]) -> LossTable:
        """The same runs with the weight columns in the order ``train_domains`` (the same
        domains as :attr:`train_domains`, in any order: a table whose CSV lists them otherwise
        than the table a law was fitted to). Raises ``TableError`` naming the domains that one
        side has and the other lacks."""
        train_domains = tuple(str(d) for d in train_domains)
        if train_domains == self.train_domains:
            return self
        extra = [d for d in self.train_domains if d not in train_domains]
        lacking = [d for d in train_domains if d not in self.train_domains]
        if extra or lacking or len(set(train_domains)) != len(train_domains):
            parts = ([f"it has {extra}, which the law was not fitted on"] if extra else []) + (
                [f"it lacks {lacking}"] if lacking else [])
            raise TableError(f"{self.name}: training domains {list(self.train_domains)} differ "
                             f"from the law's {list(train_domains)}: "
                             + ("; ".join(parts) or "a domain is named twice"))
        cols = [self.train_domains.index(d) for d in train_domains]
        return dataclasses.replace(self, weights=self.weights[:, cols],
                                   train_domains=train_domains)

    def select_losses(self, loss_domains: Sequence[str]) -> LossTable:
        """The same runs with only the named loss columns, in that order."""
        unknown = [s for s in loss_domains if s not in self.loss_domains]
        if unknown:
            raise TableError(f"{self.name}: no loss columns for {unknown}; "
                             f"the table has {list(self.loss_domains)}")
        cols = [self.loss_domains.index(s) for s in loss_domains]
        return dataclasses.replace(self, losses=self.losses[:, cols],
                                   loss_domains=tuple(loss_domains))
