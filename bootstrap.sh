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
APT_PACKAGES=(openjdk-17-jre-headless redis-server python3-venv python3-dev build-essential procps iproute2 curl ca-certificates chromium)
# (chromium: PDF of the slides and the browser tests; nodejs + npm for the slide assets are
# installed by install_slide_assets only where no npm exists: a NodeSource nodejs ships its
# own npm and conflicts with Debian's npm package)

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

# The reveal.js decks of `adanalytics slides` load reveal.js, require.js, jQuery, MathJax and
# Font Awesome from files copied beside them (they render offline): `npm ci` installs the
# versions pinned in slides/package-lock.json into slides/node_modules, again only when the
# lock file changed.
install_slide_assets() {
  local dir="$HERE/slides"
  [ -f "$dir/package-lock.json" ] || return 0
  if ! command -v npm >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "${ADANALYTICS_SKIP_SYSTEM_PACKAGES:-0}" != 1 ]; then
      local sudo=""
      [ "$(id -u)" -eq 0 ] || sudo="sudo"
      log "installing nodejs and npm (for the slide assets)"
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
    else
      log "warning: npm not found; 'adanalytics slides' needs 'npm ci --prefix slides' (Node.js)"
      return 0
    fi
  fi
  local stamp="$dir/node_modules/.adanalytics-lock" want
  want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  # up to date: stamped by an earlier run, or every locked package already installed
  if { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; } || (cd "$dir" && node -e '
      const fs = require("fs"), lock = require("./package-lock.json").packages;
      for (const [p, v] of Object.entries(lock)) {
        if (!p) continue;
        const f = p + "/package.json";
        if (!fs.existsSync(f) || JSON.parse(fs.readFileSync(f)).version !== v.version) process.exit(1);
      }' 2>/dev/null); then
    echo "$want" > "$stamp"
    log "slide assets up to date (slides/node_modules)"
    return 0
  fi
  log "installing the slide assets (reveal.js 4, MathJax 2, ...) from npm into slides/node_modules"
  if (cd "$dir" && npm ci --no-fund --no-audit --loglevel=error --fetch-retries=1 \
        --fetch-timeout=60000 >/dev/null); then
    echo "$want" > "$stamp"
  else
    log "warning: 'npm ci' in slides/ failed: 'adanalytics slides' will retry it when run"
  fi
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
      install_slide_assets
      check_java
      log "ready: $VENV/bin/adanalytics --help"
      ;;
    master|worker)
      install_system_packages
      setup_python
      install_slide_assets
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
