"""Seeded evaluation scenarios: what to simulate, where the incidents are, which detectors fail.

``default_scenarios(k, seed)`` draws ``k`` CTM scenarios (and, with ``sumo=True``,
SUMO corridors too) from held-out seeds. The incident detectors were tuned on
seeds 0-5 of the PIE between 05:00 and 19:00, so the defaults use seeds from 1000,
never the PIE, and whole days (night, both peaks, evenings, weekends). Each
scenario varies the demand level, the incidents (roadway, place, start, duration,
lanes blocked) and the detector faults; every fourth one is incident-free, so
false alarms are also measured on days where nothing happens.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from models.network import Network
from models.singapore import singapore_network
from simulators import DEFAULT_START_MS, IncidentSpec
from simulators.sumo.scenario import SumoScenarioConfig

DEFAULT_SEED = 1000
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
MIN_MS = 60_000
TUNED_CORRIDORS = ("PIE",)  # the statistical detector's author tuned on these: held out of the defaults
SUMO_SITES_KM = (1.25, 3.25, 5.25, 5.75, 7.25, 7.75)  # between loops, clear of the default corridor's ramps


@dataclass(frozen=True)
class Scenario:
    """One simulated run to score. ``source`` is ``"ctm"`` or ``"sumo"``."""

    scenario_id: str
    source: str
    seed: int
    start_ms: int
    duration_s: int
    incidents: tuple[IncidentSpec, ...] = ()
    fault_fraction: float = 0.0
    demand_scale: float = 1.0
    roadway_keys: tuple[str, ...] = ()  # CTM: roadways of the default network to simulate
    sumo: SumoScenarioConfig | None = None
    notes: str = ""
    tags: tuple[str, ...] = field(default=())

    @property
    def incident_free(self) -> bool:
        return not self.incidents


def ctm_network(roadway_keys: tuple[str, ...]) -> Network:
    """The default (Singapore) network cut to the given roadways."""
    full = singapore_network()
    by_key = full.roadway_by_key
    unknown = [k for k in roadway_keys if k not in by_key]
    if unknown:
        raise ValueError(f"unknown roadways {unknown}; known: {sorted(by_key)}")
    return Network(f"eval-{'+'.join(roadway_keys)}", tuple(by_key[k] for k in roadway_keys),
                   meta={"source": "roadpulse default network, evaluation cut"})


def _ctm_scenario(i: int, seed: int, rng: np.random.Generator, quick: bool) -> Scenario:
    full = singapore_network()
    pool = sorted(rw.key for rw in full.roadways if rw.corridor not in TUNED_CORRIDORS)
    keys = tuple(sorted(rng.choice(pool, size=2, replace=False).tolist()))
    net = ctm_network(keys)
    incident_free = i % 4 == 3
    day = int(rng.integers(0, 7))
    if quick:  # one morning hour, one incident 25 min in
        start = DEFAULT_START_MS + day * DAY_MS + 7 * HOUR_MS
        duration_s = 3600
        slots = [start + 25 * MIN_MS]
    else:
        start = DEFAULT_START_MS + day * DAY_MS
        duration_s = 24 * 3600
        # three incidents in separate windows between 06:00 and 22:00 (no overlap on a roadway)
        edges = np.linspace(6, 22, 4)
        slots = [start + int(rng.uniform(a, b - 1.0) * HOUR_MS) // MIN_MS * MIN_MS for a, b in zip(edges, edges[1:])]
    specs = []
    if not incident_free:
        for t0 in slots:
            rw = net.roadways[int(rng.integers(len(net.roadways)))]
            seg = rw.segments[int(rng.integers(1, len(rw.segments) - 1))]  # not at the roadway's ends
            loc = round(seg.start_km + rng.uniform(0.2, 0.8) * seg.length_km, 3)
            duration = (20 if quick else int(rng.integers(10, 46))) * MIN_MS
            lanes = int(rng.integers(1, rw.stations[0].lanes))
            specs.append(IncidentSpec(rw.key, loc, int(t0), duration, lanes))
    return Scenario(
        scenario_id=f"ctm-{seed + i}", source="ctm", seed=seed + i, start_ms=int(start), duration_s=duration_s,
        incidents=tuple(specs), fault_fraction=round(float(rng.uniform(0.01, 0.04)), 3),
        demand_scale=round(float(rng.uniform(0.85, 1.1)), 3), roadway_keys=keys,
        notes="incident-free day" if incident_free else f"{len(specs)} staged incidents",
        tags=("incident-free",) if incident_free else ())


def _sumo_scenario(i: int, seed: int, rng: np.random.Generator, quick: bool) -> Scenario:
    s = seed + 500 + i
    duration_s = 1800 if quick else 9000
    start = DEFAULT_START_MS + 6 * HOUR_MS + int(rng.integers(0, 3)) * HOUR_MS
    incident_free = i % 4 == 3
    specs: tuple[IncidentSpec, ...] = ()
    if not incident_free:
        at = start + (10 if quick else int(rng.integers(40, 90))) * MIN_MS
        specs = (IncidentSpec("SUMO-E", float(rng.choice(SUMO_SITES_KM)), int(at),
                              (10 if quick else int(rng.integers(10, 31))) * MIN_MS, int(rng.integers(1, 3))),)
    cfg = SumoScenarioConfig(
        corridor="SUMO", seed=s, start_ms=int(start), duration_s=duration_s, warmup_s=600, incidents=specs,
        mainline_peak_veh_h_lane=round(float(rng.uniform(1350, 1600)), 1),
        ramp_peak_veh_h=round(float(rng.uniform(600, 850)), 1))
    return Scenario(
        scenario_id=f"sumo-{s}", source="sumo", seed=s, start_ms=int(start), duration_s=duration_s, incidents=specs,
        fault_fraction=round(float(rng.uniform(0.0, 0.03)), 3), sumo=cfg,
        notes="incident-free" if incident_free else "stopped vehicle(s)",
        tags=("incident-free",) if incident_free else ())


def default_scenarios(k: int = 8, seed: int = DEFAULT_SEED, quick: bool = False, sumo: bool = False,
                      k_sumo: int | None = None) -> list[Scenario]:
    """``k`` seeded CTM scenarios (+ ``k_sumo`` SUMO ones when ``sumo``, default max(1, k // 4)).

    ``quick``: one hour each (one incident 25 min in; SUMO: 30 min), for tests and smoke runs.
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    out = [_ctm_scenario(i, seed, np.random.default_rng([seed, i]), quick) for i in range(k)]
    if sumo:
        n = max(1, k // 4) if k_sumo is None else k_sumo
        out += [_sumo_scenario(i, seed, np.random.default_rng([seed, 10_000 + i]), quick) for i in range(n)]
    return out


def with_fault_fraction(scenarios: list[Scenario], fraction: float) -> list[Scenario]:
    """The same scenarios with another share of faulty detectors (e.g. 0 to isolate incident effects)."""
    return [replace(s, fault_fraction=fraction) for s in scenarios]
