"""Commuter alert rules: speed-band drops and incidents on the segments a subscription watches.

Speed bands (LTA, 1..8, 0 unknown) per (subscription, segment) keep a reference
level: the first known band, raised whenever the band improves (a recovery
resets it) and set to the new band when an alert goes out. A band alert fires
when the band is ``min_band_drop`` or more below the reference, or falls from
above 3 to 3 or below (crawling traffic), and at most once per ``throttle_ms``
per (subscription, segment, kind); a suppressed drop is reported once the
throttle has passed if it still holds. The same state never alerts twice.

Incident alerts: one per (subscription, incident, status) for ``open`` and
``cleared`` events on a watched segment, never throttled and never repeated.
Alert ids are deterministic.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from models.network import Network
from models.records import Alert, FlowWindowBatch, Incident

LOW_BAND = 3  # falling to this band or below always alerts
INCIDENT_MEMORY_MS = 86_400_000  # how long an incident alert is remembered to prevent repeats

UsualTravelTime = Callable[[str, int], "float | None"]  # (segment_id, window_start_ms) -> usual seconds


@dataclass(frozen=True)
class Subscription:
    subscription_id: str
    segment_ids: tuple[str, ...]
    name: str = ""
    min_band_drop: int = 2
    throttle_ms: int = 600_000


class AlertRules:
    """Evaluate every subscription against segment windows and incident events."""

    def __init__(self, subscriptions: Iterable[Subscription], network: Network,
                 resume_state: dict[str, Any] | None = None) -> None:
        self.subscriptions = tuple(subscriptions)
        self.network = network
        for sub in self.subscriptions:
            unknown = [s for s in sub.segment_ids if s not in network.segment_by_id]
            if unknown:
                raise ValueError(f"subscription {sub.subscription_id}: unknown segments {unknown[:5]}")
        self._watchers: dict[str, list[Subscription]] = {}
        for sub in self.subscriptions:
            for seg in dict.fromkeys(sub.segment_ids):
                self._watchers.setdefault(seg, []).append(sub)
        self._ref_band: dict[tuple[str, str], int] = {}  # (subscription, segment) -> reference band
        self._last_alert_ms: dict[tuple[str, str, str], int] = {}  # (subscription, segment, kind) -> at_ms
        self._incident_alerts: dict[tuple[str, str, str], int] = {}  # (subscription, incident, status) -> at_ms
        if resume_state:
            self._restore(resume_state)

    def update(self, segments: FlowWindowBatch, incidents: list[Incident],
               usual_travel_time_s: UsualTravelTime | None = None) -> list[Alert]:
        """Alerts caused by segment windows (any number, processed in time order) and incident events."""
        alerts: list[Alert] = []
        if len(segments):
            tt = segments.travel_time_s if len(segments.travel_time_s) == len(segments) else None
            for i in np.argsort(segments.window_start_ms, kind="stable").tolist():
                seg_id = str(segments.entity_id[i])
                for sub in self._watchers.get(seg_id, ()):
                    alert = self._band(sub, seg_id, int(segments.window_start_ms[i]), int(segments.speed_band[i]),
                                       None if tt is None else float(tt[i]), usual_travel_time_s)
                    if alert is not None:
                        alerts.append(alert)
        for inc in incidents:
            if inc.status == "updated":
                continue
            for sub in self._watchers.get(inc.segment_id, ()):
                alert = self._incident(sub, inc)
                if alert is not None:
                    alerts.append(alert)
        self._forget(max([a.at_ms for a in alerts], default=None))
        return alerts

    # ---- rules ---------------------------------------------------------------
    def _band(self, sub: Subscription, seg_id: str, at_ms: int, band: int, travel_time_s: float | None,
              usual: UsualTravelTime | None) -> Alert | None:
        if band <= 0:
            return None
        key = (sub.subscription_id, seg_id)
        ref = self._ref_band.get(key)
        if ref is None or band >= ref:
            self._ref_band[key] = band
            return None
        if not (ref - band >= sub.min_band_drop or (ref > LOW_BAND >= band)):
            return None
        kind = "speed_band_drop"
        last = self._last_alert_ms.get((*key, kind))
        if last is not None and at_ms - last < sub.throttle_ms:
            return None
        self._ref_band[key] = band
        self._last_alert_ms[(*key, kind)] = at_ms
        usual_s = usual(seg_id, at_ms) if usual is not None else None
        now_s = travel_time_s if travel_time_s is not None and np.isfinite(travel_time_s) else None
        usual_s = float(usual_s) if usual_s is not None and np.isfinite(usual_s) else None
        text = f"{self._where(seg_id)}: speed band {ref} -> {band} between {self._between(seg_id)}"
        if now_s is not None:
            text += f"; travel time {now_s / 60:.1f} min"
            if usual_s is not None:
                text += f" vs usual {usual_s / 60:.1f} min"
        return self._alert(sub, kind, seg_id, at_ms, f"{sub.subscription_id}:{kind}:{seg_id}:{at_ms}", text,
                           speed_band_from=ref, speed_band_to=band, travel_time_now_s=now_s,
                           travel_time_usual_s=usual_s)

    def _incident(self, sub: Subscription, inc: Incident) -> Alert | None:
        key = (sub.subscription_id, inc.incident_id, inc.status)
        if key in self._incident_alerts:
            return None
        self._incident_alerts[key] = inc.event_ms
        seg_id = inc.segment_id
        if inc.status == "open":
            kind = "incident_open"
            text = (f"{self._where(seg_id)}: incident detected between {self._between(seg_id)} "
                    f"(km {inc.location_km:.1f}, severity {inc.severity}/3)")
        else:
            kind = "incident_clear"
            text = f"{self._where(seg_id)}: incident between {self._between(seg_id)} has cleared"
        return self._alert(sub, kind, seg_id, inc.event_ms, f"{sub.subscription_id}:{kind}:{inc.incident_id}",
                           text, incident_id=inc.incident_id)

    def _alert(self, sub: Subscription, kind: str, seg_id: str, at_ms: int, alert_id: str, message: str,
               **extra: Any) -> Alert:
        seg = self.network.segment_by_id[seg_id]
        if sub.name:
            message = f"[{sub.name}] {message}"
        return Alert(alert_id=alert_id, subscription_id=sub.subscription_id, kind=kind, segment_id=seg_id,
                     corridor=seg.corridor, direction=seg.direction, at_ms=int(at_ms), message=message, **extra)

    def _where(self, seg_id: str) -> str:
        seg = self.network.segment_by_id[seg_id]
        return f"{seg.corridor} ({seg.direction})"

    def _between(self, seg_id: str) -> str:
        seg = self.network.segment_by_id[seg_id]
        return f"{seg.upstream_station} and {seg.downstream_station}"

    def _forget(self, now_ms: int | None) -> None:
        """Drop incident-alert memory older than a day (those incidents are long gone)."""
        if now_ms is None:
            return
        old = [k for k, t in self._incident_alerts.items() if now_ms - t > INCIDENT_MEMORY_MS]
        for k in old:
            del self._incident_alerts[k]

    # ---- state -----------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "ref_band": [[*k, v] for k, v in sorted(self._ref_band.items())],
            "last_alert_ms": [[*k, v] for k, v in sorted(self._last_alert_ms.items())],
            "incident_alerts": [[*k, v] for k, v in sorted(self._incident_alerts.items())],
        }

    def _restore(self, s: dict[str, Any]) -> None:
        self._ref_band = {(a, b): int(v) for a, b, v in s["ref_band"]}
        self._last_alert_ms = {(a, b, c): int(v) for a, b, c, v in s["last_alert_ms"]}
        self._incident_alerts = {(a, b, c): int(v) for a, b, c, v in s["incident_alerts"]}
