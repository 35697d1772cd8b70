"""LTA speed bands at the band edges."""
from __future__ import annotations

import numpy as np
import pytest

from stream.core.bands import band_range_kmh, speed_band


def test_band_edges() -> None:
    speeds = np.array([0.0, 9.99, 10.0, 19.999, 20.0, 29.9, 30.0, 45.0, 50.0, 59.99, 60.0, 69.99, 70.0, 70.01,
                       130.0, np.inf, np.nan, -3.0])
    expected = [1, 1, 2, 2, 3, 3, 4, 5, 6, 6, 7, 7, 8, 8, 8, 8, 0, 1]
    got = speed_band(speeds)
    assert got.dtype == np.int8
    assert got.tolist() == expected


def test_band_matches_range_table() -> None:
    rng = np.random.default_rng(0)
    speeds = rng.uniform(0, 120, 10_000)
    got = speed_band(speeds)
    for b in range(1, 9):
        low, high = band_range_kmh(b)
        inside = (speeds >= low) & (speeds < high)
        assert (got[inside] == b).all() and (got[~inside] != b).all()
    with pytest.raises(ValueError):
        band_range_kmh(0)


def test_empty_input() -> None:
    assert speed_band(np.array([])).shape == (0,)
