"""Commuter subscriptions made on the web while a run goes.

The pipeline's :class:`~stream.core.alerts.AlertRules` is built at start with a
fixed set of subscriptions. Web subscriptions come and go, so this module keeps
one ``AlertRules`` per web subscription and feeds it exactly what the core
feeds its own: the segment windows of the incident window length, the incident
events of the alerting algorithm, and the usual travel time per segment. Same
rule objects, same alerts (``tests/dashboards/web/test_subscriptions.py``
compares them with the pipeline's).
"""
from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlparse

import numpy as np

from models.network import Network
from models.records import Alert, FlowWindowBatch, Incident
from roadpulse.subscriptions import SubscriptionError, route_segments
from stream.core.alerts import AlertRules, Subscription

log = logging.getLogger(__name__)

UsualFn = Callable[[str, int], "float | None"]


@dataclass
class WebSubscription:
    """A subscription made through the web: rules, route and optional webhook."""

    subscription: Subscription
    rules: AlertRules
    route: dict[str, Any] | None = None
    webhook_url: str | None = None
    secret: str | None = None
    created_wall_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)

    @property
    def subscription_id(self) -> str:
        return self.subscription.subscription_id

    def to_dict(self, with_secret: bool = False) -> dict[str, Any]:
        """JSON view; the webhook secret only when asked (it is shown once, on creation)."""
        s = self.subscription
        d: dict[str, Any] = {"id": s.subscription_id, "name": s.name, "segments": list(s.segment_ids),
                             "route": self.route, "min_band_drop": s.min_band_drop,
                             "throttle_min": s.throttle_ms / 60_000, "webhook_url": self.webhook_url}
        if with_secret and self.secret:
            d["secret"] = self.secret
        return d


class WebSubscriptions:
    """Registry of web subscriptions; evaluates them against what the pipeline publishes."""

    def __init__(self, network: Network, usual_s: UsualFn | None = None,
                 on_alerts: Callable[[WebSubscription, list[Alert]], None] | None = None) -> None:
        self.network = network
        self.usual_s = usual_s
        self.on_alerts = on_alerts
        self._subs: dict[str, WebSubscription] = {}
        self._lock = threading.Lock()

    def add(self, name: str = "", segment_ids: list[str] | tuple[str, ...] | None = None,
            route: dict[str, Any] | None = None, webhook_url: str | None = None, min_band_drop: int = 2,
            throttle_min: float = 10.0, subscription_id: str | None = None) -> WebSubscription:
        """Create a subscription to ``segment_ids`` or a ``route`` {roadway, from_km, to_km}.

        Raises :class:`SubscriptionError` with a message for the user when the request cannot be served.
        """
        if route is not None:
            try:
                roadway, from_km, to_km = str(route["roadway"]), float(route["from_km"]), float(route["to_km"])
            except (KeyError, TypeError, ValueError) as exc:
                raise SubscriptionError("route needs roadway, from_km and to_km") from exc
            if to_km < from_km:
                from_km, to_km = to_km, from_km
            segs = route_segments(self.network, roadway, from_km, to_km)
            route = {"roadway": roadway, "from_km": from_km, "to_km": to_km}
        elif segment_ids:
            segs = tuple(str(s) for s in segment_ids)
            unknown = [s for s in segs if s not in self.network.segment_by_id]
            if unknown:
                raise SubscriptionError(f"unknown segments {unknown[:5]}")
        else:
            raise SubscriptionError("give a route (roadway, from_km, to_km) or a list of segments")
        if webhook_url is not None:
            parsed = urlparse(webhook_url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise SubscriptionError(f"webhook url must be http(s)://host/..., got {webhook_url!r}")
        if not 1 <= int(min_band_drop) <= 7:
            raise SubscriptionError("min_band_drop must be between 1 and 7")
        sid = subscription_id or f"web-{secrets.token_hex(4)}"
        sub = Subscription(sid, segs, name=str(name or sid)[:80], min_band_drop=int(min_band_drop),
                           throttle_ms=int(float(throttle_min) * 60_000))
        web = WebSubscription(sub, AlertRules((sub,), self.network), route=route, webhook_url=webhook_url,
                              secret=secrets.token_hex(16) if webhook_url else None)
        with self._lock:
            if sid in self._subs:
                raise SubscriptionError(f"subscription {sid} exists")
            self._subs[sid] = web
        log.info("web subscription %s on %d segments%s", sid, len(segs), " with webhook" if webhook_url else "")
        return web

    def get(self, subscription_id: str) -> WebSubscription | None:
        with self._lock:
            return self._subs.get(subscription_id)

    def remove(self, subscription_id: str) -> bool:
        with self._lock:
            return self._subs.pop(subscription_id, None) is not None

    def all(self) -> list[WebSubscription]:
        with self._lock:
            return list(self._subs.values())

    def update(self, segments: list[FlowWindowBatch], incidents: list[Incident]) -> list[Alert]:
        """Alerts of every web subscription for these segment windows and incident events.

        Call with the segment windows of the incident window length and the alerting
        algorithm's incidents, as the core's corridor stage does.
        """
        alerts: list[Alert] = []
        for web in self.all():
            mine: list[Alert] = []
            for batch in segments:
                mine.extend(web.rules.update(batch, [], usual_travel_time_s=self.usual_s))
            if incidents:
                mine.extend(web.rules.update(_no_segments(), incidents))
            if mine and self.on_alerts is not None:
                self.on_alerts(web, mine)
            alerts.extend(mine)
        return alerts


def _no_segments() -> FlowWindowBatch:
    e, o, i = np.empty(0), np.empty(0, dtype=object), np.empty(0, dtype=np.int64)
    return FlowWindowBatch("segment", 60_000, o, o, o, i, i, e, e, e, e, e, np.empty(0, dtype=np.int8), i)
