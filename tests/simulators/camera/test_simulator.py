"""The camera simulator: seeded, traffic consistent with the requested state, honest ground truth."""
from __future__ import annotations

import numpy as np

from simulators.camera import CameraSimulator, CameraSource, CameraState, Conditions, IncidentSpec, simulated_camera
from simulators.camera.traffic import TrafficModel


def test_same_seed_same_frames() -> None:
    cam = simulated_camera("c", n_lanes=3, conditions=Conditions("dusk", "rain"))
    a = [f.jpeg() for f in CameraSimulator(cam, seed=7).run(1000, [1500] * 3, [70] * 3)]
    b = [f.jpeg() for f in CameraSimulator(cam, seed=7).run(1000, [1500] * 3, [70] * 3)]
    c = [f.jpeg() for f in CameraSimulator(cam, seed=8).run(1000, [1500] * 3, [70] * 3)]
    assert a == b and a != c
    assert len(a) == 10  # 10 fps default


def test_traffic_flow_and_speed_follow_the_input() -> None:
    model = TrafficModel(n_lanes=3, end_x_m=300.0, seed=1)
    flow = np.array([600.0, 1200.0, 1800.0])
    model.populate(flow, np.full(3, 80.0), 0)
    passed = {1: set(), 2: set(), 3: set()}
    speeds = []
    for _ in range(6000):  # 10 minutes at 0.1 s
        before = dict(zip(model.v.vid.tolist(), model.v.x_m.tolist(), strict=True))
        model.step(0.1, flow, np.full(3, 80.0), IncidentSpec())
        for vid, x, lane, v in zip(model.v.vid, model.v.x_m, model.v.lane, model.v.speed_ms, strict=True):
            if before.get(vid, np.inf) < 150.0 <= x:
                passed[int(lane)].add(int(vid))
                speeds.append(v * 3.6)
    total = sum(len(s) for s in passed.values())
    assert abs(total / (flow.sum() / 6) - 1.0) < 0.12  # Poisson arrivals at the requested flow
    assert abs(np.mean(speeds) - 80.0) < 8.0
    assert len(passed[3]) > len(passed[1])


def test_ground_truth_boxes_lanes_and_incident_stop() -> None:
    cam = simulated_camera("c", n_lanes=3, view="top")
    sim = CameraSimulator(cam, seed=2)
    frames = list(sim.run(20_000, [1200] * 3, [60] * 3, IncidentSpec(active=True, lane=2, x_m=50.0)))
    last = frames[-1]
    t = last.truth
    assert len(t.vehicle_id) > 0
    assert np.all(t.box_xywh[:, 2:] > 0)
    assert np.all(t.box_xywh[:, 0] + t.box_xywh[:, 2] <= 640.5) and np.all(t.box_xywh[:, 1] >= 0)
    assert set(t.lane.tolist()) <= {0, 1, 2, 3}
    assert last.stopped_since_ms is not None
    stopped = t.stopped
    assert stopped.sum() == 1 and t.lane[stopped][0] == 2
    assert abs(t.x_m[stopped][0] - 50.0) < 3.0 and t.speed_kmh[stopped][0] == 0.0
    assert last.image.shape == (360, 640, 3)


def test_burst_source_renders_only_the_burst() -> None:
    cams = [simulated_camera("a", n_lanes=2), simulated_camera("b", n_lanes=3, view="top")]
    src = CameraSource(cams, fps=10.0, burst_s_per_minute=2.0, seed=1)
    frames = list(src.minute({"a": CameraState(np.full(2, 1000.0), np.full(2, 70.0))}))
    assert {f.camera_id for f in frames} == {"a", "b"}
    assert sum(f.camera_id == "a" for f in frames) == 20
    assert all(58_000 <= f.time_ms <= 60_000 for f in frames)
    assert src.time_ms == 60_000
