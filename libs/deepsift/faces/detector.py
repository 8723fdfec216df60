"""Face detectors behind one interface, and the factory that picks one from the configuration.

Every detector shrinks the frame so its longer side is at most ``detect_max_side`` (detection cost
grows with pixels, and faces that matter for deepfake screening stay visible at 640 px), detects,
maps boxes back to the coordinates of the frame it was given, clips them to the frame, and applies
the same rules: score at least ``score_threshold``, shorter side at least ``min_face_px`` source
pixels, at most ``max_faces``, highest score first. A detector instance is not thread-safe: use one
per worker thread.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, Unpack

import cv2
import numpy as np

from deepsift.config import FacesConfig
from deepsift.faces.weights import resolve_yunet_weights
from deepsift.files import file_sha256

YUNET_NMS_THRESHOLD = 0.3
YUNET_TOP_K = 5000
HAAR_CASCADE = "haarcascade_frontalface_default.xml"
HAAR_SCALE_FACTOR = 1.1
HAAR_MIN_NEIGHBORS = 4
HAAR_SCORE_CENTRE = 3.0
HAAR_SCORE_SCALE = 1.0
"""Haar scores are ``1 / (1 + exp(-(w - CENTRE) / SCALE))`` of the final-stage boosted sum ``w``.

The sum is only a margin, not a probability. The constants were chosen on the shared test clips:
clear frontal faces reach ``w`` of 4 to 8 (score 0.73 to 0.99), while most false hits on animals,
cityscapes and cartoons stay below 4.4, which maps to 0.8, the default ``faces.score_threshold``.
"""


Landmarks = tuple[tuple[float, float], ...]
"""Five (x, y) points: right eye, left eye, nose tip, right and left mouth corner (the subject's sides)."""
RawFace = tuple[float, float, float, float, float, Landmarks | None]
"""``(x, y, w, h, score, landmarks)`` as a detector finds it, before scaling and filtering."""


@dataclass(frozen=True)
class FaceBox:
    """A detected face: top-left corner, size and confidence in (0, 1), in source-frame pixels.

    ``landmarks`` are YuNet's five points in the same pixels, or None where the detector has none.
    """

    x: float
    y: float
    w: float
    h: float
    score: float
    landmarks: Landmarks | None = None


class DetectionRules(TypedDict):
    """The rules every detector applies to what it finds (see the module docstring), as keyword arguments."""

    score_threshold: float
    detect_max_side: int
    min_face_px: int
    max_faces: int


class FaceDetector(ABC):
    """Detects faces in BGR frames; ``name`` records which detector (and which weights) ran."""

    name: str

    def __init__(
        self,
        *,
        name: str,
        score_threshold: float,
        detect_max_side: int,
        min_face_px: int,
        max_faces: int,
    ) -> None:
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if detect_max_side < 1 or min_face_px < 0 or max_faces < 1:
            raise ValueError(
                "detect_max_side and max_faces must be positive and min_face_px not negative, got "
                f"{detect_max_side}, {max_faces}, {min_face_px}"
            )
        self.name = name
        self.score_threshold = score_threshold
        self.detect_max_side = detect_max_side
        self.min_face_px = min_face_px
        self.max_faces = max_faces

    def detect(self, image_bgr: np.ndarray) -> list[FaceBox]:
        """Faces in an HxWx3 uint8 BGR frame, highest score first."""
        if not (
            isinstance(image_bgr, np.ndarray)
            and image_bgr.dtype == np.uint8
            and image_bgr.ndim == 3
            and image_bgr.shape[2] == 3
            and image_bgr.shape[0] > 0
            and image_bgr.shape[1] > 0
        ):
            raise ValueError("detect expects a non-empty HxWx3 uint8 BGR array")
        height, width = image_bgr.shape[:2]
        scale = min(1.0, self.detect_max_side / max(height, width))
        small = image_bgr
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA)
        found = self._detect_scaled(np.ascontiguousarray(small))
        scale_x = width / small.shape[1]
        scale_y = height / small.shape[0]
        boxes = []
        for x, y, w, h, score, landmarks in found:
            x0 = min(max(x * scale_x, 0.0), width)
            y0 = min(max(y * scale_y, 0.0), height)
            x1 = min(max((x + w) * scale_x, 0.0), width)
            y1 = min(max((y + h) * scale_y, 0.0), height)
            if score < self.score_threshold or min(x1 - x0, y1 - y0) < self.min_face_px:
                continue
            points = None if landmarks is None else tuple((px * scale_x, py * scale_y) for px, py in landmarks)
            boxes.append(FaceBox(x0, y0, x1 - x0, y1 - y0, float(score), points))
        boxes.sort(key=lambda box: box.score, reverse=True)
        return boxes[: self.max_faces]

    @abstractmethod
    def _detect_scaled(self, image_bgr: np.ndarray) -> list[RawFace]:
        """Raw candidates in the coordinates of the (shrunk) image given."""


class YuNetDetector(FaceDetector):
    """OpenCV's YuNet CNN detector (``cv2.FaceDetectorYN``), the default; its weights ship with deepsift.

    ``name`` carries the first 12 hex digits of the weights' SHA-256, so results name their weights.
    """

    def __init__(self, weights: Path, **rules: Unpack[DetectionRules]) -> None:
        super().__init__(name=f"yunet:{file_sha256(weights)[:12]}", **rules)
        self._input_size = (self.detect_max_side, self.detect_max_side)
        try:
            self._net = cv2.FaceDetectorYN.create(
                str(weights), "", self._input_size, self.score_threshold, YUNET_NMS_THRESHOLD, YUNET_TOP_K
            )
        except cv2.error as error:
            raise ValueError(f"{weights} is not a YuNet ONNX model OpenCV can load: {error}") from None

    def _detect_scaled(self, image_bgr: np.ndarray) -> list[RawFace]:
        size = (image_bgr.shape[1], image_bgr.shape[0])
        if size != self._input_size:
            self._net.setInputSize(size)
            self._input_size = size
        _, faces = self._net.detect(image_bgr)
        if faces is None:
            return []
        # Each row: x, y, w, h, five landmark (x, y) pairs, score.
        return [
            (
                float(f[0]), float(f[1]), float(f[2]), float(f[3]), float(f[14]),
                tuple((float(f[4 + 2 * i]), float(f[5 + 2 * i])) for i in range(5)),
            )
            for f in faces
        ]


class HaarDetector(FaceDetector):
    """OpenCV's frontal-face Haar cascade, chosen with ``faces.detector: haar``.

    It ships inside opencv-python 4.x but has weaker recall and precision than YuNet: frontal faces
    only, and on the shared clips it missed the 60 px webcam face of the screencasts and most frames
    of the heavily compressed carphone clip, while firing on a cockatoo. Its score is a squashed
    cascade margin (see ``HAAR_SCORE_CENTRE``), not a calibrated confidence.
    """

    def __init__(self, **rules: Unpack[DetectionRules]) -> None:
        super().__init__(name=f"haar:{HAAR_CASCADE.removeprefix('haarcascade_').removesuffix('.xml')}", **rules)
        cascade_path = Path(cv2.data.haarcascades) / HAAR_CASCADE  # type: ignore[attr-defined]
        self._cascade = cv2.CascadeClassifier(str(cascade_path))
        if self._cascade.empty():
            raise RuntimeError(f"OpenCV could not load its bundled Haar cascade {cascade_path}")

    def _detect_scaled(self, image_bgr: np.ndarray) -> list[RawFace]:
        gray = cv2.equalizeHist(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY))
        # No minSize: the cascade's 24 px window is already the smallest face it can see, and
        # min_face_px is applied in source pixels by the caller.
        rects, _, weights = self._cascade.detectMultiScale3(
            gray,
            scaleFactor=HAAR_SCALE_FACTOR,
            minNeighbors=HAAR_MIN_NEIGHBORS,
            outputRejectLevels=True,
        )
        return [
            (float(x), float(y), float(w), float(h), _squash(float(weight)), None)
            for (x, y, w, h), weight in zip(np.reshape(rects, (-1, 4)), np.ravel(weights), strict=True)
        ]


def _squash(weight: float) -> float:
    """Map a Haar final-stage sum monotonically onto (0, 1) (see ``HAAR_SCORE_CENTRE``)."""
    return 1.0 / (1.0 + math.exp(-(weight - HAAR_SCORE_CENTRE) / HAAR_SCORE_SCALE))


def build_face_detector(cfg: FacesConfig) -> FaceDetector:
    """The detector ``faces.detector`` names: YuNet (configured or packaged weights) or the Haar cascade.

    Haar runs only when asked for: YuNet always has its weights, so nothing falls back silently.
    """
    rules = DetectionRules(
        score_threshold=cfg.score_threshold,
        detect_max_side=cfg.detect_max_side,
        min_face_px=cfg.min_face_px,
        max_faces=cfg.max_faces_per_frame,
    )
    if cfg.detector == "yunet":
        return YuNetDetector(resolve_yunet_weights(cfg), **rules)
    return HaarDetector(**rules)
