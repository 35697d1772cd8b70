"""Grafana panel builders: plain dicts in the shape of Grafana's dashboard JSON (schemaVersion 39).

Every builder returns a complete panel (type, title, datasource, gridPos,
targets, fieldConfig, options) so the dashboard JSON validates against
Grafana's own schemas (../shared/grafana-jsonschema; checked in
tests/dashboards/test_grafana_schema.py). Colours follow the LTA speed bands:
band 1 (under 10 km/h) dark red through band 8 (70 km/h and over) green,
band 0 (unknown, no vehicle) grey.
"""
from __future__ import annotations

from typing import Any

DATASOURCE_UID = "roadpulse-influxdb"
DATASOURCE = {"type": "influxdb", "uid": DATASOURCE_UID}

# LTA speed band -> colour, red (jammed) to green (free flow); 0 = unknown.
BAND_COLOURS = ("#8e8e8e", "#7f0000", "#d7191c", "#f46d43", "#fdae61", "#fee08b", "#d9ef8b", "#91cf60", "#1a9850")
BAND_LABELS = ("unknown", "1: < 10 km/h", "2: 10-20 km/h", "3: 20-30 km/h", "4: 30-40 km/h", "5: 40-50 km/h",
               "6: 50-60 km/h", "7: 60-70 km/h", "8: >= 70 km/h")


def band_thresholds() -> dict[str, Any]:
    """Thresholds on a speed band field (0..8): grey below 1, then one colour per band."""
    steps: list[dict[str, Any]] = [{"color": BAND_COLOURS[0], "value": None}]
    steps += [{"color": BAND_COLOURS[b], "value": b} for b in range(1, 9)]
    return {"mode": "absolute", "steps": steps}


def speed_thresholds() -> dict[str, Any]:
    """Thresholds on a speed in km/h at the LTA band edges (10, 20, ... 70)."""
    steps: list[dict[str, Any]] = [{"color": BAND_COLOURS[1], "value": None}]
    steps += [{"color": BAND_COLOURS[b], "value": (b - 1) * 10} for b in range(2, 9)]
    return {"mode": "absolute", "steps": steps}


def band_mappings() -> list[dict[str, Any]]:
    """Value mappings that name the bands in legends and tooltips."""
    return [{"type": "value", "options": {str(b): {"text": BAND_LABELS[b], "color": BAND_COLOURS[b], "index": b}
                                          for b in range(9)}}]


def plain_thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}


def target(query: str, ref_id: str = "A") -> dict[str, Any]:
    """One Flux query of the roadpulse InfluxDB data source."""
    return {"refId": ref_id, "datasource": dict(DATASOURCE), "query": query}


def grid(x: int, y: int, w: int, h: int) -> dict[str, int]:
    return {"x": x, "y": y, "w": w, "h": h}


def _field_config(unit: str | None = None, thresholds: dict | None = None, custom: dict | None = None,
                  mappings: list | None = None, color_mode: str | None = None, decimals: int | None = None,
                  min_value: float | None = None, no_value: str | None = None) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    if unit:
        defaults["unit"] = unit
    if decimals is not None:
        defaults["decimals"] = decimals
    if min_value is not None:
        defaults["min"] = min_value
    if no_value is not None:
        defaults["noValue"] = no_value
    if color_mode:
        defaults["color"] = {"mode": color_mode}
    defaults["thresholds"] = thresholds or plain_thresholds((None, "green"))
    defaults["mappings"] = mappings or []
    if custom is not None:
        defaults["custom"] = custom
    return {"defaults": defaults, "overrides": []}


def _panel(kind: str, title: str, description: str, pos: dict[str, int], query: str,
           field_config: dict[str, Any], options: dict[str, Any], **extra: Any) -> dict[str, Any]:
    panel: dict[str, Any] = {"type": kind, "title": title, "description": description,
                             "datasource": dict(DATASOURCE), "gridPos": pos, "targets": [target(query)],
                             "fieldConfig": field_config, "options": options}
    panel.update(extra)
    return panel


def _legend(placement: str = "bottom", as_table: bool = False, calcs: list[str] | None = None) -> dict[str, Any]:
    return {"showLegend": True, "displayMode": "table" if as_table else "list", "placement": placement,
            "calcs": calcs or []}


def timeseries(title: str, description: str, pos: dict[str, int], query: str, unit: str | None = None,
               thresholds: dict | None = None, stacked: bool = False, draw: str = "line",
               legend_calcs: list[str] | None = None, color_by_thresholds: bool = False) -> dict[str, Any]:
    """A time series panel; ``color_by_thresholds`` colours the line by value (speeds in LTA bands)."""
    custom = {"drawStyle": draw, "lineWidth": 1, "fillOpacity": 10 if not stacked else 60, "showPoints": "never",
              "spanNulls": False, "lineInterpolation": "linear", "axisPlacement": "auto",
              "stacking": {"mode": "normal" if stacked else "none", "group": "A"},
              "gradientMode": "scheme" if color_by_thresholds else "none"}
    fc = _field_config(unit=unit, thresholds=thresholds, custom=custom,
                       color_mode="thresholds" if color_by_thresholds else "palette-classic")
    options = {"legend": _legend(as_table=bool(legend_calcs), placement="right" if legend_calcs else "bottom",
                                 calcs=legend_calcs),
               "tooltip": {"mode": "multi", "sort": "desc"}}
    return _panel("timeseries", title, description, pos, query, fc, options)


def table(title: str, description: str, pos: dict[str, int], query: str, sort_by: str | None = None,
          desc: bool = True) -> dict[str, Any]:
    """A table of the query's rows. Columns carry their unit in their name (``duration_min``): Grafana's
    schema types an override's value as an object, so per-column units through overrides would not validate."""
    custom = {"align": "auto", "inspect": False, "filterable": True}
    options: dict[str, Any] = {"showHeader": True, "frameIndex": 0, "cellHeight": "sm",
                               "footer": {"show": False, "reducer": ["sum"], "countRows": False}}
    if sort_by:
        options["sortBy"] = [{"displayName": sort_by, "desc": desc}]
    return _panel("table", title, description, pos, query, _field_config(custom=custom), options)


def stat(title: str, description: str, pos: dict[str, int], query: str, unit: str | None = None,
         thresholds: dict | None = None, calc: str = "lastNotNull", decimals: int | None = None,
         no_value: str | None = None) -> dict[str, Any]:
    options = {"reduceOptions": {"values": False, "calcs": [calc], "fields": ""}, "orientation": "auto",
               "textMode": "auto", "colorMode": "value", "graphMode": "area", "justifyMode": "auto",
               "wideLayout": True, "showPercentChange": False, "percentChangeColorMode": "standard"}
    return _panel("stat", title, description, pos, query,
                  _field_config(unit=unit, thresholds=thresholds, color_mode="thresholds", decimals=decimals,
                                no_value=no_value), options)


def bargauge(title: str, description: str, pos: dict[str, int], query: str, unit: str | None = None,
             thresholds: dict | None = None) -> dict[str, Any]:
    """Horizontal bars, one per series of the query (its last value)."""
    options = {"reduceOptions": {"values": False, "calcs": ["lastNotNull"], "fields": ""},
               "orientation": "horizontal", "displayMode": "basic", "valueMode": "color", "namePlacement": "auto",
               "showUnfilled": True, "sizing": "auto", "minVizWidth": 8, "minVizHeight": 16, "maxVizHeight": 300,
               "legend": {"showLegend": False, "displayMode": "list", "placement": "bottom", "calcs": []}}
    return _panel("bargauge", title, description, pos, query,
                  _field_config(unit=unit, thresholds=thresholds, color_mode="thresholds", min_value=0), options)


def status_history(title: str, description: str, pos: dict[str, int], query: str) -> dict[str, Any]:
    """Speed band per row (segment) over time, coloured by band: a PeMS-style contour of the corridor."""
    custom = {"lineWidth": 0, "fillOpacity": 90}
    options = {"rowHeight": 0.9, "showValue": "never", "colWidth": 0.95,
               "legend": _legend(), "tooltip": {"mode": "single", "sort": "none"}}
    fc = _field_config(thresholds=band_thresholds(), custom=custom, mappings=band_mappings(), color_mode="thresholds")
    return _panel("status-history", title, description, pos, query, fc, options)


def geomap(title: str, description: str, pos: dict[str, int], query: str, color_field: str,
           zoom: int = 11) -> dict[str, Any]:
    """Markers at lat/lon columns coloured by ``color_field`` (an LTA speed band) through the thresholds."""
    layer = {"type": "markers", "name": "segments", "tooltip": True, "opacity": 1,
             "location": {"mode": "coords", "latitude": "lat", "longitude": "lon"},
             "config": {"showLegend": True,
                        "style": {"color": {"field": color_field, "fixed": "dark-green"},
                                  "size": {"fixed": 6, "min": 2, "max": 15},
                                  "symbol": {"mode": "fixed", "fixed": "img/icons/marker/circle.svg"},
                                  "opacity": 0.9}}}
    options = {"view": {"id": "fit", "zoom": zoom, "allLayers": True},
               "controls": {"showZoom": True, "mouseWheelZoom": True, "showAttribution": True, "showScale": True},
               "basemap": {"type": "default", "name": "Basemap"},
               "layers": [layer], "tooltip": {"mode": "details"}}
    fc = _field_config(thresholds=band_thresholds(), mappings=band_mappings(), color_mode="thresholds")
    return _panel("geomap", title, description, pos, query, fc, options)


def row(title: str, y: int) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "gridPos": grid(0, y, 24, 1), "panels": []}


def text(title: str, pos: dict[str, int], markdown: str) -> dict[str, Any]:
    return {"type": "text", "title": title, "gridPos": pos,
            "options": {"mode": "markdown", "content": markdown,
                        "code": {"language": "plaintext", "showLineNumbers": False, "showMiniMap": False}}}
