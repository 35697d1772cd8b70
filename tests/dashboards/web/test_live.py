"""A served run in real Chromium: a seeded incident reaches the operators' list, a commuter's page and a webhook.

One embedded run (PIE both ways, an incident staged on the eastbound) is started
in-process with the web app, exactly as ``roadpulse run --serve`` wires it
(``roadpulse.serve.start_for_run``), paced at 240x. Before the run starts, a
commuter subscribes in the browser to a route through the incident, with a
webhook to a local receiver that refuses each delivery's first attempt.
"""
from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.request

import pytest

from dashboards.web.webhooks import verify
from ingest.camera import CameraPublisher
from models.singapore import singapore_network
from roadpulse.run import run_embedded
from roadpulse.serve import start_for_run
from roadpulse.settings import Settings, parse_time_ms
from simulators import IncidentSpec
from stream.core.pipeline import PipelineConfig

START_MS = parse_time_ms("2026-03-03T10:00:00+08:00")  # Tuesday mid-morning: no recurrent congestion
INCIDENT_KM = 6.25
WAIT_MS = 60_000  # how long a page may take to show what it should (the run paces at 240x)


def _get(url: str) -> dict:
    req = urllib.request.Request(url, headers={"AccountKey": "ignored-by-roadpulse", "accept": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


@pytest.fixture(scope="module")
def live(browser, make_receiver, camera_snapshot, tmp_path_factory):
    network = singapore_network(400)  # PIE eastbound and westbound
    roadway = network.roadway_by_key["PIE-E"]
    seg = next(s for s in roadway.segments if s.start_km <= INCIDENT_KM < s.end_km)
    incident = IncidentSpec(roadway.key, INCIDENT_KM, START_MS + 30 * 60_000, 20 * 60_000, lanes_blocked=2)
    out = tmp_path_factory.mktemp("live")
    settings = Settings(duration_s=75 * 60, start_ms=START_MS, seed=11, out_dir=out, incidents=0,
                        fault_fraction=0.0, chaos_rate=0.002, progress=False)
    config = PipelineConfig()
    args = argparse.Namespace(serve=True, host="127.0.0.1", port=0, speedup=240.0, keep_serving=False,
                              camera_dir=None, out=out)
    on_step, stop = start_for_run(args, network, config)
    url = on_step.url
    spec, _, annotated, cam_ms = camera_snapshot("CAM-PIE-6", seg.upstream_station, seg.segment_id,
                                                 START_MS + 35 * 60_000)
    detected: dict[str, float] = {}

    def hook(pipe):  # the served hook, plus a camera that publishes its annotated snapshot to the bus
        if pipe.stats.sim_now_ms >= cam_ms and "camera" not in detected:
            CameraPublisher(pipe.bus.producer(), spec).publish(annotated, cam_ms, 0, snapshot_jpeg=annotated)
            detected["camera"] = time.monotonic()
        on_step(pipe)
        if "incident" not in detected and any(i.status == "open" and i.algorithm == "statistical"
                                              for i in pipe.stats.incidents):
            detected["incident"] = time.monotonic()

    result: dict = {"url": url, "network": network, "segment": seg, "detected": detected}
    with make_receiver() as received:
        commuter = browser.new_page()
        commuter_errors: list[str] = []
        commuter.on("pageerror", lambda e: commuter_errors.append(str(e)))
        commuter.on("console", lambda m: commuter_errors.append(m.text) if m.type == "error" else None)
        commuter.goto(f"{url}/commuters")
        commuter.select_option("#roadway", "PIE-E")
        commuter.fill("#from-km", "4")
        commuter.fill("#to-km", "8")
        commuter.fill("#sub-name", "Amy to work")
        commuter.fill("#webhook", received.url)
        commuter.click("#subscribe")
        commuter.wait_for_selector("#secret")
        result["secret"] = commuter.inner_text("#secret")

        operator = browser.new_page()
        operator_errors: list[str] = []
        operator.on("pageerror", lambda e: operator_errors.append(str(e)))
        operator.on("console", lambda m: operator_errors.append(m.text) if m.type == "error" else None)
        operator.goto(f"{url}/operators")
        operator.wait_for_selector("#network polyline.roadway")
        result["polylines"] = operator.locator("#network polyline.roadway").count()
        result["segment_lines"] = operator.locator("#network line.seg").count()

        report: dict = {}
        thread = threading.Thread(target=lambda: report.update(r=run_embedded(
            settings, network, config, on_step=hook, incidents=(incident,))), daemon=True)
        thread.start()
        try:
            operator.wait_for_selector('#incidents li[data-status="open"]', timeout=WAIT_MS)
            result["operator_open"] = operator.inner_text("#incidents")
            result["datamall_incidents"] = _get(f"{url}/ltaodataservice/TrafficIncidents")
            commuter.wait_for_selector('#alerts li[data-kind="incident_open"]', timeout=WAIT_MS)
            result["commuter_alerts"] = commuter.inner_text("#alerts")
            result["commuter_tt"] = (commuter.inner_text("#tt-now"), commuter.inner_text("#tt-usual"))
            operator.wait_for_selector("#camera-img", timeout=WAIT_MS)
            operator.wait_for_function("document.getElementById('camera-img').naturalWidth > 0", timeout=WAIT_MS)
            operator.screenshot(path="artifacts/screenshots/operators-live-incident.png", full_page=True)
            commuter.screenshot(path="artifacts/screenshots/commuters-live-alert.png", full_page=True)
            result["camera_caption"] = operator.inner_text("#camera-caption")
            thread.join(timeout=300)
            assert not thread.is_alive(), "the run did not finish"
            on_step.finish()
            operator.wait_for_selector('#incidents li[data-status="cleared"]', timeout=WAIT_MS)
            operator.wait_for_function("document.getElementById('stat-mode').textContent === 'run finished'",
                                       timeout=WAIT_MS)
            result["operator_final"] = operator.inner_text("#incidents")
            operator.screenshot(path="artifacts/screenshots/operators-run-finished.png", full_page=True)
            received.wait_for(lambda reqs: any(s == 200 and json.loads(b)["alert"]["kind"] == "incident_open"
                                               for _, b, s in reqs), timeout_s=30)
            result["webhook"] = list(received.requests)
            commuter.wait_for_selector("#deliveries td", timeout=WAIT_MS)
            result["report"] = report["r"]
            result["operator_errors"] = operator_errors
            result["commuter_errors"] = commuter_errors
            yield result
        finally:
            stop(keep=False)
            operator.close()
            commuter.close()


def test_operator_page_runs_without_console_errors_and_draws_every_roadway(live):
    assert live["operator_errors"] == [] and live["commuter_errors"] == []
    assert live["polylines"] == len(live["network"].roadways) == 2
    assert live["segment_lines"] == len(live["network"].segments)


def test_seeded_incident_appears_in_the_operators_list_with_its_lifecycle(live):
    seg = live["segment"]
    assert "OPEN" in live["operator_open"].upper() and "PIE (E)" in live["operator_open"]
    assert seg.segment_id in live["operator_open"]
    final = live["operator_final"]
    assert "CLEARED" in final.upper()
    assert "open" in final and "→ cleared" in final  # the lifecycle line: open hh:mm → ... → cleared hh:mm


def test_commuter_gets_the_incident_alert_with_travel_time_now_vs_usual(live):
    text = live["commuter_alerts"]
    assert "Incident" in text and "Amy to work" in text and live["segment"].upstream_station in text
    now, usual = live["commuter_tt"]
    assert now.endswith("min") and usual.endswith("min")


def test_datamall_incidents_list_the_open_incident_at_its_place(live):
    doc = live["datamall_incidents"]
    assert set(doc) == {"odata.metadata", "value"}
    assert len(doc["value"]) == 1
    rec = doc["value"][0]
    assert set(rec) == {"Type", "Latitude", "Longitude", "Message"}
    assert isinstance(rec["Latitude"], float) and isinstance(rec["Longitude"], float)
    seg = live["segment"]
    net = live["network"]
    up, down = net.station_by_id[seg.upstream_station], net.station_by_id[seg.downstream_station]
    assert min(up.lat, down.lat) - 1e-6 <= rec["Latitude"] <= max(up.lat, down.lat) + 1e-6
    assert min(up.lon, down.lon) - 1e-6 <= rec["Longitude"] <= max(up.lon, down.lon) + 1e-6
    assert rec["Message"].startswith("(3/3)10:") and "PIE" in rec["Message"]


def test_webhook_gets_a_correctly_signed_alert_after_a_retry(live):
    requests = live["webhook"]
    opened = [(h, b, s) for h, b, s in requests if json.loads(b)["alert"]["kind"] == "incident_open"]
    assert [s for _, _, s in opened] == [503, 200]  # refused once, delivered on the retry
    (h1, b1, _), (h2, b2, _) = opened
    assert h1["X-Roadpulse-Delivery"] == h2["X-Roadpulse-Delivery"] and b1 == b2
    assert (h1["X-Roadpulse-Attempt"], h2["X-Roadpulse-Attempt"]) == ("1", "2")
    assert h2["X-Roadpulse-Signature"].startswith("sha256=")
    assert verify(live["secret"], b2, h2["X-Roadpulse-Signature"])
    assert not verify("another-secret", b2, h2["X-Roadpulse-Signature"])
    alert = json.loads(b2)["alert"]
    assert alert["segment_id"] == live["segment"].segment_id and alert["source"] == "web"


def test_operator_sees_the_cameras_annotated_snapshot(live):
    # the run's own cameras (one is cued to the incident's segment) and the test's camera watch that segment;
    # the page shows whichever snapshot came last, with its detections drawn
    caption = live["camera_caption"]
    assert "CAM-" in caption and live["segment"].segment_id in caption and "detections drawn" in caption


def test_web_subscription_alerts_match_what_the_run_detected(live):
    stats = live["report"].pipeline.stats
    opened = [i for i in stats.incidents if i.algorithm == "statistical" and i.status == "open"
              and i.segment_id == live["segment"].segment_id]
    assert opened, "the pipeline detected the staged incident"
    bodies = [json.loads(b)["alert"] for _, b, s in live["webhook"] if s == 200]
    assert any(a["kind"] == "incident_open" and a["incident_id"] == opened[0].incident_id for a in bodies)
