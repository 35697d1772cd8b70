"""Check dashboards against Grafana's own JSON schemas (grafana-foundation-sdk, draft-07).

The schema folder (``../shared/grafana-jsonschema`` by default) holds one file per
kind: ``dashboard.jsonschema.json`` (``$ref`` to ``#/definitions/Dashboard``,
strict) and one per panel plugin (``timeseries.jsonschema.json``, ...), which has
no root ``$ref`` but ``definitions.Options`` (the panel's ``options``) and, for
some, ``definitions.FieldConfig`` (the panel's ``fieldConfig.defaults.custom``).
Every ``$ref`` is local to its file (``#/definitions/...``), so each definition is
checked with a validator rooted in its own file.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError, best_match

from models.shared_data import shared_dir

DEFAULT_SCHEMA_DIR = shared_dir() / "grafana-jsonschema"
# panel "type" -> schema file stem where the two differ
PANEL_SCHEMA_FILES = {"status-history": "statushistory", "state-timeline": "statetimeline"}


def schema_dir() -> Path:
    return Path(os.environ.get("GRAFANA_JSONSCHEMA_DIR", DEFAULT_SCHEMA_DIR))


@lru_cache(maxsize=None)
def _load(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _validator(stem: str, definition: str | None, directory: Path) -> Draft7Validator | None:
    path = directory / f"{stem}.jsonschema.json"
    if not path.is_file():
        return None
    doc = _load(str(path))
    if definition is None:
        return Draft7Validator(doc)
    if definition not in doc.get("definitions", {}):
        return None
    return Draft7Validator({"$schema": doc.get("$schema"), "definitions": doc["definitions"],
                            "allOf": [{"$ref": f"#/definitions/{definition}"}]})


def _errors(validator: Draft7Validator | None, instance: Any, where: str) -> list[str]:
    if validator is None:
        return []
    return [_describe(e, where)
            for e in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))]


def _describe(error: ValidationError, where: str) -> str:
    """Path and message. For oneOf/anyOf (a panel is a Panel or a RowPanel) the errors of the branch
    that got deepest into the instance, i.e. the alternative the author meant, not the whole instance."""
    path = "/".join(map(str, error.absolute_path))
    if not error.context:
        return f"{where}/{path}: {error.message[:300]}"
    branches: dict[int, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.schema_path[0] if sub.schema_path else 0, []).append(sub)
    meant = max(branches.values(), key=lambda errs: (max(len(e.absolute_path) for e in errs), -len(errs)))
    inner = best_match(meant)
    inner_path = "/".join(map(str, inner.absolute_path))
    return f"{where}/{inner_path or path}: {inner.message[:300]} (in {error.validator})"


def panel_schema_stem(panel_type: str) -> str:
    return PANEL_SCHEMA_FILES.get(panel_type, panel_type)


def has_panel_schema(panel_type: str, directory: Path | None = None) -> bool:
    return (directory or schema_dir()).joinpath(f"{panel_schema_stem(panel_type)}.jsonschema.json").is_file()


def validate_panel(panel: dict[str, Any], where: str = "panel", directory: Path | None = None) -> list[str]:
    """Errors of a panel's ``options`` and ``fieldConfig.defaults.custom`` against its plugin's schema."""
    directory = directory or schema_dir()
    stem = panel_schema_stem(panel.get("type", ""))
    errors = _errors(_validator(stem, "Options", directory), panel.get("options", {}), f"{where}/options")
    custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom")
    if custom is not None:
        errors += _errors(_validator(stem, "FieldConfig", directory), custom, f"{where}/fieldConfig/defaults/custom")
    return errors


def validate_dashboard(board: dict[str, Any], directory: Path | None = None) -> list[str]:
    """Every schema error of a dashboard and of its panels (empty list: valid)."""
    directory = directory or schema_dir()
    dash = _validator("dashboard", None, directory)
    if dash is None:
        raise FileNotFoundError(f"no dashboard.jsonschema.json in {directory} (set GRAFANA_JSONSCHEMA_DIR)")
    errors = _errors(dash, board, "dashboard")
    stack = [(f"panels/{i}", p) for i, p in enumerate(board.get("panels", []))]
    while stack:
        where, panel = stack.pop(0)
        errors += validate_panel(panel, where, directory)
        stack += [(f"{where}/panels/{i}", p) for i, p in enumerate(panel.get("panels", []))]
    return errors
