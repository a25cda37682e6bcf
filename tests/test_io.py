"""Saved fits: strict JSON, every natural parameter written, and a complete validation on load
(each corruption is refused with one message naming the file and the field)."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

from mixscale import CapacityLaw, FitResult, load_fit, save_fit
from mixscale._kinks import KinkCertificate
from mixscale.cli import main

DOMAINS = ("a", "b", "c", "d")


@pytest.fixture
def saved(tmp_path):
    law = CapacityLaw.from_params(b=[0.3, 0.5, 0.4, 0.6], c=[2.0, 1.5, 1.0, 2.5], H=0.5,
                                  A=[0.5, 0.3, 0.4, 0.6], a=[0.3, 0.4, 0.2, 0.5],
                                  E=[1.0, 1.5, 0.8, 2.0])
    res = FitResult(law=law, law_options={"variant": "full"}, targets=DOMAINS,
                    train_domains=DOMAINS, size_unit=1e6, token_unit=1e9,
                    train_metrics={"mre": 0.01, "mre_high_weight": float("nan")},
                    validation_metrics=None, objectives=np.array([0.1, np.inf]),
                    converged=np.array([True, False]), steps=np.array([10, 400]), best=0,
                    n_params=21, notes=(), method="lm", timings={"total_s": 1.0},
                    fitted_scales={"model_size": (3e7, 3e8), "tokens": (4e9, 4e9)},
                    fitted_weight_max=(0.5, 0.25, 1.0, 0.0),
                    law_converged=True, polished=(0,), finished=(0,),
                    kink_certificate=KinkCertificate(
                        params=np.array([0.5, -1.0]), objective=0.1, start_objective=0.2,
                        steps=12, active_kinks=1, tangential_cosine=float("nan"), sigma=5e-6,
                        certified=False, escapes=0, second_order_steps=7), kink_kept=True,
                    kink_smoothed=True, objective=0.1, gradient_cosines=np.array([3e-5, np.inf]),
                    nested_objectives={"capacity (tied)": 0.12, "capacity (capacity)": 0.3})
    path = tmp_path / "fit.json"
    save_fit(res, path)
    return path, res


def test_round_trip_is_exact_and_strict_json(saved):
    path, res = saved
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text  # strict JSON: null instead
    back = load_fit(path)
    h = jnp.array([0.0, 0.2, 0.3, 0.5])
    np.testing.assert_array_equal(np.asarray(back.law.predict(h, 30.0, 4.0)),
                                  np.asarray(res.law.predict(h, 30.0, 4.0)))
    assert json.loads(text)["natural_parameters"].keys() == {"b", "c", "H", "A", "a", "E"}
    assert back.objectives[1] == np.inf and back.train_metrics["mre_high_weight"] is None
    assert back.fitted_scales == res.fitted_scales
    assert back.fitted_weight_max == res.fitted_weight_max
    # how the fit ended: the converged flag, the stages' restarts and the kink certificate
    assert back.law_converged and back.polished == (0,) and back.finished == (0,)
    assert back.kink_kept
    cert = back.kink_certificate
    assert not cert.certified and cert.sigma == 5e-6 and cert.steps == 12
    assert cert.second_order_steps == 7
    assert np.isnan(cert.tangential_cosine)  # written as null
    np.testing.assert_array_equal(cert.params, res.kink_certificate.params)
    # the returned law's objective, each restart's optimality measure (not finite: null, read
    # as NaN), the nested variants' objectives and the kink continuation's flag
    assert back.objective == 0.1 and back.kink_smoothed
    np.testing.assert_array_equal(back.gradient_cosines, [3e-5, np.nan])
    assert back.nested_objectives == res.nested_objectives


def test_a_file_with_a_byte_order_mark_loads(saved, tmp_path):
    """An editor may save the file with a UTF-8 byte-order mark (read CSVs may have one too):
    it was refused as "not a JSON file"."""
    path, res = saved
    marked = tmp_path / "bom.json"
    marked.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_fit(marked).objectives[0] == res.objectives[0]


def test_a_file_written_before_the_fits_ending_was_saved_loads(saved, tmp_path):
    """Without ``law_converged``, the polish's and finish's restarts and the certificate: a law
    fitted as one problem takes its best restart's flag; no stages, no certificate."""
    path, _ = saved
    doc = json.loads(path.read_text())
    for key in ("law_converged", "polished", "finished", "kink_certificate", "kink_kept",
                "kink_smoothed", "objective", "gradient_cosines", "nested_objectives"):
        del doc[key]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    back = load_fit(old)
    assert back.law_converged and back.polished == () and back.kink_certificate is None
    assert not back.kink_kept and not back.kink_smoothed
    assert np.isnan(back.objective) and back.gradient_cosines is None
    assert back.nested_objectives == {}
    doc["converged"] = [False, False]
    old.write_text(json.dumps(doc))
    assert not load_fit(old).law_converged


def test_a_certificate_written_before_the_second_order_pass_loads_without_it(saved, tmp_path):
    path, _ = saved
    doc = json.loads(path.read_text())
    del doc["kink_certificate"]["second_order_steps"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    cert = load_fit(old).kink_certificate
    assert cert.second_order_steps is None and cert.steps == 12


def test_extrapolation_notes_name_the_axis_and_how_far(saved, tmp_path):
    """Within the fitted ranges: no note; beyond them: how many times the largest (or below the
    smallest); an axis the fit saw one value of: unidentified at any other value. A file written
    before the ranges were recorded loads with none and notes nothing."""
    path, res = saved
    assert res.extrapolation_notes(1e8, 4e9) == []
    assert res.extrapolation_notes(3e8, 4e9 * (1 + 1e-12)) == []  # the ends, to rounding
    (note,) = res.extrapolation_notes(3e9, 4e9)
    assert "3e+09 parameters is 10 times the largest model size fitted (3e+08)" in note
    (note,) = res.extrapolation_notes(1e7, 4e9)
    assert "below the smallest model size fitted (3e+07, 3 times it)" in note
    (note,) = res.extrapolation_notes(1e8, 8e9)
    assert "the fit saw one token budget (4e+09 tokens)" in note and "8e+09 tokens" in note
    assert len(res.extrapolation_notes(1e10, 1e9)) == 2
    # a table's rows: both ends of a range beyond the fitted one, each other value of a one-value
    # axis
    notes = res.extrapolation_notes([1e7, 1e8, 6e8], [4e9, 8e9, 1.6e10])
    assert [n.split(" is ")[0] for n in notes[:2]] == ["6e+08 parameters", "1e+07 parameters"]
    assert "at 2 other token budgets (8e+09–1.6e+10 tokens)" in notes[2] and len(notes) == 3
    for bad in (0.0, -1.0, np.nan, np.inf, []):
        with pytest.raises(ValueError, match="model_size must be finite positive"):
            res.extrapolation_notes(bad, 4e9)
    doc = json.loads(path.read_text())
    del doc["fitted_scales"], doc["fitted_weight_max"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    back = load_fit(old)
    assert back.fitted_scales is None and back.extrapolation_notes(1e12, 1e12) == []
    assert back.fitted_weight_max is None


def _set(doc, dotted, value):
    *parents, last = dotted.split(".")
    node = doc
    for p in parents:
        node = node[p]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value


_DELETE = object()

CORRUPTIONS = [
    ("law", "nope", "registered law"),
    ("law_options", {"variant": "cubic"}, "no variant"),
    ("law_options", ["variant"], "law_options"),
    ("fields.log_b", "0.3", "fields.log_b"),
    ("fields.log_b", [0.1, None, 0.2, 0.3], "fields.log_b"),
    ("fields.log_b", [1000.0, 0.1, 0.2, 0.3], "overflow"),
    ("fields.log_c", [0.1, 0.2], "do not make"),
    ("fields.targets", [0, 9, 2, 3], "must index"),
    ("fields.extra", [1.0], "not fields"),
    ("train_domains", ["a", "b", "b", "d"], "duplicate"),
    ("train_domains", ["a", "b", "c"], "train_domains lists 3"),
    ("targets", ["a", "b", "d", "c"], "do not point"),
    ("size_unit", 0, "size_unit"),
    ("token_unit", 1e-320, "token_unit"),
    ("size_unit", "1e6", "size_unit"),
    ("objectives", "many", "objectives"),
    ("converged", [True], "converged"),
    ("steps", [1, -2], "steps"),
    ("steps", [10**30, 400], "steps"),
    ("best", 5, "best"),
    ("notes", [1], "notes"),
    ("targets", _DELETE, "missing fields"),
    ("best", True, "best"),
    ("best", 1, "the best restart"),
    ("objectives", [None, None], "the best restart"),
    ("law_options", {"variant": "tied"}, "law_options gives variant"),
    ("fields.variant", "capacity", "does not use"),
    ("fields.weight_floor", 1e308, "weight_floor"),
    ("fields.weight_floor", "x", "weight_floor"),
    ("fields.targets", [0, 1, 2, True], "targets"),
    ("train_domains", ["a", "a", "c", "d"], "duplicate"),
    ("fitted_scales", [1.0, 2.0], "fitted_scales"),
    ("fitted_scales.tokens", [4e9], "fitted_scales.tokens"),
    ("fitted_scales.tokens", [4e9, -1.0], "fitted_scales.tokens"),
    ("fitted_scales.model_size", [3e8, 3e7], r"smallest 3e\+08 is above largest"),
    ("fitted_scales.model_size", _DELETE, "fitted_scales"),
    ("fitted_weight_max", [0.5, 0.5], "fitted_weight_max"),
    ("fitted_weight_max", [0.5, 0.5, 1.5, 0.0], "must be a weight in .0, 1., got 1.5"),
    ("fitted_weight_max", [0.5, True, 1.0, 0.0], "must be a weight in .0, 1., got True"),
    ("law_converged", "yes", "law_converged"),
    ("polished", [0, 2], "polished"),
    ("finished", [True], "finished"),
    ("kink_certificate", {"sigma": 1e-6}, "kink_certificate"),
    ("kink_certificate.params", [], r"kink_certificate.params"),
    ("kink_certificate.steps", -1, r"kink_certificate.steps"),
    ("kink_certificate.certified", 1, r"kink_certificate.certified"),
    ("kink_certificate.sigma", "small", r"kink_certificate.sigma"),
    ("kink_certificate.second_order_steps", -2, r"kink_certificate.second_order_steps"),
    ("kink_certificate.second_order_steps", True, r"kink_certificate.second_order_steps"),
    ("kink_kept", 1, "kink_kept"),
    ("kink_smoothed", "no", "kink_smoothed"),
    # each of these loaded before: a negative smoothing predicted losses of 3e7, a positive one
    # a smoothed law; edited natural parameters were ignored; an integer beyond float64 was an
    # internal error (OverflowError); bools passed as target indices
    ("fields.floor_smoothing", -5.0, "smoothing must be a non-negative number"),
    ("fields.floor_smoothing", 5.0, r"fields.floor_smoothing must be 0 in a fitted law"),
    ("fields.floor_smoothing_value", 5.0, r"fields.floor_smoothing_value must be null"),
    ("natural_parameters.H", 1000.0, r"natural_parameters.H differs from the value the law's"),
    ("natural_parameters", {"H": 0.5}, "natural_parameters must list the law's parameters"),
    ("fields.log_b", [10**400, 0.1, 0.2, 0.3], "an integer too large for a float"),
    ("size_unit", 10**400, "size_unit: expected a finite number, got an integer of 401 digits"),
    ("objectives", [-0.1, 0.2], "objectives must be non-negative numbers or null"),
    ("fields.targets", [False, True, 2, 3], "fields.targets must give one training-domain"),
    ("objective", -1.0, "objective must be a non-negative number or null"),
    ("objective", "0.1", "objective: expected a number"),
    ("gradient_cosines", [0.1], "gradient_cosines must be a list of 2"),
    ("gradient_cosines", [0.1, True], "gradient_cosines: expected a number"),
    ("nested_objectives", [0.1], "nested_objectives must be a JSON object"),
    ("nested_objectives", {"capacity (tied)": -2.0}, r"nested_objectives.capacity \(tied\)"),
]


@pytest.mark.parametrize("field, value, message", CORRUPTIONS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CORRUPTIONS)])
def test_corrupted_file_is_refused_naming_file_and_field(saved, field, value, message, capsys):
    path, _ = saved
    doc = json.loads(path.read_text())
    _set(doc, field, value)
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=message) as err:
        load_fit(path)
    assert str(path) in str(err.value)
    # the command line: one line, exit status 2
    assert main(["optimize", str(path), "--model-size", "1B", "--tokens", "1B"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message.split()[0] in lines[0]


@pytest.mark.parametrize("content, message", [
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b"\xff\xfe\x00binary", "not a text"),
    (b"{not json", "not a JSON file"),
    (b'{"format": "other"}', "not a mixscale fit file"),
    (b'{"format": 1' + b"9" * 5000 + b"}", "unreadable JSON"),
])
def test_unreadable_files_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_fit(path)
    with pytest.raises(ValueError, match="no such file"):
        load_fit(tmp_path / "absent.json")


# ------------------------------------------------------------------- bootstrap replicates
@pytest.fixture
def saved_boot(tmp_path):
    """A fit with 3 bootstrap replicates (the second failed) written to a file."""
    import dataclasses

    import equinox as eqx
    import jax

    from mixscale import Bootstrap

    law = CapacityLaw.from_params(b=[0.3, 0.5, 0.4, 0.6], c=[2.0, 1.5, 1.0, 2.5], H=0.5,
                                  A=[0.5, 0.3, 0.4, 0.6], a=[0.3, 0.4, 0.2, 0.5],
                                  E=[1.0, 1.5, 0.8, 2.0])
    params = eqx.filter(law, eqx.is_inexact_array)
    batch = jax.tree_util.tree_map(lambda x: jnp.stack([x, x + 0.01]), params)
    boot = Bootstrap(params=batch, objectives=np.array([0.1, np.inf, 0.2]),
                     converged=np.array([True, False, False]), seed=7, n_groups=3,
                     multiplicities=np.array([[1, 1, 1], [3, 0, 0], [0, 2, 1]]), n_rows=6)
    res = FitResult(law=law, law_options={"variant": "full"}, targets=DOMAINS,
                    train_domains=DOMAINS, size_unit=1e6, token_unit=1e9,
                    train_metrics={"mre": 0.01}, validation_metrics=None,
                    objectives=np.array([0.1]), converged=np.array([True]),
                    steps=np.array([10]), best=0, n_params=21, notes=(), method="lm",
                    timings={"total_s": 1.0}, bootstrap=boot)
    path = tmp_path / "boot.json"
    save_fit(res, path)
    return path, dataclasses.replace(res)


def test_bootstrap_round_trip(saved_boot):
    path, res = saved_boot
    doc = json.loads(path.read_text())
    assert doc["bootstrap"]["objectives"] == [0.1, None, 0.2]
    back = load_fit(path).bootstrap
    assert back.n_replicates == 3 and back.n_failed == 1 and back.n_ok == 2
    assert back.seed == 7 and back.n_groups == 3 and back.n_rows == 6
    np.testing.assert_array_equal(back.multiplicities, res.bootstrap.multiplicities)
    np.testing.assert_array_equal(back.converged, res.bootstrap.converged)
    for name in ("log_b", "log_c", "log_H", "log_A", "log_a", "log_E"):
        np.testing.assert_array_equal(np.asarray(getattr(back.params, name)),
                                      np.asarray(getattr(res.bootstrap.params, name)))


BOOT_CORRUPTIONS = [
    ("bootstrap", [1, 2], "bootstrap must be"),
    ("bootstrap.seed", -1, "bootstrap.seed"),
    ("bootstrap.n_groups", 0, "bootstrap.n_groups"),
    ("bootstrap.n_rows", 2, "bootstrap.n_rows"),
    ("bootstrap.huber_delta", 0.0, "bootstrap.huber_delta"),
    ("bootstrap.seconds", -1.0, "bootstrap.seconds"),
    ("bootstrap.objectives", [0.1], "bootstrap.objectives"),
    ("bootstrap.objectives", [0.1, None, -0.2], "bootstrap.objectives"),
    ("bootstrap.objectives", [0.1, None, "0.2"], "bootstrap.objectives"),
    ("bootstrap.converged", [True, True, False], "cannot have converged"),
    ("bootstrap.converged", [True, False], "bootstrap.converged"),
    ("bootstrap.multiplicities", [[1, 1, 1], [3, 0, 0], [0, 2, 2]], "multiplicities"),
    ("bootstrap.multiplicities", [[1, 1, 1], [3, 0, 0]], "multiplicities"),
    ("bootstrap.multiplicities", [[1, 1, 1], [3, 0, 0], [0, 2, 1.0]], "multiplicities"),
    ("bootstrap.fields.log_b", [[0.1, 0.2, 0.3, 0.4]], "must have shape"),
    ("bootstrap.fields.log_b", [[0.1, 0.2, 0.3, 0.4], [0.1, None, 0.3, 0.4]],
     "bootstrap.fields.log_b"),
    ("bootstrap.fields.log_b", [[0.1, 0.2, 0.3, 0.4], [1000.0, 0.2, 0.3, 0.4]], "overflow"),
    ("bootstrap.fields.log_zz", [[0.1], [0.2]], "exactly the law's fitted fields"),
    ("bootstrap.fields.log_E", _DELETE, "exactly the law's fitted fields"),
    ("bootstrap.extra", 1, "unknown fields"),
    ("bootstrap.seed", _DELETE, "missing fields"),
]


@pytest.mark.parametrize("field, value, message", BOOT_CORRUPTIONS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(BOOT_CORRUPTIONS)])
def test_corrupted_bootstrap_is_refused(saved_boot, field, value, message, capsys):
    path, _ = saved_boot
    doc = json.loads(path.read_text())
    _set(doc, field, value)
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=message) as err:
        load_fit(path)
    assert str(path) in str(err.value)
    assert main(["optimize", str(path), "--model-size", "1B", "--tokens", "1B"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "bootstrap" in lines[0]


@pytest.mark.parametrize("key, value", [("size_unit", 1e-300), ("token_unit", 1e-300)])
def test_units_that_overflow_the_arguments_blame_the_file(saved, key, value, capsys):
    """A unit in the file that turns --model-size or --tokens into inf or 0 law units is the
    file's fault, not the user's --model-size."""
    path, _ = saved
    doc = json.loads(path.read_text())
    doc[key] = value
    path.write_text(json.dumps(doc))
    assert main(["optimize", str(path), "--model-size", "1B", "--tokens", "1B"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and key in lines[0]


def test_parameters_that_overflow_at_the_scale_are_refused(saved, capsys):
    path, _ = saved
    doc = json.loads(path.read_text())
    doc["fields"]["log_b"][0] = 6.0  # b = 403: x^(-b) underflows, c x^(-b) with c = e^700 ...
    doc["fields"]["log_c"][0] = 700.0
    del doc["natural_parameters"]  # they would no longer match the fields
    path.write_text(json.dumps(doc))
    rc = main(["optimize", str(path), "--model-size", "1M", "--tokens", "1B", "--json"])
    captured = capsys.readouterr()
    if rc == 0:  # a finite answer is fine; a non-finite one is not
        out = json.loads(captured.out, parse_constant=_refuse_constant)
        assert all(np.isfinite(v) for v in out["predicted_losses"].values())
    else:
        lines = captured.err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and "non-finite" in lines[0] and str(path) in lines[0]


def _refuse_constant(name):
    raise AssertionError(f"non-standard JSON constant {name}")
