"""Video-level evaluation with a detector whose scores can be worked out by hand.

The detector is a real torch module behind a real :class:`FaceScorer`: its logit is ``GAIN`` times
the mean of the normalised crop. With mean = std = 0.5, a uniform crop of brightness ``v`` normalises
to ``2 v / 255 - 1``, so it scores ``sigmoid(GAIN * (2 v / 255 - 1))``: bright crops look fake.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from deepsift.detect.contract import PreprocessContract, Thresholds
from deepsift.detect.evaluation import (
    HISTOGRAM_FILE,
    ROC_FILE,
    VideoFaces,
    eval_set_id,
    evaluate_detector,
    score_videos,
)
from deepsift.detect.scoring import FaceScorer

SIZE = 32
GAIN = 4.0
CONTRACT = PreprocessContract(
    architecture="mobilenetv3_small_050",
    input_size=SIZE,
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    aggregation="mean",
    thresholds=Thresholds(suspicious=0.5, manipulated=0.9),
)
AUTHENTIC = (20, 40, 60, 80)
MANIPULATED = (150, 180, 210, 240)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class MeanBrightness(nn.Module):
    """One logit per crop: ``GAIN`` times the crop's mean normalised pixel value."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return GAIN * x.mean(dim=(1, 2, 3)).unsqueeze(1)


def expected_score(brightness: int) -> float:
    return 1.0 / (1.0 + math.exp(-GAIN * (2.0 * brightness / 255.0 - 1.0)))


def video(video_id: str, label: int, *brightness: int) -> VideoFaces:
    """A video with one uniform crop per brightness, from consecutive frames."""
    crops = np.stack([np.full((SIZE, SIZE, 3), b, np.uint8) for b in brightness]) if brightness else (
        np.zeros((0, SIZE, SIZE, 3), np.uint8)
    )
    return VideoFaces(video_id, label, crops, np.arange(len(brightness)))


def labelled_set() -> list[VideoFaces]:
    """Four dark authentic and four bright manipulated videos, three identical crops each."""
    return [video(f"real-{b}", 0, b, b, b) for b in AUTHENTIC] + [video(f"fake-{b}", 1, b, b, b) for b in MANIPULATED]


@pytest.fixture(scope="module")
def scorer() -> FaceScorer:
    return FaceScorer(MeanBrightness(), CONTRACT, device="cpu")


def test_the_test_detector_scores_as_worked_out(scorer: FaceScorer) -> None:
    scores = scorer.score(np.stack([np.full((SIZE, SIZE, 3), b, np.uint8) for b in (0, 80, 210, 255)]))
    assert scores.tolist() == pytest.approx([expected_score(b) for b in (0, 80, 210, 255)], abs=1e-6)
    assert expected_score(80) < 0.5 < expected_score(150) and expected_score(180) < 0.9 < expected_score(210)


def test_separable_videos_rank_perfectly_and_plots_are_written(scorer: FaceScorer, tmp_path: Path) -> None:
    report = evaluate_detector(scorer, labelled_set(), artifacts_dir=tmp_path / "eval")
    metrics = report.metrics
    assert (metrics["auc"], metrics["ap"], metrics["eer"]) == (1.0, 1.0, 0.0)
    assert (metrics["n_pos"], metrics["n_neg"]) == (4.0, 4.0)
    assert (report.n_videos, report.n_skipped, report.aggregation) == (8, 0, "mean")
    # Four negatives allow none above a 1% or 0.1% FPR: both thresholds sit just above the top real.
    assert report.thresholds.suspicious == report.thresholds.manipulated
    assert report.thresholds.suspicious == pytest.approx(expected_score(80), abs=1e-6)
    assert (metrics["fpr_suspicious"], metrics["tpr_suspicious"], metrics["accuracy_manipulated"]) == (0.0, 1.0, 1.0)
    for path, name in ((report.roc_path, ROC_FILE), (report.histogram_path, HISTOGRAM_FILE)):
        assert path == tmp_path / "eval" / name
        assert path.read_bytes().startswith(PNG_MAGIC) and path.stat().st_size > 1000


def test_chosen_thresholds_meet_the_target_fpr(scorer: FaceScorer, tmp_path: Path) -> None:
    # 25% of four negatives: one real may be flagged, so the threshold sits just above the second-brightest.
    report = evaluate_detector(
        scorer, labelled_set(), suspicious_fpr=0.25, manipulated_fpr=0.0, artifacts_dir=tmp_path
    )
    # As Python floats: numpy would compare a float32 with a float in float32, losing the last ulp.
    real_60, real_80 = scorer.score(np.stack([np.full((SIZE, SIZE, 3), b, np.uint8) for b in (60, 80)])).tolist()
    assert real_60 < report.thresholds.suspicious <= real_80 < report.thresholds.manipulated
    assert report.thresholds.suspicious == pytest.approx(expected_score(60), abs=1e-6)
    metrics = report.metrics
    assert (metrics["fpr_suspicious"], metrics["tpr_suspicious"], metrics["accuracy_suspicious"]) == (0.25, 1.0, 7 / 8)
    assert (metrics["fpr_manipulated"], metrics["tpr_manipulated"], metrics["accuracy_manipulated"]) == (0.0, 1.0, 1.0)


def test_contract_thresholds_are_measured_when_not_choosing(scorer: FaceScorer, tmp_path: Path) -> None:
    report = evaluate_detector(scorer, labelled_set(), choose_thresholds=False, artifacts_dir=tmp_path)
    assert report.thresholds == CONTRACT.thresholds
    metrics = report.metrics
    assert (metrics["accuracy_suspicious"], metrics["fpr_suspicious"]) == (1.0, 0.0)
    # Only the fakes at 210 and 240 score 0.9 or more.
    assert (metrics["tpr_manipulated"], metrics["fpr_manipulated"], metrics["accuracy_manipulated"]) == (0.5, 0.0, 0.75)


def test_eval_set_id_follows_the_videos_and_labels_not_their_order(scorer: FaceScorer, tmp_path: Path) -> None:
    videos = labelled_set()
    first = evaluate_detector(scorer, videos, artifacts_dir=tmp_path / "a").eval_set_id
    assert first.startswith("sha256:")
    assert evaluate_detector(scorer, videos[::-1], artifacts_dir=tmp_path / "b").eval_set_id == first
    relabelled = [video("real-80", 1, 80, 80, 80) if v.video_id == "real-80" else v for v in videos]
    assert evaluate_detector(scorer, relabelled, artifacts_dir=tmp_path / "c").eval_set_id != first
    assert evaluate_detector(scorer, videos[1:], artifacts_dir=tmp_path / "d").eval_set_id != first
    with pytest.raises(ValueError, match="same video_id twice"):
        eval_set_id(["a", "a"], [0, 1])


def test_videos_without_faces_are_skipped(scorer: FaceScorer, tmp_path: Path) -> None:
    videos = labelled_set()
    baseline = evaluate_detector(scorer, videos, artifacts_dir=tmp_path / "all")
    with_empty = [video("no-face-1", 1), *videos, video("no-face-2", 0)]
    report = evaluate_detector(scorer, with_empty, artifacts_dir=tmp_path / "empty")
    assert (report.n_videos, report.n_skipped) == (8, 2)
    assert report.metrics == baseline.metrics
    assert report.eval_set_id == baseline.eval_set_id
    with pytest.raises(ValueError, match="none of the 2 videos has a face crop"):
        evaluate_detector(scorer, [video("x", 0), video("y", 1)], artifacts_dir=tmp_path / "none")


def test_score_videos_aggregates_with_the_named_rule(scorer: FaceScorer) -> None:
    videos = [video("mixed", 1, 20, 240), video("empty", 0), video("dark", 0, 40)]
    by_max = score_videos(scorer, videos, "max")
    assert by_max.video_ids == ("mixed", "dark") and by_max.skipped_video_ids == ("empty",)
    assert by_max.labels.tolist() == [1, 0]
    assert by_max.scores.tolist() == pytest.approx([expected_score(240), expected_score(40)], abs=1e-6)
    by_mean = score_videos(scorer, videos, "mean")
    assert by_mean.scores[0] == pytest.approx((expected_score(20) + expected_score(240)) / 2, abs=1e-6)


def test_malformed_videos_are_refused() -> None:
    with pytest.raises(ValueError, match="label must be 0"):
        VideoFaces("v", 2, np.zeros((1, SIZE, SIZE, 3), np.uint8), np.array([0]))
    with pytest.raises(ValueError, match="2 crops but 1 frame indices"):
        VideoFaces("v", 1, np.zeros((2, SIZE, SIZE, 3), np.uint8), np.array([0]))
