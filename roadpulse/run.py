"""`roadpulse run` on the embedded default: simulator -> memory bus -> core -> sqlite."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from ingest.bus import MemoryBus
from ingest.chaos import ChaosInjector
from models.network import Network
from roadpulse.cameras_run import (
    DEFAULT_CAMERAS,
    CameraPlan,
    CameraSummary,
    CameraWorld,
    format_camera_table,
    summarise,
)
from roadpulse.settings import Settings
from simulators import IncidentSpec, SimulationConfig, TrafficSimulator
from stream.core.pipeline import PipelineConfig
from stream.core.scoring import Score, score_incidents
from stream.embedded import EmbeddedPipeline, Throughput, publish_readings
from stream.sinks.sqlite_store import LocalStore

log = logging.getLogger(__name__)

# per topic partition: enough for every consumer of a run to keep up, bounded for a day or a week
BUS_RETENTION_BYTES = 32 * 1024 * 1024


@dataclass
class RunReport:
    settings: Settings
    network: Network
    pipeline: EmbeddedPipeline
    simulator: TrafficSimulator
    chaos: ChaosInjector
    scores: list[Score]
    wall_s: float
    store_path: Path
    cameras: CameraSummary | None = None
    camera_world: CameraWorld | None = None

    def to_dict(self) -> dict:
        st = self.pipeline.stats
        return {
            "network": {"name": self.network.name, "roadways": len(self.network.roadways),
                        "stations": len(self.network.stations), "detectors": self.network.n_detectors},
            "simulated_s": self.settings.duration_s,
            "wall_s": round(self.wall_s, 2),
            "readings_in": st.readings_in,
            "readings_accepted": st.readings_accepted,
            "readings_per_wall_s": round(st.readings_in / self.wall_s) if self.wall_s else None,
            "messages_in": st.messages_in,
            "flow_windows_written": st.flow_rows_written,
            "flow_windows_published": st.flow_rows_published,
            "incident_events": len(st.incidents),
            "alerts_sent": len(st.alerts),
            "dead_letters": dict(st.dead_letters),
            "bad_records_injected": dict(self.chaos.injected),
            "true_incidents": len(self.simulator.ground_truth.incidents),
            "true_faults": len(self.simulator.ground_truth.faults),
            "scores": [s.to_dict() for s in self.scores],
            "cameras": None if self.cameras is None else self.cameras.to_dict(),
            "store": str(self.store_path),
        }


def run_embedded(settings: Settings, network: Network, pipeline_config: PipelineConfig,
                 on_step: Callable[[EmbeddedPipeline], None] | None = None,
                 incidents: tuple[IncidentSpec, ...] = (), cameras: CameraPlan | int | None = None) -> RunReport:
    """Run a simulated period end to end in this process.

    ``incidents`` are staged on top of ``settings.incidents`` random ones.
    ``cameras``: a :class:`CameraPlan`, or a number of cameras (0 = none); by default
    ``settings.extra["cameras"]`` (the CLI's ``--cameras``), else 4: cameras are part of
    every run (see roadpulse/cameras_run.py).
    """
    out = Path(settings.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store_path = out / "roadpulse.sqlite"
    if store_path.exists():
        store_path.unlink()
    sim_cfg = SimulationConfig(seed=settings.seed, start_ms=settings.start_ms, duration_s=settings.duration_s,
                               n_random_incidents=settings.incidents, incidents=tuple(incidents),
                               fault_fraction=settings.fault_fraction)
    sim = TrafficSimulator(network, sim_cfg)
    bus = MemoryBus(partitions=4, retention_bytes=BUS_RETENTION_BYTES)
    store = LocalStore(store_path)
    pipe = EmbeddedPipeline(network, pipeline_config, bus, store)
    chaos = ChaosInjector(rate=settings.chaos_rate, seed=settings.seed)
    producer = bus.producer()
    if isinstance(cameras, CameraPlan):
        plan = cameras
    else:
        n = cameras if cameras is not None else settings.extra.get("cameras", DEFAULT_CAMERAS)
        plan = CameraPlan.from_settings({**settings.extra, "cameras": n})
    world = None
    if plan.n_cameras > 0:
        staged = [t.segment_id for t in sim.ground_truth.incidents
                  if any((t.roadway_key, t.location_km, t.start_ms) == (i.roadway_key, i.location_km, i.start_ms)
                         for i in incidents)]
        world = CameraWorld(network, plan, producer, sim.ground_truth.incidents, settings.start_ms,
                            seed=settings.seed, staged_segments=staged)
        pipe.enable_cameras(out / "cameras", evidence_max_age_ms=plan.evidence_max_age_ms)
    rate = Throughput()
    t0 = time.perf_counter()
    end_ms = settings.start_ms + settings.duration_s * 1000
    with tqdm(total=settings.duration_s, unit="sim s", disable=not settings.progress, dynamic_ncols=True,
              bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} sim s [{elapsed}<{remaining}{postfix}]") as bar:
        last_ms = settings.start_ms
        for batch in sim:
            publish_readings(producer, batch, network, chaos)
            if world is not None:
                world.on_batch(batch)
            now_ms = int(batch.interval_start_ms.max() + batch.interval_ms.max()) if len(batch) else sim.now_ms
            pipe.step(now_ms=now_ms)
            if world is not None:
                world.cue(pipe.corridors.suspected_segments(pipeline_config.alert_algorithm))
            if on_step:
                on_step(pipe)
            st = pipe.stats
            bar.update((now_ms - last_ms) / 1000)
            last_ms = now_ms
            bar.set_postfix_str(f"{rate.update(st.readings_in):,.0f} readings/s, {st.open_incidents} open incidents, "
                                f"{sum(st.dead_letters.values())} dead letters", refresh=False)
        pipe.finish(now_ms=max(last_ms, end_ms))
    wall = time.perf_counter() - t0
    store.write_pipeline("embedded", end_ms, {"readings_total": pipe.stats.readings_in,
                                              "readings_per_s": pipe.stats.readings_in / wall if wall else 0.0,
                                              "dead_letters_total": sum(pipe.stats.dead_letters.values())})
    truths = sim.ground_truth.incidents
    scores = [score_incidents(algo, pipe.stats.incidents, truths) for algo in pipeline_config.algorithms]
    camera_summary = None
    if world is not None and pipe.cameras is not None:
        cams = pipe.cameras
        camera_summary = summarise(world, cams.observations, world.cpu_s + cams.cpu_s,
                                   len(pipe.stats.camera_evidence), cams.snapshots_written)
        store.write_pipeline("cameras", end_ms, {"frames_total": world.frames, "bursts_total": world.bursts,
                                                 "observations_total": len(cams.observations),
                                                 "cpu_s": camera_summary.cpu_s})
    store.close()
    report = RunReport(settings, network, pipe, sim, chaos, scores, wall, store_path, camera_summary, world)
    (out / "summary.json").write_text(json.dumps(report.to_dict(), indent=2, default=str))
    return report


def format_summary(report: RunReport) -> str:
    d = report.to_dict()
    st = report.pipeline.stats
    lines = [
        "",
        f"roadpulse run — {d['network']['detectors']:,} detectors on {d['network']['stations']:,} stations, "
        f"{d['network']['roadways']} roadways; {report.settings.duration_s / 3600:.1f} h simulated "
        f"in {d['wall_s']:.1f} s",
        f"  readings processed   {d['readings_accepted']:,} of {d['readings_in']:,} "
        f"({d['readings_per_wall_s'] or 0:,} readings/s wall, {d['messages_in']:,} messages)",
        f"  flow windows         {d['flow_windows_published']:,} rows published (lane, station, segment x 30 s / "
        f"1 min / 5 min), {d['flow_windows_written']:,} stored (30-s lane rows stay on the bus)",
        f"  alerts sent          {d['alerts_sent']:,} to {len(report.pipeline.config.subscriptions)} subscriptions",
        f"  dead letters         {sum(st.dead_letters.values()):,}"
        + ("" if not st.dead_letters else " — " + ", ".join(f"{k} {v}" for k, v in sorted(st.dead_letters.items()))),
        f"  detector faults      {d['true_faults']} injected (ground truth)",
        "",
        f"  incidents vs ground truth ({d['true_incidents']} true incidents):",
        f"    {'algorithm':<14}{'hits':>6}{'misses':>8}{'false alarms':>14}{'mean TTD':>11}{'p90 TTD':>10}",
    ]
    for s in report.scores:
        ttd = "-" if s.hits == 0 else f"{s.mean_time_to_detect_s / 60:.1f} min"
        p90 = "-" if s.hits == 0 else f"{s.p90_time_to_detect_s / 60:.1f} min"
        lines.append(f"    {s.algorithm:<14}{s.hits:>6}{s.misses:>8}{s.false_alarms:>14}{ttd:>11}{p90:>10}")
    if report.cameras is not None:
        lines += ["", *format_camera_table(report.cameras)]
    lines += ["", f"  store: {d['store']}  (summary: {Path(report.settings.out_dir) / 'summary.json'})", ""]
    return "\n".join(lines)
