"""Turn a dashboard query into the Flux that Grafana sends to InfluxDB.

Grafana does two text substitutions before a Flux query reaches the server:
the browser replaces template variables (``${corridor}``, ``$corridor``) with
their current values, then the InfluxDB data source replaces the Flux macros
(grafana pkg/tsdb/influxdb/flux/macros.go): ``v.timeRangeStart`` and
``v.timeRangeStop`` by RFC 3339 times, ``v.windowPeriod`` by the panel interval
(a Go duration such as ``1m0s``), ``v.defaultBucket`` and ``v.organization`` by
quoted strings, and ``$__interval`` / ``$__interval_ms``. This module does the
same, so tests and ``roadpulse query-influx`` run exactly what a panel runs.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

_MACRO = re.compile(r"([a-zA-Z]+)\.([a-zA-Z]+)")
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def rfc3339(ms: int) -> str:
    """Integer ms UTC -> ``2026-03-02T00:00:00Z`` (what Grafana puts in the time macros)."""
    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if ms % 1000:
        text += f".{ms % 1000:03d}".rstrip("0")
    return text + "Z"


def go_duration(ms: int) -> str:
    """Go's ``time.Duration.String()`` for whole ms: 60000 -> ``1m0s``, 30000 -> ``30s``, 500 -> ``500ms``."""
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = rest / 1000
    sec_text = f"{seconds:g}s" if rest % 1000 else f"{int(seconds)}s"
    if hours:
        return f"{hours}h{minutes}m{sec_text}"
    if minutes:
        return f"{minutes}m{sec_text}"
    return sec_text


def substitute_variables(query: str, variables: dict[str, str]) -> str:
    """Replace ``${name}`` / ``$name`` with the variable's value; unknown names raise KeyError."""
    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name.startswith("__"):  # Grafana's own ($__interval), done in the macro step
            return m.group(0)
        return variables[name]
    return _VARIABLE.sub(repl, query)


def interpolate(query: str, start_ms: int, stop_ms: int, bucket: str, interval_ms: int = 60_000,
                variables: dict[str, str] | None = None, organization: str = "") -> str:
    """The Flux Grafana would send for ``query`` over [start_ms, stop_ms) with these variables."""
    flux = substitute_variables(query, variables or {})
    replacements = {"timeRangeStart": rfc3339(start_ms), "timeRangeStop": rfc3339(stop_ms),
                    "windowPeriod": go_duration(interval_ms), "bucket": f'"{bucket}"',
                    "defaultBucket": f'"{bucket}"', "organization": f'"{organization}"'}
    for match in set(_MACRO.findall(flux)):
        if match[1] in replacements:
            flux = flux.replace(f"{match[0]}.{match[1]}", replacements[match[1]])
    flux = flux.replace("$__interval_ms", str(interval_ms))
    return flux.replace("$__interval", go_duration(interval_ms))
