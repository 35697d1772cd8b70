"""Commuter subscriptions: from a JSON file, or a default set of commutes.

File format: a JSON list of objects, each either
``{"id": "amy", "name": "to work", "segments": ["PIE-E-010>PIE-E-011", ...]}`` or
``{"id": "bob", "route": {"roadway": "PIE-E", "from_km": 10, "to_km": 15}}``
(every segment of the roadway between the two km posts). Optional:
``min_band_drop`` (default 2) and ``throttle_min`` (default 10).
"""
from __future__ import annotations

import json
from pathlib import Path

from models.network import Network
from stream.core.alerts import Subscription


class SubscriptionError(ValueError):
    pass


def route_segments(network: Network, roadway_key: str, from_km: float, to_km: float) -> tuple[str, ...]:
    try:
        roadway = network.roadway_by_key[roadway_key]
    except KeyError:
        known = ", ".join(sorted(network.roadway_by_key)[:12])
        raise SubscriptionError(f"unknown roadway {roadway_key!r}; known: {known} ...") from None
    segs = tuple(s.segment_id for s in roadway.segments if s.end_km > from_km and s.start_km < to_km)
    if not segs:
        raise SubscriptionError(f"no segment of {roadway_key} lies between km {from_km} and {to_km}")
    return segs


def load_subscriptions(path: str | Path, network: Network) -> tuple[Subscription, ...]:
    try:
        items = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SubscriptionError(f"cannot read subscriptions from {path}: {exc}") from exc
    subs = []
    for n, item in enumerate(items):
        sid = str(item.get("id", f"sub-{n}"))
        if "segments" in item:
            segs = tuple(item["segments"])
            unknown = [s for s in segs if s not in network.segment_by_id]
            if unknown:
                raise SubscriptionError(f"subscription {sid}: unknown segments {unknown[:5]}")
        elif "route" in item:
            r = item["route"]
            segs = route_segments(network, r["roadway"], float(r["from_km"]), float(r["to_km"]))
        else:
            raise SubscriptionError(f"subscription {sid}: give 'segments' or 'route'")
        subs.append(Subscription(sid, segs, name=str(item.get("name", sid)),
                                 min_band_drop=int(item.get("min_band_drop", 2)),
                                 throttle_ms=int(float(item.get("throttle_min", 10)) * 60_000)))
    return tuple(subs)


def default_subscriptions(network: Network, n: int = 6, length_km: float = 5.0) -> tuple[Subscription, ...]:
    """A few commutes: the middle ``length_km`` of the first ``n`` roadways."""
    subs = []
    for roadway in network.roadways[:n]:
        if len(roadway.stations) < 2:
            continue
        mid = (roadway.stations[0].km + roadway.stations[-1].km) / 2
        segs = route_segments(network, roadway.key, mid - length_km / 2, mid + length_km / 2)
        subs.append(Subscription(f"commute-{roadway.key}", segs, name=f"{roadway.name} commute"))
    return tuple(subs)
