"""A real Spark standalone cluster on localhost: a master and two workers started with
``spark-class`` (1 core and 1 GB each). The analyses run through ``SPARK_MASTER`` in a
fresh driver process (the in-process session is a singleton), must equal the pandas
engine's, and both executors must have registered and run tasks. An unreachable master,
and a master without workers, are clear :class:`ClusterConnectionError`s within a
bounded time.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def _spark_selected(request: pytest.FixtureRequest) -> None:
    engines = [e.strip() for e in request.config.getoption("--engines").split(",")]
    if "spark" not in engines:
        pytest.skip("spark not among --engines")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_home() -> str:
    import pyspark

    return os.path.dirname(pyspark.__file__)


def _env(tmp: Path) -> dict[str, str]:
    conf_dir = tmp / "conf"
    conf_dir.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.update({
        "SPARK_HOME": spark_home(),
        "SPARK_CONF_DIR": str(conf_dir),  # no stray spark-defaults from the machine
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_NO_DAEMONIZE": "1",
    })
    env.pop("SPARK_MASTER", None)
    return env


class Daemon:
    """A ``spark-class`` process in its own process group (stopped with the group)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.log = log_dir / f"{name}.log"
        self.proc = subprocess.Popen(
            [os.path.join(spark_home(), "bin", "spark-class"), *args],
            env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def master_json(webui: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{webui}/json", timeout=5) as r:
        return json.load(r)


def wait_for(predicate: Any, timeout: float, what: str, logs: list[Path]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except OSError:
            pass
        time.sleep(1)
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs)
    pytest.fail(f"timed out waiting for {what}\n{tails}")


def start_master(tmp: Path, env: dict[str, str]) -> tuple[Daemon, str, int]:
    port, webui = free_port(), free_port()
    master = Daemon("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                               "--port", str(port), "--webui-port", str(webui)], env, tmp)
    wait_for(lambda: master_json(webui).get("status") == "ALIVE", 180, "the master", [master.log])
    return master, f"spark://127.0.0.1:{port}", webui


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("spark-cluster")
    env = _env(tmp)
    daemons: list[Daemon] = []
    try:
        master, url, webui = start_master(tmp, env)
        daemons.append(master)
        for i in (1, 2):
            work = tmp / f"worker{i}"
            work.mkdir()
            daemons.append(Daemon(f"worker{i}", [
                "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                "--webui-port", str(free_port()), "--cores", "1", "--memory", "1g",
                "--work-dir", str(work), url], env, tmp))
        wait_for(lambda: master_json(webui).get("aliveworkers") == 2, 180, "two workers",
                 [d.log for d in daemons])
        yield {"url": url, "webui": webui, "env": env, "tmp": tmp}
    finally:
        for d in reversed(daemons):
            d.stop()


DRIVER = textwrap.dedent("""
    import json, sys, urllib.request
    import pandas as pd
    import adanalytics as aa
    from adanalytics.dataset import ANALYSES, BY_ANALYSES

    path, ui_port = sys.argv[1], sys.argv[2]
    conf = {
        "spark.ui.port": ui_port,
        "spark.executor.memory": "768m",
        "spark.cores.max": "2",
        # every job waits for both executors, so both run tasks
        "spark.scheduler.minRegisteredResourcesRatio": "1.0",
        "spark.scheduler.maxRegisteredResourcesWaitingTime": "120s",
    }
    ds = aa.open_dataset(path, engine="spark", conf=conf)  # master from SPARK_MASTER
    ds.persist()
    ref = aa.open_dataset(path, engine="pandas")
    mismatches = []
    for a in ANALYSES:
        for by in (("total", "month") if a in BY_ANALYSES else ("total",)):
            got = aa.to_pandas(ds.run(a, by=by))
            want = ref.run(a, by=by)
            try:
                pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12)
            except AssertionError as exc:
                mismatches.append(f"{a}/{by}: {str(exc)[:300]}")
    sc = ds.engine.spark.sparkContext
    url = f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}/executors"
    with urllib.request.urlopen(url, timeout=10) as r:
        executors = json.load(r)
    print("RESULT " + json.dumps({
        "master": sc.master, "app": sc.applicationId, "mismatches": mismatches,
        "executors": [{"id": e["id"], "hostPort": e["hostPort"],
                       "totalTasks": e["totalTasks"]} for e in executors],
    }))
""")


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from adanalytics.synth import generate

    out = tmp_path_factory.mktemp("cluster-data") / "tiny"
    generate(out, scale="tiny", seed=5)
    return out


def test_analyses_on_a_master_and_two_workers(cluster: dict[str, Any], tiny_dataset: Path) -> None:
    script = cluster["tmp"] / "driver.py"
    script.write_text(DRIVER)
    env = {**cluster["env"], "SPARK_MASTER": cluster["url"]}
    run = subprocess.run([sys.executable, str(script), str(tiny_dataset), str(free_port())],
                         env=env, capture_output=True, text=True, timeout=1200)
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stderr[-5000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["master"] == cluster["url"]
    assert result["mismatches"] == []
    executors = [e for e in result["executors"] if e["id"] != "driver"]
    assert len(executors) == 2, result
    assert all(e["totalTasks"] > 0 for e in executors), result
    # the master saw the application with both executors' cores
    apps = master_json(cluster["webui"])
    seen = [a for a in apps.get("activeapps", []) + apps.get("completedapps", [])
            if a["id"] == result["app"]]
    assert seen, apps


def _open_fails(master: str, env: dict[str, str], tiny: Path, timeout: float) -> tuple[float, str]:
    code = textwrap.dedent(f"""
        import time, adanalytics as aa
        t = time.perf_counter()
        try:
            aa.open_dataset({str(tiny)!r}, engine="spark", master={master!r})
        except aa.ClusterConnectionError as exc:
            print("ERROR", round(time.perf_counter() - t, 1), exc)
        else:
            print("NO ERROR")
    """)
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stdout
    line = run.stdout.strip().splitlines()[-1]
    assert line.startswith("ERROR "), run.stdout + run.stderr[-3000:]
    _, seconds, message = line.split(" ", 2)
    return float(seconds), message


def test_unreachable_master_is_a_quick_clear_error(tmp_path: Path, tiny_dataset: Path) -> None:
    url = f"spark://127.0.0.1:{free_port()}"  # nothing listens there
    seconds, message = _open_fails(url, _env(tmp_path), tiny_dataset, timeout=120)
    assert seconds < 10
    assert url in message and "cannot reach" in message


def test_master_without_workers_is_a_clear_error(tmp_path: Path, tiny_dataset: Path) -> None:
    env = _env(tmp_path)
    master, url, _ = start_master(tmp_path, env)
    try:
        env["ADANALYTICS_SPARK_EXECUTOR_TIMEOUT"] = "15"
        seconds, message = _open_fails(url, env, tiny_dataset, timeout=300)
    finally:
        master.stop()
    assert url in message and "no executor" in message
    assert seconds < 200
