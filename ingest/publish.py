"""Readings -> one encoded message per station, the way roadside stations publish them.

The hot path of every source: sort a batch by station once, then encode each
station's slice of the columns directly (no per-station batch objects). Rows of
detectors the network does not know are published under key ``None`` so the
validator at the door dead-letters them instead of anyone dropping them here.
"""
from __future__ import annotations

import numpy as np

from models.network import Network
from models.records import ReadingBatch
from models.wire import encode_columns


def encode_station_messages(batch: ReadingBatch, network: Network, fmt: str = "json"
                            ) -> list[tuple[str | None, bytes, int]]:
    """(station id or None, message bytes, first interval start ms) per station present in ``batch``."""
    if len(batch) == 0:
        return []
    numbers = network.detector_numbers(batch.detector_id)
    station = np.where(numbers >= 0, network.detector_station_idx[np.maximum(numbers, 0)], -1)
    if len(station) > 1 and (np.diff(station) < 0).any():
        order = np.argsort(station, kind="stable")
        station = station[order]
        cols = [getattr(batch, c)[order] for c in ReadingBatch.COLUMNS]
    else:  # already grouped by station (simulator batches are in network order)
        cols = [getattr(batch, c) for c in ReadingBatch.COLUMNS]
    cuts = np.concatenate(([0], np.flatnonzero(np.diff(station)) + 1, [len(station)]))
    ids, t, i, n, o, s = cols
    stations = network.stations
    out = []
    for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
        st = int(station[a])
        payload = encode_columns(ids[a:b].tolist(), t[a:b], i[a:b], n[a:b], o[a:b], s[a:b], fmt)
        out.append((stations[st].station_id if st >= 0 else None, payload, int(t[a])))
    return out
