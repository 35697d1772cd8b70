"""Traffic demand by time of day: how many vehicles want to enter each roadway.

Demand is expressed as a ratio of the roadway's entry capacity (lanes x
capacity per lane) and depends on local time: weekday AM peak (~07:30-09:30)
and PM peak (~17:30-20:00) near capacity, an off-peak day around half of it, a
quiet night, and a weekend with a midday hump. Each roadway draws its own AM
and PM peak ratios (entry and on-ramps) from the seed, and each on-ramp its own
weight, so bottlenecks sit at different merges and some corridors stay free.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from models.network import Network
from simulators.ctm import CellLayout
from simulators.fundamental import CAPACITY_VEH_H_LANE

MS_PER_HOUR = 3_600_000
MS_PER_DAY = 24 * MS_PER_HOUR
SINGAPORE_UTC_OFFSET_H = 8.0

# demand / capacity at each local hour 00..24 (the 25th knot closes the day)
WEEKDAY_KNOTS = np.array([0.20, 0.13, 0.09, 0.08, 0.09, 0.20, 0.42, 0.58, 0.60, 0.58, 0.52, 0.53, 0.56,
                          0.55, 0.54, 0.56, 0.60, 0.64, 0.64, 0.62, 0.55, 0.45, 0.38, 0.30, 0.20])
WEEKEND_KNOTS = np.array([0.24, 0.17, 0.12, 0.09, 0.08, 0.09, 0.15, 0.25, 0.38, 0.50, 0.60, 0.66, 0.70,
                          0.70, 0.67, 0.62, 0.58, 0.56, 0.55, 0.52, 0.46, 0.40, 0.35, 0.30, 0.24])
AM_PEAK_H = (7.5, 9.5)
PM_PEAK_H = (17.5, 20.0)
PEAK_EDGE_H = 0.3  # how sharply a peak rises and falls (tanh width)


def local_time(t_ms: int, utc_offset_h: float = SINGAPORE_UTC_OFFSET_H) -> tuple[float, int]:
    """Local hour of day (float, 0..24) and weekday (Monday = 0) of a UTC ms time."""
    local_ms = int(t_ms) + int(round(utc_offset_h * MS_PER_HOUR))
    day, ms_of_day = divmod(local_ms, MS_PER_DAY)
    return ms_of_day / MS_PER_HOUR, int((day + 3) % 7)  # 1970-01-01 was a Thursday


def _plateau(hour: float, start_h: float, end_h: float) -> float:
    return 0.5 * (np.tanh((hour - start_h) / PEAK_EDGE_H) - np.tanh((hour - end_h) / PEAK_EDGE_H))


def demand_ratio(t_ms: int, am_peak_ratio: np.ndarray, pm_peak_ratio: np.ndarray,
                 utc_offset_h: float = SINGAPORE_UTC_OFFSET_H) -> np.ndarray:
    """Demand / entry capacity at ``t_ms`` for roadways with these peak ratios."""
    hour, weekday = local_time(t_ms, utc_offset_h)
    am = np.asarray(am_peak_ratio, dtype=np.float64)
    pm = np.asarray(pm_peak_ratio, dtype=np.float64)
    if weekday >= 5:
        base = float(np.interp(hour, np.arange(25), WEEKEND_KNOTS))
        return base * (0.5 + 0.5 * (am + pm) / 2.0) * np.ones_like(am)
    base = float(np.interp(hour, np.arange(25), WEEKDAY_KNOTS))
    p_am = _plateau(hour, *AM_PEAK_H)
    p_pm = _plateau(hour, *PM_PEAK_H)
    return base + p_am * (am - base) + p_pm * (pm - base)


class Demand(Protocol):
    """Anything that says how fast vehicles arrive at each roadway's upstream end and each on-ramp."""

    def rates_veh_h(self, t_ms: int, layout: CellLayout) -> tuple[np.ndarray, np.ndarray]:
        """(arrivals per roadway entry, arrivals per on-ramp cell in ``layout.ramp_cell`` order), veh/h."""
        ...


@dataclass(frozen=True)
class TimeOfDayDemand:
    """Entry and on-ramp demand following the weekday/weekend profile.

    Entries peak below capacity; on-ramps (commuters joining along the way) peak
    harder, so flow builds up along a roadway and the merges where it crosses
    capacity become recurrent bottlenecks whose queues spill back upstream.
    """

    entry_capacity_veh_h: np.ndarray  # per roadway
    am_peak_ratio: np.ndarray  # per roadway, entry demand / capacity in the AM peak
    pm_peak_ratio: np.ndarray
    ramp_am_peak_ratio: np.ndarray  # per roadway, the same for its on-ramps (times their share)
    ramp_pm_peak_ratio: np.ndarray
    ramp_weight: np.ndarray  # per on-ramp cell: how busy this ramp is compared with the roadway's others
    utc_offset_h: float = SINGAPORE_UTC_OFFSET_H

    @classmethod
    def for_network(cls, network: Network, layout: CellLayout, rng: np.random.Generator,
                    demand_scale: float = 1.0, entry_peak: tuple[float, float] = (0.75, 0.95),
                    ramp_peak: tuple[float, float] = (0.9, 1.5), ramp_spread: float = 0.35,
                    capacity_veh_h_lane: float = CAPACITY_VEH_H_LANE) -> "TimeOfDayDemand":
        """Draw each roadway's peak ratios uniformly from the ranges (times ``demand_scale``)."""
        n = len(network.roadways)
        cap = np.array([rw.stations[0].lanes * capacity_veh_h_lane for rw in network.roadways], dtype=np.float64)
        am, pm = (rng.uniform(*entry_peak, size=n) * demand_scale for _ in range(2))
        ram, rpm = (rng.uniform(*ramp_peak, size=n) * demand_scale for _ in range(2))
        weight = rng.lognormal(-0.5 * ramp_spread ** 2, ramp_spread, size=len(layout.ramp_cell))
        return cls(cap, am, pm, ram, rpm, weight)

    def rates_veh_h(self, t_ms: int, layout: CellLayout) -> tuple[np.ndarray, np.ndarray]:
        entry = self.entry_capacity_veh_h * demand_ratio(t_ms, self.am_peak_ratio, self.pm_peak_ratio,
                                                         self.utc_offset_h)
        ramp_cap = self.entry_capacity_veh_h * demand_ratio(t_ms, self.ramp_am_peak_ratio,
                                                            self.ramp_pm_peak_ratio, self.utc_offset_h)
        rw = layout.ramp_roadway
        return entry, layout.ramp_share * self.ramp_weight * ramp_cap[rw]


@dataclass(frozen=True)
class ConstantDemand:
    """The same entry flow per lane on every roadway at all times; on-ramps add their share of it.

    For tests and calibration.
    """

    network: Network
    veh_h_lane: float

    def rates_veh_h(self, t_ms: int, layout: CellLayout) -> tuple[np.ndarray, np.ndarray]:
        entry = np.array([rw.stations[0].lanes * self.veh_h_lane for rw in self.network.roadways], dtype=np.float64)
        return entry, layout.ramp_share * entry[layout.ramp_roadway]
