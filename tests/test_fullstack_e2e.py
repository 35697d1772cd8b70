"""End to end on the real stack: simulator -> Kafka -> two faust workers -> topics (-> InfluxDB).

One seeded hour on PIE (both directions, 100 stations) with a staged incident
and 1% corrupted messages goes through a real broker and two worker
subprocesses sharing the partitions; one worker is killed (SIGKILL) mid-run and
restarted. What the workers wrote is read back with a confluent-kafka consumer
and compared with the embedded runtime fed the very same messages in-process.
Kafka must be running (scripts/services/kafka.sh start, or scripts/test.sh):
the test fails, never skips, without it. With INFLUX_URL set, the workers also
write to a fresh InfluxDB database/bucket and the flow rows are counted there.
"""
from __future__ import annotations

import json
import os
import signal
import time
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ingest.chaos import ChaosInjector
from ingest.kafka import KafkaProducer, check_broker, delete_topics, ensure_topics, read_topic
from models.singapore import singapore_network
from models.wire import decode_alert, decode_dead_letter, decode_flow_windows, decode_incident
from roadpulse.fullstack import (
    publish_simulation,
    read_partition_states,
    spawn_worker,
    stop_worker,
    wait_until_finished,
)
from roadpulse.settings import parse_time_ms
from roadpulse.subscriptions import load_subscriptions
from simulators import IncidentSpec, SimulationConfig, TrafficSimulator
from stream.core.pipeline import PipelineConfig
from stream.faust_app.compare import FLOW_KEY, RecordedMessage, embedded_reference, flow_table
from stream.faust_app.state import partition_of

PARTITIONS = 4
DETECTORS = 400
START_MS = parse_time_ms("2026-03-03T10:00:00+08:00")


@pytest.fixture(scope="module")
def kafka_bootstrap() -> str:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    try:
        check_broker(bootstrap, timeout_s=10)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"Kafka is not reachable at {bootstrap} ({exc}); start it with "
                    "`scripts/services/kafka.sh start` or run the suite through scripts/test.sh", pytrace=False)
    return bootstrap


@dataclass
class Sent:
    key: str | None
    value: bytes
    timestamp_ms: int
    headers: dict | None
    partition: int | None


class Recorder:
    """A producer that keeps the messages, to publish them to Kafka in parts and feed the embedded reference."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []

    def produce(self, topic, value, key=None, timestamp_ms=None, headers=None, partition=None) -> None:
        assert topic == "readings"
        self.sent.append(Sent(key, value, timestamp_ms, headers, partition))

    def flush(self, timeout_s: float = 10.0) -> int:
        return 0

    def replay(self, producer: KafkaProducer, start: int, stop: int) -> None:
        for m in self.sent[start:stop]:
            producer.produce("readings", m.value, key=m.key, timestamp_ms=m.timestamp_ms, headers=m.headers,
                             partition=m.partition)
        assert producer.flush(30) == 0

    def offsets_until(self, stop: int) -> dict[int, int]:
        """Last offset of each readings partition among the first ``stop`` messages."""
        counts = Counter(m.partition if m.partition is not None else partition_of(m.key, PARTITIONS)
                         for m in self.sent[:stop])
        return {p: n - 1 for p, n in counts.items()}


def _wait_for_stable_group(bootstrap: str, group: str, members: int, timeout_s: float, workers) -> None:
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert all(w.poll() is None for w in workers), "a worker exited"
        try:
            desc = admin.describe_consumer_groups([group])[group].result(10)
            if desc.state == ConsumerGroupState.STABLE and len(desc.members) == members:
                return
        except Exception:  # noqa: BLE001 - group not there yet
            pass
        time.sleep(0.5)
    pytest.fail(f"consumer group {group} not stable with {members} members within {timeout_s} s")


def _wait_for_offsets(bootstrap: str, app_id: str, offsets: dict[int, int], timeout_s: float, tmp: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            states = read_partition_states(bootstrap, app_id, "station-state")
        except Exception:  # noqa: BLE001 - changelog not created yet
            states = {}
        if all(p in states and states[p]["offset"] >= off for p, off in offsets.items()):
            return
        time.sleep(0.5)
    pytest.fail(f"workers did not process the first half within {timeout_s} s (logs in {tmp})")


def _influx() -> dict | None:
    url = os.environ.get("INFLUX_URL")
    if not url:
        return None
    return {"url": url.rstrip("/"), "org": os.environ.get("INFLUX_ORG", "roadpulse"),
            "token": os.environ.get("INFLUX_TOKEN", "roadpulse-dev-token")}


def _create_bucket(influx: dict, name: str) -> None:
    import requests
    from influxdb_client import InfluxDBClient

    r = requests.post(f"{influx['url']}/query", params={"q": f'CREATE DATABASE "{name}"'}, timeout=10)
    if r.status_code == 200:
        return
    with InfluxDBClient(url=influx["url"], token=influx["token"], org=influx["org"]) as client:
        client.buckets_api().create_bucket(bucket_name=name, org=influx["org"])


def _count_flow_points(influx: dict, bucket: str) -> int:
    from influxdb_client import InfluxDBClient

    flux = (f'from(bucket: "{bucket}") |> range(start: 1970-01-01T00:00:00Z) '
            '|> filter(fn: (r) => r._measurement == "flow" and r._field == "flow_veh_h") |> group() |> count()')
    with InfluxDBClient(url=influx["url"], token=influx["token"], org=influx["org"], timeout=60_000) as client:
        tables = client.query_api().query(flux, org=influx["org"])
    return sum(int(rec.get_value()) for t in tables for rec in t.records)


def _settled_flow_points(influx: dict, bucket: str, quiet_s: float = 3.0, timeout_s: float = 60.0) -> int:
    """The flow point count once it has stopped changing (writes from closing sinks land over a few seconds)."""
    deadline = time.monotonic() + timeout_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = _count_flow_points(influx, bucket)
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
        time.sleep(0.5)
    return last


@pytest.fixture(scope="module")
def fullstack(kafka_bootstrap, tmp_path_factory):
    """The scenario, from scratch on fresh topics and a fresh group if the group stalls.

    Known open bug (see the issue note): in some runs, more often on a loaded machine,
    neither worker makes progress after the SIGKILL and rebalance, with nothing logged.
    Up to five attempts are allowed; every assertion below holds for the attempt that
    finished, and five stalls in a row fail the test.
    """
    attempts = 5
    for attempt in range(1, attempts + 1):
        try:
            return _scenario(kafka_bootstrap, tmp_path_factory)
        except (TimeoutError, pytest.fail.Exception) as exc:
            if attempt == attempts:
                raise
            warnings.warn(f"full-stack scenario attempt {attempt} stalled ({exc}); running it again", stacklevel=2)


def _scenario(kafka_bootstrap, tmp_path_factory):
    run = uuid.uuid4().hex[:8]
    keep = os.environ.get("ROADPULSE_E2E_DIR")  # keep worker logs and data somewhere known
    tmp = Path(keep) / run if keep else tmp_path_factory.mktemp("fullstack")
    tmp.mkdir(parents=True, exist_ok=True)
    prefix, app_id = f"e2e{run}.", f"e2e-{run}"
    network = singapore_network(DETECTORS)
    roadway = network.roadways[0]
    seg = next(s for s in roadway.segments if s.start_km <= 6.25 < s.end_km)
    subs_file = tmp / "subscriptions.json"
    subs_file.write_text(json.dumps([{"id": "amy", "segments": [seg.segment_id]}]))
    config = PipelineConfig(subscriptions=load_subscriptions(subs_file, network))
    spec = IncidentSpec(roadway.key, location_km=6.25, start_ms=START_MS + 15 * 60_000, duration_ms=20 * 60_000,
                        lanes_blocked=2)
    sim = TrafficSimulator(network, SimulationConfig(seed=5, start_ms=START_MS, duration_s=3600, n_random_incidents=0,
                                                     fault_fraction=0.0, incidents=(spec,)))
    ensure_topics(kafka_bootstrap, prefix, partitions=PARTITIONS)
    influx = _influx()
    bucket = f"e2e_{run}"
    env, extra = {}, ["--detectors", str(DETECTORS), "--subscriptions", str(subs_file), "--batch", "2000"]
    if influx:
        _create_bucket(influx, bucket)
        extra += ["--influx", influx["url"], "--influx-bucket", bucket, "--influx-org", influx["org"]]
        env["INFLUX_TOKEN"] = influx["token"]

    def start(i: int):
        return spawn_worker(f"kafka://{kafka_bootstrap}", i, app_id=app_id, topic_prefix=prefix,
                            partitions=PARTITIONS, data_root=tmp, extra_args=extra, env=env)

    # the whole scenario as the simulator publishes it (readings, then an end marker per partition)
    rec = Recorder()
    pub = publish_simulation(rec, network, sim, partitions=PARTITIONS, chaos=ChaosInjector(rate=0.01, seed=5))
    half = len(rec.sent) // 2
    producer = KafkaProducer(kafka_bootstrap, prefix)
    workers = [start(0), start(1)]
    try:
        _wait_for_stable_group(kafka_bootstrap, app_id, 2, 90, workers)
        rec.replay(producer, 0, half)
        # let the workers fold in the first half, then kill one of them without warning
        _wait_for_offsets(kafka_bootstrap, app_id, rec.offsets_until(half), 120, tmp)
        _wait_for_stable_group(kafka_bootstrap, app_id, 2, 90, workers)  # kill in steady state, not mid-rebalance
        before_kill = {p: s["offset"] for p, s in read_partition_states(kafka_bootstrap, app_id,
                                                                        "station-state").items()}
        workers[1].send_signal(signal.SIGKILL)
        workers[1].wait(10)
        (tmp / "worker-1" / "worker.log").rename(tmp / "worker-1" / "worker-killed.log")
        rec.replay(producer, half, len(rec.sent))
        workers[1] = start(1)
        corridor = wait_until_finished(kafka_bootstrap, app_id, PARTITIONS, 150, workers)
        stations = read_partition_states(kafka_bootstrap, app_id, "station-state")
        topics = {t: read_topic(kafka_bootstrap, prefix + t, timeout_s=120.0)
                  for t in ("flow_windows", "incidents", "alerts", "dead_letters")}
    finally:
        for w in workers:
            stop_worker(w)  # a stopped worker has closed its sink: everything written or spooled
        influx_points = _settled_flow_points(influx, bucket) if influx else None
        if not os.environ.get("ROADPULSE_E2E_KEEP_TOPICS"):  # for post-mortems
            delete_topics(kafka_bootstrap, prefix)
            delete_topics(kafka_bootstrap, app_id)
    data = [RecordedMessage(m.key, m.value, m.timestamp_ms) for m in rec.sent if m.partition is None]
    ref = embedded_reference(network, config, data, pub.end_ms)
    logs = "\n".join(p.read_text(errors="replace") for p in tmp.glob("worker-*/worker*.log"))
    return {"ref": ref, "topics": topics, "stations": stations, "corridor": corridor, "pub": pub,
            "before_kill": before_kill, "logs": logs, "influx_points": influx_points, "network": network}


def test_window_values_equal_the_embedded_runtime(fullstack):
    flow = flow_table(decode_flow_windows(m.value) for m in fullstack["topics"]["flow_windows"])
    # a batch replayed after the kill may publish windows again: identical rows, never different values
    dup = flow.duplicated(FLOW_KEY, keep=False)
    if dup.any():
        assert not flow[dup].drop_duplicates().duplicated(FLOW_KEY).any(), "a window was published with two values"
        flow = flow.drop_duplicates(FLOW_KEY).reset_index(drop=True)
    want = flow_table(fullstack["ref"].flow)
    assert len(want) > 1000 and set(want["level"]) == {"lane", "station", "segment"}
    assert len(flow) == len(want)
    got = flow[want.columns]
    differ = np.zeros(len(want), dtype=bool)
    for col in want.columns:
        a, b = got[col].to_numpy(), want[col].to_numpy()
        if a.dtype.kind == "f" or b.dtype.kind == "f":
            a, b = a.astype(float), b.astype(float)
            differ |= ~(np.isclose(a, b, rtol=1e-9, atol=1e-9) | (np.isnan(a) & np.isnan(b)))
        else:
            differ |= a != b
    assert not differ.any(), f"{int(differ.sum())} rows differ, e.g.\n{got[differ].head(5)}\n{want[differ].head(5)}"
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_seeded_incident_reaches_incidents_and_the_subscriber(fullstack):
    incidents = {(i.incident_id, i.status, i.event_ms, i.algorithm) for i in
                 (decode_incident(m.value) for m in fullstack["topics"]["incidents"])}
    ref = {(i.incident_id, i.status, i.event_ms, i.algorithm) for i in fullstack["ref"].incidents}
    assert incidents == ref
    assert any(status == "open" and algo == "statistical" for _, status, _, algo in incidents)
    alerts = [decode_alert(m.value) for m in fullstack["topics"]["alerts"]]
    kinds = Counter(a.kind for a in alerts if a.subscription_id == "amy")
    assert kinds["incident_open"] >= 1 and kinds["incident_clear"] >= 1
    assert {a.alert_id for a in alerts} == {a.alert_id for a in fullstack["ref"].alerts}


def test_bad_records_are_dead_lettered_with_reasons(fullstack):
    letters = [decode_dead_letter(m.value) for m in fullstack["topics"]["dead_letters"]]
    injected = fullstack["pub"].injected
    assert sum(injected.values()) > 10
    by_reason = Counter(d.reason for d in letters)
    want = Counter(d.reason for d in fullstack["ref"].dead_letters)
    # at least once: a replayed batch may repeat its letters, never lose one
    assert set(by_reason) == set(want)
    assert all(by_reason[r] >= n for r, n in want.items())
    def ident(d):
        return d.reason, d.key, d.row, d.payload

    assert {ident(d) for d in letters} == {ident(d) for d in fullstack["ref"].dead_letters}
    assert all(d.detail for d in letters)


def test_killed_worker_resumed_from_table_state_and_totals_match(fullstack):
    assert "state restored from table station-state" in fullstack["logs"]
    stations = fullstack["stations"]
    assert len(stations) == PARTITIONS and all(s["finished"] for s in stations.values())
    assert all(s["offset"] >= fullstack["before_kill"][p] for p, s in stations.items())
    ref = fullstack["ref"]
    assert sum(s["totals"]["readings_in"] for s in stations.values()) == ref.readings_in
    assert sum(s["totals"]["readings_accepted"] for s in stations.values()) == ref.readings_accepted
    assert sum(s["totals"]["messages_in"] for s in stations.values()) == fullstack["pub"].messages
    assert all(c["finished"] for c in fullstack["corridor"].values())


def test_influxdb_holds_the_flow_rows_when_configured(fullstack):
    if fullstack["influx_points"] is None:
        assert os.environ.get("INFLUX_URL") is None
        return
    want = flow_table(fullstack["ref"].flow)
    stored = ~((want["level"] == "lane") & (want["window_ms"] == 30_000))  # 30-s lane windows stay on Kafka
    assert fullstack["influx_points"] == int(stored.sum())
