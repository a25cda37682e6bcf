"""Bad input through the Python API and user CSVs: a clear error naming what is wrong, never a
traceback from deep inside, a NaN result or a silent reinterpretation."""

import jax.numpy as jnp
import numpy as np
import pytest

import mixscale
from mixscale import CapacityLaw
from mixscale.data import TableError, load, read_csv, select

HEADER = "weight_a,weight_b,model_size,n_tokens,a_loss,b_loss"


@pytest.fixture(scope="module")
def table():
    return select(load("pile4"), model_size=200.0, tokens=8.0)


@pytest.mark.parametrize("call, error, message", [
    (lambda t: mixscale.fit(CapacityLaw, None), TypeError, "LossTable"),
    (lambda t: mixscale.fit("capacity", t, n_restarts=1.5), TypeError, "n_restarts"),
    (lambda t: mixscale.fit("capacity", t, seed="1"), TypeError, "seed"),
    (lambda t: mixscale.fit("nope", t), KeyError, "unknown law"),
    (lambda t: mixscale.fit(3, t), TypeError, "expected a law"),
])
def test_fit_refuses_bad_arguments(table, call, error, message):
    with pytest.raises(error, match=message):
        call(table)


@pytest.mark.parametrize("N, D, error", [("1000", 1.0, TypeError), (1000.0, -1.0, ValueError),
                                         (np.inf, 1.0, ValueError), (jnp.ones(2), 1.0,
                                                                    TypeError)])
def test_optimal_mixture_refuses_bad_scales(N, D, error):
    law = CapacityLaw.from_params(b=[0.3, 0.5], c=[2.0, 1.5], H=0.5, A=[0.5, 0.3],
                                  a=[0.3, 0.4], E=[1.0, 1.5])
    with pytest.raises(error, match="N|D"):
        mixscale.optimal_mixture(law, N, D)


@pytest.mark.parametrize("row, message", [
    ("0.5,0.5,1e6,1e9,1e-320,3.1", "subnormal"),
    ("0.5,0.5,1e-305,1e9,3.0,3.1", "vanish in law units"),
    ("0.5,0.5,1e6,1e-300,3.0,3.1", "vanish in law units"),
])
def test_csv_values_that_vanish_are_refused(tmp_path, row, message):
    path = tmp_path / "runs.csv"
    path.write_text(f"{HEADER}\n{row}\n0.3,0.7,1e6,1e9,3.0,3.1\n")
    with pytest.raises(TableError, match=message):
        read_csv(path)


def test_csv_column_with_wrong_case_is_not_a_silent_tag(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("weight_a,weight_b,model_size,n_tokens,a_loss,b_Loss\n"
                    "0.5,0.5,1e6,1e9,3.0,3.1\n")
    with pytest.raises(TableError, match="b_Loss.*lower case"):
        read_csv(path)



@pytest.mark.parametrize("column, message", [
    ("b_los", "misspelt loss column of domain 'b'.*name it 'b_loss'"),
    ("b", "misspelt loss column of domain 'b'"),
    ("b-loss", "may not contain 'loss'"),
    ("loss_b", "may not contain 'loss'"),
    ("mixture weight", "may not contain 'loss' or 'weight'"),
])
def test_csv_misspelt_loss_column_is_not_a_silent_tag(tmp_path, column, message):
    """A misspelt loss column would become a row tag and its domain lose every loss; it is
    refused, naming the column. Ordinary tags stay tags."""
    path = tmp_path / "runs.csv"
    path.write_text(f"weight_a,weight_b,model_size,n_tokens,a_loss,{column}\n"
                    "0.5,0.5,1e6,1e9,3.0,3.1\n")
    with pytest.raises(TableError, match=f"column '{column}'.*{message}"):
        read_csv(path)
    path.write_text("weight_a,weight_b,model_size,n_tokens,a_loss,mixture_id,split,b_tokens\n"
                    "0.5,0.5,1e6,1e9,3.0,7,train,5\n")
    assert set(read_csv(path).row_tags) == {"mixture_id", "split", "b_tokens"}

def test_out_of_mixture_as_a_string_is_refused(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text(f"{HEADER},ood_loss\n0.5,0.5,1e6,1e9,3.0,3.1,3.3\n")
    with pytest.raises(TableError, match="not the string"):
        read_csv(path, out_of_mixture="ood")
    assert read_csv(path, out_of_mixture=("ood",)).loss_domains == ("a", "b", "ood")


@pytest.mark.parametrize("kwargs, error, message", [
    ({"seed": 2**70}, ValueError, "seed"),
    ({"seed": -1}, ValueError, "seed"),
    ({"n_restarts": 10**12}, ValueError, "n_restarts"),
    ({"rtol": "a"}, TypeError, "rtol"),
    ({"rtol": -1.0}, ValueError, "rtol"),
    ({"huber_delta": float("inf")}, ValueError, "huber_delta"),
    ({"max_steps": 0}, ValueError, "max_steps"),
    ({"progress": 3}, TypeError, "progress"),
    ({"starts": "abc"}, TypeError, "starts"),
])
def test_fit_refuses_arguments_out_of_range(table, kwargs, error, message):
    with pytest.raises(error, match=message):
        mixscale.fit("capacity", table, **kwargs)


def _wide_table(k, n=3):
    names = tuple(f"d{i}" for i in range(k))
    return mixscale.LossTable(weights=np.full((n, k), 1.0 / k), model_size=np.ones(n),
                              tokens=np.ones(n), losses=np.full((n, k), 3.0),
                              train_domains=names, loss_domains=names, name="wide")


def test_fit_refuses_more_domains_than_it_supports():
    with pytest.raises(TableError, match="1000 training domains.*at most 64"):
        mixscale.fit("capacity", _wide_table(1000))


def _law():
    return CapacityLaw.from_params(b=[0.3, 0.5], c=[2.0, 1.5], H=0.5, A=[0.5, 0.3],
                                   a=[0.3, 0.4], E=[1.0, 1.5])


@pytest.mark.parametrize("kwargs, error, message", [
    ({"N": None}, TypeError, "N"),
    ({"N": 1e-320}, ValueError, "N"),
    ({"D": 10**400}, ValueError, "D"),
    ({"upper": "x"}, TypeError, "upper"),
    ({"upper": [1.5, 1.0]}, ValueError, "domain 0"),
    ({"lower": [0.2, 0.1], "upper": [0.1, 1.0]}, ValueError, "domain 0"),
    ({"lower": [0.6, 0.6]}, ValueError, "sum"),
    ({"target_weights": [np.nan, 1.0]}, ValueError, r"target_weights\[0\]"),
    ({"target_weights": [0.0, 0.0]}, ValueError, "target_weights"),
    ({"n_starts": 1.5}, TypeError, "n_starts"),
    ({"n_starts": 10**7}, ValueError, "n_starts"),
    ({"seed": -1}, ValueError, "seed"),
    ({"tol": float("nan")}, ValueError, "tol"),
    ({"max_steps": -1}, ValueError, "max_steps"),
])
def test_optimal_mixture_refuses_arguments_by_name(kwargs, error, message):
    args = {"N": 100.0, "D": 10.0, **kwargs}
    with pytest.raises(error, match=message):
        mixscale.optimal_mixture(_law(), args.pop("N"), args.pop("D"), **args)


def test_huge_target_weights_give_a_finite_mean():
    res = mixscale.optimal_mixture(_law(), 100.0, 10.0, target_weights=[1e308, 1e308])
    same = mixscale.optimal_mixture(_law(), 100.0, 10.0)
    assert np.isfinite(res.objective) and res.objective == pytest.approx(same.objective)


def test_a_law_that_overflows_at_the_scale_is_refused():
    law = CapacityLaw.from_params(b=[3.0, 0.5], c=[1e306, 1.5], H=1e-3, A=[0.5, 0.3],
                                  a=[0.3, 0.4], E=[1.0, 1.5])
    with pytest.raises(ValueError, match="non-finite"):
        mixscale.optimal_mixture(law, 1e-2, 10.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"model_size": [0.0, 1.0]}, "model_size"),
    ({"model_size": [1e-320, 1.0]}, "subnormal"),
    ({"tokens": [-2.0, 1.0]}, "n_tokens.*got -2$"),
    ({"weights": [[-1.0, 2.0], [0.5, 0.5]]}, "negative weight -1"),
    ({"losses": [[0.0, 1.0], [1.0, 1.0]]}, "loss must be positive"),
    ({"losses": [[1e-320, 1.0], [1.0, 1.0]]}, "subnormal"),
])
def test_loss_table_errors_name_the_entry_in_plain_numbers(kwargs, message):
    args = {"weights": [[0.5, 0.5], [0.2, 0.8]], "model_size": [1.0, 1.0],
            "tokens": [1.0, 1.0], "losses": [[1.0, 1.0], [1.0, 1.0]], **kwargs}
    with pytest.raises(TableError, match=message) as err:
        mixscale.LossTable(**{k: np.asarray(v) for k, v in args.items()},
                           train_domains=("a", "b"), loss_domains=("a", "b"))
    assert "np.float64" not in str(err.value) and "row 1" in str(err.value)


@pytest.mark.parametrize("kwargs, message", [
    ({"out_of_mixture": [1]}, "out_of_mixture"),
    ({"out_of_mixture": 5}, "out_of_mixture"),
    ({"size_unit": "1"}, "size_unit"),
    ({"token_unit": 1e-320}, "token_unit"),
])
def test_read_csv_refuses_bad_options(tmp_path, kwargs, message):
    path = tmp_path / "runs.csv"
    path.write_text(f"{HEADER}\n0.5,0.5,1e6,1e9,3.0,3.1\n")
    with pytest.raises(TableError, match=message):
        read_csv(path, **kwargs)


def test_metrics_of_huge_losses_do_not_overflow():
    obs = np.array([[1e308, 2.0], [3.0, np.nan]])
    pred = np.array([[0.0, 2.5], [3.5, 1.0]])
    m = mixscale.error_metrics(pred, obs, ("a", "b"))
    assert all(np.isfinite(m[k]) for k in ("mre", "mae", "rmse"))
    assert m["rmse"] == pytest.approx(1e308 / np.sqrt(3), rel=1e-12)
    assert m["mae"] == pytest.approx(1e308 / 3, rel=1e-12)


@pytest.mark.parametrize("pred, obs, targets, kw, message", [
    # the first two gave an MRE of 0.0 and of -0.5
    (np.ones((2, 1)), np.array([[-2.0], [-2.0]]), ["a"], {}, "obs must be positive .* -2"),
    (np.ones((2, 1)), np.array([[2.0], [0.0]]), ["a"], {}, "obs must be positive .* got 0"),
    (np.ones((2, 1)), np.array([[2.0], [np.inf]]), ["a"], {}, "got inf"),
    # one name for three columns was scored as that one column
    (np.ones((4, 3)), np.full((4, 3), 2.0), ["a"], {}, "1 target names for 3 loss columns"),
    (np.ones((4, 3)), np.full((4, 3), 2.0), list("abcd"), {}, "4 target names for 3"),
    (np.ones(3), np.full(3, 2.0), list("abc"), {}, r"pred must be \(n, M\)"),
    (np.ones((4, 3)), np.full((4, 3), 2.0), list("abc"), {"own_weight": np.ones(3)},
     r"own_weight must have the losses' shape \(4, 3\)"),
])
def test_error_metrics_refuse_what_they_cannot_score(pred, obs, targets, kw, message):
    with pytest.raises(ValueError, match=message):
        mixscale.error_metrics(pred, obs, targets, **kw)


def test_evaluate_refuses_a_table_without_measurements(table):
    law = CapacityLaw.from_params(b=[0.3] * 4, c=[1.0] * 4, H=1.0, A=[0.5] * 4, a=[0.3] * 4,
                                  E=[1.0] * 4)
    empty = table.take([0, 1])
    empty = mixscale.LossTable(
        weights=empty.weights, model_size=empty.model_size, tokens=empty.tokens,
        losses=np.full(empty.losses.shape, np.nan), train_domains=empty.train_domains,
        loss_domains=empty.loss_domains, name="empty")
    with pytest.raises(TableError, match="empty: none of the law's targets"):
        mixscale.evaluate(law, empty, empty.loss_domains, empty.train_domains, 1e6, 1e9)
