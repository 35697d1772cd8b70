"""Dashboard-level builders: the dashboard object, template variables, links, panel ids."""
from __future__ import annotations

from typing import Any

from dashboards.grafana.panels import DATASOURCE

SCHEMA_VERSION = 39  # Grafana 11.x (docker-compose runs 11.3); newer Grafanas migrate it on load
TAG = "roadpulse"


def query_variable(name: str, label: str, query: str, default: str, description: str) -> dict[str, Any]:
    """A Flux query variable refreshed when the time range changes; single value, ``default`` preselected."""
    return {"type": "query", "name": name, "label": label, "description": description,
            "datasource": dict(DATASOURCE), "query": query, "definition": query, "refresh": 2, "sort": 1,
            "multi": False, "includeAll": False, "hide": 0, "regex": "", "skipUrlSync": False, "options": [],
            "current": {"selected": True, "text": default, "value": default}}


def dashboard(uid: str, title: str, description: str, panels: list[dict[str, Any]],
              variables: list[dict[str, Any]] | None = None, time_from: str = "now-6h",
              refresh: str = "1m", tags: tuple[str, ...] = ()) -> dict[str, Any]:
    """A complete dashboard; panel ids are numbered 1.. in order (rows included), so output is stable."""
    numbered = []
    for i, panel in enumerate(panels, start=1):
        numbered.append({"id": i, **panel})
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": [TAG, *tags],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "refresh": refresh,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": time_from, "to": "now"},
        "timepicker": {"refresh_intervals": ["30s", "1m", "5m", "15m", "1h"]},
        "templating": {"list": variables or []},
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                  "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                  "name": "Annotations & Alerts", "type": "dashboard"}]},
        "links": [{"title": "roadpulse dashboards", "type": "dashboards", "tags": [TAG], "asDropdown": True,
                   "includeVars": False, "keepTime": True, "icon": "external link", "targetBlank": False,
                   "tooltip": "", "url": ""}],
        "panels": numbered,
    }
