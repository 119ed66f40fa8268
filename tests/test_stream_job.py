"""The streaming job end to end: real redis-server, real Spark (Structured Streaming with
transformWithStateInPandas), small micro-batches so state crosses batch boundaries.

The stream must emit exactly the rows of the batch rule (``Dataset.recommendations()``)
for the same positions: on the hand-worked scenario of ``test_stream_cases`` and on a
generated city. Malformed positions go to the dead-letter stream with their rule; the
late one is counted.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import adanalytics as aa
from adanalytics.stream.job import JobConfig, StreamJob
from adanalytics.stream.messages import EntryId, encode_position
from adanalytics.stream.redis_server import RedisServer
from adanalytics.stream.sink import read_parquet_dir
from tests.test_stream_cases import (
    assert_same_rows,
    expected_rows,
    malformed,
    scenario,
    scenario_tables,
)

pytest.importorskip("pyspark")
pytestmark = pytest.mark.timeout(1500)


@pytest.fixture(scope="module")
def server():  # type: ignore[no-untyped-def]
    with RedisServer() as srv:
        yield srv


def _send(client, stream: str, rows: list[dict]) -> list[str]:  # type: ignore[no-untyped-def]
    pipe = client.pipeline(transaction=False)
    for r in rows:
        pipe.xadd(stream, encode_position(r["user_id"], r["lat"], r["lon"], r["ts_ms"]))
    return pipe.execute()


def _run(server, tmp: Path, stream: str, data, **kw) -> tuple:  # type: ignore[no-untyped-def]
    cfg = JobConfig(data=data, redis_url=server.url, stream=stream,
                    suggestions_stream=f"{stream}:suggestions", out=tmp / "out",
                    checkpoint=tmp / "ckpt", trigger="0", **kw)
    summary = StreamJob(cfg).run(stop_when_idle=3, timeout=900)
    return cfg, summary


def _redis_suggestions(client, stream: str) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    entries = client.xrange(stream)
    ids = [e[0] for e in entries]
    assert len(ids) == len(set(ids))
    df = pd.DataFrame([e[1] for e in entries])
    if df.empty:
        return df
    df["ts"] = pd.to_datetime(df["ts"].astype("int64"), unit="ms", utc=True)
    df["distance_m"] = df["distance_m"].astype(float)
    df["suggestion_id"] = ids
    return df


@pytest.mark.parametrize("key", ["bucket", "user"])
def test_hand_worked_stream_equals_batch_with_dead_letters_and_late(server, tmp_path, key: str) -> None:  # type: ignore[no-untyped-def]
    client = server.client()
    stream = f"pos-{key}"
    pos, late = scenario()
    bad = malformed()
    # malformed entries interleaved with the good ones, the late position last
    sent = []
    for i, row in enumerate(pos):
        sent += _send(client, stream, [row])
        if i % 4 == 1 and bad:
            fields, _ = bad.pop(0)
            sent.append(client.xadd(stream, fields))
    for fields, _ in bad:
        sent.append(client.xadd(stream, fields))
    _send(client, stream, late)

    # two state partitions (the default is one): groups and state spread over both
    cfg, summary = _run(server, tmp_path, stream, scenario_tables(), key=key, max_batch=7,
                        buckets=3, partitions=2)
    assert summary.batches >= 5  # the state really crossed micro-batches
    assert (summary.events, summary.dead, summary.late) == (len(pos) + 1, len(malformed()), 1)

    got = read_parquet_dir(cfg.out / "suggestions")
    assert_same_rows(got, expected_rows())
    # ... which is the batch rule on the same (non-late) positions
    locs = pd.DataFrame(pos)
    locs["ts"] = pd.to_datetime(locs.pop("ts_ms"), unit="ms", utc=True)
    tables = {**scenario_tables(), "locations": locs[["user_id", "lat", "lon", "ts"]]}
    batch = aa.open_dataset(tables, engine="pandas").recommendations()
    assert_same_rows(got, batch)
    assert got["suggestion_id"].is_unique

    red = _redis_suggestions(client, cfg.suggestions_stream)
    assert_same_rows(red, got)
    assert sorted(red["suggestion_id"], key=EntryId.parse) == red["suggestion_id"].tolist()

    dead = client.xrange(cfg.dead_stream)
    assert [d[1]["rule"] for d in dead] == [r for _, r in malformed()]
    assert all(d[1]["reason"] and d[1]["source_stream"] == stream for d in dead)
    assert dead[1][1]["lat"] == "north" and dead[1][1]["source_id"] == dead[1][0]
    metrics = client.hgetall(cfg.metrics_key)
    assert (int(metrics["late"]), int(metrics["dead"]), int(metrics["suggestions"])) == (1, 6, len(got))
    client.close()


def test_generated_city_stream_equals_batch(server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from adanalytics.stream.producer import positions_frame, produce

    synth = pytest.importorskip("adanalytics.synth")
    data = tmp_path / "city"
    synth.generate(data, scale=6000, seed=11)
    ds = aa.open_dataset(str(data), engine="pandas")
    expected = ds.recommendations()
    assert len(expected) > 50
    client = server.client()
    rep = produce(positions_frame(ds.tables.locations), client, "city")
    assert rep.sent == len(ds.tables.locations)
    cfg, summary = _run(server, tmp_path, "city", str(data), max_batch=2500)
    assert summary.events == rep.sent and summary.dead == 0 and summary.late == 0
    got = read_parquet_dir(cfg.out / "suggestions")
    # exactly the batch rows, ids in the dataset's own types
    assert_same_rows(got, expected)
    assert got["establishment_id"].map(type).eq(type(expected["establishment_id"].iloc[0])).all()
    assert len(_redis_suggestions(client, cfg.suggestions_stream)) == len(expected)
    client.close()
