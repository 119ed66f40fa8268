"""The Dask engine against the pandas reference, on random datasets with many partitions.

The engine-parametrised suite (``tests/test_*.py`` with ``--engines dask``) checks the
hand-worked cases; here every analysis, both groupings, string and integer ids, runs on
data spread over several partitions with a tree fan-in of 2 (so the per-partition
kernels, the combine steps and the by-user shuffles all do real work), and the result
must equal the pandas engine's *exactly*: columns, order, dtypes, values, row order.
Loading (Parquet, Parquet directory, CSV, CSV.gz read in small blocks) and validation
(raise / quarantine, reports and rejected rows) are compared the same way.
"""

from __future__ import annotations

import os
import re
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
from adanalytics.errors import ClusterConnectionError, DataContractError, ValidationError

#: Analyses and whether they take ``by``.
ANALYSES: tuple[tuple[str, bool], ...] = (
    ("ctr", True),
    ("visits", True),
    ("attribution", True),
    ("category_hourly", True),
    ("interaction_profile", False),
    ("preferred_ad_category", False),
    ("visit_profile", False),
    ("preferred_establishment_category", False),
    ("recommendations", False),
)
CASES = [(name, by) for name, has_by in ANALYSES for by in (("total", "month") if has_by else (None,))]
#: Engine options that make small data take every distributed code path.
SPLIT = {"npartitions": 5, "split_every": 2}

_M = 1.0 / 111_195.0  # degrees of latitude per metre (near enough for test data)


def random_dataset(seed: int = 0, *, int_ids: bool = False, n_users: int = 25,
                   n_establishments: int = 30, n_locations: int = 4000,
                   n_interactions: int = 1500) -> dict[str, pd.DataFrame]:
    """A small random world: users walking between establishments (visits, approaches
    and equal timestamps happen), interactions shortly before some visits, two local
    months, mixed-case actions."""
    rng = np.random.default_rng(seed)
    lat0, lon0 = -8.05, -34.9
    cats = ["bar", "cafe", "gym", "hotel", "restaurant"]
    n_e = n_establishments
    elat = lat0 + rng.normal(0, 800, n_e) * _M
    elon = lon0 + rng.normal(0, 800, n_e) * _M
    elat[1], elon[1] = elat[0] + 30 * _M, elon[0]  # records near two establishments
    est_id = (np.arange(100, 100 + n_e) if int_ids
              else np.array([f"e{i:03d}" for i in range(n_e)], dtype=object))
    establishments = pd.DataFrame({
        "establishment_id": est_id, "name": [f"E {i}" for i in range(n_e)],
        "category": rng.choice(cats, n_e), "lat": elat, "lon": elon,
    })
    n_c = 6
    camp_id = (np.arange(1, n_c + 1) if int_ids
               else np.array([f"c{i}" for i in range(n_c)], dtype=object))
    day0 = pd.Timestamp("2024-01-01")
    campaigns = pd.DataFrame({
        "campaign_id": camp_id, "name": [f"C{i}" for i in range(n_c)],
        "start_date": [(day0 + pd.Timedelta(days=int(d))).date().isoformat()
                       for d in rng.integers(0, 30, n_c)],
        "end_date": [(day0 + pd.Timedelta(days=int(d))).date().isoformat()
                     for d in rng.integers(30, 70, n_c)],
    })
    n_a = 45
    ad_id = (np.arange(1000, 1000 + n_a) if int_ids
             else np.array([f"a{i:02d}" for i in range(n_a)], dtype=object))
    ads = pd.DataFrame({"ad_id": ad_id, "campaign_id": rng.choice(camp_id, n_a),
                        "establishment_id": rng.choice(est_id, n_a),
                        "category": rng.choice(cats, n_a)})
    users = (np.arange(n_users) + 7 if int_ids
             else np.array([f"u{i:02d}" for i in range(n_users)], dtype=object))
    t0 = pd.Timestamp("2024-01-20", tz="UTC").value
    rows = []
    for u in users:
        ts = t0 + int(rng.integers(0, 10 * 86400)) * 10**9
        target = int(rng.integers(n_e))
        lat = elat[target] + rng.normal(0, 700) * _M
        lon = elon[target] + rng.normal(0, 700) * _M
        for _ in range(n_locations // n_users):
            if rng.random() < 0.05:
                target = int(rng.integers(n_e))
            step = rng.uniform(0.1, 0.6)
            lat += (elat[target] - lat) * step + rng.normal(0, 15) * _M
            lon += (elon[target] - lon) * step + rng.normal(0, 15) * _M
            ts += int(rng.choice([30, 60, 120, 300, 900, 1200, 4000, 30000])) * 10**9
            rows.append((u, lat, lon, ts))
    loc = pd.DataFrame(rows, columns=["user_id", "lat", "lon", "ts"])
    loc["ts"] = pd.to_datetime(loc["ts"], utc=True)
    loc = loc.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    loc.loc[5, ["user_id", "ts"]] = loc.loc[6, ["user_id", "ts"]].to_numpy()  # equal ts
    # interactions: half of them with an ad of the establishment nearest to a location
    # record of the same user, from 1 h after to 8 h before it
    anchors = loc.sample(n_interactions // 2, random_state=seed + 1)
    ad_of = ads.groupby("establishment_id")["ad_id"].first()
    near = []
    for r in anchors.itertuples():
        e = est_id[int(np.argmin((elat - r.lat) ** 2 + (elon - r.lon) ** 2))]
        dt = pd.Timedelta(seconds=int(rng.integers(-3600, 8 * 3600)))
        near.append((r.user_id, ad_of.get(e, ad_id[0]), r.ts - dt))
    inter = pd.DataFrame(near, columns=["user_id", "ad_id", "ts"])
    n_free = n_interactions - len(inter)
    free = pd.DataFrame({
        "user_id": rng.choice(users, n_free), "ad_id": rng.choice(ad_id, n_free),
        "ts": pd.to_datetime(t0 + rng.integers(0, 40 * 86400, n_free) * 10**9, utc=True),
    })
    inter = pd.concat([inter, free], ignore_index=True)
    inter["action"] = np.where(rng.random(len(inter)) < 0.2, "click", "view")
    inter.loc[3, "action"] = "CLICK"
    return {"campaigns": campaigns, "ads": ads, "establishments": establishments,
            "interactions": inter[["user_id", "ad_id", "action", "ts"]], "locations": loc}


def run(ds: aa.Dataset, name: str, by: str | None) -> pd.DataFrame:
    """Run an analysis and collect it."""
    fn = getattr(ds, name)
    return aa.to_pandas(fn(by=by) if by else fn())


def assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Exactly equal: columns, order, dtypes, values and row order (and a fresh index)."""
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def write(data: dict[str, pd.DataFrame], root: Path, fmt: str) -> Path:
    """Write a dataset as ``parquet`` files, a ``parquetdir`` of 3 parts per table,
    ``csv`` or ``csv.gz``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, df in data.items():
        if fmt == "parquet":
            df.to_parquet(root / f"{name}.parquet", index=False)
        elif fmt == "parquetdir":
            (root / name).mkdir()
            for i, part in enumerate(np.array_split(np.arange(len(df)), 3)):
                df.iloc[part].to_parquet(root / name / f"part-{i}.parquet", index=False)
        elif fmt == "csv":
            df.to_csv(root / f"{name}.csv", index=False)
        elif fmt == "csv.gz":
            df.to_csv(root / f"{name}.csv.gz", index=False, compression="gzip")
        else:
            raise ValueError(fmt)
    return root


@pytest.fixture(scope="module", params=[(False, False), (True, False), (False, True)],
                ids=["str-ids", "int-ids", "str-ids-persisted"])
def pair(request: pytest.FixtureRequest) -> tuple[aa.Dataset, aa.Dataset]:
    """The same random dataset on pandas and on Dask (5 partitions, fan-in 2); persisted,
    the Dask tables are laid out by user and the analyses take their unshuffled paths."""
    int_ids, persisted = request.param
    data = random_dataset(int_ids=int_ids)
    dds = aa.open_dataset(data, engine="dask", **SPLIT)
    if persisted:
        dds = dds.persist()
        assert dds.tables.user_parts == SPLIT["npartitions"]
    return aa.open_dataset(data, engine="pandas"), dds


@pytest.mark.parametrize(("name", "by"), CASES, ids=[f"{n}-{b}" if b else n for n, b in CASES])
def test_every_analysis_equals_pandas(pair: tuple[aa.Dataset, aa.Dataset], name: str,
                                      by: str | None) -> None:
    pds, dds = pair
    want = run(pds, name, by)
    got = run(dds, name, by)
    assert len(want) > 0, "the random dataset must exercise the analysis"
    assert_same(got, want)


def test_results_are_one_sorted_partition(pair: tuple[aa.Dataset, aa.Dataset]) -> None:
    _, dds = pair
    for name, by in (("visits", "month"), ("recommendations", None), ("visit_profile", None)):
        frame = dds.visits(by=by) if name == "visits" else getattr(dds, name)()
        assert type(frame).__module__.startswith("dask")
        assert frame.npartitions == 1


def test_persisted_tables_give_the_same_results() -> None:
    from distributed import futures_of

    data = random_dataset(seed=3)
    pds = aa.open_dataset(data, engine="pandas")
    dds = aa.open_dataset(data, engine="dask", **SPLIT).persist()
    for name in ("interactions", "locations"):
        frame = getattr(dds.tables, name)
        assert frame.npartitions == SPLIT["npartitions"]
        # persisted: one finished future per partition in the workers' memory
        futures = futures_of(frame)
        assert len(futures) == frame.npartitions
        assert all(f.status == "finished" for f in futures)
    for name, by in (("ctr", "month"), ("attribution", "total"), ("visit_profile", None),
                     ("recommendations", None)):
        assert_same(run(dds, name, by), run(pds, name, by))


def _users(part: pd.DataFrame) -> set[Any]:
    return set(part["user_id"])


def _cell_keys(part: pd.DataFrame) -> np.ndarray:
    from adanalytics.geo import grid_spec
    from adanalytics.semantics import VISIT_RADIUS_M

    return grid_spec(VISIT_RADIUS_M).cell_keys(part["lat"].to_numpy(), part["lon"].to_numpy())


@pytest.mark.parametrize("int_ids", [False, True], ids=["str-ids", "int-ids"])
def test_persist_lays_out_both_big_tables_alike_by_user(int_ids: bool) -> None:
    import dask

    data = random_dataset(seed=4, int_ids=int_ids)
    dds = aa.open_dataset(data, engine="dask", **SPLIT).persist()
    t = dds.tables
    assert t.user_parts == SPLIT["npartitions"]
    loc = dask.compute(*[dask.delayed(_users)(p) for p in t.locations.to_delayed()])
    inter = dask.compute(*[dask.delayed(_users)(p) for p in t.interactions.to_delayed()])
    assert len(loc) == len(inter) == SPLIT["npartitions"]
    owner: dict[Any, int] = {}
    for i, users in enumerate([*loc, *inter]):
        for u in users:  # a user's records of both tables sit in one partition number
            assert owner.setdefault(u, i % len(loc)) == i % len(loc), u
    assert set(owner) == set(data["locations"]["user_id"]) | set(data["interactions"]["user_id"])
    assert sum(1 for users in loc if users) >= 3  # spread out, not all in one partition
    # and partition i of both tables on the same worker: per-user analyses move no data
    client = dds.engine.client
    assert len(client.scheduler_info()["workers"]) == 2

    def homes(frame: Any) -> list[set[str]]:
        from distributed import futures_of

        futures = sorted(futures_of(frame), key=lambda f: f.key[1])
        who = client.who_has(futures)
        return [set(who[f.key]) for f in futures]

    assert all(a & b for a, b in zip(homes(t.locations), homes(t.interactions), strict=True))
    for name in ("locations", "interactions"):  # nothing lost or repeated on the way
        got = aa.to_pandas(getattr(t, name))
        want = data[name]
        assert len(got) == len(want)
        assert sorted(got["user_id"]) == sorted(want["user_id"])
    # each partition of the locations stored in grid-cell order (the visit radius's cells),
    # with the users' codes
    from adanalytics.engines.pandas.visits import USER_CODE

    assert USER_CODE in t.locations.columns
    keys = dask.compute(*[dask.delayed(_cell_keys)(p) for p in t.locations.to_delayed()])
    assert all(np.all(np.diff(k) >= 0) for k in keys)
    assert sum(len(np.unique(k)) > 1 for k in keys) >= 3  # the order was not trivial


def test_parameters_reach_the_kernels() -> None:
    data = random_dataset(seed=5, n_locations=2000, n_interactions=800)
    pds = aa.open_dataset(data, engine="pandas", tz="Asia/Tokyo")
    dds = aa.open_dataset(data, engine="dask", tz="Asia/Tokyo", **SPLIT)
    assert_same(aa.to_pandas(dds.visits(by="month", radius_m=120)),
                pds.visits(by="month", radius_m=120))
    assert_same(aa.to_pandas(dds.attribution(by="month", window="1h", radius_m=80)),
                pds.attribution(by="month", window="1h", radius_m=80))
    assert_same(aa.to_pandas(dds.preferred_establishment_category(radius_m=75)),
                pds.preferred_establishment_category(radius_m=75))
    kw = {"approach_radius_m": 300, "max_gap": "30min", "min_closing_m": 5, "cooldown": "2h"}
    assert_same(aa.to_pandas(dds.recommendations(**kw)), pds.recommendations(**kw))
    assert_same(aa.to_pandas(dds.category_hourly(by="month")), pds.category_hourly(by="month"))


def test_empty_fact_tables_give_typed_empty_results() -> None:
    data = random_dataset(seed=1, int_ids=True)
    data["locations"] = data["locations"].iloc[:0]
    data["interactions"] = data["interactions"].iloc[:0]
    pds = aa.open_dataset(data, engine="pandas")
    dds = aa.open_dataset(data, engine="dask", **SPLIT)
    for name, by in CASES:
        assert_same(run(dds, name, by), run(pds, name, by))


# --- loading from files -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "parquetdir", "csv", "csv.gz"])
def test_files_load_like_pandas(tmp_path: Path, fmt: str) -> None:
    data = random_dataset(seed=2, int_ids=fmt == "csv", n_locations=1500, n_interactions=600)
    root = write(data, tmp_path / "ds", fmt)
    pds = aa.open_dataset(str(root), engine="pandas")
    # small CSV blocks: the big tables are read as many partitions
    dds = aa.open_dataset(str(root), engine="dask", blocksize=20_000, split_every=2)
    if fmt == "csv":
        assert dds.tables.locations.npartitions > 2
    assert dds.validation.to_dict() == pds.validation.to_dict()
    for name, by in (("ctr", "month"), ("visits", "total"), ("attribution", "month"),
                     ("interaction_profile", None), ("recommendations", None)):
        assert_same(run(dds, name, by), run(pds, name, by))


def _dirty(tmp_path: Path) -> Path:
    """A CSV dataset breaking every rule of the big tables (in several partitions) and
    one of a small table whose rows then orphan interactions."""
    data = random_dataset(seed=4, n_locations=1000, n_interactions=400)
    loc = data["locations"].astype({"lat": object, "ts": object})
    loc["ts"] = loc["ts"].map(lambda t: t.isoformat())
    for i in range(0, 1000, 97):
        loc.loc[i, "lat"] = "north"
    for i in range(13, 1000, 151):
        loc.loc[i, "ts"] = "yesterday"
    loc.loc[[7, 700], "user_id"] = None
    inter = data["interactions"].astype({"ts": object})
    inter["ts"] = inter["ts"].map(lambda t: t.isoformat())
    inter.loc[[2, 250, 390], "action"] = "like"
    inter.loc[[9, 300], "ad_id"] = "no-such-ad"
    inter.loc[11, "ts"] = "1712345678901"  # epoch milliseconds: valid
    ads = data["ads"].copy()
    ads.loc[0, "campaign_id"] = "no-such-campaign"  # ad a00 is rejected, and its interactions
    data.update(locations=loc, interactions=inter, ads=ads)
    return write(data, tmp_path / "dirty", "csv")


def test_invalid_rows_raise_the_pandas_report(tmp_path: Path) -> None:
    root = _dirty(tmp_path)
    with pytest.raises(ValidationError) as want:
        aa.open_dataset(str(root), engine="pandas")
    with pytest.raises(ValidationError) as got:
        aa.open_dataset(str(root), engine="dask", blocksize=8_000)
    assert str(got.value) == str(want.value)
    assert got.value.report.to_dict() == want.value.report.to_dict()
    tables = {v.table for v in got.value.report.violations}
    assert tables == {"ads", "interactions", "locations"}


def test_quarantine_keeps_valid_rows_and_writes_rejected(tmp_path: Path) -> None:
    root = _dirty(tmp_path)
    pds = aa.open_dataset(str(root), engine="pandas", on_invalid="quarantine",
                          rejected_path=str(tmp_path / "rej-pandas"))
    dds = aa.open_dataset(str(root), engine="dask", on_invalid="quarantine", blocksize=8_000,
                          rejected_path=str(tmp_path / "rej-dask"))
    assert dds.validation.to_dict()["violations"] == pds.validation.to_dict()["violations"]
    assert dds.validation.rows == pds.validation.rows
    assert dds.validation.describe() == pds.validation.describe().replace("rej-pandas", "rej-dask")
    assert sorted(dds.rejected) == sorted(pds.rejected) == ["ads", "interactions", "locations"]
    for t in pds.rejected:
        assert_same(dds.rejected[t], pds.rejected[t])
        on_disk = pd.read_parquet(tmp_path / "rej-dask" / f"{t}.parquet")
        assert_same(on_disk, pd.read_parquet(tmp_path / "rej-pandas" / f"{t}.parquet"))
    for name, by in (("ctr", "total"), ("visits", "month"), ("attribution", "total")):
        assert_same(run(dds, name, by), run(pds, name, by))


def test_csv_ids_are_integers_only_if_canonical_in_every_partition(tmp_path: Path) -> None:
    data = random_dataset(seed=6, int_ids=True, n_locations=1500, n_interactions=300)
    loc = data["locations"].astype({"user_id": object})
    loc.loc[len(loc) - 1, "user_id"] = "0042"  # one non-canonical id, in the last block
    data["locations"] = loc
    root = write(data, tmp_path / "ds", "csv")
    pds = aa.open_dataset(str(root), engine="pandas")
    dds = aa.open_dataset(str(root), engine="dask", blocksize=8_000)
    assert dds.tables.locations.npartitions > 2
    assert pds.tables.locations["user_id"].dtype == object
    for name, by in (("visits", "total"), ("attribution", "total"), ("visit_profile", None),
                     ("interaction_profile", None)):
        assert_same(run(dds, name, by), run(pds, name, by))


def test_missing_table_and_column_are_named(tmp_path: Path) -> None:
    data = random_dataset(seed=7, n_locations=100, n_interactions=50)
    root = write(data, tmp_path / "ds", "parquet")
    (root / "locations.parquet").unlink()
    with pytest.raises(DataContractError, match=r"missing table.*locations"):
        aa.open_dataset(str(root), engine="dask")
    data["locations"].drop(columns=["lat"]).to_parquet(root / "locations.parquet")
    with pytest.raises(DataContractError, match=r"missing column.*lat"):
        aa.open_dataset(str(root), engine="dask")


# --- the cluster ---------------------------------------------------------------------------


def test_embedded_cluster_is_one_per_process() -> None:
    from adanalytics.engines.dask.cluster import embedded_cluster

    a = aa.open_dataset(random_dataset(n_locations=50, n_interactions=20), engine="dask")
    b = aa.open_dataset(random_dataset(n_locations=50, n_interactions=20), engine="dask")
    assert a.engine.client is b.engine.client
    a.close()  # closing a Dataset leaves the shared cluster running
    assert b.engine.client.status == "running"
    assert len(b.engine.client.scheduler_info(n_workers=-1)["workers"]) == 2
    assert embedded_cluster() is not None
    assert a.engine.dashboard_link


def _allocator_environ() -> tuple[str | None, str | None]:
    import os

    return os.environ.get("MALLOC_MMAP_THRESHOLD_"), os.environ.get("MALLOC_TRIM_THRESHOLD_")


def test_embedded_workers_keep_freed_heap_for_the_next_task() -> None:
    from adanalytics.engines.dask.cluster import MALLOC_MMAP_THRESHOLD, MALLOC_TRIM_THRESHOLD

    ds = aa.open_dataset(random_dataset(n_locations=50, n_interactions=20), engine="dask")
    seen = set(ds.engine.client.run(_allocator_environ).values())
    assert seen == {(str(MALLOC_MMAP_THRESHOLD), str(MALLOC_TRIM_THRESHOLD))}
    assert MALLOC_TRIM_THRESHOLD > 65536  # not Dask's default: temporaries are reused


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_scheduler_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    start = time.perf_counter()
    with pytest.raises(ClusterConnectionError, match=re.escape(address)):
        aa.open_dataset({}, engine="dask", address=address, timeout=2)
    assert time.perf_counter() - start < 10
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)
    with pytest.raises(ClusterConnectionError, match="DASK_SCHEDULER_ADDRESS"):
        aa.open_dataset({}, engine="dask", timeout=1)


def test_importing_adanalytics_does_not_import_dask() -> None:
    code = ("import sys, adanalytics, adanalytics.engines.pandas.engine; "
            "sys.exit(1 if any(m == 'dask' or m.startswith(('dask.', 'distributed')) "
            "for m in sys.modules) else 0)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    assert subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode == 0


def test_dask_frames_hold_no_pyarrow_strings(pair: tuple[aa.Dataset, aa.Dataset]) -> None:
    _, dds = pair
    for name in ("interactions", "locations"):
        meta: Any = getattr(dds.tables, name)._meta
        assert not any(isinstance(t, pd.StringDtype) for t in meta.dtypes)


# --- the coded count kernels equal the pandas kernels ----------------------------------------


@pytest.mark.parametrize("int_ids", [False, True], ids=["str-ids", "int-ids"])
def test_stored_locations_give_the_same_visit_totals(int_ids: bool) -> None:
    from adanalytics.engines.dask.plan import store_locations
    from adanalytics.engines.pandas import visits

    data = aa.open_dataset(random_dataset(seed=9, int_ids=int_ids), engine="pandas").tables
    places = visits.place_index(data.establishments, 50.0)
    for part in (data.locations, data.locations.iloc[:700], data.locations.iloc[:0]):
        stored = store_locations(part)
        assert len(stored) == len(part)
        codes = stored.groupby("user_id")[visits.USER_CODE].nunique()
        assert (codes <= 1).all()  # one code per user ...
        assert stored.groupby(visits.USER_CODE)["user_id"].nunique().le(1).all()  # ... and user
        for by in ("total", "month"):
            want = visits.visit_totals(part, places, by=by, tz="Asia/Tokyo")
            got = visits.visit_totals(stored, places, by=by, tz="Asia/Tokyo")
            keys = list(want.columns[:-2])
            assert_same(got.sort_values(keys).reset_index(drop=True),
                        want.sort_values(keys).reset_index(drop=True))
            if len(part) == len(data.locations):
                assert want["visitors"].lt(want["visits"]).any()  # repeat visits were counted


@pytest.mark.parametrize("int_ids", [False, True], ids=["str-ids", "int-ids"])
def test_count_kernels_equal_the_pandas_kernels(int_ids: bool) -> None:
    from adanalytics.engines.dask import counting
    from adanalytics.engines.pandas import profiles, visits

    data = aa.open_dataset(random_dataset(seed=8, int_ids=int_ids), engine="pandas").tables
    ads = data.ads.copy()
    ads.loc[[1, 2], "category"] = None  # a missing category is not counted (groupby drops it)
    est = data.establishments.copy()
    est.loc[0, "category"] = None
    places = visits.place_index(est, 50.0)

    def same(got: pd.DataFrame, want: pd.DataFrame) -> None:
        keys = list(want.columns[:-1])
        assert list(got.columns) == list(want.columns)
        assert_same(got.sort_values(keys).reset_index(drop=True),
                    want.sort_values(keys).reset_index(drop=True))

    for part in (data.locations, data.locations.iloc[:700], data.locations.iloc[:0]):
        pairs = visits.visit_pairs(part, places)
        for by in ("total", "month"):
            same(counting.visit_user_counts(part, places, by=by, tz="Asia/Tokyo"),
                 visits.visit_user_counts(pairs, by=by, tz="Asia/Tokyo"))
        same(counting.visit_profile_counts(part, places, tz="America/New_York"),
             profiles.visit_profile_counts(pairs, tz="America/New_York"))
    for part in (data.interactions, data.interactions.iloc[:300], data.interactions.iloc[:0]):
        same(counting.interaction_profile_counts(part, ads, tz="America/Recife"),
             profiles.interaction_profile_counts(part, ads, tz="America/Recife"))


@pytest.mark.parametrize("int_ids", [False, True], ids=["str-ids", "int-ids"])
def test_profiles_of_users_equal_the_pandas_profiles(int_ids: bool) -> None:
    """The one-pass kernels of partitions laid out by user: the reference's profile and
    preferred categories of the records given, row for row in the reference's order."""
    from adanalytics.engines.dask import counting
    from adanalytics.engines.pandas import profiles, visits

    data = aa.open_dataset(random_dataset(seed=9, int_ids=int_ids), engine="pandas").tables
    ads = data.ads.copy()
    ads.loc[[1, 2], "category"] = None
    est = data.establishments.copy()
    est.loc[0, "category"] = None
    places = visits.place_index(est, 50.0)
    tz = "America/Recife"
    for part in (data.locations, data.locations.iloc[:700], data.locations.iloc[:0]):
        want = profiles.visit_profile(part, est, tz=tz, radius_m=50.0)
        assert_same(counting.visit_profile_of_users(part, places, tz=tz), want)
        assert_same(counting.visit_profile_of_users(part, places, tz=tz, preferred=True),
                    profiles.preferred(want, "preferred_establishment_category"))
    ties = 0
    for part in (data.interactions, data.interactions.iloc[:300], data.interactions.iloc[:0]):
        want = profiles.interaction_profile(part, ads, tz=tz)
        assert_same(counting.interaction_profile_of_users(part, ads, tz=tz), want)
        assert_same(counting.interaction_profile_of_users(part, ads, tz=tz, preferred=True),
                    profiles.preferred(want, "preferred_ad_category"))
        top = want.groupby(["user_id", "period"])["interactions"].transform("max")
        ties += int((want["interactions"] == top).groupby([want["user_id"], want["period"]])
                    .sum().gt(1).sum())
    assert ties > 0  # the tie-break was exercised


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coded_attribution_equals_the_as_of_join(seed: int) -> None:
    """Same flags as the pandas as-of kernel, with equal instants and window edges."""
    from adanalytics.engines.dask.attribution import TOUCH, VISIT, attributed
    from adanalytics.engines.pandas import attribution

    rng = np.random.default_rng(seed)
    n_v, n_t = 3000, 2000
    base = pd.Timestamp("2024-03-01", tz="UTC")
    # instants on a 30-minute grid: many equal instants and gaps of exactly 6 h
    ts_v = base + pd.to_timedelta(rng.integers(0, 200, n_v) * 30, unit="min")
    ts_t = base + pd.to_timedelta(rng.integers(0, 200, n_t) * 30, unit="min")
    users = np.array([f"u{i}" for i in range(40)], dtype=object)
    pairs = pd.DataFrame({"user_id": rng.choice(users, n_v),
                          "establishment_id": rng.integers(0, 6, n_v), "ts": ts_v})
    touches = pd.DataFrame({"user_id": rng.choice(users, n_t),
                            "establishment_id": rng.integers(0, 6, n_t), "ts": ts_t})
    events = pd.concat([
        pairs.rename(columns={"establishment_id": "establishment"}).assign(_kind=np.int8(VISIT)),
        touches.rename(columns={"establishment_id": "establishment"}).assign(_kind=np.int8(TOUCH)),
    ], ignore_index=True).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    visits = events[events["_kind"] == VISIT].rename(columns={"establishment": "establishment_id"})
    for window in (pd.Timedelta(hours=6), pd.Timedelta(0), pd.Timedelta(minutes=45)):
        want = attribution.attributed(visits.reset_index(drop=True), touches, window)
        got = attributed(events, window)
        assert want.any() and not want.all()
        np.testing.assert_array_equal(got, want)


def test_integer_ids_with_nulls_in_parquet_parts(tmp_path: Path) -> None:
    """An integer id column with a null in one Parquet part (float64 there, int64 in the
    others once read by pyarrow) gives the pandas engine's report, rejects and results."""
    data = random_dataset(seed=9, int_ids=True, n_locations=1200, n_interactions=500)
    loc = data["locations"].astype({"user_id": "Int64"})
    loc.loc[[3, 1100], "user_id"] = pd.NA  # first and last part
    data["locations"] = loc
    root = write(data, tmp_path / "ds", "parquetdir")
    with pytest.raises(ValidationError) as want:
        aa.open_dataset(str(root), engine="pandas")
    with pytest.raises(ValidationError) as got:
        aa.open_dataset(str(root), engine="dask")
    assert str(got.value) == str(want.value)
    pds = aa.open_dataset(str(root), engine="pandas", on_invalid="quarantine")
    dds = aa.open_dataset(str(root), engine="dask", on_invalid="quarantine")
    assert pds.tables.locations["user_id"].dtype == np.int64
    assert_same(dds.rejected["locations"], pds.rejected["locations"])
    for name, by in (("visits", "month"), ("attribution", "total"), ("visit_profile", None)):
        assert_same(run(dds, name, by), run(pds, name, by))


def test_profiles_finished_per_group_of_users(monkeypatch: pytest.MonkeyPatch,
                                              pair: tuple[aa.Dataset, aa.Dataset]) -> None:
    """From PER_USER_MIN_ROWS input rows, shares and preferred categories are computed per
    group of users after a shuffle of the partial counts (none on tables persisted by
    user: their partitions are such groups already): the same results."""
    from adanalytics.engines.dask import profiles

    monkeypatch.setattr(profiles, "PER_USER_MIN_ROWS", 0)
    pds, dds = pair
    for name in ("interaction_profile", "preferred_ad_category", "visit_profile",
                 "preferred_establishment_category"):
        frame = getattr(dds, name)()
        assert _shuffles(frame, dds) == (dds.tables.user_parts is None)
        assert_same(aa.to_pandas(frame), run(pds, name, None))


def _shuffles(frame: Any, ds: aa.Dataset) -> bool:
    """Whether computing ``frame`` shuffles (the persisted tables' own keys aside)."""
    held = {k for name in ("locations", "interactions")
            for k in getattr(ds.tables, name).__dask_keys__()}
    return any("shuffle" in str(k) for k in frame.__dask_graph__() if k not in held)


def test_tables_persisted_by_user_need_no_shuffle(pair: tuple[aa.Dataset, aa.Dataset]) -> None:
    """Attribution and recommendations read each user's events in order: a shuffle by
    user, unless the tables were laid out by user at persist. Visits never shuffle."""
    _, dds = pair
    for name in ("attribution", "recommendations"):
        assert _shuffles(getattr(dds, name)(), dds) == (dds.tables.user_parts is None), name
    assert not _shuffles(dds.visits(), dds)


def test_many_rejected_rows_are_written_per_partition(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond COLLECT_REJECTED_MAX rejected rows a table's rejects stay a Dask DataFrame,
    written as a Parquet directory ``<table>.parquet/`` with the same rows."""
    from adanalytics.engines.dask import load

    monkeypatch.setattr(load, "COLLECT_REJECTED_MAX", 0)
    root = _dirty(tmp_path)
    pds = aa.open_dataset(str(root), engine="pandas", on_invalid="quarantine",
                          rejected_path=str(tmp_path / "rej-pandas"))
    dds = aa.open_dataset(str(root), engine="dask", on_invalid="quarantine", blocksize=8_000,
                          rejected_path=str(tmp_path / "rej-dask"))
    assert (tmp_path / "rej-dask" / "locations.parquet").is_dir()
    for t in ("interactions", "locations"):
        assert type(dds.rejected[t]).__module__.startswith("dask")
        on_disk = pd.read_parquet(tmp_path / "rej-dask" / f"{t}.parquet")
        assert_same(on_disk.reset_index(drop=True), pds.rejected[t])
        assert_same(aa.to_pandas(dds.rejected[t]).reset_index(drop=True), pds.rejected[t])
    assert_same(dds.rejected["ads"], pds.rejected["ads"])  # small tables: pandas as ever


def test_persist_partitions_are_large_and_a_multiple_of_the_threads() -> None:
    from adanalytics.engines.dask.plan import PERSIST_PARTITION_ROWS, persist_partitions

    assert persist_partitions(10_000_000, 2, 27) == 4
    assert persist_partitions(100_000_000, 2, 270) == 40
    assert persist_partitions(100_000_000, 3, 270) == 42
    assert persist_partitions(1_000, 2, 1) == 2  # one per thread at least
    assert persist_partitions(PERSIST_PARTITION_ROWS * 3, 3, 9) == 3
    assert persist_partitions(None, 2, 27) == 27  # rows unknown: as read
