"""LocalStore: load() returns what was written, writes are idempotent upserts, schema as InfluxDB's."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.records import Alert, DeadLetter, FlowWindowBatch, Incident
from stream.sinks.sqlite_store import MEASUREMENTS, LocalStore, dead_letter_seq, window_tag

T0 = 1_709_251_200_000


def _flow(n: int = 200, level: str = "segment", window_ms: int = 60_000, seed: int = 0,
          t0: int = T0) -> FlowWindowBatch:
    rng = np.random.default_rng(seed)
    ents = np.array([f"S{i % 20:02d}>S{i % 20 + 1:02d}" for i in range(n)], dtype=object)
    speed = rng.uniform(5, 100, n)
    speed[::7] = np.nan
    return FlowWindowBatch(
        level=level, window_ms=window_ms, entity_id=ents, corridor=np.array(["PIE"] * n, dtype=object),
        direction=np.array(["E"] * n, dtype=object), window_start_ms=t0 + (np.arange(n) // 20) * window_ms,
        vehicle_count=rng.integers(0, 100, n), flow_veh_h=rng.uniform(0, 2000, n),
        occupancy_pct=rng.uniform(0, 100, n), time_mean_speed_kmh=speed, space_mean_speed_kmh=speed * 0.95,
        density_veh_km=rng.uniform(0, 150, n), speed_band=rng.integers(0, 9, n).astype(np.int8),
        n_readings=rng.integers(1, 10, n), travel_time_s=rng.uniform(10, 100, n) if level == "segment" else np.empty(0),
        imputed=rng.random(n) < 0.1 if level == "segment" else np.empty(0, dtype=bool))


def _expected(batch: FlowWindowBatch) -> pd.DataFrame:
    df = pd.DataFrame(batch.to_rows())
    df["window"] = window_tag(batch.window_ms)
    if "travel_time_s" not in df:
        df["travel_time_s"] = np.nan
    if "imputed" not in df:
        df["imputed"] = False
    return df


def _compare(got: pd.DataFrame, want: pd.DataFrame, key: list[str]) -> None:
    cols = [c for c in want.columns if c in got.columns]
    g = got[cols].sort_values(key).reset_index(drop=True)
    w = want[cols].sort_values(key).reset_index(drop=True)
    g, w = (f.astype(object).where(f.notna(), None) for f in (g, w))  # NaN, NA and None all mean "no value"
    pd.testing.assert_frame_equal(g, w, check_dtype=False)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    s = LocalStore(tmp_path / "roadpulse.sqlite")
    yield s
    s.close()


def test_flow_round_trips_and_reprocessing_replaces(store: LocalStore) -> None:
    seg = _flow()
    lane = _flow(60, level="lane", window_ms=30_000, seed=1)
    assert store.write_flow(seg) == len(seg)
    store.write_flow(lane)
    got = store.load("flow", level="segment")
    assert len(got) == len(seg)
    assert str(got["time"].dt.tz) == "UTC"
    assert (got["time"] == pd.to_datetime(got["window_start_ms"], unit="ms", utc=True)).all()
    _compare(got, _expected(seg), ["entity_id", "window_start_ms"])
    _compare(store.load("flow", window="30s"), _expected(lane), ["entity_id", "window_start_ms"])
    # reprocess the segment windows with new numbers: replaced, not duplicated
    again = _flow(seed=9)
    store.write_flow(again)
    store.write_flow(again)
    got = store.load("flow", level="segment", window="1m")
    assert len(got) == len(seg)
    _compare(got, _expected(again), ["entity_id", "window_start_ms"])
    assert store.query("SELECT COUNT(*) AS n FROM flow")["n"][0] == len(seg) + len(lane)


def test_load_filters_by_time_range_and_tags(store: LocalStore) -> None:
    store.write_flow(_flow())
    got = store.load("flow", start_ms=T0 + 60_000, stop_ms=T0 + 180_000, entity_id="S03>S04")
    assert got["window_start_ms"].tolist() == [T0 + 60_000, T0 + 120_000]
    assert got["time"].is_monotonic_increasing
    with pytest.raises(ValueError, match="no tag"):
        store.load("flow", speed=3)
    with pytest.raises(ValueError, match="unknown measurement"):
        store.load("nope")


def test_incidents_alerts_dead_letters_round_trip_and_upsert(store: LocalStore) -> None:
    inc = [Incident("I1", "PIE", "E", "A>B", 3.2, T0, T0, "open", 2, "california8", 0.8),
           Incident("I1", "PIE", "E", "A>B", 3.2, T0, T0 + 60_000, "cleared", 2, "california8", 0.9, T0 + 60_000)]
    store.write_incidents(inc)
    store.write_incidents(inc)
    got = store.load("incident")
    assert len(got) == 2
    _compare(got, pd.DataFrame([i.to_dict() for i in inc]), ["event_ms"])
    assert got["cleared_ms"].isna().tolist() == [True, False]

    alerts = [Alert("a1", "sub1", "speed_band_drop", "A>B", "PIE", "E", T0, "slow", 7, 3, None, 120.0, 60.0),
              Alert("a2", "sub1", "incident_open", "A>B", "PIE", "E", T0 + 1, "incident", incident_id="I1")]
    store.write_alerts(alerts)
    store.write_alerts(alerts)
    _compare(store.load("alert", kind="incident_open"), pd.DataFrame([alerts[1].to_dict()]), ["at_ms"])
    assert len(store.load("alert")) == 2

    payload = bytes(range(256))
    dls = [DeadLetter("malformed_bytes", "cannot decode", "readings", "PIE-E-000", payload, T0),
           DeadLetter("negative_count", "vehicle_count=-1 < 0", "readings", None, b'{"n":-1}', T0, 3),
           DeadLetter("negative_count", "vehicle_count=-2 < 0", "readings", None, b'{"n":-2}', T0, 4)]
    store.write_dead_letters(dls)
    store.write_dead_letters(dls[:1])
    got = store.load("dead_letter")
    assert len(got) == 3  # same ms, different letters: kept apart; the repeat: one row
    assert set(got["seq"]) == {dead_letter_seq(d) for d in dls}
    by_seq = {dead_letter_seq(d): d for d in dls}
    for r in got.itertuples():
        d = by_seq[r.seq]
        assert (r.reason, r.detail, r.payload) == (d.reason, d.detail, d.payload)
        assert (pd.isna(r.key) and d.key is None) or r.key == d.key
        assert (pd.isna(r.row) and d.row is None) or r.row == d.row


def test_health_and_pipeline_fields_merge_like_influx(store: LocalStore) -> None:
    health = pd.DataFrame({"detector_id": ["D1", "D2"], "corridor": ["PIE", "PIE"], "direction": ["E", "E"],
                           "status": ["ok", "stuck"], "at_ms": [T0, T0], "samples": [30, 28],
                           "zero_occ_share": [0.1, 1.0]})
    assert store.write_health(health) == 2
    store.write_health([{"detector_id": "D1", "corridor": "PIE", "direction": "E", "status": "ok", "at_ms": T0,
                         "high_occ_share": 0.0}])
    got = store.load("detector_health", detector_id="D1")
    assert len(got) == 1
    assert got[["samples", "zero_occ_share", "high_occ_share"]].iloc[0].tolist() == [30, 0.1, 0.0]
    store.write_pipeline("validator", T0, {"readings_total": 10, "readings_per_s": 5.5})
    store.write_pipeline("validator", T0, {"readings_total": 12})
    store.write_pipeline("validator", T0 + 1000, {"lag_ms": 40.0})
    got = store.load("pipeline", component="validator")
    assert got["readings_total"].iloc[0] == 12 and pd.isna(got["readings_total"].iloc[1])
    assert got["readings_per_s"].iloc[0] == 5.5 and got["lag_ms"].iloc[1] == 40.0
    with pytest.raises(ValueError, match="identifier"):
        store.write_pipeline("validator", T0, {"bad name; drop table flow": 1})


def test_data_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with LocalStore(path) as s:
        s.write_flow(_flow(40))
        s.write_pipeline("x", T0, {"readings_total": 1})
    with LocalStore(path) as s:
        assert len(s.load("flow")) == 40
        assert s.load("pipeline")["readings_total"].tolist() == [1]


def test_schema_matches_the_contract() -> None:
    assert MEASUREMENTS["flow"].tags == ("level", "window", "entity_id", "corridor", "direction")
    assert MEASUREMENTS["dead_letter"].key == ("at_ms", "reason", "source", "seq")
    assert [window_tag(ms) for ms in (30_000, 60_000, 300_000, 3_600_000, 1500)] == ["30s", "1m", "5m", "1h",
                                                                                      "1500ms"]


def _camera_obs(minute: int, stopped: bool = False, speed: float = 88.5):
    from models.camera import CameraObservation

    return CameraObservation("CAM-PIE-E-012", "PIE-E-012", "PIE-E-012>PIE-E-013", T0 + minute * 60_000, 60_000,
                             (20, 30, 10), speed, 12.5 if stopped else 0.0, 7.25, stopped,
                             T0 + minute * 60_000 + 5_000 if stopped else None, 80)


def test_camera_observations_round_trip_and_rewriting_replaces(store: LocalStore) -> None:
    assert MEASUREMENTS["camera"].tags == ("camera_id", "station_id", "segment_id")
    assert store.write_cameras([_camera_obs(0), _camera_obs(1, stopped=True, speed=float("nan"))]) == 2
    store.write_cameras([_camera_obs(0, speed=70.0)])  # the same point again: replaced, not added
    df = store.load("camera", camera_id="CAM-PIE-E-012")
    assert df["interval_start_ms"].tolist() == [T0, T0 + 60_000]
    assert df["vehicle_count"].tolist() == [60, 60] and df["frames"].tolist() == [80, 80]
    assert df["stopped_vehicle"].tolist() == [False, True] and df["stopped_vehicle"].dtype == bool
    assert df["mean_speed_kmh"].iloc[0] == 70.0 and np.isnan(df["mean_speed_kmh"].iloc[1])
    assert df["queue_length_m"].tolist() == [0.0, 12.5] and df["occupancy_pct"].tolist() == [7.25, 7.25]
    assert (df["segment_id"] == "PIE-E-012>PIE-E-013").all() and str(df["time"].dt.tz) == "UTC"
