"""Self-blended pseudo-fakes: the blend stays inside the face region and is reproducible."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from deepsift.detect.selfblend import BORDER_FRACTION, self_blend


def _face_like_crop(height: int = 96, width: int = 96) -> np.ndarray:
    """A textured crop: smooth noise with a brighter ellipse in the middle."""
    noise = np.random.default_rng(42).integers(0, 256, (height, width, 3), dtype=np.uint8)
    crop = cv2.GaussianBlur(noise, (0, 0), 2)
    cv2.ellipse(crop, (width // 2, height // 2), (width // 4, height // 3), 0, 0, 360, (150, 170, 200), -1)
    return cv2.addWeighted(crop, 0.8, noise, 0.2, 0)


def test_output_types_and_mask_range() -> None:
    crop = _face_like_crop()
    blended, mask = self_blend(crop, np.random.default_rng(0))
    assert blended.dtype == np.uint8 and blended.shape == crop.shape
    assert mask.dtype == np.float32 and mask.shape == crop.shape[:2]
    assert mask.min() >= 0.0 and mask.max() <= 1.0 and mask.max() >= 0.25


@pytest.mark.parametrize("seed", range(8))
def test_blend_touches_only_the_masked_face_region(seed: int) -> None:
    crop = _face_like_crop()
    face_box = (30.0, 24.0, 66.0, 72.0)
    blended, mask = self_blend(crop, np.random.default_rng(seed), face_box=face_box)
    border = round(BORDER_FRACTION * 96)
    band = np.ones_like(mask, dtype=bool)
    band[border:-border, border:-border] = False
    assert (mask[band] == 0).all(), "the mask must stay inside the crop"
    rows, cols = np.nonzero(mask > 0.5 * mask.max())
    assert face_box[0] <= cols.mean() <= face_box[2] and face_box[1] <= rows.mean() <= face_box[3]
    # The target side is the untouched crop: wherever the mask is 0 the pixels are the original ones.
    untouched = mask == 0
    assert untouched.mean() > 0.3
    np.testing.assert_array_equal(blended[untouched], crop[untouched])
    changed = np.abs(blended.astype(int) - crop.astype(int)).max(axis=2) > 0
    assert changed[mask >= 0.5 * mask.max()].mean() > 0.5, "the jittered source must show through"


@pytest.mark.parametrize("seed", range(8))
def test_mask_stays_off_the_crop_border_even_for_a_crop_filling_face(seed: int) -> None:
    crop = _face_like_crop()
    blended, mask = self_blend(crop, np.random.default_rng(seed), face_box=(0.0, 0.0, 96.0, 96.0))
    border = round(BORDER_FRACTION * 96)
    inner = np.zeros_like(mask, dtype=bool)
    inner[border:-border, border:-border] = True
    assert (mask[~inner] == 0).all() and (mask[inner] > 0).any()
    np.testing.assert_array_equal(blended[~inner], crop[~inner])


def test_same_seed_same_result_other_seed_other_result() -> None:
    crop = _face_like_crop()
    first = self_blend(crop, np.random.default_rng(7))
    again = self_blend(crop, np.random.default_rng(7))
    other = self_blend(crop, np.random.default_rng(8))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])
    assert not np.array_equal(first[0], other[0])


def test_non_square_crops_and_the_input_is_not_modified() -> None:
    crop = _face_like_crop(80, 120)
    before = crop.copy()
    blended, mask = self_blend(crop, np.random.default_rng(1))
    assert blended.shape == (80, 120, 3) and mask.shape == (80, 120)
    np.testing.assert_array_equal(crop, before)


@pytest.mark.parametrize(
    ("crop", "face_box", "message"),
    [
        (np.zeros((64, 64, 3), np.float32), None, "uint8"),
        (np.zeros((64, 64), np.uint8), None, "H x W x 3"),
        (np.zeros((64, 64, 3), np.uint8), (0.0, 0.0, 2.0, 2.0), "leaves no room"),
    ],
    ids=["dtype", "grayscale", "tiny-face-box"],
)
def test_invalid_inputs_are_refused(crop: np.ndarray, face_box: tuple[float, ...] | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        self_blend(crop, np.random.default_rng(0), face_box=face_box)
