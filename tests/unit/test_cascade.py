"""The scoring cascade's decision rule: which faces go first, when they settle a video, what a verdict uses."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from deepsift.detect.contract import PreprocessContract
from deepsift.verdicts.aggregation import aggregate
from deepsift.verdicts.cascade import Cascade, first_pass, judged_faces, settled_early
from deepsift.verdicts.labels import Thresholds

THRESHOLDS = Thresholds(suspicious=0.5, manipulated=0.8)
NAN = np.nan


def test_first_pass_takes_the_middle_frame_of_equal_runs_of_frames():
    frames = np.arange(32)
    picked = np.flatnonzero(first_pass(frames, 8))
    assert picked.tolist() == [2, 6, 10, 14, 18, 22, 26, 30]


def test_first_pass_counts_frames_not_faces_and_keeps_every_face_of_a_picked_frame():
    frames = np.array([10, 10, 10, 20, 30, 30, 40])
    mask = first_pass(frames, 2)
    assert sorted(set(frames[mask].tolist())) == [20, 40]
    assert mask.tolist() == [False, False, False, True, False, False, True]


def test_first_pass_is_every_face_when_the_video_has_few_frames():
    frames = np.array([3, 3, 7])
    assert first_pass(frames, 2).all()
    assert first_pass(frames, 8).all()


def test_first_pass_does_not_depend_on_the_order_of_faces():
    frames = np.array([5, 1, 9, 3, 7, 1, 11])
    shuffled = np.array([11, 1, 7, 3, 9, 5, 1])
    assert sorted(frames[first_pass(frames, 3)].tolist()) == sorted(shuffled[first_pass(shuffled, 3)].tolist())


@pytest.mark.parametrize(
    ("score", "settled"),
    [(0.0, True), (0.349, True), (0.35, False), (0.5, False), (0.949, False), (0.951, True), (1.0, True)],
)
def test_settled_only_outside_the_doubtful_band_widened_by_the_margin(score, settled):
    assert settled_early(score, THRESHOLDS, 0.15) is settled


def test_a_zero_margin_settles_below_suspicious_and_at_manipulated():
    assert settled_early(0.499, THRESHOLDS, 0.0)
    assert not settled_early(0.5, THRESHOLDS, 0.0)
    assert settled_early(0.8, THRESHOLDS, 0.0)


def test_without_a_cascade_a_verdict_needs_every_face():
    frames = np.array([0, 1, 2])
    assert judged_faces(np.array([0.1, 0.2, 0.3]), frames, "mean", THRESHOLDS, None).all()
    assert judged_faces(np.array([0.1, NAN, 0.3]), frames, "mean", THRESHOLDS, None) is None


def test_a_clear_first_pass_is_the_whole_verdict():
    frames = np.array([0, 1, 2, 3])
    cascade = Cascade(first_frames=2, margin=0.1)
    clear_real = np.array([NAN, 0.05, NAN, 0.1])
    assert judged_faces(clear_real, frames, "mean", THRESHOLDS, cascade).tolist() == [False, True, False, True]
    clear_fake = np.array([NAN, 0.95, NAN, 0.99])
    assert judged_faces(clear_fake, frames, "mean", THRESHOLDS, cascade).tolist() == [False, True, False, True]


def test_a_settled_video_ignores_scores_outside_its_first_pass():
    frames = np.array([0, 1, 2, 3])
    cascade = Cascade(first_frames=2, margin=0.1)
    every = np.array([0.9, 0.05, 0.9, 0.1])
    mask = judged_faces(every, frames, "mean", THRESHOLDS, cascade)
    assert mask.tolist() == [False, True, False, True]
    assert aggregate("mean", every[mask], frames[mask]) == pytest.approx(0.075)


def test_a_doubtful_first_pass_waits_for_every_face():
    frames = np.array([0, 1, 2, 3])
    cascade = Cascade(first_frames=2, margin=0.1)
    assert judged_faces(np.array([NAN, 0.5, NAN, 0.6]), frames, "mean", THRESHOLDS, cascade) is None
    assert judged_faces(np.array([0.2, 0.5, 0.3, 0.6]), frames, "mean", THRESHOLDS, cascade).all()


def test_an_unfinished_first_pass_decides_nothing():
    frames = np.array([0, 1, 2, 3])
    cascade = Cascade(first_frames=2, margin=0.1)
    assert judged_faces(np.array([0.1, 0.1, 0.1, NAN]), frames, "mean", THRESHOLDS, cascade) is None


def test_the_first_pass_is_aggregated_with_the_contract_rule():
    frames = np.array([0, 1, 1, 2, 3])
    cascade = Cascade(first_frames=2, margin=0.1)
    scores = np.array([NAN, 0.3, 0.95, NAN, 0.3])  # frame 1 has a clear fake face beside a real one
    assert judged_faces(scores, frames, "mean", THRESHOLDS, cascade) is None  # mean 0.52: in doubt
    settled = judged_faces(scores, frames, "max", THRESHOLDS, cascade)  # max 0.95: clearly manipulated
    assert settled is not None and settled.tolist() == [False, True, True, False, True]


def test_cascade_settings_are_validated():
    with pytest.raises(ValidationError):
        Cascade(first_frames=0)
    with pytest.raises(ValidationError):
        Cascade(margin=-0.1)
    with pytest.raises(ValidationError):
        Cascade(first_frames=8, margin=0.1, stop=True)


def test_contracts_saved_before_the_cascade_have_none_and_a_cascade_round_trips():
    old = '{"architecture": "efficientnet_b0", "input_size": 224, "aggregation": "mean"}'
    assert PreprocessContract.from_json(old).cascade is None
    contract = PreprocessContract(architecture="efficientnet_b0", input_size=224, cascade=Cascade(first_frames=4))
    assert PreprocessContract.from_json(contract.to_json()).cascade == Cascade(first_frames=4, margin=0.15)
