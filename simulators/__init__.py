"""Traffic sources: the CTM macroscopic simulator (and, in subpackages, SUMO and cameras)."""
from simulators.demand import ConstantDemand, TimeOfDayDemand
from simulators.faults import FAULT_KINDS, FaultTruth
from simulators.fundamental import TriangularFD
from simulators.incidents import IncidentSpec, IncidentTruth
from simulators.simulator import DEFAULT_START_MS, GroundTruth, SimulationConfig, TrafficSimulator
from simulators.split import split_by_station

__all__ = [
    "ConstantDemand", "DEFAULT_START_MS", "FAULT_KINDS", "FaultTruth", "GroundTruth", "IncidentSpec",
    "IncidentTruth", "SimulationConfig", "TimeOfDayDemand", "TrafficSimulator", "TriangularFD",
    "split_by_station",
]
