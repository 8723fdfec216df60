"""Verdicts: per video, the run's face scores -> one score (the model's aggregation rule) -> a label.

Each video's extraction row (status, reason, frame and face counts) is joined with its scores from
this run's ``face_scores``, grouped by video (``applyInPandas``, so it stays distributed), aggregated
with the rule the model's contract names and labelled by :func:`deepsift.verdicts.labels.verdict_for`
with the contract's thresholds. Labels are computed from the stored scores, never from scores held in
memory, so a verdict always agrees with ``face_scores``. The result is checkpointed once and MERGEd
into ``verdicts`` insert-only on (video, model, version, preprocess version): the first verdict a
model version gives a video stays, and a rerun changes nothing.

:func:`reaggregate` replays another rule over stored scores alone, without a model or decoding.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from deepsift.config import Config
from deepsift.detect.contract import Thresholds
from deepsift.lake.tables import EXTRACTIONS, FACE_SCORES, SCAN_TABLES, VERDICTS, ensure_tables, merge_insert_new
from deepsift.progress import step
from deepsift.registry.mlflow_models import ModelVersionInfo
from deepsift.stages.score import scan_run_id, videos_to_scan
from deepsift.verdicts.aggregation import UnknownAggregationError, aggregate, known_aggregations
from deepsift.verdicts.labels import EXTRACTION_OK, verdict_for

_LABELLED_SCHEMA = "video_id string, score double, verdict string, reason string"


@dataclass(frozen=True)
class VerdictSummary:
    run_id: str
    model_name: str
    model_version: int
    aggregation: str
    videos: int
    """Videos labelled by this call; where a verdict was stored before, the stored row is kept."""
    by_verdict: dict[str, int]
    by_reason: dict[str, int]
    unscored: int
    """Videos with faces whose scores this run has not (all) written yet: no verdict, so that scoring
    them later can still give one."""
    not_extracted: int
    """Requested videos without an ``extractions`` row at this preprocess version: no verdict."""
    seconds: float


@step("verdicts")
def write_verdicts(
    spark: SparkSession,
    config: Config,
    model: ModelVersionInfo,
    preprocess_version: str,
    scan_date: date,
    video_ids: DataFrame | None = None,
) -> VerdictSummary:
    """Label every video of ``video_ids`` (default :func:`videos_to_scan`) and MERGE into ``verdicts``.

    Uses the ``face_scores`` of :func:`scan_run_id` for this date, model version and preprocess
    version, so call it after :func:`deepsift.stages.score.score_faces` with the same arguments.
    """
    started = time.perf_counter()
    schema = config.lake.schema_name
    ensure_tables(spark, schema, (EXTRACTIONS, *SCAN_TABLES))
    run_id = scan_run_id(scan_date, model.name, model.version, preprocess_version)
    aggregation = model.contract.aggregation
    wanted = (videos_to_scan(spark, config, model, preprocess_version) if video_ids is None else video_ids).select(
        "video_id"
    ).distinct()
    extracted = (
        spark.table(EXTRACTIONS.qualified(schema))
        .where(F.col("preprocess_version") == preprocess_version)
        .join(wanted, "video_id", "left_semi")
        .select("video_id", "status", "reason", "n_frames", "n_faces")
    )
    scores = (
        spark.table(FACE_SCORES.qualified(schema))
        .where(F.col("run_id") == run_id)
        .select("video_id", "frame_index", "score")
    )
    labelled = (
        _label_videos(extracted.join(scores, "video_id", "left"), aggregation, model.contract.thresholds)
        .join(extracted.select("video_id", "n_frames", "n_faces"), "video_id")
        .checkpoint(eager=True)
    )
    outcomes = labelled.groupBy("verdict", "reason").count().collect()
    by_verdict: Counter[str] = Counter()
    by_reason: Counter[str] = Counter()
    for row in outcomes:
        if row["verdict"] is not None:
            by_verdict[row["verdict"]] += row["count"]
        if row["reason"] is not None:
            by_reason[row["reason"]] += row["count"]
    if by_verdict:
        scanned_at = datetime.now(UTC).replace(tzinfo=None)
        decided = labelled.where(F.col("verdict").isNotNull())
        merge_insert_new(
            spark,
            schema,
            VERDICTS,
            decided.select(
                "video_id",
                F.lit(model.name).alias("model_name"),
                F.lit(model.version).cast("int").alias("model_version"),
                F.lit(preprocess_version).alias("preprocess_version"),
                "score",
                "verdict",
                "reason",
                F.when(F.col("score").isNotNull(), F.lit(aggregation)).alias("aggregation"),
                "n_frames",
                "n_faces",
                F.lit(run_id).alias("run_id"),
                F.lit(scanned_at).cast("timestamp").alias("scanned_at"),
                F.lit(scan_date).alias("scan_date"),
            ),
        )
    return VerdictSummary(
        run_id=run_id,
        model_name=model.name,
        model_version=model.version,
        aggregation=aggregation,
        videos=by_verdict.total(),
        by_verdict=dict(by_verdict),
        by_reason=dict(by_reason),
        unscored=sum(row["count"] for row in outcomes if row["verdict"] is None),
        not_extracted=0 if video_ids is None else wanted.join(extracted, "video_id", "left_anti").count(),
        seconds=time.perf_counter() - started,
    )


def reaggregate(
    spark: SparkSession, config: Config, model: ModelVersionInfo, preprocess_version: str, aggregation: str
) -> DataFrame:
    """Per-video scores and verdicts of ``model`` under another aggregation rule, from stored scores.

    Reads ``face_scores`` only (no model weights, no crops): videos without scored faces (errors,
    ``no_face``) do not appear. Where a video was scored by several runs of this version, the latest
    scan date's scores are used. Labels use the version's thresholds. The result is returned, not
    written: ``verdicts`` holds one verdict per model version, under the rule its contract names.
    Columns: video_id, model_name, model_version, preprocess_version, run_id, aggregation, n_faces,
    score, verdict.
    """
    if aggregation not in known_aggregations():
        raise UnknownAggregationError(f"unknown aggregation {aggregation!r}; known: {', '.join(known_aggregations())}")
    schema = config.lake.schema_name
    ensure_tables(spark, schema, SCAN_TABLES)
    scores = spark.table(FACE_SCORES.qualified(schema)).where(
        (F.col("model_name") == model.name)
        & (F.col("model_version") == model.version)
        & (F.col("preprocess_version") == preprocess_version)
    )
    latest = scores.withColumn("latest", F.max("scan_date").over(Window.partitionBy("video_id"))).where(
        F.col("scan_date") == F.col("latest")
    )
    per_video = latest.groupBy("video_id").agg(F.first("run_id").alias("run_id"), F.count("*").alias("n_faces"))
    rows = latest.join(per_video, "video_id").select(
        "video_id",
        F.lit(EXTRACTION_OK).alias("status"),
        F.lit(None).cast("string").alias("reason"),
        "n_faces",
        "frame_index",
        "score",
    )
    return _label_videos(rows, aggregation, model.contract.thresholds).join(per_video, "video_id").select(
        "video_id",
        F.lit(model.name).alias("model_name"),
        F.lit(model.version).cast("int").alias("model_version"),
        F.lit(preprocess_version).alias("preprocess_version"),
        "run_id",
        F.lit(aggregation).alias("aggregation"),
        F.col("n_faces").cast("int").alias("n_faces"),
        "score",
        "verdict",
    )


def _label_videos(rows: DataFrame, aggregation: str, thresholds: Thresholds) -> DataFrame:
    """One row per video from rows (video_id, status, reason, n_faces, frame_index, score), one per face.

    A video without faces comes as one row with a NULL score. Output: video_id, score, verdict, reason;
    verdict is NULL for a video with faces whose scores are missing or incomplete.
    """
    return rows.groupBy("video_id").applyInPandas(_labeller(aggregation, thresholds), _LABELLED_SCHEMA)


def _labeller(aggregation: str, thresholds: Thresholds) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def label(group: pd.DataFrame) -> pd.DataFrame:
        first = group.iloc[0]
        status = first["status"]
        reason = first["reason"] if isinstance(first["reason"], str) else None
        n_faces = 0 if pd.isna(first["n_faces"]) else int(first["n_faces"])
        scored = group[group["score"].notna()]
        score: float | None = None
        if status == EXTRACTION_OK and n_faces > 0:
            if len(scored) != n_faces:
                return pd.DataFrame([{"video_id": first["video_id"], "score": None, "verdict": None, "reason": None}])
            score = aggregate(aggregation, scored["score"].to_numpy(), scored["frame_index"].to_numpy(dtype="int64"))
        verdict, why = verdict_for(score, thresholds, status, reason, n_faces)
        return pd.DataFrame([{"video_id": first["video_id"], "score": score, "verdict": verdict.value, "reason": why}])

    return label
