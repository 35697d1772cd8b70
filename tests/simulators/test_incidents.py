"""Incidents: queue upstream, starvation downstream, recovery, and truthful ground truth."""
import numpy as np
import pytest

from models.network import Network, Roadway, Station
from models.singapore import singapore_network
from simulators import ConstantDemand, IncidentSpec, SimulationConfig, TrafficSimulator
from simulators.incidents import random_incidents, resolve_incidents

START = 1_772_380_800_000 + 12 * 3_600_000  # a Monday noon in Singapore
MIN = 60_000


def corridor(n_stations=21, lanes=4):
    stations = tuple(Station(f"C-E-{i:03d}", "C", "E", i * 0.5, lanes,
                             tuple(f"C-E-{i:03d}-L{j + 1}" for j in range(lanes)), 1.3, 103.8)
                     for i in range(n_stations))
    return Network("test", (Roadway("C", "E", "Test corridor", stations, (), 90.0),))


@pytest.fixture(scope="module")
def incident_run():
    """1,200 veh/h/lane; 2 of 4 lanes blocked at km 6.2 from minute 20 to minute 45."""
    net = corridor()
    spec = IncidentSpec("C-E", 6.2, START + 20 * MIN, 25 * MIN, lanes_blocked=2)
    cfg = SimulationConfig(start_ms=START, duration_s=80 * 60, incidents=(spec,), n_random_incidents=0,
                           fault_fraction=0.0, seed=3)
    sim = TrafficSimulator(net, cfg, demand=ConstantDemand(net, 1200.0))
    batches = list(sim)
    count = np.stack([b.vehicle_count.reshape(21, 4) for b in batches])  # interval, station, lane
    occ = np.stack([b.occupancy_pct.reshape(21, 4) for b in batches])
    speed = np.stack([b.speed_kmh.reshape(21, 4) for b in batches])
    minute = (np.array([b.interval_start_ms[0] for b in batches]) - START) / MIN
    return sim, count, occ, speed, minute


def station_speed(count, speed):
    """Count-weighted station speed per interval."""
    return np.nansum(count * speed, axis=-1) / np.maximum(count.sum(axis=-1), 1)


def test_ground_truth_names_the_segment_and_times(incident_run):
    sim = incident_run[0]
    (truth,) = sim.ground_truth.incidents
    assert truth.segment_id == "C-E-012>C-E-013"
    assert (truth.corridor, truth.direction, truth.roadway_key) == ("C", "E", "C-E")
    assert (truth.start_ms, truth.end_ms, truth.lanes_blocked) == (START + 20 * MIN, START + 45 * MIN, 2)


def test_queue_grows_upstream_and_downstream_is_starved(incident_run):
    _, count, occ, speed, minute = incident_run
    before = (minute >= 10) & (minute < 20)
    late_incident = (minute >= 35) & (minute < 45)
    up = 12  # km 6.0, just upstream of the incident
    down = 13  # km 6.5
    v_up = station_speed(count[:, up], speed[:, up])
    assert v_up[before].mean() > 80
    assert v_up[late_incident].mean() < 35
    assert occ[late_incident, up].mean() > 3 * occ[before, up].mean()
    # the queue reaches further upstream (shock ~4.6 km/h: about 1.2 km after 15 minutes)
    assert station_speed(count[:, 10], speed[:, 10])[late_incident].mean() < 45
    assert station_speed(count[:, 4], speed[:, 4])[late_incident].mean() > 80  # km 2: not reached
    flow_down = count[:, down].sum(axis=-1) * 120
    assert flow_down[late_incident].mean() < 0.8 * flow_down[before].mean()
    # capacity left: 2 of 4 lanes minus rubbernecking = 3,400 veh/h
    assert flow_down[late_incident].mean() == pytest.approx(3400, rel=0.1)
    # downstream runs free (starved, not queued)
    assert station_speed(count[:, down], speed[:, down])[late_incident].mean() > 75


def test_blocked_lanes_read_little_flow_near_the_incident(incident_run):
    _, count, _, _, minute = incident_run
    during = (minute >= 25) & (minute < 45)
    for station in (12, 13):
        lanes = count[during, station].sum(axis=0)
        assert lanes[2:].sum() < 0.2 * lanes[:2].sum()  # lanes 3 and 4 (shoulder side) blocked


def test_queue_clears_after_the_incident(incident_run):
    _, count, occ, speed, minute = incident_run
    recovered = (minute >= 60) & (minute < 80)
    before = (minute >= 10) & (minute < 20)
    for station in (10, 11, 12):
        assert station_speed(count[:, station], speed[:, station])[recovered].mean() > 80
        assert occ[recovered, station].mean() < 1.5 * occ[before, station].mean() + 1


def test_random_incidents_sit_inside_segments_and_the_run():
    net = singapore_network(2000)
    rng = np.random.default_rng(5)
    end = START + 6 * 3_600_000
    specs = random_incidents(net, rng, 30, START, end)
    truths = resolve_incidents(net, specs)
    assert len(truths) == 30
    for t in truths:
        seg = net.segment_by_id[t.segment_id]
        assert seg.start_km < t.location_km < seg.end_km
        assert seg.corridor == t.corridor and seg.direction == t.direction
        assert START <= t.start_ms < t.end_ms <= end
        lanes = net.station_by_id[seg.upstream_station].lanes
        assert 1 <= t.lanes_blocked < lanes


def test_bad_incident_specs_are_refused():
    net = corridor()
    with pytest.raises(ValueError):
        resolve_incidents(net, [IncidentSpec("NOPE-E", 1.0, START, MIN, 1)])
    with pytest.raises(ValueError):
        resolve_incidents(net, [IncidentSpec("C-E", 50.0, START, MIN, 1)])
