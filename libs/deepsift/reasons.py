"""Why a video could not be scanned: the one list of typed reasons every stage and table uses."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """A reason stored in tables (``probe_error``, ``extractions.reason``, ``verdicts.reason``)."""

    OPEN_ERROR = "open_error"
    """The container could not be opened or parsed at all (empty, random bytes, truncated header)."""
    NO_VIDEO_STREAM = "no_video_stream"
    DECODE_ERROR = "decode_error"
    """The decoder failed or crashed before the wanted frames were read."""
    TIMEOUT = "timeout"
    """Decoding took longer than ``decode.timeout_s``; the worker was killed."""
    RESOURCE_LIMIT = "resource_limit"
    """Too many pixels, streams, seconds of video, or more memory than ``decode.memory_mb``."""
    UNSUPPORTED_URI = "unsupported_uri"
    """The URI's scheme cannot be read by this deployment."""
    TOO_SHORT = "too_short"
    NO_FACE = "no_face"
    FACE_TOO_SMALL = "face_too_small"


class MediaError(Exception):
    """A video cannot go further through the pipeline, for a typed reason (never a silent default)."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
