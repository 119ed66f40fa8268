#!/usr/bin/env bash
# Set up this machine for adanalytics, idempotently.
#
#   ./bootstrap.sh                     local use: system packages, .venv, the package with its extras
#   ./bootstrap.sh master              local setup + Dask scheduler (tls://:8786, dashboard :8787),
#                                      Spark master (:7077, UI :8080), JupyterHub (:8000)
#   ./bootstrap.sh worker MASTER_HOST  local setup + a Dask worker and a Spark worker joined to MASTER
#   ./bootstrap.sh stop | status       stop / show this node's cluster services
#   (master and worker take --install-only: install everything, start nothing)
#
# Cluster state, logs and pid files: $ADANALYTICS_HOME (default /var/lib/adanalytics);
# the service scripts and configuration are in cluster/ (see cluster/README.md).
#
# System packages (Debian/Ubuntu, via apt): Java 17 for Spark, redis-server for the
# real-time path, python3-venv. Python packages: pip, from pyproject.toml, into ./.venv.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${ADANALYTICS_VENV:-$HERE/.venv}"
PYTHON="${PYTHON:-python3}"
EXTRAS="${ADANALYTICS_EXTRAS:-dev}"  # the pyproject extras installed (cluster/emr uses "cluster")
APT_PACKAGES=(openjdk-17-jre-headless redis-server python3-venv python3-dev build-essential procps iproute2 curl ca-certificates)

log() { printf '\033[1;34m[bootstrap]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[bootstrap] error:\033[0m %s\n' "$*" >&2; exit 1; }

install_system_packages() {
  if [ "${ADANALYTICS_SKIP_SYSTEM_PACKAGES:-0}" = 1 ]; then
    log "system packages skipped (ADANALYTICS_SKIP_SYSTEM_PACKAGES=1)"
    return
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    log "no apt-get: install ${APT_PACKAGES[*]} with your package manager"
    return
  fi
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "system packages present"
    return
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to install: ${missing[*]}"
    sudo="sudo"
  fi
  log "installing system packages: ${missing[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

setup_python() {
  "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 10), sys.version' 2>/dev/null \
    || die "$PYTHON must be Python >= 3.10"
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  # re-install only when the dependency list changed
  local stamp="$VENV/.adanalytics-installed"
  local want
  want="$(sha256sum "$HERE/pyproject.toml" | cut -d' ' -f1)"
  [ "$EXTRAS" = dev ] || want="$want-$EXTRAS"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$VENV/bin/python" -c "import adanalytics" 2>/dev/null; then
    log "python environment up to date ($VENV)"
    return
  fi
  log "installing adanalytics and its dependencies into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e "${HERE}[$EXTRAS]"
  echo "$want" > "$stamp"
}

check_java() {
  command -v java >/dev/null 2>&1 || die "java not found after installation (Spark needs Java 17)"
}

main() {
  local cmd="${1:-local}"
  case "$cmd" in
    local|"")
      install_system_packages
      setup_python
      check_java
      log "ready: $VENV/bin/adanalytics --help"
      ;;
    master|worker)
      install_system_packages
      setup_python
      check_java
      exec "$HERE/cluster/cluster.sh" "$@"
      ;;
    stop|status)
      exec "$HERE/cluster/cluster.sh" "$@"
      ;;
    -h|--help|help)
      sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
      ;;
    *)
      die "unknown command '$cmd' (see ./bootstrap.sh --help)"
      ;;
  esac
}

main "$@"
