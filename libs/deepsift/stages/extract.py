"""Extraction: decode, sample and crop faces for every video not yet extracted at this preprocess version.

Work is spread by estimated cost (duration x pixels) over partitions, in Spark: the pending videos are
ranked by cost and dealt out, costliest first, in snake order (0..n-1, then n-1..0), so that one long 4K
upload does not sit behind a queue of others and no driver ever holds the list of videos. Each partition sends its
videos, one call each, to a warm isolated worker (``deepsift.media.isolation``): a crash, hang or
memory blow-up becomes an error row for that video and never fails the job. The results are
checkpointed once, then MERGEd into ``extractions`` (one row per video, with status and reason) and
``faces`` (one row per face crop); a rerun adds nothing.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from deepsift.config import Config, DecodeLimits, SamplingConfig
from deepsift.faces.detector import build_face_detector
from deepsift.faces.extraction import VideoExtraction, extract_listed, preprocess_version
from deepsift.lake.schemas import spark_ddl
from deepsift.lake.tables import EXTRACTION_TABLES, EXTRACTIONS, FACES, VIDEOS, ensure_tables, merge_insert_new
from deepsift.media.isolation import IsolatedWorker, shared_worker
from deepsift.media.sources import opened_locally
from deepsift.progress import step
from deepsift.reasons import MediaError

UNKNOWN_COST = 1280 * 720 * 60.0
"""Cost assumed for a video whose duration or size the probe could not tell (a 60 s 720p clip)."""

_EXTRACTED_FACE = pa.struct(FACES.row_schema(exclude=("video_id", "preprocess_version", "crop_format")))
_ARROW_SCHEMA = EXTRACTIONS.row_schema(exclude=("extracted_at",)).append(pa.field("faces", pa.list_(_EXTRACTED_FACE)))
EXTRACTED_SCHEMA = spark_ddl(_ARROW_SCHEMA)
"""One row per video as the extract UDF yields it: its ``extractions`` row (but ``extracted_at``, set at the
write) and its ``faces`` rows (but the keys and ``crop_format`` they share) nested in ``faces``."""
LISTED_COLUMNS = ("video_id", "uri", "probe_status", "probe_error", "rotation")
"""What the extract UDF reads of a pending video's ``videos`` row."""


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
    ensure_tables(spark, schema, EXTRACTION_TABLES)
    version, detector = planned_preprocess_version(config)

    done = spark.table(EXTRACTIONS.qualified(schema)).where(F.col("preprocess_version") == version)
    pending = spark.table(VIDEOS.qualified(schema)).join(done, "video_id", "left_anti")
    extracted = _extract(spark, config, pending, version, detector, target)
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


def balanced_by_cost(videos: DataFrame, bins: int) -> DataFrame:
    """``videos`` in ``bins`` partitions of about equal estimated cost, costliest first in each.

    Computed in Spark, so it holds at millions of videos: a global sort by cost (Spark's range
    partitioning: ranges of neighbouring costs), then each range dealt out in snake order (0, 1, ..., n-1,
    n-1, ..., 0, ...), rotated by the range's index, so that every partition gets its share of every cost
    range and the costliest videos of a range land in different partitions. Some partitions stay empty
    when there are fewer videos than ``bins``.
    """
    costed = videos.select(*videos.columns, estimated_cost().alias("cost"))
    ranges = costed.orderBy(F.desc("cost"), "video_id").rdd

    def deal(index: int, rows: Iterable[Row]) -> Iterator[tuple[int, Row]]:
        for rank, row in enumerate(rows):
            yield (_snake(rank, bins) + index) % bins, row

    dealt = ranges.mapPartitionsWithIndex(deal).partitionBy(bins, lambda target: target).values()
    return dealt.toDF(costed.schema).sortWithinPartitions(F.desc("cost")).drop("cost")


def _snake(rank: int, bins: int) -> int:
    """The bin of a range's ``rank``-th costliest video: 0..n-1 on even rounds, n-1..0 on odd ones."""
    round_, index = divmod(rank, bins)
    return index if round_ % 2 == 0 else bins - 1 - index


def estimated_cost() -> Column:
    """Decode cost grows with duration x pixels; unknown (NULL or 0) values fall back to :data:`UNKNOWN_COST`."""
    known = (F.col("duration_s") != 0) & (F.col("width") != 0) & (F.col("height") != 0)
    return F.when(known, F.col("duration_s") * F.col("width") * F.col("height")).otherwise(F.lit(UNKNOWN_COST))


def _extract(
    spark: SparkSession, config: Config, pending: DataFrame, version: str, detector: str, target: str
) -> DataFrame:
    videos = pending.select(*LISTED_COLUMNS, "duration_s", "width", "height")
    listing = balanced_by_cost(videos, spark.sparkContext.defaultParallelism * 2).select(*LISTED_COLUMNS)
    settings = (config.sampling.model_dump_json(), config.decode.model_dump_json(), config.faces.model_dump_json())

    def extract_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        videos = (video for batch in batches for video in batch.to_pylist())
        first = next(videos, None)
        if first is None:  # an empty partition starts no worker
            return
        sampling, limits = SamplingConfig.model_validate_json(settings[0]), DecodeLimits.model_validate_json(settings[1])
        worker = shared_worker(limits, "deepsift.faces.extraction:init_worker", (settings[2],))
        _check_detector(worker, detector)

        def run(path: str, rotation: int | None) -> VideoExtraction:
            return worker.call(target, path, rotation, sampling, limits)

        for video in itertools.chain([first], videos):
            yield _to_record_batch(video["video_id"], version, detector, _extract_one(video, run))

    return listing.mapInArrow(extract_partition, EXTRACTED_SCHEMA)


def _extract_one(video: dict[str, Any], run: Callable[[str, int | None], VideoExtraction]) -> VideoExtraction:
    """One listed video through the library's per-video step, opened with this module's ``opened_locally``.

    A module-level function on purpose: Spark pickles the partition closure by value, with the globals
    it names as they are on the driver, while this function is pickled by reference, so the executor
    resolves ``opened_locally`` in its own import of this module (where a deployment's wrapper, or the
    cluster tests' fault injection, applies).
    """
    return extract_listed(video, run, opened_locally)


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
