"""The Kafka path end to end: simulator -> Kafka -> faust workers (-> InfluxDB), with its limit and a naive agent.

Prints one JSON document:

- ``end_to_end``: readings/s from the first message produced until every
  corridor partition has passed the end-of-stream marker (two worker
  subprocesses sharing 4 partitions); latency p50/p99 from the moment a worker
  closes a window (header ``closed_ns``) to the moment a reader sees the row
  on ``flow_windows`` (a confluent-kafka consumer running during the run);
- ``limit``: a confluent-kafka consumer that drains the same readings topic and
  decodes every message (``decode_reading_columns``) and does nothing else;
- ``naive``: a faust agent taking one reading per message (same readings, one
  JSON row each) and aggregating per detector and 30-s window in Python dicts,
  on a subset (it is slow);
- ``publish``: readings/s of the producer alone (messages pre-encoded).

Kafka must run on 127.0.0.1:9092 (scripts/services/kafka.sh start). With
--influx URL the workers also write to InfluxDB (bucket must exist).
Usage: .venv/bin/python benchmarks/kafka_path.py --detectors 2000 --duration 1h
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
from confluent_kafka import Consumer

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ingest.kafka import KafkaProducer, delete_topics, ensure_topics  # noqa: E402
from models.singapore import singapore_network  # noqa: E402
from models.wire import decode_reading_columns  # noqa: E402
from roadpulse.fullstack import publish_simulation, spawn_worker, stop_worker, wait_until_finished  # noqa: E402
from roadpulse.settings import parse_duration_s, parse_time_ms  # noqa: E402
from simulators import SimulationConfig, TrafficSimulator  # noqa: E402

PARTITIONS = 4


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple] = []

    def produce(self, topic, value, key=None, timestamp_ms=None, headers=None, partition=None) -> None:
        self.sent.append((value, key, timestamp_ms, headers, partition))

    def flush(self, timeout_s: float = 10.0) -> int:
        return 0


def _produce(bootstrap: str, prefix: str, sent: list[tuple], topic: str = "readings") -> float:
    p = KafkaProducer(bootstrap, prefix)
    t0 = time.perf_counter()
    for value, key, ts, headers, partition in sent:
        p.produce(topic, value, key=key, timestamp_ms=ts, headers=headers, partition=partition)
    assert p.flush(120) == 0
    return time.perf_counter() - t0


class LatencyReader(threading.Thread):
    """Reads flow_windows while the run goes on; latency = seen - closed_ns."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"lat-{uuid.uuid4().hex[:6]}",
                           "auto.offset.reset": "earliest", "enable.auto.commit": False,
                           "fetch.wait.max.ms": 10, "topic.metadata.refresh.interval.ms": 1000})
        self.c.subscribe([topic])
        self.latencies_s: list[float] = []
        self.rows = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for m in self.c.consume(1000, 0.1):
                if m.error():
                    continue
                now = time.time_ns()
                h = dict(m.headers() or [])
                if "closed_ns" in h:
                    self.latencies_s.append((now - int(h["closed_ns"])) / 1e9)
        self.c.close()


def end_to_end(bootstrap: str, network, sent: list[tuple], readings: int, detectors: int, influx: str | None,
               workdir: Path) -> dict:
    run = uuid.uuid4().hex[:8]
    prefix, app_id = f"bench{run}.", f"bench-{run}"
    ensure_topics(bootstrap, prefix, partitions=PARTITIONS)
    extra = ["--detectors", str(detectors), "--batch", "20000", "--within", "0.2", "--standby", "0",
             "--stats-interval", "5"]
    if influx:
        extra += ["--influx", influx]
    workers = [spawn_worker(f"kafka://{bootstrap}", i, app_id=app_id, topic_prefix=prefix, partitions=PARTITIONS,
                            data_root=workdir / run, extra_args=extra) for i in range(2)]
    reader = LatencyReader(bootstrap, prefix + "flow_windows")
    try:
        time.sleep(12)  # workers join the group (otherwise their start-up is in the figure)
        reader.start()
        t0 = time.perf_counter()
        _produce(bootstrap, prefix, sent)
        wait_until_finished(bootstrap, app_id, PARTITIONS, 1800, workers)
        wall = time.perf_counter() - t0
        time.sleep(1.0)
    finally:
        reader.stop.set()
        for w in workers:
            stop_worker(w)
    for log in sorted((workdir / run).glob("worker-*/worker.log")):
        stats = [ln for ln in log.read_text(errors="replace").splitlines() if "stats {" in ln]
        if stats:
            print(log.parent.name, stats[-1].split("stats ", 1)[1], file=sys.stderr)
    lat = np.array(reader.latencies_s) if reader.latencies_s else np.array([np.nan])
    out = {"readings": readings, "messages": len(sent), "wall_s": round(wall, 2),
           "readings_per_s": round(readings / wall), "messages_per_s": round(len(sent) / wall),
           "window_close_to_readable_p50_s": round(float(np.nanpercentile(lat, 50)), 3),
           "window_close_to_readable_p99_s": round(float(np.nanpercentile(lat, 99)), 3),
           "flow_messages_seen": len(reader.latencies_s), "influx": bool(influx)}
    return out | {"_prefix": prefix, "_app_id": app_id}


def limit(bootstrap: str, topic: str, n_messages: int) -> dict:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"limit-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    seen = rows = 0
    t0 = None
    while seen < n_messages:
        msgs = c.consume(10_000, 1.0)
        if t0 is None and msgs:
            t0 = time.perf_counter()
        for m in msgs:
            if m.error():
                continue
            seen += 1
            if m.value():
                rows += len(decode_reading_columns(m.value())["detector_id"])
    wall = time.perf_counter() - t0
    c.close()
    return {"messages": seen, "readings": rows, "wall_s": round(wall, 2), "readings_per_s": round(rows / wall)}


NAIVE_APP = r'''
import os, sys, time, orjson, faust
broker, topic, n, out = os.environ["NAIVE_BROKER"], os.environ["NAIVE_TOPIC"], int(os.environ["NAIVE_N"]), os.environ["NAIVE_OUT"]
app = faust.App("naive-" + topic, broker=broker, store="memory://", value_serializer="raw", web_enabled=False,
                topic_disable_leader=True, consumer_auto_offset_reset="earliest")
src = app.topic(topic, value_type=bytes, value_serializer="raw")
acc = {}
state = {"n": 0, "t0": None}

@app.agent(src)
async def naive(stream):
    async for value in stream:
        if state["t0"] is None:
            state["t0"] = time.perf_counter()
        r = orjson.loads(value)
        key = (r["d"], r["t"] - r["t"] % 30000)
        a = acc.get(key)
        if a is None:
            a = acc[key] = [0, 0.0, 0, 0.0, 0.0, 0]
        n_i, v = r["n"], r["s"]
        a[0] += n_i; a[1] += r["o"] * r["i"]; a[2] += r["i"]
        if n_i > 0 and v:
            a[3] += n_i * v; a[4] += n_i / v; a[5] += n_i
        state["n"] += 1
        if state["n"] == n:  # the parent stops us (app.stop() from inside an agent deadlocks)
            open(out, "w").write(str(time.perf_counter() - state["t0"]))

app.main()
'''


def naive(bootstrap: str, sent: list[tuple], n_readings: int, workdir: Path) -> dict:
    run = uuid.uuid4().hex[:8]
    prefix = f"naive{run}."
    ensure_topics(bootstrap, prefix, partitions=PARTITIONS, streams=("readings",))
    rows = []
    for value, key, ts, _headers, partition in sent:
        if partition is not None or not value:
            continue
        try:
            c = decode_reading_columns(value)
        except Exception:  # noqa: BLE001 - a corrupted message
            continue
        for j in range(len(c["detector_id"])):
            rows.append((orjson.dumps({"d": c["detector_id"][j], "t": c["interval_start_ms"][j],
                                       "i": c["interval_ms"][j], "n": c["vehicle_count"][j],
                                       "o": c["occupancy_pct"][j], "s": c["speed_kmh"][j]}), key, ts, None, None))
            if len(rows) >= n_readings:
                break
        if len(rows) >= n_readings:
            break
    _produce(bootstrap, prefix, rows)
    script = workdir / "naive_app.py"
    script.write_text(NAIVE_APP)
    out = workdir / f"naive-{run}.txt"
    env = {**os.environ, "NAIVE_BROKER": f"kafka://{bootstrap}", "NAIVE_TOPIC": prefix + "readings",
           "NAIVE_N": str(len(rows)), "NAIVE_OUT": str(out)}
    with open(workdir / "naive.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, str(script), "worker", "-l", "warn", "--without-web"],
                                cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 1800
        try:
            while not out.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.5)
        finally:
            stop_worker(proc)
    delete_topics(bootstrap, prefix)
    wall = float(out.read_text())
    return {"readings": len(rows), "wall_s": round(wall, 2), "readings_per_s": round(len(rows) / wall)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    ap.add_argument("--detectors", type=int, default=2000)
    ap.add_argument("--duration", default="1h")
    ap.add_argument("--naive-readings", type=int, default=50_000)
    ap.add_argument("--influx", default=os.environ.get("ROADPULSE_INFLUX"))
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="rp-kafka-bench-"))
    network = singapore_network(args.detectors)
    sim = TrafficSimulator(network, SimulationConfig(seed=7, start_ms=parse_time_ms("2026-03-03T07:00:00+08:00"),
                                                     duration_s=parse_duration_s(args.duration),
                                                     n_random_incidents=2, fault_fraction=0.0))
    rec = Recorder()
    t0 = time.perf_counter()
    stats = publish_simulation(rec, network, sim, partitions=PARTITIONS)
    sim_s = time.perf_counter() - t0
    result: dict = {"machine_cores": os.cpu_count(), "detectors": network.n_detectors,
                    "stations": len(network.stations), "simulated_s": parse_duration_s(args.duration),
                    "readings": stats.readings, "messages": len(rec.sent),
                    "readings_per_message": round(stats.readings / max(stats.messages, 1), 2),
                    "simulate_and_encode_s": round(sim_s, 2)}
    e2e = end_to_end(args.bootstrap, network, rec.sent, stats.readings, args.detectors, args.influx, workdir)
    prefix, app_id = e2e.pop("_prefix"), e2e.pop("_app_id")
    result["end_to_end"] = e2e
    print(json.dumps(result), file=sys.stderr)
    result["limit"] = limit(args.bootstrap, prefix + "readings", len(rec.sent))
    pub_prefix = f"pub{uuid.uuid4().hex[:8]}."
    ensure_topics(args.bootstrap, pub_prefix, partitions=PARTITIONS, streams=("readings",))
    pub_s = _produce(args.bootstrap, pub_prefix, rec.sent)
    result["publish"] = {"wall_s": round(pub_s, 2), "readings_per_s": round(stats.readings / pub_s)}
    delete_topics(args.bootstrap, prefix)
    delete_topics(args.bootstrap, app_id)
    delete_topics(args.bootstrap, pub_prefix)
    result["naive"] = naive(args.bootstrap, rec.sent, args.naive_readings, workdir)
    e = result["end_to_end"]["readings_per_s"]
    result["ratios"] = {"end_to_end_over_limit": round(e / result["limit"]["readings_per_s"], 3),
                        "end_to_end_over_naive": round(e / result["naive"]["readings_per_s"], 1)}
    result["goals"] = {"readings_per_s>=1M": e >= 1_000_000,
                       ">=0.5_of_limit": result["ratios"]["end_to_end_over_limit"] >= 0.5,
                       ">=20x_naive": result["ratios"]["end_to_end_over_naive"] >= 20,
                       "p99<=1s": result["end_to_end"]["window_close_to_readable_p99_s"] <= 1.0}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
