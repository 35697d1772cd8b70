"""Wire formats: how records become bytes on the bus and back.

Readings travel as one columnar map per message (short keys, one list per
column), in JSON via orjson by default; msgpack is accepted too and told apart
by its first byte. ``benchmarks/wire_formats.py`` measures both side by side
(figures in the README): orjson, serialising numpy columns natively, encoded
faster at every size and decoded about as fast for station-sized messages;
msgpack was ~10-16% smaller, a gap Kafka's compression narrows. JSON won, and it
stays readable with kcat. NaN speeds are null in JSON, NaN in msgpack.

Column keys: d detector_id, t interval_start_ms, i interval_ms, n vehicle_count,
o occupancy_pct, s speed_kmh; plus v (format version, 1).

Decoding here checks only the *shape* of a message (parseable, a map, the
columns present, equal lengths) and raises :class:`WireError` with a reason code;
typed checks of every row live in ``ingest.validate``.
"""
from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np
import orjson

from models.records import Alert, DeadLetter, FlowWindowBatch, Incident, ReadingBatch

WIRE_VERSION = 1
READING_KEYS = {"d": "detector_id", "t": "interval_start_ms", "i": "interval_ms", "n": "vehicle_count",
                "o": "occupancy_pct", "s": "speed_kmh"}
FORMATS = ("msgpack", "json")


class WireError(ValueError):
    """A message whose bytes cannot be read as the expected record."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def encode_readings(batch: ReadingBatch, fmt: str = "json") -> bytes:
    """One message of readings (columnar)."""
    return encode_columns(batch.detector_id.tolist(), batch.interval_start_ms, batch.interval_ms,
                          batch.vehicle_count, batch.occupancy_pct, batch.speed_kmh, fmt)


def encode_columns(detector_id: list[str], interval_start_ms: np.ndarray, interval_ms: np.ndarray,
                   vehicle_count: np.ndarray, occupancy_pct: np.ndarray, speed_kmh: np.ndarray,
                   fmt: str = "json") -> bytes:
    """A readings message from its columns (numpy arrays; ids as a list)."""
    if fmt == "json":  # numpy columns serialised natively by orjson (NaN -> null)
        return orjson.dumps({"v": WIRE_VERSION, "d": detector_id,
                             "t": np.ascontiguousarray(interval_start_ms, dtype=np.int64),
                             "i": np.ascontiguousarray(interval_ms, dtype=np.int64),
                             "n": np.ascontiguousarray(vehicle_count, dtype=np.int64),
                             "o": np.ascontiguousarray(occupancy_pct, dtype=np.float64),
                             "s": np.ascontiguousarray(speed_kmh, dtype=np.float64)},
                            option=orjson.OPT_SERIALIZE_NUMPY)
    if fmt == "msgpack":
        return msgpack.packb({"v": WIRE_VERSION, "d": detector_id, "t": interval_start_ms.tolist(),
                              "i": interval_ms.tolist(), "n": vehicle_count.tolist(),
                              "o": occupancy_pct.tolist(), "s": speed_kmh.tolist()}, use_bin_type=True)
    raise ValueError(f"unknown wire format {fmt!r}; choose one of {FORMATS}")


def _loads(payload: bytes) -> Any:
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise WireError("not_bytes", f"expected bytes, got {type(payload).__name__}")
    if len(payload) == 0:
        raise WireError("empty_message", "message has no bytes")
    first = payload[0]
    try:
        if first in (0x7B, 0x5B, 0x20, 0x0A, 0x0D, 0x09):  # '{', '[' or whitespace: JSON
            return orjson.loads(payload)
        return msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except (orjson.JSONDecodeError, ValueError, msgpack.ExtraData, msgpack.FormatError,
            msgpack.StackError, UnicodeDecodeError, TypeError) as exc:
        raise WireError("malformed_bytes", f"cannot decode message: {exc}") from exc


def decode_reading_columns(payload: bytes) -> dict[str, list[Any]]:
    """The raw columns of a readings message, by long name; shape-checked only."""
    doc = _loads(payload)
    if not isinstance(doc, dict):
        raise WireError("not_a_map", f"expected a map of columns, got {type(doc).__name__}")
    version = doc.get("v", WIRE_VERSION)
    if version != WIRE_VERSION:
        raise WireError("unsupported_version", f"wire version {version!r}, this reader knows {WIRE_VERSION}")
    cols: dict[str, list[Any]] = {}
    for short, name in READING_KEYS.items():
        col = doc.get(short, doc.get(name))
        if col is None:
            raise WireError("missing_column", f"column {short!r} ({name}) is missing")
        if not isinstance(col, list):
            raise WireError("wrong_type", f"column {short!r} ({name}) must be a list, got {type(col).__name__}")
        cols[name] = col
    lengths = {len(c) for c in cols.values()}
    if len(lengths) != 1:
        raise WireError("ragged_columns", f"columns have different lengths: {sorted(lengths)}")
    return cols


def encode_row_json(cols: dict[str, list[Any]], i: int) -> bytes:
    """One row of a readings message as JSON bytes, for a dead letter."""
    row = {}
    for name, col in cols.items():
        v = col[i]
        if isinstance(v, float) and math.isnan(v):
            v = None
        row[name] = v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)
    return orjson.dumps(row)


# ---- low-volume records: JSON ------------------------------------------------

def _json_default(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return obj.decode("latin-1")
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot encode {type(obj).__name__}")


def encode_record(record: Incident | Alert | DeadLetter) -> bytes:
    return orjson.dumps(record.to_dict(), default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY)


def decode_incident(payload: bytes) -> Incident:
    return Incident(**orjson.loads(payload))


def decode_alert(payload: bytes) -> Alert:
    return Alert(**orjson.loads(payload))


def decode_dead_letter(payload: bytes) -> DeadLetter:
    d = orjson.loads(payload)
    d["payload"] = d["payload"].encode("latin-1")
    return DeadLetter(**d)


def encode_flow_windows(batch: FlowWindowBatch) -> bytes:
    doc: dict[str, Any] = {"level": batch.level, "window_ms": batch.window_ms}
    for c in FlowWindowBatch.COLUMNS:
        doc[c] = getattr(batch, c).tolist()
    doc["travel_time_s"] = batch.travel_time_s.tolist()
    doc["imputed"] = batch.imputed.tolist()
    return msgpack.packb(doc, use_bin_type=True)


def decode_flow_windows(payload: bytes) -> FlowWindowBatch:
    doc = msgpack.unpackb(payload, raw=False)
    obj_cols = {"entity_id", "corridor", "direction"}
    int_cols = {"window_start_ms", "vehicle_count", "n_readings"}
    cols: dict[str, Any] = {}
    for c in FlowWindowBatch.COLUMNS:
        dtype = object if c in obj_cols else (np.int64 if c in int_cols else (np.int8 if c == "speed_band"
                                                                              else np.float64))
        cols[c] = np.asarray(doc[c], dtype=dtype)
    return FlowWindowBatch(level=doc["level"], window_ms=int(doc["window_ms"]),
                           travel_time_s=np.asarray(doc.get("travel_time_s", []), dtype=np.float64),
                           imputed=np.asarray(doc.get("imputed", []), dtype=bool), **cols)
