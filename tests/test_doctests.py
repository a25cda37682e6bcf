"""The docstring examples of every module of ``mixscale`` and ``simulate`` run and hold (float64,
as set in ``conftest.py``)."""

import doctest
import importlib
import pkgutil

import pytest

import mixscale
import simulate

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules_with_examples() -> list[str]:
    names = []
    for package in (mixscale, simulate):
        names.append(package.__name__)
        names += [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    finder = doctest.DocTestFinder(exclude_empty=True)
    return [name for name in sorted(names)
            if any(t.examples for t in finder.find(importlib.import_module(name)))]


MODULES = _modules_with_examples()


def test_the_known_examples_are_collected():
    for name in ("mixscale._allocation", "mixscale.data._bundled", "simulate._model"):
        assert name in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=FLAGS, report=False)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed (see the " \
                               "captured output)"
