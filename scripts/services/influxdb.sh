#!/usr/bin/env bash
# InfluxDB 1.8 (v2 write/Flux API enabled) on 127.0.0.1 for tests, built from the Go module proxy.
set -euo pipefail

SERVICE_NAME=influxdb
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

INFLUX_VERSION="${INFLUX_VERSION:-1.8.10}"
INFLUX_PORT="${INFLUX_PORT:-8086}"
INFLUX_RPC_PORT="${INFLUX_RPC_PORT:-8088}"
INFLUX_ORG="${INFLUX_ORG:-roadpulse}"
INFLUX_TOKEN="${INFLUX_TOKEN:-roadpulse-dev-token}"
INFLUX_BUCKET="${INFLUX_BUCKET:-roadpulse}"
INFLUX_START_TIMEOUT="${INFLUX_START_TIMEOUT:-120}"
INFLUX_MODULE="github.com/influxdata/influxdb"

INFLUX_HOME="$ROADPULSE_CACHE/influxdb/$INFLUX_VERSION"
INFLUXD="$INFLUX_HOME/bin/influxd"
RUN_DIR="$ROADPULSE_RUN/influxdb"
PIDFILE="$RUN_DIR/influxdb.pid"
PID_PATTERN="influxd"
URL="http://127.0.0.1:$INFLUX_PORT"

usage() {
    cat <<EOF
Usage: $(basename "$0") {install|start|stop|status|--help}

InfluxDB $INFLUX_VERSION on 127.0.0.1:$INFLUX_PORT with the v2 compatibility API
(/api/v2/write, Flux on /api/v2/query, /health) and InfluxQL (/query, /write).
Authentication is off: any token is accepted; the org is ignored; a bucket is
"database" or "database/retention-policy".

  install  build influxd with 'go install $INFLUX_MODULE/cmd/influxd@v$INFLUX_VERSION'
           (pure Go, no cgo) into \$ROADPULSE_CACHE/influxdb/$INFLUX_VERSION/bin
           (now: $INFLUXD). About 2-3 min cold on 2 cores; cached after.
  start    install if needed, wipe $RUN_DIR, start influxd in the background,
           wait (<= \${INFLUX_START_TIMEOUT}s) for /health to say "pass", create
           the database \$INFLUX_BUCKET, print the client environment.
           Already running: does nothing but print the environment.
  stop     stop the server named by $PIDFILE (TERM, then KILL). Idempotent.
  status   exit 0 if the server runs and /health passes, 3 otherwise.

Environment: ROADPULSE_CACHE, ROADPULSE_RUN, INFLUX_PORT (8086),
INFLUX_RPC_PORT (8088, backup/restore RPC, bound to 127.0.0.1),
INFLUX_BUCKET (roadpulse), INFLUX_ORG (roadpulse), INFLUX_TOKEN
(roadpulse-dev-token), INFLUX_START_TIMEOUT (120), GO (go binary).
Log: $RUN_DIR/influxd.log
EOF
}

find_go() {
    if [[ -n "${GO:-}" ]]; then
        echo "$GO"
    elif command -v go >/dev/null; then
        command -v go
    elif [[ -x /usr/local/go/bin/go ]]; then
        echo /usr/local/go/bin/go
    else
        die "no Go toolchain found (set GO=..., or apt-get install -y golang-go)"
    fi
}

install() {
    if [[ -x "$INFLUXD" && -f "$INFLUX_HOME/.complete" ]]; then
        log "influxd $INFLUX_VERSION cached at $INFLUXD"
        return 0
    fi
    case "$INFLUX_VERSION" in
    1.8.*) ;;
    *) die "only InfluxDB 1.8.x is supported by this script (see scripts/services/README.md)" ;;
    esac
    local go t0 tmpbin
    go="$(find_go)"
    t0=$(now_s)
    mkdir -p "$INFLUX_HOME"
    tmpbin="$(mktemp -d "$INFLUX_HOME/bin.XXXXXX")"
    log "building influxd $INFLUX_VERSION with $("$go" version) (log: $INFLUX_HOME/build.log)"
    # GOTOOLCHAIN=local: never try to download another toolchain.
    # CGO_ENABLED=0: flux of the 1.8 era is pure Go; no C compiler needed.
    # GOFLAGS cleared so a caller's -mod=... cannot interfere with 'go install pkg@version'.
    if ! env GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS= GOBIN="$tmpbin" \
        "$go" install -trimpath \
        -ldflags "-s -w -X main.version=$INFLUX_VERSION -X main.branch=v$INFLUX_VERSION -X main.commit=go-module-proxy" \
        "$INFLUX_MODULE/cmd/influxd@v$INFLUX_VERSION" >"$INFLUX_HOME/build.log" 2>&1; then
        log_tail "$INFLUX_HOME/build.log"
        rm -rf "$tmpbin"
        die "building influxd $INFLUX_VERSION failed (log: $INFLUX_HOME/build.log)"
    fi
    mkdir -p "$INFLUX_HOME/bin"
    mv -f "$tmpbin/influxd" "$INFLUXD"
    rm -rf "$tmpbin"
    touch "$INFLUX_HOME/.complete"
    log "built $INFLUXD in $(($(now_s) - t0))s: $("$INFLUXD" version)"
}

write_config() {
    mkdir -p "$RUN_DIR/meta" "$RUN_DIR/data" "$RUN_DIR/wal"
    cat >"$RUN_DIR/influxdb.conf" <<EOF
reporting-disabled = true
bind-address = "127.0.0.1:$INFLUX_RPC_PORT"

[meta]
  dir = "$RUN_DIR/meta"

[data]
  dir = "$RUN_DIR/data"
  wal-dir = "$RUN_DIR/wal"
  query-log-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:$INFLUX_PORT"
  auth-enabled = false
  log-enabled = false
  flux-enabled = true
  flux-log-enabled = false

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false

[logging]
  level = "info"
EOF
}

health_pass() {
    curl -fsS --max-time 2 "$URL/health" 2>/dev/null | grep -q '"status":"pass"'
}

client_env() {
    cat <<EOF
INFLUX_URL=$URL
INFLUX_ORG=$INFLUX_ORG
INFLUX_TOKEN=$INFLUX_TOKEN
INFLUX_BUCKET=$INFLUX_BUCKET
EOF
}

start() {
    command -v curl >/dev/null || die "curl not found (apt-get install -y curl)"
    if pid_alive "$PIDFILE" "$PID_PATTERN"; then
        log "already running (pid $(cat "$PIDFILE")) at $URL"
        compose_services_env
        client_env
        return 0
    fi
    local p
    for p in "$INFLUX_PORT" "$INFLUX_RPC_PORT"; do
        port_open 127.0.0.1 "$p" && die "port 127.0.0.1:$p is already in use by another process"
    done
    install
    local t0 resp
    t0=$(now_s)
    rm -rf "$RUN_DIR"
    write_config
    log "starting InfluxDB $INFLUX_VERSION at $URL"
    nohup "$INFLUXD" -config "$RUN_DIR/influxdb.conf" >"$RUN_DIR/influxd.log" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    while ! health_pass; do
        if ! pid_alive "$PIDFILE"; then
            log_tail "$RUN_DIR/influxd.log"
            rm -f "$PIDFILE"
            die "influxd exited during start-up (log above)"
        fi
        if (($(now_s) - t0 >= INFLUX_START_TIMEOUT)); then
            log_tail "$RUN_DIR/influxd.log"
            stop_pidfile "$PIDFILE" "$PID_PATTERN" 10
            die "influxd did not report /health pass within ${INFLUX_START_TIMEOUT}s (log above)"
        fi
        sleep 0.3
    done
    # The bucket "db" (or "db/rp") of the v2 API is a 1.x database.
    resp="$(curl -fsS --max-time 10 -XPOST "$URL/query" --data-urlencode "q=CREATE DATABASE \"$INFLUX_BUCKET\"" 2>&1)" ||
        die "CREATE DATABASE $INFLUX_BUCKET failed: $resp"
    if grep -q '"error"' <<<"$resp"; then
        die "CREATE DATABASE $INFLUX_BUCKET failed: $resp"
    fi
    client_env >"$RUN_DIR/client.env"
    compose_services_env
    log "ready in $(($(now_s) - t0))s (pid $(cat "$PIDFILE")); bucket \"$INFLUX_BUCKET\" created. Client environment:"
    client_env
}

stop() {
    stop_pidfile "$PIDFILE" "$PID_PATTERN" 30
    compose_services_env
}

status() {
    if pid_alive "$PIDFILE" "$PID_PATTERN" && health_pass; then
        echo "influxdb: running (pid $(cat "$PIDFILE")) at $URL"
        return 0
    fi
    echo "influxdb: not running"
    return 3
}

case "${1:-}" in
install) install ;;
start) start ;;
stop) stop ;;
status) status ;;
-h | --help | help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac
