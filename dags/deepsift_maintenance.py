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

from airflow.sdk import CronTriggerTimetable, Param, dag

from deepsift.orchestration.defaults import dag_options
from deepsift.orchestration.spark_jobs import spark_job

JOBS_DIR = Path(__file__).parent.parent / "jobs"


def prepare_maintenance(params: dict[str, Any]) -> list[str]:
    """spark-submit arguments, conf and environment for ``jobs/maintain.py``; a refused retention fails now."""
    from airflow.sdk import Variable

    from deepsift.orchestration.maintenance import RETENTION_VARIABLE, retention_hours

    hours = retention_hours(params["retention_hours"], Variable.get(RETENTION_VARIABLE, default=None))
    return ["--retention-hours", str(hours)]


def refused_retention(args: list[str], conf: dict[str, str]) -> None:
    """Fail now when Delta would refuse the retention with this conf."""
    from deepsift.orchestration.maintenance import check_retention

    check_retention(int(args[-1]), conf)


@dag(
    schedule=CronTriggerTimetable("0 6 * * 0", timezone="UTC"),
    **dag_options(
        "deepsift_maintenance", timedelta(hours=6), "maintenance", __doc__,
        params={
            "retention_hours": Param(
                None,
                type=["null", "integer"],
                minimum=0,
                description="default: variable deepsift_vacuum_retention_hours, else 168",
            ),
        },
    )
)
def deepsift_maintenance() -> None:
    spark_job(
        JOBS_DIR,
        "maintain",
        prepare_maintenance,
        check=refused_retention,
        doc_md="`jobs/maintain.py` through spark-submit: OPTIMIZE, then VACUUM, every deepsift table.",
        execution_timeout=timedelta(hours=4),
    )()


deepsift_maintenance()
