"""Verdict labels: one video's aggregated score and extraction outcome -> a label and a reason.

The one place that decides what a video is called. A video is labelled from its score only when it
was extracted and has faces; otherwise it gets ``not_applicable`` (nothing to judge: too short, no
face) or ``error`` (the scan failed on it), always with the typed reason. No branch invents a score.
"""

from __future__ import annotations

import math
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from deepsift.reasons import Reason


class Thresholds(BaseModel):
    """Video scores at or above ``suspicious`` are flagged; at or above ``manipulated`` are confident fakes.

    A model's preprocessing contract (:mod:`deepsift.detect.contract`) carries the thresholds it was
    calibrated for; they belong here, with the labels they decide.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    suspicious: float = Field(0.5, ge=0.0, le=1.0)
    manipulated: float = Field(0.8, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.manipulated < self.suspicious:
            raise ValueError("thresholds.manipulated must be >= thresholds.suspicious")
        return self


class Verdict(StrEnum):
    """The value of ``verdicts.verdict``."""

    AUTHENTIC = "authentic"
    SUSPICIOUS = "suspicious"
    MANIPULATED = "manipulated"
    NOT_APPLICABLE = "not_applicable"
    """The video cannot be judged by a face detector (``too_short``, ``no_face``, ``face_too_small``)."""
    ERROR = "error"
    """The scan failed on this video (open, decode, time or resource limits, unsupported URI, ...)."""


NOT_APPLICABLE_REASONS = frozenset({Reason.TOO_SHORT, Reason.NO_FACE, Reason.FACE_TOO_SMALL})
"""Extraction reasons that describe the content, not a failure; every other reason is an ``error``."""

EXTRACTION_OK = "ok"
EXTRACTION_ERROR = "error"
"""The values of ``extractions.status``."""


def verdict_for(
    video_score: float | None,
    thresholds: Thresholds,
    extraction_status: str,
    extraction_reason: str | None,
    n_faces: int,
) -> tuple[Verdict, str | None]:
    """The verdict and reason for one video; the reason is None exactly for scored verdicts.

    Scores at a threshold take the higher label. Inconsistent inputs (a failed extraction without a
    reason, faces without a score, a score without faces or outside [0, 1]) raise ``ValueError``
    instead of becoming a label.

    >>> verdict_for(0.8, Thresholds(suspicious=0.5, manipulated=0.8), "ok", None, 12)
    (<Verdict.MANIPULATED: 'manipulated'>, None)
    >>> verdict_for(None, Thresholds(), "ok", None, 0)
    (<Verdict.NOT_APPLICABLE: 'not_applicable'>, 'no_face')
    """
    if extraction_status == EXTRACTION_ERROR:
        if not extraction_reason:
            raise ValueError("a failed extraction must carry a reason")
        applicable = extraction_reason not in NOT_APPLICABLE_REASONS
        return (Verdict.ERROR if applicable else Verdict.NOT_APPLICABLE), extraction_reason
    if extraction_status != EXTRACTION_OK:
        raise ValueError(f"unknown extraction status {extraction_status!r}; expected 'ok' or 'error'")
    if n_faces == 0:
        if video_score is not None:
            raise ValueError(f"a video without faces cannot have a score (got {video_score})")
        return Verdict.NOT_APPLICABLE, Reason.NO_FACE.value
    if video_score is None or math.isnan(video_score) or not 0.0 <= video_score <= 1.0:
        raise ValueError(f"a video with {n_faces} faces needs a score in [0, 1], got {video_score}")
    if video_score >= thresholds.manipulated:
        return Verdict.MANIPULATED, None
    if video_score >= thresholds.suspicious:
        return Verdict.SUSPICIOUS, None
    return Verdict.AUTHENTIC, None
