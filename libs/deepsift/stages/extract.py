"""Extraction: decode, sample and crop faces for every video not yet extracted at this preprocess version.

Work is spread by estimated cost (duration x pixels) over partitions with a greedy longest-first
packing, so that one long 4K upload does not sit behind a queue of others. Each partition sends its
videos, one call each, to a warm isolated worker (``deepsift.media.isolation``): a crash, hang or
memory blow-up becomes an error row for that video and never fails the job. The results are
checkpointed once, then MERGEd into ``extractions`` (one row per video, with status and reason) and
``faces`` (one row per face crop); a rerun adds nothing.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from deepsift.config import Config, DecodeLimits, SamplingConfig
from deepsift.faces.detector import build_face_detector
from deepsift.faces.extraction import VideoExtraction, preprocess_version
from deepsift.lake.tables import EXTRACTIONS, FACES, VIDEOS, ensure_tables, merge_insert_new
from deepsift.media.isolation import IsolatedWorker, shared_worker
from deepsift.media.sources import opened_locally
from deepsift.progress import step
from deepsift.reasons import MediaError

UNKNOWN_COST = 1280 * 720 * 60.0
"""Cost assumed for a video whose duration or size the probe could not tell (a 60 s 720p clip)."""

EXTRACTED_SCHEMA = (
    "video_id string, preprocess_version string, status string, reason string, detail string, "
    "face_detector string, sample_mode string, n_frames int, n_faces int, decode_s double, faces_s double, "
    "faces array<struct<frame_index: int, face_index: int, ts_s: double, "
    "bbox: struct<x: float, y: float, w: float, h: float>, det_score: float, crop: binary>>"
)


@dataclass(frozen=True)
class ExtractSummary:
    preprocess_version: str
    face_detector: str
    videos: int
    ok: int
    errors: dict[str, int]
    faces: int
    videos_with_faces: int
    decode_s: float
    faces_s: float
    seconds: float


EXTRACT_TARGET = "deepsift.faces.extraction:extract_video"


@step("extract")
def extract_pending(spark: SparkSession, config: Config, target: str = EXTRACT_TARGET) -> ExtractSummary:
    """Extract faces from every video in ``videos`` that has no ``extractions`` row at this version.

    ``target`` names the per-video function the isolated worker runs (``module:function``, called as
    :func:`deepsift.faces.extraction.extract_video` is); the tests swap in one that crashes or hangs.
    """
    started = time.perf_counter()
    schema = config.lake.schema_name
    ensure_tables(spark, schema, (VIDEOS, EXTRACTIONS, FACES))
    version, detector = planned_preprocess_version(config)

    done = spark.table(EXTRACTIONS.qualified(schema)).where(F.col("preprocess_version") == version)
    pending = spark.table(VIDEOS.qualified(schema)).join(done, "video_id", "left_anti")
    videos = pending.select(
        "video_id", "uri", "probe_status", "probe_error", "rotation", "duration_s", "width", "height"
    ).collect()

    extracted = _extract(spark, config, [row.asDict() for row in videos], version, detector, target)
    extracted = extracted.checkpoint(eager=True)
    now = F.lit(datetime.now(UTC).replace(tzinfo=None)).cast("timestamp")
    merge_insert_new(spark, schema, EXTRACTIONS, extracted.withColumn("extracted_at", now))
    faces = extracted.select("video_id", "preprocess_version", F.explode("faces").alias("f")).select(
        "video_id",
        "preprocess_version",
        "f.frame_index",
        "f.face_index",
        "f.ts_s",
        "f.bbox",
        "f.det_score",
        F.lit(config.faces.image_format).alias("crop_format"),
        "f.crop",
    )
    merge_insert_new(spark, schema, FACES, faces)
    return _summarize(extracted, version, detector, time.perf_counter() - started)


def planned_preprocess_version(config: Config) -> tuple[str, str]:
    """The preprocess version (and face detector) that extraction under ``config`` produces here."""
    detector = build_face_detector(config.faces).name
    return preprocess_version(config.sampling, config.faces, detector), detector


def balance_by_cost(videos: list[dict], partitions: int) -> list[list[dict]]:
    """Greedy longest-processing-time packing: each video, costliest first, joins the lightest bin."""
    bins: list[list[dict]] = [[] for _ in range(max(1, min(partitions, len(videos))))]
    heap = [(0.0, index) for index in range(len(bins))]
    for video in sorted(videos, key=estimated_cost, reverse=True):
        load, index = heapq.heappop(heap)
        bins[index].append(video)
        heapq.heappush(heap, (load + estimated_cost(video), index))
    return [videos_in_bin for videos_in_bin in bins if videos_in_bin]


def estimated_cost(video: dict) -> float:
    """Decode cost grows with duration x pixels; unknown values fall back to :data:`UNKNOWN_COST`."""
    if video.get("duration_s") and video.get("width") and video.get("height"):
        return float(video["duration_s"]) * video["width"] * video["height"]
    return UNKNOWN_COST


def _extract(
    spark: SparkSession, config: Config, videos: list[dict], version: str, detector: str, target: str
) -> DataFrame:
    if not videos:
        return spark.createDataFrame([], EXTRACTED_SCHEMA)
    bins = balance_by_cost(videos, spark.sparkContext.defaultParallelism * 2)
    rows = (
        spark.sparkContext.parallelize(list(enumerate(bins)), len(bins))
        .partitionBy(len(bins), lambda index: index)
        .flatMap(lambda pair: pair[1])
    )
    listing = spark.createDataFrame(
        rows, "video_id string, uri string, probe_status string, probe_error string, rotation int, "
        "duration_s double, width int, height int"
    )
    settings = (config.sampling.model_dump_json(), config.decode.model_dump_json(), config.faces.model_dump_json())

    def extract_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        sampling, limits = SamplingConfig.model_validate_json(settings[0]), DecodeLimits.model_validate_json(settings[1])
        worker = shared_worker(limits, "deepsift.faces.extraction:init_worker", (settings[2],))
        _check_detector(worker, detector)
        for batch in batches:
            for video in batch.to_pylist():
                result = _extract_one(worker, target, video, sampling, limits)
                yield _to_record_batch(video["video_id"], version, detector, result)

    return listing.mapInArrow(extract_partition, EXTRACTED_SCHEMA)


def _check_detector(worker: IsolatedWorker, expected: str) -> None:
    """Fail the task when an executor would run another face detector than the driver planned."""
    try:
        running = worker.call("deepsift.faces.extraction:detector_name")
    except MediaError as error:
        raise RuntimeError(f"the isolated extraction worker cannot start: {error}") from None
    if running != expected:
        raise RuntimeError(
            f"this executor runs face detector {running} but the driver planned {expected}: "
            "give every node the same faces.* settings and detector weights"
        )


def _extract_one(
    worker: IsolatedWorker, target: str, video: dict[str, Any], sampling: SamplingConfig, limits: DecodeLimits
) -> VideoExtraction:
    """One video, never an exception: probe failures and worker failures become error results."""
    if video["probe_status"] != "ok":
        reason, _, detail = (video["probe_error"] or "open_error: probe failed").partition(": ")
        return VideoExtraction(status="error", reason=reason, detail=detail)
    try:
        with opened_locally(video["uri"]) as path:
            return worker.call(target, str(path), video["rotation"], sampling, limits)
    except MediaError as error:
        return VideoExtraction.failed(error)


def _to_record_batch(video_id: str, version: str, detector: str, result: VideoExtraction) -> pa.RecordBatch:
    faces = [
        {
            "frame_index": face.frame_index,
            "face_index": face.face_index,
            "ts_s": face.ts_s,
            "bbox": dict(zip("xywh", face.bbox, strict=True)),
            "det_score": face.det_score,
            "crop": face.crop,
        }
        for face in result.faces
    ]
    row = {
        "video_id": video_id,
        "preprocess_version": version,
        "status": result.status,
        "reason": result.reason,
        "detail": result.detail,
        "face_detector": detector if result.status == "ok" else None,
        "sample_mode": result.sample_mode,
        "n_frames": result.n_frames,
        "n_faces": len(faces),
        "decode_s": result.decode_s,
        "faces_s": result.faces_s,
        "faces": faces,
    }
    return pa.RecordBatch.from_pylist([row], schema=_ARROW_SCHEMA)


_BBOX = pa.struct([(name, pa.float32()) for name in "xywh"])
_FACE = pa.struct([
    ("frame_index", pa.int32()),
    ("face_index", pa.int32()),
    ("ts_s", pa.float64()),
    ("bbox", _BBOX),
    ("det_score", pa.float32()),
    ("crop", pa.binary()),
])
_ARROW_SCHEMA = pa.schema([
    ("video_id", pa.string()),
    ("preprocess_version", pa.string()),
    ("status", pa.string()),
    ("reason", pa.string()),
    ("detail", pa.string()),
    ("face_detector", pa.string()),
    ("sample_mode", pa.string()),
    ("n_frames", pa.int32()),
    ("n_faces", pa.int32()),
    ("decode_s", pa.float64()),
    ("faces_s", pa.float64()),
    ("faces", pa.list_(_FACE)),
])


def _summarize(extracted: DataFrame, version: str, detector: str, seconds: float) -> ExtractSummary:
    (totals,) = extracted.agg(
        F.count("*").alias("videos"),
        F.sum(F.when(F.col("status") == "ok", 1).otherwise(0)).alias("ok"),
        F.sum("n_faces").alias("faces"),
        F.sum(F.when(F.col("n_faces") > 0, 1).otherwise(0)).alias("with_faces"),
        F.sum("decode_s").alias("decode_s"),
        F.sum("faces_s").alias("faces_s"),
    ).collect()
    errors = extracted.where("status = 'error'").groupBy("reason").count().collect()
    return ExtractSummary(
        preprocess_version=version,
        face_detector=detector,
        videos=totals["videos"] or 0,
        ok=totals["ok"] or 0,
        errors={row["reason"]: row["count"] for row in errors},
        faces=totals["faces"] or 0,
        videos_with_faces=totals["with_faces"] or 0,
        decode_s=totals["decode_s"] or 0.0,
        faces_s=totals["faces_s"] or 0.0,
        seconds=seconds,
    )
