"""Roadway/route travel times from hand-computed values; usual travel time against pandas ewm."""
from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest

from models.network import Network
from models.records import FlowWindowBatch
from stream.core.travel_time import (
    WEEK_MS,
    UsualTravelTime,
    free_flow_travel_time_s,
    roadway_travel_time_s,
    route_travel_time_s,
)


def network() -> Network:
    """A-E: A0 (km 0) -> A1 (km 2) -> A2 (km 3.5) at 90 km/h; B-W: B0 (km 0) -> B1 (km 1) at 60 km/h."""
    return Network.from_dict({"name": "t", "roadways": [
        {"corridor": "A", "direction": "E", "speed_limit_kmh": 90.0,
         "stations": [{"id": "A0", "km": 0.0, "lanes": 2}, {"id": "A1", "km": 2.0, "lanes": 2},
                      {"id": "A2", "km": 3.5, "lanes": 2}]},
        {"corridor": "B", "direction": "W", "speed_limit_kmh": 60.0,
         "stations": [{"id": "B0", "km": 0.0, "lanes": 1}, {"id": "B1", "km": 1.0, "lanes": 1}]}]})


def segments(rows: list[tuple[str, int, float]], window_ms: int = 60_000) -> FlowWindowBatch:
    """rows: segment id, window start, travel time s."""
    n = len(rows)
    sid, start, tt = (list(c) for c in zip(*rows, strict=True)) if rows else ([], [], [])
    nan = np.full(n, np.nan)
    return FlowWindowBatch(
        level="segment", window_ms=window_ms, entity_id=np.array(sid, dtype=object),
        corridor=np.array([s[0] for s in sid], dtype=object), direction=np.full(n, "E", dtype=object),
        window_start_ms=np.array(start, dtype=np.int64), vehicle_count=np.zeros(n, np.int64), flow_veh_h=nan,
        occupancy_pct=nan, time_mean_speed_kmh=nan, space_mean_speed_kmh=nan, density_veh_km=nan,
        speed_band=np.zeros(n, np.int8), n_readings=np.zeros(n, np.int64), travel_time_s=np.array(tt, dtype=float),
        imputed=np.zeros(n, dtype=bool))


def test_free_flow_times() -> None:
    np.testing.assert_allclose(free_flow_travel_time_s(network()), [80.0, 60.0, 60.0])


def test_roadway_travel_time_fills_missing_segments_with_free_flow() -> None:
    net = network()
    batch = segments([("A0>A1", 0, 100.0)])
    assert roadway_travel_time_s(batch, net) == {"A-E": pytest.approx(160.0)}  # 100 + 1.5 km at 90 km/h
    batch = segments([("A0>A1", 0, 100.0), ("A1>A2", 0, np.nan), ("B0>B1", 0, 240.0)])
    assert roadway_travel_time_s(batch, net) == {"A-E": pytest.approx(160.0), "B-W": pytest.approx(240.0)}
    assert roadway_travel_time_s(segments([]), net) == {}


def test_latest_window_wins() -> None:
    net = network()
    batch = segments([("A0>A1", 60_000, 130.0), ("A0>A1", 0, 100.0), ("A1>A2", 0, 90.0)])
    assert roadway_travel_time_s(batch, net)["A-E"] == pytest.approx(220.0)
    assert route_travel_time_s(["A0>A1"], batch, net) == pytest.approx(130.0)
    assert route_travel_time_s(["A1>A2", "B0>B1"], batch, net) == pytest.approx(150.0)
    with pytest.raises(ValueError):
        route_travel_time_s(["A0>B1"], batch, net)


def weekly_samples(seed: int, n_weeks: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t0 = 1_699_920_000_000
    starts = t0 + np.arange(0, n_weeks * WEEK_MS, 300_000)[::97]  # 5-min windows, sparse over several weeks
    rows = [(seg, int(t), float(base + rng.normal(0, 10)))
            for t in starts for seg, base in (("A0>A1", 100.0), ("B0>B1", 250.0))]
    return pd.DataFrame(rows, columns=["segment", "window_start_ms", "travel_time_s"])


def test_usual_travel_time_is_an_ewma_per_time_of_week_slot() -> None:
    net = network()
    df = weekly_samples(0, 4)
    usual = UsualTravelTime(net, slot_ms=3_600_000, alpha=0.3)
    for _, g in df.groupby("window_start_ms", sort=True):
        usual.update(segments(list(g.itertuples(index=False, name=None)), window_ms=300_000))
    df["slot"] = (df.window_start_ms % WEEK_MS) // 3_600_000
    ref = df.groupby(["segment", "slot"]).travel_time_s.apply(
        lambda s: s.ewm(alpha=0.3, adjust=False).mean().iloc[-1])
    assert len(ref) > 100
    for (seg, slot), value in ref.items():
        at_ms = 1_699_920_000_000 + 3 * WEEK_MS + int(slot) * 3_600_000 - (1_699_920_000_000 % WEEK_MS)
        assert usual.usual_s(seg, at_ms) == pytest.approx(value, rel=1e-5)
    assert math.isnan(usual.usual_s("A1>A2", 0))  # no history
    assert math.isnan(usual.usual_s("nope", 0))
    got = usual.usual_s(["A0>A1", "A1>A2"], int(df.window_start_ms.iloc[-1]))
    assert got.shape == (2,) and np.isfinite(got[0]) and np.isnan(got[1])


def test_usual_samples_of_one_batch_apply_in_window_order() -> None:
    usual = UsualTravelTime(network(), slot_ms=900_000, alpha=0.5)
    usual.update(segments([("A0>A1", 120_000, 200.0), ("A0>A1", 0, 100.0), ("A0>A1", 60_000, 300.0)]))
    assert usual.usual_s("A0>A1", 0) == pytest.approx(((100 + 300) / 2 + 200) / 2)


def test_usual_snapshot_restore() -> None:
    net = network()
    df = weekly_samples(1, 2)
    half = len(df) // 2
    a = UsualTravelTime(net, slot_ms=3_600_000)
    a.update(segments(list(df.iloc[:half].itertuples(index=False, name=None))))
    b = UsualTravelTime(net, slot_ms=3_600_000, resume_state=pickle.loads(pickle.dumps(a.snapshot())))
    rest = segments(list(df.iloc[half:].itertuples(index=False, name=None)))
    a.update(rest)
    b.update(rest)
    for t in df.window_start_ms.iloc[::7]:
        np.testing.assert_array_equal(a.usual_s(["A0>A1", "B0>B1"], int(t)), b.usual_s(["A0>A1", "B0>B1"], int(t)))
    with pytest.raises(ValueError):
        UsualTravelTime(net, slot_ms=900_000, resume_state=a.snapshot())
