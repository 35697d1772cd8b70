"""Demand follows Singapore local time: weekday AM/PM peaks near capacity, quiet nights, softer weekends."""
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from simulators import DEFAULT_START_MS
from simulators.demand import demand_ratio, local_time

SGT = timezone(timedelta(hours=8))


def at(day, hour, minute=0):
    """UTC ms of a Singapore wall-clock time in March 2026."""
    return int(datetime(2026, 3, day, hour, minute, tzinfo=SGT).timestamp() * 1000)


def test_default_start_is_monday_midnight_in_singapore():
    assert DEFAULT_START_MS == at(2, 0)
    assert local_time(DEFAULT_START_MS) == (0.0, 0)
    hour, weekday = local_time(at(7, 13, 30))  # Saturday
    assert hour == pytest.approx(13.5) and weekday == 5
    # the reference: Python's own calendar
    for ms in (at(3, 23, 59), at(8, 0, 1), DEFAULT_START_MS - 1):
        dt = datetime.fromtimestamp(ms / 1000, SGT)
        assert local_time(ms) == (pytest.approx(dt.hour + dt.minute / 60 + (dt.second + dt.microsecond / 1e6) / 3600), dt.weekday())


def test_weekday_profile_peaks_at_the_roadway_ratios():
    am, pm = np.array([0.8, 0.95]), np.array([0.9, 0.7])
    np.testing.assert_allclose(demand_ratio(at(3, 8, 30), am, pm), am, atol=0.01)
    np.testing.assert_allclose(demand_ratio(at(3, 18, 45), am, pm), pm, atol=0.01)
    night = demand_ratio(at(3, 3), am, pm)
    midday = demand_ratio(at(3, 12), am, pm)
    assert (night < 0.12).all()
    assert (midday > 0.45).all() and (midday < am).all()
    assert (demand_ratio(at(3, 6, 0), am, pm) < am - 0.3).all()  # before the peak starts


def test_weekend_has_a_midday_hump_and_no_commute_peak():
    am = pm = np.array([0.95])
    sat_morning = demand_ratio(at(7, 8, 30), am, pm)[0]
    sat_midday = demand_ratio(at(7, 13), am, pm)[0]
    assert sat_midday > sat_morning
    assert sat_morning < demand_ratio(at(6, 8, 30), am, pm)[0] - 0.3  # Friday's AM peak
    assert sat_midday < 0.8
