"""verdict_for: every branch, and scores exactly at the thresholds."""

from __future__ import annotations

import math

import pytest

from deepsift.reasons import Reason
from deepsift.verdicts.labels import Thresholds, Verdict, verdict_for

THRESHOLDS = Thresholds(suspicious=0.5, manipulated=0.8)


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (0.0, Verdict.AUTHENTIC),
        (0.4999999, Verdict.AUTHENTIC),
        (0.5, Verdict.SUSPICIOUS),
        (0.7999999, Verdict.SUSPICIOUS),
        (0.8, Verdict.MANIPULATED),
        (1.0, Verdict.MANIPULATED),
    ],
)
def test_scored_videos_take_the_higher_label_at_a_threshold(score, expected):
    assert verdict_for(score, THRESHOLDS, "ok", None, 3) == (expected, None)


def test_equal_thresholds_leave_no_suspicious_band():
    equal = Thresholds(suspicious=0.6, manipulated=0.6)
    assert verdict_for(0.6, equal, "ok", None, 1) == (Verdict.MANIPULATED, None)
    assert verdict_for(0.5999, equal, "ok", None, 1) == (Verdict.AUTHENTIC, None)


@pytest.mark.parametrize(
    "reason",
    [Reason.OPEN_ERROR, Reason.NO_VIDEO_STREAM, Reason.DECODE_ERROR, Reason.TIMEOUT, Reason.RESOURCE_LIMIT,
     Reason.UNSUPPORTED_URI, "a_reason_added_later"],
)
def test_failed_extractions_are_errors_that_keep_their_reason(reason):
    assert verdict_for(None, THRESHOLDS, "error", str(reason), 0) == (Verdict.ERROR, str(reason))


@pytest.mark.parametrize("reason", [Reason.TOO_SHORT, Reason.FACE_TOO_SMALL])
def test_content_reasons_are_not_applicable(reason):
    assert verdict_for(None, THRESHOLDS, "error", reason.value, 0) == (Verdict.NOT_APPLICABLE, reason.value)


def test_an_extracted_video_without_faces_is_not_applicable():
    assert verdict_for(None, THRESHOLDS, "ok", None, 0) == (Verdict.NOT_APPLICABLE, "no_face")


@pytest.mark.parametrize(
    ("score", "status", "reason", "n_faces", "message"),
    [
        (None, "ok", None, 4, "needs a score"),
        (math.nan, "ok", None, 4, "needs a score"),
        (1.5, "ok", None, 4, "needs a score"),
        (-0.1, "ok", None, 4, "needs a score"),
        (0.3, "ok", None, 0, "without faces cannot have a score"),
        (None, "error", None, 0, "must carry a reason"),
        (0.3, "pending", None, 4, "unknown extraction status"),
    ],
)
def test_inconsistent_inputs_never_become_a_label(score, status, reason, n_faces, message):
    with pytest.raises(ValueError, match=message):
        verdict_for(score, THRESHOLDS, status, reason, n_faces)
