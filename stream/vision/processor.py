"""The per-camera vision processor: JPEG frames in, CameraObservation per interval out.

Pipeline per frame (grey, half-size decode, cropped to the watched road):
median background -> foreground with shadow handling -> open/close ->
blobs split at lane lines -> tracks in road metres -> counts at the line,
speeds, stopped vehicles, queue and occupancy. Pure: no clock, no IO; the
caller passes each frame's time.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from models.camera import CameraObservation, CameraSpec
from stream.vision.background import MedianBackground
from stream.vision.detect import BlobDetector, Detections
from stream.vision.tracker import Crossing, Tracker

SLOW_KMH = 10.0


@dataclass(frozen=True)
class VisionConfig:
    """Tuning of the vision processor; the defaults serve the simulated expressway cameras and NGSIM alike."""

    decode_scale: int = 2  # 1, 2, 4 or 8: JPEG decoded at 1/scale size (cv2.IMREAD_REDUCED_GRAYSCALE_n)
    threshold: int = 18  # grey levels from the background to count as foreground
    shadow_ratio: float = 0.5  # darker than background by less than this ratio = shadow candidate
    shadow_keep_px: int = 2
    open_px: int = 3
    close_px: int = 3
    split_length_m: float | None = None  # cut blobs longer than this along the road (top-down views)
    min_piece_frac: float = 0.6
    interval_ms: int = 60_000
    stopped_after_s: float = 5.0  # a vehicle still this long (after the 2 s stillness window) is stopped
    gate_m: float = 4.0
    watch_margin_m: float = 1.0  # also watch this far beside the carriageway's edge lines


@dataclass
class _Interval:
    start_ms: int
    counts: np.ndarray
    speeds: list[float] = field(default_factory=list)
    lane_speeds: list[list[float]] = field(default_factory=list)
    occupancy_sum: float = 0.0
    frames: int = 0


class VisionProcessor:
    """Watches one camera. Feed frames in time order with :meth:`process`; observations come out per interval."""

    def __init__(self, spec: CameraSpec, config: VisionConfig | None = None) -> None:
        self.spec = spec
        self.config = cfg = config or VisionConfig()
        if cfg.decode_scale not in (1, 2, 4, 8):
            raise ValueError("decode_scale must be 1, 2, 4 or 8")
        self._flag = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2,
                      4: cv2.IMREAD_REDUCED_GRAYSCALE_4, 8: cv2.IMREAD_REDUCED_GRAYSCALE_8}[cfg.decode_scale]
        self.calibration = spec.calibration.scaled(1.0 / cfg.decode_scale)
        full = BlobDetector(self.calibration, margin_m=cfg.watch_margin_m)
        x0, y0, x1, y1 = full.roi
        self.roi = (x0, y0, x1, y1)
        # the detector works on the crop: shift the homography by the crop origin
        shift = np.array([[1.0, 0, -x0], [0, 1.0, -y0], [0, 0, 1.0]])
        h = shift @ self.calibration.matrix
        crop_cal = type(self.calibration)(tuple(float(v) for v in h.ravel()), x1 - x0, y1 - y0,
                                          self.calibration.n_lanes, self.calibration.lane_width_m,
                                          self.calibration.view_start_m, self.calibration.view_end_m,
                                          self.calibration.count_line_m)
        self.detector = BlobDetector(crop_cal, min_piece_frac=cfg.min_piece_frac, split_length_m=cfg.split_length_m,
                                     margin_m=cfg.watch_margin_m)
        self.background = MedianBackground()
        self.tracker = Tracker(self.calibration.count_line_m, self.calibration.lane_of, gate_m=cfg.gate_m)
        self._open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (cfg.open_px, cfg.open_px))
        self._close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (cfg.close_px, cfg.close_px))
        self._interval: _Interval | None = None
        self.last_detections = Detections.empty()
        self.last_crossings: list[Crossing] = []
        self.last_mask: np.ndarray | None = None
        self._last_frame_ms: int | None = None
        self._static: np.ndarray | None = None  # frames each pixel has been foreground without a break
        self._static_time_ms = 0
        self._last_fg_ms: int | None = None
        self._frame_ms: float | None = None

    # ---- frames -------------------------------------------------------------
    def decode(self, jpeg: bytes) -> np.ndarray:
        """Grey frame at working size from JPEG bytes."""
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), self._flag)
        if img is None:
            raise ValueError("not a decodable JPEG")
        return img

    def process(self, jpeg: bytes, time_ms: int) -> list[CameraObservation]:
        """One JPEG frame; returns the observations of intervals that closed before it."""
        return self.process_gray(self.decode(jpeg), time_ms)

    def process_gray(self, gray: np.ndarray, time_ms: int) -> list[CameraObservation]:
        """One grey frame at working size (``decode_scale`` of the camera's frame size)."""
        out = self._roll(time_ms)
        if self._last_frame_ms is not None and time_ms - self._last_frame_ms > 2000:
            # a gap (burst mode, camera outage): moving tracks are stale, stopped ones may still be there
            self.tracker.tracks = [t for t in self.tracker.tracks if t.still_since_ms is not None]
        self._last_frame_ms = time_ms
        x0, y0, x1, y1 = self.roi
        crop = gray[y0:y1, x0:x1]
        bg = self.background
        if not bg.ready:
            bg.warm(crop, time_ms)
            return out
        cfg = self.config
        fg = bg.foreground(crop, cfg.threshold, cfg.shadow_ratio, cfg.shadow_keep_px)
        fg = cv2.bitwise_and(fg, self.detector.road_mask)
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self._open)
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, self._close)
        det = self.detector.detect(fg)
        crossings = self.tracker.update(det, time_ms)
        self._hold_stopped(fg, time_ms)
        bg.update(crop, time_ms, self._frozen(crop.shape))
        self.last_mask = fg
        self.last_detections = det
        self.last_crossings = crossings
        iv = self._interval
        assert iv is not None
        for c in crossings:
            if 1 <= c.lane <= len(iv.counts):
                iv.counts[c.lane - 1] += 1
                iv.speeds.append(c.speed_kmh)
                iv.lane_speeds[c.lane - 1].append(c.speed_kmh)
        iv.occupancy_sum += 100.0 * cv2.countNonZero(fg) / self.detector.road_px
        iv.frames += 1
        return out

    def _hold_stopped(self, fg: np.ndarray, time_ms: int) -> None:
        """Per-pixel persistence: how many frames each pixel has been foreground without a break.

        A vehicle standing in the road keeps its pixels foreground (learning is
        frozen under it, see :meth:`_frozen`); moving traffic, even dense, leaves
        gaps. This is independent of tracking, which breaks easily around a
        stopped vehicle (the queue behind it merges into its blob).
        """
        if self._last_fg_ms is not None:
            dt = time_ms - self._last_fg_ms
            self._frame_ms = dt if self._frame_ms is None else 0.9 * self._frame_ms + 0.1 * dt
        self._last_fg_ms = time_ms
        if self._static is None or self._static.shape != fg.shape:
            self._static = np.zeros(fg.shape, np.uint16)
        st = self._static
        cv2.add(st, 1, dst=st, mask=fg)
        self._static = st = cv2.bitwise_and(st, st, mask=fg)
        self._static_time_ms = time_ms

    def _static_frames(self, seconds: float) -> int:
        return max(int(round(seconds * 1000.0 / (self._frame_ms or 100.0))), 1)

    def _frozen(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """Pixels the background must not learn: those still foreground after 2 s (a vehicle that may be stopping)."""
        if self._static is None:
            return None
        return cv2.compare(self._static, self._static_frames(2.0), cv2.CMP_GE)

    # ---- intervals ------------------------------------------------------------
    def _roll(self, time_ms: int) -> list[CameraObservation]:
        length = self.config.interval_ms
        start = time_ms - time_ms % length
        out: list[CameraObservation] = []
        if self._interval is not None and start > self._interval.start_ms:
            out.append(self._observation(self._interval.start_ms + length))
            self._interval = None
        if self._interval is None:
            n = self.calibration.n_lanes
            self._interval = _Interval(start, np.zeros(n, np.int64), lane_speeds=[[] for _ in range(n)])
        return out

    def flush(self) -> list[CameraObservation]:
        """Close the current interval (end of stream)."""
        if self._interval is None:
            return []
        obs = self._observation(self._interval.start_ms + self.config.interval_ms)
        self._interval = None
        return [obs]

    def stopped_vehicle(self, now_ms: int) -> int | None:
        """Time a vehicle stopped, if one has stood inside the road for ``stopped_after_s`` while others moved."""
        if self._static is None:
            return None
        cfg = self.config
        need = self._static_frames(cfg.stopped_after_s)
        mask = cv2.compare(self._static, need, cv2.CMP_GE)
        n, lab, stats, cen = cv2.connectedComponentsWithStatsWithAlgorithm(mask, 8, cv2.CV_32S, cv2.CCL_GRANA)
        if n <= 1:
            return None
        car_px = 8.1 * self.detector._px_per_m(self.detector.to_m(cen[1:])) ** 2
        big = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= 0.25 * car_px) + 1
        if len(big) == 0:
            return None
        moving = any(abs(t.velocity_ms()) * 3.6 > 15.0 for t in self.tracker.tracks if t.confirmed and t.misses <= 2)
        if not moving:  # everything stands: a jam, not a stopped vehicle
            return None
        frames = max(int(self._static[lab == k].max()) for k in big)
        return int(self._static_time_ms - frames * (self._frame_ms or 100.0))

    def queue_length_m(self) -> float:
        """Longest run of slow vehicles in one lane (gaps under 15 m), in metres."""
        best = 0.0
        slow = [t for t in self.tracker.tracks if t.confirmed and t.misses <= 1 and abs(t.velocity_ms()) * 3.6 < SLOW_KMH]
        if not slow:
            return 0.0
        lanes = self.calibration.lane_of(np.array([t.y_m[-1] for t in slow]))
        xs = np.array([t.x_m[-1] for t in slow])
        for lane in np.unique(lanes[lanes > 0]):
            x = np.sort(xs[lanes == lane])[::-1]
            run_start = x[0]
            for a, b in zip(x[:-1], x[1:], strict=False):
                if a - b > 15.0:
                    best = max(best, run_start - a + 5.0)
                    run_start = b
            best = max(best, run_start - x[-1] + 5.0)
        return float(best)

    def _observation(self, end_ms: int) -> CameraObservation:
        iv = self._interval
        assert iv is not None
        spec = self.spec
        since = self.stopped_vehicle(end_ms)
        lane_speed = tuple(float(np.mean(s)) if s else float("nan") for s in iv.lane_speeds)
        return CameraObservation(
            camera_id=spec.camera_id, station_id=spec.station_id, segment_id=spec.segment_id,
            interval_start_ms=iv.start_ms, interval_ms=self.config.interval_ms,
            count_per_lane=tuple(int(c) for c in iv.counts),
            mean_speed_kmh=float(np.mean(iv.speeds)) if iv.speeds else float("nan"),
            queue_length_m=self.queue_length_m(),
            occupancy_pct=iv.occupancy_sum / iv.frames if iv.frames else 0.0,
            stopped_vehicle=since is not None, stopped_since_ms=since, frames=iv.frames,
            lane_speed_kmh=lane_speed)

    # ---- operator view --------------------------------------------------------
    def detections_full_px(self) -> np.ndarray:
        """Last frame's boxes (n,4 xywh) in pixels of the full-size frame."""
        box = self.last_detections.box_px.astype(np.float64).copy()
        box[:, 0] += self.roi[0]
        box[:, 1] += self.roi[1]
        return box * self.config.decode_scale
