"""Cluster scripts and configuration, without starting anything (the netns test does)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from adanalytics import cluster_config

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = [REPO / "bootstrap.sh", REPO / "cluster" / "cluster.sh",
           REPO / "cluster" / "emr" / "bootstrap-action.sh"]


def _shellcheck() -> str:
    found = shutil.which("shellcheck")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck) and we are not root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "shellcheck"], env=env, check=True,
                   capture_output=True)
    return shutil.which("shellcheck") or pytest.fail("shellcheck missing after apt-get install")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_are_shellcheck_clean(script: Path) -> None:
    out = subprocess.run([_shellcheck(), "--severity=style", str(script)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_bootstrap_help_lists_the_cluster_commands() -> None:
    out = subprocess.run([str(REPO / "bootstrap.sh"), "--help"], capture_output=True, text=True, check=True)
    for command in ("master", "worker MASTER_HOST", "stop | status", "ADANALYTICS_HOME"):
        assert command in out.stdout
    assert "set -euo" not in out.stdout


def test_status_of_an_unprovisioned_node(tmp_path: Path) -> None:
    out = subprocess.run([str(REPO / "bootstrap.sh"), "status"], capture_output=True, text=True,
                         env={**os.environ, "ADANALYTICS_HOME": str(tmp_path / "none")})
    assert out.returncode == 3 and "nothing provisioned" in out.stdout


def test_worker_needs_a_master() -> None:
    out = subprocess.run([str(REPO / "cluster" / "cluster.sh"), "worker"], capture_output=True, text=True)
    assert out.returncode != 0


def test_systemd_unit_template_runs_the_same_service_script() -> None:
    unit = (REPO / "cluster" / "systemd" / "adanalytics-service.in").read_text()
    for key in ("ExecStart=@SELF@ run @SERVICE@", "Environment=ADANALYTICS_HOME=@HOME@",
                "StandardOutput=append:@HOME@/logs/@SERVICE@.log", "WantedBy=multi-user.target"):
        assert key in unit


def test_jupyterhub_config_is_deliberate(tmp_path: Path) -> None:
    pytest.importorskip("jupyterhub", reason="the cluster extra is not installed")
    from traitlets.config.loader import PyFileConfigLoader

    home = tmp_path / "home"
    home.mkdir()
    (home / "node.env").write_text('ADANALYTICS_HUB_PORT="8000"\nADANALYTICS_GROUP="analysts"\n')
    (home / "client.env").write_text("DASK_SCHEDULER_ADDRESS=tls://10.0.0.1:8786\n"
                                     "SPARK_MASTER=spark://10.0.0.1:7077\n")
    old = dict(os.environ)
    os.environ.update(ADANALYTICS_HOME=str(home), ADANALYTICS_HUB_USERS="alice, bob")
    try:
        loader = PyFileConfigLoader("jupyterhub_config.py", path=str(REPO / "cluster"))
        c = loader.load_config()
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert c.JupyterHub.authenticator_class == "pam"
    assert c.PAMAuthenticator.allowed_groups == {"analysts"}
    assert c.Authenticator.allowed_users == {"alice", "bob"}
    assert c.Authenticator.allow_all is False
    assert c.ConfigurableHTTPProxy.api_url.startswith("http://127.0.0.1:")
    assert c.JupyterHub.hub_bind_url.startswith("http://127.0.0.1:")
    assert c.JupyterHub.cookie_secret_file == str(home / "hub" / "jupyterhub_cookie_secret")
    env = c.Spawner.environment
    assert env["DASK_SCHEDULER_ADDRESS"] == "tls://10.0.0.1:8786"
    assert env["SPARK_MASTER"] == "spark://10.0.0.1:7077"
    assert env["PATH"].startswith(str(REPO / ".venv" / "bin"))
    assert c.Spawner.cmd[0].endswith("jupyterhub-singleuser")


# --- adanalytics.cluster_config ----------------------------------------------------------

@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A provisioned node's home; the process environment and Dask config are restored after.

    ``load_client_env`` writes ``os.environ`` itself (monkeypatch does not see that), and
    a leaked ``DASK_SCHEDULER_ADDRESS`` would send every later Dask test to this fake node.
    """
    import dask.config

    saved_env = dict(os.environ)
    yield _provision(tmp_path, monkeypatch)
    os.environ.clear()
    os.environ.update(saved_env)
    dask.config.refresh()


def _provision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in list(os.environ):
        if key.startswith(("DASK_DISTRIBUTED__COMM__TLS", "SPARK_CONF_DIR", "ADANALYTICS_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("ADANALYTICS_HOME", str(tmp_path))
    security = tmp_path / "security"
    security.mkdir()
    for name in ("ca.pem", "client.pem", "client.key"):
        (security / name).write_text("x")
    conf = tmp_path / "spark-conf"
    conf.mkdir()
    (conf / "spark-defaults.conf").write_text(
        "# secret\nspark.authenticate  true\nspark.authenticate.secret=abc\n"
        "spark.network.crypto.enabled: true\nspark.pyspark.python /venv/bin/python\n")
    (tmp_path / "client.env").write_text(
        "# comment\nDASK_SCHEDULER_ADDRESS=tls://10.1.2.3:8786\nexport SPARK_MASTER='spark://10.1.2.3:7077'\n")
    return tmp_path


def test_client_env_is_read_and_loaded_without_overriding(node: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cluster_config.client_env() == {"DASK_SCHEDULER_ADDRESS": "tls://10.1.2.3:8786",
                                           "SPARK_MASTER": "spark://10.1.2.3:7077"}
    monkeypatch.setenv("SPARK_MASTER", "spark://elsewhere:7077")
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    applied = cluster_config.load_client_env()
    assert applied == {"DASK_SCHEDULER_ADDRESS": "tls://10.1.2.3:8786"}
    assert os.environ["SPARK_MASTER"] == "spark://elsewhere:7077"


def test_spark_conf_keeps_the_security_settings(node: Path) -> None:
    assert cluster_config.spark_conf() == {"spark.authenticate": "true",
                                           "spark.authenticate.secret": "abc",
                                           "spark.network.crypto.enabled": "true"}
    assert cluster_config.spark_conf(security_only=False)["spark.pyspark.python"] == "/venv/bin/python"


def test_dask_security_from_the_security_directory(node: Path) -> None:
    sec = cluster_config.dask_security(required=True)
    assert sec is not None and sec.require_encryption
    assert sec.tls_ca_file == str(node / "security" / "ca.pem")
    assert sec.tls_client_key == str(node / "security" / "client.key")


def test_missing_credentials_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADANALYTICS_HOME", str(tmp_path))
    for key in list(os.environ):
        if key.startswith(("DASK_DISTRIBUTED__COMM__TLS", "SPARK_CONF_DIR", "ADANALYTICS_SECURITY")):
            monkeypatch.delenv(key)
    assert cluster_config.dask_security() is None
    assert cluster_config.spark_conf() == {}
    with pytest.raises(FileNotFoundError, match="DASK_DISTRIBUTED__COMM__TLS__CA_FILE"):
        cluster_config.dask_security(required=True)
    with pytest.raises(FileNotFoundError, match="SPARK_CONF_DIR"):
        cluster_config.spark_conf(required=True)
