"""The embedded time-series store: SQLite with the InfluxDB measurement/tag/field schema.

One table per measurement; its primary key is the time column plus the tags, so writing
a point with the same measurement + tags + time again *replaces* it (an upsert, as
InfluxDB overwrites a point): a reprocessed window never duplicates. Tags are TEXT and
never NULL ("" for a missing tag, as InfluxDB has no null tags); NaN fields are stored as
NULL and come back as NaN. Times are integer ms UTC; ``load`` adds a tz-aware ``time``.

=================  ===========================================  ===================================  ==============
table              tags (primary key, with time)                fields                               time column
=================  ===========================================  ===================================  ==============
flow               level, window (30s/1m/5m), entity_id,        vehicle_count, flow_veh_h,           window_start_ms
                   corridor, direction                          occupancy_pct, time_mean_speed_kmh,
                                                                space_mean_speed_kmh, density_veh_km,
                                                                speed_band, n_readings,
                                                                travel_time_s (segment), imputed
incident           incident_id, corridor, direction,            location_km, severity, confidence,   event_ms
                   segment_id, algorithm, status                start_ms, cleared_ms
alert              subscription_id, kind, corridor, direction,  alert_id, message, speed_band_from,   at_ms
                   segment_id                                   speed_band_to, incident_id,
                                                                travel_time_now_s, travel_time_usual_s
dead_letter        reason, source (+ seq in the key)            detail, key, payload (BLOB), row     at_ms
camera             camera_id, station_id, segment_id            vehicle_count, mean_speed_kmh,       interval_start_ms
                                                                queue_length_m, occupancy_pct,
                                                                stopped_vehicle, frames
detector_health    detector_id, corridor, direction, status     any numeric fields (added on use)    at_ms
pipeline           component                                    any numeric fields (added on use)    at_ms
=================  ===========================================  ===================================  ==============

``dead_letter.seq`` is a 56-bit digest of the dead letter's key, row, detail and payload
(:func:`dead_letter_seq`): distinct dead letters at the same ms stay distinct, the same
one written twice stays one. The InfluxDB sink can use it as the nanosecond part.
For ``detector_health`` and ``pipeline`` new fields become new columns; an upsert there
merges fields (a field left out keeps its value), as InfluxDB merges a point's fields.
Writes are one transaction per call (executemany, WAL journal). The key starts with time
(a WITHOUT ROWID table): time-ordered writes append, a time range is a key range; a
tag filter without a time range scans the table (no secondary indexes: they halved
the insert rate).
"""
from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from models.camera import CameraObservation
from models.records import Alert, DeadLetter, FlowWindowBatch, Incident

logger = logging.getLogger(__name__)

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Measurement:
    """A measurement's columns: tags, fields (name, SQL type) and the time column."""

    name: str
    tags: tuple[str, ...]
    fields: tuple[tuple[str, str], ...]
    time: str
    extra_key: tuple[str, ...] = ()
    dynamic: bool = False

    @property
    def key(self) -> tuple[str, ...]:
        """The primary key: time first, so time-ordered writes append and time ranges are key ranges."""
        return (self.time, *self.tags, *self.extra_key)


FLOW_FIELDS = (("vehicle_count", "INTEGER"), ("flow_veh_h", "REAL"), ("occupancy_pct", "REAL"),
               ("time_mean_speed_kmh", "REAL"), ("space_mean_speed_kmh", "REAL"), ("density_veh_km", "REAL"),
               ("speed_band", "INTEGER"), ("n_readings", "INTEGER"), ("travel_time_s", "REAL"),
               ("imputed", "INTEGER"))
MEASUREMENTS: dict[str, Measurement] = {m.name: m for m in (
    Measurement("flow", ("level", "window", "entity_id", "corridor", "direction"), FLOW_FIELDS, "window_start_ms"),
    Measurement("incident", ("incident_id", "corridor", "direction", "segment_id", "algorithm", "status"),
                (("location_km", "REAL"), ("severity", "INTEGER"), ("confidence", "REAL"), ("start_ms", "INTEGER"),
                 ("cleared_ms", "INTEGER")), "event_ms"),
    Measurement("alert", ("subscription_id", "kind", "corridor", "direction", "segment_id"),
                (("alert_id", "TEXT"), ("message", "TEXT"), ("speed_band_from", "INTEGER"),
                 ("speed_band_to", "INTEGER"), ("incident_id", "TEXT"), ("travel_time_now_s", "REAL"),
                 ("travel_time_usual_s", "REAL")), "at_ms"),
    Measurement("dead_letter", ("reason", "source"),
                (("detail", "TEXT"), ("key", "TEXT"), ("payload", "BLOB"), ("row", "INTEGER")), "at_ms",
                extra_key=("seq",)),
    Measurement("camera", ("camera_id", "station_id", "segment_id"),
                (("vehicle_count", "INTEGER"), ("mean_speed_kmh", "REAL"), ("queue_length_m", "REAL"),
                 ("occupancy_pct", "REAL"), ("stopped_vehicle", "INTEGER"), ("frames", "INTEGER")),
                "interval_start_ms"),
    Measurement("detector_health", ("detector_id", "corridor", "direction", "status"), (), "at_ms", dynamic=True),
    Measurement("pipeline", ("component",), (), "at_ms", dynamic=True),
)}


def window_tag(window_ms: int) -> str:
    """The ``window`` tag of a window length: 30000 -> "30s", 60000 -> "1m", 300000 -> "5m"."""
    for unit_ms, unit in ((3_600_000, "h"), (60_000, "m"), (1000, "s")):
        if window_ms % unit_ms == 0:
            return f"{window_ms // unit_ms}{unit}"
    return f"{window_ms}ms"


def dead_letter_seq(dl: DeadLetter) -> int:
    """A stable 56-bit number telling apart dead letters of the same reason, source and ms."""
    h = hashlib.blake2b(digest_size=7)
    for part in (repr(dl.key).encode(), repr(dl.row).encode(), dl.detail.encode("utf-8", "replace"), dl.payload):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return int.from_bytes(h.digest(), "little")


def _q(name: str) -> str:
    return f'"{name}"'


def _tag(v: Any) -> str:
    return "" if v is None else str(v)


class LocalStore:
    """SQLite store with the InfluxDB schema (see the module docstring); ``path`` may be ":memory:"."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._conn = sqlite3.connect(self.path)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._columns: dict[str, dict[str, str]] = {}
        with self._conn:
            for m in MEASUREMENTS.values():
                self._create(m)

    def _create(self, m: Measurement) -> None:
        cols = [f"{_q(t)} TEXT NOT NULL" for t in m.tags] + [f"{_q(m.time)} INTEGER NOT NULL"]
        cols += [f"{_q(k)} INTEGER NOT NULL" for k in m.extra_key] + [f"{_q(f)} {typ}" for f, typ in m.fields]
        pk = ", ".join(_q(k) for k in m.key)
        self._conn.execute(f"CREATE TABLE IF NOT EXISTS {m.name} ({', '.join(cols)}, PRIMARY KEY ({pk})) "
                           "WITHOUT ROWID")
        self._columns[m.name] = {r[1]: r[2] for r in self._conn.execute(f"PRAGMA table_info({m.name})")}

    # ---- writes -------------------------------------------------------------
    def _upsert(self, m: Measurement, columns: list[str], rows: Iterable[tuple[Any, ...]]) -> int:
        fields = [c for c in columns if c not in m.key]
        names = ", ".join(_q(c) for c in columns)
        marks = ", ".join("?" * len(columns))
        if m.dynamic:  # merge: a field left out (NULL) keeps its stored value
            sets = ", ".join(f"{_q(f)} = COALESCE(excluded.{_q(f)}, {_q(f)})" for f in fields)
        else:  # replace every field
            sets = ", ".join(f"{_q(f)} = excluded.{_q(f)}" for f in fields)
        conflict = f"ON CONFLICT ({', '.join(_q(k) for k in m.key)}) " + (f"DO UPDATE SET {sets}" if sets
                                                                           else "DO NOTHING")
        sql = f"INSERT INTO {m.name} ({names}) VALUES ({marks}) {conflict}"
        with self._conn:
            cur = self._conn.executemany(sql, rows)
        return cur.rowcount

    def write_flow(self, batch: FlowWindowBatch) -> int:
        """Upsert a batch of flow windows (window tag from ``window_ms``); returns rows written."""
        n = len(batch)
        if n == 0:
            return 0
        m = MEASUREMENTS["flow"]
        travel = batch.travel_time_s.tolist() if len(batch.travel_time_s) == n else repeat(None, n)
        imputed = batch.imputed.astype(np.int64).tolist() if len(batch.imputed) == n else repeat(0, n)
        rows = zip(repeat(batch.level), repeat(window_tag(int(batch.window_ms))), batch.entity_id.tolist(),
                   batch.corridor.tolist(), batch.direction.tolist(),
                   np.asarray(batch.window_start_ms, dtype=np.int64).tolist(),
                   np.asarray(batch.vehicle_count, dtype=np.int64).tolist(), batch.flow_veh_h.tolist(),
                   batch.occupancy_pct.tolist(), batch.time_mean_speed_kmh.tolist(),
                   batch.space_mean_speed_kmh.tolist(), batch.density_veh_km.tolist(),
                   np.asarray(batch.speed_band, dtype=np.int64).tolist(),
                   np.asarray(batch.n_readings, dtype=np.int64).tolist(), travel, imputed)
        self._upsert(m, [*m.tags, m.time, *(f for f, _ in m.fields)], rows)
        return n

    def write_incidents(self, incidents: Iterable[Incident]) -> int:
        """Upsert incident lifecycle events (time = event_ms)."""
        m = MEASUREMENTS["incident"]
        rows = [(i.incident_id, _tag(i.corridor), _tag(i.direction), _tag(i.segment_id), _tag(i.algorithm),
                 i.status, int(i.event_ms), float(i.location_km), int(i.severity), float(i.confidence),
                 int(i.start_ms), None if i.cleared_ms is None else int(i.cleared_ms)) for i in incidents]
        self._upsert(m, [*m.tags, m.time, *(f for f, _ in m.fields)], rows)
        return len(rows)

    def write_alerts(self, alerts: Iterable[Alert]) -> int:
        """Upsert alerts (time = at_ms)."""
        m = MEASUREMENTS["alert"]
        rows = [(a.subscription_id, a.kind, _tag(a.corridor), _tag(a.direction), _tag(a.segment_id), int(a.at_ms),
                 a.alert_id, a.message, a.speed_band_from, a.speed_band_to, a.incident_id, a.travel_time_now_s,
                 a.travel_time_usual_s) for a in alerts]
        self._upsert(m, [*m.tags, m.time, *(f for f, _ in m.fields)], rows)
        return len(rows)

    def write_dead_letters(self, dead_letters: Iterable[DeadLetter]) -> int:
        """Upsert dead letters; the payload is stored as a BLOB, ``seq`` keeps same-ms letters apart."""
        m = MEASUREMENTS["dead_letter"]
        rows = [(d.reason, _tag(d.source), int(d.at_ms), dead_letter_seq(d), d.detail, d.key, bytes(d.payload),
                 d.row) for d in dead_letters]
        self._upsert(m, [*m.tags, m.time, "seq", *(f for f, _ in m.fields)], rows)
        return len(rows)

    def write_cameras(self, observations: Iterable[CameraObservation]) -> int:
        """Upsert camera observations (time = interval_start_ms). ``vehicle_count`` is the observation's
        total as given (a burst sample scaled to the interval is the caller's job); ``frames`` says how
        many frames it rests on."""
        m = MEASUREMENTS["camera"]
        rows = [(o.camera_id, _tag(o.station_id), _tag(o.segment_id), int(o.interval_start_ms), o.vehicle_count,
                 float(o.mean_speed_kmh), float(o.queue_length_m), float(o.occupancy_pct), int(bool(o.stopped_vehicle)),
                 int(o.frames)) for o in observations]
        self._upsert(m, [*m.tags, m.time, *(f for f, _ in m.fields)], rows)
        return len(rows)

    def write_health(self, rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> int:
        """Upsert detector health points: tags detector_id, corridor, direction, status; time ``at_ms``;
        every other column/key is a field."""
        return self._write_dynamic(MEASUREMENTS["detector_health"], rows)

    def write_pipeline(self, component: str, at_ms: int, fields: Mapping[str, float]) -> int:
        """Upsert one point of pipeline metrics (readings_total, readings_per_s, lag_ms, ...)."""
        return self._write_dynamic(MEASUREMENTS["pipeline"], [{"component": component, "at_ms": at_ms, **fields}])

    def _write_dynamic(self, m: Measurement, rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> int:
        df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame.from_records(list(rows))
        if df.empty:
            return 0
        missing = [c for c in (*m.tags, m.time) if c not in df.columns]
        if missing:
            raise ValueError(f"{m.name}: rows miss {missing}")
        fields = [c for c in df.columns if c not in m.key]
        for f in fields:
            if not _IDENT.match(str(f)):
                raise ValueError(f"{m.name}: field name {f!r} is not an identifier")
            if f not in self._columns[m.name]:
                kind = df[f].dtype.kind
                typ = "INTEGER" if kind in "iub" else ("REAL" if kind == "f" else "TEXT")
                with self._conn:
                    self._conn.execute(f"ALTER TABLE {m.name} ADD COLUMN {_q(f)} {typ}")
                self._columns[m.name][f] = typ
        columns = [*m.tags, m.time, *fields]
        out = df[columns].astype(object).where(df[columns].notna(), None)
        for t in m.tags:
            out[t] = out[t].map(_tag)
        out[m.time] = df[m.time].astype(np.int64).tolist()
        for f in fields:
            if df[f].dtype.kind == "b":
                out[f] = df[f].astype(np.int64).tolist()
        self._upsert(m, columns, out.itertuples(index=False, name=None))
        return len(df)

    # ---- reads --------------------------------------------------------------
    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> pd.DataFrame:
        """Run any SQL on the store and get a DataFrame."""
        return pd.read_sql_query(sql, self._conn, params=params)

    def load(self, measurement: str, start_ms: int | None = None, stop_ms: int | None = None,
             **tags: str) -> pd.DataFrame:
        """Points of ``measurement`` with ``start_ms <= time < stop_ms`` and the given tag values.

        Columns: ``time`` (tz-aware UTC), the tags, the time column in ms, the fields;
        sorted by time then tags. NULL floats come back as NaN, nullable integers as Int64.
        """
        m = MEASUREMENTS.get(measurement)
        if m is None:
            raise ValueError(f"unknown measurement {measurement!r}; one of {sorted(MEASUREMENTS)}")
        unknown = set(tags) - set(m.tags)
        if unknown:
            raise ValueError(f"{measurement} has no tag(s) {sorted(unknown)}; its tags are {list(m.tags)}")
        where, params = [], []
        if start_ms is not None:
            where.append(f"{_q(m.time)} >= ?")
            params.append(int(start_ms))
        if stop_ms is not None:
            where.append(f"{_q(m.time)} < ?")
            params.append(int(stop_ms))
        for tag, value in tags.items():
            where.append(f"{_q(tag)} = ?")
            params.append(_tag(value))
        sql = f"SELECT * FROM {m.name}" + (f" WHERE {' AND '.join(where)}" if where else "")
        sql += f" ORDER BY {', '.join(_q(k) for k in (m.time, *m.tags, *m.extra_key))}"
        df = pd.read_sql_query(sql, self._conn, params=params)
        for col, typ in self._columns[m.name].items():
            if col in m.key:
                continue
            if typ == "REAL":
                df[col] = pd.to_numeric(df[col], errors="coerce").astype(np.float64)
            elif typ == "INTEGER":
                has_null = df[col].isna().any()
                df[col] = df[col].astype("Int64" if has_null else np.int64)
        if measurement == "flow":
            df["imputed"] = df["imputed"].astype(bool)
        if measurement == "camera":
            df["stopped_vehicle"] = df["stopped_vehicle"].astype(bool)
        df.insert(0, "time", pd.to_datetime(df[m.time].astype(np.int64), unit="ms", utc=True))
        return df

    def close(self) -> None:
        """Commit and close the database."""
        self._conn.close()

    def __enter__(self) -> "LocalStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
