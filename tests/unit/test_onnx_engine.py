"""The CPU engine: a detector exported to ONNX scores real face crops as torch does, and a network whose
export fails, or whose exported graph scores differently, is scored by torch with a warning."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from deepsift.config import DecodeLimits, FacesConfig, SamplingConfig
from deepsift.detect.architectures import architecture_spec, build_detector_network
from deepsift.detect.onnx_graph import PARITY_TOLERANCE, OnnxExportError, OnnxGraph
from deepsift.detect.scoring import FaceScorer
from deepsift.faces.crops import decode_crop
from deepsift.faces.extraction import extract_video, init_worker

CROP_PX = 224
FRAMES = 6


@pytest.fixture(scope="module")
def face_crops(media_dir: Path) -> np.ndarray:
    """Crops of every shared ``faces/`` clip as the scan makes them: YuNet, 224 px, a few frames a clip."""
    state = init_worker(FacesConfig(crop_size=CROP_PX).model_dump_json())
    crops = []
    for clip in sorted((media_dir / "faces").iterdir()):
        result = extract_video(state, str(clip), None, SamplingConfig(frames_per_video=FRAMES), DecodeLimits())
        crops += [decode_crop(face.crop) for face in result.faces]
    assert len(crops) >= 3 * FRAMES, "the shared face clips should give faces on most sampled frames"
    return np.stack(crops)


@pytest.mark.parametrize(
    ("architecture", "pretrained"),
    [("efficientnet_lite0", True), ("efficientnet_b0", False), ("mobilenetv3_small_050", False)],
)
def test_onnx_scores_match_torch_on_real_face_crops(face_crops: np.ndarray, architecture: str, pretrained: bool) -> None:
    torch.manual_seed(0)
    contract = architecture_spec(architecture).default_contract(input_size=CROP_PX)
    network = _spread(build_detector_network(architecture, pretrained=pretrained).eval(), contract, face_crops)
    torch_scores = FaceScorer(network, contract, "cpu", cpu_engine="torch").score(face_crops, batch_size=8)
    onnx = FaceScorer(network, contract, "cpu", cpu_engine="onnxruntime")
    onnx_scores = onnx.score(face_crops, batch_size=8)
    assert onnx.engine == "onnxruntime"  # parity held, so the graph stayed in use after the first batch
    assert np.abs(onnx_scores - torch_scores).max() <= PARITY_TOLERANCE
    assert onnx_scores.std() > 1e-4  # scores that vary: a graph ignoring its input would not pass


def _spread(network: nn.Module, contract, crops: np.ndarray) -> nn.Module:
    """Rescale the untrained one-logit head so the crops' logits have unit spread: untrained heads give
    scores within 1e-4 of 0.5, where any two engines agree to 1e-3."""
    head = network.get_classifier()
    scores = FaceScorer(network, contract, "cpu").score(crops, batch_size=8).astype(np.float64)
    spread = float(np.std(np.log(scores) - np.log1p(-scores)))
    with torch.no_grad():
        head.weight.div_(spread)
        head.bias.zero_()
    return network


class _Unexportable(nn.Module):
    """A network the ONNX exporter refuses: ONNX has no operator for the Bessel function it uses."""

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return torch.special.i0e(crops).mean(dim=(1, 2, 3)).unsqueeze(1)


class _TracedBranch(nn.Module):
    """Python control flow on the data: export traces the branch its example input takes (an all-zero
    batch, the ``else``), so the graph scores real crops differently from the network itself."""

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        mean = crops.mean(dim=(1, 2, 3)).unsqueeze(1)
        if bool(crops.abs().sum() > 0):
            return mean * 4.0
        return -mean


def test_an_export_that_fails_says_why_and_scores_with_torch(face_crops, caplog) -> None:
    contract = architecture_spec("mobilenetv3_small_050").default_contract(input_size=CROP_PX)
    with pytest.raises(OnnxExportError, match=r"could not export .*special_i0e"):
        OnnxGraph.export(_Unexportable(), CROP_PX, threads=1)
    with caplog.at_level(logging.WARNING, logger="deepsift.detect.scoring"):
        scorer = FaceScorer(_Unexportable(), contract, "cpu", cpu_engine="onnxruntime")
    assert scorer.engine == "torch"
    assert [record.getMessage() for record in caplog.records if "could not export" in record.getMessage()]


def test_a_graph_that_misses_parity_is_dropped_after_the_first_batch(face_crops, caplog) -> None:
    contract = architecture_spec("mobilenetv3_small_050").default_contract(input_size=CROP_PX)
    expected = FaceScorer(_TracedBranch(), contract, "cpu", cpu_engine="torch").score(face_crops, batch_size=8)
    scorer = FaceScorer(_TracedBranch(), contract, "cpu", cpu_engine="onnxruntime")
    assert scorer.engine == "onnxruntime"
    with caplog.at_level(logging.WARNING, logger="deepsift.detect.scoring"):
        scores = scorer.score(face_crops, batch_size=8)
    assert scorer.engine == "torch"
    np.testing.assert_array_equal(scores, expected)  # every batch, the first included, is torch's
    warnings = [record.getMessage() for record in caplog.records if "differ from torch" in record.getMessage()]
    assert len(warnings) == 1 and "scoring with torch" in warnings[0]
