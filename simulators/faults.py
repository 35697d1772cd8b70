"""Detector faults with ground truth, applied to a healthy interval of readings.

Kinds (after the PeMS diagnostics): ``stuck`` repeats the values of its first
faulty interval; ``zeros`` reports count 0 and occupancy 0 while traffic flows
("card off"); ``dropout`` emits no row at all; ``chatter`` flickers to
occupancies above 70 %; ``high_occupancy`` reads 75-95 % regardless of traffic.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.network import Network

FAULT_KINDS = ("stuck", "zeros", "dropout", "chatter", "high_occupancy")
MS_PER_HOUR = 3_600_000
CHATTER_PROBABILITY = 0.7  # share of a chattering detector's intervals that read too high


@dataclass(frozen=True, slots=True)
class FaultTruth:
    """A detector misbehaving in [start_ms, end_ms)."""

    detector_id: str
    kind: str
    start_ms: int
    end_ms: int


def random_faults(network: Network, rng: np.random.Generator, fraction: float, start_ms: int, end_ms: int,
                  interval_ms: int, kinds: tuple[str, ...] = FAULT_KINDS) -> list[FaultTruth]:
    """Pick ``fraction`` of the detectors and give each a fault of a random kind.

    About a third are faulty for the whole run; the rest for 1-8 hours starting
    at a random interval. Times are aligned to the interval grid of the run.
    """
    bad = [k for k in kinds if k not in FAULT_KINDS]
    if bad:
        raise ValueError(f"unknown fault kinds {bad}; known: {FAULT_KINDS}")
    n = int(round(fraction * network.n_detectors))
    if n <= 0 or not kinds or end_ms <= start_ms:
        return []
    chosen = np.sort(rng.choice(network.n_detectors, size=min(n, network.n_detectors), replace=False))
    n_slots = max((end_ms - start_ms) // interval_ms, 1)
    out = []
    for d in chosen:
        kind = kinds[int(rng.integers(len(kinds)))]
        if rng.random() < 0.33:
            t0, t1 = start_ms, end_ms
        else:
            t0 = start_ms + int(rng.integers(n_slots)) * interval_ms
            hours = int(rng.integers(1, 9))
            t1 = min(t0 + hours * MS_PER_HOUR, end_ms)
        out.append(FaultTruth(str(network.detector_ids[d]), kind, int(t0), int(t1)))
    return out


class FaultInjector:
    """Applies the faults active in an interval to that interval's readings, in place."""

    def __init__(self, network: Network, truths: list[FaultTruth], rng: np.random.Generator) -> None:
        self._rng = rng
        self._det = network.detector_numbers([f.detector_id for f in truths])
        if (self._det < 0).any():
            raise ValueError("a fault names a detector the network does not have")
        self._kind = np.array([FAULT_KINDS.index(f.kind) for f in truths], dtype=np.int64)
        self._start = np.array([f.start_ms for f in truths], dtype=np.int64)
        self._end = np.array([f.end_ms for f in truths], dtype=np.int64)
        n = len(truths)
        self._captured = np.zeros(n, dtype=bool)
        self._stuck = (np.zeros(n, dtype=np.int64), np.zeros(n), np.full(n, np.nan))
        self._high_level = rng.uniform(75.0, 95.0, size=n)

    def apply(self, t_ms: int, count: np.ndarray, occ: np.ndarray, speed: np.ndarray) -> np.ndarray | None:
        """Corrupt the rows of faulty detectors; returns the keep mask when rows drop out, else None."""
        if len(self._det) == 0:
            return None
        active = (self._start <= t_ms) & (t_ms < self._end)
        if not active.any():
            return None
        kind = np.where(active, self._kind, -1)

        sel = kind == FAULT_KINDS.index("stuck")
        if sel.any():
            new = sel & ~self._captured
            d = self._det[new]
            self._stuck[0][new], self._stuck[1][new], self._stuck[2][new] = count[d], occ[d], speed[d]
            self._captured |= new
            d = self._det[sel]
            count[d], occ[d], speed[d] = self._stuck[0][sel], self._stuck[1][sel], self._stuck[2][sel]

        d = self._det[kind == FAULT_KINDS.index("zeros")]
        count[d], occ[d], speed[d] = 0, 0.0, np.nan

        d = self._det[kind == FAULT_KINDS.index("chatter")]
        if len(d):
            flicker = self._rng.random(len(d)) < CHATTER_PROBABILITY
            occ[d] = np.where(flicker, self._rng.uniform(70.0, 100.0, len(d)), occ[d])

        sel = kind == FAULT_KINDS.index("high_occupancy")
        if sel.any():
            occ[self._det[sel]] = np.clip(self._high_level[sel] + self._rng.normal(0.0, 1.5, int(sel.sum())),
                                          70.5, 100.0)

        d = self._det[kind == FAULT_KINDS.index("dropout")]
        if len(d) == 0:
            return None
        keep = np.ones(len(count), dtype=bool)
        keep[d] = False
        return keep
