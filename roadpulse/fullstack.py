"""CLI handlers of the Kafka runtime: `roadpulse worker`, `roadpulse simulate`, and `run` on the full stack.

``add_arguments(subparsers)`` adds the ``worker`` and ``simulate`` subcommands;
``cmd_worker`` / ``cmd_simulate`` handle them; ``run_fullstack`` is `roadpulse run`
with ``--broker kafka://...``: topics, workers (subprocesses), simulator, wait
for the end-of-stream marker to pass through, read back the totals.

Also usable directly: ``python -m roadpulse.fullstack worker --broker kafka://127.0.0.1:9092``.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from roadpulse.settings import DEFAULT_START, Settings, SettingsError, env_default, parse_duration_s, parse_time_ms

log = logging.getLogger(__name__)

EOS_KEY = "__eos__"
REPO = Path(__file__).resolve().parent.parent


# ---- arguments -------------------------------------------------------------------
def _kafka_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", default=env_default("ROADPULSE_BROKER", "kafka://127.0.0.1:9092"), metavar="URL",
                   help="kafka://HOST:PORT [env ROADPULSE_BROKER] (default kafka://127.0.0.1:9092)")
    p.add_argument("--topic-prefix", default="roadpulse.", help="prefix of every topic (default roadpulse.)")
    p.add_argument("--partitions", type=int, default=4,
                   help="partitions of readings and station_windows = faust topic_partitions (default 4)")
    p.add_argument("--network", type=Path, default=None, metavar="FILE",
                   help="road network JSON file; default: Singapore's expressways")
    p.add_argument("--detectors", type=int, default=None, metavar="N", help="scale the default network to ~N detectors")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def add_arguments(subparsers: Any) -> None:
    """Add the ``worker`` and ``simulate`` subcommands to the roadpulse CLI."""
    w = subparsers.add_parser(
        "worker", help="run a faust stream worker on Kafka (start one or more; they share the partitions)",
        description="Run a faust worker: readings -> validation -> windows -> segments, incidents, alerts. "
                    "Workers of the same --app-id share the partitions; each needs its own --web-port and "
                    "--data-dir.")
    _kafka_flags(w)
    w.add_argument("--influx", default=env_default("ROADPULSE_INFLUX"), metavar="URL",
                   help="InfluxDB URL (results are always on the Kafka topics too) [env ROADPULSE_INFLUX]")
    w.add_argument("--influx-bucket", default=env_default("INFLUX_BUCKET", "roadpulse"), help="bucket (default roadpulse)")
    w.add_argument("--influx-org", default=env_default("INFLUX_ORG", "roadpulse"), help="org (default roadpulse)")
    w.add_argument("--app-id", default="roadpulse", help="faust app id = consumer group (default roadpulse)")
    w.add_argument("--web-port", type=int, default=6066, help="faust web port (default 6066)")
    w.add_argument("--no-web", action="store_true", help="no faust web server")
    w.add_argument("--data-dir", type=Path, default=Path("out/faust"), help="worker data dir (default out/faust)")
    w.add_argument("--batch", type=int, default=10_000, help="messages per batch (default 10000)")
    w.add_argument("--within", type=float, default=0.25, help="max seconds to fill a batch (default 0.25)")
    w.add_argument("--standby", type=int, default=1, help="standby table replicas (default 1)")
    w.add_argument("--subscriptions", type=Path, default=None, metavar="FILE", help="commuter subscriptions JSON")
    w.add_argument("--stats-interval", type=float, default=0.0, metavar="S",
                   help="log the worker's counters every S seconds (default: never)")

    s = subparsers.add_parser(
        "simulate", help="publish simulated detector readings to Kafka",
        description="Simulate loop detectors and publish one message per station and interval (key = station id) "
                    "to the readings topic, as fast as possible or at real time x --speedup; ends with an "
                    "end-of-stream marker on every partition unless --no-end-marker.")
    _kafka_flags(s)
    s.add_argument("--duration", default="1h", help="simulated time, e.g. 1h, 90m (default 1h)")
    s.add_argument("--start", default=DEFAULT_START, help=f"simulated start, ISO-8601 (default {DEFAULT_START})")
    s.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    s.add_argument("--incidents", type=int, default=4, help="random incidents (default 4)")
    s.add_argument("--fault-fraction", type=float, default=0.01, help="share of faulty detectors (default 0.01)")
    s.add_argument("--bad-records", type=float, default=0.0005, metavar="RATE",
                   help="share of messages corrupted on purpose (default 0.0005)")
    s.add_argument("--speedup", type=float, default=math.inf,
                   help="simulated seconds per wall second (default: as fast as possible)")
    s.add_argument("--no-end-marker", action="store_true", help="do not send the end-of-stream marker")


# ---- worker ------------------------------------------------------------------------
def _network(args: argparse.Namespace) -> Any:
    from models.network import Network
    from models.singapore import singapore_network

    return Network.load(args.network) if args.network else singapore_network(args.detectors)


def _bootstrap(url: str) -> str:
    return Settings(broker_url=url).kafka_bootstrap


def cmd_worker(args: argparse.Namespace) -> int:
    """`roadpulse worker`: ensure the topics, then run a faust worker until stopped."""
    from ingest.kafka.admin import check_broker, ensure_topics
    from roadpulse.subscriptions import default_subscriptions, load_subscriptions
    from stream.core.pipeline import PipelineConfig
    from stream.faust_app import WorkerConfig, build_runtime, run_worker

    bootstrap = _bootstrap(args.broker)
    try:
        check_broker(bootstrap)
    except Exception as exc:  # noqa: BLE001
        raise SettingsError(f"no Kafka broker answers at {bootstrap}: {exc}") from exc
    network = _network(args)
    ensure_topics(bootstrap, args.topic_prefix, partitions=args.partitions)
    subs = (load_subscriptions(args.subscriptions, network) if args.subscriptions
            else default_subscriptions(network))
    sink = None
    if args.influx:
        from stream.sinks.influx import InfluxSink

        sink = InfluxSink(args.influx, os.environ.get("INFLUX_TOKEN", ""), args.influx_org, args.influx_bucket,
                          spool_dir=args.data_dir / "influx-spool")
    config = WorkerConfig(broker_url=f"kafka://{bootstrap}", app_id=args.app_id, topic_prefix=args.topic_prefix,
                          partitions=args.partitions, web_port=args.web_port, web_enabled=not args.no_web,
                          data_dir=args.data_dir, batch_max=args.batch, batch_within_s=args.within,
                          standby_replicas=args.standby, stats_interval_s=args.stats_interval)
    runtime = build_runtime(config, network, PipelineConfig(subscriptions=subs), sink)
    run_worker(runtime, loglevel="debug" if args.verbose else "warning")
    return 0


# ---- simulate -------------------------------------------------------------------------
@dataclass
class PublishStats:
    messages: int = 0
    readings: int = 0
    intervals: int = 0
    wall_s: float = 0.0
    end_ms: int = 0
    injected: Counter = field(default_factory=Counter)


def publish_simulation(producer: Any, network: Any, simulator: Any, *, partitions: int, chaos: Any = None,
                       speedup: float = math.inf, end_marker: bool = True,
                       on_message: Callable[[str, bytes, int], None] | None = None) -> PublishStats:
    """Publish every interval of ``simulator`` (one message per station, keyed by station id).

    ``on_message(key, payload, timestamp_ms)`` sees every message sent (tests feed
    the embedded runtime the same bytes). With a finite ``speedup`` simulated time
    runs that many times faster than the wall clock. The end-of-stream marker
    (key ``__eos__``, header ``eos`` = end time ms) goes to every partition.
    """
    from ingest.publish import encode_station_messages

    stats = PublishStats()
    t0 = time.perf_counter()
    start_ms = simulator.start_ms
    last_ms = start_ms
    while True:
        batch = simulator.next_interval()
        if batch is None:
            break
        if math.isfinite(speedup):
            due = t0 + (int(batch.interval_start_ms[0]) - start_ms) / 1000 / speedup
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        for key, payload, ts in encode_station_messages(batch, network):
            for p in (chaos.maybe_corrupt(payload) if chaos else (payload,)):
                producer.produce("readings", p, key=key, timestamp_ms=ts)
                if on_message is not None:
                    on_message(key, p, ts)
                stats.messages += 1
        stats.readings += len(batch)
        stats.intervals += 1
        if len(batch):
            last_ms = max(last_ms, int(batch.interval_start_ms.max() + batch.interval_ms.max()))
    stats.end_ms = max(last_ms, simulator.end_ms)
    if end_marker:
        for p in range(partitions):
            producer.produce("readings", b"", key=EOS_KEY, timestamp_ms=stats.end_ms,
                             headers={"eos": str(stats.end_ms).encode()}, partition=p)
    left = producer.flush(60.0)
    if left:
        raise RuntimeError(f"{left} readings messages still undelivered after 60 s")
    stats.wall_s = time.perf_counter() - t0
    if chaos is not None:
        stats.injected = Counter(chaos.injected)
    return stats


def cmd_simulate(args: argparse.Namespace) -> int:
    """`roadpulse simulate`: publish a simulated period to Kafka and print what was sent."""
    import json

    from ingest.chaos import ChaosInjector
    from ingest.kafka import KafkaProducer, ensure_topics
    from simulators import SimulationConfig, TrafficSimulator

    bootstrap = _bootstrap(args.broker)
    network = _network(args)
    ensure_topics(bootstrap, args.topic_prefix, partitions=args.partitions)
    sim = TrafficSimulator(network, SimulationConfig(
        seed=args.seed, start_ms=parse_time_ms(args.start), duration_s=parse_duration_s(args.duration),
        n_random_incidents=args.incidents, fault_fraction=args.fault_fraction))
    chaos = ChaosInjector(rate=args.bad_records, seed=args.seed) if args.bad_records > 0 else None
    producer = KafkaProducer(bootstrap, args.topic_prefix)
    stats = publish_simulation(producer, network, sim, partitions=args.partitions, chaos=chaos,
                               speedup=args.speedup, end_marker=not args.no_end_marker)
    print(json.dumps({"messages": stats.messages, "readings": stats.readings, "intervals": stats.intervals,
                      "wall_s": round(stats.wall_s, 2),
                      "readings_per_s": round(stats.readings / stats.wall_s) if stats.wall_s else None,
                      "bad_records_injected": dict(stats.injected), "end_ms": stats.end_ms}, indent=2))
    return 0


# ---- workers as subprocesses, read-back -----------------------------------------------
def spawn_worker(broker_url: str, index: int, *, app_id: str, topic_prefix: str, partitions: int, data_root: Path,
                 extra_args: list[str] | None = None, log_file: Path | None = None,
                 env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``roadpulse.fullstack worker`` in a subprocess (own web port and data dir); returns the process."""
    data_dir = Path(data_root) / f"worker-{index}"
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "roadpulse.fullstack", "worker", "--broker", broker_url, "--app-id", app_id,
           "--topic-prefix", topic_prefix, "--partitions", str(partitions), "--data-dir", str(data_dir),
           "--no-web", *(extra_args or [])]
    out = open(log_file or data_dir / "worker.log", "ab")  # noqa: SIM115 - owned by the child
    return subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def stop_worker(proc: subprocess.Popen, timeout_s: float = 30.0) -> int:
    """TERM the worker we started and wait (KILL after ``timeout_s``); returns its exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def read_partition_states(bootstrap: str, app_id: str, table: str) -> dict[int, dict]:
    """Latest snapshot of every partition in a worker table (``station-state`` / ``corridor-state``)."""
    from ingest.kafka.consumer import read_topic
    from stream.faust_app.app import _OFFSET
    from stream.faust_app.state import load_state

    latest: dict[int, bytes] = {}
    for m in read_topic(bootstrap, f"{app_id}-{table}-changelog"):
        latest[int(m.key[1:])] = m.value
    return {p: load_state(v[_OFFSET.size:]) for p, v in latest.items()}


class TableWatcher:
    """Follows a worker table's changelog incrementally (latest snapshot per partition), cheaper than re-reading it."""

    def __init__(self, bootstrap: str, app_id: str, table: str) -> None:
        import uuid

        from confluent_kafka import Consumer

        self.topic = f"{app_id}-{table}-changelog"
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"watch-{uuid.uuid4().hex[:8]}",
                                   "enable.auto.commit": False, "auto.offset.reset": "earliest",
                                   "topic.metadata.refresh.interval.ms": 1000})
        self._consumer.subscribe([self.topic])
        self._latest: dict[int, bytes] = {}
        self._states: dict[int, dict] = {}

    def poll(self, timeout_s: float = 0.5) -> dict[int, dict]:
        """Snapshots (decoded) of every partition seen so far, after reading what is new."""
        from stream.faust_app.app import _OFFSET
        from stream.faust_app.state import load_state

        changed = set()
        while True:
            msgs = self._consumer.consume(10_000, timeout_s)
            for m in msgs:
                if m.error() is None and m.key():
                    p = int(m.key()[1:])
                    self._latest[p] = m.value()
                    changed.add(p)
            if len(msgs) < 10_000:
                break
            timeout_s = 0.0
        for p in changed:
            self._states[p] = load_state(self._latest[p][_OFFSET.size:])
        return dict(self._states)

    def close(self) -> None:
        self._consumer.close()


def wait_until_finished(bootstrap: str, app_id: str, partitions: int, timeout_s: float,
                        procs: list[subprocess.Popen] | None = None) -> dict[int, dict]:
    """Wait until every corridor partition has passed the end-of-stream marker; returns their states."""
    deadline = time.monotonic() + timeout_s
    watcher = TableWatcher(bootstrap, app_id, "corridor-state")
    states: dict[int, dict] = {}
    try:
        while time.monotonic() < deadline:
            for proc in procs or []:
                if proc.poll() is not None:
                    raise RuntimeError(f"worker {proc.args} exited with {proc.returncode} before the end of the stream")
            states = watcher.poll(0.5)
            if len(states) == partitions and all(s["finished"] for s in states.values()):
                return states
    finally:
        watcher.close()
    done = sorted(p for p, s in states.items() if s.get("finished"))
    raise TimeoutError(f"corridor partitions finished: {done} of {partitions} after {timeout_s}s")


def run_fullstack(settings: Settings, network: Any, pipeline_config: Any, *, workers: int = 2,
                  partitions: int = 4, timeout_s: float = 3600.0) -> dict:
    """`roadpulse run` on Kafka: topics, ``workers`` faust workers, the simulator, the totals read back.

    Subscriptions are the workers' defaults (``pipeline_config`` is used for the
    window and algorithm settings of the summary only: workers build their own
    from the same defaults).
    """
    import uuid

    from ingest.chaos import ChaosInjector
    from ingest.kafka import KafkaProducer, ensure_topics
    from simulators import SimulationConfig, TrafficSimulator

    bootstrap = settings.kafka_bootstrap
    run_id = uuid.uuid4().hex[:8]
    app_id = settings.extra.get("app_id", f"roadpulse-run-{run_id}")
    prefix = settings.extra.get("topic_prefix", f"{settings.topic_prefix}{run_id}.")
    ensure_topics(bootstrap, prefix, partitions=partitions)
    out = Path(settings.out_dir)
    extra: list[str] = []
    if settings.network_file:
        extra += ["--network", str(settings.network_file)]
    elif settings.detectors:
        extra += ["--detectors", str(settings.detectors)]
    if settings.influx_url:
        extra += ["--influx", settings.influx_url]
    if settings.subscriptions_file:
        extra += ["--subscriptions", str(settings.subscriptions_file)]
    procs = [spawn_worker(settings.broker_url, i, app_id=app_id, topic_prefix=prefix, partitions=partitions,
                          data_root=out / "faust", extra_args=extra) for i in range(workers)]
    try:
        sim = TrafficSimulator(network, SimulationConfig(
            seed=settings.seed, start_ms=settings.start_ms, duration_s=settings.duration_s,
            n_random_incidents=settings.incidents, fault_fraction=settings.fault_fraction))
        chaos = ChaosInjector(rate=settings.chaos_rate, seed=settings.seed)
        t0 = time.perf_counter()
        pub = publish_simulation(KafkaProducer(bootstrap, prefix), network, sim, partitions=partitions, chaos=chaos)
        corridor = wait_until_finished(bootstrap, app_id, partitions, timeout_s, procs)
        wall = time.perf_counter() - t0
        stations = read_partition_states(bootstrap, app_id, "station-state")
    finally:
        for proc in procs:
            stop_worker(proc)
    totals: Counter = Counter()
    for s in stations.values():
        totals.update(s["totals"])
    for s in corridor.values():
        totals.update(s["totals"])
    return {"app_id": app_id, "topic_prefix": prefix, "workers": workers, "partitions": partitions,
            "wall_s": round(wall, 2), "readings_published": pub.readings, "messages_published": pub.messages,
            "readings_per_wall_s": round(pub.readings / wall) if wall else None, "totals": dict(totals),
            "bad_records_injected": dict(pub.injected), "true_incidents": len(sim.ground_truth.incidents)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="roadpulse", description="roadpulse on Kafka: worker and simulate")
    add_arguments(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return {"worker": cmd_worker, "simulate": cmd_simulate}[args.command](args)
    except (SettingsError, ValueError, FileNotFoundError) as exc:
        print(f"roadpulse {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
