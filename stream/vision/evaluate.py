"""Scoring detections against ground-truth boxes (precision, recall, count error).

Boxes are ``(x, y, w, h)`` in pixels, as in COCO. Matching is greedy by IoU,
best pairs first, one detection per truth box: the usual detection-benchmark
rule, kept tiny so tests and benchmarks agree on the numbers they report.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def iou_matrix(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``boxes_a`` (n,4 xywh) with every box in ``boxes_b`` (m,4 xywh)."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, 0, None], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, 1, None], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def match_boxes(detected: np.ndarray, truth: np.ndarray, iou_min: float = 0.5) -> int:
    """Number of true positives: greedy one-to-one matching at IoU >= ``iou_min``."""
    if len(detected) == 0 or len(truth) == 0:
        return 0
    iou = iou_matrix(detected, truth)
    pairs = np.argwhere(iou >= iou_min)
    if len(pairs) == 0:
        return 0
    order = np.argsort(-iou[pairs[:, 0], pairs[:, 1]], kind="stable")
    used_d: set[int] = set()
    used_t: set[int] = set()
    for d, t in pairs[order]:
        if d not in used_d and t not in used_t:
            used_d.add(int(d))
            used_t.add(int(t))
    return len(used_d)


@dataclass
class DetectionScore:
    """Running totals over frames: precision, recall and per-frame count error."""

    true_positives: int = 0
    detections: int = 0
    truths: int = 0
    abs_count_error: int = 0
    frames: int = 0

    def update(self, detected: np.ndarray, truth: np.ndarray, iou_min: float = 0.5) -> None:
        self.true_positives += match_boxes(detected, truth, iou_min)
        self.detections += len(detected)
        self.truths += len(truth)
        self.abs_count_error += abs(len(detected) - len(truth))
        self.frames += 1

    @property
    def precision(self) -> float:
        return self.true_positives / self.detections if self.detections else float("nan")

    @property
    def recall(self) -> float:
        return self.true_positives / self.truths if self.truths else float("nan")

    @property
    def count_error_per_frame(self) -> float:
        """Mean absolute difference between detected and true vehicles per frame."""
        return self.abs_count_error / self.frames if self.frames else float("nan")

    @property
    def count_error_pct(self) -> float:
        """Mean per-frame count error as a share of the mean true count per frame, in %."""
        return 100.0 * self.abs_count_error / self.truths if self.truths else float("nan")

    def to_dict(self) -> dict[str, float]:
        return {"precision": round(self.precision, 3), "recall": round(self.recall, 3),
                "count_error_per_frame": round(self.count_error_per_frame, 2),
                "count_error_pct": round(self.count_error_pct, 1), "frames": self.frames}
