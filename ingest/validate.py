"""Validation at the door: readings messages (bytes) -> good rows + dead letters.

Every input row is either accepted or dead-lettered with exactly one reason, the
first failing check in this order (``ROW_CHECKS``)::

    wrong_type              a value of the wrong type: detector_id not a string; interval_start_ms,
                            interval_ms or vehicle_count not an integer (whole floats like 20000.0 are
                            accepted, bools are not) or outside int64; occupancy_pct not a number;
                            speed_kmh neither a number nor null/NaN (= no vehicles)
    unknown_detector        detector_id not in the network
    key_mismatch            the message key is a station id and the detector belongs to another station
    bad_interval            interval_ms <= 0 or > 1 h
    future_timestamp        interval_start_ms > now_ms + max_future_ms
    stale_timestamp         interval_start_ms < now_ms - max_past_ms
    negative_count          vehicle_count < 0
    occupancy_out_of_range  occupancy_pct NaN, < 0 or > 100
    speed_out_of_range      speed_kmh < 0, > max_speed_kmh or infinite
    duplicate               same detector and interval_start_ms accepted before (earlier in the same
                            message or batch, or in an earlier call while interval_start_ms is within
                            dedupe_horizon_ms of now_ms); the first occurrence is accepted

A message whose bytes cannot be read as a readings map gives one dead letter for the
whole message, with the :class:`models.wire.WireError` reason (``MESSAGE_REASONS``) and
the original bytes. A bad row's dead letter carries ``models.wire.encode_row_json`` of
its original values and its row index within its message.

Why this order: identity first (a row from an unknown detector is a
configuration problem whatever its values), then time, then values, then duplicates, so
that only otherwise-good rows are remembered for de-duplication.

The fast path is vectorised: one type pass and one numpy conversion per column, masks
for every check. Only rows that fail (and columns holding a wrong type) go element by
element. ``validate_many`` validates the rows of many messages in one pass, which is how
a runtime should call it: per-message numpy overhead dominates for one-station messages.
The clock is never read here: ``now_ms`` is passed in (simulated or wall clock).
"""
from __future__ import annotations

import logging
import math
from collections import Counter
from itertools import chain, repeat
from typing import Any, Sequence

import numpy as np

from models.network import Network
from models.records import DeadLetter, ReadingBatch
from models.wire import READING_KEYS, WireError, decode_reading_columns, encode_row_json

logger = logging.getLogger(__name__)

MESSAGE_REASONS = ("not_bytes", "empty_message", "malformed_bytes", "not_a_map", "unsupported_version",
                   "missing_column", "wrong_type", "ragged_columns")
ROW_CHECKS = ("wrong_type", "unknown_detector", "key_mismatch", "bad_interval", "future_timestamp",
              "stale_timestamp", "negative_count", "occupancy_out_of_range", "speed_out_of_range", "duplicate")
REASONS = tuple(dict.fromkeys(MESSAGE_REASONS + ROW_CHECKS))
_CODE = {reason: i + 1 for i, reason in enumerate(ROW_CHECKS)}  # 0 = accepted
MAX_INTERVAL_MS = 3_600_000
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_FLOAT_EXACT = 2.0**53
_NONE = type(None)
_INT_COLUMNS = ("interval_start_ms", "interval_ms", "vehicle_count")
_COLUMNS = tuple(READING_KEYS.values())


def repeated_rows(t: np.ndarray, det: np.ndarray, n_detectors: int) -> np.ndarray:
    """Mask of rows whose (detector, interval_start_ms) pair occurred in an earlier row."""
    dup = np.zeros(len(t), dtype=bool)
    if len(t) < 2:
        return dup
    n = max(n_detectors, 1)
    t_min = int(t.min())
    if (int(t.max()) - t_min) < (2**62) // n:
        key = (t - t_min) * n + det
        if (key[1:] > key[:-1]).all():  # already sorted and distinct: the usual case
            return dup
        order = np.argsort(key, kind="stable")
        same = key[order[1:]] == key[order[:-1]]
    else:
        order = np.lexsort((det, t))  # stable: the first occurrence sorts first
        same = (t[order[1:]] == t[order[:-1]]) & (det[order[1:]] == det[order[:-1]])
    dup[order[1:][same]] = True
    return dup


class SeenReadings:
    """The (detector, interval_start_ms) pairs accepted recently, for de-duplication across messages.

    Pairs live in time buckets (an eighth of the horizon each) so expiry drops whole
    buckets; a bucket holds sorted int64 runs of ``(t - bucket_start) * n_detectors + detector``
    merged like a binary counter (a new run merges with the last while that is not more
    than twice its size), so a lookup is a few ``searchsorted`` calls and an insert costs
    amortised O(log n). Memory: 8 bytes per remembered reading (50k detectors at 20 s
    over a 1 h horizon: about 72 MB).
    """

    def __init__(self, n_detectors: int, horizon_ms: int) -> None:
        self.n = max(int(n_detectors), 1)
        self.bucket_ms = max(int(horizon_ms) // 8, 1)
        self.buckets: dict[int, list[np.ndarray]] = {}

    def __len__(self) -> int:
        return sum(len(run) for runs in self.buckets.values() for run in runs)

    def _groups(self, t: np.ndarray, det: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """(bucket, row indices, keys) for the buckets the rows fall in."""
        b = t // self.bucket_ms
        if len(b) == 0:
            return []
        if b.min() == b.max():
            groups = [(int(b[0]), np.arange(len(b)))]
        else:
            order = np.argsort(b, kind="stable")
            cuts = np.flatnonzero(np.diff(b[order])) + 1
            groups = [(int(b[idx[0]]), idx) for idx in np.split(order, cuts)]
        return [(bucket, idx, (t[idx] - bucket * self.bucket_ms) * self.n + det[idx]) for bucket, idx in groups]

    def contains(self, t: np.ndarray, det: np.ndarray) -> np.ndarray:
        """Mask of the pairs already remembered."""
        hit = np.zeros(len(t), dtype=bool)
        for bucket, idx, keys in self._groups(t, det):
            for run in self.buckets.get(bucket, ()):
                pos = np.minimum(np.searchsorted(run, keys), len(run) - 1)
                hit[idx] |= run[pos] == keys
        return hit

    def add(self, t: np.ndarray, det: np.ndarray) -> None:
        """Remember pairs (callers pass pairs not yet remembered, without repeats)."""
        for bucket, _, keys in self._groups(t, det):
            runs = self.buckets.setdefault(bucket, [])
            runs.append(np.sort(keys))
            while len(runs) > 1 and len(runs[-2]) <= 2 * len(runs[-1]):
                last = runs.pop()
                runs[-1] = np.sort(np.concatenate([runs[-1], last]), kind="stable")

    def evict_before(self, start_ms: int) -> None:
        """Forget the buckets that end at or before ``start_ms``."""
        for bucket in [b for b in self.buckets if (b + 1) * self.bucket_ms <= start_ms]:
            del self.buckets[bucket]


def _int_column(col: list[Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """int64 values and a mask of wrong-typed elements (None when all are fine)."""
    types = set(map(type, col))
    try:
        if types <= {int}:
            return np.array(col, dtype=np.int64), None
        if types <= {int, float}:
            f = np.array(col, dtype=np.float64)
            with np.errstate(invalid="ignore"):
                ok = np.isfinite(f) & (np.floor(f) == f)
            if ok.all() and (np.abs(f) < _FLOAT_EXACT).all():
                return f.astype(np.int64), None
    except OverflowError:
        pass
    values = np.zeros(len(col), dtype=np.int64)
    bad = np.zeros(len(col), dtype=bool)
    for i, v in enumerate(col):
        if type(v) is int and _INT64_MIN <= v <= _INT64_MAX:
            values[i] = v
        elif type(v) is float and math.isfinite(v) and v.is_integer() and abs(v) < 2.0**63:
            values[i] = int(v)
        else:
            bad[i] = True
    return values, bad


def _float_column(col: list[Any], allow_null: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """float64 values (null -> NaN when allowed) and a mask of wrong-typed elements."""
    allowed = {float, int, _NONE} if allow_null else {float, int}
    if set(map(type, col)) <= allowed:
        try:
            return np.array(col, dtype=np.float64), None
        except OverflowError:  # an int beyond the float range
            pass
    values = np.zeros(len(col), dtype=np.float64)
    bad = np.zeros(len(col), dtype=bool)
    for i, v in enumerate(col):
        t = type(v)
        if t is float or t is int:
            try:
                values[i] = float(v)
                continue
            except OverflowError:
                pass
        elif t is _NONE and allow_null:
            values[i] = np.nan
            continue
        bad[i] = True
    return values, bad


class ReadingValidator:
    """Turns readings messages into a good :class:`ReadingBatch` and dead letters (see module docstring)."""

    def __init__(self, network: Network, max_future_ms: int = 5 * 60_000, max_past_ms: int = 7 * 86_400_000,
                 max_speed_kmh: float = 250.0, dedupe_horizon_ms: int = 3_600_000) -> None:
        self.network = network
        self.max_future_ms = int(max_future_ms)
        self.max_past_ms = int(max_past_ms)
        self.max_speed_kmh = float(max_speed_kmh)
        self.dedupe_horizon_ms = int(dedupe_horizon_ms)
        self._index = network.detector_index
        self._station_index = network.station_index
        self._det_station = network.detector_station_idx
        self._seen = SeenReadings(network.n_detectors, self.dedupe_horizon_ms) if dedupe_horizon_ms > 0 else None
        self._counts: Counter[str] = Counter()

    def counts(self) -> dict[str, int]:
        """Dead letters so far by reason (every reason present, 0 when none), plus ``accepted`` rows."""
        out = {reason: self._counts.get(reason, 0) for reason in REASONS}
        out["accepted"] = self._counts.get("accepted", 0)
        return out

    def validate(self, payload: bytes, *, key: str | None, source: str,
                 now_ms: int) -> tuple[ReadingBatch, np.ndarray, list[DeadLetter]]:
        """Good rows of one message, their detector numbers (int64, network order) and dead letters."""
        return self.validate_many([payload], [key], source=source, now_ms=now_ms)

    def validate_many(self, payloads: Sequence[bytes], keys: Sequence[str | bytes | None], *, source: str,
                      now_ms: int) -> tuple[ReadingBatch, np.ndarray, list[DeadLetter]]:
        """Like :meth:`validate` for many messages at once (one key each), in one vectorised pass.

        Good rows keep the order of the messages; a message's rows are checked for
        duplicates against every message before it in the call.
        """
        dead: list[tuple[int, DeadLetter]] = []  # (message index, dead letter), to return in message order
        decoded: list[dict[str, list[Any]]] = []
        decoded_at: list[int] = []
        msg_keys: list[str | None] = []
        for j, (payload, key) in enumerate(zip(payloads, keys, strict=True)):
            key_s = key.decode("utf-8", errors="replace") if isinstance(key, (bytes, bytearray)) else key
            try:
                cols = decode_reading_columns(payload)
            except WireError as exc:
                dead.append((j, DeadLetter(exc.reason, exc.detail, source, key_s, _as_bytes(payload), int(now_ms))))
                continue
            except Exception as exc:  # noqa: BLE001 - a message must never stop the stream
                logger.warning("unexpected error decoding a readings message from %s: %r", source, exc)
                dead.append((j, DeadLetter("malformed_bytes", f"cannot decode message: {exc!r}", source, key_s,
                                           _as_bytes(payload), int(now_ms))))
                continue
            decoded.append(cols)
            decoded_at.append(j)
            msg_keys.append(key_s)
        self._counts.update(d.reason for _, d in dead)
        if len(decoded) == 1:
            cols = decoded[0]
        else:
            cols = {name: list(chain.from_iterable(c[name] for c in decoded)) for name in _COLUMNS}
        sizes = np.fromiter((len(c["detector_id"]) for c in decoded), dtype=np.int64, count=len(decoded))
        batch, numbers, row_dead = self._validate_rows(cols, sizes, msg_keys, source, int(now_ms))
        if not dead:
            return batch, numbers, [d for _, d in row_dead]
        dead.extend((decoded_at[m], d) for m, d in row_dead)
        dead.sort(key=lambda item: item[0])  # stable: rows keep their order within a message
        return batch, numbers, [d for _, d in dead]

    # ---- rows ---------------------------------------------------------------
    def _detector_numbers(self, col: list[Any]) -> np.ndarray:
        index = self._index
        try:
            return np.fromiter(map(index.get, col, repeat(-1)), dtype=np.int64, count=len(col))
        except TypeError:  # an unhashable value (a list or a map) somewhere in the column
            return np.fromiter((index.get(v, -1) if type(v) is str else -1 for v in col), dtype=np.int64,
                               count=len(col))

    def _validate_rows(self, cols: dict[str, list[Any]], sizes: np.ndarray, msg_keys: list[str | None],
                       source: str, now_ms: int) -> tuple[ReadingBatch, np.ndarray, list[tuple[int, DeadLetter]]]:
        """Checks every row; dead letters come with the index of their message among the decoded ones."""
        n = int(sizes.sum())
        det = self._detector_numbers(cols["detector_id"])
        bad_type: dict[str, np.ndarray] = {}
        ints: dict[str, np.ndarray] = {}
        for name in _INT_COLUMNS:
            ints[name], bad = _int_column(cols[name])
            if bad is not None:
                bad_type[name] = bad
        occ, bad = _float_column(cols["occupancy_pct"], allow_null=False)
        if bad is not None:
            bad_type["occupancy_pct"] = bad
        speed, bad = _float_column(cols["speed_kmh"], allow_null=True)
        if bad is not None:
            bad_type["speed_kmh"] = bad
        unknown = det < 0
        if unknown.any():
            ids = cols["detector_id"]
            bad = np.zeros(n, dtype=bool)
            for i in np.flatnonzero(unknown):
                bad[i] = type(ids[i]) is not str
            if bad.any():
                bad_type["detector_id"] = bad
        t, interval, count = ints["interval_start_ms"], ints["interval_ms"], ints["vehicle_count"]

        code = np.zeros(n, dtype=np.int8)

        def flag(reason: str, mask: np.ndarray) -> None:
            code[(code == 0) & mask] = _CODE[reason]

        for mask in bad_type.values():
            flag("wrong_type", mask)
        flag("unknown_detector", unknown)
        row_msg = np.repeat(np.arange(len(sizes)), sizes)
        key_station = np.array([self._station_index.get(k, -1) if isinstance(k, str) else -1 for k in msg_keys],
                               dtype=np.int64)
        if (key_station >= 0).any():
            row_key_station = key_station[row_msg]
            det_station = self._det_station[np.maximum(det, 0)]
            flag("key_mismatch", (row_key_station >= 0) & ~unknown & (det_station != row_key_station))
        flag("bad_interval", (interval <= 0) | (interval > MAX_INTERVAL_MS))
        flag("future_timestamp", t > now_ms + self.max_future_ms)
        flag("stale_timestamp", t < now_ms - self.max_past_ms)
        flag("negative_count", count < 0)
        with np.errstate(invalid="ignore"):
            flag("occupancy_out_of_range", ~((occ >= 0.0) & (occ <= 100.0)))
            flag("speed_out_of_range", ~np.isnan(speed) & ~((speed >= 0.0) & (speed <= self.max_speed_kmh)))
        self._flag_duplicates(code, t, det, now_ms)

        good = code == 0
        all_good = bool(good.all())
        take = slice(None) if all_good else good
        numbers = det[take]
        batch = ReadingBatch(self.network.detector_ids[numbers], t[take], interval[take], count[take],
                             occ[take], speed[take])
        self._counts["accepted"] += len(numbers)
        dead: list[tuple[int, DeadLetter]] = []
        if not all_good:
            starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
            for i in np.flatnonzero(code).tolist():
                reason = ROW_CHECKS[code[i] - 1]
                m = int(row_msg[i])
                detail = self._detail(reason, cols, i, bad_type, msg_keys[m], now_ms)
                dead.append((m, DeadLetter(reason, detail, source, msg_keys[m], encode_row_json(cols, i), now_ms,
                                           int(i - starts[m]))))
                self._counts[reason] += 1
        return batch, numbers, dead

    def _flag_duplicates(self, code: np.ndarray, t: np.ndarray, det: np.ndarray, now_ms: int) -> None:
        cand = np.flatnonzero(code == 0)
        if len(cand) == 0:
            return
        ct, cd = t[cand], det[cand]
        dup = repeated_rows(ct, cd, self.network.n_detectors)
        if self._seen is not None:
            horizon_start = now_ms - self.dedupe_horizon_ms
            recent = ~dup & (ct >= horizon_start)
            idx = np.flatnonzero(recent)
            if len(idx):
                seen = self._seen.contains(ct[idx], cd[idx])
                dup[idx[seen]] = True
                fresh = idx[~seen]
                self._seen.add(ct[fresh], cd[fresh])
            self._seen.evict_before(horizon_start)
        code[cand[dup]] = _CODE["duplicate"]

    def _detail(self, reason: str, cols: dict[str, list[Any]], i: int, bad_type: dict[str, np.ndarray],
                key: str | None, now_ms: int) -> str:
        v = {name: cols[name][i] for name in _COLUMNS}
        if reason == "wrong_type":
            wrong = [name for name, mask in bad_type.items() if mask[i]]
            return "; ".join(f"{name}: unexpected {type(v[name]).__name__} {v[name]!r:.60}" for name in wrong)
        if reason == "unknown_detector":
            return f"detector {v['detector_id']!r} is not in network {self.network.name!r}"
        if reason == "key_mismatch":
            station = self.network.stations[self._det_station[self._index[v['detector_id']]]].station_id
            return f"detector {v['detector_id']!r} belongs to station {station!r}, message key is {key!r}"
        if reason == "bad_interval":
            return f"interval_ms={v['interval_ms']!r} outside (0, {MAX_INTERVAL_MS}]"
        if reason == "future_timestamp":
            return (f"interval_start_ms={v['interval_start_ms']!r} is more than {self.max_future_ms} ms "
                    f"after now_ms={now_ms}")
        if reason == "stale_timestamp":
            return (f"interval_start_ms={v['interval_start_ms']!r} is more than {self.max_past_ms} ms "
                    f"before now_ms={now_ms}")
        if reason == "negative_count":
            return f"vehicle_count={v['vehicle_count']!r} < 0"
        if reason == "occupancy_out_of_range":
            return f"occupancy_pct={v['occupancy_pct']!r} outside [0, 100]"
        if reason == "speed_out_of_range":
            return f"speed_kmh={v['speed_kmh']!r} outside [0, {self.max_speed_kmh}]"
        return f"detector {v['detector_id']!r} interval_start_ms={v['interval_start_ms']!r} already accepted"


def _as_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, (bytearray, memoryview)):
        return bytes(payload)
    return repr(payload).encode("utf-8", errors="replace")
