"""roadpulse command line: `roadpulse --help` lists every command."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from roadpulse.settings import DEFAULT_START, Settings, SettingsError, env_default, parse_duration_s, parse_time_ms

EPILOG = """examples:
  roadpulse run                              a simulated day on Singapore's expressways, embedded (no servers)
  roadpulse run --duration 2h --detectors 500 --seed 3
  roadpulse network export my-roads.json     write the default network as an editable file
  roadpulse run --network my-roads.json      run on your own roads
  roadpulse replay day.csv --network my-roads.json
  roadpulse query "SELECT * FROM incident"   query the local store with SQL
  roadpulse evaluate incidents               score every incident detector on held-out scenarios (DR, FAR, TTD)
  roadpulse run --serve --speedup 120        watch it live: operators' and commuters' pages at http://127.0.0.1:8080
  roadpulse serve --store out/roadpulse.sqlite   serve a finished run's results
"""


def _add_common_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--network", type=Path, default=None, metavar="FILE",
                   help="road network JSON file (docs/network-format.md); default: Singapore's expressways")
    p.add_argument("--detectors", type=int, default=None, metavar="N",
                   help="scale the default network to about N detectors (10 .. 50,000)")
    p.add_argument("--out", type=Path, default=Path("out"), metavar="DIR",
                   help="output folder for the store and summary (default: ./out)")
    p.add_argument("--broker", default=env_default("ROADPULSE_BROKER", "memory://"), metavar="URL",
                   help="memory:// (embedded, default) or kafka://HOST:PORT [env ROADPULSE_BROKER]")
    p.add_argument("--influx", default=env_default("ROADPULSE_INFLUX"), metavar="URL",
                   help="InfluxDB v2 API URL, e.g. http://127.0.0.1:8086; default: local sqlite store "
                        "[env ROADPULSE_INFLUX]")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roadpulse",
        description="roadpulse — loop detectors and cameras -> stream processing -> traffic flow, incidents "
                    "and commuter alerts. Embedded by default (one process, no servers).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="simulate sensors and run the whole pipeline (the main job)",
                         description="Simulate loop detectors on a road network and run the pipeline end to end: "
                                     "validation, windows, flow metrics, detector health, incident detection, "
                                     "commuter alerts, store. Prints a summary scored against the ground truth.")
    _add_common_run_flags(run)
    run.add_argument("--duration", default="24h", help="simulated time, e.g. 24h, 90m (default 24h)")
    run.add_argument("--start", default=DEFAULT_START, help=f"simulated start time, ISO-8601 (default {DEFAULT_START})")
    run.add_argument("--seed", type=int, default=7, help="random seed; same seed, same run (default 7)")
    run.add_argument("--incidents", type=int, default=4, help="random incidents to simulate (default 4)")
    run.add_argument("--fault-fraction", type=float, default=0.01,
                     help="share of detectors that develop a fault (default 0.01)")
    run.add_argument("--bad-records", type=float, default=0.0005, metavar="RATE",
                     help="share of messages corrupted on purpose to exercise dead letters (default 0.0005)")
    run.add_argument("--subscriptions", type=Path, default=None, metavar="FILE",
                     help="commuter subscriptions JSON (roadpulse/subscriptions.py); default: a few commutes")
    run.add_argument("--cameras", type=int, default=4, metavar="N",
                     help="simulated roadside cameras on stations of the first two roadways (plus one on each "
                          "staged incident's segment); 0 = none (default 4)")
    run.add_argument("--camera-every", type=int, default=60, metavar="MIN",
                     help="minutes between a camera's census clips; a camera the incident detector cues "
                          "films every minute (default 60)")
    from roadpulse import serve

    serve.add_run_arguments(run)

    net = sub.add_parser("network", help="show or export a road network",
                         description="Show a summary of a network, or export it as an editable JSON file.")
    net.add_argument("action", choices=["show", "export"], help="show a summary, or export to FILE")
    net.add_argument("file", nargs="?", type=Path, help="output file for export")
    net.add_argument("--network", type=Path, default=None, metavar="FILE", help="network file (default: Singapore)")
    net.add_argument("--detectors", type=int, default=None, metavar="N", help="scale the default network")

    replay = sub.add_parser("replay", help="replay recorded readings (CSV/Parquet) through the pipeline",
                            description="Play recorded loop readings (docs/replay-format.md) through the pipeline.")
    _add_common_run_flags(replay)
    replay.add_argument("file", type=Path, help="CSV or Parquet file of readings")
    replay.add_argument("--speedup", type=float, default=float("inf"),
                        help="play recorded time this many times faster (default: as fast as possible)")

    query = sub.add_parser("query", help="query the local store with SQL",
                           description="Run SQL against the local sqlite store and print the result.")
    query.add_argument("sql", help='e.g. "SELECT status, COUNT(*) FROM incident GROUP BY status"')
    query.add_argument("--store", type=Path, default=Path("out/roadpulse.sqlite"), help="store file")

    from roadpulse import dashboards_cli, evaluate_cli, fullstack

    evaluate_cli.add_arguments(sub)
    serve.add_arguments(sub)
    fullstack.add_arguments(sub)
    dashboards_cli.add_arguments(sub)
    return parser


def _network(args: argparse.Namespace):
    from models.network import Network
    from models.singapore import singapore_network

    if args.network is not None:
        return Network.load(args.network)
    return singapore_network(args.detectors)


def _settings(args: argparse.Namespace) -> Settings:
    return Settings(
        broker_url=args.broker,
        influx_url=args.influx,
        network_file=args.network,
        detectors=args.detectors,
        duration_s=parse_duration_s(getattr(args, "duration", "24h")),
        start_ms=parse_time_ms(getattr(args, "start", DEFAULT_START)),
        seed=getattr(args, "seed", 7),
        out_dir=args.out,
        incidents=getattr(args, "incidents", 4),
        fault_fraction=getattr(args, "fault_fraction", 0.01),
        chaos_rate=getattr(args, "bad_records", 0.0),
        subscriptions_file=getattr(args, "subscriptions", None),
        progress=not args.no_progress,
        extra={"cameras": getattr(args, "cameras", 4), "camera_every_min": getattr(args, "camera_every", 60)},
    )


def cmd_run(args: argparse.Namespace) -> int:
    from roadpulse.run import format_summary, run_embedded
    from roadpulse.subscriptions import default_subscriptions, load_subscriptions
    from stream.core.pipeline import PipelineConfig

    settings = _settings(args)
    network = _network(args)
    subs = (load_subscriptions(settings.subscriptions_file, network) if settings.subscriptions_file
            else default_subscriptions(network))
    if settings.runtime == "kafka":
        import json

        from roadpulse.fullstack import run_fullstack

        print(json.dumps(run_fullstack(settings, network, PipelineConfig(subscriptions=subs)), indent=2))
        return 0
    from roadpulse import serve

    config = PipelineConfig(subscriptions=subs)
    on_step, stop_serving = serve.start_for_run(args, network, config)  # also writes out/network.json
    try:
        report = run_embedded(settings, network, config, on_step=on_step)
        print(format_summary(report))
        stop_serving()  # with --keep-serving: serves on until Ctrl-C
    finally:
        stop_serving(keep=False)
    return 0


def cmd_network(args: argparse.Namespace) -> int:
    network = _network(args)
    if args.action == "export":
        if args.file is None:
            raise SettingsError("network export needs an output FILE")
        network.save(args.file)
        print(f"wrote {args.file}: {len(network.roadways)} roadways, {len(network.stations)} stations, "
              f"{network.n_detectors} detectors")
        return 0
    print(f"{network.name}: {len(network.roadways)} roadways, {len(network.stations)} stations, "
          f"{len(network.segments)} segments, {network.n_detectors} detectors")
    for r in network.roadways:
        print(f"  {r.key:<10} {r.name:<45} {r.length_km:6.1f} km  {len(r.stations):4d} stations")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from roadpulse.replay_run import replay_embedded

    if not args.file.exists():
        raise SettingsError(f"no such file: {args.file}")
    settings = _settings(args)
    print(replay_embedded(settings, _network(args), args.file, args.speedup))
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    import pandas as pd

    from stream.sinks.sqlite_store import LocalStore

    if not args.store.exists():
        raise SettingsError(f"no store at {args.store}; run `roadpulse run` first or pass --store")
    store = LocalStore(args.store)
    with pd.option_context("display.max_rows", 200, "display.width", 200):
        print(store.query(args.sql))
    store.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from roadpulse import evaluate_cli, fullstack, serve

    handlers = {"evaluate": evaluate_cli.run,"run": cmd_run, "network": cmd_network, "replay": cmd_replay, "query": cmd_query,
                "serve": serve.cmd_serve,
                "worker": fullstack.cmd_worker, "simulate": fullstack.cmd_simulate}
    handler = handlers.get(args.command) or getattr(args, "handler", None)
    if handler is None:  # a command group without its action, e.g. `roadpulse dashboards`
        parser.parse_args([args.command, "--help"])
        return 2
    try:
        return handler(args)
    except (SettingsError, ValueError, FileNotFoundError) as exc:
        print(f"roadpulse {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
