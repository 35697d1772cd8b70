"""The embedded runtime: sources, bus, traffic core and store in one process.

Sources publish encoded messages to the in-memory bus exactly as they would to
Kafka (one message per station and interval, keyed by station); a consumer
validates them at the door and feeds the two core stages; results go to the
local store and back onto the bus (flow windows, incidents, alerts, dead
letters). Nothing here computes traffic: that is ``stream.core``.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ingest.bus import MemoryBus, Producer
from ingest.chaos import ChaosInjector
from ingest.publish import encode_station_messages
from ingest.validate import ReadingValidator
from models.network import Network
from models.records import Alert, DeadLetter, FlowWindowBatch, Incident, ReadingBatch
from models.wire import encode_flow_windows, encode_record, encode_row_json
from stream.core.pipeline import CorridorOutput, CorridorStage, PipelineConfig, StationOutput, StationStage

log = logging.getLogger(__name__)

TOPICS = ("readings", "flow_windows", "incidents", "alerts", "dead_letters")


class ResultSink:
    """Where results go: the local store, or InfluxDB on the full stack."""

    def write_flow(self, batch: FlowWindowBatch) -> None: ...
    def write_incidents(self, incidents: list[Incident]) -> None: ...
    def write_alerts(self, alerts: list[Alert]) -> None: ...
    def write_dead_letters(self, letters: list[DeadLetter]) -> None: ...
    def write_health(self, rows: list[dict]) -> None: ...
    def write_pipeline(self, component: str, at_ms: int, fields: dict) -> None: ...


@dataclass
class RunStats:
    readings_in: int = 0
    readings_accepted: int = 0
    messages_in: int = 0
    windows_written: int = 0
    flow_rows_written: int = 0
    flow_rows_published: int = 0
    dead_letters: Counter = field(default_factory=Counter)
    incidents: list[Incident] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    sim_now_ms: int = 0
    wall_s: float = 0.0
    open_incidents: int = 0


class EmbeddedPipeline:
    """Consumes the readings topic of a bus and runs the core; one call per poll."""

    def __init__(self, network: Network, config: PipelineConfig, bus: MemoryBus, sink: ResultSink,
                 group: str = "roadpulse-core",
                 unstored: frozenset[tuple[str, int]] = frozenset({("lane", 30_000)})) -> None:
        """``unstored``: (level, window ms) pairs published on the bus but not written to the sink —
        by default the 30-s lane windows, which repeat the raw readings and are most of the rows."""
        self.network = network
        self.config = config
        self.bus = bus
        self.sink = sink
        self.producer = bus.producer()
        self.consumer = bus.consumer(["readings"], group=group)
        self.validator = ReadingValidator(network)
        self.stations = StationStage(network, config)
        self.corridors = CorridorStage(network, config)
        self.unstored = unstored
        self.stats = RunStats()
        self.alert_listeners: list[Callable[[Alert], None]] = []
        self.incident_listeners: list[Callable[[Incident], None]] = []

    def step(self, now_ms: int, max_messages: int = 1_000_000) -> None:
        """Drain what is on the readings topic and push it through both stages."""
        messages = self.consumer.poll(max_messages=max_messages)
        if not messages:
            return
        keys = [m.key for m in messages]
        batch, det, letters = self.validator.validate_many([m.value for m in messages], keys, source="readings",
                                                           now_ms=now_ms)
        self.stats.messages_in += len(messages)
        self.stats.readings_in += len(batch) + sum(1 for d in letters if d.row is not None)
        if len(batch):
            late = self.stations.process(det, batch)
            if late.any():
                letters.extend(self._late_letters(batch, late, now_ms))
            self.stats.readings_accepted += int((~late).sum())
        self.consumer.commit()
        self._emit_letters(letters)
        self._route(self.stations.poll())
        self._emit_corridor(self.corridors.poll())
        self.stats.sim_now_ms = now_ms
        self.stats.open_incidents = self.corridors.open_incidents(self.config.alert_algorithm)

    def finish(self, now_ms: int) -> None:
        """End of stream: close every window and incident."""
        self.step(now_ms)
        self._route(self.stations.poll(flush=True))
        self._emit_corridor(self.corridors.close_all(now_ms))
        self.producer.flush()
        self.stats.open_incidents = 0

    # ---- outputs ---------------------------------------------------------
    def _route(self, out: StationOutput) -> None:
        for batch in out.lanes + out.stations:
            self._write_flow(batch)
        for stations in out.stations:
            self.corridors.add(stations)
        for h in out.health:
            self.sink.write_health(health_rows(h["report"], h["at_ms"], self.network))

    def _emit_corridor(self, out: CorridorOutput) -> None:
        for seg in out.segments:
            self._write_flow(seg)
        if out.incidents:
            self.sink.write_incidents(out.incidents)
            for inc in out.incidents:
                self.producer.produce("incidents", encode_record(inc), key=f"{inc.corridor}-{inc.direction}",
                                      timestamp_ms=inc.event_ms)
                for listener in self.incident_listeners:
                    listener(inc)
            self.stats.incidents.extend(out.incidents)
        if out.alerts:
            self.sink.write_alerts(out.alerts)
            for alert in out.alerts:
                self.producer.produce("alerts", encode_record(alert), key=alert.subscription_id,
                                      timestamp_ms=alert.at_ms)
                for listener in self.alert_listeners:
                    listener(alert)
            self.stats.alerts.extend(out.alerts)

    def _write_flow(self, batch: FlowWindowBatch) -> None:
        if len(batch) == 0:
            return
        if (batch.level, batch.window_ms) not in self.unstored:
            self.sink.write_flow(batch)
            self.stats.flow_rows_written += len(batch)
        self.producer.produce("flow_windows", encode_flow_windows(batch), key=batch.level,
                              timestamp_ms=int(batch.window_start_ms[0]))
        self.stats.windows_written += 1
        self.stats.flow_rows_published += len(batch)

    def _emit_letters(self, letters: list[DeadLetter]) -> None:
        if not letters:
            return
        self.sink.write_dead_letters(letters)
        for d in letters:
            self.producer.produce("dead_letters", encode_record(d), key=d.reason, timestamp_ms=d.at_ms)
            self.stats.dead_letters[d.reason] += 1

    def _late_letters(self, batch: ReadingBatch, late: np.ndarray, now_ms: int) -> list[DeadLetter]:
        cols = {c: getattr(batch, c).tolist() for c in ReadingBatch.COLUMNS}
        return [DeadLetter("late", "reading arrived after its window closed (beyond allowed lateness)",
                           "readings", None, encode_row_json(cols, int(i)), now_ms, int(i))
                for i in np.flatnonzero(late)]


def health_rows(report, at_ms: int, network: Network) -> list[dict]:
    """Detector health report -> store rows (one per detector)."""
    rows = []
    ids = network.detector_ids
    st = network.detector_station_idx
    fields = [f for f in ("samples", "expected_samples", "zero_occ_share", "high_occ_share") if hasattr(report, f)]
    for i in range(len(ids)):
        s = network.stations[st[i]]
        row = {"at_ms": at_ms, "detector_id": ids[i], "corridor": s.corridor, "direction": s.direction,
               "status": str(report.status[i])}
        for f in fields:
            v = getattr(report, f)[i]
            row[f] = v.item() if hasattr(v, "item") else v
        rows.append(row)
    return rows


def publish_readings(producer: Producer, batch: ReadingBatch, network: Network,
                     chaos: ChaosInjector | None = None) -> int:
    """Publish a batch as one message per station (keyed by station); returns messages sent."""
    sent = 0
    for key, payload, t_ms in encode_station_messages(batch, network):
        for p in (chaos.maybe_corrupt(payload) if chaos else (payload,)):
            producer.produce("readings", p, key=key, timestamp_ms=t_ms)
            sent += 1
    return sent


class Throughput:
    """Readings per wall second over the last few seconds, for the progress bar."""

    def __init__(self) -> None:
        self._t0 = time.perf_counter()
        self._n0 = 0
        self.rate = 0.0

    def update(self, total: int) -> float:
        now = time.perf_counter()
        if now - self._t0 >= 1.0:
            self.rate = (total - self._n0) / (now - self._t0)
            self._t0, self._n0 = now, total
        return self.rate
