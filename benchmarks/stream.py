"""Real-time path: end-to-end latency and sustained throughput of the streaming job.

A private ``redis-server``; the job (``adanalytics stream run``) in its own process, as in
production; a producer process appending a generated city's positions (in time order,
looping with shifted timestamps when the city runs out) at a fixed rate; and a consumer
thread reading the ``suggestions`` stream as entries arrive.

- latency of a suggestion = the moment the consumer sees it in ``suggestions`` minus the
  moment its position was appended to ``positions`` (the position's entry id is Redis'
  append time in ms; a suggestion names its position in ``source_id``), p50 / p99 / max;
- throughput at a rate = positions the job processed per second over the window (from the
  job's counters in Redis); the rate is *held* when the backlog (appended - processed)
  stays bounded: at the end of the window it is below ``--max-lag`` seconds of input and
  not growing over the second half of the window;
- the highest rate held: a ramp over ``--ramp`` rates (after each window the backlog is
  drained), then a bisection between the last rate held and the first one lost.

Everything shares the machine's cores (job JVM + Python workers, producer, Redis); other
processes on the machine slow the figures down - the load average is reported.

    python benchmarks/stream.py --scale small --rates 1000,5000,20000 --duration 30
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as bc

from adanalytics.stream.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]
POSITIONS, SUGGESTIONS = "positions", "suggestions"
METRICS = f"{SUGGESTIONS}:metrics"


# --- producer process ----------------------------------------------------------------
def _producer(url: str, data: str, rate: float, seconds: float, start_row: int,
              shift_ms: int, out: Any) -> None:
    """Append ``rate * seconds`` positions at ``rate``/s (runs in its own process).

    Puts ``{"started": t}`` on ``out`` once the positions are loaded (the window starts
    then, not when the process was spawned), then the report.
    """
    import redis

    import adanalytics as aa
    from adanalytics.stream.producer import positions_frame, produce

    pos = positions_frame(aa.open_dataset(data, engine="pandas").tables.locations)
    n_total = len(pos)
    span = int(pos["ts_ms"].iloc[-1] - pos["ts_ms"].iloc[0]) + 60_000
    n = int(rate * seconds)
    rows = np.arange(start_row, start_row + n)
    batch = pos.iloc[rows % n_total].reset_index(drop=True)
    # past the end of the city, loop with timestamps shifted by its span (time order kept)
    batch["ts_ms"] = batch["ts_ms"].to_numpy() + shift_ms + (rows // n_total) * span
    client = redis.Redis.from_url(url)
    out.put({"started": time.time()})
    rep = produce(batch, client, POSITIONS, rate=rate, chunk=max(1, min(2000, int(rate / 50))))
    out.put({"sent": rep.sent, "seconds": rep.seconds, "next_row": start_row + rep.sent,
             "wrapped": bool(n and rows[-1] >= n_total), "n_total": n_total})


# --- latency consumer ----------------------------------------------------------------
@dataclass
class Samples:
    lat_ms: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> list[float]:
        with self.lock:
            out, self.lat_ms = self.lat_ms, []
        return out


def _consume(url: str, samples: Samples, stop: threading.Event) -> None:
    import redis

    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=30)
    last = "$"
    while not stop.is_set():
        try:
            res = client.xread({SUGGESTIONS: last}, block=200, count=10_000)
        except redis.RedisError:  # an overloaded machine: try again
            time.sleep(0.1)
            continue
        now = time.time() * 1000.0
        for _, entries in res or []:
            for eid, f in entries:
                last = eid
                src_ms = int(f["source_id"].split("-")[0])
                with samples.lock:
                    samples.lat_ms.append(now - src_ms)


# --- the benchmark -------------------------------------------------------------------
@dataclass
class Window:
    rate: float
    seconds: float
    sent: int
    produce_rate: float
    processed_rate: float
    backlog_end: int
    backlog_slope: float
    held: bool
    suggestions: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    load: float


def _processed(client: Any) -> int:
    m = client.hgetall(METRICS)
    return int(m.get("events", 0)) + int(m.get("dead", 0))


def _appended(client: Any) -> int:
    """Positions ever appended to the stream (Redis >= 7 counts them; else its length)."""
    import redis

    try:
        info = client.xinfo_stream(POSITIONS)
    except redis.ResponseError:  # no stream yet
        return 0
    added = info.get("entries-added", info.get(b"entries-added"))
    return int(added) if added is not None else int(client.xlen(POSITIONS))


class Bench:
    def __init__(self, args: Any, data: Path) -> None:
        self.args = args
        self.data = data
        self.server = RedisServer().start()
        self.client = self.server.client()
        self.tmp = Path(tempfile.mkdtemp(prefix="aa-stream-bench-"))
        self.row = 0
        self.shift_ms = 0
        self.produced = 0
        self.samples = Samples()
        self.stop = threading.Event()
        self.consumer = threading.Thread(target=_consume, args=(self.server.url, self.samples, self.stop),
                                         daemon=True)
        self.consumer.start()
        cmd = [sys.executable, "-m", "adanalytics.stream.cli", "run", "--data", str(data),
               "--redis", self.server.url, "--out", str(self.tmp / "out"),
               "--checkpoint", str(self.tmp / "ckpt"), "--trigger", args.trigger,
               "--max-batch", str(args.max_batch), "--key", args.key,
               ]
        if args.partitions:
            cmd += ["--partitions", str(args.partitions)]
        if args.buckets:
            cmd += ["--buckets", str(args.buckets)]
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYSPARK_PYTHON=sys.executable)
        self.job_log = open(self.tmp / "job.log", "w")  # noqa: SIM115 - closed in close()
        self.job = subprocess.Popen(cmd, env=env, stdout=self.job_log, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def produce(self, rate: float, seconds: float) -> dict[str, Any]:
        q: Any = mp.get_context("spawn").Queue()
        p = mp.get_context("spawn").Process(
            target=_producer, args=(self.server.url, str(self.data), rate, seconds, self.row,
                                    self.shift_ms, q))
        p.start()
        return {"proc": p, "queue": q}

    def wait_drained(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.job.poll() is not None:
                msg = f"the job exited ({self.job.returncode}); see {self.tmp / 'job.log'}"
                raise SystemExit(msg)
            if _processed(self.client) >= self.produced:
                return True
            time.sleep(0.2)
        return False

    def window(self, rate: float, seconds: float) -> Window:
        self.samples.take()
        prod = self.produce(rate, seconds)
        first = prod["queue"].get(timeout=300)  # the producer has loaded its positions
        t0 = time.monotonic() - max(0.0, time.time() - first["started"])
        base = _processed(self.client)
        backlog: list[tuple[float, int]] = []
        while prod["proc"].is_alive():
            time.sleep(0.5)
            backlog.append((time.monotonic() - t0, _appended(self.client) - _processed(self.client)))
        res = prod["queue"].get(timeout=60)
        prod["proc"].join()
        elapsed = time.monotonic() - t0
        self.row = res["next_row"]
        self.produced += res["sent"]
        done = _processed(self.client) - base
        end_backlog = _appended(self.client) - _processed(self.client)
        if res["wrapped"]:
            bc.log(f"  note: past the dataset's {res['n_total']:,} positions; the replay loops "
                   "with timestamps shifted past the campaigns' dates, so suggestions stop "
                   "(use a larger --scale for long runs)")
        half = [(t, b) for t, b in backlog if t >= elapsed / 2]
        slope = float(np.polyfit([t for t, _ in half], [b for _, b in half], 1)[0]) if len(half) >= 3 else 0.0
        lat = np.array(self.samples.take())
        held = end_backlog <= self.args.max_lag * rate and slope <= 0.05 * rate
        w = Window(rate=rate, seconds=elapsed, sent=res["sent"],
                   produce_rate=res["sent"] / res["seconds"], processed_rate=done / elapsed,
                   backlog_end=int(end_backlog), backlog_slope=slope, held=bool(held),
                   suggestions=len(lat),
                   p50_ms=float(np.percentile(lat, 50)) if len(lat) else None,
                   p99_ms=float(np.percentile(lat, 99)) if len(lat) else None,
                   max_ms=float(lat.max()) if len(lat) else None, load=os.getloadavg()[0])
        bc.log(f"  {rate:>8,.0f}/s: produced {w.produce_rate:,.0f}/s, processed "
               f"{w.processed_rate:,.0f}/s, backlog {w.backlog_end:,} (slope {slope:+,.0f}/s), "
               f"{w.suggestions} suggestions, latency p50 {_ms(w.p50_ms)} p99 {_ms(w.p99_ms)}, "
               f"load {w.load:.1f} -> {'held' if held else 'NOT held'}")
        # drain before the next window (not timed)
        if not self.wait_drained(max(60.0, 4 * end_backlog / max(rate, 1))):
            bc.log("  (backlog not drained in time)")
        self.samples.take()
        return w

    def close(self) -> None:
        self.stop.set()
        if self.job.poll() is None:
            os.killpg(self.job.pid, signal.SIGTERM)
            try:
                self.job.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.job.pid, signal.SIGKILL)
        self.job_log.close()
        self.server.stop()
        if not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f} ms"


def main() -> None:
    p = bc.base_parser(__doc__.split("\n\n")[0])
    p.set_defaults(scale="small")
    p.add_argument("--rates", default="1000,5000,20000", help="fixed rates to report (events/s)")
    p.add_argument("--ramp", default="2000,5000,8000,12000,16000,20000,30000",
                   help="rates of the search for the highest rate held ('' to skip)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds per window")
    p.add_argument("--max-lag", type=float, default=2.0,
                   help="a rate is held when the final backlog is below this many seconds of input")
    p.add_argument("--trigger", default="0", help="job trigger interval (default back to back)")
    p.add_argument("--max-batch", type=int, default=100_000)
    p.add_argument("--key", choices=("bucket", "user"), default="bucket")
    p.add_argument("--buckets", type=int, default=None, help="default: the job's")
    p.add_argument("--partitions", type=int, default=None, help="default: the job's")
    p.add_argument("--json", default=None, help="write the results here too")
    p.add_argument("--keep", action="store_true", help="keep the job's output and log")
    args = p.parse_args()
    data = bc.dataset_dir(args)
    bc.log(f"machine: {bc.machine()}")
    from adanalytics.stream.job import JobConfig

    job = JobConfig(data=data, redis_url="", out=Path("."), checkpoint=Path("."),
                    buckets=args.buckets, **({"partitions": args.partitions} if args.partitions else {}))
    bc.log(f"dataset: {data}; job: trigger {args.trigger}, key {args.key}, "
           f"{job.buckets} buckets, {job.partitions} state partitions")
    bench = Bench(args, data)
    results: dict[str, Any] = {"machine": bc.machine(), "args": vars(args), "windows": []}
    try:
        bc.log("warming up (JVM, Python workers, first micro-batches) ...")
        warm = bench.window(500, 20)
        results["warmup"] = asdict(warm)
        if not bench.wait_drained(600):
            bc.log("  the job did not catch up with the warm-up within 10 min")
        bc.log("fixed rates:")
        fixed = [bench.window(float(r), args.duration) for r in args.rates.split(",") if r]
        results["windows"] = [asdict(w) for w in fixed]
        best = max((w.rate for w in fixed if w.held), default=0.0)
        ramp = [float(r) for r in args.ramp.split(",") if r]
        if ramp:
            bc.log("ramp:")
            lost = None
            for r in ramp:
                if r <= best:
                    continue
                w = bench.window(r, args.duration)
                results["windows"].append(asdict(w))
                if w.held:
                    best = r
                else:
                    lost = r
                    break
            if lost is not None:
                lo, hi = best, lost
                for _ in range(2):
                    mid = round((lo + hi) / 2, -2)
                    if mid <= lo or mid >= hi:
                        break
                    w = bench.window(mid, args.duration)
                    results["windows"].append(asdict(w))
                    lo, hi = (mid, hi) if w.held else (lo, mid)
                best = lo
        results["max_held_rate"] = best
    finally:
        bench.close()
    rows = [{"rate/s": f"{w['rate']:,.0f}", "processed/s": f"{w['processed_rate']:,.0f}",
             "backlog end": f"{w['backlog_end']:,}", "held": "yes" if w["held"] else "no",
             "suggestions": w["suggestions"], "p50": _ms(w["p50_ms"]), "p99": _ms(w["p99_ms"]),
             "max": _ms(w["max_ms"]), "load avg": f"{w['load']:.1f}"}
            for w in results["windows"]]
    print()
    bc.print_table(rows, ["rate/s", "processed/s", "backlog end", "held", "suggestions", "p50",
                          "p99", "max", "load avg"])
    print(f"\nhighest rate held: {results['max_held_rate']:,.0f} events/s")
    lat = [w for w in results["windows"] if w["rate"] == 5000 and w["p99_ms"] is not None]
    if lat:
        ok = lat[0]["held"] and lat[0]["p99_ms"] <= 2000
        print(f"target 5k events/s with p99 <= 2 s: {'met' if ok else 'NOT met'} "
              f"(p99 {lat[0]['p99_ms']:,.0f} ms)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
