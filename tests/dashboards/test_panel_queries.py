"""Every dashboard query runs on a real InfluxDB (1.8, Flux 0.65) and shows what the pipeline computed.

A seeded embedded run (tests/dashboards/conftest.py: 2 h on the start of the PIE
eastbound, one staged incident, faulty detectors, corrupted messages) is written
through InfluxSink into a fresh database, and at the same time into a LocalStore
that serves as the reference. Each panel's Flux is turned into what Grafana would
send (template variables at their defaults, macros for the run's time range) and
executed. The tests FAIL, never skip, when InfluxDB is not reachable.
"""
from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from dashboards.grafana import JSON_DIR, load_all, panel_queries
from dashboards.grafana.flux import interpolate
from dashboards.grafana.queries import NAMED_QUERIES
from dashboards.grafana.sites import segment_sites
from roadpulse.dashboards_cli import main as cli_main
from stream.sinks.influx_query import InfluxConnection, load_influx, query_frame

WRITTEN = {"flow", "incident", "alert", "detector_health", "dead_letter", "pipeline"}  # by the pipeline today
NOT_WRITTEN_YET = {"camera"}  # panels kept on the dashboards; their queries must run but find nothing
OPEN_INCIDENT_PANELS = {"Open incidents"}  # evaluated while the staged incident is open
INTERVAL_MS = 60_000  # Grafana's v.windowPeriod for a 2-hour range on a wide panel
BOARDS = load_all(JSON_DIR)
QUERIES = [(name, pq) for name, board in sorted(BOARDS.items()) for pq in panel_queries(board)]


def defaults(board: dict) -> dict[str, str]:
    return {v["name"]: v["current"]["value"] for v in board["templating"]["list"]}


def run_query(influx_server, seeded_run, query: str, variables: dict[str, str] | None = None,
              stop_ms: int | None = None) -> pd.DataFrame:
    flux = interpolate(query, seeded_run.start_ms, stop_ms or seeded_run.stop_ms, seeded_run.bucket, INTERVAL_MS,
                       variables or {})
    conn = InfluxConnection(influx_server["url"], influx_server["token"], influx_server["org"], seeded_run.bucket)
    return query_frame(flux, conn)


def panel(board_name: str, title: str, kind: str | None = None) -> str:
    return next(pq.query for pq in panel_queries(BOARDS[board_name])
                if pq.title == title and (kind is None or pq.panel_type == kind))


def mid_incident_ms(seeded_run) -> int:
    return seeded_run.incident_start_ms + 20 * 60_000


@pytest.mark.parametrize("board_name, pq", QUERIES,
                         ids=[f"{n.removesuffix('.json')}:{pq.title}:{pq.panel_type}" for n, pq in QUERIES])
def test_every_panel_query_runs_and_returns_rows(influx_server, seeded_run, board_name, pq):
    measurements = set(re.findall(r'_measurement == "(\w+)"', pq.query))
    assert measurements and measurements <= WRITTEN | NOT_WRITTEN_YET, measurements
    stop = mid_incident_ms(seeded_run) if pq.title in OPEN_INCIDENT_PANELS else None
    rows = run_query(influx_server, seeded_run, pq.query, defaults(BOARDS[board_name]), stop)
    if measurements <= WRITTEN:
        assert len(rows) > 0, f"{pq.title}: no rows"
    else:
        assert len(rows) == 0, f"{pq.title}: {measurements} is written now: move it to WRITTEN"


def _open_at(incidents, stop_ms: int) -> set[str]:
    """Reference: incidents whose latest event before ``stop_ms`` is not 'cleared'."""
    latest = {}
    for inc in sorted(incidents, key=lambda i: i.event_ms):
        if inc.event_ms < stop_ms:
            latest[inc.incident_id] = inc.status
    return {iid for iid, status in latest.items() if status != "cleared"}


def test_open_incidents_show_the_staged_incident_while_open_and_nothing_once_cleared(influx_server, seeded_run):
    incidents = seeded_run.pipeline.stats.incidents
    stop = mid_incident_ms(seeded_run)
    expected = _open_at(incidents, stop)
    assert expected, "the staged incident was not detected within 20 min"
    table = run_query(influx_server, seeded_run, panel("operator-overview.json", "Open incidents", "table"),
                      stop_ms=stop)
    assert set(table["incident_id"]) == expected
    assert (table["status"] != "cleared").all() and (table["open_min"] >= 0).all()
    count = run_query(influx_server, seeded_run, panel("operator-overview.json", "Open incidents", "stat"),
                      stop_ms=stop)
    assert count["open incidents"].tolist() == [len(expected)]
    # the end of the run: everything cleared
    assert run_query(influx_server, seeded_run, panel("operator-overview.json", "Open incidents", "table")).empty
    count = run_query(influx_server, seeded_run, panel("operator-overview.json", "Open incidents", "stat"))
    assert count["open incidents"].tolist() == [0]


def test_map_has_every_segment_at_its_site_with_its_latest_speed_band(influx_server, seeded_run):
    rows = run_query(influx_server, seeded_run, panel("operator-overview.json", "Network: LTA speed band per segment"))
    sites = {sid: (lat, lon) for sid, lat, lon in segment_sites(seeded_run.network)}
    assert sorted(rows["entity_id"]) == sorted(sites)
    assert all(sites[r.entity_id] == (r.lat, r.lon) for r in rows.itertuples())
    flow = seeded_run.local.load("flow", seeded_run.start_ms, seeded_run.stop_ms, level="segment", window="5m")
    last_band = flow.sort_values("window_start_ms").groupby("entity_id")["speed_band"].last()
    got = rows.set_index("entity_id")["speed_band"]
    assert (got.sort_index() == last_band.sort_index()).all()
    assert got.between(0, 8).all()


def test_congested_segment_count_matches_the_latest_bands(influx_server, seeded_run):
    flow = seeded_run.local.load("flow", seeded_run.start_ms, seeded_run.stop_ms, level="segment", window="5m")
    last_band = flow.sort_values("window_start_ms").groupby("entity_id")["speed_band"].last()
    rows = run_query(influx_server, seeded_run, panel("operator-overview.json", "Segments below 30 km/h"))
    assert rows["segments below 30 km/h"].tolist() == [int(last_band.between(1, 3).sum())]


def test_variables_list_the_run_corridor_direction_and_stations(influx_server, seeded_run):
    board = BOARDS["corridor-drilldown.json"]
    variables = {v["name"]: v["query"] for v in board["templating"]["list"]}
    values = defaults(board)
    got = {name: run_query(influx_server, seeded_run, q, values)["_value"].tolist() for name, q in variables.items()}
    roadway = seeded_run.network.roadways[0]
    assert got["corridor"] == [roadway.corridor] and got["direction"] == [roadway.direction]
    assert got["station"] == sorted(s.station_id for s in seeded_run.network.stations)
    assert all(values[name] in got[name] for name in variables)  # the defaults exist in the data


def test_detector_health_counts_every_detector_once_by_its_latest_status(influx_server, seeded_run):
    rows = run_query(influx_server, seeded_run, panel("operator-overview.json", "Detector health now"))
    health = seeded_run.local.load("detector_health", seeded_run.start_ms, seeded_run.stop_ms)
    latest = health.sort_values("at_ms").groupby("detector_id")["status"].last()
    assert dict(zip(rows["status"], rows["_value"])) == dict(Counter(latest))
    assert rows["_value"].sum() == seeded_run.network.n_detectors


def test_dead_letter_panels_count_what_the_pipeline_rejected(influx_server, seeded_run):
    total = run_query(influx_server, seeded_run, panel("operator-overview.json", "Dead letters", "stat"))
    letters = seeded_run.local.load("dead_letter", seeded_run.start_ms, seeded_run.stop_ms)
    assert total["dead letters"].tolist() == [len(letters)] and len(letters) > 0
    by_reason = run_query(influx_server, seeded_run, panel("analyst.json", "Dead letters by reason per hour"))
    assert by_reason.groupby("reason")["_value"].sum().to_dict() == letters["reason"].value_counts().to_dict()


def test_incident_durations_match_the_cleared_incidents(influx_server, seeded_run):
    rows = run_query(influx_server, seeded_run, panel("analyst.json", "Incident durations"))
    cleared = {i.incident_id: (i.cleared_ms - i.start_ms) / 60_000 for i in seeded_run.pipeline.stats.incidents
               if i.status == "cleared"}
    assert dict(zip(rows["incident_id"], rows["duration_min"])) == pytest.approx(cleared)
    assert rows["duration_min"].is_monotonic_decreasing


def test_worst_bottlenecks_are_the_slowest_segments_by_pandas(influx_server, seeded_run):
    rows = run_query(influx_server, seeded_run, panel("analyst.json", "Worst bottlenecks"))
    flow = seeded_run.local.load("flow", seeded_run.start_ms, seeded_run.stop_ms, level="segment", window="5m")
    reference = flow.groupby("entity_id")["space_mean_speed_kmh"].mean().sort_values().head(10)
    assert rows["entity_id"].tolist() == reference.index.tolist()
    assert rows["mean_speed_kmh"].to_numpy() == pytest.approx(reference.to_numpy())
    assert seeded_run.incident_segment_id in rows["entity_id"].tolist()[:3]  # the staged incident's segment


def test_corridor_travel_time_is_the_sum_of_segment_times(influx_server, seeded_run):
    rows = run_query(influx_server, seeded_run, panel("corridor-drilldown.json", "Travel time along the carriageway"),
                     defaults(BOARDS["corridor-drilldown.json"]))
    flow = seeded_run.local.load("flow", seeded_run.start_ms, seeded_run.stop_ms, level="segment", window="1m")
    per_window = flow.groupby("window_start_ms")["travel_time_s"].sum() / 60.0
    end_ms = rows["_time"].dt.as_unit("ms").astype("int64").to_numpy()
    got = pd.Series(rows["_value"].to_numpy(), index=end_ms - 60_000)  # aggregateWindow stamps the window end
    common = per_window.index.intersection(got.index)
    assert len(common) >= 100
    assert np.allclose(got.loc[common].to_numpy(), per_window.loc[common].to_numpy())


@pytest.mark.parametrize("measurement, tags", [
    ("flow", {"level": "segment", "window": "5m"}), ("flow", {"level": "station", "window": "1m"}),
    ("incident", {}), ("alert", {}), ("detector_health", {}), ("pipeline", {}),
])
def test_load_influx_returns_what_the_local_store_returns(influx_server, seeded_run, measurement, tags):
    got = load_influx(measurement, seeded_run.start_ms, seeded_run.stop_ms, url=influx_server["url"],
                      token=influx_server["token"], org=influx_server["org"], bucket=seeded_run.bucket, **tags)
    want = seeded_run.local.load(measurement, seeded_run.start_ms, seeded_run.stop_ms, **tags)
    assert len(want) > 0
    pd.testing.assert_frame_equal(got[list(want.columns)], want)


def test_load_influx_dead_letters_are_the_local_stores_with_their_bytes(influx_server, seeded_run):
    got = load_influx("dead_letter", seeded_run.start_ms, seeded_run.stop_ms, url=influx_server["url"],
                      bucket=seeded_run.bucket)
    want = seeded_run.local.load("dead_letter", seeded_run.start_ms, seeded_run.stop_ms)
    def key(df): return sorted(zip(df["at_ms"], df["reason"], df["detail"], df["payload"], strict=True))
    assert key(got) == key(want) and len(want) > 0


def test_query_influx_prints_a_named_query_and_runs_raw_flux(influx_server, seeded_run, capsys):
    common = ["--url", influx_server["url"], "--bucket", seeded_run.bucket, "--start", str(seeded_run.start_ms),
              "--stop", str(seeded_run.stop_ms)]
    for name in NAMED_QUERIES:
        stop = ["--stop", str(mid_incident_ms(seeded_run))] if name == "open-incidents" else []
        assert cli_main(["query-influx", name, *common, *stop]) == 0, name
        out = capsys.readouterr().out
        assert out.strip() and "(no rows)" not in out, name
    assert cli_main(["query-influx", "worst-bottlenecks", *common]) == 0
    worst = run_query(influx_server, seeded_run, NAMED_QUERIES["worst-bottlenecks"]())["entity_id"].iloc[0]
    assert worst in capsys.readouterr().out
    raw = 'from(bucket: v.defaultBucket) |> range(start: v.timeRangeStart, stop: v.timeRangeStop) ' \
          '|> filter(fn: (r) => r._measurement == "pipeline") |> keep(columns: ["_field", "_value"])'
    assert cli_main(["query-influx", raw, *common, "--csv"]) == 0
    out = capsys.readouterr().out
    assert set(out.splitlines()[0].split(",")) == {"_field", "_value"} and "readings_total" in out
    assert cli_main(["query-influx", "no-such-query", *common]) == 2
    assert cli_main(["query-influx", "from(bucket: v.defaultBucket) |> nosuchfunction()", *common]) == 1
    assert "nosuchfunction" in capsys.readouterr().err
