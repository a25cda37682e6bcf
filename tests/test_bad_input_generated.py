"""Generated bad input: malformed tables, fitted files, command lines and Python calls.

Every case must end in one of two ways:

* a refusal: exit status 2 and exactly one line on stderr that names the argument, the file or
  the field (Python: a ``TypeError`` or ``ValueError`` whose one-line message names the
  argument), or
* a result: exit status 0 and only finite numbers in the output (strict JSON with ``--json``).

A traceback, a NaN or infinity in a result, a multi-line or anonymous refusal, or a numpy repr in
a message fails the test. The cases are drawn by hypothesis, derandomised (the same cases on
every run) with no example database. Most generated cases are refused before any JAX work; the
ones that run share the shapes of one small law (K = 4, pile4's domains), so they compile once.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import mixscale
from mixscale import CapacityLaw, FitResult, save_fit
from mixscale._evaluate import predict_in_blocks
from mixscale.cli import main
from mixscale.data import LossTable, TableError, read_csv, write_csv

DOMAINS = ("github", "gutenberg", "stackexchange", "wikipedia")
NON_FINITE = re.compile(r"\b(nan|inf|infinity)\b", re.IGNORECASE)


def _settings(n: int):
    return settings(max_examples=n, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# --------------------------------------------------------------------------- fixtures
def _law() -> CapacityLaw:
    return CapacityLaw.from_params(b=[0.15, 0.35, 0.14, 0.34], c=[0.47, 0.78, 0.62, 4.1],
                                   H=20.0, A=[0.24, 0.63, 1.15, 0.11], a=[0.47, 0.62, 0.11, 0.81],
                                   E=[0.63, 2.0, 0.66, 2.1])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A fitted file of the law above (no fit needed) and a CSV of six of its runs."""
    root = tmp_path_factory.mktemp("generated")
    law = _law()
    res = FitResult(law=law, law_options={"variant": "full"}, targets=DOMAINS,
                    train_domains=DOMAINS, size_unit=1e6, token_unit=1e9,
                    train_metrics={"mre": 0.01}, validation_metrics=None,
                    objectives=np.array([1e-4, np.inf]), converged=np.array([True, False]),
                    steps=np.array([10, 400]), best=0, n_params=21, notes=(), method="lm",
                    timings={"total_s": 1.0})
    fit_path = root / "fit.json"
    save_fit(res, fit_path)
    weights = np.random.default_rng(0).dirichlet(np.ones(4), 6)
    size = np.array([90.0, 200.0, 440.0] * 2)
    tokens = np.array([4.0] * 3 + [8.0] * 3)

    losses = predict_in_blocks(law, weights, size, tokens)
    csv_path = root / "runs.csv"
    write_csv(LossTable(weights=weights, model_size=size, tokens=tokens, losses=losses,
                        train_domains=DOMAINS, loss_domains=DOMAINS), csv_path)
    k = 65  # one training domain more than fits support
    header = [f"weight_d{i}" for i in range(k)] + ["model_size", "n_tokens"] + [
        f"d{i}_loss" for i in range(k)]
    row = [repr(1 / k)] * k + ["1e8", "1e9"] + ["3.0"] * k
    (root / "wide.csv").write_text(",".join(header) + "\n" + (",".join(row) + "\n") * 4)
    return {"root": root, "fit": fit_path, "csv": csv_path}


# --------------------------------------------------------------------------- checks
def _run(argv):
    """``main(argv)`` in this process: ``(exit status, stdout, stderr)``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as stop:
            rc = stop.code
    return rc, out.getvalue(), err.getvalue()


def _strict(text):
    """``json.loads`` that fails on NaN and Infinity (not JSON)."""
    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name} in the output")
    return json.loads(text, parse_constant=refuse)


def _all_finite(doc) -> bool:
    """Whether every number in a parsed JSON document is finite."""
    if isinstance(doc, float):
        return math.isfinite(doc)
    if isinstance(doc, dict):
        return all(_all_finite(v) for v in doc.values())
    if isinstance(doc, list):
        return all(_all_finite(v) for v in doc)
    return True


def _check_outcome(rc, out, err, names, as_json=False):
    """Exit 2 with one line naming one of ``names``, or exit 0 with finite output."""
    assert "Traceback" not in err, err
    if rc == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1, f"refusal of {len(lines)} lines: {err!r}"
        assert "error:" in lines[0] and "internal error" not in lines[0], lines[0]
        assert any(str(n) in lines[0] for n in names), f"{lines[0]!r} names none of {names}"
        assert "np.float64" not in lines[0] and "Array(" not in lines[0], lines[0]
        event("refused")
        return "refused"
    assert rc == 0, f"exit status {rc}: {err!r}"
    assert not NON_FINITE.search(out), out
    if as_json:
        assert _all_finite(_strict(out))
    event("result")
    return "result"


def _check_python_error(err: BaseException, names):
    """A ``TypeError``/``ValueError`` with a one-line message naming one of ``names``."""
    assert isinstance(err, (TypeError, ValueError)), f"{type(err).__name__}: {err}"
    message = str(err)
    assert "\n" not in message.strip(), message
    assert "np.float64" not in message and "Traced<" not in message, message
    assert any(n in message for n in names), f"{message!r} names none of {names}"


# --------------------------------------------------------------------------- strategies
NUMBERS = ["", " ", "abc", "nan", "NaN", "inf", "-inf", "-1", "0", "-0", "1e-320", "1e-300",
           "1e400", "1e308", "-1e308", "0x10", "1,5", "\u0661", "None", "true", "3.0", "2.5",
           "0.25", "1", "1e6", "1e9", "8e9", "2e8", "1e-3", "1" * 400, "1e", "--1", "+3"]
cells = st.one_of(st.sampled_from(NUMBERS), st.text(max_size=6),
                  st.floats(allow_nan=True, allow_infinity=True).map(repr))


@st.composite
def broken_tables(draw, text):
    """The CSV text of the fixture with one or two of: a cell replaced, a header name changed,
    a row cut or extended, a blank line, a BOM, undecodable bytes or the file cut short."""
    lines = text.splitlines()
    header = lines[0].split(",")
    rows = [line.split(",") for line in lines[1:]]
    for _ in range(draw(st.integers(1, 2))):
        kind = draw(st.sampled_from(["cell", "cell", "cell", "column", "header", "short",
                                     "long", "blank", "drop"]))
        if not rows and kind != "header":
            continue
        if kind == "cell":
            r = draw(st.integers(0, len(rows) - 1))
            c = draw(st.integers(0, len(header) - 1))
            rows[r][c] = draw(cells).replace(",", ";").replace("\n", " ").replace("\r", " ")
        elif kind == "column":  # one value in every row: an unmeasured target, zero weights
            c = draw(st.integers(0, len(header) - 1))
            value = draw(st.sampled_from(["", "nan", "0", "-1", "1e308", "1e-320", "x"]))
            for row in rows:
                row[c] = value
        elif kind == "header":
            c = draw(st.integers(0, len(header) - 1))
            header[c] = draw(st.one_of(
                st.sampled_from(["", "weight_", "_loss", "Model_Size", "N_TOKENS", "weight_x",
                                 "x_loss", header[(c + 1) % len(header)], header[c].upper(),
                                 header[c].title(), " " + header[c] + " ", header[c] + '"']),
                st.text(max_size=8).map(lambda s: s.replace(",", "").replace("\n", ""))))
        elif kind == "short":
            r = draw(st.integers(0, len(rows) - 1))
            rows[r] = rows[r][:-1]
        elif kind == "long":
            r = draw(st.integers(0, len(rows) - 1))
            rows[r] = [*rows[r], "1"]
        elif kind == "blank":
            rows.insert(draw(st.integers(0, len(rows) - 1)), [""])
        elif kind == "drop":
            rows = rows[: draw(st.integers(0, len(rows) - 1))]
    body = "\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n"
    data = body.encode("utf-8", errors="replace")
    kind = draw(st.sampled_from(["none", "none", "none", "bytes", "cut", "bom"]))
    if kind == "bytes":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff\xfe", b"\x00", b"\xc3", b'"']))\
            + data[at:]
    elif kind == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif kind == "bom":
        data = b"\xef\xbb\xbf" + data
    return data


JUNK = st.one_of(
    st.none(), st.booleans(),
    st.sampled_from([0, -1, 1, 2, 3, 4, 10**30, -(10**30)]),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, -1.0, 1e308, -1e308, 1e-320, 700.0, -700.0, 1e6,
                     math.nan, math.inf, -math.inf]),
    st.sampled_from(["", "x", "full", "tied", "capacity", "github", "1e6", "NaN"]),
    st.lists(st.sampled_from([0.1, -5.0, 800.0, math.nan, "a", None, 2]), max_size=5),
    st.lists(st.lists(st.sampled_from([0.1, 1.0]), max_size=3), max_size=3),
    st.dictionaries(st.sampled_from(["a", "variant", "mre"]), st.sampled_from([1, "x", None]),
                    max_size=2),
)


def _paths(doc, prefix=()):
    """Every path into a JSON document (keys and list indices), parents before children."""
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*prefix, i))


@st.composite
def broken_fit_files(draw, doc):
    """The fitted file's JSON with one to three values replaced, deleted or added, written with
    bare NaN/Infinity where they occur; sometimes the text is cut short instead."""
    doc = json.loads(json.dumps(doc))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
        if action == "replace" or (action == "delete" and isinstance(parent, list)):
            parent[path[-1]] = draw(JUNK)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "law", "best", "format"]))] = draw(JUNK)
        else:
            parent.append(draw(JUNK))
        if not isinstance(doc, dict):
            break
    text = json.dumps(doc, allow_nan=True)
    if draw(st.integers(0, 9)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return text


QUANTITIES_OK = ["1B", "20B", "1e9", "680M", "1T", "1e308", " 7B ", "2.5e10", "1K"]
QUANTITIES = QUANTITIES_OK + ["0", "-1", "1e-300", "nan", "inf", "1e400", "abc", "", "0.5",
                              "1e300T", "1e-5M", "B"]
NAMES_OK = list(DOMAINS)
NAMES = NAMES_OK + ["", "GitHub", "openhermes", "github ", "a=b"]
VALUES_OK = ["0", "0.1", "0.5", "1", "0.3", "0.05"]
VALUES = VALUES_OK + ["1.5", "-0.1", "nan", "inf", "1e-320", "1e308", "x", "", "2"]


@st.composite
def optimize_argv(draw, fit_path):
    """``optimize`` command lines: half of them drawn from valid values only (they may still
    be refused, e.g. caps that sum below 1), half from valid and invalid ones."""
    ok = draw(st.booleans())
    quantities = QUANTITIES_OK if ok else QUANTITIES
    argv = ["optimize", str(fit_path), "--model-size", draw(st.sampled_from(quantities)),
            "--tokens", draw(st.sampled_from(quantities))]
    for option in ("--target", "--upper", "--lower"):
        for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
            values = draw(st.lists(st.builds(
                lambda n, v, sep: f"{n}{sep}{v}", st.sampled_from(NAMES_OK if ok else NAMES),
                st.sampled_from(VALUES_OK if ok else VALUES),
                st.sampled_from(["="] if ok else ["=", ":", "=="])), min_size=1, max_size=2))
            argv += [option, *values]
    if ok or draw(st.booleans()):  # two starts when valid: one compilation for every case
        argv += ["--starts", draw(st.sampled_from(["2"] if ok else ["2", "0", "-1", "1.5",
                                                                    "1025", "x", ""]))]
    if draw(st.booleans()):
        argv += ["--seed", draw(st.sampled_from(["0", "5"] if ok else [
            "0", "-1", "1.5", str(2**32), str(2**64), "x"]))]
    if draw(st.booleans()):
        argv.append("--json")
    if not ok and draw(st.integers(0, 4)) == 0:
        argv.insert(draw(st.integers(1, len(argv))), draw(st.sampled_from(
            ["--bogus", "-x", "--model-size", "--json=1", "extra"])))
    return argv


FIT_OPTIONS = {
    "--seed": ["-1", "1.5", str(2**32), str(2**64), "x", "", "nan", "0", "7"],
    "--restarts": ["0", "-1", "1.5", "4097", "1000000000", "x", "", "1", "8"],
    "--validation-fraction": ["-0.1", "nan", "1", "1.5", "inf", "x", "", "0", "0.2", "0.99"],
    "--model-size": ["123M", "0", "-1", "1e-300", "nan", "x", "200M", "90M"],
    "--tokens": ["1e-300", "7.5B", "nan", "x", "8B", "-1"],
    "--tokens-range": ["1B 2B", "2B 1B", "x y", "nan 1B", "1B"],
    "--law": ["nope", "capacity", "", "CAPACITY", "additive"],
    "--variant": ["cubic", "full", "tied", ""],
    "--method": ["newton", "lm", ""],
    "--split": ["train", "valid"],
    "--out-of-mixture": ["openhermes", ""],
    "--out": ["{root}", "{root}/missing/fit.json", "{root}/ok.json"],
}


@st.composite
def fit_argv(draw, root):
    """``fit`` command lines of one to four options, valid or not, on a bundled table, a CSV,
    a 65-domain CSV, a directory or a missing name."""
    dataset = draw(st.sampled_from(["pile4", "slimpajama7", "no-such-table", str(root),
                                    str(root / "runs.csv"), str(root / "wide.csv")]))
    argv = ["fit", dataset]
    for option in draw(st.lists(st.sampled_from(sorted(FIT_OPTIONS)), min_size=1, max_size=4,
                                unique=True)):
        value = draw(st.sampled_from(FIT_OPTIONS[option])).format(root=root)
        argv += [option, *value.split(" ")] if value else [option, value]
    return argv


# --------------------------------------------------------------------------- the tests
@_settings(90)
@given(data=st.data())
def test_generated_tables_are_refused_by_name_or_evaluated(files, data):
    payload = data.draw(broken_tables(files["csv"].read_text()))
    path = files["root"] / "broken.csv"
    path.write_bytes(payload)
    extra = data.draw(st.sampled_from([[], [], ["--json"], ["--out-of-mixture", "x"],
                                       ["--model-size", "200M"]]))
    rc, out, err = _run(["evaluate", files["fit"], path, *extra])
    _check_outcome(rc, out, err, [str(path), "broken:", *extra[:1]], as_json="--json" in extra)


@_settings(90)
@given(data=st.data())
def test_generated_fit_files_are_refused_by_name_or_used(files, data):
    text = data.draw(broken_fit_files(json.loads(files["fit"].read_text())))
    path = files["root"] / "broken.json"
    path.write_text(text)
    if data.draw(st.booleans()):
        argv = ["optimize", path, "--model-size", "1B", "--tokens", "20B", "--starts", "2",
                "--json"]
    else:
        argv = ["evaluate", path, files["csv"], "--json"]
    rc, out, err = _run(argv)
    _check_outcome(rc, out, err, [str(path)], as_json=True)


@_settings(50)
@given(data=st.data())
def test_generated_optimize_arguments(files, data):
    argv = data.draw(optimize_argv(files["fit"]))
    rc, out, err = _run(argv)
    names = [a.split("=")[0] for a in argv if a.startswith("-")] + [
        str(files["fit"]), "argument", "unrecognized"]
    _check_outcome(rc, out, err, names, as_json="--json" in argv)


class _Reached(BaseException):
    """The command line accepted every argument and called the fitter (a BaseException, so
    that the command line's catch-all for internal errors lets it through)."""


def _fit_stub(spec, table, *, validation, n_restarts, seed, method, progress):
    """In place of :func:`mixscale.fit`: whatever reaches the fitter must be in range."""
    assert isinstance(table, LossTable) and table.n_train_domains <= 64
    assert validation is None or isinstance(validation, LossTable)
    assert 1 <= n_restarts <= 4096 and 0 <= seed < 2**32 and method in ("lm", "lbfgs")
    raise _Reached


@_settings(50)
@given(data=st.data())
def test_generated_fit_arguments_are_checked_before_fitting(files, data):
    argv = data.draw(fit_argv(files["root"]))
    with mock.patch("mixscale.fit", _fit_stub):
        try:
            rc, out, err = _run(argv)
        except _Reached:
            event("accepted: reached the fitter")
            return
    names = [a for a in argv if a.startswith("--")] + [argv[1], "argument", "unrecognized"]
    _check_outcome(rc, out, err, names)


OPT_VALUES = {
    "N": [None, "1000", 0.0, -1.0, 1e-320, math.nan, math.inf, 10**400, [1.0, 2.0], True,
          np.float32(300.0), 1000.0, 300],
    "D": [None, "1", 0, -5.0, math.nan, 1e308, 10.0, np.array(20.0)],
    "target_weights": [None, "x", [1.0], [1.0, 1.0, 1.0, math.nan], [0.0] * 4, [-1.0, 1, 1, 1],
                       [1e308] * 4, [1, 0, 0, 0], [[1, 1], [1, 1]]],
    "lower": [None, "x", [0.3] * 4, [-0.1, 0, 0, 0], [0.9, 0.5, 0, 0], [0.1] * 3, [0.1] * 4],
    "upper": [None, 1.0, [1.5, 1, 1, 1], [0.1] * 4, [0.2, 1, 1, 1], [math.inf] * 4],
    "n_starts": [2, 0, -3, 1.5, 10**9, "2", None],
    "seed": [0, -1, 2**64, 1.0, "0"],
    "tol": [1e-9, -1.0, math.nan, "x"],
    "max_steps": [100, 0, 2.5, 10**12],
}


OPT_OK = {"N": [1000.0, 300, np.float32(300.0), 1e-3], "D": [10.0, np.array(20.0), 1e308],
          "target_weights": [None, [1e308] * 4, [1, 0, 0, 0]], "lower": [None, [0.1] * 4],
          "upper": [None, [0.2, 1, 1, 1], [0.25] * 4], "n_starts": [2], "seed": [0, 2**32 - 1],
          "tol": [1e-9], "max_steps": [100]}


@_settings(40)
@given(data=st.data())
def test_generated_optimal_mixture_calls(data):
    """Half of the calls take valid values only (two starts, 100 steps: one compilation)."""
    law = _law()
    pool = OPT_OK if data.draw(st.booleans(), label="valid values") else OPT_VALUES
    kwargs = {k: data.draw(st.sampled_from(v), label=k) for k, v in pool.items()
              if k in ("N", "D") or pool is OPT_OK and k in ("n_starts", "max_steps")
              or data.draw(st.booleans(), label=f"give {k}")}
    try:
        res = mixscale.optimal_mixture(law, kwargs.pop("N"), kwargs.pop("D"), **kwargs)
    except (TypeError, ValueError) as err:
        _check_python_error(err, ["N", "D", *kwargs, "bounds", "law"])
        event("refused")
        return
    event("result")
    assert np.all(np.isfinite(res.weights)) and np.all(np.isfinite(res.losses))
    assert math.isfinite(res.objective) and res.weights.sum() == pytest.approx(1.0)


BAD_FIT_ARGS = {
    "n_restarts": [0, -1, 1.5, 10**12, "8", None, True],
    "seed": [-1, 2**70, 1.5, "0", None],
    "method": ["newton", None, 3],
    "rtol": ["a", -1.0, math.nan, None],
    "huber_delta": [0.0, -1.0, math.inf, "x"],
    "max_steps": [0, 1.5, "10"],
    "chunk": [0, -2, 1.5],
    "progress": [3, "print"],
    "law_options": [{"variant": "cubic"}, {"nope": 1}, "full", 3],
    "validation": ["table", 3],
    "starts": ["abc", 3],
}


@_settings(40)
@given(data=st.data())
def test_generated_fit_calls_are_refused_before_fitting(data):
    """At least one argument is bad: ``fit`` must refuse (by name) before it starts."""
    table = _small_table()
    bad = data.draw(st.lists(st.sampled_from(sorted(BAD_FIT_ARGS)), min_size=1, max_size=3,
                             unique=True))
    kwargs = {k: data.draw(st.sampled_from(BAD_FIT_ARGS[k]), label=k) for k in bad}
    law = data.draw(st.sampled_from(["capacity", CapacityLaw]))
    target = data.draw(st.sampled_from(["table", "table", None, "pile4", 3]))
    with pytest.raises((TypeError, ValueError, KeyError)) as err:
        mixscale.fit(law, table if target == "table" else target,
                     progress=kwargs.pop("progress", _started), **kwargs)
    names = [*bad, "table", "law", "variant", "option", "method", "starts"]
    if isinstance(err.value, KeyError):
        err.value = ValueError(str(err.value))
    _check_python_error(err.value, names)


def _started(progress) -> None:
    raise _Reached  # the fit got past its checks: a bad argument was accepted


def _small_table() -> LossTable:
    w = np.array([[0.5, 0.5], [0.2, 0.8], [0.7, 0.3]])
    return LossTable(weights=w, model_size=np.ones(3), tokens=np.ones(3),
                     losses=np.array([[3.0, 3.1], [3.2, 2.9], [2.8, 3.3]]),
                     train_domains=("a", "b"), loss_domains=("a", "b"), name="small")


SPECIAL = st.sampled_from([0.0, -0.0, -1.0, 1e-320, 1e-300, 0.5, 1.0, 3.0, 1e308, math.nan,
                           math.inf, -math.inf])


@_settings(40)
@given(data=st.data())
def test_generated_loss_tables_are_refused_or_valid(data):
    n, k = data.draw(st.integers(0, 3), label="n"), data.draw(st.integers(0, 3), label="k")
    shape = lambda *s: data.draw(st.sampled_from([s, s, (n + 1, k), (n,)]))  # noqa: E731
    arrays = {name: np.array(data.draw(st.lists(SPECIAL, min_size=int(np.prod(sh)),
                                                max_size=int(np.prod(sh))),
                                       label=name)).reshape(sh)
              for name, sh in (("weights", shape(n, k)), ("model_size", shape(n)),
                               ("tokens", shape(n)), ("losses", shape(n, k)))}
    if data.draw(st.booleans(), label="valid weights") and arrays["weights"].shape == (n, k) \
            and k:
        arrays["weights"] = np.full((n, k), 1.0 / k)
    names = tuple(f"d{i}" for i in range(k))
    try:
        table = LossTable(**arrays, train_domains=names,
                          loss_domains=data.draw(st.sampled_from([names, names[:1],
                                                                  names + names[:1]])),
                          name="gen")
    except TableError as err:
        _check_python_error(err, ["gen"])
        event("refused")
        return
    event("result")
    assert np.all(np.isfinite(table.weights)) and np.all(table.model_size > 0)
    assert not np.any(np.isinf(table.losses)) and not np.any(table.losses[
        np.isfinite(table.losses)] < np.finfo(float).tiny)


@_settings(20)
@given(data=st.data())
def test_generated_read_csv_options(files, data):
    kwargs = {
        "size_unit": data.draw(st.sampled_from([1e6, 0, -1.0, math.nan, "1", 1e-320, None])),
        "token_unit": data.draw(st.sampled_from([1e9, math.inf, 0.0, True])),
        "out_of_mixture": data.draw(st.sampled_from([(), "github", [1], ["x"], ["github"], 5,
                                                     None])),
    }
    try:
        table = read_csv(files["csv"], **kwargs)
    except TableError as err:
        _check_python_error(err, [str(files["csv"])])
        event("refused")
        return
    event("result")
    assert table.n_runs == 6
