#!/usr/bin/env bash
# Install, start the servers the tests need (Kafka, InfluxDB on 127.0.0.1), run the test suite, stop the servers.
# Usage: scripts/test.sh [pytest args...]     e.g. scripts/test.sh -k windows
set -euo pipefail
if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
  sed -n '2,3p' "$0" | sed 's/^# \{0,1\}//'; exit 0
fi
cd "$(dirname "$0")/.."
scripts/bootstrap.sh dev
if [[ -x scripts/install-browser.sh ]]; then scripts/install-browser.sh; fi
if [[ -x scripts/services/up.sh && "${ROADPULSE_NO_SERVICES:-0}" != "1" ]]; then
  trap 'scripts/services/down.sh || true' EXIT
  scripts/services/up.sh
  run_dir="${ROADPULSE_RUN:-$HOME/.cache/roadpulse/run}"
  if [[ -f "$run_dir/services.env" ]]; then set -a; source "$run_dir/services.env"; set +a; fi
fi
.venv/bin/python -m pytest "$@"
