"""Triangular fundamental diagram (per lane): the flow-density law the CTM obeys.

Free-flow branch q = vf * k up to capacity C at the critical density kc = C / vf;
congested branch q = w * (kj - k) down to zero at the jam density kj. The
backward wave speed w follows from C, vf and kj so the two branches meet at C.
Used by the CTM and, independently, by tests as the analytic reference.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CAPACITY_VEH_H_LANE = 2000.0
JAM_DENSITY_VEH_KM_LANE = 140.0
EFFECTIVE_LENGTH_M = 6.7


@dataclass(frozen=True, slots=True)
class TriangularFD:
    """A per-lane triangular fundamental diagram."""

    free_flow_kmh: float = 90.0
    capacity_veh_h_lane: float = CAPACITY_VEH_H_LANE
    jam_density_veh_km_lane: float = JAM_DENSITY_VEH_KM_LANE

    @property
    def critical_density_veh_km_lane(self) -> float:
        return self.capacity_veh_h_lane / self.free_flow_kmh

    @property
    def wave_speed_kmh(self) -> float:
        """Backward (congestion) wave speed w, positive number, km/h."""
        return self.capacity_veh_h_lane / (self.jam_density_veh_km_lane - self.critical_density_veh_km_lane)

    def flow_veh_h_lane(self, density_veh_km_lane: np.ndarray | float) -> np.ndarray:
        """Equilibrium flow q(k) = min(vf k, C, w (kj - k))."""
        k = np.asarray(density_veh_km_lane, dtype=np.float64)
        return np.minimum(np.minimum(self.free_flow_kmh * k, self.capacity_veh_h_lane),
                          self.wave_speed_kmh * (self.jam_density_veh_km_lane - k))

    def speed_kmh(self, density_veh_km_lane: np.ndarray | float) -> np.ndarray:
        """Equilibrium space-mean speed q(k)/k (vf at zero density)."""
        k = np.asarray(density_veh_km_lane, dtype=np.float64)
        q = self.flow_veh_h_lane(k)
        return np.where(k > 1e-9, q / np.maximum(k, 1e-9), self.free_flow_kmh)

    def uncongested_density(self, flow_veh_h_lane: np.ndarray | float) -> np.ndarray:
        """Density on the free-flow branch carrying this flow."""
        return np.asarray(flow_veh_h_lane, dtype=np.float64) / self.free_flow_kmh

    def congested_density(self, flow_veh_h_lane: np.ndarray | float) -> np.ndarray:
        """Density on the congested branch carrying this flow (a queue discharging at this rate)."""
        return self.jam_density_veh_km_lane - np.asarray(flow_veh_h_lane, dtype=np.float64) / self.wave_speed_kmh
