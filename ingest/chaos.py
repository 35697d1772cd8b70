"""Bad input on purpose: a seeded injector of the faults real feeds have.

Field controllers resend messages, truncate them on flaky links, report
impossible values and detectors nobody registered. The embedded run mixes a
small share of such messages into the readings stream so every run shows the
dead-letter path working; each injected fault is counted by kind, so the run's
summary can check that every one of them reached the dead-letter stream.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import msgpack
import numpy as np

from models.wire import decode_reading_columns

# kind -> the validator reason it must produce
CHAOS_KINDS = {
    "truncated": "malformed_bytes",
    "garbage": "malformed_bytes",
    "negative_count": "negative_count",
    "occupancy_over_100": "occupancy_out_of_range",
    "speed_over_limit": "speed_out_of_range",
    "unknown_detector": "unknown_detector",
    "future_timestamp": "future_timestamp",
    "duplicate": "duplicate",
    "wrong_type": "wrong_type",
}


@dataclass
class ChaosInjector:
    """Turns a share of good messages into bad ones; ``rate`` per message."""

    rate: float = 0.0005
    seed: int = 0
    injected: Counter = field(default_factory=Counter)  # kind -> bad rows (or messages) injected

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed + 0xC4A05)

    def maybe_corrupt(self, payload: bytes) -> list[bytes]:
        """The messages to send in place of ``payload``: usually just it, sometimes a bad variant.

        A duplicate sends the original and then the same bytes again; the other
        kinds replace one row of the message (or the whole message) with bad data.
        """
        if self.rate <= 0 or self._rng.random() >= self.rate:
            return [payload]
        kind = list(CHAOS_KINDS)[int(self._rng.integers(len(CHAOS_KINDS)))]
        if kind == "truncated":
            self.injected[kind] += 1
            return [payload[: max(1, len(payload) // 2)]]
        if kind == "garbage":
            self.injected[kind] += 1
            return [b"\xc1" + self._rng.bytes(16)]
        if kind == "duplicate":
            cols = decode_reading_columns(payload)
            self.injected[kind] += len(cols["detector_id"])
            return [payload, payload]
        cols = decode_reading_columns(payload)
        row = int(self._rng.integers(len(cols["detector_id"])))
        if kind == "negative_count":
            cols["vehicle_count"][row] = -3
        elif kind == "occupancy_over_100":
            cols["occupancy_pct"][row] = 140.0
        elif kind == "speed_over_limit":
            cols["speed_kmh"][row] = 400.0
        elif kind == "unknown_detector":
            cols["detector_id"][row] = "NOPE-" + str(cols["detector_id"][row])
        elif kind == "future_timestamp":
            cols["interval_start_ms"][row] = int(cols["interval_start_ms"][row]) + 86_400_000
        elif kind == "wrong_type":
            cols["vehicle_count"][row] = "twelve"
        self.injected[kind] += 1
        doc = {"v": 1, "d": cols["detector_id"], "t": cols["interval_start_ms"], "i": cols["interval_ms"],
               "n": cols["vehicle_count"], "o": cols["occupancy_pct"], "s": cols["speed_kmh"]}
        return [msgpack.packb(doc, use_bin_type=True)]

    def expected_reasons(self) -> Counter:
        """Dead letters by validator reason that the injected faults must produce."""
        out: Counter = Counter()
        for kind, n in self.injected.items():
            out[CHAOS_KINDS[kind]] += n
        return out
