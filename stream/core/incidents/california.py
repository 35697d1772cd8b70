"""California incident detection algorithms #7 and #8 (TSC, Payne & Tignor 1978).

Both compare the occupancy of adjacent stations, upstream i and downstream i+1,
once per interval (1-min data is what the thresholds were tuned for):

* OCCDF  = OCC_i(t) - OCC_i+1(t)                         spatial difference, %
* OCCRDF = OCCDF / OCC_i(t)                              relative spatial difference
* DOCCTD = (OCC_i+1(t-2) - OCC_i+1(t)) / OCC_i+1(t-2)     relative drop downstream over 2 intervals
* DOCC   = OCC_i+1(t)                                     downstream occupancy, %

#7: free -> tentative when OCCDF >= T1, OCCRDF >= T2 and the third test passes
(classic: DOCC < T3 = 20 %; "modified": DOCCTD >= 0.3); tentative -> confirmed
when OCCRDF >= T2 again; confirmed/continuing -> continuing while OCCRDF >= T2;
otherwise back to free.

#8 adds compression-wave suppression: a wave is DOCC >= 30 % with DOCCTD < -0.4
(sharp downstream rise). It starts CW1; the pair then spends CW1..CW5 without
running the #7 test (each of them restarts at CW1 if another wave is seen), and
only after CW5 returns to free. Incident states decide as in the reference
implementation (OTC ``CaliforniaAlgorithm8``): tentative/confirmed with OCCRDF >=
T2 persist; otherwise DOCCTD >= -0.4 -> free; else DOCC >= 30 -> confirmed goes
free and tentative goes to CW1; else free. The #7 test inside #8 uses DOCCTD >= T3.

Alarm = confirmed or continuing. Missing occupancy (NaN) at either station of a
pair holds that pair's state for the interval. The algorithm makes no decision
until it has ``lag_intervals`` intervals of history.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from models.network import Roadway
from models.records import FlowWindowBatch
from stream.core.incidents.base import Alarms, check_station_arrays, run_batch

FREE, TENTATIVE, CONFIRMED, CONTINUING, WAVE = 0, 1, 2, 3, 4
STATE_NAMES = ("free", "tentative", "confirmed", "continuing", "compression_wave")


@dataclass(frozen=True)
class CaliforniaConfig:
    variant: int = 8  # 7 or 8
    occdf_pct: float = 8.0  # T1
    occrdf: float = 0.5  # T2
    docctd: float = 0.3  # T3 as a DOCCTD test (#8, modified #7)
    docc_pct: float = 20.0  # T3 of classic #7: DOCC < this
    third_test: str = "docc"  # #7 only: "docc" (classic) or "docctd" (modified #7)
    wave_docc_pct: float = 30.0  # #8 wave: DOCC >= this ...
    wave_docctd: float = -0.4  # ... and DOCCTD < this
    wave_intervals: int = 5  # CW1..CW5
    lag_intervals: int = 2  # the t-2 of DOCCTD

    def __post_init__(self) -> None:
        if self.variant not in (7, 8):
            raise ValueError(f"variant must be 7 or 8, got {self.variant}")
        if self.third_test not in ("docc", "docctd"):
            raise ValueError(f"third_test must be 'docc' or 'docctd', got {self.third_test!r}")
        if self.lag_intervals < 1 or self.wave_intervals < 1:
            raise ValueError("lag_intervals and wave_intervals must be >= 1")


def california_features(occ_up: np.ndarray, occ_down: np.ndarray, occ_down_lag: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """OCCDF, OCCRDF, DOCCTD, DOCC per pair (0 for the ratios whose denominator is not positive)."""
    occdf = occ_up - occ_down
    with np.errstate(invalid="ignore", divide="ignore"):
        occrdf = np.where(occ_up > 0, occdf / occ_up, 0.0)
        docctd = np.where(occ_down_lag > 0, (occ_down_lag - occ_down) / occ_down_lag, 0.0)
    return occdf, occrdf, docctd, occ_down


class CaliforniaDetector:
    """California #7/#8 for the station pairs of one roadway, vectorised over the pairs."""

    def __init__(self, n_stations: int, config: CaliforniaConfig | None = None,
                 resume_state: dict[str, Any] | None = None) -> None:
        self.config = config or CaliforniaConfig()
        self.name = f"california{self.config.variant}"
        self.n_stations = n_stations
        n_pairs = max(n_stations - 1, 0)
        self.state = np.zeros(n_pairs, dtype=np.int8)
        self.wave_age = np.zeros(n_pairs, dtype=np.int8)  # 1..wave_intervals while in WAVE
        self.confidence = np.zeros(n_pairs)
        self.severity = np.zeros(n_pairs, dtype=np.int8)
        self.history: list[np.ndarray] = []  # last lag_intervals occupancy arrays, oldest first
        self.last_window_start_ms: int | None = None
        if resume_state:
            self._restore(resume_state)

    # ---- decision ----------------------------------------------------------
    def update(self, window_start_ms: int, occupancy_pct: np.ndarray, speed_kmh: np.ndarray | None = None,
               flow_veh_h: np.ndarray | None = None) -> Alarms:
        """Decide one interval; only occupancy is used (speed and flow are accepted for the protocol)."""
        (occ,) = check_station_arrays(self.n_stations, occupancy_pct)
        if self.last_window_start_ms is not None and window_start_ms <= self.last_window_start_ms:
            raise ValueError(f"window {window_start_ms} is not after the last one ({self.last_window_start_ms})")
        self.last_window_start_ms = int(window_start_ms)
        cfg = self.config
        if len(self.history) >= cfg.lag_intervals:
            lag = self.history[-cfg.lag_intervals]
            occdf, occrdf, docctd, docc = california_features(occ[:-1], occ[1:], lag[1:])
            valid = np.isfinite(occ[:-1]) & np.isfinite(occ[1:])
            new = self._step7(occdf, occrdf, docctd, docc) if cfg.variant == 7 else \
                self._step8(occdf, occrdf, docctd, docc)
            new_state, new_age = new
            self.state = np.where(valid, new_state, self.state).astype(np.int8)
            self.wave_age = np.where(valid, new_age, self.wave_age).astype(np.int8)
            conf = np.clip(occrdf, 0.0, 1.0)
            alarmed = self.alarm
            conf = np.where(alarmed, conf, np.where(self.state == TENTATIVE, 0.5 * conf, 0.0))
            sev = np.where(alarmed, 1 + (occdf >= 15).astype(np.int8) + (occdf >= 30).astype(np.int8), 0)
            self.confidence = np.where(valid, conf, self.confidence)
            self.severity = np.where(valid, sev, self.severity).astype(np.int8)
        self.history.append(occ.copy())
        del self.history[:-cfg.lag_intervals]
        return Alarms(int(window_start_ms), self.alarm.copy(), self.confidence.copy(), self.severity.copy())

    def update_batch(self, stations: FlowWindowBatch, roadway: Roadway) -> Alarms:
        return run_batch(self, stations, roadway)

    @property
    def alarm(self) -> np.ndarray:
        return (self.state == CONFIRMED) | (self.state == CONTINUING)

    def _test7(self, occdf: np.ndarray, occrdf: np.ndarray, docctd: np.ndarray, docc: np.ndarray) -> np.ndarray:
        cfg = self.config
        third = (docc < cfg.docc_pct) if (cfg.variant == 7 and cfg.third_test == "docc") else (docctd >= cfg.docctd)
        return (occdf >= cfg.occdf_pct) & (occrdf >= cfg.occrdf) & third

    def _step7(self, occdf: np.ndarray, occrdf: np.ndarray, docctd: np.ndarray, docc: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        s = self.state
        persist = occrdf >= self.config.occrdf
        new = np.full_like(s, FREE)
        new[(s == FREE) & self._test7(occdf, occrdf, docctd, docc)] = TENTATIVE
        new[(s == TENTATIVE) & persist] = CONFIRMED
        new[((s == CONFIRMED) | (s == CONTINUING)) & persist] = CONTINUING
        return new, np.zeros_like(self.wave_age)

    def _step8(self, occdf: np.ndarray, occrdf: np.ndarray, docctd: np.ndarray, docc: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        s, age = self.state, self.wave_age
        new = np.full_like(s, FREE)
        new_age = np.zeros_like(age)
        in_incident = (s == TENTATIVE) | (s == CONFIRMED) | (s == CONTINUING)
        persist = occrdf >= cfg.occrdf
        sharp_rise = docctd < cfg.wave_docctd
        high = docc >= cfg.wave_docc_pct
        # incident states
        new[in_incident & persist & (s == TENTATIVE)] = CONFIRMED
        new[in_incident & persist & (s != TENTATIVE)] = CONTINUING
        to_wave = in_incident & ~persist & sharp_rise & high & (s == TENTATIVE)
        # not in an incident state: a new wave restarts CW1, a running wave ages, else the #7 test
        to_wave |= ~in_incident & high & sharp_rise
        ageing = ~in_incident & (s == WAVE) & ~(high & sharp_rise) & (age < cfg.wave_intervals)
        test = ~in_incident & (s == FREE) & ~high
        new[test & self._test7(occdf, occrdf, docctd, docc)] = TENTATIVE
        new[to_wave] = WAVE
        new_age[to_wave] = 1
        new[ageing] = WAVE
        new_age[ageing] = age[ageing] + 1
        return new, new_age

    # ---- state -------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "n_stations": self.n_stations,
            "state": self.state.tolist(),
            "wave_age": self.wave_age.tolist(),
            "confidence": self.confidence.tolist(),
            "severity": self.severity.tolist(),
            "history": [[None if np.isnan(v) else v for v in h.tolist()] for h in self.history],  # JSON-safe
            "last_window_start_ms": self.last_window_start_ms,
        }

    def _restore(self, s: dict[str, Any]) -> None:
        if s["n_stations"] != self.n_stations:
            raise ValueError(f"snapshot is for {s['n_stations']} stations, detector has {self.n_stations}")
        self.config = CaliforniaConfig(**s["config"])
        self.name = f"california{self.config.variant}"
        self.state = np.asarray(s["state"], dtype=np.int8)
        self.wave_age = np.asarray(s["wave_age"], dtype=np.int8)
        self.confidence = np.asarray(s["confidence"], dtype=np.float64)
        self.severity = np.asarray(s["severity"], dtype=np.int8)
        self.history = [np.array([np.nan if v is None else v for v in h], dtype=np.float64) for h in s["history"]]
        self.last_window_start_ms = s["last_window_start_ms"]
