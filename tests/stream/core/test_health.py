"""Detector diagnostics on constructed detector histories, shares checked against pandas."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.network import Network
from models.records import FlowWindowBatch
from stream.core.health import STATUSES, DetectorHealth

DAY0_MS = 1_699_920_000_000  # midnight UTC
WINDOW_MS = 300_000
N_WINDOWS = 288  # one day of 5-min windows
EXPECTED = {0: "good", 1: "no_data", 2: "insufficient", 3: "card_off", 4: "high_val", 5: "intermittent",
            6: "intermittent", 7: "constant", 8: "card_off"}


def network() -> Network:
    return Network.from_dict({"name": "t", "roadways": [{
        "corridor": "A", "direction": "E",
        "stations": [{"id": f"S{i}", "km": float(i), "lanes": 3} for i in range(3)]}]})


def histories(seed: int = 0, n_windows: int = N_WINDOWS, day0_ms: int = DAY0_MS) -> pd.DataFrame:
    """One row per (window, detector): healthy traffic, with one fault per detector 1..8."""
    rng = np.random.default_rng(seed)
    n_det = 9
    w = np.repeat(np.arange(n_windows), n_det)
    det = np.tile(np.arange(n_det), n_windows)
    count = rng.poisson(120, len(w))
    occ = np.round(count / 12 + rng.uniform(0.1, 3, len(w)), 2)
    df = pd.DataFrame({"w": w, "detector": det, "vehicle_count": count, "occupancy_pct": occ,
                       "u": rng.random(len(w))})
    df = df[(df.detector != 1) & ~((df.detector == 2) & (df.u < 0.5))].copy()  # 1 never reports, 2 half missing
    u, d = df.u, df.detector
    df.loc[(d == 3) & (u < 0.65), "occupancy_pct"] = 0.0  # 3: loop card off 65% of the time
    df.loc[(d == 4) & (u < 0.3), "occupancy_pct"] = 85.0  # 4: stuck-high occupancy 30% of the time
    chatter = (d == 5) & (u < 0.05)  # 5: occupied but no vehicles counted in 5% of samples
    df.loc[chatter, "vehicle_count"] = 0
    df.loc[(d == 6) & (u < 0.55), "occupancy_pct"] = 0.0  # 6: vehicles counted, occupancy 0 in 55%
    df.loc[(d == 7) & (df.w >= 100) & (df.w < 160), "occupancy_pct"] = 12.5  # 7: stuck for 5 h
    dead = (d == 8) & (u < 0.7)  # 8: reports zeros while its neighbours flow
    df.loc[dead, ["vehicle_count", "occupancy_pct"]] = 0
    return df.drop(columns="u").assign(window_start_ms=day0_ms + df.w * WINDOW_MS).reset_index(drop=True)


def lane_batch(df: pd.DataFrame, net: Network) -> FlowWindowBatch:
    n = len(df)
    count = df.vehicle_count.to_numpy(np.int64)
    return FlowWindowBatch(
        level="lane", window_ms=WINDOW_MS, entity_id=net.detector_ids[df.detector.to_numpy()],
        corridor=np.full(n, "A", dtype=object), direction=np.full(n, "E", dtype=object),
        window_start_ms=df.window_start_ms.to_numpy(np.int64), vehicle_count=count, flow_veh_h=count * 12.0,
        occupancy_pct=df.occupancy_pct.to_numpy(float), time_mean_speed_kmh=np.full(n, 80.0),
        space_mean_speed_kmh=np.full(n, 78.0), density_veh_km=count * 12.0 / 78.0, speed_band=np.full(n, 8, np.int8),
        n_readings=np.full(n, 10, np.int64), imputed=np.zeros(n, dtype=bool))


def feed(health: DetectorHealth, df: pd.DataFrame, net: Network) -> None:
    """One lane batch per window, in window order."""
    b = lane_batch(df.sort_values("w", kind="stable"), net)
    cuts = np.flatnonzero(np.diff(b.window_start_ms)) + 1
    for rows in np.split(np.arange(len(b)), cuts):
        health.update(FlowWindowBatch(level="lane", window_ms=b.window_ms, imputed=b.imputed[rows],
                                      **{c: getattr(b, c)[rows] for c in FlowWindowBatch.COLUMNS}))


def test_each_fault_gets_its_status_and_shares_match_pandas() -> None:
    net = network()
    df = histories()
    health = DetectorHealth(net, window_ms=WINDOW_MS)
    feed(health, df, net)
    report = health.status(DAY0_MS + N_WINDOWS * WINDOW_MS)
    assert dict(enumerate(report.status.tolist())) == EXPECTED
    assert report.bad.tolist() == [s != "good" for s in EXPECTED.values()]
    assert (report.expected_samples == N_WINDOWS).all()

    ref = df.assign(zero=df.occupancy_pct == 0, high=df.occupancy_pct > 70,
                    f0=(df.vehicle_count == 0) & (df.occupancy_pct > 0),
                    o0=(df.occupancy_pct == 0) & (df.vehicle_count > 0)).groupby("detector").agg(
        samples=("w", "size"), zero=("zero", "mean"), high=("high", "mean"), f0=("f0", "mean"), o0=("o0", "mean"))
    ref = ref.reindex(range(9))
    np.testing.assert_array_equal(report.samples, ref.samples.fillna(0).astype(int))
    np.testing.assert_allclose(report.zero_occ_share, ref.zero, equal_nan=True)
    np.testing.assert_allclose(report.high_occ_share, ref.high, equal_nan=True)
    np.testing.assert_allclose(report.zero_flow_occupied_share, ref.f0, equal_nan=True)
    np.testing.assert_allclose(report.zero_occ_flowing_share, ref.o0, equal_nan=True)
    assert report.counts()["card_off"] == 2 and sum(report.counts().values()) == 9


def test_faults_roll_out_of_the_horizon() -> None:
    net = network()
    day1 = histories(seed=1)
    day2 = histories(seed=2, day0_ms=DAY0_MS + 86_400_000)
    healthy = pd.concat([day2[day2.detector == 0].assign(detector=k) for k in range(9)], ignore_index=True)
    health = DetectorHealth(net, window_ms=WINDOW_MS)
    feed(health, day1, net)
    feed(health, healthy, net)
    report = health.status(DAY0_MS + 2 * N_WINDOWS * WINDOW_MS)
    assert report.status.tolist() == ["good"] * 9
    assert (report.samples == N_WINDOWS).all()


def test_constant_needs_four_unchanged_hours() -> None:
    net = network()
    df = histories(seed=3)
    df = df[df.detector == 0]
    stuck = df.copy()
    stuck.loc[(stuck.w >= 10) & (stuck.w < 10 + 47), "occupancy_pct"] = 7.0  # 47 windows: 3 h 55 min
    health = DetectorHealth(net, window_ms=WINDOW_MS)
    feed(health, stuck, net)
    report = health.status(DAY0_MS + N_WINDOWS * WINDOW_MS)
    assert report.status[0] == "good"
    stuck.loc[stuck.w == 57, "occupancy_pct"] = 7.0  # 48 windows: 4 h
    health = DetectorHealth(net, window_ms=WINDOW_MS)
    feed(health, stuck, net)
    assert health.status(DAY0_MS + N_WINDOWS * WINDOW_MS).status[0] == "constant"
    # still stuck now: the current run counts too
    health = DetectorHealth(net, window_ms=WINDOW_MS)
    now = df.copy()
    now.loc[now.w >= N_WINDOWS - 50, "occupancy_pct"] = 3.0
    feed(health, now, net)
    report = health.status(DAY0_MS + N_WINDOWS * WINDOW_MS)
    assert report.status[0] == "constant" and report.unchanged_occ_ms[0] == 50 * WINDOW_MS


def test_fresh_tracker_expects_samples_only_since_start_and_scales_with_window() -> None:
    net = network()
    df = histories(seed=4, n_windows=24)  # two hours
    health = DetectorHealth(net, window_ms=WINDOW_MS)
    feed(health, df, net)
    report = health.status(DAY0_MS + 24 * WINDOW_MS)
    assert (report.expected_samples == 24).all()
    assert report.status[0] == "good" and report.status[2] == "insufficient"
    one_min = DetectorHealth(net, window_ms=60_000)
    one_min.update(_relength(lane_batch(df[df.w == 0], net), 60_000))
    assert one_min.status(DAY0_MS + 86_400_000).expected_samples[0] == 1440


def _relength(b: FlowWindowBatch, window_ms: int) -> FlowWindowBatch:
    cols = {c: getattr(b, c) for c in FlowWindowBatch.COLUMNS}
    return FlowWindowBatch(level="lane", window_ms=window_ms, imputed=b.imputed, **cols)


def test_pems_active_hours_limit_expected_samples() -> None:
    net = network()
    df = histories(seed=5)
    health = DetectorHealth(net, window_ms=WINDOW_MS, active_hours=(5, 22))
    feed(health, df, net)
    report = health.status(DAY0_MS + N_WINDOWS * WINDOW_MS)
    assert (report.expected_samples == 17 * 12).all()
    assert report.samples[0] == 17 * 12
    assert report.status[0] == "good"


def test_imputed_rows_are_not_samples_and_wrong_window_is_rejected() -> None:
    net = network()
    df = histories(seed=6, n_windows=2)
    b = lane_batch(df, net)
    health = DetectorHealth(net, window_ms=WINDOW_MS)
    health.update(FlowWindowBatch(level="lane", window_ms=WINDOW_MS, imputed=np.ones(len(b), dtype=bool),
                                  **{c: getattr(b, c) for c in FlowWindowBatch.COLUMNS}))
    assert (health.status(DAY0_MS + 2 * WINDOW_MS).status == "no_data").all()
    with pytest.raises(ValueError):
        health.update(_relength(b, 60_000))


def test_snapshot_restore_gives_the_same_report() -> None:
    net = network()
    df = histories(seed=7)
    a = DetectorHealth(net, window_ms=WINDOW_MS)
    feed(a, df[df.w < 150], net)
    b = DetectorHealth(net, window_ms=WINDOW_MS, resume_state=a.snapshot())
    for h in (a, b):
        feed(h, df[df.w >= 150], net)
    ra, rb = (h.status(DAY0_MS + N_WINDOWS * WINDOW_MS) for h in (a, b))
    assert ra.status.tolist() == rb.status.tolist() == list(EXPECTED.values())
    for name in ("samples", "zero_occ_share", "high_occ_share", "unchanged_occ_ms"):
        np.testing.assert_array_equal(getattr(ra, name), getattr(rb, name))
    assert set(STATUSES) >= set(ra.status)
