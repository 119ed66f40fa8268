"""The data contract (SPEC §2): every validation rule of ``schema.RULES`` in both modes,
cascades, missing tables/columns, types, timestamp formats, id types and file forms.

Datasets are written to ``tmp_path`` (CSV unless a test says otherwise) and opened with
``aa.open_dataset(path, engine=...)``, so every engine reads and validates them itself.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import adanalytics as aa
from adanalytics import schema
from adanalytics.dataset import BY_ANALYSES
from adanalytics.schema import REJECT_RULE_COLUMN, RULES
from tests.builders import LAT0, LON0, dataset, write_dataset
from tests.helpers import assert_equal_data, collect, offset

T = "2024-05-10T12:00:00Z"
NEAR = offset(LAT0, LON0, north_m=10.0)
E2 = offset(LAT0, LON0, north_m=1000.0)

BASE: dict[str, list[tuple]] = {
    "campaigns": [("c1", "One", "2024-01-01", "2024-12-31"),
                  ("c2", "Two", "2024-01-01", "2024-12-31")],
    "establishments": [("e1", "Cafe", "cafe", LAT0, LON0), ("e2", "Bar", "bar", *E2)],
    "ads": [("a1", "c1", "e1", "food"), ("a2", "c2", "e2", "drinks")],
    "interactions": [("u1", "a1", "view", T), ("u1", "a1", "click", "2024-05-10T12:01:00Z"),
                     ("u2", "a2", "view", T)],
    "locations": [("u1", *offset(LAT0, LON0, north_m=-600.0), "2024-05-10T12:10:00Z"),
                  ("u1", *NEAR, "2024-05-10T12:15:00Z"),
                  ("u2", *E2, "2024-05-10T13:00:00Z")],
}

# (table, rule) -> (an extra row breaking exactly that rule, a marker shown in the examples)
BREAKERS: dict[tuple[str, str], tuple[tuple, str]] = {
    ("campaigns", "campaign_id_not_null"): ((None, "NoIdCampaign", "2024-01-01", "2024-12-31"), "NoIdCampaign"),
    ("campaigns", "campaign_id_unique"): (("c1", "DupCampaign", "2024-01-01", "2024-12-31"), "DupCampaign"),
    ("campaigns", "start_date_valid"): (("c9", "BadStart", "2024-13-45", "2024-12-31"), "2024-13-45"),
    ("campaigns", "end_date_valid"): (("c9", "BadEnd", "2024-01-01", "someday"), "someday"),
    ("establishments", "establishment_id_not_null"): ((None, "NoIdPlace", "cafe", LAT0, LON0), "NoIdPlace"),
    ("establishments", "establishment_id_unique"): (("e1", "DupPlace", "cafe", LAT0, LON0), "DupPlace"),
    ("establishments", "lat_range"): (("e9", "NorthOfPole", "cafe", 90.5, LON0), "NorthOfPole"),
    ("establishments", "lon_range"): (("e9", "OffTheMap", "cafe", LAT0, -180.25), "OffTheMap"),
    ("ads", "ad_id_not_null"): ((None, "c1", "e1", "NoIdAd"), "NoIdAd"),
    ("ads", "campaign_id_not_null"): (("a9", None, "e1", "NoCampaignAd"), "NoCampaignAd"),
    ("ads", "establishment_id_not_null"): (("a9", "c1", None, "NoPlaceAd"), "NoPlaceAd"),
    ("ads", "ad_id_unique"): (("a1", "c2", "e2", "DupAd"), "DupAd"),
    ("ads", "campaign_id_exists"): (("a9", "c404", "e1", "food"), "c404"),
    ("ads", "establishment_id_exists"): (("a9", "c1", "e404", "food"), "e404"),
    ("interactions", "user_id_not_null"): ((None, "a1", "view", "2024-05-10T12:34:56Z"), "12:34:56"),
    ("interactions", "ad_id_not_null"): (("u_noad", None, "view", T), "u_noad"),
    ("interactions", "ts_parseable"): (("u1", "a1", "view", "yesterday"), "yesterday"),
    ("interactions", "action_valid"): (("u1", "a1", "like", T), "like"),
    ("interactions", "ad_id_exists"): (("u1", "a404", "view", T), "a404"),
    ("locations", "user_id_not_null"): ((None, LAT0, LON0, "2024-05-10T12:34:56Z"), "12:34:56"),
    ("locations", "lat_range"): (("u_lat", -90.001, LON0, T), "u_lat"),
    ("locations", "lon_range"): (("u_lon", LAT0, 180.001, T), "u_lon"),
    ("locations", "ts_parseable"): (("u_ts", LAT0, LON0, "2024-02-30T00:00:00Z"), "2024-02-30"),
}


def base(**extra: list[tuple]) -> dict[str, dict[str, list[Any]]]:
    """The valid base dataset with ``extra`` rows appended per table."""
    return dataset(**{t: BASE[t] + extra.get(t, []) for t in schema.TABLE_NAMES})


def write(tmp_path: Path, data: dict[str, dict[str, list[Any]]], fmt: str = "csv",
          name: str = "ds") -> Path:
    return write_dataset(data, tmp_path / name, fmt)


def _all_results(ds: aa.Dataset) -> dict[str, pd.DataFrame]:
    """Every analysis; both groupings for those that take ``by``."""
    out = {}
    for analysis in aa.ANALYSES:
        for by in ("total", "month") if analysis in BY_ANALYSES else ("total",):
            out[f"{analysis}/{by}"] = collect(ds.run(analysis, by=by))
    return out


def _assert_same(got: dict[str, pd.DataFrame], want: dict[str, pd.DataFrame]) -> None:
    for key, w in want.items():
        try:
            assert_equal_data(got[key], {c: w[c].tolist() for c in w.columns})
        except AssertionError as exc:
            raise AssertionError(f"{key}: {exc}") from None


@pytest.fixture(scope="module")
def reference_results() -> dict[str, pd.DataFrame]:
    """Every analysis on the base dataset, in memory on the pandas reference engine."""
    return _all_results(aa.open_dataset(base(), engine="pandas"))


def test_every_rule_has_a_breaker() -> None:
    assert set(BREAKERS) == {(r.table, r.name) for r in RULES}


RULE_IDS = [f"{r.table}-{r.name}" for r in RULES]


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_rule_raises_naming_table_rule_count_examples(engine: str, tmp_path: Path,
                                                      rule: schema.Rule) -> None:
    row, marker = BREAKERS[(rule.table, rule.name)]
    path = write(tmp_path, base(**{rule.table: [row]}))
    with pytest.raises(aa.ValidationError) as info:
        aa.open_dataset(path, engine=engine)
    msg = str(info.value)
    assert f"table '{rule.table}'" in msg
    assert f"rule '{rule.name}'" in msg
    assert "1 row(s)" in msg
    assert marker in msg, msg
    # the example rows are printed with the table's column names
    assert all(c in msg for c in schema.columns(rule.table)), msg
    assert "Traceback" not in msg
    # exactly this rule is reported
    assert [(v.table, v.rule, v.count) for v in info.value.report.violations] == [
        (rule.table, rule.name, 1)]


@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_rule_quarantines_rows_and_keeps_valid_ones(
    engine: str, tmp_path: Path, rule: schema.Rule, reference_results: dict[str, pd.DataFrame]
) -> None:
    row, marker = BREAKERS[(rule.table, rule.name)]
    path = write(tmp_path, base(**{rule.table: [row]}))
    rejected_dir = tmp_path / "rejected"
    ds = aa.open_dataset(path, engine=engine, on_invalid="quarantine",
                         rejected_path=str(rejected_dir))
    rep = ds.validation
    assert [(v.table, v.rule, v.count) for v in rep.violations] == [(rule.table, rule.name, 1)]
    assert rep.rejected == {rule.table: 1}
    assert rep.rows == {t: len(BASE[t]) for t in schema.VALIDATION_ORDER}
    assert not rep.ok
    assert rep.rejected_path == str(rejected_dir)
    out = pd.read_parquet(rejected_dir / f"{rule.table}.parquet")
    assert list(out.columns) == [*schema.columns(rule.table), REJECT_RULE_COLUMN]
    assert out[REJECT_RULE_COLUMN].tolist() == [rule.name]
    assert any(marker in str(v) for v in out.iloc[0].tolist()), out
    # the valid rows answer exactly as the clean dataset does
    for analysis in ("ctr", "visits", "recommendations"):
        want = reference_results[f"{analysis}/total"]
        assert_equal_data(ds.run(analysis), {c: want[c].tolist() for c in want.columns})


def test_quarantine_without_rejected_path_reports_counts(engine: str, tmp_path: Path) -> None:
    path = write(tmp_path, base(interactions=[("u1", "a1", "like", T), ("u1", "a1", "meh", T)]))
    ds = aa.open_dataset(path, engine=engine, on_invalid="quarantine")
    assert ds.validation.rejected == {"interactions": 2}
    assert ds.validation.rows["interactions"] == 3
    assert ds.validation.rejected_path is None
    assert "action_valid" in ds.validation.describe()
    assert "2 row(s)" in ds.validation.describe()


def test_cascade_rejected_ad_rejects_its_interactions(engine: str, tmp_path: Path) -> None:
    # ad a3 names a campaign that does not exist -> ads/campaign_id_exists; its two
    # interactions then point at an ad that is not (validly) there -> ad_id_exists.
    data = base(ads=[("a3", "c404", "e1", "food")],
                interactions=[("u1", "a3", "view", T), ("u2", "a3", "click", T)])
    path = write(tmp_path, data)
    with pytest.raises(aa.ValidationError) as info:
        aa.open_dataset(path, engine=engine)
    assert [(v.table, v.rule, v.count) for v in info.value.report.violations] == [
        ("ads", "campaign_id_exists", 1), ("interactions", "ad_id_exists", 2)]
    ds = aa.open_dataset(path, engine=engine, on_invalid="quarantine",
                         rejected_path=str(tmp_path / "rej"))
    assert ds.validation.rejected == {"ads": 1, "interactions": 2}
    inter = pd.read_parquet(tmp_path / "rej" / "interactions.parquet")
    assert inter["ad_id"].tolist() == ["a3", "a3"]
    assert set(inter[REJECT_RULE_COLUMN]) == {"ad_id_exists"}
    # only the valid interactions are counted: c1 1 view 1 click, c2 1 view
    assert collect(ds.ctr())["views"].tolist() == [1, 1]


def test_cascade_from_establishment_through_ads_to_interactions(engine: str,
                                                                tmp_path: Path) -> None:
    # e3 has lat 95 -> lat_range; its ad a3 -> establishment_id_exists; a3's interaction
    # -> ad_id_exists. A cascade through three tables.
    data = base(establishments=[("e3", "Bad", "gym", 95.0, LON0)],
                ads=[("a3", "c1", "e3", "sport")],
                interactions=[("u9", "a3", "view", T)])
    ds = aa.open_dataset(write(tmp_path, data), engine=engine, on_invalid="quarantine")
    assert [(v.table, v.rule, v.count) for v in ds.validation.violations] == [
        ("establishments", "lat_range", 1), ("ads", "establishment_id_exists", 1),
        ("interactions", "ad_id_exists", 1)]


def test_first_broken_rule_wins_and_counts_and_examples_are_capped(engine: str,
                                                                   tmp_path: Path) -> None:
    # 7 rows with an unknown action; one of them also has an unparseable ts: rules are
    # checked in schema order (ts_parseable before action_valid), a row counts once.
    bad = [("u1", "a1", f"act{i}", T) for i in range(6)] + [("u1", "a1", "act6", "never")]
    with pytest.raises(aa.ValidationError) as info:
        aa.open_dataset(write(tmp_path, base(interactions=bad)), engine=engine)
    assert [(v.table, v.rule, v.count) for v in info.value.report.violations] == [
        ("interactions", "ts_parseable", 1), ("interactions", "action_valid", 6)]
    msg = str(info.value)
    assert "6 row(s)" in msg
    # at most N_EXAMPLES example rows per rule
    shown = [f"act{i}" for i in range(6) if f"act{i}" in msg]
    assert 1 <= len(shown) <= schema.N_EXAMPLES


def test_several_tables_in_one_report(engine: str, tmp_path: Path) -> None:
    data = base(campaigns=[("c9", "X", "bad", "2024-01-01")],
                locations=[("u1", 100.0, LON0, T), ("u1", 100.0, LON0, T)])
    with pytest.raises(aa.ValidationError) as info:
        aa.open_dataset(write(tmp_path, data), engine=engine)
    msg = str(info.value)
    assert "table 'campaigns', rule 'start_date_valid'" in msg
    assert "table 'locations', rule 'lat_range'" in msg
    assert "2 rule(s) broken" in msg


# --- missing tables and columns -----------------------------------------------------------

@pytest.mark.parametrize("missing", schema.TABLE_NAMES)
def test_missing_table_names_it_and_what_was_expected(engine: str, tmp_path: Path,
                                                      missing: str) -> None:
    path = write(tmp_path, base())
    (path / f"{missing}.csv").unlink()
    with pytest.raises(aa.DataContractError) as info:
        aa.open_dataset(path, engine=engine)
    msg = str(info.value)
    assert missing in msg.split("missing table(s):")[1].split(".")[0]
    for t in schema.TABLE_NAMES:  # what was expected
        assert t in msg
    for form in ("NAME.parquet", "NAME/", "NAME.csv", "NAME.csv.gz"):
        assert form in msg


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize(("table", "column"), [("interactions", "ts"), ("locations", "lat"),
                                               ("ads", "category"), ("campaigns", "end_date")])
def test_missing_column_names_it_and_what_was_expected(engine: str, tmp_path: Path, fmt: str,
                                                       table: str, column: str) -> None:
    data = base()
    del data[table][column]
    path = write(tmp_path, data, fmt)
    with pytest.raises(aa.DataContractError) as info:
        aa.open_dataset(path, engine=engine)
    msg = str(info.value)
    assert f"'{table}'" in msg
    assert f"missing column(s): {column}" in msg
    assert "expected columns: " + ", ".join(schema.columns(table)) in msg


def test_missing_directory(engine: str, tmp_path: Path) -> None:
    with pytest.raises(aa.DataContractError, match="does not exist"):
        aa.open_dataset(tmp_path / "nowhere", engine=engine)


def test_missing_table_in_memory() -> None:
    data = base()
    del data["ads"]
    with pytest.raises(aa.DataContractError, match="missing table 'ads'"):
        aa.open_dataset(data, engine="pandas")


def test_unreadable_parquet_is_a_contract_error(engine: str, tmp_path: Path) -> None:
    path = write(tmp_path, base(), "parquet")
    (path / "ads.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(aa.DataContractError, match="ads"):
        aa.open_dataset(path, engine=engine)


def test_bad_arguments(tmp_path: Path) -> None:
    path = write(tmp_path, base())
    with pytest.raises(ValueError, match="on_invalid"):
        aa.open_dataset(path, engine="pandas", on_invalid="ignore")
    with pytest.raises(ValueError, match="tz"):
        aa.open_dataset(path, engine="pandas", tz="Mars/Olympus")
    with pytest.raises(ValueError, match="engine"):
        aa.open_dataset(path, engine="polars")


# --- types ---------------------------------------------------------------------------------

def _parquet(path: Path, table: str, columns: dict[str, Any]) -> None:
    """Replace ``table`` of the dataset at ``path`` by a Parquet file of typed arrays."""
    for old in path.glob(f"{table}.*"):
        old.unlink()
    pq.write_table(pa.table(columns), path / f"{table}.parquet")


def test_wrong_types_are_rule_violations(engine: str, tmp_path: Path) -> None:
    path = write(tmp_path, base(), "parquet")
    # locations: lat as strings ("abc" is not a number; "-8.05" is), ts as booleans
    _parquet(path, "locations", {
        "user_id": pa.array(["u1", "u2"]),
        "lat": pa.array(["-8.05", "abc"]),
        "lon": pa.array([LON0, LON0]),
        "ts": pa.array(["2024-05-10T12:00:00Z", "2024-05-10T12:00:00Z"]),
    })
    _parquet(path, "interactions", {
        "user_id": pa.array(["u1", "u1"]),
        "ad_id": pa.array(["a1", "a1"]),
        "action": pa.array(["view", "click"]),
        "ts": pa.array([True, False]),
    })
    _parquet(path, "establishments", {
        "establishment_id": pa.array(["e1", "e2", "e3", "e4", "e5"]),
        "name": pa.array(["A", "B", "C", "D", "E"]),
        "category": pa.array(["cafe", "bar", "gym", "gym", "gym"]),
        "lat": pa.array([LAT0, E2[0], float("nan"), float("inf"), 90.0]),
        "lon": pa.array([LON0, E2[1], LON0, LON0, -180.0]),
    })
    ds = aa.open_dataset(path, engine=engine, on_invalid="quarantine")
    got = {(v.table, v.rule): v.count for v in ds.validation.violations}
    assert got == {("establishments", "lat_range"): 2, ("locations", "lat_range"): 1,
                   ("interactions", "ts_parseable"): 2}
    # lat 90 / lon -180 are inside the closed ranges; "-8.05" is a number
    assert ds.validation.rows == {"campaigns": 2, "establishments": 3, "ads": 2,
                                  "interactions": 0, "locations": 1}


def test_boolean_coordinates_are_not_numbers(engine: str, tmp_path: Path) -> None:
    path = write(tmp_path, base(), "parquet")
    _parquet(path, "locations", {
        "user_id": pa.array(["u1"]), "lat": pa.array([True]), "lon": pa.array([LON0]),
        "ts": pa.array([T]),
    })
    with pytest.raises(aa.ValidationError, match="lat_range"):
        aa.open_dataset(path, engine=engine)


# --- timestamps ----------------------------------------------------------------------------

def _ts_dataset(tmp_path: Path, fmt: str, ts: list[Any], name: str = "ds") -> Path:
    """u1 walks 600 m -> 400 m south of e1 at ts[0], ts[1] and views a1 at ts[0], ts[1]."""
    data = dataset(
        establishments=[("e1", "Cafe", "cafe", LAT0, LON0)],
        interactions=[("u1", "a1", "view", ts[0]), ("u1", "a1", "click", ts[1])],
        locations=[("u1", *offset(LAT0, LON0, north_m=-600.0), ts[0]),
                   ("u1", *offset(LAT0, LON0, north_m=-400.0), ts[1])],
    )
    return write_dataset(data, tmp_path / name, fmt)


# 2024-05-10T12:00:00Z and 12:05:00Z (09:00 and 09:05 in Recife) in every accepted form
TS_FORMS = {
    "iso_z": ("csv", ["2024-05-10T12:00:00Z", "2024-05-10T12:05:00Z"]),
    "iso_offset": ("csv", ["2024-05-10T09:00:00-03:00", "2024-05-10T14:05:00+02:00"]),
    "iso_naive_utc": ("csv", ["2024-05-10T12:00:00", "2024-05-10 12:05:00"]),
    "iso_fraction": ("csv", ["2024-05-10T12:00:00.000Z", "2024-05-10T12:05:00.000000+00:00"]),
    "epoch_ms_digits": ("csv", ["1715342400000", "1715342700000"]),
    "epoch_ms_int": ("parquet", [1715342400000, 1715342700000]),
    "mixed_text": ("csv", ["1715342400000", "2024-05-10T09:05:00-03:00"]),
    "timestamp_utc": ("parquet", [pd.Timestamp("2024-05-10T12:00:00Z"),
                                  pd.Timestamp("2024-05-10T12:05:00Z")]),
    "timestamp_naive": ("parquet", [pd.Timestamp("2024-05-10T12:00:00"),
                                    pd.Timestamp("2024-05-10T12:05:00")]),
    "timestamp_other_tz": ("parquet", [pd.Timestamp("2024-05-10T21:00:00+09:00"),
                                       pd.Timestamp("2024-05-10T21:05:00+09:00")]),
    # the same, stored with microsecond precision (what Spark and most writers produce;
    # pandas writes nanoseconds)
    "timestamp_utc_us": ("parquet_us", [pd.Timestamp("2024-05-10T12:00:00Z"),
                                        pd.Timestamp("2024-05-10T12:05:00Z")]),
    "timestamp_naive_us": ("parquet_us", [pd.Timestamp("2024-05-10T12:00:00"),
                                          pd.Timestamp("2024-05-10T12:05:00")]),
}
#: Parquet TIMESTAMP(NANOS) - pandas' default - is a known gap of the Spark reader.
NANOS_FORMS = {"timestamp_utc", "timestamp_naive", "timestamp_other_tz"}


def _as_microseconds(path: Path) -> None:
    """Rewrite the ts columns of the Parquet fact tables as timestamp[us]."""
    for t in ("interactions", "locations"):
        table = pq.read_table(path / f"{t}.parquet")
        i = table.schema.get_field_index("ts")
        tz = table.schema.field("ts").type.tz
        table = table.set_column(i, "ts", table.column("ts").cast(pa.timestamp("us", tz=tz)))
        pq.write_table(table, path / f"{t}.parquet")


@pytest.mark.parametrize("form", list(TS_FORMS))
def test_timestamp_forms_are_the_same_instants(engine: str, tmp_path: Path, form: str,
                                               request: pytest.FixtureRequest) -> None:
    request.applymarker(pytest.mark.xfail(
        engine == "spark" and form in NANOS_FORMS, raises=aa.DataContractError, strict=True,
        reason="Spark cannot read Parquet TIMESTAMP(NANOS) columns (PARQUET_TYPE_ILLEGAL)"))
    fmt, ts = TS_FORMS[form]
    path = _ts_dataset(tmp_path, fmt.removesuffix("_us"), ts)
    if fmt == "parquet_us":
        _as_microseconds(path)
    ds = aa.open_dataset(path, engine=engine)
    rec = collect(ds.recommendations())
    assert rec["ts"].tolist() == [pd.Timestamp("2024-05-10T12:05:00Z")]
    hourly = collect(ds.category_hourly(by="month"))
    hit = hourly[hourly["interactions"] > 0]
    # both interactions at 09:00 / 09:05 local (Recife) in May
    assert hit[["month", "hour", "views", "clicks"]].values.tolist() == [["2024-05", 9, 1, 1]]


def test_epoch_ms_before_and_far_after_1970(engine: str, tmp_path: Path) -> None:
    # -1000 ms = 1969-12-31T23:59:59Z (20:59:59 local on Dec 31); 4102444800000 = 2100-01-01Z
    ds = aa.open_dataset(_ts_dataset(tmp_path, "csv", ["-1000", "4102444800000"]),
                         engine=engine)
    hourly = collect(ds.category_hourly(by="month"))
    hit = hourly[hourly["interactions"] > 0]
    assert hit[["month", "hour"]].values.tolist() == [["1969-12", 20], ["2099-12", 21]]


# --- actions and ids -----------------------------------------------------------------------

def test_action_is_case_insensitive_and_normalised(engine: str, tmp_path: Path) -> None:
    inter = [("u1", "a1", "VIEW", T), ("u1", "a1", "View", T), ("u1", "a1", "Click", T),
             ("u1", "a1", "cLiCk", T), ("u1", "a1", " click ", T)]
    path = write(tmp_path, dataset(interactions=inter))
    ds = aa.open_dataset(path, engine=engine)
    assert_equal_data(ds.ctr(), {"campaign_id": ["c1"], "views": [2], "clicks": [3],
                                 # Wilson with p clamped to 1: low = n / (n + z²), n = 2
                                 "ctr": [1.5], "ctr_low": [2 / (2 + 1.959963984540054 ** 2)],
                                 "ctr_high": [1.0]})
    # hourly views/clicks read the normalised action too
    hourly = collect(ds.category_hourly())
    assert hourly[["views", "clicks"]].sum().tolist() == [2, 3]


def test_integer_ids_from_csv_and_parquet(engine: str, tmp_path: Path) -> None:
    data = dataset(
        campaigns=[(10, "C", "2024-01-01", "2024-12-31"), (2, "D", "2024-01-01", "2024-12-31")],
        ads=[(1, 10, 5, "food"), (3, 2, 5, "food")],
        establishments=[(5, "P", "cafe", LAT0, LON0)],
        interactions=[(42, 1, "view", T), (42, 3, "click", T)],
        locations=[(42, *NEAR, T)],
    )
    for fmt in ("csv", "parquet"):
        ds = aa.open_dataset(write_dataset(data, tmp_path / fmt, fmt), engine=engine)
        ctr = collect(ds.ctr())
        assert ctr["campaign_id"].tolist() == [2, 10], fmt  # numeric order
        assert ctr["campaign_id"].dtype.kind == "i", fmt
        vis = collect(ds.visits())
        assert vis["establishment_id"].tolist() == [5]
        assert vis["establishment_id"].dtype.kind == "i", fmt
        prof = collect(ds.interaction_profile())
        assert prof["user_id"].dtype.kind == "i", fmt


def test_integer_ids_with_nulls_in_parquet_stay_integers(engine: str, tmp_path: Path) -> None:
    # Parquet int64 id columns with a null: the null rows are rejected, the other ids
    # stay integers and still join (1 must not become 1.0 / "1.0").
    path = write(tmp_path, base(), "parquet")
    _parquet(path, "campaigns", {"campaign_id": pa.array([1], pa.int64()), "name": pa.array(["C"]),
                                 "start_date": pa.array(["2024-01-01"]),
                                 "end_date": pa.array(["2024-12-31"])})
    _parquet(path, "establishments", {"establishment_id": pa.array([5], pa.int64()),
                                      "name": pa.array(["P"]), "category": pa.array(["cafe"]),
                                      "lat": pa.array([LAT0]), "lon": pa.array([LON0])})
    _parquet(path, "ads", {"ad_id": pa.array([1, None], pa.int64()),
                           "campaign_id": pa.array([1, 1], pa.int64()),
                           "establishment_id": pa.array([5, 5], pa.int64()),
                           "category": pa.array(["food", "food"])})
    _parquet(path, "interactions", {"user_id": pa.array([42, None, 42], pa.int64()),
                                    "ad_id": pa.array([1, 1, 1], pa.int64()),
                                    "action": pa.array(["view", "view", "click"]),
                                    "ts": pa.array(["2024-05-10T11:00:00Z"] * 3)})
    _parquet(path, "locations", {"user_id": pa.array([42, None], pa.int64()),
                                 "lat": pa.array([NEAR[0], NEAR[0]]),
                                 "lon": pa.array([NEAR[1], NEAR[1]]),
                                 "ts": pa.array([T, T])})
    ds = aa.open_dataset(path, engine=engine, on_invalid="quarantine")
    assert [(v.table, v.rule, v.count) for v in ds.validation.violations] == [
        ("ads", "ad_id_not_null", 1), ("interactions", "user_id_not_null", 1),
        ("locations", "user_id_not_null", 1)]
    att = collect(ds.attribution())
    assert_equal_data(att, {"establishment_id": [5], "visits": [1], "attributed_visits": [1],
                            "ratio": [1.0]})
    assert att["establishment_id"].dtype.kind == "i"
    prof = collect(ds.interaction_profile())
    assert prof["user_id"].tolist() == [42]
    assert prof["user_id"].dtype.kind == "i"


def test_integer_ids_next_to_none_in_memory() -> None:
    # dict literals: [42, None] arrives as float64; the ids stay the integer 42
    data = dataset(interactions=[(42, "a1", "view", T), (None, "a1", "view", T)],
                   locations=[(42, *NEAR, "2024-05-10T12:30:00Z")])
    ds = aa.open_dataset(data, engine="pandas", on_invalid="quarantine")
    assert ds.validation.rejected == {"interactions": 1}
    assert_equal_data(ds.attribution(), {"establishment_id": ["e1"], "visits": [1],
                                         "attributed_visits": [1], "ratio": [1.0]})
    assert collect(ds.interaction_profile())["user_id"].tolist() == [42]


def test_campaign_dates_in_other_forms(engine: str, tmp_path: Path) -> None:
    # start/end dates written as instants with offsets are the dates as written (no
    # crash on tz-aware or mixed offsets); Parquet date32 and timestamps work too.
    path = write(tmp_path, base(), "parquet")
    _parquet(path, "campaigns", {
        "campaign_id": pa.array(["c1", "c2"]), "name": pa.array(["One", "Two"]),
        "start_date": pa.array(["2024-05-10T23:30:00-03:00", "2024-05-10T00:30:00+09:00"]),
        "end_date": pa.array([pd.Timestamp("2024-05-10").date(), pd.Timestamp("2024-05-11").date()],
                             pa.date32()),
    })
    ds = aa.open_dataset(path, engine=engine)
    assert ds.validation.ok
    # u1 approaches e1 (ad a1 of c1, active on 2024-05-10 only) at 09:15 local on 05-10
    assert_equal_data(ds.recommendations(), {
        "user_id": ["u1"], "establishment_id": ["e1"], "ad_id": ["a1"],
        "ts": [pd.Timestamp("2024-05-10T12:15:00Z")],
        "distance_m": [10.0]})
    path2 = write(tmp_path, base(), "parquet", name="ds2")
    _parquet(path2, "campaigns", {
        "campaign_id": pa.array(["c1", "c2"]), "name": pa.array(["One", "Two"]),
        "start_date": pa.array(["2024-05-11T00:00:00Z", "2024-05-01"]),
        "end_date": pa.array(["2024-05-31T00:00:00+05:00", "2024-05-31"]),
    })
    # c1 now starts on 05-11: the approach on 05-10 suggests nothing
    assert len(collect(aa.open_dataset(path2, engine=engine).recommendations())) == 0


def test_non_canonical_integer_text_stays_text(engine: str, tmp_path: Path) -> None:
    # "007" is not the integer 7: ids that are not all canonical integers stay strings.
    data = dataset(
        campaigns=[("007", "Bond", "2024-01-01", "2024-12-31"), ("8", "X", "2024-01-01", "2024-12-31")],
        ads=[("a1", "007", "e1", "food"), ("a2", "8", "e1", "food")],
        interactions=[("u1", "a1", "view", T), ("u1", "a2", "view", T)],
    )
    ds = aa.open_dataset(write(tmp_path, data), engine=engine)
    assert collect(ds.ctr())["campaign_id"].tolist() == ["007", "8"]


# --- file forms ------------------------------------------------------------------------------

FORMS = ["csv", "csv.gz", "parquet", "parquetdir"]


@pytest.mark.parametrize("fmt", FORMS)
def test_file_forms_give_the_same_results(engine: str, tmp_path: Path, fmt: str,
                                          reference_results: dict[str, pd.DataFrame]) -> None:
    path = write(tmp_path, base(), fmt)
    _assert_same(_all_results(aa.open_dataset(path, engine=engine)), reference_results)
    # and the dataset can be named as a string
    assert aa.open_dataset(str(path), engine=engine).validation.ok


def test_csv_gz_is_really_compressed(tmp_path: Path) -> None:
    path = write(tmp_path, base(), "csv.gz")
    with gzip.open(path / "ads.csv.gz", "rt") as fh:
        assert fh.readline().strip() == "ad_id,campaign_id,establishment_id,category"


def test_mixed_forms_and_parquet_named_directories(engine: str, tmp_path: Path,
                                                   reference_results: dict[str, pd.DataFrame]) -> None:
    # campaigns.csv, ads.csv.gz, establishments.parquet (file), interactions.parquet/
    # (a directory), locations/ (hive-partitioned directory: month=... is an extra column)
    root = tmp_path / "mixed"
    root.mkdir()
    frames = {t: pd.DataFrame(c) for t, c in base().items()}
    frames["campaigns"].to_csv(root / "campaigns.csv", index=False)
    frames["ads"].to_csv(root / "ads.csv.gz", index=False, compression="gzip")
    frames["establishments"].to_parquet(root / "establishments.parquet", index=False)
    (root / "interactions.parquet").mkdir()
    inter = frames["interactions"]
    inter.iloc[:1].to_parquet(root / "interactions.parquet" / "part-0.parquet", index=False)
    inter.iloc[1:].to_parquet(root / "interactions.parquet" / "part-1.parquet", index=False)
    locs = frames["locations"].assign(month=["2024-05", "2024-05", "2024-06"])
    pq.write_to_dataset(pa.Table.from_pandas(locs, preserve_index=False),
                        root_path=str(root / "locations"), partition_cols=["month"])
    _assert_same(_all_results(aa.open_dataset(root, engine=engine)), reference_results)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_extra_columns_are_ignored(engine: str, tmp_path: Path, fmt: str,
                                   reference_results: dict[str, pd.DataFrame]) -> None:
    data = base()
    for t, cols in data.items():
        n = len(next(iter(cols.values())))
        # an extra column first and one last, with junk a validator must not look at
        data[t] = {"note": ["x"] * n, **cols, "lat_extra": [np.nan] * n}
    path = write(tmp_path, data, fmt)
    ds = aa.open_dataset(path, engine=engine)
    assert ds.validation.ok
    _assert_same(_all_results(ds), reference_results)


def test_empty_fact_tables(engine: str, tmp_path: Path) -> None:
    # header-only CSVs for interactions and locations: a valid (if dull) dataset
    path = write(tmp_path, base())
    for t in ("interactions", "locations"):
        (path / f"{t}.csv").write_text(",".join(schema.columns(t)) + "\n")
    ds = aa.open_dataset(path, engine=engine)
    assert ds.validation.rows["interactions"] == 0
    assert len(collect(ds.ctr())) == 0
    assert len(collect(ds.category_hourly())) == 2 * 24
    assert len(collect(ds.recommendations())) == 0
