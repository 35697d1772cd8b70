"""roadpulse's own detector: robust per-station baselines + the spatial incident signature.

Per station an EWMA baseline of speed, occupancy and flow with an EWMA absolute
deviation as the scale (time-of-day agnostic, so it follows the slow daily
swing). Baselines of a station update only while it is not congested and not
part of a suspected or alarmed segment, so an incident does not teach the
baseline that a queue is normal.

A station is *congested* when its speed dropped (z >= ``z_congested`` and at
least ``min_speed_drop_frac`` below baseline) or its occupancy rose (z and at
least ``min_occ_rise_pct`` points, unless the speed contradicts it by staying near
free flow: that is a chattering or stuck loop). Segment i (station i -> i+1) is a
*candidate* when the upstream station is congested and the downstream one is
not, occupancy or speed steps across the segment (OCCDF/OCCRDF as in California,
or the downstream station much faster),
the downstream flow is starved (below ``flow_ratio_max`` of the station's
high flow, a running 95th percentile that stands in for its capacity: a queue
discharging or an active recurrent bottleneck passes capacity flow downstream,
a blocked lane caps it well below), and
the downstream station has not been congested in the last
``wave_memory_intervals`` (congestion that reached the downstream station first
is a queue or compression wave travelling upstream, not an incident). Both
stations congested is recurrent congestion. A candidate alarms after
``persistence_intervals`` consecutive intervals (fewer with extra evidence such
as a camera's stopped-vehicle flag) and stays alarmed, with relaxed thresholds,
while the upstream queue, the occupancy step and the starved flow persist.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from models.network import Roadway
from models.records import FlowWindowBatch
from stream.core.incidents.base import Alarms, check_station_arrays, run_batch

MAD_TO_SIGMA = 1.2533  # mean absolute deviation -> standard deviation for a normal distribution


@dataclass(frozen=True)
class StatisticalConfig:
    alpha: float = 0.05  # EWMA weight of one interval in the baselines (~20 intervals memory)
    fast_alpha: float = 0.5  # EWMA weight for the smoothed downstream flow
    warmup_intervals: int = 10  # baseline updates a station needs before it takes part in decisions
    z_congested: float = 3.0
    min_speed_drop_frac: float = 0.25
    min_occ_rise_pct: float = 8.0
    min_occdf_pct: float = 8.0
    min_occrdf: float = 0.4
    min_speed_diff_kmh: float = 25.0  # or: downstream this much faster than upstream ...
    max_speed_ratio: float = 0.6  # ... and upstream below this share of the downstream speed
    flow_ratio_max: float = 0.85  # downstream flow / its running high flow (p95) below this = starved
    flow_ratio_hold: float = 0.9  # an alarm holds while the ratio stays below this
    high_flow_quantile: float = 0.95
    high_flow_step: float = 0.02  # quantile-tracker step, as a share of the tracked value per interval
    wave_memory_intervals: int = 5
    persistence_intervals: int = 3
    evidence_persistence_intervals: int = 1
    speed_scale_floor_kmh: float = 3.0
    occ_scale_floor_pct: float = 1.0


class StatisticalDetector:
    """Baseline z-scores + spatial signature + persistence, vectorised over one roadway's segments."""

    name = "statistical"

    def __init__(self, n_stations: int, config: StatisticalConfig | None = None,
                 resume_state: dict[str, Any] | None = None) -> None:
        self.config = config or StatisticalConfig()
        self.n_stations = n_stations
        n_seg = max(n_stations - 1, 0)
        self.base_speed_kmh = np.full(n_stations, np.nan)
        self.dev_speed_kmh = np.zeros(n_stations)
        self.base_occ_pct = np.full(n_stations, np.nan)
        self.dev_occ_pct = np.zeros(n_stations)
        self.high_flow_veh_h = np.full(n_stations, np.nan)
        self.fast_flow_veh_h = np.full(n_stations, np.nan)
        self.n_updates = np.zeros(n_stations, dtype=np.int64)
        self.quiet_for = np.full(n_stations, self.config.wave_memory_intervals, dtype=np.int64)
        self.run_length = np.zeros(n_seg, dtype=np.int64)
        self.alarm = np.zeros(n_seg, dtype=bool)
        self.confidence = np.zeros(n_seg)
        self.severity = np.zeros(n_seg, dtype=np.int8)
        self.last_window_start_ms: int | None = None
        if resume_state:
            self._restore(resume_state)

    def update(self, window_start_ms: int, occupancy_pct: np.ndarray, speed_kmh: np.ndarray,
               flow_veh_h: np.ndarray, extra_evidence: np.ndarray | None = None) -> Alarms:
        """Decide one interval. ``extra_evidence`` (per segment, 0..1 or bool) raises confidence and
        shortens persistence; it never alarms on its own."""
        occ, speed, flow = check_station_arrays(self.n_stations, occupancy_pct, speed_kmh, flow_veh_h)
        if self.last_window_start_ms is not None and window_start_ms <= self.last_window_start_ms:
            raise ValueError(f"window {window_start_ms} is not after the last one ({self.last_window_start_ms})")
        self.last_window_start_ms = int(window_start_ms)
        cfg = self.config
        n_seg = len(self.alarm)
        extra = np.zeros(n_seg) if extra_evidence is None else np.nan_to_num(
            np.asarray(extra_evidence, dtype=np.float64), nan=0.0)
        if extra.shape != (n_seg,):
            raise ValueError(f"extra_evidence needs one value per segment ({n_seg}), got {extra.shape}")

        has = np.isfinite(occ)
        fast = np.where(np.isfinite(self.fast_flow_veh_h), self.fast_flow_veh_h, flow)
        self.fast_flow_veh_h = np.where(np.isfinite(flow), fast + cfg.fast_alpha * (flow - fast), fast)
        ready = has & (self.n_updates >= cfg.warmup_intervals)

        z_speed, z_occ, congested = self._congestion(occ, speed, ready)
        z_up = np.fmax(np.nan_to_num(z_speed, nan=-np.inf), np.nan_to_num(z_occ, nan=-np.inf))
        self.quiet_for = np.where(has, np.where(congested, 0, self.quiet_for + 1), self.quiet_for)
        np.minimum(self.quiet_for, cfg.wave_memory_intervals, out=self.quiet_for)

        up, down = slice(0, -1), slice(1, None)
        occdf = occ[up] - occ[down]
        with np.errstate(invalid="ignore", divide="ignore"):
            occrdf = np.where(occ[up] > 0, occdf / occ[up], 0.0)
            flow_ratio = self.fast_flow_veh_h[down] / self.high_flow_veh_h[down]
        flow_ratio = np.where(np.isfinite(flow_ratio), flow_ratio, 1.0)
        decided = ready[up] & ready[down]
        down_clear = ~congested[down] & (self.quiet_for[down] >= cfg.wave_memory_intervals)
        with np.errstate(invalid="ignore"):
            # the step across the segment: in occupancy (as California) or in speed (a station right at
            # the incident sees slow, thin traffic squeezing past, so its occupancy stays low)
            step = ((occdf >= cfg.min_occdf_pct) & (occrdf >= cfg.min_occrdf)) | (
                (speed[down] - speed[up] >= cfg.min_speed_diff_kmh) & (speed[up] <= cfg.max_speed_ratio * speed[down]))
        candidate = decided & congested[up] & down_clear & step & (flow_ratio < cfg.flow_ratio_max)
        # an alarm continues on relaxed tests while the queue, the occupancy step and the starved flow last
        queue_up = (z_up[up] >= cfg.z_congested / 2) | congested[up]
        with np.errstate(invalid="ignore"):
            step_holds = (occrdf >= cfg.min_occrdf / 2) | (speed[up] <= (1 + cfg.max_speed_ratio) / 2 * speed[down])
        holding = self.alarm & decided & queue_up & ~congested[down] & step_holds & (flow_ratio < cfg.flow_ratio_hold)

        run = np.where(candidate, self.run_length + 1, 0)
        needed = np.where(extra >= 0.5, cfg.evidence_persistence_intervals, cfg.persistence_intervals)
        alarm = (candidate & (run >= needed)) | holding
        # missing data at either end: hold the segment as it was
        self.run_length = np.where(decided, run, self.run_length)
        self.alarm = np.where(decided, alarm, self.alarm)

        evidence = (0.3 * np.clip(z_up[up] / (2 * cfg.z_congested), 0, 1) + 0.25 * np.clip(occrdf, 0, 1)
                    + 0.2 * np.clip((1 - flow_ratio) / 0.5, 0, 1)
                    + 0.25 * np.clip(run / max(cfg.persistence_intervals, 1), 0, 1))
        evidence = 1 - (1 - evidence) * (1 - 0.6 * np.clip(extra, 0, 1))
        conf = np.where(alarm, evidence, np.where(candidate, 0.5 * evidence, 0.0))
        self.confidence = np.where(decided, conf, self.confidence)
        self.severity = np.where(decided, np.where(alarm, self._severity(occ, speed)[up], 0),
                                 self.severity).astype(np.int8)

        involved = np.zeros(self.n_stations, dtype=bool)
        involved[:-1] |= candidate | self.alarm
        involved[1:] |= candidate | self.alarm
        self._learn(occ, speed, has & ~congested & ~involved)
        return Alarms(int(window_start_ms), self.alarm.copy(), self.confidence.copy(), self.severity.copy())

    def update_batch(self, stations: FlowWindowBatch, roadway: Roadway,
                     extra_evidence: np.ndarray | None = None) -> Alarms:
        """Every window of a station batch in time order (see ``base.segment_values`` for evidence)."""
        return run_batch(self, stations, roadway, extra_evidence=extra_evidence)

    # ---- pieces --------------------------------------------------------------
    def _congestion(self, occ: np.ndarray, speed: np.ndarray, ready: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """z of the speed drop, z of the occupancy rise, and the congested flag per station."""
        cfg = self.config
        speed_scale = np.maximum(MAD_TO_SIGMA * self.dev_speed_kmh, cfg.speed_scale_floor_kmh)
        occ_scale = np.maximum(MAD_TO_SIGMA * self.dev_occ_pct, cfg.occ_scale_floor_pct)
        z_speed = (self.base_speed_kmh - speed) / speed_scale
        z_occ = (occ - self.base_occ_pct) / occ_scale
        with np.errstate(invalid="ignore"):
            slow = (z_speed >= cfg.z_congested) & (speed <= (1 - cfg.min_speed_drop_frac) * self.base_speed_kmh)
            dense = (z_occ >= cfg.z_congested) & (occ - self.base_occ_pct >= cfg.min_occ_rise_pct)
            # dense at free-flow speed is a detector fault (chatter, stuck loop), not a queue
            speed_contradicts = np.isfinite(speed) & (speed >= (1 - cfg.min_speed_drop_frac / 2) * self.base_speed_kmh)
        return z_speed, z_occ, ready & (slow | (dense & ~speed_contradicts))

    def _severity(self, occ: np.ndarray, speed: np.ndarray) -> np.ndarray:
        """1 minor .. 3 severe from the upstream speed relative to its baseline (occupancy when no speed)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = speed / self.base_speed_kmh
        ratio = np.where(np.isfinite(ratio), ratio, np.where(occ >= 40, 0.0, 0.5))
        return (1 + (ratio < 0.65) + (ratio < 0.35)).astype(np.int8)

    def _learn(self, occ: np.ndarray, speed: np.ndarray, mask: np.ndarray) -> None:
        """EWMA mean and mean absolute deviation (a plain running mean during warm-up), and the
        high-flow quantile tracker fed with the smoothed flow."""
        cfg = self.config
        a = np.maximum(cfg.alpha, 1.0 / (self.n_updates + 1))
        for base, dev, x in ((self.base_speed_kmh, self.dev_speed_kmh, speed),
                             (self.base_occ_pct, self.dev_occ_pct, occ)):
            ok = mask & np.isfinite(x)
            first = ok & ~np.isfinite(base)
            base[first] = x[first]
            err = np.where(ok, x - base, 0.0)
            dev[ok] += a[ok] * (np.abs(err[ok]) - dev[ok])
            base[ok] += a[ok] * err[ok]
        x, high = self.fast_flow_veh_h, self.high_flow_veh_h
        ok = mask & np.isfinite(x)
        first = ok & ~np.isfinite(high)
        high[first] = x[first]
        step = cfg.high_flow_step * np.maximum(np.where(np.isfinite(high), high, 0.0), 600.0)
        up = np.where(ok & (x > high), cfg.high_flow_quantile, np.where(ok, cfg.high_flow_quantile - 1.0, 0.0))
        high[ok] += (step * up)[ok]
        self.n_updates += mask

    # ---- state -----------------------------------------------------------------
    _ARRAYS = ("base_speed_kmh", "dev_speed_kmh", "base_occ_pct", "dev_occ_pct", "high_flow_veh_h",
               "fast_flow_veh_h", "n_updates", "quiet_for", "run_length", "alarm", "confidence", "severity")

    def snapshot(self) -> dict[str, Any]:
        state: dict[str, Any] = {"config": asdict(self.config), "n_stations": self.n_stations,
                                 "last_window_start_ms": self.last_window_start_ms}
        for name in self._ARRAYS:
            arr = getattr(self, name)
            state[name] = [None if (isinstance(v, float) and np.isnan(v)) else v for v in arr.tolist()]
        return state

    def _restore(self, s: dict[str, Any]) -> None:
        if s["n_stations"] != self.n_stations:
            raise ValueError(f"snapshot is for {s['n_stations']} stations, detector has {self.n_stations}")
        self.config = StatisticalConfig(**s["config"])
        self.last_window_start_ms = s["last_window_start_ms"]
        for name in self._ARRAYS:
            current = getattr(self, name)
            values = [np.nan if v is None else v for v in s[name]]
            setattr(self, name, np.asarray(values, dtype=current.dtype))
