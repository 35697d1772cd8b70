"""Event-time tumbling windows over detector numbers.

A frozen :class:`TumblingWindow` definition builds a :class:`DetectorWindows`
logic object whose state can be snapshotted and restored. Readings are
aggregated per (window, detector) into the sums every flow metric is derived
from (see :class:`ClosedWindow`); the metrics themselves live in ``flow.py``.

Definitions (docs/ARCHITECTURE.md): windows are aligned to the epoch
(``start = t - t % length``); a reading belongs to the window of its
``interval_start_ms``; the watermark is the max ``interval_start_ms +
interval_ms`` seen; a window closes when ``end + allowed_lateness_ms <=
watermark``; a reading for a closed window is late.

Lateness is judged per batch: a row is late when its window was already
closed by the watermark before the batch arrived; the batch then moves the
watermark. Rows of one batch never make each other late, so a batch holding
every detector's reading for one interval is accepted whole even with zero
allowed lateness. A stream cut into smaller batches (one station per message)
needs ``allowed_lateness_ms`` at least as large as the arrival skew between
the first and the last detector of an interval, or the stragglers are late.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# rows of the per-window accumulator, all float64 (integer sums stay exact below 2**53)
_FIELDS = ("vehicle_count", "occupancy_time_ms", "covered_ms", "speed_weighted_sum", "inverse_speed_sum",
           "speed_count", "n_readings")
_INT_FIELDS = frozenset({"vehicle_count", "covered_ms", "speed_count", "n_readings"})
_N_READINGS = _FIELDS.index("n_readings")
NO_WATERMARK_MS = np.iinfo(np.int64).min


@dataclass(frozen=True)
class ClosedWindow:
    """Sums for one closed window; only detectors that had accepted readings appear."""

    window_start_ms: int
    length_ms: int
    detector: np.ndarray  # int64 detector numbers, sorted
    vehicle_count: np.ndarray  # int64 sum of counts
    occupancy_time_ms: np.ndarray  # float64 sum(occupancy_pct / 100 * interval_ms)
    covered_ms: np.ndarray  # int64 sum(interval_ms)
    speed_weighted_sum: np.ndarray  # float64 sum(n_i * v_i) over rows with n_i > 0 and finite v_i
    inverse_speed_sum: np.ndarray  # float64 sum(n_i / v_i), same rows
    speed_count: np.ndarray  # int64 sum(n_i), same rows
    n_readings: np.ndarray  # int64 rows that went in

    @property
    def window_end_ms(self) -> int:
        return self.window_start_ms + self.length_ms

    def __len__(self) -> int:
        return len(self.detector)


@dataclass(frozen=True)
class TumblingWindow:
    """Definition of epoch-aligned tumbling windows (config apart from logic)."""

    length_ms: int
    allowed_lateness_ms: int = 0

    def __post_init__(self) -> None:
        if self.length_ms <= 0:
            raise ValueError(f"length_ms must be > 0, got {self.length_ms}")
        if self.allowed_lateness_ms < 0:
            raise ValueError(f"allowed_lateness_ms must be >= 0, got {self.allowed_lateness_ms}")

    def build(self, n_detectors: int, resume_state: dict[str, Any] | None = None) -> "DetectorWindows":
        """A fresh window logic for ``n_detectors`` detectors, or one restored from ``snapshot()``."""
        return DetectorWindows(self, n_detectors, resume_state)


class DetectorWindows:
    """Open windows of one :class:`TumblingWindow` definition, one dense accumulator per open window."""

    def __init__(self, definition: TumblingWindow, n_detectors: int,
                 resume_state: dict[str, Any] | None = None) -> None:
        self.definition = definition
        self.n_detectors = int(n_detectors)
        self._watermark_ms = int(NO_WATERMARK_MS)
        self._open: dict[int, np.ndarray] = {}  # window start -> (len(_FIELDS), n_detectors) float64
        self._spare: list[np.ndarray] = []  # accumulators of closed windows, for reuse
        if resume_state is not None:
            self._restore(resume_state)

    # ---- hot path ---------------------------------------------------------
    def update(self, detector: np.ndarray, interval_start_ms: np.ndarray, interval_ms: np.ndarray,
               vehicle_count: np.ndarray, occupancy_pct: np.ndarray, speed_kmh: np.ndarray) -> np.ndarray:
        """Aggregate a batch of readings; return the boolean mask of late rows (not aggregated).

        ``detector`` are detector numbers in ``[0, n_detectors)``; unknown ids
        must be turned into dead letters before they get here.
        """
        detector = np.asarray(detector, dtype=np.int64)
        start_ms = np.asarray(interval_start_ms, dtype=np.int64)
        length_ms = self.definition.length_ms
        n = len(detector)
        if n == 0:
            return np.zeros(0, dtype=bool)
        if detector.min() < 0 or detector.max() >= self.n_detectors:
            raise ValueError(f"detector numbers must lie in [0, {self.n_detectors})")
        dur_ms = np.asarray(interval_ms, dtype=np.int64)
        win_ms = start_ms - start_ms % length_ms
        late = win_ms + (length_ms + self.definition.allowed_lateness_ms) <= self._watermark_ms
        self._watermark_ms = max(self._watermark_ms, int((start_ms + dur_ms).max()))

        ok = ~late
        if not ok.all():
            detector, win_ms, dur_ms = detector[ok], win_ms[ok], dur_ms[ok]
            count = np.asarray(vehicle_count)[ok]
            occ = np.asarray(occupancy_pct, dtype=np.float64)[ok]
            speed = np.asarray(speed_kmh, dtype=np.float64)[ok]
        else:
            count = np.asarray(vehicle_count)
            occ = np.asarray(occupancy_pct, dtype=np.float64)
            speed = np.asarray(speed_kmh, dtype=np.float64)
        if len(detector) == 0:
            return late
        values = self._row_values(count, occ, dur_ms, speed)
        first, last = win_ms.min(), win_ms.max()
        if first == last:
            self._accumulate(int(first), detector, values)
        else:
            for w in np.unique(win_ms):
                sel = win_ms == w
                self._accumulate(int(w), detector[sel], values[:, sel])
        return late

    @staticmethod
    def _row_values(count: np.ndarray, occ: np.ndarray, dur_ms: np.ndarray, speed: np.ndarray) -> np.ndarray:
        """Per-row contributions, one row per accumulator field."""
        values = np.zeros((len(_FIELDS), len(count)), dtype=np.float64)
        n_f = values[0]
        n_f[:] = count
        np.multiply(occ, dur_ms, out=values[1])
        values[1] /= 100.0
        values[2] = dur_ms
        has_speed = (count > 0) & np.isfinite(speed)
        np.multiply(n_f, speed, out=values[3], where=has_speed)
        with np.errstate(divide="ignore"):
            np.divide(n_f, speed, out=values[4], where=has_speed)
        np.copyto(values[5], n_f, where=has_speed)
        values[6] = 1.0
        return values

    def _accumulate(self, window_start_ms: int, detector: np.ndarray, values: np.ndarray) -> None:
        acc = self._open.get(window_start_ms)
        if acc is None:
            acc = self._open[window_start_ms] = self._new_accumulator()
        if len(detector) == self.n_detectors and detector[0] == 0 and np.all(detector[1:] > detector[:-1]):
            acc += values  # every detector once, in order (a whole-network batch)
            return
        n = self.n_detectors
        index = (np.arange(len(_FIELDS), dtype=np.int64)[:, None] * n + detector).ravel()
        np.add.at(acc.reshape(-1), index, values.ravel())

    def _new_accumulator(self) -> np.ndarray:
        """A zeroed accumulator, reusing one of a closed window (saves page faults on large networks)."""
        if self._spare:
            acc = self._spare.pop()
            acc.fill(0.0)
            return acc
        return np.zeros((len(_FIELDS), self.n_detectors), dtype=np.float64)

    # ---- closing ----------------------------------------------------------
    @property
    def watermark_ms(self) -> int:
        """Max ``interval_start_ms + interval_ms`` seen (int64 min before any reading)."""
        return self._watermark_ms

    @property
    def open_windows_ms(self) -> list[int]:
        """Start times of the windows still open, oldest first."""
        return sorted(self._open)

    def poll(self) -> list[ClosedWindow]:
        """Windows now closed by the watermark, oldest first (removed from the state)."""
        reach = self.definition.length_ms + self.definition.allowed_lateness_ms
        due = sorted(w for w in self._open if w + reach <= self._watermark_ms)
        return [self._close(w) for w in due]

    def flush(self) -> list[ClosedWindow]:
        """Close every open window (end of stream), oldest first."""
        return [self._close(w) for w in sorted(self._open)]

    def _close(self, window_start_ms: int) -> ClosedWindow:
        acc = self._open.pop(window_start_ms)
        detector = np.flatnonzero(acc[_N_READINGS] > 0)
        rows = slice(None) if len(detector) == self.n_detectors else detector
        cols = {name: acc[i, rows].astype(np.int64 if name in _INT_FIELDS else np.float64, copy=True)
                for i, name in enumerate(_FIELDS)}
        if len(self._spare) < 2:
            self._spare.append(acc)
        return ClosedWindow(window_start_ms, self.definition.length_ms, detector.astype(np.int64), **cols)

    # ---- state ------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Plain data (ints, lists, numpy arrays); ``build(resume_state=...)`` restores it exactly."""
        windows = []
        for w in sorted(self._open):
            acc = self._open[w]
            touched = np.flatnonzero(acc[_N_READINGS] > 0)
            windows.append({"window_start_ms": int(w), "detector": touched, "sums": acc[:, touched].copy()})
        return {"length_ms": self.definition.length_ms, "allowed_lateness_ms": self.definition.allowed_lateness_ms,
                "n_detectors": self.n_detectors, "watermark_ms": self._watermark_ms, "fields": list(_FIELDS),
                "windows": windows}

    def _restore(self, state: dict[str, Any]) -> None:
        if int(state["length_ms"]) != self.definition.length_ms:
            raise ValueError(f"snapshot is for {state['length_ms']} ms windows, not {self.definition.length_ms}")
        if int(state["n_detectors"]) != self.n_detectors or list(state["fields"]) != list(_FIELDS):
            raise ValueError("snapshot does not match this window logic (detector count or fields)")
        self._watermark_ms = int(state["watermark_ms"])
        for win in state["windows"]:
            acc = self._new_accumulator()
            acc[:, np.asarray(win["detector"], dtype=np.int64)] = np.asarray(win["sums"], dtype=np.float64)
            self._open[int(win["window_start_ms"])] = acc
