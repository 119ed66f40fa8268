"""The job's sink: each micro-batch's suggestions, dead letters and counts, written once.

``foreachBatch`` is at-least-once: after a crash Spark runs the last uncommitted batch
again, with the same batch id and (sources replayable, state versioned) the same rows.
So every write is idempotent per batch id:

- Parquet: one file per batch and output, ``OUT/suggestions/batch-000000000042.parquet``
  (and ``dead/``, ``metrics/``), written to a temporary name then renamed over: a replay
  overwrites, never appends.
- Redis: the entries of a batch (suggestions, dead letters) and its counters are written
  in one MULTI/EXEC transaction together with the batch id in a marker hash
  ``adanalytics:sink:<sink id>``; a batch whose id the marker already holds is skipped.
  Entry ids are deterministic too (a suggestion's id is derived from the id of the
  position that triggered it, a dead letter keeps its position's id), so even a fresh
  checkpoint over the same positions cannot duplicate an entry.

The sink id belongs to the checkpoint (``CHECKPOINT/stream.json``): a new checkpoint is a
new query whose batch ids start again at 0.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from adanalytics.semantics import output_columns
from adanalytics.stream.messages import EntryId, dead_letter_fields

if TYPE_CHECKING:
    import redis

log = logging.getLogger("adanalytics")

#: Redis error of an XADD whose explicit id is not above the stream's last id: the entry
#: is already there (written by an earlier attempt of the same batch).
_DUPLICATE = "equal or smaller than the target stream top item"


@dataclass
class BatchReport:
    """What one micro-batch produced."""

    batch_id: int
    events: int
    dead: int
    late: int
    suggestions: int
    last_source_id: str | None
    redis_written: bool
    seconds: float


@dataclass
class SinkTotals:
    """Running totals of a job (this process only)."""

    batches: int = 0
    events: int = 0
    dead: int = 0
    late: int = 0
    suggestions: int = 0
    history: list[BatchReport] = field(default_factory=list)

    def add(self, r: BatchReport) -> None:
        self.batches += 1
        self.events += r.events
        self.dead += r.dead
        self.late += r.late
        self.suggestions += r.suggestions
        self.history.append(r)
        del self.history[:-1000]


@dataclass
class SinkConfig:
    """Where a job writes."""

    out: Path
    redis_url: str
    source_stream: str
    suggestions_stream: str
    dead_stream: str
    metrics_key: str
    sink_id: str
    id_dtypes: dict[str, str] = field(default_factory=dict)
    #: approximate MAXLEN of the suggestions and dead-letter streams (None: unbounded)
    maxlen: int | None = None


def _atomic_parquet(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def _id_key(ids: pd.Series) -> np.ndarray:
    """Sort order of entry ids (``ms-seq``) in stream order."""
    parsed = [EntryId.parse(i) for i in ids]
    return np.array(sorted(range(len(parsed)), key=parsed.__getitem__), dtype=np.int64)


def _cast_id(s: pd.Series, dtype: str | None) -> pd.Series:
    """Ids back in the dataset's type (they travel through the job as text)."""
    if dtype and dtype.lower().startswith(("int", "uint")):
        return pd.to_numeric(s).astype(np.int64)
    return s.astype(object)


class BatchWriter:
    """The ``foreachBatch`` function of the job (runs on the driver)."""

    def __init__(self, cfg: SinkConfig,
                 on_batch: Callable[[BatchReport], None] | None = None) -> None:
        self.cfg = cfg
        self.totals = SinkTotals()
        self.on_batch = on_batch
        self._client: redis.Redis | None = None

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            import redis

            self._client = redis.Redis.from_url(self.cfg.redis_url, decode_responses=True,
                                                socket_timeout=60)
        return self._client

    @property
    def marker(self) -> str:
        return f"adanalytics:sink:{self.cfg.sink_id}"

    def __call__(self, df: Any, batch_id: int) -> None:
        t0 = time.perf_counter()
        # exactly one action on the batch: the stateful operator must run once per attempt
        rows = df.toPandas()
        report = self.write(rows, int(batch_id), t0)
        self.totals.add(report)
        if self.on_batch is not None:
            self.on_batch(report)

    # --- pandas side (testable without Spark) -------------------------------------------
    def write(self, rows: pd.DataFrame, batch_id: int, t0: float | None = None) -> BatchReport:
        """Write one batch's output rows (see :data:`adanalytics.stream.kernel.OUTPUT_COLUMNS`)."""
        t0 = time.perf_counter() if t0 is None else t0
        sugg = self._suggestions(rows[rows["kind"] == "suggestion"], batch_id)
        dead = rows[rows["kind"] == "dead"]
        dead = dead.iloc[_id_key(dead["entry_id"])].reset_index(drop=True)
        stats = rows[rows["kind"] == "stats"]
        events = int(pd.to_numeric(stats["events"]).sum())
        late = int(pd.to_numeric(stats["late"]).sum())
        last_source = None
        ids = [str(i) for i in stats["entry_id"].dropna()] + [str(i) for i in dead["entry_id"]]
        if ids:
            last_source = str(max(EntryId.parse(i) for i in ids))
        metrics = pd.DataFrame({
            "batch_id": [batch_id], "events": [events], "dead": [len(dead)], "late": [late],
            "suggestions": [len(sugg)], "last_source_id": [last_source],
            "written_at": [pd.Timestamp.now(tz="UTC")],
        })
        out = self.cfg.out
        name = f"batch-{batch_id:012d}.parquet"
        for sub, frame in (("suggestions", sugg), ("dead", dead[["entry_id", "rule", "reason", "original"]])):
            path = out / sub / name
            if len(frame):
                _atomic_parquet(frame, path)
            elif path.exists():
                path.unlink()
        _atomic_parquet(metrics, out / "metrics" / name)
        written = self._redis(batch_id, sugg, dead, events=events, late=late,
                              last_source=last_source)
        return BatchReport(batch_id=batch_id, events=events, dead=len(dead), late=late,
                           suggestions=len(sugg), last_source_id=last_source,
                           redis_written=written, seconds=time.perf_counter() - t0)

    def _suggestions(self, s: pd.DataFrame, batch_id: int) -> pd.DataFrame:
        """SPEC §3.7 columns (ids in the dataset's types), then suggestion_id, source_id."""
        s = s.iloc[_id_key(s["entry_id"])] if len(s) else s
        ts = pd.to_datetime(s["ts"], utc=True) if len(s) else pd.Series(dtype="datetime64[ns, UTC]")
        out = pd.DataFrame({
            "user_id": s["user_id"].astype(object).to_numpy(),
            "establishment_id": _cast_id(s["establishment_id"], self.cfg.id_dtypes.get("establishment_id")).to_numpy(),
            "ad_id": _cast_id(s["ad_id"], self.cfg.id_dtypes.get("ad_id")).to_numpy(),
            "ts": ts.to_numpy() if len(s) else ts,
            "distance_m": s["distance_m"].astype(np.float64).to_numpy(),
            "suggestion_id": s["entry_id"].astype(object).to_numpy(),
            "source_id": s["source_id"].astype(object).to_numpy(),
            "batch_id": np.full(len(s), batch_id, dtype=np.int64),
        })
        out["ts"] = pd.to_datetime(out["ts"], utc=True).astype("datetime64[ns, UTC]")
        assert list(out.columns[:5]) == output_columns("recommendations")
        return out

    def _redis(self, batch_id: int, sugg: pd.DataFrame, dead: pd.DataFrame, *, events: int,
               late: int, last_source: str | None) -> bool:
        """Write the batch to Redis unless the marker says it is there; True if written."""
        import redis

        r = self.client
        done = r.hget(self.marker, "batch")
        if done is not None and int(done) >= batch_id:
            return False
        cfg = self.cfg
        pipe = r.pipeline(transaction=True)
        kinds = []
        trim = {"maxlen": cfg.maxlen, "approximate": True} if cfg.maxlen else {}
        for row in sugg.itertuples(index=False):
            pipe.xadd(cfg.suggestions_stream, {
                "user_id": str(row.user_id), "establishment_id": str(row.establishment_id),
                "ad_id": str(row.ad_id), "ts": str(int(row.ts.value // 1_000_000)),
                "distance_m": repr(float(row.distance_m)), "source_id": str(row.source_id),
            }, id=str(row.suggestion_id), **trim)
            kinds.append("suggestion")
        for row in dead.itertuples(index=False):
            pipe.xadd(cfg.dead_stream, dead_letter_fields(
                str(row.entry_id), str(row.rule), str(row.reason), str(row.original),
                cfg.source_stream), id=str(row.entry_id), **trim)
            kinds.append("dead")
        m = cfg.metrics_key
        pipe.hincrby(m, "batches", 1)
        pipe.hincrby(m, "events", events)
        pipe.hincrby(m, "late", late)
        pipe.hincrby(m, "dead", len(dead))
        pipe.hincrby(m, "suggestions", len(sugg))
        info = {"last_batch_id": batch_id, "last_batch_at_ms": int(time.time() * 1000)}
        if last_source:
            info["last_source_id"] = last_source
        pipe.hset(m, mapping=info)
        pipe.hset(self.marker, mapping={"batch": batch_id, "at_ms": int(time.time() * 1000)})
        results = pipe.execute(raise_on_error=False)
        dup = 0
        for kind, res in zip(kinds, results, strict=False):
            if isinstance(res, redis.ResponseError):
                if _DUPLICATE in str(res):
                    dup += 1
                    continue
                msg = f"writing a {kind} of batch {batch_id} to Redis failed: {res}"
                raise RuntimeError(msg)
        for res in results[len(kinds):]:
            if isinstance(res, Exception):
                msg = f"updating the counters of batch {batch_id} in Redis failed: {res}"
                raise RuntimeError(msg)
        if dup:
            log.warning("batch %d: %d entries were already in Redis (written by an earlier run "
                        "over the same positions) and were not added again", batch_id, dup)
        return True

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def read_parquet_dir(path: str | Path) -> pd.DataFrame:
    """All batch files of an output directory (``OUT/suggestions``...) as one frame."""
    path = Path(path)
    files = sorted(path.glob("batch-*.parquet")) if path.exists() else []
    if not files:
        return pd.DataFrame()
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
