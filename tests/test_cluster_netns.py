"""The cluster on three hosts: master, worker1, worker2 in their own network namespaces.

``bootstrap.sh master`` runs in one namespace, ``bootstrap.sh worker <master-ip>`` in the
two others (each host with its own ADANALYTICS_HOME, since namespaces share the file
system; the master's join bundle is copied into each worker's home, as an operator would
copy it). Then, from the master: Dask and Spark jobs use both workers; a worker killed in
the middle of a job does not stop it; clients without the cluster's credentials are
rejected; a user logs in to JupyterHub through its REST API, gets a server and runs
notebook 01 (or the cluster check notebook until 01 exists) against the cluster; headless
Chromium takes a screenshot of the login page.

Root only (namespaces, users, system services); skipped with the reason otherwise.
Artifacts (screenshot, executed notebook, service logs) go to the pytest tmp directory,
whose path is printed.

The module doubles as the client programs run inside the master namespace:
``python tests/test_cluster_netns.py dask-resilience|spark-resilience|spark-intruder``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
BOOTSTRAP = REPO / "bootstrap.sh"
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").exists() else sys.executable
SUBNET = "10.213.7"
BRIDGE = "aa-test-br"
HOSTS = {"master": 1, "worker1": 2, "worker2": 3}
NS = {name: f"aa-test-{name}" for name in HOSTS}
IP = {name: f"{SUBNET}.{n}" for name, n in HOSTS.items()}
OUTSIDE_IP = f"{SUBNET}.254"  # the test process itself, on the bridge
HUB_USER = "aahubtest"
REFUSED = "Failed to connect to master"
HUB = f"http://{IP['master']}:8000"
NOTEBOOK_01 = REPO / "notebooks" / "01_campaign_ctr.ipynb"
CHECK_NOTEBOOK = REPO / "cluster" / "notebooks" / "00_cluster_check.ipynb"


def _skip_reason() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "cluster test needs root on Linux (network namespaces, system users, services)"
    if shutil.which("ip") is None:
        return "cluster test needs iproute2's 'ip' (apt-get install iproute2)"
    probe = f"aa-probe-{os.getpid()}"
    added = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if added.returncode != 0:
        return f"'ip netns add' is not available here: {added.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


SKIP = _skip_reason() if __name__ != "__main__" else None
pytestmark = [pytest.mark.slow, pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]


# --- helpers ------------------------------------------------------------------------------

def sh(*cmd: str, check: bool = True, timeout: float = 300, **kw: Any) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        msg = f"{' '.join(cmd)} -> {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        raise AssertionError(msg)
    return proc


def ensure_apt(package: str, command: str) -> str:
    """A tool from Debian's packages, installed when missing (these tests run as root)."""
    path = shutil.which(command)
    if path:
        return path
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    sh("apt-get", "update", "-qq", env=env, timeout=600)
    sh("apt-get", "install", "-y", "-qq", "--no-install-recommends", package, env=env, timeout=900)
    path = shutil.which(command)
    assert path, f"{command} not found after apt-get install {package}"
    return path


class Cluster:
    def __init__(self, base: Path, artifacts: Path) -> None:
        self.base = base
        self.artifacts = artifacts
        self.home = {name: base / name for name in HOSTS}
        self.data = base / "data"

    def env(self, host: str) -> dict[str, str]:
        return {**os.environ, "ADANALYTICS_HOME": str(self.home[host]),
                "ADANALYTICS_START_TIMEOUT": "240"}

    def run(self, host: str, *cmd: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", NS[host], *cmd, check=check, timeout=timeout,
                  env=self.env(host), cwd=REPO)

    def popen(self, host: str, *cmd: str, env: dict[str, str] | None = None,
              **kw: Any) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", NS[host], *cmd],
                                env=env or self.env(host), cwd=REPO, text=True, **kw)

    def client(self, *args: str, **kw: Any) -> subprocess.Popen:
        """This module as a client program in the master namespace."""
        return self.popen("master", PYTHON, "-X", "faulthandler", str(Path(__file__).resolve()), *args,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          bufsize=1, **kw)

    def pid(self, host: str, service: str) -> int:
        return int((self.home[host] / "run" / f"{service}.pid").read_text())

    def start_worker(self, host: str) -> subprocess.Popen:
        return self.popen(host, str(BOOTSTRAP), "worker", IP["master"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _delete_network() -> None:
    for n in HOSTS.values():
        sh("ip", "link", "del", f"aa-test-v{n}", check=False)
    for ns in NS.values():
        if Path(f"/run/netns/{ns}").exists():
            for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            sh("ip", "netns", "del", ns, check=False)
    sh("ip", "link", "del", BRIDGE, check=False)
    deadline = time.monotonic() + 20  # the kernel removes a namespace's veth ends lazily
    while time.monotonic() < deadline and any(
            sh("ip", "link", "show", f"aa-test-v{n}", check=False).returncode == 0 for n in HOSTS.values()):
        time.sleep(0.5)


def _create_network() -> None:
    _delete_network()  # leftovers of an interrupted run
    sh("ip", "link", "add", BRIDGE, "type", "bridge")
    sh("ip", "addr", "add", f"{OUTSIDE_IP}/24", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")
    for name, n in HOSTS.items():
        ns, veth = NS[name], f"aa-test-v{n}"
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "link", "set", veth, "master", BRIDGE, "up")
        sh("ip", "-n", ns, "addr", "add", f"{IP[name]}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")


def _delete_hub_user() -> None:
    # its processes ran in the master namespace and ended with it (_delete_network)
    if sh("id", HUB_USER, check=False).returncode == 0:
        sh("userdel", "--remove", "--force", HUB_USER, check=False)


def _generate_data(target: Path) -> None:
    sh(str(REPO / ".venv" / "bin" / "adanalytics"), "generate", "--scale", "tiny", "--seed", "7",
       "--out", str(target), timeout=300)
    sh("chmod", "-R", "a+rX", str(target))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Any:
    t0 = time.perf_counter()
    # ADANALYTICS_TEST_ARTIFACTS keeps them out of pytest's rotation of old tmp directories
    chosen = os.environ.get("ADANALYTICS_TEST_ARTIFACTS")
    artifacts = Path(chosen) if chosen else tmp_path_factory.mktemp("cluster-artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="aa-cluster-", dir="/tmp"))
    base.chmod(0o755)  # the hub's users and the service user read the data and the venv
    c = Cluster(base, artifacts)
    print(f"\ncluster test: state in {base}, artifacts in {artifacts}")
    try:
        # everything that needs the network happens here, outside the namespaces
        sh(str(BOOTSTRAP), "master", "--install-only", timeout=900)
        _generate_data(c.data)
        _create_network()
        c.run("master", str(BOOTSTRAP), "master")
        bundle = c.home["master"] / "join-bundle.tar.gz"
        workers = []
        for w in ("worker1", "worker2"):
            c.home[w].mkdir(mode=0o755)
            shutil.copy2(bundle, c.home[w] / bundle.name)  # what scp would do between hosts
            workers.append(c.start_worker(w))
        for w, proc in zip(("worker1", "worker2"), workers, strict=True):
            out, _ = proc.communicate(timeout=600)
            assert proc.returncode == 0, f"bootstrap.sh worker on {w} failed:\n{out}"
        print(f"cluster up in {time.perf_counter() - t0:.0f} s")
        yield c
    finally:
        for host in ("worker1", "worker2", "master"):
            if (c.home[host] / "node.env").exists():
                c.run(host, str(BOOTSTRAP), "stop", check=False, timeout=120)
        _delete_network()
        _delete_hub_user()
        for host in HOSTS:
            if (c.home[host] / "logs").exists():
                shutil.copytree(c.home[host] / "logs", artifacts / f"logs-{host}", dirs_exist_ok=True)
        shutil.rmtree(base, ignore_errors=True)
        print(f"\ncluster test: {time.perf_counter() - t0:.0f} s in all; logs in {artifacts}")


# --- the tests ------------------------------------------------------------------------------

def test_services_run_and_secrets_are_private(cluster: Cluster) -> None:
    for host in HOSTS:
        status = cluster.run(host, str(BOOTSTRAP), "status", check=False)
        assert status.returncode == 0, status.stdout + status.stderr
    master = cluster.home["master"]
    assert (master / "hub" / "jupyterhub_cookie_secret").stat().st_mode & 0o777 == 0o600
    assert (master / "security" / "ca-key.pem").stat().st_mode & 0o777 == 0o600
    assert "spark.authenticate.secret" in (master / "spark-conf" / "spark-defaults.conf").read_text()
    assert not (cluster.home["worker1"] / "security" / "ca-key.pem").exists()  # the CA stays home
    listening = cluster.run("master", "ss", "-ltnH").stdout
    local = {line.split()[3].replace("[::ffff:", "").replace("]", "") for line in listening.splitlines()}
    assert "127.0.0.1:8001" in local, listening  # the proxy's API: loopback only
    assert not any(a.endswith(":8001") and not a.startswith("127.0.0.1") for a in local), listening
    assert f"{IP['master']}:8786" in local and f"{IP['master']}:7077" in local, listening
    assert not any(a.endswith(":6066") for a in local), listening  # no unauthenticated REST
    # idempotent: a second run finds everything running and changes nothing
    pids = {s: cluster.pid("master", s) for s in ("dask-scheduler", "spark-master", "jupyterhub")}
    again = cluster.run("master", str(BOOTSTRAP), "master")
    assert again.stdout.count("already running") == 3, again.stdout
    assert pids == {s: cluster.pid("master", s) for s in pids}


def test_dask_and_spark_jobs_use_both_workers(cluster: Cluster) -> None:
    out = cluster.run("master", PYTHON, str(REPO / "cluster" / "smoke_test.py"), "--json",
                      "--workers", "2", timeout=600)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["ok"], report
    assert {a.split("//")[1].split(":")[0] for a in report["dask"]["workers_used"]} == {
        IP["worker1"], IP["worker2"]}
    assert set(report["spark"]["hosts_used"]) == {IP["worker1"], IP["worker2"]}


def test_clients_without_credentials_are_rejected(cluster: Cluster) -> None:
    # Spark drivers take a while to give up: start them first, check Dask meanwhile
    nothing = cluster.base / "no-credentials"
    nothing.mkdir(exist_ok=True)
    no_secret = cluster.client("spark-intruder", "intruder-no-secret", env={
        **cluster.env("master"), "SPARK_CONF_DIR": str(nothing), "SPARK_LOCAL_IP": IP["master"]})
    wrong_secret = cluster.client(
        "spark-intruder", "intruder-wrong-secret", "spark.authenticate=true",
        f"spark.authenticate.secret={secrets.token_hex(32)}", "spark.network.crypto.enabled=true",
        env={**cluster.env("master"), "SPARK_CONF_DIR": str(nothing), "SPARK_LOCAL_IP": IP["master"]})
    try:
        probe = cluster.run("master", PYTHON, "-c", DASK_INTRUDER.format(
            address=f"tls://{IP['master']}:8786", plain=f"tcp://{IP['master']}:8786",
            foreign=str(cluster.base / "foreign")), timeout=180)
        verdicts = json.loads(probe.stdout.strip().splitlines()[-1])
        assert verdicts == {"no-tls": "rejected", "plain-tcp": "rejected",
                            "foreign-ca": "rejected", "cluster-credentials": "accepted"}, verdicts
        for proc in (no_secret, wrong_secret):
            # the driver's first refusal ("Failed to connect to master ... ") is enough; it
            # would give up for good after three 20 s registration attempts
            out = _read_until(proc, ("REJECTED", "ACCEPTED", REFUSED), timeout=240)
            assert ("REJECTED" in out or REFUSED in out) and "ACCEPTED" not in out, out
        apps = json.loads(cluster.run("master", "curl", "-s",
                                      f"http://{IP['master']}:8080/json/").stdout)
        names = {a["name"] for a in apps.get("activeapps", []) + apps.get("completedapps", [])}
        assert not names & {"intruder-no-secret", "intruder-wrong-secret"}, names
    finally:
        for proc in (no_secret, wrong_secret):
            proc.kill()
            proc.communicate()


def _start_running(cluster: Cluster, command: str, timeout: float) -> tuple[subprocess.Popen, str]:
    """A resilience client whose job is running on both workers. A client that dies before
    its job starts (a driver JVM lost to an overloaded machine, say) is started once more,
    and what it printed is shown: that is not the failure under test."""
    for attempt in (1, 2):
        client = cluster.client(command)
        out = _read_until(client, ("RUNNING",), timeout=timeout)
        if "RUNNING" in out:
            return client, out
        client.kill()
        client.communicate()
        print(f"\n{command} ended before its job ran (attempt {attempt}):\n{out}")
    raise AssertionError(f"{command} never got its job running:\n{out}")


def test_dask_job_survives_a_killed_worker(cluster: Cluster) -> None:
    client, out = _start_running(cluster, "dask-resilience", timeout=180)
    try:
        busy = json.loads(out.split("RUNNING", 1)[1].splitlines()[0])
        assert len(busy) == 2, f"the job was not running on both workers: {busy}"
        os.killpg(cluster.pid("worker2", "dask-worker"), signal.SIGKILL)  # worker2 is gone
        client.stdin.write("killed\n")
        client.stdin.flush()
        out += _read_until(client, ("RESULT",), timeout=240)
        result = json.loads(out.split("RESULT", 1)[1].splitlines()[0])
        assert result["ok"], out
        assert [w for w in result["workers_after"] if IP["worker2"] in w] == [], result
    finally:
        client.kill()
        client.communicate()


def test_spark_job_survives_a_killed_worker(cluster: Cluster) -> None:
    client, out = _start_running(cluster, "spark-resilience", timeout=300)
    try:
        active = int(out.split("RUNNING", 1)[1].split()[0])
        assert active > 2, f"only {active} tasks running: not both executors (2 cores each)"
        os.killpg(cluster.pid("worker2", "spark-worker"), signal.SIGKILL)  # with its executor
        client.stdin.write("killed\n")
        client.stdin.flush()
        out += _read_until(client, ("RESULT",), timeout=300)
        result = json.loads(out.split("RESULT", 1)[1].splitlines()[0])
        assert result["ok"], out
    finally:
        client.kill()
        client.communicate()
    # the lost worker comes back with the same command (idempotent: only what is down starts)
    restart = cluster.start_worker("worker2")
    out, _ = restart.communicate(timeout=600)
    assert restart.returncode == 0, out
    assert "dask-worker started" in out and "spark-worker started" in out, out
    assert cluster.run("worker2", str(BOOTSTRAP), "status", check=False).returncode == 0


def test_jupyterhub_user_runs_a_notebook_on_the_cluster(cluster: Cluster) -> None:
    password = secrets.token_urlsafe(16)
    _delete_hub_user()
    sh("useradd", "--create-home", "--groups", "adanalytics", "--shell", "/bin/bash", HUB_USER)
    sh("chpasswd", input=f"{HUB_USER}:{password}\n")
    notebook = NOTEBOOK_01 if NOTEBOOK_01.exists() else CHECK_NOTEBOOK
    out = cluster.run("master", PYTHON, str(Path(__file__).resolve()), "hub-session",
                      HUB, HUB_USER, password, notebook.name, str(cluster.data),
                      f"tls://{IP['master']}:8786", str(cluster.artifacts), timeout=900, check=False)
    print(out.stdout[-4000:])
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-6000:]
    report = json.loads(out.stdout.split("HUB-REPORT", 1)[1].splitlines()[0])
    assert report["wrong_password_rejected"], report
    assert report["kernel_env"]["DASK_SCHEDULER_ADDRESS"] == f"tls://{IP['master']}:8786"
    assert report["kernel_env"]["SPARK_MASTER"] == f"spark://{IP['master']}:7077"
    assert CHECK_NOTEBOOK.name in report["notebooks_in_home"], report
    assert report["dashboard_status"] == 200, report
    assert report["errors"] == [], report
    print(f"executed notebook: {report['executed']}")


def test_login_page_screenshot(cluster: Cluster) -> None:
    chromium = ensure_apt("chromium", "chromium")
    shot = cluster.artifacts / "jupyterhub-login.png"
    with tempfile.TemporaryDirectory() as profile:
        sh(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", f"--user-data-dir={profile}", "--window-size=1280,800",
           "--virtual-time-budget=5000", f"--screenshot={shot}", f"{HUB}/hub/login", timeout=120)
    assert shot.exists() and shot.stat().st_size > 5000
    print(f"\nJupyterHub login page screenshot: {shot}")


# --- client programs (run in the master namespace) ------------------------------------------

DASK_INTRUDER = r"""
import json, os, subprocess
from distributed import Client
from distributed.security import Security
from adanalytics import cluster_config
os.makedirs("{foreign}", exist_ok=True)
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-days", "1", "-subj", "/CN=intruder", "-keyout", "{foreign}/key.pem",
                "-out", "{foreign}/cert.pem"], check=True, capture_output=True)
def attempt(address, security):
    try:
        with Client(address, security=security, timeout=5) as c:
            c.submit(sum, [1, 2]).result()
        return "accepted"
    except Exception:
        return "rejected"
for key in [k for k in os.environ if k.startswith("DASK_DISTRIBUTED__COMM__TLS")]:
    del os.environ[key]
verdicts = dict()
verdicts["no-tls"] = attempt("{address}", Security())
verdicts["plain-tcp"] = attempt("{plain}", None)
cluster_config.load_client_env()
verdicts["foreign-ca"] = attempt("{address}", Security(tls_ca_file="{foreign}/cert.pem",
    tls_client_cert="{foreign}/cert.pem", tls_client_key="{foreign}/key.pem", require_encryption=True))
verdicts["cluster-credentials"] = attempt("{address}", cluster_config.dask_security(required=True))
print(json.dumps(verdicts))
"""


def _read_until(proc: subprocess.Popen, markers: tuple[str, ...], timeout: float) -> str:
    """Lines of ``proc`` until one holds a marker (or the process ends / time runs out)."""
    import selectors

    out: list[str] = []
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    while time.monotonic() < deadline:
        if not sel.select(timeout=1):
            continue
        line = proc.stdout.readline()
        if not line:
            out.append(f"[client ended with exit status {proc.wait(timeout=30)}]\n")
            break
        out.append(line)
        if any(m in line for m in markers):
            break
    sel.close()
    return "".join(out)


def _client_env() -> None:
    sys.path.insert(0, str(REPO))
    from adanalytics import cluster_config

    cluster_config.load_client_env()


def dask_resilience() -> None:
    _client_env()
    from distributed import Client

    from adanalytics import cluster_config

    tasks = 48
    with Client(os.environ["DASK_SCHEDULER_ADDRESS"],
                security=cluster_config.dask_security(required=True), timeout=30) as client:
        client.wait_for_workers(2, timeout=120)

        def slow_square(i: int) -> int:
            time.sleep(0.5)
            return i * i

        futures = client.map(slow_square, range(tasks), pure=False)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            busy = sorted(w for w, t in client.processing().items() if t)
            if len(busy) >= 2:
                break
            time.sleep(0.1)
        print("RUNNING", json.dumps(busy), flush=True)
        sys.stdin.readline()  # the test killed worker2
        total = sum(client.gather(futures))
        after = sorted(client.scheduler_info(n_workers=-1)["workers"])
    ok = total == sum(i * i for i in range(tasks))
    print("RESULT", json.dumps({"ok": ok, "busy_before": busy, "workers_after": after}), flush=True)


def spark_resilience() -> None:
    _client_env()
    import threading

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.master(os.environ["SPARK_MASTER"]).appName("resilience").getOrCreate()
    sc = spark.sparkContext
    sc.setLogLevel("ERROR")
    deadline = time.monotonic() + 180
    while sc._jsc.sc().getExecutorIds().size() < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    partitions, result, active = 24, {}, 0

    def slow(rows: Any) -> Any:
        time.sleep(2)
        yield sum(rows)

    def job() -> None:
        result["sum"] = sc.parallelize(range(partitions * 100), partitions).mapPartitions(slow).sum()

    worker = threading.Thread(target=job)
    worker.start()
    tracker = sc.statusTracker()
    while worker.is_alive():  # both executors (2 cores each) busy: more than 2 tasks running
        active = sum(tracker.getStageInfo(s).numActiveTasks for s in tracker.getActiveStageIds()
                     if tracker.getStageInfo(s))
        if active > 2:
            break
        time.sleep(0.2)
    print("RUNNING", active, flush=True)
    sys.stdin.readline()  # the test killed worker2's Spark worker and executor
    worker.join()
    ok = result.get("sum") == sum(range(partitions * 100))
    print("RESULT", json.dumps({"ok": ok, "sum": result.get("sum")}), flush=True)
    spark.stop()


def spark_intruder(name: str, *conf: str) -> None:
    """A driver without the cluster's secret: the master must refuse it."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(os.environ["SPARK_MASTER_URL"]).appName(name)
    for kv in conf:
        key, _, value = kv.partition("=")
        builder = builder.config(key, value)
    builder = builder.config("spark.ui.enabled", "false")
    try:
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("WARN")
        count = spark.range(10).count()
        print("ACCEPTED", count, flush=True)
    except Exception as exc:  # the session dies when the master refuses it
        print("REJECTED", type(exc).__name__, flush=True)


def hub_session(hub: str, user: str, password: str, notebook: str, data: str, address: str,
                artifacts: str) -> None:
    """Log in, get a token, start a server, run a notebook over the kernel protocol."""
    import asyncio
    import re
    import uuid

    import nbformat
    import requests
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    report: dict[str, Any] = {}
    s = requests.Session()
    login = s.get(f"{hub}/hub/login", timeout=30)
    xsrf = s.cookies.get("_xsrf") or re.search(r'name="_xsrf" value="([^"]+)"', login.text)[1]
    bad = s.post(f"{hub}/hub/login", data={"username": user, "password": "wrong", "_xsrf": xsrf},
                 allow_redirects=False, timeout=60)
    report["wrong_password_rejected"] = bad.status_code == 403 or "Invalid username" in bad.text
    ok = s.post(f"{hub}/hub/login", data={"username": user, "password": password, "_xsrf": xsrf},
                allow_redirects=False, timeout=60)
    assert ok.status_code == 302, (ok.status_code, ok.text[:500])
    xsrf = s.cookies.get("_xsrf") or xsrf
    token = s.post(f"{hub}/hub/api/users/{user}/tokens", json={"note": "cluster test", "expires_in": 3600},
                   headers={"X-XSRFToken": xsrf, "Referer": f"{hub}/hub/"}, timeout=30)
    assert token.status_code in (200, 201), (token.status_code, token.text)
    auth = {"Authorization": f"token {token.json()['token']}"}
    started = requests.post(f"{hub}/hub/api/users/{user}/server", headers=auth, timeout=180)
    assert started.status_code in (201, 202), (started.status_code, started.text)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        model = requests.get(f"{hub}/hub/api/users/{user}", headers=auth, timeout=30).json()
        if model.get("servers", {}).get("", {}).get("ready"):
            break
        time.sleep(1)
    else:
        raise AssertionError(f"server of {user} not ready: {model}")
    base = f"{hub}/user/{user}"
    listing = requests.get(f"{base}/api/contents/notebooks", headers=auth, timeout=60).json()
    report["notebooks_in_home"] = sorted(item["name"] for item in listing["content"])
    dash = requests.get(f"{base}/proxy/8787/status", headers=auth, timeout=60)
    report["dashboard_status"] = dash.status_code
    nb_model = requests.get(f"{base}/api/contents/notebooks/{notebook}", headers=auth, timeout=60).json()
    nb = nbformat.from_dict(nb_model["content"])
    _inject_parameters(nb, {"data_path": data, "engine": "dask", "address": address})
    kernel = requests.post(f"{base}/api/kernels", json={"name": "python3"}, headers=auth, timeout=60).json()
    ws_url = f"{base.replace('http', 'ws', 1)}/api/kernels/{kernel['id']}/channels"

    async def execute_all() -> list[str]:
        ws = await websocket_connect(HTTPRequest(ws_url, headers=auth), max_message_size=2**28)
        session, errors = uuid.uuid4().hex, []

        async def run(code: str) -> tuple[list[Any], str]:
            msg_id = uuid.uuid4().hex
            ws.write_message(json.dumps({
                "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": user,
                           "session": session, "version": "5.3"},
                "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                "content": {"code": code, "silent": False, "store_history": True,
                            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
            outputs, status, idle = [], "ok", False
            while not idle:
                raw = await asyncio.wait_for(ws.read_message(), timeout=600)
                assert raw is not None, "kernel websocket closed"
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["msg_type"]
                if kind in ("stream", "display_data", "execute_result", "error"):
                    outputs.append(nbformat.v4.output_from_msg(msg))
                    if kind == "error":
                        status = "error"
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    idle = True
            return outputs, status

        probe, _ = await run("import os, json, adanalytics\nprint(json.dumps({k: os.environ.get(k) "
                             "for k in ('DASK_SCHEDULER_ADDRESS', 'SPARK_MASTER', 'SPARK_CONF_DIR')}))")
        report["kernel_env"] = json.loads("".join(o.get("text", "") for o in probe))
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            cell.outputs, status = await run(cell.source)
            cell.execution_count = i
            if status == "error":
                errors.append("\n".join(line for o in cell.outputs for line in o.get("traceback", []))
                              or str(cell.outputs))
                break
        ws.close()
        return errors

    t0 = time.perf_counter()
    report["errors"] = asyncio.run(execute_all())
    report["notebook_seconds"] = round(time.perf_counter() - t0, 1)
    executed = Path(artifacts) / notebook.replace(".ipynb", ".executed.ipynb")
    nbformat.write(nb, executed)
    report["executed"] = str(executed)
    requests.delete(f"{base}/api/kernels/{kernel['id']}", headers=auth, timeout=60)
    requests.delete(f"{hub}/hub/api/users/{user}/server", headers=auth, timeout=120)
    print("HUB-REPORT", json.dumps(report), flush=True)


def _inject_parameters(nb: Any, params: dict[str, Any]) -> None:
    """papermill's injection: a cell after the one tagged ``parameters``."""
    import nbformat

    source = "# Parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in params.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    nb.cells.insert(tagged[0] + 1 if tagged else 0, cell)


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "dask-resilience":
        dask_resilience()
    elif command == "spark-resilience":
        spark_resilience()
    elif command == "spark-intruder":
        os.environ["SPARK_MASTER_URL"] = f"spark://{IP['master']}:7077"
        spark_intruder(*args)
    elif command == "hub-session":
        hub_session(*args)
    else:
        raise SystemExit(f"unknown client command {command!r}")
