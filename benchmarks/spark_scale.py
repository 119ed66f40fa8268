"""Every analysis on the Spark engine at a given scale (default: the ``large`` preset,
1e8 location records), out of core: wall time and peak memory per analysis.

    python benchmarks/spark_scale.py --scale large                 # read from Parquet
    python benchmarks/spark_scale.py --scale large --persist       # cache first
    python benchmarks/spark_scale.py --data DIR --driver-memory 4g

Peak memory is the resident memory of the whole process tree (this Python process,
the driver JVM and its Python workers), sampled every 0.2 s while each step runs; the
JVM heap is bounded by ``--driver-memory`` and Spark spills sorts, shuffles and cached
blocks to disk beyond it. Each result is collected to pandas (that is part of the time).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as bc

import adanalytics as aa
from adanalytics.dataset import ANALYSES, BY_ANALYSES


def _parser() -> Any:
    p = bc.base_parser(__doc__.split("\n\n")[0])
    p.set_defaults(scale="large")
    p.add_argument("--persist", action="store_true", help="persist() the tables first")
    p.add_argument("--driver-memory", default="4g")
    p.add_argument("--shuffle-partitions", type=int, default=0,
                   help="spark.sql.shuffle.partitions (default: the engine's)")
    p.add_argument("--only", default="", help="comma-separated analyses (default: all)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    path = str(bc.dataset_dir(args))
    conf: dict[str, Any] = {"spark.driver.memory": args.driver_memory}
    if args.shuffle_partitions:
        conf["spark.sql.shuffle.partitions"] = args.shuffle_partitions
    only = [a.strip().replace("-", "_") for a in args.only.split(",") if a.strip()]
    rows: list[dict[str, Any]] = []
    load0 = os.getloadavg()

    def step(name: str, fn: Any) -> Any:
        bc.log(f"{name} ...")
        with bc.PeakRSS(interval=0.2, tree=True) as mem:
            t0 = time.perf_counter()
            out = fn()
            dt = time.perf_counter() - t0
        rows.append({"step": name, "seconds": f"{dt:,.1f}", "peak RSS (tree)": bc.fmt_bytes(mem.peak),
                     "result": "" if out is None else f"{out:,} rows"})
        bc.log(f"{name}: {dt:,.1f} s, peak {bc.fmt_bytes(mem.peak)}")
        return out

    holder: dict[str, aa.Dataset] = {}

    def open_ds() -> None:
        holder["ds"] = aa.open_dataset(path, engine="spark", conf=conf)

    step("open_dataset (read + validate)", open_ds)
    ds = holder["ds"]
    n = ds.validation.rows["locations"]
    if args.persist:
        step("persist()", lambda: ds.persist() and None)
    for name in ANALYSES:
        if only and name not in only:
            continue
        for by in (("total", "month") if name in BY_ANALYSES else ("total",)):
            step(f"{name}(by={by})" if name in BY_ANALYSES else f"{name}()",
                 lambda name=name, by=by: len(aa.to_pandas(ds.run(name, by=by))))
    spark = ds.engine.spark
    print()
    print(f"command: python benchmarks/spark_scale.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"machine: {bc.machine()}; spark {spark.version} {spark.sparkContext.master}, "
          f"driver memory {args.driver_memory}")
    print(f"dataset: {path} ({n:,} location records, "
          f"{ds.validation.rows['interactions']:,} interactions)")
    load1 = os.getloadavg()
    print(f"load average before/after: {load0[0]:.1f} / {load1[0]:.1f}")
    bc.print_table(rows, ["step", "seconds", "peak RSS (tree)", "result"])
    ds.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
