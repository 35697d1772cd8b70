"""Commuter alert rules: band drops, throttling, incident open/clear, no repeats, snapshot."""
from __future__ import annotations

import json

import numpy as np
import pytest

from models.network import Network
from models.records import FlowWindowBatch, Incident
from stream.core.alerts import AlertRules, Subscription

MIN = 60_000
SEG = "PIE-E-010>PIE-E-011"
OTHER = "PIE-E-011>PIE-E-012"


@pytest.fixture
def network():
    return Network.from_dict({"name": "t", "roadways": [{"corridor": "PIE", "direction": "E", "stations": [
        {"id": f"PIE-E-{i:03d}", "km": 0.5 * i, "lanes": 4} for i in range(9, 14)]}]})


def segments(t_min: int, bands: dict[str, int], travel_time_s: float = 360.0) -> FlowWindowBatch:
    ids = list(bands)
    n = len(ids)
    return FlowWindowBatch(
        "segment", MIN, np.array(ids, dtype=object), np.full(n, "PIE", dtype=object), np.full(n, "E", dtype=object),
        np.full(n, t_min * MIN, dtype=np.int64), np.zeros(n, np.int64), np.full(n, 4000.0), np.full(n, 10.0),
        np.full(n, 60.0), np.full(n, 60.0), np.full(n, 60.0), np.array([bands[i] for i in ids], dtype=np.int8),
        np.ones(n, np.int64), travel_time_s=np.full(n, travel_time_s))


def incident(status: str, t_min: int, seg: str = SEG, inc_id: str = "statistical:X:1") -> Incident:
    return Incident(inc_id, "PIE", "E", seg, 5.25, MIN, t_min * MIN, status, 2, "statistical", 0.8,
                    t_min * MIN if status == "cleared" else None)


def drive(rules, bands_over_time: list[int], seg: str = SEG, t0: int = 0, **kw) -> list:
    out = []
    for k, band in enumerate(bands_over_time):
        out += rules.update(segments(t0 + k, {seg: band}), [], **kw)
    return out


def test_band_drop_alert_with_readable_message(network):
    rules = AlertRules([Subscription("alice", (SEG,))], network)
    usual = {SEG: 360.0}
    out = []
    for t, (band, tt) in enumerate([(7, 360.0), (7, 360.0), (3, 570.0)]):
        out += rules.update(segments(t, {SEG: band}, tt), [], usual_travel_time_s=lambda s, at: usual[s])
    assert len(out) == 1
    a = out[0]
    assert (a.kind, a.speed_band_from, a.speed_band_to, a.at_ms) == ("speed_band_drop", 7, 3, 2 * MIN)
    assert a.message == "PIE (E): speed band 7 -> 3 between PIE-E-010 and PIE-E-011; travel time 9.5 min vs usual 6.0 min"
    assert (a.travel_time_now_s, a.travel_time_usual_s) == (570.0, 360.0)
    assert a.alert_id == f"alice:speed_band_drop:{SEG}:{2 * MIN}"


def test_small_drops_do_not_alert_but_accumulate_and_low_band_always_alerts(network):
    rules = AlertRules([Subscription("a", (SEG,), min_band_drop=2)], network)
    out = drive(rules, [8, 7, 6])  # 8 -> 6 is a drop of 2 from the reference 8
    assert [(a.speed_band_from, a.speed_band_to) for a in out] == [(8, 6)]
    rules = AlertRules([Subscription("b", (SEG,), min_band_drop=3)], network)
    out = drive(rules, [4, 3])  # only 1 band, but down to crawling speed
    assert [(a.speed_band_from, a.speed_band_to) for a in out] == [(4, 3)]


def test_same_state_never_repeats_and_recovery_resets(network):
    rules = AlertRules([Subscription("a", (SEG,), throttle_ms=5 * MIN)], network)
    out = drive(rules, [7, 3, 3, 3, 3, 3, 3, 3, 3, 7, 7, 7, 7, 7, 7, 3, 3])
    assert [(a.speed_band_from, a.speed_band_to, a.at_ms // MIN) for a in out] == [(7, 3, 1), (7, 3, 15)]


def test_throttle_holds_back_a_second_drop_then_reports_it_once(network):
    rules = AlertRules([Subscription("a", (SEG,), throttle_ms=10 * MIN)], network)
    # 8 -> 6 at t1; recovers to 8 at t2 and drops to 5 at t3 (within 10 min: held); still 5 at t11 -> reported
    out = drive(rules, [8, 6, 8, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5])
    assert [(a.speed_band_from, a.speed_band_to, a.at_ms // MIN) for a in out] == [(8, 6, 1), (8, 5, 11)]


def test_unknown_bands_and_unwatched_segments_are_ignored(network):
    rules = AlertRules([Subscription("a", (SEG,))], network)
    out = drive(rules, [7, 0, 0, 7])
    out += drive(rules, [8, 1], seg=OTHER, t0=10)
    assert out == []


def test_incident_open_and_clear_alert_once_per_subscription(network):
    subs = [Subscription("a", (SEG,), name="home"), Subscription("b", (SEG, OTHER)), Subscription("c", (OTHER,))]
    rules = AlertRules(subs, network)
    empty = segments(0, {})
    out = rules.update(empty, [incident("open", 3)])
    out += rules.update(empty, [incident("open", 3), incident("updated", 5)])  # repeated open, and an update
    out += rules.update(empty, [incident("cleared", 9)])
    out += rules.update(empty, [incident("cleared", 9)])
    assert sorted((a.subscription_id, a.kind) for a in out) == [
        ("a", "incident_clear"), ("a", "incident_open"), ("b", "incident_clear"), ("b", "incident_open")]
    opened = next(a for a in out if a.subscription_id == "a" and a.kind == "incident_open")
    assert opened.incident_id == "statistical:X:1" and opened.at_ms == 3 * MIN
    assert opened.alert_id == "a:incident_open:statistical:X:1"
    assert opened.message.startswith("[home] PIE (E): incident detected between PIE-E-010 and PIE-E-011")


def test_incident_alerts_are_not_throttled(network):
    rules = AlertRules([Subscription("a", (SEG,), throttle_ms=3_600_000)], network)
    out = rules.update(segments(0, {}), [incident("open", 1, inc_id="i1"), incident("open", 2, inc_id="i2")])
    assert len(out) == 2


def test_unknown_segment_in_subscription_is_rejected(network):
    with pytest.raises(ValueError):
        AlertRules([Subscription("a", ("NOPE>NADA",))], network)


def test_snapshot_restore_continues_identically(network):
    subs = [Subscription("a", (SEG, OTHER), throttle_ms=4 * MIN)]
    seq = [7, 4, 7, 3, 3, 8, 8, 5, 5, 2, 7, 7, 3]
    full = AlertRules(subs, network)
    ref = drive(full, seq) + full.update(segments(20, {}), [incident("open", 20)])
    a = AlertRules(subs, network)
    got = drive(a, seq[:6])
    b = AlertRules(subs, network, resume_state=json.loads(json.dumps(a.snapshot())))
    got += drive(b, seq[6:], t0=6) + b.update(segments(20, {}), [incident("open", 20)])
    assert got == ref and len(ref) >= 3
