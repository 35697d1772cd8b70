"""Cell transmission model (Daganzo) over every roadway of a network at once.

Each roadway (one direction of a corridor) is cut into cells of length
vf * dt, so a vehicle at free speed crosses one cell per step. The cells of all
roadways are concatenated into flat numpy arrays; masks mark each roadway's
first and last cell so a single vectorised step advances the whole network.

Per cell (totals over its lanes): demand D = min(vf k, C), supply
S = min(C, w (kj - k)). Between cells the mainline sends (1 - beta) D of the
upstream cell (beta = off-ramp split), an on-ramp adds its own demand, and both
share the downstream supply (merge, ramp priority ~ one lane's share). Off-ramps
take beta of whatever leaves a cell (FIFO diverge). The first cell of a
roadway is fed from a virtual queue; the last cell discharges freely. Lane
drops and incidents are just lower capacity in a cell.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from models.network import Network
from simulators.fundamental import CAPACITY_VEH_H_LANE, JAM_DENSITY_VEH_KM_LANE

RAMP_CAPACITY_VEH_H = 1800.0


@dataclass(frozen=True)
class CellLayout:
    """Static description of the concatenated cells (arrays of length n_cells unless noted)."""

    step_s: float
    roadway_idx: np.ndarray  # int64, index into network.roadways
    start_km: np.ndarray  # float64, km post of the cell's upstream edge
    length_km: np.ndarray  # float64, = vf * dt
    lanes: np.ndarray  # int64
    free_flow_kmh: np.ndarray
    wave_speed_kmh: np.ndarray
    jam_density_veh_km: np.ndarray  # total over lanes
    capacity_veh_h: np.ndarray  # total over lanes, no incident
    off_split: np.ndarray  # beta: share of the cell's outflow leaving by off-ramp
    merge_priority: np.ndarray  # on-ramp's guaranteed share of the supply when the merge is congested
    first_cell: np.ndarray  # int64 per roadway
    last_cell: np.ndarray  # int64 per roadway
    is_last: np.ndarray  # bool per cell
    ramp_cell: np.ndarray  # int64 per on-ramp cell (unique)
    ramp_share: np.ndarray  # float64 per on-ramp cell: share of the roadway's entry demand
    station_cell: np.ndarray  # int64 per station (network order)

    @property
    def n_cells(self) -> int:
        return len(self.lanes)

    @property
    def ramp_roadway(self) -> np.ndarray:
        return self.roadway_idx[self.ramp_cell]

    @cached_property
    def through_share(self) -> np.ndarray:
        """1 - beta: share of a cell's outflow that stays on the mainline."""
        return 1.0 - self.off_split

    @cached_property
    def inverse_through_share(self) -> np.ndarray:
        return 1.0 / self.through_share

    @cached_property
    def inverse_free_flow(self) -> np.ndarray:
        return 1.0 / self.free_flow_kmh


def build_layout(network: Network, step_s: float = 5.0,
                 capacity_veh_h_lane: float = CAPACITY_VEH_H_LANE,
                 jam_density_veh_km_lane: float = JAM_DENSITY_VEH_KM_LANE) -> CellLayout:
    """Cut every roadway into cells of length vf * step and concatenate them."""
    dt_h = step_s / 3600.0
    cols: dict[str, list[np.ndarray]] = {k: [] for k in (
        "roadway_idx", "start_km", "length_km", "lanes", "vf", "beta")}
    first, last, ramp_cell, ramp_share, station_cell = [], [], [], [], []
    offset = 0
    for r, rw in enumerate(network.roadways):
        vf = float(rw.speed_limit_kmh)
        cell_km = vf * dt_h
        kms = np.array([s.km for s in rw.stations])
        n = int(np.floor((kms[-1] - kms[0]) / cell_km + 1e-9)) + 1
        start = kms[0] + cell_km * np.arange(n)
        # lanes of the last station upstream of the cell's downstream edge (a station's cell gets its lanes)
        st = np.clip(np.searchsorted(kms, start + cell_km, side="left") - 1, 0, len(kms) - 1)
        lanes = np.array([s.lanes for s in rw.stations], dtype=np.int64)[st]
        beta = np.zeros(n)
        on = np.zeros(n)
        for ramp in rw.ramps:
            c = int(np.clip(np.floor((ramp.km - kms[0]) / cell_km + 1e-9), 0, n - 1))
            if ramp.kind == "on":
                on[c] += ramp.share
            else:
                beta[c] = 1.0 - (1.0 - beta[c]) * (1.0 - min(max(ramp.share, 0.0), 0.9))
        station_cell.append(offset + np.clip(np.floor((kms - kms[0]) / cell_km + 1e-9).astype(np.int64), 0, n - 1))
        idx = np.flatnonzero(on > 0)
        ramp_cell.append(offset + idx)
        ramp_share.append(on[idx])
        cols["roadway_idx"].append(np.full(n, r, dtype=np.int64))
        cols["start_km"].append(start)
        cols["length_km"].append(np.full(n, cell_km))
        cols["lanes"].append(lanes)
        cols["vf"].append(np.full(n, vf))
        cols["beta"].append(beta)
        first.append(offset)
        last.append(offset + n - 1)
        offset += n
    cat = {k: np.concatenate(v) for k, v in cols.items()}
    lanes = cat["lanes"]
    vf = cat["vf"]
    kc = capacity_veh_h_lane / vf
    is_last = np.zeros(offset, dtype=bool)
    is_last[last] = True
    return CellLayout(
        step_s=float(step_s),
        roadway_idx=cat["roadway_idx"],
        start_km=cat["start_km"],
        length_km=cat["length_km"],
        lanes=lanes,
        free_flow_kmh=vf,
        wave_speed_kmh=capacity_veh_h_lane / (jam_density_veh_km_lane - kc),
        jam_density_veh_km=jam_density_veh_km_lane * lanes,
        capacity_veh_h=capacity_veh_h_lane * lanes.astype(np.float64),
        off_split=cat["beta"],
        merge_priority=1.0 / (lanes + 1.0),
        first_cell=np.array(first, dtype=np.int64),
        last_cell=np.array(last, dtype=np.int64),
        is_last=is_last,
        ramp_cell=np.concatenate(ramp_cell).astype(np.int64),
        ramp_share=np.concatenate(ramp_share),
        station_cell=np.concatenate(station_cell),
    )


@dataclass(frozen=True, slots=True)
class StepFlows:
    """Flows (veh/h, totals over lanes) during one CTM step."""

    mainline_in_veh_h: np.ndarray  # per cell: from the upstream cell (or the entry queue for a first cell)
    ramp_in_veh_h: np.ndarray  # per on-ramp cell (layout.ramp_cell order)
    out_veh_h: np.ndarray  # per cell: everything leaving its downstream edge (mainline + off-ramp)
    off_ramp_veh_h: np.ndarray  # per cell: the part of out that leaves by off-ramp


def ctm_step(density_veh_km: np.ndarray, capacity_veh_h: np.ndarray, layout: CellLayout,
             entry_demand_veh_h: np.ndarray, ramp_demand_veh_h: np.ndarray) -> tuple[np.ndarray, StepFlows]:
    """Advance the cells one step; returns the new densities (veh/km, over lanes) and the step's flows.

    ``capacity_veh_h`` is the cells' capacity now (incidents lower it);
    ``entry_demand_veh_h`` (per roadway) and ``ramp_demand_veh_h`` (per on-ramp
    cell) are what the virtual queues could send this step.
    """
    k = density_veh_km
    send = np.minimum(layout.free_flow_kmh * k, capacity_veh_h)
    supply = np.minimum(capacity_veh_h, np.maximum(layout.wave_speed_kmh * (layout.jam_density_veh_km - k), 0.0))
    main_demand = np.empty_like(send)
    np.multiply(send[:-1], layout.through_share[:-1], out=main_demand[1:])
    main_demand[layout.first_cell] = entry_demand_veh_h
    main_flow = np.minimum(main_demand, supply)
    # merges: mainline and on-ramp share the supply; the ramp is sure of its priority share
    rc = layout.ramp_cell
    s_rc, d_rc = supply[rc], main_demand[rc]
    congested = d_rc + ramp_demand_veh_h > s_rc
    ramp_flow = np.where(congested, np.minimum(ramp_demand_veh_h, np.maximum(layout.merge_priority[rc] * s_rc,
                                                                             s_rc - d_rc)), ramp_demand_veh_h)
    main_flow[rc] = np.where(congested, np.minimum(s_rc - ramp_flow, d_rc), d_rc)
    # FIFO diverge: what crossed into the next cell was (1 - beta) of this cell's outflow
    out = np.empty_like(send)
    np.multiply(main_flow[1:], layout.inverse_through_share[:-1], out=out[:-1])
    out[layout.last_cell] = send[layout.last_cell]
    inflow = main_flow.copy()
    inflow[rc] += ramp_flow
    # L = vf dt, so dt / L = 1 / vf
    new_k = k + (inflow - out) * layout.inverse_free_flow
    return new_k, StepFlows(main_flow, ramp_flow, out, out * layout.off_split)
