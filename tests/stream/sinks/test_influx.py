"""InfluxSink: line protocol, spool, and round trips through a real InfluxDB.

The round-trip tests need the InfluxDB started by the project's script
(`scripts/services/influxdb.sh start`, or `scripts/services/up.sh`): they FAIL,
never skip, when it cannot be reached. Connection settings come from the
environment (INFLUX_URL, INFLUX_TOKEN, INFLUX_ORG), else from
$ROADPULSE_RUN/services.env or $ROADPULSE_RUN/influxdb/client.env. Each test
writes to its own fresh bucket (a 1.x database, or a 2.x bucket) and drops it.
"""
from __future__ import annotations

import json
import re
import socket
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest

from models.records import Alert, DeadLetter, FlowWindowBatch, Incident
from stream.sinks.influx import (
    InfluxSink,
    camera_line,
    dead_letter_lines,
    escape_tag,
    flow_lines,
    make_line,
    window_label,
)
from stream.sinks.spool import Spool, read_lines
from stream.sinks.sqlite_store import LocalStore

T0_MS = 1_772_380_800_000  # 2026-03-02T00:00:00+08:00


# ---- data -------------------------------------------------------------------------
def segment_batch(n: int = 6, start_ms: int = T0_MS) -> FlowWindowBatch:
    """Segment windows with a NaN speed row (no vehicles) and an imputed row."""
    speed = np.linspace(20.0, 95.0, n)
    speed[1] = np.nan
    flow = np.arange(n, dtype=np.float64) * 120.0
    return FlowWindowBatch(
        level="segment", window_ms=60_000,
        entity_id=np.array([f"PIE-E-{i:02d}>PIE-E-{i + 1:02d}" for i in range(n)], dtype=object),
        corridor=np.array(["PIE"] * n, dtype=object), direction=np.array(["E"] * n, dtype=object),
        window_start_ms=np.full(n, start_ms, dtype=np.int64), vehicle_count=np.arange(n, dtype=np.int64) * 2,
        flow_veh_h=flow, occupancy_pct=np.linspace(1.0, 30.0, n), time_mean_speed_kmh=speed + 1.0 / 3.0,
        space_mean_speed_kmh=speed, density_veh_km=flow / speed,
        speed_band=np.where(np.isnan(speed), 0, np.minimum(speed // 10 + 1, 8)).astype(np.int8),
        n_readings=np.full(n, 8, dtype=np.int64), travel_time_s=1.2 / speed * 3600,
        imputed=np.arange(n) == 3)


def incidents() -> list[Incident]:
    return [Incident("inc-1", "PIE", "E", "PIE-E-03>PIE-E-04", 12.5, T0_MS, T0_MS + 60_000, "open", 2, "california8", 0.8),
            Incident("inc-1", "PIE", "E", "PIE-E-03>PIE-E-04", 12.5, T0_MS, T0_MS + 900_000, "cleared", 2, "california8",
                     0.8, cleared_ms=T0_MS + 900_000)]


def alerts() -> list[Alert]:
    return [Alert("al-1", "sub 1", "incident_open", "PIE-E-03>PIE-E-04", "PIE", "E", T0_MS + 61_000,
                  'Incident "ahead"\non PIE', incident_id="inc-1"),
            Alert("al-2", "sub-2", "speed_band_drop", "PIE-E-01>PIE-E-02", "PIE", "E", T0_MS + 62_000,
                  "slow", speed_band_from=7, speed_band_to=3, travel_time_now_s=300.5, travel_time_usual_s=120.0)]


def dead_letters(at_ms: int = T0_MS + 5_000) -> list[DeadLetter]:
    """Five letters in ONE millisecond, two of them identical (a message delivered twice: one letter, as in sqlite)."""
    letters = [DeadLetter("bad_json", "not JSON", "readings", f"S{i}", b"\xff{oops" + bytes([i]), at_ms, None)
               for i in range(3)]
    twin = DeadLetter("occupancy_out_of_range", "occupancy 130 > 100", "readings", "S9", b'{"occ":130}', at_ms, 2)
    return letters + [twin, twin]


# ---- offline: line protocol and spool ------------------------------------------------
def test_flow_lines_leave_out_nan_fields_and_escape_tags():
    lines = flow_lines(segment_batch())
    assert len(lines) == 6
    nan_row = lines[1]
    assert "space_mean_speed_kmh" not in nan_row and "time_mean_speed_kmh" not in nan_row
    assert "density_veh_km" not in nan_row and "travel_time_s" not in nan_row
    assert ",flow_veh_h=120," in nan_row and "speed_band=0i" in nan_row  # no "i": a float field
    assert lines[3].split(" ")[1].endswith("imputed=true")
    assert lines[0].startswith("flow,corridor=PIE,direction=E,entity_id=PIE-E-00>PIE-E-01,level=segment,window=1m ")
    assert lines[0].endswith(f" {T0_MS}")
    assert escape_tag("a b,c=d") == r"a\ b\,c\=d"
    assert make_line("m", {"t": ""}, {"x": float("nan")}, 1) is None  # nothing storable: no point at all
    assert [window_label(w) for w in (30_000, 60_000, 300_000, 3_600_000, 1500)] == ["30s", "1m", "5m", "1h", "1500ms"]


def _parse_line(line: str) -> tuple[str, dict[str, str], dict[str, object], int]:
    """A tiny line-protocol reader for numeric/bool fields (enough for flow points)."""
    head, fields, ts = re.split(r"(?<!\\) ", line)
    meas, *tags = re.split(r"(?<!\\),", head)
    tag_map = dict(re.split(r"(?<!\\)=", t, maxsplit=1) for t in tags)
    values: dict[str, object] = {}
    for f in fields.split(","):
        k, v = f.split("=")
        values[k] = int(v[:-1]) if v.endswith("i") else {"true": True, "false": False}.get(v, None)
        if values[k] is None:
            values[k] = float(v)
    return meas, tag_map, values, int(ts)


def test_flow_lines_match_the_row_by_row_reference_on_random_data():
    rng = np.random.default_rng(3)
    n = 2000
    messy = np.array(["a b", "c,d", "e=f", "", "plain", "x\\y"], dtype=object)
    speed = rng.random(n) * 120
    speed[rng.random(n) < 0.2] = np.nan
    speed[rng.random(n) < 0.01] = np.inf
    batch = FlowWindowBatch(
        level="station", window_ms=30_000, entity_id=messy[rng.integers(0, 6, n)],
        corridor=messy[rng.integers(0, 6, n)], direction=np.array(["N", "S"], dtype=object)[rng.integers(0, 2, n)],
        window_start_ms=T0_MS + rng.integers(0, 100, n) * 30_000, vehicle_count=rng.integers(0, 60, n),
        flow_veh_h=rng.integers(0, 60, n) * 120.0, occupancy_pct=rng.random(n) * 100,
        time_mean_speed_kmh=speed * 1.01, space_mean_speed_kmh=speed, density_veh_km=rng.random(n) * 1e-9,
        speed_band=rng.integers(0, 9, n).astype(np.int8), n_readings=rng.integers(1, 10, n),
        travel_time_s=rng.random(n) * 1e6, imputed=rng.random(n) < 0.5)
    got = [_parse_line(line) for line in flow_lines(batch)]
    for row, (meas, tags, fields, ts) in zip(batch.to_rows(), got, strict=True):
        ref = make_line("flow", {k: row[k] for k in ("entity_id", "corridor", "direction", "level")}
                        | {"window": "30s"}, {k: v for k, v in row.items()
                                              if k not in ("entity_id", "corridor", "direction", "level",
                                                           "window_ms", "window_start_ms")},
                        row["window_start_ms"])
        assert (meas, tags, fields, ts) == _parse_line(ref)


def test_dead_letters_in_one_ms_get_distinct_stable_timestamps():
    first = dead_letter_lines(dead_letters())
    stamps = [int(line.rsplit(" ", 1)[1]) for line in first]
    assert len(set(stamps)) == 4 and stamps[3] == stamps[4]  # the twins are one point
    assert all((T0_MS + 5_000) * 1_000_000 <= s < (T0_MS + 5_001) * 1_000_000 for s in stamps)
    assert dead_letter_lines(dead_letters()) == first  # reprocessing writes the same points again


def test_spool_replays_in_order_ignores_a_torn_line_and_keeps_failed_files(tmp_path: Path):
    spool = Spool(tmp_path)
    spool.append("ms", ["a 1", "b 2"])
    spool.append("ns", ["c 3"])
    spool.append("ms", ["d 4"])
    open_files = list(tmp_path.glob("*.lp.open"))
    with open(next(p for p in open_files if p.name.startswith("ms.")), "a") as fh:
        fh.write("torn-by-a-crash")  # no newline: a write cut short
    assert spool.status().pending_points == 4

    def failing(precision: str, lines: list[str]) -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        spool.replay(failing)
    assert spool.status().pending_points == 4  # nothing lost by a failed replay

    got: list[tuple[str, list[str]]] = []
    assert spool.replay(lambda p, lines: got.append((p, lines)), batch_size=1) == 4
    assert sorted((p, line) for p, lines in got for line in lines) == [("ms", "a 1"), ("ms", "b 2"), ("ms", "d 4"),
                                                                       ("ns", "c 3")]
    assert spool.status().pending_files == 0
    rejected = spool.reject("ms", ["bad line"], "HTTP 400: unable to parse")
    assert read_lines(rejected) == ["bad line"]


def test_spool_replays_orphans_of_dead_writers_but_not_live_segments(tmp_path: Path):
    orphan = tmp_path / "ms.deadbeef.lp.open"  # left by a writer that died: nobody holds its lock
    orphan.write_text("x 1\n")
    live_writer = Spool(tmp_path)  # another process (or container on a shared volume), still running
    live_writer.append("ms", ["y 2"])
    got: list[str] = []
    assert Spool(tmp_path).replay(lambda p, lines: got.extend(lines)) == 1
    assert got == ["x 1"] and not orphan.exists()
    live_writer.close()  # seals its segment: now anyone may replay it
    assert Spool(tmp_path).replay(lambda p, lines: got.extend(lines)) == 1
    assert got == ["x 1", "y 2"]


# ---- real InfluxDB -------------------------------------------------------------------
@pytest.fixture(scope="session")
def influx(influx_server) -> dict[str, str]:
    """URL, org, token of the running server (tests/conftest.py; fails, never skips, without one)."""
    return influx_server


def _influxql(influx: dict[str, str], statement: str) -> dict:
    data = urllib.parse.urlencode({"q": statement}).encode()
    req = urllib.request.Request(f"{influx['url']}/query", data=data, method="POST",
                                 headers={"Authorization": f"Token {influx['token']}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


def _is_v1(influx: dict[str, str]) -> bool:
    with urllib.request.urlopen(f"{influx['url']}/health", timeout=10) as resp:
        return str(json.load(resp).get("version", "")).startswith("1.")


def create_bucket(influx: dict[str, str], name: str) -> None:
    """A fresh 1.x database (the v2 API's bucket) or 2.x bucket."""
    if _is_v1(influx):
        _influxql(influx, f'CREATE DATABASE "{name}"')
        return
    from influxdb_client import InfluxDBClient
    with InfluxDBClient(url=influx["url"], token=influx["token"], org=influx["org"]) as client:
        client.buckets_api().create_bucket(bucket_name=name, org=influx["org"])


def drop_bucket(influx: dict[str, str], name: str) -> None:
    if _is_v1(influx):
        _influxql(influx, f'DROP DATABASE "{name}"')
        return
    from influxdb_client import InfluxDBClient
    with InfluxDBClient(url=influx["url"], token=influx["token"], org=influx["org"]) as client:
        bucket = client.buckets_api().find_bucket_by_name(name)
        if bucket is not None:
            client.buckets_api().delete_bucket(bucket)


@pytest.fixture
def bucket(influx: dict[str, str]):
    name = f"rp_test_{uuid.uuid4().hex[:10]}"
    create_bucket(influx, name)
    yield name
    drop_bucket(influx, name)


def make_sink(influx: dict[str, str], bucket: str, spool_dir: Path, url: str | None = None, **kw) -> InfluxSink:
    kw.setdefault("max_retries", 1)
    kw.setdefault("retry_interval_ms", 20)
    return InfluxSink(url or influx["url"], influx["token"], influx["org"], bucket, spool_dir, **kw)


def query_rows(influx: dict[str, str], bucket: str, measurement: str) -> list[dict]:
    """Every point of a measurement as a dict of tags + fields + time_ns (Flux, pivoted)."""
    from influxdb_client import InfluxDBClient

    flux = (f'from(bucket: "{bucket}") |> range(start: 1970-01-01T00:00:00Z) '
            f'|> filter(fn: (r) => r._measurement == "{measurement}") '
            f'|> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")')
    with InfluxDBClient(url=influx["url"], token=influx["token"], org=influx["org"], timeout=30_000) as client:
        tables = client.query_api().query(flux)
    rows = []
    for table in tables:
        for rec in table.records:
            row = {k: v for k, v in rec.values.items()
                   if k not in ("result", "table", "_start", "_stop", "_measurement", "_time")}
            row["time_ms"] = int(rec.get_time().timestamp() * 1000)
            rows.append(row)
    return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_results_read_back_with_flux_equal_what_was_written(influx, bucket, tmp_path):
    batch = segment_batch()
    with make_sink(influx, bucket, tmp_path / "spool", batch_size=4) as sink:  # several batches
        sink.write_flow(batch)
        sink.write_incidents(incidents())
        sink.write_alerts(alerts())
        sink.write_dead_letters(dead_letters())
        sink.write_pipeline("core", T0_MS, {"readings_total": 1234, "readings_per_s": 56.5, "lag_ms": 0})
    assert sink.stats.points_written == 6 + 2 + 2 + 5 + 1 and sink.stats.spooled == 0  # 5 lines, 4 points

    flow = sorted(query_rows(influx, bucket, "flow"), key=lambda r: r["entity_id"])
    assert [r["entity_id"] for r in flow] == batch.entity_id.tolist()
    for i, r in enumerate(flow):
        assert (r["level"], r["window"], r["corridor"], r["direction"]) == ("segment", "1m", "PIE", "E")
        assert r["time_ms"] == T0_MS
        assert r["vehicle_count"] == batch.vehicle_count[i] and r["n_readings"] == 8
        assert r["flow_veh_h"] == batch.flow_veh_h[i] and r["occupancy_pct"] == batch.occupancy_pct[i]
        assert isinstance(r["flow_veh_h"], float) and isinstance(r["vehicle_count"], int)
        assert r["speed_band"] == batch.speed_band[i] and r["imputed"] is bool(batch.imputed[i])
        for name in ("space_mean_speed_kmh", "time_mean_speed_kmh", "density_veh_km", "travel_time_s"):
            expected = getattr(batch, name)[i]
            if np.isnan(expected):
                assert r.get(name) is None, f"{name} should be absent for a NaN"
            else:
                assert r[name] == expected  # exact: floats travel as repr()

    inc = sorted(query_rows(influx, bucket, "incident"), key=lambda r: r["time_ms"])
    assert [(r["status"], r["time_ms"], r["start_ms"], r.get("cleared_ms")) for r in inc] == [
        ("open", T0_MS + 60_000, T0_MS, None), ("cleared", T0_MS + 900_000, T0_MS, T0_MS + 900_000)]
    assert {(r["incident_id"], r["segment_id"], r["algorithm"], r["severity"], r["location_km"], r["confidence"])
            for r in inc} == {("inc-1", "PIE-E-03>PIE-E-04", "california8", 2, 12.5, 0.8)}

    al = {r["alert_id"]: r for r in query_rows(influx, bucket, "alert")}
    assert al["al-1"]["subscription_id"] == "sub 1" and al["al-1"]["incident_id"] == "inc-1"
    assert al["al-1"]["message"] == 'Incident "ahead"\\non PIE'  # newline kept visible as backslash-n
    assert (al["al-2"]["speed_band_from"], al["al-2"]["speed_band_to"]) == (7, 3)
    assert (al["al-2"]["travel_time_now_s"], al["al-2"]["travel_time_usual_s"]) == (300.5, 120.0)

    dl = query_rows(influx, bucket, "dead_letter")
    assert len(dl) == 4, "different dead letters in one millisecond must not overwrite each other"
    import base64
    payloads = sorted(base64.b64decode(r["payload"]) for r in dl)
    assert payloads == sorted({d.payload for d in dead_letters()})
    store = LocalStore(":memory:")  # the local store agrees on what is one dead letter
    store.write_dead_letters(dead_letters())
    assert store.query("SELECT COUNT(*) AS n FROM dead_letter")["n"][0] == len(dl)
    assert {r["time_ms"] for r in dl} == {T0_MS + 5_000}

    (pipe,) = query_rows(influx, bucket, "pipeline")
    assert (pipe["component"], pipe["readings_total"], pipe["readings_per_s"]) == ("core", 1234, 56.5)


def camera_observations() -> list:
    from models.camera import CameraObservation

    return [CameraObservation("CAM-PIE-E-012", "PIE-E-012", "PIE-E-012>PIE-E-013", T0_MS + k * 60_000, 60_000,
                              (20, 30, 10 + k), 88.5 if k == 0 else float("nan"), 12.5 * k, 7.25, k == 1,
                              T0_MS + 65_000 if k == 1 else None, 80) for k in range(2)]


def test_camera_lines_leave_out_nan_speed_and_keep_the_store_schema():
    line = camera_line(camera_observations()[1])
    assert line == ("camera,camera_id=CAM-PIE-E-012,segment_id=PIE-E-012>PIE-E-013,station_id=PIE-E-012 "
                    f"vehicle_count=61i,queue_length_m=12.5,occupancy_pct=7.25,stopped_vehicle=true,frames=80i "
                    f"{T0_MS + 60_000}")
    from stream.sinks.sqlite_store import MEASUREMENTS
    m = MEASUREMENTS["camera"]
    _, tags, fields, _ = _parse_line(camera_line(camera_observations()[0]))
    assert set(tags) == set(m.tags) and set(fields) == {f for f, _ in m.fields}


def test_camera_observations_read_back_as_the_local_store_holds_them(influx, bucket, tmp_path):
    with make_sink(influx, bucket, tmp_path / "spool") as sink:
        sink.write_cameras(camera_observations())
        sink.write_cameras(camera_observations())  # written twice: still two points
    rows = sorted(query_rows(influx, bucket, "camera"), key=lambda r: r["time_ms"])
    store = LocalStore(":memory:")
    store.write_cameras(camera_observations())
    local = store.load("camera")
    assert [r["time_ms"] for r in rows] == local["interval_start_ms"].tolist()
    for r, (_, want) in zip(rows, local.iterrows(), strict=True):
        for tag in ("camera_id", "station_id", "segment_id"):
            assert r[tag] == want[tag]
        assert r["vehicle_count"] == want["vehicle_count"] and isinstance(r["vehicle_count"], int)
        assert r["stopped_vehicle"] is bool(want["stopped_vehicle"]) and r["frames"] == want["frames"]
        assert (r["queue_length_m"], r["occupancy_pct"]) == (want["queue_length_m"], want["occupancy_pct"])
        assert r.get("mean_speed_kmh") == (None if np.isnan(want["mean_speed_kmh"]) else want["mean_speed_kmh"])


def test_writing_the_same_results_twice_leaves_no_duplicates(influx, bucket, tmp_path):
    with make_sink(influx, bucket, tmp_path / "spool") as sink:
        for _ in range(2):
            sink.write_flow(segment_batch())
            sink.write_incidents(incidents())
            sink.write_dead_letters(dead_letters())
            sink.flush()
    assert sink.stats.points_written == 2 * (6 + 2 + 5)
    assert len(query_rows(influx, bucket, "flow")) == 6
    assert len(query_rows(influx, bucket, "incident")) == 2
    assert len(query_rows(influx, bucket, "dead_letter")) == 4


def test_dead_server_spools_everything_then_replay_delivers_each_point_once(influx, bucket, tmp_path):
    spool_dir = tmp_path / "spool"
    dead = make_sink(influx, bucket, spool_dir, url=f"http://127.0.0.1:{free_port()}", batch_size=4,
                     timeout_ms=2_000, replay_interval_s=3600)
    dead.write_flow(segment_batch())
    dead.write_flow(segment_batch(start_ms=T0_MS + 60_000))
    dead.write_incidents(incidents())
    dead.write_dead_letters(dead_letters())
    dead.close()  # must return: nothing is lost, all of it is on disk
    assert dead.stats.points_written == 0 and dead.stats.batches_failed >= 1
    assert dead.stats.spooled == 12 + 2 + 5
    assert Spool(spool_dir).status().pending_points == 19

    live = make_sink(influx, bucket, spool_dir)
    live.write_flow(segment_batch())  # the same points again, now live: replay must not duplicate them
    live.close()  # replays on start and again on close
    assert live.stats.replayed == 19
    assert Spool(spool_dir).status().pending_points == 0
    flow = query_rows(influx, bucket, "flow")
    assert len(flow) == 12 and len({(r["entity_id"], r["time_ms"]) for r in flow}) == 12
    assert len(query_rows(influx, bucket, "incident")) == 2
    assert len(query_rows(influx, bucket, "dead_letter")) == 4


def test_default_batching_write_api_drops_a_failed_batch_our_sink_does_not(influx, tmp_path):
    """Against a bucket that does not exist yet (HTTP 404), influxdb-client's default batching
    WriteApi logs the error and forgets the batch: once the bucket exists the data is gone.
    InfluxSink spools the batch and delivers it once the bucket exists."""
    from influxdb_client import InfluxDBClient

    lines = flow_lines(segment_batch())
    missing = f"rp_test_{uuid.uuid4().hex[:10]}"
    with InfluxDBClient(url=influx["url"], token=influx["token"], org=influx["org"]) as client:
        write_api = client.write_api()  # default WriteOptions(): batching, flushes in the background
        write_api.write(bucket=missing, record=lines, write_precision="ms")  # no exception
        write_api.close()  # no exception either: the failure only reached a log line

    sink = make_sink(influx, missing, tmp_path / "spool", replay_interval_s=3600)
    sink.write_flow(segment_batch())
    sink.flush()
    assert sink.stats.points_written == 0 and sink.stats.spooled == 6

    create_bucket(influx, missing)
    try:
        assert query_rows(influx, missing, "flow") == [], "the batching WriteApi's batch is lost for good"
        assert sink.replay_spool() == 6
        sink.close()
        assert len(query_rows(influx, missing, "flow")) == 6
    finally:
        drop_bucket(influx, missing)


def test_a_malformed_batch_is_kept_aside_not_retried_forever(influx, bucket, tmp_path):
    with make_sink(influx, bucket, tmp_path / "spool") as sink:
        sink.write_pipeline("core", T0_MS, {"lag_ms": 5})  # an integer field
        sink.flush()
        sink.write_pipeline("core", T0_MS + 1, {"lag_ms": "five"})  # now a string: field type conflict
        sink.flush()
    assert sink.stats.batches_rejected == 1 and sink.stats.points_rejected == 1
    rejected = list((tmp_path / "spool" / "rejected").iterdir())
    assert len(rejected) == 1 and read_lines(rejected[0]) == [f'pipeline,component=core lag_ms="five" {T0_MS + 1}']
    assert Spool(tmp_path / "spool").status().pending_points == 0


def test_a_partial_batch_is_written_after_the_flush_interval_without_flush(influx, bucket, tmp_path):
    """An idle stream still gets its last points out (what a faust worker relies on between bursts)."""
    import time

    sink = make_sink(influx, bucket, tmp_path / "spool", batch_size=5000, flush_interval_ms=200)
    try:
        sink.write_incidents(incidents())
        deadline = time.monotonic() + 60  # a guard against hanging, not a timing goal
        while sink.stats.points_written < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sink.stats.points_written == 2
        assert len(query_rows(influx, bucket, "incident")) == 2
    finally:
        sink.close()


def test_the_sink_recovers_by_itself_when_the_server_comes_back(influx, tmp_path):
    """Outage (bucket missing) -> batches spooled; bucket created -> the periodic replay delivers them
    and later batches are written directly again, with no replay_spool() or close() call."""
    import time

    missing = f"rp_test_{uuid.uuid4().hex[:10]}"
    sink = make_sink(influx, missing, tmp_path / "spool", batch_size=6, replay_interval_s=0.2)
    try:
        sink.write_flow(segment_batch())
        sink.flush()
        assert sink.stats.spooled == 6 and sink.stats.points_written == 0
        sink.write_flow(segment_batch(start_ms=T0_MS + 60_000))  # outage: straight to the spool
        sink.flush()
        assert sink.stats.spooled == 12 and sink.stats.batches_failed == 1  # no retries during the outage
        create_bucket(influx, missing)
        deadline = time.monotonic() + 60  # a guard against hanging, not a timing goal
        while sink.stats.replayed < 12 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sink.stats.replayed == 12
        sink.write_flow(segment_batch(start_ms=T0_MS + 120_000))
        sink.flush()
        assert sink.stats.spooled == 12 and sink.stats.points_written == 18
        assert len(query_rows(influx, missing, "flow")) == 18
    finally:
        sink.close()
        drop_bucket(influx, missing)
