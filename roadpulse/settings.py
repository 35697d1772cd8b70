"""One frozen settings object, built by the CLI from flags and environment.

Nothing reads settings at import time; runtimes receive this object.
The runtime is picked by URL: ``memory://`` (embedded, the default) or
``kafka://host:port``; the store by ``--influx http://host:port`` (else sqlite).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

DEFAULT_START = "2026-03-02T00:00:00+08:00"  # a Monday in Singapore


class SettingsError(ValueError):
    """A setting that cannot be used, with a message that says how to fix it."""


@dataclass(frozen=True)
class Settings:
    broker_url: str = "memory://"
    influx_url: str | None = None
    influx_org: str = "roadpulse"
    influx_bucket: str = "roadpulse"
    influx_token: str = ""
    topic_prefix: str = "roadpulse."
    network_file: Path | None = None
    detectors: int | None = None
    duration_s: int = 86_400
    start_ms: int = 0
    seed: int = 7
    out_dir: Path = Path("out")
    incidents: int = 4
    fault_fraction: float = 0.01
    chaos_rate: float = 0.0005
    subscriptions_file: Path | None = None
    progress: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def runtime(self) -> str:
        scheme = self.broker_url.split("://", 1)[0]
        if scheme not in ("memory", "kafka"):
            raise SettingsError(f"--broker must start with memory:// or kafka://, got {self.broker_url!r}")
        return scheme

    @property
    def kafka_bootstrap(self) -> str:
        if self.runtime != "kafka":
            raise SettingsError("no Kafka broker configured (use --broker kafka://HOST:PORT)")
        return self.broker_url.split("://", 1)[1].rstrip("/") or "127.0.0.1:9092"


def parse_duration_s(text: str) -> int:
    """'24h', '90m', '45s', '1d', '3600' -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhms]?)\s*", str(text))
    if not m:
        raise SettingsError(f"cannot read duration {text!r}: use e.g. 24h, 90m, 45s or 1d")
    value, unit = float(m.group(1)), m.group(2) or "s"
    seconds = value * {"d": 86_400, "h": 3_600, "m": 60, "s": 1}[unit]
    if seconds <= 0:
        raise SettingsError("duration must be positive")
    return int(seconds)


def parse_time_ms(text: str) -> int:
    """ISO-8601 with an offset (or integer ms since the epoch) -> ms UTC."""
    if re.fullmatch(r"\d{10,}", text.strip()):
        return int(text)
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise SettingsError(f"cannot read time {text!r}: use ISO-8601 like {DEFAULT_START}") from exc
    if dt.tzinfo is None:
        raise SettingsError(f"time {text!r} has no UTC offset; add one, e.g. +08:00 for Singapore")
    return int(dt.astimezone(timezone.utc).timestamp() * 1000)


def env_default(name: str, default: str | None = None) -> str | None:
    """Environment fallbacks for flags (ROADPULSE_BROKER, ROADPULSE_INFLUX, INFLUX_TOKEN, ...)."""
    return os.environ.get(name, default)
