"""Real-time path against a real redis-server (no Spark): the source's offsets and reads,
data-loss detection, the producer's pacing, the sink's idempotent writes."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from adanalytics.stream.messages import encode_position
from adanalytics.stream.redis_server import RedisServer
from adanalytics.stream.sink import BatchWriter, SinkConfig, read_parquet_dir
from adanalytics.stream.source import (
    DataLossError,
    Options,
    RedisStreamReader,
    counts,
    last_id,
    loss_message,
)
from tests.test_stream_cases import T0_MS

pytest.importorskip("pyspark")


@pytest.fixture(scope="module")
def server():  # type: ignore[no-untyped-def]
    with RedisServer() as srv:
        yield srv


@pytest.fixture
def client(server):  # type: ignore[no-untyped-def]
    c = server.client()
    c.flushdb()
    yield c
    c.close()


def _fill(client, n: int, stream: str = "positions") -> list[str]:  # type: ignore[no-untyped-def]
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.xadd(stream, encode_position(f"u{i % 7}", -8.05 + i * 1e-5, -34.9, T0_MS + i))
    return pipe.execute()


def _reader(server, **opts: str) -> RedisStreamReader:  # type: ignore[no-untyped-def]
    return RedisStreamReader(Options.parse({"url": server.url, **opts}))


def _read_all(reader: RedisStreamReader, start: dict, end: dict) -> pd.DataFrame:
    import pyarrow as pa

    batches = [b for p in reader.partitions(start, end) for b in reader.read(p)]
    return pa.Table.from_batches(batches).to_pandas() if batches else pd.DataFrame()


def test_redis_server_runs_on_a_free_port() -> None:
    with RedisServer() as a, RedisServer() as b:
        assert a.port != b.port
        assert a.client().ping() and b.client().ping()
    assert a.proc is None


def test_offsets_are_entry_ids_and_ranges_replay_identically(server, client) -> None:  # type: ignore[no-untyped-def]
    from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadMaxRows

    ids = _fill(client, 250)
    r = _reader(server, maxEntriesPerBatch="100", entriesPerPartition="30")
    start = r.initialOffset()
    assert start == {"id": "0-0", "n": 0}
    end = r.latestOffset(start, ReadMaxRows(100))
    assert end == {"id": ids[99], "n": 100}  # the cap
    parts = r.partitions(start, end)
    assert len(parts) == 4  # 30 + 30 + 30 + 10
    first = _read_all(r, start, end)
    assert first["entry_id"].tolist() == ids[:100]
    # the same (start, end] read again (a replay, by a fresh reader) gives the same rows
    again = _read_all(_reader(server, entriesPerPartition="7"), start, end)
    pd.testing.assert_frame_equal(first, again)
    # without a cap: everything after start
    rest = r.latestOffset(end, ReadAllAvailable())
    assert rest == {"id": ids[-1], "n": 250}
    assert _read_all(r, end, rest)["entry_id"].tolist() == ids[100:]
    # nothing new: the same offset back, no partitions
    assert r.latestOffset(rest, ReadMaxRows(100)) == rest
    assert r.partitions(rest, rest) == []


def test_starting_ids_and_available_now_target(server, client) -> None:  # type: ignore[no-untyped-def]
    from pyspark.sql.streaming.datasource import ReadMaxRows

    ids = _fill(client, 20)
    assert _reader(server, startingId="latest").initialOffset() == {"id": ids[-1], "n": 20}
    assert _reader(server, startingId=ids[4]).initialOffset() == {"id": ids[4], "n": 5}
    r = _reader(server)
    r.prepareForTriggerAvailableNow()
    _fill(client, 5)  # arrives after the target: not read by this AvailableNow run
    assert r.latestOffset({"id": "0-0", "n": 0}, ReadMaxRows(1000)) == {"id": ids[-1], "n": 20}


def test_positions_schema_flags_malformed_entries(server, client) -> None:  # type: ignore[no-untyped-def]
    client.xadd("positions", encode_position("u1", -8.05, -34.9, T0_MS))
    client.xadd("positions", {"user_id": "u2", "lat": "-8.05", "lon": "-34.9"})
    client.xadd("positions", {"user_id": "u3", "lat": "-8.05", "lon": "-34.9", "ts": "soon"})
    r = _reader(server)
    df = _read_all(r, r.initialOffset(), {"id": last_id(client, "positions")})
    assert df["rule"].tolist() == [None, "missing_field", "bad_ts"]
    assert df["user_id"].tolist()[0] == "u1" and df["ts_ms"].iloc[0] == T0_MS
    raw = _read_all(_reader(server, format="raw"), {"id": "0-0"}, {"id": last_id(client, "positions")})
    assert dict(raw["fields"].iloc[2])["ts"] == "soon"


def test_trimmed_entries_fail_loudly_unless_told(server, client) -> None:  # type: ignore[no-untyped-def]
    from pyspark.sql.streaming.datasource import ReadMaxRows

    ids = _fill(client, 50)
    r = _reader(server, entriesPerPartition="20")
    start = r.initialOffset()
    end = r.latestOffset(start, ReadMaxRows(1000))
    assert end == {"id": ids[-1], "n": 50}
    assert loss_message("positions", start, counts(client, "positions")) is None
    client.xtrim("positions", maxlen=10, approximate=False)
    problem = loss_message("positions", start, counts(client, "positions"))
    assert problem and "40 entries" in problem and "trimmed" in problem
    with pytest.raises(DataLossError, match="failOnDataLoss"):
        _read_all(r, start, end)  # a replay of a batch whose entries are gone
    with pytest.raises(DataLossError, match="failOnDataLoss"):
        _reader(server).latestOffset(start, ReadMaxRows(1000))
    # failOnDataLoss=false: go on with what is left
    lenient = _reader(server, failOnDataLoss="false")
    assert lenient.latestOffset(start, ReadMaxRows(1000)) == {"id": ids[-1], "n": 50}
    assert len(_read_all(lenient, start, end)) == 10
    # a query already past the trimmed part loses nothing; a new one starts after it
    assert loss_message("positions", {"id": ids[45], "n": 46}, counts(client, "positions")) is None
    assert _reader(server).initialOffset() == {"id": "0-0", "n": 40}
    assert _reader(server, startingId=ids[44]).initialOffset() == {"id": ids[44], "n": 45}
    # a stream deleted and made again is not mistaken for the old one
    client.delete("positions")
    _fill(client, 3)
    assert "re-created" in loss_message("positions", end, counts(client, "positions"))


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="maxEntriesPerBatch"):
        Options.parse({"maxentriesperbatch": "-3"})
    with pytest.raises(ValueError, match="unknown redis-stream option"):
        Options.parse({"strem": "x"})
    with pytest.raises(ValueError, match="MS-SEQ"):
        Options.parse({"startingId": "yesterday"})
    assert Options.parse({"MAXENTRIESPERBATCH": "7"}).max_entries == 7


def test_producer_paces_and_keeps_order(client) -> None:  # type: ignore[no-untyped-def]
    from adanalytics.stream.producer import positions_frame, produce

    locs = pd.DataFrame({"user_id": ["b", "a", "a", "c"], "lat": [1.0, 2.0, 1.5, 0.5],
                         "lon": [0.0, 0.0, 0.0, 0.0],
                         "ts": pd.to_datetime([T0_MS + 5, T0_MS, T0_MS + 5, T0_MS + 5.9], unit="ms", utc=True)})
    pos = positions_frame(locs)
    assert pos["user_id"].tolist() == ["a", "c", "b", "a"]  # ts (floored to ms), lat, lon
    t = time.monotonic()
    rep = produce(pd.concat([pos] * 50, ignore_index=True), client, "paced", rate=1000, chunk=20)
    assert rep.sent == 200 and time.monotonic() - t >= 0.19
    entries = client.xrange("paced", count=4)
    assert [e[1]["user_id"] for e in entries] == ["a", "c", "b", "a"]
    assert entries[1][1]["ts"] == str(T0_MS + 5)
    fast = produce(pos, client, "fast", speedup=1e6)
    assert fast.sent == 4 and client.xlen("fast") == 4


def _rows(kind: str, **cols: list) -> list[dict]:  # type: ignore[type-arg]
    """Output rows of the stateful operator (as dicts)."""
    from adanalytics.stream.kernel import OUTPUT_COLUMNS

    n = len(next(iter(cols.values())))
    return [{c: (kind if c == "kind" else cols.get(c, [None] * n)[i]) for c in OUTPUT_COLUMNS}
            for i in range(n)]


def _frame(*rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([r for part in rows for r in part])


def test_sink_writes_each_batch_once(server, client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = SinkConfig(out=tmp_path, redis_url=server.url, source_stream="positions",
                     suggestions_stream="suggestions", dead_stream="positions:dead",
                     metrics_key="suggestions:metrics", sink_id="t1")
    ts = pd.Timestamp(T0_MS, unit="ms", tz="UTC")
    batch0 = _frame(
        _rows("suggestion", user_id=["u1", "u2"], establishment_id=["e1", "e1"], ad_id=["a1", "a1"],
              ts=[ts, ts], distance_m=[400.0, 300.0], entry_id=["7-2048", "7-1024"],
              source_id=["7-2", "7-1"]),
        _rows("dead", entry_id=["7-3"], source_id=["7-3"], rule=["bad_ts"], reason=["bad ts 'x'"],
              original=['{"user_id": "u9", "ts": "x"}']),
        _rows("stats", events=[5], late=[1], entry_id=["7-2"]),
    )
    w = BatchWriter(cfg)
    first = w.write(batch0, 0)
    assert (first.events, first.suggestions, first.dead, first.late) == (5, 2, 1, 1)
    assert first.redis_written and first.last_source_id == "7-3"
    # the same batch again (a replay after a crash): Parquet overwritten, Redis untouched
    again = w.write(batch0, 0)
    assert not again.redis_written
    assert client.xlen("suggestions") == 2 and client.xlen("positions:dead") == 1
    sugg = read_parquet_dir(tmp_path / "suggestions")
    assert sugg["suggestion_id"].tolist() == ["7-1024", "7-2048"]  # stream order
    assert list(sugg.columns[:5]) == ["user_id", "establishment_id", "ad_id", "ts", "distance_m"]
    assert client.xrange("suggestions")[0] == ("7-1024", {
        "user_id": "u2", "establishment_id": "e1", "ad_id": "a1", "ts": str(T0_MS),
        "distance_m": "300.0", "source_id": "7-1"})
    dead = client.xrange("positions:dead")[0][1]
    assert dead["rule"] == "bad_ts" and dead["user_id"] == "u9" and dead["source_id"] == "7-3"
    m = client.hgetall("suggestions:metrics")
    assert (m["batches"], m["events"], m["late"], m["dead"], m["suggestions"]) == ("1", "5", "1", "1", "2")
    # a fresh sink (new checkpoint) over the same positions cannot duplicate entries
    other = BatchWriter(SinkConfig(**{**cfg.__dict__, "sink_id": "t2", "out": tmp_path / "o2"}))
    assert other.write(batch0, 0).redis_written
    assert client.xlen("suggestions") == 2
    # the next batch appends
    batch1 = _frame(_rows("suggestion", user_id=["u3"], establishment_id=["e1"], ad_id=["a1"],
                          ts=[ts], distance_m=[10.0], entry_id=["8-0"], source_id=["8-0"]))
    w.write(batch1, 1)
    assert client.xlen("suggestions") == 3 and len(read_parquet_dir(tmp_path / "suggestions")) == 3
    w.close()
    other.close()
