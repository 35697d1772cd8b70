"""IntervalRebuilder by hand: SUMO's E1 definitions on a few passages."""
from __future__ import annotations

import math

import pytest

from simulators.sumo.loops import IntervalRebuilder


def test_counts_speeds_and_clipped_occupancy():
    r = IntervalRebuilder(2)
    # loop 0: a car (4.5 m) crossing in 0.25 s, a truck standing on the loop from 25 s to 40 s
    r.add_step(0, 11.0, [("car", 4.5, 10.5, 10.75, "c")])
    r.add_step(0, 26.0, [("truck", 12.0, 25.0, -1.0, "t")])
    r.add_step(0, 30.0, [("truck", 12.0, 25.0, -1.0, "t")])
    # loop 1: a vehicle that changed lanes on the loop (leave stamped at the step time) is no count
    r.add_step(1, 5.0, [("lc", 4.5, 4.2, 5.0, "c")])
    first = r.close(0.0, 30.0)
    assert first.vehicle_count.tolist() == [1, 0]
    assert first.time_mean_speed_m_s[0] == pytest.approx(4.5 / 0.25)
    assert first.occupancy_pct[0] == pytest.approx((0.25 + 5.0) / 30 * 100)  # truck still on the loop counts
    assert first.occupancy_pct[1] == pytest.approx(0.8 / 30 * 100) and math.isnan(first.time_mean_speed_m_s[1])
    r.add_step(0, 40.0, [("truck", 12.0, 25.0, 39.5, "t")])
    second = r.close(30.0, 60.0)
    assert second.vehicle_count[0] == 1
    assert second.time_mean_speed_m_s[0] == pytest.approx(12.0 / 14.5)  # over the whole passage
    assert second.occupancy_pct[0] == pytest.approx(9.5 / 30 * 100)  # clipped to this interval
    assert r.close(60.0, 90.0).occupancy_pct.tolist() == [0.0, 0.0]  # nothing left over


def test_harmonic_below_arithmetic():
    r = IntervalRebuilder(1)
    r.add_step(0, 2.0, [("a", 4.0, 1.0, 1.2, "c"), ("b", 4.0, 1.1, 1.9, "c")])
    out = r.close(0.0, 30.0)
    assert out.vehicle_count[0] == 2
    assert out.time_mean_speed_m_s[0] == pytest.approx((20.0 + 5.0) / 2)
    assert out.harmonic_speed_m_s[0] == pytest.approx(2 / (1 / 20 + 1 / 5))
