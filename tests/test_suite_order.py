"""The suite's module order (``tests/conftest.py``): longest first, by a table that names only
modules that exist."""

import json
from pathlib import Path
from types import SimpleNamespace

import conftest

TESTS = Path(__file__).parent


def test_the_table_names_existing_test_modules_with_positive_seconds():
    table = json.loads((TESTS / "module_seconds.json").read_text())
    assert table, "an empty table orders nothing"
    for name, seconds in table.items():
        assert (TESTS / name).is_file() and name.startswith("test_"), name
        assert seconds >= 0, name


def test_modules_run_longest_first_keeping_each_modules_own_order(monkeypatch):
    monkeypatch.setattr(conftest, "_MODULE_SECONDS", {"test_a.py": 1.0, "test_b.py": 9.0,
                                                      "test_c.py": 4.0, "test_d.py": 2.0})

    def item(module, test):
        return SimpleNamespace(path=Path("tests") / module, name=test)

    items = [item("test_a.py", 1), item("test_b.py", 1), item("test_new.py", 1),
             item("test_a.py", 2), item("test_b.py", 2), item("test_new.py", 2),
             item("test_c.py", 1)]
    conftest.pytest_collection_modifyitems(None, items)
    # test_new.py is not in the table: it is placed as a module of the median length (3 s)
    assert [(i.path.name, i.name) for i in items] == [
        ("test_b.py", 1), ("test_b.py", 2), ("test_c.py", 1), ("test_new.py", 1),
        ("test_new.py", 2), ("test_a.py", 1), ("test_a.py", 2)]
