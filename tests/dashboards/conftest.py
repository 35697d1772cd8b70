"""Fixtures for the dashboard tests: the real InfluxDB and one seeded run written into it.

The InfluxDB is the one started by the project's script (``scripts/services/influxdb.sh
start`` or ``scripts/services/up.sh``). Connection settings come from the environment
(INFLUX_URL, INFLUX_TOKEN, INFLUX_ORG), else from $ROADPULSE_RUN/services.env or
$ROADPULSE_RUN/influxdb/client.env. When it cannot be reached the tests FAIL with a
hint, never skip.
"""
from __future__ import annotations

import json
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from ingest.bus import MemoryBus
from ingest.chaos import ChaosInjector
from models.network import Network
from models.singapore import singapore_network
from roadpulse.settings import parse_time_ms
from roadpulse.subscriptions import default_subscriptions
from simulators import IncidentSpec, SimulationConfig, TrafficSimulator
from stream.core.alerts import Subscription
from stream.core.pipeline import PipelineConfig
from stream.embedded import EmbeddedPipeline, publish_readings
from stream.sinks.influx import InfluxSink
from stream.sinks.sqlite_store import LocalStore

START_MS = parse_time_ms("2026-03-03T10:00:00+08:00")  # Tuesday mid-morning
DURATION_S = 2 * 3600
INCIDENT_START_MS = START_MS + 40 * 60_000
INCIDENT_DURATION_MS = 30 * 60_000




def _influxql(influx: dict[str, str], statement: str) -> None:
    data = urllib.parse.urlencode({"q": statement}).encode()
    req = urllib.request.Request(f"{influx['url']}/query", data=data, method="POST",
                                 headers={"Authorization": f"Token {influx['token']}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        json.load(resp)


def create_bucket(influx: dict[str, str], name: str) -> None:
    """A fresh 1.x database (the v2 API's bucket on 1.8) or a 2.x bucket."""
    if influx["version"].startswith("1."):
        _influxql(influx, f'CREATE DATABASE "{name}"')
        return
    from influxdb_client import InfluxDBClient
    with InfluxDBClient(url=influx["url"], token=influx["token"], org=influx["org"]) as client:
        client.buckets_api().create_bucket(bucket_name=name, org=influx["org"])


def drop_bucket(influx: dict[str, str], name: str) -> None:
    if influx["version"].startswith("1."):
        _influxql(influx, f'DROP DATABASE "{name}"')
        return
    from influxdb_client import InfluxDBClient
    with InfluxDBClient(url=influx["url"], token=influx["token"], org=influx["org"]) as client:
        bucket = client.buckets_api().find_bucket_by_name(name)
        if bucket is not None:
            client.buckets_api().delete_bucket(bucket)


class TeeSink:
    """Hands every result to several sinks: the same run lands in InfluxDB and in a local store."""

    def __init__(self, *sinks) -> None:
        self.sinks = sinks

    def __getattr__(self, name: str):
        if not name.startswith("write_"):
            raise AttributeError(name)
        def write(*args, **kwargs) -> None:
            for sink in self.sinks:
                getattr(sink, name)(*args, **kwargs)
        return write


@dataclass
class SeededRun:
    """A finished embedded run whose results are in ``bucket``."""

    network: Network
    bucket: str
    start_ms: int
    stop_ms: int
    incident_start_ms: int
    incident_end_ms: int
    pipeline: EmbeddedPipeline
    points_written: int
    local: LocalStore  # the same results in the embedded store (a reference for reading back)
    incident_segment_id: str  # where the staged incident is


def seeded_run_into_influx(influx: dict[str, str], bucket: str, spool_dir: Path) -> SeededRun:
    """Simulator -> memory bus -> core -> InfluxSink, wired as ``roadpulse run`` wires the sqlite store.

    Two hours on the start of the PIE eastbound, one staged incident (two lanes
    blocked for 30 min) on a commuter's route, 2 % faulty detectors and 1 % corrupted
    messages, so that incidents, alerts, detector health and dead letters all exist.
    """
    network = singapore_network(200)
    roadway = network.roadways[0]
    spec = IncidentSpec(roadway.key, location_km=6.25, start_ms=INCIDENT_START_MS,
                        duration_ms=INCIDENT_DURATION_MS, lanes_blocked=2)
    sim = TrafficSimulator(network, SimulationConfig(seed=11, start_ms=START_MS, duration_s=DURATION_S,
                                                     n_random_incidents=0, incidents=(spec,),
                                                     fault_fraction=0.02))
    seg = next(i for i, s in enumerate(roadway.segments) if s.start_km <= spec.location_km < s.end_km)
    commuter = Subscription("amy", tuple(s.segment_id for s in roadway.segments[seg - 2:seg + 1]),
                            name="Amy's commute through the incident")
    bus = MemoryBus(partitions=4)
    sink = InfluxSink(influx["url"], influx["token"], influx["org"], bucket, spool_dir, max_retries=3)
    local = LocalStore(spool_dir.parent / "reference.sqlite")
    pipe = EmbeddedPipeline(network, PipelineConfig(subscriptions=(*default_subscriptions(network), commuter)), bus,
                            TeeSink(sink, local))
    chaos = ChaosInjector(rate=0.01, seed=11)
    producer = bus.producer()
    end_ms = START_MS + DURATION_S * 1000
    last_ms = START_MS
    for batch in sim:
        publish_readings(producer, batch, network, chaos)
        last_ms = int(batch.interval_start_ms.max() + batch.interval_ms.max()) if len(batch) else sim.now_ms
        pipe.step(now_ms=last_ms)
    pipe.finish(now_ms=max(last_ms, end_ms))
    TeeSink(sink, local).write_pipeline("embedded", end_ms, {
        "readings_total": pipe.stats.readings_in, "readings_per_s": float(pipe.stats.readings_in) / DURATION_S,
        "dead_letters_total": sum(pipe.stats.dead_letters.values())})
    sink.close()
    status = sink.spool.status()
    assert sink.stats.points_rejected == 0 and status.pending_points == 0, (sink.stats, status)
    return SeededRun(network, bucket, START_MS, end_ms + 60_000, INCIDENT_START_MS,
                     INCIDENT_START_MS + INCIDENT_DURATION_MS, pipe, sink.stats.points_written, local,
                     roadway.segments[seg].segment_id)


@pytest.fixture(scope="session")
def seeded_run(influx_server, tmp_path_factory):
    """One seeded run in a fresh database for the whole session; the database is dropped afterwards."""
    bucket = f"rp_dash_{uuid.uuid4().hex[:10]}"
    create_bucket(influx_server, bucket)
    try:
        run = seeded_run_into_influx(influx_server, bucket, tmp_path_factory.mktemp("run") / "spool")
        yield run
        run.local.close()
    finally:
        drop_bucket(influx_server, bucket)
