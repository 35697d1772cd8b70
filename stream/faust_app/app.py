"""The faust runtime: two agents around the same core stages as the embedded runtime.

- ``station_agent`` consumes ``readings`` (key = station id) in batches
  (``take_events``), validates them (bad rows -> ``dead_letters`` with their
  reason), runs one :class:`StationPartition` per partition, publishes lane and
  station windows to ``flow_windows`` and forwards station windows to the
  internal ``station_windows`` topic keyed (and partitioned, CRC-32) by roadway.
- ``corridor_agent`` consumes ``station_windows`` and runs one
  :class:`CorridorPartition` per partition: segment windows to ``flow_windows``,
  incident events to ``incidents``, commuter alerts to ``alerts``.

State: after every batch, each touched partition's whole state is written to a
faust Table (memory store, compacted changelog) under the key ``p<partition>``
and into that same partition of the changelog, so faust's recovery gives the
partition's next owner exactly that snapshot. Outputs of a batch are awaited
(delivered) before its snapshot is written; the snapshot carries the input
offset, so at-least-once redelivery never double-counts (see ``state.py``).

End of stream: a message with header ``eos`` (the end time, ms) on every
readings partition flushes that partition's windows and is forwarded to every
station_windows partition; a corridor partition that has the marker from every
source closes its open incidents -- what ``EmbeddedPipeline.finish`` does.

faust traps handled here: Table writes inside ``take_events`` batches would go
to the partition of whatever event faust considers current, so the changelog
partition is passed explicitly (``Table.send_changelog``); producers compress
with lz4, which aiokafka decodes through cramjam (a declared dependency).
"""
from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from faust.types import TP

from ingest.kafka.producer import KafkaProducer
from models.network import Network
from models.wire import decode_flow_windows
from stream.core.pipeline import PipelineConfig
from stream.embedded import ResultSink, health_rows
from stream.faust_app.routing import MARKER_KEYS, OutMessage, corridor_messages, station_messages
from stream.faust_app.state import (
    CorridorPartition,
    CorridorResult,
    InMessage,
    StationPartition,
    StationResult,
)

log = logging.getLogger(__name__)

_OFFSET = struct.Struct(">q")  # table values: 8-byte offset, then the snapshot


@dataclass(frozen=True)
class WorkerConfig:
    """How a worker connects and batches; one frozen object built by the CLI."""

    broker_url: str = "kafka://127.0.0.1:9092"
    app_id: str = "roadpulse"
    topic_prefix: str = "roadpulse."
    partitions: int = 4
    web_port: int = 6066
    web_enabled: bool = True
    data_dir: Path = Path("out/faust")
    batch_max: int = 10_000
    batch_within_s: float = 0.25
    standby_replicas: int = 1
    session_timeout_s: float = 30.0  # a killed worker's partitions move after this long
    # (level, window ms) published on flow_windows but not written to the sink, as in the embedded runtime
    unstored: frozenset[tuple[str, int]] = frozenset({("lane", 30_000)})
    stats_interval_s: float = 0.0  # > 0: log the worker's counters (batches, time per phase) this often


class FaustRuntime:
    """Holds the per-partition states, the topics, the tables and the sink of one worker."""

    def __init__(self, config: WorkerConfig, network: Network, pipeline_config: PipelineConfig,
                 sink: ResultSink | None = None) -> None:
        self.config = config
        self.network = network
        self.pipeline_config = pipeline_config
        self.sink = sink
        self._stations: dict[int, tuple[StationPartition, int]] = {}
        self._corridors: dict[int, tuple[CorridorPartition, int]] = {}
        self.counters: dict[str, int] = defaultdict(int)
        self._producer: KafkaProducer | None = None
        self._seeks: dict[tuple[str, int], tuple[int, float]] = {}
        self.app = self._build_app()

    # ---- app -------------------------------------------------------------------
    def _build_app(self) -> faust.App:
        c = self.config
        app = faust.App(
            c.app_id, broker=c.broker_url, store="memory://", topic_partitions=c.partitions,
            value_serializer="raw", key_serializer="raw", datadir=str(c.data_dir), web_port=c.web_port,
            web_enabled=c.web_enabled, table_standby_replicas=c.standby_replicas,
            consumer_auto_offset_reset="earliest", producer_max_request_size=8_000_000,
            producer_compression_type="lz4", producer_acks=-1, stream_buffer_maxsize=65_536,
            consumer_max_fetch_size=8 * 1024 * 1024, broker_max_poll_records=20_000, topic_disable_leader=True,
            broker_session_timeout=c.session_timeout_s, broker_heartbeat_interval=min(3.0, c.session_timeout_s / 4),
            # on a rebalance, do not wait for the take() buffer to drain: that wait deadlocked here (seen:
            # workers stalled after a rebalance); snapshots carry offsets, so nothing depends on it
            stream_wait_empty=False,
        )
        p = c.topic_prefix

        def topic(name: str) -> Any:
            return app.topic(p + name, key_type=bytes, value_type=bytes, key_serializer="raw",
                             value_serializer="raw", partitions=c.partitions, internal=False)

        self.readings = topic("readings")
        self.station_windows = topic("station_windows")
        table_opts = dict(key_type=bytes, value_type=bytes,  # bytes -> "raw" serializers
                          partitions=c.partitions, extra_topic_configs={"max.message.bytes": "8000000"})
        self.station_table = app.Table("station-state", **table_opts)
        self.corridor_table = app.Table("corridor-state", **table_opts)

        @app.agent(self.readings, name="station_agent")
        async def station_agent(stream: Any) -> None:
            async for events in stream.take_events(c.batch_max, within=c.batch_within_s):
                await self.handle_readings(events)

        @app.agent(self.station_windows, name="corridor_agent")
        async def corridor_agent(stream: Any) -> None:
            async for events in stream.take_events(c.batch_max, within=c.batch_within_s):
                await self.handle_station_windows(events)

        if c.stats_interval_s > 0:
            @app.timer(c.stats_interval_s)
            async def _log_stats() -> None:
                log.warning("stats %s", dict(self.counters))

        @app.on_before_shutdown.connect
        async def _close_sink(app: faust.App, **_: Any) -> None:
            if self.sink is not None and hasattr(self.sink, "close"):
                self.sink.close()

        return app

    # ---- state from / to the tables ---------------------------------------------
    def _load(self, table: Any, cache: dict, partition: int, build: Any) -> Any:
        blob = table.data.get(b"p%d" % partition)
        stored = -2 if blob is None else _OFFSET.unpack_from(blob)[0]
        cached = cache.get(partition)
        if cached is not None and cached[1] == stored:
            return cached[0]
        state = build(None if blob is None else blob[_OFFSET.size:])
        cache[partition] = (state, state.offset)
        if blob is not None:
            log.warning("partition %d: state restored from table %s at input offset %d", partition, table.name,
                        state.offset)
        return state

    async def _save_all(self, table: Any, cache: dict, states: list[tuple[int, Any]], source: Any) -> None:
        """Write each partition's snapshot to the table and its changelog partition; wait for the broker."""
        futs = []
        name = source.get_topic_name()
        assigned = {tp.partition for tp in self.app.consumer.assignment() if tp.topic == name}
        for partition, state in states:
            if assigned and partition not in assigned:  # revoked while this batch ran: the new owner decides
                log.warning("partition %d of %s was revoked during the batch; snapshot not written", partition,
                            table.name)
                cache.pop(partition, None)
                continue
            blob = _OFFSET.pack(state.offset) + state.snapshot()
            key = b"p%d" % partition
            table.data[key] = blob
            cache[partition] = (state, state.offset)
            futs.append(table.send_changelog(partition, key, blob))
            self.counters["snapshot_bytes"] += len(blob)
        if futs:
            await asyncio.gather(*futs)

    def station_state(self, partition: int) -> StationPartition:
        return self._load(self.station_table, self._stations, partition,
                          lambda blob: StationPartition(self.network, self.pipeline_config, partition,
                                                        self.config.partitions, blob))

    def corridor_state(self, partition: int) -> CorridorPartition:
        return self._load(self.corridor_table, self._corridors, partition,
                          lambda blob: CorridorPartition(self.network, self.pipeline_config, partition,
                                                         self.config.partitions, self.config.partitions, blob))

    # ---- agent bodies ---------------------------------------------------------------
    async def handle_readings(self, events: list[Any]) -> None:
        """One batch: process every partition, send all outputs (awaited), then write all snapshots."""
        t0 = time.perf_counter()
        done: list[tuple[int, StationPartition, StationResult]] = []
        out: list[OutMessage] = []
        closed_ns = time.time_ns()
        for partition, msgs in _by_partition(events).items():
            state = self.station_state(partition)
            result = state.process(msgs)
            if result.gap_from is not None:  # what came before the jump (if anything) was processed
                await self._seek_back(self.readings, partition, state, result.gap_from)
            self.counters["redelivered_skipped"] += result.skipped
            if len(msgs) == result.skipped:
                continue
            out.extend(station_messages(partition, state, result, self.config.partitions, closed_ns))
            done.append((partition, state, result))
            self.counters["readings_in"] += result.readings_in
            self.counters["messages_in"] += result.messages_in
        t1 = time.perf_counter()
        await self._send_all(out)
        for _, state, result in done:
            self._sink_station(state, result)
        await self._flush_sink()
        t2 = time.perf_counter()
        await self._save_all(self.station_table, self._stations, [(p, st) for p, st, _ in done], self.readings)
        self._timing("station", len(events), t0, t1, t2, time.perf_counter())

    async def handle_station_windows(self, events: list[Any]) -> None:
        t0 = time.perf_counter()
        done: list[tuple[int, CorridorPartition]] = []
        out: list[OutMessage] = []
        closed_ns = time.time_ns()
        results = []
        for partition, msgs in _by_partition(events).items():
            state = self.corridor_state(partition)
            decoded = [(m, None if m.key in MARKER_KEYS else decode_flow_windows(m.value)) for m in msgs]
            result = state.process(decoded)
            if result.gap_from is not None:  # what came before the jump (if anything) was processed
                await self._seek_back(self.station_windows, partition, state, result.gap_from)
            if len(msgs) == result.skipped:
                continue
            out.extend(corridor_messages(result, closed_ns))
            done.append((partition, state))
            results.append(result)
        t1 = time.perf_counter()
        await self._send_all(out)
        for result in results:
            self._sink_corridor(result)
        await self._flush_sink()
        t2 = time.perf_counter()
        await self._save_all(self.corridor_table, self._corridors, done, self.station_windows)
        self._timing("corridor", len(events), t0, t1, t2, time.perf_counter())

    async def _flush_sink(self) -> None:
        """Results of a batch are in the sink (written, or spooled to disk) before its snapshot is saved:
        a worker killed after the save must not lose points that the restored state will never resend."""
        if self.sink is not None and hasattr(self.sink, "flush"):
            await asyncio.get_running_loop().run_in_executor(None, self.sink.flush)

    async def _seek_back(self, topic: Any, partition: int, state: Any, offset: int) -> None:
        """Re-read from the state's position: the consumer is past the snapshot's offset.

        Seen here: a fresh group's consumer of station_windows can start after
        offset 0 (messages produced while partitions were being assigned), and a
        rebalance can commit offsets past a snapshot. Batches are dropped (not
        processed) until the sought messages arrive; offsets removed by retention
        (before the log start) are accepted as gone.
        """
        tp = TP(topic.get_topic_name(), partition)
        earliest = (await self.app.consumer.earliest_offsets(tp)).get(tp, 0)
        if offset < earliest:
            log.warning("%s[%d]: offsets %d..%d are gone (retention); continuing", tp.topic, partition, offset,
                        earliest - 1)
            state.accept_gap_at = offset
            return
        last = self._seeks.get((tp.topic, partition))
        now = time.monotonic()
        if last is not None and last[0] == offset and now - last[1] < 5.0:
            return  # sought already: drop what was buffered before the seek took effect
        self._seeks[(tp.topic, partition)] = (offset, now)
        self.counters["seek_backs"] += 1
        log.warning("%s[%d]: input is past the snapshot; seeking back to offset %d", tp.topic, partition, offset)
        await self.app.consumer.seek(tp, offset)

    def _timing(self, stage: str, n: int, t0: float, t1: float, t2: float, t3: float) -> None:
        c = self.counters
        c[f"{stage}.batches"] += 1
        c[f"{stage}.events"] += n
        c[f"{stage}.process_ms"] += int((t1 - t0) * 1000)
        c[f"{stage}.send_ms"] += int((t2 - t1) * 1000)
        c[f"{stage}.save_ms"] += int((t3 - t2) * 1000)

    # ---- outputs ------------------------------------------------------------------------
    def _sink_station(self, state: StationPartition, result: StationResult) -> None:
        if self.sink is None:
            return
        for batch in result.lanes + result.stations:
            if (batch.level, batch.window_ms) not in self.config.unstored:
                self.sink.write_flow(batch)
        if result.dead_letters:
            self.sink.write_dead_letters(result.dead_letters)
        for h in result.health_reports:
            rows = health_rows(h["report"], h["at_ms"], self.network)
            self.sink.write_health([r for r, o in zip(rows, state.owned_detectors, strict=True) if o])
        if result.eos_at_ms is not None and hasattr(self.sink, "flush"):
            self.sink.flush()

    def _sink_corridor(self, result: CorridorResult) -> None:
        if self.sink is None:
            return
        for seg in result.segments:
            if (seg.level, seg.window_ms) not in self.config.unstored:
                self.sink.write_flow(seg)
        if result.incidents:
            self.sink.write_incidents(result.incidents)
        if result.alerts:
            self.sink.write_alerts(result.alerts)
        if result.finished_at_ms is not None and hasattr(self.sink, "flush"):
            self.sink.flush()

    async def _send_all(self, messages: list[OutMessage]) -> None:
        """Produce the batch's outputs and wait until the broker has every one (before the snapshot).

        Outputs go through confluent-kafka, not faust's producer: ``Topic.send``
        cost ~1.4 ms a message here (measured: 9.3k outputs took 12.8 s of one
        worker's 45 s), librdkafka a few microseconds. The flush runs in a thread
        so faust keeps fetching meanwhile; a failed delivery raises (DeliveryError).
        """
        if not messages:
            return
        producer = self._out_producer()
        for om in messages:
            producer.produce(om.topic, om.value, key=om.key, timestamp_ms=om.timestamp_ms,
                             headers=om.headers or None, partition=om.partition)
        left = await asyncio.get_running_loop().run_in_executor(None, producer.flush, 60.0)
        if left:
            raise RuntimeError(f"{left} output messages not delivered within 60 s")
        self.counters["messages_out"] += len(messages)

    def _out_producer(self) -> KafkaProducer:
        if self._producer is None:
            bootstrap = self.config.broker_url.split("://", 1)[-1]
            self._producer = KafkaProducer(bootstrap, self.config.topic_prefix, linger_ms=2)
        return self._producer


def _by_partition(events: list[Any]) -> dict[int, list[InMessage]]:
    out: dict[int, list[InMessage]] = defaultdict(list)
    for ev in events:
        m = ev.message
        key = m.key.decode("utf-8", errors="replace") if isinstance(m.key, bytes) else m.key
        headers = {k: bytes(v) for k, v in (m.headers or [])} if not isinstance(m.headers, dict) else dict(m.headers)
        out[m.partition].append(InMessage(m.offset, key, m.value, int(round(m.timestamp * 1000)), headers))
    for msgs in out.values():
        msgs.sort(key=lambda x: x.offset)
    return out


def build_runtime(config: WorkerConfig, network: Network, pipeline_config: PipelineConfig,
                  sink: ResultSink | None = None) -> FaustRuntime:
    """A faust app (in ``.app``) running the roadpulse agents; start it with :func:`run_worker`."""
    return FaustRuntime(config, network, pipeline_config, sink)


def run_worker(runtime: FaustRuntime, loglevel: str = "warning") -> None:
    """Run the worker in this process until it is stopped (SIGTERM/SIGINT)."""
    from faust import Worker

    runtime.config.data_dir.mkdir(parents=True, exist_ok=True)
    Worker(runtime.app, loglevel=loglevel, quiet=True).execute_from_commandline()
