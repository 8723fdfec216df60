"""The scoring cascade: score a few frames of a video first, and the rest only when they leave doubt.

A model's contract may carry a :class:`Cascade`. The first pass is the faces of ``first_frames`` of
the video's frames with faces, spread evenly over them (:func:`first_pass`). When the contract's
aggregation of those faces alone lands clearly outside the doubtful band, ``margin`` below the
``suspicious`` threshold or ``margin`` above the ``manipulated`` one (:func:`settled_early`), the
video's verdict is made from them and its other faces are never scored; otherwise every face is
scored and aggregated as without a cascade. Everything here is a function of the frames and the
stored scores, so the score stage (which faces to score next) and the verdict stage (which scores a
verdict is made from) decide alike, and a rerun decides again as the first run did.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from deepsift.verdicts.aggregation import aggregate
from deepsift.verdicts.labels import Thresholds


class Cascade(BaseModel):
    """How many frames the first pass scores, and how far outside the doubtful band it must land."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    first_frames: int = Field(8, ge=1, le=1024)
    """Frames with faces scored first, spread evenly over the video's frames with faces."""
    margin: float = Field(0.15, ge=0.0, le=1.0)
    """The first pass settles a video below ``suspicious - margin`` or at ``manipulated + margin`` and above."""


def first_pass(frame_indices: np.ndarray, first_frames: int) -> np.ndarray:
    """Which faces the first pass scores: those of ``first_frames`` frames spread evenly over the video.

    The video's distinct frames with faces are cut into ``first_frames`` equal runs and the middle
    frame of each run is taken; a video with fewer frames is scored whole in the first pass.

    >>> first_pass(np.array([0, 0, 1, 2, 3, 3]), 2).tolist()
    [False, False, True, False, True, True]
    >>> first_pass(np.array([5, 9]), 8).tolist()
    [True, True]
    """
    frames = np.asarray(frame_indices)
    distinct = np.unique(frames)
    if distinct.size <= first_frames:
        return np.ones(frames.shape, dtype=bool)
    positions = ((np.arange(first_frames) + 0.5) * distinct.size / first_frames).astype(np.int64)
    return np.isin(frames, distinct[positions])


def settled_early(first_score: float, thresholds: Thresholds, margin: float) -> bool:
    """Whether a first-pass video score is clearly authentic or clearly manipulated.

    >>> settled_early(0.2, Thresholds(suspicious=0.5, manipulated=0.8), 0.15)
    True
    >>> settled_early(0.4, Thresholds(suspicious=0.5, manipulated=0.8), 0.15)
    False
    """
    return first_score < thresholds.suspicious - margin or first_score >= thresholds.manipulated + margin


def judged_faces(
    scores: np.ndarray, frame_indices: np.ndarray, aggregation: str, thresholds: Thresholds, cascade: Cascade | None
) -> np.ndarray | None:
    """Which of a video's faces its verdict is made from; None while one of them has no score yet.

    ``scores`` has one entry per face of the video, NaN where the face is not scored. Without a
    cascade that is every face; with one, the first pass when it settles the video, else every face.

    >>> cascade = Cascade(first_frames=1, margin=0.1)
    >>> judged_faces(np.array([np.nan, 0.1]), np.array([0, 1]), "mean", Thresholds(), cascade).tolist()
    [False, True]
    >>> judged_faces(np.array([np.nan, 0.45]), np.array([0, 1]), "mean", Thresholds(), cascade) is None
    True
    """
    scores = np.asarray(scores, dtype=np.float64)
    frames = np.asarray(frame_indices)
    if cascade is not None:
        first = first_pass(frames, cascade.first_frames)
        if np.isnan(scores[first]).any():
            return None
        if settled_early(aggregate(aggregation, scores[first], frames[first]), thresholds, cascade.margin):
            return first
    if np.isnan(scores).any():
        return None
    return np.ones(scores.shape, dtype=bool)
