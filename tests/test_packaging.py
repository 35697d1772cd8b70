"""pyproject.toml lists every package on disk, so a wheel never ships without one."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP = ("models", "simulators", "stream", "ingest", "dashboards", "roadpulse")


def test_every_package_on_disk_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in TOP for init in (ROOT / top).rglob("__init__.py")
    }
    assert on_disk - listed == set(), "packages missing from pyproject.toml"


def test_readme_starts_with_the_two_setup_commands():
    head = (ROOT / "README.md").read_text().split("## ", 1)[0]
    assert "scripts/run.sh" in head and "scripts/test.sh" in head
    ci = (ROOT / ".ci/run").read_text()
    assert "scripts/test.sh" in ci
