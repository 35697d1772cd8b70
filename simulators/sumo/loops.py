"""Interval readings of SUMO E1 loops rebuilt with SUMO's own definitions (MSInductLoop).

``getVehicleData`` is polled every step; each tuple is (vehicle, length, entry time,
leave time or -1 while on the loop, type), entry and leave interpolated within the
step. For an interval [begin, end) the E1 XML reports:

* ``nVehContrib``: vehicles whose back left the loop in the interval, *excluding*
  vehicles that left it any other way (lane change on the loop, teleport, arrival).
  SUMO marks those "left early" and stamps their leave at the step time itself;
  a vehicle crossing normally gets an interpolated leave time, so a leave time
  equal to the step at which it was first seen is the early-leave mark;
* ``speed``: arithmetic mean over those vehicles of (length + loop length) /
  (leave - entry), loop length 0 for point loops (time-mean speed), -1 when none;
* ``occupancy``: occupied time clipped to the interval over every vehicle on the
  loop during it (early leavers and vehicles still on it at the end included) /
  period x 100.

The interval getters (``getLastIntervalVehicleNumber``/``MeanSpeed``/``Occupancy``)
are *not* the XML's numbers in queues: they include vehicles still standing on the
loop at the interval's end. Per-step getters (``getLastStepOccupancy``,
``getLastStepVehicleNumber``) are biased when aggregated and are not used.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

NO_LEAVE = -1.0  # getVehicleData's leave time while the vehicle is still on the loop


@dataclass
class _Passage:
    length_m: float
    leave_s: float = NO_LEAVE
    left_early: bool = False


@dataclass(frozen=True)
class IntervalReadings:
    """One interval of every loop: SUMO's nVehContrib, occupancy % and speeds (m/s, NaN when none)."""

    vehicle_count: np.ndarray  # int64
    occupancy_pct: np.ndarray
    time_mean_speed_m_s: np.ndarray  # arithmetic, the XML's ``speed``
    harmonic_speed_m_s: np.ndarray  # the XML's ``harmonicMeanSpeed``

    @property
    def speed_kmh(self) -> np.ndarray:
        return self.time_mean_speed_m_s * 3.6


class IntervalRebuilder:
    """Passages per loop from per-step vehicle data, closed into interval readings."""

    def __init__(self, n_loops: int) -> None:
        self._on: list[dict[tuple[str, float], _Passage]] = [{} for _ in range(n_loops)]

    def add_step(self, loop: int, now_s: float, vehicle_data: Iterable[tuple]) -> None:
        """One step's ``getVehicleData`` tuples of one loop, polled right after the step to ``now_s``."""
        on = self._on[loop]
        for vid, length, entry, leave, _type in vehicle_data:
            p = on.get((vid, entry))
            if p is None:
                p = on[(vid, entry)] = _Passage(length)
            if leave != NO_LEAVE and p.leave_s == NO_LEAVE:
                p.leave_s = leave
                p.left_early = leave == now_s  # not interpolated: left by lane change, teleport or arrival

    def close(self, begin_s: float, end_s: float) -> IntervalReadings:
        """Readings of every loop over [begin_s, end_s); forgets passages that ended by ``end_s``."""
        n = len(self._on)
        count = np.zeros(n, dtype=np.int64)
        occ = np.zeros(n)
        tmean = np.full(n, np.nan)
        hmean = np.full(n, np.nan)
        period = end_s - begin_s
        for i, on in enumerate(self._on):
            if not on:
                continue
            occupied, speeds, gone = 0.0, [], []
            for key, p in on.items():
                entry = key[1]
                stop = end_s if p.leave_s == NO_LEAVE else min(p.leave_s, end_s)
                occupied += max(0.0, stop - max(entry, begin_s))
                if p.leave_s != NO_LEAVE and p.leave_s <= end_s:
                    gone.append(key)
                    if not p.left_early and p.leave_s >= begin_s:
                        speeds.append(p.length_m / max(p.leave_s - entry, 1e-9))
            for key in gone:
                del on[key]
            occ[i] = occupied / period * 100.0
            if speeds:
                v = np.asarray(speeds)
                count[i] = len(v)
                tmean[i] = v.mean()
                hmean[i] = len(v) / (1.0 / v).sum()
        return IntervalReadings(count, occ, tmean, hmean)
