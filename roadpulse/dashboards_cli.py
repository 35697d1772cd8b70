"""`roadpulse dashboards {build,push}` and `roadpulse query-influx` (wired into roadpulse/cli.py).

``add_arguments(subparsers)`` adds the commands; each parser carries its handler
as ``args.handler`` (also in ``HANDLERS`` by command name). Handlers return an
exit code and print to stdout; bad input raises ``ValueError`` (exit 2 in the CLI).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable

QUERY_EPILOG = """ready-made queries (docs/influxdb.md):
  flow-by-segment-hour   hourly mean flow and speed per segment
  incident-durations     minutes from start to clearance per cleared incident
  worst-bottlenecks      the ten slowest segments (mean speed)
  congestion-hours       hours per segment below 30 km/h (LTA bands 1-3)
  dead-letters           rejected records per reason and hour
  open-incidents         incidents not cleared at --stop

examples:
  roadpulse query-influx worst-bottlenecks --start 2026-03-02T00:00+08:00 --stop 2026-03-03T00:00+08:00
  roadpulse query-influx 'from(bucket: v.defaultBucket) |> range(start: v.timeRangeStart) |> limit(n: 5)'
"""


def add_arguments(subparsers: argparse._SubParsersAction) -> None:
    """Add ``dashboards`` (build, push) and ``query-influx`` to the roadpulse command line."""
    dash = subparsers.add_parser("dashboards", help="build the Grafana dashboards, or push them to a Grafana",
                                 description="Grafana dashboards as code (dashboards/grafana/).")
    actions = dash.add_subparsers(dest="dashboards_action", metavar="ACTION", required=True)
    build = actions.add_parser("build", help="regenerate dashboards/json from the Python builders",
                               description="Write the dashboard JSON files (deterministic output).")
    build.add_argument("--out", type=Path, default=None, metavar="DIR", help="output folder (default dashboards/json)")
    build.add_argument("--network", type=Path, default=None, metavar="FILE",
                       help="network file whose segment positions go on the map (default: Singapore's)")
    build.add_argument("--detectors", type=int, default=None, metavar="N",
                       help="the default network scaled to about N detectors (as `roadpulse run --detectors`)")
    build.add_argument("--check", action="store_true",
                       help="write nothing; exit 1 if the files differ from a fresh build or break Grafana's schema")
    build.set_defaults(handler=cmd_dashboards_build)

    push = actions.add_parser("push", help="upload the data source and dashboards to a running Grafana",
                              description="Upload to Grafana over its HTTP API (idempotent: overwrites).")
    push.add_argument("--grafana", required=True, metavar="URL", help="Grafana base URL, e.g. http://127.0.0.1:3000")
    push.add_argument("--api-key", default=os.environ.get("GRAFANA_API_KEY"), metavar="KEY",
                      help="service account token [env GRAFANA_API_KEY]")
    push.add_argument("--user", default=os.environ.get("GRAFANA_USER"), help="basic auth user instead of a key")
    push.add_argument("--password", default=os.environ.get("GRAFANA_PASSWORD"), help="basic auth password")
    push.add_argument("--dir", type=Path, default=None, metavar="DIR", help="dashboard JSON folder (default dashboards/json)")
    push.add_argument("--influx-url", default=os.environ.get("ROADPULSE_INFLUX", "http://influxdb:8086"),
                      metavar="URL", help="InfluxDB URL as Grafana reaches it [env ROADPULSE_INFLUX]")
    push.add_argument("--influx-org", default=os.environ.get("INFLUX_ORG", "roadpulse"))
    push.add_argument("--influx-bucket", default=os.environ.get("INFLUX_BUCKET", "roadpulse"))
    push.add_argument("--influx-token", default=os.environ.get("INFLUX_TOKEN", ""), help="[env INFLUX_TOKEN]")
    push.add_argument("--no-datasource", action="store_true", help="push dashboards only")
    push.set_defaults(handler=cmd_dashboards_push)

    query = subparsers.add_parser("query-influx", help="run a ready-made or raw Flux query against InfluxDB",
                                  description="Run a named analyst query or raw Flux against InfluxDB and "
                                              "print a table. Grafana's v.timeRangeStart/v.timeRangeStop/"
                                              "v.defaultBucket/v.windowPeriod work in raw Flux too.",
                                  epilog=QUERY_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    query.add_argument("query", help="a name from the list below, or Flux text")
    query.add_argument("--start", default=None, help="ISO-8601 with offset or ms (default: --stop minus 24 h)")
    query.add_argument("--stop", default=None, help="ISO-8601 with offset or ms (default: now)")
    query.add_argument("--every", default="1m", help="v.windowPeriod for raw Flux (default 1m)")
    query.add_argument("--url", default=os.environ.get("INFLUX_URL") or os.environ.get("ROADPULSE_INFLUX"),
                       help="InfluxDB URL [env INFLUX_URL]")
    query.add_argument("--token", default=os.environ.get("INFLUX_TOKEN", ""), help="[env INFLUX_TOKEN]")
    query.add_argument("--org", default=os.environ.get("INFLUX_ORG", "roadpulse"), help="[env INFLUX_ORG]")
    query.add_argument("--bucket", default=os.environ.get("INFLUX_BUCKET", "roadpulse"), help="[env INFLUX_BUCKET]")
    query.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    query.add_argument("--max-rows", type=int, default=200, help="rows to print in table form (default 200)")
    query.add_argument("--show-flux", action="store_true", help="print the Flux sent, then the result")
    query.set_defaults(handler=cmd_query_influx)


# ---- handlers --------------------------------------------------------------------------
def _network(args: argparse.Namespace):
    if args.network is not None:
        from models.network import Network
        return Network.load(args.network)
    if args.detectors is not None:
        from models.singapore import singapore_network
        return singapore_network(args.detectors)
    return None


def cmd_dashboards_build(args: argparse.Namespace) -> int:
    from dashboards.grafana import JSON_DIR, build_all, render, write_all
    from dashboards.grafana.schema import validate_dashboard

    out = args.out or JSON_DIR
    boards = build_all(_network(args))
    problems = [f"{name}: {err}" for name, board in boards.items() for err in validate_dashboard(board)]
    if args.check:
        for name, board in boards.items():
            path = out / name
            if not path.is_file() or path.read_text(encoding="utf-8") != render(board):
                problems.append(f"{path}: differs from a fresh build (run `roadpulse dashboards build`)")
        print("\n".join(problems) if problems else f"{len(boards)} dashboards in {out} are up to date and valid")
        return 1 if problems else 0
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    for path in write_all(out, _network(args)):
        print(path)
    return 0


def cmd_dashboards_push(args: argparse.Namespace) -> int:
    from dashboards.grafana import JSON_DIR
    from dashboards.push import PushError, datasource_definition, push_directory

    datasource = None if args.no_datasource else datasource_definition(
        args.influx_url, args.influx_org, args.influx_bucket, args.influx_token)
    try:
        report = push_directory(args.grafana, args.dir or JSON_DIR, api_key=args.api_key, user=args.user,
                                password=args.password, datasource=datasource)
    except PushError as exc:
        print(f"roadpulse dashboards push: {exc}", file=sys.stderr)
        return 1
    print("\n".join(report.lines()))
    return 0


def resolve_query(text: str, start_ms: int, stop_ms: int, bucket: str, every_ms: int) -> str:
    """A ready-made query by name, or raw Flux; Grafana's macros substituted either way."""
    from dashboards.grafana.flux import interpolate
    from dashboards.grafana.queries import NAMED_QUERIES

    if text in NAMED_QUERIES:
        flux = NAMED_QUERIES[text]()
    elif "from(" in text or "|>" in text or "import " in text:
        flux = text
    else:
        raise ValueError(f"unknown query {text!r}: one of {', '.join(NAMED_QUERIES)}, or Flux text")
    return interpolate(flux, start_ms, stop_ms, bucket, every_ms)


def cmd_query_influx(args: argparse.Namespace) -> int:
    import pandas as pd
    import urllib3
    from influxdb_client.rest import ApiException

    from roadpulse.settings import parse_duration_s, parse_time_ms
    from stream.sinks.influx_query import InfluxConnection, query_frame

    if not args.url:
        raise ValueError("no InfluxDB URL: pass --url or set INFLUX_URL (e.g. http://127.0.0.1:8086)")
    stop_ms = parse_time_ms(args.stop) if args.stop else int(time.time() * 1000)
    start_ms = parse_time_ms(args.start) if args.start else stop_ms - 86_400_000
    if start_ms >= stop_ms:
        raise ValueError("--start must be before --stop")
    flux = resolve_query(args.query, start_ms, stop_ms, args.bucket, parse_duration_s(args.every) * 1000)
    if args.show_flux:
        print(flux)
    conn = InfluxConnection(url=args.url.rstrip("/"), token=args.token, org=args.org, bucket=args.bucket)
    try:
        df = query_frame(flux, conn)
    except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
        detail = getattr(exc, "body", None) or getattr(exc, "reason", None) or exc
        print(f"roadpulse query-influx: InfluxDB at {conn.url} failed: {detail}", file=sys.stderr)
        return 1
    df = df.drop(columns=[c for c in ("_start", "_stop", "_measurement") if c in df.columns])
    if args.csv:
        df.to_csv(sys.stdout, index=False)
    elif df.empty:
        print("(no rows)")
    else:
        with pd.option_context("display.max_columns", None, "display.width", 200):
            print(df.to_string(index=False, max_rows=args.max_rows))
    return 0


def cmd_dashboards(args: argparse.Namespace) -> int:
    """``roadpulse dashboards ACTION``: the action's handler."""
    return args.handler(args)


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "dashboards": cmd_dashboards,
    "query-influx": cmd_query_influx,
}
"""Command name -> handler, for roadpulse/cli.py's dispatch table."""


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m roadpulse.dashboards_cli``) until cli.py wires ``add_arguments``."""
    parser = argparse.ArgumentParser(prog="roadpulse")
    add_arguments(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ValueError as exc:
        print(f"roadpulse {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
