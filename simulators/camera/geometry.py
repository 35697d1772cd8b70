"""Pinhole camera geometry: where a simulated camera stands and how it projects the road.

The renderer needs the full 3x4 projection (vehicles have height); vision only
gets the ground-plane homography (columns 0, 1, 3 of it), which is what a real
operator calibrates from lane markings.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.camera import CameraCalibration


@dataclass(frozen=True, slots=True)
class CameraPose:
    """A pinhole camera above the road. Angles in degrees, positions in road metres."""

    x_m: float
    y_m: float
    height_m: float
    pitch_deg: float  # downwards from horizontal; 90 = straight down
    yaw_deg: float = 0.0  # towards +y (left) from the direction of travel
    hfov_deg: float = 50.0

    def projection(self, width_px: int, height_px: int) -> np.ndarray:
        """3x4 matrix mapping homogeneous road points (x, y, z, 1) in metres to pixels."""
        th, ps = np.radians(self.pitch_deg), np.radians(self.yaw_deg)
        fwd = np.array([np.cos(th) * np.cos(ps), np.cos(th) * np.sin(ps), -np.sin(th)])
        if abs(self.pitch_deg) >= 89.9:  # straight down: image right = -y, image down = -x ... choose road along image x
            right = np.array([1.0, 0.0, 0.0])
            fwd = np.array([0.0, 0.0, -1.0])
        else:
            right = np.cross(fwd, [0.0, 0.0, 1.0])
            right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        rot = np.vstack([right, down, fwd])
        f = (width_px / 2) / np.tan(np.radians(self.hfov_deg) / 2)
        k = np.array([[f, 0, width_px / 2], [0, f, height_px / 2], [0, 0, 1.0]])
        centre = np.array([self.x_m, self.y_m, self.height_m])
        return k @ np.hstack([rot, (-rot @ centre)[:, None]])


def ground_homography(projection: np.ndarray) -> np.ndarray:
    """3x3 homography road metres (z = 0) -> pixels from a 3x4 projection."""
    h = projection[:, [0, 1, 3]]
    return h / h[2, 2]


def project(projection: np.ndarray, points_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (n,2) and depth (n,) of 3-D road points (n,3)."""
    p = np.asarray(points_m, dtype=np.float64).reshape(-1, 3)
    q = p @ projection[:, :3].T + projection[:, 3]
    return q[:, :2] / q[:, 2:3], q[:, 2]


def oblique_pose(n_lanes: int, lane_width_m: float = 3.6) -> CameraPose:
    """An expressway pole camera: 12 m up on the left shoulder, looking downstream over the lanes."""
    return CameraPose(x_m=0.0, y_m=-2.5, height_m=12.0, pitch_deg=22.0,
                      yaw_deg=np.degrees(np.arctan2(n_lanes * lane_width_m / 2 + 2.5, 45.0)), hfov_deg=52.0)


def top_down_pose(n_lanes: int, lane_width_m: float = 3.6, centre_x_m: float = 40.0) -> CameraPose:
    """A camera looking straight down from a gantry or overpass, road along the image x axis."""
    return CameraPose(x_m=centre_x_m, y_m=n_lanes * lane_width_m / 2, height_m=60.0, pitch_deg=90.0,
                      hfov_deg=70.0)


def make_calibration(pose: CameraPose, width_px: int, height_px: int, n_lanes: int,
                     lane_width_m: float = 3.6) -> CameraCalibration:
    """The calibration vision gets for a simulated camera, with a view range that fits the frame."""
    h = ground_homography(pose.projection(width_px, height_px))
    road_w = n_lanes * lane_width_m
    xs = np.arange(0.0, 400.0, 1.0)
    visible = []
    for x in xs:
        px = (h @ np.array([[x, x], [0.0, road_w], [1.0, 1.0]]))
        if np.any(px[2] <= 0):
            continue
        uv = px[:2] / px[2]
        if np.all((uv[0] >= 0) & (uv[0] < width_px) & (uv[1] >= 0) & (uv[1] < height_px)):
            visible.append(x)
    if not visible:
        raise ValueError("the camera does not see the whole road width anywhere")
    start, end = float(min(visible)), float(max(visible))
    if pose.pitch_deg < 89.9:
        end = min(end, start + 52.0)  # far away vehicles shrink to a few pixels: do not watch them
    start += 2.0
    end -= 2.0
    return CameraCalibration(tuple(float(v) for v in h.ravel()), width_px, height_px, n_lanes, lane_width_m,
                             start, end, round((start + end) / 2 if pose.pitch_deg >= 89.9 else start + (end - start) * 0.4, 1))
