"""Wire format for readings: orjson (JSON) against msgpack, measured side by side.

One message = one station's lanes for one interval (4 rows), and a controller
batch (200 rows). Prints encode/decode messages per second and bytes per
message, medians of several repeats.

    .venv/bin/python benchmarks/wire_formats.py
"""
from __future__ import annotations

import json
import statistics
import time

import numpy as np

from models.records import ReadingBatch
from models.wire import FORMATS, decode_reading_columns, encode_readings


def _batch(rows: int, rng: np.random.Generator) -> ReadingBatch:
    count = rng.poisson(12, rows)
    speed = np.where(count > 0, rng.normal(80, 10, rows).round(1), np.nan)
    return ReadingBatch.from_columns(
        detector_id=[f"PIE-E-{i // 4:03d}-L{i % 4 + 1}" for i in range(rows)],
        interval_start_ms=np.full(rows, 1_772_380_800_000), interval_ms=np.full(rows, 30_000),
        vehicle_count=count, occupancy_pct=rng.uniform(0, 30, rows).round(2), speed_kmh=speed)


def _rate(fn, n: int, repeats: int = 5) -> float:
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    rng = np.random.default_rng(0)
    results = []
    for rows, n in ((4, 20_000), (200, 2_000)):
        b = _batch(rows, rng)
        for fmt in FORMATS:
            payload = encode_readings(b, fmt)
            results.append({
                "rows_per_message": rows, "format": fmt, "bytes": len(payload),
                "encode_msgs_per_s": round(_rate(lambda: encode_readings(b, fmt), n)),
                "decode_msgs_per_s": round(_rate(lambda: decode_reading_columns(payload), n)),
            })
    print(json.dumps({"benchmark": "wire formats", "results": results}, indent=2))


if __name__ == "__main__":
    main()
