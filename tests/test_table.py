import numpy as np
import pytest

from mixscale.data import LossTable, TableError


def _table(**kw):
    base = dict(weights=np.array([[0.5, 0.5], [0.2, 0.8]]), model_size=np.array([1.0, 2.0]),
                tokens=np.array([1.0, 1.0]), losses=np.array([[3.0, np.nan], [2.5, 2.0]]),
                train_domains=("a", "b"), loss_domains=("a", "b"), name="t")
    base.update(kw)
    return LossTable(**base)


def test_valid_table_keeps_nan_and_shapes():
    t = _table()
    assert (t.n_runs, t.n_train_domains, t.n_loss_domains) == (2, 2, 2)
    assert np.isnan(t.losses[0, 1])
    assert t.take([1]).losses.shape == (1, 2)
    assert t.select_losses(["b"]).loss_domains == ("b",)


@pytest.mark.parametrize("kw, match", [
    (dict(weights=np.array([[0.5, 0.5], [-0.2, 1.2]])), "row 2.*weight_a.*negative"),
    (dict(weights=np.array([[0.5, 0.5], [0.2, 0.7]])), "row 2.*sum to 0.9"),
    (dict(model_size=np.array([1.0, 0.0])), "row 2.*model_size"),
    (dict(tokens=np.array([-1.0, 1.0])), "row 1.*n_tokens"),
    (dict(train_domains=("a", "a")), "duplicate training domain"),
    (dict(weights=np.zeros((0, 2)), model_size=np.zeros(0), tokens=np.zeros(0),
          losses=np.zeros((0, 2))), "empty"),
    # each of these was accepted or failed inside numpy: an imaginary part dropped with a
    # ComplexWarning, "ab" split into the domains 'a' and 'b', an empty name (written as the
    # column 'weight_', which read_csv refuses), a name 'a ' that a CSV header reads as 'a'
    (dict(weights=np.array([[0.5, 0.5], [0.2, 0.8]]) + 0j), "weights must be real numbers"),
    (dict(losses=np.array([["3.0", "2.0"], ["2.5", "2.0"]])), "losses must be real numbers"),
    (dict(train_domains="ab"), "not the single string 'ab'"),
    (dict(train_domains=("", "b")), "training domain name '' is empty or"),
    (dict(loss_domains=("a", "b ")), "loss domain name 'b ' is empty or begins or ends"),
    (dict(size_unit="1e6"), "size_unit must be a number, got '1e6'"),
    (dict(token_unit=np.array([1e9, 1e9])), "token_unit must be a number"),
    (dict(meta=[1, 2]), "meta must be a mapping"),
])
def test_bad_tables_are_refused_with_location(kw, match):
    with pytest.raises(TableError, match=match):
        _table(**kw)


def test_in_train_order_permutes_the_weight_columns_and_names_what_differs():
    t = _table(weights=np.array([[0.5, 0.5], [0.2, 0.8]]))
    assert t.in_train_order(("a", "b")) is t
    swapped = t.in_train_order(["b", "a"])
    assert swapped.train_domains == ("b", "a")
    np.testing.assert_array_equal(swapped.weights, [[0.5, 0.5], [0.8, 0.2]])
    np.testing.assert_array_equal(swapped.losses, t.losses)   # loss columns go by name
    assert swapped.loss_domains == t.loss_domains
    with pytest.raises(TableError, match=r"has \['b'\], which the law was not fitted on; "
                                         r"it lacks \['c'\]"):
        t.in_train_order(("a", "c"))
    with pytest.raises(TableError, match=r"it lacks \['c'\]"):
        t.in_train_order(("a", "b", "c"))
    with pytest.raises(TableError, match="named twice"):
        t.in_train_order(("a", "b", "a"))
