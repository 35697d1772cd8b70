"""End to end in one process: a staged incident is detected, alerted to a subscriber and cleared.

Simulator -> memory bus -> validation -> core stages -> sqlite store, exactly as
`roadpulse run` wires them, on a small part of the default network.
"""
from __future__ import annotations

from collections import Counter

import pytest

from models.singapore import singapore_network
from roadpulse.run import run_embedded
from roadpulse.settings import Settings, parse_time_ms
from simulators import IncidentSpec
from stream.core.alerts import Subscription
from stream.core.pipeline import PipelineConfig
from stream.sinks.sqlite_store import LocalStore

START_MS = parse_time_ms("2026-03-03T10:00:00+08:00")  # Tuesday mid-morning: no recurrent congestion


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    network = singapore_network(200)  # the first 12 km of the PIE eastbound
    roadway = network.roadways[0]
    incident = IncidentSpec(roadway.key, location_km=6.25, start_ms=START_MS + 40 * 60_000,
                            duration_ms=20 * 60_000, lanes_blocked=2)
    seg = next(s for s in roadway.segments if s.start_km <= 6.25 < s.end_km)
    up = roadway.segments[roadway.segments.index(seg) - 1]
    subscriber = Subscription("amy", (up.segment_id, seg.segment_id), name="Amy's commute")
    settings = Settings(duration_s=2 * 3600, start_ms=START_MS, seed=11, out_dir=tmp_path_factory.mktemp("run"),
                        incidents=0, fault_fraction=0.0, chaos_rate=0.01, progress=False)
    report = run_embedded(settings, network, PipelineConfig(subscriptions=(subscriber,)), incidents=(incident,))
    return report, seg, subscriber


def test_staged_incident_is_detected_soon_after_it_starts(run):
    report, seg, _ = run
    truth = report.simulator.ground_truth.incidents[0]
    score = {s.algorithm: s for s in report.scores}["statistical"]
    assert score.hits == 1, report.to_dict()["scores"]
    assert score.matches[0].time_to_detect_s < 10 * 60
    assert truth.segment_id == seg.segment_id


def test_incident_lifecycle_opens_once_and_clears(run):
    report, _, _ = run
    events = [i for i in report.pipeline.stats.incidents if i.algorithm == "statistical"]
    by_id = Counter((i.incident_id, i.status) for i in events)
    assert all(n == 1 for (iid, status), n in by_id.items() if status in ("open", "cleared"))
    opened = {iid for iid, status in by_id if status == "open"}
    cleared = {iid for iid, status in by_id if status == "cleared"}
    assert opened and opened == cleared
    truth = report.simulator.ground_truth.incidents[0]
    match = next(m for m in report.scores[-1].matches)
    clear = next(i for i in events if i.incident_id == match.detected_id and i.status == "cleared")
    assert truth.end_ms <= clear.event_ms <= truth.end_ms + 30 * 60_000


def test_subscriber_is_alerted_on_open_and_clear_once_each(run):
    report, _, subscriber = run
    alerts = [a for a in report.pipeline.stats.alerts if a.subscription_id == subscriber.subscription_id]
    kinds = Counter(a.kind for a in alerts)
    assert kinds["incident_open"] >= 1 and kinds["incident_clear"] >= 1
    keys = [(a.kind, a.incident_id) for a in alerts if a.incident_id]
    assert len(keys) == len(set(keys)), "an incident alert was repeated"
    assert len({a.alert_id for a in alerts}) == len(alerts)


def test_every_bad_record_is_dead_lettered_and_nothing_vanishes(run):
    report, _, _ = run
    stats = report.pipeline.stats
    expected = report.chaos.expected_reasons()
    assert sum(expected.values()) > 0
    for reason, n in expected.items():
        assert stats.dead_letters[reason] >= n, (reason, stats.dead_letters)
    n_det = report.network.n_detectors
    intervals = report.settings.duration_s // 30
    assert stats.readings_accepted + stats.dead_letters["late"] <= n_det * intervals
    store = LocalStore(report.store_path)
    letters = store.load("dead_letter")
    assert len(letters) == sum(stats.dead_letters.values())
    assert set(letters["reason"]) == set(stats.dead_letters)


def test_store_holds_windows_incidents_and_alerts(run):
    report, seg, _ = run
    store = LocalStore(report.store_path)
    flow = store.load("flow", level="segment", window="1m")
    assert len(flow) > 0 and (flow["entity_id"] == seg.segment_id).any()
    assert len(store.load("incident")) == len(report.pipeline.stats.incidents)
    assert len(store.load("alert")) == len(report.pipeline.stats.alerts)
