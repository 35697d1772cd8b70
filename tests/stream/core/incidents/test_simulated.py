"""Both detectors on a seeded CTM simulation: readings -> 1-min windows -> station metrics -> alarms -> incidents.

Scenario: a 25-station stretch of the PIE (E), 07:00-10:00 Singapore time, 3 of 4
lanes blocked for 30 min at 08:00 in the middle of the stretch, 5 % of the
detectors faulty (stuck, chattering, dropping out...). Faulty loops are the
everyday source of false alarms for occupancy-difference algorithms.
"""
from __future__ import annotations

import pytest

from models.singapore import singapore_network
from simulators import DEFAULT_START_MS, IncidentSpec, SimulationConfig, TrafficSimulator
from stream.core.flow import station_metrics
from stream.core.incidents import build_detector
from stream.core.incidents.lifecycle import IncidentTracker
from stream.core.scoring import score_incidents
from stream.core.windows import TumblingWindow

HOUR_MS = 3_600_000
WINDOW_MS = 60_000
ALGORITHMS = ("california8", "statistical")


@pytest.fixture(scope="module")
def run():
    network = singapore_network(100)
    roadway = network.roadways[0]
    start_ms = DEFAULT_START_MS + 7 * HOUR_MS
    seg = roadway.segments[len(roadway.segments) // 2]
    spec = IncidentSpec(roadway.key, round((seg.start_km + seg.end_km) / 2, 3), start_ms + HOUR_MS, 30 * 60_000, 3)
    sim = TrafficSimulator(network, SimulationConfig(seed=3, start_ms=start_ms, duration_s=3 * 3600,
                                                     n_random_incidents=0, incidents=(spec,), fault_fraction=0.05))
    windows = TumblingWindow(WINDOW_MS).build(network.n_detectors)
    detectors = {a: build_detector(a, roadway) for a in ALGORITHMS}
    trackers = {a: IncidentTracker(roadway, a) for a in ALGORITHMS}
    events = []
    for batch in sim:
        windows.update(network.detector_numbers(batch.detector_id), batch.interval_start_ms, batch.interval_ms,
                       batch.vehicle_count, batch.occupancy_pct, batch.speed_kmh)
        for closed in windows.poll():
            stations = station_metrics(closed, network)
            for a in ALGORITHMS:
                alarms = detectors[a].update_batch(stations, roadway)
                events += trackers[a].update(closed.window_start_ms + WINDOW_MS, alarms)
    for a in ALGORITHMS:
        events += trackers[a].close_all(sim.end_ms)
    truth = sim.ground_truth.incidents
    return events, truth, {a: score_incidents(a, events, truth) for a in ALGORITHMS}


def test_both_detectors_find_the_incident_within_five_minutes(run):
    _, truth, scores = run
    assert len(truth) == 1
    for a in ALGORITHMS:
        assert scores[a].hits == 1, a
        assert scores[a].matches[0].time_to_detect_s <= 300, a


def test_ours_raises_fewer_false_alarms_than_california(run):
    _, _, scores = run
    assert scores["statistical"].false_alarms < scores["california8"].false_alarms
    assert scores["statistical"].false_alarms <= 1


def test_our_incident_is_placed_at_the_blockage_and_cleared_after_it(run):
    events, (truth,), scores = run
    ours = [e for e in events if e.incident_id == scores["statistical"].matches[0].detected_id]
    assert [e.status for e in ours][0] == "open" and ours[-1].status == "cleared"
    assert abs(ours[0].location_km - truth.location_km) <= 0.5  # the segment of the blockage (0.5 km spacing)
    assert truth.end_ms <= ours[-1].cleared_ms <= truth.end_ms + 20 * 60_000  # queue discharge takes a while
