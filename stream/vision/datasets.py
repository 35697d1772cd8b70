"""Real camera footage with ground truth, for tests and benchmarks (COCO-style box annotations).

``ngsim_us101_camera()`` is the calibration of the NGSIM US-101 sequence in
``/work/shared/data/ngsim-us101-seq1`` (see its README): a ground homography
fitted by hand to the main carriageway's edge lines (6 lanes of 3.7 m, 12 ft),
the way an operator calibrates a new camera. Nothing else is tuned to it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.camera import CameraCalibration, CameraSpec
from models.shared_data import shared_dir
from stream.vision.processor import VisionConfig

NGSIM_DIR = shared_dir() / "data" / "ngsim-us101-seq1"


@dataclass(frozen=True)
class AnnotatedSequence:
    """Frames (JPEG bytes, in time order) and the true boxes of each (n,4 xywh, pixels)."""

    names: list[str]
    jpegs: list[bytes]
    boxes: list[np.ndarray]


def load_coco_sequence(directory: Path = NGSIM_DIR, frames_dir: str = "frames") -> AnnotatedSequence:
    """Load a sequence whose frames are numbered file names (``1.jpg``, ``2.jpg``...) and a COCO ``GT.json``."""
    gt = json.loads((directory / "GT.json").read_text())
    images = sorted(gt["images"], key=lambda im: int(Path(im["file_name"]).stem))
    by_image: dict[int, list[list[float]]] = {im["id"]: [] for im in images}
    for ann in gt["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann["bbox"])
    return AnnotatedSequence([im["file_name"] for im in images],
                             [(directory / frames_dir / im["file_name"]).read_bytes() for im in images],
                             [np.asarray(by_image[im["id"]], dtype=np.float64).reshape(-1, 4) for im in images])


def ngsim_us101_camera(margin_m: float = 0.0) -> CameraSpec:
    """The NGSIM US-101 camera: x along the road (image left to right), y across from the lower edge line."""
    length_m, width_m = 94.0, 6 * 3.7
    road = np.array([[0.0, 0.0], [length_m, 0.0], [0.0, width_m], [length_m, width_m]])
    image = np.array([[0.0, 385.0], [640.0, 352.0], [0.0, 262.0], [640.0, 188.0]])
    cal = CameraCalibration.from_points(road, image, 640, 480, n_lanes=6, lane_width_m=3.7,
                                        view_start_m=1.0, view_end_m=length_m - 1.0, count_line_m=length_m / 2)
    return CameraSpec("ngsim-us101", "", "", cal, fps=10.0)


def ngsim_vision_config() -> VisionConfig:
    """Vision settings for the NGSIM camera: weak shadows (hazy light) and many grey cars, so only pixels
    darker than 70% of the road are sure foreground and shadow-band pixels count within 3 px of them."""
    return VisionConfig(shadow_ratio=0.7, shadow_keep_px=3)
