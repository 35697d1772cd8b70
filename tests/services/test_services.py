"""Round trips through the real Kafka and InfluxDB started by scripts/services/up.sh.

These tests need the services: they FAIL (never skip) when they cannot reach them.
Connection settings come from the environment (KAFKA_BOOTSTRAP, INFLUX_URL,
INFLUX_ORG, INFLUX_TOKEN, INFLUX_BUCKET), else from $ROADPULSE_RUN/services.env
(default ~/.cache/roadpulse/run/services.env), which up.sh writes.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

HINT = "start them with scripts/services/up.sh (stop with scripts/services/down.sh)"


def _env_file() -> Path:
    run = os.environ.get("ROADPULSE_RUN") or str(Path.home() / ".cache" / "roadpulse" / "run")
    return Path(run) / "services.env"


def _settings() -> dict[str, str]:
    values: dict[str, str] = {}
    path = _env_file()
    if path.is_file():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
    for key in ("KAFKA_BOOTSTRAP", "INFLUX_URL", "INFLUX_ORG", "INFLUX_TOKEN", "INFLUX_BUCKET"):
        if os.environ.get(key):
            values[key] = os.environ[key]
    return values


def _require(settings: dict[str, str], key: str) -> str:
    if not settings.get(key):
        pytest.fail(f"{key} is not set and not in {_env_file()}: {HINT}", pytrace=False)
    return settings[key]


def _kafka_bootstrap() -> str:
    from confluent_kafka.admin import AdminClient

    bootstrap = _require(_settings(), "KAFKA_BOOTSTRAP")
    brokers, error = {}, None
    try:
        brokers = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).brokers
    except Exception as exc:  # KafkaException on timeout
        error = exc
    if error is not None:  # failed outside the except block: no chained traceback
        pytest.fail(f"Kafka is not reachable at {bootstrap} ({error}): {HINT}", pytrace=False)
    if not brokers:
        pytest.fail(f"Kafka at {bootstrap} reports no brokers: {HINT}", pytrace=False)
    return bootstrap


def _influx_client():
    from influxdb_client import InfluxDBClient

    settings = _settings()
    url = _require(settings, "INFLUX_URL")
    bucket = _require(settings, "INFLUX_BUCKET")
    client = InfluxDBClient(
        url=url,
        token=settings.get("INFLUX_TOKEN", "roadpulse-dev-token"),
        org=settings.get("INFLUX_ORG", "roadpulse"),
        timeout=10_000,
    )
    health, error = {}, None
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=10) as resp:
            health = json.load(resp)
    except Exception as exc:
        error = exc
    if error is not None:
        client.close()
        pytest.fail(f"InfluxDB is not reachable at {url} ({error}): {HINT}", pytrace=False)
    if health.get("status") != "pass":
        client.close()
        pytest.fail(f"InfluxDB at {url} is not healthy ({health}): {HINT}", pytrace=False)
    return client, bucket


def test_kafka_produce_consume_roundtrip():
    from confluent_kafka import Consumer, KafkaError, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    kafka_bootstrap = _kafka_bootstrap()
    topic = f"rp-services-test-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(timeout=30)
    try:
        sent = {f"sensor-{i}".encode(): f"reading-{i}".encode() for i in range(10)}
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all", "enable.idempotence": True})
        errors: list[KafkaError] = []
        for key, value in sent.items():
            producer.produce(topic, key=key, value=value, on_delivery=lambda err, _msg: err and errors.append(err))
        assert producer.flush(30) == 0, "messages still queued after 30 s"
        assert not errors, f"delivery failed: {errors}"

        consumer = Consumer(
            {
                "bootstrap.servers": kafka_bootstrap,
                "group.id": f"rp-services-test-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        received: dict[bytes, bytes] = {}
        partitions: set[int] = set()
        try:
            consumer.subscribe([topic])
            deadline = time.monotonic() + 30
            while len(received) < len(sent) and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                assert msg.error() is None, msg.error()
                received[msg.key()] = msg.value()
                partitions.add(msg.partition())
        finally:
            consumer.close()
        assert received == sent
        assert partitions == {0, 1}, "keys should spread over both partitions"
    finally:
        admin.delete_topics([topic])[topic].result(timeout=30)


def test_influx_sync_write_then_flux_query():
    client, bucket = _influx_client()
    try:
        _influx_roundtrip(client, bucket)
    finally:
        client.close()


def _influx_roundtrip(client, bucket: str) -> None:
    from influxdb_client import Point, WritePrecision
    from influxdb_client.client.write_api import SYNCHRONOUS

    measurement = f"rp_services_test_{uuid.uuid4().hex[:12]}"
    now = time.time_ns()
    points = [
        Point(measurement)
        .tag("sensor", f"s{i % 2}")
        .field("speed_kmh", 40.0 + i)
        .field("count", i)
        .time(now - (5 - i) * 1_000_000_000, WritePrecision.NS)
        for i in range(5)
    ]
    with client.write_api(write_options=SYNCHRONOUS) as write_api:
        write_api.write(bucket=bucket, record=points)

    flux = f"""
from(bucket: "{bucket}")
  |> range(start: -1h)
  |> filter(fn: (r) => r._measurement == "{measurement}" and r._field == "speed_kmh")
  |> group()
  |> sort(columns: ["_time"])
"""
    tables = client.query_api().query(flux)
    rows = [(r.values["sensor"], r.get_value()) for table in tables for r in table.records]
    assert rows == [(f"s{i % 2}", 40.0 + i) for i in range(5)]

    mean = client.query_api().query(
        f'from(bucket: "{bucket}") |> range(start: -1h) '
        f'|> filter(fn: (r) => r._measurement == "{measurement}" and r._field == "count") '
        f"|> group() |> mean()"
    )
    assert [r.get_value() for t in mean for r in t.records] == [2.0]
