"""Lane, station and segment metrics against pandas and hand-computed values."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.network import Network
from models.records import FlowWindowBatch
from models.singapore import singapore_network
from stream.core.flow import lane_metrics, network_index, segment_metrics, station_metrics
from stream.core.windows import TumblingWindow

G_M = 6.7


def readings(network: Network, seed: int, interval_ms: int, n_intervals: int, speed_nan_share: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_det = network.n_detectors
    det = np.repeat(np.arange(n_det), n_intervals)
    start = 1_700_000_040_000 + np.tile(np.arange(n_intervals), n_det) * interval_ms
    keep = rng.random(len(det)) > 0.15
    det, start = det[keep], start[keep]
    n = len(det)
    count = rng.poisson(3, n)
    speed = rng.uniform(3, 100, n)
    speed[count == 0] = np.nan
    speed[rng.random(n) < speed_nan_share] = np.nan
    occ = rng.uniform(0, 50, n)
    return pd.DataFrame({"detector": det, "interval_start_ms": start, "interval_ms": interval_ms,
                         "vehicle_count": count, "occupancy_pct": occ, "speed_kmh": speed}).sort_values(
        "interval_start_ms", kind="stable").reset_index(drop=True)


def closed_windows(df: pd.DataFrame, n_det: int, length_ms: int) -> list:
    w = TumblingWindow(length_ms).build(n_det)
    late = w.update(*(df[c].to_numpy() for c in ["detector", "interval_start_ms", "interval_ms", "vehicle_count",
                                                  "occupancy_pct", "speed_kmh"]))
    assert not late.any()
    return w.flush()


def lane_reference(df: pd.DataFrame, network: Network, length_ms: int) -> pd.DataFrame:
    """Per (window, detector) metrics written from the ARCHITECTURE.md definitions."""
    d = df.assign(window_start_ms=df.interval_start_ms - df.interval_start_ms % length_ms)
    has = (d.vehicle_count > 0) & d.speed_kmh.notna()
    d = d.assign(occ_ms=d.occupancy_pct * d.interval_ms, nv=(d.vehicle_count * d.speed_kmh).where(has, 0.0),
                 n_over_v=(d.vehicle_count / d.speed_kmh).where(has, 0.0), n_s=d.vehicle_count.where(has, 0))
    g = d.groupby(["window_start_ms", "detector"]).agg(
        vehicle_count=("vehicle_count", "sum"), occ_ms=("occ_ms", "sum"), dur=("interval_ms", "sum"),
        nv=("nv", "sum"), n_over_v=("n_over_v", "sum"), n_s=("n_s", "sum"), n_readings=("detector", "size"))
    g = g.reset_index()
    g["flow_veh_h"] = g.vehicle_count / (length_ms / 3_600_000)
    g["occupancy_pct"] = g.occ_ms / g.dur
    g["time_mean_speed_kmh"] = (g.nv / g.n_s).where(g.n_s > 0)
    g["space_mean_speed_kmh"] = (g.n_s / g.n_over_v).where(g.n_s > 0)
    g["density_veh_km"] = (g.flow_veh_h / g.space_mean_speed_kmh).fillna(g.occupancy_pct / 100 * 1000 / G_M)
    g["entity_id"] = network.detector_ids[g.detector.to_numpy()]
    g["station"] = network.detector_station_idx[g.detector.to_numpy()]
    return g


def band(speed: pd.Series) -> np.ndarray:
    """Reference LTA band, written from the table."""
    edges = [-np.inf, 10, 20, 30, 40, 50, 60, 70, np.inf]
    b = pd.cut(speed, edges, right=False, labels=False) + 1
    return b.fillna(0).astype(int).to_numpy()


def batch_frame(batch: FlowWindowBatch) -> pd.DataFrame:
    return pd.DataFrame(batch.to_rows())


METRICS = ["vehicle_count", "flow_veh_h", "occupancy_pct", "time_mean_speed_kmh", "space_mean_speed_kmh",
           "density_veh_km", "n_readings"]


@pytest.mark.parametrize("length_ms", [30_000, 60_000, 300_000])
def test_lane_and_station_metrics_match_pandas(length_ms: int) -> None:
    network = singapore_network(60)
    df = readings(network, length_ms, 20_000, 40, speed_nan_share=0.05)
    ref = lane_reference(df, network, length_ms)
    closed = closed_windows(df, network.n_detectors, length_ms)
    lanes = pd.concat([batch_frame(lane_metrics(c, network)) for c in closed], ignore_index=True)
    assert (lanes.level == "lane").all() and (lanes.window_ms == length_ms).all()
    assert not lanes.imputed.any()
    ref = ref.sort_values(["window_start_ms", "detector"]).reset_index(drop=True)
    assert lanes.entity_id.tolist() == ref.entity_id.tolist()
    assert lanes.window_start_ms.tolist() == ref.window_start_ms.tolist()
    pd.testing.assert_frame_equal(lanes[METRICS], ref[METRICS], check_dtype=False, rtol=1e-9)
    np.testing.assert_array_equal(lanes.speed_band, band(ref.space_mean_speed_kmh))
    det = network.detector_numbers(lanes.entity_id)
    assert lanes.corridor.tolist() == [network.stations[network.detector_station_idx[i]].corridor for i in det]

    # station: flow and density summed over lanes, occupancy mean of lanes, speeds from all the station's vehicles
    d = df.assign(window_start_ms=df.interval_start_ms - df.interval_start_ms % length_ms,
                  station=network.detector_station_idx[df.detector.to_numpy()])
    has = (d.vehicle_count > 0) & d.speed_kmh.notna()
    d = d.assign(nv=(d.vehicle_count * d.speed_kmh).where(has, 0.0),
                 n_over_v=(d.vehicle_count / d.speed_kmh).where(has, 0.0), n_s=d.vehicle_count.where(has, 0))
    sp = d.groupby(["window_start_ms", "station"])[["nv", "n_over_v", "n_s"]].sum()
    st_ref = ref.groupby(["window_start_ms", "station"]).agg(
        vehicle_count=("vehicle_count", "sum"), flow_veh_h=("flow_veh_h", "sum"),
        occupancy_pct=("occupancy_pct", "mean"), density_veh_km=("density_veh_km", "sum"),
        n_readings=("n_readings", "sum")).join(sp).reset_index()
    st_ref["time_mean_speed_kmh"] = (st_ref.nv / st_ref.n_s).where(st_ref.n_s > 0)
    st_ref["space_mean_speed_kmh"] = (st_ref.n_s / st_ref.n_over_v).where(st_ref.n_s > 0)
    st_ref["entity_id"] = [network.stations[i].station_id for i in st_ref.station]
    stations = pd.concat([batch_frame(station_metrics(c, network)) for c in closed], ignore_index=True)
    assert stations.entity_id.tolist() == st_ref.entity_id.tolist()
    pd.testing.assert_frame_equal(stations[METRICS], st_ref[METRICS], check_dtype=False, rtol=1e-9)
    np.testing.assert_array_equal(stations.speed_band, band(st_ref.space_mean_speed_kmh))


def test_station_metrics_from_lane_batch_equal_those_from_sums() -> None:
    network = singapore_network(40)
    df = readings(network, 5, 30_000, 20, speed_nan_share=0.0)  # all counted vehicles have a speed
    closed = closed_windows(df, network.n_detectors, 60_000)
    lane_batches = [lane_metrics(c, network) for c in closed]
    all_lanes = FlowWindowBatch(level="lane", window_ms=60_000, **{
        c: np.concatenate([getattr(b, c) for b in lane_batches]) for c in FlowWindowBatch.COLUMNS + ("imputed",)})
    from_lanes = batch_frame(station_metrics(all_lanes, network))
    from_sums = pd.concat([batch_frame(station_metrics(c, network)) for c in closed], ignore_index=True)
    assert from_lanes.entity_id.tolist() == from_sums.entity_id.tolist()
    assert from_lanes.window_start_ms.tolist() == from_sums.window_start_ms.tolist()
    pd.testing.assert_frame_equal(from_lanes[METRICS], from_sums[METRICS], rtol=1e-9)


def small_network(speed_limit_kmh: float = 90.0) -> Network:
    """One roadway A0 (km 0) -> A1 (km 2) -> A2 (km 3.5), two lanes each."""
    return Network.from_dict({"name": "t", "roadways": [{
        "corridor": "A", "direction": "E", "speed_limit_kmh": speed_limit_kmh,
        "stations": [{"id": "A0", "km": 0.0, "lanes": 2}, {"id": "A1", "km": 2.0, "lanes": 2},
                     {"id": "A2", "km": 3.5, "lanes": 2}]}]})


def station_batch(rows: list[tuple[str, int, float, float, float, float, float]], window_ms: int = 60_000,
                  imputed: list[bool] | None = None) -> FlowWindowBatch:
    """rows: station id, window start, flow veh/h, occupancy %, time-mean, space-mean, density."""
    sid, start, flow, occ, tms, sms, dens = (np.array(c) for c in zip(*rows, strict=True))
    n = len(rows)
    count = np.rint(flow * window_ms / 3_600_000).astype(np.int64)
    return FlowWindowBatch(
        level="station", window_ms=window_ms, entity_id=sid.astype(object), corridor=np.full(n, "A", dtype=object),
        direction=np.full(n, "E", dtype=object), window_start_ms=start.astype(np.int64), vehicle_count=count,
        flow_veh_h=flow.astype(float), occupancy_pct=occ.astype(float), time_mean_speed_kmh=tms.astype(float),
        space_mean_speed_kmh=sms.astype(float), density_veh_km=dens.astype(float), speed_band=np.zeros(n, np.int8),
        n_readings=np.full(n, 4, dtype=np.int64), imputed=np.array(imputed or [False] * n))


def test_segment_metrics_hand_computed() -> None:
    network = small_network()
    stations = station_batch([
        ("A0", 0, 3000.0, 10.0, 82.0, 80.0, 37.5),
        ("A1", 0, 2400.0, 30.0, 42.0, 40.0, 60.0),
        ("A2", 0, 1800.0, 20.0, np.nan, np.nan, 29.85),
        ("A0", 60_000, 3600.0, 12.0, 62.0, 60.0, 60.0),
    ], imputed=[False, True, False, False])
    seg = batch_frame(segment_metrics(stations, network)).set_index(["window_start_ms", "entity_id"])
    assert seg.index.tolist() == [(0, "A0>A1"), (0, "A1>A2"), (60_000, "A0>A1")]
    a = seg.loc[(0, "A0>A1")]
    assert a.flow_veh_h == pytest.approx(2700.0)
    assert a.occupancy_pct == pytest.approx(20.0)
    assert a.time_mean_speed_kmh == pytest.approx(62.0)
    assert a.space_mean_speed_kmh == pytest.approx(2 / (1 / 80 + 1 / 40))  # 53.33
    assert a.density_veh_km == pytest.approx(48.75)
    assert a.travel_time_s == pytest.approx(2.0 / (160 / 3) * 3600)  # 135 s
    assert a.speed_band == 6 and a.imputed and a.n_readings == 8 and a.vehicle_count == 45
    b = seg.loc[(0, "A1>A2")]  # downstream speed unknown: speeds from A1 alone, the rest averaged
    assert b.space_mean_speed_kmh == pytest.approx(40.0) and b.time_mean_speed_kmh == pytest.approx(42.0)
    assert b.flow_veh_h == pytest.approx(2100.0)
    assert b.travel_time_s == pytest.approx(1.5 / 40 * 3600)
    c = seg.loc[(60_000, "A0>A1")]  # only the upstream station reported
    assert c.flow_veh_h == pytest.approx(3600.0) and c.travel_time_s == pytest.approx(2.0 / 60 * 3600)
    assert not c.imputed


def test_segment_without_speed_uses_free_flow_time() -> None:
    network = small_network(speed_limit_kmh=80.0)
    stations = station_batch([("A1", 0, 0.0, 0.0, np.nan, np.nan, 0.0), ("A2", 0, 0.0, 0.0, np.nan, np.nan, 0.0)])
    seg = segment_metrics(stations, network)
    assert seg.entity_id.tolist() == ["A0>A1", "A1>A2"]
    np.testing.assert_allclose(seg.travel_time_s, [2.0 / 80 * 3600, 1.5 / 80 * 3600])
    assert seg.speed_band.tolist() == [0, 0]


def test_network_index_neighbours() -> None:
    idx = network_index(small_network())
    assert idx.station_upstream.tolist() == [-1, 0, 1]
    assert idx.station_downstream.tolist() == [1, 2, -1]
    assert idx.segment_id.tolist() == ["A0>A1", "A1>A2"]
    assert idx.station_first_detector.tolist() == [0, 2, 4]
