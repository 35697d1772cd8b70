"""Corridor drill-down: one carriageway (corridor + direction) and one of its stations."""
from __future__ import annotations

from typing import Any

from dashboards.grafana import queries as q
from dashboards.grafana.board import dashboard, query_variable
from dashboards.grafana.panels import grid, row, speed_thresholds, status_history, table, timeseries

UID = "roadpulse-corridor"
DEFAULTS = {"corridor": "PIE", "direction": "E", "station": "PIE-E-000"}


def variables() -> list[dict[str, Any]]:
    """corridor -> direction -> station, each a Flux query over the dashboard's time range."""
    return [
        query_variable("corridor", "Corridor", q.corridor_values(), DEFAULTS["corridor"],
                       "Expressway (tag 'corridor' of segment flow)."),
        query_variable("direction", "Direction", q.direction_values(), DEFAULTS["direction"],
                       "Direction of travel on the chosen corridor."),
        query_variable("station", "Station", q.station_values(), DEFAULTS["station"],
                       "Detector station on the chosen carriageway."),
    ]


def build() -> dict[str, Any]:
    panels = [
        status_history("Speed band by segment (${corridor} ${direction})",
                       "LTA speed band of each segment per 5-min window, segments in driving order: "
                       "a queue shows as a red patch growing upstream.", grid(0, 0, 24, 10),
                       q.corridor_band_contour()),
        timeseries("Segment speed", "Space-mean speed per segment (1-min windows).", grid(0, 10, 12, 9),
                   q.corridor_segments("space_mean_speed_kmh"), unit="velocitykmh", thresholds=speed_thresholds()),
        timeseries("Travel time along the carriageway", "Sum of the 1-min segment travel times (free-flow time "
                   "where a segment saw no vehicle).", grid(12, 10, 12, 9), q.corridor_travel_time(), unit="m"),
        timeseries("Segment flow", "Flow per segment (1-min windows).", grid(0, 19, 12, 8),
                   q.corridor_segments("flow_veh_h"), unit="veh/h"),
        timeseries("Segment occupancy", "Occupancy per segment (1-min windows).", grid(12, 19, 12, 8),
                   q.corridor_segments("occupancy_pct"), unit="percent"),
        table("Incidents on ${corridor} ${direction}", "Every incident event on this carriageway, newest first.",
              grid(0, 27, 24, 7), q.corridor_incidents()),
        row("Station ${station}", 34),
        timeseries("Station flow", "Flow at the station, all lanes (1-min windows).", grid(0, 35, 8, 8),
                   q.station_metric("flow_veh_h"), unit="veh/h"),
        timeseries("Station speed", "Space-mean speed at the station (1-min windows).", grid(8, 35, 8, 8),
                   q.station_metric("space_mean_speed_kmh"), unit="velocitykmh", thresholds=speed_thresholds()),
        timeseries("Station occupancy", "Occupancy at the station (1-min windows).", grid(16, 35, 8, 8),
                   q.station_metric("occupancy_pct"), unit="percent"),
        timeseries("Lane flow", "Flow per lane at the station (1-min windows); imputed lanes included.",
                   grid(0, 43, 12, 8), q.station_lanes("flow_veh_h"), unit="veh/h"),
        table("Detector health at ${station}", "Latest PeMS diagnostic of each detector of the station.",
              grid(12, 43, 12, 8), q.station_detector_health()),
    ]
    return dashboard(UID, "roadpulse — corridor drill-down",
                     "One carriageway segment by segment (speed bands, speeds, flows, travel time, incidents) "
                     "and one station lane by lane.", panels, variables=variables(), time_from="now-6h",
                     refresh="1m", tags=("operator", "corridor"))
