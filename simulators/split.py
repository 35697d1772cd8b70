"""Split a network-wide reading batch into one batch per station (the `readings` topic's key)."""
from __future__ import annotations

import numpy as np

from models.network import Network
from models.records import ReadingBatch


class StationSplitter:
    """Maps detector ids to stations, sorts rows by station once, and splits at the boundaries."""

    def __init__(self, network: Network) -> None:
        self._network = network
        self._station_ids = [s.station_id for s in network.stations]

    def station_index(self, detector_id: np.ndarray) -> np.ndarray:
        """Station index (network order) of each detector id; ValueError on an unknown id."""
        if detector_id is self._network.detector_ids:
            return self._network.detector_station_idx
        numbers = self._network.detector_numbers(detector_id)
        if (numbers < 0).any():
            raise ValueError(f"unknown detector ids, e.g. {np.asarray(detector_id)[numbers < 0][:3].tolist()}")
        return self._network.detector_station_idx[numbers]

    def split(self, batch: ReadingBatch) -> list[tuple[str, ReadingBatch]]:
        """(station_id, that station's rows) for every station present, in network order."""
        if len(batch) == 0:
            return []
        station = self.station_index(batch.detector_id)
        order = np.argsort(station, kind="stable")
        st_sorted = station[order]
        if (order == np.arange(len(order))).all():
            cols = [getattr(batch, c) for c in ReadingBatch.COLUMNS]
        else:
            cols = [getattr(batch, c)[order] for c in ReadingBatch.COLUMNS]
        bounds = np.flatnonzero(np.diff(st_sorted)) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [len(st_sorted)]])
        names = self._station_ids
        return [(names[st_sorted[a]], ReadingBatch(*(c[a:b] for c in cols)))
                for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]


_SPLITTERS: dict[int, StationSplitter] = {}


def split_by_station(batch: ReadingBatch, network: Network) -> list[tuple[str, ReadingBatch]]:
    """One (station_id, batch) per station in ``batch``, stations in network order, rows in batch order."""
    splitter = _SPLITTERS.get(id(network))
    if splitter is None or splitter._network is not network:
        if len(_SPLITTERS) > 8:
            _SPLITTERS.clear()
        splitter = StationSplitter(network)
        _SPLITTERS[id(network)] = splitter
    return splitter.split(batch)
