"""CTM: capacity bounds, conservation, a scalar reference, and steady states against the analytic diagram."""
import numpy as np
import pytest

from models.network import Network, Ramp, Roadway, Station
from simulators import ConstantDemand, SimulationConfig, TrafficSimulator, TriangularFD
from simulators.ctm import build_layout, ctm_step

FD = TriangularFD(90.0, 2000.0, 140.0)


def corridor(n_stations=21, lanes=4, drop_at=None, drop_lanes=3, ramps=(), spacing_km=0.5):
    """One roadway, stations every 0.5 km, optional lane drop from station ``drop_at`` on."""
    stations = []
    for i in range(n_stations):
        n = drop_lanes if drop_at is not None and i >= drop_at else lanes
        sid = f"C-E-{i:03d}"
        stations.append(Station(sid, "C", "E", round(i * spacing_km, 3), n,
                                tuple(f"{sid}-L{j + 1}" for j in range(n)), 1.3, 103.8))
    return Network("test", (Roadway("C", "E", "Test corridor", tuple(stations), tuple(ramps), 90.0),))


def quiet(**kw):
    base = dict(noise=False, fault_fraction=0.0, n_random_incidents=0, warmup_s=0)
    base.update(kw)
    return SimulationConfig(**base)


def test_fundamental_diagram_values():
    assert FD.critical_density_veh_km_lane == pytest.approx(2000 / 90)
    assert FD.wave_speed_kmh == pytest.approx(2000 / (140 - 2000 / 90))
    assert FD.flow_veh_h_lane(FD.critical_density_veh_km_lane) == pytest.approx(2000)
    assert FD.flow_veh_h_lane(140.0) == pytest.approx(0.0)
    assert FD.speed_kmh(0.0) == pytest.approx(90.0)
    # both branches give back the flow they were asked for
    assert FD.flow_veh_h_lane(FD.congested_density(1500.0)) == pytest.approx(1500.0)
    assert FD.flow_veh_h_lane(FD.uncongested_density(1500.0)) == pytest.approx(1500.0)


def two_roadway_layout():
    net = Network("t", (corridor(9, ramps=(Ramp(1.1, "on", 0.1), Ramp(2.3, "off", 0.2))).roadways[0],
                        Roadway("D", "W", "Other", tuple(
                            Station(f"D-W-{i}", "D", "W", i * 0.5, 3 if i < 4 else 2,
                                    tuple(f"D-W-{i}-L{j + 1}" for j in range(3 if i < 4 else 2)), 1.3, 103.8)
                            for i in range(8)), (Ramp(0.6, "on", 0.3),), 80.0)))
    return build_layout(net, 5.0)


def test_random_states_respect_capacity_supply_and_conservation():
    layout = two_roadway_layout()
    rng = np.random.default_rng(0)
    dt_h = 5.0 / 3600
    for _ in range(300):
        k = rng.uniform(0, 1, layout.n_cells) * layout.jam_density_veh_km
        cap = layout.capacity_veh_h * rng.choice([1.0, 1.0, 0.4, 0.0], layout.n_cells)
        entry = rng.uniform(0, 12000, 2)
        ramp = rng.uniform(0, 1800, len(layout.ramp_cell))
        new_k, f = ctm_step(k, cap, layout, entry, ramp)
        inflow = f.mainline_in_veh_h.copy()
        inflow[layout.ramp_cell] += f.ramp_in_veh_h
        assert (f.out_veh_h <= cap + 1e-9).all()
        assert (inflow <= cap + 1e-9).all()
        assert (new_k >= -1e-9).all() and (new_k <= layout.jam_density_veh_km + 1e-9).all()
        assert (f.mainline_in_veh_h[layout.first_cell] <= entry + 1e-9).all()
        assert (f.ramp_in_veh_h <= ramp + 1e-9).all()
        exits = f.off_ramp_veh_h.sum() + (f.out_veh_h - f.off_ramp_veh_h)[layout.last_cell].sum()
        entered = f.mainline_in_veh_h[layout.first_cell].sum() + f.ramp_in_veh_h.sum()
        change = ((new_k - k) * layout.length_km).sum()
        assert change == pytest.approx((entered - exits) * dt_h, abs=1e-7)


def reference_step(k, cap, vf, w, kj, beta, ramp_cell, p, entry, ramp):
    """Textbook per-cell CTM (one roadway), written independently with scalar loops."""
    n = len(k)
    send = [min(vf * k[i], cap[i]) for i in range(n)]
    recv = [min(cap[i], w[i] * (kj[i] - k[i])) for i in range(n)]
    into = [0.0] * n
    out = [0.0] * n
    for i in range(n):
        upstream = entry if i == 0 else send[i - 1] * (1 - beta[i - 1])
        r = ramp if i == ramp_cell else 0.0
        if upstream + r <= recv[i]:
            fm, fr = upstream, r
        else:
            fr = min(r, max(p[i] * recv[i], recv[i] - upstream))
            fm = recv[i] - fr
        into[i] = fm + fr
        if i > 0:
            out[i - 1] = send[i - 1] * (fm / upstream if upstream > 0 else 1.0)
    out[n - 1] = send[n - 1]
    return [k[i] + (into[i] - out[i]) / vf for i in range(n)]


def test_vectorised_step_matches_scalar_reference():
    net = corridor(9, drop_at=6, drop_lanes=2, ramps=(Ramp(1.1, "on", 0.1), Ramp(2.3, "off", 0.2)))
    layout = build_layout(net, 5.0)
    rng = np.random.default_rng(1)
    k = rng.uniform(0, 1, layout.n_cells) * layout.jam_density_veh_km
    cap = layout.capacity_veh_h.copy()
    cap[20] *= 0.3
    ref = list(k)
    assert len(layout.ramp_cell) == 1
    rc = int(layout.ramp_cell[0])
    for _ in range(200):
        k, _ = ctm_step(k, cap, layout, np.array([7000.0]), np.array([900.0]))
        ref = reference_step(ref, cap, 90.0, layout.wave_speed_kmh, layout.jam_density_veh_km,
                             layout.off_split, rc, layout.merge_priority, 7000.0, 900.0)
    np.testing.assert_allclose(k, ref, rtol=1e-9, atol=1e-9)


def test_lane_drop_gives_lower_capacity_cells():
    layout = build_layout(corridor(9, drop_at=5, drop_lanes=3), 5.0)
    station_km = np.arange(9) * 0.5
    cell_lanes = layout.lanes[layout.station_cell]
    assert (cell_lanes == np.where(station_km >= 2.5, 3, 4)).all()
    assert layout.capacity_veh_h.max() == 8000 and layout.capacity_veh_h.min() == 6000


def test_uncongested_steady_state_matches_free_flow_branch():
    net = corridor(11)
    sim = TrafficSimulator(net, quiet(duration_s=900), demand=ConstantDemand(net, 1500.0))
    batches = list(sim)
    np.testing.assert_allclose(sim.cell_density_veh_km, FD.uncongested_density(1500.0), rtol=1e-6)
    np.testing.assert_allclose(sim.cell_flow_veh_h, 1500.0, rtol=1e-6)
    last = batches[-1]
    # detectors (noise off): station flow = 4 lanes x 1500 veh/h, speeds near vf
    assert last.vehicle_count.reshape(11, 4).sum(axis=1) * 120 == pytest.approx(np.full(11, 6000), abs=240)
    assert np.nanmean(last.speed_kmh) == pytest.approx(90.0, rel=0.02)


def test_queue_behind_lane_drop_sits_on_congested_branch():
    """Demand 7,200 veh/h into a 4->3 lane drop (capacity 6,000): the queue carries 1,500 veh/h/lane
    at the analytic congested density, and the 3-lane section runs at capacity in free flow."""
    net = corridor(21, drop_at=12, drop_lanes=3)  # drop at km 6
    sim = TrafficSimulator(net, quiet(duration_s=1500), demand=ConstantDemand(net, 1800.0))
    list(sim)
    km = sim.layout.start_km
    k = sim.cell_density_veh_km
    queue = (km >= 4.5) & (km < 5.9)
    downstream = (km >= 6.5) & (km < 9.5)
    np.testing.assert_allclose(k[queue], FD.congested_density(1500.0), rtol=0.01)
    np.testing.assert_allclose(sim.cell_flow_veh_h[queue], 1500.0, rtol=0.01)
    np.testing.assert_allclose(k[downstream], FD.critical_density_veh_km_lane, rtol=0.01)
    np.testing.assert_allclose(sim.cell_flow_veh_h[downstream], 2000.0, rtol=0.01)
    # the queue tail moves upstream at the shock speed (7200 - 6000) / (4 k_up - 4 k_queue), from the
    # moment the first vehicles reach the drop (the road starts empty)
    shock_kmh = (7200 - 6000) / (4 * 20.0 - 4 * FD.congested_density(1500.0))
    tail_km = 6.0 + shock_kmh * (1500 - 6.0 / 90.0 * 3600) / 3600
    congested = km[(k > 40) & (km < 6.0)]
    assert congested.min() == pytest.approx(tail_km, abs=0.3)
    # conservation
    assert sim.vehicles_entered == pytest.approx(sim.vehicles_exited + sim.vehicles_in_network, rel=1e-10)
