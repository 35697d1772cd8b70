"""The message bus seen by both runtimes: a producer/consumer interface and an in-memory bus.

The embedded runtime runs on :class:`MemoryBus`; the Kafka runtime (``ingest/kafka/``)
implements the same :class:`Producer` and :class:`Consumer` protocols on a broker.
The in-memory bus models what the pipeline relies on from Kafka:

- a topic has N partitions, each an append-only log with offsets 0, 1, 2, ...;
- a message's key picks its partition by a stable hash (CRC-32 of the key bytes,
  the same across runs and processes), so all messages of one key stay in order;
  messages without a key go round-robin over the partitions;
- a consumer group remembers a committed offset per partition; a new consumer of
  the group starts at the committed offsets (or at the beginning), and
  ``commit()`` stores its current positions.

Simplification: every consumer of a group reads all partitions of its topics (no
partition assignment among group members), which is what a single-process runtime needs.
Nothing here reads the clock unless the producer leaves ``timestamp_ms`` out: then the
bus's injected ``clock_ms`` supplies it (wall clock by default), as Kafka's CreateTime would.
"""
from __future__ import annotations

import logging
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Callable, Protocol

logger = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 4


class Producer(Protocol):
    """Publishes messages to topics; Kafka and the memory bus implement it."""

    def produce(self, topic: str, value: bytes, key: bytes | str | None = None, timestamp_ms: int | None = None,
                headers: dict[str, bytes] | None = None) -> None:
        """Queue one message for ``topic``; the key picks the partition."""
        ...

    def flush(self, timeout_s: float = 10.0) -> int:
        """Wait for queued messages to be delivered; returns how many are still queued."""
        ...


class Consumer(Protocol):
    """Reads messages of a set of topics on behalf of a consumer group."""

    def poll(self, max_messages: int = 500, timeout_s: float = 0.0) -> list["Message"]:
        """Up to ``max_messages`` messages after the current positions (empty when caught up)."""
        ...

    def commit(self) -> None:
        """Store the current positions as the group's committed offsets."""
        ...

    def seek_to_beginning(self) -> None:
        """Move the positions to the first offset of every partition."""
        ...

    def close(self) -> None:
        """Stop consuming (without committing)."""
        ...


@dataclass(frozen=True, slots=True)
class Message:
    """One message as a consumer sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int
    headers: dict[str, bytes] = field(default_factory=dict)

    @property
    def key_str(self) -> str | None:
        """The key decoded as UTF-8 (station ids are text), None without a key."""
        return None if self.key is None else self.key.decode("utf-8", errors="replace")


def partition_for(key: bytes | None, partitions: int) -> int | None:
    """The partition of a key: CRC-32 of its bytes modulo the partition count (None for no key)."""
    if key is None:
        return None
    return zlib.crc32(key) % partitions


def _key_bytes(key: bytes | str | None) -> bytes | None:
    if key is None or isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, (bytearray, memoryview)):
        return bytes(key)
    raise TypeError(f"message key must be bytes, str or None, got {type(key).__name__}")


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class _Topic:
    """Partitioned append-only logs, plus the produce order for ``read_all``.

    With a byte retention, the oldest messages of a partition are dropped once it
    holds more than that many value bytes (as Kafka's ``retention.bytes``);
    offsets stay absolute (``base`` is the offset of a partition's first kept message).
    """

    def __init__(self, name: str, partitions: int, retention_bytes: int | None = None) -> None:
        self.name = name
        self.logs: list[list[Message]] = [[] for _ in range(partitions)]
        self.base: list[int] = [0] * partitions
        self.size_bytes: list[int] = [0] * partitions
        self.retention_bytes = retention_bytes
        self.in_order: list[Message] = []
        self.appended = 0
        self.next_round_robin = 0

    def end_offset(self, partition: int) -> int:
        return self.base[partition] + len(self.logs[partition])

    def trim(self, partition: int) -> None:
        """Drop the oldest messages until the partition is back under three quarters of its retention."""
        limit = self.retention_bytes
        if limit is None or self.size_bytes[partition] <= limit:
            return
        log = self.logs[partition]
        target = self.size_bytes[partition] - limit * 3 // 4
        dropped = freed = 0
        while dropped < len(log) and freed < target:
            freed += len(log[dropped].value)
            dropped += 1
        del log[:dropped]
        self.base[partition] += dropped
        self.size_bytes[partition] -= freed

    @property
    def n_partitions(self) -> int:
        return len(self.logs)


class MemoryBus:
    """An in-process bus with partitioned topics and consumer groups (see the module docstring)."""

    def __init__(self, partitions: int = DEFAULT_PARTITIONS, clock_ms: Callable[[], int] = _wall_clock_ms,
                 retention_bytes: int | None = None) -> None:
        """``retention_bytes``: per partition, as Kafka's ``retention.bytes`` (None keeps everything,
        and ``read_all`` then returns every message; with a retention it returns what is kept)."""
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {partitions}")
        self.partitions = partitions
        self.retention_bytes = retention_bytes
        self._clock_ms = clock_ms
        self._topics: dict[str, _Topic] = {}
        self._committed: dict[tuple[str, str, int], int] = {}  # (group, topic, partition) -> next offset
        self._lock = threading.Lock()

    # ---- topics -------------------------------------------------------------
    def create_topic(self, topic: str, partitions: int | None = None) -> None:
        """Create ``topic`` with its own partition count (topics are otherwise created on first use)."""
        with self._lock:
            if topic in self._topics:
                raise ValueError(f"topic {topic!r} already exists")
            self._topics[topic] = _Topic(topic, partitions or self.partitions, self.retention_bytes)

    def _topic(self, topic: str) -> _Topic:
        t = self._topics.get(topic)
        if t is None:
            t = self._topics[topic] = _Topic(topic, self.partitions, self.retention_bytes)
        return t

    def topics(self) -> list[str]:
        """Names of the topics that exist."""
        with self._lock:
            return sorted(self._topics)

    def n_partitions(self, topic: str) -> int:
        """Partition count of ``topic`` (creating it with the default count if needed)."""
        with self._lock:
            return self._topic(topic).n_partitions

    def topic_size(self, topic: str) -> int:
        """Messages ever appended to ``topic`` (0 for a topic that does not exist)."""
        with self._lock:
            t = self._topics.get(topic)
            return 0 if t is None else t.appended

    def read_all(self, topic: str) -> list[Message]:
        """Every message of ``topic`` in the order it was produced (for tests and tools)."""
        with self._lock:
            t = self._topics.get(topic)
            if t is None:
                return []
            if t.retention_bytes is None:
                return list(t.in_order)
            return sorted((m for log in t.logs for m in log), key=lambda m: (m.timestamp_ms, m.partition, m.offset))

    def end_offsets(self, topic: str) -> list[int]:
        """Next offset of each partition of ``topic``."""
        with self._lock:
            t = self._topic(topic)
            return [t.end_offset(p) for p in range(t.n_partitions)]

    def committed(self, group: str, topic: str) -> list[int]:
        """The group's committed offset for each partition of ``topic`` (0 when never committed)."""
        with self._lock:
            t = self._topic(topic)
            return [self._committed.get((group, topic, p), 0) for p in range(t.n_partitions)]

    # ---- clients --------------------------------------------------------------
    def producer(self) -> "MemoryProducer":
        """A producer appending to this bus (synchronously: flush has nothing to wait for)."""
        return MemoryProducer(self)

    def consumer(self, topics: list[str], group: str) -> "MemoryConsumer":
        """A consumer of ``topics`` starting at ``group``'s committed offsets."""
        return MemoryConsumer(self, list(topics), group)

    # ---- used by the clients ------------------------------------------------
    def _append(self, topic: str, value: bytes, key: bytes | None, timestamp_ms: int | None,
                headers: dict[str, bytes] | None) -> Message:
        with self._lock:
            t = self._topic(topic)
            partition = partition_for(key, t.n_partitions)
            if partition is None:
                partition = t.next_round_robin % t.n_partitions
                t.next_round_robin += 1
            log = t.logs[partition]
            ts = self._clock_ms() if timestamp_ms is None else int(timestamp_ms)
            msg = Message(topic, partition, t.end_offset(partition), key, value, ts, dict(headers or {}))
            log.append(msg)
            t.appended += 1
            if t.retention_bytes is None:
                t.in_order.append(msg)
            else:
                t.size_bytes[partition] += len(value)
                t.trim(partition)
            return msg

    def _read(self, topic: str, partition: int, offset: int, limit: int) -> list[Message]:
        """From ``offset`` on; a consumer behind the retention starts at the oldest kept message."""
        with self._lock:
            t = self._topic(topic)
            start = max(offset - t.base[partition], 0)
            return t.logs[partition][start:start + limit]

    def _commit(self, group: str, positions: dict[tuple[str, int], int]) -> None:
        with self._lock:
            for (topic, partition), offset in positions.items():
                self._committed[(group, topic, partition)] = offset


class MemoryProducer:
    """:class:`Producer` of a :class:`MemoryBus`."""

    def __init__(self, bus: MemoryBus) -> None:
        self._bus = bus
        self.produced = 0

    def produce(self, topic: str, value: bytes, key: bytes | str | None = None, timestamp_ms: int | None = None,
                headers: dict[str, bytes] | None = None) -> None:
        """Append one message; the key (str is UTF-8 encoded) picks the partition."""
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"message value must be bytes, got {type(value).__name__}")
        self._bus._append(topic, bytes(value), _key_bytes(key), timestamp_ms, headers)
        self.produced += 1

    def flush(self, timeout_s: float = 10.0) -> int:
        """Nothing is ever queued in memory: always 0."""
        return 0


class MemoryConsumer:
    """:class:`Consumer` of a :class:`MemoryBus`; positions start at the group's committed offsets."""

    def __init__(self, bus: MemoryBus, topics: list[str], group: str) -> None:
        if not topics:
            raise ValueError("a consumer needs at least one topic")
        self._bus = bus
        self.topics = topics
        self.group = group
        self._positions: dict[tuple[str, int], int] = {}
        for topic in topics:
            for p, offset in enumerate(bus.committed(group, topic)):
                self._positions[(topic, p)] = offset
        self._next = 0  # partition to serve first in the next poll, so none starves
        self._closed = False

    @property
    def positions(self) -> dict[tuple[str, int], int]:
        """Next offset to read, per (topic, partition)."""
        return dict(self._positions)

    def poll(self, max_messages: int = 500, timeout_s: float = 0.0) -> list[Message]:
        """Up to ``max_messages`` messages, in offset order within each partition; never blocks."""
        if self._closed:
            raise RuntimeError("consumer is closed")
        if max_messages < 1:
            return []
        self._refresh_partitions()
        parts = list(self._positions)
        out: list[Message] = []
        for j in range(len(parts)):
            topic, partition = parts[(self._next + j) % len(parts)]
            remaining = max_messages - len(out)
            if remaining <= 0:
                break
            batch = self._bus._read(topic, partition, self._positions[(topic, partition)], remaining)
            if batch:
                self._positions[(topic, partition)] = batch[-1].offset + 1
                out.extend(batch)
        self._next = (self._next + 1) % max(len(parts), 1)
        return out

    def lag(self) -> int:
        """Messages after the current positions, over all partitions."""
        self._refresh_partitions()
        total = 0
        for topic in self.topics:
            for p, end in enumerate(self._bus.end_offsets(topic)):
                total += end - self._positions[(topic, p)]
        return total

    def commit(self) -> None:
        """Store the current positions as the group's committed offsets."""
        self._bus._commit(self.group, self._positions)

    def seek_to_beginning(self) -> None:
        """Read every partition from offset 0 again (committed offsets change only on commit)."""
        for tp in self._positions:
            self._positions[tp] = 0

    def close(self) -> None:
        """Stop consuming; uncommitted positions are lost, as with Kafka."""
        self._closed = True

    def _refresh_partitions(self) -> None:
        # a topic created with more partitions after subscription
        for topic in self.topics:
            n = self._bus.n_partitions(topic)
            if (topic, n - 1) not in self._positions:
                for p, offset in enumerate(self._bus.committed(self.group, topic)):
                    self._positions.setdefault((topic, p), offset)
