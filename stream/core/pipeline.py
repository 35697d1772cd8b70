"""The traffic core composed into two keyed stages, called by both runtimes.

* :class:`StationStage` (keyed by station): readings -> detector windows ->
  lane and station flow windows, detector health and lane imputation.
* :class:`CorridorStage` (keyed by roadway): station windows -> segment metrics
  and travel times, incident detection with every configured algorithm,
  incident lifecycle, commuter alerts.

The embedded runner calls both in one process; the faust app runs the first per
readings partition and the second per roadway, with the same objects and the
same snapshots. Nothing here does IO.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from models.network import Network
from models.records import Alert, FlowWindowBatch, Incident, ReadingBatch
from stream.core.alerts import AlertRules, Subscription
from stream.core.chains import StationChains, build_chain_detector
from stream.core.flow import lane_metrics, segment_metrics, station_metrics
from stream.core.health import DetectorHealth
from stream.core.imputation import LaneShares, impute_lanes
from stream.core.incidents.base import Alarms
from stream.core.incidents.lifecycle import IncidentTracker
from stream.core.travel_time import UsualTravelTime
from stream.core.windows import TumblingWindow

WINDOW_LABELS = {30_000: "30s", 60_000: "1m", 300_000: "5m"}
DEFAULT_ALGORITHMS = ("california8", "statistical")


@dataclass(frozen=True)
class PipelineConfig:
    window_lengths_ms: tuple[int, ...] = (30_000, 60_000, 300_000)
    allowed_lateness_ms: int = 60_000
    incident_window_ms: int = 60_000  # incident detectors and alerts run on these station windows
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    alert_algorithm: str = "statistical"  # whose incidents reach commuters
    subscriptions: tuple[Subscription, ...] = ()
    health_every_ms: int = 3_600_000
    impute: bool = True
    corridor_grace_ms: int = 120_000  # how long a roadway waits for late stations of a window

    def __post_init__(self) -> None:
        if self.incident_window_ms not in self.window_lengths_ms:
            raise ValueError("incident_window_ms must be one of window_lengths_ms")


def window_label(window_ms: int) -> str:
    return WINDOW_LABELS.get(window_ms, f"{window_ms // 1000}s")


@dataclass
class StationOutput:
    lanes: list[FlowWindowBatch] = field(default_factory=list)
    stations: list[FlowWindowBatch] = field(default_factory=list)
    health: list[dict[str, Any]] = field(default_factory=list)


class StationStage:
    """Readings -> lane and station windows for the stations this worker owns."""

    def __init__(self, network: Network, config: PipelineConfig, resume_state: dict | None = None) -> None:
        self.network = network
        self.config = config
        state = resume_state or {}
        self.windows = {
            length: TumblingWindow(length, config.allowed_lateness_ms).build(
                network.n_detectors, resume_state=state.get("windows", {}).get(length))
            for length in config.window_lengths_ms
        }
        self.health = DetectorHealth(network, window_ms=config.incident_window_ms,
                                     resume_state=state.get("health"))
        self.shares = LaneShares(network, resume_state=state.get("shares"))
        self._bad = np.asarray(state.get("bad", np.zeros(network.n_detectors, dtype=bool)), dtype=bool)
        self._next_health_ms: int | None = state.get("next_health_ms")

    def process(self, detector: np.ndarray, batch: ReadingBatch) -> np.ndarray:
        """Aggregate accepted readings; returns a bool mask of rows that came too late."""
        late = np.zeros(len(batch), dtype=bool)
        for logic in self.windows.values():
            late |= logic.update(detector, batch.interval_start_ms, batch.interval_ms, batch.vehicle_count,
                                 batch.occupancy_pct, batch.speed_kmh)
        return late

    def poll(self, flush: bool = False) -> StationOutput:
        """Flow windows that closed since the last poll (all windows when ``flush``)."""
        out = StationOutput()
        for length, logic in self.windows.items():
            for closed in (logic.flush() if flush else logic.poll()):
                lanes = lane_metrics(closed, self.network)
                if length == self.config.incident_window_ms:
                    self.health.update(lanes)
                    self.shares.update(lanes, self._bad)
                    self._maybe_health(closed.window_start_ms + length, out)
                if self.config.impute and self._bad.any():
                    # bad lanes replaced from their neighbours before stations aggregate them (as PeMS does)
                    lanes = impute_lanes(lanes, self._bad, self.network, shares=self.shares, add_missing=False)
                    stations = station_metrics(lanes, self.network)
                else:
                    stations = station_metrics(closed, self.network)
                out.lanes.append(lanes)
                out.stations.append(stations)
        return out

    def _maybe_health(self, at_ms: int, out: StationOutput) -> None:
        if self._next_health_ms is None:
            self._next_health_ms = at_ms - at_ms % self.config.health_every_ms + self.config.health_every_ms
        if at_ms < self._next_health_ms:
            return
        report = self.health.status(at_ms)
        self._bad = report.bad
        out.health.append({"at_ms": at_ms, "report": report})
        self._next_health_ms = at_ms - at_ms % self.config.health_every_ms + self.config.health_every_ms

    def snapshot(self) -> dict:
        return {
            "windows": {length: logic.snapshot() for length, logic in self.windows.items()},
            "health": self.health.snapshot(),
            "bad": self._bad.copy(),
            "shares": self.shares.snapshot(),
            "next_health_ms": self._next_health_ms,
        }


@dataclass
class CorridorOutput:
    segments: list[FlowWindowBatch] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    # (window_start_ms, segment_id, value): camera evidence the detectors were given, non-zero values only
    evidence: list[tuple[int, str, float]] = field(default_factory=list)


class CorridorStage:
    """Station windows of whole roadways -> segments, incidents, alerts.

    Station windows may arrive in pieces (from several station workers); a
    window is processed once every owned station has reported it, or once the
    stream has moved ``corridor_grace_ms`` past its end. All owned roadways are
    processed together: one vectorised call per window and algorithm over a
    :class:`StationChains` layout, never a Python loop over roadways on the hot path.

    Camera evidence (optional): :meth:`set_evidence` hands over the latest
    stopped-vehicle evidence per segment (0..1); detectors that take
    ``extra_evidence`` get it, mapped onto the chain, with every window
    processed until it is replaced.
    """

    def __init__(self, network: Network, config: PipelineConfig, roadway_keys: list[str] | None = None,
                 resume_state: dict | None = None) -> None:
        self.network = network
        self.config = config
        self.chains = StationChains(network, roadway_keys)
        state = resume_state or {}
        det_state = state.get("detectors", {})
        trk_state = state.get("trackers", {})
        n = self.chains.n_positions
        self.detectors = {algo: build_chain_detector(algo, n, resume_state=det_state.get(algo))
                          for algo in config.algorithms}
        self.trackers = {
            (key, algo): IncidentTracker(network.roadway_by_key[key], algo, resume_state=trk_state.get((key, algo)))
            for key in self.chains.roadway_keys for algo in config.algorithms
        }
        self.alerts = AlertRules(config.subscriptions, network, resume_state=state.get("alerts"))
        self.usual = UsualTravelTime(network, resume_state=state.get("usual"))
        self._pending: dict[tuple[int, int], list[FlowWindowBatch]] = state.get("pending", {})
        self._watermark_ms: int = state.get("watermark_ms", 0)
        # owned segments in network order (the order of StationChains.pair_pos)
        self.segment_ids = [s.segment_id for key in self.chains.roadway_keys
                            for s in network.roadway_by_key[key].segments]
        self._segment_index = {sid: i for i, sid in enumerate(self.segment_ids)}
        self._takes_evidence = {algo: "extra_evidence" in inspect.signature(d.update).parameters
                                for algo, d in self.detectors.items()}
        self._evidence: dict[str, float] = {}
        self.set_evidence(state.get("camera_evidence", {}))

    def set_evidence(self, camera_evidence: Mapping[str, float]) -> None:
        """Latest camera evidence per segment id (0..1; 1 = a stopped vehicle seen), replacing the last set.

        Segments this stage does not own are ignored; an empty mapping removes all evidence.
        """
        self._evidence = {sid: float(v) for sid, v in camera_evidence.items()
                          if sid in self._segment_index and float(v) > 0}

    def _chain_evidence(self) -> np.ndarray | None:
        if not self._evidence:
            return None
        per_segment = np.zeros(len(self.segment_ids))
        for sid, v in self._evidence.items():
            per_segment[self._segment_index[sid]] = v
        return self.chains.segment_values(per_segment)

    def suspected_segments(self, algorithm: str = "statistical") -> set[str]:
        """Owned segments where ``algorithm`` has a candidate building up persistence or an alarm
        (e.g. to point a camera at them)."""
        det = self.detectors.get(algorithm)
        if det is None:
            return set()
        p = self.chains.pair_pos
        flags = np.asarray(det.alarm, dtype=bool)[p]
        run = getattr(det, "run_length", None)
        if run is not None:
            flags = flags | (np.asarray(run)[p] > 0)
        return {self.segment_ids[i] for i in np.flatnonzero(flags)}

    def add(self, stations: FlowWindowBatch) -> None:
        """Buffer station windows (any mix of roadways and windows) until their window is complete."""
        if len(stations) == 0:
            return
        starts = stations.window_start_ms
        for start in np.unique(starts):
            part = stations if len(starts) and starts[0] == starts[-1] else _take(stations, starts == start)
            self._pending.setdefault((stations.window_ms, int(start)), []).append(part)
            self._watermark_ms = max(self._watermark_ms, int(start) + stations.window_ms)

    def poll(self, flush: bool = False) -> CorridorOutput:
        """Process every window that is complete (or overdue), oldest first."""
        out = CorridorOutput()
        for pkey in sorted(self._pending, key=lambda k: (k[1], k[0])):
            window_ms, start = pkey
            parts = self._pending[pkey]
            n = sum(len(p) for p in parts)
            overdue = start + window_ms + self.config.corridor_grace_ms <= self._watermark_ms
            if not (flush or overdue or n >= self.chains.n_stations):
                continue
            del self._pending[pkey]
            self._process(window_ms, start, _concat(parts), out)
        return out

    def _process(self, window_ms: int, start: int, stations: FlowWindowBatch, out: CorridorOutput) -> None:
        segments = segment_metrics(stations, self.network)
        out.segments.append(segments)
        if window_ms != self.config.incident_window_ms:
            return
        self.usual.update(segments)
        occ, speed, flow = self.chains.station_arrays(stations)
        at_ms = start + window_ms
        evidence = self._chain_evidence()
        if evidence is not None:
            out.evidence.extend((start, sid, v) for sid, v in sorted(self._evidence.items()))
        new_incidents: list[Incident] = []
        for algo, detector in self.detectors.items():
            extra = {"extra_evidence": evidence} if evidence is not None and self._takes_evidence[algo] else {}
            alarms = self.chains.segment_alarms(detector.update(start, occ, speed, flow, **extra))
            for key, sl in self.chains.roadway_segment_slices.items():
                tracker = self.trackers[(key, algo)]
                if tracker.n_open == 0 and not alarms.alarm[sl].any():
                    continue  # nothing open, nothing new: the tracker has nothing to decide
                new_incidents.extend(tracker.update(at_ms, Alarms(start, alarms.alarm[sl], alarms.confidence[sl],
                                                                  alarms.severity[sl])))
        out.incidents.extend(new_incidents)
        alerting = [i for i in new_incidents if i.algorithm == self.config.alert_algorithm]
        out.alerts.extend(self.alerts.update(segments, alerting, usual_travel_time_s=self.usual.usual_s))

    def close_all(self, at_ms: int) -> CorridorOutput:
        """End of stream: flush buffered windows and clear incidents still open."""
        out = self.poll(flush=True)
        closing: list[Incident] = []
        for tracker in self.trackers.values():
            closing.extend(tracker.close_all(at_ms))
        out.incidents.extend(closing)
        alerting = [i for i in closing if i.algorithm == self.config.alert_algorithm]
        out.alerts.extend(self.alerts.update(_empty_segments(), alerting))
        return out

    def open_incidents(self, algorithm: str | None = None) -> int:
        return sum(t.n_open for (_, algo), t in self.trackers.items() if algorithm in (None, algo))

    def snapshot(self) -> dict:
        return {
            "detectors": {k: d.snapshot() for k, d in self.detectors.items()},
            "trackers": {k: t.snapshot() for k, t in self.trackers.items()},
            "alerts": self.alerts.snapshot(),
            "usual": self.usual.snapshot(),
            "pending": dict(self._pending),
            "watermark_ms": self._watermark_ms,
            "camera_evidence": dict(self._evidence),
        }


def _take(b: FlowWindowBatch, mask: np.ndarray) -> FlowWindowBatch:
    extra = {}
    if len(b.travel_time_s) == len(b):
        extra["travel_time_s"] = b.travel_time_s[mask]
    if len(b.imputed) == len(b):
        extra["imputed"] = b.imputed[mask]
    return FlowWindowBatch(b.level, b.window_ms, *(getattr(b, c)[mask] for c in FlowWindowBatch.COLUMNS), **extra)


def _concat(parts: list[FlowWindowBatch]) -> FlowWindowBatch:
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    cols = [np.concatenate([getattr(p, c) for p in parts]) for c in FlowWindowBatch.COLUMNS]
    extra = {}
    if all(len(p.imputed) == len(p) for p in parts):
        extra["imputed"] = np.concatenate([p.imputed for p in parts])
    return FlowWindowBatch(first.level, first.window_ms, *cols, **extra)


def _empty_segments() -> FlowWindowBatch:
    e = np.empty(0)
    o = np.empty(0, dtype=object)
    i = np.empty(0, dtype=np.int64)
    return FlowWindowBatch("segment", 60_000, o, o, o, i, i, e, e, e, e, e, np.empty(0, dtype=np.int8), i)
