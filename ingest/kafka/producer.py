"""A Kafka :class:`ingest.bus.Producer` on confluent-kafka (librdkafka).

Defaults aim at throughput without giving up delivery guarantees:

- ``enable.idempotence=true`` and ``acks=all``: no duplicates from retries,
  per-partition order kept;
- ``compression.type=lz4`` (faust/aiokafka consumers decompress it through
  cramjam, a declared dependency);
- ``linger.ms=20`` and ``batch.size=1 MB`` so librdkafka fills large batches;
- ``partitioner=consistent_random``: a key's partition is CRC-32 of its bytes
  modulo the partition count, the same rule as :class:`ingest.bus.MemoryBus`
  (``ingest.bus.partition_for``), so both runtimes put a station on the same
  partition and the faust app can compute which roadways a partition holds.

Delivery failures are never silent: the delivery callback counts every failed
message and keeps the first errors; :meth:`KafkaProducer.flush` (and the next
``produce`` when ``raise_on_error``) raises :class:`DeliveryError` once any
failure has been seen.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import Producer as _ConfluentProducer

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "roadpulse."
MAX_KEPT_ERRORS = 100

THROUGHPUT_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "compression.type": "lz4",
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "batch.num.messages": 100_000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "message.max.bytes": 8_000_000,
    "partitioner": "consistent_random",
}


class DeliveryError(RuntimeError):
    """Messages the broker did not accept (after librdkafka's retries)."""

    def __init__(self, failed: int, errors: list["FailedDelivery"]) -> None:
        first = "; ".join(str(e) for e in errors[:3])
        super().__init__(f"{failed} message(s) failed delivery: {first}")
        self.failed = failed
        self.errors = errors


@dataclass(frozen=True)
class FailedDelivery:
    """One message the broker rejected, with librdkafka's reason."""

    topic: str
    partition: int
    key: bytes | None
    error: str

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}] key={self.key!r}: {self.error}"


def topic_name(prefix: str, topic: str) -> str:
    """The Kafka topic of a bus stream name (``readings`` -> ``roadpulse.readings``)."""
    return topic if topic.startswith(prefix) else prefix + topic


class KafkaProducer:
    """Idempotent, compressed, batched producer implementing :class:`ingest.bus.Producer`.

    ``produce`` takes bus stream names (``readings``) and prefixes them;
    ``overrides`` are librdkafka settings with underscores for dots
    (``linger_ms=5``) or a ``config`` dict with the dotted names.
    """

    def __init__(self, bootstrap: str, topic_prefix: str = DEFAULT_PREFIX, *, raise_on_error: bool = True,
                 config: dict[str, Any] | None = None, **overrides: Any) -> None:
        conf = dict(THROUGHPUT_DEFAULTS)
        conf.update({k.replace("_", "."): v for k, v in overrides.items()})
        conf.update(config or {})
        conf["bootstrap.servers"] = bootstrap
        conf.setdefault("error_cb", self._on_client_error)
        self.config = {k: v for k, v in conf.items() if not callable(v)}
        self.topic_prefix = topic_prefix
        self.raise_on_error = raise_on_error
        self._producer = _ConfluentProducer(conf)
        self.produced = 0
        self.delivered = 0
        self.failed = 0
        self.failures_by_topic: Counter[str] = Counter()
        self.errors: list[FailedDelivery] = []
        self.client_errors: list[str] = []
        self._reported = 0

    # ---- Producer protocol ---------------------------------------------------
    def produce(self, topic: str, value: bytes, key: bytes | str | None = None, timestamp_ms: int | None = None,
                headers: dict[str, bytes] | None = None, partition: int | None = None) -> None:
        """Queue one message; waits (serving delivery reports) while librdkafka's queue is full.

        ``partition`` (an extension of the bus protocol) bypasses the key's partition,
        e.g. for end-of-stream markers sent to every partition.
        """
        if self.raise_on_error:
            self._raise_new_failures()
        kwargs: dict[str, Any] = {"on_delivery": self._on_delivery}
        if key is not None:
            kwargs["key"] = key
        if timestamp_ms is not None:
            kwargs["timestamp"] = int(timestamp_ms)
        if headers:
            kwargs["headers"] = list(headers.items())
        if partition is not None:
            kwargs["partition"] = int(partition)
        name = topic_name(self.topic_prefix, topic)
        while True:
            try:
                self._producer.produce(name, value, **kwargs)
                break
            except BufferError:  # local queue full: let librdkafka deliver, then retry
                self._producer.poll(0.05)
        self.produced += 1
        if self.produced % 10_000 == 0:
            self._producer.poll(0)

    def flush(self, timeout_s: float = 10.0) -> int:
        """Wait up to ``timeout_s`` for delivery; returns messages still queued.

        Raises :class:`DeliveryError` if any message failed since the last report.
        """
        remaining = self._producer.flush(timeout_s)
        self._raise_new_failures()
        return remaining

    # ---- extras ----------------------------------------------------------------
    def poll(self, timeout_s: float = 0.0) -> int:
        """Serve delivery reports; returns how many were served."""
        return self._producer.poll(timeout_s)

    def __len__(self) -> int:
        """Messages queued or in flight."""
        return len(self._producer)

    def close(self, timeout_s: float = 30.0) -> int:
        """Flush what is queued (raising on failures); returns messages left undelivered."""
        return self.flush(timeout_s)

    def __enter__(self) -> "KafkaProducer":
        return self

    def __exit__(self, *exc: object) -> None:
        left = self._producer.flush(30.0)
        if left:
            log.error("%d message(s) still queued when the producer was closed", left)
        if exc[0] is None:
            self._raise_new_failures()

    # ---- callbacks -------------------------------------------------------------
    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        if err is None:
            self.delivered += 1
            return
        self.failed += 1
        self.failures_by_topic[msg.topic()] += 1
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append(FailedDelivery(msg.topic(), msg.partition(), msg.key(), str(err)))
        log.error("delivery failed for %s[%s]: %s", msg.topic(), msg.partition(), err)

    def _on_client_error(self, err: KafkaError) -> None:
        if err.fatal():
            self.client_errors.append(str(err))
            log.error("fatal producer error: %s", err)
        else:
            log.warning("producer: %s", err)

    def _raise_new_failures(self) -> None:
        if self.client_errors:
            raise KafkaException(self.client_errors[0])
        if self.failed > self._reported:
            self._reported = self.failed
            raise DeliveryError(self.failed, self.errors)
