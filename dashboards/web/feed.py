"""Feeding the live state from a running pipeline.

The web layer reads the pipeline's *output topics* with its own consumer group,
as any downstream service would read Kafka: ``flow_windows`` (segment level
only: its messages are keyed by level), ``incidents``, ``alerts`` and
``camera_snapshots``. Nothing in the pipeline changes for the web; the same
code would read the full stack's Kafka topics.

:class:`LiveRun` is the ``on_step`` hook handed to ``run_embedded``: each step
it drains the topics, refreshes the figures and, with a finite ``speedup``,
sleeps so that simulated time runs at ``speedup`` x wall time.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

from dashboards.web.state import CameraSnapshot, LiveState
from dashboards.web.subscriptions import WebSubscriptions
from ingest.camera import TOPIC_SNAPSHOTS, CameraFrameError, read_frame_headers
from models.records import FlowWindowBatch, Incident
from models.wire import decode_alert, decode_flow_windows, decode_incident

log = logging.getLogger(__name__)

TOPICS = ("flow_windows", "incidents", "alerts", TOPIC_SNAPSHOTS)


class BusFeed:
    """Drains the pipeline's output topics into a :class:`LiveState` and the web subscriptions."""

    def __init__(self, bus: Any, state: LiveState, subscriptions: WebSubscriptions | None = None,
                 group: str = "roadpulse-web") -> None:
        self.state = state
        self.subscriptions = subscriptions
        self.consumer = bus.consumer(list(TOPICS), group=group)
        self.bad_messages = 0

    def poll(self, max_messages: int = 1_000_000) -> int:
        """Take everything published since the last poll; returns messages read."""
        messages = self.consumer.poll(max_messages=max_messages)
        segments: list[FlowWindowBatch] = []
        incidents: list[Incident] = []
        alerts = []
        for m in messages:
            try:
                if m.topic == "flow_windows":
                    if m.key == b"segment":
                        batch = decode_flow_windows(m.value)
                        if batch.window_ms == self.state.window_ms:
                            segments.append(batch)
                elif m.topic == "incidents":
                    incidents.append(decode_incident(m.value))
                elif m.topic == "alerts":
                    alerts.append(decode_alert(m.value))
                elif m.topic == TOPIC_SNAPSHOTS:
                    self._camera(m.value, m.headers)
            except (ValueError, KeyError, TypeError, CameraFrameError) as exc:
                self.bad_messages += 1
                log.warning("web feed: cannot read a %s message: %s", m.topic, exc)
        segments.sort(key=lambda b: int(b.window_start_ms.min()))
        incidents.sort(key=lambda i: i.event_ms)
        for batch in segments:  # window by window, as the corridor stage does: usual first, then rules
            self.state.add_segment_windows(batch)
            if self.subscriptions is not None:
                self.state.add_alerts(self.subscriptions.update([batch], []), source="web")
        self.state.add_incidents(incidents)
        self.state.add_alerts(sorted(alerts, key=lambda a: a.at_ms), source="pipeline")
        if self.subscriptions is not None:
            alerting = [i for i in incidents if i.algorithm == self.state.alert_algorithm]
            if alerting:
                self.state.add_alerts(self.subscriptions.update([], alerting), source="web")
        if messages:
            self.consumer.commit()
        return len(messages)

    def _camera(self, jpeg: bytes, headers: dict[str, bytes]) -> None:
        meta, spec = read_frame_headers(headers)
        self.state.set_camera(CameraSnapshot(meta.camera_id, meta.time_ms, bytes(jpeg),
                                             segment_id=getattr(spec, "segment_id", "") or "",
                                             annotated=headers.get("annotated", b"") == b"1"))


class CameraDir:
    """Snapshots from a folder: ``<camera_id>.jpg`` files, re-read when their modification time changes.

    For cameras processed outside the run (``stream/vision`` writing annotated JPEGs).
    An optional ``<camera_id>.json`` beside a picture may give ``segment_id`` and ``time_ms``.
    """

    def __init__(self, folder: str | Path, state: LiveState) -> None:
        self.folder = Path(folder)
        self.state = state
        self._mtimes: dict[str, int] = {}

    def scan(self, now_ms: int | None = None) -> int:
        """Load new or changed pictures; returns how many."""
        if not self.folder.is_dir():
            return 0
        n = 0
        for path in sorted(self.folder.glob("*.jpg")):
            mtime = path.stat().st_mtime_ns
            if self._mtimes.get(path.stem) == mtime:
                continue
            self._mtimes[path.stem] = mtime
            meta: dict[str, Any] = {}
            side = path.with_suffix(".json")
            if side.exists():
                try:
                    meta = json.loads(side.read_text())
                except (OSError, ValueError):
                    meta = {}
            at_ms = int(meta.get("time_ms", now_ms if now_ms is not None else mtime // 1_000_000))
            self.state.set_camera(CameraSnapshot(path.stem, at_ms, path.read_bytes(),
                                                 segment_id=str(meta.get("segment_id", "")),
                                                 annotated=bool(meta.get("annotated", False))))
            n += 1
        return n


class Pacer:
    """Sleeps so that simulated time advances at ``speedup`` x wall time (no pacing when infinite)."""

    def __init__(self, speedup: float, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not speedup > 0:
            raise ValueError(f"speedup must be > 0, got {speedup}")
        self.speedup = float(speedup)
        self._sleep = sleep
        self._clock = clock
        self._origin: tuple[float, int] | None = None

    def pace(self, sim_now_ms: int) -> float:
        """Wait until wall time catches up with ``sim_now_ms``; returns the seconds slept."""
        if self.speedup == float("inf"):
            return 0.0
        if self._origin is None:
            self._origin = (self._clock(), int(sim_now_ms))
            return 0.0
        t0, s0 = self._origin
        wait_s = t0 + (int(sim_now_ms) - s0) / 1000.0 / self.speedup - self._clock()
        if wait_s > 0:
            self._sleep(wait_s)
            return wait_s
        return 0.0


class LiveRun:
    """The ``on_step`` hook of a served run (see the module docstring)."""

    def __init__(self, state: LiveState, subscriptions: WebSubscriptions | None = None,
                 speedup: float = float("inf"), camera_dir: str | Path | None = None) -> None:
        self.state = state
        self.subscriptions = subscriptions
        self.pacer = Pacer(speedup)
        self.cameras = CameraDir(camera_dir, state) if camera_dir else None
        self.feed: BusFeed | None = None
        self.pipeline: Any = None
        self.url = ""  # where the app is served (set by roadpulse.serve.start_for_run)
        self.context: Any = None  # the WebContext served (set by roadpulse.serve.start_for_run)
        self._rate_at: tuple[float, int] | None = None

    def __call__(self, pipeline: Any) -> None:
        """Called by the runtime after every step with the ``EmbeddedPipeline``."""
        if self.feed is None:
            self.pipeline = pipeline
            self.feed = BusFeed(pipeline.bus, self.state, self.subscriptions)
            self.state.set_stats(mode="live", finished=False)
        self.feed.poll()
        if self.cameras is not None:
            self.cameras.scan(pipeline.stats.sim_now_ms)
        self.state.set_stats(**self._figures(pipeline.stats))
        self.pacer.pace(pipeline.stats.sim_now_ms)

    def finish(self) -> None:
        """After ``pipeline.finish``: take the last windows and the clearing of open incidents."""
        if self.feed is not None:
            self.feed.poll()
            figures = self._figures(self.pipeline.stats)
            figures.update(open_incidents=0, finished=True, readings_per_s=0.0)
            self.state.set_stats(**figures)

    def _figures(self, st: Any) -> dict[str, Any]:
        now = time.monotonic()
        rate = self.state.stats.get("readings_per_s")
        if self._rate_at is None:
            self._rate_at = (now, st.readings_in)
        elif now - self._rate_at[0] >= 1.0:
            rate = (st.readings_in - self._rate_at[1]) / (now - self._rate_at[0])
            self._rate_at = (now, st.readings_in)
        return {"sim_now_ms": int(st.sim_now_ms), "readings_in": int(st.readings_in),
                "readings_accepted": int(st.readings_accepted), "messages_in": int(st.messages_in),
                "readings_per_s": None if rate is None else round(float(rate), 1),
                "dead_letters": {str(k): int(v) for k, v in st.dead_letters.items()},
                "open_incidents": int(st.open_incidents), "incident_events": len(st.incidents),
                "alerts_sent": len(st.alerts), "speedup": self.pacer.speedup}
