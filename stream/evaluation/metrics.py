"""AID performance measures over many scenarios, with 95 % confidence intervals.

* detection rate DR = hits / true incidents, Wilson score interval;
* false-alarm rate per decision = false alarms / segment-interval decisions under
  non-incident conditions, Wilson interval;
* false alarms per hour per 100 km of roadway, percentile bootstrap over scenarios
  (ratio of sums, so long and short scenarios weigh by their exposure);
* mean and 90th-percentile time to detect, mean time to clear (detected clear minus
  true end; negative = the alarm dropped before the road was clear), percentile
  bootstrap over detected incidents.

Bootstraps use a fixed seed: the same results give the same intervals.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

from stream.evaluation.runner import ScenarioResult

Z95 = 1.959964
N_BOOT = 2000
BOOT_SEED = 20240601


def wilson_ci(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k/n (NaN, NaN when n = 0)."""
    if n <= 0:
        return (math.nan, math.nan)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_ci(values: Sequence[float], stat: Callable[[np.ndarray], float] = np.mean, n_boot: int = N_BOOT,
                 seed: int = BOOT_SEED, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat`` (NaN, NaN without values)."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return (math.nan, math.nan)
    if len(x) == 1:
        return (float(stat(x)), float(stat(x)))
    rng = np.random.default_rng(seed)
    samples = x[rng.integers(0, len(x), size=(n_boot, len(x)))]
    stats = np.apply_along_axis(stat, 1, samples)
    a = (1 - level) / 2
    return (float(np.quantile(stats, a)), float(np.quantile(stats, 1 - a)))


def ratio_bootstrap_ci(num: Sequence[float], den: Sequence[float], n_boot: int = N_BOOT, seed: int = BOOT_SEED,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap of sum(num) / sum(den), resampling units (scenarios) together."""
    x, y = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    if len(x) == 0 or y.sum() <= 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    sx, sy = x[idx].sum(axis=1), y[idx].sum(axis=1)
    r = np.where(sy > 0, sx / np.where(sy > 0, sy, 1), np.nan)
    a = (1 - level) / 2
    return (float(np.nanquantile(r, a)), float(np.nanquantile(r, 1 - a)))


def _p90(x: np.ndarray) -> float:
    return float(np.percentile(x, 90))


@dataclass(frozen=True)
class AlgorithmSummary:
    """One algorithm over a set of scenarios."""

    algorithm: str
    scenarios: int
    true_incidents: int
    hits: int
    detection_rate: float
    detection_rate_ci: tuple[float, float]
    false_alarms: int
    false_alarms_incident_free: int  # on the scenarios without any incident
    non_incident_decisions: int
    far_per_decision: float
    far_per_decision_ci: tuple[float, float]
    exposure_h_100km: float
    far_per_h_100km: float
    far_per_h_100km_ci: tuple[float, float]
    mean_ttd_s: float
    mean_ttd_ci: tuple[float, float]
    p90_ttd_s: float
    p90_ttd_ci: tuple[float, float]
    mean_ttc_s: float
    mean_ttc_ci: tuple[float, float]

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def summarise(results: Sequence[ScenarioResult], algorithms: Sequence[str]) -> list[AlgorithmSummary]:
    """Pool the scenarios per algorithm."""
    out = []
    for a_idx, algo in enumerate(algorithms):
        seed = BOOT_SEED + a_idx
        oc = [r.outcomes[algo] for r in results]
        n_true = sum(len(r.truths) for r in results)
        hits = sum(o.hits for o in oc)
        fa = sum(o.false_alarms for o in oc)
        decisions = sum(r.non_incident_decisions for r in results)
        exposure = [r.hours * r.roadway_km / 100 for r in results]
        ttd = [t for o in oc for t in o.time_to_detect_s]
        ttc = [t for o in oc for t in o.time_to_clear_s]
        out.append(AlgorithmSummary(
            algorithm=algo, scenarios=len(results), true_incidents=n_true, hits=hits,
            detection_rate=hits / n_true if n_true else math.nan, detection_rate_ci=wilson_ci(hits, n_true),
            false_alarms=fa,
            false_alarms_incident_free=sum(o.false_alarms for r, o in zip(results, oc) if not r.truths),
            non_incident_decisions=decisions,
            far_per_decision=fa / decisions if decisions else math.nan,
            far_per_decision_ci=wilson_ci(fa, decisions),
            exposure_h_100km=float(sum(exposure)),
            far_per_h_100km=fa / sum(exposure) if sum(exposure) else math.nan,
            far_per_h_100km_ci=ratio_bootstrap_ci([o.false_alarms for o in oc], exposure, seed=seed),
            mean_ttd_s=float(np.mean(ttd)) if ttd else math.nan, mean_ttd_ci=bootstrap_ci(ttd, seed=seed),
            p90_ttd_s=_p90(np.asarray(ttd)) if ttd else math.nan, p90_ttd_ci=bootstrap_ci(ttd, _p90, seed=seed),
            mean_ttc_s=float(np.mean(ttc)) if ttc else math.nan, mean_ttc_ci=bootstrap_ci(ttc, seed=seed)))
    return out
