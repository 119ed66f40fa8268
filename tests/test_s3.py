"""Datasets on S3, read through fsspec/s3fs from a real S3-compatible server.

A moto server runs in a thread on a free local port (a real HTTP endpoint, not a mock of
the client); the dataset is uploaded with boto3 as Parquet files, a Parquet directory, a
CSV and a CSV.gz, and every analysis must equal the same dataset read locally.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import adanalytics as aa
from adanalytics.dataset import BY_ANALYSES
from adanalytics.schema import REJECT_RULE_COLUMN
from tests.builders import LAT0, LON0, dataset, minutes
from tests.helpers import assert_equal_data, collect, offset

pytest.importorskip("moto.server", reason="moto[server] is a test dependency")

pytestmark = [
    # botocore / moto still call datetime.utcnow() and friends on some versions
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

BUCKET = "adanalytics-test"
T0 = "2024-05-10T12:00:00Z"


def _data(extra_interactions: list[tuple] | None = None) -> dict[str, dict[str, list[Any]]]:
    e2 = offset(LAT0, LON0, north_m=1000.0)
    return dataset(
        campaigns=[("c1", "One", "2024-01-01", "2024-12-31"), ("c2", "Two", "2024-05-01", "2024-05-09")],
        establishments=[("e1", "Cafe", "cafe", LAT0, LON0), ("e2", "Bar", "bar", *e2)],
        ads=[("a1", "c1", "e1", "food"), ("a2", "c2", "e2", "drinks"), ("a3", "c1", "e2", "drinks")],
        interactions=[("u1", "a1", "view", T0), ("u1", "a1", "click", minutes(T0, 1)),
                      ("u2", "a2", "view", minutes(T0, -60)), ("u2", "a3", "view", minutes(T0, 2)),
                      ("u2", "a3", "click", minutes(T0, 3))] + (extra_interactions or []),
        locations=[("u1", *offset(LAT0, LON0, north_m=-600.0), minutes(T0, 10)),
                   ("u1", *offset(LAT0, LON0, north_m=10.0), minutes(T0, 15)),
                   ("u2", *offset(*e2, north_m=-450.0), minutes(T0, 20)),
                   ("u2", *offset(*e2, north_m=20.0), minutes(T0, 30))],
    )


def _write_mixed(data: dict[str, dict[str, list[Any]]], root: Path) -> Path:
    """campaigns.csv, ads.parquet, establishments.csv.gz, interactions/ (two Parquet
    parts), locations.parquet."""
    root.mkdir(parents=True, exist_ok=True)
    frames = {t: pd.DataFrame(c) for t, c in data.items()}
    frames["campaigns"].to_csv(root / "campaigns.csv", index=False)
    frames["ads"].to_parquet(root / "ads.parquet", index=False)
    frames["establishments"].to_csv(root / "establishments.csv.gz", index=False,
                                    compression="gzip")
    (root / "interactions").mkdir()
    inter = frames["interactions"]
    inter.iloc[:2].to_parquet(root / "interactions" / "part-0.parquet", index=False)
    inter.iloc[2:].to_parquet(root / "interactions" / "part-1.parquet", index=False)
    frames["locations"].to_parquet(root / "locations.parquet", index=False)
    return root


@pytest.fixture(scope="module")
def aws_env() -> Iterator[None]:
    """Dummy credentials; no endpoint from the caller's environment."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_SESSION_TOKEN", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
            mp.delenv(var, raising=False)
        yield


@pytest.fixture(scope="module")
def s3_endpoint(aws_env: None) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3_dataset(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The mixed-form dataset uploaded to s3://BUCKET/ds (and a bad one to bad/)."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    local = _write_mixed(_data(), tmp_path_factory.mktemp("s3src") / "ds")
    bad = _write_mixed(_data([("u9", "a404", "view", T0), ("u9", "a1", "like", T0)]),
                       tmp_path_factory.mktemp("s3bad") / "bad")
    for root, prefix in ((local, "ds"), (bad, "bad")):
        for f in sorted(root.rglob("*")):
            if f.is_file():
                client.upload_file(str(f), BUCKET, f"{prefix}/{f.relative_to(root).as_posix()}")
    # a dataset without its locations table
    for f in sorted(local.glob("*")):
        if f.is_file() and not f.name.startswith("locations"):
            client.upload_file(str(f), BUCKET, f"incomplete/{f.name}")
    for f in sorted((local / "interactions").glob("*")):
        client.upload_file(str(f), BUCKET, f"incomplete/interactions/{f.name}")
    return {"local": local, "client": client}


@pytest.fixture(scope="module")
def local_results(engine: str, s3_dataset: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Every analysis on the local copy of the dataset, on the engine under test."""
    return _results(aa.open_dataset(s3_dataset["local"], engine=engine))


def _results(ds: aa.Dataset) -> dict[str, pd.DataFrame]:
    """Every analysis; both groupings for those that take ``by``."""
    return {f"{a}/{by}": collect(ds.run(a, by=by)) for a in aa.ANALYSES
            for by in (("total", "month") if a in BY_ANALYSES else ("total",))}


def _assert_same(got: dict[str, pd.DataFrame], want: dict[str, pd.DataFrame]) -> None:
    for key, w in want.items():
        try:
            assert_equal_data(got[key], {c: w[c].tolist() for c in w.columns})
        except AssertionError as exc:
            raise AssertionError(f"{key}: {exc}") from None


def _clear_fs_cache() -> None:
    """Forget cached s3fs instances (and their directory listings) between tests."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


def test_s3_with_storage_options_equals_local(engine: str, s3_endpoint: str,
                                              s3_dataset: dict[str, Any],
                                              local_results: dict[str, pd.DataFrame]) -> None:
    _clear_fs_cache()
    local = aa.open_dataset(s3_dataset["local"], engine=engine)
    want = local_results
    assert len(want["recommendations/total"]) == 2  # the data exercise every analysis
    assert want["attribution/total"]["attributed_visits"].tolist() == [1, 1]
    ds = aa.open_dataset(f"s3://{BUCKET}/ds", engine=engine,
                         storage_options={"client_kwargs": {"endpoint_url": s3_endpoint}})
    assert ds.validation.ok
    assert ds.validation.rows == local.validation.rows
    _assert_same(_results(ds), want)


def test_s3_endpoint_as_top_level_option(engine: str, s3_endpoint: str,
                                         local_results: dict[str, pd.DataFrame]) -> None:
    _clear_fs_cache()
    ds = aa.open_dataset(f"s3://{BUCKET}/ds/", engine=engine,
                         storage_options={"endpoint_url": s3_endpoint})
    _assert_same(_results(ds), local_results)


def test_s3_endpoint_from_environment(engine: str, s3_endpoint: str,
                                      local_results: dict[str, pd.DataFrame],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_fs_cache()
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    ds = aa.open_dataset(f"s3://{BUCKET}/ds", engine=engine)
    _assert_same(_results(ds), local_results)


def test_s3_quarantine_writes_rejected_rows_to_s3(engine: str, s3_endpoint: str,
                                                  local_results: dict[str, pd.DataFrame]) -> None:
    _clear_fs_cache()
    opts = {"client_kwargs": {"endpoint_url": s3_endpoint}}
    with pytest.raises(aa.ValidationError, match="ad_id_exists"):
        aa.open_dataset(f"s3://{BUCKET}/bad", engine=engine, storage_options=opts)
    rejected = f"s3://{BUCKET}/rejected-{engine}"
    ds = aa.open_dataset(f"s3://{BUCKET}/bad", engine=engine, on_invalid="quarantine",
                         rejected_path=rejected, storage_options=opts)
    assert ds.validation.rejected == {"interactions": 2}
    out = pd.read_parquet(f"{rejected}/interactions.parquet", storage_options=opts)
    assert sorted(out[REJECT_RULE_COLUMN]) == ["action_valid", "ad_id_exists"]
    # the valid rows answer as the clean dataset does
    got = {f"{a}/total": collect(ds.run(a)) for a in ("ctr", "category_hourly", "attribution")}
    _assert_same(got, {k: local_results[k] for k in got})


@pytest.mark.usefixtures("s3_dataset")
def test_s3_missing_table_and_missing_prefix(engine: str, s3_endpoint: str) -> None:
    _clear_fs_cache()
    opts = {"client_kwargs": {"endpoint_url": s3_endpoint}}
    with pytest.raises(aa.DataContractError, match=re.escape("missing table(s): locations")):
        aa.open_dataset(f"s3://{BUCKET}/incomplete", engine=engine, storage_options=opts)
    with pytest.raises(aa.DataContractError, match="nothing-here"):
        aa.open_dataset(f"s3://{BUCKET}/nothing-here", engine=engine, storage_options=opts)
