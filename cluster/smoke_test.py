"""Provisioning smoke test of the adanalytics cluster, run on any provisioned node.

    .venv/bin/python cluster/smoke_test.py [--workers 2] [--skip-spark] [--json]

Reads the cluster's client environment ($ADANALYTICS_HOME/client.env), then:

- Dask: connects with the cluster's TLS credentials, checks that client, scheduler and
  workers run the same versions (``client.get_versions(check=True)``), runs a job and
  reports which workers executed its tasks;
- Spark: starts a session against the standalone master with the cluster's secret, runs
  a job and reports which hosts its tasks ran on.

Exit 0 when both jobs ran on at least ``--workers`` distinct workers, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from typing import Any

from adanalytics import cluster_config


def local_address(peer: str) -> str:
    """The address this process uses to reach ``peer`` (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((peer, 9))
        return s.getsockname()[0]


def _host(url: str) -> str:
    return url.split("://", 1)[-1].rsplit(":", 1)[0]


def _where_dask(i: int, seconds: float) -> tuple[int, str]:
    from distributed import get_worker

    time.sleep(seconds)
    return i, get_worker().address


def dask_check(address: str, tasks: int, seconds: float) -> dict[str, Any]:
    from distributed import Client

    start = time.perf_counter()
    with Client(address, security=cluster_config.dask_security(required=True), timeout=30) as client:
        versions = client.get_versions(check=True)
        workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
        futures = client.map(_where_dask, range(tasks), seconds=seconds, pure=False)
        ran = client.gather(futures)
    used = sorted({w for _, w in ran})
    return {
        "scheduler": address,
        "workers": workers,
        "workers_used": used,
        "tasks": len(ran),
        "python": versions["scheduler"]["packages"]["python"],
        "distributed": versions["scheduler"]["packages"]["distributed"],
        "seconds": round(time.perf_counter() - start, 2),
    }


def spark_check(master: str, partitions: int, seconds: float) -> dict[str, Any]:
    from pyspark.sql import SparkSession

    start = time.perf_counter()
    builder = SparkSession.builder.master(master).appName("adanalytics-smoke-test")
    for key, value in cluster_config.spark_conf(required=True).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    try:
        peer = _host(master)

        def where(rows: Any) -> Any:
            time.sleep(seconds)
            yield local_address(peer), sum(1 for _ in rows)

        rdd = spark.sparkContext.parallelize(range(partitions * 1000), partitions)
        ran = rdd.mapPartitions(where).collect()
        version = spark.version
    finally:
        spark.stop()
    return {
        "master": master,
        "hosts_used": sorted({h for h, _ in ran}),
        "rows": sum(n for _, n in ran),
        "spark": version,
        "seconds": round(time.perf_counter() - start, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="workers each job must use")
    parser.add_argument("--tasks", type=int, default=16, help="Dask tasks / Spark partitions")
    parser.add_argument("--seconds", type=float, default=0.5, help="duration of one task")
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--skip-spark", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    cluster_config.load_client_env()
    report: dict[str, Any] = {"cluster": cluster_config.describe()}
    ok = True
    if not args.skip_dask:
        address = os.environ.get(cluster_config.DASK_ADDRESS_ENV)
        if not address:
            print("DASK_SCHEDULER_ADDRESS is not set and no client.env found", file=sys.stderr)
            return 1
        report["dask"] = dask = dask_check(address, args.tasks, args.seconds)
        ok &= len(dask["workers_used"]) >= args.workers
    if not args.skip_spark:
        master = os.environ.get(cluster_config.SPARK_MASTER_ENV)
        if not master:
            print("SPARK_MASTER is not set and no client.env found", file=sys.stderr)
            return 1
        report["spark"] = spark = spark_check(master, args.tasks, args.seconds)
        ok &= len(spark["hosts_used"]) >= args.workers
    report["ok"] = bool(ok)
    if args.json:
        print(json.dumps(report))
    else:
        for engine in ("dask", "spark"):
            if engine in report:
                print(f"{engine}: {json.dumps(report[engine])}")
        print("OK" if ok else f"FAILED: fewer than {args.workers} workers used")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
