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
