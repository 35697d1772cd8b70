"""Typed records that travel through roadpulse.

Readings and flow windows are *columnar* batches (numpy arrays of equal length):
the hot path decodes and aggregates arrays, never one Python object per number.
Incidents, alerts and dead letters are rare, so they are plain frozen dataclasses.

Times are integer milliseconds since the Unix epoch, UTC, everywhere.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

LEVELS = ("lane", "station", "segment")
INCIDENT_STATUSES = ("open", "updated", "cleared")
ALERT_KINDS = ("speed_band_drop", "incident_open", "incident_clear")


def _check_lengths(obj: Any, names: tuple[str, ...]) -> None:
    n = len(getattr(obj, names[0]))
    for name in names[1:]:
        if len(getattr(obj, name)) != n:
            raise ValueError(f"{type(obj).__name__}.{name} has {len(getattr(obj, name))} rows, expected {n}")


@dataclass(frozen=True, slots=True)
class ReadingBatch:
    """Loop-detector readings, one row per detector per interval.

    One message on the bus carries one batch: one station's lanes for one
    interval, or a roadside controller's batch of several stations.
    ``speed_kmh`` is the interval's time-mean spot speed, NaN when no vehicle passed.
    """

    detector_id: np.ndarray  # str (object) array
    interval_start_ms: np.ndarray  # int64
    interval_ms: np.ndarray  # int64
    vehicle_count: np.ndarray  # int64
    occupancy_pct: np.ndarray  # float64, 0..100
    speed_kmh: np.ndarray  # float64, NaN = no vehicles

    COLUMNS = ("detector_id", "interval_start_ms", "interval_ms", "vehicle_count", "occupancy_pct", "speed_kmh")

    def __post_init__(self) -> None:
        _check_lengths(self, self.COLUMNS)

    def __len__(self) -> int:
        return len(self.detector_id)

    @classmethod
    def from_columns(cls, **cols: Any) -> "ReadingBatch":
        """Build a batch from array-likes, coercing each column to its dtype."""
        return cls(
            detector_id=np.asarray(cols["detector_id"], dtype=object),
            interval_start_ms=np.asarray(cols["interval_start_ms"], dtype=np.int64),
            interval_ms=np.asarray(cols["interval_ms"], dtype=np.int64),
            vehicle_count=np.asarray(cols["vehicle_count"], dtype=np.int64),
            occupancy_pct=np.asarray(cols["occupancy_pct"], dtype=np.float64),
            speed_kmh=np.asarray(cols["speed_kmh"], dtype=np.float64),
        )

    def take(self, index: np.ndarray) -> "ReadingBatch":
        """Rows selected by a boolean mask or an integer index."""
        return ReadingBatch(*(getattr(self, c)[index] for c in self.COLUMNS))

    def row(self, i: int) -> dict[str, Any]:
        return {c: getattr(self, c)[i].item() if hasattr(getattr(self, c)[i], "item") else getattr(self, c)[i]
                for c in self.COLUMNS}

    @classmethod
    def concat(cls, batches: list["ReadingBatch"]) -> "ReadingBatch":
        if not batches:
            return cls.empty()
        return cls(*(np.concatenate([getattr(b, c) for b in batches]) for c in cls.COLUMNS))

    @classmethod
    def empty(cls) -> "ReadingBatch":
        return cls.from_columns(detector_id=[], interval_start_ms=[], interval_ms=[], vehicle_count=[],
                                occupancy_pct=[], speed_kmh=[])


@dataclass(frozen=True, slots=True)
class FlowWindowBatch:
    """Traffic metrics for closed tumbling windows, at one level of aggregation.

    ``level`` is "lane" (one detector), "station" (all lanes of a station) or
    "segment" (the road between two consecutive stations). ``entity_id`` is the
    detector, station or segment id; ``station_id``/``corridor``/``direction``
    locate it. Speeds are NaN when no vehicle passed in the window.
    """

    level: str
    window_ms: int
    entity_id: np.ndarray  # str (object)
    corridor: np.ndarray  # str (object)
    direction: np.ndarray  # str (object)
    window_start_ms: np.ndarray  # int64
    vehicle_count: np.ndarray  # int64, vehicles in the window (summed over lanes above lane level)
    flow_veh_h: np.ndarray  # float64
    occupancy_pct: np.ndarray  # float64
    time_mean_speed_kmh: np.ndarray  # float64
    space_mean_speed_kmh: np.ndarray  # float64 (harmonic)
    density_veh_km: np.ndarray  # float64
    speed_band: np.ndarray  # int8, LTA band 1..8, 0 = unknown
    n_readings: np.ndarray  # int64, readings that went into the window
    travel_time_s: np.ndarray = field(default_factory=lambda: np.empty(0))  # segment level only
    imputed: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=bool))  # True when filled from neighbours

    COLUMNS = ("entity_id", "corridor", "direction", "window_start_ms", "vehicle_count", "flow_veh_h",
               "occupancy_pct", "time_mean_speed_kmh", "space_mean_speed_kmh", "density_veh_km",
               "speed_band", "n_readings")

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {self.level!r}")
        _check_lengths(self, self.COLUMNS)

    def __len__(self) -> int:
        return len(self.entity_id)

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per row (for sinks and tests; not for the hot path)."""
        cols = {c: getattr(self, c).tolist() for c in self.COLUMNS}
        extra = {}
        if len(self.travel_time_s) == len(self):
            extra["travel_time_s"] = self.travel_time_s.tolist()
        if len(self.imputed) == len(self):
            extra["imputed"] = self.imputed.tolist()
        cols.update(extra)
        keys = list(cols)
        return [dict(zip(keys, vals), level=self.level, window_ms=self.window_ms)
                for vals in zip(*(cols[k] for k in keys))]


@dataclass(frozen=True, slots=True)
class Incident:
    """One lifecycle event of an incident: status is open, updated or cleared."""

    incident_id: str
    corridor: str
    direction: str
    segment_id: str
    location_km: float
    start_ms: int
    event_ms: int
    status: str
    severity: int  # 1 minor .. 3 severe
    algorithm: str
    confidence: float  # 0..1
    cleared_ms: int | None = None

    def __post_init__(self) -> None:
        if self.status not in INCIDENT_STATUSES:
            raise ValueError(f"status must be one of {INCIDENT_STATUSES}, got {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Alert:
    """A message to one commuter subscription."""

    alert_id: str
    subscription_id: str
    kind: str
    segment_id: str
    corridor: str
    direction: str
    at_ms: int
    message: str
    speed_band_from: int | None = None
    speed_band_to: int | None = None
    incident_id: str | None = None
    travel_time_now_s: float | None = None
    travel_time_usual_s: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ALERT_KINDS:
            raise ValueError(f"kind must be one of {ALERT_KINDS}, got {self.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that could not be processed, kept with its reason and original bytes."""

    reason: str  # short machine-readable code, e.g. "occupancy_out_of_range"
    detail: str  # human-readable explanation
    source: str  # topic or file it came from
    key: str | None
    payload: bytes  # the original bytes (whole message, or the offending row re-encoded as JSON)
    at_ms: int
    row: int | None = None  # row index within the message, when one row of a batch was bad

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
