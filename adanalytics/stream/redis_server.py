"""A real ``redis-server`` on a free port, for tests, benchmarks and the demo.

>>> with RedisServer() as server:             # doctest: +SKIP
...     client = server.client()
...     client.xadd("positions", {"user_id": "u1", "lat": "-8.05", "lon": "-34.9", "ts": "0"})

The server keeps no data on disk (no RDB snapshots, no AOF) and lives in a temporary
directory that is removed on :meth:`RedisServer.stop`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adanalytics.errors import AdAnalyticsError

if TYPE_CHECKING:
    import redis

#: Seconds to wait for a started server to answer PING.
START_TIMEOUT_S = 20.0


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_redis_server() -> str:
    """Path of the ``redis-server`` executable (``$REDIS_SERVER``, else ``$PATH``)."""
    exe = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(exe).exists():
        msg = ("redis-server not found: install it (apt-get install redis-server, or "
               "./bootstrap.sh) or point $REDIS_SERVER at the executable")
        raise AdAnalyticsError(msg)
    return exe


class RedisServer:
    """Start and stop a private ``redis-server`` process.

    Parameters
    ----------
    port:
        TCP port on 127.0.0.1; default a free one.
    executable:
        The ``redis-server`` binary; default :func:`find_redis_server`.
    """

    def __init__(self, port: int | None = None, executable: str | None = None) -> None:
        self.port = port or free_port()
        self.executable = executable or find_redis_server()
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir: str | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING."""
        if self.proc is not None:
            return self
        self._dir = tempfile.mkdtemp(prefix="adanalytics-redis-")
        args = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self._dir,
                "--protected-mode", "no", "--loglevel", "warning"]
        log = open(Path(self._dir) / "redis.log", "wb")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                text = (Path(self._dir) / "redis.log").read_text(errors="replace")
                self.stop()
                msg = f"redis-server exited at start (port {self.port}): {text.strip()[-500:]}"
                raise AdAnalyticsError(msg)
            try:
                if self.client(socket_timeout=1).ping():
                    return self
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    msg = f"redis-server on port {self.port} did not answer within {START_TIMEOUT_S:.0f} s"
                    raise AdAnalyticsError(msg) from None
            time.sleep(0.05)

    def client(self, **kwargs: Any) -> redis.Redis:
        """A redis-py client of this server (``decode_responses=True`` unless told)."""
        import redis

        kwargs.setdefault("decode_responses", True)
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and remove its directory."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.proc is not None and self.proc.poll() is None else "stopped"
        return f"<RedisServer {self.url} {state}>"
