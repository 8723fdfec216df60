"""
### deepsift nightly scan

Scans one day's uploads: every run covers its data interval, one whole UTC day, and the interval's
start is the **scan date** (the run that fires at 00:00 UTC on the 26th scans the 25th).

1. `resolve_day`: checks that the interval is one whole UTC day that is over, and finds the day's
   folder, `<source root>/<layout>`: the `source_root` and `source_layout` params, else the Airflow
   variables `deepsift_source_root` and `deepsift_source_layout` (`AIRFLOW_VAR_DEEPSIFT_SOURCE_ROOT`
   in the environment works); the layout is a strftime pattern, default `%Y-%m-%d`. A bad date or
   a missing folder fails at once, without retries, naming the path.
2. `has_uploads`: an empty day is a successful run with zero videos; the scan is skipped.
3. `prepare_scan`: loads the deepsift configuration and builds the Spark conf and the validated
   job arguments (folder, `--date`, `--trigger airflow:<dag_id>/<run_id>`).
4. `scan`: `jobs/scan.py` through spark-submit on the `spark_default` connection's master.
5. `prepare_report`, then `report`: `jobs/report.py` through spark-submit writes the scan date's
   moderation report, `<deepsift home>/reports/<scan date>.html`, and its row in `reports`. It runs
   after an empty day too (the page then says no scan ran), not after a failed scan.

**Reruns and backfills** are safe: the scan's writes are insert-only MERGEs on keys that a rerun
reproduces, so clearing a run, a retry, or `airflow backfill create --dag-id deepsift_nightly_scan
--from-date D1 --to-date D2` leaves the tables as one run would; the report of the date is written
again and replaces its `reports` row. Catch-up is off.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import CronDataIntervalTimetable, Param, TriggerRule, dag, task

from deepsift.orchestration.defaults import dag_options
from deepsift.orchestration.spark_jobs import spark_job

DAG_ID = "deepsift_nightly_scan"
JOBS_DIR = Path(__file__).parent.parent / "jobs"


def prepare_scan(folder: str, scan_date: str, run_id: str | None = None) -> list[str]:
    """spark-submit arguments, conf and environment for ``jobs/scan.py``, from the config at run time."""
    from deepsift.orchestration.submit import scan_args

    return scan_args(folder, date.fromisoformat(scan_date), f"airflow:{DAG_ID}/{run_id}")


def prepare_report(scan_date: str) -> list[str]:
    """spark-submit arguments, conf and environment for ``jobs/report.py``: the scan date's report.

    Runs once the scan succeeded or was skipped (an empty day), never after a failed scan.
    """
    from deepsift.orchestration.submit import report_args

    return report_args(date.fromisoformat(scan_date))


scan_job = spark_job(
    JOBS_DIR,
    "scan",
    prepare_scan,
    doc_md="`jobs/scan.py` through spark-submit: ingest the day's folder, extract, score, judge, record.",
    execution_timeout=timedelta(hours=6),
)
report_job = spark_job(
    JOBS_DIR,
    "report",
    prepare_report,
    doc_md="`jobs/report.py` through spark-submit: the scan date's moderation report (one HTML file under "
    "the deepsift home) and its row in `reports`; after an empty day the page says no scan ran.",
    execution_timeout=timedelta(hours=1),
    trigger_rule=TriggerRule.NONE_FAILED,
)


@dag(
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    **dag_options(
        DAG_ID, timedelta(hours=8), "scan", __doc__,
        params={
            "source_root": Param(None, type=["null", "string"], description="default: variable deepsift_source_root"),
            "source_layout": Param(
                None, type=["null", "string"], description="default: variable deepsift_source_layout, else %Y-%m-%d"
            ),
        },
    )
)
def deepsift_nightly_scan() -> None:
    @task(multiple_outputs=True)
    def resolve_day(
        params: dict[str, Any], data_interval_start: datetime | None = None, data_interval_end: datetime | None = None
    ) -> dict[str, Any]:
        """Validate the scan date and find that day's upload folder; bad input fails without retries."""
        from airflow.sdk import Variable
        from airflow.sdk.exceptions import AirflowFailException

        from deepsift.orchestration.days import (
            SOURCE_LAYOUT_VARIABLE,
            SOURCE_ROOT_VARIABLE,
            ScanInputError,
            resolve_upload_day,
        )

        try:
            day = resolve_upload_day(
                data_interval_start,
                data_interval_end,
                params["source_root"] or Variable.get(SOURCE_ROOT_VARIABLE, default=None),
                params["source_layout"] or Variable.get(SOURCE_LAYOUT_VARIABLE, default=None),
            )
        except ScanInputError as error:
            raise AirflowFailException(str(error)) from error
        print(f"scan date {day.scan_date}: {day.files} files in {day.folder}")
        return {"scan_date": day.scan_date.isoformat(), "folder": day.folder, "files": day.files}

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def has_uploads(files: int, folder: str) -> bool:
        """Skip the scan of a day without uploads: a successful run with zero videos."""
        if not files:
            print(f"no uploads in {folder}: nothing to scan")
        return files > 0

    day = resolve_day()
    prepared_scan, scan = scan_job(day["folder"], day["scan_date"])
    prepared_report, _ = report_job(day["scan_date"])
    has_uploads(day["files"], day["folder"]) >> prepared_scan
    scan >> prepared_report


deepsift_nightly_scan()
