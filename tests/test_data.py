"""The data layer: the wide CSV reader and writer, the bundled datasets, selection and splits."""

import csv
import json
from importlib import resources

import numpy as np
import pytest
from conftest import tol

from mixscale.data import (
    LossTable,
    TableError,
    available,
    load,
    mixture_ids,
    read_csv,
    select,
    split,
    write_csv,
)

NAMES = ["pile4", "slimpajama7", "regmix-1m", "regmix-60m", "regmix-1b"]
PILE17 = ("arxiv", "freelaw", "nih_exporter", "pubmed_central", "wikipedia_en", "dm_mathematics",
          "github", "philpapers", "stackexchange", "enron_emails", "gutenberg_pg_19", "pile_cc",
          "ubuntu_irc", "europarl", "hackernews", "pubmed_abstracts", "uspto_backgrounds")
UNLOGGED = ("nih_exporter", "philpapers", "enron_emails", "europarl")  # not in RegMix's CSVs
LOGGED13 = tuple(d for d in PILE17 if d not in UNLOGGED)


def _bundled_text(filename):
    return (resources.files("mixscale.data") / "bundled" / filename).read_text(encoding="utf-8")


# ------------------------------------------------------------------------------ bundled data
def test_available_lists_the_datasets_in_order():
    assert [info.name for info in available()] == NAMES


@pytest.mark.parametrize("info", available(), ids=lambda info: info.name)
def test_available_records_describe_the_loaded_tables(info):
    table = load(info.name)
    assert table.name == info.name
    assert (table.n_runs, table.n_train_domains, table.n_loss_domains) == (
        info.runs, info.n_train_domains, info.n_loss_domains)
    np.testing.assert_allclose(table.scales()["model_size"], info.model_sizes, rtol=tol())
    np.testing.assert_allclose(table.scales()["tokens"], info.token_counts, rtol=tol())
    assert (table.size_unit, table.token_unit) == (1e6, 1e9)
    assert table.meta["citation"] == info.citation and table.meta["license"] == info.license
    assert table.meta["notes"] and set(table.meta["files"]) <= set(info.files)
    for filename in info.files:  # every file it names is shipped
        assert _bundled_text(filename)


def test_attribution_names_every_bundled_file():
    attribution = _bundled_text("ATTRIBUTION.md")
    shipped = {p.name for p in (resources.files("mixscale.data") / "bundled").iterdir()}
    for filename in shipped - {"ATTRIBUTION.md"}:
        assert f"`{filename}`" in attribution


def test_pile4():
    t = load("pile4")
    assert t.train_domains == t.loss_domains == ("github", "gutenberg", "stackexchange",
                                                 "wikipedia")
    assert t.losses.shape == (85, 4) and not np.isnan(t.losses).any()
    assert t.row_tags["mixture_id"].dtype == np.int64
    # First row of the file: mixture 25 at 90M parameters, 3B tokens.
    assert t.row_tags["mixture_id"][0] == 25
    np.testing.assert_array_equal(t.weights[0], [0.3468, 0.1763, 0.3601, 0.1168])
    assert (t.model_size[0], t.tokens[0], t.losses[0, 0]) == (90.0, 3.0, 1.144797)
    # The authors' mixture numbers and the weight vectors group the rows the same way.
    ids = mixture_ids(t)
    pairs = set(zip(ids.tolist(), t.row_tags["mixture_id"].tolist(), strict=True))
    assert len(pairs) == len(set(ids.tolist())) == len(set(t.row_tags["mixture_id"].tolist()))


def test_slimpajama7():
    t = load("slimpajama7")
    assert t.train_domains == ("arxiv", "book", "c4", "github", "commoncrawl", "stackexchange",
                               "wikipedia")
    assert t.loss_domains == (*t.train_domains, "openhermes")
    assert t.out_of_mixture == ("openhermes",)
    missing = np.isnan(t.losses)
    assert missing.sum() == 16
    assert set(t.model_size[missing.any(axis=1)].tolist()) == {310.0}
    assert t.weights.min() >= 0.02 - 1e-12
    ids = mixture_ids(t)
    assert ids.max() + 1 == 60
    for size in (122.0, 310.0, 680.0):  # 11 token checkpoints per size
        assert len(set(t.tokens[t.model_size == size].tolist())) == 11
        counts = np.bincount(ids[t.model_size == size])
        assert counts.max() == 11


def test_regmix_1m_splits():
    t = load("regmix-1m")
    assert t.train_domains == PILE17 and t.loss_domains == LOGGED13
    assert t.in_mixture == LOGGED13
    assert (t.scales()["model_size"], t.scales()["tokens"]) == ([1.0], [1.0])
    assert not np.isnan(t.losses).any()
    tags = t.row_tags["split"]
    assert (tags == "train").sum() == 512 and (tags == "test").sum() == 256
    assert np.abs(t.weights.sum(axis=1) - 1).max() <= 0.004 + 1e-12  # rounded, not renormalised
    train, test = load("regmix-1m", split="train"), load("regmix-1m", split="test")
    assert (train.n_runs, test.n_runs) == (512, 256)
    np.testing.assert_array_equal(train.losses, t.losses[tags == "train"])
    np.testing.assert_array_equal(test.weights, t.weights[tags == "test"])
    np.testing.assert_array_equal(train.row_tags["index"], np.arange(1, 513))
    with pytest.raises(ValueError, match="split must be"):
        load("regmix-1m", split="validation")


def test_regmix_1m_matches_the_released_files():
    t = load("regmix-1m", split="train")
    mixtures = list(csv.DictReader(_bundled_text("train_mixture_1m.csv").splitlines()))
    losses = {r["index"]: r for r in csv.DictReader(
        _bundled_text("train_pile_loss_1m.csv").splitlines())}
    for r in (0, 100, 511):
        index = mixtures[r]["index"]
        assert t.row_tags["index"][r] == int(index)
        assert t.weights[r, PILE17.index("pile_cc")] == float(
            mixtures[r]["train_the_pile_pile_cc"])
        assert t.losses[r, LOGGED13.index("gutenberg_pg_19")] == float(
            losses[index]["metric/the_pile_gutenberg_pg_19_val_loss"])


def test_regmix_60m_uses_the_test_mixtures():
    t = load("regmix-60m")
    assert t.n_runs == 256 and t.loss_domains == LOGGED13
    assert (t.scales()["model_size"], t.scales()["tokens"]) == ([60.0], [1.0])
    np.testing.assert_array_equal(t.weights, load("regmix-1m", split="test").weights)
    assert not np.isnan(t.losses).any()


def test_regmix_1b_joins_the_extra_losses():
    t = load("regmix-1b")
    assert t.train_domains == t.loss_domains == PILE17
    assert (t.scales()["model_size"], t.scales()["tokens"]) == ([1000.0], [25.0])
    np.testing.assert_array_equal(t.row_tags["index"], np.arange(64))
    # Every line of the jsonl lands in its row: jsonl index = RegMix index + 1.
    names = {"NIH ExPorter": "nih_exporter", "PhilPapers": "philpapers",
             "Enron Emails": "enron_emails", "EuroParl": "europarl"}
    lines = [json.loads(s) for s in _bundled_text("regmix1b_missing4domains_eval.jsonl").split(
        "\n") if s.strip()]
    assert len(lines) == 248
    for rec in lines:
        assert t.losses[rec["index"] - 1, PILE17.index(names[rec["domain"]])] == rec["avg_loss"]
    # The two models the jsonl does not cover have NaN on exactly those 4 domains.
    extra = [PILE17.index(d) for d in UNLOGGED]
    missing = np.argwhere(np.isnan(t.losses))
    assert sorted(set(missing[:, 0].tolist())) == [4, 12]
    assert sorted(set(missing[:, 1].tolist())) == sorted(extra) and len(missing) == 8
    # The logged 13 are RegMix's values, unchanged by the join.
    logged = load("regmix-1b", extra_losses=False)
    assert logged.loss_domains == LOGGED13 and not np.isnan(logged.losses).any()
    np.testing.assert_array_equal(t.select_losses(LOGGED13).losses, logged.losses)
    assert logged.losses[0, 0] == 1.772475243  # test_pile_loss_1B.csv, index 0, arxiv


def test_regmix_1b_extra_losses_fall_with_their_weight():
    # Sanity check of the index offset: more weight on a domain means a lower loss on it.
    t = load("regmix-1b")
    for domain in UNLOGGED:
        k = PILE17.index(domain)
        ok = ~np.isnan(t.losses[:, k])
        r = np.corrcoef(np.log(t.weights[ok, k] + 1e-3), t.losses[ok, k])[0, 1]
        assert r < -0.7, (domain, r)


def test_load_refuses_unknown_names_and_options():
    with pytest.raises(KeyError, match="regmix-1b.*pile4|pile4.*regmix-1b"):
        load("regmix-2b")
    with pytest.raises(TypeError, match="extra_losses"):
        load("regmix-1b", split="train")
    with pytest.raises(TypeError, match="none"):
        load("pile4", split="train")


# ------------------------------------------------------------------------------- CSV reading
HEADER = "mixture_id,weight_a,weight_b,model_size,n_tokens,a_loss,b_loss"
GOOD = HEADER + "\nm1,0.25,0.75,90000000,3000000000,3.0,\nm2,0.5,0.5,2e8,6e9,nan,2.5\n"


def _write(tmp_path, text, name="runs.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_read_csv_parses_values_units_nan_and_tags(tmp_path):
    t = read_csv(_write(tmp_path, GOOD))
    assert t.name == "runs" and t.meta["source"].endswith("runs.csv")
    assert t.train_domains == t.loss_domains == ("a", "b")
    np.testing.assert_array_equal(t.weights, [[0.25, 0.75], [0.5, 0.5]])
    np.testing.assert_array_equal(t.model_size, [90.0, 200.0])
    np.testing.assert_array_equal(t.tokens, [3.0, 6.0])
    np.testing.assert_array_equal(np.isnan(t.losses), [[False, True], [True, False]])
    assert t.losses[0, 0] == 3.0 and t.losses[1, 1] == 2.5
    assert t.row_tags["mixture_id"].tolist() == ["m1", "m2"]


@pytest.mark.parametrize("marker", ["NA", "n/a", "N/A", "#N/A", "<NA>", "null", "None", "NaN",
                                    "-nan", " na "])
def test_read_csv_reads_the_usual_missing_value_markers_as_not_measured(tmp_path, marker):
    """What R (``NA``), pandas (``<NA>``, empty) and spreadsheets (``#N/A``) write for a missing
    value is a loss not measured (``NaN``, masked in a fit), in a loss column; in a weight
    column it is still a missing weight."""
    t = read_csv(_write(tmp_path, _replace_cell(2, "b_loss", marker)))
    assert np.isnan(t.losses[1, 1]) and t.losses[0, 0] == 3.0
    with pytest.raises(TableError, match="row 2.*weight_a.*missing weight"):
        read_csv(_write(tmp_path, _replace_cell(2, "weight_a", marker), "weights.csv"))


@pytest.mark.parametrize("size, tokens, expected", [
    ("200M", "6B", (200.0, 6.0)), ("0.2b", "6000m", (200.0, 6.0)), ("2e8", "6G", (200.0, 6.0)),
    ("1.5T", "9.998B", (1.5e6, 9.998)), (" 200 M ", "6000000K", (200.0, 6.0)),
    ("2e2M", "6e-3T", (200.0, 6.0))])
def test_read_csv_reads_sizes_and_tokens_with_count_suffixes(tmp_path, size, tokens, expected):
    """``model_size`` and ``n_tokens`` take the command line's count suffixes (K, M, B or G, T),
    read exactly as the number with that exponent (9.998B is the float 9.998e9)."""
    text = _replace_cell(2, "n_tokens", tokens, _replace_cell(2, "model_size", size))
    t = read_csv(_write(tmp_path, text))
    assert (t.model_size[1], t.tokens[1]) == expected
    assert t.model_size[1] * t.size_unit == float(t.model_size[1] * 1e6)


@pytest.mark.parametrize("cell", ["B", "twoB", "2BB", "2 B B", "-1B", "e9B"])
def test_read_csv_refuses_a_count_it_cannot_read(tmp_path, cell):
    with pytest.raises(TableError, match="row 2.*n_tokens.*(not a number|positive)"):
        read_csv(_write(tmp_path, _replace_cell(2, "n_tokens", cell)))


def test_read_csv_units_and_tag_types(tmp_path):
    text = ("run,temp,weight_a,model_size,n_tokens,a_loss,held_loss\n"
            "1,0.5,1.0,100,1000,2.0,3.0\n2,,1.0,200,2000,1.5,\n")
    t = read_csv(_write(tmp_path, text), size_unit=1.0, token_unit=1e3,
                 out_of_mixture=("held",), name="sim")
    assert t.name == "sim" and t.out_of_mixture == ("held",)
    np.testing.assert_array_equal(t.model_size, [100.0, 200.0])
    np.testing.assert_array_equal(t.tokens, [1.0, 2.0])
    assert t.row_tags["run"].dtype == np.int64 and t.row_tags["run"].tolist() == [1, 2]
    assert t.row_tags["temp"].dtype == np.float64 and np.isnan(t.row_tags["temp"][1])


def test_read_csv_accepts_a_byte_order_mark_and_crlf(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.replace("\n", "\r\n").encode())
    t = read_csv(path)
    assert "mixture_id" in t.row_tags and t.n_runs == 2


def _replace_cell(row, column, value, text=GOOD):
    lines = text.splitlines()
    header = lines[0].split(",")
    cells = lines[row].split(",")
    cells[header.index(column)] = value
    lines[row] = ",".join(cells)
    return "\n".join(lines) + "\n"


def _rename_column(old, new, text=GOOD):
    lines = text.splitlines()
    lines[0] = ",".join(new if h == old else h for h in lines[0].split(","))
    return "\n".join(lines) + "\n"


def _drop_column(column, text=GOOD):
    rows = [line.split(",") for line in text.splitlines()]
    j = rows[0].index(column)
    return "\n".join(",".join(r[:j] + r[j + 1:]) for r in rows) + "\n"


# (text, data row or None, column or None, phrase) for every refused input.
BAD_FILES = {
    "non-numeric loss": (_replace_cell(2, "b_loss", "2.5x"), 2, "b_loss", "not a number"),
    "non-numeric weight": (_replace_cell(1, "weight_a", "quarter"), 1, "weight_a",
                           "not a number"),
    "non-numeric size": (_replace_cell(2, "model_size", "200X"), 2, "model_size",
                         "not a number"),
    # Python's float reads these; no CSV writer means them as numbers (1_144797 was 1144797)
    "digit-group underscore": (_replace_cell(2, "b_loss", "2_5"), 2, "b_loss", "not a number"),
    "underscore in a count": (_replace_cell(1, "model_size", "90_000M"), 1, "model_size",
                              "not a number"),
    "non-ASCII digits": (_replace_cell(1, "weight_a", "٠.25"), 1, "weight_a", "not a number"),
    "empty weight": (_replace_cell(1, "weight_b", ""), 1, "weight_b", "missing weight"),
    "nan weight": (_replace_cell(2, "weight_a", "nan"), 2, "weight_a", "missing weight"),
    "negative weight": (_replace_cell(2, "weight_a", "-0.5", _replace_cell(2, "weight_b", "1.5")),
                        2, "weight_a", "non-negative"),
    "weights off the simplex": (_replace_cell(2, "weight_b", "0.4"), 2, "weight_*",
                                "sum to 0.9"),
    "empty model size": (_replace_cell(1, "model_size", ""), 1, "model_size", "missing value"),
    "zero model size": (_replace_cell(2, "model_size", "0"), 2, "model_size", "positive"),
    "negative tokens": (_replace_cell(1, "n_tokens", "-3e9"), 1, "n_tokens", "positive"),
    "infinite tokens": (_replace_cell(1, "n_tokens", "inf"), 1, "n_tokens", "positive"),
    "zero loss": (_replace_cell(1, "a_loss", "0"), 1, "a_loss", "positive"),
    "infinite loss": (_replace_cell(2, "b_loss", "inf"), 2, "b_loss", "positive"),
    "ragged row": (GOOD + "m3,0.5,0.5,1e8\n", 3, None, "4 cells"),
    "blank line between rows": (GOOD.replace("\nm2", "\n\nm2"), 2, None, "blank line"),
    "unknown loss domain": (_rename_column("b_loss", "githb_loss"), None, "githb_loss",
                            "unknown domain 'githb'"),
    "duplicate column": (_rename_column("mixture_id", "a_loss"), None, "a_loss", "duplicate"),
    "missing model_size column": (_drop_column("model_size"), None, "model_size",
                                  "missing column"),
    "missing n_tokens column": (_drop_column("n_tokens"), None, "n_tokens", "missing column"),
    "empty domain name": (_rename_column("b_loss", "_loss"), None, "_loss", "empty domain"),
    "no weight columns": ("model_size,n_tokens,a_loss\n1e8,1e9,2.0\n", None, None,
                          "no weight columns"),
    "no loss columns": ("weight_a,model_size,n_tokens\n1.0,1e8,1e9\n", None, None,
                        "no loss columns"),
    "unnamed column": (",weight_a,model_size,n_tokens,a_loss\n0,1.0,1e8,1e9,2.0\n", None, None,
                       "no name"),
    "empty file": ("", None, None, "empty"),
    "semicolon-separated": (GOOD.replace(",", ";"), None, None, "separated by semicolons"),
    "tab-separated": (GOOD.replace(",", "\t"), None, None, "separated by tabs"),
    "header only": (HEADER + "\n", None, None, "no data rows"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_read_csv_refuses_bad_input_naming_file_row_and_column(tmp_path, case):
    text, row, column, phrase = BAD_FILES[case]
    path = _write(tmp_path, text, name="bad_input.csv")
    with pytest.raises(TableError) as info:
        read_csv(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert phrase in message
    if row is not None:
        assert f", row {row}" in message
    else:
        assert ", row " not in message
    if column is not None:
        assert f"column {column!r}" in message


def test_out_of_mixture_is_checked(tmp_path):
    path = _write(tmp_path, _rename_column("b_loss", "held_loss"))
    assert read_csv(path, out_of_mixture=("held",)).out_of_mixture == ("held",)
    with pytest.raises(TableError, match="'typo_loss'.*missing column"):
        read_csv(path, out_of_mixture=("held", "typo"))
    with pytest.raises(TableError, match="'a', which is a training domain"):
        read_csv(path, out_of_mixture=("held", "a"))


def test_weight_sum_tolerance_is_accepted_without_renormalising(tmp_path):
    text = _replace_cell(1, "weight_b", "0.752")  # sums to 1.002: RegMix-style rounding
    t = read_csv(_write(tmp_path, text))
    assert t.weights[0].sum() == pytest.approx(1.002, rel=1e-12)


# ------------------------------------------------------------------------------- CSV writing
def _assert_same_table(a: LossTable, b: LossTable):
    assert (a.train_domains, a.loss_domains) == (b.train_domains, b.loss_domains)
    assert (a.size_unit, a.token_unit) == (b.size_unit, b.token_unit)
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.losses, b.losses)  # NaN where NaN
    np.testing.assert_allclose(a.model_size, b.model_size, rtol=tol())
    np.testing.assert_allclose(a.tokens, b.tokens, rtol=tol())
    assert list(a.row_tags) == list(b.row_tags)
    for key in a.row_tags:
        assert a.row_tags[key].dtype.kind == b.row_tags[key].dtype.kind
        np.testing.assert_array_equal(a.row_tags[key], b.row_tags[key])


def test_write_csv_round_trips_a_user_table(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.dirichlet(np.ones(3), size=6)
    y = rng.uniform(1.0, 4.0, size=(6, 4))
    y[2, 1] = np.nan
    table = LossTable(weights=w, model_size=rng.uniform(10, 500, 6), tokens=rng.uniform(1, 30, 6),
                      losses=y, train_domains=("a", "b", "c"), loss_domains=("a", "b", "c", "x"),
                      name="rt", row_tags={"seed": np.arange(6), "note": np.array(list("uvwxyz"))})
    path = tmp_path / "rt.csv"
    write_csv(table, path)
    _assert_same_table(table, read_csv(path, out_of_mixture=("x",)))


@pytest.mark.parametrize("name, kw", [("pile4", {}),
                                      ("slimpajama7", {"out_of_mixture": ("openhermes",)}),
                                      ("regmix-1b", {})])
def test_write_csv_round_trips_bundled_tables(tmp_path, name, kw):
    table = load(name)
    path = tmp_path / f"{name}.csv"
    write_csv(table, path)
    _assert_same_table(table, read_csv(path, **kw))
    with open(path, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    assert "model_size" in header and "weight_" + table.train_domains[0] in header


def test_write_csv_writes_parameters_and_tokens(tmp_path):
    path = tmp_path / "p.csv"
    write_csv(load("pile4").take([0]), path)
    row = next(csv.DictReader(path.read_text().splitlines()))
    assert (row["model_size"], row["n_tokens"], row["mixture_id"]) == ("90000000", "3000000000",
                                                                       "25")


def test_write_csv_refuses_a_reserved_tag_name(tmp_path):
    table = load("pile4")
    bad = LossTable(**{**{f: getattr(table, f) for f in ("weights", "model_size", "tokens",
                                                         "losses", "train_domains",
                                                         "loss_domains")},
                       "row_tags": {"model_size": np.zeros(table.n_runs)}})
    with pytest.raises(TableError, match="reserved"):
        write_csv(bad, tmp_path / "x.csv")


def test_write_csv_refuses_a_loss_domain_whose_column_would_read_as_a_weight(tmp_path):
    """A domain named 'weight' has the loss column 'weight_loss', which read_csv takes for the
    weight of a domain 'loss' (it then refused the file: "weights sum to 4")."""
    table = LossTable(weights=np.full((2, 2), 0.5), model_size=np.ones(2), tokens=np.ones(2),
                      losses=np.ones((2, 2)), train_domains=("weight", "b"),
                      loss_domains=("weight", "b"), name="named")
    with pytest.raises(TableError, match=r"\['weight'\] cannot be written: their loss column "
                                         r"'weight_loss' would read back as the weight column"):
        write_csv(table, tmp_path / "x.csv")


# ------------------------------------------------------------------------------- selection
def test_select_by_size_and_tokens():
    t = load("pile4")
    s = select(t, model_size=200)
    assert s.n_runs == 49 and set(s.model_size.tolist()) == {200.0}
    s = select(t, model_size=[90, 440], tokens=6)
    assert s.n_runs == 18 and set(s.tokens.tolist()) == {6.0}
    np.testing.assert_array_equal(
        s.weights, t.weights[np.isin(t.model_size, [90, 440]) & (t.tokens == 6)])
    assert select(t).n_runs == t.n_runs  # no criterion: every row


def test_select_matches_within_relative_tolerance():
    t = load("slimpajama7")
    assert select(t, model_size=122 * (1 + 5e-7)).n_runs == 654
    with pytest.raises(TableError, match=r"model_size \[122.0012\] not in the table"):
        select(t, model_size=122.0012)


def test_select_tokens_range_is_closed():
    t = load("slimpajama7")
    s = select(t, tokens_range=(1.998, 3.998))
    assert set(s.tokens.tolist()) == {1.998, 2.59, 3.998}
    assert s.n_runs == 120 + 40 + 120


def test_select_errors_list_what_is_available():
    t = load("pile4")
    with pytest.raises(TableError, match=r"tokens \[9.0\] not in the table.*440: 6, 8"):
        select(t, tokens=9)
    with pytest.raises(TableError, match=r"no row has model_size=440.*90: 3, 6"):
        select(t, model_size=440, tokens=3)
    with pytest.raises(TableError, match="no row"):
        select(t, tokens_range=(8.5, 9))
    with pytest.raises(ValueError, match="either tokens or tokens_range"):
        select(t, tokens=3, tokens_range=(1, 4))
    with pytest.raises(ValueError, match="low <= high"):
        select(t, tokens_range=(8, 3))


def _toy(weights):
    w = np.asarray(weights, dtype=float)
    n = w.shape[0]
    return LossTable(weights=w, model_size=np.arange(1.0, n + 1), tokens=np.ones(n),
                     losses=np.full((n, 1), 2.0), train_domains=("a", "b"), loss_domains=("a",),
                     name="toy")


def test_mixture_ids_by_first_appearance():
    t = _toy([[0.3, 0.7], [1.0, -0.0], [0.3, 0.7], [0.5, 0.5], [1.0, 0.0]])
    np.testing.assert_array_equal(mixture_ids(t), [0, 1, 0, 2, 1])
    assert mixture_ids(t).dtype == np.int64


def test_mixture_ids_group_exactly_the_identical_weight_rows():
    t = load("slimpajama7")
    ids = mixture_ids(t)
    for i in np.unique(ids):
        rows = t.weights[ids == i]
        assert (rows == rows[0]).all()
    first = np.array([t.weights[ids == i][0] for i in range(ids.max() + 1)])
    assert len(np.unique(first, axis=0)) == len(first)


def test_split_is_deterministic_and_partitions_the_rows():
    t = load("slimpajama7")
    train, val = split(t, 0.25, seed=3)
    again_train, again_val = split(t, 0.25, seed=3)
    np.testing.assert_array_equal(train.weights, again_train.weights)
    np.testing.assert_array_equal(val.losses, again_val.losses)
    assert (train.name, val.name) == ("slimpajama7[train]", "slimpajama7[validation]")
    assert train.n_runs + val.n_runs == t.n_runs
    # Both sides keep the table's row order and together hold every row once.
    key = np.column_stack([t.model_size, t.tokens, mixture_ids(t)])
    rows = {tuple(r): i for i, r in enumerate(key.tolist())}
    assert len(rows) == t.n_runs
    for part in (train, val):
        idx = [rows[(m, d, i)] for m, d, i in zip(
            part.model_size.tolist(), part.tokens.tolist(),
            _ids_in(t, part).tolist(), strict=True)]
        assert idx == sorted(idx)
    other_train, _ = split(t, 0.25, seed=4)
    assert not np.array_equal(_ids_in(t, train), _ids_in(t, other_train))


def _ids_in(full, part):
    """The mixture id (in ``full``) of each row of ``part``."""
    ids = mixture_ids(full)
    lookup = {tuple(w): i for w, i in zip(full.weights.tolist(), ids.tolist(), strict=True)}
    return np.array([lookup[tuple(w)] for w in part.weights.tolist()])


def test_split_by_mixture_keeps_each_mixture_on_one_side():
    t = load("slimpajama7")
    train, val = split(t, 0.2, seed=0)
    train_ids, val_ids = set(_ids_in(t, train).tolist()), set(_ids_in(t, val).tolist())
    assert not train_ids & val_ids
    assert (len(train_ids), len(val_ids)) == (48, 12)  # 20% of the 60 mixtures


def test_split_by_row():
    t = load("pile4")
    train, val = split(t, 0.2, seed=0, by="row")
    assert (train.n_runs, val.n_runs) == (68, 17)  # round(0.2 * 85) rows
    by_mixture_train, _ = split(t, 0.2, seed=0)
    assert by_mixture_train.n_runs != train.n_runs or not np.array_equal(
        by_mixture_train.weights, train.weights)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_split_refuses_fractions_outside_the_open_interval(fraction):
    with pytest.raises(ValueError, match=r"validation_fraction must be in \(0, 1\)"):
        split(load("pile4"), fraction, seed=0)


def test_split_needs_a_group_on_each_side():
    with pytest.raises(ValueError, match="at least one group"):
        split(_toy([[0.5, 0.5]] * 4), 0.5, seed=0)  # one mixture: cannot split by mixture
    assert split(_toy([[0.5, 0.5]] * 4), 0.5, seed=0, by="row")[1].n_runs == 2
    with pytest.raises(ValueError, match="at least one group"):
        split(load("pile4"), 0.01, seed=0)  # 0.4 of a mixture rounds to none
    with pytest.raises(ValueError, match="by must be"):
        split(load("pile4"), 0.2, seed=0, by="size")
