"""SUMO's real-time factor (simulated s per wall s) on the default SUMO scenario, as JSON.

Three ways to run the same generated corridor (10 km, 3 lanes, 2 on- and 2 off-ramps,
63 loops, near-capacity demand, one hour after a 10-min warm-up):

* ``cli``: the ``sumo`` binary, loop output discarded (SUMO alone, the ceiling);
* ``libsumo_no_reads``: libsumo ``simulationStep()`` in a Python loop, nothing read;
* ``sumo_source``: :class:`simulators.sumo.source.SumoSource` as the pipeline uses it:
  every loop's ``getVehicleData`` each step, interval readings rebuilt every 30 s.

Usage: ``.venv/bin/python benchmarks/sumo_rtf.py [--duration-s 3600] [--seed 1]``.
The machine's other load shows in the numbers: compare runs on the same box.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulators.sumo.scenario import SumoScenarioConfig, build_scenario, sumo_binary  # noqa: E402
from simulators.sumo.source import SumoSource  # noqa: E402


def _cli(scenario) -> dict:
    args = scenario.sumo_args(sumo_binary("sumo"))
    t0 = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, cwd=scenario.workdir)
    return {"wall_s": time.perf_counter() - t0}


def _libsumo_no_reads(scenario) -> dict:
    import libsumo

    libsumo.start(scenario.sumo_args())
    end = scenario.config.warmup_s + scenario.config.duration_s
    t0 = time.perf_counter()
    peak = 0
    while libsumo.simulation.getTime() < end:
        libsumo.simulationStep()
        if int(libsumo.simulation.getTime()) % 60 == 0:
            peak = max(peak, libsumo.vehicle.getIDCount())
    wall = time.perf_counter() - t0
    libsumo.close()
    return {"wall_s": wall, "peak_vehicles": peak}


def _sumo_source(scenario) -> dict:
    src = SumoSource(scenario)
    t0 = time.perf_counter()
    readings = sum(len(b) for b in src)
    return {"wall_s": time.perf_counter() - t0, "readings": readings}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration-s", type=int, default=3600)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    cfg = SumoScenarioConfig(seed=args.seed, duration_s=args.duration_s)
    simulated = cfg.warmup_s + cfg.duration_s
    with tempfile.TemporaryDirectory(prefix="sumo-rtf-") as d:
        t0 = time.perf_counter()
        scenario = build_scenario(cfg, d)
        build_s = time.perf_counter() - t0
        runs = {"cli": _cli(scenario), "libsumo_no_reads": _libsumo_no_reads(scenario),
                "sumo_source": _sumo_source(scenario)}
    for r in runs.values():
        r["real_time_factor"] = round(simulated / r["wall_s"], 1)
        r["wall_s"] = round(r["wall_s"], 2)
    out = {
        "scenario": {"length_km": cfg.length_km, "lanes": cfg.lanes, "loops": len(scenario.loops),
                     "simulated_s": simulated, "step_s": cfg.step_s, "seed": cfg.seed,
                     "build_s": round(build_s, 2)},
        "runs": runs,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_avg_1min": round(os.getloadavg()[0], 2)},
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
