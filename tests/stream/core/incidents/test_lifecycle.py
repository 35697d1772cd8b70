"""IncidentTracker: per-segment alarms over time -> open/updated/cleared events."""
from __future__ import annotations

import json

import numpy as np
import pytest

from models.network import Network
from stream.core.incidents import Alarms
from stream.core.incidents.lifecycle import IncidentTracker

MIN = 60_000


@pytest.fixture
def roadway():
    net = Network.from_dict({"name": "t", "roadways": [{"corridor": "PIE", "direction": "E", "stations": [
        {"id": f"PIE-E-{i:03d}", "km": 0.5 * i, "lanes": 4} for i in range(6)]}]})
    return net.roadways[0]


def alarms(t: int, alarmed: dict[int, tuple[float, int]], n: int = 5) -> Alarms:
    a = np.zeros(n, dtype=bool)
    c = np.zeros(n)
    s = np.zeros(n, dtype=np.int8)
    for seg, (conf, sev) in alarmed.items():
        a[seg], c[seg], s[seg] = True, conf, sev
    return Alarms(t * MIN, a, c, s)


def feed(tracker, frames: list[dict[int, tuple[float, int]]], t0: int = 1):
    events = []
    for k, frame in enumerate(frames):
        events.extend(tracker.update((t0 + k) * MIN, alarms(t0 + k, frame)))
    return events


def test_open_update_clear_sequence(roadway):
    tr = IncidentTracker(roadway, "statistical", clear_after_intervals=3, min_update_interval_ms=2 * MIN)
    frames = [{}, {2: (0.6, 1)}, {2: (0.62, 1)}, {2: (0.9, 3)}, {2: (0.9, 3)}, {}, {}, {}, {}]
    events = feed(tr, frames)
    assert [(e.status, e.event_ms // MIN) for e in events] == [("open", 2), ("updated", 4), ("cleared", 8)]
    opened, updated, cleared = events
    assert opened.incident_id == "statistical:PIE-E-002>PIE-E-003:120000"
    assert {e.incident_id for e in events} == {opened.incident_id}
    assert opened.location_km == pytest.approx(1.25) and opened.segment_id == "PIE-E-002>PIE-E-003"
    assert (opened.corridor, opened.direction, opened.algorithm) == ("PIE", "E", "statistical")
    assert opened.severity == 1 and updated.severity == 3 and updated.confidence == pytest.approx(0.9)
    assert cleared.cleared_ms == 6 * MIN and cleared.start_ms == 2 * MIN  # evidence ended at t=6
    assert tr.n_open == 0


def test_updates_are_throttled_and_small_changes_ignored(roadway):
    tr = IncidentTracker(roadway, "x", min_update_interval_ms=5 * MIN, confidence_step=0.2)
    frames = [{1: (0.5, 1)}, {1: (0.55, 2)}, {1: (0.55, 2)}, {1: (0.6, 2)}, {1: (0.6, 2)}, {1: (0.6, 2)},
              {1: (0.65, 2)}, {1: (0.65, 2)}]
    events = feed(tr, frames)
    # severity changed at t=2 but the last event (open) was at t=1: reported at t=6 (5 min later), once
    assert [(e.status, e.event_ms // MIN, e.severity) for e in events] == [("open", 1, 1), ("updated", 6, 2)]


def test_adjacent_alarms_merge_into_one_incident(roadway):
    tr = IncidentTracker(roadway, "x", clear_after_intervals=2)
    # the queue spreads from segment 3 to 2 and 1, then segment 3 quiets while 1-2 still alarm
    frames = [{3: (0.7, 2)}, {3: (0.7, 2), 2: (0.6, 2)}, {1: (0.5, 1), 2: (0.6, 2)}, {1: (0.5, 1)}, {}, {}]
    events = feed(tr, frames)
    assert [e.status for e in events] == ["open", "cleared"]
    assert events[0].segment_id == "PIE-E-003>PIE-E-004"
    assert events[1].event_ms == 6 * MIN and events[1].cleared_ms == 5 * MIN


def test_two_separate_incidents_and_no_duplicate_opens(roadway):
    tr = IncidentTracker(roadway, "x", clear_after_intervals=2)
    frames = [{0: (0.7, 2), 3: (0.7, 2)}] * 4 + [{}] * 3 + [{0: (0.7, 2)}]
    events = feed(tr, frames)
    opens = [e for e in events if e.status == "open"]
    assert len(opens) == 3 and len({e.incident_id for e in opens}) == 3
    assert [e.segment_id for e in opens[:2]] == ["PIE-E-000>PIE-E-001", "PIE-E-003>PIE-E-004"]
    # every open but the last was cleared; close_all clears the rest exactly once
    closing = tr.close_all(100 * MIN)
    assert [e.incident_id for e in closing] == [opens[2].incident_id]
    assert closing[0].cleared_ms == 100 * MIN and tr.close_all(101 * MIN) == []
    all_events = events + closing
    for inc_id in {e.incident_id for e in all_events}:
        statuses = [e.status for e in all_events if e.incident_id == inc_id]
        assert statuses[0] == "open" and statuses[-1] == "cleared" and statuses.count("open") == 1


def test_randomised_invariants(roadway):
    rng = np.random.default_rng(3)
    tr = IncidentTracker(roadway, "x", clear_after_intervals=3, min_update_interval_ms=2 * MIN)
    events = []
    for t in range(1, 600):
        a = rng.random(5) < 0.15
        events += tr.update(t * MIN, Alarms(t * MIN, a, rng.random(5), rng.integers(1, 4, 5).astype(np.int8)))
    events += tr.close_all(600 * MIN)
    by_id: dict[str, list] = {}
    for e in events:
        by_id.setdefault(e.incident_id, []).append(e)
    for evs in by_id.values():
        assert [e.status for e in evs].count("open") == 1 and evs[0].status == "open"
        assert [e.status for e in evs].count("cleared") == 1 and evs[-1].status == "cleared"
        assert all(b.event_ms - a.event_ms >= 2 * MIN for a, b in zip(evs[:-1], evs[1:], strict=True)
                   if b.status == "updated")
    assert tr.n_open == 0


def test_snapshot_restore(roadway):
    frames = [{2: (0.6, 1)}, {2: (0.9, 3)}, {}, {}, {2: (0.6, 1)}, {}, {}, {}]
    tr = IncidentTracker(roadway, "x", min_update_interval_ms=0)
    full = feed(tr, frames)
    a = IncidentTracker(roadway, "x", min_update_interval_ms=0)
    part = feed(a, frames[:3])
    b = IncidentTracker(roadway, "x", min_update_interval_ms=0, resume_state=json.loads(json.dumps(a.snapshot())))
    part += feed(b, frames[3:], t0=4)
    assert part == full


def test_rejects_wrong_length_and_time_going_backwards(roadway):
    tr = IncidentTracker(roadway, "x")
    with pytest.raises(ValueError):
        tr.update(MIN, alarms(1, {}, n=4))
    tr.update(2 * MIN, alarms(2, {}))
    with pytest.raises(ValueError):
        tr.update(2 * MIN, alarms(2, {}))
