"""The roadpulse web app: operators' and commuters' pages, a JSON API, live events, DataMall-shaped data.

An aiohttp application over a :class:`~dashboards.web.state.LiveState`. Routes:

=====================================  ==================================================================
``GET /``, ``/operators``, ``/commuters``  the pages (plain HTML/JS/SVG from ``static/``, nothing external)
``GET /api/network``                   roadways with station coordinates, segments with DataMall LinkIDs
``GET /api/state``                     figures, latest segment windows, incidents, cameras, recent alerts
``GET /api/segment?id=SEG``            a segment's last hour of 1-min windows (speed, flow, band)
``GET /api/incidents``                 incidents with their lifecycle (``?algorithm=``)
``GET /api/alerts``                    recent alerts (``?subscription=``)
``GET /api/stream``                    Server-Sent Events: ``segments``, ``stats``, ``incident``, ``alert``,
                                       ``camera`` (``?subscription=ID`` keeps that subscription's alerts only;
                                       ``?since=SEQ`` replays events after SEQ)
``POST /api/subscriptions``            ``{"name", "route": {"roadway", "from_km", "to_km"}}`` or
                                       ``{"segments": [...]}``, optional ``"webhook_url"``
``GET|DELETE /api/subscriptions/ID``   a subscription with its route travel time now vs usual, alerts,
                                       webhook deliveries
``GET /api/cameras/ID.jpg``            latest snapshot of a camera
``GET /ltaodataservice/...``           ``v3/TrafficSpeedBands``, ``TrafficIncidents``, ``EstTravelTimes``
=====================================  ==================================================================

:class:`WebServer` runs the app on its own thread and event loop, so a run (or a
test) keeps its thread; it binds 127.0.0.1 by default and port 0 picks a free one.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from dashboards.web import datamall
from dashboards.web.state import LiveState, alert_dict
from dashboards.web.subscriptions import SubscriptionError, WebSubscription, WebSubscriptions
from dashboards.web.webhooks import WebhookSender
from models.network import Network
from models.records import Alert

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
HANDLERS = web.AppKey("handlers", object)
KEEPALIVE_S = 15.0


@dataclass
class WebContext:
    """Everything the handlers use: the state, the web subscriptions and the webhook sender."""

    network: Network
    state: LiveState
    subscriptions: WebSubscriptions
    webhooks: WebhookSender

    @classmethod
    def create(cls, network: Network, alert_algorithm: str = "statistical",
               webhooks: WebhookSender | None = None) -> "WebContext":
        """A fresh context; alerts of web subscriptions with a webhook are handed to the sender."""
        state = LiveState(network, alert_algorithm=alert_algorithm)
        sender = webhooks or WebhookSender()
        subs = WebSubscriptions(network, usual_s=state.usual.usual_s)
        ctx = cls(network, state, subs, sender)
        subs.on_alerts = ctx._deliver
        return ctx

    def _deliver(self, web_sub: WebSubscription, alerts: list[Alert]) -> None:
        if web_sub.webhook_url and web_sub.secret:
            for a in alerts:
                self.webhooks.submit(web_sub.webhook_url, web_sub.secret, web_sub.subscription_id,
                                     alert_dict(a, "web"))


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY), status=status,
                        content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status=status)


def network_json(network: Network) -> dict[str, Any]:
    """Roadways (stations with coordinates) and segments, for drawing the map and choosing routes."""
    links = datamall.link_ids(network)
    return {
        "name": network.name,
        "roadways": [{"key": r.key, "corridor": r.corridor, "direction": r.direction, "name": r.name,
                      "speed_limit_kmh": r.speed_limit_kmh, "length_km": round(r.length_km, 3),
                      "stations": [{"id": s.station_id, "km": s.km, "lat": s.lat, "lon": s.lon}
                                   for s in r.stations],
                      "segments": [s.segment_id for s in r.segments]} for r in network.roadways],
        "segments": {s.segment_id: {"roadway": f"{s.corridor}-{s.direction}", "up": s.upstream_station,
                                    "down": s.downstream_station, "start_km": s.start_km, "end_km": s.end_km,
                                    "link_id": links[s.segment_id]} for s in network.segments},
    }


def _compact_segments(segments: dict[str, dict[str, Any]]) -> dict[str, list[Any]]:
    """{segment: [band, speed_kmh, flow_veh_h, travel_time_s, usual_s, window_start_ms]} for the live map."""
    return {k: [v["speed_band"], v["speed_kmh"], v["flow_veh_h"], v["travel_time_s"], v["usual_travel_time_s"],
                v["window_start_ms"]] for k, v in segments.items()}


class Handlers:
    """Request handlers bound to one :class:`WebContext`."""

    def __init__(self, ctx: WebContext, poll_s: float) -> None:
        self.ctx = ctx
        self.poll_s = poll_s
        self.closing = asyncio.Event()
        self._network = network_json(ctx.network)

    # ---- pages ---------------------------------------------------------------
    async def page(self, request: web.Request) -> web.FileResponse:
        name = {"/": "index.html", "/operators": "operators.html", "/commuters": "commuters.html"}[request.path]
        return web.FileResponse(STATIC_DIR / name, headers={"Cache-Control": "no-cache"})

    # ---- JSON API ------------------------------------------------------------
    async def network(self, request: web.Request) -> web.Response:
        return _json(self._network)

    async def state(self, request: web.Request) -> web.Response:
        st = self.ctx.state
        seq = st.seq
        return _json({"seq": seq, "stats": st.figures(), "segments": _compact_segments(st.segments()),
                      "incidents": st.incidents(), "cameras": st.cameras(), "alerts": st.alerts(limit=50)})

    async def segment(self, request: web.Request) -> web.Response:
        seg_id = request.query.get("id", "")
        if seg_id not in self.ctx.network.segment_by_id:
            return _error(404, f"unknown segment {seg_id!r}")
        latest = self.ctx.state.segments().get(seg_id)
        return _json({"id": seg_id, "latest": latest, "history": self.ctx.state.segment_history(seg_id)})

    async def incidents(self, request: web.Request) -> web.Response:
        return _json({"incidents": self.ctx.state.incidents(request.query.get("algorithm"))})

    async def alerts(self, request: web.Request) -> web.Response:
        return _json({"alerts": self.ctx.state.alerts(request.query.get("subscription"))})

    async def camera(self, request: web.Request) -> web.Response:
        jpeg = self.ctx.state.camera_jpeg(request.match_info["camera_id"])
        if jpeg is None:
            return _error(404, "no snapshot from this camera")
        return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-cache"})

    # ---- subscriptions -------------------------------------------------------
    async def create_subscription(self, request: web.Request) -> web.Response:
        try:
            body = await request.json(loads=orjson.loads)
        except (ValueError, orjson.JSONDecodeError):
            return _error(400, "body must be JSON")
        if not isinstance(body, dict):
            return _error(400, "body must be a JSON object")
        try:
            web_sub = self.ctx.subscriptions.add(
                name=str(body.get("name", "")), segment_ids=body.get("segments"), route=body.get("route"),
                webhook_url=body.get("webhook_url") or None, min_band_drop=int(body.get("min_band_drop", 2)),
                throttle_min=float(body.get("throttle_min", 10)))
        except (SubscriptionError, ValueError, TypeError) as exc:
            return _error(400, str(exc))
        return _json(self._subscription(web_sub, with_secret=True), status=201)

    async def list_subscriptions(self, request: web.Request) -> web.Response:
        return _json({"subscriptions": [s.to_dict() for s in self.ctx.subscriptions.all()]})

    async def get_subscription(self, request: web.Request) -> web.Response:
        web_sub = self.ctx.subscriptions.get(request.match_info["sid"])
        if web_sub is None:
            return _error(404, "no such subscription")
        return _json(self._subscription(web_sub))

    async def delete_subscription(self, request: web.Request) -> web.Response:
        if not self.ctx.subscriptions.remove(request.match_info["sid"]):
            return _error(404, "no such subscription")
        return _json({"deleted": request.match_info["sid"]})

    def _subscription(self, web_sub: WebSubscription, with_secret: bool = False) -> dict[str, Any]:
        d = web_sub.to_dict(with_secret=with_secret)
        st = self.ctx.state
        d["seq"] = st.seq
        d["travel_time"] = st.route_travel_time(web_sub.subscription.segment_ids)
        d["alerts"] = st.alerts(web_sub.subscription_id)
        d["deliveries"] = self.ctx.webhooks.deliveries(web_sub.subscription_id)
        return d

    # ---- live events ---------------------------------------------------------
    async def stream(self, request: web.Request) -> web.StreamResponse:
        sub_id = request.query.get("subscription")
        st = self.ctx.state
        try:
            seq = int(request.query.get("since", request.headers.get("Last-Event-ID", st.seq)))
        except ValueError:
            seq = st.seq
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        version, stats, idle_s = -1, None, 0.0
        try:
            await resp.write(b"retry: 2000\n\n")
            while not self.closing.is_set():
                sent = False
                for n, kind, data in st.events_since(seq):
                    seq = n
                    if kind == "alert" and sub_id and data.get("subscription_id") != sub_id:
                        continue
                    await resp.write(_sse(kind, data, n))
                    sent = True
                if st.segments_version != version:
                    version = st.segments_version
                    route = None
                    if sub_id and (web_sub := self.ctx.subscriptions.get(sub_id)) is not None:
                        route = st.route_travel_time(web_sub.subscription.segment_ids)
                    await resp.write(_sse("segments", {"segments": _compact_segments(st.segments()),
                                                       "travel_time": route}))
                    sent = True
                figures = st.figures()
                if figures != stats:
                    stats = figures
                    await resp.write(_sse("stats", figures))
                    sent = True
                idle_s = 0.0 if sent else idle_s + self.poll_s
                if idle_s >= KEEPALIVE_S:
                    await resp.write(b": keep-alive\n\n")
                    idle_s = 0.0
                try:
                    await asyncio.wait_for(self.closing.wait(), timeout=self.poll_s)
                except asyncio.TimeoutError:
                    pass
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return resp

    # ---- DataMall ------------------------------------------------------------
    def _datamall(self, request: web.Request, dataset: str, records: list[dict[str, Any]]) -> web.Response:
        # An AccountKey header is accepted and ignored: apps written for DataMall send one.
        try:
            skip = int(request.query.get("$skip", "0"))
        except ValueError:
            return _error(400, "$skip must be an integer")
        meta = f"{request.scheme}://{request.host}/ltaodataservice/$metadata#{dataset}"
        return _json(datamall.envelope(meta, datamall.page(records, skip)))

    async def speed_bands(self, request: web.Request) -> web.Response:
        return self._datamall(request, "TrafficSpeedBands",
                              datamall.speed_bands(self.ctx.network, self.ctx.state.segments()))

    async def traffic_incidents(self, request: web.Request) -> web.Response:
        open_now = self.ctx.state.open_incidents(self.ctx.state.alert_algorithm)
        return self._datamall(request, "TrafficIncidents", datamall.traffic_incidents(self.ctx.network, open_now))

    async def est_travel_times(self, request: web.Request) -> web.Response:
        return self._datamall(request, "EstTravelTimes",
                              datamall.est_travel_times(self.ctx.network, self.ctx.state.segments()))


def _sse(event: str, data: Any, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\n".encode() + b"data: " + orjson.dumps(data) + b"\n\n"


def create_app(ctx: WebContext, poll_s: float = 0.5) -> web.Application:
    """The aiohttp application for ``ctx``."""
    h = Handlers(ctx, poll_s)
    app = web.Application()
    app[HANDLERS] = h
    for path in ("/", "/operators", "/commuters"):
        app.router.add_get(path, h.page)
    app.router.add_static("/static/", STATIC_DIR)
    app.router.add_get("/api/network", h.network)
    app.router.add_get("/api/state", h.state)
    app.router.add_get("/api/segment", h.segment)
    app.router.add_get("/api/incidents", h.incidents)
    app.router.add_get("/api/alerts", h.alerts)
    app.router.add_get("/api/stream", h.stream)
    app.router.add_get("/api/cameras/{camera_id}.jpg", h.camera)
    app.router.add_post("/api/subscriptions", h.create_subscription)
    app.router.add_get("/api/subscriptions", h.list_subscriptions)
    app.router.add_get("/api/subscriptions/{sid}", h.get_subscription)
    app.router.add_delete("/api/subscriptions/{sid}", h.delete_subscription)
    for version in ("", "v3/", "v4/"):
        app.router.add_get(f"/ltaodataservice/{version}TrafficSpeedBands", h.speed_bands)
    app.router.add_get("/ltaodataservice/TrafficIncidents", h.traffic_incidents)
    app.router.add_get("/ltaodataservice/EstTravelTimes", h.est_travel_times)

    async def on_shutdown(_app: web.Application) -> None:
        h.closing.set()
        await ctx.webhooks.close()

    app.on_shutdown.append(on_shutdown)
    return app


class WebServer:
    """Runs the app on a background thread with its own event loop."""

    def __init__(self, ctx: WebContext, host: str = "127.0.0.1", port: int = 0, poll_s: float = 0.5) -> None:
        self.ctx = ctx
        self.host = host
        self.port = port
        self.poll_s = poll_s
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout_s: float = 30.0) -> str:
        """Start serving; returns the base URL (with the port actually bound)."""
        self._thread = threading.Thread(target=self._serve, name="roadpulse-web", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError("web server did not start")
        if self._error is not None:
            raise RuntimeError(f"web server could not start on {self.host}:{self.port}: {self._error}")
        return self.url

    def _serve(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self._runner = web.AppRunner(create_app(self.ctx, self.poll_s), shutdown_timeout=3.0,
                                         access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, self.port)
            loop.run_until_complete(site.start())
            port = self._runner.addresses[0][1]
            self.url = f"http://{self.host}:{port}"
            self.ctx.webhooks.attach(loop)
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        log.info("web app on %s", self.url)
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=15)
