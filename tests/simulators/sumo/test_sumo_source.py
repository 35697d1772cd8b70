"""SumoSource against SUMO's own E1 detector output, through the pipeline's lane windows.

A 3 km corridor with an on-ramp and an off-ramp, near-capacity demand and a
two-lane blockage between loops (a queue standing over the loops upstream, so
occupancy straddles interval edges), 12 simulated minutes. SUMO writes its E1
XML with ``period`` = the 30-s interval; the pipeline's 30-s lane windows
(StationStage) must reproduce every loop's flow (``nVehContrib`` x 3600 / period),
occupancy and arithmetic ``speed`` within 0.5 %.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from ingest.validate import ReadingValidator
from models.wire import encode_readings
from simulators import split_by_station
from simulators.incidents import IncidentSpec
from simulators.sumo.incidents import check_site, incident_sites_km
from simulators.sumo.scenario import DEFAULT_START_MS, SumoScenarioConfig
from simulators.sumo.source import SumoSource
from stream.core.pipeline import PipelineConfig, StationStage

MIN_MS = 60_000
CONFIG = SumoScenarioConfig(
    corridor="EQ", length_km=3.0, on_ramps_km=(1.25,), off_ramps_km=(2.25,), duration_s=720, warmup_s=120,
    mainline_peak_veh_h_lane=1700, ramp_peak_veh_h=900, seed=4, e1_xml=True,
    incidents=(IncidentSpec("EQ-E", 1.75, DEFAULT_START_MS + 2 * MIN_MS, 5 * MIN_MS, 2),))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    src = SumoSource(CONFIG, workdir=tmp_path_factory.mktemp("sumo-eq"))
    stage = StationStage(src.network, PipelineConfig(window_lengths_ms=(30_000,), incident_window_ms=30_000,
                                                     allowed_lateness_ms=0, impute=False))
    validator = ReadingValidator(src.network)
    batches, lanes = [], []
    for batch in src:
        batches.append(batch)
        parts = split_by_station(batch, src.network)
        good, numbers, dead = validator.validate_many([encode_readings(b) for _, b in parts], [k for k, _ in parts],
                                                      source="readings", now_ms=src.now_ms)
        assert not dead and len(good) == len(batch)
        late = stage.process(numbers, good)
        assert not late.any()
        lanes += stage.poll().lanes
    lanes += stage.poll(flush=True).lanes
    return src, batches, lanes


def _xml_rows(src: SumoSource) -> dict[tuple[str, int], dict[str, float]]:
    out = {}
    for iv in ET.parse(src.scenario.e1_output).getroot().iter("interval"):
        begin = float(iv.get("begin"))
        if begin < CONFIG.warmup_s:
            continue
        t_ms = src.scenario.utc_ms(begin)
        out[(iv.get("id"), t_ms)] = {k: float(iv.get(k)) for k in ("nVehContrib", "flow", "occupancy", "speed")}
    return out


def test_pipeline_lane_windows_equal_sumo_e1_xml(run):
    src, _, lanes = run
    xml = _xml_rows(src)
    ours = {(e, int(t)): (f, o, v, n) for lw in lanes for e, t, f, o, v, n in zip(
        lw.entity_id, lw.window_start_ms, lw.flow_veh_h, lw.occupancy_pct, lw.time_mean_speed_kmh,
        lw.vehicle_count)}
    assert set(ours) == set(xml)
    assert len(xml) == src.network.n_detectors * CONFIG.duration_s // CONFIG.interval_s
    queued = 0
    for key, ref in xml.items():
        flow, occ, speed, count = ours[key]
        assert count == ref["nVehContrib"], key
        assert flow == pytest.approx(ref["flow"], rel=0.005, abs=1e-9), key
        assert occ == pytest.approx(ref["occupancy"], rel=0.005, abs=1e-4), key
        if ref["speed"] < 0:  # SUMO's -1: no vehicle left the loop in the interval
            assert math.isnan(speed), key
        else:
            assert speed == pytest.approx(ref["speed"] * 3.6, rel=0.005), key
        queued += ref["occupancy"] > 30
    assert queued >= 10  # the comparison covered real queues, not only free flow


def test_incident_ground_truth_and_its_queue(run):
    src, batches, _ = run
    (truth,) = src.ground_truth.incidents
    spec = CONFIG.incidents[0]
    assert truth.lanes_blocked == 2 and truth.segment_id == "EQ-E-003>EQ-E-004"
    assert spec.start_ms <= truth.start_ms <= spec.start_ms + 2 * MIN_MS  # a vehicle had to reach the spot
    assert truth.end_ms - truth.start_ms == pytest.approx(spec.duration_ms, abs=5_000)
    # during the blockage the station just upstream is slow and dense, the one downstream is not
    net = src.network
    during = [b for b in batches if truth.start_ms + 2 * MIN_MS <= b.interval_start_ms[0] < truth.end_ms]
    station = net.detector_station_idx[net.detector_numbers(during[0].detector_id)]
    up, down = net.station_index["EQ-E-003"], net.station_index["EQ-E-004"]
    occ_up = np.mean([b.occupancy_pct[station == up].mean() for b in during])
    occ_down = np.mean([b.occupancy_pct[station == down].mean() for b in during])
    assert occ_up > 25 and occ_down < 15 and occ_up > 2 * occ_down


def test_network_mirrors_the_loops(run):
    src, _, _ = run
    net = src.network
    (rw,) = net.roadways
    assert [s.km for s in rw.stations] == [0.5 * i for i in range(7)]
    assert all(s.lanes == 3 for s in rw.stations)
    loops = {lp.loop_id: lp for lp in src.scenario.loops}
    assert set(net.detector_ids) == set(loops)
    for st in rw.stations:  # roadpulse lane 1 = leftmost = SUMO's highest lane index
        assert [loops[d].lane_index for d in st.detector_ids] == [2, 1, 0]
        assert all(loops[d].km == st.km for d in st.detector_ids)


def test_sites_between_loops_only(run):
    src, _, _ = run
    sites = incident_sites_km(src.scenario)
    assert 1.75 in sites and all(abs(s * 2 - round(s * 2)) > 0.05 for s in sites)
    with pytest.raises(ValueError, match="between loops"):
        check_site(src.scenario, IncidentSpec("EQ-E", 1.5, DEFAULT_START_MS, MIN_MS, 1))
    with pytest.raises(ValueError, match="ramp"):
        check_site(src.scenario, IncidentSpec("EQ-E", 1.3, DEFAULT_START_MS, MIN_MS, 1))
