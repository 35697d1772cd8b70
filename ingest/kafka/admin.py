"""Topic layout of the Kafka runtime, created idempotently.

Streams (bus names; Kafka names carry the prefix, ``roadpulse.`` by default):

| stream | key | job |
|---|---|---|
| readings | station id | encoded readings, one station (and interval) per message |
| camera_frames | camera id | camera detections |
| station_windows | roadway key | internal repartition topic: station windows for the corridor stage |
| flow_windows | level | lane / station / segment flow windows (results) |
| incidents | roadway key | incident lifecycle events |
| alerts | subscription id | commuter alerts |
| dead_letters | reason | rejected records with their reason |

``readings`` and ``station_windows`` must have the same partition count as the
faust app's ``topic_partitions`` (its tables are co-partitioned with them).
"""
from __future__ import annotations

import logging
import time
from typing import Mapping

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from ingest.kafka.producer import DEFAULT_PREFIX

log = logging.getLogger(__name__)

STREAMS = ("readings", "camera_frames", "station_windows", "flow_windows", "incidents", "alerts", "dead_letters")
DEFAULT_PARTITIONS = 4
DEFAULT_RETENTION_MS: dict[str, int] = {
    "readings": 24 * 3_600_000,
    "camera_frames": 3_600_000,
    "station_windows": 6 * 3_600_000,
    "flow_windows": 7 * 86_400_000,
    "incidents": 30 * 86_400_000,
    "alerts": 7 * 86_400_000,
    "dead_letters": 14 * 86_400_000,
}
MAX_MESSAGE_BYTES = 8_000_000


class TopicError(RuntimeError):
    """A topic that exists with an incompatible layout, or could not be created."""


def admin_client(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def ensure_topics(bootstrap: str, prefix: str = DEFAULT_PREFIX, partitions: Mapping[str, int] | int = DEFAULT_PARTITIONS,
                  retention_ms: Mapping[str, int] | None = None, streams: tuple[str, ...] = STREAMS,
                  timeout_s: float = 30.0) -> dict[str, int]:
    """Create missing topics; returns {kafka topic name: partition count}.

    Idempotent: existing topics are kept (their retention is brought to the
    configured value); an existing topic with a different partition count
    raises :class:`TopicError`, because keyed state would be split wrongly.
    """
    counts = {s: (partitions if isinstance(partitions, int) else partitions.get(s, DEFAULT_PARTITIONS))
              for s in streams}
    retention = dict(DEFAULT_RETENTION_MS)
    retention.update(retention_ms or {})
    admin = admin_client(bootstrap)
    existing = admin.list_topics(timeout=timeout_s).topics
    wanted = {prefix + s: s for s in streams}
    new = [NewTopic(name, num_partitions=counts[s], replication_factor=1,
                    config={"retention.ms": str(retention[s]), "max.message.bytes": str(MAX_MESSAGE_BYTES)})
           for name, s in wanted.items() if name not in existing]
    if new:
        for name, fut in admin.create_topics(new, operation_timeout=timeout_s).items():
            try:
                fut.result()
                log.info("created topic %s", name)
            except KafkaException as exc:
                if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                    raise TopicError(f"cannot create {name}: {exc}") from exc
    for name, s in wanted.items():
        meta = existing.get(name)
        if meta is not None and len(meta.partitions) != counts[s]:
            raise TopicError(f"topic {name} has {len(meta.partitions)} partitions, configured {counts[s]}; "
                             "use another --topic-prefix or delete the topic")
    _set_retention(admin, {name: retention[s] for name, s in wanted.items() if name in existing}, timeout_s)
    _wait_for_metadata(admin, list(wanted), timeout_s)
    return {name: counts[s] for name, s in wanted.items()}


def _set_retention(admin: AdminClient, retention: dict[str, int], timeout_s: float) -> None:
    if not retention:
        return
    resources = [ConfigResource("topic", name, incremental_configs=[
        ConfigEntry("retention.ms", str(ms), incremental_operation=AlterConfigOpType.SET)])
        for name, ms in retention.items()]
    for fut in admin.incremental_alter_configs(resources, request_timeout=timeout_s).values():
        fut.result()


def _wait_for_metadata(admin: AdminClient, names: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        topics = admin.list_topics(timeout=timeout_s).topics
        missing = [n for n in names if n not in topics or topics[n].error is not None]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TopicError(f"topics not visible after {timeout_s}s: {missing}")
        time.sleep(0.1)


def delete_topics(bootstrap: str, prefix: str, timeout_s: float = 30.0) -> list[str]:
    """Delete every topic whose name starts with ``prefix`` (tests, benchmarks); returns their names."""
    admin = admin_client(bootstrap)
    names = [t for t in admin.list_topics(timeout=timeout_s).topics if t.startswith(prefix)]
    if names:
        for fut in admin.delete_topics(names, operation_timeout=timeout_s).values():
            try:
                fut.result()
            except KafkaException as exc:
                log.warning("delete topic: %s", exc)
    return names


def check_broker(bootstrap: str, timeout_s: float = 5.0) -> int:
    """Number of brokers answering a metadata request; raises ``KafkaException`` when none does."""
    md = admin_client(bootstrap).list_topics(timeout=timeout_s)
    return len(md.brokers)
