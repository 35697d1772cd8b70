"""Incident detection: per-roadway detectors (California #7/#8, roadpulse's statistical one)
and the lifecycle tracker that turns per-segment alarms into Incident events.

``build_detector(name, roadway, resume_state=None, **params)`` is the factory the
pipeline uses; every detector has ``update(window_start_ms, occupancy_pct,
speed_kmh, flow_veh_h) -> Alarms``, ``update_batch(stations, roadway)`` and
``snapshot()``.
"""
from __future__ import annotations

from typing import Any

from models.network import Roadway
from stream.core.incidents.base import (
    Alarms,
    IncidentDetector,
    StationArrays,
    roadway_station_arrays,
    run_batch,
    segment_values,
)
from stream.core.incidents.california import CaliforniaConfig, CaliforniaDetector
from stream.core.incidents.statistical import StatisticalConfig, StatisticalDetector

ALGORITHMS = ("california7", "california8", "statistical")


def build_detector(name: str, roadway: Roadway, resume_state: dict[str, Any] | None = None,
                   **params: Any) -> IncidentDetector:
    """A detector for the stations of ``roadway``; ``params`` override its config defaults."""
    n = len(roadway.stations)
    if name in ("california7", "california8"):
        config = CaliforniaConfig(variant=int(name[-1]), **params)
        return CaliforniaDetector(n, config, resume_state=resume_state)
    if name == "statistical":
        return StatisticalDetector(n, StatisticalConfig(**params), resume_state=resume_state)
    raise ValueError(f"unknown incident algorithm {name!r}; known: {', '.join(ALGORITHMS)}")


__all__ = [
    "ALGORITHMS", "Alarms", "CaliforniaConfig", "CaliforniaDetector", "IncidentDetector", "StationArrays",
    "StatisticalConfig", "StatisticalDetector", "build_detector", "roadway_station_arrays", "run_batch",
    "segment_values",
]
