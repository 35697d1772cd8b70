"""Replay: a written day round-trips through CSV and Parquet, and publishing is paced and keyed per station."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ingest.bus import MemoryBus
from ingest.replay import ReplayFormatError, ReplaySource, station_batches, write_readings
from ingest.validate import ReadingValidator
from models.records import ReadingBatch
from models.singapore import singapore_network
from models.wire import decode_reading_columns

NET = singapore_network(12)
DAY_START = 1_709_251_200_000  # 2024-03-01T00:00:00Z
INTERVAL = 300_000


def _day(n_intervals: int = 288, unknown: bool = True) -> list[ReadingBatch]:
    rng = np.random.default_rng(3)
    ids = list(NET.detector_ids) + (["ghost-L1"] if unknown else [])
    out = []
    for k in range(n_intervals):
        n = len(ids)
        count = rng.integers(0, 40, n)
        speed = np.round(rng.uniform(20, 100, n), 3)
        speed[count == 0] = np.nan
        out.append(ReadingBatch.from_columns(
            detector_id=ids, interval_start_ms=np.full(n, DAY_START + k * INTERVAL), interval_ms=np.full(n, INTERVAL),
            vehicle_count=count, occupancy_pct=rng.uniform(0, 100, n), speed_kmh=speed))
    return out


def _assert_same(a: ReadingBatch, b: ReadingBatch) -> None:
    for c in ReadingBatch.COLUMNS:
        np.testing.assert_array_equal(getattr(a, c), getattr(b, c), err_msg=c)


@pytest.mark.parametrize("name,time_format", [("day.csv", "iso"), ("day.csv", "ms"), ("day.parquet", "iso")])
def test_written_day_round_trips(tmp_path: Path, name: str, time_format: str) -> None:
    day = _day()
    path = tmp_path / name
    assert write_readings(day, path, time_format=time_format) == sum(len(b) for b in day)
    got = list(ReplaySource(path, NET, chunk_rows=1000))  # chunks cut through intervals
    assert len(got) == len(day)
    for a, b in zip(got, day, strict=True):
        _assert_same(a, b)


def test_hand_written_csv_with_offsets_interval_s_and_blank_speed(tmp_path: Path) -> None:
    d0, d1 = NET.detector_ids[0], NET.detector_ids[1]
    path = tmp_path / "recorded.csv"
    path.write_text(
        "detector_id,interval_start,interval_s,vehicle_count,occupancy_pct,speed_kmh,extra\n"
        f"{d0},2024-03-01T08:00:00+08:00,30,5,12.5,81.2,x\n"
        f"{d1},2024-03-01T00:00:00Z,30,0,0,,y\n"
        f"{d0},2024-03-01T08:00:30+08:00,30,7,14,79,z\n")
    got = list(ReplaySource(path, NET))
    assert [len(b) for b in got] == [2, 1]
    assert got[0].interval_start_ms.tolist() == [DAY_START, DAY_START]
    assert got[0].interval_ms.tolist() == [30_000, 30_000]
    assert math.isnan(got[0].speed_kmh[1]) and got[0].speed_kmh[0] == 81.2
    assert got[1].interval_start_ms.tolist() == [DAY_START + 30_000]


def test_locally_shuffled_file_comes_out_sorted_and_late_rows_are_counted(tmp_path: Path) -> None:
    day = _day(6, unknown=False)
    t = [DAY_START + k * INTERVAL for k in range(6)]
    path = tmp_path / "shuffled.parquet"
    write_readings([day[0], day[2], day[1], day[3]], path)
    src = ReplaySource(path, NET, chunk_rows=len(day[0]))
    assert [int(b.interval_start_ms[0]) for b in src] == t[:4]  # the carried interval absorbs the swap
    assert src.out_of_order_rows == 0
    write_readings([day[0], day[1], day[2], day[0], day[3]], path)
    src = ReplaySource(path, NET, chunk_rows=len(day[0]))
    assert [int(b.interval_start_ms[0]) for b in src] == [t[0], t[1], t[0], t[2], t[3]]
    assert src.out_of_order_rows == len(day[0])


@pytest.mark.parametrize("content,needle", [
    ("detector_id,interval_start,vehicle_count,occupancy_pct,speed_kmh\nA,0,1,1,1\n", "interval_s or interval_ms"),
    ("detector_id,interval_start,interval_s,vehicle_count,occupancy_pct,speed_kmh\nA,2024-03-01T00:00:00,30,1,1,1\n",
     "no UTC offset"),
    ("detector_id,interval_start,interval_s,vehicle_count,occupancy_pct,speed_kmh\nA,0,30,lots,1,1\n", "chunk 0.*vehicle_count"),
])
def test_files_off_the_layout_are_refused_clearly(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ReplayFormatError, match=needle):
        list(ReplaySource(path, NET))


def test_publish_keys_per_station_paces_time_and_keeps_unknown_rows(tmp_path: Path) -> None:
    day = _day(5)
    path = tmp_path / "day.parquet"
    write_readings(day, path)
    now = [100.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    bus = MemoryBus(partitions=3)
    src = ReplaySource(path, NET, speedup=60.0, sleep_s=sleep, clock_s=lambda: now[0])
    stats = src.publish(bus.producer(), "readings")
    # 5-minute intervals at 60x: 5 s of wall time between intervals, 20 s in all
    assert sleeps == pytest.approx([5.0] * 4)
    n_stations = len(NET.stations)
    assert stats == {"intervals": 5, "messages": 5 * (n_stations + 1), "readings": sum(len(b) for b in day),
                     "unknown_detector_rows": 5}
    msgs = bus.read_all("readings")
    for m in msgs:
        cols = decode_reading_columns(m.value)
        if m.key is None:
            assert cols["detector_id"] == ["ghost-L1"]
        else:
            assert cols["detector_id"] == list(NET.station_by_id[m.key_str].detector_ids)
            assert m.timestamp_ms == cols["interval_start_ms"][0] + INTERVAL
    v = ReadingValidator(NET, max_past_ms=10**13)
    good, _, dead = v.validate_many([m.value for m in msgs], [m.key for m in msgs], source="readings",
                                    now_ms=DAY_START + 86_400_000)
    assert len(good) == 5 * NET.n_detectors
    assert [d.reason for d in dead] == ["unknown_detector"] * 5


def test_station_batches_groups_lanes_in_network_order() -> None:
    b = _day(1)[0].take(np.arange(NET.n_detectors + 1)[::-1])
    groups = station_batches(b, NET)
    assert [sid for sid, _ in groups] == [None] + [s.station_id for s in NET.stations]
    for sid, rows in groups[1:]:
        assert rows.detector_id.tolist() == list(NET.station_by_id[sid].detector_ids)
