"""Video-level evaluation of a detector: score labelled videos, measure, plot, and log to MLflow.

A verdict is given per video, so a detector is judged per video: the face scores of each video are
aggregated with the same rule the scan uses, then ranked and measured by
:func:`~deepsift.detect.metrics.evaluate_scores`. The report carries an ``eval_set_id`` naming the
exact set of (video, label) pairs the metrics were measured on, so promotion compares two versions
only when they were evaluated on the same videos.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from deepsift.detect.contract import Thresholds
from deepsift.detect.metrics import evaluate_scores, plot_roc, plot_score_histogram, thresholds_for_fpr
from deepsift.detect.scoring import FaceScorer
from deepsift.verdicts.aggregation import aggregate

ROC_FILE = "roc.png"
HISTOGRAM_FILE = "score_histogram.png"
"""Where the plots go among a run's artifacts."""


@dataclass(frozen=True)
class VideoFaces:
    """The face crops of one labelled video, as the scan extracts them.

    ``crops`` is (N, S, S, 3) uint8 BGR with S the contract's input size; ``frame_indices`` gives the
    frame each crop came from. A video with no crops (N = 0) is allowed: evaluation skips it.
    """

    video_id: str
    label: int
    """1 manipulated, 0 authentic."""
    crops: np.ndarray
    frame_indices: np.ndarray

    def __post_init__(self) -> None:
        if self.label not in (0, 1):
            raise ValueError(
                f"video {self.video_id}: label must be 0 (authentic) or 1 (manipulated), got {self.label!r}"
            )
        if len(self.crops) != len(self.frame_indices):
            raise ValueError(
                f"video {self.video_id}: {len(self.crops)} crops but {len(self.frame_indices)} frame indices"
            )


class VideoScores(NamedTuple):
    """Labels and aggregated scores of the scored videos (same order), and the videos skipped for lack of faces."""

    labels: np.ndarray
    scores: np.ndarray
    video_ids: tuple[str, ...]
    skipped_video_ids: tuple[str, ...]


@dataclass(frozen=True)
class EvaluationReport:
    """What :func:`evaluate_detector` measured, on which videos, at which thresholds."""

    metrics: dict[str, float]
    """:func:`evaluate_scores` at ``thresholds``; floats, ready for MLflow."""
    thresholds: Thresholds
    aggregation: str
    n_videos: int
    """Videos scored, the ones the metrics are measured on."""
    n_skipped: int
    """Videos without a single face crop, left out of the metrics and of ``eval_set_id``."""
    eval_set_id: str
    roc_path: Path
    histogram_path: Path


def score_videos(scorer: FaceScorer, videos: list[VideoFaces], aggregation: str) -> VideoScores:
    """Score every crop and aggregate each video's face scores with the rule named ``aggregation``.

    Videos without crops have no score (the scan gives them reason ``no_face``), so they are skipped
    and listed in ``skipped_video_ids``. Each video is scored as one batch, which keeps memory bounded
    by the largest video rather than the whole set.
    """
    labels: list[int] = []
    scores: list[float] = []
    scored: list[str] = []
    skipped: list[str] = []
    for video in videos:
        if len(video.crops) == 0:
            skipped.append(video.video_id)
            continue
        face_scores = scorer.score(video.crops)
        scores.append(aggregate(aggregation, face_scores, np.asarray(video.frame_indices)))
        labels.append(video.label)
        scored.append(video.video_id)
    return VideoScores(
        labels=np.asarray(labels, dtype=np.int64),
        scores=np.asarray(scores, dtype=np.float64),
        video_ids=tuple(scored),
        skipped_video_ids=tuple(skipped),
    )


def eval_set_id(video_ids: list[str] | tuple[str, ...], labels: np.ndarray | list[int]) -> str:
    """A stable id of a set of (video_id, label) pairs: independent of order, changed by any label.

    >>> eval_set_id(["b", "a"], [1, 0]) == eval_set_id(["a", "b"], [0, 1])
    True
    >>> eval_set_id(["a"], [0])
    'sha256:6f5da5f0ac3daaea'
    """
    pairs = sorted(zip(video_ids, (int(label) for label in labels), strict=True))
    if len({video_id for video_id, _ in pairs}) != len(pairs):
        raise ValueError("an evaluation set must not list the same video_id twice")
    canonical = json.dumps(pairs, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(canonical.encode("ascii")).hexdigest()[:16]


def evaluate_detector(
    scorer: FaceScorer,
    videos: list[VideoFaces],
    *,
    artifacts_dir: Path,
    suspicious_fpr: float = 0.01,
    manipulated_fpr: float = 0.001,
    choose_thresholds: bool = True,
    aggregation: str | None = None,
) -> EvaluationReport:
    """Score ``videos``, measure the detector at its thresholds, and write ROC and histogram PNGs.

    With ``choose_thresholds`` the thresholds are the lowest meeting ``suspicious_fpr`` and
    ``manipulated_fpr`` on these videos' negatives (:func:`thresholds_for_fpr`), to be saved in the
    version's contract; the metrics at them are then in-sample, so their FPRs meet the targets by
    construction. Without it, the thresholds already in ``scorer.contract`` are measured. The
    aggregation rule defaults to the contract's. Both classes must be present among scored videos.
    """
    rule = aggregation or scorer.contract.aggregation
    scored = score_videos(scorer, videos, rule)
    if scored.labels.size == 0:
        raise ValueError(f"none of the {len(videos)} videos has a face crop; nothing to evaluate")
    if choose_thresholds:
        thresholds = thresholds_for_fpr(scored.labels, scored.scores, suspicious_fpr, manipulated_fpr)
    else:
        thresholds = scorer.contract.thresholds
    artifacts_dir = Path(artifacts_dir)
    return EvaluationReport(
        metrics=evaluate_scores(scored.labels, scored.scores, thresholds),
        thresholds=thresholds,
        aggregation=rule,
        n_videos=int(scored.labels.size),
        n_skipped=len(scored.skipped_video_ids),
        eval_set_id=eval_set_id(scored.video_ids, scored.labels),
        roc_path=plot_roc(scored.labels, scored.scores, artifacts_dir / ROC_FILE),
        histogram_path=plot_score_histogram(scored.labels, scored.scores, artifacts_dir / HISTOGRAM_FILE),
    )
