"""`roadpulse evaluate incidents` on two one-hour CTM scenarios (quick mode), end to end.

Asserts what a reader of the report relies on: every algorithm present with sane
numbers, the staged incidents found by the statistical detector, intervals that
contain their estimate, the same report for the same seed, and the files written.
"""
from __future__ import annotations

import json
import math

import pytest

from roadpulse.evaluate_cli import main
from stream.evaluation.metrics import bootstrap_ci, ratio_bootstrap_ci, wilson_ci
from stream.evaluation.scenarios import TUNED_CORRIDORS, default_scenarios

ALGOS = ("california7", "california8", "statistical")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    assert main(["incidents", "--quick", "--scenarios", "2", "--seed", "1000", "--out", str(out),
                 "--workers", "2"]) == 0
    return out, json.loads((out / "report.json").read_text())


def test_report_has_every_algorithm_with_sane_fields(report):
    _, rep = report
    rows = {r["algorithm"]: r for r in rep["summary"]["all scenarios"]}
    assert set(rows) == set(ALGOS)
    for r in rows.values():
        assert r["true_incidents"] == 2 and 0 <= r["hits"] <= 2
        assert 0.0 <= r["detection_rate"] <= 1.0
        lo, hi = r["detection_rate_ci"]
        assert 0.0 <= lo <= r["detection_rate"] <= hi <= 1.0
        assert r["non_incident_decisions"] > 1000 and r["false_alarms"] >= 0
        assert r["far_per_decision"] == pytest.approx(r["false_alarms"] / r["non_incident_decisions"])
        assert r["far_per_h_100km"] == pytest.approx(r["false_alarms"] / r["exposure_h_100km"])
        if r["hits"]:
            assert 0 <= r["mean_ttd_s"] <= r["p90_ttd_s"] + 1e-9 <= 3600
            assert r["mean_ttd_ci"][0] <= r["mean_ttd_s"] <= r["mean_ttd_ci"][1]


def test_statistical_detects_the_staged_incidents(report):
    _, rep = report
    rows = {r["algorithm"]: r for r in rep["summary"]["all scenarios"]}
    assert rows["statistical"]["hits"] == 2
    assert rows["statistical"]["mean_ttd_s"] <= 600
    for sc in rep["scenarios"]:
        (inc,) = sc["incidents"]
        ours = sc["outcomes"]["statistical"]
        assert inc["incident_id"] in ours["detected_ids"]  # matched to the staged incident, not a neighbour
        assert all(-600 <= t <= 1800 for t in ours["time_to_clear_s"])


def test_held_out_and_deterministic(report, tmp_path):
    out, rep = report
    scenarios = default_scenarios(8, seed=1000)
    assert all(not set(s.roadway_keys) & {f"{c}-{d}" for c in TUNED_CORRIDORS for d in "EW"} for s in scenarios)
    assert all(s.seed >= 1000 and s.duration_s == 86_400 for s in scenarios)
    assert sum(s.incident_free for s in scenarios) == 2 and all(s.fault_fraction > 0 for s in scenarios)
    assert default_scenarios(8, seed=1000) == scenarios
    assert main(["incidents", "--quick", "--scenarios", "2", "--seed", "1000", "--out", str(tmp_path),
                 "--workers", "1", "--no-plots"]) == 0
    again = json.loads((tmp_path / "report.json").read_text())
    assert again["summary"] == rep["summary"]  # one worker or two, plots or not: the same numbers


def test_files_written(report):
    out, rep = report
    md = (out / "report.md").read_text()
    for algo in ALGOS:
        assert f"| {algo} |" in md
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert "dr_far.png" in pngs and any(p.startswith("heatmap_") for p in pngs)
    for p in pngs:
        assert (out / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert rep["command"].startswith("roadpulse evaluate incidents --scenarios 2 --seed 1000")


def test_confidence_intervals_by_hand():
    lo, hi = wilson_ci(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)  # textbook values
    assert wilson_ci(0, 50)[0] == 0.0 and wilson_ci(0, 50)[1] == pytest.approx(0.0713, abs=1e-3)
    assert all(math.isnan(v) for v in wilson_ci(0, 0))
    lo, hi = bootstrap_ci([60.0, 120.0, 180.0, 240.0])
    assert 60.0 <= lo < 150.0 < hi <= 240.0
    assert bootstrap_ci([60.0, 120.0, 180.0, 240.0]) == (lo, hi)  # fixed seed
    lo, hi = ratio_bootstrap_ci([0, 2, 1], [1.0, 1.0, 1.0])
    assert 0.0 <= lo <= 1.0 <= hi <= 2.0
