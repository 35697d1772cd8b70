"""What a batch's results become on the topics: output messages, decided without any IO.

The faust agents send these as they are; tests route them between partition
states in-process to check the Kafka runtime's logic without a broker.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.records import FlowWindowBatch
from models.wire import encode_flow_windows, encode_record
from stream.core.pipeline import _take
from stream.faust_app.state import WM_NONE, CorridorResult, StationPartition, StationResult, partition_of, roadway_key

EOS_KEY = b"__eos__"
WM_KEY = b"__wm__"
MARKER_KEYS = (EOS_KEY.decode(), WM_KEY.decode())


@dataclass
class OutMessage:
    """One message to produce: bus stream name, key, value, explicit partition (None: by key), headers."""

    topic: str
    key: bytes
    value: bytes
    partition: int | None = None
    headers: dict[str, bytes] = field(default_factory=dict)
    timestamp_ms: int | None = None


def flow_message(batch: FlowWindowBatch, closed_ns: int) -> OutMessage:
    """A flow-window batch for ``flow_windows`` (key = level; header ``closed_ns``: wall time the window closed)."""
    return OutMessage("flow_windows", batch.level.encode(), encode_flow_windows(batch),
                      headers={"closed_ns": str(closed_ns).encode()}, timestamp_ms=int(batch.window_start_ms[0]))


def station_messages(partition: int, state: StationPartition, result: StationResult, n_partitions: int,
                     closed_ns: int) -> list[OutMessage]:
    """Flow windows, station windows by roadway, dead letters, then watermark / end-of-stream markers."""
    out = [flow_message(b, closed_ns) for b in result.lanes + result.stations]
    src = str(partition).encode()
    for stations in result.stations:
        keys = np.array([roadway_key(c, d) for c, d in zip(stations.corridor, stations.direction, strict=True)],
                        dtype=object)
        for key in sorted(set(keys.tolist())):
            mask = keys == key
            part = stations if mask.all() else _take(stations, mask)
            out.append(OutMessage("station_windows", key.encode(), encode_flow_windows(part),
                                  partition_of(key, n_partitions), {"src": src}, int(part.window_start_ms[0])))
    out.extend(OutMessage("dead_letters", d.reason.encode(), encode_record(d), timestamp_ms=d.at_ms)
               for d in result.dead_letters)
    # markers go to every corridor partition after this batch's windows (same producer: in order)
    if result.eos_at_ms is not None:
        out.extend(OutMessage("station_windows", EOS_KEY, b"", q, {"src": src, "eos": str(result.eos_at_ms).encode()})
                   for q in range(n_partitions))
    elif state.output_watermark_ms > WM_NONE:
        wm = str(state.output_watermark_ms).encode()
        out.extend(OutMessage("station_windows", WM_KEY, b"", q, {"src": src, "wm": wm}) for q in range(n_partitions))
    return out


def corridor_messages(result: CorridorResult, closed_ns: int) -> list[OutMessage]:
    """Segment windows, incident events (key = roadway), alerts (key = subscription)."""
    out = [flow_message(s, closed_ns) for s in result.segments]
    out.extend(OutMessage("incidents", roadway_key(i.corridor, i.direction).encode(), encode_record(i),
                          timestamp_ms=i.event_ms) for i in result.incidents)
    out.extend(OutMessage("alerts", a.subscription_id.encode(), encode_record(a), timestamp_ms=a.at_ms)
               for a in result.alerts)
    return out
