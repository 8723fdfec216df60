"""Self-blended pseudo-fakes: a real face crop blended with a transformed copy of itself.

After Shiohara and Yamasaki, "Detecting Deepfakes with Self-Blended Images" (CVPR 2022), which
builds on the blending-boundary idea of Face X-ray (Li et al., CVPR 2020). Training on these teaches a
detector the artefacts every face swap leaves (a blending boundary, colour and sharpness mismatch
between an inner face region and its surroundings) from real faces alone.

Sides: the *target* is the crop itself, untouched; the *source* is the copy that gets the colour,
sharpness, resolution, compression and geometric jitter. So ``blended == crop`` exactly wherever the
returned mask is 0, which is everywhere outside the face region, including a border band of the crop.

The blended region follows the face: with YuNet's five landmarks it is a hull fitted to the whole
inner face (brows to chin, cheek to cheek) as a face swap replaces it; without them it is an ellipse
inside the face box. ``docs/architecture.md`` says why five points and not a face mesh.
"""

from __future__ import annotations

import cv2
import numpy as np

from deepsift.faces.detector import Landmarks

FaceBox = tuple[float, float, float, float]
"""(x0, y0, x1, y1) in crop pixels."""

DEFAULT_FACE_BOX_FRACTION = 0.2
"""Without a face box, assume the face spans the crop minus 20 % a side (crops are cut with a margin)."""
BORDER_FRACTION = 0.05
"""The mask is 0 on this share of each side of the crop, so the blend never touches the crop edge."""
BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
"""The strength of the blend, as in the paper: full blends are the most common."""
FACE_HULL_TEMPLATE = np.array(
    [
        (-1.0, -0.35), (-0.55, -0.6), (0.0, -0.65), (0.55, -0.6), (1.0, -0.35),
        (1.05, 0.3), (0.9, 0.95), (0.5, 1.45), (0.0, 1.65), (-0.5, 1.45), (-0.9, 0.95), (-1.05, 0.3),
    ],
    dtype=np.float32,
)
"""The inner-face outline in a frame fitted to the five landmarks: x in eye distances from the eyes'
midpoint along the eye line, y in eye-to-mouth distances down the face. Brows sit about 0.6 above the
eyes, the cheeks one eye distance out, the chin 1.65 below; measured on the frontal stills of the
training corpus, then jittered per sample so the detector never learns one fixed shape."""


def self_blend(
    crop_bgr: np.ndarray,
    rng: np.random.Generator,
    face_box: FaceBox | None = None,
    landmarks: Landmarks | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Blend a jittered copy of ``crop_bgr`` into its face region; return (blended uint8, mask float32).

    ``landmarks`` (five points in crop pixels) shape the region when given; else ``face_box`` (or a
    default box). ``mask`` (H x W, in [0, 1]) is the weight actually used: ``blended = mask * source +
    (1 - mask) * crop``, rounded. The same ``rng`` state gives the same result.

    >>> crop = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    >>> blended, mask = self_blend(crop, np.random.default_rng(1))
    >>> blended.shape, mask.dtype, bool((blended[mask == 0] == crop[mask == 0]).all())
    ((64, 64, 3), dtype('float32'), True)
    """
    if crop_bgr.dtype != np.uint8 or crop_bgr.ndim != 3 or crop_bgr.shape[2] != 3:
        raise ValueError(f"expected a uint8 H x W x 3 BGR crop, got {crop_bgr.dtype} {crop_bgr.shape}")
    height, width = crop_bgr.shape[:2]
    if landmarks is not None:
        hull = _landmark_hull(np.asarray(landmarks, dtype=np.float32), rng)
    else:
        hull = _ellipse_hull(_inner_box(face_box, height, width), rng)
    source = _jitter_colour(crop_bgr, rng)
    source = _jitter_sharpness(source, rng)
    source = _jitter_resolution(source, rng)
    source = _jitter_geometry(source, rng)
    mask = _blend_mask(height, width, hull, rng) * rng.choice(BLEND_RATIOS)
    weight = mask[..., None]
    blended = weight * source.astype(np.float32) + (1.0 - weight) * crop_bgr.astype(np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8), mask.astype(np.float32)


def recode_face_region(
    crop_bgr: np.ndarray,
    rng: np.random.Generator,
    face_box: FaceBox | None = None,
    landmarks: Landmarks | None = None,
) -> np.ndarray:
    """The crop with only its face region re-coded (blurred, resampled or JPEG'd), colour and shape kept.

    Video coders spend bits on a moving face unlike on a still background, so real talking heads show
    exactly such a quality step around the face. Applied to real faces (and so to their pseudo-fakes),
    it teaches a detector that a quality step alone is no evidence: the colour, shape and boundary of
    a blend are.
    """
    height, width = crop_bgr.shape[:2]
    if landmarks is not None:
        hull = _landmark_hull(np.asarray(landmarks, dtype=np.float32), rng)
    else:
        hull = _ellipse_hull(_inner_box(face_box, height, width), rng)
    recoded = _jitter_resolution(crop_bgr, rng, always=True)
    if rng.random() < 0.5:
        recoded = cv2.GaussianBlur(recoded, (0, 0), rng.uniform(0.4, 1.0))
    weight = _blend_mask(height, width, hull, rng)[..., None]
    mixed = weight * recoded.astype(np.float32) + (1.0 - weight) * crop_bgr.astype(np.float32)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def _landmark_hull(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The face outline fitted to five landmarks, each template point jittered, as polygon vertices."""
    if points.shape != (5, 2) or not np.isfinite(points).all():
        raise ValueError(f"expected five (x, y) landmarks, got an array of shape {points.shape}")
    eyes = (points[0] + points[1]) / 2
    across = points[1] - points[0]
    down = (points[3] + points[4]) / 2 - eyes
    if np.linalg.norm(across) < 2 or np.linalg.norm(down) < 2:
        raise ValueError("landmarks too close together to outline a face")
    template = FACE_HULL_TEMPLATE * rng.uniform(0.85, 1.1, size=2)
    template = template + rng.normal(0.0, 0.06, size=template.shape)
    return (eyes + template[:, :1] * across + template[:, 1:] * down).astype(np.float32)
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


def _jitter_resolution(image: np.ndarray, rng: np.random.Generator, always: bool = False) -> np.ndarray:
    """Half the time (or ``always``), lose detail as a swapped face does: shrink and enlarge back, or
    JPEG-compress."""
    choice = rng.random() / 2 if always else rng.random()
    if choice < 0.25:
        height, width = image.shape[:2]
        factor = rng.uniform(0.5, 0.9)
        small = cv2.resize(image, (max(2, round(width * factor)), max(2, round(height * factor))), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    if choice < 0.5:
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 90))])
        if ok and (decoded := cv2.imdecode(encoded, cv2.IMREAD_COLOR)) is not None:
            return decoded
    return image


def _jitter_geometry(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scale by up to 5 % and shift by up to 3 % of the side, about the crop centre."""
    height, width = image.shape[:2]
    scale = rng.uniform(0.95, 1.05)
    shift_x, shift_y = rng.uniform(-0.03, 0.03, size=2) * (width, height)
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 0.0, scale)
    matrix[:, 2] += (shift_x, shift_y)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT_101)


def _ellipse_hull(box: FaceBox, rng: np.random.Generator) -> np.ndarray:
    """Points on a jittered, rotated ellipse around the face box's centre."""
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
    return np.stack(
        [centre_x + xs * np.cos(tilt) - ys * np.sin(tilt), centre_y + xs * np.sin(tilt) + ys * np.cos(tilt)], axis=1
    ).astype(np.float32)


def _blend_mask(height: int, width: int, hull: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A soft, irregular region from the convex hull of ``hull``, zero on the crop's border band.

    The hull is elastically deformed, randomly eroded or dilated, and feathered with a gaussian blur.
    """
    hard: np.ndarray = np.zeros((height, width), np.uint8)
    cv2.fillConvexPoly(hard, cv2.convexHull(np.rint(hull).astype(np.int32)), 255)
    hard = _elastic(hard, rng)
    kernel_size = int(rng.integers(1, max(2, min(height, width) // 24) + 1)) * 2 + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel_size, kernel_size))
    hard = cv2.erode(hard, kernel) if rng.random() < 0.5 else cv2.dilate(hard, kernel)
    soft: np.ndarray = cv2.GaussianBlur(
        hard.astype(np.float32) / 255.0, (0, 0), rng.uniform(1.0, 3.0) * min(height, width) / 64
    )
    soft /= max(float(soft.max()), 1e-6)  # feathering lowers only the edge: the face itself stays at full weight
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
