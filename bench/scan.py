"""Benchmark: videos per hour and core-seconds per video of a whole scan, with and without Spark, and a reference loop.

Three ways to judge the same clips with the same model, face detector and crop settings:

(a) ``deepsift scan`` on ``local[2]``, run as a subprocess over a fresh home (ingest, extract, score,
    verdicts, every Delta MERGE and the run record included). Its wall time is given whole and
    without what lies outside the scan's stages (JVM and Spark start-up, model resolution, the run
    record, printing), using the stage seconds the scan records in ``scan_runs``. A priming scan of
    a short clip creates the tables first (not measured), and (a1), a scan of one more clip alone,
    runs before (a): the two give the scan's fixed cost per run and its cost per video.
(b) the same library functions in a plain ``ProcessPoolExecutor`` of 2 processes, one video per call:
    the ingest's hash and Content Credentials check, :func:`deepsift.faces.extraction.extract_file`
    (probe, then the extract stage's per-video step: sample, detect, crop, encode), the detect UDF's
    body :func:`deepsift.detect.arrow_scoring.score_crop_batches` on a ``FaceScorer``, the contract's
    aggregation and :func:`deepsift.verdicts.labels.verdict_for`.
    (a) minus (b) is what Spark, Delta and the isolated decode worker cost.
(c) a reference loop written the way public deepfake-detection solutions do it, in one process:
    OpenCV ``VideoCapture`` and 32 evenly spaced frames, YuNet (deepsift's detector, same settings),
    crop, the network in torch's default layout. ``--reference seek`` (the default) seeks to each
    frame with ``CAP_PROP_POS_FRAMES`` and classifies one face at a time; ``--reference grab``
    grabs every frame, decodes the wanted ones and classifies all faces of a video in one batch, as
    DFDC solutions do (give it ``--reference-threads 2``: torch on both cores).

Two clip sets, made once with FFmpeg from the shared ``faces/`` clips and cached in ``--work``.
``--clip-set mixed`` is like a platform's uploads: 256x256, 640x360, 854x480, 720p and 1080p; H.264
in MP4 and MPEG-4 Part 2 in AVI; 5 to 31 s; three in four with a sound track; a keyframe every 1, 2,
5 or 10 s. ``--clip-set uniform`` (the default): 1280x720. In both, each source is looped, scaled
and padded to the clip's size, with its own mirror, zoom, colour, speed and start offset so that no
two clips are alike; a segment of whole GOPs (at least 6 s) is encoded and repeated by stream copy to
the clip's length. The uniform set is H.264 with a keyframe every ``--gop-s`` seconds (2 s by default: HLS/DASH transcodes on video
platforms cut segments of 2 to 6 s and put a keyframe at every segment start, most often every 2 s),
scene-cut keyframes off, no audio. With 30 s clips that gives 15 keyframes for 32 wanted frames, too
few for the sampler's keyframe mode at its default coverage (75%): it decodes only the GOPs holding
wanted frames (``--gop-s 1``, 60 s clips or ``--keyframe-min-coverage 0.45`` would use keyframes;
the last takes 15 frames a video in place of 32 in (a) and (b), not in (c)).
One model is registered in the fresh home with random weights (throughput does not depend on them)
and every mode loads that version.

CPU time is counted for every process a mode starts: this script makes itself a child subreaper,
so processes orphaned inside a mode (Spark's Python workers, the isolated decode workers) are
re-parented to it and reaped, and ``RUSAGE_CHILDREN`` then includes them. The load average is
printed before and after each mode: other jobs on a shared machine slow every mode.

    python bench/scan.py                                  # 24 clips of 30 s, all three modes
    python bench/scan.py --clips 4 --modes pool reference # a quick check
    python bench/scan.py --gop-s 10 --clips 8             # the long-GOP variant
    python bench/scan.py --clip-set mixed --clips 105 --arch efficientnet_b0 --input-size 224 \
        --reference grab --reference-threads 2              # the speed issue's setting
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context, resource_tracker
from pathlib import Path
from typing import Any

import numpy as np

from deepsift.config import Config, load_config

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORK = REPO_ROOT / ".deepsift" / "bench" / "scan"
DEFAULT_MEDIA = REPO_ROOT.parent / "shared" / "media"
WIDTH, HEIGHT, FPS = 1280, 720, 30
MODES = ("scan", "pool", "reference")
CLIP_TIMEOUT_S = 600
"""An FFmpeg call making a clip takes seconds; one that runs this long is stuck, and the bench stops."""
LABELS = {
    "single": "(a1) deepsift scan of one more clip alone",
    "scan": "(a) deepsift scan, local[2]",
    "pool": "(b) process pool (2)",
    "reference": "(c) reference loop",
}
WORKERS = 2
"""Spark's ``local[2]`` runs two tasks at a time; the pool gets the same two processes."""
PRIME_DATE = "2000-01-01"
"""Scan date of the priming scan, distinct from the measured ones so that each gets a ``scan_runs`` row."""
SINGLE_DATE = "2000-01-02"
"""Scan date of (a1), the scan of one more clip alone, from which the scan's fixed cost is estimated."""
_PR_SET_CHILD_SUBREAPER = 36


# --- clips --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """How one generated clip differs from the others made from the same source."""

    mirror: bool
    zoom: float
    brightness: float
    speed: float
    offset_s: float
    """Seconds into the source where the loop starts (below 1.9 s: the shortest source lasts 2 s)."""

    @classmethod
    def number(cls, n: int) -> Variant:
        return cls(
            mirror=n % 2 == 1,
            zoom=(1.0, 0.9, 0.8, 0.95)[n % 4],
            brightness=(0.0, 0.04, -0.04, 0.08)[n % 4],
            speed=(1.0, 1.1, 0.9, 1.2)[(n // 2) % 4],
            offset_s=round((0.37 * n) % 1.9, 2),
        )

    def filters(self, width: int = WIDTH, height: int = HEIGHT) -> str:
        """FFmpeg video filters: the variation, then fit into ``width`` x ``height`` (padded), constant 30 fps."""
        steps = [f"setpts=PTS*{self.speed}"]
        if self.mirror:
            steps.append("hflip")
        if self.zoom < 1.0:
            steps.append(f"crop=trunc(iw*{self.zoom}/2)*2:trunc(ih*{self.zoom}/2)*2")
        steps.append(f"eq=brightness={self.brightness}:saturation={1.0 + self.brightness * 2:.2f}")
        steps.append(f"scale={width}:{height}:force_original_aspect_ratio=decrease:flags=bicubic")
        steps.append(f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2")
        steps += ["setsar=1", f"fps={FPS}", "format=yuv420p"]
        return ",".join(steps)


@dataclass(frozen=True)
class Encoding:
    """Frame size, codec and audio of a generated clip (the uniform set: 720p H.264, no audio)."""

    width: int = WIDTH
    height: int = HEIGHT
    codec: str = "h264"
    """``h264`` (libx264, in MP4) or ``mpeg4`` (MPEG-4 Part 2, in AVI)."""
    audio: bool = False
    """A 44.1 kHz stereo tone track (AAC in MP4, PCM in AVI), as most uploads carry sound."""

    @property
    def suffix(self) -> str:
        return ".mp4" if self.codec == "h264" else ".avi"

    def arguments(self, gop: int) -> list[str]:
        video = (
            ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23"]
            if self.codec == "h264"
            else ["-c:v", "mpeg4", "-q:v", "5", "-bf", "0"]
        )
        audio = ["-c:a", "aac", "-b:a", "96k"] if self.codec == "h264" else ["-c:a", "pcm_s16le"]
        return [*video, "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", *(audio if self.audio else ["-an"])]


@dataclass(frozen=True)
class MixedClip:
    """One clip of the mixed set: like a platform's uploads, sizes from 256x256 to 1080p, H.264 and
    MPEG-4 Part 2, 5 to 31 s, most with sound, keyframes every 1 to 10 s."""

    encoding: Encoding
    seconds: float
    gop_s: float

    @classmethod
    def number(cls, n: int) -> MixedClip:
        width, height = ((256, 256), (640, 360), (1280, 720), (854, 480), (1920, 1080))[n % 5]
        return cls(
            Encoding(width, height, codec="mpeg4" if n % 3 == 2 else "h264", audio=n % 4 != 3),
            seconds=float(5 + (n * 11) % 27),
            gop_s=(2.0, 10.0, 1.0, 5.0)[(n // 2) % 4],
        )

    def label(self) -> str:
        return (f"{self.encoding.width}x{self.encoding.height}-{self.encoding.codec}-{self.seconds:g}s-gop{self.gop_s:g}s"
                f"{'-audio' if self.encoding.audio else ''}")


def encode_clip(
    source: Path, target: Path, variant: Variant, seconds: float, gop_s: float, encoding: Encoding = Encoding()
) -> None:
    """A ``seconds``-long clip with a keyframe every ``gop_s`` seconds, looped from ``source``.

    The source (2 to 8 s long) is looped and encoded once for :func:`segment_seconds`, a whole number
    of GOPs; that segment is then repeated by stream copy up to ``seconds``. Decoding it costs what a
    full encode of the looped source would (same encoder, settings and frame types), while encoding
    costs a fraction, which matters on a shared 2-core machine.
    """
    gop = max(1, round(gop_s * FPS))
    quiet = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    segment = target.with_suffix(".segment" + encoding.suffix)
    partial = target.with_suffix(".part" + encoding.suffix)
    tone = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100,aformat=channel_layouts=stereo"]
    # genpts: a looped AVI without frame timestamps (the shared 576p clip) restarts its clock on every loop,
    # and the encode then never reaches its length
    subprocess.run(
        [*quiet, "-stream_loop", "-1", "-fflags", "+genpts", "-ss", f"{variant.offset_s}", "-i", str(source),
         *(tone if encoding.audio else []), "-map", "0:v:0", *(["-map", "1:a:0"] if encoding.audio else []),
         "-t", f"{segment_seconds(seconds, gop_s)}", "-vf", variant.filters(encoding.width, encoding.height),
         *encoding.arguments(gop), str(segment)],
        check=True,
        timeout=CLIP_TIMEOUT_S,
    )
    subprocess.run(
        [*quiet, "-stream_loop", "-1", "-i", str(segment), "-t", f"{seconds}", "-c", "copy",
         *(["-movflags", "+faststart"] if encoding.codec == "h264" else []), str(partial)],
        check=True,
        timeout=CLIP_TIMEOUT_S,
    )
    segment.unlink()
    partial.rename(target)


def segment_seconds(seconds: float, gop_s: float, shortest: float = 6.0) -> float:
    """Length of the encoded segment: whole GOPs, at least ``shortest`` seconds, at most the clip.

    >>> segment_seconds(30, 2), segment_seconds(30, 10), segment_seconds(4, 2)
    (6.0, 10.0, 4.0)
    """
    gops = max(1, -(-min(shortest, seconds) // gop_s))
    return float(min(seconds, gops * gop_s))


def ensure_clips(work: Path, media: Path, count: int, seconds: float, gop_s: float) -> list[Path]:
    """``count`` distinct clips (made once, then reused from ``work``), cycling over the face sources."""
    sources = sorted(path for path in (media / "faces").iterdir() if path.is_file())
    if not sources:
        raise SystemExit(f"no clips in {media / 'faces'}")
    folder = work / f"clips-{WIDTH}x{HEIGHT}-{seconds:g}s-gop{gop_s:g}s"
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in range(count):
        source = sources[i % len(sources)]
        variant = Variant.number(i // len(sources))
        target = folder / f"clip{i:03d}_{source.stem}.mp4"
        if not target.exists():
            started = time.perf_counter()
            encode_clip(source, target, variant, seconds, gop_s)
            print(f"made {target.name} ({time.perf_counter() - started:.1f} s)", flush=True)
        clips.append(target)
    return clips


def ensure_mixed_clips(work: Path, media: Path, count: int) -> list[Path]:
    """``count`` clips of :class:`MixedClip` (made once, then reused from ``work``), cycling over the face sources."""
    sources = sorted(path for path in (media / "faces").iterdir() if path.is_file())
    folder = work / "clips-mixed"
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in range(count):
        source, spec = sources[i % len(sources)], MixedClip.number(i)
        target = folder / f"clip{i:03d}_{spec.label()}_{source.stem}{spec.encoding.suffix}"
        if not target.exists():
            started = time.perf_counter()
            variant = Variant.number(i // len(sources))
            encode_clip(source, target, variant, spec.seconds, spec.gop_s, spec.encoding)
            print(f"made {target.name} ({time.perf_counter() - started:.1f} s)", flush=True)
        clips.append(target)
    return clips


def prime_clip(work: Path, media: Path, gop_s: float) -> Path:
    """A short clip, not among the measured ones, for the scan that creates the tables first."""
    target = work / "prime" / f"prime-gop{gop_s:g}s.mp4"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        source = sorted(path for path in (media / "faces").iterdir() if path.is_file())[0]
        encode_clip(source, target, Variant(False, 0.7, 0.1, 1.0, 0.0), 4.0, gop_s)
    return target


# --- accounting ---------------------------------------------------------------------------------


@dataclass
class Usage:
    """Wall seconds, core-seconds of this process and every reaped descendant, and load averages."""

    wall_s: float = 0.0
    core_s: float = 0.0
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    unreaped: int = 0


def become_subreaper() -> None:
    """Orphaned descendants get re-parented to this process (Linux), so their CPU time can be counted."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def child_pids() -> set[int]:
    """Process ids whose parent is this process (orphans re-parented here included), from ``/proc``."""
    me = os.getpid()
    return {int(proc.name) for proc in Path("/proc").iterdir() if proc.name.isdigit() and _parent(proc) == me}


def _parent(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def reap_orphans(keep: set[int], deadline_s: float = 60.0) -> int:
    """Reap every child not in ``keep`` as it ends; return how many still ran after ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    while True:
        for pid in child_pids() - keep:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        pending = child_pids() - keep
        if not pending or time.monotonic() > deadline:
            return len(pending)
        time.sleep(0.1)


def cpu_seconds() -> float:
    """User + system seconds of this process and of all its reaped descendants."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measured(operation: Callable[[], Any]) -> tuple[Any, Usage]:
    """Run ``operation``, reap what it left behind, and return its result with its usage."""
    keep = child_pids()
    usage = Usage(load_before=os.getloadavg())
    core, wall = cpu_seconds(), time.perf_counter()
    result = operation()
    usage.wall_s = time.perf_counter() - wall
    usage.unreaped = reap_orphans(keep)
    usage.core_s = cpu_seconds() - core
    usage.load_after = os.getloadavg()
    return result, usage


# --- the model and the config -------------------------------------------------------------------


def fresh_home(work: Path, jars: Path) -> Path:
    """A new deepsift home under ``work``, with the Delta jars already in its cache (no download)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    home = work / "homes" / f"home-{stamp}"
    (home / "cache" / "jars").mkdir(parents=True)
    for jar in jars.glob("*.jar"):
        shutil.copy2(jar, home / "cache" / "jars" / jar.name)
    return home


def scan_environment(home: Path, keyframe_min_coverage: float | None = None) -> dict[str, str]:
    """The environment of ``deepsift scan``: this one without other ``DEEPSIFT_*`` keys, plus the bench's."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DEEPSIFT_")}
    env.update({
        "DEEPSIFT_HOME": str(home),
        "DEEPSIFT_SPARK__MASTER": f"local[{WORKERS}]",
        "COLUMNS": "200",
        "PYTHONUNBUFFERED": "1",
    })
    if keyframe_min_coverage is not None:
        env["DEEPSIFT_SAMPLING__KEYFRAME_MIN_COVERAGE"] = str(keyframe_min_coverage)
    return env


def register_model(
    config: Config, arch: str, input_size: int | None, options: Sequence[str] = ()
) -> tuple[int, str, str]:
    """Register a random-weight detector as ``@champion`` in ``config``'s store, under the default contract
    changed by ``options`` (``NAME=VALUE``, as ``deepsift models import --option``); return its version,
    its contract, and the default contract (which the loop (c) always runs)."""
    import torch

    from deepsift.detect.architectures import architecture_spec, build_detector_network
    from deepsift.detect.contract import contract_with_options
    from deepsift.registry.mlflow_models import DetectorRegistry

    spec = architecture_spec(arch)
    default = spec.default_contract(
        input_size=input_size or spec.default_input_size,
        keyframe_min_coverage=config.sampling.keyframe_min_coverage,
    )
    contract = contract_with_options(default, options)
    torch.manual_seed(0)
    network = build_detector_network(arch)
    registry = DetectorRegistry(config.mlflow, config.home)
    info = registry.log_and_register(
        network.state_dict(), contract, {}, f"# {arch} at {contract.input_size} px, random weights (scan benchmark)"
    )
    registry.set_alias(config.mlflow.alias, info.version)
    return info.version, contract.to_json(), default.to_json()


def model_config(config: Config, contract_json: str) -> Config:
    """The config the scan derives from the model's contract: same sampling, faces and crop settings."""
    from deepsift.detect.contract import PreprocessContract, config_for_contract

    return config_for_contract(config, PreprocessContract.from_json(contract_json))


# --- (a) deepsift scan --------------------------------------------------------------------------


def deepsift_command() -> list[str]:
    script = Path(sys.executable).parent / "deepsift"
    return [str(script)] if script.exists() else [sys.executable, "-m", "deepsift.cli"]


def run_cli_scan(paths: Sequence[Path], env: dict[str, str], scan_date: str, log: Path) -> None:
    """``deepsift scan PATHS --date D`` as a subprocess; its output goes to ``log``; failure stops the bench."""
    command = [*deepsift_command(), "scan", *map(str, paths), "--date", scan_date, "--trigger", "bench"]
    with log.open("w") as out:
        done = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"deepsift scan failed ({done.returncode}); see {log}")


def read_delta(home: Path, table: str) -> list[dict[str, Any]]:
    """Rows of one of the scan's Delta tables, read with delta-rs from the warehouse folder (no second JVM)."""
    from deltalake import DeltaTable

    locations = [path.parent for path in (home / "warehouse").rglob("_delta_log") if path.parent.name == table]
    if len(locations) != 1:
        raise RuntimeError(f"expected one {table} table under {home / 'warehouse'}, found {len(locations)}")
    return DeltaTable(str(locations[0])).to_pyarrow_table().to_pylist()


@dataclass
class ModeResult:
    """What one mode did: its usage, per-video scores by content id, and where the time went."""

    name: str
    videos: int
    usage: Usage
    scores: dict[str, float | None] = field(default_factory=dict)
    faces: int = 0
    parts: dict[str, float] = field(default_factory=dict)
    """Seconds summed over videos (or stages) by part, for the profile."""
    inner_wall_s: float | None = None
    """(a) only: wall seconds inside the scan's stages."""


def scan_mode(
    clips: list[Path], home: Path, env: dict[str, str], scan_date: str, logs: Path, name: str
) -> ModeResult:
    """(a): one measured ``deepsift scan`` over ``clips``, after the priming scan made the tables."""
    _, usage = measured(lambda: run_cli_scan(clips, env, scan_date, logs / f"{name}.log"))
    runs = [row for row in read_delta(home, "scan_runs") if str(row["scan_date"]) == scan_date]
    if len(runs) != 1 or runs[0]["status"] != "succeeded":
        raise RuntimeError(f"expected one succeeded scan_runs row for {scan_date}, got {runs}")
    stages = dict(runs[0]["stage_seconds"])
    verdicts = [row for row in read_delta(home, "verdicts") if str(row["scan_date"]) == scan_date]
    ids = {row["video_id"] for row in read_delta(home, "videos") if str(row["ingest_date"]) == scan_date}
    extractions = [row for row in read_delta(home, "extractions") if row["video_id"] in ids]
    parts = {f"stage {name}": seconds for name, seconds in stages.items()}
    parts["worker: sample frames"] = sum(row["decode_s"] or 0.0 for row in extractions)
    parts["worker: detect, crop, encode"] = sum(row["faces_s"] or 0.0 for row in extractions)
    return ModeResult(
        name=name,
        videos=len(verdicts),
        usage=usage,
        scores={row["video_id"]: row["score"] for row in verdicts},
        faces=sum(row["n_faces"] or 0 for row in extractions),
        parts=parts,
        inner_wall_s=sum(stages.values()),
    )


# --- (b) the library in a process pool ----------------------------------------------------------

_POOL_STATE: dict[str, Any] = {}


def pool_init(config_json: str, version: int) -> None:
    """Per pool process, once: one torch thread (as Spark's Python workers get), detector and scorer."""
    import torch

    from deepsift.faces.extraction import init_worker
    from deepsift.registry.mlflow_models import DetectorRegistry

    torch.set_num_threads(1)
    config = Config.model_validate_json(config_json)
    _POOL_STATE.update(
        config=config,
        worker=init_worker(config.faces.model_dump_json()),
        scorer=DetectorRegistry(config.mlflow, config.home).load_scorer(
            version, device="cpu", cpu_engine=config.detect.cpu_engine
        ),
    )


def pool_video(path: str) -> dict[str, Any]:
    """(b) for one video: hash, credentials, probe and extract, score the encoded crops with the UDF's body, judge."""
    import pyarrow as pa

    from deepsift.detect.arrow_scoring import score_crop_batches
    from deepsift.faces.extraction import extract_file
    from deepsift.media.probe import content_id
    from deepsift.provenance.credentials import CredentialCheck, read_credentials
    from deepsift.verdicts.aggregation import aggregate
    from deepsift.verdicts.labels import verdict_for

    config, scorer = _POOL_STATE["config"], _POOL_STATE["scorer"]
    started = time.perf_counter()
    video_id = content_id(path)
    hashed = time.perf_counter()
    read_credentials(path, CredentialCheck(None, config.provenance.max_manifest_bytes))
    ingested = time.perf_counter()
    result = extract_file(_POOL_STATE["worker"], path, config.sampling, config.decode)
    extracted = time.perf_counter()
    probe_s = extracted - ingested - result.decode_s - result.faces_s
    scores = np.empty(0, np.float32)
    if result.faces:
        batch = pa.RecordBatch.from_pydict({
            "video_id": [video_id] * len(result.faces),
            "frame_index": pa.array([f.frame_index for f in result.faces], pa.int32()),
            "face_index": pa.array([f.face_index for f in result.faces], pa.int32()),
            "crop": [f.crop for f in result.faces],
        })
        scored = list(score_crop_batches(iter([batch]), lambda: scorer, config.detect.cpu_batch_size))
        scores = np.concatenate([b.column("score").to_numpy() for b in scored])
    frames = np.array([f.frame_index for f in result.faces])
    score = aggregate(scorer.contract.aggregation, scores, frames) if len(scores) else None
    verdict, _ = verdict_for(score, scorer.contract.thresholds, result.status, result.reason, len(scores))
    return {
        "video_id": video_id,
        "score": score,
        "verdict": verdict.value,
        "faces": len(scores),
        "hash and probe": hashed - started + probe_s,
        "content credentials": ingested - hashed,
        "sample frames": result.decode_s,
        "detect, crop, encode": result.faces_s,
        "decode crops and score": time.perf_counter() - extracted,
    }


def pool_mode(clips: list[Path], config: Config, version: int) -> ModeResult:
    """(b): every clip through :func:`pool_video` on two processes, longest first (all are alike here)."""

    def run() -> list[dict[str, Any]]:
        previous = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = "1"  # what Spark sets for its Python workers (spark.task.cpus)
        try:
            with ProcessPoolExecutor(
                WORKERS, mp_context=get_context("spawn"), initializer=pool_init,
                initargs=(config.model_dump_json(), version),
            ) as pool:
                return list(pool.map(pool_video, [str(clip) for clip in clips]))
        finally:
            if previous is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = previous

    rows, usage = measured(run)
    parts = {name: sum(row[name] for row in rows) for name in
             ("hash and probe", "content credentials", "sample frames", "detect, crop, encode", "decode crops and score")}
    return ModeResult("pool", len(rows), usage, {row["video_id"]: row["score"] for row in rows},
                      sum(row["faces"] for row in rows), parts)


# --- (c) the reference loop ---------------------------------------------------------------------


def reference_loop(paths: list[str], config_json: str, version: int, threads: int, style: str) -> list[dict[str, Any]]:
    """(c) in one process, on 32 evenly spaced frames: YuNet, crop, classify.

    ``seek``: seek to each frame, classify one face at a time. ``grab``: the way public DFDC solutions
    read video, grab every frame up to the last wanted one and decode only the wanted ones, then
    classify all faces of the video in one batch. Both run the network as such code does: torch in its
    default memory layout.
    """
    import cv2
    import torch

    from deepsift.detect.preprocess import crops_to_tensor
    from deepsift.faces.crops import crop_face
    from deepsift.faces.detector import build_face_detector
    from deepsift.media.probe import content_id
    from deepsift.registry.mlflow_models import DetectorRegistry
    from deepsift.verdicts.aggregation import aggregate

    torch.set_num_threads(threads)
    config = Config.model_validate_json(config_json)
    detector = build_face_detector(config.faces)
    scorer = DetectorRegistry(config.mlflow, config.home).load_scorer(version, device="cpu", cpu_engine="torch")
    network, contract = scorer.network.to(memory_format=torch.contiguous_format), scorer.contract

    def classify(crops: list[np.ndarray]) -> list[float]:
        with torch.inference_mode():
            logits = network(crops_to_tensor(np.stack(crops), contract))
        return torch.sigmoid(logits.float()).view(-1).tolist()

    rows = []
    for path in paths:
        timings = {"read": 0.0, "detect": 0.0, "crop and classify": 0.0}
        scores: list[float] = []
        frames: list[int] = []
        crops: list[np.ndarray] = []
        capture = cv2.VideoCapture(path)
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        wanted = np.unique(np.linspace(0, total - 1, contract.frames_per_video).round().astype(int))
        for index, frame in _reference_frames(capture, wanted, style, timings):
            clock = time.perf_counter()
            boxes = detector.detect(frame)
            timings["detect"] += time.perf_counter() - clock
            clock = time.perf_counter()
            for box in boxes:
                crops.append(crop_face(frame, box, config.faces.margin, config.faces.crop_size))
                frames.append(index)
                if style == "seek":
                    scores += classify(crops[-1:])
            timings["crop and classify"] += time.perf_counter() - clock
        capture.release()
        if style == "grab" and crops:
            clock = time.perf_counter()
            scores = classify(crops)
            timings["crop and classify"] += time.perf_counter() - clock
        score = aggregate(contract.aggregation, np.array(scores), np.array(frames)) if scores else None
        rows.append({"video_id": content_id(path), "score": score, "faces": len(scores), **timings})
    return rows


def _reference_frames(capture: Any, wanted: np.ndarray, style: str, timings: dict[str, float]) -> Any:
    """(index, BGR frame) for each wanted frame OpenCV can read, timing the reading in ``timings["read"]``."""
    import cv2

    if style == "seek":
        for index in wanted:
            clock = time.perf_counter()
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, frame = capture.read()
            timings["read"] += time.perf_counter() - clock
            if ok:
                yield int(index), frame
        return
    keep = set(wanted.tolist())
    for index in range(int(wanted.max()) + 1 if len(wanted) else 0):
        clock = time.perf_counter()
        ok = capture.grab()
        frame = capture.retrieve()[1] if ok and index in keep else None
        timings["read"] += time.perf_counter() - clock
        if not ok:
            return
        if frame is not None:
            yield index, frame


def reference_mode(clips: list[Path], config: Config, version: int, threads: int, style: str) -> ModeResult:
    """(c): the reference loop in one fresh process (its start-up and model load counted, as in (a) and (b))."""

    def run() -> list[dict[str, Any]]:
        paths = [str(clip) for clip in clips]
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            return pool.submit(reference_loop, paths, config.model_dump_json(), version, threads, style).result()

    rows, usage = measured(run)
    parts = {name: sum(row[name] for row in rows) for name in ("read", "detect", "crop and classify")}
    return ModeResult("reference", len(rows), usage, {row["video_id"]: row["score"] for row in rows},
                      sum(row["faces"] for row in rows), parts)


# --- report -------------------------------------------------------------------------------------


def _load(values: tuple[float, float, float]) -> str:
    return "/".join(f"{value:.1f}" for value in values)


def projection(fixed_wall: float, video_wall: float, pool: ModeResult | None, reference: ModeResult | None) -> list[str]:
    """Where the targets would be met as scans grow: (a) modelled as ``fixed_wall`` plus ``video_wall``
    per video (its marginal core-seconds spread over both workers), (b) and (c) as their measured wall
    seconds per video (their own start-up included, which flatters (a) slightly)."""
    lines = ["", f"projection, (a) = {fixed_wall:.0f} s + {video_wall:.2f} s per video:"]
    if reference:
        per_video = reference.usage.wall_s / reference.videos
        limit = per_video / video_wall
        lines.append(
            f"- (a) vs (c) tends to {limit:.2f}x as the batch grows; 3x "
            + (f"from {fixed_wall / (per_video / 3 - video_wall):,.0f} videos per scan" if limit > 3 else "at no batch size")
        )
    if pool:
        per_video = pool.usage.wall_s / pool.videos
        slack = 1.15 * per_video - video_wall
        lines.append(
            f"- (a) vs (b) tends to {100 * (video_wall / per_video - 1):+.0f}%; within 15% "
            + (f"from {fixed_wall / slack:,.0f} videos per scan" if slack > 0 else "at no batch size")
        )
    return lines


def _describe_mixed(clips: list[Path]) -> str:
    """Totals of a mixed set, from the clip names :func:`ensure_mixed_clips` gives."""
    specs = [MixedClip.number(int(clip.name[4:7])) for clip in clips]
    sizes = sorted({f"{spec.encoding.width}x{spec.encoding.height}" for spec in specs}, key=lambda size: int(size.split("x")[0]))
    return (
        f"{sum(spec.seconds for spec in specs):g} s of video, {min(spec.seconds for spec in specs):g} to "
        f"{max(spec.seconds for spec in specs):g} s a clip, {', '.join(sizes)}; "
        f"{sum(spec.encoding.codec == 'h264' for spec in specs)} H.264 (MP4) and "
        f"{sum(spec.encoding.codec == 'mpeg4' for spec in specs)} MPEG-4 Part 2 (AVI); "
        f"{sum(spec.encoding.audio for spec in specs)} with audio; keyframes every 1, 2, 5 or 10 s"
    )


def report(results: dict[str, ModeResult], setting: str) -> list[str]:
    """Markdown: throughput per mode with the comparisons the targets name, then where the time went."""
    reference = results.get("reference")
    pool = results.get("pool")
    lines = [
        f"{setting}; {WORKERS} worker processes (Spark local[{WORKERS}] or the pool), (c) one process",
        "",
        (
            "| mode | videos | faces | wall s | videos/hour | core-s/video | speed-up vs (c) "
            "| vs (b) wall / core per video "
            "| load 1/5/15 min before | after |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def row(label: str, result: ModeResult, wall: float, core: float | None) -> str:
        per_video = wall / result.videos
        speed = f"{reference.usage.wall_s / reference.videos / per_video:.2f}x" if reference else "-"
        versus = "-"
        if pool and result.name == "scan":
            versus = f"{100 * (per_video / (pool.usage.wall_s / pool.videos) - 1):+.0f}%"
            if core is not None:
                versus += f" / {100 * (core / result.videos / (pool.usage.core_s / pool.videos) - 1):+.0f}%"
        core_cell = f"{core / result.videos:.2f}" if core is not None else "-"
        return (
            f"| {label} | {result.videos} | {result.faces} | {wall:.1f} | {3600 * result.videos / wall:,.0f} | "
            f"{core_cell} | {speed} | {versus} | {_load(result.usage.load_before)} | {_load(result.usage.load_after)} |"
        )

    for name in ("single", *MODES):
        result = results.get(name)
        if result is None:
            continue
        lines.append(row(LABELS[name], result, result.usage.wall_s, result.usage.core_s))
        if result.inner_wall_s is not None:
            lines.append(row("(a') the same, inside the scan's stages only", result, result.inner_wall_s, None))
    lines += ["", "| mode | where the time went (seconds summed over videos; (a): stage wall seconds) |", "|---|---|"]
    for name in ("single", *MODES):
        result = results.get(name)
        if result is not None:
            cells = ", ".join(f"{part} {seconds:.1f}" for part, seconds in result.parts.items())
            lines.append(f"| {LABELS[name]} | {cells} |")
    if "scan" in results and pool:
        common = set(results["scan"].scores) & set(pool.scores)
        gaps = [abs((results["scan"].scores[v] or 0.0) - (pool.scores[v] or 0.0)) for v in common]
        lines += ["", (f"(a) and (b) judged {len(common)} of the same videos; largest video-score difference "
                       f"{max(gaps, default=0.0):.2e} (same crops and model; only batch composition differs)")]
    single, scan = results.get("single"), results.get("scan")
    if single and scan and scan.videos > single.videos:
        extra = scan.videos - single.videos
        core = (scan.usage.core_s - single.usage.core_s) / extra
        wall = (scan.usage.wall_s - single.usage.wall_s) / extra
        lines += ["", (f"scan cost model from (a1) and (a): {single.usage.core_s - core:.0f} core-s and "
                       f"{single.usage.wall_s - wall:.0f} s wall per scan, plus {core:.2f} core-s and {wall:.1f} s wall "
                       f"per video ({3600 / max(wall, 1e-9):,.0f} videos/hour once the fixed part is spread thin)")]
        lines += projection(single.usage.wall_s - wall, core / WORKERS, pool, reference)
    unreaped = {name: r.usage.unreaped for name, r in results.items() if r.usage.unreaped}
    if unreaped:
        lines.append(f"processes still running after a mode (their CPU time is missing): {unreaped}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="clips, homes and logs (reused)")
    parser.add_argument("--media", type=Path, default=DEFAULT_MEDIA, help="shared media folder (with faces/)")
    parser.add_argument("--clips", type=int, default=24, help="number of clips (at least 20 for the docs)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each clip")
    parser.add_argument("--gop-s", type=float, default=2.0, help="seconds between keyframes")
    parser.add_argument(
        "--keyframe-min-coverage", type=float,
        help="sampling.keyframe_min_coverage for (a) and (b) (default: the config's, 0.75)",
    )
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="run in this order")
    parser.add_argument("--arch", default="mobilenetv3_small_050", help="detector architecture (the demo's)")
    parser.add_argument("--input-size", type=int, default=128, help="crop size in px (the demo's: 128)")
    parser.add_argument(
        "--clip-set", choices=("uniform", "mixed"), default="uniform",
        help="uniform: --clips of --seconds at 720p H.264, a keyframe every --gop-s; mixed: sizes, codecs, "
             "lengths, audio and GOPs like a platform's uploads (--seconds and --gop-s ignored)",
    )
    parser.add_argument(
        "--reference", choices=("seek", "grab"), default="seek",
        help="(c) seeks to each frame and classifies one face at a time, or grabs every frame and "
             "classifies a video's faces in one batch (as public DFDC solutions do)",
    )
    parser.add_argument(
        "--reference-threads", type=int, default=1,
        help="torch threads of (c); 2 made one-face forward passes spin on this shared machine (see docs)",
    )
    parser.add_argument(
        "--option", action="append", default=[], metavar="NAME=VALUE",
        help="an extraction option of the registered contract for (a) and (b), as `deepsift models import "
             "--option` takes it (repeatable); (c) keeps the default contract",
    )
    parser.add_argument("--no-prime", action="store_true", help="skip the priming scan that creates the tables")
    parser.add_argument("--clips-only", action="store_true", help="make the clips and stop")
    args = parser.parse_args()
    work = args.work.resolve()
    if args.clip_set == "mixed":
        *clips, single = ensure_mixed_clips(work, args.media.resolve(), args.clips + 1)
    else:
        *clips, single = ensure_clips(work, args.media.resolve(), args.clips + 1, args.seconds, args.gop_s)
    if args.clips_only:
        return
    become_subreaper()
    resource_tracker.ensure_running()  # a long-lived helper of spawn pools: started before any mode
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"

    from deepsift.lake.jars import ensure_delta_jars

    jars = work / "jars"
    ensure_delta_jars(jars)
    home = fresh_home(work, jars)
    logs = home / "logs"
    logs.mkdir()
    env = scan_environment(home, args.keyframe_min_coverage)
    config = load_config(environ=env)
    version, contract_json, default_json = register_model(config, args.arch, args.input_size, args.option)
    scan_config, loop_config = model_config(config, contract_json), model_config(config, default_json)
    model = f"{args.arch} at {args.input_size} px, version {version} (random weights)"
    if args.keyframe_min_coverage is not None:
        model += f"; sampling.keyframe_min_coverage {args.keyframe_min_coverage:g} in (a) and (b)"
    if args.option:
        model += f"; contract options {', '.join(args.option)} in (a) and (b), the default contract in (c)"
    print(f"home {home}; {model}; {len(clips)} clips in {clips[0].parent}", flush=True)
    if "scan" in args.modes and not args.no_prime:
        clock = time.perf_counter()
        keep = child_pids()
        run_cli_scan([prime_clip(work, args.media.resolve(), args.gop_s)], env, PRIME_DATE, logs / "prime.log")
        reap_orphans(keep)
        print(f"priming scan (creates the tables): {time.perf_counter() - clock:.1f} s", flush=True)

    results: dict[str, ModeResult] = {}
    today = datetime.date.today().isoformat()
    for mode in args.modes:
        print(f"{LABELS[mode]}: load {_load(os.getloadavg())} ...", flush=True)
        if mode == "scan":
            results["single"] = scan_mode([single], home, env, SINGLE_DATE, logs, "single")
            print(f"  (a1) one clip alone: {results['single'].usage.wall_s:.1f} s wall, "
                  f"{results['single'].usage.core_s:.1f} core-s", flush=True)
            results[mode] = scan_mode(clips, home, env, today, logs, "scan")
        elif mode == "pool":
            results[mode] = pool_mode(clips, scan_config, version)
        else:
            results[mode] = reference_mode(clips, loop_config, version, args.reference_threads, args.reference)
        usage = results[mode].usage
        print(f"  {usage.wall_s:.1f} s wall, {usage.core_s:.1f} core-s, load {_load(usage.load_after)} after",
              flush=True)
    clip_set = (
        f"{len(clips)} clips of the mixed set ({_describe_mixed(clips)})"
        if args.clip_set == "mixed"
        else f"{len(clips)} clips of {args.seconds:g} s, {WIDTH}x{HEIGHT} H.264 at {FPS} fps, keyframe every {args.gop_s:g} s"
    )
    reference = f"(c) {args.reference} style, torch on {args.reference_threads} thread(s)"
    lines = report(results, f"{clip_set}; model {model}; {reference}")
    print()
    print("\n".join(lines))
    (logs / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (logs / "parts.json").write_text(json.dumps({m: r.parts for m, r in results.items()}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
