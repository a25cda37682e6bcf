"""Figure helpers shared by the experiments: the non-interactive pyplot, saving a PNG, and one
colour per law.

They live apart from :mod:`experiments._common` because the fit cache's key hashes that module's
code (:func:`experiments._common._code_digest`): a change to how figures look must not discard
cached fits.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["law_color", "pyplot", "save_figure"]


def save_figure(fig, out: Path, filename: str) -> Path:
    """Save a matplotlib figure as a PNG (150 dpi, tight) under ``out`` and close it."""
    import matplotlib.pyplot as plt

    path = Path(out) / filename
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path


#: The laws' colours, ``(colormap, entry)``: tab20's dark shades, then its light ones, without
#: its two greys (kept for reference lines: uniform, proportional, static mixtures), then the
#: darkest shade of each of tab20b's five hues. Twenty-three colours, so that no two laws of a
#: figure share one (tab10 repeats after ten, and its grey drew a law like a reference; a figure
#: with the registry's laws and the spectral variants has nineteen).
_LAW_SHADES = (*(("tab20", i) for i in (0, 2, 4, 6, 8, 10, 12, 16, 18,
                                         1, 3, 5, 7, 9, 11, 13, 17, 19)),
               *(("tab20b", i) for i in (0, 4, 8, 12, 16)))


def law_color(j: int):
    """The colour of the ``j``-th law of a figure (RGBA; repeats after 23 laws)."""
    import matplotlib

    name, entry = _LAW_SHADES[j % len(_LAW_SHADES)]
    return matplotlib.colormaps[name](entry)


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
