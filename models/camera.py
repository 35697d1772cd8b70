"""Camera records: calibration, camera spec, frame metadata and per-interval observations.

Road coordinates are metres on the ground plane of one carriageway: ``x_m`` runs
along the direction of travel (downstream positive), ``y_m`` across it from the
left edge of lane 1 (lane k spans ``[(k-1) * lane_width_m, k * lane_width_m)``).
A calibration is the homography from road metres to pixels of the full-size
frame; vision working on a reduced frame scales it with :meth:`scaled`.

Times are integer milliseconds since the Unix epoch, UTC.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class CameraCalibration:
    """Ground-plane homography road metres -> pixels, plus the watched road's layout.

    ``homography`` is 9 floats, row-major, mapping ``(x_m, y_m, 1)`` to homogeneous
    pixels of a ``width_px`` x ``height_px`` frame. ``view_start_m``/``view_end_m``
    bound the stretch of road the processor watches; ``count_line_m`` is where
    vehicles are counted (one virtual line across all lanes).
    """

    homography: tuple[float, ...]
    width_px: int
    height_px: int
    n_lanes: int
    lane_width_m: float = 3.6
    view_start_m: float = 10.0
    view_end_m: float = 80.0
    count_line_m: float = 40.0

    def __post_init__(self) -> None:
        if len(self.homography) != 9:
            raise ValueError("homography must have 9 values (3x3 row-major)")
        if not self.view_start_m < self.count_line_m < self.view_end_m:
            raise ValueError("count_line_m must lie inside (view_start_m, view_end_m)")

    @property
    def matrix(self) -> np.ndarray:
        """The 3x3 homography metres -> pixels."""
        return np.asarray(self.homography, dtype=np.float64).reshape(3, 3)

    @property
    def road_width_m(self) -> float:
        return self.n_lanes * self.lane_width_m

    def to_px(self, points_m: np.ndarray) -> np.ndarray:
        """Pixels (n,2) of road points (n,2) in metres."""
        return _apply(self.matrix, points_m)

    def to_m(self, points_px: np.ndarray) -> np.ndarray:
        """Road metres (n,2) of ground pixels (n,2)."""
        return _apply(np.linalg.inv(self.matrix), points_px)

    def lane_of(self, y_m: np.ndarray) -> np.ndarray:
        """1-based lane of lateral positions; 0 outside the carriageway."""
        y = np.asarray(y_m, dtype=np.float64)
        lane = np.floor(y / self.lane_width_m).astype(np.int64) + 1
        return np.where((y >= 0) & (y < self.road_width_m), lane, 0)

    def scaled(self, factor: float) -> "CameraCalibration":
        """The same calibration for a frame resized by ``factor`` (0.5 = half size)."""
        s = np.diag([factor, factor, 1.0]) @ self.matrix
        return CameraCalibration(tuple(float(v) for v in s.ravel()), int(round(self.width_px * factor)),
                                 int(round(self.height_px * factor)), self.n_lanes, self.lane_width_m,
                                 self.view_start_m, self.view_end_m, self.count_line_m)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["homography"] = list(self.homography)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CameraCalibration":
        d = dict(d)
        d["homography"] = tuple(float(v) for v in d["homography"])
        return cls(**d)

    @classmethod
    def from_points(cls, road_m: np.ndarray, image_px: np.ndarray, width_px: int, height_px: int,
                    n_lanes: int, **kw: Any) -> "CameraCalibration":
        """Calibrate from 4+ ground points known both in road metres and in pixels (e.g. lane-line corners)."""
        h, _ = _find_homography(np.asarray(road_m, np.float64), np.asarray(image_px, np.float64))
        return cls(tuple(float(v) for v in (h / h[2, 2]).ravel()), width_px, height_px, n_lanes, **kw)


def _find_homography(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, None]:
    """Direct linear transform (no OpenCV: models/ imports numpy only)."""
    rows = []
    for (x, y), (u, v) in zip(src, dst, strict=False):
        rows.append([-x, -y, -1, 0, 0, 0, u * x, u * y, u])
        rows.append([0, 0, 0, -x, -y, -1, v * x, v * y, v])
    _, _, vt = np.linalg.svd(np.asarray(rows))
    return vt[-1].reshape(3, 3), None


def _apply(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    q = np.c_[p, np.ones(len(p))] @ h.T
    return q[:, :2] / q[:, 2:3]


@dataclass(frozen=True, slots=True)
class CameraSpec:
    """One roadside camera: where it is, what it watches, how it films."""

    camera_id: str
    station_id: str  # the station (loop-detector site) it sits next to
    segment_id: str  # the segment it watches ("UP>DOWN"), for incident evidence
    calibration: CameraCalibration
    fps: float = 10.0

    @property
    def width_px(self) -> int:
        return self.calibration.width_px

    @property
    def height_px(self) -> int:
        return self.calibration.height_px

    def to_dict(self) -> dict[str, Any]:
        return {"camera_id": self.camera_id, "station_id": self.station_id, "segment_id": self.segment_id,
                "fps": self.fps, "calibration": self.calibration.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CameraSpec":
        return cls(str(d["camera_id"]), str(d["station_id"]), str(d["segment_id"]),
                   CameraCalibration.from_dict(d["calibration"]), float(d.get("fps", 10.0)))


@dataclass(frozen=True, slots=True)
class FrameMeta:
    """What travels with one frame's JPEG bytes (as bus headers, see ingest/camera.py)."""

    camera_id: str
    time_ms: int
    frame_index: int
    width_px: int
    height_px: int
    encoding: str = "jpeg"


@dataclass(frozen=True, slots=True)
class CameraObservation:
    """What one camera saw in one interval: the camera's counterpart of a loop reading.

    ``count_per_lane`` holds vehicles that crossed the count line, lane 1 first.
    ``mean_speed_kmh`` is the time-mean speed of those vehicles (NaN when none).
    ``queue_length_m`` is the longest run of slow (< 10 km/h) vehicles in one lane
    at the end of the interval; ``occupancy_pct`` is the mean share of the watched
    road area covered by vehicles in the image. ``stopped_vehicle`` is True when a
    vehicle has stood still inside the road for the processor's threshold while
    others moved, since ``stopped_since_ms`` (the time it stopped).
    """

    camera_id: str
    station_id: str
    segment_id: str
    interval_start_ms: int
    interval_ms: int
    count_per_lane: tuple[int, ...]
    mean_speed_kmh: float
    queue_length_m: float
    occupancy_pct: float
    stopped_vehicle: bool = False
    stopped_since_ms: int | None = None
    frames: int = 0  # frames that went into the interval (0 = camera silent)
    lane_speed_kmh: tuple[float, ...] = field(default=())  # per-lane time-mean speed, NaN when none

    @property
    def vehicle_count(self) -> int:
        return int(sum(self.count_per_lane))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CameraObservation":
        d = dict(d)
        d["count_per_lane"] = tuple(int(v) for v in d["count_per_lane"])
        d["lane_speed_kmh"] = tuple(float(v) for v in d.get("lane_speed_kmh", ()))
        return cls(**d)
