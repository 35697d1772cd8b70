"""``SumoSource``: SUMO stepped through libsumo, read out as roadpulse readings.

Same interface as :class:`simulators.TrafficSimulator`: iterate it for one
:class:`~models.records.ReadingBatch` per detector interval (every loop of the
corridor, network order), then read ``ground_truth`` (incidents that really
happened, detector faults). Counts are SUMO's ``nVehContrib``, speeds its
arithmetic (time-mean) ``speed`` in km/h (NaN when no vehicle left the loop),
occupancy the XML's occupied-time share, all rebuilt from per-step vehicle data
as the E1 XML computes them (see :mod:`simulators.sumo.loops`).
Faults (stuck, zeros, dropout, ...) are injected after the read-out, exactly as in
the CTM simulator, so both sources go through the same ingest path.

libsumo runs one simulation per process: a second source started while one is
running raises; ``close()`` (or exhausting the iterator) frees the slot.
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.network import Network
from models.records import ReadingBatch
from simulators.detectors import network_batch
from simulators.faults import FAULT_KINDS, FaultInjector, random_faults
from simulators.simulator import GroundTruth
from simulators.sumo.incidents import IncidentStager
from simulators.sumo.loops import IntervalRebuilder
from simulators.sumo.network import corridor_network
from simulators.sumo.scenario import SumoScenario, SumoScenarioConfig, build_scenario

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VehiclePositions:
    """Every vehicle on the road at ``t_ms`` (for camera simulation): x along the corridor in m."""

    t_ms: int
    vehicle_id: np.ndarray  # object
    x_m: np.ndarray
    lane_index: np.ndarray  # SUMO lane index (0 = shoulder)
    speed_kmh: np.ndarray


class SumoSource:
    """Steps a SUMO scenario and yields one ReadingBatch per interval."""

    _running: "SumoSource | None" = None  # libsumo holds one simulation per process

    def __init__(self, scenario: SumoScenario | SumoScenarioConfig, workdir: str | Path | None = None,
                 fault_fraction: float = 0.0, fault_kinds: tuple[str, ...] = FAULT_KINDS,
                 collect_positions: bool = False) -> None:
        if isinstance(scenario, SumoScenarioConfig):
            if workdir is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="roadpulse-sumo-")
                workdir = self._tmp.name
            scenario = build_scenario(scenario, workdir)
        self.scenario = scenario
        self.config = cfg = scenario.config
        self.network: Network = corridor_network(scenario)
        self.interval_ms = int(cfg.interval_s) * 1000
        self.n_intervals = int(cfg.duration_s) // int(cfg.interval_s)
        self.start_ms = int(cfg.start_ms)
        self.end_ms = self.start_ms + self.n_intervals * self.interval_ms
        self.now_ms = self.start_ms
        self.collect_positions = collect_positions
        self.last_positions: VehiclePositions | None = None
        self._index = 0
        self._stager = IncidentStager(scenario, cfg.incidents)
        # loops in network detector order
        by_id = {lp.loop_id: lp for lp in scenario.loops}
        self._loop_ids = [str(d) for d in self.network.detector_ids]
        missing = [d for d in self._loop_ids if d not in by_id]
        if missing:
            raise ValueError(f"network detectors without a loop: {missing[:3]}")
        self._loops = IntervalRebuilder(len(self._loop_ids))
        seeds = np.random.SeedSequence([cfg.seed, 11]).spawn(2)
        rng_fault, rng_apply = (np.random.default_rng(s) for s in seeds)
        self._faults = random_faults(self.network, rng_fault, fault_fraction, self.start_ms, self.end_ms,
                                     self.interval_ms, fault_kinds)
        self._injector = FaultInjector(self.network, self._faults, rng_apply)
        self._traci = None
        self._sumo_s = 0.0
        self._finished_truth: GroundTruth | None = None
        self.wall_stats = {"steps": 0}

    # ---- lifecycle ------------------------------------------------------------
    def _start(self) -> None:
        if SumoSource._running is not None and SumoSource._running is not self:
            raise RuntimeError("another SumoSource is running in this process (libsumo runs one simulation); "
                               "close() it first")
        with contextlib.redirect_stdout(io.StringIO()) as notice:
            import libsumo  # only here: heavy, and it prints a pyarrow version notice on import
        if notice.getvalue().strip():
            log.debug("libsumo: %s", notice.getvalue().strip())
        libsumo.start(self.scenario.sumo_args())
        SumoSource._running = self
        self._traci = libsumo
        self._advance_to(self.config.warmup_s)

    def close(self) -> None:
        """Stop SUMO (idempotent); ground truth stays readable."""
        if self._traci is not None:
            self._finished_truth = self._truth()
            self._traci.close()
            self._traci = None
            SumoSource._running = None

    def __enter__(self) -> "SumoSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- stepping -----------------------------------------------------------------
    def _advance_to(self, target_s: float) -> None:
        """Step until SUMO's clock reaches ``target_s``, polling loops and incidents every step."""
        t = self._traci
        getdata = t.inductionloop.getVehicleData
        add = self._loops.add_step
        ids = self._loop_ids
        while self._sumo_s < target_s - 1e-9:
            t.simulationStep()
            now = self._sumo_s = t.simulation.getTime()
            self.wall_stats["steps"] += 1
            for i, loop in enumerate(ids):
                data = getdata(loop)
                if data:
                    add(i, now, data)
            self._stager.step(t, self._sumo_s)

    def next_interval(self) -> ReadingBatch | None:
        """Simulate one interval and return every loop's reading for it (None when done)."""
        if self._index >= self.n_intervals:
            self.close()
            return None
        if self._traci is None:
            if self._finished_truth is not None:
                return None
            self._start()
        begin_s = self._sumo_s
        end_s = begin_s + self.config.interval_s
        self._advance_to(end_s)
        readings = self._loops.close(begin_s, end_s)
        count, occ, speed = readings.vehicle_count, readings.occupancy_pct, readings.speed_kmh
        t0 = self.now_ms
        if self.collect_positions:
            self.last_positions = self._positions(t0 + self.interval_ms)
        keep = self._injector.apply(t0, count, occ, speed)
        batch = network_batch(self.network, t0, self.interval_ms, count, occ, speed, keep)
        self._index += 1
        self.now_ms = t0 + self.interval_ms
        return batch

    def _positions(self, t_ms: int) -> VehiclePositions:
        veh = self._traci.vehicle
        vids = list(veh.getIDList())
        xs = np.array([veh.getPosition(v)[0] for v in vids]) if vids else np.empty(0)
        lanes = np.array([veh.getLaneIndex(v) for v in vids], dtype=np.int64)
        speeds = np.array([veh.getSpeed(v) * 3.6 for v in vids]) if vids else np.empty(0)
        return VehiclePositions(t_ms, np.asarray(vids, dtype=object), xs, lanes, speeds)

    def __iter__(self) -> Iterator[ReadingBatch]:
        try:
            while (batch := self.next_interval()) is not None:
                yield batch
        finally:
            self.close()

    # ---- truth ------------------------------------------------------------------------
    def _truth(self) -> GroundTruth:
        return GroundTruth(self._stager.truths(self._sumo_s), list(self._faults))

    @property
    def ground_truth(self) -> GroundTruth:
        """Incidents that happened so far (all of them once the run is over) and the injected faults."""
        if self._finished_truth is not None:
            return self._finished_truth
        return self._truth()
