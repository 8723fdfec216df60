"""
### deepsift table maintenance

Weekly (Sundays 06:00 UTC): `jobs/maintain.py` through spark-submit compacts every deepsift Delta
table (OPTIMIZE) and deletes data files that no table version younger than the retention needs
(VACUUM ... RETAIN n HOURS). Tables that no job has created yet are skipped.

The retention is the `retention_hours` param, else the Airflow variable
`deepsift_vacuum_retention_hours` (`AIRFLOW_VAR_DEEPSIFT_VACUUM_RETENTION_HOURS`), else 168 hours.
Delta refuses less than 168 hours while `spark.databricks.delta.retentionDurationCheck.enabled` is
on (set it to `false` in the deepsift config's `spark.extra_conf` to allow it); such a run fails at
once, without retries. Both commands are idempotent, so retries and reruns are safe.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import CronTriggerTimetable, Param, dag, task

from deepsift.orchestration.defaults import SPARK_CONN_ID, SPARK_POOL, START_DATE, default_args

JOBS_DIR = Path(__file__).parent.parent / "jobs"


@dag(
    dag_id="deepsift_maintenance",
    schedule=CronTriggerTimetable("0 6 * * 0", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=6),
    default_args=default_args(),
    tags=["deepsift", "maintenance"],
    doc_md=__doc__,
    params={
        "retention_hours": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            description="default: variable deepsift_vacuum_retention_hours, else 168",
        ),
    },
)
def deepsift_maintenance() -> None:
    @task(multiple_outputs=True)
    def prepare_maintenance(params: dict[str, Any]) -> dict[str, Any]:
        """spark-submit arguments, conf and environment for ``jobs/maintain.py``; a refused retention fails now."""
        from airflow.sdk import Variable
        from airflow.sdk.exceptions import AirflowFailException

        from deepsift.orchestration.maintenance import (
            RETENTION_VARIABLE,
            RetentionError,
            check_retention,
            retention_hours,
        )
        from deepsift.orchestration.submit import SubmissionError, build_submission, spark_master

        try:
            hours = retention_hours(params["retention_hours"], Variable.get(RETENTION_VARIABLE, default=None))
            submission = build_submission(
                JOBS_DIR, "maintain", ["--retention-hours", str(hours)], spark_master(SPARK_CONN_ID)
            )
            check_retention(hours, submission.conf)
        except (SubmissionError, RetentionError) as error:
            raise AirflowFailException(str(error)) from error
        return submission.as_dict()

    submission = prepare_maintenance()
    SparkSubmitOperator(
        task_id="maintain",
        doc_md="`jobs/maintain.py` through spark-submit: OPTIMIZE, then VACUUM, every deepsift table.",
        conn_id=SPARK_CONN_ID,
        application=submission["application"],
        application_args=submission["application_args"],
        conf=submission["conf"],
        env_vars=submission["env_vars"],
        name="deepsift-maintain",
        pool=SPARK_POOL,
        execution_timeout=timedelta(hours=4),
    )


deepsift_maintenance()
