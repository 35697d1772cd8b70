"""Imputation recovers removed lanes on consistent synthetic data; hand-computed local/regional cases."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.network import Network
from models.records import FlowWindowBatch
from stream.core.imputation import LaneShares, impute_lanes

WINDOW_MS = 60_000
SHARES = np.array([0.31, 0.28, 0.23, 0.18])
SPEED_RATIO = np.array([1.12, 1.03, 0.97, 0.88])


def network(n_stations: int = 6, lanes: int = 4) -> Network:
    return Network.from_dict({"name": "t", "roadways": [{
        "corridor": "A", "direction": "E",
        "stations": [{"id": f"S{i}", "km": 0.5 * i, "lanes": lanes} for i in range(n_stations)]}]})


def synthetic(net: Network, n_windows: int, seed: int) -> pd.DataFrame:
    """Lane windows whose lanes keep fixed shares of a station flow that varies little between stations."""
    rng = np.random.default_rng(seed)
    rows = []
    n_st = len(net.stations)
    for k in range(n_windows):
        q = rng.uniform(2000, 7000)
        v = rng.uniform(30, 90)
        q_st = q * (1 + rng.normal(0, 0.03, n_st))
        v_st = v * (1 + rng.normal(0, 0.03, n_st))
        for s in range(n_st):
            flow = q_st[s] * SHARES * (1 + rng.normal(0, 0.04, 4))
            count = np.rint(flow * WINDOW_MS / 3_600_000).astype(int)
            sms = v_st[s] * SPEED_RATIO * (1 + rng.normal(0, 0.02, 4))
            for lane in range(4):
                f = count[lane] * 60.0
                rows.append((s * 4 + lane, k * WINDOW_MS, count[lane], f, f / sms[lane] * 0.67, sms[lane] * 1.02,
                             sms[lane], f / sms[lane]))
    return pd.DataFrame(rows, columns=["detector", "window_start_ms", "vehicle_count", "flow_veh_h", "occupancy_pct",
                                       "time_mean_speed_kmh", "space_mean_speed_kmh", "density_veh_km"])


def batch(df: pd.DataFrame, net: Network) -> FlowWindowBatch:
    n = len(df)
    return FlowWindowBatch(
        level="lane", window_ms=WINDOW_MS, entity_id=net.detector_ids[df.detector.to_numpy()],
        corridor=np.full(n, "A", dtype=object), direction=np.full(n, "E", dtype=object),
        window_start_ms=df.window_start_ms.to_numpy(np.int64), vehicle_count=df.vehicle_count.to_numpy(np.int64),
        flow_veh_h=df.flow_veh_h.to_numpy(float), occupancy_pct=df.occupancy_pct.to_numpy(float),
        time_mean_speed_kmh=df.time_mean_speed_kmh.to_numpy(float),
        space_mean_speed_kmh=df.space_mean_speed_kmh.to_numpy(float), density_veh_km=df.density_veh_km.to_numpy(float),
        speed_band=np.zeros(n, np.int8), n_readings=np.full(n, 2, np.int64), imputed=np.zeros(n, dtype=bool))


def frame(b: FlowWindowBatch, net: Network) -> pd.DataFrame:
    df = pd.DataFrame(b.to_rows())
    return df.assign(detector=net.detector_numbers(df.entity_id))


def test_imputation_recovers_removed_lanes_on_consistent_data() -> None:
    net = network()
    train = synthetic(net, 60, seed=0)
    shares = LaneShares(net, alpha=0.1)
    for _, g in train.groupby("window_start_ms"):
        shares.update(batch(g, net))
    np.testing.assert_allclose(shares.flow_share[:4], SHARES, atol=0.015)
    np.testing.assert_allclose(shares.speed_ratio[:4], SPEED_RATIO / np.mean(SPEED_RATIO), rtol=0.05)

    truth = synthetic(net, 20, seed=1)
    missing_lane = 2 * 4 + 2  # station 2, lane 3: no data
    stuck_lane = 3 * 4 + 0  # station 3, lane 1: reports zeros, health calls it bad
    dead_station = [16, 17, 18, 19]  # station 4: nothing at all -> regional
    observed = truth[~truth.detector.isin([missing_lane, *dead_station])].copy()
    stuck = observed.detector == stuck_lane
    observed.loc[stuck, ["vehicle_count", "flow_veh_h", "occupancy_pct", "density_veh_km"]] = 0
    observed.loc[stuck, ["time_mean_speed_kmh", "space_mean_speed_kmh"]] = np.nan
    bad = np.zeros(net.n_detectors, dtype=bool)
    bad[stuck_lane] = True

    out = frame(impute_lanes(batch(observed, net), bad, net, shares=shares), net)
    assert len(out) == len(truth)  # every detector of every window is there again
    targets = {missing_lane, stuck_lane, *dead_station}
    assert set(out[out.imputed].detector) == targets
    assert (out[out.imputed].n_readings == 0).all() and (out[~out.imputed].n_readings == 2).all()
    merged = out.merge(truth, on=["window_start_ms", "detector"], suffixes=("", "_true"))
    same = merged[~merged.imputed]
    np.testing.assert_allclose(same.flow_veh_h, same.flow_veh_h_true)  # good lanes untouched
    for det, tol_flow, tol_speed in [(missing_lane, 0.08, 0.04), (stuck_lane, 0.08, 0.04)] + [
            (d, 0.12, 0.06) for d in dead_station]:
        m = merged[merged.detector == det]
        err_flow = np.mean(np.abs(m.flow_veh_h / m.flow_veh_h_true - 1))
        err_speed = np.mean(np.abs(m.space_mean_speed_kmh / m.space_mean_speed_kmh_true - 1))
        err_occ = np.mean(np.abs(m.occupancy_pct / m.occupancy_pct_true - 1))
        assert err_flow < tol_flow, (det, err_flow)
        assert err_speed < tol_speed, (det, err_speed)
        assert err_occ < 2 * tol_flow, (det, err_occ)
    # station totals from imputed lanes are close to the truth, far from the broken ones
    st_true = truth.assign(st=truth.detector // 4).groupby(["window_start_ms", "st"]).flow_veh_h.sum()
    st_got = out.assign(st=out.detector // 4).groupby(["window_start_ms", "st"]).flow_veh_h.sum()
    assert np.mean(np.abs(st_got / st_true - 1)) < 0.03


def one_window(values: dict[int, tuple[float, float, float]], net: Network) -> FlowWindowBatch:
    """values: detector -> (flow veh/h, occupancy %, space-mean speed)."""
    rows = [(d, 0, int(f / 60), f, o, v, v, f / v) for d, (f, o, v) in sorted(values.items())]
    return batch(pd.DataFrame(rows, columns=["detector", "window_start_ms", "vehicle_count", "flow_veh_h",
                                             "occupancy_pct", "time_mean_speed_kmh", "space_mean_speed_kmh",
                                             "density_veh_km"]), net)


def test_local_with_equal_shares_and_regional_by_hand() -> None:
    net = network(n_stations=3, lanes=2)  # detectors: S0 0,1; S1 2,3; S2 4,5
    lanes = one_window({0: (1000.0, 8.0, 60.0), 1: (1500.0, 11.0, 70.0), 4: (1400.0, 12.0, 90.0),
                        5: (900.0, 6.0, 50.0)}, net)
    out = frame(impute_lanes(lanes, np.zeros(6, dtype=bool), net), net).set_index("detector")
    assert out.index.tolist() == [0, 1, 2, 3, 4, 5]
    # S1 has no lane: lane 1 from S0 lane 1 and S2 lane 1; lane 2 from the two lanes 2
    assert out.loc[2, "flow_veh_h"] == pytest.approx(1200.0)
    assert out.loc[2, "occupancy_pct"] == pytest.approx(10.0)
    assert out.loc[2, "space_mean_speed_kmh"] == pytest.approx(2 / (1 / 60 + 1 / 90))
    assert out.loc[3, "flow_veh_h"] == pytest.approx(1200.0)
    assert out.loc[3, "space_mean_speed_kmh"] == pytest.approx(2 / (1 / 70 + 1 / 50))
    assert out.loc[2, "vehicle_count"] == 20 and out.loc[2, "imputed"] and not out.loc[0, "imputed"]
    assert out.loc[2, "speed_band"] == 8 and out.loc[3, "speed_band"] == 6

    # local: S0 lane 2 is bad -> equal shares: lane 2 gets lane 1's flow, occupancy and speed
    bad = np.zeros(6, dtype=bool)
    bad[1] = True
    out = frame(impute_lanes(lanes, bad, net, add_missing=False), net).set_index("detector")
    assert out.index.tolist() == [0, 1, 4, 5]
    assert out.loc[1, "flow_veh_h"] == pytest.approx(1000.0) and out.loc[1, "space_mean_speed_kmh"] == 60.0
    assert out.loc[1, "density_veh_km"] == pytest.approx(1000 / 60)


def test_unimputable_rows_are_kept_or_dropped_and_stations_can_be_restricted() -> None:
    net = network(n_stations=2, lanes=1)  # detectors 0 (S0), 1 (S1)
    lanes = one_window({0: (1000.0, 8.0, 60.0), 1: (0.0, 50.0, 60.0)}, net)
    bad = np.array([True, True])
    kept = frame(impute_lanes(lanes, bad, net), net)
    assert kept.detector.tolist() == [0, 1] and not kept.imputed.any()
    assert kept.flow_veh_h.tolist() == [1000.0, 0.0]
    assert len(impute_lanes(lanes, bad, net, drop_unimputable=True)) == 0
    only_s0 = one_window({0: (1000.0, 8.0, 60.0)}, net)
    assert frame(impute_lanes(only_s0, np.zeros(2, bool), net), net).imputed.tolist() == [False, True]
    restricted = impute_lanes(only_s0, np.zeros(2, bool), net, imputable_station=np.array([True, False]))
    assert restricted.entity_id.tolist() == [net.detector_ids[0]]
    with pytest.raises(ValueError):
        impute_lanes(only_s0, np.zeros(3, bool), net)
