"""Grafana dashboards as code: plain Python builders -> deterministic JSON in dashboards/json/.

``build_all(network)`` returns every dashboard by file name; ``write_all`` writes
them (``roadpulse dashboards build``); ``panel_queries`` lists every Flux query
a dashboard runs (panels and template variables), for tests and tooling.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from dashboards.grafana import analyst, corridor, operator
from models.network import Network

JSON_DIR = Path(__file__).resolve().parent.parent / "json"


def build_all(network: Network | None = None) -> dict[str, dict[str, Any]]:
    """File name -> dashboard. ``network`` feeds the map's segment positions (default: Singapore's)."""
    if network is None:
        from models.singapore import singapore_network
        network = singapore_network()
    return {"operator-overview.json": operator.build(network),
            "corridor-drilldown.json": corridor.build(),
            "analyst.json": analyst.build()}


def render(dashboard: dict[str, Any]) -> str:
    """The file content: stable key order as built, two-space indent, trailing newline."""
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def write_all(out_dir: Path = JSON_DIR, network: Network | None = None) -> list[Path]:
    """Write every dashboard into ``out_dir``; returns the paths written (unchanged files are not touched)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, board in build_all(network).items():
        path = out_dir / name
        text = render(board)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def load_all(json_dir: Path = JSON_DIR) -> dict[str, dict[str, Any]]:
    """The committed dashboards, by file name."""
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(json_dir.glob("*.json"))}


@dataclass(frozen=True)
class PanelQuery:
    """One Flux query of a dashboard: a panel target or a template variable."""

    dashboard_uid: str
    title: str  # panel title, or "$name" for a variable
    panel_type: str  # "variable" for template variables
    ref_id: str
    query: str


def panel_queries(board: dict[str, Any]) -> Iterator[PanelQuery]:
    """Every query the dashboard runs, variables first, then panels (rows' nested panels too)."""
    uid = board.get("uid", "")
    for var in board.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            yield PanelQuery(uid, f"${var['name']}", "variable", var["name"], var["query"])
    stack = list(board.get("panels", []))
    while stack:
        panel = stack.pop(0)
        stack[:0] = panel.get("panels", [])
        for tgt in panel.get("targets", []):
            yield PanelQuery(uid, panel.get("title", ""), panel["type"], tgt.get("refId", ""), tgt["query"])
