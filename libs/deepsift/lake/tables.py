"""Delta table contracts and the idempotent writes to them.

Each table is declared once here, as a :class:`TableSpec` (columns, key, partitioning); the DDL, the
writers and ``docs/tables.md`` all follow from it. Every write is a Delta MERGE on the table's key, or,
where a write adds only keys that the table did not hold when it was read and that one writer alone
computes (a scan run, or every extraction at one preprocess version), an append that Delta commits once
per writer and table version read (:func:`append_once`), so running the same step twice adds no rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa
from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from deepsift.errors import DeepsiftError
from deepsift.lake.schemas import arrow_schema, nullable


@dataclass(frozen=True)
class TableSpec:
    """A Delta table: its columns (Spark DDL), key columns and partition column."""

    name: str
    columns: str
    key: tuple[str, ...]
    partitioned_by: str | None = None

    def qualified(self, schema: str) -> str:
        return f"{schema}.{self.name}"

    def column_names(self) -> list[str]:
        return [column.strip().split()[0] for column in _split_top_level(self.columns)]

    def row_schema(self, exclude: tuple[str, ...] = ()) -> pa.Schema:
        """The table's columns but ``exclude``, in its order and all nullable, as an Arrow schema: the shape
        of the rows a stage computes for the table (see :mod:`deepsift.lake.schemas` for the Spark DDL)."""
        columns = nullable(arrow_schema(self.columns))
        return pa.schema([field for field in columns if field.name not in exclude])


VIDEOS = TableSpec(
    name="videos",
    columns="""
        video_id STRING NOT NULL,
        uri STRING NOT NULL,
        uris ARRAY<STRING>,
        size_bytes BIGINT,
        container STRING,
        codec STRING,
        width INT,
        height INT,
        fps DOUBLE,
        duration_s DOUBLE,
        frame_count_estimate BIGINT,
        rotation INT,
        has_audio BOOLEAN,
        n_video_streams INT,
        probe_status STRING NOT NULL,
        probe_error STRING,
        ingest_date DATE NOT NULL,
        first_seen_at TIMESTAMP NOT NULL,
        credentials_checked BOOLEAN
    """,
    key=("video_id",),
    partitioned_by="ingest_date",
)

EXTRACTIONS = TableSpec(
    name="extractions",
    columns="""
        video_id STRING NOT NULL,
        preprocess_version STRING NOT NULL,
        status STRING NOT NULL,
        reason STRING,
        detail STRING,
        face_detector STRING,
        sample_mode STRING,
        n_frames INT,
        n_faces INT,
        decode_s DOUBLE,
        faces_s DOUBLE,
        extracted_at TIMESTAMP NOT NULL
    """,
    key=("video_id", "preprocess_version"),
)

FACES = TableSpec(
    name="faces",
    columns="""
        video_id STRING NOT NULL,
        preprocess_version STRING NOT NULL,
        frame_index INT NOT NULL,
        face_index INT NOT NULL,
        ts_s DOUBLE,
        bbox STRUCT<x: FLOAT, y: FLOAT, w: FLOAT, h: FLOAT>,
        det_score FLOAT,
        crop_format STRING,
        crop BINARY
    """,
    key=("video_id", "preprocess_version", "frame_index", "face_index"),
    partitioned_by="preprocess_version",
)

EXTRACTION_TABLES = (VIDEOS, EXTRACTIONS, FACES)
"""The tables ingest and extraction write: the videos, one outcome per video and version, and the face crops."""

PROVENANCE = TableSpec(
    name="provenance",
    columns="""
        video_id STRING NOT NULL,
        status STRING NOT NULL,
        declared_ai BOOLEAN NOT NULL,
        manifest_label STRING,
        manifests INT NOT NULL,
        claim_generator STRING,
        signer_subject STRING,
        signer_issuer STRING,
        signed_at TIMESTAMP,
        actions ARRAY<STRING> NOT NULL,
        digital_source_types ARRAY<STRING> NOT NULL,
        ingredients ARRAY<STRUCT<title: STRING, relationship: STRING, format: STRING>> NOT NULL,
        validation_failures ARRAY<STRING> NOT NULL,
        reason STRING,
        detail STRING,
        trust_list STRING,
        checked_at TIMESTAMP NOT NULL
    """,
    key=("video_id",),
)
"""One row per video with a manifest store (or one the reader could not get through): the C2PA Content
Credentials ingest read and validated (``deepsift.provenance``). A file without credentials gets no row,
so that ingesting the usual unsigned uploads writes nothing here; ``videos.credentials_checked`` and the
view ``video_credentials`` tell such a video (``none``) from one never checked. A rerun rewrites a row
only when its outcome changed (say, a new trust list)."""

FACE_SCORES = TableSpec(
    name="face_scores",
    columns="""
        run_id STRING NOT NULL,
        video_id STRING NOT NULL,
        preprocess_version STRING NOT NULL,
        frame_index INT NOT NULL,
        face_index INT NOT NULL,
        model_name STRING NOT NULL,
        model_version INT NOT NULL,
        score FLOAT NOT NULL,
        scan_date DATE NOT NULL
    """,
    key=("run_id", "video_id", "frame_index", "face_index"),
    partitioned_by="scan_date",
)
"""One probability of manipulation per face crop and scan run; ``run_id`` is deterministic
(``deepsift.stages.score.scan_run_id``), so rescanning the same date with the same model and crops
writes the same keys."""

VERDICTS = TableSpec(
    name="verdicts",
    columns="""
        video_id STRING NOT NULL,
        model_name STRING NOT NULL,
        model_version INT NOT NULL,
        preprocess_version STRING NOT NULL,
        score DOUBLE,
        verdict STRING NOT NULL,
        reason STRING,
        aggregation STRING,
        n_frames INT,
        n_faces INT,
        run_id STRING NOT NULL,
        scanned_at TIMESTAMP NOT NULL,
        scan_date DATE NOT NULL,
        n_frames_scored INT
    """,
    key=("video_id", "model_name", "model_version", "preprocess_version"),
    partitioned_by="scan_date",
)
"""One label per video and model version (``deepsift.verdicts.labels.Verdict``); ``score`` and
``aggregation`` are NULL when no score was computed (``not_applicable`` or ``error``, with a reason).
``n_frames_scored`` (last: lakes that predate it gain it at the end) counts the frames whose faces made
the score, fewer than the frames with faces where the model's cascade stopped early."""

SCAN_RUNS = TableSpec(
    name="scan_runs",
    columns="""
        run_id STRING NOT NULL,
        trigger STRING NOT NULL,
        scan_date DATE NOT NULL,
        model_name STRING NOT NULL,
        model_version INT NOT NULL,
        model_uri STRING NOT NULL,
        preprocess_version STRING NOT NULL,
        config STRING,
        videos BIGINT,
        counts_by_verdict MAP<STRING, BIGINT>,
        counts_by_reason MAP<STRING, BIGINT>,
        stage_seconds MAP<STRING, DOUBLE>,
        status STRING NOT NULL,
        error STRING,
        started_at TIMESTAMP,
        finished_at TIMESTAMP,
        detect_path STRING,
        detect_engine STRING
    """,
    key=("run_id",),
)
"""One row per scan run: who triggered it, which exact model, the config, counts and seconds per stage,
how detect tasks got their device (``deepsift.detect.devices``) and what ran the network (``torch``,
``onnxruntime``); both NULL when no face was scored."""

RESCORE_TRIGGER = "rescore"
"""``scan_runs.trigger`` of :func:`deepsift.stages.scan.rescore` runs: they replay another model over past
scans, so the daily report and the moderation queue leave them out."""

SCAN_TABLES = (FACE_SCORES, VERDICTS)
"""The tables a scan with a detector writes; kept apart from ``EXTRACTION_TABLES`` (ingest and extraction)."""

MODERATION_QUEUE = TableSpec(
    name="moderation_queue",
    columns="""
        video_id STRING NOT NULL,
        model_name STRING NOT NULL,
        model_version INT NOT NULL,
        preprocess_version STRING NOT NULL,
        verdict STRING NOT NULL,
        score DOUBLE NOT NULL,
        priority DOUBLE NOT NULL,
        run_id STRING NOT NULL,
        scan_date DATE NOT NULL,
        enqueued_at TIMESTAMP NOT NULL,
        status STRING NOT NULL,
        reviewer STRING,
        reviewed_at TIMESTAMP,
        note STRING,
        provenance_status STRING
    """,
    key=("video_id", "model_name", "model_version"),
)
"""Flagged verdicts of the serving model waiting for, or holding, a moderator's decision
(``deepsift.review``); not partitioned, since decisions update rows of every scan date."""


class ReviewStatus(StrEnum):
    """The value of ``moderation_queue.status``: pending, or a moderator's decision. Part of the table's
    contract, so that the queue's code and the analysts' views name the same values."""

    PENDING = "pending"
    CONFIRMED_FAKE = "confirmed_fake"
    CONFIRMED_REAL = "confirmed_real"
    DISMISSED = "dismissed"
    """Not a question for this queue (say, a cartoon or an animal face): no training label."""

REPORTS = TableSpec(
    name="reports",
    columns="""
        report_date DATE NOT NULL,
        path STRING NOT NULL,
        generated_at TIMESTAMP NOT NULL,
        run_ids ARRAY<STRING> NOT NULL,
        model_uris ARRAY<STRING> NOT NULL,
        videos BIGINT NOT NULL,
        counts_by_verdict MAP<STRING, BIGINT> NOT NULL,
        counts_by_reason MAP<STRING, BIGINT> NOT NULL,
        flagged BIGINT NOT NULL,
        flagged_listed INT NOT NULL,
        size_bytes BIGINT NOT NULL
    """,
    key=("report_date",),
)
"""One row per daily moderation report (``deepsift.reports``), upserted: regenerating a date replaces
its row. ``run_ids`` is empty for a date without a scan."""

EVERY_TABLE = (*EXTRACTION_TABLES, PROVENANCE, *SCAN_TABLES, SCAN_RUNS, MODERATION_QUEUE, REPORTS)
"""Every table deepsift writes: ``docs/tables.md`` must describe each of their columns (a test checks)."""


class TableSchemaError(DeepsiftError, RuntimeError):
    """An existing table lacks a column that cannot be added in place; the message names it."""


_ENSURED: set[tuple[str, str]] = set()
"""(Spark application id, qualified table name) of the tables :func:`ensure_tables` has checked: once per
table and application, not once per stage (each check is catalog calls and a read of the table's schema)."""


def ensure_tables(spark: SparkSession, schema: str, tables: tuple[TableSpec, ...] = EXTRACTION_TABLES) -> None:
    """Create the schema and any missing table; give existing tables the columns their spec gained.

    Lakes created by an older deepsift lack newer columns. Nullable ones are added in place (existing
    rows read NULL); a missing NOT NULL column raises :class:`TableSchemaError` naming it. A table this
    Spark application checked already is not checked again: deepsift never drops a table.
    """
    application = spark.sparkContext.applicationId
    unchecked = [table for table in tables if (application, table.qualified(schema)) not in _ENSURED]
    if not unchecked:
        return
    ensure_schema(spark, schema)
    for table in unchecked:
        partition = f" PARTITIONED BY ({table.partitioned_by})" if table.partitioned_by else ""
        spark.sql(f"CREATE TABLE IF NOT EXISTS {table.qualified(schema)} ({table.columns}) USING DELTA{partition}")
        _add_missing_columns(spark, schema, table)
        _ENSURED.add((application, table.qualified(schema)))


def ensure_schema(spark: SparkSession, schema: str) -> None:
    """Create ``schema`` unless the catalog has it. Asking first spares a warning per call: ``CREATE SCHEMA
    IF NOT EXISTS`` on a schema that exists logs "Namespace ... was created concurrently"."""
    if not spark.catalog.databaseExists(schema):
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")


def _add_missing_columns(spark: SparkSession, schema: str, table: TableSpec) -> None:
    present = {column.lower() for column in spark.table(table.qualified(schema)).columns}
    missing = [ddl for ddl in _split_top_level(table.columns) if ddl.split()[0].lower() not in present]
    required = [ddl.split()[0] for ddl in missing if re.search(r"\bNOT\s+NULL\b", ddl, re.IGNORECASE)]
    if required:
        raise TableSchemaError(
            f"{table.qualified(schema)} lacks column(s) {', '.join(required)}, which are NOT NULL and cannot be "
            "added to existing rows: migrate the table by hand"
        )
    if missing:
        spark.sql(f"ALTER TABLE {table.qualified(schema)} ADD COLUMNS ({', '.join(missing)})")


def merge_insert_new(spark: SparkSession, schema: str, table: TableSpec, rows: DataFrame) -> int:
    """Insert the rows whose key is not in the table yet; rows already there are left untouched.
    Returns the number of rows inserted.

    For example (it needs a SparkSession)::

        merge_insert_new(spark, "deepsift", FACES, new_faces)
    """
    condition = _key_condition(table)
    metrics = (
        DeltaTable.forName(spark, table.qualified(schema))
        .alias("t")
        .merge(rows.select(*table.column_names()).alias("s"), condition)
        .whenNotMatchedInsertAll()
        .execute()
    )
    (counts,) = metrics.collect()
    return int(counts["num_inserted_rows"])


def table_version(spark: SparkSession, schema: str, table: TableSpec) -> int:
    """The table's latest Delta version: read it before computing rows for :func:`append_once`."""
    (latest,) = DeltaTable.forName(spark, table.qualified(schema)).history(1).select("version").collect()
    return int(latest["version"])


def table_as_of(spark: SparkSession, schema: str, table: TableSpec, version: int) -> DataFrame:
    """The table's rows as of Delta ``version``: the snapshot that rows for :func:`append_once` are computed
    against, whatever another writer commits meanwhile."""
    return spark.read.option("versionAsOf", version).table(table.qualified(schema))


def append_once(
    spark: SparkSession, schema: str, table: TableSpec, rows: DataFrame, writer: str, read_version: int
) -> None:
    """Append ``rows`` in one commit, which Delta skips if ``writer`` appended since ``read_version``.

    For rows whose keys only ``writer`` writes, computed from the table as of ``read_version`` or later to
    leave out the keys it holds (a scan run's scores of the faces it has not scored yet): no MERGE, whose
    join reads the whole table on every run. The commit carries a Delta transaction id, ``txnAppId``
    ``<table>:<writer>`` and ``txnVersion`` ``read_version``, and Delta skips a commit whose application
    committed at that version or a later one: a second process writing the same run at the same time
    (both read the same version and computed the same rows) adds nothing. So every process that may
    compute the same keys must name the same ``writer`` (the keys' fixed part: a run id, a preprocess
    version), and read the table as of ``read_version`` (:func:`table_as_of`) when it leaves out the keys
    already there.

    For example (it needs a SparkSession)::

        version = table_version(spark, "deepsift", FACE_SCORES)
        new_scores = ...  # this run's scores of faces it has no score for in that version
        append_once(spark, "deepsift", FACE_SCORES, new_scores, writer=run_id, read_version=version)
    """
    (
        rows.select(*table.column_names())
        .write.format("delta")
        .mode("append")
        .option("txnAppId", f"{table.name}:{writer}")
        .option("txnVersion", read_version)
        .saveAsTable(table.qualified(schema))
    )


def merge_changes(
    spark: SparkSession,
    schema: str,
    table: TableSpec,
    rows: DataFrame,
    changed: str,
    assignments: dict[str, str | Column] | None = None,
) -> Row | None:
    """Insert the rows whose key is new and update the held rows for which ``changed`` holds; leave every
    other row, and the file holding it, alone. Returns the MERGE's metrics row, or None when no row was new
    or changed: then there is no MERGE and no commit.

    ``changed`` is a condition on the held row ``t`` and the new one ``s``; ``assignments`` (column: SQL
    expression) say what an update sets, every column when None. Delta rewrites each file holding a key
    a MERGE matched, even where the update's condition is false, so the rows that would change nothing
    are left out before the MERGE: a rerun over the same input writes nothing. Those rows are checkpointed
    first, so the check that any are left and the MERGE's two passes over its source read them rather than
    join the table again (a one-row MERGE into ``scan_runs`` took 1.2 s in place of 1.6 s).

    For example (it needs a SparkSession)::

        merge_changes(spark, "deepsift", SCAN_RUNS, run_row, changed="t.status <> 'succeeded'")
    """
    held = spark.table(table.qualified(schema)).alias("t")
    condition = _key_condition(table)
    new_or_changed = (
        rows.select(*table.column_names())
        .alias("s")
        .join(held, F.expr(condition), "left")
        .where(F.expr(f"t.{table.key[0]} IS NULL OR ({changed})"))
        .select("s.*")
        .checkpoint(eager=True)
    )
    if new_or_changed.isEmpty():
        return None
    merge = DeltaTable.forName(spark, table.qualified(schema)).alias("t").merge(new_or_changed.alias("s"), condition)
    if assignments is None:
        merge = merge.whenMatchedUpdateAll(condition=changed)
    else:
        merge = merge.whenMatchedUpdate(condition=changed, set=assignments)
    (metrics,) = merge.whenNotMatchedInsertAll().execute().collect()
    return metrics


def merge_upsert(spark: SparkSession, schema: str, table: TableSpec, rows: DataFrame) -> None:
    """Insert the rows whose key is new and replace those whose key is there: still one row per key.

    For example (it needs a SparkSession)::

        merge_upsert(spark, "deepsift", REPORTS, report_row)
    """
    condition = _key_condition(table)
    (
        DeltaTable.forName(spark, table.qualified(schema))
        .alias("t")
        .merge(rows.select(*table.column_names()).alias("s"), condition)
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )


def merge_update(
    spark: SparkSession, schema: str, table: TableSpec, rows: DataFrame, columns: tuple[str, ...]
) -> int:
    """Set ``columns`` of the rows whose key is in ``rows``, in one commit; keys not in the table are
    ignored (nothing is inserted). Returns the number of rows updated.

    For example (it needs a SparkSession)::

        merge_update(spark, "deepsift", MODERATION_QUEUE, decisions, ("status", "reviewer"))
    """
    metrics = (
        DeltaTable.forName(spark, table.qualified(schema))
        .alias("t")
        .merge(rows.select(*table.key, *columns).alias("s"), _key_condition(table))
        .whenMatchedUpdate(set={column: f"s.{column}" for column in columns})
        .execute()
    )
    (counts,) = metrics.collect()
    return int(counts["num_updated_rows"])


def _key_condition(table: TableSpec) -> str:
    """The MERGE condition matching a source row ``s`` to the target row ``t`` with the same key."""
    return " AND ".join(f"t.{column} = s.{column}" for column in table.key)


def _split_top_level(columns: str) -> list[str]:
    """Split a DDL column list on commas that are not inside ``<...>``."""
    current: list[str]
    parts, depth, current = [], 0, []
    for char in columns:
        depth += char == "<"
        depth -= char == ">"
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in (p.strip() for p in parts) if part]
