"""`roadpulse replay FILE`: recorded readings through the embedded pipeline, like a live day."""
from __future__ import annotations

import time
from pathlib import Path

from tqdm import tqdm

from ingest.bus import MemoryBus
from ingest.replay import ReplaySource
from models.network import Network
from roadpulse.run import BUS_RETENTION_BYTES
from roadpulse.settings import Settings
from stream.core.pipeline import PipelineConfig
from stream.embedded import EmbeddedPipeline, publish_readings
from stream.sinks.sqlite_store import LocalStore


def replay_embedded(settings: Settings, network: Network, path: Path, speedup: float,
                    pipeline_config: PipelineConfig | None = None) -> str:
    """Replay ``path`` at ``speedup`` and return a printable summary."""
    source = ReplaySource(path, network, speedup=speedup)
    out = Path(settings.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store_path = out / "roadpulse.sqlite"
    bus = MemoryBus(partitions=4, retention_bytes=BUS_RETENTION_BYTES)
    store = LocalStore(store_path)
    pipe = EmbeddedPipeline(network, pipeline_config or PipelineConfig(), bus, store)
    producer = bus.producer()
    t0 = time.perf_counter()
    now_ms = 0
    with tqdm(unit=" intervals", disable=not settings.progress, dynamic_ncols=True) as bar:
        for batch in source:
            publish_readings(producer, batch, network)
            now_ms = max(now_ms, int((batch.interval_start_ms + batch.interval_ms).max()))
            pipe.step(now_ms=now_ms)
            bar.update(1)
            bar.set_postfix_str(f"{pipe.stats.readings_in:,} readings, {pipe.stats.open_incidents} open incidents, "
                                f"{sum(pipe.stats.dead_letters.values())} dead letters", refresh=False)
    pipe.finish(now_ms)
    store.close()
    st = pipe.stats
    wall = time.perf_counter() - t0
    opened = [i for i in st.incidents if i.status == "open"]
    by_algo = {a: sum(1 for i in opened if i.algorithm == a) for a in pipe.config.algorithms}
    lines = [
        f"replayed {path}: {st.readings_in:,} readings in {wall:.1f} s "
        f"({st.readings_accepted:,} accepted, {source.out_of_order_rows:,} out of order)",
        f"  flow windows stored  {st.flow_rows_written:,}",
        "  incidents opened     " + ", ".join(f"{a} {n}" for a, n in by_algo.items()),
        f"  alerts sent          {len(st.alerts):,}",
        f"  dead letters         {sum(st.dead_letters.values()):,}"
        + ("" if not st.dead_letters else " — " + ", ".join(f"{k} {v}" for k, v in sorted(st.dead_letters.items()))),
        f"  store: {store_path}",
    ]
    return "\n".join(lines)
