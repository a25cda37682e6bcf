"""The bundled real loss tables by name: ``mixscale.datasets.load("regmix-1b")``.

An alias of :func:`mixscale.data.load` and :func:`mixscale.data.available`.
"""

from .data import available, load

__all__ = ["available", "load"]
