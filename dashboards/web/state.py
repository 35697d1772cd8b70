"""What the web app shows, kept up to date while a run goes (or loaded once from a store).

:class:`LiveState` is written by one feeder thread (the pipeline's ``on_step``
hook, or the store loader) and read by the web server's thread, under one lock.
It holds:

- the latest 1-min window of every segment (speed, flow, LTA band, travel time)
  and each segment's last hour of windows for the operators' charts;
- every incident with its lifecycle (open -> updated -> cleared);
- alerts, from the pipeline's configured subscriptions and the web's own;
- pipeline figures (readings, readings/s, dead letters by reason, simulated time);
- the latest snapshot JPEG of each camera.

Changes are numbered: incidents and alerts go into an event log readers poll
with :meth:`LiveState.events_since`; segment updates bump ``segments_version``
(readers send a fresh picture of the network when it moves).
"""
from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.network import Network
from models.records import Alert, FlowWindowBatch, Incident
from stream.core.travel_time import UsualTravelTime

HISTORY_MS = 3_600_000
SEGMENT_WINDOW_MS = 60_000
MAX_EVENTS = 5_000
MAX_ALERTS = 2_000


def finite_or_none(x: float | None) -> float | None:
    """JSON-safe number: NaN/inf/None -> None, else a float rounded to 3 decimals."""
    if x is None:
        return None
    x = float(x)
    return round(x, 3) if math.isfinite(x) else None


@dataclass
class CameraSnapshot:
    """The latest picture of one camera."""

    camera_id: str
    time_ms: int
    jpeg: bytes
    segment_id: str = ""
    annotated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"camera_id": self.camera_id, "time_ms": self.time_ms, "segment_id": self.segment_id,
                "annotated": self.annotated, "url": f"/api/cameras/{self.camera_id}.jpg?t={self.time_ms}"}


@dataclass
class IncidentView:
    """One incident: its latest event and the lifecycle so far."""

    latest: Incident
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        i = self.latest
        return {"incident_id": i.incident_id, "corridor": i.corridor, "direction": i.direction,
                "segment_id": i.segment_id, "location_km": round(float(i.location_km), 3),
                "start_ms": int(i.start_ms), "event_ms": int(i.event_ms), "status": i.status,
                "severity": int(i.severity), "algorithm": i.algorithm,
                "confidence": round(float(i.confidence), 3),
                "cleared_ms": None if i.cleared_ms is None else int(i.cleared_ms), "events": list(self.events)}


def alert_dict(a: Alert, source: str) -> dict[str, Any]:
    """An alert as JSON (``source``: "pipeline" for configured subscriptions, "web" for the web's own)."""
    d = a.to_dict()
    d["travel_time_now_s"] = finite_or_none(a.travel_time_now_s)
    d["travel_time_usual_s"] = finite_or_none(a.travel_time_usual_s)
    d["source"] = source
    return d


class LiveState:
    """Thread-safe picture of the network, incidents, alerts, figures and cameras (module docstring)."""

    def __init__(self, network: Network, history_ms: int = HISTORY_MS, window_ms: int = SEGMENT_WINDOW_MS,
                 alert_algorithm: str = "statistical") -> None:
        self.network = network
        self.history_ms = history_ms
        self.window_ms = window_ms
        self.alert_algorithm = alert_algorithm
        self.usual = UsualTravelTime(network)
        self._lock = threading.Lock()
        self._latest: dict[str, dict[str, Any]] = {}
        self._history: dict[str, deque[tuple[int, float | None, float | None, int]]] = {}
        self._incidents: dict[str, IncidentView] = {}
        self._alerts: deque[dict[str, Any]] = deque(maxlen=MAX_ALERTS)
        self._events: deque[tuple[int, str, dict[str, Any]]] = deque(maxlen=MAX_EVENTS)
        self._seq = 0
        self._cameras: dict[str, CameraSnapshot] = {}
        self.segments_version = 0
        self.stats: dict[str, Any] = {"mode": "idle", "sim_now_ms": None, "readings_in": 0,
                                      "readings_per_s": None, "dead_letters": {}, "dead_letters_total": 0,
                                      "open_incidents": 0, "finished": False}

    # ---- writers (feeder thread) ------------------------------------------
    def add_segment_windows(self, batch: FlowWindowBatch) -> int:
        """Take segment windows of the state's window length (others are ignored); returns rows taken."""
        if batch.level != "segment" or batch.window_ms != self.window_ms or len(batch) == 0:
            return 0
        tt = batch.travel_time_s if len(batch.travel_time_s) == len(batch) else np.full(len(batch), np.nan)
        rows = zip(batch.entity_id.tolist(), np.asarray(batch.window_start_ms, dtype=np.int64).tolist(),
                   batch.space_mean_speed_kmh.tolist(), batch.flow_veh_h.tolist(),
                   np.asarray(batch.speed_band, dtype=np.int64).tolist(), tt.tolist(),
                   batch.occupancy_pct.tolist())
        with self._lock:
            self.usual.update(batch)  # the usual is read under the lock too (its arrays grow)
            for seg_id, start, speed, flow, band, travel, occ in rows:
                latest = self._latest.get(seg_id)
                if latest is not None and latest["window_start_ms"] > start:
                    continue
                usual = self.usual.usual_s(seg_id, start)
                self._latest[seg_id] = {"window_start_ms": start, "speed_kmh": finite_or_none(speed),
                                        "flow_veh_h": finite_or_none(flow), "speed_band": band,
                                        "travel_time_s": finite_or_none(travel),
                                        "usual_travel_time_s": finite_or_none(usual),
                                        "occupancy_pct": finite_or_none(occ)}
                hist = self._history.setdefault(seg_id, deque())
                hist.append((start, finite_or_none(speed), finite_or_none(flow), band))
                while hist and hist[0][0] <= start - self.history_ms:
                    hist.popleft()
            self.segments_version += 1
        return len(batch)

    def add_incidents(self, incidents: list[Incident]) -> None:
        """Incident lifecycle events, in the order they happened."""
        with self._lock:
            for inc in incidents:
                view = self._incidents.get(inc.incident_id)
                if view is None:
                    view = self._incidents[inc.incident_id] = IncidentView(inc)
                elif inc.event_ms >= view.latest.event_ms:
                    view.latest = inc
                view.events.append({"status": inc.status, "event_ms": int(inc.event_ms),
                                    "severity": int(inc.severity)})
                self._emit("incident", view.to_dict())

    def add_alerts(self, alerts: list[Alert], source: str) -> None:
        """Alerts to commuters; ``source`` is "pipeline" or "web"."""
        with self._lock:
            for a in alerts:
                d = alert_dict(a, source)
                self._alerts.append(d)
                self._emit("alert", d)

    def set_stats(self, **figures: Any) -> None:
        """Merge pipeline figures (readings_in, readings_per_s, dead_letters, sim_now_ms, ...)."""
        with self._lock:
            self.stats.update(figures)
            self.stats["dead_letters_total"] = int(sum(self.stats.get("dead_letters", {}).values()))

    def set_camera(self, snapshot: CameraSnapshot) -> None:
        """Keep a camera's snapshot if it is newer than the one held."""
        with self._lock:
            old = self._cameras.get(snapshot.camera_id)
            if old is None or snapshot.time_ms >= old.time_ms:
                self._cameras[snapshot.camera_id] = snapshot
                self._emit("camera", snapshot.to_dict())

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        self._seq += 1
        self._events.append((self._seq, kind, data))

    # ---- readers (server thread) -------------------------------------------
    @property
    def seq(self) -> int:
        """Number of the latest event."""
        with self._lock:
            return self._seq

    def events_since(self, seq: int) -> list[tuple[int, str, dict[str, Any]]]:
        """Events numbered after ``seq`` (older ones may have been dropped from the bounded log)."""
        with self._lock:
            if not self._events or self._events[-1][0] <= seq:
                return []
            return [e for e in self._events if e[0] > seq]

    def segments(self) -> dict[str, dict[str, Any]]:
        """Latest window per segment id."""
        with self._lock:
            return {k: dict(v) for k, v in self._latest.items()}

    def segment_history(self, segment_id: str) -> list[dict[str, Any]]:
        """The segment's windows of the last hour (oldest first)."""
        with self._lock:
            hist = list(self._history.get(segment_id, ()))
        return [{"window_start_ms": t, "speed_kmh": s, "flow_veh_h": f, "speed_band": b} for t, s, f, b in hist]

    def incidents(self, algorithm: str | None = None) -> list[dict[str, Any]]:
        """Incidents, newest first; optionally of one detection algorithm."""
        with self._lock:
            views = [v.to_dict() for v in self._incidents.values()
                     if algorithm is None or v.latest.algorithm == algorithm]
        return sorted(views, key=lambda d: (d["status"] == "cleared", -d["event_ms"]))

    def open_incidents(self, algorithm: str | None = None) -> list[Incident]:
        """Incidents whose latest event is not ``cleared``."""
        with self._lock:
            return [v.latest for v in self._incidents.values()
                    if v.latest.status != "cleared" and (algorithm is None or v.latest.algorithm == algorithm)]

    def alerts(self, subscription_id: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Most recent alerts first (of one subscription if given)."""
        with self._lock:
            items = [a for a in self._alerts if subscription_id is None or a["subscription_id"] == subscription_id]
        return items[::-1][:limit]

    def cameras(self) -> list[dict[str, Any]]:
        with self._lock:
            return [c.to_dict() for c in sorted(self._cameras.values(), key=lambda c: c.camera_id)]

    def camera_jpeg(self, camera_id: str) -> bytes | None:
        with self._lock:
            snap = self._cameras.get(camera_id)
            return None if snap is None else snap.jpeg

    def figures(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.stats)

    def route_travel_time(self, segment_ids: tuple[str, ...]) -> dict[str, Any]:
        """Travel time of a route now (latest windows; free flow where unknown) and usually (NaN-free or None)."""
        now_s = 0.0
        latest_ms = None
        with self._lock:
            for seg_id in segment_ids:
                seg = self.network.segment_by_id[seg_id]
                limit = self.network.roadway_by_key[f"{seg.corridor}-{seg.direction}"].speed_limit_kmh
                row = self._latest.get(seg_id)
                tt = row["travel_time_s"] if row else None
                now_s += tt if tt is not None else seg.length_km / limit * 3600.0
                if row:
                    latest_ms = max(latest_ms or 0, row["window_start_ms"])
            usual = self.usual.usual_route_s(list(segment_ids), latest_ms) if latest_ms is not None else None
        return {"now_s": round(now_s, 1), "usual_s": finite_or_none(usual), "window_start_ms": latest_ms}
