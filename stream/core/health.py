"""PeMS-style detector diagnostics over a rolling horizon.

Each lane window that closes is one *sample* of its detector. Per detector the
tracker counts, in hourly (by default) buckets of a ring covering the
horizon, the samples and the suspicious ones: zero occupancy, high
occupancy, no flow while occupied, occupancy zero while vehicles pass. It also
follows how long the occupancy has stayed exactly unchanged.

``status(at_ms)`` applies the PeMS rules (domain notes, section 4), first match
wins: no_data (0 samples), insufficient (<= 60% of the expected samples),
card_off (zero-occupancy share > 59%), high_val (> 20% of samples above 70%
occupancy), intermittent (flow 0 & occupancy > 0 in > 2%, or occupancy 0 &
flow > 0 in > 50%), constant (occupancy unchanged for 4 h), else good.
Expected samples = windows of ``window_ms`` in the horizon (only the part of
it since the first sample, so a fresh tracker does not call everything
insufficient), restricted to ``active_hours`` when given (PeMS: 05:00-21:59
local, ``active_hours=(5, 22)``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from models.network import Network
from models.records import FlowWindowBatch

STATUSES = ("good", "no_data", "insufficient", "card_off", "high_val", "intermittent", "constant")
GOOD, NO_DATA, INSUFFICIENT, CARD_OFF, HIGH_VAL, INTERMITTENT, CONSTANT = range(len(STATUSES))
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
_NEVER_MS = np.iinfo(np.int64).min // 4  # far past, still safe to subtract from
# counters per bucket and detector
_SAMPLES, _ZERO_OCC, _HIGH_OCC, _FLOW0_OCC, _OCC0_FLOW = range(5)


@dataclass(frozen=True)
class HealthThresholds:
    """PeMS mainline (urban) diagnostic thresholds; occupancy in percent."""

    insufficient_share: float = 0.60  # insufficient when samples <= this share of expected
    card_off_zero_occ_share: float = 0.59
    high_occupancy_pct: float = 70.0
    high_val_share: float = 0.20
    intermittent_flow0_occ_share: float = 0.02  # flow = 0 and occupancy > 0
    intermittent_occ0_flow_share: float = 0.50  # occupancy = 0 and flow > 0
    constant_ms: int = 4 * HOUR_MS


@dataclass(frozen=True)
class HealthReport:
    """Per-detector diagnosis at ``at_ms``, columnar, detectors in network order."""

    at_ms: int
    detector_id: np.ndarray  # object
    status: np.ndarray  # object, names from STATUSES
    status_code: np.ndarray  # int8 index into STATUSES
    samples: np.ndarray  # int64 lane windows seen in the horizon
    expected_samples: np.ndarray  # int64
    zero_occ_share: np.ndarray  # float64 share of samples with occupancy 0 (NaN without samples)
    high_occ_share: np.ndarray  # float64 share with occupancy > threshold
    zero_flow_occupied_share: np.ndarray  # float64 share with flow 0 and occupancy > 0
    zero_occ_flowing_share: np.ndarray  # float64 share with occupancy 0 and flow > 0
    unchanged_occ_ms: np.ndarray  # int64 how long the occupancy has not changed (current run)

    @property
    def bad(self) -> np.ndarray:
        """True for every detector whose status is not good (what imputation replaces)."""
        return self.status_code != GOOD

    def counts(self) -> dict[str, int]:
        """Number of detectors per status."""
        n = np.bincount(self.status_code, minlength=len(STATUSES))
        return {name: int(k) for name, k in zip(STATUSES, n, strict=True)}


@dataclass
class _State:
    counts: np.ndarray  # int32 (n_buckets, 5, n_detectors)
    bucket_id: np.ndarray  # int64 (n_buckets,) absolute bucket held by each ring slot
    first_window_ms: int | None = None
    last_occ: np.ndarray = field(default_factory=lambda: np.empty(0))  # float64, NaN = no sample yet
    run_start_ms: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    run_end_ms: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    long_run_end_ms: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # last run >= constant_ms


class DetectorHealth:
    """Rolling PeMS diagnostics for every detector of a network."""

    def __init__(self, network: Network, window_ms: int, horizon_ms: int = DAY_MS,
                 thresholds: HealthThresholds | None = None, bucket_ms: int | None = None,
                 active_hours: tuple[int, int] | None = None, utc_offset_ms: int = 0,
                 resume_state: dict[str, Any] | None = None) -> None:
        self.network = network
        self.window_ms = int(window_ms)
        self.horizon_ms = int(horizon_ms)
        self.thresholds = thresholds or HealthThresholds()
        self.bucket_ms = int(bucket_ms or min(HOUR_MS, self.horizon_ms))
        if self.horizon_ms % self.bucket_ms or self.bucket_ms % self.window_ms:
            raise ValueError("horizon_ms must be a multiple of bucket_ms, and bucket_ms of window_ms")
        self.active_hours = active_hours
        self.utc_offset_ms = int(utc_offset_ms)
        n, n_buckets = network.n_detectors, self.horizon_ms // self.bucket_ms
        self._s = _State(counts=np.zeros((n_buckets, 5, n), dtype=np.int32),
                         bucket_id=np.full(n_buckets, -1, dtype=np.int64),
                         last_occ=np.full(n, np.nan), run_start_ms=np.zeros(n, dtype=np.int64),
                         run_end_ms=np.zeros(n, dtype=np.int64), long_run_end_ms=np.full(n, _NEVER_MS))
        if resume_state is not None:
            self._restore(resume_state)

    def _active(self, window_start_ms: np.ndarray) -> np.ndarray:
        if self.active_hours is None:
            return np.ones(len(window_start_ms), dtype=bool)
        hour = (window_start_ms + self.utc_offset_ms) % DAY_MS // HOUR_MS
        return (hour >= self.active_hours[0]) & (hour < self.active_hours[1])

    def update(self, lanes: FlowWindowBatch) -> None:
        """Count lane windows as they close; imputed rows and unknown detectors are ignored."""
        if lanes.level != "lane" or lanes.window_ms != self.window_ms:
            raise ValueError(f"DetectorHealth needs {self.window_ms} ms lane windows, got {lanes.window_ms} ms "
                             f"{lanes.level} windows")
        keep = np.ones(len(lanes), dtype=bool)
        if len(lanes.imputed) == len(lanes):
            keep &= ~lanes.imputed
        det = self.network.detector_numbers(lanes.entity_id)
        start = lanes.window_start_ms.astype(np.int64)
        keep &= (det >= 0) & self._active(start)
        if not keep.any():
            return
        det, start = det[keep], start[keep]
        occ, count = lanes.occupancy_pct[keep], lanes.vehicle_count[keep]
        s = self._s
        if s.first_window_ms is None or start.min() < s.first_window_ms:
            s.first_window_ms = int(start.min())
        self._count(det, start, occ, count)
        self._track_runs(det, start, occ)

    def _count(self, det: np.ndarray, start: np.ndarray, occ: np.ndarray, count: np.ndarray) -> None:
        s, n_buckets = self._s, len(self._s.bucket_id)
        bucket = start // self.bucket_ms
        slot = bucket % n_buckets
        for b in np.unique(bucket):
            k = int(b % n_buckets)
            if b > s.bucket_id[k]:  # a new bucket replaces the one a horizon ago
                s.counts[k] = 0
                s.bucket_id[k] = b
        fresh = s.bucket_id[slot] == bucket  # rows older than the ring are dropped
        det, slot, occ, count = det[fresh], slot[fresh], occ[fresh], count[fresh]
        flags = np.stack([np.ones(len(det), dtype=bool), occ == 0, occ > self.thresholds.high_occupancy_pct,
                          (count == 0) & (occ > 0), (occ == 0) & (count > 0)])
        n = self.network.n_detectors
        for c in range(5):
            f = flags[c]
            np.add.at(s.counts.reshape(-1), (slot[f] * 5 + c) * n + det[f], 1)

    def _track_runs(self, det: np.ndarray, start: np.ndarray, occ: np.ndarray) -> None:
        """Follow runs of exactly unchanged occupancy, in window order per detector."""
        ok = np.isfinite(occ)
        det, start, occ = det[ok], start[ok], occ[ok]
        order = np.lexsort((start, det))
        det, start, occ = det[order], start[order], occ[order]
        first = np.concatenate([[True], det[1:] != det[:-1]]) if len(det) else np.zeros(0, dtype=bool)
        rank = np.arange(len(det)) - np.maximum.accumulate(np.where(first, np.arange(len(det)), 0))
        s = self._s
        for r in range(int(rank.max()) + 1 if len(rank) else 0):  # one round per window of the same detector
            sel = rank == r
            d, t0, o = det[sel], start[sel], occ[sel]
            changed = o != s.last_occ[d]  # NaN (no sample yet) counts as a change
            ended = d[changed]
            was_long = s.run_end_ms[ended] - s.run_start_ms[ended] >= self.thresholds.constant_ms
            s.long_run_end_ms[ended[was_long]] = s.run_end_ms[ended[was_long]]
            s.run_start_ms[ended] = t0[changed]
            s.run_end_ms[d] = np.maximum(s.run_end_ms[d], t0 + self.window_ms)
            s.last_occ[d] = o

    def status(self, at_ms: int) -> HealthReport:
        """The diagnosis of every detector from the horizon ending at ``at_ms``."""
        s, th, n_buckets = self._s, self.thresholds, len(self._s.bucket_id)
        at_bucket = (at_ms - 1) // self.bucket_ms
        valid = (s.bucket_id > at_bucket - n_buckets) & (s.bucket_id <= at_bucket)
        totals = s.counts[valid].sum(axis=0, dtype=np.int64)  # (5, n)
        span_start = (at_bucket - n_buckets + 1) * self.bucket_ms
        expected = 0
        if s.first_window_ms is not None:
            first = max(span_start, s.first_window_ms)
            first += -first % self.window_ms
            starts = np.arange(first, at_ms - self.window_ms + 1, self.window_ms, dtype=np.int64)
            expected = int(self._active(starts).sum())
        samples = totals[_SAMPLES]
        share = totals / np.maximum(samples, 1).astype(np.float64)
        share[:, samples == 0] = np.nan
        run_ms = np.where(np.isnan(s.last_occ), 0, s.run_end_ms - s.run_start_ms)
        constant = (((run_ms >= th.constant_ms) & (s.run_end_ms > span_start))
                    | (s.long_run_end_ms > span_start))
        conditions = [
            samples == 0,
            samples <= th.insufficient_share * expected,
            share[_ZERO_OCC] > th.card_off_zero_occ_share,
            share[_HIGH_OCC] > th.high_val_share,
            (share[_FLOW0_OCC] > th.intermittent_flow0_occ_share) | (share[_OCC0_FLOW] > th.intermittent_occ0_flow_share),
            constant,
        ]
        code = np.select(conditions, [NO_DATA, INSUFFICIENT, CARD_OFF, HIGH_VAL, INTERMITTENT, CONSTANT],
                         GOOD).astype(np.int8)
        n = self.network.n_detectors
        return HealthReport(
            at_ms=int(at_ms), detector_id=self.network.detector_ids, status=np.array(STATUSES, dtype=object)[code],
            status_code=code, samples=samples, expected_samples=np.full(n, expected, dtype=np.int64),
            zero_occ_share=share[_ZERO_OCC], high_occ_share=share[_HIGH_OCC],
            zero_flow_occupied_share=share[_FLOW0_OCC], zero_occ_flowing_share=share[_OCC0_FLOW],
            unchanged_occ_ms=run_ms.astype(np.int64))

    # ---- state ------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Plain data; ``DetectorHealth(..., resume_state=snapshot)`` continues exactly."""
        state = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in asdict(self._s).items()}
        state.update(window_ms=self.window_ms, horizon_ms=self.horizon_ms, bucket_ms=self.bucket_ms)
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        if (state["window_ms"], state["horizon_ms"], state["bucket_ms"]) != (
                self.window_ms, self.horizon_ms, self.bucket_ms):
            raise ValueError("health snapshot was taken with another window, horizon or bucket length")
        if np.shape(state["counts"]) != self._s.counts.shape:
            raise ValueError("health snapshot is for another network")
        first = state["first_window_ms"]
        self._s = _State(counts=np.array(state["counts"], dtype=np.int32),
                         bucket_id=np.array(state["bucket_id"], dtype=np.int64),
                         first_window_ms=None if first is None else int(first),
                         last_occ=np.array(state["last_occ"], dtype=np.float64),
                         run_start_ms=np.array(state["run_start_ms"], dtype=np.int64),
                         run_end_ms=np.array(state["run_end_ms"], dtype=np.int64),
                         long_run_end_ms=np.array(state["long_run_end_ms"], dtype=np.int64))
