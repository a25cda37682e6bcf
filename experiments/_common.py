"""Plumbing shared by the experiments: command line, results files, report sections, figures
and the optimiser rule every fit follows.

Every experiment is a module ``experiments/<name>.py`` with a ``Config``, ``run`` and ``render``
and ``main(argv)`` handing them to :func:`experiments._harness.run_experiment`, which takes
``--quick`` (a smoke configuration of seconds to a minute), ``--out DIR`` (default
``figures/``; ``figures/quick/`` with ``--quick``) and ``--redraw``, and writes into ``DIR``:

* ``<name>.json`` — the results with the configuration and package versions (:func:`write_record`);
* ``<name>*.png`` — the figures, drawn from the results only (:func:`save_figure`);
* ``<name>.md`` — its section of ``REPORT.md``: the figures and every number they show, generated
  from the results (:func:`write_section`).

Run one with ``python -m experiments.<name> [--quick]`` from the repository root;
``python -m experiments.reproduce`` runs them all and assembles ``REPORT.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["XLA_FLAGS", "Timer", "fit_law", "markdown_table", "method_for", "n_params",
           "parse_args", "save_figure", "spec_label", "versions", "write_record", "write_section"]

#: Single-threaded XLA CPU kernels: the experiments run many small vmapped problems, and on a
#: shared machine multi-threaded kernels spend most of their time waiting for each other
#: (measured: up to 10x slower under load).
XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def method_for(spec, table, lm_max_params: int = 64) -> str:
    """The optimiser every experiment uses for ``spec`` on ``table``: Levenberg–Marquardt
    (``"lm"``) up to ``lm_max_params`` parameters, L-BFGS (``"lbfgs"``) above."""
    return "lm" if n_params(spec, table) <= lm_max_params else "lbfgs"


def fit_law(spec, train, *, validation=None, n_restarts: int = 16, seed: int = 0,
            lm_max_params: int = 64, max_steps: int | None = None,
            lbfgs_max_steps: int | None = None):
    """:func:`mixscale.fit` of a :class:`mixscale.LawSpec` with the optimiser of
    :func:`method_for`.

    ``max_steps`` caps the iterations of either optimiser (``None``: the fitter's default);
    ``lbfgs_max_steps``, when given, replaces it for L-BFGS fits."""
    import mixscale

    method = method_for(spec, train, lm_max_params)
    steps = lbfgs_max_steps if method == "lbfgs" and lbfgs_max_steps is not None else max_steps
    # The committed results were made by the dense solver without parameter ranges, nested
    # starts or gradient test; until the experiments are rerun with the structured solver (one
    # policy for every law, 64 restarts), they keep that configuration so that their numbers
    # match their code.
    return mixscale.fit(spec, train, validation=validation, n_restarts=n_restarts, seed=seed,
                        method=method, rtol=1e-8, use_structure=False, use_bounds=False,
                        nested=False, gtol=None,
                        max_steps=400 if steps is None and method == "lm" else steps)


def n_params(spec, table) -> int:
    """The number of parameters of ``spec``'s law when fitted to ``table``."""
    targets = spec.targets_for(table.train_domains, table.loss_domains)
    return spec.n_parameters(len(table.train_domains), len(targets))


def spec_label(value) -> str:
    """The label of a law as a results file stores it: a label (``"capacity (tied)"``) or a
    mapping (:meth:`mixscale.LawSpec.to_dict`, or ``{"name", "options"}``)."""
    from mixscale import LawSpec

    spec = LawSpec.from_dict(value) if isinstance(value, dict) else LawSpec.parse(value)
    return spec.label


def parse_args(name: str, description: str, argv: Sequence[str] | None,
               extra: callable | None = None) -> argparse.Namespace:
    """Parse the common options (``--quick``, ``--out``), set up logging to stderr, ask XLA for
    single-threaded CPU kernels (:data:`XLA_FLAGS`; a user's own ``XLA_FLAGS`` wins) and enable
    float64 in JAX. ``extra(parser)`` may add options of its own."""
    parser = argparse.ArgumentParser(prog=f"python -m experiments.{name}",
                                     description=description)
    parser.add_argument("--quick", action="store_true",
                        help="smoke configuration (seconds to a minute)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default figures/, or figures/quick/ with "
                             "--quick, so that a smoke run never overwrites the full results)")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = Path("figures") / "quick" if args.quick else Path("figures")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)
    logging.getLogger(name).setLevel(logging.INFO)
    os.environ.setdefault("XLA_FLAGS", XLA_FLAGS)  # read when JAX first starts its backend
    import jax

    jax.config.update("jax_enable_x64", True)
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def versions() -> dict[str, str]:
    """Versions of Python and the packages that set the numbers."""
    import equinox
    import jax
    import optax

    import mixscale

    return {"python": platform.python_version(), "numpy": np.__version__,
            "jax": jax.__version__, "equinox": equinox.__version__, "optax": optax.__version__,
            "mixscale": mixscale.__version__}


def _jsonable(obj):
    from mixscale import LawSpec

    if isinstance(obj, LawSpec):
        return obj.label
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    if hasattr(obj, "__array__"):  # jax arrays
        return _jsonable(np.asarray(obj))
    if isinstance(obj, float) and not np.isfinite(obj):
        return None if np.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def write_record(out: Path, name: str, config, results: dict, elapsed_s: float) -> Path:
    """Write ``out/<name>.json``: ``{"experiment", "config", "versions", "elapsed_s",
    "results"}`` (dataclasses, arrays and law specs converted; NaN written as null)."""
    record = {"experiment": name, "config": _jsonable(config), "versions": versions(),
              "elapsed_s": float(elapsed_s), "results": _jsonable(results)}
    path = Path(out) / f"{name}.json"
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return path


def write_section(out: Path, name: str, text: str) -> Path:
    """Write ``out/<name>.md``, the experiment's section of ``REPORT.md``."""
    path = Path(out) / f"{name}.md"
    path.write_text(text.rstrip() + "\n", encoding="utf-8")
    return path


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub markdown table; floats are written with 4 significant digits."""
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "—" if not np.isfinite(v) else f"{v:.4g}"
        return "—" if v is None else str(v)

    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def save_figure(fig, out: Path, filename: str) -> Path:
    """Save a matplotlib figure as a PNG (150 dpi, tight) under ``out`` and close it."""
    import matplotlib.pyplot as plt

    path = Path(out) / filename
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class Timer:
    """Wall-clock seconds since construction: ``Timer()()``."""

    def __init__(self):
        self.t0 = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.t0
