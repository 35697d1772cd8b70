"""The default network, modelled on Singapore's expressways.

Lengths, lane counts and coordinates are approximate (waypoints traced by hand
from public maps), good enough to draw the network and to size the simulator.
``singapore_network(n_detectors)`` scales it from a handful of detectors
(a part of the PIE) to 50,000 (the island's expressways repeated as extra
"districts", each offset on the map) by choosing station spacing and copies.
"""
from __future__ import annotations

import math

import numpy as np

from models.network import Network, Ramp, Roadway, Station

# code, name, lanes, speed limit km/h, (lat, lon) waypoints from the "forward" end
EXPRESSWAYS: tuple[tuple[str, str, int, float, tuple[tuple[float, float], ...]], ...] = (
    ("PIE", "Pan Island Expressway", 4, 90.0,
     ((1.3383, 103.6420), (1.3440, 103.7000), (1.3380, 103.7800), (1.3340, 103.8500),
      (1.3350, 103.9200), (1.3400, 103.9800))),
    ("AYE", "Ayer Rajah Expressway", 3, 90.0,
     ((1.3000, 103.6360), (1.3130, 103.7200), (1.3000, 103.7700), (1.2850, 103.8100), (1.2760, 103.8450))),
    ("CTE", "Central Expressway", 3, 80.0,
     ((1.3900, 103.8700), (1.3400, 103.8500), (1.3000, 103.8400), (1.2800, 103.8400))),
    ("ECP", "East Coast Parkway", 4, 90.0,
     ((1.2800, 103.8600), (1.3000, 103.9100), (1.3150, 103.9500), (1.3400, 103.9900))),
    ("BKE", "Bukit Timah Expressway", 3, 90.0, ((1.3450, 103.7700), (1.3900, 103.7750), (1.4400, 103.7700))),
    ("KJE", "Kranji Expressway", 3, 90.0, ((1.3500, 103.7400), (1.3750, 103.7300), (1.4000, 103.7200))),
    ("SLE", "Seletar Expressway", 3, 90.0, ((1.4400, 103.7900), (1.4200, 103.8300), (1.3950, 103.8700))),
    ("TPE", "Tampines Expressway", 3, 90.0, ((1.3950, 103.8700), (1.3900, 103.9200), (1.3700, 103.9600))),
    ("KPE", "Kallang-Paya Lebar Expressway", 3, 80.0,
     ((1.2950, 103.8700), (1.3400, 103.8900), (1.3950, 103.9000))),
    ("MCE", "Marina Coastal Expressway", 4, 80.0, ((1.2750, 103.8350), (1.2820, 103.8550), (1.2900, 103.8700))),
)

EARTH_RADIUS_KM = 6371.0
DEFAULT_SPACING_KM = 0.5
DISTRICT_OFFSET_DEG = 0.35  # each extra district is drawn this far north of the last


def _haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def _compass(a: tuple[float, float], b: tuple[float, float]) -> str:
    dlat, dlon = b[0] - a[0], b[1] - a[1]
    if abs(dlon) >= abs(dlat):
        return "E" if dlon > 0 else "W"
    return "N" if dlat > 0 else "S"


def _interpolate(waypoints: list[tuple[float, float]], km: np.ndarray) -> list[tuple[float, float]]:
    cum = np.concatenate([[0.0], np.cumsum([_haversine_km(a, b) for a, b in zip(waypoints, waypoints[1:])])])
    lats = np.interp(km, cum, [p[0] for p in waypoints])
    lons = np.interp(km, cum, [p[1] for p in waypoints])
    return list(zip(lats.tolist(), lons.tolist()))


def _roadway(code: str, name: str, lanes: int, limit: float, waypoints: list[tuple[float, float]],
             spacing_km: float, max_stations: int | None) -> Roadway:
    direction = _compass(waypoints[0], waypoints[-1])
    length = sum(_haversine_km(a, b) for a, b in zip(waypoints, waypoints[1:]))
    kms = np.round(np.arange(0.0, length, spacing_km), 3)
    if max_stations is not None:
        kms = kms[:max_stations]
    coords = _interpolate(waypoints, kms)
    stations = tuple(
        Station(sid, code, direction, float(km), lanes, tuple(f"{sid}-L{lane + 1}" for lane in range(lanes)),
                round(lat, 6), round(lon, 6))
        for i, (km, (lat, lon)) in enumerate(zip(kms, coords))
        for sid in [f"{code}-{direction}-{i:03d}"]
    )
    # an on-ramp and an off-ramp roughly every 2.5 km, between stations
    ramps = tuple(Ramp(float(km) + 0.25 * spacing_km, "on", 0.08) for km in kms[2::5]) + tuple(
        Ramp(float(km) + 0.75 * spacing_km, "off", 0.08) for km in kms[4::5])
    return Roadway(code, direction, f"{name} ({direction})", stations, tuple(sorted(ramps, key=lambda r: r.km)),
                   limit)


def singapore_network(n_detectors: int | None = None, spacing_km: float = DEFAULT_SPACING_KM) -> Network:
    """Singapore's expressways, both directions, with detectors on every lane.

    With ``n_detectors`` the network is cut or repeated (as extra districts) to
    have about that many detectors, never fewer than 10 (two stations).
    """
    target = None if n_detectors is None else max(10, int(n_detectors))
    roadways: list[Roadway] = []
    total = 0
    district = 0
    while True:
        for code, name, lanes, limit, waypoints in EXPRESSWAYS:
            dlat = district * DISTRICT_OFFSET_DEG
            pts = [(lat + dlat, lon) for lat, lon in waypoints]
            suffix = "" if district == 0 else str(district + 1)
            for pts_dir in (pts, pts[::-1]):
                remaining = None if target is None else math.ceil((target - total) / lanes)
                rw = _roadway(code + suffix, name + (f" #{district + 1}" if district else ""), lanes, limit,
                              pts_dir, spacing_km, None if remaining is None else max(2, remaining))
                roadways.append(rw)
                total += sum(s.lanes for s in rw.stations)
                if target is not None and total >= target:
                    return _network(roadways, district, spacing_km)
        if target is None:
            return _network(roadways, district, spacing_km)
        district += 1


def _network(roadways: list[Roadway], district: int, spacing_km: float) -> Network:
    return Network("singapore-expressways", tuple(roadways),
                   meta={"source": "roadpulse default, modelled on Singapore's expressways (approximate)",
                         "districts": district + 1, "station_spacing_km": spacing_km})
