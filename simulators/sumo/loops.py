"""Interval readings of SUMO E1 loops, with SUMO's own definitions (MSInductLoop).

Counts and time-mean speeds come from the interval getters
(``getLastIntervalVehicleNumber`` = the XML's ``nVehContrib``, ``getLastIntervalMeanSpeed``
= the XML's arithmetic ``speed``): they equal the E1 XML exactly. Occupancy does
not: ``getLastIntervalOccupancy`` leaves out parts of the vehicles straddling the
interval edges, while the XML counts the occupied time clipped to the interval,
including a vehicle still on the loop at its end. :class:`OccupancyRebuilder`
rebuilds the XML's value from ``getVehicleData`` polled every step (entry and leave
times are interpolated within the step, so no step granularity creeps in).
Per-step getters (``getLastStepOccupancy``) are biased and are not used.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

NO_LEAVE = -1.0  # getVehicleData's leave time while the vehicle is still on the loop


class OccupancyRebuilder:
    """Occupied time per loop within the current interval, from per-step vehicle data."""

    def __init__(self, n_loops: int) -> None:
        self._on: list[dict[tuple[str, float], float]] = [{} for _ in range(n_loops)]  # (veh, entry) -> leave

    def add_step(self, loop: int, vehicle_data: Iterable[tuple]) -> None:
        """Record one step's ``getVehicleData`` tuples (id, length, entry_s, leave_s, type) of one loop."""
        on = self._on[loop]
        for vid, _length, entry, leave, _type in vehicle_data:
            on[(vid, entry)] = leave

    def close(self, begin_s: float, end_s: float) -> np.ndarray:
        """Occupancy % of every loop over [begin_s, end_s); forgets vehicles that have left by ``end_s``."""
        period = end_s - begin_s
        out = np.zeros(len(self._on))
        for i, on in enumerate(self._on):
            if not on:
                continue
            occupied = 0.0
            gone = []
            for key, leave in on.items():
                entry = key[1]
                stop = end_s if leave == NO_LEAVE else min(leave, end_s)
                occupied += max(0.0, stop - max(entry, begin_s))
                if leave != NO_LEAVE and leave <= end_s:
                    gone.append(key)
            for key in gone:
                del on[key]
            out[i] = occupied / period * 100.0
        return out


def interval_speed_kmh(mean_speed_m_s: np.ndarray) -> np.ndarray:
    """SUMO's -1 (no vehicle) -> NaN; m/s -> km/h."""
    v = np.asarray(mean_speed_m_s, dtype=np.float64)
    return np.where(v < 0, np.nan, v * 3.6)
