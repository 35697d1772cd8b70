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

Both are installed first (Kafka jars, then the influxd build), then started
side by side. If either fails to start, both are stopped and the exit
status is non-zero. Stop them with down.sh.
USAGE
    exit 0
fi

t0=$(now_s)
"$SERVICES_DIR/kafka.sh" install
"$SERVICES_DIR/influxdb.sh" install
# Start both at once (each waits for its own readiness), then check both.
"$SERVICES_DIR/kafka.sh" start &
kafka_job=$!
"$SERVICES_DIR/influxdb.sh" start >/dev/null &
influx_job=$!
kafka_rc=0
influx_rc=0
wait "$kafka_job" || kafka_rc=$?
wait "$influx_job" || influx_rc=$?
if ((kafka_rc != 0 || influx_rc != 0)); then
    log "start-up failed (kafka.sh rc=$kafka_rc, influxdb.sh rc=$influx_rc); stopping whatever was started"
    "$SERVICES_DIR/down.sh" || true
    exit 1
fi
compose_services_env
log "services up in $(($(now_s) - t0))s; environment in $ROADPULSE_RUN/services.env:"
grep -v '^#' "$ROADPULSE_RUN/services.env"
