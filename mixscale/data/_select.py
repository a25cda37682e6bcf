"""Choosing rows of a loss table: by scale, by mixture, and into train/validation splits.

These are explicit steps a script takes before fitting; no fitter selects or splits rows itself.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Literal

import numpy as np

from .._checks import integer
from ._table import LossTable, TableError

__all__ = ["mixture_ids", "select", "split"]

#: Relative tolerance within which a requested model size or token count matches a row's.
SCALE_RTOL = 1e-6


def select(
    table: LossTable,
    *,
    model_size: float | Sequence[float] | None = None,
    tokens: float | Sequence[float] | None = None,
    tokens_range: tuple[float, float] | None = None,
) -> LossTable:
    """The rows of ``table`` at the given scales, in their original order.

    Args:
        table: the loss table.
        model_size: a model size or several, in law units (millions of parameters for real
            tables); a row matches one within a relative ``SCALE_RTOL`` (1e-6).
        tokens: a token count or several, in law units (billions of tokens), matched likewise.
        tokens_range: ``(low, high)``: rows with ``low <= tokens <= high`` (law units).
            Exclusive with ``tokens``.

    Omitted criteria do not filter. Every requested size or token count must occur in the
    table, and the combined selection must not be empty.

    Raises:
        TableError: a requested value is absent, or no row meets every criterion; the message
            lists the table's sizes and token counts.
        ValueError: ``tokens`` and ``tokens_range`` are both given, or the range is malformed.
    """
    if tokens is not None and tokens_range is not None:
        raise ValueError("pass either tokens or tokens_range, not both")
    keep = np.ones(table.n_runs, dtype=bool)
    for values, column, what in ((model_size, table.model_size, "model_size"),
                                 (tokens, table.tokens, "tokens")):
        if values is None:
            continue
        try:
            wanted = np.atleast_1d(np.asarray(values, dtype=np.float64))
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be a number or a sequence of numbers, got "
                             f"{values!r}") from None
        if wanted.ndim != 1 or wanted.size == 0:
            raise ValueError(f"{what} must be a number or a non-empty sequence of numbers")
        hits = np.isclose(column[:, None], wanted[None, :], rtol=SCALE_RTOL, atol=0.0)
        absent = wanted[~hits.any(axis=0)]
        if absent.size:
            raise TableError(f"{table.name}: {what} {absent.tolist()} not in the table; "
                             f"{_available(table)}")
        keep &= hits.any(axis=1)
    if tokens_range is not None:
        try:
            low, high = (float(v) for v in tokens_range)
        except (TypeError, ValueError):
            raise ValueError(f"tokens_range must be two numbers (low, high), got "
                             f"{tokens_range!r}") from None
        if not low <= high:
            raise ValueError(f"tokens_range must be (low, high) with low <= high, got "
                             f"({low:g}, {high:g})")
        keep &= (table.tokens >= low) & (table.tokens <= high)
    if not keep.any():
        raise TableError(f"{table.name}: no row has model_size={_plain(model_size)}, tokens="
                         f"{_plain(tokens)}, tokens_range={_plain(tokens_range)}; "
                         f"{_available(table)}")
    return table.take(keep)


def _plain(values) -> str:
    """Numbers as plain text (``[122, 310]``, not numpy reprs); ``None`` as is."""
    if values is None:
        return "None"
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        return f"{float(arr):g}"
    return "[" + ", ".join(f"{v:g}" for v in arr.ravel().tolist()) + "]"


def _available(table: LossTable) -> str:
    pairs = sorted(set(zip(table.model_size.tolist(), table.tokens.tolist(), strict=True)))
    by_size: dict[float, list[float]] = {}
    for size, tok in pairs:
        by_size.setdefault(size, []).append(tok)
    return "available (model_size: tokens): " + "; ".join(
        f"{size:g}: {', '.join(f'{t:g}' for t in toks)}" for size, toks in by_size.items())


def mixture_ids(table: LossTable) -> np.ndarray:
    """An ``(n,)`` ``int64`` id per row, equal for rows with identical weight vectors.

    Ids count up from 0 in order of first appearance. Weights are compared exactly (rows of one
    mixture carry the same numbers: SlimPajama repeats each mixture at 3 sizes and 11 token
    checkpoints); two mixtures that differ only by rounding get different ids.
    """
    # + 0.0 turns -0.0 into 0.0, so grouping never depends on the sign of a zero weight.
    _, first, inverse = np.unique(table.weights + 0.0, axis=0, return_index=True,
                                  return_inverse=True)
    order = np.argsort(first, kind="stable")  # unique rows by first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inverse.reshape(-1)].astype(np.int64)


def split(
    table: LossTable,
    validation_fraction: float,
    seed: int,
    *,
    by: Literal["mixture", "row"] = "mixture",
) -> tuple[LossTable, LossTable]:
    """A deterministic random ``(train, validation)`` split of the rows of ``table``.

    Rows are grouped (by ``"mixture"``: all rows with the same weight vector, see
    :func:`mixture_ids`, so the checkpoints and sizes of one mixture never straddle the split;
    by ``"row"``: each row alone). ``validation_fraction * n_groups`` groups (rounded half up),
    drawn with
    ``numpy.random.default_rng(seed)``, form the validation table; the rest form the training
    table. Both keep the original row order.

    Args:
        table: the loss table.
        validation_fraction: the share of groups held out, in ``(0, 1)``.
        seed: seed for ``numpy.random.default_rng``; the same seed gives the same split.
        by: ``"mixture"`` (default) or ``"row"``.

    Returns:
        ``(train, validation)``, named ``"<name>[train]"`` and ``"<name>[validation]"``.

    Raises:
        ValueError: ``validation_fraction`` outside ``(0, 1)``, an unknown ``by``, or a fraction
            that leaves either side without a group.
    """
    if isinstance(validation_fraction, (bool, str)) or not isinstance(
            validation_fraction, numbers.Real):
        raise TypeError(f"validation_fraction must be a number, got {validation_fraction!r}")
    seed = integer(seed, "seed", 0, 2**128)
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    if by == "mixture":
        groups = mixture_ids(table)
    elif by == "row":
        groups = np.arange(table.n_runs)
    else:
        raise ValueError(f"by must be 'mixture' or 'row', got {by!r}")
    n_groups = int(groups.max()) + 1
    n_val = math.floor(validation_fraction * n_groups + 0.5)  # half up, not to even
    if not 1 <= n_val <= n_groups - 1:
        raise ValueError(
            f"{table.name}: validation_fraction={validation_fraction} of {n_groups} "
            f"{by} groups puts {n_val} in validation; each side needs at least one group")
    held_out = np.random.default_rng(seed).permutation(n_groups)[:n_val]
    is_val = np.isin(groups, held_out)
    return (table.take(~is_val, name=f"{table.name}[train]"),
            table.take(is_val, name=f"{table.name}[validation]"))
