"""The scan: ingest new files, extract faces under the model's contract, score, judge, record the run.

The model alias is resolved to an exact version once, here on the driver; every later step names that
version, so one run never mixes two models even if the alias moves meanwhile. Each step writes only the
keys its table lacks, keys that a rerun reproduces (``scan_run_id`` is deterministic), by an insert-only
MERGE or an append committed once (``append_once``), so running a scan date again with the same model
adds no rows and changes no values; ``scan_runs`` keeps one row per run id, rewritten only while that
run has not succeeded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from deepsift.config import Config
from deepsift.detect.contract import config_for_contract
from deepsift.detect.contract_check import refuse_contract_conflicts
from deepsift.errors import DeepsiftError
from deepsift.lake.tables import (
    EXTRACTIONS,
    FACES,
    RESCORE_TRIGGER,
    SCAN_RUNS,
    SCAN_TABLES,
    VIDEOS,
    append_once,
    ensure_tables,
    merge_changes,
    table_as_of,
    table_version,
)
from deepsift.progress import plan, step
from deepsift.registry.mlflow_models import DetectorRegistry, ModelVersionInfo
from deepsift.review.queue import enqueue_flagged, serves
from deepsift.sql.views import ensure_views
from deepsift.stages.extract import ExtractSummary, extract_pending, planned_preprocess_version
from deepsift.stages.ingest import IngestSummary, ingest
from deepsift.stages.score import ScoreSummary, ScoringRun, score_faces
from deepsift.stages.verdicts import VerdictSummary, write_verdicts


class ContractMismatchError(DeepsiftError, ValueError):
    """The model needs crops that were never extracted (another size, margin or face detector)."""


@dataclass(frozen=True)
class ScanRequest:
    """What to scan: ``inputs`` to ingest first (none: only what is already ingested)."""

    scan_date: date
    inputs: Sequence[str] = ()
    model: str | None = None
    """A version number or ``@alias``; None means the configured alias (``mlflow.alias``)."""
    trigger: str = "cli"
    """Who started the run: ``cli``, or ``airflow:<dag_id>/<run_id>``."""


@dataclass
class ScanOutcome:
    run_id: str
    model: ModelVersionInfo
    verdicts: VerdictSummary
    ingest: IngestSummary | None = None
    extract: ExtractSummary | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    enqueued: int | None = None
    """Items this run added to ``moderation_queue``; None when its model does not serve (no queueing)."""


@contextmanager
def timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    """Time the block into ``seconds[stage]``: the run's ``stage_seconds``. A stage that raises is not
    recorded, so a failed run lists only the stages it finished."""
    clock = time.perf_counter()
    yield
    seconds[stage] = time.perf_counter() - clock


@dataclass
class RunRecord:
    """One ``scan_runs`` row, built up as the run goes: what it ran, how long each stage took, and
    how it ended (the verdicts and what scoring did, or the error)."""

    request: ScanRequest
    run: ScoringRun
    started_at: datetime
    stage_seconds: dict[str, float]
    verdicts: VerdictSummary | None = None
    scored: ScoreSummary | None = None
    error: Exception | None = None

    def row(self, config: Config) -> dict[str, object]:
        """The ``scan_runs`` row, finished now."""
        verdicts, scored, error, model = self.verdicts, self.scored, self.error, self.run.model
        return {
            "run_id": self.run.run_id,
            "trigger": self.request.trigger,
            "scan_date": self.request.scan_date,
            "model_name": model.name,
            "model_version": model.version,
            "model_uri": model.model_uri,
            "preprocess_version": self.run.preprocess_version,
            "config": json.dumps(config.model_dump(mode="json"), sort_keys=True),
            "videos": verdicts.videos if verdicts else 0,
            "counts_by_verdict": verdicts.by_verdict if verdicts else {},
            "counts_by_reason": verdicts.by_reason if verdicts else {},
            "stage_seconds": self.stage_seconds,
            "status": "failed" if error else "succeeded",
            "error": f"{type(error).__name__}: {error}"[:2000] if error else None,
            "started_at": self.started_at.replace(tzinfo=None),
            "finished_at": datetime.now(UTC).replace(tzinfo=None),
            "detect_path": scored.detect_path if scored else None,
            "detect_engine": scored.detect_engine if scored else None,
        }


def scan_model(config: Config, request: ScanRequest) -> ModelVersionInfo:
    """The exact version the request's model names (a version, or an alias; else ``mlflow.alias``)."""
    return DetectorRegistry(config.mlflow, config.home).resolve(request.model or f"@{config.mlflow.alias}")


def run_scan(
    spark: SparkSession, config: Config, request: ScanRequest, model: ModelVersionInfo | None = None
) -> ScanOutcome:
    """Scan everything ingested (plus ``request.inputs``) that this model version has not judged yet.

    ``model`` is the request's :func:`scan_model`, when the caller resolved it already (the command line
    does, while the JVM starts). When the model holds the serving alias, the run's suspicious and
    manipulated verdicts are queued for moderators (:func:`deepsift.review.queue.enqueue_flagged`).
    """
    seconds: dict[str, float] = {}
    started_at = datetime.now(UTC)
    model = model or scan_model(config, request)
    refuse_contract_conflicts(config, model.contract, model.model_uri)
    model_config = config_for_contract(config, model.contract)
    queues = serves(config, model)
    plan(
        *(["ingest"] if request.inputs else []), "extract", "score", "verdicts", *(["enqueue"] if queues else []),
        "record",
    )

    with ThreadPoolExecutor(max_workers=1) as background:
        # The later stages' tables are created or checked while ingest works on its own (videos, provenance).
        later_tables = (EXTRACTIONS, FACES, *SCAN_TABLES, SCAN_RUNS)
        tables_ready = background.submit(ensure_tables, spark, config.lake.schema_name, later_tables)
        with timed(seconds, "ingest"):
            ingested = ingest(spark, config, request.inputs, request.scan_date) if request.inputs else None
        tables_ready.result()
    with timed(seconds, "extract"):
        extracted = extract_pending(spark, model_config)
    run = ScoringRun(model, extracted.preprocess_version, request.scan_date)
    record = RunRecord(request, run, started_at, seconds)
    try:
        verdicts, scored = _score_and_judge(spark, model_config, run, seconds)
        enqueued = None
        if queues:
            with timed(seconds, "enqueue"):
                enqueued = enqueue_flagged(spark, config, run.run_id, verdicts.by_verdict)
    except Exception as error:
        record.error = error
        _record_run(spark, config, record)
        raise
    record.verdicts, record.scored = verdicts, scored
    with step("record"):
        _record_run(spark, config, record)
        ensure_views(spark, config.lake.schema_name)  # analysts find current views wherever there are verdicts
    return ScanOutcome(run.run_id, model, verdicts, ingested, extracted, seconds, enqueued)


def rescore(
    spark: SparkSession,
    config: Config,
    model: str,
    scan_date: date,
    since: date | None = None,
    info: ModelVersionInfo | None = None,
) -> ScanOutcome:
    """Score cached crops with another model version, without decoding; verdicts for that version.

    Only videos already extracted under the version's contract are scored (ingested on or after
    ``since`` when given). A version whose contract needs crops that were never extracted raises
    :class:`ContractMismatchError` naming the settings, rather than silently decoding everything.
    Nothing is queued for moderators, even for the serving version: a rescore replays past scans to
    compare versions, and queueing its flags would flood the queue with videos already judged.

    ``info`` is the version ``model`` names, when the caller resolved it already (the command line does,
    while the JVM starts).
    """
    seconds: dict[str, float] = {}
    started_at = datetime.now(UTC)
    info = info or DetectorRegistry(config.mlflow, config.home).resolve(model)
    refuse_contract_conflicts(config, info.contract, info.model_uri)
    model_config = config_for_contract(config, info.contract)
    version, _ = planned_preprocess_version(model_config)
    schema = config.lake.schema_name
    ensure_tables(spark, schema, (VIDEOS, EXTRACTIONS))
    cached = spark.table(EXTRACTIONS.qualified(schema)).where(F.col("preprocess_version") == version)
    if since:
        recent = spark.table(VIDEOS.qualified(schema)).where(F.col("ingest_date") >= F.lit(since))
        cached = cached.join(recent.select("video_id"), "video_id", "left_semi")
    if cached.limit(1).count() == 0:
        faces = model_config.faces
        raise ContractMismatchError(
            f"{info.model_uri} needs crops of {faces.crop_size} px, margin {faces.margin}, detector "
            f"{faces.detector}, {model_config.sampling.frames_per_video} frames ({version}); none are cached"
            f"{' for videos ingested since ' + since.isoformat() if since else ''}: run `deepsift scan "
            f"--model {info.version}` to extract them"
        )
    request = ScanRequest(scan_date=scan_date, model=str(info.version), trigger=RESCORE_TRIGGER)
    run = ScoringRun(info, version, scan_date, cached.select("video_id"))
    plan("score", "verdicts", "record")
    verdicts, scored = _score_and_judge(spark, model_config, run, seconds)
    record = RunRecord(request, run, started_at, seconds, verdicts, scored)
    with step("record"):
        _record_run(spark, config, record)
        ensure_views(spark, config.lake.schema_name)
    return ScanOutcome(run.run_id, info, verdicts, stage_seconds=seconds)


def _score_and_judge(
    spark: SparkSession, config: Config, run: ScoringRun, seconds: dict[str, float]
) -> tuple[VerdictSummary, ScoreSummary]:
    """Score and judge; returns the verdicts and what scoring did (how many faces, on which path and engine)."""
    with timed(seconds, "score"):
        scored = score_faces(spark, config, run)
    with timed(seconds, "verdicts"):
        verdicts = write_verdicts(spark, config, run)
    return verdicts, scored


def _record_run(spark: SparkSession, config: Config, record: RunRecord) -> None:
    """One ``scan_runs`` row per run id; a rerun of a succeeded run leaves it untouched (no commit).

    A run id the table lacks is appended, once (:func:`append_once`, the run id as writer): 10 Spark jobs
    where the MERGE ran 15. Only a run recorded before (a failed one, retried) goes through the MERGE.
    """
    schema = config.lake.schema_name
    ensure_tables(spark, schema, (SCAN_RUNS,))
    row = spark.createDataFrame([record.row(config)], SCAN_RUNS.columns)
    version = table_version(spark, schema, SCAN_RUNS)
    if table_as_of(spark, schema, SCAN_RUNS, version).where(F.col("run_id") == record.run.run_id).isEmpty():
        append_once(spark, schema, SCAN_RUNS, row, writer=record.run.run_id, read_version=version)
    else:
        merge_changes(spark, schema, SCAN_RUNS, row, changed="t.status <> 'succeeded'")
