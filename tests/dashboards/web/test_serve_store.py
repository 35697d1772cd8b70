"""`roadpulse serve --store`: a finished run on the whole default network, served and read back.

The default network has more than 500 segments, so the DataMall-shaped speed
bands come in two pages, as DataMall's do.
"""
from __future__ import annotations

import argparse
import json
import urllib.request

import pytest

from dashboards.web.state import LiveState
from dashboards.web.store_source import StoreMismatch, load_store
from models.singapore import singapore_network
from roadpulse.run import run_embedded
from roadpulse.serve import add_arguments, add_run_arguments, network_for_store, serve_store, start_for_run
from roadpulse.settings import Settings, parse_time_ms
from simulators import IncidentSpec
from stream.core.pipeline import PipelineConfig

START_MS = parse_time_ms("2026-03-03T10:00:00+08:00")


def _get(url: str, headers: dict | None = None) -> dict:
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """50 simulated minutes on the whole default network, one staged incident; then served from the store."""
    network = singapore_network()
    out = tmp_path_factory.mktemp("stored")
    settings = Settings(duration_s=50 * 60, start_ms=START_MS, seed=5, out_dir=out, incidents=0,
                        fault_fraction=0.0, chaos_rate=0.002, progress=False)
    config = PipelineConfig()
    on_step, stop = start_for_run(argparse.Namespace(serve=False, out=out), network, config)  # writes network.json
    assert on_step is None
    incident = IncidentSpec("PIE-E", 6.25, START_MS + 15 * 60_000, 20 * 60_000, lanes_blocked=2)
    report = run_embedded(settings, network, config, incidents=(incident,))
    stop()
    store = out / "roadpulse.sqlite"
    served_network = network_for_store(store)
    server, _ = serve_store(store, served_network, port=0)
    yield {"network": network, "served_network": served_network, "url": server.url, "report": report,
           "store": store, "ctx": server.ctx}
    server.stop()


def test_serve_finds_the_runs_network_beside_the_store(stored):
    assert stored["served_network"].to_dict() == stored["network"].to_dict()


def test_store_served_with_another_network_is_refused(stored):
    with pytest.raises(StoreMismatch, match="--network"):
        load_store(stored["store"], LiveState(singapore_network(400)))


def test_state_from_the_store_has_every_segment_incidents_and_dead_letters(stored):
    report, state = stored["report"], stored["ctx"].state
    assert set(state.segments()) == set(stored["network"].segment_by_id)
    loaded = {(i["incident_id"], e["status"]) for i in state.incidents() for e in i["events"]}
    assert loaded == {(i.incident_id, i.status) for i in report.pipeline.stats.incidents}
    assert state.figures()["dead_letters"] == dict(report.pipeline.stats.dead_letters)
    assert state.figures()["readings_in"] == report.pipeline.stats.readings_in


def test_operator_page_draws_every_roadway_of_the_default_network(stored, new_page):
    page, log = new_page()
    page.goto(f"{stored['url']}/operators")
    page.wait_for_selector("#incidents li.incident")
    page.wait_for_function("document.querySelectorAll('#network line.seg[data-band]').length > 0")
    network = stored["network"]
    assert page.locator("#network polyline.roadway").count() == len(network.roadways)
    assert page.locator("#network line.seg").count() == len(network.segments)
    assert page.locator("#network line.seg[data-band]").count() == len(network.segments)  # all coloured
    assert page.inner_text("#stat-mode") == "stored run"
    page.click('#network line.seg[data-seg="PIE-E-012>PIE-E-013"]')
    page.wait_for_function("document.getElementById('seg-title').textContent === 'PIE-E-012>PIE-E-013'")
    assert page.locator("#chart-speed svg path").count() == 2  # area and line of the last hour
    page.screenshot(path="artifacts/screenshots/operators-stored-run.png", full_page=True)
    assert log.errors == []


def test_datamall_speed_bands_page_by_500_with_datamall_fields(stored):
    url = f"{stored['url']}/ltaodataservice/v3/TrafficSpeedBands"
    headers = {"AccountKey": "anything", "accept": "application/json"}
    pages = [_get(f"{url}?$skip={skip}", headers) for skip in (0, 500, 1000)]
    n = len(stored["network"].segments)
    assert n > 500
    assert [len(p["value"]) for p in pages] == [500, n - 500, 0]
    assert all(p["odata.metadata"].endswith("#TrafficSpeedBands") for p in pages)
    records = pages[0]["value"] + pages[1]["value"]
    assert len({r["LinkID"] for r in records}) == n
    r = records[0]
    assert list(r) == ["LinkID", "RoadName", "RoadCategory", "SpeedBand", "MinimumSpeed", "MaximumSpeed",
                       "StartLon", "StartLat", "EndLon", "EndLat"]
    assert all(isinstance(r[k], str) for k in r if k != "SpeedBand") and isinstance(r["SpeedBand"], int)
    assert r["LinkID"].isdigit() and r["RoadCategory"] == "A" and 1 <= r["SpeedBand"] <= 8
    assert int(r["MinimumSpeed"]) == 10 * (r["SpeedBand"] - 1)
    state = stored["ctx"].state.segments()
    links = _get(f"{stored['url']}/api/network")["segments"]
    by_link = {v["link_id"]: k for k, v in links.items()}
    assert all(rec["SpeedBand"] == state[by_link[rec["LinkID"]]]["speed_band"] for rec in records)
    assert _get(f"{stored['url']}/ltaodataservice/TrafficSpeedBands?$skip=500")["value"] == pages[1]["value"]


def test_datamall_travel_times_cover_every_roadway(stored):
    doc = _get(f"{stored['url']}/ltaodataservice/EstTravelTimes")
    records = doc["value"]
    assert set(doc) == {"odata.metadata", "value"}
    network = stored["network"]
    assert {(r["Name"], r["Direction"]) for r in records} >= {("PIE", 1), ("PIE", 2)}
    assert {r["Name"] for r in records} == {r.corridor for r in network.roadways if len(r.stations) > 1}
    assert all(isinstance(r["EstTime"], int) and r["EstTime"] >= 1 for r in records)
    assert all(set(r) == {"Name", "Direction", "FarEndPoint", "StartPoint", "EndPoint", "EstTime"} for r in records)


def test_datamall_incidents_are_empty_once_the_run_cleared_them(stored):
    assert _get(f"{stored['url']}/ltaodataservice/TrafficIncidents")["value"] == []


def test_cli_arguments_parse():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run")
    add_run_arguments(run)
    add_arguments(sub)
    args = parser.parse_args(["run", "--serve", "--port", "0", "--speedup", "120", "--keep-serving"])
    assert (args.serve, args.port, args.speedup, args.keep_serving, args.host) == (True, 0, 120.0, True, "127.0.0.1")
    args = parser.parse_args(["serve", "--store", "x.sqlite", "--port", "9000"])
    assert str(args.store) == "x.sqlite" and args.port == 9000 and args.handler.__name__ == "cmd_serve"
