"""Crop preprocessing follows the contract exactly, and FaceScorer turns crops into probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepsift.detect.architectures import build_detector_network
from deepsift.detect.contract import PreprocessContract
from deepsift.detect.preprocess import CropFormatError, crops_to_tensor
from deepsift.detect.scoring import FaceScorer

SIZE = 64
CONTRACT = PreprocessContract(architecture="mobilenetv3_small_050", input_size=SIZE)


def _crops(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def scorer() -> FaceScorer:
    torch.manual_seed(0)
    return FaceScorer(build_detector_network(CONTRACT.architecture), CONTRACT, device="cpu")


def test_bgr_crops_become_normalised_rgb_nchw() -> None:
    crops = np.zeros((1, SIZE, SIZE, 3), np.uint8)
    crops[..., 0] = 255  # blue, in OpenCV's BGR order
    crops[..., 1] = 51
    tensor = crops_to_tensor(crops, CONTRACT)
    assert tensor.shape == (1, 3, SIZE, SIZE) and tensor.dtype == torch.float32
    expected_rgb = [(0.0 - 0.485) / 0.229, (0.2 - 0.456) / 0.224, (1.0 - 0.406) / 0.225]
    assert tensor[0, :, 5, 7].tolist() == pytest.approx(expected_rgb, abs=1e-6)


def test_preprocessing_matches_a_numpy_reference() -> None:
    crops = _crops(3)
    reference = (crops[..., ::-1] / 255.0 - np.array(CONTRACT.mean)) / np.array(CONTRACT.std)
    np.testing.assert_allclose(crops_to_tensor(crops, CONTRACT).numpy(), reference.transpose(0, 3, 1, 2), atol=1e-5)


@pytest.mark.parametrize(
    ("crops", "expected_message"),
    [
        (np.zeros((2, SIZE + 1, SIZE + 1, 3), np.uint8), "got crops of 65x65"),
        (np.zeros((2, SIZE, SIZE, 3), np.float32), "got dtype float32"),
        (np.zeros((SIZE, SIZE, 3), np.uint8), "got 3 dimensions"),
        (np.zeros((2, SIZE, SIZE, 4), np.uint8), "got 4 channels"),
        ([[0]], "got list"),
    ],
    ids=["size", "dtype", "rank", "channels", "not-an-array"],
)
def test_malformed_batches_name_expected_and_got(crops: np.ndarray, expected_message: str) -> None:
    for convert in (lambda: crops_to_tensor(crops, CONTRACT), lambda: FaceScorer(nn.Identity(), CONTRACT, "cpu").score(crops)):
        with pytest.raises(CropFormatError, match=expected_message) as caught:
            convert()
        assert "(N, 64, 64, 3)" in str(caught.value)


def test_empty_batch_gives_empty_results(scorer: FaceScorer) -> None:
    empty = np.zeros((0, SIZE, SIZE, 3), np.uint8)
    assert crops_to_tensor(empty, CONTRACT).shape == (0, 3, SIZE, SIZE)
    scores = scorer.score(empty)
    assert scores.shape == (0,) and scores.dtype == np.float32


def test_scores_are_probabilities_one_per_crop(scorer: FaceScorer) -> None:
    scores = scorer.score(_crops(5))
    assert scores.shape == (5,) and scores.dtype == np.float32
    assert ((scores >= 0) & (scores <= 1)).all()
    assert len(np.unique(scores)) == 5


def test_scores_do_not_depend_on_batching(scorer: FaceScorer) -> None:
    crops = _crops(7, seed=3)
    np.testing.assert_allclose(scorer.score(crops, batch_size=2), scorer.score(crops, batch_size=64), atol=1e-6)
    with pytest.raises(ValueError, match="batch_size"):
        scorer.score(crops, batch_size=0)


def test_scorer_matches_sigmoid_of_the_network_in_eval_mode() -> None:
    torch.manual_seed(0)
    network = build_detector_network(CONTRACT.architecture).train()
    scorer = FaceScorer(network, CONTRACT, device="cpu")
    assert not scorer.network.training and scorer.device == torch.device("cpu")
    crops = _crops(4, seed=5)
    with torch.inference_mode():
        expected = torch.sigmoid(network(crops_to_tensor(crops, CONTRACT))).view(-1).numpy()
    np.testing.assert_allclose(scorer.score(crops), expected, atol=1e-6)


def test_a_network_without_a_single_logit_is_refused() -> None:
    two_logits = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 2))
    with pytest.raises(ValueError, match=r"one logit per crop.*got \(3, 2\)"):
        FaceScorer(two_logits, CONTRACT, device="cpu").score(_crops(3))


@pytest.mark.parametrize("decode_threads", [1, 3])
def test_detect_udf_body_scores_every_crop_in_order_whatever_the_decode_threads(
    scorer: FaceScorer, decode_threads: int
) -> None:
    """Arrow batches of 5, 1 and 7 JPEG crops regroup into forward passes of 4; with a decode pool the
    crops of later passes are decoded ahead, and the output keeps the input's order and scores."""
    import cv2
    import pyarrow as pa

    from deepsift.detect.arrow_scoring import score_crop_batches

    pixels = _crops(13, seed=3)
    encoded = [cv2.imencode(".png", crop)[1].tobytes() for crop in pixels]  # lossless: same pixels back
    batches, start = [], 0
    for size in (5, 1, 7):
        rows = range(start, start + size)
        batches.append(pa.RecordBatch.from_pydict({
            "video_id": [f"v{row % 2}" for row in rows],
            "frame_index": pa.array(list(rows), pa.int32()),
            "face_index": pa.array([0] * size, pa.int32()),
            "crop": [encoded[row] for row in rows],
        }))
        start += size
    loads = []

    def load() -> FaceScorer:
        loads.append(1)
        return scorer

    scored = list(score_crop_batches(iter(batches), load, batch_size=4, decode_threads=decode_threads))
    assert [batch.num_rows for batch in scored] == [4, 4, 4, 1]
    table = pa.Table.from_batches(scored)
    assert table["frame_index"].to_pylist() == list(range(13))
    assert table["video_id"].to_pylist() == [f"v{row % 2}" for row in range(13)]
    np.testing.assert_allclose(table["score"].to_numpy(), scorer.score(pixels), atol=1e-6)
    assert len(loads) == 4
    assert list(score_crop_batches(iter([]), load, batch_size=4, decode_threads=decode_threads)) == []
    assert len(loads) == 4


def test_a_corrupt_crop_fails_the_batch_with_its_size_on_the_decode_pool(scorer: FaceScorer) -> None:
    import pyarrow as pa

    from deepsift.detect.arrow_scoring import score_crop_batches

    batch = pa.RecordBatch.from_pydict({
        "video_id": ["v"], "frame_index": pa.array([0], pa.int32()), "face_index": pa.array([0], pa.int32()),
        "crop": [b"not a jpeg"],
    })
    with pytest.raises(ValueError, match="10 bytes are not an encoded image"):
        list(score_crop_batches(iter([batch]), lambda: scorer, batch_size=4, decode_threads=2))


def test_crops_of_two_sizes_in_one_batch_are_refused_with_both_sizes(scorer: FaceScorer) -> None:
    import cv2
    import pyarrow as pa

    from deepsift.detect.arrow_scoring import score_crop_batches

    small = cv2.imencode(".png", np.zeros((SIZE // 2, SIZE // 2, 3), np.uint8))[1].tobytes()
    right = cv2.imencode(".png", np.zeros((SIZE, SIZE, 3), np.uint8))[1].tobytes()
    batch = pa.RecordBatch.from_pydict({
        "video_id": ["v", "v"], "frame_index": pa.array([0, 1], pa.int32()), "face_index": pa.array([0, 0], pa.int32()),
        "crop": [right, small],
    })
    for threads in (1, 2):
        with pytest.raises(ValueError, match="crop 1 of a batch is 32x32 px, but its first crop is 64x64"):
            list(score_crop_batches(iter([batch]), lambda: scorer, batch_size=4, decode_threads=threads))
