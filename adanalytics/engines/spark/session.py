"""The process-wide SparkSession every Spark dataset of a process shares.

Spark allows one SparkContext per process (one JVM driver), so the session is a
singleton: the first :class:`~adanalytics.engines.spark.engine.SparkEngine` creates it
(``getOrCreate``), later ones reuse it. It connects to ``master=`` or ``SPARK_MASTER``
(``spark://host:7077``), else runs embedded ``local[2]``.

A standalone client retries an unreachable master for a long time before giving up, so
the master is probed with a plain TCP connection first (a clear
:class:`~adanalytics.errors.ClusterConnectionError` naming the URL within
``connect_timeout`` seconds), and the first job on a cluster must finish within
``executor_timeout`` seconds (a master without live workers would otherwise leave jobs
waiting for executors forever).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from typing import TYPE_CHECKING, Any

from adanalytics.errors import ClusterConnectionError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("adanalytics")

#: Embedded master when neither ``master=`` nor ``SPARK_MASTER`` is given.
LOCAL_MASTER = "local[2]"
DEFAULT_PORT = 7077
#: Seconds to wait for a TCP connection to the master.
CONNECT_TIMEOUT_S = float(os.environ.get("ADANALYTICS_SPARK_CONNECT_TIMEOUT", "5"))
#: Seconds the first job on a cluster may take (executors must register and run it).
EXECUTOR_TIMEOUT_S = float(os.environ.get("ADANALYTICS_SPARK_EXECUTOR_TIMEOUT", "120"))

#: Defaults of the session; ``conf=`` entries override them. Few shuffle partitions:
#: adaptive query execution coalesces small shuffles and splits skewed ones, and the
#: ``large`` preset still sorts in bounded memory (Spark spills) with 16 partitions.
DEFAULT_CONF: dict[str, str] = {
    "spark.sql.shuffle.partitions": "16",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
    "spark.sql.adaptive.skewJoin.enabled": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.showConsoleProgress": "true",
    "spark.driver.memory": os.environ.get("ADANALYTICS_SPARK_DRIVER_MEMORY", "4g"),
    # cached tables are scanned column-wise in batches of this many rows
    "spark.sql.inMemoryColumnarStorage.batchSize": "20000",
}

_lock = threading.RLock()
_session: SparkSession | None = None
_master: str | None = None


def resolve_master(master: str | None) -> str:
    """``master``, else ``$SPARK_MASTER``, else the embedded ``local[2]``."""
    return master or os.environ.get("SPARK_MASTER") or LOCAL_MASTER


def master_endpoints(url: str) -> list[tuple[str, int]]:
    """(host, port) of each master of a ``spark://h1:p1[,h2:p2]`` URL."""
    if not url.startswith("spark://"):
        msg = f"a Spark standalone master URL looks like spark://host:7077, got {url!r}"
        raise ClusterConnectionError(msg)
    out = []
    for part in url[len("spark://"):].split(","):
        host, sep, port = part.strip().rstrip("/").rpartition(":")
        if not sep:
            host, port = port, str(DEFAULT_PORT)
        try:
            out.append((host.strip("[]"), int(port)))
        except ValueError as exc:
            msg = f"bad port in Spark master URL {url!r}: {port!r}"
            raise ClusterConnectionError(msg) from exc
    return out


def probe_master(url: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise :class:`ClusterConnectionError` unless some master of ``url`` accepts a
    TCP connection within ``timeout`` seconds (``local[...]`` masters are not probed)."""
    if url.startswith("local"):
        return
    errors = []
    for host, port in master_endpoints(url):
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return
        except OSError as exc:
            errors.append(f"{host}:{port}: {exc.strerror or exc}")
    msg = (
        f"cannot reach the Spark master {url} ({'; '.join(errors)}). Start it "
        f"(./bootstrap.sh master), or pass master= / set SPARK_MASTER to a running master, "
        f"or leave both unset to run an embedded {LOCAL_MASTER} session."
    )
    raise ClusterConnectionError(msg)


def _check_executors(spark: SparkSession, url: str, timeout: float) -> None:
    """Run one tiny job; a cluster that cannot run it within ``timeout`` is an error."""
    result: dict[str, Any] = {}

    def job() -> None:
        try:
            result["n"] = spark.range(0, 2, 1, 2).count()
        except Exception as exc:  # surfaced below as a connection error
            result["error"] = exc

    t = threading.Thread(target=job, name="adanalytics-spark-probe", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive() or "error" in result:
        detail = (f"no executor ran a job within {timeout:.0f} s (are the workers up, with "
                  f"enough free cores and memory?)" if t.is_alive() else str(result["error"]))
        try:
            spark.sparkContext.cancelAllJobs()
        finally:
            stop_session()
        msg = f"the Spark master {url} accepted the connection but the cluster is not usable: {detail}"
        raise ClusterConnectionError(msg)


def get_session(master: str | None = None, app_name: str = "adanalytics",
                conf: dict[str, Any] | None = None) -> SparkSession:
    """The process-wide SparkSession (created on first use).

    Parameters
    ----------
    master:
        ``spark://host:port`` of a standalone master, or ``local[N]``; default
        ``$SPARK_MASTER``, else ``local[2]``.
    app_name:
        Application name shown by the master and the Spark UI.
    conf:
        Extra Spark configuration (overrides :data:`DEFAULT_CONF`). Static options such
        as ``spark.driver.memory`` only apply when this call starts the JVM.

    Raises
    ------
    ClusterConnectionError
        The master cannot be reached, or its cluster runs no job in time; or a session
        on another master already runs in this process.
    """
    global _session, _master
    url = resolve_master(master)
    explicit = bool(master or os.environ.get("SPARK_MASTER"))
    with _lock:
        if _session is not None and _alive(_session):
            if explicit and url != _master:
                msg = (f"this process already runs a Spark session on {_master}; Spark allows "
                       f"one per process, so {url} cannot be used here (restart the kernel, "
                       f"or use a subprocess)")
                raise ClusterConnectionError(msg)
            _apply_runtime_conf(_session, conf)
            return _session
        probe_master(url)
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None and _alive(active) and not explicit:
            # a session the notebook made itself: use it as it is
            _session, _master = active, active.sparkContext.master
            _apply_runtime_conf(active, conf)
            return active
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = SparkSession.builder.master(url).appName(app_name)
        for k, v in {**DEFAULT_CONF, **{k: str(v) for k, v in (conf or {}).items()}}.items():
            builder = builder.config(k, v)
        log.info("starting Spark session on %s", url)
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel(os.environ.get("ADANALYTICS_SPARK_LOG_LEVEL", "ERROR"))
        _session, _master = spark, url
        if not url.startswith("local"):
            _check_executors(spark, url, EXECUTOR_TIMEOUT_S)
        return spark


def _apply_runtime_conf(spark: SparkSession, conf: dict[str, Any] | None) -> None:
    for k, v in (conf or {}).items():
        try:
            spark.conf.set(k, str(v))
        except Exception:  # static options cannot change on a running session
            log.warning("Spark option %s cannot be changed on the running session", k)


def _alive(spark: SparkSession) -> bool:
    try:
        return not spark.sparkContext._jsc.sc().isStopped()  # type: ignore[union-attr]
    except Exception:
        return False


def stop_session() -> None:
    """Stop the process-wide session (the next engine starts a new one)."""
    global _session, _master
    with _lock:
        if _session is not None:
            try:
                _session.stop()
            finally:
                _session, _master = None, None


def current_master() -> str | None:
    """Master URL of the running session, if any."""
    return _master
