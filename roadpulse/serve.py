"""`roadpulse run --serve` and `roadpulse serve`: the web app next to a run, or over a finished run's store.

``roadpulse run --serve`` starts the web app before the simulation and feeds it
from the pipeline's output topics while the run goes; ``--speedup N`` paces
simulated time at N x wall time so a person sees things move (default 60 with
``--serve``: a simulated hour a minute); ``--keep-serving`` keeps the app up
after the run until Ctrl-C. ``roadpulse serve --store out/roadpulse.sqlite``
serves what a finished run stored.

Every run writes ``network.json`` beside its store, so ``roadpulse serve`` draws
the same roads the run used (``--network FILE`` overrides).
"""
from __future__ import annotations

import argparse
import logging
import threading
from pathlib import Path
from typing import Any, Callable

from dashboards.web.feed import CameraDir, LiveRun
from dashboards.web.server import WebContext, WebServer
from dashboards.web.store_source import load_store
from models.network import Network
from stream.core.pipeline import PipelineConfig

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_SERVE_SPEEDUP = 60.0
NETWORK_FILE = "network.json"


def add_run_arguments(run_parser: argparse.ArgumentParser) -> None:
    """Add --serve, --host, --port, --speedup, --keep-serving, --camera-dir to `roadpulse run`."""
    g = run_parser.add_argument_group("web app")
    g.add_argument("--serve", action="store_true",
                   help="serve the operators' and commuters' pages and the DataMall-shaped API while the run goes")
    g.add_argument("--host", default=DEFAULT_HOST, help=f"address to serve on (default {DEFAULT_HOST})")
    g.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to serve on, 0 = any free (default {DEFAULT_PORT})")
    g.add_argument("--speedup", type=float, default=None, metavar="N",
                   help=f"run simulated time N x faster than wall time (default with --serve: {DEFAULT_SERVE_SPEEDUP:g}; "
                        "'inf' = as fast as possible)")
    g.add_argument("--keep-serving", action="store_true", help="keep serving after the run ends, until Ctrl-C")
    g.add_argument("--camera-dir", type=Path, default=None, metavar="DIR",
                   help="folder of camera snapshots <camera_id>.jpg to show operators (re-read when they change)")


def _option(source: Any, name: str, default: Any = None) -> Any:
    """An option from argparse args, or from ``Settings.extra``."""
    if hasattr(source, name):
        return getattr(source, name)
    extra = getattr(source, "extra", None) or {}
    return extra.get(name, default)


def write_network(network: Network, out_dir: str | Path) -> Path:
    """Save the run's network beside its store (what `roadpulse serve` draws)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / NETWORK_FILE
    network.save(path)
    return path


def start_for_run(settings_or_args: Any, network: Network, pipeline_config: PipelineConfig
                  ) -> tuple[Callable[[Any], None] | None, Callable[..., None]]:
    """Start the web app for a run when ``--serve`` was given.

    Returns ``(on_step, stop)``: pass ``on_step`` to ``run_embedded`` (None when not
    serving); call ``stop()`` once the run is over (with ``--keep-serving`` it serves
    on until Ctrl-C), and ``stop(keep=False)`` to stop at once (idempotent).
    Also writes ``network.json`` into the run's output folder.
    """
    out_dir = _option(settings_or_args, "out_dir", None) or _option(settings_or_args, "out", "out")
    write_network(network, out_dir)
    if not _option(settings_or_args, "serve", False):
        return None, lambda keep=None: None
    speedup = _option(settings_or_args, "speedup", None)
    speedup = DEFAULT_SERVE_SPEEDUP if speedup is None else float(speedup)
    ctx = WebContext.create(network, alert_algorithm=pipeline_config.alert_algorithm)
    server = WebServer(ctx, host=_option(settings_or_args, "host", DEFAULT_HOST),
                       port=int(_option(settings_or_args, "port", DEFAULT_PORT)))
    url = server.start()
    live = LiveRun(ctx.state, ctx.subscriptions, speedup=speedup, camera_dir=_option(settings_or_args, "camera_dir"))
    live.url = url
    live.context = ctx
    print(f"roadpulse web: operators {url}/operators · commuters {url}/commuters · "
          f"DataMall API {url}/ltaodataservice/v3/TrafficSpeedBands  (simulated time x{speedup:g})", flush=True)
    done = {"stopped": False}
    keep_default = bool(_option(settings_or_args, "keep_serving", False))

    def stop(keep: bool | None = None) -> None:
        if done["stopped"]:
            return
        live.finish()
        if keep_default if keep is None else keep:
            print(f"run finished; still serving on {url} — press Ctrl-C to stop", flush=True)
            _wait_for_ctrl_c()
        done["stopped"] = True
        server.stop()

    return live, stop


def _wait_for_ctrl_c(tick: Callable[[], None] | None = None, every_s: float = 5.0) -> None:
    stop = threading.Event()
    try:
        while not stop.wait(every_s):
            if tick is not None:
                tick()
    except KeyboardInterrupt:
        pass


def add_arguments(subparsers: Any) -> argparse.ArgumentParser:
    """Add `roadpulse serve` (serve a finished run's store) to the CLI's subparsers."""
    p = subparsers.add_parser(
        "serve", help="serve the web app over a finished run's store",
        description="Serve the operators' and commuters' pages and the DataMall-shaped API over the results "
                    "of a run: its sqlite store (embedded), or InfluxDB with --influx (full stack). Ctrl-C stops.")
    p.add_argument("--store", type=Path, default=Path("out/roadpulse.sqlite"), metavar="FILE",
                   help="the run's store (default out/roadpulse.sqlite)")
    p.add_argument("--influx", default=None, metavar="URL",
                   help="read the results from InfluxDB instead of a store file (full stack) [bucket, org and "
                        "token from INFLUX_BUCKET, INFLUX_ORG, INFLUX_TOKEN]")
    p.add_argument("--network", type=Path, default=None, metavar="FILE",
                   help="network file; default: network.json beside the store, else Singapore's expressways")
    p.add_argument("--detectors", type=int, default=None, metavar="N",
                   help="the default network scaled as for the run (when the store has no network.json)")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to serve on (default {DEFAULT_HOST})")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port, 0 = any free (default {DEFAULT_PORT})")
    p.add_argument("--camera-dir", type=Path, default=None, metavar="DIR",
                   help="folder of camera snapshots <camera_id>.jpg to show operators")
    p.set_defaults(handler=cmd_serve)
    return p


def network_for_store(store: Path, network_file: Path | None = None, detectors: int | None = None) -> Network:
    """The network to serve a store with: the given file, the run's network.json, or the default network."""
    if network_file is not None:
        return Network.load(network_file)
    beside = Path(store).parent / NETWORK_FILE
    if beside.exists():
        return Network.load(beside)
    from models.singapore import singapore_network

    return singapore_network(detectors)


def serve_store(store: Path, network: Network, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                camera_dir: Path | None = None, influx_url: str | None = None) -> tuple[WebServer, CameraDir | None]:
    """Load the store (or InfluxDB at ``influx_url``) and start serving; returns the running server
    (call ``stop()``) and the camera folder."""
    ctx = WebContext.create(network)
    if influx_url:
        from dashboards.web.store_source import load_influx_store
        from stream.sinks.influx_query import InfluxConnection

        counts = load_influx_store(InfluxConnection.from_env(url=influx_url), ctx.state)
    else:
        counts = load_store(store, ctx.state)
    log.info("serving %s: %s", store, counts)
    cameras = CameraDir(camera_dir, ctx.state) if camera_dir else None
    if cameras is not None:
        cameras.scan()
    server = WebServer(ctx, host=host, port=port)
    server.start()
    return server, cameras


def cmd_serve(args: argparse.Namespace) -> int:
    """`roadpulse serve`: serve a finished run until Ctrl-C."""
    network = network_for_store(args.store, args.network, args.detectors)
    source = args.influx or args.store
    server, cameras = serve_store(args.store, network, args.host, args.port, args.camera_dir, influx_url=args.influx)
    print(f"roadpulse web over {source}: operators {server.url}/operators · commuters {server.url}/commuters · "
          f"DataMall API {server.url}/ltaodataservice/v3/TrafficSpeedBands — Ctrl-C stops", flush=True)
    try:
        _wait_for_ctrl_c(cameras.scan if cameras else None)
    finally:
        server.stop()
    return 0
