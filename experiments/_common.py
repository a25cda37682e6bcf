"""Plumbing shared by the experiments: command line, results files, report sections, figures
and the optimiser rule every fit follows.

Every experiment is a module ``experiments/<name>.py`` with a ``Config``, ``run`` and ``render``
and ``main(argv)`` handing them to :func:`experiments._harness.run_experiment`, which takes
``--quick`` (a smoke configuration of seconds to a minute), ``--out DIR`` (default
``figures/``; ``figures/quick/`` with ``--quick``) and ``--redraw``, and writes into ``DIR``:

* ``<name>.json`` — the results with the configuration and package versions (:func:`write_record`);
* ``<name>*.png`` — the figures, drawn from the results only
  (:func:`experiments._figures.save_figure`);
* ``<name>.md`` — its section of ``REPORT.md``: the figures and every number they show, generated
  from the results (:func:`write_section`).

Run one with ``python -m experiments.<name> [--quick]`` from the repository root;
``python -m experiments.reproduce`` runs them all and assembles ``REPORT.md``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import pickle
import platform
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from experiments import _xla_flags

__all__ = ["FIT_CACHE_VARIABLE", "N_RESTARTS", "QUICK_MAX_STEPS", "QUICK_XLA_FLAGS", "XLA_FLAGS",
           "directory_argument",
           "Timer", "fit_cache", "fit_law", "fit_laws", "fit_nested_first", "fit_record",
           "fit_stages", "markdown_table", "pct_mean_sd", "n_params", "parse_args",
           "reused_fit_seconds", "spec_label", "unfitted_laws_lines", "versions",
           "with_spectral", "write_record", "write_section"]

#: Single-threaded XLA CPU kernels: the experiments run many small vmapped problems, and on a
#: shared machine multi-threaded kernels spend most of their time waiting for each other
#: (measured: up to 10x slower under load). :mod:`experiments._xla_flags` says why every token
#: of it must be a ``--flag``.
XLA_FLAGS = _xla_flags.join(_xla_flags.SINGLE_THREADED)

#: A smoke run's flags (``--quick``): single-threaded kernels, compiled for compile speed — a
#: smoke run is mostly compilation (``python -m experiments.reproduce --quick`` 118 -> 54-59 s on
#: the 2-core machine; :mod:`experiments._xla_flags`).
QUICK_XLA_FLAGS = _xla_flags.join(_xla_flags.SINGLE_THREADED, _xla_flags.compile_speed_flags())


#: Restarts of every law fit in the experiments (the default of ``mixscale fit``).
N_RESTARTS = 64


def with_spectral(specs) -> tuple:
    """``specs`` followed by the spectral law (``docs/theory.md``), its ``"transfer"`` variant
    (shared tail ranks, §7) and its ``"dispersed"`` variant (``transfer`` with a learning
    frontier that is not sharp, §8), each law once.

    The spectral law is still a registry candidate (left out of :func:`mixscale.law_specs`, so
    not the default of ``mixscale fit``): every experiment names it through this. Its fits are
    the slowest of any law at 17 domains (``compare_laws.Config.not_fitted``), and a law added
    to a list after the experiment's full run can be fitted alone with ``--add-law``
    (:mod:`experiments._harness`)."""
    from mixscale import LawSpec

    return tuple(dict.fromkeys([*specs, LawSpec("spectral"),
                                LawSpec("spectral", variant="transfer"),
                                LawSpec("spectral", variant="dispersed")]))


def unfitted_laws_lines(name: str, laws, fitted_labels, quick: bool) -> list[str]:
    """The report lines naming the laws of an experiment's configuration (``laws``, its
    :class:`mixscale.LawSpec` list) that its record has not fitted (added to the list after the
    run), so that they show as not fitted, never as a silent gap; none for a quick run."""
    fitted = set(fitted_labels)
    missing = [] if quick else [s.label for s in laws if s.label not in fitted]
    if not missing:
        return []
    return [f"Laws of the experiment's configuration not yet fitted in this record: "
            f"{', '.join(missing)} (`python -m experiments.{name} --add-law LABEL` fits one "
            "alone and merges it).", ""]



#: Whether :func:`fit_law` starts from the nested variants and runs the polish and the kink
#: continuation (:func:`fit_stages`).
_STAGES = {"on": True}

#: LM's step cap in a ``--quick`` run (:func:`fit_stages` off): a smoke run checks the plumbing,
#: not the optimum, and a restart lost in a flat valley would otherwise hold its batch to the
#: fitter's 1000 steps (``law_vs_simulator``'s quick run: 31 -> 22 s).
QUICK_MAX_STEPS = 100


@contextlib.contextmanager
def fit_stages(enabled: bool):
    """Within the block, :func:`fit_law` fits the nested variants for starts and runs the polish
    and the kink continuation only if ``enabled``, and caps LM at :data:`QUICK_MAX_STEPS` steps
    if not. The harness turns them off for ``--quick`` runs: a smoke configuration checks the
    plumbing, and the stages (each nested variant is a fit of its own, with its own compiled
    solver; each kink continuation compiles seven programs) would double its time (the
    ablations' quick run: 51 s with the nested starts, 36 s without). The stages themselves
    are tested in ``tests/test_fit.py`` and ``tests/test_fit_structure.py``."""
    previous = _STAGES["on"]
    _STAGES["on"] = bool(enabled)
    try:
        yield
    finally:
        _STAGES["on"] = previous


#: The environment variable naming a fit cache (:func:`fit_cache`) for an experiment run without
#: ``--fit-cache``: how ``python -m experiments.reproduce --fit-cache DIR`` hands it to every
#: experiment, in its own process or not.
FIT_CACHE_VARIABLE = "MIXSCALE_FIT_CACHE"

#: The directory where :func:`fit_law` keeps its fits and finds them again (:func:`fit_cache`);
#: ``None``: no cache.
_FIT_CACHE = {"dir": None, "reused_s": 0.0}


@contextlib.contextmanager
def fit_cache(directory: str | os.PathLike | None):
    """Within the block, :func:`fit_law` keeps every fit it makes in ``directory`` and, asked
    for a fit it has kept, returns that instead of fitting again (``None``: no cache).

    This lets a run too long for one sitting be finished in several: a run stopped midway
    keeps the fits it finished, and the same command takes them up again; an ``--add-law`` run
    of a law whose nested variants an earlier run fitted (``capacity (decoupled)`` after
    ``capacity (full)``, with the same ``--fit-cache DIR``) starts from those fits instead of
    fitting them again.

    A fit is found only under the same inputs, by a SHA-256 key of everything that sets it
    (:func:`_fit_key`): the code of the ``mixscale`` package and of this module (not their
    comments and docstrings; of the law modules only the fitted law's own and those it
    imports, :func:`_code_digest`), the package versions, the law and its options, the training and
    validation rows (every array, the domain names and units), the restarts, seed, step cap,
    stages, and the laws and objectives of the nested fits it starts from. A change to any of
    them is a different key, so a cache cannot return a fit of other code or other rows. Each
    fit is one pickle ``<key>.pkl`` (the :class:`mixscale.FitResult` and the wall seconds it
    took), written to a partial file and renamed into place; the pickles are the user's own
    (unpickling runs code, so never point the cache at files from elsewhere). A fit returned
    from the cache carries ``timings["cached_wall_s"]``, the seconds it took when it was made,
    which :func:`fit_nested_first` records as its fit time; :func:`reused_fit_seconds` sums
    them, so that a record's run time counts the fits it took from the cache at what they cost."""
    previous = _FIT_CACHE["dir"]
    _FIT_CACHE["dir"] = None if directory is None else Path(directory)
    if directory is not None:
        Path(directory).mkdir(parents=True, exist_ok=True)
    try:
        yield
    finally:
        _FIT_CACHE["dir"] = previous


@functools.lru_cache(maxsize=1024)
def _code_text(source: str) -> str:
    """``source``'s syntax tree without its docstrings (comments and layout are not in it):
    what a change to the code changes and a change to its prose does not. Kept per source
    text: every law's :func:`_code_digest` reads the same package files (measured: parsing
    them again for each law took the cache-key tests 3 s each)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def _law_module_files() -> dict[Path, str]:
    """``{file: module name}`` of the modules of ``mixscale.laws`` that define a registered law
    (each law is one such file)."""
    import sys

    from mixscale import LAWS

    return {Path(sys.modules[cls.__module__].__file__).resolve(): cls.__module__
            for cls in LAWS.values()}


def _imported_law_files(path: Path, law_files) -> set[Path]:
    """The law modules that ``path`` imports relatively (``from ._additive import …``), and
    theirs, transitively, with ``path`` itself."""
    seen, todo = set(), [path]
    while todo:
        here = todo.pop()
        if here in seen:
            continue
        seen.add(here)
        for node in ast.walk(ast.parse(here.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                target = (here.parent / f"{node.module}.py").resolve()
                if target in law_files:
                    todo.append(target)
    return seen


@functools.cache
def _code_digest(law_module: str) -> bytes:
    """SHA-256 of the code that sets a fit of a law defined in the module ``law_module``: every
    ``.py`` file of the ``mixscale`` package but the modules of *other* laws (the law's own and
    the law modules it imports stay in), and this module, as syntax trees
    without docstrings (:func:`_code_text`: a change to a comment or a docstring keeps the
    cache), with the package versions (:func:`versions`). So a new or changed law keeps every
    other law's cached fits; a change to the fitter, the allocation or the laws' shared
    contract and terms changes them all."""
    import sys

    import mixscale

    h = hashlib.sha256()
    root = Path(mixscale.__file__).resolve().parent
    law_files = _law_module_files()
    own = _imported_law_files(Path(sys.modules[law_module].__file__).resolve(), law_files)
    for path in sorted(p.resolve() for p in root.rglob("*.py")):
        if path in law_files and path not in own:
            continue
        text = _code_text(path.read_text(encoding="utf-8"))
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + text.encode())
    h.update(b"experiments/_common.py\0" + _code_text(Path(__file__).read_text("utf-8")).encode())
    h.update(json.dumps(versions(), sort_keys=True).encode())
    return h.digest()


def _update_with_table(h, table) -> None:
    """Feed ``table``'s rows (arrays with shapes, domain names, units) to the hash ``h``."""
    if table is None:
        h.update(b"no table")
        return
    for x in (table.weights, table.model_size, table.tokens, table.losses):
        x = np.ascontiguousarray(np.asarray(x, dtype=np.float64))
        h.update(repr(x.shape).encode() + x.tobytes())
    h.update(json.dumps([list(table.train_domains), list(table.loss_domains),
                         float(table.size_unit), float(table.token_unit)]).encode())


def _numerics() -> dict:
    """What sets a fit's rounding besides its code: the XLA flags (multi-threaded CPU kernels
    sum in another order, and a rounding can flip a step's acceptance), 64-bit floats, and
    the backend that runs it."""
    import jax

    return {"XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
            "x64": bool(jax.config.read("jax_enable_x64")), "backend": jax.default_backend()}


def _fit_key(spec, train, validation, options: dict, nested) -> str:
    """The cache key of a fit (:func:`fit_cache`): hex SHA-256 of its code, the settings of the
    numerics it runs under (:func:`_numerics`), law, rows, options and nested starts."""
    import equinox as eqx
    import jax

    h = hashlib.sha256(_code_digest(spec.law_class.__module__))
    h.update(json.dumps(_numerics(), sort_keys=True).encode())
    h.update(json.dumps([spec.label, sorted((k, repr(v)) for k, v in
                                            dict(spec.law_options).items())]).encode())
    _update_with_table(h, train)
    _update_with_table(h, validation)
    h.update(json.dumps(options, sort_keys=True).encode())
    if isinstance(nested, Mapping):
        for label in sorted(nested):
            res = nested[label]
            h.update(label.encode() + repr(float(res.objective)).encode())
            for leaf in jax.tree_util.tree_leaves(eqx.filter(res.law, eqx.is_array)):
                h.update(np.ascontiguousarray(np.asarray(leaf, dtype=np.float64)).tobytes())
    else:
        h.update(repr(nested).encode())
    return h.hexdigest()


def reused_fit_seconds() -> float:
    """The seconds that the fits :func:`fit_law` has returned from the cache (:func:`fit_cache`)
    took when they were made, summed over this process."""
    return _FIT_CACHE["reused_s"]


def fit_law(spec, train, *, validation=None, n_restarts: int = N_RESTARTS, seed: int = 0,
            max_steps: int | None = None, nested=None):
    """:func:`mixscale.fit` of a :class:`mixscale.LawSpec` with the library's one policy for
    every law: Levenberg–Marquardt on the law's per-target structure, inside the law's
    parameter ranges, started also from the fitted variants nested in it, converged by the
    gradient test (:mod:`mixscale._lm`). ``max_steps`` caps LM's iterations (``None``: the
    fitter's default, 1000).

    Three stages follow the restarts so that the law a fit returns is an optimum wherever they
    can make it one (``benchmarks/bench_polish.py`` measures the three): the
    *polish* continues the restarts that the fit would return and that stopped at the step cap
    unconverged, for up to :data:`mixscale._fit.POLISH_FACTOR` (4) times the cap; the *finish*
    continues the returned restarts alone, where still unconverged at the end of the polish, for
    up to :data:`mixscale._fit.FINISH_FACTOR` (32) times the cap; the *kink continuation*
    (``smooth_kinks``) takes a best restart that stopped early on a kink of the law (the
    capacity allocation's head floor) through smoothed versions of the law back to the exact
    one, and keeps it if lower; a best restart still unconverged then is finished on its kinks
    (a law without kinks: on its smooth objective; Gauss–Newton and a second-order pass in turn
    while uncertified; its end kept if lower) and certified if it is a (Clarke) stationary
    point there (``FitResult.kink_certificate``,
    ``kink_kept``, :mod:`mixscale._kinks`). None of them can
    end above the plain fit. ``--quick`` runs skip them, and the nested starts, and cap LM at
    :data:`QUICK_MAX_STEPS` steps (:func:`fit_stages`).

    Every restart gets the whole step cap: a race (every restart for a quarter of the cap, then
    the polish for the best capped ones) was measured and not adopted. Racing 250 steps, then a
    polish of up to 4750 for the 16 best capped restarts, against this policy
    (``benchmarks/bench_race.py``: 64 restarts, the in-scale tables of
    ``benchmarks/bench_fit.py``, the 2-core machine): the best objective
    ended 5.4e-4 higher for the capacity law on Pile-4, 0.30 higher for its ``pooled`` variant
    there (another basin) and 3.4e-6 higher for the spectral law on SlimPajama-7 (another
    restart's minimum), within 7e-7 on the other two (capacity ``full`` and ``pooled`` on
    SlimPajama-7); the spectral fit's CPU time fell from 446 to 354 s. A restart's objective
    after a quarter of the cap does not tell which one ends lowest. Nor does it shrink the
    batch as restarts stop (``mixscale.fit(shrink_batch=True)``, 1.4–2× faster on the
    experiments' policy in ``benchmarks/bench_race.py --shrink``): the committed fits were made
    without it, and it can move a fit (rounding can flip a step's acceptance), so adopting it
    means refitting every record.

    ``nested``: fits of the variants nested in ``spec`` on the same rows (``{label:
    FitResult}``, :func:`fit_nested_first`), the nested starts instead of the fitter's own
    smaller fits of them; ``None``: the fitter fits them."""
    import mixscale
    from mixscale._fit import DEFAULT_MAX_STEPS, NO_STAGES, converging_stages

    cap = DEFAULT_MAX_STEPS["lm"] if max_steps is None else max_steps
    stages = _STAGES["on"]
    if not stages:
        max_steps = min(cap, QUICK_MAX_STEPS)
    nested = (True if nested is None else nested) if stages else False

    plan = converging_stages("lm", cap) if stages else NO_STAGES

    def fit():
        return mixscale.fit(spec, train, validation=validation, n_restarts=n_restarts,
                            seed=seed, max_steps=max_steps, nested=nested, **plan)

    directory = _FIT_CACHE["dir"]
    if directory is None:
        return fit()
    options = {"n_restarts": n_restarts, "seed": seed, "max_steps": max_steps, "cap": cap,
               "stages": stages}
    path = directory / f"{_fit_key(spec, train, validation, options, nested)}.pkl"
    if path.exists():
        with open(path, "rb") as fh:
            res, wall = pickle.load(fh)
        if not _ends_elsewhere_now(res):
            _FIT_CACHE["reused_s"] += wall
            return dataclasses.replace(res, timings={**res.timings, "cached_wall_s": wall})
    t0 = time.perf_counter()
    res = fit()
    wall = time.perf_counter() - t0
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(partial, "wb") as fh:
            pickle.dump((res, wall), fh)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return res


def _ends_elsewhere_now(res) -> bool:
    """Whether the present fitter would return another law than the kept fit ``res``: one made
    before an uncertified kink certificate's lower end was kept (``FitResult.kink_kept``; an
    older kept fit reads ``False``), or before the certificate's second-order pass, which runs
    where the first pass ends uncertified (``KinkCertificate.second_order_steps`` is ``None``
    there). Every stage before the certificate is as it was, so any other kept fit is what
    the present code returns."""
    cert = res.kink_certificate
    if cert is None or cert.certified:
        return False
    return ((cert.objective < cert.start_objective and not res.kink_kept)
            or cert.second_order_steps is None)


def fit_laws(specs, train, *, validation=None, n_restarts: int = N_RESTARTS, seed: int = 0,
             catch: bool = False) -> dict:
    """:func:`fit_law` of every law of ``specs`` on one set of rows, each started from these
    fits of the variants nested in it (:func:`fit_nested_first`), so that a table of them
    holds the nested check by construction.

    Returns:
        ``{spec: (FitResult, wall seconds)}``; with ``catch``, a fit that raises is returned as
        its exception (the experiment records it and goes on) and starts no other law.
    """
    def fit_one(spec, nested):
        try:
            return fit_law(spec, train, validation=validation, n_restarts=n_restarts, seed=seed,
                           nested=nested)
        except Exception as err:
            if not catch:
                raise
            return err

    return fit_nested_first(specs, fit_one)


def fit_nested_first(specs, fit_one) -> dict:
    """Fit every law of ``specs`` (:class:`mixscale.LawSpec`) on one set of rows, each after
    the variants nested in it: ``fit_one(spec, nested)`` makes one fit, given ``nested``, the
    fits so far of the variants nested in ``spec`` (``{label: FitResult}``, for
    :func:`fit_law`'s ``nested``), and returns its :class:`mixscale.FitResult`.

    A law thus starts from the experiment's own fits of its nested variants, with every
    restart, and cannot end above them: the nested check of a results table holds by
    construction, where the fitter's own nested fits (a quarter of the restarts) could miss a
    variant's best basin. A nested variant that ``specs`` lacks (an ``--add-law`` run of one
    law) is fitted too, for its start, and not returned. With the stages off (``--quick``,
    :func:`fit_stages`) no law starts from nested variants and ``specs`` are fitted in order.

    ``fit_one`` may return an exception instead (a failed fit that the experiment records and
    goes on): it is then no variant's start.

    Returns:
        ``{spec: (FitResult, wall seconds of its own fit)}`` for every spec of ``specs``.
    """

    fits: dict = {}
    wanted = list(dict.fromkeys(specs))

    def visit(spec, path=()):
        if spec in fits:
            return
        if spec in path:
            raise ValueError(f"nested variants form a cycle: {[s.label for s in path]}")
        inner = spec.nested_specs() if _STAGES["on"] else ()
        for variant in inner:
            visit(variant, (*path, spec))
        t0 = time.perf_counter()
        res = fit_one(spec, {v.label: fits[v][0] for v in inner
                             if not isinstance(fits[v][0], Exception)})
        elapsed = time.perf_counter() - t0
        cached = getattr(res, "timings", {}).get("cached_wall_s")
        if cached is not None:  # a fit from the cache (fit_cache): the seconds it took then
            elapsed = cached
        fits[spec] = (res, elapsed)

    for spec in wanted:
        visit(spec)
    return {spec: fits[spec] for spec in wanted}


def fit_record(res) -> dict:
    """What every experiment records of a fit's convergence: whether the returned law passed
    the gradient test, the share of restarts that did, the parameters on a range bound, the
    training objective, how many restarts the polish and the finish continued (a record
    without ``finished`` was made before the finish existed), whether the kink
    continuation lowered the fit, whether the kink certificate certified it and how many steps
    it took off the kinks (:func:`fit_law`; a record without ``kink_escapes`` was certified,
    if at all, by the certificate before it could step off a kink or hold a bound against its
    tangent steps), whether the certificate's end, lower, replaced the law (``kink_kept``,
    certified or not; a record without it was made when only a certified end was kept), the
    accepted steps of its second-order pass (``kink_second_order_steps``: ``None`` where the
    pass did not run; a record without it was made before the pass existed), and each nested
    variant's objective (the law's must not exceed them)."""
    return {"law_converged": bool(res.law_converged),
            "converged": float(np.mean(res.converged)),
            "at_bounds": int(res.at_bounds), "objective": float(res.objective),
            "polished": len(res.polished), "finished": len(res.finished),
            "kink_smoothed": bool(res.kink_smoothed),
            "kink_certified": bool(res.kink_certificate is not None
                                   and res.kink_certificate.certified),
            "kink_escapes": (0 if res.kink_certificate is None
                             else int(res.kink_certificate.escapes)),
            "kink_kept": bool(res.kink_kept),
            "kink_second_order_steps": (None if res.kink_certificate is None
                                        else res.kink_certificate.second_order_steps),
            "nested_objectives": {k: float(v) for k, v in res.nested_objectives.items()},
            "nested_ok": bool(all(res.objective <= v * (1 + 1e-9)
                                  for v in res.nested_objectives.values()))}


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


def directory_argument(text: str) -> Path:
    """An argparse type: a directory path, not empty (``Path("")`` is the current directory,
    which an empty shell variable would then name without a word) and not an existing file
    (it may not exist yet)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a directory, got ''")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: a file, not a directory")
    return path


def parse_args(name: str, description: str, argv: Sequence[str] | None,
               extra: callable | None = None) -> argparse.Namespace:
    """Parse the common options (``--quick``, ``--out``), set up logging to stderr, ask XLA for
    single-threaded CPU kernels (:data:`XLA_FLAGS`; with ``--quick`` compiled for compile speed,
    :data:`QUICK_XLA_FLAGS`; a user's own ``XLA_FLAGS`` wins) and enable float64 in JAX.
    ``extra(parser)`` may add options of its own."""
    parser = argparse.ArgumentParser(prog=f"python -m experiments.{name}",
                                     description=description)
    parser.add_argument("--quick", action="store_true",
                        help="smoke configuration (seconds to a minute)")
    parser.add_argument("--out", type=directory_argument, default=None,
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
    # read when JAX first starts its backend
    os.environ.setdefault("XLA_FLAGS", QUICK_XLA_FLAGS if args.quick else XLA_FLAGS)
    import jax

    jax.config.update("jax_enable_x64", True)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file on its path, no permission
        parser.error(f"--out {args.out}: cannot make the directory ({err.strerror})")
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


def write_record(out: Path, name: str, config, results: dict, elapsed_s: float, *,
                 added: list | None = None) -> Path:
    """Write ``out/<name>.json``: ``{"experiment", "config", "versions", "elapsed_s",
    "results"}`` (dataclasses, arrays and law specs converted; NaN written as null), and
    ``"added"`` (laws fitted later and merged in, ``experiments._harness``) if given."""
    record = {"experiment": name, "config": _jsonable(config), "versions": versions(),
              "elapsed_s": float(elapsed_s), "results": _jsonable(results)}
    if added:
        record["added"] = _jsonable(added)
    path = Path(out) / f"{name}.json"
    # written whole, then renamed over the record: a reader (another run merging its laws)
    # never sees a half-written file
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_text(dumps_record(record) + "\n", encoding="utf-8")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def record_lock(out: Path, name: str):
    """Hold an exclusive lock on ``out/<name>.json`` (a lock file beside it, ``fcntl.flock``)
    while a run reads, merges and writes the record, so that runs adding laws to one record
    at once do not overwrite each other's rows. Where ``fcntl`` is missing (Windows) nothing
    is locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(Path(out) / f".{name}.lock", "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


#: A JSON array of numbers (or nulls) only, as ``json.dumps(indent=1)`` spreads it over lines.
_NUMBER_ARRAY = re.compile(r"\[\n[ ]*(?:(?:-?[0-9][0-9.eE+-]*|null),\n[ ]*)*"
                           r"(?:-?[0-9][0-9.eE+-]*|null)\n[ ]*\]")


def dumps_record(record: dict) -> str:
    """``json.dumps(record, indent=1)`` with every array of plain numbers on one line: nested
    objects stay one key a line (readable diffs), while the results' long columns of losses and
    predictions do not take a line per number (``real_extrapolation``'s record 2.2 -> about 1
    MB). Only whitespace between tokens changes (a JSON string never holds a raw newline, so no
    string's text is touched): ``json.loads`` returns the same object."""
    def one_line(match: re.Match) -> str:
        return "[" + ", ".join(t.rstrip(",") for t in match.group(0)[1:-1].split()) + "]"

    return _NUMBER_ARRAY.sub(one_line, json.dumps(record, indent=1))


def write_section(out: Path, name: str, text: str) -> Path:
    """Write ``out/<name>.md``, the experiment's section of ``REPORT.md``."""
    path = Path(out) / f"{name}.md"
    path.write_text(text.rstrip() + "\n", encoding="utf-8")
    return path


def pct_mean_sd(values) -> str:
    """Fractions as a percent cell: ``"mean ± sd"`` (sample sd), the mean alone for one value,
    ``""`` for none."""
    v = 100 * np.asarray(values, dtype=float)
    if v.size == 0:
        return ""
    return f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" if v.size > 1 else f"{v.mean():.2f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub markdown table; floats are written with 4 significant digits."""
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "—" if not np.isfinite(v) else f"{v:.4g}"
        return "—" if v is None else str(v)

    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


class Timer:
    """Wall-clock seconds since construction: ``Timer()()``."""

    def __init__(self):
        self.t0 = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.t0
