"""Score detected incidents against ground truth, the way the AID literature does.

A detection (an ``open`` event) is a *hit* for a true incident when it is on the
same roadway, within ``max_distance_km`` of the true location, and opens
between the true start and the true end plus ``grace_ms``. The first such open
sets the time to detect. Opens that match no true incident are false alarms;
true incidents with no matching open are misses.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Protocol

import numpy as np

from models.records import Incident


class TrueIncident(Protocol):
    incident_id: str
    corridor: str
    direction: str
    location_km: float
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class Match:
    truth_id: str
    detected_id: str
    time_to_detect_s: float


@dataclass(frozen=True)
class Score:
    algorithm: str
    n_true: int
    hits: int
    misses: int
    false_alarms: int
    matches: tuple[Match, ...] = field(default=())
    false_alarm_ids: tuple[str, ...] = field(default=())

    @property
    def detection_rate(self) -> float:
        return self.hits / self.n_true if self.n_true else float("nan")

    @property
    def mean_time_to_detect_s(self) -> float:
        return float(np.mean([m.time_to_detect_s for m in self.matches])) if self.matches else float("nan")

    @property
    def p90_time_to_detect_s(self) -> float:
        return float(np.percentile([m.time_to_detect_s for m in self.matches], 90)) if self.matches else float("nan")

    def to_dict(self) -> dict[str, object]:
        return {
            "algorithm": self.algorithm, "true_incidents": self.n_true, "hits": self.hits, "misses": self.misses,
            "false_alarms": self.false_alarms, "detection_rate": self.detection_rate,
            "mean_time_to_detect_s": self.mean_time_to_detect_s, "p90_time_to_detect_s": self.p90_time_to_detect_s,
        }


def score_incidents(algorithm: str, detected: Iterable[Incident], truths: Iterable[TrueIncident],
                    max_distance_km: float = 1.5, grace_ms: int = 5 * 60_000) -> Score:
    """Match the ``open`` events of one algorithm to true incidents."""
    opens = sorted((i for i in detected if i.status == "open" and i.algorithm == algorithm),
                   key=lambda i: i.event_ms)
    truths = list(truths)
    used: set[str] = set()
    matches: list[Match] = []
    for truth in sorted(truths, key=lambda t: t.start_ms):
        for inc in opens:
            if inc.incident_id in used:
                continue
            if (inc.corridor, inc.direction) != (truth.corridor, truth.direction):
                continue
            if abs(inc.location_km - truth.location_km) > max_distance_km:
                continue
            if not truth.start_ms <= inc.event_ms <= truth.end_ms + grace_ms:
                continue
            used.add(inc.incident_id)
            matches.append(Match(truth.incident_id, inc.incident_id, (inc.event_ms - truth.start_ms) / 1000.0))
            break
    # further opens on the same true incident (e.g. a second segment of its queue) are not false alarms
    for inc in opens:
        if inc.incident_id in used:
            continue
        for truth in truths:
            if ((inc.corridor, inc.direction) == (truth.corridor, truth.direction)
                    and abs(inc.location_km - truth.location_km) <= max_distance_km * 2
                    and truth.start_ms <= inc.event_ms <= truth.end_ms + grace_ms):
                used.add(inc.incident_id)
                break
    false_ids = tuple(i.incident_id for i in opens if i.incident_id not in used)
    hits = len(matches)
    return Score(algorithm, len(truths), hits, len(truths) - hits, len(false_ids), tuple(matches), false_ids)
