"""The moderation queue: the serving model's flagged verdicts, waiting for a moderator's decision.

A scan that judges with the serving alias (``mlflow.alias``) puts every ``suspicious`` and
``manipulated`` verdict of its run into ``moderation_queue`` as ``pending``, with an insert-only MERGE
on (video, model name, model version): a video enters the queue once per model version, and a rerun
or a second enqueue of the same run leaves every row, decided or not, as it is. A scan with another
version (``--model @challenger``) and ``rescore`` do not enqueue: they compare versions over videos
the serving model has already judged, and their flags would flood moderators with repeat reviews.

Content Credentials (``provenance``, read at ingest) change what is queued, never a score:

* a video whose valid credentials declare AI generation (``declared_ai``) is not queued as a
  suspected deepfake, whatever its verdict: it is labelled AI-made by its own signer, which the
  views and the report show;
* a video whose credentials are ``invalid`` (altered after signing, a bad certificate, a malformed
  store) is queued whatever its verdict, between manipulated and suspicious ones (``priority`` 3 +
  score), since tampered credentials are a reason to look. Only verdicts with a score are queued.

Decisions flow back into training through the view ``review_labels``: one label per video, from its
latest ``confirmed_fake`` or ``confirmed_real`` item of any model version (dismissed items are no
label). ``deepsift train --labels-table <schema>.review_labels`` reads it with Spark like any labels
table; training treats videos without a label, dismissed ones included, as authentic.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from deepsift.config import Config
from deepsift.lake.tables import (
    MODERATION_QUEUE,
    PROVENANCE,
    VERDICTS,
    VIDEOS,
    ReviewStatus,
    ensure_tables,
    merge_insert_new,
    table_version,
)
from deepsift.progress import step
from deepsift.provenance.credentials import ProvenanceStatus
from deepsift.registry.mlflow_models import ModelVersionInfo
from deepsift.sql.views import REVIEW_LABELS, VIDEO_CREDENTIALS
from deepsift.verdicts.labels import Verdict

DECISIONS = (ReviewStatus.CONFIRMED_FAKE, ReviewStatus.CONFIRMED_REAL, ReviewStatus.DISMISSED)
"""What a moderator may decide; every status but ``pending``."""

PRIORITY_BASE = {Verdict.MANIPULATED: 4.0, Verdict.SUSPICIOUS: 2.0}
"""``priority`` is this base plus the video's score (a probability in [0, 1]): every manipulated item
(4 to 5) comes before every suspicious one (2 to 3), and within a verdict the higher score first."""
INVALID_CREDENTIALS_PRIORITY_BASE = 3.0
"""The base of a video queued for ``invalid`` credentials; the higher base wins when both apply."""


def serves(config: Config, model: ModelVersionInfo) -> bool:
    """Whether ``model`` held the serving alias when it was resolved: only its flags are queued."""
    return config.mlflow.alias in model.aliases


def _may_queue(spark: SparkSession, schema: str, by_verdict: Mapping[str, int]) -> bool:
    """Whether verdicts counted as ``by_verdict`` can give a queue item: a flag, or else a scored verdict
    and some video with invalid credentials in the lake (only scored verdicts are queued)."""
    if any(by_verdict.get(str(verdict), 0) for verdict in PRIORITY_BASE):
        return True
    if not by_verdict.get(str(Verdict.AUTHENTIC), 0):
        return False
    ensure_tables(spark, schema, (PROVENANCE,))
    if table_version(spark, schema, PROVENANCE) == 0:  # never written since its creation: no row at all
        return False
    invalid = spark.table(PROVENANCE.qualified(schema)).where(F.col("status") == str(ProvenanceStatus.INVALID))
    return bool(invalid.limit(1).count())


def ensure_review_tables(spark: SparkSession, schema: str) -> None:
    """Create ``moderation_queue`` if missing and create or replace the ``review_labels`` view over it."""
    ensure_tables(spark, schema, (MODERATION_QUEUE,))
    spark.sql(REVIEW_LABELS.sql(schema))


@step("enqueue")
def enqueue_flagged(spark: SparkSession, config: Config, run_id: str, by_verdict: Mapping[str, int] | None = None) -> int:
    """Queue scan run ``run_id``'s suspicious and manipulated verdicts, and its verdicts of videos with
    invalid credentials, as ``pending``; AI-declared videos are left out (see the module docstring).

    Insert-only on the queue's key, so items already queued for that video and model version keep
    their status and decision. Returns how many items were added. ``by_verdict``, the run's counts of
    the verdicts it wrote (``VerdictSummary.by_verdict`` of a scan), lets a run that can have queued
    nothing skip the queue's MERGE and its join with the credentials.
    """
    schema = config.lake.schema_name
    if by_verdict is not None and not _may_queue(spark, schema, by_verdict):
        return 0
    ensure_review_tables(spark, schema)
    ensure_tables(spark, schema, (VIDEOS, PROVENANCE))
    bases = F.create_map(*(F.lit(value) for verdict, base in PRIORITY_BASE.items() for value in (str(verdict), base)))
    provenance = VIDEO_CREDENTIALS.frame(spark, schema)
    verdict_base = F.when(~F.coalesce(F.col("declared_ai"), F.lit(False)), bases[F.col("verdict")])
    credentials_base = F.when(
        F.col("provenance_status") == str(ProvenanceStatus.INVALID), F.lit(INVALID_CREDENTIALS_PRIORITY_BASE)
    )
    base = F.greatest(verdict_base, credentials_base)
    flagged = (
        spark.table(VERDICTS.qualified(schema))
        .where((F.col("run_id") == run_id) & F.col("score").isNotNull())
        .join(provenance, "video_id", "left")
        .withColumn("_base", base)
        .where(F.col("_base").isNotNull())
    )
    enqueued_at = datetime.now(UTC).replace(tzinfo=None)
    return merge_insert_new(
        spark,
        schema,
        MODERATION_QUEUE,
        flagged.select(
            "video_id",
            "model_name",
            "model_version",
            "preprocess_version",
            "verdict",
            "score",
            (F.col("_base") + F.col("score")).alias("priority"),
            "run_id",
            "scan_date",
            F.lit(enqueued_at).cast("timestamp").alias("enqueued_at"),
            F.lit(str(ReviewStatus.PENDING)).alias("status"),
            F.lit(None).cast("string").alias("reviewer"),
            F.lit(None).cast("timestamp").alias("reviewed_at"),
            F.lit(None).cast("string").alias("note"),
            "provenance_status",
        ),
    )

