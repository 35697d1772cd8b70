"""Publishing camera frames (and one snapshot per camera per minute) to the bus.

Wire format: the message value is the JPEG bytes, untouched (a consumer can
hand it to any image decoder); the key is the camera id, so one camera's frames
stay in order on one partition; the timestamp is the frame time (ms UTC).
Metadata travels in headers, all UTF-8 text:

| header | value |
|---|---|
| ``camera_id`` | camera id (same as the key) |
| ``time_ms`` | frame time, integer ms since the epoch, UTC |
| ``frame_index`` | running frame number of the camera |
| ``width_px``, ``height_px`` | frame size |
| ``encoding`` | ``jpeg`` |
| ``calibration`` | the camera spec as compact JSON (:meth:`CameraSpec.to_dict`): ids, fps, homography, lanes |

Topics: ``camera_frames`` (every frame) and ``camera_snapshots`` (the first
frame of each minute, optionally annotated: the operators' picture, as LTA's
traffic images are).
"""
from __future__ import annotations

from typing import Protocol

import orjson

from models.camera import CameraSpec, FrameMeta

TOPIC_FRAMES = "camera_frames"
TOPIC_SNAPSHOTS = "camera_snapshots"
SNAPSHOT_EVERY_MS = 60_000


class Producer(Protocol):
    """The part of ``ingest.bus.Producer`` used here (Kafka and the memory bus implement it)."""

    def produce(self, topic: str, value: bytes, key: bytes | str | None = None, timestamp_ms: int | None = None,
                headers: dict[str, bytes] | None = None) -> None: ...


class CameraFrameError(ValueError):
    """A frame message whose headers cannot be read (reason code in ``reason``)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def frame_headers(meta: FrameMeta, spec: CameraSpec | None = None) -> dict[str, bytes]:
    """Bus headers for one frame."""
    h = {"camera_id": meta.camera_id.encode(), "time_ms": str(int(meta.time_ms)).encode(),
         "frame_index": str(int(meta.frame_index)).encode(), "width_px": str(meta.width_px).encode(),
         "height_px": str(meta.height_px).encode(), "encoding": meta.encoding.encode()}
    if spec is not None:
        h["calibration"] = orjson.dumps(spec.to_dict())
    return h


def read_frame_headers(headers: dict[str, bytes]) -> tuple[FrameMeta, CameraSpec | None]:
    """Frame metadata (and the camera spec, when present) from bus headers; raises CameraFrameError."""
    try:
        meta = FrameMeta(headers["camera_id"].decode(), int(headers["time_ms"]), int(headers["frame_index"]),
                         int(headers["width_px"]), int(headers["height_px"]),
                         headers.get("encoding", b"jpeg").decode())
    except KeyError as exc:
        raise CameraFrameError("missing_header", f"frame header {exc} missing") from exc
    except ValueError as exc:
        raise CameraFrameError("bad_header", str(exc)) from exc
    spec = None
    if "calibration" in headers:
        try:
            spec = CameraSpec.from_dict(orjson.loads(headers["calibration"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CameraFrameError("bad_calibration", str(exc)) from exc
    return meta, spec


class CameraPublisher:
    """Publishes one camera's JPEG frames, and a snapshot at the first frame of each minute."""

    def __init__(self, producer: Producer, spec: CameraSpec, snapshot_every_ms: int = SNAPSHOT_EVERY_MS,
                 frames_topic: str = TOPIC_FRAMES, snapshots_topic: str = TOPIC_SNAPSHOTS) -> None:
        self.producer = producer
        self.spec = spec
        self.snapshot_every_ms = snapshot_every_ms
        self.frames_topic = frames_topic
        self.snapshots_topic = snapshots_topic
        self._last_snapshot_slot: int | None = None
        self.frames_published = 0
        self.snapshots_published = 0

    def publish(self, jpeg: bytes, time_ms: int, frame_index: int, snapshot_jpeg: bytes | None = None) -> bool:
        """Publish a frame; returns True when it also went out as the minute's snapshot.

        ``snapshot_jpeg`` replaces the snapshot picture (e.g. an annotated frame);
        the raw frame is used otherwise.
        """
        spec = self.spec
        meta = FrameMeta(spec.camera_id, int(time_ms), int(frame_index), spec.width_px, spec.height_px)
        headers = frame_headers(meta, spec)
        self.producer.produce(self.frames_topic, jpeg, key=spec.camera_id, timestamp_ms=int(time_ms), headers=headers)
        self.frames_published += 1
        slot = int(time_ms) // self.snapshot_every_ms
        if slot != self._last_snapshot_slot:
            self._last_snapshot_slot = slot
            self.producer.produce(self.snapshots_topic, snapshot_jpeg or jpeg, key=spec.camera_id,
                                  timestamp_ms=int(time_ms), headers=headers)
            self.snapshots_published += 1
            return True
        return False
