"""Video-level metrics on cases small enough to check by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepsift.detect.contract import Thresholds
from deepsift.detect.metrics import (
    equal_error_rate,
    evaluate_scores,
    expected_calibration_error,
    plot_roc,
    plot_score_histogram,
    thresholds_for_fpr,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_perfect_separation() -> None:
    labels = np.array([0, 0, 0, 1, 1])
    metrics = evaluate_scores(labels, np.array([0.1, 0.2, 0.3, 0.9, 0.95]), Thresholds())
    assert (metrics["auc"], metrics["ap"], metrics["eer"]) == (1.0, 1.0, 0.0)
    assert metrics["accuracy_suspicious"] == metrics["accuracy_manipulated"] == 1.0
    assert (metrics["n_pos"], metrics["n_neg"]) == (2.0, 3.0)


def test_reversed_scores() -> None:
    metrics = evaluate_scores(np.array([0, 0, 1, 1]), np.array([0.9, 0.8, 0.2, 0.1]), Thresholds())
    assert (metrics["auc"], metrics["eer"], metrics["accuracy_suspicious"]) == (0.0, 1.0, 0.0)


def test_hand_worked_example() -> None:
    # Ranked: 0.8 (fake), 0.4 (real), 0.35 (fake), 0.1 (real). Of the 4 fake/real pairs, 3 are ordered.
    labels, scores = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
    metrics = evaluate_scores(labels, scores, Thresholds(suspicious=0.3, manipulated=0.8))
    assert metrics["auc"] == pytest.approx(0.75)
    assert metrics["ap"] == pytest.approx((1 + 2 / 3) / 2)  # precision 1 at the 1st fake, 2/3 at the 2nd
    assert metrics["eer"] == pytest.approx(0.5)  # at 0.4: one real of two flagged, one fake of two missed
    # At 0.3 three videos are flagged: both fakes and the real at 0.4.
    assert (metrics["accuracy_suspicious"], metrics["fpr_suspicious"], metrics["tpr_suspicious"]) == (0.75, 0.5, 1.0)
    # At 0.8 (scores at or above count) only the fake at 0.8 is flagged.
    assert (metrics["accuracy_manipulated"], metrics["fpr_manipulated"], metrics["tpr_manipulated"]) == (0.75, 0.0, 0.5)
    # One video per bin: (|0-0.1| + |0-0.4| + |1-0.35| + |1-0.8|) / 4.
    assert metrics["ece"] == pytest.approx(1.35 / 4)
    assert all(isinstance(value, float) for value in metrics.values())


def test_calibration_error_is_zero_when_scores_match_frequencies() -> None:
    labels = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    scores = np.array([0.25] * 4 + [0.75] * 4)
    assert expected_calibration_error(labels, scores) == pytest.approx(0.0)


def test_eer_interpolates_between_roc_points() -> None:
    # ROC: (0, 0) -> (0, 0.5) -> (1, 0.5) -> (1, 1); fnr - fpr crosses zero halfway along the flat part.
    assert equal_error_rate(np.array([0, 1, 1]), np.array([0.5, 0.9, 0.1])) == pytest.approx(0.5)


def test_thresholds_are_the_lowest_meeting_each_false_positive_rate() -> None:
    negatives = np.arange(100) / 100  # 0.00 .. 0.99
    labels = np.r_[np.zeros(100, int), np.ones(5, int)]
    scores = np.r_[negatives, np.full(5, 0.995)]
    thresholds = thresholds_for_fpr(labels, scores, suspicious_fpr=0.05, manipulated_fpr=0.01)
    for threshold, target in ((thresholds.suspicious, 0.05), (thresholds.manipulated, 0.01)):
        assert (negatives >= threshold).mean() <= target
        assert (negatives >= np.nextafter(threshold, 0)).mean() > target  # any lower one breaks it
    assert thresholds.suspicious == pytest.approx(0.94) and thresholds.manipulated == pytest.approx(0.98)


def test_few_negatives_put_the_threshold_just_above_the_highest_one() -> None:
    labels, scores = np.array([0] * 10 + [1]), np.r_[np.linspace(0.0, 0.6, 10), 0.9]
    thresholds = thresholds_for_fpr(labels, scores, suspicious_fpr=0.01, manipulated_fpr=0.001)
    assert thresholds.suspicious == thresholds.manipulated == np.nextafter(0.6, 1)


def test_tied_negatives_are_not_split_and_thresholds_stay_within_one() -> None:
    labels = np.array([0, 0, 0, 0, 1])
    assert thresholds_for_fpr(labels, np.array([0.5, 0.5, 0.5, 0.2, 0.9]), 0.25, 0.0).suspicious > 0.5
    assert thresholds_for_fpr(labels, np.array([1.0, 0.1, 0.1, 0.1, 0.9]), 0.0, 0.0).manipulated == 1.0


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        (np.array([0, 0, 0]), np.array([0.1, 0.2, 0.3]), "need both authentic .* all 3 are authentic"),
        (np.array([1, 1]), np.array([0.1, 0.2]), "all 2 are manipulated"),
        (np.array([0, 1]), np.array([0.1, 0.2, 0.3]), "equal length"),
        (np.array([0, 2]), np.array([0.1, 0.2]), "labels must be 0"),
        (np.array([0, 1]), np.array([0.1, 1.2]), "probabilities in"),
        (np.array([0, 1]), np.array([0.1, np.nan]), "probabilities in"),
    ],
    ids=["only-negatives", "only-positives", "lengths", "label-values", "score-range", "nan"],
)
def test_invalid_inputs_are_refused(labels: np.ndarray, scores: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_scores(labels, scores, Thresholds())
    with pytest.raises(ValueError, match=message):
        thresholds_for_fpr(labels, scores)


def test_plots_are_written_as_png(tmp_path: Path) -> None:
    labels = np.array([0, 0, 1, 1, 0, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    for plot, name in ((plot_roc, "roc.png"), (plot_score_histogram, "nested/hist.png")):
        path = plot(labels, scores, tmp_path / name)
        assert path == tmp_path / name
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 5_000
