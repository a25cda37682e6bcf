"""The across-scale error table, read from ``real_extrapolation``'s record: that experiment's
section shows it, and ``compare_laws`` shows it as its across-scale table (the same protocols,
rows and fits, made once)."""

from __future__ import annotations

import numpy as np

from experiments._common import markdown_table, spec_label

__all__ = ["SHORT", "error_table", "law_row", "pct", "protocol", "table_columns"]

#: Short protocol names for table headers.
SHORT = {"slimpajama7-122": "SP7 122M", "slimpajama7-122+310": "SP7 122M+310M",
         "pile4": "Pile-4"}


def pct(v) -> str:
    """A fraction as a percentage with two decimals; ``—`` if missing or not finite."""
    return "—" if v is None or not np.isfinite(v) else f"{100 * v:.2f}"


def protocol(protos, name: str) -> dict:
    """The record's protocol ``name``."""
    return next(p for p in protos if p["protocol"] == name)


def law_row(proto: dict, label: str) -> dict | None:
    """The protocol's row of the law ``label``; ``None`` where it has none (a law added with
    ``--add-law --part`` on other protocols only)."""
    return next((r for r in proto["laws"] if r["law"] == label), None)


def table_columns(protos) -> list[tuple[str, str]]:
    """``(protocol, evaluation)`` of every column of the tables, in the record's order."""
    return [(p["protocol"], e) for p in protos for e in p["laws"][0]["evaluations"]]


def error_table(record: dict) -> list[str]:
    """Markdown lines: every law's MRE at the larger scale, all entries and entries with
    ``h_i ≥ 0.1``, per protocol and evaluation, with its parameters and fit seconds per
    protocol, from a ``real_extrapolation`` record."""
    cfg, protos = record["config"], record["results"]["protocols"]
    labels = [spec_label(d) for d in cfg["laws"]]
    cols = table_columns(protos)
    header = ["law"] + [f"{SHORT[p]} → {e}: MRE / h≥0.1 (%)" for p, e in cols]
    header += ["params", "fit s"]
    rows = []
    for label in labels:
        cells = [label]
        for p, e in cols:
            r = law_row(protocol(protos, p), label)
            v = None if r is None else r["evaluations"][e]
            cells.append("not yet fitted" if v is None
                         else f"{pct(v['mre'])} / {pct(v['mre_high_weight'])}")
        rs = [law_row(p, label) for p in protos]
        cells += [" / ".join("—" if r is None else str(r["n_params"]) for r in rs),
                  " / ".join("—" if r is None else f"{r['fit_s']:.0f}" for r in rs)]
        rows.append(cells)
    return ["Params and fit seconds per protocol in the order of the columns' protocols ("
            + ", ".join(p["protocol"] for p in protos) + ").", "",
            markdown_table(header, rows)]
