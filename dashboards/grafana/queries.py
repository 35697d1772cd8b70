"""Every Flux query of the dashboards, in one place.

Queries use Grafana's Flux macros (``v.defaultBucket``, ``v.timeRangeStart``,
``v.timeRangeStop``, ``v.windowPeriod``) and template variables
(``${corridor}``, ``${direction}``, ``${station}``); ``dashboards.grafana.flux``
replaces them the way Grafana does, so the same text runs from
``roadpulse query-influx`` and in the tests. All of them run on Flux 0.65
(InfluxDB 1.8): no ``array``, ``dict`` or ``schema`` packages. Schema:
docs/influxdb.md; the analyst queries are the ones documented there.
"""
from __future__ import annotations

from dashboards.grafana.sites import flux_string, sites_csv
from models.network import Network

SOURCE = "from(bucket: v.defaultBucket)\n  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)\n"
CORRIDOR = 'r.corridor == "${corridor}" and r.direction == "${direction}"'


def _flow(level: str, window: str, fields: tuple[str, ...], extra: str = "") -> str:
    field_test = " or ".join(f'r._field == "{f}"' for f in fields)
    cond = f'r._measurement == "flow" and r.level == "{level}" and r.window == "{window}"'
    if extra:
        cond += f" and {extra}"
    return SOURCE + f"  |> filter(fn: (r) => {cond})\n  |> filter(fn: (r) => {field_test})\n"


def tag_values(tag: str, predicate: str) -> str:
    """Distinct values of a tag in the time range, as ``schema.tagValues(bucket, tag, predicate, start)``.

    Written out because the ``schema`` package is not in Flux 0.65 (InfluxDB 1.8); this is
    the body of 0.65's ``v1.tagValues`` plus the time range and a sort. (On 0.65
    ``keep(columns: [tag]) |> group() |> distinct(column: tag)``, the newer body, returns nothing.)
    """
    return (SOURCE + f"  |> filter(fn: (r) => {predicate})\n"
            f'  |> group(columns: ["{tag}"])\n  |> distinct(column: "{tag}")\n  |> keep(columns: ["_value"])\n'
            '  |> group()\n  |> sort()\n')


# ---- operator overview ------------------------------------------------------------------
def segment_band_map(network: Network) -> str:
    """Latest 5-min LTA speed band per segment with the segment's lat/lon (join with a CSV literal)."""
    return ('import "csv"\n\n'
            f"sites = csv.from(csv: {flux_string(sites_csv(network))})\n\n"
            "bands = " + _flow("segment", "5m", ("speed_band",)) +
            '  |> last()\n  |> group()\n'
            '  |> keep(columns: ["_time", "_value", "entity_id", "corridor", "direction"])\n'
            '  |> rename(columns: {_value: "speed_band"})\n\n'
            'join(tables: {flow: bands, site: sites}, on: ["entity_id"])\n'
            '  |> keep(columns: ["_time", "entity_id", "corridor", "direction", "speed_band", "lat", "lon"])\n')


def _incident_latest(extra: str = "") -> str:
    """One row per incident: its latest lifecycle event (status is a tag, so each status is a series)."""
    cond = 'r._measurement == "incident"' + (f" and {extra}" if extra else "")
    return (SOURCE + f"  |> filter(fn: (r) => {cond})\n"
            '  |> filter(fn: (r) => r._field == "start_ms" or r._field == "severity" or r._field == "confidence"'
            ' or r._field == "location_km")\n'
            '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
            '  |> group(columns: ["incident_id"])\n  |> sort(columns: ["_time"])\n  |> last(column: "_time")\n'
            '  |> group()\n')


def open_incidents() -> str:
    """Incidents whose latest event in the range is not ``cleared``, newest first, with minutes open."""
    return (_incident_latest() + '  |> filter(fn: (r) => r.status != "cleared")\n'
            '  |> map(fn: (r) => ({r with started: time(v: r.start_ms * 1000000), '
            'open_min: float(v: uint(v: r._time) - uint(v: r.start_ms * 1000000)) / 60000000000.0}))\n'
            '  |> keep(columns: ["started", "incident_id", "corridor", "direction", "segment_id", "algorithm", '
            '"status", "severity", "confidence", "location_km", "open_min"])\n'
            '  |> sort(columns: ["started"], desc: true)\n')


def open_incident_count() -> str:
    """Incidents open at the end of the range: one row (0 when all are cleared) if any incident is in range."""
    return (_incident_latest() +
            '  |> map(fn: (r) => ({_value: if r.status == "cleared" then 0 else 1}))\n'
            '  |> sum()\n  |> rename(columns: {_value: "open incidents"})\n')


def congested_segment_count() -> str:
    """Segments whose latest 5-min speed band is 1..3 (below 30 km/h); 0 when none."""
    return (_flow("segment", "5m", ("speed_band",)) + "  |> last()\n  |> group()\n"
            "  |> map(fn: (r) => ({_value: if r._value >= 1 and r._value <= 3 then 1 else 0}))\n"
            '  |> sum()\n  |> rename(columns: {_value: "segments below 30 km/h"})\n')


def corridor_metric(field: str, fn: str = "mean") -> str:
    """A segment field averaged over each corridor and direction (one series per carriageway)."""
    return (_flow("segment", "1m", (field,)) +
            '  |> group(columns: ["corridor", "direction"])\n'
            f"  |> aggregateWindow(every: v.windowPeriod, fn: {fn}, createEmpty: false)\n"
            f'  |> map(fn: (r) => ({{_time: r._time, _value: r._value, _field: r.corridor + " " + r.direction,'
            ' corridor: r.corridor, direction: r.direction}))\n')


def camera_counts() -> str:
    """Vehicles counted by each camera (measurement ``camera``, written once the vision sink lands)."""
    return (SOURCE + '  |> filter(fn: (r) => r._measurement == "camera" and r._field == "vehicle_count")\n'
            '  |> group(columns: ["camera_id"])\n'
            "  |> aggregateWindow(every: v.windowPeriod, fn: sum, createEmpty: false)\n")


def detector_health_now() -> str:
    """Detectors per status at their latest evaluation in the range (PeMS diagnostics)."""
    return (SOURCE + '  |> filter(fn: (r) => r._measurement == "detector_health" and r._field == "samples")\n'
            '  |> group(columns: ["detector_id"])\n  |> sort(columns: ["_time"])\n  |> last()\n'
            '  |> group(columns: ["status"])\n  |> count()\n'
            '  |> map(fn: (r) => ({_value: r._value, _field: r.status, status: r.status}))\n')


def detector_health_over_time() -> str:
    return (SOURCE + '  |> filter(fn: (r) => r._measurement == "detector_health" and r._field == "samples")\n'
            '  |> group(columns: ["status"])\n'
            "  |> aggregateWindow(every: 1h, fn: count, createEmpty: false)\n"
            '  |> map(fn: (r) => ({_time: r._time, _value: r._value, _field: r.status, status: r.status}))\n')


def pipeline_metric(field: str) -> str:
    """A ``pipeline`` field per component (readings_per_s, lag_ms, ...)."""
    return (SOURCE + f'  |> filter(fn: (r) => r._measurement == "pipeline" and r._field == "{field}")\n'
            '  |> group(columns: ["component"])\n'
            "  |> aggregateWindow(every: v.windowPeriod, fn: mean, createEmpty: false)\n")


def dead_letters_by_reason(every: str = "v.windowPeriod") -> str:
    """Dead letters counted per reason (every dead letter has a ``detail`` field)."""
    return (SOURCE + '  |> filter(fn: (r) => r._measurement == "dead_letter" and r._field == "detail")\n'
            '  |> group(columns: ["reason"])\n'
            f"  |> aggregateWindow(every: {every}, fn: count, createEmpty: false)\n")


def dead_letter_total() -> str:
    return (SOURCE + '  |> filter(fn: (r) => r._measurement == "dead_letter" and r._field == "detail")\n'
            '  |> group()\n  |> count()\n  |> rename(columns: {_value: "dead letters"})\n')


def recent_alerts(limit: int = 100) -> str:
    return (SOURCE + '  |> filter(fn: (r) => r._measurement == "alert")\n'
            '  |> filter(fn: (r) => r._field == "message" or r._field == "alert_id")\n'
            '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
            '  |> group()\n  |> sort(columns: ["_time"], desc: true)\n'
            f"  |> limit(n: {limit})\n"
            '  |> keep(columns: ["_time", "kind", "subscription_id", "corridor", "direction", "segment_id", '
            '"message"])\n')


# ---- corridor drill-down ----------------------------------------------------------------
def corridor_values() -> str:
    return tag_values("corridor", 'r._measurement == "flow" and r.level == "segment" and r.window == "5m"'
                                  ' and r._field == "vehicle_count"')


def direction_values() -> str:
    return tag_values("direction", 'r._measurement == "flow" and r.level == "segment" and r.window == "5m"'
                                   ' and r._field == "vehicle_count" and r.corridor == "${corridor}"')


def station_values() -> str:
    return tag_values("entity_id", 'r._measurement == "flow" and r.level == "station" and r.window == "5m"'
                                   f' and r._field == "vehicle_count" and {CORRIDOR}')


def corridor_segments(field: str, window: str = "1m") -> str:
    """One series per segment of the chosen corridor and direction (segment ids sort in driving order)."""
    return (_flow("segment", window, (field,), CORRIDOR) +
            '  |> keep(columns: ["_time", "_value", "entity_id"])\n'
            "  |> aggregateWindow(every: v.windowPeriod, fn: mean, createEmpty: false)\n")


def corridor_band_contour() -> str:
    """Speed band per segment and 5-min window: the corridor's space-time picture."""
    return (_flow("segment", "5m", ("speed_band",), CORRIDOR) +
            '  |> keep(columns: ["_time", "_value", "entity_id"])\n')


def corridor_travel_time() -> str:
    """End-to-end travel time: the 1-min segment travel times of the carriageway summed per window."""
    return (_flow("segment", "1m", ("travel_time_s",), CORRIDOR) +
            '  |> group()\n  |> aggregateWindow(every: 1m, fn: sum, createEmpty: false)\n'
            '  |> map(fn: (r) => ({_time: r._time, _value: r._value / 60.0, _field: "travel time"}))\n')


def station_metric(field: str) -> str:
    return (_flow("station", "1m", (field,), 'r.entity_id == "${station}"') +
            '  |> keep(columns: ["_time", "_value", "_field"])\n')


def station_lanes(field: str) -> str:
    """Per-lane 1-min values at the chosen station (lane ids are ``<station>-L<n>``)."""
    return (_flow("lane", "1m", (field,), f'{CORRIDOR} and strings.hasPrefix(v: r.entity_id, prefix: "${{station}}-")')
            .replace("from(bucket", 'import "strings"\n\nfrom(bucket', 1) +
            '  |> keep(columns: ["_time", "_value", "entity_id"])\n')


def station_detector_health() -> str:
    """Latest health evaluation of each detector of the chosen station."""
    return ('import "strings"\n\n' + SOURCE +
            '  |> filter(fn: (r) => r._measurement == "detector_health" and '
            'strings.hasPrefix(v: r.detector_id, prefix: "${station}-"))\n'
            '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
            '  |> group(columns: ["detector_id"])\n  |> sort(columns: ["_time"])\n  |> last(column: "_time")\n'
            '  |> group()\n  |> drop(columns: ["_start", "_stop", "_measurement"])\n'
            '  |> sort(columns: ["detector_id"])\n')


def corridor_incidents() -> str:
    """Every incident event on the chosen carriageway, newest first."""
    return (SOURCE + f'  |> filter(fn: (r) => r._measurement == "incident" and {CORRIDOR})\n'
            '  |> filter(fn: (r) => r._field == "severity" or r._field == "confidence" or r._field == "location_km")\n'
            '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
            '  |> group()\n  |> sort(columns: ["_time"], desc: true)\n'
            '  |> keep(columns: ["_time", "incident_id", "status", "segment_id", "algorithm", "severity", '
            '"confidence", "location_km"])\n')


# ---- analyst (docs/influxdb.md) -------------------------------------------------------------
def flow_by_segment_hour() -> str:
    return (_flow("segment", "5m", ("flow_veh_h", "space_mean_speed_kmh")) +
            "  |> aggregateWindow(every: 1h, fn: mean, createEmpty: false)\n"
            '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
            '  |> keep(columns: ["_time", "corridor", "direction", "entity_id", "flow_veh_h", '
            '"space_mean_speed_kmh"])\n  |> group()\n  |> sort(columns: ["_time", "entity_id"])\n')


def incident_durations() -> str:
    return (SOURCE + '  |> filter(fn: (r) => r._measurement == "incident" and r.status == "cleared")\n'
            '  |> filter(fn: (r) => r._field == "start_ms" or r._field == "cleared_ms" or r._field == "severity")\n'
            '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
            "  |> map(fn: (r) => ({r with duration_min: float(v: r.cleared_ms - r.start_ms) / 60000.0}))\n"
            "  |> group()\n"
            '  |> keep(columns: ["incident_id", "corridor", "direction", "segment_id", "algorithm", "severity", '
            '"duration_min"])\n'
            '  |> sort(columns: ["duration_min"], desc: true)\n')


def worst_bottlenecks(n: int = 10) -> str:
    return (_flow("segment", "5m", ("space_mean_speed_kmh",)) +
            '  |> group(columns: ["corridor", "direction", "entity_id"])\n  |> mean()\n  |> group()\n'
            '  |> sort(columns: ["_value"])\n'
            f"  |> limit(n: {n})\n"
            '  |> rename(columns: {_value: "mean_speed_kmh"})\n')


def congestion_hours() -> str:
    """Hours each segment spent in LTA bands 1..3 (below 30 km/h), from 5-min windows."""
    return (_flow("segment", "5m", ("speed_band",)) +
            "  |> filter(fn: (r) => r._value >= 1 and r._value <= 3)\n"
            '  |> group(columns: ["corridor", "direction", "entity_id"])\n  |> count()\n  |> group()\n'
            '  |> map(fn: (r) => ({corridor: r.corridor, direction: r.direction, entity_id: r.entity_id,'
            " hours_below_30_kmh: float(v: r._value) * 5.0 / 60.0}))\n"
            '  |> sort(columns: ["hours_below_30_kmh"], desc: true)\n')


def dead_letters_hourly() -> str:
    return dead_letters_by_reason("1h")


NAMED_QUERIES = {
    "flow-by-segment-hour": flow_by_segment_hour,
    "incident-durations": incident_durations,
    "worst-bottlenecks": worst_bottlenecks,
    "congestion-hours": congestion_hours,
    "dead-letters": dead_letters_hourly,
    "open-incidents": open_incidents,
}
"""Ready-made analyst queries for ``roadpulse query-influx NAME`` (the analyst dashboard's panels)."""
