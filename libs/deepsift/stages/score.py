"""Scoring: cached face crops -> one probability of manipulation per face, for one exact model version.

The caller resolves the model (an alias such as ``@champion``) once on the driver and passes the
exact :class:`ModelVersionInfo`; the driver downloads that version's weights and contract and ships
them with the tasks (``deepsift.registry.version_files``), and executors load them once per Spark
Python worker and device (``shared_scorer``) without opening the MLflow store. The detect stage
alone asks Spark for GPUs, through a ResourceProfile where executors have them
(``deepsift.detect.devices``); each task scores on the GPU Spark assigned it, else a GPU it sees
(local mode), else the CPU. Crops are read from ``faces`` (no decoding of videos), decoded and scored
in batches of ``detect.cpu_batch_size`` or ``detect.gpu_batch_size`` whatever size Arrow hands them
over in; on a CPU the network runs on ``detect.cpu_engine``. Where the model's contract has a
cascade (``deepsift.verdicts.cascade``), a first pass scores a few frames of each video and a second
pass the other faces of the videos those leave in doubt. The scores are checkpointed once per pass
and appended to ``face_scores``: every key holds the run's id, and the run scores only faces it has no
score for, so no MERGE has to read the whole table; a rerun adds nothing, and a run written twice
at once is written once (:func:`deepsift.lake.tables.append_once`).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from deepsift.config import Config
from deepsift.detect.devices import DETECT_OUTPUT_SCHEMA, detect_udf, plan_detect
from deepsift.lake.tables import (
    EXTRACTIONS,
    FACE_SCORES,
    FACES,
    SCAN_TABLES,
    VERDICTS,
    append_once,
    ensure_tables,
    table_version,
)
from deepsift.progress import step
from deepsift.registry.mlflow_models import DetectorRegistry, ModelVersionInfo
from deepsift.registry.version_files import ship_version, shipped_scorer_loader
from deepsift.verdicts.aggregation import aggregate
from deepsift.verdicts.cascade import first_pass, settled_early
from deepsift.verdicts.labels import Thresholds

log = logging.getLogger(__name__)

SHIPPED_FILES_FOLDER = "detector-files"
"""The folder of the home's cache that the driver serves a scored version's files from."""


@dataclass(frozen=True)
class ScoreSummary:
    run_id: str
    model_name: str
    model_version: int
    videos: int
    """Videos with at least one face scored by this call."""
    faces: int
    """Faces scored by this call; faces this run had already scored are skipped, not rescored."""
    seconds: float
    detect_path: str | None = None
    """How the detect tasks got their device (``deepsift.detect.devices.DetectPath``; several joined by
    commas if tasks differed); None when no face was scored."""
    detect_engine: str | None = None
    """What ran the network in the detect tasks (``onnxruntime``, ``torch``; joined by commas if tasks
    differed); None when no face was scored."""


def scan_run_id(scan_date: date, model_name: str, model_version: int, preprocess_version: str) -> str:
    """The id of the scan of ``scan_date`` with one model version over crops of one preprocess version.

    Deterministic on purpose: rerunning (or backfilling) a scan date with the same model and crops
    yields the same id, hence the same ``face_scores`` keys, so the insert-only MERGE adds nothing.

    >>> scan_run_id(date(2026, 11, 26), "deepsift-detector", 3, "pp-1a2b3c")
    'scan-2026-11-26-deepsift-detector-v3-pp-1a2b3c'
    """
    return f"scan-{scan_date.isoformat()}-{model_name}-v{model_version}-{preprocess_version}"


def videos_to_scan(spark: SparkSession, config: Config, model: ModelVersionInfo, preprocess_version: str) -> DataFrame:
    """Video ids extracted at ``preprocess_version`` that have no verdict from this model version yet."""
    schema = config.lake.schema_name
    ensure_tables(spark, schema, (EXTRACTIONS, *SCAN_TABLES))
    judged = spark.table(VERDICTS.qualified(schema)).where(
        (F.col("model_name") == model.name)
        & (F.col("model_version") == model.version)
        & (F.col("preprocess_version") == preprocess_version)
    )
    extracted = spark.table(EXTRACTIONS.qualified(schema)).where(F.col("preprocess_version") == preprocess_version)
    return extracted.select("video_id").join(judged.select("video_id"), "video_id", "left_anti")


@dataclass(frozen=True)
class ScoringRun:
    """One model version judging crops of one preprocess version on one scan date: what the score and
    verdict stages share, so that both read and write under the same :func:`scan_run_id`.

    ``video_ids`` limits the run to those videos; None means :func:`videos_to_scan`.
    """

    model: ModelVersionInfo
    preprocess_version: str
    scan_date: date
    video_ids: DataFrame | None = None

    @property
    def run_id(self) -> str:
        """The run's :func:`scan_run_id`, the key every row it writes holds."""
        return scan_run_id(self.scan_date, self.model.name, self.model.version, self.preprocess_version)

    def wanted(self, spark: SparkSession, config: Config) -> DataFrame:
        """The distinct video ids this run is for."""
        if self.video_ids is None:
            return videos_to_scan(spark, config, self.model, self.preprocess_version).distinct()
        return self.video_ids.select("video_id").distinct()


@step("score")
def score_faces(spark: SparkSession, config: Config, run: ScoringRun) -> ScoreSummary:
    """Score every face of the run's videos at its preprocess version not scored by this run yet.

    Under a cascade, every such face of the videos whose first pass leaves doubt (:func:`_score_in_passes`).

    Writes ``face_scores`` rows under the run's :func:`scan_run_id`. Crops must have the model's input
    size (``CropFormatError`` from the executors otherwise: rescore needs crops extracted at that size).
    GPU settings that cannot work fail first, before any Spark job (``GpuSchedulingError``).
    """
    started = time.perf_counter()
    profile = plan_detect(spark, config.detect)
    schema = config.lake.schema_name
    ensure_tables(spark, schema, (FACES, *SCAN_TABLES))
    read_version = table_version(spark, schema, FACE_SCORES)  # before the run's scores are read: see append_once
    faces = _unscored_faces(spark, config, run)
    model = run.model
    with tempfile.TemporaryDirectory() as scratch:
        files = DetectorRegistry(config.mlflow, config.home).version_files(model.version, Path(scratch))
        shipped = ship_version(spark, files, config.cache_dir / SHIPPED_FILES_FOLDER)
    detect = detect_udf(shipped_scorer_loader(shipped, config.detect.cpu_engine), config.detect)

    def scored_pass(faces: DataFrame) -> DataFrame:
        """One pass of the detect UDF over ``faces``, as checkpointed ``face_scores`` rows."""
        return _score_rows(
            sized_for_detect(faces).mapInArrow(detect, DETECT_OUTPUT_SCHEMA, profile=profile), run
        ).checkpoint(eager=True)

    scored = _score_in_passes(spark, config, run, faces, scored_pass)
    totals = _totals(scored)
    if totals["faces"]:  # the run's own keys, none of them in the table: an append, not a MERGE over all scores
        append_once(spark, schema, FACE_SCORES, scored, writer=run.run_id, read_version=read_version)
    if config.detect.cpu_engine == "onnxruntime" and totals["on_cpu"] and totals["torch"]:
        log.warning(
            "detect.cpu_engine is onnxruntime, but some CPU tasks scored with torch: the ONNX export failed or "
            "missed the 1e-3 parity bound (the executor log says which); the scores are torch's"
        )
    return ScoreSummary(
        run.run_id,
        model.name,
        model.version,
        totals["videos"],
        totals["faces"],
        time.perf_counter() - started,
        totals["paths"] or None,
        totals["engines"] or None,
    )


def sized_for_detect(faces: DataFrame) -> DataFrame:
    """``faces`` rebalanced, so that adaptive execution sizes the detect tasks from the crops' bytes.

    A task gets at least ``spark.sql.adaptive.coalescePartitions.minPartitionSize`` (1 MB, some 40 to 300
    crops) and there is one per core while there is enough: a one-clip scan is one task, so one Python
    worker loads the model, not one per core, and no count of the faces (a job over the same joins) is
    needed to decide it.
    """
    return faces.hint("rebalance")


def _unscored_faces(spark: SparkSession, config: Config, run: ScoringRun) -> DataFrame:
    """The crops (video_id, frame_index, face_index, crop) of the run's videos that it has not scored.

    A rerun of the same run id therefore scores nothing twice; the scan date prunes ``face_scores``
    to one partition.
    """
    return (
        _run_faces(spark, config, run)
        .join(_run_scores(spark, config, run), ["video_id", "frame_index", "face_index"], "left_anti")
        .select("video_id", "frame_index", "face_index", "crop")
    )


def _run_faces(spark: SparkSession, config: Config, run: ScoringRun) -> DataFrame:
    """Every crop of the run's videos at its preprocess version, scored or not."""
    return (
        spark.table(FACES.qualified(config.lake.schema_name))
        .where(F.col("preprocess_version") == run.preprocess_version)
        .join(run.wanted(spark, config), "video_id", "left_semi")
    )


def _run_scores(spark: SparkSession, config: Config, run: ScoringRun) -> DataFrame:
    """The ``face_scores`` rows the run has written; the scan date prunes the table to one partition."""
    return spark.table(FACE_SCORES.qualified(config.lake.schema_name)).where(
        (F.col("scan_date") == F.lit(run.scan_date)) & (F.col("run_id") == run.run_id)
    )


def _score_in_passes(
    spark: SparkSession,
    config: Config,
    run: ScoringRun,
    unscored: DataFrame,
    scored_pass: Callable[[DataFrame], DataFrame],
) -> DataFrame:
    """The scores of the run's ``unscored`` faces that its model's cascade asks for, in one or two passes.

    Without a cascade every face is scored in one pass. With one, the first pass scores the faces of
    each video's first-pass frames (:func:`deepsift.verdicts.cascade.first_pass`); the second, the
    other faces of the videos whose first-pass scores, stored or new, leave doubt. A video the first
    pass settled keeps its other faces unscored, in this run and in its reruns.
    """
    cascade = run.model.contract.cascade
    if cascade is None:
        return scored_pass(unscored)
    keys = ["video_id", "frame_index"]
    first_frames = (
        _run_faces(spark, config, run)
        .select(*keys)
        .distinct()
        .groupBy("video_id")
        .applyInPandas(_first_pass_frames(cascade.first_frames), "video_id string, frame_index int")
        .checkpoint(eager=True)  # read three times below
    )
    first = scored_pass(unscored.join(first_frames, keys, "left_semi"))
    first_scores = (
        _run_scores(spark, config, run)
        .select(*keys, "score")
        .unionByName(first.select(*keys, "score"))
        .join(first_frames, keys, "left_semi")
    )
    contract = run.model.contract
    unsettled = first_scores.groupBy("video_id").applyInPandas(
        _unsettled(contract.aggregation, contract.thresholds, cascade.margin), "video_id string"
    )
    rest = scored_pass(unscored.join(unsettled, "video_id", "left_semi").join(first_frames, keys, "left_anti"))
    return first.unionByName(rest)


def _first_pass_frames(first_frames: int) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Per video (its distinct frames with faces): the frames its first pass scores."""

    def frames(group: pd.DataFrame) -> pd.DataFrame:
        return group[first_pass(group["frame_index"].to_numpy(), first_frames)]

    return frames


def _unsettled(aggregation: str, thresholds: Thresholds, margin: float) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Per video (its first-pass scores): the video's id when they do not settle its verdict, else nothing."""

    def unsettled(group: pd.DataFrame) -> pd.DataFrame:
        score = aggregate(aggregation, group["score"].to_numpy(), group["frame_index"].to_numpy())
        return group[["video_id"]].head(0 if settled_early(score, thresholds, margin) else 1)

    return unsettled


def _score_rows(detected: DataFrame, run: ScoringRun) -> DataFrame:
    """The detect UDF's output as ``face_scores`` rows: the run's keys and model around each score."""
    return detected.select(
        F.lit(run.run_id).alias("run_id"),
        "video_id",
        F.lit(run.preprocess_version).alias("preprocess_version"),
        "frame_index",
        "face_index",
        F.lit(run.model.name).alias("model_name"),
        F.lit(run.model.version).cast("int").alias("model_version"),
        "score",
        F.lit(run.scan_date).alias("scan_date"),
        "detect_path",
        "detect_engine",
    )


def _totals(scored: DataFrame) -> Row:
    """One pass over the checkpointed scores: faces, videos, the detect paths and engines seen, and
    whether any CPU task fell back to torch."""
    (totals,) = scored.agg(
        F.count("*").alias("faces"),
        F.countDistinct("video_id").alias("videos"),
        F.array_join(F.array_sort(F.collect_set("detect_path")), ",").alias("paths"),
        F.array_join(F.array_sort(F.collect_set("detect_engine")), ",").alias("engines"),
        F.max(F.col("detect_path") == "cpu").alias("on_cpu"),
        F.max(F.col("detect_engine") == "torch").alias("torch"),
    ).collect()
    return totals
