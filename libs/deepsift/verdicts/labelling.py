"""One video's face scores to its score and label: the body of the verdict stage's per-video UDF.

Apart from the verdict stage so that the Python workers that run it import pandas and these rules
only, not the stage's Spark, Delta and MLflow code.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from deepsift.verdicts.aggregation import aggregate
from deepsift.verdicts.cascade import Cascade, judged_faces
from deepsift.verdicts.labels import EXTRACTION_OK, Thresholds, verdict_for

LABELLED_SCHEMA = "video_id string, score double, verdict string, reason string, n_frames_scored int"
"""What :func:`labeller`'s function returns, one row per video."""


def labeller(
    aggregation: str, thresholds: Thresholds, cascade: Cascade | None
) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The verdict stage's per-video function (``applyInPandas``) over rows (video_id, status, reason,
    n_faces, frame_index, score), one per face or one with a NULL score for a video without faces; its
    output follows :data:`LABELLED_SCHEMA`, with a NULL verdict while a video's scores are incomplete."""

    def label(group: pd.DataFrame) -> pd.DataFrame:
        first = group.iloc[0]
        status = first["status"]
        reason = first["reason"] if isinstance(first["reason"], str) else None
        n_faces = 0 if pd.isna(first["n_faces"]) else int(first["n_faces"])
        score: float | None = None
        n_frames_scored = 0
        if status == EXTRACTION_OK and n_faces > 0:
            judged = _judged(group, n_faces, aggregation, thresholds, cascade)
            if judged is None:
                unscored = {"video_id": first["video_id"], "score": None, "verdict": None, "reason": None}
                return pd.DataFrame([unscored | {"n_frames_scored": None}])
            score = aggregate(aggregation, judged["score"].to_numpy(), judged["frame_index"].to_numpy(dtype="int64"))
            n_frames_scored = judged["frame_index"].nunique()
        verdict, why = verdict_for(score, thresholds, status, reason, n_faces)
        labelled = {"video_id": first["video_id"], "score": score, "verdict": verdict.value, "reason": why}
        return pd.DataFrame([labelled | {"n_frames_scored": n_frames_scored}])

    return label


def _judged(
    group: pd.DataFrame, n_faces: int, aggregation: str, thresholds: Thresholds, cascade: Cascade | None
) -> pd.DataFrame | None:
    """The rows of one video's faces its score is made from; None while one of them has no score.

    Without a cascade the rows are the run's scores and every one of the ``n_faces`` faces needs one;
    with one, the rows are every face and :func:`deepsift.verdicts.cascade.judged_faces` decides.
    """
    if cascade is None:
        scored = group[group["score"].notna()]
        return scored if len(scored) == n_faces else None
    scores = group["score"].to_numpy(dtype="float64", na_value=np.nan)
    mask = judged_faces(scores, group["frame_index"].to_numpy(dtype="int64"), aggregation, thresholds, cascade)
    return None if mask is None else group[mask]
