"""Microscopic traffic on the stretch a camera sees, consistent with a macroscopic state.

Input per lane: flow veh/h and speed km/h for the current interval (what the CTM
simulator gives per station, taken as plain arrays). Vehicles arrive as a
Poisson process at that flow upstream of the view, drive near that speed with
a simple car-following rule, change lanes now and then, and one can be made to
stop (an incident: lane + position). State is columnar numpy; the only Python
loops run over the few vehicles that enter, leave or change lanes in a step.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# kind: length_m, width_m, height_m, share of traffic
VEHICLE_KINDS = {
    "car": (4.5, 1.8, 1.5, 0.70),
    "van": (5.5, 2.0, 2.2, 0.12),
    "truck": (11.0, 2.5, 3.6, 0.10),
    "motorcycle": (2.1, 0.8, 1.4, 0.08),
}
KIND_NAMES = tuple(VEHICLE_KINDS)
SPAWN_X_M = -60.0  # vehicles enter here, upstream of any view, so they reach the view in steady state
LANE_CHANGE_S = 3.0


@dataclass(frozen=True, slots=True)
class IncidentSpec:
    """A vehicle stopping in ``lane`` (1-based) at ``x_m`` while ``active``."""

    active: bool = False
    lane: int = 1
    x_m: float = 50.0


NO_INCIDENT = IncidentSpec()


@dataclass
class Vehicles:
    """Columnar vehicle state; row i is one vehicle."""

    vid: np.ndarray  # int64 vehicle id, unique per simulator
    kind: np.ndarray  # int8 index into KIND_NAMES
    x_m: np.ndarray  # front bumper position along the road
    y_m: np.ndarray  # lateral centre
    lane: np.ndarray  # int64 current (target) lane, 1-based
    speed_ms: np.ndarray
    desired_ms: np.ndarray
    length_m: np.ndarray
    width_m: np.ndarray
    height_m: np.ndarray
    colour: np.ndarray  # (n,3) uint8 BGR
    stopping: np.ndarray  # bool: this is the incident vehicle
    stopped_ms: np.ndarray  # int64 time it came to rest, -1 while moving

    FIELDS = ("vid", "kind", "x_m", "y_m", "lane", "speed_ms", "desired_ms", "length_m", "width_m", "height_m",
              "colour", "stopping", "stopped_ms")

    @classmethod
    def empty(cls) -> "Vehicles":
        return cls(np.empty(0, np.int64), np.empty(0, np.int8), *(np.empty(0) for _ in range(2)),
                   np.empty(0, np.int64), *(np.empty(0) for _ in range(5)), np.empty((0, 3), np.uint8),
                   np.empty(0, bool), np.empty(0, np.int64))

    def __len__(self) -> int:
        return len(self.vid)

    def take(self, idx: np.ndarray) -> "Vehicles":
        return Vehicles(*(getattr(self, f)[idx] for f in self.FIELDS))

    def append(self, other: "Vehicles") -> "Vehicles":
        return Vehicles(*(np.concatenate([getattr(self, f), getattr(other, f)]) for f in self.FIELDS))


_PALETTE = np.array([  # BGR: white, silver, grey, black, red, blue, dark blue, green, yellow (taxi), beige
    (235, 235, 235), (190, 192, 195), (120, 122, 125), (30, 30, 32), (40, 40, 180), (160, 90, 40),
    (90, 40, 20), (60, 110, 50), (40, 200, 230), (170, 200, 215)], dtype=np.uint8)
_PALETTE_P = np.array([0.24, 0.2, 0.14, 0.18, 0.07, 0.06, 0.04, 0.02, 0.03, 0.02])


class TrafficModel:
    """Vehicles on one carriageway of ``n_lanes`` lanes, advanced in fixed time steps."""

    def __init__(self, n_lanes: int, lane_width_m: float = 3.6, end_x_m: float = 400.0, seed: int = 0) -> None:
        self.n_lanes = n_lanes
        self.lane_width_m = lane_width_m
        self.end_x_m = end_x_m
        self.rng = np.random.default_rng(seed)
        self.v = Vehicles.empty()
        self._next_id = 1
        self._pending = np.zeros(n_lanes)  # arrivals waiting for room at the spawn point, per lane
        self._next_arrival_s = np.full(n_lanes, np.nan)
        self.time_ms = 0
        self._stop_x_m = 0.0

    # ---- public -----------------------------------------------------------
    def populate(self, flow_veh_h: np.ndarray, speed_kmh: np.ndarray, time_ms: int) -> None:
        """Fill the road with vehicles at the given state (so a scene starts in steady state)."""
        self.time_ms = time_ms
        flow, speed = self._inputs(flow_veh_h, speed_kmh)
        for lane in range(self.n_lanes):
            if flow[lane] <= 0:
                continue
            headway_m = speed[lane] / (flow[lane] / 3600.0)
            x = SPAWN_X_M + 5.0 + self.rng.exponential(headway_m)
            while x < self.end_x_m:
                self._spawn(lane + 1, x, speed[lane])
                x += max(self.rng.exponential(headway_m), 8.0 + speed[lane] * 0.8)

    def step(self, dt_s: float, flow_veh_h: np.ndarray, speed_kmh: np.ndarray, incident: IncidentSpec) -> None:
        """Advance ``dt_s`` seconds at the given per-lane flow and speed."""
        self.time_ms += int(round(dt_s * 1000))
        flow, speed = self._inputs(flow_veh_h, speed_kmh)
        self._arrivals(dt_s, flow, speed)
        self._incident(incident)
        self._lane_changes(dt_s)
        self._move(dt_s, speed)
        keep = self.v.x_m - self.v.length_m < self.end_x_m
        if not keep.all():
            self.v = self.v.take(keep)

    # ---- internals --------------------------------------------------------
    def _inputs(self, flow_veh_h: np.ndarray, speed_kmh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flow = np.broadcast_to(np.asarray(flow_veh_h, dtype=np.float64), (self.n_lanes,))
        speed = np.broadcast_to(np.asarray(speed_kmh, dtype=np.float64), (self.n_lanes,)) / 3.6
        return np.clip(flow, 0, 3000), np.clip(speed, 0.5, 45.0)

    def _spawn(self, lane: int, x_m: float, speed_ms: float) -> None:
        kind = self.rng.choice(len(KIND_NAMES), p=[k[3] for k in VEHICLE_KINDS.values()])
        length, width, height, _ = VEHICLE_KINDS[KIND_NAMES[kind]]
        jitter = self.rng.uniform(0.92, 1.08)
        desired = speed_ms * self.rng.normal(1.0, 0.06) * (0.92 if KIND_NAMES[kind] == "truck" else 1.0)
        colour = _PALETTE[self.rng.choice(len(_PALETTE), p=_PALETTE_P)].astype(np.int64)
        if KIND_NAMES[kind] == "truck":
            colour = np.array([200, 200, 200]) if self.rng.random() < 0.6 else colour
        colour = np.clip(colour + self.rng.integers(-12, 13, 3), 0, 255).astype(np.uint8)
        y = (lane - 0.5) * self.lane_width_m + self.rng.normal(0, 0.15)
        new = Vehicles(np.array([self._next_id]), np.array([kind], np.int8), np.array([x_m]), np.array([y]),
                       np.array([lane]), np.array([max(desired, 0.5)]), np.array([max(desired, 0.5)]),
                       np.array([length * jitter]), np.array([width * jitter]), np.array([height * jitter]),
                       colour[None], np.array([False]), np.array([-1]))
        self._next_id += 1
        self.v = self.v.append(new)

    def _arrivals(self, dt_s: float, flow: np.ndarray, speed: np.ndarray) -> None:
        self._pending += self.rng.poisson(flow / 3600.0 * dt_s)
        for lane in np.flatnonzero(self._pending > 0):
            in_lane = self.v.lane == lane + 1
            rear = (self.v.x_m - self.v.length_m)[in_lane]
            gap = rear.min() - SPAWN_X_M if rear.size else np.inf
            if gap > 6.0 + speed[lane] * 0.9:
                start = min(speed[lane], max(gap - 6.0, 0.0) / 1.2)
                self._spawn(lane + 1, SPAWN_X_M, start)
                self._pending[lane] -= 1

    def _incident(self, incident: IncidentSpec) -> None:
        if not incident.active:
            self.v.stopping[:] = False
            self.v.stopped_ms[:] = -1
            return
        self._stop_x_m = incident.x_m
        if self.v.stopping.any():
            return
        # the vehicle that will stop: nearest upstream of the position, far enough to brake at ~3 m/s^2
        v = self.v
        cand = (v.lane == incident.lane) & (v.x_m < incident.x_m - v.speed_ms ** 2 / 6.0) & (KIND_NAMES.index("motorcycle") != v.kind)
        if cand.any():
            i = np.flatnonzero(cand)[np.argmax(v.x_m[cand])]
            v.stopping[i] = True

    def _lane_changes(self, dt_s: float) -> None:
        v = self.v
        # lateral motion towards the lane centre
        target_y = (v.lane - 0.5) * self.lane_width_m
        step = self.lane_width_m / LANE_CHANGE_S * dt_s
        v.y_m += np.clip(target_y - v.y_m, -step, step)
        # a few vehicles decide to change lanes: blocked ones (slower than desired) or rarely at random
        blocked = v.speed_ms < 0.8 * v.desired_ms
        p = np.where(blocked, 0.25, 0.01) * dt_s
        settled = np.abs(target_y - v.y_m) < 0.05
        deciders = np.flatnonzero((self.rng.random(len(v)) < p) & settled & ~v.stopping & (v.x_m > SPAWN_X_M + 20))
        for i in deciders:
            options = [ln for ln in (v.lane[i] - 1, v.lane[i] + 1) if 1 <= ln <= self.n_lanes]
            if not options:
                continue
            new_lane = options[self.rng.integers(len(options))]
            others = (v.lane == new_lane) | (np.abs(v.y_m - (new_lane - 0.5) * self.lane_width_m) < self.lane_width_m * 0.9)
            others[i] = False
            ahead = v.x_m[others] - v.length_m[others] - v.x_m[i]
            behind = v.x_m[i] - v.length_m[i] - v.x_m[others]
            need = 5.0 + v.speed_ms[i] * 0.8
            if np.all((ahead > need) | (behind > need)):
                v.lane[i] = new_lane

    def _move(self, dt_s: float, speed: np.ndarray) -> None:
        v = self.v
        n = len(v)
        if n == 0:
            return
        # leader per vehicle: the nearest vehicle ahead whose body overlaps laterally
        dx = v.x_m[None, :] - v.length_m[None, :] - v.x_m[:, None]  # gap from i's front to j's rear
        lateral = np.abs(v.y_m[None, :] - v.y_m[:, None]) < (v.width_m[None, :] + v.width_m[:, None]) / 2 + 0.3
        same_lane = v.lane[None, :] == v.lane[:, None]
        ahead = (dx > -v.length_m[:, None] * 0.5) & (lateral | same_lane)
        np.fill_diagonal(ahead, False)
        gap = np.where(ahead, dx, np.inf).min(axis=1)
        # desired speed follows the interval's lane speed (drivers adapt over a few seconds)
        lane_speed = speed[np.clip(v.lane - 1, 0, self.n_lanes - 1)]
        v.desired_ms += (lane_speed * (v.desired_ms / np.maximum(v.desired_ms.mean(), 0.1)) - v.desired_ms) * min(dt_s / 5, 1)
        safe = np.maximum(gap - 2.0, 0.0) / 1.2  # time gap 1.2 s, standstill gap 2 m
        target = np.minimum(v.desired_ms, safe)
        # the incident vehicle brakes to a stop at its spot
        accel = np.clip((target - v.speed_ms) / 1.0, -6.0, 1.5)
        if v.stopping.any():
            # the incident vehicle brakes evenly to a stop at its spot (or behind the vehicle ahead)
            room = np.maximum(np.minimum(self._stop_x_m - v.x_m, gap - 2.0), 0.05)
            brake = -np.minimum(v.speed_ms ** 2 / (2 * room), 8.0)
            accel = np.where(v.stopping, np.minimum(brake, accel), accel)
        v.speed_ms = np.maximum(v.speed_ms + accel * dt_s, 0.0)
        v.speed_ms = np.where(v.stopping & ((v.speed_ms < 0.3) | (v.x_m >= self._stop_x_m)), 0.0, v.speed_ms)
        v.x_m += v.speed_ms * dt_s
        newly = v.stopping & (v.speed_ms == 0.0) & (v.stopped_ms < 0)
        v.stopped_ms[newly] = self.time_ms
