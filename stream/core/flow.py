"""Flow metrics of closed windows at lane, station and segment level.

Definitions follow docs/ARCHITECTURE.md ("Traffic definitions"). The LTA speed
band of every row is the band of its space-mean speed (the speed of q = k v).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from models.network import Network, lookup_numbers
from models.records import FlowWindowBatch
from stream.core.bands import speed_band
from stream.core.windows import ClosedWindow

EFFECTIVE_VEHICLE_LENGTH_M = 6.7  # vehicle + detection zone, for density from occupancy
MS_PER_HOUR = 3_600_000
MIN_TRAVEL_SPEED_KMH = 1.0  # speeds below this count as this for travel times (no infinite times)


@dataclass(frozen=True)
class NetworkIndex:
    """Per-detector, per-station and per-segment arrays of a network, built once per network."""

    detector_id: np.ndarray  # object
    detector_corridor: np.ndarray  # object
    detector_direction: np.ndarray  # object
    detector_station: np.ndarray  # int64 station index
    detector_lane: np.ndarray  # int64, 1-based
    station_id: np.ndarray  # object
    station_corridor: np.ndarray
    station_direction: np.ndarray
    station_lanes: np.ndarray  # int64
    station_first_detector: np.ndarray  # int64, number of lane 1
    station_upstream: np.ndarray  # int64 station index upstream on the same roadway, -1 at the start
    station_downstream: np.ndarray  # int64, -1 at the end
    segment_id: np.ndarray  # object
    segment_corridor: np.ndarray
    segment_direction: np.ndarray
    segment_up: np.ndarray  # int64 station index
    segment_down: np.ndarray  # int64 station index
    segment_length_km: np.ndarray  # float64
    segment_speed_limit_kmh: np.ndarray  # float64
    segment_roadway: np.ndarray  # int64 roadway index

    @property
    def n_stations(self) -> int:
        return len(self.station_id)


_INDEX_CACHE: dict[int, tuple[weakref.ref, NetworkIndex]] = {}


def network_index(network: Network) -> NetworkIndex:
    """The cached :class:`NetworkIndex` of ``network``."""
    hit = _INDEX_CACHE.get(id(network))
    if hit is not None and hit[0]() is network:
        return hit[1]
    index = _build_index(network)
    for value in vars(index).values():
        value.flags.writeable = False  # shared with the batches built from it
    _INDEX_CACHE[id(network)] = (weakref.ref(network), index)
    return index


def _build_index(network: Network) -> NetworkIndex:
    stations = network.stations
    st_index = network.station_index
    st_station = network.detector_station_idx
    first = np.zeros(len(stations), dtype=np.int64)
    lanes = np.array([s.lanes for s in stations], dtype=np.int64)
    first[1:] = np.cumsum(lanes)[:-1]
    up = np.full(len(stations), -1, dtype=np.int64)
    down = np.full(len(stations), -1, dtype=np.int64)
    seg_rows = []
    for r_idx, roadway in enumerate(network.roadways):
        idx = [st_index[s.station_id] for s in roadway.stations]
        up[idx[1:]] = idx[:-1]
        down[idx[:-1]] = idx[1:]
        for seg in roadway.segments:
            seg_rows.append((seg.segment_id, seg.corridor, seg.direction, st_index[seg.upstream_station],
                             st_index[seg.downstream_station], seg.length_km, roadway.speed_limit_kmh, r_idx))

    def col(rows: list[tuple], i: int, dtype: type) -> np.ndarray:
        return np.array([r[i] for r in rows], dtype=dtype)

    return NetworkIndex(
        detector_id=network.detector_ids.copy(),
        detector_corridor=np.array([s.corridor for s in stations], dtype=object)[st_station],
        detector_direction=np.array([s.direction for s in stations], dtype=object)[st_station],
        detector_station=st_station.copy(),
        detector_lane=network.detector_lane.copy(),
        station_id=np.array([s.station_id for s in stations], dtype=object),
        station_corridor=np.array([s.corridor for s in stations], dtype=object),
        station_direction=np.array([s.direction for s in stations], dtype=object),
        station_lanes=lanes,
        station_first_detector=first,
        station_upstream=up,
        station_downstream=down,
        segment_id=col(seg_rows, 0, object),
        segment_corridor=col(seg_rows, 1, object),
        segment_direction=col(seg_rows, 2, object),
        segment_up=col(seg_rows, 3, np.int64),
        segment_down=col(seg_rows, 4, np.int64),
        segment_length_km=col(seg_rows, 5, np.float64),
        segment_speed_limit_kmh=col(seg_rows, 6, np.float64),
        segment_roadway=col(seg_rows, 7, np.int64),
    )


# ---- elementary formulas --------------------------------------------------
def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0."""
    out = np.full(np.broadcast(num, den).shape, np.nan)
    return np.divide(num, den, out=out, where=den != 0)


def density_veh_km(flow_veh_h: np.ndarray, space_mean_speed_kmh: np.ndarray, occupancy_pct: np.ndarray) -> np.ndarray:
    """k = q / v_s; where v_s is NaN or 0, k = occupancy fraction * 1000 / g (g = 6.7 m)."""
    ok = np.isfinite(space_mean_speed_kmh) & (space_mean_speed_kmh > 0)
    from_speed = flow_veh_h / np.where(ok, space_mean_speed_kmh, 1.0)
    from_occ = occupancy_pct / 100.0 * 1000.0 / EFFECTIVE_VEHICLE_LENGTH_M
    return np.where(ok, from_speed, from_occ)


def _take(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """values[index]; the (read-only) array itself when index selects all of it in order."""
    if len(index) == len(values) and (len(index) == 0 or (index[0] == 0 and index[-1] == len(values) - 1)):
        return values  # index is sorted and unique (detector numbers of a closed window): it is arange
    return values[index]


# ---- lane -----------------------------------------------------------------
def lane_metrics(closed: ClosedWindow, network: Network) -> FlowWindowBatch:
    """Lane-level metrics of one closed window; ``entity_id`` is the detector id."""
    idx = network_index(network)
    det = closed.detector
    n = len(det)
    flow = closed.vehicle_count * (MS_PER_HOUR / closed.length_ms)
    occ = _divide(closed.occupancy_time_ms * 100.0, closed.covered_ms.astype(np.float64))
    tms = _divide(closed.speed_weighted_sum, closed.speed_count.astype(np.float64))
    sms = _divide(closed.speed_count.astype(np.float64), closed.inverse_speed_sum)
    return FlowWindowBatch(
        level="lane", window_ms=closed.length_ms, entity_id=_take(idx.detector_id, det),
        corridor=_take(idx.detector_corridor, det), direction=_take(idx.detector_direction, det),
        window_start_ms=np.full(n, closed.window_start_ms, dtype=np.int64),
        vehicle_count=closed.vehicle_count.astype(np.int64), flow_veh_h=flow, occupancy_pct=occ,
        time_mean_speed_kmh=tms, space_mean_speed_kmh=sms, density_veh_km=density_veh_km(flow, sms, occ),
        speed_band=speed_band(sms), n_readings=closed.n_readings.astype(np.int64),
        imputed=np.zeros(n, dtype=bool))


# ---- station --------------------------------------------------------------
def _group_sums(key: np.ndarray, n_keys: int, columns: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Keys in ``[0, n_keys)`` that occur (sorted) and per-key sums of each column (NaN-free columns)."""
    if n_keys > 8 * len(key) + 4096:  # sparse keys (windows far apart): renumber them first
        present, inverse = np.unique(key, return_inverse=True)
        return present, [np.bincount(inverse, weights=c, minlength=len(present)) for c in columns]
    present = np.flatnonzero(np.bincount(key, minlength=n_keys))
    return present, [np.bincount(key, weights=c, minlength=n_keys)[present] for c in columns]


def station_metrics(closed: ClosedWindow | FlowWindowBatch, network: Network) -> FlowWindowBatch:
    """Station-level metrics from one closed window's lane sums, or from a lane batch (e.g. after imputation).

    Flow and density are sums over lanes, occupancy the mean over lanes that
    reported, time-mean speed count-weighted and space-mean speed harmonic over
    all lanes' vehicles. From a lane batch the speed weights are reconstructed
    from each lane's vehicle count and its two mean speeds. ``imputed`` is set
    when any lane of the station was imputed.
    """
    idx = network_index(network)
    if isinstance(closed, ClosedWindow):
        det = closed.detector
        window_ms = closed.length_ms
        starts_ms = np.full(len(det), closed.window_start_ms, dtype=np.int64)
        count = closed.vehicle_count
        speed_count = closed.speed_count.astype(np.float64)
        speed_weighted = closed.speed_weighted_sum
        inverse_speed = closed.inverse_speed_sum
        occ = _divide(closed.occupancy_time_ms * 100.0, closed.covered_ms.astype(np.float64))
        flow = count * (MS_PER_HOUR / window_ms)
        dens = density_veh_km(flow, _divide(speed_count, inverse_speed), occ)
        n_readings = closed.n_readings
        imputed = np.zeros(len(det), dtype=bool)
    else:
        if closed.level != "lane":
            raise ValueError(f"station_metrics needs lane windows, got level {closed.level!r}")
        lanes = closed
        det = network.detector_numbers(lanes.entity_id)
        if (det < 0).any():
            raise ValueError("lane batch holds detector ids the network does not know")
        window_ms = lanes.window_ms
        starts_ms = lanes.window_start_ms
        count = lanes.vehicle_count
        n_f = count.astype(np.float64)
        has_tms = np.isfinite(lanes.time_mean_speed_kmh) & (n_f > 0)
        has_sms = np.isfinite(lanes.space_mean_speed_kmh) & (n_f > 0)
        speed_count = np.where(has_tms, n_f, 0.0)
        speed_weighted = np.where(has_tms, n_f * np.where(has_tms, lanes.time_mean_speed_kmh, 0.0), 0.0)
        with np.errstate(divide="ignore"):
            inverse_speed = np.where(has_sms, n_f / np.where(has_sms, lanes.space_mean_speed_kmh, 1.0), 0.0)
        occ, dens, n_readings = lanes.occupancy_pct, lanes.density_veh_km, lanes.n_readings
        imputed = lanes.imputed if len(lanes.imputed) == len(lanes) else np.zeros(len(lanes), dtype=bool)
    station = idx.detector_station[det]
    window0 = int(starts_ms.min()) if len(starts_ms) else 0
    slot = (starts_ms - window0) // window_ms
    n_slots = int(slot.max()) + 1 if len(slot) else 0
    key = slot * idx.n_stations + station
    occ_ok = np.isfinite(occ)
    keys, (count, occ_sum, occ_n, dens_sum, sc, sw, inv, n_read, n_imp) = _group_sums(key, n_slots * idx.n_stations, [
        count.astype(np.float64), np.where(occ_ok, occ, 0.0), occ_ok.astype(np.float64),
        np.where(np.isfinite(dens), dens, 0.0), speed_count, speed_weighted, inverse_speed,
        n_readings.astype(np.float64), imputed.astype(np.float64)])
    count = np.rint(count).astype(np.int64)
    st = keys % idx.n_stations
    flow = count * (MS_PER_HOUR / window_ms)
    sms = _divide(sc, inv)
    return FlowWindowBatch(
        level="station", window_ms=window_ms, entity_id=idx.station_id[st], corridor=idx.station_corridor[st],
        direction=idx.station_direction[st], window_start_ms=(keys // idx.n_stations) * window_ms + window0,
        vehicle_count=count, flow_veh_h=flow, occupancy_pct=_divide(occ_sum, occ_n.astype(np.float64)),
        time_mean_speed_kmh=_divide(sw, sc), space_mean_speed_kmh=sms, density_veh_km=dens_sum,
        speed_band=speed_band(sms), n_readings=np.rint(n_read).astype(np.int64), imputed=n_imp > 0)


# ---- segment --------------------------------------------------------------
def _nanmean2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean of two arrays ignoring NaN (NaN when both are)."""
    ok_a, ok_b = ~np.isnan(a), ~np.isnan(b)
    total = np.where(ok_a, a, 0.0) + np.where(ok_b, b, 0.0)
    return _divide(total, ok_a.astype(np.float64) + ok_b)


def segment_metrics(stations: FlowWindowBatch, network: Network) -> FlowWindowBatch:
    """Segment-level metrics: the mean of the upstream and downstream station of each segment.

    Flow, occupancy, density and vehicle count are arithmetic means, time-mean
    speed the arithmetic and space-mean speed the harmonic mean of the two
    stations; a station without data (or with a NaN value) is left out of the
    mean. ``travel_time_s`` = length / space-mean speed (free-flow time at the
    roadway's speed limit when the speed is NaN). A segment appears in a window
    when at least one of its stations does.
    """
    if stations.level != "station":
        raise ValueError(f"segment_metrics needs station windows, got level {stations.level!r}")
    idx = network_index(network)
    lookup = network.station_index
    st = lookup_numbers(lookup, stations.entity_id)
    if (st < 0).any():
        raise ValueError("station batch holds station ids the network does not know")
    imputed = stations.imputed if len(stations.imputed) == len(stations) else np.zeros(len(stations), dtype=bool)
    parts = []
    for w in np.unique(stations.window_start_ms):
        rows = np.flatnonzero(stations.window_start_ms == w)
        parts.append(_segments_of_window(int(w), rows, st[rows], stations, imputed, idx))
    if not parts:
        parts.append(_segments_of_window(0, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), stations,
                                         imputed, idx))
    cols = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    return FlowWindowBatch(level="segment", window_ms=stations.window_ms, **cols)


def _segments_of_window(window_start_ms: int, rows: np.ndarray, st: np.ndarray, stations: FlowWindowBatch,
                        imputed: np.ndarray, idx: NetworkIndex) -> dict[str, np.ndarray]:
    n_st = idx.n_stations
    present = np.zeros(n_st, dtype=bool)
    present[st] = True

    def dense(values: np.ndarray) -> np.ndarray:
        out = np.full(n_st, np.nan)
        out[st] = values[rows]
        return out

    up, down = idx.segment_up, idx.segment_down
    seg = np.flatnonzero(present[up] | present[down])
    up, down = up[seg], down[seg]
    out: dict[str, np.ndarray] = {}

    def mean(values: np.ndarray) -> np.ndarray:
        d = dense(values)
        return _nanmean2(d[up], d[down])

    count = mean(stations.vehicle_count.astype(np.float64))
    d_sms = dense(stations.space_mean_speed_kmh)
    with np.errstate(divide="ignore"):
        inv = _nanmean2(1.0 / d_sms[up], 1.0 / d_sms[down])
    sms = _divide(np.ones_like(inv), inv)
    limit = idx.segment_speed_limit_kmh[seg]
    length = idx.segment_length_km[seg]
    travel_speed = np.where(np.isfinite(sms), np.maximum(sms, MIN_TRAVEL_SPEED_KMH), limit)
    n_read = np.zeros(n_st, dtype=np.int64)
    n_read[st] = stations.n_readings[rows]
    imp = np.zeros(n_st, dtype=bool)
    imp[st] = imputed[rows]
    out["entity_id"] = idx.segment_id[seg]
    out["corridor"] = idx.segment_corridor[seg]
    out["direction"] = idx.segment_direction[seg]
    out["window_start_ms"] = np.full(len(seg), window_start_ms, dtype=np.int64)
    out["vehicle_count"] = np.rint(np.nan_to_num(count)).astype(np.int64)
    out["flow_veh_h"] = mean(stations.flow_veh_h)
    out["occupancy_pct"] = mean(stations.occupancy_pct)
    out["time_mean_speed_kmh"] = mean(stations.time_mean_speed_kmh)
    out["space_mean_speed_kmh"] = sms
    out["density_veh_km"] = mean(stations.density_veh_km)
    out["speed_band"] = speed_band(sms)
    out["n_readings"] = n_read[up] + n_read[down]
    out["travel_time_s"] = length / travel_speed * 3600.0
    out["imputed"] = imp[up] | imp[down]
    return out
