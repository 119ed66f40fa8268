"""``redis-stream``: a Spark Python data source reading a Redis stream, offsets = entry ids.

>>> from adanalytics.stream.source import register
>>> register(spark)                                                  # doctest: +SKIP
>>> df = (spark.readStream.format("redis-stream")                    # doctest: +SKIP
...       .option("url", "redis://localhost:6379/0").option("stream", "positions").load())

Like Spark's Kafka source, no consumer group is involved: Spark's checkpoint owns the
offsets. An offset is ``{"id": "MS-SEQ"}``, the id of the last entry of a micro-batch;
a batch is the entries in ``(start, end]``, read with plain ``XRANGE key (start end``, so
the same range always yields the same rows (a replayed batch re-reads exactly its
entries). The driver plans each batch with one server-side scan (a Lua script over
``XRANGE ... COUNT``) that caps the batch at ``maxEntriesPerBatch`` entries and cuts it
into partitions of at most ``entriesPerPartition`` entries, so a large backlog is read by
several tasks at once.

Data loss. If entries the query still needs were trimmed away (``XTRIM``/``MAXLEN``), the
query fails with a message saying how many, unless ``failOnDataLoss`` is ``false`` (then
it logs a warning and goes on from the oldest entry left). Offsets carry the number of
entries ever added up to their id, so with Redis' own counters (``XINFO STREAM``:
``entries-added`` minus ``length`` were removed, oldest first) a gap is detected before a
batch is planned, and a replayed batch that finds fewer entries than planned fails too.

Options
-------
url
    ``redis://host:port/db`` (default ``redis://localhost:6379/0``).
stream
    The stream key (default ``positions``).
startingId
    Where a new query starts: ``earliest`` (default: every entry still in the stream),
    ``latest`` (only entries added after the start) or an entry id (exclusive).
maxEntriesPerBatch
    Cap of a micro-batch (default 100000; ``0``: no cap).
entriesPerPartition
    Entries per read task (default 20000).
failOnDataLoss
    ``true`` (default) or ``false``.
format
    ``positions`` (default: validated position columns, see
    :data:`adanalytics.stream.messages.COLUMNS`) or ``raw`` (entry id and a map of fields).

Also a batch source: ``spark.read.format("redis-stream")`` reads ``(startingId,
endingId]`` (default: the whole stream).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyspark.sql.datasource import (
    DataSource,
    DataSourceReader,
    DataSourceStreamReader,
    InputPartition,
)
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    ReadMaxRows,
    SupportsTriggerAvailableNow,
)

from adanalytics.errors import AdAnalyticsError
from adanalytics.stream.messages import ZERO_ID, EntryId, id_lt, parse_chunk

if TYPE_CHECKING:
    import pyarrow as pa
    import redis

log = logging.getLogger("adanalytics")

NAME = "redis-stream"
POSITIONS_DDL = (
    "entry_id string, entry_ms long, entry_seq long, user_id string, lat double, "
    "lon double, ts_ms long, rule string, reason string, original string"
)
RAW_DDL = "entry_id string, entry_ms long, entry_seq long, fields map<string, string>"
DEFAULTS: dict[str, str] = {
    "url": "redis://localhost:6379/0",
    "stream": "positions",
    "startingId": "earliest",
    "endingId": "latest",
    "maxEntriesPerBatch": "100000",
    "entriesPerPartition": "20000",
    "failOnDataLoss": "true",
    "format": "positions",
    "readCount": "5000",
}

#: Server-side planning scan: count (up to a cap) the entries after an exclusive start,
#: up to an inclusive stop, in chunks of ``step``; return the count and each chunk's last
#: id (the partition boundaries). Nothing but ids crosses the network.
_PLAN_LUA = """
local key, start, cap, step, stop = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local count = 0
local bounds = {}
local cursor = '(' .. start
while true do
  local want = step
  if cap > 0 and cap - count < want then want = cap - count end
  if want <= 0 then break end
  local chunk = redis.call('XRANGE', key, cursor, stop, 'COUNT', want)
  local n = #chunk
  if n == 0 then break end
  count = count + n
  local last = chunk[n][1]
  bounds[#bounds + 1] = last
  cursor = '(' .. last
  if n < want then break end
end
return {count, bounds}
"""


#: One chunk of a read, encoded server-side as a single JSON string: one bulk reply
#: instead of thousands of nested ones (parsing those dominated a read in redis-py).
_READ_LUA = "return cjson.encode(redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[2], 'COUNT', tonumber(ARGV[3])))"


class DataLossError(AdAnalyticsError):
    """Entries the query still needs were trimmed from the stream."""


@dataclass(frozen=True)
class Options:
    """Parsed source options."""

    url: str
    stream: str
    starting_id: str
    ending_id: str
    max_entries: int
    per_partition: int
    fail_on_data_loss: bool
    format: str
    read_count: int

    @classmethod
    def parse(cls, options: dict[str, str]) -> Options:
        # Spark hands options over with lower-cased names
        names = {k.lower(): k for k in DEFAULTS}
        unknown = sorted(k for k in options if k.lower() not in names and k.lower() != "path")
        if unknown:
            msg = (f"unknown redis-stream option(s) {', '.join(unknown)}; known: "
                   f"{', '.join(DEFAULTS)}")
            raise ValueError(msg)
        o = {**DEFAULTS, **{names[k.lower()]: str(v) for k, v in options.items()
                            if k.lower() in names}}

        def positive(name: str, allow_zero: bool = False) -> int:
            try:
                v = int(o[name])
            except ValueError:
                v = -1
            if v < 0 or (v == 0 and not allow_zero):
                msg = f"redis-stream option {name} must be a positive integer, got {o[name]!r}"
                raise ValueError(msg)
            return v

        fmt = o["format"].lower()
        if fmt not in ("positions", "raw"):
            msg = f"redis-stream option format must be 'positions' or 'raw', got {o['format']!r}"
            raise ValueError(msg)
        flag = o["failOnDataLoss"].lower()
        if flag not in ("true", "false"):
            msg = f"redis-stream option failOnDataLoss must be true or false, got {o['failOnDataLoss']!r}"
            raise ValueError(msg)
        for name in ("startingId", "endingId"):
            if o[name] not in ("earliest", "latest"):
                EntryId.parse(o[name])  # raises naming the bad id
        return cls(url=o["url"], stream=o["stream"], starting_id=o["startingId"],
                   ending_id=o["endingId"], max_entries=positive("maxEntriesPerBatch", True),
                   per_partition=positive("entriesPerPartition"),
                   fail_on_data_loss=flag == "true", format=fmt,
                   read_count=positive("readCount"))

    def client(self) -> redis.Redis:
        """A redis-py client (bytes responses: fields are decoded and checked here)."""
        import redis

        return redis.Redis.from_url(self.url, decode_responses=False, socket_timeout=60,
                                    socket_connect_timeout=10, health_check_interval=30)


# --- stream facts -------------------------------------------------------------------
def last_id(client: redis.Redis, stream: str) -> str:
    """Id of the newest entry (``0-0`` when the stream is empty or absent)."""
    newest = client.xrevrange(stream, "+", "-", count=1)
    return str(EntryId.parse(newest[0][0])) if newest else ZERO_ID


@dataclass(frozen=True)
class Counts:
    """Entry counters of a stream (Redis >= 7): ``added`` ever, ``length`` now; so
    ``gone = added - length`` entries were trimmed (or deleted)."""

    added: int
    length: int

    @property
    def gone(self) -> int:
        return self.added - self.length


def counts(client: redis.Redis, stream: str) -> Counts | None:
    """The stream's counters; ``None`` when it does not exist (or Redis < 7)."""
    import redis

    try:
        info = client.xinfo_stream(stream)
    except redis.ResponseError:  # no such key
        return None
    info = {(k.decode() if isinstance(k, bytes) else k): v for k, v in info.items()}
    if "entries-added" not in info:
        return None
    return Counts(added=int(info["entries-added"]), length=int(info["length"]))


def count_upto(client: redis.Redis, stream: str, stop: str, step: int = 20_000) -> int:
    """Entries now in the stream with an id <= ``stop``."""
    n, _ = plan(client, stream, ZERO_ID, stop, 0, step)
    return n


def plan(client: redis.Redis, stream: str, start: str, stop: str, cap: int,
         step: int) -> tuple[int, list[str]]:
    """Entries in ``(start, stop]`` (at most ``cap``; 0 = all) and the last id of each run
    of ``step`` entries (so ``bounds[-1]`` ends the range)."""
    count, bounds = client.eval(_PLAN_LUA, 1, stream, start, str(cap), str(step), stop)
    return int(count), [str(EntryId.parse(b)) for b in bounds]


def loss_message(stream: str, offset: dict[str, Any], c: Counts | None) -> str | None:
    """Why entries after ``offset`` are gone, or ``None`` when nothing it needs is.

    An offset carries ``n``, the number of entries ever added up to its id. Trimming
    removes the oldest entries first, so once more than ``n`` entries are gone, some entry
    after the offset was never read.
    """
    n = offset.get("n")
    if n is None or c is None:
        return None
    if c.added < n:
        return (f"stream {stream!r} holds fewer entries ({c.added}) than the checkpoint had "
                f"read ({n}): it was deleted and re-created")
    if c.gone > n:
        return (f"{c.gone - n} entries of stream {stream!r} after {offset['id']} were trimmed "
                f"before the query read them")
    return None


# --- partitions and reading ---------------------------------------------------------
@dataclass
class RangePartition(InputPartition):
    """Entries ``(start, end]`` of the stream; ``expected`` of them (``-1``: unknown)."""

    start: str
    end: str
    expected: int = -1


def ranges(start: str, bounds: Sequence[str], sizes: Sequence[int] | None = None) -> list[RangePartition]:
    """Consecutive partitions ``(start, b0], (b0, b1], ...``."""
    out, lo = [], start
    for i, b in enumerate(bounds):
        out.append(RangePartition(lo, b, sizes[i] if sizes is not None else -1))
        lo = b
    return out


def read_range(opts: Options, part: RangePartition) -> Iterator[pa.RecordBatch]:
    """The entries of a partition as Arrow record batches of the source schema.

    With ``failOnDataLoss``, a partition that finds fewer entries than were planned (some
    were trimmed since) fails the query.
    """
    import pyarrow as pa

    client = opts.client()
    try:
        cursor, seen = part.start, 0
        while id_lt(cursor, part.end):
            chunk = _xrange(client, opts, f"({cursor}", part.end)
            if chunk:
                cursor = str(EntryId.parse(chunk[-1][0]))
                seen += len(chunk)
                yield _to_batch(opts, chunk, pa)
            if len(chunk) < opts.read_count:
                break
        if opts.fail_on_data_loss and 0 <= seen < part.expected:
            msg = (f"{part.expected - seen} entries of stream {opts.stream!r} in "
                   f"({part.start}, {part.end}] were trimmed before this batch read them "
                   f"(set failOnDataLoss=false to skip them)")
            raise DataLossError(msg)
    finally:
        client.close()


def _xrange(client: redis.Redis, opts: Options, lo: str, hi: str) -> list[Any]:
    """Up to ``read_count`` entries ``[id, [k1, v1, ...]]`` (text) of ``[lo, hi]``."""
    import json

    raw = client.eval(_READ_LUA, 1, opts.stream, lo, hi, str(opts.read_count))
    try:
        data = json.loads(raw)
    except UnicodeDecodeError:  # a field that is not UTF-8: the plain (slower) reply
        return [[i.decode(), [x for kv in f.items() for x in kv]]
                for i, f in client.xrange(opts.stream, lo, hi, count=opts.read_count)]
    return data if isinstance(data, list) else []  # cjson writes an empty table as {}


def _text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _to_batch(opts: Options, chunk: list[Any], pa: Any) -> pa.RecordBatch:
    if opts.format == "raw":
        ids = [EntryId.parse(i) for i, _ in chunk]
        fields = [[(_text(f[j]), _text(f[j + 1])) for j in range(0, len(f) - 1, 2)]
                  for _, f in chunk]
        return pa.RecordBatch.from_arrays(
            [pa.array([str(i) for i in ids], pa.string()),
             pa.array([i.ms for i in ids], pa.int64()),
             pa.array([i.seq for i in ids], pa.int64()),
             pa.array(fields, pa.map_(pa.string(), pa.string()))],
            names=["entry_id", "entry_ms", "entry_seq", "fields"])
    cols = parse_chunk(chunk)
    valid = cols.pop("valid", None)
    types = {"entry_id": pa.string(), "entry_ms": pa.int64(), "entry_seq": pa.int64(),
             "user_id": pa.string(), "lat": pa.float64(), "lon": pa.float64(),
             "ts_ms": pa.int64(), "rule": pa.string(), "reason": pa.string(),
             "original": pa.string()}
    mask = None if valid is None else ~valid
    arrays = []
    for c, t in types.items():
        v = cols[c]
        if c in ("lat", "lon", "ts_ms") and mask is not None:
            arrays.append(pa.array(v, t, mask=mask))
        else:
            arrays.append(pa.array(v, t))
    return pa.RecordBatch.from_arrays(arrays, names=list(types))


# --- Spark interfaces ---------------------------------------------------------------
class RedisStreamDataSource(DataSource):
    """The ``redis-stream`` data source (see the module docstring for options)."""

    @classmethod
    def name(cls) -> str:
        return NAME

    def schema(self) -> str:
        return RAW_DDL if Options.parse(self.options).format == "raw" else POSITIONS_DDL

    def streamReader(self, schema: Any) -> DataSourceStreamReader:
        return RedisStreamReader(Options.parse(self.options))

    def reader(self, schema: Any) -> DataSourceReader:
        return RedisBatchReader(Options.parse(self.options))


class RedisStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    """Micro-batches of ``(start, end]`` entry-id ranges.

    An offset is ``{"id": last entry id read, "n": entries ever added up to it}``; the
    count is what tells trimmed entries the query still needs (see :func:`loss_message`).
    """

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self._client: redis.Redis | None = None
        self._target: str | None = None  # Trigger.AvailableNow: never read past this
        self._planned: dict[tuple[str, str], list[str]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"opts": self.opts, "_client": None, "_target": None, "_planned": {}}

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = self.opts.client()
        return self._client

    def initialOffset(self) -> dict[str, Any]:
        stream, start = self.opts.stream, self.opts.starting_id
        c = counts(self.client, stream)
        if c is None:
            return {"id": ZERO_ID, "n": 0}
        if start == "earliest":  # every entry still there
            return {"id": ZERO_ID, "n": c.gone}
        if start == "latest":
            return {"id": last_id(self.client, stream), "n": c.added}
        return {"id": start, "n": c.gone + count_upto(self.client, stream, start)}

    def getDefaultReadLimit(self) -> ReadLimit:
        if self.opts.max_entries:
            return ReadMaxRows(self.opts.max_entries)
        return ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:
        self._target = last_id(self.client, self.opts.stream)

    def latestOffset(self, start: dict[str, Any], limit: ReadLimit) -> dict[str, Any]:
        begin = start["id"]
        c = counts(self.client, self.opts.stream)
        problem = loss_message(self.opts.stream, start, c)
        n0 = start.get("n")
        if problem is not None:
            if self.opts.fail_on_data_loss:
                raise DataLossError(problem + " (set failOnDataLoss=false to skip them)")
            log.warning("%s; skipping them (failOnDataLoss=false)", problem)
            n0 = c.gone if c is not None else None
        cap = limit.max_rows if isinstance(limit, ReadMaxRows) else 0
        stop = self._target or "+"
        if stop != "+" and not id_lt(begin, stop):
            return dict(start)
        count, bounds = plan(self.client, self.opts.stream, begin, stop, cap,
                             self.opts.per_partition)
        if not count:
            return dict(start) if problem is None else {"id": begin, "n": n0}
        end = bounds[-1]
        self._planned = {(begin, end): bounds}  # only the batch about to run
        return {"id": end, "n": None if n0 is None else n0 + count}

    def reportLatestOffset(self) -> dict[str, Any] | None:
        return {"id": last_id(self.client, self.opts.stream)}

    def partitions(self, start: dict[str, Any], end: dict[str, Any]) -> list[RangePartition]:
        lo, hi = start["id"], end["id"]
        if not id_lt(lo, hi):
            return []
        bounds = self._planned.get((lo, hi))
        if bounds is None:  # a batch replayed after a restart: plan it again
            _, bounds = plan(self.client, self.opts.stream, lo, hi, 0, self.opts.per_partition)
            if not bounds or bounds[-1] != hi:
                bounds = [*bounds, hi]
        sizes = None
        if start.get("n") is not None and end.get("n") is not None:
            # every run of the plan holds per_partition entries but the last
            total = int(end["n"]) - int(start["n"])
            step = self.opts.per_partition
            sizes = [step] * (len(bounds) - 1) + [total - step * (len(bounds) - 1)]
            if sizes[-1] < 0:  # planned over a stream that changed since: do not check
                sizes = None
        return ranges(lo, bounds, sizes)

    def read(self, partition: RangePartition) -> Iterator[pa.RecordBatch]:  # type: ignore[override]
        return read_range(self.opts, partition)

    def commit(self, end: dict[str, Any]) -> None:
        """Nothing to do: offsets live in Spark's checkpoint, entries stay in the stream
        (trim them with MAXLEN/XTRIM once every query has passed them)."""

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class RedisBatchReader(DataSourceReader):
    """``spark.read.format("redis-stream")``: the entries in ``(startingId, endingId]``."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts

    def partitions(self) -> Sequence[InputPartition]:
        client = self.opts.client()
        try:
            lo = self.opts.starting_id
            if lo == "earliest":
                lo = ZERO_ID
            elif lo == "latest":
                lo = last_id(client, self.opts.stream)
            hi = self.opts.ending_id
            if hi == "latest":
                hi = last_id(client, self.opts.stream)
            if not id_lt(lo, hi):
                return []
            _, bounds = plan(client, self.opts.stream, lo, hi, 0, self.opts.per_partition)
        finally:
            client.close()
        return ranges(lo, bounds)

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:  # type: ignore[override]
        assert isinstance(partition, RangePartition)
        return read_range(self.opts, partition)


def register(spark: Any) -> None:
    """Register the ``redis-stream`` format with a SparkSession."""
    spark.dataSource.register(RedisStreamDataSource)
