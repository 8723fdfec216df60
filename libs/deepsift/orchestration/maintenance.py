"""Weekly table maintenance: OPTIMIZE (compact small files) and VACUUM (delete unreferenced files).

Every deepsift table that exists is compacted, then vacuumed with a retention in hours. Delta refuses
a retention under 168 hours (7 days) unless ``spark.databricks.delta.retentionDurationCheck.enabled``
is ``false`` (set it in ``spark.extra_conf``): files younger than the retention may still be read by a
running job or a time-travel query. Both commands are safe to repeat: a second run finds nothing to do.
VACUUM lists a table's files with Spark's partition-discovery parallelism, 10000 tasks by default,
which costs minutes on a small cluster; maintenance lists with ``spark.shuffle_partitions`` tasks.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass

from pyspark.sql import SparkSession

from deepsift.config import Config
from deepsift.lake.tables import EVERY_TABLE
from deepsift.orchestration.submit import SubmissionError

DEFAULT_RETENTION_HOURS = 168
RETENTION_VARIABLE = "deepsift_vacuum_retention_hours"
"""The Airflow variable holding a deployment's retention (``AIRFLOW_VAR_DEEPSIFT_VACUUM_RETENTION_HOURS``)."""
RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
LISTING_PARALLELISM = "spark.sql.sources.parallelPartitionDiscovery.parallelism"


class RetentionError(SubmissionError):
    """The retention is negative, or under Delta's minimum while its safety check is on (an invalid job argument)."""


def retention_hours(param: int | None, variable: str | None) -> int:
    """The retention a run asked for, else the deployment's variable, else 168 hours."""
    if param is not None:
        return param
    if variable is None:
        return DEFAULT_RETENTION_HOURS
    try:
        return int(variable)
    except ValueError:
        raise RetentionError(
            f"variable {RETENTION_VARIABLE} must be a whole number of hours, given {variable!r}"
        ) from None


def check_retention(hours: int, conf: Mapping[str, str]) -> int:
    """``hours`` when Delta will accept it with this Spark conf; otherwise a :class:`RetentionError`."""
    if hours < 0:
        raise RetentionError(f"retention must be 0 hours or more, given {hours}")
    if hours < DEFAULT_RETENTION_HOURS and conf.get(RETENTION_CHECK, "true").lower() != "false":
        raise RetentionError(
            f"Delta refuses to VACUUM with a retention of {hours} h (< {DEFAULT_RETENTION_HOURS} h) while "
            f"{RETENTION_CHECK} is on; set it to false in spark.extra_conf if no job or query reads older versions"
        )
    return hours


@dataclass(frozen=True)
class TableMaintenance:
    """What maintenance did to one table; ``exists`` is False for a table no job has created yet."""

    table: str
    exists: bool
    files_removed: int = 0
    files_added: int = 0


def maintain_tables(
    spark: SparkSession, schema: str, retention_hours: int, listing_parallelism: int
) -> list[TableMaintenance]:
    """OPTIMIZE then VACUUM every deepsift table in ``schema``; tables not created yet are skipped."""
    spark.conf.set(LISTING_PARALLELISM, str(listing_parallelism))
    done = []
    for table in EVERY_TABLE:
        name = table.qualified(schema)
        if not spark.catalog.tableExists(name):
            done.append(TableMaintenance(name, exists=False))
            continue
        (optimized,) = spark.sql(f"OPTIMIZE {name}").collect()
        metrics = optimized.metrics
        spark.sql(f"VACUUM {name} RETAIN {retention_hours} HOURS").collect()
        done.append(TableMaintenance(name, True, metrics.numFilesRemoved, metrics.numFilesAdded))
    return done


def run_maintenance(config: Config, hours: int | None) -> int:
    """``deepsift maintain`` (``jobs/maintain.py``): OPTIMIZE and VACUUM every table of the configured schema.

    ``hours`` defaults to 168; a retention Delta would refuse fails before Spark starts (exit status 2).
    """
    from deepsift.lake.session import build_spark_session, spark_conf

    try:
        hours = check_retention(retention_hours(hours, None), spark_conf(config))
    except RetentionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    spark = build_spark_session(config)
    for result in maintain_tables(spark, config.lake.schema_name, hours, config.spark.shuffle_partitions):
        if result.exists:
            print(f"{result.table}: compacted {result.files_removed} files into {result.files_added}, vacuumed")
        else:
            print(f"{result.table}: not created yet, skipped")
    return 0
