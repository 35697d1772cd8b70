"""California #7/#8: hand-worked cases and an independent scalar reference of the #8 decision tree."""
from __future__ import annotations

import json

import numpy as np
import pytest

from models.network import Network
from models.records import FlowWindowBatch
from stream.core.incidents import build_detector
from stream.core.incidents.california import (
    CONFIRMED,
    CONTINUING,
    FREE,
    TENTATIVE,
    WAVE,
    CaliforniaConfig,
    CaliforniaDetector,
)

MIN = 60_000


def run(det: CaliforniaDetector, occ_rows: list[list[float]]) -> tuple[list[list[int]], list[list[bool]]]:
    states, alarms = [], []
    for t, occ in enumerate(occ_rows):
        a = det.update(t * MIN, np.array(occ, dtype=float), np.full(len(occ), 80.0), np.full(len(occ), 4000.0))
        states.append(det.state.tolist())
        alarms.append(a.alarm.tolist())
    return states, alarms


def test_hand_worked_incident_on_one_pair_not_the_other():
    # stations A, B, C. Pair A-B: an incident between A and B (A fills, B empties).
    # t2: OCCDF 30-6 = 24 >= 8, OCCRDF 24/30 = 0.8 >= 0.5, DOCCTD (10-6)/10 = 0.4 >= 0.3 -> tentative
    # t3: OCCRDF 27/32 = 0.84 -> confirmed (alarm, OCCDF 27 -> severity 2)
    # t4: OCCRDF 31/35 = 0.89 -> continuing (OCCDF 31 -> severity 3)
    # t5: OCCRDF 2/12 = 0.17 < 0.5; DOCCTD (5-10)/5 = -1 < -0.4 but DOCC 10 < 30 -> free
    # Pair B-C: B drops below C, OCCDF negative: always free.
    occ = [[10, 10, 10], [10, 10, 10], [30, 6, 10], [32, 5, 10], [35, 4, 10], [12, 10, 10]]
    det = CaliforniaDetector(3)
    states, alarms = run(det, occ)
    assert [s[0] for s in states] == [FREE, FREE, TENTATIVE, CONFIRMED, CONTINUING, FREE]
    assert [s[1] for s in states] == [FREE] * 6
    assert [a[0] for a in alarms] == [False, False, False, True, True, False]
    det2 = CaliforniaDetector(3)
    out = [det2.update(t * MIN, np.array(o, float), np.full(3, 80.0), np.full(3, 4000.0)) for t, o in enumerate(occ)]
    assert out[3].severity.tolist() == [2, 0] and out[4].severity.tolist() == [3, 0]
    assert out[3].confidence[0] == pytest.approx(27 / 32)
    assert out[2].confidence[0] == pytest.approx(0.5 * 24 / 30)  # tentative: evidence, no alarm


def test_hand_worked_compression_wave_suppresses_8_but_not_7():
    # one pair U-D. t2, t3: D jumps to 40 (DOCC >= 30, DOCCTD (10-40)/10 = -3 < -0.4): wave, CW1 (twice).
    # t4..t7: CW2..CW5 although the #7 test would pass (OCCDF 28, OCCRDF 0.7, DOCCTD (40-12)/40 = 0.7);
    # t8: CW5 -> free without a test; t9: steady D, DOCCTD 0 -> free; t10: D falls (12-5)/12 = 0.58 -> tentative;
    # t11: OCCRDF 0.875 -> confirmed.
    occ = [[10, 10], [10, 10], [45, 40], [45, 40], [40, 12], [40, 12], [40, 12], [40, 12], [40, 12],
           [40, 12], [40, 5], [40, 5]]
    det8 = CaliforniaDetector(2)
    states, alarms = run(det8, occ)
    assert [s[0] for s in states] == [FREE, FREE, WAVE, WAVE, WAVE, WAVE, WAVE, WAVE, FREE, FREE, TENTATIVE,
                                      CONFIRMED]
    assert det8.wave_age.tolist() == [0]
    ages = []
    det8b = CaliforniaDetector(2)
    for t, o in enumerate(occ[:8]):
        det8b.update(t * MIN, np.array(o, float), np.full(2, 80.0), np.full(2, 4000.0))
        ages.append(int(det8b.wave_age[0]))
    assert ages == [0, 0, 1, 1, 2, 3, 4, 5]
    assert [a[0] for a in alarms].index(True) == 11

    # classic #7 (third test DOCC < 20) has no wave check: tentative at t4, alarm at t5
    det7 = CaliforniaDetector(2, CaliforniaConfig(variant=7))
    states7, alarms7 = run(det7, occ)
    assert [s[0] for s in states7][:6] == [FREE, FREE, FREE, FREE, TENTATIVE, CONFIRMED]
    assert [a[0] for a in alarms7].index(True) == 5


def test_tentative_then_wave_goes_to_cw1_and_confirmed_then_wave_goes_free():
    # tentative at t2 (as above), then D jumps to 35: OCCRDF < 0.5, DOCCTD (10-35)/10 < -0.4, DOCC >= 30 -> CW1
    det = CaliforniaDetector(2)
    states, _ = run(det, [[10, 10], [10, 10], [30, 6], [30, 35]])
    assert [s[0] for s in states] == [FREE, FREE, TENTATIVE, WAVE]
    det = CaliforniaDetector(2)
    states, _ = run(det, [[10, 10], [10, 10], [30, 6], [30, 6], [30, 35]])
    assert [s[0] for s in states] == [FREE, FREE, TENTATIVE, CONFIRMED, FREE]


def test_missing_data_holds_the_pair_state():
    det = CaliforniaDetector(2)
    states, alarms = run(det, [[10, 10], [10, 10], [30, 6], [30, 5], [np.nan, 5], [30, np.nan], [30, 5]])
    assert [s[0] for s in states] == [FREE, FREE, TENTATIVE, CONFIRMED, CONFIRMED, CONFIRMED, CONTINUING]
    assert [a[0] for a in alarms] == [False, False, False, True, True, True, True]


def test_rejects_out_of_order_windows_and_wrong_shapes():
    det = CaliforniaDetector(3)
    det.update(MIN, np.ones(3), np.ones(3), np.ones(3))
    with pytest.raises(ValueError):
        det.update(MIN, np.ones(3), np.ones(3), np.ones(3))
    with pytest.raises(ValueError):
        det.update(2 * MIN, np.ones(2), np.ones(2), np.ones(2))


# ---- independent scalar reference: the #8 decision tree, pair by pair, Java-style ordinals --------------
R_FREE, R_CW1, R_CW5, R_TENT, R_CONF, R_CONT = 0, 1, 5, 6, 7, 8


def reference_california8(occ: np.ndarray, t1=8.0, t2=0.5, t3=0.3, wave_docc=30.0, wave_docctd=-0.4):
    """Scalar reference: occ[t, station] -> Java-style state per t and pair (no vectorisation)."""
    n_t, n_s = occ.shape
    state = [R_FREE] * (n_s - 1)
    out = []
    for t in range(n_t):
        if t >= 2:
            for p in range(n_s - 1):
                up, down, down2 = occ[t, p], occ[t, p + 1], occ[t - 2, p + 1]
                if np.isnan(up) or np.isnan(down):
                    continue
                occdf = up - down
                occrdf = occdf / up if up > 0 else 0.0
                docctd = (down2 - down) / down2 if (not np.isnan(down2) and down2 > 0) else 0.0
                s = state[p]
                if s >= R_TENT:
                    if occrdf >= t2:
                        s = R_CONT if s >= R_CONF else R_CONF
                    elif docctd >= wave_docctd:
                        s = R_FREE
                    elif down >= wave_docc:
                        s = R_FREE if s >= R_CONF else R_CW1
                    else:
                        s = R_FREE
                elif down >= wave_docc:
                    if docctd >= wave_docctd:
                        s = s + 1 if R_CW1 <= s < R_CW5 else R_FREE
                    else:
                        s = R_CW1
                elif R_CW1 <= s <= R_CW5:
                    s = s + 1 if s < R_CW5 else R_FREE
                else:
                    s = R_TENT if (occdf >= t1 and occrdf >= t2 and docctd >= t3) else R_FREE
                state[p] = s
        out.append(list(state))
    return np.array(out)


def to_reference_codes(state: np.ndarray, age: np.ndarray) -> np.ndarray:
    mapping = {FREE: R_FREE, TENTATIVE: R_TENT, CONFIRMED: R_CONF, CONTINUING: R_CONT}
    return np.array([mapping[s] if s != WAVE else a for s, a in zip(state.tolist(), age.tolist(), strict=True)])


def random_occupancy(seed: int, n_t: int, n_s: int) -> np.ndarray:
    """Regime-switching occupancies (free ~8 %, incident-like jumps, waves), with some NaN."""
    rng = np.random.default_rng(seed)
    level = np.full(n_s, 8.0)
    rows = []
    for _ in range(n_t):
        jump = rng.random(n_s) < 0.15
        level = np.where(jump, rng.choice([3.0, 8.0, 15.0, 25.0, 35.0, 50.0], n_s), level)
        row = np.clip(level + rng.normal(0, 2.0, n_s), 0, 100)
        row[rng.random(n_s) < 0.03] = np.nan
        row[rng.random(n_s) < 0.01] = 0.0
        rows.append(row)
    return np.array(rows)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_vectorised_8_matches_scalar_reference(seed):
    occ = random_occupancy(seed, 600, 7)
    ref = reference_california8(occ)
    det = CaliforniaDetector(7)
    got = []
    for t in range(len(occ)):
        det.update(t * MIN, occ[t], np.full(7, 80.0), np.full(7, 4000.0))
        got.append(to_reference_codes(det.state, det.wave_age))
    got = np.array(got)
    assert np.array_equal(got, ref)
    visited = set(np.unique(ref).tolist())
    assert {R_FREE, R_CW1, R_CW5, R_TENT, R_CONF, R_CONT} <= visited  # the test exercised every branch


def test_snapshot_restore_continues_identically():
    occ = random_occupancy(7, 200, 5)
    a = CaliforniaDetector(5)
    outs_a = [a.update(t * MIN, occ[t], np.full(5, 80.0), np.full(5, 4000.0)).alarm for t in range(200)]
    b = CaliforniaDetector(5)
    for t in range(100):
        b.update(t * MIN, occ[t], np.full(5, 80.0), np.full(5, 4000.0))
    c = CaliforniaDetector(5, resume_state=json.loads(json.dumps(b.snapshot(), allow_nan=False)))
    outs_c = [c.update(t * MIN, occ[t], np.full(5, 80.0), np.full(5, 4000.0)).alarm for t in range(100, 200)]
    assert np.array_equal(np.array(outs_a[100:]), np.array(outs_c))


def test_update_batch_orders_stations_by_roadway_and_fills_missing():
    net = Network.from_dict({"name": "t", "roadways": [{"corridor": "X", "direction": "E", "stations": [
        {"id": f"S{i}", "km": float(i), "lanes": 1} for i in range(3)]}]})
    roadway = net.roadways[0]
    det = build_detector("california8", roadway)
    rows = [(t, s, o) for t, occs in enumerate([[10, 10, 10], [10, 10, 10], [30, 6, 10], [32, 5, 10]])
            for s, o in enumerate(occs)]
    rows = rows[::-1]  # order of rows must not matter
    rows = [r for r in rows if not (r[0] == 3 and r[1] == 2)]  # S2 missing in the last window
    n = len(rows)
    batch = FlowWindowBatch(
        "station", MIN, np.array([f"S{s}" for _, s, _ in rows], dtype=object), np.full(n, "X", dtype=object),
        np.full(n, "E", dtype=object), np.array([t * MIN for t, _, _ in rows], dtype=np.int64), np.zeros(n, np.int64),
        np.full(n, 4000.0), np.array([o for _, _, o in rows], dtype=float), np.full(n, 80.0), np.full(n, 80.0),
        np.full(n, 50.0), np.full(n, 8, dtype=np.int8), np.ones(n, np.int64))
    alarms = det.update_batch(batch, roadway)
    assert alarms.window_start_ms == 3 * MIN
    assert alarms.alarm.tolist() == [True, False]
