"""Fixtures shared by every test folder: the real servers started by scripts/services/."""
from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

HINT = "start it with scripts/services/influxdb.sh start (stop with scripts/services/influxdb.sh stop)"


def _run_dir() -> Path:
    return Path(os.environ.get("ROADPULSE_RUN") or Path.home() / ".cache" / "roadpulse" / "run")


def influx_settings() -> dict[str, str]:
    """INFLUX_* from the environment, else from the service scripts' env files."""
    values: dict[str, str] = {}
    for path in (_run_dir() / "influxdb" / "client.env", _run_dir() / "services.env"):
        if path.is_file():
            for line in path.read_text().splitlines():
                key, sep, value = line.strip().partition("=")
                if sep and not key.startswith("#"):
                    values.setdefault(key.strip(), value.strip())
    for key in ("INFLUX_URL", "INFLUX_ORG", "INFLUX_TOKEN"):
        if os.environ.get(key):
            values[key] = os.environ[key]
    return values


@pytest.fixture(scope="session")
def influx_server() -> dict[str, str]:
    """URL, org, token of the running server; fails (never skips) when there is none."""
    settings = influx_settings()
    url = settings.get("INFLUX_URL")
    if not url:
        pytest.fail(f"INFLUX_URL is not set and not in {_run_dir()}/services.env: {HINT}", pytrace=False)
    error: Exception | None = None
    health: dict = {}
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=10) as resp:
            health = json.load(resp)
    except Exception as exc:  # noqa: BLE001 - any failure means: not reachable
        error = exc
    if error is not None:
        pytest.fail(f"InfluxDB is not reachable at {url} ({error}): {HINT}", pytrace=False)
    if health.get("status") != "pass":
        pytest.fail(f"InfluxDB at {url} is not healthy ({health}): {HINT}", pytrace=False)
    return {"url": url.rstrip("/"), "org": settings.get("INFLUX_ORG", "roadpulse"),
            "token": settings.get("INFLUX_TOKEN", "roadpulse-dev-token"),
            "version": str(health.get("version", ""))}
