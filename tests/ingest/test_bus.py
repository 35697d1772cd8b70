"""MemoryBus: per-key order, stable partitioning, consumer-group offsets."""
from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.bus import MemoryBus, Producer, partition_for


def test_producer_satisfies_protocol() -> None:
    producer: Producer = MemoryBus().producer()
    producer.produce("readings", b"x", key="PIE-E-000", timestamp_ms=5)
    assert producer.flush() == 0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["A", "B", "C", "D", "E", None]), st.binary(max_size=8)), max_size=200),
       st.integers(1, 7), st.integers(1, 50))
def test_per_key_order_survives_partitioning_and_polling(msgs: list[tuple[str | None, bytes]], partitions: int,
                                                          poll_size: int) -> None:
    bus = MemoryBus(partitions=partitions)
    producer = bus.producer()
    for seq, (key, value) in enumerate(msgs):
        producer.produce("t", value, key=key, timestamp_ms=seq, headers={"seq": str(seq).encode()})
    consumer = bus.consumer(["t"], group="g")
    got = []
    while batch := consumer.poll(max_messages=poll_size):
        assert len(batch) <= poll_size
        got.extend(batch)
    assert len(got) == len(msgs) == bus.topic_size("t")
    for key in {k for k, _ in msgs}:
        want = [(int(seq), v) for seq, (k, v) in enumerate(msgs) if k == key]
        have = [(int(m.headers["seq"]), m.value) for m in got if m.key_str == key]
        assert sorted(have) == want  # nothing lost
        if key is not None:
            assert have == want  # and in produce order
            assert len({m.partition for m in got if m.key_str == key}) == 1
    # read_all returns produce order
    assert [m.timestamp_ms for m in bus.read_all("t")] == list(range(len(msgs)))


def test_key_hash_is_crc32_and_stable() -> None:
    assert partition_for(b"PIE-E-000", 4) == zlib.crc32(b"PIE-E-000") % 4
    bus = MemoryBus(partitions=4)
    bus.producer().produce("t", b"v", key="PIE-E-000")
    assert bus.read_all("t")[0].partition == zlib.crc32(b"PIE-E-000") % 4
    assert bus.read_all("t")[0].key == b"PIE-E-000"


def test_offsets_are_dense_per_partition() -> None:
    bus = MemoryBus(partitions=3)
    p = bus.producer()
    for i in range(30):
        p.produce("t", bytes([i]), key=str(i % 5))
    for part in range(3):
        offsets = [m.offset for m in bus.read_all("t") if m.partition == part]
        assert offsets == list(range(len(offsets)))
    assert sum(bus.end_offsets("t")) == 30


def test_consumer_group_resumes_from_committed_offsets() -> None:
    bus = MemoryBus(partitions=2)
    p = bus.producer()
    for i in range(10):
        p.produce("t", str(i).encode(), key=str(i))
    c1 = bus.consumer(["t"], group="g")
    first = c1.poll(max_messages=4)
    c1.commit()
    c1.poll(max_messages=3)  # read but not committed: a restart re-reads these
    c1.close()
    c2 = bus.consumer(["t"], group="g")
    rest = c2.poll(max_messages=100)
    assert len(first) == 4 and len(rest) == 6
    assert sorted(m.value for m in first + rest) == sorted(str(i).encode() for i in range(10))
    assert c2.lag() == 0
    # another group is independent and starts at the beginning
    assert len(bus.consumer(["t"], group="other").poll(max_messages=100)) == 10
    c2.commit()
    assert sum(bus.committed("g", "t")) == 10
    c2.seek_to_beginning()
    assert len(c2.poll(max_messages=100)) == 10
    assert sum(bus.committed("g", "t")) == 10  # seeking does not commit


def test_consumer_reads_several_topics_and_new_messages() -> None:
    bus = MemoryBus(partitions=2)
    c = bus.consumer(["a", "b"], group="g")
    assert c.poll() == []
    p = bus.producer()
    p.produce("a", b"1", key="k")
    p.produce("b", b"2", key="k")
    assert sorted((m.topic, m.value) for m in c.poll()) == [("a", b"1"), ("b", b"2")]
    p.produce("a", b"3", key="k")
    assert [m.value for m in c.poll()] == [b"3"]
    assert c.lag() == 0


def test_poll_does_not_starve_a_partition() -> None:
    bus = MemoryBus(partitions=2)
    p = bus.producer()
    keys = ["a", "b", "c", "d", "e", "f"]
    parts = {k: partition_for(k.encode(), 2) for k in keys}
    assert len(set(parts.values())) == 2
    for _ in range(50):
        for k in keys:
            p.produce("t", b"x", key=k)
    c = bus.consumer(["t"], group="g")
    seen = {m.partition for _ in range(2) for m in c.poll(max_messages=10)}
    assert seen == {0, 1}


def test_missing_timestamp_comes_from_the_injected_clock_and_bad_input_is_refused() -> None:
    bus = MemoryBus(partitions=1, clock_ms=lambda: 123)
    p = bus.producer()
    p.produce("t", b"v")
    assert bus.read_all("t")[0].timestamp_ms == 123
    with pytest.raises(TypeError):
        p.produce("t", "not bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        MemoryBus(partitions=0)
    bus.create_topic("wide", partitions=8)
    assert bus.n_partitions("wide") == 8
    assert bus.topic_size("nothing") == 0 and bus.read_all("nothing") == []


def test_byte_retention_keeps_memory_bounded_and_offsets_absolute():
    from ingest.bus import MemoryBus

    bus = MemoryBus(partitions=1, retention_bytes=1_000)
    producer = bus.producer()
    slow = bus.consumer(["t"], group="slow")
    for i in range(500):
        producer.produce("t", b"x" * 10 + i.to_bytes(4, "big"), key="k", timestamp_ms=i)
    assert bus.topic_size("t") == 500
    assert bus.end_offsets("t") == [500]
    kept = bus.read_all("t")
    assert sum(len(m.value) for m in kept) <= 1_000 and len(kept) < 500
    assert [m.offset for m in kept] == list(range(500 - len(kept), 500))
    got = slow.poll(max_messages=1_000)  # behind the retention: starts at the oldest kept message
    assert [m.offset for m in got] == [m.offset for m in kept]
    assert int.from_bytes(got[-1].value[-4:], "big") == 499
    producer.produce("t", b"y", key="k", timestamp_ms=500)
    assert [m.offset for m in slow.poll()] == [500]
