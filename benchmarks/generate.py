"""Benchmark the synthetic data generator (``adanalytics generate``).

Usage::

    python benchmarks/generate.py --scale medium            # writes to a temporary dir
    python benchmarks/generate.py --scale small --out data/small --keep

Prints location records per second of wall time, wall time, CPU time (user + system, all
threads), peak resident memory and the machine's load average - on a shared machine the
load tells how much of the wall time other processes took.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale", default="small", help="tiny|small|medium|large or a record count"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="output directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the generated dataset")
    parser.add_argument("--progress", action="store_true", help="show the progress bar")
    args = parser.parse_args(argv)

    from adanalytics.synth import generate  # imported here: pandas import time is not generation

    tmp = None
    if args.out is None:
        tmp = tempfile.mkdtemp(prefix="adanalytics-bench-")
        out = Path(tmp) / "data"
    else:
        out = Path(args.out)
    load_before = os.getloadavg()
    cpu0 = _cpu_seconds()
    wall0 = time.perf_counter()
    try:
        result = generate(out, scale=args.scale, seed=args.seed, progress=args.progress)
        wall = time.perf_counter() - wall0
        cpu = _cpu_seconds() - cpu0
        size = _dir_size(out)
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    try:
        import psutil

        peak_kib = max(peak_kib, psutil.Process().memory_info().rss // 1024)
    except ImportError:  # pragma: no cover - psutil is a dependency, but stay runnable
        pass
    load_after = os.getloadavg()
    rows = result.rows
    print(f"scale            {args.scale} (seed {args.seed}), {os.cpu_count()} CPUs")
    print(f"locations        {rows['locations']:,}")
    print(f"interactions     {rows['interactions']:,}")
    print(
        f"establishments   {rows['establishments']:,}  campaigns {rows['campaigns']:,}  ads {rows['ads']:,}"
    )
    print(f"wall time        {wall:.2f} s")
    print(f"records/s        {rows['locations'] / wall:,.0f}")
    print(f"cpu time         {cpu:.2f} s ({cpu / wall:.2f} cores busy on average)")
    print(f"records/cpu-s    {rows['locations'] / cpu:,.0f}")
    print(f"peak RSS         {peak_kib / 1024:,.0f} MiB")
    print(f"output size      {size / 2**20:,.0f} MiB")
    print(f"load average     {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    if args.keep or args.out is not None:
        print(f"dataset          {result.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
