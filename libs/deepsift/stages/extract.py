"""Extraction: decode, sample and crop faces for every video not yet extracted at this preprocess version.

Work is spread by estimated cost (duration x pixels) over partitions, in Spark: the pending videos are
ranked by cost and dealt out, costliest first, in snake order (0..n-1, then n-1..0), so that one long 4K
upload does not sit behind a queue of others and no driver ever holds the list of videos. Each partition sends its
videos, one call each, to a warm isolated worker (``deepsift.media.isolation``): a crash, hang or
memory blow-up becomes an error row for that video and never fails the job. The results are
checkpointed once, then appended to ``extractions`` (one row per video, with status and reason) and
``faces`` (one row per face crop): the pending videos are those without a row in the ``extractions``
version read first, so the rows are new keys, committed once per preprocess version and table version
read (:func:`deepsift.lake.tables.append_once`); a rerun adds nothing, and no MERGE reads the tables.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from deepsift.config import Config, DecodeLimits, SamplingConfig
from deepsift.faces.detector import build_face_detector
from deepsift.faces.extraction import VideoExtraction, extract_listed, preprocess_version
from deepsift.lake.schemas import spark_ddl
from deepsift.lake.tables import (
    EXTRACTION_TABLES,
    EXTRACTIONS,
    FACES,
    VIDEOS,
    append_once,
    ensure_tables,
    table_as_of,
    table_version,
)
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

    # Versions read before the rows are computed, and the pending videos from exactly that extractions
    # version: see append_once. Every extraction at this preprocess version is one writer of its keys.
    read_versions = {table: table_version(spark, schema, table) for table in (EXTRACTIONS, FACES)}
    done = table_as_of(spark, schema, EXTRACTIONS, read_versions[EXTRACTIONS])
    done = done.where(F.col("preprocess_version") == version).select("video_id")
    pending = spark.table(VIDEOS.qualified(schema)).join(done, "video_id", "left_anti")
    listing = task_listing(spark, pending)
    if listing is None:  # a rerun: no worker, no checkpoint
        return ExtractSummary(version, detector, 0, 0, {}, 0, 0, 0.0, 0.0, time.perf_counter() - started)
    extracted = _extract(config, listing, version, detector, target)
    extracted = extracted.checkpoint(eager=True)
    summary = _summarize(extracted, version, detector)
    now = F.lit(datetime.now(UTC).replace(tzinfo=None)).cast("timestamp")
    if summary.videos:
        rows = extracted.withColumn("extracted_at", now)
        append_once(spark, schema, EXTRACTIONS, rows, writer=version, read_version=read_versions[EXTRACTIONS])
    if summary.faces:
        append_once(spark, schema, FACES, _face_rows(extracted, config), writer=version, read_version=read_versions[FACES])
    return replace(summary, seconds=time.perf_counter() - started)


def _face_rows(extracted: DataFrame, config: Config) -> DataFrame:
    """The ``faces`` rows of the extracted videos: one per crop, nested in each video's row by the UDF."""
    return extracted.select("video_id", "preprocess_version", F.explode("faces").alias("f")).select(
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


def planned_preprocess_version(config: Config) -> tuple[str, str]:
    """The preprocess version (and face detector) that extraction under ``config`` produces here."""
    detector = build_face_detector(config.faces).name
    return preprocess_version(config.sampling, config.faces, detector), detector


def task_listing(spark: SparkSession, pending: DataFrame) -> DataFrame | None:
    """The pending videos laid out as the extraction's tasks; None when no video is pending.

    Up to one video per core, each is a task of its own, made from the rows a first look collected: a
    small batch skips :func:`balanced_by_cost` and its sampling job. More are balanced by cost in twice as
    many tasks as cores.
    """
    videos = pending.select(*LISTED_COLUMNS, "duration_s", "width", "height")
    cores = spark.sparkContext.defaultParallelism
    first_look = videos.limit(cores + 1).collect()
    if not first_look:
        return None
    if len(first_look) <= cores:
        one_each = spark.sparkContext.parallelize(first_look, len(first_look))
        return spark.createDataFrame(one_each, videos.schema).select(*LISTED_COLUMNS)
    return balanced_by_cost(videos, cores * 2).select(*LISTED_COLUMNS)


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
    # The videos' own session, not RDD.toDF's: PySpark points toDF at the session constructed last, which
    # may be a read-only one (deepsift.lake.readonly), whose guard then refuses the extraction's append.
    spread = videos.sparkSession.createDataFrame(dealt, costed.schema)
    return spread.sortWithinPartitions(F.desc("cost")).drop("cost")


def _snake(rank: int, bins: int) -> int:
    """The bin of a range's ``rank``-th costliest video: 0..n-1 on even rounds, n-1..0 on odd ones."""
    round_, index = divmod(rank, bins)
    return index if round_ % 2 == 0 else bins - 1 - index


def estimated_cost() -> Column:
    """Decode cost grows with duration x pixels; unknown (NULL or 0) values fall back to :data:`UNKNOWN_COST`."""
    known = (F.col("duration_s") != 0) & (F.col("width") != 0) & (F.col("height") != 0)
    return F.when(known, F.col("duration_s") * F.col("width") * F.col("height")).otherwise(F.lit(UNKNOWN_COST))


def _extract(config: Config, listing: DataFrame, version: str, detector: str, target: str) -> DataFrame:
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


def _summarize(extracted: DataFrame, version: str, detector: str) -> ExtractSummary:
    """The checkpointed extraction's totals, in one small aggregation by status and reason (``seconds``
    is left 0 for the caller to set)."""
    groups = (
        extracted.groupBy("status", "reason")
        .agg(
            F.count("*").alias("videos"),
            F.sum("n_faces").alias("faces"),
            F.sum(F.when(F.col("n_faces") > 0, 1).otherwise(0)).alias("with_faces"),
            F.sum("decode_s").alias("decode_s"),
            F.sum("faces_s").alias("faces_s"),
        )
        .collect()
    )
    return ExtractSummary(
        preprocess_version=version,
        face_detector=detector,
        videos=sum(row["videos"] for row in groups),
        ok=sum(row["videos"] for row in groups if row["status"] == "ok"),
        errors={row["reason"]: row["videos"] for row in groups if row["status"] == "error"},
        faces=sum(row["faces"] or 0 for row in groups),
        videos_with_faces=sum(row["with_faces"] or 0 for row in groups),
        decode_s=sum(row["decode_s"] or 0.0 for row in groups),
        faces_s=sum(row["faces_s"] or 0.0 for row in groups),
        seconds=0.0,
    )
