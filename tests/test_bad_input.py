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


def test_out_of_mixture_as_a_string_is_refused(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text(f"{HEADER},ood_loss\n0.5,0.5,1e6,1e9,3.0,3.1,3.3\n")
    with pytest.raises(TableError, match="not the string"):
        read_csv(path, out_of_mixture="ood")
    assert read_csv(path, out_of_mixture=("ood",)).loss_domains == ("a", "b", "ood")
