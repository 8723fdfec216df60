"""Verdicts: per video, the run's face scores -> one score (the model's aggregation rule) -> a label.

Each video's extraction row (status, reason, frame and face counts) is joined with its scores from
this run's ``face_scores``, grouped by video (``applyInPandas``, so it stays distributed), aggregated
with the rule the model's contract names and labelled by :func:`deepsift.verdicts.labels.verdict_for`
with the contract's thresholds. Under the contract's cascade a video the first pass settled is
aggregated over its first-pass faces only (``deepsift.verdicts.cascade.judged_faces``), and
``n_frames_scored`` says over how many frames. Labels are computed from the stored scores, never from
scores held in memory, so a verdict always agrees with ``face_scores``. The result is checkpointed once,
beside whether the ``verdicts`` version read first holds the video's verdict from this model version on
these crops; the labels it does not hold are appended (:func:`deepsift.lake.tables.append_once`, one
writer per model version and preprocess version), so the first verdict a model version gives a video
stays, a rerun changes nothing, and no MERGE reads the table.

:func:`reaggregate` replays another rule over stored scores alone, without a model or decoding
(``deepsift reaggregate``, through :func:`reaggregate_version`).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from deepsift.config import Config
from deepsift.detect.contract import config_for_contract
from deepsift.lake.tables import (
    EXTRACTIONS,
    FACE_SCORES,
    FACES,
    SCAN_TABLES,
    VERDICTS,
    VIDEOS,
    append_once,
    ensure_tables,
    table_as_of,
    table_version,
)
from deepsift.progress import step
from deepsift.registry.mlflow_models import DetectorRegistry, ModelVersionInfo
from deepsift.stages.extract import planned_preprocess_version
from deepsift.stages.score import ScoringRun
from deepsift.verdicts.aggregation import check_aggregation
from deepsift.verdicts.cascade import Cascade
from deepsift.verdicts.labelling import LABELLED_SCHEMA, labeller
from deepsift.verdicts.labels import EXTRACTION_OK, Thresholds

LISTED_VERDICTS = 50
"""How many of the verdicts a call wrote its summary lists."""


@dataclass(frozen=True)
class ListedVerdict:
    """One written verdict, as a command prints it."""

    uri: str
    verdict: str
    score: float | None
    reason: str | None


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
    listed: tuple[ListedVerdict, ...] = ()
    """Up to :data:`LISTED_VERDICTS` of the verdicts this call wrote, by verdict, then score (highest
    first), then file: taken from the rows in hand, so a command prints them without reading the table back."""


@step("verdicts")
def write_verdicts(spark: SparkSession, config: Config, run: ScoringRun) -> VerdictSummary:
    """Label every video of the run and append the labels ``verdicts`` lacks.

    Uses the run's ``face_scores`` (its :func:`~deepsift.stages.score.scan_run_id`), so call it after
    :func:`deepsift.stages.score.score_faces` with the same run.
    """
    started = time.perf_counter()
    schema = config.lake.schema_name
    ensure_tables(spark, schema, (VIDEOS, EXTRACTIONS, FACES, *SCAN_TABLES))
    read_version = table_version(spark, schema, VERDICTS)  # before the stored verdicts are read: see append_once
    aggregation = run.model.contract.aggregation
    wanted = run.wanted(spark, config)
    extracted = (
        spark.table(EXTRACTIONS.qualified(schema))
        .where(F.col("preprocess_version") == run.preprocess_version)
        .join(wanted, "video_id", "left_semi")
        .select("video_id", "status", "reason", "n_frames", "n_faces")
    )
    contract = run.model.contract
    rows = extracted.join(_run_face_scores(spark, schema, run), "video_id", "left")
    labelled = (
        _label_videos(rows, aggregation, contract.thresholds, contract.cascade)
        .join(extracted.select("video_id", "n_frames", "n_faces"), "video_id")
        .join(_stored_verdicts(spark, schema, run, read_version), "video_id", "left")
        .checkpoint(eager=True)
    )
    outcomes = _Outcomes.count(labelled)
    listed: tuple[ListedVerdict, ...] = ()
    if outcomes.new:
        new = labelled.where(F.col("verdict").isNotNull() & F.col("stored").isNull())
        append_once(spark, schema, VERDICTS, _verdict_rows(run, new), writer=_verdicts_writer(run), read_version=read_version)
        listed = _first_listed(spark, schema, new)
    return VerdictSummary(
        run_id=run.run_id,
        model_name=run.model.name,
        model_version=run.model.version,
        aggregation=aggregation,
        videos=outcomes.by_verdict.total(),
        by_verdict=dict(outcomes.by_verdict),
        by_reason=dict(outcomes.by_reason),
        unscored=outcomes.unscored,
        not_extracted=0 if run.video_ids is None else wanted.join(extracted, "video_id", "left_anti").count(),
        seconds=time.perf_counter() - started,
        listed=listed,
    )


@dataclass(frozen=True)
class _Outcomes:
    """How many labelled videos got each verdict and each reason, how many got none (unscored), and how
    many decided ones have no stored verdict yet (new: the rows to write)."""

    by_verdict: Counter[str]
    by_reason: Counter[str]
    unscored: int
    new: int

    @classmethod
    def count(cls, labelled: DataFrame) -> _Outcomes:
        """Count the checkpointed labels in one small aggregation."""
        by_verdict: Counter[str] = Counter()
        by_reason: Counter[str] = Counter()
        unscored = new = 0
        for row in labelled.groupBy("verdict", "reason", "stored").count().collect():
            if row["verdict"] is None:
                unscored += row["count"]
            else:
                by_verdict[row["verdict"]] += row["count"]
                new += 0 if row["stored"] else row["count"]
            if row["reason"] is not None:
                by_reason[row["reason"]] += row["count"]
        return cls(by_verdict, by_reason, unscored, new)


def _first_listed(spark: SparkSession, schema: str, new: DataFrame) -> tuple[ListedVerdict, ...]:
    """The first :data:`LISTED_VERDICTS` of the new labels with their files; the files are joined here, not
    into the checkpointed labels, so a stage that lists nothing never reads ``videos``."""
    files = spark.table(VIDEOS.qualified(schema)).select("video_id", "uri")
    first = (
        new.join(files, "video_id", "left")
        .orderBy("verdict", F.col("score").desc_nulls_last(), "uri")
        .limit(LISTED_VERDICTS)
        .select("uri", "verdict", "score", "reason")
    )
    return tuple(ListedVerdict(**row.asDict()) for row in first.collect())


def _stored_verdicts(spark: SparkSession, schema: str, run: ScoringRun, read_version: int) -> DataFrame:
    """(video_id, stored = true) of the videos this model version judged on the run's crops, as of
    ``read_version``: the first verdict a version gives a video stays, so those are not written again."""
    return (
        table_as_of(spark, schema, VERDICTS, read_version)
        .where(
            (F.col("model_name") == run.model.name)
            & (F.col("model_version") == run.model.version)
            & (F.col("preprocess_version") == run.preprocess_version)
        )
        .select("video_id", F.lit(True).alias("stored"))
    )


def _verdicts_writer(run: ScoringRun) -> str:
    """Who writes a verdict's key: every run of one model version on one preprocess version, whatever its
    scan date (a scan and a rescore of the same version compute the same keys)."""
    return f"{run.model.name}-v{run.model.version}-{run.preprocess_version}"


def _verdict_rows(run: ScoringRun, decided: DataFrame) -> DataFrame:
    """The run's decided labels as ``verdicts`` rows."""
    scanned_at = datetime.now(UTC).replace(tzinfo=None)
    return decided.select(
        "video_id",
        F.lit(run.model.name).alias("model_name"),
        F.lit(run.model.version).cast("int").alias("model_version"),
        F.lit(run.preprocess_version).alias("preprocess_version"),
        "score",
        "verdict",
        "reason",
        F.when(F.col("score").isNotNull(), F.lit(run.model.contract.aggregation)).alias("aggregation"),
        "n_frames",
        "n_faces",
        F.lit(run.run_id).alias("run_id"),
        F.lit(scanned_at).cast("timestamp").alias("scanned_at"),
        F.lit(run.scan_date).alias("scan_date"),
        "n_frames_scored",
    )


def reaggregate(
    spark: SparkSession,
    config: Config,
    model: ModelVersionInfo,
    preprocess_version: str,
    aggregation: str,
    scan_date: date | None = None,
) -> DataFrame:
    """Per-video scores and verdicts of ``model`` under another aggregation rule, from stored scores.

    Reads ``face_scores`` only (no model weights, no crops): videos without scored faces (errors,
    ``no_face``) do not appear. Where a video was scored by several runs of this version, the latest
    scan date's scores are used, or those of ``scan_date`` when given. Labels use the version's
    thresholds. The result is returned, not written: ``verdicts`` holds one verdict per model version,
    under the rule its contract names. Columns: video_id, model_name, model_version,
    preprocess_version, run_id, aggregation, n_faces, score, verdict.
    """
    check_aggregation(aggregation)
    schema = config.lake.schema_name
    ensure_tables(spark, schema, SCAN_TABLES)
    scores = spark.table(FACE_SCORES.qualified(schema)).where(
        (F.col("model_name") == model.name)
        & (F.col("model_version") == model.version)
        & (F.col("preprocess_version") == preprocess_version)
    )
    if scan_date is not None:
        scores = scores.where(F.col("scan_date") == F.lit(scan_date))
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
    return _label_videos(rows, aggregation, model.contract.thresholds, None).join(per_video, "video_id").select(
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


def reaggregate_version(
    spark: SparkSession, config: Config, model: str, aggregation: str, scan_date: date | None = None
) -> DataFrame:
    """:func:`reaggregate` for a version number or ``@alias``, over the crops its contract makes here.

    What ``deepsift reaggregate`` prints, one row per video, ordered by video id.
    """
    check_aggregation(aggregation)  # before the registry and the face detector are loaded
    info = DetectorRegistry(config.mlflow, config.home).resolve(model)
    version, _ = planned_preprocess_version(config_for_contract(config, info.contract))
    return reaggregate(spark, config, info, version, aggregation, scan_date).orderBy("video_id")


def _run_face_scores(spark: SparkSession, schema: str, run: ScoringRun) -> DataFrame:
    """(video_id, frame_index, score) rows for :func:`_label_videos`: the run's scores, one per face.

    Under a cascade the labels also need the faces left unscored (NULL score), to tell a video the
    first pass settled from one whose scoring is not finished.
    """
    scores = spark.table(FACE_SCORES.qualified(schema)).where(F.col("run_id") == run.run_id)
    if run.model.contract.cascade is None:
        return scores.select("video_id", "frame_index", "score")
    faces = spark.table(FACES.qualified(schema)).where(F.col("preprocess_version") == run.preprocess_version)
    keys = ["video_id", "frame_index", "face_index"]
    every_face = faces.select(*keys).join(scores.select(*keys, "score"), keys, "left")
    return every_face.select("video_id", "frame_index", "score")


def _label_videos(rows: DataFrame, aggregation: str, thresholds: Thresholds, cascade: Cascade | None) -> DataFrame:
    """One row per video from rows (video_id, status, reason, n_faces, frame_index, score), one per face.

    A video without faces comes as one row with a NULL score. Output: video_id, score, verdict, reason,
    n_frames_scored; verdict is NULL for a video with faces whose scores are missing or incomplete.
    With a ``cascade`` the rows hold every face, NULL scores included (:func:`_run_face_scores`).
    """
    return rows.groupBy("video_id").applyInPandas(labeller(aggregation, thresholds, cascade), LABELLED_SCHEMA)
