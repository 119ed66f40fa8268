"""A short real-time run for ``adanalytics demo``: producer + job for a bounded time + map.

:func:`run_demo_stream` starts a private ``redis-server``, replays the first positions of a
dataset at a fixed rate while the streaming job runs, stops the job once everything sent
is processed, checks the suggestions against the batch rule on the same positions, and
draws the map of the users with the most suggestions.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from rich.console import Console

    from adanalytics.stream.job import StreamSummary
    from adanalytics.stream.maps import MapPaths


@dataclass
class StreamDemoResult:
    """What the demo's real-time run did."""

    sent: int
    produce_seconds: float
    summary: StreamSummary
    suggestions: int
    batch_suggestions: int
    matches_batch: bool
    maps: MapPaths | None
    out: Path
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One paragraph for the demo's summary."""
        s = self.summary
        if s.events + s.dead < self.sent:
            return (f"real time: {self.sent:,} positions sent through Redis, but the job stopped "
                    f"({s.stopped}) after processing {s.events + s.dead:,} of them in "
                    f"{s.batches} micro-batches ({self.suggestions:,} suggestions so far)")
        same = "identical to" if self.matches_batch else "DIFFERENT from"
        text = (f"real time: {self.sent:,} positions through Redis in {self.produce_seconds:.0f} s "
                f"-> {s.batches} micro-batches, {self.suggestions:,} suggestions ({same} the "
                f"batch rule's {self.batch_suggestions:,} on the same positions), {s.dead} dead "
                f"letters, {s.late} late")
        if self.maps is not None:
            text += f"; map: {self.maps.html}"
        return text


def run_demo_stream(data_dir: str | Path, out_dir: str | Path, seconds: float = 30.0,
                    rate: float = 2000.0, trigger: str = "1s",
                    console: Console | None = None, **job_options: Any) -> StreamDemoResult:
    """Replay about ``seconds`` worth of positions at ``rate`` per second through the job.

    Parameters
    ----------
    data_dir:
        A dataset directory (e.g. the demo's generated sample).
    out_dir:
        Where the stream's outputs go: ``stream/`` (Parquet per micro-batch),
        ``stream-checkpoint/`` and ``maps/`` (replaced on every run).
    seconds, rate:
        The replay sends ``seconds * rate`` positions (the first ones in time order) at
        ``rate`` per second.
    trigger:
        Micro-batch interval of the job.
    job_options:
        Extra :class:`~adanalytics.stream.job.JobConfig` fields.
    """
    import adanalytics as aa
    from adanalytics.engines.pandas.recommendations import recommend
    from adanalytics.stream.job import JobConfig, StreamJob
    from adanalytics.stream.maps import make_maps
    from adanalytics.stream.producer import positions_frame, produce
    from adanalytics.stream.redis_server import RedisServer
    from adanalytics.stream.sink import read_parquet_dir

    out = Path(out_dir)
    stream_out, ckpt, maps_out = out / "stream", out / "stream-checkpoint", out / "maps"
    for d in (stream_out, ckpt):
        shutil.rmtree(d, ignore_errors=True)
    say = console.print if console is not None else (lambda *a, **k: None)
    ds = aa.open_dataset(str(data_dir), engine="pandas")
    positions = positions_frame(ds.tables.locations, limit=max(1, int(seconds * rate)))

    with RedisServer() as server:
        cfg = JobConfig(data=str(data_dir), redis_url=server.url, out=stream_out,
                        checkpoint=ckpt, trigger=trigger, tz=ds.tz, **job_options)
        say(f"real time: starting redis-server ({server.url}) and the Spark streaming job ...")
        job = StreamJob(cfg)
        sent: dict[str, Any] = {}

        def producer() -> None:
            client = server.client()
            try:
                # give the query a head start so the first positions meet a running job
                deadline = time.monotonic() + 120
                while job.query is None and time.monotonic() < deadline:
                    time.sleep(0.2)
                sent["report"] = produce(positions, client, cfg.stream, rate=rate,
                                         should_stop=lambda: job.stopping)
            except Exception as exc:  # reported below, the job stops when idle anyway
                sent["error"] = exc
            finally:
                client.close()

        thread = threading.Thread(target=producer, name="adanalytics-demo-producer", daemon=True)
        thread.start()
        say(f"real time: replaying {len(positions):,} positions at {rate:,.0f}/s")
        # generous: the first micro-batch waits for Spark and its Python workers to start
        summary = job.run(stop_when_idle=max(10.0, 5 * _trigger_s(trigger)),
                          timeout=max(600.0, 20 * seconds))
        job.stop()
        thread.join(30)
    if "error" in sent:
        raise sent["error"]
    report = sent.get("report")
    got = read_parquet_dir(stream_out / "suggestions")
    events = pd.DataFrame({
        "user_id": positions["user_id"], "lat": positions["lat"], "lon": positions["lon"],
        "ts": pd.to_datetime(positions["ts_ms"], unit="ms", utc=True)})
    if report is not None:
        events = events.iloc[:report.sent]
    expected = recommend(events, job.dims.places, job.dims.ranked, tz=job.dims.tz,
                         params=job.dims.params).rows
    matches = _same_rows(got, expected)
    paths = None
    if len(got):
        paths = make_maps(events, got, ds.tables.establishments, maps_out,
                          title="Real-time run: users whose approach produced a suggestion")
    return StreamDemoResult(sent=report.sent if report else 0,
                            produce_seconds=report.seconds if report else 0.0, summary=summary,
                            suggestions=len(got), batch_suggestions=len(expected),
                            matches_batch=matches, maps=paths, out=stream_out)


def _trigger_s(trigger: str) -> float:
    from adanalytics.stream.job import trigger_ms

    return trigger_ms(trigger) / 1000.0


def _same_rows(got: pd.DataFrame, expected: pd.DataFrame) -> bool:
    """The stream's suggestions equal the batch rule's rows (SPEC columns, any order)."""
    cols = ["user_id", "establishment_id", "ad_id", "ts", "distance_m"]
    if len(got) != len(expected):
        return False
    if not len(got):
        return True

    def norm(df: pd.DataFrame) -> pd.DataFrame:
        d = df[cols].astype({"user_id": str, "establishment_id": str, "ad_id": str})
        d["ts"] = pd.to_datetime(d["ts"], utc=True)
        return d.sort_values(["user_id", "ts", "establishment_id"]).reset_index(drop=True)

    a, b = norm(got), norm(expected)
    return bool((a[cols[:4]] == b[cols[:4]]).all().all()
                and ((a["distance_m"] - b["distance_m"]).abs() <= 1e-9 * b["distance_m"].abs() + 1e-9).all())
