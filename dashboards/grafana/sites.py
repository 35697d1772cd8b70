"""Where each segment is on the map, as a Flux table built into the dashboard's query.

The ``flow`` measurement carries no coordinates, so the map panel's Flux query
holds the network's segment positions as an annotated-CSV literal
(``csv.from``) and joins it with the latest speed band per segment. That needs
only ``csv.from`` and ``join``, which InfluxDB 1.8's Flux (0.65) already has
(``array.from`` came later). A segment is drawn at the midpoint of its two
stations, moved about 35 m to the left of the direction of travel (Singapore
drives on the left) so that the two carriageways of an expressway do not hide
each other. Build the dashboards for your own network with
``roadpulse dashboards build --network FILE``.
"""
from __future__ import annotations

import math

from models.network import Network

SIDE_OFFSET_DEG = 0.0003  # ~33 m: keeps the two directions apart on the map
_HEADER = ("#datatype,string,long,string,double,double\n"
           "#group,false,false,false,false,false\n"
           "#default,_result,,,,\n"
           ",result,table,entity_id,lat,lon\n")


def segment_sites(network: Network) -> list[tuple[str, float, float]]:
    """(segment_id, lat, lon) per segment in network order: midpoint shifted to the left of travel."""
    stations = network.station_by_id
    sites = []
    for roadway in network.roadways:
        for seg in roadway.segments:
            up, down = stations[seg.upstream_station], stations[seg.downstream_station]
            lat, lon = (up.lat + down.lat) / 2, (up.lon + down.lon) / 2
            d_lon, d_lat = down.lon - up.lon, down.lat - up.lat
            norm = math.hypot(d_lon, d_lat)
            if norm > 0:  # left normal of (d_lon, d_lat) is (-d_lat, d_lon)
                lon += -d_lat / norm * SIDE_OFFSET_DEG
                lat += d_lon / norm * SIDE_OFFSET_DEG
            sites.append((seg.segment_id, round(lat, 5), round(lon, 5)))
    return sites


def sites_csv(network: Network) -> str:
    """Annotated CSV (Flux's ``csv.from`` input) with columns entity_id, lat, lon."""
    rows = "".join(f",,0,{sid},{lat!r},{lon!r}\n" for sid, lat, lon in segment_sites(network))
    return _HEADER + rows


def flux_string(text: str) -> str:
    """A Flux string literal. A ``$`` is refused: Grafana would read it as a template variable."""
    if "$" in text:
        raise ValueError(f"a '$' cannot go into a dashboard query: {text[:40]!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
