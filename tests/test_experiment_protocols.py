"""The protocols and metrics several experiments share (experiments/_protocols.py)."""

import numpy as np
import pytest

from experiments import _protocols


def test_spearman_known_values():
    rho = _protocols.spearman
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert rho(x, x**3) == pytest.approx(1.0)
    assert rho(x, -x) == pytest.approx(-1.0)
    # ties share their average rank: ranks of y are (1.5, 1.5, 3, 4, 5)
    y = np.array([1.0, 1.0, 2.0, 3.0, 4.0])
    rx, ry = np.arange(5.0) - 2.0, np.array([1.5, 1.5, 3, 4, 5]) - 3.0
    assert rho(x, y) == pytest.approx(rx @ ry / np.sqrt((rx @ rx) * (ry @ ry)))


def test_protocol_tables():
    train, evals = _protocols.across_scale_tables("pile4")
    assert set(train.model_size) == {90.0, 200.0}
    assert train.tokens[train.model_size == 200].max() <= 7
    assert set(evals) == {"200M/8B", "440M"} and set(evals["440M"].model_size) == {440.0}
    assert evals["200M/8B"].n_runs == 24
    # the Pile-4 protocol is one function; its 200M token cut is a parameter
    short, _ = _protocols.pile4_across_scale(6.0)
    assert short.tokens[short.model_size == 200].max() <= 6 and short.n_runs < train.n_runs
    assert _protocols.in_scale_table("pile4").n_runs == 24
    assert _protocols.in_scale_table("slimpajama7").n_runs == 60
    t = _protocols.in_scale_table("regmix-1b")
    assert (t.n_runs, t.n_train_domains, t.n_loss_domains) == (64, 17, 17)
    train, evals = _protocols.across_scale_tables("slimpajama7-122+310")
    assert set(train.model_size) == {122.0, 310.0} and set(evals["680M"].model_size) == {680.0}
    with pytest.raises(ValueError, match="unknown"):
        _protocols.across_scale_tables("pile5")


def test_own_weights_and_relative_errors():
    class Exact:  # a "fit" predicting the measured losses, plus 10 % on the first target
        targets = ("github", "wikipedia")

        def predict(self, table):
            obs = table.select_losses(list(self.targets)).losses
            return obs * np.array([1.1, 1.0])

    table = _protocols.in_scale_table("pile4")
    own = _protocols.own_weights(table, Exact.targets)
    cols = [table.train_domains.index(t) for t in Exact.targets]
    np.testing.assert_array_equal(own, table.weights[:, cols])
    rel, own2 = _protocols.relative_errors(Exact(), table)
    np.testing.assert_array_equal(own, own2)
    np.testing.assert_allclose(rel[:, 0], 0.1)
    np.testing.assert_array_equal(rel[:, 1], 0.0)
