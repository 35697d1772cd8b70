"""The generated dashboards: valid for Grafana, never out of date, wired to the provisioned data source.

No Grafana server can run on the development machines, so validity is checked
against Grafana's own JSON schemas (../shared/grafana-jsonschema, from
grafana-foundation-sdk) with the ``jsonschema`` package: the dashboard schema for
the whole file and each panel plugin's schema (``Options``, ``FieldConfig``) for
its panels.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from dashboards.grafana import JSON_DIR, build_all, load_all, panel_queries, render
from dashboards.grafana.panels import BAND_COLOURS, DATASOURCE_UID
from dashboards.grafana.schema import has_panel_schema, schema_dir, validate_dashboard
from dashboards.grafana.sites import segment_sites
from models.singapore import singapore_network
from roadpulse.dashboards_cli import main as cli_main

REPO = Path(__file__).resolve().parents[2]
COMMITTED = load_all(JSON_DIR)


def all_panels(board: dict) -> list[dict]:
    out, stack = [], list(board["panels"])
    while stack:
        panel = stack.pop(0)
        out.append(panel)
        stack[:0] = panel.get("panels", [])
    return out


def test_the_three_dashboards_are_committed():
    assert set(COMMITTED) == {"operator-overview.json", "corridor-drilldown.json", "analyst.json"}
    assert len({b["uid"] for b in COMMITTED.values()}) == 3


def test_schema_folder_is_the_draft7_component_format_the_checker_expects():
    directory = schema_dir()
    assert (directory / "dashboard.jsonschema.json").is_file(), directory
    for kind in ("geomap", "timeseries", "table", "stat", "bargauge", "statushistory"):
        assert has_panel_schema(kind.replace("statushistory", "status-history"), directory)


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_committed_dashboard_validates_against_grafana_schemas(name):
    assert validate_dashboard(COMMITTED[name]) == []


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_every_panel_type_has_a_plugin_schema_so_its_options_were_checked(name):
    types = {p["type"] for p in all_panels(COMMITTED[name])} - {"row"}
    assert types and all(has_panel_schema(t) for t in types), types


@pytest.mark.parametrize("mutate, expected", [
    (lambda b: b.pop("schemaVersion"), "schemaVersion"),
    (lambda b: b["panels"][1]["gridPos"].update(w=30), "gridPos"),
    (lambda b: b["panels"][1].update(colour="red"), "colour"),
    (lambda b: next(p for p in b["panels"] if p["type"] == "timeseries")["options"]["legend"].update(
        displayMode="huge"), "legend"),
    (lambda b: next(p for p in b["panels"] if p["type"] == "geomap")["options"]["view"].update(zoom=10.5), "zoom"),
    (lambda b: next(p for p in b["panels"] if p["type"] == "stat")["options"].pop("reduceOptions"),
     "reduceOptions"),
])
def test_the_checker_catches_a_broken_dashboard(mutate, expected):
    """A checker that passes everything would prove nothing: each of these mistakes must be reported."""
    board = copy.deepcopy(COMMITTED["operator-overview.json"])
    mutate(board)
    errors = validate_dashboard(board)
    assert errors and any(expected in e for e in errors), errors


def test_committed_json_equals_a_fresh_build():
    """`roadpulse dashboards build` output is what is committed: the files never drift from the code."""
    fresh = build_all()
    assert sorted(fresh) == sorted(COMMITTED)
    for name, board in fresh.items():
        assert (JSON_DIR / name).read_text(encoding="utf-8") == render(board), f"{name}: run roadpulse dashboards build"


def test_build_is_deterministic_and_the_cli_writes_the_same_files(tmp_path):
    assert {n: render(b) for n, b in build_all().items()} == {n: render(b) for n, b in build_all().items()}
    assert cli_main(["dashboards", "build", "--out", str(tmp_path)]) == 0
    for name in COMMITTED:
        assert (tmp_path / name).read_text(encoding="utf-8") == (JSON_DIR / name).read_text(encoding="utf-8")
    assert cli_main(["dashboards", "build", "--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "analyst.json").write_text("{}")
    assert cli_main(["dashboards", "build", "--check", "--out", str(tmp_path)]) == 1


def test_every_query_uses_the_provisioned_datasource():
    provisioned = yaml.safe_load((REPO / "deploy/grafana/provisioning/datasources/influxdb.yaml").read_text())
    ds = provisioned["datasources"][0]
    assert ds["uid"] == DATASOURCE_UID and ds["jsonData"]["version"] == "Flux"
    for board in COMMITTED.values():
        for panel in all_panels(board):
            if panel["type"] in ("row", "text"):
                continue
            assert panel["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}, panel["title"]
            assert all(t["datasource"]["uid"] == DATASOURCE_UID for t in panel["targets"])
        for var in board["templating"]["list"]:
            assert var["datasource"]["uid"] == DATASOURCE_UID


def test_compose_mounts_the_folder_the_dashboards_are_written_to():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    volumes = compose["services"]["grafana"]["volumes"]
    assert any(v.startswith("./dashboards/json:") for v in volumes), volumes


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_panels_have_unique_ids_and_do_not_overlap(name):
    panels = all_panels(COMMITTED[name])
    assert len({p["id"] for p in panels}) == len(panels)
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_queries_use_only_defined_variables_and_the_time_range(name):
    board = COMMITTED[name]
    defined = {v["name"] for v in board["templating"]["list"]}
    titles = [p.get("title", "") for p in all_panels(board)]
    for pq in panel_queries(board):
        used = set(re.findall(r"\$\{(\w+)\}", pq.query))
        assert used <= defined, (pq.title, used - defined)
        assert "range(start: v.timeRangeStart, stop: v.timeRangeStop)" in pq.query, pq.title
        assert "from(bucket: v.defaultBucket)" in pq.query, pq.title
    for title in titles:
        assert set(re.findall(r"\$\{(\w+)\}", title)) <= defined, title


def test_corridor_variables_chain_corridor_direction_station():
    board = COMMITTED["corridor-drilldown.json"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert list(variables) == ["corridor", "direction", "station"]
    assert "${corridor}" in variables["direction"]["query"]
    assert "${corridor}" in variables["station"]["query"] and "${direction}" in variables["station"]["query"]
    assert all(v["refresh"] == 2 for v in variables.values())  # re-queried when the time range changes


def test_map_colours_lta_speed_bands_red_to_green_at_every_segment_of_the_default_network():
    board = COMMITTED["operator-overview.json"]
    panel = next(p for p in all_panels(board) if p["type"] == "geomap")
    layer = panel["options"]["layers"][0]
    assert layer["location"] == {"mode": "coords", "latitude": "lat", "longitude": "lon"}
    assert layer["config"]["style"]["color"]["field"] == "speed_band"
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, 1, 2, 3, 4, 5, 6, 7, 8]
    assert steps[1]["color"] == BAND_COLOURS[1] and steps[-1]["color"] == BAND_COLOURS[8]
    red, green = int(BAND_COLOURS[1][1:3], 16), int(BAND_COLOURS[8][3:5], 16)
    assert red > int(BAND_COLOURS[1][3:5], 16) and green > int(BAND_COLOURS[8][1:3], 16)
    query = panel["targets"][0]["query"]
    sites = segment_sites(singapore_network())
    assert len(sites) == len({s[0] for s in sites})
    for sid, lat, lon in sites:
        assert f",,0,{sid},{lat!r},{lon!r}\n" in query
    assert all(1.2 < lat < 1.5 and 103.6 < lon < 104.1 for _, lat, lon in sites)  # Singapore


def test_flux_macros_are_replaced_as_grafana_does():
    """Grafana's macros.go: RFC 3339 times, Go durations for v.windowPeriod, quoted bucket; variables first."""
    from dashboards.grafana.flux import go_duration, interpolate, rfc3339

    assert [go_duration(ms) for ms in (500, 30_000, 60_000, 90_500, 3_600_000)] == \
        ["500ms", "30s", "1m0s", "1m30.5s", "1h0m0s"]
    assert rfc3339(1_772_380_800_000) == "2026-03-01T16:00:00Z" and rfc3339(1_772_380_800_250) == \
        "2026-03-01T16:00:00.25Z"
    flux = interpolate('from(bucket: v.defaultBucket) |> range(start: v.timeRangeStart, stop: v.timeRangeStop)'
                       ' |> filter(fn: (r) => r.corridor == "${corridor}" and r.x == "$corridor")'
                       ' |> aggregateWindow(every: v.windowPeriod, fn: mean)',
                       1_772_380_800_000, 1_772_384_400_000, "rp", 60_000, {"corridor": "PIE"})
    assert flux == ('from(bucket: "rp") |> range(start: 2026-03-01T16:00:00Z, stop: 2026-03-01T17:00:00Z)'
                    ' |> filter(fn: (r) => r.corridor == "PIE" and r.x == "PIE")'
                    ' |> aggregateWindow(every: 1m0s, fn: mean)')
    with pytest.raises(KeyError):
        interpolate('r.a == "${nope}"', 0, 1, "rp")
