r"""Fitting any law to a loss table: many random restarts, batched with ``vmap``, compiled once.

:func:`fit` draws ``n_restarts`` initial laws from the law class's ``init`` (deterministic given
``seed``), minimises the Huber objective on relative residuals of every restart
(:mod:`mixscale._objective`) with the chosen optimiser, and keeps the restart with the lowest final
objective. The pieces:

* :mod:`mixscale._objective`: the objective ``J`` (mean Huber loss of relative residuals over the
  observed entries), its least-squares form, the training data as arrays;
* :mod:`mixscale._lm`: ``method="lm"`` (default), Levenberg–Marquardt working through a queue of
  restarts on ``chunk`` vectorised slots;
* :mod:`mixscale._lbfgs`: ``method="lbfgs"``, optax L-BFGS on chunks of ``chunk`` restarts;
* :mod:`mixscale._evaluate`: predictions and error metrics of a law on a table.

Power-law fits are badly conditioned: LM converges in tens to hundreds of iterations where a
first-order method needs thousands (measured in ``benchmarks/bench_fit.py``); L-BFGS is there for
laws with many parameters, where LM's dense ``P × P`` solve gets expensive.

The optimiser kernels are compiled once for a law class, its options, the table's shape and the
``vmap`` width ``min(chunk, n_restarts)`` (``rtol``, ``gtol`` and ``max_steps`` are run-time
values); later calls that agree on these reuse them (the small function drawing the initial
laws is compiled once per law, options and training rows). A restart's result does not depend
on the others; it can depend on ``chunk`` by rounding (see :mod:`mixscale._lm`).

With ``n_bootstrap = B``, the point fit is followed by ``B`` refits on mixture-resampled
replicates of the table (:mod:`mixscale._bootstrap`), run through the same compiled solver and
kept in :attr:`FitResult.bootstrap`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._blocks import parameter_owners
from ._bootstrap import MAX_REPLICATES, MIN_REPLICATES, Bootstrap, run_bootstrap
from ._bounds import bound_trees, count_at_bounds
from ._checks import MAX_RESTARTS, MAX_SEED, MAX_TRAIN_DOMAINS, integer, number
from ._evaluate import check_domains, evaluate, measured_targets, predict_table
from ._kinks import KinkCertificate, certify_law
from ._lbfgs import solve_lbfgs
from ._linalg import check_law_primitives
from ._lm import GTOL, solve_lm
from ._memory import release_compiled_programs
from ._objective import DEFAULT_HUBER_DELTA, Layout, Solution, first_restart, prepare_data
from .data import LossTable, TableError, mixture_ids
from .laws._base import AbstractLaw, DataSummary, parameter_count
from .laws._spec import LawSpec, as_law_spec

__all__ = ["FitProgress", "FitResult", "fit", "DEFAULT_HUBER_DELTA", "converging_stages"]

_SOLVERS = {"lm": solve_lm, "lbfgs": solve_lbfgs}
#: Default ``max_steps`` of each method.
DEFAULT_MAX_STEPS = {"lm": 1000, "lbfgs": 5000}
_RTOL = {"lm": 1e-12, "lbfgs": 1e-8}

#: The polish's budget in the converging policy (:func:`converging_stages`), as a multiple of
#: the step cap: a restart that the fit would return and that reached the cap unconverged
#: continues for up to this many times the cap (``fit``'s ``polish_steps``; 4000 steps at the
#: default cap of 1000).
POLISH_FACTOR = 4

#: The finish's budget in the converging policy (:func:`converging_stages`), as a multiple of
#: the step cap: a restart that the fit returns and that is still unconverged at the end of the
#: polish continues alone for up to this many times the cap (``fit``'s ``finish_steps``; 32,000
#: steps at the default cap of 1000). Measured on the joint law's in-scale Pile-4 split 1 (84
#: parameters, 68 training entries): its best restart was still creeping after the polish
#: (objective 4.09e-8) and passed the gradient test within the finish (3.95e-8).
FINISH_FACTOR = 32


#: ``fit``'s keyword arguments with none of the stages after the restarts (a plain fit).
NO_STAGES = {"polish_steps": 0, "finish_steps": 0, "smooth_kinks": False}


def converging_stages(method: str = "lm", max_steps: int | None = None) -> dict[str, Any]:
    """:func:`fit`'s keyword arguments for the stages after the restarts in the library's
    converging policy, the one the experiments and ``mixscale fit`` use: the polish
    (:data:`POLISH_FACTOR` times the cap), the finish (:data:`FINISH_FACTOR` times the cap) and
    the kink continuation, for Levenberg–Marquardt; none for L-BFGS (they continue LM
    restarts). Each acts only on a restart the fit would return that its own test shows
    unconverged, so a fit whose returned restarts converge costs the same with them.

    ``max_steps``: the fit's step cap (``None``: the method's default,
    :data:`DEFAULT_MAX_STEPS`). Returns ``{"polish_steps", "finish_steps", "smooth_kinks"}``."""
    if method not in DEFAULT_MAX_STEPS:
        raise ValueError(f"method must be one of {sorted(DEFAULT_MAX_STEPS)}, got {method!r}")
    if method != "lm":
        return dict(NO_STAGES)
    cap = DEFAULT_MAX_STEPS[method] if max_steps is None else int(max_steps)
    return {"polish_steps": POLISH_FACTOR * cap, "finish_steps": FINISH_FACTOR * cap,
            "smooth_kinks": True}


@dataclasses.dataclass(frozen=True)
class FitProgress:
    """Passed to ``fit``'s ``progress`` callback when the optimiser starts and as restarts
    finish.

    Attributes:
        done: restarts finished so far (0 in the first call, when the optimiser starts).
        n_restarts: restarts in all.
        best_objective: lowest final objective among the finished restarts.
        elapsed_s: wall seconds since the optimiser started.
        stage: ``"restarts"`` (the point fit; ``"geodesic restarts"`` its second pass with
            ``geodesic="both"``), ``"polish"`` (``polish_steps``: ``done`` of
            ``n_restarts`` continued restarts), ``"finish"`` (``finish_steps``: the same, for
            the returned restarts), ``"kinks"`` (``smooth_kinks``: ``done`` of
            ``n_restarts`` stages) or ``"bootstrap"`` (the replicates' refits; then
            ``done`` and ``n_restarts`` count replicates).
    """

    done: int
    n_restarts: int
    best_objective: float
    elapsed_s: float
    stage: str = "restarts"


@dataclasses.dataclass(frozen=True, eq=False)
class FitResult:
    """A fitted law and how it was obtained.

    Attributes:
        law: the best restart's law (lowest final training objective); per target for a law
            fitted as one problem per target (see ``per_target_restarts``).
        law_options: the options the law class was initialised with (:attr:`spec` holds the
            law and its options as one :class:`mixscale.LawSpec`).
        targets: the loss domains the law predicts (output order of ``law.predict``).
        train_domains: the training domains (order of ``h``).
        size_unit, token_unit: units of ``N`` and ``D`` the law expects (from the table).
        train_metrics, validation_metrics: see :func:`mixscale.error_metrics`
            (``validation_metrics`` is ``None`` without a validation table).
        objectives: ``(R,)`` final training objective of every restart (``inf`` if it failed).
        converged: ``(R,)`` whether each restart met the stopping rule before ``max_steps``.
        steps: ``(R,)`` iterations each restart took, of whichever optimiser ran (LM counts
            rejected steps too; an L-BFGS iteration includes its line search).
        best: index of the chosen restart.
        n_params: number of fitted scalar parameters.
        notes: remarks for the user (e.g. loss columns the law cannot predict).
        method: the optimiser used (``"lm"`` or ``"lbfgs"``).
        timings: ``total_s``, wall seconds of the fit (compilation included on a first call).
        at_bounds: how many of the best law's parameters lie on a bound of their range
            (:meth:`mixscale.laws.AbstractLaw.parameter_bounds`).
        per_target_restarts: for a law fitted as one problem per target (no shared parameter,
            structured LM), the restart each target's parameters come from; ``law`` combines
            them, so its objective can be below ``objectives[best]``. ``None`` otherwise.
        law_converged: whether the returned ``law`` met the convergence test: the best
            restart's, or for a law fitted per target, each target's chosen restart's.
        gradient_cosines: ``(R,)`` each restart's first-order optimality measure at its end
            (the largest over its problems; see :mod:`mixscale._lm`), ``None`` for L-BFGS.
        objective: the training objective ``J`` of the returned :attr:`law` (for a law fitted
            per target, of its combination of restarts).
        nested_objectives: ``{label: J}``, the training objective of each nested variant's
            fit (:meth:`mixscale.laws.AbstractLaw.nested`) whose embedding was a start of this
            one; empty if none.
        bootstrap: the refits on resampled mixtures (:class:`mixscale.Bootstrap`), when fitted
            with ``n_bootstrap > 0``; else ``None``.
        polished: the restarts that the polish continued (``polish_steps``); their
            :attr:`steps` count both stages.
        finished: the returned restarts that the finish continued (``finish_steps``); their
            :attr:`steps` count every stage.
        kink_smoothed: whether the kink continuation (``smooth_kinks``) lowered the best
            restart (its :attr:`steps` then count every stage).
        kink_certificate: when the best restart was still unconverged after the continuation
            (for a law without kinks: after the finish), the certificate's outcome
            (:class:`mixscale._kinks.KinkCertificate`); its end replaces the returned law
            (and its restart's objective) wherever it is lower (:attr:`kink_kept`; its steps
            only descend), and counts as converged if certified: a first-order (Clarke)
            stationary point on the kinks. ``None`` otherwise.
        kink_kept: whether the certificate's end, lower than the law it started from,
            replaced it (certified or not; a fit made before uncertified ends were kept has
            ``False`` here).
        fitted_scales: ``{"model_size": (lo, hi), "tokens": (lo, hi)}``, the smallest and
            largest model size (parameters) and token budget among the rows fitted, in the
            table's raw units (not law units); ``None`` for a fit file written before they
            were recorded. :meth:`extrapolation_notes` reads them.
        fitted_weight_max: ``(K,)`` the largest weight each training domain had in the rows
            fitted; ``None`` for a fit file written before it was recorded. A mixture beyond
            it is an extrapolation in the mixture (:func:`mixscale._mixture.mixture_notes`).
    """

    law: AbstractLaw
    law_options: Mapping[str, Any]
    targets: tuple[str, ...]
    train_domains: tuple[str, ...]
    size_unit: float
    token_unit: float
    train_metrics: dict
    validation_metrics: dict | None
    objectives: np.ndarray
    converged: np.ndarray
    steps: np.ndarray
    best: int
    n_params: int
    notes: tuple[str, ...]
    method: str
    timings: Mapping[str, float]
    at_bounds: int = 0
    per_target_restarts: tuple[int, ...] | None = None
    law_converged: bool = False
    gradient_cosines: np.ndarray | None = None
    nested_objectives: Mapping[str, float] = dataclasses.field(default_factory=dict)
    objective: float = float("nan")
    bootstrap: Bootstrap | None = None
    polished: tuple[int, ...] = ()
    finished: tuple[int, ...] = ()
    kink_smoothed: bool = False
    kink_certificate: KinkCertificate | None = None
    kink_kept: bool = False
    fitted_scales: Mapping[str, tuple[float, float]] | None = None
    fitted_weight_max: tuple[float, ...] | None = None

    @property
    def spec(self) -> LawSpec:
        """The fitted law and its options."""
        return LawSpec(type(self.law).name, **dict(self.law_options))

    def evaluate(self, table: LossTable) -> dict:
        """Error metrics of this law on every run of ``table`` (e.g. new runs); see
        :func:`mixscale.evaluate`."""
        return evaluate(self.law, table, self.targets, self.train_domains, self.size_unit,
                        self.token_unit)

    def extrapolation_notes(self, model_size, tokens) -> list[str]:
        """Remarks on using this fit at ``model_size`` parameters and ``tokens`` tokens (raw
        counts; numbers, or arrays for a table's rows): for each axis, a note when the fitted
        rows had one value there and these differ (the law's dependence on that axis was not
        identified by the data: the prediction rests on the law's form and parameter ranges
        alone), or when they reach beyond the fitted range (how many times the largest, or
        below the smallest); for a law without model-size or token terms, one note when any
        value differs from the scale it was fitted at (it predicts that scale's losses
        everywhere). Empty when every value lies within the fitted ranges, or when the ranges
        are unknown (:attr:`fitted_scales`)."""
        given = {}
        for axis, values in (("model_size", model_size), ("tokens", tokens)):
            values = np.atleast_1d(np.asarray(values, dtype=np.float64))
            if values.size == 0 or not np.all(np.isfinite(values) & (values > 0)):
                raise ValueError(f"{axis} must be finite positive numbers, got {values}")
            given[axis] = values
        if self.fitted_scales is None:
            return []
        notes = []
        if not type(self.law).uses_scale:  # one fitted scale (fit refuses more)
            scale = {axis: self.fitted_scales[axis][0] for axis in given}
            if not all(np.allclose(given[axis], scale[axis], rtol=1e-9, atol=0.0)
                       for axis in given):
                notes.append(f"law {type(self.law).name!r} has no model-size or token terms: "
                             f"it predicts the losses of the scale it was fitted at "
                             f"({scale['model_size']:.4g} parameters, {scale['tokens']:.4g} "
                             "tokens) at every scale")
            return notes
        for axis, what in (("model_size", "model size"), ("tokens", "token budget")):
            values = given[axis]
            lo, hi = self.fitted_scales[axis]
            unit = "parameters" if axis == "model_size" else "tokens"
            top, bottom = float(values.max()), float(values.min())
            if lo == hi:
                other = np.unique(values[~np.isclose(values, lo, rtol=1e-9, atol=0.0)])
                if other.size:
                    at = (f"{other[0]:.4g} {unit}" if other.size == 1 else
                          f"{other.size} other {what}s ({other[0]:.4g}–{other[-1]:.4g} {unit})")
                    notes.append(f"the fit saw one {what} ({lo:.4g} {unit}): the data did not "
                                 f"identify how the law changes with it, so its predictions "
                                 f"at {at} rest on its form and parameter ranges alone")
                continue
            if top > hi * (1 + 1e-9):
                notes.append(f"{top:.4g} {unit} is {top / hi:.3g} times the largest {what} "
                             f"fitted ({hi:.4g}): an extrapolation")
            if bottom < lo * (1 - 1e-9):
                notes.append(f"{bottom:.4g} {unit} is below the smallest {what} fitted "
                             f"({lo:.4g}, {lo / bottom:.3g} times it): an extrapolation")
        return notes

    def at_step_limit(self, max_steps: int, polish_steps: int = 0,
                      finish_steps: int = 0) -> bool:
        """Whether a restart this fit returns (the best; for a law fitted per target, each
        target's) stopped at its step limit (:func:`_step_limits`) under the step budgets it
        was fitted with: more steps would continue it."""
        restarts = (set(self.per_target_restarts) if self.per_target_restarts is not None
                    else {self.best})
        limits = _step_limits(len(self.steps), max_steps, polish_steps, self.polished,
                              finish_steps, self.finished)
        return any(self.steps[r] >= limits[r] for r in restarts)

    def predict(self, table: LossTable) -> np.ndarray:
        """Predicted losses ``(n, M)`` of this law's targets for every run of ``table``."""
        return predict_table(self.law, table, self.train_domains, self.size_unit,
                             self.token_unit)


# ---------------------------------------------------------------------------- helpers
def _targets_and_notes(law_class, table: LossTable, options) -> tuple[tuple[str, ...], list]:
    targets = law_class.targets_for(table.train_domains, table.loss_domains, **options)
    if not targets:
        raise TableError(f"{table.name}: law {law_class.name!r} can predict none of the loss "
                         f"domains {list(table.loss_domains)}")
    notes = []
    left_out = [s for s in table.loss_domains if s not in targets]
    if left_out:
        notes.append(f"law {law_class.name!r} cannot predict {left_out} (not training domains); "
                     "those columns are ignored")
    return tuple(targets), notes


def _unmeasured_notes(targets, observed: np.ndarray) -> list[str]:
    """A note counting the target losses not measured (``NaN``: empty or ``NA`` cells of a
    CSV), per target, which the fit leaves out: so that a user sees what was masked."""
    missing = (~observed).sum(axis=0)
    if not missing.any():
        return []
    which = ", ".join(f"{t} {int(n)}" for t, n in zip(targets, missing, strict=True) if n)
    return [f"{int(missing.sum())} of {observed.size} target losses are not measured ({which}); "
            "the fit leaves them out"]


def _underdetermined_notes(law_class, params, targets, observed: np.ndarray) -> list[str]:
    """A note when the law has at least as many parameters as observed losses to fit them:
    per target for a law whose every parameter belongs to one target (``per_target_fields``),
    else for the whole table. Such a fit can interpolate its data (training error ~0), so its
    held-out error says little about the law."""
    owners = parameter_owners(params, law_class.per_target_fields, len(targets))
    n_obs = observed.sum(axis=0)
    if np.all(owners >= 0):
        per_target = np.bincount(owners, minlength=len(targets))
        short = [t for t, p, n in zip(targets, per_target, n_obs, strict=True) if p >= n]
        if short:
            return [f"law {law_class.name!r} has {int(per_target.max())} parameters per target "
                    f"and targets {short} have no more observed losses than their parameters "
                    f"(as few as {int(n_obs.min())}): the fit can interpolate them, so its "
                    "training error means little and its held-out error may be large; use more "
                    "runs or a law with fewer parameters"]
        return []
    if owners.size >= n_obs.sum():
        return [f"law {law_class.name!r} has {owners.size} parameters for {int(n_obs.sum())} "
                "observed losses: the fit can interpolate them, so its training error means "
                "little; use more runs or a law with fewer parameters"]
    return []


def _unexplored_domain_notes(table: LossTable) -> list[str]:
    """A note naming the training domains whose weight is ``0`` in every fitted run (with a
    measured loss): the data
    cannot show how their weight changes any loss, so predictions and optimal mixtures that put
    weight on them rest on the law's form alone. Measured: the capacity law fitted to a table of
    three domains whose third was never trained recommended 15 % of it, predicting its loss at
    2.29 where every run measured 4.0–4.15."""
    measured = _measured_rows(table)
    never = [d for d, w in zip(table.train_domains, np.asarray(table.weights)[measured].T,
                               strict=True) if not np.any(w > 0)]
    if not never:
        return []
    return [f"training domain(s) {never} have weight 0 in every run: the data cannot show how "
            "their weight changes the losses, so predictions and optimal mixtures with weight "
            "on them rest on the law's form alone (`optimize --upper DOMAIN=0` leaves them "
            "out)"]


def _duplicate_run_notes(table: LossTable) -> list[str]:
    """A note when runs repeat: rows with the same mixture, size and tokens (a table
    concatenated twice, or the same checkpoint logged twice). Such rows count as that many runs
    in the objective and the metrics; identical ones (the same losses too) are said apart from
    repeats with other losses (seeds). No bundled table has any."""
    inputs = np.concatenate([np.asarray(table.weights), np.asarray(table.model_size)[:, None],
                             np.asarray(table.tokens)[:, None]], axis=1)
    repeated = len(inputs) - len(np.unique(inputs, axis=0))
    if not repeated:
        return []
    full = np.concatenate([inputs, np.where(np.isfinite(table.losses), table.losses, -1.0)],
                          axis=1)
    identical = len(full) - len(np.unique(full, axis=0))
    return [f"{repeated} run(s) repeat another's mixture, size and tokens ({identical} with the "
            "same losses too): each counts as a run of its own in the fit and the metrics; "
            "leave out copies of the same run (a table concatenated twice), keep repeats with "
            "other seeds"]


def _one_scale_notes(law_class, table: LossTable) -> list[str]:
    """A note for a law with model-size or token terms fitted on a table with one model size
    (or one token budget): the data cannot identify how the law's losses change along that
    axis, so its predictions at another size (budget) rest on its form and parameter ranges
    alone. Measured: the spectral law's ``transfer`` variant fitted on SlimPajama-7's 122M runs
    alone predicted the 680M losses at half their value, while fitting the 122M rows to 1.4 %
    (``figures/real_extrapolation.md``)."""
    if not law_class.uses_scale:
        return []
    notes = []
    for axis, values, unit, what in (("model size", table.model_size, table.size_unit, "sizes"),
                                     ("token budget", table.tokens, table.token_unit,
                                      "budgets")):
        distinct = np.unique(np.asarray(values))
        if distinct.size == 1:
            notes.append(f"every row has one {axis} ({float(distinct[0]) * unit:.4g}); the "
                         f"data cannot identify how law {law_class.name!r} changes with it, so its "
                         f"predictions at other {what} rest on its form and parameter ranges "
                         f"alone: fit on two or more {what} to extrapolate along it")
    return notes


_INIT_CACHE: dict = {}
_INIT_CACHE_SIZE = 64


def _initial_laws(law_class, summary: DataSummary, options) -> Callable:
    """The compiled, vmapped ``law_class.init(key, summary, **options)`` over a batch of keys.

    ``init`` reads the summary as Python numbers (it sets the draws' ranges), so the summary is
    part of the compiled function; it is cached by the summary's values and the options, so
    that refits on the same rows (nested variants, tests, bootstrap callers) compile it once."""
    key = (law_class, tuple(sorted((k, repr(v)) for k, v in options.items())),
           summary.train_domains, summary.targets, np.asarray(summary.loss_min).tobytes(),
           np.asarray(summary.loss_max).tobytes(), tuple(summary.model_size),
           tuple(summary.tokens))
    fn = _INIT_CACHE.get(key)
    if fn is None:
        if len(_INIT_CACHE) >= _INIT_CACHE_SIZE:
            _INIT_CACHE.pop(next(iter(_INIT_CACHE)))
        fn = eqx.filter_jit(eqx.filter_vmap(lambda k: law_class.init(k, summary, **options)))
        _INIT_CACHE[key] = fn
    return fn


def _with_starts(params0, static, starts: Sequence[AbstractLaw], law_class):
    """``params0`` (leaves ``(R, ...)``) with the parameters of ``starts`` appended."""
    reference = jax.tree_util.tree_structure(
        eqx.combine(first_restart(params0), static))
    extra = []
    for i, law in enumerate(starts):
        if not isinstance(law, law_class) or jax.tree_util.tree_structure(law) != reference:
            raise ValueError(f"starts[{i}] must be a {law_class.__name__} with the options and "
                             "targets of this fit (embed a nested variant first)")
        params, _ = eqx.partition(law, eqx.is_inexact_array)
        shapes_ok = all(np.shape(a) == np.shape(b)[1:] for a, b in zip(
            jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(params0), strict=True))
        if not shapes_ok:
            raise ValueError(f"starts[{i}] has parameters of other shapes than this fit's")
        extra.append(params)
    return jax.tree_util.tree_map(lambda x, *e: jnp.concatenate([x, jnp.stack(e)]), params0,
                                  *extra)


def _nested_option(nested) -> tuple[bool, dict]:
    """``fit``'s ``nested`` argument as (whether to start from nested variants, the fits of
    them given by the caller)."""
    if isinstance(nested, (bool, np.bool_)):
        return bool(nested), {}
    if isinstance(nested, Mapping):
        return True, dict(nested)
    raise TypeError(f"nested must be True, False or a mapping of labels to fits, got "
                    f"{type(nested).__name__}")


def _check_nested_fit(given, label, variants, spec, table: LossTable, targets) -> None:
    """Raise ``ValueError`` unless ``given`` can be the fit of the nested variant ``label`` of
    ``spec`` on ``table``'s rows (``variants``: the nested variants by label)."""
    where = f"nested[{label!r}]"
    if label not in variants:
        raise ValueError(f"{where}: {label!r} is not a variant nested in {spec.label!r} "
                         f"(nested: {sorted(variants) or 'none'})")
    if not isinstance(given, FitResult):
        raise TypeError(f"{where} must be a FitResult, got {type(given).__name__}")
    problems = []
    if given.spec.label != label:
        problems.append(f"it is a fit of {given.spec.label!r}")
    if tuple(given.train_domains) != tuple(table.train_domains):
        problems.append("its training domains differ")
    if tuple(given.targets) != tuple(targets):
        problems.append(f"its targets {list(given.targets)} are not {list(targets)}")
    if (given.size_unit, given.token_unit) != (table.size_unit, table.token_unit):
        problems.append("its units differ")
    n_observed = int(np.isfinite(table.losses).sum())
    if given.train_metrics.get("n") != n_observed:
        problems.append(f"it was fitted on {given.train_metrics.get('n')} observed losses, "
                        f"not {n_observed}")
    if problems:
        raise ValueError(f"{where} is not a fit on this fit's rows: {'; '.join(problems)}")


def data_summary(table: LossTable) -> DataSummary:
    """What a law's ``init`` and ``parameter_bounds`` see of ``table`` (its loss columns are the
    targets, as :func:`mixscale._objective.prepare_data` returns it): the domains, each target's
    loss range, and the ranges of model size and tokens."""
    y = table.losses
    return DataSummary(
        train_domains=tuple(table.train_domains), targets=tuple(table.loss_domains),
        loss_min=np.nanmin(y, axis=0), loss_max=np.nanmax(y, axis=0),
        model_size=(float(table.model_size.min()), float(table.model_size.max())),
        tokens=(float(table.tokens.min()), float(table.tokens.max())))


def _concatenate_solutions(solutions: Sequence[Solution]) -> Solution:
    """One :class:`Solution` of the restarts of ``solutions``, in order."""
    if len(solutions) == 1:
        return solutions[0]

    def cat(*parts):
        return None if parts[0] is None else np.concatenate([np.asarray(x) for x in parts])

    return Solution(
        params=jax.tree_util.tree_map(lambda *x: jnp.concatenate(x),
                                      *[s.params for s in solutions]),
        objectives=cat(*[s.objectives for s in solutions]),
        converged=cat(*[s.converged for s in solutions]),
        steps=cat(*[s.steps for s in solutions]),
        group_objectives=cat(*[s.group_objectives for s in solutions]),
        gradient_cosines=cat(*[s.gradient_cosines for s in solutions]))


def _step_limits(n_restarts: int, max_steps: int, polish_steps: int = 0, polished=(),
                 finish_steps: int = 0, finished=()) -> np.ndarray:
    """``(R,)`` each restart's step limit: the cap, plus the polish's steps for a restart it
    continued and the finish's for one the finish continued (their :attr:`FitResult.steps`
    count every stage). A restart at its limit stopped for want of steps, not on its own."""
    limits = np.full(n_restarts, max_steps)
    limits[np.asarray(polished, dtype=int)] += polish_steps
    limits[np.asarray(finished, dtype=int)] += finish_steps
    return limits


def _replace_restarts(sol: Solution, rows, new: Solution, steps) -> Solution:
    """``sol`` with its restarts ``rows`` replaced by the first ``len(rows)`` restarts of
    ``new`` (their ``steps`` given: a continuation counts every stage)."""
    rows = np.asarray(rows)

    def put(old, fresh):
        if old is None:
            return None
        out = np.array(old)
        out[rows] = np.asarray(fresh)[: len(rows)]
        return out

    return Solution(
        params=jax.tree_util.tree_map(lambda o, n: jnp.asarray(put(o, n)), sol.params,
                                      new.params),
        objectives=put(sol.objectives, new.objectives),
        converged=put(sol.converged, new.converged),
        steps=put(sol.steps, steps),
        group_objectives=put(sol.group_objectives, new.group_objectives),
        gradient_cosines=put(sol.gradient_cosines, new.gradient_cosines))


def _polish(sol: Solution, static, data, delta, rtol: float, max_steps: int, polish_steps: int,
            chunk: int, bounds, extra: dict, report=None, *, limits: np.ndarray | None = None,
            returned_only: bool = False) -> tuple[Solution, tuple]:
    r"""Continue the restarts that matter and stopped only for want of steps.

    Why: the restarts are a search, and ``max_steps`` bounds what the search spends on each; a
    restart in one of these fits' long curved valleys can still be descending when it reaches
    it. Measured (the capacity law on Pile-4's in-scale split, 64 restarts): the best restart
    ends at the 1000-step cap, unconverged (cosine 5.5e-4); continued, it passes the gradient
    test after 2146 more steps with an objective 3.2 % lower. The other unconverged restarts
    there had stopped early, at a kink of the allocation (a domain's unconstrained allocation
    exactly at the head floor ``x_i = H``, where the objective has no gradient and LM's steps
    cross the kink; :mod:`mixscale._stationarity`); more steps do not move those, so they are
    not continued.

    Which: none when no restart that :func:`fit` would return (the best restart, or for a law
    fitted one problem per target, each target's best restart whose problem has not passed the
    test) stopped at the cap; otherwise the restarts that reached ``max_steps`` without passing
    the gradient test, with a finite objective, those first, then the rest by objective (one of
    them may end below the best), up to ``w = min(chunk, R)`` of them. They run on the same ``w``
    slots (padded by repetition), so the compiled solver is reused; each continues from its end
    point with fresh damping for up to ``polish_steps`` steps, under the same stopping rule.
    LM accepts only steps that lower the objective, so no restart ends higher than before.

    Cost, measured (64 restarts, the in-scale tables of ``benchmarks/bench_fit.py``, 2-core
    machine): for the spectral law on SlimPajama-7 the polish took 243 of the fit's 446 s; its
    best restart converged after 84 more steps, while 6 of the 16 it continued ran all 4000,
    none of them within 9 % of the best. Continuing only the leaders would not do: on Pile-4
    the capacity law's ``pooled`` variant ended at a restart that stood sixth at the cap, 42 %
    above the best there, and ended 9 % below the best one's end.

    ``returned_only`` (the *finish*, :func:`fit`'s ``finish_steps``): only the restarts the fit
    would return, each stopped at its own step limit ``limits`` ``(R,)`` (the cap, plus the
    polish's steps for a polished restart), continue, on a batch of just them. Why: after the
    polish, a returned restart can still be creeping along a valley that is flat in every
    direction but one, where the gradient test is passed only after many thousands of steps
    — the fits that interpolate their rows, e.g. the joint law in scale (more parameters per
    target than training runs: 21 against 17 on Pile-4's in-scale split 1, whose returned
    restarts passed it within the finish, the objective 3.4 % lower). Continuing 16 restarts
    that far would cost 16 times as much, for restarts that are not returned.

    Returns the updated solution (continued restarts: their new end state, ``steps`` counting
    every stage) and the indices of the continued restarts."""
    f = np.asarray(sol.objectives)
    steps = np.asarray(sol.steps)
    limit = max_steps if limits is None else np.asarray(limits)
    capped = np.isfinite(f) & (steps >= limit) & ~np.asarray(sol.converged)
    if not capped.any():
        return sol, ()
    gtol = extra["gtol"]
    best = int(np.argmin(np.where(np.isfinite(f), f, np.inf)))
    first = [] if sol.converged[best] else [best]
    if sol.group_objectives is not None and sol.gradient_cosines is not None:
        shares = np.where(np.isfinite(sol.group_objectives), sol.group_objectives, np.inf)
        choice = np.argmin(shares, axis=0)
        cos = sol.gradient_cosines[choice, np.arange(len(choice))]
        first = [int(c) for c, g in zip(choice, cos, strict=True)
                 if gtol is None or not g <= gtol]
    if not any(capped[r] for r in first):  # the returned law is final: nothing to continue
        return sol, ()
    if returned_only:
        picked = [r for r in dict.fromkeys(first) if capped[r]]
        width = len(picked)
    else:
        order = list(dict.fromkeys(first + [int(r) for r in np.argsort(f)]))
        width = min(chunk, len(f))
        picked = [r for r in order if capped[r]][:width]  # not empty: a capped r is in first
    batch = np.asarray(picked + picked[:1] * (width - len(picked)))
    start = jax.tree_util.tree_map(lambda x: jnp.asarray(x)[batch], sol.params)
    more = solve_lm(start, static, data, delta, rtol, polish_steps, width,
                    None if report is None else (lambda done, best: report(min(done, len(picked)),
                                                                           len(picked))),
                    bounds=bounds, **extra)
    return (_replace_restarts(sol, picked, more, steps[batch] + np.asarray(more.steps)),
            tuple(picked))


#: Temperatures of the kink continuation (``smooth_kinks``), coarse to fine (log units of the
#: smoothed non-differentiable point, e.g. the capacity allocation's floor); an exact stage
#: follows the last.
KINK_SMOOTHING = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-8)


def _temperature_filter(law: AbstractLaw):
    """For a law whose :meth:`~mixscale.laws.AbstractLaw.smoothed` takes the temperature as a
    0-d array: the filter of its smoothed versions' fitted parameters (the inexact arrays that
    the exact law also has, so not the temperature); ``None`` for a law that takes numbers
    only."""
    try:
        probe = law.smoothed(jnp.asarray(KINK_SMOOTHING[0], dtype=float))
    except (TypeError, ValueError):
        return None
    fitted = {path for path, leaf in jax.tree_util.tree_flatten_with_path(law)[0]
              if eqx.is_inexact_array(leaf)}
    return jax.tree_util.tree_map_with_path(
        lambda path, leaf: eqx.is_inexact_array(leaf) and path in fitted, probe)


def _smooth_kinks(sol: Solution, best: int, static, data, delta, rtol: float, max_steps: int,
                  chunk: int, bounds, extra: dict, report=None) -> tuple[Solution, bool]:
    r"""Continue restart ``best`` through smoothed versions of its law, then the exact one.

    Why: a law whose prediction has kinks (the capacity law's allocation floor
    ``max(log H, ·)``) draws fits onto them, and there Levenberg–Marquardt stops early: its
    Gauss–Newton steps, built from one side's Jacobian, cross the kink and are rejected
    (:mod:`mixscale._stationarity` measures that such points are not stationary). Smoothing
    the kink (:meth:`~mixscale.laws.AbstractLaw.smoothed`) makes the objective differentiable,
    and lowering the temperature ``τ`` through :data:`KINK_SMOOTHING`, each stage started from
    the last, follows its minimiser back to the exact law (a smoothing method for nonsmooth
    minimisation; Chen, "Smoothing methods for nonsmooth, nonconvex minimization", Math.
    Program. 134, 2012). A last exact stage ends on the exact objective.

    Each stage is one LM run of up to ``max_steps`` (one slot). A law that takes the
    temperature as a value (:meth:`~mixscale.laws.AbstractLaw.smoothed` of a 0-d array) runs
    every smoothed stage in one compiled program, the temperature kept out of the fitted
    parameters (:func:`_temperature_filter`); otherwise each temperature is compiled anew.
    The exact stage reuses the fit's
    compiled solver on its ``min(chunk, R)`` slots. The result replaces restart ``best`` only
    if its exact objective is lower. Returns the solution and whether it did."""
    law = eqx.combine(jax.tree_util.tree_map(lambda x: x[best], sol.params), static)
    if law.smoothed(KINK_SMOOTHING[0]) is None:
        return sol, False
    as_value = _temperature_filter(law)
    current, steps = law, int(sol.steps[best])
    for i, tau in enumerate(KINK_SMOOTHING):
        if report is not None:
            report(i, len(KINK_SMOOTHING) + 1)
        if as_value is None:
            params, stage_static = eqx.partition(current.smoothed(tau), eqx.is_inexact_array)
        else:
            params, stage_static = eqx.partition(
                current.smoothed(jnp.asarray(tau, dtype=float)), as_value)
        stage = solve_lm(jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], params),
                         stage_static, data, delta, rtol, max_steps, 1, bounds=bounds, **extra)
        current = eqx.combine(first_restart(stage.params), stage_static)
        steps += int(stage.steps[0])
    params, exact_static = eqx.partition(current.smoothed(0.0), eqx.is_inexact_array)
    width = min(chunk, len(sol.objectives))
    start = jax.tree_util.tree_map(
        lambda x: jnp.broadcast_to(jnp.asarray(x)[None], (width, *jnp.shape(x))), params)
    if report is not None:
        report(len(KINK_SMOOTHING), len(KINK_SMOOTHING) + 1)
    final = solve_lm(start, exact_static, data, delta, rtol, max_steps, width, bounds=bounds,
                     **extra)
    if report is not None:
        report(len(KINK_SMOOTHING) + 1, len(KINK_SMOOTHING) + 1)
    if not float(final.objectives[0]) < float(sol.objectives[best]):
        return sol, False
    return _replace_restarts(sol, [best], final, np.asarray(final.steps) + steps), True


def fit(law_class: LawSpec | type[AbstractLaw] | str, table: LossTable, *,
        validation: LossTable | None = None,
        law_options: Mapping[str, Any] | None = None, n_restarts: int = 64, seed: int = 0,
        method: str = "lm", max_steps: int | None = None, rtol: float | None = None,
        huber_delta: float = DEFAULT_HUBER_DELTA, chunk: int = 16,
        progress: Callable[[FitProgress], None] | None = None, use_structure: bool = True,
        use_bounds: bool = True, starts: Sequence[AbstractLaw] = (),
        nested: bool | Mapping[str, FitResult] = True, gtol: float | None = GTOL,
        geodesic: bool | str = False, n_bootstrap: int = 0, polish_steps: int = 0,
        finish_steps: int = 0, smooth_kinks: bool = False,
        shrink_batch: bool = False) -> FitResult:
    """Fit ``law_class`` to every run of ``table`` (all scales in it jointly).

    Args:
        law_class: the law: a :class:`mixscale.laws.LawSpec`, a registered law's name or its
            class (then ``law_options`` gives its options).
        table: the training runs. Select rows and split beforehand (``mixscale.data.select``,
            ``mixscale.data.split``): the fitter uses every row it is given.
        validation: optional held-out runs (same domains, in any column order, and units) for
            validation metrics.
        law_options: keyword options of the law's ``init`` (e.g. ``{"variant": "tied"}``), when
            ``law_class`` is a name or class.
        n_restarts: number of random initialisations.
        seed: PRNG seed of the initialisations; the fit is deterministic given it.
        method: ``"lm"`` (Levenberg–Marquardt, default) or ``"lbfgs"`` (optax L-BFGS).
        max_steps: iterations per restart at most (default 1000 for LM, 5000 for L-BFGS).
        rtol: relative tolerance of the stall rule on the objective (default ``1e-12`` for
            LM, ``1e-8`` for L-BFGS). LM: a problem stops once two accepted steps in a row each
            lower it by less than ``rtol`` (relative), and has converged only if it also passes
            the gradient test (``gtol``); L-BFGS: converged once two iterations running each
            lower it by at most ``rtol`` (relative).
            Both also stop on a non-finite objective (failed), and LM once its damping exceeds
            ``1e16`` (converged).
        huber_delta: Huber threshold on relative residuals (see :mod:`mixscale._objective`).
        chunk: restarts advanced together (``vmap`` width). LM refills a stopped restart's
            slot with the next one every 25 steps; L-BFGS runs chunk after chunk. All calls
            share one compilation.
        progress: optional callback receiving :class:`FitProgress` once when the optimiser
            starts, after every argument and the table have been checked (``done = 0``,
            ``best_objective = inf``), then as restarts finish (LM: after each 25-step segment
            in which one stopped; L-BFGS: after each chunk).
        use_structure: let LM use the law's per-target structure (:mod:`mixscale._blocks`):
            compressed Jacobians, a Schur-complement solve and, when no parameter is shared, one
            damping and stopping rule per target. ``False`` treats every parameter as shared
            (one dense problem).
        use_bounds: keep the parameters in the law's ranges (:meth:`parameter_bounds`).
        starts: initial laws added to the ``n_restarts`` random ones (restarts
            ``n_restarts, n_restarts + 1, ...``): e.g. a fitted nested variant embedded in this
            one (:meth:`mixscale.CapacityLaw.embed`), so that the fit cannot end above it. Each
            must be a law of this class with the same options and targets.
        gtol: LM's gradient test (:mod:`mixscale._lm`): a restart has converged when it has
            stopped and, for each of its problems, the cosine between the residual vector and
            every free parameter's Jacobian column is at most ``gtol``; a problem also stops as
            soon as it passes. ``None``: no gradient test (converged = stopped by the
            relative-decrease or damping rule, the rule of mixscale 0.1).
        nested: fit each variant nested in this one first (:meth:`AbstractLaw.nested`, e.g.
            the capacity law's ``tied`` and ``capacity`` variants in ``full``; with a quarter of
            the restarts, at least one, and the same seed and optimiser: the nested problems
            are smaller and cheaper) and add its embedded best law to ``starts``, so that
            the fit cannot end above a nested variant (their objectives are in
            :attr:`FitResult.nested_objectives`). A mapping ``{label: FitResult}`` gives
            fits of nested variants already made *on the same rows* (e.g. with every
            restart, by a caller that fits them anyway): their best laws are the nested
            starts, and only the variants it lacks are fitted. Each must be a fit of a
            variant nested in this law (by its :attr:`LawSpec.label`) with this fit's
            training domains, targets, units and number of observed losses.
        geodesic: LM with geodesic acceleration (:mod:`mixscale._lm`): a second-order
            correction of each step along the curvature of the residuals, which cuts the
            steps of the narrow curved valleys of these power-law fits (measured in
            ``benchmarks/bench_fit.py``). Needs ``method="lm"``. ``"both"``: every start
            twice, plain and accelerated (``2R`` local fits, the plain ones first in
            :attr:`FitResult.objectives`), each polished in its own mode; the best is taken
            over both (per target for a separable law), so the fit cannot end above either;
            the bootstrap's refits, warm-started at the fit, run plain.
        polish_steps: LM only: after the restarts, the best restarts that reached
            ``max_steps`` without passing the gradient test continue for up to this many more
            steps (:func:`_polish`; ``0``, the default: none do). The restarts are a search for
            the basin; the polish finishes the few that matter.
        finish_steps: LM only: after the polish, the restarts the fit would return (the best;
            for a law fitted per target, each unconverged target's best) that are still
            unconverged at their step limit continue alone for up to this many more steps
            (:func:`_polish` with ``returned_only``; ``0``, the default: none do).
        smooth_kinks: LM, a law fitted as one problem: when the best restart stopped before
            ``max_steps`` without passing the gradient test and the law has non-differentiable
            points (:meth:`~mixscale.laws.AbstractLaw.smoothed`: the capacity law's
            allocation floor; the spectral law's floors and rank weights), continue it
            through smoothed versions of the law back to the exact one
            (:func:`_smooth_kinks`); the result replaces it if lower. If the returned law is
            still unconverged, finish it on the kinks it stopped on
            (:meth:`~mixscale.laws.AbstractLaw.kink_gaps`: the capacity law's head floor;
            the spectral law's floors, rank ends and ``min(H, N)``; a law that lists none is
            finished on its smooth objective), stepping off them where the sampled gradients
            still agree on a descent, and certify the end (:mod:`mixscale._kinks`;
            :attr:`FitResult.kink_certificate`). Off by default. The three stages together
            are the converging policy that ``mixscale fit`` and the experiments use:
            ``fit(..., **converging_stages(method, max_steps))``
            (:func:`converging_stages`).
        shrink_batch: LM: once every restart has had a slot, run those still going on a
            narrower batch as the others stop (:func:`mixscale._lm.solve_lm`), in the restarts,
            the polish and the kink continuation alike: the stopped slots then stop costing a
            step each, at the price of a compilation per width; a batch of another width may
            round differently, and a rounding can flip a step's acceptance, so a fit can end
            elsewhere (off by default: the experiments' committed fits were made without it).
        n_bootstrap: ``0`` (default) or the number ``B`` of bootstrap replicates, in
            ``[2, 4096]``: after the point fit, ``B`` refits on the table with its mixtures
            resampled with replacement (the runs of one mixture together), warm-started from the
            point estimate, with the same optimiser settings; drawn from ``seed`` (see
            :mod:`mixscale._bootstrap`). Needs ``method="lm"``. Intervals:
            :func:`mixscale.prediction_intervals`, :func:`mixscale.parameter_intervals`,
            :func:`mixscale.optimal_mixture_intervals`.

    Returns:
        A :class:`FitResult`.

    Raises:
        TypeError: for an argument of the wrong kind (e.g. a float ``n_restarts``).
        ValueError: for unknown options or method, counts outside their ranges (``n_restarts``
            at most :data:`~mixscale._checks.MAX_RESTARTS`, ``seed`` in ``[0, 2**32 - 1]``), a
            negative ``rtol`` or a non-positive ``huber_delta``.
        TableError: if the table has more than :data:`~mixscale._checks.MAX_TRAIN_DOMAINS`
            (64) training domains, the law can predict none of the table's losses, a target has no
            observed loss, a law without scale terms is given several scales, or
            ``validation`` has other domains or units.
        RuntimeError: if every restart fails.
    """
    release_compiled_programs()  # a long session must not reach the kernel's mapping limit
    spec = as_law_spec(law_class, law_options)
    if not isinstance(table, LossTable):
        raise TypeError(f"table must be a mixscale LossTable, got {type(table).__name__}")
    if validation is not None and not isinstance(validation, LossTable):
        raise TypeError(f"validation must be a LossTable or None, got "
                        f"{type(validation).__name__}")
    law_class, options = spec.law_class, spec.law_options
    if not isinstance(method, str) or method not in _SOLVERS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(_SOLVERS)}")
    n_restarts = integer(n_restarts, "n_restarts", 1, MAX_RESTARTS)
    seed = integer(seed, "seed", 0, MAX_SEED)
    chunk = integer(chunk, "chunk", 1, MAX_RESTARTS)
    max_steps = integer(DEFAULT_MAX_STEPS[method] if max_steps is None else max_steps,
                        "max_steps", 1, 10**7)
    rtol = number(_RTOL[method] if rtol is None else rtol, "rtol")
    if rtol < 0:
        raise ValueError(f"rtol must be non-negative, got {rtol:g}")
    if gtol is not None:
        gtol = number(gtol, "gtol")
        if gtol < 0:
            raise ValueError(f"gtol must be non-negative or None, got {gtol:g}")
    polish_steps = integer(polish_steps, "polish_steps", 0, 10**7)
    if polish_steps and method != "lm":
        raise ValueError("polish_steps continues Levenberg-Marquardt restarts: use method='lm' "
                         "with polish_steps")
    finish_steps = integer(finish_steps, "finish_steps", 0, 10**7)
    if finish_steps and method != "lm":
        raise ValueError("finish_steps continues Levenberg-Marquardt restarts: use method='lm' "
                         "with finish_steps")
    n_bootstrap = integer(n_bootstrap, "n_bootstrap", 0, MAX_REPLICATES)
    if n_bootstrap and n_bootstrap < MIN_REPLICATES:
        raise ValueError(f"n_bootstrap must be 0 (no bootstrap) or in [{MIN_REPLICATES}, "
                         f"{MAX_REPLICATES}], got {n_bootstrap}")
    if n_bootstrap and method != "lm":
        raise ValueError("the bootstrap refits with Levenberg-Marquardt: use method='lm' with "
                         "n_bootstrap")
    if not (isinstance(geodesic, (bool, np.bool_)) or geodesic == "both"):
        raise TypeError(f"geodesic must be True, False or 'both', got {geodesic!r}")
    if not isinstance(smooth_kinks, (bool, np.bool_)):
        raise TypeError(f"smooth_kinks must be True or False, got {smooth_kinks!r}")
    if smooth_kinks and method != "lm":
        raise ValueError("smooth_kinks continues a Levenberg-Marquardt restart: use "
                         "method='lm' with smooth_kinks=True")
    if not isinstance(shrink_batch, (bool, np.bool_)):
        raise TypeError(f"shrink_batch must be True or False, got {shrink_batch!r}")
    if shrink_batch and method != "lm":
        raise ValueError("shrink_batch is a Levenberg-Marquardt option: use method='lm'")
    if geodesic and method != "lm":
        raise ValueError("geodesic acceleration is a Levenberg-Marquardt option: use "
                         "method='lm' with geodesic=True")
    huber_delta = number(huber_delta, "huber_delta")
    if not huber_delta > 0:
        raise ValueError(f"huber_delta must be positive, got {huber_delta:g}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a function or None, got {type(progress).__name__}")
    nested, given_nested = _nested_option(nested)
    if isinstance(starts, (str, bytes)) or not isinstance(starts, Sequence):
        raise TypeError(f"starts must be a sequence of laws, got {type(starts).__name__}")
    if table.n_train_domains > MAX_TRAIN_DOMAINS:
        raise TableError(
            f"{table.name}: {table.n_train_domains} training domains; fits support at most "
            f"{MAX_TRAIN_DOMAINS} (the allocation solve is verified to K = {MAX_TRAIN_DOMAINS}, "
            "and larger fits do not finish in reasonable time): merge small domains or fit a "
            "subset of them")
    targets, notes = _targets_and_notes(law_class, table, options)
    if not law_class.uses_scale:
        pairs = set(zip(table.model_size.tolist(), table.tokens.tolist(), strict=True))
        if len(pairs) > 1:
            raise TableError(f"{table.name}: law {law_class.name!r} has no model-size or token "
                             f"terms, but the table holds {len(pairs)} (size, tokens) scales; "
                             "select one scale first")
    if validation is not None:
        # the same domains in another column order are the same runs
        validation = validation.in_train_order(table.train_domains)
        check_domains(validation, table.train_domains, table.size_unit, table.token_unit)
        # before the restarts, not after them: a table the fit could not score at its end
        measured_targets(validation, targets)
    sub, data = prepare_data(table, targets)
    y = sub.losses
    observed = np.isfinite(y)
    empty = [t for j, t in enumerate(targets) if not observed[:, j].any()]
    if empty:
        raise TableError(f"{table.name}: targets {empty} have no observed loss in these rows, so "
                         "the law's parameters for them cannot be fitted; leave their loss "
                         "columns out of the table to fit the others")
    summary = data_summary(sub)

    keys = jax.random.split(jax.random.key(seed), n_restarts)
    params0, static = eqx.partition(_initial_laws(law_class, summary, options)(keys),
                                    eqx.is_inexact_array)
    # no LAPACK in a law's prediction: it can deadlock the compiled fit (mixscale._linalg)
    # (the first restart and row taken on the host: eager indexing compiles per shape)
    check_law_primitives(eqx.combine(first_restart(params0), static),
                         *(np.asarray(v)[0] for v in (data.weights, data.model_size,
                                                      data.tokens)))
    if starts:  # appended (and checked) before any nested fit runs
        params0 = _with_starts(params0, static, starts, law_class)
    embedded, nested_objectives = [], {}
    variants = {LawSpec(law_class, **inner_options).label: (inner_options, embed)
                for inner_options, embed in (law_class.nested(**options) if nested else ())}
    for label, given in given_nested.items():
        _check_nested_fit(given, label, variants, spec, sub, targets)
    for label, (inner_options, embed) in variants.items():
        inner = given_nested.get(label)
        if inner is None:
            inner = fit(LawSpec(law_class, **inner_options), table,
                        n_restarts=max(1, n_restarts // 4),
                        seed=seed, method=method, max_steps=max_steps, rtol=rtol,
                        huber_delta=huber_delta, chunk=chunk, use_structure=use_structure,
                        use_bounds=use_bounds, nested=True, gtol=gtol, geodesic=geodesic,
                        polish_steps=polish_steps, finish_steps=finish_steps,
                        smooth_kinks=smooth_kinks, shrink_batch=shrink_batch)
        nested_objectives[label] = inner.objective
        embedded.append(embed(inner.law))
    if embedded:
        params0 = _with_starts(params0, static, embedded, law_class)
    n_restarts = int(jax.tree_util.tree_leaves(params0)[0].shape[0])
    delta = jnp.asarray(huber_delta, dtype=float)
    t0 = time.perf_counter()

    def report(done, best, total=n_restarts, stage="restarts"):
        if progress is not None:
            progress(FitProgress(done=done, n_restarts=total, best_objective=best,
                                 elapsed_s=time.perf_counter() - t0, stage=stage))

    first = first_restart(params0)
    notes += _unmeasured_notes(targets, observed)
    notes += _underdetermined_notes(law_class, first, targets, observed)
    notes += _one_scale_notes(law_class, sub)
    notes += _unexplored_domain_notes(sub)
    notes += _duplicate_run_notes(sub)
    report(0, float("inf"))  # every check has passed: the optimiser starts
    bounds = bound_trees(first, law_class.parameter_bounds(summary, **options)
                         if use_bounds else {})
    modes = (False, True) if geodesic == "both" else (bool(geodesic),)
    extras = [({"per_target_fields": law_class.per_target_fields if use_structure else (),
                "gtol": gtol, "geodesic": mode, "shrink_batch": shrink_batch}
               if method == "lm" else {}) for mode in modes]
    solutions, polished, finished, stage_s = [], (), (), {"polish": 0.0, "finish": 0.0}
    for i, extra in enumerate(extras):  # each start in each mode, its restarts polished alike
        stage = "restarts" if i == 0 else "geodesic restarts"
        sol = _SOLVERS[method](params0, static, data, delta, rtol, max_steps, chunk,
                               lambda done, best, stage=stage: report(done, best, stage=stage),
                               bounds=bounds, **extra)
        # the polish, then the finish on the returned restarts still at their step limit
        mine_polished = ()
        for stage, n_steps in (("polish", polish_steps), ("finish", finish_steps)):
            if not n_steps:
                continue
            t_stage = time.perf_counter()
            best_now = float(np.min(np.where(np.isfinite(sol.objectives), sol.objectives,
                                             np.inf)))
            finish = stage == "finish"
            sol, mine = _polish(
                sol, static, data, delta, rtol, max_steps, n_steps, chunk, bounds, extra,
                lambda done, total, best=best_now, stage=stage: report(done, best, total, stage),
                limits=(_step_limits(n_restarts, max_steps, polish_steps, mine_polished)
                        if finish else None), returned_only=finish)
            if finish:
                finished += tuple(i * n_restarts + r for r in mine)
            else:
                mine_polished = mine
                polished += tuple(i * n_restarts + r for r in mine)
            stage_s[stage] += time.perf_counter() - t_stage
        solutions.append(sol)
    sol = _concatenate_solutions(solutions)
    kink_smoothed, kinks_s = False, None
    if smooth_kinks and method == "lm" and sol.group_objectives is None:
        f_sol = np.where(np.isfinite(sol.objectives), sol.objectives, np.inf)
        top = int(np.argmin(f_sol))
        stopped_early = sol.steps[top] < _step_limits(
            len(f_sol), max_steps, polish_steps, polished, finish_steps, finished)[top]
        if np.isfinite(f_sol[top]) and not sol.converged[top] and stopped_early:
            t_kinks = time.perf_counter()
            sol, kink_smoothed = _smooth_kinks(
                sol, top, static, data, delta, rtol, max_steps, chunk, bounds,
                extras[top // n_restarts],
                lambda done, total: report(done, float(f_sol[top]), total, "kinks"))
            kinks_s = time.perf_counter() - t_kinks
    f, conv = np.asarray(sol.objectives), np.asarray(sol.converged)
    timings = {"total_s": time.perf_counter() - t0}
    if kinks_s is not None:
        timings["kink_smoothing_s"] = kinks_s
    if polish_steps:
        timings["polish_s"] = stage_s["polish"]
    if finish_steps:
        timings["finish_s"] = stage_s["finish"]
    # A restart counts only with a finite objective and finite parameters.
    finite_params = np.all(np.stack([np.all(np.isfinite(np.asarray(x)).reshape(len(f), -1), 1)
                                     for x in jax.tree_util.tree_leaves(sol.params)]), 0)
    objectives = np.where(np.isfinite(f) & finite_params, f, np.inf)
    if not np.isfinite(objectives).any():
        raise RuntimeError(
            f"{table.name}: every restart of {law_class.name!r} failed (non-finite objective): "
            f"losses up to {float(np.nanmax(y)):g}, model sizes up to "
            f"{float(table.model_size.max()):g} and token counts up to "
            f"{float(table.tokens.max()):g} (law units) may be beyond what the law can "
            "represent in float64; rescale them")
    best = int(np.argmin(objectives))
    law = eqx.combine(jax.tree_util.tree_map(lambda leaf: leaf[best], sol.params), static)
    law_objective = float(objectives[best])
    law_converged = bool(conv[best] and np.isfinite(f[best]))
    per_target = None
    if sol.group_objectives is not None:
        # One problem per target: each target's parameters come from the restart that fitted
        # that target best (the problems are independent, so the combination is their optimum).
        shares = np.where(np.isfinite(objectives)[:, None] & np.isfinite(sol.group_objectives),
                          sol.group_objectives, np.inf)
        choice = np.argmin(shares, axis=0)
        columns = np.arange(len(choice))
        law = eqx.combine(jax.tree_util.tree_map(
            lambda leaf: jax.device_put(np.asarray(leaf)[choice, columns]), sol.params), static)
        per_target = tuple(int(c) for c in choice)
        law_objective = float(np.sum(shares[choice, columns]))
        if sol.gradient_cosines is not None:
            law_converged = (bool(np.all(sol.gradient_cosines[choice, columns] <= gtol))
                             if gtol is not None else bool(np.all(conv[choice])))

    kink_certificate, kink_kept = None, False
    if (smooth_kinks and method == "lm" and per_target is None and gtol is not None
            and not law_converged):
        # Still unconverged after the continuation: finish on the kinks it stopped on and
        # certify the end (mixscale._kinks). Its steps only descend, so its end is kept
        # wherever lower, and counts as converged only if certified.
        t_cert = time.perf_counter()
        cert = certify_law(law, data, delta, *bounds, gtol=gtol, max_steps=max_steps)
        timings["kink_certificate_s"] = time.perf_counter() - t_cert
        kink_certificate = cert
        if cert.objective < cert.start_objective:
            params, static_law = eqx.partition(law, eqx.is_inexact_array)
            law = eqx.combine(Layout.of(params).unravel(cert.params), static_law)
            law_objective *= cert.objective / cert.start_objective
            objectives = objectives.copy()
            objectives[best] = law_objective
            kink_kept = True
        if cert.certified:
            conv = np.asarray(conv).copy()
            conv[best] = True
            law_converged = True

    boot = None
    if n_bootstrap:
        start = jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None],
                                       eqx.filter(law, eqx.is_inexact_array))
        boot = run_bootstrap(
            start, static, data, mixture_ids(sub), n_bootstrap, seed, delta=delta, rtol=rtol,
            max_steps=max_steps, chunk=chunk, bounds=bounds, gtol=gtol,
            per_target_fields=extras[0]["per_target_fields"], geodesic=extras[0]["geodesic"],
            progress=lambda done, best: report(done, best, n_bootstrap, "bootstrap"))[0]
        timings["bootstrap_s"] = boot.seconds

    def metrics(t: LossTable):
        return evaluate(law, t, targets, table.train_domains, table.size_unit, table.token_unit)

    return FitResult(
        law=law, law_options=options, targets=targets, train_domains=tuple(table.train_domains),
        size_unit=table.size_unit, token_unit=table.token_unit, train_metrics=metrics(table),
        validation_metrics=None if validation is None else metrics(validation),
        objectives=objectives, converged=conv & np.isfinite(f), steps=np.asarray(sol.steps),
        best=best, n_params=parameter_count(law), notes=tuple(notes), method=method,
        timings=timings, per_target_restarts=per_target, law_converged=law_converged,
        objective=law_objective, nested_objectives=nested_objectives, bootstrap=boot,
        polished=polished, finished=finished, kink_smoothed=kink_smoothed, kink_kept=kink_kept,
        kink_certificate=kink_certificate,
        gradient_cosines=(None if sol.gradient_cosines is None
                          else np.max(sol.gradient_cosines, axis=1)),
        at_bounds=count_at_bounds(eqx.filter(law, eqx.is_inexact_array), *bounds),
        fitted_scales=fitted_scales(sub), fitted_weight_max=fitted_weight_max(sub))


def _measured_rows(table: LossTable) -> np.ndarray:
    """``(n,)`` bool: the rows of ``table`` with at least one measured loss (those fitted)."""
    return np.isfinite(np.asarray(table.losses)).any(axis=1)


def fitted_weight_max(table: LossTable) -> tuple[float, ...]:
    """The largest weight of each training domain among ``table``'s rows with a measured loss
    (:attr:`FitResult.fitted_weight_max`)."""
    return tuple(float(v) for v in np.asarray(table.weights)[_measured_rows(table)].max(axis=0))


def fitted_scales(table: LossTable) -> dict[str, tuple[float, float]]:
    """``{"model_size": (lo, hi), "tokens": (lo, hi)}`` of ``table``'s rows with a measured
    loss, in raw units (:attr:`FitResult.fitted_scales`)."""
    measured = _measured_rows(table)
    size = np.asarray(table.model_size, dtype=np.float64)[measured] * table.size_unit
    tokens = np.asarray(table.tokens, dtype=np.float64)[measured] * table.token_unit
    return {"model_size": (float(size.min()), float(size.max())),
            "tokens": (float(tokens.min()), float(tokens.max()))}
