"""The synthetic data generator: contract, determinism and the truth it plants.

Checked directly with pandas (not through an engine), so a generator bug cannot hide
behind an engine bug: the rules of SPEC §2, the layout, and that the planted CTRs, the
visit share and the interaction -> visit lift can be measured back from the data.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from adanalytics.geo import build_index, haversine_m
from adanalytics.semantics import ATTRIBUTION_WINDOW, MAX_GAP, MIN_CLOSING_M, VISIT_RADIUS_M
from adanalytics.synth import SCALES, GenerateResult, generate, resolve_scale

RECORDS = 20_000
TZ = "America/Recife"
FACT_TABLES = ("interactions", "locations")
DIM_TABLES = ("campaigns", "ads", "establishments")
CONTRACT = {
    "campaigns": ["campaign_id", "name", "start_date", "end_date"],
    "ads": ["ad_id", "campaign_id", "establishment_id", "category"],
    "establishments": ["establishment_id", "name", "category", "lat", "lon"],
    "interactions": ["user_id", "ad_id", "action", "ts"],
    "locations": ["user_id", "lat", "lon", "ts"],
}


def read_table(root: Path, name: str) -> pd.DataFrame:
    """A table as a reader of SPEC §2 sees it (contract columns only)."""
    if name in FACT_TABLES:
        data = pads.dataset(root / name, format="parquet", partitioning="hive")
        return data.to_table(columns=CONTRACT[name]).to_pandas()
    return pd.read_parquet(root / f"{name}.parquet", columns=CONTRACT[name])


def load(root: Path) -> dict[str, pd.DataFrame]:
    return {name: read_table(root, name) for name in CONTRACT}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> GenerateResult:
    return generate(tmp_path_factory.mktemp("synth") / "a", scale=RECORDS, seed=7)


@pytest.fixture(scope="module")
def tables(generated: GenerateResult) -> dict[str, pd.DataFrame]:
    return load(generated.out)


@pytest.fixture(scope="module")
def truth(generated: GenerateResult) -> dict:
    with open(generated.out / "truth.json", encoding="utf-8") as fh:
        return json.load(fh)


# --- API ---------------------------------------------------------------------------


def test_scales_and_signature() -> None:
    assert SCALES == {
        "tiny": 10_000,
        "small": 1_000_000,
        "medium": 10_000_000,
        "large": 100_000_000,
    }
    assert resolve_scale("small") == 1_000_000
    assert resolve_scale(1234) == 1234
    assert resolve_scale("25_000") == 25_000
    assert resolve_scale("1e5") == 100_000
    params = inspect.signature(generate).parameters
    assert list(params) == ["out", "scale", "seed", "center", "tz", "start", "months", "progress"]
    assert params["scale"].default == "tiny"
    assert params["center"].default == (-8.0476, -34.8770)
    assert params["tz"].default == TZ
    assert params["start"].default == "2024-01-01"
    assert params["months"].default == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scale": "huge"}, "scale"),
        ({"scale": 0}, "scale"),
        ({"seed": -1}, "seed"),
        ({"months": 0}, "months"),
        ({"tz": "Mars/Olympus"}, "tz"),
        ({"center": (95.0, 0.0)}, "center"),
    ],
)
def test_bad_arguments_are_clear_errors(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        generate(tmp_path / "x", **kwargs)


# --- layout and types ----------------------------------------------------------------


def test_layout(generated: GenerateResult) -> None:
    out = generated.out
    for name in DIM_TABLES:
        assert (out / f"{name}.parquet").is_file()
    assert (out / "truth.json").is_file()
    for name in FACT_TABLES:
        months = sorted(p.name for p in (out / name).iterdir())
        assert months == ["month=2024-01", "month=2024-02", "month=2024-03"]
        for m in months:
            assert list((out / name / m).glob("part-*.parquet"))


def test_row_counts(generated: GenerateResult, tables: dict[str, pd.DataFrame]) -> None:
    assert generated.rows["locations"] == RECORDS  # exactly the scale asked for
    for name, frame in tables.items():
        assert generated.rows[name] == len(frame), name
    assert generated.seconds > 0
    # roughly 0.2-0.5 interactions per location record; ~200 establishments per 1e4 records
    assert 0.2 <= len(tables["interactions"]) / RECORDS <= 0.5
    assert 200 <= len(tables["establishments"]) <= 600
    assert len(tables["campaigns"]) >= 12


def test_parquet_types_follow_the_contract(generated: GenerateResult) -> None:
    out = generated.out
    expected = {
        "campaigns": {
            "campaign_id": pa.string(),
            "name": pa.string(),
            "start_date": pa.date32(),
            "end_date": pa.date32(),
        },
        "ads": {c: pa.string() for c in CONTRACT["ads"]},
        "establishments": {
            "establishment_id": pa.string(),
            "name": pa.string(),
            "category": pa.string(),
            "lat": pa.float64(),
            "lon": pa.float64(),
        },
        "interactions": {"user_id": pa.string(), "ad_id": pa.string(), "action": pa.string()},
        "locations": {"user_id": pa.string(), "lat": pa.float64(), "lon": pa.float64()},
    }
    for name, columns in expected.items():
        if name in FACT_TABLES:
            files = sorted((out / name).rglob("*.parquet"))
        else:
            files = [out / f"{name}.parquet"]
        for f in files:
            schema = pq.read_schema(f)
            assert schema.names[: len(CONTRACT[name])] == CONTRACT[name], f
            for col, typ in columns.items():
                assert schema.field(col).type == typ, (f, col)
            if name in FACT_TABLES:
                ts = schema.field("ts").type
                assert pa.types.is_timestamp(ts) and ts.tz == "UTC" and ts.unit in ("us", "ns")


def test_ids_look_like_ids(tables: dict[str, pd.DataFrame]) -> None:
    patterns = {
        ("campaigns", "campaign_id"): r"c\d{4,}",
        ("ads", "ad_id"): r"ad\d{5,}",
        ("establishments", "establishment_id"): r"e\d{6,}",
        ("locations", "user_id"): r"u\d{7,}",
    }
    for (table, col), pattern in patterns.items():
        assert tables[table][col].str.fullmatch(pattern).all(), (table, col)


# --- SPEC §2 validation rules, checked directly -------------------------------------


def test_no_invalid_rows(tables: dict[str, pd.DataFrame]) -> None:
    t = tables
    for name, cols in CONTRACT.items():
        for col in cols:
            if col.endswith("_id"):
                assert t[name][col].notna().all(), (name, col)
    for key, name in (
        ("campaign_id", "campaigns"),
        ("ad_id", "ads"),
        ("establishment_id", "establishments"),
    ):
        assert t[name][key].is_unique, name
    for name in ("establishments", "locations"):
        lat, lon = t[name]["lat"].to_numpy(), t[name]["lon"].to_numpy()
        assert np.isfinite(lat).all() and np.isfinite(lon).all()
        assert ((lat >= -90) & (lat <= 90)).all() and ((lon >= -180) & (lon <= 180)).all()
    for name in FACT_TABLES:
        assert t[name]["ts"].notna().all()
    assert set(t["interactions"]["action"].unique()) == {"view", "click"}
    assert t["interactions"]["ad_id"].isin(t["ads"]["ad_id"]).all()
    assert t["ads"]["campaign_id"].isin(t["campaigns"]["campaign_id"]).all()
    assert t["ads"]["establishment_id"].isin(t["establishments"]["establishment_id"]).all()
    camp = t["campaigns"]
    assert (camp["start_date"] <= camp["end_date"]).all()
    # campaigns have 1-3 ads; ads mostly share their establishment's category
    per_campaign = t["ads"].groupby("campaign_id").size()
    assert per_campaign.between(1, 3).all()
    ads = t["ads"].merge(t["establishments"], on="establishment_id", suffixes=("", "_est"))
    assert (ads["category"] == ads["category_est"]).mean() > 0.85


def test_timestamps_in_period_and_partitions_by_local_month(generated: GenerateResult) -> None:
    start = pd.Timestamp("2024-01-01", tz=TZ)
    end = pd.Timestamp("2024-04-01", tz=TZ)
    for name in FACT_TABLES:
        data = pads.dataset(generated.out / name, format="parquet", partitioning="hive")
        frame = data.to_table(columns=["ts", "month"]).to_pandas()
        local = frame["ts"].dt.tz_convert(TZ)
        assert local.min() >= start and local.max() < end, name
        assert (local.dt.strftime("%Y-%m") == frame["month"].astype(str)).all(), name


def test_interactions_fall_in_their_campaign(tables: dict[str, pd.DataFrame]) -> None:
    t = tables
    it = t["interactions"].merge(t["ads"], on="ad_id").merge(t["campaigns"], on="campaign_id")
    day = it["ts"].dt.tz_convert(TZ).dt.date
    inside = (it["start_date"] <= day) & (day <= it["end_date"])
    assert inside.mean() > 0.999  # a click may follow its view past midnight


def test_rows_sorted_by_user_and_time_within_a_file(generated: GenerateResult) -> None:
    for f in sorted((generated.out / "locations").rglob("*.parquet")):
        frame = pq.read_table(f).to_pandas()
        key = list(zip(frame["user_id"], frame["ts"], strict=True))
        assert key == sorted(key), f


# --- determinism ---------------------------------------------------------------------


def _parquet_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


def test_same_seed_same_bytes_other_seed_other_data(
    generated: GenerateResult, tables: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    again = generate(tmp_path / "b", scale=RECORDS, seed=7)
    assert _parquet_bytes(again.out) == _parquet_bytes(generated.out)
    assert (again.out / "truth.json").read_bytes() == (generated.out / "truth.json").read_bytes()
    other = load(generate(tmp_path / "c", scale=RECORDS, seed=8).out)
    for name in ("locations", "interactions", "establishments"):
        a, b = tables[name], other[name]
        assert len(a) != len(b) or not a.equals(b), name
    pd.testing.assert_frame_equal(load(again.out)["locations"], tables["locations"])


def test_regenerating_into_the_same_directory_replaces_the_tables(tmp_path: Path) -> None:
    out = tmp_path / "d"
    generate(out, scale=30_000, seed=1)
    generate(out, scale=6_000, seed=1)
    assert len(read_table(out, "locations")) == 6_000


# --- planted truth -------------------------------------------------------------------


def test_truth_has_the_planted_keys(truth: dict, tables: dict[str, pd.DataFrame]) -> None:
    for key in (
        "seed",
        "scale",
        "center",
        "tz",
        "start",
        "months",
        "counts",
        "campaign_ctr",
        "users",
        "personas",
        "visit_lift",
        "category_rhythm",
        "approach_walks",
    ):
        assert key in truth, key
    assert truth["seed"] == 7 and truth["tz"] == TZ and truth["scale"] == RECORDS
    assert truth["center"] == [-8.0476, -34.877]
    assert set(truth["campaign_ctr"]) == set(tables["campaigns"]["campaign_id"])
    assert all(0.005 <= c <= 0.08 for c in truth["campaign_ctr"].values())
    users = set(tables["locations"]["user_id"])
    assert users <= set(truth["users"]) | {w["user_id"] for w in truth["approach_walks"]}
    some = next(iter(truth["users"].values()))
    assert list(some["preferred_by_period"]) == ["night", "morning", "afternoon", "evening"]
    assert len(some["preferred_by_weekday"]) == 7
    assert some["persona"] in truth["personas"]
    lift = truth["visit_lift"]
    assert lift["window_hours"] == 6.0 and lift["radius_m"] == VISIT_RADIUS_M
    assert 0 < lift["p_trip_after_view"] < lift["p_trip_after_click"] <= 1
    assert lift["ad_trips"] > 0
    assert truth["counts"]["locations"] == RECORDS
    assert truth["counts"]["views"] + truth["counts"]["clicks"] == len(tables["interactions"])


def test_planted_ctr_is_recovered(tables: dict[str, pd.DataFrame], truth: dict) -> None:
    it = tables["interactions"].merge(tables["ads"], on="ad_id")
    counts = pd.crosstab(it["campaign_id"], it["action"])
    big = counts[counts["view"] >= 300]
    assert len(big) >= 3
    planted = big.index.map(truth["campaign_ctr"]).to_numpy(dtype=float)
    measured = (big["click"] / big["view"]).to_numpy()
    tolerance = 4.0 * np.sqrt(planted * (1 - planted) / big["view"].to_numpy()) + 0.002
    assert (np.abs(measured - planted) <= tolerance).all(), (measured, planted)


def _visits(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    est, loc = tables["establishments"], tables["locations"]
    index = build_index(est["lat"].to_numpy(), est["lon"].to_numpy(), VISIT_RADIUS_M)
    qi, pi, _ = index.within(loc["lat"].to_numpy(), loc["lon"].to_numpy())
    return pd.DataFrame(
        {
            "user_id": loc["user_id"].to_numpy()[qi],
            "establishment_id": est["establishment_id"].to_numpy()[pi],
            "ts": loc["ts"].to_numpy()[qi],
            "record": qi,
        }
    )


def test_plenty_of_records_are_visits(tables: dict[str, pd.DataFrame]) -> None:
    share = _visits(tables)["record"].nunique() / len(tables["locations"])
    assert 0.02 < share < 0.5


def _share_followed_by_visit(inter: pd.DataFrame, visits: pd.DataFrame) -> float:
    """Share of (user, establishment, ts) interactions followed by a visit within 6 h."""
    pairs = inter.merge(visits, on=["user_id", "establishment_id"], suffixes=("_i", "_v"))
    gap = pairs["ts_v"] - pairs["ts_i"]
    hit = pairs[(gap >= pd.Timedelta(0)) & (gap <= ATTRIBUTION_WINDOW)]
    return hit["row"].nunique() / len(inter)


def test_planted_lift_shows(tmp_path: Path) -> None:
    # more data than the shared fixture: trips caused by ads are rare by design
    t = load(generate(tmp_path / "lift", scale=100_000, seed=3).out)
    visits = _visits(t)
    visits["ts"] = pd.to_datetime(visits["ts"], utc=True)
    clicks = t["interactions"][t["interactions"]["action"] == "click"].merge(t["ads"], on="ad_id")
    clicks = clicks[["user_id", "establishment_id", "ts"]].reset_index(drop=True)
    clicks["row"] = np.arange(len(clicks))
    after = _share_followed_by_visit(clicks, visits)
    # baseline: the same users and times, but the establishment of another random ad
    rng = np.random.default_rng(0)
    shuffled = clicks.copy()
    shuffled["establishment_id"] = rng.choice(t["ads"]["establishment_id"].to_numpy(), len(clicks))
    baseline = _share_followed_by_visit(shuffled, visits)
    assert after > 0.01, (after, baseline)
    assert after > 3 * baseline, (after, baseline)


def test_interaction_preferences_are_recovered(
    tables: dict[str, pd.DataFrame], truth: dict
) -> None:
    it = tables["interactions"].merge(tables["ads"], on="ad_id")
    hour = it["ts"].dt.tz_convert(TZ).dt.hour
    it["period"] = np.array(["night", "morning", "afternoon", "evening"])[hour // 6]
    counts = it.groupby(["user_id", "period", "category"]).size().rename("n").reset_index()
    counts = counts.sort_values(
        ["user_id", "period", "n", "category"], ascending=[True, True, False, True]
    )
    top = counts.groupby(["user_id", "period"]).head(1)
    total = counts.groupby(["user_id", "period"])["n"].sum()
    top = top.join(total.rename("total"), on=["user_id", "period"])
    top = top[top["total"] >= 20]
    planted = [
        truth["users"][u]["preferred_by_period"][p]
        for u, p in zip(top["user_id"], top["period"], strict=True)
    ]
    assert len(top) >= 20
    assert (top["category"].to_numpy() == np.array(planted)).mean() > 0.7


def test_approach_walks_close_in_on_an_advertised_place(
    tables: dict[str, pd.DataFrame], truth: dict
) -> None:
    walks = truth["approach_walks"]
    assert len(walks) >= 5
    loc = tables["locations"]
    est = tables["establishments"].set_index("establishment_id")
    ads = tables["ads"].merge(tables["campaigns"], on="campaign_id").set_index("ad_id")
    for walk in walks:
        e = est.loc[walk["establishment_id"]]
        start, arrival = pd.Timestamp(walk["start_ts"]), pd.Timestamp(walk["arrival_ts"])
        rows = loc[(loc["user_id"] == walk["user_id"]) & loc["ts"].between(start, arrival)]
        rows = rows.sort_values("ts")
        d = haversine_m(rows["lat"].to_numpy(), rows["lon"].to_numpy(), e["lat"], e["lon"])
        assert len(d) >= 10
        assert d[0] > 1_000 and d[-1] < VISIT_RADIUS_M
        assert (np.diff(d) <= -MIN_CLOSING_M).mean() > 0.9  # closing in, ping after ping
        assert (rows["ts"].diff().dropna() <= MAX_GAP).all()
        ad = ads.loc[walk["ad_id"]]
        assert ad["establishment_id"] == walk["establishment_id"]
        local_day = arrival.tz_convert(TZ).date()
        assert ad["start_date"] <= local_day <= ad["end_date"]


def test_other_city_and_time_zone(tmp_path: Path) -> None:
    # Lisbon, with a daylight-saving change inside the period
    res = generate(
        tmp_path / "lx",
        scale=8_000,
        seed=2,
        center=(38.7223, -9.1393),
        tz="Europe/Lisbon",
        start="2024-03-01",
        months=2,
    )
    loc = read_table(res.out, "locations")
    assert abs(loc["lat"].median() - 38.7223) < 0.2 and abs(loc["lon"].median() + 9.1393) < 0.2
    local = loc["ts"].dt.tz_convert("Europe/Lisbon")
    assert local.min() >= pd.Timestamp("2024-03-01", tz="Europe/Lisbon")
    assert local.max() < pd.Timestamp("2024-05-01", tz="Europe/Lisbon")
    assert sorted(p.name for p in (res.out / "locations").iterdir()) == [
        "month=2024-03",
        "month=2024-04",
    ]
