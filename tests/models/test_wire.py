"""Wire formats: what goes on the bus comes back equal, and bad bytes raise a reason code."""
from __future__ import annotations

import numpy as np
import pytest

from models.records import Alert, DeadLetter, Incident, ReadingBatch
from models.wire import (
    FORMATS,
    WireError,
    decode_alert,
    decode_dead_letter,
    decode_flow_windows,
    decode_incident,
    decode_reading_columns,
    encode_flow_windows,
    encode_readings,
    encode_record,
)


def _batch() -> ReadingBatch:
    return ReadingBatch.from_columns(
        detector_id=["A-L1", "A-L2", "A-L3"], interval_start_ms=[1_772_380_800_000] * 3, interval_ms=[30_000] * 3,
        vehicle_count=[12, 0, 7], occupancy_pct=[8.5, 0.0, 4.25], speed_kmh=[88.5, np.nan, 91.0])


@pytest.mark.parametrize("fmt", FORMATS)
def test_readings_round_trip_in_both_formats(fmt):
    b = _batch()
    cols = decode_reading_columns(encode_readings(b, fmt))
    back = ReadingBatch.from_columns(**cols)
    for c in ReadingBatch.COLUMNS[1:]:
        np.testing.assert_array_equal(getattr(back, c), getattr(b, c))
    assert list(back.detector_id) == list(b.detector_id)


@pytest.mark.parametrize("payload, reason", [
    (b"", "empty_message"), (b"\xc1\x00garbage", "malformed_bytes"), (b"{not json", "malformed_bytes"),
    (b"[1, 2, 3]", "not_a_map"), (b'{"v": 9, "d": []}', "unsupported_version"),
    (b'{"d": ["a"], "t": [1], "i": [1], "n": [1], "o": [1]}', "missing_column"),
    (b'{"d": ["a"], "t": [1, 2], "i": [1], "n": [1], "o": [1], "s": [1]}', "ragged_columns"),
    (b'{"d": "a", "t": [1], "i": [1], "n": [1], "o": [1], "s": [1]}', "wrong_type"),
])
def test_bad_messages_raise_a_reason_code(payload, reason):
    with pytest.raises(WireError) as exc:
        decode_reading_columns(payload)
    assert exc.value.reason == reason


def test_records_round_trip():
    inc = Incident("statistical:A>B:1", "PIE", "E", "A>B", 1.25, 1, 2, "open", 2, "statistical", 0.8)
    assert decode_incident(encode_record(inc)) == inc
    alert = Alert("x", "amy", "incident_open", "A>B", "PIE", "E", 5, "msg", incident_id=inc.incident_id)
    assert decode_alert(encode_record(alert)) == alert
    dl = DeadLetter("negative_count", "count -3", "readings", "A", b'{"n": -3}\xff', 9, row=2)
    assert decode_dead_letter(encode_record(dl)) == dl


def test_flow_windows_round_trip():
    from models.singapore import singapore_network
    from stream.core.flow import lane_metrics
    from stream.core.windows import TumblingWindow

    net = singapore_network(20)
    w = TumblingWindow(60_000).build(net.n_detectors)
    n = net.n_detectors
    w.update(np.arange(n), np.zeros(n, dtype=np.int64), np.full(n, 30_000), np.full(n, 5), np.full(n, 7.5),
             np.full(n, 80.0))
    (closed,) = w.flush()
    lanes = lane_metrics(closed, net)
    back = decode_flow_windows(encode_flow_windows(lanes))
    assert back.to_rows() == lanes.to_rows()
