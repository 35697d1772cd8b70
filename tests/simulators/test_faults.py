"""Detector faults show up exactly where and when the ground truth says, and nowhere else."""
import numpy as np
import pytest

from models.singapore import singapore_network
from simulators import DEFAULT_START_MS, FAULT_KINDS, SimulationConfig, TrafficSimulator
from simulators.faults import random_faults

HOUR = 3_600_000


@pytest.fixture(scope="module")
def run():
    """Monday 11:00-14:00 (off-peak, no incidents) with a fifth of the detectors faulty."""
    net = singapore_network(400)
    cfg = SimulationConfig(start_ms=DEFAULT_START_MS + 11 * HOUR, duration_s=3 * 3600, fault_fraction=0.2,
                           n_random_incidents=0, warmup_s=1200, seed=21)
    sim = TrafficSimulator(net, cfg)
    shape = (sim.n_intervals, net.n_detectors)
    present = np.zeros(shape, dtype=bool)
    t, c, o, v = np.zeros(shape), np.zeros(shape), np.zeros(shape), np.zeros(shape)
    station_count = []
    for i, b in enumerate(sim):
        d = net.detector_numbers(b.detector_id)
        present[i, d] = True
        t[i, d], c[i, d], o[i, d], v[i, d] = b.interval_start_ms, b.vehicle_count, b.occupancy_pct, b.speed_kmh
        station_count.append(np.bincount(net.detector_station_idx[d], b.vehicle_count, len(net.stations)))
    # detector id -> its rows as (interval_start_ms, count, occ, speed)
    rows = {net.detector_ids[j]: np.stack([a[present[:, j], j] for a in (t, c, o, v)], axis=1)
            for j in range(net.n_detectors)}
    return net, sim, rows, np.array(station_count)


def test_fraction_and_kinds(run):
    net, sim, _, _ = run
    faults = sim.ground_truth.faults
    assert len(faults) == round(0.2 * net.n_detectors)
    assert len({f.detector_id for f in faults}) == len(faults)
    assert {f.kind for f in faults} == set(FAULT_KINDS)
    for f in faults:
        assert sim.start_ms <= f.start_ms < f.end_ms <= sim.end_ms
        assert (f.start_ms - sim.start_ms) % 30_000 == 0


def test_each_fault_has_its_signature_inside_its_window_only(run):
    net, sim, rows, station_count = run
    for f in sim.ground_truth.faults:
        t, c, o, v = rows[f.detector_id].T
        inside = (t >= f.start_ms) & (t < f.end_ms)
        outside = ~inside
        n_slots = (f.end_ms - f.start_ms) // 30_000
        # healthy outside the window: off-peak lanes never read above 40 % occupancy, speed NaN iff no count
        assert (o[outside] < 40).all()
        assert (np.isnan(v[outside]) == (c[outside] == 0)).all()
        if f.kind == "dropout":
            assert inside.sum() == 0
            assert outside.sum() == sim.n_intervals - n_slots
            continue
        assert inside.sum() == n_slots
        if f.kind == "stuck":
            assert len(np.unique(c[inside])) == 1 and len(np.unique(o[inside])) == 1
            assert np.unique(v[inside]).size == 1 or np.isnan(v[inside]).all()
        elif f.kind == "zeros":
            assert (c[inside] == 0).all() and (o[inside] == 0).all() and np.isnan(v[inside]).all()
            # ... while the other lanes of the station carry traffic ("card off")
            st = net.detector_station_idx[net.detector_index[f.detector_id]]
            slots = ((t[inside] - sim.start_ms) // 30_000).astype(int)
            assert station_count[slots, st].sum() > 0
        elif f.kind == "chatter":
            assert (o[inside] > 70).mean() > 0.4
            assert (o[inside] <= 100).all()
        elif f.kind == "high_occupancy":
            assert (o[inside] > 70).all() and (o[inside] <= 100).all()


def test_no_faults_when_fraction_is_zero():
    net = singapore_network(200)
    assert random_faults(net, np.random.default_rng(0), 0.0, 0, HOUR, 30_000) == []
    with pytest.raises(ValueError):
        random_faults(net, np.random.default_rng(0), 0.1, 0, HOUR, 30_000, kinds=("melted",))
