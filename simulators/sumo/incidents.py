"""Incidents in SUMO: a vehicle told to stop on a lane between two loops, with ground truth.

At the incident's start a vehicle a few hundred metres upstream on each blocked lane
(shoulder side first, SUMO lanes 0, 1, ...) gets ``setStop(edge, pos, lane, duration)``
and ``setLaneChangeMode(veh, 0)`` so it cannot swerve out of the lane; the traffic
behind it has to merge around it. ``isStopped`` gives the true start (the first
blocked lane stopped) and end (the last one moved off); a vehicle that cannot be
found within ``SEEK_LIMIT_S`` leaves its lane open and the truth reports fewer
lanes blocked. Stops are kept clear of loops: a car standing on a loop reads 0 %.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from simulators.incidents import IncidentSpec, IncidentTruth
from simulators.sumo.scenario import ACCEL_LANE_M, SumoScenario, locate

log = logging.getLogger(__name__)

MIN_LOOP_CLEARANCE_M = 50.0
MIN_RAMP_CLEARANCE_M = 100.0
MIN_EDGE_POS_M = 200.0  # the stopping vehicle is picked on the same edge, upstream of the stop
SEEK_DISTANCE_M = (150.0, 700.0)
SEEK_LIMIT_S = 600.0
DEFAULT_LANE_CHANGE_MODE = 0b011001010101  # SUMO's default (1621)


@dataclass
class _Staged:
    spec: IncidentSpec
    edge: str
    pos_m: float
    start_s: float
    duration_s: float
    lanes: list[int]  # SUMO lane indices still to block
    vehicles: dict[str, int] = field(default_factory=dict)  # vehicle -> lane
    stopped_at: dict[str, float] = field(default_factory=dict)
    released_at: dict[str, float] = field(default_factory=dict)
    given_up: bool = False

    @property
    def done(self) -> bool:
        seeking = bool(self.lanes) and not self.given_up
        return not seeking and len(self.released_at) == len(self.vehicles)


def incident_sites_km(scenario: SumoScenario) -> list[float]:
    """Km posts where an incident may be staged: midway between loops, on plain mainline edges."""
    cfg = scenario.config
    sites = []
    for a, b in zip(scenario.station_kms, scenario.station_kms[1:]):
        km = round((a + b) / 2, 3)
        try:
            _, pos, lanes = locate(list(scenario.mainline), km * 1000)
        except ValueError:
            continue
        if lanes == cfg.lanes and pos >= MIN_EDGE_POS_M and _ramp_gap_m(cfg, km) >= MIN_RAMP_CLEARANCE_M:
            sites.append(km)
    return sites


def _ramp_gap_m(cfg, km: float) -> float:
    nodes = [*cfg.on_ramps_km, *cfg.off_ramps_km, *(k + ACCEL_LANE_M / 1000 for k in cfg.on_ramps_km)]
    return min((abs(km - n) * 1000 for n in nodes), default=float("inf"))


def check_site(scenario: SumoScenario, spec: IncidentSpec) -> tuple[str, float]:
    """(edge, pos) for a spec, or ValueError saying why it cannot be staged there."""
    cfg = scenario.config
    if spec.roadway_key != cfg.roadway_key:
        raise ValueError(f"incident on {spec.roadway_key!r}: the SUMO corridor is {cfg.roadway_key!r}")
    x = spec.location_km * 1000
    gap = min(abs(x - km * 1000) for km in scenario.station_kms)
    if gap < MIN_LOOP_CLEARANCE_M:
        raise ValueError(f"incident at km {spec.location_km} is {gap:.0f} m from a loop; place it between loops")
    edge, pos, lanes = locate(list(scenario.mainline), x)
    if lanes != cfg.lanes or pos < MIN_EDGE_POS_M or _ramp_gap_m(cfg, spec.location_km) < MIN_RAMP_CLEARANCE_M:
        raise ValueError(f"incident at km {spec.location_km} is too close to a ramp (edge {edge}, {pos:.0f} m); "
                         f"try one of {incident_sites_km(scenario)}")
    if not 1 <= spec.lanes_blocked < cfg.lanes:
        raise ValueError(f"lanes_blocked must be 1..{cfg.lanes - 1}, got {spec.lanes_blocked}")
    return edge, pos


class IncidentStager:
    """Drives the staged incidents through libsumo step by step and keeps their ground truth."""

    def __init__(self, scenario: SumoScenario, specs: tuple[IncidentSpec, ...]) -> None:
        self.scenario = scenario
        self._staged = []
        for spec in specs:
            edge, pos = check_site(scenario, spec)
            self._staged.append(_Staged(spec, edge, pos, scenario.sumo_time_s(spec.start_ms),
                                        spec.duration_ms / 1000, list(range(spec.lanes_blocked))))

    def step(self, traci, now_s: float) -> None:
        """Call after every simulation step."""
        for s in self._staged:
            if now_s < s.start_s or s.done:
                continue
            if s.lanes and not s.given_up:
                self._seek(traci, s, now_s)
            self._watch(traci, s, now_s)

    def _seek(self, traci, s: _Staged, now_s: float) -> None:
        if now_s - s.start_s > SEEK_LIMIT_S:
            s.given_up = True
            log.warning("incident at km %s: no vehicle found for lanes %s; fewer lanes blocked",
                        s.spec.location_km, s.lanes)
            return
        exit_edge = self.scenario.exit_edge
        for lane in list(s.lanes):
            best, best_gap = None, np.inf
            for vid in traci.lane.getLastStepVehicleIDs(f"{s.edge}_{lane}"):
                dist = s.pos_m - traci.vehicle.getLanePosition(vid)
                v = traci.vehicle.getSpeed(vid)
                if not SEEK_DISTANCE_M[0] <= dist <= SEEK_DISTANCE_M[1] or v * v / 7.0 + 20 > dist:
                    continue
                if traci.vehicle.getRoute(vid)[-1] != exit_edge:
                    continue  # through traffic only: an exiting vehicle would have to change lanes later
                if abs(dist - 300.0) < best_gap:
                    best, best_gap = vid, abs(dist - 300.0)
            if best is None:
                continue
            try:
                traci.vehicle.setStop(best, s.edge, pos=s.pos_m, laneIndex=lane, duration=s.duration_s)
            except traci.TraCIException as exc:  # too close to brake after all: try another vehicle next step
                log.debug("setStop refused for %s: %s", best, exc)
                continue
            traci.vehicle.setLaneChangeMode(best, 0)
            s.vehicles[best] = lane
            s.lanes.remove(lane)

    def _watch(self, traci, s: _Staged, now_s: float) -> None:
        alive = None
        for vid in s.vehicles:
            if vid in s.released_at:
                continue
            if alive is None:
                alive = set(traci.vehicle.getIDList())
            stopped = vid in alive and traci.vehicle.isStopped(vid)
            if stopped and vid not in s.stopped_at:
                s.stopped_at[vid] = now_s
            elif not stopped and vid in s.stopped_at:
                s.released_at[vid] = now_s
                if vid in alive:
                    traci.vehicle.setLaneChangeMode(vid, DEFAULT_LANE_CHANGE_MODE)

    def truths(self, end_s: float, id_prefix: str = "SUMO") -> list[IncidentTruth]:
        """Incidents that really happened (a vehicle stopped), in spec order; open ones end at ``end_s``."""
        sc = self.scenario
        cfg = sc.config
        kms = list(sc.station_kms)
        out = []
        for i, s in enumerate(self._staged):
            if not s.stopped_at:
                continue
            start = min(s.stopped_at.values())
            ends = [s.released_at.get(v, end_s) for v in s.stopped_at]
            j = int(np.clip(np.searchsorted(kms, s.spec.location_km, side="right") - 1, 0, len(kms) - 2))
            seg = f"{cfg.corridor}-{cfg.direction}-{j:03d}>{cfg.corridor}-{cfg.direction}-{j + 1:03d}"
            out.append(IncidentTruth(f"{id_prefix}-{i + 1:03d}", cfg.corridor, cfg.direction, cfg.roadway_key,
                                     float(s.spec.location_km), seg, sc.utc_ms(start),
                                     sc.utc_ms(min(max(ends), end_s)), len(s.stopped_at)))
        return out
