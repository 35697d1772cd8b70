"""Per-segment alarms over time -> Incident lifecycle events (open, updated, cleared).

One tracker per roadway and algorithm. An alarm on a segment that no open
incident covers opens one, unless an open incident covers an adjacent segment:
then that incident grows to cover it (a queue or a detector pair either side of
the same crash is one incident, not two). An incident is *updated* when its
severity changes or its confidence moves by ``confidence_step`` from the last
value reported, at most once per ``min_update_interval_ms``; it is *cleared*
after ``clear_after_intervals`` consecutive decisions with none of its segments
alarmed. ``cleared_ms`` is the time of the first of those quiet decisions (when
the evidence ended); ``event_ms`` is when the clear was declared.

Incident ids are deterministic: ``f"{algorithm}:{segment_id}:{start_ms}"``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from models.network import Roadway
from models.records import Incident
from stream.core.incidents.base import Alarms


@dataclass
class _Open:
    incident_id: str
    segment: int  # index of the segment it opened on (its reported location)
    start_ms: int
    covers: set[int]
    severity: int
    confidence: float
    reported_severity: int
    reported_confidence: float
    last_event_ms: int
    quiet: int = 0
    quiet_since_ms: int | None = None


class IncidentTracker:
    """Turns one roadway's per-segment alarms from one algorithm into Incident events."""

    def __init__(self, roadway: Roadway, algorithm: str, clear_after_intervals: int = 3,
                 min_update_interval_ms: int = 300_000, confidence_step: float = 0.2,
                 resume_state: dict[str, Any] | None = None) -> None:
        if clear_after_intervals < 1:
            raise ValueError("clear_after_intervals must be >= 1")
        self.roadway = roadway
        self.algorithm = algorithm
        self.clear_after_intervals = clear_after_intervals
        self.min_update_interval_ms = min_update_interval_ms
        self.confidence_step = confidence_step
        self.segments = roadway.segments
        self._open: dict[str, _Open] = {}
        self.last_at_ms: int | None = None
        if resume_state:
            self._restore(resume_state)

    @property
    def n_open(self) -> int:
        return len(self._open)

    def open_incidents(self) -> list[str]:
        return sorted(self._open)

    def update(self, at_ms: int, alarms: Alarms) -> list[Incident]:
        """Feed one decision (``at_ms`` = when it was made, e.g. the window end); the events it causes."""
        if len(alarms) != len(self.segments):
            raise ValueError(f"{len(alarms)} segment alarms for a roadway with {len(self.segments)} segments")
        if self.last_at_ms is not None and at_ms <= self.last_at_ms:
            raise ValueError(f"decision at {at_ms} is not after the last one ({self.last_at_ms})")
        self.last_at_ms = int(at_ms)
        events: list[Incident] = []
        alarmed = np.flatnonzero(np.asarray(alarms.alarm, dtype=bool)).tolist()
        conf = np.nan_to_num(np.asarray(alarms.confidence, dtype=np.float64))
        sev = np.asarray(alarms.severity)
        owner = {seg: inc for inc in self._open.values() for seg in inc.covers}
        opened: set[str] = set()
        for seg in alarmed:  # downstream order: adjacency merges are deterministic
            if seg in owner:
                continue
            neighbours = [owner[n] for n in (seg - 1, seg + 1) if n in owner]
            if neighbours:
                inc = min(neighbours, key=lambda o: (o.start_ms, o.incident_id))
                inc.covers.add(seg)
                owner[seg] = inc
                continue
            seg_id = self.segments[seg].segment_id
            inc = _Open(f"{self.algorithm}:{seg_id}:{at_ms}", seg, int(at_ms), {seg},
                        int(max(sev[seg], 1)), float(conf[seg]), int(max(sev[seg], 1)), float(conf[seg]), int(at_ms))
            self._open[inc.incident_id] = inc
            owner[seg] = inc
            opened.add(inc.incident_id)
            events.append(self._event(inc, "open", at_ms))
        alarmed_set = set(alarmed)
        for inc in sorted(self._open.values(), key=lambda o: o.incident_id):
            if inc.incident_id in opened:
                continue
            active = sorted(inc.covers & alarmed_set)
            if not active:
                if inc.quiet == 0:
                    inc.quiet_since_ms = int(at_ms)
                inc.quiet += 1
                if inc.quiet >= self.clear_after_intervals:
                    del self._open[inc.incident_id]
                    events.append(self._event(inc, "cleared", at_ms, cleared_ms=inc.quiet_since_ms))
                continue
            inc.quiet, inc.quiet_since_ms = 0, None
            inc.severity = int(max(sev[active].max(), 1))
            inc.confidence = float(conf[active].max())
            changed = (inc.severity != inc.reported_severity
                       or abs(inc.confidence - inc.reported_confidence) >= self.confidence_step)
            if changed and at_ms - inc.last_event_ms >= self.min_update_interval_ms:
                events.append(self._event(inc, "updated", at_ms))
        return events

    def close_all(self, at_ms: int) -> list[Incident]:
        """Clear every open incident (end of stream), ``cleared_ms = at_ms``."""
        events = [self._event(inc, "cleared", at_ms, cleared_ms=int(at_ms))
                  for inc in sorted(self._open.values(), key=lambda o: o.incident_id)]
        self._open.clear()
        return events

    def _event(self, inc: _Open, status: str, at_ms: int, cleared_ms: int | None = None) -> Incident:
        seg = self.segments[inc.segment]
        inc.reported_severity, inc.reported_confidence, inc.last_event_ms = inc.severity, inc.confidence, int(at_ms)
        return Incident(
            incident_id=inc.incident_id, corridor=self.roadway.corridor, direction=self.roadway.direction,
            segment_id=seg.segment_id, location_km=round((seg.start_km + seg.end_km) / 2, 3),
            start_ms=inc.start_ms, event_ms=int(at_ms), status=status, severity=inc.severity,
            algorithm=self.algorithm, confidence=round(min(max(inc.confidence, 0.0), 1.0), 4),
            cleared_ms=cleared_ms)

    # ---- state -------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "last_at_ms": self.last_at_ms,
            "open": [
                {"incident_id": o.incident_id, "segment": o.segment, "start_ms": o.start_ms,
                 "covers": sorted(o.covers), "severity": o.severity, "confidence": o.confidence,
                 "reported_severity": o.reported_severity, "reported_confidence": o.reported_confidence,
                 "last_event_ms": o.last_event_ms, "quiet": o.quiet, "quiet_since_ms": o.quiet_since_ms}
                for o in sorted(self._open.values(), key=lambda o: o.incident_id)
            ],
        }

    def _restore(self, s: dict[str, Any]) -> None:
        self.last_at_ms = s["last_at_ms"]
        self._open = {}
        for o in s["open"]:
            inc = _Open(o["incident_id"], o["segment"], o["start_ms"], set(o["covers"]), o["severity"],
                        o["confidence"], o["reported_severity"], o["reported_confidence"], o["last_event_ms"],
                        o["quiet"], o["quiet_since_ms"])
            self._open[inc.incident_id] = inc
