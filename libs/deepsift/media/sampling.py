"""Sample N frames spread over a video's real timeline, at the least decoding cost.

Decoding dominates the cost of a scan (a 30 s 720p clip costs about 2 core-seconds to decode in full,
while one H100 classifies the 32 faces of 85 such videos a second), so :func:`sample_frames` never
seeks frame by frame and decodes as little as it can:

1. An index pass demuxes the first video stream without decoding. It yields the true packet count,
   the presentation timestamps and which packets are keyframes, so headers that lie about frame
   count or duration do not matter. The packets stay in memory (up to a budget) for step 2.
2. A decode pass over those packets. When keyframes are dense enough that most of the N evenly spread target times
   have a keyframe within half a target spacing, only those keyframes are sent to the decoder
   (``skip_frame="NONKEY"``): mode ``"keyframes"``. Otherwise the wanted frames are the ones nearest
   the targets, and only the groups of pictures (GOPs) that hold one are decoded, each from its
   keyframe up to its last wanted frame: mode ``"gops"``. A GOP-limited pass gives exactly the frames
   a full forward decode would; where it misses one (a leading picture of an open GOP that needs the
   GOP before), or where the stream has no timestamps or keyframe flags, every packet is decoded in one
   forward pass up to the last wanted frame: mode ``"forward"``. With
   ``sampling.reference_frames_only`` (and keyframes too sparse), the same packets are sent but the
   decoder skips the frames no other frame refers to (``skip_frame="NONREF"``), and the decoded frame
   nearest each target time is kept: mode ``"reference"`` (in a GOP-limited pass, a target at the end
   of a GOP may get an earlier frame than the next GOP's keyframe). Either way, only the frames that
   are kept are converted to arrays.

Frames come back as BGR ``uint8`` arrays, stretched to the display aspect ratio when pixels are not
square and rotated upright.
"""

from __future__ import annotations

import bisect
import itertools
import math
import os
import statistics
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Literal

import av
import cv2
import numpy as np
from av.container import InputContainer
from av.stream import Discard
from av.video.codeccontext import VideoCodecContext
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from deepsift.config import DecodeLimits, SamplingConfig
from deepsift.media.isolation import threads_that_fit
from deepsift.media.probe import clockwise_rotation, enforce_limits, first_video_stream, open_local, stream_fps
from deepsift.reasons import MediaError, Reason

MODE_KEYFRAMES = "keyframes"
MODE_GOPS = "gops"
MODE_FORWARD = "forward"
MODE_REFERENCE = "reference"
_SKIP_FRAME: dict[str, Literal["NONKEY", "NONREF"]] = {MODE_KEYFRAMES: "NONKEY", MODE_REFERENCE: "NONREF"}
"""What the decoder may skip in each mode; every other mode decodes every frame it is sent."""

_MAX_FPS = 1000
"""Packets beyond ``max_duration_s * _MAX_FPS`` breach the duration limit even without timestamps."""
_PACKET_CACHE_BYTES = 256 << 20
"""Packets of a video up to this size (and a quarter of ``memory_mb``) are kept between passes."""
_MAX_CONSECUTIVE_ERRORS = 64
"""A forward pass gives up after this many packets in a row that the decoder rejects."""
_FFMPEG_AUTO_THREADS_MAX = 16
"""FFmpeg's own choice of decoder threads (``thread_count`` 0): a thread per core and one more, at most this."""
_FRAMES_PER_DECODER_THREAD = 8
"""Frame buffers to budget for each decoder thread beside its stack. Measured under a 256 MB cap: 640x360
H.264 decoded with 16 threads and failed with 24, 1080p H.264 with 8 and not always with 12, 720p HEVC
with 12 and not always with 16, about six frames a thread; eight keeps a margin."""
_BYTES_PER_PIXEL_AT_MOST = 3
"""A decoded frame's bytes per pixel, at most: 4:4:4 at 8 bits, or 4:2:0 at 16 (4:2:0 at 8 bits is 1.5)."""
_UNKNOWN_FRAME_PIXELS = 1920 * 1080
"""The frame size to budget for when the stream does not say."""
_SAR_RANGE = (Fraction(1, 4), Fraction(4))
"""Sample aspect ratios outside this range are treated as bogus metadata and ignored."""
_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


@dataclass
class SampledFrame:
    """One sampled frame, ready for face detection."""

    frame_index: int
    """Position of the frame among all frames of the video stream, in the order a full decode
    returns them (presentation order), whichever mode sampled it."""
    ts_s: float
    """Seconds from the first frame's presentation time (NaN when the stream has neither
    timestamps nor a frame rate)."""
    image: np.ndarray
    """H x W x 3 ``uint8`` BGR, display aspect ratio, upright."""


@dataclass
class SampleResult:
    """Sampled frames plus what they cost, for stage metrics and benchmarks."""

    frames: list[SampledFrame]
    mode: str
    """``"keyframes"``, ``"gops"``, ``"forward"`` or ``"reference"``."""
    n_packets: int
    """Video packets demuxed by the index pass (the true length of the stream)."""
    n_decoded: int
    """Frames the decoder produced, over every decode pass."""
    seconds: float


@dataclass
class _Index:
    """What the index pass learned about the first video stream."""

    n_packets: int
    """Non-empty packets, including those marked to be discarded (edit lists)."""
    shown_pts: list[int | None]
    """Timestamps of the packets that are shown, in packet order."""
    shown_ordinals: list[int]
    """Packet ordinal of each entry of ``shown_pts``."""
    open_gops: bool
    """Some packet after a keyframe (in decode order) is shown before it: a leading picture."""
    keyframes: list[tuple[int, int | None]]
    """(packet ordinal, pts) of the shown keyframe packets."""
    time_base: Fraction
    fps: float | None
    packets: list[av.Packet] | None
    """Every non-empty packet in order, or ``None`` when they did not fit the cache budget."""
    demux_error: str | None

    @property
    def has_pts(self) -> bool:
        return bool(self.shown_pts) and None not in self.shown_pts


@dataclass
class _Plan:
    """Which frames to keep and which packets to decode."""

    mode: str
    n_wanted: int
    by_pts: dict[int, int] = field(default_factory=dict)
    """pts -> frame_index of the wanted frames (streams with timestamps)."""
    by_order: dict[int, int] = field(default_factory=dict)
    """n-th decoder output -> frame_index, for frames that come out without a timestamp."""
    feed: set[int] | None = None
    """Packet ordinals to send to the decoder; ``None`` sends every packet."""
    ts_of: dict[int, float] = field(default_factory=dict)
    """frame_index -> seconds from the first frame."""
    targets: list[float] = field(default_factory=list)
    """Mode ``reference``: the target timestamps, each to be met by the nearest decoded frame."""
    timeline: list[int] = field(default_factory=list)
    """Mode ``reference``: every shown timestamp in order (a frame's index is its position here)."""
    time_base: Fraction = Fraction(1)
    """Mode ``reference``: seconds per timestamp tick."""


def sample_frames(
    path: str | os.PathLike[str],
    sampling: SamplingConfig,
    limits: DecodeLimits,
    rotation: int | None = None,
    decoder_threads: int = 0,
) -> SampleResult:
    """Take ``sampling.frames_per_video`` frames spread over the video (all of them if it is shorter).

    ``rotation`` is the clockwise rotation from :func:`deepsift.media.probe.probe`; ``None`` reads
    it from the decoded frames. ``decoder_threads`` 0 lets FFmpeg use every core (lowest latency);
    1 costs fewer core-seconds where every core already runs a task. Raises :class:`MediaError` with
    ``open_error``, ``no_video_stream``, ``resource_limit`` or ``decode_error`` (no frame decoded).
    """
    started = time.perf_counter()
    container, stream = _open_video(path, limits)
    with container:
        index = _index_packets(container, stream, limits)
        plan = _plan(index, sampling)
        decoded = _Decoded(first_error=index.demux_error)
        _decode(path, index, stream, plan, limits, rotation, decoder_threads, decoded)
        enough = sampling.keyframe_min_coverage * sampling.frames_per_video
        if plan.mode == MODE_KEYFRAMES and len(decoded.frames) < enough:
            plan = _plan(index, sampling, allow_keyframes=False)
            decoded = _Decoded(n_decoded=decoded.n_decoded, first_error=decoded.first_error)
            _decode(path, index, stream, plan, limits, rotation, decoder_threads, decoded)
        if plan.mode == MODE_GOPS and len(decoded.frames) < plan.n_wanted:
            plan = replace(plan, mode=MODE_FORWARD, feed=None)
            decoded = _Decoded(n_decoded=decoded.n_decoded, first_error=decoded.first_error)
            _decode(path, index, stream, plan, limits, rotation, decoder_threads, decoded)
    if not decoded.frames:
        detail = decoded.first_error or "the decoder returned no frame"
        raise MediaError(Reason.DECODE_ERROR, f"{detail} ({index.n_packets} packets, {decoded.n_decoded} decoded)")
    frames = sorted(decoded.frames, key=lambda sampled: sampled.frame_index)
    return SampleResult(frames, plan.mode, index.n_packets, decoded.n_decoded, time.perf_counter() - started)


def _open_video(path: str | os.PathLike[str], limits: DecodeLimits) -> tuple[InputContainer, VideoStream]:
    container = open_local(path)
    stream = first_video_stream(container)
    if stream is None:
        n_streams = len(container.streams)
        container.close()
        raise MediaError(Reason.NO_VIDEO_STREAM, f"{n_streams} streams, none of them video")
    try:
        enforce_limits(len(container.streams), stream.codec_context.width, stream.codec_context.height, None, limits)
    except MediaError:
        container.close()
        raise
    for other in container.streams:
        if other.index != stream.index:
            other.discard = Discard.all
    return container, stream


def _index_packets(container: InputContainer, stream: VideoStream, limits: DecodeLimits) -> _Index:
    """Demux the video stream without decoding; a corrupt tail ends the index, keeping what came before.

    The packets are kept for the decode pass while they fit the cache budget, so that the file is
    opened (and its stream info analysed) only once.
    """
    time_base = stream.time_base or Fraction(1, 1)
    fps = stream_fps(stream)
    max_ticks = limits.max_duration_s / float(time_base)
    max_packets = int(limits.max_duration_s * _MAX_FPS)
    budget = min(_PACKET_CACHE_BYTES, (limits.memory_mb << 20) // 4)
    cached: list[av.Packet] | None = []
    cached_bytes = 0
    shown: list[int | None] = []
    shown_ordinals: list[int] = []
    keyframes: list[tuple[int, int | None]] = []
    n_packets = 0
    low = high = keyframe_pts = None
    open_gops = False
    demux_error = None
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            n_packets += 1
            if n_packets > max_packets:
                raise MediaError(Reason.RESOURCE_LIMIT, f"more than {max_packets} video packets")
            if cached is not None:
                cached_bytes += packet.size
                cached.append(packet)
                if cached_bytes > budget:
                    cached = None
            if packet.is_discard:
                continue
            pts = packet.pts
            shown.append(pts)
            shown_ordinals.append(n_packets - 1)
            if packet.is_keyframe:
                keyframes.append((n_packets - 1, pts))
                keyframe_pts = pts
            elif pts is not None and keyframe_pts is not None and pts < keyframe_pts:
                open_gops = True
            if pts is not None:
                low = pts if low is None else min(low, pts)
                high = pts if high is None else max(high, pts)
                if high - low > max_ticks:
                    raise MediaError(
                        Reason.RESOURCE_LIMIT, f"timestamps span more than max_duration_s {limits.max_duration_s:g}"
                    )
    except av.error.MemoryError as error:
        raise MediaError(Reason.RESOURCE_LIMIT, f"out of memory demuxing: {error.strerror}") from None
    except av.error.FFmpegError as error:
        demux_error = f"demux: {type(error).__name__}: {error.strerror}"
    if not shown:
        raise MediaError(Reason.DECODE_ERROR, demux_error or "the video stream holds no packets")
    if fps is not None and low is None and len(shown) / fps > limits.max_duration_s:
        raise MediaError(Reason.RESOURCE_LIMIT, f"{len(shown)} frames at {fps:g} fps > max_duration_s")
    return _Index(n_packets, shown, shown_ordinals, open_gops, keyframes, time_base, fps, cached, demux_error)


def _plan(index: _Index, sampling: SamplingConfig, allow_keyframes: bool = True) -> _Plan:
    """Pick the wanted frames: keyframes near the target times when dense enough, else a forward pass."""
    n = sampling.frames_per_video
    if not index.has_pts:
        return _plan_by_order(index, n)
    timeline = sorted(pts for pts in index.shown_pts if pts is not None)
    steps = [b - a for a, b in itertools.pairwise(timeline) if b > a]
    spacing = (timeline[-1] - timeline[0] + (statistics.median(steps) if steps else 1)) / n
    targets = [timeline[0] + (i + 0.5) * spacing for i in range(n)]
    if allow_keyframes and len(timeline) > n:
        chosen = _keyframes_near_targets(index.keyframes, targets, spacing)
        if len(chosen) >= sampling.keyframe_min_coverage * n:
            plan = _Plan(MODE_KEYFRAMES, len(chosen), feed={ordinal for _, ordinal in chosen})
            for output, (pts, _) in enumerate(chosen):
                _want(plan, index, timeline, bisect.bisect_left(timeline, pts), output)
            return plan
    if len(timeline) <= n:
        positions = list(range(len(timeline)))
    else:
        positions = []
        for i, target in enumerate(targets):
            earliest = positions[-1] + 1 if positions else 0
            positions.append(min(max(_nearest(timeline, target), earliest), len(timeline) - (n - i)))
    plan = _Plan(MODE_FORWARD, len(positions))
    for position in positions:
        _want(plan, index, timeline, position, position)
    plan.feed = _gops_holding(index, set(plan.by_pts))
    if plan.feed is not None:
        plan.mode = MODE_GOPS
    if sampling.reference_frames_only and len(timeline) > n:
        return replace(plan, mode=MODE_REFERENCE, n_wanted=n, targets=targets, timeline=timeline, time_base=index.time_base)
    return plan


def _gops_holding(index: _Index, wanted_pts: set[int]) -> set[int] | None:
    """Packet ordinals from each wanted frame's keyframe up to the GOP's last wanted frame, in decode order.

    References come earlier in decode order, so these packets decode every wanted frame of a closed
    GOP. ``None`` (decode everything) when no packet is flagged as a keyframe, when the stream has open
    GOPs (their leading pictures refer to the GOP before, and FFmpeg's decoder drops the frames that
    follow a jump to one), or when the ranges would cover nearly every packet anyway.
    """
    starts = [ordinal for ordinal, _ in index.keyframes]
    if not starts or index.open_gops:
        return None
    last_wanted: dict[int, int] = {}
    for pts, ordinal in zip(index.shown_pts, index.shown_ordinals, strict=True):
        if pts in wanted_pts:
            gop = bisect.bisect_right(starts, ordinal) - 1
            start = starts[gop] if gop >= 0 else 0
            last_wanted[start] = max(last_wanted.get(start, ordinal), ordinal)
    feed = {ordinal for gop, last in last_wanted.items() for ordinal in range(gop, last + 1)}
    return feed if len(feed) < 0.9 * index.n_packets else None


def _keyframes_near_targets(
    keyframes: list[tuple[int, int | None]], targets: list[float], spacing: float
) -> list[tuple[int, int]]:
    """(pts, packet ordinal) of the keyframe nearest each target, among those within half a spacing."""
    start = targets[0] - spacing / 2
    nearest: dict[int, tuple[float, int, int]] = {}
    for ordinal, pts in keyframes:
        if pts is None:
            continue
        target = min(int((pts - start) // spacing), len(targets) - 1)
        distance = abs(pts - targets[target])
        if target not in nearest or distance < nearest[target][0]:
            nearest[target] = (distance, pts, ordinal)
    return sorted((pts, ordinal) for _, pts, ordinal in nearest.values())


def _nearest(timeline: list[int], target: float) -> int:
    right = bisect.bisect_left(timeline, target)
    if right == 0:
        return 0
    if right == len(timeline) or target - timeline[right - 1] <= timeline[right] - target:
        return right - 1
    return right


def _want(plan: _Plan, index: _Index, timeline: list[int], position: int, output: int) -> None:
    """Mark the frame at ``position`` of the sorted timeline as wanted, expected as decoder output n."""
    pts = timeline[position]
    plan.by_pts.setdefault(pts, position)
    plan.by_order[output] = position
    plan.ts_of[position] = float((pts - timeline[0]) * index.time_base)


def _plan_by_order(index: _Index, n: int) -> _Plan:
    """Streams without timestamps: spread over decoder output order, timed by the frame rate."""
    count = len(index.shown_pts)
    positions = range(count) if count <= n else [int((i + 0.5) * count / n) for i in range(n)]
    plan = _Plan(MODE_FORWARD, len(positions))
    for position in positions:
        plan.by_order[position] = position
        plan.ts_of[position] = position / index.fps if index.fps else math.nan
    return plan


@dataclass
class _Decoded:
    """What the decode passes produced."""

    frames: list[SampledFrame] = field(default_factory=list)
    n_decoded: int = 0
    first_error: str | None = None


def _decode(
    path: str | os.PathLike[str],
    index: _Index,
    stream: VideoStream,
    plan: _Plan,
    limits: DecodeLimits,
    rotation: int | None,
    threads: int,
    out: _Decoded,
) -> None:
    """One pass: feed the planned packets to the decoder, convert only the frames the plan wants."""
    with _packet_source(path, index, stream, limits) as (context, packets):
        context.skip_frame = _SKIP_FRAME.get(plan.mode, "DEFAULT")
        if context.is_open:
            context.flush_buffers()
        else:
            _open_decoder(context, threads)
        keeper = _Keeper(plan, limits, rotation, stream, out)
        last_fed = max(plan.feed) if plan.feed is not None else math.inf  # no feed: every packet is fed
        for ordinal, packet in enumerate(packets):
            if plan.feed is not None and ordinal not in plan.feed:
                if ordinal > last_fed:
                    break
                continue
            keeper.decode(context, packet)
            if keeper.done or keeper.consecutive_errors >= _MAX_CONSECUTIVE_ERRORS:
                return
        keeper.decode(context, None)
        keeper.finish()


def _open_decoder(context: VideoCodecContext, threads: int) -> None:
    """Open with frame and slice threads, no more than fit the address-space limit, or with one thread
    when even those cannot start."""
    context.thread_type = "AUTO"
    wanted = threads or min((os.cpu_count() or 1) + 1, _FFMPEG_AUTO_THREADS_MAX)
    frame_bytes = (context.width * context.height or _UNKNOWN_FRAME_PIXELS) * _BYTES_PER_PIXEL_AT_MOST
    fitting = threads_that_fit(wanted, _FRAMES_PER_DECODER_THREAD * frame_bytes)
    context.thread_count = threads if fitting == wanted else fitting  # 0 stays FFmpeg's choice when it fits
    try:
        context.open()
        return
    except (av.error.BlockingIOError, av.error.MemoryError):
        context.thread_count = 1
    except av.error.FFmpegError as error:
        raise MediaError(Reason.DECODE_ERROR, f"cannot open the decoder: {error.strerror}") from None
    try:
        context.open()
    except av.error.FFmpegError as error:
        raise MediaError(Reason.RESOURCE_LIMIT, f"cannot open the decoder within limits: {error.strerror}") from None


@contextmanager
def _packet_source(
    path: str | os.PathLike[str], index: _Index, stream: VideoStream, limits: DecodeLimits
) -> Iterator[tuple[VideoCodecContext, Iterable[av.Packet]]]:
    """The cached packets with the index pass's decoder, or else a fresh demux of the file."""
    if index.packets is not None:
        yield stream.codec_context, index.packets
        return
    container, fresh = _open_video(path, limits)
    with container:
        yield fresh.codec_context, _nonempty_packets(container, fresh)


def _nonempty_packets(container: InputContainer, stream: VideoStream) -> Iterator[av.Packet]:
    try:
        for packet in container.demux(stream):
            if packet.size:
                yield packet
    except av.error.MemoryError as error:
        raise MediaError(Reason.RESOURCE_LIMIT, f"out of memory demuxing: {error.strerror}") from None
    except av.error.FFmpegError:
        return


@dataclass(eq=False)
class _Keeper:
    """Receives decoded frames, keeps the planned ones, converts only those."""

    plan: _Plan
    limits: DecodeLimits
    rotation: int | None
    """Clockwise degrees to turn frames upright; None until the first kept frame's side data says."""
    stream: VideoStream
    out: _Decoded
    n_output: int = 0
    taken: set[int] = field(default_factory=set)
    consecutive_errors: int = 0
    display_sizes: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    met: int = 0
    """Mode ``reference``: how many targets have their frame."""
    previous: tuple[int, VideoFrame] | None = None
    """Mode ``reference``: the last decoded frame and its timestamp, a candidate for the next target."""

    @property
    def done(self) -> bool:
        if self.plan.mode == MODE_REFERENCE:
            return self.met >= len(self.plan.targets)
        return len(self.taken) >= self.plan.n_wanted

    def decode(self, context: VideoCodecContext, packet: av.Packet | None) -> None:
        try:
            frames = context.decode(packet)
        except av.error.MemoryError as error:
            raise MediaError(Reason.RESOURCE_LIMIT, f"decoder out of memory: {error.strerror}") from None
        except av.error.FFmpegError as error:
            self.consecutive_errors += 1
            self.out.first_error = self.out.first_error or f"{type(error).__name__}: {error.strerror}"
            return
        self.consecutive_errors = 0
        for frame in frames:
            self._receive(frame)

    def finish(self) -> None:
        """After the last packet: targets beyond the last decoded frame get that frame."""
        if self.plan.mode == MODE_REFERENCE and self.previous is not None and not self.done:
            self.met = len(self.plan.targets)
            self._take_by_pts(*self.previous)

    def _receive(self, frame: VideoFrame) -> None:
        if self.plan.mode == MODE_REFERENCE:
            self.out.n_decoded += 1
            self._receive_nearest(frame)
            return
        output = self.n_output
        self.n_output += 1
        self.out.n_decoded += 1
        if frame.pts is not None and self.plan.by_pts:
            frame_index = self.plan.by_pts.get(frame.pts)
        else:
            frame_index = self.plan.by_order.get(output)
        if frame_index is None or frame_index in self.taken:
            return
        self.taken.add(frame_index)
        image = self._to_image(frame)
        self.out.frames.append(SampledFrame(frame_index, self.plan.ts_of[frame_index], image))

    def _receive_nearest(self, frame: VideoFrame) -> None:
        """Frames arrive in presentation order: once one passes a target, the target's nearest frame is
        this one or the one before it (the earlier on a tie)."""
        pts = frame.pts
        if pts is None:
            return
        targets = self.plan.targets
        while self.met < len(targets) and pts >= targets[self.met]:
            target = targets[self.met]
            self.met += 1
            if self.previous is not None and target - self.previous[0] <= pts - target:
                self._take_by_pts(*self.previous)
            else:
                self._take_by_pts(pts, frame)
        self.previous = (pts, frame)

    def _take_by_pts(self, pts: int, frame: VideoFrame) -> None:
        """Keep ``frame`` once, as the frame at its timestamp's position among every shown frame."""
        timeline = self.plan.timeline
        frame_index = min(bisect.bisect_left(timeline, pts), len(timeline) - 1)
        if frame_index in self.taken:
            return
        self.taken.add(frame_index)
        ts_s = float((pts - timeline[0]) * self.plan.time_base)
        self.out.frames.append(SampledFrame(frame_index, ts_s, self._to_image(frame)))

    def _to_image(self, frame: VideoFrame) -> np.ndarray:
        enforce_limits(0, frame.width, frame.height, None, self.limits)
        if self.rotation is None:
            self.rotation = clockwise_rotation(frame, self.stream)
        size = (frame.width, frame.height)
        if size not in self.display_sizes:
            self.display_sizes[size] = self._display_size(frame.width, frame.height)
        width, height = self.display_sizes[size]
        if (width, height) == size:
            image = frame.to_ndarray(format="bgr24")
        else:
            image = frame.to_ndarray(format="bgr24", width=width, height=height)
        if self.rotation in _ROTATE:
            return cv2.rotate(image, _ROTATE[self.rotation])
        return np.ascontiguousarray(image)

    def _display_size(self, width: int, height: int) -> tuple[int, int]:
        """Stretch non-square pixels to the display aspect (widening, or lowering past max_pixels)."""
        sar = self.stream.sample_aspect_ratio or self.stream.codec_context.sample_aspect_ratio
        if not sar or sar == 1 or not _SAR_RANGE[0] <= sar <= _SAR_RANGE[1]:
            return width, height
        wide = max(1, round(width * sar))
        if wide * height <= self.limits.max_pixels:
            return wide, height
        return width, max(1, round(height / sar))
