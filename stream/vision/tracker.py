"""Tracking detections across frames in road metres: counts at a line, speeds, stopped vehicles.

Nearest-neighbour association against a constant-velocity prediction, gated in
metres; few objects per frame, so plain Python over tracks is cheap. A track is
counted once, when its anchor passes the count line (or when it is first
confirmed already a little past it), in the lane it holds there.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stream.vision.detect import Detections


@dataclass
class Track:
    track_id: int
    t_ms: list[int]
    x_m: list[float]
    y_m: list[float]
    box_px: np.ndarray
    misses: int = 0
    counted: bool = False
    still_since_ms: int | None = None  # when it last stopped moving (None while moving)
    hits: int = 1
    x_first_m: float = 0.0
    counted_ms: int | None = None

    @property
    def confirmed(self) -> bool:
        return self.hits >= 3

    def velocity_ms(self, window_ms: int = 1500) -> float:
        """Speed along the road over the last ``window_ms``, m/s (0 with too little history)."""
        t = self.t_ms[-1]
        i = len(self.t_ms) - 1
        while i > 0 and t - self.t_ms[i - 1] <= window_ms:
            i -= 1
        dt = (t - self.t_ms[i]) / 1000.0
        return (self.x_m[-1] - self.x_m[i]) / dt if dt > 0 else 0.0

    def displacement_m(self, window_ms: int) -> float | None:
        """Distance moved over the last ``window_ms`` (None if the track is younger)."""
        t = self.t_ms[-1]
        if t - self.t_ms[0] < window_ms:
            return None
        i = int(np.searchsorted(np.asarray(self.t_ms), t - window_ms))
        return float(np.hypot(self.x_m[-1] - self.x_m[i], self.y_m[-1] - self.y_m[i]))


@dataclass
class Crossing:
    """A vehicle counted at the line."""

    time_ms: int
    lane: int
    speed_kmh: float
    track_id: int


@dataclass
class Tracker:
    count_line_m: float
    lane_of: object  # callable y_m -> lane
    gate_m: float = 4.0
    max_misses: int = 4
    still_window_ms: int = 2000
    still_max_m: float = 0.8
    history: int = 40
    max_speed_ms: float = 42.0  # ~150 km/h
    prior_speed_ms: float = 0.0  # running mean speed of counted vehicles (0 = none yet)
    tracks: list[Track] = field(default_factory=list)
    _next_id: int = 1

    def update(self, det: Detections, time_ms: int) -> list[Crossing]:
        """Associate one frame's detections; return the vehicles counted in it."""
        crossings: list[Crossing] = []
        n = len(det)
        used = np.zeros(n, bool)
        if self.tracks and n:
            pred = np.array([self._predict(t, time_ms) for t in self.tracks])
            d = np.hypot(pred[:, None, 0] - det.ground_m[None, :, 0], (pred[:, None, 1] - det.ground_m[None, :, 1]) * 2.0)
            speed = np.array([abs(t.velocity_ms()) for t in self.tracks])
            gate = self.gate_m + 0.15 * speed
            # a new track has no speed yet: search ahead as far as traffic here moves in one frame
            newborn = np.array([len(t.t_ms) == 1 for t in self.tracks])
            dt_s = np.array([(time_ms - t.t_ms[-1]) / 1000.0 for t in self.tracks])
            reach = np.where(self.prior_speed_ms > 0, 0.5 * self.prior_speed_ms, 0.5 * self.max_speed_ms) * dt_s
            gate = np.where(newborn, self.gate_m + reach, gate)
            order = np.argsort(d, axis=None)
            used_t = np.zeros(len(self.tracks), bool)
            for flat in order:
                ti, di = divmod(int(flat), n)
                if d[ti, di] > gate[ti]:
                    break
                if used_t[ti] or used[di]:
                    continue
                used_t[ti] = used[di] = True
                self._extend(self.tracks[ti], det, di, time_ms, crossings)
            for ti in np.flatnonzero(~used_t):
                self.tracks[ti].misses += 1
        for di in np.flatnonzero(~used):
            self.tracks.append(Track(self._next_id, [time_ms], [float(det.ground_m[di, 0])],
                                     [float(det.ground_m[di, 1])], det.box_px[di],
                                     x_first_m=float(det.ground_m[di, 0])))
            self._next_id += 1
        self.tracks = [t for t in self.tracks if t.misses <= self.max_misses
                       or (t.still_since_ms is not None and t.misses <= self.max_misses * 10)]
        return crossings

    def _predict(self, t: Track, time_ms: int) -> tuple[float, float]:
        if len(t.t_ms) == 1:  # newborn: expect it to move like the traffic seen lately
            v = self.prior_speed_ms if self.prior_speed_ms > 0 else 0.5 * self.max_speed_ms
        else:
            v = t.velocity_ms(800)
        return t.x_m[-1] + v * (time_ms - t.t_ms[-1]) / 1000.0, t.y_m[-1]

    def _extend(self, t: Track, det: Detections, di: int, time_ms: int, out: list[Crossing]) -> None:
        t.t_ms.append(time_ms)
        t.x_m.append(float(det.ground_m[di, 0]))
        t.y_m.append(float(det.ground_m[di, 1]))
        t.box_px = det.box_px[di]
        t.misses = 0
        t.hits += 1
        if len(t.t_ms) > self.history:
            del t.t_ms[0], t.x_m[0], t.y_m[0]
        moved = t.displacement_m(self.still_window_ms)
        if moved is not None and moved < self.still_max_m:
            if t.still_since_ms is None:
                t.still_since_ms = time_ms - self.still_window_ms
        elif moved is not None:
            t.still_since_ms = None
        if not t.counted and t.confirmed and t.x_first_m < self.count_line_m <= t.x_m[-1] and t.velocity_ms() > 0.3:
            t.counted = True
            t.counted_ms = time_ms
            lane = int(self.lane_of(np.array([t.y_m[-1]]))[0])
            v = abs(t.velocity_ms())
            self.prior_speed_ms = v if self.prior_speed_ms == 0 else 0.8 * self.prior_speed_ms + 0.2 * v
            if not self._fragment_of_counted(t, lane, time_ms):
                out.append(Crossing(time_ms, lane, t.velocity_ms() * 3.6, t.track_id))

    def _fragment_of_counted(self, t: Track, lane: int, time_ms: int) -> bool:
        """True when ``t`` moves in lockstep with a vehicle counted moments ago in the same lane: two parts of
        one body (a truck's cab and box, a dark car split at its windows), not two vehicles."""
        speed = abs(t.velocity_ms())
        reach_m = 9.0 if speed * 3.6 >= 25.0 else 5.0
        for o in self.tracks:
            if o is t or not o.counted or time_ms - o.t_ms[-1] > 200 or o.counted_ms is None:
                continue
            if time_ms - o.counted_ms > 1500:
                continue
            same_lane = int(self.lane_of(np.array([o.y_m[-1]]))[0]) == lane
            if same_lane and abs(o.x_m[-1] - t.x_m[-1]) < reach_m and abs(abs(o.velocity_ms()) - speed) < 0.2 * speed + 0.5:
                return True
        return False
