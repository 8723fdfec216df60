"""Analysts' views over the Delta tables: the common questions, declared once.

Each view is a :class:`ViewSpec`: its name, the columns it returns (Spark DDL, like
:class:`deepsift.lake.tables.TableSpec`, so ``docs/tables.md`` and the tests can read them without
Spark) and its query. :func:`ensure_views` creates those the catalog lacks or holds under another definition; every scan and
rescore calls it at the end, so a lakehouse that has verdicts always has current views.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

from deepsift.lake.tables import (
    MODERATION_QUEUE,
    PROVENANCE,
    SCAN_TABLES,
    VERDICTS,
    VIDEOS,
    ReviewStatus,
    _split_top_level,
    ensure_tables,
)
from deepsift.provenance.credentials import ProvenanceStatus
from deepsift.verdicts.labels import Verdict

DIGEST_PROPERTY = "deepsift.definition"
"""The view property holding :meth:`ViewSpec.digest`, which :func:`ensure_views` compares."""


@dataclass(frozen=True)
class ViewSpec:
    """A view: its columns (Spark DDL, in the order the query returns them) and its query.

    ``query`` names tables as ``{schema}.table``; :meth:`sql` fills in the schema.
    """

    name: str
    columns: str
    query: str

    def qualified(self, schema: str) -> str:
        return f"{schema}.{self.name}"

    def column_names(self) -> list[str]:
        return [column.strip().split()[0] for column in _split_top_level(self.columns)]

    def sql(self, schema: str) -> str:
        """The statement that creates or replaces this view in ``schema``, its :meth:`digest` among the
        view's properties (:data:`DIGEST_PROPERTY`)."""
        return (
            f"CREATE OR REPLACE VIEW {self.qualified(schema)} TBLPROPERTIES ('{DIGEST_PROPERTY}' = "
            f"'{self.digest(schema)}') AS {self.query.format(schema=schema)}"
        )

    def digest(self, schema: str) -> str:
        """A digest of the view's definition in ``schema``: a view that holds it needs no replacing."""
        return hashlib.sha256(self.query.format(schema=schema).encode()).hexdigest()[:16]

    def is_current(self, spark: SparkSession, schema: str) -> bool:
        """Whether the catalog holds this view in ``schema`` as :meth:`sql` defines it now (its digest)."""
        if not spark.catalog.tableExists(self.qualified(schema)):  # asked first: PySpark logs a failed query as an ERROR
            return False
        (held,) = spark.sql(f"SHOW TBLPROPERTIES {self.qualified(schema)} ('{DIGEST_PROPERTY}')").collect()
        return bool(held["value"] == self.digest(schema))

    def frame(self, spark: SparkSession, schema: str) -> DataFrame:
        """The view's rows as a DataFrame, whether or not the view exists in ``schema`` yet."""
        return spark.sql(self.query.format(schema=schema))


VIDEO_CREDENTIALS = ViewSpec(
    name="video_credentials",
    columns="""
        video_id STRING,
        provenance_status STRING,
        declared_ai BOOLEAN
    """,
    query=f"""
        SELECT v.video_id,
               CASE WHEN p.status IS NOT NULL THEN p.status
                    WHEN v.credentials_checked THEN '{ProvenanceStatus.NONE}' END AS provenance_status,
               CASE WHEN p.status IS NOT NULL THEN p.declared_ai
                    WHEN v.credentials_checked THEN false END AS declared_ai
        FROM {{schema}}.{VIDEOS.name} v LEFT JOIN {{schema}}.{PROVENANCE.name} p USING (video_id)
    """,
)
"""Each video's Content Credentials status: its ``provenance`` row's, ``none`` when ingest checked the file
and found no manifest store (such files get no row), NULL when ingest did not check it."""


LATEST_VERDICT_FIRST = "scanned_at DESC, scan_date DESC, model_version DESC, model_name, preprocess_version"
"""The one order of "latest verdict", over ``verdicts`` columns: the latest ``scanned_at`` (when the verdict
was written, at the end of its run), ties to the later scan date, then the higher model version, then model
name and preprocess version, so that exactly one verdict of a video comes first."""


def latest_verdict_rank(partition_by: str) -> str:
    """A SQL window expression numbering ``verdicts`` rows from 1, the latest of each ``partition_by`` group
    first (:data:`LATEST_VERDICT_FIRST`): the ``latest_verdicts`` view and the daily report both keep rank 1.

    >>> latest_verdict_rank("video_id")  # doctest: +ELLIPSIS
    'row_number() OVER (PARTITION BY video_id ORDER BY scanned_at DESC, ...)'
    """
    return f"row_number() OVER (PARTITION BY {partition_by} ORDER BY {LATEST_VERDICT_FIRST})"


LATEST_VERDICTS = ViewSpec(
    name="latest_verdicts",
    columns="""
        video_id STRING,
        uri STRING,
        verdict STRING,
        reason STRING,
        score DOUBLE,
        model_name STRING,
        model_version INT,
        preprocess_version STRING,
        n_faces INT,
        run_id STRING,
        scan_date DATE,
        scanned_at TIMESTAMP,
        provenance_status STRING,
        declared_ai BOOLEAN
    """,
    query=f"""
        SELECT video_id, uri, verdict, reason, score, model_name, model_version, preprocess_version, n_faces,
               run_id, scan_date, scanned_at, provenance_status, declared_ai
        FROM (SELECT *, {latest_verdict_rank("video_id")} AS newest FROM {{schema}}.{VERDICTS.name}) d
        LEFT JOIN {{schema}}.{VIDEOS.name} v USING (video_id)
        LEFT JOIN ({VIDEO_CREDENTIALS.query}) c USING (video_id)
        WHERE d.newest = 1
    """,
)
"""The latest verdict of each video (:data:`LATEST_VERDICT_FIRST`), whichever model gave it, beside the
video's Content Credentials (NULL when ingest did not check them; see ``video_credentials``)."""

DAILY_SUMMARY = ViewSpec(
    name="daily_summary",
    columns="""
        scan_date DATE,
        model_name STRING,
        model_version INT,
        verdict STRING,
        reason STRING,
        videos BIGINT
    """,
    query=f"""
        SELECT scan_date, model_name, model_version, verdict, reason, count(DISTINCT video_id) AS videos
        FROM {{schema}}.{VERDICTS.name}
        GROUP BY scan_date, model_name, model_version, verdict, reason
    """,
)
"""Videos per scan date, model version, verdict and reason."""

MODEL_COMPARISON = ViewSpec(
    name="model_comparison",
    columns="""
        model_name STRING,
        preprocess_version STRING,
        video_id STRING,
        uri STRING,
        version_a INT,
        version_b INT,
        score_a DOUBLE,
        score_b DOUBLE,
        score_diff DOUBLE,
        verdict_a STRING,
        verdict_b STRING,
        agree BOOLEAN,
        scan_date_a DATE,
        scan_date_b DATE
    """,
    query=f"""
        SELECT a.model_name, a.preprocess_version, a.video_id, v.uri,
               a.model_version AS version_a, b.model_version AS version_b,
               a.score AS score_a, b.score AS score_b, b.score - a.score AS score_diff,
               a.verdict AS verdict_a, b.verdict AS verdict_b, a.verdict = b.verdict AS agree,
               a.scan_date AS scan_date_a, b.scan_date AS scan_date_b
        FROM {{schema}}.{VERDICTS.name} a
        JOIN {{schema}}.{VERDICTS.name} b
          ON a.video_id = b.video_id AND a.model_name = b.model_name
         AND a.preprocess_version = b.preprocess_version AND a.model_version <> b.model_version
        LEFT JOIN {{schema}}.{VIDEOS.name} v ON v.video_id = a.video_id
    """,
)
"""Two versions of one model on the same videos and crops, one row per video and ordered pair of
versions (both (a, b) and (b, a)), so ``WHERE version_a = 3 AND version_b = 4`` picks a pair."""

ERROR_BREAKDOWN = ViewSpec(
    name="error_breakdown",
    columns="""
        scan_date DATE,
        verdict STRING,
        reason STRING,
        videos BIGINT,
        example_uri STRING
    """,
    query=f"""
        SELECT d.scan_date, d.verdict, d.reason, count(DISTINCT d.video_id) AS videos, min(v.uri) AS example_uri
        FROM {{schema}}.{VERDICTS.name} d LEFT JOIN {{schema}}.{VIDEOS.name} v USING (video_id)
        WHERE d.verdict IN ('{Verdict.ERROR.value}', '{Verdict.NOT_APPLICABLE.value}')
        GROUP BY d.scan_date, d.verdict, d.reason
    """,
)
"""Videos that were not judged on a score, per scan date and reason, with one example URI each."""

REVIEW_LABELS = ViewSpec(
    name="review_labels",
    columns="""
        video_id STRING,
        label INT,
        reviewer STRING,
        reviewed_at TIMESTAMP
    """,
    query=f"""
        SELECT video_id, label, reviewer, reviewed_at
        FROM (
            SELECT video_id,
                   CASE status WHEN '{ReviewStatus.CONFIRMED_FAKE}' THEN 1 ELSE 0 END AS label,
                   reviewer,
                   reviewed_at,
                   row_number() OVER (
                       PARTITION BY video_id ORDER BY reviewed_at DESC, model_version DESC, model_name DESC
                   ) AS latest
            FROM {{schema}}.{MODERATION_QUEUE.name}
            WHERE status IN ('{ReviewStatus.CONFIRMED_FAKE}', '{ReviewStatus.CONFIRMED_REAL}')
        )
        WHERE latest = 1
    """,
)
"""Moderators' decisions as training labels (1 fake, 0 real), one per video: its latest confirmed
decision of any model version; dismissed items are no label."""

EVERY_VIEW = (LATEST_VERDICTS, DAILY_SUMMARY, MODEL_COMPARISON, ERROR_BREAKDOWN, VIDEO_CREDENTIALS, REVIEW_LABELS)
"""Every view deepsift creates: ``docs/tables.md`` must describe each of their columns (a test checks)."""


def ensure_views(spark: SparkSession, schema: str) -> None:
    """Create every view of ``schema`` the catalog lacks, or holds under another definition (creating the
    tables they read if missing); idempotent. A view that is current stays as it is: replacing it costs a
    metastore write and the analysis of its query on every scan."""
    ensure_tables(spark, schema, (VIDEOS, PROVENANCE, *SCAN_TABLES, MODERATION_QUEUE))
    for view in EVERY_VIEW:
        if not view.is_current(spark, schema):
            spark.sql(view.sql(schema))
