"""The Dask engine (embedded cluster, 2 workers, persisted tables) against the pandas engine.

    python benchmarks/dask_engine.py --scale medium              # 1e7 location records
    python benchmarks/dask_engine.py --scale medium --sedona     # + SedonaDB's distance join
    python benchmarks/dask_engine.py --scale large --no-pandas --no-persist --repeat 1

For every analysis: wall time of the pandas engine (tables already in memory) and of the
Dask engine (tables persisted in the workers' memory unless ``--no-persist``, then each
analysis reads and validates the Parquet files itself: the out-of-core mode), input
records per second, the speed-up (pandas time / Dask time), and the peak resident memory
of the Dask workers (sum over workers, sampled) and of this process.

On a shared machine wall times follow the other users' load; CPU seconds do not. So the
CPU seconds of every process are reported too, and a "CPU-bound" speed-up: pandas CPU
seconds over those of the busiest Dask process (a worker, or this process, which hosts
the embedded scheduler) - the wall-time ratio on an otherwise idle machine with a core
per worker. ``--paired N`` then times the two engines in alternating rounds, each after
the CPUs went idle: their ratio per round does not follow the VM's drift. Results are
checked to be identical to the pandas engine's. Loading (read + validate) and persisting are
reported separately. ``--json PATH`` writes every figure.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as bc

import adanalytics as aa

#: analysis -> tables it reads (their rows are its input records)
INPUTS: dict[str, tuple[str, ...]] = {
    "ctr": ("interactions",),
    "visits": ("locations",),
    "attribution": ("locations", "interactions"),
    "category_hourly": ("interactions",),
    "interaction_profile": ("interactions",),
    "preferred_ad_category": ("interactions",),
    "visit_profile": ("locations",),
    "preferred_establishment_category": ("locations",),
    "recommendations": ("locations", "interactions"),
}
DEFAULT = "visits,attribution,interaction_profile,visit_profile"
BY_ANALYSES = {"ctr", "visits", "attribution", "category_hourly"}


def _parser() -> Any:
    p = bc.base_parser(__doc__.split("\n\n")[0])
    p.add_argument("--analyses", default=DEFAULT,
                   help=f"comma-separated analyses, or 'all' (default: {DEFAULT})")
    p.add_argument("--by", choices=("total", "month"), default="total",
                   help="grouping of ctr/visits/attribution/category_hourly (default total)")
    p.add_argument("--workers", type=int, default=2, help="embedded Dask workers (default 2)")
    p.add_argument("--threads", type=int, default=1, help="threads per worker (default 1)")
    p.add_argument("--memory-limit", default=None,
                   help="per-worker memory limit (default: 70%% of RAM split between workers)")
    p.add_argument("--scheduler", default=None,
                   help="an existing scheduler instead of the embedded cluster")
    p.add_argument("--shuffle-method", default=None, choices=("p2p", "tasks"),
                   help="by-user shuffle (default: tasks below 5e6 rows, else p2p)")
    p.add_argument("--blocksize", default=None, help="Parquet partition size (Dask default)")
    p.add_argument("--no-persist", action="store_true",
                   help="do not persist: every analysis reads the files (out-of-core)")
    p.add_argument("--no-pandas", action="store_true",
                   help="skip the pandas engine (no speed-up, no result check)")
    p.add_argument("--paired", type=int, default=0, metavar="N",
                   help="then N paired rounds per analysis: the pandas engine, then Dask, "
                        "each started once the CPUs are idle (this VM's speed drifts by up "
                        "to 1.5x within minutes; the separate timings are minutes apart)")
    p.add_argument("--pandas-threads", type=int, default=None,
                   help="threads of the pandas engine's grid look-ups (ADANALYTICS_THREADS; "
                        "default: all cores). 1 = the pandas engine on one core")
    p.add_argument("--sedona", action="store_true",
                   help="also time SedonaDB's ST_DWithin distance join (points projected to "
                        "UTM 25S metres, as benchmarks/visits.py) on the same records")
    p.add_argument("--json", default=None, help="write the figures to this JSON file")
    return p


def sedona_visits(locations: Any, establishments: Any, radius: float, repeat: int) -> dict[str, Any]:
    """Time SedonaDB's distance join on the locations (the functions of benchmarks/visits.py;
    loading the points is not timed)."""
    import sedonadb
    import visits as vb

    lat, lon = locations["lat"].to_numpy(), locations["lon"].to_numpy()
    elat, elon = establishments["lat"].to_numpy(), establishments["lon"].to_numpy()
    con = sedonadb.connect()
    vb.sedona_tables(con, lat, lon, elat, elon, "utm", x=vb.utm(lat, lon), ex=vb.utm(elat, elon))
    cpu0 = time.process_time()
    t = bc.timed(lambda: vb.sedona_join(con, "utm", radius), repeat=repeat)
    cpu = (time.process_time() - cpu0) / max(1, repeat)
    return {"seconds": t.median, "cpu_s": cpu, "records_per_s": len(lat) / t.median,
            "pairs": len(t.result[0])}


class WorkerPeak:
    """Peak summed RSS and CPU seconds of the Dask worker processes (and CPU seconds of
    this process, which hosts the embedded scheduler) while the ``with`` block runs."""

    def __init__(self, pids: list[int], interval: float = 0.05) -> None:
        import psutil

        self.procs = [psutil.Process(p) for p in pids]
        self.interval = interval
        self.peak = 0
        self.peak_one = 0
        self.cpu: list[float] = []
        self.client_cpu = 0.0
        self._cpu0: list[float] = []
        self._client0 = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _cpu_now(self) -> list[float]:
        out = []
        for p in self.procs:
            try:
                t = p.cpu_times()
                out.append(t.user + t.system)
            except Exception:  # a worker restarting
                out.append(0.0)
        return out

    def _sample(self) -> None:
        rss = []
        for p in self.procs:
            try:
                rss.append(p.memory_info().rss)
            except Exception:  # a worker restarting
                rss.append(0)
        self.peak = max(self.peak, sum(rss))
        self.peak_one = max(self.peak_one, max(rss, default=0))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> WorkerPeak:
        self._sample()
        self._cpu0 = self._cpu_now()
        self._client0 = time.process_time()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.cpu = [b - a for a, b in zip(self._cpu0, self._cpu_now(), strict=True)]
        self.client_cpu = time.process_time() - self._client0


def _spilled(client: Any) -> int:
    """Bytes the workers have spilled to disk so far."""
    def spilled(dask_worker: Any) -> int:
        data = dask_worker.data
        total = getattr(data, "spilled_total", None)
        return int(getattr(total, "disk", 0) or 0) if total is not None else 0

    try:
        return sum(client.run(spilled).values())
    except Exception:
        return 0


def _load() -> str:
    """The machine's 1-minute load average (other users skew wall times)."""
    import os

    return f"{os.getloadavg()[0]:.1f}"


def _unwanted_tasks(dask_scheduler: Any) -> int:
    return sum(1 for ts in dask_scheduler.tasks.values()
               if not ts.who_wants and ts.state != "released")


def _settle(client: Any, timeout: float = 30.0) -> None:
    """Wait until the scheduler has forgotten the last run's tasks (only what a client
    holds - the persisted tables, the broadcasts - stays).

    The scheduler releases a computed result asynchronously; a run started before that
    would find the previous run's result under the same key and take ~0 s.
    """
    deadline = time.monotonic() + timeout
    while client.run_on_scheduler(_unwanted_tasks):
        if time.monotonic() > deadline:
            raise RuntimeError("the scheduler still holds the previous run's tasks")
        time.sleep(0.05)


def _call(ds: aa.Dataset, name: str, by: str) -> Any:
    fn = getattr(ds, name)
    return fn(by=by) if name in BY_ANALYSES else fn()


def paired_rounds(pds: aa.Dataset, dds: aa.Dataset, names: list[str],
                  args: Any) -> dict[str, Any]:
    """``args.paired`` rounds per analysis of the pandas engine then Dask, each once the
    CPUs are idle; prints each round and the median and range of the per-round ratios."""
    import numpy as np

    client = dds.engine.client
    res: dict[str, Any] = {}
    table = []
    for name in names:
        rounds = []
        for _ in range(args.paired):
            if args.pandas_threads is not None:
                os.environ["ADANALYTICS_THREADS"] = str(args.pandas_threads)
            bc.settle()
            t0 = time.perf_counter()
            _call(pds, name, args.by)
            tp = time.perf_counter() - t0
            os.environ.pop("ADANALYTICS_THREADS", None)
            bc.settle()
            t0 = time.perf_counter()
            aa.to_pandas(_call(dds, name, args.by))
            td = time.perf_counter() - t0
            _settle(client)
            rounds.append((tp, td))
            bc.log(f"paired round {name}: pandas {tp:.3f} s, dask {td:.3f} s: x{tp / td:.2f}")
        ratios = sorted(tp / td for tp, td in rounds)
        res[name] = {"rounds_s": rounds, "speedups": ratios,
                     "median_speedup": float(np.median(ratios))}
        table.append({
            "analysis": name,
            "pandas s (median)": f"{np.median([r[0] for r in rounds]):.3f}",
            "dask s (median)": f"{np.median([r[1] for r in rounds]):.3f}",
            "dask/pandas per round: median": f"{np.median(ratios):.2f}x",
            "range": f"{ratios[0]:.2f}-{ratios[-1]:.2f}x",
        })
    print(f"\npaired rounds (pandas engine, then dask, x{args.paired}, each after the CPUs "
          f"went idle)")
    bc.print_table(table, list(table[0]) if table else [])
    return res


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    names = list(INPUTS) if args.analyses == "all" else [a.strip() for a in args.analyses.split(",")]
    unknown = [n for n in names if n not in INPUTS]
    if unknown:
        raise SystemExit(f"unknown analyses {unknown}; choose from {', '.join(INPUTS)}")
    path = bc.dataset_dir(args)
    bc.log(f"dataset {path}")
    out: dict[str, Any] = {"machine": bc.machine(), "dataset": str(path), "scale": args.scale,
                           "by": args.by, "persist": not args.no_persist, "analyses": {}}

    expected: dict[str, Any] = {}
    pandas_s: dict[str, float] = {}
    pandas_cpu: dict[str, float] = {}
    rows: dict[str, int] = {}
    if not args.no_pandas:
        t0 = time.perf_counter()
        pds = aa.open_dataset(str(path), engine="pandas")
        out["pandas_load_s"] = time.perf_counter() - t0
        rows = dict(pds.validation.rows)
        bc.log(f"pandas: loaded in {out['pandas_load_s']:.1f} s ({rows})")
        if args.pandas_threads is not None:  # read per query by adanalytics.geo
            os.environ["ADANALYTICS_THREADS"] = str(args.pandas_threads)
            out["pandas_threads"] = args.pandas_threads
        for name in names:
            cpu0 = time.process_time()
            t = bc.timed(lambda name=name: _call(pds, name, args.by), repeat=args.repeat)
            pandas_cpu[name] = (time.process_time() - cpu0) / max(1, args.repeat)
            expected[name], pandas_s[name] = t.result, t.median
            bc.log(f"pandas {name}: {t.median:.2f} s, CPU {pandas_cpu[name]:.2f} s "
                   f"(peak RSS {bc.fmt_bytes(t.peak_rss)}; load {_load()})")
        if args.sedona:
            out["sedona"] = sedona_visits(pds.tables.locations, pds.tables.establishments,
                                          50.0, args.repeat)
            bc.log(f"SedonaDB ST_DWithin (UTM, 50 m): {out['sedona']['seconds']:.2f} s, "
                   f"CPU {out['sedona']['cpu_s']:.2f} s, {out['sedona']['pairs']:,} pairs")
        os.environ.pop("ADANALYTICS_THREADS", None)
        if not args.paired:
            del pds

    conn: dict[str, Any] = {"n_workers": args.workers, "threads_per_worker": args.threads}
    if args.scheduler:
        conn = {"address": args.scheduler}
    if args.memory_limit:
        conn["memory_limit"] = args.memory_limit
    for key in ("shuffle_method", "blocksize"):
        if getattr(args, key):
            conn[key] = getattr(args, key)
    t0 = time.perf_counter()
    dds = aa.open_dataset(str(path), engine="dask", **conn)
    out["dask_load_s"] = time.perf_counter() - t0
    rows = rows or dict(dds.validation.rows)
    client = dds.engine.client
    pids = list(client.run(__import__("os").getpid).values())
    out["workers"] = len(pids)
    bc.log(f"dask: opened (read + validate) in {out['dask_load_s']:.1f} s on {len(pids)} workers; "
           f"dashboard {dds.engine.dashboard_link}")
    if not args.no_persist:
        with WorkerPeak(pids) as mem:
            t0 = time.perf_counter()
            dds.persist()
            out["dask_persist_s"] = time.perf_counter() - t0
        out["dask_persist_worker_peak_rss"] = mem.peak
        bc.log(f"dask: persisted in {out['dask_persist_s']:.1f} s "
               f"(workers' RSS {bc.fmt_bytes(mem.peak)})")

    table = []
    for name in names:
        n_in = sum(rows[t] for t in INPUTS[name])
        spilled0 = _spilled(client)
        t = bc.Timing()
        with WorkerPeak(pids) as mem, bc.PeakRSS(interval=0.05) as client_mem:
            for _ in range(max(1, args.repeat)):
                t0 = time.perf_counter()
                t.result = aa.to_pandas(_call(dds, name, args.by))
                t.seconds.append(time.perf_counter() - t0)
                _settle(client)
        t.peak_rss = client_mem.peak
        reps = max(1, args.repeat)
        rec: dict[str, Any] = {
            "records": n_in, "dask_s": t.median, "dask_runs_s": t.seconds,
            "dask_cpu_s": (sum(mem.cpu) + mem.client_cpu) / reps,
            "dask_cpu_busiest_s": max([*mem.cpu, mem.client_cpu]) / reps,
            "dask_worker_cpu_s": [c / reps for c in mem.cpu], "dask_client_cpu_s": mem.client_cpu / reps,
            "load_average": _load(),
            "dask_records_per_s": n_in / t.median,
            "worker_peak_rss": mem.peak, "worker_peak_rss_one": mem.peak_one,
            "client_peak_rss": t.peak_rss, "spilled_bytes": _spilled(client) - spilled0,
            "result_rows": len(t.result),
        }
        if name in expected:
            import pandas as pd

            pd.testing.assert_frame_equal(t.result, expected[name], check_exact=True)
            rec.update(pandas_s=pandas_s[name], pandas_records_per_s=n_in / pandas_s[name],
                       speedup=pandas_s[name] / t.median, identical=True,
                       pandas_cpu_s=pandas_cpu[name],
                       cpu_speedup=pandas_cpu[name] / rec["dask_cpu_busiest_s"])
        out["analyses"][name] = rec
        bc.log(f"dask {name}: {t.median:.2f} s, CPU {rec['dask_cpu_s']:.2f} s (busiest process "
               f"{rec['dask_cpu_busiest_s']:.2f} s; load {rec['load_average']})"
               + (f" x{rec['speedup']:.2f} pandas" if "speedup" in rec else ""))
        table.append({
            "analysis": name, "records": f"{n_in:,}",
            "pandas s": f"{rec['pandas_s']:.2f}" if "pandas_s" in rec else "-",
            "dask s": f"{t.median:.2f}",
            "pandas rec/s": f"{rec['pandas_records_per_s']:,.0f}" if "pandas_s" in rec else "-",
            "dask rec/s": f"{rec['dask_records_per_s']:,.0f}",
            "dask/pandas": f"{rec['speedup']:.2f}x" if "speedup" in rec else "-",
            "pandas CPU s": f"{rec['pandas_cpu_s']:.2f}" if "pandas_s" in rec else "-",
            "dask CPU s (busiest)": f"{rec['dask_cpu_s']:.2f} ({rec['dask_cpu_busiest_s']:.2f})",
            "CPU-bound dask/pandas": f"{rec['cpu_speedup']:.2f}x" if "speedup" in rec else "-",
            "workers peak RSS": bc.fmt_bytes(mem.peak),
            "client peak RSS": bc.fmt_bytes(t.peak_rss),
            "spilled": bc.fmt_bytes(rec["spilled_bytes"]),
        })

    print(f"\nDask engine vs pandas engine - {bc.machine()}")
    if args.pandas_threads is not None:
        print(f"pandas engine with ADANALYTICS_THREADS={args.pandas_threads}")
    print(f"dataset {path} ({', '.join(f'{k} {v:,}' for k, v in rows.items())}); "
          f"by={args.by}; {len(pids)} workers x {args.threads} thread(s); "
          f"{'persisted' if not args.no_persist else 'read from Parquet per analysis'}; "
          f"median of {args.repeat}")
    extra = f"; persist {out['dask_persist_s']:.1f} s" if "dask_persist_s" in out else ""
    print(f"load: dask {out['dask_load_s']:.1f} s"
          + (f", pandas {out['pandas_load_s']:.1f} s" if "pandas_load_s" in out else "") + extra)
    bc.print_table(table, list(table[0]) if table else [])
    if "sedona" in out and "visits" in out["analyses"]:
        sd, v = out["sedona"], out["analyses"]["visits"]
        out["visits_vs_sedona"] = v["dask_records_per_s"] / sd["records_per_s"]
        print(f"SedonaDB ST_DWithin join (UTM 25S, 50 m; pairs only, no counting): "
              f"{sd['seconds']:.2f} s = {sd['records_per_s']:,.0f} records/s (CPU {sd['cpu_s']:.2f} s); "
              f"dask visits / SedonaDB throughput = {out['visits_vs_sedona']:.2f}x")
    if args.paired and not args.no_pandas:
        out["paired"] = paired_rounds(pds, dds, names, args)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    dds.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
