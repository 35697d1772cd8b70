"""Camera evidence for incident detection, per road segment.

The loop-detector incident algorithms see speeds and occupancies drop; a camera
sees the cause. This folds the latest CameraObservation of each camera into
one record per segment, for the incident lifecycle to raise confidence (or open
an incident) when a stopped vehicle is seen.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from models.camera import CameraObservation


@dataclass(frozen=True, slots=True)
class SegmentEvidence:
    """What the cameras of one segment saw in their latest interval."""

    segment_id: str
    interval_start_ms: int
    stopped_vehicle: bool
    stopped_since_ms: int | None
    queue_length_m: float
    camera_ids: tuple[str, ...]


def segment_evidence(observations: Iterable[CameraObservation]) -> dict[str, SegmentEvidence]:
    """Per segment id: stopped vehicle if any of its cameras saw one in its latest interval.

    Observations of one camera may come in any order; only each camera's latest
    interval counts, so a cleared stopped vehicle stops being evidence. Cameras
    with no frames in their latest interval are ignored (silent, not "clear").
    """
    latest: dict[str, CameraObservation] = {}
    for obs in observations:
        cur = latest.get(obs.camera_id)
        if cur is None or obs.interval_start_ms >= cur.interval_start_ms:
            latest[obs.camera_id] = obs
    by_segment: dict[str, list[CameraObservation]] = {}
    for obs in latest.values():
        if obs.frames > 0 and obs.segment_id:
            by_segment.setdefault(obs.segment_id, []).append(obs)
    out: dict[str, SegmentEvidence] = {}
    for seg, obs_list in by_segment.items():
        stopped = [o for o in obs_list if o.stopped_vehicle]
        since = [o.stopped_since_ms for o in stopped if o.stopped_since_ms is not None]
        out[seg] = SegmentEvidence(seg, max(o.interval_start_ms for o in obs_list), bool(stopped),
                                   min(since) if since else None, max(o.queue_length_m for o in obs_list),
                                   tuple(sorted(o.camera_id for o in obs_list)))
    return out
