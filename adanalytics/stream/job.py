"""The real-time job (SPEC §5): Redis positions -> stateful Spark query -> suggestions.

::

    redis-stream source ──► group key ──► transformWithStateInPandas ──► foreachBatch
    (positions, validated)  (user bucket)  (kernel.step per group)       (Parquet + Redis,
                                                                          idempotent)

- Source: :mod:`adanalytics.stream.source` (offsets = entry ids, checkpointed).
- State: ``transformWithStateInPandas`` keeps each group's per-user state in a value state
  with a processing-time TTL. By default a group is a hash bucket of users (``key="bucket"``:
  a fixed number of buckets, by default one per state partition), so each micro-batch
  calls the vectorised kernel once per bucket; ``key="user"`` groups by ``user_id`` (one
  kernel call and a few state-server round trips per user and batch: simplest, but it caps
  throughput at about a thousand active users per second on two cores). Both run
  :func:`adanalytics.stream.kernel.step`, hence the batch rule.
- Dead letters ride through the same operator under the key ``""`` (no state), so the
  one ``foreachBatch`` writes everything of a batch together.
- Sink: :class:`adanalytics.stream.sink.BatchWriter`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from adanalytics import semantics as sem
from adanalytics.engines.base import RecommendParams
from adanalytics.errors import AdAnalyticsError
from adanalytics.stream.kernel import DEAD_KEY, OUTPUT_DDL, Dimensions, load_dimensions
from adanalytics.stream.sink import BatchReport, BatchWriter, SinkConfig, SinkTotals

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger("adanalytics")

ROCKSDB_PROVIDER = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
#: Checkpoint files through Hadoop's FileSystem API. Spark's default (FileContext) costs
#: 40-50 ms per file on a local disk and ~170 ms per RocksDB changelog commit, three files
#: per micro-batch; the FileSystem one takes 5-15 ms. Both write a temporary file and
#: rename it (atomic on a local file system, where the job keeps its checkpoint).
CHECKPOINT_FILE_MANAGER = ("org.apache.spark.sql.execution.streaming.checkpointing."
                           "FileSystemBasedCheckpointFileManager")
KEY_MODES = ("bucket", "user")
#: Failures after which the query is restarted from its checkpoint (they come from an
#: overloaded machine, not from the data): Spark waits only 10 s for a Python worker.
TRANSIENT_ERRORS = ("Python worker failed to connect back",
                    "Timed out while waiting for the Python worker",
                    "Python worker exited unexpectedly",
                    "CANNOT_OPEN_SOCKET")


class StreamJobError(AdAnalyticsError):
    """The streaming query failed or cannot start."""


def default_params() -> RecommendParams:
    """The SPEC §3.7 defaults."""
    return RecommendParams(approach_radius_m=sem.APPROACH_RADIUS_M, max_gap=sem.MAX_GAP,
                           min_closing_m=sem.MIN_CLOSING_M, cooldown=sem.COOLDOWN)


def trigger_ms(value: str | float | pd.Timedelta) -> int:
    """A trigger interval (``"1s"``, ``"500ms"``, ``0`` = as fast as possible) in ms."""
    td = sem.to_timedelta(value, "trigger")
    return int(td / pd.Timedelta(milliseconds=1))


@dataclass
class JobConfig:
    """Everything a streaming job needs (the CLI flags of ``adanalytics stream run``).

    Attributes
    ----------
    data:
        Dataset directory (or dict of tables): establishments, ads, campaigns and the
        interactions behind the CTR ranking (its locations are not read).
    redis_url, stream:
        Where positions arrive.
    out, checkpoint:
        Output directory (Parquet) and checkpoint directory (Spark offsets and state).
    suggestions_stream, dead_stream, metrics_key:
        Redis outputs (defaults ``suggestions``, ``<stream>:dead``, ``<suggestions>:metrics``).
    trigger:
        Micro-batch interval (``"1s"``; ``0`` = start the next batch as soon as one ends).
    key:
        ``"bucket"`` (default) or ``"user"``: the grouping of the stateful operator.
    buckets, partitions:
        User buckets and state partitions (fixed by the first run of a checkpoint).
        One state partition by default: each one is a Python task per micro-batch, with
        about 0.1-0.2 s of fixed cost, and on two cores two tasks only compete with the
        JVM (``benchmarks/stream.py``: at 5k events/s, p99 1.0-1.6 s with one partition,
        2.2 s with two; at 20k/s, 16.7k/s processed against 11.9k/s). Raise it on a
        cluster where the rule itself fills a core. Buckets default to one per state
        partition: each bucket costs one kernel call (tens of ms) per micro-batch, and
        each call reads and writes its bucket's whole state, so raise them only with many
        users (hundreds of thousands) in the state.
    state_ttl:
        Forget users silent for longer than this (processing time).
    max_batch, per_partition:
        Cap of a micro-batch and entries per read task.
    starting_id:
        Where a new checkpoint starts reading: ``earliest``, ``latest`` or an entry id.
    fail_on_data_loss:
        Fail when entries the checkpoint needs were trimmed from the stream.
    """

    data: Any
    redis_url: str
    out: Path
    checkpoint: Path
    stream: str = "positions"
    suggestions_stream: str = "suggestions"
    dead_stream: str | None = None
    metrics_key: str | None = None
    trigger: str = "1s"
    key: str = "bucket"
    buckets: int | None = None
    partitions: int = 1
    state_ttl: str | pd.Timedelta = "24h"
    max_batch: int = 100_000
    per_partition: int = 20_000
    starting_id: str = "earliest"
    fail_on_data_loss: bool = True
    tz: str = sem.DEFAULT_TZ
    params: RecommendParams = field(default_factory=default_params)
    master: str | None = None
    maxlen: int | None = None

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.checkpoint = Path(self.checkpoint)
        self.dead_stream = self.dead_stream or f"{self.stream}:dead"
        self.metrics_key = self.metrics_key or f"{self.suggestions_stream}:metrics"
        if self.buckets is None:
            self.buckets = self.partitions
        if self.key not in KEY_MODES:
            msg = f"key must be one of {KEY_MODES}, got {self.key!r}"
            raise ValueError(msg)
        for name in ("buckets", "partitions", "max_batch", "per_partition"):
            if int(getattr(self, name)) <= 0:
                msg = f"{name} must be a positive integer, got {getattr(self, name)!r}"
                raise ValueError(msg)
        trigger_ms(self.trigger)
        self.state_ttl = sem.to_timedelta(self.state_ttl, "state_ttl")
        if len({self.stream, self.suggestions_stream, self.dead_stream}) < 3:
            msg = "the positions, suggestions and dead-letter streams must be different keys"
            raise ValueError(msg)


# --- session and metadata -------------------------------------------------------------
def stream_session(master: str | None = None, partitions: int = 1) -> SparkSession:
    """A Spark session for streaming jobs (its own SQL conf, the process' SparkContext).

    Reuses the process-wide session of the Spark engine when it exists (one SparkContext
    per process), else starts ``local[2]`` (or ``master``/``$SPARK_MASTER``).
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        from adanalytics.engines.spark.session import current_master, get_session
    except ImportError:  # the Spark engine is optional for the stream
        base = _own_session(master)
    else:
        conf = {} if current_master() else {"spark.ui.showConsoleProgress": "false"}
        base = get_session(master, conf=conf)
    spark = base.newSession()
    for k, v in {
        "spark.sql.shuffle.partitions": str(partitions),
        "spark.sql.streaming.stateStore.providerClass": ROCKSDB_PROVIDER,
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
        "spark.sql.streaming.noDataMicroBatches.enabled": "false",
        "spark.sql.streaming.checkpointFileManagerClass": CHECKPOINT_FILE_MANAGER,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.adaptive.enabled": "false",
    }.items():
        spark.conf.set(k, v)
    from adanalytics.stream.source import register

    register(spark)
    return spark


def _own_session(master: str | None) -> SparkSession:
    from pyspark.sql import SparkSession

    url = master or os.environ.get("SPARK_MASTER") or "local[2]"
    spark = (SparkSession.builder.master(url).appName("adanalytics-stream")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.session.timeZone", "UTC").getOrCreate())
    spark.sparkContext.setLogLevel(os.environ.get("ADANALYTICS_SPARK_LOG_LEVEL", "ERROR"))
    return spark


def bucket_keys(spark: SparkSession, buckets: int, partitions: int) -> list[str]:
    """Group keys of the user buckets, chosen so that bucket ``b`` lands on state partition
    ``b % partitions`` (Spark hash-partitions the keys with Murmur3, as ``hash()`` does)."""
    cands = spark.range(0, max(64, 16 * buckets)).selectExpr(
        "cast(id as string) as k", f"pmod(hash(cast(id as string)), {partitions}) as p").collect()
    pools: dict[int, list[str]] = {}
    for row in cands:
        pools.setdefault(int(row["p"]), []).append(str(row["k"]))
    keys = []
    for b in range(buckets):
        pool = pools.get(b % partitions) or [k for p in pools.values() for k in p if k not in keys]
        keys.append(pool.pop(0))
    return keys


@dataclass
class JobMeta:
    """What a checkpoint fixes at its first run (``CHECKPOINT/stream.json``)."""

    sink_id: str
    key: str
    buckets: int
    partitions: int
    bucket_keys: list[str]
    stream: str
    created: str

    @classmethod
    def load_or_create(cls, cfg: JobConfig, spark: SparkSession) -> JobMeta:
        path = cfg.checkpoint / "stream.json"
        if path.exists():
            meta = cls(**json.loads(path.read_text()))
            changed = [f"{n}={getattr(cfg, n)} (checkpoint: {getattr(meta, n)})"
                       for n in ("key", "buckets", "partitions", "stream")
                       if getattr(cfg, n) != getattr(meta, n)]
            if changed:
                log.warning("the checkpoint %s was made with other settings; keeping its own: %s",
                            cfg.checkpoint, ", ".join(changed))
            return meta
        keys = bucket_keys(spark, cfg.buckets, cfg.partitions) if cfg.key == "bucket" else []
        meta = cls(sink_id=uuid.uuid4().hex[:16], key=cfg.key, buckets=cfg.buckets,
                   partitions=cfg.partitions, bucket_keys=keys, stream=cfg.stream,
                   created=pd.Timestamp.now(tz="UTC").isoformat())
        cfg.checkpoint.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(meta), indent=2))
        os.replace(tmp, path)
        return meta


def _claim_out(out: Path, meta: JobMeta, checkpoint: Path) -> None:
    """Bind the output directory to the checkpoint (a replay overwrites its own files; an
    output directory of another checkpoint would mix two runs)."""
    out.mkdir(parents=True, exist_ok=True)
    mark = out / "_stream.json"
    if mark.exists():
        other = json.loads(mark.read_text())
        if other.get("sink_id") != meta.sink_id:
            msg = (f"output directory {out} holds the results of another run (checkpoint "
                   f"{other.get('checkpoint')}); use a new --out, or the same --checkpoint "
                   f"to resume that run")
            raise StreamJobError(msg)
        return
    mark.write_text(json.dumps({"sink_id": meta.sink_id, "checkpoint": str(checkpoint)}))


# --- the query ------------------------------------------------------------------------
def build_query(spark: SparkSession, cfg: JobConfig, meta: JobMeta, dims: Dimensions) -> DataFrame:
    """The streaming DataFrame of the job's output rows (before the sink)."""
    from pyspark.sql import functions as F

    src = (spark.readStream.format("redis-stream")
           .option("url", cfg.redis_url).option("stream", cfg.stream)
           .option("startingId", cfg.starting_id)
           .option("maxEntriesPerBatch", str(cfg.max_batch))
           .option("entriesPerPartition", str(cfg.per_partition))
           .option("failOnDataLoss", "true" if cfg.fail_on_data_loss else "false")
           .load())
    valid = F.col("rule").isNull()
    if meta.key == "user":
        group = F.col("user_id")
    else:
        keys = F.array(*[F.lit(k) for k in meta.bucket_keys])
        bucket = F.pmod(F.xxhash64("user_id"), F.lit(meta.buckets)).cast("int") + 1
        group = F.element_at(keys, bucket)
    keyed = src.select(F.when(valid, group).otherwise(F.lit(DEAD_KEY)).alias("group_key"),
                       *[c for c in src.columns])
    from adanalytics.stream.processor import RecommendProcessor

    ttl_ms = int(pd.Timedelta(cfg.state_ttl) / pd.Timedelta(milliseconds=1))
    return keyed.groupBy("group_key").transformWithStateInPandas(
        statefulProcessor=RecommendProcessor(dims, ttl_ms), outputStructType=OUTPUT_DDL,
        outputMode="Append", timeMode="ProcessingTime")


@dataclass
class StreamSummary:
    """What a run of the job did (this process)."""

    batches: int
    events: int
    dead: int
    late: int
    suggestions: int
    seconds: float
    stopped: str
    out: Path
    sink_id: str
    history: list[BatchReport] = field(default_factory=list)
    restarts: int = 0


class StreamJob:
    """A running (or runnable) streaming job.

    >>> job = StreamJob(JobConfig(data="data/sample", redis_url="redis://localhost:6379/0",
    ...                           out="out/stream", checkpoint="out/ckpt"))   # doctest: +SKIP
    >>> summary = job.run(stop_when_idle=10)                                    # doctest: +SKIP
    """

    def __init__(self, cfg: JobConfig, on_batch: Callable[[BatchReport], None] | None = None,
                 dims: Dimensions | None = None) -> None:
        self.cfg = cfg
        self.on_batch = on_batch
        self.dims = dims or load_dimensions(cfg.data, tz=cfg.tz, params=cfg.params)
        self.query: StreamingQuery | None = None
        self.writer: BatchWriter | None = None
        self._stop = threading.Event()
        self._reason = "stopped"

    def start(self) -> StreamingQuery:
        """Start the query (returns at once)."""
        cfg = self.cfg
        spark = stream_session(cfg.master, cfg.partitions)
        meta = JobMeta.load_or_create(cfg, spark)
        _claim_out(cfg.out, meta, cfg.checkpoint)
        sink = SinkConfig(out=cfg.out, redis_url=cfg.redis_url, source_stream=cfg.stream,
                          suggestions_stream=cfg.suggestions_stream,
                          dead_stream=str(cfg.dead_stream), metrics_key=str(cfg.metrics_key),
                          sink_id=meta.sink_id, id_dtypes=self.dims.id_dtypes,
                          maxlen=cfg.maxlen)
        self.meta = meta
        if self.writer is None:  # kept across restarts (its totals too)
            self.writer = BatchWriter(sink, on_batch=self.on_batch)
        rows = build_query(spark, cfg, meta, self.dims)
        ms = trigger_ms(cfg.trigger)
        self.query = (rows.writeStream.foreachBatch(self.writer)
                      .option("checkpointLocation", str(cfg.checkpoint / "query"))
                      .queryName(f"adanalytics_stream_{meta.sink_id}")
                      .trigger(processingTime=f"{ms} milliseconds")
                      .start())
        return self.query

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    def stop(self, reason: str = "stopped") -> None:
        """Ask the run loop to stop the query (thread- and signal-safe)."""
        self._reason = reason
        self._stop.set()

    def run(self, stop_when_idle: float | None = None, timeout: float | None = None,
            handle_signals: bool = False, max_restarts: int = 3) -> StreamSummary:
        """Start the query and run it until idle, timeout, :meth:`stop` or failure.

        Parameters
        ----------
        stop_when_idle:
            Stop once no position has arrived for this many seconds and nothing is left
            to read.
        timeout:
            Stop after this many seconds in any case.
        handle_signals:
            Stop cleanly on SIGINT/SIGTERM (main thread only).
        max_restarts:
            Restart the query from its checkpoint (exactly once: nothing is lost or
            repeated) at most this many times after a transient failure, such as a Python
            worker too slow to start on an overloaded machine.
        """
        t0 = time.monotonic()
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: self.stop("signal"))
        restarts = 0
        try:
            while True:
                q = self.start()
                self._watch(q, t0, stop_when_idle, timeout)
                exc = q.exception()
                if exc is None:
                    break
                text = str(exc)
                if restarts < max_restarts and any(t in text for t in TRANSIENT_ERRORS):
                    restarts += 1
                    log.warning("the streaming query failed (%s); restarting it from the "
                                "checkpoint (%d/%d)", _first_line(text), restarts, max_restarts)
                    continue
                msg = f"the streaming query failed: {_first_line(text)}"
                raise StreamJobError(msg)
        finally:
            if self.writer is not None:
                self.writer.close()
        totals = self.writer.totals if self.writer else SinkTotals()
        return StreamSummary(
            batches=totals.batches, events=totals.events, dead=totals.dead, late=totals.late,
            suggestions=totals.suggestions, seconds=time.monotonic() - t0,
            stopped=self._reason, out=self.cfg.out, sink_id=self.meta.sink_id,
            history=list(totals.history), restarts=restarts)

    def _watch(self, q: StreamingQuery, t0: float, stop_when_idle: float | None,
               timeout: float | None) -> None:
        """Poll the query until it ends or a stop condition holds (then stop it)."""
        from pyspark.errors import StreamingQueryException

        last_data = time.monotonic()
        seen_batch = -1
        try:
            while q.isActive and not self._stop.is_set():
                try:
                    q.awaitTermination(0.25)
                except StreamingQueryException:
                    break  # read by the caller through q.exception()
                now = time.monotonic()
                for p in q.recentProgress:
                    if p["batchId"] > seen_batch:
                        seen_batch = p["batchId"]
                        if p["numInputRows"]:
                            last_data = now
                if timeout is not None and now - t0 >= timeout:
                    self._reason = "timeout"
                    break
                if (stop_when_idle is not None and now - last_data >= stop_when_idle
                        and not self._backlog(q)):
                    self._reason = "idle"
                    break
        finally:
            if q.isActive:
                q.stop()

    def _backlog(self, q: StreamingQuery) -> bool:
        """Whether the stream holds entries the query has not read yet."""
        from adanalytics.stream.messages import id_lt
        from adanalytics.stream.source import Options, last_id

        p = q.lastProgress
        done = None
        if p and p.get("sources"):
            end = p["sources"][0].get("endOffset")
            if isinstance(end, str):
                end = json.loads(end)
            done = (end or {}).get("id")
        client = Options.parse({"url": self.cfg.redis_url}).client()
        try:
            newest = last_id(client, self.cfg.stream)
        finally:
            client.close()
        if done is None:
            return newest != "0-0"
        return id_lt(done, newest)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:500]
    return text[:500]


def run_stream(cfg: JobConfig, *, stop_when_idle: float | None = None,
               timeout: float | None = None,
               on_batch: Callable[[BatchReport], None] | None = None) -> StreamSummary:
    """Run the streaming job described by ``cfg`` (see :class:`StreamJob`)."""
    return StreamJob(cfg, on_batch=on_batch).run(stop_when_idle=stop_when_idle, timeout=timeout)
