"""Benchmark: what does sampling 32 frames cost compared with decoding every frame?

Generates 60 s H.264 clips (testsrc2) with FFmpeg into a temporary folder: 720p and 1080p with a GOP
of 2 s, where keyframes are dense enough for keyframe mode, and 720p with a GOP of 250 frames, where
they are not (forward mode). Measures per video, as the median of ``--repeats`` runs:

(a) ``sample_frames`` with 32 frames, in process;
(b) a full decode with OpenCV (``cv2.VideoCapture.read()`` on every frame), the naive baseline;
(c) ``sample_frames`` through a warm :class:`IsolatedWorker`, the call returning frame indices and
    shapes, as a scan returns small face crops; (c') returns the frames' pixels as well.

(a) and (c) run interleaved so that drifting load on the machine hits them alike. Core-seconds
are CPU time of every thread (FFmpeg's and the worker's included), which is what limits a scan that
keeps every core busy. Prints markdown tables and writes them into ``docs/benchmarks.md`` under
"## Decode and sample (bench/decode.py)".

    python bench/decode.py [--seconds 60] [--repeats 3] [--heights 720 1080] [--gop250-heights 720]
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import cv2

from deepsift.config import DecodeLimits, SamplingConfig
from deepsift.media.isolation import IsolatedWorker
from deepsift.media.sampling import sample_frames

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCS_FILE = REPO_ROOT / "docs" / "benchmarks.md"
HEADING = "## Decode and sample (bench/decode.py)"
FPS = 25
WIDTHS = {720: 1280, 1080: 1920}


@dataclass
class Cost:
    """Median core-seconds and wall seconds of one measured operation."""

    core_s: float
    wall_s: float


def summarize_sample(path: str, frames_per_video: int, with_images: bool) -> dict[str, Any]:
    """Worker target for (c): sample, then return the frames' metadata (and pixels if asked).

    ``inner_core_s`` is the CPU time of ``sample_frames`` itself, so that the caller can tell the
    cost of isolation (pickling, pipe, worker loop) apart from the run-to-run noise of decoding.
    """
    started = time.process_time()
    result = sample_frames(path, SamplingConfig(frames_per_video=frames_per_video), DecodeLimits())
    return {
        "inner_core_s": time.process_time() - started,
        "frames": [(f.frame_index, f.ts_s, f.image.shape) for f in result.frames],
        "images": [f.image for f in result.frames] if with_images else None,
    }


def make_clip(folder: Path, height: int, gop: int, seconds: int) -> Path:
    """A ``seconds``-long H.264 clip (testsrc2, x264 veryfast) with a fixed GOP of ``gop`` frames."""
    path = folder / f"testsrc2_{height}p_gop{gop}.mp4"
    source = f"testsrc2=size={WIDTHS[height]}x{height}:rate={FPS}:duration={seconds}"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source,
         "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
         "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", str(path)],
        check=True,
    )
    return path


def timed(operation: Callable[[], float]) -> Cost:
    """One run; ``operation`` returns the CPU seconds it spent outside this process."""
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    elsewhere = operation()
    return Cost(time.process_time() - cpu_before + elsewhere, time.perf_counter() - wall_before)


def median(costs: list[Cost]) -> Cost:
    return Cost(statistics.median(c.core_s for c in costs), statistics.median(c.wall_s for c in costs))


def in_process(path: Path, sampling: SamplingConfig, limits: DecodeLimits) -> float:
    sample_frames(path, sampling, limits)
    return 0.0


def full_decode_opencv(path: Path) -> float:
    capture = cv2.VideoCapture(str(path))
    while capture.read()[0]:
        pass
    capture.release()
    return 0.0


class Isolated:
    """(c) and (c'): sample_frames in a warm IsolatedWorker, with the worker's CPU time counted."""

    def __init__(self, worker: IsolatedWorker, path: Path, with_images: bool) -> None:
        self.worker, self.path, self.with_images = worker, path, with_images
        self.inner_core_s: list[float] = []

    def __call__(self) -> float:
        before = self.worker.call("time:process_time")
        reply = self.worker.call("decode:summarize_sample", str(self.path), 32, self.with_images)
        self.inner_core_s.append(reply["inner_core_s"])
        return self.worker.call("time:process_time") - before


def run(seconds: int, repeats: int, heights: list[int], gop250_heights: list[int]) -> list[str]:
    """Measure every clip; return the markdown lines of both tables."""
    sampling, limits = SamplingConfig(frames_per_video=32), DecodeLimits()
    costs = [
        (
            "| clip | mode | frames | (a) sampler core-s | (a) wall s | (b) OpenCV full decode core-s | (b) wall s "
            "| (b)/(a) core-s |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    isolation = [
        (
            "| clip | (a) in process core-s | (c) isolated core-s | (c) wall s | (c)-(a) core / wall "
            "| isolation work inside (c) | (c') returning the 32 frames' pixels core-s |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    clips = [(height, 2 * FPS) for height in heights] + [(height, 250) for height in gop250_heights]
    with tempfile.TemporaryDirectory(prefix="deepsift-bench-") as tmp, IsolatedWorker(limits) as worker:
        for height, gop in clips:
            clip = make_clip(Path(tmp), height, gop, seconds)
            name = f"{height}p, {seconds} s, GOP {gop} frames ({gop / FPS:g} s)"
            result = sample_frames(clip, sampling, limits)
            full = median([timed(partial(full_decode_opencv, clip)) for _ in range(repeats)])
            if gop != 2 * FPS:
                sampler = median([timed(partial(in_process, clip, sampling, limits)) for _ in range(repeats)])
            else:
                isolated, pixels = Isolated(worker, clip, False), Isolated(worker, clip, True)
                isolated()
                in_runs, iso_runs = [], []
                for _ in range(repeats):
                    in_runs.append(timed(partial(in_process, clip, sampling, limits)))
                    iso_runs.append(timed(isolated))
                sampler, iso = median(in_runs), median(iso_runs)
                pix = median([timed(pixels) for _ in range(repeats)])
                inside = statistics.median(
                    cost.core_s - inner for cost, inner in zip(iso_runs, isolated.inner_core_s[1:], strict=True)
                )
                isolation.append(
                    f"| {name} | {sampler.core_s:.3f} | {iso.core_s:.3f} | {iso.wall_s:.3f} "
                    f"| {_percent(iso.core_s, sampler.core_s)} / {_percent(iso.wall_s, sampler.wall_s)} "
                    f"| {1000 * inside:.1f} ms ({100 * inside / sampler.core_s:.1f}%) | {pix.core_s:.3f} |"
                )
            costs.append(
                f"| {name} | {result.mode} | {len(result.frames)} | {sampler.core_s:.3f} | {sampler.wall_s:.3f} "
                f"| {full.core_s:.2f} | {full.wall_s:.2f} | {full.core_s / sampler.core_s:.1f}x |"
            )
            print(costs[-1], flush=True)
    return [*costs, "", *isolation]


def _percent(value: float, base: float) -> str:
    return f"{100.0 * (value - base) / base:+.1f}%"


def write_docs(rows: list[str], repeats: int, seconds: int) -> None:
    """Replace (or add) this benchmark's section in docs/benchmarks.md, leaving other sections alone."""
    today = datetime.date.today().isoformat()
    section = "\n".join([
        HEADING,
        "",
        (
            f"2-core dev machine (shared with other jobs, so wall times are noisy), {today}; median of {repeats} "
            f"runs per cell; {seconds} s testsrc2 clips at 25 fps, x264 veryfast; 32 frames per video. Core-seconds count "
            "the CPU time of every thread (FFmpeg's decoder threads and the isolated worker included): a scan keeps "
            "every core busy, so core-seconds per video set its throughput. \"Isolation work inside (c)\" is (c) "
            "minus the CPU time of `sample_frames` measured inside the worker: the pipe, pickling and worker loop, "
            "free of the run-to-run noise of decoding, which on this shared machine moves (c)-(a) by up to "
            "±20% either way between runs."
        ),
        "",
        *rows,
        "",
    ])
    text = DOCS_FILE.read_text(encoding="utf-8") if DOCS_FILE.exists() else (
        "# Benchmarks\n\nMeasured costs of deepsift's stages; each section names the script that produced it.\n"
    )
    if HEADING in text:
        start = text.index(HEADING)
        following = text.find("\n## ", start + len(HEADING))
        text = text[:start] + section + (text[following + 1:] if following != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOCS_FILE.parent.mkdir(parents=True, exist_ok=True)
    DOCS_FILE.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--heights", type=int, nargs="+", default=[720, 1080], choices=sorted(WIDTHS))
    parser.add_argument(
        "--gop250-heights", type=int, nargs="*", default=[720], choices=sorted(WIDTHS),
        help="clips with a 10 s GOP, sampled in forward mode (slow: a full decode each)",
    )
    parser.add_argument("--no-docs", action="store_true", help="print the table only")
    args = parser.parse_args()
    rows = run(args.seconds, args.repeats, args.heights, args.gop250_heights)
    print()
    print("\n".join(rows))
    if not args.no_docs:
        write_docs(rows, args.repeats, args.seconds)
        print(f"\nwritten to {DOCS_FILE.relative_to(REPO_ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
