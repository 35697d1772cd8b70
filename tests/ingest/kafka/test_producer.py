"""KafkaProducer and topic admin against a real broker."""
from __future__ import annotations

import json
import os
import time
import zlib

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from ingest.bus import partition_for
from ingest.kafka import DeliveryError, KafkaConsumer, KafkaProducer, ensure_topics, read_topic


def test_round_trip_keeps_per_key_order_headers_and_timestamps(kafka_bootstrap, topic_prefix):
    ensure_topics(kafka_bootstrap, topic_prefix, partitions=3, streams=("readings",))
    p = KafkaProducer(kafka_bootstrap, topic_prefix)
    keys = [f"S{i:03d}" for i in range(20)]
    n_per_key = 500
    for seq in range(n_per_key):
        for k in keys:
            p.produce("readings", f"{k}:{seq}:".encode() * 5, key=k, timestamp_ms=1_700_000_000_000 + seq,
                      headers={"seq": str(seq).encode()})
    assert p.flush(30) == 0
    assert p.delivered == p.produced == n_per_key * len(keys)
    assert p.failed == 0

    msgs = read_topic(kafka_bootstrap, topic_prefix + "readings")
    assert len(msgs) == n_per_key * len(keys)  # idempotent: nothing twice
    by_key: dict[bytes, list[int]] = {}
    for m in msgs:
        seq = int(m.value.split(b":")[1])
        assert m.headers["seq"] == str(seq).encode()
        assert m.timestamp_ms == 1_700_000_000_000 + seq
        # same partition rule as the memory bus: CRC-32 of the key
        assert m.partition == partition_for(m.key, 3) == zlib.crc32(m.key) % 3
        by_key.setdefault(m.key, []).append(seq)
    assert sorted(by_key) == sorted(k.encode() for k in keys)
    for seqs in by_key.values():
        assert seqs == list(range(n_per_key))  # in order per key


def test_producer_is_idempotent_and_compresses(kafka_bootstrap, topic_prefix):
    stats: list[dict] = []
    p = KafkaProducer(kafka_bootstrap, topic_prefix, statistics_interval_ms=200,
                      config={"stats_cb": lambda s: stats.append(json.loads(s))})
    assert p.config["enable.idempotence"] is True
    assert p.config["acks"] == "all"
    assert p.config["compression.type"] in ("lz4", "zstd")
    ensure_topics(kafka_bootstrap, topic_prefix, partitions=1, streams=("readings",))
    payload = b'{"d":["A1","A2","A3"],"t":[1,1,1]}' * 40
    for _ in range(2000):
        p.produce("readings", payload, key="k")
    assert p.flush(30) == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(s.get("txmsgs", 0) >= 2000 for s in stats):
        p.poll(0.2)
    last = [s for s in stats if s.get("txmsgs", 0) >= 2000][-1]
    # bytes on the wire (all requests, headers included) far below the raw payload bytes
    assert last["tx_bytes"] < len(payload) * 2000 / 5
    msgs = read_topic(kafka_bootstrap, topic_prefix + "readings")
    assert len(msgs) == 2000 and all(m.value == payload for m in msgs)


def test_bus_consumer_commits_group_offsets(kafka_bootstrap, topic_prefix):
    ensure_topics(kafka_bootstrap, topic_prefix, partitions=2, streams=("alerts",))
    p = KafkaProducer(kafka_bootstrap, topic_prefix)
    for i in range(100):
        p.produce("alerts", str(i).encode(), key=str(i % 7))
    p.flush()
    c = KafkaConsumer(kafka_bootstrap, ["alerts"], group=topic_prefix + "g", topic_prefix=topic_prefix)
    got = []
    while len(got) < 100:
        got += c.poll(50, timeout_s=2.0)
    assert sorted(int(m.value) for m in got) == list(range(100))
    assert all(m.topic == "alerts" for m in got)
    c.commit()
    c.close()
    for i in range(100, 110):
        p.produce("alerts", str(i).encode(), key=str(i % 7))
    p.flush()
    c2 = KafkaConsumer(kafka_bootstrap, ["alerts"], group=topic_prefix + "g", topic_prefix=topic_prefix)
    more = []
    for _ in range(40):
        more += c2.poll(50, timeout_s=0.5)
        if len(more) >= 10:
            break
    c2.close()
    assert sorted(int(m.value) for m in more) == list(range(100, 110))  # resumes after the committed offsets


def test_ensure_topics_is_idempotent_and_sets_retention(kafka_bootstrap, topic_prefix):
    first = ensure_topics(kafka_bootstrap, topic_prefix, partitions={"readings": 6, "station_windows": 6},
                          retention_ms={"readings": 3_600_000})
    again = ensure_topics(kafka_bootstrap, topic_prefix, partitions={"readings": 6, "station_windows": 6},
                          retention_ms={"readings": 3_600_000})
    assert first == again
    assert first[topic_prefix + "readings"] == 6 and first[topic_prefix + "dead_letters"] == 4
    assert set(first) == {topic_prefix + s for s in ("readings", "camera_frames", "station_windows", "flow_windows",
                                                       "incidents", "alerts", "dead_letters")}
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    res = ConfigResource("topic", topic_prefix + "readings")
    cfg = admin.describe_configs([res])[res].result()
    assert cfg["retention.ms"].value == "3600000"
    with pytest.raises(Exception, match="partitions"):
        ensure_topics(kafka_bootstrap, topic_prefix, partitions=3)


def test_delivery_failures_are_counted_and_raised(kafka_bootstrap, topic_prefix):
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    name = topic_prefix + "alerts"
    admin.create_topics([NewTopic(name, 1, 1, config={"max.message.bytes": "2000"})])[name].result()
    ensure_topics(kafka_bootstrap, topic_prefix, partitions=1, streams=("alerts",))  # exists: kept as is
    p = KafkaProducer(kafka_bootstrap, topic_prefix, message_timeout_ms=5000)
    p.produce("alerts", os.urandom(50_000), key="too-big")  # the broker rejects it (topic max.message.bytes)
    with pytest.raises(DeliveryError) as info:
        p.flush(15)
    assert p.failed == 1
    assert info.value.errors[0].key == b"too-big"
    assert "too large" in info.value.errors[0].error.lower()
    p.produce("alerts", b"fine", key="ok")  # the failure was reported once; the producer goes on
    assert p.flush(15) == 0
    assert p.delivered == 1
