"""ReadingValidator: worked cases for each check, the dedupe horizon, and a large mixed batch."""
from __future__ import annotations

import math

import numpy as np
import orjson

from ingest.validate import ReadingValidator, SeenReadings, repeated_rows
from models.records import ReadingBatch
from models.singapore import singapore_network
from models.wire import encode_readings

NET = singapore_network(40)
NOW = 1_700_000_000_000


def _batch(ids: list[str], t: list[int], **overrides: list) -> ReadingBatch:
    n = len(ids)
    cols = dict(detector_id=ids, interval_start_ms=t, interval_ms=[20_000] * n, vehicle_count=[5] * n,
                occupancy_pct=[10.0] * n, speed_kmh=[80.0] * n)
    cols.update(overrides)
    return ReadingBatch.from_columns(**cols)


def test_good_station_message_is_accepted_unchanged_in_both_formats() -> None:
    station = NET.stations[3]
    b = _batch(list(station.detector_ids), [NOW - 20_000] * station.lanes,
               speed_kmh=[80.0, math.nan] + [60.0] * (station.lanes - 2))
    for fmt in ("json", "msgpack"):
        v = ReadingValidator(NET)
        good, numbers, dead = v.validate(encode_readings(b, fmt), key=station.station_id, source="readings",
                                         now_ms=NOW)
        assert dead == []
        for c in ReadingBatch.COLUMNS:
            np.testing.assert_array_equal(getattr(good, c), getattr(b, c))
        assert numbers.tolist() == NET.detector_numbers(station.detector_ids).tolist()
        assert v.counts()["accepted"] == station.lanes


def test_each_check_in_the_documented_order() -> None:
    s0, s1 = NET.stations[0], NET.stations[1]
    ids = [s0.detector_ids[0], "ghost", s1.detector_ids[0], s0.detector_ids[1], s0.detector_ids[2],
           s0.detector_ids[3], s0.detector_ids[0], s0.detector_ids[1], s0.detector_ids[2], s0.detector_ids[3]]
    t = [NOW] * 10
    t[4] = NOW + 5 * 60_000 + 1
    t[5] = NOW - 7 * 86_400_000 - 1
    t[6] = NOW - 20_000
    t[7] = t[8] = t[9] = NOW - 40_000
    b = _batch(ids, t, interval_ms=[20_000, 20_000, 20_000, 0, 20_000, 20_000, 20_000, 20_000, 20_000, 20_000],
               vehicle_count=[1, 1, 1, 1, 1, 1, -1, 1, 1, 1],
               occupancy_pct=[1.0] * 7 + [101.0, 1.0, 1.0],
               speed_kmh=[50.0] * 8 + [math.inf, 50.0])
    v = ReadingValidator(NET)
    good, numbers, dead = v.validate(encode_readings(b, "msgpack"), key=s0.station_id, source="r", now_ms=NOW)
    assert [(d.reason, d.row) for d in dead] == [
        ("unknown_detector", 1), ("key_mismatch", 2), ("bad_interval", 3), ("future_timestamp", 4),
        ("stale_timestamp", 5), ("negative_count", 6), ("occupancy_out_of_range", 7), ("speed_out_of_range", 8)]
    assert len(good) == 2 and good.detector_id.tolist() == [ids[0], ids[9]]
    assert all(d.key == s0.station_id and d.at_ms == NOW for d in dead)
    assert orjson.loads(dead[0].payload)["detector_id"] == "ghost"
    # the same good rows again are duplicates; unknown key skips the station check
    _, _, dead2 = v.validate(encode_readings(b.take(np.array([0, 2])), "json"), key="elsewhere", source="r",
                             now_ms=NOW)
    assert [(d.reason, d.row) for d in dead2] == [("duplicate", 0)]
    counts = v.counts()
    assert counts["accepted"] == 3 and counts["duplicate"] == 1 and sum(counts.values()) == 12


def test_duplicates_are_forgotten_after_the_horizon() -> None:
    det = NET.detector_ids[0]
    v = ReadingValidator(NET, dedupe_horizon_ms=600_000)
    msg = encode_readings(_batch([det], [NOW]))
    assert len(v.validate(msg, key=None, source="r", now_ms=NOW)[0]) == 1
    assert v.validate(msg, key=None, source="r", now_ms=NOW + 599_999)[2][0].reason == "duplicate"
    # beyond the horizon the reading cannot be recognised any more (downstream windows call it late)
    assert len(v.validate(msg, key=None, source="r", now_ms=NOW + 600_001)[0]) == 1
    assert len(v._seen) <= 1


def test_large_mixed_batch_matches_row_by_row_expectations() -> None:
    rng = np.random.default_rng(7)
    n = 50_000
    ids = NET.detector_ids[rng.integers(0, NET.n_detectors, n)].tolist()
    t = (NOW - 20_000 * rng.integers(0, 150, n)).tolist()
    occ = rng.uniform(0, 100, n)
    bad_occ = rng.random(n) < 0.01
    occ[bad_occ] = 150.0
    b = _batch(ids, t, occupancy_pct=occ, vehicle_count=rng.integers(0, 30, n), speed_kmh=rng.uniform(0, 120, n))
    v = ReadingValidator(NET)
    good, numbers, dead = v.validate(encode_readings(b), key=None, source="r", now_ms=NOW)
    assert len(good) + len(dead) == n
    seen: set[tuple[str, int]] = set()
    expected = []
    for i in range(n):
        if bad_occ[i]:
            expected.append((i, "occupancy_out_of_range"))
        elif (ids[i], t[i]) in seen:
            expected.append((i, "duplicate"))
        else:
            seen.add((ids[i], t[i]))
    assert [(d.row, d.reason) for d in dead] == expected
    assert len(good) == len(seen)
    np.testing.assert_array_equal(NET.detector_ids[numbers], good.detector_id)


def test_validate_many_equals_one_by_one_and_accepts_bytes_keys() -> None:
    st = NET.stations[2]
    msgs = [encode_readings(_batch(list(st.detector_ids), [NOW - k * 20_000] * st.lanes)) for k in range(5)]
    msgs.append(msgs[0])  # a redelivered message
    msgs.append(b"\xc1")  # never-used msgpack byte
    a, b = ReadingValidator(NET), ReadingValidator(NET)
    ga, na, da = a.validate_many(msgs, [st.station_id.encode()] * len(msgs), source="r", now_ms=NOW)
    parts = [b.validate(m, key=st.station_id, source="r", now_ms=NOW) for m in msgs]
    assert len(ga) == sum(len(p[0]) for p in parts) == 5 * st.lanes
    np.testing.assert_array_equal(na, np.concatenate([p[1] for p in parts]))
    assert [(d.reason, d.row, d.key) for d in da] == [(d.reason, d.row, d.key) for p in parts for d in p[2]]
    assert [d.reason for d in da] == ["duplicate"] * st.lanes + ["malformed_bytes"]  # message order
    assert a.counts() == b.counts()


def test_non_bytes_payload_is_a_dead_letter_not_an_exception() -> None:
    v = ReadingValidator(NET)
    _, _, dead = v.validate("a string", key=None, source="r", now_ms=NOW)  # type: ignore[arg-type]
    assert dead[0].reason == "not_bytes" and isinstance(dead[0].payload, bytes)


def test_repeated_rows_and_seen_readings() -> None:
    t = np.array([5, 5, 6, 5, 6, 7], dtype=np.int64)
    det = np.array([1, 2, 1, 1, 1, 1], dtype=np.int64)
    assert repeated_rows(t, det, 3).tolist() == [False, False, False, True, True, False]
    huge = np.array([-(2**62), 2**62, -(2**62)], dtype=np.int64)
    assert repeated_rows(huge, np.zeros(3, dtype=np.int64), 10).tolist() == [False, False, True]
    seen = SeenReadings(n_detectors=10, horizon_ms=800)
    for k in range(40):  # many small inserts merge into a few runs
        seen.add(np.array([k * 10], dtype=np.int64), np.array([k % 10], dtype=np.int64))
    assert len(seen) == 40
    assert sum(len(runs) for runs in seen.buckets.values()) <= 40
    q_t = np.array([0, 10, 10, 390, 400], dtype=np.int64)
    q_d = np.array([0, 1, 2, 9, 0], dtype=np.int64)
    assert seen.contains(q_t, q_d).tolist() == [True, True, False, True, False]
    seen.evict_before(200)
    assert seen.contains(q_t, q_d).tolist() == [False, False, False, True, False]
