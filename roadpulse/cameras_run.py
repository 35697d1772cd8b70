"""Roadside cameras in ``roadpulse run``: simulated feeds next to the loops, on a budget.

:class:`CameraWorld` is the camera side of the simulated world. It puts a few
cameras on stations of the first roadways (chosen deterministically from the
network, plus one on the segment of each staged incident), and at the end of
each simulated minute renders a short burst for the cameras that are due,
driven by that station's per-lane loop flow and speed of the minute and by the
ground truth (a stopped vehicle in view while a true incident is active on the
watched segment: the simulated world, not detection). Frames go to the bus
(``camera_frames``, snapshots on ``camera_snapshots``) through
:class:`ingest.camera.CameraPublisher`; the pipeline's
:class:`stream.embedded.CameraStage` turns them into observations and evidence.

Cost decides the schedule. Rendering, JPEG and vision cost about 10 ms of CPU
per frame here and :class:`simulators.camera.CameraSource` also steps the
microscopic traffic through every minute (~0.3 s a camera-minute), so bursts
every minute for 4 cameras would add hours to a simulated day. Instead:

* a **census** burst per camera every ``every_min`` minutes (counts, speeds,
  the operators' picture);
* a **cued** burst every minute while the incident detector suspects the
  watched segment (a candidate building persistence, or an alarm): the loops
  point the camera, as traffic centres cue CCTV from detector alarms; capped at
  ``cue_max_min`` minutes in a row;
* no stepping through the gaps: before a burst the scene is refilled at the
  minute's flow and speed and stepped coarsely (0.5 s, no drawing) for 20 s, so
  vehicles arrive at the loops' flow (a freshly filled road alone carries ~15 %
  fewer); while a true incident is active, for up to 2 minutes of it, so the
  stopped vehicle and its queue are there when the burst starts.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from ingest.bus import Producer
from ingest.camera import CameraPublisher
from models.camera import CameraObservation
from models.network import Network, Segment, Station
from models.records import ReadingBatch
from simulators.camera import CameraSimulator, IncidentSpec, SimulatedCamera, simulated_camera
from simulators.camera.traffic import Vehicles
from simulators.incidents import IncidentTruth

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
DEFAULT_CAMERAS = 4
INCIDENT_WARM_MS = 120_000  # how much of an active incident is simulated before a burst
SCENE_WARM_MS = 20_000  # arrivals simulated before every burst: a freshly filled road carries ~15 % too few
WARM_STEP_MS = 500  # coarse steps for that warm-up (no rendering)


@dataclass(frozen=True)
class CameraPlan:
    """How many cameras, where, and how much video they make (see the module docstring)."""

    n_cameras: int = DEFAULT_CAMERAS
    roadways: int = 2  # cameras go on the first this many roadways, spread evenly
    every_min: int = 60  # census burst cadence per camera
    burst_s: float = 5.0  # video per census burst
    cued_burst_s: float = 8.0  # video per cued burst (stopped-vehicle test needs 5 s of stillness)
    cue: bool = True
    cue_max_min: int = 30
    watch_staged: bool = True  # also a camera on the segment of each staged incident
    fps: float = 10.0
    width_px: int = 640
    height_px: int = 360
    warmup_s: float = 5.0  # extra video before a camera's first burst (vision background warm-up)
    stop_x_m: float = 50.0  # where the incident vehicle stands in the camera's road coordinates
    evidence_max_age_ms: int = 2 * MINUTE_MS

    def __post_init__(self) -> None:
        if self.n_cameras < 0 or self.every_min < 1 or self.cue_max_min < 0:
            raise ValueError("n_cameras >= 0, every_min >= 1 and cue_max_min >= 0 please")
        if not (0 < self.burst_s <= 50 and 0 < self.cued_burst_s <= 50 and 0 <= self.warmup_s <= 10):
            raise ValueError("burst_s and cued_burst_s must be in (0, 50] s, warmup_s in [0, 10] s")

    @classmethod
    def from_settings(cls, extra: dict[str, Any]) -> "CameraPlan":
        """From ``Settings.extra``: ``cameras`` (N, 0 = none), ``camera_every_min``, ``camera_burst_s``,
        ``camera_cue`` (bool)."""
        kw: dict[str, Any] = {}
        for key, name, cast in (("cameras", "n_cameras", int), ("camera_every_min", "every_min", int),
                                ("camera_burst_s", "burst_s", float), ("camera_cue", "cue", bool)):
            if extra.get(key) is not None:
                kw[name] = cast(extra[key])
        return cls(**kw)


def choose_segments(network: Network, n: int, roadways: int = 2, staged: Iterable[str] = ()) -> list[Segment]:
    """Watched segments: ``n`` spread evenly over the first ``roadways`` roadways (a camera at the
    upstream station of each), then the staged incidents' segments not yet watched. Deterministic."""
    rws = [r for r in network.roadways[:roadways] if len(r.stations) >= 2]
    picks: list[Segment] = []
    if n > 0 and rws:
        for i, r in enumerate(rws):
            k = n // len(rws) + (1 if i < n % len(rws) else 0)
            segs = r.segments
            for j in range(min(k, len(segs))):
                picks.append(segs[min(int((j + 0.5) * len(segs) / k), len(segs) - 1)])
    seen: set[str] = set()
    out = []
    for seg in picks + [network.segment_by_id[s] for s in staged if s in network.segment_by_id]:
        if seg.segment_id not in seen:
            seen.add(seg.segment_id)
            out.append(seg)
    return out


@dataclass
class CameraSite:
    """One simulated camera and its bookkeeping."""

    camera: SimulatedCamera
    station: Station
    detectors: np.ndarray  # detector numbers of the station, lane order
    downstream: np.ndarray  # detector numbers of the watched segment's downstream station
    sim: CameraSimulator
    publisher: CameraPublisher
    next_census_ms: int
    cued: bool = False
    cued_streak: int = 0
    bursts: int = 0
    cued_bursts: int = 0
    frames: int = 0

    @property
    def camera_id(self) -> str:
        return self.camera.spec.camera_id

    @property
    def segment_id(self) -> str:
        return self.camera.spec.segment_id


@dataclass(frozen=True)
class LoopMinute:
    """What the station's loops read in a minute a camera filmed (for the camera-vs-loop table)."""

    vehicles: int
    speed_kmh: float  # count-weighted mean of the lanes' interval speeds


@dataclass
class _MinuteAcc:
    count: np.ndarray
    speed_sum: np.ndarray
    speed_n: np.ndarray
    interval_ms: np.ndarray


class CameraWorld:
    """The simulated cameras of a run: per minute, bursts of frames published to the bus."""

    def __init__(self, network: Network, plan: CameraPlan, producer: Producer, truths: list[IncidentTruth],
                 start_ms: int, seed: int = 0, staged_segments: Iterable[str] = ()) -> None:
        self.network = network
        self.plan = plan
        self.truths = [t for t in truths if t.segment_id]
        self.sites: list[CameraSite] = []
        staged = list(staged_segments) if plan.watch_staged else []
        segments = choose_segments(network, plan.n_cameras, plan.roadways, staged) if plan.n_cameras or staged else []
        first_minute = start_ms - start_ms % MINUTE_MS
        # census slots staggered over the cadence, the staged incidents' cameras first (their scene matters most)
        slots = sorted(range(len(segments)), key=lambda i: (segments[i].segment_id not in staged, i))
        slot_of = {i: rank for rank, i in enumerate(slots)}
        for k, seg in enumerate(segments):
            station = network.station_by_id[seg.upstream_station]
            cam = simulated_camera(f"CAM-{station.station_id}", station.station_id, seg.segment_id,
                                   n_lanes=station.lanes, width_px=plan.width_px, height_px=plan.height_px,
                                   fps=plan.fps)
            self.sites.append(CameraSite(
                cam, station, network.detector_numbers(list(station.detector_ids)),
                network.detector_numbers(list(network.station_by_id[seg.downstream_station].detector_ids)),
                CameraSimulator(cam, seed=seed * 1000 + k, start_ms=first_minute),
                CameraPublisher(producer, cam.spec),
                next_census_ms=first_minute + (slot_of[k] * plan.every_min // max(len(segments), 1)) * MINUTE_MS))
        self.loop_minutes: dict[tuple[str, int], LoopMinute] = {}
        self.cpu_s = 0.0
        self._acc: dict[int, _MinuteAcc] = {}
        self._all = (np.concatenate([np.r_[s.detectors, s.downstream] for s in self.sites]) if self.sites
                     else np.empty(0, np.int64))

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.sites)

    @property
    def bursts(self) -> int:
        return sum(s.bursts for s in self.sites)

    # ---- the simulated minute -------------------------------------------------
    def on_batch(self, batch: ReadingBatch) -> int:
        """Take one simulator batch (before any corruption); when it completes a minute, film the cameras
        that are due. Returns frames published."""
        if not self.sites or len(batch) == 0:
            return 0
        t0 = time.process_time()
        try:
            self._accumulate(batch)
            end = int(batch.interval_start_ms.max() + batch.interval_ms.max())
            if end % MINUTE_MS:
                return 0
            minute = end - MINUTE_MS
            acc = self._acc.pop(minute, None)
            for m in [m for m in self._acc if m < minute]:  # a minute that never completed
                del self._acc[m]
            return self._film(minute, acc) if acc is not None else 0
        finally:
            self.cpu_s += time.process_time() - t0

    def cue(self, suspected: set[str]) -> None:
        """Segments the incident detector suspects now: their cameras film every minute (capped)."""
        for s in self.sites:
            if not self.plan.cue or s.segment_id not in suspected:
                s.cued, s.cued_streak = False, 0
            elif s.cued_streak < self.plan.cue_max_min:
                s.cued = True
            else:
                s.cued = False  # capped: back to census until the suspicion clears once

    def _accumulate(self, batch: ReadingBatch) -> None:
        net = self.network
        ids = batch.detector_id
        num = net.detector_numbers(ids)
        minute = batch.interval_start_ms - batch.interval_start_ms % MINUTE_MS
        rows = np.flatnonzero(np.isin(num, self._all))
        for i in rows:
            m = int(minute[i])
            acc = self._acc.get(m)
            if acc is None:
                n = net.n_detectors
                acc = self._acc[m] = _MinuteAcc(np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n))
            d = num[i]
            c = max(float(batch.vehicle_count[i]), 0.0)
            acc.count[d] += c
            acc.interval_ms[d] += float(batch.interval_ms[i])
            v = float(batch.speed_kmh[i])
            if c > 0 and math.isfinite(v) and v > 0:
                acc.speed_sum[d] += c * v
                acc.speed_n[d] += c

    def _film(self, minute: int, acc: _MinuteAcc) -> int:
        plan = self.plan
        sent = 0
        for s in self.sites:
            d = s.detectors
            count, covered = acc.count[d], acc.interval_ms[d]
            with np.errstate(invalid="ignore", divide="ignore"):
                flow = np.where(covered > 0, count * 3_600_000 / covered, np.nan)
                lane_speed = np.where(acc.speed_n[d] > 0, acc.speed_sum[d] / acc.speed_n[d], np.nan)
            station_speed = (float(acc.speed_sum[d].sum() / acc.speed_n[d].sum()) if acc.speed_n[d].sum() > 0
                             else float("nan"))
            due = s.cued or minute >= s.next_census_ms
            if not due:
                continue
            if not np.isfinite(flow).any():
                continue  # the station said nothing this minute: nothing to drive the scene with
            flow = np.where(np.isfinite(flow), flow, np.nanmean(flow))
            fallback = station_speed if math.isfinite(station_speed) else 80.0
            speed = np.where(np.isfinite(lane_speed), lane_speed, fallback)
            self.loop_minutes[(s.camera_id, minute)] = LoopMinute(int(round(count.sum() * MINUTE_MS
                                                                            / max(covered.max(), 1.0))),
                                                                  station_speed)
            incident, _ = self._incident(s, minute + MINUTE_MS - 1)
            if incident.active:
                # the camera looks at the incident site: traffic in the open lanes has got past the
                # blockage and moves at the downstream station's speed, not the queue's; the blocked
                # lane's loops read almost nothing, but vehicles still arrive there (and stop, or merge)
                dn = s.downstream
                if acc.speed_n[dn].sum() > 0:
                    speed = np.full_like(speed, acc.speed_sum[dn].sum() / acc.speed_n[dn].sum())
                flow = flow.copy()
                flow[incident.lane - 1] = max(flow[incident.lane - 1], float(flow.mean()))
            burst_s = plan.cued_burst_s if s.cued else plan.burst_s
            if s.bursts == 0:
                burst_s += plan.warmup_s
            sent += self._burst(s, minute, flow, speed, burst_s)
            s.bursts += 1
            if s.cued:
                s.cued_bursts += 1
                s.cued_streak += 1
            if minute >= s.next_census_ms:
                s.next_census_ms = minute + plan.every_min * MINUTE_MS
        return sent

    def _burst(self, s: CameraSite, minute: int, flow: np.ndarray, speed: np.ndarray, burst_s: float) -> int:
        sim = s.sim
        frame_ms = sim.frame_ms
        n_frames = max(int(round(burst_s * 1000 / frame_ms)), 1)
        start = minute + MINUTE_MS - (n_frames + 1) * frame_ms  # the last frame still inside the minute
        incident, since_ms = self._incident(s, start)
        warm_ms = max(SCENE_WARM_MS, 0 if since_ms is None else min(max(start - since_ms, 0), INCIDENT_WARM_MS))
        warm_ms -= warm_ms % WARM_STEP_MS
        # a fresh scene in steady state (no stepping through the gap since the last burst)
        sim.advance(0, flow, speed)  # populates on first use; the scene is replaced just below
        sim.traffic.v = Vehicles.empty()
        sim.traffic.populate(flow, speed, start - warm_ms)
        sim.time_ms = start - warm_ms
        for _ in range(warm_ms // WARM_STEP_MS):
            sim.traffic.step(WARM_STEP_MS / 1000.0, flow, speed, incident)
            sim.time_ms += WARM_STEP_MS
        quality = s.camera.conditions.jpeg_quality
        for _ in range(n_frames):
            f = sim.frame(flow, speed, incident)
            s.publisher.publish(f.jpeg(quality), f.time_ms, f.frame_index)
        s.frames += n_frames
        return n_frames

    def _incident(self, s: CameraSite, at_ms: int) -> tuple[IncidentSpec, int | None]:
        """Ground truth: a stopped vehicle in view while a true incident is active on the watched segment
        (in the shoulder-side lane, where the simulator blocks lanes)."""
        for t in self.truths:
            if t.segment_id == s.segment_id and t.start_ms <= at_ms < t.end_ms:
                lane = s.camera.spec.calibration.n_lanes
                return IncidentSpec(True, lane, self.plan.stop_x_m), t.start_ms
        return IncidentSpec(), None


# ---- the summary ----------------------------------------------------------------
@dataclass
class CameraRow:
    camera_id: str
    segment_id: str
    minutes: int
    camera_veh_min: float
    loop_veh_min: float
    camera_speed_kmh: float
    loop_speed_kmh: float
    stopped_flags: int
    bursts: int
    cued_bursts: int

    @property
    def ratio(self) -> float:
        return self.camera_veh_min / self.loop_veh_min if self.loop_veh_min > 0 else float("nan")


@dataclass
class CameraSummary:
    rows: list[CameraRow] = field(default_factory=list)
    frames: int = 0
    bursts: int = 0
    cpu_s: float = 0.0  # camera simulation + vision, CPU seconds
    evidence_windows: int = 0  # incident-detector windows that got camera evidence (segment x window)
    snapshots: int = 0

    @property
    def total_ratio(self) -> float:
        cam = sum(r.camera_veh_min * r.minutes for r in self.rows)
        loop = sum(r.loop_veh_min * r.minutes for r in self.rows)
        return cam / loop if loop > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"cameras": len(self.rows), "frames": self.frames, "bursts": self.bursts,
                "cpu_s": round(self.cpu_s, 2), "evidence_windows": self.evidence_windows,
                "snapshots": self.snapshots,
                "camera_vs_loop_vehicles": None if math.isnan(self.total_ratio) else round(self.total_ratio, 3),
                "per_camera": [{**{k: v for k, v in r.__dict__.items()}, "ratio": r.ratio} for r in self.rows]}


def summarise(world: CameraWorld, observations: list[CameraObservation], cpu_s: float,
              evidence_windows: int, snapshots: int) -> CameraSummary:
    """Camera vs loop per camera, over the minutes the camera filmed (observations already scaled)."""
    out = CameraSummary(frames=world.frames, bursts=world.bursts, cpu_s=cpu_s, evidence_windows=evidence_windows,
                        snapshots=snapshots)
    by_cam: dict[str, list[CameraObservation]] = {}
    for o in observations:
        by_cam.setdefault(o.camera_id, []).append(o)
    for s in world.sites:
        obs = [o for o in by_cam.get(s.camera_id, []) if o.frames > 0
               and (s.camera_id, o.interval_start_ms) in world.loop_minutes]
        loops = [world.loop_minutes[(s.camera_id, o.interval_start_ms)] for o in obs]
        cam_speed = [o.mean_speed_kmh for o in obs if math.isfinite(o.mean_speed_kmh)]
        loop_speed = [lm.speed_kmh for lm in loops if math.isfinite(lm.speed_kmh)]
        out.rows.append(CameraRow(
            s.camera_id, s.segment_id, len(obs),
            float(np.mean([o.vehicle_count for o in obs])) if obs else float("nan"),
            float(np.mean([lm.vehicles for lm in loops])) if loops else float("nan"),
            float(np.mean(cam_speed)) if cam_speed else float("nan"),
            float(np.mean(loop_speed)) if loop_speed else float("nan"),
            sum(1 for o in obs if o.stopped_vehicle), s.bursts, s.cued_bursts))
    return out


def format_camera_table(summary: CameraSummary) -> list[str]:
    """Summary lines: camera vs loop per camera."""
    if not summary.rows:
        return []

    def num(v: float, fmt: str = ".1f") -> str:
        return "-" if v is None or not math.isfinite(v) else format(v, fmt)

    lines = [f"  cameras              {len(summary.rows)} cameras, {summary.bursts:,} bursts, {summary.frames:,} frames "
             f"({summary.cpu_s:.1f} s CPU), {summary.evidence_windows} detector windows with camera evidence",
             f"    {'camera':<16}{'segment':<24}{'min':>5}{'cam veh/min':>12}{'loop veh/min':>13}{'ratio':>7}"
             f"{'cam km/h':>10}{'loop km/h':>10}{'stopped':>9}"]
    for r in summary.rows:
        lines.append(f"    {r.camera_id:<16}{r.segment_id:<24}{r.minutes:>5}{num(r.camera_veh_min):>12}"
                     f"{num(r.loop_veh_min):>13}{num(r.ratio, '.2f'):>7}{num(r.camera_speed_kmh, '.0f'):>10}"
                     f"{num(r.loop_speed_kmh, '.0f'):>10}{r.stopped_flags:>9}")
    return lines
