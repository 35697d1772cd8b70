"""A single-mode background model that neither swallows dense traffic nor stopped vehicles.

Mixture models (MOG2) fail on dense roads: when cars cover a pixel a third of
the time, their colours become background modes, which is why the NGSIM
baseline recalls only 40%. This model keeps one value per pixel, the running
*approximate median* (a step of one grey level towards each new frame), which
stays on the road surface as long as the road is visible more than half the
time. Learning is frozen under vehicles the tracker holds as stationary, so a
stopped car stays foreground for as long as it stands (the incident evidence).
It starts from the pixelwise median of a few frames spread over the warm-up.
"""
from __future__ import annotations

import cv2
import numpy as np


class MedianBackground:
    """Approximate-median background of a grey image, with frozen regions and a median warm-up."""

    def __init__(self, warmup_samples: int = 15, warmup_every_ms: int = 300, update_every_ms: int = 1000) -> None:
        self.warmup_samples = warmup_samples
        self.warmup_every_ms = warmup_every_ms
        self.update_every_ms = update_every_ms
        self.image: np.ndarray | None = None
        self._samples: list[np.ndarray] = []
        self._last_sample_ms: int | None = None
        self._last_update_ms: int | None = None
        self._envelope_of: np.ndarray | None = None
        self._lo = self._hi = np.empty(0, np.uint8)

    @property
    def ready(self) -> bool:
        return self.image is not None

    def warm(self, frame: np.ndarray, time_ms: int) -> None:
        """Collect warm-up samples; the background exists once enough are in."""
        if self._last_sample_ms is None or time_ms - self._last_sample_ms >= self.warmup_every_ms:
            self._samples.append(frame.copy())
            self._last_sample_ms = time_ms
        if len(self._samples) >= self.warmup_samples:
            self.image = np.median(np.stack(self._samples), axis=0).astype(np.uint8)
            self._samples = []
            self._last_update_ms = time_ms

    def update(self, frame: np.ndarray, time_ms: int, frozen: np.ndarray | None = None) -> None:
        """Step the background one grey level towards ``frame`` except where ``frozen`` is non-zero."""
        if self.image is None:
            self.warm(frame, time_ms)
            return
        if self._last_update_ms is not None and time_ms - self._last_update_ms < self.update_every_ms:
            return
        self._last_update_ms = time_ms
        up = cv2.compare(frame, self.image, cv2.CMP_GT)
        down = cv2.compare(frame, self.image, cv2.CMP_LT)
        if frozen is not None:
            free = cv2.bitwise_not(frozen)
            up = cv2.bitwise_and(up, free)
            down = cv2.bitwise_and(down, free)
        # compare() gives 255 where true; scale to steps of one level
        self.image = cv2.add(self.image, cv2.bitwise_and(up, 1))
        self.image = cv2.subtract(self.image, cv2.bitwise_and(down, 1))

    def _envelope(self) -> tuple[np.ndarray, np.ndarray]:
        """Local min and max (3x3) of the background, recomputed when the background changed."""
        assert self.image is not None
        if self._envelope_of is not self.image:
            k = np.ones((3, 3), np.uint8)
            self._lo, self._hi = cv2.erode(self.image, k), cv2.dilate(self.image, k)
            self._envelope_of = self.image
        return self._lo, self._hi

    def foreground(self, frame: np.ndarray, threshold: int, shadow_ratio: float,
                   shadow_keep_px: int = 2) -> np.ndarray:
        """Foreground mask (0/255): brighter or darker than the background by more than ``threshold``.

        Shadow handling: a pixel only darker than the background by a ratio in
        ``[shadow_ratio, 1)`` (a cast shadow keeps the road's texture and most of
        its light) counts only within ``shadow_keep_px`` of a strong pixel (one
        that is brighter, or much darker, than the road), so dim parts of a
        grey car survive while a shadow spreading beside it does not.
        """
        assert self.image is not None
        bg = self.image
        lo, hi = self._envelope()
        # against the neighbourhood's extremes: a one-pixel camera shake moves edges, not the road
        brighter = cv2.subtract(frame, hi)
        darker = cv2.subtract(lo, frame)
        fg_bright = cv2.compare(brighter, threshold, cv2.CMP_GT)
        dark = cv2.compare(darker, threshold, cv2.CMP_GT)
        if shadow_ratio >= 1.0:
            return cv2.bitwise_or(fg_bright, dark)
        # much darker: frame < bg * shadow_ratio  <=>  darker > bg * (1 - shadow_ratio)
        deep = cv2.compare(darker, cv2.multiply(bg, 1.0 - shadow_ratio, dtype=cv2.CV_8U), cv2.CMP_GT)
        strong = cv2.bitwise_or(fg_bright, cv2.bitwise_and(dark, deep))
        if shadow_keep_px <= 0:
            return strong
        k = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * shadow_keep_px + 1, 2 * shadow_keep_px + 1))
        near = cv2.dilate(strong, k)
        return cv2.bitwise_or(strong, cv2.bitwise_and(dark, near))
