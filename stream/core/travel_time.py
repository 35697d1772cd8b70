"""Travel times along roadways and routes, and the "usual" travel time per time of week.

A segment's travel time comes from its window (``segment_metrics`` sets
``travel_time_s``); a segment with no row is assumed to run at free flow (its
length at the roadway's speed limit).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from models.network import Network, lookup_numbers
from models.records import FlowWindowBatch
from stream.core.flow import network_index

WEEK_MS = 7 * 86_400_000
DEFAULT_SLOT_MS = 900_000  # 15-min time-of-week slots


def _segment_lookup(network: Network) -> dict[str, int]:
    return {s: i for i, s in enumerate(network_index(network).segment_id.tolist())}


def free_flow_travel_time_s(network: Network) -> np.ndarray:
    """Per segment (network order): length at the roadway's speed limit, in seconds."""
    idx = network_index(network)
    return idx.segment_length_km / idx.segment_speed_limit_kmh * 3600.0


def _current_travel_times(segments: FlowWindowBatch, network: Network) -> tuple[np.ndarray, np.ndarray]:
    """Dense per-segment travel times (free flow where missing) and which segments had a row.

    With several windows in the batch, each segment's latest window counts.
    """
    if segments.level != "segment":
        raise ValueError(f"travel times need segment windows, got level {segments.level!r}")
    tt = free_flow_travel_time_s(network)
    seen = np.zeros(len(tt), dtype=bool)
    if len(segments) == 0:
        return tt, seen
    lookup = _segment_lookup(network)
    seg = lookup_numbers(lookup, segments.entity_id)
    if (seg < 0).any():
        raise ValueError("segment batch holds segment ids the network does not know")
    value = segments.travel_time_s if len(segments.travel_time_s) == len(segments) else np.full(len(segments), np.nan)
    order = np.argsort(segments.window_start_ms, kind="stable")[::-1]  # latest first
    seg, value = seg[order], value[order]
    _, first = np.unique(seg, return_index=True)
    seg, value = seg[first], value[first]
    ok = np.isfinite(value)
    tt[seg[ok]] = value[ok]
    seen[seg] = True
    return tt, seen


def roadway_travel_time_s(segments: FlowWindowBatch, network: Network) -> dict[str, float]:
    """Per roadway key present in ``segments``: the sum of its segments' travel times.

    Segments of that roadway without a row (or with a NaN time) count at free flow.
    """
    idx = network_index(network)
    tt, seen = _current_travel_times(segments, network)
    total = np.bincount(idx.segment_roadway, weights=tt, minlength=len(network.roadways))
    present = np.unique(idx.segment_roadway[seen])
    return {network.roadways[r].key: float(total[r]) for r in present}


def route_travel_time_s(segment_ids: Sequence[str], segments: FlowWindowBatch, network: Network) -> float:
    """Sum of the travel times of ``segment_ids`` (free flow for those without a row)."""
    lookup = _segment_lookup(network)
    missing = [s for s in segment_ids if s not in lookup]
    if missing:
        raise ValueError(f"unknown segment ids {missing[:5]}")
    tt, _ = _current_travel_times(segments, network)
    return float(tt[[lookup[s] for s in segment_ids]].sum())


class UsualTravelTime:
    """EWMA of each segment's travel time per time-of-week slot: the "usual" in alerts' "now vs usual".

    Slots are ``slot_ms`` long and counted from the epoch modulo one week (UTC;
    a fixed offset does not change which samples share a slot). Each sample
    moves the slot's mean by ``alpha`` of the difference; the first sample
    sets it. Rows are allocated only for segments that have had samples, so a
    worker owning a few roadways keeps a small state.
    """

    def __init__(self, network: Network, slot_ms: int = DEFAULT_SLOT_MS, alpha: float = 0.05,
                 min_samples: int = 1, resume_state: dict[str, Any] | None = None) -> None:
        if WEEK_MS % slot_ms:
            raise ValueError("slot_ms must divide one week")
        self.network = network
        self.slot_ms = int(slot_ms)
        self.alpha = float(alpha)
        self.min_samples = int(min_samples)
        self._lookup = _segment_lookup(network)
        n_slots = WEEK_MS // self.slot_ms
        self._row = np.full(len(self._lookup), -1, dtype=np.int64)  # segment -> row of _mean/_n
        self._mean = np.zeros((0, n_slots), dtype=np.float32)
        self._n = np.zeros((0, n_slots), dtype=np.int32)
        if resume_state is not None:
            self._restore(resume_state)

    def slot(self, at_ms: np.ndarray | int) -> np.ndarray:
        """Time-of-week slot of a time."""
        return (np.asarray(at_ms, dtype=np.int64) % WEEK_MS) // self.slot_ms

    def update(self, segments: FlowWindowBatch) -> None:
        """Fold in the finite travel times of a batch of segment windows (oldest window first)."""
        if len(segments) == 0 or len(segments.travel_time_s) != len(segments):
            return
        ok = np.isfinite(segments.travel_time_s)
        seg = lookup_numbers(self._lookup, segments.entity_id)
        ok &= seg >= 0
        seg, value = seg[ok], segments.travel_time_s[ok]
        start = segments.window_start_ms[ok]
        self._allocate(seg)
        row, slot = self._row[seg], self.slot(start)
        # samples for the same (segment, slot) are applied one after another, in window order
        key = row * self._mean.shape[1] + slot
        order = np.lexsort((start, key))
        key, row, slot, value = key[order], row[order], slot[order], value[order]
        first = np.concatenate([[True], key[1:] != key[:-1]]) if len(key) else np.zeros(0, dtype=bool)
        rank = np.arange(len(key)) - np.maximum.accumulate(np.where(first, np.arange(len(key)), 0))
        for r in range(int(rank.max()) + 1 if len(rank) else 0):
            sel = rank == r
            rr, ss, x = row[sel], slot[sel], value[sel]
            old, n = self._mean[rr, ss].astype(np.float64), self._n[rr, ss]
            self._mean[rr, ss] = np.where(n == 0, x, old + self.alpha * (x - old))
            self._n[rr, ss] = n + 1

    def _allocate(self, seg: np.ndarray) -> None:
        new = np.unique(seg[self._row[seg] < 0])
        if len(new) == 0:
            return
        self._row[new] = len(self._mean) + np.arange(len(new))
        n_slots = self._mean.shape[1]
        self._mean = np.concatenate([self._mean, np.zeros((len(new), n_slots), dtype=np.float32)])
        self._n = np.concatenate([self._n, np.zeros((len(new), n_slots), dtype=np.int32)])

    def usual_s(self, segment_ids: str | Sequence[str], at_ms: int) -> float | np.ndarray:
        """Usual travel time at ``at_ms``'s time-of-week slot; NaN without enough history.

        One segment id gives a float, a sequence an array.
        """
        single = isinstance(segment_ids, str)
        ids = [segment_ids] if single else list(segment_ids)
        seg = np.array([self._lookup.get(s, -1) for s in ids], dtype=np.int64)
        out = np.full(len(ids), np.nan)
        row = np.where(seg >= 0, self._row[np.maximum(seg, 0)], -1)
        have = row >= 0
        slot = int(self.slot(at_ms))
        n = self._n[row[have], slot]
        out[np.flatnonzero(have)] = np.where(n >= self.min_samples, self._mean[row[have], slot], np.nan)
        return float(out[0]) if single else out

    def usual_route_s(self, segment_ids: Sequence[str], at_ms: int) -> float:
        """Usual travel time of a route (NaN when any segment lacks history)."""
        return float(np.sum(self.usual_s(list(segment_ids), at_ms)))

    def snapshot(self) -> dict[str, Any]:
        """Plain data; ``UsualTravelTime(..., resume_state=snapshot)`` continues exactly."""
        rows = np.flatnonzero(self._row >= 0)
        return {"slot_ms": self.slot_ms, "alpha": self.alpha,
                "segment_id": [network_index(self.network).segment_id[i] for i in rows],
                "mean": self._mean[self._row[rows]].copy(), "n": self._n[self._row[rows]].copy()}

    def _restore(self, state: dict[str, Any]) -> None:
        if int(state["slot_ms"]) != self.slot_ms:
            raise ValueError(f"snapshot has {state['slot_ms']} ms slots, not {self.slot_ms}")
        seg = np.array([self._lookup[s] for s in state["segment_id"]], dtype=np.int64)
        self._row[:] = -1
        self._row[seg] = np.arange(len(seg))
        self._mean = np.array(state["mean"], dtype=np.float32).reshape(len(seg), -1)
        self._n = np.array(state["n"], dtype=np.int32).reshape(len(seg), -1)
