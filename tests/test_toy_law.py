"""A new law is one file: a toy law written here, registered with one line, runs through ``fit``,
saving and loading, and ``mixscale fit/optimize/evaluate`` without any other change.

The toy law: each domain's loss falls with its own tokens only,

    L_i(h, N, D) = E_i + A_i (D max(h_i, 1e-3))^(-a_i),

``3M`` parameters (all positive, stored as logs).
"""

from __future__ import annotations

import json
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mixscale
from mixscale import LAWS, LawSpec, load_fit, register_law, save_fit
from mixscale._evaluate import predict_in_blocks
from mixscale.cli import main
from mixscale.data import LossTable
from mixscale.laws import AbstractLaw, DataSummary


# ------------------------------------------------------- the whole of a new law's file
class ToyLaw(AbstractLaw):
    """Own-data power law per domain: ``E_i + A_i (D h_i)^(-a_i)``."""

    name: ClassVar[str] = "toy"
    uses_scale: ClassVar[bool] = True
    variants: ClassVar[tuple[str, ...]] = ()
    per_target_fields: ClassVar[tuple[str, ...]] = ("log_E", "log_A", "log_a")

    log_E: jax.Array
    log_A: jax.Array
    log_a: jax.Array
    targets: tuple[int, ...] = eqx.field(static=True)
    n_domains: int = eqx.field(static=True)

    @property
    def n_train_domains(self) -> int:
        return self.n_domains

    def predict(self, h, N, D):
        h = jnp.asarray(h)
        if h.ndim != 1 or h.shape[0] != self.n_domains:
            raise ValueError(f"h must be one mixture of {self.n_domains} training domains; "
                             "use jax.vmap for a batch")
        share = jnp.maximum(h[jnp.asarray(self.targets)], 1e-3)
        return jnp.exp(self.log_E) + jnp.exp(self.log_A - jnp.exp(self.log_a)
                                             * jnp.log(D * share))

    def natural_parameters(self):
        return {"E": jnp.exp(self.log_E), "A": jnp.exp(self.log_A), "a": jnp.exp(self.log_a)}

    @classmethod
    def targets_for(cls, train_domains, loss_domains, **options):
        return tuple(s for s in loss_domains if s in train_domains)

    @classmethod
    def nested(cls):
        return ()

    @classmethod
    def init(cls, key, summary: DataSummary):
        m = len(summary.targets)
        k1, k2 = jax.random.split(key)
        loss = jnp.asarray(summary.loss_min)
        log_a = jax.random.uniform(k1, (m,), minval=np.log(0.1), maxval=np.log(1.0))
        frac = jax.random.uniform(k2, (m,), minval=0.1, maxval=0.5)
        return cls(log_E=jnp.log((1 - frac) * loss), log_A=jnp.log(frac * loss), log_a=log_a,
                   targets=summary.target_index, n_domains=len(summary.train_domains))

    @classmethod
    def n_parameters(cls, n_train_domains, n_targets):
        return 3 * n_targets

    @classmethod
    def parameter_bounds(cls, summary):
        return {"log_a": (np.log(0.01), np.log(3.0))}
# ------------------------------------------------------------------------------------


@pytest.fixture
def toy():
    """Register the toy law for one test (the one registration line), then forget it."""
    register_law(ToyLaw)
    yield LawSpec("toy")
    del LAWS["toy"]


DOMAINS = ("x", "y", "z")


def _toy_table(rng, name="toy-runs") -> LossTable:
    """Noiseless losses of a planted toy law on 12 mixtures at 2 token budgets."""
    planted = ToyLaw(log_E=jnp.log(jnp.array([1.5, 2.0, 2.5])),
                     log_A=jnp.log(jnp.array([1.0, 0.7, 1.3])),
                     log_a=jnp.log(jnp.array([0.3, 0.5, 0.4])), targets=(0, 1, 2), n_domains=3)
    h = np.repeat(rng.dirichlet(np.ones(3), size=12), 2, axis=0)
    d = np.tile([2.0, 8.0], 12)
    n = np.full(24, 100.0)
    y = predict_in_blocks(planted, h, n, d)
    return LossTable(weights=h, model_size=n, tokens=d, losses=y, train_domains=DOMAINS,
                     loss_domains=DOMAINS, name=name)


def test_toy_law_is_listed_counted_and_fitted(toy, rng, tmp_path):
    assert toy in list(mixscale.law_specs(uses_scale=True))
    assert toy.n_parameters(3, 3) == 9
    table = _toy_table(rng)
    res = mixscale.fit(toy, table, n_restarts=4, seed=0)
    assert res.n_params == 9 and res.train_metrics["mre"] < 1e-6
    path = tmp_path / "toy.json"
    save_fit(res, path)
    doc = json.loads(path.read_text())
    assert doc["law"] == "toy" and set(doc["natural_parameters"]) == {"E", "A", "a"}
    back = load_fit(path)
    np.testing.assert_array_equal(back.predict(table), res.predict(table))


def test_toy_law_through_the_command_line(toy, rng, tmp_path, capsys):
    table = _toy_table(rng)
    csv = tmp_path / "runs.csv"
    cols = ([f"weight_{d}" for d in DOMAINS] + ["model_size", "n_tokens"]
            + [f"{d}_loss" for d in DOMAINS])
    rows = np.column_stack([table.weights, table.model_size * 1e6, table.tokens * 1e9,
                            table.losses])
    csv.write_text(",".join(cols) + "\n" + "\n".join(",".join(f"{v:.17g}" for v in r)
                                                     for r in rows) + "\n")
    fitted = tmp_path / "toy.json"
    assert main(["fit", str(csv), "--law", "toy", "--restarts", "4", "--validation-fraction",
                 "0.25", "--out", str(fitted)]) == 0
    out = capsys.readouterr().out
    assert "law toy — 9 parameters" in out
    # one model size in the table: a note says the size terms are not identified
    assert "note: every row has one model size (1e+08)" in out
    header = next(line for line in out.splitlines()[1:] if not line.startswith("note:"))
    for name in ("E", "A", "a"):  # every parameter group in the table header
        assert f" {name}" in header
    assert main(["optimize", str(fitted), "--model-size", "100M", "--tokens", "8B",
                 "--json"]) == 0
    weights = json.loads(capsys.readouterr().out)["weights"]
    assert sum(weights.values()) == pytest.approx(1.0)
    assert main(["evaluate", str(fitted), str(csv), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mre"] < 1e-4


def test_an_incomplete_law_is_refused_at_registration():
    class Incomplete(AbstractLaw):
        name: ClassVar[str] = "incomplete"
        uses_scale: ClassVar[bool] = True
        variants: ClassVar[tuple[str, ...]] = ()
        per_target_fields: ClassVar[tuple[str, ...]] = ()
        targets: None = None

        def predict(self, h, N, D):
            return h

    with pytest.raises(TypeError, match="does not implement"):
        register_law(Incomplete)
    assert "incomplete" not in LAWS


def test_an_unknown_row_jacobian_mode_is_refused_at_registration():
    class Sideways(ToyLaw):
        name: ClassVar[str] = "sideways"
        row_jacobian: ClassVar[str] = "sideways"

    with pytest.raises(TypeError, match=r"Sideways.row_jacobian must be one of .*'reverse-own'"):
        register_law(Sideways)
    assert "sideways" not in LAWS


def test_a_taken_name_is_refused():
    class Impostor(ToyLaw):
        name: ClassVar[str] = "capacity"

    with pytest.raises(ValueError, match="already registered"):
        register_law(Impostor)
    assert LAWS["capacity"] is mixscale.CapacityLaw


def test_a_candidate_law_is_fitted_but_left_out_of_the_experiments_lists(rng, capsys):
    """``register_law(candidate=True)``: known to ``fit`` and ``mixscale laws`` (marked), absent
    from ``law_specs()`` (the experiments' law lists) unless ``candidates=True``; registering it
    again without the flag promotes it."""
    from mixscale.cli import main
    from mixscale.laws._registry import CANDIDATES

    register_law(candidate=True)(ToyLaw)
    try:
        spec = LawSpec("toy")
        assert spec not in list(mixscale.law_specs())
        assert spec in list(mixscale.law_specs(candidates=True))
        res = mixscale.fit("toy", _toy_table(rng), n_restarts=2, seed=0)
        assert res.train_metrics["mre"] < 1e-6
        assert main(["laws", "--domains", "3"]) == 0
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("toy "))
        assert "candidate" in line
        register_law(ToyLaw)
        assert spec in list(mixscale.law_specs()) and "toy" not in CANDIDATES
    finally:
        del LAWS["toy"]
        CANDIDATES.discard("toy")


class _LapackToyLaw(ToyLaw):
    """The toy law with its prediction passed through a LAPACK solve of the identity."""

    name: ClassVar[str] = "toy_lapack"

    def predict(self, h, N, D):
        out = ToyLaw.predict(self, h, N, D)
        return jnp.linalg.solve(jnp.eye(out.shape[0], dtype=out.dtype), out)


def test_a_law_predicting_through_lapack_is_refused_before_fitting(rng):
    table = _toy_table(rng)
    register_law(_LapackToyLaw)
    try:
        with pytest.raises(TypeError, match=r"'_LapackToyLaw'.*LAPACK-backed lu.*solve_small"):
            mixscale.fit(LawSpec("toy_lapack"), table, n_restarts=2, seed=0)
    finally:
        del LAWS["toy_lapack"]
