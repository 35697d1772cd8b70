"""Incidents: lane blockages that cut a cell's capacity for a while, with ground truth.

Blocked lanes (counted from the shoulder side) lose their capacity; the open
lanes lose a further rubbernecking share. The result is the classic signature:
a queue growing upstream (high occupancy, low speed) and starved flow
downstream. Detectors of the blocked lanes at the two stations around the
incident read little flow while it lasts.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.network import Network
from simulators.ctm import CellLayout

RUBBERNECKING = 0.15  # capacity lost on the open lanes next to an incident
BLOCKED_LANE_FLOW_SHARE = 0.1  # what a blocked lane still carries at the stations around the incident
MS_PER_MIN = 60_000


@dataclass(frozen=True, slots=True)
class IncidentSpec:
    """An incident to stage: where, when, how long, how many lanes blocked."""

    roadway_key: str
    location_km: float
    start_ms: int
    duration_ms: int
    lanes_blocked: int = 1


@dataclass(frozen=True, slots=True)
class IncidentTruth:
    """What really happened, for scoring incident detection."""

    incident_id: str
    corridor: str
    direction: str
    roadway_key: str
    location_km: float
    segment_id: str  # the segment containing location_km ("" on a roadway with one station)
    start_ms: int
    end_ms: int
    lanes_blocked: int


def random_incidents(network: Network, rng: np.random.Generator, n: int, start_ms: int,
                     end_ms: int) -> list[IncidentSpec]:
    """``n`` incidents on random roadways, inside random segments, at random times of the run."""
    roadways = [rw for rw in network.roadways if len(rw.stations) >= 2]
    if n <= 0 or not roadways or end_ms <= start_ms:
        return []
    specs = []
    for _ in range(n):
        rw = roadways[int(rng.integers(len(roadways)))]
        seg = rw.segments[int(rng.integers(len(rw.segments)))]
        loc = seg.start_km + rng.uniform(0.2, 0.8) * seg.length_km
        duration = int(rng.integers(15, 61)) * MS_PER_MIN
        span = end_ms - start_ms
        first = start_ms + span // 20
        latest = max(first, end_ms - duration)
        t0 = int(rng.integers(first, latest + 1)) // MS_PER_MIN * MS_PER_MIN
        lanes = rw.stations[0].lanes
        blocked = int(rng.integers(1, max(lanes - 1, 1) + 1))
        specs.append(IncidentSpec(rw.key, round(float(loc), 3), t0, duration, blocked))
    return specs


def resolve_incidents(network: Network, specs: list[IncidentSpec] | tuple[IncidentSpec, ...],
                      id_prefix: str = "SIM") -> list[IncidentTruth]:
    """Validate specs against the network and turn them into ground truth records."""
    out = []
    for i, spec in enumerate(specs):
        rw = network.roadway_by_key.get(spec.roadway_key)
        if rw is None:
            raise ValueError(f"incident {i}: unknown roadway {spec.roadway_key!r}")
        kms = [s.km for s in rw.stations]
        if not kms[0] <= spec.location_km <= kms[-1]:
            raise ValueError(f"incident {i}: km {spec.location_km} is outside {rw.key} [{kms[0]}, {kms[-1]}]")
        if spec.duration_ms <= 0 or spec.lanes_blocked < 1:
            raise ValueError(f"incident {i}: duration and lanes_blocked must be positive")
        seg_id = ""
        if rw.segments:
            j = int(np.clip(np.searchsorted(kms, spec.location_km, side="right") - 1, 0, len(rw.segments) - 1))
            seg_id = rw.segments[j].segment_id
        out.append(IncidentTruth(f"{id_prefix}-{i + 1:03d}", rw.corridor, rw.direction, rw.key,
                                 float(spec.location_km), seg_id, int(spec.start_ms),
                                 int(spec.start_ms + spec.duration_ms), int(spec.lanes_blocked)))
    return out


class IncidentSchedule:
    """Capacities and detector lane effects of the incidents active at a given time."""

    def __init__(self, network: Network, layout: CellLayout, truths: list[IncidentTruth],
                 rubbernecking: float = RUBBERNECKING) -> None:
        self._base_capacity = layout.capacity_veh_h
        self._truths = truths
        rw_index = {rw.key: r for r, rw in enumerate(network.roadways)}
        self._cells: list[int] = []
        self._factors: list[float] = []
        self._blocked_detectors: list[np.ndarray] = []
        for t in truths:
            r = rw_index[t.roadway_key]
            first = int(layout.first_cell[r])
            last = int(layout.last_cell[r])
            km0 = float(layout.start_km[first])
            cell = int(np.clip(first + np.floor((t.location_km - km0) / layout.length_km[first] + 1e-9), first, last))
            lanes = int(layout.lanes[cell])
            open_lanes = max(lanes - t.lanes_blocked, 0)
            self._cells.append(cell)
            self._factors.append(open_lanes / lanes * (1.0 - rubbernecking))
            self._blocked_detectors.append(self._detectors_of_blocked_lanes(network, t))
        self._active_key: tuple[int, ...] | None = None
        self._valid = (0, -1)  # [from, until) in which the active set is known not to change
        self._capacity = self._base_capacity
        self._lane_factor: np.ndarray | None = None
        self._n_detectors = network.n_detectors

    @staticmethod
    def _detectors_of_blocked_lanes(network: Network, t: IncidentTruth) -> np.ndarray:
        if not t.segment_id:
            return np.empty(0, dtype=np.int64)
        seg = network.segment_by_id[t.segment_id]
        ids = []
        for sid in (seg.upstream_station, seg.downstream_station):
            st = network.station_by_id[sid]
            ids += list(st.detector_ids[max(st.lanes - t.lanes_blocked, 0):])
        return network.detector_numbers(ids)

    @property
    def truths(self) -> list[IncidentTruth]:
        return list(self._truths)

    def _update(self, t_ms: int) -> None:
        if self._valid[0] <= t_ms < self._valid[1]:
            return  # no incident starts or ends in between: same active set
        edges = np.array([e for t in self._truths for e in (t.start_ms, t.end_ms)], dtype=np.int64)
        self._valid = (int(edges[edges <= t_ms].max(initial=-2**62)), int(edges[edges > t_ms].min(initial=2**62)))
        key = tuple(i for i, t in enumerate(self._truths) if t.start_ms <= t_ms < t.end_ms)
        if key == self._active_key:
            return
        self._active_key = key
        if not key:
            self._capacity = self._base_capacity
            self._lane_factor = None
            return
        cap = self._base_capacity.copy()
        lane = np.ones(self._n_detectors)
        for i in key:
            cap[self._cells[i]] *= self._factors[i]
            lane[self._blocked_detectors[i]] = BLOCKED_LANE_FLOW_SHARE
        self._capacity = cap
        self._lane_factor = lane

    def capacity_veh_h(self, t_ms: int) -> np.ndarray:
        """Cell capacities (veh/h over lanes) at ``t_ms``; the base array when nothing is active."""
        self._update(t_ms)
        return self._capacity

    def lane_flow_factor(self, t_ms: int) -> np.ndarray | None:
        """Per-detector weight on its lane's share of flow (None when no incident is active)."""
        self._update(t_ms)
        return self._lane_factor
