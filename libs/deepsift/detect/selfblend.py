"""Self-blended pseudo-fakes: a real face crop blended with a transformed copy of itself.

After Shiohara and Yamasaki, "Detecting Deepfakes with Self-Blended Images" (CVPR 2022), which
builds on the blending-boundary idea of Face X-ray (Li et al., CVPR 2020). Training on these teaches a
detector the artefacts every face swap leaves (a blending boundary, colour and sharpness mismatch
between an inner face region and its surroundings) from real faces alone.

Sides: the *target* is the crop itself, untouched; the *source* is the copy that gets the colour,
sharpness and geometric jitter. So ``blended == crop`` exactly wherever the returned mask is 0,
which is everywhere outside the face region, including a border band of the crop.
"""

from __future__ import annotations

import cv2
import numpy as np

FaceBox = tuple[float, float, float, float]
"""(x0, y0, x1, y1) in crop pixels."""

DEFAULT_FACE_BOX_FRACTION = 0.2
"""Without a face box, assume the face spans the crop minus 20 % a side (crops are cut with a margin)."""
BORDER_FRACTION = 0.05
"""The mask is 0 on this share of each side of the crop, so the blend never touches the crop edge."""
BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
"""The strength of the blend, as in the paper: full blends are the most common."""


def self_blend(
    crop_bgr: np.ndarray, rng: np.random.Generator, face_box: FaceBox | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Blend a jittered copy of ``crop_bgr`` into its face region; return (blended uint8, mask float32).

    ``mask`` (H x W, in [0, 1]) is the weight actually used: ``blended = mask * source + (1 - mask)
    * crop``, rounded. The same ``rng`` state gives the same result.

    >>> crop = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    >>> blended, mask = self_blend(crop, np.random.default_rng(1))
    >>> blended.shape, mask.dtype, bool((blended[mask == 0] == crop[mask == 0]).all())
    ((64, 64, 3), dtype('float32'), True)
    """
    if crop_bgr.dtype != np.uint8 or crop_bgr.ndim != 3 or crop_bgr.shape[2] != 3:
        raise ValueError(f"expected a uint8 H x W x 3 BGR crop, got {crop_bgr.dtype} {crop_bgr.shape}")
    height, width = crop_bgr.shape[:2]
    box = _inner_box(face_box, height, width)
    source = _jitter_geometry(_jitter_sharpness(_jitter_colour(crop_bgr, rng), rng), rng)
    mask = _blend_mask(height, width, box, rng) * rng.choice(BLEND_RATIOS)
    weight = mask[..., None]
    blended = weight * source.astype(np.float32) + (1.0 - weight) * crop_bgr.astype(np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8), mask.astype(np.float32)


def _inner_box(face_box: FaceBox | None, height: int, width: int) -> FaceBox:
    """The face box, or the default one, clipped to the crop minus its border band."""
    if face_box is None:
        f = DEFAULT_FACE_BOX_FRACTION
        face_box = (f * width, f * height, (1 - f) * width, (1 - f) * height)
    border_x, border_y = _border(width), _border(height)
    x0, y0, x1, y1 = face_box
    x0, x1 = max(x0, border_x), min(x1, width - border_x)
    y0, y1 = max(y0, border_y), min(y1, height - border_y)
    if x1 - x0 < 4 or y1 - y0 < 4:
        raise ValueError(f"face box {face_box} leaves no room inside a {width}x{height} crop")
    return x0, y0, x1, y1


def _border(side: int) -> int:
    return max(2, round(BORDER_FRACTION * side))


def _jitter_colour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shift hue, scale saturation and value, then change brightness and contrast."""
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-8, 8)) % 180
    hsv[..., 1] *= rng.uniform(0.8, 1.2)
    hsv[..., 2] *= rng.uniform(0.85, 1.15)
    jittered = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR)
    contrast, brightness = rng.uniform(0.85, 1.15), rng.uniform(-15, 15)
    return cv2.convertScaleAbs(jittered, alpha=contrast, beta=brightness)


def _jitter_sharpness(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur or sharpen (unsharp mask), each half the time."""
    sigma = rng.uniform(0.5, 1.5)
    blurred = cv2.GaussianBlur(image, (0, 0), sigma)
    if rng.random() < 0.5:
        return blurred
    amount = rng.uniform(0.5, 1.5)
    return cv2.addWeighted(image, 1 + amount, blurred, -amount, 0)


def _jitter_geometry(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scale by up to 5 % and shift by up to 3 % of the side, about the crop centre."""
    height, width = image.shape[:2]
    scale = rng.uniform(0.95, 1.05)
    shift_x, shift_y = rng.uniform(-0.03, 0.03, size=2) * (width, height)
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 0.0, scale)
    matrix[:, 2] += (shift_x, shift_y)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT_101)


def _blend_mask(height: int, width: int, box: FaceBox, rng: np.random.Generator) -> np.ndarray:
    """A soft, irregular region around the face centre, zero on the crop's border band.

    The convex hull of points on a jittered, rotated ellipse, elastically deformed, randomly eroded
    or dilated, with gaussian-blurred edges.
    """
    x0, y0, x1, y1 = box
    centre_x = (x0 + x1) / 2 + rng.uniform(-0.05, 0.05) * (x1 - x0)
    centre_y = (y0 + y1) / 2 + rng.uniform(-0.05, 0.05) * (y1 - y0)
    radius_x = (x1 - x0) / 2 * rng.uniform(0.6, 0.9)
    radius_y = (y1 - y0) / 2 * rng.uniform(0.7, 0.95)
    angles = np.sort(rng.uniform(0, 2 * np.pi, size=24))
    radial = rng.uniform(0.85, 1.1, size=angles.size)
    tilt = rng.uniform(-0.2, 0.2)
    xs = radius_x * radial * np.cos(angles)
    ys = radius_y * radial * np.sin(angles)
    points = np.stack(
        [
            centre_x + xs * np.cos(tilt) - ys * np.sin(tilt),
            centre_y + xs * np.sin(tilt) + ys * np.cos(tilt),
        ],
        axis=1,
    )
    hard = np.zeros((height, width), np.uint8)
    cv2.fillConvexPoly(hard, cv2.convexHull(np.rint(points).astype(np.int32)), 255)
    hard = _elastic(hard, rng)
    kernel_size = int(rng.integers(1, max(2, min(height, width) // 24) + 1)) * 2 + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel_size, kernel_size))
    hard = cv2.erode(hard, kernel) if rng.random() < 0.5 else cv2.dilate(hard, kernel)
    soft = cv2.GaussianBlur(hard.astype(np.float32) / 255.0, (0, 0), rng.uniform(1.0, 3.0) * min(height, width) / 64)
    border_x, border_y = _border(width), _border(height)
    inside = np.zeros_like(soft)
    inside[border_y : height - border_y, border_x : width - border_x] = 1.0
    return np.clip(soft * inside, 0.0, 1.0)


def _elastic(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Warp a mask with a smooth random displacement field of a few per cent of its size."""
    height, width = mask.shape
    side = min(height, width)
    smoothing = side / 8
    strength = side * rng.uniform(0.02, 0.05)
    fields = []
    for _ in range(2):
        noise = cv2.GaussianBlur(rng.uniform(-1, 1, (height, width)).astype(np.float32), (0, 0), smoothing)
        fields.append(noise / (np.abs(noise).max() + 1e-6) * strength)
    grid_y, grid_x = np.mgrid[0:height, 0:width].astype(np.float32)
    return cv2.remap(mask, grid_x + fields[0], grid_y + fields[1], cv2.INTER_LINEAR, borderValue=0)
