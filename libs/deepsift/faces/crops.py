"""Square face crops at the classifier's input size, and their encoding for the ``faces`` table.

Crops are square so that resizing never distorts a face, and centred on the face so that every
model sees faces the same way. A crop always lies inside the frame (no padding).
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from deepsift.faces.detector import FaceBox, FaceDetector, Landmarks


def square_crop_box(box: FaceBox, margin: float, image_w: int, image_h: int) -> tuple[int, int, int, int]:
    """Pixel bounds ``(x0, y0, x1, y1)`` of a square around ``box``, inside the image.

    The wanted side is ``max(w, h) * (1 + margin)``, centred on the box. Where that square would
    cross the image edge, it is first shrunk about the same centre (giving up margin, never below
    the face itself), so the face stays centred; only when the face alone does not fit centred
    (it touches the edge) is the square shifted inward. No side exceeds the image's shorter side.
    """
    if image_w < 1 or image_h < 1:
        raise ValueError(f"image size must be positive, got {image_w}x{image_h}")
    if margin < 0:
        raise ValueError(f"margin must not be negative, got {margin}")
    centre_x = box.x + box.w / 2
    centre_y = box.y + box.h / 2
    limit = min(image_w, image_h)
    face_side = min(max(box.w, box.h), limit)
    wanted = min(max(box.w, box.h) * (1 + margin), limit)
    room = 2 * min(centre_x, image_w - centre_x, centre_y, image_h - centre_y)
    side = min(limit, max(1, round(max(face_side, min(wanted, room)))))
    x0 = min(max(round(centre_x - side / 2), 0), image_w - side)
    y0 = min(max(round(centre_y - side / 2), 0), image_h - side)
    return x0, y0, x0 + side, y0 + side


def crop_face(image_bgr: np.ndarray, box: FaceBox, margin: float, size: int) -> np.ndarray:
    """A ``size`` x ``size`` x 3 uint8 crop of the square around ``box`` (see ``square_crop_box``).

    Shrinking uses area averaging (no aliasing), enlarging uses bicubic interpolation.
    """
    if size < 1:
        raise ValueError(f"crop size must be positive, got {size}")
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ValueError("crop_face expects an HxWx3 uint8 BGR array")
    x0, y0, x1, y1 = square_crop_box(box, margin, image_bgr.shape[1], image_bgr.shape[0])
    region = image_bgr[y0:y1, x0:x1]
    side = x1 - x0
    if side == size:
        return region.copy()
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(region, (size, size), interpolation=interpolation)


def crop_landmarks(box: FaceBox, margin: float, size: int, image_w: int, image_h: int) -> Landmarks | None:
    """``box``'s landmarks in the pixels of its ``size`` crop (see :func:`crop_face`), or None."""
    if box.landmarks is None:
        return None
    x0, y0, x1, _ = square_crop_box(box, margin, image_w, image_h)
    scale = size / (x1 - x0)
    return tuple(((x - x0) * scale, (y - y0) * scale) for x, y in box.landmarks)


CROP_PAD_FRACTION = 0.25
"""Detecting inside a crop, the crop is padded by this share a side: detectors miss faces that fill the frame."""


def find_landmarks_in_crop(detector: FaceDetector, crop: np.ndarray) -> Landmarks | None:
    """The landmarks of the face a crop was cut around (the one nearest its centre), or None.

    Crops cached in the ``faces`` table keep no landmarks; training finds them again this way.
    """
    pad = round(crop.shape[0] * CROP_PAD_FRACTION)
    padded = cv2.copyMakeBorder(crop, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    faces = [face for face in detector.detect(padded) if face.landmarks is not None]
    if not faces:
        return None
    centre = padded.shape[1] / 2, padded.shape[0] / 2
    nearest = min(faces, key=lambda f: (f.x + f.w / 2 - centre[0]) ** 2 + (f.y + f.h / 2 - centre[1]) ** 2)
    assert nearest.landmarks is not None
    return tuple((x - pad, y - pad) for x, y in nearest.landmarks)


def encode_crop(crop: np.ndarray, image_format: Literal["jpeg", "png"], jpeg_quality: int) -> bytes:
    """Encode a BGR uint8 crop as JPEG (lossy, small) or PNG (lossless); quality applies to JPEG."""
    if image_format == "jpeg":
        if not 0 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [0, 100], got {jpeg_quality}")
        ok, encoded = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    elif image_format == "png":
        ok, encoded = cv2.imencode(".png", crop)
    else:
        raise ValueError(f"image_format must be 'jpeg' or 'png', got {image_format!r}")
    if not ok:
        raise ValueError(f"OpenCV could not encode a {crop.shape} {crop.dtype} array as {image_format}")
    return encoded.tobytes()


def decode_crop(data: bytes) -> np.ndarray:
    """Decode bytes from ``encode_crop`` back to an HxWx3 uint8 BGR array."""
    image = None
    if data:
        try:
            image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        except cv2.error:
            image = None
    if image is None:
        raise ValueError(f"{len(data)} bytes are not an encoded image OpenCV can read")
    return image
