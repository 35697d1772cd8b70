"""ReadingValidator against an independent row-by-row reference, on hypothesis-generated garbage.

Every row must be accepted (equal to its input) or dead-lettered with the reason the
reference gives and its original values; accepted + dead-lettered == input rows.
"""
from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.validate import MAX_INTERVAL_MS, REASONS, ReadingValidator
from models.records import DeadLetter
from models.singapore import singapore_network

NET = singapore_network(12)
IDS = list(NET.detector_ids)
NOW = 1_700_000_000_000
MAX_FUTURE, MAX_PAST, MAX_SPEED, HORIZON = 300_000, 7 * 86_400_000, 250.0, 3_600_000
COLS = ("detector_id", "interval_start_ms", "interval_ms", "vehicle_count", "occupancy_pct", "speed_kmh")
SHORT = dict(zip(COLS, "dtinos", strict=True))

junk = st.one_of(st.none(), st.booleans(), st.text(max_size=4), st.binary(max_size=3),
                 st.lists(st.integers(0, 3), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(0, 9), max_size=1),
                 st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=True, allow_infinity=True))
times = st.sampled_from([NOW - 60_000, NOW - 40_000, NOW - 20_000, NOW - 60_000.0, NOW])
value = {
    "detector_id": st.one_of(st.sampled_from(IDS[:6]), st.sampled_from(["nope", "PIE-E-999-L1", ""]), junk),
    "interval_start_ms": st.one_of(times, times, st.sampled_from([NOW + MAX_FUTURE + 1, NOW - MAX_PAST - 1,
                                                                  NOW + 0.5, 2**63 - 1, -(2**63)]), junk),
    "interval_ms": st.one_of(st.sampled_from([20_000, 30_000, 20_000.0, 0, -5, MAX_INTERVAL_MS,
                                              MAX_INTERVAL_MS + 1]), junk),
    "vehicle_count": st.one_of(st.integers(0, 40), st.integers(-5, -1), st.sampled_from([3.0, 2.5]), junk),
    "occupancy_pct": st.one_of(st.floats(0, 100), st.integers(0, 100), st.sampled_from([-0.1, 100.5, math.nan]),
                               junk),
    "speed_kmh": st.one_of(st.floats(0, MAX_SPEED), st.none(), st.just(math.nan),
                           st.sampled_from([-1.0, 251.0, math.inf, -math.inf]), junk),
}
good_value = {
    "detector_id": st.sampled_from(IDS[:6]),
    "interval_start_ms": times,
    "interval_ms": st.sampled_from([20_000, 30_000]),
    "vehicle_count": st.integers(0, 40),
    "occupancy_pct": st.floats(0, 100),
    "speed_kmh": st.one_of(st.floats(0, MAX_SPEED), st.none()),
}
row = st.one_of(st.fixed_dictionaries(good_value), st.fixed_dictionaries(value))
message = st.tuples(st.lists(row, max_size=12),
                    st.one_of(st.none(), st.sampled_from([s.station_id for s in NET.stations[:2]] + ["not-a-station"])),
                    st.sampled_from(["msgpack", "json"]))


def _is_int(v: Any) -> bool:
    if type(v) is int:
        return -(2**63) <= v < 2**63
    return type(v) is float and math.isfinite(v) and v.is_integer() and abs(v) < 2**63


def _is_num(v: Any, null_ok: bool = False) -> bool:
    return type(v) in (int, float) or (null_ok and v is None)


class Reference:
    """Row-by-row validation in plain Python, following the documented order."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, int]] = set()

    def reason(self, r: dict[str, Any], key: str | None, in_message: set[tuple[str, int]]) -> str | None:
        d, t, i, n, o, s = (r[c] for c in COLS)
        if not (type(d) is str and _is_int(t) and _is_int(i) and _is_int(n) and _is_num(o) and _is_num(s, True)):
            return "wrong_type"
        if d not in NET.detector_index:
            return "unknown_detector"
        if key in NET.station_by_id and d not in NET.station_by_id[key].detector_ids:
            return "key_mismatch"
        t, i, n = int(t), int(i), int(n)
        s = math.nan if s is None else float(s)
        if not 0 < i <= MAX_INTERVAL_MS:
            return "bad_interval"
        if t > NOW + MAX_FUTURE:
            return "future_timestamp"
        if t < NOW - MAX_PAST:
            return "stale_timestamp"
        if n < 0:
            return "negative_count"
        if not 0 <= float(o) <= 100:
            return "occupancy_out_of_range"
        if not (math.isnan(s) or 0 <= s <= MAX_SPEED):
            return "speed_out_of_range"
        pair = (d, t)
        if pair in in_message or (t >= NOW - HORIZON and pair in self.seen):
            return "duplicate"
        in_message.add(pair)
        if t >= NOW - HORIZON:
            self.seen.add(pair)
        return None


def _encode(rows: list[dict[str, Any]], fmt: str) -> tuple[bytes, list[dict[str, Any]]]:
    """Bytes of the message and the rows as the decoder will see them."""
    doc = {"v": 1, **{SHORT[c]: [r[c] for r in rows] for c in COLS}}
    if fmt == "msgpack":
        return msgpack.packb(doc, use_bin_type=True), rows
    try:
        payload = orjson.dumps(doc)
    except TypeError:  # bytes are not JSON: send msgpack instead
        return msgpack.packb(doc, use_bin_type=True), rows
    seen = orjson.loads(payload)
    return payload, [{c: seen[SHORT[c]][j] for c in COLS} for j in range(len(rows))]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


def _check_dead_letter_payload(dl: DeadLetter, original: dict[str, Any]) -> None:
    got = orjson.loads(dl.payload)
    assert list(got) == list(COLS)
    for c in COLS:
        v = original[c]
        if isinstance(v, float) and math.isnan(v):
            assert got[c] is None
        elif isinstance(v, float) and math.isinf(v):
            assert got[c] is None  # JSON has no infinity; orjson writes null
        elif isinstance(v, (int, float, str, bool, type(None))):
            assert _same(got[c], v) or (type(v) is float and got[c] == v), (c, got[c], v)
        else:
            assert got[c] == repr(v)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(message, min_size=1, max_size=6), st.booleans())
def test_every_row_is_accepted_or_dead_lettered_with_the_reference_reason(messages: list, batched: bool) -> None:
    validator = ReadingValidator(NET, max_future_ms=MAX_FUTURE, max_past_ms=MAX_PAST, max_speed_kmh=MAX_SPEED,
                                 dedupe_horizon_ms=HORIZON)
    ref = Reference()
    encoded = [(*_encode(rows, fmt), key) for rows, key, fmt in messages]
    results = []
    if batched:  # one validate_many call: duplicates are checked across the messages of the call too
        batch, numbers, dead = validator.validate_many([p for p, _, _ in encoded], [k for _, _, k in encoded],
                                                       source="readings", now_ms=NOW)
        results.append((batch, numbers, dead, encoded))
    else:
        for payload, rows, key in encoded:
            batch, numbers, dead = validator.validate(payload, key=key, source="readings", now_ms=NOW)
            results.append((batch, numbers, dead, [(payload, rows, key)]))

    total_rows = sum(len(rows) for _, rows, _ in encoded)
    accepted_total = 0
    for batch, numbers, dead, msgs in results:
        in_call: set[tuple[str, int]] = set()
        expected_good: list[dict[str, Any]] = []
        expected_dead: list[tuple[str, int, str | None, dict[str, Any]]] = []
        for _, rows, key in msgs:
            for j, r in enumerate(rows):
                reason = ref.reason(r, key, in_call)
                if reason is None:
                    expected_good.append(r)
                else:
                    expected_dead.append((reason, j, key, r))
        assert [(d.reason, d.row, d.key) for d in dead] == [(r, j, k) for r, j, k, _ in expected_dead]
        for d, (_, _, _, original) in zip(dead, expected_dead, strict=True):
            assert d.source == "readings" and d.at_ms == NOW and d.detail
            _check_dead_letter_payload(d, original)
        assert len(batch) == len(numbers) == len(expected_good)
        for j, r in enumerate(expected_good):
            got = batch.row(j)
            assert got["detector_id"] == r["detector_id"]
            assert NET.detector_ids[numbers[j]] == r["detector_id"]
            for c in ("interval_start_ms", "interval_ms", "vehicle_count"):
                assert got[c] == r[c]
            assert got["occupancy_pct"] == r["occupancy_pct"]
            s = r["speed_kmh"]
            assert (math.isnan(got["speed_kmh"]) if s is None or math.isnan(s) else got["speed_kmh"] == s)
        assert batch.interval_start_ms.dtype == np.int64 and batch.speed_kmh.dtype == np.float64
        accepted_total += len(batch)

    counts = validator.counts()
    assert set(counts) == set(REASONS) | {"accepted"}
    assert counts["accepted"] == accepted_total
    assert counts["accepted"] + sum(v for k, v in counts.items() if k != "accepted") == total_rows


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=64), st.just(b""),
                 st.builds(msgpack.packb, st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(), st.lists(st.integers(0, 9), max_size=3),
                                                    st.dictionaries(st.sampled_from(list("vdtinos") + ["x"]),
                                                                    st.one_of(st.integers(0, 9), st.lists(st.integers(0, 9), max_size=3)),
                                                                    max_size=8)))))
def test_undecodable_messages_give_one_dead_letter_with_the_original_bytes(payload: bytes) -> None:
    validator = ReadingValidator(NET)
    batch, numbers, dead = validator.validate(payload, key="k", source="readings", now_ms=NOW)
    # anything decodable here has only integer cells: wrong_type rows or no rows at all
    if len(dead) == 1 and dead[0].row is None:
        assert dead[0].payload == payload
        assert dead[0].reason in REASONS and dead[0].key == "k"
        assert len(batch) == 0
    else:
        assert all(d.reason in ("wrong_type",) and d.row is not None for d in dead)
    assert len(batch) == len(numbers) == 0
    counts = validator.counts()
    assert sum(v for k, v in counts.items() if k != "accepted") == len(dead)
