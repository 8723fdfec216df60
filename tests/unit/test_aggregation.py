"""Aggregation rules against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from deepsift.verdicts.aggregation import UnknownAggregationError, aggregate, known_aggregations


def test_mean_max_and_topk_mean():
    scores = np.array([0.1, 0.2, 0.9, 0.5])
    frames = np.array([0, 1, 2, 3])
    assert aggregate("mean", scores, frames) == pytest.approx(0.425)
    assert aggregate("max", scores, frames) == pytest.approx(0.9)
    many = np.arange(10) / 10.0  # top 8 of 0.0..0.9 are 0.2..0.9, mean 0.55
    assert aggregate("topk_mean", many, np.arange(10)) == pytest.approx(0.55)


def test_max_face_per_frame_then_mean():
    # frame 0: faces 0.1 and 0.7 -> 0.7; frame 3: 0.2 -> 0.2; frame 5: 0.9 and 0.3 -> 0.9; mean 0.6
    scores = np.array([0.1, 0.2, 0.7, 0.9, 0.3])
    frames = np.array([0, 3, 0, 5, 5])
    assert aggregate("max_face_per_frame_mean", scores, frames) == pytest.approx(0.6)


def test_confident_strategy_branches():
    frames = np.arange(32)
    fake = np.array([0.95] * 14 + [0.5] * 18)  # 14 > 11 and 14 > 32/2.5 = 12.8 -> mean of the confident
    assert aggregate("confident", fake, frames) == pytest.approx(0.95)
    barely = np.array([0.95] * 12 + [0.5] * 20)  # 12 <= 12.8 -> plain mean
    assert aggregate("confident", barely, frames) == pytest.approx((0.95 * 12 + 0.5 * 20) / 32)
    real = np.array([0.1] * 30 + [0.6] * 2)  # 30 > 28.8 confident reals -> their mean
    assert aggregate("confident", real, frames) == pytest.approx(0.1)


def test_unknown_rule_and_empty_scores_are_errors():
    with pytest.raises(UnknownAggregationError, match="known: confident, max"):
        aggregate("median", np.array([0.5]), np.array([0]))
    with pytest.raises(ValueError, match="no_face"):
        aggregate("mean", np.array([]), np.array([]))
    assert set(known_aggregations()) == {"mean", "max", "topk_mean", "confident", "max_face_per_frame_mean"}
