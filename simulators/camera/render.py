"""Rendering camera frames of a road section from vehicle states.

Realism that keeps vision honest: perspective through a full pinhole
projection (vehicles are 3-D boxes, so tall ones hide what is behind and spill
over lane lines), lane markings, vehicle kinds and colours, cast shadows,
day/dusk/night lighting with headlights and tail lights, rain (streaks, wet
dark road, blur), sensor noise, slight camera shake. JPEG artefacts come from
encoding (see :func:`encode_jpeg`). All drawing is OpenCV polygon filling and
whole-image arithmetic; the only Python loop runs over visible vehicles.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from simulators.camera.geometry import project
from simulators.camera.traffic import KIND_NAMES, Vehicles

LIGHTING = ("day", "dusk", "night")
WEATHER = ("clear", "rain")


@dataclass(frozen=True, slots=True)
class Conditions:
    """Lighting and weather of a scene, plus the camera's imperfections."""

    lighting: str = "day"
    weather: str = "clear"
    noise_sigma: float = 3.0  # sensor noise, grey levels
    shake_px: float = 0.6  # standard deviation of camera shake
    jpeg_quality: int = 75

    def __post_init__(self) -> None:
        if self.lighting not in LIGHTING or self.weather not in WEATHER:
            raise ValueError(f"lighting must be one of {LIGHTING}, weather one of {WEATHER}")

    @property
    def ambient(self) -> float:
        base = {"day": 1.0, "dusk": 0.55, "night": 0.16}[self.lighting]
        return base * (0.8 if self.weather == "rain" else 1.0)

    @property
    def shadow_ratio(self) -> float | None:
        """Brightness inside a cast shadow relative to sunlit road; None = no cast shadows."""
        if self.weather == "rain" or self.lighting == "night":
            return None
        return 0.6 if self.lighting == "day" else 0.78

    @property
    def headlights(self) -> bool:
        return self.lighting != "day" or self.weather == "rain"


def encode_jpeg(image: np.ndarray, quality: int = 75) -> bytes:
    """JPEG bytes of a BGR image."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


class Renderer:
    """Draws frames for one camera (projection + size) under given conditions."""

    def __init__(self, projection: np.ndarray, width_px: int, height_px: int, n_lanes: int,
                 lane_width_m: float, conditions: Conditions, seed: int = 0) -> None:
        self.p = projection
        self.w, self.h = width_px, height_px
        self.n_lanes, self.lane_width_m = n_lanes, lane_width_m
        self.cond = conditions
        self._cam_x = float(np.linalg.lstsq(projection[:, :3], -projection[:, 3], rcond=None)[0][0])
        self.rng = np.random.default_rng(seed)
        self._shake = np.zeros(2)
        self.background = self._background()
        self._sun = np.array([1.2, -0.9])  # shadow offset per metre of height, road metres (x, y)

    # ---- background --------------------------------------------------------
    def _poly(self, pts_m: np.ndarray) -> np.ndarray | None:
        """Pixel polygon of ground points, or None when any lies behind the camera or far off the frame."""
        pts = np.hstack([pts_m, np.zeros((len(pts_m), 1))]) if pts_m.shape[1] == 2 else pts_m
        uv, depth = project(self.p, pts)
        if np.any(depth <= 0.5) or np.abs(uv).max() > 20 * max(self.w, self.h):
            return None
        return np.round(uv * 16).astype(np.int32)  # 4 fractional bits for cv2 shift=4

    def _background(self) -> np.ndarray:
        c = self.cond
        rng = np.random.default_rng(12345)
        img = np.empty((self.h, self.w, 3), np.uint8)
        img[:] = (70, 110, 90)  # verge (grass)
        tex = rng.normal(0, 10, (self.h // 4 + 1, self.w // 4 + 1)).astype(np.float32)
        tex = cv2.resize(tex, (self.w, self.h), interpolation=cv2.INTER_LINEAR)
        img = np.clip(img + tex[..., None], 0, 255).astype(np.uint8)
        road_w = self.n_lanes * self.lane_width_m
        road_grey = 100 if c.weather == "clear" else 72
        # the road as short strips, skipping those behind the camera (a single huge polygon overflows)
        self._x_strips = np.arange(-200.0, 800.0, 4.0)
        for y0, y1, colour in ((-3.5, road_w + 3.5, (150, 150, 148)), (-1.0, road_w + 1.0, (road_grey,) * 3)):
            for a in self._x_strips:
                poly = self._poly(np.array([[a, y0], [a + 4.05, y0], [a + 4.05, y1], [a, y1]]))
                if poly is not None:
                    cv2.fillConvexPoly(img, poly, colour, cv2.LINE_AA, shift=4)
        mask = cv2.inRange(img, (road_grey,) * 3, (road_grey,) * 3)
        grain = rng.normal(0, 4, (self.h, self.w)).astype(np.float32)
        img = np.clip(img + (grain * (mask > 0))[..., None], 0, 255).astype(np.uint8)
        # lane markings: solid edges, 3 m dashes every 12 m between lanes
        for k in range(self.n_lanes + 1):
            y = k * self.lane_width_m
            if k in (0, self.n_lanes):
                segs = [(a, a + 4.05) for a in self._x_strips]
            else:
                segs = [(a, a + 3.0) for a in np.arange(-200.0, 300.0, 12.0)]
            for a, b in segs:
                poly = self._poly(np.array([[a, y - 0.08], [b, y - 0.08], [b, y + 0.08], [a, y + 0.08]]))
                if poly is not None:
                    cv2.fillPoly(img, [poly], (225, 225, 225), cv2.LINE_AA, shift=4)
        # sky above the horizon for oblique views
        sky_rows = self._horizon_row()
        if sky_rows > 0:
            img[:sky_rows] = (215, 190, 170)
        img = np.clip(img.astype(np.float32) * c.ambient, 0, 255).astype(np.uint8)
        self.background_shaded = np.clip(img * (c.shadow_ratio or 1.0), 0, 255).astype(np.uint8)
        return img

    def _horizon_row(self) -> int:
        """Image row of the horizon (0 when the horizon is off the top of the frame)."""
        v = self.p @ np.array([1.0, 0.0, 0.0, 0.0])  # vanishing point of the road direction
        if abs(v[2]) < 1e-9:
            return 0
        return int(np.clip(v[1] / v[2], 0, self.h))

    # ---- frames -------------------------------------------------------------
    def render(self, v: Vehicles) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A BGR frame and, per vehicle, its pixel box (n,4 xywh) and whether it is in the image."""
        c = self.cond
        img = self.background.copy()
        boxes = np.zeros((len(v), 4))
        visible = np.zeros(len(v), bool)
        if len(v):
            corners = self._corners(v)  # (n, 8, 3)
            uv, depth = project(self.p, corners.reshape(-1, 3))
            uv, depth = uv.reshape(-1, 8, 2), depth.reshape(-1, 8)
            ok = (depth > 1.0).all(axis=1)
            lo, hi = uv.min(axis=1), uv.max(axis=1)
            inside = ok & (hi[:, 0] > 0) & (lo[:, 0] < self.w) & (hi[:, 1] > 0) & (lo[:, 1] < self.h)
            lo_c = np.clip(lo, 0, [self.w, self.h])
            hi_c = np.clip(hi, 0, [self.w, self.h])
            boxes = np.c_[lo_c, hi_c - lo_c]
            visible = inside & (boxes[:, 2] >= 2) & (boxes[:, 3] >= 2)
            idx = np.flatnonzero(visible)
            if c.shadow_ratio is not None:
                self._shadows(img, v, idx)
            lights = np.zeros_like(img) if c.headlights else None
            for i in idx[np.argsort(-depth[idx].mean(axis=1))]:  # far to near: near vehicles hide far ones
                self._vehicle(img, lights, v, i, uv[i])
            if lights is not None:
                img = cv2.add(img, lights)
        img = self._effects(img)
        return img, boxes, visible

    def _corners(self, v: Vehicles) -> np.ndarray:
        """(n,8,3) box corners: rear/front x, right/left y, ground/roof z."""
        xr, xf = v.x_m - v.length_m, v.x_m
        yr, yl = v.y_m - v.width_m / 2, v.y_m + v.width_m / 2
        z = v.height_m
        zero = np.zeros_like(z)
        pts = [(xr, yr, zero), (xf, yr, zero), (xf, yl, zero), (xr, yl, zero),
               (xr, yr, z), (xf, yr, z), (xf, yl, z), (xr, yl, z)]
        return np.stack([np.stack(p, axis=-1) for p in pts], axis=1)

    def _shadows(self, img: np.ndarray, v: Vehicles, idx: np.ndarray) -> None:
        mask = np.zeros(img.shape[:2], np.uint8)
        for i in idx:
            xr, xf = v.x_m[i] - v.length_m[i], v.x_m[i]
            yr, yl = v.y_m[i] - v.width_m[i] / 2, v.y_m[i] + v.width_m[i] / 2
            foot = np.array([[xr, yr], [xf, yr], [xf, yl], [xr, yl]])
            cast = foot + self._sun * v.height_m[i] * (0.5 if self.cond.lighting == "day" else 1.2)
            poly = self._poly(np.vstack([foot, cast]))
            if poly is not None:
                    cv2.fillConvexPoly(mask, cv2.convexHull(poly), 255, cv2.LINE_8, shift=4)
        cv2.copyTo(self.background_shaded, mask, img)  # shadows fall on the road, drawn before vehicles

    def _vehicle(self, img: np.ndarray, lights: np.ndarray | None, v: Vehicles, i: int, uv: np.ndarray) -> None:
        amb = self.cond.ambient
        body = v.colour[i].astype(np.float64)
        kind = KIND_NAMES[v.kind[i]]
        pts = np.round(uv * 16).astype(np.int32)
        side = tuple(float(c) for c in np.clip(body * 0.62 * amb, 0, 255))
        top = tuple(float(c) for c in np.clip(body * 0.95 * amb + 8 * amb, 0, 255))
        dark = tuple(float(c) for c in np.clip(np.array([40, 38, 36]) * max(amb, 0.5), 0, 255))
        cv2.fillConvexPoly(img, cv2.convexHull(pts), side, cv2.LINE_AA, shift=4)
        roof = self._roof(v, i, 0.0, 1.0)
        cv2.fillConvexPoly(img, roof, top, cv2.LINE_AA, shift=4)
        if kind in ("car", "van"):
            rear_win = self._roof(v, i, 0.08, 0.24)
            front_win = self._roof(v, i, 0.70, 0.86)
            for poly in (rear_win, front_win):
                cv2.fillConvexPoly(img, poly, dark, cv2.LINE_AA, shift=4)
        elif kind == "truck":
            cab = self._roof(v, i, 0.80, 1.0)
            cv2.fillConvexPoly(img, cab, tuple(float(c) for c in np.clip(np.array([60, 60, 150]) * amb, 0, 255)),
                               cv2.LINE_AA, shift=4)
        elif kind == "motorcycle":
            cv2.fillConvexPoly(img, self._roof(v, i, 0.3, 0.7), dark, cv2.LINE_AA, shift=4)
        if lights is not None:
            self._lights(img, lights, v, i)

    def _roof(self, v: Vehicles, i: int, a: float, b: float, z_frac: float = 1.0) -> np.ndarray:
        """Pixel quad of the roof between fractions ``a`` and ``b`` of the length (rear = 0)."""
        xr = v.x_m[i] - v.length_m[i]
        xa, xb = xr + a * v.length_m[i], xr + b * v.length_m[i]
        yr, yl = v.y_m[i] - v.width_m[i] / 2 * 0.9, v.y_m[i] + v.width_m[i] / 2 * 0.9
        z = v.height_m[i] * z_frac
        uv, _ = project(self.p, np.array([[xa, yr, z], [xb, yr, z], [xb, yl, z], [xa, yl, z]]))
        return np.round(uv * 16).astype(np.int32)

    def _lights(self, img: np.ndarray, lights: np.ndarray, v: Vehicles, i: int) -> None:
        xr, xf, y, w = v.x_m[i] - v.length_m[i], v.x_m[i], v.y_m[i], v.width_m[i]
        # pool of headlight on the road ahead
        pool = self._poly(np.array([[xf + 1.0, y - w * 0.4], [xf + 14.0, y - w * 0.9], [xf + 14.0, y + w * 0.9],
                                    [xf + 1.0, y + w * 0.4]]))
        if pool is not None:
            cv2.fillConvexPoly(lights, pool, (55, 60, 62), cv2.LINE_AA, shift=4)
        lamps = np.array([[xr, y - w * 0.38, 0.8], [xr, y + w * 0.38, 0.8],
                          [xf, y - w * 0.38, 0.7], [xf, y + w * 0.38, 0.7]])
        uv, depth = project(self.p, lamps)
        size = max(1, int(round(60.0 / max(depth.mean(), 1.0))))
        # a lamp shows when the camera is on its side of the vehicle (or above it)
        rear_seen, front_seen = self._cam_x < xf, self._cam_x > xr
        for k, ((px, py), colour) in enumerate(zip(uv, ((40, 40, 230),) * 2 + ((255, 255, 255),) * 2, strict=False)):
            if (rear_seen if k < 2 else front_seen):
                cv2.circle(img, (int(px), int(py)), size, colour, -1, cv2.LINE_AA)

    def _effects(self, img: np.ndarray) -> np.ndarray:
        c = self.cond
        if c.weather == "rain":
            streaks = np.zeros(img.shape[:2], np.uint8)
            n = self.w * self.h // 1200
            xy = self.rng.integers(0, [self.w, self.h], (n, 2))
            ln = self.rng.integers(6, 16, n)
            for (x, y), d in zip(xy, ln, strict=False):
                cv2.line(streaks, (int(x), int(y)), (int(x) + d // 4, int(y) + d), 70, 1)
            img = cv2.GaussianBlur(img, (3, 3), 0)
            img = cv2.add(img, cv2.cvtColor(streaks, cv2.COLOR_GRAY2BGR))
        # slight shake: a slowly wandering whole-pixel offset (edges repeat the border rows)
        self._shake = 0.8 * self._shake + self.rng.normal(0, c.shake_px * 0.6, 2)
        dx, dy = (int(v) for v in np.clip(np.round(self._shake), -3, 3))
        if dx or dy:
            img = cv2.copyMakeBorder(img, 3, 3, 3, 3, cv2.BORDER_REPLICATE)[3 - dy:3 - dy + self.h, 3 - dx:3 - dx + self.w]
        if c.noise_sigma > 0:
            bank = self._noise_bank()
            noise = bank[self.rng.integers(len(bank))]
            shift = int(self.rng.integers(0, self.w))
            img = cv2.add(img, np.roll(noise, shift, axis=1), dtype=cv2.CV_8U)
        return img

    def _noise_bank(self) -> list[np.ndarray]:
        """A few seeded frames of Gaussian sensor noise, reused with random shifts (cheap, deterministic)."""
        if not hasattr(self, "_bank"):
            sigma = self.cond.noise_sigma * (2.0 if self.cond.lighting == "night" else 1.0)
            self._bank = [np.round(self.rng.normal(0, sigma, (self.h, self.w, 3))).astype(np.int16) for _ in range(3)]
        return self._bank
