"""The real loss tables shipped with mixscale, loaded by name.

>>> from mixscale.data import available, load
>>> [d.name for d in available()]
['pile4', 'slimpajama7', 'regmix-1m', 'regmix-60m', 'regmix-1b']
>>> load("regmix-1b").losses.shape
(64, 17)

The files live in ``mixscale/data/bundled/`` exactly as released (sources, commits and licenses in
``bundled/ATTRIBUTION.md``); they are read with :mod:`importlib.resources` when a table is
loaded, never at import. ``pile4`` and ``slimpajama7`` are in the wide CSV format of
:func:`~mixscale.data.read_csv`. RegMix ships each set as two files, mixtures and losses, joined
here on their ``index`` column; its domain names are shortened to the Pile's snake_case names
(``train_the_pile_arxiv`` and ``metric/the_pile_arxiv_val_loss`` both become ``arxiv``).

All tables are in law units: model size in millions of parameters, tokens in billions.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Literal, TextIO

import numpy as np

from ._csv import SIZE_COLUMN, TOKENS_COLUMN, parse_wide, read_records, read_wide
from ._table import LossTable, TableError

__all__ = ["DatasetInfo", "available", "load"]

_SIZE_UNIT = 1e6
_TOKEN_UNIT = 1e9

_DAI_ZHENG = 'Dai & Zheng, "Explaining Data Mixing Scaling Laws", ICML 2026'
_SHUKOR = ('Shukor et al., "Scaling Laws for Optimal Data Mixtures", arXiv:2507.09404, 2025 '
           "(data as released in apple/ml-scalefit)")
_REGMIX = ('Liu et al., "RegMix: Data Mixture as Regression for Language Model Pre-training", '
           "ICLR 2025")
_REGMIX_LICENSE = "MIT (Sea AI Lab, 2024)"


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a bundled dataset holds (its default :func:`load`), without reading it.

    Attributes:
        name: the name :func:`load` takes.
        description: one line on what was trained and measured.
        runs: number of rows ``n``.
        n_train_domains: ``K``, the weight columns.
        n_loss_domains: ``M``, the loss columns.
        model_sizes: the distinct model sizes, millions of parameters, ascending.
        token_counts: the distinct token budgets, billions of tokens, ascending.
        citation: whom to cite.
        license: the license (or release terms) of the files.
        files: the bundled files it is read from.
    """

    name: str
    description: str
    runs: int
    n_train_domains: int
    n_loss_domains: int
    model_sizes: tuple[float, ...]
    token_counts: tuple[float, ...]
    citation: str
    license: str
    files: tuple[str, ...]


def available() -> list[DatasetInfo]:
    """The bundled datasets, in a fixed order."""
    return [info for info, _ in _registry().values()]


def load(name: str, **options: object) -> LossTable:
    """The bundled loss table called ``name`` (see :func:`available`).

    Options by dataset:

    * ``regmix-1m``: ``split`` = ``"train"`` (512 runs), ``"test"`` (256) or ``None`` (default,
      all 768, with row tag ``split``).
    * ``regmix-1b``: ``extra_losses`` = ``True`` (default: all 17 loss domains, the 4 RegMix did
      not log joined from the paper authors' evaluations) or ``False`` (the 13 logged ones).

    Raises:
        KeyError: unknown ``name``; the message lists the available names.
        TypeError: an option this dataset does not take.
    """
    registry = _registry()
    if name not in registry:
        raise KeyError(f"unknown dataset {name!r}; available: {', '.join(registry)}")
    loader = registry[name][1]
    accepted = tuple(inspect.signature(loader).parameters)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(f"load({name!r}) got unknown options {unknown}; it accepts "
                        f"{list(accepted) or 'none'}")
    return loader(**options)


# ------------------------------------------------------------------------------- file access
@contextmanager
def _open(filename: str) -> Iterator[TextIO]:
    resource = resources.files(__package__).joinpath("bundled").joinpath(filename)
    with resource.open("r", encoding="utf-8", newline="") as stream:
        yield stream


def _source(filename: str) -> str:
    return f"{filename} (bundled)"


def _meta(files: tuple[str, ...], citation: str, license: str, notes: str) -> dict[str, object]:
    return {"source": "mixscale bundled data; see mixscale/data/bundled/ATTRIBUTION.md",
            "files": list(files), "citation": citation, "license": license, "notes": notes}


# ---------------------------------------------------------------------------- wide CSV sets
def _load_pile4() -> LossTable:
    info = _PILE4
    with _open(info.files[0]) as stream:
        table = read_wide(stream, source=_source(info.files[0]), size_unit=_SIZE_UNIT,
                          token_unit=_TOKEN_UNIT, name=info.name)
    notes = ("Model size and tokens are the nominal values of the authors' run labels "
             "(e.g. '200M', '8B'). The 200M rows at 3-7B tokens are earlier checkpoints of runs "
             "whose 8B row is also present. Row tag mixture_id is the authors' mixture number.")
    return dataclasses.replace(table, meta=_meta(info.files, info.citation, info.license, notes))


def _load_slimpajama7() -> LossTable:
    info = _SLIMPAJAMA7
    with _open(info.files[0]) as stream:
        table = read_wide(stream, source=_source(info.files[0]), size_unit=_SIZE_UNIT,
                          token_unit=_TOKEN_UNIT, out_of_mixture=("openhermes",), name=info.name)
    notes = ("One row per (mixture, model size, token checkpoint): 60 mixtures, 11 checkpoints "
             "per size. openhermes is an out-of-mixture target. 16 loss cells of 310M rows are "
             "not measured and are NaN. Larger-model rows of the release are not included.")
    return dataclasses.replace(table, meta=_meta(info.files, info.citation, info.license, notes))


# ------------------------------------------------------------------------------------ RegMix
_REGMIX_INDEX = "index"
_REGMIX_WEIGHT_PREFIX = "train_the_pile_"
_REGMIX_LOSS_PREFIX, _REGMIX_LOSS_SUFFIX = "metric/the_pile_", "_val_loss"
_REGMIX_NOTE = ("RegMix trained 17 Pile domains and logged validation losses on 13 of them. "
                "Mixture weights are rounded to 3 decimals (rows sum to 1 within 0.002). "
                "Row tag index is RegMix's own row index.")


def _regmix_domain(column: str, prefix: str, suffix: str, filename: str) -> str:
    if not (column.startswith(prefix) and column.endswith(suffix)
            and len(column) > len(prefix) + len(suffix)):
        raise TableError(f"{_source(filename)}, column {column!r}: unexpected column (expected "
                         f"{_REGMIX_INDEX!r} and '{prefix}<domain>{suffix}' columns)")
    return column[len(prefix): len(column) - len(suffix)]


def _regmix_index(header: tuple[str, ...], rows: list[list[str]], filename: str) -> list[int]:
    if _REGMIX_INDEX not in header:
        raise TableError(f"{_source(filename)}, column {_REGMIX_INDEX!r}: missing column")
    j = header.index(_REGMIX_INDEX)
    index: list[int] = []
    seen: dict[int, int] = {}
    for r, record in enumerate(rows):
        try:
            value = int(record[j])
        except ValueError:
            raise TableError(f"{_source(filename)}, row {r + 1}, column {_REGMIX_INDEX!r}: not "
                             f"an integer: {record[j]!r}") from None
        if value in seen:
            raise TableError(f"{_source(filename)}, row {r + 1}, column {_REGMIX_INDEX!r}: "
                             f"index {value} repeats row {seen[value]}")
        seen[value] = r + 1
        index.append(value)
    return index


def _load_regmix_pair(mixture_file: str, loss_file: str, params: float, n_tokens: float,
                      name: str) -> LossTable:
    """One RegMix set: mixtures and losses joined on ``index``, rows in mixture-file order.

    The pair becomes the records of a wide CSV and is read like one, so every check of
    :func:`~mixscale.data.read_csv` applies; rows in error messages are mixture-file rows.
    """
    with _open(mixture_file) as stream:
        m_header, m_rows = read_records(stream, _source(mixture_file))
    with _open(loss_file) as stream:
        l_header, l_rows = read_records(stream, _source(loss_file))
    m_index = _regmix_index(m_header, m_rows, mixture_file)
    l_index = _regmix_index(l_header, l_rows, loss_file)
    if set(m_index) != set(l_index):
        only_m = sorted(set(m_index) - set(l_index))
        only_l = sorted(set(l_index) - set(m_index))
        raise TableError(f"{_source(mixture_file)} and {_source(loss_file)}: the index columns "
                         f"differ (only in mixtures: {only_m[:10]}, only in losses: "
                         f"{only_l[:10]})")
    m_cols = [j for j, h in enumerate(m_header) if h != _REGMIX_INDEX]
    l_cols = [j for j, h in enumerate(l_header) if h != _REGMIX_INDEX]
    header = [_REGMIX_INDEX,
              *("weight_" + _regmix_domain(m_header[j], _REGMIX_WEIGHT_PREFIX, "", mixture_file)
                for j in m_cols),
              SIZE_COLUMN, TOKENS_COLUMN,
              *(_regmix_domain(l_header[j], _REGMIX_LOSS_PREFIX, _REGMIX_LOSS_SUFFIX, loss_file)
                + "_loss" for j in l_cols)]
    loss_row = {value: r for r, value in enumerate(l_index)}
    rows = [[str(value), *(m_rows[r][j] for j in m_cols), repr(params), repr(n_tokens),
             *(l_rows[loss_row[value]][j] for j in l_cols)]
            for r, value in enumerate(m_index)]
    source = f"{_source(mixture_file)} joined with {loss_file} on {_REGMIX_INDEX}"
    return parse_wide(header, rows, source=source, size_unit=_SIZE_UNIT, token_unit=_TOKEN_UNIT,
                      name=name)


def _with_tag(table: LossTable, key: str, value: str) -> LossTable:
    tags = {**table.row_tags, key: np.full(table.n_runs, value)}
    return dataclasses.replace(table, row_tags=tags)


def _concat(tables: list[LossTable], name: str) -> LossTable:
    """The rows of several tables with the same domains, units and row tags, stacked."""
    first = tables[0]
    for t in tables[1:]:
        assert (t.train_domains, t.loss_domains, t.size_unit, t.token_unit, tuple(t.row_tags)) \
            == (first.train_domains, first.loss_domains, first.size_unit, first.token_unit,
                tuple(first.row_tags)), "internal: concatenating incompatible tables"
    stack = {f: np.concatenate([getattr(t, f) for t in tables])
             for f in ("weights", "model_size", "tokens", "losses")}
    tags = {k: np.concatenate([t.row_tags[k] for t in tables]) for k in first.row_tags}
    return dataclasses.replace(first, **stack, row_tags=tags, name=name)


def _load_regmix_1m(split: Literal["train", "test"] | None = None) -> LossTable:
    info = _REGMIX_1M
    parts = {"train": ("train_mixture_1m.csv", "train_pile_loss_1m.csv"),
             "test": ("test_mixture_1m.csv", "test_pile_loss_1m.csv")}
    if split is not None and split not in parts:
        raise ValueError(f"load('regmix-1m'): split must be 'train', 'test' or None, "
                         f"got {split!r}")
    chosen = list(parts) if split is None else [split]
    tables = [_with_tag(_load_regmix_pair(*parts[s], 1e6, 1e9, info.name), "split", s)
              for s in chosen]
    table = _concat(tables, info.name)
    files = tuple(f for s in chosen for f in parts[s])
    notes = (f"{_REGMIX_NOTE} Row tag split is 'train' (RegMix's 512 training runs) or 'test' "
             "(its 256 held-out mixtures); index restarts at 1 in each split.")
    return dataclasses.replace(table, meta=_meta(files, info.citation, info.license, notes))


def _load_regmix_60m() -> LossTable:
    info = _REGMIX_60M
    table = _load_regmix_pair(*info.files, 60e6, 1e9, info.name)
    notes = (f"{_REGMIX_NOTE} The mixtures are RegMix's 256 held-out test mixtures (the same "
             "as regmix-1m's test split).")
    return dataclasses.replace(table, meta=_meta(info.files, info.citation, info.license, notes))


#: The 1B evaluations of the 4 domains RegMix did not log (from the paper's authors), their
#: domain names there, and how their ``index`` relates to RegMix's: jsonl index = RegMix index
#: + 1. (With this offset each domain's loss falls as its weight grows, correlation about -0.9;
#: with offset 0 there is no relation.)
_EXTRA_FILE = "regmix1b_missing4domains_eval.jsonl"
_EXTRA_DOMAINS = {"NIH ExPorter": "nih_exporter", "PhilPapers": "philpapers",
                  "Enron Emails": "enron_emails", "EuroParl": "europarl"}
_EXTRA_INDEX_OFFSET = 1
#: RegMix 1B rows the authors' file has no evaluations for; their 4 extra losses are NaN. Any
#: other gap is an error.
_EXTRA_NOT_EVALUATED = frozenset({4, 12})


def _extra_losses(index: np.ndarray) -> np.ndarray:
    """``(n, 4)`` losses on the 4 unlogged domains (``_EXTRA_DOMAINS`` order) of the RegMix 1B
    rows with the given RegMix ``index``; ``NaN`` for the rows in ``_EXTRA_NOT_EVALUATED``."""
    source = _source(_EXTRA_FILE)
    position = {int(v): r for r, v in enumerate(index)}
    columns = {d: m for m, d in enumerate(_EXTRA_DOMAINS)}
    out = np.full((index.size, len(columns)), np.nan)
    filled = np.zeros(out.shape, dtype=bool)
    with _open(_EXTRA_FILE) as stream:
        for line_no, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            where = f"{source}, line {line_no}"
            try:
                record = json.loads(line)
                jsonl_index, domain, loss = record["index"], record["domain"], record["avg_loss"]
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise TableError(f"{where}: expected a JSON object with index, domain and "
                                 f"avg_loss ({err!r})") from None
            if domain not in columns:
                raise TableError(f"{where}: unknown domain {domain!r}; expected one of "
                                 f"{list(columns)}")
            row = jsonl_index - _EXTRA_INDEX_OFFSET if isinstance(jsonl_index, int) else None
            if row not in position:
                raise TableError(f"{where}: index {jsonl_index!r} matches no RegMix 1B row "
                                 f"(jsonl index = RegMix index + {_EXTRA_INDEX_OFFSET})")
            if not (isinstance(loss, int | float) and math.isfinite(loss) and loss > 0):
                raise TableError(f"{where}: avg_loss must be a positive number, got {loss!r}")
            r, m = position[row], columns[domain]
            if filled[r, m]:
                raise TableError(f"{where}: a second {domain!r} loss for index {jsonl_index}")
            out[r, m], filled[r, m] = loss, True
    partial = filled.any(axis=1) & ~filled.all(axis=1)
    if partial.any():
        r = int(np.argmax(partial))
        raise TableError(f"{source}: RegMix index {int(index[r])} has losses for only "
                         f"{[d for d, m in columns.items() if filled[r, m]]}")
    absent = {int(v) for v in index[~filled.any(axis=1)]}
    if absent != _EXTRA_NOT_EVALUATED:
        raise TableError(f"{source}: RegMix 1B rows without evaluations are {sorted(absent)}; "
                         f"expected exactly {sorted(_EXTRA_NOT_EVALUATED)}")
    return out


def _load_regmix_1b(extra_losses: bool = True) -> LossTable:
    info = _REGMIX_1B
    pair = ("test_mixture_1B.csv", "test_pile_loss_1B.csv")
    table = _load_regmix_pair(*pair, 1e9, 25e9, info.name)
    if not extra_losses:
        meta = _meta(pair, _REGMIX, _REGMIX_LICENSE,
                     f"{_REGMIX_NOTE} Model size is nominal (1B).")
        return dataclasses.replace(table, meta=meta)
    extra = _extra_losses(table.row_tags[_REGMIX_INDEX])
    logged = {d: table.losses[:, m] for m, d in enumerate(table.loss_domains)}
    joined = {**logged, **{d: extra[:, m] for m, d in enumerate(_EXTRA_DOMAINS.values())}}
    missing = set(table.train_domains) ^ set(joined)
    assert not missing, f"internal: extra losses leave domains {missing} unmatched"
    # All 17 training domains are now loss domains: put the losses in weight-column order.
    losses = np.stack([joined[d] for d in table.train_domains], axis=1)
    notes = (f"{_REGMIX_NOTE} Model size is nominal (1B). The losses on nih_exporter, "
             f"philpapers, enron_emails and europarl come from {_EXTRA_FILE} (evaluations of "
             "the same checkpoints by Dai & Zheng; its index is RegMix's index + 1); it has no "
             f"evaluations for RegMix index {sorted(_EXTRA_NOT_EVALUATED)}, whose 4 extra "
             "losses are NaN. Loss columns follow the weight columns' order.")
    meta = _meta(info.files, info.citation, info.license, notes)
    return dataclasses.replace(table, losses=losses, loss_domains=table.train_domains, meta=meta)


# ---------------------------------------------------------------------------------- registry
_PILE4 = DatasetInfo(
    name="pile4",
    description="GPT-style models on 4 Pile domains (github, gutenberg, stackexchange, "
                "wikipedia), 40 mixtures, 90M-440M parameters, 3-8B tokens; the paper's own runs",
    runs=85, n_train_domains=4, n_loss_domains=4,
    model_sizes=(90.0, 200.0, 440.0), token_counts=(3.0, 4.0, 5.0, 6.0, 7.0, 8.0),
    citation=_DAI_ZHENG, license="no license file upstream; cite the paper",
    files=("pile4_losses.csv",))
_SLIMPAJAMA7 = DatasetInfo(
    name="slimpajama7",
    description="7 SlimPajama domains plus an out-of-mixture openhermes loss; 60 mixtures at "
                "122M, 310M and 680M parameters, 11 token checkpoints each (2-26B tokens)",
    runs=1748, n_train_domains=7, n_loss_domains=8,
    model_sizes=(122.0, 310.0, 680.0),
    token_counts=(1.998, 2.59, 3.998, 5.182, 5.998, 7.774, 7.998, 9.998, 10.366, 11.998, 12.958,
                  13.998, 15.55, 15.998, 17.998, 18.142, 19.998, 20.0, 20.734, 23.326, 25.918,
                  25.92),
    citation=_SHUKOR, license="Apple's release terms for apple/ml-scalefit (keep attribution)",
    files=("slimpajama7_122m-680m.csv",))
_REGMIX_1M = DatasetInfo(
    name="regmix-1m",
    description="RegMix: 1M-parameter models, 1B tokens, random mixtures of 17 Pile domains; "
                "512 training + 256 test runs, losses on 13 domains",
    runs=768, n_train_domains=17, n_loss_domains=13, model_sizes=(1.0,), token_counts=(1.0,),
    citation=_REGMIX, license=_REGMIX_LICENSE,
    files=("train_mixture_1m.csv", "train_pile_loss_1m.csv", "test_mixture_1m.csv",
           "test_pile_loss_1m.csv"))
_REGMIX_60M = DatasetInfo(
    name="regmix-60m",
    description="RegMix: 60M-parameter models, 1B tokens, on the 256 test mixtures of "
                "regmix-1m; losses on 13 of the 17 Pile domains",
    runs=256, n_train_domains=17, n_loss_domains=13, model_sizes=(60.0,), token_counts=(1.0,),
    citation=_REGMIX, license=_REGMIX_LICENSE,
    files=("test_mixture_60m.csv", "test_pile_loss_60m.csv"))
_REGMIX_1B = DatasetInfo(
    name="regmix-1b",
    description="RegMix: 1B-parameter models, 25B tokens, 64 mixtures of 17 Pile domains; "
                "losses on all 17 (4 joined from the paper authors' evaluations)",
    runs=64, n_train_domains=17, n_loss_domains=17, model_sizes=(1000.0,),
    token_counts=(25.0,), citation=f"{_REGMIX}; extra losses: {_DAI_ZHENG}",
    license=f"{_REGMIX_LICENSE}; extra losses: no license file upstream, cite the paper",
    files=("test_mixture_1B.csv", "test_pile_loss_1B.csv", _EXTRA_FILE))


def _registry() -> dict[str, tuple[DatasetInfo, Callable[..., LossTable]]]:
    entries = ((_PILE4, _load_pile4), (_SLIMPAJAMA7, _load_slimpajama7),
               (_REGMIX_1M, _load_regmix_1m), (_REGMIX_60M, _load_regmix_60m),
               (_REGMIX_1B, _load_regmix_1b))
    return {info.name: (info, loader) for info, loader in entries}
