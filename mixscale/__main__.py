"""``python -m mixscale``: the command line (:mod:`mixscale.cli`)."""

import sys

from .cli import main

sys.exit(main())
