#!/usr/bin/env bash
# Install (first time) and run the main job: `roadpulse run` on the embedded default (no servers).
# Usage: scripts/run.sh [roadpulse run flags...]   e.g. scripts/run.sh --duration 2h ; scripts/run.sh --help
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh base
exec .venv/bin/roadpulse run "$@"
