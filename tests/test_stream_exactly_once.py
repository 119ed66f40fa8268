"""Exactly once across a crash, through the command line.

``stream produce`` replays a generated city into Redis; ``stream run`` starts in a
subprocess and is killed with SIGKILL (driver and JVM, the whole process group) right
after a micro-batch reached Redis, typically before Spark committed it; a second
``stream run`` on the same checkpoint finishes the work. The union of the outputs must
be the batch answer: nothing lost, nothing twice, in Parquet and in the ``suggestions``
stream. Then ``stream map`` draws it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import adanalytics as aa
from adanalytics.stream.redis_server import RedisServer
from adanalytics.stream.sink import read_parquet_dir
from tests.test_stream_cases import assert_same_rows

pytest.importorskip("pyspark")
pytestmark = pytest.mark.timeout(1800)

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "adanalytics.stream.cli", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    return env


def test_kill_and_restart_loses_and_duplicates_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    synth = pytest.importorskip("adanalytics.synth")
    data = tmp_path / "city"
    synth.generate(data, scale=6000, seed=5)
    expected = aa.open_dataset(str(data), engine="pandas").recommendations()
    assert len(expected) > 50
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    with RedisServer() as server:
        client = server.client()
        done = subprocess.run(_cli("produce", "--data", str(data), "--redis", server.url),
                              env=_env(), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        assert "sent 6,000 positions" in done.stdout
        run = _cli("run", "--data", str(data), "--redis", server.url, "--out", str(out),
                   "--checkpoint", str(ckpt), "--trigger", "0", "--max-batch", "700",
                   "--stop-when-idle", "3")
        log1 = open(tmp_path / "run1.log", "w")  # noqa: SIM115 - closed below
        first = subprocess.Popen(run, env=_env(), stdout=log1, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        killed_after = None
        deadline = time.monotonic() + 900
        try:
            while time.monotonic() < deadline and first.poll() is None:
                last = client.hget("suggestions:metrics", "last_batch_id")
                if last is not None and int(last) >= 2:
                    os.killpg(first.pid, signal.SIGKILL)  # the driver and its JVM
                    killed_after = int(last)
                    break
                time.sleep(0.02)
        finally:
            if first.poll() is None and killed_after is None:
                os.killpg(first.pid, signal.SIGKILL)
            first.wait(60)
            log1.close()
        assert killed_after is not None, (tmp_path / "run1.log").read_text()[-3000:]
        partial = read_parquet_dir(out / "suggestions")
        assert 0 < len(partial) < len(expected)

        second = subprocess.run(run, env=_env(), capture_output=True, text=True, timeout=1200)
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
        assert "stopped (idle)" in second.stdout

        got = read_parquet_dir(out / "suggestions")
        assert got["suggestion_id"].is_unique
        assert not got.duplicated(["user_id", "ts", "establishment_id"]).any()
        assert_same_rows(got, expected)
        entries = client.xrange("suggestions")
        ids = [e[0] for e in entries]
        assert len(ids) == len(set(ids)) == len(expected)
        red = pd.DataFrame([e[1] for e in entries])
        red["ts"] = pd.to_datetime(red["ts"].astype("int64"), unit="ms", utc=True)
        red["distance_m"] = red["distance_m"].astype(float)
        assert_same_rows(red, expected)
        metrics = client.hgetall("suggestions:metrics")
        assert int(metrics["events"]) == 6000 and int(metrics["suggestions"]) == len(expected)

        maps = subprocess.run(_cli("map", "--data", str(data), "--results", str(out)),
                              env=_env(), capture_output=True, text=True, timeout=600)
        assert maps.returncode == 0, maps.stderr
        assert (out / "maps" / "suggestions_map.html").exists()
        assert (out / "maps" / "suggestions_map.png").exists()
        client.close()


def test_cli_errors_are_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from adanalytics.stream.redis_server import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    res = subprocess.run(_cli("run", "--data", str(tmp_path), "--redis", url, "--out",
                              str(tmp_path / "o"), "--checkpoint", str(tmp_path / "c")),
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 1
    assert "cannot reach Redis" in res.stderr and "Traceback" not in res.stderr
    res = subprocess.run(_cli("produce", "--data", str(tmp_path / "missing"), "--rate", "-5"),
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "positive" in res.stderr
