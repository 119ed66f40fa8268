#!/usr/bin/env bash
# EMR bootstrap action: install adanalytics on every node of an EMR cluster with the same
# steps as ./bootstrap.sh (a virtual environment with the package and its pinned
# dependencies), so that Spark executors and the driver share one Python environment.
#
#   Bootstrap action path: s3://BUCKET/adanalytics/emr/bootstrap-action.sh
#   Arguments:             s3://BUCKET/adanalytics/adanalytics-src.tar.gz [EXTRAS]
#
# The tarball is the repository (git archive --format=tar.gz HEAD). EXTRAS defaults to
# "cluster" (JupyterHub, papermill; "dev" adds the test tools). The environment lands in
# /opt/adanalytics/venv; point Spark at it with the spark-env classification
# (PYSPARK_PYTHON=/opt/adanalytics/venv/bin/python), see README "Cluster" > "On AWS".
# EMR runs bootstrap actions as the hadoop user, before Spark is installed, on every node.
set -euo pipefail

SOURCE="${1:?usage: bootstrap-action.sh s3://BUCKET/PATH/adanalytics-src.tar.gz [EXTRAS]}"
EXTRAS="${2:-cluster}"
PREFIX="${ADANALYTICS_PREFIX:-/opt/adanalytics}"

log() { printf '[adanalytics-emr] %s\n' "$*"; }

install_os_packages() {
  # Amazon Linux 2023 (EMR 7): Python 3.11 and its headers; Java comes with EMR
  if command -v dnf >/dev/null 2>&1; then
    sudo dnf install -y -q python3.11 python3.11-devel python3.11-pip gcc tar gzip
  elif command -v yum >/dev/null 2>&1; then
    sudo yum install -y -q python3.11 python3.11-devel gcc tar gzip
  fi
}

fetch_source() {
  local archive
  archive="$(mktemp --suffix=.tar.gz)"
  log "fetching $SOURCE"
  aws s3 cp --only-show-errors "$SOURCE" "$archive"
  sudo mkdir -p "$PREFIX/src"
  sudo tar -xzf "$archive" -C "$PREFIX/src"
  sudo chown -R "$(id -u):$(id -g)" "$PREFIX"
  rm -f "$archive"
}

install_environment() {
  # the same install steps as every other node: bootstrap.sh's local setup
  log "installing the Python environment into $PREFIX/venv (extras: $EXTRAS)"
  (
    cd "$PREFIX/src"
    PYTHON=python3.11 ADANALYTICS_VENV="$PREFIX/venv" ADANALYTICS_EXTRAS="$EXTRAS" \
      ADANALYTICS_SKIP_SYSTEM_PACKAGES=1 ./bootstrap.sh
  )
  chmod -R a+rX "$PREFIX"
}

install_os_packages
fetch_source
install_environment
log "done: $PREFIX/venv/bin/python -c 'import adanalytics'"
