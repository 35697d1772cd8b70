"""A cheap camera feed for a simulated day: render only a short burst of frames per minute.

Rendering and vision at 10 fps for a whole day of many cameras is hours of CPU;
traffic state changes at the pace of minutes. ``CameraSource`` advances each
camera's traffic through the minute without drawing, and renders only the last
``burst_s_per_minute`` seconds, which is enough for the vision processor to
track vehicles, count a sample and see a stopped vehicle. Counts from a burst
are a sample: scale them by ``60 / burst_s_per_minute`` for a per-minute figure
(:func:`scale_burst_counts`), or use them as incident evidence only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from models.camera import CameraObservation
from simulators.camera.simulator import CameraSimulator, SimFrame, SimulatedCamera
from simulators.camera.traffic import IncidentSpec

MINUTE_MS = 60_000


@dataclass(frozen=True)
class CameraState:
    """Traffic at one camera for the coming minute: per-lane flow veh/h and speed km/h, plus any incident."""

    flow_veh_h: np.ndarray
    speed_kmh: np.ndarray
    incident: IncidentSpec = IncidentSpec()


class CameraSource:
    """Frames for several simulated cameras, a burst per minute each. Seeded, deterministic."""

    def __init__(self, cameras: list[SimulatedCamera], fps: float | None = None, burst_s_per_minute: float = 10.0,
                 seed: int = 0, start_ms: int = 0) -> None:
        if not 0 < burst_s_per_minute <= 60:
            raise ValueError("burst_s_per_minute must be in (0, 60]")
        if start_ms % MINUTE_MS:
            raise ValueError("start_ms must be on a minute boundary")
        self.burst_ms = int(round(burst_s_per_minute * 1000))
        self.sims: dict[str, CameraSimulator] = {}
        for k, cam in enumerate(cameras):
            if fps is not None and fps != cam.spec.fps:
                from dataclasses import replace
                cam = replace(cam, spec=replace(cam.spec, fps=fps))
            self.sims[cam.spec.camera_id] = CameraSimulator(cam, seed=seed * 1000 + k, start_ms=start_ms)
        self.time_ms = start_ms

    def minute(self, states: dict[str, CameraState]) -> Iterator[SimFrame]:
        """Advance every camera by one minute; yield the burst frames (camera by camera, in time order).

        A camera missing from ``states`` keeps its last state (empty road before the first one).
        """
        end = self.time_ms + MINUTE_MS
        for cam_id, sim in self.sims.items():
            st = states.get(cam_id) or getattr(sim, "_last_state", None)
            if st is None:
                n = sim.camera.spec.calibration.n_lanes
                st = CameraState(np.zeros(n), np.full(n, 80.0))
            sim._last_state = st  # type: ignore[attr-defined]
            sim.advance(end - self.burst_ms - sim.time_ms, st.flow_veh_h, st.speed_kmh, st.incident)
            while sim.time_ms + sim.frame_ms <= end:
                yield sim.frame(st.flow_veh_h, st.speed_kmh, st.incident)
        self.time_ms = end


def scale_burst_counts(obs: CameraObservation, burst_s_per_minute: float) -> tuple[float, ...]:
    """Per-lane vehicles per minute estimated from a burst's counts."""
    return tuple(c * 60.0 / burst_s_per_minute for c in obs.count_per_lane)
