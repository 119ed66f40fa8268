"""JupyterHub of the adanalytics cluster (started by ``cluster/cluster.sh run jupyterhub``).

- Users log in with their system account (PAM). Nobody is admitted by default: members of
  the Unix group ``adanalytics`` (``usermod -aG adanalytics alice``) and the users named in
  ``ADANALYTICS_HUB_USERS`` are; ``ADANALYTICS_HUB_ADMINS`` names the admins.
- Every user's server runs as that user, from the cluster's virtual environment (the
  kernel imports ``adanalytics``), with the environment of ``$ADANALYTICS_HOME/client.env``:
  ``DASK_SCHEDULER_ADDRESS``, ``SPARK_MASTER``, the Dask TLS files and ``SPARK_CONF_DIR``,
  so notebooks reach the cluster with no edits.
- The notebooks of ``notebooks/`` (and the cluster check of ``cluster/notebooks/``) are
  copied into ``~/notebooks`` at every spawn, never over a file the user already has.
- The Dask dashboard is proxied by jupyter-server-proxy at ``/user/NAME/proxy/8787/status``
  and dask-labextension opens it from JupyterLab (``distributed.dashboard.link``).
- The cookie secret and the proxy token are files of mode 600; the proxy's API and the
  hub's own API listen on loopback only.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
from pathlib import Path

c = get_config()  # type: ignore[name-defined]  # noqa: F821  (JupyterHub's config loader)


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of a shell environment file (comments and blanks skipped)."""
    env: dict[str, str] = {}
    if not path.exists():
        return env
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        parts = shlex.split(value) if value else [""]
        env[key.strip()] = parts[0] if parts else ""
    return env


def names(var: str) -> set[str]:
    return {n.strip() for n in os.environ.get(var, "").replace(",", " ").split() if n.strip()}


AA_HOME = Path(os.environ.get("ADANALYTICS_HOME", "/var/lib/adanalytics"))
NODE = read_env_file(AA_HOME / "node.env")
CLIENT = read_env_file(AA_HOME / "client.env")
REPO = Path(NODE.get("ADANALYTICS_REPO") or Path(__file__).resolve().parents[1])
VENV = Path(NODE.get("ADANALYTICS_VENV") or REPO / ".venv")
HUB_DIR = AA_HOME / "hub"
GROUP = NODE.get("ADANALYTICS_GROUP", "adanalytics")
HUB_PORT = int(NODE.get("ADANALYTICS_HUB_PORT", "8000"))
DASHBOARD_PORT = NODE.get("ADANALYTICS_DASHBOARD_PORT", "8787")

# --- network: public port for people, everything else on loopback ---------------------
c.JupyterHub.bind_url = f"http://:{HUB_PORT}"
c.JupyterHub.hub_bind_url = os.environ.get("ADANALYTICS_HUB_API_URL", "http://127.0.0.1:8091")
c.ConfigurableHTTPProxy.api_url = os.environ.get("ADANALYTICS_PROXY_API_URL", "http://127.0.0.1:8001")
c.ConfigurableHTTPProxy.should_start = True
if NODE.get("ADANALYTICS_CHP"):
    c.ConfigurableHTTPProxy.command = [NODE["ADANALYTICS_CHP"]]
# the proxy token comes from CONFIGPROXY_AUTH_TOKEN (cluster.sh reads hub/proxy_auth_token)

# --- state and secrets ----------------------------------------------------------------
c.JupyterHub.cookie_secret_file = str(HUB_DIR / "jupyterhub_cookie_secret")  # mode 600
c.JupyterHub.db_url = f"sqlite:///{HUB_DIR / 'jupyterhub.sqlite'}"
c.JupyterHub.pid_file = str(HUB_DIR / "jupyterhub.pid")
c.JupyterHub.cleanup_servers = True

# --- who may log in -------------------------------------------------------------------
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.allowed_groups = {GROUP}
c.Authenticator.allowed_users = names("ADANALYTICS_HUB_USERS")
c.Authenticator.admin_users = names("ADANALYTICS_HUB_ADMINS")
c.Authenticator.allow_all = False
c.LocalAuthenticator.create_system_users = False
# PAM sessions need a login manager (pam_systemd, utmp) that servers and containers often
# lack; authentication itself is what matters here
c.PAMAuthenticator.open_sessions = False

# --- the single-user servers ----------------------------------------------------------
c.Spawner.cmd = [str(VENV / "bin" / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.Spawner.environment = {
    **CLIENT,
    "PATH": f"{VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin",
    # links printed by dask (and found by dask-labextension) go through jupyter-server-proxy
    "DASK_DISTRIBUTED__DASHBOARD__LINK": "{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status",
}

NOTEBOOK_SOURCES = (REPO / "notebooks", REPO / "cluster" / "notebooks")


def _no_symlinks(path: Path, home: Path) -> None:
    """The hub writes as root into a user's home: refuse paths a symlink could redirect."""
    for p in [path, *path.parents]:
        if p == home or home not in p.parents:
            break
        if p.is_symlink():
            msg = f"refusing to write through the symlink {p}"
            raise PermissionError(msg)


def _user_dir(path: Path, account: pwd.struct_passwd) -> Path:
    """``path`` (and missing parents under the home) created and owned by the user."""
    home = Path(account.pw_dir)
    _no_symlinks(path, home)
    missing = [p for p in [path, *path.parents] if p != home and home in p.parents and not p.exists()]
    for p in reversed(missing):
        p.mkdir()
        os.chown(p, account.pw_uid, account.pw_gid)
    return path


def _user_file(path: Path, text: str, account: pwd.struct_passwd) -> None:
    _user_dir(path.parent, account)
    _no_symlinks(path, Path(account.pw_dir))
    path.write_text(text)
    os.chown(path, account.pw_uid, account.pw_gid)


def prepare_home(spawner) -> None:  # type: ignore[no-untyped-def]
    """Before a server starts: notebooks into ``~/notebooks`` (the user's edits are kept)
    and dask-labextension pointed at the proxied dashboard (unless the user chose one)."""
    try:
        account = pwd.getpwnam(spawner.user.name)
    except KeyError:
        return
    home = Path(account.pw_dir)
    settings = home / ".jupyter/lab/user-settings/dask-labextension/plugin.jupyterlab-settings"
    if not settings.exists():
        url = f"{spawner.user.url.rstrip('/')}/proxy/{DASHBOARD_PORT}"
        _user_file(settings, json.dumps({"defaultURL": url, "browserDashboardCheck": True}), account)
    target = _user_dir(home / "notebooks", account)
    for source in NOTEBOOK_SOURCES:
        for notebook in sorted(source.glob("*.ipynb")):
            dest = target / notebook.name
            if dest.exists() or dest.is_symlink():
                continue
            shutil.copyfile(notebook, dest)
            os.chown(dest, account.pw_uid, account.pw_gid)
            spawner.log.info("copied %s into %s", notebook.name, target)


c.Spawner.pre_spawn_hook = prepare_home
