"""The Spark engine against the pandas reference: the JVM expressions (cell keys, haversine,
calendar buckets), the collected dtypes, validation reports, and every analysis on
generated datasets (dict literals with string and integer ids, CSV with odd values, and
the ``tiny`` synthetic preset read from Parquet by Spark itself).

All tests share the process-wide SparkSession (few shuffle partitions).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import adanalytics as aa
from adanalytics import geo, schema
from adanalytics.dataset import ANALYSES, BY_ANALYSES
from adanalytics.engines.spark import visits as sv
from adanalytics.errors import ClusterConnectionError
from tests.builders import LAT0, LON0
from tests.helpers import offset


@pytest.fixture(scope="module", autouse=True)
def _spark_selected(request: pytest.FixtureRequest) -> None:
    engines = [e.strip() for e in request.config.getoption("--engines").split(",")]
    if "spark" not in engines:
        pytest.skip("spark not among --engines")


@pytest.fixture(scope="module")
def spark() -> Any:
    from adanalytics.engines.spark.engine import SparkEngine

    return SparkEngine(conf={"spark.sql.shuffle.partitions": 4}).spark


# --- comparison helpers ------------------------------------------------------------------

def assert_same_frame(got: pd.DataFrame, want: pd.DataFrame, what: str = "") -> None:
    """Same columns, dtypes, row order and values (floats to 1e-12 relative)."""
    assert list(got.columns) == list(want.columns), what
    assert [str(t) for t in got.dtypes] == [str(t) for t in want.dtypes], (
        f"{what}: dtypes {got.dtypes.to_dict()} != {want.dtypes.to_dict()}")
    assert len(got) == len(want), f"{what}: {len(got)} rows != {len(want)}\n{got}\n{want}"
    for c in want.columns:
        g, w = got[c], want[c]
        if pd.api.types.is_float_dtype(w.dtype):
            np.testing.assert_allclose(g.to_numpy(), w.to_numpy(), rtol=1e-12, atol=1e-9,
                                       equal_nan=True, err_msg=f"{what}: column {c}")
        else:
            assert g.tolist() == w.tolist(), f"{what}: column {c}\n{got}\n{want}"


def compare_all(data: Any, tz: str = "America/Recife", **kwargs: Any) -> None:
    """Every analysis and ``by`` of both engines on the same input."""
    ref = aa.open_dataset(data, engine="pandas", tz=tz, **kwargs)
    sp = aa.open_dataset(data, engine="spark", tz=tz, **kwargs)
    assert sp.validation.to_dict() == ref.validation.to_dict()
    for analysis in ANALYSES:
        for by in (("total", "month") if analysis in BY_ANALYSES else ("total",)):
            want = ref.run(analysis, by=by)
            got = aa.to_pandas(sp.run(analysis, by=by))
            assert_same_frame(got, want, f"{analysis} by={by}")


# --- random dict datasets ------------------------------------------------------------------

def random_dataset(seed: int, int_ids: bool = False) -> dict[str, dict[str, list[Any]]]:
    """A small city: places on a 1 km square, users dwelling near places and walking
    towards them, interactions with ads before and after, campaigns over a few months."""
    rng = np.random.default_rng(seed)

    def ident(prefix: str, i: int) -> Any:
        return i + (100 if prefix == "c" else 0) if int_ids else f"{prefix}{i}"

    n_places, n_users = 10, 25
    cats = ["cafe", "bar", "gym", "shop"]
    places = []
    for i in range(n_places):
        lat, lon = offset(LAT0, LON0, north_m=rng.uniform(-500, 500), east_m=rng.uniform(-500, 500))
        places.append((ident("e", i), f"Place {i}", cats[rng.integers(len(cats))], lat, lon))
    # two places 30 m apart: records between them visit both
    lat, lon = offset(places[0][3], places[0][4], north_m=30.0)
    places.append((ident("e", n_places), "Twin", "cafe", lat, lon))
    campaigns = [(ident("c", i), f"Camp {i}", f"2024-0{1 + i}-01", f"2024-0{3 + i}-15") for i in range(4)]
    ad_cats = ["food", "drinks", "sport", "fashion"]
    ads = [(ident("a", i), campaigns[i % 4][0], places[i % len(places)][0], ad_cats[i % 4])
           for i in range(14)]
    t0 = pd.Timestamp("2024-01-01T00:00:00Z").value // 10**9
    locations, interactions = [], []
    for u in range(n_users):
        user = ident("u", u)
        t = t0 + int(rng.integers(0, 86400 * 20))
        for _ in range(6):
            p = places[rng.integers(len(places))]
            if rng.random() < 0.5:  # walk towards p from ~700 m in 100 m steps
                for k in range(8):
                    d = 700.0 - 100.0 * k + rng.normal(0, 5)
                    lat, lon = offset(p[3], p[4], north_m=-d, east_m=rng.normal(0, 3))
                    locations.append((user, lat, lon, _iso(t)))
                    t += int(rng.integers(60, 300))
            for _ in range(int(rng.integers(1, 8))):  # dwell near p
                lat, lon = offset(p[3], p[4], north_m=rng.normal(0, 35), east_m=rng.normal(0, 35))
                locations.append((user, lat, lon, _iso(t)))
                t += int(rng.integers(0, 600))  # 0: equal timestamps happen
            for _ in range(int(rng.integers(0, 4))):
                ad = ads[rng.integers(len(ads))][0]
                ti = t - int(rng.integers(0, 9 * 3600))
                interactions.append((user, ad, "click" if rng.random() < 0.2 else "view", _iso(ti)))
            t += int(rng.integers(3600, 86400 * 6))
    from tests.builders import table

    return {
        "campaigns": table("campaigns", campaigns),
        "ads": table("ads", ads),
        "establishments": table("establishments", places),
        "interactions": table("interactions", interactions),
        "locations": table("locations", locations),
    }


def _iso(t: int) -> str:
    return pd.Timestamp(t, unit="s", tz="UTC").isoformat()


@pytest.mark.parametrize("int_ids", [False, True], ids=["str_ids", "int_ids"])
@pytest.mark.parametrize("seed", [0, 1])
def test_every_analysis_equals_pandas_on_random_data(spark: Any, seed: int, int_ids: bool) -> None:
    compare_all(random_dataset(seed, int_ids))


def test_dst_time_zone_buckets_equal_pandas(spark: Any) -> None:
    # Sao Paulo had daylight saving time until 2019: months, hours and weekdays move
    data = random_dataset(3)
    for t in ("interactions", "locations"):
        data[t]["ts"] = [pd.Timestamp(v).replace(year=2018).isoformat() for v in data[t]["ts"]]
    data["campaigns"]["start_date"] = ["2017-10-01"] * len(data["campaigns"]["start_date"])
    data["campaigns"]["end_date"] = ["2018-12-31"] * len(data["campaigns"]["end_date"])
    compare_all(data, tz="America/Sao_Paulo")


def test_empty_fact_tables_give_typed_empty_results(spark: Any) -> None:
    data = random_dataset(0, int_ids=True)
    for t in ("interactions", "locations"):
        data[t] = {c: [] for c in data[t]}
    compare_all(data)


# --- the JVM expressions ---------------------------------------------------------------------

def _points(rng: np.random.Generator, spec: geo.GridSpec, n: int) -> tuple[np.ndarray, np.ndarray]:
    lat = np.concatenate([
        rng.uniform(-90, 90, n), rng.uniform(-90, -85, n // 4), rng.uniform(85, 90, n // 4),
        # exactly on band boundaries, the poles and the antimeridian
        (rng.integers(0, spec.n_bands, n // 4) * spec.height_deg - 90.0).clip(-90, 90),
        np.array([-90.0, 90.0, 0.0, -0.0, 89.999999, -89.999999]),
    ])
    lon = np.concatenate([
        rng.uniform(-180, 180, n), rng.uniform(-180, 180, n // 2),
        rng.choice([-180.0, 180.0, 0.0, 179.99999999, -179.99999999], n // 4),
        np.array([-180.0, 180.0, 0.0, -0.0, 180.0, -180.0]),
    ])
    return lat, lon


@pytest.mark.parametrize("radius", [50.0, 500.0, 12_345.0, 2_000_000.0])
def test_cell_keys_equal_numpy_bit_for_bit(spark: Any, radius: float) -> None:
    import pyarrow as pa
    from pyspark.sql import functions as F

    from adanalytics.engines.spark.geo import cell_key

    spec = geo.grid_spec(radius)
    lat, lon = _points(np.random.default_rng(7), spec, 20_000)
    df = spark.createDataFrame(pa.table({"lat": lat, "lon": lon}))
    got = df.select(cell_key(spec, F.col("lat"), F.col("lon")).alias("k")).toPandas()["k"]
    want = spec.cell_keys(lat, lon)
    assert (got.to_numpy(np.int64) == want).all()


def test_haversine_equals_numpy(spark: Any) -> None:
    import pyarrow as pa
    from pyspark.sql import functions as F

    from adanalytics.engines.spark.geo import haversine

    rng = np.random.default_rng(3)
    n = 20_000
    lat1, lon1 = rng.uniform(-89, 89, n), rng.uniform(-180, 180, n)
    lat2 = np.clip(lat1 + rng.normal(0, 0.01, n), -90, 90)
    lon2 = lon1 + rng.normal(0, 0.01, n)
    df = spark.createDataFrame(pa.table({"a": lat1, "b": lon1, "c": lat2, "d": lon2}))
    got = df.select(haversine(*(F.col(c) for c in "abcd")).alias("m")).toPandas()["m"].to_numpy()
    want = geo.haversine_m(lat1, lon1, lat2, lon2)
    # the JVM's sin/cos/asin may differ from the C library's in the last bit only
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-12)


@pytest.mark.parametrize("tz", ["America/Recife", "America/Sao_Paulo", "Europe/Berlin",
                                "Asia/Kathmandu", "Pacific/Chatham", "UTC"])
def test_time_buckets_equal_pandas(spark: Any, tz: str) -> None:
    import pyarrow as pa
    from pyspark.sql import functions as F

    from adanalytics.engines.pandas import timebuckets as ptb
    from adanalytics.engines.spark import timebuckets as stb

    rng = np.random.default_rng(11)
    # 1960-2036: pandas resolves zone names with pytz, whose tables stop in 2037 (later
    # instants get no daylight saving time there, while the JVM applies the zone's rules)
    us = rng.integers(-10 * 365 * 86400, 66 * 365 * 86400, 20_000) * 1_000_000
    us = np.concatenate([us, us[:2000] // 3_600_000_000 * 3_600_000_000 - 1])  # hour edges
    ts = pd.Series(pd.to_datetime(us, unit="us", utc=True))
    df = spark.createDataFrame(pa.table({"ts": pa.array(us, pa.timestamp("us", tz="UTC"))}))
    spark.conf.set("spark.sql.session.timeZone", "Asia/Tokyo")  # must not matter
    local = stb.local_us(F.col("ts"), tz)
    got = df.select(stb.month(local).alias("month"), stb.hour(local).alias("hour"),
                    stb.weekday(local).alias("weekday"),
                    stb.period(stb.hour(local)).alias("period")).toPandas()
    loc = ptb.local(ts, tz)
    assert got["month"].tolist() == ptb.month(loc).tolist()
    assert got["hour"].tolist() == ptb.hour(loc).tolist()
    assert got["weekday"].tolist() == ptb.weekday(loc).tolist()
    assert got["period"].tolist() == ptb.period(loc).tolist()


def test_collect_keeps_reference_dtypes_whatever_the_session_zone(spark: Any) -> None:
    from pyspark.sql import functions as F

    from adanalytics.engines.spark.collect import spark_to_pandas

    df = spark.range(3).select(
        F.col("id").cast("int").alias("i"), F.col("id").alias("l"),
        (F.col("id") / 2).alias("d"), F.concat(F.lit("x"), F.col("id")).alias("s"),
        F.timestamp_micros(F.col("id") * 3_600_000_000 + 1).alias("ts"))
    for zone in ("UTC", "America/Recife", "Asia/Tokyo"):
        spark.conf.set("spark.sql.session.timeZone", zone)
        out = spark_to_pandas(df)
        assert [str(t) for t in out.dtypes] == ["int64", "int64", "float64", "object",
                                                 "datetime64[ns, UTC]"]
        assert out["ts"].tolist() == [pd.Timestamp("1970-01-01T00:00:00.000001Z")
                                      + pd.Timedelta(hours=h) for h in range(3)]
        assert out["s"].tolist() == ["x0", "x1", "x2"]


def test_analysis_sets_session_time_zone_to_the_dataset_tz(spark: Any) -> None:
    ds = aa.open_dataset(random_dataset(0), engine="spark", tz="Europe/Berlin")
    frame = ds.ctr(by="month")
    assert spark.conf.get("spark.sql.session.timeZone") == "Europe/Berlin"
    want = aa.open_dataset(random_dataset(0), engine="pandas", tz="Europe/Berlin").ctr(by="month")
    spark.conf.set("spark.sql.session.timeZone", "Asia/Tokyo")  # collected later, elsewhere
    assert_same_frame(aa.to_pandas(frame), want)


# --- reading and validation ----------------------------------------------------------------------

def _write(data: dict[str, dict[str, list[Any]]], root: Path, fmt: str) -> Path:
    from tests.builders import write_dataset

    return write_dataset(data, root, fmt)


def messy_dataset() -> dict[str, dict[str, list[Any]]]:
    """Valid rows in every accepted form plus rows breaking each fact-table rule."""
    data = random_dataset(5)
    odd_ts = ["2024-01-05", "2024-01-05T10:00", "2024-01-05 10:00:00", "2024-01-05T10:00:00.5Z",
              "2024-01-05T10:00:00+02", "2024-01-05T10:00:00+0200", " 2024-01-05T10:00Z ",
              "2024-01-05T10:00:00.123456789-03:00", "2024-1-5", "20240105T100000",
              "2024-01-05t10:00:00z", "1704448800000", "-1000", "1704448800000.0",
              # invalid
              "2024-02-30", "2024-01-05T24:00:00", "yesterday", "", "1500-01-01", "9.3e15",
              "2024-01-05T10:00:00+25:00"]
    lats = ["-8.05", " -8.0501", "-8.05e0", "+8.05", "-8.", "abc", "", "nan", "inf", "91",
            "-90", "1d", "0x10", "-8,05", "-8.05", "-8.05", "-8.05", "-8.05", "-8.05", "-8.05",
            "-8.05"]
    users = ["u1", "u2", "", "u4", "u5", "u6", "u7", "u8", "u9", "u10", "u11", "u12", "u13",
             "u14", "u15", "u16", "u17", "u18", "u19", "u20", "u21"]
    loc = data["locations"]
    for u, la, t in zip(users, lats, odd_ts, strict=True):
        loc["user_id"].append(u)
        loc["lat"].append(la)
        loc["lon"].append(str(LON0))
        loc["ts"].append(t)
    loc["lat"] = [str(v) for v in loc["lat"]]
    loc["lon"] = [str(v) for v in loc["lon"]]
    inter = data["interactions"]
    ad0 = data["ads"]["ad_id"][0]
    for u, ad, act, t in [("u1", ad0, "VIEW", "2024-01-05T10:00:00Z"), ("u1", ad0, " Click ", odd_ts[3]),
                          ("u1", ad0, "like", odd_ts[0]), ("u1", "a404", "view", odd_ts[1]),
                          ("", ad0, "view", odd_ts[2]), ("u1", "", "view", odd_ts[2]),
                          ("u1", ad0, "", "yesterday"), ("u1", ad0, "view", "20240105T100000")]:
        inter["user_id"].append(u)
        inter["ad_id"].append(ad)
        inter["action"].append(act)
        inter["ts"].append(t)
    # an ad whose campaign does not exist: its interactions cascade
    data["ads"]["ad_id"].append("a999")
    data["ads"]["campaign_id"].append("c404")
    data["ads"]["establishment_id"].append(data["establishments"]["establishment_id"][0])
    data["ads"]["category"].append("food")
    inter["user_id"].append("u1")
    inter["ad_id"].append("a999")
    inter["action"].append("view")
    inter["ts"].append(odd_ts[0])
    return data


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "parquet", "parquetdir"])
def test_validation_report_and_results_equal_pandas(spark: Any, tmp_path: Path, fmt: str) -> None:
    path = _write(messy_dataset(), tmp_path / "ds", fmt)
    with pytest.raises(aa.ValidationError) as ref_err:
        aa.open_dataset(path, engine="pandas")
    with pytest.raises(aa.ValidationError) as sp_err:
        aa.open_dataset(path, engine="spark")
    ref_rep, sp_rep = ref_err.value.report, sp_err.value.report
    assert sp_rep.to_dict() == ref_rep.to_dict()
    for a, b in zip(sp_rep.violations, ref_rep.violations, strict=True):
        assert list(a.examples.columns) == list(b.examples.columns)
        assert len(a.examples) == len(b.examples)
    compare_all(str(path), on_invalid="quarantine")
    # quarantined rows, with their raw text and the rule
    rej = {e: tmp_path / f"rej_{e}" for e in ("pandas", "spark")}
    for e, p in rej.items():
        aa.open_dataset(path, engine=e, on_invalid="quarantine", rejected_path=str(p))
    for t in schema.TABLE_NAMES:
        files = {e: p / f"{t}.parquet" for e, p in rej.items()}
        assert files["pandas"].exists() == files["spark"].exists(), t
        if files["pandas"].exists():
            a, b = (pd.read_parquet(files[e]) for e in ("spark", "pandas"))
            key = [*schema.columns(t), schema.REJECT_RULE_COLUMN]
            assert list(a.columns) == key
            a = a.astype(str).sort_values(key).reset_index(drop=True)
            b = b.astype(str).sort_values(key).reset_index(drop=True)
            pd.testing.assert_frame_equal(a, b)  # all text in: the same text out


def test_integer_text_ids_follow_the_reference(spark: Any, tmp_path: Path) -> None:
    # canonical integers become int64; "007" keeps user ids text - in both engines
    data = random_dataset(2, int_ids=True)
    compare_all(str(_write(data, tmp_path / "ints", "csv")))
    data["locations"]["user_id"][0] = "007"
    compare_all(str(_write(data, tmp_path / "mixed", "csv")))


def test_remote_urls_are_read_on_the_driver(spark: Any) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    data = random_dataset(4)
    for name, cols in data.items():
        with fs.open(f"/spark-remote/{name}.csv", "w") as fh:
            pd.DataFrame(cols).to_csv(fh, index=False)
    try:
        compare_all("memory://spark-remote")
    finally:
        fs.rm("/spark-remote", recursive=True)


def test_synth_tiny_from_parquet_equals_pandas(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    from adanalytics.synth import generate

    out = tmp_path_factory.mktemp("synth") / "tiny"
    generate(out, scale="tiny", seed=3)
    compare_all(str(out))


def test_persist_caches_and_answers_the_same(spark: Any) -> None:
    data = random_dataset(6)
    ds = aa.open_dataset(data, engine="spark")
    before = aa.to_pandas(ds.visits(by="month"))
    columns = ds.tables.locations.columns
    ds.persist()
    # the locations are cached with their cell keys and user hashes; the table is the
    # projection on the loaded columns, read from that cache
    keyed = sv.keyed_frame(ds.tables.locations)
    assert keyed is not None and ds.tables.locations.columns == columns
    assert {"_cell", "_user"} <= set(keyed.columns)
    assert "InMemoryTableScan" in _executed_plan(ds.tables.locations)
    for name, df in ds.tables.items():
        cached = keyed if name == "locations" else df
        assert cached.is_cached
        assert cached.storageLevel.useDisk and cached.storageLevel.useMemory
    # the persisted locations count visitors on the user id's hash (checked injective),
    # stored with each record, and the visit pairs read the stored cell keys
    assert sv._USER_HASH.get(ds.tables.locations) is True
    assert "xxhash64" in str(sv.user_key(ds.tables.locations))
    plan = _executed_plan(ds.visits())
    assert "xxhash64" not in plan and "FLOOR" not in plan.upper()
    assert_same_frame(aa.to_pandas(ds.visits(by="month")), before)
    assert_same_frame(aa.to_pandas(ds.visits()), aa.to_pandas(
        aa.open_dataset(data, engine="pandas").visits()))
    ds.close()
    assert not keyed.is_cached
    assert not any(df.is_cached for _, df in ds.tables.items())


def _executed_plan(df: Any) -> str:
    """The physical plan of ``df`` without the plans of the cached tables it scans."""
    lines = str(df._jdf.queryExecution().executedPlan().toString()).splitlines()
    out, cache_depth = [], None
    for line in lines:
        depth = next((i for i, ch in enumerate(line) if ch.isalpha()), len(line))
        if cache_depth is not None and depth > cache_depth:
            continue  # inside a cached table's own plan
        cache_depth = depth if "InMemoryTableScan" in line else None
        out.append(line)
    return "\n".join(out)


def test_persist_spreads_the_big_tables_over_whole_waves_of_cores(spark: Any) -> None:
    import dataclasses

    from adanalytics.engines.spark import load as sl

    users = spark.range(60).selectExpr("cast(id % 7 as string) as user_id")
    # 3 splits on 2 cores: a third task would run alone -> 4 partitions, hashed by user
    spread = sl.balanced(users.repartition(3), 2)
    assert spread.rdd.getNumPartitions() == 4
    assert "hashpartitioning(user_id" in spread._jdf.queryExecution().executedPlan().toString()
    assert sorted(r.user_id for r in spread.collect()) == sorted(r.user_id for r in users.collect())
    whole = users.repartition(4)
    assert sl.balanced(whole, 2) is whole  # whole waves already
    nearly = users.repartition(19)
    assert sl.balanced(nearly, 2) is nearly  # one idle slot in 20: not worth a shuffle
    # persisted on uneven splits, every analysis still equals the reference
    data = random_dataset(8)
    ds = aa.open_dataset(data, engine="spark")
    ds.tables = dataclasses.replace(ds.tables, locations=ds.tables.locations.repartition(3),
                                    interactions=ds.tables.interactions.repartition(1))
    ds.persist()
    parts = spark.sparkContext.defaultParallelism
    assert ds.tables.locations.rdd.getNumPartitions() % parts == 0
    assert ds.tables.interactions.rdd.getNumPartitions() % parts == 0
    # spread by user id: visitors are counted per user without a shuffle of their own
    # (the only hash exchange left gathers the establishments' totals)
    assert sv._KEYED[ds.tables.locations].by_user
    assert _executed_plan(ds.visits()).count("Exchange hashpartitioning") == 1
    ref = aa.open_dataset(data, engine="pandas")
    for analysis in ANALYSES:
        assert_same_frame(aa.to_pandas(ds.run(analysis)), ref.run(analysis), analysis)
    ds.close()


def test_user_hash_is_used_only_where_it_tells_every_user_apart(spark: Any) -> None:
    frame = spark.createDataFrame([(f"u{i}",) for i in range(1000)] + [(None,)],
                                  "user_id string")
    assert "xxhash64" not in str(sv.user_key(frame))  # unchecked frame: the text
    assert sv.check_user_hash(frame) is True  # 1,001 users (null included), 1,001 hashes
    assert "xxhash64" in str(sv.user_key(frame))
    # a frame where two users share a hash (simulated: real collisions are 2**-64 rare)
    # keeps grouping on the text, and the answer stays the reference one
    data = random_dataset(7)
    ds = aa.open_dataset(data, engine="spark").persist()
    sv._USER_HASH[ds.tables.locations] = False
    assert "xxhash64" not in str(sv.user_key(ds.tables.locations))
    assert_same_frame(aa.to_pandas(ds.visits()),
                      aa.to_pandas(aa.open_dataset(data, engine="pandas").visits()))
    ds.close()


# --- connecting ------------------------------------------------------------------------------------

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_master_probe_is_quick_and_names_the_url() -> None:
    from adanalytics.engines.spark.session import probe_master

    url = f"spark://127.0.0.1:{_closed_port()}"
    start = time.perf_counter()
    with pytest.raises(ClusterConnectionError, match=url.replace("/", ".")):
        probe_master(url, timeout=2.0)
    assert time.perf_counter() - start < 5.0
    with pytest.raises(ClusterConnectionError, match="spark://host:7077"):
        probe_master("http://127.0.0.1:8080")


def test_a_session_on_another_master_is_refused(spark: Any) -> None:
    from adanalytics.engines.spark.engine import SparkEngine

    with pytest.raises(ClusterConnectionError, match="one per process"):
        SparkEngine(master=f"spark://127.0.0.1:{_closed_port()}")


def test_importing_adanalytics_does_not_import_pyspark() -> None:
    code = ("import sys, adanalytics, adanalytics.engines.spark.engine as e; "
            "print('pyspark' in sys.modules)")
    # the engine module itself imports pyspark lazily as well
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_radius_and_window_parameters_equal_pandas(spark: Any) -> None:
    data = random_dataset(8)
    ref = aa.open_dataset(data, engine="pandas")
    sp = aa.open_dataset(data, engine="spark")
    cases = [
        ("visits", {"radius_m": 20.0, "by": "month"}),
        ("visits", {"radius_m": 300.0}),
        ("attribution", {"window": "30min", "radius_m": 80.0}),
        ("attribution", {"window": 0, "by": "month"}),
        ("visit_profile", {"radius_m": 120.0}),
        ("recommendations", {"approach_radius_m": 250.0, "max_gap": "5min",
                             "min_closing_m": 0.0, "cooldown": 0}),
        ("recommendations", {"cooldown": "1d", "min_closing_m": 60.0}),
    ]
    for name, kw in cases:
        assert_same_frame(aa.to_pandas(getattr(sp, name)(**kw)), getattr(ref, name)(**kw),
                          f"{name} {kw}")
