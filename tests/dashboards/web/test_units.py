"""Web layer pieces on their own: webhook delivery, pacing, the live state, web subscriptions vs the core."""
from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from dashboards.web.feed import LiveRun, Pacer
from dashboards.web.state import LiveState
from dashboards.web.subscriptions import SubscriptionError, WebSubscriptions
from dashboards.web.webhooks import Delivery, WebhookSender, backoff_s, sign, verify
from models.records import FlowWindowBatch
from models.singapore import singapore_network
from roadpulse.run import run_embedded
from roadpulse.settings import Settings, parse_time_ms
from simulators import IncidentSpec
from stream.core.alerts import Subscription
from stream.core.pipeline import PipelineConfig

START_MS = parse_time_ms("2026-03-03T10:00:00+08:00")


# ---- webhooks ------------------------------------------------------------------
def test_signature_is_hmac_sha256_of_the_body():
    import hashlib
    import hmac

    body = b'{"alert": 1}'
    assert sign("s3cret", body) == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert verify("s3cret", body, sign("s3cret", body))
    assert not verify("s3cret", body + b" ", sign("s3cret", body))


def test_backoff_doubles_and_is_capped():
    assert [backoff_s(a, 0.5, 3.0) for a in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def _deliver(sender: WebhookSender, url: str, secret: str = "k") -> Delivery:
    delivery = Delivery("d1", "sub", url, "a1")
    body = json.dumps({"delivery_id": "d1", "alert": {"alert_id": "a1"}}).encode()

    async def go() -> Delivery:
        try:
            return await sender.deliver(delivery, secret, body)
        finally:
            await sender.close()

    # a thread of its own: playwright's sync API may hold a running loop in the test thread
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def test_webhook_retries_until_delivered(make_receiver):
    with make_receiver(lambda delivery, n: 503 if n < 2 else 200) as received:
        d = _deliver(WebhookSender(max_attempts=5, base_backoff_s=0.01), received.url)
    assert d.state == "delivered"
    assert [a["status"] for a in d.attempts] == [503, 503, 200]
    assert [h["X-Roadpulse-Attempt"] for h, _, _ in received.requests] == ["1", "2", "3"]
    assert all(verify("k", body, h["X-Roadpulse-Signature"]) for h, body, _ in received.requests)


def test_webhook_gives_up_after_max_attempts(make_receiver):
    with make_receiver(lambda delivery, n: 500) as received:
        d = _deliver(WebhookSender(max_attempts=3, base_backoff_s=0.01), received.url)
    assert d.state == "failed" and len(received.requests) == 3


def test_webhook_does_not_retry_a_refusal(make_receiver):
    with make_receiver(lambda delivery, n: 400) as received:
        d = _deliver(WebhookSender(max_attempts=5, base_backoff_s=0.01), received.url)
    assert d.state == "failed" and len(received.requests) == 1


def test_webhook_retries_when_nobody_listens(make_receiver):
    with make_receiver() as received:
        url = received.url  # the receiver is gone after this block: connection refused
    d = _deliver(WebhookSender(max_attempts=2, base_backoff_s=0.01), url)
    assert d.state == "failed" and [a["status"] for a in d.attempts] == [None, None]
    assert all(a["error"] for a in d.attempts)


# ---- pacing ----------------------------------------------------------------------
def test_pacer_keeps_simulated_time_at_speedup_times_wall_time():
    clock = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        clock[0] += s

    pacer = Pacer(60.0, sleep=sleep, clock=lambda: clock[0])
    pacer.pace(0)
    pacer.pace(30_000)  # 30 simulated s = 0.5 wall s at 60x
    clock[0] += 2.0  # the pipeline was slow: no sleep needed
    pacer.pace(60_000)
    pacer.pace(240_000)  # 4 min at 60x = 4 s after the origin
    assert slept == pytest.approx([0.5, 1.5])
    assert Pacer(float("inf")).pace(10**9) == 0.0


# ---- live state ----------------------------------------------------------------------
def _segment_batch(network, start_ms: int, speed_kmh: float) -> FlowWindowBatch:
    segs = network.segments
    n = len(segs)
    ids = np.array([s.segment_id for s in segs], dtype=object)
    band = np.full(n, min(8, int(speed_kmh // 10) + 1), dtype=np.int8)
    tt = np.array([s.length_km / speed_kmh * 3600 for s in segs])
    return FlowWindowBatch("segment", 60_000, ids, np.array([s.corridor for s in segs], dtype=object),
                           np.array([s.direction for s in segs], dtype=object), np.full(n, start_ms, np.int64),
                           np.full(n, 30, np.int64), np.full(n, 1800.0), np.full(n, 10.0), np.full(n, speed_kmh),
                           np.full(n, speed_kmh), np.full(n, 1800.0 / speed_kmh), band, np.full(n, 8, np.int64),
                           travel_time_s=tt)


def test_state_keeps_one_hour_of_history_and_the_latest_window():
    network = singapore_network(200)
    state = LiveState(network)
    for minute in range(90):
        state.add_segment_windows(_segment_batch(network, START_MS + minute * 60_000, 80.0 if minute < 85 else 25.0))
    seg = network.segments[3].segment_id
    hist = state.segment_history(seg)
    assert len(hist) == 60 and hist[-1]["window_start_ms"] == START_MS + 89 * 60_000
    latest = state.segments()[seg]
    assert latest["speed_band"] == 3 and latest["speed_kmh"] == 25.0


def test_route_travel_time_counts_free_flow_where_no_window_yet():
    network = singapore_network(200)
    state = LiveState(network)
    route = tuple(s.segment_id for s in network.segments[:4])
    free = sum(s.length_km / network.roadways[0].speed_limit_kmh * 3600 for s in network.segments[:4])
    assert state.route_travel_time(route)["now_s"] == pytest.approx(free, abs=0.1)
    state.add_segment_windows(_segment_batch(network, START_MS, 45.0))
    slow = sum(s.length_km / 45.0 * 3600 for s in network.segments[:4])
    assert state.route_travel_time(route)["now_s"] == pytest.approx(slow, abs=0.1)


def test_web_subscription_rejects_unknown_routes_and_bad_webhooks():
    subs = WebSubscriptions(singapore_network(200))
    with pytest.raises(SubscriptionError, match="unknown roadway"):
        subs.add(route={"roadway": "XYZ-E", "from_km": 0, "to_km": 3})
    with pytest.raises(SubscriptionError, match="webhook"):
        subs.add(route={"roadway": "PIE-E", "from_km": 0, "to_km": 3}, webhook_url="ftp://x")
    web = subs.add(route={"roadway": "PIE-E", "from_km": 3, "to_km": 0}, webhook_url="http://127.0.0.1:9/h")
    assert web.route == {"roadway": "PIE-E", "from_km": 0.0, "to_km": 3.0} and web.secret


# ---- web subscriptions give the core's alerts --------------------------------------------
def test_web_subscription_alerts_equal_the_pipelines_for_the_same_segments(tmp_path):
    network = singapore_network(200)
    roadway = network.roadways[0]
    seg = next(i for i, s in enumerate(roadway.segments) if s.start_km <= 6.25 < s.end_km)
    segments = tuple(s.segment_id for s in roadway.segments[seg - 2:seg + 2])
    core_sub = Subscription("amy", segments, name="amy")
    state = LiveState(network)
    web_subs = WebSubscriptions(network, usual_s=state.usual.usual_s)
    web_subs.add(name="amy", segment_ids=list(segments), subscription_id="web-amy")
    hook = LiveRun(state, web_subs)
    settings = Settings(duration_s=80 * 60, start_ms=START_MS, seed=11, out_dir=tmp_path, incidents=0,
                        fault_fraction=0.0, chaos_rate=0.0, progress=False)
    incident = IncidentSpec(roadway.key, 6.25, START_MS + 30 * 60_000, 20 * 60_000, lanes_blocked=2)
    report = run_embedded(settings, network, PipelineConfig(subscriptions=(core_sub,)), on_step=hook,
                          incidents=(incident,))
    hook.finish()

    def key(a: dict) -> tuple:
        return (a["kind"], a["segment_id"], a["at_ms"], a["speed_band_from"], a["speed_band_to"], a["incident_id"],
                a["message"])

    core = {key(a.to_dict()) for a in report.pipeline.stats.alerts}
    web = {key(a) for a in state.alerts("web-amy", limit=10_000)}
    assert {k[0] for k in core} >= {"incident_open", "incident_clear"}
    assert web == core
    pipeline_seen = {key(a) for a in state.alerts("amy", limit=10_000)}
    assert pipeline_seen == core  # the alerts topic reached the state too
