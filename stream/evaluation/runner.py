"""Run scenarios through the pipeline with every algorithm side by side, and score them.

One :class:`~stream.core.pipeline.StationStage` + one
:class:`~stream.core.pipeline.CorridorStage` with ``PipelineConfig(algorithms=...)``
per scenario, so all algorithms see exactly the same windows (imputation and
detector health included, as in production). Scoring follows
:func:`stream.core.scoring.score_incidents`; per-decision false-alarm rates divide
false alarms by the segment-interval decisions made under non-incident conditions
(domain notes, section 3): a decision is one segment and one incident window; it is
under incident conditions when the segment is within ``2 x max_distance_km`` of a
true incident between its start and its end plus the grace period.

Scenarios run in worker processes (``workers``); results depend only on each
scenario's seed, never on which worker ran it.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from models.network import Network
from models.records import Incident
from simulators import SimulationConfig, TrafficSimulator
from simulators.incidents import IncidentTruth
from stream.core.incidents import ALGORITHMS
from stream.core.pipeline import CorridorStage, PipelineConfig, StationStage
from stream.core.scoring import score_incidents
from stream.evaluation.scenarios import Scenario, ctm_network

log = logging.getLogger(__name__)

MAX_DISTANCE_KM = 1.5  # as score_incidents
GRACE_MS = 5 * 60_000


@dataclass
class SpeedGrid:
    """Station space-mean speeds of one roadway per incident window (for the time-space plot)."""

    roadway_key: str
    station_km: np.ndarray
    window_start_ms: np.ndarray
    speed_kmh: np.ndarray  # (windows, stations), NaN where no data


@dataclass
class AlgorithmOutcome:
    """One algorithm on one scenario."""

    algorithm: str
    hits: int
    misses: int
    false_alarms: int
    time_to_detect_s: list[float]
    time_to_clear_s: list[float]  # detected cleared_ms - true end, per hit that cleared
    detected_ids: dict[str, str]  # truth id -> detected incident id


@dataclass
class ScenarioResult:
    scenario: Scenario
    truths: list[IncidentTruth]
    n_faults: int
    decisions: int  # segment-interval decisions in total
    non_incident_decisions: int
    hours: float
    roadway_km: float
    outcomes: dict[str, AlgorithmOutcome]
    incidents: list[Incident] = field(default_factory=list)
    grids: dict[str, SpeedGrid] = field(default_factory=dict)
    wall_s: float = 0.0
    sim_s: float = 0.0


def _source(scenario: Scenario) -> tuple[Any, Network]:
    if scenario.source == "ctm":
        network = ctm_network(scenario.roadway_keys)
        sim = TrafficSimulator(network, SimulationConfig(
            seed=scenario.seed, start_ms=scenario.start_ms, duration_s=scenario.duration_s,
            demand_scale=scenario.demand_scale, n_random_incidents=0, incidents=scenario.incidents,
            fault_fraction=scenario.fault_fraction))
        return sim, network
    if scenario.source == "sumo":
        from simulators.sumo.source import SumoSource  # SUMO is optional

        if scenario.sumo is None:
            raise ValueError(f"{scenario.scenario_id}: a SUMO scenario needs its SumoScenarioConfig")
        src = SumoSource(scenario.sumo, fault_fraction=scenario.fault_fraction)
        return src, src.network
    raise ValueError(f"unknown scenario source {scenario.source!r}")


def _incident_mask(network: Network, truths: list[IncidentTruth], window_starts: np.ndarray,
                   window_ms: int) -> np.ndarray:
    """(windows, segments) True where a decision is under incident conditions."""
    segs = network.segments
    mid = np.array([(s.start_km + s.end_km) / 2 for s in segs])
    rw = np.array([f"{s.corridor}-{s.direction}" for s in segs], dtype=object)
    mask = np.zeros((len(window_starts), len(segs)), dtype=bool)
    for t in truths:
        near = (rw == t.roadway_key) & (np.abs(mid - t.location_km) <= 2 * MAX_DISTANCE_KM)
        during = (window_starts + window_ms > t.start_ms) & (window_starts <= t.end_ms + GRACE_MS)
        mask |= during[:, None] & near[None, :]
    return mask


def _outcome(algo: str, events: list[Incident], truths: list[IncidentTruth]) -> AlgorithmOutcome:
    score = score_incidents(algo, events, truths, max_distance_km=MAX_DISTANCE_KM, grace_ms=GRACE_MS)
    cleared = {e.incident_id: e.cleared_ms for e in events if e.algorithm == algo and e.status == "cleared"}
    by_id = {t.incident_id: t for t in truths}
    ttc = [(cleared[m.detected_id] - by_id[m.truth_id].end_ms) / 1000 for m in score.matches
           if cleared.get(m.detected_id) is not None]
    return AlgorithmOutcome(algo, score.hits, score.misses, score.false_alarms,
                            [m.time_to_detect_s for m in score.matches], ttc,
                            {m.truth_id: m.detected_id for m in score.matches})


def run_scenario(scenario: Scenario, algorithms: tuple[str, ...] = ALGORITHMS,
                 keep_grids: bool = True) -> ScenarioResult:
    """Simulate, stream through StationStage + CorridorStage, score every algorithm."""
    t_wall = time.perf_counter()
    source, network = _source(scenario)
    config = PipelineConfig(algorithms=tuple(algorithms), subscriptions=())
    win = config.incident_window_ms
    stations = StationStage(network, config)
    corridor = CorridorStage(network, config)
    events: list[Incident] = []
    speed_rows: dict[int, np.ndarray] = {}
    st_index = network.station_index
    for batch in source:
        stations.process(network.detector_numbers(batch.detector_id), batch)
        for st in stations.poll().stations:
            corridor.add(st)
            if keep_grids and st.window_ms == win:
                _grid_rows(speed_rows, st, st_index, len(network.stations))
        events += corridor.poll().incidents
    end_ms = source.start_ms + source.n_intervals * source.interval_ms
    for st in stations.poll(flush=True).stations:
        corridor.add(st)
        if keep_grids and st.window_ms == win:
            _grid_rows(speed_rows, st, st_index, len(network.stations))
    events += corridor.close_all(end_ms).incidents
    truth = source.ground_truth
    truths = list(truth.incidents)

    starts = np.arange(source.start_ms, end_ms, win, dtype=np.int64)
    mask = _incident_mask(network, truths, starts, win)
    decisions = int(mask.size)
    outcomes = {a: _outcome(a, events, truths) for a in algorithms}
    grids = _grids(network, speed_rows, starts) if keep_grids else {}
    return ScenarioResult(
        scenario=scenario, truths=truths, n_faults=len(truth.faults), decisions=decisions,
        non_incident_decisions=int((~mask).sum()), hours=(end_ms - source.start_ms) / 3_600_000,
        roadway_km=float(sum(rw.length_km for rw in network.roadways)), outcomes=outcomes,
        incidents=events, grids=grids, wall_s=time.perf_counter() - t_wall,
        sim_s=(end_ms - source.start_ms) / 1000)


def _grid_rows(rows: dict[int, np.ndarray], st: Any, index: dict[str, int], n: int) -> None:
    speed = np.where(np.isfinite(st.space_mean_speed_kmh), st.space_mean_speed_kmh, st.time_mean_speed_kmh)
    for e, t, v in zip(st.entity_id, st.window_start_ms, speed):
        row = rows.get(int(t))
        if row is None:
            row = rows[int(t)] = np.full(n, np.nan)
        row[index[e]] = v


def _grids(network: Network, rows: dict[int, np.ndarray], starts: np.ndarray) -> dict[str, SpeedGrid]:
    full = np.full((len(starts), len(network.stations)), np.nan)
    pos = {int(t): i for i, t in enumerate(starts)}
    for t, row in rows.items():
        if t in pos:
            full[pos[t]] = row
    out = {}
    for rw in network.roadways:
        idx = [network.station_index[s.station_id] for s in rw.stations]
        out[rw.key] = SpeedGrid(rw.key, np.array([s.km for s in rw.stations]), starts, full[:, idx].astype(np.float32))
    return out


def _run_one(args: tuple[Scenario, tuple[str, ...], bool]) -> ScenarioResult:
    scenario, algorithms, keep = args
    result = run_scenario(scenario, algorithms, keep)
    log.info("%s done in %.1f s", scenario.scenario_id, result.wall_s)
    return result


def run_scenarios(scenarios: Iterable[Scenario], algorithms: tuple[str, ...] = ALGORITHMS, workers: int = 1,
                  keep_grids: bool = True, progress: Any = None) -> list[ScenarioResult]:
    """Every scenario, in order; ``workers`` > 1 runs them in that many processes."""
    todo = [(s, tuple(algorithms), keep_grids) for s in scenarios]
    results: list[ScenarioResult] = []
    if workers <= 1 or len(todo) <= 1:
        for item in todo:
            results.append(_run_one(item))
            if progress:
                progress(results[-1])
        return results
    # SUMO first: the long runs start early and the short CTM days fill in around them
    order = sorted(range(len(todo)), key=lambda i: todo[i][0].source != "sumo")
    # fork: works from any script (no __main__ guard needed); each worker starts its own libsumo simulation,
    # the parent never runs one while workers exist
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ctx.Pool(processes=min(workers, len(todo))) as pool:
        done = {}
        for i, res in zip(order, pool.imap(_run_one, [todo[i] for i in order])):
            done[i] = res
            if progress:
                progress(res)
    return [done[i] for i in range(len(todo))]
