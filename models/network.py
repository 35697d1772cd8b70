"""The road network: corridors (expressways), directions, stations, lanes, segments.

A network loads from a JSON file (format in docs/network-format.md) so a city can
describe its own roads. Stations are listed in driving order; ``km`` is the km
post along the direction of travel, increasing downstream. A segment is the
road from one station to the next one downstream.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from itertools import repeat
from pathlib import Path
from typing import Any, Iterable

import numpy as np


class NetworkError(ValueError):
    """A network file that cannot describe a road network."""


@dataclass(frozen=True, slots=True)
class Ramp:
    km: float
    kind: str  # "on" or "off"
    share: float = 0.1  # on: share of mainline demand entering here; off: share of flow leaving


@dataclass(frozen=True, slots=True)
class Station:
    station_id: str
    corridor: str
    direction: str
    km: float
    lanes: int
    detector_ids: tuple[str, ...]  # one per lane, lane 1 = leftmost (fast) lane
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Segment:
    segment_id: str
    corridor: str
    direction: str
    upstream_station: str
    downstream_station: str
    start_km: float
    end_km: float

    @property
    def length_km(self) -> float:
        return self.end_km - self.start_km


@dataclass(frozen=True)
class Roadway:
    """One direction of one corridor: an ordered chain of stations."""

    corridor: str
    direction: str
    name: str
    stations: tuple[Station, ...]
    ramps: tuple[Ramp, ...] = ()
    speed_limit_kmh: float = 90.0

    @property
    def key(self) -> str:
        return f"{self.corridor}-{self.direction}"

    @property
    def length_km(self) -> float:
        return self.stations[-1].km - self.stations[0].km if self.stations else 0.0

    @cached_property
    def segments(self) -> tuple[Segment, ...]:
        return tuple(
            Segment(f"{up.station_id}>{down.station_id}", self.corridor, self.direction,
                    up.station_id, down.station_id, up.km, down.km)
            for up, down in zip(self.stations, self.stations[1:])
        )


@dataclass(frozen=True)
class Network:
    name: str
    roadways: tuple[Roadway, ...]
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    # ---- lookups (built once, cached) ----------------------------------
    @cached_property
    def stations(self) -> tuple[Station, ...]:
        return tuple(s for r in self.roadways for s in r.stations)

    @cached_property
    def segments(self) -> tuple[Segment, ...]:
        return tuple(seg for r in self.roadways for seg in r.segments)

    @cached_property
    def station_by_id(self) -> dict[str, Station]:
        return {s.station_id: s for s in self.stations}

    @cached_property
    def segment_by_id(self) -> dict[str, Segment]:
        return {s.segment_id: s for s in self.segments}

    @cached_property
    def roadway_by_key(self) -> dict[str, Roadway]:
        return {r.key: r for r in self.roadways}

    @cached_property
    def detector_ids(self) -> np.ndarray:
        """All detector ids in network order (roadway, station, lane); the index is the detector's number."""
        return np.array([d for s in self.stations for d in s.detector_ids], dtype=object)

    @cached_property
    def detector_index(self) -> dict[str, int]:
        return {d: i for i, d in enumerate(self.detector_ids)}

    @cached_property
    def detector_station_idx(self) -> np.ndarray:
        """For each detector number, the index of its station in ``stations``."""
        return np.array([i for i, s in enumerate(self.stations) for _ in s.detector_ids], dtype=np.int64)

    @cached_property
    def detector_lane(self) -> np.ndarray:
        """For each detector number, its lane (1-based)."""
        return np.array([lane + 1 for s in self.stations for lane in range(len(s.detector_ids))], dtype=np.int64)

    @cached_property
    def station_index(self) -> dict[str, int]:
        return {s.station_id: i for i, s in enumerate(self.stations)}

    @property
    def n_detectors(self) -> int:
        return len(self.detector_ids)

    def detector_numbers(self, ids: Iterable[str]) -> np.ndarray:
        """Detector numbers for ids; -1 for an id the network does not know."""
        if ids is self.detector_ids:  # a whole-network batch that shares the network's id array
            return np.arange(len(ids), dtype=np.int64)
        index = self.detector_index
        return lookup_numbers(index, ids)

    # ---- file format ----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "format": "roadpulse-network/1",
            "meta": self.meta,
            "roadways": [
                {
                    "corridor": r.corridor,
                    "direction": r.direction,
                    "name": r.name,
                    "speed_limit_kmh": r.speed_limit_kmh,
                    "ramps": [{"km": p.km, "kind": p.kind, "share": p.share} for p in r.ramps],
                    "stations": [
                        {"id": s.station_id, "km": s.km, "lanes": s.lanes, "lat": s.lat, "lon": s.lon,
                         "detector_ids": list(s.detector_ids)}
                        for s in r.stations
                    ],
                }
                for r in self.roadways
            ],
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Network":
        try:
            roadways = tuple(_roadway_from_dict(r) for r in data["roadways"])
        except KeyError as exc:
            raise NetworkError(f"network file is missing the field {exc}") from exc
        net = cls(name=str(data.get("name", "network")), roadways=roadways, meta=dict(data.get("meta", {})))
        _validate(net)
        return net

    @classmethod
    def load(cls, path: str | Path) -> "Network":
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise NetworkError(f"{path}: not valid JSON ({exc})") from exc
        return cls.from_dict(data)


def lookup_numbers(index: dict[str, int], ids: Iterable[str]) -> np.ndarray:
    """Numbers of ``ids`` in ``index`` (-1 when absent), as int64; C-level map, no Python loop body."""
    return np.fromiter(map(index.get, ids, repeat(-1)), dtype=np.int64)


def _roadway_from_dict(r: dict[str, Any]) -> Roadway:
    corridor, direction = str(r["corridor"]), str(r["direction"])
    stations = []
    for s in r["stations"]:
        lanes = int(s["lanes"])
        sid = str(s["id"])
        dets = tuple(str(d) for d in s.get("detector_ids") or [f"{sid}-L{lane + 1}" for lane in range(lanes)])
        if len(dets) != lanes:
            raise NetworkError(f"station {sid}: {lanes} lanes but {len(dets)} detector ids")
        stations.append(Station(sid, corridor, direction, float(s["km"]), lanes, dets,
                                float(s.get("lat", 0.0)), float(s.get("lon", 0.0))))
    ramps = tuple(Ramp(float(p["km"]), str(p["kind"]), float(p.get("share", 0.1))) for p in r.get("ramps", []))
    return Roadway(corridor, direction, str(r.get("name", corridor)), tuple(stations), ramps,
                   float(r.get("speed_limit_kmh", 90.0)))


def _validate(net: Network) -> None:
    seen_st: set[str] = set()
    seen_det: set[str] = set()
    for r in net.roadways:
        if len(r.stations) < 1:
            raise NetworkError(f"roadway {r.key} has no stations")
        kms = [s.km for s in r.stations]
        if any(b <= a for a, b in zip(kms, kms[1:])):
            raise NetworkError(f"roadway {r.key}: station km posts must increase downstream, got {kms[:10]}...")
        for s in r.stations:
            if s.lanes < 1:
                raise NetworkError(f"station {s.station_id}: lanes must be >= 1")
            if s.station_id in seen_st:
                raise NetworkError(f"duplicate station id {s.station_id}")
            seen_st.add(s.station_id)
            for d in s.detector_ids:
                if d in seen_det:
                    raise NetworkError(f"duplicate detector id {d}")
                seen_det.add(d)
        for p in r.ramps:
            if p.kind not in ("on", "off"):
                raise NetworkError(f"roadway {r.key}: ramp kind must be 'on' or 'off', got {p.kind!r}")
