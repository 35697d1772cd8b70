"""From a foreground mask to vehicle detections, splitting blobs that hold several vehicles.

Blobs merge two ways. Side by side (adjacent lanes, or a tall vehicle's body
drawn over the next lane in an oblique view): the mask is cut along the lane
lines (known from the calibration) and the pieces that are at least a fraction
of a car's footprint become vehicles of their own, while smaller pieces stay
with their blob (a roof spilling over a line, a car half-way through a lane
change). Nose to tail (dense, slow lanes seen from above): optionally, a piece
longer along the road than ``split_length_m`` is cut into vehicle-length parts.
All geometry is in road metres through the calibration, so the same rules work
for any camera, size or view.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from models.camera import CameraCalibration

CAR_AREA_M2 = 4.5 * 1.8


@dataclass(frozen=True)
class Detections:
    """Vehicles found in one frame, at working resolution."""

    box_px: np.ndarray  # (n,4) int xywh
    ground_m: np.ndarray  # (n,2) road metres of each vehicle's ground anchor
    lane: np.ndarray  # (n,) int 1-based lane, 0 off the road

    def __len__(self) -> int:
        return len(self.box_px)

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.empty((0, 4), np.int64), np.empty((0, 2)), np.empty(0, np.int64))


class BlobDetector:
    """Turns foreground masks into vehicle detections for one calibrated camera (working resolution)."""

    def __init__(self, calibration: CameraCalibration, min_piece_frac: float = 0.35, min_blob_frac: float = 0.12,
                 split_length_m: float | None = None, anchor: str = "auto", cut_lanes: bool = True,
                 margin_m: float = 1.0) -> None:
        self.cal = calibration
        self.min_piece_frac = min_piece_frac
        self.min_blob_frac = min_blob_frac
        self.split_length_m = split_length_m
        self.h_inv = np.linalg.inv(calibration.matrix)
        w, h = calibration.width_px, calibration.height_px
        self.road_mask = self._road_polygon_mask(margin_m)
        self.cut = np.zeros((h, w), np.uint8)
        if cut_lanes:
            for k in range(1, calibration.n_lanes):
                y = k * calibration.lane_width_m
                xs = np.linspace(calibration.view_start_m - 30, calibration.view_end_m + 30, 60)
                pts = calibration.to_px(np.c_[xs, np.full_like(xs, y)])
                cv2.polylines(self.cut, [np.round(pts).astype(np.int32)], False, 255, 1)
        self.not_cut = cv2.bitwise_not(self.cut)
        if anchor == "auto":  # strong perspective = oblique view: the blob's bottom touches the road
            near = self._px_per_m(np.array([[calibration.view_start_m, calibration.road_width_m / 2]]))[0]
            far = self._px_per_m(np.array([[calibration.view_end_m, calibration.road_width_m / 2]]))[0]
            anchor = "bottom" if near > 1.3 * far else "centre"
        self.anchor = anchor
        ys, xs = np.nonzero(self.road_mask)
        self.roi = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1) if len(xs) else (0, 0, w, h)
        self.road_px = max(int(np.count_nonzero(self.road_mask)), 1)

    def _road_polygon_mask(self, margin_m: float) -> np.ndarray:
        c = self.cal
        corners = np.array([[c.view_start_m, -margin_m], [c.view_end_m, -margin_m],
                            [c.view_end_m, c.road_width_m + margin_m], [c.view_start_m, c.road_width_m + margin_m]])
        mask = np.zeros((c.height_px, c.width_px), np.uint8)
        cv2.fillConvexPoly(mask, np.round(c.to_px(corners)).astype(np.int32), 255)
        return mask

    def _px_per_m(self, ground_m: np.ndarray) -> np.ndarray:
        """Square root of the pixel area of one square metre of road at each ground point."""
        g = np.asarray(ground_m, dtype=np.float64).reshape(-1, 2)
        p0 = self.cal.to_px(g)
        px = self.cal.to_px(g + [1.0, 0.0]) - p0
        py = self.cal.to_px(g + [0.0, 1.0]) - p0
        return np.sqrt(np.abs(px[:, 0] * py[:, 1] - px[:, 1] * py[:, 0]))

    def to_m(self, uv: np.ndarray) -> np.ndarray:
        q = np.asarray(uv, dtype=np.float64).reshape(-1, 2) @ self.h_inv[:, :2].T + self.h_inv[:, 2]
        return q[:, :2] / q[:, 2:3]

    def detect(self, mask: np.ndarray) -> Detections:
        """Detections in a cleaned foreground mask (0/255, working resolution)."""
        n1, lab1, st1, _ = cv2.connectedComponentsWithStatsWithAlgorithm(mask, 8, cv2.CV_32S, cv2.CCL_GRANA)
        if n1 <= 1:
            return Detections.empty()
        cut = cv2.bitwise_and(mask, self.not_cut)
        n2, lab2, st2, cen2 = cv2.connectedComponentsWithStatsWithAlgorithm(cut, 8, cv2.CV_32S, cv2.CCL_GRANA)
        # which blob (uncut) each piece came from
        idx = np.flatnonzero(lab2)
        pairs = np.unique(lab2.ravel()[idx].astype(np.int64) * n1 + lab1.ravel()[idx])
        piece, parent = pairs // n1, pairs % n1
        car_px = CAR_AREA_M2 * self._px_per_m(self.to_m(cen2[piece])) ** 2
        big = st2[piece, cv2.CC_STAT_AREA] >= self.min_piece_frac * car_px
        boxes: list[np.ndarray] = []
        for blob in np.unique(parent):
            sel = parent == blob
            pieces = piece[sel & big]
            if len(pieces) >= 2 and self.anchor == "bottom":
                pieces = self._drop_spill(st2, pieces)
            if len(pieces) >= 2:
                boxes.extend(st2[p, :4] for p in pieces)
            elif st1[blob, cv2.CC_STAT_AREA] >= self.min_blob_frac * car_px[sel].max():
                boxes.append(st1[blob, :4])
        if not boxes:
            return Detections.empty()
        box = np.array(boxes, dtype=np.int64)
        if self.split_length_m:
            box = self._split_long(box)
        return self._finish(box)

    @staticmethod
    def _drop_spill(stats: np.ndarray, pieces: np.ndarray) -> np.ndarray:
        """In an oblique view a tall body drawn over the next lane sits *above* its own piece; two vehicles
        side by side stand on the road at about the same image row. Keep pieces whose bottom is near the lowest."""
        bottom = stats[pieces, cv2.CC_STAT_TOP] + stats[pieces, cv2.CC_STAT_HEIGHT]
        height = stats[pieces, cv2.CC_STAT_HEIGHT]
        return pieces[bottom >= bottom.max() - 0.35 * height]

    def _anchor_px(self, box: np.ndarray) -> np.ndarray:
        x, y, w, h = box.T.astype(np.float64)
        if self.anchor == "bottom":
            return np.c_[x + w / 2, y + h + 0.5]  # the boundary below the last row: opening and blur erode ~1 px
        return np.c_[x + w / 2, y + h / 2]

    def _split_long(self, box: np.ndarray) -> np.ndarray:
        """Cut boxes longer along the road than ``split_length_m`` into vehicle-length parts."""
        out = []
        g = self.to_m(self._anchor_px(box))
        scale = self._px_per_m(g)
        along = self.cal.to_px(g + [1.0, 0.0]) - self.cal.to_px(g)
        horizontal = np.abs(along[:, 0]) >= np.abs(along[:, 1])
        for b, s, hor in zip(box, scale, horizontal, strict=False):
            length_m = (b[2] if hor else b[3]) / max(s, 1e-6)
            n = int(np.floor(length_m / self.split_length_m + 0.35))
            if n <= 1:
                out.append(b)
                continue
            edges = np.round(np.linspace(0, b[2] if hor else b[3], n + 1)).astype(np.int64)
            for a, e in zip(edges[:-1], edges[1:], strict=False):
                out.append(np.array([b[0] + a, b[1], e - a, b[3]]) if hor else np.array([b[0], b[1] + a, b[2], e - a]))
        return np.array(out, dtype=np.int64)

    def _finish(self, box: np.ndarray) -> Detections:
        g = self.to_m(self._anchor_px(box))
        # a vehicle cut by the edge of the watched stretch has a displaced anchor: wait until it is inside
        edge = 1.5 if self.anchor == "bottom" else 5.0
        inside = (g[:, 0] > self.cal.view_start_m + edge) & (g[:, 0] < self.cal.view_end_m - edge)
        return Detections(box[inside], g[inside], self.cal.lane_of(g[inside, 1]))
