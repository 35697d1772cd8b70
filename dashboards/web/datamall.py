"""LTA DataMall-shaped records, so apps written for Singapore's DataMall can point at roadpulse.

Three datasets with DataMall's field names and types (strings where DataMall
sends strings), in DataMall's envelope ``{"odata.metadata": ..., "value": [...]}``
and paged by ``$skip`` in pages of 500 records:

- ``TrafficSpeedBands`` (v3 field set): one record per segment with a known band.
  ``LinkID`` is a numeric string (``103000000`` + the segment's index in network
  order); ``/api/network`` lists each segment's ``link_id``.
- ``TrafficIncidents``: open incidents of the alerting algorithm; ``Type`` is
  ``"Misc."`` (loop detectors see that traffic stopped, not why); ``Message``
  starts ``(d/m)HH:MM`` in Singapore time, as DataMall's does.
- ``EstTravelTimes``: per roadway, stretches of about 5 km; ``EstTime`` whole minutes.

Pure functions of the live state and the network; the server adds the paging.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from models.network import Network, Roadway, Segment
from models.records import Incident

PAGE_SIZE = 500
LINK_ID_BASE = 103_000_000
SGT = timezone(timedelta(hours=8))
ROAD_CATEGORY_EXPRESSWAY = "A"
BAND_SPEEDS_KMH = {1: ("0", "9"), 2: ("10", "19"), 3: ("20", "29"), 4: ("30", "39"), 5: ("40", "49"),
                   6: ("50", "59"), 7: ("60", "69"), 8: ("70", "999")}
# DataMall's EstTravelTimes Direction: 1 = east to west, 2 = west to east; for north-south roads
# we use 1 = southbound, 2 = northbound (DataMall documents only the east-west case).
DIRECTION_CODE = {"W": 1, "S": 1, "E": 2, "N": 2}
STRETCH_KM = 5.0


def link_ids(network: Network) -> dict[str, str]:
    """DataMall LinkID of every segment (numeric string, stable for a network)."""
    return {seg.segment_id: str(LINK_ID_BASE + i) for i, seg in enumerate(network.segments)}


def road_name(roadway: Roadway) -> str:
    """DataMall style road name: upper case, without our direction suffix."""
    name = roadway.name
    if name.endswith(")") and "(" in name:
        name = name[: name.rindex("(")]
    return name.strip().upper()


def _fmt_coord(x: float) -> str:
    return f"{x:.6f}"


def page(records: list[dict[str, Any]], skip: int, page_size: int = PAGE_SIZE) -> list[dict[str, Any]]:
    """One page: ``page_size`` records from ``skip`` (an empty list past the end)."""
    skip = max(0, int(skip))
    return records[skip: skip + page_size]


def envelope(metadata_url: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """DataMall's OData envelope."""
    return {"odata.metadata": metadata_url, "value": records}


def speed_bands(network: Network, segments: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """TrafficSpeedBands records for segments whose latest band is known (1..8), in network order."""
    ids = link_ids(network)
    out = []
    for seg in network.segments:
        row = segments.get(seg.segment_id)
        band = int(row["speed_band"]) if row else 0
        if band < 1:
            continue
        roadway = network.roadway_by_key[f"{seg.corridor}-{seg.direction}"]
        up = network.station_by_id[seg.upstream_station]
        down = network.station_by_id[seg.downstream_station]
        lo, hi = BAND_SPEEDS_KMH[min(band, 8)]
        out.append({"LinkID": ids[seg.segment_id], "RoadName": road_name(roadway),
                    "RoadCategory": ROAD_CATEGORY_EXPRESSWAY, "SpeedBand": band,
                    "MinimumSpeed": lo, "MaximumSpeed": hi,
                    "StartLon": _fmt_coord(up.lon), "StartLat": _fmt_coord(up.lat),
                    "EndLon": _fmt_coord(down.lon), "EndLat": _fmt_coord(down.lat)})
    return out


def incident_position(network: Network, inc: Incident) -> tuple[float, float]:
    """Latitude, longitude of an incident: interpolated along its segment at ``location_km``."""
    seg: Segment | None = network.segment_by_id.get(inc.segment_id)
    if seg is None:
        roadway = network.roadway_by_key.get(f"{inc.corridor}-{inc.direction}")
        st = min(roadway.stations, key=lambda s: abs(s.km - inc.location_km)) if roadway else None
        return (st.lat, st.lon) if st else (0.0, 0.0)
    up, down = network.station_by_id[seg.upstream_station], network.station_by_id[seg.downstream_station]
    f = 0.0 if seg.length_km <= 0 else min(1.0, max(0.0, (inc.location_km - seg.start_km) / seg.length_km))
    return up.lat + f * (down.lat - up.lat), up.lon + f * (down.lon - up.lon)


def incident_message(network: Network, inc: Incident) -> str:
    """``(d/m)HH:MM text`` in Singapore time (hour not padded), like DataMall's messages."""
    t = datetime.fromtimestamp(inc.start_ms / 1000, tz=SGT)
    roadway = network.roadway_by_key.get(f"{inc.corridor}-{inc.direction}")
    road = inc.corridor
    towards = f" (towards {roadway.stations[-1].station_id})" if roadway else ""
    seg = network.segment_by_id.get(inc.segment_id)
    where = f" between {seg.upstream_station} and {seg.downstream_station}" if seg else ""
    return f"({t.day}/{t.month}){t.hour}:{t.minute:02d} Incident on {road}{towards}{where}, km {inc.location_km:.1f}."


def traffic_incidents(network: Network, open_incidents: list[Incident]) -> list[dict[str, Any]]:
    """TrafficIncidents records of open incidents, oldest first."""
    out = []
    for inc in sorted(open_incidents, key=lambda i: (i.start_ms, i.incident_id)):
        lat, lon = incident_position(network, inc)
        out.append({"Type": "Misc.", "Latitude": round(lat, 6), "Longitude": round(lon, 6),
                    "Message": incident_message(network, inc)})
    return out


def stretches(roadway: Roadway, stretch_km: float = STRETCH_KM) -> list[tuple[Segment, ...]]:
    """The roadway's segments cut into consecutive stretches of about ``stretch_km``."""
    out: list[tuple[Segment, ...]] = []
    cur: list[Segment] = []
    for seg in roadway.segments:
        cur.append(seg)
        if cur[-1].end_km - cur[0].start_km >= stretch_km:
            out.append(tuple(cur))
            cur = []
    if cur:
        out.append(tuple(cur))
    return out


def est_travel_times(network: Network, segments: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """EstTravelTimes records: each roadway's ~5 km stretches with the current travel time in minutes.

    A segment without a window counts at free flow (its length at the speed limit).
    """
    out = []
    for roadway in network.roadways:
        if len(roadway.stations) < 2:
            continue
        far = f"{roadway.stations[-1].station_id} (KM {roadway.stations[-1].km:.1f})"
        for stretch in stretches(roadway):
            total_s = 0.0
            for seg in stretch:
                row = segments.get(seg.segment_id)
                tt = row.get("travel_time_s") if row else None
                total_s += tt if tt is not None else seg.length_km / roadway.speed_limit_kmh * 3600.0
            out.append({"Name": roadway.corridor, "Direction": DIRECTION_CODE.get(roadway.direction, 1),
                        "FarEndPoint": far,
                        "StartPoint": f"{stretch[0].upstream_station} (KM {stretch[0].start_km:.1f})",
                        "EndPoint": f"{stretch[-1].downstream_station} (KM {stretch[-1].end_km:.1f})",
                        "EstTime": max(1, round(total_s / 60.0))})
    return out
