"""Regenerate the README's generated blocks from the results in ``figures/``.

    python -m experiments.update_readme

The blocks (``law-comparison`` and ``figures``) are described in :mod:`experiments._readme`.
Nothing in them is typed by hand; edit the experiments, rerun them, then this.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from experiments import _readme

log = logging.getLogger("update_readme")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.update_readme",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--readme", type=Path, default=_readme.README)
    parser.add_argument("--figures", type=Path, default=_readme.FIGURES)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    # A folder without results would empty the README's goals and figures blocks (a typo in
    # --figures did, exit 0): refused, as is a README without the blocks' markers.
    if not args.figures.is_dir():
        parser.error(f"--figures {args.figures}: not a directory")
    if not any(args.figures.glob("*.json")):
        parser.error(f"--figures {args.figures}: holds no results files (*.json); run the "
                     "experiments first")
    if not args.readme.is_file():
        parser.error(f"--readme {args.readme}: no such file")
    try:
        log.info("updated %s", _readme.update(args.readme, args.figures))
    except ValueError as err:  # the README's markers
        parser.error(f"--readme {args.readme}: {err}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
