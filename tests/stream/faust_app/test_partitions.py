"""The Kafka runtime's per-partition logic, without a broker: same results as the embedded runtime.

Messages are split over partitions by key exactly as the producers do, partition
states consume them in skewed order (one partition far ahead of the others, as
a worker draining a backlog does), station windows are routed to corridor
partitions with the same messages the agents send; a restart from snapshots
in the middle, with the last batch redelivered, must change nothing.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import zip_longest

import numpy as np
import pandas as pd
import pytest

from ingest.chaos import ChaosInjector
from models.singapore import singapore_network
from models.wire import decode_alert, decode_dead_letter, decode_flow_windows, decode_incident
from roadpulse.fullstack import publish_simulation
from roadpulse.settings import parse_time_ms
from simulators import IncidentSpec, SimulationConfig, TrafficSimulator
from stream.core.alerts import Subscription
from stream.core.pipeline import PipelineConfig
from stream.faust_app.compare import FLOW_KEY, RecordedMessage, embedded_reference, flow_table
from stream.faust_app.routing import MARKER_KEYS, corridor_messages, station_messages
from stream.faust_app.state import CorridorPartition, InMessage, StationPartition, partition_of

N = 4
START_MS = parse_time_ms("2026-03-03T10:00:00+08:00")


@dataclass
class Sent:
    topic: str
    key: str
    value: bytes
    timestamp_ms: int
    headers: dict = field(default_factory=dict)
    partition: int | None = None


class RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[Sent] = []

    def produce(self, topic, value, key=None, timestamp_ms=None, headers=None, partition=None) -> None:
        self.sent.append(Sent(topic, key, value, timestamp_ms, dict(headers or {}), partition))

    def flush(self, timeout_s: float = 10.0) -> int:
        return 0


@pytest.fixture(scope="module")
def scenario():
    network = singapore_network(400)  # PIE both directions, 100 stations
    roadway = network.roadways[0]
    spec = IncidentSpec(roadway.key, location_km=6.25, start_ms=START_MS + 15 * 60_000, duration_ms=20 * 60_000,
                        lanes_blocked=2)
    seg = next(s for s in roadway.segments if s.start_km <= 6.25 < s.end_km)
    config = PipelineConfig(subscriptions=(Subscription("amy", (seg.segment_id,)),))
    sim = TrafficSimulator(network, SimulationConfig(seed=5, start_ms=START_MS, duration_s=3600, n_random_incidents=0,
                                                     fault_fraction=0.0, incidents=(spec,)))
    rec = RecordingProducer()
    stats = publish_simulation(rec, network, sim, partitions=N, chaos=ChaosInjector(rate=0.01, seed=5))
    data = [RecordedMessage(s.key, s.value, s.timestamp_ms) for s in rec.sent if s.partition is None]
    ref = embedded_reference(network, config, data, stats.end_ms)
    return network, config, rec.sent, stats, ref


def run_partitioned(network, config, sent, chunk=23, restart_after=None):
    """Consume like the workers: partition 0 first (a backlog), then the others round-robin."""
    logs: dict[int, list[InMessage]] = {p: [] for p in range(N)}
    for s in sent:
        p = s.partition if s.partition is not None else partition_of(s.key, N)
        logs[p].append(InMessage(len(logs[p]), s.key, s.value, s.timestamp_ms, s.headers))
    stations = {p: StationPartition(network, config, p, N) for p in range(N)}
    corridors = {q: CorridorPartition(network, config, q, N, N) for q in range(N)}
    sw: dict[int, list[InMessage]] = {q: [] for q in range(N)}
    sw_pos = dict.fromkeys(range(N), 0)
    out = []
    schedule = [(0, i) for i in range(0, len(logs[0]), chunk)]
    rest = [[(p, i) for i in range(0, len(logs[p]), chunk)] for p in range(1, N)]
    schedule += [x for group in zip_longest(*rest) for x in group if x is not None]

    def run_corridors():
        for q in range(N):
            new = sw[q][sw_pos[q]:]
            if not new:
                continue
            sw_pos[q] = len(sw[q])
            decoded = [(m, None if m.key in MARKER_KEYS else decode_flow_windows(m.value)) for m in new]
            out.extend(corridor_messages(corridors[q].process(decoded), 0))

    for n, (p, i) in enumerate(schedule):
        batch = logs[p][i:i + chunk]
        res = stations[p].process(batch)
        for om in station_messages(p, stations[p], res, N, 0):
            if om.topic == "station_windows":
                q = om.partition
                sw[q].append(InMessage(len(sw[q]), om.key.decode(), om.value, om.timestamp_ms or 0, om.headers))
            else:
                out.append(om)
        if n % 3 == 0:
            run_corridors()
        if restart_after is not None and n == restart_after:
            # crash: rebuild every state from its snapshot; the last batch is delivered again
            stations = {k: StationPartition(network, config, k, N, s.snapshot()) for k, s in stations.items()}
            corridors = {k: CorridorPartition(network, config, k, N, N, c.snapshot()) for k, c in corridors.items()}
            assert stations[p].process(batch).skipped == len(batch)
    run_corridors()
    return stations, corridors, out


def _flows(out):
    return flow_table(decode_flow_windows(m.value) for m in out if m.topic == "flow_windows")


def _events(items):
    return sorted((i.incident_id, i.status, i.event_ms, i.segment_id, i.algorithm, i.severity) for i in items)


def _check_same_as_embedded(ref, stations, corridors, out):
    got, want = _flows(out), flow_table(ref.flow)
    assert len(want) > 0
    assert set(got["level"]) == {"lane", "station", "segment"}
    assert not got.duplicated(FLOW_KEY).any()
    assert len(got) == len(want)
    pd.testing.assert_frame_equal(got[want.columns], want, check_dtype=False)
    incidents = [decode_incident(m.value) for m in out if m.topic == "incidents"]
    assert _events(incidents) == _events(ref.incidents)
    alerts = [decode_alert(m.value) for m in out if m.topic == "alerts"]
    assert sorted((a.alert_id, a.kind, a.at_ms) for a in alerts) == sorted((a.alert_id, a.kind, a.at_ms)
                                                                            for a in ref.alerts)
    letters = Counter(decode_dead_letter(m.value).reason for m in out if m.topic == "dead_letters")
    assert letters == Counter(d.reason for d in ref.dead_letters)
    assert sum(s.totals["readings_accepted"] for s in stations.values()) == ref.readings_accepted
    assert sum(s.totals["readings_in"] for s in stations.values()) == ref.readings_in
    assert all(c.finished for c in corridors.values())


def test_partitioned_run_equals_embedded(scenario):
    network, config, sent, stats, ref = scenario
    stations, corridors, out = run_partitioned(network, config, sent)
    _check_same_as_embedded(ref, stations, corridors, out)
    # the scenario is not trivial: the staged incident was found and alerted, bad records were caught
    assert any(i.status == "open" and i.algorithm == "statistical" for i in ref.incidents)
    assert any(a.subscription_id == "amy" and a.kind == "incident_open" for a in ref.alerts)
    assert sum(stats.injected.values()) > 0 and len(ref.dead_letters) >= sum(stats.injected.values())


def test_restart_from_snapshots_with_redelivery_changes_nothing(scenario):
    network, config, sent, _, ref = scenario
    stations, corridors, out = run_partitioned(network, config, sent, chunk=31, restart_after=40)
    _check_same_as_embedded(ref, stations, corridors, out)


def test_corridor_waits_for_every_source_partition(scenario):
    network, config, _, _, _ = scenario
    q = partition_of(network.roadways[0].key, N)
    c = CorridorPartition(network, config, q, N, N)
    from stream.faust_app.state import WM_NONE
    assert c.watermark_ms == WM_NONE
    for src in range(N - 1):
        c.process([(InMessage(src, "__wm__", b"", 0, {"src": str(src).encode(), "wm": b"%d" % 10**13}), None)])
    assert c.watermark_ms == WM_NONE  # one source is still silent: nothing is final
    c.process([(InMessage(N - 1, "__wm__", b"", 0, {"src": str(N - 1).encode(), "wm": b"5"}), None)])
    assert c.watermark_ms == 5
    assert np.isfinite(c.watermark_ms)


def test_a_jump_past_the_snapshot_is_reported_not_processed(scenario):
    network, config, sent, _, _ = scenario
    msgs = [InMessage(i, s.key, s.value, s.timestamp_ms, s.headers) for i, s in
            enumerate(s for s in sent if s.partition is None and partition_of(s.key, N) == 0)]
    st = StationPartition(network, config, 0, N)
    assert st.process(msgs[:10]).gap_from is None and st.offset == 9
    res = st.process(msgs[15:20])  # offsets 10..14 were committed but never reached this state
    assert res.gap_from == 10 and st.offset == 9 and res.messages_in == 0
    assert st.process(msgs[10:20]).gap_from is None and st.offset == 19  # after seeking back
    st.accept_gap_at = 20  # a log truncated by retention: taken once the consumer confirmed it
    assert st.process(msgs[25:30]).gap_from is None and st.offset == 29
