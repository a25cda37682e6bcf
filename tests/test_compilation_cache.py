"""The command line's on-disk compilation cache: where it goes, that it is written and read back
without changing a result, and that it is left off, with a note, where it cannot be made."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax

import mixscale._compilation_cache as cache_module
from mixscale._compilation_cache import (
    ENVIRONMENT_VARIABLE,
    MIN_COMPILE_SECONDS,
    default_directory,
    use_compilation_cache,
)


def test_default_directory_follows_the_environment(tmp_path):
    assert default_directory({ENVIRONMENT_VARIABLE: str(tmp_path / "c"),
                              "XDG_CACHE_HOME": "/x"}) == tmp_path / "c"
    assert default_directory({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "mixscale" / "xla"
    assert default_directory({}) == Path.home() / ".cache" / "mixscale" / "xla"


def test_a_directory_jax_already_uses_is_kept_and_an_impossible_one_is_refused(tmp_path):
    before = jax.config.jax_compilation_cache_dir
    configured = str(tmp_path / "configured")
    jax.config.update("jax_compilation_cache_dir", configured)  # as a caller of the library may
    try:
        assert use_compilation_cache(None) == (Path(configured), None)
        blocker = tmp_path / "a-file"
        blocker.write_text("")
        path, note = use_compilation_cache(blocker / "cache")
        assert path is None and "cannot create" in note and "a-file" in note
        assert jax.config.jax_compilation_cache_dir == configured
    finally:
        jax.config.update("jax_compilation_cache_dir", before)


def test_no_home_directory_leaves_the_cache_off_with_a_note(monkeypatch):
    monkeypatch.setattr(cache_module, "_configured_directory", lambda: None)

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    for name in (ENVIRONMENT_VARIABLE, "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    path, note = use_compilation_cache(None)
    assert path is None and "home directory" in note and ENVIRONMENT_VARIABLE in note


def test_no_compilation_cache_turns_jax_cache_off():
    before = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", True)  # the suite runs with it off
    try:
        assert use_compilation_cache("/unused", enabled=False) == (None, None)
        assert not jax.config.jax_enable_compilation_cache
    finally:
        jax.config.update("jax_enable_compilation_cache", before)


def test_the_command_line_writes_its_programs_and_reads_them_back_unchanged(tmp_path):
    """Two runs of one fit in fresh processes sharing a cache directory: the first writes the
    programs it compiled, the second reads them back; the printed fits are identical."""
    cache = tmp_path / "xla"
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env[ENVIRONMENT_VARIABLE] = str(cache)
    env["JAX_LOG_COMPILES"] = "1"  # JAX then logs each program read back from the cache
    command = [sys.executable, "-m", "mixscale", "fit", "pile4", "--model-size", "200M",
               "--tokens", "8B", "--restarts", "1", "--plain", "--no-nested", "--max-steps", "2",
               "--validation-fraction", "0", "--mixture-starts", "1", "--json"]
    outputs, logs = [], []
    for _ in range(2):
        run = subprocess.run(command, env=env, capture_output=True, text=True, check=False,
                             timeout=300)
        assert run.returncode == 0, run.stderr
        outputs.append(json.loads(run.stdout))
        logs.append(run.stderr)
        entries = [p for p in cache.iterdir() if p.is_file()]
        # the fit's step program compiles in well over MIN_COMPILE_SECONDS
        assert MIN_COMPILE_SECONDS < 1 and entries, "no program was written to the cache"
    def read_back(log):  # JAX's log line for a program read back from the cache
        return any("cache hit" in line and "lm_advance" in line for line in log.splitlines())

    assert not read_back(logs[0]) and read_back(logs[1])
    assert outputs[0] == outputs[1]
