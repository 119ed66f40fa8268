"""The Dask engine on a real cluster: ``dask scheduler`` and ``dask worker`` processes on
localhost, reached through ``DASK_SCHEDULER_ADDRESS``.

- every analysis gives the pandas engine's answer, and both workers execute tasks;
- a worker killed (SIGKILL, by pid) in the middle of an analysis loses its tasks and its
  persisted partitions; a replacement worker joins and the analysis still completes
  with the right answer (the peer-to-peer shuffle restarts, lost partitions are
  recomputed from the Parquet files).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

import adanalytics as aa
from tests.test_dask_engine import CASES, assert_same, random_dataset, run, write

#: Location records of the test dataset: enough tasks to kill a worker mid-way, small
#: enough to keep the module well under a minute.
RECORDS = 60_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalProcesses:
    """A scheduler and workers started as ``python -m dask ...`` subprocesses."""

    root: Path
    address: str = ""
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: names of the workers that should be alive
    workers: list[str] = field(default_factory=list)

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=log,
                                stderr=subprocess.STDOUT, cwd=self.root)
        self.procs[name] = proc
        return proc

    def start_scheduler(self) -> str:
        port = _free_port()
        self._spawn("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                    "--no-dashboard")
        self.address = f"tcp://127.0.0.1:{port}"
        return self.address

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        (self.root / name).mkdir(exist_ok=True)
        self.workers.append(name)
        return self._spawn(name, "worker", self.address, "--name", name, "--nthreads", "1",
                           "--no-nanny", "--no-dashboard", "--host", "127.0.0.1",
                           "--memory-limit", "2GiB", "--local-directory", str(self.root / name))

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        """Stop the workers, then the scheduler (nothing of theirs needs to survive)."""
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)


def _wait_for_workers(address: str, names: set[str], timeout: float = 90.0) -> dict[str, str]:
    """Worker name -> address, once every named worker has joined."""
    from distributed import Client

    with Client(address, timeout=30, set_as_default=False) as client:
        deadline = time.monotonic() + timeout
        while True:
            workers = client.scheduler_info(n_workers=-1)["workers"]
            joined = {w["name"]: addr for addr, w in workers.items()}
            if names <= set(joined):
                return {n: joined[n] for n in names}
            if time.monotonic() > deadline:
                msg = f"workers {sorted(names - set(joined))} did not join {address}"
                raise TimeoutError(msg)
            time.sleep(0.2)


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Parquet dataset (several files per big table) both engines read."""
    root = tmp_path_factory.mktemp("cluster-data")
    try:
        from adanalytics.synth import generate
    except ImportError:  # the generator is optional here: fall back to random data
        data = random_dataset(seed=11, n_users=60, n_locations=RECORDS, n_interactions=8000)
        return write(data, root / "ds", "parquetdir")
    generate(root / "ds", scale=RECORDS, seed=11)
    return root / "ds"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalProcesses]:
    """``dask scheduler`` plus workers ``w1`` and ``w2`` on localhost (a test that kills
    one starts a replacement)."""
    procs = LocalProcesses(tmp_path_factory.mktemp("cluster"))
    try:
        procs.start_scheduler()
        procs.start_worker("w1")
        procs.start_worker("w2")
        _wait_for_workers(procs.address, {"w1", "w2"})
        yield procs
    finally:
        procs.stop()


@pytest.fixture(scope="module")
def expected(dataset_dir: Path) -> dict[tuple[str, str | None], pd.DataFrame]:
    """Every analysis on the pandas engine."""
    ds = aa.open_dataset(str(dataset_dir), engine="pandas")
    return {(name, by): run(ds, name, by) for name, by in CASES}


def test_every_analysis_runs_on_both_workers(
    cluster: LocalProcesses, dataset_dir: Path, expected: dict[tuple[str, str | None], pd.DataFrame],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from distributed import get_task_stream

    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.address)
    workers = _wait_for_workers(cluster.address, set(cluster.workers))
    assert len(workers) == 2
    with aa.open_dataset(str(dataset_dir), engine="dask") as ds:
        client = ds.engine.client
        assert ds.engine.address == cluster.address
        assert client.scheduler.address == cluster.address
        with get_task_stream(client=client) as stream:
            ds.persist()
            for name, by in CASES:
                assert_same(run(ds, name, by), expected[(name, by)])
        ran_on = {t["worker"] for t in stream.data}
        assert ran_on == set(workers.values()), f"tasks ran on {ran_on}, workers {workers}"
        # and from the workers' own point of view: both computed tasks
        executed = client.run(lambda dask_worker: dask_worker.state.transition_counter)
        assert set(executed) == set(workers.values())
        assert all(n > 0 for n in executed.values()), executed


@pytest.mark.parametrize("analysis", ["attribution", "recommendations"])
def test_worker_killed_mid_analysis(
    cluster: LocalProcesses, dataset_dir: Path, expected: dict[tuple[str, str | None], pd.DataFrame],
    analysis: str,
) -> None:
    workers = _wait_for_workers(cluster.address, set(cluster.workers))
    name = cluster.workers[0]
    # many small partitions and the peer-to-peer shuffle (the large-data path)
    with aa.open_dataset(str(dataset_dir), engine="dask", address=cluster.address,
                         blocksize="256KiB", shuffle_method="p2p") as ds:
        client = ds.engine.client
        pids = client.run(os.getpid)
        victim = workers[name]
        assert pids[victim] == cluster.procs[name].pid  # --no-nanny: the worker is the process
        ds.persist()  # the victim holds part of the persisted tables
        assert any(client.has_what()[victim]), f"{name} holds no persisted partition"
        by = "month" if analysis == "attribution" else None
        frame = getattr(ds, analysis)(**({"by": by} if by else {}))
        future = client.compute(frame)
        deadline = time.monotonic() + 60
        while not client.processing().get(victim):  # kill while it is running a task
            assert time.monotonic() < deadline, f"{name} never got a task"
            assert not future.done(), f"the analysis finished before {name} could be killed"
            time.sleep(0.005)
        os.kill(pids[victim], signal.SIGKILL)
        cluster.workers.remove(name)
        cluster.start_worker(f"w{len(cluster.procs)}")  # keep the cluster's capacity
        result = future.result(timeout=180)
        assert cluster.procs[name].wait(timeout=10) == -signal.SIGKILL
        assert_same(result, expected[(analysis, by)])
        alive = {w["name"] for w in client.scheduler_info(n_workers=-1)["workers"].values()}
        assert name not in alive
        assert f"Remove worker addr: {victim}" in cluster.log("scheduler")
