"""XLA's flags as the experiments, their smoke runs and the suite set them: every flag is read.

XLA's parser stops silently at a token of ``XLA_FLAGS`` that is not a ``--flag`` and ignores the
flags after it (:mod:`experiments._xla_flags`); the experiments' flags carried such a token.
"""

import os

import pytest

from experiments import _common, _xla_flags

#: The experiments' flags before they were checked: a TensorFlow option after the XLA flag.
_STOPS_THE_PARSER = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def test_xla_reads_the_smoke_runs_flags_to_their_end_and_the_check_can_fail():
    # the smoke runs' flags hold the full runs' and the suite's (tests/conftest.py) as parts
    assert set(_xla_flags.SINGLE_THREADED) <= set(_common.QUICK_XLA_FLAGS.split())
    assert set(_xla_flags.compile_speed_flags()) <= set(_common.QUICK_XLA_FLAGS.split())
    assert _common.XLA_FLAGS.split() == list(_xla_flags.SINGLE_THREADED)
    reads = _xla_flags.xla_reads_every_flag(_common.QUICK_XLA_FLAGS)
    if not reads and not _xla_flags.xla_reads_every_flag(""):
        pytest.skip("this XLA does not refuse an unknown flag: the check cannot see where its "
                    "parser stops")
    assert reads
    # a flag after a token that is not one is never read: the check sees it
    assert not _xla_flags.xla_reads_every_flag(_STOPS_THE_PARSER)


def test_join_refuses_a_token_that_is_not_a_flag():
    assert _xla_flags.join(["--a=1"], ("--b=2",)) == "--a=1 --b=2"
    with pytest.raises(ValueError, match="intra_op_parallelism_threads=1.*ignore every flag"):
        _xla_flags.join(_STOPS_THE_PARSER.split())


def test_smoke_runs_compile_for_speed_and_a_users_flags_win(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("XLA_FLAGS")  # the suite's own (tests/conftest.py); restored after
    _common.parse_args("demo", "", ["--quick"])
    assert os.environ["XLA_FLAGS"] == _common.QUICK_XLA_FLAGS
    monkeypatch.delenv("XLA_FLAGS")
    _common.parse_args("demo", "", [])
    assert os.environ["XLA_FLAGS"] == _common.XLA_FLAGS
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true")
    _common.parse_args("demo", "", ["--quick"])
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_multi_thread_eigen=true"
