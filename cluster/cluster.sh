#!/usr/bin/env bash
# The adanalytics cluster on this machine: Dask scheduler/worker, Spark standalone
# master/worker and JupyterHub, as systemd units where systemd runs, plain daemons
# otherwise. Normally called through ../bootstrap.sh, which first sets up the machine.
#
#   cluster.sh master [--install-only]        provision + start scheduler, Spark master, hub
#   cluster.sh worker MASTER [--install-only] provision + start Dask and Spark workers
#   cluster.sh stop                           stop every service of this node
#   cluster.sh status                         what runs here (exit 3 when something is down)
#   cluster.sh run SERVICE                    one service in the foreground (systemd ExecStart)
#
# State (ADANALYTICS_HOME, default /var/lib/adanalytics):
#   node.env            roles, addresses and ports of this node
#   client.env          the environment a client needs (source it)
#   security/           Dask TLS CA and certificates (the CA key only on the master)
#   spark-conf/         spark-defaults.conf with the Spark authentication secret
#   join-bundle.tar.gz  (master) what a worker needs: copy it to the worker's ADANALYTICS_HOME
#   hub/                JupyterHub database, cookie secret, proxy token
#   logs/  run/         one log and one pid file per service
#   work/               Dask and Spark scratch space
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$REPO/cluster/cluster.sh"
VENV="${ADANALYTICS_VENV:-$REPO/.venv}"
AA_HOME="${ADANALYTICS_HOME:-/var/lib/adanalytics}"
SERVICE_USER="${ADANALYTICS_SERVICE_USER:-adanalytics}"
AA_GROUP="${ADANALYTICS_GROUP:-adanalytics}"
DASK_PORT="${ADANALYTICS_DASK_PORT:-8786}"
DASHBOARD_PORT="${ADANALYTICS_DASHBOARD_PORT:-8787}"
SPARK_PORT="${ADANALYTICS_SPARK_PORT:-7077}"
SPARK_UI_PORT="${ADANALYTICS_SPARK_UI_PORT:-8080}"
SPARK_WORKER_UI_PORT="${ADANALYTICS_SPARK_WORKER_UI_PORT:-8081}"
HUB_PORT="${ADANALYTICS_HUB_PORT:-8000}"
START_TIMEOUT="${ADANALYTICS_START_TIMEOUT:-120}"

SECURITY="$AA_HOME/security"
SPARK_CONF="$AA_HOME/spark-conf"
LOGS="$AA_HOME/logs"
RUN="$AA_HOME/run"
HUB="$AA_HOME/hub"
WORK="$AA_HOME/work"
BUNDLE="$AA_HOME/join-bundle.tar.gz"

MASTER_SERVICES=(dask-scheduler spark-master jupyterhub)
WORKER_SERVICES=(dask-worker spark-worker)

log() { printf '\033[1;34m[cluster]\033[0m %s\n' "$*"; }
warn() { printf '\033[1;33m[cluster]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[cluster] error:\033[0m %s\n' "$*" >&2; exit 1; }

need_root() {
  [ "$(id -u)" -eq 0 ] || die "'$1' needs root (it creates users, binds ports and spawns servers as users)"
}

# --- system -------------------------------------------------------------------------

apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  command -v apt-get >/dev/null 2>&1 || die "install ${missing[*]} with your package manager"
  log "installing system packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# configurable-http-proxy (JupyterHub's proxy) comes from npm
install_master_packages() {
  apt_install openssl util-linux acl
  if ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
  fi
  if ! command -v configurable-http-proxy >/dev/null 2>&1; then
    log "installing configurable-http-proxy from npm"
    npm install -g --no-fund --no-audit configurable-http-proxy@5 >/dev/null
  fi
  command -v configurable-http-proxy >/dev/null 2>&1 \
    || die "configurable-http-proxy not on PATH after 'npm install -g' (npm prefix: $(npm prefix -g))"
}

install_worker_packages() {
  apt_install util-linux acl
}

# The service user runs Dask and Spark; the group may read the cluster's client
# credentials (members: the service user and every JupyterHub user).
ensure_accounts() {
  getent group "$AA_GROUP" >/dev/null || groupadd --system "$AA_GROUP"
  if [ "$SERVICE_USER" != root ] && ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
    useradd --system --gid "$AA_GROUP" --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin "$SERVICE_USER"
  fi
}

# The service user and the hub's users run the cluster's Python. When it lives under a
# directory they cannot enter (pyenv in /root, say), give the group traverse-only access
# (an ACL "g:adanalytics:x" on each such directory: no listing, no reading).
grant_python_access() {
  local path dir
  for path in "$(readlink -f "$VENV/bin/python")" "$VENV/bin/python" "$REPO/adanalytics"; do
    dir="$(dirname "$path")"
    while [ "$dir" != / ]; do
      if [ "$(($(stat -c '%a' "$dir") % 2))" -eq 0 ] && ! getfacl -cp "$dir" 2>/dev/null | grep -q "^group:$AA_GROUP:..x"; then
        log "granting group $AA_GROUP traverse-only access to $dir (the cluster's Python is below it)"
        setfacl -m "g:$AA_GROUP:x" "$dir"
      fi
      dir="$(dirname "$dir")"
    done
  done
  [ "$SERVICE_USER" = root ] && return
  setpriv --reuid="$SERVICE_USER" --regid="$AA_GROUP" --init-groups -- \
    "$VENV/bin/python" -c 'import adanalytics, distributed, pyspark' 2>/dev/null \
    || die "user $SERVICE_USER cannot run $VENV/bin/python with adanalytics (check the permissions of $VENV and its base Python)"
}

make_dirs() {
  install -d -m 755 "$AA_HOME" "$LOGS" "$RUN"
  install -d -m 750 -o root -g "$AA_GROUP" "$SECURITY" "$SPARK_CONF"
  install -d -m 755 -o "$SERVICE_USER" -g "$AA_GROUP" "$WORK" "$WORK/dask" "$WORK/spark" "$WORK/home"
}

# --- addresses ------------------------------------------------------------------------

resolve_ipv4() {
  local host="$1"
  if [[ "$host" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]]; then echo "$host"; return; fi
  getent ahostsv4 "$host" | awk 'NR==1 {print $1}'
}

# the address others reach this node at: ADANALYTICS_ADVERTISE, else the source address of
# the route to the master (worker), else the first global IPv4 address (master)
advertise_address() {
  local target="${1:-}" addr=""
  if [ -n "${ADANALYTICS_ADVERTISE:-}" ]; then echo "$ADANALYTICS_ADVERTISE"; return; fi
  if [ -n "$target" ]; then
    addr="$(ip -4 route get "$target" 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "src") print $(i + 1)}' | head -1)"
  fi
  [ -n "$addr" ] || addr="$(ip -4 -o addr show scope global 2>/dev/null | awk '{split($4, a, "/"); print a[1]; exit}')"
  [ -n "$addr" ] || die "cannot tell this node's IPv4 address; set ADANALYTICS_ADVERTISE"
  echo "$addr"
}

# --- security -------------------------------------------------------------------------

issue_cert() { # name, CN, subjectAltName
  local name="$1" cn="$2" san="$3" ext
  ext="$(mktemp)"
  cat > "$ext" <<EOF
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
subjectAltName = $san
EOF
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$SECURITY/$name.key" -subj "/O=adanalytics/CN=$cn" -out "$SECURITY/$name.csr" 2>/dev/null
  openssl x509 -req -in "$SECURITY/$name.csr" -CA "$SECURITY/ca.pem" -CAkey "$SECURITY/ca-key.pem" \
    -CAcreateserial -days 825 -sha256 -extfile "$ext" -out "$SECURITY/$name.pem" 2>/dev/null
  rm -f "$SECURITY/$name.csr" "$ext"
}

# Generated once on the master; kept across restarts (delete security/ to rotate).
generate_secrets() {
  local addr="$1"
  if [ ! -f "$SECURITY/ca.pem" ]; then
    log "generating the Dask TLS certificate authority and certificates ($SECURITY)"
    (
      umask 077
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 -sha256 \
        -keyout "$SECURITY/ca-key.pem" -out "$SECURITY/ca.pem" -subj "/O=adanalytics/CN=adanalytics cluster CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" 2>/dev/null
      issue_cert scheduler "adanalytics-scheduler" "IP:$addr,IP:127.0.0.1,DNS:localhost,DNS:$(hostname)"
      issue_cert worker "adanalytics-worker" "DNS:adanalytics-worker"
      issue_cert client "adanalytics-client" "DNS:adanalytics-client"
    )
  fi
  if [ ! -f "$SPARK_CONF/spark-defaults.conf" ]; then
    log "generating the Spark authentication secret ($SPARK_CONF/spark-defaults.conf)"
    local secret
    secret="$(openssl rand -hex 32)"
    (
      umask 077
      cat > "$SPARK_CONF/spark-defaults.conf" <<EOF
# adanalytics cluster: every Spark process (master, workers, executors, drivers) must share
# this secret. Generated by 'bootstrap.sh master'; readable by group $AA_GROUP only.
spark.authenticate                    true
spark.authenticate.secret             $secret
spark.network.crypto.enabled          true
spark.network.crypto.cipher           AES/GCM/NoPadding
spark.network.crypto.saslFallback     false
# the REST submission server has no authentication: keep it off
spark.master.rest.enabled             false
spark.pyspark.python                  $VENV/bin/python
spark.pyspark.driver.python           $VENV/bin/python
spark.worker.cleanup.enabled          true
spark.sql.shuffle.partitions          8
EOF
    )
  fi
  fix_security_permissions
  # what a worker needs, for the operator to copy (scp, a secrets manager, S3 with KMS...)
  (
    umask 077
    tar -czf "$BUNDLE.tmp" -C "$AA_HOME" security/ca.pem security/worker.pem security/worker.key \
      security/client.pem security/client.key spark-conf/spark-defaults.conf
    mv "$BUNDLE.tmp" "$BUNDLE"
  )
  if [ ! -f "$HUB/jupyterhub_cookie_secret" ]; then
    install -d -m 700 "$HUB"
    (umask 077; openssl rand -hex 32 > "$HUB/jupyterhub_cookie_secret")
  fi
  if [ ! -f "$HUB/proxy_auth_token" ]; then
    (umask 077; openssl rand -hex 32 > "$HUB/proxy_auth_token")
  fi
  chmod 700 "$HUB"
  chmod 600 "$HUB/jupyterhub_cookie_secret" "$HUB/proxy_auth_token"
}

fix_security_permissions() {
  chown -R root:"$AA_GROUP" "$SECURITY" "$SPARK_CONF"
  chmod 750 "$SECURITY" "$SPARK_CONF"
  find "$SECURITY" "$SPARK_CONF" -type f -exec chmod 640 {} +
  if [ -f "$SECURITY/ca-key.pem" ]; then chown root:root "$SECURITY/ca-key.pem"; chmod 600 "$SECURITY/ca-key.pem"; fi
  rm -f "$SECURITY/ca.srl"
}

# A worker gets its credentials from the join bundle the master wrote.
install_join_bundle() {
  local bundle="${ADANALYTICS_JOIN_BUNDLE:-$BUNDLE}"
  if [ -f "$bundle" ]; then
    if [ ! -f "$SECURITY/ca.pem" ] || [ "$bundle" -nt "$SECURITY/ca.pem" ]; then
      log "installing the cluster credentials from $bundle"
      tar -xzf "$bundle" -C "$AA_HOME" --no-same-owner
      touch "$SECURITY/ca.pem"
    fi
  fi
  if [ ! -f "$SECURITY/ca.pem" ] || [ ! -f "$SECURITY/worker.key" ] || [ ! -f "$SPARK_CONF/spark-defaults.conf" ]; then
    die "no cluster credentials: copy the master's $BUNDLE to $bundle on this worker (e.g. scp root@MASTER:/var/lib/adanalytics/join-bundle.tar.gz $bundle) and run again"
  fi
  fix_security_permissions
}

# --- node and client environment -------------------------------------------------------

write_node_env() { # roles, advertise, master address
  local roles="$1" addr="$2" master="$3" chp="" spark_home
  chp="$(command -v configurable-http-proxy || true)"
  spark_home="$("$VENV/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
  cat > "$AA_HOME/node.env.tmp" <<EOF
# written by cluster.sh; read by 'cluster.sh run' and cluster/jupyterhub_config.py
ADANALYTICS_ROLES="$roles"
ADANALYTICS_ADVERTISE="$addr"
ADANALYTICS_MASTER="$master"
ADANALYTICS_REPO="$REPO"
ADANALYTICS_VENV="$VENV"
ADANALYTICS_SERVICE_USER="$SERVICE_USER"
ADANALYTICS_GROUP="$AA_GROUP"
ADANALYTICS_DASK_PORT="$DASK_PORT"
ADANALYTICS_DASHBOARD_PORT="$DASHBOARD_PORT"
ADANALYTICS_SPARK_PORT="$SPARK_PORT"
ADANALYTICS_SPARK_UI_PORT="$SPARK_UI_PORT"
ADANALYTICS_SPARK_WORKER_UI_PORT="$SPARK_WORKER_UI_PORT"
ADANALYTICS_HUB_PORT="$HUB_PORT"
ADANALYTICS_CHP="$chp"
SPARK_HOME="$spark_home"
EOF
  mv "$AA_HOME/node.env.tmp" "$AA_HOME/node.env"
  cat > "$AA_HOME/client.env.tmp" <<EOF
# The environment of a client of the adanalytics cluster (notebooks, scripts, the CLI):
#   set -a; . $AA_HOME/client.env; set +a
# It names files only; reading them needs membership of group $AA_GROUP.
DASK_SCHEDULER_ADDRESS=tls://$master:$DASK_PORT
SPARK_MASTER=spark://$master:$SPARK_PORT
ADANALYTICS_HOME=$AA_HOME
ADANALYTICS_SECURITY_DIR=$SECURITY
ADANALYTICS_DASHBOARD_URL=http://$master:$DASHBOARD_PORT/status
DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION=True
DASK_DISTRIBUTED__COMM__TLS__CA_FILE=$SECURITY/ca.pem
DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT=$SECURITY/client.pem
DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY=$SECURITY/client.key
SPARK_CONF_DIR=$SPARK_CONF
SPARK_LOCAL_IP=$addr
PYSPARK_PYTHON=$VENV/bin/python
PYSPARK_DRIVER_PYTHON=$VENV/bin/python
EOF
  mv "$AA_HOME/client.env.tmp" "$AA_HOME/client.env"
  chmod 644 "$AA_HOME/node.env" "$AA_HOME/client.env"
}

load_node_env() {
  [ -f "$AA_HOME/node.env" ] || die "$AA_HOME is not provisioned (run bootstrap.sh master|worker first)"
  # shellcheck source=/dev/null
  . "$AA_HOME/node.env"
}

node_services() {
  local roles="${ADANALYTICS_ROLES:-}"
  [[ " $roles " == *" master "* ]] && printf '%s\n' "${MASTER_SERVICES[@]}"
  [[ " $roles " == *" worker "* ]] && printf '%s\n' "${WORKER_SERVICES[@]}"
  return 0
}

# --- running one service (foreground) ---------------------------------------------------

as_service_user() {
  export HOME="$WORK/home"
  if [ "$SERVICE_USER" = root ]; then exec "$@"; fi
  exec setpriv --reuid="$SERVICE_USER" --regid="$AA_GROUP" --init-groups -- "$@"
}

run_service() {
  local name="$1"
  load_node_env
  export ADANALYTICS_SERVICE="$name" ADANALYTICS_HOME="$AA_HOME"
  export PATH="$VENV/bin:$PATH"
  echo "$$" > "$RUN/$name.pid"
  local addr="$ADANALYTICS_ADVERTISE" master="$ADANALYTICS_MASTER"
  local tls=(--tls-ca-file "$SECURITY/ca.pem")
  export SPARK_HOME SPARK_CONF_DIR="$SPARK_CONF" SPARK_LOCAL_IP="$addr" SPARK_NO_DAEMONIZE=1
  export DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION=True
  case "$name" in
    dask-scheduler)
      as_service_user "$VENV/bin/dask" scheduler --protocol tls --host "$addr" --port "$DASK_PORT" \
        --dashboard-address ":$DASHBOARD_PORT" "${tls[@]}" \
        --tls-cert "$SECURITY/scheduler.pem" --tls-key "$SECURITY/scheduler.key"
      ;;
    dask-worker)
      # large temporaries from the heap, not one mmap each, and freed ones kept for the
      # next task (adanalytics/engines/dask/cluster.py)
      export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-33554432}"
      export MALLOC_TRIM_THRESHOLD_="${MALLOC_TRIM_THRESHOLD_:-134217728}"
      as_service_user "$VENV/bin/dask" worker "tls://$master:$DASK_PORT" --host "$addr" \
        --name "worker-$addr" --nworkers 1 --nthreads "${ADANALYTICS_DASK_THREADS:-$(nproc)}" \
        --memory-limit "${ADANALYTICS_DASK_MEMORY:-auto}" --local-directory "$WORK/dask" \
        --dashboard-address "$addr:0" "${tls[@]}" \
        --tls-cert "$SECURITY/worker.pem" --tls-key "$SECURITY/worker.key"
      ;;
    spark-master)
      as_service_user "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.master.Master \
        --host "$addr" --port "$SPARK_PORT" --webui-port "$SPARK_UI_PORT" \
        --properties-file "$SPARK_CONF/spark-defaults.conf"
      ;;
    spark-worker)
      local mem_mb
      mem_mb="$(awk '/MemTotal/ {print int($2 / 1024 * 3 / 4)}' /proc/meminfo)"
      export SPARK_WORKER_DIR="$WORK/spark"
      as_service_user "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.worker.Worker \
        --host "$addr" --webui-port "$SPARK_WORKER_UI_PORT" \
        --cores "${ADANALYTICS_SPARK_CORES:-$(nproc)}" --memory "${ADANALYTICS_SPARK_MEMORY:-${mem_mb}m}" \
        --work-dir "$WORK/spark" --properties-file "$SPARK_CONF/spark-defaults.conf" \
        "spark://$master:$SPARK_PORT"
      ;;
    jupyterhub)
      # the hub runs as root: PAM authentication and spawning servers as each user need it
      export ADANALYTICS_REPO="$REPO" ADANALYTICS_VENV="$VENV"
      CONFIGPROXY_AUTH_TOKEN="$(cat "$HUB/proxy_auth_token")"
      export CONFIGPROXY_AUTH_TOKEN
      cd "$HUB"
      exec "$VENV/bin/jupyterhub" -f "$REPO/cluster/jupyterhub_config.py"
      ;;
    *) die "unknown service '$name' (${MASTER_SERVICES[*]} ${WORKER_SERVICES[*]})" ;;
  esac
}

# --- supervision: systemd or plain daemons ----------------------------------------------

use_systemd() {
  case "${ADANALYTICS_SUPERVISOR:-auto}" in
    systemd) return 0 ;;
    daemon) return 1 ;;
  esac
  [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1
}

unit_name() { echo "adanalytics-$1.service"; }

install_unit() {
  local name="$1" unit
  unit="/etc/systemd/system/$(unit_name "$name")"
  sed -e "s|@SERVICE@|$name|g" -e "s|@SELF@|$SELF|g" -e "s|@HOME@|$AA_HOME|g" \
    "$REPO/cluster/systemd/adanalytics-service.in" > "$unit.tmp"
  if ! cmp -s "$unit.tmp" "$unit"; then mv "$unit.tmp" "$unit"; systemctl daemon-reload; else rm -f "$unit.tmp"; fi
}

# pid of a running service of this node, or nothing
service_pid() {
  local name="$1" pid env
  [ -f "$RUN/$name.pid" ] || return 0
  pid="$(cat "$RUN/$name.pid")"
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 0
  # the pid is ours only if the process carries this service's name and this node's home
  # (an environment caught mid-exec reads empty: the pid file is trusted then)
  env="$(tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null || true)"
  if [ -z "$env" ] || { grep -qx "ADANALYTICS_SERVICE=$name" <<< "$env" \
    && grep -qx "ADANALYTICS_HOME=$AA_HOME" <<< "$env"; }; then
    echo "$pid"
  fi
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait until the service answers: its port, or the log line that says it joined the master
wait_ready() {
  local name="$1" offset="$2" deadline=$((SECONDS + START_TIMEOUT)) addr="$ADANALYTICS_ADVERTISE"
  while [ $SECONDS -lt $deadline ]; do
    # (the pid file is fresh: liveness is enough here, the environment check is for later)
    if ! use_systemd && ! kill -0 "$(cat "$RUN/$name.pid" 2>/dev/null || echo 0)" 2>/dev/null; then
      warn "$name exited; last lines of $LOGS/$name.log:"
      tail -n 30 "$LOGS/$name.log" >&2 || true
      return 1
    fi
    case "$name" in
      dask-scheduler) port_open "$addr" "$DASK_PORT" && port_open 127.0.0.1 "$DASHBOARD_PORT" && return 0 ;;
      spark-master) port_open "$addr" "$SPARK_PORT" && port_open "$addr" "$SPARK_UI_PORT" && return 0 ;;
      jupyterhub) port_open 127.0.0.1 "$HUB_PORT" && tail -c +"$((offset + 1))" "$LOGS/$name.log" | grep -q "JupyterHub is now running" && return 0 ;;
      dask-worker) tail -c +"$((offset + 1))" "$LOGS/$name.log" | grep -q "Registered to:" && return 0 ;;
      spark-worker) tail -c +"$((offset + 1))" "$LOGS/$name.log" | grep -q "Successfully registered with master" && return 0 ;;
    esac
    sleep 0.5
  done
  warn "$name not ready after ${START_TIMEOUT}s; last lines of $LOGS/$name.log:"
  tail -n 30 "$LOGS/$name.log" >&2 || true
  return 1
}

start_service() {
  local name="$1" pid offset
  pid="$(service_pid "$name")"
  if [ -n "$pid" ]; then
    log "$name already running (pid $pid)"
    return 0
  fi
  touch "$LOGS/$name.log"
  offset="$(stat -c %s "$LOGS/$name.log")"
  if use_systemd; then
    install_unit "$name"
    systemctl enable --now "$(unit_name "$name")" >/dev/null
  else
    # the marker variables are in the process's initial environment (see service_pid)
    ADANALYTICS_SERVICE="$name" ADANALYTICS_HOME="$AA_HOME" \
      setsid "$SELF" run "$name" >> "$LOGS/$name.log" 2>&1 < /dev/null &
    echo "$!" > "$RUN/$name.pid"  # setsid does not fork here (no job control): same pid
  fi
  if wait_ready "$name" "$offset"; then
    log "$name started (pid $(service_pid "$name"), log $LOGS/$name.log)"
  else
    die "$name failed to start"
  fi
}

stop_service() {
  local name="$1" pid i
  if use_systemd && [ -f "/etc/systemd/system/$(unit_name "$name")" ]; then
    systemctl disable --now "$(unit_name "$name")" >/dev/null 2>&1 || true
  fi
  pid="$(service_pid "$name")"
  if [ -z "$pid" ]; then
    rm -f "$RUN/$name.pid"
    return 0
  fi
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    [ "$i" -eq 60 ] || sleep 0.5
  done
  # whatever is left of its process group (e.g. Spark executors) goes too
  kill -KILL -- "-$pid" 2>/dev/null || true
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$RUN/$name.pid"
}

# --- commands -----------------------------------------------------------------------------

cmd_master() {
  need_root master
  install_master_packages
  [ "${1:-}" = "--install-only" ] && { log "master packages installed (nothing started)"; return; }
  ensure_accounts
  grant_python_access
  make_dirs
  local addr roles="master"
  addr="$(advertise_address)"
  if [ -f "$AA_HOME/node.env" ]; then
    # shellcheck source=/dev/null
    roles="$(. "$AA_HOME/node.env"; echo "${ADANALYTICS_ROLES:-}")"
    [[ " $roles " == *" master "* ]] || roles="master $roles"
  fi
  generate_secrets "$addr"
  write_node_env "$(echo "$roles" | xargs)" "$addr" "$addr"
  load_node_env
  local s
  for s in "${MASTER_SERVICES[@]}"; do start_service "$s"; done
  log "master ready: Dask tls://$addr:$DASK_PORT (dashboard http://$addr:$DASHBOARD_PORT/status)," \
    "Spark spark://$addr:$SPARK_PORT (UI http://$addr:$SPARK_UI_PORT), JupyterHub http://$addr:$HUB_PORT"
  log "workers join with: copy $BUNDLE to the worker's ADANALYTICS_HOME, then ./bootstrap.sh worker $addr"
}

cmd_worker() {
  need_root worker
  local master_host="${1:-}"
  if [ -z "$master_host" ] || [ "$master_host" = "--install-only" ]; then
    die "usage: bootstrap.sh worker MASTER_HOST [--install-only]"
  fi
  install_worker_packages
  [ "${2:-}" = "--install-only" ] && { log "worker packages installed (nothing started)"; return; }
  ensure_accounts
  grant_python_access
  make_dirs
  local master addr roles="worker"
  master="$(resolve_ipv4 "$master_host")"
  [ -n "$master" ] || die "cannot resolve master host '$master_host'"
  addr="$(advertise_address "$master")"
  if [ -f "$AA_HOME/node.env" ]; then
    # shellcheck source=/dev/null
    roles="$(. "$AA_HOME/node.env"; echo "${ADANALYTICS_ROLES:-}")"
    [[ " $roles " == *" worker "* ]] || roles="$roles worker"
  fi
  install_join_bundle
  write_node_env "$(echo "$roles" | xargs)" "$addr" "$master"
  load_node_env
  local deadline=$((SECONDS + START_TIMEOUT))
  until port_open "$master" "$DASK_PORT" && port_open "$master" "$SPARK_PORT"; do
    [ $SECONDS -lt $deadline ] || die "master $master does not answer on $DASK_PORT (Dask) and $SPARK_PORT (Spark)"
    sleep 1
  done
  local s
  for s in "${WORKER_SERVICES[@]}"; do start_service "$s"; done
  log "worker $addr joined master $master"
}

cmd_stop() {
  [ -f "$AA_HOME/node.env" ] || { log "nothing provisioned in $AA_HOME"; return 0; }
  need_root stop
  load_node_env
  local s services=()
  mapfile -t services < <(node_services)
  # reverse order: hub and workers before the scheduler and master
  for ((i = ${#services[@]} - 1; i >= 0; i--)); do stop_service "${services[$i]}"; done
  log "stopped"
}

cmd_status() {
  [ -f "$AA_HOME/node.env" ] || { log "nothing provisioned in $AA_HOME"; return 3; }
  load_node_env
  local s pid down=0 services=()
  mapfile -t services < <(node_services)
  printf '%-16s %-8s %-8s %s\n' SERVICE STATE PID LOG
  for s in "${services[@]}"; do
    pid="$(service_pid "$s")"
    if [ -n "$pid" ]; then
      printf '%-16s %-8s %-8s %s\n' "$s" running "$pid" "$LOGS/$s.log"
    else
      printf '%-16s %-8s %-8s %s\n' "$s" stopped - "$LOGS/$s.log"
      down=1
    fi
  done
  echo "roles: $ADANALYTICS_ROLES; this node: $ADANALYTICS_ADVERTISE; master: $ADANALYTICS_MASTER"
  echo "client environment: $AA_HOME/client.env"
  [ "$down" -eq 0 ] || return 3
}

main() {
  local cmd="${1:-}"
  shift || true
  case "$cmd" in
    master) cmd_master "$@" ;;
    worker) cmd_worker "$@" ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    run) [ -n "${1:-}" ] || die "usage: cluster.sh run SERVICE"; run_service "$1" ;;
    -h | --help | help | "") sed -n '2,21p' "$SELF" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown command '$cmd' (see cluster.sh --help)" ;;
  esac
}

main "$@"
