"""Where the team's shared, read-only material lives (real data sets, Grafana's schemas).

The checkout sits next to a ``shared/`` folder (``../shared`` from the repository
root), on developers' machines and in CI alike; ``ROADPULSE_SHARED`` overrides it.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """``$ROADPULSE_SHARED``, else ``../shared`` beside the checkout, else ``/work/shared``."""
    env = os.environ.get("ROADPULSE_SHARED")
    if env:
        return Path(env)
    beside = REPO_ROOT.parent / "shared"
    return beside if beside.exists() else Path("/work/shared")
