# shellcheck shell=bash
# Shared helpers for scripts/services/*.sh. Sourced, not executed.
#
# Layout (both outside the checkout):
#   ROADPULSE_CACHE  (default ~/.cache/roadpulse)       builds, jars: kept between runs
#   ROADPULSE_RUN    (default ~/.cache/roadpulse/run)   config, data, logs, pid files: wiped by `start`

ROADPULSE_CACHE="${ROADPULSE_CACHE:-$HOME/.cache/roadpulse}"
ROADPULSE_RUN="${ROADPULSE_RUN:-$HOME/.cache/roadpulse/run}"
SERVICES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SERVICES_DIR/../.." && pwd)"

log() { printf '[%s] %s\n' "${SERVICE_NAME:-services}" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "${SERVICE_NAME:-services}" "$*" >&2; exit 1; }

# now_s: seconds since the epoch (integer).
now_s() { date +%s; }

# port_open HOST PORT: true if a TCP connection succeeds (bash /dev/tcp, 1 s cap).
port_open() {
    timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

# pid_alive PIDFILE [CMDLINE_PATTERN]: true if the pid in PIDFILE runs and, when a
# pattern is given, its command line contains it (guards against reused pids).
pid_alive() {
    local pidfile="$1" pattern="${2:-}" pid
    [[ -s "$pidfile" ]] || return 1
    pid="$(cat "$pidfile")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -n "$pattern" ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pattern" || return 1
    fi
    return 0
}

# stop_pidfile PIDFILE PATTERN [GRACE_SECONDS]: TERM, wait, then KILL the process
# named by PIDFILE only. Idempotent: a missing file or dead process is success.
stop_pidfile() {
    local pidfile="$1" pattern="$2" grace="${3:-30}" pid i
    if ! pid_alive "$pidfile" "$pattern"; then
        rm -f "$pidfile"
        log "not running"
        return 0
    fi
    pid="$(cat "$pidfile")"
    log "stopping pid $pid (TERM)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 5; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid still alive after ${grace}s, sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    rm -f "$pidfile"
    log "stopped"
}

# log_tail FILE...: print the last lines of each existing file to stderr.
log_tail() {
    local f
    for f in "$@"; do
        [[ -s "$f" ]] || continue
        printf -- '----- last 40 lines of %s -----\n' "$f" >&2
        tail -n 40 "$f" >&2
    done
}

# project_python: the interpreter to use for optional client checks.
project_python() {
    if [[ -n "${ROADPULSE_PYTHON:-}" ]]; then
        echo "$ROADPULSE_PYTHON"
    elif [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then
        echo "$REPO_ROOT/.venv/bin/python"
    else
        command -v python3 || true
    fi
}

# compose_services_env: (re)write $ROADPULSE_RUN/services.env from the client.env
# fragments of the services whose pid files point at a live process.
compose_services_env() {
    mkdir -p "$ROADPULSE_RUN"
    local f="$ROADPULSE_RUN/services.env" svc tmp
    tmp="$(mktemp "$f.XXXXXX")"
    {
        echo "# Written by scripts/services. Use: set -a; . $f; set +a"
        for svc in kafka influxdb; do
            if [[ -s "$ROADPULSE_RUN/$svc/client.env" && -s "$ROADPULSE_RUN/$svc/$svc.pid" ]] &&
                kill -0 "$(cat "$ROADPULSE_RUN/$svc/$svc.pid")" 2>/dev/null; then
                cat "$ROADPULSE_RUN/$svc/client.env"
            fi
        done
    } >"$tmp"
    chmod 644 "$tmp"
    mv -f "$tmp" "$f"
}
