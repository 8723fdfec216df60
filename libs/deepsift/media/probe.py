"""Content ids, safe opening and probing of untrusted video files.

Every upload is opened the same way (:func:`open_local`): only FFmpeg's ``file`` protocol and only
self-contained container formats, so that a playlist or concat list disguised as a video cannot make
FFmpeg read other files or URLs. :func:`probe` never raises for bad media: a file that cannot be
probed still yields a :class:`ProbeResult`, with ``probe_status='error'`` and a typed reason.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
from av.container import InputContainer
from av.stream import Disposition
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from deepsift.config import DecodeLimits
from deepsift.files import file_sha256
from deepsift.reasons import MediaError, Reason

ALLOWED_DEMUXERS: tuple[str, ...] = (
    "mov", "matroska", "avi", "mpeg", "mpegts", "mpegvideo", "m4v", "h264", "hevc", "obu", "ivf",
    "gif", "ogg", "flv", "asf", "mxf", "nut", "rm", "dv",
)
"""FFmpeg demuxers (by short name) that uploads may use. Formats that reference other files or URLs
(hls, dash, concat, image sequences, tee, ...) are left out on purpose."""

_OPEN_OPTIONS: dict[str, str] = {
    "protocol_whitelist": "file",
    "format_whitelist": ",".join(ALLOWED_DEMUXERS),
    "enable_drefs": "0",
    "use_absolute_path": "0",
}
"""``enable_drefs``/``use_absolute_path`` keep the MP4 demuxer from following data references."""

_ROTATION_PROBE_PACKETS = 64
"""Packets fed to the decoder, at most, to find the first frame's display matrix."""


def content_id(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of the file's bytes, streamed so that memory stays flat: the video's identity."""
    return file_sha256(path)


def open_local(path: str | os.PathLike[str]) -> InputContainer:
    """Open a local regular file for demuxing under the safe options, or raise ``open_error``."""
    location = Path(path).absolute()
    try:
        mode = location.stat().st_mode
    except OSError as error:
        raise MediaError(Reason.OPEN_ERROR, f"{type(error).__name__}: {error.strerror}") from None
    if not stat.S_ISREG(mode):
        raise MediaError(Reason.OPEN_ERROR, "not a regular file")
    try:
        return av.open(f"file:{location}", mode="r", options=dict(_OPEN_OPTIONS))
    except av.error.MemoryError as error:
        raise MediaError(Reason.RESOURCE_LIMIT, f"out of memory opening the file: {error.strerror}") from None
    except av.error.FFmpegError as error:
        detail = f"{type(error).__name__}: {error.strerror}"
        if error.errno == errno.EINVAL:
            detail += " (container format not allowed: only self-contained video containers are read)"
        raise MediaError(Reason.OPEN_ERROR, detail) from None


def first_video_stream(container: InputContainer) -> VideoStream | None:
    """The first video stream that is real video, not an attached cover picture."""
    for stream in container.streams.video:
        if not stream.disposition & Disposition.attached_pic:
            return stream
    return None


def enforce_limits(
    n_streams: int, width: int | None, height: int | None, duration_s: float | None, limits: DecodeLimits
) -> None:
    """Raise ``resource_limit`` when the stream count, frame size or duration exceeds ``limits``."""
    if n_streams > limits.max_streams:
        raise MediaError(Reason.RESOURCE_LIMIT, f"{n_streams} streams > max_streams {limits.max_streams}")
    if width and height and width * height > limits.max_pixels:
        raise MediaError(
            Reason.RESOURCE_LIMIT, f"{width}x{height} = {width * height} pixels > max_pixels {limits.max_pixels}"
        )
    if duration_s is not None and duration_s > limits.max_duration_s:
        raise MediaError(
            Reason.RESOURCE_LIMIT, f"duration {duration_s:.1f}s > max_duration_s {limits.max_duration_s:g}"
        )


def clockwise_rotation(frame: VideoFrame | None, stream: VideoStream) -> int:
    """Clockwise degrees (0, 90, 180, 270) that make frames upright, as players show them.

    The display matrix (attached by the decoder to each frame) wins; PyAV reports it as a
    counter-clockwise angle. The legacy ``rotate`` stream tag, still found in some containers, is
    already clockwise. Other angles are rounded to the nearest right angle.
    """
    if frame is not None and frame.rotation:
        return _right_angle(-frame.rotation)
    for key, value in stream.metadata.items():
        if key.lower() == "rotate":
            try:
                return _right_angle(float(value))
            except ValueError:
                return 0
    return 0


def _right_angle(degrees: float) -> int:
    return round(degrees / 90.0) % 4 * 90


@dataclass(frozen=True)
class ProbeResult:
    """What the container says about a file; headers can lie, sampling measures the truth.

    Whether the probe succeeded comes first; the fields after it are what it found (None where unknown).
    """

    probe_status: str = "ok"
    probe_error: str | None = None
    """``"<reason>: <detail>"`` when ``probe_status`` is ``"error"``."""
    container: str | None = None
    """FFmpeg's name of the demuxer that opened the file (``mov,mp4,m4a,3gp,3g2,mj2`` for MP4)."""
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    duration_s: float | None = None
    frame_count_estimate: int | None = None
    rotation: int = 0
    """Clockwise degrees needed to display the frames upright."""
    has_audio: bool = False
    n_video_streams: int = 0
    n_streams: int = 0

    @property
    def reason(self) -> Reason | None:
        """The typed reason behind ``probe_error``, if any."""
        if self.probe_error is None:
            return None
        return Reason(self.probe_error.split(":", 1)[0])


def probe(path: str | os.PathLike[str], limits: DecodeLimits) -> ProbeResult:
    """Read container and first-video-stream properties; never raises for bad media."""
    try:
        container = open_local(path)
    except MediaError as error:
        return ProbeResult(probe_status="error", probe_error=str(error))
    with container:
        fields = _container_fields(container)
        stream = first_video_stream(container)
        if stream is None:
            missing = MediaError(Reason.NO_VIDEO_STREAM, f"{fields['n_streams']} streams, none of them video")
            return ProbeResult(**fields, probe_status="error", probe_error=str(missing))
        fields.update(_stream_fields(container, stream))
        try:
            enforce_limits(fields["n_streams"], fields["width"], fields["height"], fields["duration_s"], limits)
        except MediaError as error:
            return ProbeResult(**fields, probe_status="error", probe_error=str(error))
        try:
            fields["rotation"] = clockwise_rotation(_first_frame(container, stream), stream)
        except av.error.MemoryError as error:
            failure = MediaError(Reason.RESOURCE_LIMIT, f"out of memory decoding the first frame: {error.strerror}")
            return ProbeResult(**fields, probe_status="error", probe_error=str(failure))
        return ProbeResult(**fields)


def _container_fields(container: InputContainer) -> dict[str, Any]:
    return {
        "container": container.format.name,
        "has_audio": len(container.streams.audio) > 0,
        "n_video_streams": len(container.streams.video),
        "n_streams": len(container.streams),
    }


def stream_fps(stream: VideoStream) -> float | None:
    """The stream's nominal frame rate: the header's average rate, else FFmpeg's guess; None when neither
    is a positive rate. Probe and sampling read it the same way."""
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate and rate > 0 else None


def _stream_fields(container: InputContainer, stream: VideoStream) -> dict[str, Any]:
    context = stream.codec_context
    fps = stream_fps(stream)
    duration_s: float | None = None
    if container.duration is not None and container.duration > 0:
        duration_s = container.duration / av.time_base
    elif stream.duration and stream.time_base:
        duration_s = float(stream.duration * stream.time_base)
    frame_count = stream.frames if stream.frames > 0 else None
    if frame_count is None and duration_s is not None and fps is not None:
        frame_count = round(duration_s * fps) or None
    return {
        "codec": context.codec.canonical_name if context.codec else None,
        "width": context.width or None,
        "height": context.height or None,
        "fps": fps,
        "duration_s": duration_s,
        "frame_count_estimate": frame_count,
    }


def _first_frame(container: InputContainer, stream: VideoStream) -> VideoFrame | None:
    """Decode the first frame (single-threaded, a bounded number of packets) for its side data."""
    stream.codec_context.thread_count = 1
    try:
        for n_packets, packet in enumerate(container.demux(stream)):
            if n_packets >= _ROTATION_PROBE_PACKETS:
                break
            for frame in packet.decode():
                return frame
    except av.error.MemoryError:
        raise  # not a property of the file: the caller reports it as resource_limit
    except av.error.FFmpegError:
        return None
    return None
