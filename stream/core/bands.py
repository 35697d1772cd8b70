"""LTA speed bands (Singapore DataMall TrafficSpeedBands).

Band 1 is [0, 10) km/h, band 2 [10, 20), ... band 7 [60, 70), band 8 >= 70;
0 means unknown (NaN speed, no vehicle).
"""
from __future__ import annotations

import numpy as np

BAND_WIDTH_KMH = 10.0
MAX_BAND = 8
UNKNOWN_BAND = 0


def speed_band(speed_kmh: np.ndarray) -> np.ndarray:
    """int8 LTA band 1..8 per speed, 0 for NaN; negative speeds fall in band 1, +inf in band 8."""
    speed = np.asarray(speed_kmh, dtype=np.float64)
    band = speed / BAND_WIDTH_KMH  # division, not * 0.1: exact at the band edges
    np.floor(band, out=band)
    band += 1
    np.clip(band, 1, MAX_BAND, out=band)
    band[np.isnan(band)] = UNKNOWN_BAND
    return band.astype(np.int8)

def band_range_kmh(band: int) -> tuple[float, float]:
    """Lower (inclusive) and upper (exclusive) speed of a band; band 8 is open-ended."""
    if not 1 <= band <= MAX_BAND:
        raise ValueError(f"band must be 1..{MAX_BAND}, got {band}")
    low = (band - 1) * BAND_WIDTH_KMH
    return low, (np.inf if band == MAX_BAND else low + BAND_WIDTH_KMH)
