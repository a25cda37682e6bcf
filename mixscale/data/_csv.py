"""Reading and writing loss tables in the wide CSV format.

The format has one row per run and these columns, in any order:

* ``weight_<domain>``: the mixture weight of each training domain (required in every row,
  non-negative, summing to 1 within :data:`~mixscale.data.WEIGHT_SUM_TOLERANCE`). The training
  domains are these columns, in file order.
* ``model_size``: the model's parameter count (> 0), a number or one with a count suffix
  (:data:`COUNT_SUFFIXES`: ``122M``, ``1.5B``, as the command line takes them).
* ``n_tokens``: the training tokens (> 0), likewise (``8B``, ``2.5T``).
* ``<domain>_loss``: the loss on a domain (> 0); an empty cell, or one that reads (in any case)
  ``nan``, ``NA``, ``N/A``, ``#N/A``, ``<NA>``, ``null`` or ``None`` — the markers of missing
  values that R, pandas and spreadsheets write — means "not measured" and becomes ``NaN``.
  ``<domain>`` must be a training domain unless it is declared out-of-mixture, so a typo such
  as ``githb_loss`` is caught instead of becoming a new target.
* anything else (``mixture_id``, ``split``...) is kept, per row, in :attr:`LossTable.row_tags`;
  a name containing ``loss`` or ``weight``, or reading as a misspelt loss column of a domain
  (``github_los``, ``githubloss``), is refused: it would otherwise become a tag and its domain
  silently lose its losses.

Every malformed input raises :class:`~mixscale.data.TableError` with a one-line message naming
the file, the data row (1-based, header not counted) and the column. Nothing is clipped,
dropped or renormalised.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from ._table import WEIGHT_SUM_TOLERANCE, LossTable, TableError, _where

__all__ = ["read_csv", "write_csv"]

WEIGHT_PREFIX = "weight_"
LOSS_SUFFIX = "_loss"
#: The smallest normal float64: a loss, size or token count below it would vanish or lose
#: precision in the fit.
_TINY = float(np.finfo(np.float64).tiny)
SIZE_COLUMN = "model_size"
TOKENS_COLUMN = "n_tokens"
#: Lower-cased cell texts that mean "not measured" (pandas reads each of them as missing too).
_MISSING = frozenset({"", "nan", "-nan", "na", "n/a", "#n/a", "<na>", "null", "none"})


def read_csv(
    path: str | os.PathLike[str],
    *,
    size_unit: float = 1e6,
    token_unit: float = 1e9,
    out_of_mixture: Sequence[str] = (),
    name: str | None = None,
) -> LossTable:
    """Read a loss table from a wide CSV file (format in the module docstring).

    Args:
        path: the CSV file (UTF-8, with or without a byte-order mark).
        size_unit: parameters per law unit of model size; the file's ``model_size`` is divided by
            it (``1e6``: millions of parameters, as for every real table).
        token_unit: tokens per law unit; the file's ``n_tokens`` is divided by it (``1e9``:
            billions of tokens).
        out_of_mixture: loss domains that are deliberately not training domains (e.g.
            ``("openhermes",)``); each needs its ``<domain>_loss`` column.
        name: the table's name; defaults to the file name without its extension.

    Returns:
        A :class:`LossTable` with ``weights`` ``(n, K)``, ``model_size`` and ``tokens`` ``(n,)``
        in law units, ``losses`` ``(n, M)`` (``NaN`` where not measured), the other columns as
        ``row_tags`` and ``meta["source"]`` set to ``str(path)``.

    Raises:
        TableError: the file is malformed; the message names the file, row and column.
    """
    path = os.fspath(path)
    if name is None:
        name = os.path.splitext(os.path.basename(path))[0]
    # utf-8-sig: a byte-order mark (spreadsheet exports) must not become part of the first name.
    with open(path, encoding="utf-8-sig", newline="") as stream:
        return read_wide(stream, source=path, size_unit=size_unit, token_unit=token_unit,
                         out_of_mixture=out_of_mixture, name=name)


def read_wide(
    stream: Iterable[str],
    *,
    source: str,
    size_unit: float,
    token_unit: float,
    out_of_mixture: Sequence[str] = (),
    name: str,
) -> LossTable:
    """:func:`read_csv` on an open text stream; ``source`` names it in error messages."""
    header, rows = read_records(stream, source)
    return parse_wide(header, rows, source=source, size_unit=size_unit, token_unit=token_unit,
                      out_of_mixture=out_of_mixture, name=name)


def read_records(stream: Iterable[str], source: str) -> tuple[tuple[str, ...], list[list[str]]]:
    """The header and data rows of a CSV stream, checked for shape.

    Refuses an empty file, a header separated by another delimiter than commas (semicolons,
    tabs, bars), unnamed or duplicate columns, rows whose cell count differs from the
    header's, blank lines between data rows and a header without data. Trailing blank lines are
    ignored. Header names are stripped of surrounding spaces; cells are returned as they are.
    """
    reader = csv.reader(stream, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise TableError(f"{source}: the file is empty (no header, no rows)")
        names = tuple(h.strip() for h in header)
        if not names:
            raise TableError(f"{source}: the header line is blank")
        for j, h in enumerate(names):
            if not h:
                raise TableError(f"{source}: header column {j + 1} has no name")
        if len(names) == 1:
            for delimiter, what in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
                if delimiter in names[0]:
                    raise TableError(f"{source}: the header is one column, {names[0][:60]!r}, "
                                     f"separated by {what}: the format is comma-separated")
        for h, count in Counter(names).items():
            if count > 1:
                raise TableError(f"{_where(source, column=h)}duplicate column "
                                 f"(appears {count} times in the header)")
        rows: list[list[str]] = []
        blank_after: int | None = None  # data rows seen when the first blank line came
        for record in reader:
            if not record:
                blank_after = len(rows) if blank_after is None else blank_after
                continue
            if blank_after is not None:
                raise TableError(f"{_where(source, blank_after + 1)}blank line between data "
                                 "rows (remove it: row numbers would no longer match the file)")
            row = len(rows) + 1
            if len(record) != len(names):
                raise TableError(f"{_where(source, row)}{len(record)} cells, but the header "
                                 f"has {len(names)} columns")
            rows.append(record)
    except csv.Error as err:
        raise TableError(f"{source}, line {reader.line_num}: unreadable CSV ({err})") from None
    except UnicodeDecodeError as err:
        raise TableError(f"{source}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    if not rows:
        raise TableError(f"{source}: no data rows (the file has only a header)")
    return names, rows


#: A number as a CSV writes it: decimal digits, an optional fraction and exponent, or an
#: infinity. Python's ``float`` also reads digit-group underscores (``1_144797``), non-ASCII
#: digits and the like, which no CSV writer means as a number: ``1_144797`` became 1144797.
_NUMBER = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity)",
                     re.IGNORECASE | re.ASCII)
_INTEGER = re.compile(r"[+-]?\d+", re.ASCII)


def strict_float(text: str) -> float:
    """``float(text)`` for the plain decimal notation of :data:`_NUMBER` only (surrounding
    spaces allowed); ``ValueError`` otherwise."""
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"not a number: {text!r}")
    return float(text)


def parse_float(cell: str, source: str, row: int, column: str) -> float:
    """The number in ``cell``; ``NaN`` for an empty cell or a missing-value marker
    (:data:`_MISSING`); TableError otherwise."""
    text = cell.strip()
    if text.lower() in _MISSING:
        return math.nan
    try:
        return strict_float(text)
    except ValueError:
        raise TableError(f"{_where(source, row, column)}not a number: {cell!r}") from None


def parse_wide(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    source: str,
    size_unit: float,
    token_unit: float,
    out_of_mixture: Sequence[str] = (),
    name: str,
) -> LossTable:
    """Build a :class:`LossTable` from the records of a wide CSV (see :func:`read_records`)."""
    for unit, what in ((size_unit, "size_unit"), (token_unit, "token_unit")):
        if isinstance(unit, bool) or not isinstance(unit, (int, float, np.integer, np.floating)):
            raise TableError(f"{source}: {what} must be a number, got {unit!r}")
        if not (math.isfinite(unit) and unit >= _TINY):
            raise TableError(f"{source}: {what} must be positive and finite, got {unit!r}")
    weight_cols, loss_cols, tag_cols = _classify(header, source, out_of_mixture)
    size_col, tokens_col = header.index(SIZE_COLUMN), header.index(TOKENS_COLUMN)
    train = [d for _, d in weight_cols]
    n = len(rows)
    weights = np.empty((n, len(weight_cols)))
    losses = np.empty((n, len(loss_cols)))
    size = np.empty(n)
    tokens = np.empty(n)
    for r, record in enumerate(rows):
        row = r + 1
        for k, (j, _) in enumerate(weight_cols):
            weights[r, k] = _weight(record[j], source, row, header[j])
        total = math.fsum(weights[r])
        if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
            raise TableError(
                f"{_where(source, row, WEIGHT_PREFIX + '*')}weights sum to {total:.6g}, not 1 "
                f"(tolerance {WEIGHT_SUM_TOLERANCE:g}; nothing is renormalised)")
        size[r] = _positive(record[size_col], source, row, SIZE_COLUMN, size_unit)
        tokens[r] = _positive(record[tokens_col], source, row, TOKENS_COLUMN, token_unit)
        for m, (j, _) in enumerate(loss_cols):
            value = parse_float(record[j], source, row, header[j])
            if not (math.isnan(value) or (math.isfinite(value) and value >= _TINY)):
                raise TableError(f"{_where(source, row, header[j])}loss must be positive, "
                                 f"finite and not subnormal (or empty when not measured), got "
                                 f"{record[j]!r}")
            losses[r, m] = value
    tags = {header[j]: _tag_array([record[j] for record in rows]) for j in tag_cols}
    return LossTable(
        weights=weights, model_size=size / size_unit, tokens=tokens / token_unit, losses=losses,
        train_domains=tuple(train), loss_domains=tuple(d for _, d in loss_cols),
        size_unit=float(size_unit), token_unit=float(token_unit), name=name,
        meta={"source": source}, row_tags=tags)


def _like_loss_column(name: str, domain: str) -> bool:
    """Whether column ``name`` reads as a misspelt loss column of ``domain``: the domain's name
    itself, or it followed (after any ``_``, ``-``, ``.`` or space) by a word in ``l``
    (``github_los``, ``github-lss``, ``githubloss``); ``github_tokens`` or ``a_count`` are not."""
    if not name.startswith(domain):
        return False
    rest = name[len(domain):]
    return rest == "" or rest.lstrip("_-. ")[:1].lower() == "l"


def _classify(
    header: Sequence[str], source: str, out_of_mixture: Sequence[str]
) -> tuple[list[tuple[int, str]], list[tuple[int, str]], list[int]]:
    """Column positions of the weights, losses (with their domains) and row tags."""
    weight_cols: list[tuple[int, str]] = []
    loss_cols: list[tuple[int, str]] = []
    tag_cols: list[int] = []
    if isinstance(out_of_mixture, str):
        raise TableError(f"{source}: out_of_mixture must be a sequence of domain names, not the "
                         f"string {out_of_mixture!r} (write ({out_of_mixture!r},))")
    try:
        out_of_mixture = tuple(out_of_mixture)
    except TypeError:
        raise TableError(f"{source}: out_of_mixture must be a sequence of domain names, got "
                         f"{type(out_of_mixture).__name__}") from None
    for domain in out_of_mixture:
        if not isinstance(domain, str) or not domain:
            raise TableError(f"{source}: out_of_mixture must name domains as non-empty strings, "
                             f"got {domain!r}")
    for j, h in enumerate(header):
        lower = h.lower()
        if (lower.startswith(WEIGHT_PREFIX) and not h.startswith(WEIGHT_PREFIX)) or (
                lower.endswith(LOSS_SUFFIX) and not h.endswith(LOSS_SUFFIX)) or lower in (
                SIZE_COLUMN, TOKENS_COLUMN) and h not in (SIZE_COLUMN, TOKENS_COLUMN):
            raise TableError(f"{_where(source, column=h)}column names are lower case "
                             f"('{WEIGHT_PREFIX}<domain>', '<domain>{LOSS_SUFFIX}', "
                             f"'{SIZE_COLUMN}', '{TOKENS_COLUMN}'): rename it, or it would "
                             "silently become a row tag")
        if h.startswith(WEIGHT_PREFIX):
            weight_cols.append((j, h[len(WEIGHT_PREFIX):]))
        elif h.endswith(LOSS_SUFFIX):
            loss_cols.append((j, h[: -len(LOSS_SUFFIX)]))
        elif h not in (SIZE_COLUMN, TOKENS_COLUMN):
            tag_cols.append(j)
    for j, domain in weight_cols + loss_cols:
        if not domain:
            raise TableError(f"{_where(source, column=header[j])}empty domain name")
    if not weight_cols:
        raise TableError(f"{source}: no weight columns (expected one 'weight_<domain>' column "
                         "per training domain)")
    for required, what in ((SIZE_COLUMN, "parameters"), (TOKENS_COLUMN, "training tokens")):
        if required not in header:
            raise TableError(f"{_where(source, column=required)}missing column (the {what} of "
                             "each run)")
    if not loss_cols:
        raise TableError(f"{source}: no loss columns (expected '<domain>_loss' columns)")
    train = [d for _, d in weight_cols]
    losses = [d for _, d in loss_cols]
    # A misspelt loss or weight column ('github_los', 'loss_github', 'github loss') would become
    # a row tag and its domain silently lose its losses: such names are not tags.
    for j in tag_cols:
        tag = header[j]
        if "loss" in tag.lower() or "weight" in tag.lower():
            raise TableError(
                f"{_where(source, column=tag)}not a loss or weight column of the format "
                f"('<domain>{LOSS_SUFFIX}', '{WEIGHT_PREFIX}<domain>'), and a row tag's name "
                "may not contain 'loss' or 'weight': rename it")
        near = [d for d in (*train, *out_of_mixture) if _like_loss_column(tag, d)]
        if near:
            raise TableError(
                f"{_where(source, column=tag)}not a column of the format, and it reads as "
                f"a misspelt loss column of domain {near[0]!r}: if it holds losses, name it "
                f"'{near[0]}{LOSS_SUFFIX}'; else rename it")
    for domain in out_of_mixture:
        if domain in train:
            raise TableError(f"{source}: out_of_mixture names {domain!r}, which is a training "
                             "domain (weight_" + domain + ")")
        if domain not in losses:
            raise TableError(f"{_where(source, column=domain + LOSS_SUFFIX)}missing column "
                             f"(out_of_mixture names {domain!r})")
    for j, domain in loss_cols:
        if domain not in train and domain not in out_of_mixture:
            raise TableError(
                f"{_where(source, column=header[j])}unknown domain {domain!r}: not a training "
                f"domain {train}; pass out_of_mixture=({domain!r},) (on the command line: "
                f"--out-of-mixture {domain}) if it is a held-out target")
    return weight_cols, loss_cols, tag_cols


def _weight(cell: str, source: str, row: int, column: str) -> float:
    value = parse_float(cell, source, row, column)
    if math.isnan(value):
        raise TableError(f"{_where(source, row, column)}missing weight (weights are required in "
                         "every row; write 0 for an unused domain)")
    if not math.isfinite(value) or value < 0:
        raise TableError(f"{_where(source, row, column)}weight must be non-negative and finite, "
                         f"got {cell!r}")
    return value


#: Count suffixes of ``model_size`` and ``n_tokens`` cells (any case): thousands, millions,
#: billions (``B`` or ``G``) and trillions.
COUNT_SUFFIXES = {"K": 3, "M": 6, "B": 9, "G": 9, "T": 12}


def count_value(text: str) -> float:
    """The number in ``text``, which may end in a count suffix: ``9.998B`` is read as the text
    ``9.998e9`` (so it is exactly that float); a mantissa with its own exponent (``2e3M``) is
    multiplied by the suffix's power of ten. ``ValueError`` if it is not a number."""
    s = text.strip()
    if len(s) > 1 and s[-1].upper() in COUNT_SUFFIXES:
        exponent, mantissa = COUNT_SUFFIXES[s[-1].upper()], s[:-1].strip()
        if "e" in mantissa.lower():
            return strict_float(mantissa) * 10.0**exponent
        strict_float(mantissa)  # plain decimal notation only
        return float(f"{mantissa}e{exponent}")
    return strict_float(s)


def parse_count(cell: str, source: str, row: int, column: str) -> float:
    """:func:`count_value` of ``cell``; ``NaN`` for a missing-value marker (as
    :func:`parse_float`); TableError naming the cell otherwise."""
    if cell.strip().lower() in _MISSING:
        return math.nan
    try:
        return count_value(cell)
    except ValueError:
        raise TableError(f"{_where(source, row, column)}not a number: {cell!r} (a count, e.g. "
                         "122M, 8B or 1.5e9)") from None


def _positive(cell: str, source: str, row: int, column: str, unit: float) -> float:
    value = parse_count(cell, source, row, column)
    if math.isnan(value):
        raise TableError(f"{_where(source, row, column)}missing value (required in every row)")
    if not (math.isfinite(value) and value > 0 and value / unit >= _TINY):
        raise TableError(f"{_where(source, row, column)}must be positive and finite, and not "
                         f"vanish in law units (divided by {unit:g}), got {cell!r}")
    return value


def _tag_array(cells: list[str]) -> np.ndarray:
    """A tag column as ``int64`` if every cell is an integer, else ``float64`` if every cell is a
    number or empty (``NaN``), else as strings."""
    texts = [c.strip() for c in cells]
    if all(_INTEGER.fullmatch(t) for t in texts):
        try:
            return np.array([int(t) for t in texts], dtype=np.int64)
        except OverflowError:
            pass
    try:
        return np.array([strict_float(t) if t else math.nan for t in texts], dtype=np.float64)
    except ValueError:
        return np.array(texts, dtype=np.str_)


def write_csv(table: LossTable, path: str | os.PathLike[str]) -> None:
    """Write ``table`` in the wide CSV format that :func:`read_csv` reads.

    Columns: the row tags, ``weight_<domain>`` for each training domain, ``model_size`` (in
    parameters: law units times ``table.size_unit``), ``n_tokens`` (in tokens), and
    ``<domain>_loss`` for each loss domain, with an empty cell for ``NaN``. Numbers are written
    with the shortest text that reads back to the same float. ``meta`` is not written; read the
    file back with the same ``size_unit``, ``token_unit`` and ``out_of_mixture``.

    Raises:
        TableError: a row tag's name collides with a column of the format, or a loss domain's
            column would read back as a weight column (a domain named ``weight`` or
            ``weight_...``: its ``<domain>_loss`` column begins with ``weight_``).
    """
    clash = [d for d in table.loss_domains if (d + LOSS_SUFFIX).startswith(WEIGHT_PREFIX)]
    if clash:
        raise TableError(f"{table.name}: loss domain(s) {clash} cannot be written: their loss "
                         f"column {clash[0] + LOSS_SUFFIX!r} would read back as the weight "
                         "column of another domain; rename them")
    for key in table.row_tags:
        if (key.startswith(WEIGHT_PREFIX) or key.endswith(LOSS_SUFFIX)
                or key in (SIZE_COLUMN, TOKENS_COLUMN)):
            raise TableError(f"{table.name}: row tag {key!r} cannot be written: its name is "
                             "reserved by the CSV format")
    header = [*table.row_tags, *(WEIGHT_PREFIX + d for d in table.train_domains), SIZE_COLUMN,
              TOKENS_COLUMN, *(d + LOSS_SUFFIX for d in table.loss_domains)]
    size = table.model_size * table.size_unit
    tokens = table.tokens * table.token_unit
    with open(os.fspath(path), "w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(header)
        for r in range(table.n_runs):
            writer.writerow([
                *(_format_cell(tag[r]) for tag in table.row_tags.values()),
                *(_format_cell(w) for w in table.weights[r]),
                _format_cell(size[r]), _format_cell(tokens[r]),
                *(_format_cell(y) for y in table.losses[r]),
            ])


def _format_cell(value: object) -> str:
    if isinstance(value, np.bool_ | bool):
        return str(bool(value))
    if isinstance(value, np.integer | int):
        return str(int(value))
    if isinstance(value, np.floating | float):
        x = float(value)
        if math.isnan(x):
            return ""
        if x.is_integer() and abs(x) < 2.0**53:
            return str(int(x))  # 90000000, not 90000000.0 or 9e+07
        return repr(x)
    return str(value)

