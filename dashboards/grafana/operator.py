"""Operator overview: the whole network at a glance (LTA expressway monitoring, PeMS diagnostics)."""
from __future__ import annotations

from typing import Any

from dashboards.grafana import queries as q
from dashboards.grafana.board import dashboard
from dashboards.grafana.panels import (
    bargauge,
    geomap,
    grid,
    plain_thresholds,
    row,
    speed_thresholds,
    stat,
    table,
    timeseries,
)
from models.network import Network

UID = "roadpulse-operator"


def build(network: Network) -> dict[str, Any]:
    """The operator overview for ``network`` (its segment positions go into the map query)."""
    panels = [
        stat("Open incidents", "Incidents whose latest event is not 'cleared' (both detectors).", grid(0, 0, 6, 4),
             q.open_incident_count(), thresholds=plain_thresholds((None, "green"), (1, "orange"), (3, "red")),
             no_value="0"),
        stat("Segments below 30 km/h", "Segments in LTA speed band 1-3 in their latest 5-min window.",
             grid(6, 0, 6, 4), q.congested_segment_count(),
             thresholds=plain_thresholds((None, "green"), (1, "orange"), (10, "red")), no_value="0"),
        stat("Readings per second", "Readings processed per wall-clock second (pipeline measurement).",
             grid(12, 0, 6, 4), q.pipeline_metric("readings_per_s"), unit="short", decimals=0),
        stat("Dead letters", "Records rejected in the time range (bad JSON, out-of-range values, late, ...).",
             grid(18, 0, 6, 4), q.dead_letter_total(), calc="sum",
             thresholds=plain_thresholds((None, "green"), (1, "orange")), no_value="0"),
        geomap("Network: LTA speed band per segment",
               "Latest 5-min speed band of every segment, red (band 1, under 10 km/h) to green (band 8, "
               "70 km/h and over); grey: no vehicle. Points sit left of the direction of travel.",
               grid(0, 4, 14, 14), q.segment_band_map(network), color_field="speed_band"),
        table("Open incidents", "Latest event of every incident not yet cleared, newest first.", grid(14, 4, 10, 14),
              q.open_incidents(), sort_by="started"),
        row("Traffic by carriageway", 18),
        timeseries("Mean segment speed", "Space-mean speed of 1-min segment windows, averaged per carriageway.",
                   grid(0, 19, 8, 8), q.corridor_metric("space_mean_speed_kmh"), unit="velocitykmh",
                   thresholds=speed_thresholds()),
        timeseries("Mean segment flow", "Flow of 1-min segment windows, averaged per carriageway.",
                   grid(8, 19, 8, 8), q.corridor_metric("flow_veh_h"), unit="veh/h"),
        timeseries("Mean segment occupancy", "Occupancy of 1-min segment windows, averaged per carriageway.",
                   grid(16, 19, 8, 8), q.corridor_metric("occupancy_pct"), unit="percent"),
        row("Sensors", 27),
        bargauge("Detector health now", "Detectors per PeMS diagnostic status at their latest hourly evaluation.",
                 grid(0, 28, 6, 8), q.detector_health_now(), unit="short",
                 thresholds=plain_thresholds((None, "blue"))),
        timeseries("Detectors by status", "Detectors per status at each hourly health evaluation.",
                   grid(6, 28, 9, 8), q.detector_health_over_time(), unit="short", draw="bars", stacked=True),
        timeseries("Camera counts", "Vehicles counted per camera (measurement 'camera'; empty until the "
                   "camera pipeline writes to InfluxDB).", grid(15, 28, 9, 8), q.camera_counts(), unit="short"),
        row("Pipeline", 36),
        timeseries("Readings per second", "Readings processed per second, per pipeline component.",
                   grid(0, 37, 8, 8), q.pipeline_metric("readings_per_s"), unit="short"),
        timeseries("Dead letters by reason", "Rejected records per reason and interval (errors are data).",
                   grid(8, 37, 8, 8), q.dead_letters_by_reason(), unit="short", draw="bars", stacked=True),
        table("Commuter alerts", "The latest alerts sent to subscribers.", grid(16, 37, 8, 8), q.recent_alerts()),
    ]
    return dashboard(UID, "roadpulse — operator overview",
                     "Speed bands on the map, open incidents, traffic per carriageway, sensor and pipeline health.",
                     panels, time_from="now-3h", refresh="30s", tags=("operator",))
