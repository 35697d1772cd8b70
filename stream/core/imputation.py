"""Imputation of bad or missing lane windows from their neighbours (PeMS local/regional).

Local: another lane of the same station that is good gives the station's
level; the target lane gets its usual share of it (lane shares learnt by
:class:`LaneShares`, equal shares without one). Regional: when no lane of the
station is good, the same lane of the adjacent upstream and downstream
stations (the mean of those that are good). Imputed rows have
``imputed=True`` and ``n_readings=0``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from models.network import Network
from models.records import FlowWindowBatch
from stream.core.bands import speed_band
from stream.core.flow import MS_PER_HOUR, NetworkIndex, density_veh_km, network_index

_VALUE_COLS = ("vehicle_count", "flow_veh_h", "occupancy_pct", "time_mean_speed_kmh", "space_mean_speed_kmh",
               "density_veh_km", "n_readings")


class LaneShares:
    """Per detector, EWMAs of its lane's share of station flow and its occupancy and speed ratios to the station.

    Learnt only from windows where every lane of the station reported and none is bad.
    """

    def __init__(self, network: Network, alpha: float = 0.05, resume_state: dict[str, Any] | None = None) -> None:
        self.network = network
        self.alpha = float(alpha)
        idx = network_index(network)
        lanes = idx.station_lanes[idx.detector_station].astype(np.float64)
        self.flow_share = 1.0 / lanes  # of the station's flow
        self.occ_ratio = np.ones(network.n_detectors)  # lane occupancy / station mean occupancy
        self.speed_ratio = np.ones(network.n_detectors)  # lane space-mean speed / station space-mean speed
        if resume_state is not None:
            for name in ("flow_share", "occ_ratio", "speed_ratio"):
                setattr(self, name, np.array(resume_state[name], dtype=np.float64))

    def update(self, lanes: FlowWindowBatch, bad_detector: np.ndarray | None = None) -> None:
        idx = network_index(self.network)
        det = self.network.detector_numbers(lanes.entity_id)
        raw = ~lanes.imputed if len(lanes.imputed) == len(lanes) else np.ones(len(lanes), dtype=bool)
        for w in np.unique(lanes.window_start_ms):
            rows = np.flatnonzero((lanes.window_start_ms == w) & (det >= 0) & raw)
            d = det[rows]
            if bad_detector is not None:
                rows, d = rows[~bad_detector[d]], d[~bad_detector[d]]
            st = idx.detector_station[d]
            n_st = np.bincount(st, minlength=idx.n_stations)
            full = n_st[st] == idx.station_lanes[st]
            rows, d, st = rows[full], d[full], st[full]
            flow = lanes.flow_veh_h[rows]
            occ = lanes.occupancy_pct[rows]
            sms = lanes.space_mean_speed_kmh[rows]
            lanes_f = idx.station_lanes[st].astype(np.float64)
            total = np.bincount(st, weights=flow, minlength=idx.n_stations)[st]
            occ_mean = np.bincount(st, weights=occ, minlength=idx.n_stations)[st] / lanes_f
            count = lanes.vehicle_count[rows].astype(np.float64)
            ok_v = np.isfinite(sms) & (sms > 0) & (count > 0)
            inv = np.bincount(st, weights=np.where(ok_v, count / np.where(ok_v, sms, 1), 0), minlength=idx.n_stations)
            cnt = np.bincount(st, weights=np.where(ok_v, count, 0), minlength=idx.n_stations)
            st_speed = np.where(inv[st] > 0, cnt[st] / np.where(inv[st] > 0, inv[st], 1), np.nan)
            self._ewma(self.flow_share, d, total > 0, flow / np.where(total > 0, total, 1))
            self._ewma(self.occ_ratio, d, np.isfinite(occ_mean) & (occ_mean > 0), occ / np.where(occ_mean > 0, occ_mean, 1))
            self._ewma(self.speed_ratio, d, ok_v & np.isfinite(st_speed), sms / np.where(st_speed > 0, st_speed, 1))

    def _ewma(self, target: np.ndarray, det: np.ndarray, ok: np.ndarray, value: np.ndarray) -> None:
        ok &= np.isfinite(value)
        target[det[ok]] += self.alpha * (value[ok] - target[det[ok]])

    def snapshot(self) -> dict[str, Any]:
        return {"flow_share": self.flow_share.copy(), "occ_ratio": self.occ_ratio.copy(),
                "speed_ratio": self.speed_ratio.copy()}


def impute_lanes(lanes: FlowWindowBatch, bad_detector: np.ndarray, network: Network,
                 shares: LaneShares | None = None, add_missing: bool = True,
                 imputable_station: np.ndarray | None = None, drop_unimputable: bool = False) -> FlowWindowBatch:
    """Replace bad lanes' metrics, and add missing lanes, from neighbouring lanes.

    ``bad_detector`` is a bool per detector number (``HealthReport.bad``).
    Missing detectors (no row in a window of the batch) are added when
    ``add_missing`` and their station is allowed by ``imputable_station`` (a
    bool per station, e.g. the stations a worker owns; all when None). A bad
    row that cannot be imputed is kept as it is, or dropped with
    ``drop_unimputable``. Rows come out ordered by window, then detector number.
    """
    if lanes.level != "lane":
        raise ValueError(f"impute_lanes needs lane windows, got level {lanes.level!r}")
    idx = network_index(network)
    bad = np.asarray(bad_detector, dtype=bool)
    if bad.shape != (network.n_detectors,):
        raise ValueError(f"bad_detector needs one flag per detector ({network.n_detectors})")
    if shares is None:
        shares = LaneShares(network)
    det = network.detector_numbers(lanes.entity_id)
    if (det < 0).any():
        raise ValueError("lane batch holds detector ids the network does not know")
    allowed = np.ones(idx.n_stations, dtype=bool) if imputable_station is None else np.asarray(imputable_station)
    parts = [_impute_window(int(w), np.flatnonzero(lanes.window_start_ms == w), det, lanes, bad, idx, shares,
                            add_missing, allowed, drop_unimputable)
             for w in np.unique(lanes.window_start_ms)]
    cols: dict[str, np.ndarray] = {}
    for name in ("detector", *_VALUE_COLS, "window_start_ms", "imputed"):
        cols[name] = np.concatenate([p[name] for p in parts]) if parts else np.zeros(0)
    d = cols.pop("detector").astype(np.int64)
    return FlowWindowBatch(
        level="lane", window_ms=lanes.window_ms, entity_id=idx.detector_id[d], corridor=idx.detector_corridor[d],
        direction=idx.detector_direction[d], window_start_ms=cols.pop("window_start_ms").astype(np.int64),
        vehicle_count=cols.pop("vehicle_count").astype(np.int64), n_readings=cols.pop("n_readings").astype(np.int64),
        imputed=cols.pop("imputed").astype(bool), speed_band=speed_band(cols["space_mean_speed_kmh"]), **cols)


def _impute_window(window_start_ms: int, rows: np.ndarray, det_all: np.ndarray, lanes: FlowWindowBatch,
                   bad: np.ndarray, idx: NetworkIndex, shares: LaneShares, add_missing: bool,
                   allowed_station: np.ndarray, drop_unimputable: bool) -> dict[str, np.ndarray]:
    n_det, n_st = len(idx.detector_id), idx.n_stations
    det = det_all[rows]
    present = np.zeros(n_det, dtype=bool)
    present[det] = True
    val = {c: np.full(n_det, np.nan) for c in _VALUE_COLS}
    for c in _VALUE_COLS:
        val[c][det] = getattr(lanes, c)[rows]
    good = present & ~bad
    target = (present & bad) | (~present & add_missing & allowed_station[idx.detector_station])
    st = idx.detector_station

    # local: station level from its good lanes, scaled by the target lane's share / ratios
    g = np.flatnonzero(good)
    gst = st[g]

    def st_sum(weights: np.ndarray) -> np.ndarray:
        return np.bincount(gst, weights=weights, minlength=n_st)

    flow_g = val["flow_veh_h"][g]
    occ_g, sms_g, tms_g = val["occupancy_pct"][g], val["space_mean_speed_kmh"][g], val["time_mean_speed_kmh"][g]
    n_g = val["vehicle_count"][g]
    occ_ok = np.isfinite(occ_g)
    v_ok = np.isfinite(sms_g) & (sms_g > 0) & (n_g > 0)
    t_ok = np.isfinite(tms_g) & (n_g > 0)
    n_good = st_sum(np.ones(len(g)))
    share_sum = st_sum(shares.flow_share[g])
    level_flow = _div(st_sum(flow_g), share_sum)
    level_occ = _div(st_sum(np.where(occ_ok, occ_g, 0)), st_sum(np.where(occ_ok, shares.occ_ratio[g], 0)))
    level_sms = _div(st_sum(np.where(v_ok, n_g, 0)),
                     st_sum(np.where(v_ok, n_g * shares.speed_ratio[g] / np.where(v_ok, sms_g, 1), 0)))
    level_tms = _div(st_sum(np.where(t_ok, n_g * tms_g / shares.speed_ratio[g], 0)), st_sum(np.where(t_ok, n_g, 0)))
    local = target & (n_good[st] > 0)
    t = np.flatnonzero(local)
    flow = np.full(n_det, np.nan)
    occ, sms, tms = flow.copy(), flow.copy(), flow.copy()
    flow[t] = shares.flow_share[t] * level_flow[st[t]]
    occ[t] = shares.occ_ratio[t] * level_occ[st[t]]
    sms[t] = shares.speed_ratio[t] * level_sms[st[t]]
    tms[t] = shares.speed_ratio[t] * level_tms[st[t]]

    # regional: same lane at the adjacent stations, where they are good
    regional = np.flatnonzero(target & ~local)
    acc = {k: np.zeros(len(regional)) for k in ("flow", "occ", "inv", "tms", "n", "n_o", "n_v", "n_t")}
    for nb in (idx.station_upstream[st[regional]], idx.station_downstream[st[regional]]):
        lane = idx.detector_lane[regional]
        ok = (nb >= 0) & (lane <= idx.station_lanes[np.maximum(nb, 0)])
        nd = np.where(ok, idx.station_first_detector[np.maximum(nb, 0)] + lane - 1, 0)
        ok &= good[nd]
        acc["n"] += ok
        acc["flow"] += np.where(ok, val["flow_veh_h"][nd], 0)
        o = val["occupancy_pct"][nd]
        acc["occ"] += np.where(ok & np.isfinite(o), o, 0)
        v, tv = val["space_mean_speed_kmh"][nd], val["time_mean_speed_kmh"][nd]
        has_v, has_t = ok & np.isfinite(v) & (v > 0), ok & np.isfinite(tv)
        acc["inv"] += np.where(has_v, 1 / np.where(has_v, v, 1), 0)
        acc["n_v"] += has_v
        acc["tms"] += np.where(has_t, tv, 0)
        acc["n_t"] += has_t
        acc["n_o"] += ok & np.isfinite(o)
    flow[regional] = _div(acc["flow"], acc["n"])
    occ[regional] = _div(acc["occ"], acc["n_o"])
    sms[regional] = _div(acc["n_v"], acc["inv"])
    tms[regional] = _div(acc["tms"], acc["n_t"])
    done = np.zeros(n_det, dtype=bool)
    done[t] = True
    done[regional[acc["n"] > 0]] = True

    # assemble: good rows as they were, imputed rows, bad rows kept unless dropped
    count = np.rint(np.nan_to_num(flow) * lanes.window_ms / MS_PER_HOUR)
    no_vehicle = count == 0
    sms[no_vehicle] = np.nan
    tms[no_vehicle] = np.nan
    out_val = {c: val[c].copy() for c in _VALUE_COLS}
    out_val["vehicle_count"][done] = count[done]
    out_val["flow_veh_h"][done] = flow[done]
    out_val["occupancy_pct"][done] = occ[done]
    out_val["space_mean_speed_kmh"][done] = sms[done]
    out_val["time_mean_speed_kmh"][done] = tms[done]
    out_val["density_veh_km"][done] = density_veh_km(flow[done], sms[done], occ[done])
    out_val["n_readings"][done] = 0
    keep = good | done | (present & ~drop_unimputable)
    d = np.flatnonzero(keep)
    part = {c: out_val[c][d] for c in _VALUE_COLS}
    part.update(detector=d, window_start_ms=np.full(len(d), window_start_ms, dtype=np.int64), imputed=done[d])
    return part


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
