"""Embedded-path benchmark: simulator and core-pipeline readings/s at several network sizes.

Prints one JSON document. Each size runs in its own subprocess so its peak
memory (max RSS) is its own. Figures are medians over repeats; the machine is
shared and noisy, so compare ratios measured in the same run.

    .venv/bin/python benchmarks/core.py                 # 1k, 10k, 50k detectors
    .venv/bin/python benchmarks/core.py --sizes 1000 --intervals 40 --repeats 3
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def measure(n_detectors: int, intervals: int, repeats: int) -> dict:
    import numpy as np

    from ingest.publish import encode_station_messages
    from ingest.validate import ReadingValidator
    from models.singapore import singapore_network
    from simulators import SimulationConfig, TrafficSimulator
    from stream.core.pipeline import CorridorStage, PipelineConfig, StationStage

    network = singapore_network(n_detectors)
    duration_s = intervals * 30
    start_ms = 1_772_380_800_000  # 2026-03-01T16:00Z = Monday 00:00 Singapore
    sim_rates = []
    batches = []
    for r in range(repeats):
        sim = TrafficSimulator(network, SimulationConfig(seed=r, start_ms=start_ms + 7 * 3_600_000,
                                                         duration_s=duration_s, n_random_incidents=1))
        t0 = time.perf_counter()
        got = list(sim)
        sim_rates.append(sum(len(b) for b in got) / (time.perf_counter() - t0))
        batches = got
    n_readings = sum(len(b) for b in batches)
    det_numbers = [network.detector_numbers(b.detector_id) for b in batches]

    def core_rate(per_call: int) -> float:
        """Readings/s through both stages, ``per_call`` intervals handed over per call (a poll's worth)."""
        from models.records import ReadingBatch

        groups = [(np.concatenate(det_numbers[i:i + per_call]), ReadingBatch.concat(batches[i:i + per_call]))
                  for i in range(0, len(batches), per_call)]
        rates = []
        for _ in range(repeats):
            stations = StationStage(network, PipelineConfig())
            corridors = CorridorStage(network, PipelineConfig())
            t0 = time.perf_counter()
            for det, b in groups:
                stations.process(det, b)
                for s in stations.poll().stations:
                    corridors.add(s)
                corridors.poll()
            rates.append(n_readings / (time.perf_counter() - t0))
        return statistics.median(rates)

    core_rates = [core_rate(1)]
    core_batched = core_rate(10)

    # the whole door: per-station messages decoded and validated, then the core
    messages = [[(k, p) for k, p, _ in encode_station_messages(b, network)] for b in batches]
    door_rates = []
    for _ in range(repeats):
        validator = ReadingValidator(network)
        stations = StationStage(network, PipelineConfig())
        corridors = CorridorStage(network, PipelineConfig())
        t0 = time.perf_counter()
        for b, msgs in zip(batches, messages):
            now = int(b.interval_start_ms.max() + 30_000)
            good, det, _ = validator.validate_many([p for _, p in msgs], [k for k, _ in msgs], source="bench",
                                                   now_ms=now)
            stations.process(det, good)
            for s in stations.poll().stations:
                corridors.add(s)
            corridors.poll()
        door_rates.append(n_readings / (time.perf_counter() - t0))

    return {
        "detectors": network.n_detectors,
        "stations": len(network.stations),
        "intervals": intervals,
        "readings": n_readings,
        "simulator_readings_per_s": round(statistics.median(sim_rates)),
        "core_readings_per_s": round(statistics.median(core_rates)),
        "core_readings_per_s_10_intervals_per_call": round(core_batched),
        "decode_validate_core_readings_per_s": round(statistics.median(door_rates)),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 50_000])
    parser.add_argument("--intervals", type=int, default=60, help="30-s intervals per run (default 60 = 30 min)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.intervals, args.repeats)))
        return
    results = []
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(n), "--intervals", str(args.intervals),
                              "--repeats", str(args.repeats)], capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"  measured {n} detectors", file=sys.stderr)
    print(json.dumps({"benchmark": "embedded core", "cores_used": 1, "goals": {
        "core_readings_per_s": 1_000_000, "simulator_readings_per_s": 200_000}, "results": results}, indent=2))


if __name__ == "__main__":
    main()
