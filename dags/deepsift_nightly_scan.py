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

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import CronDataIntervalTimetable, Param, TriggerRule, dag, task

from deepsift.orchestration.defaults import SPARK_CONN_ID, SPARK_POOL, START_DATE, default_args

DAG_ID = "deepsift_nightly_scan"
JOBS_DIR = Path(__file__).parent.parent / "jobs"


@dag(
    dag_id=DAG_ID,
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=8),
    default_args=default_args(),
    tags=["deepsift", "scan"],
    doc_md=__doc__,
    params={
        "source_root": Param(None, type=["null", "string"], description="default: variable deepsift_source_root"),
        "source_layout": Param(
            None, type=["null", "string"], description="default: variable deepsift_source_layout, else %Y-%m-%d"
        ),
    },
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

    @task(multiple_outputs=True)
    def prepare_scan(folder: str, scan_date: str, run_id: str | None = None) -> dict[str, Any]:
        """spark-submit arguments, conf and environment for ``jobs/scan.py``, from the config at run time."""
        from airflow.sdk.exceptions import AirflowFailException

        from deepsift.orchestration.submit import SubmissionError, build_submission, scan_args, spark_master

        try:
            args = scan_args(folder, date.fromisoformat(scan_date), f"airflow:{DAG_ID}/{run_id}")
            submission = build_submission(JOBS_DIR, "scan", args, spark_master(SPARK_CONN_ID))
        except SubmissionError as error:
            raise AirflowFailException(str(error)) from error
        return submission.as_dict()

    @task(multiple_outputs=True, trigger_rule=TriggerRule.NONE_FAILED)
    def prepare_report(scan_date: str) -> dict[str, Any]:
        """spark-submit arguments, conf and environment for ``jobs/report.py``: the scan date's report.

        Runs once the scan succeeded or was skipped (an empty day), never after a failed scan.
        """
        from airflow.sdk.exceptions import AirflowFailException

        from deepsift.orchestration.submit import SubmissionError, build_submission, report_args, spark_master

        try:
            args = report_args(date.fromisoformat(scan_date))
            submission = build_submission(JOBS_DIR, "report", args, spark_master(SPARK_CONN_ID))
        except SubmissionError as error:
            raise AirflowFailException(str(error)) from error
        return submission.as_dict()

    day = resolve_day()
    submission = prepare_scan(day["folder"], day["scan_date"])
    scan = SparkSubmitOperator(
        task_id="scan",
        doc_md="`jobs/scan.py` through spark-submit: ingest the day's folder, extract, score, judge, record.",
        conn_id=SPARK_CONN_ID,
        application=submission["application"],
        application_args=submission["application_args"],
        conf=submission["conf"],
        env_vars=submission["env_vars"],
        name="deepsift-scan",
        pool=SPARK_POOL,
        execution_timeout=timedelta(hours=6),
    )
    report_submission = prepare_report(day["scan_date"])
    report = SparkSubmitOperator(
        task_id="report",
        doc_md="`jobs/report.py` through spark-submit: the scan date's moderation report (one HTML file under "
        "the deepsift home) and its row in `reports`; after an empty day the page says no scan ran.",
        conn_id=SPARK_CONN_ID,
        application=report_submission["application"],
        application_args=report_submission["application_args"],
        conf=report_submission["conf"],
        env_vars=report_submission["env_vars"],
        name="deepsift-report",
        pool=SPARK_POOL,
        execution_timeout=timedelta(hours=1),
    )
    has_uploads(day["files"], day["folder"]) >> submission
    scan >> report_submission >> report


deepsift_nightly_scan()
