"""The README's generated blocks, from the results in ``figures/``.

Three blocks, each between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` markers:

* ``goals`` — the project's goals for a theory-derived law and where the laws stand
  (:mod:`experiments._goals`);
* ``law-comparison`` — the tables of ``figures/compare_laws.md`` (written by
  ``python -m experiments.compare_laws``);
* ``figures`` — the key figure of every experiment in ``figures/`` with its section title,
  and the total wall time the experiments' results files record (``elapsed_s``).

Used by ``python -m experiments.update_readme`` and by ``python -m experiments.reproduce`` after
a full run.
"""

from __future__ import annotations

import json
from pathlib import Path

from experiments._goals import goals_block
from experiments._harness import EXPERIMENTS, recorded_wall_s

__all__ = ["FIGURES", "KEY_FIGURES", "README", "figures_block", "law_comparison_block",
           "replace_block", "update"]

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FIGURES = ROOT / "figures"

#: The figure that carries an experiment's message, where it draws several.
KEY_FIGURES = {"extrapolation_sim": "extrapolation_sim_regret.png",
               "real_extrapolation": "real_extrapolation_slimpajama_scatter.png",
               "pilecc_target": "pilecc_target_weights.png"}


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with the content between the ``name`` markers replaced by ``body``.

    Raises:
        ValueError: the markers are missing, repeated or out of order.
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ValueError(f"the README needs exactly one '{start}' followed by one '{end}'")
    head, rest = text.split(start)
    _, tail = rest.split(end)
    return f"{head}{start}\n{body.strip()}\n{end}{tail}"


def law_comparison_block(figures: Path) -> str:
    """The comparison tables, headings demoted below the README's own section."""
    md = (figures / "compare_laws.md").read_text(encoding="utf-8")
    lines = [line for line in md.splitlines() if not line.startswith("# ")]
    return "\n".join("##" + line if line.startswith("## ") else line for line in lines).strip()


def figures_block(figures: Path, prefix: str = "figures") -> str:
    """The key figure of each experiment section (:data:`KEY_FIGURES`, else its first), in
    report order, with its title."""
    out = []
    for name, title in EXPERIMENTS:
        pngs = sorted(figures.glob(f"{name}*.png"))
        key = [p for p in pngs if p.name == KEY_FIGURES.get(name)]
        if pngs:
            out += [f"**{title}** (`python -m experiments.{name}`)", "",
                    f"![{title}]({prefix}/{(key or pngs)[0].name})", ""]
    times = [recorded_wall_s(figures, name) for name, _ in EXPERIMENTS]
    times = [t for t in times if t is not None]
    quick = json.loads((figures / "reproduce.json").read_text()).get("quick", False) if (
        figures / "reproduce.json").exists() else False
    if times and not quick:
        out.append(f"The experiments behind these figures took {sum(times) / 60:.0f} min of "
                   "wall time in all on a 2-core CPU machine shared with other jobs (so an idle "
                   "machine is faster); the time of each is in `figures/REPORT.md`.")
    return "\n".join(out)


def update(readme: Path, figures: Path) -> Path:
    """Rewrite the generated blocks of ``readme`` from ``figures``; returns ``readme``."""
    text = readme.read_text(encoding="utf-8")
    text = replace_block(text, "goals", goals_block(figures))
    if (figures / "compare_laws.md").exists():
        text = replace_block(text, "law-comparison", law_comparison_block(figures))
    text = replace_block(text, "figures", figures_block(figures))
    readme.write_text(text, encoding="utf-8")
    return readme
