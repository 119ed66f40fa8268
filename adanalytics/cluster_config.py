"""Where the adanalytics cluster is and the credentials a client presents to it.

``bootstrap.sh master`` / ``worker`` write ``$ADANALYTICS_HOME/client.env`` (default home
``/var/lib/adanalytics``): the scheduler and master addresses, the Dask TLS files
(``DASK_DISTRIBUTED__COMM__TLS__*``) and ``SPARK_CONF_DIR`` whose ``spark-defaults.conf``
holds the Spark authentication secret. JupyterHub puts the same variables in every
notebook's environment. The engines read them through this module:

>>> from adanalytics import cluster_config
>>> cluster_config.load_client_env()          # fill os.environ from client.env (no override)
>>> cluster_config.dask_security()            # distributed.Security or None
>>> cluster_config.spark_conf()               # {"spark.authenticate": "true", ...}

Nothing here imports Dask or Spark at module import time.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from distributed.security import Security

#: Default state directory of a cluster node (``ADANALYTICS_HOME`` overrides it).
DEFAULT_HOME = Path("/var/lib/adanalytics")
#: Environment variables a cluster client uses (all written to ``client.env``).
DASK_ADDRESS_ENV = "DASK_SCHEDULER_ADDRESS"
SPARK_MASTER_ENV = "SPARK_MASTER"
SECURITY_DIR_ENV = "ADANALYTICS_SECURITY_DIR"
_TLS_ENV = {
    "ca_file": "DASK_DISTRIBUTED__COMM__TLS__CA_FILE",
    "cert": "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT",
    "key": "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY",
}
#: Spark settings a client must share with the cluster (copied by :func:`spark_conf`).
SPARK_SECURITY_KEYS = (
    "spark.authenticate",
    "spark.authenticate.secret",
    "spark.network.crypto.enabled",
    "spark.network.crypto.cipher",
    "spark.network.crypto.saslFallback",
    "spark.io.encryption.enabled",
)


def cluster_home() -> Path:
    """The node's state directory: ``$ADANALYTICS_HOME`` or ``/var/lib/adanalytics``."""
    return Path(os.environ.get("ADANALYTICS_HOME") or DEFAULT_HOME)


def read_env_file(path: str | Path) -> dict[str, str]:
    """The ``KEY=value`` lines of a shell environment file (``export`` and quotes allowed)."""
    env: dict[str, str] = {}
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        parts = shlex.split(value)
        env[key.strip()] = parts[0] if parts else ""
    return env


def client_env(home: str | Path | None = None) -> dict[str, str]:
    """The variables of ``client.env`` of the node at ``home`` (empty when not provisioned)."""
    path = Path(home or cluster_home()) / "client.env"
    return read_env_file(path) if path.exists() else {}


def load_client_env(home: str | Path | None = None, *, override: bool = False) -> dict[str, str]:
    """Put ``client.env`` into ``os.environ`` (variables already set win unless ``override``).

    Returns the variables that were set. Call it before Dask's configuration or a Spark
    session is created (the TLS variables are read when ``dask.config`` loads).
    """
    applied = {}
    for key, value in client_env(home).items():
        if override or key not in os.environ:
            os.environ[key] = value
            applied[key] = value
    if applied and any(k.startswith("DASK_") for k in applied):
        _refresh_dask_config()
    return applied


def _refresh_dask_config() -> None:
    import sys

    if "dask" in sys.modules:  # already configured: re-read the environment
        import dask.config

        dask.config.refresh()


def security_dir() -> Path | None:
    """The directory holding the cluster's TLS files, if this machine has one."""
    path = Path(os.environ.get(SECURITY_DIR_ENV) or cluster_home() / "security")
    return path if (path / "ca.pem").exists() else None


def dask_tls_files(env: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """``{"ca_file", "cert", "key"}`` of the client's Dask TLS, or None when not configured.

    Taken from ``DASK_DISTRIBUTED__COMM__TLS__*`` when set, else from the security directory
    (``ca.pem``, ``client.pem``, ``client.key``).
    """
    env = os.environ if env is None else env
    files = {name: env.get(var, "") for name, var in _TLS_ENV.items()}
    if all(files.values()):
        return files
    directory = security_dir()
    if directory is None:
        return None
    return {"ca_file": str(directory / "ca.pem"), "cert": str(directory / "client.pem"),
            "key": str(directory / "client.key")}


def dask_security(*, required: bool = False) -> Security | None:
    """A :class:`distributed.security.Security` for the cluster's scheduler (TLS, required
    encryption), or None when this machine has no cluster credentials.

    Raises
    ------
    FileNotFoundError
        ``required=True`` and no credentials, or a named file is missing / unreadable.
    """
    files = dask_tls_files()
    if files is None:
        if required:
            msg = ("no Dask TLS credentials: set DASK_DISTRIBUTED__COMM__TLS__CA_FILE, "
                   "..._CLIENT__CERT and ..._CLIENT__KEY, or ADANALYTICS_HOME to a provisioned "
                   "node (see README, 'Cluster')")
            raise FileNotFoundError(msg)
        return None
    for name, path in files.items():
        if not os.access(path, os.R_OK):
            msg = (f"Dask TLS {name} {path} is missing or unreadable (cluster clients must be "
                   f"in the 'adanalytics' group)")
            raise FileNotFoundError(msg)
    from distributed.security import Security

    return Security(tls_ca_file=files["ca_file"], tls_client_cert=files["cert"],
                    tls_client_key=files["key"], require_encryption=True)


# java.util.Properties: key, then "=", ":" or whitespace, then the value
_PROPERTY = re.compile(r"(?P<key>[^\s=:]+)\s*(?:[=:]|\s)\s*(?P<value>.*)")


def read_spark_defaults(path: str | Path) -> dict[str, str]:
    """Key/value pairs of a ``spark-defaults.conf`` (whitespace or ``=`` separated)."""
    conf: dict[str, str] = {}
    for raw in Path(path).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _PROPERTY.match(line)
        if match:
            conf[match["key"]] = match["value"].strip()
    return conf


def spark_conf_dir() -> Path | None:
    """``$SPARK_CONF_DIR``, else the node's ``spark-conf/``, if it has a spark-defaults.conf."""
    for candidate in (os.environ.get("SPARK_CONF_DIR"), cluster_home() / "spark-conf"):
        if candidate and (Path(candidate) / "spark-defaults.conf").exists():
            return Path(candidate)
    return None


def spark_conf(*, required: bool = False, security_only: bool = True) -> dict[str, str]:
    """The Spark settings a client must use to join the cluster (authentication secret,
    network encryption), read from ``spark-defaults.conf``; ``{}`` when not provisioned.

    A PySpark session started with ``SPARK_CONF_DIR`` set reads that file by itself; pass
    these to ``SparkSession.builder.config(...)`` when the directory is not in the
    environment. ``security_only=False`` returns every setting of the file.
    """
    directory = spark_conf_dir()
    if directory is None:
        if required:
            msg = ("no Spark cluster configuration: set SPARK_CONF_DIR or ADANALYTICS_HOME to a "
                   "provisioned node (see README, 'Cluster')")
            raise FileNotFoundError(msg)
        return {}
    path = directory / "spark-defaults.conf"
    try:
        conf = read_spark_defaults(path)
    except PermissionError as exc:
        msg = f"{path} is unreadable (cluster clients must be in the 'adanalytics' group)"
        raise PermissionError(msg) from exc
    if security_only:
        conf = {k: v for k, v in conf.items() if k in SPARK_SECURITY_KEYS}
    return conf


def describe() -> dict[str, Any]:
    """What this machine knows about the cluster (addresses and files, never secrets)."""
    env = {**client_env(), **{k: v for k, v in os.environ.items()
                              if k in (DASK_ADDRESS_ENV, SPARK_MASTER_ENV)}}
    return {
        "home": str(cluster_home()),
        "dask_scheduler": env.get(DASK_ADDRESS_ENV),
        "spark_master": env.get(SPARK_MASTER_ENV),
        "dask_tls": dask_tls_files(),
        "spark_conf_dir": str(spark_conf_dir()) if spark_conf_dir() else None,
    }
