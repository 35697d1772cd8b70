"""InfluxDB result sink: line protocol built column-wise, written in batches, never dropped.

Schema: the table "Store / InfluxDB schema" in docs/ARCHITECTURE.md (analysts'
guide with queries: docs/influxdb.md). NaN, infinite and None fields are left
out of a point (line protocol cannot carry them); empty tag values are left out
(line protocol forbids them).

Delivery: ``write_*`` turn records into line protocol and append them to a
buffer; full buffers (``batch_size`` lines) or buffers older than
``flush_interval_ms`` go to ONE background thread that writes them
synchronously with influxdb-client, retrying with exponential back-off. A batch
that still fails after ``max_retries`` is appended to the on-disk spool
(stream/sinks/spool.py, fsync'ed) and replayed at start, every
``replay_interval_s`` and on ``close()``. After such a failure the sink is in
outage mode: new batches go straight to the spool (behind the older ones, so
order is kept) until a replay empties it, so ``write_*`` and ``flush()`` are
never held up by retries against a dead server. Nothing is dropped silently,
unlike with influxdb-client's default batching WriteApi, which logs a failed
batch and forgets it. A batch the server rejects
as malformed (HTTP 400) cannot succeed on retry: it is kept in the spool's
``rejected/`` folder and counted in ``stats.batches_rejected``.

Idempotency: InfluxDB identifies a point by measurement + tag set + timestamp,
so writing the same window, incident event or alert again overwrites it instead
of adding a duplicate (this is what makes spool replay and reprocessing safe).
Dead letters would collide when two land in the same millisecond, so they are
written with nanosecond precision and a deterministic 0..999,999 ns offset
derived from their content (the local store's ``dead_letter_seq``: key, row,
detail, payload), so both stores agree on what is one dead letter.
"""
from __future__ import annotations

import base64
import logging
import math
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from models.camera import CameraObservation
from models.records import Alert, DeadLetter, FlowWindowBatch, Incident
from stream.sinks.spool import Spool
from stream.sinks.sqlite_store import dead_letter_seq, window_tag

log = logging.getLogger(__name__)

_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\r": r"\r", "\\": "\\\\"})
_MEAS_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\r": r"\r"})
_STR_ESCAPES = str.maketrans({'"': r"\"", "\\": "\\\\", "\n": r"\n", "\r": r"\r"})


# ---- line protocol ------------------------------------------------------------
def escape_tag(value: str) -> str:
    """Escape a tag key or value (commas, equals signs, spaces; newlines made visible)."""
    return value.translate(_TAG_ESCAPES)


def quote_str(value: str) -> str:
    """A string field value in double quotes. Newlines become the two characters ``\\n``."""
    return '"' + value.translate(_STR_ESCAPES) + '"'


def format_field(value: Any) -> str | None:
    """One field value in line protocol, or None when it cannot be stored (None, NaN, inf)."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, bytes):
        return quote_str(base64.b64encode(value).decode("ascii"))
    return quote_str(str(value))


def make_line(measurement: str, tags: dict[str, Any], fields: dict[str, Any], timestamp: int) -> str | None:
    """One point; tags sorted by key (InfluxDB's preferred order), empty tags and unstorable fields left out."""
    tag_part = "".join(f",{escape_tag(k)}={escape_tag(str(v))}" for k, v in sorted(tags.items())
                       if v is not None and str(v) != "")
    field_parts = []
    for k, v in fields.items():
        text = format_field(v)
        if text is not None:
            field_parts.append(f"{escape_tag(k)}={text}")
    if not field_parts:
        return None
    return f"{measurement.translate(_MEAS_ESCAPES)}{tag_part} {','.join(field_parts)} {int(timestamp)}"


def window_label(window_ms: int) -> str:
    """30000 -> '30s', 60000 -> '1m', 300000 -> '5m' (the ``window`` tag; the local store's ``window_tag``)."""
    return window_tag(window_ms)


def _tag_piece(key: str, values: np.ndarray) -> pa.Array:
    """',key=value' per row (escaped once per distinct value; '' where the value is empty or None)."""
    try:
        arr = pa.array(values, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all str: format them
        arr = pa.array([None if v is None else str(v) for v in values], type=pa.string())
    encoded = pc.fill_null(arr, "").dictionary_encode()
    parts = pa.array([f",{key}={escape_tag(u)}" if u else "" for u in encoded.dictionary.to_pylist()],
                     type=pa.string())
    return parts.take(encoded.indices)


def _int_text(a: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(np.asarray(a, dtype=np.int64)), pa.string())


def _float_piece(key: str, a: np.ndarray) -> pa.Array:
    """',key=<shortest round-trip decimal>' per row, '' where the value is NaN or infinite."""
    a = np.asarray(a, dtype=np.float64)
    text = pc.binary_join_element_wise(f",{key}=", pc.cast(pa.array(a), pa.string()), "")
    finite = np.isfinite(a)
    return text if finite.all() else pc.if_else(pa.array(finite), text, "")


FLOW_FLOAT_FIELDS = ("flow_veh_h", "occupancy_pct", "time_mean_speed_kmh", "space_mean_speed_kmh", "density_veh_km")


def flow_lines(batch: FlowWindowBatch) -> list[str]:
    """Line protocol for a flow window batch, ms precision: the hot path, built column-wise in Arrow.

    Each column becomes an array of ``,key=value`` pieces ('' for a NaN field or
    an empty tag), numbers formatted by Arrow's shortest round-trip conversion
    (exact, about 5x faster than ``repr`` per value); one element-wise join
    glues a row's pieces together.
    """
    n = len(batch)
    if n == 0:
        return []
    pieces: list[pa.Array | str] = [
        "flow", _tag_piece("corridor", batch.corridor), _tag_piece("direction", batch.direction),
        _tag_piece("entity_id", batch.entity_id),
        f",level={escape_tag(batch.level)},window={window_label(batch.window_ms)} vehicle_count=",
        _int_text(batch.vehicle_count), "i,n_readings=", _int_text(batch.n_readings),
        "i,speed_band=", _int_text(batch.speed_band), "i",
    ]
    pieces.extend(_float_piece(name, getattr(batch, name)) for name in FLOW_FLOAT_FIELDS)
    if len(batch.travel_time_s) == n:
        pieces.append(_float_piece("travel_time_s", batch.travel_time_s))
    if len(batch.imputed) == n:
        pieces.append(pc.if_else(pa.array(np.asarray(batch.imputed, dtype=bool)), ",imputed=true", ",imputed=false"))
    pieces += [" ", _int_text(batch.window_start_ms)]
    return pc.binary_join_element_wise(*pieces, "").to_pylist()


def incident_line(inc: Incident) -> str | None:
    tags = {"incident_id": inc.incident_id, "corridor": inc.corridor, "direction": inc.direction,
            "segment_id": inc.segment_id, "algorithm": inc.algorithm, "status": inc.status}
    fields = {"location_km": float(inc.location_km), "severity": int(inc.severity),
              "confidence": float(inc.confidence), "start_ms": int(inc.start_ms),
              "cleared_ms": None if inc.cleared_ms is None else int(inc.cleared_ms)}
    return make_line("incident", tags, fields, inc.event_ms)


def alert_line(alert: Alert) -> str | None:
    tags = {"subscription_id": alert.subscription_id, "kind": alert.kind, "corridor": alert.corridor,
            "direction": alert.direction, "segment_id": alert.segment_id}
    fields = {"alert_id": alert.alert_id, "message": alert.message,
              "speed_band_from": alert.speed_band_from, "speed_band_to": alert.speed_band_to,
              "incident_id": alert.incident_id,
              "travel_time_now_s": None if alert.travel_time_now_s is None else float(alert.travel_time_now_s),
              "travel_time_usual_s": None if alert.travel_time_usual_s is None else float(alert.travel_time_usual_s)}
    return make_line("alert", tags, fields, alert.at_ms)


def dead_letter_lines(letters: Iterable[DeadLetter]) -> list[str]:
    """Dead letters at ns precision: ``at_ms * 1e6 + offset``, the offset from the local store's ``dead_letter_seq``.

    Same identity as the sqlite store: one letter written twice is one point;
    different letters in the same ms get different offsets (a clash of two
    different letters within one call is moved to the next free offset).
    """
    lines: list[str] = []
    taken: dict[int, int] = {}  # ts_ns -> seq that holds it
    for d in letters:
        seq = dead_letter_seq(d)
        base_ns = int(d.at_ms) * 1_000_000
        offset = seq % 1_000_000
        while taken.get(base_ns + offset, seq) != seq:
            offset = (offset + 1) % 1_000_000
        taken[base_ns + offset] = seq
        line = make_line("dead_letter", {"reason": d.reason, "source": d.source},
                         {"detail": d.detail, "key": d.key, "payload": base64.b64encode(d.payload).decode("ascii"),
                          "row": d.row}, base_ns + offset)
        if line is not None:
            lines.append(line)
    return lines


def camera_line(obs: CameraObservation) -> str | None:
    """One camera observation, ms precision; the same tags and fields as the local store's ``camera`` table."""
    tags = {"camera_id": obs.camera_id, "station_id": obs.station_id, "segment_id": obs.segment_id}
    fields = {"vehicle_count": int(obs.vehicle_count), "mean_speed_kmh": float(obs.mean_speed_kmh),
              "queue_length_m": float(obs.queue_length_m), "occupancy_pct": float(obs.occupancy_pct),
              "stopped_vehicle": bool(obs.stopped_vehicle), "frames": int(obs.frames)}
    return make_line("camera", tags, fields, obs.interval_start_ms)


HEALTH_TAGS = ("detector_id", "corridor", "direction", "status")


def health_lines(rows: Iterable[dict] | Any) -> list[str]:
    """Detector health rows (stream.embedded.health_rows, or a DataFrame as the local store takes):
    tags as in the schema, ``at_ms`` the time, every other key a field."""
    if hasattr(rows, "to_dict"):
        rows = rows.to_dict("records")
    out = []
    for row in rows:
        tags = {k: row[k] for k in HEALTH_TAGS if k in row}
        fields = {k: v for k, v in row.items() if k not in HEALTH_TAGS and k != "at_ms"}
        line = make_line("detector_health", tags, fields, row["at_ms"])
        if line is not None:
            out.append(line)
    return out


# ---- the sink -------------------------------------------------------------------
class WriteRejected(Exception):
    """The server refused a batch as malformed (HTTP 400): retrying cannot help."""


@dataclass
class InfluxSinkStats:
    """Counters in points (lines) unless named batches."""

    points_written: int = 0
    batches_written: int = 0
    batches_failed: int = 0  # batches that failed every retry (then spooled)
    retries: int = 0
    spooled: int = 0  # points appended to the spool
    replayed: int = 0  # points written back from the spool
    batches_rejected: int = 0  # malformed batches kept in spool/rejected
    points_rejected: int = 0


_STOP = object()


class InfluxSink:
    """ResultSink writing to InfluxDB 2.x or 1.8+ (v2 compatibility API) through influxdb-client.

    For InfluxDB 1.8+ the bucket is ``"database"`` or ``"database/retention_policy"``,
    the token ``"user:password"`` (any string when auth is off) and the org is ignored.
    """

    def __init__(self, url: str, token: str, org: str, bucket: str, spool_dir: str | Path,
                 batch_size: int = 5000, flush_interval_ms: int = 1000, gzip: bool = True,
                 max_retries: int = 5, retry_interval_ms: int = 500, max_retry_delay_ms: int = 30_000,
                 replay_interval_s: float = 10.0, timeout_ms: int = 10_000, max_pending_batches: int = 8) -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.url, self.org, self.bucket = url, org or "-", bucket
        self.batch_size = batch_size
        self.flush_interval_ms = flush_interval_ms
        self.max_retries = max_retries
        self.retry_interval_ms = retry_interval_ms
        self.max_retry_delay_ms = max_retry_delay_ms
        self.replay_interval_s = replay_interval_s
        self.stats = InfluxSinkStats()
        self.spool = Spool(spool_dir)
        self._client = InfluxDBClient(url=url, token=token or "-", org=self.org, timeout=timeout_ms,
                                      enable_gzip=gzip, retries=False)
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._buffers: dict[str, list[str]] = {"ms": [], "ns": []}
        self._buffer_since = time.monotonic()
        self._lock = threading.Lock()  # buffers
        self._io_lock = threading.Lock()  # one HTTP write or replay at a time; guards stats
        self._inline_lock = threading.Lock()  # held while the writer thread flushes an old buffer itself
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending_batches)
        self._last_replay = 0.0
        self._outage = False  # set when a batch failed every retry; cleared by a replay that empties the spool
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="influx-sink", daemon=True)
        self._thread.start()

    # ---- ResultSink ------------------------------------------------------------
    def write_flow(self, batch: FlowWindowBatch) -> None:
        self._add("ms", flow_lines(batch))

    def write_incidents(self, incidents: list[Incident]) -> None:
        self._add("ms", [x for x in map(incident_line, incidents) if x is not None])

    def write_alerts(self, alerts: list[Alert]) -> None:
        self._add("ms", [x for x in map(alert_line, alerts) if x is not None])

    def write_dead_letters(self, letters: list[DeadLetter]) -> None:
        self._add("ns", dead_letter_lines(letters))

    def write_health(self, rows: list[dict]) -> None:
        self._add("ms", health_lines(rows))

    def write_cameras(self, observations: Iterable[CameraObservation]) -> None:
        self._add("ms", [x for x in map(camera_line, observations) if x is not None])

    def write_pipeline(self, component: str, at_ms: int, fields: dict) -> None:
        line = make_line("pipeline", {"component": component}, fields, at_ms)
        if line is not None:
            self._add("ms", [line])

    # ---- lifecycle -------------------------------------------------------------
    def flush(self) -> None:
        """Hand every buffered point to the writer and wait until each batch is written or spooled."""
        self._check_open()
        self._hand_over(force=True)
        self._queue.join()
        with self._inline_lock:  # a flush-interval hand-over the writer thread may be doing right now
            pass

    def replay_spool(self) -> int:
        """Write spooled batches back now; returns points replayed (0 when the server still fails)."""
        counted: list[int] = []

        def post_counted(precision: str, lines: list[str]) -> None:
            self._post(precision, lines)
            counted.append(len(lines))

        with self._io_lock:
            try:
                self.spool.replay(post_counted, self.batch_size)
                if self._outage:
                    log.warning("InfluxDB at %s answers again; spool replayed", self.url)
                self._outage = False
            except Exception as exc:  # the server is still down: keep the spool for later
                log.warning("spool replay stopped, will retry later: %s", exc)
            finally:
                self._last_replay = time.monotonic()
                # chunks written before a failure count too (their file is replayed again later,
                # which overwrites the same points)
                self.stats.replayed += sum(counted)
                self.stats.points_written += sum(counted)
        return sum(counted)

    def close(self) -> None:
        """Flush, try one last replay of the spool, stop the writer thread and the client."""
        if self._closed:
            return
        self.flush()
        self.replay_spool()
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()
        self._write_api.close()
        self._client.close()
        self.spool.close()

    def __enter__(self) -> "InfluxSink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- internals -------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("InfluxSink is closed")

    def _add(self, precision: str, lines: list[str]) -> None:
        self._check_open()
        if not lines:
            return
        with self._lock:
            buf = self._buffers[precision]
            if not any(self._buffers.values()):
                self._buffer_since = time.monotonic()
            buf.extend(lines)
            full = len(buf) >= self.batch_size
        if full:
            self._hand_over(force=False)

    def _hand_over(self, force: bool) -> None:
        """Move full batches (all, if force) from the buffers to the writer queue (blocks when it is full)."""
        chunks: list[tuple[str, list[str]]] = []
        with self._lock:
            for precision, buf in self._buffers.items():
                cut = len(buf) if force else len(buf) - len(buf) % self.batch_size
                for i in range(0, cut, self.batch_size):
                    chunks.append((precision, buf[i:min(i + self.batch_size, cut)]))
                del buf[:cut]
            self._buffer_since = time.monotonic()
        for chunk in chunks:
            self._queue.put(chunk)  # backpressure on the stream when the server is slow

    def _run(self) -> None:
        self.replay_spool()
        tick_s = max(self.flush_interval_ms / 1000.0 / 2, 0.01)
        while True:
            try:
                item = self._queue.get(timeout=tick_s)
            except queue.Empty:
                self._on_idle()
                continue
            try:
                if item is _STOP:
                    return
                self._write_batch(*item)
            except Exception:  # never let the writer die: the batch goes to the spool
                log.exception("unexpected error writing a batch; spooling it")
                self._spool(*item)
            finally:
                self._queue.task_done()
            self._maybe_replay()  # also while busy: an outage must end even if the queue never drains

    def _on_idle(self) -> None:
        if self._closed:
            return
        if (time.monotonic() - self._buffer_since) * 1000 >= self.flush_interval_ms:
            with self._lock:
                pending = any(self._buffers.values())
            if pending:
                self._hand_over_nowait()
        self._maybe_replay()

    def _maybe_replay(self) -> None:
        if not self._closed and time.monotonic() - self._last_replay >= self.replay_interval_s:
            self.replay_spool()

    def _hand_over_nowait(self) -> None:
        """Flush-interval hand-over from the writer thread itself: write inline (it must not block on its queue)."""
        with self._inline_lock:
            chunks: list[tuple[str, list[str]]] = []
            with self._lock:
                for precision, buf in self._buffers.items():
                    for i in range(0, len(buf), self.batch_size):
                        chunks.append((precision, buf[i:i + self.batch_size]))
                    buf.clear()
                self._buffer_since = time.monotonic()
            for chunk in chunks:
                try:
                    self._write_batch(*chunk)
                except Exception:
                    log.exception("unexpected error writing a batch; spooling it")
                    self._spool(*chunk)

    def _write_batch(self, precision: str, lines: list[str]) -> None:
        """Write with retries and back-off; spool when every attempt failed.

        During an outage (a batch already failed every retry) batches go straight
        to the spool, behind the older ones, until a replay empties it: writers
        and ``flush()`` are not held up by retries, and replay keeps the order.
        """
        if self._outage:
            self._spool(precision, lines)
            return
        delay_ms = self.retry_interval_ms
        for attempt in range(self.max_retries + 1):
            try:
                with self._io_lock:
                    self._post(precision, lines)
                    self.stats.points_written += len(lines)
                    self.stats.batches_written += 1
                return
            except WriteRejected as exc:
                path = self.spool.reject(precision, lines, str(exc))
                self.stats.batches_rejected += 1
                self.stats.points_rejected += len(lines)
                log.error("InfluxDB rejected a batch of %s points as malformed; kept in %s: %s",
                          len(lines), path, exc)
                return
            except Exception as exc:
                if attempt == self.max_retries:
                    log.warning("batch of %s points failed after %s retries (%s); spooling it",
                                len(lines), self.max_retries, exc)
                    break
                self.stats.retries += 1
                time.sleep(delay_ms / 1000.0)
                delay_ms = min(delay_ms * 2, self.max_retry_delay_ms)
        self.stats.batches_failed += 1
        self._outage = True
        self._spool(precision, lines)

    def _spool(self, precision: str, lines: list[str]) -> None:
        self.spool.append(precision, lines)
        self.stats.spooled += len(lines)

    def _post(self, precision: str, lines: list[str]) -> None:
        """One synchronous HTTP write; raises on any failure (WriteRejected for HTTP 400)."""
        from influxdb_client.rest import ApiException

        body = ("\n".join(lines)).encode("utf-8")
        try:
            self._write_api.write(bucket=self.bucket, org=self.org, record=body, write_precision=precision)
        except ApiException as exc:
            if exc.status == 400:
                raise WriteRejected(f"HTTP 400: {exc.body!r}"[:2000]) from exc
            raise
