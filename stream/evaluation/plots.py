"""PNG figures of an evaluation (matplotlib, Agg backend: no display needed).

* a time-space speed heatmap of one roadway, true incidents drawn as boxes
  (location, start to end) and every algorithm's detections as markers at the
  time and place they opened;
* DR and false alarms per hour per 100 km per algorithm, bars with 95 % intervals.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from stream.evaluation.metrics import AlgorithmSummary  # noqa: E402
from stream.evaluation.runner import ScenarioResult  # noqa: E402

MARKERS = {"california7": ("v", "tab:orange"), "california8": ("s", "tab:purple"), "statistical": ("o", "black")}
MS_PER_H = 3_600_000


def heatmap_png(result: ScenarioResult, roadway_key: str, path: str | Path,
                algorithms: Sequence[str] = ("california7", "california8", "statistical")) -> Path:
    """Station speed over time and km for one roadway of a scenario, incidents marked."""
    grid = result.grids[roadway_key]
    t0 = int(grid.window_start_ms[0]) if len(grid.window_start_ms) else 0
    hours = (grid.window_start_ms - t0) / MS_PER_H
    fig, ax = plt.subplots(figsize=(11, 4.8), dpi=110)
    km = grid.station_km
    edges_km = np.concatenate([[km[0] - 0.25], (km[:-1] + km[1:]) / 2, [km[-1] + 0.25]])
    dt = (hours[1] - hours[0]) if len(hours) > 1 else 1 / 60
    edges_h = np.concatenate([hours, [hours[-1] + dt]]) if len(hours) else np.array([0.0, dt])
    mesh = ax.pcolormesh(edges_h, edges_km, np.ma.masked_invalid(grid.speed_kmh.T), cmap="RdYlGn", vmin=0,
                         vmax=110, shading="flat")
    fig.colorbar(mesh, ax=ax, label="station speed (km/h)")
    for t in result.truths:
        if t.roadway_key != roadway_key:
            continue
        x0, x1 = (t.start_ms - t0) / MS_PER_H, (t.end_ms - t0) / MS_PER_H
        ax.add_patch(plt.Rectangle((x0, t.location_km - 0.15), x1 - x0, 0.3, fill=False, ec="blue", lw=2))
        ax.annotate(f"{t.incident_id} ({t.lanes_blocked} lane{'s' if t.lanes_blocked > 1 else ''})",
                    (x0, t.location_km + 0.25), color="blue", fontsize=8)
    corridor, direction = roadway_key.rsplit("-", 1)
    for algo in algorithms:
        marker, colour = MARKERS.get(algo, ("x", "grey"))
        opens = [e for e in result.incidents if e.algorithm == algo and e.status == "open"
                 and (e.corridor, e.direction) == (corridor, direction)]
        if opens:
            ax.scatter([(e.event_ms - t0) / MS_PER_H for e in opens], [e.location_km for e in opens],
                       marker=marker, facecolors="none" if marker != "x" else colour, edgecolors=colour,
                       s=40, lw=1.4, label=f"{algo} opens ({len(opens)})")
    ax.set_xlabel(f"hours since {np.datetime64(t0, 'ms')} UTC")
    ax.set_ylabel("km post (driving direction)")
    ax.set_title(f"{result.scenario.scenario_id}: {roadway_key} — true incidents (blue boxes) and detections")
    ax.plot([], [], color="blue", lw=2, label="true incident")
    ax.legend(loc="upper right", fontsize=8, framealpha=0.85)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


def bars_png(summaries: Sequence[AlgorithmSummary], path: str | Path, title: str = "") -> Path:
    """DR and false alarms per h per 100 km with 95 % intervals, one bar per algorithm."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    names = [s.algorithm for s in summaries]
    x = np.arange(len(names))
    colours = [MARKERS.get(n, ("x", "grey"))[1] for n in names]
    for ax, value, ci, label in (
            (ax1, [100 * s.detection_rate for s in summaries],
             [(100 * s.detection_rate_ci[0], 100 * s.detection_rate_ci[1]) for s in summaries], "detection rate (%)"),
            (ax2, [s.far_per_h_100km for s in summaries], [s.far_per_h_100km_ci for s in summaries],
             "false alarms per hour per 100 km")):
        v = np.nan_to_num(np.asarray(value, dtype=float))
        lo = np.nan_to_num(v - np.asarray([c[0] for c in ci], dtype=float))
        hi = np.nan_to_num(np.asarray([c[1] for c in ci], dtype=float) - v)
        ax.bar(x, v, color=colours, alpha=0.8, yerr=np.vstack([np.maximum(lo, 0), np.maximum(hi, 0)]), capsize=6)
        ax.set_xticks(x, names)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    ax1.set_ylim(0, 105)
    fig.suptitle(title or "incident detection: 95 % intervals (Wilson for DR, bootstrap over scenarios for FAR)")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out
