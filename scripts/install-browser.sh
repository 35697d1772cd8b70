#!/usr/bin/env bash
# Install what the browser tests need: Debian's chromium (+ fonts) and the playwright Python client (no browser download).
# Idempotent: apt runs only when /usr/bin/chromium is missing, pip only when playwright does not import.
# Usage: scripts/install-browser.sh        (uses .venv/bin/python; PYTHON=... to pick another interpreter)
set -euo pipefail
if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
  sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; exit 0
fi
cd "$(dirname "$0")/.."
if [[ ! -x /usr/bin/chromium ]]; then
  echo "installing Debian's chromium and fonts (apt-get)..." >&2
  SUDO=""; [[ "$(id -u)" == 0 ]] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core fonts-liberation >/dev/null
fi
PY="${PYTHON:-.venv/bin/python}"
if ! "$PY" -c 'import playwright.sync_api' 2>/dev/null; then
  echo "installing the playwright Python client (driver only; the tests launch /usr/bin/chromium)..." >&2
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$PY" -m pip install -q "playwright>=1.40"
fi
/usr/bin/chromium --version >&2
