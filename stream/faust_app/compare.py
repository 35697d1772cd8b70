"""The embedded runtime as a reference for the Kafka runtime (tests and benchmarks).

:func:`embedded_reference` pushes a recorded list of readings messages through
:class:`stream.embedded.EmbeddedPipeline` on a memory bus, interval by interval
as ``roadpulse run`` does, and returns what it published; :func:`flow_table`
turns flow-window batches from either runtime into one comparable frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby
from typing import Iterable

import pandas as pd

from ingest.bus import MemoryBus
from models.network import Network
from models.records import Alert, DeadLetter, FlowWindowBatch, Incident
from models.wire import decode_dead_letter, decode_flow_windows
from stream.core.pipeline import PipelineConfig
from stream.embedded import EmbeddedPipeline, ResultSink

FLOW_KEY = ["level", "window_ms", "entity_id", "window_start_ms"]


@dataclass
class RecordedMessage:
    key: str
    value: bytes
    timestamp_ms: int


@dataclass
class Reference:
    flow: list[FlowWindowBatch] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    readings_in: int = 0
    readings_accepted: int = 0


def embedded_reference(network: Network, config: PipelineConfig, messages: Iterable[RecordedMessage],
                       end_ms: int, interval_ms: int = 30_000) -> Reference:
    """Run the embedded pipeline over ``messages`` (grouped by timestamp = interval) and finish at ``end_ms``."""
    bus = MemoryBus(partitions=4)
    pipe = EmbeddedPipeline(network, config, bus, ResultSink())
    producer = bus.producer()
    for ts, group in groupby(messages, key=lambda m: m.timestamp_ms):
        for m in group:
            producer.produce("readings", m.value, key=m.key, timestamp_ms=m.timestamp_ms)
        pipe.step(now_ms=ts + interval_ms)
    pipe.finish(now_ms=end_ms)
    ref = Reference(incidents=list(pipe.stats.incidents), alerts=list(pipe.stats.alerts),
                    readings_in=pipe.stats.readings_in, readings_accepted=pipe.stats.readings_accepted)
    ref.flow = [decode_flow_windows(m.value) for m in bus.read_all("flow_windows")]
    ref.dead_letters = [decode_dead_letter(m.value) for m in bus.read_all("dead_letters")]
    return ref


def flow_table(batches: Iterable[FlowWindowBatch]) -> pd.DataFrame:
    """All rows of the batches, one per (level, window, entity, start), sorted; duplicates must agree."""
    frames = []
    for b in batches:
        if len(b) == 0:
            continue
        d = {c: getattr(b, c) for c in FlowWindowBatch.COLUMNS}
        d["level"] = b.level
        d["window_ms"] = b.window_ms
        if len(b.travel_time_s) == len(b):
            d["travel_time_s"] = b.travel_time_s
        frames.append(pd.DataFrame(d))
    if not frames:
        return pd.DataFrame(columns=FLOW_KEY)
    df = pd.concat(frames, ignore_index=True)
    return df.sort_values(FLOW_KEY, kind="stable").reset_index(drop=True)
