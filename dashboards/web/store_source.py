"""Filling the live state from a finished run's local store (``roadpulse serve --store FILE``).

The state then shows the run as it ended: each segment's last hour of 1-min
windows, every incident with its lifecycle, every alert, the pipeline figures
and dead letters by reason. The usual travel times learn from every stored
segment window, so a commuter route shows "now vs usual" too.
"""
from __future__ import annotations

import logging
import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dashboards.web.state import LiveState
from models.records import Alert, FlowWindowBatch, Incident
from stream.sinks.influx_query import InfluxConnection, InfluxStore
from stream.sinks.sqlite_store import LocalStore, window_tag

log = logging.getLogger(__name__)


class StoreMismatch(ValueError):
    """The store holds segments the network does not know (served with the wrong network)."""


def _none(x: Any) -> Any:
    if x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA:
        return None
    return x


def _batch(df: pd.DataFrame, window_ms: int) -> FlowWindowBatch:
    return FlowWindowBatch(
        "segment", window_ms, df["entity_id"].to_numpy(object), df["corridor"].to_numpy(object),
        df["direction"].to_numpy(object), df["window_start_ms"].to_numpy(np.int64),
        df["vehicle_count"].fillna(0).to_numpy(np.int64), df["flow_veh_h"].to_numpy(np.float64),
        df["occupancy_pct"].to_numpy(np.float64), df["time_mean_speed_kmh"].to_numpy(np.float64),
        df["space_mean_speed_kmh"].to_numpy(np.float64), df["density_veh_km"].to_numpy(np.float64),
        df["speed_band"].fillna(0).to_numpy(np.int8), df["n_readings"].fillna(0).to_numpy(np.int64),
        travel_time_s=df["travel_time_s"].to_numpy(np.float64), imputed=df["imputed"].to_numpy(bool))


def load_store(path: str | Path, state: LiveState) -> dict[str, int]:
    """Load a store into ``state``; returns counts of what was loaded. Raises StoreMismatch, FileNotFoundError."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no store at {path}; run `roadpulse run` first or pass --store")
    store = LocalStore(path)
    try:
        counts = _load(store, state)
    finally:
        store.close()
    state.set_stats(mode="store", finished=True, store=str(path))
    return counts


def load_influx_store(conn: InfluxConnection, state: LiveState) -> dict[str, int]:
    """Load a full-stack run's results from InfluxDB into ``state`` (the same measurements as the local store)."""
    counts = _load(InfluxStore(conn), state)
    state.set_stats(mode="store", finished=True, store=f"{conn.url} bucket {conn.bucket}")
    return counts


def _load(store: LocalStore | InfluxStore, state: LiveState) -> dict[str, int]:
    network = state.network
    tag = window_tag(state.window_ms)
    flow = store.load("flow", level="segment", window=tag)
    unknown = set(flow["entity_id"].unique()) - set(network.segment_by_id) if len(flow) else set()
    if unknown:
        raise StoreMismatch(f"the store holds {len(unknown)} segments this network does not know "
                            f"(e.g. {sorted(unknown)[:3]}); serve with the run's --network/--detectors")
    if len(flow):
        last_ms = int(flow["window_start_ms"].max())
        cut = last_ms - state.history_ms
        older = flow[flow["window_start_ms"] <= cut]
        if len(older):
            state.usual.update(_batch(older, state.window_ms))
        recent = flow[flow["window_start_ms"] > cut]
        for _, part in recent.groupby("window_start_ms", sort=True):
            state.add_segment_windows(_batch(part, state.window_ms))
    incidents = store.load("incident")
    state.add_incidents([Incident(
        incident_id=r.incident_id, corridor=r.corridor, direction=r.direction, segment_id=r.segment_id,
        location_km=float(r.location_km), start_ms=int(r.start_ms), event_ms=int(r.event_ms), status=r.status,
        severity=int(r.severity), algorithm=r.algorithm, confidence=float(r.confidence),
        cleared_ms=None if _none(r.cleared_ms) is None else int(r.cleared_ms))
        for r in incidents.sort_values("event_ms", kind="stable").itertuples()])
    alerts = store.load("alert")
    state.add_alerts([Alert(
        alert_id=r.alert_id, subscription_id=r.subscription_id, kind=r.kind, segment_id=r.segment_id,
        corridor=r.corridor, direction=r.direction, at_ms=int(r.at_ms), message=r.message,
        speed_band_from=None if _none(r.speed_band_from) is None else int(r.speed_band_from),
        speed_band_to=None if _none(r.speed_band_to) is None else int(r.speed_band_to),
        incident_id=_none(r.incident_id), travel_time_now_s=_none(r.travel_time_now_s),
        travel_time_usual_s=_none(r.travel_time_usual_s)) for r in alerts.itertuples()], source="pipeline")
    letters = store.load("dead_letter")
    by_reason = letters.groupby("reason").size() if len(letters) else pd.Series(dtype=int)
    figures: dict[str, Any] = {"dead_letters": {str(k): int(v) for k, v in by_reason.items()},
                               "incident_events": len(incidents), "alerts_sent": len(alerts), "open_incidents": 0}
    if len(flow):
        figures["sim_now_ms"] = int(flow["window_start_ms"].max()) + state.window_ms
    try:
        pipe = store.load("pipeline")
    except (sqlite3.Error, pd.errors.DatabaseError):
        pipe = pd.DataFrame()
    if len(pipe) and "readings_total" in pipe:  # the runtime's row (cameras write their own component)
        pipe = pipe[pipe["readings_total"].notna()]
        pipe = pipe.sort_values("at_ms" if "at_ms" in pipe else "time", ascending=False).head(1)
    if len(pipe):
        row = pipe.iloc[0].to_dict()
        for src, dst in (("readings_total", "readings_in"), ("readings_per_s", "readings_per_s")):
            if _none(row.get(src)) is not None:
                figures[dst] = round(float(row[src]), 1) if dst == "readings_per_s" else int(row[src])
    state.set_stats(**figures)
    log.info("loaded %d segment windows, %d incident events, %d alerts", len(flow), len(incidents), len(alerts))
    return {"segment_windows": len(flow), "incident_events": len(incidents), "alerts": len(alerts)}
