"""Tumbling detector windows against an independent pandas batch computation."""
from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from stream.core.windows import ClosedWindow, TumblingWindow

N_DET = 37
T0_MS = 1_700_000_000_000  # not aligned to any window length on purpose


def random_readings(seed: int, interval_ms: int, n_intervals: int, jitter_ms: int, n_late: int) -> pd.DataFrame:
    """Readings in arrival order: out of order by up to ``jitter_ms``, plus ``n_late`` very old rows."""
    rng = np.random.default_rng(seed)
    det = np.repeat(np.arange(N_DET), n_intervals)
    start = T0_MS + np.tile(np.arange(n_intervals), N_DET) * interval_ms
    keep = rng.random(len(det)) > 0.1  # dropouts
    det, start = det[keep], start[keep]
    n = len(det)
    count = rng.poisson(4, n)
    count[rng.random(n) < 0.15] = 0
    speed = rng.uniform(5, 110, n)
    speed[count == 0] = np.nan
    speed[rng.random(n) < 0.05] = np.nan  # vehicles but no speed measured
    occ = np.round(rng.uniform(0, 60, n), 1)
    occ[count == 0] = 0.0
    arrival = start + interval_ms + rng.integers(0, jitter_ms + 1, n)
    df = pd.DataFrame({"detector": det, "interval_start_ms": start, "interval_ms": interval_ms,
                       "vehicle_count": count, "occupancy_pct": occ, "speed_kmh": speed, "arrival": arrival})
    df = df.sort_values("arrival", kind="stable").reset_index(drop=True)
    if n_late:
        late = df.sample(n_late, random_state=seed).copy()
        late["interval_start_ms"] = T0_MS - 10 * interval_ms  # long before anything
        positions = rng.integers(n // 4, n, n_late)
        parts, last = [], 0
        for pos, (_, row) in sorted(zip(positions, late.iterrows(), strict=True), key=lambda x: x[0]):
            parts.extend([df.iloc[last:pos], row.to_frame().T])
            last = pos
        parts.append(df.iloc[last:])
        df = pd.concat(parts, ignore_index=True).astype(df.dtypes.to_dict())
    return df.drop(columns="arrival")


def reference(df: pd.DataFrame, length_ms: int, lateness_ms: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Late mask and per (window, detector) sums, straight from the definitions.

    ``df.batch`` numbers the update calls; a row is late when its window closed by the watermark of earlier batches.
    """
    end = df.interval_start_ms + df.interval_ms
    batch_max = end.groupby(df.batch).max().cummax().shift(1).fillna(np.iinfo(np.int64).min).astype(np.int64)
    before = df.batch.map(batch_max)
    win = df.interval_start_ms - df.interval_start_ms % length_ms
    late = (win + length_ms + lateness_ms <= before).to_numpy()
    ok = df[~late].assign(window_start_ms=win[~late])
    has = (ok.vehicle_count > 0) & np.isfinite(ok.speed_kmh)
    ok = ok.assign(occ_time=ok.occupancy_pct / 100 * ok.interval_ms,
                   nv=np.where(has, ok.vehicle_count * ok.speed_kmh, 0.0),
                   n_over_v=np.where(has, ok.vehicle_count / ok.speed_kmh, 0.0),
                   n_speed=np.where(has, ok.vehicle_count, 0))
    ref = ok.groupby(["window_start_ms", "detector"]).agg(
        vehicle_count=("vehicle_count", "sum"), occupancy_time_ms=("occ_time", "sum"),
        covered_ms=("interval_ms", "sum"), speed_weighted_sum=("nv", "sum"), inverse_speed_sum=("n_over_v", "sum"),
        speed_count=("n_speed", "sum"), n_readings=("vehicle_count", "size")).reset_index()
    return late, ref


def to_frame(closed: list[ClosedWindow]) -> pd.DataFrame:
    cols = ["detector", "vehicle_count", "occupancy_time_ms", "covered_ms", "speed_weighted_sum",
            "inverse_speed_sum", "speed_count", "n_readings"]
    frames = [pd.DataFrame({"window_start_ms": c.window_start_ms, **{k: getattr(c, k) for k in cols}})
              for c in closed]
    return pd.concat(frames, ignore_index=True)


def feed(windows, df: pd.DataFrame, rng: np.random.Generator, lateness_ms: int) -> tuple[list, list, np.ndarray]:
    """Feed in random batch sizes, polling after each; check each poll against the close rule.

    Returns the closed windows, the late masks and each row's batch number.
    """
    closed, late, batch = [], [], np.zeros(len(df), dtype=np.int64)
    i = 0
    while i < len(df):
        j = min(len(df), i + int(rng.integers(1, 300)))
        batch[i:j] = len(late)
        b = df.iloc[i:j]
        late.append(windows.update(b.detector.to_numpy(), b.interval_start_ms.to_numpy(), b.interval_ms.to_numpy(),
                                   b.vehicle_count.to_numpy(), b.occupancy_pct.to_numpy(), b.speed_kmh.to_numpy()))
        for c in windows.poll():
            assert c.window_end_ms + lateness_ms <= windows.watermark_ms
            closed.append(c)
        i = j
    return closed, late, batch


@pytest.mark.parametrize("length_ms,interval_ms,lateness_ms", [
    (30_000, 20_000, 0), (30_000, 30_000, 45_000), (60_000, 20_000, 30_000), (300_000, 30_000, 120_000)])
def test_windows_match_pandas_groupby(length_ms: int, interval_ms: int, lateness_ms: int) -> None:
    df = random_readings(length_ms + lateness_ms, interval_ms, n_intervals=60, jitter_ms=lateness_ms, n_late=25)
    windows = TumblingWindow(length_ms, lateness_ms).build(N_DET)
    rng = np.random.default_rng(1)
    closed, late, df["batch"] = feed(windows, df, rng, lateness_ms)
    n_polled = len(closed)
    closed += windows.flush()
    assert windows.flush() == []

    ref_late, ref = reference(df, length_ms, lateness_ms)
    got_late = np.concatenate(late)
    np.testing.assert_array_equal(got_late, ref_late)
    assert got_late.sum() >= 25  # the injected old rows, at least

    starts = [c.window_start_ms for c in closed]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert all(s % length_ms == 0 for s in starts)
    assert n_polled > 0
    got = to_frame(closed)
    assert len(got) == len(ref)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), ref[got.columns], check_dtype=False,
                                  rtol=1e-12)
    for c in closed:
        assert c.detector.dtype == np.int64 and c.vehicle_count.dtype == np.int64
        assert np.all(np.diff(c.detector) > 0)


def test_out_of_order_within_lateness_is_accepted_and_late_rows_are_flagged() -> None:
    windows = TumblingWindow(30_000, allowed_lateness_ms=60_000).build(3)
    one = np.ones(1, dtype=np.int64)

    def put(det: int, start: int) -> bool:
        return bool(windows.update(one * det, one * start, one * 30_000, one * 2, np.ones(1) * 5.0,
                                   np.ones(1) * 50.0)[0])

    assert not put(0, 60_000)  # watermark 90 s
    assert windows.watermark_ms == 90_000
    assert not put(1, 30_000)  # [30, 60) closes at 60 + 60 = 120 s > 90 s: accepted
    assert put(2, 0)  # [0, 30) closes at 30 + 60 = 90 s <= 90 s: late
    assert windows.poll() == []
    assert [(c.window_start_ms, c.detector.tolist()) for c in windows.flush()] == [(30_000, [1]), (60_000, [0])]

    # within one batch no row makes another late: lateness is judged against the watermark before the batch
    windows2 = TumblingWindow(30_000).build(3)
    late = windows2.update(np.array([0, 1, 2]), np.array([0, 0, 30_000]), np.full(3, 30_000), np.full(3, 2),
                           np.full(3, 5.0), np.full(3, 50.0))
    assert not late.any()
    assert [(c.window_start_ms, c.detector.tolist()) for c in windows2.poll()] == [(0, [0, 1]), (30_000, [2])]
    late = windows2.update(np.array([2]), np.array([20_000]), np.array([10_000]), np.array([1]), np.array([1.0]),
                           np.array([9.0]))
    assert late.tolist() == [True]  # [0, 30 s) closed when the watermark reached 60 s
    assert windows2.flush() == []


def test_polled_window_does_not_reopen() -> None:
    windows = TumblingWindow(60_000).build(2)
    args = (np.array([0]), np.array([0]), np.array([60_000]), np.array([3]), np.array([10.0]), np.array([80.0]))
    windows.update(*args)
    (c,) = windows.poll()
    assert c.window_start_ms == 0 and c.vehicle_count.tolist() == [3]
    assert windows.update(*args).tolist() == [True]
    assert windows.flush() == []


def test_snapshot_restore_mid_stream_gives_identical_results() -> None:
    length_ms, lateness_ms = 60_000, 60_000
    df = random_readings(7, 20_000, n_intervals=45, jitter_ms=lateness_ms, n_late=10)
    half = len(df) // 2
    a = TumblingWindow(length_ms, lateness_ms).build(N_DET)
    closed_a1, late_a1, batch1 = feed(a, df.iloc[:half], np.random.default_rng(3), lateness_ms)
    state = pickle.loads(pickle.dumps(a.snapshot()))
    assert len(state["windows"]) > 1  # several windows open at once
    b = TumblingWindow(length_ms, lateness_ms).build(N_DET, resume_state=state)
    assert b.watermark_ms == a.watermark_ms and b.open_windows_ms == a.open_windows_ms
    closed_a2, late_a2, _ = feed(a, df.iloc[half:], np.random.default_rng(4), lateness_ms)
    closed_b2, late_b2, batch2 = feed(b, df.iloc[half:], np.random.default_rng(4), lateness_ms)
    np.testing.assert_array_equal(np.concatenate(late_a2), np.concatenate(late_b2))
    closed_b2 += b.flush()
    pd.testing.assert_frame_equal(to_frame(closed_a2 + a.flush()), to_frame(closed_b2))
    # and the split stream equals the reference
    df["batch"] = np.concatenate([batch1, batch2 + len(late_a1)])
    ref_late, ref = reference(df, length_ms, lateness_ms)
    np.testing.assert_array_equal(np.concatenate(late_a1 + late_b2), ref_late)
    got = to_frame(closed_a1 + closed_b2)
    pd.testing.assert_frame_equal(got, ref[got.columns], check_dtype=False, rtol=1e-12)


def test_snapshot_rejects_other_definition() -> None:
    state = TumblingWindow(30_000).build(4).snapshot()
    with pytest.raises(ValueError):
        TumblingWindow(60_000).build(4, resume_state=state)
    with pytest.raises(ValueError):
        TumblingWindow(30_000).build(5, resume_state=state)


def test_unknown_detector_number_is_rejected() -> None:
    windows = TumblingWindow(30_000).build(4)
    with pytest.raises(ValueError):
        windows.update(np.array([4]), np.array([0]), np.array([30_000]), np.array([1]), np.array([1.0]),
                       np.array([50.0]))


def test_whole_network_batches_in_order_equal_shuffled_ones() -> None:
    """Batches holding every detector once in order take a faster path; the sums must not change."""
    rng = np.random.default_rng(11)
    n_int = 6
    det = np.tile(np.arange(N_DET), n_int)
    start = T0_MS + np.repeat(np.arange(n_int), N_DET) * 30_000
    count = rng.poisson(3, len(det))
    occ, speed = rng.uniform(0, 30, len(det)), np.where(count > 0, rng.uniform(10, 90, len(det)), np.nan)
    ordered = TumblingWindow(60_000).build(N_DET)
    shuffled = TumblingWindow(60_000).build(N_DET)
    for k in range(n_int):
        rows = np.arange(k * N_DET, (k + 1) * N_DET)
        ordered.update(det[rows], start[rows], np.full(N_DET, 30_000), count[rows], occ[rows], speed[rows])
        perm = rng.permutation(rows)
        shuffled.update(det[perm], start[perm], np.full(N_DET, 30_000), count[perm], occ[perm], speed[perm])
    a, b = to_frame(ordered.flush()), to_frame(shuffled.flush())
    pd.testing.assert_frame_equal(a, b, rtol=1e-12)
    df = pd.DataFrame({"detector": det, "interval_start_ms": start, "interval_ms": 30_000, "vehicle_count": count,
                       "occupancy_pct": occ, "speed_kmh": speed, "batch": np.repeat(np.arange(n_int), N_DET)})
    _, ref = reference(df, 60_000, 0)
    pd.testing.assert_frame_equal(a, ref[a.columns], check_dtype=False, rtol=1e-12)
