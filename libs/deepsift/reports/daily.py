"""Generate one day's moderation report: read, render, write the HTML file, record it in ``reports``.

The file is written next to its final path and renamed into place, so a reader never sees half a page.
``reports`` holds one row per report date, upserted: regenerating a day replaces that day's row (its
path, time and counts), never adds a second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from pyspark.sql import SparkSession

from deepsift.config import Config
from deepsift.errors import DeepsiftError
from deepsift.files import replaced_on_success
from deepsift.lake.tables import REPORTS, ensure_tables, merge_upsert
from deepsift.progress import step
from deepsift.reports.data import DailyData, ReportSettings, read_daily
from deepsift.reports.render import render_daily


class ReportPathError(DeepsiftError, ValueError):
    """The report cannot be written where it was asked to go."""


@dataclass(frozen=True)
class ReportOutcome:
    path: Path
    data: DailyData
    generated_at: datetime
    size_bytes: int


def report_path(config: Config, report_date: date, out: Path | None = None) -> Path:
    """Where the report goes: ``out``, else ``<home>/reports/<date>.html``; its folder is created.

    Raises :class:`ReportPathError` for a path that is a folder or whose folder cannot be created, so
    that a caller can check it before starting Spark.
    """
    path = (out or config.home / "reports" / f"{report_date.isoformat()}.html").expanduser().resolve()
    if path.is_dir():
        raise ReportPathError(f"report path {path} is a folder; give a file name, such as {path / 'report.html'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ReportPathError(f"cannot create the folder of report path {path}: {error.strerror}") from None
    return path


@step("report")
def generate_daily_report(
    spark: SparkSession,
    config: Config,
    report_date: date,
    out: Path | None = None,
    settings: ReportSettings | None = None,
) -> ReportOutcome:
    """Write the report of ``report_date`` to :func:`report_path` and record it in ``reports``.

    A date without a scan gives a page saying so, not an error.
    """
    path = report_path(config, report_date, out)
    generated_at = datetime.now(UTC)
    data = read_daily(spark, config, report_date, settings or ReportSettings())
    page = render_daily(data, generated_at).encode("utf-8")
    with replaced_on_success(path) as partial:
        partial.write_bytes(page)
    _record(spark, config, data, path, generated_at, len(page))
    return ReportOutcome(path, data, generated_at, len(page))


def _record(
    spark: SparkSession, config: Config, data: DailyData, path: Path, generated_at: datetime, size_bytes: int
) -> None:
    schema = config.lake.schema_name
    ensure_tables(spark, schema, (REPORTS,))
    row = {
        "report_date": data.report_date,
        "path": str(path),
        "generated_at": generated_at.replace(tzinfo=None),
        "run_ids": [run.run_id for run in data.runs],
        "model_uris": [model.model_uri for model in data.models],
        "videos": data.videos,
        "counts_by_verdict": data.counts_by_verdict,
        "counts_by_reason": data.counts_by_reason,
        "flagged": data.flagged_total,
        "flagged_listed": len(data.flagged),
        "size_bytes": size_bytes,
    }
    merge_upsert(spark, schema, REPORTS, spark.createDataFrame([row], REPORTS.columns))
