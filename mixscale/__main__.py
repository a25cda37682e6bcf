"""``python -m mixscale``: the command line (:mod:`mixscale.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
