"""The roadpulse :class:`~models.network.Network` of a generated SUMO corridor.

Stations are the loop positions (km posts from the scenario, increasing
downstream), one detector per lane whose id is the SUMO loop id; roadpulse lane 1
is the leftmost lane, SUMO's highest lane index. Ramps are copied with their
shares so the network file describes the same road.
"""
from __future__ import annotations

from models.network import Network, Ramp, Roadway, Station
from simulators.sumo.scenario import SumoScenario, SumoScenarioConfig, station_id

ORIGIN_LAT, ORIGIN_LON = 1.30, 103.70  # drawn somewhere harmless; the corridor runs due east
KM_PER_DEG_LON = 111.2


def corridor_network(scenario: SumoScenario) -> Network:
    """One roadway: the scenario's mainline with a station at every loop position."""
    cfg: SumoScenarioConfig = scenario.config
    by_station: dict[int, list[tuple[int, str]]] = {}
    for lp in scenario.loops:
        by_station.setdefault(lp.station_index, []).append((lp.lane_index, lp.loop_id))
    stations = []
    for i, km in enumerate(scenario.station_kms):
        lanes = sorted(by_station[i], key=lambda t: -t[0])  # leftmost first
        stations.append(Station(station_id(cfg, i), cfg.corridor, cfg.direction, float(km), len(lanes),
                                tuple(d for _, d in lanes), ORIGIN_LAT, round(ORIGIN_LON + km / KM_PER_DEG_LON, 6)))
    ramps = tuple(sorted([Ramp(float(km), "on", 0.1) for km in cfg.on_ramps_km]
                         + [Ramp(float(km), "off", cfg.off_ramp_share) for km in cfg.off_ramps_km],
                         key=lambda r: r.km))
    roadway = Roadway(cfg.corridor, cfg.direction, f"SUMO corridor {cfg.corridor} (seed {cfg.seed})",
                      tuple(stations), ramps, cfg.speed_limit_kmh)
    return Network(f"sumo-{cfg.corridor.lower()}", (roadway,),
                   meta={"source": "simulators.sumo generated corridor", "seed": cfg.seed,
                         "loop_spacing_m": cfg.loop_spacing_m})
