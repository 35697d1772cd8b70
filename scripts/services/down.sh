#!/usr/bin/env bash
# Stop Kafka and InfluxDB started by up.sh (by their pid files only). Idempotent.
set -euo pipefail

SERVICE_NAME=down
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    cat <<USAGE
Usage: $(basename "$0") [--help]

Stops InfluxDB and Kafka started by up.sh / kafka.sh / influxdb.sh, using the pid
files under $ROADPULSE_RUN only (TERM, then KILL). Safe to run when nothing runs.
Removes $ROADPULSE_RUN/services.env.
USAGE
    exit 0
fi

rc=0
"$SERVICES_DIR/influxdb.sh" stop || rc=1
"$SERVICES_DIR/kafka.sh" stop || rc=1
rm -f "$ROADPULSE_RUN/services.env"
exit "$rc"
