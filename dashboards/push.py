"""Upload the roadpulse data source and dashboards to a running Grafana (``roadpulse dashboards push``).

For a Grafana that docker compose did not provision (the compose stack loads
dashboards/json and deploy/grafana/provisioning by itself). Uses grafana-api's
``GrafanaFace`` over Grafana's HTTP API:

- data source: ``GET /api/datasources/uid/<uid>``; if found ``PUT /api/datasources/<id>``,
  else ``POST /api/datasources`` (the same definition as the provisioning file);
- folder: ``GET /api/folders/<uid>``, created with ``POST /api/folders`` when missing;
- dashboards: ``POST /api/dashboards/db`` with ``overwrite: true`` into that folder.

Running it again changes nothing but Grafana's version counters: it is idempotent.
"""
from __future__ import annotations

import logging
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dashboards.grafana import JSON_DIR, load_all
from dashboards.grafana.panels import DATASOURCE_UID

log = logging.getLogger(__name__)

DATASOURCE_NAME = "InfluxDB (roadpulse, Flux)"  # as in deploy/grafana/provisioning/datasources/influxdb.yaml
FOLDER_UID = "roadpulse"
FOLDER_TITLE = "roadpulse"


class PushError(RuntimeError):
    """Grafana refused or could not be reached; the message says what to check."""


def datasource_definition(influx_url: str, org: str, bucket: str, token: str) -> dict[str, Any]:
    """The InfluxDB (Flux) data source the dashboards refer to by uid; same fields as the provisioning file."""
    return {"name": DATASOURCE_NAME, "uid": DATASOURCE_UID, "type": "influxdb", "access": "proxy",
            "url": influx_url, "isDefault": True,
            "jsonData": {"version": "Flux", "organization": org, "defaultBucket": bucket, "timeInterval": "30s"},
            "secureJsonData": {"token": token}}


@dataclass
class PushReport:
    """What the push did: data source created or updated, folder, dashboards with their Grafana URLs."""

    datasource: str = ""
    folder: str = ""
    dashboards: list[dict[str, Any]] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"data source {DATASOURCE_UID}: {self.datasource}", f"folder {FOLDER_UID}: {self.folder}"]
        out += [f"dashboard {d['uid']}: version {d.get('version')} {d.get('url', '')}" for d in self.dashboards]
        return out


def connect(grafana_url: str, api_key: str | None = None, user: str | None = None, password: str | None = None,
            timeout_s: float = 10.0):
    """A ``GrafanaFace`` for ``http(s)://host[:port][/prefix]``: API key (Bearer) or user + password (basic)."""
    from grafana_api.grafana_face import GrafanaFace

    parts = urllib.parse.urlsplit(grafana_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PushError(f"--grafana must look like http://HOST:3000, got {grafana_url!r}")
    if api_key:
        auth: Any = api_key
    elif user and password is not None:
        auth = (user, password)
    else:
        raise PushError("give --api-key (a Grafana service account token) or --user and --password")
    prefix = parts.path.strip("/")
    return GrafanaFace(auth, host=parts.hostname, port=parts.port, protocol=parts.scheme,
                       url_path_prefix=f"{prefix}/" if prefix else "", timeout=timeout_s)


def _status(exc: Exception) -> int | None:
    return getattr(exc, "status_code", None)


def upsert_datasource(face, definition: dict[str, Any]) -> str:
    """Create the data source, or update it in place when its uid exists; returns "created" or "updated"."""
    from grafana_api.grafana_api import GrafanaClientError

    try:
        existing = face.api.GET(f"/datasources/uid/{definition['uid']}")
    except GrafanaClientError as exc:
        if _status(exc) != 404:
            raise
        face.datasource.create_datasource(definition)
        return "created"
    face.datasource.update_datasource(existing["id"], {**definition, "id": existing["id"]})
    return "updated"


def ensure_folder(face, uid: str = FOLDER_UID, title: str = FOLDER_TITLE) -> tuple[str, dict[str, Any]]:
    """The dashboards' folder: ("exists" | "created", folder)."""
    from grafana_api.grafana_api import GrafanaClientError

    try:
        return "exists", face.folder.get_folder(uid)
    except GrafanaClientError as exc:
        if _status(exc) != 404:
            raise
    return "created", face.folder.create_folder(title, uid=uid)


def push(face, dashboards: dict[str, dict[str, Any]], datasource: dict[str, Any] | None) -> PushReport:
    """Upload ``datasource`` (unless None) and every dashboard (overwrite) into the roadpulse folder."""
    from grafana_api.grafana_api import GrafanaClientError, GrafanaServerError

    report = PushReport()
    try:
        if datasource is not None:
            report.datasource = upsert_datasource(face, datasource)
        report.folder, folder = ensure_folder(face)
        for name, board in sorted(dashboards.items()):
            body = {"dashboard": {**board, "id": None}, "folderUid": folder.get("uid", FOLDER_UID),
                    "overwrite": True, "message": f"roadpulse dashboards push ({name})"}
            if "id" in folder:
                body["folderId"] = folder["id"]
            result = face.dashboard.update_dashboard(body)
            report.dashboards.append({"file": name, "uid": result.get("uid", board.get("uid")),
                                      "version": result.get("version"), "url": result.get("url", "")})
            log.info("pushed %s as %s", name, result.get("uid"))
    except (GrafanaClientError, GrafanaServerError) as exc:
        hint = " (check --api-key: it needs the Editor or Admin role)" if _status(exc) in (401, 403) else ""
        raise PushError(f"Grafana answered {_status(exc)}: {exc}{hint}") from exc
    except OSError as exc:  # requests' ConnectionError is an OSError
        raise PushError(f"cannot reach Grafana: {exc}") from exc
    return report


def push_directory(grafana_url: str, json_dir: Path = JSON_DIR, api_key: str | None = None,
                   user: str | None = None, password: str | None = None,
                   datasource: dict[str, Any] | None = None) -> PushReport:
    """Push every ``*.json`` dashboard of ``json_dir`` (the committed ones by default)."""
    boards = load_all(json_dir)
    if not boards:
        raise PushError(f"no dashboard JSON in {json_dir}: run `roadpulse dashboards build` first")
    return push(connect(grafana_url, api_key, user, password), boards, datasource)
