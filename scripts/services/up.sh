#!/usr/bin/env bash
# Start Kafka and InfluxDB for tests and write $ROADPULSE_RUN/services.env.
set -euo pipefail

SERVICE_NAME=up
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    cat <<USAGE
Usage: $(basename "$0") [--help]

Builds/fetches what is missing (cached under \$ROADPULSE_CACHE, now $ROADPULSE_CACHE),
starts Kafka (kafka.sh start) and InfluxDB (influxdb.sh start) on 127.0.0.1 and
writes $ROADPULSE_RUN/services.env for tests:

  set -a; . "$ROADPULSE_RUN/services.env"; set +a

Both are installed first (Kafka jars and the influxd build run one after the
other), then started. If either fails to start, both are stopped and the exit
status is non-zero. Stop them with down.sh.
USAGE
    exit 0
fi

t0=$(now_s)
"$SERVICES_DIR/kafka.sh" install
"$SERVICES_DIR/influxdb.sh" install
if ! "$SERVICES_DIR/kafka.sh" start || ! "$SERVICES_DIR/influxdb.sh" start >/dev/null; then
    log "start-up failed; stopping whatever was started"
    "$SERVICES_DIR/down.sh" || true
    exit 1
fi
compose_services_env
log "services up in $(($(now_s) - t0))s; environment in $ROADPULSE_RUN/services.env:"
grep -v '^#' "$ROADPULSE_RUN/services.env"
