"""Frames on the bus (JPEG + headers, snapshots per minute), annotation, and per-segment evidence."""
from __future__ import annotations

import numpy as np

from ingest.bus import MemoryBus
from ingest.camera import TOPIC_FRAMES, TOPIC_SNAPSHOTS, CameraPublisher, read_frame_headers
from models.camera import CameraObservation
from simulators.camera import CameraSimulator, simulated_camera
from stream.vision import VisionProcessor, annotate, segment_evidence


def test_frames_and_snapshots_round_trip_through_the_bus() -> None:
    cam = simulated_camera("cam-7", "S3", "S3>S4", n_lanes=3)
    sim = CameraSimulator(cam, seed=1, start_ms=59_000)
    bus = MemoryBus()
    pub = CameraPublisher(bus.producer(), cam.spec)
    for fr in sim.run(2_000, [1000] * 3, [60] * 3):
        pub.publish(fr.jpeg(), fr.time_ms, fr.frame_index)
    frames = bus.read_all(TOPIC_FRAMES)
    snaps = bus.read_all(TOPIC_SNAPSHOTS)
    assert len(frames) == 20 and len(snaps) == 2  # the minute 0 and minute 1 snapshots
    meta, spec = read_frame_headers(frames[0].headers)
    assert frames[0].key_str == "cam-7" and meta.camera_id == "cam-7" and meta.time_ms == frames[0].timestamp_ms
    assert spec == cam.spec
    vp = VisionProcessor(spec)
    assert vp.decode(frames[0].value).shape == (180, 320)


def test_annotate_draws_boxes_and_lines() -> None:
    cam = simulated_camera("c", n_lanes=3)
    frame = next(CameraSimulator(cam, seed=1).run(100, [1000] * 3, [60] * 3))
    out = annotate(frame.image, np.array([[10, 10, 50, 30]]), cam.spec.calibration, stopped=np.array([True]))
    assert out.shape == frame.image.shape and not np.array_equal(out, frame.image)
    assert tuple(out[10, 30]) == (0, 0, 255)  # red box edge for a stopped vehicle


def _obs(cam: str, seg: str, start: int, stopped: bool, since: int | None = None) -> CameraObservation:
    return CameraObservation(cam, "S1", seg, start, 60_000, (3, 4), 60.0, 0.0, 5.0, stopped, since, frames=600)


def test_segment_evidence_uses_each_cameras_latest_interval() -> None:
    ev = segment_evidence([_obs("a", "S1>S2", 0, True, 5_000), _obs("a", "S1>S2", 60_000, False),
                           _obs("b", "S2>S3", 60_000, True, 70_000), _obs("c", "S2>S3", 60_000, False)])
    assert not ev["S1>S2"].stopped_vehicle  # cleared in the later interval
    assert ev["S2>S3"].stopped_vehicle and ev["S2>S3"].stopped_since_ms == 70_000
    assert ev["S2>S3"].camera_ids == ("b", "c")
