"""Shared helpers: run a simulated camera through the vision processor and compare with ground truth."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.camera import CameraObservation
from simulators.camera import CameraSimulator, Conditions, IncidentSpec, simulated_camera
from stream.vision import VisionConfig, VisionProcessor

START_MS = 35_000  # warm-up in [35 s, 45 s); the scored interval is [45 s, 90 s)
END_MS = 90_000
INTERVAL_MS = 45_000


@dataclass
class SceneResult:
    observations: list[CameraObservation]
    truth_count: int = 0
    truth_speeds_kmh: list[float] = field(default_factory=list)
    stopped_since_ms: int | None = None  # truth: when the incident vehicle came to rest
    flagged_ms: int | None = None  # first frame time the processor reported a stopped vehicle
    flagged_frames: int = 0

    @property
    def minute(self) -> CameraObservation:
        return next(o for o in self.observations if o.interval_start_ms == 45_000)


def run_scene(view: str = "oblique", lighting: str = "day", weather: str = "clear", flow_veh_h: float = 1500.0,
              speed_kmh: float = 70.0, fps: float = 10.0, incident: IncidentSpec | None = None,
              incident_from_ms: int = 0, seed: int = 3, n_lanes: int = 3, end_ms: int = END_MS) -> SceneResult:
    cam = simulated_camera("cam-1", "S1", "S1>S2", n_lanes=n_lanes, view=view, fps=fps,
                           conditions=Conditions(lighting, weather))
    sim = CameraSimulator(cam, seed=seed, start_ms=START_MS)
    vp = VisionProcessor(cam.spec, VisionConfig(interval_ms=INTERVAL_MS))
    flow, speed = np.full(n_lanes, flow_veh_h), np.full(n_lanes, speed_kmh)
    res = SceneResult([])
    while sim.time_ms + sim.frame_ms <= end_ms:
        inc = incident if (incident is not None and sim.time_ms >= incident_from_ms) else IncidentSpec()
        fr = sim.frame(flow, speed, inc)
        res.observations += vp.process(fr.jpeg(), fr.time_ms)
        if 45_000 <= fr.time_ms < 90_000:
            res.truth_count += len(fr.truth.crossed_id)
            res.truth_speeds_kmh += fr.truth.crossed_speed_kmh.tolist()
        if vp.stopped_vehicle(fr.time_ms) is not None:
            res.flagged_frames += 1
            if res.flagged_ms is None:
                res.flagged_ms = fr.time_ms
        if fr.stopped_since_ms is not None and res.stopped_since_ms is None:
            res.stopped_since_ms = fr.stopped_since_ms
    res.observations += vp.flush()
    res.processor = vp  # type: ignore[attr-defined]
    return res
