"""Loop-detector readings synthesised from the CTM cells the detectors sit in.

Every lane of every station has a detector. Per interval it reports a vehicle
count (binomial over 1.2 s headway slots around the cell's flow times the
lane's share: Poisson-like at low flow, regular near capacity), an occupancy
(each counted vehicle covers the loop for g / v seconds; a stopped queue keeps
it covered even with no count) and a time-mean speed (the cell's q / k with a
lane offset and noise, NaN when nothing passed). Lane shares shift with flow:
at low flow the shoulder lane (slow vehicles, trucks) carries more, near
capacity the fast lane does.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.network import Network
from models.records import ReadingBatch
from simulators.ctm import CellLayout
from simulators.fundamental import CAPACITY_VEH_H_LANE, EFFECTIVE_LENGTH_M, JAM_DENSITY_VEH_KM_LANE

LANE_SPEED_SPREAD = 0.07  # fast lane this much above the cell speed, shoulder lane this much below
LANE_LENGTH_SPREAD = 0.06  # shoulder lane vehicles (trucks) this much longer, fast lane shorter
JAM_SPEED_KMH = 15.0  # below this a lane with no count is a standing queue over the loop
MIN_HEADWAY_S = 1.2  # at most one vehicle per lane per this many seconds


@dataclass(frozen=True)
class DetectorLayout:
    """Where each detector (network order) reads the CTM, and its lane's character."""

    cell: np.ndarray  # int64 CTM cell index
    station: np.ndarray  # int64 station index
    lanes: np.ndarray  # int64 lanes at the station
    lane_pos: np.ndarray  # float64 in [-1, 1]: +1 fast (lane 1), -1 shoulder (last lane), 0 single lane
    free_flow_kmh: np.ndarray
    effective_length_m: np.ndarray
    n_stations: int

    @property
    def n_detectors(self) -> int:
        return len(self.cell)


def build_detector_layout(network: Network, layout: CellLayout) -> DetectorLayout:
    """Map every detector to the cell of its station and describe its lane."""
    station = network.detector_station_idx
    lanes = np.array([s.lanes for s in network.stations], dtype=np.int64)[station]
    lane = network.detector_lane
    pos = np.where(lanes > 1, 1.0 - 2.0 * (lane - 1) / np.maximum(lanes - 1, 1), 0.0)
    cell = layout.station_cell[station]
    return DetectorLayout(cell=cell, station=station, lanes=lanes, lane_pos=pos,
                          free_flow_kmh=layout.free_flow_kmh[cell],
                          effective_length_m=EFFECTIVE_LENGTH_M * (1.0 - LANE_LENGTH_SPREAD * pos),
                          n_stations=len(network.stations))


def synthesize_readings(flow_veh_h: np.ndarray, density_veh_km: np.ndarray, det: DetectorLayout,
                        interval_s: float, rng: np.random.Generator | None,
                        lane_flow_factor: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts, occupancy % and speeds (km/h) for every detector from its cell's mean flow and density.

    ``flow_veh_h`` and ``density_veh_km`` are per detector, totals over the
    station's lanes, averaged over the interval. ``rng=None`` gives the noise-free
    expectation (counts rounded). ``lane_flow_factor`` down-weights lanes
    (blocked by an incident).
    """
    q = np.maximum(flow_veh_h, 0.0)
    k = np.maximum(density_veh_km, 0.0)
    n = det.lanes
    vf = det.free_flow_kmh
    cell_speed = np.where(k > 1e-6, np.minimum(q / np.maximum(k, 1e-6), vf), vf)
    utilisation = np.minimum(q / (n * CAPACITY_VEH_H_LANE), 1.0)
    weight = 1.0 + (-0.2 + 0.5 * utilisation) * det.lane_pos
    if lane_flow_factor is None:
        share = weight / n
    else:
        weight = weight * lane_flow_factor
        share = weight / np.bincount(det.station, weight, minlength=det.n_stations)[det.station]
    expected = q * share * (interval_s / 3600.0)
    lane_speed = cell_speed * (1.0 + LANE_SPEED_SPREAD * det.lane_pos)
    g = det.effective_length_m
    if rng is None:
        count = np.rint(expected).astype(np.int64)
        vehicles = expected
        speed = lane_speed.copy()
        length = g
    else:
        # at most one vehicle per headway slot: Poisson-like at low flow, more regular near capacity
        # (a sum of Bernoulli slots: exact binomial, and much faster than Generator.binomial with array p)
        slots = int(interval_s // MIN_HEADWAY_S)
        p = np.minimum(expected / slots, 1.0).astype(np.float32)
        count = (rng.random((slots, len(p)), dtype=np.float32) < p).sum(axis=0, dtype=np.int64)
        vehicles = count
        spread = lane_speed * (0.03 + 0.1 / np.sqrt(np.maximum(count, 1)))
        speed = np.clip(lane_speed + spread * rng.standard_normal(len(q)), 1.0, 140.0)
        length = g * (1.0 + 0.05 * rng.standard_normal(len(q)))
    # each vehicle covers the loop for g / v seconds
    occ = vehicles * length / (speed / 3.6) / interval_s * 100.0
    jammed = cell_speed < JAM_SPEED_KMH
    standing = np.minimum(k * share, JAM_DENSITY_VEH_KM_LANE) * g / 10.0
    occ = np.where(count > 0, occ, np.where(jammed, standing, 0.0))
    occ = np.clip(occ, 0.0, 100.0)
    speed[count == 0] = np.nan
    return count, occ, speed


def network_batch(network: Network, start_ms: int, interval_ms: int, count: np.ndarray, occ: np.ndarray,
                  speed: np.ndarray, keep: np.ndarray | None = None) -> ReadingBatch:
    """One interval's readings of every detector (network order), less the rows ``keep`` leaves out
    (a fault injector's dropouts); shares ``network.detector_ids`` when nothing is left out."""
    n = network.n_detectors
    batch = ReadingBatch(network.detector_ids, np.full(n, start_ms, dtype=np.int64),
                         np.full(n, interval_ms, dtype=np.int64), count, occ, speed)
    return batch if keep is None else batch.take(keep)
