"""Road networks: the file format round-trips, bad files fail with a clear error, the default scales."""
from __future__ import annotations

import json

import numpy as np
import pytest

from models.network import Network, NetworkError
from models.singapore import singapore_network


def test_file_round_trip_keeps_every_station_detector_and_segment(tmp_path):
    net = singapore_network(300)
    path = tmp_path / "net.json"
    net.save(path)
    again = Network.load(path)
    assert [s.station_id for s in again.stations] == [s.station_id for s in net.stations]
    assert list(again.detector_ids) == list(net.detector_ids)
    assert [(g.segment_id, g.length_km) for g in again.segments] == [(g.segment_id, g.length_km) for g in net.segments]
    assert [r.ramps for r in again.roadways] == [r.ramps for r in net.roadways]


def test_minimal_file_gets_lane_detector_ids_and_segments():
    net = Network.from_dict({"name": "tiny", "roadways": [{"corridor": "X", "direction": "N", "stations": [
        {"id": "A", "km": 0.0, "lanes": 2}, {"id": "B", "km": 0.8, "lanes": 3}]}]})
    assert list(net.detector_ids) == ["A-L1", "A-L2", "B-L1", "B-L2", "B-L3"]
    assert [s.segment_id for s in net.segments] == ["A>B"]
    assert net.segments[0].length_km == pytest.approx(0.8)
    assert list(net.detector_station_idx) == [0, 0, 1, 1, 1]
    assert list(net.detector_lane) == [1, 2, 1, 2, 3]
    assert list(net.detector_numbers(["B-L3", "nope", "A-L1"])) == [4, -1, 0]


@pytest.mark.parametrize("bad, message", [
    ({"roadways": [{"corridor": "X", "direction": "N", "stations": [
        {"id": "A", "km": 1.0, "lanes": 2}, {"id": "B", "km": 0.5, "lanes": 2}]}]}, "increase downstream"),
    ({"roadways": [{"corridor": "X", "direction": "N", "stations": [
        {"id": "A", "km": 0.0, "lanes": 2, "detector_ids": ["d1"]}]}]}, "2 lanes but 1 detector"),
    ({"roadways": [{"corridor": "X", "direction": "N", "stations": [
        {"id": "A", "km": 0.0, "lanes": 1}, {"id": "A", "km": 1.0, "lanes": 1}]}]}, "duplicate station"),
    ({"roadways": [{"corridor": "X", "direction": "N"}]}, "missing the field"),
    ({"roadways": [{"corridor": "X", "direction": "N", "ramps": [{"km": 1, "kind": "sideways"}],
                    "stations": [{"id": "A", "km": 0.0, "lanes": 1}]}]}, "ramp kind"),
])
def test_bad_network_files_fail_with_a_message_that_says_what_is_wrong(bad, message):
    with pytest.raises(NetworkError, match=message):
        Network.from_dict(bad)


def test_not_json_is_a_network_error(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{roadways: [")
    with pytest.raises(NetworkError, match="not valid JSON"):
        Network.load(path)


@pytest.mark.parametrize("target", [10, 1_000, 10_000, 50_000])
def test_default_network_scales_to_the_requested_detector_count(target):
    net = singapore_network(target)
    assert target <= net.n_detectors <= target * 1.01 + 8
    assert len(set(net.detector_ids)) == net.n_detectors
    lat = np.array([s.lat for s in net.stations])
    lon = np.array([s.lon for s in net.stations])
    assert np.isfinite(lat).all() and np.isfinite(lon).all()


def test_default_network_is_singapore_both_directions_with_plausible_lengths():
    net = singapore_network()
    corridors = {r.corridor for r in net.roadways}
    assert {"PIE", "AYE", "CTE", "ECP", "BKE", "KJE", "SLE", "TPE", "KPE", "MCE"} <= corridors
    for code in corridors:
        assert len([r for r in net.roadways if r.corridor == code]) == 2
    pie = net.roadway_by_key["PIE-E"]
    assert 30 <= pie.length_km <= 45  # the real PIE is about 42.8 km
    assert all(1.2 < s.lat < 1.5 and 103.6 < s.lon < 104.1 for s in net.stations)
    json.dumps(net.to_dict())  # serialisable as is
