"""`roadpulse dashboards push` against a stand-in for Grafana's HTTP API.

No Grafana server can run on the development machines (no registry here ships
one; its AGPL source is not built here), so this test runs a FAKE: a small
http.server on 127.0.0.1 (random port, own thread) that answers the calls the
push makes the way Grafana's documented HTTP API does (status codes and JSON
bodies of /api/datasources, /api/datasources/uid/:uid, /api/datasources/:id,
/api/folders, /api/folders/:uid, /api/dashboards/db, /api/dashboards/uid/:uid),
with Grafana's auth check (Bearer service-account token or basic auth -> 401
otherwise). The real Grafana is provisioned by docker compose.
"""
from __future__ import annotations

import base64
import copy
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from dashboards.grafana import JSON_DIR, load_all
from dashboards.push import PushError, datasource_definition, push_directory
from roadpulse.dashboards_cli import main as cli_main

REPO = Path(__file__).resolve().parents[2]
API_KEY = "glsa_test_token"
BASIC = ("admin", "s3cret")


class FakeGrafana:
    """State of the stand-in Grafana: data sources, folders, dashboards (by uid), and the requests seen."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix.rstrip("/")
        self.datasources: dict[int, dict] = {}
        self.folders: dict[str, dict] = {}
        self.dashboards: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self._next_id = 1
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.prefix}"

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def _send(self, status: int, body: dict | list) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                header = self.headers.get("Authorization", "")
                basic = "Basic " + base64.b64encode(":".join(BASIC).encode()).decode()
                return header in (f"Bearer {API_KEY}", basic)

            def _route(self, method: str) -> None:
                path = self.path.split("?")[0]
                fake.requests.append((method, path))
                if not path.startswith(fake.prefix + "/api/"):
                    return self._send(404, {"message": "Not found"})
                if not self._authorised():
                    return self._send(401, {"message": "Unauthorized"})
                parts = path[len(fake.prefix) + len("/api/"):].strip("/").split("/")
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                status, answer = fake.handle(method, parts, body)
                self._send(status, answer)

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_PUT(self) -> None:
                self._route("PUT")

        return Handler

    # ---- Grafana's HTTP API (the calls the push uses) ------------------------------------
    def handle(self, method: str, parts: list[str], body: dict | None) -> tuple[int, dict]:
        if parts[0] == "datasources":
            return self._datasources(method, parts[1:], body)
        if parts[0] == "folders":
            return self._folders(method, parts[1:], body)
        if parts[:2] == ["dashboards", "db"] and method == "POST":
            return self._save_dashboard(body or {})
        if parts[:2] == ["dashboards", "uid"] and method == "GET":
            board = self.dashboards.get(parts[2])
            return (200, board) if board else (404, {"message": "Dashboard not found"})
        return 404, {"message": "Not found"}

    @staticmethod
    def _public(ds: dict) -> dict:
        """What Grafana returns: secureJsonData is never sent back, only which secure fields are set."""
        out = {k: v for k, v in ds.items() if k != "secureJsonData"}
        out["secureJsonFields"] = {k: True for k in ds.get("secureJsonData", {})}
        return out

    def _datasources(self, method: str, rest: list[str], body: dict | None) -> tuple[int, dict]:
        if method == "GET" and rest[:1] == ["uid"]:
            found = [d for d in self.datasources.values() if d["uid"] == rest[1]]
            return (200, self._public(found[0])) if found else (404, {"message": "Data source not found"})
        if method == "POST" and not rest:
            if any(d["name"] == body["name"] for d in self.datasources.values()):
                return 409, {"message": "data source with the same name already exists"}
            ds = {**body, "id": self.new_id(), "orgId": 1, "version": 1}
            self.datasources[ds["id"]] = ds
            return 200, {"datasource": self._public(ds), "id": ds["id"], "message": "Datasource added",
                         "name": ds["name"]}
        if method == "PUT" and len(rest) == 1 and rest[0].isdigit():
            old = self.datasources.get(int(rest[0]))
            if old is None:
                return 404, {"message": "Data source not found"}
            ds = {**body, "id": old["id"], "orgId": 1, "version": old["version"] + 1}
            self.datasources[ds["id"]] = ds
            return 200, {"datasource": self._public(ds), "id": ds["id"], "message": "Datasource updated",
                         "name": ds["name"]}
        return 404, {"message": "Not found"}

    def _folders(self, method: str, rest: list[str], body: dict | None) -> tuple[int, dict]:
        if method == "GET" and len(rest) == 1:
            folder = self.folders.get(rest[0])
            return (200, folder) if folder else (404, {"message": "folder not found", "status": "not-found"})
        if method == "POST" and not rest:
            if body.get("uid") in self.folders:
                return 409, {"message": "a folder with the same uid already exists"}
            folder = {"id": self.new_id(), "uid": body["uid"], "title": body["title"],
                      "url": f"/dashboards/f/{body['uid']}/", "version": 1}
            self.folders[folder["uid"]] = folder
            return 200, folder
        return 404, {"message": "Not found"}

    def _save_dashboard(self, body: dict) -> tuple[int, dict]:
        board = body.get("dashboard")
        if not isinstance(board, dict) or not board.get("title"):
            return 400, {"message": "Dashboard title cannot be empty"}
        folder_uid = body.get("folderUid", "")
        if folder_uid and folder_uid not in self.folders:
            return 400, {"message": "folder not found"}
        uid = board.get("uid")
        old = self.dashboards.get(uid)
        if old is not None and not body.get("overwrite"):
            return 412, {"message": "A dashboard with the same uid already exists", "status": "name-exists"}
        version = old["dashboard"]["version"] + 1 if old else 1
        dash_id = old["dashboard"]["id"] if old else self.new_id()
        saved = {**copy.deepcopy(board), "id": dash_id, "version": version}
        self.dashboards[uid] = {"dashboard": saved, "meta": {"folderUid": folder_uid, "slug": uid,
                                                              "message": body.get("message", "")}}
        return 200, {"id": dash_id, "uid": uid, "url": f"/d/{uid}/{uid}", "status": "success",
                     "version": version, "slug": uid}


@pytest.fixture
def grafana():
    fake = FakeGrafana()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def push_args(grafana: FakeGrafana, *extra: str) -> list[str]:
    return ["dashboards", "push", "--grafana", grafana.url, "--influx-url", "http://influxdb:8086",
            "--influx-org", "roadpulse", "--influx-bucket", "roadpulse", "--influx-token", "tok", *extra]


def without_server_fields(board: dict) -> dict:
    return {k: v for k, v in board.items() if k not in ("id", "version")}


def test_push_uploads_exactly_the_committed_dashboards_and_the_provisioned_datasource(grafana, capsys):
    assert cli_main(push_args(grafana, "--api-key", API_KEY)) == 0
    committed = load_all(JSON_DIR)
    assert set(grafana.dashboards) == {b["uid"] for b in committed.values()}
    for board in committed.values():
        stored = grafana.dashboards[board["uid"]]
        assert without_server_fields(stored["dashboard"]) == without_server_fields(board)
        assert stored["meta"]["folderUid"] == "roadpulse"
    assert list(grafana.folders) == ["roadpulse"]
    (ds,) = grafana.datasources.values()
    provisioned = yaml.safe_load((REPO / "deploy/grafana/provisioning/datasources/influxdb.yaml").read_text())
    want = provisioned["datasources"][0]
    for key in ("name", "uid", "type", "access", "url", "isDefault"):
        assert ds[key] == want[key], key
    assert ds["jsonData"] == {**want["jsonData"], "organization": "roadpulse", "defaultBucket": "roadpulse"}
    assert ds["secureJsonData"] == {"token": "tok"}
    out = capsys.readouterr().out
    assert "data source roadpulse-influxdb: created" in out and "/d/roadpulse-operator/" in out


def test_pushing_again_overwrites_instead_of_duplicating(grafana):
    assert cli_main(push_args(grafana, "--api-key", API_KEY)) == 0
    assert cli_main(push_args(grafana, "--api-key", API_KEY)) == 0
    assert len(grafana.datasources) == 1 and len(grafana.folders) == 1 and len(grafana.dashboards) == 3
    assert next(iter(grafana.datasources.values()))["version"] == 2  # updated in place
    assert {d["dashboard"]["version"] for d in grafana.dashboards.values()} == {2}
    assert ("PUT", f"/api/datasources/{next(iter(grafana.datasources))}") in grafana.requests


def test_wrong_key_is_refused_with_a_hint_and_nothing_is_stored(grafana, capsys):
    assert cli_main(push_args(grafana, "--api-key", "wrong")) == 1
    err = capsys.readouterr().err
    assert "401" in err and "--api-key" in err
    assert not grafana.dashboards and not grafana.datasources


def test_basic_auth_dashboards_only_and_a_url_prefix(tmp_path):
    """Grafana behind a reverse proxy at /grafana/, admin user instead of a key, no data source change."""
    fake = FakeGrafana(prefix="/grafana")
    fake.thread.start()
    try:
        report = push_directory(fake.url + "/", JSON_DIR, user=BASIC[0], password=BASIC[1], datasource=None)
    finally:
        fake.server.shutdown()
        fake.server.server_close()
    assert len(report.dashboards) == 3 and report.datasource == "" and not fake.datasources
    assert all(path.startswith("/grafana/api/") for _, path in fake.requests)


def test_unreachable_grafana_and_missing_credentials_are_clear_errors(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PushError, match="cannot reach Grafana"):
        push_directory(f"http://127.0.0.1:{port}", JSON_DIR, api_key=API_KEY,
                       datasource=datasource_definition("http://influxdb:8086", "o", "b", "t"))
    with pytest.raises(PushError, match="--api-key"):
        push_directory("http://127.0.0.1:3000", JSON_DIR)
    with pytest.raises(PushError, match="dashboards build"):
        push_directory("http://127.0.0.1:3000", tmp_path, api_key=API_KEY)
