#!/usr/bin/env bash
# Create .venv and install roadpulse (with the dev extras unless told "base"); skips work when nothing changed.
# Usage: scripts/bootstrap.sh [base|dev]
set -euo pipefail
if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
  sed -n '2,3p' "$0" | sed 's/^# \{0,1\}//'; exit 0
fi
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "roadpulse needs Python >= 3.11 (found: $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
what="${1:-dev}"
case "$what" in base) spec="." ;; dev) spec=".[dev]" ;; *) echo "bootstrap: say base or dev, not '$what'" >&2; exit 2 ;; esac
stamp=".venv/.roadpulse-installed-$what"
want="$(sha256sum pyproject.toml | cut -c1-16)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "installing roadpulse and its dependencies into .venv (first run takes a few minutes)..." >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e "$spec"
  echo "$want" > "$stamp"
fi
