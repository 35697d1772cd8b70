"""Cameras in the embedded run: observations stored, counts agree with the loops, snapshots for the
operators, and a camera's stopped vehicle reaching the incident detector.

One short run on the first 12 km of the PIE eastbound with 2 cameras (chosen from the
network; the first watches the segment of the staged incident), census bursts every
3 minutes, and the same run without cameras for comparison.
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from models.singapore import singapore_network
from roadpulse.cameras_run import CameraPlan, choose_segments
from roadpulse.run import format_summary, run_embedded
from roadpulse.settings import Settings, parse_time_ms
from simulators import IncidentSpec
from stream.core.pipeline import CorridorStage, PipelineConfig
from stream.sinks.sqlite_store import LocalStore

START_MS = parse_time_ms("2026-03-03T10:00:00+08:00")  # Tuesday mid-morning: free flow until the incident
INCIDENT_KM = 6.25
INCIDENT_START_MS = START_MS + 35 * 60_000
INCIDENT_MS = 20 * 60_000
COUNT_TOLERANCE = 0.15  # camera vehicles vs loop vehicles over the filmed free-flow minutes, per camera


def _settings(out, **extra) -> Settings:
    return Settings(duration_s=50 * 60, start_ms=START_MS, seed=11, out_dir=out, incidents=0, fault_fraction=0.0,
                    chaos_rate=0.0, progress=False, extra=extra)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    network = singapore_network(200)
    roadway = network.roadways[0]
    incident = IncidentSpec(roadway.key, INCIDENT_KM, INCIDENT_START_MS, INCIDENT_MS, lanes_blocked=2)
    plan = CameraPlan(n_cameras=2, every_min=3, burst_s=6.0)
    with_cams = run_embedded(_settings(tmp_path_factory.mktemp("cams")), network, PipelineConfig(),
                             incidents=(incident,), cameras=plan)
    without = run_embedded(_settings(tmp_path_factory.mktemp("nocams"), cameras=0), network, PipelineConfig(),
                           incidents=(incident,))
    return with_cams, without


def _load(report, measurement: str, **tags):
    with LocalStore(report.store_path) as store:
        return store.load(measurement, **tags)


def test_cameras_are_chosen_from_the_network_deterministically():
    network = singapore_network(400)
    segs = [s.segment_id for s in choose_segments(network, 4, roadways=2)]
    assert segs == [s.segment_id for s in choose_segments(network, 4, roadways=2)]
    assert len(segs) == len(set(segs)) == 4
    assert {network.segment_by_id[s].corridor + network.segment_by_id[s].direction for s in segs} == {"PIEE", "PIEW"}
    staged = network.roadways[1].segments[3].segment_id
    assert [s.segment_id for s in choose_segments(network, 4, 2, staged=[staged])] == segs + [staged]
    assert choose_segments(network, 0) == []


def test_observations_are_stored_for_every_filmed_minute(runs):
    report, _ = runs
    cams = _load(report, "camera")
    sites = report.camera_world.sites
    assert {s.camera_id for s in sites} == set(cams["camera_id"]) and len(sites) == 2
    for s in sites:
        rows = cams[cams["camera_id"] == s.camera_id]
        assert (rows["station_id"] == s.station.station_id).all() and (rows["segment_id"] == s.segment_id).all()
        assert len(rows) == s.bursts  # one observation per burst, each in its own minute
        assert rows["interval_start_ms"].is_unique and (rows["interval_start_ms"] % 60_000 == 0).all()
    assert (cams["frames"] >= 50).all() and (cams["vehicle_count"] >= 0).all()
    assert cams["occupancy_pct"].between(0, 100).all()
    assert list(cams.columns[-6:]) == ["vehicle_count", "mean_speed_kmh", "queue_length_m", "occupancy_pct",
                                       "stopped_vehicle", "frames"]
    summary = format_summary(report)
    assert "cam veh/min" in summary and all(s.camera_id in summary for s in sites)


def test_camera_counts_agree_with_the_loops_at_the_same_station(runs):
    """Per camera, over the minutes filmed before the incident: the vehicles the camera counted
    (burst counts scaled to the minute) vs the station's 1-min loop count in the store."""
    report, _ = runs
    cams = _load(report, "camera")
    flow = _load(report, "flow", level="station", window="1m")
    free = cams[cams["interval_start_ms"] < INCIDENT_START_MS]
    merged = free.merge(flow, left_on=["station_id", "interval_start_ms"], right_on=["entity_id", "window_start_ms"],
                        suffixes=("_cam", "_loop"))
    assert len(merged) == len(free) >= 2 * 8
    for cam_id, rows in merged.groupby("camera_id"):
        cam, loop = rows["vehicle_count_cam"].sum(), rows["vehicle_count_loop"].sum()
        assert abs(cam / loop - 1) <= COUNT_TOLERANCE, (cam_id, cam, loop)
        speed_cam = np.nanmean(rows["mean_speed_kmh"])
        speed_loop = np.nanmean(rows["time_mean_speed_kmh"])
        assert abs(speed_cam - speed_loop) <= 15, (cam_id, speed_cam, speed_loop)
    assert not free["stopped_vehicle"].any(), "a stopped vehicle flagged in free flow"
    assert report.cameras.rows and all(abs(r.ratio - 1) < 0.25 for r in report.cameras.rows)


def test_snapshots_are_annotated_pictures_for_the_operators(runs):
    report, _ = runs
    folder = report.store_path.parent / "cameras"
    for s in report.camera_world.sites:
        img = cv2.imread(str(folder / f"{s.camera_id}.jpg"), cv2.IMREAD_COLOR)
        assert img is not None and img.shape == (360, 640, 3)
        meta = json.loads((folder / f"{s.camera_id}.json").read_text())
        assert meta["segment_id"] == s.segment_id and meta["annotated"] is True
    snaps = [m for m in report.pipeline.bus.read_all("camera_snapshots") if m.headers.get("annotated") == b"1"]
    assert {m.key_str for m in snaps} == {s.camera_id for s in report.camera_world.sites}


def test_a_stopped_vehicle_seen_by_a_camera_reaches_the_incident_detector(runs):
    report, without = runs
    truth = report.simulator.ground_truth.incidents[0]
    watched = {s.segment_id for s in report.camera_world.sites}
    assert truth.segment_id in watched
    evidence = [(w, seg) for w, seg, v in report.pipeline.stats.camera_evidence if v > 0]
    on_incident = [w for w, seg in evidence if seg == truth.segment_id]
    assert on_incident, "no camera evidence reached the detector"
    assert all(truth.start_ms <= w <= truth.end_ms for w in on_incident)
    assert all(seg == truth.segment_id for _, seg in evidence), "evidence on a segment without an incident"
    cams = _load(report, "camera", segment_id=truth.segment_id)
    during = cams[cams["interval_start_ms"].between(truth.start_ms, truth.end_ms)]
    assert during["stopped_vehicle"].mean() >= 0.4, during[["interval_start_ms", "stopped_vehicle"]]

    def detected_at(r):
        score = {s.algorithm: s for s in r.scores}["statistical"]
        assert score.hits == 1 and score.false_alarms == 0
        return score.matches[0].time_to_detect_s

    assert detected_at(report) <= detected_at(without)


def test_corridor_stage_maps_camera_evidence_onto_the_chain_and_ignores_other_segments():
    network = singapore_network(400)
    stage = CorridorStage(network, PipelineConfig())
    seg = network.roadways[1].segments[2].segment_id
    stage.set_evidence({seg: 1.0, "NOT>A-SEGMENT": 1.0, network.roadways[0].segments[0].segment_id: 0.0})
    chain = stage._chain_evidence()
    assert chain is not None and chain.sum() == 1.0
    assert stage.segment_ids[int(np.flatnonzero(chain[stage.chains.pair_pos])[0])] == seg
    stage.set_evidence({})
    assert stage._chain_evidence() is None
