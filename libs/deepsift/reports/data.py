"""What the daily moderation report shows, read from the Delta tables with Spark.

A report covers the scan runs that ``scan_runs`` records for its date, except ``rescore`` runs: those
replay a challenger over past scans for comparison and moderate nothing. Where several covered runs of
one date judged the same video (the champion moved and the day was scanned again), its latest verdict
counts, by the one rule the ``latest_verdicts`` view uses too (:data:`deepsift.sql.views.LATEST_VERDICT_FIRST`:
in practice the latest run's), so each video is counted once per date, in the day's counts and in the
30-day trend alike. Flagged videos (``manipulated``, ``suspicious``) come ranked by score, each with its face
scores from ``face_scores`` (joined with ``faces`` for timestamps) and its best-scoring crops; videos
that were not judged (``error``, ``not_applicable``) are summarised by reason with example files; and
every video of the day is listed by path, so that any upload can be looked up (both lists capped).
Each listed video shows its Content Credentials status (view ``video_credentials``) beside its verdict, and the
day's videos are counted per status, AI declarations apart.
Thresholds come from each model version's contract in the registry, so they are the ones the
verdicts were given with.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from deepsift.config import Config
from deepsift.detect.contract import PreprocessContract
from deepsift.lake.tables import (
    EXTRACTIONS,
    FACE_SCORES,
    FACES,
    PROVENANCE,
    RESCORE_TRIGGER,
    SCAN_RUNS,
    VERDICTS,
    VIDEOS,
    ensure_tables,
)
from deepsift.media.sources import is_local, local_path
from deepsift.registry.errors import RegistryError
from deepsift.sql.views import VIDEO_CREDENTIALS, latest_verdict_rank
from deepsift.verdicts.labels import Verdict

FLAGGED = (Verdict.MANIPULATED, Verdict.SUSPICIOUS)
"""Verdicts a moderator should look at."""
UNJUDGED = (Verdict.ERROR, Verdict.NOT_APPLICABLE)
"""Verdicts without a score, summarised by reason."""
TREND_DAYS = 30


@dataclass(frozen=True)
class ReportSettings:
    """How much a report lists: flagged videos and all videos (the rest are counted), crops per flagged
    video, example files per reason."""

    max_flagged: int = 200
    max_listed: int = 1000
    thumbnails_per_video: int = 4
    examples_per_reason: int = 3

    def __post_init__(self) -> None:
        for name in ("max_flagged", "max_listed", "thumbnails_per_video", "examples_per_reason"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number of 0 or more, given {value!r}")


@dataclass(frozen=True)
class ScanRun:
    """One covered row of ``scan_runs``."""

    run_id: str
    trigger: str
    status: str
    model_name: str
    model_version: int
    model_uri: str
    videos: int
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None


@dataclass(frozen=True)
class ModelInForce:
    """A model version that gave verdicts on the date, with its contract (None, and why, if unreadable)."""

    name: str
    version: int
    model_uri: str
    aliases: tuple[str, ...]
    contract: PreprocessContract | None
    problem: str | None


@dataclass(frozen=True)
class FaceScore:
    """One scored face of a flagged video."""

    frame_index: int
    face_index: int
    ts_s: float | None
    score: float


@dataclass(frozen=True)
class ReportFace:
    """One of a flagged video's best-scoring faces, with its cached crop from ``faces``."""

    frame_index: int
    ts_s: float | None
    score: float
    crop: bytes


@dataclass(frozen=True)
class FlaggedVideo:
    """A ``manipulated`` or ``suspicious`` video: ``rank`` 1 has the highest score of the day."""

    rank: int
    video_id: str
    location: str
    """Readable local path for ``file:`` URIs (percent-decoded), otherwise the URI."""
    verdict: str
    score: float
    model_name: str
    model_version: int
    n_frames: int | None
    n_faces: int | None
    faces: tuple[FaceScore, ...]
    crops: tuple[ReportFace, ...]
    provenance_status: str | None
    """Its Content Credentials status (``provenance.status``); None when ingest did not check them."""


@dataclass(frozen=True)
class ReasonExample:
    """One video behind a reason: where it is and what was said about it."""

    location: str
    detail: str | None


@dataclass(frozen=True)
class ReasonSummary:
    """How many videos of the day got ``verdict`` for ``reason``, with a few of them."""

    verdict: str
    reason: str
    count: int
    examples: tuple[ReasonExample, ...]


@dataclass(frozen=True)
class JudgedVideo:
    """One line of the list of every video of the day."""

    video_id: str
    location: str
    verdict: str
    score: float | None
    reason: str | None
    provenance_status: str | None
    declared_ai: bool | None


@dataclass(frozen=True)
class DailyData:
    """Everything one report page shows."""

    report_date: date
    settings: ReportSettings
    runs: tuple[ScanRun, ...]
    models: tuple[ModelInForce, ...]
    counts_by_verdict: dict[str, int]
    counts_by_reason: dict[str, int]
    trend: dict[date, dict[str, int]]
    """Videos per verdict for each scan date of the 30 days ending on ``report_date`` that has any."""
    flagged: tuple[FlaggedVideo, ...]
    flagged_total: int
    unjudged: tuple[ReasonSummary, ...]
    listed: tuple[JudgedVideo, ...]
    """Every video of the day in path order, at most ``settings.max_listed``."""
    provenance_counts: dict[str, int]
    """The day's videos per Content Credentials status (``unchecked``: ingest did not look), and
    ``declared_ai``: those whose valid credentials declare AI generation."""

    @property
    def scanned(self) -> bool:
        return bool(self.runs)

    @property
    def videos(self) -> int:
        return sum(self.counts_by_verdict.values())

    @property
    def flagged_left_out(self) -> int:
        return self.flagged_total - len(self.flagged)

    @property
    def listed_left_out(self) -> int:
        return self.videos - len(self.listed)

    def trend_days(self) -> list[date]:
        return [self.report_date - timedelta(days=back) for back in range(TREND_DAYS - 1, -1, -1)]

    def model(self, name: str, version: int) -> ModelInForce | None:
        return next((m for m in self.models if (m.name, m.version) == (name, version)), None)


def readable_location(uri: str) -> str:
    """The local path of a ``file:`` URI or plain path (percent-decoded), any other URI as it is.

    >>> readable_location("file:///uploads/a%20b.mp4")
    '/uploads/a b.mp4'
    """
    return str(local_path(uri)) if is_local(uri) else uri


def read_daily(spark: SparkSession, config: Config, report_date: date, settings: ReportSettings) -> DailyData:
    """Read the report of ``report_date`` from the tables of ``config``'s schema (see the module docstring)."""
    schema = config.lake.schema_name
    ensure_tables(spark, schema, (VIDEOS, PROVENANCE, EXTRACTIONS, FACES, FACE_SCORES, VERDICTS, SCAN_RUNS))
    runs = _runs(spark, schema, report_date)
    window = _latest_verdicts(spark, schema, report_date - timedelta(days=TREND_DAYS - 1), report_date)
    trend: dict[date, Counter[str]] = defaultdict(Counter)
    by_reason: Counter[str] = Counter()
    unjudged: Counter[tuple[str, str]] = Counter()  # (verdict, reason): reasons come with unjudged verdicts
    for row in window.groupBy("scan_date", "verdict", "reason").count().collect():
        trend[row.scan_date][row.verdict] += row["count"]
        if row.scan_date == report_date and row.reason is not None:
            by_reason[row.reason] += row["count"]
            unjudged[(row.verdict, row.reason)] += row["count"]
    by_verdict = dict(trend.get(report_date, {}))
    flagged_total = sum(by_verdict.get(verdict, 0) for verdict in FLAGGED)
    # the day's verdicts with their URIs and credentials, computed once for the lists below
    provenance = VIDEO_CREDENTIALS.frame(spark, schema)
    day = (
        window.where(F.col("scan_date") == F.lit(report_date))
        .join(spark.table(VIDEOS.qualified(schema)).select("video_id", "uri"), "video_id")
        .join(provenance, "video_id", "left")
        .persist()
    )
    try:
        return DailyData(
            report_date=report_date,
            settings=settings,
            runs=runs,
            models=_models(config, runs),
            counts_by_verdict=by_verdict,
            counts_by_reason=dict(by_reason),
            trend={day_: dict(counts) for day_, counts in sorted(trend.items())},
            flagged=_flagged(spark, schema, day, report_date, settings) if flagged_total else (),
            flagged_total=flagged_total,
            unjudged=_unjudged(spark, schema, day, unjudged, settings) if unjudged else (),
            listed=_listed(day, settings.max_listed) if by_verdict else (),
            provenance_counts=_provenance_counts(day) if by_verdict else {},
        )
    finally:
        day.unpersist()


def _runs(spark: SparkSession, schema: str, report_date: date) -> tuple[ScanRun, ...]:
    rows = (
        _covered_runs(spark, schema, report_date, report_date)
        .orderBy(F.col("started_at").asc_nulls_last(), "run_id")
        .select(*(field.name for field in fields(ScanRun)))
        .fillna(0, subset=["videos"])
        .collect()
    )
    return tuple(ScanRun(**row.asDict()) for row in rows)


def _covered_runs(spark: SparkSession, schema: str, first: date, last: date) -> DataFrame:
    return spark.table(SCAN_RUNS.qualified(schema)).where(
        F.col("scan_date").between(F.lit(first), F.lit(last)) & (F.col("trigger") != RESCORE_TRIGGER)
    )


def _latest_verdicts(spark: SparkSession, schema: str, first: date, last: date) -> DataFrame:
    """Verdicts of the covered runs between two dates, one per (scan date, video): the latest, by the rule
    of the ``latest_verdicts`` view."""
    runs = _covered_runs(spark, schema, first, last).select("run_id")
    return (
        spark.table(VERDICTS.qualified(schema))
        .where(F.col("scan_date").between(F.lit(first), F.lit(last)))
        .join(runs, "run_id")
        .withColumn("_latest", F.expr(latest_verdict_rank("scan_date, video_id")))
        .where(F.col("_latest") == 1)
        .drop("_latest")
    )


def _models(config: Config, runs: tuple[ScanRun, ...]) -> tuple[ModelInForce, ...]:
    # MLflow loads here, not with this module: `deepsift report` loads it and opens the store while its JVM starts.
    from deepsift.registry.mlflow_models import DetectorRegistry

    models = []
    for name, version, uri in sorted({(run.model_name, run.model_version, run.model_uri) for run in runs}):
        registry = DetectorRegistry(config.mlflow.model_copy(update={"registered_model": name}), config.home)
        try:
            info = registry.resolve(version)
        except RegistryError as error:
            models.append(ModelInForce(name, version, uri, (), None, f"{type(error).__name__}: {error}"))
            continue
        models.append(ModelInForce(name, version, uri, info.aliases, info.contract, None))
    return tuple(models)


def _flagged(
    spark: SparkSession, schema: str, day: DataFrame, report_date: date, settings: ReportSettings
) -> tuple[FlaggedVideo, ...]:
    """The day's flagged videos, best score first (ties by video id), at most ``settings.max_flagged``."""
    if settings.max_flagged == 0:
        return ()
    rows = (
        day.where(F.col("verdict").isin([verdict.value for verdict in FLAGGED]))
        .orderBy(F.desc("score"), "video_id")
        .limit(settings.max_flagged)
        .collect()
    )
    faces, crops = _faces_of(spark, schema, rows, report_date, settings.thumbnails_per_video)
    return tuple(
        FlaggedVideo(
            rank=rank,
            video_id=row.video_id,
            location=readable_location(row.uri),
            verdict=row.verdict,
            score=row.score,
            model_name=row.model_name,
            model_version=row.model_version,
            n_frames=row.n_frames,
            n_faces=row.n_faces,
            faces=tuple(faces[row.video_id]),
            crops=tuple(crops[row.video_id]),
            provenance_status=row.provenance_status,
        )
        for rank, row in enumerate(rows, start=1)
    )


def _faces_of(
    spark: SparkSession, schema: str, videos: list, report_date: date, per_video: int
) -> tuple[dict[str, list[FaceScore]], dict[str, list[ReportFace]]]:
    """Every scored face of ``videos`` in their run, in time order, and each video's best-scoring crops."""
    keys = spark.createDataFrame([(row.video_id, row.run_id) for row in videos], "video_id string, run_id string")
    # literal filters let Delta skip files by partition and by its per-file video_id statistics
    ids = F.col("video_id").isin([row.video_id for row in videos])
    versions = F.col("preprocess_version").isin(sorted({row.preprocess_version for row in videos}))
    face_key = ["video_id", "preprocess_version", "frame_index", "face_index"]
    best = Window.partitionBy("video_id").orderBy(F.desc("score"), "frame_index", "face_index")
    rows = (
        spark.table(FACE_SCORES.qualified(schema))
        .where((F.col("scan_date") == F.lit(report_date)) & ids)
        .join(F.broadcast(keys), ["run_id", "video_id"])
        .join(
            spark.table(FACES.qualified(schema)).where(versions & ids).select(*face_key, "ts_s", "crop"),
            face_key,
            "left",
        )
        .withColumn("_best", F.row_number().over(best))
        .select(
            "video_id", "frame_index", "face_index", "ts_s", "score",
            F.when(F.col("_best") <= per_video, F.col("crop")).alias("crop"),
        )
        .collect()
    )
    faces: dict[str, list[FaceScore]] = defaultdict(list)
    crops: dict[str, list[ReportFace]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (r.frame_index, r.face_index)):
        faces[row.video_id].append(FaceScore(row.frame_index, row.face_index, row.ts_s, row.score))
        if row.crop is not None:
            crops[row.video_id].append(ReportFace(row.frame_index, row.ts_s, row.score, bytes(row.crop)))
    return faces, crops


def _listed(day: DataFrame, limit: int) -> tuple[JudgedVideo, ...]:
    rows = (
        day.orderBy("uri", "video_id")
        .limit(limit)
        .select("video_id", "uri", "verdict", "score", "reason", "provenance_status", "declared_ai")
        .collect()
    )
    return tuple(
        JudgedVideo(
            row.video_id, readable_location(row.uri), row.verdict, row.score, row.reason,
            row.provenance_status, row.declared_ai,
        )
        for row in rows
    )


def _provenance_counts(day: DataFrame) -> dict[str, int]:
    rows = (
        day.groupBy(F.coalesce("provenance_status", F.lit("unchecked")).alias("status"))
        .agg(F.count("*").alias("videos"), F.count_if(F.coalesce("declared_ai", F.lit(False))).alias("declared_ai"))
        .collect()
    )
    return {**{row.status: row.videos for row in sorted(rows)}, "declared_ai": sum(row.declared_ai for row in rows)}


def _unjudged(
    spark: SparkSession, schema: str, day: DataFrame, counts: Counter[tuple[str, str]], settings: ReportSettings
) -> tuple[ReasonSummary, ...]:
    """The day's unjudged videos by verdict and reason, most frequent first, with example files."""
    examples: dict[tuple[str, str], list[ReasonExample]] = defaultdict(list)
    if settings.examples_per_reason:
        first = Window.partitionBy("verdict", "reason").orderBy("uri")
        rows = (
            day.where(F.col("verdict").isin([verdict.value for verdict in UNJUDGED]))
            .join(
                spark.table(EXTRACTIONS.qualified(schema)).select("video_id", "preprocess_version", "detail"),
                ["video_id", "preprocess_version"],
                "left",
            )
            .withColumn("_n", F.row_number().over(first))
            .where(F.col("_n") <= settings.examples_per_reason)
            .orderBy("uri")
            .collect()
        )
        for row in rows:
            examples[(row.verdict, row.reason)].append(ReasonExample(readable_location(row.uri), row.detail))
    summaries = []
    for (verdict, reason), count in counts.items():
        summaries.append(ReasonSummary(verdict, reason, count, tuple(examples[(verdict, reason)])))
    return tuple(sorted(summaries, key=lambda s: (-s.count, s.verdict, s.reason)))
