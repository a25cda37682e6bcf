"""The command line's on-disk cache of compiled programs (JAX's persistent compilation cache).

Most of a short ``mixscale fit`` is XLA compiling the fitter's programs for the law and the
table's shapes: the README's first command (SlimPajama-7, 122M, 10B tokens) spent 28 of its 46 s
in compilation on the 2-core machine. The programs depend on the law, the shapes and the
options, not on the losses, so a later run on the same kind of table can read them back: the
same command took 21 s the second time (compilation 3.5 s), with a cache of 2.4 MB.

The command line therefore keeps compiled programs in a directory, chosen in this order:
``--compilation-cache DIR``; the directory JAX is already told to use (``JAX_COMPILATION_CACHE_DIR``
or a caller's ``jax.config``), left as it is; ``$MIXSCALE_COMPILATION_CACHE``;
``$XDG_CACHE_HOME/mixscale/xla``; ``~/.cache/mixscale/xla``. ``--no-compilation-cache`` turns
it off. JAX keys every entry by the program, the compile options, the XLA flags, the JAX
version and the device, so a cached program is only ever used where it was compiled for; the
cache changes no result. It is never pruned: delete the directory to empty it. Programs that
compiled in under :data:`MIN_COMPILE_SECONDS` are not kept (reading them back would cost about
as much). The library itself (``import mixscale``) never changes JAX's configuration.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["MIN_COMPILE_SECONDS", "default_directory", "use_compilation_cache"]

#: The environment variable naming the command line's cache directory.
ENVIRONMENT_VARIABLE = "MIXSCALE_COMPILATION_CACHE"
#: Programs compiled faster than this (seconds) are not written to the cache.
MIN_COMPILE_SECONDS = 0.1


def default_directory(environ=os.environ) -> Path:
    """The cache directory when none is given: ``$MIXSCALE_COMPILATION_CACHE``, else
    ``$XDG_CACHE_HOME/mixscale/xla``, else ``~/.cache/mixscale/xla``."""
    if environ.get(ENVIRONMENT_VARIABLE):
        return Path(environ[ENVIRONMENT_VARIABLE]).expanduser()
    base = Path(environ["XDG_CACHE_HOME"]) if environ.get("XDG_CACHE_HOME") else \
        Path.home() / ".cache"
    return base.expanduser() / "mixscale" / "xla"


def _configured_directory() -> str | None:
    """The cache directory JAX is already told to use (``JAX_COMPILATION_CACHE_DIR`` or a
    caller's ``jax.config``), or ``None``."""
    import jax

    return jax.config.jax_compilation_cache_dir or None


def use_compilation_cache(directory: str | os.PathLike | None = None, *,
                          enabled: bool = True) -> tuple[Path | None, str | None]:
    """Point this process's JAX at an on-disk compilation cache (for the command line, which
    owns its process); returns ``(directory in use or None, a note for the user or None)``.

    ``directory=None``: the directory JAX already uses, if one is set, else
    :func:`default_directory`. ``enabled=False``: JAX's persistent cache is turned off for the
    process (also one named by ``JAX_COMPILATION_CACHE_DIR``). A directory that cannot be
    created leaves the cache off, with a note saying why; the command goes on without it.
    """
    import jax

    if not enabled:
        jax.config.update("jax_enable_compilation_cache", False)
        return None, None
    configured = _configured_directory()
    if directory is None and configured:
        return Path(configured), None
    try:
        path = Path(directory).expanduser() if directory is not None else default_directory()
    except RuntimeError as err:  # no home directory to resolve ``~`` against
        return None, (f"compilation cache off: {err}; --compilation-cache DIR or "
                      f"${ENVIRONMENT_VARIABLE} names a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return None, (f"compilation cache off: cannot create {str(path)!r} ({err.strerror}); "
                      "--compilation-cache DIR chooses another directory")
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return path, None
