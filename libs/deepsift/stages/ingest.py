"""Ingest: list input files, identify them by content, probe them, and MERGE them into ``videos``.

Listing runs on the driver (local folders, globs and files directly; other schemes through the Hadoop
FileSystem API, so ``hdfs://`` or ``s3a://`` prefixes list the same way). Hashing and probing run on
executors; the hash, the probe and the Content Credentials check (``deepsift.provenance``), the last two
parsing untrusted bytes, run together in one call to a warm isolated worker process.
A file that cannot be read or probed still gets a row, with ``probe_status = 'error'`` and a reason.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from deepsift.config import Config, DecodeLimits
from deepsift.errors import DeepsiftError
from deepsift.lake.schemas import spark_ddl
from deepsift.lake.tables import PROVENANCE, VIDEOS, ensure_tables, merge_changes
from deepsift.media.inspect import identify_file
from deepsift.media.probe import ProbeResult
from deepsift.media.sources import is_local, local_path, opened_locally, to_uri
from deepsift.progress import step
from deepsift.provenance.credentials import CredentialCheck, ProvenanceStatus
from deepsift.provenance.table import (
    PROBE_COLUMNS,
    credential_check,
    merge_provenance,
    probe_columns,
)
from deepsift.reasons import MediaError, Reason

log = logging.getLogger(__name__)

GLOB_CHARACTERS = set("*?[")
PROBED_COLUMNS = VIDEOS.row_schema(exclude=("uris", "ingest_date", "first_seen_at", "credentials_checked"))
"""The ``videos`` columns a per-file probe row carries; ``uris`` comes from grouping the files by content
id, the other three are the same for the whole batch."""


class NoInputError(DeepsiftError, ValueError):
    """None of the given inputs exists or holds any file."""


@dataclass(frozen=True)
class Listing:
    """What a set of inputs resolved to: the file URIs found, and the inputs that do not exist."""

    uris: list[str]
    missing: list[str]


@dataclass(frozen=True)
class IngestSummary:
    files: int
    new_videos: int
    probe_errors: dict[str, int]
    missing_inputs: list[str]
    seconds: float
    provenance: dict[str, int]
    """Files per Content Credentials status (``none``, ``valid``, ...); empty when the check is off."""


def list_inputs(spark: SparkSession, inputs: Sequence[str]) -> Listing:
    """Expand folders (recursively, hidden files skipped), globs and files into sorted file URIs.

    For example (it needs a SparkSession)::

        list_inputs(spark, ["uploads/2026-11-25", "extra/*.mp4"]).uris
    """
    found: set[str] = set()
    missing: list[str] = []
    for item in inputs:
        uris = _list_local(item) if is_local(item) else _list_hadoop(spark, item)
        if uris is None:
            missing.append(item)
        else:
            found.update(uris)
    return Listing(sorted(found), missing)


def _list_local(item: str) -> list[str] | None:
    path = local_path(item)
    if GLOB_CHARACTERS & set(str(path)):
        matches = [Path(match) for match in sorted(glob.glob(str(path), recursive=True))]
        return [to_uri(str(match)) for match in matches if match.is_file()] or None
    if path.is_file():
        return [to_uri(str(path))]
    if path.is_dir():
        files: list[Path] = []
        for folder, subfolders, names in os.walk(path):
            subfolders[:] = [name for name in subfolders if not name.startswith(".")]
            files.extend(Path(folder, name) for name in names if not name.startswith("."))
        return [to_uri(str(file)) for file in sorted(files)]
    return None


def _list_hadoop(spark: SparkSession, item: str) -> list[str] | None:
    jvm = spark.sparkContext._jvm  # noqa: SLF001 - the Hadoop FileSystem API is only reachable through py4j
    assert jvm is not None
    hadoop_path = jvm.org.apache.hadoop.fs.Path(item)
    filesystem = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())  # noqa: SLF001
    statuses = filesystem.globStatus(hadoop_path) or []
    uris: list[str] = []
    for status in statuses:
        if status.isFile():
            uris.append(status.getPath().toString())
            continue
        files = filesystem.listFiles(status.getPath(), True)
        while files.hasNext():
            file_path = files.next().getPath()
            if not file_path.getName().startswith("."):
                uris.append(file_path.toString())
    return uris or None


@step("ingest")
def ingest(spark: SparkSession, config: Config, inputs: Sequence[str], ingest_date: date | None = None) -> IngestSummary:
    """List ``inputs``, probe every file and MERGE into ``videos``; re-ingesting adds nothing.

    The same bytes under two names are one video (one row) whose ``uris`` holds both names.
    Raises :class:`NoInputError` when no input exists; missing inputs next to existing ones are
    reported in the summary and skipped.
    """
    started = datetime.now(UTC)
    listing = list_inputs(spark, inputs)
    for item in listing.missing:
        log.warning("input %s does not exist or holds no file; skipped", item)
    if not listing.uris:
        raise NoInputError(f"no files found in {', '.join(inputs) or '(no input given)'}")
    check = credential_check(config)
    schema = config.lake.schema_name
    with ThreadPoolExecutor(max_workers=1) as background:
        # The tables are created or checked while the files are probed, which needs no catalog: the probe
        # keeps a Python worker busy, the catalog the driver JVM.
        tables_ready = background.submit(ensure_tables, spark, schema, (VIDEOS,) if check is None else (VIDEOS, PROVENANCE))
        probed = _probe_files(spark, listing.uris, config.decode, check, ingest_date or started.date(), started)
        probed = probed.checkpoint(eager=True)  # reliable: a lost executor cannot take the probe results with it
        tables_ready.result()
    new_videos = _merge_videos(spark, schema, probed)
    # one pass over the checkpointed rows for both summaries
    reason = F.when(F.col("probe_status") == "error", F.split("probe_error", ":")[0])
    counts = probed.groupBy(reason.alias("reason"), "provenance_status").count().collect()
    provenance = _sum_by(counts, "provenance_status")
    if check is not None and set(provenance) - {str(ProvenanceStatus.NONE)}:  # most nights: nothing signed
        merge_provenance(spark, schema, probed, check)
    return IngestSummary(
        files=len(listing.uris),
        new_videos=new_videos,
        probe_errors=_sum_by(counts, "reason"),
        missing_inputs=listing.missing,
        seconds=(datetime.now(UTC) - started).total_seconds(),
        provenance=provenance,
    )


def _sum_by(counts: list[Row], column: str) -> dict[str, int]:
    """Counts of ``(reason, provenance_status, count)`` rows summed per value of ``column``, NULL left out."""
    sums: dict[str, int] = {}
    for row in counts:
        if row[column] is not None:
            sums[row[column]] = sums.get(row[column], 0) + row["count"]
    return sums


def _probe_files(
    spark: SparkSession, uris: list[str], limits: DecodeLimits, check: CredentialCheck | None, day: date, seen_at: datetime
) -> DataFrame:
    partitions = max(1, min(len(uris), spark.sparkContext.defaultParallelism * 4))
    listing = spark.createDataFrame(pd.DataFrame({"uri": uris})).repartition(partitions)
    limits_json = limits.model_dump_json()
    probe_schema = f"{spark_ddl(PROBED_COLUMNS)}, {PROBE_COLUMNS}"

    def probe_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        worker_limits = DecodeLimits.model_validate_json(limits_json)
        for batch in batches:
            rows = [_probe_row(uri, worker_limits, check) for uri in batch["uri"]]
            yield pd.DataFrame(rows, columns=probe_schema_columns)

    probe_schema_columns = [column.split()[0] for column in probe_schema.split(", ")]
    return listing.mapInPandas(probe_partition, probe_schema).select(
        "*",
        F.lit(day).alias("ingest_date"),
        F.lit(seen_at.replace(tzinfo=None)).cast("timestamp").alias("first_seen_at"),
        F.col("provenance_status").isNotNull().alias("credentials_checked"),
    )


def _probe_row(uri: str, limits: DecodeLimits, check: CredentialCheck | None) -> dict[str, object]:
    """Hash, probe and check the credentials of one file (one call to the warm isolated worker); any failure
    becomes an error row, never an exception."""
    try:
        with opened_locally(uri) as path:
            found = identify_file(path, limits, check)
            size = path.stat().st_size
    except MediaError as error:
        return _unreadable_row(uri, error)
    except OSError as error:
        return _unreadable_row(uri, MediaError(Reason.OPEN_ERROR, f"cannot read {uri}: {error.strerror or error}"))
    return {
        "video_id": found.video_id,
        "uri": uri,
        "size_bytes": size,
        **_probe_columns(found.probe),
        **probe_columns(found.credentials),
    }


def _unreadable_row(uri: str, error: MediaError) -> dict[str, object]:
    """A file whose bytes cannot be read has no content id; it is keyed by its URI instead."""
    video_id = "unreadable-" + hashlib.sha256(uri.encode()).hexdigest()
    failed = ProbeResult(probe_status="error", probe_error=str(error))
    return {"video_id": video_id, "uri": uri, "size_bytes": None, **_probe_columns(failed), **probe_columns(None)}


def _probe_columns(result: ProbeResult) -> dict[str, object]:
    """The probe's fields that ``videos`` stores (stream counts beyond video streams are not kept)."""
    columns = asdict(result)
    columns.pop("n_streams")
    return columns


def _merge_videos(spark: SparkSession, schema: str, probed: DataFrame) -> int:
    """One row per content id: the batch is grouped first, then merged; new names extend ``uris``, and a
    first credentials check sets ``credentials_checked``; videos with neither are not written. Returns how
    many videos were new."""
    other_columns = [c for c in VIDEOS.column_names() if c not in ("video_id", "uri", "uris")]
    grouped = probed.groupBy("video_id").agg(
        F.min("uri").alias("uri"),
        F.array_sort(F.collect_set("uri")).alias("uris"),
        *[F.first(column, ignorenulls=True).alias(column) for column in other_columns],
    )
    metrics = merge_changes(
        spark,
        schema,
        VIDEOS,
        grouped,
        changed=(
            "size(array_except(s.uris, t.uris)) > 0"
            " OR (s.credentials_checked AND NOT (t.credentials_checked <=> true))"
        ),
        assignments={
            "uris": "array_sort(array_distinct(concat(t.uris, s.uris)))",
            "credentials_checked": "coalesce(t.credentials_checked, false) OR s.credentials_checked",
        },
    )
    return 0 if metrics is None else int(metrics["num_inserted_rows"])
