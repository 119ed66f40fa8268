"""The real-time path (SPEC §5): Redis producer, Spark streaming job, maps.

>>> from adanalytics.stream import RedisServer, JobConfig, StreamJob, produce_dataset
>>> with RedisServer() as redis:                                   # doctest: +SKIP
...     produce_dataset("data/sample", redis.url, rate=5000)
...     job = StreamJob(JobConfig(data="data/sample", redis_url=redis.url,
...                               out="out/stream", checkpoint="out/ckpt"))
...     summary = job.run(stop_when_idle=10)

Modules: :mod:`~adanalytics.stream.messages` (the message contract and dead-letter rules),
:mod:`~adanalytics.stream.source` (the ``redis-stream`` Spark data source),
:mod:`~adanalytics.stream.kernel` (the per-group rule, in pandas),
:mod:`~adanalytics.stream.job` (the query), :mod:`~adanalytics.stream.sink` (exactly-once
outputs), :mod:`~adanalytics.stream.producer`, :mod:`~adanalytics.stream.maps`,
:mod:`~adanalytics.stream.redis_server`, :mod:`~adanalytics.stream.cli` and
:mod:`~adanalytics.stream.demo`. Names below are imported on first use (pyspark and redis
stay unimported until needed).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RedisServer": "adanalytics.stream.redis_server",
    "JobConfig": "adanalytics.stream.job",
    "StreamJob": "adanalytics.stream.job",
    "StreamSummary": "adanalytics.stream.job",
    "run_stream": "adanalytics.stream.job",
    "produce": "adanalytics.stream.producer",
    "produce_dataset": "adanalytics.stream.producer",
    "positions_frame": "adanalytics.stream.producer",
    "make_maps": "adanalytics.stream.maps",
    "read_parquet_dir": "adanalytics.stream.sink",
    "run_demo_stream": "adanalytics.stream.demo",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
