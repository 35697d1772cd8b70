"""Operators' snapshot view: a frame with vehicle boxes, lane lines and the count line drawn on it."""
from __future__ import annotations

import cv2
import numpy as np

from models.camera import CameraCalibration


def annotate(frame: np.ndarray, detections: np.ndarray, calibration: CameraCalibration | None = None,
             stopped: np.ndarray | None = None, label: str | None = None) -> np.ndarray:
    """A BGR copy of ``frame`` with boxes (n,4 xywh, frame pixels) and, given a calibration, the road overlay.

    Stopped vehicles (``stopped`` mask) are boxed in red, others in green; the
    count line is yellow, the watched stretch's edges blue. ``frame`` may be grey.
    """
    img = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame.copy()
    if calibration is not None:
        s = img.shape[1] / calibration.width_px
        cal = calibration.scaled(s) if abs(s - 1.0) > 1e-9 else calibration
        w = cal.road_width_m
        for x, colour in ((cal.view_start_m, (255, 128, 0)), (cal.view_end_m, (255, 128, 0)),
                          (cal.count_line_m, (0, 255, 255))):
            p = np.round(cal.to_px(np.array([[x, 0.0], [x, w]]))).astype(int)
            cv2.line(img, tuple(p[0]), tuple(p[1]), colour, 2 if x == cal.count_line_m else 1, cv2.LINE_AA)
        for k in range(cal.n_lanes + 1):
            p = np.round(cal.to_px(np.array([[cal.view_start_m, k * cal.lane_width_m],
                                             [cal.view_end_m, k * cal.lane_width_m]]))).astype(int)
            cv2.line(img, tuple(p[0]), tuple(p[1]), (255, 128, 0), 1, cv2.LINE_AA)
    boxes = np.asarray(detections, dtype=np.float64).reshape(-1, 4)
    flags = np.zeros(len(boxes), bool) if stopped is None else np.asarray(stopped, bool)
    for (x, y, bw, bh), is_stopped in zip(boxes, flags, strict=False):
        colour = (0, 0, 255) if is_stopped else (0, 255, 0)
        cv2.rectangle(img, (int(x), int(y)), (int(x + bw), int(y + bh)), colour, 2 if is_stopped else 1)
    if label:
        cv2.putText(img, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return img
