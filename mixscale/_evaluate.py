"""A law's predictions and error metrics on every run of a loss table.

A law is tied to the training domains (columns of ``h``) and the units of ``N`` and ``D`` of the
table it was fitted on; both functions check that the table matches them before predicting
``law.predict(h, N, D)`` for every row (``vmap``). The metrics are those of
:func:`mixscale.error_metrics` over the observed entries, with each in-mixture target's own
training-domain weight for ``mre_high_weight``.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._metrics import error_metrics
from .data import LossTable, TableError
from .laws._base import AbstractLaw

__all__ = ["check_domains", "evaluate", "own_weight", "predict_one", "predict_table"]


def check_domains(table: LossTable, train_domains: Sequence[str], size_unit: float,
                  token_unit: float) -> None:
    """Raise ``TableError`` unless ``table`` has these training domains (in order) and units."""
    if tuple(table.train_domains) != tuple(train_domains):
        hint = (" (the same domains in another order: table.in_train_order(train_domains) "
                "reorders its weight columns)"
                if sorted(table.train_domains) == sorted(train_domains) else "")
        raise TableError(f"{table.name}: training domains {list(table.train_domains)} differ "
                         f"from the law's {list(train_domains)}{hint}")
    if not (np.isclose(table.size_unit, size_unit) and np.isclose(table.token_unit, token_unit)):
        raise TableError(f"{table.name}: units (size {table.size_unit:g}, tokens "
                         f"{table.token_unit:g}) differ from the law's ({size_unit:g}, "
                         f"{token_unit:g})")


def _check_law(law, table) -> None:
    if not isinstance(table, LossTable):
        raise TypeError(f"table must be a mixscale LossTable, got {type(table).__name__}")
    if not (isinstance(law, eqx.Module) and callable(getattr(law, "predict", None))):
        raise TypeError(f"expected a law instance (an equinox Module with predict), got "
                        f"{type(law).__name__}; for a fit result use result.law or "
                        "result.evaluate(table)")


#: Rows per compiled prediction call: every table is predicted in blocks of this many rows (the
#: last one padded by repeating its final row), so that one compilation per law structure serves
#: tables of any length (a fit's training and validation rows, every experiment's tables) instead
#: of one per row count.
PREDICT_ROWS = 128


@eqx.filter_jit
def _batch_predict(law, h, N, D):
    return jax.vmap(law.predict)(h, N, D)


def predict_in_blocks(law, h: np.ndarray, N: np.ndarray, D: np.ndarray) -> np.ndarray:
    """``law.predict`` for every row of ``h (n, K)``, ``N (n,)``, ``D (n,)``: ``(n, M)``, in
    blocks of :data:`PREDICT_ROWS` rows (one compilation per law structure)."""
    h, N, D = np.asarray(h), np.asarray(N), np.asarray(D)
    n = len(N)
    if n == 0:
        return np.asarray(_batch_predict(law, jnp.asarray(h), jnp.asarray(N), jnp.asarray(D)))
    pad = -n % PREDICT_ROWS
    index = np.concatenate([np.arange(n), np.full(pad, n - 1)])
    out = [np.asarray(_batch_predict(law, jnp.asarray(h[rows]), jnp.asarray(N[rows]),
                                     jnp.asarray(D[rows])))
           for rows in index.reshape(-1, PREDICT_ROWS)]
    return np.concatenate(out)[:n]


def predict_one(law, h, N, D):
    """``law.predict(h, N, D)`` compiled once per law structure (an eager call would trace the
    allocation's Newton loop anew every time). The inputs are cast to the default float type
    first: a weakly typed input (``jnp.full(k, 1 / k)``) would otherwise compile a second
    program."""
    return _predict_one(law, *(jnp.asarray(x, float) for x in (h, N, D)))


@eqx.filter_jit
def _predict_one(law, h, N, D):
    return law.predict(h, N, D)


def predict_table(law: AbstractLaw, table: LossTable, train_domains: Sequence[str],
                  size_unit: float, token_unit: float) -> np.ndarray:
    """``law.predict`` for every run of ``table``: an ``(n, M)`` array in the law's target order.

    Args:
        law: a law instance.
        table: the runs to predict (its loss columns are not read).
        train_domains: the law's training domains: ``table.train_domains`` must hold the same
            domains, in any order (:meth:`~mixscale.data.LossTable.in_train_order`).
        size_unit, token_unit: the units of ``N`` and ``D`` the law expects; must match the
            table's.

    Raises:
        TableError: if the table's training domains or units differ from the law's.
    """
    _check_law(law, table)
    table = table.in_train_order(train_domains)
    check_domains(table, train_domains, size_unit, token_unit)
    return predict_in_blocks(law, table.weights, table.model_size, table.tokens)


def own_weight(table: LossTable, targets: Sequence[str]) -> np.ndarray:
    """``(n, M)``: each target's own training-domain weight per row (NaN if out-of-mixture)."""
    cols = [table.weights[:, table.train_domains.index(t)] if t in table.train_domains
            else np.full(table.n_runs, np.nan) for t in targets]
    return np.stack(cols, axis=1)


def measured_targets(table: LossTable, targets: Sequence[str]) -> np.ndarray:
    """The losses ``(n, M)`` of ``targets`` in ``table`` (``NaN`` where not measured), after
    checking that :func:`evaluate` can score the table: a loss column for every target and at
    least one measured loss among them (``TableError`` naming the table otherwise)."""
    missing = [t for t in targets if t not in table.loss_domains]
    if missing:
        raise TableError(f"{table.name} has no loss columns for the law's targets {missing}")
    obs = table.select_losses(list(targets)).losses
    if not np.isfinite(obs).any():
        raise TableError(f"{table.name}: none of the law's targets {list(targets)} has a "
                         f"measured loss in its {table.n_runs} runs: nothing to evaluate")
    return obs


def evaluate(law: AbstractLaw, table: LossTable, targets: Sequence[str],
             train_domains: Sequence[str], size_unit: float, token_unit: float) -> dict:
    """Error metrics of ``law`` on every run of ``table`` (e.g. held-out or new runs).

    Args:
        law: a law instance predicting the losses of ``targets``, in that order.
        table: the runs; it needs a loss column for every target (``NaN`` entries are skipped).
        targets: the loss domains the law predicts (``FitResult.targets`` for a fitted law).
        train_domains, size_unit, token_unit: as in :func:`predict_table`.

    Returns:
        The dict of :func:`mixscale.error_metrics` (``mre``, ``mae``, ``rmse``, ``n``,
        ``per_domain_mre``, ``mre_high_weight``, ``n_high_weight``, ``mre_absent``,
        ``n_absent``).

    Raises:
        TableError: if the table lacks a target's loss column, has no measured loss of any
            target, or its training domains or units differ from the law's.
        ValueError: if the law does not predict ``len(targets)`` losses, or predicts a
            non-finite loss where one is measured.
    """
    _check_law(law, table)
    # other training domains or units first: they, not a missing loss column, are the problem
    table = table.in_train_order(train_domains)
    check_domains(table, train_domains, size_unit, token_unit)
    obs = measured_targets(table, targets)
    pred = predict_table(law, table, train_domains, size_unit, token_unit)
    if pred.shape[1:] != (len(targets),):
        raise ValueError(f"the law predicts {pred.shape[1:]} losses per run but "
                         f"{len(targets)} targets were given ({list(targets)}); pass the "
                         "targets the law was fitted to")
    measured = np.isfinite(obs)
    bad = measured & ~np.isfinite(pred)
    if bad.any():
        r, m = np.argwhere(bad)[0]
        raise ValueError(f"{table.name}: the law predicts a non-finite loss for {int(bad.sum())} "
                         f"measured entries (first: row {r + 1}, {targets[m]}): its parameters "
                         "overflow at these model sizes and token counts")
    return error_metrics(pred, obs, targets, own_weight=own_weight(table, targets))
