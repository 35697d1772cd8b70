"""Per-partition state of the faust workers, around the same core stages as the embedded runtime.

One :class:`StationPartition` per ``readings`` partition (validator, StationStage,
the last input offset folded in) and one :class:`CorridorPartition` per
``station_windows`` partition (CorridorStage, the highest station window seen
per source). Keeping state per partition, not per worker, means

- a partition's watermark only moves with its own messages, so a partition
  that is consumed ahead of another cannot make the other's readings late;
- a snapshot is the whole state of one partition, written to that partition
  of a compacted changelog after every batch; a worker that takes the
  partition over (a restart, a rebalance) restores exactly that state;
- replays are idempotent: a snapshot carries the offset it covers, so messages
  re-delivered after a crash (faust commits offsets after the snapshot, at
  least once) are skipped, and station windows re-sent by a replayed batch are
  dropped by the corridor side (per source partition, roadway and window
  length, window starts only grow).

Nothing here talks to Kafka or faust; ``stream/faust_app/app.py`` does.
"""
from __future__ import annotations

import pickle
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import cramjam
import numpy as np

from ingest.validate import ReadingValidator
from models.network import Network
from models.records import Alert, DeadLetter, FlowWindowBatch, Incident, ReadingBatch
from models.wire import encode_row_json
from stream.core.pipeline import CorridorStage, PipelineConfig, StationStage, _take

SNAPSHOT_VERSION = 1
WM_NONE = -(2**62)
WM_END = 2**62


def partition_of(key: str, partitions: int) -> int:
    """The partition of a key on every roadpulse producer: CRC-32 of its UTF-8 bytes (``ingest.bus.partition_for``)."""
    return zlib.crc32(key.encode("utf-8")) % partitions


def roadway_key(corridor: str, direction: str) -> str:
    return f"{corridor}-{direction}"


def dump_state(state: dict[str, Any]) -> bytes:
    """Snapshot -> bytes (pickle, lz4-compressed)."""
    return bytes(cramjam.lz4.compress_block(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)))


def load_state(blob: bytes) -> dict[str, Any]:
    state = pickle.loads(bytes(cramjam.lz4.decompress_block(blob)))
    if state.get("version") != SNAPSHOT_VERSION:
        raise ValueError(f"snapshot version {state.get('version')!r}, this worker reads {SNAPSHOT_VERSION}")
    return state


@dataclass
class InMessage:
    """What the state needs of one consumed message."""

    offset: int
    key: str | None
    value: bytes
    timestamp_ms: int
    headers: dict[str, bytes] = field(default_factory=dict)


@dataclass
class StationResult:
    """Outputs of one batch of one readings partition."""

    lanes: list[FlowWindowBatch] = field(default_factory=list)
    stations: list[FlowWindowBatch] = field(default_factory=list)
    health_reports: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    messages_in: int = 0
    readings_in: int = 0
    readings_accepted: int = 0
    skipped: int = 0  # re-delivered messages already in the state
    eos_at_ms: int | None = None  # set when this batch ended the stream
    gap_from: int | None = None  # messages from this offset on are missing: nothing was processed


class StationPartition:
    """Readings of one partition -> lane and station windows (validator + :class:`StationStage`)."""

    def __init__(self, network: Network, config: PipelineConfig, partition: int, n_partitions: int,
                 blob: bytes | None = None) -> None:
        self.network = network
        self.config = config
        self.partition = partition
        state = load_state(blob) if blob else {}
        self.stage = StationStage(network, config, resume_state=state.get("stage"))
        self.validator = ReadingValidator(network)
        if "validator" in state:
            _restore_validator(self.validator, state["validator"])
        self.offset: int = state.get("offset", -1)
        self.accept_gap_at: int | None = None
        self.clock_ms: int = state.get("clock_ms", 0)
        self.finished: bool = state.get("finished", False)
        self.totals: Counter = state.get("totals", Counter())
        owned = np.array([partition_of(s.station_id, n_partitions) == partition for s in network.stations])
        self.owned_detectors = owned[network.detector_station_idx]
        self._owned_ids = set(network.detector_ids[self.owned_detectors].tolist())
        self._owned_station_ids = {s.station_id for s, o in zip(network.stations, owned, strict=True) if o}

    def process(self, messages: Sequence[InMessage]) -> StationResult:
        """Validate and aggregate one batch (messages in offset order); returns closed windows and dead letters.

        The clock (``now_ms`` for the validator) is the newest producer timestamp
        seen on this partition: event time, so replays and simulations validate
        the same as live data.
        """
        out = StationResult()
        fresh = [m for m in messages if m.offset > self.offset]
        out.skipped = len(messages) - len(fresh)
        self.totals["redelivered_skipped"] += out.skipped
        if not fresh:
            return out
        out.gap_from = _gap(self, fresh[0].offset)
        if out.gap_from is not None:
            out.skipped = len(messages)
            return out
        fresh, out.gap_from = _contiguous(fresh, lambda m: m.offset)
        self.offset = fresh[-1].offset
        data = [m for m in fresh if "eos" not in m.headers]
        if data:
            self.clock_ms = max(self.clock_ms, max(m.timestamp_ms for m in data))
            good, det, bad = self.validator.validate_many([m.value for m in data], [m.key for m in data],
                                                          source="readings", now_ms=self.clock_ms)
            out.messages_in = len(data)
            out.readings_in = len(good) + sum(1 for d in bad if d.row is not None)
            out.dead_letters.extend(bad)
            if len(good):
                late = self.stage.process(det, good)
                if late.any():
                    out.dead_letters.extend(_late_letters(good, late, self.clock_ms))
                out.readings_accepted = int((~late).sum())
            self._collect(self.stage.poll(), out)
        eos = [m for m in fresh if "eos" in m.headers]
        if eos:  # end-of-stream marker: close every window
            self._collect(self.stage.poll(flush=True), out)
            self.finished = True
            out.eos_at_ms = max(int(m.headers["eos"]) for m in eos)
        self.totals.update({"messages_in": out.messages_in, "readings_in": out.readings_in,
                            "readings_accepted": out.readings_accepted})
        for d in out.dead_letters:
            self.totals[f"dead_letters.{d.reason}"] += 1
        return out

    def _collect(self, stage_out: Any, out: StationResult) -> None:
        # the stage covers the whole network; keep what this partition owns (imputation may add
        # rows for stations whose readings live on other partitions)
        for lanes in stage_out.lanes:
            keep = np.fromiter((e in self._owned_ids for e in lanes.entity_id), dtype=bool, count=len(lanes))
            if len(lanes) and keep.any():
                out.lanes.append(lanes if keep.all() else _take(lanes, keep))
        for st in stage_out.stations:
            keep = np.fromiter((e in self._owned_station_ids for e in st.entity_id), dtype=bool, count=len(st))
            if len(st) and keep.any():
                out.stations.append(st if keep.all() else _take(st, keep))
        out.health_reports.extend(stage_out.health)

    @property
    def output_watermark_ms(self) -> int:
        """Every station window this partition emits from now on ends after this (WM_END once finished).

        A window still to come has ``start + length + allowed_lateness > watermark``
        (otherwise it would be closed, and its readings late), so its end is
        beyond ``watermark - allowed_lateness``.
        """
        if self.finished:
            return WM_END
        wm = max(w.watermark_ms for w in self.stage.windows.values())
        if wm <= WM_NONE:
            return WM_NONE
        return int(wm) - self.config.allowed_lateness_ms

    def snapshot(self) -> bytes:
        return dump_state({"version": SNAPSHOT_VERSION, "partition": self.partition, "offset": self.offset,
                           "clock_ms": self.clock_ms, "finished": self.finished, "totals": self.totals,
                           "stage": self.stage.snapshot(), "validator": _validator_state(self.validator)})


@dataclass
class CorridorResult:
    segments: list[FlowWindowBatch] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    duplicates_dropped: int = 0
    skipped: int = 0
    finished_at_ms: int | None = None
    gap_from: int | None = None


class CorridorPartition:
    """Station windows of the roadways of one partition -> segments, incidents, alerts (:class:`CorridorStage`).

    Station windows of one roadway come from several readings partitions, which
    the workers consume at different paces. A window is handed to the stage only
    once every source partition's watermark marker has passed its end (the
    minimum over sources, as in Flink), so the stage only ever sees final
    windows, in time order; it then processes them at once (``poll(flush=True)``)
    -- a window with a silent station does not wait for the corridor grace.
    """

    def __init__(self, network: Network, config: PipelineConfig, partition: int, n_partitions: int,
                 n_sources: int, blob: bytes | None = None) -> None:
        self.partition = partition
        self.n_sources = n_sources
        self.roadway_keys = [r.key for r in network.roadways if partition_of(r.key, n_partitions) == partition]
        state = load_state(blob) if blob else {}
        stage_state = state.get("stage")
        if stage_state is not None and len(stage_state.get("usual", {}).get("segment_id", [1])) == 0:
            # UsualTravelTime cannot restore its own empty snapshot (reshape of 0 rows); empty = fresh
            stage_state = {k: v for k, v in stage_state.items() if k != "usual"}
        self.stage = CorridorStage(network, config, roadway_keys=self.roadway_keys or None,
                                   resume_state=stage_state)
        self.offset: int = state.get("offset", -1)
        self.accept_gap_at: int | None = None
        self.high: dict[tuple[int, str, int], int] = state.get("high", {})  # (source, roadway, window_ms) -> start
        self.source_wm: dict[int, int] = state.get("source_wm", {})  # source -> no later window ends before this
        self.buffer: dict[tuple[int, int, str], list[FlowWindowBatch]] = state.get("buffer", {})
        self.eos: dict[int, int] = state.get("eos", {})  # source partition -> end-of-stream time
        self.finished: bool = state.get("finished", False)
        self.totals: Counter = state.get("totals", Counter())

    def process(self, messages: Sequence[tuple[InMessage, FlowWindowBatch | None]]) -> CorridorResult:
        """Add station windows (decoded; None for a marker) and run every window all sources have passed."""
        out = CorridorResult()
        fresh = [(m, b) for m, b in messages if m.offset > self.offset]
        out.skipped = len(messages) - len(fresh)
        if not fresh:
            return out
        out.gap_from = _gap(self, fresh[0][0].offset)
        if out.gap_from is not None:
            out.skipped = len(messages)
            return out
        fresh, out.gap_from = _contiguous(fresh, lambda mb: mb[0].offset)
        self.offset = fresh[-1][0].offset
        for m, batch in fresh:
            source = int(m.headers.get("src", b"-1"))
            if batch is None:
                if "eos" in m.headers:
                    self.eos[source] = int(m.headers["eos"])
                    self.source_wm[source] = WM_END
                elif "wm" in m.headers:
                    self.source_wm[source] = max(self.source_wm.get(source, WM_NONE), int(m.headers["wm"]))
                continue
            if len(batch) == 0:
                continue
            hk = (source, m.key or "", batch.window_ms)
            start = int(batch.window_start_ms.max())
            if start <= self.high.get(hk, WM_NONE):
                out.duplicates_dropped += 1
                continue
            self.high[hk] = start
            self.buffer.setdefault((start, batch.window_ms, m.key or ""), []).append(batch)
        self._release()
        if not self.finished and len(self.eos) >= self.n_sources:
            at_ms = max(self.eos.values())
            res = self.stage.close_all(at_ms)
            self.finished = True
            out.finished_at_ms = at_ms
        else:
            res = self.stage.poll(flush=True)
        out.segments = [s for s in res.segments if len(s)]
        out.incidents = list(res.incidents)
        out.alerts = list(res.alerts)
        self.totals.update({"segment_rows": sum(len(s) for s in out.segments), "incidents": len(out.incidents),
                            "alerts": len(out.alerts), "duplicates_dropped": out.duplicates_dropped})
        return out

    @property
    def watermark_ms(self) -> int:
        """Windows ending at or before this are final (every source has passed them)."""
        if len(self.source_wm) < self.n_sources:
            return WM_NONE
        return min(self.source_wm.values())

    def _release(self) -> None:
        wm = self.watermark_ms
        for key in sorted(k for k in self.buffer if k[0] + k[1] <= wm):
            for batch in self.buffer.pop(key):
                self.stage.add(batch)

    def snapshot(self) -> bytes:
        return dump_state({"version": SNAPSHOT_VERSION, "partition": self.partition, "offset": self.offset,
                           "high": self.high, "source_wm": self.source_wm, "buffer": self.buffer, "eos": self.eos,
                           "finished": self.finished, "totals": self.totals, "stage": self.stage.snapshot()})


def _gap(state: Any, first_offset: int) -> int | None:
    """The offset the state expects next, when the input jumped beyond it (else None).

    A jump means offsets were committed past the state's snapshot (a rebalance
    raced the snapshot write): the consumer must seek back. ``accept_gap_at`` lets
    a state take a jump that persists after one seek (a log truncated by retention).
    """
    expected = state.offset + 1
    if first_offset <= expected or state.accept_gap_at == expected:
        return None
    return expected


def _contiguous(items: list, offset_of: Any) -> tuple[list, int | None]:
    """The run of consecutive offsets at the head of ``items`` (repeats dropped), and where a jump starts."""
    out = [items[0]]
    last = offset_of(items[0])
    for item in items[1:]:
        off = offset_of(item)
        if off <= last:
            continue
        if off != last + 1:
            return out, last + 1
        out.append(item)
        last = off
    return out, None


def _validator_state(v: ReadingValidator) -> dict[str, Any]:
    """The validator's de-duplication memory and counters (so a restored worker rejects the same duplicates)."""
    if hasattr(v, "snapshot"):
        return {"snapshot": v.snapshot()}
    return {"seen": getattr(v, "_seen", None), "counts": getattr(v, "_counts", Counter())}


def _restore_validator(v: ReadingValidator, state: dict[str, Any]) -> None:
    if "snapshot" in state and hasattr(v, "restore"):
        v.restore(state["snapshot"])
        return
    v._seen = state.get("seen")  # noqa: SLF001 - until the validator has snapshot()/restore()
    v._counts = state.get("counts", Counter())  # noqa: SLF001


def _late_letters(batch: ReadingBatch, late: np.ndarray, now_ms: int) -> list[DeadLetter]:
    cols = {c: getattr(batch, c).tolist() for c in ReadingBatch.COLUMNS}
    return [DeadLetter("late", "reading arrived after its window closed (beyond allowed lateness)",
                       "readings", None, encode_row_json(cols, int(i)), now_ms, int(i))
            for i in np.flatnonzero(late)]
