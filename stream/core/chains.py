"""Many roadways as one array, so incident detectors run once per window for all of them.

The stations of the owned roadways are laid end to end in network order with one
empty (NaN) position between consecutive roadways. A detector built for a single
chain of ``n_positions`` stations then sees every real segment as a pair of
neighbouring positions; the pairs that straddle a separator never decide
(a station without data holds its segments as they were), so no state leaks
between roadways. :meth:`segment_alarms` keeps the real pairs only, in network
segment order.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from models.network import Network, lookup_numbers
from models.records import FlowWindowBatch
from stream.core.incidents.base import Alarms
from stream.core.incidents.california import CaliforniaConfig, CaliforniaDetector
from stream.core.incidents.statistical import StatisticalConfig, StatisticalDetector


class StationChains:
    """Positions of owned stations and segments in the concatenated chain."""

    def __init__(self, network: Network, roadway_keys: list[str] | None = None) -> None:
        keys = set(roadway_keys) if roadway_keys is not None else None
        roadways = [r for r in network.roadways if keys is None or r.key in keys]
        if keys is not None and len(roadways) != len(keys):
            unknown = keys - {r.key for r in roadways}
            raise ValueError(f"unknown roadways {sorted(unknown)[:5]}")
        self.roadway_keys = [r.key for r in roadways]
        st_index = network.station_index
        station_pos: list[int] = []  # network station index -> chain position
        station_idx: list[int] = []
        pair_pos: list[int] = []  # chain position of each owned segment's upstream station
        self.roadway_segment_slices: dict[str, slice] = {}
        pos = 0
        n_seg = 0
        for r in roadways:
            idx = [st_index[s.station_id] for s in r.stations]
            station_idx.extend(idx)
            station_pos.extend(range(pos, pos + len(idx)))
            pair_pos.extend(range(pos, pos + len(idx) - 1))
            self.roadway_segment_slices[r.key] = slice(n_seg, n_seg + len(idx) - 1)
            n_seg += len(idx) - 1
            pos += len(idx) + 1  # one separator after each roadway
        self.n_positions = max(pos - 1, 0)
        self.n_stations = len(station_idx)
        self.pair_pos = np.asarray(pair_pos, dtype=np.int64)
        self._pos_of_station = np.full(len(network.stations), -1, dtype=np.int64)
        self._pos_of_station[np.asarray(station_idx, dtype=np.int64)] = np.asarray(station_pos, dtype=np.int64)
        self._network = network

    def station_arrays(self, stations: FlowWindowBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Occupancy, speed (space-mean, else time-mean) and flow per chain position; NaN where absent."""
        lookup = self._network.station_index
        st = lookup_numbers(lookup, stations.entity_id)
        pos = np.where(st >= 0, self._pos_of_station[np.maximum(st, 0)], -1)
        keep = pos >= 0
        pos = pos[keep]
        speed = np.where(np.isfinite(stations.space_mean_speed_kmh), stations.space_mean_speed_kmh,
                         stations.time_mean_speed_kmh)
        out = []
        for values in (stations.occupancy_pct, speed, stations.flow_veh_h):
            arr = np.full(self.n_positions, np.nan)
            arr[pos] = np.asarray(values, dtype=np.float64)[keep]
            out.append(arr)
        return out[0], out[1], out[2]

    def segment_alarms(self, chain: Alarms) -> Alarms:
        """Chain-pair alarms -> alarms of the owned segments, in network order."""
        p = self.pair_pos
        return Alarms(chain.window_start_ms, chain.alarm[p], chain.confidence[p], chain.severity[p])

    def segment_values(self, per_segment: np.ndarray) -> np.ndarray:
        """Per owned segment (network order) -> per chain pair (0 on separators), e.g. camera evidence."""
        out = np.zeros(max(self.n_positions - 1, 0))
        out[self.pair_pos] = per_segment
        return out


def build_chain_detector(name: str, n_positions: int, resume_state: dict[str, Any] | None = None,
                         **params: Any):
    """An incident detector over ``n_positions`` chained stations (see module doc)."""
    if name in ("california7", "california8"):
        return CaliforniaDetector(n_positions, CaliforniaConfig(variant=int(name[-1]), **params),
                                  resume_state=resume_state)
    if name == "statistical":
        return StatisticalDetector(n_positions, StatisticalConfig(**params), resume_state=resume_state)
    raise ValueError(f"unknown incident algorithm {name!r}; known: california7, california8, statistical")
