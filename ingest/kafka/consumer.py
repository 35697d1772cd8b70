"""Kafka consumers on confluent-kafka: the :class:`ingest.bus.Consumer` protocol and read-back helpers.

:class:`KafkaConsumer` is the bus consumer (manual commits, group offsets);
:func:`read_topic` reads a whole topic up to its current end, for tests,
benchmarks and tools that check what the pipeline wrote.
"""
from __future__ import annotations

import logging
import time
import uuid
from typing import Any, Iterable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from ingest.bus import Message
from ingest.kafka.producer import DEFAULT_PREFIX, topic_name

log = logging.getLogger(__name__)


def _to_message(m: Any, prefix: str) -> Message:
    _, ts = m.timestamp()
    name = m.topic()
    return Message(name[len(prefix):] if name.startswith(prefix) else name, m.partition(), m.offset(), m.key(),
                   m.value(), int(ts), dict(m.headers() or []))


class KafkaConsumer:
    """:class:`ingest.bus.Consumer` of bus streams on Kafka (no auto-commit; ``commit()`` stores positions)."""

    def __init__(self, bootstrap: str, topics: list[str], group: str, topic_prefix: str = DEFAULT_PREFIX,
                 **overrides: Any) -> None:
        if not topics:
            raise ValueError("a consumer needs at least one topic")
        conf = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                "auto.offset.reset": "earliest", "fetch.min.bytes": 1, "queued.max.messages.kbytes": 262_144}
        conf.update({k.replace("_", "."): v for k, v in overrides.items()})
        self.prefix = topic_prefix
        self._consumer = Consumer(conf)
        self._consumer.subscribe([topic_name(topic_prefix, t) for t in topics])
        self._closed = False

    def poll(self, max_messages: int = 500, timeout_s: float = 0.0) -> list[Message]:
        """Up to ``max_messages`` messages; waits at most ``timeout_s`` for the first."""
        if self._closed:
            raise RuntimeError("consumer is closed")
        raw = self._consumer.consume(max_messages, timeout_s)
        out = []
        for m in raw:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(err)
            out.append(_to_message(m, self.prefix))
        return out

    def commit(self) -> None:
        """Synchronously store the current positions as the group's offsets."""
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                raise

    def seek_to_beginning(self) -> None:
        """Read the assigned partitions from their first offset again."""
        for tp in self._consumer.assignment():
            self._consumer.seek(TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING))

    def close(self) -> None:
        if not self._closed:
            self._consumer.close()
            self._closed = True


def end_offsets(bootstrap: str, topics: Iterable[str], timeout_s: float = 10.0) -> dict[tuple[str, int], int]:
    """High watermark of every partition of the given Kafka topics (full names)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"roadpulse-probe-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False})
    try:
        out = {}
        md = c.list_topics(timeout=timeout_s)
        for t in topics:
            meta = md.topics.get(t)
            if meta is None or meta.error is not None:
                raise KafkaException(f"topic {t} does not exist")
            for p in meta.partitions:
                _, high = c.get_watermark_offsets(TopicPartition(t, p), timeout=timeout_s)
                out[(t, p)] = high
        return out
    finally:
        c.close()


def read_topic(bootstrap: str, topic: str, timeout_s: float = 30.0, batch: int = 10_000,
               until: dict[tuple[str, int], int] | None = None) -> list[Message]:
    """Every message of one Kafka topic (full name) from the beginning up to its end now.

    Reads each partition from offset 0 to its high watermark at call time (or
    ``until``); raises ``TimeoutError`` if that end is not reached in time.
    Messages come partition by partition, in offset order within a partition.
    """
    ends = until or end_offsets(bootstrap, [topic], timeout_s)
    ends = {tp: off for tp, off in ends.items() if tp[0] == topic}
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"roadpulse-read-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False, "enable.partition.eof": False})
    todo = {tp: off for tp, off in ends.items() if off > 0}
    out: list[Message] = []
    try:
        if not todo:
            return out
        c.assign([TopicPartition(t, p, 0) for (t, p) in todo])
        pos = {tp: 0 for tp in todo}
        deadline = time.monotonic() + timeout_s
        while any(pos[tp] < todo[tp] for tp in todo):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: read {pos} of {todo} within {timeout_s}s")
            for m in c.consume(batch, 0.5):
                if m.error() is not None:
                    raise KafkaException(m.error())
                tp = (m.topic(), m.partition())
                if m.offset() < todo[tp]:
                    out.append(_to_message(m, ""))
                pos[tp] = max(pos[tp], m.offset() + 1)
        out.sort(key=lambda m: (m.partition, m.offset))
        return out
    finally:
        c.close()
