"""Read results back from InfluxDB into pandas: the analysts' one call, same shape as the local store.

``load_influx("flow", start, stop, level="segment", window="5m")`` returns what
``LocalStore(path).load("flow", start, stop, level="segment", window="5m")``
returns for the same run: a ``time`` column (tz-aware UTC), the measurement's
tags ("" where a tag is absent, as in sqlite), its integer time column in ms
(``window_start_ms``, ``event_ms``, ``at_ms``), then the fields. Fields that were
NaN are not stored in InfluxDB and come back as NaN; integer fields with gaps
become pandas ``Int64``; dead-letter payloads are decoded from base64 to bytes.
``query_frame(flux)`` runs any Flux query and returns its rows as one frame.

Connection settings default to the environment: INFLUX_URL, INFLUX_TOKEN,
INFLUX_ORG, INFLUX_BUCKET (as written by ``scripts/services/up.sh``).
"""
from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from stream.sinks.sqlite_store import MEASUREMENTS

_META = ("result", "table", "_start", "_stop", "_measurement")
_FAR_PAST = "1970-01-01T00:00:00Z"
_FAR_FUTURE = "2200-01-01T00:00:00Z"


@dataclass(frozen=True)
class InfluxConnection:
    """Where to read: URL, token (``user:password`` or anything on 1.8 without auth), org, bucket."""

    url: str
    token: str = ""
    org: str = "roadpulse"
    bucket: str = "roadpulse"

    @classmethod
    def from_env(cls, url: str | None = None, token: str | None = None, org: str | None = None,
                 bucket: str | None = None) -> InfluxConnection:
        """Arguments win; the rest from INFLUX_URL, INFLUX_TOKEN, INFLUX_ORG, INFLUX_BUCKET."""
        url = url or os.environ.get("INFLUX_URL") or os.environ.get("ROADPULSE_INFLUX")
        if not url:
            raise ValueError("no InfluxDB URL: pass url=... or set INFLUX_URL (e.g. http://127.0.0.1:8086)")
        return cls(url=url.rstrip("/"), token=token if token is not None else os.environ.get("INFLUX_TOKEN", ""),
                   org=org or os.environ.get("INFLUX_ORG", "roadpulse"),
                   bucket=bucket or os.environ.get("INFLUX_BUCKET", "roadpulse"))


def to_ms(value: int | str | datetime | pd.Timestamp | None) -> int | None:
    """ms UTC from int ms, an ISO-8601 string with offset, or a tz-aware datetime."""
    if value is None or isinstance(value, (int, np.integer)):
        return None if value is None else int(value)
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise ValueError(f"time {value!r} has no timezone; give one (e.g. +08:00) or use ms since the epoch")
    return int(ts.value // 1_000_000)


def flux_time(ms: int | None, default: str) -> str:
    """A Flux time literal for ms UTC (RFC 3339 with ms)."""
    if ms is None:
        return default
    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _flux_str(value: str) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def query_frame(flux: str, conn: InfluxConnection | None = None, timeout_ms: int = 120_000) -> pd.DataFrame:
    """Every row of every table of a Flux result in one frame (Flux's result/table columns dropped)."""
    from influxdb_client import InfluxDBClient

    conn = conn or InfluxConnection.from_env()
    with InfluxDBClient(url=conn.url, token=conn.token or "-", org=conn.org or "-", timeout=timeout_ms) as client:
        tables = client.query_api().query(flux)
    rows = [{k: v for k, v in rec.values.items() if k not in ("result", "table")}
            for table in tables for rec in table.records]
    return pd.DataFrame(rows)


def load_flux(measurement: str, bucket: str, start_ms: int | None = None, stop_ms: int | None = None,
              **tags: str) -> str:
    """The Flux that ``load`` runs: a time range, the measurement and tag filters, fields pivoted to columns."""
    conds = [f"r._measurement == {_flux_str(measurement)}"]
    conds += [f"r[{_flux_str(k)}] == {_flux_str(v)}" for k, v in tags.items()]
    return (f"from(bucket: {_flux_str(bucket)})\n"
            f"  |> range(start: {flux_time(start_ms, _FAR_PAST)}, stop: {flux_time(stop_ms, _FAR_FUTURE)})\n"
            f"  |> filter(fn: (r) => {' and '.join(conds)})\n"
            '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n')


class InfluxStore:
    """The InfluxDB counterpart of ``LocalStore.load``."""

    def __init__(self, conn: InfluxConnection) -> None:
        self.conn = conn

    def load(self, measurement: str, start_ms: int | None = None, stop_ms: int | None = None,
             **tags: str) -> pd.DataFrame:
        """Points of ``measurement`` with ``start_ms <= time < stop_ms`` and the given tag values."""
        m = MEASUREMENTS.get(measurement)
        if m is None:
            raise ValueError(f"unknown measurement {measurement!r}; one of {sorted(MEASUREMENTS)}")
        unknown = set(tags) - set(m.tags)
        if unknown:
            raise ValueError(f"{measurement} has no tag(s) {sorted(unknown)}; its tags are {list(m.tags)}")
        raw = query_frame(load_flux(measurement, self.conn.bucket, start_ms, stop_ms, **tags), self.conn)
        return shape_like_local_store(measurement, raw)


def shape_like_local_store(measurement: str, raw: pd.DataFrame) -> pd.DataFrame:
    """Pivoted Flux rows -> the columns, dtypes and order of ``LocalStore.load``."""
    m = MEASUREMENTS[measurement]
    known_fields = [name for name, _ in m.fields]
    if raw.empty:
        return pd.DataFrame(columns=["time", *m.tags, m.time, *known_fields])
    df = raw.drop(columns=[c for c in _META if c in raw.columns])
    us = pd.to_datetime(df.pop("_time"), utc=True).dt.as_unit("us").astype("int64")  # the client parses to µs
    out = pd.DataFrame(index=df.index)
    for tag in m.tags:
        out[tag] = df.pop(tag).fillna("").astype(str) if tag in df.columns else ""
    out[m.time] = (np.asarray(us, dtype=np.int64) // 1000).astype(np.int64)
    extra = sorted(c for c in df.columns if c not in known_fields)
    types = dict(m.fields)
    for name in [*known_fields, *extra]:
        out[name] = _field_column(df[name] if name in df.columns else pd.Series(np.nan, index=df.index),
                                  types.get(name))
    if measurement == "dead_letter" and "payload" in out.columns:
        out["payload"] = [base64.b64decode(p) if isinstance(p, str) else p for p in out["payload"]]
    out["_us"] = np.asarray(us, dtype=np.int64)  # sub-ms order of dead letters, then dropped
    out = out.sort_values([m.time, *m.tags, "_us"], kind="stable").drop(columns="_us").reset_index(drop=True)
    out.insert(0, "time", pd.to_datetime(out[m.time], unit="ms", utc=True))
    return out


def _field_column(values: pd.Series, sql_type: str | None) -> pd.Series:
    """NaN for missing floats, int64 (Int64 with gaps) for integers, bool for flags, objects for text."""
    present = values.dropna()
    if sql_type == "REAL":
        return pd.to_numeric(values, errors="coerce").astype(np.float64)
    if sql_type == "TEXT":  # pandas infers its default string dtype, as for the local store's text
        return pd.Series([v if isinstance(v, str) else None for v in values], index=values.index)
    if sql_type == "BLOB":
        return values.astype(object).where(values.notna(), None)
    if len(present) and all(isinstance(v, (bool, np.bool_)) for v in present):
        return values.fillna(False).astype(bool)
    if sql_type == "INTEGER" or (len(present) and all(isinstance(v, (int, np.integer)) for v in present)):
        return values.astype("Int64" if values.isna().any() else np.int64)
    if len(present) and all(isinstance(v, (int, float, np.number)) for v in present):
        return pd.to_numeric(values, errors="coerce").astype(np.float64)
    return values.astype(object)


def load_influx(measurement: str, start: int | str | datetime | None = None,
                stop: int | str | datetime | None = None, *, url: str | None = None, token: str | None = None,
                org: str | None = None, bucket: str | None = None, **tags: str) -> pd.DataFrame:
    """One call from a notebook: ``load_influx("flow", "2026-03-02T00:00+08:00", None, level="segment")``.

    ``start``/``stop``: ms since the epoch, ISO-8601 with an offset, or a tz-aware datetime.
    Connection from the arguments, else INFLUX_URL / INFLUX_TOKEN / INFLUX_ORG / INFLUX_BUCKET.
    """
    conn = InfluxConnection.from_env(url, token, org, bucket)
    return InfluxStore(conn).load(measurement, to_ms(start), to_ms(stop), **tags)
