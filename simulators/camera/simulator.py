"""A simulated roadside camera: traffic state in, JPEG-able frames and ground truth out."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from models.camera import CameraSpec
from simulators.camera.geometry import CameraPose, make_calibration, oblique_pose, top_down_pose
from simulators.camera.render import Conditions, Renderer, encode_jpeg
from simulators.camera.traffic import KIND_NAMES, NO_INCIDENT, IncidentSpec, TrafficModel


@dataclass(frozen=True)
class SimulatedCamera:
    """A camera spec (what vision is told) plus the pose and conditions only the simulator knows."""

    spec: CameraSpec
    pose: CameraPose
    conditions: Conditions = field(default_factory=Conditions)


def simulated_camera(camera_id: str, station_id: str = "", segment_id: str = "", n_lanes: int = 3,
                     view: str = "oblique", width_px: int = 640, height_px: int = 360, fps: float = 10.0,
                     conditions: Conditions | None = None, lane_width_m: float = 3.6) -> SimulatedCamera:
    """A camera with a standard pose: ``view`` is "oblique" (pole, looking downstream) or "top" (straight down)."""
    if view == "oblique":
        pose = oblique_pose(n_lanes, lane_width_m)
    elif view == "top":
        pose = top_down_pose(n_lanes, lane_width_m)
    else:
        raise ValueError(f"view must be 'oblique' or 'top', got {view!r}")
    cal = make_calibration(pose, width_px, height_px, n_lanes, lane_width_m)
    return SimulatedCamera(CameraSpec(camera_id, station_id, segment_id, cal, fps), pose, conditions or Conditions())


@dataclass(frozen=True)
class FrameTruth:
    """Ground truth of one frame: visible vehicles, and vehicles that crossed the count line since the last frame."""

    vehicle_id: np.ndarray  # int64
    box_xywh: np.ndarray  # (n,4) float pixels, clipped to the frame
    lane: np.ndarray  # int64 1-based lane by position, 0 off the road
    speed_kmh: np.ndarray
    x_m: np.ndarray  # front bumper, road metres
    kind: np.ndarray  # str (object)
    stopped: np.ndarray  # bool: the incident vehicle, at rest
    crossed_id: np.ndarray  # int64 ids that crossed the count line in this step
    crossed_lane: np.ndarray  # int64
    crossed_speed_kmh: np.ndarray

    def in_view(self, calibration_start_m: float, calibration_end_m: float) -> np.ndarray:
        """Mask of vehicles whose body overlaps the watched stretch of road."""
        return (self.x_m > calibration_start_m) & (self.x_m - 4.0 < calibration_end_m)


@dataclass(frozen=True)
class SimFrame:
    camera_id: str
    time_ms: int
    frame_index: int
    image: np.ndarray  # BGR uint8
    truth: FrameTruth
    stopped_since_ms: int | None  # when the incident vehicle came to rest, if it has

    def jpeg(self, quality: int = 75) -> bytes:
        return encode_jpeg(self.image, quality)


class CameraSimulator:
    """Renders frames of one camera's road section, driven by per-lane flow and speed.

    Seeded: the same seed, inputs and calls give the same frames.
    """

    def __init__(self, camera: SimulatedCamera, seed: int = 0, start_ms: int = 0) -> None:
        self.camera = camera
        spec = camera.spec
        cal = spec.calibration
        self.projection = camera.pose.projection(spec.width_px, spec.height_px)
        self.traffic = TrafficModel(cal.n_lanes, cal.lane_width_m, end_x_m=cal.view_end_m + 60.0, seed=seed)
        self.renderer = Renderer(self.projection, spec.width_px, spec.height_px, cal.n_lanes, cal.lane_width_m,
                                 camera.conditions, seed=seed + 1)
        self.time_ms = start_ms
        self.frame_index = 0
        self._populated = False

    @property
    def frame_ms(self) -> int:
        return int(round(1000.0 / self.camera.spec.fps))

    def _ensure_populated(self, flow_veh_h: np.ndarray, speed_kmh: np.ndarray) -> None:
        if not self._populated:
            self.traffic.populate(flow_veh_h, speed_kmh, self.time_ms)
            self._populated = True

    def advance(self, duration_ms: int, flow_veh_h: np.ndarray, speed_kmh: np.ndarray,
                incident: IncidentSpec = NO_INCIDENT) -> None:
        """Move traffic on without rendering (the cheap part of a burst-per-minute day)."""
        self._ensure_populated(flow_veh_h, speed_kmh)
        step = self.frame_ms
        for _ in range(max(duration_ms // step, 0)):
            self.traffic.step(step / 1000.0, flow_veh_h, speed_kmh, incident)
            self.time_ms += step
            self.frame_index += 1

    def frame(self, flow_veh_h: np.ndarray, speed_kmh: np.ndarray,
              incident: IncidentSpec = NO_INCIDENT) -> SimFrame:
        """Advance one frame period and render it."""
        self._ensure_populated(flow_veh_h, speed_kmh)
        line = self.camera.spec.calibration.count_line_m
        before = dict(zip(self.traffic.v.vid.tolist(), self.traffic.v.x_m.tolist(), strict=False))
        self.traffic.step(self.frame_ms / 1000.0, flow_veh_h, speed_kmh, incident)
        self.time_ms += self.frame_ms
        self.frame_index += 1
        v = self.traffic.v
        prev = np.array([before.get(i, np.inf) for i in v.vid.tolist()])
        # a vehicle is counted when its centre crosses the line
        centre, prev_centre = v.x_m - v.length_m / 2, prev - v.length_m / 2
        crossed = (prev_centre < line) & (centre >= line)
        image, boxes, visible = self.renderer.render(v)
        lane = self.camera.spec.calibration.lane_of(v.y_m)
        stopped = v.stopping & (v.stopped_ms >= 0)
        truth = FrameTruth(v.vid[visible], boxes[visible], lane[visible], v.speed_ms[visible] * 3.6,
                           v.x_m[visible], np.array([KIND_NAMES[k] for k in v.kind[visible]], dtype=object),
                           stopped[visible], v.vid[crossed], lane[crossed], v.speed_ms[crossed] * 3.6)
        since = int(v.stopped_ms[stopped][0]) if stopped.any() else None
        return SimFrame(self.camera.spec.camera_id, self.time_ms, self.frame_index, image, truth, since)

    def run(self, duration_ms: int, flow_veh_h: np.ndarray, speed_kmh: np.ndarray,
            incident: IncidentSpec = NO_INCIDENT) -> Iterator[SimFrame]:
        """Frames for ``duration_ms`` at a constant traffic state."""
        for _ in range(max(duration_ms // self.frame_ms, 0)):
            yield self.frame(flow_veh_h, speed_kmh, incident)
