"""Replay recorded loop-detector readings from CSV or Parquet (layout: docs/replay-format.md).

:class:`ReplaySource` reads a file in chunks and yields one :class:`ReadingBatch` per
``interval_start`` (all detectors of that interval), in time order; ``publish`` splits
each interval per station (key = station id) and produces ``models.wire.encode_readings``
messages, sleeping to play the recorded time at ``speedup`` times real time.
Rows whose detector the network does not know are kept (published with no key) so the
validator dead-letters them; only a file that does not follow the layout raises
:class:`ReplayFormatError`. :func:`write_readings` writes batches in the same layout.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ingest.bus import Producer
from models.network import Network
from models.records import ReadingBatch
from models.wire import encode_readings

logger = logging.getLogger(__name__)

REQUIRED = ("detector_id", "interval_start", "vehicle_count", "occupancy_pct", "speed_kmh")
DEFAULT_CHUNK_ROWS = 200_000


class ReplayFormatError(ValueError):
    """A replay file that does not follow docs/replay-format.md."""


def _format(path: Path) -> str:
    suffixes = "".join(path.suffixes).lower()
    if suffixes.endswith((".parquet", ".pq")):
        return "parquet"
    if suffixes.endswith((".csv", ".csv.gz")):
        return "csv"
    raise ReplayFormatError(f"{path}: expected a .csv, .csv.gz or .parquet file")


def _utc_ms(col: pd.Series) -> np.ndarray:
    """Integer ms since the epoch of tz-aware timestamps (floored below the ms)."""
    return ((col - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)).to_numpy(dtype=np.int64)


def _interval_start_ms(col: pd.Series, where: str) -> np.ndarray:
    """Integer ms UTC from integer ms, ISO-8601 strings with an offset, or tz-aware timestamps."""
    if pd.api.types.is_integer_dtype(col.dtype):
        return col.to_numpy(dtype=np.int64)
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        return _utc_ms(col)
    if pd.api.types.is_datetime64_dtype(col.dtype):
        raise ReplayFormatError(f"{where}: interval_start timestamps have no time zone; store them in UTC with tz")
    text = col.astype(str).str.strip()
    if text.str.fullmatch(r"-?\d+").all():
        return text.astype(np.int64).to_numpy()
    naive = ~text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True)
    if naive.any():
        raise ReplayFormatError(f"{where}: interval_start {text[naive].iloc[0]!r} has no UTC offset "
                                "(write e.g. 2024-03-01T08:00:00+08:00 or integer ms)")
    try:
        parsed = pd.to_datetime(text, utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise ReplayFormatError(f"{where}: interval_start is not ISO-8601: {exc}") from exc
    return _utc_ms(parsed)


def _numeric(df: pd.DataFrame, column: str, where: str) -> np.ndarray:
    try:
        return pd.to_numeric(df[column], errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    except (ValueError, TypeError) as exc:
        raise ReplayFormatError(f"{where}: column {column}: {exc}") from exc


def _to_batch(df: pd.DataFrame, where: str) -> ReadingBatch:
    """A chunk of file rows as a typed batch (row order kept)."""
    missing = [c for c in REQUIRED if c not in df.columns]
    if "interval_ms" not in df.columns and "interval_s" not in df.columns:
        missing.append("interval_s or interval_ms")
    if missing:
        raise ReplayFormatError(f"{where}: missing column(s) {missing}")
    if "interval_ms" in df.columns:
        interval_ms = _numeric(df, "interval_ms", where)
    else:
        interval_ms = np.rint(_numeric(df, "interval_s", where) * 1000)
    count = _numeric(df, "vehicle_count", where)
    if np.isnan(count).any() or (count != np.floor(count)).any():
        raise ReplayFormatError(f"{where}: vehicle_count must be a whole number on every row")
    occupancy = _numeric(df, "occupancy_pct", where)
    speed = _numeric(df, "speed_kmh", where)  # blank -> NaN
    return ReadingBatch.from_columns(
        detector_id=df["detector_id"].astype(str).to_numpy(dtype=object),
        interval_start_ms=_interval_start_ms(df["interval_start"], where),
        interval_ms=np.asarray(interval_ms, dtype=np.int64), vehicle_count=count.astype(np.int64),
        occupancy_pct=occupancy, speed_kmh=speed)


def _split_by_interval(batch: ReadingBatch) -> list[ReadingBatch]:
    order = np.argsort(batch.interval_start_ms, kind="stable")
    if not (order == np.arange(len(order))).all():
        batch = batch.take(order)
    cuts = np.flatnonzero(np.diff(batch.interval_start_ms)) + 1
    bounds = np.concatenate([[0], cuts, [len(batch)]])
    return [batch.take(slice(a, b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def station_batches(batch: ReadingBatch, network: Network) -> list[tuple[str | None, ReadingBatch]]:
    """Split a batch per station: (station id, its rows), lanes in network order; unknown detectors under None."""
    numbers = network.detector_numbers(batch.detector_id)
    station = np.where(numbers >= 0, network.detector_station_idx[np.maximum(numbers, 0)], -1)
    order = np.lexsort((numbers, station))
    station_sorted = station[order]
    cuts = np.flatnonzero(np.diff(station_sorted)) + 1
    out: list[tuple[str | None, ReadingBatch]] = []
    for idx in np.split(order, cuts):
        if len(idx) == 0:
            continue
        s = int(station[idx[0]])
        out.append((network.stations[s].station_id if s >= 0 else None, batch.take(idx)))
    return out


class ReplaySource:
    """Recorded readings as one :class:`ReadingBatch` per interval, in time order.

    The file must be sorted by ``interval_start`` (as :func:`write_readings` writes it);
    rows arriving after a later interval was already emitted are emitted on their own, in
    file order, and counted in ``out_of_order_rows``. ``sleep_s`` and ``clock_s`` are
    injectable for tests (defaults: ``time.sleep``, ``time.monotonic``).
    """

    def __init__(self, path: str | Path, network: Network, speedup: float = math.inf,
                 chunk_rows: int = DEFAULT_CHUNK_ROWS, sleep_s: Callable[[float], None] = time.sleep,
                 clock_s: Callable[[], float] = time.monotonic) -> None:
        if not speedup > 0:
            raise ValueError(f"speedup must be > 0, got {speedup}")
        self.path = Path(path)
        self.network = network
        self.speedup = float(speedup)
        self.chunk_rows = int(chunk_rows)
        self._sleep_s = sleep_s
        self._clock_s = clock_s
        self._format = _format(self.path)
        self.out_of_order_rows = 0

    def _chunks(self) -> Iterator[pd.DataFrame]:
        if self._format == "parquet":
            for rb in pq.ParquetFile(self.path).iter_batches(batch_size=self.chunk_rows):
                yield rb.to_pandas()
            return
        # strings stay strings: ids and ISO times are parsed here, not guessed by the reader
        convert = pacsv.ConvertOptions(column_types={"detector_id": pa.string(), "interval_start": pa.string()},
                                       strings_can_be_null=False)
        reader = pacsv.open_csv(self.path, convert_options=convert,
                                read_options=pacsv.ReadOptions(block_size=1 << 22))
        pending: list[pd.DataFrame] = []
        rows = 0
        for rb in reader:
            pending.append(rb.to_pandas())
            rows += rb.num_rows
            if rows >= self.chunk_rows:
                yield pd.concat(pending, ignore_index=True)
                pending, rows = [], 0
        if pending:
            yield pd.concat(pending, ignore_index=True)

    def __iter__(self) -> Iterator[ReadingBatch]:
        """One batch per interval_start, in time order."""
        carry: ReadingBatch | None = None
        last_emitted: int | None = None
        for k, df in enumerate(self._chunks()):
            chunk = _to_batch(df, f"{self.path} (chunk {k})")
            if carry is not None:
                chunk = ReadingBatch.concat([carry, chunk])
                carry = None
            if last_emitted is not None:
                late = chunk.interval_start_ms <= last_emitted
                if late.any():
                    self.out_of_order_rows += int(late.sum())
                    logger.warning("%s: %d rows older than an interval already replayed", self.path, late.sum())
                    for group in _split_by_interval(chunk.take(late)):
                        yield group
                    chunk = chunk.take(~late)
            groups = _split_by_interval(chunk) if len(chunk) else []
            if groups:
                carry = groups.pop()  # the last interval may continue in the next chunk
            for group in groups:
                last_emitted = int(group.interval_start_ms[0])
                yield group
        if carry is not None:
            yield carry

    def publish(self, producer: Producer, topic: str = "readings", fmt: str = "json") -> dict[str, int]:
        """Produce every interval, one message per station, pacing recorded time by ``speedup``.

        Returns counts: intervals, messages, readings, unknown_detector_rows.
        """
        stats = {"intervals": 0, "messages": 0, "readings": 0, "unknown_detector_rows": 0}
        start_wall = first_t = None
        for batch in self:
            t = int(batch.interval_start_ms[0])
            if math.isfinite(self.speedup):
                if start_wall is None:
                    start_wall, first_t = self._clock_s(), t
                delay = start_wall + (t - first_t) / 1000.0 / self.speedup - self._clock_s()
                if delay > 0:
                    self._sleep_s(delay)
            for station_id, rows in station_batches(batch, self.network):
                ts = int(rows.interval_start_ms[0] + rows.interval_ms.max())
                producer.produce(topic, encode_readings(rows, fmt), key=station_id, timestamp_ms=ts)
                stats["messages"] += 1
                if station_id is None:
                    stats["unknown_detector_rows"] += len(rows)
            stats["intervals"] += 1
            stats["readings"] += len(batch)
        producer.flush()
        logger.info("replayed %s: %s", self.path, stats)
        return stats


def write_readings(batches: Iterable[ReadingBatch], path: str | Path, time_format: str = "iso") -> int:
    """Write batches in the replay layout (CSV or Parquet by suffix); returns rows written.

    CSV ``interval_start`` is ISO-8601 UTC with millisecond precision and a ``Z`` offset
    (``time_format="iso"``) or integer ms (``"ms"``); Parquet stores a UTC timestamp[ms].
    """
    path = Path(path)
    fmt = _format(path)
    if time_format not in ("iso", "ms"):
        raise ValueError(f"time_format must be 'iso' or 'ms', got {time_format!r}")
    rows = 0
    writer: pq.ParquetWriter | None = None
    first = True
    try:
        for batch in batches:
            t = batch.interval_start_ms.astype(np.int64)
            if fmt == "parquet":
                start = pa.array(t, type=pa.timestamp("ms", tz="UTC"))
            elif time_format == "iso":
                start = pa.array(np.datetime_as_string(t.astype("datetime64[ms]"), unit="ms", timezone="UTC"))
            else:
                start = pa.array(t)
            table = pa.table({
                "detector_id": pa.array(batch.detector_id.astype(str), type=pa.string()),
                "interval_start": start,
                "interval_ms": pa.array(batch.interval_ms.astype(np.int64)),
                "vehicle_count": pa.array(batch.vehicle_count.astype(np.int64)),
                "occupancy_pct": pa.array(batch.occupancy_pct.astype(np.float64)),
                "speed_kmh": pa.array(batch.speed_kmh.astype(np.float64), from_pandas=True),  # NaN -> null
            })
            if fmt == "parquet":
                if writer is None:
                    writer = pq.ParquetWriter(path, table.schema)
                writer.write_table(table)
            else:
                with open(path, "wb" if first else "ab") as fh:
                    pacsv.write_csv(table, fh, pacsv.WriteOptions(include_header=first, quoting_style="needed"))
            first = False
            rows += len(batch)
        if first and fmt == "csv":  # nothing written: still a valid file with the header
            path.write_text("detector_id,interval_start,interval_ms,vehicle_count,occupancy_pct,speed_kmh\n")
    finally:
        if writer is not None:
            writer.close()
    return rows
