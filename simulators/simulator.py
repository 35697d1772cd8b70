"""The traffic simulator: CTM traffic + time-of-day demand + incidents + detectors + faults.

``TrafficSimulator(network, config)`` yields one ``ReadingBatch`` per detector
interval (default 30 s) for every detector of the network, on a simulated clock
(integer ms UTC). Everything random comes from ``config.seed``: the same seed
gives identical batches. Ground truth (incidents, faults) is kept for scoring.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from models.network import Network
from models.records import ReadingBatch
from simulators.ctm import RAMP_CAPACITY_VEH_H, build_layout, ctm_step
from simulators.demand import Demand, TimeOfDayDemand
from simulators.detectors import build_detector_layout, network_batch, synthesize_readings
from simulators.faults import FAULT_KINDS, FaultInjector, FaultTruth, random_faults
from simulators.incidents import IncidentSchedule, IncidentSpec, IncidentTruth, random_incidents, resolve_incidents

DEFAULT_START_MS = 1_772_380_800_000  # 2026-03-02 00:00 Singapore time (UTC+8), a Monday
DEMAND_NOISE = 0.04  # std of the slowly varying per-roadway demand multiplier
DEMAND_NOISE_MEMORY = 0.97  # AR(1) coefficient per interval


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate; every field has a sensible default for a day of the Singapore network."""

    seed: int = 7
    start_ms: int = DEFAULT_START_MS
    duration_s: int = 86_400
    interval_s: int = 30
    step_s: float = 5.0
    demand_scale: float = 1.0
    n_random_incidents: int = 4
    incidents: tuple[IncidentSpec, ...] = ()
    fault_fraction: float = 0.01
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    noise: bool = True
    warmup_s: int = 3600  # simulated before start_ms so the roads are not empty at the first reading


@dataclass(frozen=True)
class GroundTruth:
    incidents: list[IncidentTruth] = field(default_factory=list)
    faults: list[FaultTruth] = field(default_factory=list)


class TrafficSimulator:
    """Steps the CTM and emits detector readings interval by interval."""

    def __init__(self, network: Network, config: SimulationConfig | None = None,
                 demand: Demand | None = None) -> None:
        self.network = network
        self.config = cfg = config or SimulationConfig()
        self.interval_ms = int(cfg.interval_s) * 1000
        self.step_ms = int(round(cfg.step_s * 1000))
        if self.step_ms <= 0 or self.interval_ms % self.step_ms:
            raise ValueError(f"step_s ({cfg.step_s}) must divide interval_s ({cfg.interval_s})")
        self.steps_per_interval = self.interval_ms // self.step_ms
        self._dt_h = self.step_ms / 3_600_000
        self.n_intervals = int(cfg.duration_s) // int(cfg.interval_s)
        self.start_ms = int(cfg.start_ms)
        self.end_ms = self.start_ms + self.n_intervals * self.interval_ms
        self.now_ms = self.start_ms
        self._index = 0

        seeds = np.random.SeedSequence(cfg.seed).spawn(6)
        rng_demand, rng_incident, rng_fault, rng_read, rng_fault_apply, rng_noise = (
            np.random.default_rng(s) for s in seeds)
        self._rng_read = rng_read if cfg.noise else None
        self._rng_noise = rng_noise

        self.layout = build_layout(network, cfg.step_s)
        self.detectors = build_detector_layout(network, self.layout)
        self.demand = demand or TimeOfDayDemand.for_network(network, self.layout, rng_demand, cfg.demand_scale)
        specs = list(cfg.incidents) + random_incidents(network, rng_incident, cfg.n_random_incidents,
                                                       self.start_ms, self.end_ms)
        self.incidents = IncidentSchedule(network, self.layout, resolve_incidents(network, specs))
        faults = random_faults(network, rng_fault, cfg.fault_fraction, self.start_ms, self.end_ms,
                               self.interval_ms, cfg.fault_kinds)
        self._faults = faults
        self._injector = FaultInjector(network, faults, rng_fault_apply)

        n_cells = self.layout.n_cells
        self._k = np.zeros(n_cells)  # veh/km over the cell's lanes
        self._last_out = np.zeros(n_cells)
        self._capacity = self.layout.capacity_veh_h
        self._entry_queue = np.zeros(len(network.roadways))
        self._ramp_queue = np.zeros(len(self.layout.ramp_cell))
        self._demand_noise = np.zeros(len(network.roadways))
        self._acc_k = np.zeros(n_cells)
        self._acc_q = np.zeros(n_cells)
        self.vehicles_entered = 0.0
        self.vehicles_exited = 0.0
        self._warm_up(int(cfg.warmup_s) * 1000)

    # ---- state for tests and plots ----------------------------------------
    @property
    def ground_truth(self) -> GroundTruth:
        return GroundTruth(self.incidents.truths, list(self._faults))

    @property
    def cell_density_veh_km(self) -> np.ndarray:
        """Density per lane of every cell now."""
        return self._k / self.layout.lanes

    @property
    def cell_flow_veh_h(self) -> np.ndarray:
        """Flow per lane out of every cell during the last step."""
        return self._last_out / self.layout.lanes

    @property
    def cell_capacity_veh_h(self) -> np.ndarray:
        """Capacity per lane of every cell during the last step (incidents lower it)."""
        return self._capacity / self.layout.lanes

    @property
    def virtual_queue_veh(self) -> float:
        """Vehicles waiting to enter at roadway upstream ends and on-ramps."""
        return float(self._entry_queue.sum() + self._ramp_queue.sum())

    @property
    def vehicles_on_road(self) -> float:
        return float((self._k * self.layout.length_km).sum())

    @property
    def vehicles_in_network(self) -> float:
        """Vehicles on the road plus those waiting in virtual queues."""
        return self.vehicles_on_road + self.virtual_queue_veh

    # ---- stepping ----------------------------------------------------------
    def _rates(self, t_ms: int) -> tuple[np.ndarray, np.ndarray]:
        if self.config.noise:
            a = DEMAND_NOISE_MEMORY
            self._demand_noise = a * self._demand_noise + DEMAND_NOISE * np.sqrt(1 - a * a) * \
                self._rng_noise.standard_normal(len(self._demand_noise))
        entry, ramp = self.demand.rates_veh_h(t_ms, self.layout)
        factor = 1.0 + self._demand_noise
        return np.maximum(entry * factor, 0.0), np.maximum(ramp * factor[self.layout.ramp_roadway], 0.0)

    def _interval(self, t0: int, entry: np.ndarray, ramp: np.ndarray) -> None:
        """The CTM steps of one detector interval (arrival rates are constant over it)."""
        self.vehicles_entered += (entry.sum() + ramp.sum()) * self._dt_h * self.steps_per_interval
        entry_step, ramp_step = entry * self._dt_h, ramp * self._dt_h
        for s in range(self.steps_per_interval):
            self._step(t0 + s * self.step_ms, entry_step, ramp_step)

    def _step(self, t_ms: int, entry_veh: np.ndarray, ramp_veh: np.ndarray) -> None:
        dt_h = self._dt_h
        layout = self.layout
        self._entry_queue += entry_veh
        self._ramp_queue += ramp_veh
        self._capacity = self.incidents.capacity_veh_h(t_ms)
        entry_demand = np.maximum(self._entry_queue, 0.0) / dt_h
        ramp_demand = np.minimum(np.maximum(self._ramp_queue, 0.0) / dt_h, RAMP_CAPACITY_VEH_H)
        self._k, flows = ctm_step(self._k, self._capacity, layout, entry_demand, ramp_demand)
        self._entry_queue -= flows.mainline_in_veh_h[layout.first_cell] * dt_h
        self._ramp_queue -= flows.ramp_in_veh_h * dt_h
        last = layout.last_cell
        self.vehicles_exited += (flows.off_ramp_veh_h.sum()
                                 + (flows.out_veh_h[last] - flows.off_ramp_veh_h[last]).sum()) * dt_h
        self._last_out = flows.out_veh_h
        self._acc_k += self._k
        self._acc_q += flows.mainline_in_veh_h
        self._acc_q += flows.out_veh_h

    def _warm_up(self, warmup_ms: int) -> None:
        t = self.start_ms - (warmup_ms // self.interval_ms) * self.interval_ms
        while t < self.start_ms:
            self._interval(t, *self._rates(t))
            t += self.interval_ms
        self._acc_k[:] = 0.0
        self._acc_q[:] = 0.0

    def next_interval(self) -> ReadingBatch | None:
        """Simulate one detector interval and return every detector's reading for it (None when done)."""
        if self._index >= self.n_intervals:
            return None
        t0 = self.now_ms
        self._acc_k[:] = 0.0
        self._acc_q[:] = 0.0
        self._interval(t0, *self._rates(t0))
        cells = self.detectors.cell
        n_steps = self.steps_per_interval
        count, occ, speed = synthesize_readings(
            self._acc_q[cells] / (2 * n_steps), self._acc_k[cells] / n_steps, self.detectors,
            self.config.interval_s, self._rng_read, self.incidents.lane_flow_factor(t0))
        keep = self._injector.apply(t0, count, occ, speed)
        batch = network_batch(self.network, t0, self.interval_ms, count, occ, speed, keep)
        self._index += 1
        self.now_ms = t0 + self.interval_ms
        return batch

    def __iter__(self) -> Iterator[ReadingBatch]:
        while (batch := self.next_interval()) is not None:
            yield batch
