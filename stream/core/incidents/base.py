"""What every incident detector shares: the per-segment alarm record, the detector
protocol, and the step from a station FlowWindowBatch to per-roadway arrays.

A detector is built for one roadway (one direction of one corridor). Its inputs
are arrays per *station* of that roadway in driving order (NaN where a station
had no data); its output is per *segment* (segment i = station i -> i+1).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol

import numpy as np

from models.network import Roadway
from models.records import FlowWindowBatch


@dataclass(frozen=True, slots=True)
class Alarms:
    """One decision per segment of a roadway for one window."""

    window_start_ms: int
    alarm: np.ndarray  # bool, per segment
    confidence: np.ndarray  # float64 0..1, per segment (0 where no evidence)
    severity: np.ndarray  # int8 1..3 where alarmed, 0 elsewhere

    @classmethod
    def quiet(cls, window_start_ms: int, n_segments: int) -> "Alarms":
        return cls(window_start_ms, np.zeros(n_segments, dtype=bool), np.zeros(n_segments),
                   np.zeros(n_segments, dtype=np.int8))

    def __len__(self) -> int:
        return len(self.alarm)


@dataclass(frozen=True, slots=True)
class StationArrays:
    """One window of a roadway: metrics per station in driving order, NaN where missing."""

    window_start_ms: int
    occupancy_pct: np.ndarray
    speed_kmh: np.ndarray
    flow_veh_h: np.ndarray


class IncidentDetector(Protocol):
    name: str

    def update(self, window_start_ms: int, occupancy_pct: np.ndarray, speed_kmh: np.ndarray,
               flow_veh_h: np.ndarray) -> Alarms: ...

    def update_batch(self, stations: FlowWindowBatch, roadway: Roadway) -> Alarms: ...

    def snapshot(self) -> dict[str, Any]: ...


def roadway_station_arrays(stations: FlowWindowBatch, roadway: Roadway) -> list[StationArrays]:
    """Station windows -> one StationArrays per window start (ascending) for ``roadway``.

    Rows of other roadways are ignored; a station without a row gets NaN. Speed is
    the space-mean speed, falling back to the time-mean speed where that is NaN.
    """
    index = {s.station_id: i for i, s in enumerate(roadway.stations)}
    n = len(roadway.stations)
    pos = np.fromiter((index.get(e, -1) for e in stations.entity_id), dtype=np.int64, count=len(stations))
    keep = pos >= 0
    starts = stations.window_start_ms[keep].astype(np.int64)
    pos = pos[keep]
    uniq, row = np.unique(starts, return_inverse=True)
    speed = np.where(np.isfinite(stations.space_mean_speed_kmh), stations.space_mean_speed_kmh,
                     stations.time_mean_speed_kmh)
    out = []
    grids = []
    for values in (stations.occupancy_pct, speed, stations.flow_veh_h):
        grid = np.full((len(uniq), n), np.nan)
        grid[row, pos] = np.asarray(values, dtype=np.float64)[keep]
        grids.append(grid)
    for w, start in enumerate(uniq.tolist()):
        out.append(StationArrays(int(start), grids[0][w], grids[1][w], grids[2][w]))
    return out


def run_batch(detector: Any, stations: FlowWindowBatch, roadway: Roadway, **extra: Any) -> Alarms:
    """Feed every window of ``stations`` to ``detector`` in time order; the last window's alarms.

    ``extra`` keyword arguments (e.g. ``extra_evidence``) go to every ``update`` call.
    A batch without rows of this roadway yields no alarms (quiet, window start -1).
    """
    alarms = Alarms.quiet(-1, max(len(roadway.stations) - 1, 0))
    for arrays in roadway_station_arrays(stations, roadway):
        alarms = detector.update(arrays.window_start_ms, arrays.occupancy_pct, arrays.speed_kmh, arrays.flow_veh_h,
                                 **extra)
    return alarms


def segment_values(roadway: Roadway, by_segment_id: Mapping[str, Any], default: float = 0.0) -> np.ndarray:
    """Per-segment array for ``roadway`` from a {segment_id: value} mapping (bool or 0..1, e.g. camera
    stopped-vehicle evidence); objects with a ``stopped_vehicle`` attribute count as that flag."""
    out = np.full(len(roadway.segments), float(default))
    for i, seg in enumerate(roadway.segments):
        if seg.segment_id in by_segment_id:
            v = by_segment_id[seg.segment_id]
            out[i] = float(getattr(v, "stopped_vehicle", v))
    return out


def check_station_arrays(n_stations: int, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Coerce per-station inputs to float64 and check their length."""
    out = tuple(np.asarray(a, dtype=np.float64) for a in arrays)
    for a in out:
        if a.shape != (n_stations,):
            raise ValueError(f"expected one value per station ({n_stations}), got shape {a.shape}")
    return out
