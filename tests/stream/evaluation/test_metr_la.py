"""The METR-LA week (real LA speeds, /work/shared/data/metr-la-week) through the pipeline."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from roadpulse.evaluate_cli import main
from stream.evaluation.metr_la import DEFAULT_DIR, MetrLaDataError, build_network, greedy_chains, load, pseudo_readings

ALGOS = ("california7", "california8", "statistical")


def _data_dir() -> Path:
    if not (DEFAULT_DIR / "los_speed.csv").is_file():
        pytest.fail(f"METR-LA week missing at {DEFAULT_DIR}: these tests read the shared data set "
                    "(see /work/shared/data/README.md)")
    return DEFAULT_DIR


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("metr")
    assert main(["metr-la", "--data", str(_data_dir()), "--out", str(out)]) == 0
    return out, json.loads((out / "metr_la.json").read_text())


def test_finite_alarm_counts_per_algorithm(run):
    out, rep = run
    rows = {r["algorithm"]: r for r in rep["algorithms"]}
    assert set(rows) == set(ALGOS)
    for r in rows.values():
        assert r["alarms"] == r["alarms_weekdays"] + r["alarms_weekend"] > 0
        for key in ("per_sensor_day_weekdays", "per_sensor_day_weekend"):
            assert math.isfinite(r[key]) and 0 < r[key] < 10
        assert sum(r["by_day"].values()) == r["alarms"] and len(r["by_day"]) == 7
    # California #8's compression-wave check only removes alarms #7 would raise
    assert rows["california8"]["alarms"] <= rows["california7"]["alarms"]
    md = (out / "metr_la.md").read_text()
    assert "Greenshields" in md and "pseudo-occupancy" in md.lower()  # the assumption is stated


def test_the_week_is_read_as_documented(run):
    _, rep = run
    f = rep["facts"]
    assert (f["sensors"], f["rows"]) == (207, 2016)
    assert f["weekend"] == ["2012-03-03", "2012-03-04"] and len(f["weekdays"]) == 5
    assert 0.04 < f["share_below_30_mph"] < 0.08  # "6 % of readings are under 30 mph" (data README)
    assert f["chained_sensors"] + f["singletons"] == 207


def test_chains_cover_every_sensor_once():
    data = load(_data_dir())
    chains = greedy_chains(data.adjacency)
    flat = [s for c in chains for s in c]
    assert sorted(flat) == list(range(207))
    for c in chains:  # consecutive sensors are neighbours in the adjacency
        assert all(data.adjacency[a, b] > 0 for a, b in zip(c, c[1:]))
    net = build_network(data)
    assert net.n_detectors == 207 and set(net.detector_ids) == set(data.sensor_ids)


def test_pseudo_readings_follow_the_fundamental_diagram():
    count, occ = pseudo_readings(np.array([110.0, 55.0, 5.0, np.nan]), np.array([110.0, 110.0, 110.0, 110.0]))
    assert occ[0] == 0.0 and occ[1] < occ[2] <= 80.4 and math.isnan(occ[3])
    assert count[0] >= 1 and count[3] == 0  # a speed always keeps a count, so the pipeline keeps it


def test_missing_data_fails_clearly(tmp_path):
    with pytest.raises(MetrLaDataError, match="los_speed.csv"):
        load(tmp_path)
