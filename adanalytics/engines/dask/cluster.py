"""Where the Dask engine runs: a scheduler named by address, or one embedded cluster.

The embedded :class:`~distributed.LocalCluster` (a scheduler plus 2 worker processes) is
a process-wide singleton: every Dataset and engine of the process shares it, so tests
and notebooks never start several, and it is closed when the interpreter exits.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
from typing import TYPE_CHECKING, Any

from adanalytics.errors import ClusterConnectionError

if TYPE_CHECKING:
    from distributed import Client, LocalCluster
    from distributed.security import Security

log = logging.getLogger("adanalytics")

#: Environment variable naming the scheduler (as in Dask itself).
ADDRESS_ENV = "DASK_SCHEDULER_ADDRESS"
#: Seconds to wait for a scheduler before giving up with a clear error.
CONNECT_TIMEOUT_S = 10.0
#: Preferred dashboard port of the embedded cluster (a free one is taken when busy).
DASHBOARD_PORT = 8787
#: Share of the machine's memory the embedded workers may use together; the rest is
#: left to the client process (which holds the small tables and the final results) and
#: to the page cache. Workers spill to disk from 60 % of their own limit.
WORKER_MEMORY_SHARE = 0.7

#: Environment variables the embedded workers follow from the client process (they are
#: started once per process, so later changes - e.g. S3 credentials - would not reach
#: them otherwise).
SHARED_ENV_PREFIXES: tuple[str, ...] = ("AWS_", "ADANALYTICS_")

_lock = threading.Lock()
_embedded: dict[str, Any] = {}


def scheduler_address(address: str | None) -> str | None:
    """The scheduler to connect to: ``address``, else ``$DASK_SCHEDULER_ADDRESS``, else None.

    On a provisioned cluster node (``bootstrap.sh``), ``client.env`` fills in the
    variables not already set (see :mod:`adanalytics.cluster_config`).
    """
    from adanalytics import cluster_config

    cluster_config.load_client_env()
    return address or os.environ.get(ADDRESS_ENV, "").strip() or None


#: glibc allocator settings of the workers. Dask starts them with
#: ``MALLOC_TRIM_THRESHOLD_=65536`` (to hand freed memory back to the system), and setting
#: any such variable also freezes glibc's mmap threshold at 128 KiB: every temporary
#: array above it is then a fresh ``mmap`` whose pages fault in one by one. The kernels
#: allocate many of a few MiB per partition: they ran ~1.6x slower in a worker than in a
#: plain process (visit totals of 370k records: 28 ms against 17 ms). Temporaries below
#: this threshold come from the heap again.
MALLOC_MMAP_THRESHOLD = 32 << 20
#: Free memory at the top of a worker's heap beyond this is handed back to the system.
#: At Dask's 64 KiB, the temporaries a kernel frees at the end of one partition were
#: returned and faulted in again, page by page, by the next: visit totals of 2.5M records
#: took 176 ms in a worker at 64 KiB and 155 ms at 1 GiB (8.7k against 5.6k page faults
#: per task); the Dask visits of 1e7 persisted records 0.37 s against 0.30 s. A worker
#: keeps at most this much freed heap for its next task (against its ~8 GiB limit).
#: ``cluster/cluster.sh`` gives its Dask workers the same settings.
MALLOC_TRIM_THRESHOLD = 128 << 20
#: Dask's own ``MALLOC_TRIM_THRESHOLD_`` (replaced; a value configured otherwise is kept)
_DASK_TRIM_THRESHOLD = "65536"


def worker_environ() -> dict[str, str]:
    """The environment a Dask nanny sets before it spawns its worker: Dask's own, with
    :data:`MALLOC_MMAP_THRESHOLD` and :data:`MALLOC_TRIM_THRESHOLD` (the latter unless
    configured to something else than Dask's default; variables set in the environment
    of the process win over both, as Dask reads them)."""
    import dask

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ") or {})
    env.setdefault("MALLOC_MMAP_THRESHOLD_", str(MALLOC_MMAP_THRESHOLD))
    if str(env.get("MALLOC_TRIM_THRESHOLD_", _DASK_TRIM_THRESHOLD)) == _DASK_TRIM_THRESHOLD:
        env["MALLOC_TRIM_THRESHOLD_"] = str(MALLOC_TRIM_THRESHOLD)
    return env


def default_memory_limit(n_workers: int) -> int:
    """Bytes per embedded worker: ``WORKER_MEMORY_SHARE`` of the machine, split evenly."""
    from distributed.system import MEMORY_LIMIT  # honours cgroup limits

    return int(MEMORY_LIMIT * WORKER_MEMORY_SHARE / max(1, n_workers))


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _dashboard_address(dashboard: bool | str) -> str | None:
    if dashboard is False or dashboard is None:
        return None
    if isinstance(dashboard, str):
        return dashboard
    # A busy 8787 (another notebook's cluster) would only warn and disable the
    # dashboard: take a free port instead.
    return f":{DASHBOARD_PORT}" if _port_free(DASHBOARD_PORT) else ":0"


def embedded_client(
    n_workers: int = 2,
    threads_per_worker: int = 1,
    memory_limit: int | str | None = None,
    dashboard: bool | str = True,
) -> Client:
    """The client of the process-wide embedded cluster, started on first use.

    Parameters
    ----------
    n_workers, threads_per_worker, memory_limit, dashboard:
        Used when the cluster is started; a running cluster is reused as it is.
    """
    with _lock:
        client = _embedded.get("client")
        if client is not None and client.status == "running":
            return client
        import dask
        from distributed import Client, LocalCluster

        # The embedded scheduler runs in this process: its peer-to-peer shuffle plugin
        # logs every shuffle start and end at WARNING level, which is routine here.
        logging.getLogger("distributed.shuffle._scheduler_plugin").setLevel(logging.ERROR)
        with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ()}):
            cluster: LocalCluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=threads_per_worker,
                processes=True,
                memory_limit=(memory_limit if memory_limit is not None
                              else default_memory_limit(n_workers)),
                dashboard_address=_dashboard_address(dashboard),
            )
        client = Client(cluster)
        if not _embedded.get("atexit"):
            atexit.register(close_embedded)
            _embedded["atexit"] = True
        _embedded.update(cluster=cluster, client=client)
        link = client.dashboard_link if dashboard else "disabled"
        print(
            f"adanalytics: started an embedded Dask cluster ({n_workers} workers x "
            f"{threads_per_worker} thread(s)) at {cluster.scheduler_address}; dashboard: {link}",
            flush=True,
        )
        return client


def _set_environment(env: dict[str, str], prefixes: tuple[str, ...]) -> None:
    for key in [k for k in os.environ if k.startswith(prefixes) and k not in env]:
        del os.environ[key]
    os.environ.update(env)


def share_environment(client: Client) -> None:
    """Give the embedded workers this process's ``AWS_*`` / ``ADANALYTICS_*`` variables."""
    env = {k: v for k, v in os.environ.items() if k.startswith(SHARED_ENV_PREFIXES)}
    client.run(_set_environment, env, SHARED_ENV_PREFIXES)


def embedded_cluster() -> LocalCluster | None:
    """The running embedded cluster, if any."""
    return _embedded.get("cluster")


def close_embedded() -> None:
    """Stop the embedded cluster (registered with :mod:`atexit`)."""
    with _lock:
        client = _embedded.pop("client", None)
        cluster = _embedded.pop("cluster", None)
        for thing in (client, cluster):
            if thing is None:
                continue
            try:
                thing.close()
            except Exception as exc:  # closing at exit must never raise
                log.debug("closing the embedded Dask cluster: %s", exc)


def _security(address: str, security: Security | dict[str, Any] | bool | None) -> Any:
    """The :class:`~distributed.security.Security` for ``address``.

    ``None`` means: for a ``tls://`` address, the cluster's client credentials
    (:func:`adanalytics.cluster_config.dask_security`: ``DASK_DISTRIBUTED__COMM__TLS__*``
    or the node's security directory), else the ``distributed.comm.tls`` settings of the
    Dask configuration; otherwise no security. A dict is passed to ``Security(**dict)``.
    """
    from distributed.security import Security

    from adanalytics import cluster_config

    if isinstance(security, dict):
        return Security(**security)
    if security is None or security is False:
        if not address.startswith("tls://"):
            return None
        return cluster_config.dask_security() or Security()
    return security


def connect(
    address: str,
    *,
    security: Security | dict[str, Any] | bool | None = None,
    timeout: float = CONNECT_TIMEOUT_S,
) -> Client:
    """A new client of the scheduler at ``address``.

    Raises
    ------
    ClusterConnectionError
        The scheduler cannot be reached within ``timeout`` seconds (or refuses the
        connection, e.g. because of TLS), naming the address.
    """
    from distributed import Client

    try:
        sec = _security(address, security)
        client = Client(address, timeout=timeout, security=sec)
    except (OSError, TimeoutError, ValueError, TypeError, RuntimeError) as exc:
        msg = (
            f"cannot connect to the Dask scheduler at {address!r} within {timeout:g} s "
            f"({type(exc).__name__}: {exc}). Check that `dask scheduler` runs there and is "
            f"reachable (TLS addresses need the cluster's certificates), or unset address= "
            f"and ${ADDRESS_ENV} to use an embedded local cluster."
        )
        raise ClusterConnectionError(msg) from exc
    if not client.scheduler_info(n_workers=-1).get("workers"):
        log.warning("the Dask scheduler at %s has no workers yet: analyses wait for one", address)
    return client
