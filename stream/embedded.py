"""The embedded runtime: sources, bus, traffic core and store in one process.

Sources publish encoded messages to the in-memory bus exactly as they would to
Kafka (one message per station and interval, keyed by station); a consumer
validates them at the door and feeds the two core stages; results go to the
local store and back onto the bus (flow windows, incidents, alerts, dead
letters). Nothing here computes traffic: that is ``stream.core``.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ingest.bus import MemoryBus, Producer
from ingest.chaos import ChaosInjector
from ingest.publish import encode_station_messages
from ingest.validate import ReadingValidator
from models.camera import CameraObservation
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
    def write_cameras(self, observations: Iterable[CameraObservation]) -> None: ...
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
    camera_frames_in: int = 0
    camera_observations: int = 0
    camera_evidence: list[tuple[int, str, float]] = field(default_factory=list)  # (window, segment, value) given


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
        self.cameras: CameraStage | None = None

    def enable_cameras(self, snapshot_dir: str | Path | None = None,
                       evidence_max_age_ms: int = 120_000) -> "CameraStage":
        """Also consume ``camera_frames``: observations to the sink, snapshots to ``snapshot_dir``,
        stopped-vehicle evidence to the corridor stage."""
        self.cameras = CameraStage(self.bus, self.sink, snapshot_dir, evidence_max_age_ms=evidence_max_age_ms)
        return self.cameras

    def step(self, now_ms: int, max_messages: int = 1_000_000) -> None:
        """Drain what is on the readings topic and push it through both stages."""
        if self.cameras is not None:
            self._step_cameras(now_ms)
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

    def _step_cameras(self, now_ms: int, flush: bool = False) -> None:
        cams = self.cameras
        assert cams is not None
        letters = cams.step(now_ms, flush=flush)
        self._emit_letters(letters)
        self.stats.camera_frames_in = cams.frames_in
        self.stats.camera_observations = len(cams.observations)
        self.corridors.set_evidence(cams.evidence(now_ms))

    def finish(self, now_ms: int) -> None:
        """End of stream: close every window and incident."""
        self.step(now_ms)
        if self.cameras is not None:
            self._step_cameras(now_ms, flush=True)
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
        self.stats.camera_evidence.extend(out.evidence)
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


class CameraStage:
    """Camera frames from the bus -> one VisionProcessor per camera -> observations, snapshots, evidence.

    An interval of a camera is closed once the stream time (``now_ms``) has passed
    its end, so a burst of frames inside a minute gives its observation in the same
    step. Burst counts are a sample: observations are scaled to the whole interval
    (``vehicle_count`` per lane x interval / filmed time) before they are stored.
    The latest annotated picture of each camera is written to
    ``snapshot_dir/<camera_id>.jpg`` (with a ``.json`` beside it, as the web's
    ``CameraDir`` reads) and published on ``camera_snapshots`` (header
    ``annotated=1``). A frame that cannot be read becomes a dead letter.

    Stopped vehicle: an interval is flagged when the processor reports a stopped
    vehicle at any of the once-a-second checks made after ``stopped_after_s + 1`` s
    of uninterrupted video (the burst's end alone misses a flag that flickers
    while queued cars merge with the stopped one; earlier in a burst the
    processor's frame period still holds the gap before it, which makes its
    stillness test a frame or two long and flags any car). An interval filmed for
    less than that carries no stopped flag.
    """

    def __init__(self, bus: MemoryBus, sink: ResultSink, snapshot_dir: str | Path | None = None,
                 evidence_max_age_ms: int = 120_000, group: str = "roadpulse-vision") -> None:
        from ingest.camera import TOPIC_FRAMES

        self.sink = sink
        self.consumer = bus.consumer([TOPIC_FRAMES], group=group)
        self.producer = bus.producer()
        self.snapshot_dir = Path(snapshot_dir) if snapshot_dir is not None else None
        self.evidence_max_age_ms = evidence_max_age_ms
        self.processors: dict = {}  # camera_id -> VisionProcessor
        self._last: dict[str, tuple[bytes, int, dict]] = {}  # camera_id -> last frame (jpeg, time, headers)
        self._open: set[str] = set()  # cameras with an interval not yet closed
        self.latest: dict[str, CameraObservation] = {}
        self.observations: list[CameraObservation] = []  # every scaled observation (one per filmed minute)
        self._run_start_ms: dict[str, int] = {}  # first frame of the camera's uninterrupted video
        self._checked_ms: dict[str, int] = {}
        self._stopped_since: dict[str, int | None] = {}  # per camera, for its current interval (None = no)
        self.frames_in = 0
        self.snapshots_written = 0
        self.cpu_s = 0.0  # CPU seconds spent here (decode, vision, snapshots)

    def step(self, now_ms: int, flush: bool = False) -> list[DeadLetter]:
        """Process the frames on the bus; close intervals that ended by ``now_ms`` (all, with ``flush``)."""
        t0 = time.process_time()
        try:
            return self._step(now_ms, flush)
        finally:
            self.cpu_s += time.process_time() - t0

    def _step(self, now_ms: int, flush: bool) -> list[DeadLetter]:
        from ingest.camera import CameraFrameError, read_frame_headers
        from stream.vision import VisionConfig, VisionProcessor

        letters: list[DeadLetter] = []
        raw: list[CameraObservation] = []
        for m in self.consumer.poll(max_messages=1_000_000):
            try:
                meta, spec = read_frame_headers(m.headers)
                vp = self.processors.get(meta.camera_id)
                if vp is None:
                    if spec is None:
                        raise CameraFrameError("missing_header", "first frame of a camera without calibration")
                    vp = self.processors[meta.camera_id] = VisionProcessor(spec, VisionConfig())
                closed = vp.process(m.value, meta.time_ms)
            except (CameraFrameError, ValueError) as exc:
                reason = getattr(exc, "reason", "bad_frame")
                letters.append(DeadLetter(reason, str(exc), "camera_frames", m.key_str, b"", now_ms, None))
                continue
            raw.extend(self._with_stopped(o) for o in closed)
            self._check_stopped(meta.camera_id, vp, meta.time_ms)
            self.frames_in += 1
            self._open.add(meta.camera_id)
            self._last[meta.camera_id] = (m.value, meta.time_ms, m.headers)
        self.consumer.commit()
        closed_now: list[str] = []
        for cam_id in sorted(self._open):
            vp = self.processors[cam_id]
            _, last_ms, _ = self._last[cam_id]
            length = vp.config.interval_ms
            if flush or last_ms - last_ms % length + length <= now_ms:
                raw.extend(self._with_stopped(o) for o in vp.flush())
                self._open.discard(cam_id)
                closed_now.append(cam_id)
        scaled = [self._scaled(o) for o in raw]
        if scaled:
            self.sink.write_cameras(scaled)
            self.observations.extend(scaled)
            for o in scaled:
                cur = self.latest.get(o.camera_id)
                if cur is None or o.interval_start_ms >= cur.interval_start_ms:
                    self.latest[o.camera_id] = o
        for cam_id in closed_now:
            self._snapshot(cam_id)
        return letters

    def _check_stopped(self, cam_id: str, vp, time_ms: int) -> None:
        last = self._last.get(cam_id)
        if last is None or time_ms - last[1] > 2000:
            self._run_start_ms[cam_id] = time_ms
        settle_ms = int((vp.config.stopped_after_s + 1.0) * 1000)
        if time_ms - self._run_start_ms[cam_id] < settle_ms or time_ms - self._checked_ms.get(cam_id, -10**15) < 1000:
            return
        self._checked_ms[cam_id] = time_ms
        since = vp.stopped_vehicle(time_ms)
        if since is not None:
            cur = self._stopped_since.get(cam_id)
            self._stopped_since[cam_id] = since if cur is None else min(cur, since)

    def _with_stopped(self, obs: CameraObservation) -> CameraObservation:
        since = self._stopped_since.pop(obs.camera_id, None)
        return replace(obs, stopped_vehicle=since is not None, stopped_since_ms=since)

    def evidence(self, now_ms: int) -> dict[str, float]:
        """Stopped-vehicle evidence per segment (1.0) from each camera's latest observation, if recent."""
        from stream.vision import segment_evidence

        fresh = [o for o in self.latest.values()
                 if o.interval_start_ms + o.interval_ms + self.evidence_max_age_ms > now_ms]
        return {seg: 1.0 for seg, ev in segment_evidence(fresh).items() if ev.stopped_vehicle}

    def _scaled(self, obs: CameraObservation) -> CameraObservation:
        vp = self.processors[obs.camera_id]
        filmed_ms = obs.frames * 1000.0 / vp.spec.fps
        if filmed_ms <= 0:
            return obs
        factor = obs.interval_ms / filmed_ms
        return replace(obs, count_per_lane=tuple(int(round(c * factor)) for c in obs.count_per_lane))

    def _snapshot(self, cam_id: str) -> None:
        """The operators' picture: the last frame with detections, lane and count lines drawn."""
        import cv2
        import numpy as np

        from stream.vision import annotate

        jpeg, time_ms, headers = self._last[cam_id]
        vp = self.processors[cam_id]
        frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        if frame is None:
            return
        obs = self.latest.get(cam_id)
        stopped = obs is not None and obs.stopped_vehicle  # this interval's observation (written just before)
        label = f"{cam_id} {vp.spec.segment_id}" + ("  STOPPED VEHICLE" if stopped else "")
        picture = annotate(frame, vp.detections_full_px(), vp.spec.calibration, label=label)
        ok, buf = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            return
        data = buf.tobytes()
        self.producer.produce("camera_snapshots", data, key=cam_id, timestamp_ms=time_ms,
                              headers={**headers, "annotated": b"1"})
        if self.snapshot_dir is not None:
            self.snapshot_dir.mkdir(parents=True, exist_ok=True)
            _write_atomic(self.snapshot_dir / f"{cam_id}.jpg", data)
            meta = {"camera_id": cam_id, "station_id": vp.spec.station_id, "segment_id": vp.spec.segment_id,
                    "time_ms": time_ms, "annotated": True, "stopped_vehicle": stopped,
                    "interval_start_ms": None if obs is None else obs.interval_start_ms}
            _write_atomic(self.snapshot_dir / f"{cam_id}.json", json.dumps(meta).encode())
        self.snapshots_written += 1


def _write_atomic(path: Path, data: bytes) -> None:
    """Write a file so a reader never sees half of it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


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
