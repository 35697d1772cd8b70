"""`roadpulse serve --influx`: the web app over a full-stack run's results in the real InfluxDB.

The seeded run (tests/dashboards/conftest.py) wrote the same results to InfluxDB and to a
local sqlite store; loading either into the web state must give the same picture.
"""
from __future__ import annotations

from dashboards.web.server import WebContext
from dashboards.web.store_source import _load, load_influx_store
from stream.sinks.influx_query import InfluxConnection


def _picture(state) -> dict:
    figures = state.figures()
    return {
        "segments": {k: v for k, v in state.segments().items()},
        "dead_letters": figures["dead_letters"],
        "incident_events": figures["incident_events"],
        "alerts_sent": figures["alerts_sent"],
        "readings_in": figures.get("readings_in"),
    }


def test_state_from_influxdb_equals_the_state_from_the_local_store(influx_server, seeded_run):
    conn = InfluxConnection(url=influx_server["url"], token=influx_server["token"], org=influx_server["org"],
                            bucket=seeded_run.bucket)
    from_influx = WebContext.create(seeded_run.network).state
    counts = load_influx_store(conn, from_influx)
    from_local = WebContext.create(seeded_run.network).state
    _load(seeded_run.local, from_local)
    assert counts["segment_windows"] > 0 and counts["incident_events"] > 0 and counts["alerts"] > 0
    influx_picture, local_picture = _picture(from_influx), _picture(from_local)
    assert influx_picture["dead_letters"] == local_picture["dead_letters"]
    assert influx_picture["incident_events"] == local_picture["incident_events"]
    assert influx_picture["alerts_sent"] == local_picture["alerts_sent"]
    assert influx_picture["readings_in"] == local_picture["readings_in"] == seeded_run.pipeline.stats.readings_in
    assert set(influx_picture["segments"]) == set(local_picture["segments"])


def test_serve_cli_takes_an_influx_url():
    from roadpulse.cli import build_parser

    args = build_parser().parse_args(["serve", "--influx", "http://127.0.0.1:8086"])
    assert args.influx == "http://127.0.0.1:8086"
