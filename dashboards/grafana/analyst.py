"""Analyst dashboard: the documented queries of docs/influxdb.md over the chosen time range."""
from __future__ import annotations

from typing import Any

from dashboards.grafana import queries as q
from dashboards.grafana.board import dashboard
from dashboards.grafana.panels import grid, table, timeseries

UID = "roadpulse-analyst"


def build() -> dict[str, Any]:
    panels = [
        table("Worst bottlenecks", "The ten segments with the lowest mean space-mean speed (5-min windows).",
              grid(0, 0, 12, 10), q.worst_bottlenecks()),
        table("Congestion hours per segment", "Hours in LTA speed bands 1-3 (below 30 km/h), from 5-min windows.",
              grid(12, 0, 12, 10), q.congestion_hours(), sort_by="hours_below_30_kmh"),
        table("Incident durations", "Minutes from start to clearance, one row per cleared incident and detector.",
              grid(0, 10, 12, 10), q.incident_durations(), sort_by="duration_min"),
        timeseries("Dead letters by reason per hour", "Rejected records per reason and hour.", grid(12, 10, 12, 10),
                   q.dead_letters_hourly(), unit="short", draw="bars", stacked=True),
        table("Flow by segment and hour", "Hourly mean flow and speed per segment (5-min windows averaged; "
              "a plain mean of window speeds).", grid(0, 20, 24, 12), q.flow_by_segment_hour()),
    ]
    return dashboard(UID, "roadpulse — analyst", "Bottlenecks, congestion hours, incident durations, dead letters "
                     "and hourly flow: the queries of docs/influxdb.md.", panels, time_from="now-24h",
                     refresh="", tags=("analyst",))
